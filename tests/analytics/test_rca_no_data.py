"""Telemetry rca and a candidate with no data near the anomaly: read at the target's timestamps,
a candidate no longer recorded repeats its last value, and the rounding of the means of that
repeated value was once named the cause ("flat changed at 330 ... by -7.11e-14 (20.0 sigma,
z=11.1)")."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from allele.analytics.rca import rank_metric_causes
from allele.bench.diagnose import metric_root_causes
from allele.observe.metrics import MetricPoint
from allele.store import open_store

LAST = 20.60240338637647  # the last value of the 239-point series of the report


def _series(seed: int = 7) -> dict[str, np.ndarray]:
    """A 400-point target that shifts at 350, a cause that shifts at 340, and ``flat``: 240
    noisy points around 19, then its last value carried forward to the end."""
    rng = np.random.default_rng(seed)
    target = rng.normal(10, 1, 400)
    target[350:] += 8
    cause = rng.normal(5, 1, 400)
    cause[340:] += 10
    flat = np.full(400, LAST)
    flat[:239] = rng.normal(19, 0.7, 239)
    return {"tgt": target, "cause": cause, "flat": flat}


def test_a_carried_forward_candidate_is_listed_as_no_data_not_as_a_cause() -> None:
    ranked = rank_metric_causes(_series(), 350, "tgt")
    assert [(c.kind, c.name, c.score) for c in ranked] == [
        ("metric", "cause", ranked[0].score), ("no data", "flat", 0.0)]
    assert ranked[0].details["onset"] == 340
    assert ranked[1].evidence == (
        "flat: no data near the anomaly: constant at 20.6024 from 330 to 350 (a last value "
        "carried forward, or a metric that did not move), so not a cause")
    assert ranked[1].details == {"constant": LAST, "from": 330, "to": 350}


def test_a_change_below_floating_point_resolution_is_no_change() -> None:
    metrics = _series()
    flat = metrics["flat"]
    flat[340:] = np.nextafter(LAST, 0.0)  # one ulp lower from 340: rounding, not a change
    ranked = rank_metric_causes({"tgt": metrics["tgt"], "flat": flat}, 350, "tgt")
    assert [(c.kind, c.name) for c in ranked] == [("no data", "flat")]


def test_metric_root_causes_answer_with_only_a_stale_candidate(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 't.db'}"
    s = _series()
    ts = 1_700_000_000 + 10.0 * np.arange(400)
    pts = [MetricPoint(name, "svc", (), float(t), float(v))
           for name in ("tgt", "cause") for t, v in zip(ts, s[name], strict=True)]
    # flat stopped being recorded after its 239th point
    pts += [MetricPoint("flat", "svc", (), float(t), float(v))
            for t, v in zip(ts[:240], s["flat"][:240], strict=True)]
    with open_store(url) as st:
        st.write_metric_points(pts)
    with open_store(url, read_only=True) as st:
        only = metric_root_causes(st, "tgt", ["flat"], at=ts[350])
        both = metric_root_causes(st, "tgt", ["flat", "cause"], at=ts[350])
    assert only.status == "no clear cause"
    assert only.message.startswith("no clear cause: no candidate changed significantly")
    assert [(c.kind, c.name) for c in only.causes] == [("no data", "flat")]
    assert both.status == "cause"
    assert both.message.startswith("cause moved first: cause changed at 340")
    assert [c.name for c in both.causes] == ["cause", "flat"]
