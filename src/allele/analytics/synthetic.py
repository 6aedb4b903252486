"""Labelled synthetic data with known truth, for tests, benchmarks and the acceptance report.

* :func:`trend_season_series`: trend plus season plus noise (forecasting).
* :func:`anomaly_benchmark`: noisy seasonal series with injected, labelled anomalies of one kind
  each (spikes, level shifts, variance changes, slow drifts) and :func:`evaluate_events` /
  :func:`benchmark_table` to score a detector on them.
* :func:`incident_alerts`: alerts of injected incidents (for the correlator).
* :func:`root_cause_trial` / :func:`regression_trial`: metrics or matrix cells with one injected
  cause (for RCA).
* :func:`response_surface`: matrix results of a known quality/cost surface (for recommendations).

Event-level matching rule (used by :func:`evaluate_events`): every labelled anomaly is a window
``[start, end)``. Flagged points are merged into *runs* (maximal sequences of flags whose gaps are
at most ``tolerance`` points). A labelled event is *detected* when some flagged point lies in
``[start, end + tolerance)``; a run is a *true positive* when it overlaps at least one such
expanded window, otherwise a false positive. Recall = detected events / events; precision =
true-positive runs / runs; F1 is their harmonic mean. Detections before ``start`` never count
(the detectors are causal).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from allele.analytics._common import FloatArray

__all__ = [
    "ANOMALY_KINDS",
    "NOISE_KINDS",
    "EventScore",
    "LabelledSeries",
    "SyntheticAlert",
    "anomaly_benchmark",
    "benchmark_table",
    "clean_series",
    "evaluate_events",
    "false_runs",
    "incident_alerts",
    "noise_series",
    "regression_trial",
    "response_surface",
    "root_cause_trial",
    "trend_season_series",
]

ANOMALY_KINDS = ("spike", "level_shift", "variance", "drift")
NOISE_KINDS = ("gaussian", "ar", "student_t", "lognormal", "zero_inflated")
"""Noise of :func:`anomaly_benchmark`, all at the same marginal sd ``noise``: i.i.d. Gaussian;
AR(1) with phi 0.8 (innovations of sd ``noise * 0.6``); Student-t with 3 degrees of freedom
(scale ``noise / sqrt(3)``); centred lognormal (log-sd 0.5, skewness 1.75: a long upper tail, a
short lower one); zero-inflated (52% exact zeros, the rest exponential; no season, level 0: a
metric that is mostly nothing)."""


def trend_season_series(
    n: int = 240, period: int = 24, slope: float = 0.05, amplitude: float = 3.0,
    noise: float = 0.5, level: float = 10.0, seed: int = 0,
) -> FloatArray:
    """``level + slope * t + amplitude * sin(2 pi t / period) + N(0, noise)``."""
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=np.float64)
    out: FloatArray = (level + slope * t + amplitude * np.sin(2 * np.pi * t / period)
                       + rng.normal(0.0, noise, n))
    return out


@dataclass(frozen=True)
class LabelledSeries:
    """A series with its labelled anomaly windows ``[(start, end), ...]``, all of one kind."""

    kind: str
    values: FloatArray
    events: list[tuple[int, int]]
    period: int
    noise: float


def noise_series(rng: np.random.Generator, n: int, noise: float,
                 kind: str = "gaussian") -> FloatArray:
    """``n`` points of noise of marginal sd ``noise`` (see :data:`NOISE_KINDS`); zero mean except
    the zero-inflated kind (non-negative)."""
    if kind == "gaussian":
        return rng.normal(0.0, noise, n)
    if kind == "ar":
        phi = 0.8
        e = rng.normal(0.0, noise * np.sqrt(1.0 - phi * phi), n)
        out = np.empty(n)
        prev = rng.normal(0.0, noise)  # the stationary start
        for i in range(n):
            prev = phi * prev + e[i]
            out[i] = prev
        return out
    if kind == "student_t":
        out = rng.standard_t(3, n) * (noise / math.sqrt(3.0))
        return out
    if kind == "lognormal":
        s = 0.5
        sd = math.exp(s * s / 2) * math.sqrt(math.expm1(s * s))
        out = (rng.lognormal(0.0, s, n) - math.exp(s * s / 2)) * (noise / sd)
        return out
    if kind == "zero_inflated":
        p_zero = 0.52
        g = rng.exponential(1.0, n) * (rng.random(n) >= p_zero)
        sd = math.sqrt((1 - p_zero) * 2.0 - (1 - p_zero) ** 2)
        out = g * (noise / sd)
        return out
    raise ValueError(f"unknown noise kind {kind!r}; use one of {', '.join(NOISE_KINDS)}")


def _base_series(rng: np.random.Generator, n: int, period: int, noise: float,
                 noise_kind: str = "gaussian") -> FloatArray:
    if noise_kind == "zero_inflated":
        return noise_series(rng, n, noise, noise_kind)
    t = np.arange(n, dtype=np.float64)
    amp = rng.uniform(1.5, 3.0) * noise / 0.5
    phase = rng.uniform(0, 2 * np.pi)
    season = amp * np.sin(2 * np.pi * t / period + phase) + 0.3 * amp * np.sin(
        4 * np.pi * t / period)
    out: FloatArray = 20.0 + season + noise_series(rng, n, noise, noise_kind)
    return out


def _positions(rng: np.random.Generator, lo: int, hi: int, count: int, length: int,
               gap: int) -> list[int]:
    """``count`` sorted start positions in [lo, hi - length) at least ``length + gap`` apart."""
    for _ in range(1000):
        starts = np.sort(rng.integers(lo, hi - length, size=count))
        if count == 1 or np.all(np.diff(starts) >= length + gap):
            return [int(s) for s in starts]
    raise RuntimeError("could not place events; series too short")  # pragma: no cover


def anomaly_benchmark(
    n_series: int = 8, n: int = 1000, period: int = 48, noise: float = 0.5, seed: int = 0,
    kinds: Sequence[str] = ANOMALY_KINDS, learn_fraction: float = 0.15,
    noise_kind: str = "gaussian",
) -> list[LabelledSeries]:
    """``n_series`` seasonal noisy series per anomaly kind, anomalies after the learning period.

    ``noise_kind`` picks the noise (:data:`NOISE_KINDS`, every one at marginal sd ``noise``);
    the anomaly kinds and magnitudes are the same for all. ``kinds=()`` with ``n_series``
    gives nothing; use :func:`clean_series` for anomaly-free series.

    spike: 4 single points of +-(6..10) noise sigma; level_shift: 2 temporary shifts of
    +-(3..5) sigma lasting 40..80 points; variance: 2 windows of 40..80 points with noise x3..x4;
    drift: one linear ramp to +-(4..6) sigma over 150..250 points that persists to the end (its
    window runs to the end of the series).
    """
    rng = np.random.default_rng(seed)
    lo = int(np.ceil(learn_fraction * n)) + 60
    out: list[LabelledSeries] = []
    for kind in kinds:
        for _ in range(n_series):
            y = _base_series(rng, n, period, noise, noise_kind)
            events: list[tuple[int, int]] = []
            if kind == "spike":
                for s in _positions(rng, lo, n - 5, 4, 1, 60):
                    y[s] += rng.choice([-1.0, 1.0]) * rng.uniform(6, 10) * noise
                    events.append((s, s + 1))
            elif kind == "level_shift":
                lengths = rng.integers(40, 81, size=2)
                for s, length in zip(_positions(rng, lo, n - 5, 2, 80, 60), lengths, strict=True):
                    y[s:s + length] += rng.choice([-1.0, 1.0]) * rng.uniform(3, 5) * noise
                    events.append((s, s + int(length)))
            elif kind == "variance":
                lengths = rng.integers(40, 81, size=2)
                for s, length in zip(_positions(rng, lo, n - 5, 2, 80, 60), lengths, strict=True):
                    factor = rng.uniform(3, 4)
                    y[s:s + length] += rng.normal(0, noise * np.sqrt(factor**2 - 1), int(length))
                    events.append((s, s + int(length)))
            elif kind == "drift":
                length = int(rng.integers(150, 251))
                s = int(rng.integers(lo, n - length - 50))
                amp = rng.choice([-1.0, 1.0]) * rng.uniform(4, 6) * noise
                ramp = np.concatenate([np.linspace(0, amp, length), np.full(n - s - length, amp)])
                y[s:] += ramp
                events.append((s, n))
            else:
                raise ValueError(f"unknown anomaly kind {kind!r}")
            out.append(LabelledSeries(kind, y, events, period, noise))
    return out


def clean_series(n_series: int = 8, n: int = 1000, period: int = 48, noise: float = 0.5,
                 seed: int = 0, noise_kind: str = "gaussian") -> list[FloatArray]:
    """Anomaly-free series of the benchmark's shape (for false-alarm rates)."""
    rng = np.random.default_rng(seed)
    return [_base_series(rng, n, period, noise, noise_kind) for _ in range(n_series)]


@dataclass(frozen=True)
class EventScore:
    """Event-level counts and precision / recall / F1 (see the module docstring for the rule)."""

    events: int
    detected: int
    runs: int
    true_runs: int

    @property
    def recall(self) -> float:
        return self.detected / self.events if self.events else 1.0

    @property
    def precision(self) -> float:
        return self.true_runs / self.runs if self.runs else (1.0 if self.events == 0 else 0.0)

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 0.0 if p + r == 0 else 2 * p * r / (p + r)

    def __add__(self, other: EventScore) -> EventScore:
        return EventScore(self.events + other.events, self.detected + other.detected,
                          self.runs + other.runs, self.true_runs + other.true_runs)


def _runs(flags: NDArray[np.bool_], tolerance: int) -> list[tuple[int, int]]:
    idx = np.flatnonzero(flags)
    if idx.size == 0:
        return []
    runs: list[tuple[int, int]] = []
    start = prev = int(idx[0])
    for i in idx[1:]:
        i = int(i)
        if i - prev > tolerance + 1:
            runs.append((start, prev + 1))
            start = i
        prev = i
    runs.append((start, prev + 1))
    return runs


def evaluate_events(flags: ArrayLike, events: Sequence[tuple[int, int]],
                    tolerance: int = 3) -> EventScore:
    """Score boolean ``flags`` against labelled event windows with the event-level rule."""
    f = np.asarray(flags, dtype=bool)
    windows = [(s, e + tolerance) for s, e in events]
    detected = sum(1 for s, e in windows if bool(np.any(f[s:min(e, f.size)])))
    runs = _runs(f, tolerance)
    true_runs = sum(1 for a, b in runs if any(a < e and s < b for s, e in windows))
    return EventScore(len(events), detected, len(runs), true_runs)


def false_runs(flags: ArrayLike, events: Sequence[tuple[int, int]],
               tolerance: int = 3) -> list[tuple[int, int]]:
    """The runs of ``flags`` that :func:`evaluate_events` counts as false: ``[first, last + 1)``
    of each run that overlaps no event window."""
    windows = [(s, e + tolerance) for s, e in events]
    return [(a, b) for a, b in _runs(np.asarray(flags, dtype=bool), tolerance)
            if not any(a < e and s < b for s, e in windows)]


def benchmark_table(
    detector: Callable[[FloatArray], NDArray[np.bool_]],
    series: Sequence[LabelledSeries],
    tolerance: int = 3,
) -> dict[str, EventScore]:
    """Per-kind :class:`EventScore` of ``detector`` (values -> flags) over labelled series."""
    table: dict[str, EventScore] = {}
    for s in series:
        score = evaluate_events(detector(s.values), s.events, tolerance)
        table[s.kind] = table[s.kind] + score if s.kind in table else score
    return table


# ---------------------------------------------------------------------------------------------
# Alerts
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SyntheticAlert:
    """A minimal alert record (the correlator's input type accepts it by duck typing)."""

    fingerprint: str
    name: str
    labels: dict[str, str]
    severity: str
    starts_at: float
    state: str = "firing"
    ends_at: float | None = None
    value: float | None = None
    incident: int = -1
    series: FloatArray | None = field(default=None, compare=False)


def incident_alerts(
    n_incidents: int = 2, alerts_per_incident: int = 4, seed: int = 0, spacing_s: float = 3600.0,
    series_len: int = 60,
) -> list[SyntheticAlert]:
    """Alerts of independent incidents: each incident hits one host, its alerts start within
    two minutes of each other and their metric windows co-move (a shared latent signal);
    different incidents use different hosts, are ``spacing_s`` apart and move independently.
    """
    rng = np.random.default_rng(seed)
    names = ["HighLatency", "HighCPU", "HighRSS", "ErrorRate", "SlowGeneration", "QueueDepth"]
    comps = ["evolution", "kraken", "agent", "llm", "store", "runner"]
    out: list[SyntheticAlert] = []
    for inc in range(n_incidents):
        host = f"host-{inc}"
        t0 = 1_700_000_000.0 + inc * spacing_s + rng.uniform(0, 60)
        latent = np.cumsum(rng.normal(0, 1, series_len))
        for j in range(alerts_per_incident):
            name = names[j % len(names)]
            comp = comps[(j + inc) % len(comps)]
            labels = {"host": host, "component": comp, "alertname": name, "scope": "component"}
            series = latent * rng.uniform(0.5, 2.0) + rng.normal(0, 0.3, series_len)
            fp = f"{name}:{host}:{comp}"
            out.append(SyntheticAlert(fp, name, labels, "warning", t0 + rng.uniform(0, 120),
                                      value=float(series[-1]), incident=inc, series=series))
    order = rng.permutation(len(out))
    return [out[i] for i in order]


# ---------------------------------------------------------------------------------------------
# Root cause
# ---------------------------------------------------------------------------------------------


def root_cause_trial(
    seed: int, n: int = 300, n_metrics: int = 8, onset: int | None = None,
) -> tuple[dict[str, FloatArray], str, str, int]:
    """Metric series where one cause metric changes first and others follow.

    Returns ``(metrics, cause, target, anomaly_index)``: the cause steps up at ``onset``; the
    target and two intermediate effects follow 2..8 steps later with propagated, noisier changes;
    the rest are distractors (noise, one with an unrelated small wobble). ``anomaly_index`` is
    where the target's anomaly is reported (a few steps after it moved).
    """
    rng = np.random.default_rng(seed)
    t0 = onset if onset is not None else int(rng.integers(n // 2, n - 60))
    names = [f"m{i}" for i in range(n_metrics)]
    order = rng.permutation(n_metrics)
    cause, target, eff1, eff2 = (names[i] for i in order[:4])
    metrics: dict[str, FloatArray] = {}
    base_change = np.zeros(n)
    base_change[t0:] = 1.0
    for i, name in enumerate(names):
        metrics[name] = rng.normal(0, 1, n) + 5.0 * (i % 3)
    metrics[cause] = metrics[cause] + rng.uniform(4, 7) * base_change
    delays = {eff1: int(rng.integers(2, 5)), eff2: int(rng.integers(3, 7)),
              target: int(rng.integers(4, 9))}
    for name, lag in delays.items():
        shifted = np.zeros(n)
        shifted[t0 + lag:] = 1.0
        mag = rng.uniform(3, 9)
        metrics[name] = metrics[name] + mag * shifted + rng.normal(0, 0.3, n) * shifted
    wobble = names[order[4]]
    metrics[wobble] = metrics[wobble] + 1.5 * np.sin(np.arange(n) / 7.0)
    return metrics, cause, target, t0 + delays[target] + 2


def regression_trial(
    seed: int, repeats: int = 3,
) -> tuple[list[dict[str, Any]], FloatArray, FloatArray, str]:
    """Matrix cells before/after a change where one parameter value alone causes a slowdown.

    Returns ``(params_per_cell, before, after, cause_param)``; ``before``/``after`` are the wall
    times per cell. The slowdown (+25..45%) hits only the cells where the cause parameter takes
    one particular value; every cell has multiplicative noise of about 5%.
    """
    rng = np.random.default_rng(seed)
    grid: dict[str, list[Any]] = {
        "population": [50, 100, 200],
        "mutation_rate": [0.01, 0.05, 0.1],
        "crossover": ["blend", "uniform", "sbx"],
        "selection": ["tournament", "rank"],
    }
    cause = list(grid)[int(rng.integers(0, len(grid)))]
    bad_value = grid[cause][int(rng.integers(0, len(grid[cause])))]
    cells: list[dict[str, Any]] = []
    for combo in itertools.product(*grid.values()):
        for _ in range(repeats):
            cells.append(dict(zip(grid, combo, strict=True)))
    base = np.array([0.01 * c["population"] * (1 + 5 * c["mutation_rate"]) for c in cells])
    before = base * rng.lognormal(0, 0.05, len(cells))
    slow = np.array([1.0 + (rng.uniform(0.25, 0.45) if c[cause] == bad_value else 0.0)
                     for c in cells])
    after = base * slow * rng.lognormal(0, 0.05, len(cells))
    return cells, before, after, cause


# ---------------------------------------------------------------------------------------------
# Recommendations
# ---------------------------------------------------------------------------------------------


def response_surface(
    seed: int = 0, repeats: int = 2, noise: float = 0.01,
) -> tuple[list[dict[str, Any]], FloatArray, FloatArray, dict[str, Any]]:
    """Matrix results on a known surface: quality peaks at population 250, mutation 0.05,
    crossover 'sbx'; cost grows linearly with population.

    Returns ``(params, quality, cost, optimum)``; ``optimum`` is the grid point of best quality.
    """
    rng = np.random.default_rng(seed)
    pops = [50, 100, 150, 200, 250, 300, 350, 400]
    muts = [0.01, 0.025, 0.05, 0.1, 0.2]
    xs = ["blend", "uniform", "sbx"]
    bonus = {"blend": 0.0, "uniform": -0.03, "sbx": 0.04}
    params: list[dict[str, Any]] = []
    quality: list[float] = []
    cost: list[float] = []
    for p in pops:
        for m in muts:
            for x in xs:
                for _ in range(repeats):
                    q = (0.8 - 0.25 * ((p - 250) / 200) ** 2
                         - 0.12 * (np.log10(m) - np.log10(0.05)) ** 2 + bonus[x])
                    params.append({"population": p, "mutation_rate": m, "crossover": x})
                    quality.append(q + rng.normal(0, noise))
                    cost.append(0.002 * p * (1.1 if x == "sbx" else 1.0) * rng.lognormal(0, 0.03))
    optimum = {"population": 250, "mutation_rate": 0.05, "crossover": "sbx"}
    return params, np.asarray(quality), np.asarray(cost), optimum
