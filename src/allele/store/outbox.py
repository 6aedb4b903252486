"""The notification outbox: notifications written in the store before anyone tries to send them.

A notification is enqueued once per channel (webhook, Slack, e-mail, Alertmanager ...) as one
row ``(note_id, channel)``, unique, so enqueueing the same notification twice is a no-op. A
delivery worker (:class:`allele.observe.outbox.OutboxWorker`, in any process) *claims* due rows
(it pushes their ``next_at`` forward by a lease, in one write transaction, so two workers do not
take the same row at once), delivers them and marks each ``delivered`` or reschedules it with
backoff. A worker that dies mid-delivery leaves its rows pending; their lease expires and another
worker (or the same one after a restart) takes them again. Delivery is therefore *at least once*:
every channel sends the notification's stable id (an ``Idempotency-Key`` header, a
``Message-ID``) so a receiver can drop the duplicate.

The outbox is bounded (``limit`` pending rows): what does not fit is refused and counted in the
``counters`` table under :data:`REFUSED_COUNTER`, which the dashboard shows.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Connection, func, select, update

from allele.store import schema as S
from allele.store.codecs import clean_text, dumps
from allele.store.engine import Database

__all__ = ["DEFAULT_LIMIT", "REFUSED_COUNTER", "OutboxItem", "OutboxStats", "add_counter",
           "claim_due", "enqueue", "mark_delivered", "mark_failed", "outbox_items",
           "outbox_stats", "read_counters"]

OutboxStatus = Literal["pending", "delivered", "dead"]
DEFAULT_LIMIT = 10_000
"""Pending notifications an outbox holds before it refuses more."""
REFUSED_COUNTER = "outbox_refused_total"


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """One notification for one channel."""

    pk: int
    note_id: str
    channel: str
    payload: dict[str, Any]
    status: OutboxStatus
    attempts: int
    next_at: float
    created_at: float
    delivered_at: float | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class OutboxStats:
    """How many rows are in each state, and how many were refused by a full outbox."""

    pending: int
    delivered: int
    dead: int
    refused: int

    def to_dict(self) -> dict[str, int]:
        """A JSON-ready dictionary."""
        return {"pending": self.pending, "delivered": self.delivered, "dead": self.dead,
                "refused": self.refused}


_COLUMNS = (S.outbox.c.pk, S.outbox.c.note_id, S.outbox.c.channel, S.outbox.c.payload,
            S.outbox.c.status, S.outbox.c.attempts, S.outbox.c.next_at, S.outbox.c.created_at,
            S.outbox.c.delivered_at, S.outbox.c.last_error)


def _item(r: Sequence[Any]) -> OutboxItem:
    return OutboxItem(int(r[0]), r[1], r[2], json.loads(r[3]), r[4], int(r[5]), float(r[6]),
                      float(r[7]), None if r[8] is None else float(r[8]), r[9])


def _bump(conn: Connection, name: str, by: float) -> None:
    co = S.counters
    res = conn.execute(update(co).where(co.c.name == name).values(value=co.c.value + by))
    if res.rowcount == 0:
        conn.execute(co.insert().values(name=name, value=by))


def add_counter(db: Database, name: str, by: float = 1.0) -> None:
    """Add ``by`` to the stored counter ``name`` (created at 0)."""
    db.write_tx(lambda conn: _bump(conn, name, by), what="update a counter")


def read_counters(db: Database) -> dict[str, float]:
    """Every stored counter."""
    return db.read_tx(lambda conn: {r[0]: float(r[1]) for r in conn.execute(
        select(S.counters.c.name, S.counters.c.value))}, what="read counters")


def enqueue(db: Database, note_id: str, channels: Sequence[str], payload: dict[str, Any], *,
            limit: int = DEFAULT_LIMIT, now: float | None = None) -> tuple[int, int]:
    """Queue ``payload`` under ``note_id`` for each channel; returns ``(added, refused)``.

    A ``(note_id, channel)`` already queued (or delivered) is not added again. Rows beyond
    ``limit`` pending ones are refused and counted (:data:`REFUSED_COUNTER`).
    """
    at = time.time() if now is None else now
    text = clean_text(dumps(payload)) or "{}"
    ob = S.outbox

    def run(conn: Connection) -> tuple[int, int]:
        have = {r[0] for r in conn.execute(select(ob.c.channel).where(ob.c.note_id == note_id))}
        todo = [c for c in dict.fromkeys(channels) if c not in have]
        pending = int(conn.execute(select(func.count()).select_from(ob)
                                   .where(ob.c.status == "pending")).scalar() or 0)
        room = max(0, limit - pending)
        added, refused = todo[:room], todo[room:]
        if added:
            conn.execute(ob.insert(), [
                {"note_id": note_id, "channel": c, "payload": text, "status": "pending",
                 "attempts": 0, "next_at": at, "created_at": at} for c in added])
        if refused:
            _bump(conn, REFUSED_COUNTER, float(len(refused)))
        return len(added), len(refused)

    return db.write_tx(run, what="queue a notification")


def claim_due(db: Database, channels: Sequence[str], *, limit: int = 50, lease_s: float = 30.0,
              now: float | None = None) -> list[OutboxItem]:
    """Take up to ``limit`` pending rows of ``channels`` that are due, oldest first, pushing
    their ``next_at`` ``lease_s`` ahead so no other worker takes them meanwhile."""
    at = time.time() if now is None else now
    ob = S.outbox
    if not channels:
        return []

    def run(conn: Connection) -> list[OutboxItem]:
        rows = conn.execute(select(*_COLUMNS).where(ob.c.status == "pending",
                                                    ob.c.next_at <= at,
                                                    ob.c.channel.in_(list(channels)))
                            .order_by(ob.c.next_at, ob.c.pk).limit(limit)).all()
        if rows:
            conn.execute(update(ob).where(ob.c.pk.in_([int(r[0]) for r in rows]))
                         .values(next_at=at + lease_s))
        return [_item(r) for r in rows]

    return db.write_tx(run, what="claim notifications")


def mark_delivered(db: Database, pk: int, *, now: float | None = None) -> None:
    """Record a successful delivery."""
    at = time.time() if now is None else now
    ob = S.outbox
    db.write_tx(lambda conn: conn.execute(
        update(ob).where(ob.c.pk == pk).values(status="delivered", delivered_at=at,
                                               attempts=ob.c.attempts + 1, last_error=None)),
        what="mark a notification delivered")


def mark_failed(db: Database, pk: int, error: str, *, retry_at: float | None) -> None:
    """Record a failed attempt: retry at ``retry_at``, or give up (``dead``) when it is None."""
    ob = S.outbox
    values: dict[str, Any] = {"attempts": ob.c.attempts + 1,
                              "last_error": clean_text(error[:1000])}
    if retry_at is None:
        values["status"] = "dead"
    else:
        values["next_at"] = retry_at
    db.write_tx(lambda conn: conn.execute(update(ob).where(ob.c.pk == pk).values(**values)),
                what="mark a notification failed")


def outbox_items(db: Database, *, note_id: str | None = None, status: str | None = None,
                 limit: int = 200) -> list[OutboxItem]:
    """Outbox rows, newest first (optionally of one notification or one status)."""
    ob = S.outbox
    query = select(*_COLUMNS).order_by(ob.c.pk.desc()).limit(limit)
    if note_id is not None:
        query = query.where(ob.c.note_id == note_id)
    if status is not None:
        query = query.where(ob.c.status == status)
    return db.read_tx(lambda conn: [_item(r) for r in conn.execute(query)],
                      what="read the outbox")


def outbox_stats(db: Database) -> OutboxStats:
    """Counts by state and the refused total."""
    ob = S.outbox

    def run(conn: Connection) -> OutboxStats:
        by = {r[0]: int(r[1]) for r in conn.execute(
            select(ob.c.status, func.count()).group_by(ob.c.status))}
        refused = conn.execute(select(S.counters.c.value)
                               .where(S.counters.c.name == REFUSED_COUNTER)).scalar()
        return OutboxStats(by.get("pending", 0), by.get("delivered", 0), by.get("dead", 0),
                           int(refused or 0))

    return db.read_tx(run, what="read outbox counts")
