"""How many threads torch uses inside one process: the one context manager for it.

The sweep driver (:mod:`deepdistill.drivers.local_runner`), the bridge study (:mod:`deepdistill.studies.bridge`)
and the figures set this count for a block and give the previous count back afterwards, so that a
caller's own setting survives them. Intra-op threads only (``torch.set_num_threads``); inter-op
threads can be set once per process only and are left alone.
"""
from __future__ import annotations

import contextlib

import torch

__all__ = ["torch_threads"]


@contextlib.contextmanager
def torch_threads(n: int | None):
    """This process's intra-op torch threads set to ``n`` for the block (``None``: unchanged), restored after.

    ``n`` must be ``None`` or an integer >= 1 (an integral float such as ``2.0`` is taken as 2).
    """
    if n is None:
        yield
        return
    if isinstance(n, bool) or not (isinstance(n, int) or (isinstance(n, float) and n.is_integer())) or n < 1:
        raise ValueError(f"`n` (torch threads) must be None or an integer >= 1; got {n!r}.")
    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)
