"""The deep figures drawn from your own sweep: its records and checkpoints are read, nothing is trained.

``python -m analysis figures NAME --results DIR`` and ``python -m analysis report --results DIR`` use
this module. ``DIR`` is what ``python -m deepdistill sweep --out-dir DIR`` writes (``DIR/runs/<run_id>/``
with ``record.json`` and ``generation_<g>.pt``); any folder holding run folders at any depth works.

:class:`SweepRuns` gives each figure's data step (:mod:`analysis.figures.deep`) the runs of the
sweep instead of the preset's, through the interface of :class:`~analysis.figures.deep_runs.PresetRuns`.
What each figure needs is checked first (:func:`missing_runs`); a figure whose runs are not there is
not drawn, and the reason names them. Series: a method with one group of runs (runs that differ
only in their seed) is drawn under its name; a method with several groups gets one series per group,
labelled with the settings that tell them apart (``sd_kd (gt_weight=0.25)``). The figures show one
data set and model: the pair with the most runs (the others are named in the log).
"""
from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Callable

from analysis.figures.deep import DEEP_FIGURES
from analysis.figures.spec import MissingRunsError
from deepdistill.engine import runs as run_files
from deepdistill.core.config import METHODS, OPERATIONAL_FIELDS, TrainConfig
from deepdistill.engine.runs import RECORD_FILE, checkpoint_path, read_record

__all__ = ["SweepRuns", "missing_runs", "draw_from_sweep", "find_runs"]

# The methods a figure shows; one absent from the sweep is left out of it (and the log says so).
_FIGURE_METHODS = {"deep_reliability": ("ce", "ls", "sd_kd"), "deep_penultimate": ("ce", "ls"),
                   "deep_stability": ("ce", "ls")}
# Methods whose generations >= 1 learn from a teacher (deep_diversity needs one).
_TEACHER_METHODS = sorted(m for m, s in METHODS.items() if s.uses_teacher)

# Each data split of a user's sweep is loaded once per process (runs.SplitCache: the one owner of the split
# fields and their cache; 4 splits at most in memory).
SPLITS = run_files.SplitCache(max_size=4)


def find_runs(sweep_dir) -> list[tuple[dict, Path]]:
    """``(record, run folder)`` of every complete run under ``sweep_dir`` (any depth), in path order;
    a run found twice (same run id) counts once."""
    found, seen = [], set()
    for path in sorted(Path(sweep_dir).rglob(RECORD_FILE)):
        record = read_record(path)
        if record is not None and record["run_id"] not in seen:
            seen.add(record["run_id"])
            found.append((record, path.parent))
    return found


def _setting(record: dict) -> dict:
    """The settings of a run's group: its config without the seed and the operational fields."""
    return {k: v for k, v in record["config"].items() if k not in OPERATIONAL_FIELDS and k != "seed"}


def _short(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


class SweepRuns:
    """The runs of a user's sweep folder, for the deep figures' data steps (nothing is ever trained)."""

    strict = False          # a method a figure names may be absent: the figure is drawn without it
    threads = None
    reliability_bins = 15   # [M19]'s bins
    projection_classes = (0, 1, 2)

    def __init__(self, sweep_dir):
        self.sweep_dir = Path(sweep_dir)
        found = find_runs(self.sweep_dir)
        if not found:
            raise MissingRunsError(f"no complete run record ({RECORD_FILE}) under {self.sweep_dir}; make a sweep there "
                                   f"with `python -m deepdistill sweep --out-dir {self.sweep_dir}`.")
        pairs = Counter((r["config"]["dataset"], r["config"]["model"]) for r, _ in found)
        (self.dataset, self.model), _ = pairs.most_common(1)[0]
        self.left_out = {f"{d}/{m}": n for (d, m), n in pairs.items() if (d, m) != (self.dataset, self.model)}
        self.records = [r for r, _ in found if (r["config"]["dataset"], r["config"]["model"]) == (self.dataset, self.model)]
        self._dirs = {r["run_id"]: d for r, d in found}
        self._labels = self._series_labels()

    def _series_labels(self) -> dict[str, str]:
        """group id -> series label: the method, plus the settings that differ between its groups."""
        groups: dict[str, dict[str, dict]] = {}
        for r in self.records:
            groups.setdefault(r["config"]["method"], {})[r["group_id"]] = _setting(r)
        labels = {}
        for method, by_group in groups.items():
            keys = sorted({k for s in by_group.values() for k in s})
            differ = [k for k in keys if len({repr(s.get(k)) for s in by_group.values()}) > 1]
            for gid, s in by_group.items():
                labels[gid] = method if not differ else f"{method} (" + ", ".join(
                    f"{k}={_short(s.get(k))}" for k in differ) + ")"
        return labels

    # -- the interface of analysis.figures.deep_runs.PresetRuns ----------------------------------------
    def comparison(self) -> list[dict]:
        return self.records

    def weight_grid(self) -> list[dict]:
        """The ``sd_kd`` runs of >= 2 generations that differ only in seed and gt_weight: the largest such set."""
        sets: dict[str, list[dict]] = {}
        for r in self.records:
            if r["config"]["method"] == "sd_kd" and r["config"]["generations"] >= 2:
                key = repr(sorted((k, repr(v)) for k, v in _setting(r).items() if k != "gt_weight"))
                sets.setdefault(key, []).append(r)
        best = max(sets.values(), key=lambda rs: len({x["generations"][1]["gt_weight"] for x in rs}), default=[])
        weights = sorted({r["generations"][1]["gt_weight"] for r in best})
        if len(weights) < 2:
            raise MissingRunsError(
                "deep_gt_weight needs runs of method sd_kd with at least 2 generations at 2 or more values of gt_weight "
                f"(all else equal); the sweep holds {len(best)} such run(s) at gt_weight {weights or 'none'}. Add them "
                f"with `python -m deepdistill sweep --methods sd_kd --gt-weight 0 0.5 1 --generations 2 ... --out-dir "
                f"{self.sweep_dir}`.")
        return best

    def weight_estimates(self) -> list[dict]:
        return []           # an estimate would train networks; the figure shows the sweep's grid alone

    def load(self, record: dict, generation: int):
        path = checkpoint_path(self._dirs[record["run_id"]], generation)
        if not path.is_file():
            raise MissingRunsError(f"checkpoint {path} is missing: the figure needs the network of generation "
                                   f"{generation} of run {record['run_id']} ({record['config']['method']}, seed "
                                   f"{record['seed']}).")
        config = TrainConfig.from_dict(record["config"])
        # The training loop's own call (deepdistill.engine.runs owns the split's fields and its cache).
        splits = SPLITS(config)
        model, _ = run_files.load_generation(path.parent, generation, config, splits, "cpu")
        return model, splits

    def label(self, record: dict) -> str:
        return self._labels[record["group_id"]]

    def of_method(self, records: list[dict], method: str, figure: str) -> list[dict]:
        """The runs of ``method``'s largest group (most seeds); ``[]`` when the sweep has none."""
        groups: dict[str, list[dict]] = {}
        for r in records:
            if r["config"]["method"] == method:
                groups.setdefault(r["group_id"], []).append(r)
        return max(groups.values(), key=len, default=[])


def missing_runs(name: str, runs: SweepRuns) -> str | None:
    """Why figure ``name`` cannot be drawn from the sweep (which runs are missing), or ``None`` if it can."""
    methods = sorted({r["config"]["method"] for r in runs.records})
    held = f"the sweep holds methods {methods} on {runs.dataset}/{runs.model}"
    if name == "deep_diversity":
        if not any(r["config"]["method"] in _TEACHER_METHODS and r["config"]["generations"] >= 2 for r in runs.records):
            return f"needs a run of a method with a teacher ({', '.join(_TEACHER_METHODS)}) of 2 or more generations; {held}"
    elif name == "deep_gt_weight":
        try:
            runs.weight_grid()
        except MissingRunsError as err:
            return str(err).removeprefix("deep_gt_weight ")
    elif name == "deep_reliability":
        if not {"ce", "ls", "sd_kd"} & set(methods):
            return f"needs runs of ce, ls or sd_kd; {held}"
    elif name in ("deep_penultimate", "deep_stability"):
        if not {"ce", "ls"} & set(methods):
            return f"needs runs of ce or ls (generation 0 with and without label smoothing); {held}"
    return None


def draw_from_sweep(names, sweep_dir, out_dir, log: Callable[[str], None] | None = None
                    ) -> tuple[dict[str, list[Path]], dict[str, str]]:
    """Draw the deep figures ``names`` from the sweep in ``sweep_dir`` into ``out_dir``.

    Returns ``(drawn, missing)``: ``{name: [table, pdf, png]}`` of the figures written, and
    ``{name: reason}`` of those that could not be (the reason names the runs they need). ``log`` gets
    one line per figure (``[k/N] NAME written``, or why not) and the data sets left out.
    """
    say = log or (lambda message: None)
    unknown = [n for n in names if n not in DEEP_FIGURES]
    if unknown:
        raise ValueError(f"figure(s) {unknown} do not read a sweep; figures drawn from --results: {list(DEEP_FIGURES)}.")
    runs = SweepRuns(sweep_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    say(f"{len(runs.records)} finished runs on {runs.dataset}/{runs.model} in {runs.sweep_dir}"
        + (f" (left out, other data sets/models: {runs.left_out})" if runs.left_out else ""))
    drawn, missing = {}, {}
    for i, name in enumerate(names, start=1):
        reason = missing_runs(name, runs)
        if reason is None:
            started = time.perf_counter()
            try:
                data_path = DEEP_FIGURES[name].data(out, False, runs=runs)
                drawn[name] = [Path(data_path), *DEEP_FIGURES[name].plot(Path(data_path), out)]
                absent = [m for m in _FIGURE_METHODS.get(name, ()) if not runs.of_method(runs.records, m, name)]
                say(f"[{i}/{len(names)}] {name} written ({time.perf_counter() - started:.1f} s): "
                    + ", ".join(p.name for p in drawn[name])
                    + (f" (without {', '.join(absent)}: not in the sweep)" if absent else ""))
                continue
            except MissingRunsError as err:
                reason = str(err)
        missing[name] = reason
        say(f"[{i}/{len(names)}] {name} not drawn: {reason}")
    return drawn, missing
