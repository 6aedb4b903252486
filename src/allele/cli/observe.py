"""``allele observe``: serve /metrics, check alert rules, list the metric catalogue.

    allele observe serve [--port 9464] [--host 127.0.0.1] [--token T] [--rules FILE | --no-alerts]
                         [--webhook URL] [--store URL] [--demo none|evolution|kraken]
                         [--duration SECONDS] [--interval SECONDS]

``serve`` stops cleanly on Ctrl-C, on SIGTERM (a service manager's stop) and at the end of
``--duration``: alert notifications still queued are delivered, telemetry points still buffered
reach the store, and its alerts still firing are stored resolved ("observer stopped").
Bound beyond loopback, /metrics needs a bearer token (``--token`` or ``ALLELE_OBSERVE_TOKEN``).
    allele observe rules [FILE]
    allele observe metrics
"""

from __future__ import annotations

import math
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from allele.cli._common import plain, sigterm_as_interrupt
from allele.errors import ConfigError

if TYPE_CHECKING:
    from allele.observe import Telemetry

app = typer.Typer(help="Observability: serve /metrics, check alert rules, list metrics.",
                  no_args_is_help=True, pretty_exceptions_enable=False, add_completion=False)
console = Console(width=None if sys.stdout.isatty() else 150, emoji=False)


def _check_serve_options(port: int, interval: float, duration: float | None) -> None:
    if not 0 <= port <= 65535:
        raise ConfigError(f"--port {port}: a TCP port is 0-65535 (0 picks a free one)")
    if not (math.isfinite(interval) and interval >= 0.05):
        raise ConfigError(f"--interval {interval}: must be a finite number of seconds >= 0.05")
    if duration is not None and not (math.isfinite(duration) and duration >= 0):
        raise ConfigError(f"--duration {duration}: must be a finite number of seconds >= 0")


def _demo_loop(kind: str, telemetry: Telemetry, stop: threading.Event) -> None:
    """Keep a real component busy under ``telemetry`` so the endpoint has something to show."""
    if kind == "evolution":
        from allele.core.evolution import EvolutionConfig, EvolutionEngine
        from allele.core.fitness import target_personality

        fitness = target_personality({"empathy": 0.9, "technical_knowledge": 0.7})
        engine = EvolutionEngine(EvolutionConfig(population_size=200, generations=10**9, seed=0),
                                 fitness, observer=telemetry, name="evolution-demo")
        while not stop.is_set():
            engine.step()
            stop.wait(0.05)
    elif kind == "kraken":
        import numpy as np

        from allele.core.datasets import mackey_glass
        from allele.core.kraken import KrakenLNN

        series = np.asarray(mackey_glass(6000), dtype=np.float64)
        net = KrakenLNN(reservoir_size=100, seed=0, observer=telemetry, name="kraken-demo")
        net.fit(series[:2000], series[1:2001])
        i = 2000
        while not stop.is_set():
            net.process_sequence(series[i:i + 50])
            i = 2000 if i + 100 > len(series) else i + 50
            stop.wait(0.05)


STOPPED = "observer stopped"
"""Why the alerts still firing when ``serve`` stops cleanly are stored resolved."""


def _alert_manager(telemetry: Telemetry, rules: Path | None, webhook: str | None, store: Any,
                   settings: Any) -> tuple[Any, Any, Any]:
    """The alert manager of ``serve``, the outbox worker delivering its notifications and the
    store's router (both None without a store; the store is the bus). The manager notifies a
    log notifier, the webhook (checked now: a URL that can never be posted to is a one-line
    error, not a thread that dies later) and the router."""
    from allele.observe.alert_model import load_rules
    from allele.observe.alerts import AlertManager
    from allele.observe.notify import LogNotifier, Notifier, WebhookNotifier

    rule_list = load_rules(rules)
    notifiers: list[Notifier] = [LogNotifier()]
    if webhook:
        notifiers.append(WebhookNotifier(webhook))
    router, outbox = (_route_through_store(store, settings, notifiers) if store is not None
                      else (None, None))
    return AlertManager(telemetry, rule_list, notifiers), outbox, router


@app.command()
def serve(
    port: Annotated[int, typer.Option(help="TCP port of /metrics (0 picks a free one).")] = 9464,
    host: Annotated[str, typer.Option(help="Address to bind; 0.0.0.0 exposes it to the "
                                           "network.")] = "127.0.0.1",
    rules: Annotated[Path | None, typer.Option(help="Alert rules YAML (default: settings "
                                                    "observe.alert_rules, else the shipped "
                                                    "defaults).")] = None,
    alerts: Annotated[bool, typer.Option(help="Evaluate alert rules and log notifications.")
                      ] = True,
    webhook: Annotated[str | None, typer.Option(help="Also POST alert notifications to this "
                                                     "URL.")] = None,
    store: Annotated[str | None, typer.Option(help="Flush metric points to this result store "
                                                   "URL.")] = None,
    demo: Annotated[str, typer.Option(help="Run a demo workload: none, evolution or kraken.")
                    ] = "none",
    duration: Annotated[float | None, typer.Option(help="Stop after this many seconds.")
                        ] = None,
    interval: Annotated[float, typer.Option(help="Seconds between alert evaluations.")] = 5.0,
    token: Annotated[str | None, typer.Option(
        envvar="ALLELE_OBSERVE_TOKEN", show_envvar=False,
        help="Bearer token /metrics requires (needed to bind beyond loopback; prefer the "
             "ALLELE_OBSERVE_TOKEN variable: a command line shows in ps).")] = None,
) -> None:
    """Serve this process's telemetry (system sampler + optional demo) on /metrics."""
    from allele.config import load_settings
    from allele.observe import Telemetry
    from allele.observe.alerts import AlertManager
    from allele.observe.export import MetricsServer, make_registry
    from allele.observe.export import serve as serve_metrics

    if demo not in ("none", "evolution", "kraken"):
        raise ConfigError(f"--demo must be none, evolution or kraken, got {demo!r}")
    _check_serve_options(port, interval, duration)
    settings = load_settings()
    sink: Any = None
    if store is not None:
        from allele.store import open_store

        sink = open_store(store)
    telemetry = Telemetry(settings=settings, sink=sink)
    manager: AlertManager | None = None
    outbox: Any = None
    router: Any = None
    clean_stop = False
    server: MetricsServer | None = None
    stop = threading.Event()
    worker: threading.Thread | None = None
    try:
        registry = make_registry(telemetry)
        server = serve_metrics(registry, port=port, host=host, token=token)
        if alerts:
            manager, outbox, router = _alert_manager(
                telemetry, rules or settings.observe.alert_rules, webhook, sink, settings)
            registry.register(manager.collector())
            manager.start(interval_s=interval)
        if demo != "none":
            worker = threading.Thread(target=_demo_loop, args=(demo, telemetry, stop),
                                      daemon=True, name="allele-demo")
            worker.start()
        console.print(f"serving {server.url}"
                      + (f" with {len(manager.rules)} alert rules" if manager else "")
                      + (f", demo {demo}" if demo != "none" else "")
                      + (" (bearer token required)" if token else ""), highlight=False,
                      markup=False)
        sys.stdout.flush()
        _wait(duration)
        clean_stop = True
    except KeyboardInterrupt:
        clean_stop = True
    finally:
        stop.set()
        if worker is not None:
            worker.join(timeout=5)
        try:
            _stop_alerts(manager, router, clean_stop)
        finally:
            _close(outbox, server, telemetry, sink)


def _wait(duration: float | None) -> None:
    """Serve until ``duration`` seconds have passed (for ever without one); Ctrl-C and SIGTERM
    end the wait with KeyboardInterrupt."""
    with sigterm_as_interrupt():
        deadline = None if duration is None else time.monotonic() + duration
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.2 if deadline is None else max(0.0, min(
                0.2, deadline - time.monotonic())))


def _stop_alerts(manager: Any, router: Any, clean_stop: bool) -> None:
    """Stop evaluating (no evaluation fires or refreshes an alert after this); after a clean
    stop, end the alerts still firing in the store: nothing watches them any more, and shown
    firing until they went stale they looked watched."""
    if manager is None:
        return
    manager.close()
    if clean_stop and router is not None:
        router.release([a.fingerprint for a in manager.alerts("firing")], STOPPED)


def _close(*parts: Any) -> None:
    """Close what ``serve`` opened, in order (after the alert manager, closed first: the outbox
    it feeds, then the telemetry's final flush before its store)."""
    for part in parts:
        if part is not None:
            part.close()


def _route_through_store(store: Any, settings: Any, notifiers: list[Any]) -> tuple[Any, Any]:
    """Alerts also go through the store's router (IntelligentAlertManager, silences, the
    outbox) to the configured channels; returns the router and the outbox worker delivering
    them."""
    from allele.observe.channels import channels_from_settings
    from allele.observe.outbox import OutboxWorker
    from allele.observe.routing import AlertRouter

    channels = channels_from_settings(settings)
    router = AlertRouter(store, list(channels), outbox_limit=settings.notify.outbox_limit)
    notifiers.append(router.notifier())
    worker = OutboxWorker(store, channels, backoff_initial_s=settings.notify.backoff_initial_s,
                          backoff_max_s=settings.notify.backoff_max_s,
                          max_attempts=settings.notify.max_attempts)
    worker.start()
    return router, worker


@app.command()
def rules(
    path: Annotated[Path | None, typer.Argument(help="Rules YAML (default: the shipped "
                                                     "defaults).")] = None,
) -> None:
    """Validate alert rules and list them."""
    from allele.observe.alert_model import load_rules

    loaded = load_rules(path)
    table = Table(title=plain(f"{len(loaded)} alert rules ({path or 'defaults'})"))
    for col in ("name", "metric", "component", "condition", "for", "severity", "summary"):
        table.add_column(col)
    for r in loaded:
        cond = f"{r.reduce}({r.window_s:g}s) " if r.reduce != "last" else ""
        table.add_row(plain(r.name), plain(r.metric), plain(r.component),
                      plain(f"{cond}{r.op} {r.threshold:g}"), f"{r.for_s:g}s", plain(r.severity),
                      plain(r.annotations.get("summary", "")))
    console.print(table)


@app.command()
def metrics() -> None:
    """List every metric Allele records."""
    from allele.observe import CATALOGUE

    table = Table(title=f"{len(CATALOGUE)} metrics")
    for col in ("name", "kind", "source", "labels", "help"):
        table.add_column(col)
    for m in CATALOGUE.values():
        table.add_row(m.name, m.kind, m.source, ", ".join(("component", *m.label_names)),
                      m.help)
    console.print(table)
