"""The field's theorems as runnable claims: ``python -m kerneldistill claims [--fast] [NAME ...]``.

Every claim module below registers its claims in :data:`REGISTRY` (see :mod:`.base` for the
contract). Importing this package imports them all, in the order of the table that
``python -m kerneldistill claims`` prints.
"""
from __future__ import annotations

from .base import REGISTRY, ClaimResult, ClaimSpec, claim

# Claim modules, in table order. Each registers its claims on import.
_MODULES: tuple[str, ...] = ("das_sanghavi", "garg_mixing")

import importlib as _importlib

for _name in _MODULES:
    _importlib.import_module(f"{__name__}.{_name}")

__all__ = ["REGISTRY", "ClaimResult", "ClaimSpec", "claim"]
