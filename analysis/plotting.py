"""Figure style and figure I/O shared by every figure of the toolkit.

One style file (``analysis/paper.mplstyle``: Times-like serif, two-column paper sizes, the Okabe-Ito
colour-blind-safe cycle, thin spines, no top/right box, no grid, 300 dpi PNG) and three helpers:

- :func:`use_style` applies it;
- :func:`new_figure` makes a styled figure at a paper width ("column" ~3.4 in, "full" ~7 in);
- :func:`save_figure` writes ``name.pdf`` and ``name.png`` atomically and closes the figure.

Figures are built on the Agg canvas directly (``matplotlib.figure.Figure``), not through pyplot: no
display is needed, no global backend is switched under a user's notebook, and no figure is kept
alive by pyplot's figure manager when a script forgets to close it.
"""
from __future__ import annotations

import inspect
import sys
from pathlib import Path

import matplotlib
import matplotlib.style
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from deepdistill.core.io import atomic_write

__all__ = ["PALETTE", "STYLE_PATH", "WIDTHS", "use_style", "new_figure", "save_figure"]

STYLE_PATH = Path(__file__).with_name("paper.mplstyle")

#: Okabe & Ito (2008) colour-blind-safe palette, the order of the style's colour cycle.
PALETTE = [
    "#0072B2",  # blue
    "#E69F00",  # orange
    "#009E73",  # bluish green
    "#D55E00",  # vermillion
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#F0E442",  # yellow
    "#000000",  # black
]

#: Figure widths in inches: one column and the full text width of a two-column paper.
WIDTHS = {"column": 3.4, "full": 7.0}

# Height of one row of panels is 3/4 of a panel's width, kept between these bounds (inches) so that a
# full-width single panel is not a square and a row of five panels is still legible.
_ROW_HEIGHT_BOUNDS = (1.6, 2.6)


def use_style() -> None:
    """Apply ``analysis/paper.mplstyle`` to matplotlib's global rcParams (idempotent)."""
    matplotlib.style.use(str(STYLE_PATH))


def _width_inches(width) -> float:
    if isinstance(width, str):
        if width not in WIDTHS:
            raise ValueError(f"`width` must be one of {sorted(WIDTHS)} or a number of inches; got {width!r}.")
        return WIDTHS[width]
    if isinstance(width, (int, float)) and not isinstance(width, bool) and width > 0:
        return float(width)
    raise ValueError(f"`width` must be one of {sorted(WIDTHS)} or a positive number of inches; got {width!r}.")


# Keyword arguments that Figure.subplots takes itself; every other keyword goes to each Axes
# (e.g. projection="polar", xscale="log").
_SUBPLOTS_KEYS = set(inspect.signature(Figure.subplots).parameters) - {"self", "nrows", "ncols"}


def new_figure(width="column", height=None, nrows: int = 1, ncols: int = 1, **subplot_kw):
    """A styled figure with a grid of axes, sized for a paper.

    Parameters
    ----------
    width : "column" (3.4 in), "full" (7 in) or a number of inches.
    height : inches; default ``nrows`` rows of ``clip(0.75 * width / ncols, 1.6, 2.6)`` inches.
    nrows, ncols : the grid of panels.
    **subplot_kw : ``sharex``, ``sharey``, ``squeeze``, ``width_ratios``, ``height_ratios`` and
        ``gridspec_kw`` go to :meth:`Figure.subplots`; any other keyword (``projection``, ``xscale``
        ...) goes to every Axes.

    Returns
    -------
    fig, axes : as :func:`matplotlib.pyplot.subplots` (one Axes when ``nrows == ncols == 1``, else an
        array unless ``squeeze=False``).
    """
    for arg, value in (("nrows", nrows), ("ncols", ncols)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"`{arg}` must be an integer >= 1; got {value!r}.")
    use_style()
    w = _width_inches(width)
    if height is None:
        lo, hi = _ROW_HEIGHT_BOUNDS
        height = nrows * min(max(0.75 * w / ncols, lo), hi)
    elif not isinstance(height, (int, float)) or isinstance(height, bool) or height <= 0:
        raise ValueError(f"`height` must be a positive number of inches or None; got {height!r}.")
    fig = Figure(figsize=(w, float(height)), layout="constrained")
    FigureCanvasAgg(fig)  # attach the Agg canvas: rendering needs no display
    direct = {k: v for k, v in subplot_kw.items() if k in _SUBPLOTS_KEYS}
    per_axes = {k: v for k, v in subplot_kw.items() if k not in _SUBPLOTS_KEYS}
    if per_axes:
        direct["subplot_kw"] = {**direct.get("subplot_kw", {}), **per_axes}
    axes = fig.subplots(nrows, ncols, **direct)
    return fig, axes


def save_figure(fig: Figure, out_dir, name: str) -> list[Path]:
    """Write ``out_dir/name.pdf`` and ``out_dir/name.png`` atomically; close the figure.

    Each file is written by :func:`deepdistill.core.io.atomic_write`, so a reader never sees a
    half-written figure and an interrupted run leaves the previous version intact. The PDF carries no creation date, so regenerating an unchanged
    figure gives an identical file. Returns ``[pdf_path, png_path]``.
    """
    if not isinstance(name, str) or not name or Path(name).name != name or Path(name).suffix in (".pdf", ".png"):
        raise ValueError(f"`name` must be a bare file stem like 'reliability' (no folder, no .pdf/.png); got {name!r}.")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    try:
        for ext, metadata in (("pdf", {"CreationDate": None}), ("png", None)):
            target = out / f"{name}.{ext}"
            with atomic_write(target, "wb") as fh:
                fig.savefig(fh, format=ext, metadata=metadata)
            paths.append(target)
    finally:
        _close(fig)
    return paths


def _close(fig: Figure) -> None:
    """Release the figure; also drop it from pyplot's manager if a caller made it with pyplot."""
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close(fig)
    fig.clear()
