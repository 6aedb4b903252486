"""The tracker: one MLflow experiment, written in the background, spooled when offline.

The hot path (an observer event, a :class:`~allele.tracking.runs.TrackedRun` call) only appends
a tuple to a deque. A background thread drains it once the oldest item is ``flush_interval_s``
old (or on :meth:`MlflowTracker.flush` / :meth:`MlflowTracker.close`), groups metrics per run
and writes them with ``MlflowClient.log_batch`` in chunks of at most 1000 metrics, 100 params
and 100 tags.

When the tracking server cannot be reached the tracker goes offline: every record from then on
is appended to the local :class:`~allele.tracking.spool.Spool`, which
:func:`~allele.tracking.sync.sync_spool` replays later, exactly once. While offline the tracker
probes the server every ``retry_interval_s`` and, once it answers, replays and goes on online.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import allele.tracking.matrix as _matrix
from allele import failpoints
from allele.errors import TrackingError
from allele.tracking._common import (
    MAX_METRICS_PER_BATCH,
    MAX_PARAMS_PER_BATCH,
    MAX_TAG_LENGTH,
    MAX_TAGS_PER_BATCH,
    absolute_uri,
    brief_error,
    end_status_for,
    is_unavailable,
    now_ms,
    owner_tags,
    recorded_error,
)
from allele.tracking._deps import require_mlflow
from allele.tracking.delivery import Applier, classify
from allele.tracking.runs import MlflowObserver, TrackedRun
from allele.tracking.spool import Record, Spool, new_key
from allele.tracking.sync import reap_stale_runs, sync_spool

if TYPE_CHECKING:
    from allele.store.model import CellResult, RunInfo

_log = logging.getLogger("allele.tracking")


class _FlushMarker:
    __slots__ = ("event",)

    def __init__(self) -> None:
        self.event = threading.Event()


Ack = Callable[[list[str]], None]
"""Called (in the writer thread) with tokens whose records are all delivered or spooled."""


class _AckMarker:
    """Queued after the records of one unit (a cell's child run): once everything before it is
    delivered or safely in the spool, ``ack`` gets ``token``."""

    __slots__ = ("ack", "token")

    def __init__(self, ack: Ack, token: str) -> None:
        self.ack = ack
        self.token = token


def _log_records(base: Record, run_key: str, metrics: list[list[Any]], params: dict[str, str],
                 tags: dict[str, str]) -> list[Record]:
    """Split one run's metrics/params/tags into log records within MLflow's batch limits."""
    out: list[Record] = []
    plist, tlist = list(params.items()), list(tags.items())
    i = j = k = 0
    while i < len(metrics) or j < len(plist) or k < len(tlist):
        p = plist[j:j + MAX_PARAMS_PER_BATCH]
        t = tlist[k:k + MAX_TAGS_PER_BATCH]
        room = MAX_METRICS_PER_BATCH - len(p) - len(t)
        m = metrics[i:i + room]
        out.append({**base, "key": new_key(), "op": "log", "run": run_key,
                    "metrics": m, "params": dict(p), "tags": dict(t)})
        i += len(m)
        j += len(p)
        k += len(t)
    return out


class MlflowTracker:
    """Writes Allele runs to one MLflow experiment, in the background, spooling when offline.

    ``tracking_uri`` and ``experiment`` default to the settings (``sqlite:///mlflow.db`` and
    ``allele``). ``flush_interval_s`` bounds how long an event waits in memory; ``spool_path``
    defaults to ``<data_dir>/tracking-spool.jsonl``. With ``reap_stale`` (the default) runs left
    RUNNING by dead processes of this host are marked FAILED at start. While offline the tracker
    probes the server every ``retry_interval_s`` and, once it answers, replays the spool and goes
    on online.
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        experiment: str | None = None,
        *,
        spool_path: str | os.PathLike[str] | None = None,
        flush_interval_s: float = 2.0,
        max_buffer: int = 50_000,
        reap_stale: bool = True,
        retry_interval_s: float = 30.0,
    ) -> None:
        require_mlflow()
        if tracking_uri is None or experiment is None:
            from allele.config import load_settings

            settings = load_settings().tracking
            tracking_uri = tracking_uri or settings.tracking_uri
            experiment = experiment or settings.experiment
        if flush_interval_s <= 0:
            raise TrackingError(f"flush_interval_s must be > 0, got {flush_interval_s!r}")
        # a relative sqlite:/// or file: URI made absolute: its records may be replayed from
        # another directory, where the relative path would name another (new, empty) database
        self.tracking_uri: str = absolute_uri(tracking_uri)
        self.experiment: str = experiment
        self.spool = Spool(spool_path)
        self.flush_interval_s = float(flush_interval_s)
        self.max_buffer = int(max_buffer)
        self.retry_interval_s = float(retry_interval_s)
        self._q: deque[tuple[Any, Any, int]] = deque()
        self._applier = Applier()
        self._owner = owner_tags()
        self._runs: dict[str, TrackedRun] = {}
        self._runs_lock = threading.Lock()
        self._observers: weakref.WeakSet[MlflowObserver] = weakref.WeakSet()
        self._online = True
        self._offline_since = 0.0
        self._closed = False
        self._stop = False
        self._wake = threading.Event()
        self._flush_requested = threading.Event()
        self.reaped: list[str] = []
        self.delivered = 0
        """Records delivered to MLflow by this tracker (not counting spooled ones)."""
        self.spooled = 0
        """Records written to the spool by this tracker."""
        self.experiment_id: str | None = None
        try:
            self.experiment_id = self._applier.experiment_id(self.tracking_uri, self.experiment)
            if self.spool.read().pending_by_target().get(self.tracking_uri):
                # what an earlier process spooled for this server goes first, so that records
                # of the same run (a resumed matrix run) keep their order
                report = sync_spool(self.spool, only_target=self.tracking_uri,
                                    _applier=self._applier)
                for line in [*report.errors, *([report.blocked] if report.blocked else [])]:
                    _log.warning("replaying the tracking spool: %s", line)
            if reap_stale:
                pending = self.spool.read().pending_run_keys()
                self.reaped = reap_stale_runs(self._applier.client(self.tracking_uri),
                                              [self.experiment_id], skip_run_keys=pending)
        except TrackingError:
            raise
        except Exception as exc:
            if not is_unavailable(exc):
                raise TrackingError(f"MLflow at {self.tracking_uri} refused experiment "
                                    f"{self.experiment!r}: {brief_error(exc)}") from exc
            self._go_offline(exc)
        self._matrix: TrackedRun | None = None
        self._matrix_fp: str | None = None
        self._thread = threading.Thread(target=self._loop, name="allele-mlflow-writer",
                                        daemon=True)
        self._thread.start()
        atexit.register(self._atexit)

    def __repr__(self) -> str:
        state = "online" if self._online else "offline"
        return f"MlflowTracker({self.tracking_uri!r}, experiment={self.experiment!r}, {state})"

    @property
    def online(self) -> bool:
        """False once the backend was found unreachable (records then go to the spool)."""
        return self._online

    # -- runs -----------------------------------------------------------------------------------
    def start_run(self, name: str | None = None, *, parent: TrackedRun | None = None,
                  tags: Mapping[str, Any] | None = None, params: Mapping[str, Any] | None = None,
                  start_time_ms: int | None = None, key: str | None = None,
                  reopen: bool = False, new: bool = False) -> TrackedRun:
        """Open a run (nested under ``parent`` when given) and return its handle.

        ``key`` makes the run's identity deterministic (``allele.run_key``): starting a run with
        the key of an existing one continues that run instead of making a second one; with
        ``reopen`` it is set RUNNING again and owned by this process (a resumed matrix run).
        ``new`` says no process can have created this key before (its first delivery attempt
        then skips the search for it; a retry or a replay from the spool still searches)."""
        if self._closed:
            raise TrackingError("this MlflowTracker is closed")
        key = key or new_key()
        run = TrackedRun(self, key, name, parent)
        all_tags = {**self._owner, **{str(k): str(v)[:MAX_TAG_LENGTH]
                                      for k, v in (tags or {}).items()}}
        rec = {"key": new_key(), "target": self.tracking_uri, "experiment": self.experiment,
               "op": "create_run", "run": key, "run_name": name,
               "parent": parent.key if parent is not None else None, "tags": all_tags,
               "start_time": now_ms() if start_time_ms is None else int(start_time_ms)}
        if reopen:
            rec["reopen"] = True
        if new:
            rec["new"] = True
        with self._runs_lock:
            self._runs[key] = run
        self._q.append((None, rec, now_ms()))
        if params:
            run.log_params(params)
        return run

    def observer(self, *, run_name: str | None = None, parent: TrackedRun | None = None,
                 tags: Mapping[str, Any] | None = None,
                 params: Mapping[str, Any] | None = None) -> MlflowObserver:
        """An observer whose every watched component becomes a run (see :class:`MlflowObserver`)."""
        return MlflowObserver(self, run_name=run_name, parent=parent, tags=tags, params=params)

    def open_runs(self) -> list[TrackedRun]:
        """Runs started and not yet ended."""
        with self._runs_lock:
            return [r for r in self._runs.values() if not r.ended]

    def run_id(self, run: TrackedRun, timeout: float | None = 30.0) -> str | None:
        """Flush and return the MLflow id of ``run`` (None while offline)."""
        return run.run_id(timeout)

    # -- matrix runs (called by the bench runner; see allele.tracking.matrix) -------------------
    def start_matrix_run(self, info: RunInfo, *, new: bool = False) -> TrackedRun:
        """A benchmark matrix run becomes a parent run; spec and environment become artifacts
        (``new``: the bench run was just created, nothing of it can be in MLflow yet)."""
        return _matrix.start_matrix_run(self, info, new)

    def log_cell(self, cell: CellResult, matrix: TrackedRun | None = None, *,
                 on_durable: Callable[[list[str]], None] | None = None,
                 new: bool = False) -> TrackedRun:
        """One stored cell becomes a child run: params, tags, every sample and its median;
        ``on_durable`` gets the cell's key once its records are delivered or spooled; ``new``:
        the cell was just stored, so its child run cannot exist yet."""
        return _matrix.log_cell(self, cell, matrix, on_durable, new)

    def end_matrix_run(self, status: str, report_path: str | os.PathLike[str] | None = None,
                       matrix: TrackedRun | None = None, error: str | None = None) -> None:
        """End the matrix run: ``finished``/``failed``/``interrupted`` (bench statuses) or an
        MLflow status; the HTML report (when given) becomes an artifact."""
        _matrix.end_matrix_run(self, status, report_path, matrix, error)

    # -- enqueueing (any thread) --------------------------------------------------------------
    def _enqueue_log(self, run_key: str, metrics: list[list[Any]], params: dict[str, str],
                     tags: dict[str, str]) -> None:
        base = {"target": self.tracking_uri, "experiment": self.experiment}
        for rec in _log_records(base, run_key, metrics, params, tags):
            self._q.append((None, rec, now_ms()))

    def _enqueue_artifact(self, run_key: str, path: Path, artifact_path: str | None) -> None:
        key = new_key()
        staged = self.spool.stash_artifact(path, key)
        rec = {"key": key, "target": self.tracking_uri, "experiment": self.experiment,
               "op": "artifact", "run": run_key, "path": staged, "artifact_path": artifact_path}
        self._q.append((None, rec, now_ms()))

    def _enqueue_end(self, run: TrackedRun, status: str, tags: dict[str, str],
                     end_time_ms: int | None) -> None:
        rec = {"key": new_key(), "target": self.tracking_uri, "experiment": self.experiment,
               "op": "end", "run": run.key, "status": status, "tags": tags,
               "end_time": now_ms() if end_time_ms is None else int(end_time_ms)}
        self._q.append((None, rec, now_ms()))

    def _ack_when_durable(self, ack: Ack, token: str) -> None:
        """Call ``ack([token, ...])`` once every record enqueued so far is delivered or spooled."""
        self._q.append((None, _AckMarker(ack, token), now_ms()))

    # -- the writer thread -----------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            q = self._q
            if self._stop and not q:
                return
            if q:
                try:
                    head = q[0]
                except IndexError:
                    continue
                age = (now_ms() - head[2]) / 1000.0
                if (self._flush_requested.is_set() or self._stop or len(q) >= self.max_buffer
                        or age >= self.flush_interval_s):
                    try:
                        self._drain()
                    except Exception:  # the writer must survive anything
                        _log.exception("MLflow writer failed to drain its queue")
                    continue
                self._wake.wait(max(0.01, self.flush_interval_s - age))
            else:
                self._flush_requested.clear()
                self._wake.wait(self.flush_interval_s)
            self._wake.clear()

    def _drain(self, deliver: Callable[[list[Record]], None] | None = None) -> None:
        """Take everything queued, batch it into records and ``deliver`` them (default: to
        MLflow, spooling what cannot go); acknowledgements fire once their records are out."""
        deliver = deliver or self._deliver
        items: list[tuple[Any, Any, int]] = []
        q = self._q
        self._flush_requested.clear()
        while True:
            try:
                items.append(q.popleft())
            except IndexError:
                break
        records: list[Record] = []
        acks: list[_AckMarker] = []
        metrics: dict[str, list[list[Any]]] = {}
        tags: dict[str, dict[str, str]] = {}
        base = {"target": self.tracking_uri, "experiment": self.experiment}

        def emit() -> None:
            for rk in list(dict.fromkeys([*metrics, *tags])):
                records.extend(_log_records(base, rk, metrics.get(rk, []), {}, tags.get(rk, {})))
            metrics.clear()
            tags.clear()

        for comp, payload, ts in items:
            if comp is not None:
                rows, new_tags = comp.convert(payload, ts)
                rk = comp.run.key
                if rows:
                    metrics.setdefault(rk, []).extend(rows)
                if new_tags:
                    tags.setdefault(rk, {}).update(new_tags)
            elif isinstance(payload, _FlushMarker):
                emit()
                deliver(records)
                records = []
                self._fire(acks)
                payload.event.set()
            elif isinstance(payload, _AckMarker):
                emit()
                acks.append(payload)
            else:
                emit()
                records.append(payload)
        emit()
        deliver(records)
        self._fire(acks)

    @staticmethod
    def _fire(acks: list[_AckMarker]) -> None:
        by_ack: dict[Ack, list[str]] = {}
        for marker in acks:
            by_ack.setdefault(marker.ack, []).append(marker.token)
        acks.clear()
        for ack, tokens in by_ack.items():
            try:
                ack(tokens)
            except Exception:  # a lost acknowledgement only costs a re-send on resume
                _log.exception("could not record %d records as delivered", len(tokens))

    def _go_offline(self, exc: BaseException) -> None:
        if self._online:  # one line: the first line of the error, not SQLAlchemy's [SQL: ...]
            state = ("is unreachable" if classify(exc) == "unavailable"
                     else "cannot take records")
            _log.warning("MLflow at %s %s (%s); spooling to %s. Run `allele tracking sync` to "
                         "replay.", self.tracking_uri, state, brief_error(exc), self.spool.path)
        self._online = False
        self._offline_since = time.monotonic()
        with self.spool.lock():
            for (target, rk), run_id in list(self._applier.run_ids.items()):
                if target == self.tracking_uri:
                    self.spool.note_run_id(target, rk, run_id, locked=True)

    def _try_reconnect(self) -> None:
        if time.monotonic() - self._offline_since < self.retry_interval_s:
            return
        self._offline_since = time.monotonic()
        try:
            self._applier.experiment_id(self.tracking_uri, self.experiment)
            report = sync_spool(self.spool, only_target=self.tracking_uri, _applier=self._applier)
        except Exception as exc:
            _log.debug("MLflow at %s still unreachable: %s", self.tracking_uri, brief_error(exc))
            return
        if report.complete:
            _log.warning("MLflow at %s is back; replayed %d spooled records", self.tracking_uri,
                         report.replayed)
            self._online = True

    def _deliver(self, records: list[Record]) -> None:
        if not records:
            return
        if not self._online:
            self._try_reconnect()
        i = 0
        while i < len(records) and self._online:
            rec = records[i]
            try:
                self._apply_retrying(rec)
            except Exception as exc:
                if classify(exc) != "refused":  # the server or the target, not this record
                    self._go_offline(exc)
                    break
                _log.error("MLflow refused a %s record for run %s: %s; kept in the spool",
                           rec.get("op"), rec.get("run"), brief_error(exc))
                self.spool.append([rec])
                self.spooled += 1
                i += 1
                continue
            if rec["op"] == "artifact":
                self.spool.drop_artifact(str(rec["key"]))
            self.delivered += 1
            i += 1
            failpoints.hit("tracker.delivered")
        if i < len(records):
            self._spool_records(records[i:])

    def _spool_records(self, records: list[Record]) -> None:
        if records:
            self.spool.append(records)
            self.spooled += len(records)

    def _apply_retrying(self, rec: Record) -> None:
        for attempt in range(3):
            try:  # only a first attempt may trust "new" (a retry may follow a lost answer)
                self._applier.apply(rec, self.tracking_uri, trust_new=attempt == 0)
                return
            except Exception as exc:
                if attempt == 2 or classify(exc) != "unavailable":
                    raise
                time.sleep(0.2 * (attempt + 1))

    # -- flushing and lifecycle ------------------------------------------------------------------
    def flush(self, timeout: float | None = 60.0) -> bool:
        """Write (or spool) everything enqueued so far; True when done within ``timeout``."""
        if not self._thread.is_alive():
            return not self._q
        marker = _FlushMarker()
        self._q.append((None, marker, now_ms()))
        self._flush_requested.set()
        self._wake.set()
        return marker.event.wait(timeout)

    def close(self, status: str = "FINISHED", error: BaseException | str | None = None,
              timeout: float | None = 60.0) -> None:
        """End every open run with ``status``, write everything and stop the writer thread."""
        if self._closed:
            return
        for run in self.open_runs():
            run.end(status, error)
        self._closed = True
        flushed = self.flush(timeout)
        for obs in list(self._observers):
            obs._detach()
        self._stop = True
        self._wake.set()
        self._thread.join(timeout if flushed else 1.0)
        if self._q:  # the writer is stuck (a server that hangs): keep the rest in the spool
            _log.warning("MLflow at %s did not take every record within %ss; the rest go to "
                         "the spool %s", self.tracking_uri, timeout, self.spool.path)
            self._drain(self._spool_records)
        atexit.unregister(self._atexit)

    @property
    def fully_delivered(self) -> bool:
        """True when nothing this tracker was given waits in the spool or in memory."""
        return self.spooled == 0 and not self._q and self._online

    def _atexit(self) -> None:
        exc = getattr(sys, "last_value", None)
        if not isinstance(exc, BaseException):
            exc = None
        self.close(end_status_for(exc), recorded_error(exc))

    def __enter__(self) -> MlflowTracker:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close(end_status_for(exc), recorded_error(exc))
