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
import os
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

#: The claims registered by importing this package: a worker process (``run_claims(jobs=...)``) knows
#: these; a claim registered later in this process (a test's, your own) runs here.
_BUILTIN = frozenset(REGISTRY)

__all__ = ["REGISTRY", "ClaimResult", "ClaimSpec", "claim", "text_table", "claim_names", "run_claims", "usable_cores",
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


def _run_one(name: str, fast: bool) -> ClaimResult:
    """One claim by name, a raise turned into its FAIL (the unit of work of :func:`run_claims`, in any process)."""
    from threadpoolctl import threadpool_limits

    spec = REGISTRY[name]
    start = time.perf_counter()
    # One BLAS thread: small eigendecompositions, which threads slow down on shared cores.
    with threadpool_limits(limits=1):
        try:
            return spec.run(fast=fast)
        except Exception as error:  # a broken claim is a FAIL, not a crash of the whole table
            return _error_result(spec, error, time.perf_counter() - start)


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system reports it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:          # not Linux
        return max(1, os.cpu_count() or 1)


def run_claims(names: Sequence[str] | None = None, fast: bool = False, jobs: int = 1) -> list[ClaimResult]:
    """Run the named claims (default: every registered one, in table order) and return their results.

    A claim that raises becomes a FAIL whose ``measured`` names the exception. An unknown name is a
    ``ValueError`` naming the valid ones. ``jobs``: claims run at once, each in a worker process
    (``spawn``; a script of your own that asks for more than 1 needs the ``if __name__ == "__main__":``
    guard); every claim is the same computation in any process, one BLAS thread each, so the results
    do not depend on ``jobs`` (the claims are independent: no claim reads another's output).
    """
    names = claim_names() if names is None else list(names)
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise ValueError(f"unknown claim(s) {unknown}; valid claims: {', '.join(REGISTRY)}.")
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"`jobs` must be an integer >= 1 (worker processes); got {jobs!r}.")
    away = [n for n in names if n in _BUILTIN] if jobs > 1 else []
    jobs = min(jobs, len(away))
    if jobs <= 1:
        return [_run_one(name, fast) for name in names]
    import concurrent.futures as cf
    import multiprocessing

    with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {name: pool.submit(_run_one, name, fast) for name in away}
        here = {name: _run_one(name, fast) for name in names if name not in futures}
        return [futures[n].result() if n in futures else here[n] for n in names]


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
