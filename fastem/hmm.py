"""Hidden Markov models fitted by Baum-Welch: ``GaussianHMM``,
``CategoricalHMM`` and ``PoissonHMM``, drop-ins for hmmlearn 0.3.3's
classes of the same names (the same parameters, defaults, priors, fitted
attributes and methods; the differences where hmmlearn is wrong are listed
in ``docs/hmm.md``).

The estimators are thin: the emission densities and statistics come from the
mixture families' fused kernels (:mod:`fastem._emissions`), the chain from
:mod:`fastem._hmm` (forward-backward and Viterbi over sequences in
parallel), the loop and its monitor from :mod:`fastem._baum_welch`, the
M-steps (hmmlearn's priors) from :mod:`fastem._hmm_mstep`.
"""

import bisect
import copy
import logging
from numbers import Integral, Real

import numpy as np
from scipy import linalg
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from . import _hmm_mstep as mstep
from ._baum_welch import ConvergenceMonitor, EStep, check_possible
from ._discrete_estep import category_codes, linear_array
from ._emissions import Gaussian, Linear, Symbols, add_stats
from ._fitted import kept_on_error
from ._hmm import check_lengths, forward_backward, viterbi
from ._hmm_sources import SequenceChunks, chunked
from ._io import SaveLoadMixin
from ._stats import CollapseError
from ._validation import check_allocation, check_finite

_log = logging.getLogger("fastem.hmm")

__all__ = ["CategoricalHMM", "ConvergenceMonitor", "GaussianHMM", "PoissonHMM"]

COVARIANCE_TYPES = ("spherical", "diag", "full", "tied")
#: Rows of out-of-core or Dask input the random start reads.
INIT_ROWS = 65536


def _check_sequence_weight(sample_weight, n_sequences):
    """Per-sequence weights (None: all ones)."""
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.shape != (n_sequences,):
        raise ValueError(f"sample_weight should hold one weight per sequence ({n_sequences}), "
                         f"but has shape {w.shape}.")
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("sample_weight should hold finite, non-negative weights; it holds "
                         f"values from {w.min()} to {w.max()}.")
    if not w.sum() > 0:
        raise ValueError("sample_weight sums to 0: at least one sequence must have weight.")
    return w


def _weighted_only(X, lengths, seq_weight):
    """The sequences of positive weight (one of weight 0 adds nothing, and
    may even be impossible under the model being fitted)."""
    if seq_weight is None or (seq_weight > 0).all():
        return X, lengths, seq_weight
    keep = seq_weight > 0
    return X[np.repeat(keep, lengths)], lengths[keep], seq_weight[keep]


class _BaseHMM(SaveLoadMixin, BaseEstimator):
    """What every hidden Markov model shares: the chain (``startprob_``,
    ``transmat_``), the Baum-Welch loop, scoring, decoding and sampling.
    Subclasses define the emission letters and these hooks:

    ===========================  ===============================================
    ``_emission_letters``        the letters of ``params`` for the emissions
    ``_kernel_X(X, fitting)``    X checked for the family's domain, as the
                                 kernel reads it
    ``_make_emission(X)``        the :mod:`fastem._emissions` object for X
    ``_emission_params()``       the kernel's parameters from the attributes
    ``_init_emissions(X, rs)``   starting emission parameters (init_params)
    ``_check_emissions()``       the emission attributes validated
    ``_emission_mstep(stats)``   new emission attributes (a dict)
    ``_emission_scalars()``      free emission parameters (dict of letters)
    ``_draw(states, rs)``        emissions for a state sequence
    ===========================  ===============================================
    """

    _emission_letters = ""
    #: Prior (and other numeric) parameters: finite; those that must be >= 0.
    _priors = ("startprob_prior", "transmat_prior")
    _non_negative = ()

    def _set_common(self, algorithm, random_state, n_iter, tol, verbose, params, init_params,
                    implementation, n_init, missing):
        """The constructor parameters every model has (stored as given), and
        hmmlearn's monitor."""
        self.algorithm = algorithm
        self.random_state = random_state
        self.n_iter = n_iter
        self.tol = tol
        self.verbose = verbose
        self.params = params
        self.init_params = init_params
        self.implementation = implementation
        self.n_init = n_init
        self.missing = missing
        self.monitor_ = ConvergenceMonitor(tol, n_iter, verbose)

    # ------------------------------------------------------------------
    # checks
    # ------------------------------------------------------------------

    def _check_hyper(self):
        def bad(name, want):
            raise ValueError(f"{name} should be {want}, but got {getattr(self, name)!r}.")

        if not isinstance(self.n_components, Integral) or self.n_components < 1:
            bad("n_components", "a positive integer")
        if self.algorithm not in ("viterbi", "map"):
            bad("algorithm", "'viterbi' or 'map'")
        if self.implementation not in ("log", "scaling"):
            bad("implementation", "'log' or 'scaling'")
        if not isinstance(self.n_iter, Integral) or self.n_iter < 0:
            bad("n_iter", "a non-negative integer")
        if not isinstance(self.tol, Real) or np.isnan(self.tol):
            bad("tol", "a number")
        if not isinstance(self.n_init, Integral) or self.n_init < 1:
            bad("n_init", "a positive integer")
        if self.missing not in ("raise", "em"):
            bad("missing", "'raise' or 'em'")
        for name in ("params", "init_params"):
            if not isinstance(getattr(self, name), str):
                bad(name, "a string of parameter letters")
        for name in self._priors:
            try:
                value = np.asarray(getattr(self, name), dtype=np.float64)
            except (TypeError, ValueError):
                bad(name, "a number or an array of numbers")
            if not np.isfinite(value).all():
                bad(name, "finite")
        for name in self._non_negative:
            if (np.asarray(getattr(self, name), dtype=np.float64) < 0).any():
                bad(name, "non-negative")

    def _check_sum_1(self, name):
        a = getattr(self, name)
        s = a.sum(axis=-1)
        if (a < 0).any() or not np.isfinite(a).all() or not np.allclose(s, 1):
            raise ValueError(f"{name} must hold probabilities summing to 1 "
                             f"{'per row ' if a.ndim == 2 else ''}(got sums {s}); "
                             "normalise it.")

    def _check(self):
        """The chain's and the emissions' attributes validated (shapes,
        probabilities summing to 1)."""
        K = self.n_components
        self.startprob_ = np.asarray(self.startprob_, dtype=np.float64)
        if self.startprob_.shape != (K,):
            raise ValueError(f"startprob_ must have length n_components ({K}), "
                             f"but has shape {self.startprob_.shape}.")
        self._check_sum_1("startprob_")
        self.transmat_ = np.asarray(self.transmat_, dtype=np.float64)
        if self.transmat_.shape != (K, K):
            raise ValueError(f"transmat_ must have shape (n_components, n_components) = "
                             f"({K}, {K}), but has shape {self.transmat_.shape}.")
        self._check_sum_1("transmat_")
        self._check_emissions()

    def _sequences(self, X, lengths, fitting=False):
        Xk = self._kernel_X(X, fitting)
        return Xk, check_lengths(lengths, Xk.shape[0])

    def _needs_init(self, code, name):
        if code in self.init_params:
            if hasattr(self, name):
                _log.warning("Even though the %r attribute is set, it will be overwritten "
                             "during initialization because 'init_params' contains %r",
                             name, code)
            return True
        return not hasattr(self, name)

    # ------------------------------------------------------------------
    # fitting
    # ------------------------------------------------------------------

    def fit(self, X, lengths=None, sample_weight=None):
        """Estimate the parameters by Baum-Welch.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            The frames of every sequence, one after another (CategoricalHMM:
            the symbols, shape (n_samples, 1)); NaN where missing with
            ``missing='em'``.
        lengths : array-like of int, shape (n_sequences,), optional
            The length of each sequence; they sum to n_samples.  Default:
            one sequence.
        sample_weight : array-like of shape (n_sequences,), optional
            One non-negative weight per sequence (a sequence of weight 2
            counts as two copies of it; one of weight 0 is left out).

        Returns
        -------
        self
        """
        self._check_hyper()
        # n_features is a plain attribute (CategoricalHMM: a parameter) that a
        # fit sets: put back with the fitted state if the fit fails
        had = "n_features" in vars(self)
        n_features = vars(self).get("n_features")
        try:
            with kept_on_error(self):
                self._fit(X, lengths, sample_weight)
        except BaseException:
            if had:
                self.n_features = n_features
            else:
                vars(self).pop("n_features", None)
            raise
        return self

    def _fit(self, X, lengths, sample_weight):
        if chunked(X):  # out of core or Dask: groups of whole sequences
            lengths = check_lengths(lengths, int(X.shape[0]))
            sw = _check_sequence_weight(sample_weight, lengths.shape[0])
            chunks = SequenceChunks(X, lengths, sw)
            self._prepare_chunks(chunks)
            Xk = self._kernel_X(chunks.sample(INIT_ROWS, np.random.RandomState(0)), True)

            def estep():
                total = None
                for part in chunks.map(self._chunk_estep):
                    if part is None:
                        continue
                    total = part if total is None else (
                        total[0] + part[0], total[1] + part[1], total[2] + part[2],
                        add_stats(total[3], part[3]))
                return total
        else:
            Xk, lengths = self._sequences(X, lengths, fitting=True)
            sw = _check_sequence_weight(sample_weight, lengths.shape[0])
            Xk, lengths, sw = _weighted_only(Xk, lengths, sw)
            estep = None
        monitor = copy.copy(self.monitor_)
        monitor.history = type(monitor.history)()
        monitor.tol, monitor.n_iter, monitor.verbose = self.tol, self.n_iter, self.verbose
        rs = None
        best = None
        given = self._fitted_state()
        for _ in range(self.n_init):
            rs = self._init(Xk, lengths, rs, given)
            self._check()
            monitor._reset()
            if estep is None:  # in memory: the emission kernels' buffers, once a fit
                em = self._make_emission(Xk)
                run = EStep(em, Xk, lengths, sw)

                def estep():
                    return run(self._emission_params(em), self.startprob_, self.transmat_)
            for _ in range(self.n_iter):
                ll, starts, trans, stats = estep()
                self._mstep(starts, trans, stats)
                monitor.report(ll)
                if monitor.converged:
                    break
                if (self.transmat_.sum(axis=1) == 0).any():
                    _log.warning("Some rows of transmat_ have zero sum because no "
                                 "transition from the state was ever observed.")
            if self.n_init > 1:
                score = monitor.history[-1] if monitor.history else -np.inf
                if best is None or score > best[0]:
                    best = (score, self._fitted_state(), copy.deepcopy(monitor))
        if best is not None:
            for name, value in best[1].items():
                setattr(self, name, value)
            monitor = best[2]
        self.monitor_ = monitor

    def _prepare_chunks(self, chunks):
        """What a chunked fit must know before its first E-step (the
        categorical model: its number of symbols)."""

    def _chunk_estep(self, X, lengths, seq_weight):
        """One group's ``(log-likelihood, start counts, transition counts,
        emission statistics)`` (on a Dask worker for a dask array)."""
        Xk, lengths, seq_weight = _weighted_only(self._kernel_X(X, False), lengths, seq_weight)
        if lengths.size == 0:  # every sequence of the group has weight 0
            return None
        em = self._make_emission(Xk)
        return EStep(em, Xk, lengths, seq_weight)(self._emission_params(em), self.startprob_,
                                                  self.transmat_)

    def _fitted_state(self):
        return {k: v for k, v in vars(self).items() if k.endswith("_") and k != "monitor_"}

    def _init(self, X, lengths, rs, given):
        """Starting parameters (hmmlearn's draws: a Dirichlet(1/K) start and
        transition rows from ``random_state``, then the emissions from a
        generator made again from it).  A restart (``rs`` given) puts back
        the attributes the user set (``given``) and draws the rest on from
        ``rs``."""
        first = rs is None
        if first:
            rs = check_random_state(self.random_state)
        else:
            for name in [k for k in vars(self) if k.endswith("_") and k != "monitor_"]:
                delattr(self, name)
            for name, value in given.items():
                setattr(self, name, value)
        K = self.n_components
        alpha = np.full(K, 1.0 / K)
        needs = self._needs_init if first else (
            lambda code, name: code in self.init_params or not hasattr(self, name))
        if needs("s", "startprob_"):
            self.startprob_ = rs.dirichlet(alpha)
        if needs("t", "transmat_"):
            self.transmat_ = rs.dirichlet(alpha, size=K)
        self._init_emissions(X, check_random_state(self.random_state) if first else rs, needs)
        return rs

    def _mstep(self, starts, trans, stats):
        """hmmlearn's M-step; the attributes change only once all of it succeeded."""
        startprob, transmat = mstep.chain(self.startprob_, self.transmat_, starts, trans,
                                          self.params, self.startprob_prior,
                                          self.transmat_prior)
        emissions = self._emission_mstep(stats)
        self.startprob_, self.transmat_ = startprob, transmat
        for name, value in emissions.items():
            setattr(self, name, value)

    # ------------------------------------------------------------------
    # inference
    # ------------------------------------------------------------------

    def _log_densities(self, Xk):
        em = self._make_emission(Xk)
        return em.log_densities(Xk, self._emission_params(em),
                                np.empty((Xk.shape[0], self.n_components)))

    def _fitted_check(self):
        check_is_fitted(self, "startprob_")
        self._check_hyper()
        self._check()

    def _each(self, X, lengths, fn, *args):
        """``fn(rows, lengths, None, *args)`` on X whole, or on each group of
        whole sequences of out-of-core or Dask input, in order."""
        if chunked(X):
            return SequenceChunks(X, check_lengths(lengths, int(X.shape[0]))).map(fn, *args)
        return [fn(X, lengths, None, *args)]

    def _chunk_score(self, X, lengths, _, posteriors):
        Xk, lengths = self._sequences(X, lengths)
        logliks, gamma, _, _ = forward_backward(self._log_densities(Xk), lengths,
                                                self.startprob_, self.transmat_,
                                                posteriors=posteriors)
        if posteriors:
            check_possible(logliks, "under the model")
        return float(np.add.reduce(logliks)), gamma

    def _score(self, X, lengths, posteriors):
        self._fitted_check()
        parts = self._each(X, lengths, self._chunk_score, posteriors)
        ll = float(np.add.reduce(np.array([p[0] for p in parts])))
        return ll, (np.vstack([p[1] for p in parts]) if posteriors else None)

    def score(self, X, lengths=None):
        """Log-likelihood of X under the model (summed over the sequences;
        -inf if a sequence is impossible)."""
        return self._score(X, lengths, False)[0]

    def score_samples(self, X, lengths=None):
        """``(log-likelihood of X, state posteriors (n_samples, n_components))``."""
        return self._score(X, lengths, True)

    def predict_proba(self, X, lengths=None):
        """State posteriors (n_samples, n_components) given every frame of the
        frame's sequence."""
        return self._score(X, lengths, True)[1]

    def decode(self, X, lengths=None, algorithm=None):
        """``(log-probability, states)``: with 'viterbi', the most probable
        state paths and their summed log-probability; with 'map', each
        frame's most probable state and, as hmmlearn reports it, the sum over
        frames of the largest posterior probability."""
        self._fitted_check()
        algorithm = algorithm or self.algorithm
        if algorithm not in ("viterbi", "map"):
            raise ValueError(f"Unknown decoder {algorithm!r}: use 'viterbi' or 'map'.")
        if algorithm == "map":
            _, post = self.score_samples(X, lengths)
            return float(post.max(axis=1).sum()), post.argmax(axis=1)
        parts = self._each(X, lengths, self._chunk_viterbi)
        logprob = float(np.add.reduce(np.array([p[0] for p in parts])))
        if not logprob > -np.inf:
            check_possible(np.concatenate([p[2] for p in parts]), "under the model")
        return logprob, np.concatenate([p[1] for p in parts])

    def _chunk_viterbi(self, X, lengths, _):
        Xk, lengths = self._sequences(X, lengths)
        return viterbi(self._log_densities(Xk), lengths, self.startprob_, self.transmat_,
                       each=True)

    def predict(self, X, lengths=None):
        """The decoded states (``algorithm``), one per frame."""
        return self.decode(X, lengths)[1]

    def get_stationary_distribution(self):
        """The stationary distribution of the states (the left eigenvector of
        ``transmat_`` for eigenvalue 1, normalised)."""
        check_is_fitted(self, "transmat_")
        eigvals, eigvecs = linalg.eig(np.asarray(self.transmat_).T)
        eigvec = np.real_if_close(eigvecs[:, np.argmax(eigvals)])
        return eigvec / eigvec.sum()

    def _n_parameters(self):
        K = self.n_components
        return K - 1 + K * (K - 1) + sum(self._emission_scalars().values())

    def aic(self, X, lengths=None):
        """Akaike information criterion: -2 log-likelihood + 2 (free parameters)."""
        return -2 * self.score(X, lengths) + 2 * self._n_parameters()

    def bic(self, X, lengths=None):
        """Bayesian information criterion: -2 log-likelihood + (free
        parameters) log(n_samples)."""
        return -2 * self.score(X, lengths) + self._n_parameters() * np.log(X.shape[0])

    # ------------------------------------------------------------------
    # sampling
    # ------------------------------------------------------------------

    def sample(self, n_samples=1, random_state=None, currstate=None):
        """Draw ``(X (n_samples, n_features), states (n_samples,))`` from the
        model; ``currstate`` fixes the first state (to continue a sequence,
        pass the last state drawn)."""
        self._fitted_check()
        if not isinstance(n_samples, Integral) or n_samples < 1:
            raise ValueError(f"n_samples should be a positive integer, got {n_samples!r}.")
        check_allocation(8 * n_samples * (self.n_features + 3),
                         f"sample({n_samples}) of {self.n_features} features",
                         "Draw fewer samples at a time (continue with currstate=).")
        rs = check_random_state(self.random_state if random_state is None else random_state)
        K = self.n_components
        u = rs.rand(n_samples)
        start_cdf = np.cumsum(self.startprob_)
        trans_cdf = np.cumsum(self.transmat_, axis=1)
        states = np.empty(n_samples, dtype=int)
        if currstate is None:
            s = int(np.searchsorted(start_cdf, u[0], side="right"))
        else:
            if not isinstance(currstate, Integral) or not 0 <= currstate < K:
                raise ValueError(f"currstate should be a state 0 .. {K - 1}, got {currstate!r}.")
            s = int(currstate)
        s = min(s, K - 1)
        states[0] = s
        rows = [list(r) for r in trans_cdf]
        for t in range(1, n_samples):
            s = min(bisect.bisect_right(rows[s], u[t]), K - 1)
            states[t] = s
        return self._draw(states, rs), states


# ----------------------------------------------------------------------
# Gaussian emissions
# ----------------------------------------------------------------------


def _compact_covars(covars, covariance_type, n_components):
    """hmmlearn's checks of the compact covariance parameter."""
    covars = np.array(covars, dtype=np.float64, copy=True)
    K = n_components
    ct = covariance_type
    if not np.isfinite(covars).all():
        raise ValueError("covars_ must hold finite numbers, but holds NaN or inf.")
    if ct == "spherical":
        if covars.shape != (K,) or not (covars > 0).all():
            raise ValueError(f"'spherical' covars must be {K} positive variances (shape "
                             f"(n_components,)), got shape {covars.shape}.")
    elif ct == "diag":
        if covars.ndim != 2 or covars.shape[0] != K or not (covars > 0).all():
            raise ValueError(f"'diag' covars must be positive, of shape (n_components, "
                             f"n_features) with n_components = {K}; got shape {covars.shape}.")
    elif ct == "full":
        if covars.ndim != 3 or covars.shape[0] != K or covars.shape[1] != covars.shape[2]:
            raise ValueError(f"'full' covars must have shape (n_components, n_features, "
                             f"n_features) with n_components = {K}; got {covars.shape}.")
        for k, cv in enumerate(covars):
            if not np.allclose(cv, cv.T) or (linalg.eigvalsh(cv) <= 0).any():
                raise ValueError(f"component {k} of 'full' covars must be symmetric, "
                                 "positive-definite")
    elif ct == "tied":
        if covars.ndim != 2 or covars.shape[0] != covars.shape[1]:
            raise ValueError(f"'tied' covars must have shape (n_features, n_features), "
                             f"got {covars.shape}.")
        if not np.allclose(covars, covars.T) or (linalg.eigvalsh(covars) <= 0).any():
            raise ValueError("'tied' covars must be symmetric, positive-definite")
    else:
        raise ValueError(f"covariance_type must be one of {COVARIANCE_TYPES}, got {ct!r}.")
    return covars


class GaussianHMM(_BaseHMM):
    """Hidden Markov model with Gaussian emissions: hmmlearn 0.3.3's
    ``GaussianHMM``, fitted with fastem's kernels.

    Parameters are hmmlearn's (see its documentation), plus ``n_init``
    (restarts from new random starts, keeping the best log-likelihood) and
    ``missing`` ('raise': NaN is an error).  ``implementation`` is accepted
    for compatibility: both values run the same scaled forward-backward,
    exact to 1e-12 against log space.

    Attributes
    ----------
    startprob_ : ndarray (n_components,)
    transmat_ : ndarray (n_components, n_components)
    means_ : ndarray (n_components, n_features)
    covars_ : ndarray (n_components, n_features, n_features)
        Each state's covariance matrix, whatever the covariance type (set it
        in the compact form: spherical (n_components,), diag (n_components,
        n_features), full (n_components, n_features, n_features), tied
        (n_features, n_features)).
    n_features : int
    monitor_ : ConvergenceMonitor
    """

    _emission_letters = "mc"
    _priors = _BaseHMM._priors + ("means_prior", "means_weight", "covars_prior",
                                  "covars_weight", "min_covar")
    _non_negative = ("means_weight", "min_covar")

    def __init__(self, n_components=1, covariance_type="diag", min_covar=1e-3,
                 startprob_prior=1.0, transmat_prior=1.0, means_prior=0, means_weight=0,
                 covars_prior=1e-2, covars_weight=1, algorithm="viterbi", random_state=None,
                 n_iter=10, tol=1e-2, verbose=False, params="stmc", init_params="stmc",
                 implementation="log", *, n_init=1, missing="raise"):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.min_covar = min_covar
        self.startprob_prior = startprob_prior
        self.transmat_prior = transmat_prior
        self.means_prior = means_prior
        self.means_weight = means_weight
        self.covars_prior = covars_prior
        self.covars_weight = covars_weight
        self._set_common(algorithm, random_state, n_iter, tol, verbose, params, init_params,
                         implementation, n_init, missing)

    @property
    def covars_(self):
        """Each state's covariance matrix (n_components, n_features, n_features)."""
        c = self._covars_
        K = self.n_components
        d = np.shape(self.means_)[1] if hasattr(self, "means_") else self.n_features
        ct = self.covariance_type
        if ct == "full":
            return c
        if ct == "diag":
            return np.array([np.diag(v) for v in c])
        if ct == "tied":
            return np.tile(c, (K, 1, 1))
        return np.eye(d)[None] * np.asarray(c)[:, None, None]

    @covars_.setter
    def covars_(self, covars):
        if self.covariance_type not in COVARIANCE_TYPES:
            raise ValueError(f"covariance_type must be one of {COVARIANCE_TYPES}, "
                             f"got {self.covariance_type!r}.")
        self._covars_ = _compact_covars(covars, self.covariance_type, self.n_components)

    def _check_hyper(self):
        super()._check_hyper()
        if self.covariance_type not in COVARIANCE_TYPES:
            raise ValueError(f"covariance_type must be one of {COVARIANCE_TYPES}, "
                             f"got {self.covariance_type!r}.")

    def _kernel_X(self, X, fitting):
        X = np.asarray(X)
        if X.ndim != 2:
            raise ValueError(f"X should be a 2-d array (n_samples, n_features), but has shape "
                             f"{X.shape}; reshape a single feature with X.reshape(-1, 1).")
        if X.dtype.kind not in "fiub":
            raise ValueError(f"X should hold numbers, got dtype {X.dtype}.")
        X = np.ascontiguousarray(X, dtype=np.float64)
        if X.shape[0] == 0:
            raise ValueError("X has no rows: at least one sample is needed.")
        # NaN, inf, values whose squares overflow; a frame may miss every value
        check_finite(X, allow_nan=self.missing == "em", allow_empty=True)
        keeps = hasattr(self, "means_") and (not fitting or "m" not in self.init_params)
        if keeps and X.shape[1] != np.shape(self.means_)[-1]:
            raise ValueError(f"X has {X.shape[1]} features, but the model has "
                             f"{np.shape(self.means_)[-1]}: pass data with the model's features.")
        return X

    def _make_emission(self, X):
        return Gaussian(self.covariance_type, self.n_components, self.n_features, X.shape[0],
                        X if self.missing == "em" else None)

    def _emission_params(self, em):
        try:
            return em.params(self.means_, self._covars_)
        except CollapseError as exc:
            raise ValueError(f"A covariance of the {self.covariance_type} GaussianHMM is not "
                             f"positive definite ({exc}); raise covars_prior or min_covar, or "
                             "use fewer states.") from exc

    def _init_emissions(self, X, rs, needs):
        if np.isnan(X).any():  # missing='em': the start reads NaN as the column's mean
            from ._missing import observed_mean_fill

            X = observed_mean_fill(X)
            if np.isnan(X).any():
                raise ValueError("X has a feature with every value missing: nothing can be "
                                 "learnt about it; drop it.")
        n, K = X.shape[0], self.n_components
        if needs("m", "means_"):
            if n < K:
                raise ValueError(f"The random start needs at least n_components = {K} frames "
                                 f"for k-means, but X has {n}. Use fewer states, or set "
                                 "means_ and leave 'm' out of init_params.")
            from ._kmeans import kmeans

            self.means_ = kmeans(X, K, rs)[0]
        if needs("c", "_covars_"):
            if n < 2:
                raise ValueError("The random start estimates the covariances from the data "
                                 f"and needs at least 2 frames, but X has {n}. Set covars_ "
                                 "and leave 'c' out of init_params.")
            cv = np.atleast_2d(np.cov(X.T)) + self.min_covar * np.eye(X.shape[1])
            K = self.n_components
            self._covars_ = {"spherical": np.full(K, cv.mean()), "tied": cv,
                             "diag": np.tile(np.diag(cv), (K, 1)),
                             "full": np.tile(cv, (K, 1, 1))}[self.covariance_type].copy()
        self.n_features = X.shape[1]

    def _check_emissions(self):
        self.means_ = np.asarray(self.means_, dtype=np.float64)
        K = self.n_components
        if self.means_.ndim != 2 or self.means_.shape[0] != K:
            raise ValueError(f"means_ must have shape (n_components, n_features) with "
                             f"n_components = {K}, got {self.means_.shape}.")
        if not np.isfinite(self.means_).all():
            raise ValueError("means_ must hold finite numbers, but holds NaN or inf.")
        self.n_features = self.means_.shape[1]
        if not hasattr(self, "_covars_"):
            raise ValueError("covars_ is not set: set it, or put 'c' in init_params.")
        c = _compact_covars(self._covars_, self.covariance_type, K)
        d = self.n_features
        want = {"spherical": (K,), "diag": (K, d), "full": (K, d, d),
                "tied": (d, d)}[self.covariance_type]
        if c.shape != want:
            raise ValueError(f"covars_ of a {self.covariance_type} model with {K} states and "
                             f"{d} features must have shape {want}, got {c.shape}.")

    def _emission_mstep(self, stats):
        means, covars = mstep.gaussian(
            stats, self.means_, self._covars_, self.covariance_type, self.params,
            means_prior=self.means_prior, means_weight=self.means_weight,
            covars_prior=self.covars_prior, covars_weight=self.covars_weight)
        return {"means_": means, "_covars_": covars}

    def _emission_scalars(self):
        K, d = self.n_components, self.n_features
        return {"m": K * d, "c": {"spherical": K, "diag": K * d, "full": K * d * (d + 1) // 2,
                                  "tied": d * (d + 1) // 2}[self.covariance_type]}

    def _draw(self, states, rs):
        X = np.empty((states.shape[0], self.n_features))
        covs = self.covars_
        for k in range(self.n_components):
            idx = np.flatnonzero(states == k)
            if idx.size:
                X[idx] = rs.multivariate_normal(self.means_[k], covs[k], size=idx.size)
        return X


# ----------------------------------------------------------------------
# categorical emissions
# ----------------------------------------------------------------------


def _largest_symbol(X, lengths, weights):
    X = np.asarray(X)
    if X.dtype.kind == "f":
        X = X[~np.isnan(X)]
    return None if X.size == 0 else X.max()


class CategoricalHMM(_BaseHMM):
    """Hidden Markov model with categorical emissions (symbols 0 ..
    n_features - 1, X of shape (n_samples, 1)): hmmlearn 0.3.3's
    ``CategoricalHMM``, fitted with fastem's kernels.  Symbols outside the
    model's range, negative or not whole numbers are a ValueError.

    Attributes: ``startprob_``, ``transmat_``, ``emissionprob_``
    (n_components, n_features), ``n_features`` (set from the data when not
    given), ``monitor_``.
    """

    _emission_letters = "e"
    _priors = _BaseHMM._priors + ("emissionprob_prior",)

    def __init__(self, n_components=1, startprob_prior=1.0, transmat_prior=1.0, *,
                 emissionprob_prior=1.0, n_features=None, algorithm="viterbi",
                 random_state=None, n_iter=10, tol=1e-2, verbose=False, params="ste",
                 init_params="ste", implementation="log", n_init=1, missing="raise"):
        self.n_components = n_components
        self.startprob_prior = startprob_prior
        self.transmat_prior = transmat_prior
        self.emissionprob_prior = emissionprob_prior
        self.n_features = n_features
        self._set_common(algorithm, random_state, n_iter, tol, verbose, params, init_params,
                         implementation, n_init, missing)

    def _check_hyper(self):
        super()._check_hyper()
        n = self.n_features
        if n is not None and (not isinstance(n, Integral) or isinstance(n, bool) or n < 1):
            raise ValueError(f"n_features should be None (the symbols seen) or a positive "
                             f"integer, but got {n!r}.")

    def _set_symbols(self, n):
        """n_features for a fit, refused before any (K, n) array is made when
        the emission tables would not fit in memory (a stray huge symbol)."""
        check_allocation(4 * 8 * self.n_components * n,
                         f"A CategoricalHMM with {self.n_components} states and {n} symbols "
                         f"(the largest symbol + 1)",
                         "Encode the symbols as 0 .. n_symbols - 1.")
        self.n_features = n

    def _kernel_X(self, X, fitting):
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != 1:
            raise ValueError(f"X should hold one symbol per row, shape (n_samples, 1), but has "
                             f"shape {X.shape}; use X.reshape(-1, 1).")
        if X.shape[0] == 0:
            raise ValueError("X has no rows: at least one sample is needed.")
        holes = self.missing == "em" and X.dtype.kind == "f" and bool(np.isnan(X).any())
        if X.dtype.kind not in "iub" and not holes:
            raise ValueError(f"Symbols should be integers 0, 1, 2, ..., but X has dtype "
                             f"{X.dtype}; encode the symbols as integers"
                             + (" (missing symbols as NaN need missing='em')."
                                if X.dtype.kind == "f" and np.isnan(X).any() else "."))
        if holes:
            seen = X[~np.isnan(X)]
            if seen.size and not np.array_equal(seen, np.round(seen)) or np.isinf(seen).any():
                raise ValueError("Symbols should be whole numbers 0, 1, 2, ... (NaN where "
                                 "missing), but X holds other values.")
            codes = np.ascontiguousarray(X, dtype=np.float64)
            low = float(seen.min()) if seen.size else 0.0
            high = int(seen.max()) if seen.size else 0
            col = np.where(np.isnan(codes[:, 0]), 0.0, codes[:, 0])
        else:
            codes = category_codes(X)
            low, high = int(codes.min()), int(codes.max())
            col = codes[:, 0]
        if low < 0:
            raise ValueError(f"Symbols should be non-negative, but X holds {low:g} (row "
                             f"{int(np.argmin(col))}).")
        n = self.n_features
        if n is None and hasattr(self, "emissionprob_") and (
                not fitting or "e" not in self.init_params):
            n = np.atleast_2d(self.emissionprob_).shape[1]
        if n is not None and high >= n:
            raise ValueError(f"Largest symbol is {high} (row {int(np.argmax(col))}), "
                             f"but the model only emits symbols up to {n - 1}.")
        if fitting:
            self._set_symbols(high + 1 if n is None else n)
        return codes

    def _prepare_chunks(self, chunks):
        if self.n_features is None and not (hasattr(self, "emissionprob_")
                                            and "e" not in self.init_params):
            highs = [h for h in chunks.map(_largest_symbol) if h is not None]
            self._set_symbols(int(max(highs)) + 1 if highs else 1)

    def _make_emission(self, X):
        return Symbols(self.n_components, self.n_features, X.shape[0],
                       X if self.missing == "em" else None)

    def _emission_params(self, em):
        return em.params(self.emissionprob_)

    def _init_emissions(self, X, rs, needs):
        if needs("e", "emissionprob_"):
            e = rs.rand(self.n_components, self.n_features)
            self.emissionprob_ = e / e.sum(axis=1, keepdims=True)

    def _check_emissions(self):
        self.emissionprob_ = np.atleast_2d(np.asarray(self.emissionprob_, dtype=np.float64))
        if self.n_features is None:
            self.n_features = self.emissionprob_.shape[1]
        if self.emissionprob_.shape != (self.n_components, self.n_features):
            raise ValueError(f"emissionprob_ must have shape (n_components, n_features) = "
                             f"({self.n_components}, {self.n_features}), got "
                             f"{self.emissionprob_.shape}.")
        self._check_sum_1("emissionprob_")

    def _emission_mstep(self, stats):
        return {"emissionprob_": mstep.categorical(
            stats[1], self.emissionprob_, self.params,
            emissionprob_prior=self.emissionprob_prior)}

    def _emission_scalars(self):
        return {"e": self.n_components * (self.n_features - 1)}

    def _draw(self, states, rs):
        cdf = np.cumsum(self.emissionprob_, axis=1)
        u = rs.rand(states.shape[0])
        out = np.empty((states.shape[0], 1), dtype=int)
        for k in range(self.n_components):
            idx = np.flatnonzero(states == k)
            out[idx, 0] = np.minimum(np.searchsorted(cdf[k], u[idx], side="right"),
                                     self.n_features - 1)
        return out


# ----------------------------------------------------------------------
# Poisson emissions
# ----------------------------------------------------------------------


class PoissonHMM(_BaseHMM):
    """Hidden Markov model with Poisson emissions (counts per feature):
    hmmlearn 0.3.3's ``PoissonHMM``, fitted with fastem's kernels.  Negative
    or fractional counts are a ValueError; the gamma prior
    (``lambdas_prior``, ``lambdas_weight``) updates each state with its own
    posterior weight.

    Attributes: ``startprob_``, ``transmat_``, ``lambdas_`` (n_components,
    n_features), ``n_features``, ``monitor_``.
    """

    _emission_letters = "l"
    _priors = _BaseHMM._priors + ("lambdas_prior", "lambdas_weight")
    _non_negative = ("lambdas_weight",)

    def __init__(self, n_components=1, startprob_prior=1.0, transmat_prior=1.0,
                 lambdas_prior=0.0, lambdas_weight=0.0, algorithm="viterbi",
                 random_state=None, n_iter=10, tol=1e-2, verbose=False, params="stl",
                 init_params="stl", implementation="log", *, n_init=1, missing="raise"):
        self.n_components = n_components
        self.startprob_prior = startprob_prior
        self.transmat_prior = transmat_prior
        self.lambdas_prior = lambdas_prior
        self.lambdas_weight = lambdas_weight
        self._set_common(algorithm, random_state, n_iter, tol, verbose, params, init_params,
                         implementation, n_init, missing)

    def _family(self):
        from .families.linear import Poisson

        return Poisson()

    def _kernel_X(self, X, fitting):
        X = np.asarray(X)
        if X.ndim != 2:
            raise ValueError(f"X should be a 2-d array of counts (n_samples, n_features), but "
                             f"has shape {X.shape}.")
        if X.shape[0] == 0:
            raise ValueError("X has no rows: at least one sample is needed.")
        if X.dtype.kind not in "fiub":
            raise ValueError(f"X should hold counts, got dtype {X.dtype}.")
        nan = np.isnan(X) if X.dtype.kind == "f" else None
        if nan is not None and nan.any():
            if self.missing != "em":
                bad = np.argwhere(nan)[0]
                raise ValueError(f"X holds NaN at row {bad[0]}, column {bad[1]}; missing "
                                 "values need missing='em'.")
            X = np.ascontiguousarray(X, dtype=np.float64)
        values = X if nan is None or not nan.any() else np.where(nan, 0.0, X)
        if X.dtype.kind in "fi" and (values < 0).any():
            bad = np.argwhere(values < 0)[0]
            raise ValueError(f"PoissonHMM models counts, but X holds the negative value "
                             f"{X[bad[0], bad[1]]} at row {bad[0]}, column {bad[1]}.")
        self._family().check_values(values, lambda i: f"(row {i // X.shape[1]}, column "
                                                       f"{i % X.shape[1]})")
        keeps = hasattr(self, "lambdas_") and (not fitting or "l" not in self.init_params)
        d = np.atleast_2d(self.lambdas_).shape[1] if keeps else None
        if d is not None and X.shape[1] != d:
            raise ValueError(f"X has {X.shape[1]} features, but the model has {d}: "
                             "pass data with the model's features.")
        return linear_array(X)

    def _make_emission(self, X):
        return Linear(self._family(), self.n_components, self.n_features, X.shape[0],
                      X if self.missing == "em" else None)

    def _emission_params(self, em):
        return em.params(np.maximum(self.lambdas_, np.finfo(np.float64).tiny))

    def _init_emissions(self, X, rs, needs):
        if needs("l", "lambdas_"):
            mean, var = np.nanmean(X), np.nanvar(X)
            size = (self.n_components, X.shape[1])
            if mean > 0 and var > 0:  # hmmlearn's method-of-moments gamma draw
                self.lambdas_ = rs.gamma(shape=mean**2 / var, scale=var / mean, size=size)
            else:  # constant counts (all 0, or all c): rates around their mean
                self.lambdas_ = max(mean, 1e-3) * rs.uniform(0.5, 1.5, size=size)
        self.n_features = X.shape[1]

    def _check_emissions(self):
        self.lambdas_ = np.atleast_2d(np.asarray(self.lambdas_, dtype=np.float64))
        d = getattr(self, "n_features", self.lambdas_.shape[1])
        if self.lambdas_.shape != (self.n_components, d):
            raise ValueError(f"lambdas_ must have shape (n_components, n_features) = "
                             f"({self.n_components}, {d}), got {self.lambdas_.shape}.")
        if not np.isfinite(self.lambdas_).all() or (self.lambdas_ < 0).any():
            raise ValueError("lambdas_ must hold finite, non-negative rates.")
        self.n_features = d

    def _emission_mstep(self, stats):
        return {"lambdas_": mstep.poisson(stats[0], stats[1], self.lambdas_, self.params,
                                          observed=stats[2],
                                          lambdas_prior=self.lambdas_prior,
                                          lambdas_weight=self.lambdas_weight)}

    def _emission_scalars(self):
        return {"l": self.n_components * self.n_features}

    def _draw(self, states, rs):
        return rs.poisson(self.lambdas_[states])
