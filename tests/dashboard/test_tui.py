"""``allele top`` driven by Textual's pilot: keys navigate, a live run updates the view."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from textual.widgets import DataTable, Sparkline, TabbedContent

from allele.dashboard.tui.app import TopApp
from allele.store import open_store
from allele.store.live import Event
from allele.store.points import MetricPoint

from .conftest import make_store


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_keys_navigate_the_tabs_and_tables(tmp_path: Path) -> None:
    with open_store(make_store(tmp_path / "s.db")) as st:
        app = TopApp(st, refresh_s=60)
        async with app.run_test(size=(140, 40)) as pilot:
            tabs = app.query_one("#tabs", TabbedContent)
            runs = app.query_one("#run-table", DataTable)
            assert tabs.active == "runs"
            # the newest stored runs, read when nothing runs live, and the run of the event log
            names = {runs.get_row_at(i)[0] for i in range(runs.row_count)}
            assert names == {"golden-08", "golden-07", "golden-06", "golden-05", "golden-04",
                             "live-run"}
            await pilot.press("down", "down")
            assert runs.cursor_row == 2
            await pilot.press("3")
            assert tabs.active == "alerts"
            await pilot.press("4")
            assert tabs.active == "verdicts"
            await pilot.press("2")
            assert tabs.active == "components"
            assert len(app.query(Sparkline)) >= 1  # the stored telemetry series
            await pilot.press("1")
            assert tabs.active == "runs"


@pytest.mark.anyio
async def test_a_live_run_updates_the_view(tmp_path: Path) -> None:
    with open_store(make_store(tmp_path / "s.db")) as st:
        app = TopApp(st, refresh_s=60)
        async with app.run_test(size=(140, 40)) as pilot:
            st.append_events([
                Event("run_started", "bench:2", ts=2000.0, run_id="live2",
                      data={"name": "fresh-run", "spec": "s", "cells": 4, "skipped": 0}),
                Event("cell_started", "bench:2", ts=2001.0, run_id="live2",
                      data={"key": "k", "benchmark": "b", "params": {"x": 9}}),
                Event("cell_stored", "bench:2", ts=2002.0, run_id="live2",
                      data={"key": "k0", "status": "ok", "done": 1, "failed": 0})])
            st.write_metric_points([MetricPoint("allele_kraken_steps_per_second", "7:kraken-0",
                                                (), 2000.0 + i, 1e4 + i) for i in range(5)])
            await pilot.press("r")
            runs = app.query_one("#run-table", DataTable)
            row = runs.get_row("live2")
            assert row[0] == "fresh-run" and row[3] == "1/4"
            assert "25%" in row[2]
            cells = app.query_one("#run-cells", DataTable)
            runs.move_cursor(row=runs.get_row_index("live2"))
            await pilot.press("r")
            assert cells.row_count == 1 and "'x': 9" in str(cells.get_row_at(0)[0])
            labels = [str(w.content) for w in app.query(".spark-label")]
            assert any("kraken_steps_per_second" in t and "last 1e+04" in t for t in labels)
            shots = os.environ.get("ALLELE_SCREENSHOT_DIR")
            if shots:  # docs/dashboard.md shows it
                app.save_screenshot(filename="top.svg", path=shots)


@pytest.mark.anyio
async def test_top_over_many_old_runs_keeps_components_and_orders_runs(tmp_path: Path) -> None:
    """Many finished runs with samples of many cells in the event log: tab 2 still shows the
    component series, tab 1 lists the running run first, then the newest; a run of 2 rounds
    shows its progress in tasks before any cell is stored."""
    from tests.bench.test_livestate import COMPONENTS, _old_runs

    with open_store(f"sqlite:///{tmp_path / 's.db'}") as st:
        st.write_metric_points([MetricPoint(m, c, lab, 900.0 + i, float(i))
                                for m, c, lab in COMPONENTS for i in range(5)])
        _old_runs(st, 12, 20)
        run_id = st.create_run("rounds-run", "s", "t", {}, {})
        st.append_events([
            Event("run_started", "bench:3", ts=5000.0, run_id=run_id,
                  data={"name": "rounds-run", "cells": 4, "tasks_total": 8}),
            *[Event("cell_finished", "bench:3", ts=5001.0 + i, run_id=run_id,
                    data={"key": f"k{i}", "tasks_done": i + 1}) for i in range(4)]])
        app = TopApp(st, refresh_s=60)
        async with app.run_test(size=(140, 60)) as pilot:
            runs = app.query_one("#run-table", DataTable)
            names = [runs.get_row_at(i)[0] for i in range(runs.row_count)]
            assert names[:4] == ["rounds-run", "old-11", "old-10", "old-09"]
            row = runs.get_row_at(0)
            assert row[1] == "running" and row[3] == "0/4"  # no cell stored yet ...
            assert "50%" in row[2] and "4/8 tasks" in row[2]  # ... half the work done
            assert row[6] != "-"  # an ETA
            await pilot.press("2")
            labels = [str(w.content) for w in app.query("#sparks .spark-label")]
            assert len(labels) == 24
            for metric, component, _ in COMPONENTS:
                assert any(metric.replace("allele_", "") in t and component in t
                           for t in labels), metric
            assert sum(t.startswith("sample:") for t in labels) == 24 - len(COMPONENTS)
