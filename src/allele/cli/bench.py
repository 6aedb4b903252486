"""``allele bench``: run benchmark specs, list and show stored runs, export them.

    allele bench run SPEC [--preset NAME] [--store URL] [--workers N] [--executor ...]
                          [--resume RUN] [--filter key=value ...] [--name NAME]
    allele bench list [--store URL] [--limit N]
    allele bench show RUN [--store URL] [--metric NAME ...]
    allele bench export RUN --format json|csv [-o FILE]

Every error is an AlleleError: one line on stderr and exit code 2.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.table import Table

from allele.bench.format import metric_value, number, varying_params, when
from allele.bench.metrics import declarations_from_doc
from allele.cli._common import (
    LiveOpt,
    StoreOpt,
    check_writable,
    checked_suite,
    esc,
    live_telemetry,
    make_console,
    one_line_errors,
    open_store_url,
    plain,
    sigterm_as_interrupt,
)
from allele.cli.comparison import shell_word, store_flag
from allele.errors import ConfigError

if TYPE_CHECKING:
    from allele.bench.run_protocols import RunSummary
    from allele.store.model import RunRecord

app = typer.Typer(help="Matrix benchmarks: run, A/B, compare, find change points, calibrate, "
                  "report, import and export.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
console = make_console()
err_console = make_console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])



MetricsPortOpt = Annotated[int | None, typer.Option(
    "--metrics-port", min=0, max=65535, help="Serve the running matrix's metrics (progress, "
    "worker resources, component and user metrics) for Prometheus on "
    "http://127.0.0.1:PORT/metrics (0 picks a free port).")]


@app.command("run")
def run_cmd(
    spec: Annotated[Path | None, typer.Argument(
        help="Spec YAML file (optional with --resume, which runs the stored spec; given, it "
        "must be that spec).")] = None,
    preset: Annotated[str | None, typer.Option("--preset", "-p",
                                               help="Named preset of the spec.")] = None,
    store: StoreOpt = None,
    workers: Annotated[int | None, typer.Option(
        "--workers", "-w", help="Worker processes (default: the core count).")] = None,
    executor: Annotated[str, typer.Option(
        "--executor", "-e",
        help="local (process pool), inline, dask-local, or dask://HOST:PORT.")] = "local",
    resume: Annotated[str | None, typer.Option(
        "--resume", help="Continue an interrupted run (id, name or 'latest').")] = None,
    filters: Annotated[list[str] | None, typer.Option(
        "--filter", "-f", help="Only cells with key=value (repeatable; key may be a param, "
        "'target' or 'benchmark'), or whose cell key holds a substring or matches a glob "
        "(a term without '=').")] = None,
    name: Annotated[str | None, typer.Option("--name", "-n", help="Run name.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q",
                                        help="No progress bar or summary table.")] = False,
    strict: Annotated[bool, typer.Option(
        "--strict", help="Exit with code 1 when any cell failed, crashed or timed out.")] = False,
    report: Annotated[Path | None, typer.Option(
        "--report", help="Write an HTML report of the run to this file, compared with the "
        "previous finished run of the same spec when there is one.")] = None,
    mlflow_uri: Annotated[str | None, typer.Option(
        "--mlflow", help="Also track the run in MLflow at this tracking URI "
        "(needs the mlflow extra).")] = None,
    experiment: Annotated[str | None, typer.Option(
        "--experiment", help="MLflow experiment (default: the configured one).")] = None,
    metrics_port: MetricsPortOpt = None,
    live: LiveOpt = True,
    max_cells: Annotated[int | None, typer.Option(
        "--max-cells", help="Refuse a spec defining more cells than this (default: the "
        "bench.max_cells setting, 100000).")] = None,
) -> None:
    """Run a benchmark spec (or resume a run) into the result store."""
    with one_line_errors():
        from allele.bench.runner import Runner
        from allele.bench.targets import include_working_directory
        from allele.cli.progress import RichProgress

        # checked before the store opens: a spec that fails leaves no store file behind
        suite = _suite_to_run(spec, preset, resume, filters or [], name, max_cells)
        _check_run_options(workers, experiment, mlflow_uri, report)
        include_working_directory()  # `module:function` targets of the working directory
        with open_store_url(store, create=resume is None) as st:  # a resume needs one
            _check_store_for_run(st, spec, resume, name, max_cells, store)
            progress = None if quiet else RichProgress(err_console)
            runner = Runner(st, executor=executor, workers=workers, progress=progress)
            with sigterm_as_interrupt(), live_telemetry(st, live, metrics_port,
                                                        err_console) as publisher:
                runner.live = publisher
                if mlflow_uri is not None:
                    summary = _run_tracked(runner, suite, mlflow_uri, experiment, name=name,
                                           filters=filters or [], resume=resume)
                elif resume is not None:
                    summary = runner.resume(resume)
                else:
                    assert suite is not None
                    summary = runner.run(suite, name=name, filters=filters or [])
            line = _summary_line(summary)
            if summary.status == "interrupted":
                again = f"--resume {shell_word(summary.name)}{store_flag(store)}"
                err_console.print(f"[yellow]{line}[/]\nresume with: allele bench run "
                                  f"{esc(again)} (the cells stored and the "
                                  "finished rounds of the others are kept; only the rest "
                                  "runs)", highlight=False)
                raise typer.Exit(130)
            err_console.print(line, highlight=False)
            if not quiet:
                _show(st.load_run(summary.run_id), None)
            if report is not None:
                _write_report(st, summary.run_id, report, store)
            if summary.failed and strict:
                raise typer.Exit(1)


def _summary_line(summary: RunSummary) -> str:
    """How a run (or the resumed part of it) ended, in one line."""
    counted = (f", {summary.counted_only} only counted (their stored timings kept)"
               if summary.counted_only else "")
    return (f"run {esc(summary.name)} ({summary.run_id}): {summary.status}; "
            f"{summary.executed - summary.counted_only} cells run{counted}, "
            f"{summary.skipped} already done, {summary.failed} failed, {summary.seconds:.1f} s")


def _suite_to_run(spec: Path | None, preset: str | None, resume: str | None,
                  filters: list[str], name: str | None, max_cells: int | None) -> Any:
    """The spec a new run runs (None for a resume), after the option checks."""
    if resume is None and spec is None:
        raise ConfigError("allele bench run: give a SPEC file (or --resume RUN)")
    if resume is not None and (preset or filters or name):
        raise ConfigError("--resume reuses the run's own preset, filters and name; "
                          "do not pass --preset, --filter or --name with it")
    if max_cells is not None and max_cells < 1:
        raise ConfigError(f"--max-cells must be >= 1, got {max_cells}")
    if spec is None or resume is not None:
        return None
    return checked_suite(spec, preset=preset, filters=filters, max_cells=max_cells)


def _check_store_for_run(st: Any, spec: Path | None, resume: str | None,
                         name: str | None, max_cells: int | None, store: str | None) -> None:
    """What the store must allow before the run's telemetry starts (a run refused only at its
    creation had already stored a telemetry point): a resumed run's spec, a new run's name."""
    if resume is not None and spec is not None:
        _check_resumed_spec(st, spec, resume, max_cells, store)
    if resume is None and name is not None:
        st.check_name_free(name)


def _check_resumed_spec(st: Any, spec: Path, resume: str, max_cells: int | None,
                        store: str | None) -> None:
    """Refuse a SPEC that is not the spec the run was made from (its preset applied), naming
    what differs: a resume runs the stored plan, so a different file would be ignored."""
    from allele.bench.spec import SuiteSpec, load_suite

    info = st.get_run(resume)
    doc = info.spec if isinstance(info.spec, dict) else {}
    if "suite" not in doc:
        return  # not resumable at all: Runner.resume says so
    stored = SuiteSpec.model_validate(doc["suite"])
    on_file = load_suite(spec, preset=stored.preset, max_cells=max_cells)
    if on_file.name != stored.name:
        raise ConfigError(f"{spec}: run {info.name!r} was made from spec "
                          f"{stored.name!r}, not {on_file.name!r}")
    diffs = _differences(stored.model_dump(mode="json"), on_file.model_dump(mode="json"))
    if diffs:
        more = f"; and {len(diffs) - 3} more" if len(diffs) > 3 else ""
        raise ConfigError(f"{spec} is not the spec run {info.name!r} was made from: "
                          + "; ".join(diffs[:3]) + more + " (`allele bench run --resume "
                          f"{shell_word(info.name)}{store_flag(store)}` without SPEC resumes "
                          "with the stored spec)")


def _differences(stored: Any, on_file: Any, path: str = "") -> list[str]:
    """Where two spec documents differ, as ``path: the run has X, SPEC has Y`` lines
    (benchmarks named by their name)."""
    if isinstance(stored, dict) and isinstance(on_file, dict):
        out: list[str] = []
        for k in dict.fromkeys([*stored, *on_file]):
            out += _differences(stored.get(k), on_file.get(k), f"{path}.{k}" if path else k)
        return out
    if path == "benchmarks" and isinstance(stored, list) and isinstance(on_file, list):
        names = [[b.get("name") for b in side] for side in (stored, on_file)]
        if names[0] != names[1]:
            return [f"benchmarks: the run has {names[0]}, SPEC has {names[1]}"]
        return [d for a, b in zip(stored, on_file, strict=True)
                for d in _differences(a, b, f"benchmarks[{a.get('name')}]")]
    if stored == on_file:
        return []
    return [f"{path}: the run has {json.dumps(stored)}, SPEC has {json.dumps(on_file)}"]


def _run_tracked(runner: Any, suite: Any, uri: str, experiment: str | None, *,
                 name: str | None, filters: list[str], resume: str | None) -> Any:
    from allele.cli.bench_analysis import print_tracking_outcome
    from allele.tracking.mlflow import MlflowTracker, run_matrix_tracked

    with MlflowTracker(uri, experiment) as tracker:
        summary = run_matrix_tracked(tracker, runner, suite, name=name, filters=filters,
                                     resume=resume)
    print_tracking_outcome(tracker, uri)
    return summary


def _check_run_options(workers: int | None, experiment: str | None, mlflow_uri: str | None,
                       report: Path | None) -> None:
    """Options refused before the store opens (they were found after the run, or ignored)."""
    if workers is not None and workers < 1:  # it created the store, then refused
        raise ConfigError(f"--workers must be >= 1, got {workers}")
    if experiment is not None and mlflow_uri is None:  # it was silently ignored
        raise ConfigError("--experiment names an MLflow experiment: give --mlflow URI too")
    if report is not None:  # found unwritable only after the whole run, before
        check_writable(report)


def _write_report(st: Any, run_id: str, path: Path, store: str | None) -> None:
    """The HTML report of ``run_id``, against the previous finished run of the same spec."""
    from allele.bench.report import load_report_data, render_html
    from allele.bench.select import previous_run
    from allele.cli.comparison import print_conditions, shared_baseline

    info = st.get_run(run_id)
    baseline = shared_baseline(st, info, previous_run(st, info))
    data = load_report_data(st, run_id, baseline.id if baseline else None)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render_html(data), encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc}") from None
    against = f", compared with run {baseline.name} ({baseline.id})" if baseline else ""
    err_console.print(f"report written to {path.resolve()}{against}", highlight=False,
                      markup=False)
    comp = data.comparison
    if comp is not None:  # the verdicts in one line, so nobody has to open the report to know
        counts = comp.counts()
        style = "red" if counts["regressed"] else "green"
        err_console.print(f"[{style}]against {esc(comp.base.name)}:[/] "
                          + ", ".join(f"{n} {v}" for v, n in counts.items())
                          + f" (`allele bench compare {comp.base.id} {comp.head.id}"
                          f"{esc(store_flag(store))}` for the table)", highlight=False)
        print_conditions(comp)
        if comp.regressed:
            from allele.bench.alerting import cause_summaries, comparison_alerts
            from allele.cli.alerts import announce_regressions

            announce_regressions(st.url, lambda: comparison_alerts(
                comp, cause_summaries(data.baseline, data.run) if data.baseline else None),
                err_console)


@app.command("list")
def list_cmd(store: StoreOpt = None,
             limit: Annotated[int | None, typer.Option("--limit", help="Newest N runs.")] = 20,
             ) -> None:
    """List stored runs, newest first (a run whose runner was killed shows as interrupted)."""
    from allele.bench.lease import with_shown_status

    with one_line_errors():
        if limit is not None and limit < 1:
            raise ConfigError(f"--limit must be >= 1, got {limit}")
        with open_store_url(store, read_only=True) as st:
            runs = with_shown_status(st, st.list_runs(limit))
            table = Table(title=plain(f"runs in {st.url}" if runs else "no runs yet"))
        for col in ("id", "name", "spec", "targets", "status", "created", "cells", "failed"):
            table.add_column(col, justify="right" if col in ("cells", "failed") else "left")
        for r in runs:
            table.add_row(r.id, plain(r.name), plain(r.spec_name), plain(r.target), r.status,
                          when(r.created_at), cells_text(r), str(r.failed_count))
        console.print(table)


def cells_text(info: Any) -> str:
    """A run's cells for `list`: the count of a finished run; ``done of planned`` of one that
    is not (running, interrupted, failed) when its stored spec gives the plan."""
    if info.status == "finished":
        return str(info.cell_count)
    planned = planned_cells(info.spec)
    return str(info.cell_count) if planned is None else f"{info.cell_count} of {planned}"


def planned_cells(doc: Any) -> int | None:
    """How many cells the spec document a run stored plans (its suite, preset applied, and
    filters: what a resume would complete); None for a run without one (an import)."""
    from allele.bench.runner import stored_plan
    from allele.errors import BenchmarkError

    try:
        tasks = stored_plan(doc, "")
    except (BenchmarkError, ConfigError):  # no stored plan, or one of an older spec format
        return None
    return len({t.key for t in tasks})  # a task per round: a cell of 3 rounds is one cell


@app.command("show")
def show_cmd(
    run: Annotated[str, typer.Argument(help="Run id, name or 'latest'.")] = "latest",
    store: StoreOpt = None,
    metrics: Annotated[list[str] | None, typer.Option(
        "--metric", "-m", help="Only these metrics (repeatable).")] = None,
) -> None:
    """A table per benchmark target: every cell's median, IQR, 95% CI and failures."""
    from allele.bench.lease import record_with_shown_status

    with one_line_errors(), open_store_url(store, read_only=True) as st:
        record = record_with_shown_status(st, st.load_run(run))  # as `list` shows it
        measured = {m for c in record.cells for m in c.metrics()}
        unknown = [m for m in dict.fromkeys(metrics or []) if m not in measured]
        if unknown:
            raise ConfigError(f"run {record.info.name!r} has no metric "
                              f"{', '.join(map(repr, unknown))} (its metrics: "
                              f"{', '.join(sorted(measured)) or 'none'})")
        _show(record, metrics)


def _show(record: RunRecord, metrics: list[str] | None) -> None:
    from allele.bench.metrics import LOOPS_METRIC, loops_label, metric_order
    from allele.bench.summary import CI_METHOD, summarize_cell

    info = record.info
    env = info.environment or {}
    cpu = env.get("cpu") or {}
    git = env.get("git") or {}
    py = (env.get("python") or {}).get("version", "?")
    commit = (git.get("commit") or "")[:10] + ("+dirty" if git.get("dirty") else "")
    load = (env.get("load") or {}).get("1m")
    console.print(
        f"[bold]{esc(info.name)}[/] ({info.id}) spec {esc(info.spec_name)}: {info.status}, "
        f"{info.cell_count} cells, {info.failed_count} failed; {when(info.created_at)}; "
        f"{esc(cpu.get('model', '?'))} x{esc(cpu.get('logical', '?'))}, Python {esc(py)}"
        + (f", git {esc(commit)}" if commit else "")
        + (f", load {load:.2f} at start" if isinstance(load, int | float) else ""),
        highlight=False, soft_wrap=True)
    units = {n: d.unit for n, d in declarations_from_doc(info.spec).items()}
    by_target: dict[str, list[Any]] = {}
    for cell in record.cells:
        by_target.setdefault(cell.target, []).append(cell)
    for target, cells in by_target.items():
        varying = set(varying_params((c.params for c in cells), all_if_single=True))
        loops = loops_label(v for c in cells for v in c.values(LOOPS_METRIC))
        timed = f"; a sample timed {loops} calls" if loops else ""
        table = Table(title=plain(f"{target}: median, IQR and 95% CI ({CI_METHOD}){timed}"),
                      title_justify="left")
        for col, right in (("params", False), ("status", False), ("metric", False), ("n", True),
                           ("median", True), ("IQR", True), ("95% CI", True)):
            table.add_column(col, justify="right" if right else "left", no_wrap=col != "params")
        dropped_any = False
        for cell in sorted(cells, key=lambda c: c.key):
            params = plain(" ".join(f"{k}={v}" for k, v in cell.params.items()
                                    if k in varying))
            rows = summarize_cell(cell, metrics if metrics else metric_order(cell.metrics()))
            if cell.status != "ok":
                table.add_row(params, plain(cell.status, "red"), "error", "", "",
                              "", plain((cell.error or "")[:80]))
            for i, s in enumerate(rows):
                unit = units.get(s.metric)
                ci = plain(f"[{metric_value(s.ci_low, s.metric, unit)}, "
                           f"{metric_value(s.ci_high, s.metric, unit)}]"
                           if s.ci_low is not None and s.ci_high is not None else "n/a")
                first = i == 0 and cell.status == "ok"
                dropped_any = dropped_any or s.dropped > 0
                n = f"{s.n} (+{s.dropped} dropped)" if s.dropped else str(s.n)
                table.add_row(params if first else "", cell.status if first else "",
                              plain(s.metric), n, metric_value(s.median, s.metric, unit),
                              metric_value(s.iqr, s.metric, unit), ci)
            table.add_section()
        console.print(table)
        if dropped_any:  # they were left out without a word
            console.print("dropped: samples that are not finite numbers (NaN, inf) are left out "
                          "of n, the median, the IQR and the CI", markup=False)
    # an ok cell with an error text: a part of it failed (its instructions not counted)
    failed = [c for c in record.cells if c.status != "ok" or c.error]
    if failed:
        ft = Table(title="failures", title_justify="left")
        for col in ("cell", "status", "reason"):
            ft.add_column(col)
        for c in failed:
            ft.add_row(plain(c.key), c.status, plain(c.error or ""))
        console.print(ft)


@app.command("export")
def export_cmd(
    run: Annotated[str, typer.Argument(help="Run id, name or 'latest'.")],
    fmt: Annotated[str, typer.Option("--format", help="json or csv.")] = "json",
    output: Annotated[Path | None, typer.Option("--output", "-o",
                                                help="File; - or none: stdout.")] = None,
    store: StoreOpt = None,
) -> None:
    """Export a run with every raw sample (json: one document; csv: one row per sample)."""
    with one_line_errors():
        if fmt not in ("json", "csv"):
            raise ConfigError(f"--format {fmt!r}: allowed: json, csv")
        from allele.bench.export import export_csv, export_json
        from allele.bench.lease import record_with_shown_status

        with open_store_url(store, read_only=True) as st:
            record = record_with_shown_status(st, st.load_run(run))  # as `list` shows it
        text = export_json(record) if fmt == "json" else export_csv(record)
        if output is None or str(output) == "-":  # as report's -o - (it wrote a file "-")
            sys.stdout.write(text)
        else:
            try:
                output.write_text(text, encoding="utf-8")
            except OSError as exc:
                raise ConfigError(f"cannot write {output}: {exc}") from None
            err_console.print(f"wrote {output} ({len(record.cells)} cells)", highlight=False,
                              markup=False)


def _num(v: float | None) -> str:
    return number(v, sci_above=1e6, missing="n/a")


# compare, regressions, calibrate, report and import live in their own module.
from allele.cli.bench_analysis import register as _register_analysis  # noqa: E402

_register_analysis(app)

if __name__ == "__main__":
    app()
