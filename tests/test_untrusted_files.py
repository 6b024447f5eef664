"""Files the toolkit reads may have been planted or corrupted by anyone who can write to a shared
folder: reading them never runs code, and the error names the file.

The rule: the toolkit never unpickles a file it did not just write in the same process. Checkpoints
are read with ``torch.load(..., weights_only=True)`` (torch's restricted unpickler); CIFAR's python
batches with a restricted unpickler that allows numpy arrays, lists, bytes and str only.
"""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from deepdistill.core.config import TrainConfig
from deepdistill.core.data import load_dataset
from deepdistill.engine.runs import RECORD_FILE, CorruptFileError, checkpoint_path, load_checkpoint, prefix_dir, run_dir_for
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
