"""Records read from the store that behave as the plain dataclasses of :mod:`allele.store.model`
but defer their expensive parts until first use.

Loading a run decodes every sample into numpy columns shared by its cells; a cell builds its
``Sample`` objects when ``samples`` is first read (``values()`` / ``metrics()`` / ``keyed()``
answer from the columns without them), and a run header parses its ``spec`` / ``environment``
JSON when first read. Both compare equal to, print like and pickle as the plain dataclasses.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Sequence
from itertools import pairwise
from typing import Any, cast

import numpy as np

from allele.store import schema as S
from allele.store.codecs import (
    Columns,
    SampleRow,
    decode,
    loads_column,
    loads_many,
    make_samples,
)
from allele.store.model import CellResult, CellStatus, RunInfo, Sample

RUN_COLUMNS = (S.runs.c.pk, S.runs.c.id, S.runs.c.name, S.runs.c.spec_name, S.runs.c.target,
               S.runs.c.status, S.runs.c.created_at, S.runs.c.finished_at, S.runs.c.spec,
               S.runs.c.environment, S.runs.c.cell_count, S.runs.c.failed_count)
"""A run header as selected (the pk first): the layout :func:`run_info` reads."""
CELL_COLUMNS = (S.cells.c.key, S.cells.c.target, S.cells.c.params, S.cells.c.status,
                S.cells.c.error, S.cells.c.started_at, S.cells.c.finished_at, S.cells.c.profile)
"""A cell as selected: the layout :func:`build_cells` reads, followed by SAMPLE_COLUMNS."""
SAMPLE_COLUMNS = (S.samples.c.n, S.samples.c.metrics, S.samples.c.metric_idx, S.samples.c.seeds,
                  S.samples.c.repeats, S.samples.c.vals)
"""A cell's packed samples as selected (see :mod:`allele.store.codecs`)."""


class SampleSource:
    """The decoded columns that the cells of one load share until their samples are built.

    The first cell whose ``samples`` are read builds only its own ``Sample`` objects (a lookup of
    one cell in a large run stays cheap). The second read from another cell looks like a walk over
    the cells, so the objects of every cell are then built in one pass, with the cyclic garbage
    collector paused once instead of being run again and again by a cell-by-cell build (which
    would cost more than the building itself), and handed out as each cell asks.
    """

    __slots__ = ("bounds", "built", "gidx", "index", "lock", "name_ids", "names", "reps", "seeds",
                 "singles", "sorted_keys", "sorted_vals", "vals")

    def __init__(self, cols: Columns) -> None:
        self.names = cols.names
        self.gidx = cols.gidx
        self.vals = cols.vals
        self.seeds = cols.seeds
        self.reps = cols.reps
        self.bounds = cols.bounds
        self.built: list[list[Sample]] | None = None
        self.singles = 0
        self.name_ids = {name: i for i, name in enumerate(cols.names)}
        self.index: tuple[dict[int, tuple[int, int]], list[list[str]]] | None = None
        self.sorted_vals = cols.vals
        self.sorted_keys: list[tuple[int, int]] | None = None
        self.lock = threading.Lock()

    def samples(self, i: int) -> list[Sample]:
        """The Sample objects of cell ``i`` (each cell asks once)."""
        built = self.built
        if built is not None:
            return built[i]
        lo, hi = self.bounds[i], self.bounds[i + 1]
        if self.singles == 0 or lo == hi:
            self.singles += lo != hi
            return make_samples(np.array(self.names, dtype=object)[self.gidx[lo:hi]].tolist(),
                                 self.vals[lo:hi].tolist(), self.seeds[lo:hi].tolist(),
                                 self.reps[lo:hi].tolist())
        flat = make_samples(np.array(self.names, dtype=object)[self.gidx].tolist(),
                             self.vals.tolist(), self.seeds.tolist(), self.reps.tolist())
        bounds = self.bounds
        built = self.built = [flat[a:b] for a, b in pairwise(bounds)]
        return built[i]

    def _index(self) -> tuple[dict[int, tuple[int, int]], list[list[str]]]:
        """Sort every sample of the load once by (cell, metric, seed, repeat), stably.

        Returns ``{cell * n_names + metric_id: (start, end)}`` into ``sorted_vals`` and each cell's
        sorted metric names. Ties keep their saved order, as ``sorted`` does in
        ``CellResult.values``.
        """
        index = self.index
        if index is None:
            n_names = len(self.names)
            counts = [b - a for a, b in pairwise(self.bounds)]
            cell_of = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
            order = np.lexsort((self.reps, self.seeds, self.gidx, cell_of))
            keys = cell_of[order] * n_names + self.gidx[order]
            uniq, starts = np.unique(keys, return_index=True)
            ends = np.append(starts[1:], len(keys)) if len(starts) else starts
            ukeys = uniq.tolist()
            groups = dict(zip(ukeys, zip(starts.tolist(), ends.tolist(), strict=True),
                              strict=True))
            per_cell: list[list[str]] = [[] for _ in counts]
            for k in ukeys:
                per_cell[k // n_names].append(self.names[k % n_names])
            for names in per_cell:
                names.sort()
            self.sorted_vals = self.vals[order]
            self.sorted_keys = list(zip(self.seeds[order].tolist(), self.reps[order].tolist(),
                                        strict=True))
            index = self.index = (groups, per_cell)
        return index

    def metrics(self, i: int) -> list[str]:
        """The sorted metric names of cell ``i``."""
        return list(self._index()[1][i])

    def values(self, i: int, metric: str) -> list[float]:
        """Cell ``i``'s samples of ``metric`` in (seed, repeat) order, as ``CellResult.values``."""
        groups = self._index()[0]
        gid = self.name_ids.get(metric)
        span = None if gid is None else groups.get(i * len(self.names) + gid)
        if span is None:
            return []
        return cast("list[float]", self.sorted_vals[span[0]:span[1]].tolist())

    def keyed(self, i: int, metric: str) -> dict[tuple[int, int], float]:
        """Cell ``i``'s samples of ``metric`` keyed by (seed, repeat), as ``CellResult.keyed``."""
        groups = self._index()[0]
        gid = self.name_ids.get(metric)
        span = None if gid is None else groups.get(i * len(self.names) + gid)
        if span is None:
            return {}
        keys = cast("list[tuple[int, int]]", self.sorted_keys)[span[0]:span[1]]
        return dict(zip(keys, self.sorted_vals[span[0]:span[1]].tolist(), strict=True))


_SAMPLES_SLOT: Any = CellResult.__dict__["samples"]
"""CellResult's own storage for ``samples`` (a slot), which :class:`StoredCell` fills late."""

_CELL_FIELDS = tuple(f.name for f in dataclasses.fields(CellResult) if f.compare)


class StoredCell(CellResult):
    """A :class:`CellResult` read from the store, whose ``Sample`` objects are built on first use.

    Loading a run decodes every sample into numpy columns shared by its cells at once; building a
    Python object per sample (the dominant cost of a load: 150,000 of them for a 1000-cell run)
    is deferred until ``samples`` is first read (see :class:`SampleSource` for when it is done
    per cell and when for all). ``values()`` and ``metrics()``, which comparisons and reports
    use, answer from the columns without building them. It compares equal to a plain
    ``CellResult`` with the same fields, prints like one and pickles / copies as one; assigning or
    changing ``samples`` works as on any ``CellResult``.
    """

    __slots__ = ("_hi", "_i", "_lo", "_src")

    _src: SampleSource | None
    _i: int
    _lo: int
    _hi: int

    @classmethod
    def _make(cls, key: str, target: str, params: dict[str, Any], status: CellStatus,
              error: str | None, started_at: float, finished_at: float, profile: str | None,
              src: SampleSource, i: int) -> StoredCell:
        self = cls.__new__(cls)
        self.key = key
        self.target = target
        self.params = params
        self.status = status
        self.error = error
        self.started_at = started_at
        self.finished_at = finished_at
        self.profile = profile
        self.instr_profile = None  # read on request (ResultStore.instruction_profiles)
        self.declared = None  # declarations travel in the run's spec document, not the cell
        self.round = None
        self._src, self._i, self._lo, self._hi = src, i, src.bounds[i], src.bounds[i + 1]
        return self

    def _get_samples(self) -> list[Sample]:
        src = self._src
        if src is not None:
            with src.lock:  # threads sharing a record build (and keep) one list per cell
                if self._src is not None:
                    _SAMPLES_SLOT.__set__(self, src.samples(self._i))
                    self._src = None
        return cast("list[Sample]", _SAMPLES_SLOT.__get__(self, CellResult))

    def _set_samples(self, value: list[Sample]) -> None:
        _SAMPLES_SLOT.__set__(self, value)
        self._src = None

    samples = property(_get_samples, _set_samples,
                       doc="Every raw sample, built from the stored columns on first access.")

    def values(self, metric: str) -> list[float]:
        src = self._src
        if src is None:
            return CellResult.values(self, metric)
        return src.values(self._i, metric)

    def metrics(self) -> list[str]:
        src = self._src
        if src is None:
            return CellResult.metrics(self)
        return src.metrics(self._i)

    def keyed(self, metric: str) -> dict[tuple[int, int], float]:
        src = self._src
        if src is None:
            return CellResult.keyed(self, metric)
        return src.keyed(self._i, metric)

    def _fields(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in _CELL_FIELDS)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CellResult):
            return NotImplemented
        return self._fields() == tuple(getattr(other, name) for name in _CELL_FIELDS)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        text = CellResult.__repr__(self)
        return "CellResult" + text[len(type(self).__qualname__):]

    def __reduce__(self) -> tuple[type[CellResult], tuple[Any, ...]]:
        return (CellResult, self._fields())


_RUN_SLOTS: Any = {name: RunInfo.__dict__[name] for name in ("spec", "environment")}
_RUN_FIELDS = tuple(f.name for f in dataclasses.fields(RunInfo))


def _json_field(name: str) -> property:
    """A RunInfo field kept as stored JSON text until first read (then parsed once)."""
    slot = _RUN_SLOTS[name]
    text_slot = f"_{name}_text"

    def get(self: StoredRunInfo) -> dict[str, Any]:
        text = getattr(self, text_slot)
        if text is not None:
            slot.__set__(self, loads_column(text, f"the {name} of run {self.name!r}"))
            setattr(self, text_slot, None)
        return cast("dict[str, Any]", slot.__get__(self, RunInfo))

    def set_(self: StoredRunInfo, value: dict[str, Any]) -> None:
        slot.__set__(self, value)
        setattr(self, text_slot, None)

    return property(get, set_, doc=f"The run's {name} (parsed from the store on first use).")


class StoredRunInfo(RunInfo):
    """A :class:`RunInfo` read from the store whose ``spec`` and ``environment`` (JSON text in the
    database) are parsed on first access.

    A cell's history across 1000 runs would otherwise spend most of its time parsing 1000
    environments that the caller rarely reads. Compares equal to, prints like and pickles as a
    plain ``RunInfo``.
    """

    __slots__ = ("_environment_text", "_spec_text")

    _spec_text: str | None
    _environment_text: str | None

    spec = _json_field("spec")
    environment = _json_field("environment")

    @classmethod
    def _from_row(cls, row: Sequence[Any]) -> StoredRunInfo:
        """From a row laid out as ``RUN_COLUMNS`` (the pk first)."""
        self = cls.__new__(cls)
        self.id = row[1]
        self.name = row[2]
        self.spec_name = row[3]
        self.target = row[4]
        self.status = row[5]
        self.created_at = float(row[6])
        self.finished_at = None if row[7] is None else float(row[7])
        self._spec_text = row[8]
        self._environment_text = row[9]
        self.cell_count = int(row[10])
        self.failed_count = int(row[11])
        return self

    def _fields(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in _RUN_FIELDS)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RunInfo):
            return NotImplemented
        return self._fields() == tuple(getattr(other, name) for name in _RUN_FIELDS)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        text = RunInfo.__repr__(self)
        return "RunInfo" + text[len(type(self).__qualname__):]

    def __reduce__(self) -> tuple[type[RunInfo], tuple[Any, ...]]:
        return (RunInfo, self._fields())


def run_info(row: Sequence[Any]) -> RunInfo:
    """A RunInfo from a row laid out as ``RUN_COLUMNS`` (the pk first)."""
    return StoredRunInfo._from_row(row)


def run_infos(rows: Sequence[Sequence[Any]]) -> list[RunInfo]:
    """RunInfos from rows laid out as ``RUN_COLUMNS``."""
    return [StoredRunInfo._from_row(r) for r in rows]


def build_cells(rows: Sequence[Sequence[Any]], at: int,
                only: str | None = None) -> list[StoredCell]:
    """CellResults from rows holding ``CELL_COLUMNS`` + ``SAMPLE_COLUMNS`` from column ``at``.

    The samples of all rows are decoded into shared columns at once; each cell builds its
    ``Sample`` objects on first access (see :class:`StoredCell`).
    """
    cols = decode([cast("SampleRow", tuple(r[at + 8:at + 14])) for r in rows], only)
    src = SampleSource(cols)
    params = loads_many([r[at + 2] for r in rows])
    make = StoredCell._make
    return [make(r[at], r[at + 1], p, r[at + 3], r[at + 4], float(r[at + 5]),
                 float(r[at + 6]), r[at + 7], src, i)
            for i, (r, p) in enumerate(zip(rows, params, strict=True))]
