"""The dashboard's API docs (``/docs``, Swagger UI) in Debian's chromium with every request to
another host refused, as on a machine without internet access: the page draws every endpoint of
the schema and "Try it out" calls the API, with no console error and no failed request (a screenshot is written to
``ALLELE_SCREENSHOT_DIR``, default ``/tmp/allele-dashboard-screens``)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from .dashboard_server import chromium, serve_dashboard

pytestmark = [pytest.mark.slow, pytest.mark.browser]

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "store.db"
SCREENSHOT_DIR = Path(os.environ.get("ALLELE_SCREENSHOT_DIR", "/tmp/allele-dashboard-screens"))


def test_api_docs_render_offline(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    shutil.copyfile(GOLDEN, path)
    errors: list[str] = []
    failed: list[str] = []
    outside: list[str] = []
    with serve_dashboard(f"sqlite:///{path}", deliver=False) as base, chromium() as browser:
        schema = httpx.get(base + "/openapi.json").json()
        operations = sorted((method.upper(), route) for route, item in schema["paths"].items()
                            for method in item)
        assert ("GET", "/api/runs") in operations and len(operations) >= 10
        local = urlsplit(base).netloc

        def route(r: Any) -> None:
            if urlsplit(r.request.url).netloc == local:
                r.continue_()
            else:  # no internet here: refuse it, and remember that the page asked
                outside.append(r.request.url)
                r.abort()

        p = browser.new_page(viewport={"width": 1400, "height": 1000})
        p.route("**/*", route)
        p.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        p.on("pageerror", lambda e: errors.append(str(e)))
        p.on("requestfailed", lambda r: failed.append(f"{r.url} {r.failure}"))
        p.on("response", lambda r: failed.append(f"{r.url} {r.status}")
             if r.status >= 400 else None)
        p.goto(base + "/docs")
        p.wait_for_selector(".opblock", timeout=30_000)
        p.wait_for_load_state("networkidle")
        blocks = p.locator(".opblock")
        shown = sorted((blocks.nth(i).locator(".opblock-summary-method").inner_text().strip(),
                        blocks.nth(i).locator(".opblock-summary-path").get_attribute("data-path"))
                       for i in range(blocks.count()))
        title = p.locator(".info .title").inner_text()
        # the page works too: "Try it out" on GET /api/runs calls the dashboard's API
        runs = p.locator(".opblock:has(.opblock-summary-path[data-path='/api/runs'])").first
        runs.locator(".opblock-summary").click()
        runs.locator("button.try-out__btn").click()
        runs.locator("button.execute").click()
        status = runs.locator(".live-responses-table tbody .response-col_status").first
        status.wait_for(timeout=30_000)
        answered = status.inner_text().strip()
        body = runs.locator(".live-responses-table .highlight-code").first.inner_text()
        SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
        p.screenshot(path=str(SCREENSHOT_DIR / "api-docs.png"))
        p.close()
    assert shown == operations
    assert title.startswith("Allele dashboard")
    assert answered == "200" and "golden-08" in body
    assert errors == [] and failed == [] and outside == []
