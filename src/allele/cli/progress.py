"""The terminal's view of a running matrix: a rich progress bar fed by the runner's
:class:`allele.bench.run_protocols.ProgressSink` calls, or plain lines when the console is not a
terminal (a CI log, ``2> file``, nohup): rich draws a bar there only when it stops, which left
such a log empty for the whole run."""

from __future__ import annotations

import datetime
import math
import time
from collections.abc import Callable
from typing import Any

from allele.bench.task import CellTask
from allele.store.model import CellResult, RunInfo

PLAIN_EVERY_S = 10.0
"""Without a terminal, the longest wait for a progress line while tasks finish (a line is also
printed each time another tenth of the tasks is done)."""


class RichProgress:
    """A rich progress bar: tasks done / total (a cell runs as one task per round or seed
    batch), failed cells, elapsed, ETA and the current cell.

    On a console that is not an interactive terminal the same facts are printed as plain lines
    instead: one when the run starts (name, id, tasks), then after a task finishes when another
    tenth of the tasks is done or ``every_s`` seconds passed since the last line, and one when
    it stops if anything changed since. ``clock`` (monotonic seconds) is there for tests."""

    def __init__(self, console: Any = None, *, describe: Callable[[CellTask], str] | None = None,
                 every_s: float = PLAIN_EVERY_S, clock: Callable[[], float] = time.monotonic
                 ) -> None:
        from rich.console import Console

        self.console = console if console is not None else Console(stderr=True, emoji=False)
        self._describe = describe or _describe
        self._every_s = every_s
        self._clock = clock
        self._progress: Any = None
        self._task: Any = None
        self._failed = 0
        self._running: dict[str, CellTask] = {}
        self._plain: _PlainState | None = None

    def start(self, run_name: str, total: int, already_done: int,
              run: RunInfo | None = None) -> None:
        if not (self.console.is_interactive or self.console.is_jupyter):
            self._plain = _PlainState(run_name, total, already_done, self._clock())
            ident = f" ({run.id})" if run is not None else ""
            resumed = f", {already_done} already done" if already_done else ""
            self._say(f"run {run_name}{ident}: {total} tasks{resumed}")
            return
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
        elif self._plain is not None:
            st = self._plain
            st.done += 1
            step = max(1, math.ceil(st.total / 10))
            if (st.done // step > st.said_done // step
                    or self._clock() - st.said_at >= self._every_s):
                self._say_status()

    def stop(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        if self._plain is not None:
            if self._plain.done != self._plain.said_done or self._running:
                self._say_status()  # where it stopped, and what was still running
            self._plain = None

    def _say_status(self) -> None:
        st = self._plain
        assert st is not None
        now = self._clock()
        line = (f"{st.name}: {st.done}/{st.total} tasks, {self._failed} failed, "
                f"{_clock_text(now - st.t0)} elapsed")
        ran = st.done - st.already_done
        if ran > 0 and st.done < st.total:
            line += f", ETA {_clock_text((now - st.t0) / ran * (st.total - st.done))}"
        current = next(reversed(self._running.values()), None)
        if current is not None:
            line += f"; running {self._describe(current)}"
        st.said_done, st.said_at = st.done, now
        self._say(line)

    def _say(self, line: str) -> None:
        # user text (run name, parameters): printed as is, never as markup or emoji codes
        self.console.print(line, markup=False, highlight=False, emoji=False, soft_wrap=True)


class _PlainState:
    """Counts of a run shown as plain lines, and what the last line said."""

    def __init__(self, name: str, total: int, already_done: int, t0: float) -> None:
        self.name = name
        self.total = total
        self.already_done = already_done
        self.done = already_done
        self.t0 = t0
        self.said_done = already_done
        self.said_at = t0


def _clock_text(seconds: float) -> str:
    """``0:01:05``, as rich's elapsed column writes it."""
    return str(datetime.timedelta(seconds=max(0, int(seconds))))


def _describe(task: CellTask) -> str:
    params = " ".join(f"{k}={v}" for k, v in task.params.items())
    text = f"{task.benchmark}: {params}"
    text = text if len(text) <= 60 else text[:57] + "..."
    return f"{text} (round {task.round + 1}/{task.rounds})" if task.rounds > 1 else text
