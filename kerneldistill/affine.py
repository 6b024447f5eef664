"""The optimum of a squared-error criterion along an affine path: one routine, one degenerate tolerance.

Kernel ridge self-distillation's step-``t`` fit is affine in its ground-truth weight ``alpha``
([BA21] Borup & Andersen 2021, arXiv 2102.13088)::

    f_alpha = f_0 + alpha D,        D = f_1 - f_0

so against reference values ``r`` the squared error ``||f_alpha - r||^2`` is a convex quadratic in
``alpha`` whose vertex is::

    alpha* = <D, E> / ||D||^2,      E = r - f_0

:class:`kerneldistill.optimal.StepQuadratic` (closed-form criteria of the kernel student) and
:func:`deepdistill.studies.weight_estimators.affine_optimal_weight` (two trained networks) both take their
optimum from :func:`affine_vertex`, so the vertex and the rule for a degenerate path live here once.
"""
from __future__ import annotations

import numpy as np

__all__ = ["DEGENERATE_RTOL", "affine_vertex"]

# When the two end points give (numerically) the same predictions, every weight is optimal; the
# vertex is then taken at alpha = 1 (the labels end point: the plain step-1 fit). "Numerically the
# same" means a squared distance below this fraction of the scale it was computed from (float64
# round-off is ~1e-16, so 1e-13 leaves a margin of a thousand round-offs).
DEGENERATE_RTOL = 1e-13


def affine_vertex(inner: float, sq_dist: float, scale: float = 0.0) -> tuple[float, bool]:
    """``(alpha*, degenerate)``: the vertex ``inner / sq_dist`` of the quadratic along ``f_0 + alpha D``.

    inner : ``<D, E>``, the inner product of the direction ``D = f_1 - f_0`` with ``E = r - f_0``.
    sq_dist : ``||D||^2`` (>= 0).
    scale : the size that ``sq_dist`` is known relative to. ``0`` when it was computed from the
        difference ``D`` itself (then it is exact and only a zero distance is degenerate); the
        end points' risks or squared norms when it was formed from them by subtraction (then it is
        known only to round-off relative to them).

    Degenerate when ``sq_dist <= max(DEGENERATE_RTOL * scale, tiny)``: the vertex is then
    ``alpha = 1`` and the flag is True.
    """
    tolerance = max(DEGENERATE_RTOL * float(scale), np.finfo(np.float64).tiny)
    if sq_dist <= tolerance:
        return 1.0, True
    return float(inner / sq_dist), False
