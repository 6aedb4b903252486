"""Realistic benchmark noise, vectorised over many simulated matrices, and the verdict pipeline
of :func:`allele.bench.estimate.estimate_rows` run on it batch-wise.

Everything is on the log scale (a log-normal sample is a normal log). The noise a shared machine
really has, beyond i.i.d. per-sample noise:

* outliers: each call is 2x slower with probability 5% (a page fault, a busy neighbour);
* bimodal cells: in a share of the cells, 30% of calls land 20% higher (two code paths);
* round (process) effects: each round of a cell runs in one worker process, which is a little
  faster or slower as a whole;
* run shifts: a run-wide shift common to every cell (the machine was busier), one per target,
  and each cell's own run effect; over a history, these can be autocorrelated (AR(1)).

The pipeline functions below are the production ones (:mod:`allele.bench.estimate`,
:mod:`allele.bench.runlevel`) fed with arrays of shape ``trials x cells x ...``; the tests of
:mod:`tests.bench.test_compare` also check that :func:`allele.bench.compare.compare_runs` gives
the same verdicts as this batch path on one matrix.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from allele.bench.estimate import Judgement, judge
from allele.bench.runlevel import run_level, steps
from allele.bench.within import block_within, paired_within

F = NDArray[np.float64]
LOG2 = float(np.log(2.0))


@dataclass(frozen=True)
class Noise:
    """Noise of one simulated setting (sds on the log scale, i.e. relative)."""

    sigma: tuple[float, float] = (0.1, 0.3)
    """Per-sample sd, drawn per cell uniformly in this range."""
    outliers: float = 0.05
    outlier_factor: float = 2.0
    bimodal_cells: float = 0.2
    round_sd: float = 0.01
    """Per (cell, round, process) effect."""
    run_shift_sd: float = 0.05
    """Run-wide shift common to every cell of a run."""
    target_shift_sd: float = 0.02
    """Shift common to the cells of one target (4 targets)."""
    cell_run_sd: tuple[float, float] = (0.0, 0.03)
    """Each cell's own run effect sd, drawn per cell in this range."""
    ar: float = 0.0
    """AR(1) coefficient of the run effects across consecutive runs."""
    seed_sd: float = 0.05
    """Each seed's own offset, the same in every run (pairing by seed removes it)."""


def cell_sigmas(rng: np.random.Generator, trials: int, cells: int, noise: Noise) -> F:
    return rng.uniform(*noise.sigma, size=(trials, cells))


def sample_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: F,
                 bimodal: NDArray[np.bool_], noise: Noise) -> F:
    """Per-call log noise of shape ``trials x cells x ...`` (``sigma`` and ``bimodal`` per
    trial and cell)."""
    extra = (1,) * (len(shape) - 2)
    x = rng.standard_normal(shape) * sigma.reshape(*sigma.shape, *extra)
    x += np.log(noise.outlier_factor) * (rng.random(shape) < noise.outliers)
    second = (rng.random(shape) < 0.3) & bimodal.reshape(*bimodal.shape, *extra)
    x += np.log(1.2) * second
    return x


def ab_diffs(rng: np.random.Generator, trials: int, cells: int, rounds: int, pairs: int,
             noise: Noise, effect: F | None = None, sigma: F | None = None) -> F:
    """Paired log-differences HEAD - BASE of A/B sessions: ``trials x cells x rounds x
    pairs``. Both versions share each round's conditions (its slot in time), but each has its
    own worker process per round (``round_sd``)."""
    shape = (trials, cells, rounds, pairs)
    sig = cell_sigmas(rng, trials, cells, noise) if sigma is None else sigma
    bimodal = rng.random((trials, cells)) < noise.bimodal_cells
    d = sample_noise(rng, shape, sig, bimodal, noise) - sample_noise(rng, shape, sig, bimodal,
                                                                     noise)
    proc = noise.round_sd * (rng.standard_normal((trials, cells, rounds, 1))
                             - rng.standard_normal((trials, cells, rounds, 1)))
    common = noise.round_sd * (rng.standard_normal((trials, 1, rounds, 1))
                               - rng.standard_normal((trials, 1, rounds, 1)))
    d += proc + common
    if effect is not None:
        d += effect.reshape(-1, cells, 1, 1) if effect.ndim == 2 else effect[None, :, None, None]
    return d


def judge_ab(d: F, *, floor: float = 0.05, q: float = 0.05, worse: float = 1.0) -> Judgement:
    """What a comparison of A/B sessions does with their rows (one metric)."""
    w = block_within(d).moderated()
    return judge(w.est, w.var, w.df, worse=worse, floor=floor, q=q)


def run_effects(rng: np.random.Generator, trials: int, cells: int, runs: int,
                noise: Noise) -> F:
    """Run-level log effects ``trials x cells x runs``: run-wide, per-target (4 targets) and
    per-cell, each AR(1) over the runs with coefficient ``noise.ar``."""
    def ar(shape: tuple[int, ...], sd: F | float) -> F:
        e = rng.standard_normal(shape)
        out = np.empty(shape)
        out[..., 0] = e[..., 0]
        scale = np.sqrt(1.0 - noise.ar ** 2)
        for k in range(1, shape[-1]):
            out[..., k] = noise.ar * out[..., k - 1] + scale * e[..., k]
        return np.asarray(out * sd)

    target = np.arange(cells) % 4
    cell_sd = rng.uniform(*noise.cell_run_sd, size=(trials, cells, 1))
    return (ar((trials, 1, runs), noise.run_shift_sd)
            + ar((trials, 4, runs), noise.target_shift_sd)[:, target, :]
            + ar((trials, cells, runs), cell_sd))


def two_run_samples(rng: np.random.Generator, trials: int, cells: int, runs: int, seeds: int,
                    rounds: int, noise: Noise, effect: F | None = None) -> F:
    """Log samples ``trials x cells x runs x seeds`` of consecutive runs; the last two runs are
    BASE and HEAD (``effect`` added to HEAD). Each seed keeps its own offset in every run (so
    pairing by seed helps), seeds run in ``rounds`` rounds of shared process effects."""
    sig = cell_sigmas(rng, trials, cells, noise)
    bimodal = rng.random((trials, cells)) < noise.bimodal_cells
    x = sample_noise(rng, (trials, cells, runs, seeds), sig, bimodal, noise)
    x += noise.seed_sd * rng.standard_normal((trials, cells, 1, seeds))  # seed effects
    x += rng.uniform(-3, 1, size=(trials, cells, 1, 1))  # cell levels
    round_of = np.arange(seeds) % rounds
    x += noise.round_sd * rng.standard_normal((trials, cells, runs, rounds))[..., round_of]
    x += run_effects(rng, trials, cells, runs, noise)[..., None]
    if effect is not None:
        x[:, :, -1, :] += effect
    return x


def switch_modes(rng: np.random.Generator, x: F, share: float = 0.1, slow: float = 2.3,
                 p: float = 0.3) -> None:
    """Make a ``share`` of the cells of log samples ``x`` (``trials x cells x runs x seeds``)
    switch between a fast and a ``slow`` x slower mode, in blocks of two seeds (a worker's
    calls) that land in the slow mode with probability ``p`` in each run, in place: a pure-Python
    sort on a shared VM did this (tests/bench/test_runlevel_real.py)."""
    t, c, r, s = x.shape
    chosen = rng.random((t, c, 1, 1)) < share
    block = np.arange(s) // 2
    slow_now = rng.random((t, c, r, s // 2 + 1))[..., block] < p
    x += math.log(slow) * (chosen & slow_now)


def go_wrong(rng: np.random.Generator, x: F, p: float = 0.01, factor: float = 2.0) -> None:
    """In place: each cell of each run of log samples ``x`` (``trials x cells x runs x seeds``)
    runs ``factor`` x slower in every sample with probability ``p`` (a neighbour took the core
    for that cell's whole stretch of the run)."""
    t, c, r, _ = x.shape
    x += math.log(factor) * (rng.random((t, c, r, 1)) < p)


@dataclass(frozen=True)
class TwoRun:
    judgement: Judgement
    shift: F
    var_shift: F


def judge_two_run(x: F, *, floor: float = 0.05, q: float = 0.05,
                  history: bool = True, sensitive: bool = True) -> TwoRun:
    """What :func:`allele.bench.compare.compare_runs` does with the last two runs of ``x``
    (paired by seed), with the earlier runs as history (or none)."""
    within = paired_within(x[:, :, -1, :] - x[:, :, -2, :]).moderated()
    if history:
        step, w = steps(x[:, :, :-2, :])
    else:
        step = w = np.full((*x.shape[:2], 0), np.nan)
    part = run_level(within.est, within.var, step, w, sensitive=sensitive)
    est = within.est - part.shift[..., None]
    j = judge(est, within.var, within.df, worse=1.0, floor=floor, q=q,
              var_between=part.var, df_between=part.df, null=part.null[..., None, :])
    return TwoRun(j, part.shift, part.var_shift)


def flagged(j: Judgement) -> NDArray[np.bool_]:
    """Rows with a regressed or improved verdict."""
    return np.asarray(j.verdict <= 1)
