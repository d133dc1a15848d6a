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
    input already is one (C or Fortran order, strided views and np.memmap are
    kept as they are)."""
    if sparse.issparse(X):
        raise ValueError(
            f"{estimator_name} expects a dense array for {name}, but got a sparse "
            f"{_describe(X)}. Convert it with {name}.toarray() if it fits in memory."
        )
    if not isinstance(X, np.ndarray):
        X = _asarray(X, name)
    dtype = X.dtype
    if dtype.kind == "c":
        raise ValueError(
            f"{estimator_name} expects real numeric data for {name}, but got complex "
            f"values (dtype {dtype}). Pass the real part, the modulus, or both as "
            "separate columns."
        )
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
    if X.ndim != 2:
        if X.ndim == 1:
            raise ValueError(
                f"Expected a 2-D array for {name} (n_samples, n_features), but got a "
                f"1-D array of shape {X.shape}. Reshape your data with "
                f"{name}.reshape(-1, 1) if it has a single feature or "
                f"{name}.reshape(1, -1) if it is a single sample."
            )
        raise ValueError(
            f"Expected a 2-D array for {name} (n_samples, n_features), but got an "
            f"array with {X.ndim} dimensions and shape {X.shape}."
        )
    n, d = X.shape
    if n == 0 or d == 0:
        raise ValueError(
            f"Expected a non-empty 2-D array for {name}, but got shape {X.shape}: "
            "at least one sample and one feature are required."
        )
    check_finite(X, name)
    return X


def _asarray(X, name):
    if hasattr(X, "shape") and hasattr(X, "dtype") and hasattr(X, "__getitem__") and not hasattr(X, "__array__"):
        # array-likes without __array__ (e.g. out-of-core stores) would be
        # read whole here; they are handled by the out-of-core path.
        return np.asarray(X[:])
    try:
        return np.asarray(X)
    except Exception as exc:  # pragma: no cover - depends on exotic inputs
        raise ValueError(f"Could not convert {name} to an array: {exc}") from None


def check_finite(X, name="X"):
    """Raise a ValueError counting and locating NaN and inf values.

    Works in row chunks so that memory stays bounded for huge X.
    """
    n = X.shape[0]
    n_nan = n_inf = 0
    first = None
    for i0 in range(0, n, _FINITE_CHUNK):
        chunk = np.asarray(X[i0:i0 + _FINITE_CHUNK])
        finite = np.isfinite(chunk)
        if finite.all():
            continue
        bad = ~finite
        nans = np.isnan(chunk)
        n_nan += int(nans.sum())
        n_inf += int(bad.sum()) - int(nans.sum())
        if first is None:
            r, c = np.argwhere(bad)[0]
            first = (i0 + int(r), int(c), chunk[r, c])
    if first is None:
        return
    total = n_nan + n_inf
    rows = "value" if total == 1 else "values"
    raise ValueError(
        f"{name} contains {total} non-finite {rows} (NaN: {n_nan}, inf: {n_inf}); "
        f"the first is {first[2]} at row {first[0]}, column {first[1]}. Expected "
        "finite numbers only: missing values are not supported by this estimator "
        "yet. Impute them (e.g. sklearn.impute.SimpleImputer) or drop those rows."
    )


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
