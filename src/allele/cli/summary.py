"""The one screen a run ends with (``bench ab --brief``, which ``make run`` uses): what ran,
the verdicts with their reasons, the top findings, where the report and the dashboard are, and
the command for the full tables. Everything else (the tables, every note) is one command away,
so a newcomer sees the verdict without scrolling."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from allele.cli._common import esc
from allele.cli.comparison import store_flag

if TYPE_CHECKING:
    from allele.bench.compare import Comparison, MetricComparison
    from allele.store.model import RunRecord

TOP = 5


def ran_line(run: RunRecord) -> str:
    """``ran 12 cells (evolution 4, kraken 4, agent 4), 0 failed``."""
    per_target = Counter(c.target for c in run.cells)
    failed = sum(c.status != "ok" for c in run.cells)
    targets = ", ".join(f"{t} {n}" for t, n in per_target.items())
    cut = ", interrupted before the end" if run.info.status == "interrupted" else ""
    return f"ran {len(run.cells)} cells ({targets}), {failed} failed{cut}"


def _finding(row: MetricComparison) -> str:
    est = row.estimate
    change = f"{est.ratio - 1:+.1%}" if math.isfinite(est.ratio) else "n/a"
    interval = (f" (95% CI {est.ci_low - 1:+.1%} .. {est.ci_high - 1:+.1%})"
                if math.isfinite(est.ci_low) and math.isfinite(est.ci_high) else "")
    q = f", q {est.q_value:.2g}" if math.isfinite(est.q_value) else ""
    return f"{row.verdict} {row.target} {row.metric} {change}{interval}{q}  [{row.key}]"


def top_findings(comp: Comparison, limit: int = TOP) -> list[MetricComparison]:
    """The rows worth a look first: regressions, then improvements, largest change first."""
    def size(row: MetricComparison) -> float:
        r = row.estimate.ratio
        return abs(math.log(r)) if r > 0 and math.isfinite(r) else math.inf

    return (sorted(comp.regressed, key=size, reverse=True)
            + sorted(comp.improved, key=size, reverse=True))[:limit]


def print_summary(console: Console, comp: Comparison | None, run: RunRecord,
                  report: Path | None, store: str | None = None) -> None:
    """The closing screen of a run (``comp`` None: nothing earlier to compare with; ``store``:
    the ``--store`` given, carried into the commands it suggests)."""
    console.print(ran_line(run), highlight=False, markup=False)
    if comp is None:
        console.print("no earlier run of this spec: the next run is compared with this one",
                      highlight=False)
    else:
        counts = comp.counts()
        style = "red" if counts["regressed"] or comp.broken else "green"
        console.print(f"[{style}]verdict against {esc(comp.base.name)}:[/] "
                      + ", ".join(f"{n} {v}" for v, n in counts.items()), highlight=False)
        if comp.broken:
            console.print(f"  [red]broken in this run, ok in {esc(comp.base.name)}:[/] "
                          + esc(", ".join(f.key for f in comp.broken[:3]))
                          + (f" and {len(comp.broken) - 3} more" if len(comp.broken) > 3
                             else ""), highlight=False)
        reasons = comp.reasons()
        if reasons:
            console.print("  inconclusive because: " + ", ".join(
                f"{n} {esc(r)}" for r, n in sorted(reasons.items(), key=lambda kv: -kv[1])),
                highlight=False)
        for warning in comp.warnings[:1]:
            console.print(f"  [yellow]warning:[/] {esc(warning)}", highlight=False)
        shifts = [s for s in comp.shifts if s.significant]
        if shifts:
            console.print("  the whole run moved: " + ", ".join(
                f"{s.metric} {s.ratio - 1:+.1%}" for s in shifts[:3])
                + " (an environment change, taken out of every row)", highlight=False)
        findings = top_findings(comp)
        if findings:
            console.print("top findings:", highlight=False)
            for row in findings:
                console.print(f"  {esc(_finding(row))}", highlight=False)
        else:
            console.print("top findings: none beyond the noise", highlight=False)
    if report is not None:
        console.print(f"report:    {report.resolve()}", highlight=False, markup=False)
    where = store_flag(store)  # pasted, the commands reach the store the user named
    console.print(f"dashboard: allele dashboard{where}  (then http://127.0.0.1:8050/)",
                  highlight=False, markup=False)
    if comp is not None:
        console.print(f"tables:    allele bench compare {comp.base.id} {comp.head.id} --all"
                      f"{where}", highlight=False, markup=False)
