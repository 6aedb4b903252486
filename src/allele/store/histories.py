"""Column-wise reads of histories: one metric of one cell across runs, as arrays.

A history is read without building a RunInfo, CellResult or Sample per row: the packed samples of
every cell involved are decoded at once (:func:`allele.store.codecs.decode`) and regrouped with
numpy. :func:`metric_history` reads one series; :func:`histories` reads every series of a set of
runs in one query (what change-point detection and run-to-run noise need).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, cast

import numpy as np
from sqlalchemy import Connection, select

from allele.store import schema as S
from allele.store.codecs import SampleRow, decode, loads_column, loads_many
from allele.store.engine import Database, chunks, fetch
from allele.store.lazy import SAMPLE_COLUMNS
from allele.store.model import MetricHistory


def metric_history(db: Database, key: str, metric: str,
                   limit: int | None = None) -> MetricHistory:
    """One metric of the cell ``key`` across runs (oldest run first); see
    :meth:`allele.store.results.ResultStore.metric_history`."""
    query = (select(S.runs.c.id, S.runs.c.name, S.runs.c.created_at, S.cells.c.status,
                    *SAMPLE_COLUMNS, S.cells.c.target, S.cells.c.params)
             .select_from(S.cells.join(S.runs, S.runs.c.pk == S.cells.c.run_pk)
                          .join(S.samples, S.samples.c.cell_pk == S.cells.c.pk))
             .where(S.cells.c.key == key,
                    S.samples.c.metrics.contains(json.dumps(metric), autoescape=True))
             .order_by(S.cells.c.run_pk.desc()))
    if limit is not None:
        query = query.limit(limit)

    def run(conn: Connection) -> MetricHistory:
        rows = fetch(conn, query)
        rows.reverse()
        cols = decode([cast("SampleRow", tuple(r[4:10])) for r in rows], metric)
        has = [i for i, n in enumerate(cols.counts) if n]
        kept = [rows[i] for i in has]
        offsets = np.zeros(len(kept) + 1, dtype=np.int64)
        np.cumsum([cols.counts[i] for i in has], out=offsets[1:])
        return MetricHistory(
            key=key, metric=metric, run_ids=[r[0] for r in kept],
            run_names=[r[1] for r in kept],
            created_at=np.array([r[2] for r in kept], dtype=np.float64),
            statuses=[r[3] for r in kept], offsets=offsets,
            values=cols.vals.copy(), seeds=cols.seeds.copy(), repeats=cols.reps.copy(),
            target=kept[-1][10] if kept else "",
            params=loads_column(kept[-1][11]) if kept else {})

    return db.read_tx(run, what="read a metric history")


_HISTORY_COLUMNS = (S.runs.c.id, S.runs.c.name, S.runs.c.created_at, S.cells.c.key,
                    S.cells.c.target, S.cells.c.params, S.cells.c.status, *SAMPLE_COLUMNS)


def histories(db: Database, run_ids: Sequence[str],
              statuses: Sequence[str] = ("ok",)) -> list[MetricHistory]:
    """Every (cell, metric) series over ``run_ids``; see
    :meth:`allele.store.results.ResultStore.histories`."""
    base = (select(*_HISTORY_COLUMNS)
            .select_from(S.cells.join(S.runs, S.runs.c.pk == S.cells.c.run_pk)
                         .join(S.samples, S.samples.c.cell_pk == S.cells.c.pk))
            .where(S.cells.c.status.in_(list(statuses)))
            .order_by(S.cells.c.pk))

    def run(conn: Connection) -> list[Sequence[Any]]:
        rows: list[Sequence[Any]] = []
        for part in chunks(list(dict.fromkeys(run_ids))):
            rows.extend(fetch(conn, base.where(S.runs.c.id.in_(list(part)))))
        return rows

    rows = db.read_tx(run, what="read histories")
    return _group(rows) if rows else []


def _group(rows: Sequence[Sequence[Any]]) -> list[MetricHistory]:
    """Regroup decoded cells into one series per (key, metric), runs oldest first."""
    cols = decode([cast("SampleRow", tuple(r[7:13])) for r in rows])
    runs = sorted({r[0]: (float(r[2]), r[0], r[1]) for r in rows}.values())
    run_pos = {rid: i for i, (_, rid, _) in enumerate(runs)}
    keys = sorted({r[3] for r in rows})
    key_id = {k: i for i, k in enumerate(keys)}
    metric_rank = np.argsort(np.argsort(np.array(cols.names, dtype=object)))
    counts = np.asarray(cols.counts, dtype=np.int64)
    cell_of = np.repeat(np.arange(len(rows)), counts)
    key_of = np.array([key_id[r[3]] for r in rows], dtype=np.int64)[cell_of]
    run_of = np.array([run_pos[r[0]] for r in rows], dtype=np.int64)[cell_of]
    metric_of = metric_rank[cols.gidx] if len(cols.gidx) else cols.gidx
    order = np.lexsort((run_of, metric_of, key_of))  # stable: save order within a run
    key_s, metric_s, run_s = key_of[order], metric_of[order], run_of[order]
    cell_s = cell_of[order]
    series_start = np.flatnonzero(np.r_[True, (key_s[1:] != key_s[:-1])
                                        | (metric_s[1:] != metric_s[:-1])])
    bounds = np.r_[series_start, len(order)]
    by_rank = {int(metric_rank[i]): name for i, name in enumerate(cols.names)}
    params = loads_many([r[5] for r in rows])
    out = []
    for lo, hi in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        rs = run_s[lo:hi]
        starts = np.flatnonzero(np.r_[True, rs[1:] != rs[:-1]])
        offsets = np.r_[starts, hi - lo].astype(np.int64)
        first_cells = cell_s[lo:hi][starts]
        newest = int(cell_s[hi - 1])
        idx = order[lo:hi]
        out.append(MetricHistory(
            key=keys[int(key_s[lo])], metric=by_rank[int(metric_s[lo])],
            run_ids=[runs[p][1] for p in rs[starts].tolist()],
            run_names=[runs[p][2] for p in rs[starts].tolist()],
            created_at=np.array([runs[p][0] for p in rs[starts].tolist()], dtype=np.float64),
            statuses=[rows[c][6] for c in first_cells.tolist()], offsets=offsets,
            values=cols.vals[idx].copy(), seeds=cols.seeds[idx].copy(),
            repeats=cols.reps[idx].copy(), target=rows[newest][4], params=params[newest]))
    return out


def loop_counts(db: Database, run_id: str, timed_metric: str, loops_metric: str
                ) -> dict[str, int]:
    """For every ``ok`` cell of ``run_id`` with ``timed_metric`` samples, the largest value of
    its ``loops_metric`` samples (1 when it has none), reading only the metric lists of the
    cells and decoding only the samples of cells that stored loop counts."""
    query = (select(S.cells.c.key, *SAMPLE_COLUMNS)
             .select_from(S.cells.join(S.runs, S.runs.c.pk == S.cells.c.run_pk)
                          .join(S.samples, S.samples.c.cell_pk == S.cells.c.pk))
             .where(S.runs.c.id == run_id, S.cells.c.status == "ok"))

    def run(conn: Connection) -> list[Sequence[Any]]:
        return fetch(conn, query)

    out: dict[str, int] = {}
    looped: list[Sequence[Any]] = []
    for row in db.read_tx(run, what="read loop counts"):
        names = json.loads(row[2]) if row[2] else []
        if timed_metric in names:
            out[str(row[0])] = 1
            if loops_metric in names:
                looped.append(row)
    if looped:
        cols = decode([cast("SampleRow", tuple(r[1:7])) for r in looped], loops_metric)
        ends = np.cumsum(cols.counts)
        for row, lo, hi in zip(looped, ends - np.asarray(cols.counts), ends, strict=True):
            if hi > lo:
                out[str(row[0])] = int(cols.vals[lo:hi].max())
    return out
