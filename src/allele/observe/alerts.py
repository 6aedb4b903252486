"""The alert manager: threshold rules evaluated over Telemetry series, Alertmanager semantics.

Each (rule, component, metric labels) gives one alert; alerts with identical label sets are one
alert (deduplicated by ``fingerprint``). The rules, alerts and silences themselves are plain data
in :mod:`allele.observe.alert_model`.

States: inactive -> pending (condition true, waiting ``for``) -> firing -> resolved. A firing
alert is notified once, then again every ``repeat_interval_s`` while it keeps firing; a resolved
notification follows when it stops. Silences (label matchers with an expiry) hold notifications
back while active. Time comes from an injected ``clock`` so tests control it. The alert state is
exposed to Prometheus through :meth:`AlertManager.collector`, which the caller registers beside
the Telemetry's (see :func:`allele.observe.export.make_registry`).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from allele.errors import ConfigError, ValidationError
from allele.observe.alert_model import (
    Alert,
    AlertRule,
    Silence,
    State,
    Status,
    annotation_values,
    fingerprint,
    parse_duration,
)
from allele.observe.notify import Notification, Notifier

if TYPE_CHECKING:
    from prometheus_client.core import Metric

    from allele.observe.telemetry import Telemetry

_log = logging.getLogger("allele.observe.alerts")


def _format(template: str, values: Mapping[str, Any]) -> str:
    class _Keep(dict[str, Any]):
        def __missing__(self, key: str) -> str:
            return "{" + key + "}"

    try:
        return template.format_map(_Keep(values))
    except (ValueError, IndexError):
        return template


@dataclass(slots=True)
class _Tracked:
    rule: AlertRule
    labels: dict[str, str]
    fingerprint: str
    value: float
    active_at: float
    state: State = "pending"
    starts_at: float | None = None
    ends_at: float | None = None
    notified_at: float | None = None
    repeats: int = 0
    silenced: bool = False
    annotations: dict[str, str] = field(default_factory=dict)

    def snapshot(self) -> Alert:
        return Alert(self.rule.name, dict(self.labels), dict(self.annotations),
                     self.rule.severity, self.state, self.value, self.fingerprint,
                     self.active_at, self.starts_at, self.ends_at, self.silenced)


# --- the manager ---------------------------------------------------------------------------------


class AlertManager:
    """Evaluates rules against a Telemetry and sends notifications on state changes.

    ``stale_after_s``: a component whose metric has no point that recent is treated as absent
    (so an alert on a component that stopped reporting resolves). ``repeat_interval_s``: how often
    a still-firing alert is notified again. ``history_size``: resolved alerts kept for
    :meth:`history`.
    """

    def __init__(
        self,
        telemetry: Telemetry,
        rules: Sequence[AlertRule],
        notifiers: Iterable[Notifier] = (),
        *,
        clock: Callable[[], float] = time.time,
        repeat_interval_s: float = 4 * 3600.0,
        stale_after_s: float = 300.0,
        notify_resolved: bool = True,
        history_size: int = 1000,
    ) -> None:
        names = [r.name for r in rules]
        if len(set(names)) != len(names):
            raise ConfigError("alert rule names must be unique")
        if repeat_interval_s <= 0 or stale_after_s <= 0:
            raise ValidationError("repeat_interval_s and stale_after_s must be positive")
        self.telemetry = telemetry
        self.rules = list(rules)
        self.notifiers = list(notifiers)
        self._clock = clock
        self.repeat_interval_s = repeat_interval_s
        self.stale_after_s = stale_after_s
        self.notify_resolved = notify_resolved
        self._active: dict[str, _Tracked] = {}
        self._history: deque[Alert] = deque(maxlen=history_size)
        self._silences: dict[str, Silence] = {}
        self._silence_ids = itertools.count(1)
        self._lock = threading.RLock()
        self.notifications_sent = 0
        self.notifier_failures = 0
        self.evaluations = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    # --- silences -------------------------------------------------------------------------------

    def silence(self, matchers: Mapping[str, str], duration_s: float | str, *,
                comment: str = "", starts_at: float | None = None) -> Silence:
        """Silence alerts matching ``matchers`` for ``duration_s`` (from now by default)."""
        start = self._clock() if starts_at is None else starts_at
        if not matchers:
            raise ValidationError("a silence needs at least one matcher")
        s = Silence(f"silence-{next(self._silence_ids)}", dict(matchers), start,
                    start + parse_duration(duration_s), comment)
        with self._lock:
            self._silences[s.id] = s
        return s

    def expire_silence(self, silence_id: str) -> None:
        """End a silence now."""
        with self._lock:
            s = self._silences.get(silence_id)
            if s is None:
                from allele.errors import ValidationError as _VE

                raise _VE(f"no silence {silence_id!r}")
            self._silences[silence_id] = Silence(s.id, s.matchers, s.starts_at,
                                                 min(s.ends_at, self._clock()), s.comment)

    def silences(self, include_expired: bool = False) -> list[Silence]:
        now = self._clock()
        with self._lock:
            return [s for s in self._silences.values() if include_expired or now < s.ends_at]

    def _is_silenced(self, labels: Mapping[str, str], now: float) -> bool:
        return any(s.active(now) and s.matches(labels) for s in self._silences.values())

    # --- evaluation -----------------------------------------------------------------------------

    def _values(self, rule: AlertRule, now: float) -> Iterator[tuple[str, dict[str, str], float]]:
        lookback = max(rule.window_s, self.stale_after_s)
        component = None if rule.component == "*" else rule.component
        for series in self.telemetry.streams(rule.metric, component, since=now - lookback,
                                             labels=rule.match or None):
            ts, vals = series.timestamps, series.values
            if rule.reduce == "last":
                if len(series) == 0 or now - ts[-1] > self.stale_after_s:
                    continue
                value = float(vals[-1])
            else:
                keep = ts >= now - rule.window_s
                ts, vals = ts[keep], vals[keep]
                if len(vals) == 0:
                    continue
                if rule.reduce == "mean":
                    value = float(vals.mean())
                elif rule.reduce == "max":
                    value = float(vals.max())
                elif rule.reduce == "min":
                    value = float(vals.min())
                else:
                    if len(vals) < 2:
                        continue
                    delta = float(vals[-1] - vals[0])
                    if rule.reduce == "delta":
                        value = delta
                    else:
                        dt = float(ts[-1] - ts[0])
                        if dt <= 0:
                            continue
                        value = delta / dt
            yield series.component, dict(series.labels), value

    def evaluate(self) -> list[Alert]:
        """Evaluate every rule now; send due notifications; return the pending and firing alerts.
        """
        now = self._clock()
        outbox: list[Notification] = []
        with self._lock:
            self.evaluations += 1
            seen: set[str] = set()
            for rule in self.rules:
                for component, metric_labels, value in self._values(rule, now):
                    if not rule.holds(value):
                        continue
                    labels = {**metric_labels, **rule.labels, "alertname": rule.name,
                              "component": component, "severity": rule.severity}
                    fp = fingerprint(labels)
                    if fp in seen:  # identical label sets are one alert
                        continue
                    seen.add(fp)
                    tracked = self._active.get(fp)
                    if tracked is None:
                        tracked = _Tracked(rule, labels, fp, value, now)
                        self._active[fp] = tracked
                    tracked.value = value
                    tracked.annotations = {
                        k: _format(v, annotation_values(labels, value, rule.threshold,
                                                        rule.metric, rule.op))
                        for k, v in rule.annotations.items()
                    }
                    if tracked.state == "pending" and now - tracked.active_at >= rule.for_s:
                        tracked.state = "firing"
                        tracked.starts_at = now
            for fp in list(self._active):
                tracked = self._active[fp]
                tracked.silenced = self._is_silenced(tracked.labels, now)
                if fp in seen:
                    if tracked.state == "firing" and not tracked.silenced and (
                        tracked.notified_at is None
                        or now - tracked.notified_at >= self.repeat_interval_s
                    ):
                        outbox.append(self._note(tracked, "firing", now))
                        tracked.notified_at = now
                        tracked.repeats += 1
                    continue
                del self._active[fp]
                if tracked.state == "pending":
                    continue  # never fired: back to inactive, nothing to tell
                tracked.state = "resolved"
                tracked.ends_at = now
                self._history.append(tracked.snapshot())
                if (self.notify_resolved and tracked.notified_at is not None
                        and not tracked.silenced):
                    outbox.append(self._note(tracked, "resolved", now))
            current = [t.snapshot() for t in self._active.values()]
        for note in outbox:
            self._dispatch(note)
        for notifier in self.notifiers:
            refresh = getattr(notifier, "refresh", None)  # a store-backed notifier's heartbeat
            if refresh is not None:
                try:
                    refresh(current, now)
                except Exception:
                    _log.exception("refreshing alerts through %r failed", notifier)
        return current

    def _note(self, tracked: _Tracked, status: Status, now: float) -> Notification:
        repeat = tracked.repeats if status == "firing" else 0
        key = f"{tracked.fingerprint}:{status}:{tracked.starts_at!r}:{repeat}"
        return Notification(key=key, status=status, alert=tracked.snapshot(), sent_at=now,
                            repeat=repeat)

    def _dispatch(self, note: Notification) -> None:
        self.notifications_sent += 1
        for notifier in self.notifiers:
            try:
                notifier.send(note)
            except Exception:
                self.notifier_failures += 1
                _log.exception("notifier %r failed for %s", notifier, note.key)

    # --- queries --------------------------------------------------------------------------------

    def alerts(self, state: State | None = None) -> list[Alert]:
        """Current pending / firing alerts (as of the last evaluation)."""
        with self._lock:
            out = [t.snapshot() for t in self._active.values()]
        return [a for a in out if state is None or a.state == state]

    def history(self) -> list[Alert]:
        """Resolved alerts, oldest first (bounded by ``history_size``)."""
        with self._lock:
            return list(self._history)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran (a closed manager's collector exports nothing)."""
        return self._closed

    def collector(self) -> AlertCollector:
        """A prometheus-client collector of this manager's alerts, to register beside the
        Telemetry's: ``make_registry(telemetry, collectors=[manager.collector()])``."""
        return AlertCollector(self)

    # --- background evaluation ------------------------------------------------------------------

    def start(self, interval_s: float = 5.0) -> None:
        """Evaluate every ``interval_s`` seconds (real time) in a background thread."""
        if not interval_s > 0:  # 0 or NaN would spin a core at 100%
            raise ValidationError(f"interval_s must be a positive number, got {interval_s!r}")
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()

        def loop() -> None:
            while not self._stop.wait(interval_s):
                try:
                    self.evaluate()
                except Exception:
                    _log.exception("alert evaluation failed")

        self._thread = threading.Thread(target=loop, name="allele-alerts", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the background thread and close the notifiers."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        for notifier in self.notifiers:
            try:
                notifier.close()
            except Exception:
                _log.exception("closing notifier %r failed", notifier)
        self._closed = True


class AlertCollector:
    """A prometheus-client collector of one alert manager's state, read at scrape time.

    ``allele_alerts`` (1 per pending / firing alert) and the notification counters; nothing once
    the manager is closed.
    """

    def __init__(self, manager: AlertManager) -> None:
        self.manager = manager

    def describe(self) -> Iterable[Metric]:
        # No names reserved: several managers may share one registry, as they always could.
        return []

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        manager = self.manager
        if manager.closed:
            return
        fam = GaugeMetricFamily("allele_alerts", "Pending and firing alerts.",
                                labels=["alertname", "component", "severity", "state"])
        for a in manager.alerts():
            fam.add_metric([a.name, a.labels.get("component", ""), a.severity, a.state], 1.0)
        yield fam
        yield CounterMetricFamily("allele_alert_notifications", "Alert notifications dispatched.",
                                  value=float(manager.notifications_sent))
        yield CounterMetricFamily("allele_alert_notifier_failures", "Notifier calls that raised.",
                                  value=float(manager.notifier_failures))
