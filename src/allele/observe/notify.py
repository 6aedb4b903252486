"""Notifiers: where alert notifications go (webhook, log, Python callback).

A notifier's :meth:`send` must return at once and never raise: the webhook notifier only puts the
notification on a bounded queue; a background thread delivers it with retries and exponential
backoff, counting (and logging) every failure. Each notification carries an idempotency ``key``
(``fingerprint:status:starts_at:repeat``), sent as the ``Idempotency-Key`` header and in the JSON
body, so a receiver can drop a duplicate delivery.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from allele.observe.alert_model import Alert, Status

_log = logging.getLogger("allele.observe.notify")


def _iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Notification:
    """One message about one alert: it started (or keeps) firing, or it resolved."""

    key: str
    status: Status
    alert: Alert
    sent_at: float
    repeat: int = 0

    def to_json(self) -> dict[str, Any]:
        """The JSON body a webhook receives (Alertmanager-like field names)."""
        a = self.alert
        return {
            "version": "1",
            "receiver": "allele",
            "key": self.key,
            "status": self.status,
            "repeat": self.repeat,
            "sentAt": _iso(self.sent_at),
            "alerts": [{
                "status": self.status,
                "labels": dict(a.labels),
                "annotations": dict(a.annotations),
                "severity": a.severity,
                "value": a.value,
                "startsAt": _iso(a.starts_at),
                "endsAt": _iso(a.ends_at),
                "fingerprint": a.fingerprint,
            }],
            "alert": asdict(a),
        }


@runtime_checkable
class Notifier(Protocol):
    """Receives notifications; ``send`` returns at once and never raises."""

    def send(self, notification: Notification) -> None: ...

    def close(self) -> None: ...


class LogNotifier:
    """Logs each notification (WARNING when firing, ERROR for critical, INFO when resolved)."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger("allele.alerts")
        self.sent = 0

    def send(self, notification: Notification) -> None:
        a = notification.alert
        if notification.status == "resolved":
            level = logging.INFO
        elif a.severity == "critical":
            level = logging.ERROR
        else:
            level = logging.WARNING
        summary = a.annotations.get("summary", "")
        self.logger.log(level, "alert %s %s [%s] value=%.6g %s (key %s)", a.name,
                        notification.status.upper(), a.severity, a.value, summary,
                        notification.key)
        self.sent += 1

    def close(self) -> None:
        return None


class CallbackNotifier:
    """Calls ``fn(notification)`` synchronously; an exception is counted and logged, not raised."""

    def __init__(self, fn: Callable[[Notification], object]) -> None:
        self.fn = fn
        self.sent = 0
        self.failures = 0

    def send(self, notification: Notification) -> None:
        try:
            self.fn(notification)
        except Exception:
            self.failures += 1
            _log.exception("alert callback %r failed for %s", self.fn, notification.key)
        else:
            self.sent += 1

    def close(self) -> None:
        return None


def check_webhook_url(url: str) -> None:
    """Refuse, at start-up, a webhook URL that could never be posted to (one ValidationError
    line), instead of a delivery thread that fails on every alert later."""
    import httpx

    from allele.errors import ValidationError

    try:
        parsed = httpx.URL(url)
        port = parsed.port
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise ValidationError(f"webhook URL {url!r} is not a valid URL: {exc}") from None
    if parsed.scheme not in ("http", "https"):
        raise ValidationError(f"webhook URL {url!r}: the scheme must be http or https")
    if not parsed.host:
        raise ValidationError(f"webhook URL {url!r} names no host")
    if port is not None and not 0 < port <= 65535:
        raise ValidationError(f"webhook URL {url!r}: port {port} is not a TCP port")


class WebhookNotifier:
    """POSTs each notification as JSON to ``url`` from a background thread.

    * bounded queue (``queue_size``): when full, the new notification is dropped and counted in
      ``dropped`` (``send`` never blocks);
    * retries with exponential backoff (``backoff_initial_s`` doubling up to ``backoff_max_s``)
      on connection errors, timeouts, 408, 429 and 5xx; other 4xx answers are permanent failures;
    * ``max_attempts=None`` (the default) retries until delivered or closed, so nothing is lost
      while a receiver is down; with a number, a notification is given up after that many
      attempts (counted in ``given_up``);
    * every failed attempt is counted in ``failures`` and logged;
    * a URL that cannot be posted to is refused when the notifier is made
      (:func:`check_webhook_url`), and an unexpected error while delivering gives that one
      notification up (counted in ``given_up``) without stopping the delivery thread.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 5.0,
        max_attempts: int | None = None,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        queue_size: int = 1000,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        import httpx

        from allele.errors import ValidationError

        if queue_size < 1 or backoff_initial_s <= 0 or backoff_max_s < backoff_initial_s:
            raise ValidationError("queue_size must be >= 1 and 0 < backoff_initial_s <= "
                                  "backoff_max_s")
        check_webhook_url(url)
        self.url = url
        self.max_attempts = max_attempts
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self._client = httpx.Client(timeout=timeout_s, headers=dict(headers or {}))
        self._queue: queue.Queue[Notification] = queue.Queue(maxsize=queue_size)
        self._stop = threading.Event()
        self.delivered = 0
        self.failures = 0
        self.dropped = 0
        self.given_up = 0
        self._thread = threading.Thread(target=self._run, name="allele-webhook", daemon=True)
        self._thread.start()

    def send(self, notification: Notification) -> None:
        try:
            self._queue.put_nowait(notification)
        except queue.Full:
            self.dropped += 1
            _log.error("webhook queue full (%d): dropped notification %s",
                       self._queue.maxsize, notification.key)

    @property
    def pending(self) -> int:
        """Notifications queued or being delivered."""
        return self._queue.unfinished_tasks

    def flush(self, timeout_s: float = 10.0) -> bool:
        """Wait until every queued notification was delivered or given up; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            try:
                self._deliver(item)
            except Exception:  # the delivery thread outlives any one notification
                self.given_up += 1
                _log.exception("webhook %s: notification %s given up", self.url, item.key)
            finally:
                self._queue.task_done()

    def _deliver(self, item: Notification) -> None:
        import httpx

        body = item.to_json()
        delay = self.backoff_initial_s
        attempt = 0
        while not self._stop.is_set():
            attempt += 1
            retry = True
            try:
                resp = self._client.post(self.url, json=body,
                                         headers={"Idempotency-Key": item.key})
                if resp.status_code < 300:
                    self.delivered += 1
                    return
                retry = resp.status_code >= 500 or resp.status_code in (408, 429)
                reason = f"HTTP {resp.status_code}"
            except httpx.HTTPError as exc:
                reason = f"{type(exc).__name__}: {exc}"
            except Exception as exc:  # anything else is permanent; the thread must live on
                reason = f"{type(exc).__name__}: {exc}"
                retry = False
            self.failures += 1
            if not retry:
                self.given_up += 1
                _log.error("webhook %s refused notification %s (%s); not retrying",
                           self.url, item.key, reason)
                return
            if self.max_attempts is not None and attempt >= self.max_attempts:
                self.given_up += 1
                _log.error("webhook %s: giving up notification %s after %d attempts (%s)",
                           self.url, item.key, attempt, reason)
                return
            _log.warning("webhook %s: attempt %d for %s failed (%s); retrying in %.2fs",
                         self.url, attempt, item.key, reason, delay)
            self._stop.wait(delay)
            delay = min(delay * 2.0, self.backoff_max_s)

    def close(self, timeout_s: float = 5.0) -> None:
        """Deliver what is queued (up to ``timeout_s``), then stop the thread."""
        self.flush(timeout_s)
        self._stop.set()
        self._thread.join(timeout=timeout_s)
        self._client.close()
