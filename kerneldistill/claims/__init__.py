"""The field's theorems as runnable claims: ``python -m kerneldistill claims [--fast] [NAME ...]``.

Every claim module below registers its claims in :data:`REGISTRY` (see :mod:`.base` for the
contract). Importing this package imports them all, in the order of the table that
``python -m kerneldistill claims`` prints.
"""
from __future__ import annotations

from .base import REGISTRY, ClaimResult, ClaimSpec, claim

# Claim modules, in table order. Each registers its claims on import. They are imported by name
# below (not through importlib), so that the layer checks of tests/test_layers.py see the imports.
_MODULES: tuple[str, ...] = ("wu_yang_sun", "lecoiu_mukherjee_sur")

from . import wu_yang_sun, lecoiu_mukherjee_sur  # noqa: E402,F401  (registration order = _MODULES)

__all__ = ["REGISTRY", "ClaimResult", "ClaimSpec", "claim"]
