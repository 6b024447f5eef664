"""The multi-generation loop: it learns, it resumes exactly, it refuses what it must.

Sizes are tiny (scikit-learn's 8x8 digits, an MLP, a few epochs) so that the file runs in well under
a minute on 2 CPU cores; one test trains on MNIST-1D to check real learning.
"""
from __future__ import annotations

import json
import math

import pytest
import torch

from deepdistill.core.config import METHODS, TrainConfig, derive_seed
from deepdistill.engine.train import ConfigMismatchError, NonFiniteLossError, predict_logits, train_run

TINY = dict(dataset="digits", model="mlp", model_kwargs={"hidden": 32, "depth": 1}, n_train=400, epochs=3,
            batch_size=64, lr=1e-2, device="cpu")


def tiny(tmp_path, name="run", **changes) -> dict:
    return dict(TINY, out_dir=str(tmp_path / name), **changes)


def _weights(path):
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def _assert_same_run(rec_a: dict, rec_b: dict, dir_a, dir_b) -> None:
    assert len(rec_a["generations"]) == len(rec_b["generations"])
    for ga, gb in zip(rec_a["generations"], rec_b["generations"]):
        assert ga["selected_epoch"] == gb["selected_epoch"]
        assert ga["val"] == gb["val"] and ga["test"] == gb["test"]            # exactly equal on CPU
        assert [h["train_loss"] for h in ga["history"]] == [h["train_loss"] for h in gb["history"]]
        wa, wb = _weights(dir_a / f"generation_{ga['generation']}.pt"), _weights(dir_b / f"generation_{gb['generation']}.pt")
        assert wa.keys() == wb.keys()
        for k in wa:
            assert torch.equal(wa[k], wb[k]), k


# ------------------------------------------------------------------------------------------------
# Learning
# ------------------------------------------------------------------------------------------------

def test_mnist1d_mlp_beats_chance_by_a_wide_margin(tmp_path):
    # Measured: 0.54-0.58 test accuracy over seeds 0-4 with these settings (chance is 0.10).
    rec = train_run(dict(dataset="mnist1d", model="mlp", method="ce", generations=1, n_train=2000, epochs=12,
                         batch_size=64, optimizer="adamw", lr=1e-2, weight_decay=5e-4, schedule="cosine",
                         device="cpu", checkpoint_every=0, out_dir=str(tmp_path / "m")))
    gen = rec["generations"][0]
    assert gen["test"]["accuracy"] > 0.40
    assert gen["test"]["nll"] < math.log(10)                      # better than the uniform prediction


def test_every_method_runs_each_generation_with_its_loss(tmp_path):
    expected = {"ce": ("ce", "ce"), "ls": ("ls_muller", "ls_muller"), "beta": ("beta", "beta"), "sd_kd": ("ce", "kd"),
                "sd_mse": ("mse_mixed", "mse_mixed"), "sd_zs": ("ce", "zs"), "ls_kd": ("ls_muller", "ls_teacher_kd"),
                "sd_logits": ("mse_logits", "mse_logits")}
    # every classification method (sd_reg trains on regression data: tests/test_regression_runs.py)
    assert set(expected) | {"sd_reg"} == set(METHODS)
    for method, (first, later) in expected.items():
        rec = train_run(tiny(tmp_path, method, method=method, generations=2, epochs=1, checkpoint_every=0))
        g0, g1 = rec["generations"]
        assert (g0["loss"], g1["loss"]) == (first, later), method
        assert g1["teacher_cached"] == METHODS[method].uses_teacher
        # Generation 0 trains on the labels alone, except Beta smoothing, whose mix applies throughout.
        assert g0["gt_weight"] == (0.4 if method == "beta" else 1.0), method
        for split in ("val", "test"):
            assert 0.0 <= g1[split]["accuracy"] <= 1.0 and math.isfinite(g1[split]["nll"])
    # [S21]: teacher term only at T = 1; [ZS20]'s w = 0.4, T = 4 is gt_weight 0.6.
    assert TrainConfig(method="ls_kd", generations=2).generation_settings(1).gt_weight == 0.0
    assert TrainConfig(method="sd_zs").generation_settings(1).gt_weight == pytest.approx(0.6)


def test_generations_use_fresh_seeded_initialisations(tmp_path):
    # Method "ce" repeats generation 0; only the derived seeds differ between generations.
    rec = train_run(tiny(tmp_path, method="ce", generations=2, epochs=1))
    w0, w1 = _weights(tmp_path / "run/generation_0.pt"), _weights(tmp_path / "run/generation_1.pt")
    assert not torch.equal(w0["head.weight"], w1["head.weight"])
    assert len({derive_seed(0, 0, "init"), derive_seed(0, 1, "init"), derive_seed(1, 1, "init")}) == 3
    assert rec["generations"][0]["history"] != rec["generations"][1]["history"]


def test_gt_weight_and_temperature_per_generation():
    cfg = TrainConfig(method="sd_kd", generations=4, gt_weight=[0.9, 0.5, 0.1], temperature=2.0)
    got = [(s.gt_weight, s.temperature) for s in map(cfg.generation_settings, range(4))]
    assert got == [(1.0, 1.0), (0.9, 2.0), (0.5, 2.0), (0.1, 2.0)]


@pytest.mark.parametrize("selection", ["last", "best_val_accuracy", "best_val_nll"])
def test_selection_rule_picks_the_stated_epoch(tmp_path, selection):
    rec = train_run(tiny(tmp_path, method="ce", generations=1, epochs=4, selection=selection))
    gen = rec["generations"][0]
    hist = gen["history"]
    if selection == "last":
        want = 3
    elif selection == "best_val_accuracy":
        want = max(hist, key=lambda h: (h["val_accuracy"], -h["epoch"]))["epoch"]   # first of the best
    else:
        want = min(hist, key=lambda h: (h["val_nll"], h["epoch"]))["epoch"]
    assert gen["selected_epoch"] == want and gen["selection"] == selection
    # The kept weights are the selected epoch's: re-evaluating them gives that epoch's validation numbers.
    assert gen["val"]["accuracy"] == hist[want]["val_accuracy"]
    assert gen["val"]["nll"] == pytest.approx(hist[want]["val_nll"], rel=1e-12)


# ------------------------------------------------------------------------------------------------
# Teacher caching
# ------------------------------------------------------------------------------------------------

def test_cached_teacher_logits_equal_recomputed_ones(tmp_path):
    from deepdistill.core.data import load_dataset
    from deepdistill.core.models import build_model

    splits = load_dataset("digits", n_train=400)
    x, _ = splits.train.tensors
    torch.manual_seed(0)
    teacher = build_model("mlp", splits.input_shape, 10, hidden=32, depth=1)
    cached = predict_logits(teacher, x, batch_size=1024)                       # (n, K), once
    idx = torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(0))[:64]
    teacher.eval()
    with torch.no_grad():
        direct = teacher(x[idx])                                               # (64, K), per batch
    torch.testing.assert_close(cached[idx], direct, rtol=1e-6, atol=1e-6)

    # Whole runs: the cached path and the per-batch path train the same student.
    a = train_run(tiny(tmp_path, "cached", method="sd_kd", generations=2, cache_teacher=True))
    b = train_run(tiny(tmp_path, "batched", method="sd_kd", generations=2, cache_teacher=False))
    assert a["generations"][1]["teacher_cached"] and not b["generations"][1]["teacher_cached"]
    for split in ("val", "test"):
        for metric, value in a["generations"][1][split].items():
            assert value == pytest.approx(b["generations"][1][split][metric], rel=1e-4, abs=1e-5), (split, metric)


# ------------------------------------------------------------------------------------------------
# Checkpoints and resume
# ------------------------------------------------------------------------------------------------

class Interrupt(Exception):
    pass


@pytest.mark.parametrize("method", ["sd_kd", "beta"])
def test_interrupted_run_resumes_to_the_uninterrupted_result(tmp_path, method):
    cfg = dict(method=method, generations=2, epochs=3)
    ref = train_run(tiny(tmp_path, "ref", **cfg))

    def stop_mid_generation_1(generation, epoch, metrics):
        if (generation, epoch) == (1, 1):
            raise Interrupt

    with pytest.raises(Interrupt):
        train_run(tiny(tmp_path, "cut", **cfg), on_epoch_end=stop_mid_generation_1)
    cut = tmp_path / "cut"
    assert (cut / "generation_0.pt").exists() and (cut / "generation_1.partial.pt").exists()
    assert not (cut / "record.json").exists()                     # no record for an unfinished run

    seen = []
    resumed = train_run(tiny(tmp_path, "cut", **cfg), on_epoch_end=lambda **kw: seen.append((kw["generation"], kw["epoch"])))
    assert seen == [(1, 2)]                                        # neither generation 0 nor epochs 0-1 redone
    assert not (cut / "generation_1.partial.pt").exists()
    _assert_same_run(ref, resumed, tmp_path / "ref", cut)


def test_more_generations_extend_a_finished_run(tmp_path):
    ref = train_run(tiny(tmp_path, "ref", method="sd_zs", generations=3, gt_weight=[0.6, 0.3]))
    train_run(tiny(tmp_path, "grow", method="sd_zs", generations=2, gt_weight=0.6))
    seen = []
    grown = train_run(tiny(tmp_path, "grow", method="sd_zs", generations=3, gt_weight=[0.6, 0.3]),
                      on_epoch_end=lambda **kw: seen.append(kw["generation"]))
    assert set(seen) == {2}
    _assert_same_run(ref, grown, tmp_path / "ref", tmp_path / "grow")
    # Asking the finished 3-generation folder for fewer generations would replace its record: refused.
    record_before = (tmp_path / "grow" / "record.json").read_bytes()
    with pytest.raises(ConfigMismatchError, match="generations"):
        train_run(tiny(tmp_path, "grow", method="sd_zs", generations=2, gt_weight=0.6))
    assert (tmp_path / "grow" / "record.json").read_bytes() == record_before


def test_finished_run_is_returned_without_training(tmp_path):
    first = train_run(tiny(tmp_path, epochs=1, generations=2))
    calls = []
    again = train_run(tiny(tmp_path, epochs=1, generations=2), on_epoch_end=lambda **kw: calls.append(kw))
    assert calls == [] and again == first


def test_resume_with_a_different_config_is_refused_naming_the_field(tmp_path):
    train_run(tiny(tmp_path, epochs=1, generations=2))
    with pytest.raises(ConfigMismatchError, match=r"\['lr'\].*0\.01.*0\.02"):
        train_run(tiny(tmp_path, epochs=1, generations=2, lr=2e-2))
    with pytest.raises(ConfigMismatchError, match=r"generation 1.*gt_weight"):
        train_run(tiny(tmp_path, epochs=1, generations=2, gt_weight=0.25))
    stored = json.loads((tmp_path / "run" / "config.json").read_text())
    assert stored["lr"] == 1e-2 and stored["gt_weight"] == 0.5             # a refused resume writes nothing
    # Operational fields may change (another device spelling, checkpoint cadence).
    train_run(tiny(tmp_path, epochs=1, generations=2, checkpoint_every=0, device="auto"))


# ------------------------------------------------------------------------------------------------
# Bad input
# ------------------------------------------------------------------------------------------------

def test_nan_loss_stops_naming_generation_epoch_and_step(tmp_path):
    with pytest.raises(NonFiniteLossError, match=r"generation 0, epoch 0, step \d+"):
        train_run(tiny(tmp_path, method="ce", optimizer="sgd", lr=1e30, generations=1))
    assert not (tmp_path / "run" / "record.json").exists()


@pytest.mark.parametrize("changes, error, pattern", [
    ({"dataset": "imagenet"}, ValueError, r"unknown dataset 'imagenet'.*mnist1d"),
    ({"model": "vit"}, ValueError, r"unknown model 'vit'.*cnn1d"),
    ({"method": "kd"}, ValueError, r"unknown method 'kd'.*sd_kd"),
    ({"gt_weight": 1.5}, ValueError, r"`gt_weight`.*\[0, 1\].*1\.5"),
    ({"gt_weight": -0.1}, ValueError, r"`gt_weight`.*\[0, 1\]"),
    ({"temperature": 0.0}, ValueError, r"`temperature` must be > 0; got 0\.0"),
    ({"temperature": [2.0, -1.0]}, ValueError, r"`temperature` must be > 0"),
    ({"gt_weight": [0.5, 0.5, 0.5]}, ValueError, r"one value per generation >= 1.*2 value"),
    ({"method": "ce", "gt_weight": 0.5}, ValueError, r"method 'ce' does not use `gt_weight`"),
    ({"optimizer": "adam"}, ValueError, r"unknown optimizer 'adam'.*adamw"),
    ({"epochs": 0}, ValueError, r"`epochs` must be an integer >= 1; got 0"),
    ({"lr": -1.0}, ValueError, r"`lr` must be in \(0"),
    ({"device": "tpu"}, ValueError, r"unknown device 'tpu'"),
])
def test_bad_config_values_are_named(changes, error, pattern):
    with pytest.raises(error, match=pattern):
        TrainConfig.from_dict(dict({"method": "sd_kd", "generations": 3}, **changes))


def test_unknown_config_key_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"unknown config key\(s\) \['learning_rate'\].*'lr'"):
        TrainConfig.from_dict({"learning_rate": 0.1})


def test_allow_any_weight_lifts_the_range_check():
    # Only for sd_mse, whose loss stays bounded below for any weight (see the refusal test below).
    assert TrainConfig(method="sd_mse", gt_weight=1.5, allow_any_weight=True).gt_weight == 1.5
    cfg = TrainConfig(method="sd_mse", generations=3, gt_weight=[1.5, -0.5], allow_any_weight=True)
    assert [cfg.generation_settings(g).gt_weight for g in range(3)] == [1.0, 1.5, -0.5]


@pytest.mark.parametrize("method", ["sd_kd", "sd_zs", "beta"])
def test_allow_any_weight_is_refused_for_losses_unbounded_below(method):
    # A weight outside [0, 1] puts a negative coefficient on a cross-entropy/KL term: refused before
    # any training, naming the method, the reason and the alternative.
    with pytest.raises(ValueError, match=rf"method '{method}'.*1\.5.*unbounded below.*'sd_mse'"):
        TrainConfig(method=method, gt_weight=1.5, allow_any_weight=True)
    with pytest.raises(ValueError, match=rf"method '{method}'.*-0\.5.*unbounded below"):
        TrainConfig(method=method, gt_weight=-0.5, allow_any_weight=True)
    # Inside [0, 1] the flag changes nothing.
    assert TrainConfig(method=method, gt_weight=0.3, allow_any_weight=True).gt_weight == 0.3
    assert not METHODS[method].accepts_any_weight and METHODS["sd_mse"].accepts_any_weight


def test_sd_mse_trains_with_weights_outside_the_unit_interval(tmp_path):
    # [BA21]'s loss is bounded below for any weight: generations at 1.5 and -0.5 train to finite numbers.
    rec = train_run(dict(dataset="digits", model="mlp", model_kwargs={"hidden": 8, "depth": 1}, n_train=300, epochs=2,
                         batch_size=64, lr=1e-2, device="cpu", method="sd_mse", generations=3, gt_weight=[1.5, -0.5],
                         allow_any_weight=True, checkpoint_every=0, out_dir=str(tmp_path / "run")))
    assert [(g["loss"], g["gt_weight"]) for g in rec["generations"]] == [("mse_mixed", 1.0), ("mse_mixed", 1.5),
                                                                         ("mse_mixed", -0.5)]
    for gen in rec["generations"]:
        assert all(math.isfinite(h["train_loss"]) for h in gen["history"])
        for split in ("val", "test"):
            assert all(math.isfinite(v) for v in gen[split].values()), (gen["generation"], split)
            assert 0.0 <= gen[split]["accuracy"] <= 1.0


def test_missing_data_folder_error_passes_through(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar10"):
        train_run(dict(dataset="cifar10", model="resnet18", data_root=str(tmp_path / "nowhere"), device="cpu",
                       out_dir=str(tmp_path / "run")))


def test_deterministic_flag_is_scoped_to_the_run_and_amp_is_off_on_cpu(tmp_path):
    before = torch.are_deterministic_algorithms_enabled()
    rng_before = torch.random.get_rng_state()
    rec = train_run(tiny(tmp_path, method="ce", generations=1, epochs=1, deterministic=True, amp="bf16"))
    assert torch.are_deterministic_algorithms_enabled() == before
    assert torch.equal(torch.random.get_rng_state(), rng_before)     # the caller's RNG is untouched
    assert rec["amp_active"] is False                                 # autocast is for CUDA only
    plain = train_run(tiny(tmp_path, "plain", method="ce", generations=1, epochs=1))
    assert plain["generations"][0]["test"] == rec["generations"][0]["test"]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_run_with_amp(tmp_path):
    rec = train_run(tiny(tmp_path, device="cuda", amp="bf16", generations=2))
    assert rec["device"]["type"] == "cuda" and rec["amp_active"]
    assert rec["generations"][1]["test"]["accuracy"] > 0.5
