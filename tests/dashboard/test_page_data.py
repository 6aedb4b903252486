"""What the pages show, through the JSON API they read: silencing an alert group, the locations
a comparison shows (the CLI's), the errors the Analytics page names its own fields in."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import typer
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from allele.bench.alerting import comparison_alerts, raise_regressions
from allele.bench.format import quantity
from allele.bench.views import run_comparison
from allele.cli.bench_analysis import register
from allele.config import load_settings
from allele.dashboard.web.app import create_app
from allele.dashboard.web.context import DashboardConfig
from allele.observe.alert_model import Silence, exact_matchers
from allele.store import CellResult, open_store
from allele.store.alerts import AlertRow, upsert_alert
from allele.store.points import MetricPoint

from .conftest import make_store


def _app(url: str) -> TestClient:
    return TestClient(create_app(DashboardConfig(store_url=url, deliver=False,
                                                 settings=load_settings(notify={}))))


def test_exact_matchers_match_their_label_set_literally() -> None:
    labels = {"cell": 'k|{"a":[1]}', "params": "x=*, y=?"}
    s = Silence("s", exact_matchers(labels), 0.0, 1.0)
    assert s.matches(labels)
    assert s.matches({**labels, "extra": "z"})
    assert not s.matches({**labels, "params": "x=1, y=2"})  # * and ? are not globs here
    assert not s.matches({**labels, "cell": 'k|{"a":1}'})  # nor is [1]
    assert not s.matches({"cell": labels["cell"]})


def test_silencing_a_regression_group_silences_exactly_its_alerts(tmp_path: Path) -> None:
    url = make_store(tmp_path / "store.db")
    with open_store(url) as st:  # two regressions of one comparison: one group, no alertname
        raise_regressions(st, comparison_alerts(run_comparison(st, "golden-04", "golden-08")),
                          load_settings(notify={}))
        upsert_alert(st, AlertRow(fingerprint="other", name="BenchmarkRegression",
                                  source="regression", labels={"cell": "c2", "metric": "wall_s",
                                                               "scope": "benchmark"},
                                  annotations={}, severity="warning", state="firing",
                                  starts_at=1.0))
    with _app(url) as client:
        board = client.get("/api/alerts").json()
        assert board["counts"]["firing"] == 3
        group = next(g for g in board["groups"] if len(g["alerts"]) == 2)
        assert all("alertname" not in a["labels"] for a in board["alerts"])
        r = client.post("/api/alerts/silence", json={"fingerprints": group["alerts"],
                                                      "duration_s": 3600, "comment": "c"})
        assert r.status_code == 200 and len(r.json()["silences"]) == 2
        board = client.get("/api/alerts").json()
        assert board["counts"]["firing"] == 1 and board["counts"]["silenced"] == 2
        assert sorted(a["fingerprint"] for a in board["alerts"] if a["silenced"]) == sorted(
            group["alerts"])
        assert len(board["silences"]) == 2
        bad = client.post("/api/alerts/silence", json={"fingerprints": ["nope"]})
        assert bad.status_code == 400 and bad.json()["detail"] == "no such alert: nope"
        assert client.post("/api/alerts/silence", json={"fingerprints": []}).status_code == 422


def _cli_compare_json(store_url: str, base: str, head: str) -> dict[str, Any]:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:  # a group, as `allele bench` is
        pass

    register(app)
    res = CliRunner().invoke(app, ["compare", base, head, "--store", store_url, "--json",
                                   "--fail-on", "never"])
    assert res.exit_code == 0, res.output
    out: dict[str, Any] = json.loads(res.stdout)
    return out


def test_compare_shows_the_locations_the_cli_prints(tmp_path: Path) -> None:
    url = make_store(tmp_path / "store.db")
    with _app(url) as client:
        web = client.get("/api/compare", params={"base": "golden-04", "head": "golden-08"}
                         ).json()
    cli = {(r["key"], r["metric"]): r for r in _cli_compare_json(url, "golden-04", "golden-08")
           ["rows"]}
    assert len(web["rows"]) == len(cli) > 0
    differs = 0
    for r in web["rows"]:
        c = cli[(r["key"], r["metric"])]
        assert (r["base"], r["head"]) == (c["base"], c["head"])
        # the table's columns: the CLI prints quantity(e.base, unit), quantity(e.head, unit)
        assert (r["base_text"], r["head_text"]) == (quantity(c["base"], r["unit"]),
                                                    quantity(c["head"], r["unit"]))
        differs += quantity(c["median_base"], r["unit"]) != r["base_text"]
    assert differs > 0  # the medians would have shown other numbers


def _add_run(url: str, name: str, spec: str, cells: list[CellResult] | None,
             status: str = "finished") -> str:
    with open_store(url) as st:
        run_id = st.create_run(name, spec, "t", {}, {})
        for c in cells or []:
            st.save_cell(run_id, c)
        if status != "running":
            st.finish_run(run_id, "finished")
    return run_id


def _golden_cells(url: str, n: int) -> list[CellResult]:
    with open_store(url) as st:
        return list(st.load_run("golden-08").cells[:n])


def test_compare_defaults_skip_running_runs_and_prefer_the_same_spec(tmp_path: Path) -> None:
    url = make_store(tmp_path / "store.db")
    _add_run(url, "live2", "slow", None, status="running")  # newest, no cells yet
    with _app(url) as client:
        d = client.get("/api/compare/defaults").json()
        assert (d["base"]["name"], d["head"]["name"], d["same_spec"], d["note"]) == (
            "golden-07", "golden-08", True, None)
    _add_run(url, "other", "another-spec", _golden_cells(url, 1))
    _add_run(url, "live3", "slow", None, status="running")
    with _app(url) as client:
        d = client.get("/api/compare/defaults").json()
        assert (d["base"]["name"], d["head"]["name"], d["same_spec"]) == (
            "golden-08", "other", False)
        assert d["note"] == ("no earlier finished run of spec another-spec than other; "
                             "comparing with golden-08 (spec golden)")


def test_compare_defaults_with_one_finished_run(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    url = f"sqlite:///{path}"
    with open_store(url):
        pass
    _add_run(url, "only", "s", None)
    _add_run(url, "live", "s", None, status="running")
    with _app(url) as client:
        d = client.get("/api/compare/defaults").json()
        assert d["base"] is None and d["head"]["name"] == "only"
        assert d["note"] == "only is the only finished run: nothing to compare it with"


def test_analytics_learning_period_fits_the_series_and_errors_name_the_web_fields(
        tmp_path: Path) -> None:
    url = make_store(tmp_path / "store.db")  # allele_evolution_best_fitness: 200 points
    rng = np.random.default_rng(1)
    with open_store(url) as st:
        st.write_metric_points(
            [MetricPoint("allele_kraken_steps_per_second", "k", (), 1e6 + i,
                         100.0 + float(rng.normal())) for i in range(100)]
            + [MetricPoint("allele_bench_cells_done", "bench", (), 1e6 + i, float(i))
               for i in range(25)]
            + [MetricPoint("allele_bench_worker_cpu_percent", "bench", (("worker", w),),
                           1e6 + i, 50.0) for i in range(40) for w in ("runner", "1234")])
    get = "/api/analytics/anomalies"
    with _app(url) as client:
        long = client.get(get, params={"metric": "allele_evolution_best_fitness"}).json()
        assert (long["learn"], long["learn_end"]) == (100, 100)  # half a series under 300
        mid = client.get(get, params={"metric": "allele_kraken_steps_per_second"}).json()
        assert (mid["learn"], mid["learn_end"]) == (50, 50)
        short = client.get(get, params={"metric": "allele_bench_cells_done"})
        assert short.status_code == 422 and short.json()["detail"] == (
            "series of 25 points is too short: the learning period takes half the series "
            "and needs at least 50 points, so 100 points or more")
        fc = client.get("/api/analytics/forecast", params={"metric": "allele_bench_cells_done"})
        assert fc.status_code == 200 and len(fc.json()["series"]["v"]) == 25
        over = client.get(get, params={"metric": "allele_kraken_steps_per_second",
                                       "learn": 120})
        assert over.json()["detail"] == (
            "series of 100 points is shorter than the learning period (120 points); pass a "
            "learning period of at most 99 points (the learn field)")
        for path in (get, "/api/analytics/forecast"):
            side = client.get(path, params={"metric": "allele_bench_worker_cpu_percent"})
            assert side.status_code == 422
            assert side.json()["detail"].endswith(
                "they are separate series, not one: choose one in the labels field, "
                "e.g. worker=1234")
        one = client.get(get, params={"metric": "allele_bench_worker_cpu_percent",
                                      "labels": "worker=runner", "learn": 30}).json()
        assert one["series"]["labels"] == {"worker": "runner"} and one["learn"] == 30
