"""Tests for the reference tasks of the Kraken reservoir (Mackey-Glass, NARMA10) and NRMSE."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from allele.core.datasets import mackey_glass, narma10, nrmse
from allele.errors import ValidationError

# --- Mackey-Glass ------------------------------------------------------------------------------


def test_mackey_glass_shape_range_and_determinism() -> None:
    x = mackey_glass(2000)
    assert x.shape == (2000,)
    assert x.dtype == np.float64
    # the tau=17 attractor lives roughly in [0.4, 1.35]
    assert 0.35 < x.min() < 0.5
    assert 1.25 < x.max() < 1.4
    np.testing.assert_array_equal(x, mackey_glass(2000))


def test_mackey_glass_seed_changes_trajectory_but_not_attractor() -> None:
    a = mackey_glass(1500, seed=1)
    b = mackey_glass(1500, seed=2)
    np.testing.assert_array_equal(a, mackey_glass(1500, seed=1))
    assert not np.allclose(a, b)
    assert abs(a.mean() - b.mean()) < 0.05
    assert abs(a.std() - b.std()) < 0.05


def test_mackey_glass_short_delay_converges_to_fixed_point() -> None:
    # with tau=2 the equilibrium x* (beta / (1 + x*^10) = gamma, i.e. x* = 1) is stable
    x = mackey_glass(50, tau=2.0, transient=500.0)
    np.testing.assert_allclose(x, 1.0, atol=1e-6)


def test_mackey_glass_integration_converges_with_dt() -> None:
    # no transient and a short horizon: RK4 solutions for shrinking dt must approach each other
    ref = mackey_glass(30, dt=0.0125, transient=0.0)
    err_coarse = np.abs(mackey_glass(30, dt=0.1, transient=0.0) - ref).max()
    err_fine = np.abs(mackey_glass(30, dt=0.05, transient=0.0) - ref).max()
    assert err_fine < err_coarse
    assert err_coarse < 1e-3
    # the first sample is the end of the constant history
    assert ref[0] == pytest.approx(1.2)


def test_mackey_glass_subsampling() -> None:
    fine = mackey_glass(41, sample_step=0.5, transient=100.0)
    coarse = mackey_glass(21, sample_step=1.0, transient=100.0)
    np.testing.assert_allclose(fine[::2], coarse, rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"n": 0}, "n"),
        ({"n": 10, "tau": -1.0}, "tau"),
        ({"n": 10, "tau": 17.05}, "tau"),
        ({"n": 10, "dt": 0.0}, "dt"),
        ({"n": 10, "sample_step": 0.25}, "sample_step"),
        ({"n": 10, "transient": float("nan")}, "transient"),
        ({"n": 2.5}, "n"),
    ],
)
def test_mackey_glass_validation(kwargs: dict[str, float], name: str) -> None:
    with pytest.raises(ValidationError, match=name):
        mackey_glass(**kwargs)  # type: ignore[arg-type]


# --- NARMA10 -----------------------------------------------------------------------------------


def test_narma10_follows_its_recurrence() -> None:
    u, y = narma10(500, seed=3)
    assert u.shape == y.shape == (500,)
    assert u.min() >= 0.0
    assert u.max() <= 0.5
    t = np.arange(10, 500)
    window = np.stack([y[t - i] for i in range(1, 11)]).sum(axis=0)
    expected = 0.3 * y[t - 1] + 0.05 * y[t - 1] * window + 1.5 * u[t - 9] * u[t] + 0.1
    np.testing.assert_allclose(y[t], expected, rtol=1e-12, atol=1e-12)


def test_narma10_determinism_and_seed() -> None:
    u1, y1 = narma10(300, seed=5)
    u2, y2 = narma10(300, seed=5)
    np.testing.assert_array_equal(u1, u2)
    np.testing.assert_array_equal(y1, y2)
    u3, _ = narma10(300, seed=6)
    assert not np.array_equal(u1, u3)


def test_narma10_validation() -> None:
    with pytest.raises(ValidationError, match="n"):
        narma10(0)
    with pytest.raises(ValidationError, match="washout"):
        narma10(10, washout=-1)


# --- NRMSE -------------------------------------------------------------------------------------


def test_nrmse_reference_values() -> None:
    y = np.array([1.0, 2.0, 3.0, 4.0])
    assert nrmse(y, y) == 0.0
    # predicting the mean gives exactly 1
    assert nrmse(y, np.full(4, y.mean())) == pytest.approx(1.0)
    # constant offset c: rmse = c, std = sqrt(1.25)
    assert nrmse(y, y + 0.5) == pytest.approx(0.5 / np.sqrt(1.25))


def test_nrmse_two_dimensional_is_mean_of_columns() -> None:
    rng = np.random.default_rng(0)
    y = rng.standard_normal((50, 2))
    p = y + rng.standard_normal((50, 2)) * [0.1, 0.3]
    expected = (nrmse(y[:, 0], p[:, 0]) + nrmse(y[:, 1], p[:, 1])) / 2
    assert nrmse(y, p) == pytest.approx(expected)


def test_nrmse_errors() -> None:
    with pytest.raises(ValidationError, match="shapes"):
        nrmse([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValidationError, match="constant"):
        nrmse([1.0, 1.0, 1.0], [1.0, 2.0, 3.0])


@settings(max_examples=50, deadline=None)
@given(
    scale=st.floats(min_value=1e-3, max_value=1e3),
    shift=st.floats(min_value=-1e3, max_value=1e3),
    seed=st.integers(0, 2**32 - 1),
)
def test_nrmse_is_affine_invariant(scale: float, shift: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    y = rng.standard_normal(40)
    p = y + 0.2 * rng.standard_normal(40)
    assert nrmse(scale * y + shift, scale * p + shift) == pytest.approx(nrmse(y, p), rel=1e-6)
