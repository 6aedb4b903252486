"""Live telemetry of a matrix run: lifecycle events, samples as they arrive, component events
and user metrics forwarded from the workers (outside the timed region), worker resources,
/metrics of the running matrix, and what the live state makes of it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from allele.bench.live import RunLive
from allele.bench.livestate import LiveState
from allele.bench.profiler import run_cell
from allele.bench.runner import Runner
from allele.bench.spec import loads_suite
from allele.bench.task import CellTask
from allele.bench.views import sample_count
from allele.store import ResultStore, open_store
from allele.store.live import read_events

ENV = {"test": True}
L = "tests.bench.live_targets"
SPEC = f"""
name: live
benchmarks:
  - name: um
    target: {L}:user_metrics
    matrix: {{x: [1, 2, 3]}}
    seeds: 2
    repeats: 2
    inner_loops: 1  # the test counts calls: no calibration of this microsecond target,
    alloc_peak: false  # and no untimed memory calls
  - name: evo
    target: {L}:evolve
    fixed: {{generations: 4}}
    seeds: 1
"""


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ResultStore]:
    st = open_store(f"sqlite:///{tmp_path / 'results.db'}")
    yield st
    st.close()


@pytest.fixture(scope="module")
def pool_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ResultStore, str, str]]:
    """One run on a process pool of two workers with live telemetry and /metrics."""
    st = open_store(f"sqlite:///{tmp_path_factory.mktemp('live') / 'results.db'}")
    live = RunLive(st, metrics_port=0, interval_s=0.1)
    try:
        summary = Runner(st, executor="local", workers=2, environment=ENV, live=live).run(
            loads_suite(SPEC), name="pool")
        assert live.server is not None
        text = httpx.get(live.server.url).text
    finally:
        live.close()
    yield st, summary.run_id, text
    st.close()


def test_lifecycle_events_in_order_with_samples_before_each_cell_is_stored(
        pool_run: tuple[ResultStore, str, str]) -> None:
    st, run_id, _ = pool_run
    events = read_events(st, 0, run_id=run_id, limit=10_000)
    kinds = Counter(e.kind for e in events)
    assert kinds["run_started"] == 1 and kinds["run_finished"] == 1
    assert kinds["cell_started"] == kinds["cell_finished"] == kinds["cell_stored"] == 4
    assert events[0].kind == "run_started" and events[-1].kind == "run_finished"
    assert events[0].data["cells"] == 4
    stored_at = {e.data["key"]: e.id for e in events if e.kind == "cell_stored"}
    samples: dict[str, int] = {}
    for e in events:
        if e.kind == "samples":
            samples[e.data["key"]] = samples.get(e.data["key"], 0) + len(e.data["values"]["wall_s"])
            assert e.id < stored_at[e.data["key"]]
    record = st.load_run(run_id)
    for cell in record.cells:  # every measured call arrived live, before the cell was stored
        assert samples[cell.key] == len(cell.values("wall_s"))
    assert [e.data["done"] for e in events if e.kind == "cell_stored"] == [1, 2, 3, 4]


def test_component_events_and_user_metrics_reach_the_store_and_metrics(
        pool_run: tuple[ResultStore, str, str]) -> None:
    st, _, text = pool_run
    best = st.read_metric_points("allele_evolution_best_fitness")
    assert len(best) >= 1  # sampled once per tick: the latest value of each series
    # every event from inside the worker was folded: generation 0 and four more
    assert st.read_metric_points("allele_evolution_generations_total")[-1].value == 5
    assert best[0].component.split(":")[1].startswith("evolution-")
    assert int(best[0].component.split(":")[0]) > 0  # the worker's pid
    calls = st.read_metric_points("livetest_requests_total", "user")
    assert calls[-1].value == 3 * 2 * 2  # 3 cells x 2 seeds x 2 repeats, merged across workers
    assert st.read_metric_points("allele_bench_cells_done")[-1].value == 4
    assert 'livetest_requests_total{kind="a"} 12.0' in text
    assert 'allele_bench_cells{run="pool",state="done"} 4.0' in text
    assert "allele_evolution_best_fitness{" in text
    assert st.read_metric_points("allele_bench_worker_rss_bytes")


def test_forwarding_stays_outside_the_timed_region() -> None:
    """The hook runs after each measured call: a slow hook does not show in wall_s."""
    import time

    seen: list[int] = []

    def slow_hook(samples: list[object]) -> None:
        seen.append(len(samples))
        time.sleep(0.02)

    task = CellTask(key="k", benchmark="b", target=f"{L}:user_metrics", params={"x": 1},
                    seeds=(0, 1), repeats=3, inner_loops=1)
    result = run_cell(task, on_call=slow_hook)
    assert len(seen) == 6 and all(n == 5 for n in seen)  # 4 measured + score, per call
    assert max(result.values("wall_s")) < 0.01  # the target takes microseconds


def test_inline_run_and_the_live_state_fold(store: ResultStore) -> None:
    live = RunLive(store, interval_s=0.1, sample_workers=False)
    try:
        summary = Runner(store, executor="inline", environment=ENV, live=live).run(
            loads_suite(SPEC), name="inline")
    finally:
        live.close()
    state = LiveState()
    state.apply(read_events(store, 0, limit=10_000))
    (run,) = state.snapshot()["runs"]
    assert (run["name"], run["status"], run["planned"], run["done"], run["failed"]) == (
        "inline", "finished", 4, 4, 0)
    assert summary.executed == 4
    # samples are measured calls (seed x repeat), not metric values: 2 seeds x 2 repeats per
    # um cell (each call gives 5 metrics), 1 call of evo
    assert run["samples"] == 3 * 2 * 2 + 1
    cells = store.load_run("inline").cells  # what the Runs page shows per cell, likewise
    assert sorted(sample_count(c) for c in cells) == [1, 4, 4, 4]
    assert sorted(len(c.samples) for c in cells)[1:] == [20, 20, 20]  # metric values
    assert (run["tasks"], run["tasks_done"], run["progress"]) == (4, 4, 1.0)
    assert run["running"] == [] and run["eta_s"] is None
    assert len(run["recent"]) == 4


def test_eta_and_running_cells_mid_run() -> None:
    from allele.store.live import StoredEvent

    ev = [StoredEvent(1, 100.0, "s", "run_started", "r", {"name": "n", "cells": 10, "skipped": 2}),
          StoredEvent(2, 101.0, "s", "cell_started", "r", {"key": "a", "params": {"x": 1}}),
          StoredEvent(3, 104.0, "s", "cell_stored", "r", {"key": "a", "status": "ok",
                                                          "done": 3, "failed": 0}),
          StoredEvent(4, 105.0, "s", "cell_started", "r", {"key": "b", "params": {"x": 2}}),
          StoredEvent(5, 108.0, "s", "cell_stored", "r", {"key": "c", "status": "failed",
                                                          "done": 4, "failed": 1,
                                                          "error": "boom"})]
    state = LiveState()
    assert state.apply(ev) == {"r"}
    (run,) = state.snapshot(now=110.0)["runs"]
    # 2 cells done in this invocation in 10 s: 6 left at 0.2 cells/s
    assert run["eta_s"] == pytest.approx(30.0)
    assert [c["key"] for c in run["running"]] == ["b"]
    assert run["failures"][0]["error"] == "boom"
    assert run["progress"] == pytest.approx(0.4)


COUNTED = f"""
name: counted
target: {L}:user_metrics
instruments: [time, instructions]
instruction_seeds: 1
matrix: {{x: [1, 2, 3]}}
seeds: 2
repeats: 2
rounds: 2
inner_loops: 1
alloc_peak: false
"""


class _Stop(BaseException):
    """The runner dies in its instruction phase (as with kill -9: no interrupt handling)."""


def _fake_counts(monkeypatch: pytest.MonkeyPatch, seen: list[dict[str, object]],
                 store: ResultStore, live: RunLive, die: bool = False) -> None:
    """The instruction phase without callgrind: it records what the live view and the store
    say when it starts, then adds one count per cell (or dies)."""
    from dataclasses import replace

    from allele.bench import runner
    from allele.store.model import CellResult, Sample

    def count_phase(cells: object, timed: dict[str, CellResult]
                    ) -> tuple[list[CellResult], None]:
        live.publisher.flush()
        state = LiveState()
        state.bootstrap(store)
        seen.append({"live": state.snapshot()["runs"][0], "stored": sum(
            c.status == "ok" for c in store.load_run(store.list_runs(1)[0].id).cells)})
        if die:
            raise _Stop
        return [replace(t, samples=[*t.samples, Sample("instructions", 1e6, 0, 0)])
                for t in timed.values()], None

    monkeypatch.setattr(runner, "count_phase", count_phase)
    monkeypatch.setattr(runner, "_check_instruments", lambda tasks: None)


def test_cells_done_live_agree_with_the_store_through_the_instruction_phase(
        store: ResultStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Committed cells waiting for their counts were not counted done live: 0/3 cells done
    while the store held 3 ok cells, for the whole instruction phase (for ever with a runner
    killed in it). Now done as soon as committed; stored again with counts, not twice."""
    seen: list[dict[str, object]] = []
    live = RunLive(store, interval_s=0.1, sample_workers=False)
    _fake_counts(monkeypatch, seen, store, live)
    try:
        summary = Runner(store, executor="inline", environment=ENV, live=live).run(
            loads_suite(COUNTED), name="c")
    finally:
        live.close()
    assert (summary.status, summary.executed) == ("finished", 3)
    (at,) = seen
    assert at["stored"] == 3
    assert {k: at["live"][k] for k in ("planned", "done", "tasks", "tasks_done")} == {  # type: ignore[index]
        "planned": 3, "done": 3, "tasks": 6, "tasks_done": 6}
    events = read_events(store, 0, limit=10_000)
    assert [e.data["done"] for e in events if e.kind == "cell_stored"] == [1, 2, 3]
    state = LiveState()
    state.apply(events)
    (run,) = state.snapshot()["runs"]
    assert (run["status"], run["planned"], run["done"], run["failed"]) == ("finished", 3, 3, 0)
    assert len(run["recent"]) == 3 and run["samples"] == 3 * 2 * 2


def test_a_resume_that_only_counts_keeps_every_timed_task_and_sample(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A runner that died in its instruction phase stored every timed task (6 of 6, 12
    samples); the resume only counts. It said ``kept 4/6`` tasks and 9 samples live: the
    counting task of each cell was taken for a rerun of its first round."""
    url = f"sqlite:///{tmp_path / 'r.db'}"
    seen: list[dict[str, object]] = []
    for die in (True, False):
        with open_store(url) as st:
            live = RunLive(st, interval_s=0.1, sample_workers=False)
            _fake_counts(monkeypatch, seen, st, live, die=die)
            try:
                runner = Runner(st, executor="inline", environment=ENV, live=live)
                if die:
                    with pytest.raises(_Stop):
                        runner.run(loads_suite(COUNTED), name="k")
                else:
                    assert runner.resume("k").status == "finished"
            finally:
                live.close()
    with open_store(url) as st:
        assert all(c.values("instructions") for c in st.load_run("k").cells)
        state = LiveState()
        state.apply(read_events(st, 0, limit=10_000))
    (run,) = state.snapshot()["runs"]
    assert [(r["before"], r["kept"]) for r in run["resumes"]] == [(6, 6)]
    assert (run["tasks"], run["tasks_skipped"], run["tasks_done"]) == (9, 6, 9)
    assert (run["planned"], run["skipped"], run["done"]) == (3, 3, 3)
    assert run["samples"] == 3 * 2 * 2
    assert seen[1]["live"]["done"] == 3  # type: ignore[index]
