"""Model selection over the number of components and the covariance type.

``select`` fits :class:`fastem.GaussianMixture` for every pair of a grid of
``n_components`` and ``covariance_types`` and picks the model with the lowest
BIC, AIC or ICL, like R's ``mclust::Mclust``.  With ``family=`` (any family
of :mod:`fastem._registry`: ``"bernoulli"``, ``"poisson"``, ...) it selects
the number of components of that family's mixture instead, and with
``model="hmm"`` the number of states of a hidden Markov model
(:mod:`fastem.hmm`; ``lengths=`` gives the sequences).  See
``docs/select.md``.
"""

import warnings
from numbers import Integral

import numpy as np
from sklearn.exceptions import ConvergenceWarning, FitFailedWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import _get_feature_names

from ._data import RowSource
from ._estep import evaluate
from ._registry import HMMS, get_family, get_hmm
from ._stats import COVARIANCE_TYPES, bic_aic, n_parameters, unscaled_totals
from ._validation import check_array_2d, check_sample_weight, scaled_weights
from .mixture import GaussianMixture

__all__ = ["CRITERIA", "MODELS", "TABLE_COLUMNS", "SelectionResult", "select"]

#: Criteria ``select`` can minimise (all on scikit-learn's scale: lower is better).
CRITERIA = ("bic", "aic", "icl")

#: Columns of ``SelectionResult.table``, in order.
TABLE_COLUMNS = ("n_components", "covariance_type", "bic", "aic", "icl",
                 "log_likelihood", "n_parameters", "converged", "n_iter", "error")

#: Bytes of posterior probabilities held at once while computing ICL: the
#: (n, k) matrix is formed block by block, never whole on large data.
_RESP_BYTES = 32 * 2**20

#: GaussianMixture parameters that fix n_components, so cannot be shared by a grid.
_PER_K_PARAMS = ("weights_init", "means_init", "precisions_init")

#: ``covariance_types`` when it is not given (the Gaussian family's four).
_ALL_TYPES = ("full", "tied", "diag", "spherical")

#: What ``select(model=...)`` fits: mixtures, or hidden Markov models.
MODELS = ("mixture", "hmm")


# ----------------------------------------------------------------------
# argument checks
# ----------------------------------------------------------------------


def _check_components(n_components, n_samples):
    if isinstance(n_components, Integral) and not isinstance(n_components, bool):
        ks = [n_components]
    else:
        try:
            ks = iter(n_components)  # checked lazily: range(1, 10**9) fails at once
        except TypeError:
            raise ValueError(
                "n_components must be an int or an iterable of ints (e.g. range(1, 10)), "
                f"but got {type(n_components).__name__} {n_components!r}."
            ) from None
    out, seen = [], set()
    for k in ks:
        if isinstance(k, bool) or not isinstance(k, Integral):
            raise ValueError(
                f"n_components must contain integers, but got {k!r} "
                f"({type(k).__name__}) in {n_components!r}."
            )
        k = int(k)
        if k < 1:
            raise ValueError(
                f"n_components must contain integers >= 1, but got {k}. A mixture "
                "needs at least one component; use e.g. range(1, 10)."
            )
        if k > n_samples:
            raise ValueError(
                f"n_components must not exceed n_samples = {n_samples}, but got {k}. "
                f"Use at most {n_samples} components, or more data."
            )
        if k not in seen:
            seen.add(k)
            out.append(k)
    if not out:
        raise ValueError(
            "n_components is empty: there is nothing to select from. Pass at least one "
            "number of components, e.g. n_components=range(1, 10)."
        )
    return out


def _check_covariance_types(covariance_types):
    if isinstance(covariance_types, str):
        types = [covariance_types]
    else:
        try:
            types = list(covariance_types)
        except TypeError:
            raise ValueError(
                "covariance_types must be a string or an iterable of strings from "
                f"{list(COVARIANCE_TYPES)}, but got {type(covariance_types).__name__} "
                f"{covariance_types!r}."
            ) from None
    if not types:
        raise ValueError(
            "covariance_types is empty: there is nothing to select from. Pass at least "
            f"one of {list(COVARIANCE_TYPES)}."
        )
    out = []
    for ct in types:
        if ct not in COVARIANCE_TYPES:
            raise ValueError(
                f"Unknown covariance type {ct!r} in covariance_types. Expected any of "
                f"{list(COVARIANCE_TYPES)} (mclust's VVV, EEE, VVI and VII)."
            )
        if ct not in out:
            out.append(ct)
    return out


def _check_criterion(criterion):
    if not isinstance(criterion, str) or criterion.lower() not in CRITERIA:
        raise ValueError(
            f"Unknown criterion {criterion!r}. Expected one of {list(CRITERIA)} "
            "(all lower-is-better, on scikit-learn's scale)."
        )
    return criterion.lower()


def _check_params(params, n_init):
    allowed = set(GaussianMixture().get_params()) - {"n_components", "covariance_type"}
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise TypeError(
            f"select() got unexpected keyword argument(s) {unknown}. Extra keyword "
            "arguments are passed to fastem.GaussianMixture; expected any of "
            f"{sorted(allowed - set(_PER_K_PARAMS) - {'n_init', 'random_state'})}."
        )
    fixed = [p for p in _PER_K_PARAMS if params.get(p) is not None]
    if fixed:
        raise ValueError(
            f"{fixed} fix the number of components and cannot be shared by a grid of "
            "n_components. Fit GaussianMixture(..., weights_init=..., means_init=..., "
            "precisions_init=...) directly instead."
        )
    # invalid values (max_iter=-1, init_params="foo", ...) fail here, once,
    # instead of in every fit
    GaussianMixture(n_init=n_init, **params)._validate_params()


def _seeds(random_state, n_fits):
    """One random_state per fit: an int or None as given (every fit equals a
    standalone ``GaussianMixture(..., random_state=random_state)``); a
    RandomState/Generator draws one int seed per fit, in grid order."""
    if random_state is None or (isinstance(random_state, Integral)
                                and not isinstance(random_state, bool)):
        return [random_state] * n_fits
    if isinstance(random_state, np.random.Generator):
        return [int(s) for s in random_state.integers(np.iinfo(np.int32).max, size=n_fits)]
    rs = check_random_state(random_state)
    return [int(s) for s in rs.randint(np.iinfo(np.int32).max, size=n_fits)]


# ----------------------------------------------------------------------
# criteria of one fitted model
# ----------------------------------------------------------------------


def _criteria(gm, X, sw):
    """``(log_likelihood, total_weight, entropy)`` of a fitted model on X in
    one pass of the kernel: the total (weighted) log-likelihood that ``score``,
    ``bic`` and ``aic`` use, and ``-sum_i w_i log max_k t_ik``, the
    classification entropy of the MAP assignment that ICL adds (twice) to BIC.

    The posterior probabilities are formed ``_RESP_BYTES`` at a time."""
    params = gm._get_params_tuple()
    ct = gm.covariance_type
    n, k = X.shape[0], gm.n_components
    rows = max(1, _RESP_BYTES // (8 * k))
    in_memory = not isinstance(X, RowSource)
    if in_memory and n <= rows:
        # one call on all of X: the same reduction as bic()/aic()/score()
        blocks = [(0, X)]
        rows = n
    elif in_memory:
        blocks = ((i0, X[i0:i0 + rows]) for i0 in range(0, n, rows))
    else:
        blocks = X.chunks(rows)
    resp = np.empty((min(n, rows), k))
    loglik = weight = entropy = 0.0
    for i0, chunk in blocks:
        m = chunk.shape[0]
        wb = None if sw is None else sw[i0:i0 + m]
        holes = gm._missing_workspace(chunk)  # missing='em': the observed-data marginal
        if holes is not None:
            ll, w = holes.run(chunk, wb, params, do_stats=False, out_resp=resp[:m])
        else:
            ll, w = evaluate(chunk, params, ct, sample_weight=wb, out_resp=resp[:m])
        # log t_{i, z_i} <= 0 with z_i the MAP component (clip rounding above 1)
        log_t = np.minimum(np.log(resp[:m].max(axis=1)), 0.0)
        entropy -= float(log_t.sum() if wb is None else wb @ log_t)
        loglik += ll
        weight += w
    return loglik, weight, entropy


def _best_index(values, n_params):
    """Row of the lowest non-NaN criterion; ties go to fewer parameters, then
    to the earlier grid point."""
    ok = np.flatnonzero(~np.isnan(values))
    return int(min(ok, key=lambda i: (values[i], n_params[i], i)))


# ----------------------------------------------------------------------
# the result
# ----------------------------------------------------------------------


def _structured_table(rows):
    err_len = max([1] + [len(r["error"]) for r in rows])
    ct_len = max(len(ct) for ct in COVARIANCE_TYPES)
    dtype = np.dtype([
        ("n_components", np.int64), ("covariance_type", f"U{ct_len}"),
        ("bic", np.float64), ("aic", np.float64), ("icl", np.float64),
        ("log_likelihood", np.float64), ("n_parameters", np.int64),
        ("converged", np.bool_), ("n_iter", np.int64), ("error", f"U{err_len}"),
    ])
    table = np.empty(len(rows), dtype=dtype)
    for i, r in enumerate(rows):
        table[i] = tuple(r[c] for c in TABLE_COLUMNS)
    return table


def _as_table(records):
    """A pandas DataFrame if pandas is installed, else ``records`` itself."""
    try:
        import pandas as pd
    except ImportError:
        return records
    return pd.DataFrame({c: records[c] for c in TABLE_COLUMNS})


class SelectionResult:
    """The outcome of :func:`select`.

    Attributes
    ----------
    best_estimator_ : GaussianMixture
        The fitted model with the lowest criterion (ties: fewer parameters,
        then the earlier grid point): the family's mixture, or with
        ``model="hmm"`` its hidden Markov model (``GaussianHMM``...).
    best_params_ : dict
        ``{"n_components": k, "covariance_type": ct}`` of that model.
    best_index_ : int
        Its row in ``table``.
    criterion : str
        ``"bic"``, ``"aic"`` or ``"icl"``.
    table : pandas.DataFrame or numpy structured array
        One row per grid point (n_components outer, covariance_types inner,
        in the order given) with the columns :data:`TABLE_COLUMNS`; a
        DataFrame when pandas is installed, else ``records``.
    records : numpy structured array
        The same table, always as a NumPy structured array.
    n_components, covariance_types : list
        The grid, as validated (duplicates removed, order kept);
        ``covariance_types`` is empty for a family other than Gaussian.
    family : str
        The mixture family selected over (``"gaussian"``, ``"bernoulli"``...);
        with ``model="hmm"``, the family of the emissions.
    model : str
        ``"mixture"`` or ``"hmm"`` (hidden Markov models).
    """

    def __init__(self, records, best_index, best_estimator, criterion, n_components,
                 covariance_types, family="gaussian", model="mixture"):
        self.records = records
        self.table = _as_table(records)
        self.best_index_ = int(best_index)
        self.best_estimator_ = best_estimator
        best = records[best_index]
        self.best_params_ = {"n_components": int(best["n_components"])}
        if covariance_types:
            self.best_params_["covariance_type"] = str(best["covariance_type"])
        self.criterion = criterion
        self.n_components = list(n_components)
        self.covariance_types = list(covariance_types)
        self.family = family
        self.model = model

    @property
    def _types(self):
        """The columns of pivot(): the covariance types, or one ('') for a
        family without them."""
        return self.covariance_types or [""]

    @property
    def best_score_(self):
        """The best model's criterion value (lower is better)."""
        return float(self.records[self.best_index_][self.criterion])

    def pivot(self, column=None):
        """``column`` (default: the criterion) as an array of shape
        (len(n_components), len(covariance_types)), rows and columns in grid
        order, NaN for failed fits -- mclust's BIC layout, on scikit-learn's
        sign."""
        column = self.criterion if column is None else column
        out = np.full((len(self.n_components), len(self._types)), np.nan)
        ki = {k: i for i, k in enumerate(self.n_components)}
        ti = {t: j for j, t in enumerate(self._types)}
        for r in self.records:
            out[ki[int(r["n_components"])], ti[str(r["covariance_type"])]] = r[column]
        return out

    def _summary_line(self):
        p = self.best_params_
        what = (f"covariance_type={p['covariance_type']!r}" if "covariance_type" in p
                else f"family={self.family!r}")
        if self.model == "hmm":
            what += ", hidden Markov model"
        return (f"best by {self.criterion.upper()}: n_components={p['n_components']}, "
                f"{what} ({self.criterion.upper()} {self.best_score_:.3f})")

    def __repr__(self):
        values = self.pivot()
        kb = self.best_params_["n_components"]
        tb = self.best_params_.get("covariance_type", "")
        names = self.covariance_types or [self.family]
        width = max(12, max(len(t) for t in names) + 2)
        lines = [f"SelectionResult: {self.criterion.upper()} (lower is better, * = best)",
                 "   k" + "".join(f"{t:>{width}}" for t in names)]
        for i, k in enumerate(self.n_components):
            cells = []
            for j, t in enumerate(self._types):
                v = values[i, j]
                s = "failed" if np.isnan(v) else f"{v:.3f}"
                if k == kb and t == tb:
                    s = "*" + s
                cells.append(f"{s:>{width}}")
            lines.append(f"{k:>4}" + "".join(cells))
        lines.append(self._summary_line())
        n_failed = int((self.records["error"] != "").sum())
        if n_failed:
            lines.append(f"{n_failed} fit(s) failed; see the 'error' column of .table")
        return "\n".join(lines)

    def to_text(self):
        """The whole table, one line per fit, as fixed-width text."""
        head = (f"{'k':>3} {'covariance':>10} {'bic':>12} {'aic':>12} {'icl':>12} "
                f"{'loglik':>12} {'n_par':>5} {'conv':>5} {'n_iter':>6}  error")
        lines = [head]
        for i, r in enumerate(self.records):
            mark = "*" if i == self.best_index_ else " "
            lines.append(
                f"{int(r['n_components']):>3} {str(r['covariance_type']) or self.family:>10} "
                f"{r['bic']:12.3f} {r['aic']:12.3f} {r['icl']:12.3f} "
                f"{r['log_likelihood']:12.3f} {int(r['n_parameters']):>5} "
                f"{bool(r['converged'])!s:>5} {int(r['n_iter']):>6}{mark} "
                f"{r['error']}".rstrip())
        lines.append(self._summary_line())
        return "\n".join(lines)


# ----------------------------------------------------------------------
# select
# ----------------------------------------------------------------------


def select(X, n_components=range(1, 10), covariance_types=_ALL_TYPES, *, family="gaussian",
           model="mixture", lengths=None, criterion="bic", n_init=1, random_state=None,
           sample_weight=None, progress=None, **params):
    """Fit a Gaussian mixture for every number of components and covariance
    type and pick the best by BIC, AIC or ICL (like R's ``mclust::Mclust``).

    Every grid point is one :class:`fastem.GaussianMixture` fit with the
    given ``n_init``, ``random_state`` and ``**params``; its BIC, AIC and ICL
    are computed on X in one further pass.  All criteria are on
    scikit-learn's scale, lower is better:

    - ``bic = -2 log L + p log n`` (``GaussianMixture.bic``),
    - ``aic = -2 log L + 2 p`` (``GaussianMixture.aic``),
    - ``icl = bic - 2 sum_i log t_{i z_i}`` (Biernacki, Celeux & Govaert
      2000), with ``t_ik`` the posterior probabilities (``predict_proba``)
      and ``z_i = argmax_k t_ik``: BIC plus twice the entropy of the hard
      assignment, so ``icl >= bic``; it penalises overlapping components.

    mclust reports ``-bic`` and ``-icl`` (higher is better there).  With
    ``sample_weight``, ``log L`` and the entropy are weighted and ``n`` is
    the total weight.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Validated and converted once (NaN/inf, dtype); out-of-core input
        (``np.memmap``, h5py/zarr-like) is checked on the first fit's first
        pass and read in chunks by every fit.
    n_components : int or iterable of int, default=range(1, 10)
        Numbers of components to try (each 1 <= k <= n_samples).
    covariance_types : str or iterable of str, default=all four
        Any of ``"full"``, ``"tied"``, ``"diag"``, ``"spherical"``
        (``family="gaussian"`` only).
    family : str, default="gaussian"
        The mixture family: ``"gaussian"``, or a discrete family such as
        ``"bernoulli"``, ``"binomial"``, ``"poisson"``, ``"multinomial"``
        (and ``"categorical"`` where it exists).  For a discrete family only
        ``n_components`` is searched; X is what that family's estimator
        fits (e.g. a CSR matrix of counts, or a DataFrame of categories),
        ``**params`` are its parameters (``n_trials=`` for the binomial),
        the table's ``covariance_type`` column is empty and
        ``best_params_`` is ``{"n_components": k}``.
    model : {"mixture", "hmm"}, default="mixture"
        ``"hmm"`` selects the number of states (and, for Gaussian emissions,
        the covariance type) of a hidden Markov model instead:
        ``family="gaussian"`` fits ``GaussianHMM(k, covariance_type=ct,
        ...)``, ``"categorical"`` a ``CategoricalHMM(k, ...)`` (X of symbols,
        shape (n_samples, 1)) and ``"poisson"`` a ``PoissonHMM(k, ...)``.
        Every row equals ``GaussianHMM(k, covariance_type=ct, n_init=n_init,
        random_state=random_state, **params).fit(X, lengths)``; its ``bic``
        and ``aic`` are that model's ``bic(X, lengths)`` and ``aic(X,
        lengths)`` (hmmlearn's counts of free parameters: start and
        transition probabilities included), ``log_likelihood`` its
        ``score(X, lengths)``, and ``icl = bic - 2 sum_t log max_k
        gamma_tk`` with ``gamma = predict_proba(X, lengths)``.
        ``**params`` are the HMM's parameters (``n_iter``, ``tol``,
        ``init_params``, priors...), ``converged`` says whether the last
        iteration gained less than ``tol`` and ``n_iter`` counts the
        iterations run (``monitor_.iter``).  ``sample_weight`` is refused
        (an HMM weighs whole sequences: fit it directly).
    lengths : array-like of int, default=None
        With ``model="hmm"``: the length of each sequence of X (they sum to
        n_samples; None: one sequence), passed to every ``fit``, ``score``
        and ``predict_proba``.  A ValueError with ``model="mixture"``.
    criterion : {"bic", "aic", "icl"}, default="bic"
        What to minimise.  Ties go to the model with fewer parameters.
    n_init : int, default=1
        Initialisations per fit (``GaussianMixture(n_init=...)``).
    random_state : int, RandomState, Generator or None, default=None
        An int (or None) is passed unchanged to every fit, so each row equals
        ``GaussianMixture(k, covariance_type=ct, random_state=random_state,
        ...).fit(X)``.  A RandomState or Generator draws one int seed per fit
        in grid order.
    sample_weight : array-like of shape (n_samples,), default=None
        Passed to every ``fit`` and used in the criteria.
    progress : callable or None, default=None
        Called after each fit as ``progress(done, total, n_components,
        covariance_type)`` (the command line draws its progress bar with it).
    **params
        Any other ``GaussianMixture`` parameter (with ``family=``: of that
        family's estimator) (``max_iter``, ``tol``,
        ``reg_covar``, ``init_params``, ``warm_start``, ``verbose``...),
        shared by all fits.  ``weights_init``/``means_init``/
        ``precisions_init`` fix k and are refused.

    Returns
    -------
    SelectionResult
        ``best_estimator_`` (fitted), ``best_params_``, ``table`` (one row per
        fit: n_components, covariance_type, bic, aic, icl, log_likelihood
        (total), n_parameters, converged, n_iter, error), ``criterion``.

    Raises
    ------
    ValueError
        For an empty grid, k < 1 or k > n_samples, an unknown covariance
        type or criterion, bad ``GaussianMixture`` parameter values or bad
        data; an unknown ``model``, ``model="hmm"`` with a family that has
        no hidden Markov model, or ``lengths`` with ``model="mixture"``; or
        if every fit fails.
    TypeError
        For a keyword that is not a ``GaussianMixture`` parameter.

    Notes
    -----
    A fit that fails (typically a ``ValueError`` for an ill-defined
    covariance: large k on small data with ``reg_covar=0``) does not stop the
    selection: its row gets NaN criteria, ``converged=False``, ``n_iter=0``
    and the error text, and one ``FitFailedWarning`` lists the failures.
    Fits that do not converge are flagged in ``converged`` and reported by
    one ``ConvergenceWarning`` (not one per fit).

    Fits run one after another.  Each one already runs its E-step on all
    cores (the fused kernels are parallel over rows), so running several
    fits at once would only share the same cores between them on large data;
    on tiny data (Old Faithful) the whole default grid takes well under a
    second.

    Examples
    --------
    >>> from fastem.datasets import load_faithful
    >>> from fastem.select import select
    >>> X, _ = load_faithful()
    >>> result = select(X, n_components=range(1, 5), n_init=10, random_state=0)
    >>> result.best_params_
    {'n_components': 3, 'covariance_type': 'tied'}
    >>> round(result.best_score_, 3)
    2315.645

    Hidden Markov models, over several sequences (``lengths``):

    >>> import numpy as np
    >>> from fastem import GaussianHMM
    >>> hmm = GaussianHMM(2, covariance_type="diag", random_state=0)
    >>> hmm.startprob_ = np.array([0.5, 0.5])
    >>> hmm.transmat_ = np.array([[0.9, 0.1], [0.1, 0.9]])
    >>> hmm.means_ = np.array([[0.0, 0.0], [5.0, 5.0]])
    >>> hmm.covars_ = np.ones((2, 2))
    >>> X = np.concatenate([hmm.sample(100, random_state=s)[0] for s in range(3)])
    >>> result = select(X, range(1, 4), "diag", model="hmm", lengths=[100] * 3,
    ...                 n_iter=50, random_state=0)
    >>> result.best_params_
    {'n_components': 2, 'covariance_type': 'diag'}
    """
    criterion = _check_criterion(criterion)
    if not isinstance(model, str) or model not in MODELS:
        raise ValueError(f"Unknown model {model!r}. Expected one of {list(MODELS)}: "
                         "'mixture' (the default) or 'hmm' (hidden Markov models).")
    if model == "hmm":
        return _select_hmm(X, lengths, family, n_components, covariance_types, criterion,
                           n_init, random_state, sample_weight, progress, params)
    if lengths is not None:
        raise ValueError(
            "lengths gives the sequences of a hidden Markov model, but model='mixture' "
            "(the default) fits mixtures, whose rows are independent. Pass model='hmm' to "
            "select a hidden Markov model, or leave lengths out.")
    fam = get_family(family)
    if not fam.covariance:
        return _select_family(fam, X, n_components, covariance_types, criterion, n_init,
                              random_state, sample_weight, progress, params)
    _check_params(params, n_init)
    feature_names = _get_feature_names(X)
    X = check_array_2d(X, estimator_name="select", allow_nan=params.get("missing") == "em")
    n, d = X.shape
    if n < 2:
        raise ValueError(
            f"Expected n_samples >= 2 to fit a mixture, but got n_samples = {n}."
        )
    # weights scaled by 2**e into [1, 2): fits do not depend on the scale, and
    # the criteria's sums are scaled back (no overflow for weights near 1e308)
    sw, e = scaled_weights(check_sample_weight(sample_weight, n))
    ks = _check_components(n_components, n)
    types = _check_covariance_types(covariance_types)

    grid = [(k, ct, ct) for k in ks for ct in types]

    def build(k, ct, seed):
        return GaussianMixture(k, covariance_type=ct, n_init=n_init, random_state=seed,
                               **params)

    rows, models, failures, not_converged = _fit_grid(
        grid, _seeds(random_state, len(grid)), build, _criteria,
        lambda k, ct, model: n_parameters(k, ct, d), X, sw, e, progress, feature_names)
    return _result(rows, models, failures, not_converged, params, criterion, ks, types,
                   "Try fewer components, a larger reg_covar (e.g. 1e-4), or scaling the data.")


def _fit_grid(grid, seeds, build, criteria, count, X, sw, e, progress, feature_names=None,
              fit=None, evaluate=None):
    """One fit per grid point ``(k, covariance_type or '', progress tag)``:
    ``build(k, covariance_type, seed)`` makes the estimator, ``criteria(model,
    X, sw)`` gives its scaled ``(log_likelihood, weight, entropy)`` and
    ``count(k, covariance_type, model or None)`` its free parameters.  A fit
    that fails is a row of NaN criteria with its error.  Returns ``(rows,
    models, failures, not_converged)``.

    A hidden Markov model brings its own ``fit(model)`` and
    ``evaluate(model)``, which returns the row's bic, aic, icl,
    log_likelihood, n_parameters, converged and n_iter (``criteria`` is not
    called then)."""
    rows, models, failures, not_converged = [], [], [], []
    for (k, ct, tag), seed in zip(grid, seeds):
        where = f"n_components={k}" + (f", covariance_type={ct!r}" if ct else "")
        row = {"n_components": k, "covariance_type": ct,
               "n_parameters": count(k, ct, None), "error": ""}
        model = build(k, ct, seed)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                if fit is None:
                    model.fit(X, sample_weight=sw)
                else:
                    fit(model)
            if evaluate is None:
                loglik, weight, entropy = unscaled_totals(e, *criteria(model, X, sw))
            else:
                values = evaluate(model)
        except (ValueError, ArithmeticError) as exc:
            msg = f"{type(exc).__name__}: {exc}"
            failures.append(f"{where}: {msg}")
            row.update(bic=np.nan, aic=np.nan, icl=np.nan, log_likelihood=np.nan,
                       converged=False, n_iter=0, error=msg)
            model = None
        else:
            if evaluate is not None:
                row.update(values)
                tried = model.n_iter > 0
            else:
                row["n_parameters"] = count(k, ct, model)
                bic, aic = bic_aic(loglik, weight, row["n_parameters"])
                row.update(bic=bic, aic=aic, icl=bic + 2.0 * entropy, log_likelihood=loglik,
                           converged=bool(model.converged_), n_iter=int(model.n_iter_))
                tried = model.max_iter > 0
            if not row["converged"] and tried:
                not_converged.append(f"(k={k}, {ct!r})" if ct else f"(k={k})")
            if feature_names is not None:  # as fit(DataFrame) would have set it
                model.feature_names_in_ = feature_names
        rows.append(row)
        models.append(model)
        if progress is not None:
            progress(len(rows), len(grid), k, tag)
    return rows, models, failures, not_converged


def _result(rows, models, failures, not_converged, params, criterion, ks, types, advice,
            family="gaussian", model="mixture"):
    """The SelectionResult of a grid's rows and fitted models (None for a
    failed fit), after one warning for the failures and one for the fits
    that did not converge."""
    records = _structured_table(rows)
    n_fits = len(rows)
    if len(failures) == n_fits:
        raise ValueError(
            f"All {n_fits} fits failed, so no model can be selected. The first "
            f"error was for {failures[0]}. {advice}"
        )
    if failures:
        warnings.warn(
            f"{len(failures)} of {n_fits} fits failed and were recorded with NaN "
            f"criteria (see the 'error' column of the table); the first: "
            f"{failures[0]}",
            FitFailedWarning,
            stacklevel=2,
        )
    if not_converged:
        limit = "n_iter" if model == "hmm" else "max_iter"
        warnings.warn(
            f"{len(not_converged)} of {n_fits} fits did not converge within "
            f"{limit}={params.get(limit, 10 if model == 'hmm' else 100)}: "
            f"{', '.join(not_converged)}. "
            f"Their rows have converged=False; increase {limit} or tol.",
            ConvergenceWarning,
            stacklevel=2,
        )
    best = _best_index(records[criterion], records["n_parameters"])
    return SelectionResult(records, best, models[best], criterion, ks, types, family=family,
                           model=model)


# ----------------------------------------------------------------------
# the other families: k only
# ----------------------------------------------------------------------


def _check_family_params(cls, params, n_init):
    """``params`` against the family's estimator ``cls``: known names, none
    that fixes k, valid values (checked once, not in every fit)."""
    name = cls.__name__
    allowed = set(cls().get_params()) - {"n_components"}
    per_k = sorted(p for p in allowed if p.endswith("_init") and p != "n_init")
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise TypeError(
            f"select() got unexpected keyword argument(s) {unknown}. Extra keyword "
            f"arguments are passed to fastem.{name}; expected any of "
            f"{sorted(allowed - set(per_k) - {'n_init', 'random_state'})}."
        )
    fixed = [p for p in per_k if params.get(p) is not None]
    if fixed:
        raise ValueError(
            f"{fixed} fix the number of components and cannot be shared by a grid of "
            f"n_components. Fit {name}(..., {', '.join(p + '=...' for p in fixed)}) "
            "directly instead."
        )
    cls(n_init=n_init, **params)._validate_params()


def _family_criteria(est, X, sw):
    """``(log_likelihood, total_weight, entropy)`` of a fitted model of any
    family on X, as :func:`_criteria` for the Gaussian one: through the
    estimator's own log-likelihood (what ``score``/``bic``/``aic`` use) and
    posterior probabilities (``predict_proba``), ``_RESP_BYTES`` at a time."""
    Xv = est._prepare(X)  # the family's checks and encoding, as predict_proba does
    n, k = Xv.shape[0], est.n_components
    rows = max(1, _RESP_BYTES // (8 * k))
    loglik = weight = entropy = 0.0
    for i0 in range(0, n, rows):
        chunk = Xv if n <= rows else Xv[i0:i0 + rows]
        m = chunk.shape[0]
        wb = None if sw is None else sw[i0:i0 + m]
        ll, w = est._loglik(chunk, wb)
        log_t = np.minimum(np.log(est._rows(chunk, "resp").max(axis=1)), 0.0)
        entropy -= float(log_t.sum() if wb is None else wb @ log_t)
        loglik += ll
        weight += w
    return loglik, weight, entropy


def _select_family(fam, X, n_components, covariance_types, criterion, n_init, random_state,
                   sample_weight, progress, params):
    """``select`` for a family without covariance types: one fit per k."""
    if covariance_types is not _ALL_TYPES and (
            isinstance(covariance_types, str) or not isinstance(covariance_types, (list, tuple))
            or tuple(covariance_types) != _ALL_TYPES):
        raise ValueError(
            f"covariance_types is for family='gaussian' only, but got covariance_types="
            f"{covariance_types!r} with family={fam.name!r}, whose components have no "
            "covariance. Leave covariance_types out to select n_components only."
        )
    cls = fam.estimator_class()
    _check_family_params(cls, params, n_init)
    # the family's checks of X once, before any fit (every fit gets X as given:
    # an estimator that encodes a DataFrame keeps what it learns from it)
    n = cls(n_init=n_init, **params)._check_X(X, reset=True).shape[0]
    if n < 2:
        raise ValueError(
            f"Expected n_samples >= 2 to fit a mixture, but got n_samples = {n}."
        )
    sw, e = scaled_weights(check_sample_weight(sample_weight, n))
    ks = _check_components(n_components, n)
    rows, models, failures, not_converged = _fit_grid(
        [(k, "", fam.name) for k in ks], _seeds(random_state, len(ks)),
        lambda k, ct, seed: cls(k, n_init=n_init, random_state=seed, **params),
        _family_criteria,
        lambda k, ct, model: 0 if model is None else int(model._n_parameters()),
        X, sw, e, progress)
    return _result(rows, models, failures, not_converged, params, criterion, ks, [],
                   "Try fewer components, a pseudo-count (alpha=1.0), or check the data.",
                   family=fam.name)


# ----------------------------------------------------------------------
# hidden Markov models: the number of states
# ----------------------------------------------------------------------


def _hmm_evaluate(X, lengths):
    """``evaluate(model)`` of :func:`_fit_grid` for a fitted hidden Markov
    model: its own ``bic``, ``aic`` and ``score``, and ICL from its state
    posteriors."""

    def evaluate(model):
        loglik = model.score(X, lengths)
        bic, aic = model.bic(X, lengths), model.aic(X, lengths)
        gamma = model.predict_proba(X, lengths)
        # log gamma_{t, z_t} <= 0 with z_t the most probable state (rounding clipped)
        entropy = -float(np.minimum(np.log(gamma.max(axis=1)), 0.0).sum())
        monitor = model.monitor_
        history = monitor.history
        converged = len(history) >= 2 and history[-1] - history[-2] < monitor.tol
        return {"bic": float(bic), "aic": float(aic), "icl": float(bic) + 2.0 * entropy,
                "log_likelihood": float(loglik), "n_parameters": int(model._n_parameters()),
                "converged": bool(converged), "n_iter": int(monitor.iter)}

    return evaluate


def _select_hmm(X, lengths, family, n_components, covariance_types, criterion, n_init,
                random_state, sample_weight, progress, params):
    """``select(model="hmm")``: one hidden Markov model per number of states
    (and covariance type, for Gaussian emissions)."""
    if not isinstance(family, str) or family not in HMMS:
        raise ValueError(
            f"model='hmm' fits hidden Markov models, whose emissions are one of "
            f"{list(HMMS)} (family=...), but got family={family!r}. Pass one of those, or "
            "model='mixture' for the other mixture families.")
    cls = get_hmm(family).estimator_class()
    name = cls.__name__
    gaussian = family == "gaussian"
    if sample_weight is not None:
        raise ValueError(
            f"sample_weight is not supported with model='hmm': {name}.fit weighs whole "
            "sequences (one weight per sequence), not rows. Fit the models directly "
            f"({name}(k).fit(X, lengths, sample_weight=...)) to weigh sequences.")
    if not gaussian and covariance_types is not _ALL_TYPES and (
            isinstance(covariance_types, str) or not isinstance(covariance_types, (list, tuple))
            or tuple(covariance_types) != _ALL_TYPES):
        raise ValueError(
            f"covariance_types is for Gaussian emissions only, but got covariance_types="
            f"{covariance_types!r} with model='hmm', family={family!r}. Leave "
            "covariance_types out to select the number of states only.")
    allowed = set(cls().get_params()) - {"n_components", "covariance_type"}
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise TypeError(
            f"select() got unexpected keyword argument(s) {unknown}. With model='hmm', extra "
            f"keyword arguments are passed to fastem.{name}; expected any of "
            f"{sorted(allowed - {'n_init', 'random_state'})}.")
    # invalid values (n_iter=-1, algorithm='foo', ...) fail here, once
    cls(n_init=n_init, **params)._check_hyper()
    try:
        n = len(X)
    except TypeError:
        raise ValueError(f"X should be an array of shape (n_samples, n_features), but got "
                         f"{type(X).__name__} {X!r}.") from None
    from ._hmm import check_lengths

    lengths = check_lengths(lengths, n)
    ks = _check_components(n_components, n)
    types = _check_covariance_types(covariance_types) if gaussian else []
    grid = [(k, ct, ct) for k in ks for ct in types] if gaussian else \
        [(k, "", family) for k in ks]

    def build(k, ct, seed):
        extra = {"covariance_type": ct} if gaussian else {}
        return cls(k, n_init=n_init, random_state=seed, **extra, **params)

    rows, models, failures, not_converged = _fit_grid(
        grid, _seeds(random_state, len(grid)), build, None,
        lambda k, ct, model: 0, X, None, 0, progress,
        fit=lambda model: model.fit(X, lengths), evaluate=_hmm_evaluate(X, lengths))
    return _result(rows, models, failures, not_converged, params, criterion, ks, types,
                   f"Try fewer states, more data, or other {name} parameters.",
                   family=family, model="hmm")
