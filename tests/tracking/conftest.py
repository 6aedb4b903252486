"""Shared MLflow fixtures: one SQLite tracking database per test session (its schema migration
is the slow part), a fresh experiment name and spool file per test."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"


@pytest.fixture(scope="session")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory, mlflow_template: Path) -> str:
    """A migrated SQLite tracking/registry database shared by the session (a copy of the
    session's template, see tests/conftest.py)."""
    db = tmp_path_factory.mktemp("mlflow") / "mlflow.db"
    shutil.copyfile(mlflow_template, db)
    return f"sqlite:///{db}"


@pytest.fixture
def client(mlflow_uri: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=mlflow_uri, registry_uri=mlflow_uri)


@pytest.fixture
def experiment(request: pytest.FixtureRequest) -> str:
    """A fresh experiment name for this test."""
    return f"{request.node.name[:40]}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def spool_path(tmp_path: Path) -> Path:
    return tmp_path / "spool" / "tracking-spool.jsonl"


@pytest.fixture
def tracker(mlflow_uri: str, experiment: str, spool_path: Path) -> Iterator[Any]:
    """A tracker on the session database that writes only when flushed (interval 1 h)."""
    from allele.tracking.mlflow import MlflowTracker

    tr = MlflowTracker(mlflow_uri, experiment, spool_path=spool_path, flush_interval_s=3600)
    yield tr
    tr.close()


def runs_of(client: Any, experiment: str) -> list[Any]:
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"experiment {experiment} was not created"
    return list(client.search_runs([exp.experiment_id], max_results=1000))
