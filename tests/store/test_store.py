"""Result store: round trips, resume, run references, histories, concurrency, migrations."""

from __future__ import annotations

import math
import multiprocessing as mp
import pickle
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, select

from allele.errors import StoreError
from allele.observe.metrics import MetricPoint, MetricSink
from allele.store import ResultStore, open_store
from allele.store import schema as S
from allele.store.codecs import pack_samples, unpack_samples
from allele.store.live import Event, read_events
from allele.store.model import CellResult, Sample, cell_key

METRICS = ("wall_s", "cpu_user_s", "peak_rss_mb", "best_fitness", "diversity")


def make_cell(i: int, *, seeds: int = 3, repeats: int = 2, salt: float = 0.0,
              status: str = "ok", target: str = "evolution") -> CellResult:
    """A cell whose samples interleave metrics (as the runner records them)."""
    params = {"population": 50 * (i + 1), "mutation_rate": 0.1, "selection": "tournament"}
    rng = np.random.default_rng(1000 * i + int(salt * 7))
    samples = [Sample(m, float(rng.normal()) + salt, 11 + s, r)
               for s in range(seeds) for r in range(repeats) for m in METRICS]
    return CellResult(key=cell_key(target, params), target=target, params=params,
                      status=status, samples=samples if status == "ok" else [],  # type: ignore[arg-type]
                      error=None if status == "ok" else f"cell {i} crashed",
                      started_at=100.0 + i, finished_at=100.5 + i,
                      profile="   ncalls  tottime\n 1 0.1 f" if i % 2 else None)


def bits(values: list[float]) -> list[bytes]:
    return [struct.pack("<d", v) for v in values]


# --- round trips ----------------------------------------------------------------------------------

def test_round_trip_every_sample_exact(store: ResultStore) -> None:
    spec = {"name": "seed-matrix", "matrix": {"population": [50, 100]}, "repeats": 2}
    env = {"cpu": {"model": "x", "count": 2}, "python": "3.11.7", "git": None}
    run_id = store.create_run("first", "seed-matrix", "evolution", spec, env)
    cells = [make_cell(i) for i in range(6)]
    special = Sample("nrmse", float("nan"), 2**62, 0)
    cells[0].samples += [special, Sample("nrmse", float("inf"), -5, 1),
                         Sample("nrmse", -0.0, 0, 2), Sample("nrmse", 5e-324, 1, 3),
                         Sample("nrmse", 1.0000000000000002, 7, 4)]
    store.save_cells(run_id, cells[:3])
    for c in cells[3:]:
        store.save_cell(run_id, c)
    store.save_cell(run_id, make_cell(6, status="crashed"))
    store.finish_run(run_id, "finished")

    rec = store.load_run(run_id)
    assert rec.info.id == run_id
    assert rec.info.name == "first"
    assert rec.info.status == "finished"
    assert rec.info.finished_at is not None and rec.info.finished_at >= rec.info.created_at
    assert rec.info.spec == spec
    assert rec.info.environment == env
    assert rec.info.cell_count == 7
    assert rec.info.failed_count == 1
    assert [c.key for c in rec.cells] == [c.key for c in cells] + [make_cell(6).key]
    for original in cells:
        loaded = rec.cell(original.key)
        assert loaded is not None
        assert loaded.params == original.params
        assert loaded.profile == original.profile
        assert (loaded.started_at, loaded.finished_at) == (original.started_at,
                                                           original.finished_at)
        assert [(s.metric, s.seed, s.repeat) for s in loaded.samples] == \
            [(s.metric, s.seed, s.repeat) for s in original.samples]
        assert bits([s.value for s in loaded.samples]) == bits([s.value for s in original.samples])
    assert all(type(s) is Sample for c in rec.cells for s in c.samples)
    failed = rec.cells[-1]
    assert failed.status == "crashed"
    assert failed.error == "cell 6 crashed"
    assert failed.samples == []
    nan_sample = rec.cells[0].samples[-5]
    assert math.isnan(nan_sample.value) and nan_sample.seed == 2**62


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "wall_s", "ünï"]),
                          st.floats(allow_nan=True, allow_infinity=True),
                          st.integers(-(2**63), 2**63 - 1), st.integers(0, 10_000)),
                max_size=40))
def test_packing_is_lossless(rows: list[tuple[str, float, int, int]]) -> None:
    samples = [Sample(*r) for r in rows]
    packed = pack_samples(samples)
    out = unpack_samples(*packed)
    assert [(s.metric, s.seed, s.repeat) for s in out] == [(s.metric, s.seed, s.repeat)
                                                           for s in samples]
    assert bits([s.value for s in out]) == bits([s.value for s in samples])
    for metric in {r[0] for r in rows}:
        only = unpack_samples(*packed, only=metric)
        want = [s for s in samples if s.metric == metric]
        assert [(s.metric, s.seed, s.repeat) for s in only] == [(s.metric, s.seed, s.repeat)
                                                                for s in want]
        assert bits([s.value for s in only]) == bits([s.value for s in want])


def test_fast_sample_construction_gives_real_samples() -> None:
    import dataclasses
    import gc

    from allele.store.codecs import FAST_SAMPLES, make_samples

    assert FAST_SAMPLES  # Sample is a plain slotted dataclass today
    built = make_samples(["a", "b"], [1.5, float("inf")], [3, -4], [0, 7])
    assert built == [Sample("a", 1.5, 3, 0), Sample("b", float("inf"), -4, 7)]
    assert all(type(s) is Sample for s in built)
    assert hash(built[0]) == hash(Sample("a", 1.5, 3, 0))
    with pytest.raises(dataclasses.FrozenInstanceError):
        built[0].value = 2.0  # type: ignore[misc]
    assert gc.isenabled()


def test_unstorable_samples_are_a_store_error(sqlite_store: ResultStore) -> None:
    run_id = sqlite_store.create_run("r", "s", "t", {}, {})
    cell = make_cell(0)
    cell.samples.append(Sample("wall_s", 1.0, 2**64, 0))
    with pytest.raises(StoreError, match="64-bit"):
        sqlite_store.save_cell(run_id, cell)
    bad = make_cell(1)
    bad.status = "weird"  # type: ignore[assignment]
    with pytest.raises(StoreError, match="unknown status"):
        sqlite_store.save_cell(run_id, bad)
    assert sqlite_store.finished_cell_keys(run_id) == set()


def test_messy_error_text_is_stored(store: ResultStore) -> None:
    run_id = store.create_run("messy", "spec", "evolution", {}, {})
    cell = make_cell(0, status="crashed")
    cell.error = "Segmentation fault\x00\x00 after bad bytes \udcff here"
    cell.profile = "ok profile"
    store.save_cell(run_id, cell)
    got = store.load_run(run_id).cells[0]
    assert got.error == "Segmentation fault\\x00\\x00 after bad bytes \\udcff here"
    assert got.profile == "ok profile"
    bad_key = make_cell(1)
    bad_key.key = "evolution|\udcff"
    with pytest.raises(StoreError, match="not valid Unicode"):
        store.save_cell(run_id, bad_key)
    assert store.finished_cell_keys(run_id) == {cell.key}


# --- duplicates and resume ------------------------------------------------------------------------

def test_saving_a_key_again_replaces_it(store: ResultStore) -> None:
    run_id = store.create_run("r", "s", "evolution", {}, {})
    store.save_cells(run_id, [make_cell(i) for i in range(4)])
    store.save_cell(run_id, make_cell(1, status="failed"))
    store.save_cell(run_id, make_cell(2, salt=5.0, seeds=1, repeats=1))
    store.save_cells(run_id, [make_cell(3, salt=1.0), make_cell(3, salt=2.0)])

    rec = store.load_run(run_id)
    assert len(rec.cells) == 4
    assert len({c.key for c in rec.cells}) == 4
    assert rec.info.cell_count == 4 and rec.info.failed_count == 1
    c1, c2, c3 = rec.cell(make_cell(1).key), rec.cell(make_cell(2).key), rec.cell(make_cell(3).key)
    assert c1 is not None and c1.status == "failed" and c1.samples == []
    assert c2 is not None and c2.samples == make_cell(2, salt=5.0, seeds=1, repeats=1).samples
    assert c3 is not None and c3.samples == make_cell(3, salt=2.0).samples
    if store.url.startswith("sqlite"):
        engine = create_engine(store.url)
        with engine.connect() as conn:
            n_blobs = len(conn.execute(select(S.samples.c.cell_pk)).all())
        engine.dispose()
        assert n_blobs == 3  # the failed cell has none, replaced cells left none behind
    # the counts move with each write: a failed cell replaced by an ok one, a new failed one
    store.save_cells(run_id, [make_cell(1), make_cell(9, status="timeout")])
    info = store.get_run(run_id)
    assert info.cell_count == 5 and info.failed_count == 1


def test_finished_cell_keys_for_resume(store: ResultStore) -> None:
    run_id = store.create_run("r", "s", "evolution", {}, {})
    other = store.create_run("other", "s", "evolution", {}, {})
    store.save_cells(run_id, [make_cell(0), make_cell(1, status="timeout")])
    store.save_cell(other, make_cell(2))
    store.finish_run(run_id, "interrupted")
    assert store.finished_cell_keys(run_id) == {make_cell(0).key, make_cell(1).key}
    assert store.finished_cell_keys(run_id, include_failed=False) == {make_cell(0).key}
    assert store.finished_cell_keys("r") == {make_cell(0).key, make_cell(1).key}
    store.finish_run(run_id, "running")
    info = store.get_run(run_id)
    assert info.status == "running" and info.finished_at is None
    store.save_cell(run_id, make_cell(3))
    assert len(store.finished_cell_keys(run_id)) == 3


# --- runs -----------------------------------------------------------------------------------------

def test_list_and_resolve_runs(store: ResultStore) -> None:
    with pytest.raises(StoreError, match="no runs yet"):
        store.resolve_run("latest")
    ids = [store.create_run(f"run-{i}", "spec", "kraken", {"i": i}, {}) for i in range(3)]
    assert len(set(ids)) == 3
    assert [r.id for r in store.list_runs()] == ids[::-1]
    assert [r.name for r in store.list_runs(limit=2)] == ["run-2", "run-1"]
    assert store.resolve_run("latest") == ids[2]
    assert store.resolve_run("run-0") == ids[0]
    assert store.resolve_run(ids[1]) == ids[1]
    assert store.get_run("run-1").spec == {"i": 1}
    prefix = ids[0][:8]
    if not any(i.startswith(prefix) for i in ids[1:]):
        assert store.resolve_run(prefix) == ids[0]
    with pytest.raises(StoreError, match="no run 'nope'"):
        store.get_run("nope")
    with pytest.raises(StoreError, match="no run 'nope'"):
        store.load_run("nope")
    with pytest.raises(StoreError, match="already exists"):
        store.create_run("run-1", "spec", "kraken", {}, {})
    with pytest.raises(StoreError, match="reserved"):
        store.create_run("latest", "spec", "kraken", {}, {})
    with pytest.raises(StoreError, match="no run with id"):
        store.save_cell("0123456789ab", make_cell(0))
    with pytest.raises(StoreError, match="no run with id"):
        store.finish_run("0123456789ab", "finished")
    with pytest.raises(StoreError, match="unknown run status"):
        store.finish_run(ids[0], "done")  # type: ignore[arg-type]
    unnamed = store.create_run("", "spec", "kraken", {}, {})
    assert store.get_run(unnamed).name == unnamed


# --- loaded records behave as plain records ------------------------------------------------------

def _tricky_cell(i: int, nan: bool = False) -> CellResult:
    """A cell with special floats and repeated (seed, repeat) pairs (ties in ``values``).

    NaN only on request: a NaN sample equals only itself, so a loaded copy never compares equal.
    """
    cell = make_cell(i)
    cell.samples += [Sample("wall_s", float("nan") if nan else 3.25, 11, 0),
                     Sample("wall_s", -0.0, 11, 0),
                     Sample("wall_s", float("-inf"), 2**62, 0), Sample("extra", 5e-324, -3, 9),
                     Sample("wall_s", 1.5, 10, 7)]
    return cell


def _saved_run(store: ResultStore, n: int = 6,
               nan: bool = False) -> tuple[str, list[CellResult]]:
    run_id = store.create_run("lazy", "spec", "evolution", {"m": {"a": [1, 2]}}, {"git": "abc"})
    cells = [_tricky_cell(i, nan) for i in range(n)] + [make_cell(n, status="timeout")]
    store.save_cells(run_id, cells)
    store.finish_run(run_id, "finished")
    return run_id, cells


def test_loaded_cells_equal_print_and_pickle_as_plain_records(store: ResultStore) -> None:
    import copy
    import dataclasses

    run_id, cells = _saved_run(store)
    rec = store.load_run(run_id)
    # Equality both ways, before any sample was touched, and inequality.
    assert cells == store.load_run(run_id).cells
    assert store.load_run(run_id).cells == cells
    assert rec.cells[0] != cells[1] and cells[1] != rec.cells[0]
    assert rec.cells != cells[::-1]
    assert all(isinstance(c, CellResult) for c in rec.cells)
    fields = [f.name for f in dataclasses.fields(CellResult)]
    as_plain = CellResult(**{f: getattr(rec.cells[2], f) for f in fields})
    assert repr(rec.cells[2]) == repr(as_plain)
    assert repr(rec.cells[2]).startswith("CellResult(key=")
    for loaded in (store.load_run(run_id).cells, rec.cells):
        back = pickle.loads(pickle.dumps(loaded))
        assert [type(c) for c in back] == [CellResult] * len(cells)
        assert back == cells
    assert copy.deepcopy(store.load_run(run_id).cells[1]) == cells[1]
    assert type(copy.copy(store.load_run(run_id).cells[1])) is CellResult
    assert dataclasses.asdict(store.load_run(run_id).cells[3]) == dataclasses.asdict(cells[3])
    changed = dataclasses.replace(store.load_run(run_id).cells[3], status="failed")
    assert changed.status == "failed" and changed.samples == cells[3].samples
    assert bits([s.value for s in rec.cells[0].samples]) == \
        bits([s.value for s in cells[0].samples])
    assert rec.cells[-1].samples == [] and rec.cells[-1].status == "timeout"


def test_loaded_samples_in_any_access_order(store: ResultStore) -> None:
    run_id, cells = _saved_run(store, n=9, nan=True)
    order = [4, 4, 0, 8, 2, 9, 1, 7, 3, 6, 5]  # a lone lookup, then the rest in a jumble
    rec = store.load_run(run_id)
    for i in order:
        got = rec.cells[i].samples
        assert [(s.metric, s.seed, s.repeat) for s in got] == \
            [(s.metric, s.seed, s.repeat) for s in cells[i].samples]
        assert bits([s.value for s in got]) == bits([s.value for s in cells[i].samples])
        assert all(type(s) is Sample for s in got)
    assert rec.cells[4].samples is rec.cells[4].samples  # built once, then kept
    one = store.load_run(run_id).cells[5].samples  # a single lookup alone
    assert bits([s.value for s in one]) == bits([s.value for s in cells[5].samples])


def test_values_and_metrics_without_building_samples(store: ResultStore) -> None:
    run_id, cells = _saved_run(store, nan=True)
    for rec in (store.load_run(run_id), store.load_run(run_id)):
        for loaded, original in zip(rec.cells, cells, strict=True):
            assert loaded.metrics() == original.metrics()
            for metric in [*original.metrics(), "no_such_metric"]:
                # the same values in the same (seed, repeat) order, ties in saved order
                assert bits(loaded.values(metric)) == bits(original.values(metric))
                got, want = loaded.keyed(metric), original.keyed(metric)
                assert list(got) == list(want)  # (seed, repeat) keys, in order
                assert bits(list(got.values())) == bits(list(want.values()))
        rec.cells[0].samples  # noqa: B018 - the second pass answers from built samples too
    hist = store.cell_history(cells[0].key, metric="wall_s")
    assert bits(hist[0][1].values("wall_s")) == bits(cells[0].values("wall_s"))
    assert hist[0][1].metrics() == ["wall_s"] and hist[0][1].values("cpu_user_s") == []


def test_values_of_cells_without_samples(sqlite_store: ResultStore) -> None:
    run_id = sqlite_store.create_run("empty", "spec", "evolution", {}, {})
    sqlite_store.save_cells(run_id, [make_cell(0, status="failed"), make_cell(1, status="crashed")])
    rec = sqlite_store.load_run(run_id)
    assert [c.metrics() for c in rec.cells] == [[], []]
    assert [c.values("wall_s") for c in rec.cells] == [[], []]
    assert [c.samples for c in rec.cells] == [[], []]


def test_threads_build_one_list_per_loaded_cell(sqlite_store: ResultStore) -> None:
    import threading

    run_id, cells = _saved_run(sqlite_store, n=40)
    rec = sqlite_store.load_run(run_id)
    seen: list[list[list[Sample]]] = [[] for _ in range(4)]
    start = threading.Barrier(4)

    def read(t: int) -> None:
        start.wait()
        order = list(range(len(rec.cells)))[t::2] + list(range(len(rec.cells)))
        seen[t] = [rec.cells[i].samples for i in sorted(set(order), key=order.index)]
        seen[t].sort(key=lambda lst: id(lst))

    threads = [threading.Thread(target=read, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    ids = [sorted(id(lst) for lst in got) for got in seen]
    assert ids[0] == ids[1] == ids[2] == ids[3]  # every thread got the very same lists
    assert rec.cells == cells


def test_loaded_records_can_be_changed(store: ResultStore) -> None:
    run_id, cells = _saved_run(store)
    rec = store.load_run(run_id)
    rec.cells[0].samples.append(Sample("wall_s", 99.0, 0, 0))
    assert rec.cells[0].values("wall_s")[0] == 99.0
    assert "wall_s" in rec.cells[0].metrics()
    rec.cells[1].samples = [Sample("new", 1.0, 1, 1)]  # replaced before it was ever built
    assert rec.cells[1].metrics() == ["new"] and rec.cells[1].values("new") == [1.0]
    assert rec.cells[1] == CellResult(**{**{f: getattr(cells[1], f) for f in
                                            ("key", "target", "params", "status", "error",
                                             "started_at", "finished_at", "profile")},
                                         "samples": [Sample("new", 1.0, 1, 1)]})
    rec.info.environment["note"] = "x"
    rec.info.spec = {"replaced": True}
    assert rec.info.environment == {"git": "abc", "note": "x"}
    assert rec.info.spec == {"replaced": True}
    # the store is untouched
    again = store.load_run(run_id)
    assert again.cells == cells and again.info.environment == {"git": "abc"}


def test_loaded_run_infos_equal_print_and_pickle_as_plain_ones(store: ResultStore) -> None:
    from allele.store.model import RunInfo

    run_id, _ = _saved_run(store)
    info = store.get_run(run_id)
    plain = RunInfo(id=info.id, name="lazy", spec_name="spec", target="evolution",
                    status="finished", created_at=info.created_at, finished_at=info.finished_at,
                    spec={"m": {"a": [1, 2]}}, environment={"git": "abc"}, cell_count=7,
                    failed_count=1)
    assert info == plain and plain == store.get_run(run_id)
    assert store.list_runs() == [plain]
    assert repr(store.get_run(run_id)) == repr(plain)
    back = pickle.loads(pickle.dumps(store.get_run(run_id)))
    assert type(back) is RunInfo and back == plain
    assert store.cell_history(_tricky_cell(0).key)[0][0] == plain


def test_a_failing_read_is_a_store_error(store: ResultStore) -> None:
    """Reads take the driver's own path on PostgreSQL (binary rows); its errors are wrapped too."""
    run_id, _ = _saved_run(store)
    engine = create_engine(store.url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE samples")
    engine.dispose()
    with pytest.raises(StoreError, match=r"cannot load a run .*samples"):
        store.load_run(run_id)
    with pytest.raises(StoreError, match="cannot read a cell history"):
        store.cell_history(_tricky_cell(0).key)
    with pytest.raises(StoreError, match="cannot read a metric history"):
        store.metric_history(_tricky_cell(0).key, "wall_s")


# --- histories ------------------------------------------------------------------------------------

def test_cell_history_oldest_first(store: ResultStore) -> None:
    key = make_cell(0).key
    ids = []
    for i in range(5):
        run_id = store.create_run(f"h{i}", "spec", "evolution", {}, {"n": i})
        ids.append(run_id)
        if i == 2:
            store.save_cell(run_id, make_cell(1))  # this run lacks the cell
        elif i == 3:
            store.save_cell(run_id, make_cell(0, status="failed"))
        else:
            store.save_cells(run_id, [make_cell(0, salt=float(i)), make_cell(1)])
    hist = store.cell_history(key)
    assert [info.id for info, _ in hist] == [ids[0], ids[1], ids[3], ids[4]]
    assert [info.environment["n"] for info, _ in hist] == [0, 1, 3, 4]
    assert hist[0][1].samples == make_cell(0, salt=0.0).samples
    assert hist[2][1].status == "failed"
    assert all(cell.key == key for _, cell in hist)

    wall = store.cell_history(key, metric="wall_s")
    assert [info.id for info, _ in wall] == [ids[0], ids[1], ids[4]]
    assert [s.value for s in wall[2][1].samples] == make_cell(0, salt=4.0).values("wall_s")
    assert all(s.metric == "wall_s" for _, c in wall for s in c.samples)

    mh = store.metric_history(key, "wall_s")
    assert len(mh) == 3 and mh.run_ids == [info.id for info, _ in wall]
    assert mh.run_names == ["h0", "h1", "h4"] and mh.statuses == ["ok", "ok", "ok"]
    assert mh.created_at.tolist() == [info.created_at for info, _ in wall]
    for i, (_, cell) in enumerate(wall):
        assert bits(mh.run_values(i).tolist()) == bits([s.value for s in cell.samples])
        lo, hi = mh.offsets[i], mh.offsets[i + 1]
        assert mh.seeds[lo:hi].tolist() == [s.seed for s in cell.samples]
        assert mh.repeats[lo:hi].tolist() == [s.repeat for s in cell.samples]
    assert mh.medians().tolist() == [float(np.median(c.values("wall_s"))) for _, c in wall]
    assert store.metric_history(key, "wall_s", limit=1).run_ids == [ids[4]]
    empty = store.metric_history(key, "no_such_metric")
    assert len(empty) == 0 and empty.values.size == 0 and empty.offsets.tolist() == [0]

    last_two = store.cell_history(key, limit=2)
    assert [info.id for info, _ in last_two] == [ids[3], ids[4]]
    assert store.cell_history(key, metric="no_such_metric") == []
    assert store.cell_history("evolution|{}") == []


# --- telemetry ------------------------------------------------------------------------------------

def test_metric_points(store: ResultStore) -> None:
    sink: MetricSink = store  # the store is the telemetry sink (checked by mypy too)
    assert isinstance(sink, MetricSink)
    pts = [MetricPoint("cpu_percent", "system", (("host", "a"), ("cpu", "0")), 10.0 + i,
                       float(i)) for i in range(5)]
    pts += [MetricPoint("cpu_percent", "evolution", (), 12.5, 99.0),
            MetricPoint("rss_mb", "system", (), 11.0, 300.0)]
    sink.write_metric_points(pts)
    sink.write_metric_points([])
    got = store.read_metric_points("cpu_percent")
    assert all(type(p) is MetricPoint for p in got)
    assert [(p.component, p.timestamp, p.value) for p in got] == [
        ("system", 10.0, 0.0), ("system", 11.0, 1.0), ("system", 12.0, 2.0),
        ("evolution", 12.5, 99.0), ("system", 13.0, 3.0), ("system", 14.0, 4.0)]
    assert got[0] == pts[0]  # labels keep their pairs and order
    assert got[3].labels == ()
    sys_since = store.read_metric_points("cpu_percent", component="system", since=12.0)
    assert [p.value for p in sys_since] == [2.0, 3.0, 4.0]
    assert [p.value for p in store.read_metric_points("rss_mb")] == [300.0]
    assert store.read_metric_points("nothing") == []


def test_metric_points_from_any_point_like_object(sqlite_store: ResultStore) -> None:
    @dataclass(frozen=True)
    class Point:
        metric: str
        component: str
        labels: dict[str, str] = field(default_factory=dict)
        timestamp: float = 0.0
        value: float = 0.0

    sqlite_store.write_metric_points([Point("m", "c", {"k": "v"}, 1.0, 2.0)])  # type: ignore[list-item]
    assert sqlite_store.read_metric_points("m") == [MetricPoint("m", "c", (("k", "v"),), 1.0, 2.0)]
    with pytest.raises(StoreError, match="not a metric point"):
        sqlite_store.write_metric_points([object()])  # type: ignore[list-item]


# --- opening, errors, migrations ------------------------------------------------------------------

def test_default_location_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ALLELE_STORE_URL", raising=False)
    monkeypatch.delenv("ALLELE_DATA_DIR", raising=False)
    with open_store() as s:
        s.create_run("x", "s", "t", {}, {})
    db = tmp_path / ".allele" / "results.db"
    assert db.is_file()
    other = tmp_path / "elsewhere" / "r.db"
    monkeypatch.setenv("ALLELE_STORE_URL", f"sqlite:///{other}")
    with open_store() as s:
        assert s.list_runs() == []
    assert other.is_file()
    with open_store(f"sqlite:///{db}") as s:
        assert [r.name for r in s.list_runs()] == ["x"]


def test_read_only_store(sqlite_store: ResultStore, sqlite_url: str) -> None:
    run_id = sqlite_store.create_run("ro", "spec", "evolution", {}, {})
    sqlite_store.save_cell(run_id, make_cell(0))
    path = sqlite_url.removeprefix("sqlite:///")
    # An up-to-date store opens with a read transaction only, so a read-only handle works.
    with open_store(f"sqlite:///file:{path}?mode=ro&uri=true") as ro:
        assert ro.load_run("ro").cells[0].samples == make_cell(0).samples
        with pytest.raises(StoreError, match="readonly"):
            ro.create_run("other", "spec", "evolution", {}, {})


def test_sqlite_pragmas(sqlite_store: ResultStore, sqlite_url: str) -> None:
    sqlite_store.create_run("x", "s", "t", {}, {})
    raw = sqlite_store._engine  # the store's own connections carry the pragmas
    with raw.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar_one() >= 30_000
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL


def test_errors_are_store_errors(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="invalid store URL"):
        open_store("sqlite:not-a-url")  # a scheme but no URL ("not a url" is a file path)
    with pytest.raises(StoreError, match="unsupported store URL"):
        open_store("nosuchdb://x/y")
    with pytest.raises(StoreError, match="cannot reach the result store"):
        open_store("postgresql+psycopg://u:secret@127.0.0.1:1/nothing")
    with pytest.raises(StoreError) as info:
        open_store("postgresql+psycopg://u:secret@127.0.0.1:1/nothing")
    assert "secret" not in str(info.value)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreError, match="cannot create the store directory"):
        open_store(f"sqlite:///{blocker / 'sub' / 'r.db'}")
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="cannot open the store"):
        open_store(f"sqlite:///{garbage}")
    # a read-only open rewrites the URL for SQLite (file:...?mode=ro&uri=true); the error names
    # the store as the user gave it
    with pytest.raises(StoreError) as info:
        open_store(f"sqlite:///{garbage}", read_only=True)
    assert f"(sqlite:///{garbage})" in str(info.value) and "mode=ro" not in str(info.value)
    s = open_store(f"sqlite:///{tmp_path / 'ok.db'}")
    s.close()
    with pytest.raises(StoreError, match="closed"):
        s.list_runs()


def _v1_database(url: str) -> str:
    """A store at schema version 1 holding one run with one cell, written with v1 tables."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url)
    with engine.begin() as conn:
        assert S.migrate(conn, target=1) == (0, 1)
        conn.execute(S.runs.insert().values(
            id="aaaabbbbcccc", name="old", spec_name="s", target="evolution", status="finished",
            created_at=1.0, finished_at=2.0, spec="{}", environment='{"os": "linux"}',
            cell_count=1, failed_count=0))
        run_pk = conn.execute(select(S.runs.c.pk)).scalar_one()
        cell = make_cell(0)
        conn.execute(S.cells.insert().values(
            run_pk=run_pk, key=cell.key, target=cell.target, params='{"population": 50, '
            '"mutation_rate": 0.1, "selection": "tournament"}', status="ok", error=None,
            started_at=cell.started_at, finished_at=cell.finished_at, profile=None,
            n_samples=len(cell.samples)))
        cell_pk = conn.execute(select(S.cells.c.pk)).scalar_one()
        n, metrics, idx, seeds, reps, vals = pack_samples(cell.samples)
        conn.execute(S.samples.insert().values(cell_pk=cell_pk, n=n, metrics=metrics,
                                               metric_idx=idx, seeds=seeds, repeats=reps,
                                               vals=vals))
        tables = set(conn.dialect.get_table_names(conn))
    engine.dispose()
    assert "metric_points" not in tables
    return cell.key


def test_opening_an_old_database_upgrades_it(store_url: str) -> None:
    key = _v1_database(store_url)
    with open_store(store_url) as s:
        assert s.schema_version() == S.LATEST_VERSION == 7
        rec = s.load_run("old")
        assert rec.info.environment == {"os": "linux"}
        assert rec.cells[0].key == key and rec.cells[0].samples == make_cell(0).samples
        s.write_metric_points([MetricPoint("m", "c", (), 1.0, 2.0)])
        assert [p.value for p in s.read_metric_points("m")] == [2.0]
        s.append_events([Event("x", "s")])  # the live tables (migration 3) are there
        assert [e.kind for e in read_events(s, 0)] == ["x"]
        s.save_round(rec.info.id, make_cell(1), 0)  # and the kept rounds (migration 7)
        assert list(s.saved_rounds("old")) == [make_cell(1).key]
    with open_store(store_url) as s:  # reopening applies nothing twice
        assert s.schema_version() == S.LATEST_VERSION
        assert [r.name for r in s.list_runs()] == ["old"]


def test_version_4_points_are_packed_into_blocks(store_url: str) -> None:
    if store_url.startswith("sqlite:///"):
        Path(store_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(store_url)
    with engine.begin() as conn:
        assert S.migrate(conn, target=4) == (0, 4)
        from sqlalchemy import MetaData, Table

        mp_old = Table("metric_points", MetaData(), autoload_with=conn)
        conn.execute(mp_old.insert(), [
            {"metric": "m", "component": "c", "labels": '[["k", "v"]]', "timestamp": t,
             "value": v} for t, v in ((3.0, 30.0), (1.0, 10.0), (2.0, 20.0))]
            + [{"metric": "m", "component": "d", "labels": "[]", "timestamp": 1.5,
                "value": 15.0}])
    engine.dispose()
    with open_store(store_url) as s:
        assert s.schema_version() == 7
        got = s.read_metric_points("m")
        assert [(p.component, p.timestamp, p.value) for p in got] == [
            ("c", 1.0, 10.0), ("d", 1.5, 15.0), ("c", 2.0, 20.0), ("c", 3.0, 30.0)]
        assert got[0].labels == (("k", "v"),)
        assert [p.value for p in s.read_metric_points("m", "c", since=2.0)] == [20.0, 30.0]


def test_a_newer_schema_is_refused(sqlite_url: str) -> None:
    open_store(sqlite_url).close()
    engine = create_engine(sqlite_url)
    with engine.begin() as conn:
        conn.execute(S.schema_version.update().values(version=99))
    engine.dispose()
    with pytest.raises(StoreError, match="schema version 99"):
        open_store(sqlite_url)


def test_store_pickles_as_its_url(sqlite_store: ResultStore) -> None:
    run_id = sqlite_store.create_run("p", "s", "t", {}, {})
    clone = pickle.loads(pickle.dumps(sqlite_store))
    try:
        assert clone.url == sqlite_store.url
        clone.save_cell(run_id, make_cell(0))
        assert sqlite_store.finished_cell_keys(run_id) == {make_cell(0).key}
    finally:
        clone.close()


# --- concurrency ----------------------------------------------------------------------------------

def _worker(url: str, run_id: str, worker: int, n: int) -> None:
    with open_store(url) as s:
        for j in range(n):
            s.save_cell(run_id, make_cell(1000 * worker + j, seeds=2, repeats=2))
            if j % 10 == 0:
                s.load_run(run_id)  # readers interleave with the writers


def _whole_run(store: ResultStore, name: str, n: int, done: mp.Queue) -> None:  # type: ignore[type-arg]
    # ``store`` was inherited through fork: it must reconnect by itself in the child.
    run_id = store.create_run(name, "spec", "evolution", {}, {})
    for j in range(n):
        store.save_cell(run_id, make_cell(j, salt=float(len(name))))
    store.finish_run(run_id, "finished")
    done.put(run_id)


def _join_all(procs: Sequence[mp.process.BaseProcess]) -> None:
    for p in procs:
        p.join(timeout=300)
    codes = [p.exitcode for p in procs]
    for p in procs:
        if p.is_alive():
            p.kill()
    assert codes == [0] * len(procs), f"worker exit codes {codes}"


def _four_writers(url: str) -> None:
    ctx = mp.get_context("fork")
    with open_store(url) as s:
        run_id = s.create_run("shared", "spec", "evolution", {}, {})
    procs = [ctx.Process(target=_worker, args=(url, run_id, w, 50)) for w in range(4)]
    for p in procs:
        p.start()
    _join_all(procs)
    with open_store(url) as s:
        rec = s.load_run(run_id)
        assert len(rec.cells) == 200
        assert rec.info.cell_count == 200
        assert {c.key for c in rec.cells} == {make_cell(1000 * w + j).key
                                              for w in range(4) for j in range(50)}
        assert all(len(c.samples) == 4 * len(METRICS) for c in rec.cells)
        want = make_cell(3002, seeds=2, repeats=2)
        got = rec.cell(want.key)
        assert got is not None and got.samples == want.samples


def _two_runs(url: str) -> None:
    ctx = mp.get_context("fork")
    done = ctx.Queue()
    with open_store(url) as s:
        s.list_runs()  # the parent's store has live connections when it forks
        procs = [ctx.Process(target=_whole_run, args=(s, name, 60, done))
                 for name in ("alpha", "beta-run")]
        for p in procs:
            p.start()
        _join_all(procs)
        ids = {done.get(timeout=10), done.get(timeout=10)}
        assert {r.id for r in s.list_runs()} == ids
        for name in ("alpha", "beta-run"):
            rec = s.load_run(name)
            assert rec.info.status == "finished"
            assert len(rec.cells) == 60 and rec.info.cell_count == 60
            assert rec.cells[5].samples == make_cell(5, salt=float(len(name))).samples


def test_four_processes_write_one_sqlite_file(sqlite_url: str) -> None:
    _four_writers(sqlite_url)


def test_two_concurrent_runs_sqlite(sqlite_url: str) -> None:
    _two_runs(sqlite_url)


@pytest.mark.postgres
def test_four_processes_write_postgres(pg_url: str) -> None:
    _four_writers(pg_url)


@pytest.mark.postgres
def test_two_concurrent_runs_postgres(pg_url: str) -> None:
    _two_runs(pg_url)


def test_lock_contention_is_retried_then_reported(sqlite_url: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlite3
    import threading
    import time

    from allele.store import engine as store_mod

    # A short busy timeout makes SQLite give up quickly, so the bounded retry has to act.
    monkeypatch.setattr(store_mod, "_BUSY_TIMEOUT_MS", 30)
    sleeps: list[float] = []
    real_sleep = time.sleep

    def counting_sleep(seconds: float) -> None:
        sleeps.append(seconds)
        real_sleep(seconds)

    monkeypatch.setattr(time, "sleep", counting_sleep)
    s = open_store(sqlite_url)
    run_id = s.create_run("locked", "spec", "evolution", {}, {})
    path = sqlite_url.removeprefix("sqlite:///")
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")  # another process's writer holds the lock ...
    release = threading.Timer(0.25, lambda: holder.execute("COMMIT"))  # ... for a while
    release.start()
    try:
        s.save_cell(run_id, make_cell(0))
    finally:
        release.join()
    assert sleeps, "the write should have been retried while the lock was held"
    assert s.finished_cell_keys(run_id) == {make_cell(0).key}

    monkeypatch.setattr(store_mod, "_WRITE_RETRIES", 3)
    holder.execute("BEGIN IMMEDIATE")  # now the lock is never released
    try:
        with pytest.raises(StoreError, match="locked"):
            s.save_cell(run_id, make_cell(1))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert s.finished_cell_keys(run_id) == {make_cell(0).key}
    s.close()


def test_threads_share_one_store(store: ResultStore) -> None:
    import threading

    run_id = store.create_run("threads", "spec", "evolution", {}, {})
    errors: list[BaseException] = []

    def write(t: int) -> None:
        try:
            for j in range(25):
                store.save_cell(run_id, make_cell(100 * t + j, seeds=1, repeats=1))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []
    assert len(store.finished_cell_keys(run_id)) == 100
    assert store.get_run(run_id).cell_count == 100


def _open_and_write(url: str, i: int) -> None:
    with open_store(url) as s:
        s.create_run(f"opener-{i}", "s", "t", {}, {})


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_concurrent_first_open_migrates_once(backend: str, request: pytest.FixtureRequest) -> None:
    url = str(request.getfixturevalue("pg_url" if backend == "postgres" else "sqlite_url"))
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_open_and_write, args=(url, i)) for i in range(3)]
    for p in procs:
        p.start()
    _join_all(procs)
    with open_store(url) as s:
        assert s.schema_version() == S.LATEST_VERSION
        assert sorted(r.name for r in s.list_runs()) == ["opener-0", "opener-1", "opener-2"]


def test_loop_counts_read_only_what_a_new_run_needs(tmp_path: Path) -> None:
    """Per ok cell that was timed: its largest loop count, 1 when none was stored; cells not
    timed (counted only) and failed cells are absent."""
    with open_store(f"sqlite:///{tmp_path / 'r.db'}") as store:
        run = store.create_run("r", "s", "t", {}, {})
        looped = [Sample("wall_s", 1e-6, s, 0) for s in range(3)] + [
            Sample("loops", float(n), s, 0) for s, n in enumerate((100, 200, 100))]
        store.save_cells(run, [
            CellResult("t|a", "t", {}, "ok", looped),
            CellResult("t|b", "t", {}, "ok", [Sample("wall_s", 0.1, 0, 0),
                                               Sample("score", 3.0, 0, 0)]),
            CellResult("t|c", "t", {}, "ok", [Sample("instructions", 5e6, 0, 0)]),
            CellResult("t|d", "t", {}, "failed", [Sample("wall_s", 0.1, 0, 0)],
                       error="boom"),
        ])
        assert store.loop_counts(run) == {"t|a": 200, "t|b": 1}


def test_a_cells_rounds_are_kept_until_the_cell_is_saved_whole(store_url: str) -> None:
    """A round of a cell of several rounds survives the process that ran it (a stopped run
    resumes from it) and is exact: every sample (NaN and inf too), status, error, times, the
    profile and the declarations. Saving the cell whole drops its rounds in the same
    transaction; deleting the run drops what is left."""
    with open_store(store_url) as s:
        run_id = s.create_run("rr", "spec", "t", {}, {})
        part = make_cell(0)
        part.samples += [Sample("m", float("nan"), 1, 0), Sample("m", float("inf"), 2, 0)]
        part.status, part.error, part.profile = "failed", "ValueError: x", "profile text"
        part.started_at, part.finished_at = 10.5, 12.25
        part.declared = {"m": {"direction": "higher", "unit": "1/s"}}
        s.save_round(run_id, part, 0)
        s.save_round(run_id, make_cell(0, salt=1.0), 1)
        s.save_round(run_id, make_cell(1), 2)
        s.save_round(run_id, make_cell(0, salt=2.0), 1)  # a round saved again replaces it
    with open_store(store_url) as s:  # another process reads them back
        kept = s.saved_rounds(run_id)
        assert sorted(kept) == sorted([make_cell(0).key, make_cell(1).key])
        r0 = kept[part.key][0]
        assert (r0.status, r0.error, r0.profile, r0.started_at, r0.finished_at, r0.declared) \
            == ("failed", "ValueError: x", "profile text", 10.5, 12.25, part.declared)
        assert r0.samples[:-2] == make_cell(0).samples and r0.params == part.params
        assert np.isnan(r0.samples[-2].value) and r0.samples[-1].value == float("inf")
        assert kept[part.key][1].samples == make_cell(0, salt=2.0).samples
        assert s.finished_cell_keys(run_id) == set()  # a round is not a cell
        s.save_cell(run_id, make_cell(0))
        assert list(s.saved_rounds("rr")) == [make_cell(1).key]
        s.delete_run(run_id)
        s.create_run("rr", "spec", "t", {}, {})
        assert s.saved_rounds("rr") == {}
