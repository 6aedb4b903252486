"""allele.observe: metrics from every component, Prometheus exposition, threshold alerts.

The public surface::

    telemetry = Telemetry()                       # implements allele.core.observer.Observer
    engine = EvolutionEngine(cfg, fitness, observer=telemetry)
    telemetry.series("allele_evolution_best_fitness", component=engine.name)
    telemetry.serve(9464)                         # /metrics on 127.0.0.1
    alerts = AlertManager(telemetry, load_rules(), [WebhookNotifier(url), LogNotifier()])
    alerts.start(interval_s=5)

See docs/observability.md.
"""

from allele.observe.alerts import Alert, AlertManager, AlertRule, Silence, load_rules
from allele.observe.hooks import Telemetry
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
