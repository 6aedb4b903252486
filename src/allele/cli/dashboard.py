"""``allele dashboard`` (the web dashboard) and ``allele top`` (the terminal dashboard).

    allele dashboard [--store URL] [--host 127.0.0.1] [--port 8050] [--token T]
    allele top [--store URL] [--refresh 1.0]

Both read an existing store (a missing SQLite file is a one-line error; nothing is created).
A store error while ``top`` runs is one line too (exit 2); Ctrl-C quits it (exit 130).
The token also comes from ``ALLELE_DASHBOARD_TOKEN`` (a token on the command line shows in
``ps``). Bound to anything but loopback, the dashboard refuses to start without one. Both
commands import their (heavy) apps inside the command, so ``allele --help`` stays fast.
"""

from __future__ import annotations

import os
import socket
from typing import Annotated

import typer

from allele.cli._common import StoreOpt, make_console, one_line_errors
from allele.errors import ConfigError

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

        # fail here, in one line, if the store cannot be opened; a viewer never creates one (a
        # mistyped --store is an error, not an empty dashboard), but it records acknowledgements
        # and silences, so it opens the store for writing
        with open_store(store, create=False) as st:
            url = st.url
        sock = _listen(host, port)  # bound here: a port in use is one line, not a traceback
        port = sock.getsockname()[1]
        app = create_app(DashboardConfig(store_url=url, token=token, deliver=deliver))
        shown = f"[{host}]" if ":" in host else host
        err_console.print(f"Allele dashboard on http://{shown}:{port}/ (store {url})"
                          + ("; token required" if token else ""), highlight=False)
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        server.run(sockets=[sock])


def _listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (``port`` 0: any free port)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host.strip("[]"), port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except (OSError, UnicodeError) as exc:
        raise ConfigError(f"--host {host}: not an address this machine can bind ({exc})") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        reason = "in use (another dashboard?)" if exc.errno == 98 else exc.strerror
        raise ConfigError(f"cannot listen on {host}:{port}: {reason}; choose another --port") \
            from None
    return sock


def top_cmd(
    store: StoreOpt = None,
    refresh: Annotated[float, typer.Option("--refresh", min=0.1, max=60.0,
                                           help="Seconds between reads of the store.")] = 1.0,
) -> None:
    """The terminal dashboard: running matrices, live sparklines, alerts, recent verdicts."""
    with one_line_errors():
        from allele.dashboard.tui.app import TopApp
        from allele.store import open_store

        with open_store(store, read_only=True) as st:  # a viewer never creates a store
            top = TopApp(st, refresh_s=refresh)
            top.run()
        # Textual catches what is raised in its event loop: the app keeps a store error for
        # here (one line, exit 2), and Ctrl-C ends it like any command's (interrupted, 130)
        if top.failure is not None:
            raise top.failure
        if top.interrupted:
            raise KeyboardInterrupt
        if top.return_code:  # an unexpected error, its traceback printed by Textual: a bug
            raise typer.Exit(3)


def register(app: typer.Typer) -> None:
    """Add ``dashboard`` and ``top`` to the root command."""
    app.command("dashboard")(dashboard_cmd)
    app.command("top")(top_cmd)
