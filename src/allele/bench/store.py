"""The result store: runs, cells and every raw sample, in SQLite (default) or PostgreSQL.

Open it with :func:`open_store`::

    with open_store() as store:                  # .allele/results.db, or ALLELE_STORE_URL
        run_id = store.create_run("nightly-1", "seed-matrix", "evolution", spec, env)
        store.save_cell(run_id, cell)            # committed at once
        store.finish_run(run_id, "finished")
        record = store.load_run("latest")

SQLite runs in WAL mode with a long busy timeout and every write transaction starts with
``BEGIN IMMEDIATE``, so several processes (runner workers, two concurrent runs) can write to one
file at once without losing anything and without "database is locked" errors; a bounded retry
covers the rare lock error that still escapes. PostgreSQL is used by URL
(``postgresql+psycopg://user:pass@host/db``). The schema is versioned and migrated at open; see
``docs/store.md`` and :mod:`allele.bench._schema`.

Reading is built for large runs and long histories: each cell's samples are one packed row, every
blob of a query is decoded by one ``np.frombuffer`` (PostgreSQL rows come in binary format), and
the records returned are lazy where it pays: a loaded cell builds its ``Sample`` objects when
``samples`` is first read (``values()`` / ``metrics()`` answer from numpy columns without them), and
a loaded run header parses its ``spec`` / ``environment`` JSON when first read. Both behave as, and
pickle as, the plain dataclasses of :mod:`allele.bench.model`.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import random
import threading
import time
import types
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import pairwise, repeat
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar, cast, get_args

import numpy as np
import numpy.typing as npt
from sqlalchemy import (
    Connection,
    Engine,
    Select,
    Table,
    create_engine,
    delete,
    event,
    func,
    select,
    update,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DBAPIError,
    NoSuchModuleError,
    OperationalError,
    SQLAlchemyError,
)

from allele.bench import _schema as S
from allele.bench.model import (
    CellResult,
    CellStatus,
    RunInfo,
    RunRecord,
    RunStatus,
    Sample,
)
from allele.errors import StoreError

if TYPE_CHECKING:
    from allele.observe.metrics import MetricPoint

__all__ = ["MetricHistory", "ResultStore", "open_store"]

T = TypeVar("T")

_RUN_STATUSES: frozenset[str] = frozenset(get_args(RunStatus))
_CELL_STATUSES: frozenset[str] = frozenset(get_args(CellStatus))

_BUSY_TIMEOUT_MS = 60_000
_WRITE_RETRIES = 8
_IN_CHUNK = 500  # stays below SQLite's bound-parameter limit


# --- telemetry points -----------------------------------------------------------------------------

def _labels_json(labels: Any) -> str:
    """``MetricPoint.labels`` (a tuple of ``(name, value)`` pairs; a mapping is accepted too) as
    a JSON list of pairs, order kept."""
    pairs = labels.items() if isinstance(labels, Mapping) else (labels or ())
    return json.dumps([[str(k), str(v)] for k, v in pairs])


# --- packing samples ------------------------------------------------------------------------------

Packed = tuple[int, str, bytes, bytes, bytes, bytes]
"""A cell's samples as stored: ``(n, metrics_json, metric_idx, seeds, repeats, vals)``."""

_SAMPLE_FIELDS = ("metric", "value", "seed", "repeat")


def _fast_construction_ok() -> bool:
    """Whether Sample is a plain slotted dataclass that :func:`_make_samples` may fill directly."""
    try:
        names = tuple(f.name for f in dataclasses.fields(Sample))
    except TypeError:  # pragma: no cover - Sample stopped being a dataclass
        return False
    return (names == _SAMPLE_FIELDS and not hasattr(Sample, "__post_init__")
            and all(isinstance(getattr(Sample, n, None), types.MemberDescriptorType)
                    for n in names))


_FAST_SAMPLES = _fast_construction_ok()


def _make_samples(metrics: Iterable[str], vals: list[float], seeds: list[int],
                  reps: list[int]) -> list[Sample]:
    """Sample objects for parallel columns, built in C loops.

    Loading a run creates hundreds of thousands of samples. Calling the frozen dataclass'
    ``__init__`` for each costs about a microsecond; creating bare instances with
    ``object.__new__`` and filling each slot through its member descriptor with ``map`` gives equal
    objects several times faster (only when Sample is a plain slotted dataclass without
    ``__post_init__``, checked at import). The cyclic garbage collector is paused meanwhile: these
    objects hold no cycles, and its full passes over a growing heap would cost more than the work.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        if not _FAST_SAMPLES:
            return list(map(Sample, metrics, vals, seeds, reps))
        new = cast("Callable[[type[Sample]], Any]", object.__new__)
        objs: list[Any] = list(map(new, repeat(Sample, len(vals))))
        columns: tuple[Iterable[Any], ...] = (metrics, vals, seeds, reps)
        for name, column in zip(_SAMPLE_FIELDS, columns, strict=True):
            deque(map(getattr(Sample, name).__set__, objs, column), maxlen=0)
        return objs
    finally:
        if was_enabled:
            gc.enable()


def _layout(names: Sequence[str]) -> tuple[str, bytes]:
    """The metric list (JSON, first-appearance order) and per-sample index array of a cell."""
    order: dict[str, int] = {}
    for name in dict.fromkeys(names):
        if not isinstance(name, str):
            raise StoreError(f"sample metric names must be strings, got {name!r}")
        order[name] = len(order)
    if len(order) > 65535:
        raise StoreError("a cell cannot hold more than 65535 distinct metrics")
    idx = np.array([order[m] for m in names], dtype="<u2")
    return json.dumps(list(order)), idx.tobytes()


def _pack_cells(cells: Sequence[Sequence[Sample]]) -> list[Packed]:
    """Pack the samples of many cells at once (one numpy conversion per column for all)."""
    counts = [len(c) for c in cells]
    flat = [s for c in cells for s in c]
    try:
        metrics = [s.metric for s in flat]
        vals = np.array([s.value for s in flat], dtype="<f8")
        seeds = np.array([s.seed for s in flat], dtype="<i8")
        reps = np.array([s.repeat for s in flat], dtype="<i8")
    except AttributeError as exc:
        raise StoreError(f"cannot store samples: {exc}") from None
    except (TypeError, ValueError, OverflowError) as exc:
        raise StoreError(f"cannot store samples: {exc} (seeds and repeats must be 64-bit "
                         "integers and values numbers)") from None
    layouts: dict[tuple[str, ...], tuple[str, bytes]] = {}
    out: list[Packed] = []
    start = 0
    for n in counts:
        end = start + n
        names = tuple(metrics[start:end])
        lay = layouts.get(names)
        if lay is None:
            lay = layouts[names] = _layout(names)
        out.append((n, lay[0], lay[1], seeds[start:end].tobytes(), reps[start:end].tobytes(),
                    vals[start:end].tobytes()))
        start = end
    return out


def _pack_samples(samples: Sequence[Sample]) -> Packed:
    """One cell's samples as ``(n, metrics_json, metric_idx, seeds, repeats, vals)``."""
    return _pack_cells([samples])[0]


SampleRow = tuple[Any, Any, Any, Any, Any, Any]
"""A ``samples`` row as selected: n (None when the cell has none), metrics, and the four blobs."""


@dataclasses.dataclass(slots=True)
class _Columns:
    """Decoded samples of many cells: flat arrays plus each cell's sample count.

    ``gidx[i]`` indexes ``names`` (the metric of sample ``i``); cell ``j``'s samples are
    ``[bounds[j], bounds[j + 1])`` of every array.
    """

    counts: list[int]
    names: list[str]
    gidx: npt.NDArray[np.intp]
    vals: npt.NDArray[np.float64]
    seeds: npt.NDArray[np.int64]
    reps: npt.NDArray[np.int64]

    @property
    def bounds(self) -> list[int]:
        out = [0]
        total = 0
        for n in self.counts:
            total += n
            out.append(total)
        return out


def _decode(rows: Sequence[SampleRow], only: str | None = None) -> _Columns:
    """Decode the packed samples of many cells at once (optionally keeping one metric).

    Each column's blobs are joined and read by one ``np.frombuffer``; the cells' local metric
    indexes become global ones through one lookup table built per distinct metric list.
    """
    counts = [int(r[0]) if r[0] else 0 for r in rows]
    present = [r for r, n in zip(rows, counts, strict=True) if n]
    names: dict[str, int] = {}
    lut_offset: dict[str, int] = {}
    lut: list[int] = []
    cell_offsets: list[int] = []
    for r in present:
        off = lut_offset.get(r[1])
        if off is None:
            off = lut_offset[r[1]] = len(lut)
            lut.extend(names.setdefault(m, len(names)) for m in json.loads(r[1]))
        cell_offsets.append(off)
    local = np.frombuffer(b"".join(r[2] for r in present), dtype="<u2").astype(np.intp)
    gidx = np.asarray(lut, dtype=np.intp)[
        local + np.repeat(np.asarray(cell_offsets, dtype=np.intp), [n for n in counts if n])]
    vals = np.frombuffer(b"".join(r[5] for r in present), dtype="<f8")
    seeds = np.frombuffer(b"".join(r[3] for r in present), dtype="<i8")
    reps = np.frombuffer(b"".join(r[4] for r in present), dtype="<i8")
    if only is None:
        return _Columns(counts, list(names), gidx, vals, seeds, reps)
    gid = names.get(only, -1)
    keep = gidx == gid
    kept_before = np.concatenate(([0], np.cumsum(keep)))
    bounds = np.concatenate(([0], np.cumsum(counts, dtype=np.int64)))
    kept = (kept_before[bounds[1:]] - kept_before[bounds[:-1]]).tolist()
    return _Columns(kept, [only], np.zeros(int(keep.sum()), dtype=np.intp), vals[keep],
                    seeds[keep], reps[keep])


def _unpack_cells(rows: Sequence[SampleRow], only: str | None = None) -> list[list[Sample]]:
    """The exact inverse of :func:`_pack_cells`, optionally keeping only one metric."""
    cols = _decode(rows, only)
    metric_col = np.array(cols.names, dtype=object)[cols.gidx].tolist()
    flat = _make_samples(metric_col, cols.vals.tolist(), cols.seeds.tolist(), cols.reps.tolist())
    out: list[list[Sample]] = []
    start = 0
    for n in cols.counts:
        out.append(flat[start:start + n])
        start += n
    return out


class _SampleSource:
    """The decoded columns that the cells of one load share until their samples are built.

    The first cell whose ``samples`` are read builds only its own ``Sample`` objects (a lookup of
    one cell in a large run stays cheap). The second read from another cell looks like a walk over
    the cells, so the objects of every cell are then built in one pass, with the cyclic garbage
    collector paused once instead of being run again and again by a cell-by-cell build (which
    would cost more than the building itself), and handed out as each cell asks.
    """

    __slots__ = ("bounds", "built", "gidx", "index", "lock", "name_ids", "names", "reps", "seeds",
                 "singles", "sorted_keys", "sorted_vals", "vals")

    def __init__(self, cols: _Columns) -> None:
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
            return _make_samples(np.array(self.names, dtype=object)[self.gidx[lo:hi]].tolist(),
                                 self.vals[lo:hi].tolist(), self.seeds[lo:hi].tolist(),
                                 self.reps[lo:hi].tolist())
        flat = _make_samples(np.array(self.names, dtype=object)[self.gidx].tolist(),
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
"""CellResult's own storage for ``samples`` (a slot), which :class:`_StoredCell` fills late."""

_CELL_FIELDS = tuple(f.name for f in dataclasses.fields(CellResult))


class _StoredCell(CellResult):
    """A :class:`CellResult` read from the store, whose ``Sample`` objects are built on first use.

    Loading a run decodes every sample into numpy columns shared by its cells at once; building a
    Python object per sample (the dominant cost of a load: 150,000 of them for a 1000-cell run)
    is deferred until ``samples`` is first read (see :class:`_SampleSource` for when it is done
    per cell and when for all). ``values()`` and ``metrics()``, which comparisons and reports
    use, answer from the columns without building them. It compares equal to a plain
    ``CellResult`` with the same fields, prints like one and pickles / copies as one; assigning or
    changing ``samples`` works as on any ``CellResult``.
    """

    __slots__ = ("_hi", "_i", "_lo", "_src")

    _src: _SampleSource | None
    _i: int
    _lo: int
    _hi: int

    @classmethod
    def _make(cls, key: str, target: str, params: dict[str, Any], status: CellStatus,
              error: str | None, started_at: float, finished_at: float, profile: str | None,
              src: _SampleSource, i: int) -> _StoredCell:
        self = cls.__new__(cls)
        self.key = key
        self.target = target
        self.params = params
        self.status = status
        self.error = error
        self.started_at = started_at
        self.finished_at = finished_at
        self.profile = profile
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


@dataclasses.dataclass(frozen=True, slots=True)
class MetricHistory:
    """One metric of one cell across runs, as arrays, oldest run first.

    Run ``i``'s raw samples are ``values[offsets[i]:offsets[i + 1]]`` (with their ``seeds`` and
    ``repeats``), in the order they were saved. Built without one Python object per sample, for
    analyses over long histories (change points, trends).
    """

    key: str
    metric: str
    run_ids: list[str]
    run_names: list[str]
    created_at: npt.NDArray[np.float64]
    statuses: list[str]
    offsets: npt.NDArray[np.int64]
    values: npt.NDArray[np.float64]
    seeds: npt.NDArray[np.int64]
    repeats: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.run_ids)

    def run_values(self, i: int) -> npt.NDArray[np.float64]:
        """The samples of the ``i``-th run (oldest first)."""
        return self.values[self.offsets[i]:self.offsets[i + 1]]

    def medians(self) -> npt.NDArray[np.float64]:
        """The median of each run's samples."""
        return np.array([np.median(self.run_values(i)) for i in range(len(self))],
                        dtype=np.float64)


def _unpack_samples(n: int, metrics_json: str, idx_b: bytes, seeds_b: bytes, reps_b: bytes,
                    vals_b: bytes, only: str | None = None) -> list[Sample]:
    """One cell's samples back from :func:`_pack_samples` (optionally one metric only)."""
    return _unpack_cells([(n, metrics_json, idx_b, seeds_b, reps_b, vals_b)], only)[0]


# --- helpers --------------------------------------------------------------------------------------

_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str)


def _dumps(obj: Any) -> str:
    return _ENCODER.encode(obj)


def _clean_text(text: str | None) -> str | None:
    """Free text (an error, a profile) made storable everywhere.

    A crashed cell's output can hold NUL characters (PostgreSQL text refuses them) or lone
    surrogates from undecodable bytes (not UTF-8); both become visible backslash escapes.
    """
    if text is None:
        return None
    if "\x00" in text:
        text = text.replace("\x00", "\\x00")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def _is_lock_error(exc: BaseException) -> bool:
    msg = str(getattr(exc, "orig", exc)).lower()
    return any(word in msg for word in ("locked", "busy", "deadlock detected",
                                        "could not serialize"))


def _chunks(items: Sequence[T], size: int = _IN_CHUNK) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


_RUN_COLUMNS = (S.runs.c.pk, S.runs.c.id, S.runs.c.name, S.runs.c.spec_name, S.runs.c.target,
                S.runs.c.status, S.runs.c.created_at, S.runs.c.finished_at, S.runs.c.spec,
                S.runs.c.environment, S.runs.c.cell_count, S.runs.c.failed_count)
_CELL_COLUMNS = (S.cells.c.key, S.cells.c.target, S.cells.c.params, S.cells.c.status,
                 S.cells.c.error, S.cells.c.started_at, S.cells.c.finished_at, S.cells.c.profile)
_SAMPLE_COLUMNS = (S.samples.c.n, S.samples.c.metrics, S.samples.c.metric_idx, S.samples.c.seeds,
                   S.samples.c.repeats, S.samples.c.vals)


def _loads_many(texts: Sequence[str]) -> list[Any]:
    """``[json.loads(t) for t in texts]``, parsed in one call (one C scan, shared key strings)."""
    if not texts:
        return []
    try:
        out = json.loads("[" + ",".join(texts) + "]")
    except ValueError:
        out = None
    if not isinstance(out, list) or len(out) != len(texts):
        out = [json.loads(t) for t in texts]  # a malformed text: fail (or not) on its own
    return out


_RUN_SLOTS: Any = {name: RunInfo.__dict__[name] for name in ("spec", "environment")}
_RUN_FIELDS = tuple(f.name for f in dataclasses.fields(RunInfo))


def _json_field(name: str) -> property:
    """A RunInfo field kept as stored JSON text until first read (then parsed once)."""
    slot = _RUN_SLOTS[name]
    text_slot = f"_{name}_text"

    def get(self: _StoredRunInfo) -> dict[str, Any]:
        text = getattr(self, text_slot)
        if text is not None:
            slot.__set__(self, json.loads(text))
            setattr(self, text_slot, None)
        return cast("dict[str, Any]", slot.__get__(self, RunInfo))

    def set_(self: _StoredRunInfo, value: dict[str, Any]) -> None:
        slot.__set__(self, value)
        setattr(self, text_slot, None)

    return property(get, set_, doc=f"The run's {name} (parsed from the store on first use).")


class _StoredRunInfo(RunInfo):
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
    def _from_row(cls, row: Sequence[Any]) -> _StoredRunInfo:
        """From a row laid out as ``_RUN_COLUMNS`` (the pk first)."""
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


def _run_info(row: Sequence[Any]) -> RunInfo:
    """A RunInfo from a row laid out as ``_RUN_COLUMNS`` (the pk first)."""
    return _StoredRunInfo._from_row(row)


def _run_infos(rows: Sequence[Sequence[Any]]) -> list[RunInfo]:
    """RunInfos from rows laid out as ``_RUN_COLUMNS``."""
    return [_StoredRunInfo._from_row(r) for r in rows]


def _cells(rows: Sequence[Sequence[Any]], at: int,
           only: str | None = None) -> list[_StoredCell]:
    """CellResults from rows holding ``_CELL_COLUMNS`` + ``_SAMPLE_COLUMNS`` from column ``at``.

    The samples of all rows are decoded into shared columns at once; each cell builds its
    ``Sample`` objects on first access (see :class:`_StoredCell`).
    """
    cols = _decode([cast("SampleRow", tuple(r[at + 8:at + 14])) for r in rows], only)
    src = _SampleSource(cols)
    params = _loads_many([r[at + 2] for r in rows])
    make = _StoredCell._make
    return [make(r[at], r[at + 1], p, r[at + 3], r[at + 4], float(r[at + 5]),
                 float(r[at + 6]), r[at + 7], src, i)
            for i, (r, p) in enumerate(zip(rows, params, strict=True))]


def _fetch(conn: Connection, query: Select[Any]) -> list[Sequence[Any]]:
    """All rows of ``query``; on PostgreSQL (psycopg) fetched in binary format.

    The text protocol sends ``bytea`` hex-encoded, twice its size, and decoding it dominates a
    history's or a run's read time; binary results arrive as raw bytes (numbers, text and NULL
    come back as the same Python values either way). Driver errors become SQLAlchemy's, so the
    store's retry and error messages treat them like any other.
    """
    dialect = conn.dialect
    if dialect.name != "postgresql" or dialect.driver != "psycopg":
        return list(conn.execute(query).all())
    compiled = query.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    statement, params = str(compiled), compiled.params
    raw: Any = conn.connection.dbapi_connection
    try:
        with raw.cursor(binary=True) as cur:
            cur.execute(statement, params)
            return list(cur.fetchall())
    except dialect.loaded_dbapi.Error as exc:
        raise DBAPIError.instance(statement, params, exc, dialect.loaded_dbapi.Error,
                                  dialect=dialect) from exc


def _display(url: URL) -> str:
    return url.render_as_string(hide_password=True)


# --- the store ------------------------------------------------------------------------------------

class ResultStore:
    """Runs, cells and raw samples in one SQL database. Create it with :func:`open_store`.

    Every method is safe to call from several processes at once; a store object may also be shared
    by the threads of one process. After a ``fork`` the child opens fresh connections by itself.
    """

    def __init__(self, url: str) -> None:
        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            raise StoreError(f"invalid store URL {url!r}: {exc}") from None
        self.url: str = url
        self._url = parsed
        self._is_sqlite = parsed.get_backend_name() == "sqlite"
        self._is_postgres = parsed.get_backend_name() == "postgresql"
        self._run_pk_cache: dict[str, int] = {}
        self._lock = threading.Lock()
        self._pid = os.getpid()
        self._closed = False
        self._engine = self._make_engine()
        try:
            self._open()
        except BaseException:
            self._engine.dispose()
            raise

    # -- setup -------------------------------------------------------------------------------------

    def _make_engine(self) -> Engine:
        url = self._url
        kwargs: dict[str, Any] = {}
        if self._is_sqlite:
            database = url.database or ""
            uri = database.startswith("file:")
            in_memory = (database in ("", ":memory:") or database.startswith("file::memory:")
                         or "mode=memory" in database)
            if not in_memory and not uri:  # a SQLite URI (file:...?uri=true) is used as is
                path = Path(database)
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise StoreError(f"cannot create the store directory {path.parent}: "
                                     f"{exc}") from None
            kwargs["connect_args"] = {"timeout": _BUSY_TIMEOUT_MS / 1000,
                                      "check_same_thread": False}
        elif self._is_postgres:
            kwargs["pool_pre_ping"] = True
            kwargs["connect_args"] = {"connect_timeout": 10}
        try:
            engine = create_engine(url, **kwargs)
        except (NoSuchModuleError, ArgumentError, ImportError) as exc:
            raise StoreError(f"unsupported store URL {_display(url)!r}: {exc}") from None
        if self._is_sqlite:
            self._install_sqlite_hooks(engine, in_memory)
        return engine

    @staticmethod
    def _install_sqlite_hooks(engine: Engine, in_memory: bool) -> None:
        """pysqlite's own transaction handling is switched off and replaced by explicit BEGINs.

        This is SQLAlchemy's documented recipe for SQLite transactions; on top of it, a write
        transaction (the ``allele_write`` execution option) starts with ``BEGIN IMMEDIATE``, which
        takes the write lock up front (waiting up to the busy timeout) instead of failing with
        "database is locked" when a deferred read transaction tries to upgrade.
        """

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            try:
                cur.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
                if not in_memory:
                    cur.execute("PRAGMA journal_mode = WAL")
                cur.execute("PRAGMA synchronous = NORMAL")
                cur.execute("PRAGMA foreign_keys = ON")
            finally:
                cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            if conn.get_execution_options().get("allele_write"):
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                conn.exec_driver_sql("BEGIN")

    def _open(self) -> None:
        """Check the schema version; migrate (under the write lock) only when it is behind.

        An up-to-date store is opened with a read transaction only, so opening never waits for
        writers and works on a read-only copy.
        """
        version = self._read(S.current_version, what="open the store")
        if version < S.LATEST_VERSION:
            def run(conn: Connection) -> tuple[int, int]:
                if self._is_postgres:
                    conn.exec_driver_sql(S.PG_MIGRATION_LOCK)
                return S.migrate(conn)

            version = self._write(run, what="open the store")[0]
        if version > S.LATEST_VERSION:
            raise StoreError(f"the store at {_display(self._url)} has schema version {version}, "
                             f"newer than this Allele understands ({S.LATEST_VERSION})")

    # -- transactions ------------------------------------------------------------------------------

    def _check_usable(self) -> None:
        if self._closed:
            raise StoreError("the result store is closed")
        pid = os.getpid()
        if pid != self._pid:
            # Connections inherited through fork belong to the parent: drop them, do not close.
            self._engine.dispose(close=False)
            self._pid = pid

    def _write(self, fn: Callable[[Connection], T], what: str) -> T:
        """Run ``fn`` in one write transaction (``BEGIN IMMEDIATE`` on SQLite)."""
        return self._transaction(fn, what, write=True)

    def _read(self, fn: Callable[[Connection], T], what: str) -> T:
        """Run ``fn`` in one read transaction (a consistent snapshot)."""
        return self._transaction(fn, what, write=False)

    def _transaction(self, fn: Callable[[Connection], T], what: str, *, write: bool) -> T:
        """Run ``fn`` in a transaction, retrying a bounded number of times on lock contention.

        With WAL and the busy timeout, SQLite waits for the lock by itself; the retry (jittered
        exponential backoff) covers what still escapes: "database is locked" / "busy", and
        PostgreSQL's deadlock or serialization failures. The whole transaction is rolled back
        before a retry, so ``fn`` runs again from scratch.
        """
        self._check_usable()
        delay = 0.01
        for attempt in range(_WRITE_RETRIES):
            try:
                with self._engine.connect() as conn:
                    if write:
                        conn.execution_options(allele_write=True)
                    with conn.begin():
                        return fn(conn)
            except OperationalError as exc:
                if _is_lock_error(exc) and attempt < _WRITE_RETRIES - 1:
                    time.sleep(delay * (1 + random.random()))
                    delay = min(delay * 2, 1.0)
                    continue
                raise self._error(exc, what) from None
            except StoreError:
                raise
            except SQLAlchemyError as exc:
                raise self._error(exc, what) from None
            except UnicodeError as exc:
                raise StoreError(f"cannot {what}: text that is not valid Unicode ({exc})") from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _error(self, exc: SQLAlchemyError, what: str) -> StoreError:
        detail = str(exc.orig) if isinstance(exc, DBAPIError) else str(exc)
        detail = detail.strip().splitlines()[0] if detail.strip() else type(exc).__name__
        if isinstance(exc, OperationalError) and not self._is_sqlite and (
                "connect" in detail.lower() or "connection" in detail.lower()):
            return StoreError(f"cannot reach the result store at {_display(self._url)}: {detail}")
        return StoreError(f"cannot {what} ({_display(self._url)}): {detail}")

    # -- runs --------------------------------------------------------------------------------------

    def create_run(self, name: str, spec_name: str, target: str, spec: dict[str, Any],
                   environment: dict[str, Any]) -> str:
        """Record a new run (status ``running``) and return its short id.

        ``name`` must be unique in this store (an empty name takes the id); ``'latest'`` is
        reserved. Raises :class:`StoreError` if the name is taken.
        """
        run_id = uuid.uuid4().hex[:12]
        name = name or run_id
        if name == "latest":
            raise StoreError("'latest' is reserved and cannot be a run name")
        row = {
            "id": run_id, "name": name, "spec_name": spec_name, "target": target,
            "status": "running", "created_at": time.time(), "finished_at": None,
            "spec": _dumps(spec), "environment": _dumps(environment),
            "cell_count": 0, "failed_count": 0,
        }

        def run(conn: Connection) -> int:
            taken = conn.execute(select(S.runs.c.pk).where(S.runs.c.name == name)).first()
            if taken is not None:
                raise StoreError(f"a run named {name!r} already exists in the store; "
                                 "choose another name")
            res = conn.execute(S.runs.insert().values(**row))
            return int(cast("tuple[int]", res.inserted_primary_key)[0])

        try:
            pk = self._write(run, what="create a run")
        except StoreError as exc:
            if "unique" in str(exc).lower() or "duplicate" in str(exc).lower():
                raise StoreError(f"a run named {name!r} already exists in the store; "
                                 "choose another name") from None
            raise
        with self._lock:
            self._run_pk_cache[run_id] = pk
        return run_id

    def finish_run(self, run_id: str, status: RunStatus) -> None:
        """Set a run's final status (``running`` reopens it, e.g. for ``--resume``)."""
        if status not in _RUN_STATUSES:
            raise StoreError(f"unknown run status {status!r}; expected one of "
                             f"{sorted(_RUN_STATUSES)}")
        finished = None if status == "running" else time.time()

        def run(conn: Connection) -> None:
            res = conn.execute(update(S.runs).where(S.runs.c.id == run_id)
                               .values(status=status, finished_at=finished))
            if res.rowcount == 0:
                raise StoreError(f"no run with id {run_id!r} in the store")

        self._write(run, what="finish a run")

    def resolve_run(self, ref: str) -> str:
        """The id of the run named by ``ref``: an id, a unique id prefix, a name, or ``latest``."""
        return self._read(lambda conn: self._resolve(conn, ref)[1], what="resolve a run")

    def _resolve(self, conn: Connection, ref: str) -> tuple[int, str]:
        if ref == "latest":
            row = conn.execute(select(S.runs.c.pk, S.runs.c.id)
                               .order_by(S.runs.c.pk.desc())
                               .limit(1)).first()
            if row is None:
                raise StoreError("the store holds no runs yet, so 'latest' names nothing")
            return int(row[0]), str(row[1])
        for col in (S.runs.c.id, S.runs.c.name):
            row = conn.execute(select(S.runs.c.pk, S.runs.c.id).where(col == ref)).first()
            if row is not None:
                return int(row[0]), str(row[1])
        if len(ref) >= 4 and all(ch in "0123456789abcdef" for ch in ref):
            rows = conn.execute(select(S.runs.c.pk, S.runs.c.id)
                                .where(S.runs.c.id.startswith(ref, autoescape=True))
                                .limit(2)).all()
            if len(rows) == 1:
                return int(rows[0][0]), str(rows[0][1])
            if len(rows) > 1:
                raise StoreError(f"run reference {ref!r} is ambiguous: it prefixes several ids")
        raise StoreError(f"no run {ref!r} in the store (give an id, a name or 'latest'; "
                         "`allele bench list` shows them)")

    def _run_pk(self, conn: Connection, run_id: str, *, lock: bool = False) -> int:
        """The primary key of run ``run_id`` (an exact id), optionally locking its row."""
        if not lock:
            with self._lock:
                cached = self._run_pk_cache.get(run_id)
            if cached is not None:
                return cached
        query = select(S.runs.c.pk).where(S.runs.c.id == run_id)
        if lock:
            query = query.with_for_update()
        row = conn.execute(query).first()
        if row is None:
            raise StoreError(f"no run with id {run_id!r} in the store")
        pk = int(row[0])
        with self._lock:
            self._run_pk_cache[run_id] = pk
        return pk

    def get_run(self, ref: str) -> RunInfo:
        """The header of the run named by ``ref`` (see :meth:`resolve_run`)."""
        def run(conn: Connection) -> RunInfo:
            pk, _ = self._resolve(conn, ref)
            row = conn.execute(select(*_RUN_COLUMNS).where(S.runs.c.pk == pk)).one()
            return _run_info(row)

        return self._read(run, what="read a run")

    def list_runs(self, limit: int | None = None) -> list[RunInfo]:
        """Run headers, newest first (the order in which runs were created in this store)."""
        query: Select[Any] = select(*_RUN_COLUMNS).order_by(S.runs.c.pk.desc())
        if limit is not None:
            query = query.limit(limit)

        def run(conn: Connection) -> list[RunInfo]:
            return _run_infos(conn.execute(query).all())

        return self._read(run, what="list runs")

    # -- cells -------------------------------------------------------------------------------------

    def save_cell(self, run_id: str, cell: CellResult) -> None:
        """Commit one finished cell at once; a key already saved in the run is replaced."""
        self.save_cells(run_id, [cell])

    def save_cells(self, run_id: str, cells: Sequence[CellResult]) -> None:
        """Commit many cells in one transaction with bulk inserts (replacing existing keys)."""
        if not cells:
            return
        latest: dict[str, CellResult] = {}
        for c in cells:
            if c.status not in _CELL_STATUSES:
                raise StoreError(f"cell {c.key!r} has unknown status {c.status!r}; expected one "
                                 f"of {sorted(_CELL_STATUSES)}")
            latest[c.key] = c  # a key given twice: the last one wins
        batch = list(latest.values())
        packed = _pack_cells([c.samples for c in batch])
        params = [_dumps(c.params) for c in batch]
        keys = [c.key for c in batch]

        def run(conn: Connection) -> None:
            run_pk = self._run_pk(conn, run_id, lock=True)
            existing = self._cell_pks(conn, run_pk, keys)
            if existing:
                old = list(existing.values())
                for part in _chunks(old):
                    conn.execute(delete(S.samples).where(S.samples.c.cell_pk.in_(part)))
                    conn.execute(delete(S.cells).where(S.cells.c.pk.in_(part)))
            self._bulk_insert(conn, S.cells, [
                (run_pk, c.key, c.target, p, c.status, _clean_text(c.error),
                 float(c.started_at), float(c.finished_at), _clean_text(c.profile), pk_[0])
                for c, p, pk_ in zip(batch, params, packed, strict=True)
            ])
            new_pks = self._cell_pks(conn, run_pk, keys)
            rows = [(new_pks[c.key], *pk_) for c, pk_ in zip(batch, packed, strict=True)
                    if pk_[0] > 0]
            if rows:
                self._bulk_insert(conn, S.samples, rows)
            self._recount(conn, run_pk)

        self._write(run, what="save cells")

    _BULK_COLUMNS: ClassVar[dict[str, tuple[str, ...]]] = {
        "cells": ("run_pk", "key", "target", "params", "status", "error", "started_at",
                  "finished_at", "profile", "n_samples"),
        "samples": ("cell_pk", "n", "metrics", "metric_idx", "seeds", "repeats", "vals"),
    }

    @classmethod
    def _bulk_insert(cls, conn: Connection, table: Table, rows: list[tuple[Any, ...]]) -> None:
        """Insert plain tuples by the driver's fastest path, with no per-row SQLAlchemy work.

        PostgreSQL (psycopg 3): ``COPY ... FROM STDIN`` in binary format inside the current
        transaction. Otherwise one ``executemany`` of a driver-level INSERT. Only text, numbers,
        bytes and NULL go through it, which every driver binds natively.
        """
        dialect = conn.dialect
        quote = dialect.identifier_preparer.quote
        cols = cls._BULK_COLUMNS[table.name]
        col_list = ", ".join(quote(c) for c in cols)
        if dialect.name == "postgresql" and dialect.driver == "psycopg":
            raw: Any = conn.connection.dbapi_connection
            with raw.cursor() as cur, cur.copy(
                    f"COPY {quote(table.name)} ({col_list}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types([cls._PG_TYPES[table.name][c] for c in cols])
                for row in rows:
                    copy.write_row(row)
            return
        mark = "?" if dialect.paramstyle == "qmark" else "%s"
        conn.exec_driver_sql(f"INSERT INTO {quote(table.name)} ({col_list}) "
                             f"VALUES ({', '.join([mark] * len(cols))})", rows)

    _PG_TYPES: ClassVar[dict[str, dict[str, str]]] = {
        "cells": {"run_pk": "int4", "key": "text", "target": "varchar", "params": "text",
                  "status": "varchar", "error": "text", "started_at": "float8",
                  "finished_at": "float8", "profile": "text", "n_samples": "int4"},
        "samples": {"cell_pk": "int4", "n": "int4", "metrics": "text", "metric_idx": "bytea",
                    "seeds": "bytea", "repeats": "bytea", "vals": "bytea"},
    }

    def _cell_pks(self, conn: Connection, run_pk: int, keys: Sequence[str]) -> dict[str, int]:
        """``{key: cell pk}`` for those of ``keys`` that the run already holds."""
        base = select(S.cells.c.key, S.cells.c.pk).where(S.cells.c.run_pk == run_pk)
        if len(keys) <= _IN_CHUNK:
            rows = conn.execute(base.where(S.cells.c.key.in_(keys))).all()
            return {r[0]: int(r[1]) for r in rows}
        wanted = set(keys)
        return {r[0]: int(r[1]) for r in conn.execute(base).all() if r[0] in wanted}

    @staticmethod
    def _recount(conn: Connection, run_pk: int) -> None:
        total = (select(func.count()).select_from(S.cells)
                 .where(S.cells.c.run_pk == run_pk).scalar_subquery())
        failed = (select(func.count()).select_from(S.cells)
                  .where(S.cells.c.run_pk == run_pk, S.cells.c.status != "ok")
                  .scalar_subquery())
        conn.execute(update(S.runs).where(S.runs.c.pk == run_pk)
                     .values(cell_count=total, failed_count=failed))

    def finished_cell_keys(self, run_id: str, *, include_failed: bool = True) -> set[str]:
        """Keys of the cells already saved in a run (for ``--resume``).

        A failed cell has finished too (its failure is recorded); pass ``include_failed=False`` to
        get only the ``ok`` cells, e.g. to retry failures.
        """
        def run(conn: Connection) -> set[str]:
            run_pk = self._run_pk(conn, self._resolve(conn, run_id)[1])
            query = select(S.cells.c.key).where(S.cells.c.run_pk == run_pk)
            if not include_failed:
                query = query.where(S.cells.c.status == "ok")
            return {r[0] for r in conn.execute(query)}

        return self._read(run, what="read finished cells")

    def load_run(self, ref: str) -> RunRecord:
        """A whole run: its header and every cell with all raw samples (in save order)."""
        query = (select(*_CELL_COLUMNS, *_SAMPLE_COLUMNS)
                 .select_from(S.cells.outerjoin(S.samples, S.samples.c.cell_pk == S.cells.c.pk)))

        def run(conn: Connection) -> RunRecord:
            pk, _ = self._resolve(conn, ref)
            info = _run_info(conn.execute(select(*_RUN_COLUMNS).where(S.runs.c.pk == pk)).one())
            rows = _fetch(conn, query.where(S.cells.c.run_pk == pk).order_by(S.cells.c.pk))
            return RunRecord(info=info, cells=list[CellResult](_cells(rows, 0)))

        return self._read(run, what="load a run")

    def cell_history(self, key: str, metric: str | None = None,
                     limit: int | None = None) -> list[tuple[RunInfo, CellResult]]:
        """The cell ``key`` in every run that holds it, oldest run first.

        ``metric`` keeps only that metric's samples and only the cells that have some;
        ``limit`` keeps the most recent ``limit`` runs (still returned oldest first).
        """
        query = (select(*_RUN_COLUMNS, *_CELL_COLUMNS, *_SAMPLE_COLUMNS)
                 .select_from(S.cells.join(S.runs, S.runs.c.pk == S.cells.c.run_pk)
                              .outerjoin(S.samples, S.samples.c.cell_pk == S.cells.c.pk))
                 .where(S.cells.c.key == key)
                 .order_by(S.cells.c.run_pk.desc()))
        if metric is not None:
            # SQL cannot look inside the packed arrays, but the metric list is plain JSON text.
            query = query.where(S.samples.c.metrics.contains(json.dumps(metric), autoescape=True))
        if limit is not None:
            query = query.limit(limit)
        width = len(_RUN_COLUMNS)

        def run(conn: Connection) -> list[tuple[RunInfo, CellResult]]:
            rows = _fetch(conn, query)
            rows.reverse()
            cells = _cells(rows, width, metric)
            if metric is not None:  # only the cells that hold samples of it
                has = [i for i, c in enumerate(cells) if c._hi > c._lo]
                rows = [rows[i] for i in has]
                cells = [cells[i] for i in has]
            return list(zip(_run_infos(rows), cells, strict=True))

        return self._read(run, what="read a cell history")

    def metric_history(self, key: str, metric: str,
                       limit: int | None = None) -> MetricHistory:
        """One metric of the cell ``key`` across runs, as numpy arrays (oldest run first).

        The same cells as ``cell_history(key, metric, limit)`` (runs whose cell has samples of
        ``metric``), without building a RunInfo, CellResult or Sample per row: the fast path for
        long series.
        """
        query = (select(S.runs.c.id, S.runs.c.name, S.runs.c.created_at, S.cells.c.status,
                        *_SAMPLE_COLUMNS)
                 .select_from(S.cells.join(S.runs, S.runs.c.pk == S.cells.c.run_pk)
                              .join(S.samples, S.samples.c.cell_pk == S.cells.c.pk))
                 .where(S.cells.c.key == key,
                        S.samples.c.metrics.contains(json.dumps(metric), autoescape=True))
                 .order_by(S.cells.c.run_pk.desc()))
        if limit is not None:
            query = query.limit(limit)

        def run(conn: Connection) -> MetricHistory:
            rows = _fetch(conn, query)
            rows.reverse()
            cols = _decode([cast("SampleRow", tuple(r[4:10])) for r in rows], metric)
            has = [i for i, n in enumerate(cols.counts) if n]
            kept = [rows[i] for i in has]
            offsets = np.zeros(len(kept) + 1, dtype=np.int64)
            np.cumsum([cols.counts[i] for i in has], out=offsets[1:])
            return MetricHistory(
                key=key, metric=metric, run_ids=[r[0] for r in kept],
                run_names=[r[1] for r in kept],
                created_at=np.array([r[2] for r in kept], dtype=np.float64),
                statuses=[r[3] for r in kept], offsets=offsets,
                values=cols.vals.copy(), seeds=cols.seeds.copy(), repeats=cols.reps.copy())

        return self._read(run, what="read a metric history")

    # -- telemetry ---------------------------------------------------------------------------------

    def write_metric_points(self, points: Iterable[MetricPoint]) -> None:
        """Append telemetry points in one transaction (``allele.observe.MetricSink``)."""
        try:
            rows = [{"metric": p.metric, "component": p.component,
                     "labels": _labels_json(p.labels), "timestamp": float(p.timestamp),
                     "value": float(p.value)} for p in points]
        except (AttributeError, TypeError, ValueError) as exc:
            raise StoreError(f"not a metric point: {exc}") from None
        if not rows:
            return
        self._write(lambda conn: conn.execute(S.metric_points.insert(), rows),
                    what="write metric points")

    def read_metric_points(self, metric: str, component: str | None = None,
                           since: float | None = None) -> list[MetricPoint]:
        """Points of one metric (optionally one component, from ``since`` on), oldest first."""
        # Imported here: allele.observe's package pulls in the telemetry machinery, which a
        # process that only reads benchmark results does not need.
        from allele.observe.metrics import MetricPoint

        mp = S.metric_points
        query = (select(mp.c.metric, mp.c.component, mp.c.labels, mp.c.timestamp, mp.c.value)
                 .where(mp.c.metric == metric).order_by(mp.c.timestamp, mp.c.pk))
        if component is not None:
            query = query.where(mp.c.component == component)
        if since is not None:
            query = query.where(mp.c.timestamp >= since)

        def run(conn: Connection) -> list[MetricPoint]:
            return [MetricPoint(r[0], r[1], tuple((k, v) for k, v in json.loads(r[2])),
                                float(r[3]), float(r[4])) for r in conn.execute(query)]

        return self._read(run, what="read metric points")

    # -- lifecycle ---------------------------------------------------------------------------------

    def schema_version(self) -> int:
        """The schema version of the open database."""
        return self._read(S.current_version, what="read the schema version")

    def close(self) -> None:
        """Release every connection; the store cannot be used afterwards."""
        if not self._closed:
            self._closed = True
            self._engine.dispose()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __reduce__(self) -> tuple[Callable[[str], ResultStore], tuple[str]]:
        # A store travels to worker processes as its URL and is reopened there.
        return (open_store, (self.url,))

    def __repr__(self) -> str:
        return f"ResultStore({_display(self._url)!r})"


def open_store(url: str | None = None) -> ResultStore:
    """Open (creating and migrating as needed) the result store at ``url``.

    ``None`` means the configured store: ``ALLELE_STORE_URL`` / ``store_url`` in ``allele.toml``,
    or the SQLite file ``.allele/results.db`` in the working directory.
    """
    if url is None:
        from allele.config import load_settings

        url = load_settings().resolved_store_url
    return ResultStore(url)

