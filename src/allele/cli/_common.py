"""Pieces every command group shares: one-line errors, consoles, the ``--store`` option."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, ParamSpec

import typer
from rich.console import Console
from rich.markup import escape

from allele.errors import AlleleError

if TYPE_CHECKING:
    from allele.store import ResultStore

P = ParamSpec("P")

StoreOpt = Annotated[str | None, typer.Option(
    "--store", help="Result store URL (default: ALLELE_STORE_URL or .allele/results.db).")]


def make_console(stderr: bool = False, width: int = 150) -> Console:
    """A console as wide as the terminal, or ``width`` columns when the output is not one."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else width)


def print_error(exc: BaseException) -> None:
    """``error: <message>`` on stderr; the message is printed verbatim (``allele[mlflow]``,
    ``[0, 1]`` and other brackets are text, not rich markup)."""
    Console(stderr=True).print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False,
                               soft_wrap=True)


@contextmanager
def one_line_errors() -> Iterator[None]:
    """An AlleleError inside becomes one line on stderr and exit code 2, never a traceback."""
    try:
        yield
    except AlleleError as exc:
        print_error(exc)
        raise typer.Exit(2) from None


def errors_as_one_line(fn: Callable[P, None]) -> Callable[P, None]:
    """Decorator form of :func:`one_line_errors` for a command function."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        with one_line_errors():
            fn(*args, **kwargs)

    return wrapper


def open_store_url(url: str | None) -> ResultStore:
    """The result store at ``url`` (default: the configured one)."""
    from allele.store import open_store

    return open_store(url)
