"""The matrix runner: a spec in, a stored run out.

:class:`Runner` expands a :class:`~allele.bench.spec.SuiteSpec` into cells, orders them
(randomized interleaving by default, seeded), records a run with the environment fingerprint,
hands the cells to an executor and commits every finished cell to the store at once. Cells of
benchmarks with ``isolation: process`` run on the executor (a local process pool by default);
cells with ``isolation: inline`` run afterwards in this process (with a Dask executor every cell
goes to Dask).

The executor is stored with the run (``executor`` in its spec document; ``mixed`` once resumed
with another): memory measured in the runner's process and in a worker do not compare.

Resuming: the run's resolved spec (preset applied) and filters are stored with it, so
:meth:`Runner.resume` rebuilds exactly the same cells and skips every key already in the store;
the store never holds a key twice. A cell of several rounds is stored once its last round is in;
each round that finishes before is kept in the store meanwhile (``ResultStore.save_round``), so
a run stopped between rounds loses none and a resume runs only the rounds missing. Ctrl-C
(KeyboardInterrupt, and SIGTERM in the CLI) kills the running cells, marks the run
``interrupted`` and returns; the run can be resumed. A runner killed outright (``kill -9``)
leaves its run ``running`` with every cell and round committed so far, and it can be resumed the
same way; its workers do not outlive it (see :mod:`allele.bench.executors`).

While it runs cells the runner holds the run's lease (:mod:`allele.bench.lease`): a second
resume of the same run refuses, naming the live process that holds it. A cell whose result the
store refuses (say more distinct metrics than a cell can hold) is stored as a failed cell saying
why, so one bad cell never stops a run nor a resume. A progress sink with a ``cell_stored``
method (:class:`~allele.bench.run_protocols.StoredCellSink`, e.g. the MLflow bridge) gets each
cell once it is committed, its rounds merged.

Instruments (:mod:`allele.bench.instruments`): cells whose benchmark asks for ``instructions``
are counted after the timed phase, all of them in one callgrind subprocess, and are committed
(again) with their counts; their sinks see them then. A cell measured by ``instructions`` alone
has no timed task. A run interrupted before its instruction phase keeps its timed results
without counts; ``--resume`` counts them then, keeping their timings.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Collection, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from allele import failpoints
from allele.bench.executors import (
    Executor,
    InlineExecutor,
    WorkerStartError,
    make_executor,
    parse_executor,
    refuse_reimport_by_worker,
)
from allele.bench.history import ab_meta
from allele.bench.instruments.phase import Instrumented, count_phase
from allele.bench.instruments.phase import from_tasks as instrumented
from allele.bench.lease import RunLease
from allele.bench.metrics import LOOPS_METRIC, declarations_to_doc, with_declarations
from allele.bench.profiler import memory_methods
from allele.bench.run_protocols import ProgressSink, RunEvents, RunSummary
from allele.bench.select import CellFilter
from allele.bench.spec import SuiteSpec, ordered
from allele.bench.targets import resolve_target
from allele.bench.task import CellTask
from allele.errors import BenchmarkError, ConfigError, StoreError
from allele.store.model import CellResult, RunInfo, RunStatus, cell_key
from allele.store.results import ResultStore

SPEC_FORMAT = 1
"""Version of the ``spec`` document stored with a run."""

_log = logging.getLogger("allele.bench")


def plan(suite: SuiteSpec, filters: Sequence[str] = ()) -> list[CellTask]:
    """Every cell of the suite that passes ``filters``, in the suite's order."""
    wanted = CellFilter.parse(filters)
    tasks: list[CellTask] = []

    by_round: dict[int, list[CellTask]] = {}
    for bench in suite.benchmarks:
        seeds = tuple(bench.seed_list)
        metrics = tuple(bench.metrics) if bench.metrics is not None else None
        timed = "time" in bench.instruments
        counted = (tuple(bench.seed_list[:bench.instruction_seeds])
                   if "instructions" in bench.instruments else ())
        for params in bench.expand():
            key = cell_key(bench.target, params)
            if not wanted.matches(bench.target, params, key=key, benchmark=bench.name):
                continue
            for r in range(bench.rounds if timed else 1):
                # the profiling passes run once per cell, with its first round
                by_round.setdefault(r, []).append(CellTask(
                    key=key, benchmark=bench.name,
                    target=bench.target, params=params, seeds=seeds[r::bench.rounds],
                    repeats=bench.repeats, warmup=bench.warmup, timeout_s=bench.timeout_s,
                    metrics=metrics, profile=bench.profile and r == 0,
                    tracemalloc=bench.tracemalloc and r == 0,
                    alloc_peak=bench.alloc_peak and r == 0,
                    memory_limit_mb=bench.memory_limit_mb, isolation=bench.isolation,
                    round=r, rounds=bench.rounds if timed else 1, timed=timed,
                    instruction_seeds=counted, cache_sim=bench.cache_sim, setup=bench.setup,
                    teardown=bench.teardown, inner_loops=bench.inner_loops))
    tasks = [t for r in sorted(by_round)
             for t in ordered(by_round[r], suite.order, suite.order_seed + r)]
    return [_with_index(t, i) for i, t in enumerate(tasks)]


def stored_plan(doc: Any, run_name: str) -> list[CellTask]:
    """The plan of the spec document a run stored (its suite and filters): what a resume runs.
    BenchmarkError when the document is not this runner's format or no longer validates."""
    if not isinstance(doc, dict) or doc.get("format") != SPEC_FORMAT or "suite" not in doc:
        raise BenchmarkError(f"run {run_name!r} was not recorded by this runner's spec "
                             "format; it cannot be resumed")
    try:
        suite = SuiteSpec.model_validate(doc["suite"])
    except Exception as exc:
        raise BenchmarkError(f"run {run_name!r}: its stored spec no longer validates: "
                             f"{exc}") from None
    return plan(suite, list(doc.get("filters") or []))


def merge_rounds(parts: Sequence[CellResult]) -> CellResult:
    """One cell's result from the results of its rounds: every sample, the worst status (the
    first round that did not end ``ok``), every error, the earliest start and the latest end."""
    first = parts[0]
    bad = [p for p in parts if p.status != "ok"]
    errors = [p.error for p in parts if p.error]
    return CellResult(
        key=first.key, target=first.target, params=dict(first.params),
        status=bad[0].status if bad else "ok",
        samples=[s for p in parts for s in p.samples],
        error="; ".join(dict.fromkeys(errors)) if errors else None,
        started_at=min(p.started_at for p in parts),
        finished_at=max(p.finished_at for p in parts),
        profile=next((p.profile for p in parts if p.profile), None),
        declared={k: v for p in parts for k, v in (p.declared or {}).items()} or None)


def _with_index(task: CellTask, index: int) -> CellTask:
    return replace(task, index=index)


def default_run_name(suite: SuiteSpec) -> str:
    """``<suite>-<YYYYmmdd-HHMMSS>-<4 hex>``: unique enough never to collide."""
    return f"{suite.name}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}"


class Runner:
    """Runs specs into a result store.

    ``executor`` is ``"local"`` (a process pool of ``workers`` processes, default the core
    count), ``"inline"``, ``"dask-local"``, ``"dask://HOST:PORT"``, or an :class:`Executor`
    (which the caller owns and closes). ``environment`` overrides the fingerprint (tests).
    ``live`` receives the run's live telemetry (:class:`allele.bench.live.RunLive`).
    """

    def __init__(self, store: ResultStore, *, executor: str | Executor = "local",
                 workers: int | None = None, progress: ProgressSink | None = None,
                 environment: dict[str, Any] | None = None,
                 live: RunEvents | None = None) -> None:
        if workers is not None and workers < 1:
            raise ConfigError(f"--workers must be >= 1, got {workers}")
        self._kind = parse_executor(executor)[0] if isinstance(executor, str) else executor.name
        self.store = store
        self.executor = executor
        self.workers = workers
        self.progress = progress
        self._environment = environment
        self.live = live
        self._learned: dict[str, dict[str, str]] = {}

    # -- public ----------------------------------------------------------------------------------

    def run(self, suite: SuiteSpec, *, name: str | None = None,
            filters: Sequence[str] = ()) -> RunSummary:
        """Run every cell of ``suite`` (that passes ``filters``) as a new run."""
        refuse_reimport_by_worker()
        tasks = plan(suite, filters)
        if not tasks:
            if filters:
                raise BenchmarkError(f"no cell of {suite.name!r} matches the filters "
                                     f"{' '.join(filters)}")
            raise BenchmarkError(f"spec {suite.name!r} has no cell: its include/exclude "
                                 "entries remove every combination of its matrix")
        self._check_isolation(tasks)
        _check_instruments(tasks)
        tasks = loops_of_previous_run(self.store, suite.name, tasks)
        for target in {r for t in tasks for r in (t.target, t.setup, t.teardown) if r}:
            resolve_target(target)  # fail before the run exists if a target cannot be imported
        env = self._environment if self._environment is not None else _fingerprint()
        doc = {"format": SPEC_FORMAT, "suite": suite.model_dump(mode="json"),
               "filters": list(filters),
               "metrics": declarations_to_doc(suite.declared_metrics()),
               "memory": memory_methods(), "executor": self._kind}
        targets = ",".join(dict.fromkeys(t.target for t in tasks))
        run_name = name or default_run_name(suite)
        run_id = self.store.create_run(run_name, suite.name, targets, doc, env)
        lease = RunLease(self.store, run_id, run_name)
        lease.acquire()
        try:
            return self._execute(run_id, tasks, skipped=0, lease=lease)
        except WorkerStartError:
            if not self.store.finished_cell_keys(run_id):
                self.store.delete_run(run_id)  # nothing ran: leave nothing behind
            raise

    def resume(self, ref: str) -> RunSummary:
        """Continue a run: the cells of its stored plan that are not in the store yet.

        Refuses (:class:`~allele.bench.lease.RunBusyError`, naming the process) while another
        live process runs or resumes the same run."""
        refuse_reimport_by_worker()
        info = self.store.get_run(ref)
        ab = ab_meta(info)
        if ab is not None:  # its other half and the interleaving cannot be resumed
            raise BenchmarkError(f"run {info.name!r} is the {ab.get('role')} half of A/B "
                                 f"session {ab.get('session')!r}; a session is not resumed: "
                                 "start a new one with `allele bench ab`")
        doc = info.spec
        tasks = stored_plan(doc, info.name)
        self._check_isolation(tasks)
        _check_instruments(tasks)
        lease = RunLease(self.store, info.id, info.name)
        lease.acquire()
        try:
            done = self.store.finished_cell_keys(info.id)
            recount = self._uncounted(info.id, tasks, done)
            kept = {k: v for k, v in self.store.saved_rounds(info.id).items() if k not in done}
            todo = [t for t in tasks if t.key not in done and t.round not in kept.get(t.key, {})]
            skipped_tasks = len(tasks) - len(todo)  # every task of the plan kept in the store
            # a cell stored without its counts (interrupted before the instruction phase) is
            # counted now, its stored timings kept: one untimed task each, beyond the plan's
            todo += [replace(t, timed=False, round=0, rounds=1) for t in tasks
                     if t.key in recount and t.round == 0]
            self.store.finish_run(info.id, "running")
            if doc.get("executor", self._kind) != self._kind:  # its memory compares with none
                info = replace(info, spec={**doc, "executor": "mixed"})
                self.store.update_run_spec(info.id, info.spec)
        except BaseException:
            lease.release()
            raise
        return self._execute(info.id, todo, skipped=len({t.key for t in tasks} & done)
                             - len(recount), skipped_tasks=skipped_tasks,
                             info=info, lease=lease, recount=recount, kept_rounds=kept)

    def _uncounted(self, run_id: str, tasks: list[CellTask], done: set[str]
                   ) -> dict[str, CellResult]:
        """The stored ``ok`` cells that the ``instructions`` instrument should have counted and
        did not (the run stopped before its instruction phase)."""
        wanted = {t.key for t in tasks if t.instruction_seeds and t.key in done}
        if not wanted:
            return {}
        return {c.key: c for c in self.store.load_run(run_id).cells
                if c.key in wanted and c.status == "ok"
                and not any(s.metric == "instructions" for s in c.samples)}

    # -- machinery -------------------------------------------------------------------------------

    def _check_isolation(self, tasks: list[CellTask]) -> None:
        """A memory limit applies to a whole process and damages what it interrupts (half-done
        imports): it needs a process of its own, never the runner's."""
        for t in tasks:
            if t.memory_limit_mb is not None and (self._kind == "inline"
                                                  or t.isolation == "inline"):
                raise ConfigError(
                    f"benchmark {t.benchmark!r}: memory_limit_mb needs isolation: process and "
                    "a process executor (run inline, the limit would fall on the runner itself)")

    def _take_round(self, run_id: str, part: CellResult, task: CellTask | None,
                    parts: dict[str, dict[int, CellResult]], rounds: int) -> CellResult | None:
        """Add a finished round of a cell: the whole cell once every round is in (merged in
        round order), else None, the round kept in the store meanwhile (a run stopped between
        a cell's rounds keeps them; :meth:`resume` runs only the rest)."""
        have = parts.setdefault(part.key, {})
        r = part.round if part.round is not None else task.round if task is not None else 0
        have[r] = part
        if len(have) < rounds:
            try:
                self.store.save_round(run_id, part, r)
            except StoreError as exc:  # kept in memory; only a stop would lose it
                _log.warning("round %d of cell %s was not kept in the store: %s", r, part.key,
                             exc)
            return None
        done = [have[i] for i in sorted(have)]
        del parts[part.key]
        return done[0] if len(done) == 1 else merge_rounds(done)

    def _save(self, run_id: str, result: CellResult) -> CellResult:
        """Commit a cell; a result the store refuses (e.g. more distinct metrics than a cell
        can hold) is committed as a failed cell saying why, so one bad cell never stops the run
        and a resume does not hit it again. If even that fails, the store itself is the problem
        and the first error stands. Collects the metric declarations the cell's target returned
        (:meth:`_record_declarations` stores them with the run)."""
        self._learned.update(result.declared or {})
        try:
            self.store.save_cell(run_id, result)
            return result
        except StoreError as exc:
            refused = CellResult(
                key=result.key, target=result.target, params=dict(result.params),
                status="failed", samples=[],
                error=f"the result store refused this cell's result: {exc}"[:2000],
                started_at=result.started_at, finished_at=result.finished_at)
            try:
                self.store.save_cell(run_id, refused)
            except StoreError:
                raise exc from None
            return refused

    def _execute(self, run_id: str, tasks: list[CellTask], *, skipped: int,
                 skipped_tasks: int = 0, info: RunInfo | None = None,
                 lease: RunLease | None = None, recount: dict[str, CellResult] | None = None,
                 kept_rounds: dict[str, dict[int, CellResult]] | None = None) -> RunSummary:
        """Run ``tasks`` into ``run_id``; ``recount``: stored cells to count (untimed tasks);
        ``kept_rounds``: rounds of unfinished cells a stopped run kept (resume)."""
        info = info or self.store.get_run(run_id)
        run_name = info.name
        cells = len({t.key for t in tasks})
        summary = RunSummary(run_id=run_id, name=run_name, status="running",
                             planned=cells + skipped, skipped=skipped)
        rounds = {t.key: t.rounds for t in tasks}
        parts: dict[str, dict[int, CellResult]] = {k: dict(v) for k, v in
                                                   (kept_rounds or {}).items()}
        t0 = time.perf_counter()
        progress = self.progress
        if progress is not None:  # counts tasks: a cell of 3 rounds advances it 3 times
            progress.start(run_name, len(tasks) + skipped_tasks, skipped_tasks, run=info)
        live = self.live
        if live is not None:  # cells to count again are in the store: done already
            live.run_started(info, cells - len(recount or {}), len(tasks),
                             skipped + len(recount or {}), skipped_tasks)
            tasks = [replace(t, live=True) for t in tasks]
        owned: list[Executor] = []
        status: RunStatus = "failed"
        counted, kept = _instrumented(tasks, recount or {})
        try:
            for executor, batch in self._phases([t for t in tasks if t.timed], owned):
                started: dict[str, CellTask] = {}
                if live is not None:
                    executor.on_live = live.live
                    live.attach(executor.worker_pids)

                def on_start(task: CellTask, _s: dict[str, CellTask] = started) -> None:
                    _s[task.key] = task
                    if progress is not None:
                        progress.cell_started(task)
                    if live is not None:
                        live.cell_started(task)

                for part in executor.run(batch, on_start):
                    task_of = started.pop(part.key, None)
                    if progress is not None:
                        progress.cell_finished(task_of, part)
                    if live is not None:
                        live.cell_finished(task_of, part)
                    whole = self._take_round(run_id, part, task_of, parts, rounds[part.key])
                    if whole is None:
                        continue  # the cell is stored once all its rounds are in
                    self._commit(run_id, whole, counted, kept, summary, lease)
            if counted:
                self._count_instructions(run_id, tasks, counted, kept, summary, lease,
                                         recount or {})
            status = "finished"
        except KeyboardInterrupt:
            status = "interrupted"
            for result in kept.values():  # committed without counts: the sinks still get them
                self._stored(result, summary, lease, again=True)
            for ex in self._all_executors(owned):
                ex.close(kill=True)
            owned.clear()
        finally:
            for ex in owned:
                ex.close(kill=status != "finished")
            if progress is not None:
                progress.stop()
            try:
                self._record_declarations(info)
                self.store.finish_run(run_id, status)
            finally:
                if lease is not None:
                    lease.release()
            summary.status = status
            summary.seconds = time.perf_counter() - t0
            if live is not None:
                live.run_finished(summary)
        return summary

    def _commit(self, run_id: str, whole: CellResult, counted: dict[str, Instrumented],
                kept: dict[str, CellResult], summary: RunSummary, lease: RunLease | None) -> None:
        """Commit a timed cell. One the instruction phase counts is stored again with its counts
        (its sinks see it then); the live view counts it done now, as the store holds it."""
        result = self._save(run_id, whole)
        failpoints.hit("runner.cell_committed")
        if result.key not in counted:
            self._stored(result, summary, lease)
            return
        kept[result.key] = result
        if self.live is not None:
            self.live.cell_stored(result)

    def _stored(self, result: CellResult, summary: RunSummary, lease: RunLease | None,
                again: bool = False) -> None:
        """Bookkeeping of a committed cell: the lease, the sinks, the summary. ``again``: live,
        it was done when its timings were committed (or before a resume); now it has counts."""
        if lease is not None:
            lease.beat()
        on_stored = getattr(self.progress, "cell_stored", None)
        if on_stored is not None:
            on_stored(result)
        if self.live is not None:
            self.live.cell_stored(result, again=again)
        summary.executed += 1
        if result.status != "ok":
            summary.failed += 1
            summary.failures.append((result.key, result.status, result.error or ""))

    def _count_instructions(self, run_id: str, tasks: Sequence[CellTask],
                            counted: dict[str, Instrumented], kept: dict[str, CellResult],
                            summary: RunSummary, lease: RunLease | None,
                            recount: Collection[str] = ()) -> None:
        """The instruction phase (:mod:`allele.bench.instruments.phase`): one callgrind
        subprocess for every instrumented cell; each cell is stored again with its counts.
        ``recount``: cells stored before this invocation, only counted now."""
        untimed = {t.key: t for t in tasks if not t.timed}
        for task in untimed.values():
            if self.progress is not None:
                self.progress.cell_started(task)
            if self.live is not None:
                self.live.cell_started(task)
        results, _ = count_phase(counted, kept)
        done = {r.key for r in results}
        for result in [*results, *(kept[k] for k in kept if k not in done)]:
            again = kept.pop(result.key, None) is not None  # its timings were committed
            result = self._save(run_id, result)
            if self.progress is not None and result.key in untimed:
                self.progress.cell_finished(untimed[result.key], result)
            if self.live is not None and result.key in untimed:
                self.live.cell_finished(untimed[result.key], result)
            self._stored(result, summary, lease, again=again)
            summary.counted_only += result.key in recount

    def _record_declarations(self, info: RunInfo) -> None:
        """Add what the targets declared by returning ``Metric`` values (collected by
        :meth:`_save`) to the run's spec document (a spec's own declaration of a metric wins)."""
        learned, self._learned = self._learned, {}
        doc = with_declarations(info.spec, learned)
        if doc is not None:
            self.store.update_run_spec(info.id, doc)

    def _all_executors(self, owned: list[Executor]) -> list[Executor]:
        extra = [self.executor] if isinstance(self.executor, Executor) else []
        return [*owned, *extra]

    def _phases(self, tasks: list[CellTask], owned: list[Executor]
                ) -> list[tuple[Executor, list[CellTask]]]:
        """(executor, tasks) pairs: pooled cells first, then inline ones (see module doc)."""
        if not tasks:
            return []
        main = self.executor
        if self._kind in ("dask", "inline"):
            pooled, inline = list(tasks), []
        else:
            pooled = [t for t in tasks if t.isolation == "process"]
            inline = [t for t in tasks if t.isolation == "inline"]
        phases: list[tuple[Executor, list[CellTask]]] = []
        if pooled:
            if isinstance(main, Executor):
                executor = main
            else:
                executor = make_executor(main, _pool_size(self.workers, len(pooled)))
                owned.append(executor)
            phases.append((executor, pooled))
        if inline:
            phases.append((InlineExecutor(), inline))
        return phases


def _check_instruments(tasks: Sequence[CellTask]) -> None:
    """Asking for ``instructions`` where it cannot run is one clear error before a run exists."""
    if any(t.instruction_seeds for t in tasks):
        from allele.bench.instruments import require_instructions

        require_instructions()


def _pool_size(workers: int | None, cells: int) -> int | None:
    if workers is None:
        return None
    return max(1, min(workers, cells))


def _fingerprint() -> dict[str, Any]:
    from allele.bench.environment import fingerprint

    return fingerprint()


def run_spec(path: str | Path, *, preset: str | None = None, store: str | None = None,
             executor: str = "local", workers: int | None = None, name: str | None = None,
             filters: Sequence[str] = (), progress: ProgressSink | None = None) -> RunSummary:
    """Load a spec file and run it into the store at ``store`` (default: the configured one),
    reporting to ``progress`` (e.g. :class:`allele.cli.progress.RichProgress`) when given.

    >>> summary = run_spec("benchmarks/seed-matrix.yaml", preset="quick")  # doctest: +SKIP
    """
    from allele.bench.spec import load_suite
    from allele.store import open_store

    suite = load_suite(path, preset=preset)
    with open_store(store) as st:
        runner = Runner(st, executor=executor, workers=workers, progress=progress)
        return runner.run(suite, name=name, filters=filters)


def _instrumented(tasks: list[CellTask], recount: dict[str, CellResult]
                  ) -> tuple[dict[str, Instrumented], dict[str, CellResult]]:
    """The instruction phase's cells, and the timed results it adds counts to: to begin with,
    the stored cells of ``recount``, whose counts go into their stored timings."""
    counted = instrumented(tasks)
    for key in recount:
        counted[key] = replace(counted[key], timed=True)
    return counted, dict(recount)


def loops_of_previous_run(store: ResultStore, spec_name: str,
                          tasks: list[CellTask]) -> list[CellTask]:
    """Cells whose spec leaves ``inner_loops`` to calibration are timed with the count the
    previous finished run of the spec used for them (stored as ``loops``; none stored means 1),
    so that the two runs compare: a count calibrated anew can land on another step of the
    ladder on a noisy machine, and runs timed with different counts are not compared. A cell
    the previous run did not time (new, failed, or counted only) calibrates."""
    if all(t.inner_loops is not None or not t.timed for t in tasks):
        return tasks
    from allele.bench.history import is_ab_base

    prev = next((r for r in store.list_runs(None) if r.spec_name == spec_name
                 and r.status == "finished" and not is_ab_base(r)), None)
    if prev is None:
        return tasks
    counts = store.loop_counts(prev.id, "wall_s", LOOPS_METRIC)
    return [replace(t, inner_loops=counts[t.key])
            if t.inner_loops is None and t.timed and t.key in counts else t for t in tasks]
