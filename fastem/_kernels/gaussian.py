"""Fused E-step kernels for Gaussian mixtures, one per covariance type.

Each ``_estep_stats_<type>`` kernel makes one pass over ``X``.  For every row
it computes the component log-densities through the Cholesky factor of the
precision (the mean subtracted before the product), the log-sum-exp, the
responsibilities, and adds them into shifted float64 sufficient statistics.
With ``do_stats=False`` the same kernel only fills the per-row outputs that
``predict``, ``predict_proba`` and ``score_samples`` need.

Rows are cut into blocks of ``block`` rows; block ``b`` belongs to slot
``s = floor(b * n_slots / n_blocks)`` (contiguous runs of blocks) and each
slot accumulates into its own partial statistics.  A kernel call processes
slots one at a time until none is left, claiming each atomically through
``ctrl``; :func:`fastem._parallel.run_slots` runs it on every thread.  The
number of slots is chosen by the caller and never depends on the thread
count; the caller sums the slots in order.  Results are therefore bitwise
identical whatever the number of threads.  Inside a block the data are
copied to a transposed ``(d, block)`` scratch so that the inner loops run
over rows with unit stride and vectorise.

Shared argument conventions (n rows, d features, K components, S slots):

========== =============== ====== ==============================================
name       shape           in/out meaning
========== =============== ====== ==============================================
X          (n, d)          in     float32 or float64, any memory layout
sw         (n,) or (0,)    in     float64 sample weights; (0,) means all ones
means      (K, d)          in     float64 component means
prec_chol  type dependent  in     float64 Cholesky factor of the precision,
                                  scikit-learn's convention (upper triangular
                                  U with precision = U U^T; 1/sigma for diag
                                  and spherical)
base       (K,)            in     log weight + log det(prec_chol) - d/2 log 2pi
shift      (K, d)          in     shift c_k of the statistics (tied: row 0)
resp_in    (n, K) or (0,K) in     responsibilities to use instead of computing
                                  them (initialisation); (0, K) computes them
do_stats   bool            in     accumulate the statistics
out_lognorm (n,) or (0,)   out    log p(x_i)
out_resp   (n, K) or (0,K) out    responsibilities
out_label  (n,) or (0,)    out    argmax_k of the responsibilities
out_logprob (n, K) or (0,K) out   log w_k + log p(x_i | k) (hidden Markov
                                  models' emissions); not with resp_in
S0s        (S, K)          out    per slot sum_i w_i r_ik
S1s        (S, K, d)       out    per slot sum_i w_i r_ik (x_i - c_k)
S2s        type dependent  out    per slot second moments (see each kernel)
lls        (S,)            out    per slot sum_i w_i log p(x_i)
wsums      (S,)            out    per slot sum_i w_i
block      int             in     rows per block
vmc        (C,)            in     ``vecmath.VM_CONSTS``, the exp/log constants
ctrl       (2,) int64      in/out slot claims (see ``sync``); zeros
========== =============== ====== ==============================================
"""

import numpy as np
from numba import njit, types
from numba.extending import overload

from .._config import JIT_OPTIONS
from .sync import claim_slot, finish_slot
from .vecmath import _exp_above, _fmax, _log_pos, vm_consts

_NEG_INF = -np.inf
#: Responsibilities below exp(_RESP_FLUSH) relative to the largest one (about
#: 7e-218) are set to 0: they cannot change any statistic, and their products
#: would otherwise underflow into subnormal numbers, which cost ~100 cycles
#: each on x86 and made iterations 3x slower on well-separated data.
_RESP_FLUSH = -500.0
#: Extra columns in every (rows, block) scratch: rows exactly 2 KiB apart
#: alias to the same L1 sets and made the transposing copy 4x slower.
_PAD = 8


# --------------------------------------------------------------------------
# helpers shared by all covariance types (inlined by LLVM)
# --------------------------------------------------------------------------


@njit(**JIT_OPTIONS)
def _load_block(X, sw, i0, nb, center, xt, w):
    """Rows ``i0:i0+nb`` of X minus ``center``, transposed into the float64
    scratch ``xt`` (d, B); their weights into w."""
    d = X.shape[1]
    if d == 2:  # constant strides: LLVM vectorises the de-interleaving (2.7x)
        c0 = center[0]
        c1 = center[1]
        for t in range(nb):
            xt[0, t] = X[i0 + t, 0] - c0
            xt[1, t] = X[i0 + t, 1] - c1
    else:
        for t in range(nb):
            for j in range(d):
                xt[j, t] = X[i0 + t, j] - center[j]
    if sw.shape[0] > 0:
        for t in range(nb):
            w[t] = sw[i0 + t]
    else:
        for t in range(nb):
            w[t] = 1.0


# --------------------------------------------------------------------------
# working precision of the log-densities
#
# Statistics are always formed in float64 from the float64 block ``xt``.  The
# quadratic forms of the log-densities are computed in the input's precision
# (``Xl`` below): for float32 input the vector units then take twice as many
# rows per instruction.  Both the block and the means are centred in float64
# first, so float32 only rounds values of the data's spread, never its offset.
# --------------------------------------------------------------------------


def _lowp_block(X, xt):
    """The block the log-densities read: ``xt`` itself for float64 input, a new
    scratch of the input's dtype otherwise."""


@overload(_lowp_block, jit_options={"cache": JIT_OPTIONS["cache"]})
def _lowp_block_impl(X, xt):
    if X.dtype == types.float64:
        return lambda X, xt: xt
    return lambda X, xt: np.zeros(xt.shape, dtype=X.dtype)


def _fill_lowp(X, xt, xl, nb):
    """xl[:, :nb] = xt[:, :nb] in xl's dtype (nothing to do for float64)."""


@overload(_fill_lowp, jit_options={"cache": JIT_OPTIONS["cache"]})
def _fill_lowp_impl(X, xt, xl, nb):
    if X.dtype == types.float64:
        return lambda X, xt, xl, nb: None

    def impl(X, xt, xl, nb):
        d = xt.shape[0]
        for j in range(d):
            for t in range(nb):
                xl[j, t] = xt[j, t]
    return impl


@njit(**JIT_OPTIONS)
def _scratch(X, K, block):
    """The per-thread block scratch of every kernel, reused for each slot the
    thread takes: the float64 block ``xt`` (d, B), ``xl`` (the block in the
    input's precision: xt itself for float64), the differences ``diff``
    (d, B), the quadratic forms ``q`` (K, B, input precision), ``resp``
    (K, B: log-densities, then responsibilities) and ``vec`` (5, B: weights,
    r, -, per-row log-densities, row maxima).  B is block + _PAD; xt and
    diff are zero-filled (the BLAS paths read whole rows, tails included,
    and the tails must be finite)."""
    d = X.shape[1]
    xt = np.zeros((d, block + _PAD))
    xl = _lowp_block(X, xt)
    diff = np.zeros((d, block + _PAD))
    q = np.empty((K, block + _PAD), dtype=X.dtype)
    resp = np.empty((K, block + _PAD))
    vec = np.empty((5, block + _PAD))
    return xt, xl, diff, q, resp, vec


@njit(**JIT_OPTIONS)
def _common_center(shift):
    """Mean of the rows of ``shift``: the point every block is centred on."""
    K, d = shift.shape
    center = np.zeros(d)
    for k in range(K):
        for j in range(d):
            center[j] += shift[k, j]
    for j in range(d):
        center[j] /= K
    return center


@njit(**JIT_OPTIONS)
def _centred(a, center):
    """a - center row by row (float64)."""
    out = np.empty_like(a)
    for k in range(a.shape[0]):
        for j in range(a.shape[1]):
            out[k, j] = a[k, j] - center[j]
    return out


@njit(**JIT_OPTIONS)
def _centring(shift, means):
    """The common centre of the blocks, and the shift and the means relative
    to it (float64)."""
    center = _common_center(shift)
    return center, _centred(shift, center), _centred(means, center)


@njit(**JIT_OPTIONS)
def _quad_to_logprob(q, base, nb, lp, mx):
    """lp = base - q / 2 in float64, from the quadratic forms ``q`` (K, B),
    and mx = the largest of them per row (-inf if none is larger; NaN is
    never the largest)."""
    K = q.shape[0]
    for t in range(nb):
        mx[t] = _NEG_INF
    for k in range(K):
        bk = base[k]
        for t in range(nb):
            v = bk - 0.5 * q[k, t]
            lp[k, t] = v
            mx[t] = _fmax(mx[t], v)


#: Rows whose totals (each in [1, K]) are multiplied before one log, when
#: only the block's sum of log-densities is needed: K**32 stays finite for
#: K < 2**31, and 32 roundings of the product (at most 3.6e-15 relative) cost
#: no more accuracy than 32 rounded logs.  At d=2 the per-row log was 15-20%
#: of an unweighted E-step.
_LOG_GROUP = 32


@njit(**JIT_OPTIONS)
def _normalise_block(resp, nb, lognorm, mx, vmc, per_row):
    """Log-sum-exp over components, in place: ``resp`` (K, B) holds the
    log-densities on entry and exp(log-density - row maximum) on exit, and
    ``mx`` the row maxima of ``_quad_to_logprob`` on entry and on exit the
    factor (1 / row total) that makes those responsibilities (applied by
    ``_finish_block``, folded into the weights); ``vmc`` is
    ``vecmath.VM_CONSTS``.

    With ``per_row`` the log-density of each row goes to ``lognorm`` and 0 is
    returned; otherwise only their sum over the block is returned (one log
    per ``_LOG_GROUP`` rows) and ``lognorm`` is scratch."""
    K = resp.shape[0]
    c = vm_consts(vmc)
    for t in range(nb):
        if mx[t] == _NEG_INF:  # no component has any density here
            mx[t] = 0.0
        lognorm[t] = 0.0
    for k in range(K):
        for t in range(nb):
            a = resp[k, t] - mx[t]
            e = _exp_above(a, c, _RESP_FLUSH)
            resp[k, t] = e
            lognorm[t] += e
    block_sum = 0.0
    if per_row:
        for t in range(nb):
            total = lognorm[t]
            lognorm[t] = mx[t] + _log_pos(total, c)
            mx[t] = 1.0 / total if total > 0.0 else 0.0
    else:
        for g0 in range(0, nb, _LOG_GROUP):
            prod = 1.0
            for t in range(g0, min(nb, g0 + _LOG_GROUP)):
                prod *= lognorm[t]
            block_sum += _log_pos(prod, c)
        for t in range(nb):
            block_sum += mx[t]
            total = lognorm[t]
            mx[t] = 1.0 / total if total > 0.0 else 0.0
    return block_sum


@njit(**JIT_OPTIONS)
def _finish_block(resp_in, i0, nb, resp, vec, out_lognorm, out_resp, out_label, out_logprob,
                  vmc, weighted):
    """The part of a block every covariance type shares, after its
    log-densities (in ``resp``, with their row maxima in ``vec[4]``, from
    ``_quad_to_logprob``): responsibilities (copied from ``resp_in`` if
    given, else by log-sum-exp), the per-row outputs, and (sum w log p,
    sum w) of the block.  Asked for ``out_logprob`` alone (and, the
    callers ensure, no statistics), it skips the log-sum-exp and returns
    (0, 0).

    ``vec`` is the slot's (5, block) scratch; row 0 holds the weights, which
    are all 1 unless ``weighted``.  On return the responsibilities are
    ``resp[k, t]`` times ``vec[0][t]``, the row's weight already multiplied
    by the log-sum-exp's normalising factor: the statistics form w r from
    them with one multiply, and no pass over ``resp`` normalises it.
    """
    w = vec[0]
    lognorm = vec[3]
    K = resp.shape[0]
    per_row = weighted or out_lognorm.shape[0] > 0
    ll = 0.0
    inv = vec[4]  # the normalising factors, after the log-sum-exp
    if out_logprob.shape[0] > 0 and resp_in.shape[0] == 0:  # log w_k + log p(x | k)
        for t in range(nb):
            for k in range(K):
                out_logprob[i0 + t, k] = resp[k, t]
        if out_lognorm.shape[0] == 0 and out_resp.shape[0] == 0 and out_label.shape[0] == 0:
            return 0.0, 0.0  # the log-densities alone (no statistics): no log-sum-exp
    if resp_in.shape[0] > 0:
        for k in range(K):
            for t in range(nb):
                resp[k, t] = resp_in[i0 + t, k]
        for t in range(nb):
            lognorm[t] = 0.0
            inv[t] = 1.0
    else:
        ll = _normalise_block(resp, nb, lognorm, inv, vmc, per_row)
    if out_lognorm.shape[0] > 0:
        for t in range(nb):
            out_lognorm[i0 + t] = lognorm[t]
    if out_resp.shape[0] > 0:
        for t in range(nb):
            for k in range(K):
                out_resp[i0 + t, k] = resp[k, t] * inv[t]
    if out_label.shape[0] > 0:  # the largest before normalising is the largest
        for t in range(nb):
            best = 0
            bv = resp[0, t]
            for k in range(1, K):
                if resp[k, t] > bv:
                    bv = resp[k, t]
                    best = k
            out_label[i0 + t] = best
    if not weighted:
        if per_row:
            for t in range(nb):
                ll += lognorm[t]
        for t in range(nb):
            w[t] = inv[t]
        return ll, float(nb)
    ws = 0.0
    for t in range(nb):
        ll += w[t] * lognorm[t]
        ws += w[t]
        w[t] *= inv[t]
    return ll, ws


@njit(**JIT_OPTIONS)
def _weighted_resp(nb, w, resp, k, r):
    """r = w * resp[k]; returns sum(r)."""
    s0 = 0.0
    for t in range(nb):
        v = resp[k, t] * w[t]
        r[t] = v
        s0 += v
    return s0


@njit(**JIT_OPTIONS)
def _first_moments_block(xt, nb, w, resp, shift, k, r, diff, rd, S0, S1):
    """r = w * resp[k]; diff = x - shift[k]; rd = r * diff; add S0[k], S1[k]."""
    d = xt.shape[0]
    S0[k] += _weighted_resp(nb, w, resp, k, r)
    for j in range(d):
        c = shift[k, j]
        s1 = 0.0
        for t in range(nb):
            v = xt[j, t] - c
            u = r[t] * v
            diff[j, t] = v
            rd[j, t] = u
            s1 += u
        S1[k, j] += s1


#: From this many features on, the triangular products (the full kernel's
#: U^T (x - mu), tied's whitening) and the off-diagonal half of the scatter
#: S2 are BLAS matrix products (np.dot into preallocated buffers; no faster
#: at d=16).  The caller pins BLAS to one thread.
BLAS_MIN_FEATURES = 32


@njit(**JIT_OPTIONS)
def _tri_dot(l11, lb, x, y):
    """y = L x for a lower-triangular L given as its leading h x h triangle
    ``l11`` and its last d - h rows ``lb`` (h = d // 2): two BLAS products
    that skip the zero upper-right block, 3/4 of the work of one dense L x.
    Reads and writes whole rows of x and y (tails too)."""
    h = l11.shape[0]
    np.dot(l11, x[:h], y[:h])
    np.dot(lb, x, y[h:])


@njit(**JIT_OPTIONS)
def _split_lower(L, l11, lb):
    """The ``_tri_dot`` operands of a lower-triangular L (d, d)."""
    h = l11.shape[0]
    d = L.shape[0]
    for a in range(h):
        for b in range(h):
            l11[a, b] = L[a, b]
    for a in range(h, d):
        for b in range(d):
            lb[a - h, b] = L[a, b]


@njit(**JIT_OPTIONS)
def _scatter_upper_block(nb, diff, rd, S2, tmp):
    """S2[a, b] += sum_t rd[a, t] diff[b, t] for a <= b, where rd = r * diff.

    From BLAS_MIN_FEATURES features on, the block a < h <= b (h = d // 2,
    half of the work) is one BLAS product over whole rows, into ``tmp``
    (h, d - h): rd's columns past ``nb`` are zeroed for it, and diff's must
    be finite.  The two triangles are the loop below."""
    d = diff.shape[0]
    if d < BLAS_MIN_FEATURES:
        _scatter_upper_range(nb, diff, rd, S2, 0, d)
        return
    for j in range(d):
        for t in range(nb, rd.shape[1]):
            rd[j, t] = 0.0
    h = d // 2
    np.dot(rd[:h], diff[h:].T, tmp)
    for a in range(h):
        for b in range(d - h):
            S2[a, h + b] += tmp[a, b]
    _scatter_upper_range(nb, diff, rd, S2, 0, h)
    _scatter_upper_range(nb, diff, rd, S2, h, d)


@njit(**JIT_OPTIONS)
def _scatter_upper_range(nb, diff, rd, S2, lo, hi):
    """S2[a, b] += sum_t rd[a, t] diff[b, t] for lo <= a <= b < hi.

    2x2 tiles of (a, b): each loaded value feeds two multiply-adds.
    """
    for a in range(lo, hi, 2):
        a1 = min(a + 1, hi - 1)
        for b in range(a, hi, 2):
            b1 = min(b + 1, hi - 1)
            s00 = 0.0
            s01 = 0.0
            s10 = 0.0
            s11 = 0.0
            for t in range(nb):
                x0 = rd[a, t]
                x1 = rd[a1, t]
                y0 = diff[b, t]
                y1 = diff[b1, t]
                s00 += x0 * y0
                s01 += x0 * y1
                s10 += x1 * y0
                s11 += x1 * y1
            S2[a, b] += s00
            if b1 != b:
                S2[a, b1] += s01
            if a1 != a:
                if b >= a1:
                    S2[a1, b] += s10
                if b1 != b:
                    S2[a1, b1] += s11


@njit(**JIT_OPTIONS)
def _slot_range(s, n_slots, n_blocks):
    return (s * n_blocks) // n_slots, ((s + 1) * n_blocks) // n_slots


# --------------------------------------------------------------------------
# full
# --------------------------------------------------------------------------


@njit(**JIT_OPTIONS)
def _quad_block_full(xl, nb, ml, ul, l11, lb, q, diff, ybuf, y):
    """q[k] = ||U_k^T (x - mu_k)||^2 in xl's dtype (xl, ml centred); from
    BLAS_MIN_FEATURES on, U_k^T as ``_tri_dot`` operands ``l11[k]``,
    ``lb[k]``."""
    d = xl.shape[0]
    K = ml.shape[0]
    use_blas = d >= BLAS_MIN_FEATURES
    width = diff.shape[1] if use_blas else nb  # BLAS needs whole, contiguous rows
    for k in range(K):
        acc = q[k]
        for j in range(d):
            m = ml[k, j]
            for t in range(width):
                diff[j, t] = xl[j, t] - m
        if use_blas:
            _tri_dot(l11[k], lb[k], diff, ybuf)  # y = U^T (x - mu)
            for t in range(nb):
                acc[t] = ybuf[0, t] * ybuf[0, t]
            for a in range(1, d):
                for t in range(nb):
                    acc[t] += ybuf[a, t] * ybuf[a, t]
        else:
            # y_a = sum_{b <= a} U[b, a] diff_b; the first term initialises y,
            # the last one also adds y_a^2 into acc (fewer passes over the block)
            c = ul[k, 0, 0]
            for t in range(nb):
                v = c * diff[0, t]
                acc[t] = v * v
            for a in range(1, d):
                c = ul[k, 0, a]
                for t in range(nb):
                    y[t] = c * diff[0, t]
                # four terms per pass over the block: one load and store of y
                # for four multiply-adds (the loop is bound by memory operations)
                b = 1
                while b + 4 <= a:
                    c0 = ul[k, b, a]
                    c1 = ul[k, b + 1, a]
                    c2 = ul[k, b + 2, a]
                    c3 = ul[k, b + 3, a]
                    for t in range(nb):
                        y[t] += (c0 * diff[b, t] + c1 * diff[b + 1, t]) + (
                            c2 * diff[b + 2, t] + c3 * diff[b + 3, t])
                    b += 4
                for bb in range(b, a):
                    c = ul[k, bb, a]
                    for t in range(nb):
                        y[t] += c * diff[bb, t]
                c = ul[k, a, a]
                for t in range(nb):
                    v = y[t] + c * diff[a, t]
                    acc[t] += v * v


@njit(**JIT_OPTIONS)
def _stats_block_full(xt, nb, w, resp, shift, S0, S1, S2, r, rd, diff, tmp):
    K = resp.shape[0]
    for k in range(K):
        _first_moments_block(xt, nb, w, resp, shift, k, r, diff, rd, S0, S1)
        _scatter_upper_block(nb, diff, rd, S2[k], tmp)


@njit(**JIT_OPTIONS)
def _estep_stats_full(X, sw, means, prec_chol, base, shift, resp_in, do_stats,
                      out_lognorm, out_resp, out_label, out_logprob, S0s, S1s, S2s, lls,
                      wsums, block, vmc, ctrl):
    """Fused E-step, full covariances.

    prec_chol : (K, d, d) upper-triangular factors, input.
    S2s : (S, K, d, d) output; per slot the upper triangle (a <= b) of
        sum_i w_i r_ik (x_i - c_k)(x_i - c_k)^T; the lower triangle is zero.
    Other arguments: see the module docstring.
    """
    n, d = X.shape
    K = means.shape[0]
    n_slots = S0s.shape[0]
    n_blocks = (n + block - 1) // block
    center, shift_c, means_c = _centring(shift, means)
    # the log-density operands in the input's precision
    ml = np.empty((K, d), dtype=X.dtype)
    ul = np.empty((K, d, d), dtype=X.dtype)
    ult = np.empty((d, d), dtype=X.dtype)
    h = d // 2 if d >= BLAS_MIN_FEATURES else 0
    l11 = np.empty((K, h, h), dtype=X.dtype)
    lb = np.empty((K, d - h if h else 0, d), dtype=X.dtype)
    for k in range(K):
        for a in range(d):
            ml[k, a] = means_c[k, a]
            for b in range(d):
                ul[k, a, b] = prec_chol[k, a, b]
                ult[b, a] = prec_chol[k, a, b]
        if h:
            _split_lower(ult, l11[k], lb[k])
    xt, xl, diff, q, resp, vec = _scratch(X, K, block)
    diffl = _lowp_block(X, diff)
    ybuf = np.empty((d, block + _PAD), dtype=X.dtype)
    rdb = np.zeros((d, block + _PAD))
    tmp = np.empty((d // 2, d - d // 2))
    yl = np.empty(block + _PAD, dtype=X.dtype)
    while True:
        s = claim_slot(ctrl)
        if s >= n_slots:
            break
        S0s[s, :] = 0.0
        S1s[s, :, :] = 0.0
        S2s[s, :, :, :] = 0.0
        S0 = S0s[s]
        S1 = S1s[s]
        S2 = S2s[s]
        w = vec[0]
        ll = 0.0
        ws = 0.0
        b0, b1 = _slot_range(s, n_slots, n_blocks)
        for blk in range(b0, b1):
            i0 = blk * block
            nb = min(block, n - i0)
            _load_block(X, sw, i0, nb, center, xt, w)
            if resp_in.shape[0] == 0:
                _fill_lowp(X, xt, xl, nb)
                _quad_block_full(xl, nb, ml, ul, l11, lb, q, diffl, ybuf, yl)
                _quad_to_logprob(q, base, nb, resp, vec[4])
            bll, bws = _finish_block(resp_in, i0, nb, resp, vec, out_lognorm, out_resp,
                                     out_label, out_logprob, vmc, sw.shape[0] > 0)
            ll += bll
            ws += bws
            if do_stats:
                _stats_block_full(xt, nb, w, resp, shift_c, S0, S1, S2, vec[1], rdb, diff,
                                  tmp)
        lls[s] = ll
        wsums[s] = ws
        finish_slot(ctrl)


# --------------------------------------------------------------------------
# log-densities of diagonal quadratic forms (diag, spherical, and tied after
# whitening)
# --------------------------------------------------------------------------


@njit(**JIT_OPTIONS)
def _logprob_block_diag(xl, nb, sl, sml, base, q, lp, mx):
    """lp[k] = base[k] - sum_j (s_kj x_j - s_kj mu_kj)^2 in float64 (the sum
    in xl's dtype, in ``q``), from ``sl`` = s = sqrt(prec_chol**2 / 2) and
    ``sml`` = s mu, and mx = the row maxima as in ``_quad_to_logprob``.

    Each term is two multiply-adds, four features per pass over the block
    (1.3x on this loop at d = 16 against (x - mu), square and scale one
    feature at a time).  x is the block centred in float64, so s mu_kj is as
    large as the component's distance from the data's centre and no larger:
    rounding ``sml`` costs what rounding x - mu did.  Diag, spherical (s
    repeated over the features) and tied (the whitened block, s = sqrt(1/2))
    all run this loop.  At d = 2 one pass per component (no ``q``);
    otherwise the last feature's pass also forms ``lp`` and ``mx``."""
    d = xl.shape[0]
    K = sl.shape[0]
    for t in range(nb):
        mx[t] = _NEG_INF
    for k in range(K):
        bk = base[k]
        s0 = sl[k, 0]
        c0 = sml[k, 0]
        if d == 2:
            s1 = sl[k, 1]
            c1 = sml[k, 1]
            for t in range(nb):
                u0 = s0 * xl[0, t] - c0
                u1 = s1 * xl[1, t] - c1
                v = bk - (u0 * u0 + u1 * u1)
                lp[k, t] = v
                mx[t] = _fmax(mx[t], v)
            continue
        acc = q[k]
        if d == 1:
            for t in range(nb):
                acc[t] = 0.0
        else:
            for t in range(nb):
                u0 = s0 * xl[0, t] - c0
                acc[t] = u0 * u0
        j = 1
        while j + 4 <= d - 1:
            sa = sl[k, j]
            sb = sl[k, j + 1]
            sc = sl[k, j + 2]
            sd = sl[k, j + 3]
            ca = sml[k, j]
            cb = sml[k, j + 1]
            cc = sml[k, j + 2]
            cd = sml[k, j + 3]
            for t in range(nb):
                ua = sa * xl[j, t] - ca
                ub = sb * xl[j + 1, t] - cb
                uc = sc * xl[j + 2, t] - cc
                ud = sd * xl[j + 3, t] - cd
                acc[t] += (ua * ua + ub * ub) + (uc * uc + ud * ud)
            j += 4
        for jj in range(j, d - 1):
            sj = sl[k, jj]
            cj = sml[k, jj]
            for t in range(nb):
                u = sj * xl[jj, t] - cj
                acc[t] += u * u
        sj = sl[k, d - 1]
        cj = sml[k, d - 1]
        for t in range(nb):
            u = sj * xl[d - 1, t] - cj
            v = bk - (acc[t] + u * u)
            lp[k, t] = v
            mx[t] = _fmax(mx[t], v)


# --------------------------------------------------------------------------
# tied: one covariance; statistics use one common shift c = shift[0]
# --------------------------------------------------------------------------


@njit(**JIT_OPTIONS)
def _whiten_block_tied(xl, nb, ul, l11, lb, xp):
    """xp = x U (x centred).  The log-densities are then those of unit
    spherical components at (mu_k - c) U: ``_logprob_block_diag``.  From
    BLAS_MIN_FEATURES on, U^T given as ``_tri_dot`` operands."""
    d = xl.shape[0]
    if d >= BLAS_MIN_FEATURES:
        _tri_dot(l11, lb, xl, xp)
        return
    for a in range(d):
        c = ul[0, a]
        for t in range(nb):
            xp[a, t] = c * xl[0, t]
        for b in range(1, a + 1):
            c = ul[b, a]
            for t in range(nb):
                xp[a, t] += c * xl[b, t]


@njit(**JIT_OPTIONS)
def _stats_block_tied(xt, nb, w, resp, shift, S0, S1, S2, r, rd, diff, tmp):
    d = xt.shape[0]
    K = resp.shape[0]
    # one common shift: the first moments need no stored differences
    for k in range(K):
        S0[k] += _weighted_resp(nb, w, resp, k, r)
        for j in range(d):
            c = shift[k, j]
            s1 = 0.0
            for t in range(nb):
                s1 += r[t] * (xt[j, t] - c)
            S1[k, j] += s1
    # weight of each row in the pooled scatter: w_i * sum_k r_ik
    for t in range(nb):
        r[t] = resp[0, t]
    for k in range(1, K):
        for t in range(nb):
            r[t] += resp[k, t]
    for t in range(nb):
        r[t] *= w[t]
    for j in range(d):
        c = shift[0, j]
        for t in range(nb):
            v = xt[j, t] - c
            diff[j, t] = v
            rd[j, t] = r[t] * v
    _scatter_upper_block(nb, diff, rd, S2, tmp)


@njit(**JIT_OPTIONS)
def _estep_stats_tied(X, sw, means, prec_chol, base, shift, resp_in, do_stats,
                      out_lognorm, out_resp, out_label, out_logprob, S0s, S1s, S2s, lls,
                      wsums, block, vmc, ctrl):
    """Fused E-step, one tied covariance.

    prec_chol : (d, d) upper-triangular factor, input.
    shift : (K, d), all rows equal (the common shift c), input.
    S2s : (S, d, d) output; per slot the upper triangle of
        sum_i w_i (sum_k r_ik) (x_i - c)(x_i - c)^T.
    Other arguments: see the module docstring.
    """
    n, d = X.shape
    K = means.shape[0]
    n_slots = S0s.shape[0]
    n_blocks = (n + block - 1) // block
    center, shift_c, means_c = _centring(shift, means)
    # (mu_k - c) U, the mean's image in the whitened space, and U, in the
    # input's precision
    # -1/2 ||.||^2 in _logprob_block_diag: s = sqrt(1/2), s (mu_k - c) U
    sh = np.full((K, d), np.sqrt(0.5), dtype=X.dtype)
    smp = np.empty((K, d), dtype=X.dtype)
    ul = np.empty((d, d), dtype=X.dtype)
    ult = np.empty((d, d), dtype=X.dtype)
    for a in range(d):
        for b in range(d):
            ul[a, b] = prec_chol[a, b]
            ult[b, a] = prec_chol[a, b]
    h = d // 2 if d >= BLAS_MIN_FEATURES else 0
    l11 = np.empty((h, h), dtype=X.dtype)
    lb = np.empty((d - h if h else 0, d), dtype=X.dtype)
    if h:
        _split_lower(ult, l11, lb)
    for k in range(K):
        for a in range(d):
            v = 0.0
            for b in range(a + 1):
                v += means_c[k, b] * prec_chol[b, a]
            smp[k, a] = np.sqrt(0.5) * v
    xt, xl, diff, q, resp, vec = _scratch(X, K, block)
    rdb = np.zeros((d, block + _PAD))
    tmp = np.empty((d // 2, d - d // 2))
    xpb = np.empty((d, block + _PAD), dtype=X.dtype)
    while True:
        s = claim_slot(ctrl)
        if s >= n_slots:
            break
        S0s[s, :] = 0.0
        S1s[s, :, :] = 0.0
        S2s[s, :, :] = 0.0
        S0 = S0s[s]
        S1 = S1s[s]
        S2 = S2s[s]
        w = vec[0]
        ll = 0.0
        ws = 0.0
        b0, b1 = _slot_range(s, n_slots, n_blocks)
        for blk in range(b0, b1):
            i0 = blk * block
            nb = min(block, n - i0)
            _load_block(X, sw, i0, nb, center, xt, w)
            if resp_in.shape[0] == 0:
                _fill_lowp(X, xt, xl, nb)
                _whiten_block_tied(xl, nb, ul, l11, lb, xpb)
                _logprob_block_diag(xpb, nb, sh, smp, base, q, resp, vec[4])
            bll, bws = _finish_block(resp_in, i0, nb, resp, vec, out_lognorm, out_resp,
                                     out_label, out_logprob, vmc, sw.shape[0] > 0)
            ll += bll
            ws += bws
            if do_stats:
                _stats_block_tied(xt, nb, w, resp, shift_c, S0, S1, S2, vec[1], rdb, diff,
                                  tmp)
        lls[s] = ll
        wsums[s] = ws
        finish_slot(ctrl)


# --------------------------------------------------------------------------
# diag
# --------------------------------------------------------------------------


@njit(**JIT_OPTIONS)
def _stats_block_diag(xt, nb, w, resp, shift, S0, S1, S2, r, diff):
    d = xt.shape[0]
    K = resp.shape[0]
    for k in range(K):
        if d == 2:  # one pass, without storing w r
            c0 = shift[k, 0]
            c1 = shift[k, 1]
            s0 = 0.0
            s10 = 0.0
            s11 = 0.0
            s20 = 0.0
            s21 = 0.0
            for t in range(nb):
                u = resp[k, t] * w[t]
                v0 = xt[0, t] - c0
                v1 = xt[1, t] - c1
                u0 = u * v0
                u1 = u * v1
                s0 += u
                s10 += u0
                s11 += u1
                s20 += u0 * v0
                s21 += u1 * v1
            S0[k] += s0
            S1[k, 0] += s10
            S1[k, 1] += s11
            S2[k, 0] += s20
            S2[k, 1] += s21
            continue
        S0[k] += _weighted_resp(nb, w, resp, k, r)
        j = 0
        while j + 4 <= d:  # four features per pass: w r loaded once for four
            ca = shift[k, j]
            cb = shift[k, j + 1]
            cc = shift[k, j + 2]
            cd = shift[k, j + 3]
            s1a = 0.0
            s1b = 0.0
            s1c = 0.0
            s1d = 0.0
            s2a = 0.0
            s2b = 0.0
            s2c = 0.0
            s2d = 0.0
            for t in range(nb):
                u = r[t]
                va = xt[j, t] - ca
                vb = xt[j + 1, t] - cb
                vc = xt[j + 2, t] - cc
                vd = xt[j + 3, t] - cd
                ua = u * va
                ub = u * vb
                uc = u * vc
                ud = u * vd
                s1a += ua
                s1b += ub
                s1c += uc
                s1d += ud
                s2a += ua * va
                s2b += ub * vb
                s2c += uc * vc
                s2d += ud * vd
            S1[k, j] += s1a
            S1[k, j + 1] += s1b
            S1[k, j + 2] += s1c
            S1[k, j + 3] += s1d
            S2[k, j] += s2a
            S2[k, j + 1] += s2b
            S2[k, j + 2] += s2c
            S2[k, j + 3] += s2d
            j += 4
        for jj in range(j, d):
            c = shift[k, jj]
            s1 = 0.0
            s2 = 0.0
            for t in range(nb):
                v = xt[jj, t] - c
                rv = r[t] * v
                s1 += rv
                s2 += rv * v
            S1[k, jj] += s1
            S2[k, jj] += s2


@njit(**JIT_OPTIONS)
def _estep_stats_diag(X, sw, means, prec_chol, base, shift, resp_in, do_stats,
                      out_lognorm, out_resp, out_label, out_logprob, S0s, S1s, S2s, lls,
                      wsums, block, vmc, ctrl):
    """Fused E-step, diagonal (and spherical) covariances.

    prec_chol : (K, d) inverse standard deviations, input; (K, 1) for
        spherical covariances (one per component).
    S2s : (S, K, d) output; per slot sum_i w_i r_ik (x_i - c_k)**2 (the
        caller sums them over the features for spherical covariances).
    Other arguments: see the module docstring.
    """
    n, d = X.shape
    K = means.shape[0]
    n_slots = S0s.shape[0]
    n_blocks = (n + block - 1) // block
    center, shift_c, means_c = _centring(shift, means)
    sl = np.empty((K, d), dtype=X.dtype)
    sml = np.empty((K, d), dtype=X.dtype)
    spherical = prec_chol.shape[1] == 1
    for k in range(K):
        for j in range(d):
            sp = np.sqrt(0.5) * abs(prec_chol[k, 0] if spherical else prec_chol[k, j])
            sl[k, j] = sp
            sml[k, j] = sp * means_c[k, j]
    xt, xl, diff, q, resp, vec = _scratch(X, K, block)
    while True:
        s = claim_slot(ctrl)
        if s >= n_slots:
            break
        S0s[s, :] = 0.0
        S1s[s, :, :] = 0.0
        S2s[s, :, :] = 0.0
        S0 = S0s[s]
        S1 = S1s[s]
        S2 = S2s[s]
        w = vec[0]
        ll = 0.0
        ws = 0.0
        b0, b1 = _slot_range(s, n_slots, n_blocks)
        for blk in range(b0, b1):
            i0 = blk * block
            nb = min(block, n - i0)
            _load_block(X, sw, i0, nb, center, xt, w)
            if resp_in.shape[0] == 0:
                _fill_lowp(X, xt, xl, nb)
                _logprob_block_diag(xl, nb, sl, sml, base, q, resp, vec[4])
            bll, bws = _finish_block(resp_in, i0, nb, resp, vec, out_lognorm, out_resp,
                                     out_label, out_logprob, vmc, sw.shape[0] > 0)
            ll += bll
            ws += bws
            if do_stats:
                _stats_block_diag(xt, nb, w, resp, shift_c, S0, S1, S2, vec[1], diff)
        lls[s] = ll
        wsums[s] = ws
        finish_slot(ctrl)


#: Kernel per covariance type; every kernel has the same signature.  The
#: spherical type has none of its own: it is the diag kernel given one
#: inverse standard deviation per component (prec_chol of shape (K, 1)), its
#: S2 summed over the features by the caller (one kernel fewer to compile).
ESTEP_KERNELS = {
    "full": _estep_stats_full,
    "tied": _estep_stats_tied,
    "diag": _estep_stats_diag,
}
