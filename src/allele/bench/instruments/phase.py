"""The instruction phase of a run: after the timed phase, one callgrind subprocess counts every
instrumented cell, and its counts join the cell's stored result.

Used by the runner (:class:`allele.bench.runner.Runner`) and by A/B sessions
(:mod:`allele.bench.ab`, once per version, both with HEAD's extension). A cell whose timed phase
did not end ``ok`` is not counted. A timed cell whose counting fails keeps its status and timed
samples, with the reason in its ``error``; a cell measured by ``instructions`` alone (no
``time`` instrument) fails with it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from allele.bench.instruments.callgrind import CountPass, InstrumentedCell, count_cells
from allele.store.model import CellResult


@dataclass(frozen=True, slots=True)
class Instrumented:
    """What the instruction phase needs of one cell (from a runner task or an A/B cell)."""

    key: str
    target: str
    params: dict[str, Any]
    seeds: tuple[int, ...]
    warmup: int
    timeout_s: float
    cache_sim: bool
    timed: bool
    setup: str | None = None
    teardown: str | None = None


def from_tasks(tasks: Iterable[Any]) -> dict[str, Instrumented]:
    """The instrumented cells of a run's tasks (:class:`~allele.bench.task.CellTask`), one per
    cell key, in task order."""
    out: dict[str, Instrumented] = {}
    for t in tasks:
        if t.instruction_seeds and t.key not in out:
            out[t.key] = Instrumented(t.key, t.target, dict(t.params), tuple(t.instruction_seeds),
                                      t.warmup, t.timeout_s, t.cache_sim, t.timed,
                                      getattr(t, "setup", None), getattr(t, "teardown", None))
    return out


def count_phase(cells: Mapping[str, Instrumented], timed: Mapping[str, CellResult], *,
                paths: Sequence[str] = (), cwd: Path | None = None,
                extension: Path | None = None,
                on_start: Callable[[int], None] | None = None
                ) -> tuple[list[CellResult], CountPass | None]:
    """Count ``cells`` in one callgrind pass and return their results: ``timed[key]`` (the
    stored timed result) with the counts and profile added, or a new result for a cell without
    a timed phase. Cells whose timed result is missing or not ``ok`` are left out."""
    todo = [c for c in cells.values()
            if not c.timed or (c.key in timed and timed[c.key].status == "ok")]
    if not todo:
        return [], None
    started = time.time()
    counted = count_cells([InstrumentedCell(c.key, c.target, c.params, c.seeds, c.warmup,
                                            c.timeout_s, c.cache_sim, c.setup, c.teardown)
                           for c in todo],
                          paths=paths, cwd=cwd, extension=extension, on_start=on_start)
    out = []
    for c in todo:
        counts = counted.cells[c.key]
        base = timed.get(c.key) if c.timed else None
        if base is None:
            result = CellResult(key=c.key, target=c.target, params=dict(c.params),
                                status="ok" if counts.error is None else "failed",
                                samples=list(counts.samples), error=counts.error,
                                started_at=started, finished_at=time.time(),
                                instr_profile=counts.profile)
        else:
            result = base
            result.samples = [*result.samples, *counts.samples]
            result.instr_profile = counts.profile
            if counts.error is not None:
                note = f"instructions not counted: {counts.error}"
                result.error = f"{result.error}; {note}" if result.error else note
        out.append(result)
    return out, counted
