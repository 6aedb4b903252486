"""``/api/alerts``, ``/api/silences``, ``/api/outbox``: the Alerts page's JSON, and the two
actions it offers (acknowledge, silence), persisted in the store."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from allele.dashboard.web.context import Context, context
from allele.errors import ValidationError
from allele.observe.alert_model import exact_matchers
from allele.observe.routing import alert_board
from allele.store import alerts as stored
from allele.store.outbox import outbox_items, outbox_stats

router = APIRouter(prefix="/api", tags=["alerts"])
Ctx = Annotated[Context, Depends(context)]


class AckRequest(BaseModel):
    """Acknowledge alerts by fingerprint, or every alert of a group."""

    model_config = ConfigDict(extra="forbid")
    fingerprints: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=1000)
    group_id: str | None = Field(None, min_length=1, max_length=64)


class SilenceRequest(BaseModel):
    """Silence the alerts whose labels match every matcher (values may be globs)."""

    model_config = ConfigDict(extra="forbid")
    matchers: dict[Annotated[str, Field(min_length=1, max_length=100)],
                   Annotated[str, Field(max_length=500)]] = Field(min_length=1, max_length=20)
    duration_s: float = Field(3600.0, gt=0, le=366 * 86400)
    comment: str = Field("", max_length=1000)


@router.get("/alerts", summary="Alerts (firing, pending, silenced, resolved), grouped")
def list_alerts(ctx: Ctx,
                state: Annotated[str | None, Query(pattern="^(firing|pending|resolved)$")
                                 ] = None,
                source: Annotated[str | None, Query(pattern="^(rule|regression)$")] = None,
                limit: Annotated[int, Query(ge=1, le=2000)] = 500) -> dict[str, Any]:
    board = alert_board(ctx.store, states=[state] if state else None, source=source,
                        limit=limit)
    board["outbox"] = outbox_stats(ctx.store).to_dict()
    board["channels"] = list(ctx.channels)
    return board


@router.post("/alerts/ack", summary="Acknowledge alerts (they stop escalating)")
def acknowledge(ctx: Ctx, body: AckRequest) -> dict[str, Any]:
    fps = list(body.fingerprints)
    if body.group_id:
        fps += [a.fingerprint for a in stored.list_alerts(ctx.store, limit=5000)
                if a.group_id == body.group_id]
    if not fps:
        raise ValidationError("name the alerts to acknowledge: fingerprints or a group_id")
    n = stored.acknowledge(ctx.store, fps)
    if n == 0:
        raise ValidationError("no such alert")
    return {"acknowledged": n}


class SilenceAlertsRequest(BaseModel):
    """Silence these alerts (by fingerprint): the Alerts page's "silence" button on a group."""

    model_config = ConfigDict(extra="forbid")
    fingerprints: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(
        min_length=1, max_length=1000)
    duration_s: float = Field(3600.0, gt=0, le=366 * 86400)
    comment: str = Field("", max_length=1000)


@router.post("/alerts/silence", summary="Silence exactly these alerts for a while")
def silence_alerts(ctx: Ctx, body: SilenceAlertsRequest) -> dict[str, Any]:
    """One silence per distinct label set of the named alerts, matching its labels literally
    (:func:`~allele.observe.alert_model.exact_matchers`): it holds back these alerts, whatever
    their source (a regression alert has no ``alertname``), and no other alert of the store."""
    rows = []
    for fp in dict.fromkeys(body.fingerprints):
        row = stored.get_alert(ctx.store, fp)
        if row is None:
            raise ValidationError(f"no such alert: {fp}")
        if not row.labels:
            raise ValidationError(f"alert {fp} has no labels to silence it by")
        rows.append(row)
    now = time.time()
    made: dict[str, stored.SilenceRow] = {}
    for row in rows:
        matchers = exact_matchers(row.labels)
        key = repr(sorted(matchers.items()))
        if key not in made:
            made[key] = stored.add_silence(ctx.store, matchers, now, now + body.duration_s,
                                           body.comment)
    return {"silences": [s.to_dict() for s in made.values()]}


@router.get("/silences", summary="Silences (active ones, or all)")
def list_silences(ctx: Ctx, active: bool = True) -> dict[str, Any]:
    rows = stored.list_silences(ctx.store, active_at=time.time() if active else None)
    return {"silences": [s.to_dict() for s in rows]}


@router.post("/silences", summary="Silence matching alerts for a while")
def add_silence(ctx: Ctx, body: SilenceRequest) -> dict[str, Any]:
    now = time.time()
    row = stored.add_silence(ctx.store, body.matchers, now, now + body.duration_s,
                             body.comment)
    return row.to_dict()


@router.delete("/silences/{silence_id}", summary="End a silence now")
def expire_silence(ctx: Ctx, silence_id: str) -> dict[str, Any]:
    if not stored.expire_silence(ctx.store, silence_id):
        from fastapi import HTTPException

        raise HTTPException(404, f"no active silence {silence_id!r}")
    return {"expired": silence_id}


@router.get("/outbox", summary="Notification outbox: counts, and rows not delivered")
def outbox(ctx: Ctx, status: Annotated[str | None, Query(pattern="^(pending|delivered|dead)$")
                                       ] = None,
           limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
    items = outbox_items(ctx.store, status=status, limit=limit)
    return {"stats": outbox_stats(ctx.store).to_dict(), "channels": list(ctx.channels),
            "items": [{"id": i.pk, "note_id": i.note_id, "channel": i.channel,
                       "status": i.status, "attempts": i.attempts, "next_at": i.next_at,
                       "created_at": i.created_at, "delivered_at": i.delivered_at,
                       "last_error": i.last_error} for i in items]}
