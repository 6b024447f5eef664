"""The field's theorems as runnable claims: ``python -m kerneldistill claims [--fast] [--list] [NAME ...]``.

Every claim module imported below registers its claims in :data:`REGISTRY` (see :mod:`.base` for the
contract) when this package is imported, in the order of the table that ``python -m kerneldistill
claims`` prints. A new claim module is one more import line; it imports the contract from ``.base``
(never from this package, which imports it: a circle).

:func:`run_claims` runs claims by name; :func:`format_claims_table` prints their summary table and,
under it, each claim's own table. A claim that raises is reported as FAIL with the exception's one
line, so one broken claim never hides the others.
"""
from __future__ import annotations

import math
import time
import traceback
from typing import Sequence

from .base import REGISTRY, ClaimResult, ClaimSpec, claim, text_table

# Claim modules, in table order (the papers of docs/claims.md). Each registers its claims on import.
from . import exact  # noqa: E402,F401  (must stay first: the exact reproductions)
from . import das_sanghavi, garg_mixing  # noqa: E402,F401
from . import wu_yang_sun, lecoiu_mukherjee_sur  # noqa: E402,F401
from . import jeong_chung, takanami  # noqa: E402,F401
from . import infinite_width  # noqa: E402,F401

__all__ = ["REGISTRY", "ClaimResult", "ClaimSpec", "claim", "text_table", "claim_names", "run_claims",
           "format_claims_table"]


def claim_names() -> list[str]:
    """The registered claims' keys, in table order."""
    return list(REGISTRY)


def _error_result(spec: ClaimSpec, error: BaseException, seconds: float) -> ClaimResult:
    """FAIL for a claim that raised: the exception's type and first line, its traceback as the table."""
    line = (str(error).strip().splitlines() or [""])[0]
    return ClaimResult(claim=spec.key, paper=spec.paper, setting=spec.summary, published="-",
                       measured=f"raised {type(error).__name__}: {line}", criterion="runs without error",
                       passed=False, table="".join(traceback.format_exception(error)).rstrip(), seconds=seconds)


def run_claims(names: Sequence[str] | None = None, fast: bool = False) -> list[ClaimResult]:
    """Run the named claims (default: every registered one, in table order) and return their results.

    A claim that raises becomes a FAIL whose ``measured`` names the exception. An unknown name is a
    ``ValueError`` naming the valid ones.
    """
    names = claim_names() if names is None else list(names)
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise ValueError(f"unknown claim(s) {unknown}; valid claims: {', '.join(REGISTRY)}.")
    results = []
    for name in names:
        spec = REGISTRY[name]
        start = time.perf_counter()
        try:
            results.append(spec.run(fast=fast))
        except Exception as error:  # a broken claim is a FAIL, not a crash of the whole table
            results.append(_error_result(spec, error, time.perf_counter() - start))
    return results


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "-" * max(len(line) for line in lines))
    return lines


def format_claims_table(results: Sequence[ClaimResult]) -> str:
    """Plain text: one summary row per claim (key, paper, published, measured, criterion, PASS/FAIL,
    seconds), the count of passes, then each claim's setting and own table under a heading."""
    rows = [("claim", "paper", "published", "measured", "criterion", "result", "s")]
    for r in results:
        seconds = "-" if not math.isfinite(r.seconds) else f"{r.seconds:.1f}"
        rows.append((r.claim, r.paper, r.published, r.measured, r.criterion, r.verdict, seconds))
    lines = _table(rows)
    lines.append(f"{sum(r.passed for r in results)}/{len(results)} claims passed")
    for r in results:
        heading = f"== {r.claim}: {r.verdict} =="
        lines += ["", heading, f"{r.paper}. Setting: {r.setting}"]
        if r.table:
            lines += ["", r.table]
    return "\n".join(lines)
