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
                    the log-densities; with missing counts, each column's
                    observed weight too)
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
    on calls of up to ``n_rows`` frames.  Given ``X`` with NaN
    (``missing='em'``), the frames with an observed value run the
    mixtures' missing-data E-step (:class:`fastem._missing.MissingWorkspace`:
    observed-data densities, conditional expectations in the statistics);
    a frame with nothing observed has density 1 under every state and adds
    nothing to the emission statistics."""

    def __init__(self, covariance_type, n_components, n_features, n_rows, X=None):
        self.covariance_type = covariance_type
        self.kernel_type = "diag" if covariance_type == "spherical" else covariance_type
        self.K, self.d = n_components, n_features
        self.rows = None  # frames with something observed (missing data), else all
        if X is not None and np.isnan(X).any():
            from ._missing import MissingWorkspace, Patterns

            seen = ~np.isnan(X).all(axis=1)
            self.rows = None if seen.all() else np.flatnonzero(seen)
            Xs = X if self.rows is None else np.ascontiguousarray(X[self.rows])
            self.ws = MissingWorkspace(Xs, Patterns(Xs), self.kernel_type, n_components)
            self.missing = True
        else:
            self.ws = EStepWorkspace(self.kernel_type, n_components, n_features, n_rows)
            self.missing = False

    def params(self, means, covars):
        """:class:`GaussianParams` at unit weights from hmmlearn's compact
        ``_covars_`` (spherical (K,) runs as diag (K, d)); a CollapseError
        naming the state whose covariance is not positive definite."""
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
        if not self.missing:
            self.ws.run(X, None, params, do_stats=False, out_logprob=out)
            return out
        # the observed coordinates' densities; a frame with nothing observed: 1
        if self.rows is None:
            self.ws.run(None, None, params, do_stats=False, out_logprob=out)
            return out
        logp = np.empty((self.rows.size, self.K))
        self.ws.run(None, None, params, do_stats=False, out_logprob=logp)
        out[:] = 0.0
        out[self.rows] = logp
        return out

    def statistics(self, X, params, gamma, row_weight):
        if self.missing and self.rows is not None:
            gamma = np.ascontiguousarray(gamma[self.rows])
            row_weight = None if row_weight is None else row_weight[self.rows]
        return self.ws.run(None if self.missing else X, row_weight, params,
                           shift=self.shift(params), resp_in=gamma)


class Linear:
    """Emissions whose log-density is linear in x (Poisson rates): the
    linear kernel with ``A = log lambda``, ``b = -sum lambda``; ``log x!``
    per frame added to the log-densities.  Given ``X`` with NaN, a missing
    count is skipped (:class:`fastem._discrete_missing.MissingLinear`)."""

    def __init__(self, family, n_components, n_features, n_rows, X=None):
        self.family = family
        self.K = n_components
        self.missing = _missing_linear(family, X, n_components)
        if self.missing is None:
            self.ws = LinearWorkspace(n_components, n_features, n_rows)

    def params(self, theta):
        from .families.linear import LinearParams

        params = LinearParams(np.ones(self.K), theta)
        return params if self.missing is not None else self.family.natural(params)

    def log_densities(self, X, params, out):
        if self.missing is not None:
            self.missing.run(None, params, do_stats=False, out_logprob=out)
            out += self.family.row_constant(self.missing.X0)[:, None]
            return out
        A, b = params
        self.ws.run(X, None, A, b, do_stats=False, out_logprob=out)
        out += self.family.row_constant(X)[:, None]
        return out

    def statistics(self, X, params, gamma, row_weight):
        """``(S0, S1, observed weights per column or None)``."""
        if self.missing is not None:
            st = self.missing.run(row_weight, params, resp_in=gamma)
            return st.S0, st.S1, st.observed
        A, b = params
        S0, S1, _, _ = self.ws.run(X, row_weight, A, b, resp_in=gamma)
        return S0, S1, None


def _missing_linear(family, X, n_components):
    if X is None or X.dtype.kind != "f" or not np.isnan(X).any():
        return None
    from ._discrete_missing import MissingLinear

    return MissingLinear(family, X, n_components)


class Symbols(Linear):
    """One categorical column of ``n_symbols`` symbols (a CategoricalHMM's
    X of shape (n, 1)); a missing symbol (NaN) has probability 1."""

    def __init__(self, n_components, n_symbols, n_rows, X=None):
        from .families.categorical import Categorical

        self.family = Categorical([n_symbols])
        self.K = n_components
        self.missing = _missing_linear(self.family, X, n_components)
        if self.missing is None:
            self.ws = CategoricalWorkspace(n_components, [n_symbols], n_rows)

    def log_densities(self, X, params, out):
        if self.missing is not None:
            self.missing.run(None, params, do_stats=False, out_logprob=out)
            return out
        logtheta, logw = params
        self.ws.run(X, None, logtheta, logw, do_stats=False, out_logprob=out)
        return out

    def statistics(self, X, params, gamma, row_weight):
        if self.missing is not None:
            st = self.missing.run(row_weight, params, resp_in=gamma)
            return st.S0, st.S1, None
        logtheta, logw = params
        S0, counts, _, _ = self.ws.run(X, row_weight, logtheta, logw, resp_in=gamma)
        return S0, counts, None


def add_stats(a, b):
    """The sum of two chunks' emission statistics (a chunk without missing
    counts has no per-column observed weights: its S0 stands for them)."""
    if a is None:
        return b
    if not isinstance(a, tuple):
        return a + b
    obs = None
    if a[2] is not None or b[2] is not None:
        obs = sum(s[2] if s[2] is not None else np.broadcast_to(s[0][:, None], s[1].shape)
                  for s in (a, b))
    return a[0] + b[0], a[1] + b[1], obs
