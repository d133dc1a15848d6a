"""Distributed EM on Dask: the same kernels on every chunk of a dask array.

A ``dask.array.Array`` given to ``fit``, ``score``, ``predict`` ... comes back
from :func:`fastem._validation.check_array_2d` as a :class:`DaskSource`.  It
is a :class:`fastem._data.RowSource` -- row samples for the initialisation
and the collapse re-seed are read with ``take``, NaN/inf are checked on the
first pass -- whose E-step runs where the chunks are:

* each chunk's task runs the fused kernel of :mod:`fastem._estep` on its rows
  and returns the chunk's shifted statistics packed in one float64 vector
  (:meth:`GaussianStats.to_vector`, ``K (1 + d + S2) + 2`` numbers);
* the vectors are summed in a tree of fan-in :data:`FAN_IN`, always in chunk
  order, so the result does not depend on which worker computed what;
* the client unpacks the sum and runs the M-step.

So per iteration the parameters travel to the workers once (the task that
holds them is shared by every chunk task) and one statistics vector per chunk
travels back: nothing that grows with the number of rows.  ``fit`` persists
the data (on the workers under a ``distributed.Client``, in memory under the
threaded scheduler) for the length of the fit.

A chunk task runs its kernel on one Numba thread: Dask already runs one task
per worker thread, and more threads per task would oversubscribe the cores.

Importing this module does not import Dask; it is imported when a dask array
is met.
"""

import math
import sys

import numpy as np

from ._data import RowSource
from ._validation import FiniteCheck, _check_shape

#: Statistics vectors summed per node of the reduction tree.
FAN_IN = 8


def is_dask_array(X):
    """True if X is a ``dask.array.Array`` (never imports Dask)."""
    da = sys.modules.get("dask.array")
    return da is not None and isinstance(X, da.Array)


def is_dask_collection(X):
    """True for objects of Dask's own modules (arrays, data frames, bags)."""
    mod = type(X).__module__ or ""
    return mod == "dask" or mod.startswith(("dask.", "dask_expr"))


# --------------------------------------------------------------------------
# what a chunk task runs (on a worker)
# --------------------------------------------------------------------------

def _finite_part(block, offset, allow_nan=False):
    """The NaN/inf check of a block whose first row is row ``offset``."""
    check = FiniteCheck(allow_nan)
    check.update(offset, np.asarray(block))
    return check


def wire_params(params):
    """What the kernels need of the parameters (covariances stay home)."""
    from ._stats import GaussianParams

    return GaussianParams(np.asarray(params.weights, dtype=np.float64),
                          np.asarray(params.means, dtype=np.float64), None,
                          np.asarray(params.precisions_cholesky, dtype=np.float64))


def payload(covariance_type, params, shift, do_stats, check, allow_nan=False):
    """What every chunk task of one E-step receives (one shared task)."""
    return (covariance_type, wire_params(params),
            np.ascontiguousarray(shift, dtype=np.float64), bool(do_stats), bool(check),
            bool(allow_nan))


def _block_estep(block, weights, offset, payload):
    """The chunk's statistics vector (or ``[loglik, weight]``), with its
    NaN/inf check when ``check`` is set (else None)."""
    from ._estep import EStepWorkspace, one_thread

    ct, params, shift, do_stats, check, allow_nan = payload
    block = np.asarray(block)
    finite = None
    if check:
        finite = _finite_part(block, offset, allow_nan)
        if finite.failed:  # no E-step on non-finite or too large rows
            return np.zeros(0), finite
    K, d = params.means.shape
    with one_thread():
        if allow_nan and np.isnan(block).any():  # missing='em'
            from ._missing import chunk_estep

            out = chunk_estep(block, weights, params, ct, shift, do_stats, offset)
        else:
            ws = EStepWorkspace(ct, K, d, block.shape[0])
            out = ws.run(block, weights, params, shift=shift, do_stats=do_stats)
    vec = out.to_vector() if do_stats else np.array(out, dtype=np.float64)
    return vec, finite


def _combine(*parts):
    """Sum of statistics vectors in the order given; NaN/inf checks merged
    (the first bad value is the one of the earliest chunk)."""
    vec, finite = None, None
    for v, part in parts:
        if part is not None:
            finite = part if finite is None else finite.merge(part)
        if v.size:
            vec = v.copy() if vec is None else vec + v
    return (np.zeros(0) if vec is None else vec), finite


def _block_finite(block, offset, allow_nan=False):
    return np.zeros(0), _finite_part(block, offset, allow_nan)


def _block_rows(block, kind, payload, block_info=None):
    """Per-row outputs of one chunk: labels, log-densities or responsibilities."""
    from ._estep import evaluate_rows, one_thread

    ct, params, name, allow_nan = payload
    block = np.asarray(block)
    offset = block_info[0]["array-location"][0][0] if block_info else 0
    _finite_part(block, offset, allow_nan).raise_if_any(name)
    with one_thread():
        if allow_nan and np.isnan(block).any():  # missing='em'
            from ._missing import chunk_estep

            K = params.means.shape[0]
            out = np.empty((block.shape[0], K)) if kind == "resp" else np.empty(
                block.shape[0], dtype=np.int64 if kind == "label" else np.float64)
            chunk_estep(block, None, params, ct, None, False, offset, **{"out_" + kind: out})
            return out
        return evaluate_rows(block, params, ct, kind)


def _tree_sum(parts):
    """Delayed sum of delayed ``(vector, finite)`` parts, fan-in FAN_IN, in order."""
    import dask

    combine = dask.delayed(_combine, pure=False)
    while len(parts) > 1:
        parts = [combine(*parts[i:i + FAN_IN]) for i in range(0, len(parts), FAN_IN)]
    return parts[0]


# --------------------------------------------------------------------------
# the client side
# --------------------------------------------------------------------------

class DaskSource(RowSource):
    """A 2-D dask array as a row source whose E-step runs on the chunks.

    Parameters
    ----------
    X : dask.array.Array
        Chunked along the rows; a chunking along the columns is merged into
        one column chunk.  Its dtype must be float, integer or boolean;
        float32 stays float32, the rest becomes float64 (lazily, chunk by
        chunk).
    name, estimator_name : str
        How X and the estimator are called in error messages.
    """

    def __init__(self, X, *, name="X", estimator_name="GaussianMixture", allow_nan=False):
        shape = X.shape
        if any(math.isnan(s) for s in shape):  # unknown chunk sizes
            raise ValueError(
                f"{estimator_name} needs the number of rows of each chunk of the dask "
                f"array {name}, but its shape is {shape} (unknown chunk sizes, e.g. "
                f"after boolean indexing). Call {name}.compute_chunk_sizes() first."
            )
        _check_shape(tuple(int(s) for s in shape), name)
        dtype = np.dtype(X.dtype)
        if dtype.kind not in "biuf":
            raise ValueError(
                f"{estimator_name} needs a dask array {name} of a numeric dtype "
                f"(float32, float64, integer or boolean), but got dtype {dtype}. "
                f"Convert it with {name}.astype('float64')."
            )
        if X.numblocks[1] != 1:
            X = X.rechunk({1: -1})
        target = np.float32 if dtype == np.float32 else np.float64
        if dtype != target:
            X = X.astype(target)
        super().__init__(X, name=name)
        self.allow_nan = allow_nan
        self.estimator_name = estimator_name
        self.array = self._lazy = X
        self.row_chunks = tuple(int(c) for c in X.chunks[0])
        self.offsets = np.concatenate(([0], np.cumsum(self.row_chunks))).astype(np.int64)
        self.chunk_rows = max(self.row_chunks)
        self._weights = None  # (client ndarray, its dask array) while persisted

    def __repr__(self):
        return (f"DaskSource(shape={self.shape}, dtype={self.dtype}, "
                f"chunks={len(self.row_chunks)} of up to {self.chunk_rows} rows)")

    # -- RowSource's reading, by computing the rows --------------------------

    def _read(self, i0, i1):
        return None, np.asarray(self.array[i0:i1].compute())

    def take(self, indices):
        idx = np.asarray(indices)
        if idx.ndim != 1 or (idx.size and idx.dtype.kind not in "iu"):
            raise TypeError(
                f"Rows of {self.name} are selected with a 1-D array of integer "
                f"indices, but got dtype {idx.dtype} and shape {idx.shape}."
            )
        rows = np.asarray(self.array[idx.astype(np.int64)].compute())
        self._check_read(rows)
        return rows

    # -- fit: data persisted, statistics summed in a tree --------------------

    def persist(self, sample_weight=None):
        """Keep the data (and the sample weights) in the workers' memory for
        the fit's iterations."""
        self.array = self.array.persist()
        if sample_weight is not None:
            self._weights = (sample_weight, self._weight_array(sample_weight).persist())

    def release(self):
        """Forget the persisted data: the workers free it."""
        self.array = self._lazy
        self._weights = None

    def _weight_array(self, sample_weight):
        import dask.array as da

        return da.from_array(np.asarray(sample_weight, dtype=np.float64),
                             chunks=(self.row_chunks,))

    def _weight_blocks(self, sample_weight):
        if sample_weight is None:
            return [None] * len(self.row_chunks)
        if self._weights is not None and self._weights[0] is sample_weight:
            w = self._weights[1]
        else:
            w = self._weight_array(sample_weight)
        return list(w.to_delayed().ravel())

    def estep(self, covariance_type, sample_weight, params, shift, do_stats):
        """One distributed E-step: :class:`GaussianStats` (``do_stats``) or
        ``(sum_i w_i log p(x_i), sum_i w_i)``; the first call also checks
        every value for NaN and inf, and raises on the client."""
        from ._stats import GaussianStats

        check = not self.validated
        vec = self.reduce(_block_estep, payload(covariance_type, params, shift, do_stats, check,
                                                self.allow_nan), sample_weight, check)
        if not do_stats:
            return float(vec[0]), float(vec[1])
        K, d = params.means.shape
        return GaussianStats.from_vector(covariance_type, shift, vec, K, d)

    def reduce(self, block_task, shared_payload, sample_weight, check):
        """``block_task(block, weights, offset, shared_payload)`` on every
        chunk, where it is, and the sum of the ``(vector, FiniteCheck or
        None)`` it returns, tree-summed in chunk order: the summed vector.
        With ``check`` (the first pass) the merged checks are raised on the
        client and X counts as validated; a task may also raise itself (a
        family's domain check), which Dask raises on the client."""
        import dask

        shared = dask.delayed(shared_payload, pure=False, traverse=False)
        task = dask.delayed(block_task, pure=False)
        blocks = self.array.to_delayed().ravel()
        weights = self._weight_blocks(sample_weight)
        holders = self._holders(blocks)
        parts = []
        for b, w, o, where in zip(blocks, weights, self.offsets[:-1], holders):
            if where:  # run where the chunk is (if that worker is still there)
                with dask.annotate(workers=where, allow_other_workers=True):
                    parts.append(task(b, w, int(o), shared))
            else:
                parts.append(task(b, w, int(o), shared))
        vec, finite = _tree_sum(parts).compute()
        if check:
            if finite is not None:
                finite.raise_if_any(self.name)
            self.validated = True
        return vec

    def _holders(self, blocks):
        """Per chunk, the workers holding it, when X is persisted on a
        ``distributed`` cluster (else Nones).

        Without this, the scheduler may run a chunk's task on another worker
        when the holder is busy, and copy the chunk there: measured, a 3.2 MB
        chunk in one of four E-steps.  The restriction is loose: if the
        holder has died, the task runs anywhere and Dask recomputes the
        chunk."""
        none = [None] * len(blocks)
        try:
            from distributed import futures_of
        except ImportError:
            return none
        futures = futures_of(self.array)
        if not futures:
            return none
        try:
            who = futures[0].client.who_has(futures)
        except (ValueError, OSError):  # pragma: no cover - client gone
            return none
        return [list(who.get(b.key, ())) or None for b in blocks]

    def validate(self):
        """Check every value for NaN and inf on the workers (once)."""
        if self.validated:
            return
        import dask

        task = dask.delayed(_block_finite, pure=False)
        parts = [task(b, int(o), self.allow_nan) for b, o in
                 zip(self.array.to_delayed().ravel(), self.offsets[:-1])]
        _, finite = _tree_sum(parts).compute()
        finite.raise_if_any(self.name)
        self.validated = True

    # -- inference: lazy per-row outputs -------------------------------------

    def map_rows_with(self, block_rows, shared_payload, kind, n_components):
        """Lazy per-row outputs ``block_rows(block, kind, shared_payload)``
        of every chunk: 'label' (int64, (n,)), 'lognorm' ((n,)) or 'resp'
        ((n, K))."""
        if kind == "resp":
            return self.array.map_blocks(block_rows, kind, shared_payload, dtype=np.float64,
                                         chunks=(self.row_chunks, (n_components,)))
        dtype = np.int64 if kind == "label" else np.float64
        return self.array.map_blocks(block_rows, kind, shared_payload, dtype=dtype,
                                     drop_axis=1, chunks=(self.row_chunks,))

    def map_rows(self, kind, params, covariance_type):
        """Lazy per-row outputs: ``kind`` 'label' (int64, (n,)), 'lognorm'
        ((n,)) or 'resp' ((n, K)); a chunk with NaN or inf raises when it is
        computed."""
        return self.map_rows_with(_block_rows, (covariance_type, wire_params(params), self.name,
                                                self.allow_nan), kind, params.means.shape[0])
