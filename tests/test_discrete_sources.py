"""Discrete families on out-of-core (np.memmap) and Dask input: the same fit
as in memory (to 1e-10), per-row outputs, and bad values named by row and
column."""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose

import fastem

da = pytest.importorskip("dask.array")

N = 12000


def data(family, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.integers(0, 2, N)
    if family == "bernoulli":
        P = np.array([[.9, .8, .1, .2, .5], [.1, .2, .9, .8, .5]])
        return (rng.random((N, 5)) < P[z]).astype(np.uint8), {}
    if family == "binomial":
        return rng.binomial(4, np.array([[.8, .3], [.2, .6]])[z]), {"n_trials": 4}
    if family == "poisson":
        return rng.poisson(np.array([[1.0, 5.0, 2.0], [6.0, 1.0, 2.0]])[z]), {}
    if family == "multinomial":
        P = np.array([[.6, .3, .1], [.1, .3, .6]])
        return np.stack([rng.multinomial(6, P[k]) for k in z]), {}
    P = [np.array([[.8, .1, .1], [.1, .1, .8]]), np.array([[.7, .3], [.2, .8]])]
    return np.stack([[rng.choice(len(p[k]), p=p[k]) for p in P] for k in z]), {}


CLASSES = {"bernoulli": fastem.BernoulliMixture, "binomial": fastem.BinomialMixture,
           "poisson": fastem.PoissonMixture, "multinomial": fastem.MultinomialMixture,
           "categorical": fastem.CategoricalMixture}


def theta(m):
    t = m._get_params_tuple().theta
    return np.asarray(t)


@pytest.fixture(scope="module")
def memmaps(tmp_path_factory):
    out = {}
    for family in CLASSES:
        X, _ = data(family)
        path = tmp_path_factory.mktemp(family) / "X.npy"
        mm = np.lib.format.open_memmap(path, mode="w+", dtype=X.dtype, shape=X.shape)
        mm[:] = X
        mm.flush()
        out[family] = np.load(path, mmap_mode="r")
    return out


@pytest.mark.parametrize("family", list(CLASSES))
def test_memmap_and_dask_equal_in_memory(family, memmaps, monkeypatch):
    monkeypatch.setattr(fastem._config, "CHUNK_BYTES", 32 * 1024, raising=False)
    X, kw = data(family)
    sw = np.random.default_rng(1).uniform(0.5, 2.0, N)
    Xd = da.from_array(X, chunks=(3000, -1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fits = [CLASSES[family](2, random_state=0, max_iter=15, tol=0, **kw).fit(
            x, sample_weight=sw) for x in (X, memmaps[family], Xd)]
    ref = fits[0]
    for m in fits[1:]:
        assert_allclose(theta(m), theta(ref), rtol=1e-10)
        assert_allclose(m.weights_, ref.weights_, rtol=1e-10)
        assert_allclose(m.lower_bounds_, ref.lower_bounds_, rtol=1e-10)
    assert_allclose(ref.score_samples(memmaps[family]), ref.score_samples(X), rtol=1e-12)
    assert_allclose(ref.score_samples(Xd).compute(), ref.score_samples(X), rtol=1e-12)
    assert_allclose(ref.predict_proba(Xd).compute(), ref.predict_proba(X), rtol=1e-10,
                    atol=1e-15)
    assert (ref.predict(Xd).compute() == ref.predict(X)).all()
    assert_allclose(ref.bic(Xd), ref.bic(X), rtol=1e-12)


def test_dask_bad_value_is_named():
    X, _ = data("bernoulli")
    X = X.astype(np.float64)
    X[7000, 3] = 2
    with pytest.raises(ValueError, match="row 7000, column 3"):
        fastem.BernoulliMixture(2, random_state=0).fit(da.from_array(X, chunks=(3000, -1)))


def test_memmap_bad_value_is_named(tmp_path):
    X, _ = data("poisson")
    X[9001, 1] = -3
    path = tmp_path / "bad.npy"
    np.save(path, X)
    with pytest.raises(ValueError, match="row 9001, column 1"):
        fastem.PoissonMixture(2).fit(np.load(path, mmap_mode="r"))
