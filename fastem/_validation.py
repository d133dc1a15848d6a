"""Input validation with errors that say what was expected, what was received
and what to do.  Nothing is silently dropped or turned into NaN."""

import numbers
import os

import numpy as np
from scipy import sparse

_FINITE_CHUNK = 8192


def _describe(X):
    return f"{type(X).__name__} of shape {getattr(X, 'shape', '?')}"


def check_array_2d(X, *, name="X", estimator_name="GaussianMixture", allow_nan=False):
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

    ``allow_nan`` (``missing='em'``) accepts NaN entries (inf, values too
    large in magnitude and rows with every value missing are still refused;
    ``"impute"`` accepts the latter); a source then checks its chunks the
    same way.
    """
    if sparse.issparse(X):
        raise ValueError(
            f"{estimator_name} expects a dense array for {name}, but got a sparse "
            f"{_describe(X)}. Convert it with {name}.toarray() if it fits in memory."
        )
    from ._dask import DaskSource, is_dask_array, is_dask_collection
    from ._data import RowSource, is_out_of_core

    if isinstance(X, RowSource):
        X.allow_nan = bool(allow_nan)
        return X
    if is_dask_array(X):
        return DaskSource(X, name=name, estimator_name=estimator_name, allow_nan=allow_nan)
    if is_dask_collection(X):
        raise ValueError(
            f"{estimator_name} accepts a 2-D dask array for {name}, but got a "
            f"{type(X).__name__}. Convert a dask DataFrame with "
            f"{name}.to_dask_array(lengths=True)."
        )
    if is_out_of_core(X):
        source = _check_out_of_core(X, name, estimator_name)
        source.allow_nan = bool(allow_nan)
        return source
    X = _plain_ndarray(X, name, estimator_name)
    dtype = X.dtype
    if dtype.kind == "c":
        raise ValueError(_complex_message(dtype, name, estimator_name))
    if dtype.kind in "Mm":
        raise TypeError(_datetime_message(dtype, name, estimator_name))
    if dtype.kind in "OUSV":
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
    check_finite(X, name, allow_nan=bool(allow_nan), allow_empty=allow_nan == "impute")
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


def _datetime_message(dtype, name, estimator_name):
    return (
        f"{estimator_name} expects real numeric data for {name}, but got dtype {dtype} "
        "(dates or durations), whose raw integer ticks would be fitted as numbers. "
        f"Convert the columns to a numeric scale first, e.g. "
        f"({name} - {name}.min()) / np.timedelta64(1, 'D') for days."
    )


def _plain_ndarray(X, name, estimator_name):
    """X as a base-class ndarray: ``np.matrix`` and masked arrays are refused
    (a masked array without any masked value is taken as its data)."""
    if isinstance(X, np.matrix):
        raise TypeError(
            f"{estimator_name} does not accept np.matrix for {name} (got {_describe(X)}): "
            "np.matrix keeps rows 2-D under indexing and is deprecated by NumPy. "
            f"Convert it with np.asarray({name})."
        )
    if isinstance(X, np.ma.MaskedArray):
        n_masked = int(np.ma.count_masked(X))
        if n_masked:
            raise ValueError(
                f"{estimator_name} got a masked array for {name} with {n_masked} masked "
                "values. Masked values are missing values, which this estimator does not "
                "support yet; their hidden data would be fitted as if it were real. Drop "
                f"those rows or impute them, then pass {name}.filled() or a plain array."
            )
        return np.asarray(X.data)
    if type(X) is np.ndarray:
        return X
    if isinstance(X, np.ndarray):  # another subclass: its data as a plain array
        return X.view(np.ndarray)
    try:
        X = np.asarray(X)
    except Exception as exc:  # pragma: no cover - depends on exotic inputs
        raise ValueError(f"Could not convert {name} to an array: {exc}") from None
    return _plain_ndarray(X, name, estimator_name) if type(X) is not np.ndarray else X


#: Largest magnitude accepted in X: sums of squared deviations of such
#: values (up to (2e140)^2 per entry, times rows and features) stay far inside
#: float64's range (1.8e308).  float32 data is always below it.
MAX_ABS_VALUE = 1e140


class FiniteCheck:
    """Counts and locates NaN and inf values, and values too large in
    magnitude (>= :data:`MAX_ABS_VALUE`), over row chunks of one array, so
    that the error reports all of them, whether X is read whole or in chunks.
    With ``allow_nan`` (missing='em') a NaN is a missing entry, not an error,
    but a row with every value missing is (``empty``: the rows found), unless
    ``allow_empty`` (imputation)."""

    def __init__(self, allow_nan=False, allow_empty=False):
        self.allow_nan = allow_nan
        self.allow_empty = allow_empty
        self.empty = []
        self.n_empty = 0
        self.n_nan = 0
        self.n_inf = 0
        self.first = None
        self.n_large = 0
        self.first_large = None

    def update(self, i0, chunk):
        """Account for ``chunk``, rows ``i0 ...`` of X; True if all finite
        and within range."""
        if chunk.size == 0:
            return True
        # NaN propagates; no temporary array; compared as Python floats (1e140
        # does not fit in float32)
        lo, hi = float(chunk.min()), float(chunk.max())
        if -MAX_ABS_VALUE < lo and hi < MAX_ABS_VALUE:
            return True
        finite = np.isfinite(chunk)
        if self.allow_nan:
            nan = np.isnan(chunk)
            finite |= nan
            empty = np.flatnonzero(nan.all(axis=1)) if chunk.ndim == 2 and \
                not self.allow_empty else np.zeros(0, int)
            self.n_empty += empty.size
            self.empty.extend(int(i0 + r) for r in empty[:max(0, 10 - len(self.empty))])
        if not finite.all():
            bad = ~finite
            n_bad = int(bad.sum())
            n_nan = 0 if self.allow_nan else int(np.isnan(chunk).sum())
            self.n_nan += n_nan
            self.n_inf += n_bad - n_nan
            if self.first is None:
                r, c = np.argwhere(bad)[0]
                self.first = (i0 + int(r), int(c), chunk[r, c])
        with np.errstate(invalid="ignore"):
            large = finite & (np.abs(chunk) >= MAX_ABS_VALUE)
        n_large = int(large.sum())
        if n_large:
            self.n_large += n_large
            if self.first_large is None:
                r, c = np.argwhere(large)[0]
                self.first_large = (i0 + int(r), int(c), chunk[r, c])
        return False

    @property
    def failed(self):
        """True once a non-finite or too large value (or a row without any
        value, with ``allow_nan``) was seen."""
        return self.first is not None or self.first_large is not None or self.n_empty > 0

    def merge(self, other):
        """Add the counts of ``other``, a check of rows after this one's."""
        self.n_nan += other.n_nan
        self.n_inf += other.n_inf
        self.n_large += other.n_large
        self.empty.extend(other.empty[:max(0, 10 - len(self.empty))])
        self.n_empty += other.n_empty
        if self.first is None:
            self.first = other.first
        if self.first_large is None:
            self.first_large = other.first_large
        return self

    def raise_if_any(self, name="X"):
        if self.n_empty:
            from ._missing import all_missing_message

            raise ValueError(all_missing_message(np.asarray(self.empty), name,
                                                 total=self.n_empty))
        if self.first is not None:
            total = self.n_nan + self.n_inf
            rows = "value" if total == 1 else "values"
            first = self.first
            raise ValueError(
                f"{name} contains {total} non-finite {rows} (NaN: {self.n_nan}, inf: "
                f"{self.n_inf}); the first is {first[2]} at row {first[0]}, column "
                f"{first[1]}. Expected finite numbers only: pass missing='em' to fit on "
                "the observed entries (NaN taken as missing at random), or impute them "
                "(fastem.MixtureImputer, sklearn.impute.SimpleImputer) or drop those rows."
            )
        if self.first_large is not None:
            row, col, value = self.first_large
            raise ValueError(
                f"{name} contains {self.n_large} values of magnitude >= "
                f"{MAX_ABS_VALUE:.0e} (the first is {value:.3e} at row {row}, column "
                f"{col}): their squares overflow float64 (largest "
                f"{np.finfo(np.float64).max:.1e}), so no likelihood can be computed. "
                "Expected values below 1e140 in magnitude: scale the data, e.g. divide "
                "each column by its largest absolute value or use "
                "sklearn.preprocessing.StandardScaler."
            )


def check_finite(X, name="X", allow_nan=False, allow_empty=False):
    """Raise a ValueError counting and locating NaN and inf values (with
    ``allow_nan``: inf, and rows with every value NaN unless
    ``allow_empty``; see :class:`FiniteCheck`).

    Works in row chunks so that memory stays bounded for huge X.
    """
    check = FiniteCheck(allow_nan, allow_empty)
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
    if not sw.any():  # (a sum could overflow for weights near 1e308)
        raise ValueError("sample_weight must have a positive sum, but all weights are 0.")
    return sw


def scaled_weights(sample_weight):
    """``(w, e)`` with ``sample_weight = w * 2**e`` and max(w) in [1, 2): the
    weights a fit uses.  Scaling by a power of two is exact, so a fit does not
    depend on the scale of the weights (bitwise for power-of-two factors, to
    rounding for others), and weights near 1e-300 or 1e308 neither underflow
    nor overflow its sums.  ``None`` (unweighted) comes back as ``(None, 0)``."""
    if sample_weight is None:
        return None, 0
    _, e = np.frexp(sample_weight.max())
    e = int(e) - 1
    if e == 0:
        return sample_weight, 0
    return np.ldexp(sample_weight, -e), e


def count_scale(sample_weight):
    """Factor turning summed weights (a component's S0) into an effective
    number of rows: ``sum(w) / sum(w**2)``, Kish's effective sample size per
    unit of weight.  1 for unweighted rows; invariant to the scale of the
    weights (weights of 1 and of 1/n give the same counts)."""
    if sample_weight is None:
        return 1.0
    return float(sample_weight.sum() / np.dot(sample_weight, sample_weight))


def check_fit_weights(sample_weight, n_samples, n_components):
    """:func:`check_sample_weight`, then the weights a fit uses
    (:func:`scaled_weights`); at least ``n_components`` rows must weigh more
    than 0 (a zero weight drops its row from the fit)."""
    sw = check_sample_weight(sample_weight, n_samples)
    if sw is None:
        return None
    n_pos = int(np.count_nonzero(sw))
    if n_pos < n_components:
        raise ValueError(
            f"Expected at least n_components = {n_components} rows of positive "
            f"sample_weight, but only {n_pos} of the {n_samples} weights are positive "
            "(rows of weight 0 carry no data). Use fewer components or give more rows "
            "a positive weight."
        )
    return scaled_weights(sw)[0]


def physical_memory():
    """Bytes of physical memory of this machine (None if unknown)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
        return None


def check_allocation(n_bytes, what, advice):
    """Refuse, before allocating, a request for more bytes than the machine
    has (a typo such as ``sample(10**12)`` fails at once, not after swapping)."""
    total = physical_memory()
    if total is not None and n_bytes > total:
        raise ValueError(
            f"{what} needs {n_bytes / 2**30:,.1f} GiB, more than this machine's "
            f"{total / 2**30:,.1f} GiB of memory. {advice}"
        )
