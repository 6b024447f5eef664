"""Claims: one process trains a generation; a claim whose owner died or froze is taken over.

The unit tests use claim files written by hand; the last two use real processes (``python -m deepdistill
train`` in a subprocess): one killed with SIGKILL mid-generation, one frozen with SIGSTOP past a short
claim timeout and then woken up, which must see that it lost its claim and stop.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deepdistill.engine.claims import ClaimLostError, Claim, Holder, read_holder, try_claim
from deepdistill.engine.runs import checkpoint_path, claim_path, partial_path
from deepdistill.engine.train import GenerationBusy, train_run

ROOT = Path(__file__).resolve().parents[1]
# Small and slow enough per epoch (batch 16) that a subprocess is caught in the middle of generation 0.
CONFIG = dict(dataset="digits", model="mlp", model_kwargs={"hidden": 16, "depth": 1}, n_train=200, epochs=60,
              batch_size=16, lr=1e-2, method="sd_kd", generations=2, device="cpu", checkpoint_every=1)


def _write_claim(path: Path, *, host: str, pid: int, age_s: float, token: str = "theirs") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"host": host, "pid": pid, "token": token, "started": time.time() - age_s,
                                "what": "a test", "pid_namespace": _namespace()}))
    stamp = time.time() - age_s
    os.utime(path, (stamp, stamp))


def _namespace():
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


# ------------------------------------------------------------------------------------------------
# Claim files
# ------------------------------------------------------------------------------------------------

def test_a_claim_is_exclusive_beats_and_is_released(tmp_path):
    path = tmp_path / "g.claim"
    mine = try_claim(path, "generation 0", stale_after=0.5)
    assert isinstance(mine, Claim)
    holder = read_holder(path)
    assert (holder.host, holder.pid, holder.token) == (socket.gethostname(), os.getpid(), mine.token)
    other = try_claim(path, "generation 0", stale_after=0.5)     # held (by this very process): not taken
    assert isinstance(other, Holder) and other.token == mine.token
    time.sleep(0.8)                                               # > stale_after: only the heartbeat keeps it
    assert read_holder(path).age_s < 0.5
    assert isinstance(try_claim(path, stale_after=0.5), Holder)
    mine.check()                                                  # still ours
    mine.release()
    assert not path.exists()
    assert isinstance(try_claim(path, stale_after=0.5), Claim)


def test_stale_claims_are_taken_over_live_ones_are_not(tmp_path):
    log = []
    # Another host, heartbeat 10 s old: stale after 5 s, live with a 60 s timeout.
    _write_claim(tmp_path / "a.claim", host="elsewhere", pid=1, age_s=10)
    assert isinstance(try_claim(tmp_path / "a.claim", stale_after=60), Holder)
    taken = try_claim(tmp_path / "a.claim", stale_after=5, log=log.append)
    assert isinstance(taken, Claim) and "taking over the stale claim of elsewhere:1" in log[0]
    taken.release()
    # This host, a process that is gone: taken over at once, however long the timeout.
    _write_claim(tmp_path / "b.claim", host=socket.gethostname(), pid=_dead_pid(), age_s=0)
    assert isinstance(try_claim(tmp_path / "b.claim", stale_after=3600), Claim)
    # This host, a live process (our parent): not stale.
    _write_claim(tmp_path / "c.claim", host=socket.gethostname(), pid=os.getppid(), age_s=0)
    assert isinstance(try_claim(tmp_path / "c.claim", stale_after=3600), Holder)
    # Garbage in the file: judged by its age alone.
    (tmp_path / "d.claim").write_text("{not json")
    assert isinstance(try_claim(tmp_path / "d.claim", stale_after=3600), Holder)
    with pytest.raises(ValueError, match="stale_after"):
        try_claim(tmp_path / "e.claim", stale_after=0)


def test_an_owner_whose_claim_was_taken_over_stops(tmp_path):
    path = tmp_path / "g.claim"
    mine = try_claim(path, stale_after=60)
    path.unlink()                                         # as a take-over does: the file is someone else's now
    _write_claim(path, host="elsewhere", pid=1, age_s=0)
    with pytest.raises(ClaimLostError, match="taken over by elsewhere:1"):
        mine.check()
    mine.release()
    assert read_holder(path).host == "elsewhere"          # releasing a lost claim leaves the new owner's alone


def test_a_generation_claimed_by_another_live_process_is_not_trained(tmp_path):
    _write_claim(claim_path(tmp_path / "run", 0), host="elsewhere", pid=1, age_s=0)
    with pytest.raises(GenerationBusy, match="elsewhere:1"):
        train_run(dict(CONFIG, epochs=1), tmp_path / "run", wait=False)
    assert not checkpoint_path(tmp_path / "run", 0).exists()


# ------------------------------------------------------------------------------------------------
# Real processes
# ------------------------------------------------------------------------------------------------

def _start_train(run_dir: Path, *extra: str) -> subprocess.Popen:
    args = [sys.executable, "-m", "deepdistill", "train", "--dataset", "digits", "--model", "mlp", "--model-kwargs",
            json.dumps(CONFIG["model_kwargs"]), "--n-train", "200", "--epochs", str(CONFIG["epochs"]), "--batch-size",
            "16", "--lr", "0.01", "--method", "sd_kd", "--generations", "2", "--device", "cpu", "--out-dir",
            str(run_dir), *extra]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    return subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_until_mid_generation(process: subprocess.Popen, run_dir: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not (claim_path(run_dir, 0).exists() and partial_path(run_dir, 0).exists()):
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the training process never got going"
        time.sleep(0.02)


def test_the_claim_of_a_killed_worker_is_taken_over_and_its_run_resumed(tmp_path, one_thread):
    run_dir = tmp_path / "run"
    worker = _start_train(run_dir, "--quiet")
    _wait_until_mid_generation(worker, run_dir)
    worker.kill()                                        # SIGKILL: no clean-up, the claim file stays
    worker.wait()
    assert read_holder(claim_path(run_dir, 0)).pid == worker.pid
    log = []
    started = time.monotonic()
    # A timeout of an hour: a claim of a process gone from this host is taken over at once.
    record = train_run(CONFIG, run_dir, claim_timeout=3600, log=log.append)
    assert time.monotonic() - started < 600
    assert any(f"taking over the stale claim of {socket.gethostname()}:{worker.pid}" in line for line in log)
    assert any("resuming after epoch" in line for line in log)        # from the killed worker's epoch checkpoint
    alone = train_run(CONFIG, tmp_path / "alone")                    # the same run, never interrupted
    for a, b in zip(record["generations"], alone["generations"]):
        assert a["val"] == b["val"] and a["test"] == b["test"]
    assert sorted(p.name for p in run_dir.iterdir()) == ["config.json", "generation_0.pt", "generation_1.pt",
                                                         "record.json"]


def test_a_frozen_worker_is_taken_over_after_the_timeout_and_stops_when_it_wakes(tmp_path, one_thread):
    run_dir = tmp_path / "run"
    worker = _start_train(run_dir, "--claim-timeout", "1.5")
    try:
        _wait_until_mid_generation(worker, run_dir)
        worker.send_signal(signal.SIGSTOP)               # alive, but its heartbeat stops
        log = []
        started = time.monotonic()
        record = train_run(CONFIG, run_dir, claim_timeout=1.5, log=log.append)
        waited = [line for line in log if "is being trained by" in line]
        assert waited and f":{worker.pid}" in waited[0]     # it waited for the live claim first ...
        assert any("taking over the stale claim" in line for line in log)  # ... then took it over
        assert time.monotonic() - started >= 1.0
    finally:
        worker.send_signal(signal.SIGCONT)
    out, err = worker.communicate(timeout=120)
    assert worker.returncode == 2, err[-2000:]
    assert "was taken over by" in err and "Traceback" not in err
    assert record["generations"][-1]["test"] == train_run(CONFIG, run_dir)["generations"][-1]["test"]
    assert not list(run_dir.glob("*.partial.pt")) and not list(run_dir.glob("*.claim"))
