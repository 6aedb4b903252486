"""The web dashboard's FastAPI app: :func:`create_app`.

The app opens the store once, starts a :class:`~allele.dashboard.web.hub.LiveHub` (the tail of
the bus), and, when notification channels are configured, an
:class:`~allele.observe.outbox.OutboxWorker` that delivers queued notifications and checks
escalations every few seconds. Pages (``/``, ``/runs``, ``/history``, ``/compare``, ``/alerts``,
``/analytics``) are thin HTML shells rendered with Jinja2 (autoescaped) whose script reads the
JSON API under ``/api/`` (documented at ``/docs`` by Swagger UI, from ``/openapi.json``). Every
asset is served by the app itself: Plotly from the installed ``plotly`` package, Swagger UI
from the installed ``fastapi-offline`` package (under ``/static/apidocs/``): no CDN, so every
page, the API docs included, works offline. There is no ``/redoc``: ReDoc loads its logo from
its vendor's CDN whatever it is told.

Errors are one line: ``{"detail": "..."}`` with 400 (bad input), 404 (no such run, cell or
silence), 401 (no token) or 422 (a request that does not validate, or data an analysis cannot
use).
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from allele.dashboard.web import auth
from allele.dashboard.web.context import Context, DashboardConfig
from allele.errors import AlleleError, AnalyticsError, StoreError

_log = logging.getLogger("allele.dashboard")
HERE = Path(__file__).parent


class SafeJSONResponse(JSONResponse):
    """JSON without NaN or infinities (they become null): a float a target returned as NaN
    must not turn a page into a server error."""

    def render(self, content: Any) -> bytes:
        from allele.dashboard.web.adapters import clean

        return json.dumps(clean(content), ensure_ascii=False, allow_nan=False,
                          separators=(",", ":")).encode("utf-8")


def _status_of(exc: AlleleError) -> int:
    text = str(exc)
    if isinstance(exc, AnalyticsError):
        return 422
    if isinstance(exc, StoreError) and (text.startswith("no run") or " no cell" in text):
        return 404
    if isinstance(exc, StoreError) and "cannot" in text:
        return 503
    return 400


def _one_line(text: str) -> str:
    return " ".join(str(text).split())[:500]


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "body", "path"))
        parts.append(f"{loc or 'request'}: {err.get('msg', 'invalid')}")
    return "; ".join(parts)


def _install_errors(app: FastAPI) -> None:
    @app.exception_handler(AlleleError)
    async def allele_error(request: Request, exc: AlleleError) -> JSONResponse:
        return JSONResponse({"detail": _one_line(str(exc))}, status_code=_status_of(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _one_line(_validation_message(exc))}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404 and not request.url.path.startswith("/api/"):
            return JSONResponse({"detail": f"no page {request.url.path}"}, status_code=404)
        return JSONResponse({"detail": _one_line(str(exc.detail))}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))


def _install_auth(app: FastAPI, token: str | None) -> None:
    if not token:
        return

    @app.middleware("http")
    async def check_token(request: Request, call_next: Callable[..., Any]) -> Response:
        path = request.url.path
        if path.startswith(auth.PUBLIC_PREFIXES) or auth.authorized(
                token, dict(request.headers), dict(request.cookies)):
            response: Response = await call_next(request)
            return response
        if path.startswith("/api/") or path in ("/metrics", "/openapi.json", "/docs"):
            return JSONResponse({"detail": "a token is required (Authorization: Bearer ..., "
                                 "X-Allele-Token, or log in at /login)"}, status_code=401,
                                headers={"WWW-Authenticate": "Bearer"})
        target = path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(auth.login_redirect(target), status_code=303)


def _start_delivery(ctx: Context) -> None:
    from allele.observe.channels import channels_from_settings
    from allele.observe.outbox import OutboxWorker
    from allele.observe.routing import AlertRouter

    settings = ctx.config.settings
    channels = channels_from_settings(settings)
    ctx.channels = list(channels)
    n = settings.notify
    ctx.router = AlertRouter(ctx.store, ctx.channels, outbox_limit=n.outbox_limit)
    if not (ctx.config.deliver and channels):
        return
    ctx.worker = OutboxWorker(ctx.store, channels, backoff_initial_s=n.backoff_initial_s,
                              backoff_max_s=n.backoff_max_s, max_attempts=n.max_attempts,
                              interval_s=1.0)
    ctx.worker.start()
    router = ctx.router

    def escalations() -> None:
        while not ctx.stop.wait(ctx.config.escalate_every_s):
            try:
                router.adopt()
                router.escalate()
            except Exception:
                _log.exception("escalation check failed")

    threading.Thread(target=escalations, name="allele-escalations", daemon=True).start()


API_DOCS_STATIC = "/static/apidocs"
"""Where Swagger UI's script and style are served (public, like every asset)."""


def _install_api_docs(app: FastAPI) -> None:
    """``/docs``: Swagger UI over ``/openapi.json``, its script and style served from the
    ``fastapi-offline`` package. FastAPI's own page loads them from a CDN, which leaves it blank
    without internet access; this is FastAPI's documented way to self-host the docs' static
    files (``get_swagger_ui_html`` with local URLs)."""
    import fastapi_offline
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.responses import HTMLResponse
    from fastapi.staticfiles import StaticFiles

    assets = Path(fastapi_offline.__file__).parent / "static"
    app.mount(API_DOCS_STATIC, StaticFiles(directory=str(assets)), name="apidocs")

    @app.get("/docs", include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}/openapi.json", title=f"{app.title}: API",
            swagger_js_url=f"{root}{API_DOCS_STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{API_DOCS_STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{root}{API_DOCS_STATIC}/favicon.png")


def create_app(config: DashboardConfig | None = None) -> FastAPI:
    """The dashboard app over the store at ``config.store_url`` (default: the configured one).
    """
    from allele.config import load_settings
    from allele.dashboard.web.hub import LiveHub
    from allele.store import open_store

    cfg = config or DashboardConfig()
    if cfg.settings is None:
        cfg.settings = load_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = open_store(cfg.store_url)
        hub = LiveHub(store, poll_s=cfg.poll_s)
        ctx = Context(cfg, store, hub)
        app.state.ctx = ctx
        hub.start()
        _start_delivery(ctx)
        try:
            yield
        finally:
            ctx.stop.set()
            hub.close()
            if ctx.worker is not None:
                ctx.worker.close()
            store.close()

    app = FastAPI(title="Allele dashboard", version="1", lifespan=lifespan,
                  default_response_class=SafeJSONResponse, docs_url=None, redoc_url=None,
                  description="The JSON API behind every page of `allele dashboard`. Errors "
                              "are one line: {\"detail\": \"...\"}.")
    _install_errors(app)
    _install_auth(app, cfg.token)
    from allele.dashboard.web import api_alerts, api_analytics, api_live, api_runs, pages

    _install_api_docs(app)  # before the pages' /static mount, which would shadow its assets
    app.include_router(api_runs.router)
    app.include_router(api_alerts.router)
    app.include_router(api_live.router)
    app.include_router(api_analytics.router)
    app.include_router(pages.router)
    pages.mount_static(app)
    return app
