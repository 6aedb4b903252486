"""Diagnoses over stored results: forecasts and anomalies of telemetry metrics, root causes of a
regression between two runs or of a telemetry anomaly, and configuration recommendations.

Between the store and :mod:`allele.analytics` (plain arrays, no store): each function turns a
store or run records into series, cells and environments, calls the analytics and returns a
plain result; ``allele analyze`` only parses options, opens the store, calls one and prints.
The rules of evidence live here: a cell counts when it ended ``ok`` and has the metric (its
median over samples), a parameter ranking needs :data:`MIN_COMMON_CELLS` cells with a positive
value in both runs, and a recommendation's current configuration is the cheapest measured cell
unless one is given.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from allele.analytics.anomaly import DEFAULT_LEARN, Method, SeriesDetection, detect_series
from allele.analytics.forecast import (
    ARIMAForecaster,
    AutoForecaster,
    BaseForecaster,
    Forecast,
    LSTMForecaster,
    NaiveForecaster,
    SeasonalNaiveForecaster,
)
from allele.analytics.rca import (
    Cause,
    anomaly_onset,
    causal_align,
    common_shift,
    diff_environments,
    explain_parameter_change,
    rank_metric_causes,
    unexplained_shift,
)
from allele.analytics.rca_params import NO_CLEAR_CAUSE
from allele.analytics.recommend import Advice, PerformanceOptimizer, Recommendation
from allele.analytics.trend import PredictiveAnalyzer, detect_seasonality
from allele.bench.metrics import (
    declarations_from_doc,
    measurements,
    metric_info,
    quality_metrics,
    unit_of,
)
from allele.errors import AnalyticsError
from allele.store.model import CellResult, RunInfo, RunRecord

if TYPE_CHECKING:
    from allele.store import ResultStore

__all__ = [
    "MIN_COMMON_CELLS",
    "ComponentAdvice",
    "MetricAnomalies",
    "MetricForecast",
    "MetricRootCauses",
    "MetricSeries",
    "RootCauses",
    "forecast_metric",
    "metric_anomalies",
    "metric_root_causes",
    "metric_series",
    "parse_labels",
    "recommendations",
    "root_causes",
]

MIN_COMMON_CELLS = 4
"""Cells two runs must share before their parameters are ranked: the ANOVA and the tree of
:func:`~allele.analytics.rca.rank_parameter_causes` explain per-cell effects, and with fewer than
four a single noisy cell decides the ranking."""


# ---------------------------------------------------------------------------------------------
# Telemetry metrics
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MetricSeries:
    """One telemetry metric of one component and one label set (or several that follow one
    another in time) as a series: one value per timestamp, oldest first."""

    metric: str
    component: str
    timestamps: list[float]
    values: list[float]
    labels: dict[str, str] = field(default_factory=dict)
    """The labels every point of the series has (what ``--label`` chose, and more)."""
    merged: int = 0  # points averaged into a timestamp another point already had
    left_out: tuple[float, ...] = ()
    """Timestamps of the points left out because their value was NaN or infinite (a scrape
    that failed, a division by zero): the store keeps them, the analyses cannot use them."""


def parse_labels(items: Sequence[str] | None) -> dict[str, str]:
    """``["k=v", ...]`` (the ``--label`` options) as a dictionary; AnalyticsError on a bad item."""
    out: dict[str, str] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise AnalyticsError(f"a label is KEY=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def metric_series(store: ResultStore, metric: str, component: str | None = None,
                  labels: Mapping[str, str] | None = None, *,
                  recorded_only: bool = False) -> MetricSeries:
    """The stored points of ``metric`` (of ``component``, with every label of ``labels``) as one
    series; points sharing a timestamp are averaged, and ``merged`` counts them. Points whose
    value is NaN or infinite are left out, their timestamps kept in ``left_out``.

    Label sets are joined only when they follow one another in time (one worker in successive
    runs). Sets that overlap in time are parallel streams (one per worker), never averaged: an
    AnalyticsError names the labels that tell them apart, as do no points and several
    components without ``component``. With ``recorded_only``, only the ``labels`` the metric is
    recorded with apply (a candidate of :func:`metric_root_causes` read in the target's context).
    """
    stored = store.read_metric_points(metric, component)
    wanted = dict(labels or {})
    if recorded_only:
        keys = {k for p in stored for k, _ in p.labels}
        wanted = {k: v for k, v in wanted.items() if k in keys}
    points = [p for p in stored if all(dict(p.labels).get(k) == v for k, v in wanted.items())]
    if not points:
        where = f" for component {component!r}" if component else ""
        where += "".join(f" {k}={v}" for k, v in wanted.items())
        raise AnalyticsError(f"no points of metric {metric!r}{where} in the store")
    comps = sorted({p.component for p in points})
    if component is None and len(comps) > 1:
        raise AnalyticsError(f"metric {metric!r} has several components ({', '.join(comps)}); "
                             "choose one with --component")
    spans: dict[tuple[tuple[str, str], ...], list[float]] = {}
    for p in points:
        span = spans.setdefault(p.labels, [p.timestamp, p.timestamp])
        span[0], span[1] = min(span[0], p.timestamp), max(span[1], p.timestamp)
    _refuse_parallel(metric, spans)
    common = dict(set.intersection(*(set(k) for k in spans)))
    finite = [p for p in points if math.isfinite(p.value) and math.isfinite(p.timestamp)]
    left_out = tuple(sorted(p.timestamp for p in points
                            if not (math.isfinite(p.value) and math.isfinite(p.timestamp))))
    if not finite:
        raise AnalyticsError(f"every one of the {len(points)} points of metric {metric!r} is "
                             "NaN or infinite: nothing to analyse")
    by_ts: dict[float, list[float]] = {}
    for p in finite:
        by_ts.setdefault(float(p.timestamp), []).append(float(p.value))
    ts = sorted(by_ts)
    return MetricSeries(metric, comps[0], ts, [statistics.fmean(by_ts[t]) for t in ts], common,
                        len(finite) - len(ts), left_out)


Spans = Mapping[tuple[tuple[str, str], ...], list[float]]


def _sequential(spans: Spans) -> bool:
    ordered = sorted(spans.values())
    return all(a[1] < b[0] for a, b in itertools.pairwise(ordered))


def _refuse_parallel(metric: str, spans: Spans) -> None:
    """AnalyticsError when two label sets' time spans overlap (see :func:`metric_series`),
    suggesting the ``--label`` that leaves one series joining the most label sets."""
    if _sequential(spans):
        return
    values: dict[str, set[str]] = {}
    for key in spans:
        for k, v in key:
            values.setdefault(k, set()).add(v)
    differ = {k: sorted(v) for k, v in values.items()
              if len(v) > 1 or any(k not in dict(key) for key in spans)}
    shown = "; ".join(f"{k}: {', '.join(v[:5])}{', ...' if len(v) > 5 else ''}"
                      for k, v in sorted(differ.items()))
    choices = []
    for k, vs in sorted(differ.items()):
        for v in vs:
            kept = {key: span for key, span in spans.items() if dict(key).get(k) == v}
            if _sequential(kept):
                choices.append((-len(kept), k, v))
    hint = f", e.g. --label {min(choices)[1]}={min(choices)[2]}" if choices else ""
    raise AnalyticsError(
        f"metric {metric!r} has {len(spans)} label sets recorded side by side ({shown}); they "
        f"are separate series, not one: choose one with --label{hint}")


@dataclass(frozen=True, slots=True)
class MetricForecast:
    """A forecast of a telemetry metric and what :class:`PredictiveAnalyzer` found in it."""

    series: MetricSeries
    forecast: Forecast
    findings: list[str]
    choice: str = ""
    """How the model was chosen (``auto``: its backtest MASE against the best baseline)."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return {"metric": self.series.metric, "component": self.series.component,
                "labels": self.series.labels, "merged_points": self.series.merged,
                "left_out_points": len(self.series.left_out),
                "forecast": self.forecast.to_dict(), "findings": self.findings,
                "choice": self.choice}


def _forecaster(model: str, level: float, period: int | None, horizon: int) -> BaseForecaster:
    if model == "auto":
        return AutoForecaster(horizon=horizon, level=level,
                              seasonal_periods=None if period is None else [period])
    if model == "arima":
        return ARIMAForecaster(seasonal_period=period, level=level)
    if model == "naive":
        return NaiveForecaster(level=level)
    if model == "seasonal":
        if period is None:
            raise AnalyticsError("no season found; give --period for the seasonal model")
        return SeasonalNaiveForecaster(period, level=level)
    if model == "lstm":
        return LSTMForecaster(level=level)
    raise AnalyticsError(f"unknown model {model!r}; use auto, arima, naive, seasonal or lstm")


def forecast_metric(
    store: ResultStore,
    metric: str,
    component: str | None = None,
    *,
    model: str = "auto",
    horizon: int = 24,
    level: float = 0.9,
    period: int | None = None,
    threshold: float | None = None,
    unit: str = "",
    labels: Mapping[str, str] | None = None,
) -> MetricForecast:
    """Forecast ``metric`` ``horizon`` steps ahead with ``model`` and describe its trend, season
    and level shifts (and when it crosses ``threshold``).

    ``auto`` (the default) chooses by backtest among naive, drift, seasonal-naive at every
    season and (MSTL +) ARIMA, refusing degenerate fits (:class:`AutoForecaster`); ``arima``,
    ``naive``, ``seasonal`` and ``lstm`` force one. Without ``period`` the seasons are detected
    (``auto``: several at once; the others: the dominant one, on series of 8 points or more).
    ``labels`` choose the series (:func:`metric_series`); ``unit`` defaults to the name's.
    """
    series = metric_series(store, metric, component, labels)
    ts, values, unit = series.timestamps, series.values, unit or unit_of(metric)
    if model != "auto" and period is None and len(values) >= 8:
        period = detect_seasonality(values).period
    fitted = _forecaster(model, level, period, horizon).fit(values, ts)
    fc = fitted.predict(horizon)
    analysis = PredictiveAnalyzer().analyze(values, ts, threshold=threshold, metric=metric,
                                            unit=unit) if len(values) >= 3 else None
    choice = getattr(fitted, "choice_", "")
    return MetricForecast(series, fc, analysis.summary() if analysis else [], choice)


@dataclass(frozen=True, slots=True)
class MetricAnomalies:
    """The causal anomaly detection of a telemetry metric."""

    series: MetricSeries
    method: str
    detection: SeriesDetection

    def rows(self) -> list[dict[str, Any]]:
        """The flagged points: index, timestamp, value and score."""
        s = self.series
        return [{"index": i, "timestamp": s.timestamps[i], "value": s.values[i],
                 "score": float(self.detection.scores[i])} for i in self.detection.anomalies()]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        d = self.detection
        return {"metric": self.series.metric, "component": self.series.component,
                "labels": self.series.labels, "method": self.method, "learn_end": d.learn_end,
                "period": d.period, "merged_points": self.series.merged,
                "left_out_points": len(self.series.left_out),
                "transform": d.transform, "ar": list(d.ar), "mass": d.mass,
                "anomalies": self.rows()}


MIN_LEARN = 50
"""The shortest learning period chosen for a short series. The detector accepts 29 points
(``window + 20``, its window at least 8), but its tails are then fitted on 10 values: on clean
Gaussian noise a learning period of 30 flagged 16.5 % of the scored points, 40 flagged 2.3 %,
50 flagged 1.5 % and 60 0.17 % (100 series of twice that length; Student-t(3) 16.9, 4.1, 1.9
and 0.6 %). ``--learn`` can still ask for :data:`LEARN_FLOOR`."""

LEARN_FLOOR = 30
"""The shortest learning period ``--learn`` (and the dashboard's learn field) accepts."""


def auto_learn(n: int) -> int:
    """The learning period of a series of ``n`` points when none is given: 150 points, or half
    a shorter series (the rule of ``benchmarks/analytics_real.py``), at least :data:`MIN_LEARN`;
    an error under ``2 * MIN_LEARN`` points."""
    if n < 2 * MIN_LEARN:
        raise AnalyticsError(
            f"series of {n} points is too short: the learning period takes half the series "
            f"and needs at least {MIN_LEARN} points, so {2 * MIN_LEARN} points or more")
    return max(MIN_LEARN, min(DEFAULT_LEARN, n // 2))


def metric_anomalies(store: ResultStore, metric: str, component: str | None = None, *,
                     method: Method = "robust", period: int | None = None,
                     threshold: float = 0.5, learn: int | None = None,
                     risk: float = 1e-4,
                     labels: Mapping[str, str] | None = None) -> MetricAnomalies:
    """Score ``metric`` causally (:func:`~allele.analytics.anomaly.detect_series`): the first
    ``learn`` points learn (a fixed length, so a stored point's score never changes as points
    arrive; None: :func:`auto_learn`, fixed at 150 points once the series has 300, half of it
    before), ``risk`` is the tail probability per statistic where a score reaches 0.5;
    ``labels`` choose the series (:func:`metric_series`)."""
    series = metric_series(store, metric, component, labels)
    use = auto_learn(len(series.values)) if learn is None else learn
    det = detect_series(series.values, series.timestamps, method, period=period,
                        threshold=threshold, learn=use, risk=risk)
    return MetricAnomalies(series, method, det)


@dataclass(frozen=True, slots=True)
class MetricRootCauses:
    """The metrics that moved before the anomaly of ``target`` at ``index``, best first."""

    target: str
    index: int
    timestamp: float
    causes: list[Cause]

    @property
    def status(self) -> str:
        """``"cause"``, or ``"no clear cause"`` when no candidate moved significantly (the
        ``"no data"`` entries, listed last, are candidates that could not have)."""
        return "cause" if any(c.kind == "metric" for c in self.causes) else NO_CLEAR_CAUSE

    @property
    def message(self) -> str:
        """The answer in one sentence."""
        if self.status == "cause":
            return f"{self.causes[0].name} moved first: {self.causes[0].evidence}"
        return (f"{NO_CLEAR_CAUSE}: no candidate changed significantly (z > 5 against its "
                f"autocorrelation-widened noise) before the {self.target} anomaly")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return {"target": self.target, "index": self.index, "timestamp": self.timestamp,
                "status": self.status, "message": self.message,
                "causes": [c.to_dict() for c in self.causes]}


def _stamp(t: float) -> str:
    """A timestamp as the number it is, without float noise (``1700003500``, ``999999999.5``;
    ``9e+12`` read as a time would hide how far it is)."""
    return f"{t:.6f}".rstrip("0").rstrip(".") if math.isfinite(t) else str(t)


def _point_at(timestamps: np.ndarray, at: float, target: str) -> int:
    """The index of the last of ``timestamps`` at or before ``at``: the rule by which
    candidates are read (:func:`~allele.analytics.rca.causal_align`). An ``at`` outside the
    series (or NaN) is an AnalyticsError naming its range: clipped, 9e12 analysed the last
    point as if it were the anomaly."""
    first, last = float(timestamps[0]), float(timestamps[-1])
    if not first <= at <= last:
        raise AnalyticsError(
            f"--at {_stamp(at)} lies outside the time range of {target!r}, {_stamp(first)} to "
            f"{_stamp(last)} ({timestamps.size} points): give a time in it")
    return int(np.searchsorted(timestamps, at, side="right")) - 1


def metric_root_causes(store: ResultStore, target: str, candidates: Sequence[str],
                       component: str | None = None, *, at: float | None = None, max_lag: int = 20,
                       labels: Mapping[str, str] | None = None) -> MetricRootCauses:
    """Rank ``candidates`` by how early and how much they moved before the anomaly of ``target``:
    each candidate is read at the target's timestamps as its last value at or before each
    (:func:`~allele.analytics.rca.causal_align`), in the target's component if recorded there.
    The anomaly is the target's last point at or before ``at`` (:func:`_point_at`), or else the
    onset of the robust detector's last episode of flags, learnt over :func:`auto_learn` as in
    ``analyze anomalies`` (AnalyticsError when it flags none). ``labels`` choose the target's
    series (:func:`metric_series`); a candidate is read with those of them it is recorded with.
    """
    series = metric_series(store, target, component, labels)
    t_arr, metrics = np.asarray(series.timestamps), {target: np.asarray(series.values)}
    for name in candidates:
        comp = series.component if store.read_metric_points(name, series.component) else None
        other = metric_series(store, name, comp, labels, recorded_only=True)
        metrics[name] = causal_align(t_arr, other.timestamps, other.values)
    if at is not None:
        index = _point_at(t_arr, at, target)
    else:
        flagged = detect_series(series.values, series.timestamps, "robust",
                                learn=auto_learn(len(series.values))).anomalies()
        if not flagged:
            raise AnalyticsError(f"no anomaly flagged in {target!r}; give --at")
        index = anomaly_onset(flagged)
    causes = rank_metric_causes(metrics, index, target, max_lag=max_lag)
    return MetricRootCauses(target, index, series.timestamps[index], causes)


# ---------------------------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------------------------


def _cell_medians(record: RunRecord, *metrics: str) -> Iterator[tuple[CellResult, list[float]]]:
    """The cells of ``record`` that ended ok with samples of every metric, with each median."""
    for cell in record.cells:
        values = [cell.values(m) for m in metrics]
        if cell.status == "ok" and all(values):
            yield cell, [float(statistics.median(v)) for v in values]


@dataclass(frozen=True, slots=True)
class RootCauses:
    """Candidate causes of the change of ``metric`` from run ``base`` to run ``head``: parameter
    causes and the common shift (best first) when enough cells are shared, then environment
    differences (most performance-relevant first).

    ``status`` is ``"cause"`` when a parameter passed its test (FDR-corrected; permutation, or
    the weighted F test of a matrix too small to permute) with a practical effect, ``"no clear
    cause"`` otherwise; ``message`` says it in one sentence (and mentions a common shift of
    every cell, which two runs cannot tell from run-to-run noise)."""

    base: RunInfo
    head: RunInfo
    metric: str
    causes: list[Cause]
    common_cells: int
    status: str = NO_CLEAR_CAUSE
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return {"base": self.base.id, "new": self.head.id, "metric": self.metric,
                "status": self.status, "message": self.message,
                "causes": [c.to_dict() for c in self.causes]}


def _seed_pairs(base: CellResult, head: CellResult, metric: str) -> list[tuple[float, float]]:
    """``(base, head)`` values of ``metric`` for every seed both runs of a cell measured (the
    median over that seed's repeats), in seed order; when they share no seed, one pair of the
    cell medians. Pairing by seed keeps what a seed does to the workload out of the effect, and
    the scatter of the seeds' ratios is each cell's own sampling variance."""
    a, b = base.keyed(metric), head.keyed(metric)
    out = []
    for seed in sorted({sd for sd, _ in a} & {sd for sd, _ in b}):
        va = [v for (sd, _), v in a.items() if sd == seed]
        vb = [v for (sd, _), v in b.items() if sd == seed]
        out.append((float(statistics.median(va)), float(statistics.median(vb))))
    if not out and a and b:
        out.append((float(statistics.median(a.values())), float(statistics.median(b.values()))))
    return [(x, y) for x, y in out if x > 0 and y > 0]


def root_causes(base_record: RunRecord, head_record: RunRecord,
                metric: str = "wall_s") -> RootCauses:
    """Rank the parameters and environment differences that explain a change of ``metric``.

    Cells are matched by key and their seeds paired (:func:`_seed_pairs`): the parameters are
    tested on one ``log(head / base)`` per cell and seed, so that each cell's effect comes with
    its seed variance (the small-matrix test of :mod:`~allele.analytics.rca_small` needs it);
    the common shift is judged on the cell medians. The target is a parameter too (in a run of
    several targets, "only the kraken cells moved" is an answer) unless every shared cell has
    the same one. Parameters are ranked over :data:`MIN_COMMON_CELLS` shared cells or more with
    positive values in both runs, else "no clear cause" says why; AnalyticsError for no cell.
    """
    if base_record.info.id == head_record.info.id:
        raise AnalyticsError(f"the same run twice ({base_record.info.name}): give two runs")
    heads = {c.key: (c, m) for c, (m,) in _cell_medians(head_record, metric)}
    cells = {c.key: (c, m) for c, (m,) in _cell_medians(base_record, metric)}
    pairs = {k: _seed_pairs(c, heads[k][0], metric) for k, (c, m) in cells.items()
             if k in heads and m > 0 and heads[k][1] > 0}
    keys = sorted(k for k, p in pairs.items() if p)
    if not keys:
        raise AnalyticsError(f"no common cells with {metric!r} (ok, above 0 in both runs)")
    causes: list[Cause] = []
    status, message = NO_CLEAR_CAUSE, (
        f"{NO_CLEAR_CAUSE}: {len(keys)} common cells with {metric!r} are too few to test the "
        f"parameters (need {MIN_COMMON_CELLS})")
    if len(keys) >= MIN_COMMON_CELLS:
        one_target = len({cells[k][0].target for k in keys}) == 1
        cell_params = [{**({} if one_target else {"target": cells[k][0].target}),
                        **cells[k][0].params} for k in keys]
        params = [cp for cp, k in zip(cell_params, keys, strict=True) for _ in pairs[k]]
        before = [x for k in keys for x, _ in pairs[k]]
        after = [y for k in keys for _, y in pairs[k]]
        shift = common_shift([cells[k][1] for k in keys], [heads[k][1] for k in keys],
                             metric=metric)
        try:
            verdict = explain_parameter_change(params, before, after, metric=metric)
        except AnalyticsError as exc:  # e.g. every cell changed by the same ratio
            message = f"{NO_CLEAR_CAUSE}: no parameter is testable on {len(keys)} cells ({exc})"
            ranked: list[Cause] = []
        else:
            status, message, ranked = verdict.status, verdict.message, verdict.candidates
        if shift is not None and status == "cause":
            shift = unexplained_shift(cell_params, [cells[k][1] for k in keys],
                                      [heads[k][1] for k in keys], ranked[0], shift, metric=metric)
        if shift is not None and shift.details["significant"]:
            message += (f"; every cell moved together by {shift.details['median_pct']:+.1f}% "
                        "(a shared cause, or run-to-run noise, which two runs cannot tell "
                        "apart: `allele bench calibrate` measures it)")
        causes += sorted([*ranked, *([shift] if shift else [])],
                         key=lambda c: (not c.details.get("significant", False), -c.score))
    envs = diff_environments(base_record.info.environment, head_record.info.environment)
    causes, message = causes + envs, message + ("" if envs else "; the environments are identical")
    return RootCauses(base_record.info, head_record.info, metric, causes, len(keys), status,
                      message)


def _seed_rows(record: RunRecord, quality: str, cost: str
               ) -> list[tuple[str, dict[str, Any], dict[str, float], int]]:
    """One row per ok cell and seed: the medians over that seed's repeats of both metrics."""
    rows = []
    for cell in record.cells:
        if cell.status != "ok":
            continue
        qs, cs = cell.keyed(quality), cell.keyed(cost)
        for seed in sorted({sd for sd, _ in qs} & {sd for sd, _ in cs}):
            qv = [v for (sd, _), v in qs.items() if sd == seed]
            cv = [v for (sd, _), v in cs.items() if sd == seed]
            rows.append((cell.target, dict(cell.params),
                         {quality: float(statistics.median(qv)),
                          cost: float(statistics.median(cv))}, int(seed)))
    return rows


@dataclass(frozen=True, slots=True)
class ComponentAdvice:
    """The answer for one component, from ``current``: validated recommendations or "no
    reliably better configuration" (``advice``), and its predicted Pareto front of
    ``(params, quality, cost)``, cheapest first."""

    component: str
    current: Mapping[str, Any]
    advice: Advice
    pareto: list[tuple[dict[str, Any], float, float]]

    @property
    def recommendations(self) -> list[Recommendation]:
        """The validated recommendations (empty: no reliably better configuration)."""
        return self.advice.recommendations

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary (without the component, which keys it)."""
        return {"current": self.current, "status": self.advice.status,
                "message": self.advice.message, "cv_rmse": self.advice.cv_rmse,
                "cv_r2": self.advice.cv_r2,
                "recommendations": [r.to_dict() for r in self.recommendations],
                "pareto": [{"params": p, "quality": q, "cost": c} for p, q, c in self.pareto]}


def recommendations(record: RunRecord, quality: str = "best_fitness", cost: str = "wall_s", *,
                    current: Mapping[str, Any] | None = None, target: str | None = None,
                    top: int = 3, max_cost_per_gain: float = 20.0) -> list[ComponentAdvice]:
    """Recommend configurations (``quality`` vs ``cost``) per component of a run's matrix.

    The recommender sees one row per cell and seed (the median over that seed's repeats), and
    needs at least 2 seeds; quality's direction is the run's declaration (a target's
    ``Metric``, the spec's ``metrics``), else the catalogue's or the name's. ``current``
    defaults, per component, to its cheapest cell (median over seeds); ``target`` keeps one
    component (an empty list when the run has no such component). ``max_cost_per_gain``: the
    largest cost increase in percent accepted per 1% of quality gained.
    """
    rows = _seed_rows(record, quality, cost)
    declared = declarations_from_doc(record.info.spec)
    if not rows:  # name what the run has, with the candidates for quality first
        have = sorted({m for c in record.cells if c.status == "ok"
                       for m in measurements(c.metrics())})
        higher = quality_metrics(have, declared)
        raise AnalyticsError(
            f"no cell has both {quality!r} and {cost!r}; run {record.info.name!r} recorded "
            + ", ".join(have or ["nothing"])
            + (f" (higher is better: {', '.join(higher)})" if higher else ""))
    # the run's declaration wins (a battery life declared higher-is-better ends in "_s")
    opt = PerformanceOptimizer(quality, cost,
                               higher_is_better=metric_info(quality, declared).direction
                               == "higher", max_cost_per_gain=max_cost_per_gain)
    opt.fit(rows)
    out = []
    for comp in opt.components():
        if target is not None and comp != target:
            continue
        by_cell: dict[str, tuple[dict[str, Any], list[float]]] = {}
        for r in rows:
            if r[0] == comp:
                by_cell.setdefault(repr(sorted(r[1].items())), (r[1], []))[1].append(r[2][cost])
        cur = current if current is not None else min(
            by_cell.values(), key=lambda pc: statistics.median(pc[1]))[0]
        out.append(ComponentAdvice(comp, cur, opt.advise(comp, cur, top),
                                   opt.recommenders_[comp].pareto()))
    return out
