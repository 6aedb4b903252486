"""The pure NumPy/SciPy reference of the reservoir recursion (``backend="numpy"``).

The numba kernel of :mod:`allele.core.kraken.kernel` computes the same recursion; the tests
compare the two (``np.allclose``: the states agree to 1e-11 absolute; the kernel's
arithmetic-only tanh differs from ``np.tanh`` by less than 2e-14).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


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
