"""Tab 2 of ``allele top``: a sparkline per live series, a page at a time.

A quick run has a hundred series and more (every component's CPU and memory, each cell's
samples), so the tab shows them a page of :data:`PAGE` at a time, says which ones of how many,
and ``n`` / ``p`` turn the page. Each series keeps its place: they are ordered by name (the
component series, then the samples of the cells by run and cell), not by which was updated
last, so a sparkline does not jump to another line between two refreshes. A series that holds
one value throughout is drawn by Textual as a flat line at the bottom, which reads as zero: its
label says ``const`` and the value.
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Label, Sparkline, Static

from allele.bench.livestate import SAMPLE_PREFIX
from allele.dashboard.tui.tables import short

PAGE = 24
"""Sparklines on one page."""
POINTS = 120
"""The newest points a sparkline draws."""


def name(metric: str) -> str:
    """A metric as its sparkline names it (Allele's own without their ``allele_`` prefix)."""
    return metric.removeprefix("allele_")


def ordered(series: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The series with points, each in a place that does not depend on when it was updated:
    component series by the name shown, component and labels, then sample series by run
    (their labels), cell (their component) and metric."""
    shown = [s for s in series if s["v"]]
    components = sorted((s for s in shown if not s["metric"].startswith(SAMPLE_PREFIX)),
                        key=lambda s: (name(s["metric"]), s["component"], s["labels"]))
    samples = sorted((s for s in shown if s["metric"].startswith(SAMPLE_PREFIX)),
                     key=lambda s: (s["labels"], s["component"], s["metric"]))
    return components + samples


def points(s: dict[str, Any]) -> list[float]:
    return [float(v) for v in s["v"] if v is not None][-POINTS:]


def label(s: dict[str, Any], values: list[float]) -> str:
    """What the series is and its newest value (``const`` when every point drawn is that)."""
    last = values[-1] if values else float("nan")
    value = (f"const {last:.4g}" if len(values) > 1 and min(values) == max(values)
             else f"last {last:.4g}")
    return (f"{name(s['metric'])}  {short(s['component'], 40)} "
            f"{s['labels']}  {value}")


class SparkPages(VerticalScroll):
    """The sparklines of one page (the container scrolls when the page is taller than the
    terminal), under a line saying which series of how many they are."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.page = 0
        self.series: list[dict[str, Any]] = []
        self.slots: list[tuple[Label, Sparkline]] = []
        self.empty = "no live series yet"

    def compose(self) -> ComposeResult:
        yield Static(self.empty, id="spark-status")

    def show(self, series: list[dict[str, Any]]) -> None:
        """Draw the current page of ``series`` (a :meth:`LiveState.snapshot`'s)."""
        self.series = ordered(series)
        self._draw()

    def unavailable(self, why: str) -> None:
        """No series can come (an older store): say why instead of waiting for them."""
        self.empty = why
        self._draw()

    def turn(self, delta: int) -> None:
        """Go ``delta`` pages on (back, when negative), staying within the pages there are."""
        page = min(max(self.page + delta, 0), self.pages() - 1)
        if page != self.page:
            self.page = page
            self._draw()
            self.scroll_home(animate=False)

    def pages(self) -> int:
        return max(1, -(-len(self.series) // PAGE))

    def _draw(self) -> None:
        self.page = min(self.page, self.pages() - 1)
        first = self.page * PAGE
        shown = self.series[first:first + PAGE]
        status = self.query_one("#spark-status", Static)
        if not shown:
            status.update(self.empty)
        else:
            n_samples = sum(s["metric"].startswith(SAMPLE_PREFIX) for s in self.series)
            turn = "; n: next page, p: previous page" if self.pages() > 1 else ""
            status.update(f"series {first + 1}-{first + len(shown)} of {len(self.series)} "
                          f"({len(self.series) - n_samples} component, {n_samples} sample; "
                          f"page {self.page + 1}/{self.pages()}{turn})")
        for i, s in enumerate(shown):
            values = points(s)
            if i == len(self.slots):
                slot = (Label(label(s, values), id=f"spark-label-{i}", classes="spark-label"),
                        Sparkline(values, id=f"spark-{i}"))
                self.mount(*slot)
                self.slots.append(slot)
            else:
                text, line = self.slots[i]
                text.update(label(s, values))
                line.data = values
            for widget in self.slots[i]:
                widget.display = True
        for text, line in self.slots[len(shown):]:
            text.display = line.display = False
