"""Targets the runner tests reference as ``tests.bench.runner_targets:NAME`` (workers import them)."""

from __future__ import annotations

import ctypes
import os
import signal
import time
from pathlib import Path
from typing import Any

import numpy as np


def echo(params: dict[str, Any], seed: int) -> dict[str, float]:
    """Returns its numeric params and the seed, plus the worker's pid."""
    out = {k: float(v) for k, v in params.items() if isinstance(v, int | float)}
    out["seed_seen"] = float(seed)
    out["pid"] = float(os.getpid())
    if "sleep_s" in params:
        time.sleep(float(params["sleep_s"]))
    return out


def flaky(params: dict[str, Any], seed: int) -> dict[str, float]:
    """Raises for x == 2, else returns x * seed."""
    if params.get("x") == 2:
        raise RuntimeError("x=2 is not allowed")
    return {"y": float(params.get("x", 0)) * seed}


def crash(params: dict[str, Any], seed: int) -> dict[str, float]:
    """Dies the way ``params['how']`` says: segv, abort, oom_kill, hang, busy_hang, gil_hang,
    exit, hog, or ok."""
    how = params.get("how", "ok")
    if how == "segv":
        ctypes.string_at(0)
    elif how == "abort":
        os.abort()
    elif how == "oom_kill":  # what the kernel's OOM killer does to a process
        os.kill(os.getpid(), signal.SIGKILL)
    elif how == "hang":
        time.sleep(3600)
    elif how == "busy_hang":  # does not return to Python's signal handling quickly
        while True:
            pass
    elif how == "gil_hang":  # a C call that never returns, holding the GIL: the process freezes
        ctypes.PyDLL(None).sleep(3600)
    elif how == "exit":
        os._exit(3)
    elif how == "hog":
        _ = bytearray(int(params.get("mb", 4096)) * 1024 * 1024)
    return {"ok": 1.0}


def allocate(params: dict[str, Any], seed: int) -> dict[str, float]:
    """Touches ``mb`` MiB of memory (numpy) and ``py_mb`` MiB of Python objects."""
    arr = np.ones(int(params.get("mb", 0)) * 1024 * 1024 // 8)
    blob = [bytes(1024) for _ in range(int(params.get("py_mb", 0)) * 1024)]
    return {"sum": float(arr.sum()) + len(blob)}


def interrupt_after(params: dict[str, Any], seed: int) -> dict[str, float]:
    """Raises KeyboardInterrupt (as Ctrl-C would) when the file ``params['flag']`` exists, in
    the cell ``x == stop_at`` (and with ``stop_seed``, at that seed only: a later round)."""
    if (Path(str(params["flag"])).exists() and params.get("x") == params.get("stop_at")
            and params.get("stop_seed", seed) == seed):
        raise KeyboardInterrupt
    return {"x": float(params.get("x", 0))}


def seed0_slow(params: dict[str, Any], seed: int) -> dict[str, float]:
    """Sleeps ``s0`` seconds for seed 0 and ``s`` for any other: a later round of a cell can
    finish before its first."""
    time.sleep(float(params["s0"] if seed == 0 else params.get("s", 0.0)))
    return {"seed_seen": float(seed)}


def slow(params: dict[str, Any], seed: int) -> dict[str, float]:
    """Sleeps ``s`` seconds."""
    time.sleep(float(params.get("s", 0.2)))
    return {"x": float(params.get("x", 0))}


CALLS: dict[str, int] = {}
"""Calls of :func:`counted` in this process, per cell (``params['cell']``)."""


def counted(params: dict[str, Any], seed: int) -> dict[str, float]:
    """Counts its calls per cell in this process; fails for ``fail_seed``; returns the pid."""
    cell = str(params.get("cell", ""))
    CALLS[cell] = CALLS.get(cell, 0) + 1
    if seed == params.get("fail_seed"):
        raise ValueError(f"seed {seed} fails")
    return {"seed_seen": float(seed), "pid": float(os.getpid())}


def echo_too(params: dict[str, Any], seed: int) -> dict[str, float]:
    """:func:`echo` under another target name (a second target for worker-isolation tests)."""
    return echo(params, seed)
