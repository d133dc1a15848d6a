"""Fused E-step kernels for the discrete mixture families.

Bernoulli, binomial, Poisson and multinomial components all have a
log-density that is linear in x: ``log w_k + log p(x | k) = x . a_k + b_k +
h(x)``, where ``h(x)`` (binomial coefficients, ``-log x!``, the multinomial
coefficient) does not depend on k.  It cancels in the responsibilities, so
the kernels never see it; the caller adds ``sum_i w_i h(x_i)`` to the
log-likelihood and ``h(x_i)`` to the per-row log-densities.  One pair of
kernels serves the four families, given ``A`` (K, d) and ``b`` (K,) with the
log weights and the per-component constants (Bernoulli's
``sum_j log(1 - p_kj)``, Poisson's ``-sum_j rate_kj``) folded into b:

- :func:`_estep_linear_dense`: X is an (n, d) array of uint8 (bool viewed as
  uint8), int64, float32 or float64, read as it is: only a block of rows
  at a time is converted, into a float64 ``(block, d)`` scratch (float64 X
  is used in place for whole blocks).  The log-joint ``x A^T + b`` and the
  first moments ``(w r)^T x`` of a block are each one BLAS product.
- :func:`_estep_linear_csr`: X as CSR arrays; only the non-zeros are
  touched, both for the log-joint (``b_k + sum over the row's non-zeros of
  A[k, j] x_j``) and the moments, which are kept transposed, ``(d, K)`` per
  slot, so that one non-zero updates K contiguous values.

Categorical components have ``log p(x | k) = sum_j log theta[k, off_j +
x_j]``, a gather from a flattened (K, sum_j C_j) table;
:func:`_estep_categorical` adds ``counts[k, off_j + x_j] += w r_k``.

Rows, blocks, slots, the per-row outputs and the log-sum-exp are those of the
Gaussian kernels (:mod:`fastem._kernels.gaussian`, whose block helpers these
kernels call): block ``b`` belongs to slot ``floor(b * n_slots / n_blocks)``,
slots are claimed through ``ctrl`` and summed in slot order by the caller,
so results are bitwise identical for any number of threads.  The three
kernels share one slot loop, :func:`_slot_loop`; each gives it its operands
and three functions: read a block (and its log-joints), add its statistics,
end a slot.

Bad input never makes a kernel read out of bounds: a category code outside
``0 .. C_j - 1`` or a CSR column index outside ``0 .. d - 1`` is replaced by
a valid one and makes its slot's log-likelihood NaN, which tells the caller
to look for it and raise (no extra pass over X in the usual case).  ``A`` and
``b`` must be finite (``0 * -inf`` would be NaN): the families keep
probabilities and rates away from 0 and 1; the categorical table may hold
``-inf`` (a category a component never produces).

Arguments (n rows, d features, K components, S slots; see also the table of
:mod:`fastem._kernels.gaussian` for sw, resp_in, do_stats, the per-row
outputs, S0s, lls, wsums, block, vmc and ctrl, which mean the same here):

=========== ============== ====== =============================================
name        shape          in/out meaning
=========== ============== ====== =============================================
X           (n, d)         in     dense: uint8, int64, float32 or float64;
                                  categorical: uint8 or int64 codes
data        (nnz,)         in     CSR values, float64
indices     (nnz,)         in     CSR column indices, int32 or int64
indptr      (n + 1,)       in     CSR row pointers, same dtype as indices
A           (K, d)         in     float64 coefficients of x
b           (K,)           in     float64 constants, log weights included
off         (d + 1,)       in     int64 column offsets into the table:
                                  C_j = off[j + 1] - off[j]
logtheta    (K, off[d])    in     float64 log category probabilities
logw        (K,)           in     float64 log weights
S1s         (S, K, d)      out    dense: per slot sum_i w_i r_ik x_ij
            (S, d, K)             CSR: the same, transposed
counts_s    (S, K, off[d]) out    per slot sum_i w_i r_ik [off_j + x_ij = c]
=========== ============== ====== =============================================
"""

import numpy as np
from numba import njit, types
from numba.extending import overload

from .._config import JIT_OPTIONS
from .gaussian import _NEG_INF, _finish_block, _slot_range, _weighted_resp
from .sync import claim_slot, finish_slot
from .vecmath import _fmax

#: The slot loop takes the kernel's block functions as arguments.  A function
#: passed as a value is a dynamic address in the compiled code, which Numba
#: cannot cache; inlined into each kernel (same flags), the loop calls them
#: directly, the addresses are dead code, and the kernels are cached.
_LOOP_OPTIONS = dict(JIT_OPTIONS, cache=False, inline="always")


@njit(**JIT_OPTIONS)
def _load_weights(sw, i0, nb, w):
    weighted = sw.shape[0] > 0
    for t in range(nb):
        w[t] = sw[i0 + t] if weighted else 1.0


@njit(**_LOOP_OPTIONS)
def _slot_loop(n, m, read_block, add_stats, end_slot, sw, resp_in, do_stats, out_lognorm,
               out_resp, out_label, out_logprob, S0s, Ss, lls, wsums, block, vmc, ctrl):
    """What every kernel here does with its n rows: claim slots until none
    is left; for each, zero its statistics ``S0s[s]`` and ``Ss[s]``, run its
    blocks of rows, and publish its log-likelihood (NaN if it met bad input)
    and weight.  ``m`` is the kernel's tuple of operands and per-thread
    scratch, read by its three functions:

    - ``read_block(m, i0, nb, logjoint, lp, mx)`` -> ``(x, bad)``: reads rows
      i0 .. i0 + nb - 1 into ``x`` (what ``add_stats`` reads of them) and,
      if ``logjoint``, writes their log-joints into ``lp`` (K, block) and
      the row maxima into ``mx``, as ``_finish_block`` takes them; ``bad``
      counts the values it read as others (codes, column indices out of
      range);
    - ``add_stats(m, x, i0, nb, w, resp, S0, S)``: adds the block's
      statistics into S0 and S = Ss[s], from ``w`` and ``resp`` as
      ``_finish_block`` leaves them;
    - ``end_slot(m, S, do_stats)``: completes S after the slot's last block.
    """
    K = S0s.shape[1]
    n_slots = S0s.shape[0]
    n_blocks = (n + block - 1) // block
    resp = np.zeros((K, block))  # no padding: no kernel here copies X transposed
    vec = np.empty((5, block))
    weighted = sw.shape[0] > 0
    logjoint = resp_in.shape[0] == 0
    while True:
        s = claim_slot(ctrl)
        if s >= n_slots:
            break
        S0 = S0s[s]
        S = Ss[s]
        S0[:] = 0.0
        S[:, :] = 0.0
        ll = 0.0
        ws = 0.0
        bad = 0
        b0, b1 = _slot_range(s, n_slots, n_blocks)
        for blk in range(b0, b1):
            i0 = blk * block
            nb = min(block, n - i0)
            _load_weights(sw, i0, nb, vec[0])
            x, nbad = read_block(m, i0, nb, logjoint, resp, vec[4])
            bad += nbad
            bll, bws = _finish_block(resp_in, i0, nb, resp, vec, out_lognorm, out_resp,
                                     out_label, out_logprob, vmc, weighted)
            ll += bll
            ws += bws
            if do_stats:
                add_stats(m, x, i0, nb, vec[0], resp, S0, S)
        end_slot(m, S, do_stats)
        lls[s] = np.nan if bad > 0 else ll
        wsums[s] = ws
        finish_slot(ctrl)


@njit(**JIT_OPTIONS)
def _no_end(m, S, do_stats):
    """``end_slot`` of the kernels whose statistics are complete."""


# --------------------------------------------------------------------------
# linear log-densities, dense X
# --------------------------------------------------------------------------


def _block_rows(X, i0, nb, xb):
    """Rows i0 .. i0 + nb - 1 of X as a C-contiguous float64 (block, d)
    array: a view of float64 X for a whole block, otherwise ``xb`` holding
    them converted, its rows past nb zero."""


@overload(_block_rows, jit_options={"cache": JIT_OPTIONS["cache"]})
def _block_rows_impl(X, i0, nb, xb):
    if X.dtype == types.float64:
        def view(X, i0, nb, xb):
            if nb == xb.shape[0]:
                return X[i0:i0 + nb]
            return _copy_rows(X, i0, nb, xb)
        return view
    return lambda X, i0, nb, xb: _copy_rows(X, i0, nb, xb)


@njit(**JIT_OPTIONS)
def _copy_rows(X, i0, nb, xb):
    d = X.shape[1]
    src = X[i0:i0 + nb].reshape(nb * d)
    dst = xb.reshape(xb.size)
    for f in range(nb * d):
        dst[f] = src[f]
    for f in range(nb * d, dst.shape[0]):
        dst[f] = 0.0
    return xb


@njit(**JIT_OPTIONS)
def _linear_logjoint(xb, nb, At, b, lpt, lp, mx):
    """lp[k, t] = b[k] + sum_j xb[t, j] At[j, k], and mx[t] = max_k lp[k, t]
    (as ``_quad_to_logprob`` leaves them for ``_finish_block``).  The
    product is one BLAS call into ``lpt`` (block, K), transposed after:
    twice as fast as forming (K, block) directly, whose BLAS call
    reads xb transposed."""
    K = At.shape[1]
    np.dot(xb, At, lpt)
    for t in range(nb):
        m = _NEG_INF
        for k in range(K):
            v = lpt[t, k] + b[k]
            lp[k, t] = v
            m = _fmax(m, v)
        mx[t] = m


@njit(**JIT_OPTIONS)
def _dense_block(m, i0, nb, logjoint, lp, mx):
    """``read_block`` of the dense kernel: x is the block's rows in float64."""
    X, At, b, xb, lpt, _ = m
    x = _block_rows(X, i0, nb, xb)
    if logjoint:
        _linear_logjoint(x, nb, At, b, lpt, lp, mx)
    return x, 0


@njit(**JIT_OPTIONS)
def _dense_stats(m, x, i0, nb, w, resp, S0, S1):
    """``add_stats`` of the dense kernel: S0[k] += sum_t w r_k; S1 += (w r)
    x, one BLAS product into the (K, d) scratch (resp becomes w r, zero past
    nb)."""
    tmp = m[5]
    K, d = S1.shape
    for k in range(K):
        row = resp[k]
        s0 = 0.0
        for t in range(nb):
            v = row[t] * w[t]
            row[t] = v
            s0 += v
        for t in range(nb, row.shape[0]):
            row[t] = 0.0
        S0[k] += s0
    np.dot(resp, x, tmp)
    for k in range(K):
        for j in range(d):
            S1[k, j] += tmp[k, j]


@njit(**JIT_OPTIONS)
def _estep_linear_dense(X, sw, A, b, resp_in, do_stats, out_lognorm, out_resp, out_label,
                        out_logprob,
                        S0s, S1s, lls, wsums, block, vmc, ctrl):
    """Fused E-step of a linear family, dense X (C-contiguous; see the module
    docstring).  Calls BLAS: the caller limits it to one thread."""
    K, d = A.shape
    # X, A^T, b, and scratch: the block in float64, its log-joints, moments
    m = (X, np.ascontiguousarray(A.T), b, np.zeros((block, d)), np.empty((block, K)),
         np.empty((K, d)))
    _slot_loop(X.shape[0], m, _dense_block, _dense_stats, _no_end, sw, resp_in, do_stats,
               out_lognorm, out_resp, out_label, out_logprob, S0s, S1s, lls, wsums, block, vmc,
               ctrl)


# --------------------------------------------------------------------------
# linear log-densities, CSR X
# --------------------------------------------------------------------------


@njit(**JIT_OPTIONS)
def _csr_logjoint(data, indices, indptr, i0, nb, At, b, acc, lp, mx):
    """lp[k, t] = b[k] + sum over row i0 + t's non-zeros of At[j, k] x_j, and
    mx as in ``_linear_logjoint``; ``acc`` is (K,) scratch.  Returns the
    number of column indices outside 0 .. d - 1 (read as column 0)."""
    d, K = At.shape
    bad = 0
    for t in range(nb):
        for k in range(K):
            acc[k] = b[k]
        p = indptr[i0 + t]
        end = indptr[i0 + t + 1]
        while p + 4 <= end:  # four non-zeros per pass over acc
            j0, j1, j2, j3 = indices[p], indices[p + 1], indices[p + 2], indices[p + 3]
            bad += _out_of(j0, d) + _out_of(j1, d) + _out_of(j2, d) + _out_of(j3, d)
            j0, j1, j2, j3 = _inside(j0, d), _inside(j1, d), _inside(j2, d), _inside(j3, d)
            v0, v1, v2, v3 = data[p], data[p + 1], data[p + 2], data[p + 3]
            for k in range(K):
                acc[k] += (v0 * At[j0, k] + v1 * At[j1, k]) + (v2 * At[j2, k] + v3 * At[j3, k])
            p += 4
        for q in range(p, end):
            j = indices[q]
            bad += _out_of(j, d)
            j = _inside(j, d)
            v = data[q]
            for k in range(K):
                acc[k] += v * At[j, k]
        m = _NEG_INF
        for k in range(K):
            lp[k, t] = acc[k]
            m = _fmax(m, acc[k])
        mx[t] = m
    return bad


@njit(**JIT_OPTIONS)
def _out_of(j, d):
    """1 if the index j is outside 0 .. d - 1, else 0."""
    return 1 if j < 0 or j >= d else 0


@njit(**JIT_OPTIONS)
def _inside(j, d):
    """j if it is in 0 .. d - 1, else 0."""
    return j if 0 <= j < d else 0


@njit(**JIT_OPTIONS)
def _csr_block(m, i0, nb, logjoint, lp, mx):
    """``read_block`` of the CSR kernel: no x (``_csr_stats`` reads the
    non-zeros itself); bad counts the column indices out of range."""
    data, indices, indptr, At, b, acc, _ = m
    bad = 0
    if logjoint:
        bad = _csr_logjoint(data, indices, indptr, i0, nb, At, b, acc, lp, mx)
    return 0, bad


@njit(**JIT_OPTIONS)
def _csr_stats(m, x, i0, nb, w, resp, S0, S1t):
    """``add_stats`` of the CSR kernel: S0[k] += sum_t w r_k; S1t[j, k] +=
    sum over the block's non-zeros w r_k x_j (S1 transposed), with the
    (block, K) scratch ``wrt`` for w r."""
    data, indices, indptr, _, _, _, wrt = m
    d, K = S1t.shape
    for k in range(K):
        s0 = 0.0
        for t in range(nb):
            v = resp[k, t] * w[t]
            wrt[t, k] = v
            s0 += v
        S0[k] += s0
    for t in range(nb):
        wr = wrt[t]
        for p in range(indptr[i0 + t], indptr[i0 + t + 1]):
            j = _inside(indices[p], d)
            v = data[p]
            row = S1t[j]
            for k in range(K):
                row[k] += v * wr[k]


@njit(**JIT_OPTIONS)
def _estep_linear_csr(data, indices, indptr, sw, A, b, resp_in, do_stats, out_lognorm,
                      out_resp, out_label, out_logprob, S0s, S1s, lls, wsums, block, vmc, ctrl):
    """Fused E-step of a linear family, CSR X; S1s is (S, d, K), the
    moments transposed (see the module docstring)."""
    K = A.shape[0]
    # X, A^T, b, and scratch: a row's log-joints, the block's w r
    m = (data, indices, indptr, np.ascontiguousarray(A.T), b, np.empty(K),
         np.empty((block, K)))
    _slot_loop(indptr.shape[0] - 1, m, _csr_block, _csr_stats, _no_end, sw, resp_in,
               do_stats, out_lognorm, out_resp, out_label, out_logprob, S0s, S1s, lls, wsums,
               block, vmc, ctrl)


# --------------------------------------------------------------------------
# categorical: columns grouped into joint codes
# --------------------------------------------------------------------------

#: Consecutive columns are read as one joint code (mixed radix) while the
#: product of their numbers of categories stays at most this: per row and
#: component, one gather of the group's summed log-probabilities and one
#: count, instead of one per column (5 categories: 3 columns a group).
#: The joint counts are summed back into per-column counts once per slot.
_JOINT_MAX = 128


@njit(**JIT_OPTIONS)
def _column_groups(off):
    """The column groups: ``(G, first, stride, goff)`` with group g the
    columns first[g] .. first[g + 1] - 1, column j's digit weight stride[j]
    in its group's joint code (the last column varies fastest), and group
    g's joint codes at goff[g] .. goff[g + 1] - 1 of the joint table."""
    d = off.shape[0] - 1
    first = np.empty(d + 1, dtype=np.int64)
    goff = np.empty(d + 1, dtype=np.int64)
    stride = np.empty(d, dtype=np.int64)
    G = 0
    j = 0
    total = 0
    while j < d:
        first[G] = j
        goff[G] = total
        size = off[j + 1] - off[j]
        e = j + 1
        while e < d and size * (off[e + 1] - off[e]) <= _JOINT_MAX:
            size *= off[e + 1] - off[e]
            e += 1
        weight = 1
        for jj in range(e - 1, j - 1, -1):
            stride[jj] = weight
            weight *= off[jj + 1] - off[jj]
        total += size
        G += 1
        j = e
    first[G] = d
    goff[G] = total
    return G, first[:G + 1], stride, goff[:G + 1]


@njit(**JIT_OPTIONS)
def _joint_to_columns(off, groups, joint, percol, to_joint):
    """Between per-column tables ``percol`` (K, off[d]) and joint tables
    ``joint`` (K, goff[G]): with ``to_joint``, joint[k, e] += the sum of
    the log-probabilities of code e's categories; otherwise percol[k, off_j
    + c] += joint[k, e] for every joint code e whose column j is c."""
    G, first, stride, goff = groups
    K = joint.shape[0]
    for g in range(G):
        for e in range(goff[g + 1] - goff[g]):
            for j in range(first[g], first[g + 1]):
                i = off[j] + (e // stride[j]) % (off[j + 1] - off[j])
                for k in range(K):
                    if to_joint:
                        joint[k, goff[g] + e] += percol[k, i]
                    else:
                        percol[k, i] += joint[k, goff[g] + e]


@njit(**JIT_OPTIONS)
def _load_joint(X, off, groups, i0, nb, jc):
    """jc[g, t] = the joint code of row i0 + t in group g (an index into the
    joint table); returns the number of codes outside 0 .. C_j - 1 (read as
    0)."""
    G, first, stride, goff = groups
    bad = 0
    for g in range(G):
        code = jc[g]
        for t in range(nb):
            code[t] = goff[g]
        for j in range(first[g], first[g + 1]):
            c = off[j + 1] - off[j]
            s = stride[j]
            for t in range(nb):
                v = np.int64(X[i0 + t, j])
                bad += _out_of(v, c)
                code[t] += _inside(v, c) * s
    return bad


@njit(**JIT_OPTIONS)
def _categorical_logjoint(jc, nb, table, logw, lp, mx):
    """lp[k, t] = logw[k] + sum_g table[k, jc[g, t]], and mx as in
    ``_linear_logjoint``."""
    G = jc.shape[0]
    K = table.shape[0]
    for t in range(nb):
        mx[t] = _NEG_INF
    for k in range(K):
        acc = lp[k]
        row = table[k]
        lk = logw[k]
        for t in range(nb):
            acc[t] = lk
        for g in range(G):
            code = jc[g]
            for t in range(nb):
                acc[t] += row[code[t]]
        for t in range(nb):
            mx[t] = _fmax(mx[t], acc[t])


@njit(**JIT_OPTIONS)
def _categorical_block(m, i0, nb, logjoint, lp, mx):
    """``read_block`` of the categorical kernel: x is the block's joint codes
    ``jc``; bad counts the codes out of range."""
    X, off, groups, table, logw, jc, _, _ = m
    bad = _load_joint(X, off, groups, i0, nb, jc)
    if logjoint:
        _categorical_logjoint(jc, nb, table, logw, lp, mx)
    return jc, bad


@njit(**JIT_OPTIONS)
def _categorical_stats(m, jc, i0, nb, w, resp, S0, counts):
    """``add_stats`` of the categorical kernel: S0[k] += sum_t w r_k; the
    thread's joint counts joint[k, jc[g, t]] += w r_k (the slot's per-column
    ``counts`` are made from them at its end)."""
    joint, r = m[6], m[7]
    G = jc.shape[0]
    K = resp.shape[0]
    for k in range(K):
        S0[k] += _weighted_resp(nb, w, resp, k, r)
        row = joint[k]
        for g in range(G):
            code = jc[g]
            for t in range(nb):
                row[code[t]] += r[t]


@njit(**JIT_OPTIONS)
def _categorical_end(m, counts, do_stats):
    """``end_slot`` of the categorical kernel: the slot's joint counts
    summed into its per-column counts, and zeroed for the next slot."""
    off, groups, joint = m[1], m[2], m[6]
    if do_stats:
        _joint_to_columns(off, groups, joint, counts, False)
        joint[:, :] = 0.0


@njit(**JIT_OPTIONS)
def _estep_categorical(X, off, sw, logtheta, logw, resp_in, do_stats, out_lognorm, out_resp,
                       out_label, out_logprob, S0s, counts_s, lls, wsums, block, vmc, ctrl):
    """Fused E-step of a categorical mixture (see the module docstring)."""
    K = logtheta.shape[0]
    groups = _column_groups(off)
    G, _, _, goff = groups
    table = np.zeros((K, goff[G]))  # summed log-probabilities per joint code
    _joint_to_columns(off, groups, table, logtheta, True)
    # X, the column groups, the table, logw, and scratch: the block's joint
    # codes, the slot's counts per joint code, w r
    m = (X, off, groups, table, logw, np.zeros((G, block), dtype=np.int64),
         np.zeros((K, goff[G])), np.empty(block))
    _slot_loop(X.shape[0], m, _categorical_block, _categorical_stats, _categorical_end, sw,
               resp_in, do_stats, out_lognorm, out_resp, out_label, out_logprob, S0s, counts_s,
               lls, wsums, block, vmc, ctrl)
