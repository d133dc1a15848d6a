"""``MiniBatchGaussianMixture``: stepwise EM on the same kernels and statistics
as batch EM."""

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose
from scipy.optimize import linear_sum_assignment
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning

from fastem import GaussianMixture, MiniBatchGaussianMixture
from fastem._estep import EStepWorkspace
from fastem._stats import GaussianParams, m_step, precisions_cholesky_from_covariances
from fastem.datasets import make_mixture

from conftest import blobs, random_params

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

FITTED = ["weights_", "means_", "covariances_", "precisions_cholesky_"]


def _inits(model):
    return dict(weights_init=model.weights_, means_init=model.means_,
                precisions_init=model.precisions_)


def _start(X, covariance_type, k, seed=0):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        g = GaussianMixture(k, covariance_type=covariance_type, max_iter=2,
                            random_state=seed).fit(X[:3000])
    return _inits(g)


def _assert_same_model(a, b, rtol):
    for name in FITTED:
        x, y = getattr(a, name), getattr(b, name)
        assert_allclose(x, y, rtol=rtol, atol=rtol * np.abs(y).max(), err_msg=name)


# --------------------------------------------------------------------------
# one online step with eta = 1 on all the data is one batch EM step
# --------------------------------------------------------------------------


def test_first_partial_fit_from_inits_is_one_batch_em_step(covariance_type):
    X = blobs(n=4000, d=3, k=3, seed=1)
    init = _start(X, covariance_type, 3)
    online = MiniBatchGaussianMixture(3, covariance_type=covariance_type, **init).partial_fit(X)
    batch = GaussianMixture(3, covariance_type=covariance_type, max_iter=1, tol=0,
                            **init).fit(X)
    _assert_same_model(online, batch, 1e-12)
    assert online.n_steps_ == 1 and online.n_samples_seen_ == len(X)


def test_step_with_eta_one_is_one_batch_em_step(covariance_type):
    X = blobs(n=4000, d=3, k=3, seed=2)
    init = _start(X, covariance_type, 3)
    # learning_offset=0: eta_1 = 1 ** -decay = 1 for the second update
    online = MiniBatchGaussianMixture(3, covariance_type=covariance_type, learning_offset=0.0,
                                      **init)
    online.partial_fit(X[:1500])
    assert online._step_size() == 1.0
    batch = GaussianMixture(3, covariance_type=covariance_type, max_iter=1, tol=0,
                            **_inits(online)).fit(X)
    online.partial_fit(X)
    _assert_same_model(online, batch, 1e-11)


def test_step_size_schedule():
    X = blobs(n=600, d=2, k=2, seed=3)
    m = MiniBatchGaussianMixture(2, learning_decay=0.6, learning_offset=3.0, random_state=0)
    m.partial_fit(X[:300])
    for t in (1, 2, 3):
        assert m._step_size() == pytest.approx((t + 3.0) ** -0.6, rel=1e-15)
        m.partial_fit(X[300:])
    assert m.n_steps_ == 4 and m.n_samples_seen_ == 300 + 3 * 300


# --------------------------------------------------------------------------
# blends of valid statistics are valid
# --------------------------------------------------------------------------


def _stats(X, params, covariance_type, shift):
    k, d = params.means.shape
    s = EStepWorkspace(covariance_type, k, d, X.shape[0]).run(X, None, params, shift=shift)
    return s.scaled(1.0 / s.weight)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    covariance_type=st.sampled_from(["full", "tied", "diag", "spherical"]),
    seed=st.integers(0, 10_000),
    etas=st.lists(st.floats(1e-3, 1.0), min_size=1, max_size=6),
    spread=st.sampled_from([1e-3, 1.0, 30.0]),
    f32_offset=st.booleans(),
)
def test_blends_of_statistics_give_positive_definite_covariances(
        covariance_type, seed, etas, spread, f32_offset):
    rng = np.random.default_rng(seed)
    k, d = 3, 3
    offset = 1e3 if f32_offset else 0.0
    dtype = np.float32 if f32_offset else np.float64
    batches = [(offset + spread * blobs(n=int(rng.integers(40, 300)), d=d, k=k,
                                        seed=int(rng.integers(1 << 30)))).astype(dtype)
               for _ in etas]
    w, m, c = random_params(batches[0].astype(np.float64), k, covariance_type, seed=seed)
    params = GaussianParams(w, m, c, precisions_cholesky_from_covariances(c, covariance_type))
    shift = np.ascontiguousarray(m if covariance_type != "tied"
                                 else np.broadcast_to(w @ m, m.shape))
    running = _stats(batches[0], params, covariance_type, shift)
    for Xb, eta in zip(batches[1:], etas[1:]):
        running = running.blend(_stats(Xb, params, covariance_type, shift), eta)
        new = m_step(running, 1e-6, dtype)  # raises if not positive definite
        covs = new.covariances
        if covariance_type in ("full", "tied"):
            mats = covs[None] if covariance_type == "tied" else covs
            assert (np.linalg.eigvalsh(mats) > 0).all()
        else:
            assert (covs > 0).all()
        assert np.isfinite(new.means).all()
        assert new.weights.sum() == pytest.approx(1.0, abs=1e-12)


# --------------------------------------------------------------------------
# quality against batch EM
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mixture_200k():
    X, _, _ = make_mixture(200_000, 5, 6, random_state=0)
    return X


def test_two_epochs_reach_batch_optimum(mixture_200k, covariance_type):
    X = mixture_200k
    init = _start(X, covariance_type, 6)
    batch = GaussianMixture(6, covariance_type=covariance_type, tol=1e-9, max_iter=1000,
                            **init).fit(X)
    online = MiniBatchGaussianMixture(6, covariance_type=covariance_type, max_iter=2,
                                      max_no_improvement=None, random_state=0,
                                      **init).fit(X)
    assert online.n_iter_ == 2
    gap = batch.score(X) - online.score(X)
    assert gap < 2e-3, f"{covariance_type}: {gap:.2e} nats per sample below batch EM"


def test_partial_fit_on_a_stream_predicts_like_fit(covariance_type):
    X, _, _ = make_mixture(110_000, 4, 5, random_state=7)
    train, held_out = X[:100_000], X[100_000:]
    init = _start(train, covariance_type, 5)
    batch = GaussianMixture(5, covariance_type=covariance_type, tol=1e-6, max_iter=500,
                            **init).fit(train)
    # both from the same start, so that the test is about the updates, not
    # about two initialisations finding different local optima
    online = MiniBatchGaussianMixture(5, covariance_type=covariance_type, **init)
    for i0 in range(0, len(train), 1000):  # a stream of 1000-row batches, in order
        online.partial_fit(train[i0:i0 + 1000])
    assert online.n_steps_ == 100 and online.n_samples_seen_ == len(train)
    a, b = online.predict(held_out), batch.predict(held_out)
    # the stream's model may number its components differently
    counts = np.zeros((5, 5))
    np.add.at(counts, (a, b), 1)
    rows, cols = linear_sum_assignment(-counts)
    agreement = counts[rows, cols].sum() / len(held_out)
    assert agreement >= 0.99


# --------------------------------------------------------------------------
# fit: warm-up, epochs, early stopping, reproducibility
# --------------------------------------------------------------------------


def test_fit_is_reproducible_and_stops_early():
    X, _, _ = make_mixture(30_000, 3, 4, random_state=3)
    a = MiniBatchGaussianMixture(4, batch_size=256, random_state=5).fit(X)
    b = MiniBatchGaussianMixture(4, batch_size=256, random_state=5).fit(X)
    for name in FITTED:
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert a.converged_ and a.n_iter_ < a.max_iter
    # the rule applies only once the EWA has covered its span (n / (2 batch_size) batches)
    assert len(a.lower_bounds_) >= int(np.ceil(30_001 / 512))
    c = MiniBatchGaussianMixture(4, batch_size=256, random_state=6).fit(X)
    assert not np.array_equal(a.means_, c.means_)


def test_max_no_improvement_none_runs_all_epochs():
    X = blobs(n=2000, d=2, k=2, seed=4)
    m = MiniBatchGaussianMixture(2, batch_size=200, max_iter=3, max_no_improvement=None,
                                 random_state=0).fit(X)
    assert m.n_iter_ == 3 and not m.converged_
    assert m.n_steps_ == 1 + 3 * 10  # the warm-up update, then 10 batches per epoch


def test_warm_start_continues():
    X = blobs(n=3000, d=2, k=2, seed=5)
    m = MiniBatchGaussianMixture(2, batch_size=300, max_iter=1, max_no_improvement=None,
                                 warm_start=True, random_state=0).fit(X)
    steps = m.n_steps_
    m.fit(X)
    assert m.n_steps_ == steps + 10


def test_float32_batches_and_fitted_api():
    X = blobs(n=5000, d=3, k=3, seed=6)
    m = MiniBatchGaussianMixture(3, covariance_type="diag", random_state=0)
    for i0 in range(0, 5000, 1000):
        m.partial_fit(X[i0:i0 + 1000].astype(np.float32))
    assert m.means_.dtype == np.float64
    assert m.predict(X).shape == (5000,)
    assert_allclose(m.predict_proba(X).sum(axis=1), 1.0, rtol=1e-12)
    assert np.isfinite(m.score_samples(X)).all()
    assert np.isfinite(m.bic(X)) and np.isfinite(m.aic(X))
    Xs, ys = m.sample(50)
    assert Xs.shape == (50, 3) and ys.shape == (50,)
    c = clone(m)
    assert c.get_params() == m.get_params() and not hasattr(c, "means_")


# --------------------------------------------------------------------------
# bad input
# --------------------------------------------------------------------------


def _snapshot(m):
    return {a: np.copy(getattr(m, a)) for a in FITTED + ["n_steps_", "n_samples_seen_"]}


def test_bad_batches_raise_and_leave_the_model_unchanged():
    X = blobs(n=2000, d=3, k=3, seed=8)
    m = MiniBatchGaussianMixture(3, random_state=0).partial_fit(X[:1000])
    before = _snapshot(m)
    bad = X[1000:1500].copy()
    bad[17, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        m.partial_fit(bad)
    with pytest.raises(ValueError, match="3 features"):
        m.partial_fit(X[1000:1500, :2])
    with pytest.raises(ValueError, match="sample_weight"):
        m.partial_fit(X[1000:1500], sample_weight=np.ones(3))
    after = _snapshot(m)
    for name, value in before.items():
        assert np.array_equal(after[name], value), name
    m.partial_fit(X[1000:1500])
    assert m.n_steps_ == 2


def test_first_batch_smaller_than_n_components_raises():
    m = MiniBatchGaussianMixture(5)
    with pytest.raises(ValueError, match="fewer than n_components = 5"):
        m.partial_fit(np.random.default_rng(0).normal(size=(4, 2)))
    assert not hasattr(m, "means_")
    m.partial_fit(np.random.default_rng(0).normal(size=(50, 2)))
    assert m.n_steps_ == 1


@pytest.mark.parametrize("param, value", [("learning_decay", 0.5), ("learning_decay", 1.2),
                                          ("learning_offset", -1.0), ("batch_size", 0)])
def test_invalid_hyperparameters(param, value):
    X = blobs(n=200, d=2, k=2, seed=9)
    with pytest.raises(ValueError, match=param):
        MiniBatchGaussianMixture(2, **{param: value}).fit(X)
