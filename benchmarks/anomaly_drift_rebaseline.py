"""Flagged points of the weekly co2 series (benchmarks/data/public) under two preprocessings.

Run: ``PYTHONPATH=src .venv/bin/python benchmarks/anomaly_drift_rebaseline.py``. The 59 missing
weeks are carried forward (as ``benchmarks/realdata.py`` does) or linearly interpolated, and the
series is scored with learning periods of 150 to 500 points. Printed per case: the flagged
points of the 2,284, by the statistic that scored highest, whether a trend was learned and
where the drift statistic's reference was fitted again (``SeriesDetection.rebased``; see
docs/analytics.md, "Drift re-baseline"). Before the re-baseline the drift statistic flagged
1,848 points of the interpolated series with 150 learning points.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from allele.analytics.anomaly import STATISTICS, detect_series

sys.path.insert(0, str(Path(__file__).resolve().parent))
import realdata


def co2_variants() -> dict[str, np.ndarray]:
    """co2 with its missing weeks carried forward and linearly interpolated."""
    _, raw = realdata._read_csv(realdata.DATA / "public" / "co2.csv")
    keep = np.isfinite(raw)
    idx = np.arange(raw.size)
    interp = np.interp(idx, idx[keep], raw[keep])[int(np.argmax(keep)):]
    return {"forward-filled": realdata.public_series()["co2"].values, "interpolated": interp}


def main() -> None:
    for name, values in co2_variants().items():
        for learn in (150, 300, 400, 500):
            t0 = time.perf_counter()
            det = detect_series(values, learn=learn)
            top = np.argmax(det.statistics[det.flags], axis=1) if det.flags.any() else []
            counts = np.bincount(np.asarray(top, dtype=np.intp), minlength=4)
            by = ", ".join(f"{s} {int(c)}" for s, c in zip(STATISTICS, counts, strict=True))
            print(f"co2 {name:14s} learn {learn}: {int(det.flags.sum()):5d} of {values.size} "
                  f"flagged ({by}); trend {'learned' if det.trend else 'none'}; "
                  f"re-baselined at {list(det.rebased)} ({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
