"""Slow, readable reference implementation of EM for Gaussian mixtures
(and, in the next section, for Bernoulli, Binomial, Poisson, Multinomial and
Categorical mixtures; the last section repeats both, Multinomial aside, for
data with entries missing at random, NaN = missing).

This module is the ground truth the tests compare ``fastem`` against.  It is
written for clarity, not speed: every quantity is computed straight from its
textbook definition with NumPy / SciPy, in float64, one component at a time.
It deliberately shares no code with ``fastem`` (and never imports it).

Conventions follow scikit-learn's ``GaussianMixture``:

==============  =====================  ==========================
covariance      ``covariances`` shape  ``precisions_cholesky``
==============  =====================  ==========================
``'full'``      ``(k, d, d)``          ``(k, d, d)`` upper-triangular
``'tied'``      ``(d, d)``             ``(d, d)`` upper-triangular
``'diag'``      ``(k, d)``             ``(k, d)`` = ``1/sqrt(cov)``
``'spherical'`` ``(k,)``               ``(k,)`` = ``1/sqrt(cov)``
==============  =====================  ==========================

For ``'full'``/``'tied'`` the precision Cholesky factor ``U`` satisfies
``precision = U @ U.T`` and ``U = inv(L).T`` where ``L`` is the lower
Cholesky factor of the covariance.

``sample_weight=None`` always means "every row has weight one".
"""

import numpy as np
import scipy.linalg
import scipy.special
import scipy.stats

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")

#: scikit-learn adds this to every component's weight sum to avoid 0/0.
NK_EPS = 10 * np.finfo(np.float64).eps


def _check_covariance_type(covariance_type):
    if covariance_type not in COVARIANCE_TYPES:
        raise ValueError(f"unknown covariance_type {covariance_type!r}")


def _as_sample_weight(sample_weight, n_samples):
    """Return ``sample_weight`` as a float64 vector (ones when ``None``)."""
    if sample_weight is None:
        return np.ones(n_samples)
    sample_weight = np.asarray(sample_weight, dtype=np.float64)
    assert sample_weight.shape == (n_samples,)
    return sample_weight


def full_covariances(covariances, covariance_type, n_components, n_features):
    """Expand covariances of any type to a stack of full matrices.

    Parameters
    ----------
    covariances : ndarray
        Covariances with scikit-learn's shape for ``covariance_type``.
    covariance_type : {'full', 'tied', 'diag', 'spherical'}
    n_components, n_features : int

    Returns
    -------
    ndarray of shape (n_components, n_features, n_features)
    """
    _check_covariance_type(covariance_type)
    covariances = np.asarray(covariances, dtype=np.float64)
    result = np.empty((n_components, n_features, n_features))
    for k in range(n_components):
        if covariance_type == "full":
            result[k] = covariances[k]
        elif covariance_type == "tied":
            result[k] = covariances
        elif covariance_type == "diag":
            result[k] = np.diag(covariances[k])
        else:
            result[k] = covariances[k] * np.eye(n_features)
    return result


def log_gaussian_prob(X, means, covariances, covariance_type):
    """Log density of every row under every component.

    Parameters
    ----------
    X : ndarray of shape (n, d)
    means : ndarray of shape (k, d)
    covariances : ndarray
        scikit-learn's shape for ``covariance_type``.
    covariance_type : {'full', 'tied', 'diag', 'spherical'}

    Returns
    -------
    ndarray of shape (n, k)
        ``log N(x_i | mu_k, Sigma_k)``.
    """
    X = np.asarray(X, dtype=np.float64)
    means = np.asarray(means, dtype=np.float64)
    n_components, n_features = means.shape
    full = full_covariances(covariances, covariance_type, n_components, n_features)
    log_prob = np.empty((X.shape[0], n_components))
    for k in range(n_components):
        distribution = scipy.stats.multivariate_normal(mean=means[k], cov=full[k])
        log_prob[:, k] = distribution.logpdf(X)
    return log_prob


def precisions_cholesky(covariances, covariance_type):
    """Cholesky factors of the precisions, in scikit-learn's convention.

    Parameters
    ----------
    covariances : ndarray
        scikit-learn's shape for ``covariance_type``.
    covariance_type : {'full', 'tied', 'diag', 'spherical'}

    Returns
    -------
    ndarray
        Same shape as ``covariances``.  For ``'full'``/``'tied'`` each matrix
        is the upper-triangular ``U = inv(cholesky_lower(Sigma)).T``, so that
        ``inv(Sigma) = U @ U.T``; for ``'diag'``/``'spherical'`` it is
        ``1 / sqrt(covariances)``.
    """
    _check_covariance_type(covariance_type)
    covariances = np.asarray(covariances, dtype=np.float64)

    def one_matrix(sigma):
        lower = scipy.linalg.cholesky(sigma, lower=True)
        identity = np.eye(sigma.shape[0])
        return scipy.linalg.solve_triangular(lower, identity, lower=True).T

    if covariance_type == "full":
        return np.stack([one_matrix(sigma) for sigma in covariances])
    if covariance_type == "tied":
        return one_matrix(covariances)
    return 1.0 / np.sqrt(covariances)


def covariances_from_precisions_cholesky(prec_chol, covariance_type):
    """Inverse of :func:`precisions_cholesky`.

    Parameters
    ----------
    prec_chol : ndarray
        Precision Cholesky factors in scikit-learn's convention.
    covariance_type : {'full', 'tied', 'diag', 'spherical'}

    Returns
    -------
    ndarray
        Covariances with the same shape as ``prec_chol``.
    """
    _check_covariance_type(covariance_type)
    prec_chol = np.asarray(prec_chol, dtype=np.float64)

    def one_matrix(upper):
        # Sigma = inv(U @ U.T) = inv(U).T @ inv(U) = L @ L.T with L = inv(U).T
        identity = np.eye(upper.shape[0])
        inv_upper = scipy.linalg.solve_triangular(upper, identity, lower=False)
        lower = inv_upper.T
        return lower @ lower.T

    if covariance_type == "full":
        return np.stack([one_matrix(upper) for upper in prec_chol])
    if covariance_type == "tied":
        return one_matrix(prec_chol)
    return 1.0 / prec_chol**2


def precisions(covariances, covariance_type):
    """Precisions (inverse covariances) with scikit-learn's shapes.

    Parameters
    ----------
    covariances : ndarray
    covariance_type : {'full', 'tied', 'diag', 'spherical'}

    Returns
    -------
    ndarray
        Same shape as ``covariances``.
    """
    _check_covariance_type(covariance_type)
    covariances = np.asarray(covariances, dtype=np.float64)
    if covariance_type == "full":
        return np.stack([np.linalg.inv(sigma) for sigma in covariances])
    if covariance_type == "tied":
        return np.linalg.inv(covariances)
    return 1.0 / covariances


def estep(X, weights, means, covariances, covariance_type):
    """Expectation step.

    Parameters
    ----------
    X : ndarray of shape (n, d)
    weights : ndarray of shape (k,)
    means : ndarray of shape (k, d)
    covariances : ndarray
    covariance_type : {'full', 'tied', 'diag', 'spherical'}

    Returns
    -------
    log_norm : ndarray of shape (n,)
        ``log sum_k w_k N(x_i | k)``, computed with log-sum-exp.
    resp : ndarray of shape (n, k)
        Responsibilities ``exp(log w_k + log N(x_i | k) - log_norm_i)``.
    """
    weighted = np.log(np.asarray(weights, dtype=np.float64)) + log_gaussian_prob(
        X, means, covariances, covariance_type
    )
    log_norm = scipy.special.logsumexp(weighted, axis=1)
    resp = np.exp(weighted - log_norm[:, np.newaxis])
    return log_norm, resp


def sufficient_stats(X, resp, shift, covariance_type, sample_weight=None):
    """Weighted sufficient statistics about a per-component shift.

    Parameters
    ----------
    X : ndarray of shape (n, d)
    resp : ndarray of shape (n, k)
    shift : ndarray of shape (k, d)
        Per-component centre ``c_k``.  For ``'tied'`` all rows must be equal.
    covariance_type : {'full', 'tied', 'diag', 'spherical'}
    sample_weight : ndarray of shape (n,), optional

    Returns
    -------
    dict
        ``S0`` (k,) ``sum_i r_ik``; ``S1`` (k, d) ``sum_i r_ik (x_i - c_k)``;
        ``S2`` the second moment about the shift (full (k, d, d), tied (d, d),
        diag (k, d), spherical (k,)); ``weight`` the total sample weight.
        Here ``r_ik = sample_weight_i * resp_ik``.
    """
    _check_covariance_type(covariance_type)
    X = np.asarray(X, dtype=np.float64)
    resp = np.asarray(resp, dtype=np.float64)
    shift = np.asarray(shift, dtype=np.float64)
    n_samples, n_features = X.shape
    n_components = resp.shape[1]
    assert shift.shape == (n_components, n_features)
    sample_weight = _as_sample_weight(sample_weight, n_samples)
    r = sample_weight[:, np.newaxis] * resp

    S0 = np.zeros(n_components)
    S1 = np.zeros((n_components, n_features))
    for k in range(n_components):
        diff = X - shift[k]
        S0[k] = np.sum(r[:, k])
        S1[k] = np.sum(r[:, k, np.newaxis] * diff, axis=0)

    if covariance_type == "tied":
        assert np.all(shift == shift[0]), "tied statistics need one common shift"
        diff = X - shift[0]
        row_weight = sample_weight * resp.sum(axis=1)
        S2 = np.zeros((n_features, n_features))
        for i in range(n_samples):
            S2 += row_weight[i] * np.outer(diff[i], diff[i])
    elif covariance_type == "full":
        S2 = np.zeros((n_components, n_features, n_features))
        for k in range(n_components):
            diff = X - shift[k]
            for i in range(n_samples):
                S2[k] += r[i, k] * np.outer(diff[i], diff[i])
    elif covariance_type == "diag":
        S2 = np.zeros((n_components, n_features))
        for k in range(n_components):
            diff = X - shift[k]
            S2[k] = np.sum(r[:, k, np.newaxis] * diff**2, axis=0)
    else:
        S2 = np.zeros(n_components)
        for k in range(n_components):
            diff = X - shift[k]
            S2[k] = np.sum(r[:, k] * np.sum(diff**2, axis=1))

    return {"S0": S0, "S1": S1, "S2": S2, "weight": float(np.sum(sample_weight))}


def m_step(X, resp, reg_covar, covariance_type, sample_weight=None):
    """Maximisation step with the textbook weighted formulas.

    Parameters
    ----------
    X : ndarray of shape (n, d)
    resp : ndarray of shape (n, k)
    reg_covar : float
        Added to the diagonal of every covariance (for ``'spherical'`` it is
        added per feature before averaging, as in scikit-learn).
    covariance_type : {'full', 'tied', 'diag', 'spherical'}
    sample_weight : ndarray of shape (n,), optional

    Returns
    -------
    weights : ndarray of shape (k,)
    means : ndarray of shape (k, d)
    covariances : ndarray
        scikit-learn's shape for ``covariance_type``.
    """
    _check_covariance_type(covariance_type)
    X = np.asarray(X, dtype=np.float64)
    resp = np.asarray(resp, dtype=np.float64)
    n_samples, n_features = X.shape
    n_components = resp.shape[1]
    sample_weight = _as_sample_weight(sample_weight, n_samples)
    r = sample_weight[:, np.newaxis] * resp

    nk = r.sum(axis=0) + NK_EPS
    weights = nk / nk.sum()
    means = np.stack([(r[:, k] @ X) / nk[k] for k in range(n_components)])

    # Per-component full covariance without regularisation.
    unregularised = np.zeros((n_components, n_features, n_features))
    for k in range(n_components):
        diff = X - means[k]
        for i in range(n_samples):
            unregularised[k] += r[i, k] * np.outer(diff[i], diff[i])
        unregularised[k] /= nk[k]

    identity = np.eye(n_features)
    if covariance_type == "full":
        covariances = unregularised + reg_covar * identity
    elif covariance_type == "tied":
        pooled = sum(nk[k] * unregularised[k] for k in range(n_components))
        covariances = pooled / nk.sum() + reg_covar * identity
    elif covariance_type == "diag":
        covariances = np.stack(
            [np.diag(unregularised[k]) for k in range(n_components)]
        ) + reg_covar
    else:
        diag = np.stack([np.diag(unregularised[k]) for k in range(n_components)])
        covariances = (diag + reg_covar).mean(axis=1)
    return weights, means, covariances


def mean_log_likelihood(X, weights, means, covariances, covariance_type,
                        sample_weight=None):
    """Sample-weighted mean of ``log p(x_i)`` under the mixture.

    Returns
    -------
    float
    """
    X = np.asarray(X, dtype=np.float64)
    sample_weight = _as_sample_weight(sample_weight, X.shape[0])
    log_norm, _ = estep(X, weights, means, covariances, covariance_type)
    return float(np.sum(sample_weight * log_norm) / np.sum(sample_weight))


def em_step(X, weights, means, covariances, covariance_type, reg_covar,
            sample_weight=None):
    """One EM iteration (E-step followed by M-step).

    Parameters
    ----------
    X : ndarray of shape (n, d)
    weights, means, covariances : ndarray
        Current parameters.
    covariance_type : {'full', 'tied', 'diag', 'spherical'}
    reg_covar : float
    sample_weight : ndarray of shape (n,), optional

    Returns
    -------
    mean_log_likelihood : float
        Sample-weighted mean log-likelihood of the parameters *before* the
        step (this is what scikit-learn reports as ``lower_bound_``).
    weights, means, covariances : ndarray
        Parameters after the step.
    """
    X = np.asarray(X, dtype=np.float64)
    sw = _as_sample_weight(sample_weight, X.shape[0])
    log_norm, resp = estep(X, weights, means, covariances, covariance_type)
    log_likelihood = float(np.sum(sw * log_norm) / np.sum(sw))
    new_weights, new_means, new_covariances = m_step(
        X, resp, reg_covar, covariance_type, sample_weight=sw
    )
    return log_likelihood, new_weights, new_means, new_covariances


def n_parameters(covariance_type, n_components, n_features):
    """Number of free parameters, as scikit-learn counts them.

    Returns
    -------
    int
    """
    _check_covariance_type(covariance_type)
    k, d = n_components, n_features
    covariance_params = {
        "full": k * d * (d + 1) // 2,
        "tied": d * (d + 1) // 2,
        "diag": k * d,
        "spherical": k,
    }[covariance_type]
    mean_params = k * d
    weight_params = k - 1
    return covariance_params + mean_params + weight_params


def bic(loglik_sum, n_params, total_weight):
    """Bayesian information criterion ``-2 log L + p log(n)``."""
    return -2.0 * loglik_sum + n_params * np.log(total_weight)


def aic(loglik_sum, n_params):
    """Akaike information criterion ``-2 log L + 2 p``."""
    return -2.0 * loglik_sum + 2.0 * n_params


# ==========================================================================
# Discrete families: Bernoulli, Binomial, Poisson, Multinomial, Categorical
# ==========================================================================
#
# A discrete mixture is ``params = (weights, theta)``: ``weights`` (K,) sum
# to one and ``theta`` holds the component parameters,
#
# ============  ==========================  ================================
# family        data X                      theta
# ============  ==========================  ================================
# Bernoulli     (n, d) in {0, 1}            p (K, d)
# Binomial      (n, d) counts 0..m_j        p (K, d); ``n_trials`` m, int or (d,)
# Poisson       (n, d) counts >= 0          rates (K, d)
# Multinomial   (n, d) count vectors        p (K, d), rows sum to one
# Categorical   (n, d) codes 0..C_j - 1     list of d arrays (K, C_j)
# ============  ==========================  ================================
#
# Every family offers the same four functions:
#
# * ``<family>_log_joint(X, params)`` (n, K): ``log w_k + log p(x_i | k)``
#   with every normalising constant (binomial coefficients, ``log x!``, the
#   multinomial coefficient), through ``scipy.special.gammaln``;
# * ``<family>_estep(X, params, sample_weight=None)``: responsibilities, the
#   total (sample-weighted) log-likelihood and the sufficient statistics;
# * ``<family>_mstep(stats, alpha=0.0)``: the new ``(weights, theta)``;
# * ``em_<family>(X, params, n_iter, sample_weight=None, alpha=0.0,
#   fixed_weights=False)``: ``n_iter`` EM iterations.
#
# With ``r_ik = sample_weight_i * resp_ik`` the statistics are
# ``S0_k = sum_i r_ik`` and, for the four families whose log-density is linear
# in x, ``S1_kj = sum_i r_ik x_ij``; for Categorical ``counts[j][k, c] =
# sum_i r_ik [x_ij == c]``.  The M-step adds the pseudo-count ``alpha`` to
# every success / category / event count (formulas in each ``_mstep``), keeps
# probabilities inside ``[PROB_FLOOR, 1 - PROB_FLOOR]`` and rates at or above
# ``RATE_FLOOR``, and sets ``w_k = S0_k / sum_l S0_l`` (never smoothed).  A
# component with ``S0_k = 0`` and ``alpha = 0`` has no defined parameters
# (0 / 0 gives NaN); the reference does not hide that.

#: Probabilities are clipped to ``[PROB_FLOOR, 1 - PROB_FLOOR]`` by the M-step.
PROB_FLOOR = 1e-10
#: Poisson rates are clipped to ``>= RATE_FLOOR`` by the M-step.
RATE_FLOOR = 1e-10


def _clip_probabilities(p):
    return np.clip(p, PROB_FLOOR, 1.0 - PROB_FLOOR)


def _weights_from_counts(S0):
    """Mixing weights ``w_k = S0_k / sum_l S0_l`` (no smoothing)."""
    return S0 / np.sum(S0)


def _mixture_log_joint(log_weights, log_prob):
    """Add ``log w_k`` to the component log-densities ``log p(x_i | k)``."""
    return log_prob + log_weights[np.newaxis, :]


def bernoulli_log_joint(X, params):
    """``log w_k + sum_j [x_ij log p_kj + (1 - x_ij) log(1 - p_kj)]``.

    A Bernoulli variable is a Binomial one with a single trial (and
    ``log C(1, x) = 0``), so this is ``binomial_log_joint`` with
    ``n_trials=1``.

    Parameters
    ----------
    X : ndarray of shape (n, d), entries 0 or 1
    params : (weights (K,), p (K, d))

    Returns
    -------
    ndarray of shape (n, K)
    """
    return binomial_log_joint(X, params, n_trials=1)


def binomial_log_joint(X, params, *, n_trials):
    """``log w_k + sum_j [log C(m_j, x_ij) + x_ij log p_kj + (m_j - x_ij) log(1 - p_kj)]``.

    ``log C(m, x) = gammaln(m + 1) - gammaln(x + 1) - gammaln(m - x + 1)``.

    Parameters
    ----------
    X : ndarray of shape (n, d), entries 0..m_j
    params : (weights (K,), p (K, d))
    n_trials : int or ndarray of shape (d,)
        ``m_j``, the number of trials behind column j.

    Returns
    -------
    ndarray of shape (n, K)
    """
    weights, p = params
    X = np.asarray(X, dtype=np.float64)
    m = np.broadcast_to(np.asarray(n_trials, dtype=np.float64), X.shape[1:])
    log_coef = np.sum(
        scipy.special.gammaln(m + 1) - scipy.special.gammaln(X + 1)
        - scipy.special.gammaln(m - X + 1),
        axis=1,
    )
    log_prob = np.empty((X.shape[0], len(weights)))
    for k in range(len(weights)):
        log_prob[:, k] = log_coef + np.sum(
            scipy.special.xlogy(X, p[k]) + scipy.special.xlogy(m - X, 1.0 - p[k]), axis=1
        )
    return _mixture_log_joint(np.log(weights), log_prob)


def poisson_log_joint(X, params):
    """``log w_k + sum_j [x_ij log rate_kj - rate_kj - log(x_ij!)]``.

    ``log(x!) = gammaln(x + 1)``.

    Parameters
    ----------
    X : ndarray of shape (n, d), counts >= 0
    params : (weights (K,), rates (K, d))

    Returns
    -------
    ndarray of shape (n, K)
    """
    weights, rates = params
    X = np.asarray(X, dtype=np.float64)
    log_factorials = np.sum(scipy.special.gammaln(X + 1), axis=1)
    log_prob = np.empty((X.shape[0], len(weights)))
    for k in range(len(weights)):
        log_prob[:, k] = (
            np.sum(scipy.special.xlogy(X, rates[k]) - rates[k], axis=1) - log_factorials
        )
    return _mixture_log_joint(np.log(weights), log_prob)


def multinomial_log_joint(X, params):
    """``log w_k + log(N_i! / prod_j x_ij!) + sum_j x_ij log p_kj``, ``N_i = sum_j x_ij``.

    Parameters
    ----------
    X : ndarray of shape (n, d), counts >= 0
    params : (weights (K,), p (K, d)), rows of p summing to one

    Returns
    -------
    ndarray of shape (n, K)
    """
    weights, p = params
    X = np.asarray(X, dtype=np.float64)
    log_coef = scipy.special.gammaln(X.sum(axis=1) + 1) - np.sum(
        scipy.special.gammaln(X + 1), axis=1
    )
    log_prob = np.empty((X.shape[0], len(weights)))
    for k in range(len(weights)):
        log_prob[:, k] = log_coef + np.sum(scipy.special.xlogy(X, p[k]), axis=1)
    return _mixture_log_joint(np.log(weights), log_prob)


def categorical_log_joint(X, params):
    """``log w_k + sum_j log a_j[k, x_ij]``.

    Parameters
    ----------
    X : ndarray of shape (n, d), integer codes, column j in 0..C_j - 1
    params : (weights (K,), [a_0 (K, C_0), ..., a_{d-1} (K, C_{d-1})])

    Returns
    -------
    ndarray of shape (n, K)
    """
    weights, probs = params
    X = np.asarray(X)
    log_prob = np.zeros((X.shape[0], len(weights)))
    for j, a in enumerate(probs):
        # a[:, X[:, j]] is (K, n): the probability of row i's category in column j.
        log_prob += np.log(a[:, X[:, j]]).T
    return _mixture_log_joint(np.log(weights), log_prob)


def _discrete_estep(log_joint, statistics, X, params, sample_weight):
    """The E-step every discrete family shares.

    ``log_norm_i = logsumexp_k log_joint_ik``, ``resp_ik = exp(log_joint_ik -
    log_norm_i)`` and the total log-likelihood ``sum_i sample_weight_i
    log_norm_i``; ``statistics(X, r, params)`` turns ``r_ik = sample_weight_i
    resp_ik`` into the family's sufficient statistics.

    Returns
    -------
    resp : ndarray of shape (n, K)
    log_likelihood : float
        Total (sample-weighted) log-likelihood.
    stats : dict
    """
    X = np.asarray(X)
    sample_weight = _as_sample_weight(sample_weight, X.shape[0])
    weighted = log_joint(X, params)
    log_norm = scipy.special.logsumexp(weighted, axis=1)
    resp = np.exp(weighted - log_norm[:, np.newaxis])
    r = sample_weight[:, np.newaxis] * resp
    stats = statistics(X, r, params)
    stats["weight"] = float(np.sum(sample_weight))
    return resp, float(np.sum(sample_weight * log_norm)), stats


def _linear_statistics(X, r, params):
    """``S0_k = sum_i r_ik`` and ``S1_kj = sum_i r_ik x_ij``."""
    X = np.asarray(X, dtype=np.float64)
    n_components = r.shape[1]
    S0 = np.array([np.sum(r[:, k]) for k in range(n_components)])
    S1 = np.stack([r[:, k] @ X for k in range(n_components)])
    return {"S0": S0, "S1": S1}


def _categorical_statistics(X, r, params):
    """``S0_k = sum_i r_ik`` and ``counts[j][k, c] = sum_i r_ik [x_ij == c]``."""
    _, probs = params
    counts = []
    for j, a in enumerate(probs):
        n_categories = a.shape[1]
        counts.append(np.stack(
            [r[X[:, j] == c].sum(axis=0) for c in range(n_categories)], axis=1
        ))
    return {"S0": r.sum(axis=0), "counts": counts}


def bernoulli_estep(X, params, sample_weight=None):
    """E-step: ``(resp, total log-likelihood, {'S0', 'S1', 'weight'})``."""
    return _discrete_estep(bernoulli_log_joint, _linear_statistics, X, params, sample_weight)


def binomial_estep(X, params, sample_weight=None, *, n_trials):
    """E-step: ``(resp, total log-likelihood, {'S0', 'S1', 'weight'})``."""
    def log_joint(X, params):
        return binomial_log_joint(X, params, n_trials=n_trials)
    return _discrete_estep(log_joint, _linear_statistics, X, params, sample_weight)


def poisson_estep(X, params, sample_weight=None):
    """E-step: ``(resp, total log-likelihood, {'S0', 'S1', 'weight'})``."""
    return _discrete_estep(poisson_log_joint, _linear_statistics, X, params, sample_weight)


def multinomial_estep(X, params, sample_weight=None):
    """E-step: ``(resp, total log-likelihood, {'S0', 'S1', 'weight'})``."""
    return _discrete_estep(multinomial_log_joint, _linear_statistics, X, params, sample_weight)


def categorical_estep(X, params, sample_weight=None):
    """E-step: ``(resp, total log-likelihood, {'S0', 'counts', 'weight'})``."""
    return _discrete_estep(
        categorical_log_joint, _categorical_statistics, X, params, sample_weight
    )


def bernoulli_mstep(stats, alpha=0.0):
    """``p_kj = (S1_kj + alpha) / (S0_k + 2 alpha)``, clipped; ``w = S0 / sum S0``.

    ``binomial_mstep`` with one trial: the expected trials are ``S0_k``.
    """
    return binomial_mstep(stats, alpha, n_trials=1)


def binomial_mstep(stats, alpha=0.0, *, n_trials):
    """``p_kj = (S1_kj + alpha) / (S0_k m_j + 2 alpha)``, clipped; ``w = S0 / sum S0``.

    ``S1_kj`` are the expected successes and ``S0_k m_j`` the expected trials.
    """
    S0, S1 = stats["S0"], stats["S1"]
    m = np.broadcast_to(np.asarray(n_trials, dtype=np.float64), S1.shape[1:])
    trials = S0[:, np.newaxis] * m[np.newaxis, :]
    p = (S1 + alpha) / (trials + 2.0 * alpha)
    return _weights_from_counts(S0), _clip_probabilities(p)


def poisson_mstep(stats, alpha=0.0):
    """``rate_kj = max((S1_kj + alpha) / (S0_k + alpha), RATE_FLOOR)``; ``w = S0 / sum S0``."""
    S0, S1 = stats["S0"], stats["S1"]
    rates = (S1 + alpha) / (S0[:, np.newaxis] + alpha)
    return _weights_from_counts(S0), np.maximum(rates, RATE_FLOOR)


def multinomial_mstep(stats, alpha=0.0):
    """``p_kj = (S1_kj + alpha) / (sum_l S1_kl + d alpha)``, clipped; ``w = S0 / sum S0``.

    The clip is not followed by a renormalisation: a row may sum to one
    only within ``d * PROB_FLOOR``.
    """
    S0, S1 = stats["S0"], stats["S1"]
    n_features = S1.shape[1]
    p = (S1 + alpha) / (S1.sum(axis=1, keepdims=True) + n_features * alpha)
    return _weights_from_counts(S0), _clip_probabilities(p)


def categorical_mstep(stats, alpha=0.0):
    """``a_j[k, c] = (counts_j[k, c] + alpha) / (N_k + C_j alpha)``, clipped; ``w = S0 / sum S0``.

    ``N_k = sum_c counts_j[k, c]`` (= ``S0_k``).  As for Multinomial, no
    renormalisation after the clip.
    """
    S0 = stats["S0"]
    probs = []
    for counts in stats["counts"]:
        n_categories = counts.shape[1]
        a = (counts + alpha) / (counts.sum(axis=1, keepdims=True) + n_categories * alpha)
        probs.append(_clip_probabilities(a))
    return _weights_from_counts(S0), probs


def _discrete_em(estep, mstep, X, params, n_iter, sample_weight, alpha, fixed_weights):
    """The EM loop every discrete family shares.

    Each iteration runs ``estep(X, params, sample_weight)``, records the
    (weighted) mean log-likelihood per row of the parameters at the start of
    the iteration (scikit-learn's ``lower_bounds_``), then ``mstep(stats,
    alpha)``; ``fixed_weights=True`` keeps the given mixing weights.

    Returns
    -------
    params : (weights, theta) after ``n_iter`` M-steps
    mean_log_likelihoods : list of ``n_iter`` floats
    """
    weights, theta = params
    weights = np.asarray(weights, dtype=np.float64)
    mean_log_likelihoods = []
    for _ in range(n_iter):
        _, log_likelihood, stats = estep(X, (weights, theta), sample_weight)
        mean_log_likelihoods.append(log_likelihood / stats["weight"])
        new_weights, theta = mstep(stats, alpha)
        if not fixed_weights:
            weights = new_weights
    return (weights, theta), mean_log_likelihoods


def em_bernoulli(X, params, n_iter, sample_weight=None, alpha=0.0, fixed_weights=False):
    """``n_iter`` EM iterations of a Bernoulli mixture; see ``_discrete_em``."""
    return _discrete_em(bernoulli_estep, bernoulli_mstep, X, params, n_iter,
                        sample_weight, alpha, fixed_weights)


def em_binomial(X, params, n_iter, sample_weight=None, alpha=0.0, fixed_weights=False,
                *, n_trials):
    """``n_iter`` EM iterations of a Binomial mixture; see ``_discrete_em``."""
    def estep(X, params, sample_weight):
        return binomial_estep(X, params, sample_weight, n_trials=n_trials)

    def mstep(stats, alpha):
        return binomial_mstep(stats, alpha, n_trials=n_trials)

    return _discrete_em(estep, mstep, X, params, n_iter, sample_weight, alpha, fixed_weights)


def em_poisson(X, params, n_iter, sample_weight=None, alpha=0.0, fixed_weights=False):
    """``n_iter`` EM iterations of a Poisson mixture; see ``_discrete_em``."""
    return _discrete_em(poisson_estep, poisson_mstep, X, params, n_iter,
                        sample_weight, alpha, fixed_weights)


def em_multinomial(X, params, n_iter, sample_weight=None, alpha=0.0, fixed_weights=False):
    """``n_iter`` EM iterations of a Multinomial mixture; see ``_discrete_em``."""
    return _discrete_em(multinomial_estep, multinomial_mstep, X, params, n_iter,
                        sample_weight, alpha, fixed_weights)


def em_categorical(X, params, n_iter, sample_weight=None, alpha=0.0, fixed_weights=False):
    """``n_iter`` EM iterations of a Categorical (latent class) mixture; see ``_discrete_em``."""
    return _discrete_em(categorical_estep, categorical_mstep, X, params, n_iter,
                        sample_weight, alpha, fixed_weights)


def discrete_log_prior(family, theta, alpha):
    """The log-prior (up to a constant) whose MAP estimate the M-step gives.

    With ``alpha > 0`` EM maximises ``log-likelihood + discrete_log_prior``
    (and that sum never decreases), not the log-likelihood alone:

    * Bernoulli, Binomial: ``alpha sum_kj [log p_kj + log(1 - p_kj)]``
      (a Beta(alpha + 1, alpha + 1) prior);
    * Multinomial: ``alpha sum_kj log p_kj``; Categorical: ``alpha
      sum_jkc log a_j[k, c]`` (Dirichlet(alpha + 1));
    * Poisson: ``alpha sum_kj [log rate_kj - rate_kj]`` (Gamma with shape
      ``alpha + 1`` and rate ``alpha``).

    The mixing weights have no prior.

    Returns
    -------
    float
    """
    if family in ("bernoulli", "binomial"):
        return float(alpha * np.sum(np.log(theta) + np.log1p(-theta)))
    if family == "multinomial":
        return float(alpha * np.sum(np.log(theta)))
    if family == "categorical":
        return float(alpha * sum(np.sum(np.log(a)) for a in theta))
    if family == "poisson":
        return float(alpha * np.sum(np.log(theta) - theta))
    raise ValueError(f"unknown family {family!r}")


# ==========================================================================
# Incomplete data: EM with entries missing at random (NaN = missing)
# ==========================================================================
#
# Ghahramani, Z. and Jordan, M. I. (1994), "Supervised learning from
# incomplete data via an EM approach", NIPS 6; Little, R. J. A. and Rubin,
# D. B., Statistical Analysis with Missing Data, chapters 7 and 8.
#
# ``X`` is a float array in which ``NaN`` marks a missing entry; the data are
# assumed missing at random, so the observed-data likelihood of row i is
# ``sum_k w_k p(x_io | k)`` with ``o`` the row's observed columns (the missing
# ones are integrated out).  A row with every entry missing carries no
# information and is refused with ``ValueError`` everywhere below.
#
# Gaussian mixtures.  For row i, observed set o, missing set m and component
# k (always through the component's FULL covariance from
# ``full_covariances``, so the four covariance types share one code path):
#
# * ``log N(x_o; mu_o, Sigma_oo)`` from an explicit Cholesky factor of
#   ``Sigma_oo`` (never through a precision matrix);
# * the conditional mean ``xhat_m = mu_m + Sigma_mo Sigma_oo^-1 (x_o - mu_o)``
#   (``xhat_o = x_o``);
# * the conditional covariance ``C = Sigma_mm - Sigma_mo Sigma_oo^-1 Sigma_om``
#   in the mm block of a d x d zero matrix.
#
# The M-step uses the expected complete-data sufficient statistics:
# ``Sigma_k = sum_i r_ik [(xhat_ik - mu_k)(xhat_ik - mu_k)^T + C_ik] / nk``;
# leaving ``C`` out (impute, then fit) underestimates the covariance.
#
# Discrete families.  A missing entry's factor in ``p(x_i | k)`` is one (it is
# skipped), and the statistics of column j use only the rows where column j
# is observed: besides ``S0`` (for the weights) and ``S1`` / ``counts`` (in
# which missing entries count zero) the E-step returns ``S0_observed`` (K, d),
# ``S0_observed[k, j] = sum_{i: x_ij observed} r_ik``, and the M-steps use it
# where the complete-data M-steps use ``S0_k``.


def _missing_mask(X):
    """``(X as float64, missing mask)``; refuses rows with no observed entry."""
    X = np.asarray(X, dtype=np.float64)
    missing = np.isnan(X)
    all_missing = np.flatnonzero(missing.all(axis=1))
    if all_missing.size:
        raise ValueError(
            f"row {all_missing[0]} has every entry missing "
            f"({all_missing.size} such rows); drop it"
        )
    return X, missing


def _conditional_gaussian(x, missing, mean, cov):
    """Observed-part log density and conditional moments of one row.

    Parameters
    ----------
    x : ndarray of shape (d,), NaN where missing
    missing : ndarray of shape (d,), bool
    mean : ndarray of shape (d,)
    cov : ndarray of shape (d, d), full

    Returns
    -------
    log_density : float
        ``log N(x_o; mu_o, Sigma_oo)``.
    xhat : ndarray of shape (d,)
        ``x_o`` on o, ``mu_m + Sigma_mo Sigma_oo^-1 (x_o - mu_o)`` on m.
    cond_cov : ndarray of shape (d, d)
        ``Sigma_mm - Sigma_mo Sigma_oo^-1 Sigma_om`` in the mm block, zero
        elsewhere.
    """
    o = np.flatnonzero(~missing)
    m = np.flatnonzero(missing)
    n_features = x.shape[0]
    # Sigma_oo = L L^T; z = L^-1 (x_o - mu_o), so the Mahalanobis term is z.z.
    lower = scipy.linalg.cholesky(cov[np.ix_(o, o)], lower=True)
    z = scipy.linalg.solve_triangular(lower, x[o] - mean[o], lower=True)
    log_det = 2.0 * np.sum(np.log(np.diag(lower)))
    log_density = -0.5 * (o.size * np.log(2.0 * np.pi) + log_det + z @ z)

    xhat = x.copy()
    cond_cov = np.zeros((n_features, n_features))
    if m.size:
        # B = L^-1 Sigma_om, so Sigma_mo Sigma_oo^-1 = B^T L^-1 and
        # Sigma_mo Sigma_oo^-1 Sigma_om = B^T B.
        B = scipy.linalg.solve_triangular(lower, cov[np.ix_(o, m)], lower=True)
        xhat[m] = mean[m] + B.T @ z
        cond_cov[np.ix_(m, m)] = cov[np.ix_(m, m)] - B.T @ B
    return float(log_density), xhat, cond_cov


def estep_missing(X, weights, means, covariances, covariance_type):
    """Expectation step on data with missing entries (NaN).

    Parameters
    ----------
    X : ndarray of shape (n, d), NaN where missing
    weights : ndarray of shape (k,)
    means : ndarray of shape (k, d)
    covariances : ndarray
        scikit-learn's shape for ``covariance_type``.
    covariance_type : {'full', 'tied', 'diag', 'spherical'}

    Returns
    -------
    log_norm : ndarray of shape (n,)
        ``log sum_k w_k N(x_io | mu_ko, Sigma_koo)`` (log-sum-exp).
    resp : ndarray of shape (n, k)
    xhat : ndarray of shape (n, k, d)
        ``E[x_i | x_io, component k]``: the observed entries themselves and
        the conditional mean of the missing ones.
    cond_cov : ndarray of shape (n, k, d, d)
        ``Cov[x_i | x_io, component k]``: zero except the mm block.

    Raises
    ------
    ValueError
        If a row has every entry missing.
    """
    X, missing = _missing_mask(X)
    means = np.asarray(means, dtype=np.float64)
    n_samples, n_features = X.shape
    n_components = means.shape[0]
    full = full_covariances(covariances, covariance_type, n_components, n_features)
    log_weights = np.log(np.asarray(weights, dtype=np.float64))

    weighted = np.empty((n_samples, n_components))
    xhat = np.empty((n_samples, n_components, n_features))
    cond_cov = np.empty((n_samples, n_components, n_features, n_features))
    for i in range(n_samples):
        for k in range(n_components):
            log_density, xhat[i, k], cond_cov[i, k] = _conditional_gaussian(
                X[i], missing[i], means[k], full[k]
            )
            weighted[i, k] = log_weights[k] + log_density
    log_norm = scipy.special.logsumexp(weighted, axis=1)
    resp = np.exp(weighted - log_norm[:, np.newaxis])
    return log_norm, resp, xhat, cond_cov


def _regularised_covariances(unregularised, nk, reg_covar, covariance_type):
    """From per-component full matrices to ``covariance_type``, as ``m_step`` does.

    full: ``+ reg I``; tied: pooled with weights ``nk / sum nk``, ``+ reg I``;
    diag: the diagonals ``+ reg``; spherical: the mean over features of
    ``diag + reg``.
    """
    n_components, n_features, _ = unregularised.shape
    identity = np.eye(n_features)
    if covariance_type == "full":
        return unregularised + reg_covar * identity
    if covariance_type == "tied":
        pooled = sum(nk[k] * unregularised[k] for k in range(n_components))
        return pooled / nk.sum() + reg_covar * identity
    diag = np.stack([np.diag(unregularised[k]) for k in range(n_components)])
    if covariance_type == "diag":
        return diag + reg_covar
    return (diag + reg_covar).mean(axis=1)


def m_step_missing(xhat, cond_cov, resp, reg_covar, covariance_type, sample_weight=None):
    """Maximisation step from the expected complete-data statistics.

    With ``r_ik = sample_weight_i * resp_ik``: ``nk = sum_i r_ik + NK_EPS``,
    ``w = nk / sum nk``, ``mu_k = sum_i r_ik xhat_ik / nk``,
    ``Sigma_k = sum_i r_ik [(xhat_ik - mu_k)(xhat_ik - mu_k)^T + C_ik] / nk``,
    then regularised per ``covariance_type`` exactly as ``m_step`` does.

    Parameters
    ----------
    xhat : ndarray of shape (n, k, d)
    cond_cov : ndarray of shape (n, k, d, d)
    resp : ndarray of shape (n, k)
    reg_covar : float
    covariance_type : {'full', 'tied', 'diag', 'spherical'}
    sample_weight : ndarray of shape (n,), optional

    Returns
    -------
    weights : ndarray of shape (k,)
    means : ndarray of shape (k, d)
    covariances : ndarray
        scikit-learn's shape for ``covariance_type``.
    """
    _check_covariance_type(covariance_type)
    xhat = np.asarray(xhat, dtype=np.float64)
    cond_cov = np.asarray(cond_cov, dtype=np.float64)
    resp = np.asarray(resp, dtype=np.float64)
    n_samples, n_components, n_features = xhat.shape
    sample_weight = _as_sample_weight(sample_weight, n_samples)
    r = sample_weight[:, np.newaxis] * resp

    nk = r.sum(axis=0) + NK_EPS
    weights = nk / nk.sum()
    means = np.stack([(r[:, k] @ xhat[:, k]) / nk[k] for k in range(n_components)])

    unregularised = np.zeros((n_components, n_features, n_features))
    for k in range(n_components):
        diff = xhat[:, k] - means[k]
        for i in range(n_samples):
            unregularised[k] += r[i, k] * (np.outer(diff[i], diff[i]) + cond_cov[i, k])
        unregularised[k] /= nk[k]

    covariances = _regularised_covariances(unregularised, nk, reg_covar, covariance_type)
    return weights, means, covariances


def em_step_missing(X, weights, means, covariances, covariance_type, reg_covar,
                    sample_weight=None):
    """One EM iteration on data with missing entries; see ``em_step``.

    Returns
    -------
    mean_log_likelihood : float
        Sample-weighted mean observed-data log-likelihood of the parameters
        *before* the step.
    weights, means, covariances : ndarray
        Parameters after the step.
    """
    X = np.asarray(X, dtype=np.float64)
    sw = _as_sample_weight(sample_weight, X.shape[0])
    log_norm, resp, xhat, cond_cov = estep_missing(
        X, weights, means, covariances, covariance_type
    )
    log_likelihood = float(np.sum(sw * log_norm) / np.sum(sw))
    new_weights, new_means, new_covariances = m_step_missing(
        xhat, cond_cov, resp, reg_covar, covariance_type, sample_weight=sw
    )
    return log_likelihood, new_weights, new_means, new_covariances


def em_missing(X, params, n_iter, covariance_type, reg_covar, sample_weight=None):
    """``n_iter`` EM iterations of a Gaussian mixture on incomplete data.

    Parameters
    ----------
    X : ndarray of shape (n, d), NaN where missing
    params : (weights, means, covariances)
    n_iter : int
    covariance_type : {'full', 'tied', 'diag', 'spherical'}
    reg_covar : float
    sample_weight : ndarray of shape (n,), optional

    Returns
    -------
    params : (weights, means, covariances) after ``n_iter`` M-steps
    mean_log_likelihoods : list of ``n_iter`` floats
        Observed-data mean log-likelihood before each M-step.
    """
    weights, means, covariances = params
    mean_log_likelihoods = []
    for _ in range(n_iter):
        log_likelihood, weights, means, covariances = em_step_missing(
            X, weights, means, covariances, covariance_type, reg_covar, sample_weight
        )
        mean_log_likelihoods.append(log_likelihood)
    return (weights, means, covariances), mean_log_likelihoods


def impute_missing(X, weights, means, covariances, covariance_type):
    """Replace each missing entry by its conditional mean under the mixture.

    ``x_im <- sum_k r_ik xhat_ikm`` with the responsibilities given the
    observed entries; observed entries are returned unchanged.

    Returns
    -------
    ndarray of shape (n, d)
    """
    X, missing = _missing_mask(X)
    _, resp, xhat, _ = estep_missing(X, weights, means, covariances, covariance_type)
    imputed = X.copy()
    for i in range(X.shape[0]):
        m = missing[i]
        imputed[i, m] = resp[i] @ xhat[i][:, m]
    return imputed


def monotone_normal_mle(X):
    """Closed-form MLE of one multivariate normal under monotone missingness.

    The pattern must be monotone in the given column order: if column j is
    missing in a row, every later column is missing too.  The columns fall
    into blocks by where the rows stop being observed.  The factored
    likelihood (Anderson 1957; Little & Rubin section 7.2) then gives:

    * the first block (observed in every row): sample mean and covariance
      with divisor n;
    * each later block: the least-squares regression (with intercept) on all
      earlier columns over the rows where the block is observed, residual
      covariance with divisor the number of those rows;
    * the joint parameters rebuilt from the regressions (the sweep operator
      run backwards): with ``y = a + B^T x_prev + e``, ``mu_y = a + B^T
      mu_prev``, ``Cov(x_prev, y) = Sigma_prev B`` and ``Cov(y) = Sigma_e +
      B^T Sigma_prev B``.

    Unweighted, no regularisation.

    Parameters
    ----------
    X : ndarray of shape (n, d), NaN where missing

    Returns
    -------
    mean : ndarray of shape (d,)
    covariance : ndarray of shape (d, d)

    Raises
    ------
    ValueError
        If the pattern is not monotone, a row or a column is entirely
        missing, or a regression is not identified.
    """
    X, missing = _missing_mask(X)
    n_samples, n_features = X.shape
    n_observed = n_features - missing.sum(axis=1)
    prefix = np.arange(n_features)[np.newaxis, :] < n_observed[:, np.newaxis]
    if not np.array_equal(~missing, prefix):
        raise ValueError("the missingness pattern is not monotone in this column order")
    ends = np.unique(n_observed)
    if ends[-1] < n_features:
        raise ValueError(f"column {ends[-1]} is never observed")

    mean = np.zeros(n_features)
    covariance = np.zeros((n_features, n_features))
    first = ends[0]
    block = X[:, :first]
    mean[:first] = block.mean(axis=0)
    diff = block - mean[:first]
    covariance[:first, :first] = diff.T @ diff / n_samples

    start = first
    for end in ends[1:]:
        rows = n_observed >= end
        design = np.column_stack([np.ones(rows.sum()), X[rows, :start]])
        if np.linalg.matrix_rank(design) < design.shape[1]:
            raise ValueError(
                f"columns {start}..{end - 1}: the regression on the earlier "
                "columns is not identified"
            )
        y = X[rows, start:end]
        coef, _, _, _ = np.linalg.lstsq(design, y, rcond=None)
        intercept, slopes = coef[0], coef[1:]        # slopes: (start, end - start)
        residual = y - design @ coef
        residual_cov = residual.T @ residual / rows.sum()

        prev_cov = covariance[:start, :start]
        mean[start:end] = intercept + slopes.T @ mean[:start]
        covariance[:start, start:end] = prev_cov @ slopes
        covariance[start:end, :start] = covariance[:start, start:end].T
        covariance[start:end, start:end] = residual_cov + slopes.T @ prev_cov @ slopes
        start = end
    return mean, covariance


# --- discrete families with missing entries --------------------------------


def binomial_log_joint_missing(X, params, *, n_trials):
    """``binomial_log_joint`` with the missing entries' terms left out.

    Parameters
    ----------
    X : float ndarray of shape (n, d), entries 0..m_j or NaN
    params : (weights (K,), p (K, d))
    n_trials : int or ndarray of shape (d,)

    Returns
    -------
    ndarray of shape (n, K)
    """
    weights, p = params
    X, missing = _missing_mask(X)
    X0 = np.where(missing, 0.0, X)
    m = np.broadcast_to(np.asarray(n_trials, dtype=np.float64), X.shape[1:])
    log_coef = (scipy.special.gammaln(m + 1) - scipy.special.gammaln(X0 + 1)
                - scipy.special.gammaln(m - X0 + 1))
    log_prob = np.empty((X.shape[0], len(weights)))
    for k in range(len(weights)):
        terms = (log_coef + scipy.special.xlogy(X0, p[k])
                 + scipy.special.xlogy(m - X0, 1.0 - p[k]))
        log_prob[:, k] = np.sum(np.where(missing, 0.0, terms), axis=1)
    return _mixture_log_joint(np.log(weights), log_prob)


def bernoulli_log_joint_missing(X, params):
    """``binomial_log_joint_missing`` with ``n_trials=1``."""
    return binomial_log_joint_missing(X, params, n_trials=1)


def poisson_log_joint_missing(X, params):
    """``poisson_log_joint`` with the missing entries' terms left out."""
    weights, rates = params
    X, missing = _missing_mask(X)
    X0 = np.where(missing, 0.0, X)
    log_prob = np.empty((X.shape[0], len(weights)))
    for k in range(len(weights)):
        terms = scipy.special.xlogy(X0, rates[k]) - rates[k] - scipy.special.gammaln(X0 + 1)
        log_prob[:, k] = np.sum(np.where(missing, 0.0, terms), axis=1)
    return _mixture_log_joint(np.log(weights), log_prob)


def categorical_log_joint_missing(X, params):
    """``categorical_log_joint`` with the missing entries' terms left out.

    ``X`` holds the integer codes as floats, NaN where missing.
    """
    weights, probs = params
    X, missing = _missing_mask(X)
    codes = np.where(missing, 0.0, X).astype(np.intp)
    log_prob = np.zeros((X.shape[0], len(weights)))
    for j, a in enumerate(probs):
        log_a = np.log(a[:, codes[:, j]]).T                 # (n, K)
        log_prob += np.where(missing[:, j, np.newaxis], 0.0, log_a)
    return _mixture_log_joint(np.log(weights), log_prob)


def _observed_weight(X, r):
    """``S0_observed[k, j] = sum_{i: x_ij observed} r_ik``, shape (K, d)."""
    observed = ~np.isnan(np.asarray(X, dtype=np.float64))
    return np.stack([r[:, k] @ observed for k in range(r.shape[1])])


def _linear_statistics_missing(X, r, params):
    """``S0_k = sum_i r_ik``, ``S1_kj = sum_{i: x_ij observed} r_ik x_ij``, ``S0_observed``."""
    X = np.asarray(X, dtype=np.float64)
    X0 = np.where(np.isnan(X), 0.0, X)
    stats = _linear_statistics(X0, r, params)
    stats["S0_observed"] = _observed_weight(X, r)
    return stats


def _categorical_statistics_missing(X, r, params):
    """``S0``, ``counts[j][k, c] = sum_i r_ik [x_ij == c]`` and ``S0_observed``.

    A NaN equals no code, so a missing entry counts in no category.
    """
    X = np.asarray(X, dtype=np.float64)
    stats = _categorical_statistics(X, r, params)
    stats["S0_observed"] = _observed_weight(X, r)
    return stats


def bernoulli_estep_missing(X, params, sample_weight=None):
    """E-step: ``(resp, total log-likelihood, {'S0', 'S1', 'S0_observed', 'weight'})``."""
    return _discrete_estep(bernoulli_log_joint_missing, _linear_statistics_missing,
                           X, params, sample_weight)


def binomial_estep_missing(X, params, sample_weight=None, *, n_trials):
    """E-step: ``(resp, total log-likelihood, {'S0', 'S1', 'S0_observed', 'weight'})``."""
    def log_joint(X, params):
        return binomial_log_joint_missing(X, params, n_trials=n_trials)
    return _discrete_estep(log_joint, _linear_statistics_missing, X, params, sample_weight)


def poisson_estep_missing(X, params, sample_weight=None):
    """E-step: ``(resp, total log-likelihood, {'S0', 'S1', 'S0_observed', 'weight'})``."""
    return _discrete_estep(poisson_log_joint_missing, _linear_statistics_missing,
                           X, params, sample_weight)


def categorical_estep_missing(X, params, sample_weight=None):
    """E-step: ``(resp, total log-likelihood, {'S0', 'counts', 'S0_observed', 'weight'})``."""
    return _discrete_estep(categorical_log_joint_missing, _categorical_statistics_missing,
                           X, params, sample_weight)


def bernoulli_mstep_missing(stats, alpha=0.0):
    """``p_kj = (S1_kj + alpha) / (S0_observed_kj + 2 alpha)``, clipped; ``w = S0 / sum S0``."""
    return binomial_mstep_missing(stats, alpha, n_trials=1)


def binomial_mstep_missing(stats, alpha=0.0, *, n_trials):
    """``p_kj = (S1_kj + alpha) / (S0_observed_kj m_j + 2 alpha)``, clipped; ``w = S0 / sum S0``."""
    S0, S1, observed = stats["S0"], stats["S1"], stats["S0_observed"]
    m = np.broadcast_to(np.asarray(n_trials, dtype=np.float64), S1.shape[1:])
    trials = observed * m[np.newaxis, :]
    p = (S1 + alpha) / (trials + 2.0 * alpha)
    return _weights_from_counts(S0), _clip_probabilities(p)


def poisson_mstep_missing(stats, alpha=0.0):
    """``rate_kj = max((S1_kj + alpha) / (S0_observed_kj + alpha), RATE_FLOOR)``.

    ``w = S0 / sum S0``.
    """
    S0, S1, observed = stats["S0"], stats["S1"], stats["S0_observed"]
    rates = (S1 + alpha) / (observed + alpha)
    return _weights_from_counts(S0), np.maximum(rates, RATE_FLOOR)


def categorical_mstep_missing(stats, alpha=0.0):
    """``a_j[k, c] = (counts_j[k, c] + alpha) / (S0_observed_kj + C_j alpha)``, clipped.

    ``w = S0 / sum S0``; no renormalisation after the clip.
    """
    S0, observed = stats["S0"], stats["S0_observed"]
    probs = []
    for j, counts in enumerate(stats["counts"]):
        n_categories = counts.shape[1]
        a = (counts + alpha) / (observed[:, j, np.newaxis] + n_categories * alpha)
        probs.append(_clip_probabilities(a))
    return _weights_from_counts(S0), probs


def em_bernoulli_missing(X, params, n_iter, sample_weight=None, alpha=0.0,
                         fixed_weights=False):
    """``n_iter`` EM iterations of a Bernoulli mixture on incomplete data."""
    return _discrete_em(bernoulli_estep_missing, bernoulli_mstep_missing, X, params,
                        n_iter, sample_weight, alpha, fixed_weights)


def em_binomial_missing(X, params, n_iter, sample_weight=None, alpha=0.0,
                        fixed_weights=False, *, n_trials):
    """``n_iter`` EM iterations of a Binomial mixture on incomplete data."""
    def estep(X, params, sample_weight):
        return binomial_estep_missing(X, params, sample_weight, n_trials=n_trials)

    def mstep(stats, alpha):
        return binomial_mstep_missing(stats, alpha, n_trials=n_trials)

    return _discrete_em(estep, mstep, X, params, n_iter, sample_weight, alpha, fixed_weights)


def em_poisson_missing(X, params, n_iter, sample_weight=None, alpha=0.0,
                       fixed_weights=False):
    """``n_iter`` EM iterations of a Poisson mixture on incomplete data."""
    return _discrete_em(poisson_estep_missing, poisson_mstep_missing, X, params,
                        n_iter, sample_weight, alpha, fixed_weights)


def em_categorical_missing(X, params, n_iter, sample_weight=None, alpha=0.0,
                           fixed_weights=False):
    """``n_iter`` EM iterations of a Categorical mixture on incomplete data."""
    return _discrete_em(categorical_estep_missing, categorical_mstep_missing, X, params,
                        n_iter, sample_weight, alpha, fixed_weights)


# ----------------------------------------------------------------------
# Multinomial counts with missing cells: the observed counts given their
# own total, x_o ~ Mult(N_o, p_o / s_o) with s_o = sum_{j in o} p_j
# ----------------------------------------------------------------------


def multinomial_log_joint_missing(X, params):
    """``log w_k + log(N_o! / prod_{j in o} x_ij!) + sum_{j in o} x_ij
    log(p_kj / s_ko)`` per row, one row and one component at a time."""
    weights, p = params
    X = np.asarray(X, dtype=np.float64)
    out = np.empty((X.shape[0], len(weights)))
    for i, row in enumerate(X):
        o = ~np.isnan(row)
        if not o.any():
            raise ValueError(f"row {i} has no observed value")
        x = row[o]
        coef = scipy.special.gammaln(x.sum() + 1) - scipy.special.gammaln(x + 1).sum()
        for k in range(len(weights)):
            q = p[k, o] / p[k, o].sum()
            out[i, k] = np.log(weights[k]) + coef + np.sum(x * np.log(q))
    return out


def _multinomial_statistics_missing(X, r, params):
    """``S0_k = sum_i r_ik``; ``S1_kj = sum_i r_ik x_ij``, a missing count
    at its expectation ``N_o p_kj / s_ko`` (the Poisson-with-free-rate EM)."""
    _, p = params
    X = np.asarray(X, dtype=np.float64)
    K = r.shape[1]
    S1 = np.zeros((K, X.shape[1]))
    for i, row in enumerate(X):
        o = ~np.isnan(row)
        total = row[o].sum()
        for k in range(K):
            filled = np.where(o, np.nan_to_num(row), total * p[k] / p[k, o].sum())
            S1[k] += r[i, k] * filled
    return {"S0": r.sum(axis=0), "S1": S1}


def multinomial_estep_missing(X, params, sample_weight=None):
    """E-step: ``(resp, total log-likelihood, {'S0', 'S1', 'weight'})``."""
    return _discrete_estep(multinomial_log_joint_missing, _multinomial_statistics_missing,
                           X, params, sample_weight)


def em_multinomial_missing(X, params, n_iter, sample_weight=None, alpha=0.0,
                           fixed_weights=False):
    """``n_iter`` EM iterations of a Multinomial mixture on incomplete data
    (the complete-data M-step on the filled statistics)."""
    return _discrete_em(multinomial_estep_missing, multinomial_mstep, X, params, n_iter,
                        sample_weight, alpha, fixed_weights)


# ----------------------------------------------------------------------
# Hidden Markov models: forward-backward and Viterbi in log space, one
# sequence at a time, from the emission log-densities logB (T, K)
# ----------------------------------------------------------------------


def hmm_forward_backward(logB, startprob, transmat):
    """``(log-likelihood, posteriors (T, K), expected transition counts
    (K, K))`` of one sequence, in log space with logsumexp."""
    logB = np.asarray(logB, dtype=np.float64)
    T, K = logB.shape
    with np.errstate(divide="ignore"):
        log_pi = np.log(startprob)
        log_A = np.log(transmat)
    log_alpha = np.empty((T, K))
    log_beta = np.zeros((T, K))
    log_alpha[0] = log_pi + logB[0]
    for t in range(1, T):
        for j in range(K):
            log_alpha[t, j] = scipy.special.logsumexp(log_alpha[t - 1] + log_A[:, j]) + logB[t, j]
    for t in range(T - 2, -1, -1):
        for i in range(K):
            log_beta[t, i] = scipy.special.logsumexp(log_A[i] + logB[t + 1] + log_beta[t + 1])
    loglik = scipy.special.logsumexp(log_alpha[-1])
    posteriors = np.exp(log_alpha + log_beta - loglik)
    xi = np.zeros((K, K))
    for t in range(1, T):
        xi += np.exp(log_alpha[t - 1][:, None] + log_A + logB[t][None, :]
                     + log_beta[t][None, :] - loglik)
    return float(loglik), posteriors, xi


def hmm_viterbi(logB, startprob, transmat):
    """``(log-probability of the best path, the path)`` of one sequence."""
    logB = np.asarray(logB, dtype=np.float64)
    T, K = logB.shape
    with np.errstate(divide="ignore"):
        log_A = np.log(transmat)
        delta = np.log(startprob) + logB[0]
    back = np.zeros((T, K), dtype=int)
    for t in range(1, T):
        scores = delta[:, None] + log_A
        back[t] = np.argmax(scores, axis=0)
        delta = scores[back[t], np.arange(K)] + logB[t]
    path = [int(np.argmax(delta))]
    for t in range(T - 1, 0, -1):
        path.append(int(back[t, path[-1]]))
    return float(np.max(delta)), np.array(path[::-1])


def hmm_brute_force(logB, startprob, transmat):
    """``(log-likelihood, best path's log-probability, best path)`` by
    enumerating every state path (K**T of them: tiny problems only)."""
    import itertools

    logB = np.asarray(logB, dtype=np.float64)
    T, K = logB.shape
    with np.errstate(divide="ignore"):
        log_pi, log_A = np.log(startprob), np.log(transmat)
    scores, paths = [], []
    for path in itertools.product(range(K), repeat=T):
        s = log_pi[path[0]] + logB[0, path[0]]
        for t in range(1, T):
            s += log_A[path[t - 1], path[t]] + logB[t, path[t]]
        scores.append(s)
        paths.append(path)
    best = int(np.argmax(scores))
    return float(scipy.special.logsumexp(scores)), float(scores[best]), np.array(paths[best])


# ----------------------------------------------------------------------
# hidden Markov models: one Baum-Welch iteration, frame by frame
# ----------------------------------------------------------------------


def hmm_estep(logB, lengths, startprob, transmat, seq_weight=None):
    """``(weighted log-likelihood, posteriors (n, K), start counts, transition
    counts)`` over sequences, from :func:`hmm_forward_backward`."""
    K = logB.shape[1]
    seq_weight = np.ones(len(lengths)) if seq_weight is None else np.asarray(seq_weight, float)
    loglik, starts, trans = 0.0, np.zeros(K), np.zeros((K, K))
    posteriors = []
    t0 = 0
    for w, T in zip(seq_weight, lengths):
        ll, post, xi = hmm_forward_backward(logB[t0:t0 + T], startprob, transmat)
        loglik += w * ll
        starts += w * post[0]
        trans += w * xi
        posteriors.append(post)
        t0 += T
    return loglik, np.vstack(posteriors), starts, trans


def hmm_gaussian_emissions(X, means, covariances):
    """Per frame and state: ``log N(x_o; mu_o, Sigma_oo)`` (0 for a frame
    with nothing observed), ``E[x | x_o, k]`` (n, K, d) and ``Cov[x | x_o,
    k]`` (n, K, d, d); ``covariances`` full (K, d, d)."""
    X = np.asarray(X, dtype=np.float64)
    n, d = X.shape
    K = means.shape[0]
    logB = np.zeros((n, K))
    xhat = np.zeros((n, K, d))
    cond = np.zeros((n, K, d, d))
    for i in range(n):
        miss = np.isnan(X[i])
        for k in range(K):
            if miss.all():
                xhat[i, k] = means[k]
                cond[i, k] = covariances[k]
                continue
            logB[i, k], xhat[i, k], cond[i, k] = _conditional_gaussian(
                X[i], miss, means[k], covariances[k])
    return logB, xhat, cond


def hmm_gaussian_mstep(X, post, xhat, cond, means, covariance_type, *, means_prior=0.0,
                       means_weight=0.0, covars_prior=1e-2, covars_weight=1.0,
                       row_weight=None):
    """hmmlearn's MAP update of means and covariances (compact form), from the
    posteriors and each frame's conditional moments; a frame with nothing
    observed adds nothing.  Returns ``(means, covars)``."""
    X = np.asarray(X, dtype=np.float64)
    seen = ~np.isnan(X).all(axis=1)
    g = post * (1.0 if row_weight is None else np.asarray(row_weight)[:, None])
    g = g * seen[:, None]
    n_k = g.sum(axis=0)
    K, d = means.shape
    obs = np.einsum("nk,nkd->kd", g, xhat)
    new_means = (means_weight * means_prior + obs) / (means_weight + n_k[:, None])
    scatter = np.zeros((K, d, d))
    for k in range(K):
        diff = xhat[:, k] - new_means[k]
        for i in range(X.shape[0]):
            scatter[k] += g[i, k] * (np.outer(diff[i], diff[i]) + cond[i, k])
    md = np.broadcast_to(new_means - means_prior, (K, d))
    if covariance_type in ("diag", "spherical"):
        c_n = means_weight * md**2 + np.stack([np.diag(s) for s in scatter])
        cov = (covars_prior + c_n) / np.maximum(max(covars_weight - 1, 0) + n_k[:, None], 1e-5)
        return new_means, cov.mean(axis=1) if covariance_type == "spherical" else cov
    c_n = np.stack([means_weight * np.outer(md[k], md[k]) + scatter[k] for k in range(K)])
    cvw = max(covars_weight - d, 0)
    if covariance_type == "full":
        return new_means, (covars_prior + c_n) / (cvw + n_k[:, None, None])
    return new_means, (covars_prior + c_n.sum(axis=0)) / (cvw + n_k.sum())


def hmm_chain_mstep(startprob, transmat, starts, trans, startprob_prior=1.0,
                    transmat_prior=1.0):
    """hmmlearn's Dirichlet MAP update of the start and transition
    probabilities, zeros kept."""
    pi = np.where(startprob == 0, 0.0, np.maximum(startprob_prior - 1 + starts, 0))
    A = np.where(transmat == 0, 0.0, np.maximum(transmat_prior - 1 + trans, 0))
    return pi / pi.sum(), A / A.sum(axis=1, keepdims=True)


# ---------------------------------------------------------------------------
# Variational Bayesian Gaussian mixture (Bishop 2006, section 10.2; Blei &
# Jordan 2006 for the stick-breaking weights), in scikit-learn's storage:
# ``covariances`` is W_k^-1 / nu_k (the expected covariance), ``dof`` nu_k,
# ``beta`` the means' precision factors, ``conc`` the Dirichlet
# concentrations (a pair of Beta parameter vectors for the process).
# ---------------------------------------------------------------------------


def vb_expected_log_pi(conc, prior_type):
    if prior_type == "dirichlet_process":
        a, b = conc
        log_v = scipy.special.digamma(a) - scipy.special.digamma(a + b)
        log_1mv = scipy.special.digamma(b) - scipy.special.digamma(a + b)
        return np.array([log_v[k] + log_1mv[:k].sum() for k in range(len(a))])
    return scipy.special.digamma(conc) - scipy.special.digamma(conc.sum())


def vb_log_rho(X, conc, beta, means, dof, covariances, covariance_type, prior_type):
    """log rho_nk = E[log pi_k] + 1/2 E[log |Lambda_k|] - d/2 log(2 pi)
    - d / (2 beta_k) - nu_k / 2 (x_n - m_k)^T W_k (x_n - m_k), straight from
    Bishop's (10.64)-(10.66), one row and component at a time."""
    X = np.asarray(X, dtype=np.float64)
    K, d = means.shape
    cov = full_covariances(covariances, covariance_type, K, d)
    nu = np.broadcast_to(np.asarray(dof, dtype=np.float64), (K,))
    e_log_pi = vb_expected_log_pi(conc, prior_type)
    out = np.empty((X.shape[0], K))
    for k in range(K):
        W = np.linalg.inv(nu[k] * cov[k])
        e_log_det = (sum(scipy.special.digamma((nu[k] - i) / 2) for i in range(d))
                     + d * np.log(2) + np.linalg.slogdet(W)[1])
        for n in range(X.shape[0]):
            diff = X[n] - means[k]
            out[n, k] = (e_log_pi[k] + 0.5 * e_log_det - 0.5 * d * np.log(2 * np.pi)
                         - 0.5 * d / beta[k] - 0.5 * nu[k] * diff @ W @ diff)
    return out


def vb_update(X, resp, covariance_type, prior_type, alpha0, beta0, m0, nu0, psi0, reg_covar):
    """The variational M-step from responsibilities: Bishop's (10.58),
    (10.60)-(10.63) (scikit-learn's tied and diag/spherical forms, its
    10 eps on nk and reg_covar on the scatter).  Returns (conc, beta,
    means, dof, covariances)."""
    X = np.asarray(X, dtype=np.float64)
    n, d = X.shape
    K = resp.shape[1]
    nk = resp.sum(axis=0) + 10 * np.finfo(np.float64).eps
    xbar = (resp.T @ X) / nk[:, None]
    S = np.empty((K, d, d))
    for k in range(K):
        diff = X - xbar[k]
        S[k] = (resp[:, k, None] * diff).T @ diff / nk[k] + reg_covar * np.eye(d)
    if prior_type == "dirichlet_process":
        conc = (1 + nk, alpha0 + np.array([nk[k + 1:].sum() for k in range(K)]))
    else:
        conc = alpha0 + nk
    beta = beta0 + nk
    means = (beta0 * m0 + nk[:, None] * xbar) / beta[:, None]
    if covariance_type == "tied":  # one Wishart: the pooled scatter, nu = nu0 + n / K
        pooled = sum(nk[k] * S[k] for k in range(K)) / nk.sum()
        dof = nu0 + nk.sum() / K
        W_inv = psi0 + pooled * nk.sum() / K + beta0 / K * sum(
            nk[k] / beta[k] * np.outer(xbar[k] - m0, xbar[k] - m0) for k in range(K))
        return conc, beta, means, dof, W_inv / dof
    dof = nu0 + nk
    cov = []
    for k in range(K):
        diff = xbar[k] - m0
        spread = nk[k] * S[k] + beta0 * nk[k] / beta[k] * np.outer(diff, diff)
        if covariance_type == "full":
            W_inv = psi0 + spread
        elif covariance_type == "diag":  # psi0 a vector: the diagonal alone
            W_inv = psi0 + np.diag(spread)
        else:  # spherical: psi0 a number, the mean of the diagonal
            W_inv = psi0 + np.mean(np.diag(spread))
        cov.append(W_inv / dof[k])
    return conc, beta, means, dof, np.array(cov)
