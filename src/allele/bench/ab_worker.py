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
  value}}`` or ``{"error": text}``: the runner's measurements of one call (``wall_s``,
  ``cpu_user_s``, ``cpu_sys_s``, ``peak_rss_mb``, as :func:`allele.bench.profiler.measure`
  takes them) and the metrics the target returned; warm-up calls first, once per cell and
  process;
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


def _peak_rss_mb() -> float:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return ru / (1024.0 * 1024.0) if sys.platform == "darwin" else ru / 1024.0


def _reset_peak_rss() -> None:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
    except OSError:
        pass


def measure_call(fn: Callable[..., Any], params: dict[str, Any], seed: int) -> dict[str, float]:
    """One call, measured as the runner measures it."""
    _reset_peak_rss()
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    out = fn(dict(params), seed)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    values = {"wall_s": wall, "cpu_user_s": r1.ru_utime - r0.ru_utime,
              "cpu_sys_s": r1.ru_stime - r0.ru_stime, "peak_rss_mb": _peak_rss_mb()}
    if not isinstance(out, dict):
        raise TypeError(f"a target must return a mapping of metric -> number, got "
                        f"{type(out).__name__}")
    for name, value in out.items():
        if name in _MEASURED:
            raise TypeError(f"metric {name!r} is measured by the runner")
        # an allele.bench.Metric (duck-typed: this file imports nothing of Allele)
        number: Any = getattr(value, "value", value)
        values[str(name)] = float(number)
    return values


def _error(exc: BaseException) -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" ({os.path.basename(tb[-1].filename)}:{tb[-1].lineno})" if tb else ""
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
            fn = fns.get(msg["target"]) or resolve(msg["target"])
            fns[msg["target"]] = fn
            if msg["key"] not in warmed:
                for _ in range(int(msg.get("warmup", 0))):
                    fn(dict(msg["params"]), int(msg["seed"]))
                warmed.add(msg["key"])
            send(wfd, {"values": measure_call(fn, msg["params"], int(msg["seed"]))})
        except Exception as exc:
            send(wfd, {"error": _error(exc)})


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
