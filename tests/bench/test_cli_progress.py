"""The progress of ``allele bench run`` (and ``ab``, ``calibrate``) when stderr is not a
terminal: plain lines while the run goes, not one bar frame at its end."""

from __future__ import annotations

import io
import time

from rich.console import Console

from allele.bench.task import CellTask
from allele.cli.progress import RichProgress
from allele.store.model import CellResult, RunInfo


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _task(i: int) -> CellTask:
    return CellTask(key=f"k{i}", benchmark="spinner", target="allele.bench.targets:spin",
                    params={"ms": 1000 + i}, seeds=(0,))


def _result(i: int, status: str = "ok") -> CellResult:
    return CellResult(key=f"k{i}", target="allele.bench.targets:spin", params={},
                      status=status)  # type: ignore[arg-type]


def test_a_non_terminal_gets_a_start_line_then_a_line_per_tenth_of_the_tasks() -> None:
    buf, clock = io.StringIO(), Clock()
    progress = RichProgress(Console(file=buf, width=200, force_terminal=False), clock=clock)
    info = RunInfo(id="77e7a2a3bb0b", name="spinner-1", spec_name="spinner", target="t",
                   status="running", created_at=time.time())
    progress.start("spinner-1", 20, 0, run=info)
    assert buf.getvalue() == "run spinner-1 (77e7a2a3bb0b): 20 tasks\n"  # before any task ends
    for i in range(5):
        progress.cell_started(_task(i))
        clock.now += 1.0
        progress.cell_finished(_task(i), _result(i, "failed" if i == 2 else "ok"))
    lines = buf.getvalue().splitlines()
    # every 2 tasks (a tenth of 20), seconds apart: no line for the 1st, 3rd and 5th
    assert lines[1:] == ["spinner-1: 2/20 tasks, 0 failed, 0:00:02 elapsed, ETA 0:00:18",
                         "spinner-1: 4/20 tasks, 1 failed, 0:00:04 elapsed, ETA 0:00:16"]
    progress.cell_started(_task(5))
    progress.stop()  # interrupted: where it stopped, and the cell still running
    assert buf.getvalue().splitlines()[3] == (
        "spinner-1: 5/20 tasks, 1 failed, 0:00:05 elapsed, ETA 0:00:15; running spinner: ms=1005")
    assert "\x1b" not in buf.getvalue() and "━" not in buf.getvalue()  # no bar frame


def test_a_slow_run_gets_a_line_every_ten_seconds_and_a_resume_counts_what_was_done() -> None:
    buf, clock = io.StringIO(), Clock()
    progress = RichProgress(Console(file=buf, width=200, force_terminal=False), clock=clock)
    progress.start("big", 1000, 400)
    for i in range(3):  # 3 tasks of 100 tasks a tenth: only the 10 s interval prints
        clock.now += 6.0
        progress.cell_finished(_task(i), _result(i))
    assert buf.getvalue().splitlines() == [
        "run big: 1000 tasks, 400 already done",
        "big: 402/1000 tasks, 0 failed, 0:00:12 elapsed, ETA 0:59:48"]
    clock.now += 1.0
    progress.stop()
    assert buf.getvalue().splitlines()[-1] == (
        "big: 403/1000 tasks, 0 failed, 0:00:19 elapsed, ETA 1:03:01")


def test_a_finished_run_says_nothing_more_at_stop_and_user_text_stays_text() -> None:
    buf, clock = io.StringIO(), Clock()
    progress = RichProgress(Console(file=buf, width=200, force_terminal=False), clock=clock)
    progress.start("n [/x] :ok:", 2, 0)
    for i in range(2):
        progress.cell_finished(_task(i), _result(i))
    progress.stop()
    assert buf.getvalue().splitlines() == [
        "run n [/x] :ok:: 2 tasks",
        "n [/x] :ok:: 1/2 tasks, 0 failed, 0:00:00 elapsed, ETA 0:00:00",
        "n [/x] :ok:: 2/2 tasks, 0 failed, 0:00:00 elapsed"]


def test_a_terminal_still_gets_the_bar() -> None:
    buf = io.StringIO()
    progress = RichProgress(Console(file=buf, width=200, force_terminal=True,
                                    force_interactive=True))
    progress.start("bar", 2, 0)
    progress.cell_finished(_task(0), _result(0))
    progress.stop()
    assert "━" in buf.getvalue() and "1/2" in buf.getvalue()
    assert "run bar: 2 tasks" not in buf.getvalue()
