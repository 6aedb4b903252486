"""The ``allele`` command line.

The root app lives here; every command group is a face module beside this file
(``bench.py``, ``observe.py``, ``analyze.py``, ``genome.py``, ``tracking.py``) exposing
``app: typer.Typer``. Command modules import heavy libraries inside their commands so that
``allele --help`` stays fast. Any :class:`allele.errors.AlleleError` becomes a one-line message and
exit code 2, never a traceback.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys

import typer
from rich.console import Console

from allele.cli._common import print_error
from allele.errors import AlleleError

app = typer.Typer(
    name="allele",
    help="Evolve agent personalities and benchmark, observe and compare them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err_console = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        from allele import __version__

        typer.echo(f"allele {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    """Evolve agent personalities and benchmark, observe and compare them."""

# (module, command-group name). A group whose module is not there yet is not offered.
_GROUPS = [
    ("allele.cli.bench", "bench"),
    ("allele.cli.observe", "observe"),
    ("allele.cli.analyze", "analyze"),
    ("allele.cli.genome", "genome"),
    ("allele.cli.tracking", "tracking"),
]


def _register_groups() -> None:
    for module_name, group in _GROUPS:
        if importlib.util.find_spec(module_name) is None:
            continue
        module = importlib.import_module(module_name)
        app.add_typer(module.app, name=group)


from allele.cli import demo as _demo  # noqa: E402  (registers the top-level demo command)

_demo.register(app)
_register_groups()

from allele.cli import dashboard as _dashboard  # noqa: E402  (dashboard and top)

_dashboard.register(app)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    try:
        app(args=argv, standalone_mode=True)
    except AlleleError as exc:
        print_error(exc)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        sys.exit(130)
