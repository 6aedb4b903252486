"""allele.observe: metrics from every component, Prometheus exposition, threshold alerts.

The public surface::

    telemetry = Telemetry()                       # implements allele.core.observer.Observer
    engine = EvolutionEngine(cfg, fitness, observer=telemetry)
    telemetry.series("allele_evolution_best_fitness", component=engine.name)
    telemetry.serve(9464)                         # /metrics on 127.0.0.1
    alerts = AlertManager(telemetry, load_rules(), notifiers=[WebhookNotifier(url)])
"""

from allele.observe.hooks import Telemetry
from allele.observe.metrics import (
    CATALOGUE,
    MetricDef,
    MetricPoint,
    MetricSink,
    Series,
    SystemSample,
)

__all__ = [
    "CATALOGUE",
    "MetricDef",
    "MetricPoint",
    "MetricSink",
    "Series",
    "SystemSample",
    "Telemetry",
]
