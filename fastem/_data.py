"""Out-of-core input: row chunks of an ``np.memmap`` or of any 2-D array-like
with ``.shape``, ``.dtype`` and row slicing (h5py and zarr arrays behave so).

:class:`RowSource` reads such input block by block, so that fitting and
scoring hold a few chunks in memory whatever the number of rows.  Because the
sufficient statistics are additive (:mod:`fastem._stats`), a pass of EM over
the chunks is the in-memory E-step run on each chunk and summed: only the
iteration differs, not the maths.

Two details make the memory really bounded:

- **Pages of a memory map.**  Pages of a file mapping that a process has
  touched count in its resident memory (``RssFile``) as long as they stay
  mapped, so a pass over a 2 GB memmap would make the resident set grow to
  2 GB.  After each chunk, its pages are unmapped with
  ``madvise(MADV_DONTNEED)`` (Linux; a no-op elsewhere).  The data stays in
  the operating system's page cache (not counted in the process's RSS), so
  the next pass still reads from memory when it fits there.  This is done
  only for read-only and shared mappings (modes ``'r'``, ``'r+'``, ``'w+'``),
  whose pages are the file's; never for copy-on-write (``'c'``) mappings,
  whose modified pages are private and would be discarded.
- **No fancy indexing on generic array-likes.**  Row samples (for the
  initialisation) are read as sorted, coalesced runs of row slices, the one
  access every array-like supports with the same meaning.

NaN and inf are checked chunk by chunk on the first complete pass only;
reading a sample checks the sample, and a non-finite value found anywhere
triggers a full count so that the error is the one in-memory input gets.
"""

import ctypes
import itertools
import mmap
import sys

import numpy as np
from scipy import sparse

from . import _config
from ._validation import FiniteCheck

#: Fewest rows per chunk, whatever FASTEM_CHUNK_BYTES says.
MIN_CHUNK_ROWS = 4096
#: When reading a row sample, rows between two wanted rows closer than this
#: many bytes are read too, in one slice, instead of issuing another read.
_COALESCE_BYTES = 64 * 1024
#: memmap modes whose pages are the file's (MAP_SHARED): safe to unmap.
_SHARED_MODES = ("r", "r+", "w+")


#: Above this many rows, a sample of rows is drawn without the permutation of
#: all n rows that RandomState.choice(replace=False) makes (8 n bytes: 1 GB
#: for 1.3e8 rows), so that memory does not grow with n.
PERMUTATION_MAX_ROWS = 2**22


def sample_rows(random_state, n, size):
    """Sorted indices of ``size`` distinct rows out of ``n``, uniformly at random.

    Up to ``PERMUTATION_MAX_ROWS`` rows, ``random_state.choice(n, size,
    replace=False)``; above, the first ``size`` distinct values of uniform
    draws (a uniform sample too), in O(size) memory."""
    if n <= PERMUTATION_MAX_ROWS:
        return np.sort(random_state.choice(n, size=size, replace=False))
    chosen = np.empty(0, dtype=np.int64)
    while chosen.size < size:
        draws = np.concatenate((chosen, random_state.randint(n, size=size, dtype=np.int64)))
        _, first = np.unique(draws, return_index=True)
        chosen = draws[np.sort(first)]  # distinct values, in order of first draw
    return np.sort(chosen[:size])


def sample_weighted_rows(random_state, n, size, sample_weight=None):
    """Sorted indices of up to ``size`` distinct rows drawn uniformly among
    the rows of positive weight (all ``n`` rows when unweighted), or None
    when every row is taken.  Rows of weight 0 carry nothing a fit uses, so
    an initialisation or a re-seed never starts from them."""
    if sample_weight is None or (sample_weight > 0).all():
        return sample_rows(random_state, n, size) if n > size else None
    usable = np.flatnonzero(sample_weight > 0)
    if usable.size <= size:
        return usable
    return usable[sample_rows(random_state, usable.size, size)]


def take_rows(X, idx):
    """Rows ``idx`` (sorted) of an in-memory array or a :class:`RowSource`,
    as an in-memory array; a RowSource reads only those rows."""
    if isinstance(X, RowSource):
        return X.take(idx)
    return X[idx] if sparse.issparse(X) else np.asarray(X[idx])


def is_out_of_core(X):
    """True if X is read block by block: a file-backed ``np.memmap``, or a
    non-ndarray with ``.shape``, a NumPy ``.dtype`` and ``__getitem__`` that is
    not a list, a tuple or a pandas object."""
    if isinstance(X, np.ndarray):
        return isinstance(X, np.memmap) and getattr(X, "_mmap", None) is not None
    if isinstance(X, (list, tuple)) or type(X).__module__.split(".")[0] == "pandas":
        return False
    if not (hasattr(X, "shape") and hasattr(X, "dtype") and hasattr(X, "__getitem__")):
        return False
    try:
        np.dtype(X.dtype)
        tuple(int(s) for s in X.shape)
    except (TypeError, ValueError):
        return False
    return True


class RowSource:
    """Row-chunked, read-only access to a 2-D out-of-core array.

    Parameters
    ----------
    X : np.memmap or array-like
        Anything with ``.shape``, ``.dtype`` and ``X[i0:i1]`` returning rows
        ``i0 .. i1 - 1`` as something ``np.asarray`` turns into an
        ``(i1 - i0, n_features)`` array.  Its dtype must be float, integer or
        boolean (checked by :func:`fastem._validation.check_array_2d`, which
        builds RowSources).
    name : str
        How X is called in error messages.

    Attributes
    ----------
    shape : (n_samples, n_features)
    dtype : float32 or float64, the dtype of the chunks (float32 stays
        float32; every other dtype is converted to float64, chunk by chunk).
    chunk_rows : int
        Rows per chunk: ``FASTEM_CHUNK_BYTES`` worth, at least 4096 (at most
        n_samples).
    validated : bool
        True once a complete pass has checked every value for NaN and inf.
    """

    ndim = 2

    def __init__(self, X, *, name="X"):
        self.source = X
        self.name = name
        self.shape = tuple(int(s) for s in X.shape)
        source_dtype = np.dtype(X.dtype)
        self.source_dtype = source_dtype
        self.dtype = np.dtype(np.float32 if source_dtype == np.float32 else np.float64)
        n, d = self.shape
        row_bytes = d * max(source_dtype.itemsize, self.dtype.itemsize)
        self.chunk_rows = max(1, min(n, max(MIN_CHUNK_ROWS, _config.CHUNK_BYTES // row_bytes)))
        self._row_bytes = row_bytes
        self.validated = False
        self.allow_nan = False  # missing='em': NaN entries are missing, not errors
        self._is_memmap = isinstance(X, np.memmap)
        # the memmap as a plain ndarray view: slicing it makes no memmap objects
        self._nd = X.view(np.ndarray) if self._is_memmap else None
        self._release_pages = self._is_memmap and getattr(X, "mode", None) in _SHARED_MODES

    def __len__(self):
        return self.shape[0]

    def __repr__(self):
        return (f"RowSource({type(self.source).__name__}, shape={self.shape}, "
                f"dtype={self.dtype}, chunk_rows={self.chunk_rows})")

    # ------------------------------------------------------------------
    # reading
    # ------------------------------------------------------------------

    def _read(self, i0, i1):
        """Rows i0:i1 as ``(raw, chunk)``: ``chunk`` is the array to use,
        ``raw`` the memmap view whose pages to release after use (or None)."""
        if self._nd is not None:
            raw = self._nd[i0:i1]
            if raw.dtype == self.dtype:
                return raw, raw
            chunk = raw.astype(self.dtype)
            release_pages(raw, self._release_pages)
            return None, chunk
        chunk = np.asarray(self.source[i0:i1])
        expected = (i1 - i0, self.shape[1])
        if chunk.shape != expected:
            raise ValueError(
                f"Reading rows {i0}:{i1} of {self.name} ({type(self.source).__name__}) "
                f"returned an array of shape {chunk.shape}, but {expected} was "
                f"expected. Out-of-core input must return rows i0..i1-1 for "
                f"{self.name}[i0:i1]; pass an object that does, or an ndarray."
            )
        if chunk.dtype != self.dtype:
            chunk = chunk.astype(self.dtype)
        return None, chunk

    def _release(self, raw):
        if raw is not None:
            release_pages(raw, self._release_pages)

    def chunks(self, rows=None):
        """Yield ``(i0, chunk)`` over the rows in order; ``chunk`` is a 2-D
        float32/float64 ndarray of up to ``rows`` (default ``chunk_rows``)
        rows, valid until the next chunk is requested (a memmap's chunk is a
        view whose pages are released then).

        Until a complete pass has been made, each chunk is checked for NaN and
        inf before it is yielded; a bad chunk ends the pass with the
        ValueError in-memory input gets (all non-finite values counted)."""
        n = self.shape[0]
        rows = self.chunk_rows if rows is None else max(1, int(rows))
        check = None if self.validated else FiniteCheck(self.allow_nan)
        for i0 in range(0, n, rows):
            i1 = min(n, i0 + rows)
            raw, chunk = self._read(i0, i1)
            try:
                if check is not None and not check.update(i0, chunk):
                    self._count_rest(check, i1, rows)
                yield i0, chunk
            finally:
                self._release(raw)
        if check is not None:
            self.validated = True

    def _count_rest(self, check, start, rows):
        """Count the non-finite values of rows ``start:`` and raise."""
        n = self.shape[0]
        for i0 in range(start, n, rows):
            raw, chunk = self._read(i0, min(n, i0 + rows))
            try:
                check.update(i0, chunk)
            finally:
                self._release(raw)
        check.raise_if_any(self.name)

    def validate(self):
        """Check every value for NaN and inf (once: a no-op after a complete
        pass); raises the in-memory ValueError."""
        for _ in self.chunks():
            pass

    def _check_read(self, rows):
        """Rows read outside a complete pass: if any is non-finite or too
        large, count them all over X and raise."""
        if self.validated or FiniteCheck(self.allow_nan).update(0, rows):
            return
        self.validate()
        check = FiniteCheck(self.allow_nan)  # reached only if X changed since: report the rows
        check.update(0, rows)
        check.raise_if_any(self.name)

    def read(self, i0, i1):
        """Rows i0:i1 as an in-memory ndarray owning its data (read by pieces
        of at most ``chunk_rows`` rows)."""
        i1 = max(i0, i1)
        if i1 - i0 <= self.chunk_rows:
            raw, out = self._read(i0, i1)
            if raw is not None:
                out = out.copy()
                self._release(raw)
        else:
            out = np.empty((i1 - i0, self.shape[1]), dtype=self.dtype)
            for a in range(i0, i1, self.chunk_rows):
                b = min(i1, a + self.chunk_rows)
                raw, chunk = self._read(a, b)
                out[a - i0:b - i0] = chunk
                self._release(raw)
        self._check_read(out)
        return out

    def take(self, indices):
        """The rows ``indices`` (integers, any order) as an in-memory ndarray.

        Rows are read in increasing order, window by window (no window spans
        more than ``chunk_rows`` rows): a memmap window is indexed and its
        pages released (touching scattered rows maps whole page-cache folios,
        so indexing all the rows at once could map the whole file); other
        array-likes are read as row slices, nearby rows coalesced into one
        read, never with fancy indexing."""
        idx = np.asarray(indices)
        if idx.ndim != 1 or (idx.size and idx.dtype.kind not in "iu"):
            raise TypeError(
                f"Rows of {self.name} are selected with a slice or a 1-D array of "
                f"integer indices, but got {type(indices).__name__} with dtype "
                f"{getattr(idx, 'dtype', '?')} and shape {idx.shape}."
            )
        n, d = self.shape
        idx = idx.astype(np.int64, copy=False)
        if idx.size and (idx.min() < -n or idx.max() >= n):
            raise IndexError(f"Row index out of range for {self.name} with {n} rows.")
        idx = np.where(idx < 0, idx + n, idx)
        order = None
        if (np.diff(idx) < 0).any():
            order = np.argsort(idx, kind="stable")
            idx = idx[order]
        rows = np.empty((idx.size, d), dtype=self.dtype)
        if self._nd is not None:
            bounds = [0, idx.size]  # windows only
        else:
            max_gap = max(1, _COALESCE_BYTES // self._row_bytes)
            bounds = np.concatenate(([0], np.flatnonzero(np.diff(idx) > max_gap) + 1,
                                     [idx.size]))
        for a, b in itertools.pairwise(bounds):
            while a < b:
                lo = int(idx[a])
                e = a + int(np.searchsorted(idx[a:b], lo + self.chunk_rows))
                hi = int(idx[e - 1]) + 1
                if self._nd is not None:
                    raw = self._nd[lo:hi]
                    rows[a:e] = raw[idx[a:e] - lo]
                    release_pages(raw, self._release_pages)
                else:
                    rows[a:e] = self._read(lo, hi)[1][idx[a:e] - lo]
                a = e
        if order is not None:
            out = np.empty_like(rows)
            out[order] = rows
            rows = out
        self._check_read(rows)
        return rows

    def __getitem__(self, key):
        """Rows by slice, integer or integer array (an in-memory copy)."""
        n = self.shape[0]
        if isinstance(key, slice):
            start, stop, step = key.indices(n)
            if step == 1:
                return self.read(start, stop)
            return self.take(np.arange(start, stop, step))
        if isinstance(key, (int, np.integer)):
            i = int(key) + n if key < 0 else int(key)
            if not 0 <= i < n:
                raise IndexError(f"Row index {key} out of range for {self.name} with {n} rows.")
            return self.read(i, i + 1)[0]
        key = np.asarray(key)
        if key.dtype == bool:
            if key.shape != (n,):
                raise IndexError(f"Boolean row mask of shape {key.shape} for {n} rows.")
            key = np.flatnonzero(key)
        return self.take(key)

    def __array__(self, dtype=None, copy=None):
        """The whole array in memory (read chunk by chunk): only for data
        known to fit in memory."""
        out = np.empty(self.shape, dtype=self.dtype)
        for i0, chunk in self.chunks():
            out[i0:i0 + chunk.shape[0]] = chunk
        return out if dtype is None else out.astype(dtype, copy=False)


# --------------------------------------------------------------------------
# releasing the pages of a memory map
# --------------------------------------------------------------------------

_PAGE = mmap.PAGESIZE
_MADVISE = None  # libc madvise, loaded on first use; False when unavailable


def _madvise_function():
    global _MADVISE
    if _MADVISE is None:
        _MADVISE = False
        if sys.platform.startswith("linux") and hasattr(mmap, "MADV_DONTNEED"):
            try:
                fn = ctypes.CDLL(None, use_errno=True).madvise
            except (OSError, AttributeError):  # pragma: no cover - exotic libc
                fn = None
            if fn is not None:
                fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
                fn.restype = ctypes.c_int
                _MADVISE = fn
    return _MADVISE


def release_pages(a, enabled=True):
    """Unmap the pages spanned by ndarray ``a``, a view into a file mapping
    shared with the file (``madvise(MADV_DONTNEED)``), so they stop counting
    in the resident memory; they are read back from the page cache or the
    file if touched again.  Never call it on copy-on-write mappings.

    Linux only; does nothing elsewhere or when ``enabled`` is False."""
    if not enabled or a.size == 0:
        return
    madvise = _madvise_function()
    if not madvise:
        return
    lo = hi = a.ctypes.data
    for extent, stride in zip(a.shape, a.strides):
        if stride > 0:
            hi += stride * (extent - 1)
        else:
            lo += stride * (extent - 1)
    hi += a.itemsize
    # the mapping starts on a page boundary and covers whole pages, so the
    # page-aligned span stays inside it
    start = lo - lo % _PAGE
    end = -(-hi // _PAGE) * _PAGE
    madvise(start, end - start, mmap.MADV_DONTNEED)
