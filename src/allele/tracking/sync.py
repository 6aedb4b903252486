"""Replaying the spool exactly once (``allele tracking sync``), and reaping runs of dead processes.

:func:`sync_spool` delivers every pending record in order through one
:class:`~allele.tracking.delivery.Applier`. It stops at the first record that cannot go for a
reason that is not the record's: the backend is unreachable, or the target cannot take records at
all (it cannot be opened, the experiment cannot be resolved or is deleted, the database is
broken); that record and the rest stay pending. Only a record MLflow itself refuses (a changed
parameter value, a run whose creation was refused) is marked rejected, and the replay goes on.
Exactly once holds because every record carries an idempotency key marked done once delivered,
runs are found again by their ``allele.run_key`` tag, and metrics carry the event's timestamp
(so MLflow drops a replayed duplicate itself). :func:`reap_stale_runs` marks ``FAILED`` the runs
still ``RUNNING`` whose owner process (host, pid, pid start time) is gone.
"""

from __future__ import annotations

import os
import socket
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from allele.machine import process_alive
from allele.tracking._common import (
    TAG_HOST,
    TAG_NOTE,
    TAG_PID,
    TAG_PID_STARTED,
    TAG_RUN_KEY,
    brief_error,
    error_text,
)
from allele.tracking.delivery import Applier, classify
from allele.tracking.spool import Record, Spool, SpoolState


@dataclass
class SyncReport:
    """What :func:`sync_spool` did."""

    replayed: int = 0
    rejected: int = 0
    pending: int = 0
    runs_created: int = 0
    requeued: int = 0
    """Rejected records made pending again (``retry_rejected``)."""
    reaped: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    """One line each: refused records (grouped by reason), skipped spool lines, reaper errors."""
    blocked: str = ""
    """Why the replay stopped with records pending (one line), else empty."""
    blocked_by: Literal["", "unavailable", "target"] = ""
    """``unavailable``: the backend cannot be reached (try again later); ``target``: it cannot
    take the records at all (fix it, or replay to the right ``tracking_uri``)."""

    @property
    def complete(self) -> bool:
        """True when nothing is left to replay."""
        return self.pending == 0


def sync_spool(
    spool: Spool | str | os.PathLike[str] | None = None,
    tracking_uri: str | None = None,
    *,
    only_target: str | None = None,
    retry_rejected: bool = False,
    _applier: Applier | None = None,
) -> SyncReport:
    """Replay every pending spooled record, in order, exactly once.

    ``tracking_uri`` sends every record there instead of the URI it was recorded for;
    ``only_target`` replays only the records recorded for that URI; ``retry_rejected`` first
    makes the records rejected by earlier replays pending again. Replay stops at the first
    record that cannot go because the backend is unreachable or the target cannot take records
    (the rest stay pending, :attr:`SyncReport.blocked` says why); a record MLflow refuses is
    marked rejected (with the error) and skipped. When nothing is left pending or rejected and
    no malformed line was skipped, the spool file is deleted. Afterwards, runs of dead
    processes still RUNNING in the experiments touched are marked FAILED (see
    :func:`reap_stale_runs`).
    """
    sp = spool if isinstance(spool, Spool) else Spool(spool)
    applier = _applier or Applier()
    report = SyncReport()
    touched: dict[str, set[str]] = {}
    with sp.lock():
        if retry_rejected:
            report.requeued = sp.requeue_rejected(locked=True)
        state = sp.read()
        report.errors.extend(skipped_lines(sp, state))
        for (target, rk), run_id in state.run_ids.items():
            applier.run_ids.setdefault((target, rk), run_id)
        todo = [r for r in state.pending if only_target is None or r.get("target") == only_target]
        _replay(sp, applier, todo, tracking_uri, report, touched)
        final = sp.read()
        still_pending = final.pending_run_keys()
        # everything delivered: the spool starts afresh (a torn line, reported above, holds
        # nothing that could still be delivered; a malformed one is kept to be looked at)
        if not final.pending and not final.rejected and not final.malformed and sp.path.exists():
            sp.clear(locked=True)
    if report.complete:
        for target, experiments in touched.items():
            try:
                ids = [applier.experiment_id(target, e) for e in experiments]
                report.reaped += reap_stale_runs(applier.client(target), ids,
                                                 skip_run_keys=still_pending)
            except Exception as exc:
                report.errors.append(f"could not check for stale runs at {target}: "
                                     f"{brief_error(exc)}")
    return report


def _replay(sp: Spool, applier: Applier, todo: list[Record], tracking_uri: str | None,
            report: SyncReport, touched: dict[str, set[str]]) -> None:
    """Deliver ``todo`` in order (the lock held), marking each done or rejected, until one
    cannot go for a reason that is not its own."""
    refused: dict[str, list[Record]] = {}
    for i, rec in enumerate(todo):
        target = tracking_uri or str(rec["target"])
        try:
            created = applier.apply(rec, target)
        except Exception as exc:
            kind = classify(exc)
            if kind != "refused":
                report.pending = len(todo) - i
                report.blocked_by = kind
                report.blocked = (f"MLflow at {target} is unreachable ({brief_error(exc)})"
                                  if kind == "unavailable" else brief_error(exc))
                break
            sp.mark_rejected(str(rec["key"]), error_text(exc), locked=True)
            report.rejected += 1
            refused.setdefault(brief_error(exc), []).append(rec)
            continue
        if created:
            report.runs_created += 1
            rid = applier.run_ids[(target, str(rec["run"]))]
            sp.note_run_id(target, str(rec["run"]), rid, locked=True)
        sp.mark_done(str(rec["key"]), locked=True)
        if rec["op"] == "artifact":
            sp.drop_artifact(str(rec["key"]))
        report.replayed += 1
        touched.setdefault(target, set()).add(str(rec["experiment"]))
    for reason, recs in refused.items():  # one line per reason, not one per record
        if len(recs) == 1:
            report.errors.append(f"record {recs[0]['key']} ({recs[0]['op']}) refused: {reason}")
        else:
            ops = ", ".join(f"{op} {n}" for op, n in Counter(r["op"] for r in recs).items())
            report.errors.append(f"{len(recs)} records ({ops}) refused: {reason}")


def skipped_lines(sp: Spool, state: SpoolState) -> list[str]:
    """One line per kind of spool line a read skipped (malformed entries, torn writes)."""
    out: list[str] = []
    for lines, what in ((state.malformed, "are not valid spool entries"),
                        (state.torn, "are records cut short by a crash mid-write (lost; `bench "
                                     "run --resume` sends a bench run's cells again)")):
        if lines:
            shown = ", ".join(map(str, lines[:5]))
            more = f" (+{len(lines) - 5} more)" if len(lines) > 5 else ""
            out.append(f"{sp.path}: line(s) {shown}{more} {what} and were skipped")
    return out


def reap_stale_runs(client: Any, experiment_ids: Sequence[str], *,
                    skip_run_keys: Iterable[str] = ()) -> list[str]:
    """Mark FAILED the RUNNING runs of these experiments owned by a dead process on this host.

    Runs with records still waiting in a spool (``skip_run_keys``) are left alone: the replay
    will end them. Returns the ids of the runs marked.
    """
    host = socket.gethostname().replace("'", "")
    skip = set(skip_run_keys)
    runs = client.search_runs(
        list(experiment_ids),
        filter_string=f"attributes.status = 'RUNNING' and tags.`{TAG_HOST}` = '{host}'",
        max_results=1000,
    )
    reaped: list[str] = []
    for run in runs:
        tags = run.data.tags
        if tags.get(TAG_RUN_KEY) in skip:
            continue
        try:
            pid = int(tags.get(TAG_PID, ""))
            started = float(tags.get(TAG_PID_STARTED, "0") or 0)
        except ValueError:
            continue
        if process_alive(pid, started):
            continue
        note = (f"process {pid} on {host} ended without closing this run (crash or kill); "
                f"marked FAILED by Allele at {time.strftime('%Y-%m-%dT%H:%M:%S%z')}")
        client.set_tag(run.info.run_id, TAG_NOTE, note)
        client.set_terminated(run.info.run_id, status="FAILED")
        reaped.append(str(run.info.run_id))
    return reaped
