"""What every executor shares: the :class:`Executor` interface, the result of a cell that never
reported one, and the kill grace (see :mod:`allele.bench.executors`)."""

from __future__ import annotations

import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from types import TracebackType
from typing import Self

from allele.bench.live import LiveBatch
from allele.bench.task import CellTask
from allele.store.model import CellResult, CellStatus

StartHook = Callable[[CellTask], None]
KILL_GRACE_S = 2.0
"""How long past a cell's timeout a process worker gets before it is killed."""


def failed_result(task: CellTask, status: CellStatus, error: str, started: float) -> CellResult:
    """The result of a cell that did not report one itself (crashed, timed out, lost)."""
    return CellResult(key=task.key, target=task.target, params=dict(task.params), status=status,
                      samples=[], error=error, started_at=started, finished_at=time.time(),
                      round=task.round)


class Executor(ABC):
    """Runs cell tasks and yields their results as they finish."""

    name: str = "executor"
    on_live: Callable[[LiveBatch], None] | None = None
    """Receives the batches of live telemetry that running cells forward (set by the runner)."""

    def worker_pids(self) -> list[int]:
        """Process ids of the workers running cells on this machine (for resource sampling)."""
        return []

    @property
    @abstractmethod
    def capacity(self) -> int:
        """How many cells can run at the same time."""

    @abstractmethod
    def run(self, tasks: Sequence[CellTask], on_start: StartHook | None = None
            ) -> Iterator[CellResult]:
        """Run every task; yield each result as soon as it is known."""

    def close(self, *, kill: bool = False) -> None:  # noqa: B027 - default: nothing to release
        """Release workers (``kill=True``: do not wait for running cells)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close(kill=exc is not None)



def extend_sys_path(paths: Sequence[str]) -> None:
    for p in paths:
        if p not in sys.path:
            sys.path.append(p)
