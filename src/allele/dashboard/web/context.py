"""What every route of the dashboard reads: the configuration, the open store, the live hub,
the result cache (:class:`Context`, reached through the :func:`context` dependency)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from fastapi.responses import Response


@dataclass
class DashboardConfig:
    """How the app runs: the store, the token (None: no auth), the poll interval of the live
    tail, and whether this process delivers queued notifications."""

    store_url: str | None = None
    token: str | None = None
    poll_s: float = 0.25
    deliver: bool = True
    escalate_every_s: float = 10.0
    settings: Any = None


class Cache:
    """A small LRU of computed results (comparisons, analyses), keyed by their inputs."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._items: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[Any, ...], compute: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                self.hits += 1
                return self._items[key]
        value = compute()
        with self._lock:
            self.misses += 1
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value


@dataclass
class Context:
    """What every route reads: the store, the live hub, the caches, the config."""

    config: DashboardConfig
    store: Any
    hub: Any
    cache: Cache = field(default_factory=Cache)
    worker: Any = None
    router: Any = None
    channels: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)


def json_bytes(obj: Any) -> bytes:
    """Compact JSON without NaN (non-finite floats become null)."""
    import json

    from allele.dashboard.web.adapters import clean

    return json.dumps(clean(obj), ensure_ascii=False, allow_nan=False,
                      separators=(",", ":")).encode("utf-8")


def cached_json(ctx: Context, key: tuple[Any, ...], compute: Callable[[], Any]) -> Response:
    """A JSON response of ``compute()``, its encoded bytes cached under ``key`` (the key must
    name everything the result depends on: runs with their cell counts, options, versions)."""
    body: bytes = ctx.cache.get(key, lambda: json_bytes(compute()))
    return Response(body, media_type="application/json")


def store_version(ctx: Context) -> tuple[Any, ...]:
    """What changes when a run is added or grows: the newest run's id, status and cell count."""
    newest = ctx.store.list_runs(1)
    return (newest[0].id, newest[0].status, newest[0].cell_count) if newest else ()


def context(request: Request) -> Context:
    """The app's :class:`Context` (a FastAPI dependency)."""
    ctx: Context = request.app.state.ctx
    return ctx
