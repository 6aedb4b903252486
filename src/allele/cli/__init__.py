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
import os
import sys
from typing import Any

import typer
from rich.console import Console
from typer.core import TyperGroup

from allele.cli._common import print_error, set_verbosity
from allele.errors import AlleleError


def _flags_without_type_label() -> None:
    """Typer labels an on/off flag ``<bool>`` in help: noise for a switch, so flags show none."""
    from typer.core import TyperOption

    shown = TyperOption.display_type_rich

    def display_type_rich(self: TyperOption, ctx: typer.Context) -> str | None:
        return None if self.is_flag else shown(self, ctx)

    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign,assignment]


_flags_without_type_label()
err_console = Console(stderr=True)


class _RootGroup(TyperGroup):
    """The root command. Ctrl-C that a command leaves unhandled says ``interrupted`` on stderr
    and exits 130: typer turns KeyboardInterrupt into a silent exit 130 before :func:`main`
    could see it. A command that handles Ctrl-C itself (``bench run``: a resume hint, then
    ``typer.Exit(130)``) raises no KeyboardInterrupt here, so it is not said twice."""

    def invoke(self, ctx: Any) -> Any:  # a click Context (typer keeps its own click)
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]")
            raise typer.Exit(130) from None


app = typer.Typer(
    name="allele",
    cls=_RootGroup,
    help="Evolve agent personalities and benchmark, observe and compare them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},  # -h is help in every command
)


def _version(value: bool) -> None:
    if value:
        from allele import __version__

        typer.echo(f"allele {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
    verbose: bool = typer.Option(False, "--verbose", "-v",
                                 help="Show INFO logs from Allele and the libraries it drives "
                                      "(MLflow, Dask, alembic); without it only their errors."),
) -> None:
    """Evolve agent personalities and benchmark, observe and compare them."""
    set_verbosity(verbose)

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
    """Console-script entry point: every error is one line on stderr, never a traceback.

    Exit codes: 0 done, 1 the command's own verdict (``--strict``, ``--fail-on``), 2 bad input
    or an :class:`~allele.errors.AlleleError`, 130 interrupted, 3 an unexpected internal error
    (a bug: ``ALLELE_DEBUG=1`` shows its traceback).
    """
    from typer.exceptions import Abort, TyperException

    try:
        code = app(args=argv, standalone_mode=False, prog_name="allele")
    except TyperException as exc:  # click's usage errors (typer carries its own click)
        if type(exc).__name__ == "NoArgsIsHelpError":
            sys.exit(exc.exit_code)  # the help is already printed
        ctx = getattr(exc, "ctx", None)
        hint = f" (`{ctx.command_path} --help` for usage)" if ctx is not None else ""
        print_error(exc.format_message() + hint)
        sys.exit(exc.exit_code)
    except AlleleError as exc:
        print_error(exc)
        sys.exit(2)
    except (KeyboardInterrupt, Abort):
        err_console.print("[yellow]interrupted[/]")
        sys.exit(130)
    except Exception as exc:
        if type(exc).__module__.startswith("mlflow."):  # MLflow refused (URI, auth, not found)
            print_error(f"MLflow: {' '.join(str(exc).split())[:400]}")
            sys.exit(2)
        # a bug: still one line, the traceback on request
        if os.environ.get("ALLELE_DEBUG"):
            raise
        print_error(f"internal error: {type(exc).__name__}: {exc} (a bug in Allele; "
                    "ALLELE_DEBUG=1 shows the traceback)")
        sys.exit(3)
    if isinstance(code, int) and code:
        sys.exit(code)
