"""The JSON API behind every page: values, one-line 4xx errors, the token rules."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from allele.config import load_settings
from allele.dashboard.web.app import create_app
from allele.dashboard.web.auth import check_bind, is_loopback, safe_next
from allele.dashboard.web.context import DashboardConfig
from allele.errors import ConfigError

from .conftest import EVO, make_store


def test_pages_are_served_with_local_assets_only(client: TestClient) -> None:
    for path in ("/", "/runs", "/history", "/compare", "/alerts", "/analytics"):
        r = client.get(path)
        assert r.status_code == 200, path
        assert 'src="/static/plotly.min.js"' in r.text and "http" not in r.text.split(
            "<script", 1)[1].split("</script>")[0]
    js = client.get("/static/plotly.min.js")
    assert js.status_code == 200 and len(js.content) > 1_000_000
    assert client.get("/static/dashboard.js").status_code == 200
    assert client.get("/nope").status_code == 404


def test_runs_run_cell_and_history(client: TestClient) -> None:
    runs = client.get("/api/runs", params={"limit": 2}).json()
    assert runs["total"] == 8 and [r["name"] for r in runs["runs"]] == ["golden-08",
                                                                        "golden-07"]
    ov = client.get("/api/runs/golden-08").json()
    assert ov["run"]["cells"] == 4 and len(ov["cells"]) == 4
    cell = client.get("/api/cell", params={"run": "golden-08", "key": EVO}).json()
    assert len(cell["samples"]["wall_s"]["value"]) == 12
    h = client.get("/api/history", params={"key": EVO, "metric": "wall_s"}).json()
    assert [c["run"] for c in h["change_points"]] == ["golden-05"]


def test_compare_rows_reasons_and_fdr_table(client: TestClient) -> None:
    c = client.get("/api/compare", params={"base": "golden-04", "head": "golden-08"}).json()
    assert c["counts"]["regressed"] == 2
    reg = [r for r in c["rows"] if r["verdict"] == "regressed"]
    assert all(r["reason"].startswith("significant after FDR") for r in reg)
    assert all(r["ci_low"] > 1.05 for r in reg)
    ranks = [r["rank"] for r in c["fdr"]]
    assert ranks == list(range(1, len(ranks) + 1))
    ps = [r["p_value"] for r in c["fdr"]]
    assert ps == sorted(ps)
    assert c["fdr"][-1]["threshold"] == pytest.approx(c["q"])
    again = client.get("/api/compare", params={"base": "golden-04", "head": "golden-08"})
    assert again.json() == c  # from the cache


def test_live_snapshot_events_telemetry_and_metrics(client: TestClient) -> None:
    live = client.get("/api/live").json()
    run = next(r for r in live["runs"] if r["run_id"] == "live1")
    assert (run["name"], run["done"], run["planned"]) == ("live-run", 1, 3)
    ev = client.get("/api/events", params={"after": 0, "limit": 2}).json()
    assert [e["kind"] for e in ev["events"]] == ["run_started", "cell_started"]
    t = client.get("/api/telemetry").json()
    assert {"metric": "allele_evolution_best_fitness", "component": "9:evolution-0",
            "points": 200, "newest": 1199.0} in t["series"]
    pts = client.get("/api/telemetry", params={"metric": "cpu_gauge"}).json()
    assert pts["points"] == [{"t": 1000.0, "v": 7.0, "component": "user", "labels": {"k": "v"}}]
    from allele.dashboard.web.adapters import clean

    assert clean({"a": [1.0, float("nan"), {"b": float("inf")}]}) == {"a": [1.0, None,
                                                                            {"b": None}]}
    assert client.get("/metrics").status_code == 200


def test_analytics_endpoints(client: TestClient) -> None:
    a = client.get("/api/analytics/anomalies", params={
        "metric": "allele_evolution_best_fitness", "method": "robust"}).json()
    assert len(a["scores"]) == len(a["series"]["v"]) == 200
    assert 150 in [r["index"] for r in a["anomalies"]]  # the spike
    f = client.get("/api/analytics/forecast", params={
        "metric": "allele_evolution_best_fitness", "model": "naive", "horizon": 5}).json()
    assert len(f["forecast"]["mean"]) == 5
    assert all(lo <= m <= hi for lo, m, hi in zip(f["forecast"]["lower"], f["forecast"]["mean"],
                                                  f["forecast"]["upper"]))
    # by default the model is chosen by backtest, as on the command line, and says how
    auto = client.get("/api/analytics/forecast", params={
        "metric": "allele_evolution_best_fitness", "horizon": 5}).json()
    assert auto["findings"][0].startswith("model: ") and "backtest MASE" in auto["findings"][0]
    assert not any(s.startswith("model: ") for s in f["findings"])
    rc = client.get("/api/analytics/root-causes",
                    params={"base": "golden-04", "head": "golden-08"}).json()
    assert rc["causes"] and rc["status"] in ("cause", "no clear cause") and rc["message"]
    rec = client.get("/api/analytics/recommendations", params={"run": "golden-08"})
    assert rec.status_code == 422 and "4 or more cells" in rec.json()["detail"]
    r = client.get("/api/analytics/anomalies", params={"metric": "nothing"})
    assert r.status_code == 422 and r.json()["detail"].startswith("no points")
    assert a["series"]["labels"] == {}
    r = client.get("/api/analytics/forecast", params={
        "metric": "allele_evolution_best_fitness", "labels": "worker=9"})
    assert r.status_code == 422 and r.json()["detail"].endswith("worker=9 in the store")
    r = client.get("/api/analytics/anomalies", params={
        "metric": "allele_evolution_best_fitness", "labels": "worker"})
    assert r.status_code == 422 and "KEY=VALUE" in r.json()["detail"]


@pytest.mark.parametrize(("path", "params", "status", "start"), [
    ("/api/runs/nope", {}, 404, "no run 'nope'"),
    ("/api/runs", {"limit": 0}, 422, "limit:"),
    ("/api/runs", {"status": "weird"}, 422, "status:"),
    ("/api/compare", {"base": "golden-04", "head": "golden-04"}, 400, "BASE and HEAD"),
    ("/api/compare", {"base": "golden-04"}, 422, "head: Field required"),
    ("/api/history", {"key": "x", "metric": "wall_s"}, 400, "no run has samples"),
    ("/api/cell", {"run": "golden-08", "key": "nope"}, 400, "run 'golden-08' has no cell"),
    ("/api/runs/golden-08/scaling", {"metric": "wall_s"}, 400, "no numeric parameter"),
])
def test_bad_input_gets_one_line_4xx(client: TestClient, path: str, params: dict[str, object],
                                     status: int, start: str) -> None:
    r = client.get(path, params=params)
    assert r.status_code == status
    detail = r.json()["detail"]
    assert detail.startswith(start) and "\n" not in detail


def test_alert_actions_are_persisted(client: TestClient) -> None:
    board = client.get("/api/alerts").json()
    assert board["outbox"] == {"pending": 0, "delivered": 0, "dead": 0, "refused": 0}
    s = client.post("/api/silences", json={"matchers": {"alertname": "X*"}, "duration_s": 60,
                                           "comment": "<script>"}).json()
    assert client.get("/api/silences").json()["silences"][0]["comment"] == "<script>"
    assert client.delete(f"/api/silences/{s['id']}").status_code == 200
    assert client.delete(f"/api/silences/{s['id']}").status_code == 404
    assert client.post("/api/alerts/ack", json={"fingerprints": ["nope"]}).status_code == 400
    assert client.post("/api/silences", json={"matchers": {}}).status_code == 422
    assert client.post("/api/silences", content="matchers=a", headers={
        "Content-Type": "application/x-www-form-urlencoded"}).status_code == 422


def test_token_rules(tmp_path: Path) -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("127.8.9.1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")
    with pytest.raises(ConfigError, match="token"):
        check_bind("0.0.0.0", None)
    check_bind("0.0.0.0", "s3cret-token")
    assert safe_next("//evil.example/") == "/" and safe_next("/runs?x=1") == "/runs?x=1"
    url = make_store(tmp_path / "s.db")
    app = create_app(DashboardConfig(store_url=url, token="s3cret-token", deliver=False,
                                     settings=load_settings(notify={})))
    with TestClient(app) as c:
        assert c.get("/api/runs").status_code == 401
        assert c.get("/metrics").status_code == 401
        assert c.get("/static/dashboard.js").status_code == 200
        page = c.get("/runs?run=x", follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"].startswith("/login?next=")
        assert c.get("/api/runs", headers={"Authorization": "Bearer s3cret-token"}).status_code \
            == 200
        assert c.get("/api/runs", headers={"X-Allele-Token": "wrong"}).status_code == 401
        bad = c.post("/login", data={"token": "wrong", "next": "/runs"}, follow_redirects=False)
        assert "failed=1" in bad.headers["location"]
        ok = c.post("/login", data={"token": "s3cret-token", "next": "//evil.example"},
                    follow_redirects=False)
        assert ok.headers["location"] == "/"
        assert "s3cret-token" not in ok.headers["set-cookie"]
        assert "httponly" in ok.headers["set-cookie"].lower()
        assert c.get("/api/runs").status_code == 200  # the session cookie
