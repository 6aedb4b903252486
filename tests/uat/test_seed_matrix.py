"""Scenario 2: a user runs the seed matrix twice, tracked in MLflow, and reads the results."""

from __future__ import annotations

import re
import shutil

import pytest

from tests.uat.conftest import REPO, User

pytestmark = [pytest.mark.uat, pytest.mark.slow]


def test_seed_matrix_run_show_compare_report_and_mlflow(user: User) -> None:
    shutil.copy(REPO / "benchmarks" / "seed-matrix.yaml", user.home / "seed-matrix.yaml")
    mlflow_uri = f"sqlite:///{user.home / 'mlflow.db'}"
    args = ("bench", "run", "seed-matrix.yaml", "--preset", "quick",
            "--filter", "benchmark=evolution", "--filter", "population_size=50",
            "--filter", "population_size=250",
            "--mlflow", mlflow_uri)
    first = user.ok(*args, "--name", "monday")
    assert "tracked in MLflow" in first.err
    second = user.ok(*args, "--name", "tuesday", "--report", "tuesday.html")

    # what ran: the quick preset's smallest evolution cells (the others, and Kraken's, take the
    # same path, slower)
    shown = user.ok("bench", "show", "tuesday", "--metric", "wall_s")
    assert "evolution" in shown.out and "population_size" in shown.out
    assert "selection=" in shown.out and "4 cells, 0 failed" in shown.out
    listed = user.ok("bench", "list")
    assert "monday" in listed.out and "tuesday" in listed.out

    # identical code twice: compare finds no regression (exit 0) and says why where it cannot
    compared = user.allele("bench", "compare", "monday", "tuesday")
    assert compared.code == 0, compared.out + compared.err
    assert not re.search(r"\b[1-9]\d* regressed", compared.out), compared.out

    # the report of the second run, against the first
    html = (user.home / "tuesday.html").read_text()
    assert "monday" in html and "tuesday" in html
    assert "evolution" in html and "population_size" in html
    assert "report written to" in second.err

    # MLflow holds both runs, each with one child per cell and its samples
    from mlflow import MlflowClient

    client = MlflowClient(mlflow_uri)
    exp = client.get_experiment_by_name("allele")
    assert exp is not None
    runs = client.search_runs([exp.experiment_id], max_results=500)
    parents = {r.info.run_name: r for r in runs if r.data.tags.get("allele.kind") == "matrix"}
    assert set(parents) == {"monday", "tuesday"}
    tuesday = parents["tuesday"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == tuesday.info.run_id]
    assert len(children) == int(tuesday.data.metrics["cell_count"]) > 0
    assert all(r.info.status == "FINISHED" for r in children)
    assert all("wall_s.median" in r.data.metrics for r in children)
