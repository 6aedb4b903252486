"""Plain records shared by the matrix runner, the result store, comparison and reports.

A *run* executes a spec: its matrix expands into *cells* (one parameter assignment each). Every
cell is measured for every seed of the spec, ``repeats`` times per seed, and every measurement is
kept as a raw :class:`Sample` (asv's lesson: keep raw samples, not only summaries). Samples of the
same cell key, metric and seed pair up across runs, which is what makes paired statistics possible.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

CellStatus = Literal["ok", "failed", "timeout", "crashed"]
RunStatus = Literal["running", "finished", "interrupted", "failed"]
Direction = Literal["lower", "higher"]


def cell_key(target: str, params: dict[str, Any]) -> str:
    """The canonical identity of a cell: the target and its parameters as sorted JSON.

    The same parameters give the same key in every run, so a cell's history can be followed
    across runs and specs.
    """
    return target + "|" + json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)


@dataclass(frozen=True, slots=True)
class Sample:
    """One measured value of one metric, for one seed and one repeat of a cell."""

    metric: str
    value: float
    seed: int
    repeat: int


@dataclass(slots=True)
class CellResult:
    """Everything measured for one cell of one run."""

    key: str
    target: str
    params: dict[str, Any]
    status: CellStatus
    samples: list[Sample] = field(default_factory=list)
    error: str | None = None
    started_at: float = 0.0
    finished_at: float = 0.0
    profile: str | None = None
    """Optional cProfile top-N text."""

    def values(self, metric: str) -> list[float]:
        """All samples of one metric, in (seed, repeat) order."""
        picked = sorted((s for s in self.samples if s.metric == metric),
                        key=lambda s: (s.seed, s.repeat))
        return [s.value for s in picked]

    def metrics(self) -> list[str]:
        """The metric names measured in this cell, sorted."""
        return sorted({s.metric for s in self.samples})

    def keyed(self, metric: str) -> dict[tuple[int, int], float]:
        """One metric's samples keyed by ``(seed, repeat)``, in that order (pairing across runs)."""
        picked = sorted((s for s in self.samples if s.metric == metric),
                        key=lambda s: (s.seed, s.repeat))
        return {(s.seed, s.repeat): s.value for s in picked}


@dataclass(slots=True)
class RunInfo:
    """A run's header: what ran, where, when, and how it ended."""

    id: str
    name: str
    spec_name: str
    target: str
    status: RunStatus
    created_at: float
    finished_at: float | None = None
    spec: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    cell_count: int = 0
    failed_count: int = 0


@dataclass(slots=True)
class RunRecord:
    """A whole run: its header and every cell with its raw samples."""

    info: RunInfo
    cells: list[CellResult]

    def cell(self, key: str) -> CellResult | None:
        """The cell with this key, or None."""
        for c in self.cells:
            if c.key == key:
                return c
        return None


# Which way is better for each well-known metric. Metrics not listed default to "lower" when
# their name looks like a cost (time, seconds, memory, rss, nrmse, error) and "higher" otherwise;
# see :func:`direction_of`.
METRIC_DIRECTIONS: dict[str, Direction] = {
    "wall_s": "lower",
    "cpu_user_s": "lower",
    "cpu_sys_s": "lower",
    "peak_rss_mb": "lower",
    "tracemalloc_peak_mb": "lower",
    "best_fitness": "higher",
    "mean_fitness": "higher",
    "diversity": "higher",
    "generations_to_target": "lower",
    "nrmse": "lower",
    "steps_per_s": "higher",
    "tokens_per_s": "higher",
    "time_to_first_token_s": "lower",
    "success": "higher",
}

_COST_HINTS = ("time", "_s", "seconds", "latency", "rss", "memory", "_mb", "nrmse", "error", "loss")


METRIC_RESOLUTIONS: dict[str, float] = {
    # getrusage CPU times: the kernel accounts them in scheduler ticks on many systems, and a
    # cell that barely enters the kernel reads 0 one time and a few microseconds the next
    "cpu_user_s": 1e-3,
    "cpu_sys_s": 1e-3,
    # peak RSS is read in kilobytes and moves by a page table or an allocator arena
    "peak_rss_mb": 1.0,
}
"""Absolute resolution of the runner's own measurements: values below it carry no signal."""


def resolution_of(metric: str) -> float:
    """The absolute resolution of ``metric`` (0 when it has none, i.e. every value counts)."""
    return METRIC_RESOLUTIONS.get(metric, 0.0)


def direction_of(metric: str) -> Direction:
    """Whether lower or higher values of ``metric`` are better."""
    if metric in METRIC_DIRECTIONS:
        return METRIC_DIRECTIONS[metric]
    name = metric.lower()
    return "lower" if any(h in name for h in _COST_HINTS) else "higher"
