from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from typer.testing import CliRunner

from allele.analytics.synthetic import anomaly_benchmark, response_surface
from allele.cli.analyze import app
from allele.observe.metrics import MetricPoint
from allele.store import open_store
from allele.store.model import CellResult, Sample, cell_key

runner = CliRunner()


def _store_with_series(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    s = anomaly_benchmark(n_series=1, n=600, seed=2, kinds=["spike"])[0]
    with open_store(url) as st:
        st.write_metric_points(MetricPoint("gen_time", "evolution", (), 1000.0 + 10 * i, float(v))
                               for i, v in enumerate(s.values))
    return url


def test_anomalies_and_forecast_json(tmp_path: Path) -> None:
    url = _store_with_series(tmp_path)
    res = runner.invoke(app, ["anomalies", "gen_time", "--store", url, "--method", "robust",
                              "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["component"] == "evolution" and data["anomalies"]
    assert all(0.5 < a["score"] <= 1 for a in data["anomalies"])
    res = runner.invoke(app, ["forecast", "gen_time", "--store", url, "--horizon", "5",
                              "--model", "naive", "--json"])
    assert res.exit_code == 0, res.output
    fc = json.loads(res.output)["forecast"]
    assert len(fc["mean"]) == 5 and fc["model"] == "naive"
    res = runner.invoke(app, ["anomalies", "nope", "--store", url])
    assert res.exit_code != 0
    res = runner.invoke(app, ["anomalies", "gen_time", "--store", url, "--method", "robust"])
    assert res.exit_code == 0 and "anomalous points of 600" in res.output
    res = runner.invoke(app, ["forecast", "gen_time", "--store", url, "--horizon", "3"])
    assert res.exit_code == 0 and "seasonal with period 48" in res.output


def test_recommend_and_alerts(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    params, quality, cost, optimum = response_surface(seed=0, repeats=1)
    with open_store(url) as st:
        rid = st.create_run("grid", "spec", "evolution", {}, {})
        cells = [CellResult(cell_key("evolution", p), "evolution", p, "ok",
                            [Sample("best_fitness", float(q), 0, 0), Sample("wall_s", float(c), 0, 0)])
                 for p, q, c in zip(params, quality, cost, strict=True)]
        st.save_cells(rid, cells)
        st.finish_run(rid, "finished")
    res = runner.invoke(app, ["recommend", "grid", "--store", url, "--json", "--current",
                              json.dumps({"population": 100, "mutation_rate": 0.05,
                                          "crossover": "sbx"})])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)["evolution"]
    assert data["recommendations"][0]["params"]["population"] > 100
    assert any(p["params"] == optimum for p in data["pareto"])
    alerts = [{"name": "HostOOM", "labels": {"host": "h", "scope": "system"},
               "severity": "critical", "starts_at": 100.0},
              {"name": "Slow", "labels": {"host": "h", "scope": "component"},
               "severity": "warning", "starts_at": 101.0}]
    f = tmp_path / "alerts.json"
    f.write_text(json.dumps(alerts))
    res = runner.invoke(app, ["alerts", str(f), "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert len(out["inhibited"]) == 1 and len(out["groups"]) == 1
    assert 0.4 < out["groups"][0]["priority"] <= 1.0  # critical: 0.4 * 1.0 plus the rest


def _store_runs(url: str, cells: list[dict[str, Any]],
                runs: list[tuple[str, Any, dict[str, Any]]]) -> None:
    """Evolution runs of one wall_s sample per cell: (name, values, environment) each."""
    with open_store(url) as st:
        for name, values, env in runs:
            rid = st.create_run(name, "spec", "evolution", {}, env)
            st.save_cells(rid, [CellResult(cell_key("evolution", p), "evolution", p, "ok",
                                           [Sample("wall_s", float(v), 0, 0)])
                                for p, v in zip(cells, values, strict=True)])
            st.finish_run(rid, "finished")


def test_rca_between_runs_names_the_slow_parameter(tmp_path: Path) -> None:
    from allele.analytics.synthetic import regression_trial

    url = f"sqlite:///{tmp_path / 'r.db'}"
    cells, before, after, cause = regression_trial(4, repeats=1)
    _store_runs(url, cells, [("base", before, {"numpy": "1.26"}),
                             ("new", after, {"numpy": "2.1"})])
    res = runner.invoke(app, ["rca", "base", "new", "--store", url, "--json"])
    assert res.exit_code == 0, res.output
    causes = json.loads(res.output)["causes"]
    assert causes[0]["kind"] == "parameter" and causes[0]["name"] == cause
    assert {"kind": "environment", "name": "numpy"}.items() <= {
        k: v for k, v in causes[-1].items() if k in ("kind", "name")}.items()
    table = runner.invoke(app, ["rca", "base", "new", "--store", url])
    assert table.exit_code == 0 and cause in table.output


def test_rca_between_runs_says_when_every_cell_moved_alike(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    cells = [{"population_size": n, "selection": s} for n in (50, 250, 1000)
             for s in ("rank", "tournament")]
    rng = np.random.default_rng(8)
    base = rng.uniform(0.01, 0.05, len(cells))
    busy = base * 1.3 * np.exp(rng.normal(0, 0.01, 6))
    _store_runs(url, cells, [("calm", base, {"python": "3.11", "load": {"1m": 0.2}}),
                             ("busy", busy, {"python": "3.11", "load": {"1m": 2.0}})])
    res = runner.invoke(app, ["rca", "calm", "busy", "--store", url, "--json"])
    assert res.exit_code == 0, res.output
    causes = json.loads(res.output)["causes"]
    assert causes[0]["kind"] == "shift" and causes[0]["score"] > 0.9
    assert all(c["name"] != "target" for c in causes)  # one target: not a candidate
    env = [c for c in causes if c["kind"] == "environment"]
    assert [c["name"] for c in env] == ["load.1m"]


def test_rca_telemetry_mode_names_the_metric_that_moved_first(tmp_path: Path) -> None:
    from allele.analytics.synthetic import root_cause_trial

    url = f"sqlite:///{tmp_path / 'r.db'}"
    metrics, cause, target, at = root_cause_trial(3)
    with open_store(url) as st:
        st.write_metric_points(MetricPoint(name, "system", (), 100.0 + 5 * i, float(v))
                               for name, series in metrics.items()
                               for i, v in enumerate(series))
    others = ",".join(m for m in metrics if m != target)
    res = runner.invoke(app, ["rca", "--target", target, "--candidates", others,
                              "--at", str(100.0 + 5 * at), "--store", url, "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["index"] == at and out["causes"][0]["name"] == cause
    res = runner.invoke(app, ["rca", "--store", url])
    assert res.exit_code != 0
