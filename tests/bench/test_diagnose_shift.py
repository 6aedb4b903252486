"""``root_causes``: a common shift is reported only when the named parameter does not explain
it, and comparing a run with itself is a plain error."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from allele.bench.diagnose import root_causes
from allele.errors import AnalyticsError
from allele.store import open_store
from tests.bench.diagnose_stores import store_runs

CELLS = [{"population": p, "mutation_rate": m, "crossover": c}
         for p, m, c in itertools.product([50, 100, 250], [0.01, 0.05, 0.1], ["blend", "sbx"])]


def _runs(tmp_path: Path, everyone: float) -> str:
    rng = np.random.default_rng(5)
    base = np.exp(rng.normal(0, 0.1, len(CELLS)))
    sbx = np.array([1.5 if c["crossover"] == "sbx" else 1.0 for c in CELLS])
    head = base * sbx * everyone * np.exp(rng.normal(0, 0.02, len(CELLS)))
    url = f"sqlite:///{tmp_path / 'r.db'}"
    store_runs(url, CELLS, [("base", base, {}), ("head", head, {})])
    return url


@pytest.mark.parametrize(("everyone", "shift_reported"), [(1.0, False), (1.3, True)])
def test_common_shift_only_when_the_parameter_does_not_explain_it(
        tmp_path: Path, everyone: float, shift_reported: bool) -> None:
    url = _runs(tmp_path, everyone)
    with open_store(url, read_only=True) as st:
        res = root_causes(st.load_run("base"), st.load_run("head"))
    assert res.status == "cause" and res.causes[0].name == "crossover"
    assert ("moved together" in res.message) is shift_reported
    assert any(c.kind == "shift" for c in res.causes) is shift_reported


def test_the_same_run_twice_is_a_plain_error(tmp_path: Path) -> None:
    url = _runs(tmp_path, 1.0)
    with open_store(url, read_only=True) as st:
        rec = st.load_run("base")
        with pytest.raises(AnalyticsError, match=r"^the same run twice \(base\)"):
            root_causes(rec, st.load_run("base"))
