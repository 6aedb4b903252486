"""Alert routing: every alert, from a threshold rule or a regression, takes one path.

::

    rule evaluation (AlertManager) ─┐
    regression verdicts (bench)  ───┼─> AlertRouter ─> IntelligentAlertManager ─> store (alerts)
                                    │     (silences)    (dedup, inhibition,        └> outbox rows
    escalations (router.escalate) ──┘                   grouping, escalation)         per channel

:class:`AlertRouter` stores each alert (the Alerts page reads the ``alerts`` table), holds back
silenced ones (silences are stored, set from the dashboard), passes the rest through
:class:`~allele.analytics.correlate.IntelligentAlertManager`, which drops duplicates within its
dedup window, mutes inhibited alerts and assigns groups, and queues a notification per configured
channel in the store's outbox (:mod:`allele.store.outbox`). An
:class:`~allele.observe.outbox.OutboxWorker` delivers them. :meth:`AlertRouter.escalate` turns
the manager's escalations of unacknowledged groups into notifications of their own.

A regression alert has a stored identity (base run, head run, cell, metric):
:meth:`AlertRouter.raise_regression` routes it only the first time that identity is seen.
:class:`RouterNotifier` plugs the router into an :class:`~allele.observe.alerts.AlertManager` as
one of its notifiers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from allele.analytics.correlate import IntelligentAlertManager
from allele.observe.alert_model import Alert, Silence, Status
from allele.observe.channels import iso
from allele.observe.notify import Notification
from allele.store.alerts import (
    AlertRow,
    get_alert,
    is_stale,
    list_alerts,
    list_silences,
    touch_alerts,
    upsert_alert,
)
from allele.store.engine import Database
from allele.store.outbox import DEFAULT_LIMIT, enqueue

Outcome = Literal["queued", "duplicate", "inhibited", "silenced", "known", "resolved"]

REFRESH_S = 60.0
"""How often (at most) a :class:`RouterNotifier` refreshes its manager's firing alerts in the
store: the heartbeat that keeps them from being shown stale
(:data:`allele.store.alerts.RULE_STALE_S`, 300 s) while their evaluator runs."""


@dataclass(frozen=True, slots=True)
class RouteResult:
    """What happened to one alert: ``queued`` for delivery (``channels`` rows added,
    ``refused`` by a full outbox), or held back (and why)."""

    outcome: Outcome
    fingerprint: str
    note_id: str | None = None
    group_id: str | None = None
    queued: int = 0
    refused: int = 0


def note_document(alert: AlertRow, status: Status, note_id: str, *, sent_at: float,
                  kind: str = "alert", level: int | None = None,
                  priority: float | None = None) -> dict[str, Any]:
    """The notification document every channel renders (see :mod:`allele.observe.channels`)."""
    doc: dict[str, Any] = {
        "id": note_id, "kind": kind, "status": status, "sent_at": sent_at,
        "sentAt": iso(sent_at), "group_id": alert.group_id,
        "alert": {"fingerprint": alert.fingerprint, "name": alert.name, "source": alert.source,
                  "labels": dict(alert.labels), "annotations": dict(alert.annotations),
                  "severity": alert.severity, "value": alert.value, "starts_at": alert.starts_at,
                  "ends_at": alert.ends_at, "identity": alert.identity},
    }
    if level is not None:
        doc["level"] = level
    if priority is not None:
        doc["priority"] = priority
    return doc


def row_of(alert: Alert, source: str = "rule") -> AlertRow:
    """The stored form of an observe :class:`~allele.observe.alert_model.Alert`."""
    return AlertRow(fingerprint=alert.fingerprint, name=alert.name, source=source,
                    labels=dict(alert.labels), annotations=dict(alert.annotations),
                    severity=alert.severity, state=alert.state,
                    starts_at=alert.starts_at if alert.starts_at is not None else alert.active_at,
                    value=alert.value, ends_at=alert.ends_at)


class AlertRouter:
    """Routes alerts to the store and the outbox (see the module docstring).

    ``channels``: names of the channels to queue notifications for (those an
    :class:`~allele.observe.outbox.OutboxWorker` is configured with; none: alerts are only
    stored). ``manager``: the IntelligentAlertManager (default: its defaults, on ``clock``).
    """

    def __init__(self, db: Database, channels: Sequence[str] = (), *,
                 manager: IntelligentAlertManager | None = None,
                 clock: Callable[[], float] = time.time,
                 outbox_limit: int = DEFAULT_LIMIT) -> None:
        self.db = db
        self.channels = list(dict.fromkeys(channels))
        self.clock = clock
        self.manager = manager if manager is not None else IntelligentAlertManager(clock=clock)
        self.outbox_limit = outbox_limit
        self._lock = threading.Lock()
        self._adopted: set[str] = set()
        self.refused = 0

    def _silenced(self, labels: dict[str, str], now: float) -> bool:
        for s in list_silences(self.db, active_at=now):
            if Silence(s.id, s.matchers, s.starts_at, s.ends_at).matches(labels):
                return True
        return False

    def _queue(self, row: AlertRow, status: Status, note_id: str, now: float,
               **extra: Any) -> tuple[int, int]:
        if not self.channels:
            return 0, 0
        doc = note_document(row, status, note_id, sent_at=now, **extra)
        added, refused = enqueue(self.db, note_id, self.channels, doc, limit=self.outbox_limit,
                                 now=now)
        self.refused += refused
        return added, refused

    def route(self, row: AlertRow, status: Status, note_id: str) -> RouteResult:
        """Store ``row`` and queue its notification unless silenced, a duplicate or inhibited.
        """
        with self._lock:
            now = self.clock()
            fp = row.fingerprint
            if status == "resolved":
                self.manager.process([_event(row, "resolved")])
                stored = _with(row, state="resolved", ends_at=row.ends_at or now, updated_at=now)
                upsert_alert(self.db, stored)
                if self._silenced(row.labels, now):
                    return RouteResult("silenced", fp)
                added, refused = self._queue(stored, "resolved", note_id, now)
                return RouteResult("resolved", fp, note_id, None, added, refused)
            if self._silenced(row.labels, now):
                upsert_alert(self.db, _with(row, updated_at=now))
                return RouteResult("silenced", fp)
            update = self.manager.process([_event(row, "firing")])
            if update.duplicates:
                upsert_alert(self.db, _with(row, updated_at=now))
                return RouteResult("duplicate", fp)
            if update.inhibited:
                by = update.inhibited[0][1]
                notes = {**row.annotations, "inhibited_by": by}
                upsert_alert(self.db, _with(row, annotations=notes, updated_at=now))
                return RouteResult("inhibited", fp)
            group = next((g for g in update.groups if fp in g.fingerprints), None)
            gid = group.id if group is not None else None
            stored = _with(row, group_id=gid, updated_at=now)
            upsert_alert(self.db, stored)
            added, refused = self._queue(stored, "firing", note_id, now)
            return RouteResult("queued", fp, note_id, gid, added, refused)

    def raise_regression(self, row: AlertRow) -> RouteResult:
        """Route a regression alert the first time its identity (fingerprint) is seen; later
        calls return ``known`` and notify nobody."""
        with self._lock:
            now = self.clock()
            new = upsert_alert(self.db, _with(row, updated_at=now), only_new=True)
        if not new:
            return RouteResult("known", row.fingerprint)
        return self.route(row, "firing", f"regression:{row.fingerprint}")

    def touch(self, fingerprints: Sequence[str]) -> int:
        """Refresh these stored alerts now: their evaluator still sees them (see
        :data:`REFRESH_S`)."""
        return touch_alerts(self.db, fingerprints, self.clock())

    def release(self, fingerprints: Sequence[str], reason: str) -> int:
        """Store these firing rule alerts resolved now, with ``reason`` as their
        ``resolved_reason`` annotation; returns how many were. Their evaluator is stopping
        cleanly (``allele observe serve`` at its end): shown firing until they went stale
        (:data:`~allele.store.alerts.RULE_STALE_S`, minutes later), they looked watched when
        nothing watched them any more. Nobody is notified: the condition was not seen to clear,
        as a stale alert notifies nobody."""
        released = 0
        with self._lock:
            now = self.clock()
            for fp in dict.fromkeys(fingerprints):
                row = get_alert(self.db, fp)
                if row is None or row.source != "rule" or row.state != "firing":
                    continue  # never stored, resolved meanwhile, or not a rule's to end
                self.manager.process([_event(row, "resolved")])
                upsert_alert(self.db, _with(row, state="resolved", ends_at=now, updated_at=now,
                                            annotations={**row.annotations,
                                                         "resolved_reason": reason}))
                released += 1
        return released

    def adopt(self) -> int:
        """Let the manager know the firing alerts stored by other processes (without notifying
        anyone), so that their groups escalate here too; returns how many were new to it. A
        stale rule alert (its evaluator stopped: :func:`~allele.store.alerts.is_stale`) is not
        adopted."""
        with self._lock:
            now = self.clock()
            rows = [r for r in list_alerts(self.db, states=["firing"])
                    if r.fingerprint not in self._adopted and not is_stale(r, now)]
            if rows:
                self.manager.process([_event(r, "firing") for r in rows])
                self._adopted.update(r.fingerprint for r in rows)
            return len(rows)

    def escalate(self) -> list[RouteResult]:
        """Queue a notification for every group the manager escalates now (acknowledged groups,
        as stored from the dashboard, never escalate)."""
        out: list[RouteResult] = []
        with self._lock:
            known = self.manager.groups
            for a in list_alerts(self.db, states=["firing"]):
                if a.acknowledged_at is not None and a.group_id in known:
                    self.manager.acknowledge(a.group_id)
            now = self.clock()
            for esc in self.manager.check_escalations():
                group = known.get(esc.group_id)
                if group is None:
                    continue
                first = max(group.alerts, key=lambda e: self.manager.priority(e))
                rows = {r.fingerprint: r for r in list_alerts(self.db, states=["firing"])}
                row = rows.get(first.fingerprint)
                if row is None or is_stale(row, now):
                    continue
                note_id = f"escalation:{esc.group_id}:{esc.level}"
                added, refused = self._queue(row, "firing", note_id, now, kind="escalation",
                                             level=esc.level, priority=esc.priority)
                out.append(RouteResult("queued", row.fingerprint, note_id, esc.group_id, added,
                                       refused))
        return out

    def notifier(self) -> RouterNotifier:
        """This router as a notifier of an :class:`~allele.observe.alerts.AlertManager`."""
        return RouterNotifier(self)


class RouterNotifier:
    """Feeds an AlertManager's notifications into an :class:`AlertRouter` (never raises)."""

    def __init__(self, router: AlertRouter) -> None:
        self.router = router
        self.sent = 0
        self.failures = 0
        self._refreshed = -float("inf")

    def refresh(self, alerts: Sequence[Alert], now: float) -> None:
        """The manager's heartbeat after each evaluation: every :data:`REFRESH_S` seconds, mark
        its firing alerts refreshed in the store (so the Alerts page shows them stale, then
        resolved, once this process stops)."""
        if now - self._refreshed < REFRESH_S:
            return
        self._refreshed = now
        self.router.touch([a.fingerprint for a in alerts if a.state == "firing"])

    def send(self, notification: Notification) -> None:
        try:
            self.router.route(row_of(notification.alert), notification.status,
                              notification.key)
            self.sent += 1
        except Exception:
            import logging

            self.failures += 1
            logging.getLogger("allele.observe.routing").exception(
                "routing notification %s failed", notification.key)

    def close(self) -> None:
        return None


def _with(row: AlertRow, **changes: Any) -> AlertRow:
    from dataclasses import replace

    return replace(row, **changes)


def _event(row: AlertRow, state: str) -> dict[str, Any]:
    return {"fingerprint": row.fingerprint, "name": row.name, "labels": row.labels,
            "severity": row.severity, "starts_at": row.starts_at, "state": state,
            "value": row.value}


def alert_board(db: Database, *, states: Sequence[str] | None = None,
                source: str | None = None, now: float | None = None,
                limit: int = 500) -> dict[str, Any]:
    """What the Alerts page shows: the stored alerts (each marked ``silenced`` when an active
    silence matches it, and shown resolved and ``stale`` when a rule alert's evaluator stopped
    refreshing it: :func:`~allele.store.alerts.is_stale`), grouped by their group id (an
    alert without one is its own group; groups with a firing member first, then by severity),
    and the active silences."""
    from allele.analytics.correlate import SEVERITY_WEIGHT

    at = time.time() if now is None else now
    silences = list_silences(db, active_at=at)
    matchers = [Silence(s.id, s.matchers, s.starts_at, s.ends_at) for s in silences]
    alerts = []
    # a stale rule alert is stored firing but shown resolved: read firing ones for "resolved" too
    wanted = list(states) + (["firing"] if "resolved" in states else []) if states else None
    for a in list_alerts(db, states=wanted, source=source, limit=limit):
        d = a.to_dict()
        d["stale"] = is_stale(a, at)
        if d["stale"]:  # its evaluator stopped: resolved when it was last seen firing
            d["state"], d["ends_at"] = "resolved", a.updated_at
        if states and d["state"] not in states:
            continue
        hit = next((s.id for s in matchers if s.matches(a.labels)), None)
        d["silenced"] = hit is not None and d["state"] != "resolved"
        d["silenced_by"] = hit
        alerts.append(d)
    groups: dict[str, dict[str, Any]] = {}
    for d in alerts:
        gid = d["group_id"] or d["fingerprint"]
        g = groups.setdefault(gid, {"id": gid, "alerts": [], "severity": "info",
                                    "firing": 0, "acknowledged": True})
        g["alerts"].append(d["fingerprint"])
        g["firing"] += d["state"] == "firing" and not d["silenced"]
        g["acknowledged"] = g["acknowledged"] and d["acknowledged_at"] is not None
        if SEVERITY_WEIGHT.get(d["severity"], 0.5) > SEVERITY_WEIGHT.get(g["severity"], 0.5):
            g["severity"] = d["severity"]
    ordered = sorted(groups.values(), key=lambda g: (g["firing"] == 0,
                                                     -SEVERITY_WEIGHT.get(g["severity"], 0.5),
                                                     g["id"]))
    return {"now": at, "alerts": alerts, "groups": ordered,
            "silences": [s.to_dict() for s in silences],
            "counts": {st: sum(1 for d in alerts if d["state"] == st and not d["silenced"])
                       for st in ("firing", "pending", "resolved")}
            | {"silenced": sum(1 for d in alerts if d["silenced"])}}
