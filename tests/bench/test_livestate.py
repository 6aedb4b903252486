"""What the live state makes of the event log: progress in tasks (rounds x cells), the same
live and after a reload; the series a dashboard keeps when the store holds many old runs; runs
newest first; samples counted as measured calls; runs whose runner is gone."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from allele.bench import lease as lease_mod
from allele.bench.lease import RunLease, shown_status, with_shown_status
from allele.bench.live import RunLive
from allele.bench.livestate import LiveState
from allele.bench.runner import Runner
from allele.bench.spec import loads_suite
from allele.store import ResultStore, open_store
from allele.store.leases import Lease
from allele.store.live import Event, StoredEvent, read_events
from allele.store.points import MetricPoint
from tests.faults.processes import killed_process

ENV = {"test": True}
L = "tests.bench.live_targets"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ResultStore]:
    st = open_store(f"sqlite:///{tmp_path / 'results.db'}")
    yield st
    st.close()


# -- progress in tasks ---------------------------------------------------------------------


def test_progress_counts_rounds_of_cells_live_and_after_a_reload(store: ResultStore) -> None:
    """Rounds run one after the other, so no cell is stored before the last round starts:
    progress and ETA count tasks (one round of one cell), as the runner completes them."""
    suite = loads_suite(f"name: r\ntarget: {L}:user_metrics\nseeds: 4\nrounds: 2\n"
                        "inner_loops: 1\nalloc_peak: false\nmatrix: {x: [1, 2, 3, 4]}\n")
    live = RunLive(store, interval_s=0.1, sample_workers=False)
    try:
        Runner(store, executor="inline", environment=ENV, live=live).run(suite, name="rounds")
    finally:
        live.close()
    events = read_events(store, 0, limit=10_000)
    first_stored = next(i for i, e in enumerate(events) if e.kind == "cell_stored")
    state = LiveState()
    state.apply(events[:first_stored])  # round 0 done, round 1 under way: no cell stored yet
    (run,) = state.snapshot(now=events[first_stored - 1].ts + 1.0)["runs"]
    assert (run["done"], run["planned"], run["tasks"]) == (0, 4, 8)
    assert run["tasks_done"] >= 4 and run["progress"] == run["tasks_done"] / 8
    assert run["eta_s"] is not None and run["eta_s"] > 0
    state.apply(events[first_stored:])
    (run,) = state.snapshot()["runs"]
    assert (run["status"], run["done"], run["tasks_done"], run["progress"]) == (
        "finished", 4, 8, 1.0)
    assert run["curve"]["v"] == list(range(9))  # the start, then one point per task
    reloaded = LiveState()
    reloaded.bootstrap(store)  # what a dashboard opened afterwards shows: the same curve
    (again,) = reloaded.snapshot()["runs"]
    assert again["curve"] == run["curve"] and again["progress"] == 1.0


def test_progress_of_a_resume_counts_the_tasks_already_stored() -> None:
    ev = [StoredEvent(1, 100.0, "s", "run_started", "r",
                      {"name": "n", "cells": 5, "skipped": 2, "tasks": 9, "tasks_total": 15,
                       "tasks_skipped": 6}),
          StoredEvent(2, 103.0, "s", "cell_finished", "r", {"key": "a", "tasks_done": 7}),
          StoredEvent(3, 106.0, "s", "cell_finished", "r", {"key": "b", "tasks_done": 8})]
    state = LiveState()
    state.apply(ev)
    (run,) = state.snapshot(now=110.0)["runs"]
    assert run["progress"] == pytest.approx(8 / 15)
    # 2 tasks in this invocation in 10 s: 7 left at 0.2 tasks/s
    assert run["eta_s"] == pytest.approx(35.0)
    assert run["curve"] == {"t": [100.0, 103.0, 106.0], "v": [6, 7, 8]}


def test_the_curve_of_a_resumed_run_goes_on_from_the_tasks_kept(store: ResultStore,
                                                                 tmp_path: Path) -> None:
    """Interrupted in round 1 of its last cell, a run keeps every task it finished: the two
    cells stored and round 0 of the third, kept in the store until its cell is whole (5 of 5;
    before rounds were kept, that round ran again: 4 of 5). Its curve breaks there and goes on
    from 5, live and after a reload."""
    flag = tmp_path / "flag"
    flag.touch()
    suite = loads_suite(f"name: r\norder: sequential\ntarget: tests.bench.runner_targets:"
                        "interrupt_after\nseeds: 2\nrounds: 2\ninner_loops: 1\nalloc_peak: "
                        f"false\nmatrix: {{x: [1, 2, 3]}}\nfixed: {{flag: '{flag}', stop_at: 3, "
                        "stop_seed: 1}\n")

    def run(resume: bool) -> str:
        live = RunLive(store, interval_s=0.1, sample_workers=False)
        try:
            runner = Runner(store, executor="inline", environment=ENV, live=live)
            return (runner.resume("resumed") if resume else runner.run(suite, name="resumed")
                    ).status
        finally:
            live.close()

    assert run(resume=False) == "interrupted"
    flag.unlink()
    assert run(resume=True) == "finished"
    events = read_events(store, 0, limit=10_000)
    second = [e for e in events if e.kind == "run_started"][1]
    assert (second.data["tasks_total"], second.data["tasks_skipped"]) == (6, 5)
    state = LiveState()
    state.apply(events)
    (run_,) = state.snapshot()["runs"]
    assert run_["curve"]["v"] == [0, 1, 2, 3, 4, 5, None, 5, 6]
    assert run_["curve"]["t"][6] == run_["curve"]["t"][7] == second.ts
    assert run_["resumes"] == [{"at": second.ts, "before": 5, "kept": 5}]
    assert (run_["tasks_done"], run_["progress"]) == (6, 1.0)
    reloaded = LiveState()
    reloaded.bootstrap(store)
    (again,) = reloaded.snapshot()["runs"]
    assert again["curve"] == run_["curve"] and again["resumes"] == run_["resumes"]


def test_a_resume_that_kept_nothing_breaks_the_curve_and_says_so() -> None:
    """A run interrupted before any of its tasks finished (or by a runner that kept no rounds)
    keeps no task on resume; its curve starts again at 0 after a break."""
    def ev(i: int, kind: str, **data: object) -> StoredEvent:
        return StoredEvent(i, float(i), "s", kind, "r", dict(data))

    events = [ev(1, "run_started", name="n", cells=8, tasks_total=24, tasks_skipped=0),
              *[ev(2 + i, "cell_finished", key=f"k{i}", tasks_done=i + 1) for i in range(11)],
              ev(13, "run_finished", status="interrupted"),
              ev(14, "run_started", name="n", cells=8, tasks_total=24, tasks_skipped=0),
              ev(15, "cell_finished", key="k0", tasks_done=1)]
    state = LiveState()
    state.apply(events)
    (run,) = state.snapshot()["runs"]
    assert run["curve"]["v"] == [*range(12), None, 0, 1]
    assert run["resumes"] == [{"at": 14.0, "before": 11, "kept": 0}]
    fresh = LiveState()  # a dashboard that saw only the resume: nothing to break from
    fresh.apply(events[13:])
    (run,) = fresh.snapshot()["runs"]
    assert run["curve"]["v"] == [0, 1] and run["resumes"] == []


def test_samples_are_measured_calls_not_metric_values() -> None:
    ev = [StoredEvent(1, 1.0, "s", "run_started", "r", {"name": "n", "cells": 1}),
          StoredEvent(2, 2.0, "s", "samples", "r",
                      {"key": "k", "n": 2, "values": {"wall_s": [1.0, 2.0], "cpu_s": [1.0, 2.0],
                                                      "score": [3.0, 4.0]}}),
          # an event of an older runner (no ``n``): each call gives every metric once
          StoredEvent(3, 3.0, "s", "samples", "r",
                      {"key": "k", "values": {"wall_s": [1.0, 2.0, 3.0], "score": [1.0] * 3}})]
    state = LiveState()
    state.apply(ev)
    assert state.snapshot()["runs"][0]["samples"] == 5


def test_a_round_that_runs_again_replaces_its_earlier_samples() -> None:
    """A run interrupted mid-round and resumed (or a dask task recomputed after its worker
    died) runs that round again: the samples its first attempt streamed were thrown away and
    are not counted twice. Another cell's samples and a stored cell's are kept."""
    def ev(i: int, kind: str, **data: object) -> StoredEvent:
        return StoredEvent(i, float(i), "s", kind, "r", dict(data))

    events = [ev(1, "run_started", name="n", cells=2),
              ev(2, "cell_started", key="a", round=0, rounds=2),
              ev(3, "samples", key="a", round=0, n=4, values={"wall_s": [1.0] * 4}),
              ev(4, "cell_started", key="b", round=0, rounds=1),
              ev(5, "samples", key="b", round=0, n=3, values={"wall_s": [1.0] * 3}),
              ev(6, "cell_stored", key="b", status="ok", done=1, failed=0),
              # interrupted here; the resumed runner starts a's round 0 again
              ev(7, "run_started", name="n", cells=2, skipped=1),
              ev(8, "cell_started", key="a", round=0, rounds=2)]
    state = LiveState()
    state.apply(events)
    assert state.snapshot()["runs"][0]["samples"] == 3
    state.apply([ev(9, "samples", key="a", round=0, n=5, values={"wall_s": [1.0] * 5}),
                 ev(10, "cell_started", key="a", round=1, rounds=2),
                 ev(11, "samples", key="a", round=1, n=5, values={"wall_s": [1.0] * 5}),
                 ev(12, "cell_stored", key="a", status="ok", done=2, failed=0)])
    assert state.snapshot()["runs"][0]["samples"] == 13


def test_the_runner_counts_a_rerun_round_once_and_the_counter_never_falls(
        store: ResultStore) -> None:
    """The runner's own count (what ``/metrics`` and the live state say) follows the same rule;
    ``allele_bench_samples_total`` keeps every sample received, so it never decreases."""
    from allele.bench.live import LiveBatch
    from allele.bench.task import CellTask
    from allele.store.model import RunInfo

    live = RunLive(store, metrics_port=None)
    try:
        info = RunInfo(id="r1", name="n", spec_name="s", target="t", status="running",
                       created_at=0.0)
        live.run_started(info, cells=1, tasks=1, skipped=0)
        task = CellTask(key="a", benchmark="b", target="t", params={}, seeds=(0, 1, 2))
        batch = LiveBatch("a", 0, os.getpid(), time.time(),
                          samples=(("wall_s", 1.0, 0, 0), ("wall_s", 1.1, 1, 0)))
        live.cell_started(task)
        live.live(batch)
        live.cell_started(task)  # the same round again: the first attempt's 2 samples go
        live.live(batch)
        live.live(LiveBatch("a", 0, os.getpid(), time.time(), samples=(("wall_s", 1.2, 2, 0),)))
        p = live.progress()
        assert p is not None and (p["samples"], p["received"]) == (3, 5)
    finally:
        live.close()


# -- series and runs after a bootstrap over many old runs ------------------------------------


def _old_runs(store: ResultStore, n: int, cells: int) -> list[str]:
    names = []
    for i in range(n):
        name = f"old-{i:02d}"
        run_id = store.create_run(name, "s", "t", {}, {})
        t0 = 1000.0 + 100 * i
        evs = [Event("run_started", "bench:1", ts=t0, run_id=run_id,
                     data={"name": name, "spec": "s", "cells": cells, "tasks_total": cells})]
        for c in range(cells):
            evs += [Event("samples", "bench:1", ts=t0 + c, run_id=run_id,
                          data={"key": f"k{c}", "n": 1, "values": {"wall_s": [0.1],
                                                                   "cpu_s": [0.1]}}),
                    Event("cell_finished", "bench:1", ts=t0 + c, run_id=run_id,
                          data={"key": f"k{c}", "tasks_done": c + 1}),
                    Event("cell_stored", "bench:1", ts=t0 + c, run_id=run_id,
                          data={"key": f"k{c}", "status": "ok", "done": c + 1, "failed": 0})]
        evs.append(Event("run_finished", "bench:1", ts=t0 + cells, run_id=run_id,
                         data={"status": "finished"}))
        store.append_events(evs)
        store.finish_run(run_id, "finished")
        names.append(name)
    return names


COMPONENTS = [("allele_evolution_best_fitness", "9:evolution-0", ()),
              ("allele_kraken_steps_per_second", "9:kraken-0", ()),
              ("allele_bench_worker_cpu_percent", "bench", (("worker", "runner"),)),
              ("allele_bench_worker_rss_bytes", "bench", (("worker", "runner"),)),
              ("myapp_requests_total", "user", (("route", "/chat"),))]


def test_bootstrap_keeps_component_series_and_the_newest_runs(store: ResultStore) -> None:
    store.write_metric_points([MetricPoint(m, c, lab, 900.0 + i, float(i))
                               for m, c, lab in COMPONENTS for i in range(5)])
    names = _old_runs(store, 12, 20)  # 12 runs x 20 cells x 2 metrics: 480 sample series
    state = LiveState()
    state.bootstrap(store)
    snap = state.snapshot()
    metrics = {(s["metric"], s["component"]) for s in snap["series"]}
    assert {(m, c) for m, c, _ in COMPONENTS} <= metrics  # none pushed out by samples
    samples = [s for s in snap["series"] if s["metric"].startswith("sample:")]
    assert len(samples) == state.max_sample_series == 100
    ids = {r.id: r.name for r in store.list_runs()}
    kept = {ids[s["labels"]] for s in samples}
    assert kept == {"old-11", "old-10", "old-09"}  # the newest runs' samples (40 + 40 + 20)
    # the runs: newest first
    assert [r["name"] for r in snap["runs"]][:5] == names[::-1][:5]


def test_running_runs_come_first_then_the_newest() -> None:
    def started(i: int, run: str) -> StoredEvent:
        return StoredEvent(i, 100.0 * i, "s", "run_started", run, {"name": run, "cells": 1})

    ev = [started(1, "a"), started(2, "b"), started(3, "c"),
          StoredEvent(4, 400.0, "s", "run_finished", "c", {"status": "finished"}),
          StoredEvent(5, 450.0, "s", "run_finished", "a", {"status": "finished"})]
    state = LiveState()
    state.apply(ev)
    assert [r["run_id"] for r in state.snapshot()["runs"]] == ["b", "c", "a"]


# -- runs whose runner is gone ---------------------------------------------------------------




def test_a_run_whose_lease_holder_was_killed_shows_interrupted(store: ResultStore) -> None:
    run_id = store.create_run("killed", "s", "t", {}, {})
    pid, started = killed_process()
    assert store.swap_lease(run_id, Lease(socket.gethostname(), pid, started), None) is None
    store.append_events([
        Event("run_started", "bench:1", ts=10.0, run_id=run_id,
              data={"name": "killed", "cells": 4, "tasks_total": 4}),
        Event("cell_started", "bench:1", ts=11.0, run_id=run_id, data={"key": "k"})])
    info = store.get_run(run_id)
    assert info.status == "running"  # the store is left as it is ...
    assert shown_status(store, info) == ("interrupted", True)  # ... and shown as it is
    assert [i.status for i in with_shown_status(store, [info])] == ["interrupted"]
    state = LiveState()
    state.bootstrap(store)
    (run,) = state.snapshot()["runs"]
    assert (run["status"], run["holder_gone"], run["running"], run["eta_s"]) == (
        "interrupted", True, [], None)
    # a resume starts it again
    store.append_events([Event("run_started", "bench:2", ts=20.0, run_id=run_id,
                               data={"name": "killed", "cells": 4, "tasks_total": 4})])
    state.apply(read_events(store, state.last_event_id))
    assert state.snapshot()["runs"][0]["status"] == "running"


def test_a_live_runner_with_an_old_heartbeat_is_not_stale(store: ResultStore) -> None:
    here = store.create_run("here", "s", "t", {}, {})
    me = Lease(socket.gethostname(), os.getpid(), psutil.Process().create_time())
    store.swap_lease(here, me, None)
    info = store.get_run(here)
    # on this host the pid decides: a heartbeat a day old does not make a live runner stale
    assert shown_status(store, info, now=time.time() + 86_400) == ("running", False)
    there = store.create_run("there", "s", "t", {}, {})
    store.swap_lease(there, Lease("another-host", 4242, 1.0), None)
    info = store.get_run(there)
    # on another host the heartbeat decides, with a margin of STALE_AFTER_S
    assert shown_status(store, info, now=time.time() + 600) == ("running", False)
    assert shown_status(store, info, now=time.time() + 1000) == ("interrupted", True)
    nobody = store.create_run("no-lease", "s", "t", {}, {})  # e.g. an A/B session
    assert shown_status(store, store.get_run(nobody)) == ("running", False)


def test_the_runner_beats_while_a_long_cell_runs(store: ResultStore,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The heartbeat comes from a thread, not from committed cells: a cell that runs for
    longer than STALE_AFTER_S does not make its runner look gone from another host."""
    monkeypatch.setattr(lease_mod, "HEARTBEAT_S", 0.05)
    run_id = store.create_run("beating", "s", "t", {}, {})
    held = RunLease(store, run_id, "beating")
    held.acquire()
    try:
        first = store.lease(run_id)
        assert first is not None
        deadline = time.monotonic() + 30
        beat = first
        while beat.heartbeat_at == first.heartbeat_at and time.monotonic() < deadline:
            time.sleep(0.02)
            beat = store.lease(run_id) or first
        assert beat.heartbeat_at > first.heartbeat_at  # no cell was committed meanwhile
    finally:
        held.release()
    assert store.lease(run_id) is None
