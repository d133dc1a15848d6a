"""Emission families of the hidden Markov models: the mixture families'
kernels, with the state posteriors as the responsibilities.

A hidden Markov model's E-step needs two things from its emission family:
every frame's log-density under every state (``log_densities``: the fused
E-step kernel with statistics off, writing its per-component log-joints
``out_logprob`` at unit weights) and the statistics of the frames weighted
by the posteriors of forward-backward (``statistics``: the same kernel given
``resp_in``).  Nothing here computes a density or a statistic itself; the
M-steps (hmmlearn's priors) are in :mod:`fastem._hmm_mstep`.

==================  ===========================================================
emission            statistics (additive, float64)
==================  ===========================================================
:class:`Gaussian`   :class:`fastem._stats.GaussianStats` shifted by the current
                    means (tied: one centre); spherical runs the diagonal
                    kernel, so its second moments stay per feature
:class:`Linear`     ``(S0 (K,), S1 (K, d))``: Poisson rates (log x! added to
                    the log-densities)
:class:`Symbols`    ``(S0 (K,), counts (K, n_symbols))``: one categorical
                    column
==================  ===========================================================
"""

import numpy as np

from ._discrete_estep import CategoricalWorkspace, LinearWorkspace
from ._estep import EStepWorkspace
from ._stats import GaussianParams, precisions_cholesky_from_covariances


class Gaussian:
    """Gaussian emissions of ``covariance_type`` for K states and d features,
    on calls of up to ``n_rows`` frames."""

    def __init__(self, covariance_type, n_components, n_features, n_rows):
        self.covariance_type = covariance_type
        self.kernel_type = "diag" if covariance_type == "spherical" else covariance_type
        self.ws = EStepWorkspace(self.kernel_type, n_components, n_features, n_rows)
        self.K, self.d = n_components, n_features

    def params(self, means, covars):
        """:class:`GaussianParams` at unit weights from hmmlearn's compact
        ``_covars_`` (spherical (K,) runs as diag (K, d)); a ValueError naming
        the state whose covariance is not positive definite."""
        covs = np.asarray(covars, dtype=np.float64)
        if self.covariance_type == "spherical":
            covs = np.repeat(covs[:, None], self.d, axis=1)
        prec = precisions_cholesky_from_covariances(covs, self.kernel_type)
        return GaussianParams(np.ones(self.K), np.asarray(means, dtype=np.float64), covs, prec)

    def shift(self, params):
        if self.kernel_type == "tied":  # the tied kernel's one common centre
            return np.ascontiguousarray(np.broadcast_to(params.means.mean(axis=0),
                                                        params.means.shape))
        return np.ascontiguousarray(params.means)

    def log_densities(self, X, params, out):
        self.ws.run(X, None, params, do_stats=False, out_logprob=out)
        return out

    def statistics(self, X, params, gamma, row_weight):
        return self.ws.run(X, row_weight, params, shift=self.shift(params), resp_in=gamma)


class Linear:
    """Emissions whose log-density is linear in x (Poisson rates): the
    linear kernel with ``A = log lambda``, ``b = -sum lambda``; ``log x!``
    per frame added to the log-densities."""

    def __init__(self, family, n_components, n_features, n_rows):
        self.family = family
        self.ws = LinearWorkspace(n_components, n_features, n_rows)
        self.K = n_components

    def params(self, theta):
        from .families.linear import LinearParams

        return self.family.natural(LinearParams(np.ones(self.K), theta))

    def log_densities(self, X, params, out):
        A, b = params
        self.ws.run(X, None, A, b, do_stats=False, out_logprob=out)
        out += self.family.row_constant(X)[:, None]
        return out

    def statistics(self, X, params, gamma, row_weight):
        A, b = params
        S0, S1, _, _ = self.ws.run(X, row_weight, A, b, resp_in=gamma)
        return S0, S1


class Symbols:
    """One categorical column of ``n_symbols`` symbols (a CategoricalHMM's
    X of shape (n, 1))."""

    def __init__(self, n_components, n_symbols, n_rows):
        self.ws = CategoricalWorkspace(n_components, [n_symbols], n_rows)
        self.K = n_components

    def params(self, emissionprob):
        with np.errstate(divide="ignore"):
            return np.log(np.asarray(emissionprob, dtype=np.float64)), np.zeros(self.K)

    def log_densities(self, X, params, out):
        logtheta, logw = params
        self.ws.run(X, None, logtheta, logw, do_stats=False, out_logprob=out)
        return out

    def statistics(self, X, params, gamma, row_weight):
        logtheta, logw = params
        S0, counts, _, _ = self.ws.run(X, row_weight, logtheta, logw, resp_in=gamma)
        return S0, counts
