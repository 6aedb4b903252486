"""``/api/analytics/...``: the Analytics page's JSON, one call of :mod:`allele.bench.diagnose`
each (anomaly scores over a series, forecasts with intervals, root causes between two runs,
configuration recommendations). Results are cached by their inputs and the newest stored point
or run, so a page that refreshes does not refit a model that saw no new data."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from allele.bench import diagnose
from allele.bench.metrics import measurements
from allele.dashboard.web.adapters import clean
from allele.dashboard.web.context import Context, cached_json, context
from allele.errors import AnalyticsError
from allele.store.live import last_ids
from allele.store.model import RunRecord

router = APIRouter(prefix="/api/analytics", tags=["analytics"])
Ctx = Annotated[Context, Depends(context)]
Name = Annotated[str, Query(min_length=1, max_length=200)]
OptName = Annotated[str | None, Query(min_length=1, max_length=200)]


Labels = Annotated[str | None, Query(max_length=500, description="KEY=VALUE, comma-separated: "
                                     "one series of a metric recorded under several label sets")]


def _series_json(s: diagnose.MetricSeries) -> dict[str, Any]:
    return {"metric": s.metric, "component": s.component, "labels": s.labels,
            "t": s.timestamps, "v": s.values}


def _labels(text: str | None) -> dict[str, str]:
    return diagnose.parse_labels([p for p in (text or "").split(",") if p.strip()])


_WEB_NAMES = [(re.compile(r"e\.g\. --label (\S+)"), r"e.g. \1"),
              (re.compile(r"with --label\b"), "in the labels field"),
              (re.compile(r"--(label|learn|period|horizon)\b"), r"the \1 field")]


@contextmanager
def web_names() -> Iterator[None]:
    """Re-raise an AnalyticsError with the page's field names where it names the CLI's options
    (``--label worker=runner`` is the ``labels`` field holding ``worker=runner``)."""
    try:
        yield
    except AnalyticsError as exc:
        text = str(exc)
        for pattern, repl in _WEB_NAMES:
            text = pattern.sub(repl, text)
        raise AnalyticsError(text) from None


@router.get("/anomalies", summary="Anomaly scores over a telemetry series")
def anomalies(ctx: Ctx, metric: Name, component: OptName = None,
              method: Literal["robust", "iforest", "ocsvm", "ensemble"] = "robust",
              threshold: Annotated[float, Query(gt=0, le=1)] = 0.5,
              learn: Annotated[int | None, Query(
                  ge=diagnose.LEARN_FLOOR, le=100_000,
                  description="Learning period in points (default: "
                  "150, or half a shorter series)")] = None,
              labels: Labels = None) -> Response:
    key = ("anomalies", metric, component, method, threshold, learn, labels,
           last_ids(ctx.store)[1])

    def compute() -> dict[str, Any]:
        with web_names():  # the CLI's service, its learning period included
            res = diagnose.metric_anomalies(ctx.store, metric, component, method=method,
                                            threshold=threshold, learn=learn,
                                            labels=_labels(labels))
        out: dict[str, Any] = clean({"series": _series_json(res.series), "method": res.method,
                      "scores": res.detection.scores.tolist(),
                      "threshold": res.detection.threshold, "learn": res.detection.learn_end,
                      "learn_end": res.detection.learn_end, "period": res.detection.period,
                      "transform": res.detection.transform,
                      "anomalies": res.rows()})
        return out

    return cached_json(ctx, key, compute)


@router.get("/forecast", summary="A forecast with its prediction interval")
def forecast(ctx: Ctx, metric: Name, component: OptName = None,
             model: Literal["auto", "arima", "naive", "seasonal"] = "auto",
             horizon: Annotated[int, Query(ge=1, le=500)] = 24,
             level: Annotated[float, Query(gt=0.5, lt=1)] = 0.9,
             period: Annotated[int | None, Query(ge=2, le=10_000)] = None,
             labels: Labels = None) -> Response:
    key = ("forecast", metric, component, model, horizon, level, period, labels,
           last_ids(ctx.store)[1])

    def compute() -> dict[str, Any]:
        with web_names():
            res = diagnose.forecast_metric(ctx.store, metric, component, model=model,
                                           horizon=horizon, level=level, period=period,
                                           labels=_labels(labels))
        out: dict[str, Any] = clean({"series": _series_json(res.series),
                                     "forecast": res.forecast.to_dict(),
                                     "findings": ([f"model: {res.choice}"] if res.choice
                                                  else []) + res.findings})
        return out

    return cached_json(ctx, key, compute)


@router.get("/root-causes", summary="What explains a metric's change from BASE to HEAD")
def root_causes(ctx: Ctx, base: Name, head: Name, metric: Name = "wall_s") -> Response:
    b, h = ctx.store.get_run(base), ctx.store.get_run(head)
    key = ("root-causes", b.id, b.cell_count, h.id, h.cell_count, metric)

    def compute() -> dict[str, Any]:
        base_record, head_record = ctx.store.load_run(b.id), ctx.store.load_run(h.id)
        _check_recorded(metric, base_record, head_record)
        res = diagnose.root_causes(base_record, head_record, metric)
        out: dict[str, Any] = clean({**res.to_dict(), "base_name": b.name, "head_name": h.name,
                      "common_cells": res.common_cells})
        return out

    return cached_json(ctx, key, compute)


def _check_recorded(metric: str, *records: RunRecord) -> None:
    """A metric a run did not record is an error naming the metrics the runs did (as
    Recommendations answers): ranked without it, the "root causes" were the environments'
    differences, unrelated to the metric asked about."""
    recorded = [{m for c in r.cells if c.status == "ok" for m in measurements(c.metrics())}
                for r in records]
    lacking = [r.info.name for r, have in zip(records, recorded, strict=True)
               if metric not in have]
    if lacking:
        both = sorted(set.intersection(*recorded))
        raise AnalyticsError(
            f"no cell of run {' or '.join(map(repr, lacking))} recorded {metric!r}; the runs "
            "both recorded " + ", ".join(both or ["nothing"]))


@router.get("/recommendations", summary="Configurations that trade quality for cost better")
def recommendations(ctx: Ctx, run: Name, quality: Name = "best_fitness",
                    cost: Name = "wall_s", target: OptName = None,
                    top: Annotated[int, Query(ge=1, le=20)] = 3) -> Response:
    info = ctx.store.get_run(run)
    key = ("recommend", info.id, info.cell_count, quality, cost, target, top)

    def compute() -> dict[str, Any]:
        advice = diagnose.recommendations(ctx.store.load_run(info.id), quality, cost,
                                          target=target, top=top)
        out: dict[str, Any] = clean({"run": info.name, "quality": quality, "cost": cost,
                      "components": {a.component: a.to_dict() for a in advice}})
        return out

    return cached_json(ctx, key, compute)
