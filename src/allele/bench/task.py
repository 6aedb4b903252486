"""The runner's unit of work: one cell (or one round of a cell's seeds) for one worker."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CellTask:
    """Everything a worker needs to run one cell (picklable)."""

    key: str
    benchmark: str
    target: str
    params: dict[str, Any]
    seeds: tuple[int, ...]
    repeats: int = 1
    warmup: int = 0
    timeout_s: float = 600.0
    metrics: tuple[str, ...] | None = None
    profile: bool = False
    tracemalloc: bool = False
    alloc_peak: bool = False
    """Run the untimed memory pass that gives ``alloc_peak_mb`` (two calls per seed)."""
    memory_limit_mb: float | None = None
    isolation: str = "process"
    index: int = 0
    """Position in the run's order (for progress display)."""
    round: int = 0
    rounds: int = 1
    """This task runs round ``round`` of ``rounds`` of its cell (its share of the seeds)."""
    instruction_seeds: tuple[int, ...] = ()
    """The seeds the ``instructions`` instrument counts after the timed phase (empty: the cell
    is not instrumented; :mod:`allele.bench.instruments`)."""
    cache_sim: bool = False
    """Count with callgrind's cache simulation (``estimated_cycles``)."""
    timed: bool = True
    """Whether the cell has a timed phase (its ``instruments`` include ``time``)."""
    setup: str | None = None
    """``module:function`` called as ``setup(params, seed)`` before every timed call, untimed;
    its return value reaches the target as ``state=``."""
    teardown: str | None = None
    """``module:function`` called as ``teardown(params, seed, state=state)`` after each timed
    sample, untimed."""
    inner_loops: int | None = None
    """Calls per timed sample; None: calibrated (:func:`allele.bench.profiler.loops_for`)."""
    live: bool = False
    """Forward samples, component events and user metrics to the runner as they arrive
    (:mod:`allele.bench.live`)."""


def take_for_target(pending: deque[CellTask], target: str | None) -> CellTask:
    """The first pending task of ``target`` within the round of the next task, else the next
    task (removed from ``pending``)."""
    head = pending[0]
    if target is not None and head.target != target:
        for i, task in enumerate(pending):
            if task.round != head.round:
                break
            if task.target == target:
                del pending[i]
                return task
    return pending.popleft()
