"""KrakenLNN: a leaky-integrator echo-state ("liquid") reservoir with a ridge readout.

The reservoir state ``x`` (``reservoir_size`` units) follows

    x[t] = (1 - a) * x[t-1] + a * tanh(W_in @ [1; u[t]] + W @ x[t-1] + xi[t])

with leak rate ``a``, a sparse random recurrent matrix ``W`` rescaled so that its largest
absolute eigenvalue equals ``spectral_radius``, input weights ``W_in`` uniform in
``[-input_scaling, input_scaling]`` (a bias column plus one column per input dimension), and
``xi`` Gaussian noise of standard deviation ``noise`` during ``fit`` only. The readout is linear
on the extended state ``[1; u[t]; x[t]]`` and is trained in closed form by ridge regression.

State semantics (what each call starts from and leaves behind):

* ``fit(inputs, targets, warmup)`` resets the reservoir to zero, runs it over ``inputs``, drops
  the first ``warmup`` states, trains the readout, and leaves the streaming state (and the memory
  buffer) at the end of the training inputs. It also remembers that end state as ``fit_state_``.
* ``predict(inputs)`` is pure: it starts from ``fit_state_`` (the state at the end of the
  training inputs), so ``fit(u[:n], y[:n]); predict(u[n:])`` is one-step prediction that
  continues the training series, and calling ``predict`` twice gives identical results. It
  changes neither the streaming state nor the memory buffer.
* ``process_sequence(seq)`` is the streaming call: it continues from the current state and
  advances it, so processing a sequence in chunks gives the same states and outputs as processing
  it in one call. Right after ``fit``, ``process_sequence(u_test).outputs == predict(u_test)``.
* ``reset()`` zeroes the streaming state and empties the memory buffer (the readout is kept).

Memory buffer: a ring buffer holding the last ``memory_size`` reservoir states produced by
``fit`` and ``process_sequence``; when it is full, each new state evicts the oldest one.
``memory`` returns the held states oldest first.

Hot loop: the time-step recursion cannot be vectorised over time. It runs in one numba kernel
(``backend="numba"``, the default, compiled with ``cache=True``) that walks the recurrent matrix as
CSR rows with unsigned indices (so the row products vectorise with gathers) and uses an
arithmetic-only tanh (so the loop over units vectorises; absolute error < 2e-14 against
``np.tanh``). Runs of at least ``_HELPER_MIN_STEPS`` steps on at least ``_HELPER_MIN_UNITS``
units share each step's rows with a second, lowest-priority (nice 19) helper thread when the
process may use two CPUs and ``threads=2`` (the default): the caller's thread never waits for
the helper, it takes whatever rows the helper has finished and computes the rest itself, so a
busy machine costs nothing but the helper's bookkeeping, and the results are bit-identical with
one thread or two (see ``_run_kernel``). ``threads=1`` never starts the helper.
``backend="numpy"`` runs the pure NumPy/SciPy reference of the same recursion
(:func:`reservoir_states_reference`: ``scipy.sparse`` product, ``np.tanh``), which the tests
compare against. The input drive ``W_in @ [1; u[t]]`` and the readout are computed inside the
kernel, step by step (N * d and (1 + d + N) * k vectorised multiply-adds): precomputing the drive
for all steps in one product was measured to cost about a tenth of the step time, just to write
the (T, N) array and read it back. Every step does the same arithmetic whatever the length of
the sequence, so streaming in chunks is bit-identical to one call, and ``predict`` equals
``process_sequence`` bit for bit. Everything is float64: single precision would save
little here (the cost is the gathers, not the arithmetic) and would add state noise near 1e-7,
not far below the ~5e-5 NRMSE that the Mackey-Glass preset reaches with a ridge of 1e-10.

Settings that meet the reference tasks (held-out data, see ``PRESETS`` and the tests):

* Mackey-Glass (tau=17, step 1) one-step prediction, 500 units: ``PRESETS["mackey_glass"]``.
* NARMA10, 200 units: ``PRESETS["narma10"]``.
"""

from __future__ import annotations

import math
import os
import platform
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numba
import numpy as np
import numpy.typing as npt
import scipy.linalg
import scipy.sparse
import scipy.sparse.linalg
from llvmlite import ir as llvm_ir
from numba.core import cgutils as _cgutils
from numba.core import types
from numba.extending import intrinsic

from allele.core.datasets import nrmse
from allele.core.observer import (
    ReadoutStats,
    SequenceStats,
    default_name,
    default_observer,
    notify,
)
from allele.errors import NotFittedError, ValidationError
from allele.machine import usable_cpus

__all__ = ["Backend", "KrakenLNN", "SequenceResult", "reservoir_states_reference"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.uint32]
Backend = Literal["numba", "numpy"]

_DENSE_EIG_MAX = 64
"""Up to this many units the spectral radius comes from dense ``eigvals``; above, from ARPACK
(``eigs(k=1, which="LM")``, tol 1e-12: agrees with dense to ~1e-14 relative and is one to two
orders of magnitude faster from a few hundred units on)."""

cgutils: Any = _cgutils  # untyped numba module

_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")

_SATURATION = 0.99
"""A unit counts as saturated in SequenceStats when ``|x_i|`` exceeds this value."""


@dataclass(frozen=True, slots=True)
class SequenceResult:
    """What one ``process_sequence`` call produced.

    ``outputs`` are the readout's predictions for every step (``(T,)`` or ``(T, k)`` like the
    targets given to ``fit``), or None when no readout has been fitted; ``state`` is a copy of the
    reservoir state after the last step; ``seconds`` the wall time of the call.
    """

    outputs: FloatArray | None
    state: FloatArray
    seconds: float


# --------------------------------------------------------------------------------------------
# The time-step loop: numba kernels and the pure NumPy reference.
# --------------------------------------------------------------------------------------------


@numba.njit(cache=True, nogil=True, fastmath=True, error_model="numpy", inline="always")
def _fast_tanh(v: float) -> float:  # pragma: no cover - compiled by numba
    """tanh from arithmetic only, so that the loop over units vectorises (libm tanh does not).

    ``exp(-a)`` with ``a = 2|v| / 256`` from its degree-10 Taylor polynomial, squared eight times,
    then ``tanh|v| = (1 - e) / (1 + e)``. Absolute error below 2e-14 on the whole real line
    (checked in the tests against ``np.tanh``); ``|v| >= 20`` gives exactly +-1.
    """
    a = min(2.0 * abs(v), 40.0) * (1.0 / 256.0)
    na = -a
    p = 1.0 + na * (1.0 + na * (1.0 / 2 + na * (1.0 / 6 + na * (1.0 / 24 + na * (
        1.0 / 120 + na * (1.0 / 720 + na * (1.0 / 5040 + na * (1.0 / 40320 + na * (
            1.0 / 362880 + na * (1.0 / 3628800))))))))))
    p = p * p  # eight squarings, written out (no loop left for the vectoriser to trip on)
    p = p * p
    p = p * p
    p = p * p
    p = p * p
    p = p * p
    p = p * p
    p = p * p
    r = (1.0 - p) / (1.0 + p)
    return r if v >= 0.0 else -r


@numba.njit(cache=True, nogil=True, fastmath=True, error_model="numpy")
def _tanh_array(v: FloatArray, out: FloatArray) -> None:  # pragma: no cover - numba
    """``out[:] = tanh(v)`` with the kernels' tanh (exposed for the accuracy test)."""
    for i in range(v.shape[0]):
        out[i] = _fast_tanh(v[i])


# --- synchronisation between the caller's thread and the optional helper thread ---------------
# One int64 array per run; each slot that a thread writes sits on its own 64-byte cache line.
_MAIN = 0
_HELPER = 1
_SYNC_STEP = 0  # main: t + 1 once the state entering step t is in place (release)
_SYNC_MAIN = 8  # main: (t + 1) << _TAG_SHIFT | chunks of step t done from the front
_SYNC_HELPER = 16  # helper: (t + 1) << _TAG_SHIFT | chunks of step t done from the back
_SYNC_QUIT = 24  # main: 1 when the run is over
_SYNC_TAKEN = 32  # main: how many chunks it took from the helper (diagnostics and tests)
_SYNC_LEN = 40
_TAG_SHIFT = 24
_COUNT_MASK = (1 << _TAG_SHIFT) - 1
_CHUNK = 32
"""Rows per chunk, the unit of work the two threads share within a step (for reservoirs large
enough to use a helper; smaller ones run each step as one chunk, which saves ~0.2 us a step at
100 units)."""


def _load_acquire_typing(typingctx: Any, arr: Any, idx: Any) -> Any:  # pragma: no cover - numba
    """``arr[idx]`` as an atomic acquire load (int64 array)."""
    sig = types.int64(arr, idx)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]])
        return builder.load_atomic(ptr, ordering="acquire", align=8)

    return sig, codegen


_load_acquire: Any = intrinsic(_load_acquire_typing)


def _store_release_typing(typingctx: Any, arr: Any, idx: Any, val: Any) -> Any:  # pragma: no cover
    """``arr[idx] = val`` as an atomic release store (int64 array)."""
    sig = types.void(arr, idx, types.int64)

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]])
        value = context.cast(builder, args[2], signature.args[2], types.int64)
        builder.store_atomic(value, ptr, ordering="release", align=8)
        return context.get_dummy_value()

    return sig, codegen


_store_release: Any = intrinsic(_store_release_typing)


def _spin_pause_typing(typingctx: Any) -> Any:  # pragma: no cover - numba
    """The x86 ``pause`` hint inside a spin-wait (a no-op elsewhere)."""
    sig = types.void()

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        if _X86:
            fnty = llvm_ir.FunctionType(llvm_ir.VoidType(), [])
            fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.sse2.pause")
            builder.call(fn, [])
        return context.get_dummy_value()

    return sig, codegen


_spin_pause: Any = intrinsic(_spin_pause_typing)


@numba.njit(cache=True, nogil=True, fastmath=True, error_model="numpy")
def _leaky_tanh_rows(
    pre: FloatArray, src: FloatArray, dst: FloatArray, lo: int, rows: int, keep: float,
    leak: float,
) -> None:  # pragma: no cover - numba
    """``dst[lo:lo+rows] = keep * src[lo:lo+rows] + leak * tanh(pre[:rows])``.

    A function of its own so that numba optimises (and vectorises) this loop on its own before
    inlining it: written inline in ``_run_kernel`` the loop stayed scalar.
    """
    for r in range(rows):
        dst[lo + r] = keep * src[lo + r] + leak * _fast_tanh(pre[r])


@numba.njit(cache=True, nogil=True, fastmath=True, error_model="numpy")
def _run_kernel(
    role: int,
    inputs: FloatArray,
    w_in_t: FloatArray,
    extra: FloatArray,
    w_ptr: IntArray,
    w_idx: IntArray,
    w_val: FloatArray,
    x: FloatArray,
    x_alt: FloatArray,
    shared: FloatArray,
    leak: float,
    readout_t: FloatArray,
    out: FloatArray,
    states: FloatArray,
    final: FloatArray,
    sync: npt.NDArray[np.int64],
    spin_budget: int,
    chunk: int,
) -> int:  # pragma: no cover - compiled by numba; compared with the reference in the tests
    """Run the recursion over ``inputs`` (T, d) from ``x`` (updated in place).

    ``role`` is ``_MAIN`` for the caller's thread, which runs every step, or ``_HELPER`` for an
    optional second thread that computes rows of the steps the main thread publishes (see
    ``_run``). Each step splits the rows into chunks of ``chunk`` rows (fixed per reservoir, see
    ``_chunk_rows``); the main thread works from the first chunk forward, the helper from the
    last one backward into ``shared`` (N,), and when the main thread reaches a chunk the helper
    has finished it copies the helper's rows instead of computing them. The main thread never
    waits for the helper: without one (or with a helper that is late or descheduled) it simply
    computes every chunk. A chunk's values come from the same compiled code whichever thread
    runs it, so the results are bit-identical with or without the helper. With several chunks
    the state alternates between ``x`` and ``x_alt`` (N,) step by step (the last state is copied
    back into ``x``); with one chunk every product is formed before any row is written, so the
    state is updated in place. Returns 0, or 1 when a helper gave up waiting after
    ``spin_budget`` spins (its caller yields the CPU and calls again).

    Memory ordering: the progress slots in ``sync`` are written with release stores and read
    with acquire loads, so rows written before a slot's update are visible to the thread that
    reads the update. A helper that falls a step behind may read a state buffer while the main
    thread rewrites it; what it computes then carries the old step's tag and is never used.

    The input drive is formed per step from ``w_in_t`` = ``W_in`` transposed, (1 + d, N):
    ``w_in_t[0] + sum_j w_in_t[1 + j] * inputs[t, j]`` (+ ``extra[t]``, the training noise, when
    ``extra`` has T rows; pass (0, N) for none), which saves materialising a (T, N) drive array
    (that cost about a tenth of the step time when precomputed).

    The recurrent matrix comes as CSR rows (``w_ptr``, ``w_idx``, ``w_val``, unsigned indices,
    see ``_RowMatrix``); each row product is a reduction that vectorises with gathers.

    ``readout_t`` is the readout transposed, (k, 1 + d + N), with k = 0 for "no readout"; then
    ``out[t, c] = readout_t[c] . [1; inputs[t]; x[t]]``. ``states`` (R, N) receives the last R
    states (R = 0 stores none). ``final`` (2,) receives the final state's norm and saturated
    fraction. Every step does the same arithmetic in the same order whatever T is, so splitting
    a sequence into chunks changes no bit of the results.
    """
    steps, d = inputs.shape
    n = x.shape[0]
    has_extra = extra.shape[0] > 0
    k_out = readout_t.shape[0]
    first_stored = steps - states.shape[0]
    keep = 1.0 - leak
    chunks = (n + chunk - 1) // chunk
    pre = np.empty(chunk)
    local = np.empty(n if role == _HELPER else 0)
    watch_from = chunks  # main: first chunk at which the helper's progress is worth reading
    last = -1
    t = 0
    while True:
        if role == _MAIN:
            if t == steps:
                break
            _store_release(sync, _SYNC_STEP, t + 1)
            if chunks == 1:  # all products are formed before any row is written: in place
                src = x
                dst = x
            elif t % 2 == 0:
                src = x
                dst = x_alt
            else:
                src = x_alt
                dst = x
        else:
            spins = 0
            published = _load_acquire(sync, _SYNC_STEP)
            while published - 1 <= last:
                if _load_acquire(sync, _SYNC_QUIT) != 0:
                    return 0
                spins += 1
                if spins > spin_budget:
                    return 1
                _spin_pause()
                published = _load_acquire(sync, _SYNC_STEP)
            t = published - 1
            last = t
            # one streaming copy of the other core's freshly written state, then gathers from L1
            src = x if chunks == 1 or t % 2 == 0 else x_alt
            for i in range(n):
                local[i] = src[i]
            src = local
            dst = shared
        tag = (t + 1) << _TAG_SHIFT
        done = 0
        while True:
            if role == _MAIN:
                c = done
                if c == chunks:
                    watch_from = chunks
                    break
                if c + 1 >= watch_from:
                    theirs = _load_acquire(sync, _SYNC_HELPER)
                    if (theirs >> _TAG_SHIFT) == t + 1 and c >= chunks - (theirs & _COUNT_MASK):
                        for i in range(c * chunk, n):
                            dst[i] = shared[i]
                        sync[_SYNC_TAKEN] += chunks - c
                        watch_from = c
                        break
            else:
                c = chunks - 1 - done
                if c < 0:
                    break
                theirs = _load_acquire(sync, _SYNC_MAIN)
                if (theirs >> _TAG_SHIFT) == t + 1:
                    if c < (theirs & _COUNT_MASK):
                        break  # the main thread has done (or is doing) this chunk
                elif _load_acquire(sync, _SYNC_STEP) != t + 1:
                    break  # the main thread has moved on: this step is over
            lo = c * chunk
            rows = min(chunk, n - lo)
            for r in range(rows):
                i = lo + r
                acc = 0.0
                for k in range(w_ptr[i], w_ptr[i + 1]):
                    acc += w_val[k] * src[w_idx[k]]
                pre[r] = acc
            # the drive, term by term (loops without inner loops vectorise), then the update
            for r in range(rows):
                pre[r] += w_in_t[0, lo + r]
            for j in range(d):
                u_tj = inputs[t, j]
                for r in range(rows):
                    pre[r] += w_in_t[1 + j, lo + r] * u_tj
            if has_extra:
                for r in range(rows):
                    pre[r] += extra[t, lo + r]
            _leaky_tanh_rows(pre, src, dst, lo, rows, keep, leak)
            done += 1
            _store_release(sync, _SYNC_HELPER if role == _HELPER else _SYNC_MAIN, tag | done)
        if role == _MAIN:
            if t >= first_stored:
                row = t - first_stored
                for i in range(n):
                    states[row, i] = dst[i]
            for c in range(k_out):
                acc = readout_t[c, 0]
                for j in range(d):
                    acc += readout_t[c, 1 + j] * inputs[t, j]
                for i in range(n):
                    acc += readout_t[c, 1 + d + i] * dst[i]
                out[t, c] = acc
            t += 1
    _store_release(sync, _SYNC_QUIT, 1)
    if chunks > 1 and steps % 2 == 1:
        for i in range(n):
            x[i] = x_alt[i]
    sq = 0.0
    sat = 0
    for i in range(n):
        sq += x[i] * x[i]
        if abs(x[i]) > _SATURATION:
            sat += 1
    final[0] = math.sqrt(sq)
    final[1] = sat / n if n else 0.0
    return 0


_HELPER_MIN_STEPS = 1000
"""A helper thread is started only for runs of at least this many steps (starting one costs
about 0.1 ms) ..."""
_HELPER_MIN_UNITS = 256
"""... and at least this many units: below, a step is too short to share between two cores
(measured on 2 cores: 200 units no gain, 300 units 1.2-1.4x, 500 units 1.3-1.5x)."""
_HELPER_NAME = "allele-kraken-helper"
_HELPER_SPIN_BUDGET = 20_000
"""Spins (each with a ``pause``) the helper waits for the next step before yielding its CPU."""


def _chunk_rows(units: int) -> int:
    """The kernel's chunk size for a reservoir: fixed per reservoir, so that every run of it
    splits the rows the same way (a row's value never depends on the run's length)."""
    return _CHUNK if units >= _HELPER_MIN_UNITS else units


def _worth_a_helper(steps: int, units: int) -> bool:
    return steps >= _HELPER_MIN_STEPS and units >= _HELPER_MIN_UNITS and usable_cpus() > 1


def _helper(*args: Any) -> None:
    """Body of the helper thread: lowest CPU priority, then help until the main thread quits.

    At nice 19 the helper only takes CPU time nobody else wants, so on a busy machine it cannot
    slow the caller's thread down (measured: within a few per cent of running alone) and it
    barely competes with other processes. Where the priority cannot be lowered the helper does
    not run at all; the results are the same either way (see ``_run_kernel``).
    """
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (AttributeError, OSError):
        return
    yield_cpu = getattr(os, "sched_yield", None)
    while _run_kernel(_HELPER, *args) == 1:
        if yield_cpu is not None:
            yield_cpu()
        else:  # pragma: no cover - not Linux
            time.sleep(0.0001)


def reservoir_states_reference(
    drive: FloatArray, weights: Any, x: FloatArray, leak: float
) -> FloatArray:
    """Pure NumPy/SciPy reference of the recursion: the (T, N) states, ``x`` updated in place.

    ``drive`` is ``W_in @ [1; u[t]]`` (+ noise) for every step, ``weights`` the sparse recurrent
    matrix. The numba kernels must agree with this function (``np.allclose``).
    """
    steps = drive.shape[0]
    states = np.empty_like(drive)
    keep = 1.0 - leak
    for t in range(steps):
        pre = weights @ x
        pre += drive[t]
        np.tanh(pre, out=pre)
        x *= keep
        x += leak * pre
        states[t] = x
    return states


# --------------------------------------------------------------------------------------------
# Validation helpers
# --------------------------------------------------------------------------------------------


def _int_arg(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValidationError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValidationError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _float_arg(
    name: str,
    value: object,
    *,
    low: float,
    high: float = math.inf,
    low_open: bool = False,
) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise ValidationError(f"{name} must be a number, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or v < low or v > high or (low_open and v == low):
        left = "(" if low_open else "["
        right = "]" if math.isfinite(high) else ")"
        raise ValidationError(f"{name} must be in {left}{low}, {high}{right}, got {value!r}")
    return v


@dataclass(frozen=True, slots=True)
class _RowMatrix:
    """The recurrent matrix in the layout the kernel walks: CSR rows with unsigned indices.

    Row ``i`` is ``val[ptr[i]:ptr[i+1]]`` at columns ``idx[ptr[i]:ptr[i+1]]``, columns sorted.
    ``ptr`` and ``idx`` are uint32: numba then emits plain gathers without its negative-index
    wrap-around, which cost about a fifth of the step time with int32, and plain CSR rows are
    then faster than the padded ELL (+ overflow) layout this replaced (~+20% steps/s at 500
    units on this machine; the padding slots cost more than the rows' ragged ends).
    """

    ptr: IntArray
    idx: IntArray
    val: FloatArray


def _to_rows(weights: Any) -> _RowMatrix:
    """The kernel's layout of a CSR matrix (sorted indices, no duplicates)."""
    if weights.nnz >= 2**32:  # pragma: no cover - far beyond any reservoir this class builds
        raise ValidationError(f"{weights.nnz} recurrent weights exceed the kernel's 2**32 limit")
    return _RowMatrix(
        ptr=np.ascontiguousarray(weights.indptr, dtype=np.uint32),
        idx=np.ascontiguousarray(weights.indices, dtype=np.uint32),
        val=np.ascontiguousarray(weights.data, dtype=np.float64),
    )


def _spectral_radius(weights: Any, rng: np.random.Generator) -> float:
    n = weights.shape[0]
    if n <= _DENSE_EIG_MAX:
        return float(np.abs(np.linalg.eigvals(weights.toarray())).max())
    v0 = rng.uniform(-1.0, 1.0, size=n)
    try:
        vals = scipy.sparse.linalg.eigs(
            weights, k=1, which="LM", v0=v0, ncv=min(n, 64), maxiter=50 * n,
            tol=1e-12, return_eigenvectors=False,
        )
    except scipy.sparse.linalg.ArpackNoConvergence:
        # ARPACK struggles when many eigenvalues sit near the rim of the disk; dense is exact.
        return float(np.abs(np.linalg.eigvals(weights.toarray())).max())
    return float(np.abs(vals).max())


# --------------------------------------------------------------------------------------------
# The reservoir
# --------------------------------------------------------------------------------------------


class KrakenLNN:
    """A leaky-integrator echo-state reservoir with a ridge readout (see the module docstring).

    Learned state follows the scikit-learn habit: ``readout_`` (``(1 + d + N, k)`` or None),
    ``fit_state_`` (the reservoir state at the end of the training inputs) and
    ``train_nrmse_``. The recurrent matrix is built (and rescaled) in the constructor; the input
    weights are drawn the first time an input's dimension ``d`` is known. Both derive only from
    ``seed``, so two instances with the same seed and the same calls behave identically.

    ``threads`` (keyword-only, 1 or 2, default 2) lets long numba runs share each step with a
    lowest-priority helper thread (see the module docstring); it never changes a result, only
    the wall time (and the process's CPU time, which then counts both threads).
    """

    PRESETS: ClassVar[dict[str, dict[str, float]]] = {
        # Mackey-Glass (tau=17, unit step), one-step-ahead prediction with 500 units: test NRMSE
        # about 7e-5 (train 5000 steps after a 200-step warmup, test the next 2000).
        "mackey_glass": {
            "spectral_radius": 1.1,
            "leak_rate": 1.0,
            "input_scaling": 1.0,
            "connectivity": 0.1,
            "ridge": 1e-10,
        },
        # NARMA10 with 200 units: test NRMSE about 0.15 (train 5000 steps after a 200-step
        # warmup, test the next 1000). A linear-ish reservoir (small input scaling, no leak).
        "narma10": {
            "spectral_radius": 0.9,
            "leak_rate": 1.0,
            "input_scaling": 0.2,
            "connectivity": 0.1,
            "ridge": 1e-6,
        },
    }

    def __init__(
        self,
        reservoir_size: int = 100,
        spectral_radius: float = 0.9,
        leak_rate: float = 0.3,
        input_scaling: float = 1.0,
        connectivity: float = 0.1,
        ridge: float = 1e-6,
        noise: float = 0.0,
        memory_size: int = 1000,
        seed: int | None = None,
        observer: Any = None,
        name: str | None = None,
        *,
        backend: Backend = "numba",
        threads: int = 2,
    ) -> None:
        self.reservoir_size = _int_arg("reservoir_size", reservoir_size, 1)
        self.spectral_radius = _float_arg("spectral_radius", spectral_radius, low=0.0)
        self.leak_rate = _float_arg("leak_rate", leak_rate, low=0.0, high=1.0, low_open=True)
        self.input_scaling = _float_arg("input_scaling", input_scaling, low=0.0)
        self.connectivity = _float_arg(
            "connectivity", connectivity, low=0.0, high=1.0, low_open=True
        )
        self.ridge = _float_arg("ridge", ridge, low=0.0)
        self.noise = _float_arg("noise", noise, low=0.0)
        self.memory_size = _int_arg("memory_size", memory_size, 1)
        if seed is not None:
            seed = _int_arg("seed", seed, 0)
        self.seed = seed
        if backend not in ("numba", "numpy"):
            raise ValidationError(f"backend must be 'numba' or 'numpy', got {backend!r}")
        self.backend: Backend = backend
        if isinstance(threads, bool) or threads not in (1, 2):
            raise ValidationError(f"threads must be 1 or 2, got {threads!r}")
        self.threads = int(threads)
        self._helper_chunks = 0  # row chunks the helper thread supplied in the last numba run
        if name is not None and not isinstance(name, str):
            raise ValidationError(f"name must be a string, got {name!r}")
        self.name = name if name is not None else default_name("kraken")
        # None means "the process-wide default" (normally None: unobserved, zero cost)
        self.observer = observer if observer is not None else default_observer("kraken", self.name)

        root = np.random.SeedSequence(seed)
        w_seq, self._win_seq, self._noise_seq = root.spawn(3)
        self._weights = self._build_recurrent(np.random.default_rng(w_seq))
        self._rows = _to_rows(self._weights)
        self._chunk = _chunk_rows(self.reservoir_size)
        self._final = np.zeros(2)  # norm and saturated fraction of the last _run's final state

        self._input_dim: int | None = None
        self._w_in: FloatArray | None = None  # (N, 1 + d): bias column, then input columns
        self._w_in_t: FloatArray = np.empty((0, self.reservoir_size))  # W_in transposed
        self._x: FloatArray = np.zeros(self.reservoir_size)
        # allocated on demand, growing geometrically up to memory_size rows
        self._mem: FloatArray = np.empty((0, self.reservoir_size))
        self._mem_pos = 0  # next slot to write
        self._mem_fill = 0

        self.readout_: FloatArray | None = None
        self.fit_state_: FloatArray | None = None
        self.train_nrmse_: float | None = None
        self._target_1d = True

    # ---- construction -------------------------------------------------------------------------

    def _build_recurrent(self, rng: np.random.Generator) -> Any:
        n = self.reservoir_size
        weights = scipy.sparse.random_array(
            (n, n),
            density=self.connectivity,
            format="csr",
            rng=rng,
            data_sampler=lambda size: rng.uniform(-1.0, 1.0, size=size),
        )
        weights.sum_duplicates()
        weights.sort_indices()
        if self.spectral_radius == 0.0:
            return scipy.sparse.csr_array((n, n), dtype=np.float64)
        radius = _spectral_radius(weights, rng)
        if radius < 1e-12:
            raise ValidationError(
                f"connectivity={self.connectivity} gives a {n}-unit recurrent matrix with "
                "spectral radius 0 (too few connections to rescale); raise connectivity"
            )
        return weights * (self.spectral_radius / radius)

    @classmethod
    def from_preset(cls, preset: str, **overrides: Any) -> KrakenLNN:
        """A reservoir with the documented settings of ``PRESETS[preset]``, plus ``overrides``."""
        if preset not in cls.PRESETS:
            raise ValidationError(f"preset must be one of {sorted(cls.PRESETS)}, got {preset!r}")
        kwargs: dict[str, Any] = dict(cls.PRESETS[preset])
        kwargs.update(overrides)
        return cls(**kwargs)

    # ---- public read-only views ---------------------------------------------------------------

    @property
    def recurrent_weights(self) -> Any:
        """A copy of the sparse (CSR) recurrent matrix ``W``."""
        return self._weights.copy()

    @property
    def input_weights(self) -> FloatArray | None:
        """A copy of ``W_in`` (N, 1 + d), or None before the first input was seen."""
        return None if self._w_in is None else self._w_in.copy()

    @property
    def state(self) -> FloatArray:
        """A copy of the current streaming state."""
        return self._x.copy()

    @property
    def is_fitted(self) -> bool:
        return self.readout_ is not None

    @property
    def memory(self) -> FloatArray:
        """The held states, oldest first: shape ``(memory_fill, reservoir_size)`` (a copy)."""
        if self._mem_fill < self.memory_size:
            return self._mem[: self._mem_fill].copy()
        return np.concatenate((self._mem[self._mem_pos :], self._mem[: self._mem_pos]))

    @property
    def memory_fill(self) -> int:
        """How many states the memory buffer holds (at most ``memory_size``)."""
        return self._mem_fill

    def recent_states(self, k: int) -> FloatArray:
        """The last ``min(k, memory_fill)`` states, oldest first."""
        k = _int_arg("k", k, 0)
        held = self.memory
        return held[held.shape[0] - min(k, held.shape[0]) :]

    def reset(self) -> None:
        """Zero the streaming state and empty the memory buffer; the readout is kept."""
        self._x = np.zeros(self.reservoir_size)
        self._mem_pos = 0
        self._mem_fill = 0

    # ---- internals ----------------------------------------------------------------------------

    @staticmethod
    def _as_2d(values: npt.ArrayLike, what: str, second: str) -> FloatArray:
        """``values`` as a finite float64 (T, m) array; (T,) becomes (T, 1)."""
        try:
            arr = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"{what} must be numeric: {exc}") from None
        if arr.ndim == 1:
            arr = arr[:, None]
        if arr.ndim != 2 or arr.shape[1] < 1:
            raise ValidationError(
                f"{what} must have shape (T,) or (T, {second}), got {np.shape(values)}"
            )
        if not np.all(np.isfinite(arr)):
            raise ValidationError(f"{what} contain NaN or infinite values")
        return np.ascontiguousarray(arr)

    def _bind_inputs(self, u: FloatArray, what: str = "inputs") -> None:
        """Check the input dimension; the first input seen fixes it and draws ``W_in``."""
        d = u.shape[1]
        if self._input_dim is None:
            self._input_dim = d
            rng = np.random.default_rng(self._win_seq)
            self._w_in = rng.uniform(
                -self.input_scaling, self.input_scaling, size=(self.reservoir_size, 1 + d)
            )
            self._w_in_t = np.ascontiguousarray(self._w_in.T)
        elif d != self._input_dim:
            raise ValidationError(
                f"{what} have {d} dimension(s) but this reservoir was driven with "
                f"{self._input_dim}"
            )

    def _check_inputs(self, inputs: npt.ArrayLike, what: str = "inputs") -> FloatArray:
        u = self._as_2d(inputs, what, "d")
        self._bind_inputs(u, what)
        return u

    def _drive(self, u: FloatArray) -> FloatArray:
        """``W_in @ [1; u[t]]`` for every step: (T, N) (the NumPy reference path only)."""
        assert self._w_in is not None
        drive = np.empty((u.shape[0], self.reservoir_size))
        drive[:] = self._w_in[:, 0]
        for j in range(u.shape[1]):
            drive += u[:, j, None] * self._w_in[:, 1 + j]
        return drive

    def _run(
        self, u: FloatArray, x: FloatArray, *, keep_states: int, readout: bool,
        noise: FloatArray | None = None,
    ) -> tuple[FloatArray, FloatArray | None]:
        """Run from ``x`` (updated in place); return the last ``keep_states`` states and the
        readout outputs (T, k) when ``readout`` is set. ``noise`` (T, N) is added to the
        pre-activations (training noise)."""
        steps = u.shape[0]
        keep_states = min(keep_states, steps)
        if self.backend == "numpy":
            drive = self._drive(u)
            if noise is not None:
                drive += noise
            states = reservoir_states_reference(drive, self._weights, x, self.leak_rate)
            outputs = None
            if readout:
                assert self.readout_ is not None
                d = u.shape[1]
                outputs = u @ self.readout_[1 : 1 + d] + states @ self.readout_[1 + d :]
                outputs += self.readout_[0]
            self._final[0] = np.linalg.norm(x)
            self._final[1] = np.mean(np.abs(x) > _SATURATION) if x.size else 0.0
            return states[steps - keep_states :], outputs
        if readout:
            assert self.readout_ is not None
            readout_t = np.ascontiguousarray(self.readout_.T)
        else:
            readout_t = np.empty((0, 1 + u.shape[1] + self.reservoir_size))
        extra = np.empty((0, self.reservoir_size)) if noise is None else noise
        out = np.empty((steps, readout_t.shape[0]))
        kept = np.empty((keep_states, self.reservoir_size))
        rows = self._rows
        n = self.reservoir_size
        helped = self.threads > 1 and _worth_a_helper(steps, n)
        sync = np.zeros(_SYNC_LEN, dtype=np.int64)
        args = (
            u, self._w_in_t, extra, rows.ptr, rows.idx, rows.val, x,
            np.empty(n), np.empty(n if helped else 0), self.leak_rate, readout_t, out, kept,
            self._final, sync, _HELPER_SPIN_BUDGET, self._chunk,
        )
        if helped:
            # Not joined: the main thread never waits for the helper, and a helper that is
            # descheduled at the end of the run sees the quit flag when it next runs.
            threading.Thread(target=_helper, args=args, name=_HELPER_NAME, daemon=True).start()
        try:
            _run_kernel(_MAIN, *args)
        finally:
            sync[_SYNC_QUIT] = 1  # (the kernel sets it too; this covers a failed call)
        self._helper_chunks = int(sync[_SYNC_TAKEN])
        return kept, (out if readout else None)

    def _push_memory(self, states: FloatArray) -> None:
        cap = self.memory_size
        steps = states.shape[0]
        needed = min(cap, self._mem_fill + steps)
        if needed > self._mem.shape[0]:
            # not full yet, so the held states are rows [0, fill) in order (no wrap so far)
            grown = np.empty((min(cap, max(needed, 2 * self._mem.shape[0])), self.reservoir_size))
            grown[: self._mem_fill] = self._mem[: self._mem_fill]
            self._mem = grown
        if steps >= cap:
            self._mem[:] = states[steps - cap :]
            self._mem_pos = 0
            self._mem_fill = cap
            return
        first = min(steps, cap - self._mem_pos)
        self._mem[self._mem_pos : self._mem_pos + first] = states[:first]
        rest = steps - first
        if rest:
            self._mem[:rest] = states[first:]
        self._mem_pos = (self._mem_pos + steps) % cap
        self._mem_fill = min(cap, self._mem_fill + steps)

    def _shape_outputs(self, y: FloatArray) -> FloatArray:
        return y[:, 0].copy() if self._target_1d else y

    def _sequence_stats(self, steps: int, seconds: float) -> SequenceStats:
        # The final state's norm and saturation come from the last _run (the numba kernel
        # computes them in its last pass): numpy's norm + mean(abs > t) here cost ~10 us per
        # observed call on 100 units, a few per cent of a 100-step process_sequence.
        norm, saturated = self._final.tolist()
        # positional: keyword construction of the dataclass costs about twice as much
        return SequenceStats(steps, seconds, norm, saturated, self._mem_fill, self.memory_size)

    # ---- training and inference ---------------------------------------------------------------

    def fit(self, inputs: npt.ArrayLike, targets: npt.ArrayLike, warmup: int = 100) -> KrakenLNN:
        """Train the ridge readout on ``[1; u; x]`` (see the module docstring for state rules).

        ``targets`` have shape ``(T,)`` or ``(T, k)`` with the same ``T`` as ``inputs``; the first
        ``warmup`` steps only settle the reservoir and are left out of the regression.
        """
        start = time.perf_counter()
        u = self._as_2d(inputs, "inputs", "d")
        target_1d = np.ndim(targets) == 1
        y = self._as_2d(targets, "targets", "k")
        if y.shape[0] != u.shape[0]:
            raise ValidationError(
                f"targets have {y.shape[0]} steps but inputs have {u.shape[0]}"
            )
        warmup = _int_arg("warmup", warmup, 0)
        steps = u.shape[0]
        if steps - warmup < 2:
            raise ValidationError(
                f"warmup={warmup} leaves {steps - warmup} training step(s) of {steps}; need >= 2"
            )
        self._bind_inputs(u)

        noise = None
        if self.noise > 0.0:
            noise_rng = np.random.default_rng(self._noise_seq)
            noise = self.noise * noise_rng.standard_normal((steps, self.reservoir_size))
        x = np.zeros(self.reservoir_size)
        states, _ = self._run(u, x, keep_states=steps, readout=False, noise=noise)

        d = u.shape[1]
        n_train = steps - warmup
        features = np.empty((n_train, 1 + d + self.reservoir_size))
        features[:, 0] = 1.0
        features[:, 1 : 1 + d] = u[warmup:]
        features[:, 1 + d :] = states[warmup:]
        y_train = y[warmup:]
        readout = self._solve_ridge(features, y_train)

        self.readout_ = readout
        self._target_1d = target_1d
        self.fit_state_ = x.copy()
        self._x = x
        self._mem_pos = 0
        self._mem_fill = 0
        self._push_memory(states)
        train_pred = features @ readout
        self.train_nrmse_ = _safe_nrmse(y_train, train_pred)
        if self.observer is not None:
            notify(
                self.observer,
                "on_readout",
                self.name,
                ReadoutStats(
                    samples=n_train,
                    seconds=time.perf_counter() - start,
                    train_nrmse=self.train_nrmse_,
                ),
            )
        return self

    def _solve_ridge(self, features: FloatArray, y: FloatArray) -> FloatArray:
        if self.ridge > 0.0:
            gram = features.T @ features
            gram[np.diag_indices_from(gram)] += self.ridge
            rhs = features.T @ y
            try:
                with warnings.catch_warnings():
                    # a tiny ridge makes the Gram matrix ill-conditioned by design; the Cholesky
                    # solution is still the regularised least-squares minimiser to rounding
                    warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
                    sol = scipy.linalg.solve(gram, rhs, assume_a="pos", check_finite=False)
                return np.asarray(sol, dtype=np.float64)
            except np.linalg.LinAlgError:
                pass  # not numerically positive definite: solve the same problem by lstsq
            scale = math.sqrt(self.ridge)
            aug_x = np.vstack((features, scale * np.eye(features.shape[1])))
            aug_y = np.vstack((y, np.zeros((features.shape[1], y.shape[1]))))
            sol = scipy.linalg.lstsq(aug_x, aug_y, check_finite=False)[0]
            return np.asarray(sol, dtype=np.float64)
        sol = scipy.linalg.lstsq(features, y, check_finite=False)[0]
        return np.asarray(sol, dtype=np.float64)

    def predict(self, inputs: npt.ArrayLike) -> FloatArray:
        """Readout predictions for ``inputs``, starting from ``fit_state_`` (pure; see module doc).

        Returns ``(T,)`` when the readout was fitted on 1-D targets, else ``(T, k)``.
        """
        if self.readout_ is None or self.fit_state_ is None:
            raise NotFittedError(f"{self.name}: call fit() before predict()")
        start = time.perf_counter()
        u = self._check_inputs(inputs)
        x = self.fit_state_.copy()
        _, out = self._run(u, x, keep_states=0, readout=True)
        assert out is not None
        result = self._shape_outputs(out)
        if self.observer is not None:
            stats = self._sequence_stats(u.shape[0], time.perf_counter() - start)
            notify(self.observer, "on_sequence", self.name, stats)
        return result

    def process_sequence(self, seq: npt.ArrayLike) -> SequenceResult:
        """Stream ``seq`` through the reservoir from the current state, keeping the new state.

        The states enter the memory buffer; outputs are the readout's predictions when a readout
        is fitted, else None.
        """
        start = time.perf_counter()
        u = self._check_inputs(seq, "seq")
        fitted = self.readout_ is not None
        states, y = self._run(u, self._x, keep_states=self.memory_size, readout=fitted)
        self._push_memory(states)
        outputs = None if y is None else self._shape_outputs(y)
        state = self._x.copy()
        seconds = time.perf_counter() - start
        if self.observer is not None:
            notify(
                self.observer,
                "on_sequence",
                self.name,
                self._sequence_stats(u.shape[0], seconds),
            )
        return SequenceResult(outputs=outputs, state=state, seconds=seconds)

    def __repr__(self) -> str:
        return (
            f"KrakenLNN(name={self.name!r}, reservoir_size={self.reservoir_size}, "
            f"spectral_radius={self.spectral_radius}, leak_rate={self.leak_rate}, "
            f"input_scaling={self.input_scaling}, connectivity={self.connectivity}, "
            f"ridge={self.ridge}, noise={self.noise}, memory_size={self.memory_size}, "
            f"seed={self.seed}, fitted={self.is_fitted})"
        )


def _safe_nrmse(y_true: FloatArray, y_pred: FloatArray) -> float:
    """Training NRMSE for ReadoutStats; NaN when a target column is constant."""
    if np.any(y_true.std(axis=0) == 0):
        return math.nan
    return nrmse(y_true, y_pred)
