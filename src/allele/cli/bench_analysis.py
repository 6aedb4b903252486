"""Analysis commands of ``allele bench``: ab, compare, regressions, report, import.

    allele bench ab SPEC --base REF [--head REF] [--rounds N] [--report FILE] [--run-if-clean]
    allele bench compare BASE HEAD [--json] [--fail-on regressed|inconclusive|never]
                                   [--q 0.05] [--floor 0.05] [--all] [--store URL]
    allele bench regressions [--cell PATTERN ...] [--since RUN|DATE|7d] [--metric M ...] [--json]
    allele bench report RUN [--baseline RUN] -o report.html [--format html|markdown]
    allele bench import FILE.json ... [--name NAME]
    allele bench calibrate SPEC [--pairs 10] [--preset NAME] [--workers N]  (bench_calibrate.py)
    allele bench explain BASE HEAD [--filter ...] [--top 10] [--json]   (bench_explain.py)

This module only composes :mod:`allele.bench.compare`, :mod:`allele.bench.regress`,
:mod:`allele.bench.report` and :mod:`allele.bench.importers`; :func:`register` adds the commands
to the ``bench`` group (``allele.cli.bench`` calls it); :mod:`allele.cli.comparison` prints
the comparisons. Heavy imports happen inside commands.
"""

from __future__ import annotations

import json
import math
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from allele.cli._common import (
    FloorOpt,
    LiveOpt,
    StoreOpt,
    checked_suite,
    esc,
    live_telemetry,
    make_console,
    one_line_errors,
    open_store_url,
    plain,
    sigterm_as_interrupt,
)
from allele.cli.comparison import (
    QOpt,
    emit_comparison,
    loaded_no_shared_cell,
    named_keys,
    no_shared_cell,
    print_conditions,
    require_shared_cell,
    shared_baseline,
    shell_word,
    store_flag,
)
from allele.errors import ConfigError

if TYPE_CHECKING:
    from allele.bench.compare import Comparison
    from allele.bench.regress import RegressionReport

console = make_console(width=160)
err_console = make_console(stderr=True, width=160)


class FailOn(StrEnum):
    regressed = "regressed"
    inconclusive = "inconclusive"
    never = "never"


class Format(StrEnum):
    html = "html"
    markdown = "markdown"


class Assets(StrEnum):
    inline = "inline"
    shared = "shared"


def compare_cmd(
    base: Annotated[str, typer.Argument(help="Baseline run: id, name or 'latest'.")],
    head: Annotated[str, typer.Argument(help="Run to judge: id, name or 'latest'.")] = "latest",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
    = False,
    fail_on: Annotated[FailOn, typer.Option(
        "--fail-on", help="Exit 1 when anything regressed (default), also when anything is "
        "inconclusive, or never.")] = FailOn.regressed,
    q: QOpt = 0.05,
    floor: FloorOpt = 0.05,
    show_all: Annotated[bool, typer.Option("--all", help="Also list unchanged cells.")] = False,
    history: Annotated[int, typer.Option(
        "--history", min=0, help="Earlier runs (up to HEAD, BASE and HEAD left out) that "
        "give each cell its run-level noise (0: only the spread of the matrix).")] = 20,
    store: StoreOpt = None,
) -> None:
    """Compare two runs cell by cell: change, t interval, FDR-controlled verdicts with reasons.

    The halves of an A/B session (`allele bench ab`) are compared round by round; two runs
    measured apart get the run-level model (a run-wide shift, each cell's run-level noise)."""
    with one_line_errors():
        from allele.bench.compare import compare_runs
        from allele.bench.history import load_history
        from allele.bench.lease import record_with_shown_status

        with open_store_url(store, read_only=True) as st:
            # as `list` shows them: a killed run is interrupted, not running
            b = record_with_shown_status(st, st.load_run(base))
            h = record_with_shown_status(st, st.load_run(head))
            if b.info.id == h.info.id:
                raise ConfigError(f"BASE and HEAD are the same run ({b.info.name})")
            require_shared_cell(b, h, store)
            past = load_history(st, h.info, history + 2) if history else None
        comp = compare_runs(b, h, q=q, floor=floor, history=past)
        _alert_comparison(store, comp, b, h)
        emit_comparison(comp, as_json=as_json, show_all=show_all)
    if comp.fails(fail_on.value):
        raise typer.Exit(1)


def _print_regressions(report: RegressionReport) -> None:
    if not report.groups:
        console.print(f"no change point in {report.series} cell metric series over "
                      f"{report.runs} runs")
        return
    table = Table(title=f"change points over {report.runs} runs ({report.series} series)")
    for col in ("kind", "target", "metric", "first affected run", "magnitude", "p", "cells",
                "where"):
        table.add_column(col, overflow="fold",
                         justify="right" if col in ("magnitude", "p", "cells") else "left")
    for g in report.groups:
        style = "bold red" if g.kind == "regression" else "bold green"
        table.add_row(f"[{style}]{g.kind}[/]", plain(g.target), plain(g.metric),
                      plain(g.run.name),
                      f"{g.magnitude:+.1%}" if math.isfinite(g.magnitude) else "∞",
                      f"{g.p_value:.2g}", f"{g.cells_changed}/{g.cells_checked}",
                      plain(g.attribution.description))
    console.print(table)


def _require_answer(report: RegressionReport, filtered: bool, store: str | None) -> None:
    """One clear error (exit 2) when the history cannot hold a change point, rather than
    "no change point" for a question that was never asked."""
    if report.series == 0 and filtered and report.runs:
        raise ConfigError(f"no cell metric series of the {report.runs} runs matches --cell / "
                          f"--metric (`allele bench show RUN{store_flag(store)}` lists cells and "
                          "metrics)")
    if report.too_short:
        longest = (f"; its longest cell series has {report.longest}"
                   if report.longest < report.runs else "")
        raise ConfigError(f"the history is too short for change points: {report.runs} runs"
                          f"{longest}, and a cell needs at least {report.min_runs} runs "
                          "(each `allele bench run` of the spec adds one)")


def regressions_cmd(
    cells: Annotated[list[str] | None, typer.Option(
        "--cell", "-c", help="Only cells matching: param=value, target=NAME, or a glob on the "
        "cell key (repeatable).")] = None,
    since: Annotated[str | None, typer.Option(
        "--since", help="Only changes from this run, date (2026-11-01) or age (7d) on.")] = None,
    metrics: Annotated[list[str] | None, typer.Option(
        "--metric", "-m", help="Only these metrics (repeatable).")] = None,
    runs_limit: Annotated[int, typer.Option("--runs", min=1,
                                            help="Look at the newest N runs.")] = 200,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    fail: Annotated[bool, typer.Option(
        "--fail", help="Exit 1 when a regression is found.")] = False,
    ab_base: Annotated[bool, typer.Option(
        "--ab-base", help="Also follow the BASE halves of A/B sessions (old code measured "
        "again; left out by default).")] = False,
    store: StoreOpt = None,
) -> None:
    """Change points over each cell's history of runs (robust, with FDR over the series)."""
    with one_line_errors():
        from allele.bench.history import recent_history
        from allele.bench.regress import analyse_runs
        from allele.bench.select import cell_matcher, parse_since

        with open_store_url(store, read_only=True) as st:
            runs = recent_history(st, runs_limit, include_ab_base=ab_base)
            since_ts = parse_since(since, st) if since else None
        report = analyse_runs(runs, cell_filter=cell_matcher(cells or []), metrics=metrics,
                              since=since_ts)
        _require_answer(report, bool(cells or metrics), store)
        _alert_changes(store, report, runs)
        if as_json:
            sys.stdout.write(json.dumps(report.to_dict(), indent=2) + "\n")
        else:
            _print_regressions(report)
    if fail and report.regressions:
        raise typer.Exit(1)


def report_cmd(
    run: Annotated[str, typer.Argument(help="Run id, name or 'latest'.")] = "latest",
    baseline: Annotated[str | None, typer.Option(
        "--baseline", "-b", help="Run to compare with (default: the previous finished run "
        "of the same spec, as `bench run --report` does; 'none': no comparison).")] = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="File to write (default: report.html / report.md).")] = None,
    fmt: Annotated[Format, typer.Option("--format", help="html or markdown.")]
    = Format.html,
    q: QOpt = 0.05,
    floor: FloorOpt = 0.05,
    assets: Annotated[Assets, typer.Option(
        "--assets", help="inline: one self-contained file; shared: reports in one folder load "
        "one copy of plotly.js from allele-report-assets/ beside them (each report small).")]
    = Assets.inline,
    store: StoreOpt = None,
) -> None:
    """Write a self-contained HTML report (or Markdown for a pull request) of a run."""
    with one_line_errors():
        from allele.bench.report import build_report

        with open_store_url(store, read_only=True) as st:
            if baseline is None:
                from allele.bench.select import previous_run

                info = st.get_run(run)
                prev = shared_baseline(st, info, previous_run(st, info))
                baseline = prev.id if prev is not None else None
            elif baseline.lower() == "none":
                baseline = None
            else:
                if st.get_run(baseline).id == st.get_run(run).id:  # as `compare` refuses it
                    raise ConfigError(f"--baseline: the report's own run ({baseline}); name "
                                      "another run, or `--baseline none`")
                problem = no_shared_cell(*named_keys(st, baseline), *named_keys(st, run))
                if problem is not None:
                    raise ConfigError(f"--baseline: {problem} (`--baseline none` writes the "
                                      "report without a comparison)")
            path = output or Path("report.md" if fmt is Format.markdown else "report.html")
            scripts = None
            if assets is Assets.shared and fmt is Format.html and str(path) != "-":
                from allele.bench.report import shared_scripts

                try:
                    scripts = shared_scripts(path.resolve().parent)
                except OSError as exc:
                    raise ConfigError(f"cannot write the shared scripts beside {path}: "
                                      f"{exc}") from None
            text = build_report(st, run, baseline, fmt=fmt.value, q=q, floor=floor,
                                scripts_url=scripts)
        if str(path) == "-":
            sys.stdout.write(text)
            return
        _write_text(path, text)


def import_cmd(
    files: Annotated[list[Path], typer.Argument(help="pytest-benchmark JSON file(s).")],
    name: Annotated[str | None, typer.Option(
        "--name", "-n", help="Run name (one file only; default pytest-<file stem>).")] = None,
    store: StoreOpt = None,
) -> None:
    """Import pytest-benchmark JSON results (raw rounds when saved, else statistics)."""
    with one_line_errors():
        from allele.bench.importers import import_files, import_pytest_benchmark

        if name is not None and len(files) != 1:
            raise ConfigError("--name needs exactly one FILE")
        with open_store_url(store) as st:
            _check_import_names(st, files, name)
            if name is not None:
                ids = [import_pytest_benchmark(st, files[0], name=name)]
            else:
                ids = import_files(st, files)
            for run_id in ids:
                info = st.get_run(run_id)
                err_console.print(f"imported run {info.name} ({info.id}): "
                                  f"{info.cell_count} benchmarks, {info.failed_count} failed",
                                  highlight=False, markup=False)


def _check_import_names(st: Any, files: list[Path], name: str | None) -> None:
    """Each file's run name is free, or one error naming ``--name`` (the store's own clash
    error said only "choose another name")."""
    from allele.bench.importers import default_run_name

    for path in files:
        run = name or default_run_name(path)
        if not st.run_name_taken(run):
            continue
        if name is not None:
            raise ConfigError(f"--name {name}: a run named {name!r} already exists in the "
                              "store; choose another name")
        alone = " alone" if len(files) > 1 else ""
        raise ConfigError(f"{path}: a run named {run!r} already exists in the store (the "
                          f"file was imported before?); import it{alone} with --name NAME "
                          "to keep both")


def ab_cmd(
    spec: Annotated[Path, typer.Argument(help="Spec YAML file, read once for both versions.")],
    base: Annotated[str, typer.Option("--base", help="The old version: a git ref.")] = "HEAD",
    head: Annotated[str | None, typer.Option(
        "--head", help="The new version: a git ref (default: the working tree).")] = None,
    preset: Annotated[str | None, typer.Option("--preset", "-p", help="Preset of the spec.")]
    = None,
    rounds: Annotated[int | None, typer.Option(
        "--rounds", "-r", min=2, help="Rounds (blocks): each starts a fresh worker per "
        "version (default: one per call of the largest cell, 10 to 100).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random call order.")] = 0,
    name: Annotated[str | None, typer.Option("--name", "-n", help="Session name.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
    = False,
    fail_on: Annotated[FailOn, typer.Option(
        "--fail-on", help="Exit 1 when anything regressed (default), also when anything is "
        "inconclusive, or never.")] = FailOn.regressed,
    q: QOpt = 0.05,
    floor: FloorOpt = 0.05,
    show_all: Annotated[bool, typer.Option("--all", help="Also list unchanged cells.")] = False,
    report: Annotated[Path | None, typer.Option(
        "--report", help="Also write the HTML report of HEAD against BASE.")] = None,
    run_if_clean: Annotated[bool, typer.Option(
        "--run-if-clean", help="When the working tree equals BASE (no uncommitted change "
        "and no commit since BASE that changed a file), make a plain run instead, compared "
        "with the previous run (what `make run` does).")] = False,
    brief: Annotated[bool, typer.Option(
        "--brief", help="End with one screen (what ran, verdicts and reasons, top findings, "
        "where to look next) instead of the table.")] = False,
    mlflow_uri: Annotated[str | None, typer.Option(
        "--mlflow", help="Also track both halves in MLflow at this tracking URI, each cell "
        "with its verdicts (needs the mlflow extra).")] = None,
    experiment: Annotated[str | None, typer.Option(
        "--experiment", help="MLflow experiment (default: the configured one).")] = None,
    store: StoreOpt = None,
    live: LiveOpt = True,
) -> None:
    """Interleaved A/B session: BASE and HEAD measured in the same rounds, compared paired.

    Exit 1 when anything regressed (like `compare`); 2 on a usage error."""
    with one_line_errors():
        from allele.bench.ab import run_ab
        from allele.bench.ab_trees import tree_equals
        from allele.bench.compare import compare_runs
        from allele.cli.progress import RichProgress

        repo = _checked_ab_options(base, head, experiment, mlflow_uri, report)
        if run_if_clean and head is None and tree_equals(repo, base):
            fails = _plain_run(spec, preset, store, report, base, q=q, floor=floor,
                               fail_on=fail_on.value, brief=brief, live=live)
        else:
            checked_suite(spec, preset=preset, resolve=False)
            with open_store_url(store) as st:
                with sigterm_as_interrupt(), live_telemetry(st, live, None,
                                                            err_console) as publisher:
                    result = run_ab(st, spec, base=base, head=head, preset=preset,
                                    rounds=rounds, seed=seed, name=name, live=publisher,
                                    progress=None if as_json else RichProgress(err_console))
                base_run, head_run = st.load_run(result.base_run), st.load_run(result.head_run)
                if stopped_before_pairs(result, base_run, head_run):
                    raise typer.Exit(130)
                require_shared_cell(base_run, head_run, store)
                comp = compare_runs(base_run, head_run, q=q, floor=floor)
                if report is not None:
                    _write_report(st, result.head_run, result.base_run, report, q, floor)
            print_ab_status(result)
            _alert_comparison(store, comp, base_run, head_run)
            if mlflow_uri is not None:
                _track_ab(mlflow_uri, experiment, comp, base_run, head_run, report)
            if brief and not as_json:
                from allele.cli.summary import print_summary

                print_summary(console, comp, head_run, report, store)
            else:
                emit_comparison(comp, as_json=as_json, show_all=show_all)
            fails = comp.fails(fail_on.value)
            if result.status == "interrupted":  # Ctrl-C or SIGTERM: 130, after what it measured
                raise typer.Exit(130)
    if fails:
        raise typer.Exit(1)


def _ab_line(result: Any) -> str:
    """The session's status line; interrupted, how many of its planned rounds ran (the plan
    alone read as if every round had)."""
    done = result.completed_rounds
    rounds = (f"{result.status}, {result.rounds} rounds" if done >= result.rounds
              else f"{result.status} after {done} of {result.rounds} rounds")
    return (f"A/B session {result.name}: {rounds}, {result.seconds:.1f} s; runs "
            f"{result.name}-base and {result.name}-head")


def print_ab_status(result: Any) -> None:
    """The session's line (status, rounds, seconds, its two runs), then its first failures;
    interrupted, what the verdicts cover."""
    err_console.print(_ab_line(result), highlight=False, markup=False)
    for key, side, error in result.failed[:5]:
        err_console.print(f"[red]{side} failed:[/] {esc(key)}: {esc(error)}", highlight=False)
    if result.status == "interrupted":
        err_console.print("interrupted: the verdicts below cover only the calls that ran",
                          style="yellow", highlight=False, markup=False)


def stopped_before_pairs(result: Any, base_run: Any, head_run: Any) -> bool:
    """Whether the session was interrupted before both versions measured a cell (then
    there is nothing to compare; said in one line)."""
    if result.status != "interrupted" or loaded_no_shared_cell(base_run, head_run) is None:
        return False
    err_console.print(_ab_line(result), highlight=False, markup=False)
    err_console.print("interrupted before both versions measured a cell: nothing to compare",
                      style="yellow", highlight=False, markup=False)
    return True


def _checked_ab_options(base: str, head: str | None, experiment: str | None,
                        mlflow_uri: str | None, report: Path | None) -> Path:
    """The repository (:func:`_ab_repo`), after the options of `ab` that used to be refused
    (or ignored) only after the whole session: checked before any tree, worker or store."""
    if experiment is not None and mlflow_uri is None:  # it was silently ignored
        raise ConfigError("--experiment names an MLflow experiment: give --mlflow URI too")
    if mlflow_uri is not None:  # a missing extra was found after both halves had run
        from allele.tracking._deps import require_mlflow

        require_mlflow()
    if report is not None:
        from allele.cli._common import check_writable

        check_writable(report)
    return _ab_repo(base, head)


_REF_PREFIX = "--base/--head "


def _ab_repo(base: str, head: str | None) -> Path:
    """The repository of the working directory, BASE and HEAD resolved in it: checked before
    a store is created (as the spec is); a ref that names no commit is an error naming the
    option that gave it."""
    from allele.bench.ab_trees import repo_root, resolve_ref

    repo = repo_root(Path.cwd())
    for option, ref in (("--base", base), ("--head", head)):
        if ref is None:
            continue
        try:
            resolve_ref(repo, ref)
        except ConfigError as exc:
            text = str(exc)
            if not text.startswith(_REF_PREFIX):
                raise
            raise ConfigError(f"{option} {text.removeprefix(_REF_PREFIX)}") from None
    return repo


def _track_ab(uri: str, experiment: str | None, comp: Comparison, base_run: Any,
              head_run: Any, report: Path | None) -> None:
    """Both halves of an A/B session in MLflow: HEAD's cells carry their verdicts
    (``allele.verdict.<metric>``) and its parent run the counts and the report."""
    from allele.tracking.matrix import track_stored_run
    from allele.tracking.mlflow import MlflowTracker

    verdicts: dict[str, dict[str, str]] = {}
    for row in comp.rows:
        verdicts.setdefault(row.key, {})[f"allele.verdict.{row.metric}"] = row.verdict
    counts = {f"allele.{k}": str(v) for k, v in comp.counts().items()}
    side = {"allele.ab_session": head_run.info.name.removesuffix("-head")}
    with MlflowTracker(uri, experiment) as tracker:
        track_stored_run(tracker, base_run, tags={**side, "allele.ab_side": "base"})
        head = track_stored_run(tracker, head_run,
                                tags={**side, "allele.ab_side": "head", **counts},
                                cell_tags=verdicts)
        if report is not None:
            head.log_artifact(report)
    print_tracking_outcome(tracker, uri)


def print_tracking_outcome(tracker: Any, uri: str) -> None:
    """Where the records went: MLflow, or (saying so instead of claiming they arrived) the
    spool that `allele tracking sync` replays."""
    if tracker.fully_delivered:
        err_console.print(f"tracked in MLflow at {uri} (experiment {tracker.experiment})",
                          highlight=False, markup=False, soft_wrap=True)
    else:
        err_console.print(f"MLflow at {uri} could not take everything: {tracker.spooled} "
                          f"record(s) wait in {tracker.spool.path}; `allele tracking sync` "
                          "sends them", style="yellow", highlight=False, markup=False,
                          soft_wrap=True)


def _write_report(st: Any, run: str, baseline: str | None, path: Path, q: float,
                  floor: float) -> None:
    from allele.bench.report import load_report_data, render_html

    _write_text(path, render_html(load_report_data(st, run, baseline, q=q, floor=floor)))


def _write_text(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc}") from None
    err_console.print(f"report written to {path.resolve()}", highlight=False, markup=False)


def _plain_run(spec: Path, preset: str | None, store: str | None, report: Path | None,
               base: str, *, q: float, floor: float, fail_on: str, brief: bool = False,
               live: bool = True) -> bool:
    """A plain run of ``spec``, compared with the previous run of the spec through the
    run-level model; whether the comparison fails ``fail_on``."""
    from allele.bench.compare import compare_runs
    from allele.bench.history import load_history
    from allele.bench.runner import Runner
    from allele.bench.select import previous_run
    from allele.cli.progress import RichProgress

    err_console.print(f"the working tree equals BASE ({base}): a plain run, compared "
                      "with the previous run", highlight=False, markup=False)
    suite = checked_suite(spec, preset=preset)  # before a store is created
    with open_store_url(store) as st:
        runner = Runner(st, progress=RichProgress(err_console))
        # Live like `bench run`: `allele top` and the dashboard follow it, telemetry is stored.
        with sigterm_as_interrupt(), live_telemetry(st, live, None, err_console) as publisher:
            runner.live = publisher
            summary = runner.run(suite)
        line = (f"run {summary.name} ({summary.run_id}): {summary.status}; "
                f"{summary.executed} cells, {summary.failed} failed, {summary.seconds:.1f} s")
        if summary.status == "interrupted":
            err_console.print(f"{line}\nresume with: allele bench run --resume "
                              f"{shell_word(summary.name)}{store_flag(store)}",
                              highlight=False, markup=False)
            raise typer.Exit(130)
        err_console.print(line, highlight=False, markup=False)
        info = st.get_run(summary.run_id)
        baseline = shared_baseline(st, info, previous_run(st, info))
        if report is not None:
            _write_report(st, info.id, baseline.id if baseline else None, report, q, floor)
        head_run = st.load_run(info.id)
        comp = None if baseline is None else compare_runs(
            st.load_run(baseline.id), head_run, q=q, floor=floor, history=load_history(st, info))
    if brief:
        from allele.cli.summary import print_summary

        print_summary(console, comp, head_run, report, store)
        return comp is not None and comp.fails(fail_on)  # type: ignore[arg-type]
    if comp is None:
        return False
    style = "red" if comp.counts()["regressed"] else "green"
    err_console.print(f"[{style}]against {esc(comp.base.name)}:[/] "
                      + ", ".join(f"{n} {v}" for v, n in comp.counts().items())
                      + f" (`allele bench compare {comp.base.id} {comp.head.id}"
                      f"{esc(store_flag(store))}` for the table)", highlight=False)
    print_conditions(comp)
    return comp.fails(fail_on)  # type: ignore[arg-type]


def _alert_comparison(store: str | None, comp: Comparison, base: Any, head: Any) -> None:
    """Regressed rows become alerts (once per base, head, cell and metric)."""
    from allele.bench.alerting import cause_summaries, comparison_alerts
    from allele.cli.alerts import announce_regressions

    if comp.regressed:
        announce_regressions(store, lambda: comparison_alerts(comp, cause_summaries(base, head)),
                             err_console)


def _alert_changes(store: str | None, report: RegressionReport, history: Any) -> None:
    """Regression change points become alerts (once per base, head, cell and metric)."""
    from allele.bench.alerting import change_alerts
    from allele.cli.alerts import announce_regressions

    if report.regressions:
        announce_regressions(store, lambda: change_alerts(report, history), err_console)


def register(app: typer.Typer) -> None:
    """Add the analysis commands to the ``bench`` command group."""
    app.command("ab")(ab_cmd)
    app.command("compare")(compare_cmd)
    app.command("regressions")(regressions_cmd)
    app.command("report")(report_cmd)
    app.command("import")(import_cmd)
    from allele.cli.bench_calibrate import register as register_calibrate
    from allele.cli.bench_explain import register as register_explain

    register_calibrate(app)
    register_explain(app)
