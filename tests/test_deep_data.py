"""Data: label noise law and seeding, MNIST-1D's global-RNG hygiene, the mixture's Bayes rate,
the CIFAR reader on a fake folder, the batched augmentation against a per-example loop, errors."""
import math
import pickle
import random

import numpy as np
import pytest
import torch
from scipy import stats

from deepdistill.core.data import (CIFAR_STATS, DATASETS, add_label_noise, gaussian_mixture_bayes_rate,
                              load_dataset, random_crop_flip)


# ---------------------------------------------------------------- label noise

@pytest.mark.parametrize("noise_type", ["symmetric", "class_dependent"])
def test_label_noise_rate_and_law(noise_type):
    n, k, rate = 20000, 5, 0.3
    labels = torch.arange(n) % k
    noisy, flipped = add_label_noise(labels, k, rate, noise_type=noise_type, seed=3)
    # flips ~ Binomial(n, rate): 5 standard deviations
    assert abs(flipped.float().mean().item() - rate) < 5 * math.sqrt(rate * (1 - rate) / n)
    assert torch.equal(flipped, noisy != labels)          # every flip changes the label
    offset = (noisy - labels)[flipped] % k
    if noise_type == "class_dependent":
        assert torch.all(offset == 1)
    else:                                                   # uniform over the K-1 other classes
        counts = torch.bincount(offset, minlength=k)[1:].numpy()
        assert stats.chisquare(counts).pvalue > 1e-3


def test_label_noise_reproducible_and_validated():
    labels = torch.arange(1000) % 10
    a = add_label_noise(labels, 10, 0.2, seed=1)
    b = add_label_noise(labels, 10, 0.2, seed=1)
    c = add_label_noise(labels, 10, 0.2, seed=2)
    assert torch.equal(a[0], b[0]) and not torch.equal(a[0], c[0])
    assert torch.equal(add_label_noise(labels, 10, 0.0, seed=1)[0], labels)
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match=r"label_noise.*\[0, 1\)"):
            add_label_noise(labels, 10, bad, seed=0)
    with pytest.raises(ValueError, match="noise_type"):
        add_label_noise(labels, 10, 0.1, noise_type="pair", seed=0)


# ---------------------------------------------------------------- MNIST-1D

def test_mnist1d_splits_and_global_rng_untouched():
    random.seed(123)
    np.random.seed(7)
    py_state, np_state = random.getstate(), np.random.get_state()
    d = load_dataset("mnist1d", seed=0, label_noise=0.2)
    assert random.getstate() == py_state
    after = np.random.get_state()
    assert after[0] == np_state[0] and np.array_equal(after[1], np_state[1]) and after[2:] == np_state[2:]
    assert (len(d.train), len(d.val), len(d.test)) == (3600, 400, 1000)     # authors' 4000 / 1000
    assert d.input_shape == (1, 40) and d.train.tensors[0].shape == (3600, 1, 40)
    assert d.train.tensors[0].dtype == torch.float32 and d.train.tensors[1].dtype == torch.int64
    assert d.num_classes == 10 and d.augment is None
    # noise applies to train AND val (same noisy source) unless clean_val
    clean_tr, y_tr = d.meta["clean_train_labels"], d.train.tensors[1]
    assert torch.equal(d.meta["train_flipped"], y_tr != clean_tr)
    assert abs((y_tr != clean_tr).float().mean().item() - 0.2) < 5 * math.sqrt(0.2 * 0.8 / 3600)
    assert (d.val.tensors[1] != d.meta["clean_val_labels"]).any()
    again = load_dataset("mnist1d", seed=0, label_noise=0.2, clean_val=True)
    assert torch.equal(again.train.tensors[0], d.train.tensors[0]) and torch.equal(again.train.tensors[1], y_tr)
    assert torch.equal(again.val.tensors[1], again.meta["clean_val_labels"])
    assert torch.equal(again.test.tensors[0], d.test.tensors[0])
    other = load_dataset("mnist1d", seed=1, flat=True)
    assert other.input_shape == (40,)
    assert torch.equal(other.test.tensors[0], d.test.tensors[0].reshape(1000, 40))   # test fixed across seeds
    assert not torch.equal(other.val.tensors[0], d.val.tensors[0].reshape(400, 40))   # val split follows seed


# ---------------------------------------------------------------- digits, mixture

def test_digits_shapes_and_n_train_stratified():
    d = load_dataset("digits", n_train=500, val_fraction=0.2, seed=4)
    assert (len(d.train), len(d.val)) == (400, 100) and len(d.test) == 450
    assert d.input_shape == (1, 8, 8) and float(d.train.tensors[0].max()) <= 1.0
    assert torch.bincount(d.val.tensors[1], minlength=10).min() >= 9      # stratified: 10 per class
    flat = load_dataset("digits", flat=True)
    assert flat.input_shape == (64,) and flat.train.tensors[0].shape[1:] == (64,)


def test_gaussian_mixture_bayes_rate_exact_vs_closed_form_and_monte_carlo():
    # K = 2: means s e_0, s e_1 are s sqrt(2) apart, so the error is Phi(-s / sqrt 2)
    assert gaussian_mixture_bayes_rate(2, 1.5) == pytest.approx(stats.norm.cdf(-1.5 / math.sqrt(2)), rel=1e-8)
    # K = 4: brute-force Monte Carlo with the true posterior (scipy densities, equal priors)
    k, s, n = 4, 1.8, 100_000
    rng = np.random.default_rng(11)
    means = s * np.eye(k, 6)
    y = rng.integers(0, k, n)
    x = means[y] + rng.standard_normal((n, 6))
    log_post = np.stack([stats.multivariate_normal(means[c], np.eye(6)).logpdf(x) for c in range(k)], 1)
    mc = np.mean(log_post.argmax(1) != y)
    exact = gaussian_mixture_bayes_rate(k, s)
    assert abs(mc - exact) < 5 * math.sqrt(exact * (1 - exact) / n)


def test_gaussian_mixture_dataset_attains_its_bayes_rate():
    d = load_dataset("gaussian_mixture", num_classes=3, dim=4, class_sep=1.5, n_test=20000)
    x, y = d.test.tensors
    err = (x[:, :3].argmax(1) != y).float().mean().item()             # the Bayes rule argmax_k x_k
    rate = d.meta["bayes_rate"]
    assert abs(err - rate) < 5 * math.sqrt(rate * (1 - rate) / 20000)
    assert d.input_shape == (4,) and d.num_classes == 3


def test_gaussian_mixture_test_set_does_not_move_with_the_pool_size():
    small = load_dataset("gaussian_mixture", n_train=500, n_test=300)
    large = load_dataset("gaussian_mixture", n_train=6000, n_test=300)
    for a, b in zip(small.test.tensors, large.test.tensors):
        assert torch.equal(a, b)


# ---------------------------------------------------------------- CIFAR (fake folder)

def _write_fake_cifar(root, name, rng):
    if name == "cifar10":
        folder, files, key = root / "cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"], b"labels"
        k = 10
    else:
        folder, files, key = root / "cifar-100-python", ["train", "test"], b"fine_labels"
        k = 100
    folder.mkdir(parents=True)
    written = {}
    for f in files:
        n = 12
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = [int(v) for v in rng.integers(0, k, n)]          # python ints, as in the real batches
        with open(folder / f, "wb") as fh:
            # torchvision's layout: bytes keys, python lists, one uint8 array (protocol 2, as the originals)
            pickle.dump({b"batch_label": b"fake", b"data": data, key: labels, b"filenames": [b"x.png"] * n}, fh,
                        protocol=2)
        written[f] = (data, labels)
    return written


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_fake_cifar_reader(tmp_path, name):
    written = _write_fake_cifar(tmp_path, name, np.random.default_rng(0))
    d = load_dataset(name, root=tmp_path, val_fraction=0.25, seed=0)
    n_pool = 60 if name == "cifar10" else 12
    assert len(d.train) + len(d.val) == n_pool and len(d.test) == 12
    assert d.input_shape == (3, 32, 32) and d.test.tensors[0].shape == (12, 3, 32, 32)
    data, labels = written["test_batch" if name == "cifar10" else "test"]
    mean, std = CIFAR_STATS[name]
    # pixel (example 2, channel 1, row 5, col 7) = byte 1 * 1024 + 5 * 32 + 7 of the row
    raw = data[2, 1 * 1024 + 5 * 32 + 7]
    assert d.test.tensors[0][2, 1, 5, 7].item() == pytest.approx((raw / 255 - mean[1]) / std[1], rel=1e-5)
    assert d.test.tensors[1].tolist() == [int(v) for v in labels]
    out = d.augment(d.train.tensors[0][:5], torch.Generator().manual_seed(0))
    assert out.shape == (5, 3, 32, 32)


def test_missing_cifar_says_where(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_dataset("cifar10", root=tmp_path)
    msg = str(err.value)
    assert str(tmp_path / "cifar-10-batches-py") in msg and "data_batch_1" in msg and "never downloads" in msg
    with pytest.raises(ValueError, match="cifar100 needs `root`.*cifar-100-python"):
        load_dataset("cifar100")


# ---------------------------------------------------------------- augmentation

def test_random_crop_flip_matches_per_example_loop_and_is_seeded():
    batch = torch.randn(6, 2, 5, 7, generator=torch.Generator().manual_seed(0))
    fill = (-1.0, 2.0)
    out = random_crop_flip(batch, torch.Generator().manual_seed(1), padding=2, fill=fill)
    assert out.shape == batch.shape
    same = random_crop_flip(batch, torch.Generator().manual_seed(1), padding=2, fill=fill)
    other = random_crop_flip(batch, torch.Generator().manual_seed(2), padding=2, fill=fill)
    assert torch.equal(out, same) and not torch.equal(out, other)
    # each output is one of the (2p+1)^2 x 2 crops/flips of its padded example, found by brute force
    for i in range(6):
        padded = torch.stack([torch.full((9, 11), fill[c]) for c in range(2)])
        padded[:, 2:7, 2:9] = batch[i]
        crops = [padded[:, r:r + 5, c:c + 7] for r in range(5) for c in range(5)]
        crops += [cr.flip(-1) for cr in crops]
        assert any(torch.equal(out[i], cr) for cr in crops)


# ---------------------------------------------------------------- errors

def test_load_dataset_errors():
    with pytest.raises(ValueError, match="valid names.*'cifar10'.*'mnist1d'"):
        load_dataset("mnist2d")
    for bad in (-0.1, 1.0):
        with pytest.raises(ValueError, match="label_noise"):
            load_dataset("digits", label_noise=bad)
    for bad in (0.0, 1.0):
        with pytest.raises(ValueError, match=r"val_fraction.*\(0, 1\)"):
            load_dataset("digits", val_fraction=bad)
    with pytest.raises(TypeError, match="valid options"):
        load_dataset("digits", flatt=True)
    with pytest.raises(ValueError, match="n_train"):
        load_dataset("digits", n_train=10**6)
    assert set(DATASETS) == {"mnist1d", "digits", "gaussian_mixture", "mnist_5k", "cifar10", "cifar100", "sine", "ba_toy"}


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_random_crop_flip_on_cuda_matches_cpu_with_a_cpu_generator():
    batch = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    cpu = random_crop_flip(batch, torch.Generator().manual_seed(4), padding=4, fill=(0.1, 0.2, 0.3))
    gpu = random_crop_flip(batch.cuda(), torch.Generator().manual_seed(4), padding=4, fill=(0.1, 0.2, 0.3))
    assert torch.equal(gpu.cpu(), cpu)                     # draws come from the generator's device
    on_device = random_crop_flip(batch.cuda(), torch.Generator(device="cuda").manual_seed(4), padding=4)
    assert on_device.shape == batch.shape and on_device.device.type == "cuda"
