"""The result store: runs, cells and every raw sample, in SQLite (default) or PostgreSQL.

Open it with :func:`open_store`::

    with open_store() as store:                  # .allele/results.db, or ALLELE_STORE_URL
        run_id = store.create_run("nightly-1", "seed-matrix", "evolution", spec, env)
        store.save_cell(run_id, cell)            # committed at once
        store.finish_run(run_id, "finished")
        record = store.load_run("latest")

The database, its transactions and migrations are :mod:`allele.store.engine`'s; how samples are
packed, :mod:`allele.store.codecs`'; the lazy records it returns, :mod:`allele.store.lazy`'. The
schema is versioned and migrated at open; see ``docs/store.md`` and :mod:`allele.store.schema`.

Reading is built for large runs and long histories: each cell's samples are one packed row, every
blob of a query is decoded by one ``np.frombuffer`` (PostgreSQL rows come in binary format), and
the records returned are lazy where it pays (they behave as, and pickle as, the plain dataclasses
of :mod:`allele.store.model`). :meth:`ResultStore.metric_history` reads one metric of one cell
across runs as arrays, without a Python object per sample.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar, cast, get_args

from sqlalchemy import Connection, Select, Table, delete, func, select, update

from allele import failpoints
from allele.errors import StoreError
from allele.store import schema as S
from allele.store.codecs import clean_text, dumps, pack_cells
from allele.store.engine import IN_CHUNK, Database, chunks, display_url, fetch
from allele.store.histories import histories, loop_counts, metric_history
from allele.store.lazy import (
    CELL_COLUMNS,
    RUN_COLUMNS,
    SAMPLE_COLUMNS,
    build_cells,
    run_info,
    run_infos,
)
from allele.store.leases import (
    Lease,
    drop_rounds,
    mark_delivered,
    read_lease,
    read_rounds,
    release_lease,
    save_round,
    swap_lease,
    touch_lease,
    undelivered_keys,
)
from allele.store.live import Event, append_events
from allele.store.model import (
    CellResult,
    CellStatus,
    MetricHistory,
    RunInfo,
    RunRecord,
    RunStatus,
)
from allele.store.points import MetricPoint, PointBlock, read_points, write_blocks, write_points

__all__ = ["ResultStore", "open_store"]

_RUN_STATUSES: frozenset[str] = frozenset(get_args(RunStatus))
_CELL_STATUSES: frozenset[str] = frozenset(get_args(CellStatus))


def name_taken_error(name: str) -> StoreError:
    """The error of a run name already in the store."""
    return StoreError(f"a run named {name!r} already exists in the store; choose another name")


class ResultStore(Database):
    """Runs, cells and raw samples in one SQL database. Create it with :func:`open_store`.

    Every method is safe to call from several processes at once; a store object may also be shared
    by the threads of one process. After a ``fork`` the child opens fresh connections by itself.
    """

    def __init__(self, url: str, *, read_only: bool = False, create: bool = True) -> None:
        self._run_pk_cache: dict[str, int] = {}
        self._lock = threading.Lock()
        super().__init__(url, read_only=read_only, create=create)

    # -- runs --------------------------------------------------------------------------------------

    def create_run(self, name: str, spec_name: str, target: str, spec: dict[str, Any],
                   environment: dict[str, Any]) -> str:
        """Record a new run (status ``running``) and return its short id.

        ``name`` must be unique in this store (an empty name takes the id); ``'latest'`` is
        reserved. Raises :class:`StoreError` if the name is taken.
        """
        run_id = uuid.uuid4().hex[:12]
        name = name or run_id
        if name == "latest":
            raise StoreError("'latest' is reserved and cannot be a run name")
        row = {
            "id": run_id, "name": name, "spec_name": spec_name, "target": target,
            "status": "running", "created_at": time.time(), "finished_at": None,
            "spec": dumps(spec), "environment": dumps(environment),
            "cell_count": 0, "failed_count": 0,
        }

        def run(conn: Connection) -> int:
            if _name_taken(conn, name):
                raise name_taken_error(name)
            res = conn.execute(S.runs.insert().values(**row))
            return int(cast("tuple[int]", res.inserted_primary_key)[0])

        try:
            pk = self.write_tx(run, what="create a run")
        except StoreError as exc:
            if "unique" in str(exc).lower() or "duplicate" in str(exc).lower():
                raise name_taken_error(name) from None
            raise
        with self._lock:
            self._run_pk_cache[run_id] = pk
        return run_id

    def update_run_spec(self, run_id: str, spec: dict[str, Any]) -> None:
        """Replace a run's spec document (the runner adds what it learns while running, such as
        the metrics its targets declared)."""

        def run(conn: Connection) -> None:
            res = conn.execute(update(S.runs).where(S.runs.c.id == run_id)
                               .values(spec=dumps(spec)))
            if res.rowcount == 0:
                raise StoreError(f"no run with id {run_id!r} in the store")

        self.write_tx(run, what="update a run's spec")

    def finish_run(self, run_id: str, status: RunStatus) -> None:
        """Set a run's final status (``running`` reopens it, e.g. for ``--resume``)."""
        if status not in _RUN_STATUSES:
            raise StoreError(f"unknown run status {status!r}; expected one of "
                             f"{sorted(_RUN_STATUSES)}")
        finished = None if status == "running" else time.time()

        def run(conn: Connection) -> None:
            res = conn.execute(update(S.runs).where(S.runs.c.id == run_id)
                               .values(status=status, finished_at=finished))
            if res.rowcount == 0:
                raise StoreError(f"no run with id {run_id!r} in the store")

        self.write_tx(run, what="finish a run")

    def resolve_run(self, ref: str) -> str:
        """The id of the run named by ``ref``: an id, a unique id prefix, a name, or ``latest``."""
        return self.read_tx(lambda conn: self._resolve(conn, ref)[1], what="resolve a run")

    def _resolve(self, conn: Connection, ref: str) -> tuple[int, str]:
        if ref == "latest":
            row = conn.execute(select(S.runs.c.pk, S.runs.c.id)
                               .order_by(S.runs.c.pk.desc())
                               .limit(1)).first()
            if row is None:
                raise StoreError("the store holds no runs yet, so 'latest' names nothing")
            return int(row[0]), str(row[1])
        for col in (S.runs.c.id, S.runs.c.name):
            row = conn.execute(select(S.runs.c.pk, S.runs.c.id).where(col == ref)).first()
            if row is not None:
                return int(row[0]), str(row[1])
        if len(ref) >= 4 and all(ch in "0123456789abcdef" for ch in ref):
            rows = conn.execute(select(S.runs.c.pk, S.runs.c.id)
                                .where(S.runs.c.id.startswith(ref, autoescape=True))
                                .limit(2)).all()
            if len(rows) == 1:
                return int(rows[0][0]), str(rows[0][1])
            if len(rows) > 1:
                raise StoreError(f"run reference {ref!r} is ambiguous: it prefixes several ids")
        raise StoreError(f"no run {ref!r} in the store (give an id, a name or 'latest'; "
                         "`allele bench list` shows them)")

    def _run_pk(self, conn: Connection, run_id: str, *, lock: bool = False) -> int:
        """The primary key of run ``run_id`` (an exact id), optionally locking its row."""
        if not lock:
            with self._lock:
                cached = self._run_pk_cache.get(run_id)
            if cached is not None:
                return cached
        query = select(S.runs.c.pk).where(S.runs.c.id == run_id)
        if lock:
            query = query.with_for_update()
        row = conn.execute(query).first()
        if row is None:
            raise StoreError(f"no run with id {run_id!r} in the store")
        pk = int(row[0])
        with self._lock:
            self._run_pk_cache[run_id] = pk
        return pk

    def get_run(self, ref: str) -> RunInfo:
        """The header of the run named by ``ref`` (see :meth:`resolve_run`)."""
        def run(conn: Connection) -> RunInfo:
            pk, _ = self._resolve(conn, ref)
            row = conn.execute(select(*RUN_COLUMNS).where(S.runs.c.pk == pk)).one()
            return run_info(row)

        return self.read_tx(run, what="read a run")

    def run_name_taken(self, name: str) -> bool:
        """Whether a run is named ``name`` (what :meth:`create_run` refuses), for commands that
        check it before their work rather than after."""
        return self.read_tx(lambda conn: _name_taken(conn, name), what="read a run name")

    def check_name_free(self, name: str) -> None:
        """:meth:`create_run`'s refusal of a taken name, before any work (a run refused only at
        its creation had already started its telemetry, which stored a stray point)."""
        if self.run_name_taken(name):
            raise name_taken_error(name)

    def list_runs(self, limit: int | None = None) -> list[RunInfo]:
        """Run headers, newest first (the order in which runs were created in this store)."""
        query: Select[Any] = select(*RUN_COLUMNS).order_by(S.runs.c.pk.desc())
        if limit is not None:
            query = query.limit(limit)

        def run(conn: Connection) -> list[RunInfo]:
            return run_infos(conn.execute(query).all())

        return self.read_tx(run, what="list runs")

    # -- cells -------------------------------------------------------------------------------------

    def save_cell(self, run_id: str, cell: CellResult) -> None:
        """Commit one finished cell at once; a key already saved in the run is replaced."""
        self.save_cells(run_id, [cell])

    def save_cells(self, run_id: str, cells: Sequence[CellResult]) -> None:
        """Commit many cells in one transaction with bulk inserts (replacing existing keys)."""
        if not cells:
            return
        latest: dict[str, CellResult] = {}
        for c in cells:
            if c.status not in _CELL_STATUSES:
                raise StoreError(f"cell {c.key!r} has unknown status {c.status!r}; expected one "
                                 f"of {sorted(_CELL_STATUSES)}")
            latest[c.key] = c  # a key given twice: the last one wins
        batch = list(latest.values())
        packed = pack_cells([c.samples for c in batch])
        params = [dumps(c.params) for c in batch]
        keys = [c.key for c in batch]

        def run(conn: Connection) -> None:
            run_pk = self._run_pk(conn, run_id, lock=True)
            existing = self._cell_pks(conn, run_pk, keys)
            old_failed = 0
            if existing:
                old = list(existing.values())
                for part in chunks(old):
                    old_failed += int(conn.execute(
                        select(func.count()).select_from(S.cells)
                        .where(S.cells.c.pk.in_(part), S.cells.c.status != "ok")).scalar() or 0)
                    conn.execute(delete(S.samples).where(S.samples.c.cell_pk.in_(part)))
                    conn.execute(delete(S.cells).where(S.cells.c.pk.in_(part)))
            self._bulk_insert(conn, S.cells, [
                (run_pk, c.key, c.target, p, c.status, clean_text(c.error),
                 float(c.started_at), float(c.finished_at), clean_text(c.profile), pk_[0],
                 c.instr_profile)
                for c, p, pk_ in zip(batch, params, packed, strict=True)
            ])
            new_pks = self._cell_pks(conn, run_pk, keys)
            rows = [(new_pks[c.key], *pk_) for c, pk_ in zip(batch, packed, strict=True)
                    if pk_[0] > 0]
            if rows:
                self._bulk_insert(conn, S.samples, rows)
            # the run's counts move by this batch alone: recounting the run's cells on every
            # commit made a matrix of n cells cost O(n^2) (about 1 ms a cell at 10,000 cells)
            new_failed = sum(c.status != "ok" for c in batch)
            conn.execute(update(S.runs).where(S.runs.c.pk == run_pk).values(
                cell_count=S.runs.c.cell_count + (len(batch) - len(existing)),
                failed_count=S.runs.c.failed_count + (new_failed - old_failed)))
            drop_rounds(conn, run_pk, keys)  # a cell is whole here or in rounds, never both
            failpoints.hit("store.save_cells")  # a test may kill the writer before the commit

        self.write_tx(run, what="save cells")

    _BULK_COLUMNS: ClassVar[dict[str, tuple[str, ...]]] = {
        "cells": ("run_pk", "key", "target", "params", "status", "error", "started_at",
                  "finished_at", "profile", "n_samples", "instr_profile"),
        "samples": ("cell_pk", "n", "metrics", "metric_idx", "seeds", "repeats", "vals"),
    }

    @classmethod
    def _bulk_insert(cls, conn: Connection, table: Table, rows: list[tuple[Any, ...]]) -> None:
        """Insert plain tuples by the driver's fastest path, with no per-row SQLAlchemy work.

        PostgreSQL (psycopg 3): ``COPY ... FROM STDIN`` in binary format inside the current
        transaction. Otherwise one ``executemany`` of a driver-level INSERT. Only text, numbers,
        bytes and NULL go through it, which every driver binds natively.
        """
        dialect = conn.dialect
        quote = dialect.identifier_preparer.quote
        cols = cls._BULK_COLUMNS[table.name]
        col_list = ", ".join(quote(c) for c in cols)
        if dialect.name == "postgresql" and dialect.driver == "psycopg":
            raw: Any = conn.connection.dbapi_connection
            with raw.cursor() as cur, cur.copy(
                    f"COPY {quote(table.name)} ({col_list}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types([cls._PG_TYPES[table.name][c] for c in cols])
                for row in rows:
                    copy.write_row(row)
            return
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        conn.exec_driver_sql(f"INSERT INTO {quote(table.name)} ({col_list}) "
                             f"VALUES ({', '.join([mark] * len(cols))})", rows)

    _PG_TYPES: ClassVar[dict[str, dict[str, str]]] = {
        "cells": {"run_pk": "int4", "key": "text", "target": "varchar", "params": "text",
                  "status": "varchar", "error": "text", "started_at": "float8",
                  "finished_at": "float8", "profile": "text", "n_samples": "int4",
                  "instr_profile": "bytea"},
        "samples": {"cell_pk": "int4", "n": "int4", "metrics": "text", "metric_idx": "bytea",
                    "seeds": "bytea", "repeats": "bytea", "vals": "bytea"},
    }

    def _cell_pks(self, conn: Connection, run_pk: int, keys: Sequence[str]) -> dict[str, int]:
        """``{key: cell pk}`` for those of ``keys`` that the run already holds."""
        base = select(S.cells.c.key, S.cells.c.pk).where(S.cells.c.run_pk == run_pk)
        if len(keys) <= IN_CHUNK:
            rows = conn.execute(base.where(S.cells.c.key.in_(keys))).all()
            return {r[0]: int(r[1]) for r in rows}
        wanted = set(keys)
        return {r[0]: int(r[1]) for r in conn.execute(base).all() if r[0] in wanted}

    def finished_cell_keys(self, run_id: str, *, include_failed: bool = True) -> set[str]:
        """Keys of the cells already saved in a run (for ``--resume``).

        A failed cell has finished too (its failure is recorded); pass ``include_failed=False`` to
        get only the ``ok`` cells, e.g. to retry failures.
        """
        def run(conn: Connection) -> set[str]:
            run_pk = self._run_pk(conn, self._resolve(conn, run_id)[1])
            query = select(S.cells.c.key).where(S.cells.c.run_pk == run_pk)
            if not include_failed:
                query = query.where(S.cells.c.status == "ok")
            return {r[0] for r in conn.execute(query)}

        return self.read_tx(run, what="read finished cells")

    def delete_run(self, run_id: str) -> None:
        """Remove a run with its cells, samples and bookkeeping (e.g. a run that never got a
        cell because its workers could not start)."""
        def run(conn: Connection) -> None:
            pk = self._run_pk(conn, run_id, lock=True)
            cell_pks = select(S.cells.c.pk).where(S.cells.c.run_pk == pk).scalar_subquery()
            conn.execute(delete(S.samples).where(S.samples.c.cell_pk.in_(cell_pks)))
            for table in (S.cells, S.run_leases, S.cell_deliveries, S.cell_rounds):
                conn.execute(delete(table).where(table.c.run_pk == pk))
            conn.execute(delete(S.runs).where(S.runs.c.pk == pk))

        self.write_tx(run, what="delete a run")
        with self._lock:
            self._run_pk_cache.pop(run_id, None)

    # -- leases and deliveries (see allele.store.leases) -------------------------------------------

    def lease(self, run_id: str) -> Lease | None:
        """The process holding run ``run_id`` (an exact id), or None."""
        return self.read_tx(lambda conn: read_lease(conn, self._run_pk(conn, run_id)),
                            what="read a run's lease")

    def swap_lease(self, run_id: str, new: Lease, expected: Lease | None) -> Lease | None:
        """Take the run's lease for ``new`` if it is still ``expected``; None on success, else
        the holder found (see :func:`allele.store.leases.swap_lease`)."""
        return self.write_tx(
            lambda conn: swap_lease(conn, self._run_pk(conn, run_id, lock=True), new, expected),
            what="take a run's lease")

    def touch_lease(self, run_id: str, holder: Lease) -> None:
        """Refresh ``holder``'s heartbeat on the run."""
        self.write_tx(lambda conn: touch_lease(conn, self._run_pk(conn, run_id), holder),
                      what="refresh a run's lease")

    def release_lease(self, run_id: str, holder: Lease) -> None:
        """Give the run's lease up (if ``holder`` still has it)."""
        self.write_tx(lambda conn: release_lease(conn, self._run_pk(conn, run_id), holder),
                      what="release a run's lease")

    def mark_delivered(self, run_id: str, sink: str, keys: Sequence[str]) -> int:
        """Record that ``sink`` holds these stored cells of the run; returns how many are new."""
        if not keys:
            return 0
        return self.write_tx(
            lambda conn: mark_delivered(conn, self._run_pk(conn, run_id), sink, keys),
            what="record delivered cells")

    def undelivered_cells(self, run_id: str, sink: str) -> list[str]:
        """Keys of the run's stored cells not recorded as delivered to ``sink`` (save order)."""
        return self.read_tx(
            lambda conn: undelivered_keys(conn, self._run_pk(conn, run_id), sink),
            what="read undelivered cells")

    def save_round(self, run_id: str, part: CellResult, round_: int) -> None:
        """Keep round ``round_`` of a cell of several rounds until the cell is saved whole
        (:meth:`save_cells` then drops it): a run stopped between rounds keeps it."""
        self.write_tx(lambda conn: save_round(conn, self._run_pk(conn, run_id), part, round_),
                      what="save a cell's round")

    def saved_rounds(self, ref: str) -> dict[str, dict[int, CellResult]]:
        """``{key: {round: result}}``: the rounds kept for the cells of run ``ref`` (id or
        name) not saved whole."""
        def run(conn: Connection) -> dict[str, dict[int, CellResult]]:
            return read_rounds(conn, self._run_pk(conn, self._resolve(conn, ref)[1]))

        return self.read_tx(run, what="read saved rounds")

    def load_run(self, ref: str) -> RunRecord:
        """A whole run: its header and every cell with all raw samples (in save order)."""
        query = (select(*CELL_COLUMNS, *SAMPLE_COLUMNS)
                 .select_from(S.cells.outerjoin(S.samples, S.samples.c.cell_pk == S.cells.c.pk)))

        def run(conn: Connection) -> RunRecord:
            pk, _ = self._resolve(conn, ref)
            info = run_info(conn.execute(select(*RUN_COLUMNS).where(S.runs.c.pk == pk)).one())
            rows = fetch(conn, query.where(S.cells.c.run_pk == pk).order_by(S.cells.c.pk))
            return RunRecord(info=info, cells=list[CellResult](build_cells(rows, 0)))

        return self.read_tx(run, what="load a run")

    def instruction_profiles(self, ref: str, keys: Sequence[str] | None = None
                             ) -> dict[str, bytes]:
        """``{cell key: compressed instruction profile}`` of the run named by ``ref``, for the
        cells (of ``keys``, or all) that the ``instructions`` instrument measured (see
        :mod:`allele.bench.instruments.profiles`). Loading a run leaves them out: they are
        tens of kilobytes each and only ``bench explain`` and the report read them. A store
        older than the column (schema version 5, opened read-only, so not migrated) has none."""
        if self.opened_version < 5:
            return {}

        def run(conn: Connection) -> dict[str, bytes]:
            pk, _ = self._resolve(conn, ref)
            query = (select(S.cells.c.key, S.cells.c.instr_profile)
                     .where(S.cells.c.run_pk == pk, S.cells.c.instr_profile.is_not(None)))
            rows = conn.execute(query).all()
            wanted = set(keys) if keys is not None else None
            return {str(k): bytes(v) for k, v in rows if wanted is None or k in wanted}

        return self.read_tx(run, what="read instruction profiles")

    def cell_history(self, key: str, metric: str | None = None,
                     limit: int | None = None) -> list[tuple[RunInfo, CellResult]]:
        """The cell ``key`` in every run that holds it, oldest run first.

        ``metric`` keeps only that metric's samples and only the cells that have some;
        ``limit`` keeps the most recent ``limit`` runs (still returned oldest first).
        """
        query = (select(*RUN_COLUMNS, *CELL_COLUMNS, *SAMPLE_COLUMNS)
                 .select_from(S.cells.join(S.runs, S.runs.c.pk == S.cells.c.run_pk)
                              .outerjoin(S.samples, S.samples.c.cell_pk == S.cells.c.pk))
                 .where(S.cells.c.key == key)
                 .order_by(S.cells.c.run_pk.desc()))
        if metric is not None:
            # SQL cannot look inside the packed arrays, but the metric list is plain JSON text.
            query = query.where(S.samples.c.metrics.contains(json.dumps(metric), autoescape=True))
        if limit is not None:
            query = query.limit(limit)
        width = len(RUN_COLUMNS)

        def run(conn: Connection) -> list[tuple[RunInfo, CellResult]]:
            rows = fetch(conn, query)
            rows.reverse()
            cells = build_cells(rows, width, metric)
            if metric is not None:  # only the cells that hold samples of it
                has = [i for i, c in enumerate(cells) if c._hi > c._lo]
                rows = [rows[i] for i in has]
                cells = [cells[i] for i in has]
            return list(zip(run_infos(rows), cells, strict=True))

        return self.read_tx(run, what="read a cell history")

    def metric_history(self, key: str, metric: str,
                       limit: int | None = None) -> MetricHistory:
        """One metric of the cell ``key`` across runs, as numpy arrays (oldest run first).

        The same cells as ``cell_history(key, metric, limit)`` (runs whose cell has samples of
        ``metric``), without building a RunInfo, CellResult or Sample per row: the fast path for
        long series.
        """
        return metric_history(self, key, metric, limit)

    def histories(self, run_ids: Sequence[str], *,
                  statuses: Sequence[str] = ("ok",)) -> list[MetricHistory]:
        """Every (cell, metric) series over the runs ``run_ids``, column-wise, sorted by cell key
        and metric; in each, the runs oldest first (creation time, then id). Only cells whose
        status is in ``statuses``. One query for all of them: what change-point detection and
        run-to-run noise read (see :mod:`allele.bench.history`)."""
        return histories(self, run_ids, statuses)

    def loop_counts(self, run_id: str, timed_metric: str = "wall_s",
                    loops_metric: str = "loops") -> dict[str, int]:
        """The inner-loop count each ``ok`` cell of ``run_id`` with ``timed_metric`` samples
        used (its largest stored ``loops_metric``, 1 when none was stored), without decoding
        its other samples: what a new run of the spec reads at start-up
        (:func:`allele.bench.runner.loops_of_previous_run`)."""
        return loop_counts(self, run_id, timed_metric, loops_metric)

    # -- telemetry ---------------------------------------------------------------------------------

    def write_metric_points(self, points: Iterable[MetricPoint]) -> None:
        """Append telemetry points in one transaction (``allele.observe.MetricSink``)."""
        write_points(self, points)

    def write_metric_blocks(self, blocks: Sequence[PointBlock]) -> None:
        """Append packed telemetry blocks in one transaction, one row each (what
        :meth:`allele.observe.Telemetry.flush` uses when the sink offers it)."""
        write_blocks(self, blocks)

    def append_events(self, events: Iterable[Event]) -> int:
        """Append live events in one transaction (see :mod:`allele.store.live`)."""
        return append_events(self, events)

    def read_metric_points(self, metric: str, component: str | None = None,
                           since: float | None = None) -> list[MetricPoint]:
        """Points of one metric (optionally one component, from ``since`` on), oldest first."""
        return read_points(self, metric, component, since)

    def __reduce__(self) -> tuple[Callable[..., ResultStore], tuple[str, bool, bool]]:
        # A store travels to worker processes as its URL and is reopened there.
        return (_reopen, (self.url, self.read_only, self.create))

    def __repr__(self) -> str:
        return f"ResultStore({display_url(self._url)!r})"


def _reopen(url: str, read_only: bool, create: bool = True) -> ResultStore:
    return ResultStore(url, read_only=read_only, create=create)


def open_store(url: str | None = None, *, read_only: bool = False,
               create: bool = True) -> ResultStore:
    """Open (creating and migrating as needed) the result store at ``url``: a database URL, or a
    filesystem path, which means the SQLite file at that path.

    ``None`` means the configured store: ``ALLELE_STORE_URL`` / ``store_url`` in ``allele.toml``,
    or the SQLite file ``.allele/results.db`` in the working directory. ``read_only`` opens an
    existing store for reading only: nothing is created, migrated or written; ``create=False``
    opens an existing store that may be migrated and written, but is never created (a missing
    SQLite file is a :class:`StoreError` naming it; see :mod:`allele.store.engine`).
    """
    if url is None:
        from allele.config import load_settings

        url = load_settings().resolved_store_url
    return ResultStore(url, read_only=read_only, create=create)


def _name_taken(conn: Connection, name: str) -> bool:
    return conn.execute(select(S.runs.c.pk).where(S.runs.c.name == name)).first() is not None
