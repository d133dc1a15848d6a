"""``GaussianMixture``: the EM driver and the scikit-learn API (no @njit here).

Every EM iteration is one call of a fused kernel that returns shifted
sufficient statistics (:mod:`fastem._stats`) and one closed-form M-step.
"""

import warnings
from numbers import Integral, Real
from time import perf_counter

import numpy as np
from scipy import linalg
from sklearn.base import BaseEstimator, DensityMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import _check_feature_names, check_is_fitted

from ._collapse import CollapseWarning, Recovery
from ._dask import DaskSource
from ._data import RowSource, sample_weighted_rows, take_rows
from ._estep import (
    EStepWorkspace,
    evaluate,
    evaluate_rows,
    rows_per_call,
    single_threaded_blas,
)
from ._fitted import kept_on_error, shape_changes
from ._io import SaveLoadMixin
from ._kmeans import kmeans, kmeans_plusplus
from ._squarem import EMMap, run_squarem
from ._stats import (
    COVARIANCE_TYPES,
    CollapseError,
    GaussianParams,
    bic_aic,
    cholesky_from_precisions,
    covariance_shape,
    covariances_from_precisions,
    default_shift,
    m_step,
    n_parameters,
    precisions_from_cholesky,
    unscaled_totals,
)
from ._validation import (
    check_allocation,
    check_array_2d,
    check_fit_weights,
    check_sample_weight,
    count_scale,
    scaled_weights,
)

#: Rows used to initialise on large data (k-means or random responsibilities):
#: at least this many, and at least _INIT_ROWS_PER_COMPONENT per component.
INIT_SAMPLE_SIZE = 4096
_INIT_ROWS_PER_COMPONENT = 256
#: Rows per chunk when forming the initial statistics from responsibilities.
_INIT_CHUNK = 1024


class GaussianMixture(SaveLoadMixin, DensityMixin, BaseEstimator):
    """Gaussian mixture fitted by EM with fused, parallel Numba kernels.

    A drop-in replacement for :class:`sklearn.mixture.GaussianMixture`: the
    same parameters, defaults, fitted attributes, methods and BIC/AIC.  It
    adds ``sample_weight`` to ``fit``, ``score``, ``bic`` and ``aic``, and
    reads out-of-core input (``np.memmap``, h5py/zarr-like arrays) chunk by
    chunk, with memory independent of n_samples (docs/out_of_core.md).

    Parameters
    ----------
    n_components : int, default=1
        The number of mixture components.
    covariance_type : {'full', 'tied', 'diag', 'spherical'}, default='full'
        'full': each component has its own general covariance matrix;
        'tied': all components share one general covariance matrix;
        'diag': each component has its own diagonal covariance matrix;
        'spherical': each component has its own single variance.
    tol : float, default=1e-3
        EM stops when the change of the mean log-likelihood of the training
        data between two iterations is below ``tol``.
    reg_covar : float, default=1e-6
        Non-negative regularisation added to the diagonal of covariances.
    max_iter : int, default=100
        The number of EM iterations to perform.
    n_init : int, default=1
        The number of initialisations; the best result is kept.
    init_params : {'kmeans', 'k-means++', 'random', 'random_from_data'}, default='kmeans'
        How weights, means and covariances are initialised: from the labels
        of k-means (fastem's own parallel k-means, on a random sample of
        max(4096, 256 * n_components) rows when X is larger), from k-means++ seeds, from random responsibilities, or
        from randomly chosen rows.
    weights_init : array-like of shape (n_components,), default=None
        User-provided initial weights.
    means_init : array-like of shape (n_components, n_features), default=None
        User-provided initial means.
    precisions_init : array-like, default=None
        User-provided initial precisions (inverse covariances), shaped as
        ``precisions_``.
    random_state : int, RandomState instance or None, default=None
        Seed for the initialisation and for :meth:`sample`.
    warm_start : bool, default=False
        Start each ``fit`` from the previous solution (``n_init`` is then
        ignored after the first fit).
    verbose : int, default=0
        1 prints each initialisation and iteration; 2 adds timings and the
        change of the log-likelihood.
    verbose_interval : int, default=10
        Iterations between two messages.
    on_collapse : {'reseed', 'raise'}, default='reseed'
        What to do when a component collapses: its effective count (its share
        of the sample weight) falls below d + 1 (full), 2 (diag, spherical) or
        1 (tied), or its covariance cannot be factorised.  'reseed' moves a
        starved component to rows the model explains worst and gives a
        degenerate but well-populated covariance a ridge (see
        ``docs/collapse.md``), records it in ``collapse_events_``, warns once
        (:class:`fastem.CollapseWarning`) and goes on; with ``reg_covar=0`` a
        covariance that cannot be factorised still raises.  'raise' raises
        scikit-learn's error and advice, as scikit-learn does.
    accelerate : {'squarem'} or None, default=None
        None runs plain EM.  'squarem' accelerates it with SQUAREM (the SqS3
        scheme of Varadhan & Roland 2008, docs/squarem.md): each iteration is
        a cycle of two EM steps, an extrapolation along them in an
        unconstrained parameterisation and a stabilising EM step (up to
        three E+M passes), falling back to plain EM's second step whenever
        the extrapolated point is invalid or lowers the log-likelihood.  It
        reaches plain EM's optimum in several times fewer passes when EM
        converges slowly (overlapping components, small ``tol``).  Then
        ``n_iter_``, ``max_iter`` and ``tol`` count and compare cycles.

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
    means_ : ndarray of shape (n_components, n_features)
    covariances_ : ndarray
        (n_components, n_features, n_features) if 'full', (n_features,
        n_features) if 'tied', (n_components, n_features) if 'diag',
        (n_components,) if 'spherical'.
    precisions_ : ndarray
        Inverse covariances, shaped as ``covariances_``.
    precisions_cholesky_ : ndarray
        Cholesky factors of the precisions (upper triangular, precision =
        U U^T), shaped as ``covariances_``.
    converged_ : bool
    n_iter_ : int
        EM iterations (SQUAREM cycles with ``accelerate='squarem'``) of the
        best initialisation.
    n_em_maps_ : int
        E+M passes over the data of the best initialisation: ``n_iter_`` for
        plain EM, up to 3 per cycle with ``accelerate='squarem'``.
    lower_bound_ : float
        Mean log-likelihood of the training data at the start of the last
        iteration of the best initialisation (with ``accelerate='squarem'``:
        the largest one evaluated during the last cycle).
    lower_bounds_ : list of float
        The mean log-likelihood at every iteration (cycle) of the best
        initialisation.
    n_reseeds_ : int
        Components re-seeded during the best initialisation's run.
    collapse_events_ : list of (iteration, component, action)
        Every recovery of that run: action 'reseed' or 'ridge' (component
        None for the tied covariance); iteration 0 is the initialisation.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Defined only when X has feature names that are all strings.

    Examples
    --------
    >>> import numpy as np
    >>> from fastem import GaussianMixture
    >>> X = np.array([[1, 2], [1, 4], [1, 0], [10, 2], [10, 4], [10, 0]])
    >>> gm = GaussianMixture(n_components=2, random_state=0).fit(X)
    >>> sorted(gm.means_[:, 0].round(3).tolist())
    [1.0, 10.0]
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "covariance_type": [StrOptions(set(COVARIANCE_TYPES))],
        "tol": [Interval(Real, 0.0, None, closed="left")],
        "reg_covar": [Interval(Real, 0.0, None, closed="left")],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "init_params": [StrOptions({"kmeans", "random", "random_from_data", "k-means++"})],
        "weights_init": ["array-like", None],
        "means_init": ["array-like", None],
        "precisions_init": ["array-like", None],
        "random_state": ["random_state"],
        "warm_start": ["boolean"],
        "verbose": ["verbose"],
        "verbose_interval": [Interval(Integral, 1, None, closed="left")],
        "on_collapse": [StrOptions({"reseed", "raise"})],
        "accelerate": [StrOptions({"squarem"}), None],
    }

    def __init__(
        self,
        n_components=1,
        *,
        covariance_type="full",
        tol=1e-3,
        reg_covar=1e-6,
        max_iter=100,
        n_init=1,
        init_params="kmeans",
        weights_init=None,
        means_init=None,
        precisions_init=None,
        random_state=None,
        warm_start=False,
        verbose=0,
        verbose_interval=10,
        on_collapse="reseed",
        accelerate=None,
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.on_collapse = on_collapse
        self.accelerate = accelerate

    # ------------------------------------------------------------------
    # validation
    # ------------------------------------------------------------------

    def _check_X(self, X, reset, continuing=None):
        """Feature names and count (scikit-learn's rules), then our checks.

        Returns an ndarray, or for out-of-core input (np.memmap, h5py/zarr-like
        arrays) a :class:`fastem._data.RowSource` that reads it in chunks.
        ``continuing`` ('warm_start', 'partial_fit') names a call that goes on
        from the fitted model: its shape must match (see :mod:`fastem._fitted`)."""
        _check_feature_names(self, X, reset=reset)
        X = check_array_2d(X, estimator_name=type(self).__name__)
        if continuing is not None:
            self._check_continuation(X.shape[1], continuing)
        if reset:
            self.n_features_in_ = X.shape[1]
        elif X.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {X.shape[1]} features, but {type(self).__name__} was fitted "
                f"with {self.n_features_in_} features. Pass data with the same "
                "columns as at fit."
            )
        return X

    def _checked_inits(self, n_features):
        """Validated copies of the user's ``*_init`` (hyper-parameters are
        never modified); ``precisions_init`` comes back as the pair
        (precisions_cholesky, covariances)."""
        k, ct = self.n_components, self.covariance_type
        weights = means = precisions = None
        if self.weights_init is not None:
            weights = np.asarray(self.weights_init, dtype=np.float64)
            if weights.shape != (k,):
                raise ValueError(
                    f"The parameter 'weights_init' should have the shape ({k},), "
                    f"one weight per component, but got {weights.shape}."
                )
            if (weights < 0).any() or (weights > 1).any() or not np.isfinite(weights).all():
                raise ValueError(
                    "The parameter 'weights_init' should be in the range [0, 1], but got "
                    f"min {weights.min():.5f}, max {weights.max():.5f}."
                )
            if not np.isclose(weights.sum(), 1.0, rtol=0, atol=1e-8):
                raise ValueError(
                    "The parameter 'weights_init' should be normalized to sum to 1, but "
                    f"got sum(weights_init) = {weights.sum():.8f}. Divide by its sum."
                )
        if self.means_init is not None:
            means = np.asarray(self.means_init, dtype=np.float64)
            if means.shape != (k, n_features):
                raise ValueError(
                    f"The parameter 'means_init' should have the shape ({k}, {n_features}) "
                    f"(n_components, n_features), but got {means.shape}."
                )
            if not np.isfinite(means).all():
                raise ValueError("The parameter 'means_init' contains NaN or inf values.")
        if self.precisions_init is not None:
            precisions = np.asarray(self.precisions_init, dtype=np.float64)
            shape = covariance_shape(ct, k, n_features)
            if precisions.shape != shape:
                raise ValueError(
                    f"The parameter 'precisions_init' should have the shape {shape} for "
                    f"covariance_type={ct!r}, but got {precisions.shape}."
                )
            _check_precisions_pd(precisions, ct)
            # converted once here, not at every initialisation
            precisions = (cholesky_from_precisions(precisions, ct),
                          covariances_from_precisions(precisions, ct))
        return weights, means, precisions

    # ------------------------------------------------------------------
    # initialisation
    # ------------------------------------------------------------------

    def _initial_params(self, X, sw, random_state, inits, recovery=None):
        weights_init, means_init, precisions_init = inits
        ct, k = self.covariance_type, self.n_components
        if weights_init is not None and means_init is not None and precisions_init is not None:
            prec_chol, covs = precisions_init
            return GaussianParams(weights_init.copy(), means_init.copy(), covs.copy(),
                                  prec_chol.copy())
        n, d = X.shape
        n_sample = max(INIT_SAMPLE_SIZE, _INIT_ROWS_PER_COMPONENT * k)
        idx = sample_weighted_rows(random_state, n, n_sample, sw)  # rows of positive weight
        if idx is not None:
            Xs = take_rows(X, idx)  # out-of-core X: reads only these rows
            sws = None if sw is None else sw[idx]
        else:
            Xs, sws = X, sw
            if isinstance(X, RowSource):  # small: at most n_sample rows
                Xs = X.read(0, n)
        ns = Xs.shape[0]
        labels = None
        if self.init_params == "kmeans":
            _, labels = kmeans(Xs, k, random_state, sws)
        elif self.init_params == "random":
            seed = random_state.randint(np.iinfo(np.int32).max)
        else:
            if self.init_params == "random_from_data":
                chosen = random_state.choice(ns, size=k, replace=False)
            else:  # "k-means++"
                _, chosen = kmeans_plusplus(Xs, k, random_state, sws)
            labels = np.full(ns, -1, dtype=np.int64)  # rows not chosen weigh 0
            labels[chosen] = np.arange(k)
        # statistics of the sample from hard labels or random responsibilities,
        # summed over chunks so that no (n, k) array is formed
        shift = np.broadcast_to(_rough_center(Xs), (k, d))
        dummy = GaussianParams(np.full(k, 1.0 / k), np.zeros((k, d)), None,
                               _identity_cholesky(ct, k, d))
        ws = EStepWorkspace(ct, k, d, min(ns, _INIT_CHUNK))
        rng = np.random.RandomState(seed) if labels is None else None
        stats = None
        for i0 in range(0, ns, _INIT_CHUNK):
            i1 = min(ns, i0 + _INIT_CHUNK)
            if labels is None:
                resp = rng.uniform(size=(i1 - i0, k))
                resp /= resp.sum(axis=1)[:, None]
            else:
                resp = np.zeros((i1 - i0, k))
                lab = labels[i0:i1]
                rows = np.flatnonzero(lab >= 0)
                resp[rows, lab[rows]] = 1.0
            part = ws.run(Xs[i0:i1], None if sws is None else sws[i0:i1], dummy,
                          shift=shift, resp_in=resp)
            stats = part if stats is None else stats + part
        # k-means++ and random_from_data start from one row per component
        # (scikit-learn's point masses of variance reg_covar), and a k-means
        # cluster may hold fewer than d + 1 rows: legitimate starts, which
        # the first E-step spreads over the data.  Collapse recovery handles
        # only a start whose covariance cannot be factorised (reg_covar=0).
        try:
            params = m_step(stats, self.reg_covar, X.dtype)
        except CollapseError:
            params = self._m_step(stats, X, sw, recovery, 0, count_scale(sws))[0]
        weights, means, covs, prec_chol = params
        if weights_init is not None:
            weights = weights_init.copy()
        if means_init is not None:
            means = means_init.copy()
        if precisions_init is not None:
            prec_chol, covs = (a.copy() for a in precisions_init)
        return GaussianParams(weights, means, covs, prec_chol)

    # ------------------------------------------------------------------
    # fit
    # ------------------------------------------------------------------

    def fit(self, X, y=None, sample_weight=None):
        """Estimate the parameters with EM.

        Runs ``n_init`` initialisations (one with ``warm_start`` after the
        first fit) and keeps the one with the largest final log-likelihood.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            float32 input is kept as float32 (the statistics are float64);
            C or Fortran order and strided views are read in place.
            Out-of-core input -- a ``np.memmap``, or any array-like with
            ``.shape``, ``.dtype`` and row slicing, such as h5py and zarr
            arrays -- is read in chunks of ``FASTEM_CHUNK_BYTES`` (32 MiB),
            so memory does not grow with n_samples (docs/out_of_core.md).
        y : Ignored
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights; a weight of 2 counts the row twice.

        Returns
        -------
        self : GaussianMixture
        """
        self._fit(X, sample_weight)
        return self

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit, then return the component label of each row of X.

        Equal to ``fit(X).predict(X)``: the labels come from an E-step with
        the final parameters.
        """
        X = self._fit(X, sample_weight)
        return self._labels(X)

    @_fit_context(prefer_skip_nested_validation=True)
    def _fit(self, X, sample_weight):
        # a failed fit (bad input, a collapse with on_collapse='raise', an
        # interrupt) leaves a fitted model exactly as it was
        with kept_on_error(self):
            return self._fit_guarded(X, sample_weight)

    def _check_continuation(self, n_features, how):
        """For a call that continues the fitted model (``how``: 'warm_start'
        or 'partial_fit'): its shape must be the one the parameters and X
        ask for."""
        changes = shape_changes(self, n_features)
        if changes:
            restart = ("set warm_start=False to fit a new model" if how == "warm_start"
                       else "call fit, or partial_fit on a new estimator, to start over")
            raise ValueError(
                f"{type(self).__name__} with {how} continues the fitted model, which "
                f"does not match: {'; '.join(changes)}. Pass data and parameters like "
                f"the fitted model's, or {restart}."
            )

    def _fit_guarded(self, X, sample_weight):
        warm = self.warm_start and hasattr(self, "converged_")
        if warm:
            X = self._check_X(X, reset=False, continuing="warm_start")
        else:
            X = self._check_X(X, reset=True)
        n, d = X.shape
        if n < 2:
            raise ValueError(
                f"Expected n_samples >= 2 to fit a mixture, but got n_samples = {n}."
            )
        if n < self.n_components:
            raise ValueError(
                "Expected n_samples >= n_components but got "
                f"n_components = {self.n_components}, n_samples = {n}. "
                "Use fewer components or more data."
            )
        sw = check_fit_weights(sample_weight, n, self.n_components)
        inits = self._checked_inits(d)
        ct = self.covariance_type
        do_init = not warm
        n_init = self.n_init if do_init else 1
        random_state = check_random_state(self.random_state)
        workspace = EStepWorkspace(ct, self.n_components, d, rows_per_call(X))

        if isinstance(X, DaskSource):  # on the workers for the iterations
            X.persist(sw)
        try:
            with single_threaded_blas():
                best, max_lower_bound = self._em(X, sw, workspace, inits, do_init, n_init,
                                                 random_state)
        finally:
            if isinstance(X, DaskSource):
                X.release()
        if isinstance(X, RowSource):
            # out-of-core X is checked for NaN/inf on its first pass; a fit
            # that made none (max_iter=0 with given *_init) checks it now
            X.validate()
        params, n_iter, history, converged, events, n_maps = best
        self.collapse_events_ = list(events)
        self.n_reseeds_ = sum(1 for e in events if e[2] == "reseed")
        if events:
            actions = sorted({e[2] for e in events})
            warnings.warn(
                f"{len(events)} collapse recoveries during the fit ({', '.join(actions)}; "
                f"{self.n_reseeds_} components re-seeded): some components lost their "
                "data or had a degenerate covariance. The model is valid; see "
                "collapse_events_. Fewer components, a larger reg_covar or scaled data "
                "may fit better; on_collapse='raise' restores scikit-learn's error.",
                CollapseWarning, stacklevel=5)
        self.converged_ = converged
        if not self.converged_ and self.max_iter > 0:
            warnings.warn(
                "Best performing initialization did not converge. Try different init "
                "parameters, or increase max_iter, tol, or check for degenerate data.",
                ConvergenceWarning,
            )
        self._set_params_tuple(params)
        self.n_iter_ = n_iter
        self.n_em_maps_ = n_maps
        self.lower_bound_ = max_lower_bound
        self.lower_bounds_ = history
        return X

    def _em(self, X, sw, workspace, inits, do_init, n_init, random_state):
        """The n_init EM runs; returns ((params, n_iter, history, converged,
        collapse events, E+M passes) of the best run, its final mean
        log-likelihood)."""
        ct = self.covariance_type
        max_lower_bound = -np.inf
        best = None
        for init in range(n_init):
            self._verbose_init_beg(init)
            on_iteration = self._iteration_reporter(init)
            recovery = self._recovery(X, random_state)
            if do_init:
                params = self._initial_params(X, sw, random_state, inits, recovery)
                lower_bound = -np.inf
            else:
                params = self._get_params_tuple()
                lower_bound = self.lower_bound_
            history = []
            n_iter = 0
            converged = False
            if self.accelerate == "squarem":
                params, n_iter, history, converged, n_maps = run_squarem(
                    self._em_map(X, sw, workspace, recovery), params, ct, self.reg_covar,
                    X.dtype, self.max_iter, self.tol, lower_bound, on_iteration)
                if history:
                    lower_bound = history[-1]
            else:
                em = self._em_map(X, sw, workspace, recovery)
                for n_iter in range(1, self.max_iter + 1):
                    prev = lower_bound
                    stats, lower_bound = em.e(params)
                    params, reseeded, _ = em.m(stats, n_iter)
                    history.append(lower_bound)
                    change = lower_bound - prev
                    on_iteration(n_iter, change)
                    if reseeded:  # a new start: no convergence test against the old one
                        lower_bound = -np.inf
                    elif abs(change) < self.tol:
                        converged = True
                        break
                n_maps = em.n_calls
            if self.max_iter > 0:
                self._verbose_init_end(lower_bound, converged)
            if history:
                lower_bound = history[-1]
            if best is None or lower_bound > max_lower_bound:
                max_lower_bound = lower_bound if self.max_iter > 0 else -np.inf
                best = (params, n_iter, history, converged, recovery.events, n_maps)
        return best, max_lower_bound

    def _recovery(self, X, random_state):
        """Collapse recovery (its state) for one EM run on data like X."""
        return Recovery(self.covariance_type, self.n_components, X.shape[1], self.reg_covar,
                        X.dtype, random_state)

    def _em_map(self, X, sw, workspace, recovery):
        """One plain EM iteration (as the map SQUAREM extrapolates)."""
        ct = self.covariance_type
        scale = count_scale(sw)  # effective rows per unit of weight

        def estep(params):
            return workspace.run(X, sw, params, shift=default_shift(params, ct))

        def mstep(stats, iteration):
            return self._m_step(stats, X, sw, recovery, iteration, scale)

        return EMMap(estep, mstep, None if self.on_collapse == "raise" else recovery)

    def _m_step(self, stats, X, sw, recovery, iteration, count_scale=1.0):
        """The M-step; with on_collapse='reseed' through ``recovery``, which
        re-seeds from rows of X.  ``count_scale`` turns S0 into effective
        counts (online EM's normalised statistics).  Returns (params, reseeded)."""
        if self.on_collapse == "raise" or recovery is None:
            return m_step(stats, self.reg_covar, X.dtype), False
        return recovery.m_step(stats, iteration, X, sw, count_scale)

    def _get_params_tuple(self):
        return GaussianParams(self.weights_, self.means_, self.covariances_,
                              self.precisions_cholesky_)

    def _set_params_tuple(self, params):
        self.weights_, self.means_, self.covariances_, self.precisions_cholesky_ = params
        self.precisions_ = precisions_from_cholesky(self.precisions_cholesky_,
                                                    self.covariance_type)

    # ------------------------------------------------------------------
    # inference (the fused kernel with statistics off)
    # ------------------------------------------------------------------

    def _prepare(self, X):
        check_is_fitted(self)
        return self._check_X(X, reset=False)

    def _rows(self, X, kind):
        """Per-row outputs (``kind`` 'label', 'lognorm' or 'resp'); for a
        dask X, a lazy dask array."""
        if isinstance(X, DaskSource):
            return X.map_rows(kind, self._get_params_tuple(), self.covariance_type)
        return evaluate_rows(X, self._get_params_tuple(), self.covariance_type, kind)

    def _labels(self, X):
        return self._rows(X, "label")

    def score_samples(self, X):
        """Log-likelihood of each sample, shape (n_samples,) (a lazy dask
        array for a dask X)."""
        X = self._prepare(X)
        return self._rows(X, "lognorm")

    def score(self, X, y=None, sample_weight=None):
        """Per-sample average log-likelihood of X (weighted by sample_weight)."""
        ll, w, _ = self._scaled_loglik(X, sample_weight)
        return float(ll / w)

    def predict(self, X):
        """Label of the most probable component for each sample (a lazy dask
        array for a dask X)."""
        return self._labels(self._prepare(X))

    def predict_proba(self, X):
        """Posterior probability of each component, shape (n_samples,
        n_components) (a lazy dask array for a dask X)."""
        X = self._prepare(X)
        return self._rows(X, "resp")

    def sample(self, n_samples=1):
        """Draw samples from the fitted mixture.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
        y : ndarray of shape (n_samples,)
            Component labels.
        """
        check_is_fitted(self)
        if isinstance(n_samples, bool) or not isinstance(n_samples, Integral):
            raise TypeError(
                f"n_samples must be an int, but got {type(n_samples).__name__} "
                f"{n_samples!r}."
            )
        if n_samples < 1:
            raise ValueError(
                f"Invalid value for 'n_samples': {n_samples}. The sampling requires "
                "at least one sample."
            )
        _, n_features = self.means_.shape
        check_allocation(int(n_samples) * (n_features + 1) * 8,
                         f"sample(n_samples={n_samples}) with {n_features} features",
                         "Draw fewer samples, or draw them in batches.")
        rng = check_random_state(self.random_state)
        counts = rng.multinomial(n_samples, self.weights_)
        ct = self.covariance_type
        if ct == "full":
            X = np.vstack([rng.multivariate_normal(m, c, int(s))
                           for m, c, s in zip(self.means_, self.covariances_, counts)])
        elif ct == "tied":
            X = np.vstack([rng.multivariate_normal(m, self.covariances_, int(s))
                           for m, s in zip(self.means_, counts)])
        else:
            X = np.vstack([m + rng.standard_normal(size=(s, n_features)) * np.sqrt(c)
                           for m, c, s in zip(self.means_, self.covariances_, counts)])
        y = np.concatenate([np.full(int(s), j, dtype=np.int64) for j, s in enumerate(counts)])
        return X, y

    # ------------------------------------------------------------------
    # information criteria
    # ------------------------------------------------------------------

    def _n_parameters(self):
        """Number of free parameters of the model."""
        return n_parameters(self.n_components, self.covariance_type, self.means_.shape[1])

    def _scaled_loglik(self, X, sample_weight):
        """``(L, W, e)``: ``L 2**e = sum_i w_i log p(x_i)`` and ``W 2**e =
        sum_i w_i``, computed with the weights scaled into [1, 2) so that
        weights near 1e308 do not overflow (see ``scaled_weights``)."""
        X = self._prepare(X)
        sw, e = scaled_weights(check_sample_weight(sample_weight, X.shape[0]))
        ll, w = evaluate(X, self._get_params_tuple(), self.covariance_type, sample_weight=sw)
        return ll, w, e

    def _total_loglik(self, X, sample_weight):
        """``(sum_i w_i log p(x_i), sum_i w_i)``."""
        ll, w, e = self._scaled_loglik(X, sample_weight)
        return unscaled_totals(e, ll, w)

    def _criteria(self, X, sample_weight):
        return bic_aic(*self._total_loglik(X, sample_weight), self._n_parameters())

    def bic(self, X, sample_weight=None):
        """Bayesian information criterion (lower is better):
        ``-2 log L + n_parameters * log(n)``, with n the total sample weight."""
        return self._criteria(X, sample_weight)[0]

    def aic(self, X, sample_weight=None):
        """Akaike information criterion (lower is better):
        ``-2 log L + 2 n_parameters``."""
        return self._criteria(X, sample_weight)[1]

    # ------------------------------------------------------------------
    # verbose output (scikit-learn's format)
    # ------------------------------------------------------------------

    def _verbose_init_beg(self, n_init):
        if self.verbose >= 1:
            print("Initialization %d" % n_init)
        if self.verbose >= 2:
            self._init_prev_time = perf_counter()
            self._iter_prev_time = self._init_prev_time

    def _iteration_reporter(self, init):
        """What runs after each iteration of initialisation ``init``: the
        verbose output, and the command line's progress bar when it set
        ``_progress`` (called with (init, n_iter))."""
        progress = getattr(self, "_progress", None)
        if progress is None:
            return self._verbose_iter_end

        def report(n_iter, diff_ll):
            self._verbose_iter_end(n_iter, diff_ll)
            progress(init, n_iter)

        return report

    def _verbose_iter_end(self, n_iter, diff_ll):
        if n_iter % self.verbose_interval == 0:
            if self.verbose == 1:
                print("  Iteration %d" % n_iter)
            elif self.verbose >= 2:
                now = perf_counter()
                print("  Iteration %d\t time lapse %.5fs\t ll change %.5f"
                      % (n_iter, now - self._iter_prev_time, diff_ll))
                self._iter_prev_time = now

    def _verbose_init_end(self, lb, converged):
        msg = "converged" if converged else "did not converge"
        if self.verbose == 1:
            print(f"Initialization {msg}.")
        elif self.verbose >= 2:
            t = perf_counter() - self._init_prev_time
            print(f"Initialization {msg}. time lapse {t:.5f}s\t lower bound {lb:.5f}.")


def _check_precisions_pd(precisions, covariance_type):
    name = f"'precisions_init' ({covariance_type!r})"
    if not np.isfinite(precisions).all():
        raise ValueError(f"The parameter {name} contains NaN or inf values.")
    if covariance_type in ("diag", "spherical"):
        if (precisions <= 0).any():
            raise ValueError(
                f"The parameter {name} should be positive, but got a minimum of "
                f"{precisions.min()}."
            )
        return
    mats = precisions[None] if covariance_type == "tied" else precisions
    for k, p in enumerate(mats):
        if not np.allclose(p, p.T):
            raise ValueError(
                f"The parameter {name} should be symmetric, positive-definite, but "
                f"matrix {k} is not symmetric."
            )
        eig = linalg.eigvalsh(p)
        if eig.min() <= 0:
            raise ValueError(
                f"The parameter {name} should be symmetric, positive-definite, but "
                f"matrix {k} has smallest eigenvalue {eig.min():.3g}."
            )


def _rough_center(X):
    """Mean of up to 1,000 evenly spaced rows: a shift near the data."""
    n = X.shape[0]
    step = max(1, n // 1000)
    return np.asarray(X[::step], dtype=np.float64).mean(axis=0)


def _identity_cholesky(covariance_type, k, d):
    return {
        "full": np.broadcast_to(np.eye(d), (k, d, d)),
        "tied": np.eye(d),
        "diag": np.ones((k, d)),
        "spherical": np.ones(k),
    }[covariance_type]
