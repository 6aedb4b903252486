"""The CPU percent of the runner and its workers: computed over a sane interval only (not over
the few milliseconds between a tick and the flush that ends a run), never above 100 x cores."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from allele.bench.live import CpuMeter, RunLive
from allele.store import ResultStore, open_store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ResultStore]:
    st = open_store(f"sqlite:///{tmp_path / 'results.db'}")
    yield st
    st.close()


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_cpu_percent_needs_a_sane_interval_and_stays_possible() -> None:
    clock = FakeClock()
    meter = CpuMeter(clock=clock, min_interval_s=0.2, cores=2)
    assert meter.percent(7, 10.0) is None  # first reading: a base only
    clock.t += 0.004
    assert meter.percent(7, 10.03) is None  # 4 ms later: 750 % of nothing; the base stays
    clock.t += 0.496
    assert meter.percent(7, 10.25) == pytest.approx(50.0)  # 0.25 s of CPU over 0.5 s
    clock.t += 0.5
    assert meter.percent(7, 11.5) == 200.0  # rounding past 2 cores: at most 100 x cores
    clock.t += 0.5
    assert meter.percent(7, 1.0) is None  # less CPU than before: another process; a new base
    meter.forget(set())
    assert meter.percent(7, 1.0) is None


def test_worker_cpu_points_are_never_taken_over_a_few_milliseconds(store: ResultStore) -> None:
    live = RunLive(store, interval_s=60.0)
    clock = FakeClock()
    live.cpu = CpuMeter(clock=clock, cores=psutil.cpu_count() or 1)
    try:
        live.publisher.flush()  # the bases
        clock.t += 0.003  # e.g. the flush when a run ends, right after a tick
        live.publisher.flush()
        assert store.read_metric_points("allele_bench_worker_cpu_percent") == []
        assert len(store.read_metric_points("allele_bench_worker_rss_bytes")) == 2
        clock.t += 0.5
        live.publisher.flush()
        (point,) = store.read_metric_points("allele_bench_worker_cpu_percent")
        assert 0.0 <= point.value <= 100.0 * (psutil.cpu_count() or 1)
    finally:
        live.close()
