"""Pairwise comparison of two runs: did HEAD make anything slower or worse than BASE?

Pure functions over :class:`~allele.store.model.RunRecord` values; no I/O. Every cell and metric
present in both runs is one comparison of a single FDR family, estimated and judged by
:func:`allele.bench.estimate.compare_samples` (which explains the statistics); samples pair up
when both runs measured the same ``(seed, repeat)`` keys over at least two seeds. A cell's
history (:mod:`allele.bench.history`) may raise its practical floor when it moves that much
between identical runs (:func:`run_to_run_noise`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from allele.bench.estimate import (
    DEFAULT_FLOOR,
    DEFAULT_N_BOOT,
    DEFAULT_Q,
    VERDICT_RANK,
    VERDICTS,
    Estimate,
    Verdict,
    compare_samples,
)
from allele.bench.format import param_variation
from allele.bench.history import History, as_history
from allele.bench.metrics import Direction, direction_of, resolution_of
from allele.store.model import CellResult, RunInfo, RunRecord

FailOn = Literal["regressed", "inconclusive", "never"]

__all__ = ["VERDICTS", "VERDICT_RANK", "Comparison", "Estimate", "MetricComparison", "Verdict",
           "compare_runs", "compare_samples", "run_to_run_noise"]

@dataclass(frozen=True, slots=True)
class MetricComparison:
    """One cell and metric of a run comparison."""

    key: str
    target: str
    params: dict[str, Any]
    metric: str
    estimate: Estimate

    @property
    def verdict(self) -> Verdict:
        return self.estimate.verdict


@dataclass(frozen=True, slots=True)
class CellFailure:
    """A cell present in both runs that did not finish ``ok`` in at least one of them."""

    key: str
    target: str
    params: dict[str, Any]
    base_status: str
    head_status: str
    error: str | None


@dataclass(slots=True)
class Comparison:
    """Everything :func:`compare_runs` found, in a stable order (cell key, metric)."""

    base: RunInfo
    head: RunInfo
    q: float
    floor: float
    rows: list[MetricComparison] = field(default_factory=list)
    failures: list[CellFailure] = field(default_factory=list)
    only_in_base: list[str] = field(default_factory=list)
    only_in_head: list[str] = field(default_factory=list)

    def by_verdict(self, verdict: Verdict) -> list[MetricComparison]:
        return [r for r in self.rows if r.verdict == verdict]

    def counts(self) -> dict[Verdict, int]:
        out: dict[Verdict, int] = dict.fromkeys(VERDICTS, 0)
        for r in self.rows:
            out[r.verdict] += 1
        return out

    def fails(self, fail_on: FailOn = "regressed") -> bool:
        """Whether this comparison fails a CI gate: on any regression (the default), also on
        any inconclusive row, or never."""
        if fail_on == "never":
            return False
        counts = self.counts()
        if fail_on == "regressed":
            return counts["regressed"] > 0
        return counts["regressed"] > 0 or counts["inconclusive"] > 0

    def noise_note(self) -> str | None:
        """A sentence when some rows were judged with a floor raised by their history."""
        raised = [r.estimate.floor for r in self.rows if r.estimate.floor > self.floor + 1e-12]
        if not raised:
            return None
        return (f"{len(raised)} of {len(self.rows)} cell metrics move between identical runs "
                f"by more than the {self.floor:.0%} floor (run-to-run noise in their history); "
                f"each was judged against its own floor, up to {max(raised):.0%}")

    @property
    def warnings(self) -> list[str]:
        """What may distort this comparison besides the code (e.g. a busier machine)."""
        note = conditions_warning(self.base, self.head)
        return [note] if note else []

    @property
    def regressed(self) -> list[MetricComparison]:
        return self.by_verdict("regressed")

    @property
    def improved(self) -> list[MetricComparison]:
        return self.by_verdict("improved")

    @property
    def inconclusive(self) -> list[MetricComparison]:
        return self.by_verdict("inconclusive")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (non-finite floats become ``None``)."""

        def clean(v: Any) -> Any:
            if isinstance(v, float) and not math.isfinite(v):
                return None
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items()}
            if isinstance(v, list):
                return [clean(x) for x in v]
            return v

        rows = []
        for r in self.rows:
            d = {"key": r.key, "target": r.target, "params": r.params, "metric": r.metric}
            d.update(asdict(r.estimate))
            rows.append(d)
        out: dict[str, Any] = clean({
            "base": {"id": self.base.id, "name": self.base.name},
            "head": {"id": self.head.id, "name": self.head.name},
            "q": self.q,
            "floor": self.floor,
            "counts": dict(self.counts()),
            "rows": rows,
            "failures": [asdict(f) for f in self.failures],
            "only_in_base": list(self.only_in_base),
            "only_in_head": list(self.only_in_head),
            "warnings": self.warnings,
        })
        return out


def split_params(rows: Sequence[MetricComparison]) -> dict[str, tuple[list[str], dict[str, Any]]]:
    """Per target: the parameters whose value differs between its compared cells (sorted), and
    the ones every cell shares with their value. Tables show the first and mention the second
    once, instead of repeating ``generations=30, target_fitness=0.97`` on every row."""
    by_target: dict[str, list[MetricComparison]] = {}
    for r in rows:
        by_target.setdefault(r.target, []).append(r)
    out: dict[str, tuple[list[str], dict[str, Any]]] = {}
    for target, group in by_target.items():
        counts = param_variation(r.params for r in group)
        varying = sorted(k for k, n in counts.items() if n > 1)
        fixed = {k: group[0].params[k] for k in sorted(counts) if k not in varying}
        out[target] = (varying, fixed)
    return out


def row_params(split: Mapping[str, tuple[list[str], dict[str, Any]]],
                   row: MetricComparison) -> dict[str, Any]:
    """The parameters of ``row`` that vary within its target (``split`` from
    :func:`split_params`)."""
    return {k: row.params[k] for k in split[row.target][0] if k in row.params}


def _load_1m(info: RunInfo) -> float | None:
    load = (info.environment or {}).get("load")
    value = load.get("1m") if isinstance(load, dict) else None
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def conditions_warning(base: RunInfo, head: RunInfo) -> str | None:
    """A sentence when one run started on a clearly busier machine than the other: its 1-minute
    load average (recorded in the environment) was higher by at least half a process and by at
    least a quarter of the usable CPUs. None otherwise, or when a run has no load recorded."""
    a, b = _load_1m(base), _load_1m(head)
    if a is None or b is None:
        return None
    cpus = _recorded_cpus(head) or _recorded_cpus(base)
    if abs(a - b) < max(0.5, 0.25 * (cpus or 1)):
        return None
    busy, calm = (base, head) if a > b else (head, base)
    on = f" on {cpus} CPU{'s' if cpus != 1 else ''}" if cpus else ""
    return (f"the machine was busier when {busy.name} started (load average {max(a, b):.2f}"
            f"{on}) than when {calm.name} started ({min(a, b):.2f}): time and memory verdicts "
            "may reflect that rather than the code")


def _recorded_cpus(info: RunInfo) -> int | None:
    cpu = (info.environment or {}).get("cpu")
    n = (cpu.get("usable") or cpu.get("logical")) if isinstance(cpu, dict) else None
    return n if isinstance(n, int) and n > 0 else None


# --------------------------------------------------------------------------------------------
# runs


def _pairing(b: dict[tuple[int, int], float],
             h: dict[tuple[int, int], float]) -> tuple[bool, list[float], list[float]]:
    """Aligned samples and whether they pair: same (seed, repeat) keys over >= 2 seeds."""
    kb = sorted(b)
    kh = sorted(h)
    paired = kb == kh and len({s for s, _ in kb}) >= 2
    return paired, [b[k] for k in kb], [h[k] for k in kh]


NOISE_Z = 2.0
"""A change must exceed this many standard deviations of the difference between two identical
runs (``sqrt(2)`` times a cell's run-to-run spread) before the history lets it count."""
MIN_NOISE_RUNS = 5
"""Runs of a cell :func:`run_to_run_noise` needs before it estimates anything."""


def run_to_run_noise(history: History | Sequence[RunRecord], *,
                     min_runs: int = MIN_NOISE_RUNS) -> dict[tuple[str, str], float]:
    """How much each cell's median moves between runs, from a history of runs.

    Per (cell key, metric) with a positive median in at least ``min_runs`` runs (``ok`` cells,
    oldest first): ``sigma`` of the log-median from its successive differences, ``median |d| /
    (0.6745 sqrt 2)``, which one real step in the history barely moves. Returned as a relative
    spread, ``exp(sigma) - 1``. On a quiet machine it is small, and the comparison's own floor
    rules. On a shared machine a millisecond cell can swing by 30% between identical runs, and
    a comparison of two runs cannot see that from their samples: within one run they share its
    conditions.
    """
    out: dict[tuple[str, str], float] = {}
    for series in as_history(history):
        # a median at the metric's resolution floor carries no signal (system CPU time of 0 or
        # a few microseconds): its log would swing by orders of magnitude
        floor = resolution_of(series.metric)
        logs = [math.log(m) for m in series.medians().tolist()
                if m > floor and math.isfinite(m)]
        if len(logs) >= min_runs:
            sigma = float(np.median(np.abs(np.diff(logs)))) / (0.6745 * math.sqrt(2.0))
            out[(series.key, series.metric)] = math.exp(sigma) - 1.0
    return out


MAX_NOISE_FLOOR = 1.0
"""The history never raises a floor beyond +100% (a cell that doubles still gets a verdict)."""


def noise_floor(floor: float, noise: float | None) -> float:
    """The practical floor of one row: ``floor``, or the history's noise bound when larger
    (at most :data:`MAX_NOISE_FLOOR`, or ``floor`` if that is larger still)."""
    if noise is None:
        return floor
    bound = math.exp(NOISE_Z * math.sqrt(2.0) * math.log1p(noise)) - 1.0
    return max(floor, min(bound, MAX_NOISE_FLOOR))


def compare_runs(base: RunRecord, head: RunRecord, *, q: float = DEFAULT_Q,
                 floor: float = DEFAULT_FLOOR, seed: int = 0, n_boot: int = DEFAULT_N_BOOT,
                 metrics: Sequence[str] | None = None,
                 noise: Mapping[tuple[str, str], float] | None = None) -> Comparison:
    """Compare every cell and metric measured ``ok`` in both runs (one FDR family).

    Cells in only one run are listed in ``only_in_base`` / ``only_in_head``; cells that did not
    finish ``ok`` in one of the runs are listed in ``failures``. ``noise`` (from
    :func:`run_to_run_noise`) raises the practical floor of the rows whose history moves more
    than ``floor`` between runs (:func:`noise_floor`).
    """
    head_cells = {c.key: c for c in head.cells}
    base_cells = {c.key: c for c in base.cells}
    comp = Comparison(base=base.info, head=head.info, q=q, floor=floor)
    comp.only_in_base = sorted(set(base_cells) - set(head_cells))
    comp.only_in_head = sorted(set(head_cells) - set(base_cells))
    ident: list[tuple[CellResult, str]] = []
    b_samples: list[list[float]] = []
    h_samples: list[list[float]] = []
    pairs: list[bool] = []
    dirs: list[Direction] = []
    res: list[float] = []
    floors: list[float] = []
    wanted = set(metrics) if metrics is not None else None
    for key in sorted(set(base_cells) & set(head_cells)):
        cb, ch = base_cells[key], head_cells[key]
        if cb.status != "ok" or ch.status != "ok":
            comp.failures.append(CellFailure(key, ch.target, dict(ch.params), cb.status,
                                             ch.status, ch.error or cb.error))
            continue
        for metric in sorted(set(cb.metrics()) & set(ch.metrics())):
            if wanted is not None and metric not in wanted:
                continue
            pr, bv, hv = _pairing(cb.keyed(metric), ch.keyed(metric))
            ident.append((ch, metric))
            b_samples.append(bv)
            h_samples.append(hv)
            pairs.append(pr)
            dirs.append(direction_of(metric))
            res.append(resolution_of(metric))
            floors.append(noise_floor(floor, (noise or {}).get((key, metric))))
    if not ident:
        return comp
    ests = compare_samples(b_samples, h_samples, direction=dirs, paired=pairs, q=q,
                           floor=floors, seed=seed, n_boot=n_boot, resolution=res,
                           unchanged_floor=floor)
    comp.rows = [MetricComparison(c.key, c.target, dict(c.params), metric, est)
                 for (c, metric), est in zip(ident, ests, strict=True)]
    return comp


def environment_diff(base: dict[str, Any], head: dict[str, Any],
                     prefix: str = "") -> list[tuple[str, Any, Any]]:
    """Flattened ``(path, base_value, head_value)`` for every differing environment entry."""
    out: list[tuple[str, Any, Any]] = []
    for k in sorted(set(base) | set(head), key=str):
        path = f"{prefix}{k}"
        bv, hv = base.get(k), head.get(k)
        if isinstance(bv, dict) and isinstance(hv, dict):
            out.extend(environment_diff(bv, hv, path + "."))
        elif bv != hv:
            out.append((path, bv, hv))
    return out
