"""Analytics tests run many small linear-algebra calls; oversubscribed BLAS threads on a shared
machine make them tens of times slower, so BLAS is limited to one thread here."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(autouse=True)
def _single_thread_blas() -> Iterator[None]:
    with threadpool_limits(1):
        yield


def public_values(name: str) -> np.ndarray:
    """The values of a public series of the real-data fixture (``benchmarks/data/public``)."""
    sys.path.insert(0, str(BENCH))
    import realdata

    return np.asarray(realdata.public_series()[name].values, dtype=np.float64)
