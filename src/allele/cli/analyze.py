"""``allele analyze``: forecasts, anomalies, alert grouping, root causes, recommendations and
predictions of a configuration's metrics over the result store. This face only parses options,
opens the store, calls one service of
:mod:`allele.bench.diagnose` (or :func:`allele.analytics.correlate.correlate_batch` for a file of
alerts) and prints; every decision lives in those layers."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from allele.bench.format import number, params_text, quantity, when
from allele.cli._common import STORE_HELP, plain
from allele.errors import AnalyticsError

app = typer.Typer(help="Forecasts, anomalies, alert correlation, root causes, recommendations.",
                  no_args_is_help=True)
console = Console(emoji=False)  # user text (metric, component, run names) is printed as text
err_console = Console(stderr=True, emoji=False)  # warnings: stdout stays the answer (or JSON)

StoreOpt = typer.Option(None, "--store", help=STORE_HELP)
JsonOpt = typer.Option(False, "--json", help="Print JSON instead of tables.")
LabelOpt = typer.Option(
    None, "--label", help="Only points with this label, KEY=VALUE (repeatable); needed when "
    "a metric is recorded side by side under several label sets (one per worker).")


def _emit_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))



def _where(series: Any) -> str:
    """``component`` and the series' labels, for a title."""
    return " ".join([series.component, *(f"{k}={v}" for k, v in sorted(series.labels.items()))])


def _num(v: float) -> str:
    return number(float(v), sci_above=None)


def _when(t: float, spec: str) -> str:
    """A timestamp as local time (``2026-12-06 22:47:23.5``, with the decimals of ``spec``)
    when it reads as one (after 1973), else as the number it is."""
    if not t > 1e8:
        return format(t, spec)
    digits = int(spec[1:-1])
    fraction = f".{int(t % 1.0 * 10**digits):0{digits}d}" if digits else ""
    return when(t) + fraction


def _val(v: float, unit: str) -> str:
    """A value in its unit when it is a size (``84.55 MiB``, not ``8.866e+07``), written by the
    project's one formatter of measured values."""
    return quantity(float(v), "B") if unit in ("bytes", "B") else _num(v)


def _time_format(timestamps: Any) -> str:
    """A format for ``timestamps`` with the decimals their smallest step needs (whole seconds
    printed two half-second steps both as ``1000000014``)."""
    steps = [b - a for a, b in itertools.pairwise(timestamps) if b > a]
    smallest = min(steps, default=1.0)
    return f".{min(6, max(0, math.ceil(-math.log10(smallest) - 1e-9)))}f"


@app.command()
def forecast(
    metric: str = typer.Argument(..., help="Telemetry metric name, e.g. allele_process_rss_bytes"),
    component: str | None = typer.Option(None, "--component",
                                         help="Only points of this component."),
    horizon: int = typer.Option(24, "--horizon", min=1, help="Points to forecast ahead."),
    level: float = typer.Option(0.9, "--level", help="Coverage of the prediction interval."),
    model: str = typer.Option(
        "auto", "--model",
        help="auto (chosen by backtest against seasonal-naive baselines), arima, naive, "
             "seasonal or lstm"),
    period: int | None = typer.Option(None, "--period",
                                      help="Season length in points (default: detected)."),
    threshold: float | None = typer.Option(None, "--threshold",
                                           help="Report when the trend crosses this value."),
    unit: str = typer.Option("", "--unit", help="Unit for messages ('bytes' scales to GiB)."),
    label: list[str] | None = LabelOpt,
    store: str | None = StoreOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Forecast a telemetry metric with intervals, and describe its trend and seasonality.

    The default model is chosen by a rolling-origin backtest against naive, drift and
    seasonal-naive at every detected season; a degenerate ARIMA fit is refused and named.
    """
    from allele.bench.diagnose import forecast_metric, parse_labels
    from allele.store import open_store

    with open_store(store, read_only=True) as st:
        res = forecast_metric(st, metric, component, model=model, horizon=horizon, level=level,
                              period=period, threshold=threshold, unit=unit,
                              labels=parse_labels(label))
    fc, comp = res.forecast, _where(res.series)
    if as_json:
        _emit_json(res.to_dict())
        return
    table = Table(title=plain(f"{metric} [{comp}] - {fc.model}, {level:.0%} interval"))
    for col in ("step", "time", "forecast", "lower", "upper"):
        table.add_column(col, justify="right")
    tf = _time_format([] if fc.timestamps is None else list(fc.timestamps))
    from allele.bench.metrics import unit_of

    u = unit or unit_of(metric)
    for i in range(fc.horizon):
        t = "" if fc.timestamps is None else _when(fc.timestamps[i], tf)
        table.add_row(str(i + 1), t, _val(fc.mean[i], u), _val(fc.lower[i], u),
                      _val(fc.upper[i], u))
    console.print(table)
    if res.choice:
        console.print(f"- model: {res.choice}", markup=False)
    for why in fc.refused:
        console.print(f"- refused {why}", markup=False)
    for line in res.findings:
        console.print(f"- {line}", markup=False)
    _series_notes(res.series)


def _series_notes(series: Any) -> None:
    """Say so when points shared a timestamp (the series holds their mean, a value that may
    never have been observed) and when points were left out (NaN or infinite values)."""
    if series.merged:
        console.print(f"- note: {series.merged} points shared a timestamp with another point of "
                      "the series; each timestamp holds their mean", markup=False)
    if series.left_out:
        n, tf = len(series.left_out), _time_format(list(series.left_out))
        first = ", ".join(_when(t, tf) for t in series.left_out[:3] if math.isfinite(t))
        console.print(f"- note: {n} point{'s' if n > 1 else ''} left out: value NaN or infinite"
                      + (f" (at {first}{', ...' if n > 3 else ''})" if first else ""),
                      markup=False)


_COMPARE_ONLY = ("iforest", "ocsvm")
"""Detectors that alone give wrong answers (docs/analytics.md, "Known defect"): kept to compare
detectors, so a run of one warns instead of passing its flags off as findings."""


@app.command()
def anomalies(
    metric: str = typer.Argument(..., help="Telemetry metric name."),
    component: str | None = typer.Option(None, "--component",
                                         help="Only points of this component."),
    method: str = typer.Option(
        "robust", "--method",
        help="robust (tail-calibrated statistics), or the opt-in ensemble; iforest and ocsvm "
        "alone only compare detectors: they flag noise and miss spikes (a known defect)."),
    period: int | None = typer.Option(None, "--period",
                                      help="Season length in points (default: detected)."),
    threshold: float = typer.Option(0.5, "--threshold", min=0.0, max=1.0,
                                    help="Flag points whose score exceeds this."),
    learn: int | None = typer.Option(
        None, "--learn", min=30,
        help="Learning-period length in points (not scored); default 150, or half a series "
        "shorter than 300 points (whose scores can then change as it grows), at least 50."),
    risk: float = typer.Option(1e-4, "--risk", min=1e-9, max=0.05,
                               help="Tail probability per statistic at which a score is 0.5."),
    label: list[str] | None = LabelOpt,
    store: str | None = StoreOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Causally score a telemetry metric and list the flagged points.

    Each point is scored from the points before it only; the first --learn points learn the
    transform, season, AR filter and tails (scores there are 0).
    """
    from allele.bench.diagnose import metric_anomalies, parse_labels
    from allele.store import open_store

    if method in _COMPARE_ONLY:
        err_console.print(f"warning: {method} alone gives wrong answers (it flags noise and "
                          "misses large spikes): use it only to compare detectors, and robust "
                          "(the default) or ensemble to flag anomalies", markup=False,
                          soft_wrap=True)
    with open_store(store, read_only=True) as st:
        res = metric_anomalies(st, metric, component, method=method,  # type: ignore[arg-type]
                               period=period, threshold=threshold, learn=learn, risk=risk,
                               labels=parse_labels(label))
    if as_json:
        _emit_json(res.to_dict())
        return
    rows = res.rows()
    table = Table(title=plain(f"{metric} [{_where(res.series)}]: {len(rows)} anomalous points "
                              f"of {len(res.series.values)} ({method}; learning period "
                              f"{res.detection.learn_end} points{_how(res.detection)})"))
    for col in ("index", "timestamp", "value", "score"):
        table.add_column(col, justify="right")
    from allele.bench.metrics import unit_of

    tf = _time_format(res.series.timestamps)
    for r in rows:
        table.add_row(str(r["index"]), _when(r["timestamp"], tf),
                      _val(r["value"], unit_of(metric)), f"{r['score']:.2f}")
    console.print(table)
    _series_notes(res.series)


@app.command()
def alerts(
    file: Path = typer.Argument(..., exists=True, dir_okay=False,
                                help="JSON list of alerts (name, labels, severity, starts_at)"),
    now: float | None = typer.Option(None, "--now", help="Clock (default: newest alert start)."),
    as_json: bool = JsonOpt,
) -> None:
    """Deduplicate, inhibit, group and prioritise a batch of alerts."""
    from allele.analytics.correlate import correlate_batch

    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AnalyticsError(f"{file} is not valid JSON: {exc}") from None
    except OSError as exc:
        raise AnalyticsError(f"cannot read {file}: {exc}") from None
    if not isinstance(raw, list):
        raise AnalyticsError(f"{file} must hold a JSON list of alerts")
    upd = correlate_batch(raw, now)
    if as_json:
        def occurrence(a: Any) -> dict[str, Any]:
            # an alert is an occurrence: one fingerprint firing again later can sit in a second
            # group, so the fingerprint alone would not say which member is meant
            return {"fingerprint": a.fingerprint, "name": a.name, "starts_at": a.starts_at}

        _emit_json({
            "groups": [{"id": g.id, "priority": upd.priorities[g.id], "severity": g.severity,
                        "common_labels": g.common_labels,
                        "alerts": [occurrence(a) for a in sorted(
                            g.alerts, key=lambda a: (a.starts_at, a.fingerprint))]}
                       for g in upd.groups],
            "duplicates": [occurrence(e) for e in upd.duplicates],
            "inhibited": [{"alert": occurrence(e), "by": by} for e, by in upd.inhibited],
        })
        return
    table = Table(title=f"{len(upd.groups)} alert groups from {len(raw)} alerts")
    for col in ("group", "priority", "severity", "alerts", "common labels"):
        table.add_column(col)
    for g in sorted(upd.groups, key=lambda g: -upd.priorities[g.id]):
        table.add_row(plain(g.id), f"{upd.priorities[g.id]:.2f}", plain(g.severity),
                      plain(", ".join(a.name for a in g.alerts)),
                      plain(", ".join(f"{k}={v}" for k, v in g.common_labels.items())))
    console.print(table)
    for e, by in upd.inhibited:
        console.print(f"- muted {e.name} ({e.fingerprint}) by {by}", markup=False)
    if upd.duplicates:
        console.print(f"- {len(upd.duplicates)} duplicate(s) dropped")


def _causes_table(title: str, causes: list[Any]) -> None:
    table = Table(title=plain(title))
    for col in ("kind", "name", "score", "evidence"):
        table.add_column(col)
    for c in causes:
        table.add_row(plain(c.kind), plain(c.name), f"{c.score:.2f}", plain(c.evidence))
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
    component: str | None = typer.Option(None, "--component",
                                         help="Telemetry mode: component of the target."),
    at: float | None = typer.Option(
        None, "--at", help="Telemetry mode: anomaly time, as the points' timestamps; the "
        "target's last point at or before it is the anomaly (an error outside the target's "
        "time range). Default: the onset of the last run of flagged points."),
    max_lag: int = typer.Option(20, "--max-lag", min=1,
                                help="Largest lead/lag tried, in points."),
    label: list[str] | None = LabelOpt,
    store: str | None = StoreOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Rank candidate causes.

    Two runs: the parameters and environment differences that explain a regression of
    --metric. Telemetry (--target and --candidates): the metrics that moved first and most
    before the target's anomaly (each candidate read at the target's timestamps as its last
    value at or before each).
    """
    if target is not None:
        _rca_telemetry(target, candidates, component, at, max_lag, store, as_json, label)
        return
    if base is None or new is None:
        raise AnalyticsError("give two runs (BASE NEW), or --target and --candidates")
    from allele.bench.diagnose import root_causes
    from allele.store import open_store

    with open_store(store, read_only=True) as st:
        rec_a, rec_b = st.load_run(base), st.load_run(new)
    recorded = {m for r in (rec_a, rec_b) for c in r.cells for m in c.metrics()}
    if metric not in recorded:  # it printed "Candidate causes of the nope change" and exit 0
        raise AnalyticsError(f"no metric {metric!r} in {rec_a.info.name} or {rec_b.info.name}; "
                             f"recorded: {', '.join(sorted(recorded)) or 'none'}")
    res = root_causes(rec_a, rec_b, metric)
    if as_json:
        _emit_json(res.to_dict())
        return
    if res.causes:  # nothing to rank (the runs moved nothing testable): the answer alone
        _causes_table(f"Candidate causes of the {metric} change {res.base.name} -> "
                      f"{res.head.name}", res.causes)
    _answer(res.status, res.message)


def _answer(status: str, message: str) -> None:
    """The line both ``rca`` modes end with: the cause, or ``no clear cause: ...``."""
    console.print(f"{'cause' if status == 'cause' else 'answer'}: {message}", markup=False)


def _rca_telemetry(target: str, candidates: str | None, component: str | None,
                   at: float | None, max_lag: int, store: str | None, as_json: bool,
                   label: list[str] | None) -> None:
    from allele.bench.diagnose import metric_root_causes, parse_labels
    from allele.store import open_store

    names = [c.strip() for c in (candidates or "").split(",") if c.strip()]
    if not names:
        raise AnalyticsError("--candidates needs at least one metric name")
    with open_store(store, read_only=True) as st:
        res = metric_root_causes(st, target, names, component, at=at, max_lag=max_lag,
                                 labels=parse_labels(label))
    if as_json:
        _emit_json(res.to_dict())
        return
    if res.causes:
        _causes_table(f"Metrics that moved before the {target} anomaly at {res.timestamp:.0f}",
                      res.causes)
    _answer(res.status, res.message)


@app.command()
def recommend(
    run: str = typer.Argument(..., help="Run with matrix results (id, name or 'latest')"),
    quality: str = typer.Option("best_fitness", "--quality",
                                help="Metric to maximise."),
    cost: str = typer.Option("wall_s", "--cost", help="Metric to minimise."),
    current: str | None = typer.Option(None, "--current",
                                       help="Current parameters as JSON (default: cheapest cell)"),
    target: str | None = typer.Option(None, "--target", help="Component (default: all)."),
    top: int = typer.Option(3, "--top", min=1, help="How many recommendations to print."),
    max_cost_per_gain: float = typer.Option(
        20.0, "--max-cost-per-gain", min=0.0,
        help="Largest cost increase (%) accepted per 1% of quality gained."),
    store: str | None = StoreOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Recommend configurations (quality vs cost) from a run's seed-level matrix results.

    Needs 2 or more seeds: alternate seeds choose, the others check (the held-out gain is the one
    printed). The answer may be "no reliably better configuration".
    """
    from allele.bench.diagnose import recommendations
    from allele.store import open_store

    with open_store(store, read_only=True) as st:
        record = st.load_run(run)
    try:
        cur = json.loads(current) if current else None
    except json.JSONDecodeError as exc:
        raise AnalyticsError(f"--current must be JSON parameters, e.g. '{{\"a\": 1}}': "
                             f"{exc}") from None
    if current and not isinstance(cur, dict):  # a list reached .get: an internal error
        raise AnalyticsError(f"--current must be a JSON object of parameters, e.g. "
                             f"'{{\"a\": 1}}', not {type(cur).__name__} {current}")
    advice = recommendations(record, quality, cost, current=cur, target=target, top=top,
                             max_cost_per_gain=max_cost_per_gain)
    if not advice:
        have = {c.target for c in record.cells}
        if target is not None and target in have:  # it said "no component", which was false
            raise AnalyticsError(f"component {target!r} has no ok cell with both {quality} and "
                                 f"{cost} in run {run!r}")
        raise AnalyticsError(f"no component {target!r} in run {run!r}; it has "
                             f"{', '.join(sorted(have)) or 'none'}")
    if as_json:
        _emit_json({a.component: a.to_dict() for a in advice})
        return
    for a in advice:
        console.print(plain(a.component, "bold") + f" (current: {json.dumps(a.current)})")
        for r in a.recommendations:
            console.print(f"- {r.text}", markup=False)
        if a.recommendations:  # the message repeats the first one, then says how it was fitted
            tail = a.advice.message.removeprefix(a.recommendations[0].text).strip()
            if tail:
                console.print(f"  {tail}", markup=False)
        else:
            console.print(f"- {a.advice.message}", markup=False)


def _how(det: Any) -> str:
    """How the series was scored: logs, season, AR filter, point mass."""
    parts = []
    if det.period:
        parts.append(f"season of {det.period} points removed")
    if det.transform == "log":
        parts.append("in logs")
    if det.ar:
        parts.append("AR(" + ", ".join(f"{c:.2f}" for c in det.ar) + ") residuals")
    if det.mass is not None:
        parts.append(f"points at {det.mass:g} not scored")
    return "; " + ", ".join(parts) if parts else ""


@app.command()
def predict(
    run: str = typer.Argument(..., help="Run with matrix results (id, name or 'latest')"),
    params: str = typer.Option(..., "--params",
                               help="Configuration(s) as JSON: an object or a list of objects"),
    metric: list[str] = typer.Option(["wall_s"], "--metric", "-m",
                                     help="Metric to predict (repeatable)."),
    target: str | None = typer.Option(None, "--target", help="Component (default: the only one)."),
    level: float = typer.Option(0.9, "--level", help="Coverage of the prediction interval."),
    store: str | None = StoreOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Predict a component's metrics for configurations from a run's cells, with intervals and
    the predictor's error on held-out cells beside a chance baseline."""
    from allele.bench.predictions import predict_configurations
    from allele.store import open_store

    try:
        confs = json.loads(params)
    except json.JSONDecodeError as exc:
        raise AnalyticsError(f"--params must be JSON, e.g. '{{\"population\": 150}}': "
                             f"{exc}") from None
    confs = [confs] if isinstance(confs, dict) else confs
    # [] reached the model as 0 samples: an internal error, not a user's one
    if not isinstance(confs, list) or not confs or not all(isinstance(c, dict) for c in confs):
        raise AnalyticsError(f"--params must be a JSON object or a non-empty list of objects, "
                             f"got {params}")
    with open_store(store, read_only=True) as st:
        record = st.load_run(run)
    res = predict_configurations(record, metric, confs, target=target, level=level)
    if as_json:  # the warning on stderr keeps stdout JSON ("extrapolates" says it per row)
        _extrapolation_warning(res)
        _emit_json(res.to_dict())
        return
    from allele.bench.metrics import declarations_from_doc, metric_info

    declared = declarations_from_doc(record.info.spec)
    units = {m: metric_info(m, declared).unit for m in metric}

    def q(m: str, v: float) -> str:  # in the metric's unit: 17.06 ms, not 0.01706
        return quantity(float(v), units[m]) if units[m] else _num(v)

    val = Table(title=plain(f"{res.component}: {res.observations} runs; error on held-out "
                            "cells"))
    for col in ("metric", "model", "held-out MAE", "baseline MAE", f"{level:.0%} coverage"):
        val.add_column(col, justify="right")
    for m, v in res.validation.items():
        val.add_row(plain(m), v.model, q(m, v.mae), q(m, v.baseline_mae), f"{v.coverage:.2f}")
    if res.validation:
        console.print(val)
    else:  # it said nothing, and the help promises the held-out error
        console.print("note: no held-out check: the run measured fewer than 8 configurations "
                      "(from 8 on, a quarter of them is held out and predicted)", markup=False)
    table = Table(title=plain(f"Predicted {', '.join(metric)} ({level:.0%} intervals)"))
    table.add_column("configuration")
    for m in metric:
        table.add_column(plain(m), justify="right")
    for i, (conf, pred) in enumerate(zip(confs, res.predictions, strict=True)):
        mark = " (extrapolated)" if res.extrapolation(i) else ""
        table.add_row(plain(params_text(conf) + mark), *(
            f"{q(m, pred[m].mean)} [{q(m, pred[m].lower)}, {q(m, pred[m].upper)}]"
            for m in metric))
    console.print(table)
    _extrapolation_warning(res)  # after the table whose rows it explains


def _extrapolation_warning(res: Any) -> None:
    """On stderr, the parameters of configurations outside the measured cells: a number the
    model gives where no cell checks it must not read like one it does."""
    warning = res.warning()
    if warning:
        err_console.print(f"warning: {warning}", markup=False, soft_wrap=True)
