"""The run-level model on a real history: twelve runs of unchanged code recorded on the
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

from allele.bench.compare import compare_runs
from allele.bench.history import History
from allele.store.model import CellResult, RunInfo, RunRecord, Sample

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
