"""A temporary git worktree of a base commit, for the benchmarks that time "before" against this tree.

    with trees(base, tmp) as found:        # {"before": <worktree of base>, "after": ROOT}, or {"after": ROOT}
        ...

The worktree is removed on the way out, also when the benchmark is stopped with SIGTERM (which then exits
with status 143) or Ctrl-C.
"""
from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def merge_base() -> str:
    """``git merge-base HEAD main``: the default "before" of a branch."""
    return subprocess.run(["git", "merge-base", "HEAD", "main"], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip()


@contextlib.contextmanager
def trees(base: str | None, tmp: Path):
    """``{"before": worktree of base, "after": this tree}`` (``base`` None: ``{"after": this tree}``)."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    found = {"after": ROOT}
    if base:
        before = Path(tmp) / "before"
        subprocess.run(["git", "worktree", "add", "--detach", str(before), base], cwd=ROOT, check=True,
                       capture_output=True)
        found = {"before": before, **found}
    try:
        yield found
    finally:
        if "before" in found:
            subprocess.run(["git", "worktree", "remove", "--force", str(found["before"])], cwd=ROOT,
                           capture_output=True)
