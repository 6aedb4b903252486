"""KrakenLNN, the reservoir model: its arguments and their validation, the state it keeps
(streaming state, memory ring buffer, readout) and the calls that train and run it.

See :mod:`allele.core.kraken` for the model and its state semantics; the time-step loop runs in
:mod:`allele.core.kraken.kernel` (``backend="numba"``) or :mod:`allele.core.kraken.reference`
(``backend="numpy"``), over the weights of :mod:`allele.core.kraken.weights`.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import numpy.typing as npt
import scipy.linalg

from allele.core.datasets import nrmse
from allele.core.kraken import kernel
from allele.core.kraken.reference import reservoir_states_reference
from allele.core.kraken.weights import build_recurrent, to_rows
from allele.core.observer import (
    ReadoutStats,
    SequenceStats,
    default_name,
    default_observer,
    notify,
)
from allele.errors import NotFittedError, ValidationError

__all__ = ["Backend", "KrakenLNN", "SequenceResult"]

FloatArray = npt.NDArray[np.float64]
Backend = Literal["numba", "numpy"]


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


# --------------------------------------------------------------------------------------------
# The reservoir
# --------------------------------------------------------------------------------------------


class KrakenLNN:
    """A leaky-integrator echo-state reservoir with a ridge readout (see
    :mod:`allele.core.kraken`).

    Learned state follows the scikit-learn habit: ``readout_`` (``(1 + d + N, k)`` or None),
    ``fit_state_`` (the reservoir state at the end of the training inputs) and
    ``train_nrmse_``. The recurrent matrix is built (and rescaled) in the constructor; the input
    weights are drawn the first time an input's dimension ``d`` is known. Both derive only from
    ``seed``, so two instances with the same seed and the same calls behave identically.

    ``threads`` (keyword-only, 1 or 2, default 2) lets long numba runs share each step with a
    lowest-priority helper thread (see :mod:`allele.core.kraken.kernel`); it never changes a
    result, only the wall time (and the process's CPU time, which then counts both threads).
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
        self._weights = build_recurrent(
            self.reservoir_size, self.connectivity, self.spectral_radius,
            np.random.default_rng(w_seq),
        )
        self._rows = to_rows(self._weights)
        self._chunk = kernel.chunk_rows(self.reservoir_size)
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
            self._final[1] = np.mean(np.abs(x) > kernel.SATURATION) if x.size else 0.0
            return states[steps - keep_states :], outputs
        if readout:
            assert self.readout_ is not None
            readout_t = np.ascontiguousarray(self.readout_.T)
        else:
            readout_t = np.empty((0, 1 + u.shape[1] + self.reservoir_size))
        extra = np.empty((0, self.reservoir_size)) if noise is None else noise
        out = np.empty((steps, readout_t.shape[0]))
        kept = np.empty((keep_states, self.reservoir_size))
        self._helper_chunks = kernel.run(
            u, self._w_in_t, extra, self._rows, x, self.leak_rate, readout_t, out, kept,
            self._final, chunk=self._chunk, threads=self.threads,
        )
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
        """Train the ridge readout on ``[1; u; x]`` (see :mod:`allele.core.kraken`
        for the state rules).

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
        """Readout predictions for ``inputs``, starting from ``fit_state_`` (pure; see
        :mod:`allele.core.kraken`).

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
