"""The API docs page (``/docs``, Swagger UI) loads its script and style from the dashboard
itself: no CDN, so it works without internet access (it was blank offline, its Swagger UI
coming from cdn.jsdelivr.net)."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi.testclient import TestClient

from allele.config import load_settings
from allele.dashboard.web.app import create_app
from allele.dashboard.web.context import DashboardConfig

from .conftest import make_store


def _references(html: str) -> set[str]:
    """Every URL the page loads (``src``/``href`` attributes, the ``url:`` of its script)."""
    return set(re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
               + re.findall(r"""url:\s*['"]([^'"]+)['"]""", html))


def test_the_docs_page_and_its_assets_are_served_locally(client: TestClient) -> None:
    r = client.get("/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert _references(r.text) == {"/static/apidocs/swagger-ui-bundle.js",
                                   "/static/apidocs/swagger-ui.css",
                                   "/static/apidocs/favicon.png", "/openapi.json"}
    assert "//" not in " ".join(_references(r.text)) and "cdn" not in r.text.lower()
    js = client.get("/static/apidocs/swagger-ui-bundle.js")
    assert js.status_code == 200 and "SwaggerUIBundle" in js.text[:2000]
    assert js.headers["content-type"].startswith(("text/javascript", "application/javascript"))
    css = client.get("/static/apidocs/swagger-ui.css")
    assert css.status_code == 200 and ".swagger-ui" in css.text[:5000]
    assert client.get("/static/apidocs/favicon.png").content[:4] == b"\x89PNG"
    # the page renders the app's own schema: OpenAPI 3.1, which this Swagger UI (5.x) reads
    schema = client.get("/openapi.json").json()
    assert schema["openapi"].startswith("3.1") and "/api/runs" in schema["paths"]
    assert "/docs" not in schema["paths"]
    # ReDoc is not offered: it loads its logo from its vendor's CDN whatever it is told
    assert client.get("/redoc").json() == {"detail": "no page /redoc"}


def test_with_a_token_the_docs_need_it_and_their_assets_do_not(tmp_path: Path) -> None:
    app = create_app(DashboardConfig(store_url=make_store(tmp_path / "s.db"),
                                     token="s3cret-token", deliver=False,
                                     settings=load_settings(notify={})))
    with TestClient(app) as c:
        for page in ("/docs", "/openapi.json"):
            assert c.get(page).status_code == 401
            assert c.get(page, headers={"Authorization": "Bearer s3cret-token"}
                         ).status_code == 200
        assert c.get("/static/apidocs/swagger-ui-bundle.js").status_code == 200
        assert c.get("/static/dashboard.js").status_code == 200  # the pages' mount still serves
