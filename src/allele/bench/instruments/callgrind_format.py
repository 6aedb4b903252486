"""Reading callgrind's output files: the totals of a dump and its per-function costs.

Pure parsing, no I/O beyond the file given. The instrument runs callgrind with
``--compress-strings=no --compress-pos=no``, so every ``ob=``/``fn=``/``cfn=`` line names its
object or function in full and every cost line is ``position cost1 cost2 ...`` (trailing zero
costs omitted). A cost line right after ``calls=`` is the *inclusive* cost of that call and
belongs to the caller's inclusive cost only; every other cost line is the current function's
*self* cost. A function's inclusive cost is its self cost plus the cost of the calls it makes.

Recursion: callgrind names the deeper levels of a recursive function ``fn'2``, ``fn'3``; they
are merged into ``fn`` (self costs add up; the inclusive cost is the largest of the levels,
i.e. the outermost one, which already contains the inner ones).

Estimated cycles (with ``--cache-sim=yes``): ``Ir + 10 * (I1mr + D1mr + D1mw) + 100 * (ILmr +
DLmr + DLmw)``, the weights callgrind's and cachegrind's documentation use for a level-1 miss
served by the last-level cache (about 10 cycles) and a last-level miss served by memory (about
100 cycles). It is a model of a simple in-order CPU, not of this machine's: read it as "how much
memory traffic the code causes", compared between versions, never as a duration.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

L1_MISS_CYCLES = 10
"""Cycles an estimated level-1 miss costs (served by the last-level cache)."""
LL_MISS_CYCLES = 100
"""Cycles an estimated last-level miss costs (served by memory)."""

_L1_EVENTS = ("I1mr", "D1mr", "D1mw")
_LL_EVENTS = ("ILmr", "DLmr", "DLmw")


@dataclass(slots=True)
class Dump:
    """One callgrind dump: its label (the client request's text), event names, totals and each
    function's ``[self, inclusive]`` cost vectors (one entry per event)."""

    label: str
    events: list[str]
    totals: list[int]
    functions: dict[str, list[list[int]]] = field(default_factory=dict)

    def total(self, event: str) -> int:
        """The dump's total of one event (0 when it was not collected)."""
        return self.totals[self.events.index(event)] if event in self.events else 0

    @property
    def instructions(self) -> int:
        return self.total("Ir")

    @property
    def cache_simulated(self) -> bool:
        return all(e in self.events for e in (*_L1_EVENTS, *_LL_EVENTS))

    @property
    def estimated_cycles(self) -> int:
        """``Ir + 10 * L1 misses + 100 * LL misses`` (see the module docstring)."""
        return estimated_cycles(self.events, self.totals)


def estimated_cycles(events: Sequence[str], costs: Sequence[int]) -> int:
    """Estimated cycles of one cost vector (see the module docstring)."""
    value = dict(zip(events, costs, strict=False))
    return (value.get("Ir", 0) + L1_MISS_CYCLES * sum(value.get(e, 0) for e in _L1_EVENTS)
            + LL_MISS_CYCLES * sum(value.get(e, 0) for e in _LL_EVENTS))


def _base_name(name: str) -> str:
    """``fn'2`` (a deeper recursion level) -> ``fn``."""
    head, sep, tail = name.rpartition("'")
    return head if sep and tail.isdigit() else name


def _add(into: list[int], costs: Sequence[int]) -> None:
    for i, c in enumerate(costs):
        into[i] += c


def _costs(line: str, width: int) -> list[int]:
    parts = line.split()
    return [int(x) for x in parts[1:width + 1]]


def parse_lines(lines: Iterable[str]) -> Dump:
    """A dump from the lines of one callgrind output file."""
    label = ""
    events: list[str] = []
    totals: list[int] | None = None
    summary: list[int] | None = None
    selfs: dict[str, list[int]] = {}
    incl: dict[str, list[int]] = {}
    current = ""
    in_call = False
    for raw in lines:
        line = raw.rstrip("\n")
        if not line or line.startswith("#"):
            continue
        c = line[0]
        if c.isdigit() or c in "+-*":
            if not current:
                continue
            width = len(events)
            costs = _costs(line, width)
            if in_call:
                _add(incl.setdefault(current, [0] * width), costs)
                in_call = False
            else:
                _add(selfs.setdefault(current, [0] * width), costs)
                _add(incl.setdefault(current, [0] * width), costs)
        elif line.startswith("fn="):
            current = line[3:]
        elif line.startswith("calls="):
            in_call = True
        elif line.startswith("events:"):
            events = line.split(":", 1)[1].split()
        elif line.startswith("totals:"):
            totals = [int(x) for x in line.split(":", 1)[1].split()]
        elif line.startswith("summary:"):
            summary = [int(x) for x in line.split(":", 1)[1].split()]
        elif line.startswith("desc: Trigger: Client Request: "):
            label = line[len("desc: Trigger: Client Request: "):]
    total = totals if totals is not None else summary
    if not events or total is None:
        raise ValueError("not a complete callgrind output file (no events or totals line)")
    total = total + [0] * (len(events) - len(total))
    merged: dict[str, list[list[int]]] = {}
    for name in incl:
        base = _base_name(name)
        s = selfs.get(name, [0] * len(events))
        entry = merged.setdefault(base, [[0] * len(events), [0] * len(events)])
        _add(entry[0], s)
        if incl[name][0] > entry[1][0]:
            entry[1] = list(incl[name])
    return Dump(label=label, events=events, totals=total, functions=merged)


def parse_file(path: str | Path) -> Dump:
    """A dump from one callgrind output file."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        return parse_lines(fh)


def dump_files(out_file: str | Path) -> list[Path]:
    """The numbered dumps ``OUT.1``, ``OUT.2``, ... that ``--callgrind-out-file=OUT`` produced,
    in dump order (the final dump at exit, ``OUT`` itself, holds nothing measured). When ``OUT``
    holds ``%p`` (a file per process), the dumps of every process, by process id then dump
    number."""
    base = Path(out_file)
    head, pid, tail = base.name.partition("%p")
    found = []
    for p in base.parent.glob(f"{head}*{tail}.*" if pid else base.name + ".*"):
        name = p.name
        stem, _, suffix = name.rpartition(".")
        proc = stem[len(head):len(stem) - len(tail)] if pid else "0"
        if suffix.isdigit() and proc.isdigit() and stem.startswith(head) and stem.endswith(tail):
            found.append((int(proc), int(suffix), p))
    return [p for _, _, p in sorted(found)]
