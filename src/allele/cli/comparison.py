"""How the bench commands show a comparison, and what they refuse to compare.

The table of :func:`print_comparison` (or JSON), the conditions and notes beside it, the line
on failed cells; runs that share no cell, which would compare nothing and pass every gate
(:func:`require_shared_cell` for runs asked for, :func:`shared_baseline` for a baseline picked
automatically). Used by ``allele bench compare`` / ``ab`` / ``report`` and ``run --report``.
"""

from __future__ import annotations

import json
import shlex
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from allele.bench.format import number, params_text, pct, quantity
from allele.cli._common import esc, make_console, plain
from allele.errors import ConfigError

if TYPE_CHECKING:
    from allele.bench.compare import Comparison

console = make_console(width=160)
err_console = make_console(stderr=True, width=160)

_STYLE = {"regressed": "bold red", "improved": "bold green", "inconclusive": "yellow",
          "unchanged": "dim"}


def _q_in_range(value: float) -> float:
    if not 0.0 < value < 1.0:  # (also refuses nan)
        raise typer.BadParameter(f"a false-discovery rate in (0, 1) (0.05 is 5%), got {value}")
    return value


QOpt = Annotated[float, typer.Option(
    "--q", callback=_q_in_range,
    help="False-discovery rate (Benjamini-Hochberg), a fraction in (0, 1).")]
"""``--q`` of the bench commands that judge verdicts, refused outside (0, 1) when the options
are parsed: ``ab --q 2`` ran the whole session before saying so."""


def store_flag(store: str | None) -> str:
    """`` --store URL`` (quoted for the shell) for a printed follow-up command, so that pasting
    it reaches the store the user named; empty when the default store was used."""
    return "" if store is None else f" --store {shlex.quote(store)}"


def shell_word(text: str) -> str:
    """A run name (or other user text) as one word of a printed command."""
    return shlex.quote(text)


def _num(v: float) -> str:
    return number(v, sci_above=None)


def no_shared_cell(base: str, base_keys: set[str], head: str,
                   head_keys: set[str]) -> str | None:
    """Why runs ``base`` and ``head`` (named, with their cell keys) cannot be compared: they
    share no cell, so a comparison would judge nothing and pass every gate. None when they
    share one."""
    if base_keys & head_keys:
        return None
    return (f"runs {base} and {head} share no cell ({base} has {len(base_keys)}, {head} has "
            f"{len(head_keys)}): nothing to compare")


def loaded_no_shared_cell(base: Any, head: Any) -> str | None:
    """:func:`no_shared_cell` of two loaded runs."""
    return no_shared_cell(base.info.name, {c.key for c in base.cells}, head.info.name,
                          {c.key for c in head.cells})


def interrupted_empty(*runs: Any) -> str | None:
    """Why loaded ``runs`` hold nothing to compare when one of them was interrupted before it
    stored a cell (None otherwise): "share no cell, compare runs of one spec" misread that."""
    cut = [r.info.name for r in runs if not r.cells and r.info.status == "interrupted"]
    if not cut:
        return None
    if len(cut) == 1:
        return f"run {cut[0]} was interrupted before any cell was stored: nothing to compare"
    return (f"runs {' and '.join(cut)} were interrupted before any cell was stored: nothing "
            "to compare")


def require_shared_cell(base: Any, head: Any, store: str | None = None) -> None:
    """One clear error when two loaded runs share no cell (``store``: the ``--store`` given,
    carried into the command the error suggests)."""
    problem = loaded_no_shared_cell(base, head)
    if problem is None:
        return
    cut = interrupted_empty(base, head)
    if cut is not None:
        raise ConfigError(cut)
    raise ConfigError(f"{problem}; compare runs of one spec (`allele bench "
                      f"list{store_flag(store)}` shows each run's spec)")


def print_comparison(comp: Comparison, show_all: bool) -> None:
    """The comparison table (rows that moved or could not be decided; all with ``show_all``),
    then what else a reader must know: run-wide shifts, rows left out of the family,
    warnings, failed and missing cells."""
    from allele.bench.compare import (
        VERDICT_RANK,
        mde_text,
        metric_label,
        row_params,
        split_params,
        verdict_label,
    )

    counts = comp.counts()
    rows = comp.rows if show_all else [r for r in comp.rows if r.verdict != "unchanged"]
    rows = sorted(rows, key=lambda r: (VERDICT_RANK[r.verdict], r.key, r.metric))
    design = "A/B session" if comp.mode == "ab" else "two runs"
    table = Table(title=plain(f"{comp.base.name} → {comp.head.name} ({design}): "
                              + ", ".join(f"{n} {v}" for v, n in counts.items())))
    for col in ("target", "params", "metric", "base", "head", "change", "95% CI", "q", "MDE",
                "verdict"):
        table.add_column(col, justify="right" if col in ("base", "head", "change", "q", "MDE")
                         else "left", overflow="fold")
    shown = split_params(comp.rows)
    for r in rows:
        e = r.estimate
        table.add_row(plain(r.target), plain(params_text(row_params(shown, r))),
                      plain(metric_label(r)), quantity(e.base, r.unit),
                      quantity(e.head, r.unit), pct(e.ratio),
                      plain(e.interval_text), _num(e.q_value),
                      mde_text(e),
                      f"[{_STYLE[r.verdict]}]{esc(verdict_label(e))}[/]")
    if rows:
        console.print(table)
        for target, (_, fixed) in shown.items():
            if fixed and any(r.target == target for r in rows):
                console.print(f"[dim]{esc(target)}, in every cell: {esc(params_text(fixed))}[/]",
                              highlight=False)
    elif comp.rows:
        console.print(f"{comp.base.name} → {comp.head.name} ({design}): all {len(comp.rows)} "
                      f"cell metrics unchanged (q={comp.q}, floor {comp.floor:.0%})",
                      markup=False)
    else:  # shared cells without a metric measured in both (a session stopped early)
        console.print(f"{comp.base.name} → {comp.head.name} ({design}): no metric measured in "
                      "both runs, nothing compared", markup=False)
    print_conditions(comp)
    if comp.failures:
        err_console.print(failures_line(comp), highlight=False)
    if comp.only_in_base or comp.only_in_head:
        err_console.print(f"{len(comp.only_in_base)} cells only in {comp.base.name}, "
                          f"{len(comp.only_in_head)} only in {comp.head.name} (not compared)",
                          highlight=False, markup=False)


def failures_line(comp: Comparison) -> str:
    """The cells not compared because they failed: how many in both runs and in one, and the
    first five (markup)."""
    both = sum(f.base_status != "ok" and f.head_status != "ok" for f in comp.failures)
    where = [f"{n} in {side}" for n, side in ((both, "both runs"),
                                              (len(comp.failures) - both, "one run")) if n]
    shown = "; ".join(f"{f.key} ({f.base_status}→{f.head_status})" for f in comp.failures[:5])
    more = f"; and {len(comp.failures) - 5} more" if len(comp.failures) > 5 else ""
    n = len(comp.failures)
    broke = len(comp.broken)
    gate = (f" [red]HEAD broke {broke} {'cell' if broke == 1 else 'cells'} that passed in BASE:"
            " the gate fails on it.[/]" if broke else "")
    return (f"[red]{n} {'cell' if n == 1 else 'cells'} failed, not compared "
            f"({', '.join(where)}):[/] "
            + esc(shown + more) + gate)


def print_conditions(comp: Comparison) -> None:
    """What besides the code may have moved the numbers: a busier machine, a run-wide shift,
    rows that cannot reach significance."""
    for warning in comp.warnings:
        err_console.print(f"[yellow]warning:[/] {esc(warning)}", highlight=False)
    for note in comp.notes():
        err_console.print(f"[yellow]note:[/] {esc(note)}", highlight=False)


def emit_comparison(comp: Comparison, *, as_json: bool, show_all: bool) -> None:
    """The comparison as JSON on stdout, or as the table."""
    if as_json:
        sys.stdout.write(json.dumps(comp.to_dict(), indent=2, allow_nan=False) + "\n")
    else:
        print_comparison(comp, show_all)


def named_keys(st: Any, ref: str) -> tuple[str, set[str]]:
    info = st.get_run(ref)
    return info.name, st.finished_cell_keys(info.id)


def shared_baseline(st: Any, run: Any, baseline: Any) -> Any:
    """``baseline`` (the previous run chosen for ``run``), or None, saying why on stderr, when
    the two share no cell: a comparison of nothing would pass as "nothing changed"."""
    if baseline is None:
        return None
    problem = no_shared_cell(baseline.name, st.finished_cell_keys(baseline.id), run.name,
                             st.finished_cell_keys(run.id))
    if problem is None:
        return baseline
    err_console.print(f"note: the previous run of the spec: {problem}; no comparison",
                      style="yellow", highlight=False, markup=False)
    return None
