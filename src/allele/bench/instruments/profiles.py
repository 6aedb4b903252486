"""A cell's instruction profile: what the ``instructions`` instrument keeps to say *why* a count
changed, and the comparison of two of them.

Callgrind sees machine code only: a Python function shows up as ``_PyEval_EvalFrameDefault``,
never by its name. So the profile holds two views of the same calls (the cell's instrumented
seeds, summed):

* ``functions``: every C-level function with its *self* and *inclusive* instruction counts from
  callgrind (libpython's, numpy's, the kernels');
* ``calls``: how many times each Python function (``module.qualname``) and builtin was called,
  counted with :func:`sys.setprofile` in an uninstrumented call of the same seed, which is exact
  and deterministic; ``beneath``: how many calls happened while each function was on the stack
  (its own included), a deterministic measure of the Python work it caused.

Stored zlib-compressed JSON in the cell's ``instr_profile`` column (a few tens of kilobytes).
Pure functions; no I/O.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from allele.errors import StoreError

PROFILE_FORMAT = 1


@dataclass(frozen=True, slots=True)
class InstructionProfile:
    """One cell's instruction profile (see the module docstring)."""

    seeds: tuple[int, ...]
    instructions: int
    """Instructions of the instrumented calls, summed over ``seeds``."""
    functions: dict[str, tuple[int, int]] = field(default_factory=dict)
    """C function -> (self, inclusive) instructions, summed over the seeds."""
    calls: dict[str, int] = field(default_factory=dict)
    beneath: dict[str, int] = field(default_factory=dict)


def encode(profile: InstructionProfile) -> bytes:
    """The stored form: zlib-compressed JSON."""
    doc = {"format": PROFILE_FORMAT, "seeds": list(profile.seeds),
           "instructions": profile.instructions,
           "functions": {k: list(v) for k, v in profile.functions.items()},
           "calls": profile.calls, "beneath": profile.beneath}
    return zlib.compress(json.dumps(doc, separators=(",", ":")).encode("utf-8"), 6)


def decode(blob: bytes) -> InstructionProfile:
    """A stored profile back (StoreError when it is not one this version reads)."""
    try:
        doc = json.loads(zlib.decompress(blob).decode("utf-8"))
    except (zlib.error, UnicodeDecodeError, ValueError) as exc:
        raise StoreError(f"an instruction profile in the store cannot be read: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != PROFILE_FORMAT:
        raise StoreError("an instruction profile in the store has an unknown format")
    return InstructionProfile(
        seeds=tuple(doc.get("seeds", ())), instructions=int(doc.get("instructions", 0)),
        functions={k: (int(v[0]), int(v[1])) for k, v in doc.get("functions", {}).items()},
        calls={k: int(v) for k, v in doc.get("calls", {}).items()},
        beneath={k: int(v) for k, v in doc.get("beneath", {}).items()})


def merge_functions(parts: Sequence[Mapping[str, Sequence[Sequence[int]]]]
                    ) -> dict[str, tuple[int, int]]:
    """Per-function ``(self, inclusive)`` instructions summed over dumps whose entries are
    ``[[self costs...], [inclusive costs...]]`` with ``Ir`` first."""
    out: dict[str, list[int]] = {}
    for part in parts:
        for name, (selfc, inclc) in part.items():
            if not selfc[0] and not inclc[0]:
                continue
            entry = out.setdefault(name, [0, 0])
            entry[0] += int(selfc[0])
            entry[1] += int(inclc[0])
    return {k: (v[0], v[1]) for k, v in out.items()}


# --- two profiles ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallDelta:
    """A Python function (or builtin) whose call count differs between BASE and HEAD."""

    name: str
    base_calls: int
    head_calls: int
    base_beneath: int
    head_beneath: int

    @property
    def delta(self) -> int:
        return self.head_calls - self.base_calls

    @property
    def beneath_delta(self) -> int:
        return self.head_beneath - self.base_beneath


@dataclass(frozen=True, slots=True)
class CostDelta:
    """A C function's self and inclusive instructions in BASE and HEAD."""

    name: str
    base_self: int
    head_self: int
    base_inclusive: int
    head_inclusive: int

    @property
    def self_delta(self) -> int:
        return self.head_self - self.base_self

    @property
    def inclusive_delta(self) -> int:
        return self.head_inclusive - self.base_inclusive


WRAPPER_SHARE = 0.9
"""A function whose inclusive cost is at least this share of the whole call is taken as one of
the call's wrappers (the extension's ``collect``, ``PyObject_Call``, the interpreter loop that
runs the target): its change is the total's, so an inclusive listing leaves it out."""


def _wraps_all(costs: tuple[int, int], profile: InstructionProfile) -> bool:
    return profile.instructions > 0 and costs[1] >= WRAPPER_SHARE * profile.instructions


def call_deltas(base: InstructionProfile, head: InstructionProfile) -> list[CallDelta]:
    """The functions whose call counts changed, the likeliest cause first: ordered by how much
    the Python work beneath them changed (a function a change added or removed carries every
    call it makes, so it ranks above its callees), then by the change of its own count."""
    out = []
    for name in set(base.calls) | set(head.calls):
        b, h = base.calls.get(name, 0), head.calls.get(name, 0)
        if b != h:
            out.append(CallDelta(name, b, h, base.beneath.get(name, 0),
                                 head.beneath.get(name, 0)))
    out.sort(key=lambda d: (-abs(d.beneath_delta), -abs(d.delta), d.name))
    return out


def cost_deltas(base: InstructionProfile, head: InstructionProfile, *, by: str = "self",
                top: int = 10) -> list[CostDelta]:
    """The ``top`` C functions with the largest absolute change of their ``self`` or
    ``inclusive`` instructions (functions that did not change are left out, and so are, for
    ``inclusive``, the functions that wrap the measured call on both sides, see
    :data:`WRAPPER_SHARE`)."""
    if by not in ("self", "inclusive"):
        raise ValueError(f"by must be 'self' or 'inclusive', got {by!r}")
    col = 0 if by == "self" else 1
    out = []
    for name in set(base.functions) | set(head.functions):
        b = base.functions.get(name, (0, 0))
        h = head.functions.get(name, (0, 0))
        if b[col] != h[col] and not (by == "inclusive" and _wraps_all(b, base)
                                     and _wraps_all(h, head)):
            out.append(CostDelta(name, b[0], h[0], b[1], h[1]))
    if by == "self":
        out.sort(key=lambda d: (-abs(d.self_delta), d.name))
    else:
        out.sort(key=lambda d: (-abs(d.inclusive_delta), d.name))
    return out[:top]
