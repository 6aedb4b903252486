"""Experiment tracking in MLflow: runs, observer metrics, matrix runs, spooling and replay.

Everything MLflow learns from Allele goes through one :class:`MlflowTracker`:

* :meth:`MlflowTracker.start_run` opens a :class:`TrackedRun` (params, tags, metrics, artifacts);
* :meth:`MlflowTracker.observer` returns an :class:`MlflowObserver` (the core observer Protocol):
  every component it watches (an evolution engine, a Kraken network, an agent) becomes a run whose
  per-step metrics come from the observer events;
* :meth:`MlflowTracker.start_matrix_run` / :meth:`~MlflowTracker.log_cell` /
  :meth:`~MlflowTracker.end_matrix_run` turn a benchmark matrix run into a parent run with one
  nested child run per cell.

The hot path (an observer call) only appends a tuple to a deque. A background thread drains it
once the oldest item is ``flush_interval_s`` old (or on :meth:`~MlflowTracker.flush` /
:meth:`~MlflowTracker.close`), groups metrics per run and writes them with
``MlflowClient.log_batch`` in chunks of at most 1000 metrics, 100 params and 100 tags.

When the tracking server cannot be reached the tracker goes offline: every record from then on is
appended to the local :class:`~allele.tracking.spool.Spool`, and :func:`sync_spool` (``allele
tracking sync``) replays it later, exactly once: every record has an idempotency key and is marked
done once delivered, runs are found again by their ``allele.run_key`` tag instead of being created
twice, and metrics carry the timestamp of the event, so MLflow's own duplicate check makes even a
replay after a lost acknowledgement a no-op.

Run lifecycle: runs end ``FINISHED``, ``FAILED`` (the error in the ``allele.error`` tag) or
``KILLED`` (KeyboardInterrupt). Every run carries its owner's host, pid and pid start time; a new
tracker marks runs of dead processes still ``RUNNING`` as ``FAILED`` with an ``allele.note`` tag.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import math
import os
import socket
import sys
import tempfile
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, cast

from allele.core.observer import (
    ChatErrorStats,
    ChatStats,
    GenerationStats,
    ReadoutStats,
    SequenceStats,
)
from allele.errors import TrackingError
from allele.tracking._deps import require_mlflow
from allele.tracking.spool import Record, Spool, new_key

if TYPE_CHECKING:
    from allele.store.model import CellResult, RunInfo

_log = logging.getLogger("allele.tracking")

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

_BENCH_STATUS: dict[str, RunEndStatus] = {
    "finished": "FINISHED",
    "failed": "FAILED",
    "interrupted": "KILLED",
}


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _process_started() -> float:
    try:
        import psutil

        return float(psutil.Process().create_time())
    except Exception:  # psutil missing or restricted: the pid alone still helps
        return 0.0


def owner_tags() -> dict[str, str]:
    """The tags naming the process that owns a run (used to find runs left RUNNING by a crash)."""
    return {
        TAG_HOST: socket.gethostname(),
        TAG_PID: str(os.getpid()),
        TAG_PID_STARTED: repr(_process_started()),
    }


def _process_alive(pid: int, started: float) -> bool:
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil is a core dependency
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    try:
        proc = psutil.Process(pid)
        if started and abs(proc.create_time() - started) > 1.0:
            return False  # the pid was reused by another process
        return bool(proc.status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:
        return True


def end_status_for(exc: BaseException | None) -> RunEndStatus:
    """FINISHED without an exception, KILLED for KeyboardInterrupt/SystemExit, else FAILED."""
    if exc is None:
        return "FINISHED"
    if isinstance(exc, KeyboardInterrupt | SystemExit):
        return "KILLED"
    return "FAILED"


def _error_text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:MAX_TAG_LENGTH]


def environment_fingerprint(environment: Mapping[str, Any]) -> str:
    """A short stable hash of an environment description (the bench ``environment`` JSON),
    leaving out what describes the moment (load average, current CPU frequency)."""
    from allele.bench.environment import stable_view

    text = json.dumps(stable_view(dict(environment)), sort_keys=True, default=str,
                      separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _param_value(value: Any) -> str:
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


def _is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the tracking backend cannot be reached right now (vs. a refusal)."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
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
        todo.extend([e.__cause__, e.__context__])
    return False


# ----------------------------------------------------------------------------- delivery
class _Refused(Exception):
    """A record the backend refused for good (it will not be retried)."""


class _Applier:
    """Applies spool-format records to MLflow backends; knows run keys -> run ids."""

    def __init__(self) -> None:
        self._clients: dict[str, Any] = {}
        self._experiments: dict[tuple[str, str], str] = {}
        self.run_ids: dict[tuple[str, str], str] = {}

    def client(self, target: str) -> Any:
        client = self._clients.get(target)
        if client is None:
            require_mlflow()
            from mlflow import MlflowClient

            client = MlflowClient(tracking_uri=target, registry_uri=target)
            self._clients[target] = client
        return client

    def experiment_id(self, target: str, name: str) -> str:
        cached = self._experiments.get((target, name))
        if cached is not None:
            return cached
        client = self.client(target)
        exp = client.get_experiment_by_name(name)
        if exp is None:
            try:
                exp_id = str(client.create_experiment(
                    name, artifact_location=default_artifact_location(target)))
            except Exception as exc:
                if _is_unavailable(exc):
                    raise
                exp = client.get_experiment_by_name(name)  # created concurrently
                if exp is None:
                    raise
                exp_id = str(exp.experiment_id)
        else:
            if exp.lifecycle_stage != "active":
                raise TrackingError(f"MLflow experiment {name!r} at {target} is deleted; restore "
                                    "it or choose another experiment name")
            exp_id = str(exp.experiment_id)
        self._experiments[(target, name)] = exp_id
        return exp_id

    def find_run(self, target: str, experiment: str, run_key: str) -> str | None:
        cached = self.run_ids.get((target, run_key))
        if cached is not None:
            return cached
        exp_id = self.experiment_id(target, experiment)
        runs = self.client(target).search_runs(
            [exp_id], filter_string=f"tags.`{TAG_RUN_KEY}` = '{run_key}'", max_results=2)
        if not runs:
            return None
        run_id = str(runs[0].info.run_id)
        self.run_ids[(target, run_key)] = run_id
        return run_id

    def _require_run(self, target: str, rec: Record) -> str:
        run_id = self.find_run(target, str(rec["experiment"]), str(rec["run"]))
        if run_id is None:
            raise _Refused(f"run {rec['run']} does not exist at {target} (its creation failed)")
        return run_id

    def apply(self, rec: Record, target: str | None = None) -> bool:
        """Deliver one record; True when it created a new MLflow run."""
        target = target or str(rec["target"])
        op = rec["op"]
        client = self.client(target)
        if op == "create_run":
            if self.find_run(target, str(rec["experiment"]), str(rec["run"])) is not None:
                return False
            tags = {str(k): str(v) for k, v in rec.get("tags", {}).items()}
            tags[TAG_RUN_KEY] = str(rec["run"])
            parent = rec.get("parent")
            if parent:
                parent_id = self.find_run(target, str(rec["experiment"]), str(parent))
                if parent_id is None:
                    raise _Refused(f"parent run {parent} of {rec['run']} does not exist")
                tags[TAG_PARENT] = parent_id
            run = client.create_run(
                self.experiment_id(target, str(rec["experiment"])),
                start_time=int(rec["start_time"]),
                tags=tags,
                run_name=rec.get("run_name"),
            )
            self.run_ids[(target, str(rec["run"]))] = str(run.info.run_id)
            return True
        run_id = self._require_run(target, rec)
        if op == "log":
            from mlflow.entities import Metric, Param, RunTag

            client.log_batch(
                run_id,
                metrics=[Metric(str(k), float(v), int(ts), int(step))
                         for k, v, ts, step in rec.get("metrics", [])],
                params=[Param(str(k), str(v)) for k, v in rec.get("params", {}).items()],
                tags=[RunTag(str(k), str(v)) for k, v in rec.get("tags", {}).items()],
                synchronous=True,
            )
        elif op == "artifact":
            path = str(rec["path"])
            if not os.path.exists(path):
                raise _Refused(f"artifact file {path} is gone")
            client.log_artifact(run_id, path, rec.get("artifact_path"))
        elif op == "end":
            tags = rec.get("tags", {})
            if tags:
                from mlflow.entities import RunTag

                client.log_batch(run_id, tags=[RunTag(str(k), str(v)) for k, v in tags.items()],
                                 synchronous=True)
            client.set_terminated(run_id, status=str(rec["status"]), end_time=int(rec["end_time"]))
        else:
            raise _Refused(f"unknown record op {op!r}")
        return False


def _classify(exc: BaseException) -> str:
    if isinstance(exc, _Refused):
        return "refused"
    if _is_unavailable(exc):
        return "unavailable"
    return "refused"


# ----------------------------------------------------------------------------- sync
@dataclass
class SyncReport:
    """What :func:`sync_spool` did."""

    replayed: int = 0
    rejected: int = 0
    pending: int = 0
    runs_created: int = 0
    reaped: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        """True when nothing is left to replay."""
        return self.pending == 0


def sync_spool(
    spool: Spool | str | os.PathLike[str] | None = None,
    tracking_uri: str | None = None,
    *,
    only_target: str | None = None,
    _applier: _Applier | None = None,
) -> SyncReport:
    """Replay every pending spooled record, in order, exactly once.

    ``tracking_uri`` sends every record there instead of the URI it was recorded for;
    ``only_target`` replays only the records recorded for that URI. Replay stops at the first
    record whose backend is unreachable (the rest stay pending); a record the backend refuses is
    marked rejected (with the error) and skipped. When nothing is left pending or rejected the
    spool file is deleted. Afterwards, runs of dead processes still RUNNING in the experiments
    touched are marked FAILED (see :func:`reap_stale_runs`).
    """
    sp = spool if isinstance(spool, Spool) else Spool(spool)
    applier = _applier or _Applier()
    report = SyncReport()
    touched: dict[str, set[str]] = {}
    with sp.lock():
        state = sp.read()
        for (target, rk), run_id in state.run_ids.items():
            applier.run_ids.setdefault((target, rk), run_id)
        todo = [r for r in state.pending if only_target is None or r.get("target") == only_target]
        for i, rec in enumerate(todo):
            target = tracking_uri or str(rec["target"])
            try:
                created = applier.apply(rec, target)
            except Exception as exc:
                if _classify(exc) == "unavailable":
                    report.pending = len(todo) - i
                    report.errors.append(f"{target} unreachable: {exc}")
                    break
                sp.mark_rejected(str(rec["key"]), _error_text(exc), locked=True)
                report.rejected += 1
                report.errors.append(f"record {rec['key']} ({rec['op']}) refused: {exc}")
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
        final = sp.read()
        still_pending = final.pending_run_keys()
        if not final.pending and not final.rejected and sp.path.exists():
            sp.clear(locked=True)  # everything delivered: the spool starts afresh
    if report.complete:
        for target, experiments in touched.items():
            try:
                ids = [applier.experiment_id(target, e) for e in experiments]
                report.reaped += reap_stale_runs(applier.client(target), ids,
                                                 skip_run_keys=still_pending)
            except Exception as exc:
                report.errors.append(f"could not check for stale runs at {target}: {exc}")
    return report


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
        if _process_alive(pid, started):
            continue
        note = (f"process {pid} on {host} ended without closing this run (crash or kill); "
                f"marked FAILED by Allele at {time.strftime('%Y-%m-%dT%H:%M:%S%z')}")
        client.set_tag(run.info.run_id, TAG_NOTE, note)
        client.set_terminated(run.info.run_id, status="FAILED")
        reaped.append(str(run.info.run_id))
    return reaped


# ----------------------------------------------------------------------------- runs
class TrackedRun:
    """One MLflow run written through a tracker. All methods only enqueue; none blocks on I/O."""

    def __init__(self, tracker: MlflowTracker, key: str, name: str | None,
                 parent: TrackedRun | None) -> None:
        self.tracker = tracker
        self.key = key
        self.name = name
        self.parent = parent
        self.status: RunEndStatus | None = None

    def __repr__(self) -> str:
        return f"TrackedRun(name={self.name!r}, key={self.key!r}, status={self.status!r})"

    @property
    def ended(self) -> bool:
        """Whether :meth:`end` was called."""
        return self.status is not None

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0,
                    timestamp_ms: int | None = None) -> None:
        """Log metric values at one step."""
        ts = _now_ms() if timestamp_ms is None else int(timestamp_ms)
        rows = [[str(k), float(v), ts, int(step)] for k, v in metrics.items()]
        self.tracker._enqueue_log(self.key, rows, {}, {})

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log parameters (non-string values as JSON)."""
        self.tracker._enqueue_log(self.key, [], {str(k): _param_value(v)
                                                 for k, v in params.items()}, {})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set tags."""
        self.tracker._enqueue_log(self.key, [], {}, {str(k): str(v)[:MAX_TAG_LENGTH]
                                                     for k, v in tags.items()})

    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        """Log a file as an artifact (it is copied at once, so it may change or go afterwards)."""
        self.tracker._enqueue_artifact(self.key, Path(path), artifact_path)

    def log_text(self, text: str, filename: str, artifact_path: str | None = None) -> None:
        """Log a string as an artifact file named ``filename``."""
        with tempfile.TemporaryDirectory() as tmp:
            p = Path(tmp) / filename
            p.write_text(text, encoding="utf-8")
            self.log_artifact(p, artifact_path)

    def end(self, status: str = "FINISHED", error: BaseException | str | None = None,
            end_time_ms: int | None = None) -> None:
        """End the run (idempotent): FINISHED, FAILED (``error`` becomes a tag) or KILLED."""
        if self.status is not None:
            return
        status = status.upper()
        if status not in END_STATUSES:
            raise TrackingError(f"a run ends FINISHED, FAILED or KILLED, not {status!r}")
        self.status = cast(RunEndStatus, status)
        tags: dict[str, str] = {}
        if error is not None:
            tags[TAG_ERROR] = (_error_text(error) if isinstance(error, BaseException)
                               else str(error)[:MAX_TAG_LENGTH])
        self.tracker._enqueue_end(self, status, tags, end_time_ms)

    def run_id(self, timeout: float | None = 30.0) -> str | None:
        """Flush and return the MLflow run id (None while the tracker is offline)."""
        self.tracker.flush(timeout)
        return self.tracker._applier.run_ids.get((self.tracker.tracking_uri, self.key))

    def __enter__(self) -> TrackedRun:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.end(end_status_for(exc), exc if exc is not None and not isinstance(
            exc, KeyboardInterrupt) else None)


class _Component:
    """Per-component state of an :class:`MlflowObserver` (used only by the writer thread)."""

    __slots__ = ("chat_step", "chat_tags_set", "readout_step", "run", "seq_step")

    def __init__(self, run: TrackedRun) -> None:
        self.run = run
        self.seq_step = 0
        self.readout_step = 0
        self.chat_step = 0
        self.chat_tags_set = False

    def convert(self, stats: object, ts: int) -> tuple[list[list[Any]], dict[str, str]]:
        if isinstance(stats, GenerationStats):
            g = stats.generation
            return [
                ["best", stats.best, ts, g],
                ["mean", stats.mean, ts, g],
                ["std", stats.std, ts, g],
                ["diversity", stats.diversity, ts, g],
                ["generation_seconds", stats.seconds, ts, g],
            ], {}
        if isinstance(stats, SequenceStats):
            s = self.seq_step
            self.seq_step += 1
            rows: list[list[Any]] = [
                ["sequence_steps", stats.steps, ts, s],
                ["sequence_seconds", stats.seconds, ts, s],
                ["state_norm", stats.state_norm, ts, s],
                ["saturated_fraction", stats.saturated_fraction, ts, s],
                ["memory_fill", stats.memory_fill, ts, s],
            ]
            if stats.seconds > 0:
                rows.append(["steps_per_s", stats.steps / stats.seconds, ts, s])
            return rows, {}
        if isinstance(stats, ReadoutStats):
            s = self.readout_step
            self.readout_step += 1
            return [
                ["readout_samples", stats.samples, ts, s],
                ["readout_seconds", stats.seconds, ts, s],
                ["train_nrmse", stats.train_nrmse, ts, s],
            ], {}
        if isinstance(stats, ChatStats):
            s = self.chat_step
            self.chat_step += 1
            rows = [
                ["prompt_tokens", stats.prompt_tokens, ts, s],
                ["completion_tokens", stats.completion_tokens, ts, s],
                ["chat_seconds", stats.seconds, ts, s],
                ["retries", stats.retries, ts, s],
                ["chat_error", 0.0, ts, s],
            ]
            if stats.seconds > 0:
                rows.append(["tokens_per_s", stats.completion_tokens / stats.seconds, ts, s])
            if stats.time_to_first_token is not None:
                rows.append(["time_to_first_token_s", stats.time_to_first_token, ts, s])
            tags: dict[str, str] = {}
            if not self.chat_tags_set:
                tags = {"allele.provider": stats.provider, "allele.model": stats.model}
                self.chat_tags_set = True
            return rows, tags
        if isinstance(stats, ChatErrorStats):
            s = self.chat_step
            self.chat_step += 1
            return [
                ["chat_error", 1.0, ts, s],
                ["chat_seconds", stats.seconds, ts, s],
                ["retries", stats.retries, ts, s],
            ], {"allele.last_error": f"{stats.cause}: {stats.message}"[:MAX_TAG_LENGTH],
                "allele.provider": stats.provider, "allele.model": stats.model}
        return [], {}


def _drop(item: object) -> None:
    """Where a detached observer's events go."""


_KIND_OF_EVENT = {
    "on_generation": "evolution",
    "on_sequence": "kraken",
    "on_readout": "kraken",
    "on_chat": "agent",
    "on_chat_error": "agent",
}


class MlflowObserver:
    """The core observer Protocol, writing to MLflow: each component watched becomes one run.

    A component's run is opened at its first event (named after the component, or
    ``run_name`` when given), nested under ``parent`` when given, and ended by :meth:`close`
    (or leaving the ``with`` block: FINISHED, FAILED with the error, KILLED on Ctrl-C), or by
    the tracker's :meth:`~MlflowTracker.close`. Each event costs one dict lookup, one clock read
    and one deque append; conversion and writing happen in the tracker's background thread.
    """

    def __init__(self, tracker: MlflowTracker, *, run_name: str | None = None,
                 parent: TrackedRun | None = None, tags: Mapping[str, Any] | None = None,
                 params: Mapping[str, Any] | None = None) -> None:
        self.tracker = tracker
        self.run_name = run_name
        self.parent = parent
        self.tags = dict(tags or {})
        self.params = dict(params or {})
        self._components: dict[str, _Component] = {}
        self._kinds: dict[str, str] = {}
        self._lock = threading.Lock()
        self._append: Any = tracker._q.append
        tracker._observers.add(self)

    def _detach(self) -> None:
        """The tracker closed: from now on events are dropped (the writer is gone)."""
        self._append = _drop

    # -- the component -> run map (slow path: first event of a component) ----------------------
    def expect(self, name: str, kind: str) -> None:
        """Note the kind of a component before its first event (used by autolog)."""
        self._kinds[name] = kind

    def _open(self, name: str, event: str) -> _Component:
        with self._lock:
            comp = self._components.get(name)
            if comp is None:
                kind = self._kinds.get(name, _KIND_OF_EVENT[event])
                run = self.tracker.start_run(self.run_name or name, parent=self.parent,
                                             tags={TAG_KIND: kind, "allele.component": name,
                                                   **self.tags},
                                             params=self.params or None)
                comp = _Component(run)
                self._components[name] = comp
            return comp

    def runs(self) -> dict[str, TrackedRun]:
        """The run of each component seen so far."""
        return {name: c.run for name, c in self._components.items()}

    # -- the observer Protocol (hot path) -----------------------------------------------------
    def on_generation(self, name: str, stats: GenerationStats) -> None:
        comp = self._components.get(name) or self._open(name, "on_generation")
        self._append((comp, stats, time.time_ns() // 1_000_000))

    def on_sequence(self, name: str, stats: SequenceStats) -> None:
        comp = self._components.get(name) or self._open(name, "on_sequence")
        self._append((comp, stats, time.time_ns() // 1_000_000))

    def on_readout(self, name: str, stats: ReadoutStats) -> None:
        comp = self._components.get(name) or self._open(name, "on_readout")
        self._append((comp, stats, time.time_ns() // 1_000_000))

    def on_chat(self, name: str, stats: ChatStats) -> None:
        comp = self._components.get(name) or self._open(name, "on_chat")
        self._append((comp, stats, time.time_ns() // 1_000_000))

    def on_chat_error(self, name: str, stats: ChatErrorStats) -> None:
        comp = self._components.get(name) or self._open(name, "on_chat_error")
        self._append((comp, stats, time.time_ns() // 1_000_000))

    # -- lifecycle ------------------------------------------------------------------------------
    def close(self, status: str = "FINISHED", error: BaseException | str | None = None) -> None:
        """End every component run this observer opened."""
        for comp in list(self._components.values()):
            comp.run.end(status, error)

    def __enter__(self) -> MlflowObserver:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close(end_status_for(exc), exc if exc is not None and not isinstance(
            exc, KeyboardInterrupt) else None)


# ----------------------------------------------------------------------------- the tracker
class _FlushMarker:
    __slots__ = ("event",)

    def __init__(self) -> None:
        self.event = threading.Event()


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
        self.tracking_uri: str = tracking_uri
        self.experiment: str = experiment
        self.spool = Spool(spool_path)
        self.flush_interval_s = float(flush_interval_s)
        self.max_buffer = int(max_buffer)
        self.retry_interval_s = float(retry_interval_s)
        self._q: deque[tuple[Any, Any, int]] = deque()
        self._applier = _Applier()
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
            if reap_stale:
                pending = self.spool.read().pending_run_keys()
                self.reaped = reap_stale_runs(self._applier.client(self.tracking_uri),
                                              [self.experiment_id], skip_run_keys=pending)
        except TrackingError:
            raise
        except Exception as exc:
            if not _is_unavailable(exc):
                raise TrackingError(f"MLflow at {self.tracking_uri} refused experiment "
                                    f"{self.experiment!r}: {exc}") from exc
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
                  start_time_ms: int | None = None) -> TrackedRun:
        """Open a run (nested under ``parent`` when given) and return its handle."""
        if self._closed:
            raise TrackingError("this MlflowTracker is closed")
        key = new_key()
        run = TrackedRun(self, key, name, parent)
        all_tags = {**self._owner, **{str(k): str(v)[:MAX_TAG_LENGTH]
                                      for k, v in (tags or {}).items()}}
        rec = {"key": new_key(), "target": self.tracking_uri, "experiment": self.experiment,
               "op": "create_run", "run": key, "run_name": name,
               "parent": parent.key if parent is not None else None, "tags": all_tags,
               "start_time": _now_ms() if start_time_ms is None else int(start_time_ms)}
        with self._runs_lock:
            self._runs[key] = run
        self._q.append((None, rec, _now_ms()))
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

    # -- matrix runs (called by the bench runner) -------------------------------------------------
    def start_matrix_run(self, info: RunInfo) -> TrackedRun:
        """A benchmark matrix run becomes a parent run; spec and environment become artifacts."""
        fp = environment_fingerprint(info.environment)
        run = self.start_run(
            info.name,
            tags={TAG_KIND: "matrix", "allele.bench_run_id": info.id,
                  "allele.spec": info.spec_name, "allele.target": info.target,
                  "allele.env_fingerprint": fp},
            params={"spec_name": info.spec_name, "target": info.target,
                    "cell_count": info.cell_count},
            start_time_ms=int(info.created_at * 1000) if info.created_at else None,
        )
        run.log_text(json.dumps(info.spec, indent=2, sort_keys=True, default=str), "spec.json")
        run.log_text(json.dumps(info.environment, indent=2, sort_keys=True, default=str),
                     "environment.json")
        self._matrix, self._matrix_fp = run, fp
        return run

    def log_cell(self, cell: CellResult, matrix: TrackedRun | None = None) -> TrackedRun:
        """One finished cell becomes a child run: params, tags, every sample and its median."""
        parent = matrix or self._matrix
        if parent is None:
            raise TrackingError("log_cell needs a matrix run: call start_matrix_run first")
        seeds = sorted({s.seed for s in cell.samples})
        started = int(cell.started_at * 1000) if cell.started_at else None
        finished = int(cell.finished_at * 1000) if cell.finished_at else _now_ms()
        tags: dict[str, Any] = {TAG_KIND: "cell", "allele.target": cell.target,
                                "allele.cell_key": cell.key, "allele.cell_status": cell.status,
                                "allele.seed": ",".join(str(s) for s in seeds)}
        if self._matrix_fp is not None and parent is self._matrix:
            tags["allele.env_fingerprint"] = self._matrix_fp
        child = self.start_run(_cell_run_name(cell), parent=parent, tags=tags,
                               params=cell.params or None, start_time_ms=started)
        rows: list[list[Any]] = []
        for metric in cell.metrics():
            values = cell.values(metric)
            rows.extend([metric, v, finished, i] for i, v in enumerate(values))
            finite = sorted(v for v in values if math.isfinite(v))
            if finite:
                rows.append([f"{metric}.median", _median(finite), finished, 0])
        if rows:
            self._enqueue_log(child.key, rows, {}, {})
        if cell.profile:
            child.log_text(cell.profile, "profile.txt")
        ok = cell.status == "ok"
        child.end("FINISHED" if ok else "FAILED",
                  None if ok else (cell.error or cell.status), end_time_ms=finished)
        return child

    def end_matrix_run(self, status: str, report_path: str | os.PathLike[str] | None = None,
                       matrix: TrackedRun | None = None, error: str | None = None) -> None:
        """End the matrix run: ``finished``/``failed``/``interrupted`` (bench statuses) or an
        MLflow status; the HTML report (when given) becomes an artifact."""
        run = matrix or self._matrix
        if run is None:
            raise TrackingError("end_matrix_run without a matrix run")
        mapped = _BENCH_STATUS.get(status, status.upper())
        if mapped == "RUNNING":
            raise TrackingError("end_matrix_run needs a final status, not 'running'")
        if report_path is not None:
            run.log_artifact(report_path)
        run.end(mapped, error)
        if run is self._matrix:
            self._matrix = None

    # -- enqueueing (any thread) --------------------------------------------------------------
    def _enqueue_log(self, run_key: str, metrics: list[list[Any]], params: dict[str, str],
                     tags: dict[str, str]) -> None:
        base = {"target": self.tracking_uri, "experiment": self.experiment}
        for rec in _log_records(base, run_key, metrics, params, tags):
            self._q.append((None, rec, _now_ms()))

    def _enqueue_artifact(self, run_key: str, path: Path, artifact_path: str | None) -> None:
        key = new_key()
        staged = self.spool.stash_artifact(path, key)
        rec = {"key": key, "target": self.tracking_uri, "experiment": self.experiment,
               "op": "artifact", "run": run_key, "path": staged, "artifact_path": artifact_path}
        self._q.append((None, rec, _now_ms()))

    def _enqueue_end(self, run: TrackedRun, status: str, tags: dict[str, str],
                     end_time_ms: int | None) -> None:
        rec = {"key": new_key(), "target": self.tracking_uri, "experiment": self.experiment,
               "op": "end", "run": run.key, "status": status, "tags": tags,
               "end_time": _now_ms() if end_time_ms is None else int(end_time_ms)}
        self._q.append((None, rec, _now_ms()))

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
                age = (_now_ms() - head[2]) / 1000.0
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

    def _drain(self) -> None:
        items: list[tuple[Any, Any, int]] = []
        q = self._q
        self._flush_requested.clear()
        while True:
            try:
                items.append(q.popleft())
            except IndexError:
                break
        records: list[Record] = []
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
                self._deliver(records)
                records = []
                payload.event.set()
            else:
                emit()
                records.append(payload)
        emit()
        self._deliver(records)

    def _go_offline(self, exc: BaseException) -> None:
        if self._online:
            _log.warning("MLflow at %s is unreachable (%s); spooling to %s. Run `allele tracking "
                         "sync` to replay.", self.tracking_uri, exc, self.spool.path)
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
            _log.debug("MLflow at %s still unreachable: %s", self.tracking_uri, exc)
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
                if _classify(exc) == "unavailable":
                    self._go_offline(exc)
                    break
                _log.error("MLflow refused a %s record for run %s: %s; kept in the spool",
                           rec.get("op"), rec.get("run"), exc)
                self.spool.append([rec])
                self.spooled += 1
                i += 1
                continue
            if rec["op"] == "artifact":
                self.spool.drop_artifact(str(rec["key"]))
            self.delivered += 1
            i += 1
        if i < len(records):
            rest = records[i:]
            self.spool.append(rest)
            self.spooled += len(rest)

    def _apply_retrying(self, rec: Record) -> None:
        for attempt in range(3):
            try:
                self._applier.apply(rec, self.tracking_uri)
                return
            except Exception as exc:
                if attempt == 2 or _classify(exc) != "unavailable":
                    raise
                time.sleep(0.2 * (attempt + 1))

    # -- flushing and lifecycle ------------------------------------------------------------------
    def flush(self, timeout: float | None = 60.0) -> bool:
        """Write (or spool) everything enqueued so far; True when done within ``timeout``."""
        if not self._thread.is_alive():
            return not self._q
        marker = _FlushMarker()
        self._q.append((None, marker, _now_ms()))
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
        self.flush(timeout)
        for obs in list(self._observers):
            obs._detach()
        self._stop = True
        self._wake.set()
        self._thread.join(timeout)
        atexit.unregister(self._atexit)

    def _atexit(self) -> None:
        exc = getattr(sys, "last_value", None)
        if not isinstance(exc, BaseException):
            exc = None
        self.close(end_status_for(exc), exc if exc is not None and not isinstance(
            exc, KeyboardInterrupt) else None)

    def __enter__(self) -> MlflowTracker:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close(end_status_for(exc), exc if exc is not None and not isinstance(
            exc, KeyboardInterrupt) else None)


def _median(sorted_values: list[float]) -> float:
    n = len(sorted_values)
    mid = n // 2
    return sorted_values[mid] if n % 2 else (sorted_values[mid - 1] + sorted_values[mid]) / 2


def _cell_run_name(cell: CellResult) -> str:
    parts = ",".join(f"{k}={v}" for k, v in sorted(cell.params.items()))
    name = f"{cell.target}[{parts}]" if parts else cell.target
    return name if len(name) <= 200 else name[:197] + "..."


# ----------------------------------------------------------------------------- bench runner
class MlflowProgress:
    """A bench runner progress sink that mirrors the run into MLflow (and forwards to ``inner``).

    ``start`` opens the matrix (parent) run from the store's run header, ``cell_finished`` logs
    each cell as a child run. The parent is ended by :func:`run_matrix_tracked` (the runner
    knows the final status only after the sink stops).
    """

    def __init__(self, tracker: MlflowTracker, store: Any, inner: Any = None) -> None:
        self.tracker = tracker
        self.store = store
        self.inner = inner
        self.matrix: TrackedRun | None = None

    def start(self, run_name: str, total: int, already_done: int) -> None:
        info = self.store.get_run(run_name)
        self.matrix = self.tracker.start_matrix_run(info)
        if already_done:
            self.matrix.set_tags({"allele.resumed_with_done_cells": already_done})
        if self.inner is not None:
            self.inner.start(run_name, total, already_done)

    def cell_started(self, task: Any) -> None:
        if self.inner is not None:
            self.inner.cell_started(task)

    def cell_finished(self, task: Any, result: CellResult) -> None:
        if self.matrix is not None:
            self.tracker.log_cell(result, self.matrix)
        if self.inner is not None:
            self.inner.cell_finished(task, result)

    def stop(self) -> None:
        if self.inner is not None:
            self.inner.stop()


def run_matrix_tracked(tracker: MlflowTracker, runner: Any, suite: Any = None, *,
                       name: str | None = None, filters: Sequence[str] = (),
                       resume: str | None = None,
                       report_path: str | os.PathLike[str] | None = None) -> Any:
    """Run (or with ``resume`` continue) a matrix with ``runner`` and mirror it into MLflow.

    The runner's progress sink is wrapped for the duration of the call; the matrix run ends
    FINISHED, FAILED (the error as a tag) or KILLED (the runner's ``interrupted``). Returns the
    runner's :class:`~allele.bench.runner.RunSummary`.
    """
    sink = MlflowProgress(tracker, runner.store, runner.progress)
    runner.progress = sink
    try:
        if resume is not None:
            summary = runner.resume(resume)
        else:
            summary = runner.run(suite, name=name, filters=filters)
    except BaseException as exc:
        if sink.matrix is not None:
            tracker.end_matrix_run(end_status_for(exc), matrix=sink.matrix,
                                   error=None if isinstance(exc, KeyboardInterrupt)
                                   else _error_text(exc))
        raise
    finally:
        runner.progress = sink.inner
    if sink.matrix is not None:
        sink.matrix.set_tags({"allele.failed_cells": summary.failed,
                              "allele.bench_status": summary.status})
        tracker.end_matrix_run(summary.status, report_path, matrix=sink.matrix)
    return summary
