"""A runner killed with SIGKILL never marks its run: its lease names a process that is gone, and
every view shows the run ``interrupted`` (``bench list``, ``/api/runs``, the Live page's
``/api/live`` and its stream, ``allele top``), not ``running`` for ever; while it was alive, an
old heartbeat did not make it look gone; ``--resume`` continues it."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from textual.widgets import DataTable

from allele.bench.livestate import LiveState
from allele.bench.views import run_list
from allele.config import load_settings
from allele.dashboard.tui.app import TopApp
from allele.dashboard.web.app import create_app
from allele.dashboard.web.context import DashboardConfig
from allele.dashboard.web.hub import LiveHub
from allele.store import open_store
from allele.store.live import read_events
from tests.faults.cli import allele
from tests.faults.processes import Cli, wait_for_file

pytestmark = pytest.mark.slow


def _wait(what: str, check: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout}s")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def killed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, LiveHub]]:
    """A store with run ``killed`` whose runner got SIGKILL while a cell was running, and a
    live hub that was following it at the time."""
    tmp = tmp_path_factory.mktemp("killed")
    hold = tmp / "hold"
    hold.touch()
    spec = tmp / "k.yaml"
    spec.write_text(f"""
name: k
target: tests.faults.targets:sleeps
seeds: 2
rounds: 2
matrix: {{a: [1, 2, 3]}}
fixed: {{hold: {str(hold)!r}}}
""")
    url = f"sqlite:///{tmp / 'r.db'}"
    runner = Cli(["bench", "run", str(spec), "--store", url, "--name", "killed", "-q",
                  "--workers", "1"], cwd=tmp, out=tmp / "run.out", env={})
    try:
        wait_for_file(Path(str(hold) + ".started"), timeout=120)
        st = open_store(url)
        _wait("cell_started event", lambda: any(
            e.kind == "cell_started" for e in read_events(st, 0, limit=100)))
        # a live runner whose heartbeat is old (a slow store, a long cell) is still running
        with sqlite3.connect(tmp / "r.db", timeout=10) as db:
            db.execute("update run_leases set heartbeat_at = 0")
        assert [r["name"] for r in run_list(st, status="running")["runs"]] == ["killed"]
        hub = LiveHub(st, poll_s=0.05)
        hub.start()
        (run,) = hub.snapshot()["runs"]
        assert (run["status"], len(run["running"])) == ("running", 1)
        os.kill(runner.pid, signal.SIGKILL)
        assert runner.wait(timeout=30) == -9
    finally:
        hold.unlink(missing_ok=True)
        if runner.returncode is None:
            os.kill(runner.pid, signal.SIGKILL)
            runner.wait(timeout=30)
    yield url, hub
    hub.close()
    st.close()


def test_the_open_dashboard_sees_the_runner_go(killed: tuple[str, LiveHub]) -> None:
    _, hub = killed
    _wait("the hub noticing", lambda: hub.snapshot()["runs"][0]["status"] != "running", 15)
    (run,) = hub.snapshot()["runs"]
    assert (run["status"], run["holder_gone"], run["running"], run["eta_s"]) == (
        "interrupted", True, [], None)


def test_bench_list_api_runs_and_the_live_page_say_interrupted(
        killed: tuple[str, LiveHub]) -> None:
    url, _ = killed
    with open_store(url) as st:
        assert st.get_run("killed").status == "running"  # the store is as the runner left it
        assert run_list(st, status="running")["total"] == 0
        assert [r["status"] for r in run_list(st)["runs"]] == ["interrupted"]
        state = LiveState()
        state.bootstrap(st)
        assert state.snapshot()["runs"][0]["status"] == "interrupted"
    code, out, _ = allele("bench", "list", "--store", url)
    assert code == 0
    (row,) = [line for line in out.splitlines() if "killed" in line and "runs in" not in line]
    assert "interrupted" in row and "running" not in row
    app = create_app(DashboardConfig(store_url=url, deliver=False,
                                     settings=load_settings(notify={})))
    with TestClient(app) as client:
        assert client.get("/api/runs", params={"status": "running"}).json()["total"] == 0
        runs = client.get("/api/runs", params={"status": "interrupted"}).json()["runs"]
        assert [r["name"] for r in runs] == ["killed"]
        (live,) = client.get("/api/live").json()["runs"]
        assert (live["name"], live["status"], live["running"]) == ("killed", "interrupted", [])


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_top_says_interrupted(killed: tuple[str, LiveHub]) -> None:
    url, _ = killed
    with open_store(url) as st:
        app = TopApp(st, refresh_s=60)
        async with app.run_test(size=(140, 40)) as pilot:
            await pilot.press("r")
            table = app.query_one("#run-table", DataTable)
            row = table.get_row_at(0)
            assert (row[0], row[1], row[6]) == ("killed", "interrupted", "-")
            assert app.query_one("#run-cells", DataTable).row_count == 0


def test_resume_continues_the_killed_run(killed: tuple[str, LiveHub]) -> None:
    url, _ = killed
    code, _, err = allele("bench", "run", "--resume", "killed", "--store", url, "-q",
                          "--workers", "1")
    assert code == 0, err
    with open_store(url) as st:
        assert st.get_run("killed").status == "finished"
        assert [r["status"] for r in run_list(st)["runs"]] == ["finished"]
        state = LiveState()
        state.bootstrap(st)
        (run,) = state.snapshot()["runs"]
        assert (run["status"], run["done"], run["tasks_done"], run["tasks"]) == (
            "finished", 3, 6, 6)
