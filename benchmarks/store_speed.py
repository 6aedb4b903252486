"""Result store speed: save a run, load a run, load one cell's history — SQLite and PostgreSQL.

Targets (issue 4), each with about one million samples already in the store:

* save a finished run of 1000 cells x 5 metrics x 30 samples (150,000 samples): <= 200 ms
* load a whole run (the same shape): <= 100 ms
* load one cell's history across 1000 runs: <= 50 ms

The store is first seeded with 1000 runs x 7 cells x 5 metrics x 30 samples (1,050,000 samples);
every seeded run holds the history cell, so its history spans 1000 runs. Each figure is the median
of ``--repeats`` measurements and is printed as a ratio against its target (<= 1 meets it) and
against a naive baseline measured in the same invocation on the same database: one row per sample,
row-by-row inserts with one commit per cell, and one query per cell when loading.

Loaded records are lazy (a cell builds its ``Sample`` objects when ``samples`` is first read, a run
header parses its JSON when first read), so the whole price of touching everything is printed too:
loading the run and then building every ``Sample`` (or reading ``values()`` of every metric of
every cell), and loading the history and then building every ``Sample``, spec and environment.
Freeing the previous repetition's result happens before the clock starts.

Usage::

    .venv/bin/python benchmarks/store_speed.py                 # both backends
    .venv/bin/python benchmarks/store_speed.py --backends sqlite --seed-runs 200

PostgreSQL: the script uses ``--pg-url`` if given; otherwise it starts the local cluster when it is
stopped (``pg_ctlcluster 15 main start``, as root), creates a throw-away database and drops it at
the end.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import (
    Column,
    Connection,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    func,
    select,
)

from allele.store import open_store
from allele.store.model import CellResult, RunInfo, Sample, cell_key

METRICS = ("wall_s", "cpu_user_s", "peak_rss_mb", "best_fitness", "diversity")
SEEDS = 10
REPEATS = 3  # 10 seeds x 3 repeats = 30 samples per metric
TARGET_MS = {"save": 200.0, "load": 100.0, "history": 50.0}


# --- workload -------------------------------------------------------------------------------------

def make_cells(n: int, rng: np.random.Generator, first: int = 0) -> list[CellResult]:
    """``n`` cells x 5 metrics x 30 samples, with realistic float values."""
    out = []
    vals = rng.lognormal(size=(n, SEEDS, REPEATS, len(METRICS))).tolist()
    for i in range(n):
        params = {"population": 50 + 10 * (first + i), "mutation_rate": 0.1, "selection": "rank"}
        samples = [Sample(m, vals[i][s][r][k], 1000 + s, r)
                   for s in range(SEEDS) for r in range(REPEATS)
                   for k, m in enumerate(METRICS)]
        out.append(CellResult(key=cell_key("evolution", params), target="evolution",
                              params=params, status="ok", samples=samples, started_at=1.0,
                              finished_at=2.0))
    return out


ENV = {"cpu": {"model": "Example CPU @ 3.0GHz", "count": 2, "governor": "performance"},
       "os": "Linux-6.1-x86_64", "python": "3.11.7", "numpy": "2.1", "blas": "openblas",
       "packages": {f"pkg{i}": f"{i}.0.0" for i in range(30)}, "git": "0" * 40}
SPEC = {"name": "bench", "target": "evolution", "repeats": REPEATS, "seeds": SEEDS,
        "matrix": {"population": [50, 100, 250, 500, 1000], "mutation_rate": [0.05, 0.1, 0.2]}}


# --- the naive baseline ---------------------------------------------------------------------------

naive_md = MetaData()
n_runs = Table("naive_runs", naive_md,
               Column("pk", Integer, primary_key=True), Column("id", String(32), unique=True),
               Column("name", String(200)), Column("spec_name", String(200)),
               Column("target", String(200)), Column("status", String(20)),
               Column("created_at", Float), Column("spec", Text), Column("environment", Text))
n_cells = Table("naive_cells", naive_md,
                Column("pk", Integer, primary_key=True), Column("run_pk", Integer),
                Column("key", Text), Column("target", String(200)), Column("params", Text),
                Column("status", String(20)))
n_samples = Table("naive_samples", naive_md,
                  Column("cell_pk", Integer), Column("metric", String(100)),
                  Column("seed", Integer), Column("repeat", Integer), Column("value", Float))
Index("ix_naive_cells_run", n_cells.c.run_pk)
Index("ix_naive_cells_key", n_cells.c.key, n_cells.c.run_pk)
Index("ix_naive_samples_cell", n_samples.c.cell_pk)


class NaiveStore:
    """What a first implementation looks like: a row per sample, a commit per cell."""

    def __init__(self, url: str) -> None:
        import json

        self.json = json
        self.engine = create_engine(url)
        naive_md.create_all(self.engine)

    def create_run(self, name: str) -> int:
        with self.engine.begin() as conn:
            res = conn.execute(n_runs.insert().values(
                id=uuid.uuid4().hex[:12], name=name, spec_name="bench", target="evolution",
                status="running", created_at=time.time(), spec=self.json.dumps(SPEC),
                environment=self.json.dumps(ENV)))
            return int(res.inserted_primary_key[0])  # type: ignore[index]

    def save_cell(self, run_pk: int, cell: CellResult) -> None:
        with self.engine.begin() as conn:
            res = conn.execute(n_cells.insert().values(
                run_pk=run_pk, key=cell.key, target=cell.target,
                params=self.json.dumps(cell.params), status=cell.status))
            cell_pk = res.inserted_primary_key[0]  # type: ignore[index]
            for s in cell.samples:
                conn.execute(n_samples.insert().values(cell_pk=cell_pk, metric=s.metric,
                                                       seed=s.seed, repeat=s.repeat,
                                                       value=s.value))

    def _cell(self, conn: Connection, row: Any) -> CellResult:
        smp = [Sample(m, v, s, r) for m, s, r, v in conn.execute(
            select(n_samples.c.metric, n_samples.c.seed, n_samples.c.repeat, n_samples.c.value)
            .where(n_samples.c.cell_pk == row[0]))]
        return CellResult(key=row[1], target=row[2], params=self.json.loads(row[3]),
                          status=row[4], samples=smp)

    def load_run(self, run_pk: int) -> list[CellResult]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(n_cells.c.pk, n_cells.c.key, n_cells.c.target,
                                       n_cells.c.params, n_cells.c.status)
                                .where(n_cells.c.run_pk == run_pk)).all()
            return [self._cell(conn, r) for r in rows]

    def cell_history(self, key: str) -> list[tuple[RunInfo, CellResult]]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(n_cells.c.pk, n_cells.c.key, n_cells.c.target, n_cells.c.params,
                       n_cells.c.status, n_runs.c.id, n_runs.c.name, n_runs.c.created_at,
                       n_runs.c.spec, n_runs.c.environment)
                .join(n_runs, n_runs.c.pk == n_cells.c.run_pk)
                .where(n_cells.c.key == key).order_by(n_runs.c.created_at)).all()
            return [(RunInfo(id=r[5], name=r[6], spec_name="bench", target="evolution",
                             status="finished", created_at=r[7], spec=self.json.loads(r[8]),
                             environment=self.json.loads(r[9])), self._cell(conn, r))
                    for r in rows]

    def seed(self, n_seed_runs: int, cells: list[CellResult]) -> None:
        """Bulk-load the same data as the real store got (not timed)."""
        self.bulk([f"seed-{i}" for i in range(n_seed_runs)], cells)

    def bulk(self, names: list[str], cells: list[CellResult]) -> list[int]:
        """Runs named ``names``, each holding ``cells``, written in bulk (not timed)."""
        with self.engine.begin() as conn:
            first_run = int(conn.execute(select(func.coalesce(func.max(n_runs.c.pk), 0)))
                            .scalar_one()) + 1
            first_cell = int(conn.execute(select(func.coalesce(func.max(n_cells.c.pk), 0)))
                             .scalar_one()) + 1
            run_rows: list[dict[str, Any]] = []
            cell_rows: list[dict[str, Any]] = []
            sample_rows: list[tuple[Any, ...]] = []
            cell_pk = first_cell - 1
            for i, name in enumerate(names):
                run_rows.append({"pk": first_run + i, "id": uuid.uuid4().hex[:12], "name": name,
                                 "spec_name": "bench", "target": "evolution",
                                 "status": "finished", "created_at": time.time(),
                                 "spec": self.json.dumps(SPEC),
                                 "environment": self.json.dumps(ENV)})
                for c in cells:
                    cell_pk += 1
                    cell_rows.append({"pk": cell_pk, "run_pk": first_run + i, "key": c.key,
                                      "target": c.target, "params": self.json.dumps(c.params),
                                      "status": "ok"})
                    sample_rows.extend((cell_pk, s.metric, s.seed, s.repeat, s.value)
                                       for s in c.samples)
            conn.execute(n_runs.insert(), run_rows)
            conn.execute(n_cells.insert(), cell_rows)
            if self.engine.dialect.name == "postgresql":
                raw = conn.connection.dbapi_connection
                assert raw is not None
                with raw.cursor() as cur, cur.copy(  # type: ignore[attr-defined]
                        'COPY naive_samples (cell_pk, metric, seed, "repeat", value) '
                        "FROM STDIN") as copy:
                    for row in sample_rows:
                        copy.write_row(row)
                for table in ("naive_runs", "naive_cells"):
                    conn.exec_driver_sql(f"SELECT setval('{table}_pk_seq', "
                                         f"(SELECT max(pk) FROM {table}))")
            else:
                conn.exec_driver_sql(
                    "INSERT INTO naive_samples (cell_pk, metric, seed, repeat, value) "
                    "VALUES (?, ?, ?, ?, ?)", sample_rows)
        if self.engine.dialect.name == "postgresql":
            with self.engine.connect() as conn:
                conn.exec_driver_sql("ANALYZE")
                conn.commit()
        return [first_run + i for i in range(len(names))]

    def close(self) -> None:
        self.engine.dispose()


# --- measuring ------------------------------------------------------------------------------------

def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, float, Any]:
    """Median wall seconds and median CPU seconds of this process over ``repeats`` calls.

    The CPU time is what the work costs this (client) process; on a machine shared with other
    busy processes it is the steadier figure (wall time includes waiting for a core), but it
    leaves out the PostgreSQL server's own work.
    """
    walls, cpus, result = [], [], None
    for _ in range(repeats):
        result = None  # freeing the previous result is not part of the next measurement
        gc.collect()
        c0, t0 = time.process_time(), time.perf_counter()
        result = fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return statistics.median(walls), statistics.median(cpus), result


@dataclass
class Figure:
    op: str
    what: str
    allele_s: float
    allele_cpu_s: float
    naive_s: float
    target_ms: float


def run_backend(label: str, url: str, args: argparse.Namespace) -> list[Figure]:
    rng = np.random.default_rng(2026)
    seed_cells = make_cells(7, rng, first=0)
    history_key = seed_cells[0].key
    run_cells = make_cells(1000, rng, first=100)
    n_seeded = args.seed_runs * len(seed_cells) * len(METRICS) * SEEDS * REPEATS

    print(f"[{label}] seeding {args.seed_runs} runs x 7 cells x 5 metrics x 30 samples "
          f"= {n_seeded:,} samples ...", flush=True)
    t0 = time.perf_counter()
    store = open_store(url)
    for i in range(args.seed_runs):
        # Every run has its own environment (commit, timestamp), as real runs do.
        env = {**ENV, "git": f"{i:040x}", "started": 1.7e9 + 3600.0 * i}
        rid = store.create_run(f"seed-{i}", "bench", "evolution", SPEC, env)
        store.save_cells(rid, seed_cells)
        store.finish_run(rid, "finished")
    naive = NaiveStore(url)
    naive.seed(args.seed_runs, seed_cells)
    if label == "postgresql":
        with store._engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
            conn.commit()
    print(f"[{label}] seeded in {time.perf_counter() - t0:.1f} s", flush=True)

    figures = []
    counter = iter(range(10**6))

    def save() -> str:
        rid = store.create_run(f"measured-{next(counter)}", "bench", "evolution", SPEC, ENV)
        store.save_cells(rid, run_cells)
        store.finish_run(rid, "finished")
        return rid

    save_s, save_cpu, run_id = timed(save, args.repeats)

    def naive_save(cells: list[CellResult]) -> int:
        pk = naive.create_run(f"naive-{next(counter)}")
        for c in cells:
            naive.save_cell(pk, c)
        return pk

    # The naive save is slow (one statement per sample): it is timed on the first
    # ``--naive-cells`` cells and scaled linearly to 1000; the complete run is then written
    # untimed so that the naive loads read the same 150,000 samples.
    part_s, _, _ = timed(lambda: naive_save(run_cells[:args.naive_cells]), 1)
    naive_save_s = part_s * len(run_cells) / args.naive_cells
    naive_pk = naive.bulk(["naive-full"], run_cells)[0]
    figures.append(Figure("save", "save a run: 1000 cells x 5 metrics x 30 samples", save_s,
                          save_cpu, naive_save_s, TARGET_MS["save"]))

    load_s, load_cpu, rec = timed(lambda: store.load_run(run_id), args.repeats)
    assert len(rec.cells) == 1000 and sum(len(c.samples) for c in rec.cells) == 150_000
    assert rec.cells[17].samples == run_cells[17].samples
    assert rec.cells == run_cells

    def load_all_samples() -> Any:
        record = store.load_run(run_id)
        for c in record.cells:
            c.samples  # noqa: B018 - builds the cell's Sample objects
        return record

    def load_all_values() -> Any:
        record = store.load_run(run_id)
        for c in record.cells:
            for m in c.metrics():
                c.values(m)
        return record

    full_load_s, full_load_cpu, _ = timed(load_all_samples, args.repeats)
    vals_load_s, vals_load_cpu, _ = timed(load_all_values, args.repeats)
    naive_load_s, _, naive_rec = timed(lambda: naive.load_run(naive_pk),
                                       max(1, args.repeats // 2))
    assert len(naive_rec) == 1000
    figures.append(Figure("load", "load that run (150,000 samples)", load_s, load_cpu,
                          naive_load_s, TARGET_MS["load"]))
    figures.append(Figure("load", "  + build all 150,000 Sample objects", full_load_s,
                          full_load_cpu, naive_load_s, TARGET_MS["load"]))
    figures.append(Figure("load", "  + values() of every metric of every cell", vals_load_s,
                          vals_load_cpu, naive_load_s, TARGET_MS["load"]))

    hist_s, hist_cpu, hist = timed(lambda: store.cell_history(history_key, metric="wall_s"),
                                   args.repeats)
    assert len(hist) == args.seed_runs and len(hist[0][1].samples) == SEEDS * REPEATS
    full_s, full_cpu, full = timed(lambda: store.cell_history(history_key), args.repeats)

    def history_everything() -> Any:
        hist = store.cell_history(history_key)
        for info, cell in hist:
            cell.samples  # noqa: B018
            info.spec  # noqa: B018
            info.environment  # noqa: B018
        return hist

    every_s, every_cpu, _ = timed(history_everything, args.repeats)
    arr_s, arr_cpu, arr = timed(lambda: store.metric_history(history_key, "wall_s"),
                                args.repeats)
    assert len(arr) == args.seed_runs and arr.values.size == args.seed_runs * SEEDS * REPEATS
    assert len(full) == args.seed_runs
    assert full[-1][1].samples == seed_cells[0].samples
    assert full[-1][0].environment["git"] == f"{args.seed_runs - 1:040x}"
    naive_hist_s, _, naive_hist = timed(lambda: naive.cell_history(history_key),
                                        max(1, args.repeats // 2))
    assert len(naive_hist) == args.seed_runs
    figures.append(Figure("history", f"one cell's history, 1 metric, {args.seed_runs} runs",
                          hist_s, hist_cpu, naive_hist_s, TARGET_MS["history"]))
    figures.append(Figure("history", f"one cell's history, all 5 metrics, {args.seed_runs} runs",
                          full_s, full_cpu, naive_hist_s, TARGET_MS["history"]))
    figures.append(Figure("history", "  + every Sample, spec and environment built",
                          every_s, every_cpu, naive_hist_s, TARGET_MS["history"]))
    figures.append(Figure("history", f"  as arrays (metric_history), 1 metric, "
                          f"{args.seed_runs} runs", arr_s, arr_cpu, naive_hist_s,
                          TARGET_MS["history"]))
    naive.close()
    store.close()
    return figures


def print_table(label: str, figures: list[Figure]) -> None:
    print(f"\n{label}")
    print(f"  {'operation':<52} {'wall':>9} {'cpu':>9} {'target':>7} {'wall/t':>7} "
          f"{'cpu/t':>6} {'naive':>9} {'speedup':>8}")
    for f in figures:
        ok = "ok" if f.allele_s * 1000 <= f.target_ms else "MISSED"
        print(f"  {f.what:<52} {f.allele_s * 1000:>7.1f}ms {f.allele_cpu_s * 1000:>7.1f}ms "
              f"{f.target_ms:>5.0f}ms {f.allele_s * 1000 / f.target_ms:>6.2f}x "
              f"{f.allele_cpu_s * 1000 / f.target_ms:>5.2f}x {f.naive_s * 1000:>7.0f}ms "
              f"{f.naive_s / f.allele_s:>7.1f}x  {ok}")


# --- PostgreSQL setup -----------------------------------------------------------------------------

def _as_postgres(sql: str) -> subprocess.CompletedProcess[str]:
    cmd = ["psql", "-v", "ON_ERROR_STOP=1", "-X", "-q", "-d", "postgres", "-c", sql]
    if os.geteuid() == 0:
        cmd = ["runuser", "-u", "postgres", "--", *cmd]
    elif shutil.which("sudo"):
        cmd = ["sudo", "-n", "-u", "postgres", *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)


def _port_open() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1.0):
            return True
    except OSError:
        return False


@contextmanager
def local_postgres() -> Iterator[str]:
    """A throw-away database on the local cluster (started if needed)."""
    if not _port_open():
        subprocess.run(["pg_ctlcluster", "15", "main", "start"], check=False,
                       capture_output=True, timeout=120)
        for _ in range(150):
            if _port_open():
                break
            time.sleep(0.2)
        else:
            raise SystemExit("PostgreSQL is not running and could not be started")
    user, db = "allele_test", f"allele_bench_{os.getpid()}"
    for sql in ("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = "
                f"'{user}') THEN CREATE ROLE {user} LOGIN PASSWORD '{user}' CREATEDB; "
                "END IF; END $$;", f'CREATE DATABASE "{db}" OWNER {user}'):
        proc = _as_postgres(sql)
        if proc.returncode != 0:
            raise SystemExit(f"PostgreSQL setup failed: {proc.stderr.strip()}")
    try:
        yield f"postgresql+psycopg://{user}:{user}@127.0.0.1:5432/{db}"
    finally:
        _as_postgres(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--pg-url", default=None, help="an existing, empty PostgreSQL database")
    parser.add_argument("--seed-runs", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--naive-cells", type=int, default=100,
                        help="cells of the naive row-by-row save that are timed (then scaled)")
    args = parser.parse_args(argv)
    print(f"store_speed: python {sys.version.split()[0]}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    results: list[tuple[str, list[Figure]]] = []
    for backend in args.backends.split(","):
        if backend == "sqlite":
            with tempfile.TemporaryDirectory() as tmp:
                url = f"sqlite:///{Path(tmp) / 'results.db'}"
                results.append(("sqlite (WAL file)", run_backend("sqlite", url, args)))
        elif backend in ("postgresql", "postgres"):
            if args.pg_url:
                results.append(("postgresql", run_backend("postgresql", args.pg_url, args)))
            else:
                with local_postgres() as url:
                    results.append(("postgresql 15 (local)", run_backend("postgresql", url,
                                                                         args)))
        else:
            parser.error(f"unknown backend {backend!r}")
    for label, figures in results:
        print_table(label, figures)
    print("\nwall / cpu: medians of wall-clock time and of this process's CPU time; wall/t, cpu/t: "
          "over target (<= 1.00x meets it);\nspeedup: naive baseline wall time over allele wall "
          "time; ok/MISSED judges the wall time.\nnaive baseline: a row per sample, row-by-row inserts with a commit "
          f"per cell (timed on {args.naive_cells} cells, scaled to 1000), a query per cell when "
          "loading.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
