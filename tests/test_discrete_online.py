"""Online (stepwise) EM for the discrete families: MiniBatch* estimators."""

import pickle

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone

import fastem

K = 2


def data(family, n=6000, seed=0):
    """Rows from a well-separated two-component mixture of the family."""
    rng = np.random.default_rng(seed)
    z = rng.integers(0, K, n)
    if family == "bernoulli":
        P = np.array([[.9, .8, .1, .2, .5], [.1, .2, .9, .8, .5]])
        return (rng.random((n, 5)) < P[z]).astype(np.uint8)
    if family == "binomial":
        P = np.array([[.8, .2, .5], [.2, .7, .5]])
        return rng.binomial(6, P[z])
    if family == "poisson":
        return rng.poisson(np.array([[1.0, 5.0, 2.0], [6.0, 1.0, 2.0]])[z])
    if family == "multinomial":
        P = np.array([[.6, .3, .1], [.1, .3, .6]])
        return np.stack([rng.multinomial(10, P[k]) for k in z])
    P = [np.array([[.8, .1, .1], [.1, .1, .8]]), np.array([[.7, .3], [.2, .8]]),
         np.array([[.1, .2, .3, .4], [.4, .3, .2, .1]])]
    return np.stack([[rng.choice(len(p[k]), p=p[k]) for p in P] for k in z])


CLASSES = {
    "bernoulli": (fastem.MiniBatchBernoulliMixture, fastem.BernoulliMixture, {}),
    "binomial": (fastem.MiniBatchBinomialMixture, fastem.BinomialMixture, {"n_trials": 6}),
    "poisson": (fastem.MiniBatchPoissonMixture, fastem.PoissonMixture, {}),
    "multinomial": (fastem.MiniBatchMultinomialMixture, fastem.MultinomialMixture, {}),
    "categorical": (fastem.MiniBatchCategoricalMixture, fastem.CategoricalMixture,
                    {"n_categories": [3, 2, 4]}),
}


@pytest.mark.parametrize("family", list(CLASSES))
def test_online_reaches_the_batch_fit(family):
    online_cls, batch_cls, kw = CLASSES[family]
    X = data(family)
    batch = batch_cls(K, random_state=0, **kw).fit(X)
    online = online_cls(K, random_state=0, batch_size=500, **kw).fit(X)
    assert online.score(X) > batch.score(X) - 0.01
    stream = online_cls(K, random_state=0, n_init=3, **kw)
    for i in range(0, len(X), 600):
        stream.partial_fit(X[i:i + 600])
    assert stream.n_steps_ == 10 and stream.n_samples_seen_ == len(X)
    assert stream.score(X) > batch.score(X) - 0.02
    again = pickle.loads(pickle.dumps(stream))
    assert_array_equal(again.predict(X), stream.predict(X))
    assert clone(stream).get_params() == stream.get_params()


def _state(m):
    r = m._running
    arrays = [m.weights_, *np.atleast_2d(m._get_params_tuple().theta), r.S0, r.S1]
    return ([a.tobytes() for a in arrays], r.loglik, r.weight, m.n_steps_, m.n_samples_seen_,
            m.lower_bound_, list(m.collapse_events_), m._random_state.get_state()[2])


@pytest.mark.parametrize("family", ["bernoulli", "categorical"])
def test_failed_partial_fit_keeps_the_model(family):
    online_cls, _, kw = CLASSES[family]
    X = data(family, n=2000)
    m = online_cls(K, random_state=0, **kw).partial_fit(X[:1000])
    m.partial_fit(X[1000:1100])
    before = _state(m)
    bad = X[1000:1100].copy()
    bad[5, 1] = 7
    with pytest.raises(ValueError, match="row 5, column 1"):
        m.partial_fit(bad)
    assert _state(m) == before
    m.partial_fit(X[1100:])
    assert m.n_steps_ == 3


def test_starved_component_restarts_its_running_statistics():
    X = data("bernoulli", n=3000)
    X[:, 2] = 1 - X[:, 0]  # every row has a 1
    start = np.array([[.9, .8, .1, .2, .5], [.1, .2, .9, .8, .5], [1e-4] * 5])
    m = fastem.MiniBatchBernoulliMixture(3, weights_init=[.45, .45, .1], probabilities_init=start,
                                         random_state=0, batch_size=300)
    with pytest.warns(fastem.CollapseWarning):
        m.fit(X)
    assert m.n_reseeds_ >= 1
    assert np.isfinite(m.lower_bound_) and np.all(m.weights_ > 0)


def test_categorical_dataframe_stream():
    X = data("categorical", n=1200)
    labels = np.array(["a", "b", "c", "d"], dtype=object)
    df = pd.DataFrame({f"q{j}": pd.Categorical(labels[X[:, j]], categories=labels[:c])
                       for j, c in enumerate([3, 2, 4])})
    m = fastem.MiniBatchCategoricalMixture(K, random_state=0)
    m.partial_fit(df.iloc[:600])
    m.partial_fit(df.iloc[600:])
    assert_array_equal(m.n_categories_, [3, 2, 4])
    assert_allclose([p.sum(axis=1) for p in m.probabilities_], 1.0)
    assert m.predict(df).shape == (1200,)
