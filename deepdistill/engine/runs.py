"""The run folder: where a run lives, what its files are called, and reading them back.

One run (a chain of generations of one :class:`~deepdistill.core.config.TrainConfig`) lives in one folder;
in a sweep that folder is ``<sweep>/runs/<run_id>/`` (:func:`run_dir_for`), the id being a hash of
the config without its operational fields, so the same run has the same folder on every machine and
every restart. Its files (every one written atomically by :mod:`deepdistill.engine.train`)::

    config.json                    CONFIG_FILE: the config (a resume with a different one is refused)
    generation_{g}.pt              checkpoint_path(run_dir, g): a finished generation (selected weights, summary)
    generation_{g}.partial.pt      partial_path(run_dir, g): mid-generation state after the last checkpointed epoch
    generation_{g}.claim           claim_path(run_dir, g): while a process trains generation g (deepdistill.engine.claims)
    record.json                    RECORD_FILE: the results record, written once every generation is done

A record is complete when it parses, carries ``"complete": true`` and the schema :data:`SCHEMA`, and
holds every generation of its config (:func:`read_record`); anything else reads as ``None``
(:func:`inspect_record` says why). A checkpoint that cannot be read raises :class:`CorruptFileError`,
which names the file and what to do.

The generation cache of a sweep (``<sweep>/generations/``, :func:`generation_cache_dir`): runs that
differ only in later generations (``gt_weight``, ``temperature``, more generations) share their common
first generations. Generation ``g`` of a config is trained once, in the folder
:func:`prefix_dir` ``= <sweep>/generations/<prefix id>/`` named by the hash of the config of
generations ``0..g`` and the seed (:meth:`TrainConfig.prefix_id`), with the file names above; each
run's folder then gets the finished checkpoint as a hard link (a copy where links are impossible,
:func:`link_or_copy`), so that a run folder always holds all its generations.
"""
from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import torch

from deepdistill.core.config import TrainConfig
from deepdistill.core.data import DataSplits, load_dataset
from deepdistill.core.io import atomic_write, read_json
from deepdistill.core.models import build_model

__all__ = ["SCHEMA", "CONFIG_FILE", "RECORD_FILE", "RUNS_FOLDER", "GENERATIONS_FOLDER", "CorruptFileError", "run_id",
           "run_dir_for", "ensure_folder", "checkpoint_path", "partial_path", "claim_path", "generation_cache_dir", "prefix_dir",
           "link_or_copy", "generation_home", "link_generation", "read_record", "inspect_record", "is_finished",
           "load_checkpoint", "DATA_FIELDS", "splits_key", "load_splits", "SplitCache", "restore_generation",
           "load_generation"]

#: The schema of a run record (``record.json``).
SCHEMA = "deepdistill.record/1"
CONFIG_FILE = "config.json"
RECORD_FILE = "record.json"
#: A sweep folder keeps its runs in this sub-folder (next to its roll-up).
RUNS_FOLDER = "runs"
#: ... and the generations its runs share in this one.
GENERATIONS_FOLDER = "generations"


class CorruptFileError(ValueError):
    """A result file exists but cannot be read (truncated, overwritten, not ours); the message names it.

    ``path``: the file; ``reason``: what is wrong with it, in a few words.
    """

    def __init__(self, message: str, path=None, reason: str = ""):
        super().__init__(message)
        self.path, self.reason = path, reason


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


def claim_path(run_dir, generation: int) -> Path:
    """``run_dir/generation_{generation}.claim``: present while a process trains that generation there."""
    return Path(run_dir) / f"generation_{generation}.claim"


def generation_cache_dir(sweep_dir) -> Path:
    """``sweep_dir/generations``: the generations that the runs of a sweep share."""
    return Path(sweep_dir) / GENERATIONS_FOLDER


def prefix_dir(config: TrainConfig, generation: int, cache_dir) -> Path:
    """The folder in the generation cache ``cache_dir`` where generation ``generation`` of ``config`` is
    trained, once for every config with the same generations ``0..generation`` and seed."""
    return Path(cache_dir) / config.prefix_id(generation)


def ensure_folder(path, what: str = "folder") -> Path:
    """Create the folder ``path`` (and its parents) if missing; a file in its place (or in a parent's) is a
    :class:`CorruptFileError` that names the path and what to do, not a raw ``FileExistsError``.

    ``what`` says which folder it is (``"generation-cache folder"``, ``"run folder"``), for the message.
    """
    path = Path(path)
    for p in (path, *path.parents):
        if p.exists() and not p.is_dir():
            reason = "is a file, not a folder"
            where = f"{what} {str(path)!r}" if p == path else f"{str(p)!r} (a parent of the {what} {str(path)!r})"
            raise CorruptFileError(f"{where} {reason}; the toolkit writes only folders there. Move or delete that "
                                   "file, then run the same command again (what was in the folder is trained again).",
                                   p, reason)
        if p.is_dir():
            break
    path.mkdir(parents=True, exist_ok=True)
    return path


def link_or_copy(source, target) -> None:
    """Give ``target`` the content of the finished file ``source``: a hard link (no second copy on disk), or
    an atomic copy where the file system has none. An existing ``target`` is left as it is."""
    source, target = Path(source), Path(target)
    if target.exists():
        return
    ensure_folder(target.parent)
    try:
        os.link(source, target)
    except FileExistsError:
        pass
    except OSError:                 # another device, or no hard links there
        with open(source, "rb") as src, atomic_write(target, "wb") as out:
            shutil.copyfileobj(src, out)


def generation_home(config: TrainConfig, generation: int, run_dir, cache_dir=None) -> tuple[str, Path]:
    """``(key, folder)``: where generation ``generation`` of ``config``'s run is trained and kept, and the key
    that names that place for a scheduler. The one rule for every backend and for :func:`deepdistill.engine.train.train_run`:

    * without a generation cache (``cache_dir=None``): the run folder ``run_dir``, key ``"<run_id>/<generation>"``;
    * with one: the cache's :func:`prefix_dir`, key :meth:`TrainConfig.prefix_id`, shared by every run with the
      same generations ``0..generation``. A checkpoint that ``run_dir`` already holds (finished before, e.g. by a
      sweep without the cache) is offered to the cache first (:func:`link_or_copy`), so every run may share it.

    :func:`link_generation` gives the run folder the finished checkpoint from there.
    """
    if cache_dir is None:
        return f"{config.run_id()}/{generation}", Path(run_dir)
    folder = prefix_dir(config, generation, cache_dir)
    own = checkpoint_path(run_dir, generation)
    if own.exists():
        link_or_copy(own, checkpoint_path(folder, generation))
    return config.prefix_id(generation), folder


def link_generation(config: TrainConfig, generation: int, run_dir, cache_dir=None) -> None:
    """Give the run folder ``run_dir`` the finished checkpoint of ``generation`` from its home
    (:func:`generation_home`): a hard link or copy from the generation cache; nothing without a cache."""
    if cache_dir is not None:
        link_or_copy(checkpoint_path(prefix_dir(config, generation, cache_dir), generation),
                     checkpoint_path(run_dir, generation))


def inspect_record(path) -> tuple[dict | None, str | None]:
    """``(record, None)`` for a complete run record at ``path``; ``(None, None)`` when there is no file;
    ``(None, why)`` when a file is there but is not a complete record (unreadable, truncated, partial)."""
    path = Path(path)
    if not path.exists():
        return None, None
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as err:
        return None, f"cannot be read ({err.strerror or err})"
    except UnicodeDecodeError:
        return None, "is not valid JSON (not UTF-8 text: overwritten, or not ours)"
    record = read_json(path) if text.strip() else None
    if not isinstance(record, dict):
        return None, "is not valid JSON (truncated or overwritten?)" if text.strip() else "is empty"
    if record.get("schema") != SCHEMA:
        return None, f"has schema {record.get('schema')!r}, not {SCHEMA!r}"
    if record.get("complete") is not True:
        return None, "is not marked complete"
    config = record.get("config")
    if not isinstance(config, dict) or not all(isinstance(record.get(k), str) for k in ("run_id", "group_id")):
        return None, "lacks its run_id, group_id or config"
    gens = record.get("generations")
    if not isinstance(gens, list) or len(gens) != config.get("generations"):
        return None, "does not hold every generation of its config"
    for i, gen in enumerate(gens):
        # What the roll-up, the report and the log read from each generation.
        if not (isinstance(gen, dict) and all(k in gen for k in _GENERATION_KEYS)
                and all(isinstance(gen[k], dict) for k in ("val", "test"))):
            return None, f"has a malformed entry for generation {i}"
    return record, None


# The fields of a generation's entry in a record that readers rely on.
_GENERATION_KEYS = ("generation", "loss", "gt_weight", "temperature", "selected_epoch", "wall_time_s", "val", "test")


def read_record(path) -> dict | None:
    """The record at ``path`` if it is a complete run record, else ``None`` (missing, partial, corrupt)."""
    return inspect_record(path)[0]


def is_finished(record: dict | None, config: TrainConfig) -> bool:
    """Whether ``record`` (as :func:`read_record` returns it) is the finished record of ``config``'s run."""
    return record is not None and record["run_id"] == config.run_id()


def load_checkpoint(path, device="cpu") -> dict:
    """A checkpoint file (finished or partial) as saved by the training loop, its tensors on ``device``.

    Read with ``torch.load(..., weights_only=True)``: torch's restricted unpickler, which rebuilds
    tensors and plain containers (dict, list, tuple, str, numbers, None) and refuses everything else,
    so a file planted in a run folder or the generation cache can never run code. Everything the
    training loop stores (weights, optimiser and schedule state, summaries, histories) is of those
    kinds. A file that needs more (a checkpoint of an older version, or one the toolkit did not
    write) is refused with :class:`CorruptFileError`, naming the file and what to do; so is a file
    that exists but cannot be read (torch's own errors name no file). A missing file raises
    FileNotFoundError.
    """
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except (FileNotFoundError, MemoryError, torch.cuda.OutOfMemoryError):
        raise
    except OSError as err:
        reason = f"cannot be read: {err.strerror or err}"
        raise CorruptFileError(f"checkpoint {str(path)!r} {reason}; check its permissions, or delete it and run the "
                               "same command again.", path, reason) from None
    except pickle.UnpicklingError as err:
        if "weights only" not in str(err).lower():
            reason = f"UnpicklingError: {str(err).split('. ')[0].strip()}"
            raise CorruptFileError(f"checkpoint {str(path)!r} is corrupt ({reason}). Delete it and run the same "
                                   "command again: that generation is then trained again.", path, reason) from None
        # torch's own message suggests turning the restriction off, which would run whatever the file holds: never.
        reason = "holds Python objects beyond tensors and plain containers"
        raise CorruptFileError(
            f"checkpoint {str(path)!r} {reason} (an older deepdistill's checkpoint, or a file deepdistill did not "
            "write). The toolkit never unpickles such objects, since loading them could run code. Delete the file "
            "and run the same command again: that generation is then trained again.", path, reason) from None
    except Exception as err:       # torch raises RuntimeError, EOFError, ... for a bad file
        reason = f"{type(err).__name__}: {str(err).split('. ')[0].strip()}"
        raise CorruptFileError(f"checkpoint {str(path)!r} is corrupt ({reason}). Delete it and run the same command "
                               "again: that generation is then trained again.", path, reason) from None
    if not isinstance(state, dict) or "model" not in state:
        reason = "not a deepdistill checkpoint (no model state)"
        raise CorruptFileError(f"checkpoint {str(path)!r} is {reason}. Delete it and run the same command again: that "
                               "generation is then trained again.", path, reason)
    return state


#: The config fields that identify a run's data splits (everything :func:`load_splits` reads): two configs
#: that agree on them train and are evaluated on the same data.
DATA_FIELDS = ("dataset", "data_root", "seed", "label_noise", "noise_type", "val_fraction", "n_train", "data_options")


def splits_key(config: TrainConfig) -> str:
    """The canonical JSON of ``config``'s :data:`DATA_FIELDS`: equal for configs with the same data splits."""
    return json.dumps({k: getattr(config, k) for k in DATA_FIELDS}, sort_keys=True, default=str)


def load_splits(config: TrainConfig) -> DataSplits:
    """The data splits ``config``'s run trains and is evaluated on (the same call for training and reading back).
    Reads exactly the fields :data:`DATA_FIELDS` names."""
    return load_dataset(config.dataset, root=config.data_root, seed=config.seed, label_noise=config.label_noise,
                        noise_type=config.noise_type, val_fraction=config.val_fraction, n_train=config.n_train,
                        **config.data_options)


class SplitCache:
    """The data splits loaded in this process, by :func:`splits_key` (MNIST-1D is generated on every load, about
    1 s; a sweep worker or a figure asks for the same splits once per run and generation).

    ``max_size``: how many data sets are kept (``None``: all; a sweep worker keeps 1, since sweeps rarely mix
    data sets and each holds its tensors). ``cache(config)`` returns :func:`load_splits`'s result.
    """

    def __init__(self, max_size: int | None = None):
        if max_size is not None and (isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1):
            raise ValueError(f"`max_size` must be None or an integer >= 1; got {max_size!r}.")
        self.max_size, self._splits = max_size, {}

    def __call__(self, config: TrainConfig) -> DataSplits:
        key = splits_key(config)
        if key not in self._splits:
            if self.max_size is not None and len(self._splits) >= self.max_size:
                self._splits.pop(next(iter(self._splits)))           # the oldest
            self._splits[key] = load_splits(config)
        return self._splits[key]

    def __len__(self) -> int:
        return len(self._splits)

    def clear(self) -> None:
        self._splits.clear()


def restore_generation(state: dict, config: TrainConfig, splits: DataSplits, device="cpu"):
    """``(model, summary)`` from a finished generation's checkpoint ``state`` (as :func:`load_checkpoint`
    returns it): the network with its selected weights, on ``device`` and in eval mode, and its summary."""
    model = build_model(config.model, splits.input_shape, splits.num_classes, **config.model_kwargs).to(device)
    model.load_state_dict(state["model"])
    return model.eval(), state["summary"]


def load_generation(run_dir, generation: int, config: TrainConfig, splits: DataSplits, device="cpu"):
    """``(model, summary)`` of one finished generation of the run in ``run_dir`` (:func:`restore_generation`)."""
    return restore_generation(load_checkpoint(checkpoint_path(run_dir, generation), device), config, splits, device)
