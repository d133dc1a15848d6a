"""``fastem.GaussianMixture`` against ``sklearn.mixture.GaussianMixture``.

Both estimators are started from identical initial parameters
(``weights_init``, ``means_init``, ``precisions_init``) with ``tol=0`` so that
they run exactly ``max_iter`` EM iterations; every fitted attribute and every
prediction must then agree to ``rtol=1e-7``.  The module also checks
scikit-learn API compatibility (clone, Pipeline, GridSearchCV, sample) and the
``sample_weight`` extension, which has no scikit-learn counterpart: a weight
of two must behave exactly like a duplicated row, and fractional weights are
checked against the slow reference in ``reference.py``.
"""

import os
import sys
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.datasets import load_iris
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SkGaussianMixture
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from fastem import GaussianMixture

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as ref  # noqa: E402

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]
RTOL = 1e-7
FITTED_ARRAYS = ["weights_", "means_", "covariances_", "precisions_",
                 "precisions_cholesky_"]

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


# --------------------------------------------------------------------------
# Data and helpers
# --------------------------------------------------------------------------

BLOB_CENTRES = np.array([[0.0, 0.0, 0.0], [6.0, 0.0, 1.0], [1.5, 1.8, -0.5]])


def make_blobs(n_samples=600, seed=0, spread=1.0):
    """Three 3-D blobs: one well separated, two overlapping.

    Component sizes are 40%/35%/25% of ``n_samples``; each blob has its own
    correlated covariance.  ``spread`` scales the centres apart.
    """
    rng = np.random.default_rng(seed)
    chol = [
        np.array([[1.0, 0.0, 0.0], [0.5, 0.8, 0.0], [0.2, -0.3, 0.6]]),
        np.array([[0.6, 0.0, 0.0], [-0.2, 1.2, 0.0], [0.0, 0.4, 0.9]]),
        np.array([[0.7, 0.0, 0.0], [0.3, 0.5, 0.0], [-0.4, 0.1, 1.1]]),
    ]
    sizes = [int(0.4 * n_samples), int(0.35 * n_samples)]
    sizes.append(n_samples - sum(sizes))
    parts = [
        spread * centre + rng.normal(size=(n, 3)) @ L.T
        for centre, L, n in zip(BLOB_CENTRES, chol, sizes)
    ]
    X = np.vstack(parts)
    return X[rng.permutation(n_samples)]


def make_well_separated(n_samples=600, seed=0):
    """Three isotropic, far-apart 3-D blobs."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [0.0, 10.0, 10.0]])
    labels = rng.integers(0, 3, size=n_samples)
    return centres[labels] + rng.normal(size=(n_samples, 3))


def load_dataset(name):
    """Training data and new (held-out, partly out-of-distribution) data."""
    if name == "blobs":
        X = make_blobs(600, seed=0)
        rng = np.random.default_rng(123)
        X_new = np.vstack([make_blobs(200, seed=1), rng.normal(30.0, 1.0, (5, 3))])
    else:
        X = load_iris().data.astype(np.float64)
        rng = np.random.default_rng(321)
        X_new = np.vstack([
            X[rng.choice(len(X), 60)] + rng.normal(scale=0.2, size=(60, 4)),
            rng.normal(20.0, 1.0, (5, 4)),
        ])
    return X, X_new


def initial_parameters(X, covariance_type, init, n_components=3):
    """Initial weights, means and precisions of the right shape for the type.

    ``init='sklearn2'`` takes them from a 2-iteration scikit-learn fit;
    ``init='rows'`` uses equal weights, three data rows as means and the
    identity (or ones) as precisions: a rough start far from convergence.
    """
    if init == "sklearn2":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            gm = SkGaussianMixture(n_components, covariance_type=covariance_type,
                                   max_iter=2, random_state=0).fit(X)
        return gm.weights_.copy(), gm.means_.copy(), gm.precisions_.copy()
    n_features = X.shape[1]
    rows = np.linspace(0, len(X) - 1, n_components).astype(int)
    weights = np.full(n_components, 1.0 / n_components)
    means = X[rows].copy()
    precisions = {
        "full": np.tile(np.eye(n_features), (n_components, 1, 1)),
        "tied": np.eye(n_features),
        "diag": np.ones((n_components, n_features)),
        "spherical": np.ones(n_components),
    }[covariance_type]
    return weights, means, precisions


def fit_both(X, covariance_type, weights, means, precisions, max_iter, **kwargs):
    """Fit scikit-learn and fastem from the same initial parameters."""
    params = dict(
        n_components=len(weights), covariance_type=covariance_type, tol=0.0,
        max_iter=max_iter, weights_init=weights, means_init=means,
        precisions_init=precisions, **kwargs,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk = SkGaussianMixture(**params).fit(X)
        fe = GaussianMixture(**params).fit(X)
    return sk, fe


def assert_scaled_close(actual, desired, rtol=RTOL, name=""):
    """``rtol`` relative agreement with ``atol = rtol * max|desired|``.

    The absolute part keeps exact zeros (e.g. the lower triangle of a
    Cholesky factor, or tiny off-diagonal terms) from failing on round-off.
    """
    actual = np.asarray(actual, dtype=np.float64)
    desired = np.asarray(desired, dtype=np.float64)
    assert actual.shape == desired.shape, (
        f"{name}: shape {actual.shape} != scikit-learn's {desired.shape}"
    )
    scale = float(np.max(np.abs(desired))) if desired.size else 0.0
    assert_allclose(actual, desired, rtol=rtol, atol=rtol * scale, err_msg=name)


def assert_same_labels(labels, desired_labels, proba):
    """Labels agree except where the two best posteriors are a near tie."""
    labels = np.asarray(labels)
    assert labels.shape == desired_labels.shape
    top_two = np.sort(proba, axis=1)[:, -2:] if proba.shape[1] > 1 else None
    if top_two is None:
        assert_array_equal(labels, desired_labels)
        return
    clear = (top_two[:, 1] - top_two[:, 0]) > 1e-6
    assert clear.mean() > 0.9  # ties must stay the exception
    assert_array_equal(labels[clear], desired_labels[clear])


def assert_models_agree(sk, fe, X, X_new):
    """Every fitted attribute and prediction of ``fe`` matches ``sk``."""
    for name in FITTED_ARRAYS:
        assert_scaled_close(getattr(fe, name), getattr(sk, name), name=name)
    assert fe.n_iter_ == sk.n_iter_
    assert bool(fe.converged_) == bool(sk.converged_)
    assert fe.lower_bound_ == pytest.approx(sk.lower_bound_, rel=RTOL, abs=RTOL)
    assert_scaled_close(fe.lower_bounds_, sk.lower_bounds_, name="lower_bounds_")

    for data, label in [(X, "train"), (X_new, "new")]:
        assert_allclose(fe.score_samples(data), sk.score_samples(data),
                        rtol=RTOL, atol=RTOL, err_msg=f"score_samples ({label})")
        assert fe.score(data) == pytest.approx(sk.score(data), rel=RTOL)
        proba = sk.predict_proba(data)
        assert_allclose(fe.predict_proba(data), proba, rtol=RTOL, atol=RTOL,
                        err_msg=f"predict_proba ({label})")
        assert_same_labels(fe.predict(data), sk.predict(data), proba)
        assert fe.bic(data) == pytest.approx(sk.bic(data), rel=RTOL)
        assert fe.aic(data) == pytest.approx(sk.aic(data), rel=RTOL)


# --------------------------------------------------------------------------
# Same start, same answer
# --------------------------------------------------------------------------

@pytest.mark.parametrize("dataset", ["blobs", "iris"])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("max_iter", [1, 25])
@pytest.mark.parametrize("init", ["sklearn2", "rows"])
def test_agrees_with_sklearn_from_same_init(dataset, covariance_type, max_iter, init):
    X, X_new = load_dataset(dataset)
    weights, means, precisions = initial_parameters(X, covariance_type, init)
    sk, fe = fit_both(X, covariance_type, weights, means, precisions, max_iter)
    assert sk.n_iter_ == max_iter  # tol=0: no early stop
    assert_models_agree(sk, fe, X, X_new)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_agrees_with_sklearn_reg_covar(covariance_type):
    """A large ``reg_covar`` enters the covariances the same way."""
    X, X_new = load_dataset("blobs")
    weights, means, precisions = initial_parameters(X, covariance_type, "sklearn2")
    sk, fe = fit_both(X, covariance_type, weights, means, precisions, 10,
                      reg_covar=0.5)
    assert_models_agree(sk, fe, X, X_new)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_agrees_with_sklearn_shifted_data(covariance_type):
    """Data far from the origin (large mean, unit spread) still agrees."""
    X, X_new = load_dataset("blobs")
    X, X_new = X + 1e4, X_new + 1e4
    weights, means, precisions = initial_parameters(X, covariance_type, "sklearn2")
    sk, fe = fit_both(X, covariance_type, weights, means, precisions, 10)
    # scikit-learn itself loses ~8 digits to E[x^2]-mu^2 cancellation here
    # for tied/diag/spherical, so compare the covariances with the exact
    # reference instead and everything else with scikit-learn.
    params = (weights, means, ref.precisions(precisions, covariance_type))
    for _ in range(10):
        _, *params = ref.em_step(X, *params, covariance_type, fe.reg_covar)
    assert_scaled_close(fe.weights_, params[0], name="weights_")
    assert_scaled_close(fe.means_, params[1], name="means_")
    assert_scaled_close(fe.covariances_, params[2], name="covariances_")
    assert_scaled_close(fe.means_, sk.means_, name="means_ vs sklearn")
    assert_allclose(fe.score_samples(X_new), sk.score_samples(X_new), rtol=1e-6)


@pytest.mark.parametrize("offset", [0.0, 1e3])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_float32_input_agrees_with_sklearn_float64(covariance_type, offset):
    """float32 input (log-densities in float32, statistics in float64) stays
    within 1e-6 of scikit-learn's float64 fit of the same values, also far
    from the origin; scikit-learn's own float32 fit is ~1e-5 off."""
    X, X_new = load_dataset("blobs")
    X32 = (X + offset).astype(np.float32)
    X64 = X32.astype(np.float64)  # the same numbers in float64
    weights, means, precisions = initial_parameters(X64, covariance_type, "sklearn2")
    sk, _ = fit_both(X64, covariance_type, weights, means, precisions, 15)
    _, fe = fit_both(X32, covariance_type, weights, means, precisions, 15)
    for name in FITTED_ARRAYS:
        actual, desired = getattr(fe, name), getattr(sk, name)
        if name == "means_":
            actual, desired = actual - offset, desired - offset
        assert_scaled_close(actual, desired, rtol=1e-6, name=name)
    assert fe.means_.dtype == np.float64
    Xn = (X_new + offset).astype(np.float32)
    assert_allclose(fe.score_samples(Xn), sk.score_samples(Xn.astype(np.float64)), rtol=1e-6)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_fitted_attribute_shapes_match_sklearn(covariance_type):
    X = make_blobs(300, seed=2)
    sk = SkGaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X)
    fe = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X)
    for name in FITTED_ARRAYS:
        assert np.shape(getattr(fe, name)) == np.shape(getattr(sk, name)), name
    assert fe.n_features_in_ == sk.n_features_in_ == 3
    assert isinstance(fe.n_iter_, (int, np.integer))
    assert len(fe.lower_bounds_) == fe.n_iter_
    assert np.isfinite(fe.lower_bound_)
    assert fe.lower_bound_ == pytest.approx(fe.lower_bounds_[-1])
    assert isinstance(fe.converged_, (bool, np.bool_))


def _without_on_collapse(params):
    """fastem's extra parameters: collapse recovery (docs/collapse.md),
    SQUAREM acceleration (docs/squarem.md, off by default) and missing
    values (docs/missing.md, refused by default as scikit-learn does)."""
    assert params.pop("on_collapse") in ("reseed", "raise")
    assert params.pop("accelerate") is None
    assert params.pop("missing") == "raise"
    return params


def test_constructor_matches_sklearn():
    assert GaussianMixture().on_collapse == "reseed"
    assert _without_on_collapse(GaussianMixture().get_params()) == \
        SkGaussianMixture().get_params()
    params = dict(n_components=4, covariance_type="diag", tol=1e-4, reg_covar=1e-5,
                  max_iter=50, n_init=2, init_params="random", random_state=3,
                  warm_start=True, verbose=0, verbose_interval=5)
    assert _without_on_collapse(GaussianMixture(**params).get_params()) == \
        SkGaussianMixture(**params).get_params()


def test_convergence_warning_like_sklearn():
    X = make_blobs(300, seed=3)
    with pytest.warns(ConvergenceWarning):
        GaussianMixture(3, tol=0, max_iter=2, random_state=0).fit(X)


# --------------------------------------------------------------------------
# scikit-learn API
# --------------------------------------------------------------------------

@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_fit_predict_equals_fit_then_predict(covariance_type):
    X = make_blobs(400, seed=4)
    for max_iter in (2, 100):
        params = dict(n_components=3, covariance_type=covariance_type,
                      random_state=0, max_iter=max_iter)
        labels = GaussianMixture(**params).fit_predict(X)
        gm = GaussianMixture(**params).fit(X)
        assert_array_equal(labels, gm.predict(X))
        assert labels.shape == (X.shape[0],)


def test_clone():
    gm = GaussianMixture(n_components=2, covariance_type="tied", reg_covar=1e-4,
                         random_state=7)
    copy = clone(gm)
    assert copy is not gm
    assert type(copy) is GaussianMixture
    assert copy.get_params() == gm.get_params()
    X = make_blobs(200, seed=5)
    fitted = clone(gm.fit(X))
    assert not hasattr(fitted, "means_")


def test_pipeline_fits_and_scores():
    X = make_blobs(400, seed=6) * [1.0, 100.0, 0.01]
    pipe = Pipeline([("scale", StandardScaler()),
                     ("gm", GaussianMixture(n_components=3, random_state=0))])
    pipe.fit(X)
    score = pipe.score(X)
    assert np.isfinite(score)
    assert pipe.predict(X).shape == (X.shape[0],)
    assert pipe.predict_proba(X).shape == (X.shape[0], 3)
    sk_pipe = Pipeline([("scale", StandardScaler()),
                        ("gm", SkGaussianMixture(n_components=3, random_state=0))])
    # same data, same model: the likelihoods cannot be far apart
    assert abs(score - sk_pipe.fit(X).score(X)) < 0.1


def test_grid_search_cv():
    X = make_well_separated(450, seed=8)
    search = GridSearchCV(GaussianMixture(random_state=0),
                          {"n_components": [1, 2, 3]}, cv=3)
    search.fit(X)
    assert len(search.cv_results_["mean_test_score"]) == 3
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    assert search.best_params_ == {"n_components": 3}
    assert isinstance(search.best_estimator_, GaussianMixture)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_sample_shapes(covariance_type):
    X = make_blobs(300, seed=9)
    fe = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X)
    sk = SkGaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X)
    for n in (1, 7, 500):
        X_fe, y_fe = fe.sample(n)
        X_sk, y_sk = sk.sample(n)
        assert X_fe.shape == X_sk.shape == (n, 3)
        assert y_fe.shape == y_sk.shape == (n,)
        assert set(np.unique(y_fe)) <= {0, 1, 2}
        assert np.all(np.isfinite(X_fe))
    # large samples follow the fitted mixture
    X_big, y_big = fe.sample(20000)
    assert_allclose(np.bincount(y_big, minlength=3) / 20000, fe.weights_, atol=0.02)
    for k in range(3):
        assert_allclose(X_big[y_big == k].mean(axis=0), fe.means_[k], atol=0.15)


def test_default_init_reaches_sklearn_likelihood():
    X = make_well_separated(900, seed=10)
    sk = SkGaussianMixture(3, random_state=0).fit(X)
    fe = GaussianMixture(3, random_state=0).fit(X)
    assert abs(fe.score(X) - sk.score(X)) < 1e-3
    assert fe.converged_


# --------------------------------------------------------------------------
# sample_weight extension
# --------------------------------------------------------------------------

def _doubled_data(X, seed=11):
    rng = np.random.default_rng(seed)
    doubled = np.sort(rng.choice(len(X), size=len(X) // 5, replace=False))
    sample_weight = np.ones(len(X))
    sample_weight[doubled] = 2.0
    return sample_weight, np.vstack([X, X[doubled]])


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_weight_two_equals_duplicated_rows(covariance_type):
    X = make_blobs(500, seed=12)
    sample_weight, X_dup = _doubled_data(X)
    weights, means, precisions = initial_parameters(X, covariance_type, "sklearn2")
    params = dict(n_components=3, covariance_type=covariance_type, tol=0,
                  max_iter=10, weights_init=weights, means_init=means,
                  precisions_init=precisions)
    weighted = GaussianMixture(**params).fit(X, sample_weight=sample_weight)
    duplicated = GaussianMixture(**params).fit(X_dup)
    for name in FITTED_ARRAYS:
        assert_scaled_close(getattr(weighted, name), getattr(duplicated, name),
                            rtol=1e-10, name=name)
    assert_scaled_close(weighted.lower_bounds_, duplicated.lower_bounds_,
                        rtol=1e-10, name="lower_bounds_")
    assert weighted.n_iter_ == duplicated.n_iter_


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_weighted_scores_equal_duplicated_data(covariance_type):
    X = make_blobs(500, seed=13)
    sample_weight, X_dup = _doubled_data(X, seed=14)
    gm = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X)
    assert gm.bic(X, sample_weight=sample_weight) == pytest.approx(gm.bic(X_dup),
                                                                   rel=1e-10)
    assert gm.aic(X, sample_weight=sample_weight) == pytest.approx(gm.aic(X_dup),
                                                                   rel=1e-10)
    assert gm.score(X, sample_weight=sample_weight) == pytest.approx(
        gm.score(X_dup), rel=1e-10)
    # and the weighted BIC follows the reference formula with n = sum(weights)
    ll_sum = np.sum(sample_weight * gm.score_samples(X))
    p = ref.n_parameters(covariance_type, 3, 3)
    assert gm.bic(X, sample_weight=sample_weight) == pytest.approx(
        ref.bic(ll_sum, p, sample_weight.sum()), rel=1e-10)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_fractional_weights_match_reference(covariance_type):
    """Non-integer weights: fastem follows the slow reference EM exactly."""
    X = make_blobs(300, seed=15)
    rng = np.random.default_rng(16)
    sample_weight = rng.uniform(0.1, 3.0, size=len(X))
    sample_weight[:10] = 0.0  # zero weight = row ignored
    weights, means, precisions = initial_parameters(X, covariance_type, "sklearn2")
    n_iter = 8
    fe = GaussianMixture(3, covariance_type=covariance_type, tol=0, max_iter=n_iter,
                         weights_init=weights, means_init=means,
                         precisions_init=precisions).fit(X, sample_weight=sample_weight)

    # the inverse of the precisions are the initial covariances
    params = (weights, means, ref.precisions(precisions, covariance_type))
    lower_bounds = []
    for _ in range(n_iter):
        ll, *params = ref.em_step(X, *params, covariance_type, fe.reg_covar,
                                  sample_weight=sample_weight)
        lower_bounds.append(ll)
    assert_scaled_close(fe.weights_, params[0], name="weights_")
    assert_scaled_close(fe.means_, params[1], name="means_")
    assert_scaled_close(fe.covariances_, params[2], name="covariances_")
    assert_scaled_close(fe.precisions_cholesky_,
                        ref.precisions_cholesky(params[2], covariance_type),
                        name="precisions_cholesky_")
    assert_scaled_close(fe.lower_bounds_, lower_bounds, name="lower_bounds_")

    # zero-weight rows do not matter: dropping them gives the same fit
    dropped = GaussianMixture(3, covariance_type=covariance_type, tol=0,
                              max_iter=n_iter, weights_init=weights,
                              means_init=means, precisions_init=precisions).fit(
        X[10:], sample_weight=sample_weight[10:])
    for name in FITTED_ARRAYS:
        assert_scaled_close(getattr(fe, name), getattr(dropped, name),
                            rtol=1e-10, name=name)


def test_unit_weights_equal_no_weights():
    X = make_blobs(300, seed=17)
    weights, means, precisions = initial_parameters(X, "full", "sklearn2")
    params = dict(n_components=3, tol=0, max_iter=5, weights_init=weights,
                  means_init=means, precisions_init=precisions)
    a = GaussianMixture(**params).fit(X)
    b = GaussianMixture(**params).fit(X, sample_weight=np.ones(len(X)))
    for name in FITTED_ARRAYS:
        assert_scaled_close(getattr(a, name), getattr(b, name), rtol=1e-12, name=name)
    assert a.score(X) == pytest.approx(b.score(X, sample_weight=np.ones(len(X))),
                                       rel=1e-12)
