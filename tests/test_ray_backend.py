"""The Ray backend against the local one, on a real local Ray instance (2 CPUs, no GPU).

* The same small grid, same seeds, gives the same records, weights and roll-up on both backends.
* A worker killed with SIGKILL in the middle of a generation is retried; the run ends with exactly
  the record the uninterrupted local run has, one record per run, nothing corrupt.
* A sweep stopped part-way and started again trains only what is missing (files of finished
  generations and runs are not rewritten).
* A failing run does not stop the others; without Ray the backend fails at once with the install hint.

Torch runs on one thread in both backends here (Ray sets OMP_NUM_THREADS to a task's CPUs, 1), so
that CPU results are comparable exactly, as ``tests/test_train.py`` compares resumed runs.
"""
from __future__ import annotations

import csv
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from deepdistill.engine.results import collect_records
from deepdistill.engine.runs import checkpoint_path, generation_cache_dir, partial_path, prefix_dir, read_record, run_dir_for
from deepdistill.drivers.sweep import expand_grid, run_sweep

TINY = dict(dataset="digits", model="mlp", model_kwargs={"hidden": 32, "depth": 1}, n_train=400, epochs=2,
            batch_size=64, lr=1e-2, device="cpu")


@pytest.fixture(scope="module")
def ray_instance():
    """One local Ray instance for the tests that do not test starting one (saves ~7 s per test)."""
    ray = pytest.importorskip("ray")
    if ray.is_initialized():
        pytest.skip("Ray is already initialised in this process")
    # address="local": an instance of our own, never a cluster another process left on this machine.
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="warning")
    yield ray
    ray.shutdown()


def _weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def _assert_same_records(a: dict, b: dict, dir_a: Path, dir_b: Path) -> None:
    assert a["run_id"] == b["run_id"]
    assert len(a["generations"]) == len(b["generations"]) == a["config"]["generations"]
    for ga, gb in zip(a["generations"], b["generations"]):
        assert ga["selected_epoch"] == gb["selected_epoch"]
        assert ga["val"] == gb["val"] and ga["test"] == gb["test"]            # exactly equal on CPU
        assert [h["train_loss"] for h in ga["history"]] == [h["train_loss"] for h in gb["history"]]
        wa, wb = _weights(dir_a / f"generation_{ga['generation']}.pt"), _weights(dir_b / f"generation_{gb['generation']}.pt")
        assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def _rollup_without_timings(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return [{k: v for k, v in row.items() if not k.startswith("wall_time")} for row in csv.DictReader(f)]


def _assert_one_complete_record_per_run(configs, out_dir: Path) -> None:
    records = collect_records(out_dir)
    assert sorted(r["run_id"] for r in records) == sorted(c.run_id() for c in configs)   # none missing, none twice
    for cfg in configs:
        run_dir = run_dir_for(cfg, out_dir)
        assert read_record(run_dir / "record.json")["run_id"] == cfg.run_id()
        assert not list(run_dir.glob("*.partial.pt")) and not list(run_dir.glob(".*.tmp")), sorted(os.listdir(run_dir))


# ------------------------------------------------------------------------------------------------
# Without Ray
# ------------------------------------------------------------------------------------------------

def test_without_ray_the_backend_fails_at_once_naming_the_extra(monkeypatch, tmp_path):
    from deepdistill.drivers.ray_backend import run_sweep_ray

    monkeypatch.setitem(sys.modules, "ray", None)        # `import ray` now raises ImportError
    with pytest.raises(ImportError, match=r'pip install "\.\[cluster\]"'):
        run_sweep_ray(expand_grid(TINY, methods=["ce"], generations=[1]), tmp_path)
    assert not (tmp_path / "runs").exists()               # failed before anything was written


def test_one_generation_per_call_leaves_no_record_until_the_last(tmp_path, one_thread):
    # What each Ray task does (train_run through one generation), here without Ray.
    from deepdistill.engine.train import train_run

    cfg = expand_grid(TINY, methods=["sd_kd"], generations=[3], seeds=[0])[0]
    run_dir = tmp_path / "chain"
    for g in (0, 1):
        assert train_run(cfg, run_dir, through_generation=g) is None
        assert (run_dir / f"generation_{g}.pt").exists() and not (run_dir / f"generation_{g + 1}.pt").exists()
        assert not (run_dir / "record.json").exists() and collect_records(tmp_path) == []
    chained = train_run(cfg, run_dir, through_generation=2)
    whole = train_run(cfg, tmp_path / "whole")
    _assert_same_records(whole, chained, tmp_path / "whole", run_dir)
    with pytest.raises(ValueError, match="through_generation"):
        train_run(cfg, run_dir, through_generation=3)


# ------------------------------------------------------------------------------------------------
# With a real local Ray instance
# ------------------------------------------------------------------------------------------------

def test_ray_and_local_backends_give_the_same_records_and_rollup(tmp_path, one_thread):
    ray = pytest.importorskip("ray")
    from deepdistill.drivers.ray_backend import run_sweep_ray

    if ray.is_initialized():
        pytest.skip("this test checks that the backend starts and stops its own instance")
    configs = expand_grid(TINY, methods=["sd_kd"], gt_weights=[0.3, 0.7], generations=[2], seeds=[0, 1])
    assert len(configs) == 4
    local = run_sweep(configs, tmp_path / "local")
    # No address and no Ray running: the backend starts a local instance, and stops it at the end.
    remote = run_sweep_ray(configs, tmp_path / "ray", num_cpus=2)
    assert not ray.is_initialized()

    assert [r["run_id"] for r in remote] == [c.run_id() for c in configs]   # in the order of the configs
    for cfg, a, b in zip(configs, local, remote):
        _assert_same_records(a, b, run_dir_for(cfg, tmp_path / "local"), run_dir_for(cfg, tmp_path / "ray"))
    rows_local, rows_ray = (_rollup_without_timings(tmp_path / d / "rollup.csv") for d in ("local", "ray"))
    assert len(rows_local) == 4                           # 2 gt_weights x 2 generations, seeds grouped
    assert all(row["n_seeds"] == "2" for row in rows_ray)
    assert rows_ray == rows_local
    _assert_one_complete_record_per_run(configs, tmp_path / "ray")


def _task_processes(name: str) -> list[int]:
    """Pids of the processes titled ``ray::<name>`` (a Ray worker running that task) that descend
    from this test process: only workers of the instance this test started, never anyone else's."""
    me, found = os.getpid(), []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            title = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")[0].strip()
        except OSError:
            continue
        if title.decode(errors="replace") != f"ray::{name}":
            continue
        pid = int(entry)
        while pid > 1:                                     # walk up the parents
            try:
                pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                break
            if pid == me:
                found.append(int(entry))
                break
    return found


def test_a_worker_killed_mid_generation_is_retried_and_nothing_is_lost(ray_instance, tmp_path, one_thread):
    from deepdistill.drivers.ray_backend import run_sweep_ray
    from deepdistill.engine.train import train_run

    # Long enough epochs (~0.1 s) to catch the task between its first checkpoint and its end.
    cfg = expand_grid(dict(TINY, n_train=1200, model_kwargs={"hidden": 64, "depth": 1}, epochs=10, batch_size=16),
                      methods=["sd_kd"], generations=[2], seeds=[3])[0]
    run_dir = run_dir_for(cfg, tmp_path / "ray")
    cache = generation_cache_dir(tmp_path / "ray")     # where a sweep trains each generation (shared by prefix)
    reference = train_run(cfg.replace(out_dir=str(tmp_path / "reference")))

    outcome = {}

    def sweep():
        try:
            outcome["records"] = run_sweep_ray([cfg], tmp_path / "ray", max_retries=2)
        except BaseException as err:                       # re-raised in the test's thread below
            outcome["error"] = err

    driver = threading.Thread(target=sweep)
    driver.start()
    killed = []
    # A bound, not a wait: generous, since on a loaded machine generation 0's retry and generation 1 take long.
    deadline = time.monotonic() + 180
    for g in (0, 1):   # generation 0: an intermediate task; generation 1: the task that writes the record
        folder = prefix_dir(cfg, g, cache)
        partial, done = partial_path(folder, g), checkpoint_path(folder, g)
        while time.monotonic() < deadline and driver.is_alive() and not killed[g:]:
            pids = _task_processes(f"deepdistill-{cfg.prefix_id(g)}-g{g}")
            # Mid-generation: at least one epoch checkpointed, the generation not finished.
            if pids and partial.exists() and not done.exists():
                os.kill(pids[0], signal.SIGKILL)
                killed.append((g, pids[0]))
            time.sleep(0.005)
    driver.join(timeout=60)
    assert not driver.is_alive()
    if "error" in outcome:
        raise outcome["error"]
    assert [g for g, _ in killed] == [0, 1], "the test did not catch a task mid-generation"

    (record,) = outcome["records"]
    _assert_same_records(reference, record, tmp_path / "reference", run_dir)
    _assert_one_complete_record_per_run([cfg], tmp_path / "ray")


def test_a_restarted_sweep_trains_only_what_is_missing(ray_instance, tmp_path, one_thread):
    from deepdistill.drivers.ray_backend import run_sweep_ray
    from deepdistill.engine.train import train_run

    configs = expand_grid(TINY, methods=["sd_kd"], gt_weights=[0.3, 0.7], generations=[2], seeds=[0, 1])
    out = tmp_path / "sweep"
    first = run_sweep_ray(configs, out)
    rollup_before = _rollup_without_timings(out / "rollup.csv")
    a, b, c, d = (run_dir_for(cfg, out) for cfg in configs)

    # The state a sweep stopped part-way leaves: a chain after generation 0 (a); a run not started (b);
    # a chain stopped mid-way through generation 0, its first epoch checkpointed (c); a finished run (d).
    (a / "record.json").unlink()
    (a / "generation_1.pt").unlink()
    for path in b.iterdir():
        path.unlink()
    b.rmdir()
    for path in c.iterdir():
        path.unlink()

    def stop(**_):                                  # what Ctrl-C does after the first epoch's checkpoint
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_run(configs[2], c, on_epoch_end=stop)
    assert sorted(p.name for p in c.iterdir()) == ["config.json", "generation_0.partial.pt"]
    kept = [a / "generation_0.pt", d / "record.json", d / "generation_0.pt", d / "generation_1.pt"]
    stamps = {p: p.stat().st_mtime_ns for p in kept}

    second = run_sweep_ray(configs, out)
    assert {p: p.stat().st_mtime_ns for p in kept} == stamps            # nothing finished was redone
    for before, after in zip(first, second):
        assert after["run_id"] == before["run_id"]
        assert [g["test"] for g in after["generations"]] == [g["test"] for g in before["generations"]]
    assert second[3]["finished_at"] == first[3]["finished_at"]          # the finished run was only read
    assert _rollup_without_timings(out / "rollup.csv") == rollup_before
    _assert_one_complete_record_per_run(configs, out)


def test_a_failing_run_does_not_stop_the_others_and_is_named(ray_instance, tmp_path):
    from deepdistill.core.io import atomic_write_json
    from deepdistill.drivers.ray_backend import run_sweep_ray

    configs = expand_grid(dict(TINY, epochs=1), methods=["ce"], generations=[1], seeds=[0, 1])
    out = tmp_path / "sweep"
    bad = run_dir_for(configs[0], out)
    # A folder made with another config: the training refuses it (ConfigMismatchError), every attempt would.
    atomic_write_json(bad / "config.json", dict(configs[0].to_dict(), epochs=7))
    with pytest.raises(RuntimeError, match=rf"1 of 2 run\(s\) failed.*{configs[0].run_id()}.*ConfigMismatchError"):
        run_sweep_ray(configs, out)
    good = read_record(run_dir_for(configs[1], out) / "record.json")
    assert good is not None and good["run_id"] == configs[1].run_id()
    assert [r["run_id"] for r in collect_records(out)] == [configs[1].run_id()]
    assert {row["seeds"] for row in _rollup_without_timings(out / "rollup.csv")} == {"1"}


@pytest.mark.parametrize("kwargs, match", [
    (dict(num_gpus_per_task=1.5), "num_gpus_per_task"),
    (dict(num_gpus_per_task=-0.5), "num_gpus_per_task"),
    (dict(num_cpus_per_task=0), "num_cpus_per_task"),
    (dict(max_retries=-2), "max_retries"),
])
def test_bad_resources_are_refused_before_ray_starts(tmp_path, kwargs, match):
    ray = pytest.importorskip("ray")
    from deepdistill.drivers.ray_backend import run_sweep_ray

    was_running = ray.is_initialized()
    with pytest.raises(ValueError, match=match):
        run_sweep_ray(expand_grid(TINY, methods=["ce"], generations=[1]), tmp_path, **kwargs)
    assert ray.is_initialized() == was_running


@pytest.mark.parametrize("device, gpus", [("cuda", 0), ("cpu", 0.25)])
def test_a_device_that_contradicts_the_gpus_per_task_is_refused(tmp_path, device, gpus):
    pytest.importorskip("ray")
    from deepdistill.drivers.ray_backend import run_sweep_ray

    with pytest.raises(ValueError, match=rf"num_gpus_per_task.*device='{device}'|device='{device}'.*num_gpus_per_task"):
        run_sweep_ray(expand_grid(dict(TINY, device=device), methods=["ce"], generations=[1]), tmp_path,
                      num_gpus_per_task=gpus)
