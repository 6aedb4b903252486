"""Tailing the store: what the dashboards read as the pipeline's far end.

:class:`StoreTail` remembers where it is in the event log and in the telemetry points and, on
every :meth:`~StoreTail.poll`, returns what was committed since. On PostgreSQL, concurrent
writers can commit keys out of order (see :mod:`allele.store.live`), so the tail re-reads an
``overlap`` of keys below its position and drops ids it has already returned; on SQLite the
writers are serialised and the overlap is 0.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from allele.store.engine import Database
from allele.store.live import StoredEvent, last_ids, read_events, read_points_after
from allele.store.points import MetricPoint


@dataclass(frozen=True, slots=True)
class TailBatch:
    """What one poll found: events and ``(id, point)`` pairs, oldest first."""

    events: list[StoredEvent]
    points: list[tuple[int, MetricPoint]]

    def __bool__(self) -> bool:
        return bool(self.events or self.points)


class _Cursor:
    """A position in one table, with the recently returned ids for the overlap."""

    def __init__(self, start: int, overlap: int) -> None:
        self.pos = start
        self.overlap = overlap
        self._seen: set[int] = set()
        self._order: deque[int] = deque()

    @property
    def query_from(self) -> int:
        return max(0, self.pos - self.overlap)

    def fresh(self, ids: Sequence[int]) -> list[bool]:
        """Which of ``ids`` are new; repeated ids (the points of one stored block) share the
        answer of their first occurrence."""
        keep = []
        decided: dict[int, bool] = {}
        for i in ids:
            if i in decided:
                keep.append(decided[i])
                continue
            new = i > self.pos or (self.overlap and i not in self._seen and i > self.query_from)
            decided[i] = bool(new)
            keep.append(bool(new))
            if new and self.overlap:
                self._seen.add(i)
                self._order.append(i)
            if i > self.pos:
                self.pos = i
        while self._order and self._order[0] <= self.pos - 2 * self.overlap:
            self._seen.discard(self._order.popleft())
        return keep


class StoreTail:
    """Reads what was appended to the store since the last poll.

    ``from_start``: begin at the first event (default: only what comes after construction).
    ``metrics``: only tail these telemetry metrics (None: all). ``limit`` bounds one poll.
    """

    def __init__(self, db: Database, *, from_start: bool = False,
                 metrics: Sequence[str] | None = None, limit: int = 5000,
                 overlap: int | None = None) -> None:
        self.db = db
        self.metrics = list(metrics) if metrics else None
        self.limit = limit
        ov = overlap if overlap is not None else (0 if db.url.startswith("sqlite") else 64)
        e0, p0 = (0, 0) if from_start else last_ids(db)
        self.events = _Cursor(e0, ov)
        self.points = _Cursor(p0, ov)

    def poll(self) -> TailBatch:
        """New events and points since the last poll (at most ``limit`` of each)."""
        evs = read_events(self.db, self.events.query_from, limit=self.limit + self.events.overlap)
        keep = self.events.fresh([e.id for e in evs])
        events = [e for e, k in zip(evs, keep, strict=True) if k]
        pts = read_points_after(self.db, self.points.query_from,
                                limit=self.limit + self.points.overlap, metrics=self.metrics)
        keep = self.points.fresh([i for i, _ in pts])
        points = [p for p, k in zip(pts, keep, strict=True) if k]
        return TailBatch(events, points)
