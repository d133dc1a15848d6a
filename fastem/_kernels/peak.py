"""A reference compute kernel: the machine's attainable multiply-add rate,
measured in the same run as the benchmarks (``fastem bench``), on the same
threads as the kernels (:func:`fastem._parallel.run_slots`)."""

import numpy as np
from numba import njit

from .._config import CACHE
from .sync import claim_slot, finish_slot


@njit(cache=CACHE, fastmath={"contract", "reassoc"}, nogil=True)
def _fma_peak(out, reps, ctrl):
    """8 independent chains of 64 multiply-adds per slot, vectorised.

    Writes a checksum per slot into ``out[s]`` so the work cannot be
    optimised away; the FLOP count is ``len(out) * reps * 64 * 8 * 2``.
    """
    while True:
        s = claim_slot(ctrl)
        if s >= out.shape[0]:
            break
        acc = np.empty((8, 64))
        for c in range(8):
            for i in range(64):
                acc[c, i] = 1.0 + 1e-9 * (i + c + s)
        for _ in range(reps):
            for c in range(8):
                for i in range(64):
                    acc[c, i] = acc[c, i] * 0.9999999 + 1e-9
        out[s] = acc.sum()
        finish_slot(ctrl)
