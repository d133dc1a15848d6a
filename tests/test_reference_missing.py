"""Checks that the incomplete-data references in ``reference.py`` are right.

Without missing entries every function must reduce to the complete-data
reference; with entries missing completely at random EM must never decrease
the observed-data log-likelihood; for one normal under a monotone pattern EM
must reach the closed-form factored-likelihood MLE; imputation must keep
the observed entries and use the conditional mean; and the conditional
covariance term in the M-step must matter.
"""

import os
import sys

import numpy as np
import pytest
import scipy.stats
from numpy.testing import assert_allclose, assert_array_equal
from threadpoolctl import threadpool_limits

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as ref  # noqa: E402
from test_reference_discrete import N_CATEGORIES, N_TRIALS, random_problem  # noqa: E402

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]
FAMILIES = ["bernoulli", "binomial", "poisson", "categorical"]
EXACT = 1e-12


@pytest.fixture(autouse=True, scope="module")
def one_blas_thread():
    """The reference solves thousands of 2x2 and 3x3 systems one at a time;
    a threaded BLAS only adds synchronisation (5x slower on a busy machine)."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield


# --------------------------------------------------------------------------
# Test data
# --------------------------------------------------------------------------

def gaussian_blobs(n=60, seed=0):
    """Two correlated 3-D blobs, row weights, and a start for k=2."""
    rng = np.random.default_rng(seed)
    cov = np.array([[1.0, 0.6, 0.3], [0.6, 1.5, -0.4], [0.3, -0.4, 0.8]])
    X = np.concatenate([
        rng.multivariate_normal([0.0, 0.0, 0.0], cov, size=n // 2),
        rng.multivariate_normal([3.0, 1.0, -2.0], 0.5 * cov, size=n - n // 2),
    ])
    sample_weight = rng.uniform(0.5, 2.0, size=n)
    return X, sample_weight


def gaussian_start(covariance_type, seed=0):
    rng = np.random.default_rng(100 + seed)
    weights = np.array([0.4, 0.6])
    means = np.array([[0.5, 0.2, -0.3], [2.5, 0.8, -1.5]]) + 0.1 * rng.standard_normal((2, 3))
    full = np.array([[[1.2, 0.3, 0.1], [0.3, 1.1, -0.2], [0.1, -0.2, 0.9]],
                     [[0.8, 0.2, 0.0], [0.2, 0.9, -0.1], [0.0, -0.1, 0.7]]])
    covariances = {
        "full": full,
        "tied": full[0],
        "diag": np.stack([np.diag(c) for c in full]),
        "spherical": np.array([1.0, 0.8]),
    }[covariance_type]
    return weights, means, covariances


def mcar(X, fraction, seed):
    """``X`` as float with each entry NaN with probability ``fraction``
    (no row left without an observed entry)."""
    rng = np.random.default_rng(1000 + seed)
    X = np.array(X, dtype=np.float64)
    missing = rng.uniform(size=X.shape) < fraction
    for i in np.flatnonzero(missing.all(axis=1)):
        missing[i, rng.integers(X.shape[1])] = False
    X[missing] = np.nan
    assert missing.any()
    return X


def discrete_problem(family, seed, n=60, k=2):
    """Random data and a random start (test_reference_discrete's, two components)."""
    return random_problem(family, seed, n, k)


def family_kwargs(family):
    return {"n_trials": N_TRIALS} if family == "binomial" else {}


def family_function(name, family, missing):
    """``reference.<name with the family>``, with ``_missing`` if asked."""
    function = getattr(ref, name.format(family) + ("_missing" if missing else ""))
    kwargs = family_kwargs(family)
    return lambda *args, **more: function(*args, **more, **kwargs)


def assert_theta_close(family, a, b, rtol):
    if family == "categorical":
        for x, y in zip(a, b):
            assert_allclose(x, y, rtol=rtol, atol=0)
    else:
        assert_allclose(a, b, rtol=rtol, atol=0)


# --------------------------------------------------------------------------
# Without missing entries the incomplete-data functions are the complete ones
# --------------------------------------------------------------------------

@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_gaussian_no_missing_equals_complete_reference(covariance_type):
    X, sw = gaussian_blobs()
    weights, means, covariances = gaussian_start(covariance_type)

    log_norm, resp = ref.estep(X, weights, means, covariances, covariance_type)
    log_norm_m, resp_m, xhat, cond_cov = ref.estep_missing(
        X, weights, means, covariances, covariance_type)
    assert_allclose(log_norm_m, log_norm, rtol=EXACT, atol=EXACT)
    assert_allclose(resp_m, resp, rtol=0, atol=EXACT)
    assert_array_equal(xhat, np.broadcast_to(X[:, None, :], xhat.shape))
    assert not np.any(cond_cov)

    for reg_covar, weight in [(0.0, None), (1e-3, sw)]:
        expected = ref.m_step(X, resp, reg_covar, covariance_type, sample_weight=weight)
        got = ref.m_step_missing(xhat, cond_cov, resp, reg_covar, covariance_type,
                                 sample_weight=weight)
        for e, g in zip(expected, got):
            assert_allclose(g, e, rtol=EXACT, atol=0)

        step = ref.em_step(X, weights, means, covariances, covariance_type, reg_covar, weight)
        step_m = ref.em_step_missing(X, weights, means, covariances, covariance_type,
                                     reg_covar, weight)
        assert_allclose(step_m[0], step[0], rtol=EXACT)
        for e, g in zip(step[1:], step_m[1:]):
            assert_allclose(g, e, rtol=EXACT, atol=EXACT)

    params = (weights, means, covariances)
    (w, mu, cov), lls = ref.em_missing(X, params, 5, covariance_type, 1e-6, sample_weight=sw)
    expected_lls = []
    for _ in range(5):
        ll, weights, means, covariances = ref.em_step(
            X, weights, means, covariances, covariance_type, 1e-6, sw)
        expected_lls.append(ll)
    assert_allclose(lls, expected_lls, rtol=1e-11)
    for e, g in zip((weights, means, covariances), (w, mu, cov)):
        assert_allclose(g, e, rtol=1e-10, atol=1e-12)

    assert_array_equal(ref.impute_missing(X, *params, covariance_type), X)


@pytest.mark.parametrize("family", FAMILIES)
def test_discrete_no_missing_equals_complete_reference(family):
    X, params = discrete_problem(family, seed=3)
    sw = np.random.default_rng(7).uniform(0.5, 2.0, size=X.shape[0])
    Xf = X.astype(np.float64)

    resp, ll, stats = family_function("{}_estep", family, False)(X, params, sw)
    resp_m, ll_m, stats_m = family_function("{}_estep", family, True)(Xf, params, sw)
    assert_allclose(resp_m, resp, rtol=0, atol=EXACT)
    assert_allclose(ll_m, ll, rtol=EXACT)
    assert_allclose(stats_m["S0"], stats["S0"], rtol=EXACT)
    # Every column observed everywhere: the per-column weight is S0.
    assert_allclose(stats_m["S0_observed"], np.repeat(stats["S0"][:, None], 3, axis=1),
                    rtol=EXACT)
    if family == "categorical":
        for c, c_m in zip(stats["counts"], stats_m["counts"]):
            assert_allclose(c_m, c, rtol=EXACT, atol=EXACT)
    else:
        assert_allclose(stats_m["S1"], stats["S1"], rtol=EXACT)

    for alpha in (0.0, 0.5):
        w, theta = family_function("{}_mstep", family, False)(stats, alpha)
        w_m, theta_m = family_function("{}_mstep", family, True)(stats_m, alpha)
        assert_allclose(w_m, w, rtol=EXACT)
        assert_theta_close(family, theta_m, theta, EXACT)

        (w, theta), lls = family_function("em_{}", family, False)(X, params, 10, sw, alpha)
        (w_m, theta_m), lls_m = family_function("em_{}", family, True)(Xf, params, 10, sw, alpha)
        assert_allclose(lls_m, lls, rtol=EXACT)
        assert_allclose(w_m, w, rtol=1e-11)
        assert_theta_close(family, theta_m, theta, 1e-11)


# --------------------------------------------------------------------------
# EM never decreases the observed-data log-likelihood
# --------------------------------------------------------------------------

@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_gaussian_observed_log_likelihood_never_decreases(covariance_type):
    for seed in range(3):
        X, sw = gaussian_blobs(n=50, seed=seed)
        X = mcar(X, 0.2, seed)
        weight = sw if seed == 2 else None
        params = gaussian_start(covariance_type, seed)
        _, lls = ref.em_missing(X, params, 30, covariance_type, 0.0, sample_weight=weight)
        steps = np.diff(lls)
        assert np.all(steps >= -1e-12), (seed, steps.min())
        assert lls[-1] > lls[0] + 1e-3        # it did move


@pytest.mark.parametrize("family", FAMILIES)
def test_discrete_observed_objective_never_decreases(family):
    """With ``alpha > 0`` the objective is log-likelihood + log-prior."""
    for seed, alpha in [(0, 0.0), (1, 0.0), (2, 1.0)]:
        X, params = discrete_problem(family, seed)
        X = mcar(X, 0.2, seed)
        sw = np.random.default_rng(seed).uniform(0.5, 2.0, size=X.shape[0])
        estep = family_function("{}_estep", family, True)
        mstep = family_function("{}_mstep", family, True)
        objective = []
        for _ in range(30):
            _, ll, stats = estep(X, params, sw)
            objective.append(ll + ref.discrete_log_prior(family, params[1], alpha))
            params = mstep(stats, alpha)
        steps = np.diff(objective)
        assert np.all(steps >= -1e-9), (seed, steps.min())
        assert objective[-1] > objective[0] + 1e-3


# --------------------------------------------------------------------------
# Closed forms
# --------------------------------------------------------------------------

def monotone_data(n=400, seed=0):
    """4-D normal, blocks (0, 1) | 2 | 3 with a monotone pattern."""
    rng = np.random.default_rng(seed)
    cov = np.array([[1.0, 0.5, 0.3, 0.2],
                    [0.5, 1.2, 0.4, -0.3],
                    [0.3, 0.4, 0.9, 0.35],
                    [0.2, -0.3, 0.35, 1.1]])
    X = rng.multivariate_normal([1.0, -1.0, 0.5, 2.0], cov, size=n)
    u = rng.uniform(size=n)
    X[u < 0.45, 3] = np.nan                 # block 3 missing in ~45% of rows
    X[u < 0.25, 2] = np.nan                 # block 2 (and 3) missing in ~25%
    return X


def test_em_reaches_monotone_factored_likelihood_mle():
    X = monotone_data()
    mean, covariance = ref.monotone_normal_mle(X)

    # Start from the complete cases' moments, then iterate to convergence.
    complete = X[~np.isnan(X).any(axis=1)]
    params = (np.ones(1), complete.mean(axis=0)[None], np.cov(complete.T, bias=True)[None])
    for _ in range(500):
        _, *new = ref.em_step_missing(X, *params, "full", 0.0)
        change = max(np.max(np.abs(a - b)) for a, b in zip(new, params))
        params = tuple(new)
        if change < 1e-12:
            break
    assert change < 1e-12
    assert_allclose(params[1][0], mean, rtol=0, atol=1e-8)
    assert_allclose(params[2][0], covariance, rtol=0, atol=1e-8)

    # The MLE is a stationary point of the observed-data likelihood: a small
    # step in any direction does not increase it.
    def log_likelihood(mu, sigma):
        return ref.estep_missing(X, np.ones(1), mu[None], sigma[None], "full")[0].sum()

    best = log_likelihood(mean, covariance)
    for delta in (1e-3, -1e-3):
        assert log_likelihood(mean + delta, covariance) < best
        assert log_likelihood(mean, covariance * (1 + delta)) < best

    # The first block alone is the complete-data MLE (divisor n).
    assert_allclose(mean[:2], X[:, :2].mean(axis=0), rtol=1e-14)
    assert_allclose(covariance[:2, :2], np.cov(X[:, :2].T, bias=True), rtol=1e-12)


def test_monotone_mle_refuses_bad_patterns():
    X = monotone_data(n=40)
    bad = X.copy()
    bad[0, :] = [1.0, np.nan, 2.0, np.nan]           # a hole before an observed column
    with pytest.raises(ValueError, match="monotone"):
        ref.monotone_normal_mle(bad)
    never = X.copy()
    never[:, 3] = np.nan
    with pytest.raises(ValueError, match="never observed"):
        ref.monotone_normal_mle(never)


@pytest.mark.parametrize("n_components", [1, 2])
def test_impute_keeps_observed_and_uses_conditional_mean(n_components):
    X, _ = gaussian_blobs(n=40, seed=5)
    X = mcar(X, 0.3, 5)
    missing = np.isnan(X)
    weights, means, covariances = gaussian_start("full", seed=5)
    if n_components == 1:
        weights, means, covariances = np.ones(1), means[:1], covariances[:1]
    imputed = ref.impute_missing(X, weights, means, covariances, "full")

    # Observed entries bitwise unchanged, missing ones filled.
    assert_array_equal(imputed[~missing], X[~missing])
    assert not np.isnan(imputed).any()

    _, resp, _, _ = ref.estep_missing(X, weights, means, covariances, "full")
    for i in range(X.shape[0]):
        o, m = ~missing[i], missing[i]
        expected = np.zeros(m.sum())
        for k in range(n_components):
            mu, sigma = means[k], covariances[k]
            # mu_m + Sigma_mo Sigma_oo^-1 (x_o - mu_o), with a plain solve
            conditional = mu[m] + sigma[np.ix_(m, o)] @ np.linalg.solve(
                sigma[np.ix_(o, o)], X[i, o] - mu[o])
            expected += resp[i, k] * conditional
        assert_allclose(imputed[i, m], expected, rtol=1e-12, atol=1e-12)
    if n_components == 1:
        assert_array_equal(resp, 1.0)


def test_conditional_covariance_closed_form():
    """``C = Sigma_mm - Sigma_mo Sigma_oo^-1 Sigma_om`` in the mm block, and
    ``log N(x_o)`` equals the marginal density from scipy."""
    X, _ = gaussian_blobs(n=20, seed=6)
    X = mcar(X, 0.4, 6)
    weights, means, covariances = gaussian_start("full", seed=6)
    log_norm, _, _, cond_cov = ref.estep_missing(X, weights, means, covariances, "full")
    for i in range(X.shape[0]):
        o, m = ~np.isnan(X[i]), np.isnan(X[i])
        density = 0.0
        for k in range(2):
            sigma = covariances[k]
            expected = np.zeros((3, 3))
            expected[np.ix_(m, m)] = sigma[np.ix_(m, m)] - sigma[np.ix_(m, o)] @ np.linalg.solve(
                sigma[np.ix_(o, o)], sigma[np.ix_(o, m)])
            assert_allclose(cond_cov[i, k], expected, rtol=1e-12, atol=1e-14)
            density += weights[k] * scipy.stats.multivariate_normal(
                means[k][o], sigma[np.ix_(o, o)]).pdf(X[i, o])
        assert_allclose(log_norm[i], np.log(density), rtol=1e-12)


def test_dropping_conditional_covariance_shrinks_the_covariance():
    """Impute-then-fit leaves out ``C`` and underestimates the covariance;
    the missing-data M-step does not."""
    rng = np.random.default_rng(8)
    true_cov = np.array([[1.0, 0.7, 0.5], [0.7, 1.0, 0.6], [0.5, 0.6, 1.0]])
    X = mcar(rng.multivariate_normal(np.zeros(3), true_cov, size=300), 0.3, 8)
    params = (np.ones(1), np.zeros((1, 3)), np.eye(3)[None])
    em_params, _ = ref.em_missing(X, params, 40, "full", 0.0)

    naive = params
    for _ in range(40):
        _, resp, xhat, cond_cov = ref.estep_missing(X, *naive, "full")
        naive = ref.m_step_missing(xhat, np.zeros_like(cond_cov), resp, 0.0, "full")

    em_var = np.diag(em_params[2][0])
    naive_var = np.diag(naive[2][0])
    assert_allclose(em_var, np.diag(true_cov), rtol=0.2)
    assert np.all(naive_var < 0.9 * em_var), naive_var / em_var

    # At the same E-step the two M-steps differ by exactly the mean C.
    _, resp, xhat, cond_cov = ref.estep_missing(X, *em_params, "full")
    with_c = ref.m_step_missing(xhat, cond_cov, resp, 0.0, "full")[2][0]
    without_c = ref.m_step_missing(xhat, np.zeros_like(cond_cov), resp, 0.0, "full")[2][0]
    assert_allclose(with_c - without_c, cond_cov[:, 0].mean(axis=0), atol=1e-12)
    assert np.all(np.linalg.eigvalsh(with_c - without_c) > 1e-3)


# --------------------------------------------------------------------------
# Per-column statistics and refusals
# --------------------------------------------------------------------------

def test_discrete_statistics_skip_missing_entries():
    """A missing entry contributes neither to S1 nor to its column's weight,
    and its factor in the density is one."""
    X = np.array([[1.0, 0.0], [np.nan, 1.0], [0.0, np.nan]])
    params = (np.array([0.3, 0.7]), np.array([[0.2, 0.6], [0.9, 0.4]]))
    resp, ll, stats = ref.bernoulli_estep_missing(X, params)
    w, p = params
    expected_joint = np.array([
        w * p[:, 0] * (1 - p[:, 1]),
        w * p[:, 1],
        w * (1 - p[:, 0]),
    ])
    assert_allclose(ll, np.sum(np.log(expected_joint.sum(axis=1))), rtol=1e-14)
    assert_allclose(resp, expected_joint / expected_joint.sum(axis=1, keepdims=True), rtol=1e-14)
    assert_allclose(stats["S0_observed"][:, 0], resp[0] + resp[2], rtol=1e-14)
    assert_allclose(stats["S0_observed"][:, 1], resp[0] + resp[1], rtol=1e-14)
    assert_allclose(stats["S1"][:, 0], resp[0], rtol=1e-14)
    assert_allclose(stats["S1"][:, 1], resp[1], rtol=1e-14)
    _, p_new = ref.bernoulli_mstep_missing(stats)
    assert_allclose(p_new[:, 0], resp[0] / (resp[0] + resp[2]), rtol=1e-14)


def test_all_missing_row_raises():
    X, _ = gaussian_blobs(n=10)
    X[3] = np.nan
    params = gaussian_start("full")
    with pytest.raises(ValueError, match="every entry missing"):
        ref.estep_missing(X, *params, "full")
    with pytest.raises(ValueError, match="every entry missing"):
        ref.em_missing(X, params, 1, "full", 0.0)
    with pytest.raises(ValueError, match="every entry missing"):
        ref.impute_missing(X, *params, "full")
    with pytest.raises(ValueError, match="every entry missing"):
        ref.monotone_normal_mle(X)
    Xd, dparams = discrete_problem("poisson", seed=0, n=10)
    Xd = Xd.astype(float)
    Xd[2] = np.nan
    with pytest.raises(ValueError, match="every entry missing"):
        ref.poisson_estep_missing(Xd, dparams)
