"""EM on incomplete data for the discrete families (``missing='em'``).

A missing entry (NaN) is skipped: its factor in the row's density is 1, and
each column's parameters are estimated from the rows where it is observed
(its statistics and its own observed weight ``sum_{i: x_ij observed} w_i
r_ik``).  Both come out of the families' own kernels, run on a recoded X:

- linear families (Bernoulli, Binomial, Poisson): the log-joint
  ``x . a_k + log w_k + sum_j c_kj`` (``c`` the per-column constants of
  :meth:`LinearFamily.column_constants`) over the observed entries is
  ``[x0, o] . [a_k, c_k] + log w_k`` with ``x0`` the row with 0 for NaN
  and ``o`` its observed indicator; the kernel's statistics of the
  indicator columns are the observed weights, with no subtraction;
- categorical: a missing code becomes one extra category per column whose
  log-probability is 0; the counts of the real categories sum to the
  column's observed weight, which the M-step divides by already.

Multinomial counts are a vector with one total, which a missing count
leaves unknown: a row's observed counts are taken given their own total,
``x_o ~ Mult(N_o, p_o / s_o)`` with ``s_o = sum_{j in o} p_j`` (the
multinomial coefficient of the observed counts is the row constant).  EM
treats the counts as Poisson with a free rate per row, set to its maximum
``N_o / s_o`` before each E-step (whose profile likelihood is that
conditional multinomial, so EM never lowers it): a missing count is filled
by its expectation ``N_o p_j / s_o`` in the statistics, and the M-step is
the complete-data one.  The log-density's coefficients ``log p_j - log
s_o`` depend on the pattern, so the rows run the linear kernel one pattern
at a time (:class:`MissingMultinomial`).
"""

import numpy as np

from .families.categorical import Categorical
from .families.linear import LinearStats, _log_weights


def filled_for_start(X, categorical):
    """X with NaN replaced by the column's observed mean (categorical: its
    most frequent code): what k-means, the initial statistics and collapse
    re-seeding read."""
    from ._missing import observed_mean_fill

    if not categorical:
        return observed_mean_fill(X)
    nan = np.isnan(X)
    if not nan.any():
        return X
    out = np.array(X, dtype=np.float64, copy=True)
    for j in np.flatnonzero(nan.any(axis=0)):
        values, counts = np.unique(X[~nan[:, j], j], return_counts=True)
        out[nan[:, j], j] = values[np.argmax(counts)] if values.size else 0.0
    return out


def MissingDiscrete(family, X, n_components):
    """The missing-data E-step of ``family`` over X (floats, NaN where
    missing): a :class:`MissingLinear` or a :class:`MissingMultinomial`."""
    if family.name == "multinomial":
        return MissingMultinomial(family, X, n_components)
    return MissingLinear(family, X, n_components)


class MissingLinear:
    """The recoded X of one fit (or one call of predict/score) and the
    family's kernel workspace over it; ``run`` mirrors the family
    workspace's ``run`` with the family's parameters."""

    def __init__(self, family, X, n_components):
        nan = np.isnan(X)
        self.family = family
        self.n_rows, self.d = X.shape
        if isinstance(family, Categorical):
            extra = family.n_categories
            self.X0 = np.where(nan, 0.0, X)  # what the row constants h(x) read
            self.codes = np.where(nan, extra, self.X0).astype(np.int64)
            self.kernel_family = Categorical(family.n_categories + 1)
            cols = int(self.kernel_family.off[-1])
        else:
            self.codes = np.hstack([np.where(nan, 0.0, X), (~nan).astype(np.float64)])
            self.X0 = self.codes[:, :self.d]  # x with 0 for NaN: what h(x) reads
            self.kernel_family = None
            cols = 2 * self.d
        kernel = family if self.kernel_family is None else self.kernel_family
        self.ws = kernel.workspace(n_components, cols, self.n_rows)

    def _natural(self, params):
        if self.kernel_family is not None:  # categorical: log 1 = 0 in each extra slot
            logtheta, logw = self.family.natural(params)
            K = logtheta.shape[0]
            out = np.zeros((K, int(self.kernel_family.off[-1])))
            for j, (a, b) in enumerate(zip(self.family.off[:-1], self.family.off[1:])):
                a2 = int(self.kernel_family.off[j])
                out[:, a2:a2 + (b - a)] = logtheta[:, a:b]
            return out, logw
        A, _ = self.family.natural(params)
        C = self.family.column_constants(params)
        return np.hstack([A, C]), _log_weights(params.weights)

    def run(self, sample_weight, params, *, do_stats=True, resp_in=None, **outputs):
        """:class:`LinearStats` (with ``observed``, linear families) or
        ``(loglik, weight)``; log-likelihoods without the row constants."""
        A, b = self._natural(params)
        out = self.ws.run(self.codes, sample_weight, A, b, do_stats=do_stats, resp_in=resp_in,
                          **outputs)
        if not do_stats:
            return out
        S0, S1, ll, w = out
        if self.kernel_family is not None:
            keep = np.concatenate([np.arange(a, a + c) for a, c in
                                   zip(self.kernel_family.off[:-1], self.family.n_categories)])
            return LinearStats(S0, S1[:, keep], ll, w)
        return LinearStats(S0, S1[:, :self.d], ll, w, observed=S1[:, self.d:])


class MissingMultinomial:
    """Multinomial rows with missing counts (see the module docstring): the
    linear kernel on each missingness pattern's rows with coefficients
    ``log p_kj - log s_ko``; a missing count enters the statistics as
    ``N_o p_kj / s_ko``."""

    def __init__(self, family, X, n_components):
        from ._missing import Patterns

        self.family = family
        self.n_rows, self.d = X.shape
        nan = np.isnan(X)
        self.X0 = np.where(nan, 0.0, X)
        patterns = Patterns(X, allow_empty=True)
        groups = [(np.zeros(self.d, dtype=bool), patterns.complete)] if \
            patterns.complete.size else []
        self.groups = [(miss, rows, np.ascontiguousarray(self.X0[rows]),
                        family.workspace(n_components, self.d, rows.size))
                       for miss, rows in groups + patterns.groups]

    def run(self, sample_weight, params, *, do_stats=True, resp_in=None, **outputs):
        logp, logw = self.family.natural(params)
        p = np.exp(logp)
        K = logp.shape[0]
        S0, S1 = np.zeros(K), np.zeros((K, self.d))
        ll = w = 0.0
        for miss, rows, X0, ws in self.groups:
            with np.errstate(divide="ignore"):
                log_s = np.log(p[:, ~miss].sum(axis=1))
            A = np.where(miss, 0.0, logp - log_s[:, None])
            sub = {k: np.empty((rows.size,) + v.shape[1:], dtype=v.dtype)
                   for k, v in outputs.items() if v is not None}
            out = ws.run(X0, None if sample_weight is None else sample_weight[rows], A, logw,
                         do_stats=do_stats,
                         resp_in=None if resp_in is None else resp_in[rows], **sub)
            for k, v in sub.items():
                outputs[k][rows] = v
            if not do_stats:
                ll, w = ll + out[0], w + out[1]
                continue
            s0, s1, gll, gw = out
            S0 += s0
            S1 += s1
            if miss.any():  # the missing counts at their expectation N_o p_kj / s_ko
                S1[:, miss] += s1.sum(axis=1, keepdims=True) * p[:, miss] / np.exp(log_s)[:, None]
            ll, w = ll + gll, w + gw
        if not do_stats:
            return ll, w
        return LinearStats(S0, S1, ll, w)


#: The workspaces :func:`MissingDiscrete` makes.
MISSING_WORKSPACES = (MissingLinear, MissingMultinomial)


def checked_holes(family, X, where, strict=True):
    """X (floats, NaN where missing) checked for ``missing='em'``: a family
    that can skip entries, its observed values in the family's domain (a
    missing entry is checked as 0, which every family admits) and, if
    ``strict`` (not for imputation), no row without an observed value and
    no column never observed.  Returned as it is."""
    from ._missing import all_missing_message

    if not family.skips_missing:
        family.column_constants(None)  # raises: why this family cannot
    nan = np.isnan(X)
    family.check_values(np.where(nan, 0.0, X), where)
    if not strict:
        return X
    rows = np.flatnonzero(nan.all(axis=1))
    if rows.size:
        raise ValueError(all_missing_message(rows))
    cols = np.flatnonzero(nan.all(axis=0))
    if cols.size:
        raise ValueError(
            f"X has {cols.size} column{'s' if cols.size > 1 else ''} with every value missing "
            f"(NaN): column{'s' if cols.size > 1 else ''} "
            f"{', '.join(str(int(c)) for c in cols[:10])}. Nothing can be learnt about such "
            "a column; drop it.")
    return X


def expected_values(family, X, resp, theta):
    """X with each NaN replaced by its expectation given the row's observed
    entries: ``sum_k r_ik E[x_j | k]`` (probability, trials x probability,
    rate); for categorical codes the most probable category."""
    out = np.array(X, dtype=np.float64, copy=True)
    nan = np.isnan(X)
    if isinstance(family, Categorical):
        for j, (a, b) in enumerate(zip(family.off[:-1], family.off[1:])):
            rows = np.flatnonzero(nan[:, j])
            if rows.size:
                out[rows, j] = np.argmax(resp[rows] @ theta[:, a:b], axis=1)
        return out
    if family.name == "multinomial":  # sum_k r_ik N_o p_kj / s_ko
        X0 = np.where(nan, 0.0, X)
        totals = X0.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            s = (~nan).astype(np.float64) @ theta.T  # (n, K): s_ko of each row
            expected = totals[:, None] * ((resp / s) @ theta)
        out[nan] = np.nan_to_num(expected)[nan]
        return out
    expected = resp @ family.mean(theta)
    out[nan] = expected[nan]
    return out
