"""``/api/runs``, ``/api/cell``, ``/api/history``, ``/api/compare``, ``/api/regressions``: the
JSON behind the Runs, History and Compare pages. Each route parses, calls one service of
:mod:`allele.bench.views` (or the regressions service) and returns its JSON; computed results of
finished runs are cached by their identity (runs, cell counts, options, method version)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response

from allele.bench import views
from allele.dashboard.web.adapters import (
    comparison_json,
    default_pair,
    regression_report_json,
)
from allele.dashboard.web.context import Context, cached_json, context, store_version

router = APIRouter(prefix="/api", tags=["runs"])
Ctx = Annotated[Context, Depends(context)]
RunRef = Annotated[str, Query(min_length=1, max_length=200, description="Run id, name or "
                                                                        "'latest'.")]
Metric = Annotated[str, Query(min_length=1, max_length=200)]
Param = Annotated[str, Query(min_length=1, max_length=200)]
OptParam = Annotated[str | None, Query(min_length=1, max_length=200)]
CellKey = Annotated[str, Query(min_length=1, max_length=5000, description="The cell key.")]

COMPARE_METHOD = "compare-1"
"""Bumped when the comparison's method changes, so cached comparisons are recomputed."""
CHANGE_METHOD = "edivisive-1"
"""Likewise for change points."""


def _run_key(ctx: Context, ref: str) -> tuple[str, str, int]:
    from allele.bench.lease import shown_status

    info = ctx.store.get_run(ref)
    return info.id, shown_status(ctx.store, info)[0], info.cell_count


@router.get("/runs", summary="Runs, newest first, with filters")
def list_runs(ctx: Ctx,
              status: Annotated[str | None, Query(
                  pattern="^(running|finished|interrupted|failed)$")] = None,
              spec: Annotated[str | None, Query(min_length=1, max_length=200)] = None,
              q: Annotated[str | None, Query(min_length=1, max_length=200,
                                             description="Text in the name, or an id prefix.")
                           ] = None,
              limit: Annotated[int, Query(ge=1, le=500)] = 50,
              offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0) -> dict[str, Any]:
    return views.run_list(ctx.store, status=status, spec=spec, text=q, limit=limit,
                          offset=offset)


@router.get("/runs/{run}", summary="One run: cells, medians, targets")
def run_overview(ctx: Ctx, run: str) -> Response:
    key = ("overview", *_run_key(ctx, run))
    return cached_json(ctx, key, lambda: views.run_overview(ctx.store, key[1]))


@router.get("/runs/{run}/heatmap", summary="Median of a metric over two parameters")
def run_heatmap(ctx: Ctx, run: str, metric: Metric, x: Param, y: Param,
                target: OptParam = None) -> Response:
    rk = _run_key(ctx, run)
    return cached_json(ctx, ("heatmap", *rk, metric, x, y, target),
                       lambda: views.run_heatmap(ctx.store, rk[0], metric, x, y, target))


@router.get("/runs/{run}/scaling", summary="Scaling curves of a metric over a size parameter")
def run_scaling(ctx: Ctx, run: str, metric: Metric, size: OptParam = None,
                target: OptParam = None) -> Response:
    rk = _run_key(ctx, run)
    return cached_json(ctx, ("scaling", *rk, metric, size, target),
                       lambda: views.run_scaling(ctx.store, rk[0], metric, size, target))


@router.get("/cell", summary="One cell of a run with every raw sample")
def cell(ctx: Ctx, run: RunRef, key: CellKey) -> Response:
    rk = _run_key(ctx, run)
    return cached_json(ctx, ("cell", *rk, key),
                       lambda: views.cell_detail(ctx.store, rk[0], key))


@router.get("/history", summary="One cell and metric across runs, with change points")
def history(ctx: Ctx, key: CellKey, metric: Metric,
            limit: Annotated[int, Query(ge=2, le=2000)] = 200) -> Response:
    return cached_json(ctx, ("history", CHANGE_METHOD, key, metric, limit, store_version(ctx)),
                       lambda: views.cell_history(ctx.store, key, metric, limit))


@router.get("/compare/defaults", summary="The runs Compare opens on: the newest finished run "
            "and the finished run before it of the same spec")
def compare_defaults(ctx: Ctx) -> dict[str, Any]:
    return default_pair(ctx.store.list_runs(limit=500))


@router.get("/compare", summary="BASE against HEAD: ratios, intervals, verdicts, FDR table")
def compare(ctx: Ctx, base: RunRef, head: RunRef,
            q: Annotated[float, Query(gt=0, lt=1)] = 0.05,
            floor: Annotated[float, Query(ge=0, lt=1)] = 0.05,
            history: Annotated[int, Query(ge=0, le=200)] = 20) -> Response:
    b, h = _run_key(ctx, base), _run_key(ctx, head)
    key = ("compare", COMPARE_METHOD, b, h, q, floor, history)

    def compute() -> dict[str, Any]:
        comp = views.run_comparison(ctx.store, b[0], h[0], q=q, floor=floor, history=history)
        return comparison_json(comp)

    return cached_json(ctx, key, compute)


@router.get("/regressions", summary="Change points over the recent history of every cell")
def regressions(ctx: Ctx, runs: Annotated[int, Query(ge=2, le=500)] = 100,
                metric: Annotated[str | None, Query(min_length=1, max_length=200)] = None
                ) -> Response:
    from allele.bench.history import recent_history
    from allele.bench.regress import analyse_runs

    key = ("regressions", CHANGE_METHOD, runs, metric, store_version(ctx))

    def compute() -> dict[str, Any]:
        report = analyse_runs(recent_history(ctx.store, runs),
                              metrics=[metric] if metric else None)
        return regression_report_json(report)

    return cached_json(ctx, key, compute)
