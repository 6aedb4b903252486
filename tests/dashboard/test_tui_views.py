"""``allele top`` keeps the reader's place: a refresh leaves the cursor on its row and the
scroll where it was, the selection follows the run, every live series is reachable in a
stable place, and the keys do what the help says."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from textual.widgets import DataTable, Label, Static, TabbedContent

from allele.dashboard.tui.app import TopApp
from allele.dashboard.tui.tables import cursor_key
from allele.store import open_store
from allele.store.alerts import AlertRow, upsert_alert
from allele.store.live import Event
from allele.store.points import MetricPoint

from .conftest import make_store


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _alert(i: int, at: float) -> AlertRow:
    return AlertRow(f"fp{i}", "HighCPU", "rule", {"worker": str(i)},
                    {"summary": f"cpu of worker {i} above 90%"}, "critical", "firing", at)


def _running(run_id: str, name: str, ts: float, keys: list[str]) -> list[Event]:
    """A run that started at ``ts`` with ``keys`` cells running."""
    return [Event("run_started", "bench:5", ts=ts, run_id=run_id,
                  data={"name": name, "spec": "s", "cells": 4, "skipped": 0}),
            *[Event("cell_started", "bench:5", ts=ts + 1, run_id=run_id,
                    data={"key": k, "benchmark": "b", "params": {"k": k}}) for k in keys]]


@pytest.mark.anyio
async def test_a_refresh_keeps_the_cursor_on_its_row(tmp_path: Path) -> None:
    now = time.time()
    with open_store(f"sqlite:///{tmp_path / 's.db'}") as st:
        for i in range(6):
            upsert_alert(st, _alert(i, now - 100 + i))
        app = TopApp(st, refresh_s=60)
        async with app.run_test(size=(140, 40)) as pilot:
            table = app.query_one("#alert-table", DataTable)

            def chosen() -> str:
                return str(table.get_row_at(table.cursor_row)[3])

            await pilot.press("3", "down", "down")
            assert table.cursor_row == 2 and chosen() == "cpu of worker 3 above 90%"
            await pilot.press("r")  # nothing new
            assert table.cursor_row == 2
            upsert_alert(st, _alert(9, now))  # a newer alert comes first
            await pilot.press("r")
            await pilot.pause()
            assert table.row_count == 7 and table.get_row_at(0)[3] == "cpu of worker 9 above 90%"
            assert chosen() == "cpu of worker 3 above 90%" and table.cursor_row == 3
            assert cursor_key(table) == "fp3"  # rows are keyed by the alert's fingerprint


@pytest.mark.anyio
async def test_a_refresh_keeps_the_horizontal_scroll(tmp_path: Path) -> None:
    """60 columns do not show the ETA column: scrolled right, it stays in view; the footer
    still shows how to quit."""
    with open_store(make_store(tmp_path / "s.db")) as st:
        app = TopApp(st, refresh_s=60)
        async with app.run_test(size=(60, 20)) as pilot:
            table = app.query_one("#run-table", DataTable)
            assert table.max_scroll_x > 0
            await pilot.press(*["right"] * 8)
            await pilot.pause()
            scrolled = table.scroll_x
            assert scrolled > 0
            await pilot.press("r")  # the same rows
            await pilot.pause()
            assert table.scroll_x == scrolled
            st.append_events(_running("new", "new-run", time.time(), ["a"]))
            await pilot.press("r")  # a new row: the table is rebuilt
            await pilot.pause()
            assert table.get_row_at(0)[0] == "new-run"
            assert table.scroll_x == scrolled
            footer = [k.key for k in app.query("FooterKey")  # type: ignore[attr-defined]
                      if k.region.width and k.region.right <= 60]
            assert "q" in footer


@pytest.mark.anyio
async def test_the_selection_follows_the_run_and_shows_its_cells_at_once(
        tmp_path: Path) -> None:
    with open_store(make_store(tmp_path / "s.db")) as st:
        st.append_events(_running("busy", "busy-run", time.time(), ["c1", "c2"]))
        app = TopApp(st, refresh_s=60)
        async with app.run_test(size=(140, 40)) as pilot:
            runs = app.query_one("#run-table", DataTable)
            cells = app.query_one("#run-cells", DataTable)
            assert runs.get_row_at(0)[0] == "busy-run" and cells.row_count == 2
            await pilot.press("down", "down", "down")
            chosen = runs.get_row_at(runs.cursor_row)[0]
            st.append_events(_running("newer", "newer-run", time.time() + 5, ["x"]))
            await pilot.press("r")  # a new run sorts first: the selection stays on its run
            await pilot.pause()
            assert runs.get_row_at(0)[0] == "newer-run"
            assert runs.get_row_at(runs.cursor_row)[0] == chosen
            assert cells.row_count == 0
            # moving shows the cells of the run moved to, without waiting for a refresh
            runs.move_cursor(row=0)
            await pilot.pause()
            assert [cells.get_row_at(i)[0] for i in range(cells.row_count)] == ["b {'k': 'x'}"]
            await pilot.press("down")
            await pilot.pause()
            assert runs.get_row_at(runs.cursor_row)[0] == "busy-run" and cells.row_count == 2
            await pilot.press("down")
            await pilot.pause()
            assert cells.row_count == 0


def _labels(app: TopApp) -> list[str]:
    return [str(w.content) for w in app.query("#sparks .spark-label").results(Label)
            if w.display]


@pytest.mark.anyio
async def test_every_series_has_a_stable_place_and_can_be_reached(tmp_path: Path) -> None:
    """130 series: a page of 24 at a time, ``n`` / ``p`` turn the pages, a series updated
    keeps its line, and a constant series says so."""
    with open_store(f"sqlite:///{tmp_path / 's.db'}") as st:
        st.write_metric_points([MetricPoint(f"m{i:03d}", "user", (), 1000.0 + t, float(t))
                                for i in range(129) for t in range(3)]
                               + [MetricPoint("allele_z_const", "user", (), 1000.0 + t, 1000.0)
                                  for t in range(3)])
        app = TopApp(st, refresh_s=60)
        async with app.run_test(size=(140, 40)) as pilot:
            await pilot.press("2")
            first = _labels(app)
            assert [t.split()[0] for t in first] == [f"m{i:03d}" for i in range(24)]
            status = app.query_one("#spark-status", Static)
            assert "series 1-24 of 130" in str(status.content)
            st.write_metric_points([MetricPoint("m005", "user", (), 2000.0, 7.0)])
            await pilot.press("r")
            assert [t.split()[0] for t in _labels(app)] == [t.split()[0] for t in first]
            assert _labels(app)[5].endswith("last 7")
            await pilot.press(*["n"] * 6)  # past the last page: stays on it
            assert "series 121-130 of 130" in str(status.content)
            last = _labels(app)
            assert len(last) == 10 and last[-1].startswith("z_const")
            assert last[-1].endswith("const 1000")
            await pilot.press("p")
            assert "series 97-120 of 130" in str(status.content)
            await pilot.press("1", "n")  # only on the Components tab
            assert "series 97-120 of 130" in str(status.content)


@pytest.mark.anyio
async def test_tab_switches_tabs_and_ctrl_c_quits(tmp_path: Path) -> None:
    with open_store(make_store(tmp_path / "s.db")) as st:
        app = TopApp(st, refresh_s=60)
        async with app.run_test(size=(140, 40)) as pilot:
            tabs = app.query_one("#tabs", TabbedContent)
            seen = []
            for _ in range(4):
                await pilot.press("tab")
                seen.append(tabs.active)
            assert seen == ["components", "alerts", "verdicts", "runs"]
            await pilot.press("shift+tab")
            assert tabs.active == "verdicts" and app.focused is not None
            assert app.focused.id == "verdict-table"
            await pilot.press("ctrl+c")
            await pilot.pause()
        assert app.interrupted and app.return_code == 130
