"""Results: one JSON record per run, and a CSV roll-up across runs (mean and sd over seeds).

A record holds everything needed to trust and regroup a number later: the full config, the seed,
library versions, the device, wall time, and per generation the loss settings, the selected epoch
(and the selection rule), the per-epoch history, and the metrics on validation and test computed by
:func:`deepdistill.core.metrics.summarize` (accuracy, nll, ece, brier, entropy, diversity) -- one metric
implementation shared by every package. Records carry ``"complete": true`` and are written
atomically, so a record that parses is a finished run; :func:`deepdistill.engine.runs.read_record` returns
``None`` for anything else.

The roll-up has one row per (config without seed, generation): runs that differ only in their seed
are grouped (``TrainConfig.group_id``), and every metric gets ``_mean`` and ``_sd`` columns (sample
standard deviation, ddof = 1; empty with a single seed).
"""
from __future__ import annotations

import datetime
import math
import platform
import statistics
import sys
from pathlib import Path
from typing import Callable

from deepdistill.core.config import TrainConfig
from deepdistill.core.io import atomic_write_csv
from deepdistill.core.metrics import headline_metric
from deepdistill.engine.runs import RECORD_FILE, RUNS_FOLDER, SCHEMA, inspect_record, read_record  # noqa: F401 (read_record: re-exported)

__all__ = ["make_record", "collect_records", "rollup_rows", "write_rollup_csv", "write_rollup", "mean_sd", "describe_run",
           "library_versions", "device_description"]

# Config fields that name a group in the roll-up (all identity fields go into its group_id).
_GROUP_COLUMNS = ("dataset", "model", "method", "generations", "epochs", "n_train", "label_noise", "smoothing",
                  "ls_convention", "selection")


def library_versions() -> dict[str, str]:
    import numpy
    import torch

    try:
        from importlib.metadata import version
        ours = version("selfdistill")
    except Exception:  # not installed (run from a checkout)
        ours = "checkout"
    return {"python": platform.python_version(), "torch": torch.__version__, "numpy": numpy.__version__,
            "deepdistill": ours}


def _cpu_model() -> str:
    """The CPU's model name: ``platform.processor()`` is empty (or only ``x86_64``) on most Linux systems,
    where ``/proc/cpuinfo`` names the model."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.startswith("model name") and ":" in line:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "cpu"


def device_description(device) -> dict[str, str]:
    """The device a result was computed on. On a CPU also the vector instructions torch dispatches to
    (``capability``): two CPUs can train the same seed to results that differ in the last bits, and in a
    noisy selection (a grid's argmin) that can change the pick, so a record says which CPU made it."""
    import torch

    device = torch.device(device)
    if device.type == "cuda":
        return {"type": "cuda", "name": torch.cuda.get_device_name(device)}
    out = {"type": device.type, "name": _cpu_model()}
    if device.type == "cpu":
        out["capability"] = str(torch.backends.cpu.get_cpu_capability())
    return out


def make_record(config: TrainConfig, generations: list[dict], *, device, session_wall_time_s: float,
                data_meta: dict | None = None) -> dict:
    """The results record of a finished run (a plain JSON-able dict)."""
    if len(generations) != config.generations:
        raise ValueError(f"`generations` must hold one summary per generation ({config.generations}); got {len(generations)}.")
    dev = device_description(device)
    return {
        "schema": SCHEMA,
        "complete": True,
        "run_id": config.run_id(),
        "group_id": config.group_id(),
        "seed": config.seed,
        "config": config.to_dict(),
        "selection": config.selection,
        "versions": library_versions(),
        "device": dev,
        "amp_active": config.amp != "off" and dev["type"] == "cuda",
        # Training time summed over generations (each measured when it was trained, across resumes).
        "wall_time_s": float(sum(g["wall_time_s"] for g in generations)),
        "session_wall_time_s": float(session_wall_time_s),
        "finished_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "data": {k: v for k, v in (data_meta or {}).items() if isinstance(v, (str, int, float, bool, type(None)))},
        "generations": generations,
    }


def collect_records(root, unreadable: list | None = None) -> list[dict]:
    """Every complete record under ``root`` (any depth), in path order.

    ``unreadable``: a list that receives ``(path, why)`` for every ``record.json`` that is there but is not
    a complete record (truncated, not JSON, another schema), so that a caller can name them.
    """
    out = []
    for path in sorted(Path(root).rglob(RECORD_FILE)):
        record, problem = inspect_record(path)
        if record is not None:
            out.append(record)
        elif problem is not None and unreadable is not None:
            unreadable.append((path, problem))
    return out


def write_rollup(sweep_dir, log: Callable[[str], None] | None = None) -> list[dict]:
    """Write ``sweep_dir/rollup.csv`` from every complete record under ``sweep_dir/runs``; return its rows.
    Every unreadable record is named (through ``log``, else on stderr): it is left out of the roll-up."""
    unreadable: list = []
    records = collect_records(Path(sweep_dir) / RUNS_FOLDER, unreadable=unreadable)
    for path, why in unreadable:
        message = f"warning: record {path} {why}; it is left out of the roll-up (run the sweep again to rewrite it)"
        if log is not None:
            log(message)
        else:
            print(message, file=sys.stderr)
    return write_rollup_csv(records, Path(sweep_dir) / "rollup.csv")


def mean_sd(values) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof = 1) over seeds, skipping ``None`` and non-finite values.

    The sd of a single value is NaN (an empty CSV cell), not 0: one seed measures no spread. Both are
    NaN when no value is left. The one implementation for the roll-up, the weight-estimation summary
    and the report.
    """
    values = [float(v) for v in values if v is not None]
    values = [v for v in values if math.isfinite(v)]
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else math.nan)


def describe_run(what: str, record: dict) -> str:
    """One log line for a finished run: ``what`` (e.g. "finished"), its id, method, weight, seed and the
    test accuracy (regression: test MSE) of every generation (the same line on every backend)."""
    cfg, gens = record["config"], record["generations"]
    metric = headline_metric(gens[-1]["test"])[0]
    return (f"{what} {record['run_id']}: {cfg['method']} gt_weight {cfg['gt_weight']} seed {cfg['seed']}: test {metric} "
            "by generation " + " ".join(f"{g['test'][metric]:.3f}" for g in gens)
            + f" (last {gens[-1]['test'][metric]:.3f})")


def rollup_rows(records: list[dict]) -> list[dict]:
    """One row per (group, generation): group columns, seeds, and ``{split}_{metric}_{mean,sd}``."""
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        for gen in r["generations"]:
            groups.setdefault((r["group_id"], gen["generation"]), []).append((r, gen))
    rows = []
    for (group_id, generation), members in sorted(groups.items(), key=lambda kv: (str(kv[0][0]), kv[0][1])):
        r0, g0 = members[0]
        row = {"group_id": group_id, **{k: r0["config"].get(k) for k in _GROUP_COLUMNS},
               "generation": generation, "loss": g0["loss"], "gt_weight": g0["gt_weight"],
               "temperature": g0["temperature"], "n_seeds": len(members),
               "seeds": " ".join(str(r["seed"]) for r, _ in members)}
        for split in ("val", "test"):
            for metric in g0[split]:
                row[f"{split}_{metric}_mean"], row[f"{split}_{metric}_sd"] = mean_sd([g[split][metric] for _, g in members])
        row["selected_epoch_mean"], row["selected_epoch_sd"] = mean_sd([g["selected_epoch"] for _, g in members])
        row["wall_time_s_mean"], row["wall_time_s_sd"] = mean_sd([g["wall_time_s"] for _, g in members])
        rows.append(row)
    return rows


def write_rollup_csv(records: list[dict], path) -> list[dict]:
    """Write :func:`rollup_rows` to ``path`` atomically (NaN written as an empty cell); return the rows."""
    rows = rollup_rows(records)
    atomic_write_csv(path, rows)
    return rows
