"""Cells on a Dask distributed cluster: :class:`DaskExecutor` (see
:mod:`allele.bench.executors`)."""

from __future__ import annotations

import contextlib
import itertools
import re
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from allele.bench.executor_base import (
    KILL_GRACE_S,
    Executor,
    StartHook,
    extend_sys_path,
    failed_result,
)
from allele.bench.profiler import run_cell
from allele.bench.task import CellTask
from allele.errors import BenchmarkError, ConfigError
from allele.machine import usable_cpus
from allele.store.model import CellResult

_TOPIC = "allele-cell-running"
"""The Dask event topic on which workers report a cell that has been running a while."""
_REPORT_AFTER_S = 0.2
"""How long a cell runs on a Dask worker before the worker reports it (shorter cells never are)."""
_WATCH_S = 0.05
"""How often a worker process's watcher looks at its running cells."""

# what each task thread of this worker process is running: thread id -> (worker, the task's
# token, the cell's index in the task, when it started)
_RUNNING: dict[int, tuple[Any, str, int, float]] = {}
_watcher: threading.Thread | None = None
_watcher_lock = threading.Lock()


def _watch() -> None:
    """Report each cell that has run :data:`_REPORT_AFTER_S` on this worker process, once, on
    :data:`_TOPIC` as ``[token, index, worker address, seconds it has run]``: the client starts
    the cell's timeout clock from it. A thread of its own, so a cell that hangs in Python code
    (a sleep, a loop) is reported all the same; cells shorter than that cost nothing."""
    reported: set[tuple[str, int]] = set()
    while True:
        time.sleep(_WATCH_S)
        now = time.monotonic()
        current = list(_RUNNING.values())
        for worker, token, index, t0 in current:
            if now - t0 >= _REPORT_AFTER_S and (token, index) not in reported:
                reported.add((token, index))
                with contextlib.suppress(Exception):  # a worker shutting down
                    worker.log_event(_TOPIC, [token, index, worker.address, now - t0])
        reported.intersection_update((c[1], c[2]) for c in current)


def _this_worker() -> Any:
    """The Dask worker running the calling task (started the watcher), or None."""
    global _watcher
    from distributed import get_worker

    try:
        worker = get_worker()
    except ValueError:
        return None
    with _watcher_lock:
        if _watcher is None or not _watcher.is_alive():
            _watcher = threading.Thread(target=_watch, name="allele-cell-watch", daemon=True)
            _watcher.start()
    return worker


def _dask_cells(tasks: list[CellTask], sys_path: list[str], token: str = ""
                ) -> list[CellResult]:
    """What a Dask worker runs for one task: a batch of cells, one after the other.

    A worker thread cannot be interrupted, so a cell that returned after its timeout is
    reported as ``timeout`` here (its samples kept), as the process pool would have stopped it.
    A cell that runs long is reported by the watcher (:func:`_watch`) under ``token``.
    """
    extend_sys_path(sys_path)
    worker = _this_worker() if token else None
    me = threading.get_ident()
    out = []
    try:
        for index, task in enumerate(tasks):
            if worker is not None:
                _RUNNING[me] = (worker, token, index, time.monotonic())
            r = run_cell(task, enforce_timeout=True)
            took = r.finished_at - r.started_at
            if r.status == "ok" and took > task.timeout_s:
                r = replace(r, status="timeout",
                            error=f"timeout: the cell ran longer than {task.timeout_s:g} s "
                                  f"(it returned after {took:.3g} s on the Dask worker)")
            out.append(r)
    finally:
        _RUNNING.pop(me, None)
    return out


_DONE = frozenset({"finished", "error", "cancelled"})
_GATHER_S = 2.0
"""How long the loop waits for a done task's result. A task whose worker was killed after it
finished is computed again (its result lived on that worker) and stays "finished" meanwhile: a
long wait here (it was 30 s) stalled every other task's clock; a short one checks back on the
next pass."""


@dataclass(slots=True)
class _Flight:
    """One submitted Dask task: its cells, its token, when it was submitted (wall clock),
    whether it runs alone on the cluster and, while none of its cells was reported running, the
    fallback deadline (monotonic)."""

    tasks: list[CellTask]
    token: str
    submitted: float
    exclusive: bool = False  # the only task on the cluster: nothing is sent while it runs
    fallback: float | None = None


@dataclass(slots=True)
class _Queues:
    """Cells waiting to be sent: new ones (batched), ones sent again (batched, already
    announced to ``on_start``) and ones that run by themselves."""

    pending: deque[CellTask]
    again: deque[CellTask] = field(default_factory=deque)
    alone: deque[CellTask] = field(default_factory=deque)

    def __bool__(self) -> bool:
        return bool(self.pending or self.again or self.alone)


def _last_worker(exc: BaseException) -> str | None:
    """The address of the worker a ``KilledWorker`` names (its ``last_worker``, or its
    message)."""
    address = getattr(getattr(exc, "last_worker", None), "address", None)
    if isinstance(address, str):
        return address
    found = re.search(r"attempt to run the task was (\S+?)\.?\s", str(exc) + " ")
    return found.group(1) if found else None


class DaskExecutor(Executor):
    """Cells on a Dask distributed cluster.

    ``address=None`` starts a LocalCluster (``workers`` processes of one thread each; with
    ``processes=False`` threads in this process) and the scheduler gives up on a cell whose
    worker died at once (``allowed-failures: 0``), so a crash is reported as ``crashed``. On an
    existing cluster the scheduler's own ``allowed-failures`` applies (a crashing cell is retried
    that many times on other workers first). A cell over its timeout is cancelled and reported as
    ``timeout``; on a cluster of processes this executor started, its worker is restarted,
    elsewhere the thread may keep running until the target returns.

    Cheap cells travel in batches: one Dask task runs up to :attr:`max_batch` cells, sized from
    the cells seen so far so that a batch lasts about :attr:`batch_target_s` (the first cells go
    one by one), and :attr:`prefetch` x the cluster's threads tasks stay submitted. A Dask task
    costs the scheduler, the client and the worker a few milliseconds of CPU whatever it runs, so
    this is what keeps thousands of millisecond cells from being mostly overhead
    (``benchmarks/scale_matrix.py``). ``max_batch=1, prefetch=1.0`` turns it off: one cell per
    task, one task per thread.

    Reports stay per cell. A cell's timeout clock starts when its worker reports it running
    (a watcher thread in each worker process reports every cell that has run 0.2 s, through a
    Dask event), never while it waits in a queue or behind a worker's restart. A batch whose
    running cell outlives its timeout (plus a grace) is given up: that cell runs again by
    itself, where its timeout is reported, and the batch's other cells are sent again in
    batches. A batch that fails as a whole (its worker died) is not reported; its cells are sent
    again one by one, and a cell whose worker died under it runs by itself the second time, so
    the cell that crashed is the one reported as ``crashed``.
    """

    name = "dask"

    def __init__(self, address: str | None = None, workers: int | None = None, *,
                 processes: bool = True, connect_timeout_s: float = 10.0,
                 max_batch: int = 32, prefetch: float = 2.0,
                 batch_target_s: float = 0.2) -> None:
        try:
            import dask
            from distributed import Client, LocalCluster
        except ImportError:
            raise ConfigError("the Dask executor needs dask[distributed]: "
                              "pip install 'allele[dask]'") from None
        self.max_batch = max_batch
        """Most cells per Dask task (1: no batching)."""
        self.prefetch = prefetch
        """Tasks kept submitted per cluster thread (see :meth:`run`)."""
        self.batch_target_s = batch_target_s
        """How long a batch of cells should last on its worker."""
        self.start_slack_s = 30.0
        """On a cluster of processes this executor started, how much longer than its longest
        timeout (plus the grace) a task may be among the oldest in flight with none of its cells
        reported running before it is given up: its worker may be frozen (a C call holding the
        GIL stops the watcher too)."""
        self._cluster: Any = None
        self.address = address
        try:
            if address is None:
                with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
                    self._cluster = LocalCluster(  # type: ignore[no-untyped-call]
                        n_workers=workers or usable_cpus(), threads_per_worker=1,
                        processes=processes, dashboard_address=":0", silence_logs=40)
                self._client: Any = Client(self._cluster)  # type: ignore[no-untyped-call]
            else:
                self._client = Client(  # type: ignore[no-untyped-call]
                    address, timeout=connect_timeout_s)
        except (OSError, TimeoutError) as exc:
            if self._cluster is not None:
                self._cluster.close()
            raise BenchmarkError(f"cannot reach the Dask scheduler {address or 'local'}: "
                                 f"{exc}") from None
        self._processes = processes
        self._cell_s: float | None = None  # moving mean of a cell's duration on the workers
        self.tasks_submitted = 0
        """Dask tasks sent so far (a batch of cells is one)."""
        self.largest_batch = 0
        self.batches_given_up = 0
        """Batches given up past their running cell's deadline (their cells sent again)."""
        self._died_once: set[str] = set()
        self._silent_once: set[str] = set()  # in a task given up with no cell reported running
        self._killed: set[str] = set()  # workers this executor killed (their cells did not crash)
        self._id = uuid.uuid4().hex[:12]
        self._serial = itertools.count()
        # token -> (index of the cell reported running, its worker, when it started: monotonic)
        self._running: dict[str, tuple[int, str, float]] = {}
        self._client.subscribe_topic(_TOPIC, self._on_running)

    def _on_running(self, event: tuple[float, Any]) -> None:
        """A worker reports a cell running (called in the client's event loop thread)."""
        with contextlib.suppress(TypeError, ValueError):
            token, index, worker, ran_s = event[1]
            if str(token).startswith(self._id):  # other clients' cells share the topic
                self._running[str(token)] = (int(index), str(worker),
                                             time.monotonic() - float(ran_s))

    @property
    def capacity(self) -> int:
        threads = self._client.nthreads()
        return max(1, int(sum(threads.values())))

    def _batch_size(self, pending: int, depth: int) -> int:
        if self._cell_s is None or self.max_batch <= 1:
            return 1
        k = int(self.batch_target_s / max(self._cell_s, 1e-6))
        # never so large that the last batches leave workers idle
        return max(1, min(k, self.max_batch, -(-pending // depth)))

    def _learn(self, results: list[CellResult]) -> None:
        for r in results:
            d = max(0.0, r.finished_at - r.started_at)
            self._cell_s = d if self._cell_s is None else 0.8 * self._cell_s + 0.2 * d

    def _deadline(self, f: _Flight) -> float | None:
        seen = self._running.get(f.token)
        if seen is None:
            return f.fallback
        index, _, since = seen
        return since + f.tasks[index].timeout_s + KILL_GRACE_S

    def run(self, tasks: Sequence[CellTask], on_start: StartHook | None = None
            ) -> Iterator[CellResult]:
        """Keep ``prefetch`` x the cluster's threads tasks submitted, so a worker finds its next
        cells queued instead of idling through the round trip to this process and the store
        commit. A task's deadline is its running cell's timeout from when its worker reported
        it running (see the class)."""
        from distributed import wait as dask_wait

        queues = _Queues(deque(tasks))
        inflight: dict[Any, _Flight] = {}  # in submission order
        paths = list(sys.path)
        cap = self.capacity  # one scheduler round trip, not one per cell
        depth = max(cap, int(cap * self.prefetch))
        restarts = self._cluster is not None and self._processes
        try:
            while queues or inflight:
                self._submit(queues, inflight, depth, paths, on_start)
                now = time.monotonic()
                if restarts:  # a frozen worker reports nothing: the fallback clocks
                    for fut in itertools.islice(inflight, cap):
                        f = inflight[fut]
                        if f.fallback is None:
                            f.fallback = (now + max(t.timeout_s for t in f.tasks)
                                          + KILL_GRACE_S + self.start_slack_s)
                due = [d for d in map(self._deadline, inflight.values()) if d is not None]
                with contextlib.suppress(TimeoutError):
                    dask_wait(list(inflight),  # type: ignore[no-untyped-call]
                              timeout=min(max(0.05, min(due, default=now + 1) - now), 0.5),
                              return_when="FIRST_COMPLETED")
                for fut in list(inflight):
                    f = inflight[fut]
                    if fut.status in _DONE:  # "lost" (its worker died): the scheduler retries
                        try:
                            value, error = fut.result(timeout=_GATHER_S), None
                        except Exception as exc:
                            if isinstance(exc, TimeoutError) and fut.status != "error":
                                continue  # sent again after its worker's restart: in flight
                            value, error = None, exc
                        del inflight[fut]
                        self._running.pop(f.token, None)
                        results = self._results(f, value, error)
                        if results is None:
                            queues.alone.extend(f.tasks)
                            continue
                        self._learn(results)
                        yield from results
                    elif (d := self._deadline(f)) is not None and time.monotonic() >= d:
                        del inflight[fut]
                        yield from self._give_up(fut, f, queues, inflight)
        finally:
            self._running.clear()

    def _submit(self, queues: _Queues, inflight: dict[Any, _Flight], depth: int,
                paths: list[str], on_start: StartHook | None) -> None:
        while queues and len(inflight) < depth:
            if any(f.exclusive for f in inflight.values()):
                break
            exclusive = False
            if queues.alone:
                key = queues.alone[0].key
                # its worker died or froze under it once: next time it runs alone on the cluster
                exclusive = key in self._died_once or key in self._silent_once
                if exclusive and inflight:
                    break
                batch = [queues.alone.popleft()]
            else:
                source = queues.again or queues.pending
                k = self._batch_size(len(source), depth)
                batch = [source.popleft() for _ in range(min(k, len(source)))]
                if on_start is not None and source is queues.pending:
                    for task in batch:
                        on_start(task)
            token = f"{self._id}-{next(self._serial)}"
            fut = self._client.submit(_dask_cells, batch, paths, token, pure=False,
                                      key=f"allele-cells-{token}")
            self.tasks_submitted += 1
            self.largest_batch = max(self.largest_batch, len(batch))
            inflight[fut] = _Flight(batch, token, time.time(), exclusive)

    def _give_up(self, fut: Any, f: _Flight, queues: _Queues, inflight: dict[Any, _Flight]
                 ) -> Iterator[CellResult]:
        """A task past its deadline: cancel it (restarting its worker on a cluster of processes
        this executor started); a cell alone is a timeout; a batch's cell that ran too long runs
        again by itself, the others are sent again."""
        seen = self._running.pop(f.token, None)
        restarted = self._abandon(fut, seen[1] if seen is not None else None)
        if restarted is not None:  # what that worker reported or queued starts anew
            for token, (_, worker, _) in list(self._running.items()):
                if worker == restarted:
                    self._running.pop(token, None)
            for g in inflight.values():
                g.fallback = None
        task = f.tasks[0]
        if seen is None:
            if not f.exclusive:
                # nothing reported running: a frozen worker, or a task queued behind it; its
                # cells run alone on the cluster next, where a silent one is the culprit
                self._silent_once.update(t.key for t in f.tasks)
                queues.alone.extend(f.tasks)
                return
            how = "never reported running, alone on the Dask cluster: its worker froze; cancelled"
        elif len(f.tasks) > 1:
            self.batches_given_up += 1
            index = seen[0]
            queues.alone.append(f.tasks[index])
            queues.again.extendleft(reversed(f.tasks[:index] + f.tasks[index + 1:]))
            return
        else:
            how = "cancelled on the Dask cluster"
        yield failed_result(task, "timeout",
                            f"timeout: the cell ran longer than {task.timeout_s:g} s ({how})",
                            f.submitted)

    def _results(self, f: _Flight, result: Any, exc: Exception | None
                 ) -> list[CellResult] | None:
        """The batch's results, a failure for its single cell, or None: send its cells again
        one by one."""
        if exc is not None:
            if len(f.tasks) > 1:
                return None  # its cells go again one by one
            kind = type(exc).__name__
            task = f.tasks[0]
            if kind == "KilledWorker":
                if _last_worker(exc) in self._killed:
                    return None  # queued on a worker killed for another cell: not its crash
                # a worker's death fails every task it held, the queued ones too: a cell is
                # reported as crashed when its worker died under it twice
                if task.key not in self._died_once:
                    self._died_once.add(task.key)
                    return None
                return [failed_result(task, "crashed",
                                      "crashed: the Dask worker running the cell died",
                                      f.submitted)]
            return [failed_result(task, "failed", f"dask: {kind}: {exc}"[:500], f.submitted)]
        if not (isinstance(result, list) and len(result) == len(f.tasks)
                and all(isinstance(r, CellResult) for r in result)):
            if len(f.tasks) > 1:
                return None
            return [failed_result(f.tasks[0], "failed", f"dask returned {type(result).__name__}",
                                  f.submitted)]
        return result

    def _abandon(self, fut: Any, worker: str | None) -> str | None:
        """Cancel ``fut``; on a cluster of processes this executor started, restart the worker
        running it (found from the scheduler when no cell reported it). Returns that worker."""
        restart = self._cluster is not None and self._processes
        if restart and worker is None:
            for addr, keys in self._client.processing().items():
                if fut.key in keys:
                    worker = addr
        fut.cancel()
        if not restart or worker is None:
            return None
        # best effort: the cell is already given up
        with contextlib.suppress(Exception):
            if self._kill_own_worker(worker):
                self._killed.add(worker)
                self._await_removal(worker)
            else:
                self._client.restart_workers([worker], timeout=30, raise_for_error=False)
        return worker

    def _await_removal(self, worker: str, limit_s: float = 10.0) -> None:
        """Wait (at most ``limit_s``) until the scheduler has dropped a killed worker, so that
        the next cells are not sent to it while it is known dead to its nanny alone (a cell
        sent there fails as if it had crashed: once under CI load, an innocent cell was
        reported ``crashed`` after the frozen one's worker was killed)."""
        end = time.monotonic() + limit_s
        while (time.monotonic() < end
               and worker in self._client.scheduler_info().get("workers", {})):
            time.sleep(0.05)

    def _kill_own_worker(self, worker: str) -> bool:
        """SIGKILL the process of ``worker`` when it is a child of this process (a worker of the
        local cluster this executor started); its nanny then starts a fresh one. A polite
        restart asks the worker to close first, and a worker frozen in a C call that holds the
        GIL cannot answer: the restart then waits out its whole timeout (30 s) per frozen cell.
        The process is killed only when its pid is found among this process's descendants."""
        import os
        import signal

        import psutil

        pid = None
        for nanny in getattr(self._cluster, "workers", {}).values():
            if getattr(nanny, "worker_address", None) == worker:
                proc = getattr(getattr(nanny, "process", None), "process", None)
                pid = getattr(proc, "pid", None)
        if not isinstance(pid, int):
            return False
        ours = {c.pid for c in psutil.Process().children(recursive=True)}
        if pid not in ours:
            return False
        os.kill(pid, signal.SIGKILL)
        return True

    def close(self, *, kill: bool = False) -> None:
        try:
            with contextlib.suppress(Exception):
                self._client.unsubscribe_topic(_TOPIC)
            self._client.close()
        finally:
            if self._cluster is not None:
                self._cluster.close()
                self._cluster = None
