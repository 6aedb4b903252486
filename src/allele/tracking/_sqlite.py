"""Opening an MLflow SQLite database, and creating a new one atomically.

MLflow creates the tables of a new SQLite database by running its alembic migrations, about
10 s on first use. Interrupted part-way (Ctrl-C, a kill), it used to leave a database that
could never be opened again (``table jobs already exists``). A new database is therefore built
at a temporary path in a private directory next to the target and linked into place only when
complete: the target either does not exist or is a complete database. A database a concurrent
process put in place first is kept, never replaced. A database left half-created by an older
version (or by plain MLflow) is reported as such, naming the file to delete.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from allele.errors import TrackingError
from allele.tracking._common import exception_chain
from allele.tracking._deps import require_mlflow

SQLITE_PREFIX = "sqlite:///"
CREATING_MARK = ".creating-"
"""Part of the name of the temporary directory a new database is built in (``.NAME.creating-*``,
next to the database); a process killed outright (SIGKILL) leaves it behind, harmless."""


def sqlite_file(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (None for other URIs and ``:memory:``)."""
    if not uri.startswith(SQLITE_PREFIX):
        return None
    path = uri[len(SQLITE_PREFIX):].partition("?")[0]
    if path in ("", ":memory:"):
        return None
    return Path(path)


def _dispose(uri: str) -> None:
    """Close MLflow's cached engines of ``uri`` (the temporary database is removed after)."""
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore as RegistryStore
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore as TrackingStore

    for store in (TrackingStore, RegistryStore):
        engines = getattr(store, "_engine_map", None)
        engine = engines.pop(uri, None) if isinstance(engines, dict) else None
        if engine is not None:
            engine.dispose()


def create_sqlite_store(uri: str) -> bool:
    """Create the MLflow database of the SQLite ``uri`` atomically if its file does not exist.

    Returns whether this call created it. The tables are made in ``.NAME.creating-XXXX/NAME``
    next to the target, which is then hard-linked into place (``os.link`` never replaces a file
    a concurrent process created meanwhile; where hard links are not supported, ``os.replace``
    when the target is still missing). The temporary directory is removed whatever happens,
    Ctrl-C included."""
    path = sqlite_file(uri)
    if path is None or path.exists():
        return False
    require_mlflow()
    from mlflow import MlflowClient

    path = path.absolute()
    path.parent.mkdir(parents=True, exist_ok=True)  # as MLflow does for a SQLite URI
    tmpdir = tempfile.mkdtemp(prefix=f".{path.name}{CREATING_MARK}", dir=path.parent)
    tmp = Path(tmpdir) / path.name
    query = uri.partition("?")[2]
    tmp_uri = f"{SQLITE_PREFIX}{tmp}" + (f"?{query}" if query else "")
    try:
        try:
            MlflowClient(tracking_uri=tmp_uri, registry_uri=tmp_uri)  # runs the migrations
        except Exception as exc:
            _reraise_interrupt(exc)
            raise
        finally:
            _dispose(tmp_uri)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False  # another process made it meanwhile: use theirs
        except OSError:  # no hard links on this file system
            if path.exists():
                return False
            os.replace(tmp, path)
        return True
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def _reraise_interrupt(exc: BaseException) -> None:
    """Raise KeyboardInterrupt if ``exc`` was raised while handling one: a Ctrl-C inside
    SQLAlchemy, whose cleanup then failed (``Can't reconnect until invalid transaction is
    rolled back``), is still a Ctrl-C, not an unusable registry."""
    if any(isinstance(e, KeyboardInterrupt) for e in exception_chain(exc)):
        raise KeyboardInterrupt from exc


def half_created_error(uri: str, exc: BaseException) -> TrackingError | None:
    """The error to raise when opening the existing SQLite database of ``uri`` failed with
    ``exc`` because its creation was interrupted (its migrations stopped part-way)."""
    path = sqlite_file(uri)
    if path is None or not path.exists():
        return None
    first = next((line for line in str(exc).splitlines() if line.strip()), "")
    if "already exists" not in first:
        return None
    return TrackingError(f"the MLflow database {path} is half-created (its creation was "
                         f"interrupted; MLflow: {first.strip()[:120]}): delete {path} and run "
                         "again")


def open_client(uri: str) -> Any:
    """An ``MlflowClient`` for tracking and registry at ``uri``; a new SQLite database is
    created atomically (:func:`create_sqlite_store`), a half-created one is a clear error."""
    require_mlflow()
    from mlflow import MlflowClient

    create_sqlite_store(uri)
    try:
        return MlflowClient(tracking_uri=uri, registry_uri=uri)
    except Exception as exc:
        _reraise_interrupt(exc)
        err = half_created_error(uri, exc)
        if err is not None:
            raise err from None
        raise


__all__ = ["create_sqlite_store", "half_created_error", "open_client", "sqlite_file"]
