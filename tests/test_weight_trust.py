"""A weight estimate a researcher can trust (issue 17): intervals that cover, a refinement that is exact
where the affine model is, status words where it is not, costs counted once, a teacher left as it came,
every estimator with every other, and every bad input named in one line. Tiny networks, one thread."""
from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from deepdistill import WeightEstimate, estimate_gt_weight, estimate_gt_weight_for_model, make_train_fn
from deepdistill.studies.weight_estimation import DEFAULT_ESTIMATORS, ESTIMATORS, UNCERTAIN_WIDTH
from deepdistill.studies.weight_estimators import (affine_optimal_weight, affine_weight_interval,
                                                   empirical_ntk_gram, kernel_surrogate_weights, kernel_validation_paths,
                                                   parabola_optimal_weight, parabola_vertex, per_example_criterion)

pytestmark = pytest.mark.usefixtures("one_thread_per_module")


# ------------------------------------------------------------------------------------------------
# Pure functions: intervals, the parabola
# ------------------------------------------------------------------------------------------------

def test_the_affine_bootstrap_interval_covers_the_known_optimum():
    # Outputs exactly affine in the weight: pred(w) = w x, targets a x + noise; the population optimum
    # is E[x t] / E[x^2] = a. Over 200 validation sets of 150 examples the 90% interval must cover it
    # about 90% of the time (binomial sd 2.1%: [0.82, 0.96] is +-4 sd).
    rng = np.random.default_rng(0)
    a, hits = 0.37, 0
    for rep in range(200):
        x = rng.normal(size=(150, 1))
        t = a * x + rng.normal(size=(150, 1))
        lo, hi = affine_weight_interval(np.zeros_like(x), x, t, criterion="mse", n_boot=400, seed=rep)
        hits += lo <= a <= hi
    assert 0.82 <= hits / 200 <= 0.96


def test_a_wrong_truth_is_not_covered():
    # The same intervals must miss a value away from the truth (the coverage test could not fail otherwise).
    rng = np.random.default_rng(1)
    x = rng.normal(size=(400, 1))
    t = 0.37 * x + rng.normal(size=(400, 1))
    lo, hi = affine_weight_interval(np.zeros_like(x), x, t, criterion="mse", seed=0)
    assert lo <= affine_optimal_weight(np.zeros_like(x), x, t, criterion="mse", bounds=None).unconstrained <= hi
    assert not lo <= 0.8 <= hi


def test_the_parabola_through_three_points_by_hand():
    # c(w) = (1 - w)^2 through (0, 1), (0.5, 0.25), (1, 0): vertex 1, curvature 1, value 0.
    assert parabola_vertex([0.0, 0.5, 1.0], [1.0, 0.25, 0.0]) == pytest.approx((1.0, 1.0, 0.0), abs=1e-12)
    # 3 (w - 0.42)^2 + 1 at three uneven points.
    f = lambda w: 3 * (w - 0.42) ** 2 + 1                                   # noqa: E731
    assert parabola_vertex([0.0, 0.3, 1.0], [f(0.0), f(0.3), f(1.0)]) == pytest.approx((0.42, 3.0, 1.0), abs=1e-12)
    # Opening downward: no vertex.
    assert np.isnan(parabola_vertex([0.0, 0.5, 1.0], [0.0, 1.0, 0.0])[0])
    with pytest.raises(ValueError, match="3 distinct"):
        parabola_vertex([0.0, 0.0, 1.0], [1.0, 2.0, 3.0])


def test_the_parabola_vertex_is_exact_for_affine_outputs():
    # Students exactly affine in the weight: the Brier score is a quadratic in w, so the parabola
    # through ANY three of its points has the two-run vertex.
    rng = np.random.default_rng(2)
    y = rng.integers(0, 4, 300)
    p0, p1 = (np.exp(rng.normal(size=(300, 4))) for _ in range(2))
    p0, p1 = p0 / p0.sum(1, keepdims=True), p1 / p1.sum(1, keepdims=True)
    two_run = affine_optimal_weight(p0, p1, y, bounds=None)
    for probe in (0.25, 0.6, 0.75):
        per_ex = np.stack([per_example_criterion(p0 + w * (p1 - p0), y) for w in (0.0, probe, 1.0)])
        par = parabola_optimal_weight([0.0, probe, 1.0], per_ex, bounds=None)
        assert par.unconstrained == pytest.approx(two_run.unconstrained, rel=1e-10)
        assert par.criterion_at_estimate == pytest.approx(two_run.criterion_at_estimate, rel=1e-10)
        assert par.interval[0] <= par.unconstrained <= par.interval[1]


def test_the_kernel_paths_give_the_closed_form_validation_optimum():
    rng = np.random.default_rng(3)
    X, Xv = rng.normal(size=(60, 4)), rng.normal(size=(30, 4))
    y, yv = np.eye(3)[rng.integers(0, 3, 60)], np.eye(3)[rng.integers(0, 3, 30)]
    for previous in ((), (0.3,)):
        k = kernel_surrogate_weights(X, y, Xv, yv, kernel="rbf", ridge=0.4, bounds=None, step=len(previous) + 2,
                                     previous=previous)
        from kerneldistill.estimator import KernelDistiller
        d = KernelDistiller(kernel="rbf", ridge=1.0, gt_weight=1.0, steps=2).fit(X, y - y.mean(0))
        f0, f1 = kernel_validation_paths(d.evals_, d.evecs_, y - y.mean(0), 0.4, d.kernel_matrix(Xv),
                                         len(previous) + 2, previous)
        vertex = affine_optimal_weight(f0, f1, yv - y.mean(0), criterion="mse", bounds=None).unconstrained
        assert vertex == pytest.approx(k.validation_unconstrained, rel=1e-8)
        assert k.validation_interval[0] <= vertex <= k.validation_interval[1]


# ------------------------------------------------------------------------------------------------
# Networks whose outputs are set by hand: the check and its words
# ------------------------------------------------------------------------------------------------

N, K = 200, 4


class Table(nn.Module):
    """Logits set by hand: input i (one-hot) gives row i of ``logits``."""

    def __init__(self, logits):
        super().__init__()
        self.lin = nn.Linear(N, K, bias=False)
        with torch.no_grad():
            self.lin.weight.copy_(torch.as_tensor(logits, dtype=torch.float32).T)

    def forward(self, x):
        return self.lin(x)


def _hand_case(bump: float, frac: float = 0.5):
    """Students whose logits are (1 - w) A + w B + bump * 4 w (1 - w) C: affine when bump = 0. A is right
    on the first half of the examples, B on the second: the best weight is inside (0, 1); C pushes every
    example towards a wrong class, most at w = 0.5."""
    rng = np.random.default_rng(4)
    y = rng.integers(0, K, N)
    right = np.eye(K)[y] * 3.0
    wrong = np.eye(K)[(y + 1) % K] * 3.0
    half = (np.arange(N) < int(frac * N))[:, None]
    A, B = np.where(half, right, 0.0), np.where(half, 0.0, right)
    calls = []

    def train_fn(gt_weight, teacher):
        calls.append(gt_weight)
        w = 1.0 if gt_weight is None else float(gt_weight)
        return Table((1 - w) * A + w * B + bump * 4 * w * (1 - w) * wrong).eval()

    x = torch.eye(N)
    val = DataLoader(TensorDataset(x, torch.as_tensor(y)), batch_size=64)
    return train_fn, val, calls


def test_an_affine_case_passes_the_check_and_a_broken_one_says_so_in_words():
    # Logits affine in w do not make probabilities affine; the bump then breaks the affine model
    # outright. The words must appear exactly when the prediction misses by more than its floor.
    train_fn, val, _ = _hand_case(bump=2.0)
    broken = estimate_gt_weight_for_model(train_fn, val, estimators=("two_run",))
    entry = broken.estimators["two_run"]
    assert entry.has_weight and not entry.ok
    assert "the affine model does not hold here: predicted" in entry.status and "trained" in entry.status
    assert entry.achieved_val_criterion > entry.predicted_val_criterion + entry.seed_floor
    assert broken.gt_weight == entry.gt_weight               # still chosen: the only weight there is, flagged
    assert "WARNING: the affine model does not hold here" in broken.table()


def _affine_regression(noise: float):
    """Regression outputs exactly affine in w, (1 - w) A + w B, and validation targets 0.3 A + 0.7 B plus
    ``noise`` times standard normal noise; the study of two_run and refined on them (criterion "mse")."""
    rng = np.random.default_rng(5)
    A, B = rng.normal(size=(N, K)), rng.normal(size=(N, K))
    target = 0.3 * A + 0.7 * B + noise * rng.normal(size=(N, K))

    def train_fn(gt_weight, teacher):
        w = 1.0 if gt_weight is None else float(gt_weight)
        return Table((1 - w) * A + w * B).eval()

    val = DataLoader(TensorDataset(torch.eye(N), torch.as_tensor(target)), batch_size=64)
    return estimate_gt_weight_for_model(train_fn, val, estimators=("two_run", "refined"), criterion="mse")


def test_exactly_affine_outputs_pass_the_check_with_status_ok():
    # Regression outputs exactly affine in w (criterion "mse" on raw outputs): the affine prediction
    # at the estimate IS what the student there scores, and the parabola has the same vertex.
    res = _affine_regression(noise=0.5)
    two, ref = res.estimators["two_run"], res.estimators["refined"]
    assert two.ok and ref.ok and two.details["check"] == "holds" and two.flags == []
    assert two.predicted_val_criterion == pytest.approx(two.achieved_val_criterion, rel=1e-6)
    assert ref.unconstrained == pytest.approx(two.unconstrained, rel=1e-5)      # float32 outputs
    assert two.interval[0] <= two.gt_weight <= two.interval[1]
    assert ref.training_runs == 3 and not ref.details["retrained"]            # the vertex stays at the third point


def test_a_wide_interval_says_uncertain_and_the_estimate_is_still_chosen():
    # The same exactly affine outputs, the validation targets drowned in noise: the optimum is not fixed by
    # the data, the bootstrap interval covers most of [0, 1], and the status says so, naming the interval.
    res = _affine_regression(noise=40.0)
    two = res.estimators["two_run"]
    lo, hi = two.interval
    assert hi - lo > UNCERTAIN_WIDTH and two.status.startswith(f"uncertain: the 90% interval [{lo:.2f}, {hi:.2f}]")
    assert two.details["uncertain"] and two.details["only_uncertain"] and not two.ok
    assert res.chosen == "two_run" and res.gt_weight == two.gt_weight     # a warning, not a failure
    assert "WARNING: uncertain" in res.table()


@pytest.mark.parametrize("bump", [0.0, 0.3, 0.5])
def test_the_refined_estimate_does_better_than_the_broken_affine_model_within_its_budget(bump):
    # 70% of the examples favour the alpha = 0 student: the optimum is inside, near 0.3 without the bump.
    train_fn, val, calls = _hand_case(bump=bump, frac=0.7)
    res = estimate_gt_weight_for_model(train_fn, val, estimators=("refined", "two_run"),
                                       grid=list(np.linspace(0, 1, 11)))
    ref, two = res.estimators["refined"], res.estimators["two_run"]
    curve = {round(c["gt_weight"], 6): c["val_criterion"] for c in res.grid.details["curve"]}
    assert ref.training_runs <= 5 and ref.details["affine_at_probe"]["holds"] is False
    assert "the affine model does not hold here" in two.status
    # The refined weight's student scores better than the two-run one's on the validation set, and
    # within 0.01 of the grid's best.
    assert ref.achieved_val_criterion < two.achieved_val_criterion
    assert ref.achieved_val_criterion <= min(curve.values()) + 0.01
    if ref.details["concave"]:                   # no minimum through the three points: said in words
        assert "not convex through the three points" in ref.status and np.isnan(ref.interval[0])
    else:
        assert ref.interval[0] <= ref.unconstrained <= ref.interval[1]


# ------------------------------------------------------------------------------------------------
# Digits with a small MLP: every estimator with every other, the teacher untouched, costs
# ------------------------------------------------------------------------------------------------

class MyNet(nn.Module):                                   # the README's network
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(64, 64), nn.ReLU())
        self.head = nn.Linear(64, 10)

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        return self.head(self.body(x))


@pytest.fixture(scope="module")
def readme_data():
    x, y = load_digits(return_X_y=True)
    x, y = torch.tensor(x / 16, dtype=torch.float32), torch.tensor(y)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    part = {name: TensorDataset(x[i], y[i]) for name, i in zip(("train", "val", "test"),
                                                                order.split([1000, 400, 397]))}
    train = DataLoader(part["train"], batch_size=64, shuffle=True)
    return train, DataLoader(part["val"], batch_size=256), DataLoader(part["test"], batch_size=256)


def test_every_estimator_with_a_grid_on_the_readme_network_leaves_the_teacher_as_it_was(readme_data):
    train, val, test = readme_data
    train_fn = make_train_fn(MyNet, train, method="sd_kd", temperature=4.0, epochs=2, lr=1e-2, seed=0)
    teacher = train_fn(None, None)
    before = copy.deepcopy(teacher.state_dict())
    flags = [p.requires_grad for p in teacher.parameters()]
    res = estimate_gt_weight_for_model(train_fn, val, test_loader=test, train_loader=train, teacher=teacher,
                                       estimators=tuple(ESTIMATORS), grid=[0.0, 0.5, 1.0], ntk_subsample=100)
    for name, e in res.estimators.items():
        assert e.has_weight, f"{name}: {e.status}"
        assert "treespec" not in e.status and "Error" not in e.status
    assert res.teacher is teacher
    assert [p.requires_grad for p in res.teacher.parameters()] == flags == [True] * len(flags)
    assert all(torch.equal(before[k], v) for k, v in res.teacher.state_dict().items())
    # The eNTK of a frozen network is that of the same network unfrozen (every parameter counts).
    frozen = copy.deepcopy(teacher).requires_grad_(False)
    xs = next(iter(val))[0][:5]
    np.testing.assert_allclose(empirical_ntk_gram(frozen, xs), empirical_ntk_gram(teacher, xs), rtol=1e-12)
    assert not any(p.requires_grad for p in frozen.parameters())       # and stays frozen


PAIRS = list(itertools.combinations(sorted(ESTIMATORS), 2))


@pytest.mark.parametrize("pair", PAIRS, ids=["+".join(p) for p in PAIRS])
def test_each_pair_of_estimators_runs_with_a_trained_student_first(pair, readme_data):
    train, val, _ = readme_data
    train_fn = make_train_fn(MyNet, train, method="sd_kd", temperature=4.0, epochs=1, lr=1e-2, seed=0)
    res = estimate_gt_weight_for_model(train_fn, val, train_loader=train, estimators=pair, grid=[0.0, 1.0],
                                       ntk_subsample=60)
    for name in pair:
        assert res.estimators[name].has_weight, f"{name}: {res.estimators[name].status}"
    assert all(p.requires_grad for p in res.teacher.parameters())


def test_costs_count_each_run_once_and_a_rerun_pays_nothing(tmp_path):
    config = dict(dataset="digits", model="mlp", model_kwargs={"hidden": 16, "depth": 1}, method="sd_kd",
                  label_noise=0.2, epochs=1, n_train=300, batch_size=64, lr=1e-2, device="cpu", checkpoint_every=0)
    first = estimate_gt_weight(config, tmp_path, seeds=(0,), grid=[0.0, 0.5, 1.0], estimators=("refined", "two_run"))
    seed = first.per_seed[0]
    runs = seed.runs
    for name, e in seed.approaches().items():
        keys = e.details["run_keys"]
        assert len(keys) == len(set(keys)) == e.training_runs                      # each run once
        paid = sum(runs[k]["wall_time_s"] for k in keys if runs[k]["source"].startswith("trained"))
        assert e.wall_time_s == pytest.approx(paid + e.details.get("overhead_s", 0.0), rel=1e-12)
        assert e.new_runs == e.training_runs and e.cached_runs == []
    # The alpha = 0 student is a grid point and both estimators' end point: shared, trained once.
    assert "w=0.0" in seed.estimators["two_run"].shared_runs and "w=0.0" in seed.grid.shared_runs
    assert seed.settings == {} and first.settings["elapsed_s"] > 0
    # The same study again: every run is found finished, costs nothing, and is marked cached.
    again = estimate_gt_weight(config, tmp_path, seeds=(0,), grid=[0.0, 0.5, 1.0], estimators=("refined", "two_run"))
    for name, e in again.per_seed[0].approaches().items():
        assert e.new_runs == 0 and len(e.cached_runs) == e.training_runs
        assert e.wall_time_s == pytest.approx(e.details.get("overhead_s", 0.0), rel=1e-12)
    assert again.per_seed[0].gt_weight == pytest.approx(seed.gt_weight)
    table = again.table()
    assert "c" in table.split("refined")[1].split("\n")[0]                   # its runs marked cached
    assert "the whole study:" in table


def test_an_estimators_own_time_excludes_the_runs_it_trains(monkeypatch):
    # A clock that moves only while train_fn runs (100 s per run): every approach's wall and CPU seconds
    # must then be exactly 100 per run it trained (its own computation takes 0 on this clock), and the
    # whole study 100 per run. Counting the alpha = 0 student also in two_run's own time (the old
    # double count: 50.2 s of runs in a 49.3 s script) would give 100 more.
    import types

    from deepdistill.studies import weight_backends, weight_estimation
    now = [0.0]
    clock = types.SimpleNamespace(perf_counter=lambda: now[0], process_time=lambda: now[0], time=lambda: 0.0)
    monkeypatch.setattr(weight_estimation, "time", clock)
    monkeypatch.setattr(weight_backends, "time", clock)
    train_fn, val, calls = _hand_case(bump=0.3, frac=0.7)

    def slow(gt_weight, teacher):
        now[0] += 100.0
        return train_fn(gt_weight, teacher)

    res = estimate_gt_weight_for_model(slow, val, estimators=("two_run", "refined"))   # two_run trains w = 0
    trained = len(res.runs)
    assert res.settings["elapsed_s"] == pytest.approx(100.0 * trained)
    for name, e in res.approaches().items():
        assert e.new_runs == e.training_runs
        assert e.wall_time_s == pytest.approx(100.0 * e.new_runs), name
        assert e.cpu_time_s == pytest.approx(100.0 * e.new_runs), name


# ------------------------------------------------------------------------------------------------
# Bad input: one line, before anything trains
# ------------------------------------------------------------------------------------------------

class ThreeOut(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(64, 3)

    def forward(self, x):
        return self.lin(x)


def test_a_network_with_too_few_outputs_is_named_before_anything_trains(readme_data):
    train, val, _ = readme_data
    with pytest.raises(ValueError, match=r"has 3 output\(s\), but `train_loader` holds labels up to 9"):
        make_train_fn(ThreeOut, train)
    calls = []

    def own(gt_weight, teacher):                          # a user's own train_fn: named at the teacher
        calls.append(gt_weight)
        return ThreeOut().eval()

    with pytest.raises(ValueError, match=r"the teacher \(train_fn\(None, None\)\): the network has 3 output"):
        estimate_gt_weight_for_model(own, val)
    assert calls == [None]                                 # no student trained


def test_val_loader_none_and_no_estimators_are_refused_before_anything_trains(readme_data):
    train, val, _ = readme_data
    calls = []

    def train_fn(gt_weight, teacher):
        calls.append(gt_weight)
        raise AssertionError("must not train")

    with pytest.raises(ValueError, match="^`val_loader` is required.*got None.$"):
        estimate_gt_weight_for_model(train_fn, None)
    with pytest.raises(ValueError, match=r"`estimators` must name at least one of .*got none"):
        estimate_gt_weight_for_model(train_fn, val, estimators=())
    with pytest.raises(ValueError, match=r"`estimators` must name at least one"):
        estimate_gt_weight(dict(dataset="digits", model="mlp", method="sd_kd"), "/nonexistent/never", estimators=[])
    assert calls == []


def test_a_network_that_outputs_nan_is_named_with_its_run(readme_data):
    _, val, _ = readme_data
    good = make_train_fn(MyNet, readme_data[0], epochs=1, lr=1e-2, seed=0)

    def nan_student(gt_weight, teacher):
        model = good(gt_weight, teacher)
        if gt_weight == 0.0:
            with torch.no_grad():
                model.head.bias.fill_(float("nan"))
        return model

    res = estimate_gt_weight_for_model(nan_student, val, estimators=("two_run",))
    status = res.estimators["two_run"].status
    assert "the student at gt_weight 0 outputs NaN/inf on 400 of 400 examples" in status
    assert res.gt_weight is None

    def nan_teacher(gt_weight, teacher):
        model = good(gt_weight, teacher)
        with torch.no_grad():
            model.head.weight.fill_(float("inf"))
        return model

    with pytest.raises(ValueError, match=r"the teacher \(train_fn\(None, None\)\) outputs NaN/inf"):
        estimate_gt_weight_for_model(nan_teacher, val, estimators=("two_run",))


# ------------------------------------------------------------------------------------------------
# Saved estimates: B8, and the student file
# ------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def saved_at_one(tmp_path_factory):
    """An estimate whose chosen weight is 1, its student the teacher itself (the labels end point):
    the alpha = 0 student outputs zero logits, the teacher is right everywhere."""
    train_fn, val, _ = _hand_case(bump=0.0, frac=0.0)
    res = estimate_gt_weight_for_model(train_fn, val, estimators=("two_run",))
    assert res.gt_weight == 1.0 and res.student is res.teacher
    out = tmp_path_factory.mktemp("saved")
    res.save(out)
    return res, out


def test_the_student_file_is_written_and_loaded_as_its_own_network(saved_at_one):
    res, out = saved_at_one
    assert (out / "student.pt").is_file() and (out / "teacher.pt").is_file()
    loaded = WeightEstimate.load(out, lambda: Table(np.zeros((N, K))))
    assert loaded.student is not None and loaded.student is not loaded.teacher
    for a, b in zip(loaded.student.state_dict().values(), res.student.state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "missing"])
def test_a_damaged_teacher_file_is_named(saved_at_one, tmp_path, damage):
    _, out = saved_at_one
    import shutil
    shutil.copytree(out, tmp_path / "copy")
    path = tmp_path / "copy" / "teacher.pt"
    if damage == "garbage":
        path.write_bytes(b"not a checkpoint at all" * 10)
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[:100])
    else:
        path.unlink()
    with pytest.raises((ValueError, FileNotFoundError), match=str(path).replace(".", r"\.")) as info:
        WeightEstimate.load(tmp_path / "copy", lambda: Table(np.zeros((N, K))))
    assert "weights_only=False" not in str(info.value)
    assert ("record_only=True" in str(info.value))
    record = WeightEstimate.load(tmp_path / "copy", lambda: Table(np.zeros((N, K))), record_only=True)
    assert record.teacher is None and record.gt_weight is not None


def test_the_default_estimator_is_the_one_named_everywhere():
    from deepdistill.cli import build_parser
    args = build_parser().parse_args(["estimate-weight"])
    assert args.estimators == list(DEFAULT_ESTIMATORS) and args.kernel == "rbf"
    assert DEFAULT_ESTIMATORS[0] == "half_grid"
