"""Interleaved A/B sessions: two versions of the code measured in the same rounds, call after
call, so that whatever the machine does, both versions see it.

``allele bench ab SPEC --base REF [--head REF]`` (HEAD defaults to the working tree):

* **the trees**: BASE (and HEAD when it is a ref) is checked out with ``git worktree add
  --detach`` into a temporary directory, or extracted with ``git archive`` when the repository
  cannot take a worktree (read-only); the current directory maps to the same relative
  directory in each tree. The spec is read once, from the path given, so both versions run
  the same cells;
* **the workers**: one Python process cannot hold two versions of a package, so each round
  starts a fresh worker subprocess per version (:mod:`allele.bench.ab_worker`, HEAD's file and
  protocol) with that version's ``<tree>/src`` and ``<tree>`` first on its path. A target that
  cannot be imported in a tree (a file missing in BASE) is one clear error before anything
  runs;
* **the design**: every call ``(seed, repeat)`` of a cell runs on both versions in the same
  round, one right after the other in a random order; the calls of a round are shuffled across
  cells; rounds are the blocks. When a cell's seeds and repeats give fewer calls than rounds,
  its repeats are raised so that every round has one. Samples are stored with ``repeat =
  round * ROUND_STRIDE + repeat`` so that the comparison can recover the round of each pair
  (:func:`allele.bench.compare.compare_runs`);
* **how many rounds** (:func:`auto_rounds`, unless ``--rounds`` says): one per call of the
  largest cell, between :data:`DEFAULT_ROUNDS` and :data:`MAX_AUTO_ROUNDS`. Each worker
  process has a speed of its own that pairing cannot cancel (its memory layout, where its
  pages landed): on this 2-core VM (``benchmarks/aa_real.py``, 16 sessions of 3 cells x 100
  pairs in 30 rounds, calm and loaded) the winsorized paired CPU-time log-ratio moved by sd
  1.0% from one round's pair of processes to the next (the median over the cells of the
  between-round variance component), beside sd 1.2% between the pairs of one round. A cell's
  estimate averages the process effect over its rounds only: its variance is ``sd_round^2 / R
  + sd_pair^2 / N`` for ``N`` pairs in ``R`` rounds, so 100 pairs in 10 rounds have about 5
  times the variance of 100 pairs in 100 rounds, and in 30 rounds about twice. The rounds
  stay the blocks of the analysis (treating pairs as independent would ignore that
  component). Rounds cost process starts, hence the cap;
* **what a call is**: as in a plain run: the spec's ``setup`` before every call and its
  ``teardown`` after the sample, both untimed; a target under 1 ms a call is looped so that a
  sample lasts 10 ms or more, with one count for both versions, calibrated in round 0 on the
  faster of the two (``inner_loops`` in the spec fixes it); ``alloc_peak_mb`` from the untimed
  memory calls of each seed at the end of round 0 on each version. ``peak_rss_mb`` is the worker's
  peak during the sample, which includes what the calls before it in the round left resident:
  ``alloc_peak_mb`` is the figure that belongs to the cell alone;
* **instruction counts**: cells whose benchmark asks for ``instructions`` are counted after
  the rounds, one callgrind subprocess per version, both with HEAD's ``_callgrind`` extension
  (:mod:`allele.bench.instruments.phase`); counts are deterministic, so no rounds are needed;
* **the result**: two runs, ``<name>-base`` and ``<name>-head``, linked by the ``ab`` document
  of their stored spec (:func:`allele.bench.history.ab_meta`). The BASE half re-measured old
  code: histories, change points and ``run --report``'s baseline leave it out. Cells are saved
  after every round, so an interruption keeps what was measured (both runs end ``interrupted``;
  killed, they show so through their leases, :mod:`allele.bench.lease`). A session is not
  resumed: ``bench run --resume`` refuses its halves.
"""

from __future__ import annotations

import contextlib
import math
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from allele.bench.ab_trees import Tree, checkout, prune_stale, repo_root
from allele.bench.ab_worker import recv, send
from allele.bench.history import AB_KEY
from allele.bench.lease import RunLeases
from allele.bench.metrics import LOOPS_METRIC, with_declarations
from allele.errors import BenchmarkError, ConfigError
from allele.store.model import CellResult, RunStatus, Sample, cell_key

if TYPE_CHECKING:
    from allele.bench.run_protocols import ProgressSink
    from allele.bench.spec import SuiteSpec
    from allele.store.results import ResultStore

DEFAULT_ROUNDS = 10
"""The fewest rounds a session has unless ``--rounds`` asks for fewer (the blocks of a cell's
estimate: 9 degrees of freedom before moderation)."""
MAX_AUTO_ROUNDS = 100
"""The most rounds :func:`auto_rounds` chooses (each costs a fresh worker per version)."""
ROUND_STRIDE = 100_000
"""Stored ``repeat = round * ROUND_STRIDE + repeat`` (a spec allows up to 10,000 repeats)."""
WORKER_START_S = 120.0
_WORKER = Path(__file__).with_name("ab_worker.py")


# --- workers -----------------------------------------------------------------------------------


class AbWorker:
    """A worker subprocess running one version (see :mod:`allele.bench.ab_worker`)."""

    def __init__(self, tree: Path, cwd: Path) -> None:
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        paths = [str(tree / "src"), str(tree), str(cwd)]
        args = [sys.executable, str(_WORKER), "--fds", f"{to_child_r},{from_child_w}",
                "--cwd", str(cwd)]
        args += [a for p in paths for a in ("--path", p)]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([*paths, *sys.path[1:]])
        self.proc = subprocess.Popen(args, pass_fds=(to_child_r, from_child_w), env=env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     cwd=str(cwd))
        os.close(to_child_r)
        os.close(from_child_w)
        self._w, self._r = to_child_w, from_child_r

    def ask(self, msg: dict[str, Any], timeout_s: float) -> Any:
        """Send one request and wait for its answer (BenchmarkError on a crash or timeout)."""
        import select

        send(self._w, msg)
        ready, _, _ = select.select([self._r], [], [], timeout_s)
        if not ready:
            self.kill()
            raise BenchmarkError(f"timeout: no answer within {timeout_s:g} s")
        try:
            return recv(self._r)
        except (EOFError, OSError):
            code = self.proc.wait(timeout=5)
            raise BenchmarkError(f"crashed: the worker exited with code {code}") from None

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            self.proc.kill()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            send(self._w, {"op": "stop"})
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()
            self.proc.wait(timeout=10)
        for fd in (self._w, self._r):
            with contextlib.suppress(OSError):
                os.close(fd)


# --- the plan ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AbCell:
    """One cell of an A/B session: its identity and the calls of each round."""

    key: str
    benchmark: str
    target: str
    params: dict[str, Any]
    warmup: int
    timeout_s: float
    metrics: tuple[str, ...] | None
    calls: tuple[tuple[tuple[int, int], ...], ...]
    """Per round: the ``(seed, repeat)`` calls it runs (none without the ``time`` instrument)."""
    instruction_seeds: tuple[int, ...] = ()
    """Seeds the ``instructions`` instrument counts after the rounds, on each version."""
    cache_sim: bool = False
    setup: str | None = None
    teardown: str | None = None
    inner_loops: int | None = None
    """Calls per timed sample; None: calibrated in round 0 (the same count for both versions)."""
    memory: tuple[str, ...] = ()
    """The memory metrics of the untimed memory call made per seed in round 0
    (``alloc_peak_mb``, ``tracemalloc_peak_mb``)."""

    @property
    def seeds(self) -> list[int]:
        """The seeds the timed calls use, in order."""
        return list(dict.fromkeys(s for calls in self.calls for s, _ in calls))

    def request(self, op: str, seed: int) -> dict[str, Any]:
        """A worker request about this cell (see :mod:`allele.bench.ab_worker`)."""
        return {"op": op, "key": self.key, "target": self.target, "params": self.params,
                "seed": seed, "warmup": self.warmup, "setup": self.setup,
                "teardown": self.teardown}


def auto_rounds(suite: SuiteSpec) -> int:
    """The default number of rounds of a session of ``suite``: one per call ``(seed, repeat)``
    of its largest timed cell, so that each pair of calls runs in its own pair of fresh worker
    processes and the process effect averages over as many of them as there are pairs (see the
    module docstring), within ``[DEFAULT_ROUNDS, MAX_AUTO_ROUNDS]``."""
    calls = [len(b.seed_list) * b.repeats for b in suite.benchmarks if "time" in b.instruments]
    return max(DEFAULT_ROUNDS, min(MAX_AUTO_ROUNDS, max(calls, default=DEFAULT_ROUNDS)))


def plan_ab(suite: SuiteSpec, rounds: int) -> list[AbCell]:
    """Every cell of ``suite`` with its calls spread round-robin over ``rounds`` rounds."""
    if rounds < 2:
        raise ConfigError(f"--rounds must be >= 2 (rounds are the blocks), got {rounds}")
    cells = []
    for bench in suite.benchmarks:
        seeds = list(bench.seed_list)
        repeats = max(bench.repeats, math.ceil(rounds / len(seeds)))
        calls = [(s, r) for r in range(repeats) for s in seeds]
        if "time" not in bench.instruments:
            calls = []
        per_round = tuple(tuple(calls[i::rounds]) for i in range(rounds))
        counted = (tuple(seeds[:bench.instruction_seeds])
                   if "instructions" in bench.instruments else ())
        memory = tuple(m for m, on in (("alloc_peak_mb", bench.alloc_peak),
                                       ("tracemalloc_peak_mb", bench.tracemalloc))
                       if on and calls and (bench.metrics is None or m in bench.metrics))
        metrics = tuple(bench.metrics) if bench.metrics is not None else None
        for params in bench.expand():
            cells.append(AbCell(cell_key(bench.target, params), bench.name, bench.target,
                                params, bench.warmup, bench.timeout_s, metrics,
                                per_round, counted, bench.cache_sim, bench.setup,
                                bench.teardown, bench.inner_loops, memory))
    return cells


# --- the session -------------------------------------------------------------------------------


@dataclass
class AbResult:
    """The two runs of a finished (or interrupted) session."""

    base_run: str
    head_run: str
    name: str
    status: str
    rounds: int
    """The rounds planned."""
    seconds: float
    failed: list[tuple[str, str, str]] = field(default_factory=list)
    """``(key, side, error)`` of cells that failed on a side."""
    rounds_done: int | None = None
    """The rounds every cell finished on both versions (fewer than ``rounds`` when the session
    was interrupted); None: all of them."""

    @property
    def completed_rounds(self) -> int:
        return self.rounds if self.rounds_done is None else self.rounds_done


@dataclass
class _Side:
    label: str
    tree: Tree
    run_id: str = ""
    cells: dict[str, CellResult] = field(default_factory=dict)
    declared: dict[str, dict[str, str]] = field(default_factory=dict)  # by Metric values


def _task_for(cell: AbCell, rnd: int, n_rounds: int) -> Any:
    from allele.bench.task import CellTask

    return CellTask(key=cell.key, benchmark=cell.benchmark, target=cell.target,
                    params=cell.params, seeds=(), round=rnd, rounds=n_rounds)


class AbSession:
    """Runs one A/B session into a store (see the module docstring)."""

    def __init__(self, store: ResultStore, suite: SuiteSpec, *, base: str,
                 head: str | None = None, rounds: int | None = None, seed: int = 0,
                 cwd: Path | None = None, progress: ProgressSink | None = None,
                 name: str | None = None, live: Any | None = None) -> None:
        self.store, self.suite, self.seed = store, suite, seed
        self.rounds = auto_rounds(suite) if rounds is None else rounds
        self.cwd = (cwd or Path.cwd()).resolve()
        self.repo = repo_root(self.cwd)
        self.base_ref, self.head_ref = base, head
        self.progress = progress
        self.live = live
        """A :class:`~allele.bench.live.RunLive` (or None): the session appears in `allele top`
        and the dashboard as its HEAD run, one task per cell and round."""
        self._workers: dict[str, AbWorker] = {}
        self._rounds_done = 0  # cells x rounds whose calls are all done
        self.name = name or (f"ab-{suite.name}-{time.strftime('%Y%m%d-%H%M%S')}-"
                             f"{uuid.uuid4().hex[:4]}")
        self.cells = plan_ab(suite, self.rounds)
        self.loops: dict[str, int] = {}
        """The calibrated inner-loop count of each cell (round 0)."""

    def run(self) -> AbResult:
        self._check_names()
        if any(c.instruction_seeds for c in self.cells):
            from allele.bench.instruments import require_instructions

            require_instructions()
        prune_stale(self.repo)
        base_tree = checkout(self.repo, self.base_ref)
        try:
            head_tree = (checkout(self.repo, self.head_ref) if self.head_ref is not None
                         else Tree(self.repo, None, "working tree"))
        except BaseException:
            base_tree.close()
            raise
        try:
            return self._run(_Side("base", base_tree), _Side("head", head_tree))
        finally:
            base_tree.close()
            head_tree.close()

    def _check_names(self) -> None:
        """The session's two run names are free, checked before any tree or worker (a taken
        one was found after the checkouts and the import check)."""
        for label in ("base", "head"):
            run = f"{self.name}-{label}"
            if self.store.run_name_taken(run):
                raise ConfigError(f"--name {self.name}: a run named {run!r} already exists in "
                                  "the store; choose another session name")

    def _cwd_in(self, tree: Tree) -> Path:
        rel = self.cwd.relative_to(self.repo)
        path = tree.path / rel
        if not path.is_dir():
            raise ConfigError(f"{rel} does not exist in {tree.label}")
        return path

    def _preflight(self, sides: Sequence[_Side]) -> None:
        """Every target imports in every tree, or one error naming what is missing where."""
        targets = sorted({c.target for c in self.cells})
        problems = []
        for side in sides:
            worker = AbWorker(side.tree.path, self._cwd_in(side.tree))
            try:
                answer = worker.ask({"op": "resolve", "targets": targets}, WORKER_START_S)
            finally:
                worker.close()
            problems += [f"{t} in {side.label} ({side.tree.label}): {err}"
                         for t, err in answer.items() if err]
        if problems:
            raise BenchmarkError("a target cannot be imported: " + "; ".join(problems))

    def _create_runs(self, sides: Sequence[_Side]) -> None:
        from allele.bench.environment import fingerprint
        from allele.bench.metrics import declarations_to_doc
        from allele.bench.runner import SPEC_FORMAT

        env = fingerprint()
        targets = ",".join(dict.fromkeys(c.target for c in self.cells))
        for side in sides:  # each half names its own commit (both named HEAD's)
            git = env.get("git") if side.tree.commit is None else {
                "commit": side.tree.commit, "dirty": False, "branch": None}
            doc = {"format": SPEC_FORMAT, "suite": self.suite.model_dump(mode="json"),
                   "filters": [],
                   "metrics": declarations_to_doc(self.suite.declared_metrics()), AB_KEY: {
                       "session": self.name, "role": side.label, "rounds": self.rounds,
                       "round_stride": ROUND_STRIDE, "base_ref": self.base_ref,
                       "base_commit": sides[0].tree.commit,
                       "head_ref": self.head_ref or "working tree",
                       "head_commit": sides[1].tree.commit, "seed": self.seed}}
            side.run_id = self.store.create_run(f"{self.name}-{side.label}", self.suite.name,
                                                targets, doc, {**env, "git": git})

    def _run(self, base: _Side, head: _Side) -> AbResult:
        sides = (base, head)
        self._preflight(sides)
        self._create_runs(sides)
        rng = random.Random(self.seed)
        t0 = time.perf_counter()
        status: RunStatus = "failed"
        total = len(self.cells) * self.rounds
        if self.progress is not None:
            self.progress.start(self.name, total, 0)
        if self.live is not None:
            self.live.attach(lambda: [w.proc.pid for w in list(self._workers.values())])
            self.live.run_started(self.store.get_run(head.run_id), total, total, 0)
        leases = RunLeases(self.store, [(s.run_id, f"{self.name}-{s.label}") for s in sides])
        rounds_done = 0
        try:
            for rnd in range(self.rounds):
                self._round(rnd, sides, rng)
                rounds_done = rnd + 1
                for side in sides:
                    self.store.save_cells(side.run_id, list(side.cells.values()))
            for side in sides:
                self._count_instructions(side)
            status = "finished"
        except KeyboardInterrupt:
            status = "interrupted"
        finally:
            for side in sides:
                self.store.save_cells(side.run_id, list(side.cells.values()))
                self._declare(side, head)
                self.store.finish_run(side.run_id, status)
            leases.release()
            if self.progress is not None:
                self.progress.stop()
        failed = [(k, side.label, c.error or "") for side in sides
                  for k, c in side.cells.items() if c.status != "ok"]
        seconds = time.perf_counter() - t0
        if self.live is not None:
            from allele.bench.run_protocols import RunSummary

            self.live.run_finished(RunSummary(
                head.run_id, f"{self.name}-head", status, total, executed=self._rounds_done,
                failed=sum(1 for _, side, _ in failed if side == "head"), seconds=seconds))
        return AbResult(base.run_id, head.run_id, self.name, status, self.rounds, seconds,
                        failed, rounds_done)

    def _declare(self, side: _Side, head: _Side) -> None:
        """Store what HEAD's targets declared by returning ``Metric`` values with both runs, as
        a comparison reads HEAD's (``bench ab`` guessed their directions from the names)."""
        doc = with_declarations(self.store.get_run(side.run_id).spec, head.declared)
        if doc is not None:
            self.store.update_run_spec(side.run_id, doc)

    def _count_instructions(self, side: _Side) -> None:
        """The instruction phase of one version (:mod:`allele.bench.instruments.phase`): its
        tree first on the path, HEAD's extension (this process's) for both versions."""
        from allele.bench.instruments.phase import Instrumented, count_phase

        cells = {c.key: Instrumented(c.key, c.target, dict(c.params), c.instruction_seeds,
                                     c.warmup, c.timeout_s, c.cache_sim, any(c.calls))
                 for c in self.cells if c.instruction_seeds}
        if not cells:
            return
        cwd = self._cwd_in(side.tree)
        results, _ = count_phase(cells, side.cells, cwd=cwd,
                                 paths=[str(side.tree.path / "src"), str(side.tree.path),
                                        str(cwd)])
        for result in results:
            side.cells[result.key] = result

    def _round(self, rnd: int, sides: Sequence[_Side], rng: random.Random) -> None:
        """One round: a fresh worker per version, every call of the round on both, in random
        order of cells and of the two versions."""
        order = list(sides)
        rng.shuffle(order)  # which version's process starts first
        workers = {s.label: AbWorker(s.tree.path, self._cwd_in(s.tree)) for s in order}
        self._workers = workers  # what the live view samples (CPU, memory)
        try:
            if rnd == 0:
                self._calibrate(sides, workers, rng)
            calls = [(cell, key) for cell in self.cells for key in cell.calls[rnd]]
            rng.shuffle(calls)
            done: dict[str, int] = {}
            for cell, (seed, rep) in calls:
                first = list(sides)
                rng.shuffle(first)
                for side in first:
                    self._call(side, workers, cell, seed, rep, rnd)
                done[cell.key] = done.get(cell.key, 0) + 1
                if done[cell.key] == len(cell.calls[rnd]):
                    self._cell_round_done(cell, rnd, sides[1].cells[cell.key])
            if rnd == 0:
                self._memory(sides, workers, rng)
        finally:
            for w in workers.values():
                w.close()

    def _cell_round_done(self, cell: AbCell, rnd: int, head_result: CellResult) -> None:
        """A cell's calls of one round are done on both versions: the progress bar and the
        live view (HEAD's figures so far) hear of it."""
        self._rounds_done += 1
        task = _task_for(cell, rnd, self.rounds)
        for sink in (self.progress, self.live):
            if sink is not None:
                sink.cell_started(task)
                sink.cell_finished(task, head_result)
        if self.live is not None:
            self.live.cell_stored(head_result)

    def _calibrate(self, sides: Sequence[_Side], workers: dict[str, AbWorker],
                   rng: random.Random) -> None:
        """The inner-loop count of every cell that leaves it to calibration, from the faster
        version's best time of a call (:func:`allele.bench.profiler.loops_for`): both versions
        use the same count, so their samples pair."""
        from allele.bench.profiler import loops_for

        for cell in self.cells:
            if not any(cell.calls) or cell.inner_loops is not None:
                continue
            times = []
            for side in rng.sample(list(sides), len(sides)):
                answer = self._ask(side, workers, cell, cell.request("calibrate",
                                                                     cell.seeds[0]))
                if answer is not None:
                    times.append(float(answer["per_call_s"]))
            self.loops[cell.key] = loops_for(min(times)) if times else 1

    def _memory(self, sides: Sequence[_Side], workers: dict[str, AbWorker],
                rng: random.Random) -> None:
        """The untimed memory call of each seed of each cell, on both versions in random order
        (stored at repeat 0 of round 0, as the runner stores it)."""
        for cell in self.cells:
            if not cell.memory:
                continue
            for seed in cell.seeds:
                for side in rng.sample(list(sides), len(sides)):
                    answer = self._ask(side, workers, cell, cell.request("memory", seed))
                    if answer is not None:
                        side.cells[cell.key].samples.extend(
                            Sample(m, float(answer["values"][m]), seed, 0)
                            for m in cell.memory)

    def _ask(self, side: _Side, workers: dict[str, AbWorker], cell: AbCell,
             msg: dict[str, Any]) -> Any:
        """One request about ``cell`` to ``side``'s worker: the answer, or None when the cell
        failed on that side (recorded in its result; a crashed or hung worker is replaced)."""
        result = side.cells.get(cell.key)
        if result is None:
            result = side.cells[cell.key] = CellResult(
                cell.key, cell.target, dict(cell.params), "ok", [], started_at=time.time())
        if result.status != "ok":
            return None  # a cell that failed on this side is not called again
        try:
            answer = workers[side.label].ask(msg, cell.timeout_s + WORKER_START_S)
        except BenchmarkError as exc:
            result.status = "timeout" if str(exc).startswith("timeout") else "crashed"
            result.error = str(exc)
            workers[side.label].close()
            workers[side.label] = AbWorker(side.tree.path, self._cwd_in(side.tree))
            return None
        if "error" in answer:
            result.status, result.error = "failed", str(answer["error"])
            return None
        result.finished_at = time.time()
        return answer

    def _call(self, side: _Side, workers: dict[str, AbWorker], cell: AbCell, seed: int,
              rep: int, rnd: int) -> None:
        msg = {**cell.request("call", seed), "loops": cell.inner_loops
               or self.loops.get(cell.key, 1)}
        answer = self._ask(side, workers, cell, msg)
        if answer is None:
            return
        stored = rnd * ROUND_STRIDE + rep
        keep = set(cell.metrics) | {LOOPS_METRIC} if cell.metrics is not None else None
        side.declared.update(answer.get("declared") or {})
        side.cells[cell.key].samples.extend(Sample(m, float(v), seed, stored)
                                            for m, v in answer["values"].items()
                                            if keep is None or m in keep)


def run_ab(store: ResultStore, spec: Path, *, base: str, head: str | None = None,
           preset: str | None = None, rounds: int | None = None, seed: int = 0,
           progress: ProgressSink | None = None, name: str | None = None,
           live: Any | None = None) -> AbResult:
    """Load ``spec`` once and run an A/B session of BASE against HEAD (the working tree by
    default) into ``store``, in ``rounds`` rounds (default: :func:`auto_rounds`); ``live``: a
    :class:`~allele.bench.live.RunLive` that shows it in `allele top` and the dashboard."""
    from allele.bench.spec import load_suite

    suite = load_suite(spec, preset=preset)
    return AbSession(store, suite, base=base, head=head, rounds=rounds, seed=seed,
                     progress=progress, name=name, live=live).run()
