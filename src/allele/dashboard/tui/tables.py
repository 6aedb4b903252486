"""The rows of ``allele top``'s tables, and how a table takes new rows without losing its place.

Every refresh (once a second by default) hands each table its rows anew. Clearing and refilling
would put the cursor back on the first row and scroll back to the left edge every second, so
:func:`fill` updates the cells in place while the rows are the same ones in the same order, and
otherwise rebuilds the table with the cursor kept on the row it was on (rows are keyed: a run
by its id, an alert by its fingerprint) and the scroll position kept.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from textual.coordinate import Coordinate
from textual.widgets import DataTable

Row = tuple[str, tuple[str, ...]]
"""A table row: its key and its cells."""


def eta(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def short(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[:n - 1] + "…"


def cursor_key(table: DataTable[Any]) -> str | None:
    """The key of the row under the cursor (None: an empty table)."""
    if not table.row_count:
        return None
    row = min(max(table.cursor_row, 0), table.row_count - 1)
    return table.coordinate_to_cell_key(Coordinate(row, 0)).row_key.value


def fill(table: DataTable[Any], rows: Sequence[Row]) -> None:
    """Show ``rows`` in ``table`` without moving the reader: the cursor stays on its row (by
    key; on the same line when that row is gone) and the scroll offsets stay."""
    keys = [key for key, _ in rows]
    if keys == [row.key.value for row in table.ordered_rows]:
        columns = [c.key for c in table.ordered_columns]
        for key, cells in rows:
            for column, value in zip(columns, cells, strict=True):
                if table.get_cell(key, column) != value:
                    table.update_cell(key, column, value, update_width=True)
        return
    chosen, line = cursor_key(table), table.cursor_row
    x, y = table.scroll_x, table.scroll_y
    table.clear()
    for key, cells in rows:
        table.add_row(*cells, key=key)
    if rows:
        table.scroll_to(x, y, animate=False)
        table.move_cursor(row=keys.index(chosen) if chosen in keys else min(line, len(rows) - 1))


def run_rows(runs: Sequence[dict[str, Any]]) -> list[Row]:
    """The Runs table: progress (in tasks when the runner said), cells, failures, samples, ETA."""
    rows: list[Row] = []
    for r in runs:
        frac = r["progress"]
        bar = "" if frac is None else "█" * round(frac * 10) + "░" * (10 - round(frac * 10))
        tasks = "" if r.get("tasks") is None else f" {r['tasks_done']}/{r['tasks']} tasks"
        rows.append((r["run_id"], (short(r["name"] or r["run_id"], 40), r["status"],
                                   f"{bar} {0 if frac is None else frac:.0%}{tasks}",
                                   f"{r['done']}/{r['planned']}", str(r["failed"]),
                                   str(r["samples"]), eta(r["eta_s"]))))
    return rows


def cell_rows(run: dict[str, Any] | None, now: float) -> list[Row]:
    """The running cells of ``run`` (none: no run selected)."""
    if run is None:
        return []
    return [(str(c.get("key")),
             (short(f"{c.get('benchmark') or ''} {c.get('params')}", 70),
              f"{int(c.get('round', 0)) + 1}/{c.get('rounds', 1)}",
              f"{now - float(c.get('started_at') or now):.0f} s"))
            for c in run["running"]]


def _when(ts: float) -> str:
    return time.strftime("%m-%d %H:%M", time.localtime(ts))


def alert_rows(alerts: Sequence[dict[str, Any]]) -> list[Row]:
    """The Alerts table, most recently updated first."""
    return [(a["fingerprint"], ("silenced" if a["silenced"] else a["state"], a["severity"],
                                a["name"], short(a["annotations"].get("summary", ""), 80),
                                _when(a["starts_at"])))
            for a in alerts]


def verdict_rows(alerts: Sequence[dict[str, Any]]) -> list[Row]:
    """The Verdicts table: each regression alert's verdict, summary and root cause."""
    rows: list[Row] = []
    for a in alerts:
        notes = a["annotations"]
        rows.append((a["fingerprint"], (_when(a["starts_at"]), short(notes.get("verdict", ""), 60),
                                        short(notes.get("summary", ""), 70),
                                        short(notes.get("root_cause", ""), 50))))
    return rows
