"""Against a real ``mlflow server`` (one worker, job execution disabled) on 127.0.0.1: the server
is killed mid-run, the work goes on into the spool, the server restarts, ``sync`` replays, and
every metric arrives exactly once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from allele.core.evolution import EvolutionConfig, EvolutionEngine
from allele.core.fitness import target_personality
from allele.tracking.mlflow import MlflowTracker, sync_spool
from allele.tracking.spool import Spool
from tests.faults.servers import Server, free_port

pytestmark = pytest.mark.slow

METRICS = ("best", "mean", "std", "diversity", "generation_seconds")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = Server(tmp_path_factory.mktemp("mlflow-server"), free_port())
    srv.start()
    yield srv
    srv.kill()


def test_server_killed_mid_run_then_restarted_and_synced_gets_every_metric_once(
        server: Server, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    spool = tmp_path / "spool.jsonl"
    tracker = MlflowTracker(server.url, "server-kill", spool_path=spool, flush_interval_s=3600,
                            retry_interval_s=3600)
    assert tracker.online
    obs = tracker.observer()
    cfg = EvolutionConfig(population_size=30, generations=0, seed=3)
    engine = EvolutionEngine(cfg, target_personality({"empathy": 0.8}), observer=obs)
    engine.initialize()
    for _ in range(20):
        engine.step()
    run = obs.runs()[engine.name]
    run_id = run.run_id()
    assert run_id is not None and tracker.delivered >= 2
    client = MlflowClient(tracking_uri=server.url)
    assert len(client.get_metric_history(run_id, "best")) == 21

    server.kill()
    for _ in range(30):  # the work continues while the server is down
        engine.step()
    tracker.flush()
    assert not tracker.online
    obs.close()
    tracker.close()
    pending = Spool(spool).read().pending
    assert pending and {r["op"] for r in pending} == {"log", "end"}

    server.start()
    report = sync_spool(spool)
    assert report.complete and report.replayed == len(pending) and report.runs_created == 0
    assert sync_spool(spool).replayed == 0  # exactly once: a second sync has nothing to do

    r = client.get_run(run_id)
    assert r.info.status == "FINISHED"
    for key in METRICS:
        steps = [m.step for m in client.get_metric_history(run_id, key)]
        assert sorted(steps) == list(range(51)), key  # every generation, each exactly once
    best = sorted(client.get_metric_history(run_id, "best"), key=lambda m: m.step)
    assert [m.value for m in best] == [h.best for h in engine.history]
    exp = client.get_experiment_by_name("server-kill")
    assert len(client.search_runs([exp.experiment_id])) == 1


def test_tracker_reconnects_by_itself_and_replays_the_spool_first(
        server: Server, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    spool = tmp_path / "spool.jsonl"
    tracker = MlflowTracker(server.url, "server-reconnect", spool_path=spool,
                            flush_interval_s=3600, retry_interval_s=0.0)
    run = tracker.start_run("reconnect")
    run.log_metrics({"x": 1.0}, step=0)
    run_id = run.run_id()
    server.kill()
    run.log_metrics({"x": 2.0}, step=1)
    tracker.flush()
    assert not tracker.online
    server.start()
    run.log_metrics({"x": 3.0}, step=2)
    run.end()
    tracker.close()
    assert tracker.online  # it came back, replayed the spool, then wrote the rest
    client: Any = MlflowClient(tracking_uri=server.url)
    hist = sorted(client.get_metric_history(run_id, "x"), key=lambda m: m.step)
    assert [(m.step, m.value) for m in hist] == [(0, 1.0), (1, 2.0), (2, 3.0)]
    assert client.get_run(run_id).info.status == "FINISHED"
    assert Spool(spool).read().pending == []


def test_mlflow_prints_no_run_links_on_stdout(
        server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With an http:// URI MLflow writes "🏃 View run ... at: ..." to stdout itself at every run
    end (two lines per cell of a tracked bench run), -q or not."""
    from typer.testing import CliRunner

    from allele.cli import app

    monkeypatch.setenv("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "")
    monkeypatch.delenv("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT")  # restored after the test
    spool = tmp_path / "spool.jsonl"
    base = {"target": server.url, "experiment": "server-links"}
    Spool(spool).append([
        {**base, "key": "c", "op": "create_run", "run": "r", "tags": {}, "start_time": 1000},
        {**base, "key": "e", "op": "end", "run": "r", "status": "FINISHED", "tags": {},
         "end_time": 2000}])
    res = CliRunner().invoke(app, ["tracking", "sync", "--spool", str(spool)])
    assert res.exit_code == 0, res.output
    assert res.output == "replayed 2 record(s), created 1 run(s), rejected 0, still pending 0\n"
