"""Live telemetry of a matrix run: what ``allele bench run`` publishes while it runs.

Two halves:

* **in the worker** (where a cell runs): :class:`WorkerLive` collects, after every measured
  call and so *outside* the timed region, the samples of that call, the observer events of the
  components the target created (EvolutionEngine, KrakenLNN, NLPAgent: a recording observer is
  installed as the process-wide default) and the updates of the user's own metrics
  (:mod:`allele.observe.usermetrics`), and forwards them to the runner as a :class:`LiveBatch`
  at most every ``forward_interval_s`` (0.25 s) and at the end of the cell;
* **in the runner**: :class:`RunLive` receives the run and cell lifecycle from the
  :class:`~allele.bench.runner.Runner` and the forwarded batches from the executor, and
  publishes everything to the store through a :class:`~allele.observe.live.LivePublisher`
  (every 0.5 s): events ``run_started``, ``cell_started``, ``samples``, ``cell_finished``,
  ``cell_stored``, ``run_finished``; telemetry points of the forwarded component events (the
  latest value of each counter and gauge per tick, under ``<worker pid>:<component>``), of the
  user metrics, and of the workers' CPU and memory
  (``allele_bench_worker_cpu_percent`` / ``allele_bench_worker_rss_bytes``, sampled with psutil
  every tick; the CPU figure is percent of one core, measured by :class:`CpuMeter` over at
  least :data:`MIN_CPU_INTERVAL_S`). With ``metrics_port`` it also serves all of it on
  ``/metrics`` for Prometheus.

Progress is told in cells (``cell_stored`` carries ``done``, as soon as the cell is committed;
a cell the instruction phase stores again with its counts says ``again`` and is not counted
twice) and in tasks, the units the runner
completes (one round of one cell: ``run_started`` carries ``tasks_total`` and
``tasks_skipped``, every ``cell_finished`` the ``tasks_done`` so far). A ``samples`` event
carries ``n``, the samples (measured calls, one per seed and repeat) in it, and ``values``, each
metric's values.

What an event means for a dashboard (progress, ETA) is :mod:`allele.bench.livestate`'s job.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from allele.bench.livestate import RoundSamples
from allele.bench.task import CellTask
from allele.store.model import CellResult, RunInfo, Sample
from allele.store.points import MetricPoint

if TYPE_CHECKING:
    from allele.bench.run_protocols import RunSummary
    from allele.observe.export import MetricsServer
    from allele.observe.usermetrics import SeriesUpdate
    from allele.store.results import ResultStore

FORWARD_INTERVAL_S = 0.25
MAX_EVENTS_PER_BATCH = 20_000
"""Observer events one forwarded batch carries at most (the rest are counted as dropped)."""
BENCH_COMPONENT = "bench"
MIN_CPU_INTERVAL_S = 0.2
"""A worker's CPU percent is computed over at least this much wall time: over a few
milliseconds (the flush when a run ends) the 10 ms resolution of CPU times gives 800 %."""


class CpuMeter:
    """CPU use per process in percent of one core, from its CPU seconds (user + system) between
    two readings at least ``min_interval_s`` apart on ``clock``: a reading sooner than that
    gives None and keeps the earlier one as the base. A value is at most ``100 x cores`` (the
    most a process can use; more is rounding of CPU times)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic,
                 min_interval_s: float = MIN_CPU_INTERVAL_S, cores: int | None = None) -> None:
        self.clock = clock
        self.min_interval_s = min_interval_s
        self.cores = max(1, cores if cores is not None else (os.cpu_count() or 1))
        self._base: dict[int, tuple[float, float]] = {}

    def percent(self, pid: int, cpu_seconds: float) -> float | None:
        """Percent of one core since the base reading of ``pid`` (None: first reading, or too
        soon after the base)."""
        now = self.clock()
        base = self._base.get(pid)
        if base is None or cpu_seconds < base[1]:  # first seen, or a reused pid
            self._base[pid] = (now, cpu_seconds)
            return None
        elapsed = now - base[0]
        if elapsed < self.min_interval_s:
            return None
        self._base[pid] = (now, cpu_seconds)
        return min(100.0 * self.cores, max(0.0, 100.0 * (cpu_seconds - base[1]) / elapsed))

    def forget(self, keep: set[int]) -> None:
        """Drop the bases of processes not in ``keep``."""
        for pid in [p for p in self._base if p not in keep]:
            del self._base[pid]


@dataclass(frozen=True, slots=True)
class LiveBatch:
    """What a worker forwards: one cell's new samples, component events and user metric
    updates (picklable)."""

    key: str
    round: int
    pid: int
    ts: float
    samples: tuple[tuple[str, float, int, int], ...] = ()
    events: tuple[tuple[str, float, Any], ...] = ()
    """``(component name, timestamp, stats)`` observer events."""
    user: tuple[SeriesUpdate, ...] = ()
    dropped: int = 0


class _Recorder:
    """An observer that keeps ``(name, timestamp, stats)`` of every event (one append)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, float, Any]] = []
        self.dropped = 0
        clock = time.time
        events = self.events

        def keep(name: str, stats: Any) -> None:
            if len(events) < MAX_EVENTS_PER_BATCH:
                events.append((name, clock(), stats))
            else:
                self.dropped += 1

        self.on_generation = self.on_sequence = self.on_readout = keep
        self.on_chat = self.on_chat_error = keep

    def take(self) -> tuple[list[tuple[str, float, Any]], int]:
        out, dropped = list(self.events), self.dropped
        self.events.clear()
        self.dropped = 0
        return out, dropped


_RECORDER: _Recorder | None = None
_INSTALL_LOCK = threading.Lock()


def _recorder() -> _Recorder:
    """The process's recording observer, installed as the default observer on first use."""
    global _RECORDER
    with _INSTALL_LOCK:
        if _RECORDER is None:
            from allele.observe.install import install

            _RECORDER = _Recorder()
            install(_RECORDER)
        return _RECORDER


class WorkerLive:
    """The worker half (see the module docstring): ``after_call`` is given to
    :func:`allele.bench.profiler.run_cell` as its ``on_call`` hook."""

    def __init__(self, task: CellTask, send: Callable[[LiveBatch], None], *,
                 interval_s: float = FORWARD_INTERVAL_S, per_cell: bool = False) -> None:
        from allele.observe.usermetrics import REGISTRY

        self.task = task
        self._send = send
        self.interval_s = interval_s
        self._user = REGISTRY
        self._uninstall: Callable[[], None] | None = None
        if per_cell:  # in the runner's own process: observe this cell only (see close)
            from allele.observe.install import install

            self._rec = _Recorder()
            self._uninstall = install(self._rec)
        else:  # a worker process: its default observer for good
            self._rec = _recorder()
            self._rec.take()  # events from before this cell are not its own
        self._samples: list[tuple[str, float, int, int]] = []
        self._last = time.monotonic()
        self.failed = False

    def after_call(self, samples: Sequence[Sample]) -> None:
        """Keep one call's samples; forward when the interval has passed."""
        self._samples.extend((s.metric, s.value, s.seed, s.repeat) for s in samples)
        if time.monotonic() - self._last >= self.interval_s:
            self.flush()

    def flush(self) -> None:
        """Forward what accumulated (nothing is sent when there is nothing new)."""
        self._last = time.monotonic()
        events, dropped = self._rec.take()
        user = self._user.take_updates()
        if not (self._samples or events or user or dropped) or self.failed:
            return
        batch = LiveBatch(self.task.key, self.task.round, os.getpid(), time.time(),
                          tuple(self._samples), tuple(events), tuple(user), dropped)
        self._samples = []
        try:
            self._send(batch)
        except Exception:  # a broken pipe: the runner is gone; the cell's result decides
            self.failed = True


    def close(self) -> None:
        """Forward what is left and, for a cell run in the runner's process, restore the
        default observer it replaced."""
        self.flush()
        if self._uninstall is not None:
            self._uninstall()
            self._uninstall = None


def worker_live(task: CellTask, send: Callable[[LiveBatch], None], *,
                per_cell: bool = False) -> WorkerLive | None:
    """A :class:`WorkerLive` for ``task`` when the runner asked for live telemetry, else None.
    ``per_cell``: the cell runs in the runner's own process (the inline executor), so the
    recording observer is installed for this cell only and removed by :meth:`WorkerLive.close`.
    """
    return WorkerLive(task, send, per_cell=per_cell) if getattr(task, "live", False) else None


@dataclass(slots=True)
class _RunState:
    info: RunInfo
    cells: int
    tasks: int
    done: int = 0
    failed: int = 0
    running: set[str] = field(default_factory=set)
    samples: RoundSamples = field(default_factory=RoundSamples)
    """The run's samples: a round that runs again replaces its earlier attempt's."""
    received: int = 0
    """Every sample received, reruns included (the counter ``allele_bench_samples_total``)."""
    tasks_total: int = 0
    tasks_done: int = 0
    shown: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    """The status and error of each cell this invocation stored (stored again, it may
    change)."""


class RunLive:
    """The runner half (see the module docstring): an event sink for
    :class:`~allele.bench.runner.Runner` (its ``live`` argument).

    ``store``: where events and points go. ``metrics_port``: also serve ``/metrics`` there
    (0 picks a free port; ``None``: no server). ``interval_s``: the flush interval (<= 0.5 s).
    """

    def __init__(self, store: ResultStore, *, metrics_port: int | None = None,
                 host: str = "127.0.0.1", interval_s: float = 0.5,
                 sample_workers: bool = True) -> None:
        from allele.observe.live import LivePublisher
        from allele.observe.telemetry import Telemetry
        from allele.observe.usermetrics import UserMetrics

        self.store = store
        # Component events are folded here; the store gets each changed series' latest value
        # every tick (see _sample_components), not one point per event.
        self.telemetry = Telemetry(sink=None, background=False, system=False)
        self._dirty: set[str] = set()
        self.user = UserMetrics()
        self.publisher = LivePublisher(store, source=f"bench:{os.getpid()}",
                                       interval_s=interval_s, telemetry=self.telemetry,
                                       user=self.user)
        self._lock = threading.Lock()
        self._run: _RunState | None = None
        self._pids: Callable[[], list[int]] = lambda: []
        self._procs: dict[int, Any] = {}
        self.cpu = CpuMeter()
        self.resources: dict[str, tuple[float, float]] = {}
        """Latest ``(cpu percent, rss bytes)`` per worker (``runner`` for this process)."""
        self.dropped_events = 0
        self.batches = 0
        self.publisher.on_tick(self._sample_components)
        if sample_workers:
            self.publisher.on_tick(self._sample_workers)
        self.server: MetricsServer | None = None
        if metrics_port is not None:
            self.server = self._serve(metrics_port, host)

    # -- Prometheus ------------------------------------------------------------------------

    def _serve(self, port: int, host: str) -> MetricsServer:
        from allele.observe.export import make_registry, serve
        from allele.observe.usermetrics import UserMetricsCollector

        registry = make_registry(self.telemetry, collectors=[UserMetricsCollector(self.user),
                                                             RunCollector(self)])
        return serve(registry, port, host)

    # -- runner hooks ----------------------------------------------------------------------

    def attach(self, pids: Callable[[], list[int]]) -> None:
        """Where the worker processes' pids come from (the executor of the current phase)."""
        self._pids = pids

    def run_started(self, info: RunInfo, cells: int, tasks: int, skipped: int,
                    skipped_tasks: int = 0) -> None:
        """``cells``/``tasks``: of this invocation; ``skipped``/``skipped_tasks``: already
        stored (a resume)."""
        with self._lock:
            self._run = _RunState(info, cells + skipped, tasks, done=skipped,
                                  tasks_total=tasks + skipped_tasks, tasks_done=skipped_tasks)
        self.publisher.emit("run_started", info.id, name=info.name, spec=info.spec_name,
                            target=info.target, cells=cells + skipped, tasks=tasks,
                            skipped=skipped, tasks_total=tasks + skipped_tasks,
                            tasks_skipped=skipped_tasks, created_at=info.created_at)

    def cell_started(self, task: CellTask) -> None:
        run = self._run
        if run is not None:
            with self._lock:
                run.running.add(task.key)
                run.samples.started(task.key, task.round)
        self.publisher.emit("cell_started", _run_id(run), key=task.key,
                            benchmark=task.benchmark, target=task.target,
                            params=dict(task.params), round=task.round, rounds=task.rounds,
                            index=task.index)

    def live(self, batch: LiveBatch) -> None:
        """A batch forwarded by a worker (called on the runner's thread)."""
        run = self._run
        self.batches += 1
        self.dropped_events += batch.dropped
        if batch.samples:
            by_metric: dict[str, list[float]] = {}
            for metric, value, _, _ in batch.samples:
                by_metric.setdefault(metric, []).append(value)
            n = len({(seed, repeat) for _, _, seed, repeat in batch.samples})
            with self._lock:
                if run is not None:
                    run.samples.add(batch.key, batch.round, n)
                    run.received += n
            self.publisher.emit("samples", _run_id(run), ts=batch.ts, key=batch.key,
                                round=batch.round, worker=batch.pid, n=n, values=by_metric)
        for name, ts, stats in batch.events:
            component = f"{batch.pid}:{name}"
            self.telemetry.record_at(component, ts, stats)
            self._dirty.add(component)
        if batch.user:
            self.user.apply(batch.user)

    def cell_finished(self, task: CellTask | None, result: CellResult) -> None:
        """One task (a round of a cell) ended."""
        run = self._run
        if run is not None:
            with self._lock:
                run.tasks_done += 1
        self.publisher.emit("cell_finished", _run_id(run), key=result.key,
                            tasks_done=run.tasks_done if run else None,
                            status=result.status, error=result.error,
                            round=task.round if task is not None else 0,
                            seconds=max(0.0, result.finished_at - result.started_at),
                            n_samples=len(result.samples))

    def cell_stored(self, result: CellResult, again: bool = False) -> None:
        """A cell was committed to the store. ``again``: it was counted done before (its
        timings committed, or stored before a resume) and is stored again with its
        instruction counts: its status may change, the cells done do not (no event when
        neither its status nor its error did)."""
        run = self._run
        if run is not None:
            with self._lock:
                shown, before = (result.status, result.error), run.shown.get(result.key)
                bad = result.status != "ok"
                if not again:
                    run.done += 1
                    run.failed += bad
                elif before == shown:
                    return
                elif bad != (before is not None and before[0] != "ok"):
                    run.failed += 1 if bad else -1
                run.shown[result.key] = shown
                run.running.discard(result.key)
                run.samples.stored(result.key)
        self.publisher.emit("cell_stored", _run_id(run), key=result.key, status=result.status,
                            error=result.error, done=run.done if run else None,
                            failed=run.failed if run else None, again=again)
        self._progress_points()

    def run_finished(self, summary: RunSummary) -> None:
        self.publisher.emit("run_finished", summary.run_id, name=summary.name,
                            status=summary.status, executed=summary.executed,
                            skipped=summary.skipped, failed=summary.failed,
                            seconds=summary.seconds)
        self._progress_points()
        self.publisher.flush()

    # -- points ----------------------------------------------------------------------------

    def _progress_points(self) -> None:
        run = self._run
        if run is None:
            return
        now = time.time()
        lab = (("run", run.info.name),)
        self.publisher.add_points([
            MetricPoint("allele_bench_cells_done", BENCH_COMPONENT, lab, now, float(run.done)),
            MetricPoint("allele_bench_cells_failed", BENCH_COMPONENT, lab, now,
                        float(run.failed)),
            MetricPoint("allele_bench_cells_planned", BENCH_COMPONENT, lab, now,
                        float(run.cells))])

    def _sample_components(self) -> None:
        """The latest value of every counter and gauge of the components that reported since
        the last tick, as points. A fast evolution makes hundreds of generations a second;
        storing a point per metric and generation cost +49% CPU on a small matrix (measured,
        benchmarks/dashboard_speed.py), a point per series and tick costs next to nothing."""
        if not self._dirty:
            return
        dirty, self._dirty = self._dirty, set()
        now = time.time()
        points = []
        for fam in self.telemetry.snapshot():
            m = fam.metric
            for comp, values, v in fam.samples:
                if comp in dirty:
                    points.append(MetricPoint(m.name, comp,
                                              tuple(zip(m.label_names, values, strict=True)),
                                              now, v))
        self.publisher.add_points(points)

    def _sample_workers(self) -> None:
        import psutil

        pids = {"runner": os.getpid()}
        with contextlib.suppress(Exception):
            pids.update({str(p): p for p in self._pids()})
        now = time.time()
        run = self._run
        points = []
        for label, pid in pids.items():
            try:
                proc = self._procs.get(pid)
                if proc is None:
                    proc = self._procs[pid] = psutil.Process(pid)
                with proc.oneshot():
                    times = proc.cpu_times()
                    rss = float(proc.memory_info().rss)
            except psutil.Error:
                self._procs.pop(pid, None)
                continue
            cpu = self.cpu.percent(pid, float(times.user + times.system))
            lab = (("run", run.info.name if run else ""), ("worker", label))
            if cpu is not None:  # else too soon after the last reading to mean anything
                self.resources[label] = (cpu, rss)
                points.append(MetricPoint("allele_bench_worker_cpu_percent", BENCH_COMPONENT,
                                          lab, now, cpu))
            points.append(MetricPoint("allele_bench_worker_rss_bytes", BENCH_COMPONENT, lab,
                                      now, rss))
        live_pids = set(pids.values())
        for pid in [p for p in self._procs if p not in live_pids]:
            self._procs.pop(pid, None)
        self.cpu.forget(live_pids)
        self.resources = {k: v for k, v in self.resources.items() if k in pids}
        self.publisher.add_points(points)

    def progress(self) -> dict[str, Any] | None:
        """The current run's counts (for ``/metrics``), or None before it starts."""
        run = self._run
        if run is None:
            return None
        with self._lock:
            return {"run": run.info.name, "planned": run.cells, "done": run.done,
                    "failed": run.failed, "running": len(run.running),
                    "samples": run.samples.total, "received": run.received,
                    "tasks": run.tasks_total, "tasks_done": run.tasks_done}

    def close(self) -> None:
        """Flush what is left and stop serving."""
        self.publisher.close()
        if self.server is not None:
            self.server.close()
            self.server = None


def _run_id(run: _RunState | None) -> str | None:
    return run.info.id if run is not None else None


class RunCollector:
    """A prometheus-client collector of a running matrix: cell counts and worker resources."""

    def __init__(self, live: RunLive) -> None:
        self.live = live

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        p = self.live.progress()
        cells = GaugeMetricFamily("allele_bench_cells", "Cells of the running matrix by state.",
                                  labels=["run", "state"])
        samples = CounterMetricFamily("allele_bench_samples",
                                      "Samples received live (a rerun round's included).",
                                      labels=["run"])
        if p is not None:
            for state in ("planned", "done", "failed", "running"):
                cells.add_metric([p["run"], state], float(p[state]))
            samples.add_metric([p["run"]], float(p["received"]))
        yield cells
        yield samples
        cpu = GaugeMetricFamily("allele_bench_worker_cpu_percent",
                                "CPU use of the runner and its workers (percent of one core).",
                                labels=["worker"])
        rss = GaugeMetricFamily("allele_bench_worker_rss_bytes",
                                "Resident memory of the runner and its workers.",
                                labels=["worker"])
        for worker, (c, r) in sorted(self.live.resources.items()):
            cpu.add_metric([worker], c)
            rss.add_metric([worker], r)
        yield cpu
        yield rss
