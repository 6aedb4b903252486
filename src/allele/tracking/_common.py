"""What every part of the MLflow tracking shares: run end statuses, MLflow's batch and length
limits, the ``allele.*`` tags, the process that owns a run, parameter formatting, and whether an
error means "the backend cannot be reached right now" (spool and retry) or "refused" (give up).

No MLflow import here: the error classification reads type and module names, so it also works
for the ``requests``/``urllib3``/SQLAlchemy errors MLflow lets through.
"""

from __future__ import annotations

import json
import os
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from allele.errors import AlleleError
from allele.machine import process_started

RunEndStatus = Literal["FINISHED", "FAILED", "KILLED"]
END_STATUSES: tuple[str, ...] = ("FINISHED", "FAILED", "KILLED")

MAX_METRICS_PER_BATCH = 1000
MAX_PARAMS_PER_BATCH = 100
MAX_TAGS_PER_BATCH = 100
MAX_PARAM_LENGTH = 6000
MAX_TAG_LENGTH = 5000

TAG_RUN_KEY = "allele.run_key"
TAG_HOST = "allele.host"
TAG_PID = "allele.pid"
TAG_PID_STARTED = "allele.pid_started"
TAG_KIND = "allele.kind"
TAG_ERROR = "allele.error"
TAG_NOTE = "allele.note"
TAG_PARENT = "mlflow.parentRunId"


def now_ms() -> int:
    """Wall-clock milliseconds since the epoch (MLflow's timestamps)."""
    return time.time_ns() // 1_000_000


def owner_tags() -> dict[str, str]:
    """The tags naming the process that owns a run (used to find runs left RUNNING by a crash)."""
    return {
        TAG_HOST: socket.gethostname(),
        TAG_PID: str(os.getpid()),
        TAG_PID_STARTED: repr(process_started()),
    }


def end_status_for(exc: BaseException | None) -> RunEndStatus:
    """FINISHED without an exception, KILLED for KeyboardInterrupt/SystemExit, else FAILED."""
    if exc is None:
        return "FINISHED"
    if isinstance(exc, KeyboardInterrupt | SystemExit):
        return "KILLED"
    return "FAILED"


def error_text(exc: BaseException) -> str:
    """``Type: message``, cut to MLflow's tag length (the ``allele.error`` tag)."""
    return f"{type(exc).__name__}: {exc}"[:MAX_TAG_LENGTH]


def brief(text: str, limit: int = 240) -> str:
    """An error message cut to one line for a report: its first non-blank line (SQLAlchemy's
    ``[SQL: ...]`` and ``(Background on this error at ...)`` lines go), a urllib3 retry chain
    cut to its cause (``NewConnectionError: [Errno 111] Connection refused``), and a line longer
    than ``limit`` cut after its last full sentence that fits (else at ``limit``, with ``...``)."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    cause = re.search(r"\(Caused by (\w+)\((.*)", line)
    if cause:
        errno = re.search(r"\[Errno -?\d+\][^\"'()]*", cause.group(2))
        if errno:
            detail = errno.group(0).strip()
        else:  # HTTPConnectionPool(host=..., port=...): Read timed out. (read timeout=15)")
            detail = re.sub(r"[\"')]+$", "", cause.group(2).partition("): ")[2] or cause.group(2))
            detail += ")" * max(0, detail.count("(") - detail.count(")"))
        line = f"{cause.group(1)}: {detail}"
    if len(line) <= limit:
        return line
    end = line.rfind(". ", 0, limit)
    return line[:end + 1] if end > limit // 3 else line[:limit - 3].rstrip() + "..."


def brief_error(exc: BaseException) -> str:
    """:func:`brief` of an exception's message (Allele's own errors are one line already and
    kept whole: they end with what to do)."""
    if isinstance(exc, AlleleError):
        return " ".join(str(exc).split())
    return brief(str(exc)) or type(exc).__name__


def recorded_error(exc: BaseException | None) -> BaseException | None:
    """The error a run ended by ``exc`` records: none for Ctrl-C (KILLED says it all)."""
    return exc if exc is not None and not isinstance(exc, KeyboardInterrupt) else None


def param_value(value: Any) -> str:
    """A parameter as MLflow stores it: strings as they are, anything else as sorted JSON, cut to
    MLflow's parameter length."""
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text[:MAX_PARAM_LENGTH]


def default_artifact_location(tracking_uri: str) -> str | None:
    """For a SQLite tracking URI, ``<folder of the .db>/mlruns`` (not the working directory);
    None (the server's choice) otherwise."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    db = Path(tracking_uri[len("sqlite:///"):])
    if str(db) in ("", ":memory:"):
        return None
    return (db.parent.resolve() / "mlruns").as_uri()


def absolute_uri(uri: str) -> str:
    """``uri`` with the path of a local SQLite or file store made absolute.

    ``sqlite:///mlflow.db`` names a file relative to the working directory: a spooled record
    keeping it that way would be replayed, from another directory, into a new empty database
    there. Other URIs (servers, absolute paths, ``:memory:``) are returned unchanged."""
    if uri.startswith("sqlite:///"):
        path, sep, query = uri[len("sqlite:///"):].partition("?")
        if path and path != ":memory:" and not path.startswith("/"):
            return f"sqlite:///{os.path.abspath(path)}{sep}{query}"
    elif uri.startswith("file:") and not uri.startswith("file:/"):
        return f"file://{os.path.abspath(uri[len('file:'):])}"
    return uri


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception it was raised from or while handling, each once."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        todo.extend([e.__cause__, e.__context__])


_DATABASE_ERRORS = frozenset({"DatabaseError", "ProgrammingError", "InternalError",
                              "NotSupportedError", "InterfaceError"})


def is_database_error(exc: BaseException) -> bool:
    """Whether ``exc`` is about the tracking database itself (``file is not a database``, a
    schema it cannot use) rather than one record: SQLAlchemy's and sqlite3's database errors
    other than a refused value (``IntegrityError``, ``DataError``) and the outages of
    :func:`is_unavailable` (``OperationalError``)."""
    for e in exception_chain(exc):
        if (type(e).__module__.startswith(("sqlalchemy", "sqlite3"))
                and type(e).__name__ in _DATABASE_ERRORS):
            return True
    return False


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the tracking backend cannot be reached right now (vs. a refusal)."""
    for e in exception_chain(exc):
        if isinstance(e, ConnectionError | TimeoutError):
            return True
        mod = type(e).__module__
        name = type(e).__name__
        if mod.startswith(("requests", "urllib3")) and name in {
            "ConnectionError", "Timeout", "ConnectTimeout", "ReadTimeout", "MaxRetryError",
            "NewConnectionError", "ProtocolError", "ChunkedEncodingError", "RetryError",
        }:
            return True
        if mod.startswith("sqlalchemy") and name in {"OperationalError", "TimeoutError"}:
            return True
        if name == "MlflowException":
            text = str(e)
            if any(s in text for s in ("Max retries exceeded", "Connection refused",
                                       "Failed to establish", "Connection aborted",
                                       "Read timed out", "RemoteDisconnected")):
                return True
            status = getattr(e, "get_http_status_code", lambda: 400)()
            if isinstance(status, int) and status >= 500:
                return True
    return False
