"""The dashboard's end of the bus: one thread tails the store and fans out to the browsers.

A single :class:`LiveHub` per app polls the store every ``poll_s`` (0.25 s) with a
:class:`~allele.observe.tail.StoreTail`, folds what it finds into a
:class:`~allele.bench.livestate.LiveState` (the Live page's snapshot) and into the latest value
of every series (the dashboard's ``/metrics``), and hands each new batch to every subscriber's
bounded asyncio queue. A browser that does not keep up loses batches, not memory: its queue is
bounded, a full queue drops the batch and the subscriber is told to resynchronise from the
snapshot. So the dashboard's memory stays flat however fast events arrive and however many tabs
are open, and the store is read once per poll, not once per browser.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from allele.bench.livestate import LiveState
from allele.observe.tail import StoreTail
from allele.store.live import StoredEvent
from allele.store.points import MetricPoint
from allele.store.results import ResultStore

_log = logging.getLogger("allele.dashboard")

QUEUE_SIZE = 64
MAX_LATEST = 20_000
POINTS_PER_SERIES = 10
"""A live chart redraws every 0.25 s: of one series' points in one poll, the newest few are
what it can show; the rest stay in the store (and in the snapshot's windows)."""


def _num(v: float) -> float | None:
    return v if math.isfinite(v) else None


def encode_batch(events: list[StoredEvent], points: list[tuple[int, MetricPoint]]) -> str:
    """One poll's news as the JSON text every subscriber receives (encoded once, shared):
    every event, and the newest :data:`POINTS_PER_SERIES` points of each series."""
    by_series: dict[tuple[str, str, tuple[tuple[str, str], ...]], list[tuple[int, MetricPoint]]]
    by_series = {}
    for item in points:
        p = item[1]
        by_series.setdefault((p.metric, p.component, p.labels), []).append(item)
    kept = sorted((x for group in by_series.values() for x in group[-POINTS_PER_SERIES:]),
                  key=lambda x: x[0])
    message = {"type": "batch", "events": [e.to_dict() for e in events],
               "points": [{"id": i, "metric": p.metric, "component": p.component,
                           "labels": ",".join(f"{k}={v}" for k, v in p.labels if k != "run"),
                           "t": p.timestamp, "v": _num(p.value)} for i, p in kept],
               "points_total": len(points), "sent_at": time.time()}
    try:
        return json.dumps(message, separators=(",", ":"), allow_nan=False)
    except ValueError:  # a non-finite number inside an event's data
        from allele.dashboard.web.adapters import clean

        return json.dumps(clean(message), separators=(",", ":"), allow_nan=False)


@dataclass(slots=True, eq=False)
class _Subscriber:
    queue: asyncio.Queue[str]
    loop: asyncio.AbstractEventLoop
    lagging: bool = False


IDLE_POLL_S = 1.0


class LiveHub:
    """Tails ``store`` in a thread; see the module docstring."""

    def __init__(self, store: ResultStore, *, poll_s: float = 0.25) -> None:
        self.store = store
        self.poll_s = poll_s
        self.state = LiveState()
        self.latest: OrderedDict[tuple[str, str, tuple[tuple[str, str], ...]],
                                 tuple[float, float]] = OrderedDict()
        self._subs: set[_Subscriber] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._tail: StoreTail | None = None
        self.polls = 0
        self.events_total = 0
        self.points_total = 0
        self.dropped_batches = 0
        self.poll_failures = 0
        self.last_poll_s = 0.0
        self.poll_seconds = 0.0

    def start(self) -> None:
        """Rebuild the recent runs from the store, then start tailing."""
        self._tail = StoreTail(self.store)
        try:
            self.state.bootstrap(self.store)
        except Exception:
            _log.exception("could not rebuild the live state from the store")
        self._thread = threading.Thread(target=self._run, name="allele-dashboard-tail",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        """Poll every ``poll_s`` while events arrive; after empty polls the wait doubles up to
        ``IDLE_POLL_S`` (an idle dashboard then reads the store once a second instead of four
        times, and a new event still shows within about a second)."""
        wait = self.poll_s
        while not self._stop.wait(wait):
            try:
                new = self.poll_once()
            except Exception:
                new = 0
                self.poll_failures += 1
                _log.exception("tailing the store failed")
            wait = self.poll_s if new else min(max(IDLE_POLL_S, self.poll_s), wait * 2)

    def poll_once(self) -> int:
        """One poll: fold and publish what is new; returns how many events and points."""
        assert self._tail is not None
        t0 = time.perf_counter()
        batch = self._tail.poll()
        self.polls += 1
        self._check_holders()
        if not batch:
            self.last_poll_s = time.perf_counter() - t0
            return 0
        with self._lock:
            self.state.apply(batch.events)
            self.state.apply_points(batch.points)
            for _, p in batch.points:
                key = (p.metric, p.component, p.labels)
                self.latest[key] = (p.timestamp, p.value)
                self.latest.move_to_end(key)
            while len(self.latest) > MAX_LATEST:
                self.latest.popitem(last=False)
        self.events_total += len(batch.events)
        self.points_total += len(batch.points)
        if self._subs:  # encoded once for every open page; not at all for none
            self._publish(encode_batch(batch.events, batch.points))
        self.last_poll_s = time.perf_counter() - t0
        self.poll_seconds += self.last_poll_s
        return len(batch.events) + len(batch.points)

    def _check_holders(self) -> None:
        """Runs whose runner is gone (:meth:`LiveState.check_holders`, every few seconds): the
        open pages hear of each as a ``run_status`` message of the dashboard's own (no runner
        is left to send a ``run_finished``)."""
        with self._lock:
            changed = self.state.check_holders(self.store)
            runs = [self.state.runs[i] for i in sorted(changed) if i in self.state.runs]
        if not runs or not self._subs:
            return
        now = time.time()
        events = [{"id": 0, "ts": now, "source": "dashboard", "kind": "run_status",
                   "run_id": r.run_id, "data": {"status": r.status,
                                                "holder_gone": r.holder_gone}} for r in runs]
        self._publish(json.dumps({"type": "batch", "events": events, "points": [],
                                  "points_total": 0, "sent_at": now}))

    def _publish(self, message: str) -> None:
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                sub.loop.call_soon_threadsafe(self._offer, sub, message)

    def _offer(self, sub: _Subscriber, message: str) -> None:
        if sub.lagging:
            return
        try:
            sub.queue.put_nowait(message)
        except asyncio.QueueFull:
            sub.lagging = True
            self.dropped_batches += 1

    def subscribe(self) -> _Subscriber:
        """A new subscriber on the running event loop."""
        sub = _Subscriber(asyncio.Queue(maxsize=QUEUE_SIZE), asyncio.get_running_loop())
        with self._lock:
            self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: _Subscriber) -> None:
        with self._lock:
            self._subs.discard(sub)

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def snapshot(self) -> dict[str, Any]:
        """The Live page's state now."""
        with self._lock:
            snap = self.state.snapshot()
        snap["hub"] = self.stats()
        return snap

    def stats(self) -> dict[str, Any]:
        """The hub's own counters."""
        return {"polls": self.polls, "events": self.events_total, "points": self.points_total,
                "dropped_batches": self.dropped_batches, "poll_failures": self.poll_failures,
                "subscribers": self.subscribers, "last_poll_s": self.last_poll_s,
                "poll_seconds": self.poll_seconds}

    def latest_values(self) -> list[tuple[str, str, tuple[tuple[str, str], ...], float]]:
        """``(metric, component, labels, value)`` of every series seen (for ``/metrics``)."""
        with self._lock:
            return [(m, c, lab, v) for (m, c, lab), (_, v) in self.latest.items()]

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
