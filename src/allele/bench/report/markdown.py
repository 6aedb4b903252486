"""The Markdown report, made for a pull-request comment: verdict counts, the cells that moved,
regressions in the history, failures and the environment differences."""

from __future__ import annotations

import html
import math
import re
from collections.abc import Sequence

from allele.bench.compare import (
    change_legend,
    environment_diff,
    mde_text,
    metric_label,
    verdict_label,
)
from allele.bench.format import number, pct, quantity
from allele.bench.report.data import (
    ReportData,
    _failures,
    _params_text,
    _ShownParams,
    _sorted_rows,
)

MAX_ROWS_MD = 40


# --------------------------------------------------------------------------------------------
# Markdown


def _md_escape(text: str) -> str:
    """User text in a table cell or a line: HTML (``<script>`` in an error) is shown as text,
    never interpreted; ``|`` and newlines cannot break the table."""
    return (html.escape(str(text), quote=False).replace("|", "\\|")
            .replace("\r", " ").replace("\n", " "))


def _md_code(text: str) -> str:
    """User text as an inline code span, whatever backticks it holds."""
    text = str(text).replace("\r", " ").replace("\n", " ")
    longest = max((len(run) for run in re.findall("`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _md_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(_md_escape(h) for h in headers) + " |",
             "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(_md_escape(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(data: ReportData) -> str:
    """A compact Markdown summary for a pull-request comment."""
    info = data.run.info
    out = [f"## Allele benchmark: {_md_code(info.name)}", ""]
    out.append(f"spec {_md_code(info.spec_name)} · {info.status} · "
               f"{info.cell_count or len(data.run.cells)} cells, "
               f"{len(_failures(data))} failed")
    out.append("")
    comp = data.comparison
    if comp is not None:
        counts = comp.counts()
        verdict = ("**regressions found**" if counts["regressed"] else "no regression")
        out.append(f"### Against {_md_code(comp.base.name)}: {verdict}")
        out.append("")
        out.append(" · ".join(f"{v}: {n}" for v, n in counts.items()) +
                   f" (FDR q = {comp.q}, floor {comp.floor:.0%})")
        out.append("")
        out.append(f"_{_md_escape(change_legend(comp))}._")
        out.append("")
        for warning in comp.warnings:
            out.append(f"> **Warning:** {_md_escape(warning)}.")
            out.append("")
        for note in comp.notes():
            out.append(f"_{_md_escape(note)}._")
            out.append("")
        moved = [r for r in _sorted_rows(comp) if r.verdict != "unchanged"]
        shown = _ShownParams(comp)
        if moved:
            rows = [[verdict_label(r.estimate), r.target, shown.text(r), metric_label(r),
                     quantity(r.estimate.base, r.unit), quantity(r.estimate.head, r.unit),
                     pct(r.estimate.ratio),
                     r.estimate.interval_text,
                     number(r.estimate.q_value, 2),
                     mde_text(r.estimate)]
                    for r in moved[:MAX_ROWS_MD]]
            out.append(_md_table(["verdict", "target", "params", "metric", "base", "head",
                                  "change", "95% CI", "q", "MDE"], rows))
            if len(moved) > MAX_ROWS_MD:
                out.append("")
                out.append(f"... and {len(moved) - MAX_ROWS_MD} more.")
            out.append("")
            for line in shown.fixed_lines():
                out.append(f"_{_md_escape(line)}_")
                out.append("")
        base_env = data.baseline.info.environment if data.baseline is not None else {}
        diffs = environment_diff(base_env, info.environment)
        if diffs:
            out.append("<details><summary>Environment differences</summary>")
            out.append("")
            out.append(_md_table(["entry", "baseline", "this run"],
                                 [[k, str(b), str(h)] for k, b, h in diffs]))
            out.append("")
            out.append("</details>")
            out.append("")
    if data.changes:
        out.append("### Change points in the history")
        out.append("")
        out.append(_md_table(["kind", "target", "metric", "first affected run", "magnitude",
                              "p", "where"],
                             [[g.kind, g.target, g.metric, g.run.name,
                               f"{g.magnitude:+.1%}" if math.isfinite(g.magnitude) else "∞",
                               number(g.p_value, 2), g.attribution.description]
                              for g in data.changes[:MAX_ROWS_MD]]))
        out.append("")
    failed = _failures(data)
    if failed:
        out.append("### Failures")
        out.append("")
        out.append(_md_table(["target", "params", "status", "error"], [
            [c.target, _params_text(c.params), c.status,
             (c.error or "").strip().splitlines()[-1][:200] if c.error else ""]
            for c in failed[:MAX_ROWS_MD]]))
        out.append("")
    return "\n".join(out).rstrip() + "\n"


