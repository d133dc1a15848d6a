"""Checks that the slow reference implementation in ``reference.py`` is right.

The reference is compared with scikit-learn's private helpers, with closed
forms, and with itself under transformations that must not change the
answer (a different shift for the sufficient statistics, a weight of two
versus a duplicated row).
"""

import os
import sys

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.mixture import GaussianMixture as SkGaussianMixture
from sklearn.mixture._gaussian_mixture import (
    _compute_precision_cholesky,
    _estimate_gaussian_parameters,
    _estimate_log_gaussian_prob,
)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as ref  # noqa: E402

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]
RTOL = 1e-10


# --------------------------------------------------------------------------
# Test data
# --------------------------------------------------------------------------

def make_blobs(n_per_component=(80, 60, 40), seed=0):
    """Three 3-D Gaussian blobs with different, correlated covariances."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0, 0.0], [4.0, 1.0, -2.0], [1.0, 5.0, 3.0]])
    parts = []
    for centre, n in zip(centres, n_per_component):
        A = rng.normal(size=(3, 3))
        parts.append(centre + rng.normal(size=(n, 3)) @ (0.3 * np.eye(3) + 0.4 * A))
    X = np.vstack(parts)
    return X[rng.permutation(len(X))]


def random_resp(n_samples, n_components, seed=1):
    """Random rows on the probability simplex."""
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.ones(n_components), size=n_samples)


def random_params(covariance_type, n_components=3, n_features=3, seed=2):
    """Random but valid mixture parameters of the given type."""
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.ones(n_components) * 3)
    means = rng.normal(scale=2.0, size=(n_components, n_features))

    def spd():
        A = rng.normal(size=(n_features, n_features))
        return A @ A.T + 0.5 * np.eye(n_features)

    if covariance_type == "full":
        covariances = np.stack([spd() for _ in range(n_components)])
    elif covariance_type == "tied":
        covariances = spd()
    elif covariance_type == "diag":
        covariances = rng.uniform(0.3, 3.0, size=(n_components, n_features))
    else:
        covariances = rng.uniform(0.3, 3.0, size=n_components)
    return weights, means, covariances


def scaled_allclose(actual, desired, rtol=RTOL):
    """``assert_allclose`` with an absolute tolerance scaled to ``desired``."""
    desired = np.asarray(desired, dtype=np.float64)
    scale = max(float(np.max(np.abs(desired))), 1e-300) if desired.size else 1.0
    assert_allclose(actual, desired, rtol=rtol, atol=rtol * scale)


@pytest.fixture(scope="module")
def X():
    return make_blobs()


# --------------------------------------------------------------------------
# Densities and precision factors
# --------------------------------------------------------------------------

def test_log_gaussian_prob_closed_form_1d():
    """A 1-D component must give the textbook normal log-density."""
    X = np.array([[-1.0], [0.0], [2.5]])
    means = np.array([[0.5], [-2.0]])
    variances = np.array([2.0, 0.25])
    expected = np.empty((3, 2))
    for k in range(2):
        expected[:, k] = (
            -0.5 * np.log(2 * np.pi * variances[k])
            - 0.5 * (X[:, 0] - means[k, 0]) ** 2 / variances[k]
        )
    for covariance_type, cov in [
        ("full", variances.reshape(2, 1, 1)),
        ("diag", variances.reshape(2, 1)),
        ("spherical", variances),
    ]:
        scaled_allclose(ref.log_gaussian_prob(X, means, cov, covariance_type), expected)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_log_gaussian_prob_matches_sklearn(X, covariance_type):
    _, means, covariances = random_params(covariance_type)
    prec_chol = _compute_precision_cholesky(covariances, covariance_type)
    expected = _estimate_log_gaussian_prob(X, means, prec_chol, covariance_type)
    actual = ref.log_gaussian_prob(X, means, covariances, covariance_type)
    assert actual.shape == (X.shape[0], 3)
    scaled_allclose(actual, expected)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_precisions_cholesky_matches_sklearn(covariance_type):
    _, _, covariances = random_params(covariance_type)
    expected = _compute_precision_cholesky(covariances, covariance_type)
    actual = ref.precisions_cholesky(covariances, covariance_type)
    assert actual.shape == np.shape(covariances)
    scaled_allclose(actual, expected)


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
def test_precisions_cholesky_is_upper_factor_of_precision(covariance_type):
    _, _, covariances = random_params(covariance_type)
    U = ref.precisions_cholesky(covariances, covariance_type)
    covs = covariances if covariance_type == "full" else covariances[np.newaxis]
    Us = U if covariance_type == "full" else U[np.newaxis]
    for sigma, upper in zip(covs, Us):
        assert_allclose(np.tril(upper, -1), 0.0, atol=0)
        assert np.all(np.diag(upper) > 0)
        scaled_allclose(upper @ upper.T, np.linalg.inv(sigma))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_covariances_from_precisions_cholesky_round_trip(covariance_type):
    _, _, covariances = random_params(covariance_type)
    U = ref.precisions_cholesky(covariances, covariance_type)
    back = ref.covariances_from_precisions_cholesky(U, covariance_type)
    assert back.shape == np.shape(covariances)
    scaled_allclose(back, covariances)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_precisions_match_sklearn_attribute(X, covariance_type):
    """``precisions`` equals scikit-learn's fitted ``precisions_``."""
    gm = SkGaussianMixture(3, covariance_type=covariance_type, random_state=0,
                           max_iter=5, tol=0)
    with pytest.warns(Warning):  # ConvergenceWarning, tol=0 never converges
        gm.fit(X)
    scaled_allclose(ref.precisions(gm.covariances_, covariance_type), gm.precisions_,
                    rtol=1e-9)


# --------------------------------------------------------------------------
# E-step
# --------------------------------------------------------------------------

@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_estep_matches_sklearn(X, covariance_type):
    weights, means, covariances = random_params(covariance_type)
    gm = SkGaussianMixture(3, covariance_type=covariance_type)
    gm.weights_ = weights
    gm.means_ = means
    gm.precisions_cholesky_ = _compute_precision_cholesky(covariances, covariance_type)
    expected_log_norm, expected_log_resp = gm._estimate_log_prob_resp(X)

    log_norm, resp = ref.estep(X, weights, means, covariances, covariance_type)
    scaled_allclose(log_norm, expected_log_norm)
    assert_allclose(resp, np.exp(expected_log_resp), rtol=RTOL, atol=1e-13)
    assert_allclose(resp.sum(axis=1), 1.0, rtol=1e-13)


def test_estep_direct_sum_and_far_points():
    """log_norm equals log(sum w N) directly, and far points stay finite."""
    weights, means, covariances = random_params("full")
    rng = np.random.default_rng(5)
    X = rng.normal(size=(20, 3))
    log_norm, resp = ref.estep(X, weights, means, covariances, "full")
    densities = np.exp(ref.log_gaussian_prob(X, means, covariances, "full"))
    scaled_allclose(log_norm, np.log(densities @ weights))
    scaled_allclose(resp, weights * densities / (densities @ weights)[:, None])

    far = np.full((1, 3), 1e3)  # every density underflows to 0 in linear space
    log_norm, resp = ref.estep(far, weights, means, covariances, "full")
    assert np.all(np.isfinite(log_norm)) and log_norm[0] < -1e4
    assert np.all(np.isfinite(resp))
    assert_allclose(resp.sum(axis=1), 1.0)


# --------------------------------------------------------------------------
# M-step and sufficient statistics
# --------------------------------------------------------------------------

@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("reg_covar", [0.0, 1e-3])
def test_m_step_matches_sklearn(X, covariance_type, reg_covar):
    resp = random_resp(X.shape[0], 3)
    nk, means, covariances = _estimate_gaussian_parameters(
        X, resp, reg_covar, covariance_type
    )
    w, mu, cov = ref.m_step(X, resp, reg_covar, covariance_type)
    scaled_allclose(w, nk / nk.sum())
    scaled_allclose(mu, means)
    # scikit-learn's tied/diag/spherical use E[x^2] - mu^2, which loses a few
    # digits to cancellation; the reference centres the data first.
    scaled_allclose(cov, covariances, rtol=1e-9)


def _moments_from_stats(stats, shift, covariance_type, n_features):
    """Mean and unregularised covariance recovered from shifted statistics."""
    S0, S1, S2 = stats["S0"], stats["S1"], stats["S2"]
    offset = S1 / S0[:, None]  # mean - shift
    means = shift + offset
    if covariance_type == "full":
        cov = S2 / S0[:, None, None] - np.einsum("ki,kj->kij", offset, offset)
    elif covariance_type == "tied":
        cov = (S2 - np.einsum("k,ki,kj->ij", S0, offset, offset)) / S0.sum()
    elif covariance_type == "diag":
        cov = S2 / S0[:, None] - offset**2
    else:
        cov = (S2 / S0 - np.sum(offset**2, axis=1)) / n_features
    return means, cov


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_sufficient_stats_shift_invariance(X, covariance_type):
    """Two shifts give the same mean/covariance, equal to the m_step one."""
    rng = np.random.default_rng(3)
    resp = random_resp(X.shape[0], 3)
    sample_weight = rng.uniform(0.2, 3.0, size=X.shape[0])
    reg = 1e-4
    _, expected_means, expected_cov = ref.m_step(
        X, resp, reg, covariance_type, sample_weight=sample_weight
    )
    if covariance_type == "tied":
        shifts = [np.zeros((3, 3)), np.tile(X.mean(axis=0) + 7.0, (3, 1))]
    else:
        shifts = [np.zeros((3, 3)), rng.normal(scale=5.0, size=(3, 3))]

    results = []
    for shift in shifts:
        stats = ref.sufficient_stats(X, resp, shift, covariance_type, sample_weight)
        assert stats["weight"] == pytest.approx(sample_weight.sum(), rel=1e-14)
        means, cov = _moments_from_stats(stats, shift, covariance_type, 3)
        cov = cov + (reg * np.eye(3) if covariance_type in ("full", "tied") else reg)
        results.append((means, cov))
        scaled_allclose(means, expected_means, rtol=1e-9)
        scaled_allclose(cov, expected_cov, rtol=1e-9)
    # the raw statistics really depend on the shift (the test is not vacuous)
    assert not np.allclose(results[0][0] - shifts[0], results[1][0] - shifts[1])


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_sufficient_stats_shapes_and_zero_shift_definition(X, covariance_type):
    resp = random_resp(X.shape[0], 3)
    stats = ref.sufficient_stats(X, resp, np.zeros((3, 3)), covariance_type)
    expected_S2_shape = {"full": (3, 3, 3), "tied": (3, 3), "diag": (3, 3),
                         "spherical": (3,)}[covariance_type]
    assert stats["S0"].shape == (3,)
    assert stats["S1"].shape == (3, 3)
    assert stats["S2"].shape == expected_S2_shape
    assert stats["weight"] == X.shape[0]
    scaled_allclose(stats["S0"], resp.sum(axis=0))
    scaled_allclose(stats["S1"], resp.T @ X)
    full = np.einsum("ik,ia,ib->kab", resp, X, X)
    expected_S2 = {
        "full": full,
        "tied": X.T @ X,
        "diag": np.einsum("kaa->ka", full),
        "spherical": np.einsum("kaa->k", full),
    }[covariance_type]
    scaled_allclose(stats["S2"], expected_S2)


def test_sufficient_stats_tied_rejects_unequal_shifts(X):
    resp = random_resp(X.shape[0], 3)
    shift = np.arange(9.0).reshape(3, 3)
    with pytest.raises(AssertionError):
        ref.sufficient_stats(X, resp, shift, "tied")


# --------------------------------------------------------------------------
# Sample weights
# --------------------------------------------------------------------------

@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_weight_two_equals_duplicated_row(X, covariance_type):
    doubled = np.array([0, 5, 17, 42])
    sample_weight = np.ones(X.shape[0])
    sample_weight[doubled] = 2.0
    X_dup = np.vstack([X, X[doubled]])
    weights, means, covariances = random_params(covariance_type)

    ll_w, *params_w = ref.em_step(X, weights, means, covariances, covariance_type,
                                  1e-6, sample_weight=sample_weight)
    ll_d, *params_d = ref.em_step(X_dup, weights, means, covariances,
                                  covariance_type, 1e-6)
    assert ll_w == pytest.approx(ll_d, rel=1e-12)
    for a, b in zip(params_w, params_d):
        scaled_allclose(a, b, rtol=1e-12)

    _, resp = ref.estep(X, weights, means, covariances, covariance_type)
    _, resp_dup = ref.estep(X_dup, weights, means, covariances, covariance_type)
    shift = np.tile(X.mean(axis=0), (3, 1))
    stats_w = ref.sufficient_stats(X, resp, shift, covariance_type, sample_weight)
    stats_d = ref.sufficient_stats(X_dup, resp_dup, shift, covariance_type)
    for key in ("S0", "S1", "S2", "weight"):
        scaled_allclose(stats_w[key], stats_d[key], rtol=1e-12)


def test_unit_weights_equal_no_weights(X):
    resp = random_resp(X.shape[0], 3)
    for covariance_type in COVARIANCE_TYPES:
        a = ref.m_step(X, resp, 1e-6, covariance_type)
        b = ref.m_step(X, resp, 1e-6, covariance_type, sample_weight=np.ones(len(X)))
        for x, y in zip(a, b):
            assert_allclose(x, y, rtol=0, atol=0)


def test_weights_scale_invariance(X):
    """Multiplying every weight by a constant changes nothing but ``weight``."""
    resp = random_resp(X.shape[0], 3)
    rng = np.random.default_rng(4)
    sample_weight = rng.uniform(0.5, 2.0, size=X.shape[0])
    a = ref.m_step(X, resp, 1e-6, "full", sample_weight=sample_weight)
    b = ref.m_step(X, resp, 1e-6, "full", sample_weight=3.0 * sample_weight)
    for x, y in zip(a, b):
        scaled_allclose(x, y, rtol=1e-12)


# --------------------------------------------------------------------------
# Whole EM iterations, parameter counts and information criteria
# --------------------------------------------------------------------------

@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_em_iterations_match_sklearn_fit(X, covariance_type):
    """Iterating ``em_step`` reproduces scikit-learn's fit from the same init."""
    weights, means, covariances = random_params(covariance_type, seed=7)
    # start near the data so EM is well behaved
    means = means + X.mean(axis=0)
    n_iter = 6
    gm = SkGaussianMixture(
        3, covariance_type=covariance_type, tol=0, max_iter=n_iter,
        weights_init=weights, means_init=means,
        precisions_init=ref.precisions(covariances, covariance_type),
    )
    with pytest.warns(Warning):  # ConvergenceWarning
        gm.fit(X)

    lower_bounds = []
    params = (weights, means, covariances)
    for _ in range(n_iter):
        ll, *params = ref.em_step(X, *params, covariance_type, gm.reg_covar)
        lower_bounds.append(ll)
    assert_allclose(lower_bounds, gm.lower_bounds_, rtol=1e-9)
    assert lower_bounds[-1] == pytest.approx(gm.lower_bound_, rel=1e-9)
    scaled_allclose(params[0], gm.weights_, rtol=1e-8)
    scaled_allclose(params[1], gm.means_, rtol=1e-8)
    scaled_allclose(params[2], gm.covariances_, rtol=1e-8)
    # EM never decreases the likelihood
    assert np.all(np.diff(lower_bounds) > -1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("n_components, n_features", [(1, 1), (3, 2), (4, 5)])
def test_n_parameters_bic_aic_match_sklearn(covariance_type, n_components, n_features):
    rng = np.random.default_rng(n_components * 10 + n_features)
    X = rng.normal(size=(200, n_features))
    X[:100] += 3.0
    gm = SkGaussianMixture(n_components, covariance_type=covariance_type,
                           random_state=0).fit(X)
    p = ref.n_parameters(covariance_type, n_components, n_features)
    assert p == gm._n_parameters()

    ll_sum = X.shape[0] * ref.mean_log_likelihood(
        X, gm.weights_, gm.means_, gm.covariances_, covariance_type
    )
    assert ll_sum == pytest.approx(gm.score(X) * X.shape[0], rel=1e-10)
    assert ref.bic(ll_sum, p, X.shape[0]) == pytest.approx(gm.bic(X), rel=1e-10)
    assert ref.aic(ll_sum, p) == pytest.approx(gm.aic(X), rel=1e-10)


def test_n_parameters_by_hand():
    # k=2, d=3: means 6, weights 1, covariances full 12 / tied 6 / diag 6 / sph 2
    assert ref.n_parameters("full", 2, 3) == 19
    assert ref.n_parameters("tied", 2, 3) == 13
    assert ref.n_parameters("diag", 2, 3) == 13
    assert ref.n_parameters("spherical", 2, 3) == 9
