"""What the fault tolerance of issue 16 costs, each figure as a ratio against a baseline measured
in the same invocation (the machine is shared and noisy: compare ratios, not seconds).

1. The cell limit: refusing a spec of 10^9 cells (three axes of 1,000) against building the
   cells of an accepted spec of 10^4 (the work the limit saves is 10^5 times that).
2. Delivery records: a run mirrored into MLflow (SQLite tracking store) with the store recording
   which cells reached MLflow, against the same run without those records.
3. The run lease: taking and releasing it, against creating the run it guards.
4. An unarmed fail point, against an empty function call.

Run: ``python benchmarks/fault_tolerance.py`` (about a minute).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
import timeit
import tracemalloc
from pathlib import Path

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

from allele import failpoints  # noqa: E402
from allele.bench.lease import RunLease  # noqa: E402
from allele.bench.runner import Runner  # noqa: E402
from allele.bench.spec import loads_suite  # noqa: E402
from allele.errors import ConfigError  # noqa: E402
from allele.store import open_store  # noqa: E402


def _axes(n: int, size: int) -> str:
    return "{" + ", ".join(f"x{i}: [{', '.join(map(str, range(size)))}]"
                           for i in range(n)) + "}"


def _measured(fn: object) -> tuple[float, float]:
    """(seconds of the best of 3 calls, peak MiB of Python allocations of one more call under
    tracemalloc, which slows it down)."""
    seconds = min(timeit.repeat(fn, number=1, repeat=3))  # type: ignore[arg-type]
    tracemalloc.start()
    fn()  # type: ignore[operator]
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return seconds, peak


def cell_limit() -> None:
    huge = f"name: huge\ntarget: tests.faults.targets:tiny\nmatrix: {_axes(3, 1000)}\n"
    small = f"name: small\ntarget: tests.faults.targets:tiny\nmatrix: {_axes(2, 100)}\n"

    def refuse() -> None:
        try:
            loads_suite(huge)
        except ConfigError:
            return
        raise AssertionError("the 10^9-cell spec was accepted")

    def build() -> None:
        assert len(loads_suite(small).benchmarks[0].expand()) == 10_000

    r_s, r_mb = _measured(refuse)
    b_s, b_mb = _measured(build)
    print(f"cell limit: refusing 10^9 cells {r_s * 1e3:.1f} ms / {r_mb:.1f} MiB peak; building "
          f"10^4 cells {b_s * 1e3:.1f} ms / {b_mb:.1f} MiB; refusal/baseline = "
          f"{r_s / b_s:.2f}x time, {r_mb / b_mb:.2f}x memory (before: a MemoryError after "
          "filling the memory)")


def _tracked_run(tmp: Path, uri: str, records: bool, cells: int) -> float:
    from allele.tracking.matrix import MlflowProgress
    from allele.tracking.mlflow import MlflowTracker

    suite = loads_suite(f"name: t\ntarget: tests.faults.targets:tiny\nisolation: inline\n"
                        f"seeds: 2\nmatrix: {{a: {list(range(cells))}}}\nmetrics: [v]\n")
    with open_store(f"sqlite:///{tmp / 'results.db'}") as st:
        with MlflowTracker(uri, tmp.name, spool_path=tmp / "spool.jsonl") as tracker:
            runner = Runner(st, executor="inline", environment={"bench": True})
            sink = MlflowProgress(tracker, None, st if records else None, new_run=True)
            runner.progress = sink
            t0 = time.perf_counter()
            summary = runner.run(suite)
            tracker.flush()
            seconds = time.perf_counter() - t0
            if sink.matrix is not None:
                tracker.end_matrix_run(summary.status, matrix=sink.matrix)
        if records:
            assert not st.undelivered_cells(summary.run_id, f"mlflow:{uri}#{tmp.name}")
    return seconds


def delivery_records(tmp: Path, cells: int = 40, repeats: int = 3) -> None:
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    warm = tmp / "warm"
    warm.mkdir()
    _tracked_run(warm, uri, True, 5)  # imports and MLflow's migration out of the figures
    with_r, without_r = [], []
    for i in range(repeats):
        for records, out in ((False, without_r), (True, with_r)):
            d = tmp / f"run{i}-{'with' if records else 'without'}"
            d.mkdir()
            out.append(_tracked_run(d, uri, records, cells))
    w, wo = statistics.median(with_r), statistics.median(without_r)
    print(f"delivery records: tracked run of {cells} cells {w:.2f} s with, {wo:.2f} s without "
          f"(medians of {repeats}, alternating); with/without = {w / wo:.3f}x")


def lease(tmp: Path, n: int = 100) -> None:
    with open_store(f"sqlite:///{tmp / 'lease.db'}") as st:
        t0 = time.perf_counter()
        ids = [st.create_run(f"r{i}", "s", "t", {}, {}) for i in range(n)]
        create = (time.perf_counter() - t0) / n
        t0 = time.perf_counter()
        for i, run_id in enumerate(ids):
            held = RunLease(st, run_id, f"r{i}")
            held.acquire()
            held.release()
        took = (time.perf_counter() - t0) / n
    print(f"run lease: acquire + release {took * 1e3:.2f} ms per run, creating the run "
          f"{create * 1e3:.2f} ms; lease/baseline = {took / create:.2f}x (once per run or resume)")


def failpoint() -> None:
    def empty(name: str) -> None:
        return None

    n = 1_000_000
    hit = min(timeit.repeat(lambda: failpoints.hit("runner.cell_committed"), number=n,
                            repeat=3)) / n
    base = min(timeit.repeat(lambda: empty("runner.cell_committed"), number=n, repeat=3)) / n
    print(f"unarmed fail point: {hit * 1e9:.0f} ns per hit, an empty call {base * 1e9:.0f} ns; "
          f"hit/baseline = {hit / base:.2f}x (one hit per committed cell)")


def main() -> None:
    print(f"load average at start: {os.getloadavg()[0]:.1f} (the machine is shared: ratios "
          "matter, seconds do not)")
    cell_limit()
    failpoint()
    with tempfile.TemporaryDirectory() as tmp:
        lease(Path(tmp))
        delivery_records(Path(tmp))


if __name__ == "__main__":
    main()
