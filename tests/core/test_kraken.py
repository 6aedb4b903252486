"""Tests for KrakenLNN: structure, state semantics, kernels against the reference, accuracy."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allele.core.datasets import mackey_glass, narma10, nrmse
from allele.core.kraken import KrakenLNN, SequenceResult, reservoir_states_reference
from allele.core.kraken import kernel as kernel_mod
from allele.core.kraken import model as model_mod
from allele.core.kraken import weights as weights_mod
from allele.core.observer import ReadoutStats, SequenceStats
from allele.errors import NotFittedError, ValidationError

SLOW_SETTINGS = settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


class Recorder:
    """An observer that keeps every event it receives."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, Any]] = []

    def on_sequence(self, name: str, stats: SequenceStats) -> None:
        self.events.append(("sequence", name, stats))

    def on_readout(self, name: str, stats: ReadoutStats) -> None:
        self.events.append(("readout", name, stats))


class Exploding:
    def on_sequence(self, name: str, stats: SequenceStats) -> None:
        raise RuntimeError("observer bug")

    def on_readout(self, name: str, stats: ReadoutStats) -> None:
        raise RuntimeError("observer bug")


def _signal(steps: int, dims: int = 1, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    u = rng.uniform(-1.0, 1.0, size=(steps, dims))
    return u[:, 0] if dims == 1 else u


def _delay_task(steps: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    u = _signal(steps, seed=seed)
    return u, np.roll(u, 2)  # recall the input two steps back


# --- construction and validation ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"reservoir_size": 0}, "reservoir_size"),
        ({"reservoir_size": 2.5}, "reservoir_size"),
        ({"spectral_radius": -0.1}, "spectral_radius"),
        ({"spectral_radius": float("nan")}, "spectral_radius"),
        ({"leak_rate": 0.0}, "leak_rate"),
        ({"leak_rate": 1.5}, "leak_rate"),
        ({"input_scaling": -1.0}, "input_scaling"),
        ({"connectivity": 0.0}, "connectivity"),
        ({"connectivity": 1.1}, "connectivity"),
        ({"ridge": -1e-3}, "ridge"),
        ({"noise": -0.1}, "noise"),
        ({"memory_size": 0}, "memory_size"),
        ({"seed": -1}, "seed"),
        ({"seed": "abc"}, "seed"),
        ({"backend": "cuda"}, "backend"),
        ({"threads": 3}, "threads"),
        ({"threads": True}, "threads"),
        ({"name": 3}, "name"),
        ({"reservoir_size": 3, "connectivity": 0.05}, "connectivity"),
    ],
)
def test_invalid_arguments_name_the_argument(kwargs: dict[str, Any], name: str) -> None:
    with pytest.raises(ValidationError, match=name):
        KrakenLNN(**kwargs)


def test_defaults_and_name() -> None:
    net = KrakenLNN(seed=0)
    assert net.reservoir_size == 100
    assert net.spectral_radius == 0.9
    assert net.leak_rate == 0.3
    assert net.memory_size == 1000
    assert net.name.startswith("kraken-")
    assert KrakenLNN(seed=0, name="mine").name == "mine"
    assert KrakenLNN(seed=0).name != net.name
    assert not net.is_fitted
    assert net.input_weights is None
    np.testing.assert_array_equal(net.state, np.zeros(100))


@SLOW_SETTINGS
@given(
    size=st.integers(20, 150),
    radius=st.floats(0.1, 1.5),
    connectivity=st.floats(0.1, 0.6),
    seed=st.integers(0, 2**31),
)
def test_spectral_radius_is_the_requested_one(
    size: int, radius: float, connectivity: float, seed: int
) -> None:
    net = KrakenLNN(size, spectral_radius=radius, connectivity=connectivity, seed=seed)
    w = net.recurrent_weights
    assert w.nnz == pytest.approx(connectivity * size * size, abs=1)
    got = np.abs(np.linalg.eigvals(w.toarray())).max()
    assert got == pytest.approx(radius, rel=1e-9)


@pytest.mark.parametrize("dense_max", [50, 10_000])  # the ARPACK path, then the dense one
def test_spectral_radius_both_eigen_paths(
    dense_max: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(weights_mod, "_DENSE_EIG_MAX", dense_max)
    net = KrakenLNN(200, spectral_radius=0.8, connectivity=0.05, seed=4)
    got = np.abs(np.linalg.eigvals(net.recurrent_weights.toarray())).max()
    assert got == pytest.approx(0.8, rel=1e-9)


def test_small_reservoirs_build_for_every_seed() -> None:
    """``KrakenLNN(reservoir_size=5, seed=2)`` was refused ("spectral radius 0 ... raise
    connectivity") while seeds 0 and 1 built: its 2 connections formed no cycle. Such a draw is
    drawn again from the same seed, so every seed builds, each always the same matrix."""
    for seed in range(30):
        w = KrakenLNN(reservoir_size=5, seed=seed).recurrent_weights
        assert w.nnz == 2
        assert np.abs(np.linalg.eigvals(w.toarray())).max() == pytest.approx(0.9, rel=1e-9)
        again = KrakenLNN(reservoir_size=5, seed=seed).recurrent_weights
        assert (w != again).nnz == 0


@pytest.mark.parametrize(("size", "connectivity", "seed"), [(5, 0.1, 0), (5, 0.1, 1),
                                                            (100, 0.1, 7), (300, 0.02, 3)])
def test_a_first_draw_with_a_cycle_is_kept(size: int, connectivity: float, seed: int) -> None:
    """Matrices that built before the redraw are unchanged: the first draw, rescaled."""
    rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(3)[0])
    first = scipy.sparse.random_array((size, size), density=connectivity, format="csr", rng=rng,
                                      data_sampler=lambda size: rng.uniform(-1.0, 1.0, size=size))
    first.sum_duplicates()
    first.sort_indices()
    w = KrakenLNN(size, connectivity=connectivity, seed=seed).recurrent_weights
    np.testing.assert_array_equal(w.indptr, first.indptr)
    np.testing.assert_array_equal(w.indices, first.indices)
    ratio = w.data / first.data
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-12)  # one scale for every weight


def test_a_draw_without_a_cycle_is_not_rescaled_by_its_rounding_error() -> None:
    """65 units at connectivity 0.01, seed 3, first drew 42 connections without a cycle: the
    true spectral radius is 0, ARPACK's estimate a rounding error, and the weights were
    multiplied up to 673 while the radius stayed 0. That draw is replaced too."""
    w = KrakenLNN(65, connectivity=0.01, seed=3).recurrent_weights
    assert np.abs(np.linalg.eigvals(w.toarray())).max() == pytest.approx(0.9, rel=1e-9)
    assert np.abs(w.data).max() < 5


def test_too_few_connections_for_a_cycle_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(weights_mod, "_MAX_DRAWS", 1)
    with pytest.raises(ValidationError) as info:
        KrakenLNN(reservoir_size=5, seed=2)
    assert str(info.value) == (
        "connectivity=0.1 gives a 5-unit recurrent matrix of 2 connections, and none of 1 "
        "draws had a cycle (spectral radius 0: nothing to rescale); raise connectivity")
    with pytest.raises(ValidationError) as info:
        KrakenLNN(reservoir_size=3, connectivity=0.05, seed=0)
    assert str(info.value) == ("connectivity=0.05 gives a 3-unit recurrent matrix with no "
                               "connection at all (0 of its 9 entries); raise connectivity")


def test_zero_spectral_radius_means_no_recurrence() -> None:
    net = KrakenLNN(20, spectral_radius=0.0, leak_rate=1.0, seed=0)
    assert net.recurrent_weights.nnz == 0
    u = _signal(10)
    res = net.process_sequence(u)
    w_in = net.input_weights
    assert w_in is not None
    # without recurrence and with leak 1 the state is a pure function of the last input
    np.testing.assert_allclose(res.state, np.tanh(w_in[:, 0] + w_in[:, 1] * u[-1]), atol=1e-13)


def test_input_weights_scale() -> None:
    net = KrakenLNN(50, input_scaling=0.25, seed=1)
    net.process_sequence(_signal(5, dims=3))
    w_in = net.input_weights
    assert w_in is not None
    assert w_in.shape == (50, 4)
    assert np.abs(w_in).max() <= 0.25
    assert np.abs(w_in).max() > 0.2


# --- shapes and errors -------------------------------------------------------------------------


def test_shapes_one_dimensional() -> None:
    u, y = _delay_task(400)
    net = KrakenLNN(40, seed=0).fit(u, y, warmup=50)
    assert net.readout_ is not None
    assert net.readout_.shape == (1 + 1 + 40, 1)
    assert net.predict(u[:30]).shape == (30,)
    res = net.process_sequence(u[:30])
    assert isinstance(res, SequenceResult)
    assert res.outputs is not None
    assert res.outputs.shape == (30,)
    assert res.state.shape == (40,)
    assert res.seconds >= 0.0


def test_shapes_multi_dimensional() -> None:
    u = _signal(300, dims=3)
    y = np.column_stack([u[:, 0] * u[:, 1], np.roll(u[:, 2], 1)])
    net = KrakenLNN(40, seed=0).fit(u, y, warmup=20)
    assert net.readout_ is not None
    assert net.readout_.shape == (1 + 3 + 40, 2)
    assert net.predict(u[:25]).shape == (25, 2)
    res = net.process_sequence(u[:7])
    assert res.outputs is not None
    assert res.outputs.shape == (7, 2)
    with pytest.raises(ValidationError, match="dimension"):
        net.predict(u[:10, :2])


def test_unfitted_behaviour() -> None:
    net = KrakenLNN(30, seed=0)
    with pytest.raises(NotFittedError):
        net.predict(_signal(10))
    res = net.process_sequence(_signal(10))
    assert res.outputs is None
    assert res.state.shape == (30,)
    assert np.abs(res.state).max() > 0


@pytest.mark.parametrize(
    ("inputs", "targets", "warmup", "match"),
    [
        (np.zeros(50), np.zeros(49), 0, "steps"),
        (np.zeros(50), np.zeros(50), 49, "warmup"),
        (np.zeros(50), np.zeros(50), -1, "warmup"),
        (np.zeros((50, 2, 2)), np.zeros(50), 0, "inputs"),
        (np.full(50, np.nan), np.zeros(50), 0, "NaN"),
        (np.zeros(50), np.full(50, np.inf), 0, "targets"),
        (np.zeros(50), np.zeros((50, 2, 1)), 0, "targets"),
        (["a"] * 50, np.zeros(50), 0, "numeric"),
        (np.zeros(50), ["b"] * 50, 0, "targets must be numeric"),
        (np.zeros(50), None, 0, "targets"),
    ],
)
def test_fit_validation(inputs: Any, targets: Any, warmup: int, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        KrakenLNN(20, seed=0).fit(inputs, targets, warmup=warmup)


def test_failed_fit_does_not_fix_the_input_dimension() -> None:
    net = KrakenLNN(20, seed=0)
    with pytest.raises(ValidationError):
        net.fit(np.zeros((50, 3)), np.zeros(49))
    assert net.input_weights is None
    net.fit(np.zeros(50), np.arange(50.0), warmup=5)  # a 1-D input is still accepted
    assert net.input_weights is not None
    assert net.input_weights.shape == (20, 2)


def test_empty_sequence_is_a_no_op() -> None:
    net = KrakenLNN(20, seed=0)
    net.process_sequence(_signal(5))
    before = net.state
    res = net.process_sequence(np.zeros(0))
    np.testing.assert_array_equal(res.state, before)
    assert net.memory_fill == 5


# --- determinism and state semantics -----------------------------------------------------------


def test_same_seed_same_everything() -> None:
    u, y = _delay_task(300)
    a = KrakenLNN(50, seed=7, noise=1e-3).fit(u, y, warmup=20)
    b = KrakenLNN(50, seed=7, noise=1e-3).fit(u, y, warmup=20)
    assert (a.recurrent_weights != b.recurrent_weights).nnz == 0
    np.testing.assert_array_equal(a.input_weights, b.input_weights)
    np.testing.assert_array_equal(a.readout_, b.readout_)
    np.testing.assert_array_equal(a.predict(u[:50]), b.predict(u[:50]))
    c = KrakenLNN(50, seed=8).fit(u, y, warmup=20)
    assert not np.array_equal(a.predict(u[:50]), c.predict(u[:50]))


@SLOW_SETTINGS
@given(
    cuts=st.lists(st.integers(0, 120), min_size=0, max_size=6),
    fitted=st.booleans(),
)
def test_streaming_in_chunks_equals_one_call(cuts: list[int], fitted: bool) -> None:
    u, _ = _delay_task(120, seed=1)
    one = KrakenLNN(30, seed=3, memory_size=50)
    many = KrakenLNN(30, seed=3, memory_size=50)
    if fitted:
        train_u, train_y = _delay_task(200, seed=2)
        one.fit(train_u, train_y, warmup=10)
        many.fit(train_u, train_y, warmup=10)
    whole = one.process_sequence(u)
    bounds = [0, *sorted(cuts), 120]
    outs = []
    last = None
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        last = many.process_sequence(u[lo:hi])
        if last.outputs is not None:
            outs.append(last.outputs)
    assert last is not None
    np.testing.assert_array_equal(last.state, whole.state)
    np.testing.assert_array_equal(many.memory, one.memory)
    if fitted:
        assert whole.outputs is not None
        np.testing.assert_array_equal(np.concatenate(outs), whole.outputs)
    else:
        assert whole.outputs is None


def test_predict_continues_from_fit_and_is_pure() -> None:
    u, y = _delay_task(500, seed=5)
    net = KrakenLNN(60, seed=1).fit(u[:400], y[:400], warmup=20)
    assert net.fit_state_ is not None
    np.testing.assert_array_equal(net.state, net.fit_state_)
    memory_before = net.memory
    first = net.predict(u[400:])
    second = net.predict(u[400:])
    np.testing.assert_array_equal(first, second)  # pure: same answer twice
    np.testing.assert_array_equal(net.state, net.fit_state_)  # streaming state untouched
    np.testing.assert_array_equal(net.memory, memory_before)
    # streaming from the state fit left behind gives the same predictions
    streamed = net.process_sequence(u[400:]).outputs
    assert streamed is not None
    np.testing.assert_array_equal(streamed, first)
    # ...and continuing the training series is what makes it good: from a zero state the first
    # predictions are worse
    fresh = KrakenLNN(60, seed=1).fit(u[:400], y[:400], warmup=20)
    fresh.fit_state_ = np.zeros(60)
    cold = fresh.predict(u[400:])
    assert np.abs(cold[:5] - y[400:405]).mean() > np.abs(first[:5] - y[400:405]).mean()


def test_readme_example_predicts_the_steps_right_after_the_fit(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """README fitted on ``series[:2999]`` and predicted from ``series[3000]``: the first unseen
    input, ``series[2999]``, was skipped while the reservoir went on from the fit's state, and
    it printed NRMSE 5.34e-3 where the contiguous continuation gives 2.57e-3."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    code = next(block for block in re.findall(r"(?ms)^```python\n(.*?)^```", readme)
                if "KrakenLNN" in block)
    calls: dict[str, Any] = {}
    fit, predict = KrakenLNN.fit, KrakenLNN.predict

    def spy_fit(self: KrakenLNN, inputs: Any, targets: Any, **kw: Any) -> KrakenLNN:
        calls["fit"] = (np.asarray(inputs), np.asarray(targets))
        return fit(self, inputs, targets, **kw)

    def spy_predict(self: KrakenLNN, inputs: Any) -> np.ndarray:
        calls["predict"] = np.asarray(inputs)
        calls["out"] = predict(self, inputs)
        return calls["out"]

    monkeypatch.setattr(KrakenLNN, "fit", spy_fit)
    monkeypatch.setattr(KrakenLNN, "predict", spy_predict)
    namespace: dict[str, Any] = {}
    exec(compile(code, "README.md", "exec"), namespace)
    series = namespace["series"]
    fit_inputs, fit_targets = calls["fit"]
    n = len(fit_inputs)
    np.testing.assert_array_equal(fit_inputs, series[:n])
    np.testing.assert_array_equal(fit_targets, series[1:n + 1])
    np.testing.assert_array_equal(calls["predict"], series[n:-1])  # the very next input on
    printed = float(capsys.readouterr().out)
    assert printed == nrmse(series[n + 1:], calls["out"])
    assert printed == pytest.approx(2.573e-3, rel=1e-3)


def test_unseeded_instances_differ() -> None:
    a = KrakenLNN(30)
    b = KrakenLNN(30)
    assert a.seed is None
    assert (a.recurrent_weights != b.recurrent_weights).nnz > 0


def test_reset_zeroes_state_and_memory_but_keeps_readout() -> None:
    u, y = _delay_task(300)
    net = KrakenLNN(40, seed=2).fit(u, y, warmup=20)
    readout = net.readout_
    net.reset()
    np.testing.assert_array_equal(net.state, np.zeros(40))
    assert net.memory_fill == 0
    assert net.memory.shape == (0, 40)
    assert net.readout_ is readout
    # after reset, streaming the training inputs reproduces the training states exactly
    res = net.process_sequence(u)
    assert net.fit_state_ is not None
    np.testing.assert_array_equal(res.state, net.fit_state_)


def test_noise_only_perturbs_training() -> None:
    u, y = _delay_task(300)
    clean = KrakenLNN(40, seed=2).fit(u, y, warmup=20)
    noisy = KrakenLNN(40, seed=2, noise=0.05).fit(u, y, warmup=20)
    assert not np.allclose(clean.readout_, noisy.readout_)  # type: ignore[arg-type]
    # the noisy model's prediction is deterministic (noise is a training-time regulariser)
    np.testing.assert_array_equal(noisy.predict(u[:50]), noisy.predict(u[:50]))
    # refitting draws the same noise: fit is a function of (seed, data)
    readout = noisy.readout_
    noisy.fit(u, y, warmup=20)
    np.testing.assert_array_equal(noisy.readout_, readout)


# --- memory buffer -----------------------------------------------------------------------------


def test_memory_ring_buffer_evicts_oldest() -> None:
    net = KrakenLNN(10, seed=0, memory_size=4)
    trace = KrakenLNN(10, seed=0, memory_size=100)
    u = _signal(11)
    net.process_sequence(u[:3])
    states = trace.process_sequence(u[:1]).state[None, :]
    for t in range(1, 11):
        states = np.vstack([states, trace.process_sequence(u[t : t + 1]).state])
    assert net.memory_fill == 3
    np.testing.assert_array_equal(net.memory, states[:3])
    net.process_sequence(u[3:6])  # 6 states seen, capacity 4: states 0 and 1 evicted
    assert net.memory_fill == 4
    np.testing.assert_array_equal(net.memory, states[2:6])
    net.process_sequence(u[6:11])
    np.testing.assert_array_equal(net.memory, states[7:11])
    np.testing.assert_array_equal(net.recent_states(2), states[9:11])
    assert net.recent_states(10).shape == (4, 10)
    assert net.recent_states(0).shape == (0, 10)


@SLOW_SETTINGS
@given(chunks=st.lists(st.integers(0, 9), min_size=1, max_size=12), cap=st.integers(1, 12))
def test_memory_holds_exactly_the_last_states(chunks: list[int], cap: int) -> None:
    total = sum(chunks)
    u = _signal(max(total, 1), seed=9)
    net = KrakenLNN(8, seed=1, memory_size=cap)
    reference = KrakenLNN(8, seed=1, memory_size=max(total, 1))
    pos = 0
    for size in chunks:
        net.process_sequence(u[pos : pos + size])
        reference.process_sequence(u[pos : pos + size])
        pos += size
    everything = reference.memory
    assert everything.shape[0] == total
    assert net.memory_fill == min(total, cap)
    np.testing.assert_array_equal(net.memory, everything[total - min(total, cap) :])


def test_huge_memory_capacity_is_allocated_on_demand() -> None:
    net = KrakenLNN(10, seed=0, memory_size=10**9)  # 80 GB if allocated up front
    for _ in range(3):
        net.process_sequence(_signal(7))
    assert net.memory_fill == 21
    assert net.memory.shape == (21, 10)
    np.testing.assert_array_equal(net.memory[-1], net.state)


def test_fit_fills_memory_with_training_states() -> None:
    u, y = _delay_task(200)
    net = KrakenLNN(20, seed=0, memory_size=15).fit(u, y, warmup=10)
    assert net.memory_fill == 15
    assert net.fit_state_ is not None
    np.testing.assert_array_equal(net.memory[-1], net.fit_state_)


# --- the numba kernels against the NumPy reference ---------------------------------------------


@SLOW_SETTINGS
@given(size=st.integers(1, 80), connectivity=st.floats(0.01, 1.0), seed=st.integers(0, 1000))
def test_row_layout_holds_exactly_the_matrix(size: int, connectivity: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    w = scipy.sparse.random_array(
        (size, size), density=connectivity, format="csr", rng=rng
    )
    rows = weights_mod.to_rows(w)
    assert rows.ptr.dtype == np.uint32 and rows.idx.dtype == np.uint32
    rebuilt = np.zeros((size, size))
    for i in range(size):
        lo, hi = rows.ptr[i], rows.ptr[i + 1]
        np.add.at(rebuilt[i], rows.idx[lo:hi], rows.val[lo:hi])
    np.testing.assert_array_equal(rebuilt, w.toarray())


def test_fast_tanh_matches_numpy() -> None:
    v = np.concatenate([np.linspace(-50, 50, 400_001), [0.0, -0.0, 1e-300, -1e-12, 20.0, 700.0]])
    out = np.empty_like(v)
    kernel_mod._tanh_array(v, out)
    assert np.abs(out - np.tanh(v)).max() < 2e-14
    assert out[v >= 20].min() == 1.0


@SLOW_SETTINGS
@given(
    size=st.integers(5, 120),
    leak=st.floats(0.05, 1.0),
    radius=st.floats(0.1, 1.3),
    scaling=st.floats(0.01, 3.0),
    seed=st.integers(0, 1000),
)
def test_numba_kernel_matches_reference(
    size: int, leak: float, radius: float, scaling: float, seed: int
) -> None:
    kw: dict[str, Any] = {
        "reservoir_size": size, "leak_rate": leak, "spectral_radius": radius,
        "input_scaling": scaling, "connectivity": 0.3, "seed": seed,
    }
    fast = KrakenLNN(**kw)
    ref = KrakenLNN(**kw, backend="numpy")
    u = _signal(150, dims=2, seed=seed)
    a = fast.process_sequence(u)
    b = ref.process_sequence(u)
    np.testing.assert_allclose(a.state, b.state, rtol=0, atol=1e-11)
    np.testing.assert_allclose(fast.memory, ref.memory, rtol=0, atol=1e-11)


@pytest.mark.parametrize("steps", [1, 2, 301])
@pytest.mark.parametrize("threads", [1, 2])
def test_chunked_kernel_matches_reference(
    monkeypatch: pytest.MonkeyPatch, steps: int, threads: int
) -> None:
    """From 256 units the kernel splits rows into chunks and alternates two state buffers."""
    monkeypatch.setattr(kernel_mod, "_HELPER_MIN_STEPS", 1)
    kw: dict[str, Any] = {"reservoir_size": 300, "seed": 3, "memory_size": 400}
    fast = KrakenLNN(**kw, threads=threads)
    ref = KrakenLNN(**kw, backend="numpy")
    assert fast._chunk == kernel_mod._CHUNK
    u = _signal(steps, dims=2, seed=steps)
    for _ in range(2):  # the second call starts from a non-zero state
        a = fast.process_sequence(u)
        b = ref.process_sequence(u)
        np.testing.assert_allclose(a.state, b.state, rtol=0, atol=1e-11)
    np.testing.assert_allclose(fast.memory, ref.memory, rtol=0, atol=1e-11)


def test_numba_predict_and_fit_match_reference() -> None:
    u, y = _delay_task(700, seed=3)
    fast = KrakenLNN(80, seed=11).fit(u[:500], y[:500], warmup=50)
    ref = KrakenLNN(80, seed=11, backend="numpy").fit(u[:500], y[:500], warmup=50)
    # the training states agree to ~1e-14; the tiny-ridge regression amplifies that a little
    np.testing.assert_allclose(fast.predict(u[500:]), ref.predict(u[500:]), rtol=0, atol=1e-6)
    assert fast.train_nrmse_ == pytest.approx(ref.train_nrmse_, rel=1e-5)
    # with the same readout, the fused numba readout equals the NumPy one to rounding
    ref.readout_ = fast.readout_
    ref.fit_state_ = fast.fit_state_
    np.testing.assert_allclose(fast.predict(u[500:]), ref.predict(u[500:]), rtol=0, atol=1e-10)
    ref.reset()
    fast.reset()
    a = fast.process_sequence(u[500:]).outputs
    b = ref.process_sequence(u[500:]).outputs
    assert a is not None
    assert b is not None
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-10)


def test_reference_function_matches_kernel_directly() -> None:
    net = KrakenLNN(50, seed=0)
    u = _signal(60)
    net.process_sequence(u[:1])  # draws the input weights
    net.reset()
    w_in = net.input_weights
    assert w_in is not None
    drive = np.outer(u, w_in[:, 1]) + w_in[:, 0]
    x = np.zeros(50)
    states = reservoir_states_reference(drive, net.recurrent_weights, x, net.leak_rate)
    np.testing.assert_array_equal(x, states[-1])
    got = net.process_sequence(u)
    np.testing.assert_allclose(got.state, states[-1], rtol=0, atol=1e-12)


# --- the optional helper thread -----------------------------------------------------------------


def _kernel_args(net: KrakenLNN, u: np.ndarray, x: np.ndarray, sync: np.ndarray) -> tuple[Any, ...]:
    """Arguments of one direct ``_run_kernel`` call (no readout, no kept states)."""
    n = net.reservoir_size
    rows = net._rows
    return (
        u, net._w_in_t, np.empty((0, n)), rows.ptr, rows.idx, rows.val,
        x, np.empty(n), np.zeros(n), net.leak_rate, np.empty((0, 1 + u.shape[1] + n)),
        np.empty((u.shape[0], 0)), np.empty((0, n)), np.zeros(2), sync, 50, kernel_mod._CHUNK,
    )


def test_helper_rows_are_bit_identical_and_the_main_thread_takes_them() -> None:
    """Both sides of the two-thread protocol, run one after the other in this thread."""
    net = KrakenLNN(150, seed=4)  # 5 chunks of 32 rows (the last one partial)
    u = _signal(1, dims=2, seed=4).reshape(1, 2)
    net.process_sequence(_signal(40, dims=2, seed=5))  # draws W_in, leaves a non-trivial state
    x0 = net.state
    # the main thread alone, one step
    alone = x0.copy()
    kernel_mod._run_kernel(kernel_mod._MAIN, *_kernel_args(net, u, alone, np.zeros(40, np.int64)))
    assert not np.array_equal(alone, x0)
    # a helper that sees step 0 published computes every chunk (no main thread progress yet),
    # then gives up waiting for step 1 after its spin budget (return value 1)
    sync = np.zeros(kernel_mod._SYNC_LEN, np.int64)
    sync[kernel_mod._SYNC_STEP] = 1
    helper_args = _kernel_args(net, u, x0.copy(), sync)
    assert kernel_mod._run_kernel(kernel_mod._HELPER, *helper_args) == 1
    shared = helper_args[8]
    np.testing.assert_array_equal(shared, alone)
    chunks = -(-150 // kernel_mod._CHUNK)
    assert sync[kernel_mod._SYNC_HELPER] == (1 << kernel_mod._TAG_SHIFT) | chunks
    # a main thread that finds the helper's chunks done copies (some of) them: same bits
    main_sync = np.zeros(kernel_mod._SYNC_LEN, np.int64)
    main_sync[kernel_mod._SYNC_HELPER] = sync[kernel_mod._SYNC_HELPER]
    main_args = list(_kernel_args(net, u, x0.copy(), main_sync))
    main_args[8] = shared.copy()
    kernel_mod._run_kernel(kernel_mod._MAIN, *main_args)
    assert main_sync[kernel_mod._SYNC_TAKEN] >= 1
    np.testing.assert_array_equal(main_args[6], alone)
    # a helper's rows tagged with another step are never used
    stale_sync = np.zeros(kernel_mod._SYNC_LEN, np.int64)
    stale_sync[kernel_mod._SYNC_HELPER] = (7 << kernel_mod._TAG_SHIFT) | chunks
    stale_args = list(_kernel_args(net, u, x0.copy(), stale_sync))
    stale_args[8] = np.full(150, 123.0)
    kernel_mod._run_kernel(kernel_mod._MAIN, *stale_args)
    assert stale_sync[kernel_mod._SYNC_TAKEN] == 0
    np.testing.assert_array_equal(stale_args[6], alone)


@pytest.mark.parametrize("noise", [0.0, 1e-3])
def test_two_threads_give_the_same_bits_as_one(
    monkeypatch: pytest.MonkeyPatch, noise: float
) -> None:
    monkeypatch.setattr(kernel_mod, "_HELPER_MIN_STEPS", 1)
    monkeypatch.setattr(kernel_mod, "_HELPER_MIN_UNITS", 1)
    u, y = _delay_task(1500, seed=9)
    kw: dict[str, Any] = {"reservoir_size": 230, "seed": 5, "noise": noise, "memory_size": 300}
    one = KrakenLNN(**kw, threads=1).fit(u[:1000], y[:1000], warmup=50)
    two = KrakenLNN(**kw, threads=2).fit(u[:1000], y[:1000], warmup=50)
    assert one._helper_chunks == 0
    np.testing.assert_array_equal(two.readout_, one.readout_)
    np.testing.assert_array_equal(two.memory, one.memory)
    helped = two._helper_chunks
    for _ in range(5):
        np.testing.assert_array_equal(two.predict(u[1000:]), one.predict(u[1000:]))
        helped += two._helper_chunks
    a = two.process_sequence(u[1000:1200])
    b = two.process_sequence(u[1200:])
    whole = one.process_sequence(u[1000:])
    assert a.outputs is not None and b.outputs is not None
    np.testing.assert_array_equal(np.concatenate((a.outputs, b.outputs)), whole.outputs)
    np.testing.assert_array_equal(b.state, whole.state)
    np.testing.assert_array_equal(two.memory, one.memory)
    # Whether the low-priority helper got a core depends on the machine's load, so this count
    # is reported, not asserted; the deterministic test above covers the helper's rows.
    print(f"helper supplied {helped} chunks")


def test_helper_threads_end_with_their_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kernel_mod, "_HELPER_MIN_STEPS", 1)
    monkeypatch.setattr(kernel_mod, "_HELPER_MIN_UNITS", 1)
    monkeypatch.setattr(kernel_mod, "usable_cpus", lambda: 2)
    started: list[threading.Thread] = []

    class Recorded(threading.Thread):
        def start(self) -> None:
            started.append(self)
            super().start()

    monkeypatch.setattr(threading, "Thread", Recorded)
    u, y = _delay_task(400, seed=2)
    net = KrakenLNN(260, seed=1).fit(u[:300], y[:300], warmup=20)
    for _ in range(3):
        net.predict(u[300:])
    KrakenLNN(260, seed=1, threads=1).fit(u[:300], y[:300], warmup=20).predict(u[300:])
    assert len(started) == 4  # fit + 3 predicts; threads=1 starts none
    assert all(t.name == kernel_mod._HELPER_NAME and t.daemon for t in started)
    for thread in started:
        thread.join(timeout=10.0)
        assert not thread.is_alive()


def test_helper_is_only_started_for_long_runs_on_large_reservoirs() -> None:
    assert not kernel_mod._worth_a_helper(kernel_mod._HELPER_MIN_STEPS - 1, 500)
    assert not kernel_mod._worth_a_helper(10_000, kernel_mod._HELPER_MIN_UNITS - 1)
    expected = kernel_mod.usable_cpus() > 1
    assert kernel_mod._worth_a_helper(10_000, 500) is expected


# --- it learns ---------------------------------------------------------------------------------


def test_learns_a_delay_line() -> None:
    u, y = _delay_task(1500, seed=4)
    net = KrakenLNN(100, seed=0, leak_rate=1.0, spectral_radius=0.5).fit(
        u[:1000], y[:1000], warmup=50
    )
    assert nrmse(y[1000:], net.predict(u[1000:])) < 0.05


def test_mackey_glass_one_step_accuracy_500_units() -> None:
    series = mackey_glass(7001)
    inputs, targets = series[:-1], series[1:]
    net = KrakenLNN.from_preset("mackey_glass", reservoir_size=500, seed=0)
    net.fit(inputs[:5000], targets[:5000], warmup=200)
    test_error = nrmse(targets[5000:], net.predict(inputs[5000:]))
    assert test_error <= 1e-3
    # a naive persistence forecast (y[t] = u[t]) is nowhere near
    assert nrmse(targets[5000:], inputs[5000:]) > 0.05


def test_narma10_accuracy_200_units() -> None:
    u, y = narma10(6000, seed=0)
    net = KrakenLNN.from_preset("narma10", reservoir_size=200, seed=0)
    net.fit(u[:5000], y[:5000], warmup=200)
    assert nrmse(y[5000:], net.predict(u[5000:])) <= 0.3


def test_unknown_preset() -> None:
    with pytest.raises(ValidationError, match="preset"):
        KrakenLNN.from_preset("lorenz")


# --- observer ----------------------------------------------------------------------------------


def test_observer_receives_stats_with_correct_values() -> None:
    rec = Recorder()
    u, y = _delay_task(300)
    net = KrakenLNN(30, seed=0, memory_size=100, observer=rec, name="kr")
    net.fit(u, y, warmup=40)
    assert len(rec.events) == 1
    kind, name, stats = rec.events[0]
    assert (kind, name) == ("readout", "kr")
    assert isinstance(stats, ReadoutStats)
    assert stats.samples == 260
    assert stats.seconds > 0
    assert stats.train_nrmse == net.train_nrmse_
    # the training NRMSE is the readout's error on the training states after warmup
    net.reset()
    replay = net.process_sequence(u).outputs
    assert replay is not None
    assert stats.train_nrmse == pytest.approx(nrmse(y[40:], replay[40:]), rel=1e-9)

    rec.events.clear()
    res = net.process_sequence(u[:17])
    net.predict(u[:23])
    assert [e[0] for e in rec.events] == ["sequence", "sequence"]
    seq_stats = rec.events[0][2]
    assert isinstance(seq_stats, SequenceStats)
    assert seq_stats.steps == 17
    assert seq_stats.seconds == res.seconds
    assert seq_stats.state_norm == pytest.approx(float(np.linalg.norm(res.state)))
    assert seq_stats.saturated_fraction == float(np.mean(np.abs(res.state) > 0.99))
    assert seq_stats.memory_fill == 100
    assert seq_stats.memory_capacity == 100
    assert rec.events[1][2].steps == 23


def test_outputs_identical_with_and_without_observer() -> None:
    u, y = _delay_task(400)
    plain = KrakenLNN(50, seed=5).fit(u[:300], y[:300], warmup=20)
    watched = KrakenLNN(50, seed=5, observer=Recorder()).fit(u[:300], y[:300], warmup=20)
    np.testing.assert_array_equal(plain.predict(u[300:]), watched.predict(u[300:]))
    a = plain.process_sequence(u[300:])
    b = watched.process_sequence(u[300:])
    np.testing.assert_array_equal(a.outputs, b.outputs)
    np.testing.assert_array_equal(a.state, b.state)


def test_failing_observer_never_breaks_the_reservoir() -> None:
    u, y = _delay_task(300)
    net = KrakenLNN(30, seed=0, observer=Exploding()).fit(u, y, warmup=20)
    assert net.predict(u[:10]).shape == (10,)
    assert net.process_sequence(u[:10]).outputs is not None


def test_no_stats_built_without_observer(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("stats object built without an observer")

    monkeypatch.setattr(model_mod, "SequenceStats", boom)
    monkeypatch.setattr(model_mod, "ReadoutStats", boom)
    u, y = _delay_task(200)
    net = KrakenLNN(20, seed=0).fit(u, y, warmup=20)
    net.predict(u[:10])
    net.process_sequence(u[:10])
