"""Sufficient statistics of a Gaussian mixture and the M-step.

Every training mode forms :class:`GaussianStats` with the fused kernels and
turns them into parameters with :func:`m_step`.  Statistics are shifted: with
``c_k`` the shift of component k,

    S0[k] = sum_i w_i r_ik
    S1[k] = sum_i w_i r_ik (x_i - c_k)
    S2    = full:      (K, d, d) sum_i w_i r_ik (x_i - c_k)(x_i - c_k)^T
            tied:      (d, d)    sum_i w_i (sum_k r_ik) (x_i - c)(x_i - c)^T,
                                 one common shift c (all rows of ``shift``)
            diag:      (K, d)    sum_i w_i r_ik (x_i - c_k)**2
            spherical: (K,)      sum_i w_i r_ik ||x_i - c_k||**2

so that ``mu_k = c_k + S1[k] / S0[k]`` and the covariance is
``S2 / S0 - (S1 / S0)(S1 / S0)^T``, exact for any shift and free of the
cancellation that raw moments suffer far from the origin.  Statistics are
additive over row blocks, which is what batch, out-of-core, online and
distributed EM are built on.
"""

import functools
import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from scipy import linalg

from ._kernels.linalg import _precision_cholesky as _precision_cholesky_kernel
from ._small import SMALL_FACTOR_WORK
from ._small import precision_cholesky as _precision_cholesky_small

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")

_EPS = 10 * np.finfo(np.float64).eps
_LOG_2PI = math.log(2 * math.pi)


def _precision_cholesky(cov, out):
    """The M-step's factorisation (``_kernels.linalg._precision_cholesky``):
    tiny stacks in plain Python, bitwise the same and with nothing to
    compile (see :mod:`fastem._small`)."""
    K, d, _ = cov.shape
    if K * d**3 <= SMALL_FACTOR_WORK:
        return _precision_cholesky_small(cov, out)
    return _precision_cholesky_kernel(cov, out)


def n_parameters(n_components, covariance_type, n_features):
    """Free parameters of a Gaussian mixture: weights, means, covariances."""
    k, d = n_components, n_features
    cov = {"full": k * d * (d + 1) // 2, "diag": k * d,
           "tied": d * (d + 1) // 2, "spherical": k}[covariance_type]
    return int(cov + k * d + k - 1)


def bic_aic(loglik, weight, n_params):
    """scikit-learn's criteria (lower is better) from the total log-likelihood
    and the total sample weight: ``(-2 log L + p log n, -2 log L + 2 p)``."""
    return -2.0 * loglik + n_params * math.log(weight), -2.0 * loglik + 2.0 * n_params


def unscaled_totals(exponent, *totals):
    """Weighted sums computed with the weights scaled by ``2**-exponent``
    (:func:`fastem._validation.scaled_weights`), scaled back exactly; a
    ValueError if one exceeds float64 (weights near 1e308 on many rows)."""
    try:
        return tuple(math.ldexp(t, exponent) for t in totals)
    except OverflowError:
        raise ValueError(
            "The weighted sums of X (log-likelihood, total sample_weight) are beyond "
            f"the range of float64 with these weights (2**{exponent} times "
            f"{', '.join(f'{t:.6g}' for t in totals)}), so the criteria cannot be "
            "computed. Divide sample_weight by a constant (BIC and AIC depend on the "
            "total weight, which counts the rows)."
        ) from None


def covariance_shape(covariance_type, n_components, n_features):
    """scikit-learn's shape of ``covariances_`` (and of ``precisions_`` and
    ``precisions_cholesky_``) for a covariance type; ``S2`` has it too."""
    return {
        "full": (n_components, n_features, n_features),
        "tied": (n_features, n_features),
        "diag": (n_components, n_features),
        "spherical": (n_components,),
    }[covariance_type]


def stats_vector_length(covariance_type, n_components, n_features):
    """Numbers in :meth:`GaussianStats.to_vector`: S0, S1, S2, loglik, weight."""
    K, d = n_components, n_features
    return K + K * d + math.prod(covariance_shape(covariance_type, K, d)) + 2


@dataclass
class GaussianStats:
    """Shifted float64 sufficient statistics (see the module docstring).

    ``loglik`` is sum_i w_i log p(x_i) under the parameters the statistics
    were computed with, ``weight`` is sum_i w_i.
    """

    covariance_type: str
    shift: np.ndarray
    S0: np.ndarray
    S1: np.ndarray
    S2: np.ndarray
    loglik: float
    weight: float

    def _check_compatible(self, other):
        if self.covariance_type != other.covariance_type:
            raise ValueError(
                "Cannot combine statistics of covariance types "
                f"{self.covariance_type!r} and {other.covariance_type!r}."
            )
        if not np.array_equal(self.shift, other.shift):
            raise ValueError("Cannot combine statistics taken around different shifts.")

    def __add__(self, other):
        self._check_compatible(other)
        return GaussianStats(
            self.covariance_type,
            self.shift,
            self.S0 + other.S0,
            self.S1 + other.S1,
            self.S2 + other.S2,
            self.loglik + other.loglik,
            self.weight + other.weight,
        )

    def scaled(self, factor):
        """Every additive statistic multiplied by ``factor``."""
        return GaussianStats(
            self.covariance_type,
            self.shift,
            self.S0 * factor,
            self.S1 * factor,
            self.S2 * factor,
            self.loglik * factor,
            self.weight * factor,
        )

    def to_vector(self):
        """The additive statistics in one float64 vector
        ``[S0, S1, S2, loglik, weight]`` (what a Dask chunk task returns)."""
        return np.concatenate([self.S0.ravel(), self.S1.ravel(), self.S2.ravel(),
                               [self.loglik, self.weight]]).astype(np.float64, copy=False)

    @classmethod
    def from_vector(cls, covariance_type, shift, vec, n_components, n_features):
        """The inverse of :meth:`to_vector`, for statistics around ``shift``."""
        K, d = n_components, n_features
        s2 = covariance_shape(covariance_type, K, d)
        sizes = np.cumsum([K, K * d, int(np.prod(s2))])
        length = stats_vector_length(covariance_type, K, d)
        if vec.shape != (length,):
            raise ValueError(f"A statistics vector of {length} numbers was expected "
                             f"for {covariance_type!r}, K={K}, d={d}; got {vec.shape}.")
        return cls(covariance_type, np.asarray(shift, dtype=np.float64), vec[:K].copy(),
                   vec[sizes[0]:sizes[1]].reshape(K, d),
                   vec[sizes[1]:sizes[2]].reshape(s2), float(vec[-2]), float(vec[-1]))

    def blend(self, other, eta):
        """``(1 - eta) * self + eta * other`` (stepwise EM)."""
        return self.scaled(1.0 - eta) + other.scaled(eta)


class GaussianParams(NamedTuple):
    """Parameters in scikit-learn's conventions (float64)."""

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    precisions_cholesky: np.ndarray


class CollapseError(ValueError):
    """A component's covariance could not be factorised."""


def collapse_message(component, covariance_type, dtype=np.float64):
    where = "the tied covariance" if component is None else f"component {component}"
    msg = (
        "Fitting the mixture model failed because some components have "
        "ill-defined empirical covariance (for instance caused by singleton "
        f"or collapsed samples): the Cholesky factorisation of {where} "
        f"({covariance_type!r} covariance) failed. Try to decrease the number of "
        "components, increase reg_covar, or scale the input data."
    )
    if np.dtype(dtype) == np.float32:
        msg += (
            " The numerical accuracy can also be improved by passing float64"
            " data instead of float32."
        )
    return msg


def precisions_cholesky_from_covariances(covariances, covariance_type, dtype=np.float64):
    """scikit-learn's ``precisions_cholesky_`` from covariances.

    Raises :class:`CollapseError` naming the component whose covariance is
    not positive definite.
    """
    if covariance_type in ("full", "tied"):
        stack = covariances if covariance_type == "full" else covariances[None]
        stack = np.ascontiguousarray(stack, dtype=np.float64)
        out = np.empty_like(stack)
        failed = _precision_cholesky(stack, out)
        if failed >= 0:
            component = failed if covariance_type == "full" else None
            raise CollapseError(collapse_message(component, covariance_type, dtype))
        return out if covariance_type == "full" else out[0]
    bad = np.flatnonzero(~(covariances.reshape(covariances.shape[0], -1) > 0).all(axis=1))
    if bad.size:
        raise CollapseError(collapse_message(int(bad[0]), covariance_type, dtype))
    return 1.0 / np.sqrt(covariances)


def factor_covariances(covariances, covariance_type):
    """``precisions_cholesky_`` and the list of components whose covariance
    is not positive definite (their factors are left as NaN; for 'tied' the
    list is ``[None]``, the shared covariance).  Never raises."""
    K = covariances.shape[0] if covariance_type != "tied" else None
    if covariance_type in ("full", "tied"):
        stack = covariances if covariance_type == "full" else covariances[None]
        stack = np.ascontiguousarray(stack, dtype=np.float64)
        out = np.full_like(stack, np.nan)
        bad, start = [], 0
        while start < stack.shape[0]:
            failed = _precision_cholesky(stack[start:], out[start:])
            if failed < 0:
                break
            bad.append(start + failed)
            out[start + failed] = np.nan
            start += failed + 1
        if covariance_type == "tied":
            return out[0], ([None] if bad else [])
        return out, bad
    good = (covariances > 0) & (covariances < np.inf)  # NaN fails both
    if good.all():  # the usual case, without errstate's cost in every iteration
        return 1.0 / np.sqrt(covariances), []
    ok = good.reshape(K, -1).all(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 1.0 / np.sqrt(np.where(covariances > 0, covariances, np.nan))
    return out, [int(k) for k in np.flatnonzero(~ok)]


def precisions_from_cholesky(prec_chol, covariance_type):
    """``precisions_`` from ``precisions_cholesky_``."""
    if covariance_type == "full":
        return np.einsum("kab,kcb->kac", prec_chol, prec_chol)
    if covariance_type == "tied":
        return prec_chol @ prec_chol.T
    return prec_chol**2


def cholesky_from_precisions(precisions, covariance_type):
    """Upper U with U U^T = precision (the flip trick of scikit-learn #26415)."""
    if covariance_type == "full":
        return np.stack(
            [np.flip(linalg.cholesky(np.flip(p), lower=True)) for p in precisions]
        )
    if covariance_type == "tied":
        return np.flip(linalg.cholesky(np.flip(precisions), lower=True))
    return np.sqrt(precisions)


def covariances_from_precisions(precisions, covariance_type):
    if covariance_type == "full":
        return np.stack([linalg.inv(p) for p in precisions])
    if covariance_type == "tied":
        return linalg.inv(precisions)
    return 1.0 / precisions


def log_det_cholesky(prec_chol, covariance_type, n_features):
    """log det of the precision's Cholesky factor, per component (or scalar)."""
    if covariance_type == "full":
        return np.log(np.diagonal(prec_chol, axis1=1, axis2=2)).sum(axis=1)
    if covariance_type == "tied":
        return float(np.log(np.diag(prec_chol)).sum())
    if covariance_type == "diag":
        return np.log(prec_chol).sum(axis=1)
    return n_features * np.log(prec_chol)


def log_base(params, covariance_type):
    """Per component: log weight + log det(prec_chol) - d/2 log(2 pi)."""
    d = params.means.shape[1]
    if params.weights.min() > 0:
        logw = np.log(params.weights)
    else:
        with np.errstate(divide="ignore"):
            logw = np.log(params.weights)
    return logw + log_det_cholesky(params.precisions_cholesky, covariance_type, d) - 0.5 * d * _LOG_2PI


def nearest_components(X, params, covariance_type):
    """For rows so far from every component that all their log-densities
    underflow to -inf (the squared Mahalanobis distances q_k overflow): the
    component of the largest log-density ``log w_k + base_k - q_k / 2``,
    computed in log space.  Every q_k there exceeds ~1e308, against which the
    other terms are negligible, so it is the component of the smallest
    ``log q_k`` (ties: the larger ``log w_k + base_k``); components of weight 0
    are never chosen.  Slow and exact; meant for the few rows the kernel
    reports at -inf."""
    X = np.asarray(X, dtype=np.float64)
    means = np.asarray(params.means, dtype=np.float64)
    prec = np.asarray(params.precisions_cholesky, dtype=np.float64)
    K = means.shape[0]
    base = log_base(params, covariance_type)
    log_q = np.empty((X.shape[0], K))
    for k in range(K):
        factor = prec if covariance_type == "tied" else prec[k]
        # scaled so that nothing overflows: q = (a u)^2 |y|^2
        a = max(float(np.abs(X).max()), float(np.abs(means[k]).max())) or 1.0
        u = float(np.abs(factor).max()) or 1.0
        diff = X / a - means[k] / a
        y = diff @ (factor / u) if np.ndim(factor) == 2 else diff * (factor / u)
        with np.errstate(divide="ignore"):
            log_q[:, k] = 2.0 * (np.log(a) + np.log(u)) + np.log((y * y).sum(axis=1))
    log_q[:, base == -np.inf] = np.inf
    return _argmin_lex(log_q, -base)  # smallest log q, then largest log w + base


def _argmin_lex(primary, secondary):
    """Per row, the column of the smallest ``primary``; ties broken by the
    smallest ``secondary`` (one value per column), then the first column."""
    best = primary.min(axis=1, keepdims=True)
    tied = primary == best
    key = np.where(tied, secondary[None, :], np.inf)
    return key.argmin(axis=1)


def m_step(stats, reg_covar, dtype=np.float64):
    """Closed-form M-step: :class:`GaussianParams` from :class:`GaussianStats`.

    Follows scikit-learn's estimates exactly (``nk = S0 + 10 eps``, weights
    normalised, ``reg_covar`` added to the diagonal; spherical is the mean of
    the diagonal), but from shifted statistics.  Raises :class:`CollapseError`
    (a ValueError naming the component) when a covariance is not positive
    definite.
    """
    weights, means, cov = m_step_moments(stats, reg_covar)
    prec_chol = precisions_cholesky_from_covariances(cov, stats.covariance_type, dtype)
    return GaussianParams(weights, means, cov, prec_chol)


@functools.lru_cache(maxsize=32)
def _upper_masks(d):
    """(on and above the diagonal, strictly above) boolean masks, (d, d)."""
    upper = np.triu(np.ones((d, d), dtype=bool))
    strict = np.triu(np.ones((d, d), dtype=bool), 1)
    upper.setflags(write=False)
    strict.setflags(write=False)
    return upper, strict


def _symmetric_from_upper(S2):
    """The symmetric matrices (last two axes) whose upper triangle is S2's
    (what the kernels fill); as np.triu(S2) + np.triu(S2, 1).T, without
    building the masks in every iteration."""
    upper, strict = _upper_masks(S2.shape[-1])
    return np.where(upper, S2, 0.0) + np.swapaxes(np.where(strict, S2, 0.0), -1, -2)


def m_step_moments(stats, reg_covar):
    """The M-step's weights, means and (regularised) covariances, before any
    factorisation."""
    ct = stats.covariance_type
    nk = stats.S0 + _EPS
    weights = nk / nk.sum()
    delta = stats.S1 / nk[:, None]  # mu - c
    means = stats.shift + delta
    S1, S2 = stats.S1, stats.S2
    d = means.shape[1]
    if ct == "full":
        S2 = _symmetric_from_upper(S2)
        # sum r (x-mu)(x-mu)^T = S2 - delta S1^T - S1 delta^T + S0 delta delta^T
        outer = np.einsum("ka,kb->kab", delta, S1)
        scatter = S2 - outer - outer.transpose(0, 2, 1) + np.einsum(
            "k,ka,kb->kab", stats.S0, delta, delta
        )
        cov = scatter / nk[:, None, None]
        cov[:, np.arange(d), np.arange(d)] += reg_covar
    elif ct == "tied":
        S2 = _symmetric_from_upper(S2)
        outer = delta.T @ S1
        scatter = S2 - outer - outer.T + (delta.T * stats.S0) @ delta
        cov = scatter / nk.sum()
        cov[np.arange(d), np.arange(d)] += reg_covar
    elif ct == "diag":
        scatter = S2 - 2 * delta * S1 + stats.S0[:, None] * delta**2
        cov = scatter / nk[:, None] + reg_covar
    elif ct == "spherical":
        scatter = S2 - (2 * delta * S1).sum(axis=1) + stats.S0 * (delta**2).sum(axis=1)
        cov = scatter / (nk * d) + reg_covar
    else:  # pragma: no cover - dispatch is validated upstream
        raise ValueError(f"unknown covariance_type {ct!r}")
    return weights, means, cov


def default_shift(params, covariance_type):
    """The shift for the next E-step: the current means (tied: their mean)."""
    if covariance_type == "tied":
        center = params.weights @ params.means
        return np.ascontiguousarray(np.broadcast_to(center, params.means.shape))
    return np.ascontiguousarray(params.means, dtype=np.float64)
