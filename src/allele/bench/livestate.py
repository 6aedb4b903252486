"""What the live event log means: running matrices and live component series, for the dashboards.

:class:`LiveState` folds tailed events (:mod:`allele.store.live`) and telemetry points into
plain snapshots: for every run seen, its progress (cells planned, done and failed, tasks planned
and done, the cells running now, the most recent finished ones, samples received and an ETA),
and for the live charts, a bounded window of recent points per series (fitness per generation,
Kraken steps per second, agent latency and tokens per second, process and worker CPU and memory,
user metrics, and the samples of running cells). Memory is bounded by construction:
``max_runs`` runs, ``window`` points per series, ``max_series`` component series and
``max_sample_series`` sample series (kept apart, so that the samples of many cells never push
the component series out); a long soak keeps a flat footprint.

Progress counts **tasks**, the units of work the runner completes: one round of one cell (a
cell of ``rounds: 3`` is three tasks, stored as one cell once its last round is in). Runs order
their rounds one after the other, so no cell is stored before the last round starts: counting
stored cells would show 0 % for most of such a run. The ETA is ``remaining tasks x elapsed /
tasks done in this invocation``: the mean rate since the run (or its resume) started, which is
what a randomised matrix order makes meaningful. Cells done are the cells committed: a cell the
instruction phase stores again with its counts (``again``) replaces its entry in the recent
ones. Events of a runner that did not report tasks (older versions) are counted in cells, as
before.

A resumed run (``--resume``) keeps only the tasks of the cells its earlier invocations stored
(``run_started`` carries them as ``tasks_skipped``); the rounds of a cell that was not stored yet
run again. Its progress curve goes on from those tasks kept after a break (a ``None`` point, so
that no line is drawn down from what the interrupted invocation had done), and ``resumes`` says,
for each resume, how many tasks were done before and how many of them were kept.

A run whose runner was killed (``kill -9``, a crash) never says goodbye: :meth:`LiveState.
check_holders` reads the run's lease and shows such a run ``interrupted``, as
:func:`allele.bench.lease.shown_status` decides (its runner process is gone).
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

SAMPLE_PREFIX = "sample:"
"""Series of a cell's samples are named ``sample:<metric>``, labelled with the run id."""
CURVE_POINTS = 500
"""Points of a run's progress curve kept (the oldest are dropped past it)."""
HOLDER_CHECK_S = 2.0
"""How often (at most) :meth:`LiveState.check_holders` reads the leases of running runs."""


class RoundSamples:
    """Samples received live, counted per task (a round of a cell) so that a round that runs
    again replaces what its earlier attempt streamed: a worker that died mid-round, a batch
    given up past its deadline or a run resumed after an interruption reruns the round, and
    the samples of the attempt thrown away are not samples of the run. A cell's entries go
    once it is stored (it runs no more)."""

    def __init__(self) -> None:
        self.total = 0
        self._rounds: dict[tuple[str, int], int] = {}

    def started(self, key: str, round_: int) -> None:
        """Round ``round_`` of cell ``key`` (re)starts: its earlier attempt's samples go."""
        self.total -= self._rounds.pop((key, round_), 0)

    def add(self, key: str, round_: int, n: int) -> None:
        self._rounds[(key, round_)] = self._rounds.get((key, round_), 0) + n
        self.total += n

    def stored(self, key: str) -> None:
        """Cell ``key`` is stored: its rounds are final."""
        for k in [k for k in self._rounds if k[0] == key]:
            del self._rounds[k]


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
    tasks: int | None = None
    """Tasks (cell rounds) of the whole plan; None: the runner did not say (count cells)."""
    tasks_done: int = 0
    tasks_skipped: int = 0
    started_at: float = 0.0
    updated_at: float = 0.0
    finished_at: float | None = None
    holder_gone: bool = False
    """The run is stored ``running`` but the process holding its lease is gone."""
    running: dict[str, dict[str, Any]] = field(default_factory=dict)
    recent: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=50))
    failures: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=50))
    curve: deque[tuple[float, int | None]] = field(
        default_factory=lambda: deque(maxlen=CURVE_POINTS))
    """``(time, units done)`` after each unit of progress (tasks, or cells; see :meth:`units`);
    ``None`` breaks the curve where a resume starts again from the units kept."""
    resumes: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=20))
    """Each resume seen: ``at``, the units ``before`` it (done by the earlier invocation) and
    the units ``kept`` (those of the stored cells; the rounds of the others run again)."""
    counted: RoundSamples = field(default_factory=RoundSamples, repr=False)

    @property
    def samples(self) -> int:
        """Samples received live: one per measured call (seed x repeat), whatever its metrics;
        a round that runs again replaces its earlier attempt's (:class:`RoundSamples`)."""
        return self.counted.total

    def units(self) -> tuple[int, int, int]:
        """``(planned, done, skipped)`` in the unit progress is counted in: tasks when the
        runner reported them, else cells."""
        if self.tasks is not None:
            return self.tasks, self.tasks_done, self.tasks_skipped
        return self.planned, self.done, self.skipped

    def eta_s(self, now: float) -> float | None:
        """Seconds until every planned task is done at the rate so far (None: no rate yet)."""
        planned, done, skipped = self.units()
        new = done - skipped
        if self.status != "running" or new <= 0 or self.started_at <= 0:
            return None
        rate = new / max(1e-9, now - self.started_at)
        return max(0.0, (planned - done) / rate)

    def to_dict(self, now: float | None = None) -> dict[str, Any]:
        """A JSON-ready snapshot."""
        at = time.time() if now is None else now
        planned, done, _ = self.units()
        return {"run_id": self.run_id, "name": self.name, "spec": self.spec,
                "status": self.status, "planned": self.planned, "done": self.done,
                "failed": self.failed, "skipped": self.skipped, "tasks": self.tasks,
                "tasks_done": self.tasks_done, "tasks_skipped": self.tasks_skipped,
                "samples": self.samples, "started_at": self.started_at,
                "updated_at": self.updated_at, "finished_at": self.finished_at,
                "holder_gone": self.holder_gone, "eta_s": self.eta_s(at),
                "progress": min(1.0, done / planned) if planned else None,
                "curve": {"t": [p[0] for p in self.curve], "v": [p[1] for p in self.curve]},
                "resumes": list(self.resumes),
                "running": [{"key": k, **v} for k, v in self.running.items()],
                "recent": list(self.recent), "failures": list(self.failures)}


def _samples_in(d: dict[str, Any]) -> int:
    """Samples (measured calls) in one ``samples`` event: its ``n``, or for events of older
    runners, the longest of its metrics' value lists (each call gives every metric once)."""
    if d.get("n") is not None:
        return int(d["n"])
    values = d.get("values") or {}
    return max((len(v) for v in values.values()), default=0)


class LiveState:
    """Folds events and points into run progress and live series (see the module docstring)."""

    def __init__(self, *, max_runs: int = 20, window: int = 300, max_series: int = 200,
                 max_sample_series: int = 100) -> None:
        self.max_runs = max_runs
        self.window = window
        self.max_series = max_series
        self.max_sample_series = max_sample_series
        self.runs: OrderedDict[str, RunProgress] = OrderedDict()
        self.series: OrderedDict[tuple[str, str, str], deque[tuple[float, float]]] = (
            OrderedDict())
        self.sample_series: OrderedDict[tuple[str, str, str], deque[tuple[float, float]]] = (
            OrderedDict())
        self.last_event_id = 0
        self.events_seen = 0
        self.points_seen = 0
        self._holders_checked = float("-inf")

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
            _started(run, e)
        elif e.kind == "cell_started":
            run.counted.started(str(d.get("key")), int(d.get("round") or 0))
            run.running[str(d.get("key"))] = {
                "benchmark": d.get("benchmark"), "params": d.get("params", {}),
                "round": d.get("round", 0), "rounds": d.get("rounds", 1), "started_at": e.ts}
        elif e.kind == "samples":
            run.counted.add(str(d.get("key")), int(d.get("round") or 0), _samples_in(d))
            for metric, vals in (d.get("values") or {}).items():
                key = (SAMPLE_PREFIX + metric, str(d.get("key")), run.run_id)
                self._points(key, [(e.ts, float(v)) for v in vals])
        elif e.kind == "cell_finished":
            run.running.pop(str(d.get("key")), None)
            if run.tasks is not None:
                run.tasks_done = (int(d["tasks_done"]) if d.get("tasks_done") is not None
                                  else run.tasks_done + 1)
                run.curve.append((e.ts, run.tasks_done))
        elif e.kind == "cell_stored":
            run.running.pop(str(d.get("key")), None)
            run.counted.stored(str(d.get("key")))
            run.done = int(d["done"]) if d.get("done") is not None else run.done + 1
            if d.get("failed") is not None:
                run.failed = int(d["failed"])
            item = {"key": d.get("key"), "status": d.get("status"), "at": e.ts,
                    "error": d.get("error")}
            if d.get("again"):  # stored again with its counts: the same cell, not another
                _forget(run.recent, item["key"])
                _forget(run.failures, item["key"])
            run.recent.append(item)
            if d.get("status") != "ok":
                run.failures.append(item)
            if run.tasks is None:
                run.curve.append((e.ts, run.done))
        elif e.kind == "run_finished":
            run.status, run.finished_at = str(d.get("status", "finished")), e.ts
            run.running.clear()

    # -- points ------------------------------------------------------------------------------

    def _points(self, key: tuple[str, str, str], pts: Sequence[tuple[float, float]]) -> None:
        sample = key[0].startswith(SAMPLE_PREFIX)
        table = self.sample_series if sample else self.series
        cap = self.max_sample_series if sample else self.max_series
        ring = table.get(key)
        if ring is None:
            ring = table[key] = deque(maxlen=self.window)
            while len(table) > cap:
                table.popitem(last=False)
        else:
            table.move_to_end(key)
        ring.extend(pts)

    def apply_points(self, points: Iterable[tuple[int, MetricPoint]]) -> int:
        """Fold telemetry points in (every metric is kept; the series updated longest ago are
        evicted past ``max_series``); returns how many."""
        n = 0
        for _, p in points:
            labels = ",".join(f"{k}={v}" for k, v in p.labels if k != "run")
            self._points((p.metric, p.component, labels), [(p.timestamp, p.value)])
            n += 1
        self.points_seen += n
        return n

    # -- runners that are gone ---------------------------------------------------------------

    def check_holders(self, store: ResultStore, *, clock: float | None = None,
                      force: bool = False) -> set[str]:
        """Show as ``interrupted`` every run the events call running whose runner is gone
        (see :func:`allele.bench.lease.shown_status`), and with its stored status a run that
        ended without its last event. Reads the store at most every :data:`HOLDER_CHECK_S`
        (``force``: now; ``clock``: the time.monotonic() of now, for tests); returns the ids
        of the runs it changed."""
        from allele.bench.lease import shown_status
        from allele.errors import StoreError

        at = time.monotonic() if clock is None else clock
        if not force and at - self._holders_checked < HOLDER_CHECK_S:
            return set()
        self._holders_checked = at
        changed: set[str] = set()
        for run in list(self.runs.values()):
            if run.status != "running":
                continue
            try:
                info = store.get_run(run.run_id)
            except StoreError:  # a run of another store publishing here: its events decide
                continue
            status, gone = shown_status(store, info)
            if status != "running":
                run.status, run.holder_gone = status, gone
                run.finished_at = info.finished_at or run.updated_at
                run.running.clear()
                changed.add(run.run_id)
        return changed

    # -- snapshots ---------------------------------------------------------------------------

    def snapshot(self, now: float | None = None) -> dict[str, Any]:
        """Every run's progress (running runs first, then newest first by start) and every
        live series (component series, then sample series), JSON-ready."""
        at = time.time() if now is None else now
        ordered = sorted(self.runs.values(),
                         key=lambda r: (r.status != "running", -(r.started_at or r.updated_at)))
        runs = [r.to_dict(at) for r in ordered]
        series = [{"metric": m, "component": c, "labels": lab,
                   "t": [p[0] for p in ring], "v": [p[1] for p in ring]}
                  for table in (self.series, self.sample_series)
                  for (m, c, lab), ring in table.items()]
        return {"now": at, "last_event_id": self.last_event_id, "runs": runs, "series": series}

    def bootstrap(self, store: ResultStore, *, runs: int = 5, limit: int = 20_000) -> None:
        """Rebuild the newest ``runs`` runs' progress from the event log (what a dashboard does
        when it opens while a matrix is already running), and of any other run among the
        newest ``limit`` events (a run in another store, publishing here), and the live series
        of the newest ``limit`` telemetry points. Events are folded in the order they were
        written, so the newest runs' sample series are the ones kept; then the runners that
        are gone are found (:meth:`check_holders`)."""
        from allele.bench.lease import shown_status
        from allele.store.live import last_ids, newest_points_start, read_points_after

        newest, _ = last_ids(store)
        start = newest_points_start(store, limit)
        self.apply_points(read_points_after(store, start, limit=2 * limit))
        recent = read_events(store, max(0, newest - limit), limit=limit)
        infos = store.list_runs(runs)
        wanted = {info.id for info in infos}
        events: dict[int, StoredEvent] = {e.id: e for e in recent
                                          if e.run_id is not None and e.run_id not in wanted}
        silent = []
        for info in reversed(infos):
            found = read_events(store, 0, run_id=info.id, limit=limit)
            events.update((e.id, e) for e in found)
            if not found:
                silent.append(info)
        self.apply(events[i] for i in sorted(events))
        for info in silent:  # a run recorded without live telemetry: its header is all there is
            run = self._run(info.id)
            run.name, run.spec = info.name, info.spec_name
            run.status, run.holder_gone = shown_status(store, info)
            run.planned = run.done = info.cell_count
            run.failed = info.failed_count
            run.started_at = run.updated_at = info.created_at
            run.finished_at = info.finished_at
        self.check_holders(store, force=True)


def _forget(items: deque[dict[str, Any]], key: object) -> None:
    """Drop the entries of cell ``key`` from a run's recent cells or failures."""
    kept = [i for i in items if i.get("key") != key]
    if len(kept) != len(items):
        items.clear()
        items.extend(kept)


def _started(run: RunProgress, e: StoredEvent) -> None:
    """A ``run_started`` event: the run (or its resume) begins. A resume keeps the tasks of
    the cells stored so far: the curve breaks and goes on from them (see the module docstring)."""
    d = e.data
    before = next((v for _, v in reversed(run.curve) if v is not None), None)
    run.name, run.spec = str(d.get("name", "")), str(d.get("spec", ""))
    run.planned = int(d.get("cells", 0))
    run.skipped = run.done = int(d.get("skipped", 0))
    run.failed = 0
    if d.get("tasks_total") is not None:
        run.tasks = int(d["tasks_total"])
        run.tasks_skipped = run.tasks_done = int(d.get("tasks_skipped", 0))
    else:
        run.tasks, run.tasks_skipped, run.tasks_done = None, 0, 0
    run.status, run.started_at, run.finished_at, run.holder_gone = "running", e.ts, None, False
    kept = run.tasks_done if run.tasks is not None else run.done
    if before is not None:  # a resume of a run seen before: no line down to what was kept
        run.curve.append((e.ts, None))
        run.resumes.append({"at": e.ts, "before": before, "kept": kept})
    run.curve.append((e.ts, kept))
