"""``allele bench explain BASE HEAD [--filter ...] [--top N] [--json]``: why instruction counts
changed between two runs (:mod:`allele.bench.explain`)."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from allele.bench.format import params_text
from allele.cli._common import StoreOpt, esc, make_console, one_line_errors, open_store_url, plain
from allele.errors import ConfigError

if TYPE_CHECKING:
    from allele.bench.explain import CellExplanation, Explanation

console = make_console(width=160)


def _count(v: float) -> str:
    return f"{v:,.0f}"


def _signed(v: int) -> str:
    return f"{v:+,d}"


def _change(ratio: float) -> str:
    return f"{(ratio - 1.0) * 100:+.2f}%"


def print_cell(cell: CellExplanation) -> None:
    """One changed cell: its count, then the Python calls and C functions that moved."""
    style = {"regressed": "bold red", "improved": "bold green"}.get(cell.verdict, "yellow")
    console.print(f"\n[bold]{esc(cell.target)}[/] {esc(params_text(cell.params))}: "
                  f"instructions {_count(cell.base)} → {_count(cell.head)} "
                  f"({_change(cell.ratio)}) [{style}]{esc(cell.verdict)}[/]", highlight=False)
    seeds = f" (the {cell.seeds} counted seeds together)" if cell.seeds > 1 else ""
    if cell.note:
        console.print(f"  [yellow]note:[/] {esc(cell.note)}", highlight=False)
    if cell.calls:
        table = Table(title="Python functions whose call counts changed (the likeliest cause "
                      "first: ranked by the change of the calls beneath them)" + seeds,
                      title_justify="left")
        for col in ("function", "calls base", "calls head", "change", "calls beneath: change"):
            table.add_column(col, justify="left" if col == "function" else "right")
        for d in cell.calls:
            table.add_row(plain(d.name), f"{d.base_calls:,}", f"{d.head_calls:,}",
                          _signed(d.delta), _signed(d.beneath_delta))
        console.print(table)
    elif not cell.note:
        console.print("  no Python function's call count changed (the change is in C code, "
                      "or in a loop inside one Python function)", highlight=False)
    for title, rows, by in ((f"C functions: largest changes of self instructions{seeds}",
                             cell.self_costs, "self"),
                            (f"C functions: largest changes of inclusive instructions{seeds}",
                             cell.inclusive_costs, "inclusive")):
        if not rows:
            continue
        table = Table(title=title, title_justify="left")
        for col in ("function", "base", "head", "change"):
            table.add_column(col, justify="left" if col == "function" else "right")
        for c in rows:
            b, h = (c.base_self, c.head_self) if by == "self" else (c.base_inclusive,
                                                                    c.head_inclusive)
            table.add_row(plain(c.name), f"{b:,}", f"{h:,}", _signed(h - b))
        console.print(table)


def print_explanation(exp: Explanation) -> None:
    """Every changed cell, then one line on the rest."""
    console.print(f"{esc(exp.base.name)} → {esc(exp.head.name)}: {len(exp.cells)} of "
                  f"{exp.counted} cells with instruction counts in both runs changed "
                  f"({exp.unchanged} unchanged within the tolerance)", highlight=False)
    for cell in exp.cells:
        print_cell(cell)


def explain_cmd(
    base: Annotated[str, typer.Argument(help="Baseline run: id, name or 'latest'.")],
    head: Annotated[str, typer.Argument(help="Run to explain: id, name or 'latest'.")]
    = "latest",
    filters: Annotated[list[str] | None, typer.Option(
        "--filter", "-f", help="Only cells with key=value, or whose key matches a glob "
        "(repeatable).")] = None,
    top: Annotated[int, typer.Option("--top", min=1, help="Functions listed per table.")]
    = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
    = False,
    store: StoreOpt = None,
) -> None:
    """Why instruction counts changed: for each cell whose `instructions` moved beyond its
    tolerance, the Python functions whose call counts changed and the C functions with the
    largest changes of self and inclusive instructions (benchmarks run with
    `instruments: \\[instructions]`)."""  # \\[: the help's markup ate "[instructions]"
    with one_line_errors():
        from allele.bench.explain import explain_runs

        with open_store_url(store, read_only=True) as st:
            exp = explain_runs(st, base, head, filters=filters or [], top=top)
        if exp.base.id == exp.head.id:
            raise ConfigError(f"BASE and HEAD are the same run ({exp.base.name})")
        if exp.counted == 0:
            raise ConfigError(
                f"no cell has instruction counts in both {exp.base.name} and {exp.head.name}"
                " (run the benchmarks with `instruments: [time, instructions]`)")
        if as_json:
            doc = {"base": exp.base.name, "head": exp.head.name, "counted": exp.counted,
                   "unchanged": exp.unchanged, "cells": [asdict(c) for c in exp.cells]}
            sys.stdout.write(json.dumps(doc, indent=2) + "\n")
        else:
            print_explanation(exp)


def register(app: typer.Typer) -> None:
    """Add ``explain`` to the ``bench`` command group."""
    app.command("explain")(explain_cmd)
