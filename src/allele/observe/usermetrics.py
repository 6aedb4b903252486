"""Metrics a user's own code records live: counters, gauges and histograms with labels.

A benchmark target (or any program) declares its metrics once and updates them as it works::

    from allele.observe import usermetrics as um

    REQUESTS = um.counter("myapp_requests_total", "Requests served.", labels=["route"])
    QUEUE = um.gauge("myapp_queue_depth", "Items waiting.")
    LATENCY = um.histogram("myapp_latency_seconds", "Request latency.",
                           buckets=[0.01, 0.1, 1.0])

    def target(params, seed):
        REQUESTS.labels(route="/chat").inc()
        QUEUE.set(3)
        LATENCY.observe(0.042)
        return {"score": 1.0}

Declaring the same name again returns the same metric (a target runs many times in a worker);
the same name with another kind, labels or buckets is a :class:`~allele.errors.ValidationError`.
Names follow Prometheus' rules and may not start with ``allele_`` (the built-in catalogue's
prefix).

Where the values go: inside ``allele bench run`` each worker forwards its updates to the runner
(after each measured call, outside the timed region), which merges them, serves them on
``--metrics-port`` and writes them to the store every 0.5 s; in any other program,
:class:`allele.observe.live.LivePublisher` writes them to a store and
:class:`UserMetricsCollector` exposes them on ``/metrics``.

**Series limit.** Every label set is one series; a metric keeps at most ``max_series`` of them
(default 1,000), so a label fed with ids (a user id, a prompt) cannot exhaust memory or the
store. An update of a series beyond the limit is dropped and counted in :attr:`UserMetrics.refused`
(exposed as ``allele_user_metric_refused_total{metric=...}``). Updates cost a dictionary lookup
and an addition under a lock: about a microsecond.
"""

from __future__ import annotations

import bisect
import math
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from allele.errors import ValidationError
from allele.store.points import MetricPoint

Kind = Literal["counter", "gauge", "histogram"]
DEFAULT_MAX_SERIES = 1000
DEFAULT_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                                      10.0)
USER_COMPONENT = "user"
"""The component under which user metrics are stored."""

_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_Key = tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SeriesUpdate:
    """What changed in one series since the last :meth:`UserMetrics.take_updates` (picklable:
    it travels from a worker to the runner). Counters carry their increment, gauges their value,
    histograms the per-bucket counts, sum and count of their new observations."""

    kind: Kind
    name: str
    help: str
    label_names: tuple[str, ...]
    buckets: tuple[float, ...]
    labels: tuple[str, ...]
    value: float = 0.0
    bucket_counts: tuple[int, ...] = ()
    total: float = 0.0
    count: int = 0


class _Series:
    __slots__ = ("bucket_counts", "count", "total", "u_buckets", "u_count", "u_total", "u_value",
                 "value")

    def __init__(self, nbuckets: int) -> None:
        self.value = 0.0
        self.total = 0.0
        self.count = 0
        self.bucket_counts = [0] * (nbuckets + 1)  # last: +Inf
        self.u_value = 0.0
        self.u_total = 0.0
        self.u_count = 0
        self.u_buckets = [0] * (nbuckets + 1)


class UserMetric:
    """One declared metric; :meth:`labels` gives one of its series."""

    def __init__(self, registry: UserMetrics, kind: Kind, name: str, help: str,
                 label_names: tuple[str, ...], buckets: tuple[float, ...]) -> None:
        self._registry = registry
        self.kind: Kind = kind
        self.name = name
        self.help = help
        self.label_names = label_names
        self.buckets = buckets
        self.series: dict[_Key, _Series] = {}

    def labels(self, *values: Any, **kv: Any) -> _Child:
        """The series of these label values (positional in declaration order, or by name)."""
        if kv:
            if values or set(kv) != set(self.label_names):
                raise ValidationError(f"{self.name}: labels must be exactly "
                                      f"{list(self.label_names)}, got {sorted(kv)}")
            key = tuple(str(kv[n]) for n in self.label_names)
        else:
            if len(values) != len(self.label_names):
                raise ValidationError(f"{self.name}: expected {len(self.label_names)} label "
                                      f"values {list(self.label_names)}, got {len(values)}")
            key = tuple(str(v) for v in values)
        return _Child(self, key)

    def _default(self) -> _Child:
        if self.label_names:
            raise ValidationError(f"{self.name} has labels {list(self.label_names)}: use "
                                  ".labels(...) first")
        return _Child(self, ())

    def inc(self, amount: float = 1.0) -> None:
        """Counter or gauge without labels: add ``amount``."""
        self._default().inc(amount)

    def dec(self, amount: float = 1.0) -> None:
        """Gauge without labels: subtract ``amount``."""
        self._default().dec(amount)

    def set(self, value: float) -> None:
        """Gauge without labels: set the value."""
        self._default().set(value)

    def observe(self, value: float) -> None:
        """Histogram without labels: record one observation."""
        self._default().observe(value)


class _Child:
    """One series of a metric (what :meth:`UserMetric.labels` returns)."""

    __slots__ = ("key", "metric")

    def __init__(self, metric: UserMetric, key: _Key) -> None:
        self.metric = metric
        self.key = key

    def inc(self, amount: float = 1.0) -> None:
        m = self.metric
        if m.kind == "histogram":
            raise ValidationError(f"{m.name} is a histogram: use observe()")
        if m.kind == "counter" and (amount < 0 or not math.isfinite(amount)):
            raise ValidationError(f"{m.name}: a counter only goes up (got {amount!r})")
        m._registry._update(m, self.key, "add", float(amount))

    def dec(self, amount: float = 1.0) -> None:
        if self.metric.kind != "gauge":
            raise ValidationError(f"{self.metric.name} is a {self.metric.kind}: only a gauge "
                                  "goes down")
        self.metric._registry._update(self.metric, self.key, "add", -float(amount))

    def set(self, value: float) -> None:
        if self.metric.kind != "gauge":
            raise ValidationError(f"{self.metric.name} is a {self.metric.kind}: only a gauge "
                                  "is set")
        self.metric._registry._update(self.metric, self.key, "set", float(value))

    def observe(self, value: float) -> None:
        if self.metric.kind != "histogram":
            raise ValidationError(f"{self.metric.name} is a {self.metric.kind}: observe() is "
                                  "for histograms")
        self.metric._registry._update(self.metric, self.key, "observe", float(value))


class UserMetrics:
    """A registry of user metrics (one per process by default: :data:`REGISTRY`)."""

    def __init__(self, max_series: int = DEFAULT_MAX_SERIES) -> None:
        if max_series < 1:
            raise ValidationError("max_series must be >= 1")
        self.max_series = max_series
        self._metrics: dict[str, UserMetric] = {}
        self._lock = threading.Lock()
        self._unsent: set[tuple[str, _Key]] = set()
        self._unstored: set[tuple[str, _Key]] = set()
        self.refused: dict[str, int] = {}

    # -- declaring ---------------------------------------------------------------------------

    def _declare(self, kind: Kind, name: str, help: str, labels: Sequence[str],
                 buckets: Sequence[float] = ()) -> UserMetric:
        if not _NAME.match(name) or name.startswith("allele_"):
            raise ValidationError(f"metric name {name!r}: use letters, digits, '_' and ':' "
                                  "(not starting with a digit, nor with 'allele_')")
        names = tuple(str(n) for n in labels)
        bad = [n for n in names if not _LABEL.match(n) or n.startswith("__") or n == "le"]
        if bad or len(set(names)) != len(names):
            raise ValidationError(f"{name}: invalid or repeated label names {list(names)}")
        bks = tuple(sorted(float(b) for b in buckets if math.isfinite(float(b))))
        if kind == "histogram" and not bks:
            raise ValidationError(f"{name}: a histogram needs at least one finite bucket")
        with self._lock:
            have = self._metrics.get(name)
            if have is not None:
                if (have.kind, have.label_names, have.buckets) != (kind, names, bks):
                    raise ValidationError(
                        f"metric {name!r} is already a {have.kind} with labels "
                        f"{list(have.label_names)}; it cannot be declared again differently")
                return have
            metric = UserMetric(self, kind, name, help or name, names, bks)
            self._metrics[name] = metric
            return metric

    def counter(self, name: str, help: str = "", labels: Sequence[str] = ()) -> UserMetric:
        """Declare (or get) a counter."""
        return self._declare("counter", name, help, labels)

    def gauge(self, name: str, help: str = "", labels: Sequence[str] = ()) -> UserMetric:
        """Declare (or get) a gauge."""
        return self._declare("gauge", name, help, labels)

    def histogram(self, name: str, help: str = "", labels: Sequence[str] = (),
                  buckets: Sequence[float] = DEFAULT_BUCKETS) -> UserMetric:
        """Declare (or get) a histogram with fixed ``buckets`` (upper bounds)."""
        return self._declare("histogram", name, help, labels, buckets)

    # -- updating ----------------------------------------------------------------------------

    def _series(self, metric: UserMetric, key: _Key) -> _Series | None:
        s = metric.series.get(key)
        if s is None:
            if len(metric.series) >= self.max_series:
                self.refused[metric.name] = self.refused.get(metric.name, 0) + 1
                return None
            s = metric.series[key] = _Series(len(metric.buckets))
        return s

    def _update(self, metric: UserMetric, key: _Key, op: str, v: float) -> None:
        with self._lock:
            s = self._series(metric, key)
            if s is None:
                return
            if op == "add":
                s.value += v
                s.u_value += v
            elif op == "set":
                s.value = v
                s.u_value = v
            else:
                i = bisect.bisect_left(metric.buckets, v)
                s.bucket_counts[i] += 1
                s.u_buckets[i] += 1
                s.total += v
                s.u_total += v
                s.count += 1
                s.u_count += 1
            self._unsent.add((metric.name, key))
            self._unstored.add((metric.name, key))

    # -- moving values between processes -----------------------------------------------------

    def take_updates(self) -> list[SeriesUpdate]:
        """What changed since the last call (and reset it): what a worker forwards."""
        out: list[SeriesUpdate] = []
        with self._lock:
            for name, key in sorted(self._unsent):
                m = self._metrics[name]
                s = m.series[key]
                out.append(SeriesUpdate(m.kind, name, m.help, m.label_names, m.buckets, key,
                                        s.u_value, tuple(s.u_buckets), s.u_total, s.u_count))
                s.u_value = 0.0
                s.u_total = 0.0
                s.u_count = 0
                s.u_buckets = [0] * len(s.u_buckets)
            self._unsent.clear()
        return out

    def apply(self, updates: Sequence[SeriesUpdate]) -> None:
        """Merge updates forwarded by another process (counters add, gauges take the newest
        value, histograms add their buckets); a conflicting declaration is refused and counted.
        """
        for u in updates:
            try:
                m = self._declare(u.kind, u.name, u.help, u.label_names, u.buckets)
            except ValidationError:
                with self._lock:
                    self.refused[u.name] = self.refused.get(u.name, 0) + 1
                continue
            with self._lock:
                s = self._series(m, u.labels)
                if s is None:
                    continue
                if u.kind == "counter":
                    s.value += u.value
                    s.u_value += u.value
                elif u.kind == "gauge":
                    s.value = u.value
                    s.u_value = u.value
                else:
                    for i, c in enumerate(u.bucket_counts[:len(s.bucket_counts)]):
                        s.bucket_counts[i] += c
                        s.u_buckets[i] += c
                    s.total += u.total
                    s.u_total += u.total
                    s.count += u.count
                    s.u_count += u.count
                self._unsent.add((u.name, u.labels))
                self._unstored.add((u.name, u.labels))

    def changed_points(self, ts: float, component: str = USER_COMPONENT) -> list[MetricPoint]:
        """One point per series changed since the last call: a counter's or gauge's value, a
        histogram's ``_sum`` and ``_count``; what goes to the store."""
        out: list[MetricPoint] = []
        with self._lock:
            for name, key in sorted(self._unstored):
                m = self._metrics[name]
                s = m.series[key]
                labels = tuple(zip(m.label_names, key, strict=True))
                if m.kind == "histogram":
                    out.append(MetricPoint(name + "_sum", component, labels, ts, s.total))
                    out.append(MetricPoint(name + "_count", component, labels, ts,
                                           float(s.count)))
                else:
                    out.append(MetricPoint(name, component, labels, ts, s.value))
            self._unstored.clear()
        return out

    # -- reading -----------------------------------------------------------------------------

    def metrics(self) -> list[UserMetric]:
        """Every declared metric, by name."""
        with self._lock:
            return [self._metrics[n] for n in sorted(self._metrics)]

    def value(self, name: str, **labels: str) -> float | None:
        """A counter's or gauge's current value (a histogram's count), or None."""
        with self._lock:
            m = self._metrics.get(name)
            if m is None:
                return None
            s = m.series.get(tuple(str(labels.get(n, "")) for n in m.label_names))
            if s is None:
                return None
            return float(s.count) if m.kind == "histogram" else s.value

    def snapshot(self) -> Iterator[tuple[UserMetric, list[tuple[_Key, float, list[int], float,
                                                                int]]]]:
        """Every metric with ``(labels, value, cumulative bucket counts, sum, count)`` per series
        (for exporters)."""
        with self._lock:
            items = [(self._metrics[n], [(k, s.value, list(s.bucket_counts), s.total, s.count)
                                         for k, s in sorted(self._metrics[n].series.items())])
                     for n in sorted(self._metrics)]
        for m, rows in items:
            cum = []
            for key, value, counts, total, count in rows:
                acc, run = [], 0
                for c in counts:
                    run += c
                    acc.append(run)
                cum.append((key, value, acc, total, count))
            yield m, cum

    def reset(self) -> None:
        """Forget every metric (tests)."""
        with self._lock:
            self._metrics.clear()
            self._unsent.clear()
            self._unstored.clear()
            self.refused.clear()


class UserMetricsCollector:
    """A prometheus-client collector of a :class:`UserMetrics` registry, read at scrape time."""

    def __init__(self, registry: UserMetrics, extra_labels: Mapping[str, str] | None = None
                 ) -> None:
        self.registry = registry
        self.extra = dict(extra_labels or {})

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        extra_names, extra_values = list(self.extra), list(self.extra.values())
        for m, rows in self.registry.snapshot():
            names = [*m.label_names, *extra_names]
            fam: Any
            if m.kind == "counter":
                fam = CounterMetricFamily(m.name, m.help, labels=names)
                for key, value, _, _, _ in rows:
                    fam.add_metric([*key, *extra_values], value)
            elif m.kind == "gauge":
                fam = GaugeMetricFamily(m.name, m.help, labels=names)
                for key, value, _, _, _ in rows:
                    fam.add_metric([*key, *extra_values], value)
            else:
                fam = HistogramMetricFamily(m.name, m.help, labels=names)
                for key, _, cum, total, _ in rows:
                    bounds = [*(repr(b) for b in m.buckets), "+Inf"]
                    fam.add_metric([*key, *extra_values], buckets=list(zip(bounds, cum,
                                                                            strict=True)),
                                   sum_value=total)
            yield fam
        refused = CounterMetricFamily("allele_user_metric_refused",
                                      "User metric updates refused by the series limit.",
                                      labels=["metric"])
        for name, n in sorted(self.registry.refused.items()):
            refused.add_metric([name], float(n))
        yield refused


REGISTRY = UserMetrics()
"""The process-wide registry that :func:`counter`, :func:`gauge` and :func:`histogram` use."""


def counter(name: str, help: str = "", labels: Sequence[str] = ()) -> UserMetric:
    """Declare (or get) a counter in the process-wide registry."""
    return REGISTRY.counter(name, help, labels)


def gauge(name: str, help: str = "", labels: Sequence[str] = ()) -> UserMetric:
    """Declare (or get) a gauge in the process-wide registry."""
    return REGISTRY.gauge(name, help, labels)


def histogram(name: str, help: str = "", labels: Sequence[str] = (),
              buckets: Sequence[float] = DEFAULT_BUCKETS) -> UserMetric:
    """Declare (or get) a histogram in the process-wide registry."""
    return REGISTRY.histogram(name, help, labels, buckets)
