"""Fixtures of the fault tests: a fresh MLflow SQLite database per test (a copy of the session's
migrated template, see tests/conftest.py) and one real ``mlflow server`` per session."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.servers import Server, free_port

os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"


@pytest.fixture
def mlflow_db(mlflow_template: Path, tmp_path: Path) -> str:
    """A fresh MLflow SQLite tracking URI for this test (a copy of the template): no process
    has opened it yet, so a forked child may be the first."""
    db = tmp_path / "mlflow" / "mlflow.db"
    db.parent.mkdir()
    shutil.copyfile(mlflow_template, db)
    return f"sqlite:///{db}"


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One real ``mlflow server`` for the fault tests of the session (restarted by tests that
    kill it)."""
    srv = Server(tmp_path_factory.mktemp("mlflow-server"), free_port())
    srv.start()
    yield srv
    srv.kill()
