"""Python side of the hidden Markov model kernels (:mod:`fastem._kernels.hmm`):
sequences, slots and their in-order reduction.

:func:`forward_backward` is Baum-Welch's E-step over many sequences given
the emission log-densities of every frame (what an emission family's kernel
computes); :func:`viterbi` the most probable paths.  Slots are groups of
whole sequences, chosen from the number of sequences only, so results are
bitwise the same for any number of threads.
"""

import threading

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


def _lanes(K):
    """The kernels' ``lanes`` argument: K <= 8 states on 8 vector lanes, 9
    to 16 on 16, more on the general (scalar) path (given 8, unused)."""
    return (0.0,) * (16 if 8 < K <= 16 else 8)


def _bounds(lengths):
    return np.concatenate(([0], np.cumsum(lengths))).astype(np.int64)


_SCRATCH = threading.local()
#: Largest buffer :func:`_scratch` keeps between calls (larger ones are
#: allocated per call, so a large fit does not hold its memory afterwards).
SCRATCH_BYTES = 32 << 20


def _scratch(name, shape, dtype=np.float64):
    """A private buffer of this thread, kept between calls: a fresh array of
    n x K floats costs a page fault every 4 KiB on first touch (7-16 ms for
    64 MB here, as much as a Viterbi pass)."""
    size = int(np.prod(shape))
    if size * np.dtype(dtype).itemsize > SCRATCH_BYTES:  # not held after the call
        return np.empty(shape, dtype=dtype)
    buf = getattr(_SCRATCH, name, None)
    if buf is None or buf.shape[0] < size or buf.shape[0] > 4 * size + (1 << 16):
        buf = np.empty(size, dtype=dtype)
        setattr(_SCRATCH, name, buf)
    return buf[:size].reshape(shape)


def forward_backward(logB, lengths, startprob, transmat, seq_weight=None, posteriors=True,
                     out=None):
    """Baum-Welch's E-step: ``(logliks (N,), gamma (n, K), start counts (K,),
    transition counts (K, K))``, the counts weighted by ``seq_weight`` and
    summed over sequences in order (``gamma`` None unless ``posteriors``:
    it is computed either way, as the kernel's forward storage, then in a
    buffer reused between calls).  ``out``: a C-contiguous float64 (n, K)
    array to write gamma into (and return), e.g. one kept between the
    iterations of a fit, which saves the page faults of a fresh array."""
    logB = np.ascontiguousarray(logB, dtype=np.float64)
    n, K = logB.shape
    bounds = _bounds(check_lengths(lengths, n))
    N = bounds.shape[0] - 1
    ns = max(1, min(N, MAX_SLOTS))
    if out is not None:
        if not (isinstance(out, np.ndarray) and out.shape == (n, K) and out.dtype == np.float64
                and out.flags.c_contiguous and out.flags.writeable):
            raise ValueError(f"out should be a writeable C-contiguous float64 array of shape "
                             f"{(n, K)}.")
        if np.may_share_memory(out, logB):
            raise ValueError("out shares memory with logB, which the backward pass reads "
                             "after the forward pass has written out.")
        gamma = out
    elif posteriors:
        gamma = np.empty((n, K))
    else:
        gamma = _scratch("gamma", (n, K))
    scale = _scratch("scale", (n,))
    logliks = np.empty(N)
    starts = np.zeros((ns, K))
    trans = np.zeros((ns, K, K))
    sw = np.empty(0) if seq_weight is None else np.ascontiguousarray(seq_weight, np.float64)
    run_slots(_forward_backward, (logB, bounds, sw, np.ascontiguousarray(startprob, np.float64),
                                  np.ascontiguousarray(transmat, np.float64), gamma, scale,
                                  logliks, starts, trans, VM_CONSTS, _lanes(K)), ns)
    return (logliks, gamma if posteriors else None, np.add.reduce(starts, axis=0),
            np.add.reduce(trans, axis=0))


def viterbi(logB, lengths, startprob, transmat, each=False):
    """``(total log-probability of the best paths, states (n,) int64)``;
    with ``each``, also each sequence's best log-probability (N,)."""
    logB = np.ascontiguousarray(logB, dtype=np.float64)
    n, K = logB.shape
    bounds = _bounds(check_lengths(lengths, n))
    N = bounds.shape[0] - 1
    with np.errstate(divide="ignore"):
        log_start = np.log(np.asarray(startprob, dtype=np.float64))
        log_trans = np.log(np.asarray(transmat, dtype=np.float64))
    states = np.empty(n, dtype=np.int64)
    logprobs = np.empty(N)
    back = _scratch("back", (n, K), np.int64)
    run_slots(_viterbi, (logB, bounds, log_start, log_trans, states, logprobs, back, _lanes(K)),
              N)
    if each:
        return float(np.add.reduce(logprobs)), states, logprobs
    return float(np.add.reduce(logprobs)), states
