"""CategoricalMixture (latent class analysis) against tests/reference.py,
poLCA's published maxima, and its coding of DataFrames and strings."""

import os
import sys

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import fastem
from fastem.datasets import load_carcinoma, load_gss82

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as ref

N_CATEGORIES = [2, 3, 5]


def problem(seed, n=150, k=3):
    rng = np.random.default_rng(seed)
    X = np.stack([rng.integers(0, c, size=n) for c in N_CATEGORIES], axis=1)
    return X, (rng.dirichlet(np.full(k, 5.0)),
               [rng.dirichlet(np.full(c, 5.0), size=k) for c in N_CATEGORIES])


def model(params, **kwargs):
    weights, theta = params
    return fastem.CategoricalMixture(len(weights), weights_init=weights,
                                     probabilities_init=theta, **kwargs)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("n_iter", [1, 25])
@pytest.mark.parametrize("options", [{}, {"alpha": 0.5}, {"fixed_weights": True},
                                     {"weighted": True}])
def test_matches_reference(n_iter, options):
    X, params = problem(3)
    options = dict(options)
    sw = np.random.default_rng(4).uniform(0.2, 3.0, len(X)) if options.pop("weighted", 0) \
        else None
    m = model(params, max_iter=n_iter, tol=0, **options).fit(X, sample_weight=sw)
    (weights, theta), lls = ref.em_categorical(X, params, n_iter, sample_weight=sw, **options)
    assert m.n_iter_ == n_iter and m.n_reseeds_ == 0
    assert_allclose(m.weights_, weights, rtol=1e-10)
    for got, want in zip(m.probabilities_, theta):
        assert_allclose(got, want, rtol=1e-10)
    assert_allclose(m.lower_bounds_, lls, rtol=1e-10)
    assert_array_equal(m.n_categories_, N_CATEGORIES)


def test_score_samples_and_parameters():
    X, params = problem(5, k=2)
    m = model(params, max_iter=3).fit(X)
    log_joint = ref.categorical_log_joint(X, (m.weights_, m.probabilities_))
    expected = np.logaddexp.reduce(log_joint, axis=1)
    assert_allclose(m.score_samples(X), expected, rtol=1e-12)
    assert_allclose(m.predict_proba(X), np.exp(log_joint - expected[:, None]), rtol=1e-10)
    p = 2 * (1 + 2 + 4) + 1
    assert m._n_parameters() == p
    assert_allclose(m.bic(X), -2 * expected.sum() + p * np.log(len(X)), rtol=1e-12)


@pytest.mark.parametrize("k, published", [(2, -317.2568), (3, -293.705)])
def test_carcinoma(k, published):
    X, _ = load_carcinoma()
    m = fastem.CategoricalMixture(k, n_init=10, tol=1e-10, max_iter=2000, random_state=0)
    m.fit(X - 1)
    decimals = len(str(published).split(".")[1])
    assert round(m.score(X - 1) * 118, decimals) == published


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_gss82_kmeans_start_reaches_the_published_optimum(seed):
    """poLCA's 3-class maximum -2754.545; plain k-means starts stall at -2754.84."""
    X, _ = load_gss82()
    m = fastem.CategoricalMixture(3, n_init=10, tol=1e-10, max_iter=3000, random_state=seed)
    m.fit(X - 1)
    assert round(m.score(X - 1) * 1202, 3) == -2754.545


def test_gss82_patterns_with_weights_equal_rows():
    X, _ = load_gss82()
    X = X - 1
    patterns, counts = np.unique(X, axis=0, return_counts=True)
    start = problem(0, k=3)[1][0], [np.full((3, c), 1.0 / c) + np.linspace(-.01, .01, 3)[:, None]
                                    * (np.arange(c) - (c - 1) / 2) for c in X.max(0) + 1]
    rows = model(start, max_iter=20, tol=0).fit(X)
    grouped = model(start, max_iter=20, tol=0).fit(patterns, sample_weight=counts)
    for a, b in zip(rows.probabilities_, grouped.probabilities_):
        assert_allclose(a, b, rtol=1e-10)
    assert_allclose(rows.lower_bounds_, grouped.lower_bounds_, rtol=1e-10)


def test_dataframe_is_coded():
    rng = np.random.default_rng(6)
    colours = np.array(["red", "green", "blue"])[rng.integers(0, 3, 200)]
    sizes = pd.Categorical(np.array(["S", "M", "L"])[rng.integers(0, 3, 200)],
                           categories=["S", "M", "L", "XL"])
    df = pd.DataFrame({"colour": colours, "size": sizes, "n": rng.integers(0, 2, 200)})
    m = fastem.CategoricalMixture(2, random_state=0, max_iter=20).fit(df)
    assert [list(c) for c in m.categories_] == [["blue", "green", "red"],
                                                ["S", "M", "L", "XL"], [0, 1]]
    assert_array_equal(m.n_categories_, [3, 4, 2])
    assert list(m.feature_names_in_) == ["colour", "size", "n"]
    codes = np.stack([np.searchsorted(["blue", "green", "red"], colours),
                      sizes.codes, df["n"].to_numpy()], axis=1)
    plain = fastem.CategoricalMixture(2, n_categories=[3, 4, 2], random_state=0, max_iter=20)
    plain.fit(codes)
    assert_allclose(m.score_samples(df), plain.score_samples(codes), rtol=1e-12)
    Xs, labels = m.sample(50)
    assert Xs.shape == (50, 3) and set(Xs[:, 0]) <= {"blue", "green", "red"}
    strings = df.astype(str).to_numpy()
    assert m.predict(df).shape == (200,)
    with pytest.raises(ValueError, match="'purple' at row 1, column 0.*not seen at fit"):
        m.predict(pd.DataFrame({"colour": ["red", "purple"], "size": ["S", "M"], "n": [0, 1]}))
    with pytest.raises(ValueError, match="missing.*nan.*row 0, column 1"):
        m.predict(pd.DataFrame({"colour": ["red"], "size": [None], "n": [0]}))
    s = fastem.CategoricalMixture(2, random_state=0, max_iter=5).fit(strings)
    assert [list(c) for c in s.categories_][0] == ["blue", "green", "red"]


def test_codes_not_seen_at_fit():
    X, params = problem(7)
    m = model(params, max_iter=2).fit(X)
    bad = X[:3].copy()
    bad[2, 1] = 3
    with pytest.raises(ValueError, match="not seen at fit.*row 2, column 1"):
        m.predict(bad)


@pytest.mark.parametrize("X, words", [
    ([[0, 1], [-1, 0]], ["-1", "row 1, column 0"]),
    ([[0, 1.5], [1, 0]], ["whole-number", "row 0, column 1"]),
    ([[0, np.nan], [1, 0]], ["missing", "nan", "row 0, column 1"]),
])
def test_bad_codes(X, words):
    with pytest.raises(ValueError) as e:
        fastem.CategoricalMixture().fit(np.array(X))
    for w in words:
        assert w in str(e.value)


def test_n_categories_too_small():
    with pytest.raises(ValueError, match="Column 1 .* n_categories"):
        fastem.CategoricalMixture(n_categories=2).fit(np.array([[0, 2], [1, 0]]))


def test_squarem_and_warm_start():
    X, params = problem(8, n=300, k=2)
    plain = model(params, tol=1e-10, max_iter=3000).fit(X)
    fast = model(params, tol=1e-10, max_iter=3000, accelerate="squarem").fit(X)
    assert fast.lower_bound_ >= plain.lower_bound_ - 1e-7
    whole = model(params, max_iter=6, tol=0).fit(X)
    warm = model(params, max_iter=3, tol=0, warm_start=True)
    warm.fit(X)
    warm.fit(X)
    for a, b in zip(warm.probabilities_, whole.probabilities_):
        assert_allclose(a, b, rtol=1e-12)


@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random", "random_from_data"])
def test_every_start(init_params):
    X = problem(9)[0]
    m = fastem.CategoricalMixture(3, init_params=init_params, random_state=0, max_iter=30)
    m.fit(X)
    assert np.isfinite(m.lower_bound_)
    assert all(np.allclose(p.sum(axis=1), 1) for p in m.probabilities_)


def test_starved_component_is_reseeded():
    X, _ = problem(10, n=400)
    start = [np.vstack([np.full((2, c), 1.0 / c), np.eye(c)[:1] * (1 - 1e-9 * c) + 1e-9])
             for c in N_CATEGORIES]
    X[:, 0] = 1  # no row has the third component's first category
    m = fastem.CategoricalMixture(3, probabilities_init=start, weights_init=[.45, .45, .1],
                                  max_iter=20, random_state=0)
    with pytest.warns(fastem.CollapseWarning):
        m.fit(X)
    assert m.n_reseeds_ >= 1 and np.isfinite(m.lower_bound_)
    assert all(np.allclose(p.sum(axis=1), 1) for p in m.probabilities_)
