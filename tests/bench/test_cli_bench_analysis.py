"""``allele bench compare / regressions / calibrate / report / import`` on a real SQLite store."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import typer
from markdown_it import MarkdownIt
from typer.testing import CliRunner

from allele.bench.select import cell_matcher, parse_since
from allele.cli.bench_analysis import register
from allele.errors import ConfigError
from allele.store import open_store
from allele.store.model import CellResult, RunRecord, cell_key
from tests.bench.test_report import history, make_run


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:  # a group, as `allele bench` is
        pass

    register(app)
    return app


def _save(url: str, runs: list[RunRecord]) -> None:
    with open_store(url) as st:
        for run in runs:
            run_id = st.create_run(run.info.name, run.info.spec_name, run.info.target,
                                   {"spec": "synthetic"}, run.info.environment)
            st.save_cells(run_id, run.cells)
            st.finish_run(run_id, "finished")
            time.sleep(0.002)  # distinct created_at, oldest first


@pytest.fixture
def filled(sqlite_url: str) -> str:
    _save(sqlite_url, history())
    return sqlite_url


def test_compare_exit_codes_and_json(filled: str) -> None:
    runner = CliRunner()
    app = _app()
    # run-0 -> run-9: population >= 500 is 20% slower (8 cells)
    res = runner.invoke(app, ["compare", "run-0", "run-9", "--store", filled, "--json"])
    assert res.exit_code == 1, res.output
    doc = json.loads(res.stdout)
    regressed = [r for r in doc["rows"] if r["verdict"] == "regressed"]
    assert len(regressed) == 8
    assert {r["params"]["population_size"] for r in regressed} == {500, 1000}
    assert all(r["metric"] == "wall_s" and 1.15 < r["ratio"] < 1.25 for r in regressed)
    assert all(r["floor"] >= 0.05 for r in doc["rows"])  # each row's floor is reported
    assert [f["head_status"] for f in doc["failures"]] == ["failed"]
    res = runner.invoke(app, ["compare", "run-0", "run-9", "--store", filled,
                              "--fail-on", "never"])
    assert res.exit_code == 0 and "regressed" in res.stdout
    # two runs before the step: nothing regressed
    res = runner.invoke(app, ["compare", "run-1", "run-2", "--store", filled])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["compare", "run-1", "run-2", "--store", filled,
                              "--fail-on", "inconclusive", "--json"])
    counts = json.loads(res.stdout)["counts"]
    assert res.exit_code == (1 if counts["inconclusive"] else 0)
    assert counts["regressed"] == 0 and counts["improved"] == 0
    # user errors: one line, exit 2
    res = runner.invoke(app, ["compare", "run-1", "nope", "--store", filled])
    assert res.exit_code == 2 and "no run 'nope'" in res.output
    res = runner.invoke(app, ["compare", "run-1", "run-1", "--store", filled])
    assert res.exit_code == 2 and "same run" in res.output


def test_compare_warns_when_one_run_started_on_a_busier_machine(sqlite_url: str) -> None:
    runs = history()
    for run, load in zip(runs, [0.1] * 9 + [3.2], strict=True):
        run.info.environment["load"] = {"1m": load, "5m": load, "15m": load}
    _save(sqlite_url, runs)
    res = CliRunner().invoke(_app(), ["compare", "run-0", "run-9", "--store", sqlite_url,
                                      "--fail-on", "never"])
    assert res.exit_code == 0, res.output
    assert "warning: the machine was busier when run-9 started (load average 3.20" in res.stderr
    res = CliRunner().invoke(_app(), ["compare", "run-0", "run-8", "--store", sqlite_url,
                                      "--fail-on", "never"])
    assert "busier" not in res.stderr


def _other_cells(run: RunRecord) -> RunRecord:
    """``run`` with every cell moved to another target: no cell key in common with it."""
    cells = [CellResult(cell_key("kraken", c.params), "kraken", c.params, c.status, c.samples,
                        c.error) for c in run.cells[:5]]
    return RunRecord(run.info, cells)


def test_runs_that_share_no_cell_are_an_error_not_a_pass(filled: str, tmp_path: Path) -> None:
    """A comparison of nothing must not pass a gate: `compare` and `report --baseline` say
    that the runs share no cell, with each one's count; an automatic baseline sharing no cell
    gives a report without a comparison, saying why."""
    _save(filled, [_other_cells(make_run("other", 20, np.random.default_rng(3)))])
    runner = CliRunner()
    res = runner.invoke(_app(), ["compare", "run-9", "other", "--store", filled])
    assert res.exit_code == 2, res.output
    assert ("error: runs run-9 and other share no cell (run-9 has 20, other has 5): nothing "
            "to compare") in res.output
    res = runner.invoke(_app(), ["compare", "run-9", "other", "--json", "--fail-on", "never",
                                 "--store", filled])
    assert res.exit_code == 2 and res.stdout == "" and "share no cell" in res.stderr
    out = tmp_path / "r.html"
    res = runner.invoke(_app(), ["report", "other", "-b", "run-9", "-o", str(out),
                                 "--store", filled])
    assert res.exit_code == 2 and "--baseline: runs run-9 and other share no cell" in res.output
    assert not out.exists()
    res = runner.invoke(_app(), ["report", "run-9", "-b", "run-9", "-o", str(out),
                                 "--store", filled])  # it wrote "no regression ... unchanged"
    assert res.exit_code == 2 and "--baseline: the report's own run (run-9)" in res.output
    assert not out.exists()
    res = runner.invoke(_app(), ["report", "other", "-o", str(out), "--store", filled])
    assert res.exit_code == 0, res.output
    assert "note: the previous run of the spec: runs run-9 and other share no cell" in res.output
    assert "Comparison with" not in out.read_text()


def test_failed_cells_are_counted_by_where_they_failed(sqlite_url: str) -> None:
    """The footer says whether the cells failed in both runs or in one, not always 'one'."""
    rng = np.random.default_rng(5)
    _save(sqlite_url, [make_run("a", 0, rng, fail=True), make_run("b", 1, rng, fail=True),
                       make_run("c", 2, rng)])
    res = CliRunner().invoke(_app(), ["compare", "a", "b", "--store", sqlite_url])
    assert res.exit_code == 0, res.output
    assert "1 cell failed, not compared (1 in both runs): evolution|" in res.output
    assert "(failed→failed)" in res.output and "in one run" not in res.output
    res = CliRunner().invoke(_app(), ["compare", "b", "c", "--store", sqlite_url])
    assert "1 cell failed, not compared (1 in one run): evolution|" in res.output
    assert "(failed→ok)" in res.output and "HEAD broke" not in res.output
    assert res.exit_code == 0, res.output  # HEAD fixed it: no gate to fail


def test_a_cell_head_broke_fails_the_gate(sqlite_url: str) -> None:
    """ok in BASE, failed in HEAD: the gate fails by default (it passed with a footer line as
    the only trace), says why, and lists the cell as broken in --json; --fail-on never passes."""
    rng = np.random.default_rng(6)
    _save(sqlite_url, [make_run("a", 0, rng), make_run("b", 1, rng, fail=True)])
    res = CliRunner().invoke(_app(), ["compare", "a", "b", "--store", sqlite_url])
    assert res.exit_code == 1, res.output
    text = " ".join(res.output.split())
    assert "(ok→failed) HEAD broke 1 cell that passed in BASE: the gate fails on it." in text
    res = CliRunner().invoke(_app(), ["compare", "a", "b", "--store", sqlite_url, "--json"])
    assert res.exit_code == 1
    doc = json.loads(res.stdout)
    assert doc["broken"] == [f["key"] for f in doc["failures"]] and len(doc["broken"]) == 1
    assert doc["counts"]["regressed"] == 0  # no metric row moved: the broken cell alone fails
    res = CliRunner().invoke(_app(), ["compare", "a", "b", "--store", sqlite_url,
                                      "--fail-on", "never"])
    assert res.exit_code == 0


@pytest.mark.parametrize("command", [["compare", "run-1", "run-2"], ["report", "run-2"],
                                     ["calibrate", "missing.yaml"], ["ab", "missing.yaml"]])
@pytest.mark.parametrize("floor", ["-1", "1", "5", "nan"])
def test_floor_outside_0_1_is_a_usage_error(filled: str, command: list[str],
                                            floor: str) -> None:
    """Every command with --floor refuses a floor outside [0, 1) in one line, before it does
    anything (-1 divided by zero and gave "improved" verdicts on +0.0% rows)."""
    res = CliRunner().invoke(_app(), [*command, "--floor", floor, "--store", filled])
    assert res.exit_code == 2, res.output
    assert "Invalid value for '--floor': a fraction in [0, 1) (0.05 is 5%), got" in res.output


def test_regressions_command(filled: str) -> None:
    runner = CliRunner()
    app = _app()
    res = runner.invoke(app, ["regressions", "--store", filled, "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["runs"] == 10
    (group,) = doc["groups"]
    assert (group["kind"], group["metric"], group["run"]["name"]) == ("regression", "wall_s",
                                                                      "run-6")
    assert group["attribution"] == "population_size >= 500"
    assert group["cells_changed"] == 8
    res = runner.invoke(app, ["regressions", "--store", filled, "--fail"])
    assert res.exit_code == 1 and "population_size >= 500" in res.stdout
    res = runner.invoke(app, ["regressions", "--store", filled, "--json",
                              "--cell", "population_size=50"])
    assert json.loads(res.stdout)["groups"] == []
    res = runner.invoke(app, ["regressions", "--store", filled, "--json", "--since", "run-7"])
    assert json.loads(res.stdout)["groups"] == []
    res = runner.invoke(app, ["regressions", "--store", filled, "--since", "yesterday-ish"])
    assert res.exit_code == 2 and "--since" in res.output


def test_regressions_on_a_history_too_short_is_an_error_not_none_found(
        tmp_path: Path, filled: str) -> None:
    """Five runs cannot hold a change point (a cell needs two segments of 3): the command
    says so and exits 2 instead of reporting 'no change point'; so does a filter that
    matches no series."""
    short = f"sqlite:///{tmp_path / 'short.db'}"
    _save(short, history(n=5))
    runner = CliRunner()
    for extra in ([], ["--json"], ["--fail"]):
        res = runner.invoke(_app(), ["regressions", "--store", short, *extra])
        assert res.exit_code == 2, res.output
        assert res.stdout == ""
        assert ("error: the history is too short for change points: 5 runs, and a cell needs "
                "at least 6 runs") in " ".join(res.stderr.split())
    res = runner.invoke(_app(), ["regressions", "--store", filled, "--runs", "4"])
    assert res.exit_code == 2 and "too short for change points: 4 runs" in res.output
    res = runner.invoke(_app(), ["regressions", "--store", filled, "-c", "population_size=7"])
    assert res.exit_code == 2
    assert "no cell metric series of the 10 runs matches --cell / --metric" in res.output


def test_report_command_html_and_markdown(filled: str, tmp_path: Path) -> None:
    runner = CliRunner()
    app = _app()
    out = tmp_path / "r" / "report.html"
    res = runner.invoke(app, ["report", "run-9", "--baseline", "run-0", "-o", str(out),
                              "--store", filled])
    assert res.exit_code == 0, res.output
    text = out.read_text()
    assert text.startswith("<!DOCTYPE html>") and "Comparison with run-0" in text
    assert "population_size &gt;= 500" in text
    md = tmp_path / "report.md"
    res = runner.invoke(app, ["report", "latest", "-b", "run-0", "--format", "markdown",
                              "-o", str(md), "--store", filled])
    assert res.exit_code == 0, res.output
    tokens = MarkdownIt("commonmark").enable("table").parse(md.read_text())
    assert sum(t.type == "table_open" for t in tokens) == 4
    assert "## Allele benchmark: `run-9`" in md.read_text()


def test_import_command(sqlite_url: str, tmp_path: Path) -> None:
    doc = {"datetime": "2026-01-01T00:00:00+00:00", "version": "5.1.0", "machine_info": {},
           "commit_info": {"id": "abc"},
           "benchmarks": [{"name": "test_a", "fullname": "t.py::test_a", "params": None,
                           "param": None, "group": None,
                           "stats": {"data": [1.0, 1.1, 0.9, 1.05]}}]}
    path = tmp_path / "0001_abc.json"
    path.write_text(json.dumps(doc))
    runner = CliRunner()
    res = runner.invoke(_app(), ["import", str(path), "--store", sqlite_url])
    assert res.exit_code == 0, res.output
    assert "imported run pytest-0001_abc" in res.output
    with open_store(sqlite_url) as st:
        run = st.load_run("pytest-0001_abc")
    assert run.cells[0].values("wall_s") == [1.0, 1.1, 0.9, 1.05]
    assert run.info.environment["commit_info"] == {"id": "abc"}
    res = runner.invoke(_app(), ["import", str(tmp_path / "missing.json"), "--store",
                                 sqlite_url])
    assert res.exit_code == 2 and "no such file" in res.output


def test_calibrate_runs_k_aa_pairs(sqlite_url: str, tmp_path: Path) -> None:
    spec = tmp_path / "aa.yaml"
    spec.write_text(
        "name: aa\n"
        "target: allele.bench.targets:work\n"
        "isolation: inline\n"
        "seeds: 3\n"
        "repeats: 2\n"
        # calls of about a millisecond: a calibrated inner loop could land on another count in
        # another run (and the pair would skip that cell), so the count is pinned
        "inner_loops: 1\n"
        "matrix: {n: [5000, 10000, 20000]}\n")
    runner = CliRunner()
    res = runner.invoke(_app(), ["calibrate", str(spec), "--pairs", "3", "--store", sqlite_url,
                                 "--executor", "inline", "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert len(doc["pairs"]) == 3 and 0 <= doc["flagged_pairs"] <= 3
    lo, hi = doc["rate_ci"]
    assert lo <= doc["rate"] <= hi and hi > 0.25  # three pairs say little: the CI says so
    (target,) = doc["targets"]
    assert target["target"] == "allele.bench.targets:work" and target["cells"] == 3
    assert target["comparisons"] >= 3 * 3 * 4  # pairs x cells x (wall, cpu, rss, checksum)
    # timings are this machine's noise; the checksum is deterministic per seed and must never
    # be flagged
    by_metric = target["false_positives_by_metric"]
    assert by_metric["checksum"] == 0 and "wall_s" in by_metric
    assert sum(by_metric.values()) == target["false_positives"]
    spreads = {(s["params"]["n"], s["metric"]): s for s in doc["spreads"]}
    assert spreads[(20000, "wall_s")]["runs"] == 6 and spreads[(20000, "wall_s")]["spread"] > 0
    assert spreads[(20000, "checksum")]["spread"] == 0.0
    with open_store(sqlite_url) as st:
        names = sorted(r.name for r in st.list_runs())
    assert len(names) == 6 and names[0].startswith("calibrate-aa-") and names[0].endswith("-1a")
    res = runner.invoke(_app(), ["calibrate", str(spec), "--pairs", "1", "--store", sqlite_url,
                                 "--executor", "inline"])
    assert res.exit_code == 0 and "pairs with any false verdict" in res.output
    # a bad --q is refused before any run: it used to end the first A/A pair, minutes later
    res = runner.invoke(_app(), ["calibrate", str(spec), "--pairs", "2", "--q", "5",
                                 "--store", sqlite_url, "--executor", "inline"])
    assert res.exit_code == 2 and "q must be in (0, 1), got 5.0" in res.output
    with open_store(sqlite_url) as st:
        assert len(st.list_runs()) == 8  # the six above and the pair of --pairs 1; none new


def test_since_and_cell_parsing(filled: str) -> None:
    now = 1_000_000.0
    assert parse_since("7d", now=now) == pytest.approx(now - 7 * 86400)
    assert parse_since("90m", now=now) == pytest.approx(now - 5400)
    assert parse_since("2026-01-01T00:00:00+00:00") == pytest.approx(1767225600.0)
    with open_store(filled) as st:
        assert parse_since("run-3", st) == st.get_run("run-3").created_at
        with pytest.raises(ConfigError):
            parse_since("never", st)
    m = cell_matcher(["population_size=500", "*tournament*"])
    assert m is not None
    assert m('evolution|{"population_size":500,"selection":"rank"}')
    assert m('evolution|{"population_size":50,"selection":"tournament"}')
    assert not m('evolution|{"population_size":50,"selection":"rank"}')
    t = cell_matcher(["target=kraken"])
    assert t is not None and t("kraken|{}") and not t("evolution|{}")
    assert cell_matcher([]) is None
    assert np.isfinite(parse_since("1h"))
