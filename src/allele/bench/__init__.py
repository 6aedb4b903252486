"""allele.bench: matrix benchmarks of Allele's components, and the store that keeps every sample.

The public surface is a handful of names (pyperf's lesson); the machinery lives in the modules
beside this file. Typical use::

    from allele.bench import Runner, load_suite, open_store

    suite = load_suite("benchmarks/seed-matrix.yaml", preset="quick")
    with open_store() as store:
        summary = Runner(store, workers=2).run(suite)
        record = store.load_run(summary.run_id)

or in one call: ``run_spec("benchmarks/seed-matrix.yaml", preset="quick")``. Names are imported
lazily, so ``import allele.bench`` stays cheap and submodules never import each other in a cycle.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from allele.bench.environment import fingerprint
    from allele.bench.metrics import Metric
    from allele.bench.run_protocols import RunSummary
    from allele.bench.runner import Runner, run_spec
    from allele.bench.spec import BenchmarkSpec, SuiteSpec, load_suite, loads_suite
    from allele.store import ResultStore, open_store
    from allele.store.model import CellResult, RunInfo, RunRecord, Sample, cell_key

_EXPORTS = {
    "Metric": "allele.bench.metrics",
    "Runner": "allele.bench.runner",
    "RunSummary": "allele.bench.run_protocols",
    "run_spec": "allele.bench.runner",
    "load_suite": "allele.bench.spec",
    "loads_suite": "allele.bench.spec",
    "SuiteSpec": "allele.bench.spec",
    "BenchmarkSpec": "allele.bench.spec",
    "open_store": "allele.store",
    "ResultStore": "allele.store",
    "CellResult": "allele.store.model",
    "RunInfo": "allele.store.model",
    "RunRecord": "allele.store.model",
    "Sample": "allele.store.model",
    "cell_key": "allele.store.model",
    "fingerprint": "allele.bench.environment",
}

__all__ = [
    "BenchmarkSpec",
    "CellResult",
    "Metric",
    "ResultStore",
    "RunInfo",
    "RunRecord",
    "RunSummary",
    "Runner",
    "Sample",
    "SuiteSpec",
    "cell_key",
    "fingerprint",
    "load_suite",
    "loads_suite",
    "open_store",
    "run_spec",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'allele.bench' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
