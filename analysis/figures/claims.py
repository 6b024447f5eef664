"""The claims' summary figure: every registered claim's measured number against the paper's and its criterion.

``claims_summary`` is generic over :data:`kerneldistill.claims.REGISTRY`: a claim registered by any
module appears in it without a change here. Its data step runs every claim
(:func:`kerneldistill.claims.run_claims`, ``fast`` as asked) and writes one row per claim to
``claims_summary.csv``; the report's Claims section reads the same table. Its plot step draws one row
per claim: the headline number the claim measured (``ClaimResult.measured_value``, a dot coloured by
PASS or FAIL), the paper's number where it states one (``published_value``, an open diamond) and the
interval that passes (``accept``, a grey band), each row on its own scale (log where its numbers span
more than two decades). A claim without a headline number (an ordering, a sign) is drawn by its verdict.

Per-claim figures live in their own modules, ``analysis/figures/claims_<topic>.py``, each with a
registry dict of :class:`~analysis.figures.spec.FigureSpec` (the pattern of
``analysis/figures/kernel_extensions.py``), imported in ``analysis/figures/__init__.py`` and added to
its ``_SOURCES``, one line each.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from analysis.figures.spec import FigureSpec, read_csv, write_csv
from analysis.plotting import PALETTE, new_figure, save_figure

__all__ = ["CLAIM_FIGURES", "SUMMARY_COLUMNS", "claims_summary_columns"]

#: The columns of ``claims_summary.csv``, one row per claim.
SUMMARY_COLUMNS = ("claim", "paper", "result", "measured_value", "published_value", "accept_low", "accept_high",
                   "published", "measured", "criterion", "seconds")

_PASS, _FAIL = PALETTE[2], PALETTE[3]


def claims_summary_columns(results) -> dict[str, list]:
    """The summary table's columns from a list of :class:`~kerneldistill.claims.ClaimResult`."""
    cols = {c: [] for c in SUMMARY_COLUMNS}
    for r in results:
        lo, hi = r.accept
        for key, value in (("claim", r.claim), ("paper", r.paper), ("result", r.verdict),
                           ("measured_value", float(r.measured_value)), ("published_value", float(r.published_value)),
                           ("accept_low", float(lo)), ("accept_high", float(hi)), ("published", r.published),
                           ("measured", r.measured), ("criterion", r.criterion), ("seconds", float(r.seconds))):
            cols[key].append(value)
    return cols


def _summary_data(out_dir: Path, fast: bool) -> Path:
    from threadpoolctl import threadpool_limits

    from kerneldistill.claims import run_claims

    with threadpool_limits(limits=1):  # small eigendecompositions: BLAS threads only contend on shared cores
        results = run_claims(fast=fast)
    return write_csv(Path(out_dir) / "claims_summary.csv", claims_summary_columns(results))


def _row_positions(value, published, low, high):
    """Map one row's numbers to [0, 1]: ``(x_value, x_published, x_low, x_high, log)`` (NaN where absent).

    The finite numbers span [0.1, 0.9] of the row; an infinite bound of the band runs to the edge.
    Log scale where every finite number is > 0 and they span more than two decades (a tolerance of
    1e-8 beside an error of 1e-15).
    """
    numbers = np.array([value, published, low, high], dtype=float)
    finite = numbers[np.isfinite(numbers)]
    # A lower bound of 0 (an error's tolerance interval) does not rule out a log scale: it is the left edge.
    nonzero = finite[finite != 0.0]
    log = bool(nonzero.size and np.all(finite >= 0) and np.all(nonzero > 0) and nonzero.max() / nonzero.min() > 100)
    if log:
        # a lower bound of 0 on a log scale is the left edge, as -inf is
        numbers = np.where(numbers > 0, np.log10(np.where(numbers > 0, numbers, 1.0)),
                           np.where(np.isnan(numbers), np.nan, -np.inf))
        finite = numbers[np.isfinite(numbers)]
    if finite.size == 0:
        return (math.nan,) * 4 + (log,)
    lo, hi = float(finite.min()), float(finite.max())
    if hi == lo:
        lo, hi = lo - 1.0, hi + 1.0
    pos = 0.1 + 0.8 * (numbers - lo) / (hi - lo)
    pos = np.where(np.isposinf(numbers), 1.0, np.where(np.isneginf(numbers), 0.0, pos))
    return (*map(float, pos), log)


def _summary_plot(data_path: Path, out_dir: Path) -> list[Path]:
    d = read_csv(data_path)
    names = [str(c) for c in d["claim"]]
    count = len(names)
    fig, ax = new_figure("full", height=max(1.6, 0.32 * count + 0.8))
    for i in range(count):
        y = count - 1 - i
        passed = str(d["result"][i]) == "PASS"
        colour = _PASS if passed else _FAIL
        xv, xp, xl, xh, log = _row_positions(d["measured_value"][i], d["published_value"][i],
                                             d["accept_low"][i], d["accept_high"][i])
        ax.axhline(y, color="0.85", lw=0.5, zorder=0)
        if np.isfinite(xl) and np.isfinite(xh):
            ax.fill_betweenx([y - 0.25, y + 0.25], xl, xh, color="0.8", lw=0, zorder=1)
        if np.isfinite(xp):
            ax.plot([xp], [y], "D", mfc="none", mec="0.2", ms=5, zorder=3)
        if np.isfinite(xv):
            ax.plot([xv], [y], "o", color=colour, ms=5, zorder=4)
            text = f"{d['result'][i]}  measured {d['measured_value'][i]:.3g}"
            if np.isfinite(d["published_value"][i]):
                text += f", published {d['published_value'][i]:.3g}"
            if log:
                text += " (log)"
        else:
            ax.plot([0.5], [y], "s", color=colour, ms=5, zorder=4)
            text = f"{d['result'][i]}  (no headline number)"
        ax.text(1.02, y, text, va="center", ha="left", fontsize=6, color=colour, transform=ax.get_yaxis_transform(),
                clip_on=False)
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(-0.7, count - 0.3)
    ax.set_yticks(range(count), names[::-1])
    ax.set_xticks([])
    ax.set_xlabel("each row on its own scale: grey = accepted range, diamond = published, dot = measured")
    ax.set_title(f"claims: {sum(str(r) == 'PASS' for r in d['result'])}/{count} pass")
    return save_figure(fig, out_dir, "claims_summary")


CLAIM_FIGURES: dict[str, FigureSpec] = {
    spec.name: spec
    for spec in (
        FigureSpec("claims_summary", _summary_data, _summary_plot,
                   "every registered claim: measured against published number and accepted range, PASS/FAIL"),
    )
}
