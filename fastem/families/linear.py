"""The linear discrete families: Bernoulli, Binomial, Poisson, Multinomial.

Their log-densities are linear in x (design.md, "Fused kernels")::

    log w_k + log p(x | k) = x . a_k + b_k + h(x)

with ``h(x)`` the same for every component (binomial coefficients, ``-log
x!``, the multinomial coefficient): it cancels in the responsibilities, so
the kernel computes ``x . a_k + b_k`` only, and ``h`` is added where a
log-likelihood is reported (``score_samples``, ``lower_bound_``, BIC).

Sufficient statistics: ``S0_k = sum_i w_i r_ik`` and ``S1_kj = sum_i w_i r_ik
x_ij`` (float64, additive).  M-step with a symmetric pseudo-count ``alpha``:

=============  ================================================  =============
family         parameter                                          free params
=============  ================================================  =============
Bernoulli      ``p = (S1 + alpha) / (S0 + 2 alpha)``              K d + K - 1
Binomial (m)   ``p = (S1 + alpha) / (S0 m + 2 alpha)``            K d + K - 1
Poisson        ``rate = (S1 + alpha) / (S0 + alpha)``             K d + K - 1
Multinomial    ``p_j = (S1_j + alpha) / (sum S1 + d alpha)``      K (d-1) + K - 1
=============  ================================================  =============

Probabilities are kept inside [1e-10, 1 - 1e-10] and rates above 1e-10 so
that every log stays finite; the weights are ``S0 / sum S0`` (never smoothed)
unless they are fixed.
"""

from abc import ABC, abstractmethod
from typing import NamedTuple

import numpy as np
from scipy import sparse
from scipy.special import gammaln

from .._discrete_estep import LinearWorkspace, linear_array

#: Bounds that keep log p, log(1 - p) and log rate finite.
PROB_FLOOR = 1e-10
RATE_FLOOR = 1e-10


class LinearStats:
    """Additive statistics of a linear family: ``S0`` (K,), ``S1`` (K, d),
    the total (weighted) log-likelihood and weight; with missing entries
    (``missing='em'``) also ``observed`` (K, d), each column's observed
    weight ``sum_{i: x_ij observed} w_i r_ik`` (None: every entry observed,
    ``S0`` for every column)."""

    observed = None  # an attribute of the instance only when there are missing entries

    def __init__(self, S0, S1, loglik, weight, observed=None):
        self.S0, self.S1, self.loglik, self.weight = S0, S1, loglik, weight
        if observed is not None:
            self.observed = observed

    def _observed(self):
        return self.S0[:, None] * np.ones_like(self.S1) if self.observed is None \
            else self.observed

    def __add__(self, other):
        observed = None if self.observed is None and other.observed is None else \
            self._observed() + other._observed()
        return LinearStats(self.S0 + other.S0, self.S1 + other.S1,
                           self.loglik + other.loglik, self.weight + other.weight, observed)

    def scaled(self, factor):
        return LinearStats(self.S0 * factor, self.S1 * factor, self.loglik * factor,
                           self.weight * factor,
                           None if self.observed is None else self.observed * factor)

    def blend(self, other, eta):
        """``(1 - eta) * self + eta * other`` (stepwise EM)."""
        return self.scaled(1.0 - eta) + other.scaled(eta)

    def to_vector(self, observed=False):
        """The wire format (Dask's tree sum): one float64 vector; with
        ``observed`` (missing='em') the observed weights follow S1."""
        parts = [self.S0, self.S1.ravel()]
        if observed:
            parts.append(self._observed().ravel())
        return np.concatenate([*parts, [self.loglik, self.weight]])

    @classmethod
    def from_vector(cls, vec, n_components, n_columns, observed=False):
        K, m = n_components, n_columns
        obs = vec[K + K * m:K + 2 * K * m].reshape(K, m) if observed else None
        return cls(vec[:K], vec[K:K + K * m].reshape(K, m), float(vec[-2]), float(vec[-1]),
                   obs)


class LinearParams(NamedTuple):
    """Weights (K,) and the per-component parameters (K, d): probabilities
    (Bernoulli, Binomial, Multinomial) or rates (Poisson)."""

    weights: np.ndarray
    theta: np.ndarray


def _log_weights(weights):
    with np.errstate(divide="ignore"):
        return np.log(np.asarray(weights, dtype=np.float64))


class LinearFamily(ABC):
    """What a linear family is: its natural parameters, row constant,
    M-step, domain check, parameter count and sampler.  ``theta_name`` is
    the estimator's attribute stem ('probabilities' or 'rates')."""

    name = ""
    theta_name = "probabilities"
    accepts_sparse = True
    #: missing='em' can skip a missing entry (see fastem._discrete_missing)
    skips_missing = False
    #: the M-step divides column j's statistic by its own observed weight
    #: (missing entries; else by S0)
    column_weights = False

    @abstractmethod
    def natural(self, params):
        """``(A (K, d), b (K,))`` with ``log w_k + log p(x|k) = x . a_k + b_k + h(x)``."""

    def row_constant(self, X):
        """``h(x)`` per row (zeros when the family has none)."""
        return np.zeros(X.shape[0])

    @abstractmethod
    def theta_from_stats(self, S0, S1, alpha):
        """The component parameters (K, .) from ``S0``, ``S1`` and the
        pseudo-count, kept inside their bounds."""

    def m_step(self, S0, S1, alpha=0.0, fixed_weights=None, observed=None):
        """:class:`LinearParams` from the statistics; ``observed`` (K, d),
        the columns' own observed weights, replaces ``S0`` in the
        parameters' denominators (missing entries)."""
        S0 = np.asarray(S0, dtype=np.float64)
        weights = (np.array(fixed_weights, dtype=np.float64) if fixed_weights is not None
                   else S0 / S0.sum())
        per_column = observed is not None and self.column_weights
        return LinearParams(weights, self.theta_from_stats(
            observed if per_column else S0, S1, alpha))

    def column_constants(self, params):
        """``c`` (K, d) with ``b_k = log w_k + sum_j c_kj``: what an observed
        entry of column j adds to the log-joint besides ``x_j a_kj`` (a
        family whose ``skips_missing`` is set and that is not handled
        otherwise in :mod:`fastem._discrete_missing` defines it)."""
        raise ValueError(f"A {self.name} mixture cannot skip missing entries. Impute or "
                         "drop the rows with missing values, or use missing='raise'.")

    def n_free_theta(self, n_components, n_features):
        return n_components * n_features

    def theta_to_vector(self, theta):
        """Unconstrained coordinates of the parameters (SQUAREM)."""
        return (np.log(theta) - np.log1p(-theta)).ravel()

    def theta_from_vector(self, v, shape):
        """Inverse of :meth:`theta_to_vector`; a ValueError outside the
        parameters' range."""
        theta = 1.0 / (1.0 + np.exp(-v.reshape(shape)))
        if not ((theta >= PROB_FLOOR) & (theta <= 1.0 - PROB_FLOOR)).all():
            raise ValueError("a probability outside [1e-10, 1 - 1e-10]")
        return theta

    def workspace(self, n_components, n_features, n_rows):
        """E-step buffers (:mod:`fastem._discrete_estep`) for calls of up to
        ``n_rows`` rows."""
        return LinearWorkspace(n_components, n_features, n_rows)

    def theta_cols(self, n_features):
        """Columns of the (K, .) parameter array for ``n_features`` columns of X."""
        return n_features

    def codes(self, X):
        """A dense X as the kernel reads it (no copy for its dtypes)."""
        return linear_array(X)

    def kmeans_input(self, Xs):
        """The rows k-means and k-means++ see: float64, dense."""
        return np.asarray(Xs.toarray() if sparse.issparse(Xs) else Xs, dtype=np.float64)

    def restart(self, Xs, i):
        """The parameters of a component re-seeded at row ``i`` of the
        sample ``Xs``: half way between the row and the sample's mean (a
        point mass would put probabilities at their bounds)."""
        if sparse.issparse(Xs):  # never densify the sample: one row and the mean
            return self._restart(Xs[i].toarray().ravel(), np.asarray(Xs.mean(axis=0)).ravel())
        X = self.kmeans_input(Xs)
        return self._restart(X[i], X.mean(axis=0))

    def _restart(self, row, centre):
        return _clip_prob(0.5 * (row + centre) / self._trials(row.shape[0]))

    def _trials(self, d):
        return 1.0

    def mean(self, theta):
        """Expected x per row of each component (K, d): what ``S1 / S0`` is
        for data drawn from ``theta`` (online EM restarts a re-seeded
        component's running statistics from it)."""
        return theta * self._trials(theta.shape[1])

    def check_theta(self, theta, what):
        """Raise a ValueError unless ``theta`` holds probabilities strictly
        inside (0, 1); ``what`` names it ("The parameter 'probabilities_init'")."""
        if (theta <= 0).any() or (theta >= 1).any():
            raise ValueError(f"{what} should hold probabilities strictly between 0 and 1, "
                             f"but holds min {theta.min()}, max {theta.max()}.")

    @abstractmethod
    def check_values(self, values, where):
        """Raise a ValueError naming the first value outside the domain;
        ``where(i)`` turns a flat index into '(row r, column c)'."""

    @abstractmethod
    def sample(self, theta, count, rng, **options):
        """``count`` rows (float64) drawn from one component's parameters
        ``theta``; ``options`` are the estimator's ``_sample_options()``."""


def _row_sums(X, f, chunk_nnz=1 << 20):
    """``sum_j f(x_ij)`` per row, for dense X or, over its non-zeros, CSR X
    (``f(0) = 0`` for every ``f`` used here); CSR rows are taken about
    ``chunk_nnz`` non-zeros at a time, so the scratch does not grow with X."""
    if not sparse.issparse(X):
        return f(np.asarray(X, dtype=np.float64)).sum(axis=1)
    X = X.tocsr()
    n = X.shape[0]
    out = np.zeros(n)
    indptr = X.indptr
    r0 = 0
    while r0 < n:
        r1 = int(np.searchsorted(indptr, indptr[r0] + chunk_nnz, side="right")) - 1
        r1 = min(n, max(r1, r0 + 1))
        p0, p1 = int(indptr[r0]), int(indptr[r1])
        rows = np.repeat(np.arange(r1 - r0), np.diff(indptr[r0:r1 + 1]))
        out[r0:r1] = np.bincount(rows, weights=f(np.asarray(X.data[p0:p1], dtype=np.float64)),
                                 minlength=r1 - r0)
        r0 = r1
    return out


def _clip_prob(p):
    return np.clip(p, PROB_FLOOR, 1.0 - PROB_FLOOR)


def _first_bad(values, bad, where, what, fix):
    i = int(np.flatnonzero(bad)[0])
    raise ValueError(
        f"{what}, but X holds {values.ravel()[i].item()!r} at {where(i)} "
        f"({int(bad.sum())} such values). {fix}"
    )


def _check_counts(values, where, name, upper=None):
    """Non-negative integers (at most ``upper``), NaN named as missing."""
    values = np.asarray(values)
    if values.dtype.kind == "f":
        nan = np.isnan(values)
        if nan.any():
            _first_bad(values, nan, where,
                       f"{name} needs counts; missing values (nan) are refused by default",
                       "Pass missing='em' to fit on the observed entries, or drop or "
                       "impute the rows with missing values.")
        _first_bad_if(values, (values != np.floor(values)) | ~np.isfinite(values), where,
                      f"{name} needs whole-number counts",
                      "Round the data, or use GaussianMixture for continuous data.")
    if values.dtype.kind != "b":
        _first_bad_if(values, values < 0, where, f"{name} needs non-negative counts",
                      "Counts cannot be negative; check the data.")
    if upper is not None:
        _first_bad_if(values, values > upper, where,
                      f"{name} needs counts of at most n_trials",
                      "Pass the right n_trials (an int, or one per column).")


def _first_bad_if(values, bad, where, what, fix):
    if np.any(bad):
        _first_bad(values, bad, where, what, fix)


def _per_column(S0):
    """The denominators' weights, (K, 1) or the columns' own (K, d)."""
    return S0[:, None] if S0.ndim == 1 else S0


class Bernoulli(LinearFamily):
    name = "bernoulli"
    skips_missing = True
    column_weights = True

    def natural(self, params):
        p = np.asarray(params.theta, dtype=np.float64)
        log1m = np.log1p(-p)
        return np.log(p) - log1m, _log_weights(params.weights) + log1m.sum(axis=1)

    def column_constants(self, params):
        return np.log1p(-np.asarray(params.theta, dtype=np.float64))

    def theta_from_stats(self, S0, S1, alpha):
        return _clip_prob((S1 + alpha) / (_per_column(S0) + 2.0 * alpha))

    def check_values(self, values, where):
        values = np.asarray(values)
        if values.dtype.kind == "f" and np.isnan(values).any():
            _first_bad(values, np.isnan(values), where,
                       "BernoulliMixture needs values 0 or 1; missing values (nan) are "
                       "refused by default", "Pass missing='em' to fit on the observed "
                       "entries, or drop or impute the rows with missing values.")
        _first_bad_if(values, (values != 0) & (values != 1), where,
                      "BernoulliMixture needs binary data, values 0 or 1",
                      "Binarise the data (e.g. X > 0), or use BinomialMixture or "
                      "PoissonMixture for counts.")

    def sample(self, theta, count, rng, **options):
        return (rng.random_sample((count, theta.shape[0])) < theta).astype(np.float64)


class Binomial(LinearFamily):
    name = "binomial"
    skips_missing = True
    column_weights = True
    accepts_sparse = False

    def __init__(self, n_trials):
        self.n_trials = np.asarray(n_trials, dtype=np.float64)

    def natural(self, params):
        p = np.asarray(params.theta, dtype=np.float64)
        log1m = np.log1p(-p)
        m = np.broadcast_to(self.n_trials, p.shape[1:])
        return np.log(p) - log1m, _log_weights(params.weights) + log1m @ m

    def row_constant(self, X):
        X = np.asarray(X, dtype=np.float64)
        m = np.broadcast_to(self.n_trials, X.shape[1:])
        return (gammaln(m + 1) - gammaln(X + 1) - gammaln(m - X + 1)).sum(axis=1)

    def column_constants(self, params):
        p = np.asarray(params.theta, dtype=np.float64)
        return np.log1p(-p) * np.broadcast_to(self.n_trials, p.shape[1:])

    def theta_from_stats(self, S0, S1, alpha):
        m = np.broadcast_to(self.n_trials, S1.shape[1:])
        return _clip_prob((S1 + alpha) / (_per_column(S0) * m + 2.0 * alpha))

    def _trials(self, d):
        return np.broadcast_to(self.n_trials, (d,))

    def check_values(self, values, where):
        if np.ndim(values) == 2 and self.n_trials.ndim == 1 and \
                self.n_trials.shape[0] != np.shape(values)[1]:
            raise ValueError(f"n_trials has {self.n_trials.shape[0]} values but X has "
                             f"{np.shape(values)[1]} columns: pass one per column or one int.")
        upper = np.broadcast_to(self.n_trials, np.asarray(values).shape[1:]) \
            if np.ndim(values) == 2 else self.n_trials
        _check_counts(values, where, "BinomialMixture", upper)

    def sample(self, theta, count, rng, **options):
        m = np.broadcast_to(self.n_trials, theta.shape).astype(np.int64)
        return rng.binomial(m, theta, size=(count, theta.shape[0])).astype(np.float64)


class Poisson(LinearFamily):
    name = "poisson"
    skips_missing = True
    column_weights = True
    theta_name = "rates"

    def natural(self, params):
        rates = np.asarray(params.theta, dtype=np.float64)
        return np.log(rates), _log_weights(params.weights) - rates.sum(axis=1)

    def row_constant(self, X):
        return -_row_sums(X, lambda v: gammaln(v + 1))

    def column_constants(self, params):
        return -np.asarray(params.theta, dtype=np.float64)

    def theta_from_stats(self, S0, S1, alpha):
        return np.maximum((S1 + alpha) / (_per_column(S0) + alpha), RATE_FLOOR)

    def theta_to_vector(self, theta):
        return np.log(theta).ravel()

    def theta_from_vector(self, v, shape):
        theta = np.exp(v.reshape(shape))
        if not (np.isfinite(theta).all() and (theta >= RATE_FLOOR).all()):
            raise ValueError("a rate below 1e-10 or not finite")
        return theta

    def _restart(self, row, centre):
        return np.maximum(0.5 * (row + centre), RATE_FLOOR)

    def mean(self, theta):
        return theta

    def check_theta(self, theta, what):
        if (theta <= 0).any():
            raise ValueError(f"{what} should hold positive rates, but holds min {theta.min()}.")

    def check_values(self, values, where):
        _check_counts(values, where, "PoissonMixture")

    def sample(self, theta, count, rng, **options):
        return rng.poisson(theta, size=(count, theta.shape[0])).astype(np.float64)


class Multinomial(LinearFamily):
    name = "multinomial"
    skips_missing = True  # given the observed total (fastem._discrete_missing)

    def natural(self, params):
        return (np.log(np.asarray(params.theta, dtype=np.float64)),
                _log_weights(params.weights))

    def row_constant(self, X):
        totals = _row_sums(X, lambda v: v)
        return gammaln(totals + 1) - _row_sums(X, lambda v: gammaln(v + 1))

    def theta_from_stats(self, S0, S1, alpha):
        d = S1.shape[1]
        total = S1.sum(axis=1, keepdims=True) + d * alpha
        # a component that explains only rows without counts: any p fits them
        # equally; uniform (a component with S0 = 0 stays NaN: re-seeded)
        empty = (total == 0) & (np.asarray(S0)[:, None] > 0)
        with np.errstate(invalid="ignore", divide="ignore"):
            p = np.where(empty, 1.0 / d, (S1 + alpha) / total)
        return _clip_prob(p)

    def n_free_theta(self, n_components, n_features):
        return n_components * (n_features - 1)

    def theta_to_vector(self, theta):
        logp = np.log(theta)
        return (logp - logp[:, -1:]).ravel()

    def theta_from_vector(self, v, shape):
        logp = v.reshape(shape)
        theta = np.exp(logp - logp.max(axis=1, keepdims=True))
        theta /= theta.sum(axis=1, keepdims=True)
        if not ((theta >= PROB_FLOOR) & (theta <= 1.0 - PROB_FLOOR)).all():
            raise ValueError("a probability outside [1e-10, 1 - 1e-10]")
        return theta

    def _restart(self, row, centre):
        mix = 0.5 * (row / max(row.sum(), 1.0) + centre / max(centre.sum(), 1e-300))
        return _clip_prob(mix)

    def check_theta(self, theta, what):
        super().check_theta(theta, what)
        # the M-step's clip to [1e-10, 1 - 1e-10] may move a sum by d * 1e-10
        if not np.allclose(theta.sum(axis=1), 1.0, rtol=0,
                           atol=1e-8 + 2 * PROB_FLOOR * theta.shape[1]):
            raise ValueError(f"The rows of {what} should sum to 1, but they sum to "
                             f"{theta.sum(axis=1)}.")

    def check_values(self, values, where):
        _check_counts(values, where, "MultinomialMixture")

    def sample(self, theta, count, rng, totals=None):
        """Each row's number of draws from ``totals = (values, probabilities)``
        (the training rows' totals), then the counts."""
        values, probabilities = totals
        draws = rng.choice(values, size=count, p=probabilities)
        p = theta / theta.sum()
        rows = [rng.multinomial(int(t), p) for t in draws]
        return np.array(rows, dtype=np.float64).reshape(count, theta.shape[0])
