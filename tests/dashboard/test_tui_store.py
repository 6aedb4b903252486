"""``allele top`` over stores that fail or are old: a store error ends it in one line with exit
2 (not a traceback and exit 0), a store of an older schema shows its runs and says what it
cannot show, and the verdicts are read apart from the other alerts."""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from textual.widgets import DataTable, Static
from typer.testing import CliRunner

from allele.cli import app as cli
from allele.dashboard.tui.app import TopApp
from allele.errors import StoreError
from allele.store import open_store
from allele.store.alerts import AlertRow, upsert_alert

from .conftest import GOLDEN, make_store


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _drop(path: Path, table: str) -> None:
    """Damage a store from another connection, as a store broken mid-session is."""
    with sqlite3.connect(path) as conn:
        conn.execute(f"DROP TABLE {table}")


def _regression(fingerprint: str, at: float) -> AlertRow:
    return AlertRow(fingerprint, "BenchmarkRegression", "regression", {"metric": "wall_s"},
                    {"summary": "wall_s of evolution +25% from run-a to run-b",
                     "verdict": "regressed: +25.0%", "root_cause": "load: machine busier"},
                    "warning", "firing", at)


@pytest.mark.anyio
async def test_a_store_of_an_older_schema_shows_its_runs_and_what_it_cannot_show(
        tmp_path: Path) -> None:
    """The golden store has schema version 2 (no event log, no alerts): read-only, it is not
    migrated, and top shows its runs' headers instead of failing on a missing table."""
    path = tmp_path / "old.db"
    shutil.copyfile(GOLDEN, path)
    with open_store(f"sqlite:///{path}", read_only=True) as st:
        assert st.opened_version == 2
        app = TopApp(st, refresh_s=60)
        async with app.run_test(size=(140, 40)) as pilot:
            await pilot.press("r")
            assert app.failure is None and app.is_running and app.refreshes == 2
            runs = app.query_one("#run-table", DataTable)
            assert [runs.get_row_at(i)[0] for i in range(runs.row_count)] == [
                f"golden-0{i}" for i in range(8, 0, -1)]
            assert runs.get_row_at(0)[1:4] == ["finished", "██████████ 100%", "4/4"]
            notice = app.query_one("#notice", Static)
            assert notice.display and "schema version 2" in str(notice.content)
            assert "stored runs only, no live progress or series, alerts or verdicts" in str(
                notice.content)
            for note, need in (("#alerts-note", 3), ("#verdicts-note", 3), ("#spark-status", 6)):
                text = str(app.query_one(note, Static).content)
                assert "unavailable" in text and f"need schema version {need}" in text, text
                assert "allele dashboard" in text  # how to migrate it
            assert app.query_one("#alert-table", DataTable).row_count == 0


@pytest.mark.anyio
async def test_a_store_with_alerts_but_no_live_tables_shows_the_alerts(tmp_path: Path) -> None:
    """A store of schema version 5 (alerts, no packed telemetry points): its alerts and
    verdicts are shown, the live series are not."""
    path = tmp_path / "v5.db"
    with open_store(f"sqlite:///{path}") as st:
        st.create_run("kept", "spec", "t", {}, {})
        upsert_alert(st, _regression("reg1", time.time()))
    _drop(path, "point_blocks")
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE schema_version SET version = 5")
    with open_store(f"sqlite:///{path}", read_only=True) as st:
        app = TopApp(st, refresh_s=60)
        async with app.run_test(size=(140, 40)):
            assert app.failure is None
            assert app.query_one("#run-table", DataTable).get_row_at(0)[0] == "kept"
            assert app.query_one("#verdict-table", DataTable).row_count == 1
            assert app.query_one("#alert-table", DataTable).row_count == 1
            assert not app.query_one("#alerts-note", Static).display
            assert "need schema version 6" in str(app.query_one("#spark-status", Static).content)


@pytest.mark.anyio
async def test_a_store_error_mid_session_ends_the_app_with_the_error(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with open_store(make_store(path), read_only=True) as st:
        app = TopApp(st, refresh_s=60)
        async with app.run_test(size=(140, 40)) as pilot:
            _drop(path, "events")
            await pilot.press("r")
            await pilot.pause()
        assert app.return_code == 2
        assert isinstance(app.failure, StoreError)
        assert "no such table: events" in str(app.failure)


@pytest.mark.anyio
async def test_verdicts_are_not_hidden_by_newer_alerts(tmp_path: Path) -> None:
    """One regression verdict and 250 newer rule alerts: the Verdicts tab still shows it."""
    now = time.time()
    with open_store(f"sqlite:///{tmp_path / 's.db'}") as st:
        upsert_alert(st, _regression("reg1", now - 3600))
        for i in range(250):
            upsert_alert(st, AlertRow(f"rule{i}", "HighCPU", "rule", {"worker": str(i)},
                                      {"summary": f"cpu of worker {i} above 90%"},
                                      "critical", "firing", now - 60 + i))
        app = TopApp(st, refresh_s=60)
        async with app.run_test(size=(160, 40)):
            verdicts = app.query_one("#verdict-table", DataTable)
            assert verdicts.row_count == 1
            assert verdicts.get_row_at(0)[1] == "regressed: +25.0%"
            assert app.query_one("#alert-table", DataTable).row_count == 200


# -- at the command line -----------------------------------------------------------------------


def _top(monkeypatch: pytest.MonkeyPatch, url: str, auto_pilot: Any = None) -> Any:
    """``allele top --store URL`` with the app run headless (driven by ``auto_pilot``)."""
    run = TopApp.run

    def headless(self: TopApp) -> None:
        run(self, headless=True, size=(120, 30), auto_pilot=auto_pilot)

    monkeypatch.setattr(TopApp, "run", headless)
    return CliRunner().invoke(cli, ["top", "--store", url])


def test_a_store_error_at_start_is_one_line_and_exit_2(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "s.db"
    url = make_store(path)
    _drop(path, "events")
    r = _top(monkeypatch, url)
    assert r.exit_code == 2, r.output
    assert r.output.strip() == (f"error: cannot read the newest ids ({url}): no such table: "
                                "events")


def test_a_store_error_while_running_is_one_line_and_exit_2(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "s.db"
    url = make_store(path)

    async def break_it(pilot: Pilot[None]) -> None:
        _drop(path, "silences")
        await pilot.press("r")

    r = _top(monkeypatch, url, break_it)
    assert r.exit_code == 2, r.output
    assert r.output.startswith("error: cannot ") and r.output.strip().endswith(
        "no such table: silences")
    assert len(r.output.strip().splitlines()) == 1


def test_ctrl_c_quits_as_an_interrupt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def interrupt(pilot: Pilot[None]) -> None:
        await pilot.press("ctrl+c")

    r = _top(monkeypatch, make_store(tmp_path / "s.db"), interrupt)
    assert r.exit_code == 130, r.output
    assert r.output.strip() == "interrupted"


def test_q_quits_with_exit_0(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def quit_(pilot: Pilot[None]) -> None:
        await pilot.press("q")

    r = _top(monkeypatch, make_store(tmp_path / "s.db"), quit_)
    assert r.exit_code == 0, r.output
    assert r.output == ""


def test_sigterm_quits_through_the_app_and_restores_the_terminal(tmp_path: Path) -> None:
    """``kill`` of a running ``allele top``: the default action ended the process on the
    alternate screen, and the user's shell was left there (exit 143)."""
    import os
    import pty
    import select
    import signal
    import subprocess
    import sys
    import time

    url = make_store(tmp_path / "s.db")
    main, sub = pty.openpty()
    env = dict(os.environ, TERM="xterm-256color", COLUMNS="100", LINES="30")
    proc = subprocess.Popen([sys.executable, "-m", "allele", "top", "--store", url],
                            stdin=sub, stdout=sub, stderr=sub, env=env, close_fds=True)
    os.close(sub)
    out = b""

    def read_for(seconds: float, until: bytes = b"") -> None:
        nonlocal out
        end = time.monotonic() + seconds
        while time.monotonic() < end and not (until and until in out):
            if select.select([main], [], [], 0.2)[0]:
                try:
                    chunk = os.read(main, 65536)
                except OSError:
                    return
                if not chunk:
                    return
                out += chunk
            elif proc.poll() is not None:
                return

    try:
        read_for(60.0, until=b"golden-08")  # the app is up and has drawn its runs
        assert b"\x1b[?1049h" in out and b"golden-08" in out
        proc.send_signal(signal.SIGTERM)
        read_for(30.0, until=b"interrupted")
        assert proc.wait(timeout=30) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(main)
    assert out.rfind(b"\x1b[?1049l") > out.rfind(b"\x1b[?1049h")  # left the alternate screen
    assert b"interrupted" in out
