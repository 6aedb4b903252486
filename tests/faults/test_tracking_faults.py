"""MLflow mirrors the store, whatever happens (issue 16, items 1, 2 and 10): one child run per
stored cell (rounds merged), ``cell_count`` logged at the end, "tracked in MLflow" only when it
was, cells still in the tracker's memory at a ``kill -9`` re-sent by ``--resume``, and a damaged
spool line skipped with a message instead of a traceback."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

from allele.bench.runner import Runner
from allele.bench.spec import loads_suite
from allele.store import open_store
from allele.tracking.spool import Spool
from tests.faults.cli import allele
from tests.faults.invariants import mlflow_problems, store_problems
from tests.faults.processes import Cli, left_behind

T = "tests.faults.targets"


def _client(uri: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def test_rounds_make_one_child_per_cell_with_every_sample(mlflow_db: str, tmp_path: Path
                                                          ) -> None:
    from allele.tracking.mlflow import MlflowTracker, run_matrix_tracked

    suite = loads_suite(f"name: rounds\ntarget: {T}:tiny\nisolation: inline\nseeds: 6\n"
                        "rounds: 3\nmatrix: {a: [1, 2]}\nmetrics: [v, w]\n")
    with open_store(f"sqlite:///{tmp_path / 'r.db'}") as st:
        runner = Runner(st, executor="inline", environment={"test": True})
        with MlflowTracker(mlflow_db, "rounds", spool_path=tmp_path / "spool.jsonl") as tr:
            summary = run_matrix_tracked(tr, runner, suite, name="rounds")
        assert summary.status == "finished"
    rec, problems = store_problems(f"sqlite:///{tmp_path / 'r.db'}", planned=2)
    assert rec is not None and not problems
    assert all(len(c.values("v")) == 6 for c in rec.cells)
    assert mlflow_problems(_client(mlflow_db), "rounds", rec) == []  # 2 children, 6 points each


def test_tracked_in_mlflow_is_said_only_when_it_was(tmp_path: Path,
                                                    monkeypatch: Any) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("ALLELE_DATA_DIR", str(tmp_path / "data"))
    spec = tmp_path / "s.yaml"
    spec.write_text(f"name: s\ntarget: {T}:tiny\nisolation: inline\nseeds: 1\n"
                    "matrix: {a: [1, 2]}\n")
    code, _, err = allele("bench", "run", str(spec), "-q", "--store",
                          f"sqlite:///{tmp_path / 'r.db'}", "--mlflow",
                          f"http://127.0.0.1:{port}", "--experiment", "offline")
    assert code == 0, err
    assert "tracked in MLflow at" not in err
    spool = tmp_path / "data" / "tracking-spool.jsonl"
    assert f"record(s) wait in {spool}" in err and "allele tracking sync" in err
    pending = Spool(spool).read().pending
    assert {r["op"] for r in pending} >= {"create_run", "log", "end"}


def test_cells_in_the_trackers_memory_at_a_kill_are_resent_by_resume(mlflow_db: str,
                                                                     tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(f"name: s\ntarget: {T}:tiny\nseeds: 2\nrounds: 2\n"
                    "matrix: {a: [1, 2, 3, 4, 5, 6]}\nmetrics: [v]\n")
    url = f"sqlite:///{tmp_path / 'r.db'}"
    base = {"ALLELE_DATA_DIR": str(tmp_path / "data"), "ALLELE_FAULT_MARK": f"{tmp_path}"}
    args = ["--store", url, "--mlflow", mlflow_db, "--experiment", "resend", "-q",
            "--workers", "2"]
    # killed right after its 4th committed cell: the MLflow writer flushes every 2 s, so those
    # cells are still in its memory
    first = Cli(["bench", "run", str(spec), *args], cwd=tmp_path, out=tmp_path / "1.out",
                env={**base, "ALLELE_FAILPOINTS": "runner.cell_committed=4:kill"})
    assert first.wait() == -9, first.output
    assert left_behind(str(tmp_path)) == []
    with open_store(url) as st:
        info = st.list_runs()[0]
        assert info.status == "running" and info.cell_count == 4
    second = Cli(["bench", "run", "--resume", "latest", *args], cwd=tmp_path,
                 out=tmp_path / "2.out", env=base)
    assert second.wait() == 0, second.output
    assert "tracked in MLflow at" in second.output
    rec, problems = store_problems(url, planned=6)
    assert rec is not None and problems == []
    assert mlflow_problems(_client(mlflow_db), "resend", rec) == []


def test_a_damaged_spool_line_is_skipped_with_a_message(tmp_path: Path, mlflow_db: str) -> None:
    spool = tmp_path / "spool.jsonl"
    good = {"t": "rec", "key": "k1", "target": mlflow_db, "experiment": "damaged",
            "op": "create_run", "run": "r1", "run_name": "ok", "parent": None, "tags": {},
            "start_time": 1}
    spool.write_text("\n".join([
        json.dumps({"t": "rec", "target": mlflow_db, "op": "log", "run": "r1"}),  # no key
        json.dumps([1, 2, 3]),
        json.dumps({"t": "done"}),
        json.dumps(good),
    ]) + "\n")
    code, out, err = allele("tracking", "status", "--spool", str(spool))
    assert code == 0 and "3 malformed line(s) skipped" in out, out + err
    code, out, err = allele("tracking", "sync", "--spool", str(spool))
    assert code == 0 and "Traceback" not in out + err, out + err
    assert "replayed 1 record(s)" in out and "line(s) 1, 2, 3 are not valid spool" in out
    runs = _client(mlflow_db).search_runs(
        [_client(mlflow_db).get_experiment_by_name("damaged").experiment_id])
    assert [r.info.run_name for r in runs] == ["ok"]
