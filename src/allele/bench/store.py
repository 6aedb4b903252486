"""The result store: runs, cells and every raw sample, in SQLite (default) or PostgreSQL.

Open it with :func:`open_store`::

    with open_store() as store:                  # .allele/results.db, or ALLELE_STORE_URL
        run_id = store.create_run("nightly-1", "seed-matrix", "evolution", spec, env)
        store.save_cell(run_id, cell)            # committed at once
        store.finish_run(run_id, "finished")
        record = store.load_run("latest")

SQLite runs in WAL mode with a long busy timeout and every write transaction starts with
``BEGIN IMMEDIATE``, so several processes (runner workers, two concurrent runs) can write to one
file at once without losing anything and without "database is locked" errors; a bounded retry
covers the rare lock error that still escapes. PostgreSQL is used by URL
(``postgresql+psycopg://user:pass@host/db``). The schema is versioned and migrated at open; see
``docs/store.md`` and :mod:`allele.bench._schema`.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import random
import threading
import time
import types
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import repeat
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, cast, get_args

import numpy as np
import numpy.typing as npt
from sqlalchemy import (
    Connection,
    Engine,
    Select,
    Table,
    create_engine,
    delete,
    event,
    func,
    select,
    update,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    NoSuchModuleError,
    OperationalError,
    SQLAlchemyError,
)

from allele.bench import _schema as S
from allele.bench.model import (
    CellResult,
    CellStatus,
    RunInfo,
    RunRecord,
    RunStatus,
    Sample,
)
from allele.errors import StoreError

if TYPE_CHECKING:
    from allele.observe.metrics import MetricPoint

__all__ = ["MetricHistory", "ResultStore", "open_store"]

T = TypeVar("T")

_RUN_STATUSES: frozenset[str] = frozenset(get_args(RunStatus))
_CELL_STATUSES: frozenset[str] = frozenset(get_args(CellStatus))

_BUSY_TIMEOUT_MS = 60_000
_WRITE_RETRIES = 8
_IN_CHUNK = 500  # stays below SQLite's bound-parameter limit


# --- telemetry points -----------------------------------------------------------------------------

def _labels_json(labels: Any) -> str:
    """``MetricPoint.labels`` (a tuple of ``(name, value)`` pairs; a mapping is accepted too) as
    a JSON list of pairs, order kept."""
    pairs = labels.items() if isinstance(labels, Mapping) else (labels or ())
    return json.dumps([[str(k), str(v)] for k, v in pairs])


# --- packing samples ------------------------------------------------------------------------------

Packed = tuple[int, str, bytes, bytes, bytes, bytes]
"""A cell's samples as stored: ``(n, metrics_json, metric_idx, seeds, repeats, vals)``."""

_SAMPLE_FIELDS = ("metric", "value", "seed", "repeat")


def _fast_construction_ok() -> bool:
    """Whether Sample is a plain slotted dataclass that :func:`_make_samples` may fill directly."""
    try:
        names = tuple(f.name for f in dataclasses.fields(Sample))
    except TypeError:  # pragma: no cover - Sample stopped being a dataclass
        return False
    return (names == _SAMPLE_FIELDS and not hasattr(Sample, "__post_init__")
            and all(isinstance(getattr(Sample, n, None), types.MemberDescriptorType)
                    for n in names))


_FAST_SAMPLES = _fast_construction_ok()


def _make_samples(metrics: Iterable[str], vals: list[float], seeds: list[int],
                  reps: list[int]) -> list[Sample]:
    """Sample objects for parallel columns, built in C loops.

    Loading a run creates hundreds of thousands of samples. Calling the frozen dataclass'
    ``__init__`` for each costs about a microsecond; creating bare instances with
    ``object.__new__`` and filling each slot through its member descriptor with ``map`` gives equal
    objects several times faster (only when Sample is a plain slotted dataclass without
    ``__post_init__``, checked at import). The cyclic garbage collector is paused meanwhile: these
    objects hold no cycles, and its full passes over a growing heap would cost more than the work.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        if not _FAST_SAMPLES:
            return list(map(Sample, metrics, vals, seeds, reps))
        new = cast("Callable[[type[Sample]], Any]", object.__new__)
        objs: list[Any] = list(map(new, repeat(Sample, len(vals))))
        columns: tuple[Iterable[Any], ...] = (metrics, vals, seeds, reps)
        for name, column in zip(_SAMPLE_FIELDS, columns, strict=True):
            deque(map(getattr(Sample, name).__set__, objs, column), maxlen=0)
        return objs
    finally:
        if was_enabled:
            gc.enable()


def _layout(names: Sequence[str]) -> tuple[str, bytes]:
    """The metric list (JSON, first-appearance order) and per-sample index array of a cell."""
    order: dict[str, int] = {}
    for name in dict.fromkeys(names):
        if not isinstance(name, str):
            raise StoreError(f"sample metric names must be strings, got {name!r}")
        order[name] = len(order)
    if len(order) > 65535:
        raise StoreError("a cell cannot hold more than 65535 distinct metrics")
    idx = np.array([order[m] for m in names], dtype="<u2")
    return json.dumps(list(order)), idx.tobytes()


def _pack_cells(cells: Sequence[Sequence[Sample]]) -> list[Packed]:
    """Pack the samples of many cells at once (one numpy conversion per column for all)."""
    counts = [len(c) for c in cells]
    flat = [s for c in cells for s in c]
    try:
        metrics = [s.metric for s in flat]
        vals = np.array([s.value for s in flat], dtype="<f8")
        seeds = np.array([s.seed for s in flat], dtype="<i8")
        reps = np.array([s.repeat for s in flat], dtype="<i8")
    except AttributeError as exc:
        raise StoreError(f"cannot store samples: {exc}") from None
    except (TypeError, ValueError, OverflowError) as exc:
        raise StoreError(f"cannot store samples: {exc} (seeds and repeats must be 64-bit "
                         "integers and values numbers)") from None
    layouts: dict[tuple[str, ...], tuple[str, bytes]] = {}
    out: list[Packed] = []
    start = 0
    for n in counts:
        end = start + n
        names = tuple(metrics[start:end])
        lay = layouts.get(names)
        if lay is None:
            lay = layouts[names] = _layout(names)
        out.append((n, lay[0], lay[1], seeds[start:end].tobytes(), reps[start:end].tobytes(),
                    vals[start:end].tobytes()))
        start = end
    return out


def _pack_samples(samples: Sequence[Sample]) -> Packed:
    """One cell's samples as ``(n, metrics_json, metric_idx, seeds, repeats, vals)``."""
    return _pack_cells([samples])[0]


SampleRow = tuple[Any, Any, Any, Any, Any, Any]
"""A ``samples`` row as selected: n (None when the cell has none), metrics, and the four blobs."""


@dataclasses.dataclass(slots=True)
class _Columns:
    """Decoded samples of many cells: flat arrays plus each cell's sample count."""

    counts: list[int]
    names: list[str]
    gidx: npt.NDArray[np.intp] | None  # index into ``names``; None once filtered to one metric
    vals: npt.NDArray[np.float64]
    seeds: npt.NDArray[np.int64]
    reps: npt.NDArray[np.int64]


def _decode(rows: Sequence[SampleRow], only: str | None = None) -> _Columns:
    """Decode the packed samples of many cells at once (optionally keeping one metric).

    Each column's blobs are joined and read by one ``np.frombuffer``; the cells' local metric
    indexes become global ones through one lookup table built per distinct metric list.
    """
    counts = [int(r[0]) if r[0] else 0 for r in rows]
    present = [r for r, n in zip(rows, counts, strict=True) if n]
    names: dict[str, int] = {}
    lut_offset: dict[str, int] = {}
    lut: list[int] = []
    cell_offsets: list[int] = []
    for r in present:
        off = lut_offset.get(r[1])
        if off is None:
            off = lut_offset[r[1]] = len(lut)
            lut.extend(names.setdefault(m, len(names)) for m in json.loads(r[1]))
        cell_offsets.append(off)
    local = np.frombuffer(b"".join(r[2] for r in present), dtype="<u2").astype(np.intp)
    gidx = np.asarray(lut, dtype=np.intp)[
        local + np.repeat(np.asarray(cell_offsets, dtype=np.intp), [n for n in counts if n])]
    vals = np.frombuffer(b"".join(r[5] for r in present), dtype="<f8")
    seeds = np.frombuffer(b"".join(r[3] for r in present), dtype="<i8")
    reps = np.frombuffer(b"".join(r[4] for r in present), dtype="<i8")
    if only is None:
        return _Columns(counts, list(names), gidx, vals, seeds, reps)
    gid = names.get(only, -1)
    keep = gidx == gid
    kept_before = np.concatenate(([0], np.cumsum(keep)))
    bounds = np.concatenate(([0], np.cumsum(counts, dtype=np.int64)))
    kept = (kept_before[bounds[1:]] - kept_before[bounds[:-1]]).tolist()
    return _Columns(kept, [only], None, vals[keep], seeds[keep], reps[keep])


def _unpack_cells(rows: Sequence[SampleRow], only: str | None = None) -> list[list[Sample]]:
    """The exact inverse of :func:`_pack_cells`, optionally keeping only one metric."""
    cols = _decode(rows, only)
    metric_col: Iterable[str]
    if cols.gidx is None:
        metric_col = repeat(cols.names[0], len(cols.vals))
    else:
        metric_col = np.array(cols.names, dtype=object)[cols.gidx].tolist()
    flat = _make_samples(metric_col, cols.vals.tolist(), cols.seeds.tolist(), cols.reps.tolist())
    out: list[list[Sample]] = []
    start = 0
    for n in cols.counts:
        out.append(flat[start:start + n])
        start += n
    return out


@dataclasses.dataclass(frozen=True, slots=True)
class MetricHistory:
    """One metric of one cell across runs, as arrays, oldest run first.

    Run ``i``'s raw samples are ``values[offsets[i]:offsets[i + 1]]`` (with their ``seeds`` and
    ``repeats``), in the order they were saved. Built without one Python object per sample, for
    analyses over long histories (change points, trends).
    """

    key: str
    metric: str
    run_ids: list[str]
    run_names: list[str]
    created_at: npt.NDArray[np.float64]
    statuses: list[str]
    offsets: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]
    seeds: npt.NDArray[np.int64]
    repeats: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.run_ids)

    def run_values(self, i: int) -> npt.NDArray[np.float64]:
        """The samples of the ``i``-th run (oldest first)."""
        return self.values[self.offsets[i]:self.offsets[i + 1]]

    def medians(self) -> npt.NDArray[np.float64]:
        """The median of each run's samples."""
        return np.array([np.median(self.run_values(i)) for i in range(len(self))],
                        dtype=np.float64)


def _unpack_samples(n: int, metrics_json: str, idx_b: bytes, seeds_b: bytes, reps_b: bytes,
                    vals_b: bytes, only: str | None = None) -> list[Sample]:
    """One cell's samples back from :func:`_pack_samples` (optionally one metric only)."""
    return _unpack_cells([(n, metrics_json, idx_b, seeds_b, reps_b, vals_b)], only)[0]


# --- helpers --------------------------------------------------------------------------------------

_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str)


def _dumps(obj: Any) -> str:
    return _ENCODER.encode(obj)


def _clean_text(text: str | None) -> str | None:
    """Free text (an error, a profile) made storable everywhere.

    A crashed cell's output can hold NUL characters (PostgreSQL text refuses them) or lone
    surrogates from undecodable bytes (not UTF-8); both become visible backslash escapes.
    """
    if text is None:
        return None
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _is_lock_error(exc: BaseException) -> bool:
    msg = str(getattr(exc, "orig", exc)).lower()
    return any(word in msg for word in ("locked", "busy", "deadlock detected",
                                        "could not serialize"))


def _chunks(items: Sequence[T], size: int = _IN_CHUNK) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


_RUN_COLUMNS = (S.runs.c.pk, S.runs.c.id, S.runs.c.name, S.runs.c.spec_name, S.runs.c.target,
                S.runs.c.status, S.runs.c.created_at, S.runs.c.finished_at, S.runs.c.spec,
                S.runs.c.environment, S.runs.c.cell_count, S.runs.c.failed_count)
_CELL_COLUMNS = (S.cells.c.key, S.cells.c.target, S.cells.c.params, S.cells.c.status,
                 S.cells.c.error, S.cells.c.started_at, S.cells.c.finished_at, S.cells.c.profile)
_SAMPLE_COLUMNS = (S.samples.c.n, S.samples.c.metrics, S.samples.c.metric_idx, S.samples.c.seeds,
                   S.samples.c.repeats, S.samples.c.vals)


def _run_info(row: Sequence[Any]) -> RunInfo:
    """A RunInfo from a row laid out as ``_RUN_COLUMNS`` (the pk first)."""
    return RunInfo(
        id=row[1], name=row[2], spec_name=row[3], target=row[4], status=row[5],
        created_at=float(row[6]), finished_at=None if row[7] is None else float(row[7]),
        spec=json.loads(row[8]), environment=json.loads(row[9]),
        cell_count=int(row[10]), failed_count=int(row[11]),
    )


def _cells(rows: Sequence[Sequence[Any]], at: int, only: str | None = None) -> list[CellResult]:
    """CellResults from rows holding ``_CELL_COLUMNS`` + ``_SAMPLE_COLUMNS`` from column ``at``."""
    smp = _unpack_cells([cast("SampleRow", tuple(r[at + 8:at + 14])) for r in rows], only)
    loads = json.loads
    return [CellResult(key=r[at], target=r[at + 1], params=loads(r[at + 2]), status=r[at + 3],
                       samples=sm, error=r[at + 4], started_at=float(r[at + 5]),
                       finished_at=float(r[at + 6]), profile=r[at + 7])
            for r, sm in zip(rows, smp, strict=True)]


def _display(url: URL) -> str:
    return url.render_as_string(hide_password=True)


# --- the store ------------------------------------------------------------------------------------

class ResultStore:
    """Runs, cells and raw samples in one SQL database. Create it with :func:`open_store`.

    Every method is safe to call from several processes at once; a store object may also be shared
    by the threads of one process. After a ``fork`` the child opens fresh connections by itself.
    """

    def __init__(self, url: str) -> None:
        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            raise StoreError(f"invalid store URL {url!r}: {exc}") from None
        self.url: str = url
        self._url = parsed
        self._is_sqlite = parsed.get_backend_name() == "sqlite"
        self._is_postgres = parsed.get_backend_name() == "postgresql"
        self._run_pk_cache: dict[str, int] = {}
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._closed = False
        self._engine = self._make_engine()
        try:
            self._open()
        except BaseException:
            self._engine.dispose()
            raise

    # -- setup -------------------------------------------------------------------------------------

    def _make_engine(self) -> Engine:
        url = self._url
        kwargs: dict[str, Any] = {}
        if self._is_sqlite:
            database = url.database or ""
            uri = database.startswith("file:")
            in_memory = (database in ("", ":memory:") or database.startswith("file::memory:")
                         or "mode=memory" in database)
            if not in_memory and not uri:  # a SQLite URI (file:...?uri=true) is used as is
                path = Path(database)
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise StoreError(f"cannot create the store directory {path.parent}: "
                                     f"{exc}") from None
            kwargs["connect_args"] = {"timeout": _BUSY_TIMEOUT_MS / 1000,
                                      "check_same_thread": False}
        elif self._is_postgres:
            kwargs["pool_pre_ping"] = True
            kwargs["connect_args"] = {"connect_timeout": 10}
        try:
            engine = create_engine(url, **kwargs)
        except (NoSuchModuleError, ArgumentError, ImportError) as exc:
            raise StoreError(f"unsupported store URL {_display(url)!r}: {exc}") from None
        if self._is_sqlite:
            self._install_sqlite_hooks(engine, in_memory)
        return engine

    @staticmethod
    def _install_sqlite_hooks(engine: Engine, in_memory: bool) -> None:
        """pysqlite's own transaction handling is switched off and replaced by explicit BEGINs.

        This is SQLAlchemy's documented recipe for SQLite transactions; on top of it, a write
        transaction (the ``allele_write`` execution option) starts with ``BEGIN IMMEDIATE``, which
        takes the write lock up front (waiting up to the busy timeout) instead of failing with
        "database is locked" when a deferred read transaction tries to upgrade.
        """

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            try:
                cur.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
                if not in_memory:
                    cur.execute("PRAGMA journal_mode = WAL")
                cur.execute("PRAGMA synchronous = NORMAL")
                cur.execute("PRAGMA foreign_keys = ON")
            finally:
                cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            if conn.get_execution_options().get("allele_write"):
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                conn.exec_driver_sql("BEGIN")

    def _open(self) -> None:
        """Check the schema version; migrate (under the write lock) only when it is behind.

        An up-to-date store is opened with a read transaction only, so opening never waits for
        writers and works on a read-only copy.
        """
        version = self._read(S.current_version, what="open the store")
        if version < S.LATEST_VERSION:
            def run(conn: Connection) -> tuple[int, int]:
                if self._is_postgres:
                    conn.exec_driver_sql(S.PG_MIGRATION_LOCK)
                return S.migrate(conn)

            version = self._write(run, what="open the store")[0]
        if version > S.LATEST_VERSION:
            raise StoreError(f"the store at {_display(self._url)} has schema version {version}, "
                             f"newer than this Allele understands ({S.LATEST_VERSION})")

    # -- transactions ------------------------------------------------------------------------------

    def _check_usable(self) -> None:
        if self._closed:
            raise StoreError("the result store is closed")
        pid = os.getpid()
        if pid != self._pid:
            # Connections inherited through fork belong to the parent: drop them, do not close.
            self._engine.dispose(close=False)
            self._pid = pid

    def _write(self, fn: Callable[[Connection], T], what: str) -> T:
        """Run ``fn`` in one write transaction (``BEGIN IMMEDIATE`` on SQLite)."""
        return self._transaction(fn, what, write=True)

    def _read(self, fn: Callable[[Connection], T], what: str) -> T:
        """Run ``fn`` in one read transaction (a consistent snapshot)."""
        return self._transaction(fn, what, write=False)

    def _transaction(self, fn: Callable[[Connection], T], what: str, *, write: bool) -> T:
        """Run ``fn`` in a transaction, retrying a bounded number of times on lock contention.

        With WAL and the busy timeout, SQLite waits for the lock by itself; the retry (jittered
        exponential backoff) covers what still escapes: "database is locked" / "busy", and
        PostgreSQL's deadlock or serialization failures. The whole transaction is rolled back
        before a retry, so ``fn`` runs again from scratch.
        """
        self._check_usable()
        delay = 0.01
        for attempt in range(_WRITE_RETRIES):
            try:
                with self._engine.connect() as conn:
                    if write:
                        conn.execution_options(allele_write=True)
                    with conn.begin():
                        return fn(conn)
            except OperationalError as exc:
                if _is_lock_error(exc) and attempt < _WRITE_RETRIES - 1:
                    time.sleep(delay * (1 + random.random()))
                    delay = min(delay * 2, 1.0)
                    continue
                raise self._error(exc, what) from None
            except StoreError:
                raise
            except SQLAlchemyError as exc:
                raise self._error(exc, what) from None
            except UnicodeError as exc:
                raise StoreError(f"cannot {what}: text that is not valid Unicode ({exc})") from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _error(self, exc: SQLAlchemyError, what: str) -> StoreError:
        detail = str(exc.orig) if isinstance(exc, DBAPIError) else str(exc)
        detail = detail.strip().splitlines()[0] if detail.strip() else type(exc).__name__
        if isinstance(exc, OperationalError) and not self._is_sqlite and (
                "connect" in detail.lower() or "connection" in detail.lower()):
            return StoreError(f"cannot reach the result store at {_display(self._url)}: {detail}")
        return StoreError(f"cannot {what} ({_display(self._url)}): {detail}")

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
            "spec": _dumps(spec), "environment": _dumps(environment),
            "cell_count": 0, "failed_count": 0,
        }

        def run(conn: Connection) -> int:
            taken = conn.execute(select(S.runs.c.pk).where(S.runs.c.name == name)).first()
            if taken is not None:
                raise StoreError(f"a run named {name!r} already exists in the store; "
                                 "choose another name")
            res = conn.execute(S.runs.insert().values(**row))
            return int(cast("tuple[int]", res.inserted_primary_key)[0])

        try:
            pk = self._write(run, what="create a run")
        except StoreError as exc:
            if "unique" in str(exc).lower() or "duplicate" in str(exc).lower():
                raise StoreError(f"a run named {name!r} already exists in the store; "
                                 "choose another name") from None
            raise
        with self._lock:
            self._run_pk_cache[run_id] = pk
        return run_id

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

        self._write(run, what="finish a run")

    def resolve_run(self, ref: str) -> str:
        """The id of the run named by ``ref``: an id, a unique id prefix, a name, or ``latest``."""
        return self._read(lambda conn: self._resolve(conn, ref)[1], what="resolve a run")

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
            row = conn.execute(select(*_RUN_COLUMNS).where(S.runs.c.pk == pk)).one()
            return _run_info(row)

        return self._read(run, what="read a run")

    def list_runs(self, limit: int | None = None) -> list[RunInfo]:
        """Run headers, newest first (the order in which runs were created in this store)."""
        query: Select[Any] = select(*_RUN_COLUMNS).order_by(S.runs.c.pk.desc())
        if limit is not None:
            query = query.limit(limit)

        def run(conn: Connection) -> list[RunInfo]:
            return [_run_info(r) for r in conn.execute(query)]

        return self._read(run, what="list runs")

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
        packed = _pack_cells([c.samples for c in batch])
        params = [_dumps(c.params) for c in batch]
        keys = [c.key for c in batch]

        def run(conn: Connection) -> None:
            run_pk = self._run_pk(conn, run_id, lock=True)
            existing = self._cell_pks(conn, run_pk, keys)
            if existing:
                old = list(existing.values())
                for part in _chunks(old):
                    conn.execute(delete(S.samples).where(S.samples.c.cell_pk.in_(part)))
                    conn.execute(delete(S.cells).where(S.cells.c.pk.in_(part)))
            self._bulk_insert(conn, S.cells, [
                (run_pk, c.key, c.target, p, c.status, _clean_text(c.error),
                 float(c.started_at), float(c.finished_at), _clean_text(c.profile), pk_[0])
                for c, p, pk_ in zip(batch, params, packed, strict=True)
            ])
            new_pks = self._cell_pks(conn, run_pk, keys)
            rows = [(new_pks[c.key], *pk_) for c, pk_ in zip(batch, packed, strict=True)
                    if pk_[0] > 0]
            if rows:
                self._bulk_insert(conn, S.samples, rows)
            self._recount(conn, run_pk)

        self._write(run, what="save cells")

    _BULK_COLUMNS: ClassVar[dict[str, tuple[str, ...]]] = {
        "cells": ("run_pk", "key", "target", "params", "status", "error", "started_at",
                  "finished_at", "profile", "n_samples"),
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
                  "finished_at": "float8", "profile": "text", "n_samples": "int4"},
        "samples": {"cell_pk": "int4", "n": "int4", "metrics": "text", "metric_idx": "bytea",
                    "seeds": "bytea", "repeats": "bytea", "vals": "bytea"},
    }

    def _cell_pks(self, conn: Connection, run_pk: int, keys: Sequence[str]) -> dict[str, int]:
        """``{key: cell pk}`` for those of ``keys`` that the run already holds."""
        base = select(S.cells.c.key, S.cells.c.pk).where(S.cells.c.run_pk == run_pk)
        if len(keys) <= _IN_CHUNK:
            rows = conn.execute(base.where(S.cells.c.key.in_(keys))).all()
            return {r[0]: int(r[1]) for r in rows}
        wanted = set(keys)
        return {r[0]: int(r[1]) for r in conn.execute(base).all() if r[0] in wanted}

    @staticmethod
    def _recount(conn: Connection, run_pk: int) -> None:
        total = (select(func.count()).select_from(S.cells)
                 .where(S.cells.c.run_pk == run_pk).scalar_subquery())
        failed = (select(func.count()).select_from(S.cells)
                  .where(S.cells.c.run_pk == run_pk, S.cells.c.status != "ok")
                  .scalar_subquery())
        conn.execute(update(S.runs).where(S.runs.c.pk == run_pk)
                     .values(cell_count=total, failed_count=failed))

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

        return self._read(run, what="read finished cells")

    def load_run(self, ref: str) -> RunRecord:
        """A whole run: its header and every cell with all raw samples (in save order)."""
        query = (select(*_CELL_COLUMNS, *_SAMPLE_COLUMNS)
                 .select_from(S.cells.outerjoin(S.samples, S.samples.c.cell_pk == S.cells.c.pk)))

        def run(conn: Connection) -> RunRecord:
            pk, _ = self._resolve(conn, ref)
            info = _run_info(conn.execute(select(*_RUN_COLUMNS).where(S.runs.c.pk == pk)).one())
            rows = conn.execute(query.where(S.cells.c.run_pk == pk).order_by(S.cells.c.pk)).all()
            return RunRecord(info=info, cells=_cells(rows, 0))

        return self._read(run, what="load a run")

    def cell_history(self, key: str, metric: str | None = None,
                     limit: int | None = None) -> list[tuple[RunInfo, CellResult]]:
        """The cell ``key`` in every run that holds it, oldest run first.

        ``metric`` keeps only that metric's samples and only the cells that have some;
        ``limit`` keeps the most recent ``limit`` runs (still returned oldest first).
        """
        query = (select(*_RUN_COLUMNS, *_CELL_COLUMNS, *_SAMPLE_COLUMNS)
                 .select_from(S.cells.join(S.runs, S.runs.c.pk == S.cells.c.run_pk)
                              .outerjoin(S.samples, S.samples.c.cell_pk == S.cells.c.pk))
                 .where(S.cells.c.key == key)
                 .order_by(S.cells.c.run_pk.desc()))
        if metric is not None:
            # SQL cannot look inside the packed arrays, but the metric list is plain JSON text.
            query = query.where(S.samples.c.metrics.contains(json.dumps(metric), autoescape=True))
        if limit is not None:
            query = query.limit(limit)
        width = len(_RUN_COLUMNS)

        def run(conn: Connection) -> list[tuple[RunInfo, CellResult]]:
            rows = list(conn.execute(query))
            rows.reverse()
            out = [(_run_info(r), cell) for r, cell in zip(rows, _cells(rows, width, metric),
                                                          strict=True)]
            if metric is not None:
                out = [(info, cell) for info, cell in out if cell.samples]
            return out

        return self._read(run, what="read a cell history")

    def metric_history(self, key: str, metric: str,
                       limit: int | None = None) -> MetricHistory:
        """One metric of the cell ``key`` across runs, as numpy arrays (oldest run first).

        The same cells as ``cell_history(key, metric, limit)`` (runs whose cell has samples of
        ``metric``), without building a RunInfo, CellResult or Sample per row: the fast path for
        long series.
        """
        query = (select(S.runs.c.id, S.runs.c.name, S.runs.c.created_at, S.cells.c.status,
                        *_SAMPLE_COLUMNS)
                 .select_from(S.cells.join(S.runs, S.runs.c.pk == S.cells.c.run_pk)
                              .join(S.samples, S.samples.c.cell_pk == S.cells.c.pk))
                 .where(S.cells.c.key == key,
                        S.samples.c.metrics.contains(json.dumps(metric), autoescape=True))
                 .order_by(S.cells.c.run_pk.desc()))
        if limit is not None:
            query = query.limit(limit)

        def run(conn: Connection) -> MetricHistory:
            rows = list(conn.execute(query))
            rows.reverse()
            cols = _decode([cast("SampleRow", tuple(r[4:10])) for r in rows], metric)
            has = [i for i, n in enumerate(cols.counts) if n]
            kept = [rows[i] for i in has]
            offsets = np.zeros(len(kept) + 1, dtype=np.int64)
            np.cumsum([cols.counts[i] for i in has], out=offsets[1:])
            return MetricHistory(
                key=key, metric=metric, run_ids=[r[0] for r in kept],
                run_names=[r[1] for r in kept],
                created_at=np.array([r[2] for r in kept], dtype=np.float64),
                statuses=[r[3] for r in kept], offsets=offsets,
                values=cols.vals.copy(), seeds=cols.seeds.copy(), repeats=cols.reps.copy())

        return self._read(run, what="read a metric history")

    # -- telemetry ---------------------------------------------------------------------------------

    def write_metric_points(self, points: Iterable[MetricPoint]) -> None:
        """Append telemetry points in one transaction (``allele.observe.MetricSink``)."""
        try:
            rows = [{"metric": p.metric, "component": p.component,
                     "labels": _labels_json(p.labels), "timestamp": float(p.timestamp),
                     "value": float(p.value)} for p in points]
        except (AttributeError, TypeError, ValueError) as exc:
            raise StoreError(f"not a metric point: {exc}") from None
        if not rows:
            return
        self._write(lambda conn: conn.execute(S.metric_points.insert(), rows),
                    what="write metric points")

    def read_metric_points(self, metric: str, component: str | None = None,
                           since: float | None = None) -> list[MetricPoint]:
        """Points of one metric (optionally one component, from ``since`` on), oldest first."""
        # Imported here: allele.observe's package pulls in the telemetry machinery, which a
        # process that only reads benchmark results does not need.
        from allele.observe.metrics import MetricPoint

        mp = S.metric_points
        query = (select(mp.c.metric, mp.c.component, mp.c.labels, mp.c.timestamp, mp.c.value)
                 .where(mp.c.metric == metric).order_by(mp.c.timestamp, mp.c.pk))
        if component is not None:
            query = query.where(mp.c.component == component)
        if since is not None:
            query = query.where(mp.c.timestamp >= since)

        def run(conn: Connection) -> list[MetricPoint]:
            return [MetricPoint(r[0], r[1], tuple((k, v) for k, v in json.loads(r[2])),
                                float(r[3]), float(r[4])) for r in conn.execute(query)]

        return self._read(run, what="read metric points")

    # -- lifecycle ---------------------------------------------------------------------------------

    def schema_version(self) -> int:
        """The schema version of the open database."""
        return self._read(S.current_version, what="read the schema version")

    def close(self) -> None:
        """Release every connection; the store cannot be used afterwards."""
        if not self._closed:
            self._closed = True
            self._engine.dispose()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __reduce__(self) -> tuple[Callable[[str], ResultStore], tuple[str]]:
        # A store travels to worker processes as its URL and is reopened there.
        return (open_store, (self.url,))

    def __repr__(self) -> str:
        return f"ResultStore({_display(self._url)!r})"


def open_store(url: str | None = None) -> ResultStore:
    """Open (creating and migrating as needed) the result store at ``url``.

    ``None`` means the configured store: ``ALLELE_STORE_URL`` / ``store_url`` in ``allele.toml``,
    or the SQLite file ``.allele/results.db`` in the working directory.
    """
    if url is None:
        from allele.config import load_settings

        url = load_settings().resolved_store_url
    return ResultStore(url)

