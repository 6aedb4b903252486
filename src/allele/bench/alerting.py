"""Regressions become alerts: what ``bench run --report``, ``compare`` and ``regressions`` raise.

A regression alert carries the verdict (the ratio with its interval and q-value, or the change
point's magnitude and p-value) and a short root-cause summary, and has a stored **identity**:
``(base run, head run, cell, metric)``. Its fingerprint is a hash of that identity, and
:meth:`allele.observe.routing.AlertRouter.raise_regression` routes an identity only the first
time it is seen, so asking the same question again does not alert again. Everything else
(silences, dedup, grouping, escalation, the outbox and the channels) is the same path every
alert takes (:mod:`allele.observe.routing`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from allele.bench.format import params_text, pct, quantity
from allele.store.alerts import AlertRow

if TYPE_CHECKING:
    from allele.bench.compare import Comparison
    from allele.bench.history import History
    from allele.bench.regress import RegressionReport
    from allele.config import Settings
    from allele.store.model import RunRecord
    from allele.store.results import ResultStore

REGRESSION_ALERT = "BenchmarkRegression"


def identity_fingerprint(base: str, head: str, cell: str, metric: str) -> str:
    """The fingerprint of a regression's identity (stable across processes and versions)."""
    text = "\x1f".join(("regression", base, head, cell, metric))
    return "r" + hashlib.sha256(text.encode()).hexdigest()[:15]


def _row(base_id: str, head_id: str, key: str, target: str, params: dict[str, Any],
         metric: str, labels: dict[str, str], summary: str, verdict: str, cause: str | None,
         at: float, value: float | None) -> AlertRow:
    identity = {"base": base_id, "head": head_id, "cell": key, "metric": metric}
    annotations = {"summary": summary, "verdict": verdict}
    if cause:
        annotations["root_cause"] = cause
    return AlertRow(fingerprint=identity_fingerprint(base_id, head_id, key, metric),
                    name=REGRESSION_ALERT, source="regression",
                    labels={"target": target, "metric": metric, "cell": key,
                            "params": params_text(params), "scope": "benchmark", **labels},
                    annotations=annotations, severity="warning", state="firing",
                    starts_at=at, value=value, identity=identity)


def _num(x: float) -> float | None:
    return x if math.isfinite(x) else None


def comparison_alerts(comp: Comparison, causes: Callable[[str], str | None] | None = None
                      ) -> list[AlertRow]:
    """One alert per regressed row of a run comparison; ``causes(metric)`` gives the root-cause
    summary of a metric (see :func:`cause_summaries`)."""
    out = []
    at = comp.head.created_at
    for r in comp.rows:
        if r.verdict != "regressed":
            continue
        e = r.estimate
        # a row without a relative change (from a BASE of 0) says what it moved from and to
        change = (pct(e.ratio) if math.isfinite(e.ratio)
                  else f"{quantity(e.base, r.unit)} → {quantity(e.head, r.unit)}")
        ci = (f" (95% CI {pct(e.ci_low)} to {pct(e.ci_high)})"
              if math.isfinite(e.ci_low) and math.isfinite(e.ci_high) else "")
        verdict = f"regressed: {change}{ci}, q={e.q_value:.2g}, floor {e.floor:.0%}"
        summary = (f"{r.metric} of {r.target} ({params_text(r.params)}) {change} from "
                   f"{comp.base.name} to {comp.head.name}")
        out.append(_row(comp.base.id, comp.head.id, r.key, r.target, r.params, r.metric,
                        {"base": comp.base.name, "head": comp.head.name}, summary, verdict,
                        causes(r.metric) if causes else None, at, _num(e.ratio)))
    return out


def cause_summaries(base: RunRecord, head: RunRecord) -> Callable[[str], str | None]:
    """``metric -> "the best-ranked causes"`` from :func:`allele.bench.diagnose.root_causes`
    (cached per metric; None when nothing can be ranked)."""
    from allele.bench.diagnose import root_causes
    from allele.errors import AlleleError

    cache: dict[str, str | None] = {}

    def summary(metric: str) -> str | None:
        if metric not in cache:
            try:
                rc = root_causes(base, head, metric)
                found = [c for c in rc.causes if c.details.get("significant")]
                cache[metric] = "; ".join(f"{c.name}: {c.evidence}" for c in found[:2]) \
                    if found else rc.message
            except AlleleError:
                cache[metric] = None
        return cache[metric]

    return summary


def change_alerts(report: RegressionReport, history: History) -> list[AlertRow]:
    """One alert per cell of every regression group found by change-point detection; the
    base of a cell's identity is the run before its first affected run."""
    from allele.bench.regress import build_series

    before: dict[tuple[str, str, str], str] = {}
    for s in build_series(history):
        for prev, cur in zip(s.runs, s.runs[1:], strict=False):
            before[(s.key, s.metric, cur.id)] = prev.id
    out = []
    for g in report.regressions:
        for c in g.changes:
            base = before.get((c.key, c.metric, c.run.id), "-")
            verdict = (f"change point at run {c.run.name}: {c.before:.4g} -> {c.after:.4g} "
                       f"({c.magnitude:+.1%}), p={c.p_value:.2g}")
            summary = (f"{c.metric} of {c.target} ({params_text(c.params)}) changed "
                       f"{c.magnitude:+.1%} at run {c.run.name}")
            out.append(_row(base, c.run.id, c.key, c.target, c.params, c.metric,
                            {"head": c.run.name}, summary, verdict,
                            f"group of {g.cells_changed}/{g.cells_checked} cells: "
                            f"{g.attribution.description}", c.run.created_at,
                            _num(c.magnitude)))
    return out


@dataclass(frozen=True, slots=True)
class AlertOutcome:
    """What raising a batch of regression alerts did."""

    raised: int
    """New identities routed."""
    known: int
    """Identities already alerted before (not notified again)."""
    queued: int
    """Outbox rows queued (one per channel of each routed alert)."""
    delivered: int
    """Of those, delivered before returning (the rest stay in the outbox)."""
    refused: int = 0

    def line(self) -> str:
        """One line for a terminal."""
        if not self.raised and not self.known:
            return ""
        text = (f"{self.raised} regression alert{'s' if self.raised != 1 else ''} raised"
                + (f", {self.known} already raised before" if self.known else ""))
        if self.queued:
            text += f"; {self.delivered}/{self.queued} notifications delivered"
            if self.delivered < self.queued:
                text += " (the rest wait in the outbox)"
        if self.refused:
            text += f"; {self.refused} refused by a full outbox"
        return text


def raise_regressions(store: ResultStore, rows: Sequence[AlertRow],
                      settings: Settings | None = None, *, deliver_s: float = 5.0
                      ) -> AlertOutcome:
    """Route ``rows`` (new identities only) to the store and the configured channels, then try
    to deliver for up to ``deliver_s`` seconds; what is not delivered stays in the outbox."""
    from allele.config import load_settings
    from allele.observe.channels import channels_from_settings
    from allele.observe.outbox import OutboxWorker
    from allele.observe.routing import AlertRouter

    if not rows:
        return AlertOutcome(0, 0, 0, 0)
    cfg = settings if settings is not None else load_settings()
    channels = channels_from_settings(cfg)
    router = AlertRouter(store, list(channels), outbox_limit=cfg.notify.outbox_limit)
    results = [router.raise_regression(r) for r in rows]
    raised = sum(r.outcome != "known" for r in results)
    queued = sum(r.queued for r in results)
    delivered = 0
    if queued and deliver_s > 0:
        n = cfg.notify
        worker = OutboxWorker(store, channels, backoff_initial_s=n.backoff_initial_s,
                              backoff_max_s=n.backoff_max_s, max_attempts=n.max_attempts)
        delivered = worker.drain(deliver_s)
    return AlertOutcome(raised, len(rows) - raised, queued, min(delivered, queued),
                        sum(r.refused for r in results))
