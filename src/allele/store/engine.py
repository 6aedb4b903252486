"""The store's database: engine and connections, transactions with bounded retries, schema
checks and migrations at open, and errors that say what could not be done.

SQLite runs in WAL mode with a long busy timeout and every write transaction starts with
``BEGIN IMMEDIATE``, so several processes (runner workers, two concurrent runs) can write to one
file at once without losing anything and without "database is locked" errors; a bounded retry
covers the rare lock error that still escapes. PostgreSQL is used by URL
(``postgresql+psycopg://user:pass@host/db``). :class:`Database` knows nothing of runs or
samples; :class:`allele.store.results.ResultStore` builds on it.

A store is named by a SQLAlchemy URL (``sqlite:///results.db``,
``postgresql+psycopg://...``) or by a plain filesystem path, which means the SQLite file at that
path, relative to the working directory (:func:`parse_store_url`).

Opened with ``read_only=True`` (every command that only reads), a store is never created,
migrated or written: a SQLite file that does not exist is a one-line error and nothing is made
(no directory, no empty database), and an existing file is opened through a read-only SQLite
URI (``mode=ro``), so a store on a read-only mount, a ``mode=ro`` / ``immutable=1`` URI, or a
store written by an older Allele (whose migration would need a write) all serve every read.
Opened with ``create=False`` (the web dashboard, which reads and records acknowledgements and
silences), a store must exist in the same way but may be migrated and written: a SQLite file
is opened through a ``mode=rw`` URI, and a database without Allele's tables is an error.
"""

from __future__ import annotations

import os
import random
import re
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from sqlalchemy import Connection, Engine, Select, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    NoSuchModuleError,
    OperationalError,
    SQLAlchemyError,
)

from allele.errors import StoreError
from allele.store import schema as S

T = TypeVar("T")

_BUSY_TIMEOUT_MS = 60_000
_WRITE_RETRIES = 8
IN_CHUNK = 500
"""Keys per ``IN (...)`` list: stays below SQLite's bound-parameter limit."""


def _is_lock_error(exc: BaseException) -> bool:
    msg = str(getattr(exc, "orig", exc)).lower()
    return any(word in msg for word in ("locked", "busy", "deadlock detected",
                                        "could not serialize"))


def chunks(items: Sequence[T], size: int = IN_CHUNK) -> Iterator[Sequence[T]]:
    """``items`` in consecutive slices of at most ``size``."""
    for i in range(0, len(items), size):
        yield items[i:i + size]


def fetch(conn: Connection, query: Select[Any]) -> list[Sequence[Any]]:
    """All rows of ``query``; on PostgreSQL (psycopg) fetched in binary format.

    The text protocol sends ``bytea`` hex-encoded, twice its size, and decoding it dominates a
    history's or a run's read time; binary results arrive as raw bytes (numbers, text and NULL
    come back as the same Python values either way). Driver errors become SQLAlchemy's, so the
    store's retry and error messages treat them like any other.
    """
    dialect = conn.dialect
    if dialect.name != "postgresql" or dialect.driver != "psycopg":
        return list(conn.execute(query).all())
    compiled = query.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    statement, params = str(compiled), compiled.params
    raw: Any = conn.connection.dbapi_connection
    try:
        with raw.cursor(binary=True) as cur:
            cur.execute(statement, params)
            return list(cur.fetchall())
    except dialect.loaded_dbapi.Error as exc:
        raise DBAPIError.instance(statement, params, exc, dialect.loaded_dbapi.Error,
                                  dialect=dialect) from exc


def display_url(url: URL) -> str:
    return url.render_as_string(hide_password=True)


_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]+:")
"""What starts a URL (``sqlite:``, ``postgresql+psycopg:``); a single letter is a drive."""


def parse_store_url(text: str) -> URL:
    """``text`` as a store URL: a URL (anything that starts with a scheme, ``name:``) is parsed
    by SQLAlchemy; anything else is a filesystem path and means the SQLite file at that path,
    relative to the working directory (``.allele/results.db`` is
    ``sqlite:///.allele/results.db``). A file whose name starts like a scheme is written
    ``./name:...``."""
    if not text.strip():
        raise StoreError("invalid store URL '': give a SQLite file path or a database URL")
    if not _SCHEME.match(text):
        return URL.create("sqlite", database=text)
    try:
        return make_url(text)
    except ArgumentError as exc:
        raise StoreError(f"invalid store URL {text!r}: {exc}") from None
    except Exception as exc:  # e.g. a port that is not a number
        raise StoreError(f"invalid store URL {text!r}: {type(exc).__name__}: {exc}") from None


def _existing_sqlite(url: URL, path: Path, mode: str) -> URL:
    """The SQLite URL of ``path`` opened as a URI with ``mode`` (``ro``: read-only, ``rw``:
    read-write); the file must exist (such an open creates nothing)."""
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise StoreError(f"no result store at {path}: the file {what} (nothing was created; "
                         "`allele bench run` makes one, or pass --store URL)")
    query = {k: v for k, v in url.query.items() if k not in ("mode", "uri")}
    return url.set(database="file:" + urllib.parse.quote(str(path.resolve())),
                   query={**query, "mode": mode, "uri": "true"})


class Database:
    """One SQL database behind a URL or SQLite file path, opened (created and migrated as needed,
    unless ``read_only`` or ``create=False``) at construction.

    Every method is safe to call from several processes at once; the object may also be shared
    by the threads of one process. After a ``fork`` the child opens fresh connections by itself.
    """

    def __init__(self, url: str, *, read_only: bool = False, create: bool = True) -> None:
        parsed = parse_store_url(url)
        self.url: str = url if _SCHEME.match(url) else parsed.render_as_string(hide_password=False)
        """The store's URL (a path given is its ``sqlite:///`` URL)."""
        self._url = parsed
        self._shown = display_url(parsed)  # what errors name: the URL given, not a rewrite of it
        self.read_only = read_only
        self.create = create and not read_only
        """Whether opening may create the database (a SQLite file and its directory)."""
        self.opened_version: int = S.LATEST_VERSION
        """The schema version the database has (below the latest only when opened read-only: a
        read-only open never migrates, so readers of newer columns check it)."""
        self._is_sqlite = parsed.get_backend_name() == "sqlite"
        self._is_postgres = parsed.get_backend_name() == "postgresql"
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
                         or "mode=memory" in database or url.query.get("mode") == "memory")
            if not in_memory and not uri:  # a SQLite URI (file:...?uri=true) is used as is
                path = Path(database)
                if self.read_only or not self.create:
                    mode = "ro" if self.read_only else "rw"
                    url = self._url = _existing_sqlite(url, path, mode)
                else:
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
            raise StoreError(f"unsupported store URL {display_url(url)!r}: {exc}") from None
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
                    try:
                        cur.execute("PRAGMA journal_mode = WAL")
                    except Exception as exc:  # a read-only database keeps the mode it has
                        if "readonly" not in str(exc).replace("-", "").lower():
                            raise
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
        version = self.read_tx(S.current_version, what="open the store")
        if version == 0 and not self.create:
            hint = (" (with immutable=1 SQLite ignores the -wal file: checkpoint the store "
                    "first)" if "immutable" in self._url.query else "")
            raise StoreError(f"{self._shown} is not an Allele result store "
                             f"(it has no schema){hint}")
        if version < S.LATEST_VERSION and not self.read_only:
            def run(conn: Connection) -> tuple[int, int]:
                if self._is_postgres:
                    conn.exec_driver_sql(S.PG_MIGRATION_LOCK)
                return S.migrate(conn)

            version = self.write_tx(run, what="open the store")[0]
        if version > S.LATEST_VERSION:
            raise StoreError(f"the store at {self._shown} has schema version {version}, "
                             f"newer than this Allele understands ({S.LATEST_VERSION})")
        # a writable store was migrated to the latest version above; a read-only one stays
        self.opened_version = version if self.read_only else S.LATEST_VERSION

    # -- transactions ------------------------------------------------------------------------------

    def _check_usable(self) -> None:
        if self._closed:
            raise StoreError("the result store is closed")
        pid = os.getpid()
        if pid != self._pid:
            # Connections inherited through fork belong to the parent: drop them, do not close.
            self._engine.dispose(close=False)
            self._pid = pid

    def write_tx(self, fn: Callable[[Connection], T], what: str) -> T:
        """Run ``fn`` in one write transaction (``BEGIN IMMEDIATE`` on SQLite)."""
        if self.read_only:
            raise StoreError(f"cannot {what}: the store {self._shown} was opened "
                             "for reading only")
        return self._transaction(fn, what, write=True)

    def read_tx(self, fn: Callable[[Connection], T], what: str) -> T:
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
            return StoreError(f"cannot reach the result store at {self._shown}: "
                              f"{detail}")
        return StoreError(f"cannot {what} ({self._shown}): {detail}")


    # -- lifecycle ---------------------------------------------------------------------------------

    def schema_version(self) -> int:
        """The schema version of the open database."""
        return self.read_tx(S.current_version, what="read the schema version")

    def close(self) -> None:
        """Release every connection; the store cannot be used afterwards."""
        if not self._closed:
            self._closed = True
            self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
