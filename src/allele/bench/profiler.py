"""Measuring one cell: the code that runs where the cell runs (a worker, a Dask worker, inline).

For every timed sample the runner records ``wall_s`` (``time.perf_counter``), ``cpu_user_s`` and
``cpu_sys_s`` (``resource.getrusage(RUSAGE_SELF)``: every thread of the process, so BLAS threads
count), and ``peak_rss_mb``: the process's peak resident set size *during that sample*. On Linux
the peak is reset before each sample (``/proc/self/clear_refs``, value 5) and read from ``VmHWM``
afterwards; where that is impossible the value is the process's lifetime peak (``ru_maxrss``),
which is an upper bound.

A sample is a :class:`Region`: the spec's ``setup`` runs before it and its ``teardown`` after
it, both untimed; a target under :data:`CALIBRATE_BELOW_S` a call is called ``n`` times per
sample (:func:`loops_for`), its times reported per call and ``n`` stored as ``loops``.

Deliberately *outside* the timed samples, so they never distort the timings:

* the memory calls (``alloc_peak``, on by default): two untimed calls per seed of the first
  round, giving ``alloc_peak_mb`` (:func:`_memory_pass`: the larger of the tracemalloc peak,
  :func:`traced_peak_mb`, and the resident-set rise above what was in use before the call,
  :func:`resident_rise_mb`, measured in a separate call without tracemalloc so that its own
  tables are not in it) and, with ``tracemalloc``,
  ``tracemalloc_peak_mb`` (Python and numpy allocations only); repeat index 0;
* ``profile``: one extra call (first seed) under :mod:`cProfile`; the top 20 functions by
  cumulative time become the cell's ``profile`` text.
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import resource
import signal
import sys
import threading
import time
import traceback
import tracemalloc as _tracemalloc
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from allele.bench.metrics import LOOPS_METRIC, MEASURED_METRICS, Metric
from allele.bench.targets import TargetFn, resolve_target
from allele.bench.task import CellTask
from allele.store.model import CellResult, CellStatus, Sample

MEASURED = ("wall_s", "cpu_user_s", "cpu_sys_s", "peak_rss_mb")
PROFILE_TOP = 20

_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")


@dataclass
class CallMeasurement:
    """Costs of one target call and the metrics it returned."""

    wall_s: float
    cpu_user_s: float
    cpu_sys_s: float
    peak_rss_mb: float
    metrics: dict[str, float] = field(default_factory=dict)


class CellTimeout(BaseException):
    """Raised inside a target by the cell's alarm (a BaseException, so ``except Exception`` in a
    target cannot swallow it)."""


def reset_peak_rss() -> bool:
    """Reset the process's peak-RSS watermark; False where the platform does not allow it."""
    try:
        _CLEAR_REFS.write_text("5")
        return True
    except OSError:
        return False


def _status_mb(field_name: str) -> float | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field_name):
                return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return None


def _lifetime_peak_mb() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return ru / (1024.0 * 1024.0) if sys.platform == "darwin" else ru / 1024.0


def peak_rss_mb() -> float:
    """The process's peak resident set size in MiB since the last :func:`reset_peak_rss`."""
    hwm = _status_mb("VmHWM:")
    return hwm if hwm is not None else _lifetime_peak_mb()


def rss_mb() -> float | None:
    """The process's resident set size now (MiB), None where ``/proc`` does not say."""
    return _status_mb("VmRSS:")


def memory_methods() -> dict[str, str]:
    """How this process measures ``peak_rss_mb`` and ``alloc_peak_mb`` (stored with a run, so a
    reader knows what the figures mean)."""
    if _CLEAR_REFS.exists() and os.access(_CLEAR_REFS, os.W_OK) and rss_mb() is not None:
        resident = "VmHWM minus VmRSS before the call (/proc/self/clear_refs reset)"
        peak = "VmHWM after a reset through /proc/self/clear_refs"
    else:
        resident = "the rise of ru_maxrss (0 unless the call exceeds the worker's earlier peak)"
        peak = "ru_maxrss: the worker's lifetime peak (an upper bound)"
    return {"peak_rss_mb": peak,
            "alloc_peak_mb": "untimed calls per seed of the first round: the larger of the "
                             "tracemalloc peak above the traced memory before the call (Python "
                             "and numpy) and, in a call without tracemalloc, " + resident
                             + " (native)"}


def _as_metrics(out: object, declared: dict[str, dict[str, str]] | None = None
                ) -> dict[str, float]:
    """A target's returned mapping as floats; each :class:`~allele.bench.metrics.Metric` value's
    declaration goes into ``declared`` (``{name: {direction, unit}}``)."""
    if not isinstance(out, Mapping):
        raise TypeError(f"a target must return a mapping of metric -> number, got "
                        f"{type(out).__name__}")
    metrics: dict[str, float] = {}
    for name, value in out.items():
        if not isinstance(name, str):
            raise TypeError(f"metric names must be strings, got {name!r}")
        if name in MEASURED_METRICS or name == LOOPS_METRIC:
            raise TypeError(f"metric {name!r} is measured by the runner; a target must not "
                            "return it")
        if isinstance(value, Metric):
            if declared is not None and (value.direction is not None or value.unit):
                declared[name] = {"unit": value.unit, **(
                    {"direction": value.direction} if value.direction is not None else {})}
            value = value.value
        if isinstance(value, bool):
            value = float(value)
        if not isinstance(value, int | float):
            try:
                value = float(value)  # numpy scalars
            except (TypeError, ValueError):
                raise TypeError(f"metric {name!r} is not a number: {value!r}") from None
        metrics[name] = float(value)
    return metrics


def measure(fn: TargetFn, params: dict[str, Any], seed: int,
            declared: dict[str, dict[str, str]] | None = None) -> CallMeasurement:
    """Call ``fn(params, seed)`` once and measure it (declarations of returned
    :class:`~allele.bench.metrics.Metric` values go into ``declared``)."""
    reset_peak_rss()
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    out = fn(dict(params), seed)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    rss = peak_rss_mb()
    return CallMeasurement(
        wall_s=wall,
        cpu_user_s=r1.ru_utime - r0.ru_utime,
        cpu_sys_s=r1.ru_stime - r0.ru_stime,
        peak_rss_mb=rss,
        metrics=_as_metrics(out, declared),
    )


MIN_SAMPLE_S = 0.010
"""A calibrated sample lasts at least this long (10 ms: ~10^5 times perf_counter's resolution
and long enough that the loop's own overhead, ~50 ns a call, stays under 1%)."""
CALIBRATE_BELOW_S = 0.001
"""Targets faster than this (1 ms a call) get an inner loop; slower ones are called once."""
MAX_LOOPS = 1_000_000


def loops_for(per_call_s: float) -> int:
    """The inner-loop count for a target of ``per_call_s`` seconds a call: 1 at or above
    :data:`CALIBRATE_BELOW_S`, else the smallest of 1, 2, 5, 10, 20, 50, ... whose sample lasts
    :data:`MIN_SAMPLE_S` (a coarse ladder, so that two runs of the same code land on the same
    count unless the target sits right at a step)."""
    if per_call_s >= CALIBRATE_BELOW_S:
        return 1
    per_call_s = max(per_call_s, 1e-9)
    step = 1
    while step < MAX_LOOPS:
        for m in (1, 2, 5):
            if step * m * per_call_s >= MIN_SAMPLE_S:
                return step * m
        step *= 10
    return MAX_LOOPS


@dataclass
class Region:
    """What one timed sample runs: the target, and the spec's ``setup``/``teardown`` around
    it. ``setup(params, seed)`` runs before every call, untimed, and its return value reaches
    the target as ``state=``; ``teardown(params, seed, state=state)`` runs after the sample,
    untimed. With an inner loop of ``n`` calls, ``n`` states are made before the sample (a
    target may mutate its state, so no call reuses another's)."""

    fn: TargetFn
    setup: Callable[..., Any] | None = None
    teardown: Callable[..., Any] | None = None

    @classmethod
    def of(cls, task: CellTask) -> Region:
        return cls(resolve_target(task.target),
                   resolve_target(task.setup) if task.setup else None,
                   resolve_target(task.teardown) if task.teardown else None)

    def states(self, params: dict[str, Any], seed: int, n: int) -> list[Any]:
        if self.setup is None:
            return []
        return [self.setup(dict(params), seed) for _ in range(n)]

    def teardown_all(self, params: dict[str, Any], seed: int, states: list[Any]) -> None:
        if self.teardown is not None:
            for state in states:
                self.teardown(dict(params), seed, state=state)

    def timed(self, params: dict[str, Any], seed: int, n: int,
               states: list[Any]) -> tuple[object, float]:
        fn = self.fn
        out: object = None
        if states:
            t0 = time.perf_counter()
            for state in states:
                out = fn(params, seed, state=state)  # type: ignore[call-arg]
        else:
            t0 = time.perf_counter()
            for _ in range(n):
                out = fn(params, seed)
        return out, time.perf_counter() - t0

    def call(self, params: dict[str, Any], seed: int) -> object:
        """One untimed call with its setup and teardown (warm-up, profiling passes)."""
        states = self.states(params, seed, 1)
        try:
            return self.timed(dict(params), seed, 1, states)[0]
        finally:
            self.teardown_all(params, seed, states)

    def calibrate(self, params: dict[str, Any], seed: int) -> int:
        """The inner-loop count (:func:`loops_for`) from the per-call time: one call, then, if
        it was fast, the best of a few batches of calls of ~1 ms each."""
        states = self.states(params, seed, 1)
        try:
            _, first = self.timed(dict(params), seed, 1, states)
        finally:
            self.teardown_all(params, seed, states)
        if first >= CALIBRATE_BELOW_S:
            return 1
        batch = max(1, min(MAX_LOOPS, int(CALIBRATE_BELOW_S / max(first, 1e-8))))
        best = first
        for _ in range(3):
            states = self.states(params, seed, batch)
            try:
                _, took = self.timed(dict(params), seed, batch, states)
            finally:
                self.teardown_all(params, seed, states)
            best = min(best, took / batch)
        return loops_for(best)

    def sample(self, params: dict[str, Any], seed: int, loops: int,
               declared: dict[str, dict[str, str]] | None = None) -> CallMeasurement:
        """One timed sample of ``loops`` calls, its costs reported per call (``peak_rss_mb``:
        the process's peak over the sample)."""
        p = dict(params)
        states = self.states(params, seed, loops)
        try:
            reset_peak_rss()
            r0 = resource.getrusage(resource.RUSAGE_SELF)
            out, wall = self.timed(p, seed, loops, states)
            r1 = resource.getrusage(resource.RUSAGE_SELF)
            rss = peak_rss_mb()
        finally:
            self.teardown_all(params, seed, states)
        return CallMeasurement(
            wall_s=wall / loops, cpu_user_s=(r1.ru_utime - r0.ru_utime) / loops,
            cpu_sys_s=(r1.ru_stime - r0.ru_stime) / loops, peak_rss_mb=rss,
            metrics=_as_metrics(out, declared))


def resident_rise_mb(region: Region, params: dict[str, Any], seed: int) -> float:
    """One untimed call, not traced: the peak resident set during it above the resident set
    before it (``VmHWM - VmRSS`` after a ``clear_refs`` reset; the rise of ``ru_maxrss`` where
    that is impossible), MiB. Native memory such as a model's weights, counted only where the
    call needed pages the process did not hold yet; the setup's state is made before the
    baseline, so it is not the call's.

    Why not under :mod:`tracemalloc`: its own tables (an entry per live traced block, made with
    the C allocator, which keeps them once freed) grow during the first traced call of a
    process and landed in this rise. A pure-Python sort of 200,000 floats (6.89 MiB traced) rose
    20.0-28.5 MiB in the first traced call, 8.5 MiB in a first untraced call and 0-8 MiB in
    later traced ones, so the first seed of every worker stored 2-3x the others. Untraced, a
    call after the cell's timed calls rises 0 MiB. Where something else already traces (a
    tracemalloc the user started), its tables may still count: this does not stop it."""
    states = region.states(params, seed, 1)
    try:
        before = rss_mb() if reset_peak_rss() else None
        lifetime = _lifetime_peak_mb()
        region.timed(dict(params), seed, 1, states)
        resident = (peak_rss_mb() - before) if before is not None else (
            _lifetime_peak_mb() - lifetime)
    finally:
        region.teardown_all(params, seed, states)
    return max(0.0, resident)


def traced_peak_mb(region: Region, params: dict[str, Any], seed: int) -> float:
    """One untimed call under :mod:`tracemalloc` (started for it unless already on): the peak
    of the allocations it sees during the call above those alive before it (Python objects and
    every buffer numpy allocates), MiB; the setup's state is made before the baseline. It does
    not depend on what the process did before."""
    was = _tracemalloc.is_tracing()
    if not was:
        _tracemalloc.start()
    try:
        states = region.states(params, seed, 1)
        try:
            _tracemalloc.reset_peak()
            base = _tracemalloc.get_traced_memory()[0]
            region.timed(dict(params), seed, 1, states)
            peak = _tracemalloc.get_traced_memory()[1]
        finally:
            region.teardown_all(params, seed, states)
    finally:
        if not was:
            _tracemalloc.stop()
    return max(0.0, (peak - base) / (1024.0 * 1024.0))


def profile_top(fn: TargetFn | Region, params: dict[str, Any], seed: int,
                top: int = PROFILE_TOP) -> str:
    """cProfile one untimed call; the ``top`` functions by cumulative time, as text."""
    region = fn if isinstance(fn, Region) else Region(fn)
    prof = cProfile.Profile()
    prof.enable()
    try:
        region.call(params, seed)
    finally:
        prof.disable()
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf)
    stats.sort_stats(pstats.SortKey.CUMULATIVE).print_stats(top)
    return buf.getvalue().strip()


@contextmanager
def _alarm(seconds: float | None) -> Iterator[None]:
    """Raise :class:`CellTimeout` in the main thread after ``seconds`` (no-op elsewhere)."""
    usable = (seconds is not None and hasattr(signal, "setitimer")
              and threading.current_thread() is threading.main_thread())
    if not usable:
        yield
        return

    def on_alarm(signum: int, frame: object) -> None:
        raise CellTimeout()

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, float(seconds or 0))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@contextmanager
def _memory_limit(limit_mb: float | None) -> Iterator[None]:
    """Lower the address-space soft limit for the cell (allocations beyond it fail with
    MemoryError instead of waking the kernel's out-of-memory killer)."""
    if limit_mb is None or not hasattr(resource, "RLIMIT_AS"):
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    new = int(limit_mb * 1024 * 1024)
    if hard != resource.RLIM_INFINITY:
        new = min(new, hard)
    resource.setrlimit(resource.RLIMIT_AS, (new, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _library_dirs() -> tuple[str, ...]:
    import sysconfig

    paths = sysconfig.get_paths()
    dirs = {paths.get(k, "") for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    dirs.add(str(Path(__file__).resolve().parents[1]))  # allele itself: the runner's frames
    return tuple(sorted(d for d in dirs if d))


def _where(exc: BaseException) -> str:
    """`` (file:line in function)`` of the innermost frame of ``exc``'s traceback that is the
    user's code (a ``.py`` file outside the standard library, installed packages and Allele),
    then where it was raised when that is deeper: a setup whose numpy call failed was reported
    as ``(_common.pyx:309 in numpy.random._common.double_fill)``, naming neither the setup
    nor its file."""
    tb = traceback.extract_tb(exc.__traceback__)
    if not tb:
        return ""
    libs = _library_dirs()

    def text(fr: traceback.FrameSummary) -> str:
        return f"{Path(fr.filename).name}:{fr.lineno} in {fr.name}"

    own = next((fr for fr in reversed(tb) if fr.filename.endswith(".py")
                and not str(Path(fr.filename).resolve()).startswith(libs)), None)
    if own is None or own is tb[-1]:
        return f" ({text(tb[-1])})"
    return f" ({text(own)}; raised in {text(tb[-1])})"


def _error_text(exc: BaseException) -> str:
    """``Type: message (file:line in function)`` of the innermost frame, on one line."""
    msg = str(exc).replace("\n", " ").strip()
    text = f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__
    return text[:500] + _where(exc)


_LOOPS: dict[str, int] = {}
"""Each cell's calibrated inner-loop count in this process: a cell's later rounds on the same
worker time the same way."""

_WARMED: set[str] = set()
"""Cells whose warm-up calls already ran in this process: warm-up loads what a process keeps
(compiled kernels, a model, imports), so a cell's later rounds on the same worker skip it."""


def _memory_pass(task: CellTask, region: Region, keep: set[str] | None) -> list[Sample]:
    """The untimed memory calls (repeat index 0): ``alloc_peak_mb``, the larger of a seed's
    :func:`resident_rise_mb` and :func:`traced_peak_mb`, and, with ``tracemalloc``, the traced
    peak alone as ``tracemalloc_peak_mb``. Every seed's untraced call runs before any traced
    one, so no resident rise is measured on pages tracemalloc's freed tables left behind."""
    alloc = task.alloc_peak and (keep is None or "alloc_peak_mb" in keep)
    traced = task.tracemalloc and (keep is None or "tracemalloc_peak_mb" in keep)
    out: list[Sample] = []
    if not (alloc or traced):
        return out
    resident = {seed: resident_rise_mb(region, task.params, seed)
                for seed in (task.seeds if alloc else [])}
    for seed in task.seeds:
        py_mb = traced_peak_mb(region, task.params, seed)
        if alloc:
            out.append(Sample("alloc_peak_mb", max(py_mb, resident[seed]), seed, 0))
        if traced:
            out.append(Sample("tracemalloc_peak_mb", py_mb, seed, 0))
    return out


def run_cell(task: CellTask, *, enforce_timeout: bool = True,
             on_call: Callable[[list[Sample]], None] | None = None) -> CellResult:
    """Run one cell: warmup calls, then ``repeats`` x ``seeds`` measured calls, then the optional
    untimed tracemalloc / cProfile passes. Never raises for a target's failure: the result says
    ``failed`` (an exception) or ``timeout`` with the reason. Samples measured before a failure
    are kept. ``on_call(samples)`` is called after each measured call, outside its timing, with
    that call's samples (live telemetry, :mod:`allele.bench.live`).
    """
    started = time.time()
    samples: list[Sample] = []
    status: CellStatus = "ok"
    error: str | None = None
    profile: str | None = None
    keep = set(task.metrics) if task.metrics is not None else None
    declared: dict[str, dict[str, str]] = {}
    deadline_s = task.timeout_s if enforce_timeout else None
    try:
        with _alarm(deadline_s), _memory_limit(task.memory_limit_mb):
            region = Region.of(task)
            first = task.seeds[0]
            if task.round == 0:  # a new run of the cell calibrates anew
                _LOOPS.pop(task.key, None)
            calibrate = task.inner_loops is None and task.key not in _LOOPS
            if task.key not in _WARMED:  # later rounds of a cell in this process are warm
                # the calibrating call is the last warm-up call (it runs the target too)
                for _ in range(task.warmup - 1 if calibrate else task.warmup):
                    region.call(task.params, first)
                _WARMED.add(task.key)
            loops = task.inner_loops or _LOOPS.get(task.key) or region.calibrate(
                task.params, first)
            _LOOPS[task.key] = loops
            for repeat in range(task.repeats):
                for seed in task.seeds:
                    m = region.sample(task.params, seed, loops, declared)
                    values = {"wall_s": m.wall_s, "cpu_user_s": m.cpu_user_s,
                              "cpu_sys_s": m.cpu_sys_s, "peak_rss_mb": m.peak_rss_mb,
                              **m.metrics}
                    before = len(samples)
                    for name, value in values.items():
                        if keep is None or name in keep:
                            samples.append(Sample(name, value, seed, repeat))
                    if on_call is not None:
                        on_call(samples[before:])
                    if loops != 1:  # absent: one call per sample
                        samples.append(Sample(LOOPS_METRIC, float(loops), seed, repeat))
            samples.extend(_memory_pass(task, region, keep))
            if task.profile:
                profile = profile_top(region, task.params, first)
    except CellTimeout:
        status = "timeout"
        error = f"timeout: the cell ran longer than {task.timeout_s:g} s"
    except MemoryError as exc:
        status = "failed"
        limit = (f" (memory_limit_mb={task.memory_limit_mb:g})"
                 if task.memory_limit_mb is not None else "")
        error = "out of memory" + limit + ": " + _error_text(exc)
    except SystemExit as exc:  # sys.exit() in a target ends the cell, never the runner
        status = "failed"
        error = f"SystemExit: the target called sys.exit({exc.code!r})" + _where(exc)
    except Exception as exc:
        status = "failed"
        error = _error_text(exc)
    return CellResult(key=task.key, target=task.target, params=dict(task.params), status=status,
                      samples=samples, error=error, started_at=started, finished_at=time.time(),
                      profile=profile, declared=declared or None, round=task.round)


def describe_exit(exitcode: int | None) -> str:
    """Why a worker process ended, in words (negative exit codes are signals)."""
    if exitcode is None:
        return "worker vanished"
    if exitcode < 0:
        sig = -exitcode
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        hint = {
            "SIGSEGV": " (segmentation fault)",
            "SIGBUS": " (bus error)",
            "SIGABRT": " (abort)",
            "SIGKILL": " (killed: out-of-memory killer or an external kill)",
            "SIGFPE": " (floating-point exception)",
            "SIGILL": " (illegal instruction)",
        }.get(name, "")
        return f"worker killed by {name}{hint}"
    return f"worker exited with code {exitcode}"

