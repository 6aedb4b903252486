"""The worker of an A/B session: run as a script by HEAD's :mod:`allele.bench.ab`, it puts one
version's tree first on ``sys.path`` and measures target calls on request.

One Python process cannot hold two versions of a package, so each version gets processes of its
own. This file is HEAD's (``python .../allele/bench/ab_worker.py --path TREE/src --path TREE
...``): the protocol and the measurement are HEAD's, the code measured is the version whose tree
comes first. It imports nothing of Allele at module level (only the standard library), so it
works whatever the other version's ``allele`` looks like; a ``module:function`` target is
imported directly, a built-in name through that version's ``resolve_target``.

Messages are pickled builtins (dicts, lists, numbers, strings) on two pipes inherited as file
descriptors, never on stdout, which a target may print to:

* ``{"op": "resolve", "targets": [...]}`` -> ``{target: None or error text}``;
* ``{"op": "call", "key", "target", "params", "seed", "warmup"}`` -> ``{"values": {metric:
  value}, "declared": {metric: {unit, direction}}}`` or ``{"error": text}``: the runner's
  measurements of one call (``wall_s``, ``cpu_user_s``, ``cpu_sys_s``, ``peak_rss_mb``, as
  :func:`allele.bench.profiler.measure` takes them) and the metrics the target returned, with
  the declarations of those it returned as ``Metric`` values; warm-up calls first, once per
  cell and process;
* ``{"op": "calibrate", ...}`` (the fields of ``call``) -> ``{"per_call_s": seconds}``: the best
  time of one call, from which the session picks the inner-loop count both versions use;
* ``{"op": "memory", ...}`` -> ``{"values": {"alloc_peak_mb", "tracemalloc_peak_mb"}}``: two
  untimed calls measured for memory (one without tracemalloc, one under it);
* ``call``, ``calibrate`` and ``memory`` take optional ``setup`` and ``teardown``
  (``module:function``) and ``call`` an optional ``loops`` (calls per sample, costs reported
  per call and ``loops`` returned when it is not 1);
* ``{"op": "stop"}``.
"""

from __future__ import annotations

import importlib
import os
import pickle
import resource
import struct
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

_MEASURED = ("wall_s", "cpu_user_s", "cpu_sys_s", "peak_rss_mb", "alloc_peak_mb",
             "tracemalloc_peak_mb", "loops")


def send(fd: int, obj: object) -> None:
    """Write one length-prefixed pickled message."""
    data = pickle.dumps(obj, protocol=4)
    view = memoryview(struct.pack("<Q", len(data)) + data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def recv(fd: int) -> Any:
    """Read one length-prefixed pickled message (EOFError when the other end is gone)."""
    def exactly(n: int) -> bytes:
        chunks = []
        while n:
            part = os.read(fd, n)
            if not part:
                raise EOFError
            chunks.append(part)
            n -= len(part)
        return b"".join(chunks)

    (size,) = struct.unpack("<Q", exactly(8))
    return pickle.loads(exactly(size))


def resolve(ref: str) -> Callable[..., Any]:
    """A ``module:function`` target directly (a worker measuring user code need not import
    Allele at all); a built-in name through the measured version's own registry."""
    module, sep, attr = ref.partition(":")
    if not sep:
        from allele.bench.targets import resolve_target  # the measured version's registry
        return resolve_target(ref)
    fn = getattr(importlib.import_module(module), attr, None)
    if not callable(fn):
        raise LookupError(f"{module} has no function {attr!r}")
    return fn  # type: ignore[no-any-return]


def _status_mb(field: str) -> float | None:
    """A ``kB`` field of ``/proc/self/status`` (``VmHWM``, ``VmRSS``) in MiB, None without it."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return None


def _peak_rss_mb() -> float:
    peak = _status_mb("VmHWM")
    if peak is not None:
        return peak
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return ru / (1024.0 * 1024.0) if sys.platform == "darwin" else ru / 1024.0


def _reset_peak_rss() -> None:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
    except OSError:
        pass


class _Region:
    """The target with the spec's ``setup``/``teardown`` around it, called as the runner's
    :class:`allele.bench.profiler.Region` calls it: ``setup(params, seed)`` before every call,
    untimed, its value reaching the target as ``state=``; ``teardown(params, seed,
    state=state)`` after the sample, untimed. (This file imports nothing of Allele, so the
    measured version's ``Region`` cannot be used: it may not have one.)"""

    def __init__(self, fn: Callable[..., Any], setup: Callable[..., Any] | None,
                 teardown: Callable[..., Any] | None) -> None:
        self.fn, self.setup, self.teardown = fn, setup, teardown

    def states(self, params: dict[str, Any], seed: int, n: int) -> list[Any]:
        return [] if self.setup is None else [self.setup(dict(params), seed) for _ in range(n)]

    def finish(self, params: dict[str, Any], seed: int, states: list[Any]) -> None:
        if self.teardown is not None:
            for state in states:
                self.teardown(dict(params), seed, state=state)

    def timed(self, params: dict[str, Any], seed: int, n: int,
              states: list[Any]) -> tuple[object, float]:
        fn, out = self.fn, None
        t0 = time.perf_counter()
        if states:
            for state in states:
                out = fn(params, seed, state=state)
        else:
            for _ in range(n):
                out = fn(params, seed)
        return out, time.perf_counter() - t0

    def once(self, params: dict[str, Any], seed: int) -> float:
        """One untimed call with its setup and teardown; its wall time."""
        states = self.states(params, seed, 1)
        try:
            return self.timed(dict(params), seed, 1, states)[1]
        finally:
            self.finish(params, seed, states)


def measure_call(fn: Callable[..., Any] | _Region, params: dict[str, Any], seed: int,
                 loops: int = 1, declared: dict[str, dict[str, str]] | None = None
                 ) -> dict[str, float]:
    """One sample of ``loops`` calls, measured as the runner measures it, its costs per call.
    ``declared`` receives the declarations of the ``Metric`` values the target returned
    (``{name: {unit, direction}}``), as the runner stores them with a run."""
    region = fn if isinstance(fn, _Region) else _Region(fn, None, None)
    p = dict(params)
    states = region.states(params, seed, loops)
    try:
        _reset_peak_rss()
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        out, wall = region.timed(p, seed, loops, states)
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        rss = _peak_rss_mb()
    finally:
        region.finish(params, seed, states)
    values = {"wall_s": wall / loops, "cpu_user_s": (r1.ru_utime - r0.ru_utime) / loops,
              "cpu_sys_s": (r1.ru_stime - r0.ru_stime) / loops, "peak_rss_mb": rss}
    if loops != 1:
        values["loops"] = float(loops)
    if not isinstance(out, dict):
        raise TypeError(f"a target must return a mapping of metric -> number, got "
                        f"{type(out).__name__}")
    for name, value in out.items():
        if name in _MEASURED:
            raise TypeError(f"metric {name!r} is measured by the runner")
        # an allele.bench.Metric (duck-typed: this file imports nothing of Allele)
        number: Any = getattr(value, "value", value)
        direction, unit = getattr(value, "direction", None), getattr(value, "unit", "")
        if declared is not None and number is not value and (direction or unit):
            declared[str(name)] = {"unit": str(unit or ""),
                                   **({"direction": str(direction)} if direction else {})}
        values[str(name)] = float(number)
    return values


def per_call_s(region: _Region, params: dict[str, Any], seed: int) -> float:
    """The best time of one call (the runner's calibration): one call, then, when it took
    under 1 ms, the best of three batches of about 1 ms each."""
    first = region.once(params, seed)
    if first >= 0.001:
        return first
    batch = max(1, min(1_000_000, int(0.001 / max(first, 1e-8))))
    best = first
    for _ in range(3):
        states = region.states(params, seed, batch)
        try:
            _, took = region.timed(dict(params), seed, batch, states)
        finally:
            region.finish(params, seed, states)
        best = min(best, took / batch)
    return best


def memory_call(region: _Region, params: dict[str, Any], seed: int) -> dict[str, float]:
    """Two untimed calls measured for memory, as the runner's memory pass (``_memory_pass``):
    ``tracemalloc_peak_mb`` (the traced peak above what was alive before the call) and
    ``alloc_peak_mb`` (the larger of that and the resident peak above the resident set before
    the call; the setup's state is made before both baselines). The resident rise comes from
    the first call, made without tracemalloc: under it, tracemalloc's own tables, made during
    the first traced call of a process, counted as the call's memory (a pure-Python sort of
    200,000 floats, 6.89 MiB traced, rose 20-28 MiB in that call and stored 2-3x the other
    seeds' figure)."""
    import tracemalloc

    states = region.states(params, seed, 1)
    try:
        _reset_peak_rss()
        before = _status_mb("VmRSS")
        region.timed(dict(params), seed, 1, states)
        resident = _peak_rss_mb() - before if before is not None else 0.0
    finally:
        region.finish(params, seed, states)
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    try:
        states = region.states(params, seed, 1)
        try:
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            region.timed(dict(params), seed, 1, states)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            region.finish(params, seed, states)
    finally:
        if not tracing:
            tracemalloc.stop()
    traced = max(0.0, (peak - base) / (1024.0 * 1024.0))
    return {"alloc_peak_mb": max(traced, resident), "tracemalloc_peak_mb": traced}


_MACHINERY = (os.path.dirname(importlib.__file__) + os.sep, os.path.abspath(__file__))


def _error(exc: BaseException) -> str:
    """``Type: message (file:line)``, the line the innermost frame of the user's code (a
    module that failed as it was imported, a target that raised); no location when the error
    arose in the import machinery or this worker (``<frozen importlib._bootstrap>:1140`` of a
    module that is not there told nothing)."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not f.filename.startswith("<")
              and not os.path.abspath(f.filename).startswith(_MACHINERY)]
    where = f" ({os.path.basename(frames[-1].filename)}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {str(exc).strip()}"[:500] + where


def serve(rfd: int, wfd: int) -> None:
    """Answer messages until ``stop`` or the parent leaves."""
    fns: dict[str, Callable[..., Any]] = {}
    warmed: set[str] = set()
    while True:
        try:
            msg = recv(rfd)
        except (EOFError, OSError):
            return
        op = msg.get("op")
        if op == "stop":
            return
        if op == "resolve":
            answer: dict[str, Any] = {}
            for target in msg["targets"]:
                try:
                    fns[target] = resolve(target)
                    answer[target] = None
                except Exception as exc:
                    answer[target] = _error(exc)
            send(wfd, answer)
            continue
        try:
            region = _region_of(msg, fns)
            if msg["key"] not in warmed:
                for _ in range(int(msg.get("warmup", 0))):
                    region.once(msg["params"], int(msg["seed"]))
                warmed.add(msg["key"])
            params, seed = msg["params"], int(msg["seed"])
            if op == "calibrate":
                send(wfd, {"per_call_s": per_call_s(region, params, seed)})
            elif op == "memory":
                send(wfd, {"values": memory_call(region, params, seed)})
            else:
                declared: dict[str, dict[str, str]] = {}
                values = measure_call(region, params, seed, int(msg.get("loops", 1)), declared)
                send(wfd, {"values": values, "declared": declared})
        except Exception as exc:
            send(wfd, {"error": _error(exc)})


def _region_of(msg: dict[str, Any], fns: dict[str, Callable[..., Any]]) -> _Region:
    """The target of a request with its setup and teardown, resolved once per process."""
    def get(ref: str | None) -> Callable[..., Any] | None:
        if not ref:
            return None
        if ref not in fns:
            fns[ref] = resolve(ref)
        return fns[ref]

    fn = get(msg["target"])
    assert fn is not None
    return _Region(fn, get(msg.get("setup")), get(msg.get("teardown")))


def main(argv: list[str]) -> None:
    paths: list[str] = []
    rfd = wfd = -1
    cwd = None
    it = iter(argv)
    for arg in it:
        if arg == "--path":
            paths.append(next(it))
        elif arg == "--fds":
            rfd, wfd = (int(x) for x in next(it).split(","))
        elif arg == "--cwd":
            cwd = next(it)
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    sys.path[0:0] = paths
    if cwd is not None:
        os.chdir(cwd)
    serve(rfd, wfd)


if __name__ == "__main__":
    main(sys.argv[1:])
