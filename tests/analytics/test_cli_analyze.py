from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from allele.bench.format import quantity
from allele.cli import analyze
from allele.cli.analyze import app
from tests.bench.diagnose_stores import (
    common_shift_store,
    grid_store,
    noise_store,
    regression_store,
    series_store,
    telemetry_trial_store,
)

runner = CliRunner()


def _store_with_series(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    series_store(url)
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
    title = " ".join(res.output.split())
    assert res.exit_code == 0 and "anomalous points of 600" in title
    assert "season of 48 points removed" in title
    res = runner.invoke(app, ["forecast", "gen_time", "--store", url, "--horizon", "3"])
    assert res.exit_code == 0 and "seasonal with period 48" in res.output


def test_anomalies_learning_period_option_and_a_too_long_one(tmp_path: Path) -> None:
    url = _store_with_series(tmp_path)
    res = runner.invoke(app, ["anomalies", "gen_time", "--store", url, "--learn", "100",
                              "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["learn_end"] == 100 and all(a["index"] >= 100 for a in data["anomalies"])
    res = runner.invoke(app, ["anomalies", "gen_time", "--store", url, "--learn", "700"])
    assert res.exit_code != 0
    assert "shorter than the learning period" in str(res.exception)


def test_recommend_and_alerts(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    optimum = grid_store(url)
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
    assert out["inhibited"][0]["alert"]["name"] == "Slow"  # muted by the host's OOM
    assert [a["name"] for a in out["groups"][0]["alerts"]] == ["HostOOM"]
    assert 0.4 < out["groups"][0]["priority"] <= 1.0  # critical: 0.4 * 1.0 plus the rest


def test_rca_between_runs_names_the_slow_parameter(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    cause = regression_store(url)
    res = runner.invoke(app, ["rca", "base", "new", "--store", url, "--json"])
    assert res.exit_code == 0, res.output
    causes = json.loads(res.output)["causes"]
    assert causes[0]["kind"] == "parameter" and causes[0]["name"] == cause
    assert {"kind": "environment", "name": "numpy"}.items() <= {
        k: v for k, v in causes[-1].items() if k in ("kind", "name")}.items()
    table = runner.invoke(app, ["rca", "base", "new", "--store", url])
    assert table.exit_code == 0 and cause in table.output
    # a metric neither run recorded is an error, not "candidate causes of the nope change"
    res = runner.invoke(app, ["rca", "base", "new", "-m", "nope", "--store", url])
    assert res.exit_code != 0  # the root app turns it into one line and exit code 2
    assert str(res.exception) == "no metric 'nope' in base or new; recorded: wall_s"


def test_rca_between_runs_says_when_every_cell_moved_alike(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    common_shift_store(url)
    res = runner.invoke(app, ["rca", "calm", "busy", "--store", url, "--json"])
    assert res.exit_code == 0, res.output
    causes = json.loads(res.output)["causes"]
    assert causes[0]["kind"] == "shift" and causes[0]["score"] > 0.9
    assert all(c["name"] != "target" for c in causes)  # one target: not a candidate
    env = [c for c in causes if c["kind"] == "environment"]
    assert [c["name"] for c in env] == ["load.1m"]


def test_rca_telemetry_mode_names_the_metric_that_moved_first(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    cause, target, other_metrics, at = telemetry_trial_store(url)
    others = ",".join(other_metrics)
    res = runner.invoke(app, ["rca", "--target", target, "--candidates", others,
                              "--at", str(100.0 + 5 * at), "--store", url, "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["index"] == at and out["causes"][0]["name"] == cause
    res = runner.invoke(app, ["rca", "--store", url])
    assert res.exit_code != 0


def test_rca_and_recommend_say_nothing_here(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    noise_store(url)
    grid_store(url, null=True, name="null")
    res = runner.invoke(app, ["rca", "aa-base", "aa-new", "--store", url])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "answer: no clear cause" in text and "nan" not in text
    data = json.loads(runner.invoke(app, ["rca", "aa-base", "aa-new", "--store", url,
                                          "--json"]).output)
    assert data["status"] == "no clear cause"
    res = runner.invoke(app, ["recommend", "null", "--store", url])
    assert res.exit_code == 0, res.output
    assert "no reliably better configuration" in " ".join(res.output.split())
    data = json.loads(runner.invoke(app, ["recommend", "null", "--store", url, "--json"]).output)
    assert data["evolution"]["status"] == "no reliably better configuration"
    assert data["evolution"]["recommendations"] == []


def test_forecast_chooses_by_backtest_and_shows_refused_models(tmp_path: Path) -> None:
    from allele.store import MetricPoint, open_store

    url = f"sqlite:///{tmp_path / 'rss.db'}"
    mb = 1024.0**2
    line = np.linspace(86.4, 88.1, 25) * mb  # RSS rising page by page: an exact line
    with open_store(url) as st:
        st.write_metric_points(MetricPoint("rss", "agent", (), 1000.0 + 60 * i, float(v))
                               for i, v in enumerate(line))
    res = runner.invoke(app, ["forecast", "rss", "--store", url, "--horizon", "6",
                              "--model", "arima"])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "refused ARIMA(" in text and "zero-width interval" in text
    res = runner.invoke(app, ["forecast", "rss", "--store", url, "--horizon", "6", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    fc = data["forecast"]
    assert fc["model"] == "drift" and "backtest MASE" in data["choice"]
    assert all(b > a for a, b in zip(fc["mean"], fc["mean"][1:], strict=False))
    assert all(u > lo for lo, u in zip(fc["lower"], fc["upper"], strict=True))
    res = runner.invoke(app, ["forecast", "rss", "--store", url, "--horizon", "3"])
    assert res.exit_code == 0 and "- model: drift: backtest MASE" in res.output


def test_predict_a_configuration_from_a_run(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'g.db'}"
    optimum = grid_store(url)
    res = runner.invoke(app, ["predict", "grid", "--store", url, "--params", json.dumps(optimum),
                              "-m", "best_fitness", "-m", "wall_s", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    val = data["validation"]["best_fitness"]
    assert val["mae"] < val["baseline_mae"]
    pred = data["predictions"][0]
    assert pred["best_fitness"]["lower"] < pred["best_fitness"]["mean"] \
        < pred["best_fitness"]["upper"]
    res = runner.invoke(app, ["predict", "grid", "--store", url, "--params",
                              json.dumps({"population": 100})])
    assert res.exit_code != 0 and "give crossover, mutation_rate" in str(res.exception)
    res = runner.invoke(app, ["predict", "grid", "--store", url, "--params", json.dumps(optimum),
                              "-m", "wall_s"])
    assert res.exit_code == 0 and "held-out" in res.output
    # the configuration as key=value and the times in their unit (it printed 0.01706)
    wall = data["predictions"][0]["wall_s"]
    assert "crossover=sbx" in res.output and quantity(wall["mean"], "s") in res.output


def test_a_metric_recorded_per_worker_needs_a_label(tmp_path: Path) -> None:
    from allele.observe.metrics import MetricPoint
    from allele.store import open_store

    url = f"sqlite:///{tmp_path / 'w.db'}"
    rng = np.random.default_rng(3)
    with open_store(url) as st:  # two workers side by side, of very different sizes
        st.write_metric_points(
            MetricPoint("rss", "bench", (("worker", w),), 1000.0 + 5 * i + k, level + rng.normal())
            for k, (w, level) in enumerate((("a", 60.0), ("b", 400.0))) for i in range(300))
    res = runner.invoke(app, ["anomalies", "rss", "--store", url])
    assert res.exit_code != 0
    assert "2 label sets recorded side by side" in str(res.exception)
    assert "--label worker=a" in str(res.exception)
    res = runner.invoke(app, ["anomalies", "rss", "--store", url, "--label", "worker=b",
                              "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["labels"] == {"worker": "b"} and data["anomalies"] == []
    res = runner.invoke(app, ["forecast", "rss", "--store", url, "--label", "worker=a",
                              "--model", "naive", "--horizon", "2", "--json"])
    assert res.exit_code == 0, res.output
    assert 55 < json.loads(res.output)["forecast"]["mean"][0] < 65


def test_points_sharing_a_timestamp_are_averaged_and_said_so(tmp_path: Path) -> None:
    from allele.store import MetricPoint, open_store

    url = f"sqlite:///{tmp_path / 'd.db'}"
    with open_store(url) as st:  # 0 and 100 at every timestamp: the mean, 50, is never observed
        st.write_metric_points([MetricPoint("dups", "c", (), 1.7e9 + i // 2, 100.0 * (i % 2))
                                for i in range(80)])
    res = runner.invoke(app, ["forecast", "dups", "--store", url, "--model", "naive"])
    assert res.exit_code == 0, res.output
    assert ("note: 40 points shared a timestamp with another point of the series; each "
            "timestamp holds their mean") in " ".join(res.output.split())
    res = runner.invoke(app, ["forecast", "dups", "--store", url, "--model", "naive", "--json"])
    assert json.loads(res.output)["merged_points"] == 40
    res = runner.invoke(app, ["anomalies", "dups", "--store", url, "--learn", "30", "--json"])
    assert json.loads(res.output)["merged_points"] == 40


def test_nan_and_infinite_points_are_left_out_and_named(tmp_path: Path) -> None:
    """A stored NaN or inf (a failed scrape) no longer fails forecast and anomalies with "values
    contains NaN": the point is left out, and the output says how many and when."""
    from allele.store import MetricPoint, open_store

    url = f"sqlite:///{tmp_path / 'n.db'}"
    rng = np.random.default_rng(4)
    bad = {50: float("nan"), 120: float("inf"), 121: float("nan")}
    with open_store(url) as st:
        st.write_metric_points([MetricPoint("gaps", "c", (), 1.7e9 + 60 * i,
                                            bad.get(i, 10.0 + rng.normal()))
                                for i in range(400)])
        st.write_metric_points([MetricPoint("void", "c", (), 1.7e9 + i, float("nan"))
                                for i in range(5)])
    for cmd in (["forecast", "gaps", "--model", "naive"], ["anomalies", "gaps"]):
        res = runner.invoke(app, [*cmd, "--store", url])
        assert res.exit_code == 0, res.output
        text = " ".join(res.output.split())
        # the first three named by time: 50, 120 and 121 minutes in
        first = [analyze._when(1.7e9 + 60 * i, analyze._time_format([1.7e9, 1.7e9 + 60]))
                 for i in bad]
        assert f"note: 3 points left out: value NaN or infinite (at {', '.join(first)})" in text
        res = runner.invoke(app, [*cmd, "--store", url, "--json"])
        assert json.loads(res.output)["left_out_points"] == 3
    assert "0 anomalous points of 397 " in " ".join(runner.invoke(
        app, ["anomalies", "gaps", "--store", url]).output.split())
    res = runner.invoke(app, ["anomalies", "void", "--store", url])
    assert res.exit_code != 0
    assert "every one of the 5 points of metric 'void' is NaN or infinite" in str(res.exception)


def test_forecast_findings_read_in_the_metrics_own_unit(tmp_path: Path) -> None:
    """A memory metric named ``*_bytes``: the findings speak MB without --unit."""
    from allele.observe.metrics import MetricPoint
    from allele.store import open_store

    url = f"sqlite:///{tmp_path / 'r.db'}"
    rng = np.random.default_rng(0)
    t = np.arange(300)
    y = (200 + 0.4 * np.minimum(t, 120) + rng.normal(0, 1.5, 300)) * 2.0**20
    y[220:] += 30 * 2.0**20
    with open_store(url) as st:
        st.write_metric_points(MetricPoint("rss_bytes", "runner", (), 1000.0 + 5 * i, float(v))
                               for i, v in enumerate(y))
    res = runner.invoke(app, ["forecast", "rss_bytes", "--store", url, "--horizon", "12"])
    assert res.exit_code == 0, res.output
    text = " ".join(res.output.split())
    assert "level shift at 220: 251 MiB -> 281 MiB (trend-adjusted, step +" in text
    assert text.count("level shift") == 1


def test_rca_telemetry_mode_ends_with_the_answer_and_refuses_an_at_outside(
        tmp_path: Path) -> None:
    """The table of causes ended with nothing after it (the answer was only in JSON), and
    ``--at`` 9e12 analysed the last point."""
    url = f"sqlite:///{tmp_path / 'r.db'}"
    cause, target, other_metrics, at = telemetry_trial_store(url)
    args = ["rca", "--target", target, "--candidates", ",".join(other_metrics), "--store", url]
    res = runner.invoke(app, [*args, "--at", str(100.0 + 5 * at)])
    assert res.exit_code == 0, res.output
    message = json.loads(runner.invoke(app, [*args, "--at", str(100.0 + 5 * at),
                                             "--json"]).stdout)["message"]
    assert message.startswith(f"{cause} moved first: ")
    table, _, answer = res.stdout.rpartition("┘")
    assert cause in table
    assert " ".join(answer.split()).endswith(f"cause: {' '.join(message.split())}")
    res = runner.invoke(app, [*args, "--at", "9e12"])
    assert res.exit_code != 0
    last = 100.0 + 5 * (len(root_cause_trial_points(url, target)) - 1)
    assert str(res.exception) == (f"--at 9000000000000 lies outside the time range of "
                                  f"{target!r}, 100 to {last:.0f} "
                                  f"({len(root_cause_trial_points(url, target))} points): "
                                  "give a time in it")


def root_cause_trial_points(url: str, metric: str) -> list[float]:
    from allele.store import open_store

    with open_store(url, read_only=True) as st:
        return [p.timestamp for p in st.read_metric_points(metric, None)]


def test_learned_detectors_alone_warn_that_they_only_compare(tmp_path: Path) -> None:
    """The help offered iforest and ocsvm as detectors while the docs call them a known
    defect (they flag noise and miss a 15-sd spike): the help and a run now say so."""
    res = runner.invoke(app, ["anomalies", "--help"])
    text = " ".join(res.output.replace("│", " ").split())
    assert "iforest and ocsvm alone only compare detectors" in text
    url = _store_with_series(tmp_path)
    for method in ("iforest", "ocsvm"):
        res = runner.invoke(app, ["anomalies", "gen_time", "--store", url, "--method", method,
                                  "--json"])
        assert res.exit_code == 0, res.output
        assert json.loads(res.stdout)["method"] == method  # stdout stays JSON
        assert " ".join(res.stderr.split()) == (
            f"warning: {method} alone gives wrong answers (it flags noise and misses large "
            "spikes): use it only to compare detectors, and robust (the default) or ensemble "
            "to flag anomalies")
    for method in ("robust", "ensemble"):
        res = runner.invoke(app, ["anomalies", "gen_time", "--store", url, "--method", method])
        assert res.exit_code == 0 and res.stderr == ""


def test_predict_marks_configurations_outside_the_measured_cells(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Beyond the cells a Gaussian process returns to its prior mean (reservoirs of 400 and 5000
    were predicted faster than 200, with no warning): each row says when it extrapolates."""
    url = f"sqlite:///{tmp_path / 'g.db'}"
    optimum = grid_store(url)  # population measured at 50..400
    confs = [optimum, {**optimum, "population": 2000}]
    args = ["predict", "grid", "--store", url, "--params", json.dumps(confs), "-m", "wall_s"]
    res = runner.invoke(app, [*args, "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)["predictions"]
    assert [(r["extrapolates"], r["extrapolation"]) for r in rows] == [
        (False, []), (True, ["population=2000 outside the measured [50, 400]"])]
    warning = ("warning: extrapolated (marked): population=2000 outside the measured [50, "
               "400]; no cell checks a prediction there, and beyond the cells a Gaussian "
               "process returns to their mean")
    assert " ".join(res.stderr.split()) == warning
    monkeypatch.setattr(analyze.console, "width", 200)  # one table row per line
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.stdout.splitlines() if "crossover=sbx" in ln]
    assert len(lines) == 2
    assert "extrapolated" not in lines[0] and "population=250" in lines[0]
    assert "population=2000 (extrapolated)" in lines[1]
    assert " ".join(res.stderr.split()) == warning


@pytest.mark.parametrize(("args", "message"), [
    (["recommend", "grid", "--current", "[1, 2]"],
     "--current must be a JSON object of parameters, e.g. '{\"a\": 1}', not list [1, 2]"),
    (["recommend", "grid", "--current", "null"], "--current must be a JSON object"),
    (["predict", "grid", "--params", "[]"],
     "--params must be a JSON object or a non-empty list of objects, got []"),
    (["predict", "grid", "--params", '[{"population": 50}, 3]'],
     "--params must be a JSON object or a non-empty list of objects"),
])
def test_json_options_of_the_wrong_shape_are_user_errors(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
        message: str) -> None:
    """A list for --current reached ``.get`` and an empty --params list reached the model (0
    samples): internal errors (exit 3) where a one-line error naming the option belongs."""
    from allele.cli import main

    url = f"sqlite:///{tmp_path / 'g.db'}"
    grid_store(url)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(["analyze", *args, "--store", url])
    err = " ".join(capsys.readouterr().err.split())
    assert exc.value.code == 2, err
    assert err.startswith(f"error: {message}"), err
