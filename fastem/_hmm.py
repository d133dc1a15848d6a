"""Python side of the hidden Markov model kernels (:mod:`fastem._kernels.hmm`):
sequences, slots and their in-order reduction.

:func:`forward_backward` is Baum-Welch's E-step over many sequences given
the emission log-densities of every frame (what an emission family's kernel
computes); :func:`viterbi` the most probable paths.  Slots are groups of
whole sequences, chosen from the number of sequences only, so results are
bitwise the same for any number of threads.
"""

import numpy as np

from ._kernels.hmm import _forward_backward, _viterbi
from ._kernels.vecmath import VM_CONSTS
from ._parallel import run_slots

#: Most slots (groups of sequences) per call.
MAX_SLOTS = 256


def check_lengths(lengths, n_samples):
    """``lengths`` as int64 sequence lengths summing to ``n_samples`` (None:
    one sequence); a ValueError naming what is wrong."""
    if lengths is None:
        return np.array([n_samples], dtype=np.int64)
    lengths = np.asarray(lengths)
    if lengths.ndim != 1 or lengths.dtype.kind not in "iu":
        raise ValueError(f"lengths should be a 1-d array of integers (the length of each "
                         f"sequence), but got {lengths.dtype} of shape {lengths.shape}.")
    if (lengths <= 0).any():
        i = int(np.flatnonzero(lengths <= 0)[0])
        raise ValueError(f"lengths should be positive, but lengths[{i}] = {lengths[i]}; "
                         "drop empty sequences.")
    if int(lengths.sum()) != n_samples:
        raise ValueError(f"lengths sum to {int(lengths.sum())}, but X has {n_samples} rows; "
                         "the sequences must cover X exactly, in order.")
    return lengths.astype(np.int64)


def _bounds(lengths):
    return np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)


def forward_backward(logB, lengths, startprob, transmat, seq_weight=None, posteriors=True):
    """Baum-Welch's E-step: ``(logliks (N,), gamma (n, K), start counts (K,),
    transition counts (K, K))``, the counts weighted by ``seq_weight`` and
    summed over sequences in order (``gamma`` None unless ``posteriors``:
    it is computed either way, as the kernel's forward storage)."""
    logB = np.ascontiguousarray(logB, dtype=np.float64)
    n, K = logB.shape
    bounds = _bounds(check_lengths(lengths, n))
    N = bounds.shape[0] - 1
    ns = max(1, min(N, MAX_SLOTS))
    gamma = np.empty((n, K))
    scale = np.empty(n)
    logliks = np.empty(N)
    starts = np.zeros((ns, K))
    trans = np.zeros((ns, K, K))
    sw = np.empty(0) if seq_weight is None else np.ascontiguousarray(seq_weight, np.float64)
    run_slots(_forward_backward, (logB, bounds, sw, np.ascontiguousarray(startprob, np.float64),
                                  np.ascontiguousarray(transmat, np.float64), gamma, scale,
                                  logliks, starts, trans, VM_CONSTS), ns)
    return (logliks, gamma if posteriors else None, np.add.reduce(starts, axis=0),
            np.add.reduce(trans, axis=0))


def viterbi(logB, lengths, startprob, transmat):
    """``(total log-probability of the best paths, states (n,) int64)``."""
    logB = np.ascontiguousarray(logB, dtype=np.float64)
    n, K = logB.shape
    bounds = _bounds(check_lengths(lengths, n))
    N = bounds.shape[0] - 1
    with np.errstate(divide="ignore"):
        log_start = np.log(np.asarray(startprob, dtype=np.float64))
        log_trans = np.log(np.asarray(transmat, dtype=np.float64))
    states = np.empty(n, dtype=np.int64)
    logprobs = np.empty(N)
    back = np.empty((n, K), dtype=np.int64)
    run_slots(_viterbi, (logB, bounds, log_start, log_trans, states, logprobs, back), N)
    return float(np.add.reduce(logprobs)), states
