"""``GaussianMixture``: the Gaussian family's hooks on the EM driver of
:mod:`fastem._base` (no @njit here).

Every EM iteration is one call of a fused kernel that returns shifted
sufficient statistics (:mod:`fastem._stats`) and one closed-form M-step.
"""

from numbers import Integral, Real

import numpy as np
from scipy import linalg
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._base import INIT_CHUNK, BaseMixture
from ._collapse import Recovery
from ._dask import DaskSource
from ._estep import EStepWorkspace, evaluate, evaluate_rows
from ._missing import (
    MissingWorkspace,
    Patterns,
    column_fill,
    conditional_means,
    observed_mean_fill,
)
from ._squarem import GaussianSpace, run_squarem
from ._stats import (
    COVARIANCE_TYPES,
    CollapseError,
    GaussianParams,
    cholesky_from_precisions,
    covariance_shape,
    covariances_from_precisions,
    default_shift,
    m_step,
    n_parameters,
    precisions_from_cholesky,
)
from ._validation import check_array_2d, count_scale


class GaussianMixture(BaseMixture):
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
    missing : {'raise', 'em'}, default='raise'
        NaN entries of X.  'raise' refuses them (scikit-learn's behaviour).
        'em' takes them as missing at random: EM maximises the likelihood of
        the observed entries (each row's marginal over its observed
        features, Ghahramani & Jordan 1994; ``docs/missing.md``), and
        ``score_samples``, ``score``, ``predict``, ``predict_proba``,
        ``bic`` and ``aic`` use that marginal too.  A row with every value
        missing is an error.  Input without NaN gives the fit of 'raise',
        bitwise.
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
        "missing": [StrOptions({"raise", "em"})],
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
        missing="raise",
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
        self.missing = missing

    # ------------------------------------------------------------------
    # the family's hooks (see fastem._base)
    # ------------------------------------------------------------------

    _collapse_advice = "Fewer components, a larger reg_covar or scaled data may fit better"

    def _validate_data(self, X, allow_nan=None):
        if allow_nan is None:
            allow_nan = getattr(self, "missing", "raise") == "em"
        return check_array_2d(X, estimator_name=type(self).__name__, allow_nan=allow_nan)

    def impute(self, X):
        """X with each missing entry (NaN) replaced by its expectation given
        the row's observed entries under the fitted mixture, ``sum_k r_ik
        E[x_m | x_o, k]`` (r_ik the posterior of component k given x_o);
        observed entries are returned unchanged, bitwise.  Works whatever
        ``missing`` the model was fitted with.  A row with every value
        missing gets the mixture's mean ``sum_k w_k mu_k``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), NaN where missing

        Returns
        -------
        X_filled : ndarray of shape (n_samples, n_features)
            float32 input gives float32, other input float64.
        """
        check_is_fitted(self)
        X = self._check_X(X, reset=False, nan=True)
        patterns = Patterns(X, allow_empty=True)
        if not patterns.incomplete:
            return np.array(X, dtype=X.dtype, copy=True)
        # the fitted weights, means and covariances (a variational mixture's
        # posterior expectations)
        params = GaussianParams(self.weights_, self.means_, self.covariances_,
                                self.precisions_cholesky_)
        return conditional_means(X, patterns, params, self.covariance_type)

    def _workspace(self, X):
        missing = self._missing_workspace(X)
        return super()._workspace(X) if missing is None else missing

    def _kmeans_input(self, Xs):
        return observed_mean_fill(Xs)

    def _family_changes(self):
        ct_fit = fitted_covariance_type(self.precisions_cholesky_, self.means_.shape[1])
        if np.shape(self.precisions_cholesky_) == (1, 1) and \
                self.covariance_type in ("tied", "diag"):
            ct_fit = self.covariance_type  # one 1-d component: the same arrays
        if self.covariance_type != ct_fit:
            return [f"covariance_type is {self.covariance_type!r}, the model was fitted "
                    f"with {ct_fit!r}"]
        return []

    def _checked_inits(self, n_features):
        """Validated copies of the user's ``*_init`` (hyper-parameters are
        never modified); ``precisions_init`` comes back as the pair
        (precisions_cholesky, covariances)."""
        k, ct = self.n_components, self.covariance_type
        means = precisions = None
        weights = self._checked_weights_init()
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

    def _params_from_inits(self, inits):
        weights_init, means_init, precisions_init = inits
        if weights_init is None or means_init is None or precisions_init is None:
            return None
        prec_chol, covs = precisions_init
        return GaussianParams(weights_init.copy(), means_init.copy(), covs.copy(),
                              prec_chol.copy())

    def _resp_statistics(self, Xs):
        # around a rough centre of the sample, with placeholder parameters:
        # only resp_in matters
        ct, k, d = self.covariance_type, self.n_components, Xs.shape[1]
        fill = column_fill(Xs)  # missing='em': NaN read as the column's mean
        shift = np.broadcast_to(_rough_center(fill(Xs)), (k, d))
        dummy = GaussianParams(np.full(k, 1.0 / k), np.zeros((k, d)), None,
                               _identity_cholesky(ct, k, d))
        ws = EStepWorkspace(ct, k, d, min(Xs.shape[0], INIT_CHUNK))

        def statistics(Xc, swc, resp):
            return ws.run(fill(Xc), swc, dummy, shift=shift, resp_in=resp)

        return statistics

    def _init_m_step(self, stats, X, sw, recovery, sws):
        # k-means++ and random_from_data start from one row per component
        # (scikit-learn's point masses of variance reg_covar), and a k-means
        # cluster may hold fewer than d + 1 rows: legitimate starts, which
        # the first E-step spreads over the data.  Collapse recovery handles
        # only a start whose covariance cannot be factorised (reg_covar=0).
        try:
            return m_step(stats, self.reg_covar, X.dtype)
        except CollapseError:
            return self._m_step(stats, X, sw, recovery, 0, count_scale(sws))[0]

    def _with_inits(self, params, inits):
        weights_init, means_init, precisions_init = inits
        weights, means, covs, prec_chol = params
        if weights_init is not None:
            weights = weights_init.copy()
        if means_init is not None:
            means = means_init.copy()
        if precisions_init is not None:
            prec_chol, covs = (a.copy() for a in precisions_init)
        return GaussianParams(weights, means, covs, prec_chol)

    def _make_workspace(self, n_features, n_rows):
        return EStepWorkspace(self.covariance_type, self.n_components, n_features, n_rows)

    def _estep(self, workspace, X, sw, params):
        return workspace.run(X, sw, params, shift=default_shift(params, self.covariance_type))

    def _plain_m_step(self, stats, X):
        return m_step(stats, self.reg_covar, X.dtype)

    def _run_squarem(self, em_map, params, X, lower_bound, on_iteration):
        space = GaussianSpace(self.covariance_type, self.n_components, X.shape[1],
                              self.reg_covar, X.dtype)
        return run_squarem(em_map, params, space, self.max_iter, self.tol, lower_bound,
                           on_iteration)

    def _recovery(self, X, random_state):
        """Collapse recovery (its state) for one EM run on data like X."""
        return Recovery(self.covariance_type, self.n_components, X.shape[1], self.reg_covar,
                        X.dtype, random_state)

    def _get_params_tuple(self):
        return GaussianParams(self.weights_, self.means_, self.covariances_,
                              self.precisions_cholesky_)

    def _set_params_tuple(self, params):
        self.weights_, self.means_, self.covariances_, self.precisions_cholesky_ = params
        self.precisions_ = precisions_from_cholesky(self.precisions_cholesky_,
                                                    self.covariance_type)

    def _kernel_params(self):
        """``(params, offset)``: what the kernels evaluate for predictions and
        scores, and a constant added to every row's log-normaliser (0 here; a
        variational mixture's log-weights, shifted to stay representable)."""
        return self._get_params_tuple(), 0.0

    def _rows(self, X, kind):
        """Per-row outputs (``kind`` 'label', 'lognorm' or 'resp'); for a
        dask X, a lazy dask array."""
        params, offset = self._kernel_params()
        if isinstance(X, DaskSource):
            out = X.map_rows(kind, params, self.covariance_type)
        elif (missing := self._missing_workspace(X)) is not None:
            n, K = X.shape[0], self.n_components
            out = np.empty((n, K)) if kind == "resp" else np.empty(
                n, dtype=np.int64 if kind == "label" else np.float64)
            missing.run(X, None, params, do_stats=False, **{"out_" + kind: out})
        else:
            out = evaluate_rows(X, params, self.covariance_type, kind)
        return out + offset if kind == "lognorm" and offset else out

    def _missing_workspace(self, X):
        """A :class:`fastem._missing.MissingWorkspace` for an X with NaN
        entries (``missing='em'``), else None."""
        if getattr(self, "missing", "raise") != "em" or not isinstance(X, np.ndarray):
            return None
        patterns = Patterns(X)
        if not patterns.incomplete:
            return None
        return MissingWorkspace(X, patterns, self.covariance_type, self.n_components)

    def _sample_components(self, rng, counts):
        n_features = self.means_.shape[1]
        ct = self.covariance_type
        if ct == "full":
            return np.vstack([rng.multivariate_normal(m, c, int(s))
                              for m, c, s in zip(self.means_, self.covariances_, counts)])
        if ct == "tied":
            return np.vstack([rng.multivariate_normal(m, self.covariances_, int(s))
                              for m, s in zip(self.means_, counts)])
        return np.vstack([m + rng.standard_normal(size=(s, n_features)) * np.sqrt(c)
                          for m, c, s in zip(self.means_, self.covariances_, counts)])

    def _loglik(self, X, sw):
        params, offset = self._kernel_params()
        missing = self._missing_workspace(X)
        if missing is not None:
            ll, w = missing.run(X, sw, params, do_stats=False)
        else:
            ll, w = evaluate(X, params, self.covariance_type, sample_weight=sw)
        return ll + offset * w, w

    def _n_parameters(self):
        """Number of free parameters of the model."""
        return n_parameters(self.n_components, self.covariance_type, self.means_.shape[1])

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


def fitted_covariance_type(prec_chol, n_features):
    """The covariance type fitted precision factors have: 'tied' and 'diag'
    share a shape when n_components == n_features, and differ in the factor
    (upper triangular for 'tied', all entries positive for 'diag')."""
    prec = np.asarray(prec_chol)
    if prec.ndim == 3:
        return "full"
    if prec.ndim == 1:
        return "spherical"
    if prec.shape == (n_features, n_features) and not np.tril(prec, -1).any():
        return "tied"
    return "diag"


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
