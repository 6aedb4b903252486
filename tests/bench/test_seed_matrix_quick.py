"""The main job (`make run`'s quick preset of the seed matrix) run through the CLI as a user runs
it: the evolution and Kraken cells, and the agent cells on the bundled model. Kept apart from
``test_runner.py`` so that the suite's two workers can share the long runs."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from allele.store import open_store
from tests.bench.test_runner import ROOT, _cli


@pytest.mark.slow
def test_seed_matrix_quick_preset_end_to_end(tmp_path: Path) -> None:
    """The `make run` command minus the agent (its own llm-marked test below)."""
    url = f"sqlite:///{tmp_path / 'q.db'}"
    out = subprocess.run(
        _cli("run", str(ROOT / "benchmarks" / "seed-matrix.yaml"), "--preset", "quick",
             "--store", url, "--name", "quick", "--workers", "2",
             "--filter", "benchmark=evolution", "--filter", "benchmark=kraken"),
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    with open_store(url) as st:
        rec = st.load_run("quick")
    assert rec.info.status == "finished" and len(rec.cells) == 10
    assert all(c.status == "ok" for c in rec.cells), [c.error for c in rec.cells]
    for c in rec.cells:
        if c.target == "kraken":
            assert all(v < 0.2 for v in c.values("nrmse"))
        else:
            assert all(0.8 < v <= 1.0 for v in c.values("best_fitness"))
            # seed 0 counted under callgrind after the timed phase (the quick preset's choice)
            assert [s.seed for s in c.samples if s.metric == "instructions"] == [0]
            assert c.values("instructions")[0] > 1e7
        assert len(c.values("wall_s")) == 12  # the quick preset's twelve seeds
    assert "kraken: median, IQR and 95% CI" in out.stdout


@pytest.mark.slow
@pytest.mark.llm
def test_seed_matrix_quick_agent_cells(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    out = subprocess.run(
        _cli("run", str(ROOT / "benchmarks" / "seed-matrix.yaml"), "--preset", "quick",
             "--store", url, "--name", "agent", "-q", "--filter", "benchmark=agent"),
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    with open_store(url) as st:
        rec = st.load_run("agent")
    assert len(rec.cells) == 2
    assert all(c.status == "ok" for c in rec.cells), [c.error for c in rec.cells]
    assert all(c.values("success") == [1.0, 1.0] for c in rec.cells)  # two seeds each
