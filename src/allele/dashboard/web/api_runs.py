"""``/api/runs``, ``/api/cell``, ``/api/history``, ``/api/compare``, ``/api/regressions``: the
JSON behind the Runs, History and Compare pages. Each route parses, calls one service of
:mod:`allele.bench.views` (or the regressions service) and returns its JSON; computed results of
finished runs are cached by their identity (runs, cell counts, options, method version)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from allele.bench import views
from allele.dashboard.web.adapters import comparison_json, regression_report_json
from allele.dashboard.web.context import Context, context

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


def _run_key(ctx: Context, ref: str) -> tuple[str, str, int]:
    info = ctx.store.get_run(ref)
    return info.id, info.status, info.cell_count


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
def run_overview(ctx: Ctx, run: str) -> dict[str, Any]:
    key = ("overview", *_run_key(ctx, run))
    out: dict[str, Any] = ctx.cache.get(key, lambda: views.run_overview(ctx.store, key[1]))
    return out


@router.get("/runs/{run}/heatmap", summary="Median of a metric over two parameters")
def run_heatmap(ctx: Ctx, run: str, metric: Metric, x: Param, y: Param,
                target: OptParam = None) -> dict[str, Any]:
    return views.run_heatmap(ctx.store, run, metric, x, y, target)


@router.get("/runs/{run}/scaling", summary="Scaling curves of a metric over a size parameter")
def run_scaling(ctx: Ctx, run: str, metric: Metric, size: OptParam = None,
                target: OptParam = None) -> dict[str, Any]:
    return views.run_scaling(ctx.store, run, metric, size, target)


@router.get("/cell", summary="One cell of a run with every raw sample")
def cell(ctx: Ctx, run: RunRef, key: CellKey) -> dict[str, Any]:
    return views.cell_detail(ctx.store, run, key)


@router.get("/history", summary="One cell and metric across runs, with change points")
def history(ctx: Ctx, key: CellKey, metric: Metric,
            limit: Annotated[int, Query(ge=2, le=2000)] = 200) -> dict[str, Any]:
    return views.cell_history(ctx.store, key, metric, limit)


@router.get("/compare", summary="BASE against HEAD: ratios, intervals, verdicts, FDR table")
def compare(ctx: Ctx, base: RunRef, head: RunRef,
            q: Annotated[float, Query(gt=0, lt=1)] = 0.05,
            floor: Annotated[float, Query(ge=0, lt=1)] = 0.05,
            history: Annotated[int, Query(ge=0, le=200)] = 20) -> dict[str, Any]:
    b, h = _run_key(ctx, base), _run_key(ctx, head)
    key = ("compare", COMPARE_METHOD, b, h, q, floor, history)

    def compute() -> dict[str, Any]:
        comp = views.run_comparison(ctx.store, b[0], h[0], q=q, floor=floor, history=history)
        return comparison_json(comp)

    out: dict[str, Any] = ctx.cache.get(key, compute)
    return out


@router.get("/regressions", summary="Change points over the recent history of every cell")
def regressions(ctx: Ctx, runs: Annotated[int, Query(ge=2, le=500)] = 100,
                metric: Annotated[str | None, Query(min_length=1, max_length=200)] = None
                ) -> dict[str, Any]:
    from allele.bench.history import recent_history
    from allele.bench.regress import analyse_runs

    newest = ctx.store.list_runs(1)
    key = ("regressions", runs, metric, newest[0].id if newest else None,
           newest[0].status if newest else None)

    def compute() -> dict[str, Any]:
        report = analyse_runs(recent_history(ctx.store, runs),
                              metrics=[metric] if metric else None)
        return regression_report_json(report)

    out: dict[str, Any] = ctx.cache.get(key, compute)
    return out
