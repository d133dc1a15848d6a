"""The Gaussian E-step over rows with missing entries (``missing='em'``).

One serial slot kernel (run on every thread by :func:`fastem._parallel.
run_slots`, like the complete-data kernels) over the incomplete rows of X,
copied in float64 and sorted by missingness pattern.  For a row with
observed set o and missing set m, and each component k with precision
``P = U U^T``:

    z_o = x_o - mu_o,   z_m = -A z_o  with  A = P_mm^-1 P_mo
    log p(x_o | k) = log w_k + log det U - 1/2 log det P_mm
                     - |o|/2 log 2 pi - 1/2 ||U^T z||^2

(``z_m`` minimises the quadratic form over the missing coordinates, so
``||U^T z||^2`` is the marginal's ``z_o^T Sigma_oo^-1 z_o``; ``det
Sigma_oo = det Sigma det P_mm``).  ``mu + z`` is the row completed with its
conditional mean E[x | x_o, k]; the statistics add it as a complete row,
plus the conditional covariance ``C = P_mm^-1`` in the mm block of S2.
Diagonal precisions decouple the coordinates: ``z_m = 0`` and C is the
variances of the missing coordinates.

A, C and ``log det P_mm`` depend on (pattern, component) only: a slot
computes them when the pattern changes along its rows (rows are sorted by
pattern, so once per pattern and slot), in its own scratch.  Slots cover
fixed rows and are summed in order: bitwise the same for any thread count.

Arguments (m incomplete rows, d features, K components, S slots):

=========== ================ ============================================
Xs          (m, d) float64   the rows, NaN where missing
sws         (m,) or (0,)     sample weights (``(0,)``: all ones)
pid         (m,) int64       each row's pattern, non-decreasing
miss        (npat, d) uint8  1 where the pattern's feature is missing
means       (K, d)
U           (KU, d, d)       upper precision factors (full: K, tied: 1;
                             diag: (0, d, d))
P           (KU, d, d)       the precisions U U^T (diag: (0, d, d))
pdiag       (K, d)           1/sigma (diag and spherical; else (0, d))
logw        (K,)             log w_k + log det U_k (diag: log w_k)
shift       (K, d)           shift of the statistics (tied: all rows equal)
resp_in     (m, K) or (0, K) responsibilities for the statistics
S2s         (S, KS, DA, d)   per slot, upper triangles: full (S, K, d, d),
                             tied (S, 1, d, d); diag (S, K, 1, d) holds
                             the diagonal
out_fill    (m, d) or (0, d) sum_k r_ik (mu_k + z_ik): the conditional mean
out_logprob (m, K) or (0, K) log w_k + log N(x_o; mu_ko, Sigma_koo)
=========== ================ ============================================
"""

import math

import numpy as np
from numba import njit

from .._config import JIT_OPTIONS
from .sync import claim_slot, finish_slot

_LOG_2PI = math.log(2.0 * math.pi)


@njit(**JIT_OPTIONS)
def _split(p, miss, oi, mi):
    """Observed and missing feature indices of pattern p; their counts."""
    no = 0
    nm = 0
    for j in range(miss.shape[1]):
        if miss[p, j]:
            mi[nm] = j
            nm += 1
        else:
            oi[no] = j
            no += 1
    return no, nm


@njit(**JIT_OPTIONS)
def _conditional_covariances(nm, mi, P, L, C, halfdet, scratch):
    """Per precision u: ``C[u] = P_mm^-1`` (nm x nm) and ``halfdet[u] = 1/2
    log det P_mm``, through the Cholesky factor ``L[u]`` of P_mm."""
    for u in range(P.shape[0]):
        logdet = 0.0
        for a in range(nm):
            for b in range(a + 1):
                acc = P[u, mi[a], mi[b]]
                for c in range(b):
                    acc -= L[u, a, c] * L[u, b, c]
                if a == b:
                    acc = math.sqrt(acc) if acc > 0.0 else math.nan
                    L[u, a, a] = acc
                    logdet += 2.0 * math.log(acc)
                else:
                    L[u, a, b] = acc / L[u, b, b]
        halfdet[u] = 0.5 * logdet
        # C = L^-T L^-1: L^-1 by forward substitution (in C), then the product
        for e in range(nm):
            for a in range(nm):
                acc = 1.0 if a == e else 0.0
                for c in range(a):
                    acc -= L[u, a, c] * C[u, c, e]
                C[u, a, e] = acc / L[u, a, a]
        for a in range(nm):
            for b in range(a, nm):
                acc = 0.0
                for c in range(b, nm):
                    acc += C[u, c, a] * C[u, c, b]
                scratch[a, b] = acc
        for a in range(nm):
            for b in range(a, nm):
                C[u, a, b] = scratch[a, b]
                C[u, b, a] = scratch[a, b]


@njit(**JIT_OPTIONS)
def _pattern_factors(p, miss, P, L, C, A, halfdet, oi, mi, scratch):
    """For pattern p: observed and missing feature indices (``oi``, ``mi``;
    returns their counts) and, per precision u, ``A[u] = P_mm^-1 P_mo``
    (nm x no), ``C[u] = P_mm^-1`` (nm x nm) and ``halfdet[u] = 1/2 log det
    P_mm`` (L: scratch for the Cholesky factor)."""
    no, nm = _split(p, miss, oi, mi)
    _conditional_covariances(nm, mi, P, L, C, halfdet, scratch)
    for u in range(P.shape[0]):
        for a in range(nm):
            for j in range(no):
                acc = 0.0
                for b in range(nm):
                    acc += C[u, a, b] * P[u, mi[b], oi[j]]
                A[u, a, j] = acc
    return no, nm


@njit(**JIT_OPTIONS)
def _diag_pattern(p, miss, pdiag, logw, oi, mi, basep):
    """Observed and missing indices of pattern p and, per component, the
    log weight plus the observed part's normalising constant."""
    no, nm = _split(p, miss, oi, mi)
    for k in range(logw.shape[0]):
        acc = logw[k] - 0.5 * no * _LOG_2PI
        for jj in range(no):
            acc += math.log(pdiag[k, oi[jj]])
        basep[k] = acc
    return no, nm


@njit(**JIT_OPTIONS)
def _complete_run(zt, t0, t1, xt, means, A, KU, oi, mi, no, nm, diag, k0, k1):
    """``zt[k, :, t] = x_t - mu_k`` for the rows ``t0:t1`` of one pattern
    (``xt`` holds their observed coordinates), the missing coordinates at
    their conditional deviation ``-A z_o`` (diag: 0), for components
    ``k0:k1``; rows innermost."""
    for k in range(k0, k1):
        u = 0 if KU == 1 else k
        for jj in range(no):
            j = oi[jj]
            mk = means[k, j]
            row = zt[k, j]
            src = xt[j]
            for t in range(t0, t1):
                row[t] = src[t] - mk
        for a in range(nm):
            row = zt[k, mi[a]]
            for t in range(t0, t1):
                row[t] = 0.0
            if diag:
                continue
            for jj in range(no):
                coef = A[u, a, jj]
                src = zt[k, oi[jj]]
                for t in range(t0, t1):
                    row[t] -= coef * src[t]


@njit(**JIT_OPTIONS)
def _quad_block(zt, k, u, nb, U, pdiag, diag, q, y):
    """q[t] = ||U^T z_t||^2 (diag: sum_j (z_tj / sigma_j)^2, 0 for the
    missing coordinates, whose z is 0)."""
    d = zt.shape[1]
    for t in range(nb):
        q[t] = 0.0
    if diag:
        for j in range(d):
            pk = pdiag[k, j]
            src = zt[k, j]
            for t in range(nb):
                v = src[t] * pk
                q[t] += v * v
        return
    for b in range(d):
        for t in range(nb):
            y[t] = 0.0
        for a in range(b + 1):
            coef = U[u, a, b]
            src = zt[k, a]
            for t in range(nb):
                y[t] += coef * src[t]
        for t in range(nb):
            q[t] += y[t] * y[t]


@njit(**JIT_OPTIONS)
def _estep_missing(Xs, sws, pid, miss, means, U, P, pdiag, logw, shift, resp_in, do_stats,
                   out_lognorm, out_resp, out_label, out_fill, out_logprob, S0s, S1s, S2s,
                   lls, wsums, block, ctrl):
    m, d = Xs.shape
    K = means.shape[0]
    KU = U.shape[0]
    diag = pdiag.shape[0] > 0
    tied = (not diag) and KU == 1
    n_slots = S0s.shape[0]
    n_blocks = (m + block - 1) // block
    L = np.zeros((KU, d, d))
    C = np.zeros((KU, d, d))
    A = np.zeros((KU, d, d))
    halfdet = np.zeros(KU)
    scratch = np.zeros((d, d))
    oi = np.zeros(d, dtype=np.int64)
    mi = np.zeros(d, dtype=np.int64)
    basep = np.zeros(K)
    xt = np.zeros((d, block))
    zt = np.zeros((K, d, block))
    lp = np.zeros((K, block))
    bp = np.zeros((K, block))
    rk = np.zeros((K, block))
    q = np.zeros(block)
    y = np.zeros(block)
    w = np.zeros(block)
    rd = np.zeros((d, block))
    runs = np.zeros(block + 1, dtype=np.int64)  # a block's runs of one pattern
    while True:
        s = claim_slot(ctrl)
        if s >= n_slots:
            break
        S0s[s, :] = 0.0
        S1s[s, :, :] = 0.0
        S2s[s, :, :, :] = 0.0
        ll = 0.0
        ws = 0.0
        i = ((s * n_blocks) // n_slots) * block
        i1 = min(m, (((s + 1) * n_blocks) // n_slots) * block)
        current = -1
        no = 0
        nm = 0
        while i < i1:
            nb = min(block, i1 - i)
            # the rows completed, a run of one pattern at a time (rows are
            # sorted by pattern)
            n_runs = 0
            t0 = 0
            while t0 < nb:
                p = pid[i + t0]
                t1 = t0 + 1
                while t1 < nb and pid[i + t1] == p:
                    t1 += 1
                runs[n_runs] = t0
                n_runs += 1
                if p != current:
                    current = p
                    if diag:
                        no, nm = _diag_pattern(p, miss, pdiag, logw, oi, mi, basep)
                    else:
                        no, nm = _pattern_factors(p, miss, P, L, C, A, halfdet, oi, mi,
                                                  scratch)
                        for k in range(K):
                            basep[k] = logw[k] - halfdet[0 if KU == 1 else k] \
                                - 0.5 * no * _LOG_2PI
                for jj in range(no):
                    j = oi[jj]
                    for t in range(t0, t1):
                        xt[j, t] = Xs[i + t, j]
                if t0 > 0 or t1 < nb:  # a block of several runs: completed run by run
                    _complete_run(zt, t0, t1, xt, means, A, KU, oi, mi, no, nm, diag, 0, K)
                for k in range(K):
                    for t in range(t0, t1):
                        bp[k, t] = basep[k]
                t0 = t1
            runs[n_runs] = nb
            for t in range(nb):
                w[t] = sws[i + t] if sws.shape[0] > 0 else 1.0
            # log-densities, a block at a time with the rows innermost (a block
            # of one run completes each component's rows just before its
            # product, while they are in cache)
            for k in range(K):
                if n_runs == 1:
                    _complete_run(zt, 0, nb, xt, means, A, KU, oi, mi, no, nm, diag, k, k + 1)
                _quad_block(zt, k, 0 if KU == 1 else k, nb, U, pdiag, diag, q, y)
                for t in range(nb):
                    lp[k, t] = bp[k, t] - 0.5 * q[t]
            for t in range(nb):  # log-sum-exp; lp becomes the responsibilities
                if out_logprob.shape[0] > 0:
                    for k in range(K):
                        out_logprob[i + t, k] = lp[k, t]
                mx = -math.inf
                best = 0
                for k in range(K):
                    if lp[k, t] > mx:
                        mx = lp[k, t]
                        best = k
                if mx == -math.inf:  # beyond every component's reach: the nearest
                    lognorm = -math.inf
                    for k in range(K):
                        lp[k, t] = 0.0
                    lp[best, t] = 1.0
                else:
                    tot = 0.0
                    for k in range(K):
                        tot += math.exp(lp[k, t] - mx)
                    lognorm = mx + math.log(tot)
                    for k in range(K):
                        lp[k, t] = math.exp(lp[k, t] - lognorm)
                if out_lognorm.shape[0] > 0:
                    out_lognorm[i + t] = lognorm
                if out_resp.shape[0] > 0:
                    for k in range(K):
                        out_resp[i + t, k] = lp[k, t]
                if out_label.shape[0] > 0:
                    out_label[i + t] = best
                if out_fill.shape[0] > 0:
                    for j in range(d):
                        if math.isnan(Xs[i + t, j]):
                            acc = 0.0
                            for k in range(K):
                                acc += lp[k, t] * (means[k, j] + zt[k, j, t])
                            out_fill[i + t, j] = acc
                ll += w[t] * lognorm
                ws += w[t]
            if do_stats:
                for k in range(K):
                    for t in range(nb):
                        r = resp_in[i + t, k] if resp_in.shape[0] > 0 else lp[k, t]
                        rk[k, t] = w[t] * r
                _stats_block(zt, nb, rk, means, shift, diag, tied, rd, S0s[s], S1s[s],
                             S2s[s])
                # the conditional covariances, run by run: the last run's
                # pattern is the one loaded (first, before its C is
                # overwritten); earlier ones are factored again, a Cholesky
                # factor of P_mm without A
                for rr in range(n_runs):
                    r = n_runs - 1 if rr == 0 else rr - 1  # the loaded (last) run first
                    t0 = runs[r]
                    t1 = runs[r + 1]
                    p = pid[i + t0]
                    if p != current:
                        _, nm_r = _split(p, miss, oi, mi)
                        if not diag:
                            _conditional_covariances(nm_r, mi, P, L, C, halfdet, scratch)
                    else:
                        _, nm_r = _split(p, miss, oi, mi)
                    for k in range(K):
                        tot = 0.0
                        for t in range(t0, t1):
                            tot += rk[k, t]
                        if tot == 0.0:
                            continue
                        if diag:
                            for a in range(nm_r):
                                j = mi[a]
                                S2s[s, k, 0, j] += tot / (pdiag[k, j] * pdiag[k, j])
                            continue
                        kk = 0 if tied else k
                        u = 0 if KU == 1 else k
                        for a in range(nm_r):
                            for b in range(a, nm_r):
                                S2s[s, kk, mi[a], mi[b]] += tot * C[u, a, b]
                # the loaded factors are the last run's again
                if n_runs > 1 and not diag:
                    no, nm = _pattern_factors(current, miss, P, L, C, A, halfdet, oi, mi,
                                              scratch)
                elif n_runs > 1:
                    no, nm = _diag_pattern(current, miss, pdiag, logw, oi, mi, basep)
            i += nb
        lls[s] = ll
        wsums[s] = ws
        finish_slot(ctrl)


@njit(**JIT_OPTIONS)
def _stats_block(zt, nb, rk, means, shift, diag, tied, rd, S0, S1, S2):
    """Adds the block's completed rows (``zt[k] + mu_k``, around the shift)
    with weights ``rk[k, t] = w_t r_tk`` to the slot's statistics (the
    conditional covariances are added by the caller)."""
    K, d = means.shape
    for k in range(K):
        tot = 0.0
        for t in range(nb):
            tot += rk[k, t]
        if tot == 0.0:
            continue
        for j in range(d):
            off = means[k, j] - shift[k, j]
            src = zt[k, j]
            acc = 0.0
            for t in range(nb):
                src[t] += off
                rd[j, t] = rk[k, t] * src[t]
                acc += rd[j, t]
            S1[k, j] += acc
        S0[k] += tot
        if diag:
            for j in range(d):
                src = zt[k, j]
                acc = 0.0
                for t in range(nb):
                    acc += rd[j, t] * src[t]
                S2[k, 0, j] += acc
            continue
        kk = 0 if tied else k
        for a in range(d):
            ra = rd[a]
            for b in range(a, d):
                src = zt[k, b]
                acc = 0.0
                for t in range(nb):
                    acc += ra[t] * src[t]
                S2[kk, a, b] += acc
