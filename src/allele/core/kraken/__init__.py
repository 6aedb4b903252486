"""KrakenLNN: a leaky-integrator echo-state ("liquid") reservoir with a ridge readout.

The reservoir state ``x`` (``reservoir_size`` units) follows

    x[t] = (1 - a) * x[t-1] + a * tanh(W_in @ [1; u[t]] + W @ x[t-1] + xi[t])

with leak rate ``a``, a sparse random recurrent matrix ``W`` rescaled so that its largest
absolute eigenvalue equals ``spectral_radius`` (a draw whose connections form no cycle has no
eigenvalue to rescale and is drawn again from the same seed), input weights ``W_in`` uniform in
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

Backends: ``backend="numba"`` (the default) runs the time-step loop in the numba kernel of
:mod:`allele.core.kraken.kernel` (CSR row gathers, an arithmetic-only tanh, an optional
low-priority helper thread; bit-identical whatever the thread count or chunking of a sequence).
``backend="numpy"`` runs the pure NumPy/SciPy reference of the same recursion
(:func:`reservoir_states_reference` in :mod:`allele.core.kraken.reference`: ``scipy.sparse``
product, ``np.tanh``), which the tests compare against.

Modules: :mod:`~allele.core.kraken.model` (KrakenLNN, SequenceResult, argument validation),
:mod:`~allele.core.kraken.kernel` (the numba kernels, the memory-ordering intrinsics, the helper
thread), :mod:`~allele.core.kraken.reference` (the NumPy reference), and
:mod:`~allele.core.kraken.weights` (the sparse recurrent matrix, its spectral radius, the
kernel's row layout).

Settings that meet the reference tasks (held-out data, see ``PRESETS`` and the tests):

* Mackey-Glass (tau=17, step 1) one-step prediction, 500 units: ``PRESETS["mackey_glass"]``.
* NARMA10, 200 units: ``PRESETS["narma10"]``.
"""

from allele.core.kraken.model import Backend, KrakenLNN, SequenceResult
from allele.core.kraken.reference import reservoir_states_reference

__all__ = ["Backend", "KrakenLNN", "SequenceResult", "reservoir_states_reference"]
