"""Figure style and figure I/O shared by every figure of the toolkit.

One style file (``analysis/paper.mplstyle``: Times-like serif, two-column paper sizes, the Okabe-Ito
colour-blind-safe cycle, thin spines, no top/right box, no grid, 300 dpi PNG) and these helpers:

- :func:`use_style` applies it;
- :func:`new_figure` makes a styled figure at a paper width ("column" ~3.4 in, "full" ~7 in);
- :func:`save_figure` writes ``name.pdf`` and ``name.png`` atomically and closes the figure;
- :func:`series_styles`: the one mapping from a series name (a deep method such as ``sd_kd``, or a
  series of a user's sweep such as ``sd_kd (gt_weight=0.25)``) to its colour and marker, the same in
  every figure; :data:`SERIES_LABELS` gives the methods' legend names.

Figures are built on the Agg canvas directly (``matplotlib.figure.Figure``), not through pyplot: no
display is needed, no global backend is switched under a user's notebook, and no figure is kept
alive by pyplot's figure manager when a script forgets to close it.
"""
from __future__ import annotations

import inspect
import math
import sys
from pathlib import Path

import matplotlib
import matplotlib.style
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from deepdistill.core.io import atomic_write

__all__ = ["PALETTE", "STYLE_PATH", "WIDTHS", "SERIES_LABELS", "use_style", "new_figure", "save_figure",
           "series_styles", "series_label", "mean_sd_drawn", "dodge"]

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

#: Legend names of the deep methods (``deepdistill.core.config.METHODS`` keys), in the order figures list them.
SERIES_LABELS = {
    "ce": "CE",
    "ls": "label smoothing",
    "beta": "Beta smoothing",
    "sd_kd": "SD (KD)",
    "sd_mse": "SD (MSE)",
    "sd_zs": "SD ([ZS20] loss)",
    "ls_kd": "KD from LS teacher",
}
# Each method's own (colour, marker), whether or not a figure shows it, so that a method looks the same in
# every figure and in every sweep. Yellow (PALETTE[6]) is left to the extra series: it is faint on white.
_METHOD_STYLES = {"ce": (PALETTE[7], "o"), "ls": (PALETTE[1], "s"), "beta": (PALETTE[2], "^"),
                  "sd_kd": (PALETTE[0], "D"), "sd_mse": (PALETTE[5], "v"), "sd_zs": (PALETTE[3], "P"),
                  "ls_kd": (PALETTE[4], "X")}
# Styles of the series that are not a method's own (several settings of one method in a user's sweep):
# Paul Tol's muted colours (colour-blind safe, distinct from Okabe-Ito's), each with its own marker.
_EXTRA_STYLES = (("#332288", "<"), ("#117733", ">"), ("#882255", "h"), ("#999933", "*"), ("#AA4499", "p"),
                 ("#44AA99", "d"), ("#888888", "8"), ("#661100", "H"), ("#B8A000", "1"), ("#6699CC", "2"))
# Methods whose generations >= 1 have a teacher: their extra series get the extra styles first (see series_styles).
_TEACHER_METHODS = ("sd_kd", "sd_mse", "sd_zs", "ls_kd")


def _method_of(name: str) -> str:
    """``sd_kd`` of ``sd_kd (gt_weight=0.25)``: the method a series of a user's sweep belongs to."""
    return str(name).split(" (", 1)[0]


def series_label(name: str) -> str:
    """The legend name of a series: a method's :data:`SERIES_LABELS` entry, with a sweep series' settings."""
    method = _method_of(name)
    rest = str(name)[len(method):]
    return SERIES_LABELS.get(method, method) + rest


def series_styles(names) -> dict[str, dict]:
    """``{name: {"color": ..., "marker": ...}}``: a colour and marker per series, no two alike.

    A method (``ce``, ``ls``, ``sd_kd`` ...) always has its own fixed style. Series of a user's sweep
    that split a method by its settings (``sd_kd (gt_weight=0.25)``, ``sd_kd (gt_weight=0.5)``): the
    first of them in sorted order takes the method's style when the plain method is not drawn too, the
    others take the extra styles in turn, teacher methods' series first. So a series keeps its style
    in every figure that shows the same series of the methods with a teacher (``deep_diversity`` shows
    only those): the extras of a method without a teacher come last and shift nothing. Past the extra
    styles, colours and markers repeat with a dashed line (``"ls"``).
    """
    names = list(dict.fromkeys(str(n) for n in names))
    order = list(SERIES_LABELS)

    def rank(n):
        m = _method_of(n)
        return (m not in _TEACHER_METHODS, order.index(m) if m in order else len(order), n)

    styles, extra = {}, 0
    for n in sorted(names, key=rank):
        m = _method_of(n)
        if m in _METHOD_STYLES and (n == m or (m not in names and not any(
                _method_of(o) == m and o in styles and styles[o]["color"] == _METHOD_STYLES[m][0] for o in styles))):
            colour, marker = _METHOD_STYLES[m]
            styles[n] = {"color": colour, "marker": marker}
            continue
        colour, marker = _EXTRA_STYLES[extra % len(_EXTRA_STYLES)]
        styles[n] = {"color": colour, "marker": marker}
        if extra >= len(_EXTRA_STYLES):
            styles[n]["ls"] = "--"
        extra += 1
    return styles


def mean_sd_drawn(values) -> tuple[float, float]:
    """``(mean, sd)`` over seeds by :func:`deepdistill.engine.results.mean_sd` (the roll-up's and the report's
    rule: sample sd), except that the undefined sd of a single seed is drawn as no error bar (0)."""
    # Imported here: deepdistill.engine loads torch, which the kernel figures (this module's other users) never need.
    from deepdistill.engine.results import mean_sd

    mean, sd = mean_sd(np.asarray(values, dtype=float).ravel().tolist())
    return mean, (0.0 if math.isnan(sd) and not math.isnan(mean) else sd)


def dodge(i: int, n: int, width: float = 0.3) -> float:
    """Horizontal offset of series ``i`` of ``n`` so that error bars at the same x do not overlap."""
    return 0.0 if n == 1 else (i / (n - 1) - 0.5) * width


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
