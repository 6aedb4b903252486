"""``allele top``: the terminal dashboard (Textual), usable over SSH.

Four tabs, switched with ``1``-``4`` (or ``tab`` / ``shift+tab``: the next or previous tab),
tables navigated with the arrow keys:

1. **Runs**: running runs first, then the newest, each with its progress (in tasks: one task is
   one round of one cell), cells done, failures, samples received live and ETA; the selected
   run's running cells below, following the cursor. Without a live run it shows the stored
   runs' headers. A run whose runner was killed shows ``interrupted``.
2. **Components**: a sparkline per live series (fitness per generation, Kraken steps per
   second, agent latency, CPU and memory of the runner and its workers, user metrics), then
   the samples of the newest cells; a page at a time, ``n`` / ``p`` turn the page
   (:mod:`~allele.dashboard.tui.sparks`).
3. **Alerts**: firing, pending, silenced and resolved alerts, most recent first.
4. **Verdicts**: the most recent regression verdicts (the alerts ``compare``,
   ``regressions`` and ``bench run --report`` raised), with their reason.

It reads the store every ``refresh_s`` through the same tail and fold as the web dashboard
(:class:`~allele.observe.tail.StoreTail`, :class:`~allele.bench.livestate.LiveState`), via
:class:`~allele.dashboard.tui.source.TopSource`, which shows what a store of an older schema
cannot hold as unavailable. A refresh keeps each table's cursor on its row and its scroll
(:func:`~allele.dashboard.tui.tables.fill`). ``r`` reads now, ``q`` or ``ctrl+c`` quits.

Textual catches what is raised inside its event loop and prints a ~200-line traceback (the
command's one-line error handling never sees it), so a store error (a damaged file, a server
gone) is caught here instead: the app ends with return code 2 and keeps the error in
:attr:`TopApp.failure` for the command to print in one line.
Ctrl-C ends it with return code 130 (:attr:`TopApp.interrupted`), as an interrupt ends every
command; so does SIGTERM (``kill``), through the app's own exit, which restores the terminal
(the default action killed the process on the alternate screen, and the shell was left there).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from typing import Any, ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer, Header, Label, Static, TabbedContent, TabPane

from allele.dashboard.tui.source import ALERTS_SCHEMA, LIVE_SCHEMA, TopSource
from allele.dashboard.tui.sparks import SparkPages
from allele.dashboard.tui.tables import (
    alert_rows,
    cell_rows,
    cursor_key,
    fill,
    run_rows,
    verdict_rows,
)
from allele.errors import AlleleError
from allele.store.results import ResultStore

TABS = ("runs", "components", "alerts", "verdicts")
ALERTS_SHOWN = 200
VERDICTS_SHOWN = 100


class TopApp(App[None]):
    """The ``allele top`` application over an open store."""

    TITLE = "allele top"
    CSS = """
    Sparkline { height: 2; margin: 0 1 1 1; }
    .spark-label { margin: 0 1; color: $text-muted; }
    #spark-status, .note { margin: 0 1; }
    #notice { margin: 0 1; color: $warning; }
    #run-cells { height: auto; max-height: 12; }
    """
    # The footer shows only what fits in 60 columns, q first: the tab titles carry their keys.
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit"),
        Binding("ctrl+c", "interrupt", "Quit", show=False, priority=True),
        Binding("r", "refresh_now", "Refresh"),
        Binding("tab", "cycle(1)", "Next tab", show=False, priority=True),
        Binding("shift+tab", "cycle(-1)", "Previous tab", show=False, priority=True),
        Binding("1", "show('runs')", "Runs", show=False),
        Binding("2", "show('components')", "Components", show=False),
        Binding("3", "show('alerts')", "Alerts", show=False),
        Binding("4", "show('verdicts')", "Verdicts", show=False),
        Binding("n", "page(1)", "Next page", show=False),
        Binding("p", "page(-1)", "Previous page", show=False),
    ]

    def __init__(self, store: ResultStore, *, refresh_s: float = 1.0) -> None:
        super().__init__()
        self.store = store
        self.refresh_s = refresh_s
        self.source = TopSource(store)
        self.refreshes = 0
        self.failure: AlleleError | None = None
        """The store error that ended the app (the command prints it and exits 2)."""
        self.interrupted = False
        """Ctrl-C ended the app (the command exits 130)."""
        self._runs_by_id: dict[str, dict[str, Any]] = {}

    def compose(self) -> ComposeResult:
        yield Header(show_clock=True)
        yield Static(id="notice")
        with TabbedContent(initial="runs", id="tabs"):
            with TabPane("1 Runs", id="runs"):
                yield DataTable(id="run-table", cursor_type="row")
                yield Label("running cells of the selected run", classes="spark-label")
                yield DataTable(id="run-cells", cursor_type="row")
            with TabPane("2 Components", id="components"):
                yield SparkPages(id="sparks")
            with TabPane("3 Alerts", id="alerts"):
                yield Static(id="alerts-note", classes="note")
                yield DataTable(id="alert-table", cursor_type="row")
            with TabPane("4 Verdicts", id="verdicts"):
                yield Static(id="verdicts-note", classes="note")
                yield DataTable(id="verdict-table", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        # SIGTERM quits as Ctrl-C does, so the app restores the terminal on its way out (not
        # where there are no Unix signals, or off the main thread)
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, self.action_interrupt)
        self.query_one("#run-table", DataTable).add_columns(
            "run", "status", "progress", "done", "failed", "samples", "ETA")
        self.query_one("#run-cells", DataTable).add_columns("cell", "round", "running for")
        self.query_one("#alert-table", DataTable).add_columns(
            "state", "severity", "alert", "summary", "since")
        self.query_one("#verdict-table", DataTable).add_columns("when", "verdict", "summary",
                                                                "root cause")
        self._show_unavailable()
        try:
            self.source.start()
        except AlleleError as exc:
            self.fail(exc)
            return
        self.refresh_data()
        self.query_one("#run-table", DataTable).focus()
        self.set_interval(self.refresh_s, self.refresh_data)

    def _show_unavailable(self) -> None:
        """Say what a store of an older schema cannot show, where it would be shown."""
        notice = self.source.notice()
        self.query_one("#notice", Static).update(notice or "")
        self.query_one("#notice", Static).display = notice is not None
        if not self.source.live:
            self.query_one(SparkPages).unavailable(
                self.source.unavailable("live series", LIVE_SCHEMA))
        for tab in ("alerts", "verdicts"):
            note = self.query_one(f"#{tab}-note", Static)
            note.display = not self.source.has_alerts
            if not self.source.has_alerts:
                note.update(self.source.unavailable(tab, ALERTS_SCHEMA))

    def fail(self, exc: AlleleError) -> None:
        """End the app on a store error, kept for the command to print in one line."""
        self.failure = exc
        self.exit(return_code=2)

    # -- actions -----------------------------------------------------------------------------

    FOCUS: ClassVar[dict[str, str]] = {"runs": "#run-table", "components": "#sparks",
                                       "alerts": "#alert-table", "verdicts": "#verdict-table"}

    def action_show(self, tab: str) -> None:
        """Switch to a tab and give its table the keyboard."""
        self.query_one("#tabs", TabbedContent).active = tab
        self.query_one(self.FOCUS[tab]).focus()

    def action_cycle(self, step: int) -> None:
        """``tab`` / ``shift+tab``: the next or previous tab (not the next widget: the tables
        are all a tab holds to move in)."""
        active = self.query_one("#tabs", TabbedContent).active
        self.action_show(TABS[(TABS.index(active) + step) % len(TABS)])

    def action_page(self, step: int) -> None:
        self.query_one(SparkPages).turn(step)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """``n`` and ``p`` turn the sparkline pages only where they are shown; a screen over
        the tabs (the command palette) keeps ``tab`` and those keys for itself."""
        if action in ("cycle", "page") and len(self.screen_stack) > 1:
            return False
        if action == "page":
            return self.query_one("#tabs", TabbedContent).active == "components"
        return True

    def on_unmount(self) -> None:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGTERM)

    def action_interrupt(self) -> None:
        """Ctrl-C quits (Textual's own Ctrl-C only says to press ctrl+q)."""
        self.interrupted = True
        self.exit(return_code=130)

    def action_refresh_now(self) -> None:
        self.refresh_data()

    # -- data --------------------------------------------------------------------------------

    def refresh_data(self) -> None:
        """Read what is new in the store and redraw every tab; a store error ends the app
        (:meth:`fail`)."""
        if self.failure is not None:
            return
        try:
            snap = self.source.read()
            alerts = self.source.alerts(ALERTS_SHOWN)
            verdicts = self.source.verdicts(VERDICTS_SHOWN)
        except AlleleError as exc:
            self.fail(exc)
            return
        self._runs_by_id = {r["run_id"]: r for r in snap["runs"]}
        fill(self.query_one("#run-table", DataTable), run_rows(snap["runs"]))
        self._show_cells()
        self.query_one(SparkPages).show(snap["series"])
        if alerts is not None:
            fill(self.query_one("#alert-table", DataTable), alert_rows(alerts))
        if verdicts is not None:
            fill(self.query_one("#verdict-table", DataTable), verdict_rows(verdicts))
        self.refreshes += 1

    def _show_cells(self) -> None:
        """The running cells of the run under the Runs table's cursor."""
        run = self._runs_by_id.get(cursor_key(self.query_one("#run-table", DataTable)) or "")
        fill(self.query_one("#run-cells", DataTable), cell_rows(run, time.time()))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        """Moving in the Runs table shows the newly selected run's cells at once."""
        if event.data_table.id == "run-table":
            self._show_cells()
