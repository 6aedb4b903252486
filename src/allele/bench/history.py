"""The one read path for the history of a matrix: which runs count, and every cell's series.

A :class:`History` is a set of runs (oldest first) and, for every cell and metric they measured
``ok``, its samples per run as arrays (:class:`allele.store.model.MetricHistory`). It is read
from the store column-wise in one query (:func:`load_history`, :func:`recent_history`), never by
loading whole runs, and can also be built from runs already in memory
(:meth:`History.from_records`). Change points (:mod:`allele.bench.regress`), run-to-run noise
(:mod:`allele.bench.compare`), the reports and the dashboard all read it.

Which runs count:

* behind a comparison or a report of run HEAD: the newest ``limit`` runs created up to HEAD
  whose status is ``finished`` or ``interrupted``, HEAD always among them;
* behind ``allele bench regressions``: the newest ``limit`` runs that are not ``running``.

The BASE half of an A/B session (``allele bench ab``) re-measures old code next to the new: it is
left out of every history unless asked for (``include_ab_base=True``), so that it never looks
like a step back to the old level. Its HEAD half is an ordinary run of the code it measured.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from allele.bench.metrics import LOOPS_METRIC, measurements
from allele.store.model import MetricHistory, RunInfo, RunRecord

AB_KEY = "ab"
"""Key of the A/B session document in a run's stored spec (see :mod:`allele.bench.ab`)."""


def ab_meta(info: RunInfo) -> dict[str, object] | None:
    """The A/B session document of a run (role, session, refs, rounds), or None."""
    doc = info.spec.get(AB_KEY) if isinstance(info.spec, dict) else None
    return doc if isinstance(doc, dict) else None


def is_ab_base(info: RunInfo) -> bool:
    """Whether the run is the BASE half of an A/B session (old code measured again)."""
    meta = ab_meta(info)
    return meta is not None and meta.get("role") == "base"


def ab_partners(base: RunInfo, head: RunInfo) -> bool:
    """Whether ``base`` and ``head`` are the two halves of one A/B session, in that order."""
    mb, mh = ab_meta(base), ab_meta(head)
    return (mb is not None and mh is not None and mb.get("session") == mh.get("session")
            and mb.get("role") == "base" and mh.get("role") == "head")

if TYPE_CHECKING:
    from allele.store.results import ResultStore

HISTORY_RUNS = 50
"""Runs behind a comparison's run-to-run noise and a report's change points, by default."""
HISTORY_STATUSES = ("finished", "interrupted")
"""Run statuses that make a run part of a comparison's or a report's history."""


@dataclass(frozen=True, slots=True)
class History:
    """Runs (oldest first: creation time, then id) and every ok cell's series over them,
    sorted by cell key and metric. The inner-loop count (:data:`~allele.bench.metrics.
    LOOPS_METRIC`) is not a measurement and has no series: a calibration that halves it on a
    slower machine is not a regression of anything."""

    runs: list[RunInfo]
    series: list[MetricHistory] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.runs)

    def __iter__(self) -> Iterator[MetricHistory]:
        return iter(self.series)

    def run(self, run_id: str) -> RunInfo:
        """The header of one of the history's runs."""
        for info in self.runs:
            if info.id == run_id:
                return info
        raise KeyError(run_id)

    @classmethod
    def from_records(cls, records: Sequence[RunRecord]) -> History:
        """The history of runs already in memory (their ok cells, as the store would give)."""
        ordered = sorted(records, key=lambda r: (r.info.created_at, r.info.id))
        acc: dict[tuple[str, str], tuple[str, dict[str, object], list[int],
                                         list[list[float]], list[list[tuple[int, int]]]]] = {}
        for pos, run in enumerate(ordered):
            for cell in run.cells:
                if cell.status != "ok":
                    continue
                for metric in measurements(cell.metrics()):
                    keyed = cell.keyed(metric)
                    if not keyed:
                        continue
                    entry = acc.setdefault((cell.key, metric), (cell.target, {}, [], [], []))
                    entry[1].clear()
                    entry[1].update(cell.params)
                    entry[2].append(pos)
                    entry[3].append(list(keyed.values()))
                    entry[4].append(list(keyed))
        series = []
        for (key, metric), (target, params, positions, values, ids) in sorted(acc.items()):
            offsets = np.zeros(len(values) + 1, dtype=np.int64)
            np.cumsum([len(v) for v in values], out=offsets[1:])
            flat_ids = [i for per_run in ids for i in per_run]
            series.append(MetricHistory(
                key=key, metric=metric,
                run_ids=[ordered[p].info.id for p in positions],
                run_names=[ordered[p].info.name for p in positions],
                created_at=np.array([ordered[p].info.created_at for p in positions],
                                    dtype=np.float64),
                statuses=["ok"] * len(positions), offsets=offsets,
                values=np.array([v for per_run in values for v in per_run], dtype=np.float64),
                seeds=np.array([s for s, _ in flat_ids], dtype=np.int64),
                repeats=np.array([r for _, r in flat_ids], dtype=np.int64),
                target=target, params=dict(params)))
        return cls([r.info for r in ordered], series)


def as_history(history: History | Sequence[RunRecord]) -> History:
    """``history`` itself, or the history of a sequence of runs in memory."""
    return history if isinstance(history, History) else History.from_records(history)


def _read(store: ResultStore, infos: Sequence[RunInfo]) -> History:
    runs = sorted(infos, key=lambda i: (i.created_at, i.id))
    return History(runs, [h for h in store.histories([i.id for i in runs])
                          if h.metric != LOOPS_METRIC])


def load_history(store: ResultStore, head: RunInfo, limit: int = HISTORY_RUNS, *,
                 include_ab_base: bool = False) -> History:
    """The history behind a comparison or report of ``head``: the newest ``limit`` finished or
    interrupted runs created up to ``head``, ``head`` always among them (BASE halves of A/B
    sessions only with ``include_ab_base``).

    A plain run's history holds plain runs only: an A/B session measures ``peak_rss_mb`` over a
    round of calls (430 MB where plain runs of the quick preset measure 66 MB), and one such
    run among plain ones inflates the run-level variance it feeds (with a session's HEAD in the
    history, a +6 % memory regression in 6 cells was inconclusive in one of them)."""
    plain = ab_meta(head) is None
    infos = [i for i in store.list_runs() if i.created_at <= head.created_at
             and i.status in HISTORY_STATUSES
             and (include_ab_base or not is_ab_base(i))
             and not (plain and i.id != head.id and ab_meta(i) is not None)][:limit]
    if all(i.id != head.id for i in infos):
        infos.append(head)
    return _read(store, infos)


def recent_history(store: ResultStore, limit: int | None = 200, *,
                   include_ab_base: bool = False) -> History:
    """The history ``allele bench regressions`` looks at: of the newest ``limit`` runs, those
    not still running (BASE halves of A/B sessions only with ``include_ab_base``)."""
    return _read(store, [i for i in store.list_runs(limit) if i.status != "running"
                         and (include_ab_base or not is_ab_base(i))])
