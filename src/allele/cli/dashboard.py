"""``allele dashboard`` (the web dashboard) and ``allele top`` (the terminal dashboard).

    allele dashboard [--store URL] [--host 127.0.0.1] [--port 8050] [--token T]
    allele top [--store URL] [--refresh 1.0]

The token also comes from ``ALLELE_DASHBOARD_TOKEN`` (a token on the command line shows in
``ps``). Bound to anything but loopback, the dashboard refuses to start without one. Both
commands import their (heavy) apps inside the command, so ``allele --help`` stays fast.
"""

from __future__ import annotations

import os
from typing import Annotated

import typer

from allele.cli._common import StoreOpt, make_console, one_line_errors

err_console = make_console(stderr=True)


def dashboard_cmd(
    store: StoreOpt = None,
    host: Annotated[str, typer.Option("--host", help="Address to bind (loopback unless a "
                                                     "token is given).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="TCP port.")] = 8050,
    token: Annotated[str | None, typer.Option(
        "--token", help="Access token (better: ALLELE_DASHBOARD_TOKEN, which `ps` does not "
        "show).")] = None,
    deliver: Annotated[bool, typer.Option(
        "--deliver/--no-deliver", help="Deliver queued alert notifications from this "
        "process.")] = True,
) -> None:
    """Serve the web dashboard: live matrices, runs, history, comparisons, alerts, analytics."""
    with one_line_errors():
        from allele.dashboard.web.auth import check_bind

        token = token or os.environ.get("ALLELE_DASHBOARD_TOKEN") or None
        check_bind(host, token)
        import uvicorn

        from allele.dashboard.web.app import create_app
        from allele.dashboard.web.context import DashboardConfig
        from allele.store import open_store

        with open_store(store) as st:  # fail here, in one line, if the store cannot be opened
            url = st.url
        app = create_app(DashboardConfig(store_url=url, token=token, deliver=deliver))
        shown = f"[{host}]" if ":" in host else host
        err_console.print(f"Allele dashboard on http://{shown}:{port}/ (store {url})"
                          + ("; token required" if token else ""), highlight=False)
        uvicorn.run(app, host=host, port=port, log_level="warning")


def top_cmd(
    store: StoreOpt = None,
    refresh: Annotated[float, typer.Option("--refresh", min=0.1, max=60.0,
                                           help="Seconds between reads of the store.")] = 1.0,
) -> None:
    """The terminal dashboard: running matrices, live sparklines, alerts, recent verdicts."""
    with one_line_errors():
        from allele.dashboard.tui.app import TopApp
        from allele.store import open_store

        with open_store(store) as st:
            TopApp(st, refresh_s=refresh).run()


def register(app: typer.Typer) -> None:
    """Add ``dashboard`` and ``top`` to the root command."""
    app.command("dashboard")(dashboard_cmd)
    app.command("top")(top_cmd)
