"""Targets the fault tests reference as ``tests.faults.targets:NAME`` (workers import them)."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any


def tiny(params: dict[str, Any], seed: int) -> dict[str, float]:
    """A cheap, deterministic cell: two metrics from the params and the seed."""
    a = float(params.get("a", 0))
    return {"v": a * 1000.0 + seed, "w": (a + 1.0) / (seed + 1.0)}


def raises(params: dict[str, Any], seed: int) -> dict[str, float]:
    """Fails with the message ``params['message']`` (user text, markup included)."""
    raise FileNotFoundError(str(params.get("message", "cannot open [/data/input.csv]")))


def many_metrics(params: dict[str, Any], seed: int) -> dict[str, float]:
    """Returns ``params['n']`` distinct metrics (more than a cell can hold, by default)."""
    return {f"m{i}": float(i) for i in range(int(params.get("n", 70_000)))}


def exits(params: dict[str, Any], seed: int) -> dict[str, float]:
    """Calls ``sys.exit`` when ``params['exit']`` is true."""
    if params.get("exit"):
        sys.exit(int(params.get("code", 0)))
    return {"x": 1.0}


def uses_backend(params: dict[str, Any], seed: int) -> dict[str, float]:
    """Imports :mod:`tests.faults.fallback_backend` (first import in this worker under the
    cell's memory limit, when there is one) and needs its fast path."""
    backend = importlib.import_module("tests.faults.fallback_backend")
    return {"digest": float(backend.digest(b"allele")), "pid": float(os.getpid())}


def ok(params: dict[str, Any], seed: int) -> dict[str, float]:
    """A target whose reference ends in ``:ok`` (``...targets:ok:`` is an emoji code)."""
    return {"x": float(seed)}


def sleeps(params: dict[str, Any], seed: int) -> dict[str, float]:
    """Sleeps ``params['s']`` seconds; with ``params['hold']``, creates that file's ``.started``
    twin and waits while the file exists (a cell a test holds open)."""
    import time
    from pathlib import Path

    hold = params.get("hold")
    if hold:
        Path(str(hold) + ".started").touch()
        while Path(str(hold)).exists():
            time.sleep(0.02)
    time.sleep(float(params.get("s", 0.0)))
    return {"x": float(params.get("a", 0))}


def hangs(params: dict[str, Any], seed: int) -> dict[str, float]:
    """Never returns, the hard way ``params['how']`` says: ``sigalrm_blocked`` (a busy loop
    with the timeout signal blocked) or ``gil`` (a regex backtracking in C, holding the GIL, so
    no Python thread of the process runs). Touches ``<dir>/<how>.started`` first."""
    import re
    import signal
    from pathlib import Path

    how = str(params["how"])
    Path(str(params["dir"]), f"{how}.started").touch()
    if how == "sigalrm_blocked":
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        while True:
            pass
    re.match(r"(a+)+$", "a" * 64 + "b")  # 2^64 steps in C
    return {"x": 0.0}
