"""Writes tests/data/behaviour_baseline.json: run ids and a tiny sweep's metrics, computed on main (de85fa0)
before issue 20's single-owner refactor; tests/test_behaviour_unchanged.py compares against it.

Regenerate only on purpose (a deliberate change of behaviour):
    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python tests/_make_behaviour_baseline.py
"""
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from deepdistill.core.config import TrainConfig
from deepdistill.drivers.sweep import run_sweep

TINY = dict(dataset="digits", model="mlp", model_kwargs={"hidden": 16, "depth": 1}, n_train=200, epochs=2,
            batch_size=64, lr=1e-2, device="cpu", generations=2)

# Configs whose ids must stay put: every method, lists, non-default knobs, regression.
ID_CONFIGS = [
    {},
    dict(method="ce"), dict(method="ls"), dict(method="ls", ls_convention="shen", smoothing=0.2),
    dict(method="beta"), dict(method="beta", ema_variant="zs20", beta_a=2.0),
    dict(method="sd_kd", generations=4, gt_weight=[0.9, 0.5, 0.1], temperature=2.0),
    dict(method="sd_kd", gt_weight=[0.3], temperature=[3.0]),
    dict(method="sd_mse", gt_weight=1.5, allow_any_weight=True),
    dict(method="sd_zs"), dict(method="ls_kd", generations=2), dict(method="sd_logits", gt_weight=0.25),
    dict(dataset="sine", method="sd_reg", model="mlp", data_options={"noise": 0.1}),
    dict(dataset="digits", model="mlp", model_kwargs={"hidden": 32}, n_train=400, seed=3, label_noise=0.2),
]

SWEEP = [
    dict(TINY, method="ce"), dict(TINY, method="ls"), dict(TINY, method="ls", ls_convention="shen"),
    dict(TINY, method="beta"), dict(TINY, method="sd_kd", gt_weight=0.3),
    dict(TINY, method="sd_mse", gt_weight=1.2, allow_any_weight=True), dict(TINY, method="sd_zs"),
    dict(TINY, method="ls_kd"), dict(TINY, method="sd_logits"),
    dict(TINY, dataset="sine", method="sd_reg", n_train=64, batch_size=16),
]


def ids():
    out = []
    for d in ID_CONFIGS:
        c = TrainConfig(**d)
        out.append({"config": d, "run_id": c.run_id(), "group_id": c.group_id(),
                    "prefix_ids": [c.prefix_id(g) for g in range(c.generations)]})
    return out


def bridge_ids():
    from deepdistill.studies import bridge
    h = getattr(bridge, "stable_hash", None) or bridge._hash     # bridge._hash on main
    out = {}
    for name, preset in sorted(bridge.PRESETS.items()):
        d = preset.to_dict()
        out[name] = {"preset": h(d), "mnist1d": h(d["mnist1d"]),
                     "cell": h({"width": 64, "seed": 0, "parameterization": "ntk", "ridge": 1e-3})}
    return out


def sweep():
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        records = run_sweep([TrainConfig(**d) for d in SWEEP], tmp, jobs=1, threads_per_job=1, progress=False)
    return [{"config": d, "run_id": r["run_id"],
             "generations": [{"val": g["val"], "test": g["test"], "selected_epoch": g["selected_epoch"],
                              "train_loss": [float(h["train_loss"]).hex() for h in g["history"]],
                              "val_hex": {k: float(v).hex() for k, v in g["val"].items()},
                              "test_hex": {k: float(v).hex() for k, v in g["test"].items()}}
                             for g in r["generations"]]}
            for d, r in zip(SWEEP, records)]


if __name__ == "__main__":
    data = {"made_on": "main de85fa0, OMP_NUM_THREADS=1, torch threads 1", "ids": ids(), "bridge_ids": bridge_ids(), "sweep": sweep()}
    path = Path(__file__).resolve().parent / "data" / "behaviour_baseline.json"
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(path, len(data["ids"]), len(data["sweep"]))
