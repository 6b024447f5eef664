"""[ZS20]'s EMA variant ("zs20"): a separately initialised network, never a copy of the model; its
parameters alone averaged with the toolkit's decay schedule; predictions in train mode (batch
statistics), its own BatchNorm statistics untouched by the model's. Checked against values by hand."""
from __future__ import annotations

import pytest
import torch

from deepdistill.core.config import TrainConfig
from deepdistill.core.ema import EMA
from deepdistill.engine.train import train_run


# Tiny networks on a shared 2-core machine: one intra-op thread is several times faster than two.
pytestmark = pytest.mark.usefixtures("one_thread_per_module")


def _linear(value: float) -> torch.nn.Linear:
    net = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        net.weight.fill_(value)
    return net


def test_zs20_averages_from_its_own_initialisation_never_a_copy():
    model, fresh = _linear(10.0), _linear(-4.0)
    ema = EMA(model, variant="zs20", init=fresh)
    assert torch.equal(ema.module.weight, torch.full((1, 2), -4.0))         # not the model's 10
    assert ema.step == 1 and ema.module.training
    for v in (1.0, 2.0, 3.0):
        with torch.no_grad():
            model.weight.fill_(v)
        ema.update(model)
    # decays 1/2, 2/3, 3/4 (as in [ZS20]'s code): the running mean of the fresh -4 and 1, 2, 3
    assert torch.allclose(ema.module.weight, torch.full((1, 2), (-4.0 + 1 + 2 + 3) / 4), rtol=0, atol=1e-6)
    # the toolkit's "copy" variant: the model's own first weights (1.0 here) instead of the fresh ones
    with torch.no_grad():
        model.weight.fill_(1.0)
    copy = EMA(model)
    for v in (2.0, 3.0):
        with torch.no_grad():
            model.weight.fill_(v)
        copy.update(model)
    assert torch.allclose(copy.module.weight, torch.full((1, 2), 2.0), rtol=0, atol=1e-6)
    assert not any(p.requires_grad for p in ema.module.parameters())


def test_zs20_predicts_in_train_mode_with_its_own_batchnorm_statistics():
    g = torch.Generator().manual_seed(0)

    def net():
        return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))

    torch.manual_seed(0)
    model = net()
    torch.manual_seed(1)
    ema = EMA(model, variant="zs20", init=net())
    x = torch.randn(16, 3, generator=g) + 5.0
    model.train()
    model(x)                                                  # moves the MODEL's running statistics
    own = ema.module[1].running_mean.clone()
    ema.update(model)
    assert torch.equal(ema.module[1].running_mean, own)      # the EMA's statistics are its own
    # Train mode: the output is normalised by the batch's statistics, whatever the running ones hold.
    with torch.no_grad():
        out = ema(x)
        ema.module[1].running_mean.fill_(123.0)
        assert torch.allclose(ema(x), out, rtol=0, atol=1e-6)
        h = ema.module[0](x)
        by_hand = (h - h.mean(0)) / torch.sqrt(h.var(0, unbiased=False) + 1e-5)
        by_hand = by_hand * ema.module[1].weight + ema.module[1].bias
    assert torch.allclose(out, by_hand, rtol=0, atol=1e-5)
    # ... and its running statistics follow its own forward passes (momentum 0.1), as in [ZS20]'s code.
    ema.module[1].running_mean.fill_(0.0)
    with torch.no_grad():
        ema(x)
    assert torch.allclose(ema.module[1].running_mean, 0.1 * h.mean(0), rtol=0, atol=1e-6)


def test_zs20_state_dict_resumes_and_bad_arguments_are_named():
    model = _linear(0.0)
    ema = EMA(model, variant="zs20", init=_linear(2.0))
    with torch.no_grad():
        model.weight.fill_(4.0)
    ema.update(model)
    resumed = EMA(model, variant="zs20", init=_linear(-1.0))
    resumed.load_state_dict(ema.state_dict())
    assert resumed.step == 2 and torch.equal(resumed.module.weight, ema.module.weight)
    with pytest.raises(ValueError, match="variant"):
        EMA(model, variant="swa")
    with pytest.raises(ValueError, match="needs `init`"):
        EMA(model, variant="zs20")
    with pytest.raises(ValueError, match="ema_variant"):
        TrainConfig(method="beta", ema_variant="zs")


def test_beta_smoothing_trains_with_either_variant(tmp_path):
    base = dict(dataset="digits", model="mlp", model_kwargs={"hidden": 16, "depth": 1}, method="beta", n_train=300,
                epochs=2, batch_size=64, lr=1e-2, generations=1, device="cpu", checkpoint_every=0)
    copy = train_run(base, tmp_path / "copy")
    zs20 = train_run(dict(base, ema_variant="zs20"), tmp_path / "zs20")
    assert zs20["config"]["ema_variant"] == "zs20" and copy["run_id"] != zs20["run_id"]
    # Same initialisation and batch order; only the EMA's ranking of the Beta targets differs.
    assert copy["generations"][0]["history"][0]["train_loss"] != zs20["generations"][0]["history"][0]["train_loss"]
    # The default keeps the run ids of runs made before the option existed.
    assert TrainConfig.from_dict(base).run_id() == TrainConfig.from_dict({**base, "ema_variant": "copy"}).run_id()
