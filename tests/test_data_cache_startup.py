"""The generated-data cache (deepdistill.core.data_cache) and a start-up without torch."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from deepdistill.core import data_cache
from deepdistill.core.data_cache import cache_files, cached_arrays, clear_cache

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPDISTILL_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _maker(calls: list, value: float = 1.0):
    def make():
        calls.append(1)
        return {"x": np.arange(12, dtype=np.float32).reshape(3, 4) * value, "y": np.array([0, 1, 2], dtype=np.int64)}
    return make


def test_hit_returns_the_stored_arrays_without_making_them_again(cache):
    calls: list = []
    first = cached_arrays("toy", {"seed": 1}, _maker(calls))
    second = cached_arrays("toy", {"seed": 1}, _maker(calls))
    assert len(calls) == 1
    assert len(cache_files()) == 1 and cache_files()[0].parent == cache / "data"
    for k in first:
        assert second[k].dtype == first[k].dtype and np.array_equal(second[k], first[k])


@pytest.mark.parametrize("change", [{"params": {"seed": 2}}, {"version": "2"}, {"name": "toy2"}])
def test_changed_arguments_version_or_name_is_a_miss(cache, change):
    calls: list = []
    cached_arrays("toy", {"seed": 1}, _maker(calls), version="1")
    kw = {"name": "toy", "params": {"seed": 1}, "version": "1", **change}
    out = cached_arrays(kw["name"], kw["params"], _maker(calls, value=2.0), version=kw["version"])
    assert len(calls) == 2
    assert out["x"][0, 1] == 2.0                                     # the new maker's arrays, not the old file's
    assert len(cache_files()) == 2


def test_a_package_version_is_part_of_the_key(cache, monkeypatch):
    key = data_cache.cache_key("toy", {"seed": 1}, "1", packages=("numpy",))
    assert json.loads(key)["packages"]["numpy"] == np.__version__
    monkeypatch.setattr(data_cache, "_versions", lambda packages: {p: "0.0-other" for p in packages})
    assert data_cache.cache_key("toy", {"seed": 1}, "1", packages=("numpy",)) != key


@pytest.mark.parametrize("content", [b"not a zip file at all", b"PK\x03\x04 truncated"])
def test_a_corrupt_file_is_regenerated_with_a_warning(cache, content):
    calls: list = []
    cached_arrays("toy", {"seed": 1}, _maker(calls))
    (path,) = cache_files()
    path.write_bytes(content)
    with pytest.warns(RuntimeWarning, match="cannot be read"):
        out = cached_arrays("toy", {"seed": 1}, _maker(calls))
    assert len(calls) == 2 and np.array_equal(out["y"], [0, 1, 2])
    cached_arrays("toy", {"seed": 1}, _maker(calls))               # rewritten: a hit again
    assert len(calls) == 2


def test_a_planted_pickle_is_never_loaded(cache):
    calls: list = []
    cached_arrays("toy", {"seed": 1}, _maker(calls))
    (path,) = cache_files()
    key = data_cache.cache_key("toy", {"seed": 1}, "1")
    # Same name and key, but an object array: reading it would need pickle.
    with open(path, "wb") as f:
        np.savez(f, __cache_key__=np.array(key), x=np.array([{"evil": 1}], dtype=object), y=np.arange(3))
    with pytest.warns(RuntimeWarning, match="cannot be read"):
        out = cached_arrays("toy", {"seed": 1}, _maker(calls))
    assert len(calls) == 2 and out["x"].dtype == np.float32


def test_a_file_holding_another_key_is_not_used(cache):
    calls: list = []
    cached_arrays("toy", {"seed": 1}, _maker(calls))
    (path,) = cache_files()
    with open(path, "wb") as f:
        np.savez(f, __cache_key__=np.array("someone else's key"), x=np.zeros(1), y=np.zeros(1))
    with pytest.warns(RuntimeWarning):
        out = cached_arrays("toy", {"seed": 1}, _maker(calls))
    assert len(calls) == 2 and out["x"].shape == (3, 4)


def test_clear_deletes_the_files_and_the_next_call_makes_again(cache):
    calls: list = []
    cached_arrays("toy", {"seed": 1}, _maker(calls))
    cached_arrays("toy", {"seed": 2}, _maker(calls))
    assert clear_cache() == 2 and cache_files() == []
    cached_arrays("toy", {"seed": 1}, _maker(calls))
    assert len(calls) == 3


def test_clear_from_the_command_line(cache):
    cached_arrays("toy", {"seed": 1}, _maker([]))
    env = {**__import__("os").environ, "DEEPDISTILL_CACHE": str(cache)}
    out = subprocess.run([sys.executable, "-m", "deepdistill.core.data_cache", "clear"], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True).stdout
    assert "deleted 1 file" in out and cache_files() == []


def test_off_makes_every_time_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPDISTILL_CACHE", "off")
    calls: list = []
    cached_arrays("toy", {"seed": 1}, _maker(calls))
    cached_arrays("toy", {"seed": 1}, _maker(calls))
    assert len(calls) == 2 and data_cache.cache_dir() is None


def test_the_folder_follows_xdg_cache_home(tmp_path, monkeypatch):
    monkeypatch.delenv("DEEPDISTILL_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data_cache.cache_dir() == tmp_path / "xdg" / "deepdistill"


def test_object_arrays_are_refused(cache):
    with pytest.raises(TypeError, match="Python objects"):
        cached_arrays("toy", {"seed": 1}, lambda: {"x": np.array([None, 1], dtype=object)})


def test_mnist1d_from_the_cache_equals_a_fresh_generation(cache, monkeypatch):
    from deepdistill.core.data import _mnist1d

    made = _mnist1d(num_samples=300)                     # a miss: generated and stored
    hit = _mnist1d(num_samples=300)
    monkeypatch.setenv("DEEPDISTILL_CACHE", "off")
    fresh = _mnist1d(num_samples=300)
    for a in ("x_pool", "y_pool", "x_test", "y_test"):
        assert getattr(hit, a).dtype == getattr(fresh, a).dtype
        assert np.array_equal(getattr(hit, a), getattr(fresh, a)) and np.array_equal(getattr(made, a), getattr(fresh, a))
    assert hit.input_shape == fresh.input_shape == (1, 40)


# -- start-up --------------------------------------------------------------------------------------

_PROBE = """
import sys
from deepdistill import cli
try:
    cli.main({argv!r})
except SystemExit:
    pass
heavy = sorted(m for m in ("torch", "scipy", "sklearn", "kerneldistill", "mnist1d") if m in sys.modules)
print("HEAVY=" + ",".join(heavy))
"""


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["rollup", "--help"]])
def test_help_imports_no_torch(argv):
    out = subprocess.run([sys.executable, "-c", _PROBE.format(argv=argv)], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    assert "usage:" in out
    assert out.strip().splitlines()[-1] == "HEAVY="


def test_the_probe_sees_torch_when_it_is_imported():
    # The check above could pass by looking in the wrong place: a subcommand that imports torch must show it.
    out = subprocess.run([sys.executable, "-c", _PROBE.format(argv=["sweep", "--help"])], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    assert "torch" in out.strip().splitlines()[-1]


def test_built_in_registry_names_match_the_registries():
    # config lists each registry's built-in names so that --help need not import torch; they must agree.
    from deepdistill.core import config
    from deepdistill.core.data import DATASETS, NOISE_TYPES
    from deepdistill.core.ema import EMA_VARIANTS
    from deepdistill.core.losses import SMOOTHING_CONVENTIONS
    from deepdistill.core.models import MODELS

    pairs = [(config.DATASETS_REGISTRY, DATASETS), (config.MODELS_REGISTRY, MODELS),
             (config.NOISE_TYPES_REGISTRY, NOISE_TYPES), (config.SMOOTHING_REGISTRY, SMOOTHING_CONVENTIONS),
             (config.EMA_VARIANTS_REGISTRY, EMA_VARIANTS)]
    for registry, live in pairs:
        assert list(registry.names) == list(live), f"update {registry.attr}'s built-in names in deepdistill/core/config.py"
        assert registry.resolve() is live                      # once imported, the registry itself (later entries count)


def test_cached_split_equals_sklearn_and_changes_with_the_labels(cache, monkeypatch):
    from deepdistill.core.data import _split

    y = np.random.default_rng(0).integers(0, 5, 300)
    first, hit = _split(y, 40, 5, seed=7), _split(y, 40, 5, seed=7)
    monkeypatch.setenv("DEEPDISTILL_CACHE", "off")
    fresh = _split(y, 40, 5, seed=7)
    for a, b, c in zip(first, hit, fresh):
        assert a.dtype == b.dtype == c.dtype and np.array_equal(a, c) and np.array_equal(b, c)
    assert len(fresh[1]) == 40 and np.array_equal(np.sort(np.r_[fresh[0], fresh[1]]), np.arange(300))
    monkeypatch.setenv("DEEPDISTILL_CACHE", str(cache))
    y2 = y.copy()
    y2[:2] = (y2[:2] + 1) % 5                                     # other labels: another key, another stratification
    assert len(cache_files()) == 1
    _split(y2, 40, 5, seed=7)
    assert len(cache_files()) == 2


def test_a_training_process_imports_no_scikit_learn(tmp_path):
    # A sweep worker's start-up: `kerneldistill` (whose estimator loads scikit-learn and scipy's statistics,
    # ~1 s) was imported by the weight check of every config; its names are now lazy. One epoch of a tiny
    # config. (Parts of scipy stay: the metrics' softmax and entropy, this data set's Bayes-rate quadrature.)
    argv = ["train", "--dataset", "gaussian_mixture", "--model", "mlp", "--generations", "1", "--epochs", "1",
            "--device", "cpu", "--quiet", "--out-dir", str(tmp_path / "run")]
    probe = _PROBE.format(argv=argv).replace('("torch", "scipy", "sklearn", "kerneldistill", "mnist1d")',
                                             '("torch", "sklearn", "scipy.stats", "kerneldistill.estimator")')
    last = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout.strip().splitlines()[-1]
    assert (tmp_path / "run" / "record.json").exists()
    assert last == "HEAVY=torch"                                      # the probe sees what was imported
