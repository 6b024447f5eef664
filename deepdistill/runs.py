"""The run folder: where a run lives, what its files are called, and reading them back.

One run (a chain of generations of one :class:`~deepdistill.config.TrainConfig`) lives in one folder;
in a sweep that folder is ``<sweep>/runs/<run_id>/`` (:func:`run_dir_for`), the id being a hash of
the config without its operational fields, so the same run has the same folder on every machine and
every restart. Its files (every one written atomically by :mod:`deepdistill.train`)::

    config.json                    CONFIG_FILE: the config (a resume with a different one is refused)
    generation_{g}.pt              checkpoint_path(run_dir, g): a finished generation (selected weights, summary)
    generation_{g}.partial.pt      partial_path(run_dir, g): mid-generation state after the last checkpointed epoch
    record.json                    RECORD_FILE: the results record, written once every generation is done

A record is complete when it parses, carries ``"complete": true`` and the schema :data:`SCHEMA`, and
holds every generation of its config (:func:`read_record`); anything else reads as ``None``.
"""
from __future__ import annotations

from pathlib import Path

import torch

from deepdistill.config import TrainConfig
from deepdistill.data import DataSplits, load_dataset
from deepdistill.io import read_json
from deepdistill.models import build_model

__all__ = ["SCHEMA", "CONFIG_FILE", "RECORD_FILE", "RUNS_FOLDER", "run_id", "run_dir_for", "checkpoint_path",
           "partial_path", "read_record", "is_finished", "load_checkpoint", "load_splits", "restore_generation",
           "load_generation"]

#: The schema of a run record (``record.json``).
SCHEMA = "deepdistill.record/1"
CONFIG_FILE = "config.json"
RECORD_FILE = "record.json"
#: A sweep folder keeps its runs in this sub-folder (next to its roll-up).
RUNS_FOLDER = "runs"


def run_id(config: TrainConfig) -> str:
    """The stable id of a run: a hash of its config without operational fields (:meth:`TrainConfig.run_id`)."""
    return config.run_id()


def run_dir_for(config: TrainConfig, sweep_dir) -> Path:
    """The folder of ``config``'s run in the sweep folder ``sweep_dir``: ``sweep_dir/runs/<run_id>``."""
    return Path(sweep_dir) / RUNS_FOLDER / config.run_id()


def checkpoint_path(run_dir, generation: int) -> Path:
    """``run_dir/generation_{generation}.pt``: the finished generation (selected weights and its summary)."""
    return Path(run_dir) / f"generation_{generation}.pt"


def partial_path(run_dir, generation: int) -> Path:
    """``run_dir/generation_{generation}.partial.pt``: the generation's state after its last checkpointed epoch."""
    return Path(run_dir) / f"generation_{generation}.partial.pt"


def read_record(path) -> dict | None:
    """The record at ``path`` if it is a complete run record, else ``None`` (missing, partial, corrupt)."""
    record = read_json(path)
    if not isinstance(record, dict) or record.get("schema") != SCHEMA or record.get("complete") is not True:
        return None
    gens = record.get("generations")
    if not isinstance(gens, list) or len(gens) != record.get("config", {}).get("generations"):
        return None
    return record


def is_finished(record: dict | None, config: TrainConfig) -> bool:
    """Whether ``record`` (as :func:`read_record` returns it) is the finished record of ``config``'s run."""
    return record is not None and record["run_id"] == config.run_id()


def load_checkpoint(path, device="cpu") -> dict:
    """A checkpoint file (finished or partial) as saved by the training loop, its tensors on ``device``."""
    # weights_only=False: our own files hold summaries and optimiser state besides the tensors.
    return torch.load(path, map_location=device, weights_only=False)


def load_splits(config: TrainConfig) -> DataSplits:
    """The data splits ``config``'s run trains and is evaluated on (the same call for training and reading back)."""
    return load_dataset(config.dataset, root=config.data_root, seed=config.seed, label_noise=config.label_noise,
                        noise_type=config.noise_type, val_fraction=config.val_fraction, n_train=config.n_train,
                        **config.data_options)


def restore_generation(state: dict, config: TrainConfig, splits: DataSplits, device="cpu"):
    """``(model, summary)`` from a finished generation's checkpoint ``state`` (as :func:`load_checkpoint`
    returns it): the network with its selected weights, on ``device`` and in eval mode, and its summary."""
    model = build_model(config.model, splits.input_shape, splits.num_classes, **config.model_kwargs).to(device)
    model.load_state_dict(state["model"])
    return model.eval(), state["summary"]


def load_generation(run_dir, generation: int, config: TrainConfig, splits: DataSplits, device="cpu"):
    """``(model, summary)`` of one finished generation of the run in ``run_dir`` (:func:`restore_generation`)."""
    return restore_generation(load_checkpoint(checkpoint_path(run_dir, generation), device), config, splits, device)
