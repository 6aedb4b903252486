"""Why an instruction count changed: the cells of two runs whose ``instructions`` moved, each
with the Python functions whose call counts changed and the C functions whose instruction
counts changed most (``allele bench explain BASE HEAD``).

Reads the two runs and the instruction profiles the ``instructions`` instrument stored with
their cells (:mod:`allele.bench.instruments.profiles`); the verdict per cell is the
comparison's (:func:`allele.bench.compare.compare_runs`: seed by seed, against the metric's
tolerance). Python functions are ranked by the change of the Python work beneath them, so the
function a change added, removed or made busier comes before its callees.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from allele.bench.compare import compare_runs
from allele.bench.instruments.profiles import (
    CallDelta,
    CostDelta,
    InstructionProfile,
    call_deltas,
    cost_deltas,
    decode,
)
from allele.bench.metrics import MetricInfo
from allele.bench.select import CellFilter
from allele.store.model import RunInfo, RunRecord
from allele.store.results import ResultStore

METRIC = "instructions"


@dataclass(frozen=True, slots=True)
class CellExplanation:
    """One cell whose instruction count moved, and what moved with it."""

    key: str
    target: str
    params: dict[str, Any]
    verdict: str
    base: float
    """BASE's instructions per call (median over the counted seeds); likewise HEAD's."""
    head: float
    ratio: float
    calls: list[CallDelta] = field(default_factory=list)
    self_costs: list[CostDelta] = field(default_factory=list)
    inclusive_costs: list[CostDelta] = field(default_factory=list)
    note: str = ""
    """Why the functions are missing (no profile stored on a side, different seeds)."""
    seeds: int = 0
    """How many counted seeds the profiles sum (their figures are totals over them)."""


@dataclass(slots=True)
class Explanation:
    """Every cell of HEAD (passing the filters) counted in both runs, sorted by how far its
    count moved: the ones that moved, and how many did not."""

    base: RunInfo
    head: RunInfo
    cells: list[CellExplanation] = field(default_factory=list)
    unchanged: int = 0
    counted: int = 0
    """Cells with instruction counts in both runs (that pass the filters)."""


def explain_records(base: RunRecord, head: RunRecord, profiles: tuple[Mapping[str, bytes],
                    Mapping[str, bytes]], *, filters: Sequence[str] = (), top: int = 10,
                    declared: Mapping[str, MetricInfo] | None = None) -> Explanation:
    """The explanation from two loaded runs and their stored profiles (``{key: blob}`` each)."""
    flt = CellFilter.parse(filters)
    comp = compare_runs(base, head, metrics=[METRIC], declared=declared)
    out = Explanation(base.info, head.info)
    for row in comp.rows:
        if not flt.matches(row.target, row.params, key=row.key):
            continue
        out.counted += 1
        e = row.estimate
        if e.verdict == "unchanged":
            out.unchanged += 1
            continue
        out.cells.append(_cell(row.key, row.target, row.params, e.verdict, e.median_base,
                               e.median_head, e.ratio, profiles[0].get(row.key),
                               profiles[1].get(row.key), top))
    out.cells.sort(key=lambda c: (-abs(math.log(c.ratio)) if c.ratio > 0 else -math.inf, c.key))
    return out


def _cell(key: str, target: str, params: dict[str, Any], verdict: str, base: float,
          head: float, ratio: float, blob_b: bytes | None, blob_h: bytes | None,
          top: int) -> CellExplanation:
    if blob_b is None or blob_h is None:
        side = "BASE" if blob_b is None else "HEAD"
        return CellExplanation(key, target, params, verdict, base, head, ratio,
                               note=f"no instruction profile stored in {side}")
    pb, ph = decode(blob_b), decode(blob_h)
    note = _seed_note(pb, ph)
    return CellExplanation(key, target, params, verdict, base, head, ratio,
                           calls=call_deltas(pb, ph)[:top],
                           self_costs=cost_deltas(pb, ph, by="self", top=top),
                           inclusive_costs=cost_deltas(pb, ph, by="inclusive", top=top),
                           note=note, seeds=len(ph.seeds))


def _seed_note(pb: InstructionProfile, ph: InstructionProfile) -> str:
    if pb.seeds == ph.seeds:
        return ""
    return (f"the profiles cover different seeds (BASE {list(pb.seeds)}, HEAD "
            f"{list(ph.seeds)}): part of the difference is the seeds'")


def explain_runs(store: ResultStore, base: str, head: str, *, filters: Sequence[str] = (),
                 top: int = 10) -> Explanation:
    """Load both runs (id, name or ``latest``) and explain their instruction changes."""
    b = store.load_run(base)
    h = store.load_run(head)
    profiles = (store.instruction_profiles(b.info.id), store.instruction_profiles(h.info.id))
    return explain_records(b, h, profiles, filters=filters, top=top)
