import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from allele.core import operators as ops

pops = st.integers(2, 60).flatmap(
    lambda n: arrays(np.float64, (n, 8), elements=st.floats(0.0, 1.0, allow_nan=False)))
seeds = st.integers(0, 2**32 - 1)


def in_unit(x: np.ndarray) -> bool:
    return bool(((x >= 0.0) & (x <= 1.0)).all())


@settings(max_examples=60, deadline=None)
@given(pops, pops, seeds, st.floats(0.0, 2.0))
def test_crossovers_keep_traits_in_unit_interval(a, b, seed, alpha):
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    rng = np.random.default_rng(seed)
    assert in_unit(ops.crossover_blend(a, b, rng, alpha))
    assert in_unit(ops.crossover_uniform(a, b, rng))
    assert in_unit(ops.crossover_sbx(a, b, rng, eta=2.0))


@settings(max_examples=60, deadline=None)
@given(pops, seeds, st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_mutation_keeps_traits_in_unit_interval(pop, seed, rate, sigma):
    out = ops.mutate_gaussian(pop.copy(), np.random.default_rng(seed), rate, sigma)
    assert in_unit(out)


def test_mutation_rate_zero_changes_nothing_and_one_changes_all():
    pop = np.full((100, 8), 0.5)
    assert np.array_equal(ops.mutate_gaussian(pop.copy(), np.random.default_rng(0), 0.0, 0.2), pop)
    moved = ops.mutate_gaussian(pop.copy(), np.random.default_rng(0), 1.0, 0.05)
    assert (moved != 0.5).mean() > 0.99
    assert abs(moved.std() - 0.05) < 0.005  # noise of the requested sigma


@pytest.mark.parametrize("rate", [0.02, 0.1, 0.5, 0.9])
def test_mutation_marks_each_trait_with_probability_rate(rate):
    pop = np.full((4000, 8), 0.5)
    out = ops.mutate_gaussian(pop, np.random.default_rng(11), rate, 0.1)
    changed = (out != 0.5).mean()
    assert abs(changed - rate) < 4 * np.sqrt(rate * (1 - rate) / pop.size)
    # independent across traits: each column moves at the same rate
    assert np.allclose((out != 0.5).mean(axis=0), rate, atol=0.03)


def test_mutation_works_in_place_on_strided_arrays():
    base = np.full((50, 16), 0.5)
    view = base[:, ::2]
    assert not view.flags.c_contiguous
    ops.mutate_gaussian(view, np.random.default_rng(0), 1.0, 0.1)
    assert (base[:, ::2] != 0.5).all() and (base[:, 1::2] == 0.5).all()


def test_uniform_crossover_takes_each_gene_from_a_parent():
    rng = np.random.default_rng(1)
    a, b = np.zeros((500, 8)), np.ones((500, 8))
    child = ops.crossover_uniform(a, b, rng)
    assert set(np.unique(child)) == {0.0, 1.0}
    assert 0.45 < child.mean() < 0.55


def test_blend_spans_the_widened_interval():
    rng = np.random.default_rng(2)
    a, b = np.full((20000, 8), 0.4), np.full((20000, 8), 0.6)
    child = ops.crossover_blend(a, b, rng, alpha=0.5)
    assert abs(child.min() - 0.3) < 0.005 and abs(child.max() - 0.7) < 0.005
    assert abs(child.mean() - 0.5) < 0.005


def test_sbx_children_centre_on_parents():
    rng = np.random.default_rng(3)
    a, b = np.full((20000, 8), 0.3), np.full((20000, 8), 0.7)
    child = ops.crossover_sbx(a, b, rng, eta=15.0)
    assert abs(child.mean() - 0.5) < 0.01
    # with a large eta, children stay near a parent
    near = np.minimum(np.abs(child - 0.3), np.abs(child - 0.7))
    assert np.median(near) < 0.05


def test_tournament_prefers_fitter_individuals():
    rng = np.random.default_rng(4)
    fit = np.arange(100, dtype=np.float64)
    picks = ops.select_tournament(fit, 10000, rng, 3)
    # expected mean rank for the max of 3 uniform draws is 3/4 of the range
    assert abs(picks.mean() / 99 - 0.75) < 0.02
    assert ops.select_tournament(fit, 50, rng, 100).min() > 80


def test_roulette_is_proportional_and_handles_flat_fitness():
    rng = np.random.default_rng(5)
    fit = np.array([0.0, 1.0, 3.0])
    picks = ops.select_roulette(fit, 30000, rng)
    share = np.bincount(picks, minlength=3) / 30000
    assert share[2] > share[1] > share[0]
    assert abs(share[2] / share[1] - 3.0) < 0.2
    flat = ops.select_roulette(np.full(4, 2.0), 4000, rng)
    assert set(np.unique(flat)) == {0, 1, 2, 3}


def test_rank_selection_depends_on_order_only():
    rng1, rng2 = np.random.default_rng(6), np.random.default_rng(6)
    fit = np.array([0.1, 5.0, 0.2, 100.0])
    squashed = np.array([1.0, 3.0, 2.0, 4.0])
    assert np.array_equal(ops.select_rank(fit, 500, rng1), ops.select_rank(squashed, 500, rng2))
    picks = ops.select_rank(fit, 20000, np.random.default_rng(7), pressure=2.0)
    counts = np.bincount(picks, minlength=4)
    assert counts[3] > counts[1] > counts[2] > counts[0]


def test_diversity_is_mean_trait_std():
    pop = np.random.default_rng(8).random((300, 8))
    assert np.isclose(ops.diversity(pop), pop.std(axis=0).mean())
    assert ops.diversity(np.full((10, 8), 0.3)) < 1e-12  # same rounding as numpy std
