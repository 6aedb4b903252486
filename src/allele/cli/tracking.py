"""``allele tracking sync|status``: the local MLflow spool."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from allele.cli._common import errors_as_one_line
from allele.errors import TrackingError

app = typer.Typer(help="MLflow tracking: replay or inspect the offline spool (mlflow extra).",
                  no_args_is_help=True)


def _console() -> Console:
    return Console(emoji=False)  # built per command: the terminal width is read when it runs



SpoolOption = Annotated[Path | None, typer.Option(
    "--spool", help="Spool file (default: <data_dir>/tracking-spool.jsonl).")]


@app.command("sync")
@errors_as_one_line
def sync(
    spool: SpoolOption = None,
    tracking_uri: Annotated[str | None, typer.Option(
        "--tracking-uri", help="Send every record here instead of where it was meant to go.")
    ] = None,
) -> None:
    """Replay the records spooled while MLflow was unreachable, exactly once."""
    from allele.tracking.mlflow import sync_spool
    from allele.tracking.spool import Spool

    report = sync_spool(Spool(spool), tracking_uri)
    _console().print(f"replayed {report.replayed} record(s), created {report.runs_created} "
                     f"run(s), rejected {report.rejected}, still pending {report.pending}"
                     + (f"; marked {len(report.reaped)} stale run(s) FAILED" if report.reaped
                        else ""), highlight=False)
    for err in report.errors:
        _console().print(f"  {err}", highlight=False, markup=False)
    if not report.complete:
        raise TrackingError(f"{report.pending} record(s) still pending: the tracking server is "
                            "unreachable; run `allele tracking sync` again later")


@app.command("status")
@errors_as_one_line
def status(spool: SpoolOption = None) -> None:
    """How many records wait in the spool, per tracking URI."""
    from allele.tracking.spool import Spool

    sp = Spool(spool)
    state = sp.read()
    _console().print(f"spool {sp.path}: {len(state.pending)} pending, {len(state.done)} done, "
                     f"{len(state.rejected)} rejected"
                     + (f", {len(state.malformed)} malformed line(s) skipped"
                        if state.malformed else ""), highlight=False, markup=False)
    for target, n in state.pending_by_target().items():
        _console().print(f"  {target}: {n} pending", highlight=False, markup=False)
