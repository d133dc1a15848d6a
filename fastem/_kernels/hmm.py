"""Hidden Markov model kernels: forward-backward (Baum-Welch's E-step) and
Viterbi, over many sequences at once.

Sequences are the unit of parallel work: slot ``s`` of ``S`` covers the
sequences ``[s N / S, (s + 1) N / S)`` of the N given, claimed through
``ctrl`` like every slot kernel (:mod:`fastem._parallel`), and the caller
sums the slots in order, so results do not depend on the thread count.

Forward-backward scales per frame after subtracting the frame's largest
emission log-density ``m_t``: with ``b_tk = exp(logB_tk - m_t)`` in (0, 1],

    a'_t = (a_{t-1} A) * b_t,   c_t = sum_k a'_tk,   a_t = a'_t / c_t
    log p(x) = sum_t (log c_t + m_t)
    beta_{T-1} = 1,   beta_t = A (b_{t+1} * beta_{t+1}) / c_{t+1}
    gamma_t = a_t * beta_t,   xi_t(i, j) = a_{t-1,i} A_ij b_tj beta_tj / c_t

so emission log-densities far below zero (-800 and less) lose nothing.  The
expected transition counts are summed on the fly (never a T x K x K array);
the forward variables are kept in the posterior output, which the backward
pass overwrites.  Statistics are float64 and weighted by the sequence's
weight.

Arguments (n frames in all, N sequences, K states, S slots):

============ =============== ==================================================
logB         (n, K)          emission log-densities of every frame and state
bounds       (N + 1,) int64  sequence i is frames bounds[i]:bounds[i + 1]
seq_weight   (N,) or (0,)    per-sequence weights ((0,): all ones)
startprob    (K,)            initial state probabilities
transmat     (K, K)          transition probabilities, rows summing to 1
gamma        (n, K)          out: state posteriors
scale        (n,)            scratch: the frames' scales c_t
logliks      (N,)            out: each sequence's log-likelihood
starts       (S, K)          out: per slot, sum_seq w gamma_0
trans        (S, K, K)       out: per slot, sum_seq w sum_t xi_t
============ =============== ==================================================
"""

import math

import numpy as np
from numba import njit

from .._config import JIT_OPTIONS
from .sync import claim_slot, finish_slot


@njit(**JIT_OPTIONS)
def _forward_backward(logB, bounds, seq_weight, startprob, transmat, gamma, scale, logliks,
                      starts, trans, ctrl):
    K = logB.shape[1]
    N = bounds.shape[0] - 1
    n_slots = starts.shape[0]
    b = np.empty(K)
    nxt = np.empty(K)
    tmp = np.empty(K)  # a_{t-1} A
    beta = np.empty(K)
    while True:
        s = claim_slot(ctrl)
        if s >= n_slots:
            break
        starts[s, :] = 0.0
        trans[s, :, :] = 0.0
        for q in range((s * N) // n_slots, ((s + 1) * N) // n_slots):
            t0 = bounds[q]
            t1 = bounds[q + 1]
            w = seq_weight[q] if seq_weight.shape[0] > 0 else 1.0
            # forward, scaled; the scale c_t kept in gamma's rows as a'_t
            # normalised, log c_t + m_t summed into the log-likelihood
            ll = 0.0
            impossible = False
            for t in range(t0, t1):
                mx = -math.inf
                for k in range(K):
                    mx = max(mx, logB[t, k])
                if t == t0:
                    for k in range(K):
                        tmp[k] = startprob[k]
                else:
                    for k in range(K):
                        tmp[k] = 0.0
                    for i in range(K):
                        a = gamma[t - 1, i]
                        if a == 0.0:
                            continue
                        for j in range(K):
                            tmp[j] += a * transmat[i, j]
                c = 0.0
                for k in range(K):
                    v = tmp[k] * math.exp(logB[t, k] - mx) if mx > -math.inf else 0.0
                    gamma[t, k] = v
                    c += v
                if not c > 0.0:  # no state can emit this frame from where it is
                    impossible = True
                    break
                for k in range(K):
                    gamma[t, k] /= c
                scale[t] = c
                ll += math.log(c) + mx
            if impossible:
                logliks[q] = -math.inf
                for t in range(t0, t1):
                    for k in range(K):
                        gamma[t, k] = math.nan
                continue
            logliks[q] = ll
            # backward: beta from the end; gamma_t = a_t * beta_t; xi summed
            for k in range(K):
                beta[k] = 1.0
            for t in range(t1 - 1, t0, -1):
                mx = -math.inf
                for k in range(K):
                    mx = max(mx, logB[t, k])
                c = scale[t]
                for k in range(K):
                    b[k] = math.exp(logB[t, k] - mx)
                for k in range(K):
                    nxt[k] = b[k] * beta[k] / c  # b_t * beta_t / c_t
                # xi_t(i, j) = a_{t-1,i} A_ij nxt_j, weighted, summed
                for i in range(K):
                    a = w * gamma[t - 1, i]
                    if a == 0.0:
                        continue
                    for j in range(K):
                        trans[s, i, j] += a * transmat[i, j] * nxt[j]
                # gamma_t = a_t * beta_t (a_t still in gamma[t])
                for k in range(K):
                    gamma[t, k] *= beta[k]
                # beta_{t-1} = A nxt
                for i in range(K):
                    acc = 0.0
                    for j in range(K):
                        acc += transmat[i, j] * nxt[j]
                    beta[i] = acc
            for k in range(K):
                gamma[t0, k] *= beta[k]
                starts[s, k] += w * gamma[t0, k]
        finish_slot(ctrl)


@njit(**JIT_OPTIONS)
def _viterbi(logB, bounds, log_startprob, log_transmat, states, logprobs, back, ctrl):
    """The most probable state path of each sequence (``states`` (n,)
    int64) and its log-probability (``logprobs`` (N,)), in log space;
    ``back`` (n, K) int64 scratch for the back-pointers.  One slot a
    sequence group, as in :func:`_forward_backward` (``logprobs`` sized N,
    the number of slots ``ctrl``'s caller chose is N here)."""
    K = logB.shape[1]
    N = bounds.shape[0] - 1
    delta = np.empty(K)
    new = np.empty(K)
    while True:
        q = claim_slot(ctrl)
        if q >= N:
            break
        t0 = bounds[q]
        t1 = bounds[q + 1]
        for k in range(K):
            delta[k] = log_startprob[k] + logB[t0, k]
        for t in range(t0 + 1, t1):
            for j in range(K):
                best = -math.inf
                arg = 0
                for i in range(K):
                    v = delta[i] + log_transmat[i, j]
                    if v > best:
                        best = v
                        arg = i
                new[j] = best + logB[t, j]
                back[t, j] = arg
            for k in range(K):
                delta[k] = new[k]
        best = -math.inf
        arg = 0
        for k in range(K):
            if delta[k] > best:
                best = delta[k]
                arg = k
        logprobs[q] = best
        states[t1 - 1] = arg
        for t in range(t1 - 1, t0, -1):
            arg = back[t, arg]
            states[t - 1] = arg
        finish_slot(ctrl)
