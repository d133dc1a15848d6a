"""EM on incomplete data (``missing='em'``): the Gaussian E-step over the
observed entries of each row (Ghahramani & Jordan 1994).

NaN entries are missing at random.  A row with observed set o and missing
set m contributes, for each component k, the marginal density of its
observed part and the expected statistics of the complete row:

    log p(x_o | k) = log N(x_o; mu_o, Sigma_oo)
    x_hat_m        = E[x_m | x_o, k] = mu_m - P_mm^-1 P_mo (x_o - mu_o)
    C              = Cov[x_m | x_o, k] = P_mm^-1

with ``P = Sigma^-1`` the component's precision (what the model holds as
``precisions_cholesky_``: ``P = U U^T``).  The quadratic form of the
marginal is that of the completed row ``(x_o, x_hat_m)`` under P (x_hat_m
minimises it over x_m), and ``log det Sigma_oo = log det Sigma + log det
P_mm``: one Cholesky factor of the |m| x |m| block per (pattern, component),
computed once per E-step for all the rows of that pattern.  The statistics
are those of :mod:`fastem._stats` with the completed rows, plus C in the
mm block of S2 (full, tied) or on the diagonal (diag, spherical, whose
missing coordinates are independent of the observed ones: x_hat_m = mu_m
and C their variances).

Rows without NaN run the fused kernels unchanged, so input without NaN
gives bitwise the fit of ``missing='raise'``.
"""

import numpy as np
from scipy import linalg

from . import _config
from ._estep import EStepWorkspace, kernel_array, n_slots_for, summed
from ._kernels.missing import _estep_missing
from ._parallel import run_slots
from ._stats import GaussianParams, GaussianStats, default_shift

_NO_F = np.empty(0)
_NO_I = np.empty(0, dtype=np.int64)


def all_missing_message(rows, name="X", total=None):
    """The error for rows with every value missing (``rows``: some or all of
    them, ``total`` their number)."""
    total = rows.size if total is None else total
    shown = ", ".join(str(int(r)) for r in rows[:10])
    more = f" and {total - min(10, rows.size)} more" if total > min(10, rows.size) else ""
    return (f"{name} has {total} row{'s' if total > 1 else ''} with every value "
            f"missing (NaN): row{'s' if total > 1 else ''} {shown}{more}. Such a row "
            "says nothing about the mixture and has no likelihood; drop it.")


class Patterns:
    """The rows of X grouped by the set of features missing from them.

    ``complete``: indices of the rows without NaN; ``groups``: a list of
    ``(missing, rows)``, ``missing`` a boolean mask of the features, ``rows``
    the increasing indices of the rows with exactly that pattern.  A row
    with every value missing is a ValueError that names it, unless
    ``allow_empty`` (imputation: such a row's expectation is the mixture's
    mean, its posterior the weights); ``offset`` is X's first row in the
    whole data (a chunk), for the message."""

    def __init__(self, X, name="X", allow_empty=False, offset=0):
        nan = np.isnan(X)
        has = nan.any(axis=1)
        self.n_rows, self.n_features = X.shape
        self.complete = np.flatnonzero(~has)
        rows = np.flatnonzero(has)
        self.groups = []
        if rows.size == 0:
            return
        empty = rows[nan[rows].all(axis=1)]
        if empty.size and not allow_empty:
            raise ValueError(all_missing_message(empty + offset, name))
        keys = np.packbits(nan[rows], axis=1)
        if keys.shape[1] <= 8:  # one integer a row: a 1-d unique, ~10x faster
            wide = np.zeros((keys.shape[0], 8), dtype=np.uint8)
            wide[:, :keys.shape[1]] = keys
            keys = wide.view(np.uint64).ravel()
            _, inverse = np.unique(keys, return_inverse=True)
        else:
            _, inverse = np.unique(keys, axis=0, return_inverse=True)
        inverse = np.asarray(inverse).ravel()
        order = np.argsort(inverse, kind="stable")
        bounds = np.flatnonzero(np.diff(inverse[order])) + 1
        for part in np.split(rows[order], bounds):
            self.groups.append((nan[part[0]].copy(), part))

    @property
    def incomplete(self):
        return bool(self.groups)


def _log_weights(weights):
    with np.errstate(divide="ignore"):
        return np.log(weights)


class MissingWorkspace:
    """:class:`fastem._estep.EStepWorkspace` for an X with NaN entries: the
    fused kernel on its complete rows, the kernel of
    :mod:`fastem._kernels.missing` on the others (copied once, in float64,
    sorted by pattern); statistics summed, per-row outputs put in place.
    Same ``run`` signature; it serves the X it was made for."""

    def __init__(self, X, patterns, covariance_type, n_components):
        self.covariance_type = covariance_type
        self.patterns = patterns
        K, d = n_components, X.shape[1]
        self.complete = patterns.complete
        Xk = kernel_array(X)
        self.X_complete = np.ascontiguousarray(Xk[self.complete])
        self.kernel = EStepWorkspace(covariance_type, K, d, max(1, self.complete.size))
        # a pattern of many rows: the fused kernel on its observed columns
        # (the marginal is a Gaussian mixture of them), the missing
        # coordinates' statistics from theirs (see _fold)
        self.large = [(miss, rows, np.ascontiguousarray(Xk[np.ix_(rows, np.flatnonzero(~miss))]),
                       EStepWorkspace(covariance_type, K, int((~miss).sum()), rows.size))
                      for miss, rows in patterns.groups if rows.size >= LARGE_PATTERN_ROWS]
        small = [(miss, rows) for miss, rows in patterns.groups
                 if rows.size < LARGE_PATTERN_ROWS]
        self.rows = np.concatenate([rows for _, rows in small] or [np.zeros(0, np.int64)])
        self.Xs = np.ascontiguousarray(X[self.rows], dtype=np.float64)
        self.pid = np.repeat(np.arange(len(small)), [rows.size for _, rows in small])
        self.miss = np.array([miss for miss, _ in small], dtype=np.uint8).reshape(-1, d)
        da = 1 if covariance_type in ("diag", "spherical") else d
        ks2 = K if covariance_type != "tied" else 1
        ns = n_slots_for(self.rows.size, _config.BLOCK_SIZE,
                         8 * (K + K * d + ks2 * da * d + 2), 8 * d)
        self.S0s = np.zeros((ns, K))
        self.S1s = np.zeros((ns, K, d))
        self.S2s = np.zeros((ns, ks2, da, d))
        self.lls = np.zeros(ns)
        self.wsums = np.zeros(ns)

    def _kernel_params(self, params):
        ct = self.covariance_type
        K, d = params.means.shape
        means = np.ascontiguousarray(params.means, dtype=np.float64)
        logw = _log_weights(params.weights)
        prec = params.precisions_cholesky
        if ct in ("full", "tied"):
            U = np.ascontiguousarray(prec if ct == "full" else prec[None], dtype=np.float64)
            P = np.einsum("kab,kcb->kac", U, U)
            logw = logw + np.log(np.diagonal(U, axis1=1, axis2=2)).sum(axis=1)
            return means, U, P, np.empty((0, d)), np.ascontiguousarray(logw)
        pdiag = prec if ct == "diag" else np.broadcast_to(prec[:, None], (K, d))
        none = np.empty((0, d, d))
        return means, none, none, np.ascontiguousarray(pdiag, dtype=np.float64), logw

    def _large_pattern(self, group, params, sample_weight, shift, do_stats, resp_in, outs):
        """One pattern of many rows: the fused kernel on its observed
        columns, with the marginal's parameters (means mu_o, the factor of
        Sigma_oo^-1); the missing coordinates' statistics folded in from
        the observed ones (:func:`_fold`)."""
        miss, rows, Xo, ws = group
        ct = self.covariance_type
        K = params.means.shape[0]
        marginal, B, C = _marginal(params, ct, miss)
        want_resp = outs["out_resp"] is not None or outs["out_fill"] is not None
        sub = {"out_lognorm": None if outs["out_lognorm"] is None else np.empty(rows.size),
               "out_resp": np.empty((rows.size, K)) if want_resp else None,
               "out_label": None if outs["out_label"] is None else
               np.empty(rows.size, dtype=np.int64),
               "out_logprob": None if outs["out_logprob"] is None else
               np.empty((rows.size, K))}
        obs = ~miss
        out = ws.run(Xo, None if sample_weight is None else sample_weight[rows], marginal,
                     shift=np.ascontiguousarray(shift[:, obs]), do_stats=do_stats,
                     resp_in=None if resp_in is None else np.ascontiguousarray(resp_in[rows]),
                     **sub)
        for name, a in sub.items():
            if a is not None and outs[name] is not None:
                outs[name][rows] = a
        if outs["out_fill"] is not None:
            filled = np.empty((rows.size, miss.size))
            filled[:, obs] = Xo
            means = params.means
            filled[:, miss] = sum(sub["out_resp"][:, k, None] * (
                means[k, miss] + (Xo - means[k, obs]) @ B[k].T) for k in range(K))
            outs["out_fill"][rows] = filled
        if not do_stats:
            return out
        return _fold(out, ct, params.means, shift, miss, B, C)

    def _incomplete(self, params, sample_weight, shift, do_stats, resp_in, outs):
        """The kernel over the incomplete rows; GaussianStats or (ll, w)."""
        total = None
        for group in self.large:
            total = summed(total, self._large_pattern(group, params, sample_weight, shift,
                                                      do_stats, resp_in, outs))
        if self.rows.size == 0:
            return total
        return summed(total, self._small_patterns(params, sample_weight, shift, do_stats,
                                                  resp_in, outs))

    def _small_patterns(self, params, sample_weight, shift, do_stats, resp_in, outs):
        """The missing-data kernel over the rows of the other patterns."""
        ct = self.covariance_type
        K, d = params.means.shape
        rows = self.rows
        means, U, P, pdiag, logw = self._kernel_params(params)
        m = rows.size
        lognorm = np.empty(m) if outs["out_lognorm"] is not None else _NO_F
        resp = np.empty((m, K)) if outs["out_resp"] is not None else np.empty((0, K))
        label = np.empty(m, dtype=np.int64) if outs["out_label"] is not None else _NO_I
        fill = np.empty((m, d)) if outs["out_fill"] is not None else np.empty((0, d))
        logprob = np.empty((m, K)) if outs["out_logprob"] is not None else np.empty((0, K))
        args = (self.Xs, _NO_F if sample_weight is None else
                np.ascontiguousarray(sample_weight[rows], dtype=np.float64),
                self.pid, self.miss, means, U, P, pdiag, logw,
                np.ascontiguousarray(shift, dtype=np.float64),
                np.empty((0, K)) if resp_in is None else np.ascontiguousarray(resp_in[rows]),
                do_stats, lognorm, resp, label, fill, logprob,
                self.S0s, self.S1s, self.S2s, self.lls, self.wsums, _config.BLOCK_SIZE)
        run_slots(_estep_missing, args, self.S0s.shape[0])
        for name, a in (("out_lognorm", lognorm), ("out_resp", resp), ("out_label", label),
                        ("out_logprob", logprob)):
            if outs[name] is not None:
                outs[name][rows] = a
        if outs["out_fill"] is not None:
            outs["out_fill"][rows] = np.where(np.isnan(self.Xs), fill, self.Xs)
        loglik = float(np.add.reduce(self.lls))
        weight = float(np.add.reduce(self.wsums))
        if not do_stats:
            return loglik, weight
        S2 = np.add.reduce(self.S2s, axis=0)
        if ct == "tied":
            S2 = S2[0]
        elif ct == "diag":
            S2 = S2[:, 0, :]
        elif ct == "spherical":
            S2 = S2[:, 0, :].sum(axis=1)
        return GaussianStats(ct, shift, np.add.reduce(self.S0s, axis=0),
                             np.add.reduce(self.S1s, axis=0), S2, loglik, weight)

    def run(self, X, sample_weight, params, *, shift=None, do_stats=True, resp_in=None,
            out_lognorm=None, out_resp=None, out_label=None, out_fill=None, out_logprob=None):
        ct = self.covariance_type
        if shift is None:
            shift = default_shift(params, ct)
        shift = np.ascontiguousarray(shift, dtype=np.float64)
        c = self.complete
        outs = {"out_lognorm": out_lognorm, "out_resp": out_resp, "out_label": out_label,
                "out_fill": out_fill, "out_logprob": out_logprob}
        part = None
        if c.size:
            sub = {name: (None if a is None else np.empty_like(a[c])) for name, a in
                   outs.items() if name != "out_fill"}
            part = self.kernel.run(
                self.X_complete, None if sample_weight is None else sample_weight[c], params,
                shift=shift, do_stats=do_stats,
                resp_in=None if resp_in is None else np.ascontiguousarray(resp_in[c]), **sub)
            for name, a in sub.items():
                if a is not None:
                    outs[name][c] = a
            if out_fill is not None:
                out_fill[c] = self.X_complete
        return summed(part, self._incomplete(params, sample_weight, shift, do_stats, resp_in,
                                             outs))


#: Rows from which a missingness pattern runs the fused kernel on its
#: observed columns (:meth:`MissingWorkspace._large_pattern`); fewer run
#: the missing-data kernel with the other patterns.
LARGE_PATTERN_ROWS = 4096


def _marginal(params, covariance_type, miss):
    """The Gaussian mixture of the observed coordinates (``miss`` False):
    GaussianParams of the marginal (weights, mu_o, the precision factor of
    Sigma_oo), and per component B = Sigma_mo Sigma_oo^-1 (K, |m|, |o|) and
    C = Cov[x_m | x_o] (full, tied: (K, |m|, |m|); diag, spherical: the
    variances (K, |m|))."""
    obs = ~miss
    K = params.means.shape[0]
    prec = params.precisions_cholesky
    if covariance_type in ("diag", "spherical"):
        p = prec if covariance_type == "diag" else np.broadcast_to(prec[:, None],
                                                                   params.means.shape)
        B = np.zeros((K, int(miss.sum()), int(obs.sum())))
        marginal_prec = prec[:, obs] if covariance_type == "diag" else prec
        return (GaussianParams(params.weights, params.means[:, obs], None, marginal_prec), B,
                1.0 / p[:, miss] ** 2)
    stack = prec if covariance_type == "full" else prec[None]
    precs, Bs, Cs = [], [], []
    for U in stack:
        Uinv = linalg.solve_triangular(U, np.eye(U.shape[0]), lower=False)
        sigma = Uinv.T @ Uinv  # (U U^T)^-1
        s_oo = sigma[np.ix_(obs, obs)]
        L = linalg.cholesky(s_oo, lower=True)
        precs.append(linalg.solve_triangular(L, np.eye(L.shape[0]), lower=True).T)
        B = linalg.cho_solve((L, True), sigma[np.ix_(obs, miss)]).T
        Bs.append(B)
        Cs.append(sigma[np.ix_(miss, miss)] - B @ sigma[np.ix_(obs, miss)])
    if covariance_type == "tied":
        return (GaussianParams(params.weights, params.means[:, obs], None, precs[0]),
                np.broadcast_to(Bs[0], (K,) + Bs[0].shape),
                np.broadcast_to(Cs[0], (K,) + Cs[0].shape))
    return (GaussianParams(params.weights, params.means[:, obs], None, np.array(precs)),
            np.array(Bs), np.array(Cs))


def _fold(stats, covariance_type, means, shift, miss, B, C):
    """The full-dimensional statistics of rows with the missing set ``miss``
    from those of their observed coordinates ``stats``: with u = x_o - c_o,
    the completed x_m - c_m = e_k + B_k u (e_k = mu_m - c_m - B_k (mu_o -
    c_o)), so that S1_m = S0 e + B S1_o, S2_mo = e S1_o^T + B S2_oo and
    S2_mm = S0 e e^T + e (B S1_o)^T + (B S1_o) e^T + B S2_oo B^T + S0 C."""
    obs = ~miss
    o, m = np.flatnonzero(obs), np.flatnonzero(miss)
    K, d = means.shape
    S0, S1o = stats.S0, stats.S1
    e = np.array([means[k, m] - shift[k, m] - B[k] @ (means[k, o] - shift[k, o])
                  for k in range(K)])
    S1 = np.zeros((K, d))
    S1[:, o] = S1o
    BS1 = np.einsum("kab,kb->ka", B, S1o)
    S1[:, m] = S0[:, None] * e + BS1
    if covariance_type in ("diag", "spherical"):
        var = C
        if covariance_type == "diag":
            S2 = np.zeros((K, d))
            S2[:, o] = stats.S2
            S2[:, m] = S0[:, None] * (e * e + var)
        else:
            S2 = stats.S2 + S0 * ((e * e).sum(axis=1) + var.sum(axis=1))
        return GaussianStats(covariance_type, shift, S0, S1, S2, stats.loglik, stats.weight)
    oo = _symmetric(stats.S2)
    if covariance_type == "full":
        S2 = np.zeros((K, d, d))
        for k in range(K):
            mo = np.outer(e[k], S1o[k]) + B[k] @ oo[k]
            cross = np.outer(e[k], BS1[k])
            S2[k][np.ix_(o, o)] = oo[k]
            S2[k][np.ix_(m, o)] = mo
            S2[k][np.ix_(o, m)] = mo.T
            S2[k][np.ix_(m, m)] = (S0[k] * np.outer(e[k], e[k]) + cross + cross.T
                                   + B[k] @ oo[k] @ B[k].T + S0[k] * C[k])
    else:  # tied: one B and C, the cross terms summed over components
        S2 = np.zeros((d, d))
        mo = np.einsum("ka,kb->ab", e, S1o) + B[0] @ oo
        cross = np.einsum("ka,kb->ab", e, BS1)
        S2[np.ix_(o, o)] = oo
        S2[np.ix_(m, o)] = mo
        S2[np.ix_(o, m)] = mo.T
        S2[np.ix_(m, m)] = (np.einsum("k,ka,kb->ab", S0, e, e) + cross + cross.T
                            + B[0] @ oo @ B[0].T + S0.sum() * C[0])
    return GaussianStats(covariance_type, shift, S0, S1, S2, stats.loglik, stats.weight)


def _symmetric(S2):
    """The symmetric matrices whose upper triangle is S2's (the kernels
    fill the upper triangle)."""
    return np.triu(S2) + np.swapaxes(np.triu(S2, 1), -1, -2)


def column_fill(X):
    """A function that replaces the NaN entries of an array by the means of
    X's columns over their observed entries (the start that k-means and
    the initial statistics see); the identity for an X without NaN."""
    if not isinstance(X, np.ndarray) or X.dtype.kind != "f" or not np.isnan(X).any():
        return lambda A: A
    nan = np.isnan(X)
    counts = np.maximum((~nan).sum(axis=0), 1)
    means = (np.where(nan, 0.0, X).sum(axis=0, dtype=np.float64) / counts).astype(X.dtype)

    def fill(A):
        return np.where(np.isnan(A), means, A) if np.isnan(A).any() else A

    return fill


def observed_mean_fill(X):
    """X with each NaN replaced by its column's mean over the observed
    entries."""
    return column_fill(X)(X)


def conditional_means(X, patterns, params, covariance_type):
    """A copy of X with each missing entry replaced by ``sum_k r_ik E[x_m |
    x_o, k]``; observed entries unchanged."""
    ws = MissingWorkspace(X, patterns, covariance_type, params.means.shape[0])
    out = np.empty(X.shape, dtype=np.float64)
    ws.run(X, None, params, do_stats=False, out_fill=out)
    return out.astype(X.dtype, copy=False)


def conditional_draws(X, patterns, params, covariance_type, random_state):
    """A copy of X (float64, float32 kept) with each row's missing entries
    drawn from their conditional distribution given its observed ones: the
    component from the row's posterior, then ``N(E[x_m | x_o, k], Cov[x_m |
    x_o, k])``.  The uniform and normal numbers are drawn in row order, so
    the draws do not depend on how rows group into patterns."""
    K, d = params.means.shape
    resp = np.empty((X.shape[0], K))
    MissingWorkspace(X, patterns, covariance_type, K).run(X, None, params, do_stats=False,
                                                          out_resp=resp)
    incomplete = np.sort(np.concatenate([rows for _, rows in patterns.groups]))
    u = random_state.uniform(size=incomplete.size)
    normals = random_state.standard_normal(size=(incomplete.size, d))
    cum = np.cumsum(resp[incomplete], axis=1)
    component = np.minimum((cum < u[:, None] * cum[:, -1:]).sum(axis=1), K - 1)
    where = np.empty(X.shape[0], dtype=np.int64)
    where[incomplete] = np.arange(incomplete.size)
    out = np.array(X, dtype=np.float64 if X.dtype != np.float32 else X.dtype, copy=True)
    means, prec = params.means, params.precisions_cholesky
    for miss, rows in patterns.groups:
        obs = ~miss
        idx = where[rows]
        for k in range(K):
            pick = component[idx] == k
            if not pick.any():
                continue
            r, z = rows[pick], normals[idx[pick]][:, :int(miss.sum())]
            if covariance_type in ("full", "tied"):
                U = prec[k] if covariance_type == "full" else prec
                P = U @ U.T
                C = np.linalg.inv(P[np.ix_(miss, miss)])
                A = C @ P[np.ix_(miss, obs)]
                centre = means[k, miss] - (np.asarray(X[np.ix_(r, np.flatnonzero(obs))],
                                                      dtype=np.float64) - means[k, obs]) @ A.T
                draw = centre + z @ np.linalg.cholesky(C).T
            else:
                sd = 1.0 / (prec[k] if covariance_type == "diag" else np.full(d, prec[k]))
                draw = means[k, miss] + z * sd[miss]
            out[np.ix_(r, np.flatnonzero(miss))] = draw
    return out


def chunk_estep(X, sample_weight, params, covariance_type, shift, do_stats=True, offset=0,
                **outputs):
    """The E-step of one chunk with NaN entries (rows ``offset ...`` of
    out-of-core or dask data): :class:`MissingWorkspace` over it.  Same
    results as :meth:`EStepWorkspace.run`."""
    ws = MissingWorkspace(X, Patterns(X, offset=offset), covariance_type,
                          params.means.shape[0])
    return ws.run(X, sample_weight, params, shift=shift, do_stats=do_stats, **outputs)
