"""Where cells run: in the runner's process, in a local pool of worker processes, or on Dask.

Every executor takes a list of :class:`~allele.bench.task.CellTask` and yields one
:class:`~allele.store.model.CellResult` per task as soon as it is finished (in completion order),
so the runner can commit each one at once. A target's exception, a crash of the process running
it, or a timeout never stops an executor: the cell's result says ``failed``, ``crashed`` or
``timeout`` with the reason.

* :class:`InlineExecutor` calls targets in the current process, one after the other. Cheapest
  (no pickling, no process); a timeout is enforced with ``SIGALRM`` (main thread only), but a
  segfault takes the runner down with it.
* :class:`ProcessPoolExecutor` keeps ``workers`` persistent processes (``forkserver`` start
  method where available, else ``spawn``: no inherited locks or threads). One cell per task; a
  worker that dies (segfault, abort, out-of-memory kill) yields a ``crashed`` cell and is replaced;
  a cell over its ``timeout_s`` is interrupted in the worker (``SIGALRM``) and, if that does not
  work within :data:`KILL_GRACE_S`, the worker is killed and replaced. A worker runs cells of
  one target only (an idle one takes a cell of its own target when the current round has one,
  else makes way for a fresh process), so a cell's memory and time never carry what another
  target left in the process. A worker that ran a cell under ``memory_limit_mb`` is retired
  afterwards (what the limit interrupted, such as an import,
  stays half-done in that process), so later cells never inherit the damage.

  Workers never outlive the runner: each one watches a "lifeline" pipe whose other end only
  the runner holds and kills itself when it closes; on Linux the kernel also kills it when its
  parent, the forkserver, dies (``PR_SET_PDEATHSIG``), and the forkserver leaves as soon as the
  runner is gone (:mod:`allele.bench._forkserver`), so a ``kill -9`` of the runner takes the
  workers (even one stuck in C code holding the GIL), the forkserver and the resource tracker
  down within a second. Elsewhere (``spawn``) the lifeline alone does it, as soon as the
  worker's Python code gets the GIL.
* :class:`DaskExecutor` submits cells to a Dask distributed cluster: an existing scheduler
  (``dask://HOST:PORT``) or a :class:`~distributed.LocalCluster` it starts (``dask-local``).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

from allele import failpoints
from allele.bench.dask_executor import DaskExecutor
from allele.bench.executor_base import (
    KILL_GRACE_S,
    Executor,
    StartHook,
    extend_sys_path,
    failed_result,
)
from allele.bench.live import LiveBatch, worker_live
from allele.bench.profiler import describe_exit, run_cell
from allele.bench.task import CellTask, take_for_target
from allele.errors import BenchmarkError, ConfigError
from allele.machine import usable_cpus
from allele.store.model import CellResult

__all__ = ["KILL_GRACE_S", "DaskExecutor", "Executor", "InlineExecutor", "ProcessPoolExecutor",
           "StartHook", "WorkerStartError", "make_executor", "parse_executor"]


class InlineExecutor(Executor):
    """Cells run one after the other in this process (see the module docstring)."""

    name = "inline"

    @property
    def capacity(self) -> int:
        return 1

    def run(self, tasks: Sequence[CellTask], on_start: StartHook | None = None
            ) -> Iterator[CellResult]:
        for task in tasks:
            if on_start is not None:
                on_start(task)
            hook = self.on_live
            live = worker_live(task, hook, per_cell=True) if hook is not None else None
            try:
                result = run_cell(task, enforce_timeout=True,
                                  on_call=live.after_call if live is not None else None)
            finally:
                if live is not None:
                    live.close()
            yield result


# --- local process pool -------------------------------------------------------------------------


_READY = "allele-worker-ready"
MAX_START_FAILURES = 3
"""Workers dying before they ever said ready, in a row, that make the pool give up."""
STARTUP_TIMEOUT_S = 120.0
"""How long a new worker may take to import and report ready."""
REIMPORTED_MAIN_EXIT = 86
"""Exit code of a worker that was about to start a run itself while re-importing the main
module of a script without an ``if __name__ == "__main__":`` guard."""
_PR_SET_PDEATHSIG = 1


class WorkerStartError(BenchmarkError):
    """The pool's workers die before they can run a cell (nothing of the run was executed)."""


def refuse_reimport_by_worker() -> None:
    """Called where a run starts: in a worker process that is still importing the script's
    main module (a script without an ``if __name__ == "__main__":`` guard: every worker
    re-imports it), end that worker at once and quietly, before it creates a run of its own;
    the runner then reports the missing guard once (:class:`WorkerStartError`)."""
    if getattr(mp.current_process(), "_inheriting", False):
        os._exit(REIMPORTED_MAIN_EXIT)


def _die_with_parent() -> None:
    """Linux: ask the kernel to SIGKILL this process when its parent (the forkserver) dies."""
    if not sys.platform.startswith("linux"):
        return
    parent = os.getppid()
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - no prctl: the lifeline still works
        return
    if os.getppid() != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), signal.SIGKILL)


def _watch_lifeline(lifeline: Connection) -> None:
    """Block until the runner's end of the lifeline closes (the runner is gone), then die."""
    try:
        while True:
            lifeline.recv()  # the runner never writes: this returns only by EOF
    except (EOFError, OSError):
        pass
    os.kill(os.getpid(), signal.SIGKILL)


def _worker_main(conn: Connection, sys_path: list[str],
                 lifeline: Connection | None = None, forkserver: bool = False) -> None:
    """A pool worker: receive a task, run it, send the result; until None or the parent leaves."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the runner's business
    if forkserver:
        _die_with_parent()
    if lifeline is not None:
        threading.Thread(target=_watch_lifeline, args=(lifeline,), daemon=True,
                         name="allele-worker-lifeline").start()
    extend_sys_path(sys_path)
    try:
        conn.send(_READY)
    except (BrokenPipeError, OSError):
        return
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        failpoints.hit("worker.task")
        live = worker_live(task, conn.send)
        result = run_cell(task, enforce_timeout=True,
                          on_call=live.after_call if live is not None else None)
        if live is not None:
            live.flush()  # the cell's last samples and events before its result
        try:
            conn.send(result)
        except (BrokenPipeError, OSError):
            return


class _Worker:
    def __init__(self, ctx: Any, sys_path: list[str]) -> None:
        parent, child = ctx.Pipe(duplex=True)
        life_r, life_w = ctx.Pipe(duplex=False)
        self.conn: Connection = parent
        self.lifeline: Connection = life_w  # never written: its close tells the worker to go
        forkserver = ctx.get_start_method() == "forkserver"
        self.process: BaseProcess = ctx.Process(
            target=_worker_main, args=(child, sys_path, life_r, forkserver), daemon=True,
            name="allele-bench-worker")
        self.process.start()
        child.close()
        life_r.close()
        self.task: CellTask | None = None
        self.target: str | None = None
        """The target this worker ran (it never runs another: see :meth:`ProcessPoolExecutor.
        _fill`)."""
        self.ready = False
        self.started = 0.0
        self.started_wall = 0.0
        self.deadline = 0.0

    def stop(self, kill: bool) -> None:
        if self.process.is_alive():
            if kill:
                self.process.kill()
            else:
                try:
                    self.conn.send(None)
                except (BrokenPipeError, OSError):
                    self.process.kill()
        self.process.join(timeout=5.0)
        if self.process.is_alive():  # pragma: no cover - a worker that ignores its stop
            self.process.kill()
            self.process.join(timeout=5.0)
        self.conn.close()
        self.lifeline.close()


def default_start_method() -> str:
    """``forkserver`` where the platform has it, else ``spawn``."""
    return "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"


class ProcessPoolExecutor(Executor):
    """A pool of persistent worker processes (see the module docstring).

    Workers start lazily on the first :meth:`run` and stay up for later runs until
    :meth:`close`. ``workers`` defaults to the number of usable cores.
    """

    name = "process"

    def __init__(self, workers: int | None = None, *, start_method: str | None = None) -> None:
        n = workers if workers is not None else usable_cpus()
        if n < 1:
            raise ConfigError(f"workers must be >= 1, got {n}")
        self.workers = n
        method = start_method or default_start_method()
        if method == "forkserver":
            mp.set_forkserver_preload(["allele.bench._forkserver", "allele.bench.profiler"])
        self._ctx = mp.get_context(method)
        self._pool: list[_Worker] = []
        self._start_failures = 0
        self._requeue: list[CellTask] = []
        self.replaced = 0
        """How many workers were replaced after a crash or a timeout kill."""
        self.retired = 0
        """How many idle workers made way for a fresh one because the next cell's target
        differed from theirs."""

    @property
    def capacity(self) -> int:
        return self.workers

    def worker_pids(self) -> list[int]:
        return [w.process.pid for w in self._pool if w.process.pid is not None]

    def _spawn(self) -> _Worker:
        return _Worker(self._ctx, list(sys.path))

    def start(self, n: int | None = None) -> None:
        """Start workers now (``n``, default all) instead of on the first run."""
        want = self.workers if n is None else min(n, self.workers)
        while len(self._pool) < want:
            self._pool.append(self._spawn())

    def _replace(self, worker: _Worker, kill: bool = True) -> _Worker:
        worker.stop(kill=kill)
        new = self._spawn()
        self._pool[self._pool.index(worker)] = new
        self.replaced += 1
        return new

    def _assign(self, worker: _Worker, task: CellTask) -> None:
        if not worker.ready:  # an idle new worker may have said ready already
            try:
                while worker.conn.poll():
                    if worker.conn.recv() == _READY:
                        worker.ready = True
                        self._start_failures = 0
            except (EOFError, OSError):
                pass  # dead: replaced just below
        for _attempt in range(2):
            if not worker.process.is_alive():
                worker = self._replace(worker)
            try:
                worker.conn.send(task)
                break
            except (BrokenPipeError, OSError):
                worker = self._replace(worker)
        else:
            raise BenchmarkError("cannot start a benchmark worker process")
        worker.task = task
        worker.started = time.monotonic()
        worker.started_wall = time.time()
        limit = task.timeout_s if worker.ready else STARTUP_TIMEOUT_S + task.timeout_s
        worker.deadline = worker.started + limit + KILL_GRACE_S

    def _fill(self, pending: deque[CellTask], on_start: StartHook | None) -> None:
        """Give every idle worker a task (replacing workers that died while idle).

        A worker runs one target only: what a target leaves in a process (a loaded model,
        allocator arenas, caches) would otherwise count in the next target's memory and time.
        An idle worker takes the first pending cell of its own target within the current round
        (so rounds still run in order), else the next cell, in a fresh process when that cell's
        target differs from the one the worker ran."""
        for worker in list(self._pool):
            if worker.task is None and pending:
                task = take_for_target(pending, worker.target)
                if not worker.process.is_alive():
                    worker = self._replace(worker)
                elif worker.target is not None and worker.target != task.target:
                    worker = self._replace(worker, kill=False)
                    self.replaced -= 1  # a change of target is no failure
                    self.retired += 1
                self._assign(worker, task)
                worker.target = task.target
                if on_start is not None:
                    on_start(task)

    def run(self, tasks: Sequence[CellTask], on_start: StartHook | None = None
            ) -> Iterator[CellResult]:
        pending = deque(tasks)
        self.start(len(pending))
        while True:
            self._fill(pending, on_start)
            busy = [w for w in self._pool if w.task is not None]
            if not busy:
                return
            now = time.monotonic()
            timeout = max(0.0, min(w.deadline for w in busy) - now)
            wait([w.conn for w in busy] + [w.process.sentinel for w in busy],
                 timeout=min(timeout, 1.0))
            done = [r for r in (self._collect(w) for w in busy) if r is not None]
            while self._requeue:
                pending.appendleft(self._requeue.pop())
            # Hand out the next cells before the caller stores these results, so workers never
            # wait for the store.
            self._fill(pending, on_start)
            yield from done

    def _collect(self, worker: _Worker) -> CellResult | None:
        task = worker.task
        assert task is not None
        broken = False
        try:
            while worker.conn.poll():
                message = worker.conn.recv()
                if message == _READY:
                    worker.ready = True
                    self._start_failures = 0
                    # the cell's clock starts when the worker can run it, not at its start-up
                    worker.started = time.monotonic()
                    worker.started_wall = time.time()
                    worker.deadline = worker.started + task.timeout_s + KILL_GRACE_S
                    continue
                if isinstance(message, LiveBatch):  # live telemetry of the running cell
                    if self.on_live is not None:
                        self.on_live(message)
                    continue
                result: CellResult = message
                worker.task = None
                if task.memory_limit_mb is not None:  # the limit may have damaged the process
                    self._replace(worker, kill=False)
                return result
        except (EOFError, OSError):
            broken = True  # the worker died; its exit code tells why
        if not broken:
            if worker.process.is_alive() and time.monotonic() < worker.deadline:
                return None
            if worker.process.is_alive() and not worker.ready:  # stuck while starting
                worker.process.kill()
            elif worker.process.is_alive():  # over the deadline and not answering
                worker.task = None
                self._replace(worker, kill=True)
                return failed_result(task, "timeout",
                                f"timeout: the cell ran longer than {task.timeout_s:g} s "
                                "(worker killed)", worker.started_wall)
        worker.process.join(timeout=5.0)  # the pipe may close a moment before the exit is seen
        reason = describe_exit(worker.process.exitcode)
        if not worker.ready and worker.process.exitcode == REIMPORTED_MAIN_EXIT:
            raise WorkerStartError(
                "the script that started this run has no `if __name__ == \"__main__\":` "
                "guard: every benchmark worker re-imports it and would start the run again; "
                "put the code that runs the benchmark under that guard")
        if not worker.ready:  # died before it could take the cell: not the cell's fault
            self._start_failures += 1
            if self._start_failures >= MAX_START_FAILURES:
                raise WorkerStartError(
                    f"benchmark worker processes die while starting ({reason}); when the "
                    "runner is used from a script, guard it with if __name__ == '__main__': "
                    "(the workers re-import the main module)")
            self._requeue.append(task)
            worker.task = None
            self._replace(worker, kill=True)
            return None
        worker.task = None
        self._replace(worker, kill=True)
        return failed_result(task, "crashed", f"crashed: {reason}", worker.started_wall)

    def close(self, *, kill: bool = False) -> None:
        for worker in self._pool:
            worker.stop(kill=kill or worker.task is not None)
        self._pool.clear()


def parse_executor(spec: str) -> tuple[str, str | None]:
    """``(kind, address)`` of an executor spec: kind is ``local``, ``inline`` or ``dask``
    (address None: start a LocalCluster). Raises ConfigError for anything else."""
    text = spec.strip()
    if text in ("local", "process", "processes"):
        return "local", None
    if text == "inline":
        return "inline", None
    if text == "dask-local":
        return "dask", None
    if text.startswith("dask://"):
        rest = text[len("dask://"):]
        if not rest:
            raise ConfigError("--executor dask://HOST:PORT: the address is missing")
        return "dask", "tcp://" + rest
    if text.startswith(("tcp://", "tls://", "inproc://")):
        return "dask", text
    raise ConfigError(f"--executor {spec!r}: allowed: local, inline, dask-local, "
                      "dask://HOST:PORT")


def make_executor(spec: str, workers: int | None = None) -> Executor:
    """``local`` (process pool), ``inline``, ``dask-local`` or ``dask://HOST:PORT`` -> executor."""
    kind, address = parse_executor(spec)
    if kind == "local":
        return ProcessPoolExecutor(workers)
    if kind == "inline":
        return InlineExecutor()
    return DaskExecutor(address, workers)
