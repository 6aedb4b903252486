"""Sanity checks that a fitted model's forecast can be shown at all (:func:`degenerate_reason`).

A maximum-likelihood ARIMA fit can converge to a degenerate model and still report success: on
25 points of a memory metric rising smoothly from 86.4 to 88.1 MB, an ARIMA(2,1,2) chosen by AIC
forecast values alternating between 1.8e6 and 8.8e7 with intervals of zero width. AIC compares
likelihoods, not forecasts, so such a model can win the order search. These checks look at the
forecast path itself; a model that fails one is refused and the next candidate (in the end a
baseline) is used, with the refusal named.
"""

from __future__ import annotations

import numpy as np

from allele.analytics._common import FloatArray

__all__ = ["degenerate_reason"]


def degenerate_reason(y: FloatArray, mean: FloatArray, lower: FloatArray,
                      upper: FloatArray) -> str | None:
    """Why the forecast ``mean`` (with its interval) of the series ``y`` cannot be trusted, or
    None when it passes.

    * **non-finite**: NaN or infinity anywhere in the path or the interval;
    * **zero-width interval**: some step's interval narrower than 1e-6 of the series' range (a
      variance estimate collapsed to 0: the model claims certainty no data supports);
    * **explosive**: the path leaves the series' range widened by the range itself plus the
      largest drift the series has shown (its mean step, extended over the horizon);
    * **oscillating**: at least 80% of the forecast's steps change sign against the previous
      step, and the steps in the last half of the horizon are still as large as a typical step
      of the series (a damped alternation that fades is allowed; one that persists is an
      artefact of a negative autoregressive root, not a property of the data).

    Checked on the non-seasonal part of a forecast: a season added back may alternate
    legitimately (period 2).
    """
    if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(lower))
            and np.all(np.isfinite(upper))):
        return "non-finite forecast or interval"
    span = float(np.ptp(y))
    if span == 0.0:
        return None
    if np.any(upper - lower <= 1e-6 * span):
        return "zero-width interval"
    h = np.arange(1, mean.size + 1, dtype=np.float64)
    drift = abs(float(np.mean(np.diff(y)))) if y.size > 1 else 0.0
    lo = float(np.min(y)) - span - drift * h
    hi = float(np.max(y)) + span + drift * h
    if np.any(mean < lo) or np.any(mean > hi):
        return "explosive forecast"
    steps = np.diff(np.concatenate([[y[-1]], mean]))
    if steps.size >= 4:
        flips = np.sign(steps[1:]) * np.sign(steps[:-1]) < 0
        typical = float(np.median(np.abs(np.diff(y)))) if y.size > 2 else 0.0
        late = float(np.mean(np.abs(steps[steps.size // 2:])))
        if np.mean(flips) >= 0.8 and typical > 0 and late >= typical:
            return "oscillating forecast"
    return None
