"""How samples are kept: a cell's samples packed into four little-endian arrays, decoded many
cells at a time, and the JSON and text conventions of the store's columns.

Each cell's samples are one row: the JSON list of its metric names and four blobs of length ``n``
(``uint16`` metric index, ``int64`` seed, ``int64`` repeat, ``float64`` value) in the cell's
original sample order, so every sample comes back bit for bit. Reading many cells joins each
column's blobs and decodes them with one ``np.frombuffer``.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import types
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import repeat
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from allele.errors import StoreError
from allele.store.model import Sample

Packed = tuple[int, str, bytes, bytes, bytes, bytes]
"""A cell's samples as stored: ``(n, metrics_json, metric_idx, seeds, repeats, vals)``."""

_SAMPLE_FIELDS = ("metric", "value", "seed", "repeat")


def _fast_construction_ok() -> bool:
    """Whether Sample is a plain slotted dataclass that :func:`make_samples` may fill directly."""
    try:
        names = tuple(f.name for f in dataclasses.fields(Sample))
    except TypeError:  # pragma: no cover - Sample stopped being a dataclass
        return False
    return (names == _SAMPLE_FIELDS and not hasattr(Sample, "__post_init__")
            and all(isinstance(getattr(Sample, n, None), types.MemberDescriptorType)
                    for n in names))


FAST_SAMPLES = _fast_construction_ok()


def make_samples(metrics: Iterable[str], vals: list[float], seeds: list[int],
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
        if not FAST_SAMPLES:
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


def pack_cells(cells: Sequence[Sequence[Sample]]) -> list[Packed]:
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


def pack_samples(samples: Sequence[Sample]) -> Packed:
    """One cell's samples as ``(n, metrics_json, metric_idx, seeds, repeats, vals)``."""
    return pack_cells([samples])[0]


SampleRow = tuple[Any, Any, Any, Any, Any, Any]
"""A ``samples`` row as selected: n (None when the cell has none), metrics, and the four blobs."""


@dataclasses.dataclass(slots=True)
class Columns:
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


def decode(rows: Sequence[SampleRow], only: str | None = None) -> Columns:
    """Decode the packed samples of many cells at once (optionally keeping one metric).

    Each column's blobs are joined and read by one ``np.frombuffer``; the cells' local metric
    indexes become global ones through one lookup table built per distinct metric list. Rows
    that do not decode (a damaged blob, a metric list that is not JSON) raise a one-line
    :class:`StoreError`.
    """
    try:
        return _decode(rows, only)
    except (ValueError, IndexError, TypeError, KeyError) as exc:
        raise StoreError(f"the store holds corrupt samples ({corrupt_detail(rows, exc)}); "
                         "the damaged cell cannot be read") from None


def corrupt_detail(rows: Sequence[SampleRow], exc: BaseException) -> str:
    """Which packed row is damaged and how (for the error of :func:`decode`)."""
    for i, r in enumerate(rows):
        n = int(r[0]) if r[0] else 0
        if not n:
            continue
        sizes = {"metric_idx": (r[2], 2), "seeds": (r[3], 8), "repeats": (r[4], 8),
                 "vals": (r[5], 8)}
        for name, (blob, width) in sizes.items():
            if blob is None or len(blob) != n * width:
                size = "missing" if blob is None else f"{len(blob)} bytes"
                return f"row {i}: {name} is {size}, expected {n * width} for {n} samples"
        try:
            names = json.loads(r[1])
        except (ValueError, TypeError):
            return f"row {i}: the metric list is not JSON"
        idx = np.frombuffer(r[2], dtype="<u2")
        if len(idx) and int(idx.max()) >= len(names):
            return f"row {i}: a metric index points past its {len(names)} metric names"
    return f"{type(exc).__name__}: {exc}"


def _decode(rows: Sequence[SampleRow], only: str | None) -> Columns:
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
        return Columns(counts, list(names), gidx, vals, seeds, reps)
    gid = names.get(only, -1)
    keep = gidx == gid
    kept_before = np.concatenate(([0], np.cumsum(keep)))
    bounds = np.concatenate(([0], np.cumsum(counts, dtype=np.int64)))
    kept = (kept_before[bounds[1:]] - kept_before[bounds[:-1]]).tolist()
    return Columns(kept, [only], np.zeros(int(keep.sum()), dtype=np.intp), vals[keep],
                    seeds[keep], reps[keep])


def unpack_cells(rows: Sequence[SampleRow], only: str | None = None) -> list[list[Sample]]:
    """The exact inverse of :func:`pack_cells`, optionally keeping only one metric."""
    cols = decode(rows, only)
    metric_col = np.array(cols.names, dtype=object)[cols.gidx].tolist()
    flat = make_samples(metric_col, cols.vals.tolist(), cols.seeds.tolist(), cols.reps.tolist())
    out: list[list[Sample]] = []
    start = 0
    for n in cols.counts:
        out.append(flat[start:start + n])
        start += n
    return out


def unpack_samples(n: int, metrics_json: str, idx_b: bytes, seeds_b: bytes, reps_b: bytes,
                   vals_b: bytes, only: str | None = None) -> list[Sample]:
    """One cell's samples back from :func:`pack_samples` (optionally one metric only)."""
    return unpack_cells([(n, metrics_json, idx_b, seeds_b, reps_b, vals_b)], only)[0]


# --- column text ----------------------------------------------------------------------------------

_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str)


def dumps(obj: Any) -> str:
    """Canonical JSON text of a column (sorted keys, no spaces; unknown types as ``str``)."""
    return _ENCODER.encode(obj)


def clean_text(text: str | None) -> str | None:
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


def loads_many(texts: Sequence[str]) -> list[Any]:
    """``[json.loads(t) for t in texts]``, parsed in one call (one C scan, shared key strings)."""
    if not texts:
        return []
    try:
        out = json.loads("[" + ",".join(texts) + "]")
    except (ValueError, TypeError):
        out = None
    if not isinstance(out, list) or len(out) != len(texts):
        out = [loads_column(t) for t in texts]  # a malformed text: fail (or not) on its own
    return out


def loads_column(text: str, what: str = "a JSON column") -> Any:
    """``json.loads(text)``; a damaged column is a one-line :class:`StoreError`."""
    try:
        return json.loads(text)
    except (ValueError, TypeError) as exc:
        raise StoreError(f"the store holds a corrupt value in {what} ({exc}); the damaged "
                         "record cannot be read") from None


def labels_json(labels: Any) -> str:
    """``MetricPoint.labels`` (a tuple of ``(name, value)`` pairs; a mapping is accepted too) as
    a JSON list of pairs, order kept."""
    pairs = labels.items() if isinstance(labels, Mapping) else (labels or ())
    return json.dumps([[str(k), str(v)] for k, v in pairs])
