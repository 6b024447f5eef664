"""A per-user cache of generated data sets: made once per machine, reused by every process.

Generating MNIST-1D (``mnist1d.data.make_dataset``) costs about 1.5 s, and importing the ``mnist1d``
package another 0.5-3 s, in every process that loads it: each CLI call, each sweep worker, each Ray
task. :func:`cached_arrays` stores a generator's output the first time and reads it back afterwards.

* **Key.** The generator's name, its arguments and the versions it depends on (the generator's own
  version string and the versions of the packages named in ``packages``) are written as canonical JSON;
  the file name holds its SHA-256 and the file holds the JSON itself, which is compared on reading (a
  hash clash or a renamed file is a miss, never wrong data). Change an argument or a version: a new file.
* **Format.** One ``.npz`` of plain numeric arrays, read with ``numpy.load(allow_pickle=False)``: nothing
  in the cache is ever unpickled, so a planted file can at worst be wrong numbers of the right name, the
  same trust as any file the user owns.
* **Writes** go through :func:`deepdistill.core.io.atomic_write` (a temporary file, fsync, rename): a
  reader sees the old file or the whole new one, and two processes that generate at once both write a
  complete file, the last one winning (the contents are the same).
* **A corrupt or unreadable file** is regenerated (and rewritten) with a warning.
* **Where.** ``$DEEPDISTILL_CACHE`` if set (``off``, ``0`` or an empty value turn the cache off), else
  ``$XDG_CACHE_HOME/deepdistill``, else ``~/.cache/deepdistill``; data sets go to its ``data/`` folder.
  A folder that cannot be written leaves the data generated in memory, with a warning.
* **Clear** with ``python -m deepdistill.core.data_cache clear`` (``info`` lists the files), or delete
  the folder: everything in it can be made again.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

from deepdistill.core.io import atomic_write

__all__ = ["cache_dir", "cached_arrays", "cache_key", "cache_path", "clear_cache", "cache_files", "ENV_VAR"]

#: The environment variable naming the cache folder (``off`` / ``0`` / empty: no cache).
ENV_VAR = "DEEPDISTILL_CACHE"
# Bump when the layout of the files changes: old files are then misses, never misread.
_FORMAT = 1
_KEY_ARRAY = "__cache_key__"
_OFF = ("", "0", "off", "none", "false")


def cache_dir() -> Path | None:
    """The cache's root folder, or ``None`` when ``$DEEPDISTILL_CACHE`` turns it off."""
    given = os.environ.get(ENV_VAR)
    if given is not None:
        return None if given.strip().lower() in _OFF else Path(given).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "deepdistill"


def _versions(packages) -> dict:
    out = {}
    for name in packages:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def cache_key(name: str, params: dict, version: str, packages=()) -> str:
    """The canonical JSON that identifies a generated data set (see the module docstring)."""
    return json.dumps({"format": _FORMAT, "name": name, "params": params, "version": str(version),
                       "packages": _versions(packages)}, sort_keys=True, separators=(",", ":"))


def cache_path(name: str, key: str) -> Path | None:
    root = cache_dir()
    if root is None:
        return None
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    return root / "data" / f"{name}-{digest}.npz"


def _read(path: Path, key: str) -> dict[str, np.ndarray] | None:
    """The arrays of ``path`` if it holds ``key``; ``None`` when absent or not ours; raises when corrupt."""
    if not path.is_file():
        return None
    with np.load(path, allow_pickle=False) as z:
        stored = str(z[_KEY_ARRAY][()]) if _KEY_ARRAY in z.files else None
        if stored != key:
            raise ValueError("the file holds another key (or none)")
        return {k: z[k] for k in z.files if k != _KEY_ARRAY}


def _write(path: Path, key: str, arrays: dict[str, np.ndarray]) -> None:
    with atomic_write(path, "wb") as f:
        np.savez(f, **{_KEY_ARRAY: np.array(key)}, **arrays)


def cached_arrays(name: str, params: dict, make: Callable[[], dict], *, version: str = "1",
                  packages=()) -> dict[str, np.ndarray]:
    """``make()``'s dict of numeric arrays, from the cache when it holds this ``name``, ``params``, ``version``
    and ``packages`` versions; else made, stored and returned.

    ``params`` must be JSON-serialisable (the generator's arguments); ``version`` is the generator's own
    version (bump it when its code changes what it makes); ``packages``: installed distributions whose
    versions the output depends on. The arrays must not hold Python objects (``dtype=object``): the cache
    is read without unpickling. A hit returns exactly the arrays that were stored (same dtype, same bits).
    """
    key = cache_key(name, params, version, packages)
    path = cache_path(name, key)
    if path is not None:
        try:
            hit = _read(path, key)
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            warnings.warn(f"data cache: {path} cannot be read ({type(err).__name__}: {err}); making {name} again "
                          "and rewriting it", RuntimeWarning, stacklevel=2)
            hit = None
        if hit is not None:
            return hit
    arrays = {k: np.asarray(v) for k, v in make().items()}
    wrong = [k for k, v in arrays.items() if v.dtype == object]
    if wrong:
        raise TypeError(f"cached_arrays: `make` must return numeric arrays; {wrong} hold Python objects.")
    if path is not None:
        try:
            _write(path, key, arrays)
        except OSError as err:
            warnings.warn(f"data cache: cannot write {path} ({err}); {name} is made again in every process. Set "
                          f"{ENV_VAR} to a writable folder, or to 'off'.", RuntimeWarning, stacklevel=2)
    return arrays


def cache_files() -> list[Path]:
    """The files in the cache's ``data/`` folder (none when the cache is off or empty)."""
    root = cache_dir()
    folder = None if root is None else root / "data"
    if folder is None or not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and (p.suffix == ".npz" or p.name.endswith(".tmp")))


def clear_cache() -> int:
    """Delete every cached data set (and temporary files left by interrupted writes); return how many."""
    count = 0
    for p in cache_files():
        try:
            p.unlink()
            count += 1
        except FileNotFoundError:           # another process cleared it first
            pass
    return count


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deepdistill.core.data_cache",
                                     description="The cache of generated data sets (MNIST-1D): list or clear it. "
                                                 f"Folder: ${ENV_VAR}, else $XDG_CACHE_HOME/deepdistill, else "
                                                 "~/.cache/deepdistill.")
    parser.add_argument("action", choices=["info", "clear"], help="info: list the files; clear: delete them")
    args = parser.parse_args(argv)
    root = cache_dir()
    if root is None:
        print(f"the data cache is off (${ENV_VAR}={os.environ.get(ENV_VAR)!r})")
        return 0
    if args.action == "clear":
        print(f"deleted {clear_cache()} file(s) from {root / 'data'}")
        return 0
    files = cache_files()
    for p in files:
        print(f"{p.stat().st_size / 1e6:8.2f} MB  {p}")
    print(f"{len(files)} file(s) in {root / 'data'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
