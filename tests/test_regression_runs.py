"""Regression through the toolkit's own pipeline: data sets, the config's refusals, the training loop's
MSE metrics and selection, records, roll-up and the command line."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from deepdistill import cli
from deepdistill.core.config import TrainConfig
from deepdistill.core.data import TASKS, dataset_task, load_dataset
from deepdistill.core.metrics import headline_metric, summarize_regression
from deepdistill.core.regression import sine, sine_truth
from deepdistill.engine.runs import load_generation
from deepdistill.drivers.sweep import run_sweep
from deepdistill.engine.train import load_run_data, predict_logits, train_run

TINY = dict(dataset="sine", method="sd_reg", model="ntk_mlp", model_kwargs={"width": 32}, generations=2, gt_weight=0.5,
            epochs=4, batch_size=16, lr=0.01, device="cpu", n_train=64, val_fraction=0.25)


def test_summarize_regression_by_hand():
    got = summarize_regression(np.array([[1.0], [2.0], [4.0]]), np.array([0.0, 2.0, 2.0]))   # errors 1, 0, 2
    assert got == {"mse": pytest.approx(5.0 / 3.0, rel=1e-15), "rmse": pytest.approx(np.sqrt(5.0 / 3.0), rel=1e-15)}
    assert headline_metric(got) == ("mse", got["mse"])
    assert headline_metric({"accuracy": 0.5, "nll": 1.0})[0] == "accuracy"
    with pytest.raises(ValueError, match="same non-zero number"):
        summarize_regression(np.zeros((3, 2)), np.zeros(3))
    with pytest.raises(ValueError, match="finite"):
        summarize_regression(np.array([np.nan]), np.array([0.0]))


def test_regression_data_sets_split_without_stratifying_and_keep_the_clean_test_targets():
    assert dataset_task("sine") == dataset_task("ba_toy") == "regression" and TASKS["mnist1d"] == "classification"
    with pytest.raises(ValueError, match="unknown dataset"):
        dataset_task("imagenet")
    s = load_dataset("sine", seed=3, n_train=40, val_fraction=0.25, noise=0.2, n_test=50)
    (xt, yt), (xv, _yv), (xs, ys) = s.train.tensors, s.val.tensors, s.test.tensors
    assert s.task == "regression" and s.num_classes == 1 and s.input_shape == (1,)
    assert xt.shape == (30, 1) and xv.shape == (10, 1) and xs.shape == (50, 1) and yt.dtype == torch.float32
    np.testing.assert_allclose(ys.numpy(), sine_truth(xs.numpy().astype(np.float64)), rtol=0, atol=1e-6)
    # the pool is the generator's: train and validation points are drawn from it, none twice
    pool = sine(200, 0.2, n_test=50, seed=0)
    rows = {tuple(r) for r in np.float32(pool.x_train)}
    assert {tuple(r) for r in xt.numpy()} | {tuple(r) for r in xv.numpy()} <= rows
    assert not {tuple(r) for r in xt.numpy()} & {tuple(r) for r in xv.numpy()}
    toy = load_dataset("ba_toy")
    assert toy.train.tensors[0].shape[0] + toy.val.tensors[0].shape[0] == 11 and toy.test.tensors[0].shape == (101, 1)
    with pytest.raises(ValueError, match="label_noise.*regression targets"):
        load_dataset("sine", label_noise=0.1)


@pytest.mark.parametrize("dataset, method, names", [
    ("sine", "sd_kd", ["'sd_kd'", "'sine'", "regression", "'sd_reg'"]),
    ("ba_toy", "ls", ["'ls'", "'ba_toy'", "regression"]),
    ("digits", "sd_reg", ["'sd_reg'", "'digits'", "class labels", "'sd_logits'"]),
])
def test_regression_targets_with_a_classification_loss_and_the_reverse_are_refused(dataset, method, names):
    with pytest.raises(ValueError) as err:
        TrainConfig(dataset=dataset, method=method)
    for name in names:
        assert name in str(err.value)


def test_selection_follows_the_task_and_classification_run_ids_do_not_move():
    assert TrainConfig(dataset="sine", method="sd_reg").selection == "best_val_mse"
    assert TrainConfig().selection == "best_val_accuracy"
    # The default leaves a classification config exactly as it was before regression existed.
    assert TrainConfig().run_id() == TrainConfig(selection="best_val_accuracy").run_id()
    with pytest.raises(ValueError, match="'best_val_accuracy'.*'sine'.*regression"):
        TrainConfig(dataset="sine", method="sd_reg", selection="best_val_accuracy")
    with pytest.raises(ValueError, match="'best_val_mse'.*'digits'.*classification"):
        TrainConfig(dataset="digits", method="sd_logits", selection="best_val_mse")


def test_a_regression_run_records_mse_metrics_that_its_checkpoints_reproduce(tmp_path):
    config = TrainConfig(**TINY, out_dir=str(tmp_path / "run"))
    record = train_run(config, progress=False)
    assert [g["loss"] for g in record["generations"]] == ["mse_outputs", "mse_outputs"]
    assert [g["gt_weight"] for g in record["generations"]] == [1.0, 0.5]
    splits, data = load_run_data(config, torch.device("cpu"))
    for g, summary in enumerate(record["generations"]):
        assert set(summary["test"]) == {"mse", "rmse"} and set(summary["history"][0]) >= {"val_mse", "train_loss"}
        # the selected epoch is the best validation MSE of its history
        best = int(np.argmin([h["val_mse"] for h in summary["history"]]))
        assert summary["selected_epoch"] == summary["history"][best]["epoch"]
        model, _ = load_generation(tmp_path / "run", g, config, splits)
        test_pred = predict_logits(model, data["x_test"]).numpy()[:, 0].astype(np.float64)
        mse = float(np.mean((test_pred - data["y_test"].numpy().astype(np.float64)) ** 2))
        assert summary["test"]["mse"] == pytest.approx(mse, rel=1e-6)       # the exact risk on the clean grid
    # the student trained on the mixed target: generation 1 is not a copy of generation 0
    assert record["generations"][1]["test"]["mse"] != record["generations"][0]["test"]["mse"]


def test_sweep_rolls_up_regression_and_the_cli_prints_mse(tmp_path, capsys):
    base = TrainConfig(**{**TINY, "generations": 2, "epochs": 2})
    configs = [base.replace(gt_weight=w, seed=s) for w in (0.0, 1.0) for s in (0, 1)]
    records = run_sweep(configs, tmp_path / "sweep")
    assert len(records) == 4
    import csv
    with open(tmp_path / "sweep" / "rollup.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["gt_weight"] for r in rows} == {"0.0", "1.0"} and all(r["n_seeds"] == "2" for r in rows)
    student = next(r for r in rows if r["generation"] == "1" and r["gt_weight"] == "0.0")
    mses = [rec["generations"][1]["test"]["mse"] for rec in records if rec["config"]["gt_weight"] == 0.0]
    assert float(student["test_mse_mean"]) == pytest.approx(np.mean(mses), rel=1e-12)
    assert cli.main(["train", "--dataset", "ba_toy", "--method", "sd_reg", "--model", "mlp", "--model-kwargs",
                     '{"hidden": 16, "depth": 1}', "--generations", "2", "--epochs", "2", "--device", "cpu",
                     "--out-dir", str(tmp_path / "cli")]) == 0
    out = capsys.readouterr().out
    assert "val_mse" in out and "test_rmse" in out and "mse_outputs" in out
    assert cli.main(["train", "--dataset", "ba_toy", "--method", "sd_kd", "--epochs", "1", "--device", "cpu",
                     "--out-dir", str(tmp_path / "refused")]) != 0
    assert "'sd_kd'" in capsys.readouterr().err
