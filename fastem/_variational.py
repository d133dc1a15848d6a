"""Variational Bayes for the Gaussian mixture: the maths of
:class:`fastem.BayesianGaussianMixture` (no @njit here).

Everything is scikit-learn's ``BayesianGaussianMixture`` (Bishop 2006,
ch. 10; Blei & Jordan 2006 for the Dirichlet process), written on the
shifted sufficient statistics S0, S1, S2 of :mod:`fastem._stats`:

* The E-step's log-weights ``log rho_nk = E[log pi_k] + 1/2 E[log |Lambda_k|]
  - d/2 log(2 pi) - d / (2 beta_k) - nu_k / 2 (x - m_k)^T W_k (x - m_k)`` are
  the Gaussian kernel's log-densities with the precision factor
  ``precisions_cholesky_`` (the Cholesky factor of nu_k W_k, what
  scikit-learn stores) and one constant per component: the kernel's
  ``log w_k`` is :func:`log_weights`.  Those constants may be far below 0,
  so the kernel is given ``exp(log w_k - max_j log w_j)`` and the maximum is
  added back to the log-normaliser (:func:`kernel_params`).
* The M-step (:func:`update`) takes nk, xk, Sk from the statistics as
  :func:`fastem._stats.m_step_moments` does for EM, then scikit-learn's
  Dirichlet (or stick-breaking Beta), Gaussian and Wishart updates.
* The lower bound (:func:`lower_bound`) needs ``sum_n r_nk log r_nk`` at the
  E-step's parameters, which the statistics give without an (n, K) array:
  ``sum_nk r log r = sum_k base_k S0_k - 1/2 sum_k tr(P_k M_k) - sum_n log
  sum_k rho_nk``, with ``M_k = sum_n r_nk (x_n - m_k)(x_n - m_k)^T`` from the
  shifted S1, S2 (:func:`resp_entropy`).

Sample weights count rows (a weight of 2 is the row twice), so the
statistics enter the updates in units of rows.
"""

import math
from typing import NamedTuple

import numpy as np
from scipy.special import betaln, digamma, gammaln

from ._stats import (
    GaussianParams,
    _symmetric_from_upper,
    log_base,
    log_det_cholesky,
    m_step_moments,
    precisions_cholesky_from_covariances,
    precisions_from_cholesky,
)

PRIOR_TYPES = ("dirichlet_process", "dirichlet_distribution")
_EPS = 10 * np.finfo(np.float64).eps
_LOG_2PI = math.log(2 * math.pi)


class BayesParams(NamedTuple):
    """The variational posterior, in scikit-learn's attributes: Dirichlet
    concentrations (the process: a pair of Beta parameters per component),
    the means' precision factors beta, the means, the Wishart degrees of
    freedom nu (tied: one), the covariances ``W^-1 / nu`` and the Cholesky
    factors of their inverses."""

    weight_concentration: object
    mean_precision: np.ndarray
    means: np.ndarray
    degrees_of_freedom: object
    covariances: np.ndarray
    precisions_cholesky: np.ndarray


class Prior(NamedTuple):
    """The prior's values as fitted (scikit-learn's ``*_prior_``)."""

    prior_type: str
    weight_concentration: float
    mean_precision: float
    mean: np.ndarray
    degrees_of_freedom: float
    covariance: object


def weights_from_concentration(conc, prior_type):
    """scikit-learn's ``weights_``: the expected weights, normalised."""
    if prior_type == "dirichlet_process":
        a, b = conc
        total = a + b
        w = a / total * np.hstack((1.0, np.cumprod(b / total)[:-1]))
        return w / w.sum()
    return conc / conc.sum()


def expected_log_pi(conc, prior_type):
    """E[log pi_k] under the variational Dirichlet (or stick-breaking)."""
    if prior_type == "dirichlet_process":
        a, b = conc
        ds = digamma(a + b)
        return digamma(a) - ds + np.hstack((0.0, np.cumsum(digamma(b) - ds)[:-1]))
    return digamma(conc) - digamma(conc.sum())


def _log_lambda(dof, d):
    """d log 2 + sum_i digamma((nu - i) / 2): E[log |Lambda|] - log |W|."""
    dof = np.asarray(dof, dtype=np.float64)
    return d * math.log(2.0) + digamma(0.5 * (dof[..., None] - np.arange(d))).sum(axis=-1)


def log_weights(p, prior_type, d):
    """The kernel's log w_k: E[log pi_k] - d/2 log nu_k + 1/2 (log_lambda_k
    - d / beta_k), so that log w_k + log det(precisions_cholesky_k) - d/2
    log(2 pi) - 1/2 ||precisions_cholesky_k^T (x - m_k)||^2 is log rho_k."""
    dof = np.asarray(p.degrees_of_freedom, dtype=np.float64)
    return (expected_log_pi(p.weight_concentration, prior_type) - 0.5 * d * np.log(dof)
            + 0.5 * (_log_lambda(dof, d) - d / p.mean_precision))


def kernel_params(p, prior_type):
    """``(GaussianParams, offset)`` for the Gaussian kernels: weights
    ``exp(log w - offset)`` (offset the largest log w), whose log-densities
    plus ``offset`` are log rho."""
    d = p.means.shape[1]
    logw = log_weights(p, prior_type, d)
    offset = float(logw.max())
    return GaussianParams(np.exp(logw - offset), p.means, p.covariances,
                          p.precisions_cholesky), offset


def kernel_shift(p, prior_type, covariance_type):
    """The statistics' shift: the means (tied: their mean under the
    posterior weights)."""
    if covariance_type == "tied":
        w = weights_from_concentration(p.weight_concentration, prior_type)
        return np.ascontiguousarray(np.broadcast_to(w @ p.means, p.means.shape))
    return np.ascontiguousarray(p.means, dtype=np.float64)


def resp_entropy(stats, params, offset, covariance_type):
    """``sum_n w_n sum_k r_nk log r_nk`` from the statistics the kernel made
    with ``params`` (:func:`kernel_params`, the constant ``offset``; its
    ``loglik`` is ``sum_n w_n log sum_k rho_nk``).  The per-component
    constants are the kernel's own (:func:`fastem._stats.log_base`)."""
    ct = covariance_type
    with np.errstate(divide="ignore"):  # a weight that underflowed: S0 = 0 there
        base = log_base(params, ct) + offset
    S0, S1 = stats.S0, stats.S1
    delta = params.means - stats.shift  # x - m = (x - c) - delta
    prec = precisions_from_cholesky(params.precisions_cholesky, ct)
    if ct in ("full", "tied"):
        S2 = _symmetric_from_upper(stats.S2)
        outer = np.einsum("ka,kb->kab", delta, S1)
        spread = np.einsum("k,ka,kb->kab", S0, delta, delta) - outer - outer.transpose(0, 2, 1)
        if ct == "full":
            quad = np.einsum("kab,kab->k", prec, S2 + spread)
        else:  # one precision: the pooled scatter
            quad = np.array([np.sum(prec * (S2 + spread.sum(axis=0)))])
    elif ct == "diag":
        quad = (prec * (stats.S2 - 2.0 * delta * S1 + S0[:, None] * delta ** 2)).sum(axis=1)
    else:
        quad = prec * (stats.S2 - 2.0 * (delta * S1).sum(axis=1) + S0 * (delta ** 2).sum(axis=1))
    used = S0 > 0  # a component the kernel gave no weight (rho below 1e-308 of the best)
    return float(np.sum(base[used] * S0[used]) - 0.5 * np.sum(quad) - stats.loglik)


def update(stats, prior, reg_covar, covariance_type, dtype=np.float64, recovery=None,
           iteration=0):
    """The variational M-step: :class:`BayesParams` from statistics (in
    units of rows); scikit-learn's ``_estimate_weights``, ``_estimate_means``
    and ``_estimate_wishart_*``.  Where a covariance cannot be factorised,
    raises :class:`fastem._stats.CollapseError`, or with a ``recovery``
    (:class:`fastem._collapse.Recovery`) adds a ridge to it and records the
    event."""
    ct = covariance_type
    K = stats.S0.shape[0]
    _, xk, sk = m_step_moments(stats, reg_covar)
    nk = stats.S0 + _EPS
    if prior.prior_type == "dirichlet_process":
        conc = (1.0 + nk, prior.weight_concentration
                + np.hstack((np.cumsum(nk[::-1])[-2::-1], 0.0)))
    else:
        conc = prior.weight_concentration + nk
    beta = prior.mean_precision + nk
    means = (prior.mean_precision * prior.mean + nk[:, None] * xk) / beta[:, None]
    diff = xk - prior.mean
    ratio = prior.mean_precision / beta
    if ct == "full":
        dof = prior.degrees_of_freedom + nk
        cov = prior.covariance + nk[:, None, None] * (
            sk + ratio[:, None, None] * np.einsum("ka,kb->kab", diff, diff))
        cov /= dof[:, None, None]
    elif ct == "tied":
        dof = prior.degrees_of_freedom + nk.sum() / K
        cov = (prior.covariance + sk * nk.sum() / K
               + prior.mean_precision / K * np.dot((nk / beta) * diff.T, diff))
        cov /= dof
    elif ct == "diag":
        dof = prior.degrees_of_freedom + nk
        cov = prior.covariance + nk[:, None] * (sk + ratio[:, None] * diff ** 2)
        cov /= dof[:, None]
    else:
        dof = prior.degrees_of_freedom + nk
        cov = prior.covariance + nk * (sk + ratio * np.mean(diff ** 2, axis=1))
        cov /= dof
    if recovery is None:
        prec_chol = precisions_cholesky_from_covariances(cov, ct, dtype)
    else:
        cov, prec_chol = recovery.repaired(cov, iteration)
    return BayesParams(conc, beta, means, dof, cov, prec_chol)


def _log_wishart_norm(dof, log_det_chol, d):
    dof = np.asarray(dof, dtype=np.float64)
    return -(dof * log_det_chol + dof * d * 0.5 * math.log(2.0)
             + gammaln(0.5 * (dof[..., None] - np.arange(d))).sum(axis=-1))


def lower_bound(rlogr, p, prior_type, covariance_type):
    """scikit-learn's lower bound (its constant terms left out) of the
    parameters ``p`` after an M-step whose E-step had ``sum r log r =
    rlogr``."""
    K, d = p.means.shape
    log_det = log_det_cholesky(p.precisions_cholesky, covariance_type, d) \
        - 0.5 * d * np.log(p.degrees_of_freedom)
    wishart = _log_wishart_norm(p.degrees_of_freedom, log_det, d)
    log_wishart = K * float(wishart) if covariance_type == "tied" else float(np.sum(wishart))
    if prior_type == "dirichlet_process":
        log_norm_weight = -float(np.sum(betaln(*p.weight_concentration)))
    else:
        conc = p.weight_concentration
        log_norm_weight = float(gammaln(conc.sum()) - np.sum(gammaln(conc)))
    return (-rlogr - log_wishart - log_norm_weight
            - 0.5 * d * float(np.sum(np.log(p.mean_precision))))
