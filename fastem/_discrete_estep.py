"""Python side of the discrete fused E-steps: buffers, dtype dispatch and the
slot reduction (the kernels are in :mod:`fastem._kernels.discrete`).

:class:`LinearWorkspace` serves the Bernoulli, binomial, Poisson and
multinomial families (log-density linear in x, given as ``A``, ``b``);
:class:`CategoricalWorkspace` the categorical one.  Both are allocated once
per fit (slot buffers reused every iteration) and have one method,
``run(X, sample_weight, ...)``, returning ``(S0, S1 or counts, loglik,
weight)`` with ``do_stats``, else ``(loglik, weight)``.  The log-likelihood
leaves out ``h(x)``, the part of the log-density that does not depend on the
component (see the kernels' docstring): the family adds it.

X may be an ndarray, a CSR matrix (linear families only) or a
:class:`fastem._data.RowSource` (out of core: the kernel on each chunk,
statistics summed, per-row outputs filled slice by slice).  Arrays are read
in their own dtype when the kernels have a variant for it
(:func:`linear_array`, :func:`category_codes`, :func:`csr_arrays` say what
they receive); convert once per fit with those functions so that no
iteration copies X.
"""

import contextlib

import numpy as np
import scipy.sparse as sp

from . import _config
from ._data import RowSource
from ._estep import n_slots_for, one_thread, single_threaded_blas
from ._kernels.discrete import _estep_categorical, _estep_linear_csr, _estep_linear_dense
from ._kernels.vecmath import VM_CONSTS
from ._parallel import run_slots

_EMPTY_W = np.empty(0, dtype=np.float64)
_EMPTY_I = np.empty(0, dtype=np.int64)
#: X dtypes the dense linear kernel is compiled for (bool is viewed as uint8).
LINEAR_DTYPES = (np.uint8, np.int64, np.float32, np.float64)
#: dtypes of category codes the categorical kernel is compiled for.
CODE_DTYPES = (np.uint8, np.int64)


def linear_array(X):
    """X as the dense linear kernel reads it, C-contiguous: itself if its
    dtype is one of LINEAR_DTYPES, a uint8 view of bool, and otherwise a
    copy in int64 (integers) or float64."""
    X = np.ascontiguousarray(X)
    if X.dtype == np.bool_:
        return X.view(np.uint8)
    if X.dtype in LINEAR_DTYPES:
        return X
    return X.astype(np.int64 if X.dtype.kind in "iu" else np.float64)


def category_codes(X):
    """Category codes as the categorical kernel reads them: uint8 or int64
    (bool viewed as uint8; other integers and integral floats copied into
    int64; a ValueError for a float that is not a whole number)."""
    X = np.asarray(X)
    if X.dtype == np.bool_:
        return X.view(np.uint8)
    if X.dtype in CODE_DTYPES:
        return X
    with np.errstate(invalid="ignore"):  # NaN, inf and huge floats: the error below
        codes = X.astype(np.int64)
    if X.dtype.kind not in "iu" and not np.array_equal(codes, X):
        raise ValueError("Category codes must be whole numbers 0, 1, 2, ...; X holds "
                         "other values. Encode the categories as integers first.")
    return codes


def csr_arrays(X):
    """``(data, indices, indptr)`` of a scipy.sparse matrix as the CSR kernel
    reads them: data in float64 (copied only if it is not), indices and
    indptr as they are (int32 or int64)."""
    X = X if X.format == "csr" else X.tocsr()
    data = X.data if X.data.dtype == np.float64 else X.data.astype(np.float64)
    return data, X.indices, X.indptr


def _work(n_values, n_rows, n_components):
    """Work of one E-step in :func:`fastem._estep.estep_work`'s units: per
    component, a multiply-add per value read plus 6 per row for the
    log-sum-exp."""
    return n_components * (n_values + 6 * n_rows)


def _sum_slots(a):
    """Sum over the slots (axis 0), in slot order."""
    return np.add.reduce(a, axis=0)


class _Workspace:
    """What both workspaces share: slot buffers S0s, lls, wsums and the
    per-component statistics per slot, the chunk loop and the checks of the
    per-row arguments."""

    def __init__(self, n_components, n_rows, stats_size, row_bytes):
        self.block = _config.BLOCK_SIZE
        ns = n_slots_for(n_rows, self.block, 8 * (n_components + stats_size + 2), row_bytes)
        self.n_components = n_components
        self.S0s = np.zeros((ns, n_components))
        self.lls = np.zeros(ns)
        self.wsums = np.zeros(ns)
        self._no_rows = np.empty((0, n_components))
        self._stats = {}

    def _stats_s(self, shape):
        """The slots' statistics buffer (n_slots,) + shape, made at its first
        use: a linear workspace used on CSR X never holds the dense layout's
        (S, K, d) buffer, nor the CSR one's on dense X (at d = 1e6 and K = 10
        each is 1.3 GB)."""
        buf = self._stats.get(shape)
        if buf is None:
            buf = self._stats[shape] = np.zeros((self.S0s.shape[0],) + shape)
        return buf

    def _run(self, X, sample_weight, params, do_stats, rows):
        """X in memory: one call; a RowSource: one call per chunk, summed.
        ``out_logprob`` (the last row argument) is computed alone: no
        statistics, no other per-row output, no log-likelihood (0)."""
        if rows[-1] is not None and (do_stats or any(a is not None for a in rows[1:-1])):
            raise TypeError("out_logprob is computed alone: with do_stats=False and no other "
                            "per-row output.")
        if not isinstance(X, RowSource):
            return self._call(X, sample_weight, params, do_stats, rows)
        total = None
        for i0, chunk in X.chunks():
            sl = slice(i0, i0 + chunk.shape[0])
            part = self._call(chunk, None if sample_weight is None else sample_weight[sl],
                              params, do_stats,
                              tuple(None if a is None else a[sl] for a in rows))
            total = part if total is None else tuple(a + b for a, b in zip(total, part))
        return total

    def _row_args(self, n, sample_weight, rows):
        """The kernel's (sw, resp_in, out_lognorm, out_resp, out_label,
        out_logprob), with empty arrays for those not given, after checking
        the given ones."""
        K = self.n_components
        wants = ((n,), (n, K), (n,), (n, K), (n,), (n, K))
        dtypes = (None, np.float64, np.float64, np.float64, np.int64, np.float64)
        names = ("sample_weight", "resp_in", "out_lognorm", "out_resp", "out_label",
                 "out_logprob")
        if sample_weight is not None:
            sample_weight = np.asarray(sample_weight)
        for name, a, want, dtype in zip(names, (sample_weight,) + rows, wants, dtypes):
            if a is not None and (a.shape != want or (dtype and a.dtype != dtype)):
                raise ValueError(f"{name} of shape {a.shape} and dtype {a.dtype} was given "
                                 f"for {n} rows and {K} components: expected shape {want}"
                                 f"{f' and dtype {np.dtype(dtype)}' if dtype else ''}.")
        for name, a in zip(names[2:], rows[1:]):
            if a is not None and not a.flags.writeable:
                raise ValueError(f"{name} is read-only: pass a writeable array to fill.")
        if sample_weight is not None:
            sample_weight = np.ascontiguousarray(sample_weight, dtype=np.float64)
        empty = (_EMPTY_W, self._no_rows, _EMPTY_W, self._no_rows, _EMPTY_I, self._no_rows)
        given = (sample_weight,) + rows
        return tuple(e if a is None else a for a, e in zip(given, empty))

    def _launch(self, kernel, args, stats_s, work, do_stats, blas=False):
        """``kernel(*args, S0s, stats_s, lls, wsums, block, VM_CONSTS)`` over
        the slots, then the reduction in slot order: ``(S0, stats, loglik,
        weight)`` or ``(loglik, weight)``."""
        ns = self.S0s.shape[0]
        args = args + (self.S0s, stats_s, self.lls, self.wsums, self.block, VM_CONSTS)
        with one_thread(work < _config.SERIAL_WORK), \
                single_threaded_blas() if blas else contextlib.nullcontext():
            run_slots(kernel, args, ns)
        loglik = float(np.add.reduce(self.lls))
        weight = float(np.add.reduce(self.wsums))
        if not do_stats:
            return loglik, weight
        return _sum_slots(self.S0s), _sum_slots(stats_s), loglik, weight


def _check_shape(what, got, want):
    if got != want:
        raise ValueError(f"The E-step was given {what} of shape {got} instead of {want}: the "
                         "model's arrays disagree with each other or with X.")


class LinearWorkspace(_Workspace):
    """Slot buffers of the linear E-step for (K components, d features, n rows).

    ``run(X, sample_weight, A, b)`` with ``A`` (K, d) and ``b`` (K,) float64:
    the log-joint of row x and component k is ``x . A[k] + b[k]``.  Returns
    ``(S0 (K,), S1 (K, d), loglik, weight)`` with ``S1[k] = sum_i w_i r_ik
    x_i``, or ``(loglik, weight)`` without ``do_stats``."""

    def __init__(self, n_components, n_features, n_rows):
        super().__init__(n_components, n_rows, n_components * n_features, 8 * n_features)
        self.n_features = n_features

    def run(self, X, sample_weight, A, b, *, do_stats=True, resp_in=None,
            out_lognorm=None, out_resp=None, out_label=None, out_logprob=None):
        K, d = self.n_components, self.n_features
        A = np.ascontiguousarray(A, dtype=np.float64)
        b = np.ascontiguousarray(b, dtype=np.float64)
        _check_shape("A", A.shape, (K, d))
        _check_shape("b", b.shape, (K,))
        rows = (resp_in, out_lognorm, out_resp, out_label, out_logprob)
        return self._run(X, sample_weight, (A, b), do_stats, rows)

    def _call(self, X, sample_weight, params, do_stats, rows):
        if sp.issparse(X):
            return self._call_csr(X, sample_weight, params, do_stats, rows)
        X = linear_array(X)
        _check_shape("X", X.shape[1:], (self.n_features,))
        A, b = params
        sw, resp_in, *outs = self._row_args(X.shape[0], sample_weight, rows)
        args = (X, sw, A, b, resp_in, do_stats, *outs)
        work = _work(X.size, X.shape[0], self.n_components)
        return self._launch(_estep_linear_dense, args, self._stats_s(A.shape), work, do_stats,
                            blas=True)

    def _call_csr(self, X, sample_weight, params, do_stats, rows):
        _check_shape("X", X.shape[1:], (self.n_features,))
        data, indices, indptr = csr_arrays(X)
        if (indptr.shape[0] != X.shape[0] + 1 or indptr[0] != 0
                or indptr[-1] > min(indices.shape[0], data.shape[0])
                or (np.diff(indptr) < 0).any()):
            raise ValueError("The CSR matrix X has inconsistent row pointers (indptr); "
                             "rebuild it with scipy.sparse.csr_matrix.")
        A, b = params
        sw, resp_in, *outs = self._row_args(X.shape[0], sample_weight, rows)
        args = (data, indices, indptr, sw, A, b, resp_in, do_stats, *outs)
        work = _work(data.shape[0], X.shape[0], self.n_components)
        out = self._launch(_estep_linear_csr, args, self._stats_s(A.shape[::-1]), work,
                           do_stats)
        # a bad index makes the log-likelihood NaN; given responsibilities skip
        # the log-joint, so then look for one (once per fit: initialisation)
        if (rows[0] is not None or not np.isfinite(out[-2])) and indices.size and (
                indices.min() < 0 or indices.max() >= self.n_features):
            raise ValueError(f"The CSR matrix X has column indices outside 0 .. "
                             f"{self.n_features - 1}; rebuild it with scipy.sparse.csr_matrix.")
        return (out[0], out[1].T) + out[2:] if do_stats else out


class CategoricalWorkspace(_Workspace):
    """Slot buffers of the categorical E-step for (K components, columns of
    ``n_categories`` = (C_0, ..., C_{d-1}) levels, n rows).

    ``run(X, sample_weight, logtheta, logw)`` with ``logtheta`` (K, sum C_j)
    the log category probabilities, column j's at ``off[j]:off[j + 1]``
    (``off`` the cumulative sum of n_categories from 0), and ``logw`` (K,)
    the log weights.  Returns ``(S0 (K,), counts (K, sum C_j), loglik,
    weight)`` with ``counts[k, off[j] + c] = sum_i w_i r_ik [x_ij = c]``, or
    ``(loglik, weight)`` without ``do_stats``.  A code outside 0 .. C_j - 1
    raises a ValueError."""

    def __init__(self, n_components, n_categories, n_rows):
        C = np.asarray(n_categories)
        if C.ndim != 1 or not (C.dtype.kind in "iu" or (
                C.dtype.kind == "f" and np.array_equal(C, np.round(C)))) or (C < 1).any():
            raise ValueError(f"n_categories must list each column's number of categories, "
                             f"whole numbers >= 1, got {n_categories!r}.")
        self.n_categories = C.astype(np.int64)
        self.off = np.concatenate(([0], np.cumsum(self.n_categories))).astype(np.int64)
        super().__init__(n_components, n_rows, n_components * int(self.off[-1]),
                         self.n_categories.shape[0])
        self._table_shape = (n_components, int(self.off[-1]))

    def run(self, X, sample_weight, logtheta, logw, *, do_stats=True, resp_in=None,
            out_lognorm=None, out_resp=None, out_label=None, out_logprob=None):
        logtheta = np.ascontiguousarray(logtheta, dtype=np.float64)
        logw = np.ascontiguousarray(logw, dtype=np.float64)
        _check_shape("logtheta", logtheta.shape, self._table_shape)
        _check_shape("logw", logw.shape, (self.n_components,))
        rows = (resp_in, out_lognorm, out_resp, out_label, out_logprob)
        return self._run(X, sample_weight, (logtheta, logw), do_stats, rows)

    def _call(self, X, sample_weight, params, do_stats, rows):
        X = category_codes(X)
        _check_shape("X", X.shape[1:], self.n_categories.shape)
        logtheta, logw = params
        sw, resp_in, *outs = self._row_args(X.shape[0], sample_weight, rows)
        args = (X, self.off, sw, logtheta, logw, resp_in, do_stats, *outs)
        work = _work(X.size, X.shape[0], self.n_components)
        out = self._launch(_estep_categorical, args, self._stats_s(logtheta.shape), work,
                           do_stats)
        if not np.isfinite(out[-2]):  # NaN from the kernel: a code out of range?
            check_codes(X, self.n_categories)
        return out


def check_codes(X, n_categories):
    """A ValueError naming the first column that holds a code outside
    0 .. C_j - 1."""
    if X.shape[0] == 0:
        return
    low, high = X.min(axis=0), X.max(axis=0)
    for j in np.flatnonzero((low < 0) | (high >= n_categories)):
        raise ValueError(f"Column {j} of X holds category codes from {low[j]} to {high[j]}, "
                         f"but the model has {n_categories[j]} categories there: codes must "
                         f"be 0 .. {n_categories[j] - 1}.")
