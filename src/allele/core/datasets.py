"""Reference time-series tasks for the Kraken reservoir, and the NRMSE score.

* :func:`mackey_glass` integrates the Mackey-Glass delay differential equation
  ``dx/dt = beta * x(t - tau) / (1 + x(t - tau)**n) - gamma * x(t)`` with a fourth-order
  Runge-Kutta scheme (step ``dt``, the delayed value at half steps linearly interpolated from the
  stored history), discards a transient and samples every ``sample_step`` time units.
* :func:`narma10` generates the tenth-order nonlinear autoregressive moving-average task with
  inputs drawn uniformly from ``[0, 0.5]``.
* :func:`nrmse` is the root-mean-square error normalised by the standard deviation of the target.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import numpy.typing as npt

from allele.errors import ValidationError

__all__ = ["mackey_glass", "narma10", "nrmse"]

FloatArray = npt.NDArray[np.float64]


@numba.njit(cache=True)
def _mg_integrate(
    history: FloatArray,
    total_steps: int,
    delay: int,
    dt: float,
    beta: float,
    gamma: float,
    power: float,
) -> FloatArray:  # pragma: no cover - compiled by numba; checked through mackey_glass
    """RK4 for the Mackey-Glass DDE on a grid of step ``dt``; ``delay = tau / dt`` grid steps.

    ``history`` holds the ``delay + 1`` values on ``[-tau, 0]``; the result holds them too,
    followed by ``total_steps`` integrated values.
    """
    out = np.empty(delay + 1 + total_steps)
    out[: delay + 1] = history
    for i in range(delay, delay + total_steps):
        x = out[i]
        xd0 = out[i - delay]
        xd1 = out[i - delay + 1]
        xdh = 0.5 * (xd0 + xd1)
        f0 = beta * xd0 / (1.0 + xd0**power)
        fh = beta * xdh / (1.0 + xdh**power)
        f1 = beta * xd1 / (1.0 + xd1**power)
        k1 = f0 - gamma * x
        k2 = fh - gamma * (x + 0.5 * dt * k1)
        k3 = fh - gamma * (x + 0.5 * dt * k2)
        k4 = f1 - gamma * (x + dt * k3)
        out[i + 1] = x + dt * (k1 + 2.0 * k2 + 2.0 * k3 + k4) / 6.0
    return out


def _check_positive_int(name: str, value: object, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValidationError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValidationError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_positive_float(name: str, value: object, *, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValidationError(f"{name} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValidationError(f"{name} must be finite and {bound}, got {value!r}")
    return v


def mackey_glass(
    n: int,
    tau: float = 17.0,
    *,
    beta: float = 0.2,
    gamma: float = 0.1,
    power: float = 10.0,
    dt: float = 0.1,
    sample_step: float = 1.0,
    transient: float = 1000.0,
    x0: float = 1.2,
    seed: int | None = None,
) -> FloatArray:
    """``n`` samples of the Mackey-Glass series (chaotic for the default ``tau=17``).

    The equation is integrated with RK4 at step ``dt`` (``tau``, ``sample_step`` and
    ``transient`` must be multiples of ``dt``), the first ``transient`` time units are dropped,
    and one value is kept every ``sample_step`` time units.

    The initial history on ``[-tau, 0]`` is the constant ``x0`` when ``seed`` is None (the
    classic set-up, fully deterministic), else ``x0`` plus independent uniform perturbations in
    ``[-0.1, 0.1]`` drawn from ``numpy.random.default_rng(seed)``, giving a different trajectory
    on the same attractor for each seed.
    """
    n = _check_positive_int("n", n)
    tau = _check_positive_float("tau", tau)
    dt = _check_positive_float("dt", dt)
    sample_step = _check_positive_float("sample_step", sample_step)
    transient = _check_positive_float("transient", transient, allow_zero=True)
    beta = _check_positive_float("beta", beta)
    gamma = _check_positive_float("gamma", gamma)
    power = _check_positive_float("power", power)
    x0 = _check_positive_float("x0", x0)

    def steps_of(name: str, length: float) -> int:
        k = round(length / dt)
        if abs(k * dt - length) > 1e-9 * max(1.0, length):
            raise ValidationError(f"{name}={length} must be a multiple of dt={dt}")
        return int(k)

    delay = steps_of("tau", tau)
    every = steps_of("sample_step", sample_step)
    skip = steps_of("transient", transient)
    if every < 1:
        raise ValidationError(f"sample_step={sample_step} must be at least dt={dt}")
    history = np.full(delay + 1, x0)
    if seed is not None:
        history += np.random.default_rng(seed).uniform(-0.1, 0.1, size=delay + 1)
    total = skip + (n - 1) * every
    path = _mg_integrate(history, total, delay, dt, beta, gamma, power)
    series: FloatArray = np.ascontiguousarray(path[delay + skip :: every][:n])
    if series.shape[0] != n or not np.all(np.isfinite(series)):
        raise ValidationError("mackey_glass integration failed (non-finite values); reduce dt")
    return series


def narma10(n: int, seed: int | None = 0, *, washout: int = 200) -> tuple[FloatArray, FloatArray]:
    """The NARMA10 task: inputs ``u`` uniform in ``[0, 0.5]`` and targets ``y``, each ``n`` long.

    The system is ``s[t+1] = 0.3 s[t] + 0.05 s[t] * sum(s[t-9..t]) + 1.5 u[t-9] u[t] + 0.1``.
    The returned arrays are aligned for a causal model: ``y[t] = s[t+1]`` depends on
    ``u[0..t]`` only, so a reservoir that has read ``u[t]`` is asked for ``y[t]``. The first
    ``washout`` steps of the system (started from ``s = 0``) are dropped.

    The system can diverge for rare input draws; that is reported as a ValidationError naming the
    seed instead of returning a non-finite series.
    """
    n = _check_positive_int("n", n)
    washout = _check_positive_int("washout", washout, minimum=0)
    total = n + washout
    rng = np.random.default_rng(seed)
    u = rng.uniform(0.0, 0.5, size=total)
    s = np.zeros(total + 1)
    for t in range(total):
        lo = max(0, t - 9)
        past_u = u[t - 9] if t >= 9 else 0.0
        s[t + 1] = (
            0.3 * s[t] + 0.05 * s[t] * float(s[lo : t + 1].sum()) + 1.5 * past_u * u[t] + 0.1
        )
    if not np.all(np.isfinite(s)) or float(np.abs(s).max()) > 1e3:
        raise ValidationError(f"narma10 diverged for seed={seed}; choose another seed")
    return u[washout:].copy(), s[washout + 1 :].copy()


def nrmse(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> float:
    """Root-mean-square error divided by the standard deviation of ``y_true``.

    For 2-D targets ``(T, k)`` the score is the mean of the per-column NRMSEs. A constant target
    column (zero standard deviation) cannot be normalised and raises ValidationError.
    """
    a = np.asarray(y_true, dtype=np.float64)
    b = np.asarray(y_pred, dtype=np.float64)
    if a.shape != b.shape:
        raise ValidationError(f"y_true and y_pred shapes differ: {a.shape} vs {b.shape}")
    if a.ndim == 1:
        a = a[:, None]
        b = b[:, None]
    if a.ndim != 2 or a.shape[0] < 2:
        raise ValidationError(f"nrmse needs (T,) or (T, k) arrays with T >= 2, got {a.shape}")
    std = a.std(axis=0)
    if np.any(std == 0):
        raise ValidationError("nrmse is undefined for a constant target (zero std)")
    rmse = np.sqrt(np.mean((a - b) ** 2, axis=0))
    return float(np.mean(rmse / std))
