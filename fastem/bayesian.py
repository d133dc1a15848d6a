"""``BayesianGaussianMixture``: variational inference for the Gaussian
mixture on the Gaussian family's fused kernels (the maths in
:mod:`fastem._variational`; no @njit here).

The EM driver of :mod:`fastem._base` runs it unchanged: the E-step is the
Gaussian kernel given the variational log-weights, the M-step the
variational update, and the convergence test reads the lower bound.
"""

from dataclasses import replace
from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions

from ._dask import DaskSource
from ._data import take_rows
from ._estep import EStepWorkspace
from ._stats import COVARIANCE_TYPES, GaussianParams, precisions_from_cholesky
from ._validation import MAX_ABS_VALUE, check_sample_weight
from ._variational import (
    PRIOR_TYPES,
    BayesParams,
    Prior,
    kernel_params,
    kernel_shift,
    resp_entropy,
    update,
    weights_from_concentration,
)
from ._variational import lower_bound as variational_bound
from .mixture import GaussianMixture, _rough_center
from .online import ONLINE_CONSTRAINTS, BaseMiniBatchMixture


class _VBStats:
    """The E-step's statistics (in units of rows) and ``sum_n w_n sum_k
    r_nk log r_nk`` at the E-step's parameters."""

    def __init__(self, stats, rlogr):
        self.stats = stats
        self.rlogr = rlogr
        self.S0 = stats.S0
        self.loglik = stats.loglik
        self.weight = stats.weight


class BayesianGaussianMixture(GaussianMixture):
    """Variational Bayesian Gaussian mixture on fused, parallel Numba kernels.

    A drop-in replacement for :class:`sklearn.mixture.BayesianGaussianMixture`
    (scikit-learn 1.9): the same parameters, defaults, fitted attributes and
    methods, the same variational updates and lower bound.  A Dirichlet
    process (or Dirichlet distribution) prior on the weights switches off
    the components the data do not need, so ``n_components`` is an upper
    bound.  ``fit`` also takes ``sample_weight`` (a weight of 2 counts the
    row twice).

    Parameters
    ----------
    n_components : int, default=1
        The largest number of components; the prior leaves unneeded ones
        with weights near 0.
    covariance_type : {'full', 'tied', 'diag', 'spherical'}, default='full'
    tol : float, default=1e-3
        Stop when the lower bound changes by less than ``tol``.
    reg_covar : float, default=1e-6
        Added to the diagonal of each component's scatter.
    max_iter : int, default=100
    n_init : int, default=1
        Initialisations; the one with the largest lower bound is kept.
    init_params : {'kmeans', 'k-means++', 'random', 'random_from_data'}, default='kmeans'
        The starting responsibilities (as in :class:`fastem.GaussianMixture`,
        formed on a sample of rows and scaled to the whole data's weight).
    weight_concentration_prior_type : {'dirichlet_process', 'dirichlet_distribution'}, \
default='dirichlet_process'
        The prior on the weights: a Dirichlet process in its stick-breaking
        form, or a Dirichlet distribution.
    weight_concentration_prior : float or None, default=None
        The concentration (gamma); None gives ``1 / n_components``.
    mean_precision_prior : float or None, default=None
        The precision factor (beta_0) of the means' prior; None gives 1.
    mean_prior : array-like of shape (n_features,), default=None
        The means' prior mean; None gives the mean of X.
    degrees_of_freedom_prior : float or None, default=None
        The Wishart prior's degrees of freedom (nu_0 > n_features - 1); None
        gives n_features.
    covariance_prior : float or array-like, default=None
        The Wishart prior's covariance, shaped by ``covariance_type``
        ((n_features, n_features), (n_features,) for 'diag', a float for
        'spherical'); None gives the covariance of X.
    random_state, warm_start, verbose, verbose_interval
        As in :class:`fastem.GaussianMixture`.
    on_collapse : {'ridge', 'raise'}, default='ridge'
        A covariance whose Cholesky factorisation fails (or whose condition
        number exceeds ~1e12): 'ridge' adds the smallest multiple of the
        identity (at least reg_covar) that repairs it, keeps it for the rest
        of the run, records it in ``collapse_events_`` and warns; 'raise'
        raises scikit-learn's error.  Components the prior switches off are
        not collapses: they are never re-seeded.

    Attributes
    ----------
    weights_, means_, covariances_, precisions_, precisions_cholesky_
        As in scikit-learn (covariances_ is the Wishart scale's inverse
        divided by the degrees of freedom).
    weight_concentration_ : ndarray, or tuple of two ndarrays
        The posterior's Dirichlet concentrations ('dirichlet_distribution'),
        or the Beta parameters of the sticks ('dirichlet_process').
    mean_precision_ : ndarray of shape (n_components,)
    degrees_of_freedom_ : ndarray of shape (n_components,), or float ('tied')
    weight_concentration_prior_ : float
    mean_precision_prior_ : float
    mean_prior_ : ndarray of shape (n_features,)
    degrees_of_freedom_prior_ : float
    covariance_prior_ : float or ndarray
        The prior's values as fitted (the defaults computed from X).
    converged_ : bool
    n_iter_ : int
    lower_bound_ : float
        The lower bound of the best initialisation's last iteration.
    lower_bounds_ : list of float
        The lower bound at every iteration of that initialisation.
    n_features_in_, feature_names_in_

    Examples
    --------
    >>> import numpy as np
    >>> from fastem import BayesianGaussianMixture
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal(0, 1, (200, 2)), rng.normal(8, 1, (200, 2))])
    >>> bgm = BayesianGaussianMixture(n_components=6, random_state=0).fit(X)
    >>> int((bgm.weights_ > 0.05).sum())
    2
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "covariance_type": [StrOptions(set(COVARIANCE_TYPES))],
        "tol": [Interval(Real, 0.0, None, closed="left")],
        "reg_covar": [Interval(Real, 0.0, None, closed="left")],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "init_params": [StrOptions({"kmeans", "random", "random_from_data", "k-means++"})],
        "weight_concentration_prior_type": [StrOptions(set(PRIOR_TYPES))],
        "weight_concentration_prior": [None, Interval(Real, 0.0, None, closed="neither")],
        "mean_precision_prior": [None, Interval(Real, 0.0, None, closed="neither")],
        "mean_prior": [None, "array-like"],
        "degrees_of_freedom_prior": [None, Interval(Real, 0.0, None, closed="neither")],
        "covariance_prior": [None, "array-like", Interval(Real, 0.0, None, closed="neither")],
        "random_state": ["random_state"],
        "warm_start": ["boolean"],
        "verbose": ["verbose"],
        "verbose_interval": [Interval(Integral, 1, None, closed="left")],
        "on_collapse": [StrOptions({"ridge", "raise"})],
    }

    _collapse_advice = ("A larger reg_covar or covariance_prior, or scaled data, may fit "
                        "better")
    # the Gaussian mixture's options this model does not offer (not parameters)
    accelerate = None
    missing = "raise"
    weights_init = means_init = precisions_init = None

    def __init__(
        self,
        *,
        n_components=1,
        covariance_type="full",
        tol=1e-3,
        reg_covar=1e-6,
        max_iter=100,
        n_init=1,
        init_params="kmeans",
        weight_concentration_prior_type="dirichlet_process",
        weight_concentration_prior=None,
        mean_precision_prior=None,
        mean_prior=None,
        degrees_of_freedom_prior=None,
        covariance_prior=None,
        random_state=None,
        warm_start=False,
        verbose=0,
        verbose_interval=10,
        on_collapse="ridge",
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weight_concentration_prior_type = weight_concentration_prior_type
        self.weight_concentration_prior = weight_concentration_prior
        self.mean_precision_prior = mean_precision_prior
        self.mean_prior = mean_prior
        self.degrees_of_freedom_prior = degrees_of_freedom_prior
        self.covariance_prior = covariance_prior
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.on_collapse = on_collapse

    # ------------------------------------------------------------------
    # the prior (scikit-learn's _check_parameters), from X and the weights
    # ------------------------------------------------------------------

    def _prepare_fit(self, X, sw, sample_weight):
        raw = check_sample_weight(sample_weight, X.shape[0])
        # the kernels' statistics use sw = raw / 2**e; the updates count rows
        self._row_scale = 1.0 if raw is None else float(raw.max() / sw.max())
        d = X.shape[1]
        ct = self.covariance_type
        self.weight_concentration_prior_ = (1.0 / self.n_components
                                            if self.weight_concentration_prior is None
                                            else float(self.weight_concentration_prior))
        self.mean_precision_prior_ = (1.0 if self.mean_precision_prior is None
                                      else float(self.mean_precision_prior))
        if self.degrees_of_freedom_prior is None:
            self.degrees_of_freedom_prior_ = float(d)
        elif self.degrees_of_freedom_prior > d - 1.0:
            self.degrees_of_freedom_prior_ = float(self.degrees_of_freedom_prior)
        else:
            raise ValueError(
                f"The parameter 'degrees_of_freedom_prior' should be greater than {d - 1}, "
                f"but got {self.degrees_of_freedom_prior:.3f}.")
        need_moments = self.mean_prior is None or self.covariance_prior is None
        mean, cov = _moments(X, sw, self._row_scale) if need_moments else (None, None)
        if self.mean_prior is None:
            self.mean_prior_ = mean
        else:
            self.mean_prior_ = _checked_array(self.mean_prior, (d,), "mean_prior", "means")
        if self.covariance_prior is None:
            self.covariance_prior_ = {"full": cov, "tied": cov, "diag": np.diag(cov).copy(),
                                      "spherical": float(np.diag(cov).mean())}[ct]
        elif ct in ("full", "tied"):
            c = _checked_array(self.covariance_prior, (d, d), "covariance_prior",
                               f"{ct} covariance_prior")
            if not (np.allclose(c, c.T) and np.all(np.linalg.eigvalsh(c) > 0.0)):
                raise ValueError(f"'{ct} covariance_prior' should be symmetric, "
                                 "positive-definite.")
            self.covariance_prior_ = c
        elif ct == "diag":
            c = _checked_array(self.covariance_prior, (d,), "covariance_prior",
                               "diag covariance_prior")
            if np.any(c <= 0.0):
                raise ValueError("'diag covariance_prior' should be positive.")
            self.covariance_prior_ = c
        else:
            c = np.asarray(self.covariance_prior, dtype=np.float64)
            if c.ndim != 0 or not np.isfinite(c) or c <= 0:
                raise ValueError("'spherical covariance_prior' should be a positive float, "
                                 f"but got {self.covariance_prior!r}.")
            self.covariance_prior_ = float(c)

    def _prior(self):
        return Prior(self.weight_concentration_prior_type, self.weight_concentration_prior_,
                     self.mean_precision_prior_, self.mean_prior_,
                     self.degrees_of_freedom_prior_, self.covariance_prior_)

    # ------------------------------------------------------------------
    # the driver's hooks (see fastem._base)
    # ------------------------------------------------------------------

    def _checked_inits(self, n_features):
        return None, None, None

    def _params_from_inits(self, inits):
        return None

    def _with_inits(self, params, inits):
        return params

    def _init_m_step(self, stats, X, sw, recovery, sws):
        # responsibilities of a sample of rows ('kmeans', 'random'), scaled
        # to the whole data's weight: the posterior's concentrations count
        # rows.  'k-means++' and 'random_from_data' start, as scikit-learn,
        # from one row per component.
        factor = 1.0
        if self.init_params in ("kmeans", "random"):
            total = X.shape[0] if sw is None else float(sw.sum())
            factor = total / float(stats.S0.sum())
        return self._m_step(stats.scaled(factor * self._row_scale), X, sw, recovery, 0)[0]

    def _kernel_estep(self, ws, X, sw, params, shift):
        """The Gaussian kernel at the variational log-weights: ``(statistics
        with the log-normaliser's constant added back, the kernel's
        parameters, that constant)``."""
        eff, offset = kernel_params(params, self.weight_concentration_prior_type)
        st = ws.run(X, sw, eff, shift=shift)
        return replace(st, loglik=st.loglik + offset * st.weight), eff, offset

    def _estep(self, workspace, X, sw, params):
        ct = self.covariance_type
        shift = kernel_shift(params, self.weight_concentration_prior_type, ct)
        stats, eff, offset = self._kernel_estep(workspace, X, sw, params, shift)
        if self._row_scale != 1.0:  # rows: every term of sum r log r scales alike
            stats = stats.scaled(self._row_scale)
        return _VBStats(stats, resp_entropy(stats, eff, offset, ct))

    def _plain_m_step(self, stats, X):
        return self._m_step(stats, X, None, None, 0)[0]

    def _m_step(self, stats, X, sw, recovery, iteration, count_scale=1.0):
        if isinstance(stats, _VBStats):
            stats = stats.stats
        rec = None if self.on_collapse == "raise" else recovery
        return update(stats, self._prior(), self.reg_covar, self.covariance_type, X.dtype, rec,
                      iteration), False

    def _bound(self, stats, params, lower_bound):
        return variational_bound(stats.rlogr, params, self.weight_concentration_prior_type,
                           self.covariance_type)

    def _get_params_tuple(self):
        return BayesParams(self.weight_concentration_, self.mean_precision_, self.means_,
                           self.degrees_of_freedom_, self.covariances_,
                           self.precisions_cholesky_)

    def _set_params_tuple(self, params):
        (self.weight_concentration_, self.mean_precision_, self.means_,
         self.degrees_of_freedom_, self.covariances_, self.precisions_cholesky_) = params
        self.weights_ = weights_from_concentration(self.weight_concentration_,
                                                   self.weight_concentration_prior_type)
        self.precisions_ = precisions_from_cholesky(self.precisions_cholesky_,
                                                    self.covariance_type)

    # ------------------------------------------------------------------
    # inference: the kernels given the variational log-weights
    # (GaussianMixture's _rows, _loglik and impute read this hook)
    # ------------------------------------------------------------------

    def _kernel_params(self):
        return kernel_params(self._get_params_tuple(), self.weight_concentration_prior_type)

    @property
    def bic(self):
        raise AttributeError("BayesianGaussianMixture has no bic (as in scikit-learn): the "
                             "lower bound, lower_bound_, compares variational fits.")

    @property
    def aic(self):
        raise AttributeError("BayesianGaussianMixture has no aic (as in scikit-learn): the "
                             "lower bound, lower_bound_, compares variational fits.")


def _checked_array(value, shape, param, name):
    """A prior's array as float64: real numbers, finite, of the shape X asks
    for, and below the magnitude X itself may have (their squares enter the
    updates)."""
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"The parameter '{param}' should be an array of real numbers, but "
                         f"it is {value!r} ({exc}).") from None
    if a.shape != shape:
        raise ValueError(f"The parameter '{name}' should have the shape of {shape}, but got "
                         f"{a.shape}.")
    if not np.isfinite(a).all():
        raise ValueError(f"The parameter '{param}' contains NaN or inf values.")
    if a.size and np.abs(a).max() >= MAX_ABS_VALUE:
        raise ValueError(f"The parameter '{param}' has values of magnitude "
                         f"{np.abs(a).max():.3g}; expected below {MAX_ABS_VALUE:.0e}, as X "
                         "(scale the data and the prior together).")
    return a


def _moments(X, sw, row_scale):
    """The mean and the covariance (ddof = 1, rows counted by their weights)
    of X, through the Gaussian kernel with one component (any source: an
    array, out of core, Dask)."""
    n, d = X.shape
    idx = np.arange(0, n, max(1, n // 1000))
    centre = _rough_center(X.take(idx) if isinstance(X, DaskSource) else take_rows(X, idx))
    params = GaussianParams(np.ones(1), centre[None, :], None, np.eye(d)[None])
    ws = EStepWorkspace("full", 1, d, X.shape[0] if isinstance(X, np.ndarray) else 1 << 16)
    st = ws.run(X, sw, params, shift=centre[None, :])
    w = float(st.S0[0])  # the kernel's (scaled) weight; n the rows it counts
    n = w * row_scale
    if not n > 1.0:
        raise ValueError(
            f"The default mean_prior and covariance_prior are the data's mean and covariance "
            f"(ddof=1), which need a total sample weight above 1, but it is {n:.6g}. Pass "
            "mean_prior and covariance_prior, or weights that count rows.")
    s1 = st.S1[0]
    scatter = np.triu(st.S2[0]) + np.triu(st.S2[0], 1).T - np.outer(s1, s1) / w
    # in the scaled units throughout: huge weights do not overflow the squares
    return centre + s1 / w, scatter * (row_scale / (n - 1.0))


class MiniBatchBayesianGaussianMixture(BaseMiniBatchMixture, BayesianGaussianMixture):
    """Variational Bayesian Gaussian mixture fitted by stochastic variational
    inference on mini-batches (Hoffman, Blei, Wang & Paisley 2013).

    The posterior's natural parameters are the prior's plus the data's
    sufficient statistics, so SVI's step ``lambda <- (1 - rho_t) lambda +
    rho_t (prior + N s_batch)`` is stepwise EM on the same statistics as
    :class:`fastem.MiniBatchGaussianMixture`: the running per-row statistics
    ``s`` are blended with each batch's (``rho_t = (t + learning_offset) **
    -learning_decay``) and the variational update of
    :class:`BayesianGaussianMixture` is made from ``N s``.  ``N`` is
    ``total_samples``, by default ``n_total_samples_``: the rows of the data
    of the last :meth:`fit`, plus the rows given to :meth:`partial_fit` since
    (weights count rows, as in :class:`BayesianGaussianMixture`)
    (for a stream, the posterior of the stream up to now); give it for a
    stream of known size.  For a stream, the prior's
    defaults (``mean_prior``, ``covariance_prior``) come from the first batch.

    Parameters
    ----------
    n_components, covariance_type, reg_covar, random_state, warm_start
        As in :class:`BayesianGaussianMixture`.
    weight_concentration_prior_type, weight_concentration_prior
        As in :class:`BayesianGaussianMixture`.
    mean_precision_prior, mean_prior, degrees_of_freedom_prior, covariance_prior
        As in :class:`BayesianGaussianMixture`.
    batch_size, learning_decay, learning_offset, max_iter, tol, max_no_improvement
        As in :class:`fastem.MiniBatchGaussianMixture` (``max_iter`` counts
        epochs).
    n_init, init_params, n_warmup_iter, verbose, verbose_interval
        As in :class:`fastem.MiniBatchGaussianMixture` (the warm-up runs
        variational iterations on its sample).
    on_collapse : {'ridge', 'raise'}, default='ridge'
        As in :class:`BayesianGaussianMixture`.
    total_samples : float or None, default=None
        N, the rows the posterior stands for (see above).

    Attributes
    ----------
    weights_, means_, covariances_, precisions_, precisions_cholesky_
        As in :class:`BayesianGaussianMixture`.
    weight_concentration_, mean_precision_, degrees_of_freedom_
        As in :class:`BayesianGaussianMixture`.
    n_steps_ : int
        Updates (mini-batches) since the initialisation.
    n_samples_seen_ : int
        Rows those updates used.
    n_total_samples_ : float
        N, the rows the posterior stands for (see above).
    lower_bound_, lower_bounds_
        As in :class:`fastem.MiniBatchGaussianMixture`: the exponentially
        weighted average of each batch's mean ``log sum_k rho_k``, before
        its update.
    """

    _parameter_constraints: dict = {
        **BayesianGaussianMixture._parameter_constraints, **ONLINE_CONSTRAINTS,
        "tol": [Interval(Real, 0.0, None, closed="left")],
        "total_samples": [None, Interval(Real, 0.0, None, closed="neither")],
    }

    def __init__(
        self,
        *,
        n_components=1,
        covariance_type="full",
        batch_size=1024,
        learning_decay=0.7,
        learning_offset=2.0,
        max_iter=100,
        tol=0.0,
        max_no_improvement=10,
        reg_covar=1e-6,
        n_init=1,
        init_params="k-means++",
        n_warmup_iter=5,
        total_samples=None,
        weight_concentration_prior_type="dirichlet_process",
        weight_concentration_prior=None,
        mean_precision_prior=None,
        mean_prior=None,
        degrees_of_freedom_prior=None,
        covariance_prior=None,
        random_state=None,
        warm_start=False,
        verbose=0,
        verbose_interval=10,
        on_collapse="ridge",
    ):
        super().__init__(
            n_components=n_components, covariance_type=covariance_type, tol=tol,
            reg_covar=reg_covar, max_iter=max_iter, n_init=n_init, init_params=init_params,
            weight_concentration_prior_type=weight_concentration_prior_type,
            weight_concentration_prior=weight_concentration_prior,
            mean_precision_prior=mean_precision_prior, mean_prior=mean_prior,
            degrees_of_freedom_prior=degrees_of_freedom_prior,
            covariance_prior=covariance_prior, random_state=random_state,
            warm_start=warm_start, verbose=verbose, verbose_interval=verbose_interval,
            on_collapse=on_collapse)
        self.batch_size = batch_size
        self.learning_decay = learning_decay
        self.learning_offset = learning_offset
        self.max_no_improvement = max_no_improvement
        self.n_warmup_iter = n_warmup_iter
        self.total_samples = total_samples

    # ------------------------------------------------------------------
    # the online hooks (fastem.online.BaseMiniBatchMixture)
    # ------------------------------------------------------------------

    def _prepare_fit(self, X, sw, sample_weight):
        super()._prepare_fit(X, sw, sample_weight)
        # N: the rows the data stand for (weights count rows)
        self.n_total_samples_ = float(X.shape[0] if sw is None else sw.sum() * self._row_scale)

    def _batch(self, X, sample_weight, first):
        """partial_fit's batch, checked; N grows by the rows it stands for
        (the first batch also sets the prior's defaults)."""
        X, sw = super()._batch(X, sample_weight, first)
        raw = check_sample_weight(sample_weight, X.shape[0])
        if first:
            self._prepare_fit(X, sw, raw)
            self.n_total_samples_ = 0.0
        self.n_total_samples_ += float(X.shape[0] if raw is None else raw.sum())
        return X, sw

    def _online_start(self, params):
        self._shift = kernel_shift(params, self.weight_concentration_prior_type,
                                   self.covariance_type)

    def _online_estep(self, ws, X, sw, params):
        return self._kernel_estep(ws, X, sw, params, self._shift)[0]

    def _m_step(self, stats, X, sw, recovery, iteration, count_scale=1.0):
        if isinstance(stats, _VBStats) or iteration < 1:  # the start and the warm-up
            return super()._m_step(stats, X, sw, recovery, iteration, count_scale)
        total = self.n_total_samples_ if self.total_samples is None else self.total_samples
        return super()._m_step(stats.scaled(total / stats.weight), X, sw, recovery, iteration)

    def _restated(self, running, params, comps):  # never called: no re-seeding
        return running
