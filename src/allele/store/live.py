"""The store as the bus: the live event log, and tailing events and telemetry points by id.

Every process that runs something (a matrix run, ``observe serve``, a user's program with
Telemetry) appends :class:`Event` rows and telemetry points; readers (the dashboards) *tail* them:
they remember the largest ``pk`` they have seen and ask for what came after it. The primary key of
both tables grows with every insert (a telemetry ``pk`` is a block's: its points share it), so a
tail needs no clock and misses nothing that was committed; it works across processes and, on
PostgreSQL, across machines.

One subtlety of tailing by an auto-increment key: on PostgreSQL two writers may commit out of
key order (transaction A takes key 10, B takes 11 and commits first), so a reader that saw 11
could miss 10. SQLite serialises writers, so its keys commit in order. A tail that must see
everything on PostgreSQL re-reads a short overlap below its last key and drops the ids it has
already seen (:class:`allele.observe.tail.StoreTail` does).

The store keeps and reads; what an event means is decided above it (``allele.bench.livestate``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, delete, func, select

from allele.errors import StoreError
from allele.store import schema as S
from allele.store.codecs import clean_text, dumps
from allele.store.engine import Database
from allele.store.points import MetricPoint, read_blocks_after

__all__ = ["Event", "StoredEvent", "append_events", "last_ids", "newest_points_start",
           "point_series", "prune", "read_events", "read_points_after"]


@dataclass(frozen=True, slots=True)
class Event:
    """One live event, before it is stored: what happened (``kind``), where (``source``: the
    process or component that saw it), to which run (``run_id``, optional), when, and details."""

    kind: str
    source: str
    ts: float = field(default_factory=time.time)
    run_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as read back: ``id`` is its place in the log (strictly increasing)."""

    id: int
    ts: float
    source: str
    kind: str
    run_id: str | None
    data: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return {"id": self.id, "ts": self.ts, "source": self.source, "kind": self.kind,
                "run_id": self.run_id, "data": self.data}


def append_events(db: Database, events: Iterable[Event]) -> int:
    """Append events in one transaction; returns how many."""
    try:
        rows = [{"ts": float(e.ts), "source": str(e.source)[:200], "kind": str(e.kind)[:50],
                 "run_id": e.run_id, "payload": clean_text(dumps(e.data)) or "{}"}
                for e in events]
    except (AttributeError, TypeError, ValueError) as exc:
        raise StoreError(f"not an event: {exc}") from None
    if not rows:
        return 0
    db.write_tx(lambda conn: conn.execute(S.events.insert(), rows), what="append events")
    return len(rows)


def read_events(db: Database, after: int = 0, *, limit: int = 1000,
                run_id: str | None = None, kinds: Sequence[str] | None = None
                ) -> list[StoredEvent]:
    """Events with ``id > after`` (oldest first, at most ``limit``), optionally of one run and
    of some kinds only."""
    ev = S.events
    query = (select(ev.c.pk, ev.c.ts, ev.c.source, ev.c.kind, ev.c.run_id, ev.c.payload)
             .where(ev.c.pk > int(after)).order_by(ev.c.pk).limit(max(1, int(limit))))
    if run_id is not None:
        query = query.where(ev.c.run_id == run_id)
    if kinds:
        query = query.where(ev.c.kind.in_(list(kinds)))

    def run(conn: Connection) -> list[StoredEvent]:
        return [StoredEvent(int(r[0]), float(r[1]), r[2], r[3], r[4], json.loads(r[5]))
                for r in conn.execute(query)]

    return db.read_tx(run, what="read events")


def read_points_after(db: Database, after: int = 0, *, limit: int = 5000,
                      metrics: Sequence[str] | None = None,
                      since: float | None = None) -> list[tuple[int, MetricPoint]]:
    """Telemetry points of the blocks with ``pk > after`` as ``(pk, point)``, oldest block first;
    whole blocks (the points of one block share its ``pk``) until at least ``limit`` points,
    optionally of some metrics and not older than ``since``."""
    return db.read_tx(lambda conn: read_blocks_after(conn, after, limit, metrics, since),
                      what="read metric points")


def newest_points_start(db: Database, limit: int) -> int:
    """The ``after`` from which :func:`read_points_after` returns the newest ``limit`` points (or
    a few more: blocks are read whole)."""
    pb = S.point_blocks

    def run(conn: Connection) -> int:
        total = 0
        for pk, n in conn.execute(select(pb.c.pk, pb.c.n).order_by(pb.c.pk.desc())):
            total += int(n)
            if total >= limit:
                return int(pk) - 1
        return 0

    return db.read_tx(run, what="read the newest points")


def last_ids(db: Database) -> tuple[int, int]:
    """The newest event id and the newest telemetry point id (0 when empty): where a tail that
    only wants what comes next starts."""
    def run(conn: Connection) -> tuple[int, int]:
        e = conn.execute(select(func.max(S.events.c.pk))).scalar()
        p = conn.execute(select(func.max(S.point_blocks.c.pk))).scalar()
        return int(e or 0), int(p or 0)

    return db.read_tx(run, what="read the newest ids")


def prune(db: Database, older_than: float) -> tuple[int, int]:
    """Delete events with a timestamp before ``older_than``, and the telemetry blocks whose
    newest point is before it; returns ``(events, points)`` deleted. A block that straddles
    ``older_than`` is kept whole. Nothing prunes by itself: retention is the operator's call."""
    pb = S.point_blocks

    def run(conn: Connection) -> tuple[int, int]:
        e = conn.execute(delete(S.events).where(S.events.c.ts < older_than)).rowcount
        p = conn.execute(select(func.coalesce(func.sum(pb.c.n), 0))
                         .where(pb.c.t_last < older_than)).scalar()
        conn.execute(delete(pb).where(pb.c.t_last < older_than))
        return int(e or 0), int(p or 0)

    return db.write_tx(run, what="prune events and points")


def point_series(db: Database, limit: int = 1000) -> list[tuple[str, str, int, float]]:
    """``(metric, component, points, newest timestamp)`` of every stored telemetry series,
    metric by metric (at most ``limit``)."""
    pb = S.point_blocks
    query = (select(pb.c.metric, pb.c.component, func.sum(pb.c.n), func.max(pb.c.t_last))
             .group_by(pb.c.metric, pb.c.component).order_by(pb.c.metric, pb.c.component)
             .limit(limit))
    return db.read_tx(lambda conn: [(r[0], r[1], int(r[2]), float(r[3]))
                                    for r in conn.execute(query)], what="list telemetry series")
