"""Issue 20's refactor (one owner per rule, keyword-bound losses, the loop split from the run folder) must not
change what a run computes or where it is stored: run ids, generation-cache ids, bridge cache keys and a tiny
sweep's metrics are compared bit for bit with values computed on main before the refactor
(tests/data/behaviour_baseline.json, written by tests/_make_behaviour_baseline.py on de85fa0, one torch thread).
"""
import json
from pathlib import Path

import pytest
import torch

from tests._make_behaviour_baseline import bridge_ids, ids, sweep

BASELINE = json.loads((Path(__file__).parent / "data" / "behaviour_baseline.json").read_text())


def test_run_ids_unchanged():
    now = ids()
    assert [x["config"] for x in now] == [x["config"] for x in BASELINE["ids"]]
    for new, old in zip(now, BASELINE["ids"]):
        assert new == old, new["config"]


def test_bridge_cache_keys_unchanged():
    assert bridge_ids() == BASELINE["bridge_ids"]


def test_tiny_sweep_bitwise_unchanged():
    threads = torch.get_num_threads()
    try:
        now = sweep()
    finally:
        torch.set_num_threads(threads)
    assert len(now) == len(BASELINE["sweep"])
    for new, old in zip(now, BASELINE["sweep"]):
        assert new["run_id"] == old["run_id"], old["config"]
        for g, (a, b) in enumerate(zip(new["generations"], old["generations"])):
            # hex: bit for bit, not within a tolerance
            assert a["val_hex"] == b["val_hex"], (old["config"]["method"], g)
            assert a["test_hex"] == b["test_hex"], (old["config"]["method"], g)
            assert a["train_loss"] == b["train_loss"], (old["config"]["method"], g)
            assert a["selected_epoch"] == b["selected_epoch"]
