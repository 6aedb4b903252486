"""The reproduction of issue 16, item 1, against a real ``mlflow server``: the server is killed
with ``kill -9`` mid-run, then the runner and its workers; the server restarts, the run is
resumed with ``--mlflow`` and the spool synced. Every stored cell must then be in MLflow exactly
once, as one child of one parent run (it used to be 22 of 24, split over two parents)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from allele.errors import StoreError
from allele.store import open_store
from tests.faults.invariants import mlflow_problems, store_problems
from tests.faults.processes import Cli, left_behind
from tests.faults.servers import Server

pytestmark = pytest.mark.slow


def _stored(url: str) -> int:
    if not Path(url[len("sqlite:///"):]).exists():
        return 0
    try:
        with open_store(url, read_only=True) as st:
            runs = st.list_runs()
    except StoreError:  # the runner is creating it: no schema yet
        return 0
    return runs[0].cell_count if runs else 0


def _wait_stored(url: str, n: int, proc: Cli) -> None:
    deadline = time.monotonic() + 180
    while _stored(url) < n:
        assert time.monotonic() < deadline and proc.returncode is None, proc.output
        time.sleep(0.02)


def test_server_then_runner_killed_lose_no_cell(mlflow_server: Server, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    spec = tmp_path / "spec.yaml"
    spec.write_text("name: crash\ntarget: tests.faults.targets:sleeps\nseeds: 1\n"
                    "matrix: {a: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], b: [x, y]}\n"
                    "fixed: {s: 0.1}\n")
    url = f"sqlite:///{tmp_path / 'results.db'}"
    mark = f"crash-{tmp_path}"
    env = {"ALLELE_DATA_DIR": str(tmp_path / "data"), "ALLELE_FAULT_MARK": mark}
    args = ["--store", url, "--mlflow", mlflow_server.url, "--experiment", "crash", "-q",
            "--workers", "2"]
    runner = Cli(["bench", "run", str(spec), *args], cwd=tmp_path, out=tmp_path / "run.out",
                 env=env)
    _wait_stored(url, 6, runner)
    mlflow_server.kill()
    _wait_stored(url, 14, runner)
    os.killpg(runner.pid, signal.SIGKILL)  # the runner and its workers
    assert runner.wait() == -9
    assert left_behind(mark) == []
    assert 14 <= _stored(url) < 24
    mlflow_server.start()
    resumed = Cli(["bench", "run", "--resume", "latest", *args], cwd=tmp_path,
                  out=tmp_path / "resume.out", env=env)
    assert resumed.wait() == 0, resumed.output
    sync = Cli(["tracking", "sync"], cwd=tmp_path, out=tmp_path / "sync.out", env=env)
    assert sync.wait() == 0, sync.output
    rec, problems = store_problems(url, planned=24)
    assert rec is not None and problems == []
    assert mlflow_problems(MlflowClient(tracking_uri=mlflow_server.url), "crash", rec,
                           history_metric="x") == []
