"""Telemetry points: one value of one metric at one time, appended and read back by metric.

The ``metric_points`` table is indexed by ``(metric, timestamp)``; labels are kept as a JSON list
of ``[name, value]`` pairs, in their order. Telemetry (:mod:`allele.observe`) flushes batches of
points here; the analytics commands read one metric's points back.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select

from allele.errors import StoreError
from allele.store import schema as S
from allele.store.codecs import labels_json
from allele.store.engine import Database

Labels = tuple[tuple[str, str], ...]
"""A point's labels: ``(name, value)`` pairs in a fixed order."""


@dataclass(frozen=True, slots=True)
class MetricPoint:
    """One value of one metric at one time: the unit the result store receives."""

    metric: str
    component: str
    labels: Labels
    timestamp: float
    value: float


def write_points(db: Database, points: Iterable[MetricPoint]) -> None:
    """Append telemetry points in one transaction."""
    try:
        rows = [{"metric": p.metric, "component": p.component,
                 "labels": labels_json(p.labels), "timestamp": float(p.timestamp),
                 "value": float(p.value)} for p in points]
    except (AttributeError, TypeError, ValueError) as exc:
        raise StoreError(f"not a metric point: {exc}") from None
    if not rows:
        return
    db.write_tx(lambda conn: conn.execute(S.metric_points.insert(), rows),
              what="write metric points")


def read_points(db: Database, metric: str, component: str | None = None,
                since: float | None = None) -> list[MetricPoint]:
    """Points of one metric (optionally one component, from ``since`` on), oldest first."""
    mp = S.metric_points
    query = (select(mp.c.metric, mp.c.component, mp.c.labels, mp.c.timestamp, mp.c.value)
             .where(mp.c.metric == metric).order_by(mp.c.timestamp, mp.c.pk))
    if component is not None:
        query = query.where(mp.c.component == component)
    if since is not None:
        query = query.where(mp.c.timestamp >= since)
    return db.read_tx(lambda conn: [
        MetricPoint(r[0], r[1], tuple((k, v) for k, v in json.loads(r[2])), float(r[3]),
                    float(r[4])) for r in conn.execute(query)], what="read metric points")
