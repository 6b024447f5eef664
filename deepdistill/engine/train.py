"""A run of multi-generation self-distillation: its folder, resumable, its generations shared and claimed.

Generation 0 trains a network on the labels. Generation ``g >= 1`` trains a FRESH network of the
same architecture (its own seeded initialisation) against the frozen, selected generation ``g-1``
and the labels, with the loss its method names (:data:`deepdistill.core.config.METHODS`) and the
generation's ``gt_weight`` (weight on the ground truth) and ``temperature``
(``docs/theory.md`` section 4; [BA21], [ZS20], [S21]). One generation is trained by the loop of
:mod:`deepdistill.engine.loop` (:func:`~deepdistill.engine.loop.train_generation`); this module chains
the generations of a run and keeps them on disk.

The run folder holds the config, one checkpoint per finished generation, the mid-generation state of
the generation in progress (removed at its end) and, once every generation is done, the results
record; :mod:`deepdistill.engine.runs` names these files and reads them back, every write is atomic
(:mod:`deepdistill.core.io`). A generation lives in the run folder or, shared by every run with the same
first generations, in the sweep's generation cache (:func:`deepdistill.engine.runs.generation_home`), and is
trained there under a claim (:mod:`deepdistill.engine.claims`).

:func:`train_run` trains (or resumes) one run in its folder; :func:`run_one` does so for a run of a
sweep folder (``<sweep>/runs/<run_id>/``), the unit that every sweep backend executes.

The names of the loop (``train_generation``, ``resolve_device``, ``predict_logits``, ``predict_features``,
``evaluate``, ``NonFiniteLossError``) are re-exported here, so ``from deepdistill.engine.train import ...`` keeps
working.
"""
from __future__ import annotations

import os
import sys
import time
import warnings
from pathlib import Path
from typing import Callable

import torch

from deepdistill.core.config import PER_GENERATION_FIELDS, GenerationSettings, TrainConfig, config_diff, ensure_config
from deepdistill.core.io import atomic_torch_save, atomic_write_json, read_json
from deepdistill.core.metrics import headline_metric
from deepdistill.engine.claims import DEFAULT_STALE_AFTER, Holder, heartbeat_interval, try_claim
from deepdistill.engine.loop import (EpochHook, NonFiniteLossError, _determinism, _read_partial, evaluate,
                                     predict_features, predict_logits, resolve_device, train_generation)
from deepdistill.engine.results import describe_run, make_record
from deepdistill.engine.runs import (CONFIG_FILE, RECORD_FILE, CorruptFileError, checkpoint_path, claim_path,
                                     ensure_folder, generation_cache_dir, generation_home, inspect_record, is_finished, link_generation, load_checkpoint,
                                     load_splits, partial_path, restore_generation, run_dir_for)

__all__ = ["train_run", "run_one", "train_generation", "load_run_data", "resolve_device", "predict_logits",
           "predict_features", "evaluate", "NonFiniteLossError", "ConfigMismatchError", "GenerationBusy"]


class ConfigMismatchError(ValueError):
    """A run folder holds a run made with a different config."""


class GenerationBusy(Exception):
    """Another live process holds the claim on a generation this call would train (with ``wait=False``)."""

    def __init__(self, holder: Holder, generation: int):
        super().__init__(f"generation {generation} is being trained by {holder.describe()}")
        self.holder, self.generation = holder, generation


# ------------------------------------------------------------------------------------------------
# A run: every generation, checkpointed and resumable
# ------------------------------------------------------------------------------------------------

def _check_config(config: TrainConfig, run_dir: Path) -> None:
    """Refuse a run folder made with a different config (per-generation fields: see _load_finished)."""
    path = run_dir / CONFIG_FILE
    stored = read_json(path)
    if stored is None and path.exists() or stored is not None and not isinstance(stored, dict):
        # Not ours (planted, or overwritten): never guessed at, nor silently replaced.
        raise CorruptFileError(f"{str(path)!r} is not a run config (a JSON object of TrainConfig fields); delete it "
                               "to have this command write its own, or use another out_dir.", path, "not a run config")
    if stored is not None:
        # Operational fields and knobs the method never reads (see TrainConfig.identity) may differ.
        unread = tuple(set(config.to_dict()) - set(config.identity()))
        differ = config_diff(stored, config.to_dict(), ignore=unread + PER_GENERATION_FIELDS)
        if differ:
            details = "; ".join(f"{k}: {stored.get(k)!r} in the folder, {getattr(config, k, None)!r} now" for k in differ)
            raise ConfigMismatchError(
                f"run folder {str(run_dir)!r} was made with a different config; fields that differ: {differ} "
                f"({details}). Use another out_dir, or delete the folder to start over."
            )


def _check_settings(stored: dict, settings: GenerationSettings, path: Path) -> None:
    now = settings.to_dict()
    differ = [k for k in now if stored.get(k) != now[k]]
    if differ:
        raise ConfigMismatchError(
            f"{str(path)!r} was trained with different settings for generation {settings.generation}; fields that "
            f"differ: {differ} (" + "; ".join(f"{k}: {stored.get(k)!r} there, {now[k]!r} now" for k in differ)
            + "). Use another out_dir, or delete the folder to start over."
        )



def _load_finished(config: TrainConfig, run_dir: Path, device: torch.device, log=None) -> dict[int, dict]:
    """Checkpoints of the finished generations, after checking every checkpoint's settings (finished
    or partial) against the config, so that a refused resume is refused before anything is written."""
    finished = {}
    for g in range(config.generations):
        done, partial = checkpoint_path(run_dir, g), partial_path(run_dir, g)
        if done.exists():
            finished[g] = load_checkpoint(done, device)
            _check_settings(finished[g]["summary"], config.generation_settings(g), done)
        else:
            state = _read_partial(partial, g, "cpu", log)
            if state is not None:
                _check_settings(state["settings"], config.generation_settings(g), partial)
    return finished


def _read_existing_record(run_dir: Path, log=None) -> dict | None:
    """The run folder's complete record, or ``None``; an unreadable one is named (it is then written anew
    from the run's checkpoints, which a record only summarises)."""
    record, problem = inspect_record(run_dir / RECORD_FILE)
    if problem is not None:
        message = (f"record {str(run_dir / RECORD_FILE)!r} {problem}; the run is finished again from its checkpoints "
                   "and the record rewritten.")
        warnings.warn(message, RuntimeWarning, stacklevel=3)
        if log:
            log(f"warning: {message}")
    return record


def _obtain_generation(config: TrainConfig, g: int, folder: Path, *, splits, data, teacher_fn: Callable, device,
                       claim_timeout: float, wait: bool, adopt_from: Path | None = None,
                       on_epoch_end: EpochHook | None = None, log=None):
    """``(state, model or None)`` of generation ``g`` of ``config`` in ``folder`` (a run folder, or the
    generation cache's folder of that prefix): read when its checkpoint is there, else trained here.

    Training happens under a claim (:mod:`deepdistill.engine.claims`): while another live process holds it,
    this call waits for that process's checkpoint (``wait=True``; a stale claim is taken over) or
    raises :class:`GenerationBusy` (``wait=False``, for a scheduler that has other work). The claim is
    checked after every epoch, so a process whose claim was taken over stops.
    ``adopt_from``: a run folder whose partial checkpoint of ``g`` (from before the cache) is moved in.
    """
    done = checkpoint_path(folder, g)
    ensure_folder(folder, f"folder of generation {g}")
    said_waiting = False
    while True:
        if done.exists():
            return load_checkpoint(done, device), None
        what = f"generation {g} of {config.method} seed {config.seed} (run {config.run_id()})"
        claim = try_claim(claim_path(folder, g), what, claim_timeout, log=log)
        if isinstance(claim, Holder):
            if not wait:
                raise GenerationBusy(claim, g)
            note = claim.waiting_note(claim_timeout)
            if not said_waiting and (log or note):    # an unreadable claim is named even without a log
                message = f"generation {g}: {note}" if note else \
                    f"generation {g} is being trained by {claim.describe()}; waiting for it"
                (log or (lambda m: print(m, file=sys.stderr, flush=True)))(message)
            said_waiting = True
            time.sleep(min(heartbeat_interval(claim_timeout), 2.0))
            continue
        with claim:
            if done.exists():          # finished by another process just before we claimed it
                continue
            # Temporary files of this generation's checkpoints left by a process killed mid-write (only the
            # claim's holder writes them, and the claim is ours now).
            for stale in (*folder.glob(f".{checkpoint_path(folder, g).name}.*.tmp"),
                          *folder.glob(f".{partial_path(folder, g).name}.*.tmp")):
                stale.unlink(missing_ok=True)
            partial = partial_path(folder, g)
            if adopt_from is not None and partial_path(adopt_from, g).exists() and not partial.exists():
                os.replace(partial_path(adopt_from, g), partial)
            settings = config.generation_settings(g)
            if log:
                log(f"generation {g}: training in {folder}")
            model, summary = train_generation(config, settings, splits, data,
                                              teacher_fn() if settings.uses_teacher else None, device,
                                              partial_path=partial, on_epoch_end=on_epoch_end, log=log,
                                              check=claim.check)
            state = {"model": model.state_dict(), "summary": summary}
            atomic_torch_save(state, done, guard=claim.check)
            partial.unlink(missing_ok=True)
            return state, model


def load_run_data(config: TrainConfig, device: torch.device, splits=None):
    """``(splits, data)``: the config's DataSplits (``splits`` when given: already loaded by the caller),
    and its six tensors (x/y of train, val, test) on ``device``."""
    splits = load_splits(config) if splits is None else splits
    # Small data sets stay on the device as whole tensors; batches are index slices (no DataLoader).
    data = {}
    for part in ("train", "val", "test"):
        x, y = getattr(splits, part).tensors
        data[f"x_{part}"], data[f"y_{part}"] = x.to(device), y.to(device)
    return splits, data


def train_run(config: TrainConfig | dict, run_dir=None, *, on_epoch_end: EpochHook | None = None,
              log: Callable[[str], None] | None = None, progress: bool | None = None,
              through_generation: int | None = None, cache_dir=None, claim_timeout: float = DEFAULT_STALE_AFTER,
              wait: bool = True, splits=None) -> dict | None:
    """Train every generation of ``config`` in ``run_dir`` (default ``config.out_dir``); return the record.

    Resumes what the folder already holds: finished generations are loaded, not retrained; a
    generation interrupted mid-way restarts after its last checkpointed epoch (an unreadable partial
    checkpoint is discarded with a warning). A folder whose ``record.json`` already covers this config
    is returned as is. ``progress``: a tqdm bar over generations (``None``: only when stderr is a
    terminal). A dict ``config`` is validated into a :class:`TrainConfig` here, once.

    ``through_generation``: train (or load) only generations ``0..through_generation`` and return
    ``None`` without writing ``record.json``. The Ray backend (:mod:`deepdistill.drivers.ray_backend`) trains
    one generation per task this way; a record is only ever written for the whole run, so an
    unfinished chain never leaves a record that looks complete.

    ``cache_dir``: a generation cache (:func:`deepdistill.engine.runs.generation_cache_dir`): each generation
    is taken from there, or trained there for every run that shares it, and linked into ``run_dir``.
    Each generation is trained under a claim (:mod:`deepdistill.engine.claims`, ``claim_timeout`` seconds
    without a heartbeat before a claim is stale): a generation that another process is training is
    waited for (``wait=False``: :class:`GenerationBusy` is raised instead). ``splits``: the config's data,
    already loaded (:func:`deepdistill.engine.runs.load_splits`; a sweep worker loads a data set once for all its tasks).
    """
    config = ensure_config(config)
    run_dir = Path(run_dir if run_dir is not None else config.out_dir)
    return _train_run(config, run_dir, _read_existing_record(run_dir, log), on_epoch_end=on_epoch_end, log=log,
                      progress=progress, through_generation=through_generation, cache_dir=cache_dir,
                      claim_timeout=claim_timeout, wait=wait, splits=splits)


def run_one(config: TrainConfig, sweep_dir, *, log: Callable[[str], None] | None = None,
            progress: bool | None = None, share_generations: bool = True, claim_timeout: float = DEFAULT_STALE_AFTER,
            wait: bool = True) -> dict:
    """Train (or resume, or just load) ``config``'s run in ``sweep_dir/runs/<run_id>/``; return its record.

    The unit of work of every sweep backend: a pure function of its arguments and the files in that
    folder (no module state), so a remote worker can call it with a config and a shared folder. The
    record is read once; a finished run is returned without training. ``log`` gets one line per run.
    ``share_generations``: take generations from the sweep's generation cache (``sweep_dir/generations``)
    and train them there, once for every run that shares them (see :func:`train_run`).
    """
    run_dir = run_dir_for(config, sweep_dir)
    record = _read_existing_record(run_dir, log)
    if is_finished(record, config):
        if log:
            log(describe_run("skipped (finished)", record))
        return record
    # config.json of a sweep's run names the run folder as its out_dir (every backend writes the same).
    record = _train_run(config.replace(out_dir=str(run_dir)), run_dir, record, log=log, progress=progress,
                        cache_dir=generation_cache_dir(sweep_dir) if share_generations else None,
                        claim_timeout=claim_timeout, wait=wait)
    if log:
        log(describe_run("finished", record))
    return record


def _train_run(config: TrainConfig, run_dir: Path, existing: dict | None, *, on_epoch_end: EpochHook | None = None,
               log: Callable[[str], None] | None = None, progress: bool | None = None,
               through_generation: int | None = None, cache_dir=None, claim_timeout: float = DEFAULT_STALE_AFTER,
               wait: bool = True, splits=None) -> dict | None:
    """:func:`train_run` with the folder's record already read (``existing``: ``None`` if there is none)."""
    from tqdm.auto import tqdm

    last = config.generations - 1 if through_generation is None else through_generation
    if isinstance(last, bool) or not isinstance(last, int) or not 0 <= last < config.generations:
        raise ValueError(f"`through_generation` must be None or an integer in [0, {config.generations - 1}]; "
                         f"got {through_generation!r}.")
    run_dir.mkdir(parents=True, exist_ok=True)
    _check_config(config, run_dir)
    if is_finished(existing, config):
        return existing
    if existing is not None and existing["config"]["generations"] > config.generations:
        # Training fewer generations here would replace a complete, longer record with a shorter one.
        raise ConfigMismatchError(
            f"run folder {str(run_dir)!r} holds a finished run of {existing['config']['generations']} generations; "
            f"`generations`={config.generations} would replace its record. Ask for "
            f">= {existing['config']['generations']} generations, or use another out_dir."
        )
    device = resolve_device(config.device)
    finished = _load_finished(config, run_dir, device, log)
    atomic_write_json(run_dir / CONFIG_FILE, config.to_dict())

    started = time.perf_counter()
    # fork_rng: the run seeds torch's global generator (initial weights, dropout) and gives the
    # caller's generator back untouched afterwards.
    fork_devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices), _determinism(config.deterministic):
        splits, data = load_run_data(config, device, splits)
        generations = []
        # The teacher of generation g is generation g - 1, built from its checkpoint only when a
        # generation is trained here (a run whose generations are all finished builds no network).
        previous: dict = {"state": None, "model": None}

        def teacher():
            if previous["model"] is None:
                previous["model"] = restore_generation(previous["state"], config, splits, device)[0]
            return previous["model"]

        bar = tqdm(range(last + 1), desc=f"{config.method} seed {config.seed}", unit="gen",
                   disable=None if progress is None else not progress, leave=False)
        for g in bar:
            done_path = checkpoint_path(run_dir, g)
            model = None
            # Where generation g lives (the run folder, or the generation cache); a checkpoint this run
            # finished before is offered to the runs that share it.
            _, folder = generation_home(config, g, run_dir, cache_dir)
            if g in finished:                      # trained before: load it, never retrain it
                state = finished.pop(g)
                if log:
                    log(f"generation {g}: loaded from {done_path}")
            else:
                state, model = _obtain_generation(config, g, folder, splits=splits, data=data, teacher_fn=teacher,
                                                  device=device, claim_timeout=claim_timeout, wait=wait,
                                                  adopt_from=run_dir if cache_dir is not None else None,
                                                  on_epoch_end=on_epoch_end, log=log)
                if cache_dir is not None:
                    link_generation(config, g, run_dir, cache_dir)
                    # An epoch checkpoint of this run from before another run finished the shared generation.
                    partial_path(run_dir, g).unlink(missing_ok=True)
                if model is None and log:
                    log(f"generation {g}: loaded from {checkpoint_path(folder, g)}")
            summary = state["summary"]
            generations.append(summary)
            metric, value = headline_metric(summary["test"])
            bar.set_postfix({f"test_{metric}": f"{value:.3f}"})
            if log:
                log(f"generation {g} ({summary['loss']}, gt_weight {summary['gt_weight']:g}, T {summary['temperature']:g}): "
                    f"selected epoch {summary['selected_epoch']}, val {metric} {summary['val'][metric]:.4f}, "
                    f"test {metric} {value:.4f}")
            previous.update(state=state, model=model)
        bar.close()

    if last < config.generations - 1:
        return None
    record = make_record(config, generations, device=device, session_wall_time_s=time.perf_counter() - started,
                         data_meta=getattr(splits, "meta", {}))
    atomic_write_json(run_dir / RECORD_FILE, record)
    return record
