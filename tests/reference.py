"""Slow, readable reference implementation of EM for Gaussian mixtures.

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
