"""KrakenLNN speed: predict throughput at 500 units and process_sequence latency at 100 units.

Goals (issue 2): >= 50,000 reservoir steps/s in ``predict`` at 500 units, and a median under
1 ms for ``process_sequence`` of 50 steps at 100 units. Both are measured on the numba fast path
and on the pure NumPy/SciPy reference (``backend="numpy"``) in the same invocation, and the ratio
fast / reference is printed. The numba kernels are compiled (or loaded from the cache) by warm-up
calls before anything is timed.

Wall-clock figures are what the goals are about; the CPU-time figures (``time.process_time``)
are printed next to them because on a shared machine the wall clock also counts time spent
waiting for a core. By default a long ``predict`` shares each step's rows with a low-priority
helper thread (``threads=2``, see ``allele.core.kraken``); the CPU figure then counts both
threads. The single-thread figure (``threads=1``) is printed too, with the share of the rows the
helper computed, which shows how much of a second core the machine left free.

    .venv/bin/python benchmarks/kraken_speed.py [--predict-steps 50000] [--repeats 5] [--check]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

from allele.core.datasets import mackey_glass
from allele.core.kraken import Backend, KrakenLNN

PREDICT_GOAL = 50_000.0  # steps/s at 500 units
STREAM_GOAL_MS = 1.0  # median ms for 50 steps at 100 units


def _fitted(size: int, backend: Backend, series: np.ndarray, threads: int = 2) -> KrakenLNN:
    net = KrakenLNN(size, seed=0, backend=backend, memory_size=1000, threads=threads)
    net.fit(series[:1500], series[1:1501], warmup=100)
    return net


def predict_rates(
    nets: list[KrakenLNN], inputs: np.ndarray, repeats: int
) -> list[tuple[float, float, float]]:
    """For each net, median steps/s over ``repeats`` predict calls: (wall clock, CPU time,
    share of the rows its helper thread computed). The nets' calls are interleaved, so a change
    in the machine's load during the run affects them alike."""
    for net in nets:
        net.predict(inputs[:200])  # warm-up (JIT compile or cache load)
    walls: list[list[float]] = [[] for _ in nets]
    cpus: list[list[float]] = [[] for _ in nets]
    shares: list[list[float]] = [[] for _ in nets]
    for _ in range(repeats):
        for k, net in enumerate(nets):
            w0, c0 = time.perf_counter(), time.process_time()
            net.predict(inputs)
            walls[k].append(time.perf_counter() - w0)
            cpus[k].append(time.process_time() - c0)
            chunks = -(-net.reservoir_size // net._chunk)
            shares[k].append(net._helper_chunks / (chunks * inputs.shape[0]))
    steps = inputs.shape[0]
    return [
        (
            steps / statistics.median(walls[k]),
            steps / statistics.median(cpus[k]),
            statistics.median(shares[k]),
        )
        for k in range(len(nets))
    ]


def stream_latency(net: KrakenLNN, chunk: np.ndarray, calls: int) -> tuple[float, float]:
    """Median and 90th-percentile ms of ``process_sequence(chunk)`` over ``calls`` calls."""
    for _ in range(20):  # warm-up
        net.process_sequence(chunk)
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        net.process_sequence(chunk)
        times.append(time.perf_counter() - t0)
    times_ms = np.array(times) * 1e3
    return float(np.median(times_ms)), float(np.percentile(times_ms, 90))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--predict-steps", type=int, default=50_000)
    parser.add_argument("--reference-steps", type=int, default=5_000,
                        help="steps for the (slow) NumPy reference predict")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--calls", type=int, default=2_000,
                        help="process_sequence calls for the latency median")
    parser.add_argument("--check", action="store_true",
                        help="exit with status 1 when a goal is missed")
    args = parser.parse_args(argv)

    series = mackey_glass(max(args.predict_steps, args.reference_steps) + 1600, seed=1)
    test = series[1600:]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"KrakenLNN speed  (cpus={os.cpu_count()}, load average {load:.2f} at start)")

    fast500 = _fitted(500, "numba", series)
    one500 = _fitted(500, "numba", series, threads=1)
    ref500 = _fitted(500, "numpy", series)
    (fast_wall, fast_cpu, share), (one_wall, one_cpu, _) = predict_rates(
        [fast500, one500], test[: args.predict_steps], args.repeats
    )
    [(ref_wall, ref_cpu, _)] = predict_rates(
        [ref500], test[: args.reference_steps], max(1, args.repeats // 2)
    )
    ok_predict = fast_wall >= PREDICT_GOAL
    print("\npredict, 500 units (defaults: connectivity 0.1, leak 0.3), median of "
          f"{args.repeats} calls of {args.predict_steps} steps")
    print(f"  numba      {fast_wall:12,.0f} steps/s wall  {fast_cpu:12,.0f} steps/s cpu"
          f"   (default threads=2; helper computed {share:.0%} of the rows)")
    print(f"  numba 1thr {one_wall:12,.0f} steps/s wall  {one_cpu:12,.0f} steps/s cpu"
          "   (threads=1, calls interleaved with the line above)")
    print(f"  numpy ref  {ref_wall:12,.0f} steps/s wall  {ref_cpu:12,.0f} steps/s cpu")
    print(f"  ratio      {fast_wall / ref_wall:12.1f}x wall      {fast_cpu / ref_cpu:12.1f}x cpu"
          "   (numba default / numpy ref)")
    print(f"  goal >= {PREDICT_GOAL:,.0f} steps/s: {'PASS' if ok_predict else 'FAIL'}")

    chunk = test[:50]
    fast100 = _fitted(100, "numba", series)
    ref100 = _fitted(100, "numpy", series)
    fast_med, fast_p90 = stream_latency(fast100, chunk, args.calls)
    ref_med, ref_p90 = stream_latency(ref100, chunk, max(1, args.calls // 4))
    ok_stream = fast_med < STREAM_GOAL_MS
    print(f"\nprocess_sequence, 50 steps, 100 units, fitted readout ({args.calls} calls)")
    print(f"  numba      median {fast_med:8.3f} ms   p90 {fast_p90:8.3f} ms")
    print(f"  numpy ref  median {ref_med:8.3f} ms   p90 {ref_p90:8.3f} ms")
    print(f"  ratio      {ref_med / fast_med:8.1f}x faster (median)")
    print(f"  goal median < {STREAM_GOAL_MS} ms: {'PASS' if ok_stream else 'FAIL'}")
    load_end = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nload average {load_end:.2f} at end")
    return 1 if args.check and not (ok_predict and ok_stream) else 0


if __name__ == "__main__":
    sys.exit(main())
