"""Python side of the fused E-step: buffers, dispatch and slot reduction.

The covariance type is dispatched once, here, through a dict of kernels that
share one signature.  Slot buffers are allocated once per fit by
:class:`EStepWorkspace` and reused every iteration.

In-memory X is one kernel call.  Out-of-core X (a :class:`fastem._data.RowSource`)
is the same kernel called on each chunk, the statistics (or the log-likelihood
and weight) summed and the per-row outputs filled slice by slice.
"""

import contextlib

import numba
import numpy as np

from . import _config, _small
from ._dask import DaskSource
from ._data import RowSource, take_rows
from ._kernels.gaussian import BLAS_MIN_FEATURES, ESTEP_KERNELS
from ._kernels.vecmath import VM_CONSTS
from ._parallel import run_slots
from ._stats import (
    GaussianStats,
    covariance_shape,
    default_shift,
    log_base,
    nearest_components,
)

_EMPTY_W = np.empty(0, dtype=np.float64)
_EMPTY_I = np.empty(0, dtype=np.int64)


_BLAS_CONTROLLER = None


def single_threaded_blas():
    """Context manager limiting BLAS to one thread.

    Used around the parallel kernels that call BLAS (each Numba thread makes
    its own small products) and around the whole EM loop: the M-step's tiny
    LAPACK calls otherwise wake OpenBLAS's thread pool, whose workers then
    busy-wait and take a core from Numba's threads (measured: the full
    kernel at d=2 ran no faster on 2 threads than on 1 inside fit)."""
    global _BLAS_CONTROLLER
    if _BLAS_CONTROLLER is None:
        from threadpoolctl import ThreadpoolController

        _BLAS_CONTROLLER = ThreadpoolController()
    return _BLAS_CONTROLLER.limit(limits=1, user_api="blas")


@contextlib.contextmanager
def one_thread(enabled=True):
    """Numba's thread count (of this thread) set to 1 while the block runs;
    results do not depend on it (the slot count, not the thread count, fixes
    the summation order)."""
    previous = numba.get_num_threads()
    if not enabled or previous == 1:
        yield
        return
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(previous)


def serial_if_small(work):
    """:func:`one_thread` if ``work`` (see :func:`estep_work`; k-means passes
    count rows x centres x (features + 1)) is below ``FASTEM_SERIAL_WORK``:
    there handing half the slots to a pool thread costs more than it saves."""
    return one_thread(work < _config.SERIAL_WORK)


def estep_work(n, K, d, covariance_type):
    """Work of one fused E-step, in units of about 0.3 ns on one core: per
    row and component the features (full: the triangular product too) plus
    6 for the exp and the rest of the log-sum-exp; tied adds the whitening.
    Measured crossovers (2 threads against 1, 0.2 ms pauses between calls as
    between EM iterations): diag d=2 K=3 at ~24,000 rows, diag d=16 K=16 at
    ~2,000 rows, full d=2 K=8 below 8,000 rows, full d=64 K=8 below 512."""
    per = d * (d + 1) // 2 + d if covariance_type == "full" else d
    work = n * K * (per + 6)
    if covariance_type == "tied":
        work += n * d * d // 2
    return work


#: The slot rule (:func:`n_slots_for`): at least MIN_SLOTS slots (work
#: permitting) whatever the statistics' size; more, up to
#: ``_config.N_SLOTS``, while the slot buffers stay within SLOT_MEMORY bytes
#: and SLOT_FRACTION of X's bytes (SLOT_MEMORY_FLOOR at least).
MIN_SLOTS = 16
SLOT_MEMORY = 64 * 2**20
SLOT_MEMORY_FLOOR = 4 * 2**20
SLOT_FRACTION = 0.08


def n_slots_for(n_rows, block=None, slot_bytes=0, row_bytes=0):
    """Number of partial-statistics slots: from the work and the size of the
    statistics, never from the number of threads (results are bitwise
    identical on any machine).

    One slot per block of rows up to ``_config.N_SLOTS`` (default 256: 64
    threads get 4 slots each, so a late or slow thread is balanced by the
    others), as long as the slot buffers (``slot_bytes`` each) fit in
    ``min(SLOT_MEMORY, max(SLOT_MEMORY_FLOOR, SLOT_FRACTION * n_rows *
    row_bytes))``; never fewer than ``min(MIN_SLOTS, n_blocks)``.  The
    buffers' sum, made by the calling thread after the kernel, reads those
    bytes once per E-step."""
    block = _config.BLOCK_SIZE if block is None else block
    n_blocks = max(1, -(-n_rows // block))
    most = _config.N_SLOTS
    if slot_bytes > 0:
        budget = min(SLOT_MEMORY, max(SLOT_MEMORY_FLOOR, SLOT_FRACTION * n_rows * row_bytes))
        most = min(most, max(MIN_SLOTS, int(budget // slot_bytes)))
    return max(1, min(most, n_blocks))


def summed(total, part):
    """``total + part`` of two E-steps' results (statistics, or ``(loglik,
    weight)`` pairs); ``part`` itself when ``total`` is None."""
    if total is None:
        return part
    if isinstance(part, tuple):
        return total[0] + part[0], total[1] + part[1]
    return total + part


def rows_per_call(X):
    """Rows the kernel sees at once: all of an in-memory X, one chunk of an
    out-of-core one (size an :class:`EStepWorkspace` with it)."""
    return X.chunk_rows if isinstance(X, RowSource) else X.shape[0]


def kernel_array(X):
    """X as the kernel receives it: an ndarray view, float32 or float64."""
    X = np.asarray(X) if not isinstance(X, np.ndarray) else X
    if isinstance(X, np.memmap):
        X = X.view(np.ndarray)
    return X


def _rows(a, rows):
    return None if a is None else a[rows]


#: The kernel (and S2 layout) each covariance type runs: spherical is the
#: diag kernel given one inverse standard deviation per component.
KERNEL_TYPE = {"full": "full", "tied": "tied", "diag": "diag", "spherical": "diag"}


def _prepare_params(params, covariance_type):
    means = np.ascontiguousarray(params.means, dtype=np.float64)
    prec = np.ascontiguousarray(params.precisions_cholesky, dtype=np.float64)
    if covariance_type == "spherical":  # the diag kernel's (K, 1) form
        prec = np.ascontiguousarray(prec[:, None])
    base = np.ascontiguousarray(log_base(params, covariance_type), dtype=np.float64)
    return means, prec, base


class EStepWorkspace:
    """Per-slot statistics buffers for one (covariance type, K, d, n)."""

    def __init__(self, covariance_type, n_components, n_features, n_rows):
        self.covariance_type = covariance_type
        kernel_type = KERNEL_TYPE[covariance_type]
        self.kernel = ESTEP_KERNELS[kernel_type]
        self.block = _config.BLOCK_SIZE
        K, d = n_components, n_features
        stats2 = int(np.prod(covariance_shape(kernel_type, K, d)))
        ns = n_slots_for(n_rows, self.block, 8 * (K + K * d + stats2 + 2), 8 * d)
        self.S0s = np.zeros((ns, K))
        self.S1s = np.zeros((ns, K, d))
        self.S2s = np.zeros((ns,) + covariance_shape(kernel_type, K, d))
        self.lls = np.zeros(ns)
        self.wsums = np.zeros(ns)
        self.uses_blas = covariance_type in ("full", "tied") and n_features >= BLAS_MIN_FEATURES
        self._no_rows = np.empty((0, K))  # "not requested" for (n, K) arguments
        # the shapes the kernel indexes by: X's columns, then (as _prepare_params
        # gives them) means, precision factors, log base, and the shift
        prec = {"full": (K, d, d), "tied": (d, d), "diag": (K, d), "spherical": (K, 1)}
        self._shapes = ((d,), (K, d), prec[covariance_type], (K,), (K, d))

    def run(self, X, sample_weight, params, *, shift=None, do_stats=True,
            resp_in=None, out_lognorm=None, out_resp=None, out_label=None, out_logprob=None):
        """One fused pass over X; returns :class:`GaussianStats` (``do_stats``)
        or ``(sum_i w_i log p(x_i), sum_i w_i)`` (not computed, 0, when only
        ``out_logprob`` is asked for: it skips the log-sum-exp).

        X is an array (one kernel call), a :class:`fastem._data.RowSource`
        (one call per chunk; statistics summed, row arguments sliced) or a
        :class:`fastem._dask.DaskSource` (one task per chunk on the Dask
        workers, statistics tree-summed; no per-row arguments)."""
        ct = self.covariance_type
        if out_logprob is not None and (do_stats or out_lognorm is not None or out_resp is not None
                                        or out_label is not None):
            raise TypeError("out_logprob is computed alone: with do_stats=False and no other "
                            "per-row output.")
        prepared = _prepare_params(params, ct)
        if shift is None:
            shift = default_shift(params, ct)
        shift = np.ascontiguousarray(shift, dtype=np.float64)
        if isinstance(X, DaskSource):  # on the chunks, where they are
            if resp_in is not None or out_lognorm is not None or out_resp is not None \
                    or out_label is not None or out_logprob is not None:
                raise TypeError("Per-row outputs of a dask array are made lazily "
                                "with DaskSource.map_rows.")
            return X.estep(ct, sample_weight, params, shift, do_stats)
        if not isinstance(X, RowSource):
            return self._call(kernel_array(X), sample_weight, prepared, shift, do_stats,
                              resp_in, out_lognorm, out_resp, out_label, out_logprob)
        total = None
        for i0, chunk in X.chunks():
            rows = slice(i0, i0 + chunk.shape[0])
            if X.allow_nan and np.isnan(chunk).any():  # missing='em'
                from ._missing import chunk_estep

                part = chunk_estep(chunk, _rows(sample_weight, rows), params, ct, shift,
                                   do_stats, i0, resp_in=_rows(resp_in, rows),
                                   out_lognorm=_rows(out_lognorm, rows),
                                   out_resp=_rows(out_resp, rows),
                                   out_label=_rows(out_label, rows),
                                   out_logprob=_rows(out_logprob, rows))
            else:
                part = self._call(chunk, _rows(sample_weight, rows), prepared, shift,
                                  do_stats, _rows(resp_in, rows), _rows(out_lognorm, rows),
                                  _rows(out_resp, rows), _rows(out_label, rows),
                                  _rows(out_logprob, rows), small=False)
            total = summed(total, part)
        return total

    def _call(self, X, sample_weight, prepared, shift, do_stats, resp_in,
              out_lognorm, out_resp, out_label, out_logprob=None, small=True):
        """The kernel on one in-memory array, then the in-order slot reduction.
        With ``small``, an array of at most ``_small.SMALL_ROWS`` rows runs the
        NumPy E-step instead (nothing to compile; per-row outputs too, so a
        row's output may differ in the last bits with the number of rows that
        come with it).  The chunks of out-of-core input always run the
        kernel, the last, shorter one too."""
        ct = self.covariance_type
        means, prec, base = prepared
        self._check_args(X, means, prec, base, shift, sample_weight, resp_in, out_lognorm,
                         out_resp, out_label, out_logprob)
        K = means.shape[0]
        sw = _EMPTY_W if sample_weight is None else sample_weight
        if resp_in is None:
            resp_in = self._no_rows
        args = (
            X, sw, means, prec, base, shift, resp_in, do_stats,
            _EMPTY_W if out_lognorm is None else out_lognorm,
            self._no_rows if out_resp is None else out_resp,
            _EMPTY_I if out_label is None else out_label,
            self._no_rows if out_logprob is None else out_logprob,
            self.S0s, self.S1s, self.S2s, self.lls, self.wsums, self.block, VM_CONSTS,
        )
        ns = self.S0s.shape[0]
        if small and X.shape[0] <= _small.SMALL_ROWS:  # NumPy: nothing to compile
            _small.estep(KERNEL_TYPE[ct], *args[:-2])
        else:
            with serial_if_small(estep_work(X.shape[0], K, X.shape[1], ct)):
                if self.uses_blas:
                    with single_threaded_blas():
                        run_slots(self.kernel, args, ns)
                else:
                    run_slots(self.kernel, args, ns)
        # serial, in-order reduction over slots: thread-count independent
        loglik = float(np.add.reduce(self.lls))
        weight = float(np.add.reduce(self.wsums))
        if not do_stats:
            return loglik, weight
        S2 = np.add.reduce(self.S2s, axis=0)
        if ct == "spherical":  # diag kernel: sum the per-feature second moments
            S2 = np.add.reduce(S2, axis=1)
        return GaussianStats(
            ct,
            shift,
            np.add.reduce(self.S0s, axis=0),
            np.add.reduce(self.S1s, axis=0),
            S2,
            loglik,
            weight,
        )

    def _check_args(self, X, means, prec, base, shift, sample_weight, resp_in, out_lognorm,
                    out_resp, out_label, out_logprob=None):
        """The kernel trusts the shapes it indexes by: check them first (no pass
        over the rows; about half a microsecond in an EM iteration)."""
        shapes = (X.shape[1:], means.shape, prec.shape, base.shape, shift.shape)
        bad = [] if shapes == self._shapes else [
            f"{name} of shape {got} instead of {want}" for name, got, want in zip(
                ("X (its columns)", "means", "precision factors", "log weights", "shift"),
                shapes, self._shapes) if got != want]
        if (sample_weight is not None or resp_in is not None or out_lognorm is not None
                or out_resp is not None or out_label is not None or out_logprob is not None):
            n, K = X.shape[0], self._no_rows.shape[1]
            for name, a, want, dtype in (
                    ("sample_weight", sample_weight, (n,), None),
                    ("resp_in", resp_in, (n, K), _EMPTY_W.dtype),
                    ("out_lognorm", out_lognorm, (n,), _EMPTY_W.dtype),
                    ("out_resp", out_resp, (n, K), _EMPTY_W.dtype),
                    ("out_label", out_label, (n,), _EMPTY_I.dtype),
                    ("out_logprob", out_logprob, (n, K), _EMPTY_W.dtype)):
                if a is not None and (a.shape != want or (dtype is not None and a.dtype != dtype)):
                    bad.append(f"{name} of shape {a.shape} and dtype {a.dtype} instead of "
                               f"{want}{'' if dtype is None else f' and {dtype}'}")
        if bad:
            K, d = self._shapes[1]
            raise ValueError(
                f"The E-step for {K} components, {d} features and covariance_type="
                f"{self.covariance_type!r} was given {'; '.join(bad)}. The model's arrays "
                "disagree with each other, with its parameters or with X: fit it again, or "
                "load it again from a file written by fastem.save."
            )


def evaluate_rows(X, params, covariance_type, kind):
    """A new array of per-row outputs: ``kind`` 'label' (int64, (n,)),
    'lognorm' ((n,)) or 'resp' ((n, K))."""
    n, K = X.shape[0], params.means.shape[0]
    if kind == "resp":
        out = np.empty((n, K))
    else:
        out = np.empty(n, dtype=np.int64 if kind == "label" else np.float64)
    evaluate(X, params, covariance_type, **{"out_" + kind: out})
    return out


def evaluate(X, params, covariance_type, *, sample_weight=None, out_lognorm=None,
             out_resp=None, out_label=None):
    """The kernel with statistics off: fills the requested per-row outputs and
    returns ``(sum_i w_i log p(x_i), sum_i w_i)``.  X may be out of core
    (a :class:`fastem._data.RowSource`); the outputs are in-memory arrays.

    A finite row so far from every component that all its log-densities
    underflow to -inf (its log-density is -inf) goes, as label or as
    posterior probability 1, to the component nearest in log space
    (:func:`fastem._stats.nearest_components`): probabilities always sum to
    1.  Such a row makes the total log-likelihood -inf (or NaN with weight
    0), so the usual case costs no extra pass."""
    K, d = params.means.shape
    ws = EStepWorkspace(covariance_type, K, d, rows_per_call(X))
    out = ws.run(X, sample_weight, params, do_stats=False, out_lognorm=out_lognorm,
                 out_resp=out_resp, out_label=out_label)
    if (out_label is not None or out_resp is not None) and not np.isfinite(out[0]):
        lognorm = out_lognorm
        if lognorm is None:
            lognorm = np.empty(X.shape[0])
            ws.run(X, None, params, do_stats=False, out_lognorm=lognorm)
        far = np.flatnonzero(lognorm == -np.inf)
        if far.size:
            nearest = nearest_components(take_rows(X, far), params, covariance_type)
            if out_label is not None:
                out_label[far] = nearest
            if out_resp is not None:
                out_resp[far] = 0.0
                out_resp[far, nearest] = 1.0
    return out
