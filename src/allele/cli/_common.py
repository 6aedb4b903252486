"""Pieces every command group shares: one-line errors, consoles, the ``--store`` option, and
how user text is printed.

User text (run, spec and target names, parameters, errors, URLs, paths) is printed as text,
never read as rich markup or emoji codes: a run named ``nightly [/x]`` or an error saying
``cannot open [/data/input.csv]`` would otherwise crash the command (``MarkupError``), and
``badtargets:ok:`` would print an emoji. The consoles made here have emoji codes off; inside a
markup string user text goes through :func:`esc`, and as a table cell through :func:`plain`."""

from __future__ import annotations

import functools
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from allele.errors import AlleleError, ConfigError

if TYPE_CHECKING:
    from allele.bench.spec import SuiteSpec
    from allele.store import ResultStore

P = ParamSpec("P")

STORE_HELP = ("Result store: a SQLite file path (relative to the working directory) or a "
              "database URL, e.g. sqlite:////abs/results.db, postgresql+psycopg://... "
              "(default: ALLELE_STORE_URL, else the file .allele/results.db).")
StoreOpt = Annotated[str | None, typer.Option("--store", help=STORE_HELP)]
LiveOpt = Annotated[bool, typer.Option(
    "--live/--no-live", help="Publish live telemetry to the store while running (what "
    "`allele dashboard` and `allele top` show).")]


def _floor_in_range(value: float) -> float:
    if not 0.0 <= value < 1.0:  # (also refuses nan)
        raise typer.BadParameter(f"a fraction in [0, 1) (0.05 is 5%), got {value}")
    return value


FloorOpt = Annotated[float, typer.Option(
    "--floor", callback=_floor_in_range,
    help="Practical floor: smallest relative change worth a verdict, a fraction in [0, 1) "
    "(0.05: 5%).")]
"""``--floor`` of the bench commands that judge verdicts, refused outside [0, 1): a negative
floor divided by zero, and ``--floor 5`` most likely meant 5 %."""


def checked_suite(spec: Path, *, preset: str | None = None, filters: Sequence[str] = (),
                  max_cells: int | None = None, resolve: bool = True) -> SuiteSpec:
    """The spec of a new run, checked before any store is opened (a spec that fails creates
    no store file): it validates, ``filters`` keep a cell, and (``resolve``) every target and
    hook imports, the working directory on the path as ``python -m`` has it."""
    from allele.bench.runner import plan
    from allele.bench.spec import load_suite
    from allele.bench.targets import include_working_directory, resolve_target

    suite = load_suite(spec, preset=preset, max_cells=max_cells)
    if filters and not plan(suite, filters):
        bare = [f for f in filters if "=" not in f]
        hint = (f"; a term without '=' ({', '.join(bare)}) matches cell keys as a substring or "
                f"glob, such as {plan(suite)[0].key!r}: key=value selects a parameter"
                if bare else "")
        known = {k for t in plan(suite) for k in t.params} | {"benchmark", "target"}
        unknown = sorted({f.partition("=")[0].strip() for f in filters if "=" in f} - known)
        if unknown:  # -f varient=numpy said only that no cell matched
            hint += (f"; no cell has a parameter {', '.join(map(repr, unknown))} (they have "
                     f"{', '.join(sorted(known - {'benchmark', 'target'}))})")
        raise ConfigError(f"no cell of {suite.name!r} matches the filters "
                          f"{' '.join(filters)}{hint}")
    if resolve:
        include_working_directory()
        for bench in suite.benchmarks:
            for ref in (bench.target, bench.setup, bench.teardown):
                if ref:
                    resolve_target(ref)
    return suite


def make_console(stderr: bool = False, width: int | None = 150) -> Console:
    """A console as wide as the terminal, or ``width`` columns when the output is not one;
    emoji codes are not replaced (``:ok:`` in a target name stays text)."""
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else width, emoji=False)


def esc(value: object) -> str:
    """User text to put inside a rich markup string: printed exactly as it is."""
    return escape(str(value))


def plain(value: object, style: str = "") -> Text:
    """User text as a table cell or title: never parsed as markup or emoji codes."""
    return Text(str(value), style=style)


def one_line(text: str) -> str:
    """A message on one line (newlines and tabs become spaces)."""
    return " ".join(text.split()) if any(c in text for c in "\n\r\t") else text


def print_error(exc: BaseException | str) -> None:
    """``error: <message>`` on one line of stderr; the message is printed verbatim
    (``allele[mlflow]``, ``[0, 1]`` and other brackets are text, not rich markup)."""
    Console(stderr=True, emoji=False).print(f"[bold red]error:[/] {esc(one_line(str(exc)))}",
                                            highlight=False, soft_wrap=True)


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


def open_store_url(url: str | None, *, read_only: bool = False,
                   create: bool = True) -> ResultStore:
    """The result store at ``url`` (a SQLite file path or a URL; default: the configured one).
    Commands that only read pass ``read_only``: nothing is created, migrated or written, and a
    missing store is an error; ``create=False`` opens an existing store for writing."""
    from allele.store import open_store

    return open_store(url, read_only=read_only, create=create)


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a service manager's stop, ``kill``) ends the command like Ctrl-C: through its
    cleanup (a run left resumable, a final flush), not at once."""
    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


# Libraries that log on their own: without ``--verbose`` only their errors reach the terminal
# (MLflow announces every run and migration at INFO, alembic every upgrade step).
_THIRD_PARTY_LOGGERS = ("mlflow", "alembic", "distributed", "numba", "urllib3", "httpx",
                        "uvicorn", "asyncio", "matplotlib", "git", "llama_cpp")


@contextmanager
def live_telemetry(store: ResultStore, live: bool, metrics_port: int | None,
                   console: Console) -> Iterator[Any]:
    """A run's live telemetry for the block (a :class:`~allele.bench.live.RunLive`, or None
    without ``live`` and ``metrics_port``): events and points go to ``store``, where `allele
    top`, `allele dashboard` and `allele analyze` read them; closed (a final flush) on the way
    out, whatever ends the block."""
    if not live and metrics_port is None:
        yield None
        return
    from allele.bench.live import RunLive

    publisher = RunLive(store, metrics_port=metrics_port)
    try:
        if publisher.server is not None:
            console.print(f"serving the run's metrics on {publisher.server.url}",
                          highlight=False)
        yield publisher
    finally:
        publisher.close()


def set_verbosity(verbose: bool) -> None:
    """What the terminal shows besides Allele's own output.

    Quiet (the default): third-party loggers and MLflow's own warnings are cut to errors, and
    ``MLFLOW_LOGGING_LEVEL`` is set for this process and its workers (MLflow reads it when it is
    imported, which commands do lazily, after this); so is
    ``MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT`` (with an ``http://`` tracking URI MLflow writes
    "View run ... at: ..." lines straight to stdout, not through a logger, at every run end: a
    tracked bench run would print two per cell). Verbose: INFO from Allele and every library,
    with a timestamp and the logger's name, and MLflow's run links."""
    import logging
    import os
    import warnings

    if verbose:
        os.environ["MLFLOW_LOGGING_LEVEL"] = "INFO"
        logging.basicConfig(level=logging.INFO, stream=sys.stderr, force=True,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        for name in _THIRD_PARTY_LOGGERS:
            logging.getLogger(name).setLevel(logging.INFO)
        return
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "ERROR")
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    for name in _THIRD_PARTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module=r"mlflow(\.|$)")


def check_writable(path: Path) -> None:
    """Refuse a ``--report`` path (of `run` and `ab`) that cannot be written: its nearest
    existing ancestor must be a writable directory (the missing ones are created)."""
    import os

    here = path.resolve().parent
    while not here.exists():
        here = here.parent
    if not here.is_dir() or not os.access(here, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write {path}: {here} is not a writable directory")
