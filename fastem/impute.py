"""``MixtureImputer``: missing values filled from a Gaussian mixture fitted
by EM on the incomplete data (``GaussianMixture(missing='em')``)."""

from typing import ClassVar

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils.validation import _check_feature_names_in, check_is_fitted

from ._missing import Patterns, conditional_draws
from .mixture import GaussianMixture

__all__ = ["MixtureImputer"]


class MixtureImputer(TransformerMixin, BaseEstimator):
    """Fill missing values (NaN) from a Gaussian mixture fitted to the
    incomplete data.

    ``fit`` runs EM on the observed entries (``GaussianMixture(...,
    missing='em')``, kept as ``mixture_``).  ``transform`` replaces each
    missing entry by its conditional expectation given the row's observed
    entries, ``sum_k r_ik E[x_m | x_o, k]``, or with ``sample_posterior=True``
    by a draw from the conditional distribution (the component from the
    row's posterior, then the conditional Gaussian): multiple imputation,
    reproducible with ``random_state``.  Observed entries are returned
    unchanged.  One component (the default) is the multivariate normal
    model; more components follow clustered data.  See ``docs/missing.md``.

    Parameters
    ----------
    n_components : int, default=1
    covariance_type : {'full', 'tied', 'diag', 'spherical'}, default='full'
        'diag' and 'spherical' make the features independent within a
        component: a missing entry then learns from the others only through
        the component's posterior.
    tol, reg_covar, max_iter, n_init, init_params, random_state
        As in :class:`fastem.GaussianMixture`; ``random_state`` also seeds
        the draws of ``sample_posterior``.
    sample_posterior : bool, default=False
        Draw each row's missing entries instead of taking their expectation.
        The draws never change the fitted mixture.

    Attributes
    ----------
    mixture_ : GaussianMixture
        The fitted mixture.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Defined when X has feature names that are all strings.
    """

    _parameter_constraints: ClassVar[dict] = {
        **{name: GaussianMixture._parameter_constraints[name] for name in (
            "n_components", "covariance_type", "tol", "reg_covar", "max_iter", "n_init",
            "init_params", "random_state")},
        "sample_posterior": ["boolean"],
    }

    def __init__(self, n_components=1, *, covariance_type="full", tol=1e-3, reg_covar=1e-6,
                 max_iter=100, n_init=1, init_params="kmeans", random_state=None,
                 sample_posterior=False):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.random_state = random_state
        self.sample_posterior = sample_posterior

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Fit the mixture on X's observed entries.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), NaN where missing
        y : Ignored

        Returns
        -------
        self
        """
        random_state = check_random_state(self.random_state)
        mixture = GaussianMixture(
            self.n_components, covariance_type=self.covariance_type, tol=self.tol,
            reg_covar=self.reg_covar, max_iter=self.max_iter, n_init=self.n_init,
            init_params=self.init_params,
            random_state=random_state.randint(np.iinfo(np.int32).max), missing="em")
        mixture.fit(X)
        self.mixture_ = mixture
        self.n_features_in_ = mixture.n_features_in_
        if hasattr(mixture, "feature_names_in_"):
            self.feature_names_in_ = mixture.feature_names_in_
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        self._draws = random_state
        return self

    def transform(self, X):
        """X with its missing entries filled.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), NaN where missing

        Returns
        -------
        X_filled : ndarray of shape (n_samples, n_features)
        """
        check_is_fitted(self, "mixture_")
        if not self.sample_posterior:
            return self.mixture_.impute(X)
        m = self.mixture_
        X = m._check_X(X, reset=False, nan=True)
        patterns = Patterns(X, allow_empty=True)
        if not patterns.incomplete:
            return np.array(X, copy=True)
        return conditional_draws(X, patterns, m._get_params_tuple(), m.covariance_type,
                                 self._draws)

    def get_feature_names_out(self, input_features=None):
        """The input's feature names (imputation keeps the columns)."""
        check_is_fitted(self, "mixture_")
        return _check_feature_names_in(self, input_features)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags
