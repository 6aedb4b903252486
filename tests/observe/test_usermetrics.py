"""The public API for a user's own live metrics: kinds, labels, the series limit, forwarding
between processes and exposition."""

from __future__ import annotations

import pytest

from allele.errors import ValidationError
from allele.observe.usermetrics import UserMetrics, UserMetricsCollector


def test_counters_gauges_and_histograms_with_labels() -> None:
    reg = UserMetrics()
    c = reg.counter("app_requests_total", "Requests.", labels=["route"])
    c.labels(route="/a").inc()
    c.labels("/a").inc(2)
    c.labels(route="/b").inc()
    g = reg.gauge("app_depth")
    g.set(5)
    g.dec(2)
    h = reg.histogram("app_latency_seconds", buckets=[0.1, 1.0])
    for v in (0.05, 0.1, 0.5, 3.0):
        h.observe(v)
    assert reg.value("app_requests_total", route="/a") == 3.0
    assert reg.value("app_requests_total", route="/b") == 1.0
    assert reg.value("app_depth") == 3.0
    assert reg.value("app_latency_seconds") == 4.0
    snap = {m.name: rows for m, rows in reg.snapshot()}
    (_, _, cum, total, count), = snap["app_latency_seconds"]
    assert cum == [2, 3, 4] and total == pytest.approx(3.65) and count == 4  # le=0.1 holds 0.1
    assert reg.counter("app_requests_total", "again", labels=["route"]) is c


def test_misuse_is_a_clear_error() -> None:
    reg = UserMetrics()
    c = reg.counter("x_total", labels=["a"])
    with pytest.raises(ValidationError, match="labels"):
        c.inc()
    with pytest.raises(ValidationError, match="only goes up"):
        c.labels("1").inc(-1)
    with pytest.raises(ValidationError, match="already a counter"):
        reg.gauge("x_total", labels=["a"])
    with pytest.raises(ValidationError, match="allele_"):
        reg.counter("allele_mine")
    with pytest.raises(ValidationError, match="metric name"):
        reg.counter("1bad")
    with pytest.raises(ValidationError, match="observe"):
        reg.gauge("g").observe(1.0)


def test_series_beyond_the_limit_are_refused_and_counted() -> None:
    reg = UserMetrics(max_series=1000)
    c = reg.counter("ids_total", labels=["id"])
    for i in range(1500):
        c.labels(id=str(i)).inc()
    c.labels(id="0").inc()  # an existing series still counts
    assert len(c.series) == 1000
    assert reg.refused == {"ids_total": 500}
    assert reg.value("ids_total", id="0") == 2.0
    assert reg.value("ids_total", id="1200") is None


def test_updates_forwarded_from_workers_merge_in_the_runner() -> None:
    w1, w2, runner = UserMetrics(), UserMetrics(), UserMetrics()
    for w, n in ((w1, 3), (w2, 4)):
        c = w.counter("calls_total", labels=["k"])
        h = w.histogram("lat_seconds", buckets=[1.0])
        for _ in range(n):
            c.labels(k="a").inc()
            h.observe(0.5)
        w.gauge("depth").set(n)
    runner.apply(w1.take_updates())
    runner.apply(w2.take_updates())
    assert w1.take_updates() == []  # what was forwarded is not forwarded again
    w1.counter("calls_total", labels=["k"]).labels(k="a").inc()
    runner.apply(w1.take_updates())
    assert runner.value("calls_total", k="a") == 8.0
    assert runner.value("lat_seconds") == 7.0
    assert runner.value("depth") == 4.0  # the newest value
    pts = {(p.metric, p.labels): p.value for p in runner.changed_points(123.0)}
    assert pts[("calls_total", (("k", "a"),))] == 8.0
    assert pts[("lat_seconds_sum", ())] == pytest.approx(3.5)
    assert pts[("lat_seconds_count", ())] == 7.0
    assert runner.changed_points(124.0) == []  # nothing new since


def test_collector_exposes_prometheus_text() -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    reg = UserMetrics(max_series=1)
    c = reg.counter("jobs_total", "Jobs.", labels=["kind"])
    c.labels(kind="a").inc(2)
    c.labels(kind="b").inc()  # refused
    reg.histogram("wait_seconds", buckets=[0.5]).observe(0.2)
    registry = CollectorRegistry()
    registry.register(UserMetricsCollector(reg))
    text = generate_latest(registry).decode()
    assert 'jobs_total{kind="a"} 2.0' in text
    assert 'wait_seconds_bucket{le="0.5"} 1.0' in text
    assert 'wait_seconds_bucket{le="+Inf"} 1.0' in text
    assert 'allele_user_metric_refused_total{metric="jobs_total"} 1.0' in text
