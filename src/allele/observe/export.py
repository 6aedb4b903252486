"""Exposition: Prometheus (prometheus-client, private registry) and optional OpenTelemetry.

Nothing here runs on an observed component's thread. The Prometheus collector reads a
:meth:`Telemetry.snapshot` at scrape time; the OpenTelemetry bridge registers observable
instruments whose callbacks read the same snapshot, and feeds histogram observations to an OTel
``Histogram`` as events are drained.

What is exposed is what the caller registers: ``registry = make_registry(telemetry,
collectors=[manager.collector()])``, then :func:`serve` it on ``/metrics`` or render it once with
:func:`exposition`. Neither the Telemetry nor an alert manager knows it is being exported.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from allele.observe.metrics import CATALOGUE, MetricDef, Record, record_points

if TYPE_CHECKING:
    from allele.observe.telemetry import Telemetry


def _family(m: MetricDef) -> Metric:
    labels = ["component", *m.label_names]
    if m.kind == "counter":
        return CounterMetricFamily(m.name, m.help, labels=labels)
    if m.kind == "gauge":
        return GaugeMetricFamily(m.name, m.help, labels=labels)
    return HistogramMetricFamily(m.name, m.help, labels=labels)


class TelemetryCollector:
    """A prometheus-client collector that reads a Telemetry at scrape time."""

    def __init__(self, telemetry: Telemetry) -> None:
        self.telemetry = telemetry

    def describe(self) -> Iterable[Metric]:
        return [_family(m) for m in CATALOGUE.values()]

    def collect(self) -> Iterator[Metric]:
        for fam in self.telemetry.snapshot():
            m = fam.metric
            metric = _family(m)
            if m.kind == "histogram":
                assert isinstance(metric, HistogramMetricFamily)
                for h in fam.histograms:
                    metric.add_metric([h.component], buckets=h.buckets, sum_value=h.sum)
            else:
                assert isinstance(metric, CounterMetricFamily | GaugeMetricFamily)
                for comp, values, v in fam.samples:
                    metric.add_metric([comp, *values], v)
            yield metric
        for name, value in self.telemetry.self_metrics().items():
            if name.endswith("_total"):
                yield CounterMetricFamily(name, "Allele telemetry self-metric.", value=value)
            else:
                yield GaugeMetricFamily(name, "Allele telemetry self-metric.", value=value)


def make_registry(telemetry: Telemetry, collectors: Iterable[Any] = ()) -> CollectorRegistry:
    """A private registry (not the global default) holding a :class:`TelemetryCollector` and
    ``collectors`` (e.g. ``[manager.collector()]``); more may be registered later."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(TelemetryCollector(telemetry))
    for collector in collectors:
        registry.register(collector)
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    """The Prometheus text format of everything ``registry`` holds, right now."""
    from prometheus_client import generate_latest

    return generate_latest(registry)


class MetricsServer:
    """A running ``/metrics`` HTTP server (prometheus-client's WSGI server in a thread)."""

    def __init__(self, httpd: Any, thread: threading.Thread, host: str) -> None:
        self._httpd = httpd
        self._thread = thread
        self.host = host
        self.port: int = int(httpd.server_port)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and release the port."""
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


MIN_TOKEN_LENGTH = 8
"""The shortest access token accepted, by ``/metrics`` here and by the dashboard
(:func:`allele.dashboard.web.auth.check_bind`): one rule for both doors."""


def check_token_length(token: str | None, what: str) -> None:
    """Refuse a token shorter than :data:`MIN_TOKEN_LENGTH` (``what`` names whose it is, for
    the one-line error): a short token is guessed in a few requests, on any address."""
    from allele.errors import ConfigError

    if token is not None and len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(f"the {what} token must be at least {MIN_TOKEN_LENGTH} characters long")


def is_loopback(host: str) -> bool:
    """Whether binding ``host`` serves this machine only (127.0.0.0/8, ::1, ``localhost``,
    ``ip6-localhost``): the rule of `allele observe serve` and of the dashboard."""
    import ipaddress

    if host.strip().lower() in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name or an empty address: reachable beyond this machine


def serve(registry: CollectorRegistry, port: int = 9464, host: str = "127.0.0.1",
          token: str | None = None) -> MetricsServer:
    """Serve ``registry`` (see :func:`make_registry`) on ``http://host:port/metrics`` in a
    background thread (127.0.0.1 unless told otherwise; ``port=0`` picks a free one).

    Bound beyond loopback it needs a ``token``: every request must then carry
    ``Authorization: Bearer <token>`` (what Prometheus sends with ``authorization:
    {credentials: ...}`` in its scrape config), else it gets 401. Without a token a
    non-loopback bind is refused (ConfigError), as the dashboard refuses it, and so is a token
    shorter than the dashboard's minimum (:func:`check_token_length`), on any address."""
    from allele.errors import ConfigError

    if not 0 <= port <= 65535:
        raise ConfigError(f"port {port} is not a TCP port (0-65535; 0 picks a free one)")
    if token is not None and not token.strip():
        raise ConfigError("the /metrics token is empty")
    check_token_length(token, "/metrics")
    if token is None and not is_loopback(host):
        raise ConfigError(f"serving metrics on {host!r} exposes them beyond this machine: "
                          "give a token (--token or ALLELE_OBSERVE_TOKEN), or bind 127.0.0.1")
    try:
        httpd, thread = _start_server(registry, host, port, token)
    except (OSError, OverflowError, UnicodeError, ValueError) as exc:
        raise ConfigError(f"cannot serve metrics on {host}:{port}: {exc}") from None
    return MetricsServer(httpd, thread, host)


def _paths(metrics: Any) -> Any:
    """The metrics on ``/metrics``, a pointer to them on ``/``, and 404 on any other path
    (prometheus-client's app answers every path with the metrics, so a mistyped scrape path
    looked right)."""
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        path = str(environ.get("PATH_INFO") or "/")
        if path in ("/metrics", "/metrics/"):
            return metrics(environ, start_response)
        status = "200 OK" if path == "/" else "404 Not Found"
        start_response(status, [("Content-Type", "text/plain; charset=utf-8")])
        head = "Allele metrics" if path == "/" else f"404: nothing at {path}"
        return [f"{head}; the Prometheus exposition is at /metrics\n".encode()]

    return app


def _start_server(registry: CollectorRegistry, host: str, port: int, token: str | None
                  ) -> tuple[Any, threading.Thread]:
    """prometheus-client's WSGI server, with the app wrapped in a bearer-token check."""
    import hmac
    import socket
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from prometheus_client.exposition import ThreadingWSGIServer, make_wsgi_app

    app = _paths(make_wsgi_app(registry))
    if token is not None:
        expected = f"Bearer {token}".encode()
        inner = app

        def app(environ: dict[str, Any], start_response: Any) -> Any:
            given = str(environ.get("HTTP_AUTHORIZATION", "")).encode()
            if hmac.compare_digest(given, expected):
                return inner(environ, start_response)
            start_response("401 Unauthorized", [("Content-Type", "text/plain"),
                                                ("WWW-Authenticate", "Bearer")])
            return [b"401 Unauthorized: this /metrics needs its bearer token\n"]

    family = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                flags=socket.AI_PASSIVE)[0][0]

    class Server(ThreadingWSGIServer):
        address_family = family
        # socketserver's default listen backlog is 5: 32 scrapers at once overflowed it and
        # their connections waited 1-3 s for SYN retries (benchmarks/scrapers_load.py)
        request_queue_size = 128

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """No access log on stderr."""

    httpd = make_server(host, port, app, Server, handler_class=Quiet)
    thread = threading.Thread(target=httpd.serve_forever, name="allele-metrics", daemon=True)
    thread.start()
    return httpd, thread


# --- OpenTelemetry (optional: opentelemetry-api only) --------------------------------------------


class OpenTelemetryBridge:
    """Mirror a Telemetry into an OpenTelemetry ``Meter`` (``opentelemetry-api`` only).

    Counters become observable counters and gauges observable gauges, read from a snapshot when
    the application's SDK collects; histograms become OTel histograms fed with every observation
    as events are drained. Attributes carry the same bounded labels (``component``, ``cause``,
    ``generation``). Without a ``meter``, ``opentelemetry.metrics.get_meter("allele")`` is used,
    which is a no-op until the application installs an SDK ``MeterProvider``.
    """

    def __init__(self, telemetry: Telemetry, meter: Any | None = None) -> None:
        try:
            from opentelemetry import metrics as otel_metrics
        except ImportError as exc:  # pragma: no cover - depends on the environment
            from allele.errors import ConfigError

            raise ConfigError(
                "OpenTelemetry export needs opentelemetry-api: pip install 'allele[otel]'"
            ) from exc
        self._otel = otel_metrics
        self.telemetry = telemetry
        self.meter = meter if meter is not None else otel_metrics.get_meter("allele")
        self.instruments: dict[str, Any] = {}
        self._histograms: dict[str, tuple[MetricDef, Any]] = {}
        for m in CATALOGUE.values():
            if m.kind == "histogram":
                inst = self.meter.create_histogram(
                    m.name, unit=m.unit, description=m.help,
                    explicit_bucket_boundaries_advisory=list(m.buckets))
                self._histograms[m.source + ":" + m.name] = (m, inst)
            elif m.kind == "counter":
                inst = self.meter.create_observable_counter(
                    m.name, callbacks=[self._callback(m)], unit=m.unit, description=m.help)
            else:
                inst = self.meter.create_observable_gauge(
                    m.name, callbacks=[self._callback(m)], unit=m.unit, description=m.help)
            self.instruments[m.name] = inst
        self._by_source: dict[str, list[tuple[MetricDef, Any]]] = {}
        for m, inst in self._histograms.values():
            self._by_source.setdefault(m.source, []).append((m, inst))
        telemetry.subscribe(self._on_record)

    def _callback(self, m: MetricDef) -> Any:
        observation = self._otel.Observation

        def observe(options: Any) -> list[Any]:
            out = []
            for fam in self.telemetry.snapshot([m.name]):
                for comp, values, v in fam.samples:
                    attrs = {"component": comp, **dict(zip(m.label_names, values, strict=True))}
                    out.append(observation(v, attrs))
            return out

        return observe

    def _on_record(self, source: str, component: str, rec: Record) -> None:
        for m, inst in self._by_source.get(source, ()):
            for _, v in record_points(m, rec):
                inst.record(v, {"component": component})
