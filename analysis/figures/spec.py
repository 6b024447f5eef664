"""The figure contract: every figure is a data step that writes a tidy table and a plot step that reads it.

A :class:`FigureSpec` pairs the two (the layout of jpreiss/reproducible_papers): ``data(out_dir, fast)``
computes the numbers with fixed seeds and writes one tidy CSV (one row per observation, one column
per variable) or one NPZ, and returns its path; ``plot(data_path, out_dir)`` reads only that file and
writes ``<name>.pdf`` and ``<name>.png`` through :func:`analysis.plotting.save_figure`. So a figure
can be restyled without recomputing it, and its numbers can be checked without looking at it.
``fast=True`` asks the data step for a small size that runs in seconds (tests and CI).

The small writers below are for data steps, so that no figure module writes its own; they write
atomically through :func:`deepdistill.core.io.atomic_write`.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from deepdistill.core.io import atomic_write

__all__ = ["FigureSpec", "MissingRunsError", "write_csv", "read_csv", "write_npz", "figure_caption"]


class MissingRunsError(ValueError):
    """A data step cannot find the runs its figure needs (the message names what is missing)."""


@dataclass(frozen=True)
class FigureSpec:
    """One regenerable figure.

    name : the figure's name, also the stem of its PDF/PNG files.
    data : ``data(out_dir, fast) -> Path`` writes a tidy CSV or an NPZ in ``out_dir`` and returns its path.
    plot : ``plot(data_path, out_dir) -> list[Path]`` writes the PDF and PNG and returns their paths.
    description : one line for ``python -m analysis list`` (what the figure is, in general).
    caption : ``caption(data_path) -> str``, optional: the report's caption, built from the table the
        data step wrote, so that it names only the runs present: one sentence on what the figure shows,
        one on what it found (a measured number). Without one the report shows ``description``.
    fast_report : whether ``python -m analysis report --fast`` (the main job) draws it; a figure whose
        data step takes tens of seconds even at its fast size (a claim's own figure, which reruns its
        claim) is drawn by ``python -m analysis figures NAME`` and by the full report.
    """

    name: str
    data: Callable[[Path, bool], Path]
    plot: Callable[[Path, Path], list[Path]]
    description: str
    caption: Callable[[Path], str] | None = None
    fast_report: bool = True


def figure_caption(spec: FigureSpec, data_path) -> str:
    """The report's caption of ``spec``'s figure drawn from ``data_path``: ``spec.caption(data_path)``, or
    ``spec.description`` for a figure without one."""
    if spec.caption is None:
        return spec.description
    return spec.caption(Path(data_path))


def write_csv(path, columns: Mapping[str, Sequence]) -> Path:
    """Write equal-length columns as a CSV with a header row, atomically.

    Floats are written with ``repr`` precision, so reading back gives the same numbers.
    """
    if not columns:
        raise ValueError("`columns` must hold at least one column; got an empty mapping.")
    lengths = {k: len(v) for k, v in columns.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"`columns` must all have the same length; got lengths {lengths}.")
    target = Path(path)
    with atomic_write(target, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(list(columns))
        for row in zip(*columns.values()):
            writer.writerow([v.item() if isinstance(v, np.generic) else v for v in row])
    return target


def read_csv(path) -> dict[str, np.ndarray]:
    """Read a CSV (e.g. written by :func:`write_csv`) into columns.

    A column of integers becomes int64, a column of numbers float64 (empty cells NaN), any other
    column an object array of strings.
    """
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows:
        raise ValueError(f"{path} is empty: expected a header row; rerun the figure's data step.")
    header, body = rows[0], rows[1:]
    out = {}
    for j, key in enumerate(header):
        raw = [r[j] for r in body]
        try:
            out[key] = np.array([int(v) for v in raw], dtype=np.int64)
            continue
        except ValueError:
            pass
        try:
            # An empty cell in a numeric column is a missing value (e.g. an sd over one seed): NaN.
            out[key] = np.array([float(v) if v != "" else np.nan for v in raw], dtype=np.float64)
        except ValueError:
            out[key] = np.array(raw, dtype=object)
    return out


def write_npz(path, **arrays) -> Path:
    """``np.savez_compressed``, atomically. ``path`` should end in ``.npz``."""
    if Path(path).suffix != ".npz":
        raise ValueError(f"`path` must end in .npz (numpy appends it otherwise); got {str(path)!r}.")
    target = Path(path)
    with atomic_write(target, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    return target
