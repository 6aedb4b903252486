"""allele.store: persistence of benchmark results and telemetry, in SQLite or PostgreSQL.

The store keeps and reads; it decides nothing. Its public surface::

    from allele.store import open_store, CellResult, Sample, cell_key

    with open_store() as store:           # .allele/results.db, or ALLELE_STORE_URL
        record = store.load_run("latest")

Modules: ``model`` (the plain records), ``results`` (:class:`ResultStore`), ``engine``
(connections, transactions, migrations at open), ``schema`` (tables and migrations),
``codecs`` (sample packing), ``lazy`` (records that defer their expensive parts), ``points``
(telemetry points). Names are imported lazily, so ``import allele.store`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from allele.store.leases import Lease
    from allele.store.model import (
        CellResult,
        CellStatus,
        MetricHistory,
        RunInfo,
        RunRecord,
        RunStatus,
        Sample,
        cell_key,
    )
    from allele.store.points import MetricPoint
    from allele.store.results import ResultStore, open_store

_EXPORTS = {
    "ResultStore": "allele.store.results",
    "open_store": "allele.store.results",
    "MetricPoint": "allele.store.points",
    "Lease": "allele.store.leases",
    "CellResult": "allele.store.model",
    "CellStatus": "allele.store.model",
    "MetricHistory": "allele.store.model",
    "RunInfo": "allele.store.model",
    "RunRecord": "allele.store.model",
    "RunStatus": "allele.store.model",
    "Sample": "allele.store.model",
    "cell_key": "allele.store.model",
}

__all__ = [
    "CellResult",
    "CellStatus",
    "Lease",
    "MetricHistory",
    "MetricPoint",
    "ResultStore",
    "RunInfo",
    "RunRecord",
    "RunStatus",
    "Sample",
    "cell_key",
    "open_store",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'allele.store' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
