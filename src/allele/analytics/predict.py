"""Predict a cell's metrics from its configuration (:class:`PerformancePredictor`).

A matrix run measures some cells of a parameter grid; this answers "what would this other
configuration give?" with an interval, and says how well that worked on cells it never saw.

* **Encoding.** A numeric parameter is a number, on a log scale when every value is positive
  and they span a factor of 10 or more (population sizes, learning rates); anything else
  (strings, booleans, None) is one-hot. Columns are standardised. A parameter with one value
  carries nothing and is dropped.
* **Models.** A Gaussian process (constant x anisotropic RBF + white noise, scikit-learn), gradient
  boosting, and ridge regression on quadratic features, compared by grouped cross-validation
  (every observation of one configuration in the same fold, so replicates of a cell never help
  predict themselves); the lowest out-of-fold MAE wins (``model="auto"``), or name one.
* **Intervals.** Split-conformal on the cross-validated residuals: ``mean +- q`` (not below 0 for
  a metric never negative in the cells) with ``q`` the
  ``ceil((n + 1) * level) / n`` quantile of the absolute out-of-fold errors, so a new observation
  of a new configuration falls inside with probability near ``level`` whatever the model (the
  guarantee of cross-conformal prediction is ``1 - 2 * (1 - level)``; in the tests it is near
  nominal).
* **Extrapolation.** A configuration with a numeric parameter outside its measured [min, max]
  is predicted, and each :class:`MetricPrediction` names those parameters (``extrapolation``):
  no cell checks the number there, and a Gaussian process returns to the cells' mean beyond
  them. A category never measured is refused, not predicted.
* **Validation.** Before anything else, a share ``holdout`` of the configurations is set aside;
  the whole procedure (model choice, conformal quantile) runs on the rest and predicts them.
  ``validation_[metric]`` reports the held-out MAE beside that of the chance baseline (the mean
  of the training observations) and the held-out interval coverage. The final model is then
  refitted on every configuration.
"""

from __future__ import annotations

import math
import warnings
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Self

import numpy as np
from numpy.typing import ArrayLike

from allele.analytics._common import FloatArray, as_series, check_level
from allele.errors import AnalyticsError, NotFittedError

__all__ = ["MetricPrediction", "PerformancePredictor", "PredictorValidation"]

ModelName = Literal["auto", "gp", "boosting", "ridge"]
_MODELS: tuple[str, ...] = ("gp", "boosting", "ridge")


@dataclass(frozen=True, slots=True)
class MetricPrediction:
    """One metric predicted for one configuration: the mean and an interval at ``level``."""

    metric: str
    mean: float
    lower: float
    upper: float
    level: float
    model: str
    extrapolation: tuple[str, ...] = ()
    """The configuration's numeric parameters outside the measured [min, max] (``"population=
    2000 outside the measured [50, 400]"``); empty inside the cells. No cell checks a
    prediction there: a Gaussian process returns to the cells' mean beyond them, so a reservoir
    of 5000 was predicted faster than the 200 measured, and nothing said so."""

    @property
    def extrapolates(self) -> bool:
        """Whether the configuration lies outside the measured cells (:attr:`extrapolation`)."""
        return bool(self.extrapolation)


@dataclass(frozen=True, slots=True)
class PredictorValidation:
    """How the procedure did on configurations it never saw (``holdout_cells`` of them)."""

    metric: str
    model: str
    train_cells: int
    holdout_cells: int
    mae: float
    baseline_mae: float
    coverage: float
    level: float
    cv_mae: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dictionary."""
        return {f: getattr(self, f) for f in self.__slots__}


class _Encoder:
    """Parameters (dicts) -> standardised numeric columns (see the module docstring)."""

    def fit(self, params: Sequence[Mapping[str, Any]]) -> _Encoder:
        keys = sorted({k for p in params for k in p})
        self.columns: list[tuple[str, str, Any]] = []  # (param, kind, detail)
        self.seen: dict[str, set[str]] = {}  # every parameter's measured values (repr)
        self.ranges: dict[str, tuple[float, float]] = {}  # a numeric column's measured range
        for k in keys:
            vals = [p.get(k) for p in params]
            distinct = {repr(v) for v in vals}
            self.seen[k] = distinct
            if len(distinct) < 2:
                continue
            if all(isinstance(v, int | float) and not isinstance(v, bool) for v in vals):
                arr = np.asarray(vals, dtype=np.float64)
                self.ranges[k] = (float(arr.min()), float(arr.max()))
                log = bool(np.all(arr > 0) and arr.max() / arr.min() >= 10.0)
                self.columns.append((k, "log" if log else "num", None))
            else:
                for level in sorted(distinct):
                    self.columns.append((k, "cat", level))
        if not self.columns:
            raise AnalyticsError("no parameter varies across the cells: nothing to predict from")
        raw = self._raw(params)
        self.mu, self.sd = raw.mean(axis=0), raw.std(axis=0)
        self.sd[self.sd == 0] = 1.0
        return self

    def _raw(self, params: Sequence[Mapping[str, Any]]) -> FloatArray:
        out = np.empty((len(params), len(self.columns)))
        for j, (k, kind, detail) in enumerate(self.columns):
            for i, p in enumerate(params):
                v = p.get(k)
                if kind == "cat":
                    out[i, j] = float(repr(v) == detail)
                else:
                    try:
                        x = float(v)  # type: ignore[arg-type]
                    except (TypeError, ValueError):
                        raise AnalyticsError(f"parameter {k!r} must be numeric, got {v!r}") \
                            from None
                    if kind == "log" and x <= 0:
                        raise AnalyticsError(f"parameter {k!r} must be positive, got {v!r}")
                    out[i, j] = math.log10(x) if kind == "log" else x
        return out

    def check(self, params: Sequence[Mapping[str, Any]]) -> None:
        """Refuse a configuration the cells cannot speak for: an unknown parameter, a missing
        varying one, a category never measured, another value of a parameter the run held
        fixed ("selection": "bogus" was predicted from an all-zero encoding)."""
        numeric = {k for k, kind, _ in self.columns if kind != "cat"}
        varying = {k for k, _, _ in self.columns}
        for p in params:
            unknown = sorted(set(p) - set(self.seen))
            if unknown:
                raise AnalyticsError(f"unknown parameter(s) {', '.join(unknown)}; the cells "
                                     f"have {', '.join(sorted(self.seen))}")
            missing = sorted(varying - set(p))
            if missing:
                raise AnalyticsError(f"give every parameter that varies: missing "
                                     f"{', '.join(missing)}")
            for k, v in p.items():
                if k not in numeric and repr(v) not in self.seen[k]:
                    kept = "held fixed at" if k not in varying else "measured at"
                    raise AnalyticsError(f"parameter {k!r}: {v!r} was never measured (the run "
                                         f"{kept} {', '.join(sorted(self.seen[k]))})")

    def outside(self, params: Mapping[str, Any]) -> tuple[str, ...]:
        """The numeric parameters of a configuration (one :meth:`check` passed) outside the
        measured [min, max], in column order. A category never measured is not here: check
        refuses it, as there is no number to place it by."""
        out = []
        for k, (lo, hi) in self.ranges.items():
            v = float(params[k])
            if not lo <= v <= hi:
                out.append(f"{k}={v:g} outside the measured [{lo:g}, {hi:g}]")
        return tuple(out)

    def transform(self, params: Sequence[Mapping[str, Any]]) -> FloatArray:
        out: FloatArray = (self._raw(params) - self.mu) / self.sd
        return out


def _make(name: str, seed: int) -> Any:
    from sklearn.ensemble import GradientBoostingRegressor
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import PolynomialFeatures

    if name == "gp":
        return _ARDGaussianProcess(GaussianProcessRegressor, RBF, ConstantKernel, WhiteKernel,
                                   seed)
    if name == "boosting":
        return GradientBoostingRegressor(n_estimators=200, max_depth=2, learning_rate=0.05,
                                         subsample=0.8, random_state=seed)
    if name == "ridge":
        return make_pipeline(PolynomialFeatures(2), RidgeCV(alphas=np.logspace(-3, 3, 13)))
    raise AnalyticsError(f"unknown model {name!r}; use auto, gp, boosting or ridge")


class _ARDGaussianProcess:
    """A GP with one length scale per column, fitted to the standardised target."""

    def __init__(self, gpr: Any, rbf: Any, const: Any, white: Any, seed: int) -> None:
        self._parts = (gpr, rbf, const, white)
        self.seed = seed

    def fit(self, x: FloatArray, y: FloatArray) -> _ARDGaussianProcess:
        gpr, rbf, const, white = self._parts
        kernel = (const(1.0, (1e-3, 1e3)) * rbf(np.ones(x.shape[1]), (1e-2, 1e2))
                  + white(0.1, (1e-6, 1e1)))
        self._gp = gpr(kernel=kernel, normalize_y=True, random_state=self.seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self._gp.fit(x, y)
        return self

    def predict(self, x: FloatArray) -> FloatArray:
        out: FloatArray = np.asarray(self._gp.predict(x), dtype=np.float64)
        return out


def _conformal_q(abs_err: FloatArray, level: float) -> float:
    n = abs_err.size
    rank = min(n, math.ceil((n + 1) * level))
    return float(np.sort(abs_err)[rank - 1])


@dataclass(frozen=True, slots=True)
class _Fitted:
    model: Any
    name: str
    q: float
    cv_mae: float


class PerformancePredictor:
    """Predicts a cell's metrics from its parameters (see the module docstring).

    ``fit(params, metrics)``: ``params`` is one dict per observation (a cell, or one replicate of
    a cell: repeat the dict), ``metrics`` maps a metric name to one value per observation.
    ``predict(params)`` answers one ``{metric: MetricPrediction}`` per configuration.
    Learned: ``validation_`` (metric -> :class:`PredictorValidation`; empty with fewer than 8
    configurations or ``holdout=0``) and ``model_`` (metric -> chosen model).
    """

    def __init__(self, level: float = 0.9, model: ModelName = "auto", holdout: float = 0.25,
                 folds: int = 5, seed: int = 0) -> None:
        self.level = level
        self.model = model
        self.holdout = holdout
        self.folds = folds
        self.seed = seed

    def fit(self, params: Sequence[Mapping[str, Any]],
            metrics: Mapping[str, ArrayLike]) -> Self:
        """Validate on held-out configurations, then fit every metric on all of them."""
        check_level(self.level)
        if not 0.0 <= self.holdout < 1.0:
            raise AnalyticsError(f"holdout must be in [0, 1), got {self.holdout}")
        if not metrics:
            raise AnalyticsError("metrics must name at least one metric")
        rows = [dict(p) for p in params]
        groups = np.array([repr(sorted(p.items(), key=lambda kv: kv[0])) for p in rows])
        n_groups = np.unique(groups).size
        if n_groups < 4:
            raise AnalyticsError(f"{n_groups} configurations; the predictor needs at least 4")
        ys = {m: as_series(v, name=m) for m, v in metrics.items()}
        for m, y in ys.items():
            if y.size != len(rows):
                raise AnalyticsError(f"metric {m!r} has {y.size} values for {len(rows)} rows")
        rng = np.random.default_rng(self.seed)
        # one generator per metric, from the seed and the metric's name: a metric's folds (and
        # so its model and interval) are the same whatever other metrics are asked, in any order
        rngs = {m: np.random.default_rng([self.seed, zlib.crc32(m.encode())]) for m in ys}
        uniq = np.unique(groups)
        n_hold = round(self.holdout * uniq.size) if uniq.size >= 8 else 0
        held = set(rng.choice(uniq, size=n_hold, replace=False).tolist()) if n_hold else set()
        test = np.array([g in held for g in groups])
        self.validation_: dict[str, PredictorValidation] = {}
        if held:
            train_rows = [r for r, t in zip(rows, test, strict=True) if not t]
            test_rows = [r for r, t in zip(rows, test, strict=True) if t]
            enc = _Encoder().fit(train_rows)
            xtr, xte = enc.transform(train_rows), enc.transform(test_rows)
            for m, y in ys.items():
                fitted = self._procedure(xtr, y[~test], groups[~test], rngs[m])
                pred = fitted.model.predict(xte)
                err = np.abs(y[test] - pred)
                self.validation_[m] = PredictorValidation(
                    m, fitted.name, uniq.size - len(held), len(held), float(np.mean(err)),
                    float(np.mean(np.abs(y[test] - np.mean(y[~test])))),
                    float(np.mean(err <= fitted.q)), self.level, fitted.cv_mae)
        self._enc = _Encoder().fit(rows)
        x = self._enc.transform(rows)
        self._fitted = {m: self._procedure(x, y, groups, rngs[m]) for m, y in ys.items()}
        self._floor = {m: 0.0 if bool(np.all(y >= 0)) else -math.inf for m, y in ys.items()}
        self.model_ = {m: f.name for m, f in self._fitted.items()}
        return self

    def _procedure(self, x: FloatArray, y: FloatArray, groups: np.ndarray,
                   rng: np.random.Generator) -> _Fitted:
        """Model choice by grouped cross-validation, the conformal quantile, the final fit.

        The models learn from the mean of each configuration's observations (replicates add
        nothing a model of the mean can use, and a Gaussian process costs the cube of its rows);
        the out-of-fold errors are those of every single observation, so the interval covers a
        new observation, not only the mean.
        """
        from threadpoolctl import threadpool_limits

        names = _MODELS if self.model == "auto" else (self.model,)
        uniq, inv = np.unique(groups, return_inverse=True)
        k = max(2, min(self.folds, uniq.size))
        gfold = rng.permutation(uniq.size) % k
        counts = np.bincount(inv).astype(np.float64)
        gy = np.bincount(inv, weights=y) / counts
        gx = np.zeros((uniq.size, x.shape[1]))
        gx[inv] = x
        oof = {n: np.empty(y.size) for n in names}
        with threadpool_limits(1):
            for f in range(k):
                tr, te = gfold != f, gfold[inv] == f
                for n in names:
                    oof[n][te] = _make(n, self.seed).fit(gx[tr], gy[tr]).predict(x[te])
            cv = {n: float(np.mean(np.abs(y - oof[n]))) for n in names}
            best = min(names, key=lambda n: cv[n])
            q = _conformal_q(np.abs(y - oof[best]), self.level)
            return _Fitted(_make(best, self.seed).fit(gx, gy), best, q, cv[best])

    def predict(self, params: Sequence[Mapping[str, Any]]) -> list[dict[str, MetricPrediction]]:
        """The predicted metrics of each configuration, with intervals at ``level``, each
        naming the parameters outside the measured cells (:attr:`MetricPrediction.extrapolation`;
        the numbers are the model's, flagged, never altered)."""
        if not hasattr(self, "_fitted"):
            raise NotFittedError("PerformancePredictor.predict called before fit")
        rows = [dict(p) for p in params]
        self._enc.check(rows)
        x = self._enc.transform(rows)
        outside = [self._enc.outside(r) for r in rows]
        # a metric never negative in the cells (a time, a size) is not predicted below 0
        means = {m: np.maximum(f.model.predict(x), self._floor[m])
                 for m, f in self._fitted.items()}
        return [{m: MetricPrediction(m, float(means[m][i]),
                                     float(max(means[m][i] - f.q, self._floor[m])),
                                     float(means[m][i] + f.q), self.level, f.name,
                                     outside[i])
                 for m, f in self._fitted.items()} for i in range(x.shape[0])]
