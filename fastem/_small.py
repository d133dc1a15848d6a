"""NumPy versions of the kernels for small input, which compile nothing.

The Numba kernels (``fastem._kernels``) are compiled on their first use: the
full-covariance E-step alone takes about 8 s, and the first fit of a fresh
install paid for it even on a few hundred rows, where the fastest code saves
microseconds.  Input of at most :data:`SMALL_ROWS` rows runs these
functions instead: the same arguments and the same results as the kernels
(up to rounding: the sums run in another order; float32 input's quadratic
forms are float32, as there; no slots are needed, so slot 0 holds the
totals and the other slots zeros).  They do not depend on the
number of threads.  Larger input, and the chunks of out-of-core input, use
the kernels.

:func:`precision_cholesky` is the M-step's factorisation in plain Python,
operation for operation that of ``_kernels.linalg._precision_cholesky``
(bitwise the same result, tested), used for tiny matrices whatever the
number of rows.
"""

import functools
import math

import numpy as np

#: Rows up to which the E-step and the k-means passes run in NumPy.  A NumPy
#: E-step on 512 rows costs tens of microseconds more than the kernel's: far
#: less than the seconds its compilation costs on first use.
SMALL_ROWS = 512

#: Covariance stacks with ``K * d**3`` up to this are factorised in Python
#: (a few microseconds a component) instead of by the Numba kernel.
SMALL_FACTOR_WORK = 512

#: Responsibilities below exp(-500) relative to the largest are 0, as in the
#: kernels (``_kernels.gaussian._RESP_FLUSH``).
_RESP_FLUSH = -500.0


@functools.lru_cache(maxsize=64)
def _lower_indices(d):
    return np.tril_indices(d, -1)


def _upper(S):
    """S with the lower triangles (of its last two axes) zeroed, in place: the
    kernels fill only the upper triangle."""
    rows, cols = _lower_indices(S.shape[-1])
    S[..., rows, cols] = 0.0
    return S


def _slot0(buf, value):
    buf[...] = 0.0
    buf[0] = value


def estep(kernel_type, X, sw, means, prec_chol, base, shift, resp_in, do_stats,
          out_lognorm, out_resp, out_label, out_logprob, S0s, S1s, S2s, lls, wsums):
    """``_kernels.gaussian.ESTEP_KERNELS[kernel_type]`` in NumPy (same
    arguments, less ``block``, ``vmc`` and ``ctrl``)."""
    n = X.shape[0]
    K = means.shape[0]
    center = np.add.reduce(shift, axis=0) / K  # the kernels' common centre
    xt = np.asarray(X, dtype=np.float64) - center
    shift_c = shift - center
    means_c = means - center
    weighted = sw.shape[0] > 0
    if resp_in.shape[0] == 0:
        # the quadratic forms in the input's precision, as in the kernels;
        # y (K, n, d): per component U^T (x - mu_k), (x - mu_k) / sigma_k
        lo = np.float32 if X.dtype == np.float32 else np.float64
        xl = xt.astype(lo, copy=False)
        if kernel_type == "tied":
            y = (xl @ prec_chol.astype(lo))[None] - (means_c @ prec_chol).astype(lo)[:, None]
        else:
            y = xl[None] - means_c.astype(lo)[:, None]
            if kernel_type == "full":
                y = np.matmul(y, prec_chol.astype(lo))
            else:  # diag; spherical is prec_chol of shape (K, 1)
                y *= np.abs(prec_chol.astype(lo))[:, None]
        y *= y
        lp = base - 0.5 * np.matmul(y, np.ones(y.shape[2], dtype=lo)).T  # (n, K)
        if out_logprob.shape[0] > 0:
            out_logprob[:] = lp
        mx = lp.max(axis=1)
        mx[mx == -np.inf] = 0.0  # no component has any density here
        a = lp - mx[:, None]
        resp = np.exp(a)
        resp[a < _RESP_FLUSH] = 0.0
        total = np.add.reduce(resp, axis=1)
        some = total > 0.0
        lognorm = np.full(n, -np.inf)
        np.log(total, out=lognorm, where=some)
        lognorm += mx
        inv = np.zeros(n)
        np.divide(1.0, total, out=inv, where=some)
    else:
        resp = resp_in
        lognorm = np.zeros(n)
        inv = np.ones(n)
    if out_lognorm.shape[0] > 0:
        out_lognorm[:] = lognorm
    if out_resp.shape[0] > 0:
        np.multiply(resp, inv[:, None], out=out_resp)
    if out_label.shape[0] > 0:  # the largest before normalising, the first of ties
        out_label[:] = np.argmax(resp, axis=1)
    w = sw if weighted else None
    if resp_in.shape[0] > 0:
        ll = 0.0
    else:
        ll = float(np.add.reduce(lognorm) if w is None else w @ lognorm)
    _slot0(lls, ll)
    _slot0(wsums, float(np.add.reduce(w)) if weighted else float(n))
    if not do_stats:
        return
    wr = resp * (inv if w is None else w * inv)[:, None]
    S0 = np.add.reduce(wr, axis=0)
    if kernel_type == "tied":  # one common shift
        diff = xt - shift_c[0]
        S1 = wr.T @ diff
        S2 = _upper((diff * np.add.reduce(wr, axis=1)[:, None]).T @ diff)
    else:
        diff = xt[None] - shift_c[:, None]  # (K, n, d)
        wrk = wr.T[:, None, :]  # (K, 1, n): sums over rows as products
        S1 = np.matmul(wrk, diff)[:, 0]
        if kernel_type == "full":
            S2 = _upper(np.matmul(diff.transpose(0, 2, 1) * wrk, diff))
        else:
            S2 = np.matmul(wrk, diff * diff)[:, 0]
    _slot0(S0s, S0)
    _slot0(S1s, S1)
    _slot0(S2s, S2)


def sqdist_to_point(X, point, out, n_slots, block):
    """``_kernels.kmeans._sqdist_to_point`` in NumPy."""
    diff = X - point
    diff *= diff
    np.matmul(diff, np.ones(diff.shape[1]), out=out)


def lloyd_step(X, sw, centers, labels, sums, counts, inertia, block):
    """``_kernels.kmeans._lloyd_step`` in NumPy."""
    n = X.shape[0]
    K, d = centers.shape
    diff = X[None] - centers[:, None]  # (K, n, d), float64
    dist = np.matmul(diff * diff, np.ones(d))  # (K, n)
    best = np.argmin(dist, axis=0)  # the first of ties, as the kernel
    labels[:] = best
    w = sw if sw.shape[0] > 0 else np.ones(n)
    member = np.zeros((K, 1, n))  # w_i where row i is nearest centre k, else 0
    member[best, 0, np.arange(n)] = w
    _slot0(sums, np.matmul(member, diff)[:, 0])
    _slot0(counts, np.add.reduce(member[:, 0], axis=1))
    _slot0(inertia, float(w @ dist[best, np.arange(n)]))


def precision_cholesky(cov, out):
    """``_kernels.linalg._precision_cholesky`` in plain Python, the same
    operations in the same order (bitwise the same result)."""
    K, d, _ = cov.shape
    c = cov.tolist()
    for k in range(K):
        ck = c[k]
        L = [[0.0] * d for _ in range(d)]
        for j in range(d):
            s = ck[j][j]
            Lj = L[j]
            for p in range(j):
                s -= Lj[p] * Lj[p]
            if not (s > 0.0) or not math.isfinite(s):
                return k
            ljj = math.sqrt(s)
            Lj[j] = ljj
            for i in range(j + 1, d):
                s = ck[i][j]
                Li = L[i]
                for p in range(j):
                    s -= Li[p] * Lj[p]
                Li[j] = s / ljj
        o = [[0.0] * d for _ in range(d)]  # o[j][i] = out[k, j, i]
        for j in range(d):
            oj = o[j]
            oj[j] = 1.0 / L[j][j]
            for i in range(j + 1, d):
                Li = L[i]
                s = 0.0
                for p in range(j, i):
                    s += Li[p] * oj[p]
                oj[i] = -s / Li[i]
        out[k] = o
    return -1
