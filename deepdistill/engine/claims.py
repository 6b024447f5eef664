"""Claims: a file that says "this process is training this, and it is alive", so that no other process starts it.

A claim is a small JSON file next to what it guards (``generation_{g}.claim``, :func:`deepdistill.engine.runs.claim_path`)
holding the owner's host, process id, a random token, when it started and what it trains. The
owner's heartbeat is the file's modification time, refreshed every ``stale_after / 10`` seconds (at
most every 30 s) by a daemon thread, so the claim lives exactly as long as the owner does:

* :func:`try_claim` creates the file atomically (a complete file is hard-linked into place, which
  fails if one is there; where the file system has no hard links, ``O_EXCL`` creation) and returns a
  :class:`Claim`, or the :class:`Holder` of a live claim held by someone else.
* A claim is **stale**, and is taken over, when its heartbeat is older than ``stale_after`` seconds
  (:data:`DEFAULT_STALE_AFTER`, 300 s; the clocks of the machines sharing a folder must agree to
  well within that, as NTP keeps them), or at once when its owner ran on this host, in this process
  namespace, and that process is gone (killed, out of memory).
* Taking over renames the stale file to a unique name (a rename succeeds for one process only), checks
  that it moved the claim it judged stale (else it puts it back with a hard link, which never
  overwrites), and then claims afresh.
* An owner whose claim was taken over (its heartbeat stalled longer than ``stale_after``, e.g. a
  suspended machine) sees it on its next heartbeat; :meth:`Claim.check`, called by the training loop
  after every epoch, then raises :class:`ClaimLostError`, so that two processes never go on training
  one thing.

Why our own: ``fcntl`` locks vanish with their process but are unreliable on the network file systems
that sweeps share (NFS, Lustre), and they say nothing about who holds them; ``filelock`` and friends
are lock files without a heartbeat or a take-over. A claim file works the same on one disk, in shards
on a cluster and on Ray.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DEFAULT_STALE_AFTER", "check_stale_after", "Claim", "Holder", "ClaimLostError", "try_claim", "read_holder", "heartbeat_interval"]

#: Seconds without a heartbeat after which a claim is stale and may be taken over.
DEFAULT_STALE_AFTER = 300.0


class ClaimLostError(RuntimeError):
    """Another process took over this process's claim (its heartbeat had stalled): stop, do not write on."""


def check_stale_after(value, name: str = "stale_after") -> float:
    """``value`` as a claim timeout (a finite number of seconds > 0), else a ValueError naming ``name``
    (``"--claim-timeout"`` on the command line): the one check of the timeout, made before any work starts."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
    if not ok:
        raise ValueError(f"`{name}` (the claim timeout) must be a finite number of seconds > 0, e.g. "
                         f"{DEFAULT_STALE_AFTER:g}; got {value!r}.")
    return float(value)


def heartbeat_interval(stale_after: float) -> float:
    """Seconds between heartbeats: a tenth of the stale timeout (ten missed beats before a take-over), 30 s at most."""
    return min(max(stale_after / 10.0, 0.05), 30.0)


def _pid_namespace() -> str | None:
    # Two containers on one host may share its name but not their process ids: the dead-process
    # shortcut below applies only within one pid namespace.
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:        # alive, owned by another user
        return True
    except OSError:
        return True
    return True


@dataclass(frozen=True)
class Holder:
    """Who holds a claim, as read from its file (``age_s``: seconds since its last heartbeat)."""

    path: Path
    host: str | None
    pid: int | None
    token: str | None
    started: float | None
    what: str | None
    age_s: float
    pid_namespace: str | None = None
    mtime: float | None = None          # the last heartbeat (the file's modification time)

    def describe(self) -> str:
        who = f"{self.host}:{self.pid}" if self.host else "an unknown process"
        return f"{who} (last heartbeat {self.age_s:.0f} s ago; claim file {self.path})"

    def waiting_note(self, stale_after: float) -> str | None:
        """For a claim file that names no process (empty or not JSON: a process that died while creating
        it on a file system without hard links, or a file put there by hand): one line that says what a
        process waits for and until when; ``None`` for a readable claim (its holder is named elsewhere)."""
        if self.host is not None or self.pid is not None:
            return None
        last = self.mtime if self.mtime is not None else time.time() - self.age_s
        until = time.strftime("%H:%M:%S", time.localtime(last + stale_after))
        return (f"waiting for the claim file {self.path}, which is empty or unreadable (last changed {self.age_s:.0f} s "
                f"ago): it is taken over at {until} ({stale_after:g} s after its last change, --claim-timeout) unless "
                "it changes meanwhile; if no other process works on this folder, delete it to go on at once")

    def is_stale(self, stale_after: float) -> bool:
        if self.age_s > stale_after:
            return True
        same_process_space = (self.host == socket.gethostname() and self.pid_namespace == _pid_namespace())
        if same_process_space and isinstance(self.pid, int):
            if self.pid == os.getpid():
                return self.token not in _HELD          # ours, but no longer held: left behind
            return not _pid_alive(self.pid)
        return False


def read_holder(path) -> Holder | None:
    """The holder of the claim at ``path``, or ``None`` if there is no claim file."""
    path = Path(path)
    try:
        mtime = os.stat(path).st_mtime
        with open(path, "rb") as f:
            data = f.read(65536)   # a claim is ~200 bytes; a planted file is never read whole
    except FileNotFoundError:
        return None
    try:
        info = json.loads(data)    # JSON only: a claim file is never unpickled or evaluated
        if not isinstance(info, dict):
            raise ValueError
    except (ValueError, RecursionError):   # not JSON, not UTF-8 (a ValueError), or nested too deep ("[[[[...")
        info = {}                  # unreadable: judged by its age alone
    def text(key):                 # a field of the wrong type (planted) reads as absent
        value = info.get(key)
        return value if isinstance(value, str) else None

    pid, started = info.get("pid"), info.get("started")
    return Holder(path=path, host=text("host"), pid=pid if isinstance(pid, int) and not isinstance(pid, bool) else None,
                  token=text("token"), started=started if isinstance(started, (int, float)) else None,
                  what=text("what"), age_s=max(0.0, time.time() - mtime), pid_namespace=text("pid_namespace"),
                  mtime=mtime)


# Tokens of the claims this process holds (a claim of our own pid that is not here was left behind).
_HELD: set[str] = set()


class Claim:
    """A claim held by this process; release it with :meth:`release` (or use it as a context manager)."""

    def __init__(self, path: Path, token: str, stale_after: float):
        self.path, self.token, self.stale_after = Path(path), token, float(stale_after)
        self.lost = False
        self._stop = threading.Event()
        _HELD.add(token)
        self._thread = threading.Thread(target=self._beat, name=f"claim-heartbeat {self.path.name}", daemon=True)
        self._thread.start()

    def _still_ours(self) -> bool:
        holder = read_holder(self.path)
        return holder is not None and holder.token == self.token

    def _beat(self) -> None:
        interval = heartbeat_interval(self.stale_after)
        while not self._stop.wait(interval):
            if not self._still_ours():
                self.lost = True
                return
            with contextlib.suppress(OSError):
                os.utime(self.path)

    def check(self) -> None:
        """Raise :class:`ClaimLostError` if another process took this claim over (called by the training loop
        after every epoch, before it writes anything: one small read, so a loss is seen at once)."""
        if self.lost or not self._still_ours():
            self.lost = True
            holder = read_holder(self.path)
            raise ClaimLostError(
                f"the claim {self.path} was taken over by {holder.describe() if holder else 'another process'} after "
                f"this process's heartbeat stalled for more than {self.stale_after:g} s; stopping here so that one "
                "process trains it. Run the command again to wait for that process's result.")

    def release(self) -> None:
        """Stop the heartbeat and remove the claim file if it is still ours."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        _HELD.discard(self.token)
        if self._still_ours():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path)

    def __enter__(self) -> "Claim":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _create(path: Path, content: str) -> bool:
    """Create ``path`` with ``content`` if it does not exist; ``False`` if it does. Never a half-written claim:
    the content is written to a temporary file first and hard-linked into place."""
    tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
    with open(tmp, "x", encoding="utf-8") as f:
        f.write(content)
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    except OSError:
        # No hard links on this file system: exclusive creation (a reader may see it empty for a moment,
        # and then judges it by its fresh modification time: live).
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(content)
        return True
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _take_over(holder: Holder) -> None:
    """Move the stale claim ``holder`` out of the way (if it is still the one that was judged stale)."""
    moved = holder.path.parent / f".{holder.path.name}.{secrets.token_hex(6)}.stale"
    try:
        os.rename(holder.path, moved)
    except FileNotFoundError:      # another process took it over first
        return
    try:
        now = read_holder(moved)
        if now is not None and now.token != holder.token:
            # A fresh claim had replaced the stale one in between: put it back (link never overwrites).
            with contextlib.suppress(OSError):
                os.link(moved, holder.path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(moved)


def try_claim(path, what: str = "", stale_after: float = DEFAULT_STALE_AFTER, *, log=None) -> Claim | Holder:
    """Claim ``path`` for this process: a :class:`Claim` (held, with its heartbeat running), or the
    :class:`Holder` of a live claim that another process holds.

    A stale claim (see the module docstring) is taken over, and ``log`` (if given) says so and whose it was.
    """
    check_stale_after(stale_after)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(8)
    content = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "pid_namespace": _pid_namespace(),
                          "token": token, "started": time.time(), "what": what}) + "\n"
    for _ in range(100):           # each round either claims, finds a live holder, or removes a stale one
        if _create(path, content):
            return Claim(path, token, stale_after)
        holder = read_holder(path)
        if holder is None:          # released in between: try again
            continue
        if not holder.is_stale(stale_after):
            return holder
        if log:
            log(f"taking over the stale claim of {holder.describe()} on {what or path}")
        _take_over(holder)
    raise RuntimeError(f"could not claim {path}: it changed hands 100 times in a row.")
