"""Analysis commands of ``allele bench``: compare, regressions, calibrate, report, import.

    allele bench compare BASE HEAD [--json] [--fail-on regressed|inconclusive|never]
                                   [--q 0.05] [--floor 0.05] [--all] [--store URL]
    allele bench regressions [--cell PATTERN ...] [--since RUN|DATE|7d] [--metric M ...] [--json]
    allele bench calibrate SPEC [--preset NAME] [--workers N] [--executor KIND]
    allele bench report RUN [--baseline RUN] -o report.html [--format html|markdown]
    allele bench import FILE.json ... [--name NAME]

This module only composes :mod:`allele.bench.compare`, :mod:`allele.bench.regress`,
:mod:`allele.bench.report` and :mod:`allele.bench.importers`; :func:`register` adds the commands
to the ``bench`` group (``allele.cli.bench`` calls it). Heavy imports happen inside commands.
"""

from __future__ import annotations

import json
import math
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from allele.bench.format import number, params_text, pct
from allele.cli._common import (
    StoreOpt,
    esc,
    make_console,
    one_line_errors,
    open_store_url,
    plain,
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


_STYLE = {"regressed": "bold red", "improved": "bold green", "inconclusive": "yellow",
          "unchanged": "dim"}




def _num(v: float) -> str:
    return number(v, sci_above=None)


def _print_comparison(comp: Comparison, show_all: bool) -> None:
    from allele.bench.compare import VERDICT_RANK, row_params, split_params

    counts = comp.counts()
    rows = comp.rows if show_all else [r for r in comp.rows if r.verdict != "unchanged"]
    rows = sorted(rows, key=lambda r: (VERDICT_RANK[r.verdict], r.key, r.metric))
    table = Table(title=plain(f"{comp.base.name} → {comp.head.name}: "
                              + ", ".join(f"{n} {v}" for v, n in counts.items())))
    for col in ("target", "params", "metric", "base", "head", "change", "95% CI", "q", "MDE",
                "verdict"):
        table.add_column(col, justify="right" if col in ("base", "head", "change", "q", "MDE")
                         else "left", overflow="fold")
    shown = split_params(comp.rows)
    for r in rows:
        e = r.estimate
        table.add_row(plain(r.target), plain(params_text(row_params(shown, r))), plain(r.metric),
                      _num(e.median_base), _num(e.median_head), pct(e.ratio),
                      plain(f"[{pct(e.ci_low)}, {pct(e.ci_high)}]"), _num(e.q_value),
                      "n too small" if math.isinf(e.mde) else f"{e.mde:.1%}",
                      f"[{_STYLE[r.verdict]}]{r.verdict}[/]")
    if rows:
        console.print(table)
        for target, (_, fixed) in shown.items():
            if fixed and any(r.target == target for r in rows):
                console.print(f"[dim]{esc(target)}, in every cell: {esc(params_text(fixed))}[/]",
                              highlight=False)
    else:
        console.print(f"{comp.base.name} → {comp.head.name}: all {len(comp.rows)} cell metrics "
                      f"unchanged (q={comp.q}, floor {comp.floor:.0%})", markup=False)
    blind = [r for r in comp.rows if math.isinf(r.estimate.mde)]
    if blind:
        n = blind[0].estimate.n_head
        err_console.print(
            f"[yellow]note:[/] {len(blind)} of {len(comp.rows)} cell metrics have too few "
            f"samples (e.g. {n}) for any verdict to survive FDR control over "
            f"{len(comp.rows)} comparisons; add seeds or repeats to the spec.", highlight=False)
    print_conditions(comp)
    if comp.failures:
        err_console.print(f"[red]{len(comp.failures)} cells failed in one of the runs:[/] "
                          + esc("; ".join(f"{f.key} ({f.base_status}→{f.head_status})"
                                          for f in comp.failures[:5])), highlight=False)
    if comp.only_in_base or comp.only_in_head:
        err_console.print(f"{len(comp.only_in_base)} cells only in {comp.base.name}, "
                          f"{len(comp.only_in_head)} only in {comp.head.name} (not compared)",
                          highlight=False, markup=False)


def print_conditions(comp: Comparison) -> None:
    """What besides the code may have moved the numbers: a busier machine, run-to-run noise."""
    for warning in comp.warnings:
        err_console.print(f"[yellow]warning:[/] {esc(warning)}", highlight=False)
    note = comp.noise_note()
    if note:
        err_console.print(f"[yellow]note:[/] {esc(note)}", highlight=False)


def compare_cmd(
    base: Annotated[str, typer.Argument(help="Baseline run: id, name or 'latest'.")],
    head: Annotated[str, typer.Argument(help="Run to judge: id, name or 'latest'.")] = "latest",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
    = False,
    fail_on: Annotated[FailOn, typer.Option(
        "--fail-on", help="Exit 1 when anything regressed (default), also when anything is "
        "inconclusive, or never.")] = FailOn.regressed,
    q: Annotated[float, typer.Option("--q", help="False-discovery rate (Benjamini-Hochberg).")]
    = 0.05,
    floor: Annotated[float, typer.Option(
        "--floor", help="Practical floor: smallest relative change worth a verdict.")] = 0.05,
    seed: Annotated[int, typer.Option("--seed", help="Bootstrap seed.")] = 0,
    show_all: Annotated[bool, typer.Option("--all", help="Also list unchanged cells.")] = False,
    history: Annotated[int, typer.Option(
        "--history", min=0, help="Runs up to HEAD whose run-to-run noise may raise a cell's "
        "floor (0: the floor alone).")] = 20,
    store: StoreOpt = None,
) -> None:
    """Compare two runs cell by cell: ratio, bootstrap CI, FDR-controlled verdicts."""
    with one_line_errors():
        from allele.bench.compare import compare_runs, run_to_run_noise
        from allele.bench.history import load_history

        with open_store_url(store, read_only=True) as st:
            b = st.load_run(base)
            h = st.load_run(head)
            if b.info.id == h.info.id:
                raise ConfigError(f"BASE and HEAD are the same run ({b.info.name})")
            past = load_history(st, h.info, history)
        comp = compare_runs(b, h, q=q, floor=floor, seed=seed, noise=run_to_run_noise(past))
        if as_json:
            sys.stdout.write(json.dumps(comp.to_dict(), indent=2, allow_nan=False) + "\n")
        else:
            _print_comparison(comp, show_all)
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
                      f"{g.p_value:.2g}", f"{len(g.changes)}/{g.cells_checked}",
                      plain(g.attribution.description))
    console.print(table)


def regressions_cmd(
    cells: Annotated[list[str] | None, typer.Option(
        "--cell", "-c", help="Only cells matching: param=value, target=NAME, or a glob on the "
        "cell key (repeatable).")] = None,
    since: Annotated[str | None, typer.Option(
        "--since", help="Only changes from this run, date (2026-11-01) or age (7d) on.")] = None,
    metrics: Annotated[list[str] | None, typer.Option(
        "--metric", "-m", help="Only these metrics (repeatable).")] = None,
    runs_limit: Annotated[int, typer.Option("--runs", help="Look at the newest N runs.")]
    = 200,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    fail: Annotated[bool, typer.Option(
        "--fail", help="Exit 1 when a regression is found.")] = False,
    store: StoreOpt = None,
) -> None:
    """Change points over each cell's history of runs (E-divisive means + t-test)."""
    with one_line_errors():
        from allele.bench.history import recent_history
        from allele.bench.regress import analyse_runs
        from allele.bench.select import cell_matcher, parse_since

        with open_store_url(store, read_only=True) as st:
            runs = recent_history(st, runs_limit)
            since_ts = parse_since(since, st) if since else None
        report = analyse_runs(runs, cell_filter=cell_matcher(cells or []), metrics=metrics,
                              since=since_ts)
        if as_json:
            sys.stdout.write(json.dumps(report.to_dict(), indent=2) + "\n")
        else:
            _print_regressions(report)
    if fail and report.regressions:
        raise typer.Exit(1)


def calibrate_cmd(
    spec: Annotated[Path, typer.Argument(help="Spec YAML file to run twice (A/A).")],
    preset: Annotated[str | None, typer.Option("--preset", "-p", help="Preset of the spec.")]
    = None,
    workers: Annotated[int | None, typer.Option("--workers", "-w", help="Worker processes.")]
    = None,
    executor: Annotated[str, typer.Option("--executor", "-e", help="Executor kind.")]
    = "local",
    q: Annotated[float, typer.Option("--q", help="False-discovery rate.")] = 0.05,
    floor: Annotated[float, typer.Option("--floor", help="Practical floor.")] = 0.05,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    store: StoreOpt = None,
) -> None:
    """A/A calibration: run SPEC twice and report the comparison's false-positive rate."""
    with one_line_errors():
        from allele.bench.calibrate import calibrate
        from allele.bench.spec import load_suite
        from allele.cli.progress import RichProgress

        suite = load_suite(spec, preset=preset)
        with open_store_url(store) as st:
            result = calibrate(st, suite, executor=executor, workers=workers, q=q, floor=floor,
                               progress=None if as_json else RichProgress(err_console))
        if as_json:
            sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
            return
        first, second = result.runs
        table = Table(title=plain(f"A/A calibration of {suite.name}: {first} vs {second} "
                                  f"(q={q}, floor {floor:.0%})"))
        for col in ("target", "cells", "comparisons", "false positives", "FP rate",
                    "inconclusive", "flagged metrics"):
            table.add_column(col, justify="left" if col in ("target", "flagged metrics")
                             else "right")
        for c in result.targets:
            flagged = ", ".join(f"{m} ({n})" for m, n in c.false_positives_by_metric.items()
                                if n) or "-"
            table.add_row(plain(c.target), str(c.cells), str(c.comparisons),
                          str(c.false_positives), f"{c.false_positive_rate:.1%}",
                          f"{c.inconclusive_rate:.1%}", plain(flagged))
        console.print(table)


def report_cmd(
    run: Annotated[str, typer.Argument(help="Run id, name or 'latest'.")] = "latest",
    baseline: Annotated[str | None, typer.Option(
        "--baseline", "-b", help="Run to compare with.")] = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", help="File to write (default: report.html / report.md).")] = None,
    fmt: Annotated[Format, typer.Option("--format", "-f", help="html or markdown.")]
    = Format.html,
    q: Annotated[float, typer.Option("--q", help="False-discovery rate.")] = 0.05,
    floor: Annotated[float, typer.Option("--floor", help="Practical floor.")] = 0.05,
    store: StoreOpt = None,
) -> None:
    """Write a self-contained HTML report (or Markdown for a pull request) of a run."""
    with one_line_errors():
        from allele.bench.report import build_report

        with open_store_url(store, read_only=True) as st:
            text = build_report(st, run, baseline, fmt=fmt.value, q=q, floor=floor)
        path = output or Path("report.md" if fmt is Format.markdown else "report.html")
        if str(path) == "-":
            sys.stdout.write(text)
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot write {path}: {exc}") from None
        err_console.print(f"report written to {path.resolve()}", highlight=False, markup=False)


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
            if name is not None:
                ids = [import_pytest_benchmark(st, files[0], name=name)]
            else:
                ids = import_files(st, files)
            for run_id in ids:
                info = st.get_run(run_id)
                err_console.print(f"imported run {info.name} ({info.id}): "
                                  f"{info.cell_count} benchmarks, {info.failed_count} failed",
                                  highlight=False, markup=False)


def register(app: typer.Typer) -> None:
    """Add the analysis commands to the ``bench`` command group."""
    app.command("compare")(compare_cmd)
    app.command("regressions")(regressions_cmd)
    app.command("calibrate")(calibrate_cmd)
    app.command("report")(report_cmd)
    app.command("import")(import_cmd)
