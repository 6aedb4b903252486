"""What the runner reports while it runs (progress, live telemetry, committed cells) and how a
run ended: the protocols its sinks implement and :class:`RunSummary`
(:mod:`allele.bench.runner` drives them)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from allele.store.model import CellResult, RunInfo, RunStatus

if TYPE_CHECKING:
    from allele.bench.live import LiveBatch
    from allele.bench.task import CellTask


class ProgressSink(Protocol):
    """What the runner reports while it runs (the CLI shows it with :class:`RichProgress`).

    ``start`` also receives ``run``, the run's header as the runner created it (or read it to
    resume it), so that a sink mirroring the run elsewhere (MLflow) does not read it back from
    the store."""

    def start(self, run_name: str, total: int, already_done: int,
              run: RunInfo | None = None) -> None: ...

    def cell_started(self, task: CellTask) -> None: ...

    def cell_finished(self, task: CellTask | None, result: CellResult) -> None: ...

    def stop(self) -> None: ...


class RunEvents(Protocol):
    """Live telemetry of a run (:class:`allele.bench.live.RunLive` implements it): the run and
    cell lifecycle, and the batches the executor's workers forward (``live``)."""

    def attach(self, pids: Callable[[], list[int]]) -> None: ...

    def run_started(self, info: RunInfo, cells: int, tasks: int, skipped: int,
                    skipped_tasks: int = 0) -> None: ...

    def cell_started(self, task: CellTask) -> None: ...

    def live(self, batch: LiveBatch) -> None: ...

    def cell_finished(self, task: CellTask | None, result: CellResult) -> None: ...

    def cell_stored(self, result: CellResult, again: bool = False) -> None: ...

    def run_finished(self, summary: RunSummary) -> None: ...

class StoredCellSink(Protocol):
    """A progress sink that also wants each cell once it is committed to the store (optional:
    the runner calls ``cell_stored`` when the sink has it). A cell of several rounds arrives
    here once, merged, after ``cell_finished`` was called for each of its rounds."""

    def cell_stored(self, result: CellResult) -> None: ...


@dataclass
class RunSummary:
    """How a run (or a resumed part of it) ended."""

    run_id: str
    name: str
    status: RunStatus
    planned: int
    """Cells in the run's plan."""
    executed: int = 0
    """Cells finished by this invocation."""
    skipped: int = 0
    """Cells already in the store (resume)."""
    counted_only: int = 0
    """Cells of ``executed`` whose stored timings were kept and only their instruction counts
    ran (a resume of a run stopped before its instruction phase)."""
    failed: int = 0
    """Cells of this invocation whose status is not ``ok``."""
    seconds: float = 0.0
    failures: list[tuple[str, str, str]] = field(default_factory=list)
    """(key, status, error) of every non-ok cell of this invocation."""
