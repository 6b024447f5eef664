"""Model registry: shapes of features / forward, forward = head(features), sizes, errors."""
import pytest
import torch

from deepdistill.core.models import MODELS, build_model

CASES = [
    # name, input_shape, kwargs, feature width
    ("linear", (64,), {}, 64),
    ("linear", (1, 8, 8), {}, 64),
    ("mlp", (40,), {}, 256),
    ("mlp", (1, 40), dict(hidden=32, depth=3), 32),
    ("cnn1d", (1, 40), {}, 125),
    ("cnn1d", (40,), {}, 125),
    ("resnet18", (3, 32, 32), dict(width=4), 32),
    ("resnet18", (1, 8, 8), dict(width=4), 32),
]


@pytest.mark.parametrize("name, shape, kwargs, width", CASES)
def test_features_and_forward_shapes(name, shape, kwargs, width):
    torch.manual_seed(0)
    net = build_model(name, shape, 7, **kwargs).eval()
    x = torch.randn(5, *shape)
    feats = net.features(x)
    assert feats.shape == (5, width)
    assert isinstance(net.head, torch.nn.Linear) and net.head.in_features == width and net.head.out_features == 7
    out = net(x)
    assert out.shape == (5, 7)
    assert torch.allclose(out, net.head(feats), rtol=1e-6, atol=1e-6)


def test_registry_names():
    assert set(MODELS) == {"linear", "mlp", "cnn1d", "cnn2d", "resnet18", "ntk_mlp"}


def test_cnn1d_is_the_mnist1d_authors_convbase():
    net = build_model("cnn1d", (1, 40), 10)
    # Conv1d(1,25,5) + Conv1d(25,25,3) x 2 + Linear(125,10), written out by hand
    hand = (1 * 25 * 5 + 25) + 2 * (25 * 25 * 3 + 25) + (125 * 10 + 10)
    assert sum(p.numel() for p in net.parameters()) == hand
    x = torch.randn(3, 40)
    assert torch.allclose(net(x), net(x.unsqueeze(1)), rtol=0, atol=0)   # (n, L) and (n, 1, L) agree


def test_resnet18_standard_size():
    net = build_model("resnet18", (3, 32, 32), 10)
    # 11,173,962 parameters: the CIFAR ResNet-18 of kuangliu/pytorch-cifar (3x3 stem, no max-pool)
    assert sum(p.numel() for p in net.parameters()) == 11_173_962
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in net.modules())


def test_linear_is_logistic_regression():
    net = build_model("linear", (2, 3), 4)
    x = torch.randn(5, 2, 3)
    assert torch.allclose(net(x), x.reshape(5, 6) @ net.head.weight.T + net.head.bias, rtol=1e-6, atol=1e-6)


def test_errors():
    with pytest.raises(ValueError, match=r"valid names: \['cnn1d', 'cnn2d', 'linear', 'mlp', 'ntk_mlp', 'resnet18'\]"):
        build_model("vgg", (3, 32, 32), 10)
    with pytest.raises(ValueError, match="input_shape"):
        build_model("resnet18", (40,), 10)
    with pytest.raises(ValueError, match="input_shape"):
        build_model("cnn1d", (1, 8, 8), 10)
    with pytest.raises(ValueError, match="num_classes"):
        build_model("mlp", (4,), 0)                            # one output is a regression; none is nothing
    with pytest.raises(TypeError, match="bad options for model 'mlp'"):
        build_model("mlp", (4,), 3, widht=3)


def test_ntk_mlp_in_the_registry_flattens_and_regresses():
    torch.manual_seed(0)
    net = build_model("ntk_mlp", (1, 8), 1, width=16)
    x = torch.randn(5, 1, 8)
    assert net(x).shape == (5, 1) and net.features(x).shape == (5, 16)
    assert torch.allclose(net(x), net(x.reshape(5, 8)))
