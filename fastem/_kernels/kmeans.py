"""k-means kernels for initialisation: distances for k-means++ seeding and a
Lloyd step.  Same determinism rule as the E-step kernels: a caller-chosen
number of slots, partial sums per slot, reduced by the caller in slot order;
a call claims slots through ``ctrl`` until none is left (see
:mod:`fastem._parallel`).

Argument conventions (n rows, d features, K centres, S slots):

=========== ============ ====== =============================================
name        shape        in/out meaning
=========== ============ ====== =============================================
X           (n, d)       in     float32 or float64, any layout
sw          (n,) or (0,) in     float64 sample weights; (0,) means all ones
centers     (K, d)       in     float64 centres
point       (d,)         in     float64 one centre
out         (n,)         out    float64 squared distances
labels      (n,)         out    int64 index of the nearest centre
sums        (S, K, d)    out    per slot sum_i w_i (x_i - centers[label_i])
counts      (S, K)       out    per slot sum_i w_i over rows of each centre
inertia     (S,)         out    per slot sum_i w_i ||x_i - nearest centre||^2
block       int          in     rows per block
ctrl        (2,) int64   in/out slot claims (see ``sync``); zeros
=========== ============ ====== =============================================
"""

import numpy as np
from numba import njit

from .._config import JIT_OPTIONS
from .gaussian import _slot_range
from .sync import claim_slot, finish_slot


@njit(**JIT_OPTIONS)
def _sqdist_to_point(X, point, out, n_slots, block, ctrl):
    """out[i] = ||X[i] - point||^2 (differences first: exact far from 0)."""
    n, d = X.shape
    n_blocks = (n + block - 1) // block
    while True:
        s = claim_slot(ctrl)
        if s >= n_slots:
            break
        b0, b1 = _slot_range(s, n_slots, n_blocks)
        for i in range(b0 * block, min(b1 * block, n)):
            acc = 0.0
            for j in range(d):
                v = X[i, j] - point[j]
                acc += v * v
            out[i] = acc
        finish_slot(ctrl)


@njit(**JIT_OPTIONS)
def _lloyd_step(X, sw, centers, labels, sums, counts, inertia, block, ctrl):
    """Assign every row to its nearest centre and accumulate shifted sums.

    The new centre k is ``centers[k] + sum(sums[:, k]) / sum(counts[:, k])``.
    """
    n, d = X.shape
    K = centers.shape[0]
    n_slots = counts.shape[0]
    n_blocks = (n + block - 1) // block
    while True:
        s = claim_slot(ctrl)
        if s >= n_slots:
            break
        sums[s, :, :] = 0.0
        counts[s, :] = 0.0
        acc_inertia = 0.0
        b0, b1 = _slot_range(s, n_slots, n_blocks)
        for i in range(b0 * block, min(b1 * block, n)):
            best = 0
            best_d = np.inf
            for k in range(K):
                dist = 0.0
                for j in range(d):
                    v = X[i, j] - centers[k, j]
                    dist += v * v
                if dist < best_d:
                    best_d = dist
                    best = k
            w = sw[i] if sw.shape[0] > 0 else 1.0
            labels[i] = best
            counts[s, best] += w
            acc_inertia += w * best_d
            for j in range(d):
                sums[s, best, j] += w * (X[i, j] - centers[best, j])
        inertia[s] = acc_inertia
        finish_slot(ctrl)
