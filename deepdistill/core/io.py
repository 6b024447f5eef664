"""Atomic file writes: a result or checkpoint is either the old file or the complete new one.

The one writer of the toolkit (``analysis``'s tables, figures and report go through it too). It
writes to a temporary file in the destination's own folder (so that ``os.replace`` is a rename on
one file system, atomic on POSIX and Windows), flushes and fsyncs it, then replaces the destination.
An interrupted run therefore never leaves a half-written JSON record, CSV roll-up, figure or
checkpoint behind; at worst a stray ``.tmp`` file that the next write of the same name ignores.
The file gets the mode the user's umask gives a new file (0644 under the usual umask 022), as
``open(path, "w")`` would.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import os
import secrets
from pathlib import Path
from typing import Any, Callable, Iterator

__all__ = ["atomic_write", "atomic_write_text", "atomic_write_json", "atomic_write_csv", "atomic_torch_save", "read_json",
           "to_jsonable", "OutDirError", "ensure_writable_dir"]

# O_EXCL: never open a file someone else created; O_NOFOLLOW: never write through a planted symlink;
# O_BINARY (Windows only): no newline translation below the file object, which does its own.
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)


def _open_temp(target: Path) -> tuple[int, Path]:
    """A new temporary file next to ``target``: ``(fd, path)``.

    Why not ``tempfile.mkstemp``: it creates the file with mode 0600 whatever the umask, so every
    result would be unreadable to the user's group. ``os.open`` with mode 0666 lets the OS apply the
    umask, with no window in which the umask is changed (reading it with ``os.umask`` would be one).
    """
    while True:
        tmp = target.parent / f".{target.name}.{secrets.token_hex(6)}.tmp"
        try:
            return os.open(tmp, _TEMP_FLAGS, 0o666), tmp
        except FileExistsError:   # 48 random bits taken: draw again
            continue


@contextlib.contextmanager
def atomic_write(path, mode: str = "w", *, guard: Callable[[], None] | None = None, **open_kwargs) -> Iterator[Any]:
    """Open a temporary file next to ``path``; on a clean exit, fsync it and ``os.replace`` it onto ``path``.

    ``mode`` and ``open_kwargs`` are those of :func:`open` (``"w"``, ``"wb"``; ``encoding``, ``newline``).
    ``guard``: called just before the file replaces ``path``; if it raises, nothing is replaced (a
    training process checks there that its claim is still its own).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _open_temp(path)
    try:
        file = os.fdopen(fd, mode, **open_kwargs)
    except BaseException:   # a bad mode or encoding: nothing was written, leave nothing behind
        os.close(fd)
        os.unlink(tmp)
        raise
    try:
        with file as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if guard is not None:
            guard()
        os.replace(tmp, path)
    except BaseException:
        # Whatever went wrong (including KeyboardInterrupt), the destination keeps its old content.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path, text: str) -> None:
    with atomic_write(path, "w", encoding="utf-8", newline="") as f:
        f.write(text)


def to_jsonable(obj):
    """Plain JSON types from numpy/torch scalars, tuples and paths; non-finite floats become None.

    JSON has no NaN or Infinity (Python's ``json`` writes them, but other readers reject the file),
    so a missing value is written as ``null``.
    """
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 0) == 0:
        obj = obj.item()  # numpy / torch scalar
    if hasattr(obj, "tolist") and callable(obj.tolist):
        return to_jsonable(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def atomic_write_json(path, obj) -> None:
    atomic_write_text(path, json.dumps(to_jsonable(obj), indent=2, sort_keys=False, allow_nan=False) + "\n")


def atomic_write_csv(path, rows: list[dict]) -> None:
    """Write dict ``rows`` as CSV: the columns are every key in first-seen order, a missing key or a
    float NaN is an empty cell (the csv module would write the text ``nan``)."""
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()})
    atomic_write_text(path, buf.getvalue())


def read_json(path):
    """The parsed JSON at ``path``, or ``None`` when the file is missing or not valid JSON (nested too deep
    for the parser, e.g. a planted ``[[[[...``, included)."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        return None


def atomic_torch_save(obj, path, save: Callable | None = None, guard: Callable[[], None] | None = None) -> None:
    """``torch.save`` through a temporary file and ``os.replace`` (``guard``: see :func:`atomic_write`)."""
    import torch

    with atomic_write(path, "wb", guard=guard) as f:
        (save or torch.save)(obj, f)


class OutDirError(ValueError):
    """An output folder that is a file, cannot be created, or cannot be written to; the message says which."""


def ensure_writable_dir(path, name: str = "out_dir") -> Path:
    """Create the folder ``path`` if needed and check that files can be written in it; return it as a Path.

    Checked by writing (and removing) a probe file, the one test that holds for permissions, ACLs,
    read-only mounts and network file systems alike. Raises :class:`OutDirError`, which names ``name``,
    the path and the reason, before any work starts.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutDirError(f"`{name}` {str(path)!r} is a file, not a folder; give a folder (it is created if missing).")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutDirError(f"`{name}` {str(path)!r} cannot be created: {err.strerror or err}"
                          + (f" ({err.filename})" if err.filename and str(err.filename) != str(path) else "")
                          + ".") from None
    try:
        fd, probe = _open_temp(path / ".write-probe")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise OutDirError(f"`{name}` {str(path)!r} is not writable: {err.strerror or err}. Choose a folder you can "
                          "write to.") from None
    return path
