"""Raising regression alerts from the commands that find regressions (``bench run --report``,
``bench compare``, ``bench regressions``): one call, one line on stderr."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from allele.errors import AlleleError


def announce_regressions(store_url: str | None, build: Callable[[], list[Any]],
                         console: Any) -> None:
    """Build the alert rows, route the new ones (:func:`allele.bench.alerting.raise_regressions`)
    and print what happened. A store that cannot take them (read-only, unreachable) costs a
    warning, never the command's own result."""
    from allele.bench.alerting import raise_regressions
    from allele.cli._common import open_store_url
    from allele.cli.comparison import store_flag

    try:
        rows = build()
        if not rows:
            return
        with open_store_url(store_url, create=False) as st:
            outcome = raise_regressions(st, rows)
    except AlleleError as exc:
        console.print(f"[yellow]warning:[/] regression alerts not raised: {exc}",
                      highlight=False, markup=True)
        return
    line = outcome.line()
    if line:
        console.print(line + f" (`allele dashboard{store_flag(store_url)}` lists them)",
                      highlight=False, markup=False)
