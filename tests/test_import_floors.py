"""Importing a lower floor of deepdistill loads no higher one (each import in a fresh interpreter).

``deepdistill/__init__.py`` names its public objects lazily (PEP 562), so ``import deepdistill.core.io``
does not pull in the training loop, the sweep scheduler or the studies.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FLOORS = ("core", "engine", "drivers", "studies")


def loaded_after(statement: str) -> set[str]:
    """The modules of ours and torch that ``statement`` loads in a fresh interpreter."""
    code = (f"import sys, json\n{statement}\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('deepdistill', 'kerneldistill', 'analysis', 'torch') and m.count('.') <= 2)))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def floors_loaded(modules: set[str]) -> set[str]:
    return {m.split(".")[1] for m in modules if m.startswith("deepdistill.") and m.split(".")[1] in FLOORS}


def test_the_atomic_writer_loads_nothing_else_of_ours_nor_torch():
    assert loaded_after("import deepdistill.core.io") == {"deepdistill", "deepdistill.core", "deepdistill.core.io"}


def test_the_package_alone_loads_no_floor_until_a_public_name_is_used():
    assert loaded_after("import deepdistill") == {"deepdistill"}
    loaded = loaded_after("from deepdistill import hinton_kd_loss")
    assert floors_loaded(loaded) == {"core"} and "deepdistill.studies.weight_estimation" not in loaded


@pytest.mark.parametrize("module, allowed", [
    ("deepdistill.core.losses", {"core"}),
    ("deepdistill.core.config", {"core"}),
    ("deepdistill.engine.train", {"core", "engine"}),
    ("deepdistill.drivers.sweep", {"core", "engine", "drivers"}),
])
def test_a_floor_loads_only_the_floors_below_it(module, allowed):
    loaded = loaded_after(f"import {module}")
    assert module in loaded
    assert floors_loaded(loaded) <= allowed
    assert not any(m.startswith("analysis") for m in loaded)


def test_a_lazy_public_name_is_the_object_of_its_module_and_an_unknown_one_is_an_attribute_error():
    import deepdistill
    from deepdistill.core.ntk import NTKMLP
    assert deepdistill.NTKMLP is NTKMLP and "estimate_gt_weight" in dir(deepdistill)
    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        deepdistill.nonexistent  # noqa: B018
