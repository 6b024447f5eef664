"""Failures a new user met (issue 18), each reproduced: killed drivers, bad process options, a claim file
that names nobody, folders replaced by files, read-only and truncated results, deep inputs and a stale cache.

Every test asserts the message or the behaviour (the path named, the option named, nothing left running),
not only that something fails.
"""
from __future__ import annotations

import errno
import importlib.util
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from deepdistill.cli import main as deep_main
from deepdistill.drivers.local_runner import default_jobs, resolve_jobs
from deepdistill.drivers.sweep import expand_grid, run_sweep
from deepdistill.engine.claims import check_stale_after
from deepdistill.engine.runs import (RECORD_FILE, CorruptFileError, checkpoint_path, claim_path, prefix_dir,
                                     read_record, run_dir_for)

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(dataset="digits", model="mlp", model_kwargs={"hidden": 8, "depth": 1}, n_train=200, epochs=1,
            batch_size=64, lr=1e-2, device="cpu", checkpoint_every=0)
# The same runs on the command line.
TINY_ARGS = ["--dataset", "digits", "--model", "mlp", "--model-kwargs", '{"hidden": 8, "depth": 1}', "--n-train", "200",
             "--epochs", "1", "--batch-size", "64", "--device", "cpu", "--methods", "sd_kd", "--gt-weight", "0.5",
             "--generations", "2", "--seeds", "0"]

pytestmark = pytest.mark.usefixtures("one_thread_per_module")


def _one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


# ------------------------------------------------------------------------------------------------
# B16: process options refused up front, in one line, by one function
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value", ["0", "-1", "nan", "inf"])
@pytest.mark.parametrize("command", ["sweep", "train"])
def test_b16_a_bad_claim_timeout_is_refused_up_front_in_one_line(tmp_path, capsys, command, value):
    out = tmp_path / "out"
    args = TINY_ARGS if command == "sweep" else ["--dataset", "digits", "--epochs", "1"]
    assert deep_main([command, *args, "--claim-timeout", value, "--out-dir", str(out), "--quiet"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "`--claim-timeout`" in line and "finite number of seconds > 0" in line and f"got {float(value)!r}" in line
    assert not out.exists(), "the command started before refusing the option"


@pytest.mark.parametrize("option, value, named", [("--threads-per-job", "0", "`--threads-per-job`"),
                                                  ("--threads-per-job", "-2", "`--threads-per-job`"),
                                                  ("--jobs", "-1", "`--jobs`")])
@pytest.mark.parametrize("command", ["sweep", "estimate-weight"])
def test_b16_threads_per_job_zero_and_negative_jobs_are_refused_in_one_line(tmp_path, capsys, command, option, value,
                                                                           named):
    out = tmp_path / "out"
    args = TINY_ARGS if command == "sweep" else ["--dataset", "digits", "--epochs", "1", "--seeds", "0", "--no-grid"]
    assert deep_main([command, *args, option, value, "--out-dir", str(out), "--quiet"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert named in line and "integer >= 1" in line and f"got {int(value)}" in line
    assert not out.exists()


def test_b16_jobs_and_threads_are_checked_and_defaulted_in_one_place(tmp_path):
    assert resolve_jobs(None, 1) == (default_jobs(1), 1)
    assert resolve_jobs(None, 2) == (default_jobs(2), 2)
    assert resolve_jobs(3, None) == (3, None)          # the Python API: None leaves torch's threads as they are
    for jobs, threads, named in [(0, 1, "`jobs`"), (1.5, 1, "`jobs`"), (True, 1, "`jobs`"), (2, 0, "`threads_per_job`")]:
        with pytest.raises(ValueError, match=named):
            resolve_jobs(jobs, threads)
    with pytest.raises(ValueError, match="`--jobs` must be an integer >= 1 .* or 0 / auto for the default"):
        resolve_jobs(-1, 1, names=("--jobs", "--threads-per-job"))
    # The sweep's Python API goes through the same checks, before it writes anything.
    configs = expand_grid(TINY, methods=["sd_kd"], gt_weights=[0.5], generations=[1], seeds=[0])
    with pytest.raises(ValueError, match=r"`threads_per_job` must be an integer >= 1 .*got 0"):
        run_sweep(configs, tmp_path / "a", threads_per_job=0)
    with pytest.raises(ValueError, match=r"`claim_timeout` .* finite number of seconds > 0.*got nan"):
        run_sweep(configs, tmp_path / "b", claim_timeout=math.nan)
    assert not (tmp_path / "a" / "runs").exists() and not (tmp_path / "b" / "runs").exists()
    assert check_stale_after(2) == 2.0
    if importlib.util.find_spec("ray") is not None:   # the Ray backend refuses it before Ray starts
        import ray

        with pytest.raises(ValueError, match=r"`claim_timeout` .* finite number of seconds > 0.*got -1"):
            run_sweep(configs, tmp_path / "c", backend="ray", claim_timeout=-1)
        assert not ray.is_initialized()


# ------------------------------------------------------------------------------------------------
# An empty claim file: said once, even under --quiet, what is waited for and until when
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("jobs", ["1", "2"])
def test_an_empty_claim_file_is_named_once_even_when_quiet(tmp_path, capsys, jobs):
    out = tmp_path / "sweep"
    config = expand_grid(TINY, methods=["sd_kd"], gt_weights=[0.5], generations=[2], seeds=[0])[0]
    claim = claim_path(prefix_dir(config, 0, out / "generations"), 0)
    claim.parent.mkdir(parents=True)
    claim.touch()                                     # empty, with a fresh timestamp: names no process
    stale_at = time.strftime("%H:%M:%S", time.localtime(claim.stat().st_mtime + 3))
    assert deep_main(["sweep", *TINY_ARGS, "--claim-timeout", "3", "--jobs", jobs, "--threads-per-job", "1",
                      "--out-dir", str(out), "--quiet"]) == 0
    captured = capsys.readouterr()
    notes = [ln for ln in captured.err.splitlines() if "empty or unreadable" in ln]
    assert len(notes) == 1, captured.err
    assert f"taken over at {stale_at} (3 s after its last change, --claim-timeout)" in notes[0]
    assert str(claim) in notes[0] and "generation 0 of" in notes[0]
    assert read_record(run_dir_for(config, out) / RECORD_FILE)["run_id"] == config.run_id()


def test_an_empty_claim_file_is_named_once_by_a_quiet_train_command_too(tmp_path, capsys):
    out = tmp_path / "run"
    claim = claim_path(out, 0)
    out.mkdir()
    claim.write_bytes(b"")
    assert deep_main(["train", "--dataset", "digits", "--model", "mlp", "--model-kwargs", '{"hidden": 8, "depth": 1}',
                      "--n-train", "200", "--epochs", "1", "--generations", "1", "--claim-timeout", "2",
                      "--out-dir", str(out), "--quiet"]) == 0
    notes = [ln for ln in capsys.readouterr().err.splitlines() if "empty or unreadable" in ln]
    assert len(notes) == 1 and notes[0].startswith("generation 0: waiting for the claim file ") and str(claim) in notes[0]
    assert "taken over at" in notes[0] and (out / RECORD_FILE).is_file()


# ------------------------------------------------------------------------------------------------
# B14: a generation-cache folder replaced by a plain file
# ------------------------------------------------------------------------------------------------

def test_b14_a_cache_folder_that_is_a_file_is_named_with_what_to_do(tmp_path):
    out = tmp_path / "sweep"
    configs = expand_grid(TINY, methods=["sd_kd"], gt_weights=[0.5], generations=[2], seeds=[0])
    run_sweep(configs, out, progress=False)
    folder = prefix_dir(configs[0], 1, out / "generations")
    shutil.rmtree(folder)
    folder.write_text("not a folder\n")
    run_dir = run_dir_for(configs[0], out)
    (run_dir / RECORD_FILE).unlink()
    checkpoint_path(run_dir, 1).unlink()
    with pytest.raises(RuntimeError) as err:
        run_sweep(configs, out, progress=False)
    message = str(err.value)
    assert f"{str(folder)!r} is a file, not a folder" in message and "Move or delete that file" in message
    assert "FileExistsError" not in message and "Errno" not in message
    assert folder.read_text() == "not a folder\n"          # nothing of the user's is touched
    # Once the file is gone the same sweep finishes.
    folder.unlink()
    assert run_sweep(configs, out, progress=False)[0]["run_id"] == configs[0].run_id()


def test_b14_a_parent_that_is_a_file_is_named_too(tmp_path):
    from deepdistill.engine.runs import ensure_folder

    (tmp_path / "generations").write_text("")
    with pytest.raises(CorruptFileError, match=r"'.*generations' \(a parent of the folder '.*abc'\) is a file"):
        ensure_folder(tmp_path / "generations" / "abc")


# ------------------------------------------------------------------------------------------------
# B10, B11, B12: analysis report --results
# ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("results") / "sweep"
    configs = expand_grid(TINY, methods=["sd_kd"], gt_weights=[0.25, 0.75], generations=[2], seeds=[0])
    run_sweep(configs, out, progress=False)
    return out


def _copy(results, tmp_path) -> Path:
    target = tmp_path / "sweep"
    shutil.copytree(results, target)
    return target


def test_b10_a_results_path_that_is_a_file_is_called_a_file(tmp_path, capsys):
    from analysis.__main__ import main

    path = tmp_path / "rollup.csv"
    path.write_text("x\n1\n")
    assert main(["report", "--results", str(path)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert f"{path} is a file, not a folder" in line and "does not exist" not in line


def test_b11_a_truncated_record_is_named_in_the_report_and_on_stderr_and_strict_refuses(results, tmp_path, capsys):
    from analysis.__main__ import main

    work = _copy(results, tmp_path)
    records = sorted(work.rglob(RECORD_FILE))
    text = records[0].read_text()
    records[0].write_text(text[: len(text) // 2])
    assert main(["report", "--results", str(work)]) == 0
    err = capsys.readouterr().err
    assert f"unreadable: {records[0]} is not valid JSON (truncated or overwritten?)" in err
    report = (work / "report" / "report.md").read_text()
    assert "## Unreadable records" in report and f"`{records[0].relative_to(work)}` is not valid JSON" in report
    assert main(["report", "--results", str(work), "--out", str(tmp_path / "strict"), "--strict"]) == 2
    err = capsys.readouterr().err
    assert f"unreadable: {records[0]}" in err
    assert "error: 1 record(s) or table(s) under" in err and "--strict" in err
    assert not (tmp_path / "strict").exists()
    # An intact folder has no such section.
    assert main(["report", "--results", str(results), "--out", str(tmp_path / "clean")]) == 0
    assert "Unreadable" not in (tmp_path / "clean" / "report.md").read_text()


def test_b12_a_read_only_results_folder_gives_one_line_that_suggests_out(results, tmp_path, capsys, monkeypatch):
    from analysis.__main__ import main

    work = _copy(results, tmp_path)
    real_mkdir = Path.mkdir

    def read_only(self, *args, **kwargs):     # the folder is on a read-only file system (root ignores chmod)
        if work in (self, *self.parents):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", read_only)
    before = sorted(p for p in work.rglob("*"))
    assert main(["report", "--results", str(work)]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert f"`--out` {str(work / 'report')!r} cannot be created: Read-only file system" in line
    assert "give --out DIR" in line and "Traceback" not in line
    assert sorted(p for p in work.rglob("*")) == before
    # With --out elsewhere the report is written.
    assert main(["report", "--results", str(work), "--out", str(tmp_path / "elsewhere")]) == 0
    assert (tmp_path / "elsewhere" / "report.md").is_file()


# ------------------------------------------------------------------------------------------------
# B15: workers end when their driver is killed, release their claims, and the command resumes
# ------------------------------------------------------------------------------------------------

def _children(pid: int) -> list[int]:
    kids = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids += [int(v) for v in (task / "children").read_text().split()]
        except OSError:
            pass
    return kids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads the process tree from /proc (Linux)")
def test_b15_killing_the_driver_ends_its_workers_and_the_same_command_resumes(tmp_path):
    out = tmp_path / "sweep"
    argv = [sys.executable, "-m", "deepdistill", "sweep", "--dataset", "digits", "--model", "mlp", "--model-kwargs",
            '{"hidden": 16, "depth": 1}', "--n-train", "400", "--batch-size", "16", "--epochs", "40", "--device", "cpu",
            "--methods", "sd_kd", "--gt-weight", "0.3", "0.7", "--generations", "2", "--seeds", "0", "1",
            "--jobs", "2", "--quiet", "--out-dir", str(out)]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    driver = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        workers: list[int] = []
        # Wait until a worker process holds a claim: it is training a generation.
        while True:
            assert driver.poll() is None, driver.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "no worker started training"
            workers = [p for p in _children(driver.pid) if "spawn_main" in _cmdline(p)]
            holders = set()
            for claim in out.glob("generations/*/*.claim"):
                try:
                    holders.add(json.loads(claim.read_text())["pid"])
                except (OSError, ValueError, KeyError):
                    pass
            if holders & set(workers):
                break
            time.sleep(0.1)
        assert len(workers) == 2
        driver.kill()                                          # SIGKILL: no clean-up of the driver's own
        driver.wait(timeout=30)
        end = time.monotonic() + 15
        while any(_alive(p) for p in workers) and time.monotonic() < end:
            time.sleep(0.1)
        left = [p for p in workers if _alive(p)]
        assert not left, f"worker(s) {left} outlived their driver"
    finally:
        if driver.poll() is None:
            driver.kill()
        for pid in workers:                                    # never leave a process behind, even on failure
            if _alive(pid) and "spawn_main" in _cmdline(pid):
                os.kill(pid, signal.SIGKILL)
    # The workers released their claims on the way out (the driver's own, if any, is of a dead process).
    for claim in out.glob("generations/*/*.claim"):
        assert json.loads(claim.read_text())["pid"] not in workers
    # The same command resumes and finishes.
    again = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=400)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "4 run(s) complete" in again.stdout
    assert not [p for p in out.rglob("*") if p.name.endswith((".claim", ".partial.pt", ".tmp"))]


# ------------------------------------------------------------------------------------------------
# B6: full-batch self-distillation refuses non-finite targets, warns when it stops unconverged, names dtypes
# ------------------------------------------------------------------------------------------------

def _lazy_problem(dtype=torch.float64):
    from deepdistill.core.ntk import NTKMLP

    g = torch.Generator().manual_seed(0)
    x = torch.rand(8, 1, generator=g, dtype=torch.float64)
    y = torch.sin(6.0 * x[:, 0])
    torch.manual_seed(1)
    return NTKMLP(1, 16).to(dtype), x, y


def test_b6_non_finite_targets_are_refused_before_any_fit(monkeypatch):
    import deepdistill.engine.lazy as lazy

    model, x, y = _lazy_problem()
    y[3] = math.nan
    monkeypatch.setattr(lazy, "fit_full_batch", lambda *a, **k: pytest.fail("a fit ran on NaN targets"))
    with pytest.raises(ValueError, match=r"`y_train` holds 1 non-finite value\(s\) \(NaN or inf\), e.g. at index \(3,\)"):
        lazy.full_batch_self_distillation(model, x, y, ridge=0.5, gt_weights=[0.5], steps=2)
    y[3], x[2, 0] = 0.0, math.inf
    with pytest.raises(ValueError, match=r"`x_train` holds 1 non-finite"):
        lazy.full_batch_self_distillation(model, x, y, ridge=0.5, gt_weights=[0.5], steps=2)
    x[2, 0] = 0.5
    with pytest.raises(ValueError, match=r"`evaluate\['test'\]` holds 2 non-finite"):
        lazy.full_batch_self_distillation(model, x, y, ridge=0.5, gt_weights=[0.5], steps=2,
                                          evaluate={"test": torch.full((2, 1), math.nan, dtype=torch.float64)})


def test_b6_an_unconverged_fit_is_warned_about_with_its_step_and_gradient_and_converged_is_top_level():
    from deepdistill.engine.lazy import full_batch_self_distillation

    model, x, y = _lazy_problem()
    with pytest.warns(RuntimeWarning) as caught:
        path = full_batch_self_distillation(model, x, y, ridge=0.5, gt_weights=[0.5], steps=2, max_iter=1)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 2 and path.converged is False and path.all_converged is False
    fit = path.fits[0][1]
    assert (f"the fit of step 2 at gt_weight 0.5 stopped unconverged after {fit.iterations} L-BFGS iteration(s): "
            f"max |grad| {fit.grad_max:.3g} > tolerance_grad 1e-07 (||grad||_2 {fit.grad_norm:.3g})") in messages[1]
    assert "step 1 (the labels alone" in messages[0] and "Raise max_iter (1)" in messages[0]
    # A converged path says so and warns about nothing.
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        path = full_batch_self_distillation(model, x, y, ridge=0.5, gt_weights=[0.5], steps=2)
    assert path.converged is True


def test_b6_a_float32_model_with_float64_data_names_both_dtypes():
    from deepdistill.engine.lazy import fit_full_batch, full_batch_self_distillation

    model, x, y = _lazy_problem(torch.float32)
    with pytest.raises(TypeError, match=r"`x_train` is torch.float64 but the model's parameters are torch.float32"):
        full_batch_self_distillation(model, x, y, ridge=0.5, gt_weights=[0.5], steps=2)
    with pytest.raises(TypeError, match=r"`targets` is torch.float64 but the model's parameters are torch.float32"):
        fit_full_batch(model, x.float(), y, ridge=0.5)


# ------------------------------------------------------------------------------------------------
# The stale cache of CenteredModel: keyed by content, so a reallocated input never gets old outputs
# ------------------------------------------------------------------------------------------------

def test_centered_model_never_returns_outputs_of_a_freed_input():
    from deepdistill.core.linearize import CenteredModel
    from deepdistill.core.ntk import NTKMLP

    torch.manual_seed(0)
    net = NTKMLP(3, 32).double()
    model = CenteredModel(net)
    with torch.no_grad():
        net[0].weight.add_(0.1) if isinstance(net, torch.nn.Sequential) else next(net.parameters()).add_(0.1)
    # A buffer that the inputs are made on in turn, as an allocator reuses freed memory: each new input
    # has the freed one's address and shape (and, CPython reusing the object's memory, mostly its id too).
    buffer = np.empty((16, 3))
    reused = 0
    for trial in range(10):
        buffer[:] = np.random.default_rng(trial).standard_normal((16, 3))
        x = torch.from_numpy(buffer)
        key = (id(x), x.data_ptr(), x._version)
        with torch.no_grad():
            expected = net(x) - model.initial(x)
            assert torch.equal(model(x), expected), f"stale f(x; theta0) at trial {trial}"
        del x                                                          # freed; the next input takes its place
        x_next = torch.from_numpy(buffer)
        reused += (id(x_next), x_next.data_ptr(), x_next._version) == key
        del x_next
    assert reused > 0, "no input took a freed one's id and address (the hazard was not reproduced)"
    # An in-place change of the input is seen too.
    x = torch.randn(16, 3, dtype=torch.float64)
    model(x)
    x.mul_(2.0)
    with torch.no_grad():
        assert torch.equal(model(x), net(x) - model.initial(x))


# ------------------------------------------------------------------------------------------------
# Distributed faults: a node of a (simulated) Ray cluster dies mid-sweep
# ------------------------------------------------------------------------------------------------

def _ppid(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _ray_task_pids(title: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "cmdline").read_bytes().split(b"\0")[0].strip().decode(errors="replace") == f"ray::{title}":
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def _node_of(pid: int, raylets: dict) -> object | None:
    """The cluster node whose raylet ``pid`` descends from."""
    while pid and pid > 1:
        if pid in raylets:
            return raylets[pid]
        pid = _ppid(pid)
    return None


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the task's node through /proc (Linux)")
def test_a_node_removed_mid_sweep_loses_nothing_on_a_simulated_ray_cluster(tmp_path):
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        pytest.skip("Ray is already initialised in this process")
    # Long enough epochs to catch the teacher between its first epoch checkpoint and its end.
    base = dict(TINY, n_train=1200, model_kwargs={"hidden": 64, "depth": 1}, epochs=10, batch_size=16,
                checkpoint_every=1)
    configs = expand_grid(base, methods=["sd_kd"], gt_weights=[0.3, 0.7], generations=[2], seeds=[0])
    reference = run_sweep(configs, tmp_path / "reference", progress=False)        # the same sweep, undisturbed

    # A dead node is noticed after 2 missed health checks 0.5 s apart (Ray's default: about 15 s).
    fast_checks = {"health_check_period_ms": 500, "health_check_failure_threshold": 2, "health_check_timeout_ms": 500}
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False,
                                                            "_system_config": fast_checks})
    try:
        workers = [cluster.add_node(num_cpus=1) for _ in range(2)]              # two nodes of one CPU each
        cluster.wait_for_nodes()
        raylets = {node.all_processes["raylet"][0].process.pid: node for node in workers}
        out = tmp_path / "cluster"
        outcome: dict = {}

        def sweep():
            try:
                outcome["records"] = run_sweep(configs, out, backend="ray", address=cluster.address, max_retries=3,
                                               progress=False)
            except BaseException as err:                # re-raised in the test's thread below
                outcome["error"] = err

        import threading

        driver = threading.Thread(target=sweep)
        started = time.monotonic()
        driver.start()
        folder = prefix_dir(configs[0], 0, out / "generations")
        from deepdistill.engine.runs import partial_path

        partial, done = partial_path(folder, 0), checkpoint_path(folder, 0)
        removed = None
        deadline = time.monotonic() + 120
        while removed is None and driver.is_alive() and time.monotonic() < deadline:
            pids = _ray_task_pids(f"deepdistill-{configs[0].prefix_id(0)}-g0")
            node = _node_of(pids[0], raylets) if pids else None
            if node is not None and partial.exists() and not done.exists():     # mid-generation
                epoch_at_removal = torch.load(partial, weights_only=True)["epoch"]
                cluster.remove_node(node, allow_graceful=False)                  # the node dies, its worker with it
                removed = node
            time.sleep(0.01)
        driver.join(timeout=240)
        assert not driver.is_alive(), "the sweep did not finish after a node died"
        print(f"sweep on the cluster, a node removed mid-way: {time.monotonic() - started:.1f} s")
        if "error" in outcome:
            raise outcome["error"]
        assert removed is not None, "the test did not catch the teacher mid-generation on a worker node"
        assert 0 <= epoch_at_removal < base["epochs"] - 1
        # Nothing lost: every run has its complete record, equal to the undisturbed sweep's in every result.
        for cfg, got, want in zip(configs, outcome["records"], reference, strict=True):
            assert got["run_id"] == want["run_id"] == cfg.run_id()
            for ga, gw in zip(got["generations"], want["generations"], strict=True):
                assert ga["val"] == gw["val"] and ga["test"] == gw["test"]
                assert [h["train_loss"] for h in ga["history"]] == [h["train_loss"] for h in gw["history"]]
            assert read_record(run_dir_for(cfg, out) / RECORD_FILE)["run_id"] == cfg.run_id()
        assert not [p for p in out.rglob("*") if p.name.endswith((".claim", ".partial.pt", ".tmp"))]
        # One folder per distinct generation (one teacher, two students): none trained twice elsewhere.
        assert len(list((out / "generations").iterdir())) == 3
    finally:
        cluster.shutdown()
