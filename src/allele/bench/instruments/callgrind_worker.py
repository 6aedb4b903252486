"""The process callgrind runs: it calls each instrumented cell's seeds with collection switched on
around the call only, and counts Python-level calls in a second, uninstrumented pass.

Run as a script under ``valgrind --tool=callgrind --instr-atstart=no`` by
:mod:`allele.bench.instruments.callgrind` (HEAD's file, as :mod:`allele.bench.ab_worker` is):
it imports nothing of Allele at module level, puts the measured version's paths first on
``sys.path`` and loads the callgrind extension from the file the driver names (HEAD's build), so
that an A/B session counts both versions with the same extension.

For every cell, for each of its seeds, in order:

1. a warm-up call, uninstrumented (imports, numba's compilation, caches: without it the first
   call of an evolution cell counts 577M instructions instead of 34M);
2. the measured call, through the extension's ``collect(label, fn, params, seed)``, which
   switches instrumentation on, zeroes the counters, calls, dumps the counters tagged
   ``label`` (``<cell index>:<seed>``) and switches instrumentation off;
3. a call under :func:`sys.setprofile` counting every Python and builtin function call (exact
   and deterministic; uninstrumented, so its own cost is never counted).

Each cell's outcome is one JSON line appended to the result file as soon as it is known, so a
crash loses only the cell it happened in.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import json
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from types import FrameType
from typing import Any

_TIMEOUT_FACTOR = 250
"""A call under callgrind may take this many times the cell's ``timeout_s`` (the measured call
of an evolution cell runs about 190 times slower than natively)."""


class _Timeout(Exception):
    pass


def _resolve(ref: str) -> Callable[..., Any]:
    module, sep, attr = ref.partition(":")
    if not sep:
        from allele.bench.targets import resolve_target  # the measured version's registry
        return resolve_target(ref)
    fn = getattr(importlib.import_module(module), attr, None)
    if not callable(fn):
        raise LookupError(f"{module} has no function {attr!r}")
    return fn  # type: ignore[no-any-return]


def _load_extension(path: str) -> Any:
    spec = importlib.util.spec_from_file_location("_callgrind", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the callgrind extension from {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _c_name(fn: Any) -> str:
    owner = getattr(fn, "__self__", None)
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", "?")
    module = getattr(fn, "__module__", None)
    if module:
        return f"{module}.{name}"
    if owner is not None and not isinstance(owner, type(sys)):
        kind = owner if isinstance(owner, type) else type(owner)
        return f"{kind.__module__}.{kind.__qualname__}.{getattr(fn, '__name__', name)}"
    return f"builtins.{name}"


def count_calls(fn: Callable[..., Any], params: dict[str, Any], seed: int
                ) -> tuple[dict[str, int], dict[str, int]]:
    """Call ``fn(params, seed)`` counting calls per function: ``(calls, beneath)``.

    ``calls[f]`` is how many times ``f`` was called; ``beneath[f]`` how many calls (its own
    included) happened while ``f`` was on the stack, counted once for recursion, a deterministic
    stand-in for the Python-level work a function causes."""
    calls: dict[str, int] = {}
    beneath: dict[str, int] = {}
    active: dict[str, int] = {}
    stack: list[tuple[str, int, bool]] = []
    names: dict[Any, str] = {}
    n = 0

    def hook(frame: FrameType, event: str, arg: Any) -> None:
        nonlocal n
        if event == "call" or event == "c_call":
            n += 1
            if event == "call":
                code = frame.f_code
                key = names.get(code)
                if key is None:
                    module = frame.f_globals.get("__name__", "?")
                    key = names[code] = f"{module}.{code.co_qualname}"
            else:
                key = names.get(arg) or _c_name(arg)
            calls[key] = calls.get(key, 0) + 1
            depth = active.get(key, 0)
            active[key] = depth + 1
            stack.append((key, n, depth == 0))
        elif stack:
            key, start, outer = stack.pop()
            active[key] -= 1
            if outer:
                beneath[key] = beneath.get(key, 0) + n - start + 1

    sys.setprofile(hook)
    try:
        fn(params, seed)
    finally:
        sys.setprofile(None)
    for name in ("builtins.setprofile", "sys.setprofile"):
        calls.pop(name, None)
        beneath.pop(name, None)
    return calls, beneath


def _error(exc: BaseException) -> str:
    tb = traceback.extract_tb(exc.__traceback__)
    where = f" ({os.path.basename(tb[-1].filename)}:{tb[-1].lineno})" if tb else ""
    return f"{type(exc).__name__}: {str(exc).strip()}"[:500] + where


def _on_alarm(signum: int, frame: object) -> None:
    raise _Timeout


def _with_alarm(seconds: float, call: Callable[[], Any]) -> Any:
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 1.0))
    try:
        return call()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _with_state(fn: Callable[..., Any], cell: dict[str, Any]) -> Callable[..., Any]:
    """The target as the instrument calls it: with the cell's ``setup`` (its state passed as
    ``state=``) and ``teardown`` around it, both uncounted when the measured call is the
    target itself (:func:`_counted`)."""
    if not cell.get("setup"):
        return fn
    setup = _resolve(cell["setup"])
    teardown = _resolve(cell["teardown"]) if cell.get("teardown") else None

    def call(params: dict[str, Any], seed: int) -> Any:
        state = setup(dict(params), seed)
        try:
            return fn(params, seed, state=state)
        finally:
            if teardown is not None:
                teardown(dict(params), seed, state=state)

    return call


def _counted(ext: Any, label: str, fn: Callable[..., Any], cell: dict[str, Any],
             params: dict[str, Any], seed: int) -> Any:
    """The measured call: collection switched on around the target only (setup before it and
    teardown after it run uncounted)."""
    if not cell.get("setup"):
        return ext.collect(label, fn, params, seed)
    setup = _resolve(cell["setup"])
    state = setup(dict(params), seed)
    try:
        return ext.collect(label, functools.partial(fn, state=state), params, seed)
    finally:
        if cell.get("teardown"):
            _resolve(cell["teardown"])(dict(params), seed, state=state)


def run_cell(ext: Any, cell: dict[str, Any]) -> dict[str, Any]:
    """Warm-up, measured and counted calls of one cell's seeds (see the module docstring)."""
    target = _resolve(cell["target"])
    fn = _with_state(target, cell)
    params: dict[str, Any] = cell["params"]
    limit = float(cell["timeout_s"]) * _TIMEOUT_FACTOR
    calls: dict[str, int] = {}
    beneath: dict[str, int] = {}
    seconds = {"warmup": 0.0, "measured": 0.0, "calls": 0.0}
    for i, seed in enumerate(cell["seeds"]):
        t0 = time.perf_counter()
        for _ in range(max(1, int(cell.get("warmup", 0))) if i == 0 else 1):
            _with_alarm(limit, functools.partial(fn, dict(params), seed))
        t1 = time.perf_counter()
        label = f"{cell['index']}:{seed}"
        _with_alarm(limit, functools.partial(_counted, ext, label, target, cell, dict(params),
                                             seed))
        t2 = time.perf_counter()
        if cell.get("calls", True):
            c, b = _with_alarm(limit, functools.partial(count_calls, fn, dict(params), seed))
            for key, v in c.items():
                calls[key] = calls.get(key, 0) + v
            for key, v in b.items():
                beneath[key] = beneath.get(key, 0) + v
        seconds["warmup"] += t1 - t0
        seconds["measured"] += t2 - t1
        seconds["calls"] += time.perf_counter() - t2
    return {"index": cell["index"], "calls": calls, "beneath": beneath, "seconds": seconds}


def main(argv: list[str]) -> int:
    with open(argv[0], encoding="utf-8") as fh:
        job = json.load(fh)
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != here]
    sys.path[0:0] = list(job.get("paths", []))
    if job.get("cwd"):
        os.chdir(job["cwd"])
    signal.signal(signal.SIGALRM, _on_alarm)
    ext = _load_extension(job["extension"])
    with open(job["results"], "a", encoding="utf-8") as out:
        for cell in job["cells"]:
            try:
                answer = run_cell(ext, cell)
            except _Timeout:
                answer = {"index": cell["index"], "error": "timeout: a call under callgrind ran "
                          f"longer than {_TIMEOUT_FACTOR} x timeout_s"}
            except Exception as exc:
                answer = {"index": cell["index"], "error": _error(exc)}
            except SystemExit as exc:
                answer = {"index": cell["index"],
                          "error": f"SystemExit: the target called sys.exit({exc.code!r})"}
            out.write(json.dumps(answer) + "\n")
            out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
