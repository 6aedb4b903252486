"""Comparison of two runs: did HEAD make anything slower or worse than BASE?

Pure functions over :class:`~allele.store.model.RunRecord` values; no I/O. Every cell and metric
present in both runs is one row; the rows of a comparison are one false-discovery-rate family
(:func:`allele.bench.estimate.estimate_rows` explains the statistics). Two designs:

* **an A/B session** (the two halves of ``allele bench ab``): both versions ran in the same
  rounds, call after call in random order; a round is the block, pairs are ``(seed, repeat)``
  within it, and nothing else is needed: whatever the machine did, both saw it;
* **two runs measured apart**: within-run evidence (pairs by ``(seed, repeat)`` over at least two
  seeds, else unpaired), plus the run-level model of :mod:`allele.bench.runlevel`: a run-wide
  shift of time metrics, reported once and taken out, and each cell's run-level variance from
  its history (``history``: earlier runs; the compared runs are always left out of it) or from
  the spread of the matrix itself.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

import numpy as np

from allele.bench.estimate import (
    DEFAULT_FLOOR,
    DEFAULT_Q,
    VERDICT_RANK,
    VERDICTS,
    Estimate,
    Row,
    Verdict,
    compare_samples,
    estimate_rows,
)
from allele.bench.format import MISSING, param_variation
from allele.bench.history import History, ab_meta, ab_partners
from allele.bench.metrics import (
    CPU_TIME_METRICS,
    LOOPS_METRIC,
    METRIC_UNITS,
    RESOURCE_METRICS,
    MetricInfo,
    declaration_differences,
    declarations_from_doc,
    measurements,
    metric_info,
    resolution_per_call,
)
from allele.bench.runlevel import RunLevelModel, Shift
from allele.store.model import CellResult, RunInfo, RunRecord

FailOn = Literal["regressed", "inconclusive", "never"]
Mode = Literal["ab", "two-run"]

__all__ = ["VERDICTS", "VERDICT_RANK", "Comparison", "Estimate", "MetricComparison", "Verdict",
           "compare_runs", "compare_samples"]


@dataclass(frozen=True, slots=True)
class MetricComparison:
    """One cell and metric of a run comparison."""

    key: str
    target: str
    params: dict[str, Any]
    metric: str
    estimate: Estimate
    run_level: str = ""
    """Where the row's run-level variance came from: ``history``, ``matrix`` (the spread of the
    comparison's cells), ``assumed 0``, ``unknown``; empty in an A/B session."""
    unit: str = ""
    """The metric's unit (HEAD's declaration, else the catalogue's), for formatting values."""
    guessed: bool = False
    """True when nobody declared which way is better: the direction was guessed from the name."""

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
    mode: Mode = "two-run"
    rows: list[MetricComparison] = field(default_factory=list)
    failures: list[CellFailure] = field(default_factory=list)
    only_in_base: list[str] = field(default_factory=list)
    only_in_head: list[str] = field(default_factory=list)
    shifts: list[Shift] = field(default_factory=list)
    """Run-wide shifts taken out of the rows (two runs only; see :mod:`allele.bench.runlevel`)."""
    caveats: list[str] = field(default_factory=list)
    """What the runs themselves disagree on: metric declarations that differ between BASE and
    HEAD, cells timed with different inner-loop counts (and therefore not compared), memory
    metrics measured in different kinds of process (and therefore not compared)."""

    def by_verdict(self, verdict: Verdict) -> list[MetricComparison]:
        return [r for r in self.rows if r.verdict == verdict]

    def counts(self) -> dict[Verdict, int]:
        out: dict[Verdict, int] = dict.fromkeys(VERDICTS, 0)
        for r in self.rows:
            out[r.verdict] += 1
        return out

    def fails(self, fail_on: FailOn = "regressed") -> bool:
        """Whether this comparison fails a CI gate: on any regression or any cell HEAD broke
        (the default), also on any inconclusive row, or never."""
        if fail_on == "never":
            return False
        counts = self.counts()
        if counts["regressed"] > 0 or self.broken:
            return True
        return fail_on == "inconclusive" and counts["inconclusive"] > 0

    @property
    def broken(self) -> list[CellFailure]:
        """Cells ``ok`` in BASE that did not finish ``ok`` in HEAD (failed, crashed, timed out):
        the worst regression there is, which no metric row shows."""
        return [f for f in self.failures if f.base_status == "ok" and f.head_status != "ok"]

    @property
    def excluded(self) -> list[MetricComparison]:
        """Statistical rows left out of the family because they could not reach significance
        (not the exact ones, judged against their floor: see :func:`allele.bench.estimate.
        judge`)."""
        return [r for r in self.rows if not r.estimate.in_family
                and r.estimate.design != "deterministic" and r.verdict == "inconclusive"]

    @property
    def family_size(self) -> int:
        return sum(r.estimate.in_family for r in self.rows)

    def reasons(self) -> dict[str, int]:
        """How many rows are inconclusive for each reason."""
        out: dict[str, int] = {}
        for r in self.inconclusive:
            out[r.estimate.reason] = out.get(r.estimate.reason, 0) + 1
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    def notes(self) -> list[str]:
        """What a reader needs besides the table: the environment's shift, excluded rows."""
        out = [shift_note(s) for s in self.shifts if s.ratio != 1.0]  # every one taken out
        if self.excluded:
            why = Counter(r.estimate.reason for r in self.excluded)
            out.append(f"{len(self.excluded)} of {len(self.rows)} cell metrics cannot reach "
                       f"significance in a family of {self.family_size} ("
                       + ", ".join(f"{n} {k}" for k, n in why.most_common())
                       + ") and are left out of the false-discovery-rate family; more seeds, "
                       "repeats or A/B rounds help")
        return out

    @property
    def warnings(self) -> list[str]:
        """What may distort this comparison besides the code (e.g. a busier machine)."""
        note = conditions_warning(self.base, self.head) if self.mode == "two-run" else None
        return ([note] if note else []) + list(self.caveats)

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
            d: dict[str, Any] = {"key": r.key, "target": r.target, "params": r.params,
                                 "metric": r.metric}
            d.update(asdict(r.estimate))
            d["test"] = r.estimate.test
            d["interval"] = r.estimate.interval_text
            d["run_level"] = r.run_level
            d["unit"] = r.unit
            d["direction_guessed"] = r.guessed
            rows.append(d)
        out: dict[str, Any] = clean({
            "base": {"id": self.base.id, "name": self.base.name},
            "head": {"id": self.head.id, "name": self.head.name},
            "mode": self.mode,
            "q": self.q,
            "floor": self.floor,
            "counts": dict(self.counts()),
            "family_size": self.family_size,
            "shifts": [asdict(s) for s in self.shifts],
            "rows": rows,
            "failures": [asdict(f) for f in self.failures],
            "broken": [f.key for f in self.broken],
            "only_in_base": list(self.only_in_base),
            "only_in_head": list(self.only_in_head),
            "notes": self.notes(),
            "warnings": self.warnings,
        })
        return out


def metric_label(r: MetricComparison) -> str:
    """The row's metric name, marked when its direction was only guessed from the name."""
    if not r.guessed:
        return r.metric
    return f"{r.metric} (guessed: {r.estimate.direction} is better)"


def verdict_label(e: Estimate) -> str:
    """The verdict with its reason: ``inconclusive (run-level noise)``."""
    return f"{e.verdict} ({e.reason})" if e.reason else e.verdict


def mde_text(e: Estimate) -> str:
    """The MDE column: the relative change this row's test finds with 80% power, ``n too small``
    for a row with too few samples to test, ``–`` for any other row outside the family (its
    verdict's reason says why: too noisy, below resolution, run-level noise)."""
    if math.isfinite(e.mde):
        return f"{e.mde:.1%}"
    return "n too small" if e.reason == "too few samples" else MISSING


def change_legend(comp: Comparison) -> str:
    """What a comparison's change column holds, for a table's caption: the estimate the
    verdict used, which is not the ratio of the base and head columns (winsorized log-ratios,
    and in two runs the run-wide shift taken out)."""
    text = "change = HEAD/BASE as the verdict estimated it from the winsorized log-ratios"
    if comp.mode == "ab":
        return text + ", round by round"
    shifted = [f"{s.metric} ({s.ratio - 1.0:+.1%})" for s in comp.shifts if s.ratio != 1.0]
    if not shifted:
        return text
    listed = ", ".join(shifted[:-1]) + " and " + shifted[-1] if len(shifted) > 1 else shifted[0]
    return (f"{text}, with the run-wide shift of {listed} taken out: relative "
            "to the rest of the run, so it can differ from base → head, even in sign")


def shift_note(s: Shift) -> str:
    """One sentence for a run-wide shift taken out of the rows. Every one is named, significant
    or not: a row's change is then relative to the rest of the run and can differ from its
    base -> head columns, even in sign (a fit_s row read +160 % beside 1.439 ms -> 1.316 ms
    with a -44 % shift taken out that no note mentioned)."""
    interval = (f"{s.metric} (median of {s.cells} cells, 95% CI {s.ci_low - 1.0:+.1%} .. "
                f"{s.ci_high - 1.0:+.1%}")
    if not s.significant:
        return (f"the whole run moved {s.ratio - 1.0:+.1%} in {interval}, not significant on "
                "its own): taken out of every row with its uncertainty, so a row's change is "
                "relative to the rest of the run and can differ from base → head, even in sign")
    return (f"the whole run moved {s.ratio - 1.0:+.1%} in {interval}): an environment "
            "change, taken out of every row, so a row's change can differ from base → head, "
            "even in sign; a change of the code that moves every cell alike looks the same "
            "between two runs (`allele bench ab` tells them apart)")


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


def recorded_cpu_resolution(*runs: RunInfo) -> float | None:
    """The CPU-time resolution the runs recorded (the coarser of them), or None when one of
    them has none (a run recorded before it was measured: the catalogue's 1 ms applies)."""
    found = []
    for info in runs:
        cpu = (info.environment or {}).get("cpu")
        res = cpu.get("time_resolution_s") if isinstance(cpu, dict) else None
        if not isinstance(res, int | float) or isinstance(res, bool) or not 0 < res < 1:
            return None
        found.append(float(res))
    return max(found) if found else None


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


def _ab_row(b: dict[tuple[int, int], float], h: dict[tuple[int, int], float], stride: int,
            info: MetricInfo, floor: float) -> Row:
    """An A/B row: the pairs present on both sides, each with its round (``repeat //
    stride``, as :mod:`allele.bench.ab` stores it)."""
    keys = sorted(set(b) & set(h))
    return Row("ab", np.array([b[k] for k in keys]), np.array([h[k] for k in keys]),
               info.direction, group=info.name, floor=floor, resolution=info.resolution,
               blocks=np.array([r // stride for _, r in keys], dtype=np.int64))


def _row(cb: CellResult, ch: CellResult, metric: str, info: MetricInfo, floor: float,
         stride: int | None) -> Row:
    b, h = cb.keyed(metric), ch.keyed(metric)
    loops = int(max(cb.values(LOOPS_METRIC) + ch.values(LOOPS_METRIC), default=1))
    if loops > 1 and info.resolution > 0:
        info = replace(info, resolution=resolution_per_call(metric, loops, info.resolution))
    if info.deterministic:  # the same seeds compared seed by seed, when there are any
        common = sorted(set(b) & set(h))
        bv = [b[k] for k in common] if common else list(b.values())
        hv = [h[k] for k in common] if common else list(h.values())
        return Row("deterministic", np.array(bv), np.array(hv), info.direction, group=metric,
                   tolerance=info.tolerance or 0.0, floor=info.tolerance or 0.0,
                   paired=bool(common))
    if stride is not None:
        return _ab_row(b, h, stride, info, floor)
    pr, bv, hv = _pairing(b, h)
    return Row("paired" if pr else "unpaired", np.array(bv), np.array(hv), info.direction,
               group=metric, floor=floor, resolution=info.resolution)


def loops_mismatch(base: CellResult, head: CellResult) -> str | None:
    """Why a cell's two runs cannot be compared because their samples were timed with
    different inner-loop counts (:data:`~allele.bench.metrics.LOOPS_METRIC`), or None. Runs
    recorded before loop counts existed (no ``loops`` samples) timed one call per sample."""
    b = sorted({int(v) for v in base.values(LOOPS_METRIC)} or {1})
    h = sorted({int(v) for v in head.values(LOOPS_METRIC)} or {1})
    if b == h:
        return None
    return (f"BASE timed {_loops_text(b)} per sample, HEAD {_loops_text(h)}: per-call times "
            "from different inner loops differ by the loop's own overhead and caching; pin the "
            "count with the spec key 'inner_loops' and run again")


def _loops_text(counts: list[int]) -> str:
    text = "/".join(f"{n:,}" for n in counts)
    return f"{text} call{'s' if counts != [1] else ''}"


MEMORY_METRICS = frozenset(m for m in RESOURCE_METRICS if METRIC_UNITS.get(m) == "MiB")
"""The runner's memory measurements: what the process around the call holds counts in them."""

_WHERE = {"inline": "the runner's own process", "local": "worker processes of a process pool",
          "dask": "Dask workers", "mixed": "more than one kind of process (resumed with "
          "another executor)"}


def measured_in(info: RunInfo, cell: CellResult) -> str | None:
    """Where ``info``'s run measured ``cell``, from the executor stored in its spec document:
    ``inline`` (the runner's own process: ``-e inline``, or a benchmark with ``isolation:
    inline`` beside a process pool), ``local``, ``dask``, ``mixed`` (resumed with another
    executor); None for a run recorded before the executor was stored."""
    doc = info.spec if isinstance(info.spec, dict) else {}
    kind = doc.get("executor")
    if not isinstance(kind, str):
        return None
    if kind not in ("local", "process"):  # a process pool by spec, or given as an executor
        return kind
    suite = doc.get("suite")
    benches = suite.get("benchmarks", []) if isinstance(suite, dict) else []
    isolation = {b.get("isolation") for b in benches
                 if isinstance(b, dict) and b.get("target") == cell.target}
    return "inline" if isolation == {"inline"} else "local"


def isolation_mismatch(base: RunInfo, head: RunInfo, cb: CellResult,
                       ch: CellResult) -> tuple[str, str] | None:
    """``(where BASE measured the cell, where HEAD did)`` when they differ (or either run was
    resumed with another executor), else None: a process's resident and peak memory include
    whatever else lives in it (the CLI, its imports), so memory from different kinds of process
    differs whatever the code does. A run recorded before executors were stored compares as
    before."""
    b, h = measured_in(base, cb), measured_in(head, ch)
    if b is None or h is None or (b == h and b != "mixed"):
        return None
    return b, h


def isolation_caveat(where: tuple[str, str], cells: int, metrics: set[str]) -> str:
    """The one warning for the memory rows left out because the runs measured them in
    different kinds of process."""
    b, h = where
    return (f"{', '.join(sorted(metrics))} of {cells} {'cell' if cells == 1 else 'cells'} not "
            f"compared: BASE measured them in {_WHERE.get(b, b)}, HEAD in {_WHERE.get(h, h)}; "
            "a process's memory includes everything else living in it, so the two differ "
            "whatever the code does: run both with the same --executor")


def compare_runs(base: RunRecord, head: RunRecord, *, q: float = DEFAULT_Q,
                 floor: float = DEFAULT_FLOOR, metrics: Sequence[str] | None = None,
                 history: History | None = None,
                 declared: Mapping[str, MetricInfo] | None = None) -> Comparison:
    """Compare every cell and metric measured ``ok`` in both runs (one FDR family).

    The halves of an A/B session are compared as one (no history needed). Two runs measured
    apart get the run-level model, with ``history`` (earlier runs; BASE and HEAD themselves are
    ignored in it) for each cell's run-level variance. Cells in only one run are listed in
    ``only_in_base`` / ``only_in_head``; cells that did not finish ``ok`` in one of the runs
    in ``failures``. ``declared`` overrides the metric catalogue (:func:`metric_info`); by
    default HEAD's stored declarations are used, with a caveat for each metric BASE declared
    differently. A cell timed with an inner loop of a different count in the two runs is not
    compared (its per-call times mean different things); a caveat says so. Nor are the memory
    metrics of a cell the two runs measured in different kinds of process
    (:func:`isolation_mismatch`); one caveat says so.
    """
    head_cells = {c.key: c for c in head.cells}
    base_cells = {c.key: c for c in base.cells}
    ab = ab_partners(base.info, head.info)
    meta = ab_meta(head.info) or {}
    raw_stride = meta.get("round_stride")
    stride = raw_stride if ab and isinstance(raw_stride, int) and raw_stride > 0 else None
    comp = Comparison(base=base.info, head=head.info, q=q, floor=floor,
                      mode="ab" if ab else "two-run")
    comp.only_in_base = sorted(set(base_cells) - set(head_cells))
    comp.only_in_head = sorted(set(head_cells) - set(base_cells))
    if declared is None:
        declared = declarations_from_doc(head.info.spec)
        comp.caveats.extend(declaration_differences(declarations_from_doc(base.info.spec),
                                                    declared))
    cpu_res = recorded_cpu_resolution(base.info, head.info)
    ident: list[tuple[CellResult, str]] = []
    infos: list[MetricInfo] = []
    rows: list[Row] = []
    wanted = set(metrics) if metrics is not None else None
    unmatched: dict[tuple[str, str], tuple[set[str], set[str]]] = {}  # where -> cells, metrics
    for key in sorted(set(base_cells) & set(head_cells)):
        cb, ch = base_cells[key], head_cells[key]
        if cb.status != "ok" or ch.status != "ok":
            comp.failures.append(CellFailure(key, ch.target, dict(ch.params), cb.status,
                                             ch.status, ch.error or cb.error))
            continue
        why = loops_mismatch(cb, ch)
        if why is not None:
            comp.caveats.append(f"{key}: not compared: {why}")
            continue
        where = isolation_mismatch(base.info, head.info, cb, ch)
        for metric in sorted(set(measurements(cb.metrics())) & set(ch.metrics())):
            if wanted is not None and metric not in wanted:
                continue
            if where is not None and metric in MEMORY_METRICS:
                cells, names = unmatched.setdefault(where, (set(), set()))
                cells.add(key)
                names.add(metric)
                continue
            info = metric_info(metric, declared)
            if metric in CPU_TIME_METRICS and cpu_res is not None:  # as measured, not 1 ms
                info = replace(info, resolution=cpu_res)
            ident.append((ch, metric))
            infos.append(info)
            rows.append(_row(cb, ch, metric, info, floor, stride))
    comp.caveats.extend(isolation_caveat(w, len(c), m) for w, (c, m) in unmatched.items())
    if not rows:
        return comp
    model = None if ab else RunLevelModel([c.key for c, _ in ident], history,
                                          frozenset({base.info.id, head.info.id}), declared)
    ests = estimate_rows(rows, q=q, between=model)
    sources = model.sources if model is not None else {}
    comp.rows = [MetricComparison(c.key, c.target, dict(c.params), metric, est,
                                  sources.get(i, ""), infos[i].unit, not infos[i].declared)
                 for i, ((c, metric), est) in enumerate(zip(ident, ests, strict=True))]
    comp.shifts = list(model.shifts.values()) if model is not None else []
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
