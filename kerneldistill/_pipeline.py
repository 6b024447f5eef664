"""Accept a fitted :class:`KernelDistiller` or a fitted scikit-learn ``Pipeline`` that ends in one.

Every function that reads a fitted distiller (the criteria's ``from_distiller``, ``select_steps``)
goes through :func:`resolve_distiller`, so a model built as ``make_pipeline(StandardScaler(),
KernelDistiller(...))`` works wherever the bare estimator does: points the caller passes (reference
or validation inputs) are transformed by the pipeline's earlier steps, as ``pipe.predict`` would.
"""
from __future__ import annotations

from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from .estimator import KernelDistiller

__all__ = ["resolve_distiller"]


def resolve_distiller(model, X=None, *, name: str = "distiller"):
    """``(distiller, X)``: the fitted :class:`KernelDistiller` inside ``model``, and ``X`` transformed
    through the earlier steps of ``model`` when it is a ``Pipeline`` (``X`` unchanged otherwise, and
    ``None`` stays ``None``)."""
    if isinstance(model, Pipeline):
        last = model.steps[-1][1]
        if not isinstance(last, KernelDistiller):
            raise TypeError(f"`{name}` is a Pipeline whose last step is {type(last).__name__}; expected a "
                            f"Pipeline ending in a KernelDistiller.")
        check_is_fitted(last)
        if X is not None and len(model.steps) > 1:
            X = model[:-1].transform(X)
        return last, X
    if not isinstance(model, KernelDistiller):
        raise TypeError(f"`{name}` must be a fitted KernelDistiller or a fitted scikit-learn Pipeline ending in "
                        f"one; got {type(model).__name__}.")
    check_is_fitted(model)
    return model, X
