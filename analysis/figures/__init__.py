"""The registry of every figure, and the functions that regenerate them.

``FIGURES`` maps a figure's name to its :class:`~analysis.figures.spec.FigureSpec`; it merges the
registries of the figure modules listed in ``_SOURCES`` (``kernel.KERNEL_FIGURES``,
``kernel_extensions.KERNEL_EXTENSION_FIGURES``, ``deep.DEEP_FIGURES``, ``bridge.BRIDGE_FIGURES``, ``weight_map.WEIGHT_MAP_FIGURES``,
``claims.CLAIM_FIGURES``), in report order. A new figure module is imported below and added there,
one line each (a claim's own figures: ``analysis/figures/claims_<topic>.py``, after ``claims``).
"""
from __future__ import annotations

from pathlib import Path

from . import bridge, deep, kernel, kernel_extensions, weight_map
from . import claims, claims_labels, claims_noise, claims_ntk, claims_steps
from .spec import FigureSpec

__all__ = ["FIGURES", "FigureSpec", "run_figure", "run_all", "figure_names"]

# (figure module, name of its registry) for each figure module, in report order.
_SOURCES = (
    (kernel, "KERNEL_FIGURES"),
    (kernel_extensions, "KERNEL_EXTENSION_FIGURES"),
    (deep, "DEEP_FIGURES"),
    (bridge, "BRIDGE_FIGURES"),
    (weight_map, "WEIGHT_MAP_FIGURES"),
    (claims, "CLAIM_FIGURES"),
    (claims_noise, "CLAIM_NOISE_FIGURES"),
    (claims_steps, "CLAIM_STEPS_FIGURES"),
    (claims_labels, "CLAIM_LABELS_FIGURES"),
    (claims_ntk, "CLAIM_NTK_FIGURES"),
)


def _collect(sources=_SOURCES) -> dict[str, FigureSpec]:
    """Merge the registries of ``sources``; a name defined twice or a key that is not its spec's name is an error."""
    figures: dict[str, FigureSpec] = {}
    for module, attr in sources:
        registry = getattr(module, attr)
        for key, spec in registry.items():
            if not isinstance(spec, FigureSpec):
                raise TypeError(f"{module.__name__}.{attr}[{key!r}] must be a FigureSpec; got {type(spec).__name__}.")
            if key != spec.name:
                raise ValueError(f"{module.__name__}.{attr}: key {key!r} differs from its spec's name {spec.name!r}.")
            if key in figures:
                raise ValueError(f"figure name {key!r} is defined twice ({module.__name__}.{attr} and an earlier module).")
            figures[key] = spec
    return figures


FIGURES: dict[str, FigureSpec] = _collect()


def figure_names() -> list[str]:
    """Names of the registered figures, in registry order."""
    return list(FIGURES)


def _spec(name: str) -> FigureSpec:
    if name not in FIGURES:
        valid = ", ".join(FIGURES)
        raise ValueError(f"unknown figure {name!r}; valid figure names: {valid}.")
    return FIGURES[name]


def run_figure(name: str, out_dir, fast: bool = False) -> list[Path]:
    """Regenerate one figure: its data step, then its plot step, both writing into ``out_dir``.

    Returns ``[data_path, *figure_paths]`` (the tidy table first, then the PDF and PNG).
    """
    spec = _spec(name)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data_path = Path(spec.data(out, bool(fast)))
    if not data_path.is_file():
        raise RuntimeError(f"figure {name!r}: its data step returned {data_path}, which does not exist.")
    figure_paths = [Path(p) for p in spec.plot(data_path, out)]
    missing = [str(p) for p in figure_paths if not p.is_file()]
    if missing:
        raise RuntimeError(f"figure {name!r}: its plot step returned paths that do not exist: {missing}.")
    return [data_path, *figure_paths]


def run_all(out_dir, fast: bool = False) -> dict[str, list[Path]]:
    """Regenerate every registered figure; returns ``{name: [data_path, *figure_paths]}``."""
    return {name: run_figure(name, out_dir, fast=fast) for name in FIGURES}
