"""Run bookkeeping beside the results: who runs a run now, and which cells reached a sink.

* A **lease** names the one process that runs (or resumes) a run: host, pid and the pid's start
  time (a pid alone can be reused), with a heartbeat. Taking it is a compare-and-swap in one
  write transaction, so of two ``--resume`` of the same run exactly one wins; whether a holder is
  still alive is decided by the runner (:mod:`allele.bench.lease`), not here.
* A **delivery** records that an outside sink (MLflow: ``mlflow:<uri>#<experiment>``) holds a
  stored cell for sure. A resume re-sends the cells of a run that are stored but not recorded
  as delivered: what a crash left in a sender's memory is not lost.

* A **round** of a cell of several rounds, finished before the cell is: kept as JSON text so
  that a run stopped between a cell's rounds loses none of them (a resume runs the rest). Saving
  the cell deletes its rounds in the same transaction.

The store keeps and reads these rows; it decides nothing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, select, update

from allele.store import schema as S
from allele.store.engine import chunks
from allele.store.model import CellResult, Sample


@dataclass(frozen=True, slots=True)
class Lease:
    """The process holding a run: ``host``, ``pid`` and the pid's start time (epoch seconds)."""

    host: str
    pid: int
    pid_started: float
    acquired_at: float = 0.0
    heartbeat_at: float = 0.0

    def same_holder(self, other: Lease | None) -> bool:
        """Whether ``other`` names the same process (times of acquisition aside)."""
        return (other is not None and self.host == other.host and self.pid == other.pid
                and abs(self.pid_started - other.pid_started) < 1e-3)


_LEASE_COLUMNS = (S.run_leases.c.host, S.run_leases.c.pid, S.run_leases.c.pid_started,
                  S.run_leases.c.acquired_at, S.run_leases.c.heartbeat_at)


def read_lease(conn: Connection, run_pk: int) -> Lease | None:
    """The lease of a run, or None."""
    row = conn.execute(select(*_LEASE_COLUMNS).where(S.run_leases.c.run_pk == run_pk)).first()
    if row is None:
        return None
    return Lease(str(row[0]), int(row[1]), float(row[2]), float(row[3]), float(row[4]))


def swap_lease(conn: Connection, run_pk: int, new: Lease, expected: Lease | None
               ) -> Lease | None:
    """Make ``new`` the holder if the lease is still as the caller saw it (``expected``; None:
    no lease) or gone; return None on success, else the lease found. The caller holds the run's
    row lock (the write transaction), so two callers cannot both win."""
    current = read_lease(conn, run_pk)
    if current is not None:
        if expected is None or not expected.same_holder(current):
            return current
        conn.execute(delete(S.run_leases).where(S.run_leases.c.run_pk == run_pk))
    now = time.time()
    conn.execute(S.run_leases.insert().values(
        run_pk=run_pk, host=new.host[:255], pid=new.pid, pid_started=new.pid_started,
        acquired_at=now, heartbeat_at=now))
    return None


def touch_lease(conn: Connection, run_pk: int, holder: Lease) -> None:
    """Refresh the heartbeat of ``holder``'s lease (nothing if it lost the lease)."""
    rl = S.run_leases.c
    conn.execute(update(S.run_leases)
                 .where(rl.run_pk == run_pk, rl.host == holder.host[:255], rl.pid == holder.pid)
                 .values(heartbeat_at=time.time()))


def release_lease(conn: Connection, run_pk: int, holder: Lease) -> None:
    """Drop the lease of a run if ``holder`` still has it."""
    rl = S.run_leases.c
    conn.execute(delete(S.run_leases)
                 .where(rl.run_pk == run_pk, rl.host == holder.host[:255], rl.pid == holder.pid))


def mark_delivered(conn: Connection, run_pk: int, sink: str, keys: Sequence[str]) -> int:
    """Record that ``sink`` holds these cells of the run; returns how many were new."""
    cd = S.cell_deliveries.c
    wanted = list(dict.fromkeys(keys))
    have: set[str] = set()
    for part in chunks(wanted):
        have.update(r[0] for r in conn.execute(
            select(cd.key).where(cd.run_pk == run_pk, cd.sink == sink, cd.key.in_(part))))
    now = time.time()
    rows = [{"run_pk": run_pk, "sink": sink, "key": k, "delivered_at": now}
            for k in wanted if k not in have]
    if rows:
        conn.execute(S.cell_deliveries.insert(), rows)
    return len(rows)


def undelivered_keys(conn: Connection, run_pk: int, sink: str) -> list[str]:
    """Keys of the run's stored cells that ``sink`` is not recorded to hold, in save order."""
    c, cd = S.cells.c, S.cell_deliveries.c
    delivered = select(cd.key).where(cd.run_pk == run_pk, cd.sink == sink)
    query = (select(c.key).where(c.run_pk == run_pk, c.key.not_in(delivered.scalar_subquery()))
             .order_by(c.pk))
    return [str(r[0]) for r in conn.execute(query)]


def _part_doc(part: CellResult) -> str:
    return json.dumps({
        "target": part.target, "params": part.params, "status": part.status,
        "error": part.error, "started_at": part.started_at, "finished_at": part.finished_at,
        "profile": part.profile, "declared": part.declared,
        "samples": [[x.metric, x.value, x.seed, x.repeat] for x in part.samples]},
        sort_keys=True, allow_nan=True)


def _part_of(key: str, text: str) -> CellResult:
    doc: dict[str, Any] = json.loads(text)
    return CellResult(key=key, target=doc["target"], params=doc["params"], status=doc["status"],
                      samples=[Sample(m, float(v), int(sd), int(rp))
                               for m, v, sd, rp in doc["samples"]],
                      error=doc["error"], started_at=doc["started_at"],
                      finished_at=doc["finished_at"], profile=doc["profile"],
                      declared=doc["declared"])


def save_round(conn: Connection, run_pk: int, part: CellResult, round_: int) -> None:
    """Keep one finished round of a cell (a round saved again replaces the first)."""
    cr = S.cell_rounds.c
    conn.execute(delete(S.cell_rounds).where(cr.run_pk == run_pk, cr.key == part.key,
                                             cr.round == round_))
    conn.execute(S.cell_rounds.insert().values(run_pk=run_pk, key=part.key, round=round_,
                                               part=_part_doc(part), saved_at=time.time()))


def read_rounds(conn: Connection, run_pk: int) -> dict[str, dict[int, CellResult]]:
    """``{key: {round: result}}`` of the rounds kept for the run's unfinished cells."""
    cr = S.cell_rounds.c
    out: dict[str, dict[int, CellResult]] = {}
    for key, round_, text in conn.execute(
            select(cr.key, cr.round, cr.part).where(cr.run_pk == run_pk)
            .order_by(cr.key, cr.round)):
        out.setdefault(str(key), {})[int(round_)] = _part_of(str(key), str(text))
    return out


def drop_rounds(conn: Connection, run_pk: int, keys: Sequence[str]) -> None:
    """Forget the kept rounds of these cells (they are stored whole now)."""
    cr = S.cell_rounds.c
    for part in chunks(list(keys)):
        conn.execute(delete(S.cell_rounds).where(cr.run_pk == run_pk, cr.key.in_(part)))
