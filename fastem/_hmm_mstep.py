"""M-steps of the hidden Markov models: hmmlearn 0.3.3's maximum a
posteriori estimates with its priors, from fastem's additive statistics.

Every function takes the statistics of one Baum-Welch E-step (summed over
sequences, weighted by the sequence weights) and the current parameters, and
returns new arrays (the caller assigns them only when the whole M-step has
succeeded).  A state that received no posterior weight keeps its current
emission parameters where the estimate would be 0 / 0 (hmmlearn writes NaN).

Start and transition probabilities (Dirichlet priors):

    pi_k  proportional to  max(prior_k - 1 + E[starts in k], 0)
    A_ij  proportional to  max(prior_ij - 1 + E[i -> j transitions], 0)

keeping every zero of the current ``startprob_`` / ``transmat_`` (left-right
models); a row with nothing to normalise keeps its current values.

Gaussian means and covariances (Huang, Acero & Hon, Spoken Language
Processing, pp. 443-445, as hmmlearn): with ``n_k = sum_t g_tk``,
``o_k = sum_t g_tk x_t`` and the scatter about the new means ``mu``,

    mu_k  = (means_weight * means_prior + o_k) / (means_weight + n_k)
    diag  : (covars_prior + means_weight (mu - means_prior)^2 + scatter)
            / max(max(covars_weight - 1, 0) + n_k, 1e-5); spherical: the
            mean over features of the diagonal estimate
    full  : (covars_prior + means_weight d d^T + scatter_k)
            / (max(covars_weight - n_features, 0) + n_k)
    tied  : the numerators summed over states / (max(covars_weight -
            n_features, 0) + sum_k n_k)

The scatter comes from the shifted statistics (``S2 - delta S1^T - S1
delta^T + S0 delta delta^T`` with ``delta = mu - shift``), so precision holds
far from the origin.  With ``'c'`` but not ``'m'`` in ``params`` the scatter
is about the current (fixed) means: hmmlearn 0.3.3 there reads statistics it
did not gather.

Poisson rates (a gamma prior in hmmlearn's alpha-beta notation), each state
with its own weight: ``lambda_k = (lambdas_prior + sum_t g_tk x_t) /
(lambdas_weight + n_k)``.  Categorical: ``max(emissionprob_prior - 1 +
counts, 0)`` normalised per state.
"""

import numpy as np

from ._stats import _symmetric_from_upper


def _normalised_rows(a, fallback):
    """Rows of ``a`` divided by their sums; a row summing to 0 keeps
    ``fallback``'s row."""
    a = np.array(a, dtype=np.float64)
    s = a.sum(axis=-1, keepdims=True)
    empty = (s == 0)[..., 0]
    out = a / np.where(s == 0, 1.0, s)
    if empty.any():
        out[empty] = np.asarray(fallback)[empty]
    return out


def chain(startprob, transmat, starts, trans, params, startprob_prior, transmat_prior):
    """New ``(startprob, transmat)``: only the letters 's' and 't' of
    ``params`` are updated."""
    if "s" in params:
        new = np.maximum(startprob_prior - 1.0 + starts, 0.0)
        new = np.where(startprob == 0, 0.0, new)
        startprob = _normalised_rows(new[None], startprob[None])[0]
    if "t" in params:
        new = np.maximum(transmat_prior - 1.0 + trans, 0.0)
        new = np.where(transmat == 0, 0.0, new)
        transmat = _normalised_rows(new, transmat)
    return startprob, transmat


def _state_weights(means_weight, post):
    """``means_weight`` per state (K,) for the full and tied estimates: a
    scalar, or one value per state."""
    mw = np.asarray(means_weight, dtype=np.float64)
    if mw.size == 1:
        return np.full(post.shape, float(mw.ravel()[0]))
    if mw.size == post.shape[0]:
        return mw.reshape(post.shape)
    raise ValueError(f"means_weight should be a number or one per state ({post.shape[0]}) "
                     f"for full and tied covariances, but has shape {mw.shape}.")


def _first_moments(stats):
    """``(n_k (K,), o_k (K, d))`` from shifted statistics."""
    return stats.S0, stats.S1 + stats.S0[:, None] * stats.shift


def gaussian(stats, means, covars, covariance_type, params, *, means_prior, means_weight,
             covars_prior, covars_weight):
    """New ``(means, compact covars)`` from :class:`GaussianStats` (spherical
    statistics come from the diagonal kernel: per-feature second moments)."""
    post, obs = _first_moments(stats)
    post2 = post[:, None]
    if "m" in params:
        denom = means_weight + post2
        with np.errstate(invalid="ignore", divide="ignore"):
            new = (means_weight * means_prior + obs) / denom
        means = np.where(denom == 0, means, new)
    if "c" not in params:
        return means, covars
    d = means.shape[1]
    meandiff = np.broadcast_to(means - means_prior, means.shape)
    delta = means - stats.shift
    S1 = stats.S1
    if covariance_type in ("diag", "spherical"):
        scatter = stats.S2 - 2 * delta * S1 + post2 * delta**2
        c_n = means_weight * meandiff**2 + scatter
        c_d = np.maximum(max(covars_weight - 1, 0) + post2, 1e-5)
        new = (covars_prior + c_n) / c_d
        if covariance_type == "spherical":
            new = new.mean(axis=1)
        return means, new
    cvweight = max(covars_weight - d, 0)
    if covariance_type == "full":
        S2 = _symmetric_from_upper(stats.S2)
        outer = np.einsum("ka,kb->kab", delta, S1)
        scatter = S2 - outer - outer.transpose(0, 2, 1) + np.einsum(
            "k,ka,kb->kab", post, delta, delta)
        c_n = _state_weights(means_weight, post)[:, None, None] * np.einsum(
            "ka,kb->kab", meandiff, meandiff) + scatter
        denom = cvweight + post[:, None, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            new = (covars_prior + c_n) / denom
        return means, np.where(denom == 0, covars, new)
    # tied: one centre for all states (the tied kernel's pooled S2)
    S2 = _symmetric_from_upper(stats.S2)
    outer = delta.T @ S1
    scatter = S2 - outer - outer.T + (delta.T * post) @ delta
    c_n = (meandiff.T * _state_weights(means_weight, post)) @ meandiff + scatter
    denom = cvweight + post.sum()
    if denom == 0:
        return means, covars
    return means, (covars_prior + c_n) / denom


def poisson(S0, S1, lambdas, params, *, lambdas_prior, lambdas_weight, observed=None):
    """New rates: each state's own posterior weight in the gamma prior's
    update (with missing counts, each column's own observed weight)."""
    if "l" not in params:
        return lambdas
    denom = lambdas_weight + (S0[:, None] if observed is None else observed)
    with np.errstate(invalid="ignore", divide="ignore"):
        new = (lambdas_prior + S1) / denom
    return np.where(denom == 0, lambdas, new)


def categorical(counts, emissionprob, params, *, emissionprob_prior):
    if "e" not in params:
        return emissionprob
    return _normalised_rows(np.maximum(emissionprob_prior - 1.0 + counts, 0.0), emissionprob)
