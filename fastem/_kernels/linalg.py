"""Small dense linear algebra for the M-step, serial and in IEEE arithmetic.

The M-step factorises K covariance matrices of size d (tiny next to the
E-step). Doing it here rather than through LAPACK keeps every EM iteration
away from OpenBLAS, whose worker threads busy-wait after a call and take
cores from the parallel kernels.
"""

import math

import numpy as np
from numba import njit

from .._config import CACHE


@njit(cache=CACHE, nogil=True)
def _precision_cholesky(cov, out):
    """Upper-triangular U with U U^T = inv(cov[k]) for every k.

    cov : (K, d, d) float64, input, symmetric.
    out : (K, d, d) float64, output; scikit-learn's ``precisions_cholesky_``
        convention, U = inv(L)^T with L the lower Cholesky factor of cov[k].

    Returns -1 on success, else the index of the first component whose
    covariance is not positive definite (or not finite).
    """
    K, d, _ = cov.shape
    L = np.zeros((d, d))
    for k in range(K):
        # Cholesky-Banachiewicz: cov[k] = L L^T
        for j in range(d):
            s = cov[k, j, j]
            for p in range(j):
                s -= L[j, p] * L[j, p]
            if not (s > 0.0) or not math.isfinite(s):
                return k
            ljj = math.sqrt(s)
            L[j, j] = ljj
            for i in range(j + 1, d):
                s = cov[k, i, j]
                for p in range(j):
                    s -= L[i, p] * L[j, p]
                L[i, j] = s / ljj
        # M = inv(L) by forward substitution, stored transposed: out[k] = M^T
        for j in range(d):
            for i in range(d):
                out[k, i, j] = 0.0
        for j in range(d):
            out[k, j, j] = 1.0 / L[j, j]
            for i in range(j + 1, d):
                s = 0.0
                for p in range(j, i):
                    s += L[i, p] * out[k, j, p]
                out[k, j, i] = -s / L[i, i]
    return -1
