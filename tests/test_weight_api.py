"""The weight estimate for your own network, as a user meets it: top-level imports, own nn.Module and
loaders, a result that holds the student, reproducible calls, failed estimators that show and are
never chosen, regression, saving and loading. Tiny sizes (digits, a small MLP, a few epochs)."""
from __future__ import annotations

import csv
import json
import math
import re

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from deepdistill import (EstimatorResult, WeightEstimate, estimate_gt_weight, estimate_gt_weight_for_model,
                         make_train_fn)
from deepdistill.core.io import to_jsonable
from deepdistill.core.metrics import softmax, summarize


# Tiny networks on a shared 2-core machine: one intra-op thread is several times faster than two.
pytestmark = pytest.mark.usefixtures("one_thread_per_module")


class MLP(nn.Module):
    """A user's own network: logits out, and penultimate ``features`` for the kernel estimators."""

    def __init__(self, hidden=24):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(64, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, 10)

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        return self.head(self.body(x))


@pytest.fixture(scope="module")
def digits_loaders():
    x, y = load_digits(return_X_y=True)
    x, y = torch.tensor(x / 16.0, dtype=torch.float32), torch.tensor(y)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    rng = np.random.default_rng(0)
    y_train = y[perm[:600]].clone()
    noisy = torch.as_tensor(rng.random(600) < 0.3)                    # 30% label noise: self-distillation helps
    y_train[noisy] = torch.as_tensor(rng.integers(0, 10, int(noisy.sum())))
    # Shuffled, with the loader's own generator: its state moves on every time it is iterated.
    train = DataLoader(TensorDataset(x[perm[:600]], y_train), batch_size=64, shuffle=True,
                       generator=torch.Generator().manual_seed(0))
    val = DataLoader(TensorDataset(x[perm[900:1300]], y[perm[900:1300]]), batch_size=128, shuffle=True)
    test = DataLoader(TensorDataset(x[perm[1300:]], y[perm[1300:]]), batch_size=128)
    return train, val, test, (x[perm[1300:]], y[perm[1300:]])


def _estimate(train, val, test, **kw):
    train_fn = make_train_fn(MLP, train, method="sd_kd", temperature=4.0, epochs=3, lr=1e-2, seed=0)
    return estimate_gt_weight_for_model(train_fn, val, test_loader=test, train_loader=train,
                                        estimators=("kernel_features", "two_run"), kernel="rbf", **kw)


def test_a_users_script_gets_a_reproducible_student(digits_loaders, tmp_path):
    train, val, test, (x_test, y_test) = digits_loaders
    result = _estimate(train, val, test, out_dir=tmp_path / "first")
    assert isinstance(result, WeightEstimate)
    assert result.chosen in ("kernel_features", "two_run") and result.estimators[result.chosen].ok
    assert result.gt_weight == result.estimators[result.chosen].gt_weight
    assert isinstance(result.student, MLP) and isinstance(result.teacher, MLP) and not result.student.training
    # The reported metrics are those of the returned modules, recomputed here from scratch.
    with torch.no_grad():
        student_probs = softmax(result.student(x_test).double().numpy())
        teacher_probs = softmax(result.teacher(x_test).double().numpy())
    assert result.student_metrics["test"] == summarize(student_probs, y_test.numpy())
    assert result.teacher_metrics["test"] == summarize(teacher_probs, y_test.numpy())
    assert result.estimators[result.chosen].test == result.student_metrics["test"]

    # A second call (a new train_fn on the same, moved-on loaders) gives the same weight, and bitwise
    # the same student.
    again = _estimate(train, val, test)
    assert again.gt_weight == result.gt_weight and again.chosen == result.chosen
    assert {n: e.unconstrained for n, e in again.estimators.items()} == \
        {n: e.unconstrained for n, e in result.estimators.items()}
    for (name, a), b in zip(result.student.state_dict().items(), again.student.state_dict().values()):
        assert torch.equal(a, b), name
    assert again.student_metrics == result.student_metrics

    # Saved and loaded: the numbers, and the networks through the user's class.
    loaded = WeightEstimate.load(tmp_path / "first", MLP)
    assert to_jsonable(loaded.to_dict()) == to_jsonable(result.to_dict())
    for a, b in zip(loaded.student.state_dict().values(), result.student.state_dict().values()):
        assert torch.equal(a, b)
    assert WeightEstimate.load(tmp_path / "first").student is None      # no class given: numbers only


def test_make_train_fn_is_the_toolkit_loop_seeded_per_call(digits_loaders, tmp_path):
    from deepdistill.core.data import load_dataset
    from deepdistill.core.models import build_model
    from deepdistill.engine.runs import load_generation
    from deepdistill.engine.train import train_run

    cfg = dict(dataset="digits", model="mlp", model_kwargs={"hidden": 16, "depth": 1}, method="sd_kd", epochs=2,
               batch_size=32, lr=1e-2, selection="last", gt_weight=0.3, temperature=2.0, generations=2, seed=3,
               n_train=300, device="cpu", checkpoint_every=0)
    train_run(cfg, tmp_path)
    splits = load_dataset("digits", seed=3, n_train=300)
    loader = DataLoader(splits.train, batch_size=32, shuffle=True)

    def factory():
        return build_model("mlp", splits.input_shape, splits.num_classes, hidden=16, depth=1)

    train_fn = make_train_fn(factory, loader, method="sd_kd", temperature=2.0, epochs=2, lr=1e-2, seed=3)
    state = torch.get_rng_state()
    teacher = train_fn(None, None)
    student = train_fn(0.3, teacher)
    assert torch.equal(torch.get_rng_state(), state)                 # the caller's random state is untouched
    for g, model in ((0, teacher), (1, student)):
        ref, _ = load_generation(tmp_path, g, train_run.__globals__["ensure_config"](cfg), splits)
        for name, value in ref.state_dict().items():
            assert torch.equal(model.state_dict()[name], value), (g, name)
    # The call's own seed overrides make_train_fn's; the same seed gives the same network again.
    other = train_fn(None, None, seed=4)
    assert not torch.equal(other.state_dict()["head.weight"], teacher.state_dict()["head.weight"])
    assert torch.equal(train_fn(None, None, seed=4).state_dict()["head.weight"], other.state_dict()["head.weight"])
    with pytest.raises(ValueError, match="integer class labels"):
        make_train_fn(factory, [(torch.zeros(4, 64), torch.zeros(4))])
    with pytest.raises(ValueError, match="method"):
        make_train_fn(factory, loader, method="ce")


class _Separable(nn.Module):
    """Logistic regression on 2-D points; its ``features`` are one coordinate, so a linear kernel on them
    (rank 1) cannot fit the labels as closely as the network does: the ridge match is unreachable."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 3)

    def features(self, x):
        return x[:, :1]

    def forward(self, x):
        return self.lin(x)


def test_a_failed_surrogate_shows_its_status_and_is_never_chosen(tmp_path):
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[0.0, 4.0], [4.0, 0.0], [-4.0, -4.0]])
    y = torch.arange(240) % 3
    x = centres[y] + torch.randn(240, 2, generator=g)
    train, val = DataLoader(TensorDataset(x[:160], y[:160]), batch_size=40), [(x[160:], y[160:])]
    trained_at = []

    def train_fn(gt_weight, teacher, seed):
        trained_at.append(gt_weight)
        torch.manual_seed(seed)
        model = _Separable()
        opt = torch.optim.Adam(model.parameters(), lr=0.1)
        w = 1.0 if gt_weight is None else gt_weight
        for _ in range(60):
            logp = torch.log_softmax(model(x[:160]), dim=1)
            loss = -w * logp.gather(1, y[:160, None]).mean()
            if teacher is not None:
                with torch.no_grad():
                    target = torch.softmax(teacher(x[:160]), dim=1)
                loss = loss - (1 - w) * (target * logp).sum(1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return model.eval()

    result = estimate_gt_weight_for_model(train_fn, val, test_loader=val, train_loader=train, seed=0,
                                          estimators=("kernel_features", "one_shot_features", "two_run"),
                                          kernel="linear", out_dir=tmp_path)
    for name in ("kernel_features", "one_shot_features"):
        entry = result.estimators[name]
        assert not entry.ok and "ridge match unreachable" in entry.status
        assert entry.gt_weight is None and entry.test is None and entry.training_runs == 1   # the teacher only
    two = result.estimators["two_run"]
    # chosen even when only "uncertain" (a wide interval is a warning, not a failure)
    assert result.chosen == "two_run" and (two.ok or two.status.startswith("uncertain: "))
    # The teacher, the alpha = 0 student, and a student at the chosen weight unless one exists already.
    assert trained_at == [None, 0.0] + ([] if result.gt_weight in (0.0, 1.0) else [result.gt_weight])
    # Visible in the table, the CSV and the JSON.
    assert result.table().count("FAILED: ridge match unreachable") == 2
    rows = {line.split(",")[0]: line for line in (tmp_path / "estimate_weight.csv").read_text().splitlines()}
    assert "ridge match unreachable" in rows["kernel_features"] and next(csv.reader([rows["two_run"]]))[1] == two.status
    saved = json.loads((tmp_path / "estimate_weight.json").read_text())
    assert saved["chosen"] == "two_run"
    assert "ridge match unreachable" in saved["approaches"]["one_shot_features"]["status"]
    assert saved["approaches"]["kernel_features"]["gt_weight"] is None


def test_regression_end_to_end_with_a_users_loop():
    # A user's regression network, loaders and training loop; criterion "mse" on raw outputs.
    g = torch.Generator().manual_seed(1)
    x = torch.rand(300, 1, generator=g) * 6 - 3
    y = torch.sin(2 * x) + 0.4 * torch.randn(300, 1, generator=g)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(1, 32), nn.Tanh())
            self.out = nn.Linear(32, 1)

        def features(self, x):
            return self.body(x)

        def forward(self, x):
            return self.out(self.body(x))

    train = DataLoader(TensorDataset(x[:200], y[:200]), batch_size=50, shuffle=True)
    val, test = DataLoader(TensorDataset(x[200:250], y[200:250])), DataLoader(TensorDataset(x[250:], y[250:]))

    def train_fn(gt_weight, teacher, seed):
        torch.manual_seed(seed)
        model = Net()
        opt = torch.optim.Adam(model.parameters(), lr=0.03)
        target = y[:200] if teacher is None else gt_weight * y[:200] + (1 - gt_weight) * teacher(x[:200]).detach()
        for _ in range(100):                                           # MSE to the mixed target [BA21]
            loss = ((model(x[:200]) - target) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        return model.eval()

    result = estimate_gt_weight_for_model(train_fn, val, test_loader=test, train_loader=train, criterion="mse",
                                          estimators=("two_run", "kernel_features"), grid=[0.0, 0.5, 1.0], seed=0,
                                          kernel="rbf")
    # Every run uses seed 0 (no seed noise to measure): the check's floor is the validation bootstrap
    # alone, and a status other than "ok" must then be the check's words.
    two_run = result.estimators["two_run"]
    assert result.criterion == "mse" and two_run.has_weight
    assert result.chosen == ("two_run" if two_run.ok else "kernel_features")   # the first "ok" one is chosen
    assert two_run.ok or "the affine model does not hold here: predicted" in two_run.status
    assert isinstance(result.student, Net)
    with torch.no_grad():
        mse = float(np.mean((result.student(x[250:]).double().numpy() - y[250:].double().numpy()) ** 2))
    assert result.student_metrics["test"]["mse"] == pytest.approx(mse, rel=1e-12)
    assert "test_mse" in result.table() and math.isfinite(result.grid.gt_weight)


def test_a_users_train_fn_without_seed_is_refused_when_a_seed_is_given(digits_loaders):
    train, val, test, _ = digits_loaders
    with pytest.raises(TypeError, match="takes no `seed`"):
        estimate_gt_weight_for_model(lambda w, teacher: None, val, seed=0)
    with pytest.raises(ValueError, match="need `train_loader`"):
        estimate_gt_weight_for_model(lambda w, teacher: None, val, estimators=("kernel_features",))


def test_config_study_result_saves_and_loads(tmp_path):
    cfg = dict(dataset="digits", model="mlp", model_kwargs={"hidden": 8, "depth": 1}, n_train=200, epochs=1,
               batch_size=64, lr=1e-2, device="cpu", method="sd_kd", checkpoint_every=0)
    study = estimate_gt_weight(cfg, tmp_path, seeds=(0, 1), grid=None, estimators=("two_run",), generation=1)
    assert study.chosen == "two_run"
    assert study.gt_weight == pytest.approx(np.mean([s.gt_weight for s in study.per_seed]), rel=1e-12)
    assert study.settings["config"]["generations"] == 2                 # generation 1: the teacher's and the student's
    loaded = type(study).load(tmp_path)
    assert to_jsonable(loaded.to_dict()) == to_jsonable(study.to_dict())   # as written: NaN becomes None
    for a, b in zip(loaded.per_seed, study.per_seed):
        for (name, va), vb in zip(a.student.state_dict().items(), b.student.state_dict().values()):
            assert torch.equal(va, vb), name
    assert isinstance(study.per_seed[0].estimators["two_run"], EstimatorResult)
    # A recorded checkpoint that is gone is named; the numbers alone still load.
    gone = tmp_path / study.to_dict()["per_seed"][1]["student"]["checkpoint"]
    gone.unlink()
    with pytest.raises(FileNotFoundError, match=f"{re.escape(str(gone))} is missing.*student of seed 1.*models=False"):
        type(study).load(tmp_path)
    assert type(study).load(tmp_path, models=False).gt_weight == study.gt_weight


def test_estimate_weight_has_one_option_per_meaning():
    from deepdistill.cli import build_parser

    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["estimate-weight", "--generation", "5", "--generations", "2"])
    args = parser.parse_args(["estimate-weight", "--generation", "3"])
    assert args.generation == 3 and not hasattr(args, "generations")


def test_a_config_study_on_two_jobs_equals_it_on_one_and_trains_every_seeds_finals_in_one_batch(tmp_path, monkeypatch):
    # The runner trains the same computations in worker processes (one torch thread each, as with jobs=1 here):
    # the weights and the students' metrics are equal. The students at the estimates of both seeds go to
    # the runner together, after every seed's estimates.
    from deepdistill.studies import weight_estimation as we

    cfg = dict(dataset="digits", model="mlp", model_kwargs={"hidden": 8, "depth": 1}, n_train=200, epochs=2,
               batch_size=64, lr=1e-2, device="cpu", method="sd_kd", checkpoint_every=0, label_noise=0.2)
    serial = estimate_gt_weight(cfg, tmp_path / "one", seeds=(0, 1), grid=(0.0, 0.5, 1.0),
                                estimators=("two_run", "kernel_features"), jobs=1, threads_per_job=1)
    batches = []
    real = we.run_local

    def counting(items, *args, **kwargs):
        batches.append([(c.seed, c.run_id()) for c, _ in items])
        return real(items, *args, **kwargs)

    monkeypatch.setattr(we, "run_local", counting)
    parallel = estimate_gt_weight(cfg, tmp_path / "two", seeds=(0, 1), grid=(0.0, 0.5, 1.0),
                                  estimators=("two_run", "kernel_features"), jobs=2, threads_per_job=1)
    assert len(batches) == 2                                   # the grid and end points; then every seed's finals
    assert {seed for seed, _ in batches[1]} == {0, 1}
    for a, b in zip(serial.per_seed, parallel.per_seed):
        for name in ("two_run", "kernel_features"):
            ea, eb = a.estimators[name], b.estimators[name]
            assert ea.gt_weight == eb.gt_weight and ea.status == eb.status
            assert (ea.test or {}).get("accuracy") == (eb.test or {}).get("accuracy")
    assert serial.gt_weight == parallel.gt_weight
