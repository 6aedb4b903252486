"""The Live page in chromium: a run of several rounds shows its progress in tasks while no cell
is stored yet, keeps its progress curve over a reload, and a run whose runner is killed turns
``interrupted`` on the open page. Screenshots go to ``ALLELE_SCREENSHOT_DIR``."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from allele.store import open_store
from allele.store.leases import Lease
from allele.store.live import Event

from .dashboard_server import chromium, run_matrix_in_background, serve_dashboard

pytestmark = [pytest.mark.slow, pytest.mark.browser]

SCREENSHOT_DIR = Path(os.environ.get("ALLELE_SCREENSHOT_DIR", "/tmp/allele-dashboard-screens"))
ROUNDS_SPEC = """
name: e2e-rounds
benchmarks:
  - name: um
    target: tests.bench.live_targets:user_metrics
    matrix: {x: [1, 2, 3]}
    fixed: {sleep_s: 0.1}
    seeds: 4
    rounds: 2
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    url = f"sqlite:///{tmp_path_factory.mktemp('live') / 'store.db'}"
    open_store(url).close()
    with serve_dashboard(url, deliver=False) as base:
        yield base, url


@pytest.fixture(scope="module")
def page(site: tuple[str, str]) -> Iterator[Any]:
    with chromium() as browser:
        p = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors: list[str] = []
        p.on("pageerror", lambda e: errors.append(str(e)))
        p.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        yield p
        assert errors == []
        p.close()


def _card_text(page: Any, name: str) -> str:
    return str(page.locator(".card", has_text=name).inner_text())


def test_rounds_show_progress_in_tasks_live_and_after_a_reload(site: tuple[str, str],
                                                               page: Any) -> None:
    base, url = site
    page.goto(base + "/")
    page.wait_for_function("document.getElementById('conn').classList.contains('on')")
    worker = run_matrix_in_background(url, ROUNDS_SPEC, "rounds-run")
    # round 0 of every cell ends before any cell is stored: the tasks move, the cells do not
    page.wait_for_function(
        "/[1-5]\\/6 tasks, 0\\/3 cells done/.test(document.body.innerText)", timeout=60_000)
    assert "ETA –" not in _card_text(page, "rounds-run")
    page.screenshot(path=str(SCREENSHOT_DIR / "live-rounds-midway.png"), full_page=True)
    worker.join(timeout=120)
    page.wait_for_function("document.body.innerText.includes('6/6 tasks, 3/3 cells done')")
    assert page.locator("#chart-progress").get_attribute("data-points") == "6"  # one per task
    assert page.evaluate("document.getElementById('chart-progress').data[0].y") == list(range(7))
    page.reload()
    page.wait_for_function("document.body.innerText.includes('6/6 tasks, 3/3 cells done')")
    # the curve as the server folded it: the start and a point per task, not two points
    ys = page.evaluate("document.getElementById('chart-progress').data[0].y")
    assert ys == [0, 1, 2, 3, 4, 5, 6]


def test_a_killed_runner_turns_its_run_interrupted_on_the_open_page(
        site: tuple[str, str], page: Any) -> None:
    base, url = site
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        with open_store(url) as st:  # a run held by a live process, a cell running
            run_id = st.create_run("doomed-run", "s", "t", {}, {})
            st.swap_lease(run_id, Lease(socket.gethostname(), holder.pid,
                                        psutil.Process(holder.pid).create_time()), None)
            st.append_events([
                Event("run_started", "bench:9", run_id=run_id,
                      data={"name": "doomed-run", "spec": "s", "cells": 4, "tasks_total": 4}),
                Event("cell_started", "bench:9", run_id=run_id,
                      data={"key": "k", "benchmark": "b", "params": {"x": 1}})])
        page.goto(base + "/")
        page.wait_for_function("document.body.innerText.includes('doomed-run')")
        assert "s · running" in _card_text(page, "doomed-run")
        assert "running:" in _card_text(page, "doomed-run")
        os.kill(holder.pid, signal.SIGKILL)
        assert holder.wait(timeout=10) == -signal.SIGKILL
        page.wait_for_function(
            "[...document.querySelectorAll('.card')].some((c) => c.innerText.includes("
            "'doomed-run') && c.innerText.includes('s · interrupted'))", timeout=20_000)
        text = _card_text(page, "doomed-run")
        assert "running:" not in text and "ETA" not in text
        page.screenshot(path=str(SCREENSHOT_DIR / "live-killed-run.png"), full_page=True)
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait(timeout=10)


def test_a_round_run_again_counts_its_samples_once_on_the_open_page(
        site: tuple[str, str], page: Any) -> None:
    """The page folds events as the server does (bench/livestate.py): a round that starts again
    replaces its earlier attempt's samples, live and after a reload."""
    base, url = site
    with open_store(url) as st:
        run_id = st.create_run("rerun-run", "s", "t", {}, {})
    page.goto(base + "/")
    page.wait_for_function("document.getElementById('conn').classList.contains('on')")

    def ev(kind: str, **data: Any) -> Event:
        return Event(kind, "bench:7", run_id=run_id, data={"name": "rerun-run", **data})

    with open_store(url) as st:
        st.append_events([ev("run_started", spec="s", cells=1, tasks_total=2),
                          ev("cell_started", key="k", round=0),
                          ev("samples", key="k", round=0, n=4, values={"wall_s": [1.0] * 4}),
                          ev("cell_started", key="k", round=0),  # the round runs again
                          ev("samples", key="k", round=0, n=3, values={"wall_s": [1.0] * 3})])
    page.wait_for_function("document.body.innerText.includes('rerun-run')")
    page.wait_for_function("/rerun-run[\\s\\S]*3 samples live/.test(document.body.innerText)",
                           timeout=20_000)
    page.reload()
    page.wait_for_function("/rerun-run[\\s\\S]*3 samples live/.test(document.body.innerText)",
                           timeout=20_000)
