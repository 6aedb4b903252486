"""What the live event log means: running matrices and live component series, for the dashboards.

:class:`LiveState` folds tailed events (:mod:`allele.store.live`) and telemetry points into
plain snapshots: for every run seen, its progress (cells planned, done and failed, the cells
running now, the most recent finished ones, samples received and an ETA), and for the live
charts, a bounded window of recent points per series (fitness per generation, Kraken steps per
second, agent latency and tokens per second, process and worker CPU and memory, and the samples
of running cells). Memory is bounded by construction: ``max_runs`` runs, ``window`` points per
series, ``max_series`` series; a long soak keeps a flat footprint.

The ETA is ``remaining cells x elapsed / cells done in this invocation``: the mean rate since the
run (or its resume) started, which is what a randomised matrix order makes meaningful.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from allele.store.live import StoredEvent, read_events
from allele.store.points import MetricPoint

if TYPE_CHECKING:
    from allele.store.results import ResultStore

LIVE_METRICS: tuple[str, ...] = (
    "allele_evolution_best_fitness", "allele_evolution_mean_fitness",
    "allele_kraken_steps_per_second", "allele_kraken_sequence_seconds",
    "allele_agent_request_seconds", "allele_agent_tokens_per_second",
    "allele_process_cpu_percent", "allele_process_rss_bytes",
    "allele_bench_worker_cpu_percent", "allele_bench_worker_rss_bytes",
    "allele_bench_cells_done",
)
"""The telemetry metrics the live charts follow (user metrics are followed too)."""


@dataclass(slots=True)
class RunProgress:
    """One run as the live event log tells it."""

    run_id: str
    name: str = ""
    spec: str = ""
    status: str = "running"
    planned: int = 0
    done: int = 0
    skipped: int = 0
    failed: int = 0
    samples: int = 0
    started_at: float = 0.0
    updated_at: float = 0.0
    finished_at: float | None = None
    running: dict[str, dict[str, Any]] = field(default_factory=dict)
    recent: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=50))
    failures: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=50))

    def eta_s(self, now: float) -> float | None:
        """Seconds until every planned cell is done at the rate so far (None: no rate yet)."""
        new = self.done - self.skipped
        if self.status != "running" or new <= 0 or self.started_at <= 0:
            return None
        rate = new / max(1e-9, now - self.started_at)
        return max(0.0, (self.planned - self.done) / rate)

    def to_dict(self, now: float | None = None) -> dict[str, Any]:
        """A JSON-ready snapshot."""
        at = time.time() if now is None else now
        return {"run_id": self.run_id, "name": self.name, "spec": self.spec,
                "status": self.status, "planned": self.planned, "done": self.done,
                "failed": self.failed, "skipped": self.skipped, "samples": self.samples,
                "started_at": self.started_at, "updated_at": self.updated_at,
                "finished_at": self.finished_at, "eta_s": self.eta_s(at),
                "progress": self.done / self.planned if self.planned else None,
                "running": [{"key": k, **v} for k, v in self.running.items()],
                "recent": list(self.recent), "failures": list(self.failures)}


class LiveState:
    """Folds events and points into run progress and live series (see the module docstring)."""

    def __init__(self, *, max_runs: int = 20, window: int = 300, max_series: int = 200) -> None:
        self.max_runs = max_runs
        self.window = window
        self.max_series = max_series
        self.runs: OrderedDict[str, RunProgress] = OrderedDict()
        self.series: OrderedDict[tuple[str, str, str], deque[tuple[float, float]]] = (
            OrderedDict())
        self.last_event_id = 0
        self.events_seen = 0
        self.points_seen = 0

    # -- events ------------------------------------------------------------------------------

    def _run(self, run_id: str) -> RunProgress:
        run = self.runs.get(run_id)
        if run is None:
            run = self.runs[run_id] = RunProgress(run_id)
            while len(self.runs) > self.max_runs:
                self.runs.popitem(last=False)
        return run

    def apply(self, events: Iterable[StoredEvent]) -> set[str]:
        """Fold events in; returns the ids of the runs they changed."""
        changed: set[str] = set()
        for e in events:
            self.events_seen += 1
            self.last_event_id = max(self.last_event_id, e.id)
            if e.run_id is None:
                continue
            self._apply_one(self._run(e.run_id), e)
            changed.add(e.run_id)
        return changed

    def _apply_one(self, run: RunProgress, e: StoredEvent) -> None:
        d = e.data
        run.updated_at = max(run.updated_at, e.ts)
        if e.kind == "run_started":
            run.name, run.spec = str(d.get("name", "")), str(d.get("spec", ""))
            run.planned = int(d.get("cells", 0))
            run.skipped = run.done = int(d.get("skipped", 0))
            run.failed = 0
            run.status, run.started_at, run.finished_at = "running", e.ts, None
        elif e.kind == "cell_started":
            run.running[str(d.get("key"))] = {
                "benchmark": d.get("benchmark"), "params": d.get("params", {}),
                "round": d.get("round", 0), "rounds": d.get("rounds", 1), "started_at": e.ts}
        elif e.kind == "samples":
            values = d.get("values", {})
            run.samples += sum(len(v) for v in values.values())
            for metric, vals in values.items():
                key = ("sample:" + metric, str(d.get("key")), run.run_id)
                self._points(key, [(e.ts, float(v)) for v in vals])
        elif e.kind == "cell_finished":
            run.running.pop(str(d.get("key")), None)
        elif e.kind == "cell_stored":
            run.running.pop(str(d.get("key")), None)
            run.done = int(d["done"]) if d.get("done") is not None else run.done + 1
            if d.get("failed") is not None:
                run.failed = int(d["failed"])
            item = {"key": d.get("key"), "status": d.get("status"), "at": e.ts,
                    "error": d.get("error")}
            run.recent.append(item)
            if d.get("status") != "ok":
                run.failures.append(item)
        elif e.kind == "run_finished":
            run.status, run.finished_at = str(d.get("status", "finished")), e.ts
            run.running.clear()

    # -- points ------------------------------------------------------------------------------

    def _points(self, key: tuple[str, str, str], pts: Sequence[tuple[float, float]]) -> None:
        ring = self.series.get(key)
        if ring is None:
            ring = self.series[key] = deque(maxlen=self.window)
            while len(self.series) > self.max_series:
                self.series.popitem(last=False)
        else:
            self.series.move_to_end(key)
        ring.extend(pts)

    def apply_points(self, points: Iterable[tuple[int, MetricPoint]]) -> int:
        """Fold telemetry points in (every metric is kept; the oldest series are evicted past
        ``max_series``); returns how many."""
        n = 0
        for _, p in points:
            labels = ",".join(f"{k}={v}" for k, v in p.labels if k != "run")
            self._points((p.metric, p.component, labels), [(p.timestamp, p.value)])
            n += 1
        self.points_seen += n
        return n

    # -- snapshots ---------------------------------------------------------------------------

    def snapshot(self, now: float | None = None) -> dict[str, Any]:
        """Every run's progress (newest first) and every live series, JSON-ready."""
        at = time.time() if now is None else now
        runs = [r.to_dict(at) for r in reversed(self.runs.values())]
        series = [{"metric": m, "component": c, "labels": lab,
                   "t": [p[0] for p in ring], "v": [p[1] for p in ring]}
                  for (m, c, lab), ring in self.series.items()]
        return {"now": at, "last_event_id": self.last_event_id, "runs": runs, "series": series}

    def bootstrap(self, store: ResultStore, *, runs: int = 5, limit: int = 20_000) -> None:
        """Rebuild the newest ``runs`` runs' progress from the event log (what a dashboard does
        when it opens while a matrix is already running), and of any other run among the
        newest ``limit`` events (a run in another store, publishing here), and the live series
        of the newest ``limit`` telemetry points."""
        from allele.store.live import last_ids, newest_points_start, read_points_after

        newest, _ = last_ids(store)
        start = newest_points_start(store, limit)
        self.apply_points(read_points_after(store, start, limit=2 * limit))
        recent = read_events(store, max(0, newest - limit), limit=limit)
        seen = {e.run_id for e in recent}
        for info in reversed(store.list_runs(runs)):
            seen.discard(info.id)
            events = read_events(store, 0, run_id=info.id, limit=limit)
            if events:
                self.apply(events)
            else:  # a run recorded without live telemetry: its header is all there is
                run = self._run(info.id)
                run.name, run.spec, run.status = info.name, info.spec_name, info.status
                run.planned = run.done = info.cell_count
                run.failed = info.failed_count
                run.started_at = info.created_at
                run.finished_at = info.finished_at
        self.apply(e for e in recent if e.run_id in seen)
