"""The HTML pages (thin shells: the page's script reads the JSON API), the login page, and the
static assets (the dashboard's own script and style, and Plotly from the installed package)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from allele.dashboard.web import auth

HERE = Path(__file__).parent
router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.autoescape = True

NAV = [("live", "Live"), ("runs", "Runs"), ("history", "History"), ("compare", "Compare"),
       ("alerts", "Alerts"), ("analytics", "Analytics")]


def _page(request: Request, page: str, title: str, **extra: Any) -> HTMLResponse:
    return templates.TemplateResponse(request, f"{page}.html.j2", {
        "page": page, "title": title, "nav": NAV,
        "config": {"page": page, "token_required": bool(request.app.state.ctx.config.token)},
        **extra})


def _add_page(slug: str, title: str) -> None:
    def page(request: Request) -> HTMLResponse:
        return _page(request, slug, title)

    router.add_api_route("/" if slug == "live" else f"/{slug}", page,
                         response_class=HTMLResponse, name=f"{slug}_page")


for _slug, _title in NAV:  # /, /runs, /history, /compare, /alerts, /analytics
    _add_page(_slug, _title)


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, next: str = "/", failed: int = 0) -> HTMLResponse:
    return _page(request, "login", "Log in", next=auth.safe_next(next), failed=bool(failed))


@router.post("/login")
async def login(request: Request) -> Response:
    token = request.app.state.ctx.config.token
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    given = (form.get("token") or [""])[0]
    target = auth.safe_next((form.get("next") or ["/"])[0])
    if not token:
        return RedirectResponse(target, status_code=303)
    if not auth.authorized(token, {"x-allele-token": given}, {}):
        return RedirectResponse(auth.login_redirect(target) + "&failed=1", status_code=303)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(auth.COOKIE, auth.session_value(token), httponly=True,
                        samesite="strict", path="/")
    return response


@router.get("/logout")
def logout() -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(auth.COOKIE, path="/")
    return response


def plotly_js() -> Path:
    """The installed plotly package's ``plotly.min.js``."""
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def mount_static(app: FastAPI) -> None:
    """``/static/plotly.min.js`` from the plotly package, the rest from ``static/``."""
    js = plotly_js()

    @app.get("/static/plotly.min.js", include_in_schema=False)
    def plotly_asset() -> FileResponse:
        return FileResponse(js, media_type="application/javascript",
                            headers={"Cache-Control": "public, max-age=86400"})

    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
