"""Baum-Welch: the driver of the hidden Markov models (no @njit here).

One E-step is three passes, each a fused parallel kernel:

1. the emission family's kernel writes every frame's log-density under every
   state (:mod:`fastem._emissions`);
2. forward-backward over the sequences (:func:`fastem._hmm.forward_backward`):
   log-likelihoods, state posteriors, start and transition counts;
3. the emission family's kernel again, given the posteriors as
   responsibilities: the emission statistics, weighted by each sequence's
   weight.

:class:`ConvergenceMonitor` is hmmlearn's, attribute for attribute
(``tol``, ``n_iter``, ``verbose``, ``history``, ``iter``, ``converged``,
``report``), so code that reads or subclasses it keeps working.
"""

import logging
import sys
from collections import deque

import numpy as np

from ._hmm import forward_backward

_log = logging.getLogger("fastem.hmm")


class ConvergenceMonitor:
    """Monitors the log-likelihood of Baum-Welch: EM has converged when
    ``n_iter`` iterations ran or the gain between the last two is below
    ``tol``.  ``history`` holds every iteration's log-likelihood (of the
    parameters before that iteration's M-step), ``iter`` their number."""

    _template = "{iter:>10d} {log_prob:>16.8f} {delta:>+16.8f}"

    def __init__(self, tol, n_iter, verbose):
        self.tol = tol
        self.n_iter = n_iter
        self.verbose = verbose
        self.history = deque()
        self.iter = 0

    def __repr__(self):
        params = sorted(dict(vars(self), history=list(self.history)).items())
        return (f"{type(self).__name__}(\n"
                + "".join(f"    {k}={v},\n" for k, v in params) + ")")

    def _reset(self):
        self.iter = 0
        self.history.clear()

    def report(self, log_prob):
        """Record an iteration's log-likelihood (printed to stderr with
        ``verbose``; a decrease beyond rounding is logged as a warning)."""
        if self.verbose:
            delta = log_prob - self.history[-1] if self.history else np.nan
            print(self._template.format(iter=self.iter + 1, log_prob=log_prob, delta=delta),
                  file=sys.stderr)
        precision = np.finfo(float).eps ** 0.5
        if self.history and (log_prob - self.history[-1]) < -precision:
            _log.warning("Model is not converging.  Current: %s is not greater than %s. "
                         "Delta is %s", log_prob, self.history[-1], log_prob - self.history[-1])
        self.history.append(log_prob)
        self.iter += 1

    @property
    def converged(self):
        """Whether EM has converged (or used its iterations)."""
        return (self.iter == self.n_iter
                or (len(self.history) >= 2 and self.history[-1] - self.history[-2] < self.tol))


def check_possible(logliks, when):
    """A ValueError naming the first sequence of probability 0."""
    bad = np.flatnonzero(~(logliks > -np.inf))
    if bad.size:
        raise ValueError(
            f"Sequence {int(bad[0])} has probability 0 {when} ({bad.size} such sequences): no "
            "path of states allowed by startprob_ and transmat_ can emit it. Allow the "
            "transitions it needs (no zeros where they are needed) or check the data.")


class EStep:
    """Baum-Welch's E-step for one emission object on fixed data: buffers
    (the (n, K) emission log-densities) kept between iterations."""

    def __init__(self, emission, X, lengths, seq_weight=None):
        self.emission = emission
        self.X = X
        self.lengths = lengths
        self.seq_weight = seq_weight
        self.row_weight = None if seq_weight is None else np.repeat(seq_weight, lengths)
        self.logB = np.empty((X.shape[0], len_states(emission)))
        self.gamma = np.empty_like(self.logB)  # kept: a fresh one costs its page faults

    def __call__(self, eparams, startprob, transmat):
        """``(total weighted log-likelihood, start counts, transition counts,
        emission statistics)``."""
        em = self.emission
        em.log_densities(self.X, eparams, self.logB)
        logliks, gamma, starts, trans = forward_backward(
            self.logB, self.lengths, startprob, transmat, self.seq_weight, out=self.gamma)
        check_possible(logliks, "under the current parameters")
        stats = em.statistics(self.X, eparams, gamma, self.row_weight)
        w = 1.0 if self.seq_weight is None else self.seq_weight
        return float(np.add.reduce(w * logliks)), starts, trans, stats


def len_states(emission):
    return emission.K
