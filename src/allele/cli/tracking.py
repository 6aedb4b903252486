"""``allele tracking sync|status``: the local MLflow spool."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from allele.cli._common import errors_as_one_line
from allele.errors import TrackingError

if TYPE_CHECKING:
    from allele.tracking.spool import Spool

app = typer.Typer(help="MLflow tracking: replay or inspect the offline spool (mlflow extra).",
                  no_args_is_help=True)


def _console() -> Console:
    # built per command: the terminal width is read when it runs; a line is never broken (a
    # report is grepped, a path or an error is one piece)
    return Console(emoji=False, soft_wrap=True)


SpoolOption = Annotated[Path | None, typer.Option(
    "--spool", help="Spool file (default: <data_dir>/tracking-spool.jsonl).")]


def _spool(path: Path | None) -> Spool:
    """The spool to work on. One named with ``--spool`` must exist (a typo would otherwise
    report "nothing pending" and leave directories and a lock file behind); its lock file is
    enough, as a complete sync deletes the spool itself. The default one may be missing:
    nothing was ever spooled."""
    from allele.tracking.spool import Spool

    sp = Spool(path)
    if path is not None and not sp.path.exists() and not sp.lock_path.exists():
        raise TrackingError(f"no tracking spool at {path} (check --spool; the default is "
                            "<data_dir>/tracking-spool.jsonl)")
    return sp


@app.command("sync")
@errors_as_one_line
def sync(
    spool: SpoolOption = None,
    tracking_uri: Annotated[str | None, typer.Option(
        "--tracking-uri", help="Send every record here instead of where it was meant to go.")
    ] = None,
    retry_rejected: Annotated[bool, typer.Option(
        "--retry-rejected", help="First make the records MLflow rejected before pending again "
        "(`allele tracking status` lists them and why).")] = False,
) -> None:
    """Replay the records spooled while MLflow was unreachable, exactly once."""
    from allele.tracking.mlflow import sync_spool

    report = sync_spool(_spool(spool), tracking_uri, retry_rejected=retry_rejected)
    _console().print((f"re-queued {report.requeued} rejected record(s); " if retry_rejected
                      else "")
                     + f"replayed {report.replayed} record(s), created {report.runs_created} "
                     f"run(s), rejected {report.rejected}, still pending {report.pending}"
                     + (f"; marked {len(report.reaped)} stale run(s) FAILED" if report.reaped
                        else ""), highlight=False)
    for err in report.errors:
        _console().print(f"  {err}", highlight=False, markup=False)
    if report.rejected:
        _console().print("  `allele tracking status` lists the rejected records and why; "
                         "`allele tracking sync --retry-rejected` tries them again",
                         highlight=False, markup=False)
    if not report.complete:
        then = ("run `allele tracking sync` again later" if report.blocked_by == "unavailable"
                else "fix it (or pass the right --tracking-uri) and run `allele tracking sync` "
                "again")
        raise TrackingError(f"{report.pending} record(s) still pending: "
                            f"{report.blocked.rstrip('.')}; {then}")


@app.command("status")
@errors_as_one_line
def status(spool: SpoolOption = None) -> None:
    """How many records wait in the spool, per tracking URI, and why any were rejected."""
    from allele.tracking._common import brief

    sp = _spool(spool)
    state = sp.read()
    out = _console()
    out.print(f"spool {sp.path}: {len(state.pending)} pending, {len(state.done)} done, "
              f"{len(state.rejected)} rejected"
              + (f", {len(state.malformed)} malformed line(s) skipped" if state.malformed
                 else "")
              + (f", {len(state.torn)} torn line(s) skipped (cut short by a crash mid-write: "
                 "those records are lost)" if state.torn else ""), highlight=False, markup=False)
    for target, n in state.pending_by_target().items():
        out.print(f"  {target}: {n} pending", highlight=False, markup=False)
    reasons = Counter(brief(error) or "(no reason recorded)" for error in state.rejected.values())
    for reason, n in reasons.most_common():
        out.print(f"  rejected {n}: {reason}", highlight=False, markup=False)
    if state.rejected:
        out.print("  (`allele tracking sync --retry-rejected` tries them again)",
                  highlight=False, markup=False)
