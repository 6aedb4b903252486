"""Publishing live: events and telemetry points into the store at least every half second.

:class:`LivePublisher` is what a running process uses to be watched. Its :meth:`~LivePublisher.
emit` costs one ``deque.append`` (atomic under the GIL, no lock); a background thread writes
what accumulated every ``interval_s`` (0.5 s by default) in one transaction per table: the events,
then the points of an attached :class:`~allele.observe.telemetry.Telemetry` (its ``flush``), of a
:class:`~allele.observe.usermetrics.UserMetrics` registry, and any points handed to
:meth:`~LivePublisher.add_points`. Readers tail the store (:mod:`allele.store.live`), so the
latency from an event to a dashboard is at most one interval plus the reader's poll.

A failing store never raises into the caller: the batch stays queued for the next flush (up to
``max_pending`` events; the oldest beyond are dropped and counted) and the failure is counted.
Points whose value is not finite (a gauge set to NaN) are counted in ``points_invalid`` and not
written: the store keeps numbers, and one such point must not block every later batch.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from allele.store.live import Event
from allele.store.points import MetricPoint

if TYPE_CHECKING:
    from allele.observe.telemetry import Telemetry
    from allele.observe.usermetrics import UserMetrics

_log = logging.getLogger("allele.observe.live")

DEFAULT_INTERVAL_S = 0.5


@runtime_checkable
class LiveSink(Protocol):
    """Where live events and points go (the result store implements this)."""

    def append_events(self, events: Sequence[Event]) -> int: ...

    def write_metric_points(self, points: Sequence[MetricPoint]) -> None: ...


class LivePublisher:
    """Buffers events and points and writes them to ``sink`` every ``interval_s``.

    ``source`` names the publishing process in every event (e.g. ``bench:<run name>``).
    ``telemetry`` / ``user``: flushed on every tick too (their points go to their own sink,
    respectively to ``sink``). ``background=False`` leaves flushing to the caller (tests).
    """

    def __init__(self, sink: LiveSink, *, source: str, interval_s: float = DEFAULT_INTERVAL_S,
                 telemetry: Telemetry | None = None, user: UserMetrics | None = None,
                 max_pending: int = 100_000, clock: Callable[[], float] = time.time,
                 background: bool = True) -> None:
        if interval_s <= 0 or max_pending < 1:
            from allele.errors import ValidationError

            raise ValidationError("interval_s and max_pending must be positive")
        self.sink = sink
        self.source = source
        self.interval_s = float(interval_s)
        self.telemetry = telemetry
        self.user = user
        self.max_pending = max_pending
        self._clock = clock
        self._events: deque[Event] = deque()
        self._points: deque[MetricPoint] = deque()
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._tick_hooks: list[Callable[[], None]] = []
        self.events_written = 0
        self.events_dropped = 0
        self.points_written = 0
        self.points_invalid = 0
        self.flush_failures = 0
        self.last_flush_at: float | None = None
        if background:
            self.start()

    # -- producing ---------------------------------------------------------------------------

    def emit(self, kind: str, run_id: str | None = None, *, ts: float | None = None,
             **data: Any) -> None:
        """Queue one event (cheap; never raises for the store's sake)."""
        self._events.append(Event(kind, self.source, self._clock() if ts is None else ts,
                                  run_id, data))

    def add_points(self, points: Sequence[MetricPoint]) -> None:
        """Queue telemetry points to be written with the next flush."""
        self._points.extend(points)

    def on_tick(self, hook: Callable[[], None]) -> None:
        """Call ``hook()`` before every flush (e.g. to sample worker processes)."""
        self._tick_hooks.append(hook)

    # -- flushing ----------------------------------------------------------------------------

    def _trim(self) -> None:
        excess = len(self._events) - self.max_pending
        if excess > 0:
            for _ in range(excess):
                self._events.popleft()
            self.events_dropped += excess
            _log.warning("live publisher dropped %d events the store could not take", excess)

    def flush(self) -> int:
        """Write everything queued now; returns how many events were written."""
        with self._flush_lock:
            for hook in self._tick_hooks:
                try:
                    hook()
                except Exception:
                    _log.exception("live tick hook %r failed", hook)
            if self.user is not None:
                self._points.extend(self.user.changed_points(self._clock()))
            written = 0
            batch = [self._events.popleft() for _ in range(len(self._events))]
            if batch:
                try:
                    self.sink.append_events(batch)
                    written = len(batch)
                    self.events_written += written
                except Exception:
                    self._events.extendleft(reversed(batch))
                    self.flush_failures += 1
                    self._trim()
                    _log.exception("live publisher: the store refused %d events", len(batch))
            points = [self._points.popleft() for _ in range(len(self._points))]
            finite = [p for p in points if math.isfinite(p.value) and math.isfinite(p.timestamp)]
            self.points_invalid += len(points) - len(finite)  # the store keeps numbers only
            points = finite
            if points:
                try:
                    self.sink.write_metric_points(points)
                    self.points_written += len(points)
                except Exception:
                    self.flush_failures += 1
                    if len(points) <= self.max_pending:
                        self._points.extendleft(reversed(points))
                    _log.exception("live publisher: the store refused %d points", len(points))
            if self.telemetry is not None:
                self.telemetry.flush()
            self.last_flush_at = self._clock()
            return written

    @property
    def pending(self) -> int:
        """Events queued and not written yet."""
        return len(self._events)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the background flushing thread (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="allele-live", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                if self.telemetry is not None:
                    self.telemetry.drain()
                self.flush()
            except Exception:  # the thread must survive anything
                _log.exception("live publisher flush failed")

    def close(self) -> None:
        """Stop the thread and write what is left."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self.flush()

    def __enter__(self) -> LivePublisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
