"""Declared metrics, timed regions and per-cell memory, checked against truth (issue 12)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from allele.bench.compare import compare_runs
from allele.bench.metrics import declarations_from_doc, direction_of
from allele.bench.runner import Runner
from allele.bench.spec import loads_suite
from allele.store import ResultStore, open_store

T = "tests.bench.measure_targets"
ENV = {"test": True}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ResultStore]:
    st = open_store(f"sqlite:///{tmp_path / 'results.db'}")
    yield st
    st.close()


def _throughput_run(store: ResultStore, gain: float, run: int, metrics: str,
                    declare: str = "higher") -> str:
    """A run of 8 cells whose throughput is 1000/s, ``gain`` times that in cells 1 and 2 (a
    code change that speeds up one path; a change of every cell alike would be taken for the
    machine's, see allele.bench.runlevel)."""
    os.environ.update(MEASURE_GAIN=str(gain), MEASURE_FASTER="1,2", MEASURE_RUN=str(run),
                      MEASURE_DECLARE=declare)
    suite = loads_suite(f"""
name: tp
target: {T}:throughput
isolation: inline
seeds: 12
matrix: {{size: [1, 2, 3, 4, 5, 6, 7, 8]}}
metrics: {metrics}
""")
    return Runner(store, executor="inline", environment=ENV).run(suite).run_id


DECLARED = "{items_per_s: {direction: higher, unit: 1/s}, score_time: null}"


def test_a_declared_throughput_that_rises_20_percent_is_improved(store: ResultStore) -> None:
    base = _throughput_run(store, 1.0, 1, DECLARED)
    head = _throughput_run(store, 1.2, 2, DECLARED)
    b, h = store.load_run(base), store.load_run(head)
    decl = declarations_from_doc(h.info.spec)
    assert decl["items_per_s"].direction == "higher" and decl["items_per_s"].unit == "1/s"
    # the target's Metric(...) declaration reached the run (its name alone would say "lower")
    assert direction_of("score_time") == "lower"
    assert decl["score_time"].direction == "higher" and decl["score_time"].declared
    comp = compare_runs(b, h)
    verdicts = {(r.params["size"], r.metric): r.verdict for r in comp.rows}
    assert len(verdicts) == 16
    for (size, metric), verdict in verdicts.items():
        if size in (1, 2):
            assert verdict == "improved", (size, metric, verdict)
        else:  # unchanged, or too noisy to rule out a small change: never a false verdict
            assert verdict in ("unchanged", "inconclusive"), (size, metric, verdict)
    assert not any(r.guessed for r in comp.rows)
    assert not comp.caveats


def test_compare_uses_heads_declaration_and_says_when_bases_differs(store: ResultStore) -> None:
    base = _throughput_run(store, 1.0, 1, DECLARED, declare="lower")
    head = _throughput_run(store, 1.2, 2, DECLARED, declare="higher")
    comp = compare_runs(store.load_run(base), store.load_run(head))
    assert any("score_time" in c and "HEAD's declaration is used" in c for c in comp.caveats)
    assert {r.verdict for r in comp.rows if r.metric == "score_time"
            and r.params["size"] in (1, 2)} == {"improved"}


def test_an_undeclared_metric_is_compared_with_a_guess_that_is_shown(
        store: ResultStore) -> None:
    base = _throughput_run(store, 1.0, 1, "[items_per_s]")
    head = _throughput_run(store, 1.2, 2, "[items_per_s]")
    comp = compare_runs(store.load_run(base), store.load_run(head))
    assert comp.rows and all(r.guessed for r in comp.rows)
    # the fixed guess: a rate is higher-is-better
    assert {r.verdict for r in comp.rows if r.params["size"] in (1, 2)} == {"improved"}


@pytest.mark.parametrize(("name", "direction"), [
    ("ops_per_sec", "higher"), ("items_per_sec", "higher"), ("items_per_s", "higher"),
    ("cache_misses", "lower"), ("instructions", "lower"), ("us_per_call", "lower"),
    ("ns_per_genome", "lower"), ("wall_s", "lower"), ("best_fitness", "higher"),
    ("tokens_per_s", "higher"), ("alloc_peak_mb", "lower")])
def test_direction_guesses(name: str, direction: str) -> None:
    assert direction_of(name) == direction
