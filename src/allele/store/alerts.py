"""Alerts as last seen, and silences: what the Alerts page lists and what survives a restart.

One row per alert ``fingerprint`` (a rule's alert: its label set; a regression: its identity,
base run, head run, cell and metric). :func:`upsert_alert` tells whether the fingerprint is new,
which is how a regression found a second time does not alert a second time. Acknowledgements and
silences set from the dashboard are stored here too. The store decides nothing: which alert
notifies whom is :mod:`allele.observe.routing`'s business.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, select, update

from allele.errors import StoreError
from allele.store import schema as S
from allele.store.codecs import clean_text, dumps
from allele.store.engine import Database

__all__ = ["AlertRow", "SilenceRow", "acknowledge", "add_silence", "expire_silence",
           "get_alert", "is_stale", "list_alerts", "list_silences", "touch_alerts",
           "upsert_alert"]


@dataclass(frozen=True, slots=True)
class AlertRow:
    """An alert as stored."""

    fingerprint: str
    name: str
    source: str
    """``rule`` (a threshold rule over telemetry) or ``regression`` (a verdict or change point)."""
    labels: dict[str, str]
    annotations: dict[str, str]
    severity: str
    state: str
    """``pending``, ``firing`` or ``resolved``."""
    starts_at: float
    value: float | None = None
    ends_at: float | None = None
    updated_at: float = 0.0
    identity: dict[str, Any] | None = None
    group_id: str | None = None
    acknowledged_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return {"fingerprint": self.fingerprint, "name": self.name, "source": self.source,
                "labels": self.labels, "annotations": self.annotations,
                "severity": self.severity, "state": self.state, "value": self.value,
                "starts_at": self.starts_at, "ends_at": self.ends_at,
                "updated_at": self.updated_at, "identity": self.identity,
                "group_id": self.group_id, "acknowledged_at": self.acknowledged_at}


@dataclass(frozen=True, slots=True)
class SilenceRow:
    """A silence: alerts whose labels match every matcher (glob values) are held back."""

    id: str
    matchers: dict[str, str]
    starts_at: float
    ends_at: float
    comment: str = ""
    created_at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return {"id": self.id, "matchers": self.matchers, "starts_at": self.starts_at,
                "ends_at": self.ends_at, "comment": self.comment, "created_at": self.created_at}


_A = S.alerts
_COLS = (_A.c.fingerprint, _A.c.name, _A.c.source, _A.c.labels, _A.c.annotations, _A.c.severity,
         _A.c.state, _A.c.starts_at, _A.c.value, _A.c.ends_at, _A.c.updated_at, _A.c.identity,
         _A.c.group_id, _A.c.acknowledged_at)


def _row(r: Sequence[Any]) -> AlertRow:
    return AlertRow(r[0], r[1], r[2], json.loads(r[3]), json.loads(r[4]), r[5], r[6],
                    float(r[7]), None if r[8] is None else float(r[8]),
                    None if r[9] is None else float(r[9]), float(r[10]),
                    None if r[11] is None else json.loads(r[11]), r[12],
                    None if r[13] is None else float(r[13]))


def _values(a: AlertRow, now: float) -> dict[str, Any]:
    return {"name": a.name[:200], "source": a.source[:20], "labels": clean_text(dumps(a.labels)),
            "annotations": clean_text(dumps(a.annotations)), "severity": a.severity[:20],
            "state": a.state[:20], "value": a.value, "starts_at": float(a.starts_at),
            "ends_at": a.ends_at, "updated_at": a.updated_at or now,
            "identity": None if a.identity is None else clean_text(dumps(a.identity)),
            "group_id": a.group_id}


def upsert_alert(db: Database, alert: AlertRow, *, only_new: bool = False) -> bool:
    """Store ``alert``; True when its fingerprint was not in the store before.

    An alert seen before is updated (state, value, annotations, end, group), unless ``only_new``
    (a regression's identity: what was stored first stays). Its acknowledgement is kept.
    """
    now = time.time()

    def run(conn: Connection) -> bool:
        exists = conn.execute(select(_A.c.pk).where(_A.c.fingerprint == alert.fingerprint)
                              ).first()
        values = _values(alert, now)
        if exists is None:
            conn.execute(_A.insert().values(fingerprint=alert.fingerprint, **values))
            return True
        if not only_new:
            values.pop("starts_at")
            if values["group_id"] is None:
                values.pop("group_id")
            conn.execute(update(_A).where(_A.c.pk == exists[0]).values(**values))
        return False

    return db.write_tx(run, what="store an alert")


def get_alert(db: Database, fingerprint: str) -> AlertRow | None:
    """The stored alert with this fingerprint, or None."""
    def run(conn: Connection) -> AlertRow | None:
        r = conn.execute(select(*_COLS).where(_A.c.fingerprint == fingerprint)).first()
        return None if r is None else _row(r)

    return db.read_tx(run, what="read an alert")


def list_alerts(db: Database, *, states: Sequence[str] | None = None, source: str | None = None,
                limit: int = 500) -> list[AlertRow]:
    """Stored alerts, most recently updated first."""
    query = select(*_COLS).order_by(_A.c.updated_at.desc(), _A.c.pk.desc()).limit(limit)
    if states:
        query = query.where(_A.c.state.in_(list(states)))
    if source is not None:
        query = query.where(_A.c.source == source)
    return db.read_tx(lambda conn: [_row(r) for r in conn.execute(query)], what="list alerts")


RULE_STALE_S = 300.0
"""A firing rule alert whose evaluator has not refreshed it for this long is shown as resolved
(stale): the process that evaluated its rule has stopped (Alertmanager resolves an alert its
sender stops re-sending the same way). Evaluators refresh their alerts every
``allele.observe.routing.REFRESH_S`` seconds."""


def is_stale(alert: AlertRow, now: float, after_s: float = RULE_STALE_S) -> bool:
    """True for a firing or pending rule alert not refreshed within ``after_s`` of ``now``
    (a regression alert has no evaluator and never goes stale)."""
    return (alert.source == "rule" and alert.state in ("firing", "pending")
            and now - alert.updated_at > after_s)


def touch_alerts(db: Database, fingerprints: Sequence[str], at: float) -> int:
    """Mark these alerts refreshed at ``at`` (their evaluator still sees them), unless
    resolved; returns how many were."""
    if not fingerprints:
        return 0
    return db.write_tx(lambda conn: int(conn.execute(
        update(_A).where(_A.c.fingerprint.in_(list(fingerprints)), _A.c.state != "resolved")
        .values(updated_at=at)).rowcount or 0), what="refresh alerts")


def acknowledge(db: Database, fingerprints: Sequence[str], *, at: float | None = None) -> int:
    """Mark alerts acknowledged; returns how many of them exist."""
    when = time.time() if at is None else at
    if not fingerprints:
        return 0
    return db.write_tx(lambda conn: int(conn.execute(
        update(_A).where(_A.c.fingerprint.in_(list(fingerprints)))
        .values(acknowledged_at=when)).rowcount or 0), what="acknowledge alerts")


def add_silence(db: Database, matchers: Mapping[str, str], starts_at: float, ends_at: float,
                comment: str = "") -> SilenceRow:
    """Store a new silence and return it."""
    if not matchers:
        raise StoreError("a silence needs at least one matcher")
    if ends_at <= starts_at:
        raise StoreError("a silence must end after it starts")
    row = SilenceRow("s-" + uuid.uuid4().hex[:12], {str(k): str(v) for k, v in matchers.items()},
                     float(starts_at), float(ends_at), comment)
    db.write_tx(lambda conn: conn.execute(S.silences.insert().values(
        id=row.id, matchers=clean_text(dumps(row.matchers)), starts_at=row.starts_at,
        ends_at=row.ends_at, comment=clean_text(comment) or "", created_at=row.created_at)),
        what="add a silence")
    return row


def expire_silence(db: Database, silence_id: str, *, at: float | None = None) -> bool:
    """End a silence now; False when there is no such silence."""
    when = time.time() if at is None else at
    si = S.silences
    return db.write_tx(lambda conn: bool(conn.execute(
        update(si).where(si.c.id == silence_id, si.c.ends_at > when)
        .values(ends_at=when)).rowcount), what="expire a silence")


def list_silences(db: Database, *, active_at: float | None = None) -> list[SilenceRow]:
    """Silences, newest first; with ``active_at`` only those active then."""
    si = S.silences
    query = select(si.c.id, si.c.matchers, si.c.starts_at, si.c.ends_at, si.c.comment,
                   si.c.created_at).order_by(si.c.pk.desc())
    if active_at is not None:
        query = query.where(si.c.starts_at <= active_at, si.c.ends_at > active_at)
    return db.read_tx(lambda conn: [
        SilenceRow(r[0], json.loads(r[1]), float(r[2]), float(r[3]), r[4], float(r[5]))
        for r in conn.execute(query)], what="list silences")
