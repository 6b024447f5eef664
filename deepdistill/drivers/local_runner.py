"""The local backend of a sweep: every generation trained once, ``jobs`` at a time.

The unit of work is one generation of one run prefix, not a whole run: runs that differ only in later
generations share their first ones through the generation cache (:func:`deepdistill.engine.runs.prefix_dir`),
so a sweep over five ``gt_weight`` values trains one teacher and five students. The generations form
a graph (generation ``g`` of a prefix needs generation ``g - 1``); the driver (this process) starts
every generation whose teacher is finished on a free slot, longest chains first, and writes each
run's record once all its generations are there (:func:`deepdistill.engine.train.train_run` with
``through_generation`` and the cache, the same calls a Ray task makes).

* **Processes.** ``jobs`` generations train at once, in ``jobs`` worker processes (``spawn``, so that
  no thread state is forked), each with ``threads_per_job`` torch threads; while the workers start
  up, the first generation trains in this process, so that it starts at once. ``jobs=1`` runs everything in the calling thread. Small networks cannot use a second
  intra-op thread (and on a loaded machine a second thread makes them many times slower, as measured
  by ``bench/bench_sweep_speed.py``), but a second process trains a second network: the default is
  one job per usable core, one thread each (:func:`default_jobs`). A process loads each data set
  once for all its tasks. With ``jobs`` above 1 in a script of your own, guard its entry point with
  ``if __name__ == "__main__":`` (the rule of Python's ``spawn``: each worker imports the script).
* **Same results.** Each generation is the very computation a run alone makes (its seeds derive from
  the run's seed and the generation; its teacher is read back from the checkpoint, bitwise the
  network held in memory). On the CPU the thread count changes the last bits of floating-point sums,
  so records equal a serial sweep's with the same ``threads_per_job``, whatever ``jobs``.
* **Claims.** A generation is trained under a claim (:mod:`deepdistill.engine.claims`). One that another
  process (another sweep, a shard, a Ray task) holds is left to it: the driver goes on with other work
  and checks back every poll interval, until the checkpoint appears or the claim goes stale (its owner
  died: then it is taken over).
* **Faults.** An error in a generation fails the runs that need it; the others finish, the roll-up is
  written, and the sweep ends with an error naming the failed runs (as on Ray). A worker process that
  dies (killed, out of memory) is replaced and its generation retried ``max_retries`` times; the retry
  resumes from the generation's last epoch checkpoint.
"""
from __future__ import annotations

import _thread
import atexit
import concurrent.futures as cf
import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from deepdistill.engine.claims import DEFAULT_STALE_AFTER, ClaimLostError, check_stale_after, heartbeat_interval
from deepdistill.core.config import TrainConfig, config_diff
from deepdistill.engine.results import describe_run
from deepdistill.core.threads import torch_threads
from deepdistill.engine.runs import RECORD_FILE, SplitCache, checkpoint_path, generation_home, is_finished, read_record
from deepdistill.engine.train import GenerationBusy, resolve_device, train_run

__all__ = ["run_local", "default_jobs", "resolve_jobs", "usable_cores", "torch_threads"]


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, which Slurm and containers set), else all."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_jobs(threads_per_job: int | None = 1, device: str = "cpu") -> int:
    """``jobs`` (generations trained at once) when none are asked for: ``usable cores // threads_per_job`` on the
    CPU, 1 on a GPU (one process per card; share a card between runs with Ray's ``--gpus-per-task``)."""
    if device != "cpu" and resolve_device(device).type != "cpu":
        return 1
    return max(1, usable_cores() // max(1, threads_per_job or 1))


def resolve_jobs(jobs: int | None = None, threads_per_job: int | None = 1, device: str = "cpu", *,
                 names: tuple[str, str] = ("jobs", "threads_per_job")) -> tuple[int, int | None]:
    """``(jobs, threads_per_job)`` checked, with ``jobs`` defaulted: the one place where both are checked and
    the default is chosen, for the sweep (command line and Python) and the weight study.

    ``jobs``: processes training at once, an integer >= 1, or ``None`` for :func:`default_jobs` (on the
    command line ``--jobs 0`` or ``auto``). ``threads_per_job``: torch threads of each job, an integer
    >= 1, or ``None`` to leave torch's setting as it is (the Python API only: ``--threads-per-job 0`` is
    refused, since torch's default is one thread per core in every job, which oversubscribes the CPU
    ``jobs`` times over). ``names``: how the two are called in the error (``("--jobs",
    "--threads-per-job")`` on the command line).

    While the ``jobs`` workers start up (imports, data), the driver trains the most urgent generation
    itself, so for that one generation ``jobs + 1`` trainings run at once. That is intended: starting a
    worker takes about as long as a small generation, and the extra process costs time-slicing, not work
    (see :class:`_Slots`).
    """
    jobs_name, threads_name = names
    if threads_per_job is not None and (isinstance(threads_per_job, bool) or not isinstance(threads_per_job, int)
                                        or threads_per_job < 1):
        raise ValueError(f"`{threads_name}` must be an integer >= 1 (torch threads of each job); got "
                         f"{threads_per_job!r}.")
    if jobs is None:
        return default_jobs(threads_per_job, device), threads_per_job
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"`{jobs_name}` must be an integer >= 1 (processes training at once), or "
                         f"{'0 / auto' if jobs_name.startswith('--') else 'None'} for the default; got {jobs!r}.")
    return jobs, threads_per_job


# ------------------------------------------------------------------------------------------------
# What a worker runs
# ------------------------------------------------------------------------------------------------

# The data sets this worker process has loaded (one kept: sweeps rarely mix data sets).
_SPLITS = SplitCache(max_size=1)
_splits_for = _SPLITS


def _worker_init(threads: int | None, driver_pid: int | None = None) -> None:
    # Ctrl-C reaches every process of the terminal's group, and the driver passes it on to us too: it
    # stops the task under way (whose claim is released on the way out), never the idle worker itself.
    signal.signal(signal.SIGINT, _interrupt_task)
    if driver_pid is not None:
        _watch_driver(driver_pid)
    if threads is not None:
        torch.set_num_threads(threads)
    # When the pool shuts down, multiprocessing has already flushed and closed what the worker shares with
    # the driver; tearing torch's modules down one by one after that takes a second or two, for nothing.
    atexit.register(_exit_now)


# ------------------------------------------------------------------------------------------------
# A worker ends when its driver dies
# ------------------------------------------------------------------------------------------------

#: Seconds between two looks of a worker at its parent (the fallback where PR_SET_PDEATHSIG is missing).
_WATCH_EVERY = 0.5
#: Seconds a worker whose driver died gives its task to stop (releasing its claim) before it exits anyway.
_ORPHAN_GRACE = 10.0
_PR_SET_PDEATHSIG = 1
_DRIVER_GONE = threading.Event()


def _set_parent_death_signal(sig: int) -> bool:
    """Ask Linux to send ``sig`` to this process when its parent dies (``prctl(PR_SET_PDEATHSIG)``); False
    where that is not available (other systems, no libc)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _watch_driver(driver_pid: int) -> None:
    """Make this worker end when its driver (``driver_pid``, its parent) dies, even by SIGKILL, where no
    clean-up of the driver's runs: a worker left behind would sleep forever on its task queue (the queue's
    pipe stays open, since every worker holds both its ends).

    Two ways, either enough: on Linux the kernel sends SIGUSR1 at the parent's death
    (``PR_SET_PDEATHSIG``; not SIGTERM, which keeps its meaning: stop now), and everywhere a daemon thread looks every :data:`_WATCH_EVERY` s whether
    the parent changed (an orphan is adopted by init or a subreaper). Either way the task under way
    is interrupted as Ctrl-C interrupts it (its claim released, its epoch checkpoint kept for the next
    run) and the process exits; a task that does not stop within :data:`_ORPHAN_GRACE` s is left, and
    its claim, of a dead process on this host, is taken over at once by the next run.
    """
    if hasattr(signal, "SIGUSR1"):
        signal.signal(signal.SIGUSR1, lambda signum, frame: _DRIVER_GONE.set())
        _set_parent_death_signal(signal.SIGUSR1)
    threading.Thread(target=_orphan_watch, args=(driver_pid,), name="driver-watch", daemon=True).start()


def _orphan_watch(driver_pid: int) -> None:
    while not _DRIVER_GONE.wait(_WATCH_EVERY):
        if os.getppid() != driver_pid:
            break
    if _TASK["running"]:
        _thread.interrupt_main()      # the SIGINT handler: KeyboardInterrupt in the task, claims released
        deadline = time.monotonic() + _ORPHAN_GRACE
        while _TASK["running"] and time.monotonic() < deadline:
            time.sleep(0.05)
    _exit_now(1)


# In a worker process: whether a task is under way, and whether it was interrupted already.
_TASK = {"running": False, "interrupted": False}


def _interrupt_task(signum, frame) -> None:
    if _TASK["running"] and not _TASK["interrupted"]:
        _TASK["interrupted"] = True
        raise KeyboardInterrupt


@contextlib.contextmanager
def _task():
    _TASK.update(running=True, interrupted=False)
    try:
        yield
    finally:
        _TASK["running"] = False


def _exit_now(status: int = 0) -> None:
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(status)


class _Tagged:
    """A log that prefixes every line with ``[tag]`` (so that the lines of parallel workers can be told
    apart), into ``sink`` (this process's log) or, in a worker process, onto stderr."""

    def __init__(self, tag: str, sink: Callable[[str], None] | None = None):
        self.tag, self.sink = tag, sink

    def __call__(self, message: str) -> None:
        line = f"[{self.tag}] {message}"
        if self.sink is not None:
            self.sink(line)
        else:
            print(line, file=sys.stderr, flush=True)

    def __getstate__(self):           # a worker process logs onto its own stderr
        return {"tag": self.tag, "sink": None}


def _generation_task(config: TrainConfig, run_dir: Path, generation: int, cache_dir, claim_timeout: float,
                     log: _Tagged | None) -> dict:
    """Generation ``generation`` of ``config`` (its earlier ones already finished), trained in the cache (or in
    ``run_dir`` without one); ``{"busy": holder}`` when another live process is training it."""
    try:
        with _task():
            train_run(config.replace(out_dir=str(run_dir)), run_dir, through_generation=generation, cache_dir=cache_dir,
                      claim_timeout=claim_timeout, wait=False, splits=_splits_for(config), log=log, progress=False)
    except GenerationBusy as busy:
        return {"busy": busy.holder.describe(), "note": busy.holder.waiting_note(claim_timeout)}
    except ClaimLostError as lost:     # another process took it over while this one stalled: it finishes it
        return {"busy": str(lost)}
    return {"busy": None}


def _finish_task(config: TrainConfig, run_dir: Path, cache_dir, claim_timeout: float) -> dict:
    """The record of a run whose generations are all finished (read back and linked into its folder)."""
    with _task():
        return train_run(config.replace(out_dir=str(run_dir)), run_dir, cache_dir=cache_dir,
                         claim_timeout=claim_timeout, splits=_splits_for(config), progress=False)


def _warm_up(config: TrainConfig) -> None:
    """A new worker imports the training code and loads the sweep's data while the first generation trains."""
    with _task():
        _splits_for(config)


class _Slots:
    """Where tasks run: ``jobs`` worker processes (``spawn``: no thread state is forked), and the driver
    while they start up.

    Starting a worker (imports, the sweep's data) takes about as long as a small generation, so while
    the workers warm up the most urgent task runs in the driver, in the calling thread, and the first
    generation starts at once. Once the workers are ready, every task goes to them and the driver only
    schedules: a driver that trained too would leave a worker idle whenever the worker's task ended
    before its own (measured: the full report preset, 2.39x faster than before with the driver training,
    below the 2.5x aimed at). For the length of the driver's one task there is one process more than
    ``jobs``; that costs time-slicing, not work. (Not a thread of the driver: a thread inside torch
    cannot be stopped by Ctrl-C, and one still running when the interpreter exits aborts it.)
    """

    def __init__(self, jobs: int, threads_per_job: int | None, warm_up: TrainConfig | None,
                 share: Callable[[int], int] | None = None):
        self.jobs, self.threads, self.warm_config = jobs, threads_per_job, warm_up
        # share(jobs): how many workers may be busy now (another sweep training into the same folder gets
        # the rest of the cores); None: all of them.
        self.share = share
        self.pool, self.warming = None, []
        self.pool_busy = 0
        self._start_pool()

    def _start_pool(self) -> None:
        if self.jobs > 1:
            pool = cf.ProcessPoolExecutor(max_workers=self.jobs, mp_context=multiprocessing.get_context("spawn"),
                                          initializer=_worker_init, initargs=(self.threads, os.getpid()))
            config = self.warm_config
            self.warming = [pool.submit(_warm_up, config) for _ in range(self.jobs)] if config else []
            self.pool = pool

    def _warm(self) -> bool:
        return self.pool is not None and all(f.done() for f in self.warming)

    def capacity(self) -> int:
        """Tasks that can start now: the free workers (and the driver, while they warm up; alone without them)."""
        if self.pool is None:
            return 1
        usable = self.jobs if self.share is None else min(self.jobs, self.share(self.jobs))
        return max(0, usable - self.pool_busy) + (0 if self._warm() else 1)

    def run(self, tasks: list, submit: Callable, run_here: Callable) -> None:
        """Start ``tasks`` (at most :meth:`capacity`, most urgent first): ``submit(task)`` puts one on the pool,
        ``run_here(task)`` runs one in this thread, last, as it blocks: without workers, or, while they warm
        up, the most urgent one."""
        if not tasks:
            return
        if self.pool is None:
            on_pool, here = tasks[:-1], tasks[-1]
        elif self._warm():
            on_pool, here = tasks, None
        else:
            on_pool, here = tasks[1:], tasks[0]
        for task in on_pool:
            self.pool_busy += 1
            submit(task)
        if here is not None:
            run_here(here)

    def done_on_pool(self) -> None:
        self.pool_busy -= 1

    def restart_pool(self) -> None:
        """After a worker process died (the pool is then unusable): a fresh pool, nothing of it busy."""
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.pool_busy = 0
        self._start_pool()

    def stop(self, in_flight) -> None:
        """Stop the workers' tasks now (Ctrl-C), then the workers: each task is interrupted as Ctrl-C interrupts
        the driver's (its claim released, its epoch checkpoint kept for the next run)."""
        if self.pool is None:
            return
        # No public API lists a ProcessPoolExecutor's workers; `_processes` has held them since Python 3.2.
        workers = list((getattr(self.pool, "_processes", None) or {}).values())
        for process in workers:
            with contextlib.suppress(OSError):
                os.kill(process.pid, signal.SIGINT)
        _, stuck = cf.wait(list(in_flight) + self.warming, timeout=30)
        if stuck:                      # a task deaf to Ctrl-C (inside one long C call): stopped the hard way
            for process in workers:
                with contextlib.suppress(Exception):
                    process.terminate()
        self.pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _run_into(future: cf.Future, fn, args) -> None:
    try:
        future.set_result(fn(*args))
    except Exception as err:           # noqa: BLE001 - handed to the driver, as a worker's would be
        future.set_exception(err)


# ------------------------------------------------------------------------------------------------
# The driver
# ------------------------------------------------------------------------------------------------

@dataclass
class _Node:
    """One generation to train: of the prefix ``key``, for the runs ``run_ids`` (its first run's config stands for all)."""

    key: str
    config: TrainConfig
    run_dir: Path
    generation: int
    parent: str | None
    folder: Path
    run_ids: list = field(default_factory=list)
    generations_after: int = 0   # the longest chain of generations still to come after it (started first)
    state: str = "todo"          # todo, running, busy (claimed elsewhere), done, failed
    retry_at: float = 0.0
    attempts: int = 0

    def finished(self) -> bool:
        return checkpoint_path(self.folder, self.generation).exists()


@dataclass
class _Run:
    config: TrainConfig
    run_dir: Path
    keys: list
    record: dict | None = None
    error: BaseException | None = None
    state: str = "todo"          # todo, running, done, failed


def _varying_fields(configs: list[TrainConfig]) -> list[str]:
    """The config fields that differ between the runs (the grid's axes), for the log lines."""
    if len(configs) < 2:
        return ["method", "gt_weight", "seed"]
    first = configs[0].identity()
    fields = set()
    for c in configs[1:]:
        fields.update(config_diff(first, c.identity()))
    return sorted(fields) or ["seed"]


def _describe(config: TrainConfig, fields: list[str]) -> str:
    return ", ".join(f"{k} {getattr(config, k)}" for k in fields)


def _describe_node(node: _Node, runs: dict, fields: list[str]) -> str:
    """``run <id> (gt_weight 0.3, seed 0)``, or for a generation that several runs share, what they have in
    common and the values they differ in (which matter only in their later generations)."""
    if len(node.run_ids) == 1:
        return f"run {node.run_ids[0]} ({_describe(node.config, fields)})"
    values = {f: list(dict.fromkeys(repr(getattr(runs[r].config, f)) for r in node.run_ids)) for f in fields}
    same = ", ".join(f"{f} {v[0]}" for f, v in values.items() if len(v) == 1)
    differ = "; ".join(f"{f} {' '.join(v)}" for f, v in values.items() if len(v) > 1)
    common = f"{same}, " if same else ""      # the sweep's only varying fields may all differ here
    return f"{common}the {len(node.run_ids)} runs ({differ}) that share it"


def run_local(items: list[tuple[TrainConfig, Path]], cache_dir=None, *, jobs: int = 1, threads_per_job: int | None = 1,
              claim_timeout: float = DEFAULT_STALE_AFTER, max_retries: int = 1, log: Callable[[str], None] | None = None,
              progress: bool | None = None) -> list[dict]:
    """Train every run ``(config, run_dir)`` of ``items`` (skipping finished ones); return their records in order.

    ``cache_dir``: the generation cache shared by the runs (``None``: every run trains each of its
    generations in its own folder). ``jobs``: worker processes (1: this process); ``threads_per_job``:
    torch threads of each (``None``: torch's default, left as it is). ``claim_timeout``: seconds without a
    heartbeat after which another process's claim is stale. Runs that fail do not stop the others; once
    all are done, a RuntimeError names the failed ones.
    """
    from tqdm.auto import tqdm

    if jobs is None:
        raise ValueError("`jobs` must be an integer >= 1 (worker processes); got None (resolve_jobs gives the default).")
    jobs, threads_per_job = resolve_jobs(jobs, threads_per_job)
    claim_timeout = check_stale_after(claim_timeout, "claim_timeout")
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        raise ValueError(f"`max_retries` must be an integer >= 0; got {max_retries!r}.")
    fields = _varying_fields([c for c, _ in items])

    runs: dict[str, _Run] = {}
    nodes: dict[str, _Node] = {}
    records = {c.run_id(): read_record(Path(d) / RECORD_FILE) for c, d in items}
    # Unfinished runs first: a generation is trained through the first run that needs it.
    for config, run_dir in sorted(items, key=lambda item: is_finished(records[item[0].run_id()], item[0])):
        rid = config.run_id()
        if rid in runs:
            continue
        run_dir = Path(run_dir)
        keys, parent = [], None
        for g in range(config.generations):
            key, folder = generation_home(config, g, run_dir, cache_dir)
            node = nodes.setdefault(key, _Node(key, config, run_dir, g, parent, folder))
            node.run_ids.append(rid)
            node.generations_after = max(node.generations_after, config.generations - 1 - g)
            keys.append(key)
            parent = key
        runs[rid] = _Run(config, run_dir, keys)
        record = records[rid]
        if is_finished(record, config):
            runs[rid].record, runs[rid].state = record, "done"
            if log:
                log(describe_run("skipped (finished)", record))
    for node in nodes.values():
        if node.finished():
            node.state = "done"

    poll = min(heartbeat_interval(claim_timeout), 2.0)
    needed = {k for r in runs.values() if r.state != "done" for k in r.keys}
    todo = [nodes[k] for k in needed if nodes[k].state != "done"]
    lease = _DriverLease(cache_dir) if (cache_dir is not None and todo and jobs > 1) else None
    asked = jobs

    if lease is not None and lease.drivers > 1:
        # Another sweep trains into this folder on this machine: the generations are shared through the
        # claims, so the cores are too. Each driver starts jobs // drivers workers (measured: two identical
        # sweeps at once, bench/bench_concurrent_sweeps.py); with one, the driver trains alone. Counted under
        # a lock at the start (a sweep started a moment later counts this one), then again while scheduling:
        # the earlier sweep then keeps only its share of its workers busy. (Not in a helper thread: a worker
        # started from a thread gets its parent-death signal when that thread ends.)
        shared = max(1, jobs // lease.drivers)
        if log and shared < jobs:
            log(f"{lease.drivers - 1} other sweep(s) train into {cache_dir} on this machine: {shared} job(s) here "
                f"instead of {jobs}")
        jobs = shared

    def share(n: int) -> int:
        before = lease.drivers
        shared = lease.share(asked)
        if log and lease.drivers != before:
            log(f"{lease.drivers - 1} other sweep(s) train into {cache_dir} on this machine now: at most "
                f"{min(n, shared)} of {n} worker(s) busy here")
        return shared

    slots = _Slots(min(jobs, max(1, len(todo))), threads_per_job, todo[0].config if todo else None,
                   share=share if lease is not None else None)
    bar = tqdm(total=len(runs), initial=sum(r.state == "done" for r in runs.values()), desc="sweep", unit="run",
               disable=None if progress is None else not progress)
    in_flight: dict[cf.Future, tuple[str, str]] = {}     # a task on the pool -> ("gen", key) or ("run", run id)
    said_busy: set[str] = set()

    def fail_run(rid: str, err: BaseException) -> None:
        run = runs[rid]
        if run.state in ("done", "failed"):
            return
        run.state, run.error = "failed", err
        bar.update(1)
        if log:
            log(f"FAILED {rid} ({_describe(run.config, fields)}): {type(err).__name__}: {err}")

    # Long chains first (a comparison over five generations before a weight grid's students), then grid order.
    by_priority = sorted(nodes.values(), key=lambda n: -n.generations_after)

    def ready_tasks() -> list[tuple]:
        """The tasks that can start, most urgent first, as many as there are free slots: ``(kind, name, fn, args)``."""
        tasks, room = [], slots.capacity()
        for node in by_priority:
            if len(tasks) >= room:
                return tasks
            if node.key not in needed or node.state not in ("todo", "busy") or time.monotonic() < node.retry_at:
                continue
            if node.parent is not None and nodes[node.parent].state != "done":
                continue
            if node.state == "busy" and _held_elsewhere(node, claim_timeout):
                # Still claimed by a live process: look again later, here, without starting a task (a task
                # costs a worker, the run's checkpoints read back, and the teacher rebuilt, every poll).
                node.retry_at = time.monotonic() + poll
                continue
            node.state = "running"
            tagged = _Tagged(f"{node.config.run_id() if cache_dir is None else node.key} g{node.generation}", log)
            if log and node.key not in said_busy:
                tagged(f"generation {node.generation} of {_describe_node(node, runs, fields)}: training")
            tasks.append(("gen", node.key, _generation_task, (node.config, node.run_dir, node.generation, cache_dir,
                                                               claim_timeout, tagged if log else None)))
        for rid, run in runs.items():
            if len(tasks) >= room:
                return tasks
            if run.state == "todo" and all(nodes[k].state == "done" for k in run.keys):
                run.state = "running"
                tasks.append(("run", rid, _finish_task, (run.config, run.run_dir, cache_dir, claim_timeout)))
        return tasks

    def on_pool(task) -> None:
        kind, name, fn, args = task
        in_flight[slots.pool.submit(fn, *args)] = (kind, name)

    def here(task) -> None:
        kind, name, fn, args = task
        future = cf.Future()
        _run_into(future, fn, args)
        handle(future, kind, name)

    def handle(future: cf.Future, kind: str, name: str) -> None:
        try:
            result = future.result()
        except BrokenProcessPool:
            raise
        except Exception as err:       # noqa: BLE001 - a failed generation fails its runs, the others go on
            if kind == "run":
                fail_run(name, err)
            else:
                nodes[name].state = "failed"
                for rid in nodes[name].run_ids:
                    fail_run(rid, err)
            return
        if kind == "run":
            runs[name].record, runs[name].state = result, "done"
            bar.update(1)
            if log:
                log(describe_run("finished", result))
            return
        node = nodes[name]
        if result["busy"] is None:
            node.state = "done"
            if not node.finished():    # cannot happen unless the folder is changed under us; never loop on it
                node.state = "failed"
                for rid in node.run_ids:
                    fail_run(rid, RuntimeError(f"generation {node.generation} was trained but its checkpoint "
                                               f"{checkpoint_path(node.folder, node.generation)} is missing"))
        else:
            node.state, node.retry_at = "busy", time.monotonic() + poll
            if result.get("note") and name not in said_busy:     # said once, even without a log (--quiet)
                (log or _stderr)(f"generation {node.generation} of {_describe_node(node, runs, fields)}: "
                                 f"{result['note']}")
            elif log and name not in said_busy:
                log(f"generation {node.generation} of {_describe_node(node, runs, fields)} is being trained by "
                    f"{result['busy']}; doing other work meanwhile")
            said_busy.add(name)

    try:
        with torch_threads(threads_per_job):
            while True:
                for node in nodes.values():     # claimed elsewhere: finished there meanwhile?
                    if node.state == "busy" and node.finished():
                        node.state = "done"
                started = ready_tasks()
                slots.run(started, on_pool, here)
                if not in_flight:
                    if started:                 # one ran here: what it finished may have made others ready
                        continue
                    waiting = [n for n in nodes.values() if n.state == "busy" and n.key in needed]
                    if not waiting:
                        break
                    time.sleep(max(0.0, min(n.retry_at for n in waiting) - time.monotonic()))
                    continue
                done, _ = cf.wait(list(in_flight), timeout=poll, return_when=cf.FIRST_COMPLETED)
                crashed = []
                for future in done:
                    kind, name = in_flight.pop(future)
                    slots.done_on_pool()
                    try:
                        handle(future, kind, name)
                    except BrokenProcessPool:
                        crashed.append((kind, name))
                if crashed:
                    # Every task on the pool is lost with it: they go back to the queue.
                    crashed += list(in_flight.values())
                    in_flight.clear()
                    slots.restart_pool()
                    _retry_after_crash(crashed, nodes, runs, max_retries, fail_run, log)
    except BaseException:
        slots.stop(in_flight)
        raise
    finally:
        bar.close()
        _SPLITS.clear()                 # the driver's own copy: not kept after the sweep
        if lease is not None:
            lease.release()
    slots.close()

    for rid, run in runs.items():      # runs that waited on a generation that failed
        if run.state == "todo":
            fail_run(rid, RuntimeError("a generation it needs failed"))
    failures = {rid: r.error for rid, r in runs.items() if r.state == "failed"}
    if failures:
        first_id, first = next(iter(failures.items()))
        raise RuntimeError(f"{len(failures)} of {len(runs)} run(s) failed ({sorted(failures)}); the finished ones are "
                           f"saved, and running the same command again retries the rest. First failure, run {first_id} "
                           f"({_describe(runs[first_id].config, fields)}): {type(first).__name__}: {first}")
    return [runs[c.run_id()].record for c, _ in items]


class _DriverLease:
    """This driver's entry in ``folder/.drivers/`` (``<host>-<pid>.json``), and how many drivers of this
    machine (its host and pid namespace) are alive there, itself included. Entries of dead processes are
    removed on sight; an entry is never executed or unpickled, only its name and JSON fields are read."""

    #: Seconds a driver that counted itself alone waits before counting again. Two sweeps started together
    #: register a fraction of a second apart (their imports take about as long, not exactly as long); without
    #: the second count the first would start all its workers, whose start-up (imports and data, ~3 s of CPU
    #: each) is most of what two small concurrent sweeps cost beyond one (bench/bench_concurrent_sweeps.py).
    #: A sweep alone pays this once, in wall time only.
    SETTLE_S = 0.4

    def __init__(self, folder, settle: float | None = None):
        import socket

        from deepdistill.engine.claims import _pid_namespace
        from deepdistill.core.io import atomic_write_json

        self.dir = Path(folder) / ".drivers"
        self.host, self.ns = socket.gethostname(), _pid_namespace()
        self.path = self.dir / f"{self.host}-{os.getpid()}.json"
        self.counted_at = time.monotonic()
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            # Registering and counting under one lock: of two sweeps started at the same instant, exactly one
            # counts the other (without it both could count only themselves, and both start every worker).
            with self._lock():
                atomic_write_json(self.path, {"host": self.host, "pid": os.getpid(), "pid_namespace": self.ns,
                                              "started": time.time()})
                self.drivers = self.count()
            settle = self.SETTLE_S if settle is None else settle
            if self.drivers == 1 and settle > 0:
                time.sleep(settle)
                with self._lock():
                    self.drivers = self.count()
            self.counted_at = time.monotonic()
        except OSError:                  # a read-only or odd folder: no sharing, as before
            self.drivers, self.path = 1, None

    @contextlib.contextmanager
    def _lock(self):
        """An exclusive ``flock`` on the ``.drivers`` folder itself (no file of its own to leave behind; where
        ``fcntl`` exists, elsewhere no lock)."""
        try:
            import fcntl
        except ImportError:                                    # not POSIX: counted without the lock
            yield
            return
        fd = os.open(self.dir, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0))
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)                                       # closing releases the lock

    def share(self, asked: int, every: float = 1.0) -> int:
        """The workers this driver may keep busy now: ``asked // live drivers`` (at least 1), the drivers
        counted again at most every ``every`` seconds. A sweep that started alone and is joined later gives
        the newcomer its share of the cores by keeping fewer of its own workers busy."""
        if self.path is not None and time.monotonic() - self.counted_at >= every:
            self.drivers, self.counted_at = self.count(), time.monotonic()
        return max(1, asked // self.drivers)

    def count(self) -> int:
        """Live drivers of this machine registered here, this one included (dead entries removed)."""
        import json

        from deepdistill.engine.claims import _pid_alive

        if self.path is None:
            return 1
        count = 0
        for entry in self.dir.glob("*.json"):
            try:
                with open(entry, "rb") as f:
                    info = json.loads(f.read(4096))       # an entry is ~100 bytes; a planted file is never read whole
            except (OSError, ValueError, RecursionError):      # RecursionError: a planted "[[[[..."
                continue
            if not isinstance(info, dict) or info.get("host") != self.host or info.get("pid_namespace") != self.ns:
                continue                 # another machine's cores are its own
            pid = info.get("pid")
            if isinstance(pid, int) and not isinstance(pid, bool) and (pid == os.getpid() or _pid_alive(pid)):
                count += 1
            else:
                with contextlib.suppress(OSError):
                    entry.unlink()
        return max(1, count)

    def release(self) -> None:
        if self.path is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()
            self.path = None


def _held_elsewhere(node: _Node, claim_timeout: float) -> bool:
    """Whether another live process holds the claim on ``node``'s generation (read from its claim file only)."""
    from deepdistill.engine.claims import read_holder          # (here: this diff stays local to the function)
    from deepdistill.engine.runs import claim_path

    holder = read_holder(claim_path(node.folder, node.generation))
    return holder is not None and not holder.is_stale(claim_timeout)


def _retry_after_crash(tasks, nodes, runs, max_retries, fail_run, log) -> None:
    """A worker process died: every task that was in flight goes back to the queue (resuming from its epoch
    checkpoint), at most ``max_retries`` times each."""
    for kind, name in dict.fromkeys(tasks):
        if kind == "run":
            runs[name].state = "todo"
            continue
        node = nodes[name]
        node.attempts += 1
        if node.attempts > max_retries:
            node.state = "failed"
            for rid in node.run_ids:
                fail_run(rid, RuntimeError(f"the worker process training generation {node.generation} died "
                                           f"{node.attempts} time(s) (killed, or out of memory)"))
        else:
            node.state = "todo"
            if log:
                log(f"a worker process died; generation {node.generation} of run {node.config.run_id()} is started "
                    "again from its last epoch checkpoint")
