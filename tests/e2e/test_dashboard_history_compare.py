"""History after a ``--filter`` run, and Compare opened on runs it cannot compare, in Debian's
chromium: every cell of the spec's recent runs is offered, and the page says why nothing is
compared instead of showing a blank result or two other runs."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from allele.store import open_store

from .dashboard_server import chromium, serve_dashboard

pytestmark = [pytest.mark.slow, pytest.mark.browser]

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "store.db"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as b:
        yield b


@pytest.fixture()
def page(browser: Any) -> Iterator[Any]:
    p = browser.new_page(viewport={"width": 1400, "height": 1000})
    p.console = []
    p.on("console", lambda m: p.console.append(f"{m.type}: {m.text}")
         if m.type in ("error", "warning") else None)
    p.on("pageerror", lambda e: p.console.append(f"pageerror: {e}"))
    yield p
    p.close()


def golden_copy(tmp_path: Path) -> str:
    path = tmp_path / "store.db"
    shutil.copyfile(GOLDEN, path)
    return f"sqlite:///{path}"


def test_history_offers_the_cells_a_filtered_run_left_out(tmp_path: Path, page: Any) -> None:
    url = golden_copy(tmp_path)
    with open_store(url) as st:
        cells = list(st.load_run("golden-08").cells)
        run_id = st.create_run("only-one", "golden", "t", {}, {})  # `--filter`: one cell
        st.save_cell(run_id, cells[0])
        st.finish_run(run_id, "finished")
        left_out = cells[-1].key
    with serve_dashboard(url, deliver=False) as base:
        page.goto(base + "/history")
        page.wait_for_selector("#history-table table, #history-table p")
        keys = page.locator("#history-key option").evaluate_all("(os) => os.map((o) => o.value)")
        assert sorted(keys) == sorted(c.key for c in cells)
        page.select_option("#history-key", left_out)
        page.select_option("#history-metric", "wall_s")
        page.click("#history-form button")
        title = f"wall_s of {cells[-1].target} " + ", ".join(
            f"{k}={v}" for k, v in cells[-1].params.items())
        page.wait_for_function("(t) => (document.getElementById('history-chart').layout || {})"
                               ".title.text === t", arg=title)
        shown = page.locator("#history-table").inner_text()
        assert int(shown.split(" runs;")[0]) >= 2  # its history, from the spec's earlier runs
        assert page.locator("#error").is_hidden() and page.console == []


def test_compare_says_the_runs_are_the_same(tmp_path: Path, page: Any) -> None:
    url = golden_copy(tmp_path)
    with serve_dashboard(url, deliver=False) as base:
        page.goto(base + "/compare?base=golden-08&head=golden-08")
        page.wait_for_selector("#error:not([hidden])")
        assert page.locator("#error").inner_text() == "BASE and HEAD are the same run (golden-08)"
        assert page.locator("#verdicts tbody tr").count() == 0


def test_compare_says_a_run_of_the_url_is_not_in_the_store(tmp_path: Path, page: Any) -> None:
    url = golden_copy(tmp_path)
    with open_store(url) as st:
        head_id = st.get_run("golden-08").id
    with serve_dashboard(url, deliver=False) as base:
        page.goto(base + "/compare?base=zzz&head=yyy")
        page.wait_for_selector("#error:not([hidden])")
        hint = " (give an id, a name or 'latest'; `allele bench list` shows them)"
        assert page.locator("#error").inner_text() == (
            f"no run 'zzz' in the store{hint}; no run 'yyy' in the store{hint}")
        # no other run stands in for them
        assert page.locator("#compare-base").input_value() == ""
        assert page.locator("#compare-head").input_value() == ""
        assert page.locator("#verdicts tbody tr").count() == 0

        page.goto(base + "/compare?base=zzz&head=golden-08")
        page.wait_for_selector("#error:not([hidden])")
        assert page.locator("#error").inner_text() == f"no run 'zzz' in the store{hint}"
        assert page.locator("#compare-head").input_value() == head_id
        # the form still works: picking a run compares
        page.select_option("#compare-base", label="golden-07 (finished)")
        page.click("#compare-form button")
        page.wait_for_selector("#verdicts tbody tr")
        assert page.locator("#error").is_hidden()
        assert page.locator("#compare-summary").inner_text().startswith("golden-07 → golden-08")
