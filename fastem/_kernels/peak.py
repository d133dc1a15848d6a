"""A reference compute kernel: the machine's attainable multiply-add rate,
measured in the same run as the benchmarks (``fastem bench``)."""

import numpy as np
from numba import njit, prange

from .._config import CACHE


@njit(parallel=True, cache=CACHE, fastmath={"contract", "reassoc"}, nogil=True)
def _fma_peak(n_slots, reps):
    """8 independent chains of 64 multiply-adds per slot, vectorised.

    Returns a checksum so the work cannot be optimised away; the FLOP count
    is ``n_slots * reps * 64 * 8 * 2``.
    """
    out = np.zeros(n_slots)
    for s in prange(n_slots):
        acc = np.empty((8, 64))
        for c in range(8):
            for i in range(64):
                acc[c, i] = 1.0 + 1e-9 * (i + c + s)
        for _ in range(reps):
            for c in range(8):
                for i in range(64):
                    acc[c, i] = acc[c, i] * 0.9999999 + 1e-9
        out[s] = acc.sum()
    return out
