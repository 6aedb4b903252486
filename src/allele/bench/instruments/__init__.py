"""Instruments: what a benchmark measures besides the timed samples of the runner.

``instruments: [time, instructions]`` in a spec (per benchmark or in ``defaults``):

* ``time`` (the default): wall, CPU and memory around every call, in the worker processes
  (:mod:`allele.bench.profiler`);
* ``instructions``: deterministic instruction counts under valgrind's callgrind, after the
  timed phase, in one subprocess per run (:mod:`allele.bench.instruments.callgrind`), with a
  per-cell profile that says why a count changed (:mod:`allele.bench.instruments.profiles`,
  ``allele bench explain``).

The callgrind client requests come from a small C extension (``_callgrind``) built when
valgrind's header is present at install time; :func:`require_instructions` is the one error
when it is not.
"""

from __future__ import annotations

from allele.bench.instruments.callgrind import (
    CellCounts,
    CountPass,
    InstrumentedCell,
    InstrumentUnavailable,
    count_cells,
)
from allele.bench.instruments.callgrind import require as require_instructions

INSTRUMENTS = ("time", "instructions")
"""Every instrument a spec may name."""

__all__ = ["INSTRUMENTS", "CellCounts", "CountPass", "InstrumentUnavailable",
           "InstrumentedCell", "count_cells", "require_instructions"]
