"""Read models of the dashboards and regression alerts, on the golden fixture store (eight runs
with a step change at golden-05 and a failed cell in golden-08)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from allele.bench import views
from allele.bench.alerting import (
    change_alerts,
    comparison_alerts,
    identity_fingerprint,
    raise_regressions,
)
from allele.bench.history import recent_history
from allele.bench.regress import analyse_runs
from allele.config import load_settings
from allele.errors import ValidationError
from allele.store import ResultStore, open_store
from allele.store.alerts import list_alerts

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "store.db"
EVO = 'evolution|{"generations":20,"population_size":250}'


@pytest.fixture
def golden(tmp_path: Path) -> Iterator[ResultStore]:
    shutil.copyfile(GOLDEN, tmp_path / "store.db")
    st = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    yield st
    st.close()


def test_run_list_filters_and_pages(golden: ResultStore) -> None:
    assert views.run_list(golden)["total"] == 8
    page = views.run_list(golden, limit=3, offset=2)
    assert [r["name"] for r in page["runs"]] == ["golden-06", "golden-05", "golden-04"]
    assert [r["name"] for r in views.run_list(golden, text="08")["runs"]] == ["golden-08"]
    assert views.run_list(golden, status="running")["total"] == 0
    with pytest.raises(ValidationError, match="status"):
        views.run_list(golden, status="bogus")


def test_run_overview_heatmap_and_cell(golden: ResultStore) -> None:
    ov = views.run_overview(golden, "golden-08")
    assert ov["run"]["failed"] == 1
    targets = {t["target"]: t for t in ov["targets"]}
    assert targets["evolution"]["varying"] == ["population_size"]
    failed = [c for c in ov["cells"] if c["status"] != "ok"]
    assert failed[0]["error"].startswith("ValueError")
    detail = views.cell_detail(golden, "golden-08", EVO)
    assert len(detail["samples"]["wall_s"]["value"]) == 12
    assert detail["medians"]["wall_s"] == pytest.approx(
        sorted(detail["samples"]["wall_s"]["value"])[5:7][0], rel=0.2)
    with pytest.raises(ValidationError, match="parameter"):
        views.run_heatmap(golden, "golden-08", "wall_s", "population_size", "nope", "evolution")
    grid = views.run_heatmap(golden, "golden-08", "wall_s", "population_size", "generations",
                             "evolution")
    assert grid["xs"] == [50, 250] and grid["ys"] == [20]


def test_cell_history_marks_the_step_and_its_noise_bands(golden: ResultStore) -> None:
    h = views.cell_history(golden, EVO, "wall_s")
    assert [r["name"] for r in h["runs"]][:2] == ["golden-01", "golden-02"]
    (cp,) = h["change_points"]
    assert cp["run"] == "golden-05" and cp["magnitude"] == pytest.approx(0.263, abs=0.01)
    before, after = h["segments"]
    assert before["end"] == after["start"] == 4
    assert before["low"] < before["mean"] < before["high"] < after["mean"]


def test_comparison_alerts_carry_verdict_cause_and_identity(golden: ResultStore) -> None:
    comp = views.run_comparison(golden, "golden-04", "golden-08")
    rows = comparison_alerts(comp, lambda metric: f"cause of {metric}")
    assert {r.labels["metric"] for r in rows} == {"wall_s", "cpu_user_s"}
    r = next(x for x in rows if x.labels["metric"] == "wall_s")
    assert r.identity == {"base": comp.base.id, "head": comp.head.id, "cell": EVO,
                          "metric": "wall_s"}
    assert r.fingerprint == identity_fingerprint(comp.base.id, comp.head.id, EVO, "wall_s")
    assert r.annotations["verdict"].startswith("regressed: +")
    assert r.annotations["root_cause"] == "cause of wall_s"


def test_regressions_alert_once_per_identity(golden: ResultStore) -> None:
    history = recent_history(golden)
    report = analyse_runs(history)
    rows = change_alerts(report, history)
    assert rows and all(r.identity["head"] == golden.resolve_run("golden-05") for r in rows)
    assert all(r.identity["base"] == golden.resolve_run("golden-04") for r in rows)
    settings = load_settings(notify={})
    first = raise_regressions(golden, rows, settings)
    again = raise_regressions(golden, rows, settings)
    assert (first.raised, first.known, again.raised, again.known) == (len(rows), 0, 0, len(rows))
    assert len(list_alerts(golden, source="regression")) == len(rows)
    assert "already raised before" in again.line()
