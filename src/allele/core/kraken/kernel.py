"""The numba kernels of :class:`~allele.core.kraken.KrakenLNN`: the time-step loop, the
memory-ordering intrinsics it synchronises with, and the optional helper thread.

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
The input drive ``W_in @ [1; u[t]]`` and the readout are computed inside the
kernel, step by step (N * d and (1 + d + N) * k vectorised multiply-adds): precomputing the drive
for all steps in one product was measured to cost about a tenth of the step time, just to write
the (T, N) array and read it back. Every step does the same arithmetic whatever the length of
the sequence, so streaming in chunks is bit-identical to one call, and ``predict`` equals
``process_sequence`` bit for bit. Everything is float64: single precision would save
little here (the cost is the gathers, not the arithmetic) and would add state noise near 1e-7,
not far below the ~5e-5 NRMSE that the Mackey-Glass preset reaches with a ridge of 1e-10.

Every compiled function and every constant the kernels read lives in this one file: numba's
on-disk cache (``cache=True``, in ``__pycache__`` beside this file) is invalidated by this
file's modification time only, so a kernel compiled against a constant of another module could
be reused after that constant changed.
"""

from __future__ import annotations

import math
import os
import platform
import threading
import time
from typing import TYPE_CHECKING, Any

import numba
import numpy as np
import numpy.typing as npt
from llvmlite import ir as llvm_ir
from numba.core import cgutils as _cgutils
from numba.core import types
from numba.extending import intrinsic

from allele.machine import usable_cpus

if TYPE_CHECKING:
    from allele.core.kraken.weights import RowMatrix

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.uint32]

cgutils: Any = _cgutils  # untyped numba module

_X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")

SATURATION = 0.99
"""A unit counts as saturated in SequenceStats when ``|x_i|`` exceeds this value."""


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
def _run_kernel(  # size: allow
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
    ``run``). Each step splits the rows into chunks of ``chunk`` rows (fixed per reservoir, see
    ``chunk_rows``); the main thread works from the first chunk forward, the helper from the
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
    see ``weights.RowMatrix``); each row product is a reduction that vectorises with gathers.

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
        if abs(x[i]) > SATURATION:
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


def chunk_rows(units: int) -> int:
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


def run(
    inputs: FloatArray, w_in_t: FloatArray, extra: FloatArray, rows: RowMatrix, x: FloatArray,
    leak: float, readout_t: FloatArray, out: FloatArray, states: FloatArray, final: FloatArray,
    *, chunk: int, threads: int,
) -> int:
    """Run ``_run_kernel`` on the caller's thread over ``inputs`` from ``x`` (updated in place),
    with a helper thread when ``threads > 1`` and the run is worth one (``_worth_a_helper``).

    The arguments are those of ``_run_kernel``, with the recurrent matrix as its
    :class:`~allele.core.kraken.weights.RowMatrix` (the scratch state buffers, the sync array and
    the spin budget are made here). Returns how many row chunks the main thread took from the
    helper.
    """
    n = x.shape[0]
    helped = threads > 1 and _worth_a_helper(inputs.shape[0], n)
    sync = np.zeros(_SYNC_LEN, dtype=np.int64)
    args = (
        inputs, w_in_t, extra, rows.ptr, rows.idx, rows.val, x,
        np.empty(n), np.empty(n if helped else 0), leak, readout_t, out, states,
        final, sync, _HELPER_SPIN_BUDGET, chunk,
    )
    if helped:
        # Not joined: the main thread never waits for the helper, and a helper that is
        # descheduled at the end of the run sees the quit flag when it next runs.
        threading.Thread(target=_helper, args=args, name=_HELPER_NAME, daemon=True).start()
    try:
        _run_kernel(_MAIN, *args)
    finally:
        sync[_SYNC_QUIT] = 1  # (the kernel sets it too; this covers a failed call)
    return int(sync[_SYNC_TAKEN])
