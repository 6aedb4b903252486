"""``allele top``: the terminal dashboard (Textual), usable over SSH.

Four tabs, switched with ``1``-``4`` (or ``tab``), tables navigated with the arrow keys:

1. **Runs**: running runs first, then the newest, each with its progress (in tasks: one task is
   one round of one cell), cells done, failures, samples received live and ETA; the selected
   run's running cells below. Without a live run it shows the stored runs' headers. A run whose
   runner was killed shows ``interrupted``.
2. **Components**: a sparkline per live series (fitness per generation, Kraken steps per
   second, agent latency, CPU and memory of the runner and its workers, user metrics), then,
   if room is left, the samples of the newest cells.
3. **Alerts**: firing, pending, silenced and resolved alerts, most recent first.
4. **Verdicts**: the most recent regression verdicts (the alerts ``compare``,
   ``regressions`` and ``bench run --report`` raised), with their reason.

It reads the store every ``refresh_s`` through the same tail and fold as the web dashboard
(:class:`~allele.observe.tail.StoreTail`, :class:`~allele.bench.livestate.LiveState`). ``r``
reads now, ``q`` quits.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import (
    DataTable,
    Footer,
    Header,
    Label,
    Sparkline,
    Static,
    TabbedContent,
    TabPane,
)

from allele.bench.livestate import SAMPLE_PREFIX, LiveState
from allele.observe.routing import alert_board
from allele.observe.tail import StoreTail
from allele.store.results import ResultStore

TABS = ("runs", "components", "alerts", "verdicts")
MAX_SPARKLINES = 24


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _short(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[:n - 1] + "…"


class TopApp(App[None]):
    """The ``allele top`` application over an open store."""

    TITLE = "allele top"
    CSS = """
    Sparkline { height: 2; margin: 0 1 1 1; }
    .spark-label { margin: 0 1; color: $text-muted; }
    #run-cells { height: auto; max-height: 12; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("1", "show('runs')", "Runs"),
        Binding("2", "show('components')", "Components"),
        Binding("3", "show('alerts')", "Alerts"),
        Binding("4", "show('verdicts')", "Verdicts"),
        Binding("r", "refresh_now", "Refresh"),
        Binding("q", "quit", "Quit"),
    ]

    def __init__(self, store: ResultStore, *, refresh_s: float = 1.0) -> None:
        super().__init__()
        self.store = store
        self.refresh_s = refresh_s
        self.state = LiveState()
        self.tail: StoreTail | None = None
        self.refreshes = 0

    def compose(self) -> ComposeResult:
        yield Header(show_clock=True)
        with TabbedContent(initial="runs", id="tabs"):
            with TabPane("1 Runs", id="runs"):
                yield DataTable(id="run-table", cursor_type="row")
                yield Label("running cells of the selected run", classes="spark-label")
                yield DataTable(id="run-cells", cursor_type="row")
            with TabPane("2 Components", id="components"):
                yield VerticalScroll(Static("no live series yet", id="no-series"),
                                     id="sparks")
            with TabPane("3 Alerts", id="alerts"):
                yield DataTable(id="alert-table", cursor_type="row")
            with TabPane("4 Verdicts", id="verdicts"):
                yield DataTable(id="verdict-table", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#run-table", DataTable).add_columns(
            "run", "status", "progress", "done", "failed", "samples", "ETA")
        self.query_one("#run-cells", DataTable).add_columns("cell", "round", "running for")
        self.query_one("#alert-table", DataTable).add_columns(
            "state", "severity", "alert", "summary", "since")
        self.query_one("#verdict-table", DataTable).add_columns("when", "verdict", "summary",
                                                                "root cause")
        self.state.bootstrap(self.store)
        self.tail = StoreTail(self.store)
        self.refresh_data()
        self.query_one("#run-table", DataTable).focus()
        self.set_interval(self.refresh_s, self.refresh_data)

    # -- actions -----------------------------------------------------------------------------

    FOCUS: ClassVar[dict[str, str]] = {"runs": "#run-table", "components": "#sparks",
                                       "alerts": "#alert-table", "verdicts": "#verdict-table"}

    def action_show(self, tab: str) -> None:
        """Switch to a tab and give its table the keyboard."""
        self.query_one("#tabs", TabbedContent).active = tab
        self.query_one(self.FOCUS[tab]).focus()

    def action_refresh_now(self) -> None:
        self.refresh_data()

    # -- data --------------------------------------------------------------------------------

    def refresh_data(self) -> None:
        """Read what is new in the store and redraw every tab."""
        if self.tail is not None:
            batch = self.tail.poll()
            self.state.apply(batch.events)
            self.state.apply_points(batch.points)
        self.state.check_holders(self.store)
        snap = self.state.snapshot()
        self._runs(snap["runs"])
        self._sparks(snap["series"])
        board = alert_board(self.store, limit=200)
        self._alerts(board["alerts"])
        self._verdicts([a for a in board["alerts"] if a["source"] == "regression"])
        self.refreshes += 1

    def _runs(self, runs: list[dict[str, Any]]) -> None:
        table = self.query_one("#run-table", DataTable)
        row = table.cursor_row
        table.clear()
        for r in runs:
            frac = r["progress"]
            bar = "" if frac is None else "█" * round(frac * 10) + "░" * (10 - round(frac * 10))
            tasks = "" if r.get("tasks") is None else f" {r['tasks_done']}/{r['tasks']} tasks"
            table.add_row(_short(r["name"] or r["run_id"], 40), r["status"],
                          f"{bar} {0 if frac is None else frac:.0%}{tasks}",
                          f"{r['done']}/{r['planned']}", str(r["failed"]), str(r["samples"]),
                          _eta(r["eta_s"]), key=r["run_id"])
        if runs:
            table.move_cursor(row=min(row, len(runs) - 1))
        cells = self.query_one("#run-cells", DataTable)
        cells.clear()
        if runs:
            chosen = runs[min(max(table.cursor_row, 0), len(runs) - 1)]
            now = time.time()
            for c in chosen["running"]:
                cells.add_row(_short(f"{c.get('benchmark') or ''} {c.get('params')}", 70),
                              f"{int(c.get('round', 0)) + 1}/{c.get('rounds', 1)}",
                              f"{now - float(c.get('started_at') or now):.0f} s")

    def _sparks(self, series: list[dict[str, Any]]) -> None:
        box = self.query_one("#sparks", VerticalScroll)
        shown = [s for s in series if s["v"]]
        components = [s for s in shown if not s["metric"].startswith(SAMPLE_PREFIX)]
        samples = [s for s in shown if s["metric"].startswith(SAMPLE_PREFIX)]
        chosen = components[-MAX_SPARKLINES:]
        room = MAX_SPARKLINES - len(chosen)
        chosen += samples[-room:] if room > 0 else []
        if chosen:
            self.query_one("#no-series", Static).display = False
        for i, s in enumerate(chosen):
            values = [float(v) for v in s["v"] if v is not None][-120:]
            last = values[-1] if values else float("nan")
            text = (f"{s['metric'].replace('allele_', '')}  {_short(s['component'], 40)} "
                    f"{s['labels']}  last {last:.4g}")
            existing = self.query(f"#spark-{i}")
            if existing:
                self.query_one(f"#spark-label-{i}", Label).update(text)
                self.query_one(f"#spark-{i}", Sparkline).data = values
            else:
                box.mount(Label(text, id=f"spark-label-{i}", classes="spark-label"))
                box.mount(Sparkline(values, id=f"spark-{i}"))

    def _alerts(self, alerts: list[dict[str, Any]]) -> None:
        table = self.query_one("#alert-table", DataTable)
        table.clear()
        for a in alerts:
            state = "silenced" if a["silenced"] else a["state"]
            table.add_row(state, a["severity"], a["name"],
                          _short(a["annotations"].get("summary", ""), 80),
                          time.strftime("%m-%d %H:%M", time.localtime(a["starts_at"])))

    def _verdicts(self, alerts: list[dict[str, Any]]) -> None:
        table = self.query_one("#verdict-table", DataTable)
        table.clear()
        for a in alerts[:100]:
            notes = a["annotations"]
            table.add_row(time.strftime("%m-%d %H:%M", time.localtime(a["starts_at"])),
                          _short(notes.get("verdict", ""), 60),
                          _short(notes.get("summary", ""), 70),
                          _short(notes.get("root_cause", ""), 50))
