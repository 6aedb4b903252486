"""How well the anomaly detector's tails are calibrated, per noise and statistic column.

Run: ``PYTHONPATH=src .venv/bin/python benchmarks/anomaly_tail_calibration.py [--series 64]
[--seed 11] [--noise student_t,lognormal,gaussian] [--columns 0,1]``.

For every refit of a column's tail on the anomaly-free series of the synthetic benchmark (the
same pipeline, learning period and checkpoints as :func:`detect_series`), the fitted
threshold at the default risk (the value scored 0.5) is compared with that column's true
quantile at the same risk, read from 300 more series of the same noise (the reference). The
table gives, by how far into the series the refit is:

* ``q fit``: the median fitted threshold, against ``q true``;
* ``q ref`` and ``xi ref``: the threshold and the GPD shape that the same fit gives on the
  whole reference sample (what unlimited data would say from the 90% quantile): ``q ref``
  far from ``q true`` is a model error (the tail above the 90% quantile is not the far
  tail), ``q fit`` far from ``q ref`` one of the fit on few peaks;
* ``xi``: the mean fitted GPD shape;
* ``exceed / risk``: the mean true probability of exceeding the fitted threshold over the
  risk. 1 is a calibrated tail, above 1 a source of false alarms, below 1 of missed events.

The columns are 0 spike up, 1 spike down, 2 shift up, 3 shift down, 4 variance, 5 drift up,
6 drift down, 7 heavy var (the heavy-tail variance, which scores in place of 4 where a spike
column weighs heavy). The comparison means most for the spike columns, whose values are nearly
independent from point to point and alike across series. The variance and drift statistics are
autocorrelated (their false alarms come in excursions, not single points), and the drift
statistic is measured against each series' own learning level. For those, a quantile pooled
over 300 series is not each series' truth, and ``exceed / risk`` overstates their false alarms.
``docs/analytics.md`` (the Student-t(3) paragraph) quotes this table.

The replay reports the GPD refits and, for the spike columns, the half-t refits (``tail.py``,
weighed columns: the tail until 300 values are seen and where it is judged heavy; its ``xi`` is
the posterior mean of ``1 / degrees of freedom``, the shape of a GPD with the same tail).
Once 300 values are seen, a spike column whose tail is judged light takes a normal tail
instead: a stage where every series did so prints no figures, and one where some did averages
over the others. The replay fits a GPD to every other column. Where the detector reads a right-skewed noise's spike-up
statistic in logs with a normal tail (``SeriesDetection.skewed``: most lognormal series), the
spike-up rows describe the GPD it no longer uses there.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from allele.analytics.anomaly import DEFAULT_LEARN, detect_series, signed_statistics
from allele.analytics.anomaly.series import _GATED_COLUMNS as GATED
from allele.analytics.anomaly.series import _HEAVY_VARIANCE as HEAVY_VARIANCE
from allele.analytics.anomaly.series import _WEIGHED_COLUMNS as WEIGHED
from allele.analytics.anomaly.series import _ZS_COLUMNS as ZS
from allele.analytics.anomaly.tail import GpdTail, StudentTail, fit_tail, spot_scores
from allele.analytics.synthetic import clean_series

RISK = 1e-4
WINDOW, SHORT = 48, 5  # detect_series' defaults for a 150-point learning period
NAMES = ("spike up", "spike down", "shift up", "shift down", "variance", "drift up", "drift down",
         "heavy var")
STAGES = ((0, 100, "first 100 scored points"), (100, 350, "points 100-350"),
          (350, 10**9, "points 350-850"))


def replay(values: np.ndarray
           ) -> tuple[np.ndarray, list[tuple[int, int, GpdTail | StudentTail]]]:
    """The detector's column scores of one series and every tail it fitted on the way."""
    cols = signed_statistics(values)
    tails: list[tuple[int, int, GpdTail | StudentTail]] = []
    scores = spot_scores(cols, WINDOW + 2 * SHORT, DEFAULT_LEARN, RISK, gated=GATED,
                         zhang_stephens=ZS, weighed=WEIGHED, alternate=HEAVY_VARIANCE,
                         tails=tails)
    return scores, tails


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", type=int, default=64, help="anomaly-free series per noise")
    ap.add_argument("--seed", type=int, default=11, help="seed + 1 seeds the series, as in "
                    "anomaly_accuracy.py's clean series")
    ap.add_argument("--noise", default="student_t,lognormal,gaussian")
    ap.add_argument("--columns", default="0,1")
    args = ap.parse_args()
    columns = [int(c) for c in args.columns.split(",")]
    print(f"{args.series} anomaly-free series per noise (seed {args.seed + 1}), 1000 points; "
          f"risk {RISK:g} per column; reference: 300 series (seed 99), points 200-1000")
    print(f"{'noise':10s} {'column':10s} {'refits':24s} {'q fit':>6s} {'q ref':>6s} {'q true':>6s} "
          f"{'xi':>5s} {'xi ref':>6s} {'exceed / risk':>13s}")
    for noise in args.noise.split(","):
        t0 = time.perf_counter()
        ref = np.concatenate([signed_statistics(v)[200:]
                              for v in clean_series(300, seed=99, noise_kind=noise)])
        series = clean_series(args.series, seed=args.seed + 1, noise_kind=noise)
        first = next((v for v in series if not detect_series(v).skewed), None)
        scores, _ = replay(first) if first is not None else (None, None)
        own = detect_series(first).scores if first is not None else None
        if own is not None and not np.array_equal(np.clip(np.max(scores, axis=1), 0.0, 1.0),
                                                  own):
            raise SystemExit("the replay no longer matches detect_series: update this script")
        fits = [(lo - DEFAULT_LEARN, j, tail) for v in series for lo, j, tail in replay(v)[1]]
        for j in columns:
            truth = np.sort(ref[:, j][np.isfinite(ref[:, j])])
            q_true = float(np.quantile(truth, 1.0 - RISK))
            ref_tail = fit_tail(truth, 0.25, "zs" if j in ZS else "pwm")
            q_ref, xi_ref = ref_tail.quantile(RISK), ref_tail.xi
            for a, b, label in STAGES:
                sel = [t for pos, c, t in fits if c == j and a <= pos < b]
                if not sel:  # every series judged this column's tail light (a normal fit)
                    print(f"{noise:10s} {NAMES[j]:10s} {label:24s} no refit: normal tails")
                    continue
                q = np.array([t.quantile(RISK) for t in sel])
                exceed = 1.0 - np.searchsorted(truth, q, side="right") / truth.size
                print(f"{noise:10s} {NAMES[j]:10s} {label:24s} {np.median(q):6.2f} "
                      f"{q_ref:6.2f} {q_true:6.2f} {np.mean([t.xi for t in sel]):5.2f} {xi_ref:6.2f} "
                      f"{np.mean(exceed) / RISK:13.2f}")
        print(f"({noise}: {time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
