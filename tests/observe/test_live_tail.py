"""Publishing live (at least every interval, nothing lost while the store is down) and tailing
the store (including PostgreSQL's out-of-order commits)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from allele.observe.live import LivePublisher
from allele.observe.tail import StoreTail, _Cursor
from allele.store import ResultStore
from allele.store.live import Event
from allele.store.points import MetricPoint


class FlakySink:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.points: list[MetricPoint] = []
        self.down = False

    def append_events(self, events: Sequence[Event]) -> int:
        if self.down:
            raise ConnectionError("store down")
        self.events.extend(events)
        return len(events)

    def write_metric_points(self, points: Sequence[MetricPoint]) -> None:
        if self.down:
            raise ConnectionError("store down")
        self.points.extend(points)


def test_publisher_keeps_events_while_the_store_is_down_and_bounds_them() -> None:
    sink = FlakySink()
    pub = LivePublisher(sink, source="t", background=False, max_pending=5)
    sink.down = True
    for i in range(8):
        pub.emit("tick", None, i=i)
    pub.add_points([MetricPoint("m", "c", (), 1.0, 2.0),
                    MetricPoint("m", "c", (), 1.0, float("nan"))])
    assert pub.flush() == 0
    assert pub.flush_failures == 2 and pub.pending == 5 and pub.events_dropped == 3
    sink.down = False
    assert pub.flush() == 5
    assert [e.data["i"] for e in sink.events] == [3, 4, 5, 6, 7]  # the newest kept, in order
    assert [p.value for p in sink.points] == [2.0]
    assert pub.points_invalid == 1


def test_publisher_thread_flushes_within_its_interval(sqlite_store: ResultStore) -> None:
    pub = LivePublisher(sqlite_store, source="t", interval_s=0.05)
    tail = StoreTail(sqlite_store)
    try:
        pub.emit("hello", "r1", n=1)
        seen: list[str] = []
        for _ in range(200):  # polls up to 2 s; the interval is 0.05 s
            seen += [e.kind for e in tail.poll().events]
            if seen:
                break
            time.sleep(0.01)
        assert seen == ["hello"]
    finally:
        pub.close()


def test_tail_returns_only_what_is_new(sqlite_store: ResultStore) -> None:
    sqlite_store.append_events([Event("old", "s")])
    tail = StoreTail(sqlite_store)
    assert not tail.poll()
    sqlite_store.append_events([Event("a", "s"), Event("b", "s")])
    sqlite_store.write_metric_points([MetricPoint("m", "c", (), 1.0, 1.0)])
    batch = tail.poll()
    assert [e.kind for e in batch.events] == ["a", "b"]
    assert [p.value for _, p in batch.points] == [1.0]
    assert not tail.poll()
    assert [e.kind for e in StoreTail(sqlite_store, from_start=True).poll().events] == [
        "old", "a", "b"]


def test_cursor_overlap_catches_a_key_committed_late() -> None:
    cur = _Cursor(0, overlap=8)
    assert cur.fresh([11]) == [True]  # key 10 is not committed yet
    # the next read starts below 11 and sees 10 (committed late), 11 again and 12
    assert cur.query_from == 3
    assert cur.fresh([10, 11, 12]) == [True, False, True]
    assert cur.fresh([10, 11, 12]) == [False, False, False]
    assert cur.pos == 12
