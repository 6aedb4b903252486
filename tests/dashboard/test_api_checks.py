"""Checks the dashboard shares with other commands, and what root causes answer for a metric
the runs did not record."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from allele.dashboard.web.auth import check_bind
from allele.errors import ConfigError
from allele.observe.export import MIN_TOKEN_LENGTH, serve


def test_metrics_and_the_dashboard_refuse_the_same_short_tokens() -> None:
    assert MIN_TOKEN_LENGTH == 8
    with pytest.raises(ConfigError) as dash:
        check_bind("0.0.0.0", "seven77")
    with pytest.raises(ConfigError) as metrics:
        serve(CollectorRegistry(), port=0, host="0.0.0.0", token="seven77")
    assert str(dash.value) == "the dashboard token must be at least 8 characters long"
    assert str(metrics.value) == "the /metrics token must be at least 8 characters long"
    with pytest.raises(ConfigError, match="at least 8"):  # on loopback too, as the dashboard
        serve(CollectorRegistry(), port=0, token="short")
    server = serve(CollectorRegistry(), port=0, token="eight888")
    server.close()


def test_root_causes_of_a_metric_the_runs_did_not_record_is_a_422(client: TestClient) -> None:
    r = client.get("/api/analytics/root-causes",
                   params={"base": "golden-04", "head": "golden-08", "metric": "nope"})
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert detail.startswith("no cell of run 'golden-04' or 'golden-08' recorded 'nope'; the "
                             "runs both recorded ")
    assert "wall_s" in detail.split("both recorded ")[1].split(", ") and "\n" not in detail
    # as Recommendations answers a metric the run did not record
    rec = client.get("/api/analytics/recommendations",
                     params={"run": "golden-08", "quality": "nope"})
    assert rec.status_code == 422 and "recorded" in rec.json()["detail"]
    ok = client.get("/api/analytics/root-causes",
                    params={"base": "golden-04", "head": "golden-08", "metric": "wall_s"})
    assert ok.status_code == 200 and ok.json()["metric"] == "wall_s"
