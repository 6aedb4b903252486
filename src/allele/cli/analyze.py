"""``allele analyze``: forecasts, anomalies, alert grouping, root causes and recommendations
over the result store. This face only composes :mod:`allele.store` with
:mod:`allele.analytics`; every computation lives in the analytics layer."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from allele.errors import AnalyticsError

app = typer.Typer(help="Forecasts, anomalies, alert correlation, root causes, recommendations.",
                  no_args_is_help=True)
console = Console()

StoreOpt = typer.Option(None, "--store", help="Store URL (default: the configured store).")
JsonOpt = typer.Option(False, "--json", help="Print JSON instead of tables.")


def _emit_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def _series(store_url: str | None, metric: str, component: str | None
            ) -> tuple[list[float], list[float], str]:
    from allele.store import open_store

    with open_store(store_url) as store:
        points = store.read_metric_points(metric, component)
    if not points:
        where = f" for component {component!r}" if component else ""
        raise AnalyticsError(f"no points of metric {metric!r}{where} in the store")
    comps = sorted({p.component for p in points})
    if component is None and len(comps) > 1:
        raise AnalyticsError(f"metric {metric!r} has several components ({', '.join(comps)}); "
                             "choose one with --component")
    # One value per timestamp (the mean when labels split a metric into several series).
    by_ts: dict[float, list[float]] = {}
    for p in points:
        by_ts.setdefault(float(p.timestamp), []).append(float(p.value))
    ts = sorted(by_ts)
    return ts, [statistics.fmean(by_ts[t]) for t in ts], comps[0]


@app.command()
def forecast(
    metric: str = typer.Argument(..., help="Telemetry metric name, e.g. allele_process_rss_bytes"),
    component: str | None = typer.Option(None, "--component", "-c"),
    horizon: int = typer.Option(24, "--horizon", "-h", min=1),
    level: float = typer.Option(0.9, "--level"),
    model: str = typer.Option("arima", "--model", help="arima, naive, seasonal or lstm"),
    period: int | None = typer.Option(None, "--period", help="Season length in points."),
    threshold: float | None = typer.Option(None, "--threshold",
                                           help="Report when the trend crosses this value."),
    unit: str = typer.Option("", "--unit", help="Unit for messages ('bytes' scales to GB)."),
    store: str | None = StoreOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Forecast a telemetry metric with intervals, and describe its trend and seasonality."""
    from allele.analytics.forecast import (
        ARIMAForecaster,
        BaseForecaster,
        LSTMForecaster,
        NaiveForecaster,
        PredictiveAnalyzer,
        SeasonalNaiveForecaster,
        detect_seasonality,
    )

    ts, values, comp = _series(store, metric, component)
    if period is None and len(values) >= 8:
        period = detect_seasonality(values).period
    fc_model: BaseForecaster
    if model == "arima":
        fc_model = ARIMAForecaster(seasonal_period=period, level=level)
    elif model == "naive":
        fc_model = NaiveForecaster(level=level)
    elif model == "seasonal":
        if period is None:
            raise AnalyticsError("no season found; give --period for the seasonal model")
        fc_model = SeasonalNaiveForecaster(period, level=level)
    elif model == "lstm":
        fc_model = LSTMForecaster(level=level)
    else:
        raise AnalyticsError(f"unknown model {model!r}; use arima, naive, seasonal or lstm")
    fc = fc_model.fit(values, ts).predict(horizon)
    analysis = PredictiveAnalyzer().analyze(values, ts, threshold=threshold, metric=metric,
                                            unit=unit) if len(values) >= 3 else None
    if as_json:
        _emit_json({"metric": metric, "component": comp, "forecast": fc.to_dict(),
                    "findings": analysis.summary() if analysis else []})
        return
    table = Table(title=f"{metric} [{comp}] - {fc.model}, {level:.0%} interval")
    for col in ("step", "time", "forecast", "lower", "upper"):
        table.add_column(col, justify="right")
    for i in range(fc.horizon):
        t = "" if fc.timestamps is None else f"{fc.timestamps[i]:.0f}"
        table.add_row(str(i + 1), t, f"{fc.mean[i]:.4g}", f"{fc.lower[i]:.4g}",
                      f"{fc.upper[i]:.4g}")
    console.print(table)
    if analysis:
        for line in analysis.summary():
            console.print(f"- {line}")


@app.command()
def anomalies(
    metric: str = typer.Argument(...),
    component: str | None = typer.Option(None, "--component", "-c"),
    method: str = typer.Option("ensemble", "--method", help="robust, iforest, ocsvm, ensemble"),
    period: int | None = typer.Option(None, "--period"),
    threshold: float = typer.Option(0.5, "--threshold", min=0.0, max=1.0),
    store: str | None = StoreOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Causally score a telemetry metric and list the flagged points."""
    from allele.analytics.anomaly import detect_series

    ts, values, comp = _series(store, metric, component)
    det = detect_series(values, ts, method, period=period, threshold=threshold)  # type: ignore[arg-type]
    rows = [{"index": i, "timestamp": ts[i], "value": values[i], "score": float(det.scores[i])}
            for i in det.anomalies()]
    if as_json:
        _emit_json({"metric": metric, "component": comp, "method": method,
                    "learn_end": det.learn_end, "period": det.period, "anomalies": rows})
        return
    table = Table(title=f"{metric} [{comp}]: {len(rows)} anomalous points of {len(values)} "
                        f"({method}; learning period {det.learn_end} points)")
    for col in ("index", "timestamp", "value", "score"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(str(r["index"]), f"{r['timestamp']:.0f}", f"{r['value']:.4g}",
                      f"{r['score']:.2f}")
    console.print(table)


@app.command()
def alerts(
    file: Path = typer.Argument(..., exists=True, dir_okay=False,
                                help="JSON list of alerts (name, labels, severity, starts_at)"),
    now: float | None = typer.Option(None, "--now", help="Clock (default: newest alert start)."),
    as_json: bool = JsonOpt,
) -> None:
    """Deduplicate, inhibit, group and prioritise a batch of alerts."""
    from allele.analytics.correlate import IntelligentAlertManager, as_alert_event

    try:
        raw = json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise AnalyticsError(f"{file} is not valid JSON: {exc}") from exc
    if not isinstance(raw, list):
        raise AnalyticsError(f"{file} must hold a JSON list of alerts")
    events = [as_alert_event(a) for a in raw]
    clock_now = now if now is not None else max((e.starts_at for e in events), default=0.0)
    mgr = IntelligentAlertManager(clock=lambda: clock_now)
    upd = mgr.process(events)
    if as_json:
        _emit_json({
            "groups": [{"id": g.id, "priority": upd.priorities[g.id], "severity": g.severity,
                        "common_labels": g.common_labels, "alerts": g.fingerprints}
                       for g in upd.groups],
            "duplicates": [e.fingerprint for e in upd.duplicates],
            "inhibited": [{"alert": e.fingerprint, "by": by} for e, by in upd.inhibited],
        })
        return
    table = Table(title=f"{len(upd.groups)} alert groups from {len(events)} alerts")
    for col in ("group", "priority", "severity", "alerts", "common labels"):
        table.add_column(col)
    for g in sorted(upd.groups, key=lambda g: -upd.priorities[g.id]):
        table.add_row(g.id, f"{upd.priorities[g.id]:.2f}", g.severity,
                      ", ".join(a.name for a in g.alerts),
                      ", ".join(f"{k}={v}" for k, v in g.common_labels.items()))
    console.print(table)
    for e, by in upd.inhibited:
        console.print(f"- muted {e.name} ({e.fingerprint}) by {by}")
    if upd.duplicates:
        console.print(f"- {len(upd.duplicates)} duplicate(s) dropped")


def _cell_medians(record: Any, metric: str) -> dict[str, tuple[dict[str, Any], float]]:
    out = {}
    for cell in record.cells:
        vals = cell.values(metric)
        if cell.status == "ok" and vals:
            # the target is a parameter too: in a run of several targets, "only the kraken
            # cells moved" is an answer
            out[cell.key] = ({"target": cell.target, **cell.params},
                             float(statistics.median(vals)))
    return out


def _causes_table(title: str, causes: list[Any]) -> None:
    table = Table(title=title)
    for col in ("kind", "name", "score", "evidence"):
        table.add_column(col)
    for c in causes:
        table.add_row(c.kind, c.name, f"{c.score:.2f}", c.evidence)
    console.print(table)


@app.command()
def rca(
    base: str | None = typer.Argument(None, help="Baseline run (id, name or 'latest')"),
    new: str | None = typer.Argument(None, help="Run with the regression"),
    metric: str = typer.Option("wall_s", "--metric", "-m", help="Run metric to compare."),
    target: str | None = typer.Option(
        None, "--target", help="Telemetry mode: the metric where the anomaly was seen."),
    candidates: str | None = typer.Option(
        None, "--candidates", help="Telemetry mode: comma-separated candidate metrics."),
    component: str | None = typer.Option(None, "--component", "-c",
                                         help="Telemetry mode: component of the target."),
    at: float | None = typer.Option(
        None, "--at", help="Telemetry mode: anomaly time (default: last flagged point)."),
    max_lag: int = typer.Option(20, "--max-lag", min=1),
    store: str | None = StoreOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Rank candidate causes.

    Two runs: the parameters and environment differences that explain a regression of
    ``--metric``. Telemetry (``--target`` and ``--candidates``): the metrics that moved first and
    most before the target's anomaly (candidates are interpolated onto the target's timestamps).
    """
    if target is not None:
        _rca_telemetry(target, candidates, component, at, max_lag, store, as_json)
        return
    if base is None or new is None:
        raise AnalyticsError("give two runs (BASE NEW), or --target and --candidates")
    from allele.analytics.rca import common_shift, diff_environments, rank_parameter_causes
    from allele.store import open_store

    with open_store(store) as st:
        rec_a, rec_b = st.load_run(base), st.load_run(new)
    a, b = _cell_medians(rec_a, metric), _cell_medians(rec_b, metric)
    keys = sorted(k for k in set(a) & set(b) if a[k][1] > 0 and b[k][1] > 0)
    causes = []
    if len(keys) >= 4:
        params = [a[k][0] for k in keys]
        if len({p["target"] for p in params}) == 1:  # one target: its own parameters only
            params = [{n: v for n, v in p.items() if n != "target"} for p in params]
        before, after = [a[k][1] for k in keys], [b[k][1] for k in keys]
        ranked = rank_parameter_causes(params, before, after, metric=metric)
        shift = common_shift(before, after, metric=metric)
        causes += sorted([*ranked, *([shift] if shift else [])], key=lambda c: -c.score)
    causes += diff_environments(rec_a.info.environment, rec_b.info.environment)
    if not causes:
        raise AnalyticsError(
            f"nothing to rank: {len(keys)} common cells with {metric!r} (need 4) and identical "
            "environments")
    if as_json:
        _emit_json({"base": rec_a.info.id, "new": rec_b.info.id, "metric": metric,
                    "causes": [c.to_dict() for c in causes]})
        return
    _causes_table(f"Candidate causes of the {metric} change {rec_a.info.name} -> "
                  f"{rec_b.info.name}", causes)


def _rca_telemetry(target: str, candidates: str | None, component: str | None,
                   at: float | None, max_lag: int, store: str | None, as_json: bool) -> None:
    import numpy as np

    from allele.analytics.anomaly import detect_series
    from allele.analytics.rca import rank_metric_causes

    names = [c.strip() for c in (candidates or "").split(",") if c.strip()]
    if not names:
        raise AnalyticsError("--candidates needs at least one metric name")
    ts, values, _ = _series(store, target, component)
    t_arr = np.asarray(ts)
    metrics = {target: np.asarray(values)}
    for name in names:
        c_ts, c_vals, _ = _series(store, name, None)
        metrics[name] = np.interp(t_arr, np.asarray(c_ts), np.asarray(c_vals))
    if at is not None:
        index = int(np.clip(np.searchsorted(t_arr, at), 0, t_arr.size - 1))
    else:
        flagged = detect_series(values, ts, "robust").anomalies()
        if not flagged:
            raise AnalyticsError(f"no anomaly flagged in {target!r}; give --at")
        index = flagged[-1]
    causes = rank_metric_causes(metrics, index, target, max_lag=max_lag)
    if as_json:
        _emit_json({"target": target, "index": index, "timestamp": ts[index],
                    "causes": [c.to_dict() for c in causes]})
        return
    _causes_table(f"Metrics that moved before the {target} anomaly at {ts[index]:.0f}", causes)


@app.command()
def recommend(
    run: str = typer.Argument(..., help="Run with matrix results (id, name or 'latest')"),
    quality: str = typer.Option("best_fitness", "--quality"),
    cost: str = typer.Option("wall_s", "--cost"),
    current: str | None = typer.Option(None, "--current",
                                       help="Current parameters as JSON (default: cheapest cell)"),
    target: str | None = typer.Option(None, "--target", help="Component (default: all)."),
    top: int = typer.Option(3, "--top", min=1),
    store: str | None = StoreOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Recommend configurations (quality vs cost) from a run's matrix results."""
    from allele.analytics.recommend import PerformanceOptimizer
    from allele.bench.metrics import direction_of
    from allele.store import open_store

    with open_store(store) as st:
        record = st.load_run(run)
    cells = []
    for cell in record.cells:
        q, c = cell.values(quality), cell.values(cost)
        if cell.status == "ok" and q and c:
            cells.append((cell.target, dict(cell.params),
                          {quality: statistics.median(q), cost: statistics.median(c)}))
    opt = PerformanceOptimizer(quality, cost, higher_is_better=direction_of(quality) == "higher")
    opt.fit(cells)
    cur_given = json.loads(current) if current else None
    result: dict[str, Any] = {}
    for comp in opt.components():
        if target is not None and comp != target:
            continue
        rec = opt.recommenders_[comp]
        if cur_given is not None:
            cur = cur_given
        else:
            cur = min((c for c in cells if c[0] == comp), key=lambda c: c[2][cost])[1]
        result[comp] = {"current": cur,
                        "recommendations": [r.to_dict() for r in opt.recommend(comp, cur, top)],
                        "pareto": [{"params": p, "quality": q, "cost": c}
                                   for p, q, c in rec.pareto()]}
    if not result:
        raise AnalyticsError(f"no component {target!r} in run {run!r}")
    if as_json:
        _emit_json(result)
        return
    for comp, data in result.items():
        console.print(f"[bold]{comp}[/] (current: {json.dumps(data['current'])})")
        if not data["recommendations"]:
            console.print("- the current configuration is already on the predicted Pareto front")
        for r in data["recommendations"]:
            console.print(f"- {r['text']}")
