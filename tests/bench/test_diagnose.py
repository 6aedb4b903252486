from __future__ import annotations

import statistics

import numpy as np
import pytest

from allele.analytics.rca import anomaly_onset, explain_parameter_change
from allele.analytics.synthetic_answers import quick_matrix_trial
from allele.bench.diagnose import (
    _seed_pairs,
    forecast_metric,
    metric_anomalies,
    metric_root_causes,
    metric_series,
    parse_labels,
    recommendations,
    root_causes,
)
from allele.errors import AnalyticsError
from allele.observe.metrics import MetricPoint
from allele.store import open_store
from allele.store.model import CellResult, Sample
from tests.bench.diagnose_stores import (
    common_shift_store,
    grid_store,
    quick_store,
    regression_store,
    series_store,
    store_runs,
    telemetry_trial_store,
)


def test_metric_series_is_one_value_per_timestamp_of_one_component(sqlite_url: str) -> None:
    with open_store(sqlite_url) as st:
        st.write_metric_points([MetricPoint("m", "a", (), 1.0, 5.0),
                                MetricPoint("m", "a", (), 2.0, 3.0),
                                MetricPoint("m", "b", (), 1.0, 7.0)])
        s = metric_series(st, "m", "a")
        assert (s.component, s.timestamps, s.values, s.labels) == ("a", [1.0, 2.0], [5.0, 3.0],
                                                                    {})
        with pytest.raises(AnalyticsError, match="several components"):
            metric_series(st, "m")
        with pytest.raises(AnalyticsError, match="no points of metric 'x'"):
            metric_series(st, "x")


def test_label_sets_side_by_side_are_refused_and_one_in_turn_is_joined(sqlite_url: str) -> None:
    # Two runs, each with the runner and one worker recording the same metric at the same time:
    # averaging them made one series out of processes of different sizes.
    def pts(run: str, worker: str, t0: float, level: float) -> list[MetricPoint]:
        return [MetricPoint("rss", "bench", (("run", run), ("worker", worker)), t0 + i,
                            level + i) for i in range(5)]

    with open_store(sqlite_url) as st:
        st.write_metric_points(pts("r1", "runner", 0.0, 100.0) + pts("r1", "7", 0.5, 400.0)
                               + pts("r2", "runner", 10.0, 200.0) + pts("r2", "9", 10.5, 400.0))
        with pytest.raises(AnalyticsError, match=r"4 label sets recorded side by side .*"
                           r"worker: 7, 9, runner.*--label worker=runner"):
            metric_series(st, "rss")
        s = metric_series(st, "rss", labels={"worker": "runner"})  # the two runs in turn
        assert s.timestamps == [0, 1, 2, 3, 4, 10, 11, 12, 13, 14]
        assert s.values == [100, 101, 102, 103, 104, 200, 201, 202, 203, 204]
        assert s.labels == {"worker": "runner"}
        one = metric_series(st, "rss", labels={"worker": "7"})
        assert one.labels == {"run": "r1", "worker": "7"} and one.values[0] == 400.0
        with pytest.raises(AnalyticsError, match="side by side"):
            metric_series(st, "rss", labels={"run": "r1"})  # still the runner beside worker 7
        with pytest.raises(AnalyticsError, match="no points of metric 'rss' worker=8"):
            metric_series(st, "rss", labels={"worker": "8"})
    assert parse_labels(["worker=runner", " run = r1 "]) == {"worker": "runner", "run": "r1"}
    with pytest.raises(AnalyticsError, match="KEY=VALUE"):
        parse_labels(["worker"])


def test_forecast_and_anomalies_of_a_stored_series(sqlite_url: str) -> None:
    series_store(sqlite_url)
    with open_store(sqlite_url) as st:
        fc = forecast_metric(st, "gen_time", model="naive", horizon=5)
        assert fc.forecast.model == "naive" and fc.forecast.horizon == 5
        assert fc.series.component == "evolution"
        assert any("seasonal with period 48" in f for f in fc.findings)
        with pytest.raises(AnalyticsError, match="unknown model"):
            forecast_metric(st, "gen_time", model="prophet")
        found = metric_anomalies(st, "gen_time", method="robust")
    rows = found.rows()
    assert rows and all(0.5 < r["score"] <= 1 for r in rows)
    assert found.to_dict()["anomalies"] == rows


def test_root_causes_names_the_slow_parameter_and_the_environment(sqlite_url: str) -> None:
    cause = regression_store(sqlite_url)
    with open_store(sqlite_url) as st:
        res = root_causes(st.load_run("base"), st.load_run("new"))
    assert res.common_cells >= 4 and (res.base.name, res.head.name) == ("base", "new")
    assert res.causes[0].kind == "parameter" and res.causes[0].name == cause
    assert (res.causes[-1].kind, res.causes[-1].name) == ("environment", "numpy")


def test_root_causes_say_when_every_cell_moved_alike(sqlite_url: str) -> None:
    common_shift_store(sqlite_url)
    with open_store(sqlite_url) as st:
        causes = root_causes(st.load_run("calm"), st.load_run("busy")).causes
    assert causes[0].kind == "shift" and causes[0].score > 0.9
    assert all(c.name != "target" for c in causes)  # one target: not a candidate
    assert [c.name for c in causes if c.kind == "environment"] == ["load.1m"]


def test_root_causes_rank_parameters_over_four_common_cells_only(sqlite_url: str) -> None:
    cells = [{"population_size": n} for n in (50, 250, 1000)]
    store_runs(sqlite_url, cells, [("a", [1.0, 2.0, 3.0], {"python": "3.11"}),
                                   ("b", [2.0, 2.0, 3.0], {"python": "3.11"}),
                                   ("c", [2.0, 2.0, 3.0], {"python": "3.12"})])
    with open_store(sqlite_url) as st:
        a, b, c = (st.load_run(n) for n in "abc")
    quiet = root_causes(a, b)  # too few cells and nothing else: an answer, as with a, c
    assert (quiet.status, quiet.causes, quiet.common_cells) == ("no clear cause", [], 3)
    assert quiet.message == ("no clear cause: 3 common cells with 'wall_s' are too few to test "
                             "the parameters (need 4); the environments are identical")
    res = root_causes(a, c)
    assert res.common_cells == 3 and [x.kind for x in res.causes] == ["environment"]
    assert res.message.startswith("no clear cause: 3 common cells") and "identical" not in (
        res.message)


def test_root_causes_answer_when_nothing_changed_and_refuse_no_common_cell(
        sqlite_url: str) -> None:
    """Two runs with the same values in six cells: "no clear cause", not an error saying that
    six cells are fewer than four. Runs that share no cell still have nothing to compare."""
    cells = [{"population_size": n, "selection": s} for n in (50, 250, 1000)
             for s in ("rank", "tournament")]
    values = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    store_runs(sqlite_url, cells, [("a", values, {"python": "3.11"}),
                                   ("b", values, {"python": "3.11"})])
    store_runs(sqlite_url, [{"population_size": 7}], [("other", [1.0], {"python": "3.12"})])
    with open_store(sqlite_url) as st:
        a, b, other = (st.load_run(n) for n in ("a", "b", "other"))
    res = root_causes(a, b)
    assert (res.status, res.causes, res.common_cells) == ("no clear cause", [], 6)
    assert res.message.startswith("no clear cause: no parameter is testable on 6 cells (")
    assert res.message.endswith("; the environments are identical")
    assert res.to_dict()["status"] == "no clear cause"
    with pytest.raises(AnalyticsError, match="no common cells with 'wall_s'"):
        root_causes(a, other)  # the environments differ, but no cell is shared


def test_metric_root_causes_name_the_metric_that_moved_first(sqlite_url: str) -> None:
    cause, target, others, at = telemetry_trial_store(sqlite_url)
    with open_store(sqlite_url) as st:
        res = metric_root_causes(st, target, others, at=100.0 + 5 * at)
    assert res.index == at and res.timestamp == 100.0 + 5 * at
    assert res.causes[0].name == cause


def test_metric_root_causes_read_a_candidate_in_the_target_component(sqlite_url: str) -> None:
    """``--component`` chooses the target: a candidate recorded by several components is read
    in the target's (it refused, naming the components, as if the option were the
    candidate's), and one the target's component never recorded still needs a choice."""
    def pts(name: str, comp: str, values: list[float]) -> list[MetricPoint]:
        return [MetricPoint(name, comp, (), 100.0 + i, v) for i, v in enumerate(values)]

    flat, step = [1.0 + 0.01 * (i % 3) for i in range(80)], [1.0] * 60 + [9.0] * 20
    late = [1.0 + 0.01 * (i % 3) for i in range(65)] + [30.0] * 15
    with open_store(sqlite_url) as st:
        st.write_metric_points(pts("tgt", "a", late) + pts("tgt", "b", flat)
                               + pts("cand", "a", step) + pts("cand", "b", flat)
                               + pts("elsewhere", "b", flat) + pts("elsewhere", "c", flat))
        res = metric_root_causes(st, "tgt", ["cand"], "a", at=100.0 + 65)
        assert [(c.name, c.kind) for c in res.causes] == [("cand", "metric")]  # a's step
        quiet = metric_root_causes(st, "tgt", ["cand"], "b", at=100.0 + 65)
        assert all(c.kind != "metric" for c in quiet.causes)  # b's flat series
        with pytest.raises(AnalyticsError, match=r"'elsewhere' has several components \(b, c\)"):
            metric_root_causes(st, "tgt", ["elsewhere"], "a", at=100.0 + 65)


def test_metric_root_causes_learn_as_anomalies_do(sqlite_url: str) -> None:
    """Without ``at`` the anomaly is found with :func:`auto_learn`'s learning period, as by
    ``analyze anomalies``: a 120-point series was refused as shorter than 150 points."""
    rng = np.random.default_rng(3)
    target = rng.normal(100.0, 1.0, 120)
    target[100:] += 25.0
    cause = rng.normal(5.0, 0.1, 120)
    cause[96:] += 3.0
    with open_store(sqlite_url) as st:
        st.write_metric_points([MetricPoint(name, "c", (), 100.0 + i, float(v))
                                for name, vs in (("t", target), ("q", cause))
                                for i, v in enumerate(vs)])
        found = metric_anomalies(st, "t").detection.anomalies()
        res = metric_root_causes(st, "t", ["q"])
    assert found and res.index == anomaly_onset(found) and res.index >= 100
    assert res.causes[0].name == "q"


def test_recommendations_per_component(sqlite_url: str) -> None:
    optimum = grid_store(sqlite_url)
    with open_store(sqlite_url) as st:
        record = st.load_run("grid")
    current = {"population": 100, "mutation_rate": 0.05, "crossover": "sbx"}
    (advice,) = recommendations(record, current=current)
    assert advice.component == "evolution" and advice.current == current
    assert advice.recommendations[0].params["population"] > 100
    assert any(p == optimum for p, _, _ in advice.pareto)
    (cheapest,) = recommendations(record)  # default: the cheapest measured cell
    costs = {tuple(sorted(c.params.items())): statistics.median(c.values("wall_s"))
             for c in record.cells}
    assert costs[tuple(sorted(cheapest.current.items()))] == min(costs.values())
    assert recommendations(record, target="kraken") == []
    # a quality the run did not record: the error names what it did, quality candidates first
    with pytest.raises(AnalyticsError) as err:
        recommendations(record, quality="accuracy")
    have = sorted({m for c in record.cells for m in c.metrics()} - {"loops"})
    assert str(err.value).startswith("no cell has both 'accuracy' and 'wall_s'; run 'grid' "
                                     "recorded " + ", ".join(have))


def test_recommend_follows_the_runs_declared_direction() -> None:
    """A quality declared higher-is-better whose name reads as a time (``battery_life_s``):
    the optimizer maximises it, as a comparison of the same run would read it (it minimised
    it, from the name)."""
    from allele.store.model import RunInfo, RunRecord, cell_key

    cells = []
    for mode, life in (("a", 10.0), ("b", 20.0), ("c", 30.0), ("d", 40.0), ("e", 25.0)):
        params = {"mode": mode}
        samples = [s for seed in range(4) for s in (
            Sample("battery_life_s", life * (1 + seed / 1000), seed, 0),
            Sample("wall_s", 0.01 * (1 + seed / 1000), seed, 0))]
        cells.append(CellResult(cell_key("m", params), "m", params, "ok", samples))
    info = RunInfo(id="r", name="r", spec_name="s", target="m", status="finished",
                   created_at=0.0, spec={"metrics": {"battery_life_s": {
                       "direction": "higher", "unit": "s"}}})
    (advice,) = recommendations(RunRecord(info, cells), quality="battery_life_s",
                                current={"mode": "a"})
    assert advice.recommendations and advice.recommendations[0].params == {"mode": "d"}


def test_recommendations_can_answer_that_nothing_is_reliably_better(sqlite_url: str) -> None:
    grid_store(sqlite_url, null=True, name="null")
    grid_store(sqlite_url, seeds=1, name="one-seed")
    with open_store(sqlite_url) as st:
        null, one = st.load_run("null"), st.load_run("one-seed")
    (advice,) = recommendations(null)
    assert advice.recommendations == []
    assert advice.advice.status == "no reliably better configuration"
    assert advice.to_dict()["message"].startswith("no reliably better configuration")
    assert "cross-validated RMSE" in advice.advice.message
    with pytest.raises(AnalyticsError, match="2 or more seeds"):
        recommendations(one)


def test_root_causes_give_a_verdict(sqlite_url: str) -> None:
    cause = regression_store(sqlite_url)
    with open_store(sqlite_url) as st:
        res = root_causes(st.load_run("base"), st.load_run("new"))
    assert res.status == "cause" and res.message.startswith(cause)
    assert res.to_dict()["status"] == "cause"


def test_seed_pairs_match_seeds_across_runs() -> None:
    base = CellResult("k", "evolution", {}, "ok",
                      [Sample("wall_s", v, sd, rep) for sd, rep, v in
                       ((0, 0, 1.0), (0, 1, 3.0), (1, 0, 2.0), (2, 0, 4.0))]
                      + [Sample("cpu_user_s", 9.0, 1, 0)])
    head = CellResult("k", "evolution", {}, "ok",
                      [Sample("wall_s", v, sd, 0) for sd, v in ((3, 8.0), (2, 5.0), (0, 1.5))])
    # seeds 0 and 2 in both runs (seed 0: the median of its two repeats), in seed order
    assert _seed_pairs(base, head, "wall_s") == [(2.0, 1.5), (4.0, 5.0)]
    other = CellResult("k", "evolution", {}, "ok", [Sample("wall_s", 6.0, 7, 0)])
    assert _seed_pairs(base, other, "wall_s") == [(2.5, 6.0)]  # no shared seed: the medians
    assert _seed_pairs(base, head, "peak_rss_mb") == []


def test_root_causes_test_a_small_matrix_on_paired_seeds(sqlite_url: str) -> None:
    """The quick matrix: 10 cells, 12 seeds each, one level four times slower. The parameters
    see one row per cell and seed, so every candidate (fewer than 1000 arrangements) gets the
    weighted F test, with the figures of the analytics on the same seed-level rows."""
    cause = quick_store(sqlite_url, seed=0, shift=3.0)
    with open_store(sqlite_url) as st:
        res = root_causes(st.load_run("quick-base"), st.load_run("quick-head"))
    params = {c.name: c for c in res.causes if c.kind == "parameter"}
    assert res.common_cells == 10
    assert set(params) == {"target", "population_size", "selection", "reservoir_size",
                           "spectral_radius"}
    assert all(c.details["test"] == "weighted F" and c.details["replicates"] == 12
               for c in params.values())
    rows, before, after, _ = quick_matrix_trial(0, shift=3.0)
    direct = explain_parameter_change(rows, before, after)
    assert res.status == direct.status and res.message.startswith(direct.message)
    for c in direct.candidates:
        assert params[c.name].details["p"] == pytest.approx(c.details["p"], rel=1e-9)
    assert params[str(cause)].details["p"] == min(c.details["p"] for c in params.values())
