"""``CategoricalMixture``: latent class analysis on the shared EM driver
(the categorical family of :mod:`fastem.families.categorical`, the discrete
estimator of :mod:`fastem.discrete`; no @njit here).

X holds integer codes 0 .. C_j - 1 per column, or is a pandas DataFrame (or
an array of strings) whose columns the estimator codes itself: the levels of
a ``category`` column, else the sorted distinct values, kept in
``categories_`` and used again by ``predict``, ``score_samples`` and the rest.
"""

import warnings
from numbers import Integral
from typing import ClassVar

import numpy as np
from scipy import sparse
from sklearn.utils._param_validation import Interval

from ._base import INIT_SAMPLE_SIZE
from ._dask import is_dask_collection
from ._data import RowSource, is_out_of_core
from ._validation import check_allocation
from .discrete import _COMMON_DOC, _DiscreteMixture, _store
from .families.categorical import Categorical
from .families.linear import LinearParams


class CategoricalMixture(_DiscreteMixture):
    __doc__ = (
        "Mixture of independent categorical variables (latent class analysis), fitted "
        "by EM.\n" + _COMMON_DOC.format(
            theta="probabilities",
            theta_shape="list of n_features arrays of shape (n_components, C_j)",
            extra=("    n_categories : int, array-like of shape (n_features,) or None, "
                   "default=None\n"
                   "        Categories per column (codes 0 .. C_j - 1); None takes them from\n"
                   "        the data at fit (the largest code + 1, or the distinct values of\n"
                   "        a coded column).\n"))
        + "    n_categories_ : ndarray of shape (n_features,)\n"
          "    categories_ : list of n_features arrays\n"
          "        The values behind codes 0 .. C_j - 1 when X was a DataFrame or an\n"
          "        array of strings (else not set).\n")

    _parameter_constraints: ClassVar[dict] = {
        **_DiscreteMixture._parameter_constraints,
        "probabilities_init": [list, tuple, None],
        "n_categories": [Interval(Integral, 1, None, closed="left"), "array-like", None],
    }

    def __init__(self, n_components=1, *, n_categories=None, tol=1e-3, max_iter=100,
                 n_init=1, init_params="kmeans", weights_init=None, probabilities_init=None,
                 random_state=None, warm_start=False, verbose=0, verbose_interval=10,
                 on_collapse="reseed", accelerate=None, fixed_weights=False, alpha=0.0,
                 missing="raise"):
        _store(self, locals())

    @property
    def _family(self):
        return Categorical(self.n_categories_)

    # -- data: coding and the number of categories -----------------------

    def _check_X(self, X, reset, continuing=None, nan=False):
        self._coding = reset and continuing is None
        return super()._check_X(X, reset, continuing, nan)

    def _validate_data(self, X, allow_nan=None):
        name = type(self).__name__
        if sparse.issparse(X):
            raise ValueError(f"{name} needs a dense array of category codes, but got a "
                             f"sparse {X.format} matrix of shape {X.shape}. Convert it "
                             f"with X.toarray().")
        coding = self._coding
        if allow_nan is None:
            allow_nan = getattr(self, "missing", "raise") == "em"
        if _is_frame(X) or _holds_strings(X):
            X = self._coded(X, fit=coding, allow_nan=bool(allow_nan))
        elif coding and hasattr(self, "categories_"):
            del self.categories_
        elif not coding and hasattr(self, "categories_"):
            raise ValueError(f"{name} was fitted on labelled data (a DataFrame or strings, "
                             f"see categories_); pass data of the same kind, not codes.")
        if coding:
            self.n_categories_ = self._categories_from(X)
        return super()._validate_data(X, allow_nan)

    def _categories_from(self, X):
        """n_categories_ at fit: the parameter, else from the data (one pass
        over out-of-core or dask X)."""
        d = X.shape[1] if len(X.shape) == 2 else 0
        top = _column_max(X) if d and X.shape[0] else None
        if hasattr(self, "categories_"):
            found = np.array([len(c) for c in self.categories_], dtype=np.int64)
        elif top is not None and np.isfinite(top).all():
            found = np.maximum(top, 0).astype(np.int64) + 1
        else:
            found = np.ones(d, dtype=np.int64)  # the family's check names the problem
        if self.n_categories is None:
            return self._affordable(found)
        given = np.asarray(self.n_categories)
        if given.ndim > 1 or (given.ndim == 1 and given.shape[0] != d) or \
                given.dtype.kind not in "iu" or (given < 1).any():
            raise ValueError(f"n_categories should be an int >= 1 or one per column ({d}), "
                             f"but got {self.n_categories!r}.")
        given = np.broadcast_to(given, (d,)).astype(np.int64)
        short = np.flatnonzero(given < found)
        if short.size:
            j = int(short[0])
            raise ValueError(f"Column {j} of X holds {found[j]} categories (codes up to "
                             f"{found[j] - 1}), but n_categories gives {given[j]}. Pass a "
                             f"larger n_categories, or None to take it from the data.")
        return self._affordable(given)

    def _affordable(self, n_categories):
        """Refuse, before any table is made, more categories in all than the
        tables (components x categories, per slot) and the one-hot start
        sample (rows x categories) fit in memory."""
        total = int(n_categories.sum()) if n_categories.size else 0
        check_allocation(
            8 * total * (16 * self.n_components + INIT_SAMPLE_SIZE),
            f"{type(self).__name__} with {total:,} categories in all (n_categories "
            f"{_brief(n_categories)})",
            "Codes must be 0 .. C_j - 1 with C_j the number of categories of column j: "
            "recode the columns (or pass a DataFrame, which is coded for you).")
        return n_categories

    def _coded(self, X, fit, allow_nan=False):
        """The codes of a DataFrame (or array of strings); at fit, the
        categories are learnt (``categories_``).  A missing cell (None, NaN,
        pandas NA) is a ValueError, or with ``allow_nan`` the code NaN (the
        codes are then floats)."""
        columns, missing = _columns(X)
        first = next(((int(m.nonzero()[0][0]), j) for j, m in enumerate(missing) if m.any()),
                     None)
        if first is not None and not allow_nan:
            i, j = first
            raise ValueError(f"{type(self).__name__} needs a category in every cell; "
                             f"missing values (None, nan) are refused by default, but X holds one at row "
                             f"{i}, column {j}. Pass missing='em' to fit on the observed "
                             "cells, or drop or impute those rows.")
        if fit:
            self.categories_ = [_levels(_observed(c, m), j)
                                for j, (c, m) in enumerate(zip(columns, missing))]
        elif not hasattr(self, "categories_"):
            raise ValueError(f"{type(self).__name__} was fitted on integer codes, so it cannot "
                             f"code labelled data (a DataFrame of text or category columns, or "
                             f"strings); pass the codes, or fit on the labelled data.")
        elif len(columns) != len(self.categories_):
            raise ValueError(f"X has {len(columns)} features, but {type(self).__name__} was "
                             f"fitted with {len(self.categories_)} features.")
        n = len(columns[0]) if columns else 0
        codes = np.empty((n, len(columns)), dtype=np.int64 if first is None else np.float64)
        for j, (values, levels, m) in enumerate(zip(columns, self.categories_, missing)):
            if m.any():
                codes[:, j] = np.nan
                codes[~m, j] = _code(_observed(values, m), levels, j, np.flatnonzero(~m))
            else:
                codes[:, j] = _code(values, levels, j)
        return codes

    def impute(self, X):
        """X with each missing cell replaced by its most probable category
        given the row's observed cells (``argmax_c sum_k r_ik p_kjc``);
        observed cells unchanged.  Codes give float codes; labelled data (a
        DataFrame or strings, fitted on such) gives an object array of the
        labels of ``categories_``."""
        filled = super().impute(X)
        if not hasattr(self, "categories_"):
            return filled
        return np.column_stack([np.asarray(levels, dtype=object)[filled[:, j].astype(np.int64)]
                                for j, levels in enumerate(self.categories_)])

    # -- parameters ------------------------------------------------------

    def _checked_inits(self, n_features):
        k = self.n_components
        weights, _ = _DiscreteMixture._checked_inits(self, n_features, theta_given=False)
        theta = None
        if self.probabilities_init is not None:
            C = self.n_categories_
            blocks = list(self.probabilities_init)
            want = [(k, int(c)) for c in C]
            got = [np.shape(b) for b in blocks]
            if got != want:
                raise ValueError(
                    f"The parameter 'probabilities_init' should be a list of {len(C)} "
                    f"arrays of shapes {want} (n_components, categories of each column), "
                    f"but got shapes {got}.")
            theta = self._family.flat(blocks)
            if not np.isfinite(theta).all():
                raise ValueError("The parameter 'probabilities_init' holds values that are "
                                 "not finite.")
            self._family.check_theta(theta, "The parameter 'probabilities_init'")
        return weights, theta

    def _get_params_tuple(self):
        return LinearParams(self.weights_, self._family.flat(self.probabilities_))

    def _set_params_tuple(self, params):
        self.weights_ = np.asarray(params.weights, dtype=np.float64)
        self.probabilities_ = self._family.blocks(np.asarray(params.theta, dtype=np.float64))

    def _check_loaded(self):
        k, d = self.n_components, self.n_features_in_
        C = np.asarray(self.n_categories_)
        if C.shape != (d,) or C.dtype.kind not in "iu" or (C < 1).any():
            raise ValueError(f"n_categories_ should be {d} counts >= 1 (n_features_in_), "
                             f"but is {C!r}.")
        got = [np.shape(b) for b in self.probabilities_]
        if got != [(k, int(c)) for c in C] or \
                any(np.asarray(b).dtype != np.float64 for b in self.probabilities_):
            raise ValueError(f"probabilities_ should be {d} float64 arrays of shapes "
                             f"(n_components={k}, n_categories_[j]), but has shapes {got}.")
        if hasattr(self, "categories_") and [len(c) for c in self.categories_] != list(C):
            raise ValueError("categories_ should list n_categories_[j] values per column.")
        self._check_weights_loaded()
        theta = self._family.flat(self.probabilities_)
        if not np.isfinite(theta).all():
            raise ValueError("probabilities_ holds values that are not finite.")
        self._family.check_theta(theta, "probabilities_")

    def _sample_components(self, rng, counts):
        theta = self._family.flat(self.probabilities_)
        codes = np.vstack([self._family.sample(theta[k], int(c), rng)
                           for k, c in enumerate(counts)]).astype(np.int64)
        if not hasattr(self, "categories_"):
            return codes
        out = np.empty(codes.shape, dtype=object)
        for j, levels in enumerate(self.categories_):
            out[:, j] = np.asarray(levels, dtype=object)[codes[:, j]]
        return out


# -- coding helpers ----------------------------------------------------------

def _brief(values, most=6):
    v = [int(x) for x in np.ravel(values)[:most]]
    return f"{v}{' ...' if np.size(values) > most else ''}"


def _column_max(X):
    """The largest value of each column (NaN if any), reading out-of-core
    X chunk by chunk and a dask array on its chunks; None for non-numbers."""
    if is_dask_collection(X):
        if np.dtype(X.dtype).kind not in "biuf":
            return None
        import dask.array as da

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column
            top = np.asarray(da.nanmax(X, axis=0).compute(), dtype=np.float64)
        return np.where(np.isnan(top), 0.0, top)
    if is_out_of_core(X) or isinstance(X, RowSource):
        source = RowSource(X.source if isinstance(X, RowSource) else X)
        if np.dtype(source.dtype).kind not in "biuf":
            return None
        source.allow_nan = True  # a reading of its own: the values are checked later
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            top = np.nanmax([np.nanmax(c, axis=0) for _, c in source.chunks()], axis=0)
        return np.where(np.isnan(top), 0.0, top).astype(np.float64)
    X = np.asarray(X)
    if X.ndim != 2 or X.dtype.kind not in "biuf":
        return None
    if X.dtype.kind == "f" and X.shape[0] and np.isnan(X).any():  # missing='em'
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column
            top = np.nanmax(X, axis=0)
        return np.where(np.isnan(top), 0.0, top).astype(np.float64)
    return X.max(axis=0).astype(np.float64)


def _is_frame(X):
    return type(X).__module__.split(".")[0] == "pandas" and hasattr(X, "columns")


def _holds_strings(X):
    return isinstance(X, np.ndarray) and X.dtype.kind in "OUS" or \
        (isinstance(X, list) and np.asarray(X).dtype.kind in "OUS")


def _columns(X):
    """The columns of X as 1-D arrays, and per column a boolean mask of its
    missing cells."""
    if _is_frame(X):
        cols = [X.iloc[:, j] for j in range(X.shape[1])]
        missing = [np.asarray(c.isna().to_numpy(), dtype=bool) for c in cols]
        arrays = [c.cat.codes.to_numpy() if str(c.dtype) == "category" else
                  c.to_numpy() for c in cols]
        levels = [list(c.cat.categories) if str(c.dtype) == "category" else None
                  for c in cols]
        arrays = [_Categorical(a, lv) if lv is not None else a for a, lv in zip(arrays, levels)]
    else:
        A = np.asarray(X, dtype=object)
        if A.ndim != 2:
            raise ValueError(f"Expected a 2-D array of categories, got {A.ndim} dimensions.")
        arrays = [A[:, j] for j in range(A.shape[1])]
        missing = [np.array([_is_missing(v) for v in a], dtype=bool) for a in arrays]
    return arrays, missing


def _observed(values, mask):
    """The column's values where ``mask`` is False (a category column keeps
    its levels)."""
    if not mask.any():
        return values
    if isinstance(values, _Categorical):
        return _Categorical(np.asarray(values)[~mask], values.levels)
    return values[~mask]


class _Categorical(np.ndarray):
    """The codes of a pandas ``category`` column with its levels."""

    def __new__(cls, codes, levels):
        obj = np.asarray(codes, dtype=np.int64).view(cls)
        obj.levels = levels
        return obj


def _is_missing(v):
    return v is None or (isinstance(v, float) and np.isnan(v))


def _levels(values, j):
    if isinstance(values, _Categorical):
        return np.asarray(values.levels, dtype=object)
    try:
        return np.asarray(sorted(set(values.tolist())), dtype=object)
    except TypeError:
        kinds = sorted({type(v).__name__ for v in values.tolist()})
        raise ValueError(f"Column {j} of X mixes values of types {kinds} that cannot be "
                         f"ordered; make each column one type (e.g. all strings).") from None


def _code(values, levels, j, rows=None):
    """Codes of ``values`` in ``levels``; ``rows`` their row numbers in X
    (for the message; default 0, 1, ...)."""
    if isinstance(values, _Categorical):
        values = np.asarray(values.levels, dtype=object)[np.asarray(values)]
    index = {v: c for c, v in enumerate(levels.tolist())}
    codes = np.empty(len(values), dtype=np.int64)
    for i, v in enumerate(values.tolist()):
        c = index.get(v)
        if c is None:
            i = i if rows is None else int(rows[i])
            raise ValueError(f"X holds the category {v!r} at row {i}, column {j}, which was "
                             f"not seen at fit (categories_[{j}] lists those seen). Map it "
                             f"to a known category, or refit with data that has it.")
        codes[i] = c
    return codes
