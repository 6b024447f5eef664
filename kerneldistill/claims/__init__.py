"""The field's theorems as runnable claims: ``python -m kerneldistill claims [--fast] [NAME ...]``.

Every claim module below registers its claims in :data:`REGISTRY` (see :mod:`.base` for the
contract). Importing this package imports them all, in the order of the table that
``python -m kerneldistill claims`` prints.
"""
from __future__ import annotations

from .base import REGISTRY, ClaimResult, ClaimSpec, claim

# Claim modules, in table order. Each registers its claims on import.
_MODULES: tuple[str, ...] = ("das_sanghavi", "garg_mixing")

# Imported by name (not through importlib with a computed name, which tests/test_layers.py flags as an
# import that hides its name); keep this line in step with _MODULES.
from . import das_sanghavi, garg_mixing  # noqa: E402,F401

__all__ = ["REGISTRY", "ClaimResult", "ClaimSpec", "claim"]
