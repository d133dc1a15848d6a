"""``missing='em'`` for the discrete families: a missing entry skipped in its
row's density, each column's parameters from the rows where it is observed;
checked against ``tests/reference.py``."""

import numpy as np
import pytest
import reference as ref
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal

import fastem

PATTERNS = ["mcar5", "mcar30", "column", "monotone"]
K = 2


def _holes(X, kind, seed=1):
    rng = np.random.default_rng(seed)
    X = np.array(X, dtype=np.float64)
    n, d = X.shape
    if kind.startswith("mcar"):
        X[rng.random(X.shape) < float(kind[4:]) / 100] = np.nan
    elif kind == "column":
        X[rng.random(n) < 0.85, d - 1] = np.nan
    elif kind == "monotone":
        first = rng.choice([d, d, d - 1, d - 2, 1], size=n)
        X[np.arange(d)[None, :] >= first[:, None]] = np.nan
    X[np.isnan(X).all(axis=1), 0] = 0.0
    return X


def _case(family, seed=0, n=300):
    """(estimator class, its kwargs, X, the start (weights, theta), the
    reference's EM loop)."""
    rng = np.random.default_rng(seed)
    z = rng.integers(K, size=n)
    w0 = np.array([0.45, 0.55])
    if family == "categorical":
        C = [3, 2, 4]
        X = np.column_stack([rng.integers(c, size=n) for c in C]).astype(float)
        X[z == 1, 0] = 0
        theta = [rng.dirichlet(np.ones(c), size=K) for c in C]
        return (fastem.CategoricalMixture, {"probabilities_init": theta}, X, (w0, theta),
                ref.em_categorical_missing)
    P = np.array([[0.8] * 3 + [0.2] * 3, [0.25] * 3 + [0.7] * 3])
    theta = np.clip(P + 0.05 * rng.normal(size=P.shape), 0.05, 0.95)
    if family == "bernoulli":
        X = (rng.random((n, 6)) < P[z]).astype(float)
        return (fastem.BernoulliMixture, {"probabilities_init": theta}, X, (w0, theta),
                ref.em_bernoulli_missing)
    if family == "binomial":
        X = rng.binomial(4, P[z]).astype(float)

        def em(X, params, n_iter):
            return ref.em_binomial_missing(X, params, n_iter, n_trials=4)

        return (fastem.BinomialMixture, {"probabilities_init": theta, "n_trials": 4}, X,
                (w0, theta), em)
    if family == "multinomial":
        probs = np.array([[.4, .3, .1, .1, .05, .05], [.05, .05, .1, .1, .3, .4]])
        X = np.array([rng.multinomial(rng.integers(5, 30), probs[k]) for k in z], dtype=float)
        theta = np.clip(probs + 0.02 * rng.random(probs.shape), 0.01, 1)
        theta /= theta.sum(axis=1, keepdims=True)
        return (fastem.MultinomialMixture, {"probabilities_init": theta}, X, (w0, theta),
                ref.em_multinomial_missing)
    rates = np.array([[1.0] * 3 + [5.0] * 3, [6.0] * 3 + [0.5] * 3])
    X = rng.poisson(rates[z]).astype(float)
    return (fastem.PoissonMixture, {"rates_init": rates * 1.2}, X, (w0, rates * 1.2),
            ref.em_poisson_missing)


FAMILIES = ["bernoulli", "binomial", "poisson", "categorical", "multinomial"]


def _theta(model):
    return model.rates_ if hasattr(model, "rates_") else model.probabilities_


def _close(a, b, rtol=1e-10):
    if isinstance(a, list):
        for x, y in zip(a, b):
            assert_allclose(x, y, rtol=rtol, atol=1e-13)
    else:
        assert_allclose(a, b, rtol=rtol, atol=1e-13)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("kind", PATTERNS)
@pytest.mark.parametrize("family", FAMILIES)
def test_em_matches_the_reference_after_1_and_25_iterations(family, kind):
    cls, kwargs, X, start, em = _case(family)
    X = _holes(X, kind)
    for n_iter in (1, 25):
        m = cls(K, weights_init=start[0], max_iter=n_iter, tol=0, missing="em",
                **kwargs).fit(X)
        (w, theta), lls = em(X, start, n_iter)
        assert_allclose(m.weights_, w, rtol=1e-10, atol=1e-13)
        _close(_theta(m), theta)
        assert_allclose(m.lower_bounds_, lls, rtol=1e-10)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("family", FAMILIES)
def test_outputs_and_imputation(family):
    cls, kwargs, X, start, _ = _case(family, seed=2)
    X = _holes(X, "mcar30", seed=3)
    trials = {k: v for k, v in kwargs.items() if k == "n_trials"}
    m = cls(K, random_state=0, missing="em", **trials).fit(X)
    estep = {"bernoulli": ref.bernoulli_estep_missing, "poisson": ref.poisson_estep_missing,
             "categorical": ref.categorical_estep_missing,
             "multinomial": ref.multinomial_estep_missing,
             "binomial": lambda X, p: ref.binomial_estep_missing(X, p, n_trials=4)}[family]
    resp, total, _ = estep(X, (m.weights_, _theta(m)))
    assert_allclose(m.predict_proba(X), resp, rtol=1e-9, atol=1e-12)
    assert_array_equal(m.predict(X), resp.argmax(axis=1))
    assert m.score(X) * len(X) == pytest.approx(total, rel=1e-11)
    assert m.score_samples(X).sum() == pytest.approx(total, rel=1e-11)
    filled = m.impute(X)
    holes = np.isnan(X)
    assert_array_equal(filled[~holes], X[~holes])
    if family == "categorical":
        for j, p in enumerate(m.probabilities_):
            rows = np.flatnonzero(holes[:, j])
            assert_array_equal(filled[rows, j], np.argmax(resp[rows] @ p, axis=1))
    elif family == "multinomial":  # sum_k r_ik N_o p_kj / s_ko
        p, obs = _theta(m), ~holes
        total = np.where(obs, X, 0).sum(axis=1)
        want = total[:, None] * ((resp / (obs @ p.T)) @ p)
        assert_allclose(filled[holes], want[holes], rtol=1e-10)
    else:
        scale = 4.0 if family == "binomial" else 1.0
        assert_allclose(filled[holes], (resp @ (scale * _theta(m)))[holes], rtol=1e-10)
    X[5] = np.nan  # nothing observed: the weights' expectation
    assert not np.isnan(m.impute(X)).any()


@pytest.mark.parametrize("family", FAMILIES)
def test_without_nan_the_fit_of_raise_bitwise(family):
    cls, kwargs, X, _, _ = _case(family, seed=4)
    trials = {k: v for k, v in kwargs.items() if k == "n_trials"}
    a = cls(K, random_state=0, **trials).fit(X)
    b = cls(K, random_state=0, missing="em", **trials).fit(X)
    assert_array_equal(a.weights_, b.weights_)
    _close(_theta(a), _theta(b), rtol=0)
    assert_array_equal(a.lower_bounds_, b.lower_bounds_)


def test_the_refusals():
    cls, kwargs, X, _, _ = _case("bernoulli")
    Xm = _holes(X, "mcar5")
    with pytest.raises(ValueError, match="missing values"):
        cls(K).fit(Xm)  # missing='raise'
    bad = Xm.copy()
    bad[[4, 9]] = np.nan
    with pytest.raises(ValueError, match="2 rows with every value missing.*rows 4, 9"):
        cls(K, missing="em").fit(bad)
    bad = Xm.copy()
    bad[:, 2] = np.nan
    with pytest.raises(ValueError, match="column 2"):
        cls(K, missing="em").fit(bad)
    bad = Xm.copy()
    bad[0, 1] = 2.0  # observed values still checked
    with pytest.raises(ValueError, match="binary"):
        cls(K, missing="em").fit(bad)
    counts = np.random.default_rng(0).poisson(3.0, size=(50, 4)).astype(float)
    counts[0, 0] = np.nan
    with pytest.raises(ValueError, match="missing values"):
        fastem.MultinomialMixture(2).fit(counts)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10**6), rate=st.floats(0.05, 0.5),
       family=st.sampled_from(FAMILIES))
def test_the_observed_likelihood_never_decreases(seed, rate, family):
    cls, kwargs, X, _, _ = _case(family, seed=seed % 1000, n=120)
    rng = np.random.default_rng(seed)
    X[rng.random(X.shape) < rate] = np.nan
    X[np.isnan(X).all(axis=1), 0] = 0.0
    keep = {k: v for k, v in kwargs.items() if k == "n_trials"}
    m = cls(K, max_iter=30, tol=0, random_state=seed, missing="em", **keep)
    try:
        m.fit(X)
    except ValueError as exc:  # a column never observed in a tiny random sample
        assert "every value missing" in str(exc)
        return
    lb = np.asarray(m.lower_bounds_)
    reseeded = {e[0] for e in m.collapse_events_}
    steps = [i for i in range(1, len(lb)) if i + 1 not in reseeded and i not in reseeded]
    assert all(lb[i] >= lb[i - 1] - 1e-10 * abs(lb[i]) for i in steps)


def _binary(seed=0, n=6000, d=5):
    rng = np.random.default_rng(seed)
    X = (rng.random((n, d)) < np.where(np.arange(n)[:, None] % 2, 0.8, 0.2)).astype(float)
    X[rng.random(X.shape) < 0.2] = np.nan
    X[np.isnan(X).all(axis=1), 0] = 1.0
    return X


@pytest.mark.parametrize("init", ["k-means++", "random_from_data"])
def test_single_row_starts_reach_the_optimum(init):
    """A start from single rows: a row's observed 0/1 would put a
    probability at its bound beside filled columns at their mean, a start
    EM cannot leave; each component gets a pseudo-row of the sample mean."""
    X = _binary()
    best = fastem.BernoulliMixture(2, random_state=0, missing="em").fit(X).lower_bound_
    for seed in range(3):
        m = fastem.BernoulliMixture(2, random_state=seed, missing="em",
                                    init_params=init).fit(X)
        assert m.lower_bound_ == pytest.approx(best, abs=1e-3)
        assert np.all(np.abs(np.sort(m.probabilities_[:, 2]) - [0.2, 0.8]) < 0.05)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("family", ["bernoulli", "categorical"])
def test_online_estimators_take_nan(family):
    X = _binary(seed=1)
    batch_cls, online_cls = {
        "bernoulli": (fastem.BernoulliMixture, fastem.MiniBatchBernoulliMixture),
        "categorical": (fastem.CategoricalMixture, fastem.MiniBatchCategoricalMixture)}[family]
    batch = batch_cls(2, random_state=0, missing="em").fit(X)
    online = online_cls(2, random_state=0, missing="em", batch_size=500).fit(X)
    a, b = _theta(batch), _theta(online)
    a, b = (np.concatenate(a, axis=1), np.concatenate(b, axis=1)) if isinstance(a, list) \
        else (a, b)
    order = np.argsort(a[:, 0]), np.argsort(b[:, 0])
    assert_allclose(b[order[1]], a[order[0]], atol=0.04)
    stream = online_cls(2, random_state=0, missing="em")
    for i in range(0, 3000, 500):
        stream.partial_fit(X[i:i + 500])
    stream.partial_fit(np.nan_to_num(X[3000:3500]))  # a batch without NaN
    assert stream.n_steps_ == 7 and np.isfinite(stream.score(X))
    with pytest.raises(ValueError, match="missing values"):
        online_cls(2).fit(X)


def test_labelled_categories_with_missing_cells():
    """A DataFrame with missing cells (NaN, None, pandas NA in a category
    column): learnt levels exclude them, the fit is the one of the codes
    with NaN, and impute gives labels."""
    pd = pytest.importorskip("pandas")
    from fastem.datasets import load_gss82

    X = load_gss82()[0] - 1
    rng = np.random.default_rng(5)
    holes = rng.random(X.shape) < 0.1
    holes[holes.all(axis=1), 0] = False
    names = [["good", "depends", "waste"], ["true", "not"], ["good", "fair"],
             ["interested", "cooperative", "hostile"]]
    frame = pd.DataFrame({f"c{j}": [None if holes[i, j] else names[j][int(X[i, j])]
                                    for i in range(len(X))] for j in range(4)})
    codes = np.where(holes, np.nan, X.astype(float))
    m = fastem.CategoricalMixture(2, random_state=0, missing="em").fit(frame)
    assert all(len(c) == len(n) for c, n in zip(m.categories_, names))
    # the same fit as from codes in the learnt (sorted) order of the levels
    order = [np.argsort(np.argsort(n)) for n in names]
    recoded = np.column_stack([np.where(holes[:, j], np.nan, order[j][X[:, j]])
                               for j in range(4)])
    c = fastem.CategoricalMixture(2, random_state=0, missing="em").fit(recoded)
    assert_allclose(m.weights_, c.weights_, rtol=1e-12)
    filled = m.impute(frame)
    assert filled.dtype == object and not pd.isna(filled).any()
    assert all(filled[i, j] == frame.iloc[i, j] for i, j in zip(*np.nonzero(~holes[:50])))
    assert np.isfinite(m.score(frame.astype("category")))
    with pytest.raises(ValueError, match="Pass missing='em'"):
        fastem.CategoricalMixture(2).fit(frame)
    assert np.isfinite(fastem.CategoricalMixture(2, missing="em").fit(codes).lower_bound_)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("family", ["bernoulli", "poisson", "categorical", "multinomial"])
def test_out_of_core_and_dask_input_with_nan(family, tmp_path, monkeypatch):
    da = pytest.importorskip("dask.array")
    from fastem import _config

    cls, kwargs, X, _, _ = _case(family, seed=6, n=3000)
    X = _holes(X, "mcar30", seed=7)
    path = tmp_path / "x.npy"
    np.save(path, X)
    monkeypatch.setattr(_config, "CHUNK_BYTES", 20_000, raising=False)
    kw = {"random_state": 0, "missing": "em", "max_iter": 8, "tol": 0}
    whole = cls(K, **kw).fit(X)
    mapped = cls(K, **kw).fit(np.load(path, mmap_mode="r"))
    lazy = cls(K, **kw).fit(da.from_array(X, chunks=700))
    for m in (mapped, lazy):
        assert_allclose(m.weights_, whole.weights_, rtol=1e-10)
        _close(_theta(m), _theta(whole))
    assert_allclose(mapped.score_samples(np.load(path, mmap_mode="r")), whole.score_samples(X),
                    rtol=1e-10)
    assert_allclose(np.asarray(lazy.score_samples(da.from_array(X, chunks=700))),
                    whole.score_samples(X), rtol=1e-10)
    bad = X.copy()
    bad[2200] = np.nan
    with pytest.raises(ValueError, match="row 2200"):
        cls(K, **kw).fit(da.from_array(bad, chunks=700))


def test_a_multinomial_fitted_on_missing_counts_samples_and_saves(tmp_path):
    cls, _, X, _, _ = _case("multinomial", seed=8)
    X = _holes(X, "mcar30", seed=9)
    m = cls(K, random_state=0, missing="em").fit(X)
    observed_totals = np.nansum(X, axis=1)
    assert set(m.row_totals_) <= set(np.rint(observed_totals).astype(int))
    drawn, _ = m.sample(50)
    assert drawn.shape == (50, X.shape[1]) and not np.isnan(drawn).any()
    m.save(tmp_path / "m.fem")
    assert_array_equal(fastem.load(tmp_path / "m.fem").predict(X), m.predict(X))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("family", FAMILIES)
def test_sample_weight_with_missing_entries(family):
    """Weights (some 0) on incomplete rows: the reference's weighted EM, and
    the same fit for weights rescaled by 1e6."""
    cls, kwargs, X, start, _ = _case(family, seed=10)
    X = _holes(X, "mcar30", seed=11)
    w = np.random.default_rng(12).uniform(0, 3, size=len(X))
    w[:30] = 0.0
    em = {"bernoulli": ref.em_bernoulli_missing, "poisson": ref.em_poisson_missing,
          "categorical": ref.em_categorical_missing, "multinomial": ref.em_multinomial_missing,
          "binomial": lambda X, p, n, sample_weight: ref.em_binomial_missing(
              X, p, n, sample_weight=sample_weight, n_trials=4)}[family]
    m = cls(K, weights_init=start[0], max_iter=4, tol=0, missing="em", **kwargs)
    m.fit(X, sample_weight=w)
    (weights, theta), lls = em(X, start, 4, sample_weight=w)
    assert_allclose(m.weights_, weights, rtol=1e-10, atol=1e-13)
    _close(_theta(m), theta)
    assert_allclose(m.lower_bounds_, lls, rtol=1e-10)
    scaled = cls(K, weights_init=start[0], max_iter=4, tol=0, missing="em", **kwargs)
    scaled.fit(X, sample_weight=w * 1e6)
    _close(_theta(scaled), _theta(m))


def test_nan_in_a_sparse_matrix_is_named():
    from scipy import sparse

    X = _holes(_case("bernoulli")[2], "mcar5")
    with pytest.raises(ValueError, match="sparse matrix X stores .* NaN values"):
        fastem.BernoulliMixture(K, missing="em").fit(sparse.csr_matrix(X))
