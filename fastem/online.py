"""``MiniBatchGaussianMixture``: online (stepwise) EM on the fused kernels.

Stepwise EM (Cappé & Moulines 2009; Liang & Klein 2009) keeps running
sufficient statistics ``s``.  Each mini-batch's statistics, computed by the
same fused kernel as batch EM and normalised by the batch weight, are blended
in with a decreasing step ``eta_t = (t + learning_offset) ** -learning_decay``::

    s <- (1 - eta_t) * s + eta_t * s_batch

and the same closed-form M-step as batch EM turns ``s`` into parameters.  The
running statistics are float64 and taken around one shift fixed at the
initialisation, so that blends of statistics of different batches are exact
sums (:meth:`fastem._stats.GaussianStats.blend`).
"""

import warnings
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
from sklearn.base import _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval

from ._base import INIT_ROWS_PER_COMPONENT, INIT_SAMPLE_SIZE
from ._collapse import CollapseWarning, restated
from ._dask import DaskSource
from ._data import sample_rows
from ._estep import single_threaded_blas
from ._fitted import kept_on_error
from ._stats import default_shift
from ._validation import check_fit_weights, check_sample_weight, count_scale, scaled_weights
from .mixture import GaussianMixture

#: The parameters every online estimator adds to its batch counterpart's.
ONLINE_CONSTRAINTS = {
    "batch_size": [Interval(Integral, 1, None, closed="left")],
    "learning_decay": [Interval(Real, 0.5, 1.0, closed="right")],
    "learning_offset": [Interval(Real, 0.0, None, closed="left")],
    "max_no_improvement": [Interval(Integral, 1, None, closed="left"), None],
    "n_warmup_iter": [Interval(Integral, 0, None, closed="left")],
}


class BaseMiniBatchMixture:
    """Stepwise online EM for any family: ``partial_fit`` and the mini-batch
    epochs of ``fit``, on a batch estimator's hooks (:mod:`fastem._base`)
    plus three of its own:

    ``_online_start(params)``            fix what the running statistics are
                                         taken around (the Gaussian shift)
    ``_online_estep(ws, X, sw, params)`` a batch's statistics, blendable with
                                         the running ones
    ``_restated(running, params, comps)`` running statistics whose re-seeded
                                         components restart from ``params``

    Mixed in before the batch estimator:
    ``class MiniBatchXMixture(BaseMiniBatchMixture, XMixture)``.
    """

    # ------------------------------------------------------------------
    # the online update
    # ------------------------------------------------------------------

    def _step_size(self):
        """eta for the next update; the first update replaces the statistics."""
        if self.n_steps_ == 0:
            return 1.0
        return float((self.n_steps_ + self.learning_offset) ** -self.learning_decay)

    def _batch_workspace(self, n_rows, n_features):
        """E-step buffers for batches of ``n_rows`` rows, kept between calls."""
        cache = self.__dict__.setdefault("_workspaces", {})
        if n_rows not in cache:
            if len(cache) > 4:
                cache.clear()
            cache[n_rows] = self._make_workspace(n_features, n_rows)
        return cache[n_rows]

    def _update(self, X, sw, eta):
        """One stepwise-EM update on the batch; the model changes only if the
        whole update succeeds.  Returns the batch's mean log-likelihood under
        the parameters before the update."""
        params = self._get_params_tuple()
        ws = self._missing_workspace(X)  # missing='em': a batch with NaN entries
        if ws is None:
            ws = self._batch_workspace(X.shape[0], X.shape[1])
        stats = self._online_estep(ws, X, sw, params)
        if not stats.weight > 0:
            raise ValueError(
                "The mini-batch has a total sample_weight of 0, so it carries no "
                "information. Pass rows with positive weights."
            )
        batch = stats.scaled(1.0 / stats.weight)
        running = batch if eta == 1.0 else self._running.blend(batch, eta)
        new_params, running = self._recovering_m_step(running, X, sw, eta)
        self._running = running
        self._set_params_tuple(new_params)
        self.n_steps_ += 1
        self.n_samples_seen_ += X.shape[0]
        return stats.loglik / stats.weight

    def _recovering_m_step(self, running, X, sw, eta):
        """The M-step (through the collapse recovery unless on_collapse='raise');
        a re-seeded component's running statistics are replaced by those of
        its new parameters, so that the next updates start from them.
        Returns (params, running)."""
        rec = self._collapse
        # effective rows behind the running statistics: about batch / eta
        # (the batch's effective rows: invariant to the scale of its weights)
        n_batch = X.shape[0] if sw is None else count_scale(sw) * float(sw.sum())
        scale = min(self.n_samples_seen_ + n_batch, n_batch / eta)
        seen = len(rec.events)
        params, reseeded = self._m_step(running, X, sw, rec, self.n_steps_ + 1, scale)
        new = rec.events[seen:]
        self._note_collapse(new, f"update {self.n_steps_ + 1}")
        if reseeded:
            comps = [e[1] for e in new if e[2] == "reseed"]
            running = self._restated(running, params, comps)
        return params, running

    def _note_collapse(self, new_events, where):
        """Record recovery events; warn at the first of the model's life."""
        self.collapse_events_ = list(self._collapse.events)
        self.n_reseeds_ = self._collapse.n_reseeds
        if new_events and not self._collapse_warned:
            self._collapse_warned = True
            warnings.warn(
                f"Collapse recovery in the {where} "
                f"({', '.join(sorted({e[2] for e in new_events}))}); the model is valid, "
                "see collapse_events_. on_collapse='raise' restores scikit-learn's error.",
                CollapseWarning, stacklevel=6)

    def _start(self, X, sw, random_state):
        """Initial parameters from the ``*_init`` parameters, or from the
        initialisation plus ``n_warmup_iter`` batch EM iterations on X (the
        best of ``n_init``); then the statistics' fixed shift."""
        inits = self._checked_inits(X.shape[1])
        ws = self._missing_workspace(X)
        em = self._em_map(X, sw, self._batch_workspace(X.shape[0], X.shape[1])
                          if ws is None else ws, self._collapse)
        given = all(v is not None for v in inits)
        best, best_ll = None, -np.inf
        for _ in range(1 if given else self.n_init):
            params = self._initial_params(X, sw, random_state, inits, self._collapse)
            ll = -np.inf
            for it in range(0 if given else self.n_warmup_iter):
                stats, ll = em.e(params)
                params = em.m(stats, -1 - it)[0]
            if best is None or ll > best_ll:
                best, best_ll = params, ll
        return best

    def _reset(self, X, sw, random_state):
        self._collapse = self._recovery(X, random_state)
        self._collapse_warned = False
        params = self._start(X, sw, random_state)
        self._note_collapse(self._collapse.events, "initialisation")
        self._online_start(params)
        self._running = None
        self._set_params_tuple(params)
        self.n_steps_ = 0
        self.n_samples_seen_ = 0
        self.lower_bound_ = -np.inf
        self.lower_bounds_ = []

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None, sample_weight=None):
        """Update the model with one mini-batch.

        The first call initialises the model on this batch (from the
        ``*_init`` parameters if all are given, else ``init_params`` plus
        ``n_warmup_iter`` batch EM iterations) and makes the first update;
        every later call makes exactly one stepwise-EM update.  A batch that
        fails validation leaves the model unchanged.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : Ignored
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self
        """
        first = not hasattr(self, "_running")
        # a failed call leaves the model exactly as it was
        with kept_on_error(self, lazy_random_state=not first):
            X, sw = self._batch(X, sample_weight, first)
            with single_threaded_blas():
                if first:
                    self._first_update(X, sw)
                else:
                    self.lower_bound_ = self._update(X, sw, self._step_size())
        return self

    def _first_update(self, X, sw):
        """Initialise the model on the first batch, then update it once."""
        n = X.shape[0]
        if n < self.n_components:
            raise ValueError(
                f"The first batch given to partial_fit has {n} rows, fewer than "
                f"n_components = {self.n_components}; it initialises the model. "
                "Pass a larger first batch or use fewer components."
            )
        self._random_state = check_random_state(self.random_state)
        self._reset(X, sw, self._random_state)
        self.lower_bound_ = self._update(X, sw, 1.0)
        self.lower_bounds_ = [self.lower_bound_]
        self.converged_ = False
        self.n_iter_ = 0

    def _batch(self, X, sample_weight, first):
        """A mini-batch and its weights, checked (a later batch against the
        fitted model: features, and n_components and covariance_type that
        set_params may have changed since)."""
        X = self._check_X(X, reset=first, continuing=None if first else "partial_fit")
        if isinstance(X, DaskSource):  # a batch: brought to this process
            X = X.read(0, X.shape[0])
        if first:
            return X, check_fit_weights(sample_weight, X.shape[0], self.n_components)
        return X, scaled_weights(check_sample_weight(sample_weight, X.shape[0]))[0]

    # ------------------------------------------------------------------
    # fit: warm-up on a subsample, then epochs of shuffled mini-batches
    # ------------------------------------------------------------------

    def _fit_guarded(self, X, sample_weight):
        warm = self.warm_start and hasattr(self, "_running")
        X = self._check_X(X, reset=not warm, continuing="warm_start" if warm else None)
        n = X.shape[0]
        if n < max(2, self.n_components):
            raise ValueError(
                f"Expected n_samples >= max(2, n_components) = "
                f"{max(2, self.n_components)}, but got n_samples = {n}. "
                "Use fewer components or more data."
            )
        sw = check_fit_weights(sample_weight, n, self.n_components)
        self._prepare_fit(X, sw, sample_weight)
        # the rows the epochs draw from: a row of weight 0 changes nothing
        rows = None if sw is None or (sw > 0).all() else np.flatnonzero(sw > 0)
        n_rows = n if rows is None else rows.size
        random_state = check_random_state(self.random_state)
        self._random_state = random_state
        bs = min(self.batch_size, n_rows)
        with single_threaded_blas():
            if not warm:
                n_warm = max(INIT_SAMPLE_SIZE, INIT_ROWS_PER_COMPONENT * self.n_components, bs)
                if rows is None:
                    idx = sample_rows(random_state, n, min(n, n_warm))
                else:  # rows of positive weight only
                    idx = rows if n_rows <= n_warm else rows[
                        sample_rows(random_state, n_rows, n_warm)]
                Xw = np.asarray(X[idx])
                sww = None if sw is None else sw[idx]
                self._reset(Xw, sww, random_state)
                self._update(Xw, sww, 1.0)
            self._epochs(X, sw, bs, random_state, rows)
        return X

    def _epochs(self, X, sw, bs, random_state, rows=None):
        """Epochs of shuffled mini-batches of ``rows`` (None: all rows)."""
        n = X.shape[0] if rows is None else rows.size
        alpha = min(1.0, 2.0 * bs / (n + 1))  # EWA weight of one batch
        # the EWA is an average only once it has seen its span of batches;
        # before that a lucky first batch would stop the fit at once
        min_steps = int(np.ceil(1.0 / alpha))
        steps = 0
        ewa, best, stall = None, -np.inf, 0
        history = []
        converged = False
        epoch = 0
        progress = getattr(self, "_progress", None)  # the command line's progress bar
        for epoch in range(1, self.max_iter + 1):
            order = random_state.permutation(n)
            if rows is not None:
                order = rows[order]
            for b0 in range(0, n, bs):
                idx = np.sort(order[b0:b0 + bs])
                ll = self._update(np.asarray(X[idx]), None if sw is None else sw[idx],
                                  self._step_size())
                ewa = ll if ewa is None else (1.0 - alpha) * ewa + alpha * ll
                history.append(ewa)
                steps += 1
                if progress is not None:
                    progress(epoch - 1, b0 // bs + 1)
                if self.max_no_improvement is None or steps < min_steps:
                    continue
                if ewa > best + self.tol:
                    best, stall = ewa, 0
                else:
                    stall += 1
                    if stall >= self.max_no_improvement:
                        converged = True
                        break
            if self.verbose and epoch % self.verbose_interval == 0:
                print(f"  Epoch {epoch}\t steps {self.n_steps_}\t EWA log-likelihood "
                      f"{ewa:.5f}")
            if converged:
                break
        self.n_iter_ = epoch
        self.converged_ = converged
        self.lower_bound_ = -np.inf if ewa is None else ewa
        self.lower_bounds_ = history
        if self.verbose:
            state = "converged" if converged else "did not converge"
            print(f"Mini-batch EM {state} after {epoch} epochs, {self.n_steps_} steps.")

    def fit(self, X, y=None, sample_weight=None):
        """Fit by online EM: a warm-up on a random subsample of
        max(4096, 256 * n_components, batch_size) rows, then up to ``max_iter``
        epochs of shuffled mini-batches of ``batch_size`` rows, stopping early
        on the rule described under ``tol``.  Reproducible for a fixed
        ``random_state``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : Ignored
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self
        """
        self._fit(X, sample_weight)
        return self


class MiniBatchGaussianMixture(BaseMiniBatchMixture, GaussianMixture):
    """Gaussian mixture fitted by online (stepwise) EM on mini-batches.

    Same covariance types, fitted attributes and methods (predict,
    predict_proba, score, score_samples, sample, bic, aic) as
    :class:`fastem.GaussianMixture`; adds :meth:`partial_fit` for streams.

    Parameters
    ----------
    n_components : int, default=1
    covariance_type : {'full', 'tied', 'diag', 'spherical'}, default='full'
    batch_size : int, default=1024
        Rows per mini-batch in :meth:`fit`.
    learning_decay : float in (0.5, 1], default=0.7
        Exponent of the step size ``eta_t = (t + learning_offset) ** -learning_decay``.
        Values in (0.5, 1] satisfy the Robbins-Monro conditions.
    learning_offset : float >= 0, default=2.0
        Delays the decay of the step size; larger values weigh early batches less.
    max_iter : int, default=100
        Maximum number of epochs (passes over the data) of :meth:`fit`.
    tol : float, default=0.0
        :meth:`fit` stops when an exponentially weighted average (EWA) of the
        mini-batch mean log-likelihood has not improved by more than ``tol``
        for ``max_no_improvement`` consecutive mini-batches.  The EWA gives
        each batch the weight ``alpha = min(1, 2 * batch_size / (n + 1))``
        (as scikit-learn's MiniBatchKMeans) and the rule is applied only after
        ``1 / alpha`` batches, when the EWA has covered its span.
    max_no_improvement : int or None, default=10
        See ``tol``; None disables early stopping (all ``max_iter`` epochs run).
    reg_covar : float, default=1e-6
    n_init : int, default=1
        Number of initialisations tried on the warm-up sample; the one with the
        largest log-likelihood on it is kept.
    init_params : {'k-means++', 'kmeans', 'random', 'random_from_data'}, default='k-means++'
    n_warmup_iter : int, default=5
        Batch EM iterations run on the warm-up sample (:meth:`fit`) or on the
        first batch (:meth:`partial_fit`) after the initialisation.
    weights_init, means_init, precisions_init : array-like, default=None
        User-provided initial parameters, as in GaussianMixture.  When all three
        are given, no initialisation or warm-up iteration is run.
    random_state : int, RandomState instance or None, default=None
        Seed for the initialisation, the shuffling of :meth:`fit` and :meth:`sample`.
    warm_start : bool, default=False
        :meth:`fit` continues from the current model instead of starting anew.
    verbose : int, default=0
    verbose_interval : int, default=10
        Epochs between two messages.
    on_collapse : {'reseed', 'raise'}, default='reseed'
        As in GaussianMixture.  Counts are the running weights times the
        rows behind the running statistics (about batch_size / eta); a
        re-seeded component's running statistics are replaced by those of its
        new parameters.

    Attributes
    ----------
    weights_, means_, covariances_, precisions_, precisions_cholesky_
        As in GaussianMixture.
    n_steps_ : int
        Number of updates (mini-batches) since the initialisation.
    n_samples_seen_ : int
        Number of rows those updates used.
    n_iter_ : int
        Epochs started by the last :meth:`fit`.
    converged_ : bool
        Whether :meth:`fit` stopped on the early-stopping rule.
    lower_bound_ : float
        After :meth:`fit`, the final EWA of the mini-batch mean log-likelihood
        (each batch scored with the parameters before its update); after
        :meth:`partial_fit`, the mean log-likelihood of the last batch.
    lower_bounds_ : list of float
        The EWA after every update of the last :meth:`fit`.
    """

    _parameter_constraints: ClassVar[dict] = {
        **GaussianMixture._parameter_constraints, **ONLINE_CONSTRAINTS,
    }

    def __init__(
        self,
        n_components=1,
        *,
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
        weights_init=None,
        means_init=None,
        precisions_init=None,
        random_state=None,
        warm_start=False,
        verbose=0,
        verbose_interval=10,
        on_collapse="reseed",
        missing="raise",
    ):
        super().__init__(
            n_components=n_components, covariance_type=covariance_type, tol=tol,
            reg_covar=reg_covar, max_iter=max_iter, n_init=n_init,
            init_params=init_params, weights_init=weights_init, means_init=means_init,
            precisions_init=precisions_init, random_state=random_state,
            warm_start=warm_start, verbose=verbose, verbose_interval=verbose_interval,
            on_collapse=on_collapse, missing=missing,
        )
        self.batch_size = batch_size
        self.learning_decay = learning_decay
        self.learning_offset = learning_offset
        self.max_no_improvement = max_no_improvement
        self.n_warmup_iter = n_warmup_iter

    # ------------------------------------------------------------------
    # the Gaussian family's online hooks
    # ------------------------------------------------------------------

    def _online_start(self, params):
        # running statistics are taken around one shift fixed here, so that
        # blends of statistics of different batches are exact sums
        self._shift = default_shift(params, self.covariance_type)

    def _online_estep(self, ws, X, sw, params):
        return ws.run(X, sw, params, shift=self._shift)

    def _restated(self, running, params, comps):
        return restated(running, params, comps, self.reg_covar)
