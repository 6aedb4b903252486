"""The terminal's view of a running matrix: a rich progress bar fed by the runner's
:class:`allele.bench.runner.ProgressSink` calls."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from allele.bench.task import CellTask
from allele.store.model import CellResult, RunInfo


class RichProgress:
    """A rich progress bar: tasks done / total (a cell runs as one task per round or seed
    batch), failed cells, elapsed, ETA and the current cell."""

    def __init__(self, console: Any = None, *, describe: Callable[[CellTask], str] | None = None
                 ) -> None:
        from rich.console import Console

        self.console = console if console is not None else Console(stderr=True, emoji=False)
        self._describe = describe or _describe
        self._progress: Any = None
        self._task: Any = None
        self._failed = 0
        self._running: dict[str, CellTask] = {}

    def start(self, run_name: str, total: int, already_done: int,
              run: RunInfo | None = None) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        # the run name and the cell description are user text: printed as is, never as markup
        self._progress = Progress(
            SpinnerColumn(), TextColumn("{task.fields[run]}", style="bold", markup=False),
            BarColumn(), MofNCompleteColumn(), TextColumn("tasks,"),  # a cell may be several tasks
            TextColumn("{task.fields[failed]} failed"),
            TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
            TextColumn("{task.description}", markup=False),
            console=self.console, transient=False)
        self._progress.start()
        self._task = self._progress.add_task("", total=total, completed=already_done,
                                             run=run_name, failed=0)

    def _refresh(self) -> None:
        current = next(reversed(self._running.values()), None)
        text = self._describe(current) if current is not None else ""
        self._progress.update(self._task, description=text, failed=self._failed)

    def cell_started(self, task: CellTask) -> None:
        self._running[task.key] = task
        if self._progress is not None:
            self._refresh()

    def cell_finished(self, task: CellTask | None, result: CellResult) -> None:
        self._running.pop(result.key, None)
        if result.status != "ok":
            self._failed += 1
        if self._progress is not None:
            self._progress.advance(self._task)
            self._refresh()

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


def _describe(task: CellTask) -> str:
    params = " ".join(f"{k}={v}" for k, v in task.params.items())
    text = f"{task.benchmark}: {params}"
    text = text if len(text) <= 60 else text[:57] + "..."
    return f"{text} (round {task.round + 1}/{task.rounds})" if task.rounds > 1 else text
