"""The result store's tables and the ordered migrations that build them.

The current schema (see ``docs/store.md`` for the full description):

``schema_version(version)``
    One row: the number of the last migration applied.
``runs(pk, id, name, spec_name, target, status, created_at, finished_at, spec, environment,
cell_count, failed_count)``
    One row per run. ``id`` is the short public id, ``name`` is unique per store, ``spec`` and
    ``environment`` are JSON text. ``cell_count`` / ``failed_count`` are kept up to date by every
    write of cells, in the same transaction.
``cells(pk, run_pk, key, target, params, status, error, started_at, finished_at, profile,
n_samples, instr_profile)``
    One row per cell of a run; ``(run_pk, key)`` is unique (no duplicates, ever); a failure is the
    cell's ``status`` plus its ``error`` text. Indexed by ``(key, run_pk)`` for cell histories.
    ``instr_profile`` (version 5) is the zlib-compressed instruction profile of a cell measured
    by the ``instructions`` instrument (per-function callgrind costs and Python call counts; see
    :mod:`allele.bench.instruments.profiles`), NULL otherwise; it is read on request only.
``samples(cell_pk, n, metrics, metric_idx, seeds, repeats, vals)``
    The raw samples of one cell, packed: ``metrics`` is the JSON list of the cell's metric names and
    the four blobs are little-endian arrays of length ``n`` (``uint16`` metric index into
    ``metrics``, ``int64`` seed, ``int64`` repeat, ``float64`` value), in the cell's original sample
    order. Every sample is recovered bit for bit.
``point_blocks(pk, metric, component, labels, t_first, t_last, n, timestamps, vals)``
    Telemetry points, packed: one row per series (metric, component, labels as JSON text) and
    flush, ``timestamps`` and ``vals`` little-endian ``float64`` arrays of length ``n`` (see
    :mod:`allele.store.points`). Indexed by ``(metric, t_last)``; ``pk`` grows with every insert,
    so readers tail the table by it. (Versions 2 to 5 kept one row per point in
    ``metric_points``; migration 6 packs those rows and drops that table.)
``events(pk, ts, source, kind, run_id, payload)``
    The live event log (run and cell lifecycle, samples as they arrive, failures): appended by
    every process that runs something, tailed by ``pk`` (see :mod:`allele.store.live`).
``outbox(pk, note_id, channel, payload, status, attempts, next_at, created_at, delivered_at,
last_error)``
    Notifications waiting for (or done with) delivery, one row per ``(note_id, channel)``
    (see :mod:`allele.store.outbox`).
``alerts(pk, fingerprint, name, source, identity, labels, annotations, severity, state, value,
starts_at, ends_at, updated_at, group_id, acknowledged_at)`` and ``silences(pk, id, matchers,
starts_at, ends_at, comment, created_at)``
    Alerts as last seen (one row per fingerprint; a regression's ``identity`` is its base, head,
    cell and metric) and the silences set from the dashboard (see :mod:`allele.store.alerts`).
``counters(name, value)``
    Named totals that must survive a process (e.g. notifications refused by a full outbox).
``run_leases(run_pk, host, pid, pid_started, acquired_at, heartbeat_at)``
    The process that runs (or resumes) a run, at most one per run.
``cell_deliveries(run_pk, sink, key, delivered_at)``
    Which stored cells an outside sink (``mlflow:<uri>#<experiment>``) holds for sure.
``cell_rounds(run_pk, key, round, part, saved_at)``
    The rounds of a cell of several rounds that finished before the cell did (version 7): each
    round's result as JSON text, one row per ``(run_pk, key, round)``. Saving the cell removes
    its rows in the same transaction, so a cell is in ``cells`` or in rounds here, never both.

A migration is a function of a connection inside an open transaction; :data:`MIGRATIONS` lists
them in order and :func:`migrate` applies the missing ones. Each migration declares its own tables
(a snapshot of that version), so that old migrations keep producing old schemas after the module
level tables below have moved on.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    inspect,
    select,
)

# --- the current schema (what the store's queries use) -------------------------------------------

metadata = MetaData()

_BigPK = BigInteger().with_variant(Integer(), "sqlite")
"""A 64-bit key on PostgreSQL; SQLite needs ``INTEGER PRIMARY KEY`` to alias the rowid."""

schema_version = Table(
    "schema_version", metadata,
    Column("version", Integer, nullable=False),
)

runs = Table(
    "runs", metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("id", String(32), nullable=False, unique=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("spec_name", String(200), nullable=False),
    Column("target", String(500), nullable=False),
    Column("status", String(20), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("finished_at", Float, nullable=True),
    Column("spec", Text, nullable=False),
    Column("environment", Text, nullable=False),
    Column("cell_count", Integer, nullable=False, server_default="0"),
    Column("failed_count", Integer, nullable=False, server_default="0"),
)

cells = Table(
    "cells", metadata,
    Column("pk", Integer, primary_key=True, autoincrement=True),
    Column("run_pk", Integer, ForeignKey("runs.pk", ondelete="CASCADE"), nullable=False),
    Column("key", Text, nullable=False),
    Column("target", String(500), nullable=False),
    Column("params", Text, nullable=False),
    Column("status", String(20), nullable=False),
    Column("error", Text, nullable=True),
    Column("started_at", Float, nullable=False),
    Column("finished_at", Float, nullable=False),
    Column("profile", Text, nullable=True),
    Column("n_samples", Integer, nullable=False),
    Column("instr_profile", LargeBinary, nullable=True),
    UniqueConstraint("run_pk", "key", name="uq_cells_run_key"),
)

samples = Table(
    "samples", metadata,
    Column("cell_pk", Integer, ForeignKey("cells.pk", ondelete="CASCADE"), primary_key=True,
           autoincrement=False),
    Column("n", Integer, nullable=False),
    Column("metrics", Text, nullable=False),
    Column("metric_idx", LargeBinary, nullable=False),
    Column("seeds", LargeBinary, nullable=False),
    Column("repeats", LargeBinary, nullable=False),
    Column("vals", LargeBinary, nullable=False),
)

def _point_blocks(md: MetaData) -> Table:
    pb = Table(
        "point_blocks", md,
        Column("pk", _BigPK, primary_key=True, autoincrement=True),
        Column("metric", String(200), nullable=False),
        Column("component", String(200), nullable=False),
        Column("labels", Text, nullable=False),
        Column("t_first", Float, nullable=False),
        Column("t_last", Float, nullable=False),
        Column("n", Integer, nullable=False),
        Column("timestamps", LargeBinary, nullable=False),
        Column("vals", LargeBinary, nullable=False),
    )
    Index("ix_point_blocks_metric_t_last", pb.c.metric, pb.c.t_last)
    return pb


point_blocks = _point_blocks(metadata)

run_leases = Table(
    "run_leases", metadata,
    Column("run_pk", Integer, ForeignKey("runs.pk", ondelete="CASCADE"), primary_key=True,
           autoincrement=False),
    Column("host", String(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("pid_started", Float, nullable=False),
    Column("acquired_at", Float, nullable=False),
    Column("heartbeat_at", Float, nullable=False),
)

cell_deliveries = Table(
    "cell_deliveries", metadata,
    Column("run_pk", Integer, ForeignKey("runs.pk", ondelete="CASCADE"), nullable=False),
    Column("sink", String(500), nullable=False),
    Column("key", Text, nullable=False),
    Column("delivered_at", Float, nullable=False),
    UniqueConstraint("run_pk", "sink", "key", name="uq_cell_deliveries"),
)


def _cell_rounds(md: MetaData) -> Table:
    return Table(
        "cell_rounds", md,
        Column("run_pk", Integer, ForeignKey("runs.pk", ondelete="CASCADE"), nullable=False),
        Column("key", Text, nullable=False),
        Column("round", Integer, nullable=False),
        Column("part", Text, nullable=False),
        Column("saved_at", Float, nullable=False),
        UniqueConstraint("run_pk", "key", "round", name="uq_cell_rounds"),
    )


cell_rounds = _cell_rounds(metadata)

Index("ix_cells_key_run", cells.c.key, cells.c.run_pk)
Index("ix_runs_created", runs.c.created_at)


def _live_tables(md: MetaData) -> tuple[Table, ...]:
    """The tables of version 3 (live events, outbox, alerts, silences, counters) on ``md``."""
    ev = Table(
        "events", md,
        Column("pk", _BigPK, primary_key=True, autoincrement=True),
        Column("ts", Float, nullable=False),
        Column("source", String(200), nullable=False),
        Column("kind", String(50), nullable=False),
        Column("run_id", String(32), nullable=True),
        Column("payload", Text, nullable=False),
    )
    ob = Table(
        "outbox", md,
        Column("pk", _BigPK, primary_key=True, autoincrement=True),
        Column("note_id", String(300), nullable=False),
        Column("channel", String(100), nullable=False),
        Column("payload", Text, nullable=False),
        Column("status", String(20), nullable=False),
        Column("attempts", Integer, nullable=False, server_default="0"),
        Column("next_at", Float, nullable=False),
        Column("created_at", Float, nullable=False),
        Column("delivered_at", Float, nullable=True),
        Column("last_error", Text, nullable=True),
        UniqueConstraint("note_id", "channel", name="uq_outbox_note_channel"),
    )
    al = Table(
        "alerts", md,
        Column("pk", Integer, primary_key=True, autoincrement=True),
        Column("fingerprint", String(64), nullable=False, unique=True),
        Column("name", String(200), nullable=False),
        Column("source", String(20), nullable=False),
        Column("identity", Text, nullable=True),
        Column("labels", Text, nullable=False),
        Column("annotations", Text, nullable=False),
        Column("severity", String(20), nullable=False),
        Column("state", String(20), nullable=False),
        Column("value", Float, nullable=True),
        Column("starts_at", Float, nullable=False),
        Column("ends_at", Float, nullable=True),
        Column("updated_at", Float, nullable=False),
        Column("group_id", String(64), nullable=True),
        Column("acknowledged_at", Float, nullable=True),
    )
    si = Table(
        "silences", md,
        Column("pk", Integer, primary_key=True, autoincrement=True),
        Column("id", String(40), nullable=False, unique=True),
        Column("matchers", Text, nullable=False),
        Column("starts_at", Float, nullable=False),
        Column("ends_at", Float, nullable=False),
        Column("comment", Text, nullable=False),
        Column("created_at", Float, nullable=False),
    )
    co = Table(
        "counters", md,
        Column("name", String(200), primary_key=True),
        Column("value", Float, nullable=False),
    )
    Index("ix_events_run", ev.c.run_id, ev.c.pk)
    Index("ix_outbox_due", ob.c.status, ob.c.next_at)
    Index("ix_alerts_state", al.c.state, al.c.updated_at)
    return ev, ob, al, si, co


events, outbox, alerts, silences, counters = _live_tables(metadata)


# --- migrations -----------------------------------------------------------------------------------

def _migration_1(conn: Connection) -> None:
    """Version 1: runs, cells and packed samples."""
    md = MetaData()
    r = Table(
        "runs", md,
        Column("pk", Integer, primary_key=True, autoincrement=True),
        Column("id", String(32), nullable=False, unique=True),
        Column("name", String(200), nullable=False, unique=True),
        Column("spec_name", String(200), nullable=False),
        Column("target", String(500), nullable=False),
        Column("status", String(20), nullable=False),
        Column("created_at", Float, nullable=False),
        Column("finished_at", Float, nullable=True),
        Column("spec", Text, nullable=False),
        Column("environment", Text, nullable=False),
        Column("cell_count", Integer, nullable=False, server_default="0"),
        Column("failed_count", Integer, nullable=False, server_default="0"),
    )
    c = Table(
        "cells", md,
        Column("pk", Integer, primary_key=True, autoincrement=True),
        Column("run_pk", Integer, ForeignKey("runs.pk", ondelete="CASCADE"), nullable=False),
        Column("key", Text, nullable=False),
        Column("target", String(500), nullable=False),
        Column("params", Text, nullable=False),
        Column("status", String(20), nullable=False),
        Column("error", Text, nullable=True),
        Column("started_at", Float, nullable=False),
        Column("finished_at", Float, nullable=False),
        Column("profile", Text, nullable=True),
        Column("n_samples", Integer, nullable=False),
        UniqueConstraint("run_pk", "key", name="uq_cells_run_key"),
    )
    Table(
        "samples", md,
        Column("cell_pk", Integer, ForeignKey("cells.pk", ondelete="CASCADE"), primary_key=True,
               autoincrement=False),
        Column("n", Integer, nullable=False),
        Column("metrics", Text, nullable=False),
        Column("metric_idx", LargeBinary, nullable=False),
        Column("seeds", LargeBinary, nullable=False),
        Column("repeats", LargeBinary, nullable=False),
        Column("vals", LargeBinary, nullable=False),
    )
    Index("ix_cells_key_run", c.c.key, c.c.run_pk)
    Index("ix_runs_created", r.c.created_at)
    md.create_all(conn)


def _migration_2(conn: Connection) -> None:
    """Version 2: telemetry points (the store becomes a MetricSink)."""
    md = MetaData()
    mp = Table(
        "metric_points", md,
        Column("pk", _BigPK, primary_key=True, autoincrement=True),
        Column("metric", String(200), nullable=False),
        Column("component", String(200), nullable=False),
        Column("labels", Text, nullable=False),
        Column("timestamp", Float, nullable=False),
        Column("value", Float, nullable=False),
    )
    Index("ix_metric_points_metric_ts", mp.c.metric, mp.c.timestamp)
    md.create_all(conn)


def _migration_3(conn: Connection) -> None:
    """Version 3: the live pipeline (events), the notification outbox, alerts, silences and
    counters."""
    md = MetaData()
    _live_tables(md)
    md.create_all(conn)


def _migration_4(conn: Connection) -> None:
    """Version 4: who runs a run (one lease per run, so two resumes cannot run the same cells)
    and which stored cells reached an outside sink such as MLflow (so a resume re-sends the rest
    after a crash)."""
    md = MetaData()
    Table("runs", md, Column("pk", Integer, primary_key=True))
    Table(
        "run_leases", md,
        Column("run_pk", Integer, ForeignKey("runs.pk", ondelete="CASCADE"), primary_key=True,
               autoincrement=False),
        Column("host", String(255), nullable=False),
        Column("pid", Integer, nullable=False),
        Column("pid_started", Float, nullable=False),
        Column("acquired_at", Float, nullable=False),
        Column("heartbeat_at", Float, nullable=False),
    )
    Table(
        "cell_deliveries", md,
        Column("run_pk", Integer, ForeignKey("runs.pk", ondelete="CASCADE"), nullable=False),
        Column("sink", String(500), nullable=False),
        Column("key", Text, nullable=False),
        Column("delivered_at", Float, nullable=False),
        UniqueConstraint("run_pk", "sink", "key", name="uq_cell_deliveries"),
    )
    md.create_all(conn, tables=[md.tables["run_leases"], md.tables["cell_deliveries"]])


def _migration_5(conn: Connection) -> None:
    """Version 5: each cell's instruction profile (the ``instructions`` instrument, issue 12),
    a nullable compressed blob beside the cProfile text."""
    blob = LargeBinary().compile(dialect=conn.dialect)
    conn.exec_driver_sql(f"ALTER TABLE cells ADD COLUMN instr_profile {blob}")


def _migration_6(conn: Connection) -> None:
    """Version 6: telemetry points packed in blocks (``point_blocks``); the rows of
    ``metric_points`` become one block per series, in their order, and that table goes."""
    import json
    import struct

    md = MetaData()
    pb = _point_blocks(md)
    md.create_all(conn, tables=[pb])
    old = Table("metric_points", MetaData(), autoload_with=conn)
    series: dict[tuple[str, str, str], list[tuple[float, float]]] = {}
    for m, c, lab, ts, v in conn.execute(select(old.c.metric, old.c.component, old.c.labels,
                                                old.c.timestamp, old.c.value)
                                         .order_by(old.c.pk)):
        series.setdefault((m, c, json.dumps(json.loads(lab))), []).append((ts, v))
    rows = [{"metric": m, "component": c, "labels": lab, "t_first": min(t for t, _ in pts),
             "t_last": max(t for t, _ in pts), "n": len(pts),
             "timestamps": struct.pack(f"<{len(pts)}d", *(t for t, _ in pts)),
             "vals": struct.pack(f"<{len(pts)}d", *(v for _, v in pts))}
            for (m, c, lab), pts in series.items()]
    if rows:
        conn.execute(pb.insert(), rows)
    old.drop(conn)


def _migration_7(conn: Connection) -> None:
    """Version 7: the rounds of a cell stored as they finish (``cell_rounds``), so that a run
    stopped between a cell's rounds keeps them and a resume runs only the rest."""
    md = MetaData()
    Table("runs", md, Column("pk", Integer, primary_key=True))
    md.create_all(conn, tables=[_cell_rounds(md)])


Migration = Callable[[Connection], None]

MIGRATIONS: list[Migration] = [_migration_1, _migration_2, _migration_3, _migration_4,
                               _migration_5, _migration_6, _migration_7]
"""Migration ``i`` (0-based) brings a database from version ``i`` to version ``i + 1``."""

LATEST_VERSION = len(MIGRATIONS)


def current_version(conn: Connection) -> int:
    """The schema version of the database (0 for an empty one)."""
    if not inspect(conn).has_table("schema_version"):
        return 0
    row = conn.execute(select(schema_version.c.version)).first()
    return 0 if row is None else int(row[0])


def migrate(conn: Connection, target: int = LATEST_VERSION) -> tuple[int, int]:
    """Apply the missing migrations up to ``target`` inside the caller's write transaction.

    The caller holds the database's write lock (``BEGIN IMMEDIATE`` on SQLite, an advisory lock on
    PostgreSQL), so concurrent openers migrate once. Returns ``(version_before, version_after)``.
    A database newer than this code is left alone and reported by the caller.
    """
    schema_version.create(conn, checkfirst=True)
    before = current_version(conn)
    version = before
    while version < target:
        MIGRATIONS[version](conn)
        version += 1
    if version != before:
        if before == 0:
            conn.execute(schema_version.insert().values(version=version))
        else:
            conn.execute(schema_version.update().values(version=version))
    return before, version


PG_MIGRATION_LOCK = "SELECT pg_advisory_xact_lock(7142201)"
"""The PostgreSQL statement that serialises migrations across processes."""


__all__ = [
    "LATEST_VERSION",
    "MIGRATIONS",
    "alerts",
    "cell_deliveries",
    "cells",
    "counters",
    "current_version",
    "events",
    "metadata",
    "migrate",
    "outbox",
    "point_blocks",
    "run_leases",
    "runs",
    "samples",
    "schema_version",
    "silences",
]
