"""Forward-backward in log space for one sequence: the fallback of the scaled
kernel (:mod:`fastem._kernels.hmm`).

The scaled recursion keeps the forward variables normalised per frame, so a
state whose probability relative to the frame's best falls below ~1e-308
becomes 0.  That loses nothing measurable unless the chain later needs that
state alone -- a left-right model forced back through a far tail, a
structural zero that leaves only the lost state able to emit -- and then the
scaled pass finds a frame with no probability at all.  It then runs this
sequence again here, where every quantity is a logarithm (log-sum-exp over
the previous states), so the sequence gets its exact log-likelihood,
posteriors and expected transition counts, as hmmlearn's
``implementation='log'`` does.  A sequence this pass also finds impossible
has probability 0.

Scalar ``math.exp``/``math.log`` (~5 ns each) and O(T K^2) of them: about
as slow as hmmlearn's log implementation, paid only by the sequences that
need it.
"""

import math

import numpy as np
from numba import njit

from .._config import JIT_OPTIONS


@njit(**JIT_OPTIONS)
def _logsumexp(v, K):
    m = -math.inf
    for k in range(K):
        m = max(m, v[k])
    if m == -math.inf:
        return m
    s = 0.0
    for k in range(K):
        s += math.exp(v[k] - m)
    return m + math.log(s)


@njit(**JIT_OPTIONS)
def forward_backward_log(logB, t0, t1, log_start, log_trans, gamma, xi):
    """Log-likelihood of frames ``t0:t1``; ``gamma[t0:t1]`` set to the
    posteriors and ``xi`` (K, K) to the expected transition counts (both NaN
    and -inf returned if the sequence is impossible)."""
    K = logB.shape[1]
    T = t1 - t0
    la = np.empty((T, K))
    lb = np.empty((T, K))
    v = np.empty(K)
    for k in range(K):
        la[0, k] = log_start[k] + logB[t0, k]
    for t in range(1, T):
        for j in range(K):
            for i in range(K):
                v[i] = la[t - 1, i] + log_trans[i, j]
            la[t, j] = _logsumexp(v, K) + logB[t0 + t, j]
    ll = _logsumexp(la[T - 1], K)
    xi[:, :] = 0.0
    if ll == -math.inf or math.isnan(ll):
        for t in range(t0, t1):
            for k in range(K):
                gamma[t, k] = math.nan
        return -math.inf
    for k in range(K):
        lb[T - 1, k] = 0.0
    for t in range(T - 1, 0, -1):
        for i in range(K):
            for j in range(K):
                v[j] = log_trans[i, j] + logB[t0 + t, j] + lb[t, j]
            lb[t - 1, i] = _logsumexp(v, K)
    for t in range(T):
        for k in range(K):
            gamma[t0 + t, k] = math.exp(la[t, k] + lb[t, k] - ll)
    for t in range(1, T):
        for i in range(K):
            a = la[t - 1, i]
            if a == -math.inf:
                continue
            for j in range(K):
                xi[i, j] += math.exp(a + log_trans[i, j] + logB[t0 + t, j] + lb[t, j] - ll)
    return ll
