"""The discrete mixture estimators against tests/reference.py, scipy.stats
and published numbers, and their bad-input errors."""

import os
import sys

import numpy as np
import pytest
import scipy.sparse as sp
import scipy.stats
from numpy.testing import assert_allclose, assert_array_equal

import fastem
from fastem.datasets import load_carcinoma

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as ref

N_TRIALS = np.array([3, 5, 8])
LINEAR = ["bernoulli", "binomial", "poisson", "multinomial"]
CLASSES = {"bernoulli": fastem.BernoulliMixture, "binomial": fastem.BinomialMixture,
           "poisson": fastem.PoissonMixture, "multinomial": fastem.MultinomialMixture}
THETA = {"poisson": "rates"}


def problem(family, seed, n=60, k=3):
    """Data (from no particular mixture) and a random start (weights, theta)."""
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(np.full(k, 5.0))
    if family == "bernoulli":
        return rng.integers(0, 2, size=(n, 3)), (weights, rng.uniform(0.1, 0.9, (k, 3)))
    if family == "binomial":
        return rng.binomial(N_TRIALS, 0.4, size=(n, 3)), (weights, rng.uniform(0.1, 0.9, (k, 3)))
    if family == "poisson":
        return (rng.poisson([0.5, 3.0, 10.0], size=(n, 3)),
                (weights, np.array([0.5, 3.0, 10.0]) * rng.uniform(0.6, 1.5, (k, 3))))
    return (rng.multinomial(4, [0.2, 0.3, 0.5], size=n),
            (weights, rng.dirichlet(np.full(3, 5.0), size=k)))


def model(family, params=None, **kwargs):
    if family == "binomial":
        kwargs.setdefault("n_trials", N_TRIALS)
    if params is not None:
        weights, theta = params
        kwargs["weights_init"] = weights
        kwargs[THETA.get(family, "probabilities") + "_init"] = theta
        kwargs.setdefault("n_components", len(weights))
    return CLASSES[family](**kwargs)


def theta_of(m):
    return m.rates_ if isinstance(m, fastem.PoissonMixture) else m.probabilities_


def reference_em(family, X, params, n_iter, **kwargs):
    if family == "binomial":
        kwargs["n_trials"] = N_TRIALS
    return getattr(ref, "em_" + family)(X, params, n_iter, **kwargs)


# --------------------------------------------------------------------------
# Published numbers
# --------------------------------------------------------------------------

COIN_HEADS = np.array([[5], [9], [8], [4], [7]])


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_two_coins_do_batzoglou():
    """Do & Batzoglou (2008): 0.80 / 0.52 after 10 iterations."""
    m = fastem.BinomialMixture(2, n_trials=10, fixed_weights=True, weights_init=[.5, .5],
                               probabilities_init=[[.6], [.5]], max_iter=10, tol=0)
    m.fit(COIN_HEADS)
    assert m.n_iter_ == 10
    assert_allclose(m.probabilities_.ravel(), [0.7967, 0.5197], atol=5e-5)
    assert_array_equal(m.weights_, [0.5, 0.5])
    assert m._n_parameters() == 2
    learned = fastem.BinomialMixture(2, n_trials=10, weights_init=[.5, .5],
                                     probabilities_init=[[.6], [.5]], max_iter=10, tol=0)
    learned.fit(COIN_HEADS)
    assert_allclose(learned.probabilities_.ravel(), [0.7899, 0.5089], atol=5e-5)
    assert_allclose(learned.weights_[0], 0.5376, atol=5e-5)
    assert learned._n_parameters() == 3


DEATHS = np.arange(10)[:, None]
DAYS = np.array([162, 267, 271, 185, 111, 61, 27, 8, 3, 1])


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("grouped", [True, False])
@pytest.mark.parametrize("options", [{"tol": 0, "max_iter": 3000},
                                     {"tol": 1e-12, "accelerate": "squarem"}])
def test_hasselblad_poisson(grouped, options):
    X, sw = (DEATHS, DAYS) if grouped else (np.repeat(DEATHS, DAYS, axis=0), None)
    m = fastem.PoissonMixture(2, weights_init=[.5, .5], rates_init=[[1.0], [3.0]],
                              **options).fit(X, sample_weight=sw)
    order = np.argsort(m.rates_.ravel())
    assert_allclose(m.weights_[order[0]], 0.3599, atol=5e-5)
    assert_allclose(m.rates_.ravel()[order], [1.2561, 2.6634], atol=2e-4)
    total = m.score(X, sample_weight=sw) * 1096
    assert round(total, 3) == -1989.946


@pytest.mark.parametrize("k, published", [(2, -317.2568), (3, -293.705)])
def test_carcinoma_latent_classes(k, published):
    X, _ = load_carcinoma()
    m = fastem.BernoulliMixture(k, n_init=10, tol=1e-10, max_iter=2000, random_state=0)
    m.fit(X - 1)
    decimals = len(str(published).split(".")[1])
    assert round(m.score(X - 1) * 118, decimals) == published


# --------------------------------------------------------------------------
# Against the reference
# --------------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("family", LINEAR)
@pytest.mark.parametrize("n_iter", [1, 25])
@pytest.mark.parametrize("options", [{}, {"alpha": 0.5}, {"fixed_weights": True},
                                     {"weighted": True}])
def test_matches_reference(family, n_iter, options):
    X, params = problem(family, seed=3, n=150)
    options = dict(options)
    sw = np.random.default_rng(4).uniform(0.2, 3.0, len(X)) if options.pop("weighted", 0) \
        else None
    m = model(family, params, max_iter=n_iter, tol=0, **options)
    m.fit(X, sample_weight=sw)
    (weights, theta), lls = reference_em(family, X, params, n_iter, sample_weight=sw,
                                         **options)
    assert m.n_iter_ == n_iter and m.n_reseeds_ == 0
    assert_allclose(m.weights_, weights, rtol=1e-10)
    assert_allclose(theta_of(m), theta, rtol=1e-10)
    assert_allclose(m.lower_bounds_, lls, rtol=1e-10)
    assert m.lower_bound_ == m.lower_bounds_[-1]
    if not options.get("alpha"):  # with alpha, EM raises the posterior instead
        assert np.all(np.diff(m.lower_bounds_) >= -1e-12 * np.abs(m.lower_bounds_[1:]))


@pytest.mark.parametrize("family", LINEAR)
def test_score_samples_is_the_log_pmf(family):
    X, params = problem(family, seed=5, k=2)
    m = model(family, params, max_iter=3).fit(X)
    theta = theta_of(m)
    per_k = []
    for k in range(2):
        if family == "bernoulli":
            lp = scipy.stats.bernoulli.logpmf(X, theta[k]).sum(axis=1)
        elif family == "binomial":
            lp = scipy.stats.binom.logpmf(X, N_TRIALS, theta[k]).sum(axis=1)
        elif family == "poisson":
            lp = scipy.stats.poisson.logpmf(X, theta[k]).sum(axis=1)
        else:
            lp = scipy.stats.multinomial.logpmf(X, X.sum(axis=1), theta[k])
        per_k.append(np.log(m.weights_[k]) + lp)
    expected = scipy.special.logsumexp(np.stack(per_k, axis=1), axis=1)
    assert_allclose(m.score_samples(X), expected, rtol=1e-10)
    resp = np.exp(np.stack(per_k, axis=1) - expected[:, None])
    assert_allclose(m.predict_proba(X), resp, rtol=1e-9, atol=1e-12)
    assert_array_equal(m.predict(X), resp.argmax(axis=1))
    assert_allclose(m.score(X), expected.mean(), rtol=1e-12)
    n = len(X)
    p = m._n_parameters()
    assert_allclose(m.bic(X), -2 * expected.sum() + p * np.log(n), rtol=1e-12)
    assert_allclose(m.aic(X), -2 * expected.sum() + 2 * p, rtol=1e-12)


@pytest.mark.parametrize("family, expected", [("bernoulli", 3 * 4 + 2),
                                              ("binomial", 3 * 4 + 2),
                                              ("poisson", 3 * 4 + 2),
                                              ("multinomial", 3 * 3 + 2)])
def test_free_parameters(family, expected):
    X = problem(family, seed=6)[0]
    X = np.hstack([X, X[:, :1]])
    kwargs = {"n_trials": np.append(N_TRIALS, N_TRIALS[0])} if family == "binomial" else {}
    m = CLASSES[family](3, max_iter=2, random_state=0, **kwargs).fit(X)
    assert m._n_parameters() == expected
    fixed = CLASSES[family](3, max_iter=2, random_state=0, fixed_weights=True, **kwargs).fit(X)
    assert fixed._n_parameters() == expected - 2
    assert_array_equal(fixed.weights_, np.full(3, 1 / 3))


@pytest.mark.parametrize("family", ["bernoulli", "poisson", "multinomial"])
def test_sparse_equals_dense(family):
    X, params = problem(family, seed=7, n=80)
    X[::3] = 0  # rows with no non-zeros
    dense = model(family, params, max_iter=10, tol=0).fit(X)
    csr = model(family, params, max_iter=10, tol=0).fit(sp.csr_matrix(X))
    assert_allclose(theta_of(csr), theta_of(dense), rtol=1e-12)
    assert_allclose(csr.lower_bounds_, dense.lower_bounds_, rtol=1e-12)
    assert_allclose(csr.score_samples(sp.csr_matrix(X)), dense.score_samples(X), rtol=1e-12,
                    atol=1e-12)
    assert_allclose(csr.predict_proba(sp.csc_matrix(X)), dense.predict_proba(X), rtol=1e-10,
                    atol=1e-14)


@pytest.mark.parametrize("family", LINEAR)
def test_weight_two_equals_duplicated_row(family):
    X, params = problem(family, seed=8, n=60)
    sw = np.ones(len(X))
    sw[:7] = 2.0
    weighted = model(family, params, max_iter=8, tol=0).fit(X, sample_weight=sw)
    repeated = model(family, params, max_iter=8, tol=0).fit(np.vstack([X, X[:7]]))
    assert_allclose(theta_of(weighted), theta_of(repeated), rtol=1e-12)
    assert_allclose(weighted.weights_, repeated.weights_, rtol=1e-12)
    assert_allclose(weighted.lower_bounds_, repeated.lower_bounds_, rtol=1e-12)
    assert weighted.n_reseeds_ == repeated.n_reseeds_ == 0


@pytest.mark.parametrize("dtype", [bool, np.uint8, np.int32, np.int64, np.float32, np.float64])
def test_bernoulli_dtypes_agree(dtype):
    X, params = problem("bernoulli", seed=9)
    base = model("bernoulli", params, max_iter=5, tol=0).fit(X.astype(np.float64))
    other = model("bernoulli", params, max_iter=5, tol=0).fit(X.astype(dtype))
    assert_allclose(other.probabilities_, base.probabilities_, rtol=1e-12)
    assert_allclose(other.score_samples(X.astype(dtype)), base.score_samples(X), rtol=1e-12)


# --------------------------------------------------------------------------
# Modes
# --------------------------------------------------------------------------

@pytest.mark.parametrize("family", LINEAR)
def test_squarem_reaches_the_same_optimum(family):
    X, params = problem(family, seed=10, n=200, k=2)
    plain = model(family, params, tol=1e-10, max_iter=3000).fit(X)
    fast = model(family, params, tol=1e-10, max_iter=3000, accelerate="squarem").fit(X)
    assert fast.converged_
    assert fast.lower_bound_ >= plain.lower_bound_ - 1e-7
    assert fast.n_em_maps_ <= plain.n_iter_ + 3


@pytest.mark.parametrize("family", LINEAR)
@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random", "random_from_data"])
def test_every_start_fits(family, init_params):
    X = problem(family, seed=11, n=120)[0]
    m = model(family, n_components=3, init_params=init_params, random_state=0,
              max_iter=50).fit(X)
    assert np.isfinite(m.lower_bound_)
    assert np.all(np.diff(m.lower_bounds_) >= -1e-10)
    again = model(family, n_components=3, init_params=init_params, random_state=0,
                  max_iter=50).fit(X)
    assert_array_equal(theta_of(again), theta_of(m))


@pytest.mark.parametrize("family", LINEAR)
def test_warm_start_continues(family):
    X, params = problem(family, seed=12)
    whole = model(family, params, max_iter=6, tol=0).fit(X)
    warm = model(family, params, max_iter=3, tol=0, warm_start=True)
    warm.fit(X)
    warm.fit(X)
    assert_allclose(theta_of(warm), theta_of(whole), rtol=1e-12)


@pytest.mark.parametrize("family", LINEAR)
def test_sample(family):
    X, params = problem(family, seed=13, k=2)
    m = model(family, params, max_iter=2, random_state=0).fit(X)
    Xs, labels = m.sample(4000)
    if family == "multinomial":  # totals drawn from the training rows' totals
        assert set(Xs.sum(axis=1)) <= set(X.sum(axis=1))
        for k in range(2):
            assert_allclose(Xs[labels == k].sum(axis=0) / Xs[labels == k].sum(),
                            theta_of(m)[k], atol=0.03)
        return
    assert Xs.shape == (4000, 3) and labels.shape == (4000,)
    for k in range(2):
        assert_allclose(Xs[labels == k].mean(axis=0) / (N_TRIALS if family == "binomial"
                                                        else 1),
                        theta_of(m)[k], rtol=0.15, atol=0.05)


def test_empty_component_start_is_reseeded():
    """Starved components (a duplicate cluster) come back with data."""
    X = np.repeat(np.eye(4, dtype=np.int64), 25, axis=0)
    start = np.array([[0.9, 0.1, 0.1, 0.1], [0.1, 0.9, 0.1, 0.1], [0.1, 0.1, 0.5, 0.5],
                      [1e-3] * 4])
    m = fastem.BernoulliMixture(4, probabilities_init=start, weights_init=np.full(4, .25),
                                max_iter=50, random_state=0)
    with pytest.warns(fastem.CollapseWarning):
        m.fit(X)
    assert m.n_reseeds_ >= 1
    assert np.isfinite(m.lower_bound_)


# --------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------

@pytest.mark.parametrize("family, X, words", [
    ("bernoulli", [[0, 1], [2, 0]], ["binary", "2", "row 1, column 0"]),
    ("bernoulli", [[0, 1], [0.5, 0]], ["binary", "0.5", "row 1, column 0"]),
    ("poisson", [[0, 1], [3, -1]], ["non-negative", "-1", "row 1, column 1"]),
    ("poisson", [[0, 1.5], [3, 1]], ["whole-number", "1.5", "row 0, column 1"]),
    ("multinomial", [[0, 1], [3, -2]], ["non-negative", "-2", "row 1, column 1"]),
    ("binomial", [[0, 1, 9], [3, 1, 1]], ["at most n_trials", "9", "row 0, column 2"]),
    ("bernoulli", [[0, 1], [np.nan, 0]], ["missing", "nan", "row 1, column 0"]),
    ("poisson", [[0, np.nan], [3, 1]], ["missing", "nan", "row 0, column 1"]),
])
def test_bad_values_are_named(family, X, words):
    X = np.asarray(X)
    with pytest.raises(ValueError) as e:
        model(family, n_components=1).fit(X)
    for w in words:
        assert w in str(e.value)


def test_bad_sparse_value_is_named():
    X = sp.csr_matrix(np.array([[0, 1, 0], [0, 0, 3]]))
    with pytest.raises(ValueError, match="row 1, column 2"):
        fastem.BernoulliMixture().fit(X)


def test_binomial_refuses_sparse():
    with pytest.raises(ValueError, match="dense"):
        fastem.BinomialMixture(n_trials=3).fit(sp.csr_matrix(np.ones((4, 2))))


def test_unseen_bad_value_at_predict_keeps_model():
    X, params = problem("bernoulli", seed=14)
    m = model("bernoulli", params, max_iter=3).fit(X)
    before = m.probabilities_.copy()
    with pytest.raises(ValueError, match="binary"):
        m.predict(np.array([[0, 1, 7]]))
    assert_array_equal(m.probabilities_, before)


@pytest.mark.parametrize("kwargs, words", [
    ({"probabilities_init": [[0.5, 1.5]]}, "between 0 and 1"),
    ({"probabilities_init": [[0.5]]}, "shape"),
    ({"weights_init": [0.3, 0.3]}, "weights_init"),
])
def test_bad_inits(kwargs, words):
    with pytest.raises(ValueError, match=words):
        fastem.BernoulliMixture(**kwargs).fit(np.array([[0, 1], [1, 1]]))


def test_bad_n_trials():
    with pytest.raises(ValueError, match="n_trials"):
        fastem.BinomialMixture(n_trials=[3, 4]).fit(np.ones((5, 3), dtype=int))


@pytest.mark.parametrize("family", ["bernoulli", "multinomial", "poisson"])
@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random", "random_from_data"])
def test_sparse_text_starts_without_densifying(family, init_params):
    """A CSR sample larger than the initialisation sample: k-means and
    k-means++ run on the sparse rows; fitted models are reused as starts."""
    rng = np.random.default_rng(15)
    n, d = 5000, 400
    topics = rng.dirichlet(np.full(d, 0.05), size=2)
    z = rng.integers(0, 2, n)
    X = sp.csr_matrix(np.stack([rng.multinomial(12, topics[k]) for k in z]))
    if family == "bernoulli":
        X.data[:] = 1
    m = CLASSES[family](2, init_params=init_params, random_state=0, max_iter=30).fit(X)
    assert np.isfinite(m.lower_bound_)
    again = model(family, (m.weights_, theta_of(m)), max_iter=1).fit(X)
    assert np.isfinite(again.lower_bound_)


def test_sparse_starved_component_is_reseeded():
    rng = np.random.default_rng(16)
    X = sp.random(3000, 200, density=0.05, format="csr", random_state=16,
                  data_rvs=lambda k: np.ones(k))
    start = np.vstack([rng.uniform(0.03, 0.07, (2, 200)), np.full((1, 200), 1e-6)])
    m = fastem.BernoulliMixture(3, probabilities_init=start, weights_init=[.45, .45, .1],
                                max_iter=10, random_state=0)
    with pytest.warns(fastem.CollapseWarning):
        m.fit(X)
    assert m.n_reseeds_ >= 1 and np.isfinite(m.lower_bound_)


def test_scikit_learn_tools():
    """clone, Pipeline and GridSearchCV over n_components (score: mean
    log-likelihood)."""
    from sklearn.base import clone
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    rng = np.random.default_rng(17)
    z = rng.integers(0, 2, 400)
    X = (rng.random((400, 6)) < np.array([[.9, .8, .9, .1, .2, .1],
                                          [.1, .2, .1, .9, .8, .9]])[z]).astype(int)
    m = fastem.BernoulliMixture(2, random_state=0)
    assert clone(m).get_params() == m.get_params()
    pipe = make_pipeline(FunctionTransformer(lambda A: (A > 0).astype(np.uint8)),
                         fastem.BernoulliMixture(2, random_state=0)).fit(X)
    assert pipe.predict(X).shape == (400,)
    search = GridSearchCV(fastem.BernoulliMixture(random_state=0),
                          {"n_components": [1, 2, 3]}, cv=3).fit(X)
    assert search.best_params_["n_components"] in (2, 3)
    assert search.cv_results_["mean_test_score"][1] > search.cv_results_["mean_test_score"][0]


# --------------------------------------------------------------------------
# Hostile input on the discrete paths
# --------------------------------------------------------------------------

def test_malformed_csr_is_refused_before_it_is_read():
    X = sp.csr_matrix((np.ones(2), np.array([0, 9]), np.array([0, 1, 2])), shape=(2, 3))
    with pytest.raises(ValueError, match="sparse matrix X is malformed"):
        fastem.BernoulliMixture().fit(X)


@pytest.mark.parametrize("kwargs, X", [
    ({"n_categories": 10**9}, np.array([[0, 1], [1, 2], [2, 0]])),
    ({}, np.array([[0, 10**12], [1, 0], [0, 1]])),  # one absurd code
])
def test_absurd_numbers_of_categories_are_refused(kwargs, X):
    with pytest.raises(ValueError, match="categories in all.*more than this machine"):
        fastem.CategoricalMixture(2, **kwargs).fit(X)


def test_code_fitted_model_refuses_labelled_data():
    m = fastem.CategoricalMixture(2, random_state=0).fit(np.arange(30).reshape(-1, 1) % 3)
    with pytest.raises(ValueError, match="fitted on integer codes"):
        m.predict(np.array([["x"]]))


def test_fixed_zero_weight_is_refused():
    with pytest.raises(ValueError, match="component 1 has weight 0"):
        fastem.BernoulliMixture(2, fixed_weights=True, weights_init=[1.0, 0.0]).fit(
            np.array([[0, 1], [1, 1], [1, 0]]))


def test_multinomial_rows_without_counts():
    """A component that explains only empty rows gets uniform probabilities
    (any p fits them); all-empty data has log-likelihood 0."""
    X = np.vstack([np.zeros((20, 3), int), np.random.default_rng(0).multinomial(5, [.2, .3, .5],
                                                                               size=20)])
    m = fastem.MultinomialMixture(2, probabilities_init=[[.98, .01, .01], [.2, .3, .5]],
                                  weights_init=[.5, .5], max_iter=5, tol=0).fit(X)
    assert np.all(np.isfinite(m.probabilities_))
    empty = fastem.MultinomialMixture(2, random_state=0).fit(np.zeros((10, 3), int))
    assert empty.lower_bound_ == 0.0


def test_a_component_with_no_data_is_reseeded_not_raised():
    X = np.repeat(np.eye(3, dtype=int), 30, axis=0)
    start = np.array([[.9, .05, .05], [.05, .9, .05], [1e-10] * 3])
    m = fastem.BernoulliMixture(3, probabilities_init=start, weights_init=[.5, .5, 1e-300],
                                max_iter=10, random_state=0)
    with pytest.warns(fastem.CollapseWarning):
        m.fit(X)
    assert np.all(np.isfinite(m.probabilities_)) and m.n_reseeds_ >= 1
    with pytest.raises(ValueError, match="lost all its data"):
        fastem.BernoulliMixture(3, probabilities_init=start, weights_init=[.5, .5, 0.0],
                                max_iter=10, on_collapse="raise").fit(X)
