"""Results records and roll-ups: complete, atomic, and with the right means and standard deviations."""
from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest
import torch

from deepdistill.core.config import TrainConfig
from deepdistill.core.io import atomic_write, atomic_write_json, read_json, to_jsonable
from deepdistill.engine.results import SCHEMA, collect_records, make_record, read_record, rollup_rows, write_rollup_csv

METRICS = ("accuracy", "nll", "ece", "brier", "entropy", "diversity")


def _generation(g: int, seed: int, rng) -> dict:
    metrics = {split: {m: float(rng.uniform(0.05, 0.95)) for m in METRICS} for split in ("val", "test")}
    return {"generation": g, "loss": "ce" if g == 0 else "kd", "gt_weight": 1.0 if g == 0 else 0.5,
            "temperature": 1.0 if g == 0 else 4.0, "uses_teacher": g > 0, "selection": "best_val_accuracy",
            "selected_epoch": int(rng.integers(0, 5)), "epochs_trained": 5, "wall_time_s": float(rng.uniform(1, 2)),
            "teacher_cached": g > 0, "history": [], **metrics}


def _synthetic_records(seeds=(0, 1, 2), methods=("sd_kd", "sd_zs"), generations=2):
    rng = np.random.default_rng(0)
    out = []
    for method in methods:
        for seed in seeds:
            cfg = TrainConfig(dataset="digits", model="mlp", method=method, generations=generations, seed=seed)
            out.append(make_record(cfg, [_generation(g, seed, rng) for g in range(generations)], device="cpu",
                                   session_wall_time_s=1.0))
    return out


def test_record_of_a_real_run_is_complete(tmp_path):
    from deepdistill.core.metrics import summarize
    from deepdistill.engine.train import train_run

    cfg = dict(dataset="digits", model="mlp", model_kwargs={"hidden": 16, "depth": 1}, n_train=300, epochs=2,
               generations=2, method="sd_kd", device="cpu", seed=3, out_dir=str(tmp_path / "run"))
    rec = train_run(cfg)
    on_disk = json.loads((tmp_path / "run" / "record.json").read_text())
    assert on_disk == rec and read_record(tmp_path / "run" / "record.json") == rec
    assert rec["schema"] == SCHEMA and rec["complete"] is True
    assert rec["config"] == TrainConfig.from_dict(cfg).to_dict() and rec["seed"] == 3
    assert set(rec["versions"]) == {"python", "torch", "numpy", "deepdistill"}
    assert rec["device"]["type"] == "cpu" and rec["device"]["name"]
    assert rec["device"]["capability"] == str(torch.backends.cpu.get_cpu_capability())
    assert rec["wall_time_s"] == pytest.approx(sum(g["wall_time_s"] for g in rec["generations"]), rel=1e-12)
    assert rec["wall_time_s"] > 0 and rec["selection"] == "best_val_accuracy"
    keys = set(summarize(np.full((2, 3), 1 / 3), np.array([0, 1])))        # the shared metric set
    for g, gen in enumerate(rec["generations"]):
        assert gen["generation"] == g and 0 <= gen["selected_epoch"] < 2
        assert set(gen["val"]) == keys and set(gen["test"]) == keys
        assert len(gen["history"]) == 2
    json.dumps(rec, allow_nan=False)                                        # strict JSON


def test_read_record_rejects_partial_and_corrupt_files(tmp_path):
    rec = _synthetic_records(seeds=(0,), methods=("sd_kd",))[0]
    path = tmp_path / "record.json"
    atomic_write_json(path, rec)
    assert read_record(path) == json.loads(json.dumps(rec))
    text = path.read_text()
    path.write_text(text[: len(text) // 2])                                 # a truncated file
    assert read_record(path) is None
    atomic_write_json(path, dict(rec, complete=False))
    assert read_record(path) is None
    atomic_write_json(path, dict(rec, generations=rec["generations"][:1]))  # fewer generations than configured
    assert read_record(path) is None
    assert read_record(tmp_path / "missing.json") is None


def test_rollup_means_and_sample_sds_match_numpy(tmp_path):
    records = _synthetic_records()
    rows = rollup_rows(records)
    assert len(rows) == 2 * 2                                               # 2 methods x 2 generations
    for row in rows:
        members = [r for r in records if r["config"]["method"] == row["method"]]
        assert row["n_seeds"] == 3 and row["seeds"] == "0 1 2"
        for split in ("val", "test"):
            for m in METRICS:
                values = np.array([r["generations"][row["generation"]][split][m] for r in members])
                assert row[f"{split}_{m}_mean"] == pytest.approx(values.mean(), rel=1e-12)
                assert row[f"{split}_{m}_sd"] == pytest.approx(values.std(ddof=1), rel=1e-12)

    path = tmp_path / "rollup.csv"
    write_rollup_csv(records, path)
    with open(path, newline="") as f:
        parsed = list(csv.DictReader(f))
    assert len(parsed) == len(rows)
    for got, want in zip(parsed, rows):
        assert set(got) == set(want)
        assert float(got["test_accuracy_mean"]) == pytest.approx(want["test_accuracy_mean"], rel=1e-12)


def test_single_seed_sd_is_empty_not_zero(tmp_path):
    records = _synthetic_records(seeds=(5,), methods=("sd_kd",))
    assert math.isnan(rollup_rows(records)[0]["test_accuracy_sd"])
    write_rollup_csv(records, tmp_path / "r.csv")
    with open(tmp_path / "r.csv", newline="") as f:
        row = next(csv.DictReader(f))
    assert row["test_accuracy_sd"] == "" and row["n_seeds"] == "1"


def test_groups_ignore_seed_and_operational_fields_only():
    a = TrainConfig(method="sd_kd", seed=0, out_dir="x", device="cpu")
    b = TrainConfig(method="sd_kd", seed=1, out_dir="y", device="auto")
    c = TrainConfig(method="sd_kd", seed=0, lr=0.5)
    assert a.group_id() == b.group_id() and a.run_id() != b.run_id()
    assert a.group_id() != c.group_id()
    assert a.run_id() == TrainConfig(method="sd_kd", seed=0).run_id()       # out_dir/device are not identity


def test_collect_records_skips_incomplete_runs(tmp_path):
    good, partial = _synthetic_records(seeds=(0, 1), methods=("sd_kd",))
    atomic_write_json(tmp_path / "runs" / "a" / "record.json", good)
    atomic_write_json(tmp_path / "runs" / "b" / "record.json", dict(partial, complete=False))
    (tmp_path / "runs" / "c").mkdir()
    (tmp_path / "runs" / "c" / "record.json").write_text("{\"schema\": ")
    assert [r["seed"] for r in collect_records(tmp_path)] == [0]


def test_atomic_write_keeps_the_old_file_when_interrupted(tmp_path):
    path = tmp_path / "out.json"
    atomic_write_json(path, {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic_write(path, "w") as f:
            f.write('{"v": 2, "half')
            raise RuntimeError("killed mid-write")
    assert read_json(path) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["out.json"]           # no temporary file left behind


def test_to_jsonable_writes_non_finite_as_null():
    import torch

    out = to_jsonable({"a": float("nan"), "b": np.float32(0.5), "c": torch.tensor(2), "d": (1, np.inf)})
    assert out == {"a": None, "b": 0.5, "c": 2, "d": [1, None]}


def test_knobs_a_method_never_reads_do_not_split_its_runs(tmp_path):
    from deepdistill.engine.train import train_run

    # sd_kd reads neither label smoothing nor beta_a: same run id, and the folder accepts either.
    a = TrainConfig(method="sd_kd", smoothing=0.1, beta_a=3.0)
    b = TrainConfig(method="sd_kd", smoothing=0.3, ls_convention="shen", beta_a=5.0)
    assert a.run_id() == b.run_id() and a.group_id() == b.group_id()
    # ... while the methods that read them are told apart.
    assert TrainConfig(method="ls", smoothing=0.1).run_id() != TrainConfig(method="ls", smoothing=0.3).run_id()
    assert TrainConfig(method="ls_kd", ls_convention="muller").run_id() != \
        TrainConfig(method="ls_kd", ls_convention="shen").run_id()
    assert TrainConfig(method="beta", beta_a=3.0).run_id() != TrainConfig(method="beta", beta_a=5.0).run_id()
    tiny = dict(dataset="digits", model="mlp", model_kwargs={"hidden": 8, "depth": 1}, epochs=1, n_train=200,
                generations=1, device="cpu", method="sd_kd", out_dir=str(tmp_path / "run"))
    first = train_run(dict(tiny, smoothing=0.1))
    assert train_run(dict(tiny, smoothing=0.3)) == first      # the finished record, not a refusal or a rerun
