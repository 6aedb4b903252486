"""The run-level model on a real history, and what a history's record of identical code does to
a p-value.

The real history: twelve runs of unchanged code recorded on the
project's shared VM (``data/bimodal_cell_history.json``, exported runs of a user's sort and
allocation benchmarks: six runs, then four A/A calibration pairs' first three).

One cell (a pure-Python sort of 20,000 items) switches between a fast mode (about 6 M items/s)
and a slow one (about 2.6 M items/s), in blocks of seeds. In the last pair, five of six seeds of
BASE ran fast and five of six of HEAD slow: the six winsorized paired ratios agree closely, so
the pair's own sampling variance is tiny. Its history's changes from run to run were far larger,
and the comparison read ``items_per_s -54.8 %, q = 9e-8`` on identical code until the pair was
held to them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from allele.bench.compare import compare_runs
from allele.bench.estimate import V_INCONCLUSIVE, V_REGRESSED, judge
from allele.bench.history import History
from allele.bench.runlevel import history_variance, locations, run_steps
from allele.store.model import CellResult, MetricHistory, RunInfo, RunRecord, Sample

DATA = Path(__file__).parent / "data" / "bimodal_cell_history.json"


def _record(doc: dict) -> RunRecord:
    r = doc["run"]
    info = RunInfo(id=r["id"], name=r["name"], spec_name=r["spec_name"], target=r["target"],
                   status=r["status"], created_at=r["created_at"], finished_at=r["finished_at"],
                   spec=r["spec"] or {}, environment={}, cell_count=r["cell_count"],
                   failed_count=r["failed_count"])
    cells = [CellResult(c["key"], c["target"], c["params"], c["status"],
                        [Sample(s["metric"], float(s["value"]), s["seed"], s["repeat"])
                         for s in c["samples"]]) for c in doc["cells"]]
    return RunRecord(info, cells)


def test_a_mode_switching_cell_is_not_a_regression_on_identical_code() -> None:
    runs = [_record(d) for d in json.loads(DATA.read_text(encoding="utf-8"))]
    base, head = runs[-2], runs[-1]
    comp = compare_runs(base, head, history=History.from_records(runs))
    row = next(r for r in comp.rows if r.metric == "items_per_s"
               and r.params == {"n": 20000, "variant": "python"})
    assert 0.40 < row.estimate.ratio < 0.50  # the pair's own evidence: 2.2x slower
    assert row.run_level == "history"
    assert row.estimate.verdict == "inconclusive"
    assert not comp.by_verdict("regressed") and not comp.by_verdict("improved")


def test_a_change_the_history_saw_identical_code_make_is_not_certain() -> None:
    """``judge``'s ``null``: a row's p-value is at least the share of the history's outlying
    changes of identical code that reach its size (up to 1.25x theirs in log size)."""
    est = np.array([np.log(2.0)] + [0.0] * 49)
    kw = {"worse": 1.0, "floor": 0.05, "var_between": 4e-4, "df_between": 200.0}
    alone = judge(est, np.full(50, 1e-4), np.full(50, 20.0), **kw)
    assert alone.verdict[0] == V_REGRESSED and alone.p[0] < 1e-12
    # 200 changes of identical code, two of them a cell running 2x slower for one run
    null = np.zeros(200)
    null[:2] = np.log(2.0)
    seen = judge(est, np.full(50, 1e-4), np.full(50, 20.0), null=null[None, :], **kw)
    assert seen.verdict[0] == V_INCONCLUSIVE and abs(seen.p[0] - 0.01) < 1e-12
    beyond = judge(est * 2.0, np.full(50, 1e-4), np.full(50, 20.0), null=null[None, :], **kw)
    assert beyond.verdict[0] == V_REGRESSED  # 4x: beyond anything the history shows

    # history_variance finds such a run: 20 quiet cells x 8 runs, one cell 2x slower in run 4;
    # another cell with a real step at run 6 (one large change) stays out of the record
    rng = np.random.default_rng(5)
    loc = rng.normal(0.0, 0.02, size=(20, 8))
    loc[3, 4] += np.log(2.0)
    loc[7, 6:] += np.log(1.5)
    step = np.concatenate([np.full((20, 1), np.nan), np.diff(loc, axis=-1)], axis=-1)
    hist = history_variance(step, np.full((20, 8), 2e-4), shifted=True)
    outlying = hist.null[np.isfinite(hist.null) & (hist.null > 0)]
    assert outlying.size == 1 and abs(outlying[0] - np.log(2.0)) < 0.1


def test_run_steps_pair_samples_by_seed_and_repeat() -> None:
    """A history's change from one run to the next pairs samples by (seed, repeat) whatever
    their order, so each seed's own offset cancels; with fewer than 2 pairs it is the difference
    of the runs' locations; a run with a non-positive sample has none."""
    offset = {0: 1.0, 1: 2.0, 2: 4.0}  # seeds far apart: unpaired, they would swamp 10%
    runs = [[(0, 0, 1.0), (1, 0, 1.0), (2, 0, 1.0)],
            [(2, 0, 1.1), (0, 0, 1.1), (1, 0, 1.1)],  # 10% slower, saved in another order
            [(3, 0, 1.0), (4, 0, 1.0)],  # no seed in common with the run before
            [(3, 0, 1.0), (4, 0, -1.0)]]
    vals, seeds, reps, offs = [], [], [], [0]
    for r in runs:
        for s, rep, f in r:
            vals.append(offset.get(s, 1.0) * f)
            seeds.append(s)
            reps.append(rep)
        offs.append(len(vals))
    k = len(runs)
    series = MetricHistory("k", "wall_s", [f"r{i}" for i in range(k)], [f"r{i}" for i in range(k)],
                           np.arange(k, dtype=float), ["finished"] * k, np.array(offs),
                           np.array(vals), np.array(seeds), np.array(reps))
    est, var = run_steps(series)
    assert np.isnan(est[0]) and abs(est[1] - np.log(1.1)) < 1e-12 and var[1] < 1e-20
    own, _ = locations(np.log(np.array([[1.1, 2.2, 4.4], [1.0, 1.0, np.nan]])))
    assert abs(est[2] - (own[1] - own[0])) < 1e-12
    assert np.isnan(est[3]) and np.isnan(var[3])
