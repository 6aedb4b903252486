"""The JSON API fuzzed from its own OpenAPI schema (schemathesis): no input gets a 5xx.

Every operation but the endless event stream gets generated requests (valid and invalid
parameters and bodies); a response is checked for its status only: < 500, and a 4xx carries a
one-line ``detail``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings

from allele.config import load_settings
from allele.dashboard.web.app import create_app
from allele.dashboard.web.context import DashboardConfig

from .conftest import make_store

APP = create_app(DashboardConfig(store_url=None, deliver=False,
                                 settings=load_settings(notify={})))
schema = schemathesis.openapi.from_asgi("/openapi.json", APP).exclude(path="/api/stream")


@pytest.fixture(scope="module", autouse=True)
def running_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Run the app's lifespan (store, live hub) once for every generated request."""
    url = make_store(tmp_path_factory.mktemp("fuzz") / "store.db")
    app = create_app(DashboardConfig(store_url=url, deliver=False,
                                     settings=load_settings(notify={})))
    with TestClient(app):
        APP.state.ctx = app.state.ctx  # the app object the schema calls
        yield


@schema.parametrize()
@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_no_server_error(case: schemathesis.Case) -> None:
    response = case.call()
    assert response.status_code < 500, (case.method, case.formatted_path, case.query,
                                        response.text[:300])
    ctype = response.headers.get("content-type", "")
    ctype = ctype[0] if isinstance(ctype, list) else ctype
    if 400 <= response.status_code < 500 and ctype.startswith("application/json"):
        detail = response.json().get("detail")
        assert isinstance(detail, str) and "\n" not in detail
