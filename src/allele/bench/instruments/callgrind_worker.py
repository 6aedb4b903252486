"""The process callgrind runs: it calls each instrumented cell's seeds with collection switched on
around the call only, and counts Python-level calls in a second, uninstrumented pass.

Run as a script under ``valgrind --tool=callgrind --instr-atstart=no`` by
:mod:`allele.bench.instruments.callgrind` (HEAD's file, as :mod:`allele.bench.ab_worker` is):
it imports nothing of Allele at module level, puts the measured version's paths first on
``sys.path`` and loads the callgrind extension from the file the driver names (HEAD's build), so
that an A/B session counts both versions with the same extension.

Every cell runs in a process of its own, forked from one common state (:func:`_common_state`:
the extension loaded, the targets imported and each called once, in a fixed order). A count
depends on the interpreter's and the allocator's state when the call starts (the type attribute
cache, the collector, the free lists, numpy's and numba's caches). Counting the cells one after
the other in one process made a cell's count depend on the cells counted before it: up to 1%
apart in separate invocations that counted the same cells in other orders
(``benchmarks/instruction_stability.py``), and identical code came out 0.4% "improved" in an A/B
session. A forked cell starts from the same state whatever the order (the state depends on the
run's targets and cells, not on their order), and a crash in native code costs only its cell.
In its process, for each of the cell's seeds, in order:

1. a warm-up call, uninstrumented (imports, numba's compilation, caches: without it the first
   call of an evolution cell counts 577M instructions instead of 34M);
2. the measured call, through the extension's ``collect(label, fn, params, seed)``, which
   switches instrumentation on, zeroes the counters, calls, dumps the counters tagged
   ``label`` (``<cell index>:<seed>``) and switches instrumentation off;
3. a call under :func:`sys.setprofile` counting every Python and builtin function call (exact
   and deterministic; uninstrumented, so its own cost is never counted).

Each cell's outcome is one JSON line appended to the result file as soon as it is known (by the
parent when the cell's process died without one), so a crash loses only the cell it happened
in. Each process writes its own callgrind dumps (``--callgrind-out-file`` holds ``%p``).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import json
import os
import signal
import sys
import threading
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


def _answer(ext: Any, cell: dict[str, Any]) -> dict[str, Any]:
    """:func:`run_cell`'s answer, or the cell's error."""
    try:
        return run_cell(ext, cell)
    except _Timeout:
        return {"index": cell["index"], "error": "timeout: a call under callgrind ran longer "
                f"than {_TIMEOUT_FACTOR} x timeout_s"}
    except Exception as exc:
        return {"index": cell["index"], "error": _error(exc)}
    except SystemExit as exc:
        return {"index": cell["index"],
                "error": f"SystemExit: the target called sys.exit({exc.code!r})"}


def _write(path: str, answer: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(answer) + "\n")


def _common_state(cells: list[dict[str, Any]]) -> None:
    """The state every cell's process starts from: each cell's target, setup and teardown
    imported, then each target called once, uncounted, with the parameters and first seed of
    its cell that sorts first by parameters; in a fixed order, whatever the cells' order.

    The call loads what every cell of the target shares (numba's kernels, valgrind's
    translations of the code they run) once, not once per cell's process: without it the
    evolution cells of the quick preset took 19 s under callgrind instead of 13 s. A reference or
    call that fails here fails again in the cell's own process, which reports it."""
    refs = {c[k] for c in cells for k in ("target", "setup", "teardown") if c.get(k)}
    for ref in sorted(refs):
        with contextlib.suppress(Exception):
            _resolve(ref)
    first: dict[str, dict[str, Any]] = {}
    for cell in sorted(cells, key=lambda c: json.dumps(c["params"], sort_keys=True, default=str)):
        first.setdefault(cell["target"], cell)
    for target in sorted(first):
        cell = first[target]
        if not cell["seeds"]:
            continue
        limit = float(cell["timeout_s"]) * _TIMEOUT_FACTOR
        with contextlib.suppress(Exception, SystemExit):  # the cell reports it
            fn = _with_state(_resolve(target), cell)
            _with_alarm(limit, functools.partial(fn, dict(cell["params"]), cell["seeds"][0]))
    for thread in threading.enumerate():  # a fork copies no thread: let helpers end first
        if thread is not threading.main_thread():
            thread.join(timeout=5.0)


def _run_forked(ext: Any, cell: dict[str, Any], results: str) -> None:
    """One cell in a child forked from the common state (see the module docstring); a child
    that dies without an answer (a crash in native code, a signal) gets one written here."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: answer, then leave without the parent's exit handlers
        code = 0
        try:
            _write(results, _answer(ext, cell))
        except BaseException:
            code = 70
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            how = f"signal {sig}"
            with contextlib.suppress(ValueError):
                how += f", {signal.Signals(sig).name}"
        else:
            how = f"exit code {os.WEXITSTATUS(status)}"
        _write(results, {"index": cell["index"], "error": f"the cell's process died ({how})"})


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
    _common_state(job["cells"])
    for cell in job["cells"]:
        _run_forked(ext, cell, job["results"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
