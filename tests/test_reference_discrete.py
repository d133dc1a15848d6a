"""Checks that the discrete-family references in ``reference.py`` are right.

They must reproduce published numbers (the two coins of Do & Batzoglou, the
Poisson mixture of Hasselblad's deaths data, the latent class fits of
poLCA's ``carcinoma`` and ``gss82``), agree with ``scipy.stats`` pmfs, treat
a sample weight as repeated rows, and never decrease the log-likelihood.
"""

import os
import sys

import numpy as np
import pytest
import scipy.stats
from numpy.testing import assert_allclose

from fastem.datasets import load_carcinoma, load_gss82

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as ref  # noqa: E402

FAMILIES = ["bernoulli", "binomial", "poisson", "multinomial", "categorical"]
N_TRIALS = np.array([3, 5, 8])
N_CATEGORIES = [2, 3, 5]


def em(family, X, params, n_iter, **kwargs):
    """``reference.em_<family>``, with the test's ``n_trials`` for Binomial."""
    if family == "binomial":
        kwargs.setdefault("n_trials", N_TRIALS)
    return getattr(ref, "em_" + family)(X, params, n_iter, **kwargs)


def random_problem(family, seed, n=60, k=3):
    """Random data (from no particular mixture) and a random start."""
    rng = np.random.default_rng(seed)
    d = 3
    weights = rng.dirichlet(np.ones(k))
    if family == "bernoulli":
        return rng.integers(0, 2, size=(n, d)), (weights, rng.uniform(0.1, 0.9, (k, d)))
    if family == "binomial":
        return rng.binomial(N_TRIALS, 0.4, size=(n, d)), (weights, rng.uniform(0.1, 0.9, (k, d)))
    if family == "poisson":
        return rng.poisson([0.5, 3.0, 10.0], size=(n, d)), (weights, rng.uniform(0.5, 8, (k, d)))
    if family == "multinomial":
        return (rng.multinomial(12, [0.2, 0.3, 0.5], size=n),
                (weights, rng.dirichlet(np.ones(d), size=k)))
    X = np.stack([rng.integers(0, c, size=n) for c in N_CATEGORIES], axis=1)
    return X, (weights, [rng.dirichlet(np.ones(c), size=k) for c in N_CATEGORIES])


# --------------------------------------------------------------------------
# Published numbers
# --------------------------------------------------------------------------

# Do, C. B. and Batzoglou, S. (2008), "What is the expectation maximization
# algorithm?", Nature Biotechnology 26, 897-899: five sets of 10 tosses.
COIN_HEADS = np.array([[5], [9], [8], [4], [7]])
COIN_START = (np.array([0.5, 0.5]), np.array([[0.6], [0.5]]))


def test_two_coins_fixed_weights():
    """The paper's figure: coin chosen at random, 10 iterations."""
    (weights, p), _ = ref.em_binomial(COIN_HEADS, COIN_START, 10, fixed_weights=True,
                                      n_trials=10)
    assert_allclose(p.ravel(), [0.7967, 0.5197], atol=5e-5)
    assert_allclose(weights, [0.5, 0.5])


def test_two_coins_learned_weights():
    """The same 10 iterations with the weights learned too (issue 15's numbers)."""
    (weights, p), _ = ref.em_binomial(COIN_HEADS, COIN_START, 10, n_trials=10)
    assert_allclose(p.ravel(), [0.7899, 0.5089], atol=5e-5)
    # 0.5376 is the weight of the first coin (started at 0.6, ends at 0.7899).
    assert_allclose(weights, [0.5376, 0.4624], atol=5e-5)


# Hasselblad, V. (1969), Technometrics 11, 431-444: deaths of women over 80
# per day in The Times, 1910-1912 (McLachlan & Krishnan, The EM Algorithm and
# Extensions, section 1.4.3, give the two-component Poisson MLE).
DEATHS = np.arange(10)
DAYS = np.array([162, 267, 271, 185, 111, 61, 27, 8, 3, 1])


def test_hasselblad_poisson_weighted_equals_expanded():
    start = (np.array([0.5, 0.5]), np.array([[1.0], [3.0]]))
    grouped, grouped_lls = ref.em_poisson(DEATHS[:, None], start, 2500, sample_weight=DAYS)
    expanded, expanded_lls = ref.em_poisson(np.repeat(DEATHS, DAYS)[:, None], start, 2500)
    assert DAYS.sum() == 1096
    for (weights, rates), lls in [(grouped, grouped_lls), (expanded, expanded_lls)]:
        assert_allclose(weights[0], 0.3599, atol=5e-5)
        assert_allclose(rates.ravel(), [1.2561, 2.6634], atol=5e-5)
        assert_allclose(lls[-1] * 1096, -1989.946, atol=5e-4)
    assert_allclose(grouped_lls, expanded_lls, rtol=1e-12)
    assert_allclose(grouped[1], expanded[1], rtol=1e-10)


def best_of_starts(family, X, k, n_starts, n_iter, seed=0, sample_weight=None):
    """Highest final mean log-likelihood over random starts."""
    rng = np.random.default_rng(seed)
    n_categories = X.max(axis=0) + 1
    best = -np.inf
    for _ in range(n_starts):
        weights = rng.dirichlet(np.ones(k))
        if family == "bernoulli":
            theta = rng.uniform(0.1, 0.9, size=(k, X.shape[1]))
        else:
            theta = [rng.dirichlet(np.ones(c), size=k) for c in n_categories]
        params, _ = em(family, X, (weights, theta), n_iter, sample_weight=sample_weight)
        # One more E-step: the log-likelihood of the final parameters.
        _, final = em(family, X, params, 1, sample_weight=sample_weight)
        best = max(best, final[0])
    return best


@pytest.mark.parametrize("family", ["bernoulli", "categorical"])
@pytest.mark.parametrize("k, published", [(2, -317.2568), (3, -293.705)])
def test_carcinoma_latent_classes(family, k, published):
    """poLCA's documented maxima (Agresti 2002, tables 13.2 and 13.3)."""
    X, columns = load_carcinoma()
    assert X.shape == (118, 7) and columns == list("ABCDEFG")
    assert len(np.unique(X, axis=0)) == 20
    X = X - 1
    best = best_of_starts(family, X, k, n_starts=3, n_iter=300)
    decimals = len(str(published).split(".")[1])
    assert round(best * 118, decimals) == published


def test_gss82_latent_classes():
    """poLCA's documented 3-class maximum -2754.545 (and 2-class -2783.268).

    Fitted on the 33 distinct patterns weighted by their counts.  Of 20 random
    Dirichlet(1) starts (seed 0, 3000 iterations) 10 reach -2754.545; the
    others stop at -2755.617, -2755.739, -2762.005 or -2762.231.
    """
    X, columns = load_gss82()
    assert X.shape == (1202, 4)
    assert columns == ["PURPOSE", "ACCURACY", "UNDERSTA", "COOPERAT"]
    patterns, counts = np.unique(X - 1, axis=0, return_counts=True)
    assert len(patterns) == 33
    best2 = best_of_starts("categorical", patterns, 2, 2, 300, sample_weight=counts)
    assert round(best2 * 1202, 3) == -2783.268
    best3 = best_of_starts("categorical", patterns, 3, 4, 800, sample_weight=counts)
    assert round(best3 * 1202, 3) == -2754.545


# --------------------------------------------------------------------------
# Agreement with scipy.stats and with repeated rows
# --------------------------------------------------------------------------

def scipy_log_pmf(family, X, theta_k):
    """``log p(x_i | k)`` summed over columns, by scipy.stats."""
    if family == "bernoulli":
        return scipy.stats.bernoulli.logpmf(X, theta_k).sum(axis=1)
    if family == "binomial":
        return scipy.stats.binom.logpmf(X, N_TRIALS, theta_k).sum(axis=1)
    if family == "poisson":
        return scipy.stats.poisson.logpmf(X, theta_k).sum(axis=1)
    if family == "multinomial":
        return scipy.stats.multinomial.logpmf(X, X.sum(axis=1), theta_k)
    return sum(np.log(a[X[:, j]]) for j, a in enumerate(theta_k))


@pytest.mark.parametrize("family", FAMILIES)
def test_log_joint_matches_scipy(family):
    X, (weights, theta) = random_problem(family, seed=1)
    kwargs = {"n_trials": N_TRIALS} if family == "binomial" else {}
    log_joint = getattr(ref, family + "_log_joint")(X, (weights, theta), **kwargs)
    assert log_joint.shape == (X.shape[0], len(weights))
    for k in range(len(weights)):
        theta_k = [a[k] for a in theta] if family == "categorical" else theta[k]
        expected = np.log(weights[k]) + scipy_log_pmf(family, X, theta_k)
        assert_allclose(log_joint[:, k], expected, rtol=1e-12)


@pytest.mark.parametrize("family", FAMILIES)
def test_weight_two_equals_duplicated_row(family):
    X, params = random_problem(family, seed=2, n=20)
    sample_weight = np.ones(len(X))
    sample_weight[:5] = 2.0
    weighted = em(family, X, params, 5, sample_weight=sample_weight, alpha=0.5)
    repeated = em(family, np.concatenate([X, X[:5]]), params, 5, alpha=0.5)
    assert_allclose(weighted[1], repeated[1], rtol=1e-12)
    assert_allclose(weighted[0][0], repeated[0][0], rtol=1e-12)
    for theta_w, theta_r in zip(weighted[0][1], repeated[0][1]):
        assert_allclose(theta_w, theta_r, rtol=1e-12)


# --------------------------------------------------------------------------
# EM itself
# --------------------------------------------------------------------------

@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("alpha", [0.0, 1.0])
@pytest.mark.parametrize("fixed_weights", [False, True])
def test_objective_never_decreases(family, weighted, alpha, fixed_weights):
    """25 iterations from a random start: the log-likelihood (alpha = 0), or
    the log-likelihood plus ``discrete_log_prior`` (alpha > 0), never drops."""
    X, params = random_problem(family, seed=3)
    sample_weight = np.random.default_rng(4).uniform(0.2, 3.0, len(X)) if weighted else None
    total_weight = len(X) if sample_weight is None else sample_weight.sum()
    objective = []
    for _ in range(25):
        theta = params[1]
        params, (mean_ll,) = em(family, X, params, 1, sample_weight=sample_weight,
                                alpha=alpha, fixed_weights=fixed_weights)
        objective.append(mean_ll * total_weight + ref.discrete_log_prior(family, theta, alpha))
    assert np.all(np.isfinite(objective))
    assert np.all(np.diff(objective) >= -1e-9 * np.abs(objective[:-1]))
    assert np.diff(objective)[0] > 0


def test_em_returns_lower_bounds_before_each_m_step():
    """lower_bounds_[i] is the mean log-likelihood of the parameters at the
    start of iteration i (scikit-learn's convention)."""
    X, params = random_problem("poisson", seed=5)
    after_three, lls = ref.em_poisson(X, params, 3)
    _, total, _ = ref.poisson_estep(X, params)
    assert_allclose(lls[0], total / len(X), rtol=1e-14)
    _, (next_ll,) = ref.em_poisson(X, after_three, 1)
    _, more = ref.em_poisson(X, params, 4)
    assert_allclose(more, lls + [next_ll], rtol=1e-14)


def test_m_step_formulas():
    """alpha and the clip exactly as specified, on hand-made statistics."""
    S0 = np.array([4.0, 0.0])
    S1 = np.array([[4.0, 1.0], [0.0, 0.0]])
    stats = {"S0": S0, "S1": S1}
    with np.errstate(invalid="ignore"):  # 0 / 0 for the empty component
        weights, p = ref.bernoulli_mstep(stats, alpha=0.0)
        _, rates = ref.poisson_mstep(stats, alpha=0.0)
    assert_allclose(weights, [1.0, 0.0])
    assert_allclose(p[0], [1 - ref.PROB_FLOOR, 0.25])
    assert np.all(np.isnan(p[1])) and np.all(np.isnan(rates[1]))
    assert_allclose(rates[0], [1.0, 0.25])
    _, p = ref.bernoulli_mstep(stats, alpha=1.0)
    assert_allclose(p, [[5 / 6, 2 / 6], [0.5, 0.5]])
    _, p = ref.binomial_mstep(stats, alpha=1.0, n_trials=[2, 3])
    assert_allclose(p, [[5 / 10, 2 / 14], [0.5, 0.5]])
    _, p = ref.multinomial_mstep(stats, alpha=1.0)
    assert_allclose(p, [[5 / 7, 2 / 7], [0.5, 0.5]])
    _, rates = ref.poisson_mstep({"S0": np.array([4.0]), "S1": np.array([[0.0]])})
    assert_allclose(rates, [[ref.RATE_FLOOR]])
    _, rates = ref.poisson_mstep(stats, alpha=2.0)
    assert_allclose(rates, [[1.0, 0.5], [1.0, 1.0]])
    counts = [np.array([[3.0, 1.0, 0.0], [0.0, 0.0, 0.0]])]
    weights, (a,) = ref.categorical_mstep({"S0": np.array([4.0, 0.0]), "counts": counts},
                                          alpha=1.0)
    assert_allclose(a, [[4 / 7, 2 / 7, 1 / 7], [1 / 3, 1 / 3, 1 / 3]])
    assert_allclose(weights, [1.0, 0.0])
