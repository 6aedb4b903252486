"""The outbox worker: delivers queued notifications, at least once, with retries and backoff.

Notifications are written to the store's outbox first (:mod:`allele.store.outbox`), so nothing
is lost while a receiver is down or when a process stops: any process running an
:class:`OutboxWorker` with the same channels (the dashboard, ``observe serve``, the next
``bench`` command) picks up what is due. Each attempt either marks the row delivered, reschedules
it ``backoff_initial_s * 2**(attempts - 1)`` seconds later (capped at ``backoff_max_s``, with
+-10% jitter so that many rows do not retry in lockstep), or, after ``max_attempts`` or on a
permanent refusal (a 4xx answer, an SMTP 5xx), marks it ``dead``: the dashboard lists dead rows
with their last error.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping

from allele.observe.channels import Channel, DeliveryError
from allele.store.engine import Database
from allele.store.outbox import claim_due, mark_delivered, mark_failed

_log = logging.getLogger("allele.observe.outbox")


class OutboxWorker:
    """Delivers due outbox rows of ``channels`` (by name) from ``db``.

    :meth:`run_once` does one pass; :meth:`start` runs passes every ``interval_s`` in a thread;
    :meth:`drain` runs passes until nothing is due or a deadline passes.
    """

    def __init__(self, db: Database, channels: Mapping[str, Channel], *,
                 backoff_initial_s: float = 1.0, backoff_max_s: float = 300.0,
                 max_attempts: int = 50, lease_s: float = 60.0, interval_s: float = 1.0,
                 batch: int = 50, clock: Callable[[], float] = time.time,
                 rng: random.Random | None = None) -> None:
        if backoff_initial_s <= 0 or backoff_max_s < backoff_initial_s or max_attempts < 1:
            from allele.errors import ValidationError

            raise ValidationError("need 0 < backoff_initial_s <= backoff_max_s and "
                                  "max_attempts >= 1")
        self.db = db
        self.channels = dict(channels)
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.max_attempts = max_attempts
        self.lease_s = lease_s
        self.interval_s = interval_s
        self.batch = batch
        self._clock = clock
        self._rng = rng or random.Random(0)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.delivered = 0
        self.failures = 0
        self.dead = 0

    def backoff(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt (before jitter)."""
        return float(min(self.backoff_max_s,
                         self.backoff_initial_s * 2.0 ** max(0, attempts - 1)))

    def run_once(self) -> int:
        """Deliver what is due now; returns how many rows were delivered."""
        if not self.channels:
            return 0
        items = claim_due(self.db, list(self.channels), limit=self.batch, lease_s=self.lease_s,
                          now=self._clock())
        done = 0
        for item in items:
            channel = self.channels[item.channel]
            try:
                channel.deliver(item.payload)
            except DeliveryError as exc:
                self._failed(item.pk, item.note_id, item.channel, item.attempts + 1, str(exc),
                             exc.retry)
                continue
            except Exception as exc:  # a channel bug must not stop the worker
                _log.exception("channel %s crashed on %s", item.channel, item.note_id)
                self._failed(item.pk, item.note_id, item.channel, item.attempts + 1,
                             f"{type(exc).__name__}: {exc}", True)
                continue
            mark_delivered(self.db, item.pk, now=self._clock())
            self.delivered += 1
            done += 1
        return done

    def _failed(self, pk: int, note_id: str, channel: str, attempts: int, error: str,
                retry: bool) -> None:
        self.failures += 1
        if not retry or attempts >= self.max_attempts:
            self.dead += 1
            mark_failed(self.db, pk, error, retry_at=None)
            _log.error("%s: giving up notification %s after %d attempts: %s", channel, note_id,
                       attempts, error)
            return
        wait = self.backoff(attempts) * (0.9 + 0.2 * self._rng.random())
        mark_failed(self.db, pk, error, retry_at=self._clock() + wait)
        _log.warning("%s: attempt %d for %s failed (%s); retrying in %.1fs", channel, attempts,
                     note_id, error, wait)

    def drain(self, timeout_s: float = 5.0) -> int:
        """Run passes until one delivers nothing due or ``timeout_s`` passed; returns the total
        delivered. Rows that keep failing stay queued for a later worker."""
        deadline = time.monotonic() + timeout_s
        total = 0
        while time.monotonic() < deadline:
            n = self.run_once()
            total += n
            if n == 0:
                break
        return total

    def start(self) -> None:
        """Deliver every ``interval_s`` in a background thread (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(self.interval_s):
                try:
                    self.run_once()
                except Exception:
                    _log.exception("outbox pass failed")

        self._thread = threading.Thread(target=loop, name="allele-outbox", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the thread (what is queued stays in the store)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
