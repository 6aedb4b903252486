"""allele.observe: metrics from every component, Prometheus exposition, threshold alerts.

The public surface::

    telemetry = Telemetry()                       # implements allele.core.observer.Observer
    engine = EvolutionEngine(cfg, fitness, observer=telemetry)
    telemetry.series("allele_evolution_best_fitness", component=engine.name)
    alerts = AlertManager(telemetry, load_rules(), [WebhookNotifier(url), LogNotifier()])
    alerts.start(interval_s=5)
    from allele.observe.export import make_registry, serve    # loads prometheus-client
    registry = make_registry(telemetry, collectors=[alerts.collector()])
    server = serve(registry, 9464)                # /metrics on 127.0.0.1

Modules: ``telemetry`` (ingest, query, flush), ``streams`` (per-component state), ``metrics``
(the catalogue and plain data types), ``alert_model`` (rules, alerts, silences), ``alerts`` (the
AlertManager), ``notify`` (notifiers), ``export`` (Prometheus and OpenTelemetry exposition),
``install`` (the process-wide default observer), ``system`` (the psutil sampler).

See docs/observability.md.
"""

from allele.observe.alert_model import Alert, AlertRule, Silence, load_rules
from allele.observe.alerts import AlertManager
from allele.observe.metrics import (
    CATALOGUE,
    MetricDef,
    MetricPoint,
    MetricSink,
    Series,
    SystemSample,
)
from allele.observe.notify import (
    CallbackNotifier,
    LogNotifier,
    Notification,
    Notifier,
    WebhookNotifier,
)
from allele.observe.telemetry import Telemetry

__all__ = [
    "CATALOGUE",
    "Alert",
    "AlertManager",
    "AlertRule",
    "CallbackNotifier",
    "LogNotifier",
    "MetricDef",
    "MetricPoint",
    "MetricSink",
    "Notification",
    "Notifier",
    "Series",
    "Silence",
    "SystemSample",
    "Telemetry",
    "WebhookNotifier",
    "load_rules",
]
