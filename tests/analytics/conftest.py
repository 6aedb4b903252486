"""Analytics tests run many small linear-algebra calls; oversubscribed BLAS threads on a shared
machine make them tens of times slower, so BLAS is limited to one thread here."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from threadpoolctl import threadpool_limits


@pytest.fixture(autouse=True)
def _single_thread_blas() -> Iterator[None]:
    with threadpool_limits(1):
        yield
