"""The one catalogue of benchmark metrics: which way is better, the resolution of a measurement,
and which metrics the runner measures, stand for speed, for quality or for resources.

Every table, report, comparison and change-point analysis asks here; nothing else keeps a list of
metric names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Direction = Literal["lower", "higher"]

MEASURED_METRICS = ("wall_s", "cpu_user_s", "cpu_sys_s", "peak_rss_mb", "tracemalloc_peak_mb")
"""Metrics the runner measures around every target call (tracemalloc only when enabled)."""

INSTRUCTION_METRICS = ("instructions", "estimated_cycles")
"""Metrics the ``instructions`` instrument stores (per call; :mod:`allele.bench.instruments`)."""

TIME_METRICS = ("wall_s", "cpu_user_s", "ns_per_genome", "us_per_call", "time_to_first_token_s")
"""Metrics that stand for speed, in order of preference (the first present is shown)."""

QUALITY_METRICS = ("best_fitness", "nrmse", "mean_fitness", "tokens_per_s", "steps_per_s",
                   "diversity", "generations_to_target", "success")
"""Metrics that stand for quality, in order of preference."""

RESOURCE_METRICS = frozenset({"cpu_user_s", "cpu_sys_s", "peak_rss_mb", "tracemalloc_peak_mb"})
"""The runner's resource measurements (never a target's quality)."""


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
    "instructions": "lower",
    "estimated_cycles": "lower",
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


def metric_order(names: list[str]) -> list[str]:
    """The target's own metrics first (in the given order), then the runner's measurements."""
    return ([n for n in names if n not in MEASURED_METRICS]
            + [m for m in MEASURED_METRICS if m in names])


DETERMINISTIC_METRICS: dict[str, float] = {
    # Instruction counts under callgrind (issue 12): the same code on the same input counts the
    # same to a few parts in 10^5; the relative tolerance is at least twice the A/A spread that
    # benchmarks/instruction_stability.py measures.
    "instructions": 0.003,
    "estimated_cycles": 0.003,
}
"""Metrics measured deterministically, with their relative tolerance: compared exactly (a change
beyond the tolerance is a verdict), never pooled into a statistical FDR family."""


@dataclass(frozen=True, slots=True)
class MetricInfo:
    """What a comparison, a table or a report needs to know about one metric."""

    name: str
    direction: Direction
    unit: str = ""
    resolution: float = 0.0
    deterministic: bool = False
    tolerance: float | None = None
    """Relative tolerance of a deterministic metric (None for a statistical one)."""
    declared: bool = False
    """True when the direction was declared (spec, target or catalogue); False when guessed
    from the name."""


def metric_info(name: str, declared: Mapping[str, MetricInfo] | None = None) -> MetricInfo:
    """Everything known about ``name``: a declaration in ``declared`` (from the run's spec or
    its targets) wins; then the built-in catalogue; then a guess from the name."""
    if declared is not None and name in declared:
        return declared[name]
    tolerance = DETERMINISTIC_METRICS.get(name)
    return MetricInfo(name=name, direction=direction_of(name), resolution=resolution_of(name),
                      deterministic=tolerance is not None, tolerance=tolerance,
                      declared=name in METRIC_DIRECTIONS or tolerance is not None)
