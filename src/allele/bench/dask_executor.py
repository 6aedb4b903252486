"""Cells on a Dask distributed cluster: :class:`DaskExecutor` (see
:mod:`allele.bench.executors`)."""

from __future__ import annotations

import contextlib
import itertools
import sys
import time
import uuid
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
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


def _dask_cells(tasks: list[CellTask], sys_path: list[str]) -> list[CellResult]:
    """What a Dask worker runs for one batch of cells (one after the other).

    A worker thread cannot be interrupted, so a cell that returned after its timeout is
    reported as ``timeout`` here (its samples kept), as the process pool would have stopped it.
    """
    extend_sys_path(sys_path)
    out = []
    for task in tasks:
        r = run_cell(task, enforce_timeout=True)
        took = r.finished_at - r.started_at
        if r.status == "ok" and took > task.timeout_s:
            r = replace(r, status="timeout",
                        error=f"timeout: the cell ran longer than {task.timeout_s:g} s "
                              f"(it returned after {took:.3g} s on the Dask worker)")
        out.append(r)
    return out


_DONE = frozenset({"finished", "error", "cancelled"})


@dataclass(slots=True)
class _Flight:
    """One submitted batch: its cells, its deadline (None until it may be running) and when it
    was submitted."""

    tasks: list[CellTask]
    deadline: float | None
    started: float


class DaskExecutor(Executor):
    """Cells on a Dask distributed cluster.

    ``address=None`` starts a LocalCluster (``workers`` processes of one thread each; with
    ``processes=False`` threads in this process) and the scheduler gives up on a cell whose
    worker died at once (``allowed-failures: 0``), so a crash is reported as ``crashed``. On an
    existing cluster the scheduler's own ``allowed-failures`` applies (a crashing cell is retried
    that many times on other workers first). A cell over its timeout is cancelled and reported as
    ``timeout``; on a cluster this executor started, its worker is restarted, elsewhere the
    thread may keep running until the target returns.

    Opt-in for cheap cells (``executor.max_batch = 32; executor.prefetch = 2.0``): one Dask
    task runs up to :attr:`max_batch` cells, sized from the cells seen so far so that a batch
    lasts about :attr:`batch_target_s` (the first cells go one by one), and :attr:`prefetch` x
    the cluster's threads tasks stay submitted. A Dask task costs the scheduler, the client and
    the worker a few milliseconds of CPU whatever it runs, so this is what keeps thousands of
    millisecond cells from being mostly overhead (``benchmarks/scale_matrix.py``). Reports stay
    per cell: a batch that fails as a whole (its worker died) or outlives its deadline (the
    longest timeout of its cells, from when it may run) is not reported; its cells are sent
    again one by one, and a cell whose worker died under it runs by itself the second time, so
    the cell that crashed is the one reported as ``crashed``. Known gap, why it is not the
    default: on a loaded machine, a cell that hangs inside a batch gets its worker restarted and
    a cell queued behind it can be reported as ``timeout`` while the worker comes back
    (``tests/bench/test_executors.py`` covers the crash, not yet the hang).
    """

    name = "dask"
    prefetch = 1.0
    """Tasks kept submitted per cluster thread (see :meth:`run`)."""
    max_batch = 1
    """Most cells per Dask task (1: no batching)."""
    batch_target_s = 0.05

    def __init__(self, address: str | None = None, workers: int | None = None, *,
                 processes: bool = True, connect_timeout_s: float = 10.0) -> None:
        try:
            import dask
            from distributed import Client, LocalCluster
        except ImportError:
            raise ConfigError("the Dask executor needs dask[distributed]: "
                              "pip install 'allele[dask]'") from None
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
        self._died_once: set[str] = set()

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

    def run(self, tasks: Sequence[CellTask], on_start: StartHook | None = None
            ) -> Iterator[CellResult]:
        """Keep ``prefetch`` x the cluster's threads tasks submitted, so a worker finds its next
        cells queued instead of idling through the round trip to this process and the store
        commit. A task's timeout clock starts when it is among the oldest ``threads`` tasks in
        flight (Dask runs them first come, first served), not when it was queued.
        """
        from distributed import wait as dask_wait

        pending = deque(tasks)
        alone: deque[CellTask] = deque()  # cells of a failed batch, sent again one by one
        inflight: dict[Any, _Flight] = {}  # in submission order
        paths = list(sys.path)
        cap = self.capacity  # one scheduler round trip, not one per cell
        depth = max(cap, int(cap * self.prefetch))
        while pending or alone or inflight:
            while (pending or alone) and len(inflight) < depth:
                if alone and alone[0].key in self._died_once and inflight:
                    break  # its worker died under it once: next time it runs by itself
                if alone:
                    batch = [alone.popleft()]
                else:
                    k = self._batch_size(len(pending), depth)
                    batch = [pending.popleft() for _ in range(min(k, len(pending)))]
                    if on_start is not None:
                        for task in batch:
                            on_start(task)
                fut = self._client.submit(_dask_cells, batch, paths, pure=False,
                                          key=f"allele-cells-{uuid.uuid4().hex}")
                self.tasks_submitted += 1
                self.largest_batch = max(self.largest_batch, len(batch))
                inflight[fut] = _Flight(batch, None, time.time())
            now = time.monotonic()
            for fut in itertools.islice(inflight, cap):
                f = inflight[fut]
                if f.deadline is None:
                    f.deadline = now + max(t.timeout_s for t in f.tasks) + KILL_GRACE_S
            nearest = min(f.deadline for f in inflight.values() if f.deadline is not None)
            with contextlib.suppress(TimeoutError):
                dask_wait(list(inflight),  # type: ignore[no-untyped-call]
                          timeout=min(max(0.05, nearest - now), 1.0),
                          return_when="FIRST_COMPLETED")
            for fut in list(inflight):
                f = inflight[fut]
                if fut.status in _DONE:  # "lost" (its worker died): the scheduler retries
                    del inflight[fut]
                    results = self._results(fut, f)
                    if results is None:
                        alone.extend(f.tasks)
                        continue
                    self._learn(results)
                    yield from results
                elif f.deadline is not None and time.monotonic() >= f.deadline:
                    del inflight[fut]
                    self._abandon(fut)
                    for g in inflight.values():  # a restarted worker: their clocks start again
                        g.deadline = None
                    if len(f.tasks) > 1:
                        alone.extend(f.tasks)
                        continue
                    task = f.tasks[0]
                    yield failed_result(task, "timeout",
                                   f"timeout: the cell ran longer than {task.timeout_s:g} s "
                                   "(cancelled on the Dask cluster)", f.started)

    def _results(self, fut: Any, f: _Flight) -> list[CellResult] | None:
        """The batch's results, a failure for its single cell, or None: send its cells again
        one by one."""
        try:
            result = fut.result()
        except Exception as exc:
            if len(f.tasks) > 1:
                return None  # its cells go again one by one
            kind = type(exc).__name__
            task = f.tasks[0]
            if kind == "KilledWorker":
                # a worker's death fails every task it held, the queued ones too: a cell is
                # reported as crashed when its worker died under it twice
                if task.key not in self._died_once:
                    self._died_once.add(task.key)
                    return None
                return [failed_result(task, "crashed",
                                      "crashed: the Dask worker running the cell died",
                                      f.started)]
            return [failed_result(task, "failed", f"dask: {kind}: {exc}"[:500], f.started)]
        if not (isinstance(result, list) and len(result) == len(f.tasks)
                and all(isinstance(r, CellResult) for r in result)):
            if len(f.tasks) > 1:
                return None
            return [failed_result(f.tasks[0], "failed", f"dask returned {type(result).__name__}",
                             f.started)]
        return result

    def _abandon(self, fut: Any) -> None:
        worker = None
        if self._cluster is not None and self._processes:
            for addr, keys in self._client.processing().items():
                if fut.key in keys:
                    worker = addr
        fut.cancel()
        if worker is not None:
            # best effort: the cell is already reported as a timeout
            with contextlib.suppress(Exception):
                self._client.restart_workers([worker], timeout=30, raise_for_error=False)

    def close(self, *, kill: bool = False) -> None:
        try:
            self._client.close()
        finally:
            if self._cluster is not None:
                self._cluster.close()
                self._cluster = None
