"""Telemetry points: one value of one metric at one time, appended in packed blocks and read back
by metric.

A :class:`PointBlock` holds the points of one series (metric, component, labels) from one flush:
two little-endian ``float64`` arrays (timestamps, values) stored as two blobs in one row of
``point_blocks`` with the block's first and last timestamp and its length. Telemetry flushes every
0.5 s, so a block holds a series' points of half a second: one row where one row per point used to
be. That is what lets the store take the end-to-end rate of the telemetry load benchmark
(``benchmarks/telemetry_load.py``: a flush of 200,000 events, 2 million points, went from about
1/20 of the goal's rate with a row per point to above it). Readers get
:class:`MetricPoint` objects as before; ``pk`` is the block's and grows with every insert, so a
tail resumes after the last block it read.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, select

from allele.errors import StoreError
from allele.store import schema as S
from allele.store.codecs import labels_json
from allele.store.engine import Database

Labels = tuple[tuple[str, str], ...]
"""A point's labels: ``(name, value)`` pairs in a fixed order."""

F64 = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class MetricPoint:
    """One value of one metric at one time: the unit the result store receives."""

    metric: str
    component: str
    labels: Labels
    timestamp: float
    value: float


@dataclass(frozen=True, slots=True)
class PointBlock:
    """Points of one series, parallel arrays in recording order (what a flush writes)."""

    metric: str
    component: str
    labels: Labels
    timestamps: F64
    values: F64

    def __len__(self) -> int:
        return int(self.timestamps.shape[0])

    def points(self) -> list[MetricPoint]:
        m, c, lab = self.metric, self.component, self.labels
        return [MetricPoint(m, c, lab, t, v)
                for t, v in zip(self.timestamps.tolist(), self.values.tolist(), strict=True)]


def blocks_of(points: Iterable[MetricPoint]) -> list[PointBlock]:
    """Group points into one block per series, each keeping its points' order."""
    groups: dict[tuple[str, str, Labels], tuple[list[float], list[float]]] = {}
    try:
        for p in points:
            labels = p.labels
            lab: Labels = (tuple((str(k), str(v)) for k, v in labels.items())
                           if isinstance(labels, dict) else tuple(labels or ()))
            ts, vs = groups.setdefault((str(p.metric), str(p.component), lab), ([], []))
            ts.append(float(p.timestamp))
            vs.append(float(p.value))
    except (AttributeError, TypeError, ValueError) as exc:
        raise StoreError(f"not a metric point: {exc}") from None
    return [PointBlock(m, c, lab, np.asarray(ts, dtype=np.float64),
                       np.asarray(vs, dtype=np.float64))
            for (m, c, lab), (ts, vs) in groups.items()]


def _row(b: PointBlock, labels_cache: dict[Labels, str]) -> dict[str, Any]:
    lab = labels_cache.get(b.labels)
    if lab is None:
        lab = labels_cache[b.labels] = labels_json(b.labels)
    ts = np.ascontiguousarray(b.timestamps, dtype="<f8")
    return {"metric": b.metric, "component": b.component, "labels": lab,
            "t_first": float(ts.min()), "t_last": float(ts.max()), "n": int(ts.shape[0]),
            "timestamps": ts.tobytes(),
            "vals": np.ascontiguousarray(b.values, dtype="<f8").tobytes()}


def write_blocks(db: Database, blocks: Sequence[PointBlock]) -> None:
    """Append point blocks in one transaction (one row each; empty blocks are skipped)."""
    cache: dict[Labels, str] = {}
    try:
        rows = [_row(b, cache) for b in blocks if len(b)]
    except (AttributeError, TypeError, ValueError) as exc:
        raise StoreError(f"not a point block: {exc}") from None
    if rows:
        db.write_tx(lambda conn: conn.execute(S.point_blocks.insert(), rows),
                    what="write metric points")


def write_points(db: Database, points: Iterable[MetricPoint]) -> None:
    """Append telemetry points in one transaction (one block per series)."""
    write_blocks(db, blocks_of(points))


_COLS = (S.point_blocks.c.pk, S.point_blocks.c.metric, S.point_blocks.c.component,
         S.point_blocks.c.labels, S.point_blocks.c.timestamps, S.point_blocks.c.vals)


def _decode(row: Any) -> tuple[int, PointBlock]:
    lab = tuple((k, v) for k, v in json.loads(row[3]))
    return int(row[0]), PointBlock(row[1], row[2], lab,
                                   np.frombuffer(row[4], dtype="<f8").astype(np.float64),
                                   np.frombuffer(row[5], dtype="<f8").astype(np.float64))


def read_points(db: Database, metric: str, component: str | None = None,
                since: float | None = None) -> list[MetricPoint]:
    """Points of one metric (optionally one component, from ``since`` on), oldest first (ties in
    the order they were written)."""
    pb = S.point_blocks
    query = select(*_COLS).where(pb.c.metric == metric).order_by(pb.c.pk)
    if component is not None:
        query = query.where(pb.c.component == component)
    if since is not None:
        query = query.where(pb.c.t_last >= since)

    def run(conn: Connection) -> list[MetricPoint]:
        out: list[MetricPoint] = []
        for row in conn.execute(query):
            _, block = _decode(row)
            if since is None:
                out.extend(block.points())
            else:
                keep = block.timestamps >= since
                out.extend(PointBlock(block.metric, block.component, block.labels,
                                      block.timestamps[keep], block.values[keep]).points())
        out.sort(key=lambda p: p.timestamp)  # stable: ties keep the write order
        return out

    return db.read_tx(run, what="read metric points")


def read_blocks_after(conn: Connection, after: int, limit: int,
                      metrics: Sequence[str] | None, since: float | None
                      ) -> list[tuple[int, MetricPoint]]:
    """``(block pk, point)`` of the blocks after ``after``, whole blocks, until at least ``limit``
    points (at least one block)."""
    pb = S.point_blocks
    query = select(*_COLS).where(pb.c.pk > int(after)).order_by(pb.c.pk)
    if metrics:
        query = query.where(pb.c.metric.in_(list(metrics)))
    if since is not None:
        query = query.where(pb.c.t_last >= since)
    out: list[tuple[int, MetricPoint]] = []
    for row in conn.execute(query.limit(max(1, int(limit)))):
        pk, block = _decode(row)
        out.extend((pk, p) for p in block.points()
                   if since is None or p.timestamp >= since)
        if len(out) >= limit:
            break
    return out
