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

import numpy as np
import numpy.typing as npt

CellStatus = Literal["ok", "failed", "timeout", "crashed"]
RunStatus = Literal["running", "finished", "interrupted", "failed"]


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
    instr_profile: bytes | None = None
    """The compressed instruction profile of the ``instructions`` instrument (saved with the
    cell; a loaded run leaves it None: :meth:`ResultStore.instruction_profiles` reads it)."""
    declared: dict[str, dict[str, str]] | None = None
    """Declarations of the metrics the target returned as ``allele.bench.Metric`` values
    (``{name: {direction, unit}}``), on their way to the run's spec document; not stored with
    the cell."""
    round: int | None = field(default=None, compare=False)
    """Which round of its cell's task produced this result (a cell of several rounds), on its
    way to the runner; not stored with the cell, and not part of equality."""

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


@dataclass(frozen=True, slots=True)
class MetricHistory:
    """One metric of one cell across runs, as arrays, oldest run first.

    Run ``i``'s raw samples are ``values[offsets[i]:offsets[i + 1]]`` (with their ``seeds`` and
    ``repeats``), in the order they were saved. Built without one Python object per sample, for
    analyses over long histories (change points, trends).
    """

    key: str
    metric: str
    run_ids: list[str]
    run_names: list[str]
    created_at: npt.NDArray[np.float64]
    statuses: list[str]
    offsets: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]
    seeds: npt.NDArray[np.int64]
    repeats: npt.NDArray[np.int64]
    target: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    """The cell's target and parameters (as in its newest run)."""

    def __len__(self) -> int:
        return len(self.run_ids)

    def run_values(self, i: int) -> npt.NDArray[np.float64]:
        """The samples of the ``i``-th run (oldest first)."""
        return self.values[self.offsets[i]:self.offsets[i + 1]]

    def medians(self) -> npt.NDArray[np.float64]:
        """The median of each run's samples."""
        return np.array([np.median(self.run_values(i)) for i in range(len(self))],
                        dtype=np.float64)

