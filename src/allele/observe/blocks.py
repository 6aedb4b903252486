"""What a flush sends: the records of a stream turned into one :class:`PointBlock` per series,
and the queue of unsent blocks cut into batches (see :meth:`Telemetry.flush
<allele.observe.telemetry.Telemetry.flush>`)."""

from __future__ import annotations

from collections import deque

import numpy as np

from allele.observe.metrics import BY_SOURCE, Labels, Record, record_points
from allele.store.points import PointBlock


def stream_blocks(source: str, comp: str, recs: list[Record]) -> list[PointBlock]:
    """The points of one stream's records, one block per (metric, label values)."""
    ts = np.fromiter((r[0] for r in recs), dtype=np.float64, count=len(recs))
    out: list[PointBlock] = []
    for m in BY_SOURCE[source]:
        if m.label_names:
            groups: dict[Labels, tuple[list[float], list[float]]] = {}
            for rec in recs:
                for values, v in record_points(m, rec):
                    lab = tuple(zip(m.label_names, values, strict=True))
                    t_list, v_list = groups.setdefault(lab, ([], []))
                    t_list.append(rec[0])
                    v_list.append(v)
            out.extend(PointBlock(m.name, comp, lab, np.asarray(t, dtype=np.float64),
                                  np.asarray(v, dtype=np.float64))
                       for lab, (t, v) in groups.items())
            continue
        fn = m.value
        vals = [fn(r) for r in recs]
        if None in vals:
            keep = [i for i, v in enumerate(vals) if v is not None]
            if not keep:
                continue
            out.append(PointBlock(m.name, comp, (), ts[keep],
                                  np.asarray([vals[i] for i in keep], dtype=np.float64)))
        else:
            out.append(PointBlock(m.name, comp, (), ts, np.asarray(vals, dtype=np.float64)))
    return out


def _slice(b: PointBlock, lo: int, hi: int | None = None) -> PointBlock:
    return PointBlock(b.metric, b.component, b.labels, b.timestamps[lo:hi], b.values[lo:hi])


def take(unsent: deque[PointBlock], size: int) -> list[PointBlock]:
    """Pop blocks holding ``size`` points at most (splitting the last one)."""
    batch: list[PointBlock] = []
    room = size
    while unsent and room > 0:
        b = unsent.popleft()
        if len(b) > room:
            unsent.appendleft(_slice(b, room))
            b = _slice(b, 0, room)
        batch.append(b)
        room -= len(b)
    return batch


def drop_first(unsent: deque[PointBlock], n: int) -> None:
    """Drop the first ``n`` queued points."""
    while n > 0 and unsent:
        b = unsent.popleft()
        if len(b) > n:
            unsent.appendleft(_slice(b, n))
            return
        n -= len(b)
