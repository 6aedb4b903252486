"""MlflowTracker against a real SQLite backend: observer runs, batching, lifecycle, matrix runs,
the bench runner, autolog, and spooling with exactly-once replay."""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from allele.core.evolution import EvolutionConfig, EvolutionEngine
from allele.core.fitness import target_personality
from allele.core.observer import ChatStats, default_observer
from allele.errors import TrackingError
from allele.store.model import CellResult, RunInfo, Sample
from allele.tracking.mlflow import (
    TAG_ERROR,
    TAG_HOST,
    TAG_NOTE,
    TAG_PID,
    TAG_PID_STARTED,
    TAG_RUN_KEY,
    MlflowTracker,
    environment_fingerprint,
    owner_tags,
    sync_spool,
)
from allele.tracking.spool import Spool
from tests.tracking.conftest import runs_of

FIT = target_personality({"empathy": 0.9, "creativity": 0.2})


def _engine(observer: Any, generations: int = 30, pop: int = 20, seed: int = 1) -> EvolutionEngine:
    cfg = EvolutionConfig(population_size=pop, generations=generations, seed=seed)
    return EvolutionEngine(cfg, FIT, observer=observer)


def _spy_log_batch(tracker: MlflowTracker) -> list[tuple[int, int, int]]:
    """Record (metrics, params, tags) sizes of every log_batch call of the tracker's client."""
    client = tracker._applier.client(tracker.tracking_uri)
    calls: list[tuple[int, int, int]] = []
    real = client.log_batch

    def log_batch(run_id: str, metrics: Any = (), params: Any = (), tags: Any = (),
                  synchronous: Any = None) -> Any:
        calls.append((len(metrics), len(params), len(tags)))
        return real(run_id, metrics=metrics, params=params, tags=tags, synchronous=synchronous)

    client.log_batch = log_batch
    return calls


def test_evolution_metrics_are_buffered_then_written_in_batches_of_at_most_1000(
        tracker: MlflowTracker, client: Any, experiment: str) -> None:
    calls = _spy_log_batch(tracker)
    obs = tracker.observer()
    engine = _engine(obs, generations=300)
    result = engine.run()
    run = obs.runs()[engine.name]
    # the hot path only buffered: nothing reached MLflow yet (the flush interval is an hour)
    assert calls == [] and len(tracker._q) > 301
    run_id = run.run_id()
    assert run_id is not None
    obs.close()
    tracker.flush()
    # 301 generations x 5 metrics = 1505 metrics -> two batches, never one call per metric
    metric_calls = [c for c in calls if c[0]]
    assert [c[0] for c in metric_calls] == [1000, 505]
    assert all(m + p + t <= 1000 for m, p, t in calls)
    for key in ("best", "mean", "std", "diversity", "generation_seconds"):
        hist = client.get_metric_history(run_id, key)
        assert sorted(m.step for m in hist) == list(range(301)), key
    best = sorted(client.get_metric_history(run_id, "best"), key=lambda m: m.step)
    assert [m.value for m in best] == [h.best for h in result.history]
    info = client.get_run(run_id)
    assert info.info.status == "FINISHED" and info.info.run_name == engine.name
    assert info.data.tags["allele.kind"] == "evolution"
    assert info.data.tags[TAG_PID] == owner_tags()[TAG_PID]
    assert info.data.tags[TAG_RUN_KEY] == run.key


def test_error_in_block_ends_failed_with_error_tag_and_ctrl_c_ends_killed(
        tracker: MlflowTracker, client: Any) -> None:
    with pytest.raises(RuntimeError), tracker.observer() as obs:
        engine = _engine(obs, generations=3)
        engine.run()
        raise RuntimeError("fitness exploded")
    failed = obs.runs()[engine.name].run_id()
    with pytest.raises(KeyboardInterrupt), tracker.observer() as obs2:
        engine2 = _engine(obs2, generations=3)
        engine2.run()
        raise KeyboardInterrupt
    killed = obs2.runs()[engine2.name].run_id()
    tracker.flush()
    f = client.get_run(failed)
    assert f.info.status == "FAILED"
    assert f.data.tags[TAG_ERROR] == "RuntimeError: fitness exploded"
    k = client.get_run(killed)
    assert k.info.status == "KILLED" and TAG_ERROR not in k.data.tags


def test_kraken_readout_and_sequence_metrics_and_chat_events(
        tracker: MlflowTracker, client: Any) -> None:
    from allele.core.datasets import mackey_glass
    from allele.core.kraken import KrakenLNN

    obs = tracker.observer()
    net = KrakenLNN(reservoir_size=50, seed=0, observer=obs)
    series = mackey_glass(600, seed=0)
    net.fit(series[:399], series[1:400], warmup=50)
    net.predict(series[400:499])
    net.process_sequence(series[500:550])
    obs.on_chat("agent-x", ChatStats(provider="openai", model="m", prompt_tokens=12,
                                     completion_tokens=30, seconds=0.5,
                                     time_to_first_token=0.1, retries=0, streamed=False))
    tracker.flush()
    runs = obs.runs()
    k_id, a_id = runs[net.name].run_id(), runs["agent-x"].run_id()
    k = client.get_run(k_id)
    assert k.data.tags["allele.kind"] == "kraken"
    assert [m.value for m in client.get_metric_history(k_id, "readout_samples")] == [349.0]
    assert sorted(m.value for m in client.get_metric_history(k_id, "sequence_steps")) == [
        50.0, 99.0]
    assert math.isfinite(k.data.metrics["train_nrmse"]) and k.data.metrics["train_nrmse"] < 0.5
    a = client.get_run(a_id)
    assert a.data.tags["allele.kind"] == "agent" and a.data.tags["allele.model"] == "m"
    assert a.data.metrics["tokens_per_s"] == pytest.approx(60.0)
    assert a.data.metrics["time_to_first_token_s"] == pytest.approx(0.1)


def test_agent_chat_error_is_tracked(tracker: MlflowTracker, client: Any) -> None:
    from allele.core.agent import AgentConfig, NLPAgent
    from allele.core.genome import Genome
    from allele.errors import ProviderError

    obs = tracker.observer()
    cfg = AgentConfig(provider="openai", model="none", base_url="http://127.0.0.1:9/v1",
                      max_retries=0, timeout_s=2)
    agent = NLPAgent(Genome(), cfg, observer=obs, name="agent-offline")
    with pytest.raises(ProviderError):
        agent.chat("hello")
    obs.close()
    run_id = obs.runs()["agent-offline"].run_id()
    r = client.get_run(run_id)
    assert r.data.metrics["chat_error"] == 1.0
    assert r.data.tags["allele.last_error"].startswith("connect")
    assert r.info.status == "FINISHED"


def test_runs_of_dead_processes_are_marked_failed_on_start(
        mlflow_uri: str, experiment: str, spool_path: Path, client: Any) -> None:
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead_pid = proc.stdout.strip()
    exp_id = client.create_experiment(experiment)
    dead = client.create_run(exp_id, tags={TAG_HOST: owner_tags()[TAG_HOST], TAG_PID: dead_pid,
                                           TAG_PID_STARTED: "1.0", TAG_RUN_KEY: "bench-x"}
                             ).info.run_id
    alive = client.create_run(exp_id, tags=owner_tags()).info.run_id
    tr = MlflowTracker(mlflow_uri, experiment, spool_path=spool_path)
    assert tr.reaped == [dead]
    d = client.get_run(dead)
    assert d.info.status == "FAILED" and f"process {dead_pid}" in d.data.tags[TAG_NOTE]
    assert client.get_run(alive).info.status == "RUNNING"
    client.set_terminated(alive)
    # resumed (bench run --resume): it ends FINISHED, and the note no longer says "marked FAILED"
    tr.start_run("x", key="bench-x", reopen=True).end()
    tr.close()
    d = client.get_run(dead)
    assert d.info.status == "FINISHED" and d.data.tags[TAG_PID] == str(os.getpid())
    assert d.data.tags[TAG_NOTE].startswith(f"resumed by process {os.getpid()} on ")


def _info(environment: dict[str, Any]) -> RunInfo:
    return RunInfo(id="abc123", name="nightly-1", spec_name="nightly", target="evolution",
                   status="running", created_at=time.time() - 5,
                   spec={"name": "nightly", "matrix": {"population_size": [10, 20]}},
                   environment=environment, cell_count=2)


def test_matrix_run_is_a_parent_with_one_nested_child_per_cell(
        tracker: MlflowTracker, client: Any, tmp_path: Path) -> None:
    env = {"cpu": {"model": "x"}, "python": {"version": "3.11"}}
    parent = tracker.start_matrix_run(_info(env))
    now = time.time()
    ok = CellResult(key='evolution|{"population_size":10}', target="evolution",
                    params={"population_size": 10}, status="ok",
                    samples=[Sample(m, v if m == "wall_s" else 200.0 + 200 * seed, seed, rep)
                             for (seed, rep), v in
                             zip([(0, 0), (0, 1), (1, 0), (1, 1)], [0.4, 0.2, 0.3, 0.5])
                             for m in ("wall_s", "loops")],
                    started_at=now - 2, finished_at=now - 1)
    bad = CellResult(key='evolution|{"population_size":20}', target="evolution",
                     params={"population_size": 20}, status="timeout", error="timed out after 5s",
                     started_at=now - 1, finished_at=now)
    tracker.log_cell(ok)
    tracker.log_cell(bad)
    report = tmp_path / "report.html"
    report.write_text("<html>report</html>")
    tracker.end_matrix_run("finished", report)
    report.unlink()  # the tracker copied it at once
    tracker.flush()
    pid = parent.run_id()
    p = client.get_run(pid)
    assert p.info.status == "FINISHED" and p.info.run_name == "nightly-1"
    # cell_count is known only at the end: run_matrix_tracked logs it then (see below)
    assert p.data.params == {"spec_name": "nightly", "target": "evolution"}
    fp = environment_fingerprint(env)
    assert p.data.tags["allele.env_fingerprint"] == fp
    # the same machine under another load is the same environment; another Python is not
    assert environment_fingerprint({**env, "load": {"1m": 9.0}}) == environment_fingerprint(
        {**env, "load": {"1m": 0.1}})
    assert environment_fingerprint({**env, "python": "3.12"}) != fp
    arts = {a.path for a in client.list_artifacts(pid)}
    assert arts == {"spec.json", "environment.json", "report.html"}
    spec_file = client.download_artifacts(pid, "spec.json", str(tmp_path))
    assert json.loads(Path(spec_file).read_text()) == _info(env).spec
    children = client.search_runs([p.info.experiment_id],
                                  filter_string=f"tags.`mlflow.parentRunId` = '{pid}'")
    by_key = {c.data.tags["allele.cell_key"]: c for c in children}
    assert set(by_key) == {ok.key, bad.key}
    c_ok, c_bad = by_key[ok.key], by_key[bad.key]
    assert c_ok.info.status == "FINISHED" and c_ok.data.params == {"population_size": "10"}
    assert c_ok.data.tags["allele.target"] == "evolution"
    assert c_ok.data.tags["allele.seed"] == "0,1"
    assert c_ok.data.tags["allele.env_fingerprint"] == fp
    hist = sorted(client.get_metric_history(c_ok.info.run_id, "wall_s"), key=lambda m: m.step)
    assert [m.value for m in hist] == ok.values("wall_s")
    assert c_ok.data.metrics["wall_s.median"] == pytest.approx(0.35)
    # The inner-loop count says how a sample was timed: a tag, not a metric.
    assert set(c_ok.data.metrics) == {"wall_s", "wall_s.median"}
    assert c_ok.data.tags["allele.loops"] == "200-400"
    assert c_ok.info.start_time == int(ok.started_at * 1000)
    assert c_bad.info.status == "FAILED" and c_bad.data.tags[TAG_ERROR] == "timed out after 5s"


def test_bench_runner_end_to_end_through_the_progress_hook(
        tracker: MlflowTracker, client: Any, experiment: str, tmp_path: Path) -> None:
    from allele.bench.runner import Runner
    from allele.bench.spec import loads_suite
    from allele.store import open_store
    from allele.tracking.mlflow import run_matrix_tracked

    suite = loads_suite("""
name: echo
target: tests.bench.runner_targets:echo
isolation: inline
matrix: {a: [1, 2, 3]}
seeds: [5, 6]
""")
    with open_store(f"sqlite:///{tmp_path / 'results.db'}") as store:
        runner = Runner(store, environment={"test": True})
        summary = run_matrix_tracked(tracker, runner, suite, name="echo-run")
        assert summary.status == "finished" and runner.progress is None
        cells = store.load_run("echo-run").cells
    tracker.flush()
    runs = runs_of(client, experiment)
    parents = [r for r in runs if r.data.tags.get("allele.kind") == "matrix"]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    parent = parents[0]
    assert parent.data.tags["allele.bench_run_id"] == summary.run_id
    assert parent.data.params["cell_count"] == "3"
    assert parent.data.metrics["cell_count"] == 3.0 and parent.data.metrics["failed_cells"] == 0
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 3 == len(cells)
    for child in children:
        cell = next(c for c in cells if c.key == child.data.tags["allele.cell_key"])
        hist = sorted(client.get_metric_history(child.info.run_id, "seed_seen"),
                      key=lambda m: m.step)
        assert [m.value for m in hist] == cell.values("seed_seen") == [5.0, 6.0]
        assert child.data.params == {"a": str(cell.params["a"])}


def test_autolog_tracks_components_created_afterwards(
        mlflow_uri: str, experiment: str, spool_path: Path, client: Any) -> None:
    from allele.core.datasets import mackey_glass
    from allele.core.kraken import KrakenLNN
    from allele.tracking import autolog, autolog_tracker

    assert default_observer("kraken", "k") is None
    tracker = autolog(mlflow_uri, experiment, spool_path=spool_path, flush_interval_s=3600)
    try:
        assert tracker is not None and autolog_tracker() is tracker
        assert autolog(mlflow_uri, experiment) is tracker  # idempotent
        net = KrakenLNN(reservoir_size=30, seed=1)  # no observer given: autolog's is used
        series = mackey_glass(300, seed=1)
        net.fit(series[:199], series[1:200], warmup=20)
        evo_obs = default_observer("evolution", "evolution-autolog")
        EvolutionEngine(EvolutionConfig(population_size=10, generations=4, seed=0), FIT,
                        observer=evo_obs, name="evolution-autolog").run()
    finally:
        autolog(disable=True)
    assert default_observer("kraken", "k") is None and autolog_tracker() is None
    runs = {r.info.run_name: r for r in runs_of(client, experiment)}
    assert set(runs) == {net.name, "evolution-autolog"}
    assert all(r.info.status == "FINISHED" for r in runs.values())
    assert runs[net.name].data.tags["allele.kind"] == "kraken"
    evo = runs["evolution-autolog"]
    assert len(client.get_metric_history(evo.info.run_id, "best")) == 5


def test_unreachable_server_spools_and_sync_replays_exactly_once(
        mlflow_uri: str, experiment: str, spool_path: Path, client: Any, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead_uri = f"http://127.0.0.1:{s.getsockname()[1]}"
    with caplog.at_level(logging.WARNING, logger="allele.tracking"):
        tr = MlflowTracker(dead_uri, experiment, spool_path=spool_path, flush_interval_s=3600,
                           retry_interval_s=3600)
    assert not tr.online
    (warning,) = [r.getMessage() for r in caplog.records if r.name == "allele.tracking"]
    # one line, the cause only (not MLflow's "API request ... Max retries exceeded ..." chain)
    assert f"MLflow at {dead_uri} is unreachable (NewConnectionError: [Errno " in warning
    assert "Connection refused); spooling to" in warning and "Max retries" not in warning
    obs = tr.observer()
    engine = _engine(obs, generations=40)
    result = engine.run()  # the work goes on while tracking is offline
    report = tmp_path / "notes.txt"
    report.write_text("artifact made offline")
    obs.runs()[engine.name].log_artifact(report)
    tr.close()
    assert tr.delivered == 0 and tr.spooled >= 3
    pending = Spool(spool_path).read().pending
    assert {r["op"] for r in pending} == {"create_run", "log", "artifact", "end"}
    assert all(r["target"] == dead_uri for r in pending)

    # the server is still down: nothing is lost, nothing is marked done
    down = sync_spool(spool_path)
    assert down.replayed == 0 and down.pending == len(pending) and not down.complete
    assert down.blocked_by == "unavailable" and down.blocked.startswith(
        f"MLflow at {dead_uri} is unreachable (NewConnectionError: [Errno ")
    assert down.blocked.endswith("Connection refused)")
    records_only = [x for x in spool_path.read_text().splitlines() if json.loads(x)["t"] == "rec"]

    first = sync_spool(spool_path, tracking_uri=mlflow_uri)
    assert first.complete and first.replayed == len(pending) and first.runs_created == 1
    assert not spool_path.exists()  # all delivered: the spool was cleared
    again = sync_spool(spool_path, tracking_uri=mlflow_uri)
    assert (again.replayed, again.runs_created) == (0, 0)

    runs = runs_of(client, experiment)
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED" and run.info.run_name == engine.name
    best = sorted(client.get_metric_history(run.info.run_id, "best"), key=lambda m: m.step)
    assert [m.value for m in best] == [h.best for h in result.history]
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["notes.txt"]

    # a replay whose done-marks were lost (crash right after delivery) changes nothing either
    spool_path.write_text("\n".join(records_only) + "\n")
    redo = sync_spool(spool_path, tracking_uri=mlflow_uri)
    assert redo.replayed == len(pending) - 1  # the artifact file was removed after delivery
    assert redo.rejected == 1 and redo.runs_created == 0
    assert len(runs_of(client, experiment)) == 1
    assert len(client.get_metric_history(run.info.run_id, "best")) == 41
    assert len(client.get_metric_history(run.info.run_id, "diversity")) == 41


def test_bad_arguments_raise_tracking_error(tracker: MlflowTracker) -> None:
    run = tracker.start_run("x")
    with pytest.raises(TrackingError, match="FINISHED, FAILED or KILLED"):
        run.end("DONE")
    with pytest.raises(TrackingError, match="start_matrix_run"):
        tracker.log_cell(CellResult(key="k", target="t", params={}, status="ok"))
    with pytest.raises(TrackingError, match="flush_interval_s"):
        MlflowTracker(tracker.tracking_uri, tracker.experiment, flush_interval_s=0)
    assert np.isfinite(0.0)


def test_tracking_cli_status_and_sync(mlflow_uri: str, experiment: str, spool_path: Path,
                                      client: Any) -> None:
    import socket

    from typer.testing import CliRunner

    from allele.cli import app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_uri = f"http://127.0.0.1:{s.getsockname()[1]}"
    tr = MlflowTracker(dead_uri, experiment, spool_path=spool_path, retry_interval_s=3600)
    with tr.start_run("cli-run") as run:
        for step in range(5):
            run.log_metrics({"loss": 1.0 / (step + 1)}, step=step)
    tr.close()
    n = len(Spool(spool_path).read().pending)
    runner = CliRunner(env={"COLUMNS": "200"})
    res = runner.invoke(app, ["tracking", "status", "--spool", str(spool_path)])
    assert res.exit_code == 0 and f"{n} pending" in res.output and dead_uri in res.output
    res = runner.invoke(app, ["tracking", "sync", "--spool", str(spool_path)])
    assert res.exit_code == 2 and f"{n} record(s) still pending" in res.output
    res = runner.invoke(app, ["tracking", "sync", "--spool", str(spool_path),
                              "--tracking-uri", mlflow_uri])
    assert res.exit_code == 0, res.output
    assert f"replayed {n} record(s), created 1 run(s)" in res.output
    (run_info,) = runs_of(client, experiment)
    hist = sorted(client.get_metric_history(run_info.info.run_id, "loss"), key=lambda m: m.step)
    assert [m.value for m in hist] == [1.0, 0.5, 1 / 3, 0.25, 0.2]
    assert run_info.info.status == "FINISHED"
    # the spool was cleared (its lock stays): nothing to do, not an error
    res = runner.invoke(app, ["tracking", "sync", "--spool", str(spool_path)])
    assert res.exit_code == 0 and "replayed 0 record(s)" in res.output
    typo = spool_path.parent / "typo" / "spool.jsonl"  # a mistyped --spool creates nothing
    for command in ("status", "sync"):
        res = runner.invoke(app, ["tracking", command, "--spool", str(typo)])
        assert res.exit_code == 2 and res.output == f"error: no tracking spool at {typo} " \
            "(check --spool; the default is <data_dir>/tracking-spool.jsonl)\n"
    assert not typo.parent.exists()


def test_events_after_close_are_dropped_not_buffered(
        mlflow_uri: str, experiment: str, spool_path: Path, client: Any) -> None:
    import allele.core.observer as core_observer

    tr = MlflowTracker(mlflow_uri, experiment, spool_path=spool_path, flush_interval_s=3600)
    obs = tr.observer()
    engine = _engine(obs, generations=0)
    engine.initialize()
    tr.close()
    failures = core_observer.observer_failures
    for _ in range(5):
        engine.step()  # the engine keeps working; its observer is detached
    assert len(tr._q) == 0 and core_observer.observer_failures == failures
    (run,) = runs_of(client, experiment)
    assert run.info.status == "FINISHED"
    assert len(client.get_metric_history(run.info.run_id, "best")) == 1


def _spooled(uri: str, experiment: str, run: str, **log: Any) -> list[dict[str, Any]]:
    """The records of one run (create, one log batch, end) as a tracker spools them."""
    base = {"target": uri, "experiment": experiment, "run": run}
    return [{**base, "key": f"{run}-c", "op": "create_run", "run_name": run, "tags": {},
             "start_time": 1000},
            {**base, "key": f"{run}-l", "op": "log", "metrics": [["m", 1.0, 1000, 0]],
             "params": {}, "tags": {}, **log},
            {**base, "key": f"{run}-e", "op": "end", "status": "FINISHED", "tags": {},
             "end_time": 2000}]


def test_a_target_that_cannot_take_records_leaves_them_pending(
        mlflow_uri: str, experiment: str, spool_path: Path, client: Any, tmp_path: Path) -> None:
    """A broken target (a file that is not a database, a deleted experiment) used to mark every
    record rejected for good, exit 0; only a record MLflow itself refuses is rejected."""
    from typer.testing import CliRunner

    from allele.cli import app

    sp = Spool(spool_path)
    sp.append(_spooled(mlflow_uri, experiment, "ok"))
    not_a_db = tmp_path / "not-a.db"
    not_a_db.write_text("not a database\n" * 100)
    res = CliRunner().invoke(app, ["tracking", "sync", "--spool", str(spool_path),
                                   "--tracking-uri", f"sqlite:///{not_a_db}"])
    assert res.exit_code == 2 and "rejected 0, still pending 3" in res.output
    err = res.output.splitlines()[-1]
    assert err.startswith("error: 3 record(s) still pending: cannot open MLflow at") and (
        "file is not a database; fix it" in err and "[SQL" not in err)

    client.delete_experiment(client.create_experiment(experiment))
    report = sync_spool(sp)
    assert (report.replayed, report.rejected, report.pending) == (0, 0, 3)
    assert report.blocked_by == "target" and "is deleted" in report.blocked
    client.restore_experiment(client.get_experiment_by_name(experiment).experiment_id)

    # records MLflow refuses: a changed parameter value; identical refusals are one line
    sp.append([*_spooled(mlflow_uri, experiment, "p1", params={"lr": "0.1"}),
               {**_spooled(mlflow_uri, experiment, "p1", params={"lr": "0.2"})[1], "key": "x"},
               *_spooled(mlflow_uri, experiment, "lost")[1:]])  # its creation was lost
    report = sync_spool(sp)
    assert (report.replayed, report.rejected, report.pending) == (6, 3, 0)
    assert report.runs_created == 2 and len(report.errors) == 2
    assert report.errors[1].startswith("2 records (log 1, end 1) refused: run lost does not")
    res = CliRunner().invoke(app, ["tracking", "status", "--spool", str(spool_path)])
    assert res.exit_code == 0 and "0 pending" in res.output and "3 rejected" in res.output
    assert "rejected 2: Refused: run lost does not exist" in res.output
    assert "rejected 1: MlflowException: Changing param values is not allowed" in res.output
    exp_id = client.get_experiment_by_name(experiment).experiment_id
    client.create_run(exp_id, tags={TAG_RUN_KEY: "lost"}, run_name="lost")  # made after all
    report = sync_spool(sp, retry_rejected=True)
    assert (report.requeued, report.replayed, report.rejected) == (3, 2, 1)
    runs = {r.info.run_name: r for r in runs_of(client, experiment)}
    assert runs["lost"].info.status == "FINISHED" and runs["p1"].data.params == {"lr": "0.1"}


def test_relative_tracking_uri_and_spool_are_replayed_from_anywhere(
        mlflow_template: Path, experiment: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``sqlite:///rel.db`` and the default ``.allele/`` spool are relative to the working
    directory; a replay from another one used to write to a new ``rel.db`` there, and find no
    staged artifact ("artifact file ... is gone")."""
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir()
    elsewhere.mkdir()
    shutil.copyfile(mlflow_template, work / "rel.db")
    monkeypatch.chdir(work)
    tr = MlflowTracker("sqlite:///rel.db", experiment, spool_path=Path(".allele") / "s.jsonl",
                       flush_interval_s=3600)
    assert tr.tracking_uri == f"sqlite:///{work / 'rel.db'}"
    run = tr.start_run("rel")
    (work / "notes.txt").write_text("staged")
    run.log_artifact(work / "notes.txt")
    run.end()
    tr._drain(tr._spool_records)  # what close() does with records the server did not take
    tr.close()
    assert tr.spooled == 3
    monkeypatch.chdir(elsewhere)
    report = sync_spool(work / ".allele" / "s.jsonl")
    assert report.complete and (report.replayed, report.rejected) == (3, 0), report.errors
    assert list(elsewhere.iterdir()) == []
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{work / 'rel.db'}")
    (r,) = runs_of(client, experiment)
    assert r.info.status == "FINISHED"
    assert [a.path for a in client.list_artifacts(r.info.run_id)] == ["notes.txt"]
