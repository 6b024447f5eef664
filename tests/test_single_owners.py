"""Issue 20, section 2: each rule is decided in one place, and every caller goes through it.

Each test drives the rule through its owner and checks that the callers use that owner (the same object, or a
spy on the owner that sees their calls, or the owner's exact message), so a second copy of a rule would fail here.
"""
from __future__ import annotations

import hashlib
import math
import os

import numpy as np
import pytest
import torch

import kerneldistill._validation as kv
from deepdistill.core import config as cfgmod
from deepdistill.core import losses as L
from deepdistill.core.config import METHODS, GenerationSettings, TrainConfig, one_or_list, stable_hash
from deepdistill.core.threads import torch_threads
from deepdistill.engine import runs

TINY = dict(dataset="digits", model="mlp", model_kwargs={"hidden": 8, "depth": 1}, n_train=120, epochs=1,
            batch_size=64, device="cpu")


def _message(fn, *args, **kwargs) -> str:
    with pytest.raises(ValueError) as err:
        fn(*args, **kwargs)
    return str(err.value)


# --- the range of gt_weight and allow_any_weight: kerneldistill._validation.check_gt_weight ---------------------

def test_gt_weight_range_has_one_owner_and_one_message(monkeypatch):
    s, t, y = torch.zeros(2, 3), torch.zeros(2, 3), torch.tensor([0, 1])
    owner = _message(kv.check_gt_weight, 1.5)
    assert owner.startswith("`gt_weight` must lie in [0, 1] (the weight on the ground truth); got 1.5.")
    # Every deep caller words it the same way: the public losses, the registry, the config.
    assert _message(L.hinton_kd_loss, s, t, y, gt_weight=1.5, temperature=2.0) == owner
    assert _message(L.mixed_target_mse_loss, s, t, y, gt_weight=1.5) == owner
    assert _message(L.LOSSES["mse_mixed"].bind, gt_weight=1.5) == owner
    assert _message(TrainConfig, method="sd_kd", gt_weight=1.5) == owner
    from kerneldistill import KernelDistiller
    assert _message(KernelDistiller(gt_weight=1.5).fit, np.eye(3), np.zeros(3)) == owner
    # ... because they call it: a spy on the owner sees the losses' and the config's checks.
    seen, real = [], kv.check_gt_weight

    def spy(value, **kwargs):
        seen.append((value, kwargs.get("allow_any_weight")))
        return real(value, **kwargs)

    monkeypatch.setattr(kv, "check_gt_weight", spy)
    L.zhang_sabuncu_loss(s, t, y, gt_weight=0.25)
    TrainConfig(method="sd_mse", gt_weight=[1.5, -0.5], generations=3, allow_any_weight=True)
    assert (0.25, False) in seen and (1.5, True) in seen and (-0.5, True) in seen


def test_the_losses_that_take_any_weight_are_the_registrys_and_refuse_with_one_message():
    fitting = [n for n, sp in L.LOSSES.items() if sp.accepts_any_weight]
    assert fitting == ["mse_mixed", "mse_logits", "mse_outputs"]
    # The docstrings say so (they used to name mse_mixed as the only one).
    for doc in (L.__doc__, L.LossSpec.__doc__, cfgmod.MethodSpec.accepts_any_weight.__doc__):
        assert "mse_logits" in doc and "mse_outputs" in doc or "sd_logits" in doc and "sd_reg" in doc
    loss_msg = _message(L.LOSSES["kd"].bind, gt_weight=1.5, allow_any_weight=True)
    config_msg = _message(TrainConfig, method="sd_kd", gt_weight=1.5, allow_any_weight=True)
    # One template: the config names the method and the methods that accept any weight, the loss the losses.
    tail = ("cannot use `gt_weight` 1.5 outside [0, 1], even with allow_any_weight=True: its loss ('kd') mixes "
            "cross-entropy/KL terms")
    assert loss_msg.startswith("loss 'kd' " + tail) and config_msg.startswith("method 'sd_kd' " + tail)
    assert loss_msg.endswith("'mse_mixed', 'mse_logits', 'mse_outputs'.")
    assert config_msg.endswith("methods 'sd_mse', 'sd_logits', 'sd_reg'.")


# --- where a shared generation lives: engine.runs.generation_home / link_generation --------------------------

def test_generation_home_is_the_one_rule_of_every_backend(tmp_path):
    from deepdistill.drivers import local_runner, ray_backend
    from deepdistill.engine import train
    assert local_runner.generation_home is ray_backend.generation_home is train.generation_home is runs.generation_home
    config = TrainConfig(**TINY, method="sd_kd", generations=2)
    run_dir, cache = tmp_path / "runs" / config.run_id(), tmp_path / "generations"
    assert runs.generation_home(config, 1, run_dir) == (f"{config.run_id()}/1", run_dir)
    key, folder = runs.generation_home(config, 0, run_dir, cache)
    assert key == config.prefix_id(0) and folder == cache / config.prefix_id(0)
    # Generation 0 is shared with plain "ce" (same labels-alone training), generation 1 is not.
    ce = TrainConfig(**TINY, method="ce", generations=2)
    assert runs.generation_home(ce, 0, tmp_path / "x", cache)[1] == folder
    assert runs.generation_home(ce, 1, tmp_path / "x", cache)[1] != runs.generation_home(config, 1, run_dir, cache)[1]
    # A checkpoint the run folder already holds is offered to the cache (the same file: a hard link) ...
    run_dir.mkdir(parents=True)
    runs.checkpoint_path(run_dir, 1).write_bytes(b"finished before")
    _, folder1 = runs.generation_home(config, 1, run_dir, cache)
    assert os.path.samefile(runs.checkpoint_path(folder1, 1), runs.checkpoint_path(run_dir, 1))
    # ... and link_generation gives a run folder the cache's checkpoint.
    other = tmp_path / "other"
    runs.link_generation(config, 1, other, cache)
    assert runs.checkpoint_path(other, 1).read_bytes() == b"finished before"
    runs.link_generation(config, 0, tmp_path / "nothing")            # no cache: nothing to link
    assert not (tmp_path / "nothing").exists()


# --- the fields that identify a data split, and the split cache: engine.runs -----------------------------------

def test_split_fields_and_cache_have_one_owner(monkeypatch):
    from analysis.figures import deep_runs, sweep_runs
    from deepdistill.drivers import local_runner
    assert isinstance(local_runner._SPLITS, runs.SplitCache) and local_runner._SPLITS.max_size == 1
    assert isinstance(deep_runs.SPLITS, runs.SplitCache) and isinstance(sweep_runs.SPLITS, runs.SplitCache)
    calls = []
    monkeypatch.setattr(runs, "load_dataset", lambda name, **kw: calls.append((name, kw)) or object())
    config = TrainConfig(**TINY, method="ce", data_options={"test_fraction": 0.3})
    runs.load_splits(config)
    name, kwargs = calls[-1]
    # load_splits reads exactly DATA_FIELDS (data_root as root, data_options spread out).
    read = {"dataset": name, "data_root": kwargs.pop("root"),
            "data_options": {k: kwargs.pop(k) for k in list(kwargs) if k in config.data_options}, **kwargs}
    assert set(read) == set(runs.DATA_FIELDS)
    assert all(read[k] == getattr(config, k) for k in runs.DATA_FIELDS)
    # The cache: one load per data split, whatever else differs; max_size evicts the oldest.
    cache = runs.SplitCache(max_size=1)
    a = cache(config)
    assert cache(config.replace(method="ls", lr=0.5)) is a and len(calls) == 2
    b = cache(config.replace(seed=1))
    assert b is not a and len(cache) == 1 and cache(config) is not a and len(calls) == 4
    assert runs.splits_key(config) == runs.splits_key(config.replace(method="ce")) != runs.splits_key(
        config.replace(label_noise=0.1))
    with pytest.raises(ValueError, match="`max_size` must be None or an integer >= 1; got 0"):
        runs.SplitCache(max_size=0)


# --- torch_threads: core.threads ----------------------------------------------------------------------------

def test_torch_threads_has_one_owner():
    from deepdistill.drivers import local_runner
    from deepdistill.studies import bridge
    assert local_runner.torch_threads is bridge.torch_threads is torch_threads
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with torch_threads(None):
        assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match=r"`n` \(torch threads\) must be None or an integer >= 1; got 0"):
        with torch_threads(0):
            pass
    with pytest.raises(RuntimeError):
        with torch_threads(1):
            raise RuntimeError("restored on the way out")
    assert torch.get_num_threads() == before


# --- the config hash: core.config.stable_hash ------------------------------------------------------------------

def test_one_hash_for_run_ids_and_the_bridge_cache():
    from deepdistill.studies import bridge
    assert bridge.stable_hash is stable_hash
    d = {"b": [1.5, None], "a": 1}
    # SHA-1 of the canonical JSON (sorted keys), 12 hex digits: pinned, since stored folders are named by it.
    assert stable_hash(d) == hashlib.sha1(b'{"a": 1, "b": [1.5, null]}').hexdigest()[:12] == "36f98f82dd2d"
    config = TrainConfig(**TINY)
    assert config.run_id() == stable_hash(config.identity())


# --- check_ridge: kerneldistill._validation ---------------------------------------------------------------------

def test_check_ridge_has_one_owner():
    from deepdistill.engine import lazy
    assert lazy.check_ridge is kv.check_ridge
    with pytest.raises(TypeError, match=r"`ridge` must be a real number > 0"):
        lazy.check_ridge("1")
    with pytest.raises(ValueError, match=r"`ridge` must be a finite real number > 0"):
        lazy.check_ridge(-1.0)


# --- a one-element list becoming a number: core.config.one_or_list -------------------------------------------

def test_one_element_lists_become_numbers_in_the_config_only(monkeypatch):
    assert one_or_list([0.3]) == 0.3 and one_or_list((0.3, 0.4)) == [0.3, 0.4] and one_or_list(0.3) == 0.3
    seen = []
    real = cfgmod.one_or_list
    monkeypatch.setattr(cfgmod, "one_or_list", lambda v: seen.append(v) or real(v))
    # Beta reads one weight for every generation: a one-element list is that number, not an error.
    assert TrainConfig(**TINY, method="beta", gt_weight=[0.3]).gt_weight == 0.3
    assert [0.3] in seen
    # The command line passes its list as it is; the config makes it a number.
    from deepdistill.cli import build_parser, config_fields
    args = build_parser().parse_args(["train", "--method", "sd_kd", "--gt-weight", "0.3", "--temperature", "2"])
    fields = config_fields(args)
    assert fields["gt_weight"] == [0.3]
    config = TrainConfig.from_dict(fields)
    assert config.gt_weight == 0.3 and config.temperature == 2.0
    assert config.run_id() == TrainConfig.from_dict({**fields, "gt_weight": 0.3, "temperature": 2.0}).run_id()


# --- "generation 0 trains on the labels alone": GenerationSettings.labels_alone ---------------------------------

def test_generation_zero_of_every_teacher_method_is_labels_alone():
    s = torch.randn(4, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    t = torch.randn(4, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 1])
    for name, spec in METHODS.items():
        dataset = "sine" if name == "sd_reg" else "digits"
        config = TrainConfig(method=name, dataset=dataset, generations=2)
        first = config.generation_settings(0)
        if not spec.uses_teacher:
            assert not first.uses_teacher
            continue
        assert first == GenerationSettings.labels_alone(0, spec.loss_names(config.ls_convention)[0]), name
        assert first.gt_weight == L.LABELS_ALONE_GT_WEIGHT == 1.0 and not first.uses_teacher
        # At that weight the loss trains on its labels term: without a teacher, the same value as with one.
        loss = L.LOSSES[first.loss]
        if loss.needs_teacher and loss.targets == "labels":
            bound = loss.bind(gt_weight=first.gt_weight)
            assert torch.equal(bound(s, y), bound(s, y, t)), name


# --- whether a method reads gt_weight (and its other knobs): MethodSpec.reads ----------------------------------

def test_which_knobs_a_method_reads_has_one_owner(monkeypatch):
    from deepdistill.drivers.sweep import expand_grid
    for name, spec in METHODS.items():
        dataset = "sine" if name == "sd_reg" else "digits"
        ident = TrainConfig(method=name, dataset=dataset).identity()
        for knob in ("smoothing", "ls_convention", "beta_a"):
            assert (knob in ident) == spec.reads(knob), (name, knob)
        assert spec.reads("gt_weight") == spec.uses_gt_weight and spec.reads("temperature") == spec.uses_temperature
        for knob in ("gt_weight", "temperature"):
            if not spec.reads(knob):
                with pytest.raises(ValueError, match=f"method '{name}' does not use `{knob}`"):
                    TrainConfig(method=name, dataset=dataset, **{knob: 0.5})
    with pytest.raises(ValueError, match="unknown method knob 'lr'"):
        METHODS["ce"].reads("lr")
    asked = []
    real = cfgmod.MethodSpec.reads
    monkeypatch.setattr(cfgmod.MethodSpec, "reads", lambda self, knob: asked.append(knob) or real(self, knob))
    configs = expand_grid(dict(TINY), methods=["ce", "sd_kd"], gt_weights=[0.2, 0.8], seeds=[0])
    assert [(c.method, c.gt_weight) for c in configs] == [("ce", None), ("sd_kd", 0.2), ("sd_kd", 0.8)]
    assert "gt_weight" in asked


# --- eigendecomposition and PSD handling: kerneldistill.spectrum.psd_evals / eigh_psd -------------------------

def test_psd_rule_has_one_owner_for_the_estimator_and_the_bridge():
    from kerneldistill import KernelDistiller
    from kerneldistill.spectrum import eigh_psd, psd_evals
    from deepdistill.studies.bridge import _kernel_quadratic
    indefinite = np.array([[1.0, 2.0, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 1.0]])   # eigenvalue -1 of 3
    y, K_test = np.array([1.0, -1.0, 0.5]), np.ones((2, 3))
    with pytest.raises(ValueError, match="must be a positive semi-definite kernel.*-1"):
        KernelDistiller("precomputed").fit(indefinite, y)
    # The bridge used to clip -1 to 0 silently ("as KernelDistiller does"); now it refuses it as the estimator does.
    with pytest.raises(ValueError, match="the empirical NTK's Gram matrix must be a positive semi-definite kernel.*-1"):
        _kernel_quadratic(indefinite, K_test, y, np.zeros(2), 0.1)
    # Round-off negatives of a rank-deficient PSD Gram matrix are clipped, by the same rule in both.
    Z = np.random.default_rng(0).normal(size=(20, 3))
    K = Z @ Z.T
    spec = eigh_psd(K)
    assert spec.evals.min() == 0.0 and spec.evals.dtype == np.float64
    model = KernelDistiller("precomputed", ridge=0.1).fit(K, np.ones(20))
    np.testing.assert_array_equal(model.evals_, spec.evals)
    np.testing.assert_array_equal(psd_evals(np.array([3.0, -1e-15]), 20, np.float64), [3.0, 0.0])
    with pytest.raises(ValueError, match="positive semi-definite"):
        psd_evals(np.array([3.0, -0.1]), 20, np.float64)
    q = _kernel_quadratic(K, np.ones((2, 20)), np.ones(20), np.zeros(2), 0.1)
    assert math.isfinite(q["gt_weight"])


# --- section 3: the loss registry takes its arguments by name -----------------------------------------------------

def test_registry_losses_take_what_they_use_by_name():
    import inspect
    for name, spec in L.LOSSES.items():
        params = inspect.signature(spec.compute).parameters
        for setting in L.SETTINGS:
            if setting in params:
                assert params[setting].kind is inspect.Parameter.KEYWORD_ONLY, (name, setting)
    assert L.LOSSES["ls_teacher_kd"].uses == ("student_logits", "teacher_logits", "temperature")
    assert L.LOSSES["beta"].uses == ("student_logits", "labels", "beta_targets", "gt_weight")
    # A loss gets only the settings it names, by name.
    got = {}
    spec = L.LossSpec("probe", lambda student_logits, teacher_logits, *, temperature: got.update(
        temperature=temperature, teacher=teacher_logits) or student_logits.sum(), "a probe")
    assert spec.needs_teacher and not spec.needs_beta_targets
    spec.bind(gt_weight=0.3, temperature=2.5, smoothing=0.1)(torch.ones(1, 2), torch.tensor([0]), torch.zeros(1, 2))
    assert got["temperature"] == 2.5 and torch.equal(got["teacher"], torch.zeros(1, 2))
    # Unknown names and positional settings are refused when the loss is declared, not at the first batch.
    with pytest.raises(ValueError, match=r"loss 'bad': `compute` takes unknown argument\(s\) \['s', 't'\]"):
        L.LossSpec("bad", lambda s, t: s, "swapped")
    with pytest.raises(ValueError, match=r"loss 'bad': the settings \['gt_weight'\] must be keyword-only"):
        L.LossSpec("bad", lambda student_logits, gt_weight: student_logits, "positional")


# --- section 3: the training loop alone -----------------------------------------------------------------------

def test_the_loop_is_its_own_module_and_the_old_names_still_import():
    from deepdistill.engine import loop, train
    for name in ("train_generation", "resolve_device", "predict_logits", "predict_features", "evaluate",
                 "NonFiniteLossError"):
        assert getattr(train, name) is getattr(loop, name), name
    source = open(loop.__file__).read()
    # The loop knows nothing of claims, run folders or the generation cache.
    for word in ("claims", "try_claim", "prefix_dir", "generation_home", "RECORD_FILE", "link_or_copy"):
        assert word not in source, word
