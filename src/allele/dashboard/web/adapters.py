"""Results of the services as JSON: the one place that knows the fields of a comparison's rows
(``Comparison.rows``, ``MetricComparison.estimate``, ``Estimate``) and of change groups, so a
renamed field is one line to fix here and nowhere else."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from allele.bench.format import params_text, pct, quantity, varying_params
from allele.bench.views import run_header

if TYPE_CHECKING:
    from collections.abc import Sequence

    from allele.bench.compare import Comparison, MetricComparison
    from allele.store.model import RunInfo


def clean(x: Any) -> Any:
    """``x`` with every non-finite float replaced by None (JSON has no NaN)."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [clean(v) for v in x]
    return x


def _f(x: Any) -> float | None:
    if x is None:
        return None
    v = float(x)
    return v if math.isfinite(v) else None


def verdict_reason(row: MetricComparison, q: float) -> str:
    """Why a row got its verdict, in one sentence."""
    e = row.estimate
    ci = (f"95% CI {pct(e.ci_low)} to {pct(e.ci_high)}"
          if math.isfinite(e.ci_low) and math.isfinite(e.ci_high)
          else f"95% CI {e.interval_text}")
    floor = f"±{e.floor:.0%}"
    if e.verdict in ("regressed", "improved"):
        return (f"significant after FDR (q={e.q_value:.2g} ≤ {q:g}) and the whole {ci} lies "
                f"beyond the {floor} floor")
    if e.verdict == "unchanged":
        return f"the whole {ci} lies within the {floor} floor"
    if e.reason:  # the comparison says why (allele.bench.estimate: reasons)
        from allele.bench.compare import mde_text

        return f"inconclusive: {e.reason} ({ci}; MDE {mde_text(e)})"
    if math.isinf(e.mde):
        return "left out of the FDR family: no verdict can reach significance (MDE ∞)"
    if not (math.isfinite(e.q_value) and e.q_value <= q):
        return f"not significant after FDR (q={e.q_value:.2g} > {q:g}); MDE {e.mde:.1%}"
    return f"significant, but the {ci} reaches into the {floor} floor"


def comparison_row(row: MetricComparison, q: float) -> dict[str, Any]:
    """One cell and metric of a comparison. ``base`` / ``head`` (and their ``_text``) are the
    locations ``allele bench compare`` prints in its base and head columns (the geometric mean
    of the winsorized samples: :attr:`Estimate.base <allele.bench.estimate.Estimate.base>`);
    ``median_base`` / ``median_head`` are the plain medians."""
    e = row.estimate
    return {"key": row.key, "target": row.target, "params": row.params,
            "params_text": params_text(row.params), "metric": row.metric,
            "verdict": e.verdict, "reason": verdict_reason(row, q), "ratio": _f(e.ratio),
            "ci_low": _f(e.ci_low), "ci_high": _f(e.ci_high), "p_value": _f(e.p_value),
            "q_value": _f(e.q_value), "base": _f(e.base), "head": _f(e.head),
            "base_text": quantity(e.base, row.unit), "head_text": quantity(e.head, row.unit),
            "median_base": _f(e.median_base), "median_head": _f(e.median_head),
            "unit": row.unit,
            "direction_guessed": row.guessed, "n_base": e.n_base, "n_head": e.n_head,
            "paired": e.paired, "test": e.test, "mde": _f(e.mde), "floor": _f(e.floor)}


def comparison_json(comp: Comparison) -> dict[str, Any]:
    """A whole comparison, with its Benjamini-Hochberg table (rows by p-value, each with its
    rank and BH threshold ``rank x q / m``)."""
    rows = [comparison_row(r, comp.q) for r in comp.rows]
    tested = sorted((r for r in rows if r["p_value"] is not None), key=lambda r: r["p_value"])
    m = len(tested)
    fdr = [{"key": r["key"], "metric": r["metric"], "params_text": r["params_text"],
            "p_value": r["p_value"], "q_value": r["q_value"], "rank": i + 1,
            "threshold": (i + 1) * comp.q / m, "verdict": r["verdict"]}
           for i, r in enumerate(tested)]
    return {"base": run_header(comp.base), "head": run_header(comp.head), "q": comp.q,
            "floor": comp.floor, "counts": dict(comp.counts()), "rows": rows, "fdr": fdr,
            "failures": [{"key": f.key, "target": f.target, "base_status": f.base_status,
                          "head_status": f.head_status, "error": f.error}
                         for f in comp.failures],
            "only_in_base": list(comp.only_in_base), "only_in_head": list(comp.only_in_head),
            "warnings": list(comp.warnings), "noise_note": "; ".join(comp.notes()) or None,
            # per target, the parameters that vary among its compared cells (the forest plot's
            # labels name only those)
            "varying": {t: varying_params(r.params for r in comp.rows if r.target == t)
                        for t in dict.fromkeys(r.target for r in comp.rows)}}


def default_pair(runs: Sequence[RunInfo]) -> dict[str, Any]:
    """The two runs the Compare page opens on, from ``runs`` newest first: HEAD is the newest
    finished run, BASE the finished run before it of the same spec, else the finished run before
    it of any spec (``same_spec`` says which); ``note`` says why when one is missing or the
    specs differ. Running, interrupted and failed runs are never picked."""
    finished = [r for r in runs if r.status == "finished"]
    if not finished:
        return {"base": None, "head": None, "same_spec": False,
                "note": "no finished run yet: nothing to compare"}
    head = finished[0]
    same = next((r for r in finished[1:] if r.spec_name == head.spec_name), None)
    base = same or (finished[1] if len(finished) > 1 else None)
    note = None
    if base is None:
        note = f"{head.name} is the only finished run: nothing to compare it with"
    elif same is None:
        note = (f"no earlier finished run of spec {head.spec_name} than {head.name}; "
                f"comparing with {base.name} (spec {base.spec_name})")
    return {"base": None if base is None else run_header(base), "head": run_header(head),
            "same_spec": same is not None, "note": note}


def regression_report_json(report: Any) -> dict[str, Any]:
    """A :class:`~allele.bench.regress.RegressionReport` (its own JSON form)."""
    out: dict[str, Any] = report.to_dict()
    return out
