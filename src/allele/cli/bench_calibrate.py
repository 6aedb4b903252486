"""``allele bench calibrate SPEC``: A/A pairs, how often this machine gives a false verdict.

This module only composes :mod:`allele.bench.calibrate`; :func:`register` adds the command to
the ``bench`` group (:func:`allele.cli.bench_analysis.register` calls it).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from allele.bench.format import params_text
from allele.cli._common import (
    FloorOpt,
    StoreOpt,
    checked_suite,
    make_console,
    one_line_errors,
    open_store_url,
    plain,
)

console = make_console(width=160)
err_console = make_console(stderr=True, width=160)


def calibrate_cmd(
    spec: Annotated[Path, typer.Argument(help="Spec YAML file to run as A/A pairs.")],
    pairs: Annotated[int, typer.Option("--pairs", "-k", min=1, help="A/A pairs to run.")] = 10,
    preset: Annotated[str | None, typer.Option("--preset", "-p", help="Preset of the spec.")]
    = None,
    workers: Annotated[int | None, typer.Option("--workers", "-w", help="Worker processes.")]
    = None,
    executor: Annotated[str, typer.Option("--executor", "-e", help="Executor kind.")]
    = "local",
    q: Annotated[float, typer.Option("--q", help="False-discovery rate.")] = 0.05,
    floor: FloorOpt = 0.05,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    store: StoreOpt = None,
) -> None:
    """A/A calibration: run SPEC as K pairs, compare each exactly as `compare` does, and
    report the share of pairs with any false verdict and each cell's run-level spread."""
    with one_line_errors():
        from allele.bench.calibrate import calibrate
        from allele.cli.progress import RichProgress

        suite = checked_suite(spec, preset=preset)  # before a store is created
        with open_store_url(store) as st:
            result = calibrate(st, suite, pairs=pairs, executor=executor, workers=workers,
                               q=q, floor=floor,
                               progress=None if as_json else RichProgress(err_console))
        if as_json:
            sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
            return
        _print_calibration(result)


def _print_calibration(result: Any) -> None:
    lo, hi = result.interval
    n = len(result.pairs)
    console.print(f"A/A calibration of {result.suite}: {result.flagged_pairs} of {n} pairs "
                  f"with any false verdict ({result.rate:.0%}, 95% CI {lo:.0%} .. {hi:.0%}; "
                  f"q={result.q}, floor {result.floor:.0%})", highlight=False, markup=False)
    table = Table(title="false verdicts per target, over all pairs")
    for col in ("target", "cells", "comparisons", "false", "false rate", "inconclusive",
                "flagged metrics"):
        table.add_column(col, justify="left" if col in ("target", "flagged metrics")
                         else "right")
    for c in result.targets:
        flagged = ", ".join(f"{m} ({k})" for m, k in c.false_positives_by_metric.items()
                            if k) or "-"
        table.add_row(plain(c.target), str(c.cells), str(c.comparisons), str(c.false_positives),
                      f"{c.false_positive_rate:.1%}", f"{c.inconclusive_rate:.1%}", plain(flagged))
    console.print(table)
    noisy = sorted(result.spreads, key=lambda c: -c.spread)[:10]
    if noisy:
        spread = Table(title="run-level spread (the noisiest cells): how much a cell's level "
                             "moves between identical runs")
        for col in ("target", "params", "metric", "runs", "between runs", "sampling alone"):
            spread.add_column(col, justify="right" if col in ("runs", "between runs",
                                                               "sampling alone") else "left")
        for c in noisy:
            spread.add_row(plain(c.target), plain(params_text(c.params)), plain(c.metric),
                           str(c.runs),
                           f"{c.spread:.1%}", f"{c.within:.1%}")
        console.print(spread)
    if result.deterministic_flags:
        err_console.print(f"[red]{result.deterministic_flags} deterministic rows flagged:[/] "
                          "a counter that is not deterministic (not counted in the rate)",
                          highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``calibrate`` to the ``bench`` command group."""
    app.command("calibrate")(calibrate_cmd)
