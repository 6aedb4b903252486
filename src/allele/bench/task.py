"""The runner's unit of work: one cell (or one round of a cell's seeds) for one worker."""

from __future__ import annotations

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
    live: bool = False
    """Forward samples, component events and user metrics to the runner as they arrive
    (:mod:`allele.bench.live`)."""
