"""Files the toolkit reads may have been planted or corrupted by anyone who can write to a shared
folder: reading them never runs code, and the error names the file.

The rule: the toolkit never unpickles a file it did not just write in the same process. Checkpoints
are read with ``torch.load(..., weights_only=True)`` (torch's restricted unpickler); CIFAR's python
batches with a restricted unpickler that allows numpy arrays, lists, bytes and str only.
"""
from __future__ import annotations

import json
import os
import pickle
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from deepdistill.core.config import TrainConfig
from deepdistill.core.data import load_dataset
from deepdistill.engine.runs import (RECORD_FILE, CorruptFileError, checkpoint_path, load_checkpoint, prefix_dir,
                                     read_record, run_dir_for)
from deepdistill.drivers.sweep import expand_grid, run_sweep

TINY = dict(dataset="digits", model="mlp", model_kwargs={"hidden": 8, "depth": 1}, n_train=200, epochs=1,
            batch_size=64, lr=1e-2, device="cpu")


class _Evil:
    """Unpickling this runs ``os.system(command)``: the payload of a planted file."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return (os.system, (self.command,))


def _plant(path: Path, marker: Path) -> None:
    """Replace ``path`` by a checkpoint whose summary would create ``marker`` when unpickled (a new
    inode, so a hard link elsewhere keeps the old content, as a planted file would)."""
    path.unlink()
    torch.save({"model": {}, "summary": _Evil(f"touch {marker}")}, path)


def test_the_payload_would_run_under_plain_unpickling(tmp_path):
    # The test's own premise: the planted file does run code when unpickled without restriction.
    path, marker = tmp_path / "evil.pt", tmp_path / "PWNED"
    path.touch()
    _plant(path, marker)
    torch.load(path, weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("where", ["generation cache", "run folder"])
def test_a_planted_checkpoint_runs_nothing_and_is_named(tmp_path, where, one_thread):
    configs = expand_grid(TINY, methods=["sd_kd"], gt_weights=[0.5], generations=[2], seeds=[0])
    out = tmp_path / "sweep"
    run_sweep(configs, out)
    config = configs[0]
    run_dir = run_dir_for(config, out)
    target = (checkpoint_path(prefix_dir(config, 0, out / "generations"), 0) if where == "generation cache"
              else checkpoint_path(run_dir, 0))
    marker = tmp_path / "PWNED"
    _plant(target, marker)
    (run_dir / RECORD_FILE).unlink()               # so that the next sweep reads the checkpoints again
    # A student at another weight shares the cached teacher: the next sweep reads it from the cache.
    again = configs + expand_grid(TINY, methods=["sd_kd"], gt_weights=[0.25], generations=[2], seeds=[0])
    with pytest.raises(Exception) as err:
        run_sweep(again, out)
    assert not marker.exists(), "a planted checkpoint ran code"
    assert str(target) in str(err.value)
    # Read directly, the checkpoint is refused with the reason and what to do.
    with pytest.raises(CorruptFileError) as direct:
        load_checkpoint(target)
    assert not marker.exists()
    message = str(direct.value)
    assert str(target) in message and "never unpickles" in message and "Delete the file" in message
    assert "weights_only=False" not in message     # torch's own hint would run the payload


def test_checkpoints_the_loop_writes_load_under_the_restricted_unpickler(tmp_path, one_thread):
    # Everything the training loop stores must pass weights_only=True, or every resume would be refused.
    config = TrainConfig(**{**TINY, "epochs": 2}, method="sd_kd", gt_weight=0.5, generations=2, checkpoint_every=1,
                         out_dir=str(tmp_path / "run"))
    from deepdistill.engine.train import train_run
    train_run(config)
    for g in range(2):
        state = torch.load(checkpoint_path(tmp_path / "run", g), weights_only=True)
        assert set(state) == {"model", "summary"} and isinstance(state["summary"], dict)


def _cifar_folder(root: Path) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"batch_label": b"fake", b"data": rng.integers(0, 256, (6, 3072), dtype=np.uint8),
                 b"labels": [int(v) for v in rng.integers(0, 10, 6)], b"filenames": [b"x.png"] * 6}
        with open(folder / name, "wb") as fh:
            pickle.dump(batch, fh, protocol=2)
    return folder


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_a_genuine_cifar_batch_loads_with_every_pickle_protocol(tmp_path, protocol):
    folder = _cifar_folder(tmp_path)
    with open(folder / "test_batch", "rb") as fh:
        batch = pickle.load(fh)
    with open(folder / "test_batch", "wb") as fh:
        pickle.dump(batch, fh, protocol=protocol)
    d = load_dataset("cifar10", root=tmp_path, val_fraction=0.25, seed=0)
    assert d.test.tensors[1].tolist() == batch[b"labels"]


def test_a_planted_cifar_batch_runs_nothing_and_is_named(tmp_path):
    folder = _cifar_folder(tmp_path)
    marker = tmp_path / "PWNED"
    with open(folder / "data_batch_3", "wb") as fh:
        pickle.dump({b"data": _Evil(f"touch {marker}"), b"labels": [0]}, fh)
    with pytest.raises(ValueError) as err:
        load_dataset("cifar10", root=tmp_path, val_fraction=0.25, seed=0)
    assert not marker.exists(), "a planted CIFAR batch ran code"
    message = str(err.value)
    assert str(folder / "data_batch_3") in message and "posix.system" in message or "os.system" in message
    assert "restricted unpickler" in message


def test_a_cifar_batch_of_the_wrong_shape_is_named(tmp_path):
    folder = _cifar_folder(tmp_path)
    with open(folder / "test_batch", "wb") as fh:
        pickle.dump([1, 2, 3], fh, protocol=2)
    with pytest.raises(ValueError, match="test_batch is not a CIFAR python batch: it holds a list"):
        load_dataset("cifar10", root=tmp_path, val_fraction=0.25, seed=0)


# ------------------------------------------------------------------------------------------------
# Every other file the toolkit reads, planted or corrupted in turn: nothing runs, nothing is lost
# ------------------------------------------------------------------------------------------------

def _payload(marker: Path) -> bytes:
    """A pickle that runs ``touch marker`` when unpickled: what an attacker would plant in any file."""
    return pickle.dumps(_Evil(f"touch {marker}"))


def _snapshot(folder: Path) -> dict:
    """The bytes of every checkpoint under ``folder`` (what a planted file must never cost)."""
    return {p: p.read_bytes() for p in sorted(folder.rglob("generation_*.pt")) if ".partial" not in p.name}


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("finished") / "sweep"
    configs = expand_grid(TINY, methods=["sd_kd"], gt_weights=[0.5], generations=[2], seeds=[0])
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_sweep(configs, out, progress=False)
    finally:
        torch.set_num_threads(saved)
    return out, configs


def _copy_sweep(finished_sweep, tmp_path):
    import shutil

    out, configs = finished_sweep
    target = tmp_path / "sweep"
    shutil.copytree(out, target)
    return target, configs


def _no_training(monkeypatch):
    import deepdistill.engine.train as train

    def refuse(*args, **kwargs):
        raise AssertionError("a finished generation was trained again")

    monkeypatch.setattr(train, "train_generation", refuse)


@pytest.mark.parametrize("content", ["pickle payload", "truncated", "a JSON list", "malformed generations", "no run id",
                                     "nested too deep"])
def test_a_planted_or_corrupt_record_runs_nothing_is_named_and_is_rewritten_from_the_checkpoints(
        finished_sweep, tmp_path, monkeypatch, content, capsys, one_thread):
    out, configs = _copy_sweep(finished_sweep, tmp_path)
    record_path = run_dir_for(configs[0], out) / RECORD_FILE
    marker = tmp_path / "PWNED"
    good = json.loads(record_path.read_text())
    planted = {"pickle payload": _payload(marker),
               "truncated": record_path.read_bytes()[:200],
               "a JSON list": b"[1, 2, 3]",
               "malformed generations": json.dumps({**good, "generations": [1, 2]}).encode(),
               "no run id": json.dumps({k: v for k, v in good.items() if k != "run_id"}).encode(),
               "nested too deep": b"[" * 100_000}[content]
    record_path.write_bytes(planted)
    checkpoints = _snapshot(out)
    _no_training(monkeypatch)
    log = []
    with pytest.warns(RuntimeWarning, match=re.escape(str(record_path))):
        records = run_sweep(configs, out, log=log.append, progress=False)
    assert not marker.exists()
    # Rewritten from the checkpoints (nothing trained), equal to the original in every result.
    assert records[0]["generations"] == good["generations"] and read_record(record_path)["run_id"] == good["run_id"]
    assert _snapshot(out) == checkpoints
    # The roll-up names an unreadable record too, and leaves it out.
    record_path.write_bytes(planted)
    from deepdistill.cli import main

    assert main(["rollup", str(out)]) == 0
    assert f"unreadable: {record_path}" in capsys.readouterr().err
    assert not marker.exists()


@pytest.mark.parametrize("content", ["pickle payload", "empty", "JSON of the wrong types", "a dead process",
                                     "nested too deep"])
def test_a_planted_claim_file_runs_nothing_and_is_taken_over(tmp_path, content, one_thread):
    import socket

    from deepdistill.engine.runs import claim_path

    out = tmp_path / "sweep"
    config = expand_grid(TINY, methods=["sd_kd"], gt_weights=[0.5], generations=[2], seeds=[0])[0]
    claim = claim_path(prefix_dir(config, 0, out / "generations"), 0)
    claim.parent.mkdir(parents=True)
    marker = tmp_path / "PWNED"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    claim.write_bytes({"pickle payload": _payload(marker), "empty": b"", "nested too deep": b"[" * 60000,
                       "JSON of the wrong types": json.dumps({"host": ["x"], "pid": "1", "token": 5, "what": {}}).encode(),
                       "a dead process": json.dumps({"host": socket.gethostname(), "pid": int(dead.stdout),
                                                     "pid_namespace": os.readlink("/proc/self/ns/pid")
                                                     if os.path.exists("/proc/self/ns/pid") else None,
                                                     "token": "t", "started": 0.0, "what": "x"}).encode()}[content])
    if content != "a dead process":
        os.utime(claim, (time.time() - 3600, time.time() - 3600))      # an hour without a heartbeat: stale
    log = []
    record = run_sweep([config], out, log=log.append, progress=False, claim_timeout=60)[0]
    assert not marker.exists()
    assert record["run_id"] == config.run_id() and not claim.exists()
    assert any("taking over the stale claim" in line for line in log)


def test_planted_driver_entries_run_nothing_and_the_sweep_finishes(tmp_path):
    # generations/.drivers/ holds one JSON entry per live sweep driver: a pickle, a huge file, JSON of the
    # wrong types and an entry of a dead process are read as "no driver" (the dead one removed); none runs.
    out = tmp_path / "sweep"
    drivers = out / "generations" / ".drivers"
    drivers.mkdir(parents=True)
    marker = tmp_path / "PWNED"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    import socket
    (drivers / "pickle.json").write_bytes(_payload(marker))
    (drivers / "huge.json").write_bytes(b"[" * 10_000_000)
    (drivers / "types.json").write_text(json.dumps({"host": ["x"], "pid": "1", "pid_namespace": 5}))
    (drivers / "dead.json").write_text(json.dumps({"host": socket.gethostname(), "pid": int(dead.stdout),
                                                   "pid_namespace": os.readlink("/proc/self/ns/pid")
                                                   if os.path.exists("/proc/self/ns/pid") else None}))
    configs = expand_grid(TINY, methods=["sd_kd"], gt_weights=[0.5], generations=[2], seeds=[0])
    lines = []
    run_sweep(configs, out, jobs=2, log=lines.append, progress=False)
    assert not marker.exists() and not (drivers / "dead.json").exists()
    assert not any("other sweep(s)" in line for line in lines)
    assert sorted(p.name for p in drivers.iterdir()) == ["huge.json", "pickle.json", "types.json"]   # ours is gone


@pytest.mark.parametrize("content", ["pickle payload", "a JSON list", "another config"])
def test_a_planted_run_config_runs_nothing_is_refused_by_name_and_nothing_is_overwritten(
        finished_sweep, tmp_path, monkeypatch, content, one_thread):
    out, configs = _copy_sweep(finished_sweep, tmp_path)
    run_dir = run_dir_for(configs[0], out)
    marker = tmp_path / "PWNED"
    stored = json.loads((run_dir / "config.json").read_text())
    planted = {"pickle payload": _payload(marker), "a JSON list": b"[1, 2]",
               "another config": json.dumps({**stored, "lr": 0.5}).encode()}[content]
    (run_dir / "config.json").write_bytes(planted)
    (run_dir / RECORD_FILE).unlink()                   # so that the run folder is read again
    checkpoints = _snapshot(out)
    _no_training(monkeypatch)
    with pytest.raises(RuntimeError) as err:
        run_sweep(configs, out, progress=False)
    assert not marker.exists()
    message = str(err.value)
    assert str(run_dir) in message
    expected = "was made with a different config" if content == "another config" else "is not a run config"
    assert expected in message and ("delete it" in message or "delete the folder" in message)
    assert (run_dir / "config.json").read_bytes() == planted and _snapshot(out) == checkpoints


def test_a_planted_partial_checkpoint_runs_nothing_and_its_generation_restarts(tmp_path, one_thread):
    from deepdistill.engine.runs import partial_path
    from deepdistill.engine.train import train_run

    config = TrainConfig(**{**TINY, "epochs": 2}, method="sd_kd", gt_weight=0.5, generations=2, checkpoint_every=1,
                         out_dir=str(tmp_path / "run"))
    run_dir = tmp_path / "run"
    train_run(config, through_generation=0)
    teacher = checkpoint_path(run_dir, 0).read_bytes()
    marker = tmp_path / "PWNED"
    partial = partial_path(run_dir, 1)
    torch.save({"model": {}, "optimizer": _Evil(f"touch {marker}"), "settings": {}}, partial)
    with pytest.warns(RuntimeWarning, match=rf"partial checkpoint {re.escape(repr(str(partial)))} is unreadable "
                                            r"\(holds Python objects beyond tensors.*generation 1 restarts"):
        record = train_run(config)
    assert not marker.exists()
    assert record["complete"] and checkpoint_path(run_dir, 0).read_bytes() == teacher and not partial.exists()


def test_a_planted_rollup_is_named_by_the_report_and_runs_nothing(finished_sweep, tmp_path, capsys):
    from analysis.__main__ import main

    out, _ = _copy_sweep(finished_sweep, tmp_path)
    marker = tmp_path / "PWNED"
    rollup = out / "rollup.csv"
    rollup.write_bytes(_payload(marker))
    assert main(["report", "--results", str(out), "--out", str(tmp_path / "report")]) == 0
    assert not marker.exists()
    err = capsys.readouterr().err
    assert f"unreadable: {rollup} is not a readable CSV table" in err
    report = (tmp_path / "report" / "report.md").read_text()
    assert "`rollup.csv` is not a readable CSV table" in report
    assert "the run records (no roll-up found)" in report          # the records stand in for the roll-up


# Saved weight estimates: WeightEstimate.load (studies/weight_results.py).

@pytest.fixture(scope="module")
def saved_estimate(tmp_path_factory):
    from torch.utils.data import DataLoader, TensorDataset

    from deepdistill import estimate_gt_weight_for_model, make_train_fn

    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x, y = torch.tensor(x / 16.0, dtype=torch.float32), torch.tensor(y)
    train = DataLoader(TensorDataset(x[:300], y[:300]), batch_size=64, shuffle=True,
                       generator=torch.Generator().manual_seed(0))
    val = DataLoader(TensorDataset(x[300:500], y[300:500]), batch_size=128)
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train_fn = make_train_fn(_EstimateNet, train, method="sd_kd", temperature=4.0, epochs=1, lr=1e-2, seed=0)
        out = tmp_path_factory.mktemp("estimate") / "estimate"
        estimate_gt_weight_for_model(train_fn, val, estimators=("two_run",), out_dir=out)
    finally:
        torch.set_num_threads(saved)
    return out


class _EstimateNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(64, 8), torch.nn.ReLU())
        self.head = torch.nn.Linear(8, 10)

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        return self.head(self.body(x))


def _copy_estimate(saved_estimate, tmp_path) -> Path:
    import shutil

    target = tmp_path / "estimate"
    shutil.copytree(saved_estimate, target)
    return target


def test_a_planted_saved_estimate_network_runs_nothing(saved_estimate, tmp_path):
    from deepdistill.studies.weight_results import WeightEstimate

    out = _copy_estimate(saved_estimate, tmp_path)
    WeightEstimate.load(out, _EstimateNet)                         # the genuine files load
    marker = tmp_path / "PWNED"
    torch.save({"body.0.weight": _Evil(f"touch {marker}")}, out / "teacher.pt")
    with pytest.raises(Exception):
        WeightEstimate.load(out, _EstimateNet)
    assert not marker.exists(), "a planted teacher.pt ran code"
    # The numbers alone (no network asked for) never read the network files.
    assert WeightEstimate.load(out).teacher is None and not marker.exists()


def test_a_planted_saved_estimate_json_runs_nothing_and_is_named(saved_estimate, tmp_path):
    from deepdistill.studies.weight_results import WeightEstimate

    out = _copy_estimate(saved_estimate, tmp_path)
    marker = tmp_path / "PWNED"
    (out / "estimate_weight.json").write_bytes(_payload(marker))
    with pytest.raises(FileNotFoundError, match=re.escape(str(out / "estimate_weight.json"))):
        WeightEstimate.load(out, _EstimateNet)
    assert not marker.exists()


@pytest.mark.parametrize("damage", ["planted", "garbage", "truncated", "missing"])
def test_b8_a_damaged_saved_estimate_network_is_named(saved_estimate, tmp_path, damage):
    from deepdistill.studies.weight_results import WeightEstimate

    out = _copy_estimate(saved_estimate, tmp_path)
    path = out / "teacher.pt"
    if damage == "planted":
        torch.save({"body.0.weight": _Evil(f"touch {tmp_path / 'PWNED'}")}, path)
    elif damage == "garbage":
        path.write_bytes(b"not a checkpoint at all")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    else:
        path.unlink()
    with pytest.raises(Exception) as err:
        WeightEstimate.load(out, _EstimateNet)
    assert str(path) in str(err.value) and "weights_only=False" not in str(err.value)
    assert not (tmp_path / "PWNED").exists()


# ------------------------------------------------------------------------------------------------
# Read-only check: no module unpickles a file other than through the restricted unpicklers
# ------------------------------------------------------------------------------------------------

def test_no_module_unpickles_a_file_unrestricted():
    root = Path(__file__).resolve().parents[1]
    risky = re.compile(r"weights_only\s*=\s*False|pickle\.loads?\(|allow_pickle\s*=\s*True|cloudpickle|joblib\.load|"
                       r"dill\.load|shelve\.open|marshal\.loads?\(|yaml\.load\(|pd\.read_pickle|torch\.load\((?![^)]*weights_only\s*=\s*True)")
    found = []
    for package in ("kerneldistill", "deepdistill", "analysis", "examples", "bench"):
        for path in sorted((root / package).rglob("*.py")):
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                code = line.split("#", 1)[0]
                if risky.search(code) and "``" not in code:
                    found.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    assert not found, "unrestricted unpickling of a file:\n" + "\n".join(found)
