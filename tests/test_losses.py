"""Losses against values computed by hand (math.exp / math.log on 2 examples x 3 classes), the
registry against the pure functions, Beta targets' rank order and law, and the EMA schedule."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import stats

from deepdistill.core import losses as L
from deepdistill.core.ema import EMA, ema_decay

# Two examples, three classes. float64 so that the hand values can be matched tightly.
S = [[1.0, 2.0, 0.0], [0.5, -1.0, 0.0]]       # student logits
T_ = [[0.0, 3.0, 1.0], [2.0, 0.0, -1.0]]      # teacher logits
Y = [1, 2]                                    # labels
TOL = dict(rel=1e-12, abs=1e-12)   # float64 hand arithmetic vs float64 torch


def s_t():
    return torch.tensor(S, dtype=torch.float64), torch.tensor(T_, dtype=torch.float64), torch.tensor(Y)


def softmax_row(row, temperature=1.0):
    e = [math.exp(v / temperature) for v in row]
    z = sum(e)
    return [v / z for v in e]


def log_softmax_row(row, temperature=1.0):
    lse = math.log(sum(math.exp(v / temperature) for v in row))
    return [v / temperature - lse for v in row]


def hand_ce():
    # -log softmax(s_i)[y_i], averaged: log(e^1 + e^2 + e^0) - 2 and log(e^.5 + e^-1 + e^0) - 0
    return ((math.log(math.e + math.e**2 + 1.0) - 2.0) + (math.log(math.exp(0.5) + math.exp(-1.0) + 1.0) - 0.0)) / 2


def hand_soft_ce(targets):
    return sum(-sum(p * ls for p, ls in zip(targets[i], log_softmax_row(S[i]))) for i in range(2)) / 2


def hand_kl(temperature):
    total = 0.0
    for i in range(2):
        pt, lpt, lps = softmax_row(T_[i], temperature), log_softmax_row(T_[i], temperature), log_softmax_row(S[i], temperature)
        total += sum(p * (a - b) for p, a, b in zip(pt, lpt, lps))
    return temperature**2 * total / 2


def test_cross_entropy_by_hand():
    s, _, y = s_t()
    assert L.cross_entropy(s, y).item() == pytest.approx(hand_ce(), **TOL)


def test_soft_cross_entropy_by_hand():
    s, _, _ = s_t()
    targets = [[0.2, 0.5, 0.3], [0.0, 0.1, 0.9]]
    got = L.soft_cross_entropy(s, torch.tensor(targets, dtype=torch.float64)).item()
    assert got == pytest.approx(hand_soft_ce(targets), **TOL)


def test_smoothed_targets_by_hand_and_conventions_coincide():
    y = torch.tensor(Y)
    muller = L.smoothed_targets(y, 3, 0.3, "muller")      # true 1 - .3 + .1 = .8, others .1
    shen = L.smoothed_targets(y, 3, 0.3, "shen")          # true .7, others .15
    assert torch.allclose(muller, torch.tensor([[0.1, 0.8, 0.1], [0.1, 0.1, 0.8]]), rtol=0, atol=1e-7)
    assert torch.allclose(shen, torch.tensor([[0.15, 0.7, 0.15], [0.15, 0.15, 0.7]]), rtol=0, atol=1e-7)
    # e_shen = e_muller (K-1)/K gives the same vector, for several K
    for k in (2, 3, 10):
        labels = torch.arange(k)
        e_m = 0.3
        assert torch.allclose(L.smoothed_targets(labels, k, e_m, "muller"),
                              L.smoothed_targets(labels, k, e_m * (k - 1) / k, "shen"), rtol=0, atol=1e-7)
    assert torch.allclose(muller.sum(1), torch.ones(2), rtol=0, atol=1e-6)
    assert torch.allclose(shen.sum(1), torch.ones(2), rtol=0, atol=1e-6)


def test_label_smoothing_loss_by_hand_and_torch_agrees_with_muller():
    s, _, y = s_t()
    got = L.label_smoothing_loss(s, y, 0.3, "shen").item()
    assert got == pytest.approx(hand_soft_ce([[0.15, 0.7, 0.15], [0.15, 0.15, 0.7]]), **TOL)
    got_m = L.label_smoothing_loss(s, y, 0.3, "muller")
    assert got_m.item() == pytest.approx(hand_soft_ce([[0.1, 0.8, 0.1], [0.1, 0.1, 0.8]]), **TOL)
    # torch's built-in label smoothing is the Muller convention
    assert torch.allclose(got_m, F.cross_entropy(s, y, label_smoothing=0.3), rtol=1e-7, atol=0)


def test_kd_kl_by_hand_and_zero_on_self():
    s, t, _ = s_t()
    for temperature in (1.0, 2.0, 4.0):
        assert L.kd_kl(s, t, temperature).item() == pytest.approx(hand_kl(temperature), **TOL)
    assert L.kd_kl(t, t, 3.0).item() == pytest.approx(0.0, abs=1e-12)


def test_hinton_kd_by_hand():
    s, t, y = s_t()
    got = L.hinton_kd_loss(s, t, y, gt_weight=0.3, temperature=2.0).item()
    assert got == pytest.approx(0.3 * hand_ce() + 0.7 * hand_kl(2.0), **TOL)


def test_mixed_target_mse_by_hand_and_equals_mse_to_mixed_target_plus_constant():
    s, t, y = s_t()
    pt = torch.softmax(t, 1)
    a = 0.25
    total = 0.0
    for i in range(2):
        p, q = softmax_row(S[i]), softmax_row(T_[i])
        onehot = [1.0 if c == Y[i] else 0.0 for c in range(3)]
        total += a * sum((pc - oc) ** 2 for pc, oc in zip(p, onehot)) + (1 - a) * sum((pc - qc) ** 2 for pc, qc in zip(p, q))
    got = L.mixed_target_mse_loss(s, pt, y, gt_weight=a)
    assert got.item() == pytest.approx(total / 2, **TOL)
    # = ||p - (a onehot + (1-a) p_t)||^2 + a(1-a)||onehot - p_t||^2
    onehot = F.one_hot(y, 3).double()
    mixed = a * onehot + (1 - a) * pt
    p = torch.softmax(s, 1)
    identity = ((p - mixed) ** 2).sum(1).mean() + a * (1 - a) * ((onehot - pt) ** 2).sum(1).mean()
    assert torch.allclose(got, identity, rtol=1e-12, atol=0)


def _hand_mixed_mse(a, student=S):
    """alpha ||p - onehot||^2 + (1 - alpha) ||p - p_t||^2, batch mean, with math.exp only."""
    total = 0.0
    for i in range(2):
        p, q = softmax_row(student[i]), softmax_row(T_[i])
        onehot = [1.0 if c == Y[i] else 0.0 for c in range(3)]
        total += a * sum((pc - oc) ** 2 for pc, oc in zip(p, onehot)) + (1 - a) * sum((pc - qc) ** 2 for pc, qc in zip(p, q))
    return total / 2


@pytest.mark.parametrize("a", [1.5, -0.5])
def test_mixed_target_mse_outside_unit_interval_by_hand_and_as_mse_to_mixed_target(a):
    s, t, y = s_t()
    pt = torch.softmax(t, 1)
    got = L.mixed_target_mse_loss(s, pt, y, gt_weight=a, allow_any_weight=True)
    assert got.item() == pytest.approx(_hand_mixed_mse(a), **TOL)
    # The registry adapter (T = 1) takes the same weight when told to, and refuses it otherwise.
    adapter = L.LOSSES["mse_mixed"].fn
    assert torch.allclose(adapter(s, y, teacher_logits=t, gt_weight=a, allow_any_weight=True), got, rtol=1e-12, atol=0)
    with pytest.raises(ValueError, match=r"`gt_weight` must lie in \[0, 1\]"):
        adapter(s, y, teacher_logits=t, gt_weight=a)
    with pytest.raises(ValueError, match=r"`gt_weight` must lie in \[0, 1\]"):
        L.mixed_target_mse_loss(s, pt, y, gt_weight=a)
    # = ||p - m||^2 + a (1 - a) ||onehot - p_t||^2 with m = a onehot + (1 - a) p_t (outside the simplex here)
    onehot = F.one_hot(y, 3).double()
    mixed = a * onehot + (1 - a) * pt
    assert (mixed < 0).any() or (mixed > 1).any()
    const = a * (1 - a) * ((onehot - pt) ** 2).sum(1).mean()
    assert const.item() < 0.0
    assert torch.allclose(got, ((torch.softmax(s, 1) - mixed) ** 2).sum(1).mean() + const, rtol=1e-12, atol=1e-15)
    # The constant does not depend on the student (leading coefficient 1): other students, same offset,
    # and the loss never goes below it, however extreme the logits.
    gen = torch.Generator().manual_seed(0)
    for scale in (1.0, 10.0, 100.0):          # math.exp overflows past ~700
        other = scale * torch.randn(2, 3, generator=gen, dtype=torch.float64)
        loss = L.mixed_target_mse_loss(other, pt, y, gt_weight=a, allow_any_weight=True)
        assert loss.item() == pytest.approx(_hand_mixed_mse(a, other.tolist()), **TOL)
        offset = loss - ((torch.softmax(other, 1) - mixed) ** 2).sum(1).mean()
        assert torch.allclose(offset, const, rtol=1e-12, atol=1e-15)
        assert loss.item() >= const.item()


def test_only_losses_bounded_below_accept_any_weight():
    s, t, y = s_t()
    bt = torch.tensor([[0.05, 0.9, 0.05], [0.3, 0.3, 0.4]], dtype=torch.float64)
    # the squared distances to a mixed target (on probabilities, logits or regression outputs)
    assert [n for n, sp in L.LOSSES.items() if sp.accepts_any_weight] == ["mse_mixed", "mse_logits", "mse_outputs"]
    for name in ("kd", "zs", "beta"):
        fn = L.LOSSES[name].fn
        for w in (1.5, -0.5):
            with pytest.raises(ValueError, match=rf"loss '{name}'.*{w}.*unbounded below.*'mse_mixed'"):
                fn(s, y, teacher_logits=t, beta_targets=bt, gt_weight=w, allow_any_weight=True)
        # inside [0, 1] the flag changes nothing
        kw = dict(teacher_logits=t, beta_targets=bt, gt_weight=0.3, temperature=2.0)
        assert torch.equal(fn(s, y, allow_any_weight=True, **kw), fn(s, y, **kw))
    with pytest.raises(ValueError, match="finite"):
        L.LOSSES["mse_mixed"].fn(s, y, teacher_logits=t, gt_weight=math.inf, allow_any_weight=True)
    # Why: Hinton's mix at alpha = 1.5 puts -0.5 on the KL, which grows without bound as the student
    # drops a class the teacher likes; the loss falls below any value. [BA21]'s loss at the same
    # weight stays above its constant.
    a, c = 1.5, torch.tensor([[0.0, 0.0, -1.0]], dtype=torch.float64)      # push class 2 (the teacher's 2nd) down
    t1, y1 = t[:1], y[:1]
    scales = (1.0, 10.0, 100.0, 1000.0)
    kd = [(a * L.cross_entropy(k * c, y1) + (1 - a) * L.kd_kl(k * c, t1, 1.0)).item() for k in scales]
    assert all(u > v for u, v in zip(kd, kd[1:])) and kd[-1] < -40.0       # about -0.5 * 0.11 * 1000
    mse = [L.mixed_target_mse_loss(k * c, torch.softmax(t1, 1), y1, gt_weight=a, allow_any_weight=True).item()
           for k in scales]
    floor = a * (1 - a) * ((F.one_hot(y1, 3).double() - torch.softmax(t1, 1)) ** 2).sum().item()
    assert min(mse) >= floor


def test_zhang_sabuncu_by_hand():
    s, t, y = s_t()
    temperature = 4.0
    teacher = [softmax_row(T_[i], temperature) for i in range(2)]   # student NOT tempered, no T^2
    hand = 0.6 * hand_ce() + 0.4 * hand_soft_ce(teacher)
    assert L.zhang_sabuncu_loss(s, t, y).item() == pytest.approx(hand, **TOL)   # their w=0.4 -> gt_weight 0.6


def test_ls_teacher_kd_by_hand():
    s, t, _ = s_t()
    assert L.ls_teacher_kd_loss(s, t).item() == pytest.approx(hand_kl(1.0), **TOL)
    # differs from the soft cross-entropy only by the teacher entropy (a constant)
    teacher = [softmax_row(T_[i]) for i in range(2)]
    entropy = sum(-sum(p * math.log(p) for p in row) for row in teacher) / 2
    assert L.ls_teacher_kd_loss(s, t).item() == pytest.approx(hand_soft_ce(teacher) - entropy, **TOL)


def test_beta_smoothing_loss_by_hand():
    s, _, y = s_t()
    targets = [[0.05, 0.9, 0.05], [0.3, 0.3, 0.4]]
    got = L.beta_smoothing_loss(s, y, torch.tensor(targets, dtype=torch.float64)).item()
    assert got == pytest.approx(0.4 * hand_ce() + 0.6 * hand_soft_ce(targets), **TOL)


def test_beta_targets_rank_order_rows_and_reproducible():
    conf = torch.tensor([0.9, 0.1, 0.5, 0.3, 0.7])
    labels = torch.tensor([0, 1, 2, 3, 0])
    k = 4
    tg = L.beta_smoothing_targets(conf, labels, k, a=3.0, generator=torch.Generator().manual_seed(0))
    b = tg[torch.arange(5), labels]
    # least confident gets the smallest b: b sorted by confidence is ascending
    order = torch.argsort(conf)
    assert torch.all(b[order][1:] >= b[order][:-1])
    assert torch.allclose(tg.sum(1), torch.ones(5), rtol=0, atol=1e-6)
    off = tg.clone()
    off[torch.arange(5), labels] = float("nan")
    expected_off = ((1 - b) / (k - 1)).unsqueeze(1).expand(5, k)
    mask = ~torch.isnan(off)
    assert torch.allclose(off[mask], expected_off[mask], rtol=0, atol=1e-7)
    again = L.beta_smoothing_targets(conf, labels, k, a=3.0, generator=torch.Generator().manual_seed(0))
    other = L.beta_smoothing_targets(conf, labels, k, a=3.0, generator=torch.Generator().manual_seed(1))
    assert torch.equal(tg, again) and not torch.equal(tg, other)


def test_beta_targets_follow_beta_a_1():
    n, a = 4000, 3.0
    conf = torch.rand(n, generator=torch.Generator().manual_seed(5))
    labels = torch.zeros(n, dtype=torch.long)
    tg = L.beta_smoothing_targets(conf, labels, 10, a=a, generator=torch.Generator().manual_seed(6))
    b = tg[:, 0].double().numpy()
    # Beta(a, 1) has CDF x^a; the KS test would flag a wrong exponent (a=2 or 4 fails at this n)
    assert stats.kstest(b, lambda x: np.clip(x, 0, 1) ** a).pvalue > 1e-3
    assert stats.kstest(b, lambda x: np.clip(x, 0, 1) ** 2.0).pvalue < 1e-6


def test_registry_matches_pure_functions():
    s, t, y = s_t()
    bt = torch.tensor([[0.05, 0.9, 0.05], [0.3, 0.3, 0.4]], dtype=torch.float64)
    kw = dict(teacher_logits=t, gt_weight=0.3, temperature=2.0, smoothing=0.2, beta_targets=bt)
    expected = {
        "ce": L.cross_entropy(s, y),
        "ls_muller": L.label_smoothing_loss(s, y, 0.2, "muller"),
        "ls_shen": L.label_smoothing_loss(s, y, 0.2, "shen"),
        "kd": L.hinton_kd_loss(s, t, y, gt_weight=0.3, temperature=2.0),
        "mse_mixed": L.mixed_target_mse_loss(s, torch.softmax(t / 2.0, 1), y, gt_weight=0.3),
        "zs": L.zhang_sabuncu_loss(s, t, y, gt_weight=0.3, temperature=2.0),
        "beta": L.beta_smoothing_loss(s, y, bt, gt_weight=0.3),
        "ls_teacher_kd": L.ls_teacher_kd_loss(s, t, 2.0),
        "mse_logits": L.output_mixed_mse_loss(s, y, t, gt_weight=0.3),          # no temperature: raw outputs
        "mse_outputs": L.output_mixed_mse_loss(s, y, t, gt_weight=0.3),
    }
    assert set(expected) == set(L.LOSSES)
    for name, spec in L.LOSSES.items():
        assert torch.allclose(spec.fn(s, y, **kw), expected[name], rtol=1e-12, atol=0), name
        # The bound loss (the training loop's path: settings checked once) gives the same value.
        bound = spec.bind(gt_weight=0.3, temperature=2.0, smoothing=0.2)
        assert torch.equal(bound(s, y, t, bt), spec.fn(s, y, **kw)), name
        if spec.needs_teacher:
            with pytest.raises(ValueError, match="teacher_logits"):
                spec.fn(s, y, beta_targets=bt, gt_weight=0.3)
            # At gt_weight 1 the teacher has no weight: a loss with a labels term needs none (generation 0).
            if spec.labels_term is None:
                with pytest.raises(ValueError, match="teacher_logits"):
                    spec.fn(s, y, beta_targets=bt)
            else:
                assert torch.equal(spec.fn(s, y), spec.fn(s, y, teacher_logits=t, gt_weight=1.0)), name
        if spec.needs_beta_targets:
            with pytest.raises(ValueError, match="beta_targets"):
                spec.fn(s, y, teacher_logits=t)
    assert [n for n, sp in L.LOSSES.items() if sp.needs_beta_targets] == ["beta"]


def test_bind_checks_the_settings_once_and_names_them():
    with pytest.raises(ValueError, match="gt_weight"):
        L.LOSSES["kd"].bind(gt_weight=1.5)
    with pytest.raises(ValueError, match=r"loss 'kd'.*unbounded below.*'mse_mixed'"):
        L.LOSSES["kd"].bind(gt_weight=1.5, allow_any_weight=True)
    with pytest.raises(ValueError, match="temperature"):
        L.LOSSES["mse_mixed"].bind(temperature=0.0)
    with pytest.raises(ValueError, match="smoothing"):
        L.LOSSES["ls_shen"].bind(smoothing=1.0)
    s, t, y = s_t()
    loss = L.LOSSES["mse_mixed"].bind(gt_weight=1.5, temperature=2.0, allow_any_weight=True)
    expected = L.mixed_target_mse_loss(s, torch.softmax(t / 2.0, 1), y, gt_weight=1.5, allow_any_weight=True)
    assert torch.equal(loss(s, y, t), expected)


def test_registry_teacher_gets_no_gradient():
    s, t, y = s_t()
    s.requires_grad_(True)
    t.requires_grad_(True)
    L.LOSSES["kd"].fn(s, y, teacher_logits=t, gt_weight=0.5, temperature=2.0).backward()
    assert s.grad is not None and t.grad is None


@pytest.mark.parametrize("kw, match", [
    (dict(gt_weight=1.5), "gt_weight"), (dict(gt_weight=-0.1), "gt_weight"),
    (dict(temperature=0.0), "temperature"), (dict(temperature=-1.0), "temperature"),
    (dict(smoothing=1.0), "smoothing"), (dict(smoothing=-0.1), "smoothing"),
])
def test_bad_arguments_named(kw, match):
    s, t, y = s_t()
    with pytest.raises(ValueError, match=match):
        L.LOSSES["kd"].fn(s, y, teacher_logits=t, **kw)


def test_bad_names_and_shapes():
    s, t, y = s_t()
    with pytest.raises(ValueError, match="valid names.*'beta'"):
        L.get_loss("kdd")
    assert L.get_loss("kd") is L.LOSSES["kd"]
    with pytest.raises(ValueError, match="convention"):
        L.smoothed_targets(y, 3, 0.1, "szegedy")
    with pytest.raises(ValueError, match="teacher_logits"):
        L.kd_kl(s, t[:, :2], 1.0)
    with pytest.raises(ValueError, match="gt_weight"):
        L.hinton_kd_loss(s, t, y, gt_weight=2.0, temperature=1.0)


def test_ema_schedule_and_running_mean():
    assert ema_decay(0) == 0.0 and ema_decay(1) == 0.5 and ema_decay(3) == 0.75 and ema_decay(10**6) == 0.999
    net = torch.nn.Linear(2, 1)
    with torch.no_grad():
        net.weight.fill_(0.0)
    ema = EMA(net)                                   # step 0: copy (value 0)
    for v in (1.0, 2.0, 3.0):
        with torch.no_grad():
            net.weight.fill_(v)
        ema.update(net)
    # decays 0, 1/2, 2/3, 3/4 make the running mean of 0, 1, 2, 3
    assert torch.allclose(ema.module.weight, torch.full((1, 2), 1.5), rtol=0, atol=1e-6)
    assert ema.step == 4
    # with a cap: decays 0, min(.5, .6), min(2/3, .6), min(3/4, .6)
    capped, hand = None, None
    for step, v in enumerate((0.0, 1.0, 2.0, 3.0)):
        with torch.no_grad():
            net.weight.fill_(v)
        if step == 0:
            capped = EMA(net, max_decay=0.6)
            hand = v
        else:
            capped.update(net)
            d = min(1 - 1 / (step + 1), 0.6)
            hand = d * hand + (1 - d) * v
    assert torch.allclose(capped.module.weight, torch.full((1, 2), hand), rtol=0, atol=1e-6)
    assert not any(p.requires_grad for p in ema.module.parameters())


def test_ema_averages_batchnorm_statistics():
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    ema = EMA(net)
    start = ema.module[1].running_mean.clone()
    net.train()
    net(torch.randn(16, 3, generator=torch.Generator().manual_seed(0)) + 5.0)   # moves running stats
    ema.update(net)
    expected = 0.5 * start + 0.5 * net[1].running_mean
    assert torch.allclose(ema.module[1].running_mean, expected, rtol=0, atol=1e-6)
    assert ema.module[1].num_batches_tracked.item() == 1


def test_ema_state_dict_resumes_the_schedule():
    net = torch.nn.Linear(2, 1)
    with torch.no_grad():
        net.weight.fill_(0.0)
    ema = EMA(net)
    for v in (1.0, 2.0):
        with torch.no_grad():
            net.weight.fill_(v)
        ema.update(net)
    resumed = EMA(torch.nn.Linear(2, 1))
    resumed.load_state_dict(ema.state_dict())
    assert resumed.step == 3
    with torch.no_grad():
        net.weight.fill_(3.0)
    ema.update(net)
    resumed.update(net)
    assert torch.equal(resumed.module.weight, ema.module.weight)
    assert torch.allclose(ema.module.weight, torch.full((1, 2), 1.5), rtol=0, atol=1e-6)   # mean of 0..3


def test_ema_state_dict_and_load_state_dict_round_trip():
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    gen = torch.Generator().manual_seed(0)
    ema = EMA(net)
    net.train()
    for _ in range(3):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn(p.shape, generator=gen))
        net(torch.randn(8, 3, generator=gen))                         # moves BatchNorm's running statistics
        ema.update(net)
    state = ema.state_dict()
    assert int(state["n_averaged"]) == ema.step == 4                  # the step counter travels with the weights
    assert {k.removeprefix("module.") for k in state if k != "n_averaged"} == set(ema.module.state_dict())
    resumed = EMA(torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4)))
    assert resumed.step == 1
    resumed.load_state_dict(state)
    assert resumed.step == 4
    for k, v in ema.module.state_dict().items():
        assert torch.equal(resumed.module.state_dict()[k], v), k
    # Both continue the schedule from step 4 (decay 0.8) and stay identical.
    with torch.no_grad():
        net[0].weight.fill_(2.0)
    ema.update(net)
    resumed.update(net)
    assert torch.equal(resumed.module[0].weight, ema.module[0].weight)
    assert resumed.step == ema.step == 5
    with pytest.raises(TypeError, match="state"):
        resumed.load_state_dict([1, 2])
    with pytest.raises(RuntimeError, match="Missing key"):
        resumed.load_state_dict({"n_averaged": state["n_averaged"]})


# --------------------------------------------------------------------------------------------
# output_mixed_mse_loss: ||f(x) - (alpha y + (1 - alpha) f_teacher(x))||^2 on the raw outputs
# --------------------------------------------------------------------------------------------

def test_output_mixed_mse_regression_by_hand():
    f = torch.tensor([[1.0], [-2.0], [0.5]], dtype=torch.float64)     # student outputs (3, 1)
    y = torch.tensor([0.0, 1.0, 2.0], dtype=torch.float64)            # targets (3,)
    t = torch.tensor([[2.0], [0.0], [-1.0]], dtype=torch.float64)     # teacher outputs
    a = 0.25
    # mixed targets: 0.25*0 + 0.75*2 = 1.5;  0.25*1 + 0 = 0.25;  0.25*2 + 0.75*(-1) = -0.25
    per = [(1.0 - 1.5) ** 2, (-2.0 - 0.25) ** 2, (0.5 + 0.25) ** 2]  # 0.25, 5.0625, 0.5625
    assert L.output_mixed_mse_loss(f, y, t, gt_weight=a).item() == pytest.approx(sum(per) / 3, **TOL)
    assert L.output_mixed_mse_loss(f, y, t, gt_weight=a, reduction="sum").item() == pytest.approx(5.875, **TOL)
    # a 1-D student (n,) is read as (n, 1)
    assert L.output_mixed_mse_loss(f[:, 0], y, t[:, 0], gt_weight=a).item() == pytest.approx(sum(per) / 3, **TOL)
    # gt_weight 1: the labels alone, no teacher needed
    assert L.output_mixed_mse_loss(f, y, None, gt_weight=1.0, reduction="sum").item() == pytest.approx(
        1.0 + 9.0 + 2.25, **TOL)


def test_output_mixed_mse_classification_by_hand_on_logits():
    s, t, y = s_t()                                                    # logits, teacher logits, labels [1, 2]
    a = 0.6
    expected = 0.0
    for i in range(2):
        onehot = [1.0 if k == Y[i] else 0.0 for k in range(3)]
        mixed = [a * onehot[k] + (1 - a) * T_[i][k] for k in range(3)]   # on the logits, no softmax
        expected += sum((S[i][k] - mixed[k]) ** 2 for k in range(3))
    assert L.output_mixed_mse_loss(s, y, t, gt_weight=a).item() == pytest.approx(expected / 2, **TOL)
    # the same as a*||f - y||^2 + (1 - a)||f - t||^2 minus the constant a(1 - a)||y - t||^2 (docs/theory.md section 2)
    onehot = F.one_hot(y, 3).double()
    split = (a * (s - onehot).pow(2).sum(1) + (1 - a) * (s - t).pow(2).sum(1) - a * (1 - a) * (onehot - t).pow(2).sum(1))
    assert L.output_mixed_mse_loss(s, y, t, gt_weight=a).item() == pytest.approx(split.mean().item(), **TOL)


def test_output_mixed_mse_weight_outside_unit_interval_and_bad_input():
    f = torch.zeros(2, 1, dtype=torch.float64)
    y = torch.tensor([1.0, 2.0], dtype=torch.float64)
    t = torch.tensor([[3.0], [0.0]], dtype=torch.float64)
    # alpha = 1.5: mixed targets 1.5*1 - 0.5*3 = 0, 1.5*2 - 0 = 3
    assert L.output_mixed_mse_loss(f, y, t, gt_weight=1.5, allow_any_weight=True, reduction="sum").item() == pytest.approx(9.0, **TOL)
    with pytest.raises(ValueError, match="gt_weight"):
        L.output_mixed_mse_loss(f, y, t, gt_weight=1.5)
    with pytest.raises(ValueError, match="teacher_outputs"):
        L.output_mixed_mse_loss(f, y, None, gt_weight=0.5)
    with pytest.raises(ValueError, match="targets"):
        L.output_mixed_mse_loss(f, torch.zeros(3, dtype=torch.float64), t, gt_weight=0.5)
    with pytest.raises(ValueError, match="teacher_outputs"):
        L.output_mixed_mse_loss(f, y, torch.zeros(2, 2, dtype=torch.float64), gt_weight=0.5)
    with pytest.raises(ValueError, match="reduction"):
        L.output_mixed_mse_loss(f, y, t, gt_weight=0.5, reduction="none")


def test_registry_output_losses_are_the_pure_function_and_declare_their_targets():
    s, t, y = s_t()
    got = L.LOSSES["mse_logits"].fn(s, y, teacher_logits=t, gt_weight=0.3)
    assert got.item() == pytest.approx(L.output_mixed_mse_loss(s, y, t, gt_weight=0.3).item(), **TOL)
    # generation 0 (no teacher) trains on the labels alone: the loss at gt_weight 1
    assert L.LOSSES["mse_logits"].fn(s, y, gt_weight=1.0).item() == pytest.approx(
        L.output_mixed_mse_loss(s, y, None, gt_weight=1.0).item(), **TOL)
    f = torch.tensor([[0.5], [1.0]], dtype=torch.float64)
    v = torch.tensor([1.0, -1.0], dtype=torch.float64)
    ft = torch.tensor([[0.0], [2.0]], dtype=torch.float64)
    # 0.5 mixed targets: 0.5, 0.5 -> ((0.5-0.5)^2 + (1-0.5)^2) / 2 = 0.125
    assert L.LOSSES["mse_outputs"].fn(f, v, teacher_logits=ft, gt_weight=0.5).item() == pytest.approx(0.125, **TOL)
    assert {n: sp.targets for n, sp in L.LOSSES.items() if sp.targets != "labels"} == {"mse_outputs": "values"}
