"""``BaseMixture``: the EM driver and the scikit-learn API every mixture
family shares (no @njit here).

The base class owns what does not depend on what a component is: input
checks common to all families (feature names and count, sample weights),
the ``n_init`` restarts, the EM loop and its convergence test, warm starts,
SQUAREM, collapse recovery's bookkeeping and warning, a failed call leaving
the model as it was, the per-row outputs (``predict``, ``predict_proba``,
``score_samples``), ``score``, BIC/AIC, ``sample``'s checks and the verbose
output.  A family's estimator fills small hooks (scikit-learn's
``BaseMixture`` pattern):

================================  =============================================
hook                              what it does
================================  =============================================
``_validate_data(X)``             X checked for the family's domain; an array,
                                  a RowSource (out of core) or a DaskSource
``_checked_inits(n_features)``    the user's ``*_init``, validated
``_params_from_inits(inits)``      the start when every ``*_init`` is given
``_resp_statistics(Xs)``          a function: (rows, weights, given
                                  responsibilities) -> statistics
``_init_m_step(stats, X, sw,      the M-step of the start
recovery, sws)``
``_with_inits(params, inits)``    the start with the given ``*_init`` in place
``_make_workspace(n_features,     E-step buffers for calls of up to
n_rows)``                         ``n_rows`` rows
``_estep(workspace, X, sw,        one fused pass: the family's statistics
params)``                         (with ``S0``, ``loglik``, ``weight``)
``_plain_m_step(stats, X)``       the closed-form M-step
``_recovery(X, rs)``              collapse recovery for one run (its
                                  ``m_step``, ``events``)
``_run_squarem(em, params, X,     SQUAREM with the family's parameterisation
lower_bound, on_iteration)``
``_get_params_tuple()`` /         the fitted parameters as one tuple, and
``_set_params_tuple(params)``     setting the fitted attributes from one
``_family_changes()``             what differs between the fitted model and
                                  the family's parameters (words)
``_rows(X, kind)``                per-row 'label', 'lognorm' or 'resp'
``_loglik(X, sw)``                ``(sum w log p, sum w)`` of X
``_n_parameters()``               free parameters (BIC/AIC)
``_sample_components(rng,         draws ``counts[k]`` rows from component k
counts)``
================================  =============================================
"""

import warnings
from numbers import Integral
from time import perf_counter

import numpy as np
from sklearn.base import BaseEstimator, DensityMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import _check_feature_names, check_is_fitted

from ._collapse import CollapseWarning
from ._dask import DaskSource
from ._data import RowSource, sample_weighted_rows, take_rows
from ._estep import rows_per_call, single_threaded_blas
from ._fitted import kept_on_error
from ._io import SaveLoadMixin
from ._kmeans import kmeans, kmeans_plusplus
from ._squarem import EMMap
from ._stats import bic_aic, unscaled_totals
from ._validation import (
    check_allocation,
    check_fit_weights,
    check_sample_weight,
    count_scale,
    scaled_weights,
)

#: Rows used to initialise on large data (k-means or random responsibilities):
#: at least this many, and at least INIT_ROWS_PER_COMPONENT per component.
INIT_SAMPLE_SIZE = 4096
INIT_ROWS_PER_COMPONENT = 256
#: Rows per chunk when forming the initial statistics from responsibilities.
INIT_CHUNK = 1024


class BaseMixture(SaveLoadMixin, DensityMixin, BaseEstimator):
    """The EM driver and scikit-learn API shared by fastem's mixtures; see
    the module docstring for the hooks a family fills."""

    #: 'kmeans' starts from responsibilities (1 - noise) * k-means labels +
    #: noise * random ones (0: the labels alone).  Discrete families, whose
    #: k-means partitions of few distinct answer patterns repeat from start to
    #: start, use it so that n_init explores other optima.
    _label_noise = 0.0
    #: Advice appended to the collapse warning (family specific).
    _collapse_advice = "Fewer components may fit better"

    # ------------------------------------------------------------------
    # validation
    # ------------------------------------------------------------------

    def _check_X(self, X, reset, continuing=None, nan=False):
        """Feature names and count (scikit-learn's rules), then the family's
        checks (:meth:`_validate_data`).

        Returns an ndarray, or for out-of-core input (np.memmap, h5py/zarr-like
        arrays) a :class:`fastem._data.RowSource` that reads it in chunks.
        ``continuing`` ('warm_start', 'partial_fit') names a call that goes on
        from the fitted model: its shape must match.  ``nan`` accepts NaN
        entries whatever ``missing`` is (:meth:`impute`)."""
        _check_feature_names(self, X, reset=reset)
        X = self._validate_data(X, allow_nan="impute") if nan else self._validate_data(X)
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

    def _check_continuation(self, n_features, how):
        """For a call that continues the fitted model (``how``: 'warm_start'
        or 'partial_fit'): its shape must be the one the parameters and X
        ask for."""
        changes = []
        k_fit = len(self.weights_)
        if self.n_components != k_fit:
            changes.append(f"n_components is {self.n_components}, the fitted model has "
                           f"{k_fit} components")
        changes += self._family_changes()
        if n_features != self.n_features_in_:
            changes.append(f"X has {n_features} features, the model was fitted with "
                           f"{self.n_features_in_} features")
        if changes:
            restart = ("set warm_start=False to fit a new model" if how == "warm_start"
                       else "call fit, or partial_fit on a new estimator, to start over")
            raise ValueError(
                f"{type(self).__name__} with {how} continues the fitted model, which "
                f"does not match: {'; '.join(changes)}. Pass data and parameters like "
                f"the fitted model's, or {restart}."
            )

    def _checked_weights_init(self):
        """A validated copy of ``weights_init`` (None if not given)."""
        k = self.n_components
        if self.weights_init is None:
            return None
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
        return weights

    def _family_changes(self):
        return []

    def _prepare_fit(self, X, sw, sample_weight):
        """What a fit derives from its data before starting (a variational
        model's prior); ``sw`` the weights the fit uses, ``sample_weight``
        the given ones."""

    def _bound(self, stats, params, lower_bound):
        """The convergence criterion of an iteration whose E-step gave
        ``stats`` (and ``lower_bound``, the mean log-likelihood) and whose
        M-step gave ``params``: EM's is that log-likelihood."""
        return lower_bound

    def _workspace(self, X):
        """E-step buffers for a fit on X (one chunk of an out-of-core X)."""
        return self._make_workspace(X.shape[1], rows_per_call(X))

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
        self : estimator
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
        self._prepare_fit(X, sw, sample_weight)
        inits = self._checked_inits(d)
        do_init = not warm
        n_init = self.n_init if do_init else 1
        random_state = check_random_state(self.random_state)
        workspace = self._workspace(X)

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
                f"data or had a degenerate covariance. The model is valid; see "
                f"collapse_events_. {self._collapse_advice}; on_collapse='raise' "
                "restores scikit-learn's error.",
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
                params, n_iter, history, converged, n_maps = self._run_squarem(
                    self._em_map(X, sw, workspace, recovery), params, X, lower_bound,
                    on_iteration)
                if history:
                    lower_bound = history[-1]
            else:
                em = self._em_map(X, sw, workspace, recovery)
                for n_iter in range(1, self.max_iter + 1):
                    prev = lower_bound
                    stats, lower_bound = em.e(params)
                    params, reseeded, _ = em.m(stats, n_iter)
                    lower_bound = self._bound(stats, params, lower_bound)
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

    def _initial_params(self, X, sw, random_state, inits, recovery=None):
        """The start of one EM run: the given ``*_init`` if all are given;
        else statistics of a sample of rows (of positive weight) from hard
        labels ('kmeans', 'k-means++': one row per component,
        'random_from_data') or random responsibilities ('random'), their
        M-step, and the given ``*_init`` put in place."""
        given = self._params_from_inits(inits)
        if given is not None:
            return given
        k = self.n_components
        n = X.shape[0]
        n_sample = max(INIT_SAMPLE_SIZE, INIT_ROWS_PER_COMPONENT * k)
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
        noise = None
        if self.init_params == "kmeans":
            labels = self._kmeans_labels(Xs, k, random_state, sws)
            if self._label_noise:
                noise = np.random.RandomState(random_state.randint(np.iinfo(np.int32).max))
        elif self.init_params == "random":
            seed = random_state.randint(np.iinfo(np.int32).max)
        else:
            if self.init_params == "random_from_data":
                chosen = random_state.choice(ns, size=k, replace=False)
            else:  # "k-means++"
                chosen = self._kmeans_seeds(Xs, k, random_state, sws)
            labels = np.full(ns, -1, dtype=np.int64)  # rows not chosen weigh 0
            labels[chosen] = np.arange(k)
        # statistics of the sample from hard labels or random responsibilities,
        # summed over chunks so that no (n, k) array is formed
        statistics = self._resp_statistics(Xs)
        rng = np.random.RandomState(seed) if labels is None else None
        stats = None
        for i0 in range(0, ns, INIT_CHUNK):
            i1 = min(ns, i0 + INIT_CHUNK)
            if labels is None:
                resp = rng.uniform(size=(i1 - i0, k))
                resp /= resp.sum(axis=1)[:, None]
            else:
                resp = np.zeros((i1 - i0, k))
                lab = labels[i0:i1]
                rows = np.flatnonzero(lab >= 0)
                resp[rows, lab[rows]] = 1.0
                if noise is not None:  # k-means labels blended with random ones
                    r = noise.uniform(size=resp.shape)
                    resp = (1.0 - self._label_noise) * resp + \
                        self._label_noise * r / r.sum(axis=1)[:, None]
            part = statistics(Xs[i0:i1], None if sws is None else sws[i0:i1], resp)
            stats = part if stats is None else stats + part
        params = self._init_m_step(stats, X, sw, recovery, sws)
        return self._with_inits(params, inits)

    def _kmeans_labels(self, Xs, k, random_state, sws):
        """k-means labels of the sample (the 'kmeans' start)."""
        return kmeans(self._kmeans_input(Xs), k, random_state, sws)[1]

    def _kmeans_seeds(self, Xs, k, random_state, sws):
        """The rows k-means++ picks (the 'k-means++' start)."""
        return kmeans_plusplus(self._kmeans_input(Xs), k, random_state, sws)[1]

    def _kmeans_input(self, Xs):
        """The rows k-means and k-means++ see (a family may encode them)."""
        return Xs

    def _em_map(self, X, sw, workspace, recovery):
        """One plain EM iteration (as the map SQUAREM extrapolates)."""
        scale = count_scale(sw)  # effective rows per unit of weight

        def estep(params):
            return self._estep(workspace, X, sw, params)

        def mstep(stats, iteration):
            return self._m_step(stats, X, sw, recovery, iteration, scale)

        return EMMap(estep, mstep, None if self.on_collapse == "raise" else recovery)

    def _m_step(self, stats, X, sw, recovery, iteration, count_scale=1.0):
        """The M-step; with on_collapse='reseed' through ``recovery``, which
        re-seeds from rows of X.  ``count_scale`` turns S0 into effective
        counts (online EM's normalised statistics).  Returns (params, reseeded)."""
        if self.on_collapse == "raise" or recovery is None:
            return self._plain_m_step(stats, X), False
        return recovery.m_step(stats, iteration, X, sw, count_scale)

    # ------------------------------------------------------------------
    # inference (the fused kernel with statistics off)
    # ------------------------------------------------------------------

    def _prepare(self, X):
        check_is_fitted(self)
        return self._check_X(X, reset=False)

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
        n_features = self.n_features_in_
        check_allocation(int(n_samples) * (n_features + 1) * 8,
                         f"sample(n_samples={n_samples}) with {n_features} features",
                         "Draw fewer samples, or draw them in batches.")
        rng = check_random_state(self.random_state)
        counts = rng.multinomial(n_samples, self.weights_)
        X = self._sample_components(rng, counts)
        y = np.concatenate([np.full(int(s), j, dtype=np.int64) for j, s in enumerate(counts)])
        return X, y

    # ------------------------------------------------------------------
    # information criteria
    # ------------------------------------------------------------------

    def _scaled_loglik(self, X, sample_weight):
        """``(L, W, e)``: ``L 2**e = sum_i w_i log p(x_i)`` and ``W 2**e =
        sum_i w_i``, computed with the weights scaled into [1, 2) so that
        weights near 1e308 do not overflow (see ``scaled_weights``)."""
        X = self._prepare(X)
        sw, e = scaled_weights(check_sample_weight(sample_weight, X.shape[0]))
        ll, w = self._loglik(X, sw)
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
