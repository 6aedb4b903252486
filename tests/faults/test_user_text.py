"""User text is printed as text: rich markup and emoji codes in run names, parameters, errors and
target names never crash a command nor change what it prints (issue 16, item 4), and the
Markdown report shows HTML from error text as text (item 12)."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest
from rich.console import Console

from allele.bench.report.markdown import render_markdown
from allele.store import open_store
from allele.store.model import CellResult, RunInfo, RunRecord, Sample
from tests.faults.cli import allele, one_line_error

T = "tests.faults.targets"
MARKUP_ERROR = "cannot open [/data/input.csv]"
RUN_NAME = "nightly [/x]"
PARAM = "[/red] unbalanced"


def _spec(tmp_path: Path) -> Path:
    spec = tmp_path / "markup.yaml"
    spec.write_text(f"""
name: markup
order: sequential
defaults: {{isolation: inline, seeds: 1}}
benchmarks:
  - name: broken
    target: {T}:raises
    matrix: {{message: ["{MARKUP_ERROR}"]}}
  - name: labelled
    target: {T}:ok
    matrix: {{label: ["{PARAM}", ":thumbs_down: -1"]}}
""")
    return spec


@pytest.mark.parametrize("quiet", [False, True])
def test_markup_in_names_params_and_errors_prints_as_text(tmp_path: Path, quiet: bool) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    args = ["bench", "run", str(_spec(tmp_path)), "--store", url, "--name", RUN_NAME]
    code, out, err = allele(*args, *(["-q"] if quiet else []))
    assert code == 0, err
    assert "Traceback" not in out + err and "MarkupError" not in out + err
    assert f"run {RUN_NAME} (" in err  # the summary line names the run as it is
    if not quiet:
        assert MARKUP_ERROR in out and PARAM in out
    code, out, err = allele("bench", "list", "--store", url)
    assert code == 0, err
    assert RUN_NAME in out
    code, out, err = allele("bench", "show", RUN_NAME, "--store", url)
    assert code == 0, err
    assert MARKUP_ERROR in out and PARAM in out and ":thumbs_down: -1" in out
    # emoji codes stay text: the target `...targets:ok` and its title's colon made ':ok:'
    assert f"{T}:ok: median" in out and "🆗" not in out and "👎" not in out


def test_the_progress_bar_prints_a_run_name_and_params_with_markup() -> None:
    from allele.bench.task import CellTask
    from allele.cli.progress import RichProgress

    buf = io.StringIO()
    progress = RichProgress(Console(file=buf, force_terminal=False, width=200))
    info = RunInfo(id="abc", name=RUN_NAME, spec_name="s", target="t", status="running",
                   created_at=time.time())
    progress.start(RUN_NAME, 2, 0, run=info)
    task = CellTask(key="k", benchmark="b", target="t", params={"p": PARAM}, seeds=(0,))
    progress.cell_finished(task, CellResult("k", "t", {"p": PARAM}, "failed", [],
                                            MARKUP_ERROR, 0.0, 1.0))
    progress.cell_started(task)  # still running when the bar stops: its description shows
    progress.stop()
    text = buf.getvalue()
    assert RUN_NAME in text and f"b: p={PARAM}" in text and "1 failed" in text


def test_errors_with_markup_and_emoji_codes_are_printed_verbatim(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    open_store(url).close()
    code, out, err = allele("bench", "show", "no [/such] run :ok:", "--store", url)
    assert one_line_error(code, out, err)
    assert "no run 'no [/such] run :ok:' in the store" in err
    code, out, err = allele("bench", "run", "--store", url, "--resume", "x", "--name",
                            "[bold]y[/]")
    assert one_line_error(code, out, err)


def _record(name: str, error: str) -> RunRecord:
    now = time.time()
    info = RunInfo(id="a1b2c3d4e5f6", name=name, spec_name="spec`x", target="t",
                   status="finished", created_at=now, cell_count=2, failed_count=1)
    cells = [CellResult("t|{}", "t", {"p": "<b>bold</b>"}, "failed", [], error, now, now),
             CellResult("t|{\"a\":1}", "t", {"a": 1}, "ok", [Sample("x", 1.0, 0, 0)], None, now,
                        now)]
    return RunRecord(info=info, cells=cells)


def test_markdown_report_shows_html_in_user_text_as_text(tmp_path: Path) -> None:
    from allele.bench.report.data import ReportData

    error = "ValueError: <script>alert(1)</script> | <iframe src=x></iframe>"
    data = ReportData(run=_record("run `<img src=x onerror=alert(1)>`", error), baseline=None,
                      comparison=None, changes=[])
    text = render_markdown(data)
    header, rest = text.split("\n", 1)
    # in a code span HTML is code; the name's own backtick cannot close the span early
    assert header == "## Allele benchmark: `` run `<img src=x onerror=alert(1)>` ``"
    assert "<" not in rest.replace("<details>", "").replace("<summary>", "")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rest
    assert "&lt;b&gt;bold&lt;/b&gt;" in rest


def test_markdown_report_of_a_stored_run_through_the_cli(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    with open_store(url) as st:
        run_id = st.create_run("md", "spec", "t", {}, {})
        for cell in _record("md", "<script>x</script>").cells:
            st.save_cell(run_id, cell)
        st.finish_run(run_id, "finished")
    out = tmp_path / "r.md"
    code, _, err = allele("bench", "report", "md", "--store", url, "--format", "markdown",
                          "-o", str(out))
    assert code == 0, err
    assert "<script>" not in out.read_text() and "&lt;script&gt;" in out.read_text()
