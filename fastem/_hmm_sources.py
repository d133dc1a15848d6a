"""Where the sequences of a hidden Markov model live: in memory, out of core
(an ``np.memmap`` or an h5py/zarr-like array) or in a Dask array.

Forward-backward needs a sequence whole, so the unit of out-of-core and
distributed work is a group of whole sequences:

* out of core, consecutive sequences are grouped into chunks of about
  ``FASTEM_CHUNK_BYTES`` (a longer sequence is a chunk of its own), read one
  at a time;
* a Dask array's own row chunks are the groups: each chunk must hold whole
  sequences (the chunk boundaries are sequence boundaries), and its task
  runs where the chunk is.

:meth:`SequenceChunks.map` calls ``fn(rows, lengths, weights, *args)`` on
each group's rows (an ndarray, as the data holds them) with that group's
sequence lengths and weights, and returns the results in group order, so
sums over them do not depend on the scheduler.  Importing this module does
not import Dask.
"""

import numpy as np

from . import _config
from ._dask import is_dask_array
from ._data import is_out_of_core


def _call(fn, rows, lengths, weights, args):
    return fn(np.asarray(rows), lengths, weights, *args)


class SequenceChunks:
    """The groups of whole sequences of X (see the module docstring);
    ``lengths`` already checked to sum to X's rows."""

    def __init__(self, X, lengths, seq_weight=None):
        self.X = X
        self.lengths = lengths
        self.seq_weight = seq_weight
        ends = np.cumsum(lengths)
        starts = ends - lengths
        n = int(ends[-1])
        self.dask = is_dask_array(X)
        if self.dask:
            if X.ndim != 2:
                raise ValueError(f"X should be a 2-d dask array, but has shape {X.shape}.")
            if X.numblocks[1] != 1:
                X = self.X = X.rechunk({1: -1})
            bounds = np.concatenate(([0], np.cumsum(X.chunks[0]))).astype(np.int64)
            inside = ~np.isin(bounds, np.concatenate(([0], ends)))
            if inside.any():
                b = int(bounds[np.flatnonzero(inside)[0]])
                q = int(np.searchsorted(ends, b, side="right"))
                raise ValueError(
                    f"Every chunk of a dask array X must hold whole sequences, but the chunk "
                    f"boundary at row {b} falls inside sequence {q} (rows {int(starts[q])} to "
                    f"{int(ends[q]) - 1}). Rechunk X along the sequences, e.g. "
                    "X.rechunk({0: chunks}) with chunks the sums of consecutive lengths.")
            firsts = np.searchsorted(starts, bounds[:-1])
            self.groups = [(int(a), int(b), int(bounds[i]), int(bounds[i + 1]))
                           for i, (a, b) in enumerate(zip(firsts, list(firsts[1:]) + [len(lengths)]))]
        else:
            d = int(X.shape[1]) if len(X.shape) == 2 else 1
            per = max(1, _config.CHUNK_BYTES // (8 * max(d, 1)))
            self.groups = []
            q = 0
            while q < len(lengths):
                r = q + 1
                while r < len(lengths) and ends[r] - starts[q] <= per:
                    r += 1
                self.groups.append((q, r, int(starts[q]), int(ends[r - 1])))
                q = r
        self.n_rows = n

    def _weights(self, a, b):
        return None if self.seq_weight is None else self.seq_weight[a:b]

    def map(self, fn, *args):
        """``[fn(rows, lengths, weights, *args) for each group]``, in order."""
        if not self.dask:
            return [_call(fn, self.X[r0:r1], self.lengths[a:b], self._weights(a, b), args)
                    for a, b, r0, r1 in self.groups]
        import dask

        blocks = self.X.to_delayed().ravel()
        task = dask.delayed(_call, pure=False)
        shared = [dask.delayed(v, pure=False, traverse=False) for v in (fn,) + args]
        parts = [task(shared[0], blk, self.lengths[a:b], self._weights(a, b), shared[1:])
                 for blk, (a, b, _, _) in zip(blocks, self.groups)]
        return list(dask.compute(*parts))

    def sample(self, size, random_state):
        """``size`` rows for the random start: X whole if it is no larger,
        else groups of sequences drawn at random, read whole (a window of
        one longer than what is left to read), in row order: contiguous
        reads of a file or of a dask chunk, never more than ``size`` rows."""
        if self.n_rows <= size:
            return np.asarray(self.X[:self.n_rows] if not self.dask else self.X.compute())
        spans, rows = [], 0
        for g in random_state.permutation(len(self.groups)):
            r0, r1 = self.groups[g][2:]
            take = min(r1 - r0, size - rows)  # a long group: a window of it
            start = r0 + int(random_state.randint(0, r1 - r0 - take + 1))
            spans.append((start, start + take))
            rows += take
            if rows >= size:
                break
        parts = [self.X[a:b] for a, b in sorted(spans)]
        if self.dask:
            import dask

            parts = dask.compute(*parts)
        return np.concatenate([np.asarray(p) for p in parts])


def chunked(X):
    """Whether X is read in groups of sequences (out of core, or Dask)."""
    return is_dask_array(X) or is_out_of_core(X)
