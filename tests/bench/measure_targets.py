"""Targets the measurement tests reference as ``tests.bench.measure_targets:NAME``."""

from __future__ import annotations

import os
import random
import time
from typing import Any

import numpy as np

from allele.bench import Metric


def throughput(params: dict[str, Any], seed: int) -> dict[str, Any]:
    """A throughput of 1000 items per second (times ``$MEASURE_GAIN`` for the cells whose
    ``size`` is in ``$MEASURE_FASTER``) with 4% lognormal noise per call (seeded by the seed,
    the cell's ``size`` and ``$MEASURE_RUN``), as a bare number
    (``items_per_s``) and as a declared :class:`Metric` whose name would be guessed the wrong
    way (``score_time``, declared ``$MEASURE_DECLARE``, default higher). The environment, not
    the params, carries what changes between runs, so both runs have the same cells."""
    run = int(os.environ.get("MEASURE_RUN", "0"))
    rng = np.random.default_rng([seed, run, int(params.get("size", 0))])
    size = int(params.get("size", 0))
    faster = {int(x) for x in os.environ.get("MEASURE_FASTER", "").split(",") if x}
    gain = float(os.environ.get("MEASURE_GAIN", "1.0")) if size in faster else 1.0
    rate = 1000.0 * gain * float(np.exp(rng.normal(0.0, 0.04)))
    direction = os.environ.get("MEASURE_DECLARE", "higher")
    return {"items_per_s": rate,
            "score_time": Metric(rate / 1000.0, unit="", direction=direction)}


def sort_state(params: dict[str, Any], seed: int, *, state: Any = None) -> dict[str, float]:
    """Sorts the array ``state`` (from :func:`make_array`) in place: the timed operation."""
    arr = state if state is not None else make_array(params, seed)
    arr.sort()
    return {"first": float(arr[0])}


def make_array(params: dict[str, Any], seed: int) -> np.ndarray:
    """The setup of :func:`sort_state`: a fresh shuffled array (sleeps ``sleep_ms`` first, a
    costly setup that must stay out of the timing)."""
    time.sleep(float(params.get("sleep_ms", 0.0)) / 1000.0)
    return np.random.default_rng(seed).random(int(params.get("n", 20_000)))


def lcg(params: dict[str, Any], seed: int, *, state: Any = None) -> dict[str, float]:
    """``n`` steps of a linear congruential generator (pure CPU, a few milliseconds) from the
    state's ``acc`` (a fresh one when called without a setup); mutates its state."""
    st = state if state is not None else {"acc": seed}
    acc = st["acc"]
    for i in range(int(params.get("n", 100_000))):
        acc = (acc * 1103515245 + i) & 0xFFFFFFFF
    st["acc"] = acc
    return {"acc": float(acc)}


def slow_state(params: dict[str, Any], seed: int) -> dict[str, int]:
    """A setup for :func:`lcg` that sleeps ``sleep_ms`` first (a costly setup that must stay
    out of the timing)."""
    time.sleep(float(params.get("sleep_ms", 0.0)) / 1000.0)
    return {"acc": seed}


TEARDOWNS: list[int] = []


def note_teardown(params: dict[str, Any], seed: int, *, state: Any = None) -> None:
    """A teardown that records it ran, with the seed its state started from."""
    TEARDOWNS.append(seed)


def tiny(params: dict[str, Any], seed: int) -> dict[str, float]:
    """A call of about a microsecond."""
    return {"x": float(sum(range(int(params.get("n", 10)))))}


def bad_input(params: dict[str, Any], seed: int) -> Any:
    """A setup whose numpy call fails (a size that is not a number): the error must name this
    function, not only numpy's compiled frame it was raised in."""
    return np.random.default_rng(seed).normal(size=params["n"])


def pylist_sort(params: dict[str, Any], seed: int) -> dict[str, float]:
    """Sorts a Python list of ``n`` random floats: ``n`` small objects, each a trace of
    :mod:`tracemalloc`, so its memory is the same for every seed (6.89 MiB at n=200,000)."""
    rng = random.Random(seed)
    items = [rng.random() for _ in range(int(params.get("n", 100_000)))]
    items.sort()
    return {"first": items[0]}
