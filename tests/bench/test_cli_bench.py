"""``allele bench`` driven through typer's CliRunner against a real SQLite store."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from allele.cli.bench import app
from allele.store import open_store
from tests.faults.processes import killed_process

T = "tests.bench.runner_targets"
runner = CliRunner()


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    p = tmp_path / "spec.yaml"
    p.write_text(f"""
name: clispec
isolation: inline
defaults: {{seeds: 3}}
presets: {{tiny: {{seeds: 1}}}}
benchmarks:
  - name: flaky
    target: {T}:flaky
    matrix: {{x: [1, 2, 3]}}
  - name: echo
    target: {T}:echo
    isolation: inline
    matrix: {{a: [1, 2]}}
""".replace("isolation: inline\ndefaults", "defaults"))
    return p


def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


def invoke(*args: str) -> tuple[int, str, str]:
    res = runner.invoke(app, list(args))
    return res.exit_code, res.stdout, res.stderr


def test_run_list_show_export(spec: Path, tmp_path: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    url = store_url(tmp_path)
    code, out, err = invoke("run", str(spec), "--store", url, "--name", "first",
                            "--executor", "inline")
    assert code == 0, err
    assert "run first" in err and "5 cells run, 0 already done, 1 failed" in err
    assert "flaky" in out or f"{T}:flaky" in out  # the summary table follows the run
    assert "95% CI" in out and "median" in out and "IQR" in out
    assert "x=2 is not allowed" in out  # the failure is listed

    code, out, _ = invoke("list", "--store", url)
    assert code == 0 and "first" in out and "clispec" in out and "finished" in out

    code, out, _ = invoke("show", "first", "--store", url, "-m", "y")
    assert code == 0
    assert "percentile bootstrap of the median" in out
    assert re.search(r"load \d+\.\d\d at start", out)  # the machine's load when it began
    # x=3, seeds 0,1,2 -> y = 0, 3, 6: median 3
    row = next(line for line in out.splitlines() if "x=3" in line)
    assert "│ y " in row and "│      3 │" in row.replace(" 3.0 ", " 3 ")

    code, out, _ = invoke("export", "first", "--format", "json", "--store", url)
    assert code == 0
    doc = json.loads(out)
    assert doc["run"]["name"] == "first" and len(doc["cells"]) == 5
    cell = next(c for c in doc["cells"] if c["params"] == {"x": 3})
    ys = sorted(s["value"] for s in cell["samples"] if s["metric"] == "y")
    assert ys == [0.0, 3.0, 6.0]
    # -o - is stdout, as for report (it wrote a file named "-")
    monkeypatch.chdir(tmp_path)
    code, dash, _ = invoke("export", "first", "--format", "json", "-o", "-", "--store", url)
    assert code == 0 and json.loads(dash) == doc and not (tmp_path / "-").exists()

    target = tmp_path / "out.csv"
    code, _, err = invoke("export", "latest", "--format", "csv", "-o", str(target),
                          "--store", url)
    assert code == 0 and "wrote" in err
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    with open_store(url) as st:
        rec = st.load_run("first")
    n_samples = sum(len(c.samples) for c in rec.cells)
    failed_without_samples = sum(1 for c in rec.cells if not c.samples)
    assert len(rows) == n_samples + failed_without_samples
    failed = [r for r in rows if r["status"] == "failed"]
    assert len(failed) == 1 and "x=2" in failed[0]["error"] and failed[0]["metric"] == ""


def test_preset_filter_and_strict(spec: Path, tmp_path: Path) -> None:
    url = store_url(tmp_path)
    code, _, err = invoke("run", str(spec), "--store", url, "--preset", "tiny", "-q",
                          "--filter", "benchmark=echo", "--filter", "a=2", "--name", "f")
    assert code == 0, err
    with open_store(url) as st:
        rec = st.load_run("f")
    assert [c.params for c in rec.cells] == [{"a": 2}]
    assert len(rec.cells[0].values("a")) == 1  # the preset's single seed
    code, _, _ = invoke("run", str(spec), "--store", url, "-q", "--strict",
                        "--filter", "x=2")
    assert code == 1


def test_resume_through_the_cli(spec: Path, tmp_path: Path) -> None:
    url = store_url(tmp_path)
    assert invoke("run", str(spec), "--store", url, "-q", "--name", "r")[0] == 0
    code, _, err = invoke("run", str(spec), "--resume", "r", "--store", url, "-q")
    assert code == 0 and "0 cells run, 5 already done" in err
    code, _, err = invoke("run", "--resume", "r", "--store", url, "-q", "--preset", "tiny")
    assert code == 2 and "--resume reuses" in err


def test_resume_needs_an_existing_store_and_creates_none(spec: Path, tmp_path: Path) -> None:
    """A resume continues a stored run: it made an empty store file, then said no run 'X'."""
    db = tmp_path / "nope" / "missing.db"
    for args in (("run", "--resume", "X"), ("run", str(spec), "--resume", "X")):
        code, _, err = invoke(*args, "--store", str(db), "-q")
        assert code == 2 and err.startswith(f"error: no result store at {db}: the file does "
                                            "not exist"), err
        assert err.count("\n") == 1
        assert not db.exists() and not db.parent.exists()


def test_resume_refuses_a_spec_that_is_not_the_runs(spec: Path, tmp_path: Path) -> None:
    """A SPEC given with --resume must be the run's spec (its preset applied): an edited
    matrix or a new seed count is refused, naming what differs; nothing runs."""
    url = store_url(tmp_path)
    assert invoke("run", str(spec), "--store", url, "-q", "--name", "r",
                  "--preset", "tiny")[0] == 0
    code, _, err = invoke("run", str(spec), "--resume", "r", "--store", url, "-q")
    assert code == 0 and "0 cells run, 5 already done" in err  # the stored preset applied
    text = spec.read_text()
    spec.write_text(text.replace("x: [1, 2, 3]", "x: [1, 2, 3, 4]"))
    code, _, err = invoke("run", str(spec), "--resume", "r", "--store", url, "-q")
    assert code == 2
    assert (f"error: {spec} is not the spec run 'r' was made from: benchmarks[flaky].matrix.x: "
            f"the run has [1, 2, 3], SPEC has [1, 2, 3, 4] (`allele bench run --resume r "
            f"--store {url}` without SPEC resumes with the stored spec)") in " ".join(err.split())
    spec.write_text(text.replace("tiny: {seeds: 1}", "tiny: {seeds: 2}"))
    code, _, err = invoke("run", str(spec), "--resume", "r", "--store", url, "-q")
    assert code == 2 and "benchmarks[echo].seeds: the run has 1, SPEC has 2" in err
    with open_store(url) as st:
        assert st.load_run("r").info.cell_count == 5


@pytest.mark.parametrize(("args", "fragment"), [
    (("run",), "give a SPEC file"),
    (("run", "/no/such/spec.yaml"), "no such spec file"),
    (("show", "nosuchrun"), "no result store at"),  # a read command creates nothing
    (("export", "latest", "--format", "xml"), "allowed: json, csv"),
    (("run", "SPEC", "--executor", "threads"), "--executor 'threads'"),
    (("run", "SPEC", "--preset", "nope"), "unknown preset 'nope'"),
    (("run", "SPEC", "--workers", "0"), "--workers must be >= 1"),
    (("run", "SPEC", "--name", "latest"), "reserved"),
])
def test_errors_are_one_line_and_exit_2(args: tuple[str, ...], fragment: str, spec: Path,
                                        tmp_path: Path) -> None:
    full = [str(spec) if a == "SPEC" else a for a in args]
    code, out, err = invoke(*full, "--store", store_url(tmp_path))
    assert code == 2, (out, err)
    assert fragment in err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert "Traceback" not in out + err


def test_name_clash_is_an_error(spec: Path, tmp_path: Path) -> None:
    url = store_url(tmp_path)
    assert invoke("run", str(spec), "--store", url, "-q", "--name", "dup")[0] == 0
    with open_store(url) as st:
        before = len(st.read_metric_points("allele_bench_worker_rss_bytes"))
    assert before > 0
    code, _, err = invoke("run", str(spec), "--store", url, "-q", "--name", "dup")
    assert code == 2 and "already exists" in err
    # refused before its telemetry started: no stray point (it was joined to the runs' series)
    with open_store(url) as st:
        assert len(st.read_metric_points("allele_bench_worker_rss_bytes")) == before


def test_bad_spec_file_through_the_cli(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: s\ntarget: evolution\nmatrix: {population_size: [50, one]}\n")
    code, _, err = invoke("run", str(bad), "--store", store_url(tmp_path))
    assert code == 2
    assert f"{bad}: matrix.population_size:" in err and "integer" in err


def test_a_failing_spec_creates_no_store(tmp_path: Path, spec: Path) -> None:
    """Validation, a target that does not import and filters that keep no cell are refused
    before the store is opened: the --store file is not created."""
    db = tmp_path / "new" / "s.db"
    url = f"sqlite:///{db}"
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: s\ntarget: evolution\nmatrix: {mutation_rate: [2.0]}\n")
    notarget = tmp_path / "notarget.yaml"
    notarget.write_text("name: s\ntarget: nosuchmod_xyz:fn\nmatrix: {n: [1]}\n")
    for args, fragment in (((str(bad),), "matrix.mutation_rate"),
                           ((str(notarget),), "cannot import nosuchmod_xyz"),
                           ((str(spec), "--workers", "0"), "--workers must be >= 1"),
                           ((str(spec), "--experiment", "e"), "give --mlflow URI too"),
                           ((str(spec), "--report", str(bad / "r.html")),
                            f"cannot write {bad / 'r.html'}: {bad} is not a writable directory"),
                           ((str(spec), "-f", "x=9"), "no cell of 'clispec' matches the "
                                                      "filters x=9"),
                           ((str(bad),), "matrix.mutation_rate")):
        for command in ("run", "calibrate") if len(args) == 1 else ("run",):
            code, _, err = invoke(command, *args, "--store", url)
            assert code == 2 and fragment in err, (command, err)
            assert not db.exists() and not db.parent.exists()


def test_a_filter_without_equals_is_explained_when_it_keeps_nothing(
        spec: Path, tmp_path: Path) -> None:
    """`-f foo` is a substring of the cell key in the filter language: when it keeps no cell
    the error says so, with a key of the spec to show what it is matched against."""
    code, _, err = invoke("run", str(spec), "-f", "foo", "--store", store_url(tmp_path))
    assert code == 2
    assert err.startswith("error: no cell of 'clispec' matches the filters foo; a term without "
                          "'=' (foo) matches cell keys as a substring or glob, such as "
                          "'tests.bench.runner_targets:")
    assert err.endswith("': key=value selects a parameter\n")
    # a misspelt parameter is named, with the ones the cells have
    code, _, err = invoke("run", str(spec), "-f", "y=3", "--store", store_url(tmp_path))
    assert code == 2 and err.rstrip().endswith("no cell has a parameter 'y' (they have a, x)"), err
    code, _, err = invoke("run", str(spec), "-q", "-f", "x=3", "-f", "flaky|", "--store",
                          store_url(tmp_path), "--name", "sub")
    assert code == 0, err
    with open_store(store_url(tmp_path)) as st:
        assert sorted(c.params["x"] for c in st.load_run("sub").cells) == [1, 2, 3]


def test_show_an_unknown_metric_is_an_error_naming_the_metrics(spec: Path,
                                                                tmp_path: Path) -> None:
    url = store_url(tmp_path)
    assert invoke("run", str(spec), "--store", url, "-q", "--name", "m")[0] == 0
    code, out, err = invoke("show", "m", "-m", "y", "-m", "nosuch", "--store", url)
    assert code == 2 and out == ""
    assert err.startswith("error: run 'm' has no metric 'nosuch' (its metrics: ")
    assert "wall_s" in err and ", y" in err


def test_summary_statistics() -> None:
    from allele.bench.summary import summarize

    s = summarize("m", [4.0, 1.0, 100.0, 3.0, 2.0, 5.0, float("nan")])
    assert (s.n, s.median, s.q25, s.q75, s.dropped) == (6, 3.5, 2.25, 4.75, 1)
    assert s.mean == pytest.approx(115.0 / 6)
    assert s.ci_low is not None and s.ci_high is not None
    assert 1.0 <= s.ci_low <= 3.5 <= s.ci_high <= 100.0
    assert summarize("m", [4.0, 1.0, 100.0, 3.0, 2.0, 5.0]) == summarize(
        "m", [4.0, 1.0, 100.0, 3.0, 2.0, 5.0])  # seeded: the same interval every time
    for few in ([7.0], [1.255, 2.176], [4.0, 1.0, 100.0, 3.0, 2.0]):
        # under 6 samples no interval of the median reaches 95 % (2 gave their range)
        assert summarize("m", few).ci_low is None and summarize("m", few).ci_high is None
    empty = summarize("m", [float("inf")])
    assert empty.n == 0 and empty.dropped == 1
    # a wide sample of a known distribution: the interval covers the true median
    import numpy as np

    draws = np.random.default_rng(1).normal(10.0, 1.0, 400)
    big = summarize("m", list(draws))
    assert big.ci_low is not None and big.ci_high is not None
    assert big.ci_low < 10.0 < big.ci_high and big.ci_high - big.ci_low < 0.5


def test_rich_progress_reports_done_failed_and_current_cell() -> None:
    from rich.console import Console

    from allele.bench.task import CellTask
    from allele.cli.progress import RichProgress
    from allele.store.model import CellResult

    buf = io.StringIO()
    progress = RichProgress(Console(file=buf, width=200, force_terminal=False))
    progress.start("myrun", total=3, already_done=1)
    t = CellTask(key="k1", benchmark="evo", target="evolution", params={"population_size": 50},
                 seeds=(0,))
    progress.cell_started(t)
    progress.cell_finished(t, CellResult(key="k1", target="evolution", params={},
                                         status="failed"))
    progress.stop()
    text = buf.getvalue()
    assert "myrun" in text and "2/3" in text and "1 failed" in text and "tasks" in text


def test_run_writes_a_report_against_the_previous_run(spec: Path, tmp_path: Path) -> None:
    url = store_url(tmp_path)
    out_file = tmp_path / "out" / "report.html"
    code, _, err = invoke("run", str(spec), "--store", url, "--name", "r1", "--executor",
                          "inline", "-q", "--report", str(out_file))
    assert code == 0, err
    assert f"report written to {out_file.resolve()}" in err
    assert "compared with" not in err  # the first run of the spec has no baseline
    first = out_file.read_text()
    assert first.startswith("<!DOCTYPE html>") or first.lstrip().lower().startswith("<!doctype")
    assert "r1" in first

    code, _, err = invoke("run", str(spec), "--store", url, "--name", "r2", "--executor",
                          "inline", "-q", "--report", str(out_file))
    assert code == 0, err
    with open_store(url) as st:
        r1 = st.get_run("r1")
    assert f"compared with run r1 ({r1.id})" in err
    # the verdicts in one line: they add up to every compared cell metric
    line = next(x for x in err.splitlines() if x.startswith("against r1:"))
    counts = dict((v, int(n)) for n, v in re.findall(
        r"(\d+) (regressed|improved|inconclusive|unchanged)", line))
    assert set(counts) == {"regressed", "improved", "inconclusive", "unchanged"}
    with open_store(url) as st:
        from allele.bench.compare import compare_runs

        expected = compare_runs(st.load_run("r1"), st.load_run("r2")).counts()
    assert counts == dict(expected)
    second = out_file.read_text()
    assert "r2" in second and "r1" in second


def test_run_report_to_an_unwritable_path_is_a_clear_error(spec: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = invoke("run", str(spec), "--store", store_url(tmp_path), "--executor",
                          "inline", "-q", "--report", str(blocker / "report.html"))
    assert code == 2
    assert "cannot write" in err
    assert not (tmp_path / "cli.db").exists()  # refused before anything ran or was stored


def test_show_names_the_inner_loop_instead_of_listing_it_as_a_metric(tmp_path: Path) -> None:
    spec = tmp_path / "tiny.yaml"
    spec.write_text("name: tiny\ntarget: tests.bench.measure_targets:tiny\nisolation: inline\n"
                    "seeds: 3\ninner_loops: 7\n")
    url = store_url(tmp_path)
    code, _, err = invoke("run", str(spec), "--store", url, "--executor", "inline")
    assert code == 0, err
    code, out, _ = invoke("show", "latest", "--store", url)
    assert code == 0
    assert "a sample timed 7 calls" in " ".join(out.split())
    metrics = {line.split("│")[3].strip() for line in out.splitlines() if line.count("│") > 4}
    assert "wall_s" in metrics and "x" in metrics and "loops" not in metrics




def test_show_report_and_export_call_a_killed_run_interrupted_as_list_does(
        spec: Path, tmp_path: Path) -> None:
    """A runner killed with -9 leaves its run stored ``running`` with a lease naming a dead
    process: ``list`` said ``interrupted`` while ``show``, ``report`` and ``export`` said
    ``running``."""
    import socket

    from allele.store.leases import Lease

    url = store_url(tmp_path)
    assert invoke("run", str(spec), "--store", url, "-q", "--name", "k", "-f",
                  "benchmark=echo")[0] == 0
    pid, started = killed_process()
    with open_store(url) as st:
        run_id = st.get_run("k").id
        st.finish_run(run_id, "running")  # as the killed runner left it
        assert st.swap_lease(run_id, Lease(socket.gethostname(), pid, started), None) is None
    code, out, _ = invoke("list", "--store", url)
    assert code == 0 and "interrupted" in out and "running" not in out
    code, out, _ = invoke("show", "k", "--store", url)
    assert code == 0 and "spec clispec: interrupted, 2 cells" in " ".join(out.split())
    code, out, _ = invoke("export", "k", "--store", url)
    assert code == 0 and json.loads(out)["run"]["status"] == "interrupted"
    md, page = tmp_path / "k.md", tmp_path / "k.html"
    assert invoke("report", "k", "--store", url, "--format", "markdown", "-o", str(md))[0] == 0
    assert "spec `clispec` · interrupted · 2 cells" in md.read_text()
    assert invoke("report", "k", "--store", url, "-o", str(page))[0] == 0
    assert "interrupted · 2 cells" in page.read_text() and " running · " not in page.read_text()
    with open_store(url) as st:
        assert st.get_run("k").status == "running"  # the store is left as it is


def test_an_interrupted_run_prints_a_resume_command_that_names_the_store(
        tmp_path: Path) -> None:
    """``resume with: allele bench run --resume k5`` dropped ``--store``: pasted, it looked in
    the default store. The command carries the store given (shell-quoted); `list` shows the
    interrupted run's cells as done of planned; the printed command, run, completes it."""
    import shlex

    flag = tmp_path / "stop"
    flag.touch()
    spec = tmp_path / "k.yaml"
    spec.write_text(f"name: killme\ntarget: {T}:interrupt_after\nseeds: 1\n"
                    f"matrix: {{x: [1, 2, 3]}}\nfixed: {{flag: '{flag}', stop_at: 2}}\n")
    db = str(tmp_path / "my store.db")  # a path the shell must see quoted
    code, _, err = invoke("run", str(spec), "--store", db, "--name", "k 5", "-q",
                          "--executor", "inline")
    assert code == 130, err
    line = next(t for t in err.splitlines() if t.startswith("resume with: "))
    command = line.removeprefix("resume with: ").split(" (the cells")[0]
    assert command == f"allele bench run --resume 'k 5' --store {shlex.quote(db)}"
    code, out, _ = invoke("list", "--store", db)
    shown = re.search(r"interrupted .* (\d) of 3 ", out)
    assert code == 0 and shown is not None, out
    with open_store(db) as st:
        done = st.get_run("k 5").cell_count
    assert shown.group(1) == str(done) and 0 < done < 3
    flag.unlink()
    words = shlex.split(command)
    assert words[:3] == ["allele", "bench", "run"]
    code, _, err = invoke(*words[2:], "-q", "--executor", "inline")
    assert code == 0 and f"{3 - done} cells run, {done} already done" in err, err
    code, out, _ = invoke("list", "--store", db)
    assert re.search(r"finished .* 3 ", out) and " of " not in out, out


def test_default_store_adds_no_store_option() -> None:
    from allele.cli.comparison import store_flag

    assert store_flag(None) == ""
    assert store_flag("../ab.db") == " --store ../ab.db"
    assert store_flag("/tmp/a b.db") == " --store '/tmp/a b.db'"


def test_compare_refuses_a_q_outside_0_1_before_opening_the_store(tmp_path: Path) -> None:
    db = tmp_path / "none.db"
    for q in ("2", "0", "1", "-0.1", "nan"):
        code, _, err = invoke("compare", "a", "b", "--q", q, "--store", str(db))
        assert code == 2 and "Invalid value for '--q': a false-discovery rate in (0, 1)" in err
        assert not db.exists()


def test_compare_of_a_run_interrupted_before_any_cell_says_so(spec: Path,
                                                             tmp_path: Path) -> None:
    """``runs abk-base and abk-head share no cell (... has 0 ...): compare runs of one spec``
    sent the user looking for a spec mismatch; an empty interrupted run is named as such."""
    url = store_url(tmp_path)
    assert invoke("run", str(spec), "--store", url, "-q", "--name", "full")[0] == 0
    with open_store(url) as st:
        empty = st.create_run("cut", "clispec", "x", {}, {})
        st.finish_run(empty, "interrupted")
        other = st.create_run("other", "otherspec", "x", {}, {})
        st.save_cells(other, [])
        st.finish_run(other, "finished")
    code, _, err = invoke("compare", "full", "cut", "--store", url)
    assert code == 2 and err == ("error: run cut was interrupted before any cell was stored: "
                                 "nothing to compare\n"), err
    code, _, err = invoke("compare", "full", "other", "--store", url)
    assert code == 2 and "share no cell" in err
    assert f"(`allele bench list --store {url}` shows each run's spec)" in err


def test_planned_cells_counts_cells_not_their_rounds() -> None:
    """`bench list` shows an unfinished run as "done of planned": a cell of 3 rounds is 3 tasks
    of the plan and one cell (it read "2 of 18" for 6 cells)."""
    from allele.bench.runner import SPEC_FORMAT
    from allele.bench.spec import loads_suite
    from allele.cli.bench import planned_cells

    suite = loads_suite("name: p\ntarget: allele.bench.targets:spin\nseeds: 3\nrounds: 3\n"
                        "matrix: {n: [1, 2, 3, 4, 5, 6]}\n")
    doc = {"format": SPEC_FORMAT, "suite": suite.model_dump(mode="json"), "filters": []}
    assert planned_cells(doc) == 6
    assert planned_cells({**doc, "filters": ["n=2"]}) == 1
    assert planned_cells({"format": SPEC_FORMAT}) is None  # an import: no plan
