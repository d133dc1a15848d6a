"""Input validation with errors that say what was expected, what was received
and what to do.  Nothing is silently dropped or turned into NaN."""

import numbers

import numpy as np
from scipy import sparse

_FINITE_CHUNK = 8192


def _describe(X):
    return f"{type(X).__name__} of shape {getattr(X, 'shape', '?')}"


def check_array_2d(X, *, name="X", estimator_name="GaussianMixture"):
    """Return X as a 2-D float32/float64 array-like without copying when the
    input already is one (C or Fortran order and strided views are kept as
    they are).

    Out-of-core input -- a file-backed ``np.memmap``, or any other 2-D
    array-like with ``.shape``, ``.dtype`` and row slicing that is not an
    ndarray, list or pandas object (h5py and zarr arrays, for instance) -- is
    never read here: it comes back as a :class:`fastem._data.RowSource`, read
    block by block and checked for NaN and inf on its first pass.  A dask
    array comes back as a :class:`fastem._dask.DaskSource`, whose E-step runs
    on its chunks where they are.
    """
    if sparse.issparse(X):
        raise ValueError(
            f"{estimator_name} expects a dense array for {name}, but got a sparse "
            f"{_describe(X)}. Convert it with {name}.toarray() if it fits in memory."
        )
    from ._dask import DaskSource, is_dask_array, is_dask_collection
    from ._data import RowSource, is_out_of_core

    if isinstance(X, RowSource):
        return X
    if is_dask_array(X):
        return DaskSource(X, name=name, estimator_name=estimator_name)
    if is_dask_collection(X):
        raise ValueError(
            f"{estimator_name} accepts a 2-D dask array for {name}, but got a "
            f"{type(X).__name__}. Convert a dask DataFrame with "
            f"{name}.to_dask_array(lengths=True)."
        )
    if is_out_of_core(X):
        return _check_out_of_core(X, name, estimator_name)
    if not isinstance(X, np.ndarray):
        X = _asarray(X, name)
    dtype = X.dtype
    if dtype.kind == "c":
        raise ValueError(_complex_message(dtype, name, estimator_name))
    if dtype.kind in "OUSVMm":
        try:
            X = X.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"{estimator_name} expects numeric data for {name}, but got dtype "
                f"{dtype} that cannot be converted to float ({exc}). Encode "
                "categorical columns as numbers or drop them."
            ) from None
    elif dtype.kind in "biu" or (dtype.kind == "f" and dtype not in (np.float32, np.float64)):
        X = X.astype(np.float64)
    _check_shape(X.shape, name)
    check_finite(X, name)
    return X


def _complex_message(dtype, name, estimator_name):
    return (
        f"{estimator_name} expects real numeric data for {name}, but got complex "
        f"values (dtype {dtype}). Pass the real part, the modulus, or both as "
        "separate columns."
    )


def _check_shape(shape, name):
    """2-D with at least one row and one column."""
    if len(shape) != 2:
        if len(shape) == 1:
            raise ValueError(
                f"Expected a 2-D array for {name} (n_samples, n_features), but got a "
                f"1-D array of shape {shape}. Reshape your data with "
                f"{name}.reshape(-1, 1) if it has a single feature or "
                f"{name}.reshape(1, -1) if it is a single sample."
            )
        raise ValueError(
            f"Expected a 2-D array for {name} (n_samples, n_features), but got an "
            f"array with {len(shape)} dimensions and shape {shape}."
        )
    n, d = shape
    if n == 0 or d == 0:
        raise ValueError(
            f"Expected a non-empty 2-D array for {name}, but got shape {shape}: "
            "at least one sample and one feature are required."
        )


def _check_out_of_core(X, name, estimator_name):
    """Checks of an out-of-core input from its metadata only; returns the
    :class:`fastem._data.RowSource` that reads it (NaN/inf are checked on the
    first pass)."""
    from ._data import RowSource

    shape = tuple(int(s) for s in X.shape)
    dtype = np.dtype(X.dtype)
    if dtype.kind == "c":
        raise ValueError(_complex_message(dtype, name, estimator_name))
    if dtype.kind not in "biuf":
        raise ValueError(
            f"{estimator_name} reads {name} ({_describe(X)}, not held in memory) "
            "block by block and needs a numeric dtype: float32, float64, integer or "
            f"boolean, but got dtype {dtype}. Store the data as float64 (or "
            f"float32), or pass np.asarray({name}) if it fits in memory, so that "
            "it is converted as a whole."
        )
    _check_shape(shape, name)
    return RowSource(X, name=name)


def _asarray(X, name):
    try:
        return np.asarray(X)
    except Exception as exc:  # pragma: no cover - depends on exotic inputs
        raise ValueError(f"Could not convert {name} to an array: {exc}") from None


class FiniteCheck:
    """Counts and locates NaN and inf values over row chunks of one array, so
    that the error reports all of them, whether X is read whole or in chunks."""

    def __init__(self):
        self.n_nan = 0
        self.n_inf = 0
        self.first = None

    def update(self, i0, chunk):
        """Account for ``chunk``, rows ``i0 ...`` of X; True if all finite."""
        finite = np.isfinite(chunk)
        if finite.all():
            return True
        bad = ~finite
        n_bad = int(bad.sum())
        n_nan = int(np.isnan(chunk).sum())
        self.n_nan += n_nan
        self.n_inf += n_bad - n_nan
        if self.first is None:
            r, c = np.argwhere(bad)[0]
            self.first = (i0 + int(r), int(c), chunk[r, c])
        return False

    def merge(self, other):
        """Add the counts of ``other``, a check of rows after this one's."""
        self.n_nan += other.n_nan
        self.n_inf += other.n_inf
        if self.first is None:
            self.first = other.first
        return self

    def raise_if_any(self, name="X"):
        if self.first is None:
            return
        total = self.n_nan + self.n_inf
        rows = "value" if total == 1 else "values"
        first = self.first
        raise ValueError(
            f"{name} contains {total} non-finite {rows} (NaN: {self.n_nan}, inf: "
            f"{self.n_inf}); the first is {first[2]} at row {first[0]}, column "
            f"{first[1]}. Expected finite numbers only: missing values are not "
            "supported by this estimator yet. Impute them (e.g. "
            "sklearn.impute.SimpleImputer) or drop those rows."
        )


def check_finite(X, name="X"):
    """Raise a ValueError counting and locating NaN and inf values.

    Works in row chunks so that memory stays bounded for huge X.
    """
    check = FiniteCheck()
    for i0 in range(0, X.shape[0], _FINITE_CHUNK):
        check.update(i0, np.asarray(X[i0:i0 + _FINITE_CHUNK]))
    check.raise_if_any(name)


def check_sample_weight(sample_weight, n_samples):
    """float64 weights of shape (n_samples,), finite, >= 0, positive sum."""
    if sample_weight is None:
        return None
    if isinstance(sample_weight, numbers.Number):
        sample_weight = np.full(n_samples, float(sample_weight))
    sw = np.asarray(sample_weight)
    if sw.dtype.kind not in "biuf":
        raise ValueError(
            f"sample_weight must be numeric, but got dtype {sw.dtype}."
        )
    sw = np.ascontiguousarray(sw, dtype=np.float64)
    if sw.shape != (n_samples,):
        raise ValueError(
            f"sample_weight must have shape ({n_samples},), one weight per sample, "
            f"but got shape {sw.shape}."
        )
    if not np.isfinite(sw).all():
        raise ValueError(
            f"sample_weight must be finite, but has {int((~np.isfinite(sw)).sum())} "
            "NaN or inf values."
        )
    if (sw < 0).any():
        neg = np.flatnonzero(sw < 0)
        raise ValueError(
            f"sample_weight must be non-negative, but {neg.size} weights are negative "
            f"(the first, {sw[neg[0]]}, at index {neg[0]}). Use 0 to drop a sample."
        )
    if sw.sum() <= 0:
        raise ValueError("sample_weight must have a positive sum, but all weights are 0.")
    return sw
