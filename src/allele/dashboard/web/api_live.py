"""``/api/live``, ``/api/stream`` (server-sent events), ``/api/events``, ``/api/telemetry`` and
the dashboard's own ``/metrics``: the Live page's JSON and the far end of the bus."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from allele.dashboard.web.adapters import clean
from allele.dashboard.web.context import Context, context
from allele.store.live import point_series, read_events
from allele.store.points import read_points

router = APIRouter(tags=["live"])
Ctx = Annotated[Context, Depends(context)]
PING_S = 15.0


def _dumps(x: Any) -> str:
    return json.dumps(clean(x), separators=(",", ":"), allow_nan=False)


@router.get("/api/live", summary="Running matrices and live component series, now")
def live(ctx: Ctx) -> dict[str, Any]:
    out: dict[str, Any] = ctx.hub.snapshot()
    return out


@router.get("/api/stream", summary="Server-sent events: a snapshot, then every new batch",
            response_class=Response)
async def stream(request: Request, ctx: Ctx) -> Response:
    from sse_starlette.sse import EventSourceResponse

    hub = ctx.hub

    async def events() -> Any:
        sub = hub.subscribe()
        try:
            yield {"event": "snapshot", "data": _dumps(hub.snapshot())}
            while True:
                try:
                    message = await asyncio.wait_for(sub.queue.get(), timeout=PING_S)
                except TimeoutError:
                    yield {"event": "ping", "data": "{}"}
                    continue
                if sub.lagging:  # it missed batches: start again from a snapshot
                    while not sub.queue.empty():
                        sub.queue.get_nowait()
                    sub.lagging = False
                    yield {"event": "snapshot", "data": _dumps(hub.snapshot())}
                    continue
                yield {"event": "batch", "data": message}
        finally:
            hub.unsubscribe(sub)

    return EventSourceResponse(events(), ping=PING_S)


@router.get("/api/events", summary="The live event log after an id")
def events(ctx: Ctx, after: Annotated[int, Query(ge=0, le=2**62)] = 0,
           limit: Annotated[int, Query(ge=1, le=5000)] = 500,
           run: Annotated[str | None, Query(min_length=1, max_length=200)] = None
           ) -> dict[str, Any]:
    run_id = ctx.store.resolve_run(run) if run else None
    evs = read_events(ctx.store, after, limit=limit, run_id=run_id)
    return {"events": [e.to_dict() for e in evs],
            "last_id": evs[-1].id if evs else after}


@router.get("/api/telemetry", summary="Stored telemetry series, or the points of one")
def telemetry(ctx: Ctx, metric: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
              component: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
              since: Annotated[float | None, Query(ge=0, le=1e11)] = None,
              limit: Annotated[int, Query(ge=1, le=100_000)] = 5000) -> dict[str, Any]:
    if metric is None:
        return {"series": [{"metric": m, "component": c, "points": n, "newest": t}
                           for m, c, n, t in point_series(ctx.store)]}
    pts = read_points(ctx.store, metric, component, since)[-limit:]
    return {"metric": metric, "component": component,
            "points": [{"t": p.timestamp, "v": p.value, "component": p.component,
                        "labels": dict(p.labels)} for p in pts]}


def _exposition(ctx: Context) -> str:
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    hub = ctx.hub

    class _Latest:
        def collect(self) -> Any:
            fams: dict[str, tuple[list[str], list[tuple[dict[str, str], float]]]] = {}
            for metric, component, labels, value in hub.latest_values():
                names, rows = fams.setdefault(metric, ([], []))
                lab = {"component": component, **dict(labels)}
                for k in lab:
                    if k not in names:
                        names.append(k)
                rows.append((lab, value))
            for metric, (names, rows) in sorted(fams.items()):
                fam = GaugeMetricFamily(metric, f"Latest value of {metric} in the store.",
                                        labels=names)
                for lab, value in rows:
                    fam.add_metric([lab.get(n, "") for n in names], value)
                yield fam
            stats = hub.stats()
            yield CounterMetricFamily("allele_dashboard_events", "Events tailed from the store.",
                                      value=float(stats["events"]))
            yield CounterMetricFamily("allele_dashboard_points", "Points tailed from the store.",
                                      value=float(stats["points"]))
            yield GaugeMetricFamily("allele_dashboard_subscribers", "Open live streams.",
                                    value=float(stats["subscribers"]))

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Latest())
    return generate_latest(registry).decode()


@router.get("/metrics", summary="Prometheus exposition of everything the store receives",
            response_class=Response)
def metrics(ctx: Ctx) -> Response:
    return Response(_exposition(ctx), media_type="text/plain; version=0.0.4; charset=utf-8")
