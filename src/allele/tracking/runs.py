"""Run handles and the observer: what user code and the core components write to.

* :class:`TrackedRun`: one MLflow run (params, tags, metrics, artifacts, its end);
* :class:`MlflowObserver`: the core observer Protocol; every component it watches (an evolution
  engine, a Kraken network, an agent) becomes a run whose per-step metrics come from the events.

Nothing here blocks on I/O: every method appends to the tracker's queue, and an observer event
costs one dict lookup, one clock read and one deque append (the stats are converted to metric
rows later, by the tracker's writer thread, through the per-component :class:`_Component`).
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, cast

from allele.core.observer import (
    ChatErrorStats,
    ChatStats,
    GenerationStats,
    ReadoutStats,
    SequenceStats,
)
from allele.errors import TrackingError
from allele.tracking._common import (
    END_STATUSES,
    MAX_TAG_LENGTH,
    TAG_ERROR,
    TAG_KIND,
    RunEndStatus,
    end_status_for,
    error_text,
    now_ms,
    param_value,
    recorded_error,
)

if TYPE_CHECKING:
    from allele.tracking.tracker import MlflowTracker


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
        ts = now_ms() if timestamp_ms is None else int(timestamp_ms)
        rows = [[str(k), float(v), ts, int(step)] for k, v in metrics.items()]
        self.tracker._enqueue_log(self.key, rows, {}, {})

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Log parameters (non-string values as JSON)."""
        self.tracker._enqueue_log(self.key, [], {str(k): param_value(v)
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
            tags[TAG_ERROR] = (error_text(error) if isinstance(error, BaseException)
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
        self.end(end_status_for(exc), recorded_error(exc))


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
    the tracker's :meth:`~allele.tracking.tracker.MlflowTracker.close`. Each event costs one
    dict lookup, one clock read and one deque append; conversion and writing happen in the
    tracker's background thread.
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
        self.close(end_status_for(exc), recorded_error(exc))
