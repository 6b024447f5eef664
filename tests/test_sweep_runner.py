"""The local backend: shared generations, parallel jobs, concurrent sweeps, Ctrl-C.

* Students of one teacher share it: one generation 0 is trained, and the generation-1 result at each
  weight is bitwise the result of that run trained alone.
* ``jobs=2`` (a worker process besides the driver) gives the serial sweep's records; a failing run is
  named at the end while the others finish.
* Two sweeps started at once on one folder (real processes) train every generation exactly once, and
  every file they write has the mode the umask gives.
* Ctrl-C stops a sweep and its workers with a hint and exit status 130; the same command then finishes.
"""
from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from deepdistill.core.config import TrainConfig
from deepdistill.engine.runs import checkpoint_path, prefix_dir, read_record, run_dir_for
from deepdistill.drivers.sweep import expand_grid, run_sweep
from deepdistill.engine.train import train_run

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(dataset="digits", model="mlp", model_kwargs={"hidden": 16, "depth": 1}, n_train=300, epochs=2,
            batch_size=64, lr=1e-2, device="cpu")


def _weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def _assert_same(a: dict, b: dict, dir_a: Path, dir_b: Path) -> None:
    assert a["run_id"] == b["run_id"]
    for ga, gb in zip(a["generations"], b["generations"], strict=True):
        assert ga["val"] == gb["val"] and ga["test"] == gb["test"] and ga["selected_epoch"] == gb["selected_epoch"]
        wa, wb = _weights(dir_a / f"generation_{ga['generation']}.pt"), _weights(dir_b / f"generation_{gb['generation']}.pt")
        assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_students_share_one_teacher_equal_runs_alone_and_jobs_change_nothing(tmp_path, one_thread):
    configs = expand_grid(TINY, methods=["sd_kd"], gt_weights=[0.0, 0.5, 1.0], generations=[2], seeds=[0])
    serial = run_sweep(configs, tmp_path / "serial")
    cache = tmp_path / "serial" / "generations"
    # One teacher for the three students: 1 + 3 generation folders, each trained once.
    assert len({c.prefix_id(0) for c in configs}) == 1 and len(list(cache.iterdir())) == 4
    teacher = checkpoint_path(prefix_dir(configs[0], 0, cache), 0)
    for cfg in configs:
        run_dir = run_dir_for(cfg, tmp_path / "serial")
        assert os.path.samefile(run_dir / "generation_0.pt", teacher)          # a link, not a copy
        assert sorted(p.name for p in run_dir.iterdir()) == ["config.json", "generation_0.pt", "generation_1.pt",
                                                              "record.json"]
    # The must-show: generation 1 at a weight is bitwise the run trained alone (its own teacher, in memory).
    for cfg, record in zip(configs, serial):
        alone = train_run(cfg, tmp_path / "alone" / cfg.run_id())
        _assert_same(record, alone, run_dir_for(cfg, tmp_path / "serial"), tmp_path / "alone" / cfg.run_id())

    # Two jobs (the driver and a worker process), and one run that fails: named at the end, the others finish.
    failing = TrainConfig.from_dict(dict(TINY, method="ce", generations=1, optimizer="sgd", lr=1e30))
    with pytest.raises(RuntimeError, match=rf"1 of 4 run\(s\) failed \(\['{failing.run_id()}'\]\).*NonFiniteLossError"):
        run_sweep([failing, *configs], tmp_path / "parallel", jobs=2)
    for cfg, record in zip(configs, serial):
        parallel_dir = run_dir_for(cfg, tmp_path / "parallel")
        _assert_same(record, read_record(parallel_dir / "record.json"), run_dir_for(cfg, tmp_path / "serial"), parallel_dir)
    rollup = (tmp_path / "parallel" / "rollup.csv").read_text().splitlines()
    assert len(rollup) == 1 + 3 * 2                          # the finished runs are in it, two generations each


# ------------------------------------------------------------------------------------------------
# Real processes
# ------------------------------------------------------------------------------------------------

SWEEP = ["sweep", "--dataset", "digits", "--model", "mlp", "--model-kwargs", '{"hidden": 16, "depth": 1}',
         "--n-train", "400", "--batch-size", "16", "--device", "cpu", "--methods", "sd_kd", "--generations", "2",
         "--gt-weight", "0.3", "0.7", "--seeds", "0", "1"]


def _start(args: list[str], umask: int | None = None) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))

    def as_in_a_terminal():
        # A suite started in the background of a non-interactive shell (`pytest ... &`, a CI runner) inherits
        # SIGINT *ignored*, and so would the sweep: it would rightly go on through Ctrl-C (the shell's way of
        # saying "not for this job"). The sweep here is a command typed in a terminal, so SIGINT is restored.
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if umask is not None:
            os.umask(umask)

    return subprocess.Popen([sys.executable, "-m", "deepdistill", *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=as_in_a_terminal)


def test_two_sweeps_on_one_folder_train_every_generation_once(tmp_path):
    out = tmp_path / "sweep"
    argv = [*SWEEP, "--epochs", "30", "--jobs", "1", "--claim-timeout", "60", "--out-dir", str(out)]
    first, second = _start(argv, umask=0o007), _start(argv, umask=0o007)
    logs = []
    for process in (first, second):
        _, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-3000:]
        logs.append(err)
    trained = [re.findall(r"training in (\S+)", err) for err in logs]
    every = trained[0] + trained[1]
    # 2 teachers (one per seed) and 4 students, each trained by one process only, and both processes worked.
    assert len(every) == len(set(every)) == 6, trained
    assert all(trained), "one sweep trained nothing: the two did not overlap"
    assert any("being trained by" in err for err in logs)        # one found the other's claim and went on
    configs = expand_grid(dict(TINY, epochs=30, n_train=400, batch_size=16), methods=["sd_kd"],
                          gt_weights=[0.3, 0.7], generations=[2], seeds=[0, 1])
    for cfg in configs:
        assert read_record(run_dir_for(cfg, out) / "record.json")["run_id"] == cfg.run_id()
    files = [p for p in out.rglob("*") if p.is_file()]
    assert not [p for p in files if p.name.endswith((".claim", ".partial.pt", ".tmp"))]
    assert {stat.S_IMODE(p.stat().st_mode) for p in files} == {0o660}      # umask 007, not 0600


def test_ctrl_c_stops_the_sweep_and_its_workers_and_the_same_command_resumes(tmp_path, one_thread):
    out = tmp_path / "sweep"
    sweep = _start([*SWEEP, "--epochs", "60", "--jobs", "2", "--out-dir", str(out)])
    cache = out / "generations"
    deadline = time.monotonic() + 180
    # Wait until a generation is finished and another is under way (its epoch checkpoint written).
    while not (list(cache.glob("*/generation_0.pt")) and list(cache.glob("*/*.partial.pt"))):
        assert sweep.poll() is None, sweep.communicate()[1][-3000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    sweep.send_signal(signal.SIGINT)
    _, err = sweep.communicate(timeout=60)
    assert sweep.returncode == 130, err[-3000:]
    assert err.rstrip().endswith("interrupted; run the same command again to resume") and "Traceback" not in err
    # The log: a header naming what varies before each generation's lines, which carry its tag.
    header = re.search(r"\[(\w+) g0\] generation 0 of seed (\d), the 2 runs \(gt_weight 0\.3 0\.7\) that share it: training", err)
    assert header and f"[{header.group(1)} g0] generation 0 epoch 0:" in err
    # No worker is left: every claim left behind is of a process that is gone.
    for claim in cache.glob("*/*.claim"):
        pid = json.loads(claim.read_text())["pid"]
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)

    configs = expand_grid(dict(TINY, epochs=60, n_train=400, batch_size=16), methods=["sd_kd"],
                          gt_weights=[0.3, 0.7], generations=[2], seeds=[0, 1])
    log = []
    records = run_sweep(configs, out, log=log.append)            # the same sweep again: it resumes
    assert [r["run_id"] for r in records] == [c.run_id() for c in configs]
    assert any("resuming after epoch" in line for line in log)
    assert not [p for p in out.rglob("*") if p.name.endswith((".claim", ".partial.pt", ".tmp"))]


def _fake_driver(folder: Path, pid: int, host: str | None = None) -> Path:
    import socket

    from deepdistill.engine.claims import _pid_namespace
    entry = folder / ".drivers" / f"fake-{pid}.json"
    entry.parent.mkdir(parents=True, exist_ok=True)
    entry.write_text(json.dumps({"host": host or socket.gethostname(), "pid": pid, "pid_namespace": _pid_namespace()}))
    return entry


def test_a_sweep_beside_another_live_sweep_starts_half_the_jobs(tmp_path):
    from deepdistill.drivers.local_runner import _DriverLease

    folder = tmp_path / "sweep" / "generations"
    alone = _DriverLease(folder)
    entry = alone.path
    assert alone.drivers == 1 and entry.is_file()
    alone.release()
    assert not entry.exists()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        live = _fake_driver(folder, other.pid)
        _fake_driver(folder, other.pid + 10**6, host="another-machine")      # its cores are its own: not counted
        beside = _DriverLease(folder)
        assert beside.drivers == 2
        beside.release()
        # The sweep itself: two jobs asked, one started, and it says so; the results are the same.
        lines = []
        configs = expand_grid(TINY, methods=["sd_kd"], gt_weights=[0.5], generations=[2], seeds=[0])
        run_sweep(configs, tmp_path / "sweep", jobs=2, log=lines.append)
        assert any("1 other sweep(s) train into" in line and "1 job(s) here instead of 2" in line for line in lines)
    finally:
        other.kill()
        other.wait()
    after = _DriverLease(folder)                     # the dead driver's entry is removed on sight
    assert after.drivers == 1 and not live.exists()
    after.release()


def test_a_driver_that_counted_itself_alone_counts_again_after_settling(tmp_path):
    # Two sweeps started together register a moment apart: the first counts itself alone, waits SETTLE_S and
    # counts again, so it too sees the second before it starts any worker (bench/bench_concurrent_sweeps.py).
    from deepdistill.drivers.local_runner import _DriverLease

    folder = tmp_path / "generations"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        timer = threading.Timer(0.2, _fake_driver, args=(folder, other.pid))   # registers while the first settles
        timer.start()
        first = _DriverLease(folder, settle=1.5)
        timer.join()
        assert first.drivers == 2
        first.release()
        (folder / ".drivers" / f"fake-{other.pid}.json").unlink()
        # the same race without the second look: the first counts itself alone
        timer = threading.Timer(0.5, _fake_driver, args=(folder, other.pid))
        timer.start()
        unsettled = _DriverLease(folder, settle=0.0)
        timer.join()
        assert unsettled.drivers == 1
        unsettled.release()
    finally:
        other.kill()
        other.wait()
    alone = _DriverLease(folder, settle=0.0)
    assert alone.drivers == 1
    alone.release()


def test_a_sweep_joined_later_keeps_only_its_share_of_workers_busy(tmp_path):
    # The first of two sweeps counts itself alone and starts every worker; once the second registers, the
    # first's next count (at most every `every` seconds) leaves it jobs // drivers busy workers, and all of
    # them again when the other is gone.
    from deepdistill.drivers.local_runner import _DriverLease, _Slots

    folder = tmp_path / "generations"
    first = _DriverLease(folder)
    assert first.drivers == 1 and first.share(4) == 4
    assert sorted(p.name for p in (folder / ".drivers").iterdir()) == [first.path.name]     # nothing else left
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _fake_driver(folder, other.pid)
        assert first.share(4, every=3600.0) == 4                # not counted again yet
        assert first.share(4, every=0.0) == 2 and first.drivers == 2
        assert first.share(1, every=0.0) == 1                   # never fewer than one
        slots = _Slots(2, 1, None, share=lambda n: first.share(n, every=0.0))
        try:
            assert slots.capacity() == 1                        # two workers, one of them may be busy
            slots.pool_busy = 1
            assert slots.capacity() == 0
        finally:
            slots.pool_busy = 0
            slots.close()
    finally:
        other.kill()
        other.wait()
    assert first.share(4, every=0.0) == 4 and first.drivers == 1
    first.release()
