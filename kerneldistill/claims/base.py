"""The claim contract: a published result of the field as a parameterised, runnable check.

A claim is a function ``run(fast: bool = False, **params) -> ClaimResult`` registered with
:func:`claim`. Its keyword parameters are the setting (sizes, seeds, noise, the weight or step under
test), each with the default that reproduces the paper; a test passes a deliberately wrong value and
asserts that the claim then FAILs. ``fast=True`` shrinks sizes and seeds so that the claim runs in
seconds in CI; it never loosens a tolerance.

A :class:`ClaimResult` says which paper and setting, the published statement or number, what the
toolkit measured, the criterion (a tolerance or an ordering, in words), PASS or FAIL, and the claim's
own table. ``values`` holds the measured numbers by name, for tests and figures.

Claims live in ``kerneldistill`` (linear, kernel and logistic models fitted with numpy, scipy and
scikit-learn): nothing here imports torch or a package above ``kerneldistill``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

__all__ = ["ClaimResult", "ClaimSpec", "REGISTRY", "claim", "text_table"]


@dataclass(frozen=True)
class ClaimResult:
    """The outcome of one claim.

    claim : the registry key (e.g. ``"das_sanghavi_regression"``).
    paper : authors, venue, arXiv id.
    setting : one line: model, data, sizes.
    published : the statement or number the paper gives.
    measured : what the toolkit measured, formatted for the table.
    criterion : the tolerance or ordering that decides PASS, in words.
    passed : whether the criterion held.
    table : the claim's own table (printed under the summary row); may be empty.
    values : the measured numbers by name (for tests and figures).
    seconds : wall time of the run.
    measured_value, published_value, accept : optional headline number for the summary figure: the
        measured number, the paper's number (NaN where the paper states an ordering or a sign, not a
        number) and the closed interval ``(low, high)`` of ``measured_value`` that passes (``-inf`` /
        ``inf`` for a one-sided criterion). A claim that leaves them out is drawn by its verdict alone.
    """

    claim: str
    paper: str
    setting: str
    published: str
    measured: str
    criterion: str
    passed: bool
    table: str = ""
    values: dict = field(default_factory=dict)
    seconds: float = float("nan")
    measured_value: float = float("nan")
    published_value: float = float("nan")
    accept: tuple[float, float] = (float("-inf"), float("inf"))

    @property
    def verdict(self) -> str:
        return "PASS" if self.passed else "FAIL"


@dataclass(frozen=True)
class ClaimSpec:
    """A registered claim: its key, paper, one-line summary and the function that runs it."""

    key: str
    paper: str
    summary: str
    run: Callable[..., ClaimResult]


# key -> ClaimSpec, in registration (= import) order; kerneldistill.claims imports every claim module.
REGISTRY: dict[str, ClaimSpec] = {}


def claim(key: str, *, paper: str, summary: str):
    """Register ``run(fast=False, **params) -> ClaimResult`` under ``key``; times each call into ``seconds``."""

    def register(fn: Callable[..., ClaimResult]) -> Callable[..., ClaimResult]:
        if key in REGISTRY:
            raise ValueError(f"claim {key!r} is registered twice ({REGISTRY[key].run.__module__} and {fn.__module__}).")

        def run(fast: bool = False, **params) -> ClaimResult:
            start = time.perf_counter()
            result = fn(fast=fast, **params)
            if not isinstance(result, ClaimResult):
                raise TypeError(f"claim {key!r} must return a ClaimResult; got {type(result).__name__}.")
            return ClaimResult(**{**result.__dict__, "claim": key, "seconds": time.perf_counter() - start})

        run.__name__ = fn.__name__
        run.__doc__ = fn.__doc__
        run.__wrapped__ = fn
        REGISTRY[key] = ClaimSpec(key, paper, summary, run)
        return run

    return register


def text_table(header, rows) -> str:
    """A plain-text table for ``ClaimResult.table``: ``header`` (column names) and ``rows`` (sequences of
    str), each column right-aligned to its widest cell."""
    table = [tuple(str(c) for c in header)] + [tuple(str(c) for c in r) for r in rows]
    if any(len(r) != len(table[0]) for r in table):
        raise ValueError(f"every row must have {len(table[0])} cells (one per header name); got lengths "
                         f"{sorted({len(r) for r in table})}.")
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in table)
