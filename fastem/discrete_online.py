"""Online (stepwise) EM for the discrete families: ``MiniBatchBernoulliMixture``,
``MiniBatchBinomialMixture``, ``MiniBatchPoissonMixture``,
``MiniBatchMultinomialMixture`` and ``MiniBatchCategoricalMixture``.

Each is the family's batch estimator with the stepwise-EM driver of
:mod:`fastem.online` (``partial_fit``, mini-batch epochs, collapse
re-seeding) and MiniBatchGaussianMixture's parameters; their statistics
(``S0``, ``S1``) are plain sums, so no shift is needed to blend them.
"""

from typing import ClassVar

import numpy as np

from .categorical import CategoricalMixture
from .discrete import (
    BernoulliMixture,
    BinomialMixture,
    MultinomialMixture,
    PoissonMixture,
    _merge_totals,
    _store,
)
from .families.linear import LinearStats
from .online import ONLINE_CONSTRAINTS, BaseMiniBatchMixture

_ONLINE_DOC = """
    Online parameters (as MiniBatchGaussianMixture)
    -----------------------------------------------
    batch_size : int, default=1024
        Rows per mini-batch in :meth:`fit`.
    learning_decay : float in (0.5, 1], default=0.7
        Exponent of the step size ``eta_t = (t + learning_offset) ** -learning_decay``.
    learning_offset : float >= 0, default=2.0
    max_iter : int, default=100
        Maximum number of epochs of :meth:`fit`.
    tol : float, default=0.0
        :meth:`fit` stops when the exponentially weighted average of the
        mini-batch mean log-likelihood has not improved by more than ``tol``
        for ``max_no_improvement`` consecutive mini-batches.
    max_no_improvement : int or None, default=10
    init_params : default='k-means++'
    n_warmup_iter : int, default=5
        Batch EM iterations on the warm-up sample (:meth:`fit`) or on the
        first batch (:meth:`partial_fit`) after the initialisation.

    Attributes
    ----------
    n_steps_ : int
        Number of updates (mini-batches) since the initialisation.
    n_samples_seen_ : int
"""


class _MiniBatchDiscrete(BaseMiniBatchMixture):
    """The discrete families' online hooks."""

    def _online_start(self, params):
        pass  # plain sums: nothing to fix

    def _online_estep(self, ws, X, sw, params):
        return self._estep(ws, X, sw, params, cache=False)

    def _restated(self, running, params, comps):
        """Re-seeded components restart with 1 / K of the running weight and
        the statistics their new parameters expect."""
        S0, S1 = running.S0.copy(), running.S1.copy()
        observed = None if running.observed is None else running.observed.copy()
        w = S0.sum() / len(S0)
        mean = self._family.mean(np.asarray(params.theta))
        for k in comps:
            S0[k] = w
            S1[k] = w * mean[k]
            if observed is not None:
                observed[k] = w
        return LinearStats(S0, S1, running.loglik, running.weight, observed)


def _constraints(batch):
    c = {**batch._parameter_constraints, **ONLINE_CONSTRAINTS}
    del c["accelerate"]
    return c


class MiniBatchBernoulliMixture(_MiniBatchDiscrete, BernoulliMixture):
    __doc__ = ("Bernoulli mixture fitted by online (stepwise) EM on mini-batches; "
               "the parameters, attributes and methods of BernoulliMixture plus "
               ":meth:`partial_fit`.\n" + _ONLINE_DOC)
    _parameter_constraints: ClassVar[dict] = _constraints(BernoulliMixture)

    def __init__(self, n_components=1, *, batch_size=1024, learning_decay=0.7,
                 learning_offset=2.0, max_iter=100, tol=0.0, max_no_improvement=10, n_init=1,
                 init_params="k-means++", n_warmup_iter=5, weights_init=None,
                 probabilities_init=None, random_state=None, warm_start=False, verbose=0,
                 verbose_interval=10, on_collapse="reseed", fixed_weights=False, alpha=0.0,
                 missing="raise"):
        _store(self, locals())


class MiniBatchBinomialMixture(_MiniBatchDiscrete, BinomialMixture):
    __doc__ = ("Binomial mixture fitted by online (stepwise) EM on mini-batches; "
               "the parameters, attributes and methods of BinomialMixture plus "
               ":meth:`partial_fit`.\n" + _ONLINE_DOC)
    _parameter_constraints: ClassVar[dict] = _constraints(BinomialMixture)

    def __init__(self, n_components=1, *, n_trials=1, batch_size=1024, learning_decay=0.7,
                 learning_offset=2.0, max_iter=100, tol=0.0, max_no_improvement=10, n_init=1,
                 init_params="k-means++", n_warmup_iter=5, weights_init=None,
                 probabilities_init=None, random_state=None, warm_start=False, verbose=0,
                 verbose_interval=10, on_collapse="reseed", fixed_weights=False, alpha=0.0,
                 missing="raise"):
        _store(self, locals())


class MiniBatchPoissonMixture(_MiniBatchDiscrete, PoissonMixture):
    __doc__ = ("Poisson mixture fitted by online (stepwise) EM on mini-batches; "
               "the parameters, attributes and methods of PoissonMixture plus "
               ":meth:`partial_fit`.\n" + _ONLINE_DOC)
    _parameter_constraints: ClassVar[dict] = _constraints(PoissonMixture)

    def __init__(self, n_components=1, *, batch_size=1024, learning_decay=0.7,
                 learning_offset=2.0, max_iter=100, tol=0.0, max_no_improvement=10, n_init=1,
                 init_params="k-means++", n_warmup_iter=5, weights_init=None, rates_init=None,
                 random_state=None, warm_start=False, verbose=0, verbose_interval=10,
                 on_collapse="reseed", fixed_weights=False, alpha=0.0, missing="raise"):
        _store(self, locals())


class MiniBatchMultinomialMixture(_MiniBatchDiscrete, MultinomialMixture):
    __doc__ = ("Multinomial mixture fitted by online (stepwise) EM on mini-batches; "
               "the parameters, attributes and methods of MultinomialMixture plus "
               ":meth:`partial_fit`.\n" + _ONLINE_DOC)
    _parameter_constraints: ClassVar[dict] = _constraints(MultinomialMixture)

    def _update(self, X, sw, eta):
        ll = super()._update(X, sw, eta)
        self.row_totals_, self.row_total_weights_ = _merge_totals(
            getattr(self, "row_totals_", None), getattr(self, "row_total_weights_", None),
            X, sw, eta)
        return ll

    def __init__(self, n_components=1, *, batch_size=1024, learning_decay=0.7,
                 learning_offset=2.0, max_iter=100, tol=0.0, max_no_improvement=10, n_init=1,
                 init_params="k-means++", n_warmup_iter=5, weights_init=None,
                 probabilities_init=None, random_state=None, warm_start=False, verbose=0,
                 verbose_interval=10, on_collapse="reseed", fixed_weights=False, alpha=0.0,
                 missing="raise"):
        _store(self, locals())


class MiniBatchCategoricalMixture(_MiniBatchDiscrete, CategoricalMixture):
    __doc__ = ("Categorical mixture (latent class analysis) fitted by online (stepwise) "
               "EM on mini-batches; the parameters, attributes and methods of "
               "CategoricalMixture plus :meth:`partial_fit`.  Give ``n_categories`` "
               "(or a DataFrame of category columns) when the first batch may not show "
               "every category.\n" + _ONLINE_DOC)
    _parameter_constraints: ClassVar[dict] = _constraints(CategoricalMixture)

    def __init__(self, n_components=1, *, n_categories=None, batch_size=1024,
                 learning_decay=0.7, learning_offset=2.0, max_iter=100, tol=0.0,
                 max_no_improvement=10, n_init=1, init_params="k-means++", n_warmup_iter=5,
                 weights_init=None, probabilities_init=None, random_state=None,
                 warm_start=False, verbose=0, verbose_interval=10, on_collapse="reseed",
                 fixed_weights=False, alpha=0.0, missing="raise"):
        _store(self, locals())
