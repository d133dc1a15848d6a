"""Hidden Markov models beyond hmmlearn's behaviour: missing observations,
sequence weights, restarts, structural zeros, monotone EM, thread
independence, input errors, a failed call leaving the model as it was.
(Agreement with hmmlearn 0.3.3 is in test_hmm_hmmlearn.py.)"""

import logging

import numba
import numpy as np
import pytest
import reference as ref
from scipy.special import gammaln

from fastem import CategoricalHMM, GaussianHMM, PoissonHMM

K, D = 3, 2
MEANS = np.array([[0.0, 0.0], [5.0, 5.0], [-5.0, 4.0]])
PI = np.array([0.5, 0.3, 0.2])
A = np.array([[0.8, 0.1, 0.1], [0.2, 0.7, 0.1], [0.1, 0.2, 0.7]])
LENGTHS = [70, 1, 45, 60]
COVS = {"spherical": np.array([1.0, 2.0, 1.5]),
        "diag": np.array([[1.0, 2.0], [1.5, 0.5], [1.0, 1.0]]),
        "full": np.array([[[1.5, 0.3], [0.3, 1.0]], [[1.0, -0.4], [-0.4, 2.0]],
                          [[0.8, 0.0], [0.0, 0.8]]]),
        "tied": np.array([[1.5, 0.3], [0.3, 1.0]])}


@pytest.fixture(autouse=True)
def _quiet():
    logging.disable(logging.WARNING)
    yield
    logging.disable(logging.NOTSET)


def _states(n, rng, pi=PI, trans=A):
    s = np.empty(n, dtype=int)
    s[0] = rng.choice(len(pi), p=pi)
    for t in range(1, n):
        s[t] = rng.choice(len(pi), p=trans[s[t - 1]])
    return s


def gaussian_data(seed=0, n=None):
    rng = np.random.default_rng(seed)
    n = sum(LENGTHS) if n is None else n
    return MEANS[_states(n, rng)] + rng.normal(size=(n, D))


def full(covars, ct):
    if ct == "full":
        return covars
    if ct == "tied":
        return np.tile(covars, (K, 1, 1))
    if ct == "diag":
        return np.stack([np.diag(c) for c in covars])
    return np.stack([c * np.eye(D) for c in covars])


def gaussian_model(ct, **kw):
    m = GaussianHMM(K, covariance_type=ct, init_params="", **kw)
    m.startprob_ = np.array([0.4, 0.3, 0.3])
    m.transmat_ = np.array([[0.6, 0.2, 0.2], [0.3, 0.5, 0.2], [0.25, 0.25, 0.5]])
    m.means_ = MEANS + 0.5
    m.covars_ = COVS[ct]
    return m


def with_holes(X, rate=0.2, seed=1, empty_rows=(3, 80)):
    X = X.copy()
    rng = np.random.default_rng(seed)
    X[rng.random(X.shape) < rate] = np.nan
    for i in empty_rows:
        X[i] = np.nan
    return X


# ----------------------------------------------------------------------
# missing observations
# ----------------------------------------------------------------------


@pytest.mark.parametrize("ct", ["spherical", "diag", "full", "tied"])
def test_gaussian_missing_one_iteration_equals_reference(ct):
    X = with_holes(gaussian_data())
    kw = dict(means_prior=0.2, means_weight=0.5, covars_prior=0.1, covars_weight=3.5)
    m = gaussian_model(ct, missing="em", n_iter=1, tol=-np.inf, **kw)
    start = gaussian_model(ct)
    logB, xhat, cond = ref.hmm_gaussian_emissions(X, start.means_, full(start._covars_, ct))
    ll, post, starts, trans = ref.hmm_estep(logB, LENGTHS, start.startprob_, start.transmat_)
    # the model's score is the observed-data likelihood, frame densities marginal
    assert start.set_params(missing="em").score(X, LENGTHS) == pytest.approx(ll, rel=1e-12)
    np.testing.assert_allclose(start.predict_proba(X, LENGTHS), post, atol=1e-12)
    m.fit(X, LENGTHS)
    assert m.monitor_.history[0] == pytest.approx(ll, rel=1e-12)
    means, covars = ref.hmm_gaussian_mstep(X, post, xhat, cond, start.means_, ct, **kw)
    pi, trans_new = ref.hmm_chain_mstep(start.startprob_, start.transmat_, starts, trans)
    np.testing.assert_allclose(m.means_, means, rtol=1e-10)
    np.testing.assert_allclose(m._covars_, covars, rtol=1e-10)
    np.testing.assert_allclose(m.startprob_, pi, rtol=1e-10)
    np.testing.assert_allclose(m.transmat_, trans_new, rtol=1e-10)


@pytest.mark.parametrize("ct", ["diag", "full"])
def test_gaussian_missing_likelihood_never_decreases(ct):
    X = with_holes(gaussian_data(2), rate=0.3)
    m = gaussian_model(ct, missing="em", n_iter=15, tol=-np.inf, covars_prior=0.0,
                       covars_weight=1).fit(X, LENGTHS)
    h = np.array(m.monitor_.history)
    assert np.all(np.diff(h) >= -1e-9 * np.abs(h[1:]))
    assert h[-1] > h[0] + 1.0


def test_missing_needs_the_flag_and_complete_data_is_unchanged():
    X = gaussian_data()
    Xh = with_holes(X)
    with pytest.raises(ValueError, match="missing='em'"):
        gaussian_model("diag", n_iter=2).fit(Xh, LENGTHS)
    a = gaussian_model("diag", n_iter=3, tol=-np.inf).fit(X, LENGTHS)
    b = gaussian_model("diag", n_iter=3, tol=-np.inf, missing="em").fit(X, LENGTHS)
    np.testing.assert_array_equal(a.means_, b.means_)
    np.testing.assert_array_equal(a.transmat_, b.transmat_)


def test_gaussian_missing_decode_and_random_start():
    X = with_holes(gaussian_data(3))
    m = GaussianHMM(K, missing="em", random_state=0, n_iter=20).fit(X, LENGTHS)
    assert np.isfinite(m.means_).all() and np.isfinite(m._covars_).all()
    logprob, states = m.decode(X, LENGTHS)
    assert np.isfinite(logprob) and states.shape == (X.shape[0],)
    # an empty frame is carried by the chain alone: its posterior is the chain's
    post = m.predict_proba(X, LENGTHS)
    np.testing.assert_allclose(post.sum(axis=1), 1.0)


def poisson_data(seed=0):
    rng = np.random.default_rng(seed)
    rates = np.array([[1.0, 8.0], [6.0, 1.0], [3.0, 3.0]])
    s = _states(sum(LENGTHS), rng)
    return rng.poisson(rates[s]).astype(float), rates


def test_poisson_missing_one_iteration_equals_reference():
    X, rates = poisson_data()
    X = with_holes(X)
    m = PoissonHMM(K, init_params="", missing="em", n_iter=1, tol=-np.inf, lambdas_prior=0.5,
                   lambdas_weight=0.2)
    m.startprob_, m.transmat_, m.lambdas_ = PI, A, rates + 0.5
    miss = np.isnan(X)
    X0 = np.where(miss, 0.0, X)
    logB = np.stack([np.where(miss, 0.0, X0 * np.log(lam) - lam - gammaln(X0 + 1)).sum(axis=1)
                     for lam in m.lambdas_], axis=1)
    ll, post, starts, trans = ref.hmm_estep(logB, LENGTHS, PI, A)
    assert m.score(X, LENGTHS) == pytest.approx(ll, rel=1e-12)
    m.fit(X, LENGTHS)
    obs = (~miss).astype(float)
    want = (0.5 + post.T @ X0) / (0.2 + post.T @ obs)  # each column's observed weight
    np.testing.assert_allclose(m.lambdas_, want, rtol=1e-10)
    np.testing.assert_allclose(m.transmat_, ref.hmm_chain_mstep(PI, A, starts, trans)[1],
                               rtol=1e-10)


def test_categorical_missing_one_iteration_equals_reference():
    rng = np.random.default_rng(4)
    E = rng.dirichlet(np.ones(4), size=K)
    X = rng.integers(0, 4, size=(sum(LENGTHS), 1)).astype(float)
    X[rng.random(X.shape[0]) < 0.25] = np.nan
    m = CategoricalHMM(K, init_params="", missing="em", n_iter=1, tol=-np.inf,
                       emissionprob_prior=1.5)
    m.startprob_, m.transmat_, m.emissionprob_ = PI, A, E
    miss = np.isnan(X[:, 0])
    codes = np.where(miss, 0, X[:, 0]).astype(int)
    logB = np.where(miss[:, None], 0.0, np.log(E[:, codes].T))
    ll, post, _, _ = ref.hmm_estep(logB, LENGTHS, PI, A)
    assert m.score(X, LENGTHS) == pytest.approx(ll, rel=1e-12)
    m.fit(X, LENGTHS)
    counts = np.stack([post[~miss & (codes == c)].sum(axis=0) for c in range(4)], axis=1)
    want = counts + 0.5
    np.testing.assert_allclose(m.emissionprob_, want / want.sum(axis=1, keepdims=True),
                               rtol=1e-10)
    with pytest.raises(ValueError, match="whole numbers"):
        m.fit(np.array([[0.5], [1.0], [np.nan]]))


# ----------------------------------------------------------------------
# beyond hmmlearn: weights, restarts, structural zeros
# ----------------------------------------------------------------------


@pytest.mark.parametrize("ct", ["diag", "tied"])
def test_sequence_weights_equal_repeated_sequences(ct):
    X = gaussian_data(5)
    parts = np.split(X, np.cumsum(LENGTHS)[:-1])
    w = np.array([2, 1, 0, 3])
    Xr = np.vstack([p for p, c in zip(parts, w) for _ in range(c)])
    Lr = [L for L, c in zip(LENGTHS, w) for _ in range(c)]
    a = gaussian_model(ct, n_iter=5, tol=-np.inf).fit(X, LENGTHS, sample_weight=w)
    b = gaussian_model(ct, n_iter=5, tol=-np.inf).fit(Xr, Lr)
    for name in ("startprob_", "transmat_", "means_", "_covars_"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(a.monitor_.history, b.monitor_.history, rtol=1e-11)


def test_sample_weight_errors():
    X = gaussian_data()
    for bad, match in (([1, 2], "one weight per sequence"), ([1, -1, 1, 1], "non-negative"),
                       ([0, 0, 0, 0], "sums to 0"), ([1, np.nan, 1, 1], "finite")):
        with pytest.raises(ValueError, match=match):
            gaussian_model("diag").fit(X, LENGTHS, sample_weight=bad)


def test_n_init_keeps_the_best_restart():
    X = gaussian_data(6)
    single = GaussianHMM(K, random_state=0, n_iter=8, tol=-np.inf).fit(X, LENGTHS)
    best = GaussianHMM(K, random_state=0, n_iter=8, tol=-np.inf, n_init=5).fit(X, LENGTHS)
    # the first restart is the single run; the others draw on from the same generator
    assert best.monitor_.history[-1] >= single.monitor_.history[-1]
    assert best.monitor_.iter == 8
    finals = []
    for seed in range(6):
        finals.append(GaussianHMM(K, random_state=seed, n_iter=8, tol=-np.inf)
                      .fit(X, LENGTHS).monitor_.history[-1])
    assert len(set(np.round(finals, 6))) > 1  # restarts do land in different optima here


def test_n_init_restarts_keep_user_set_parameters():
    X = gaussian_data(7)
    m = GaussianHMM(K, init_params="mc", n_init=3, random_state=0, n_iter=3, params="mc")
    m.startprob_, m.transmat_ = PI, A
    m.fit(X, LENGTHS)
    np.testing.assert_array_equal(m.startprob_, PI)
    np.testing.assert_array_equal(m.transmat_, A)


def test_left_right_structural_zeros_are_kept():
    rng = np.random.default_rng(8)
    trans = np.array([[0.9, 0.1, 0.0], [0.0, 0.9, 0.1], [0.0, 0.0, 1.0]])
    X = np.vstack([MEANS[_states(50, rng, np.array([1.0, 0, 0]), trans)]
                   + rng.normal(size=(50, D)) for _ in range(6)])
    m = GaussianHMM(K, init_params="mc", params="stmc", n_iter=20, random_state=0)
    m.startprob_ = np.array([1.0, 0.0, 0.0])
    m.transmat_ = np.array([[0.5, 0.5, 0.0], [0.0, 0.5, 0.5], [0.0, 0.0, 1.0]])
    m.fit(X, [50] * 6)
    assert (m.transmat_[np.tril_indices(K, -1)] == 0).all() and m.transmat_[0, 2] == 0
    assert (m.startprob_[1:] == 0).all()
    states = m.predict(X, [50] * 6).reshape(6, 50)
    assert (np.diff(states, axis=1) >= 0).all()  # never moves backwards


def test_impossible_sequence_is_named():
    m = gaussian_model("diag")
    m.startprob_ = np.array([1.0, 0.0, 0.0])
    m.transmat_ = np.eye(K)
    X = gaussian_data()[:10]
    assert m.score(X) > -np.inf
    cat = CategoricalHMM(2, init_params="")
    cat.startprob_ = np.array([1.0, 0.0])
    cat.transmat_ = np.eye(2)
    cat.emissionprob_ = np.array([[1.0, 0.0], [0.0, 1.0]])
    X = np.array([[0], [0], [1]])
    assert cat.score(X) == -np.inf
    with pytest.raises(ValueError, match="probability 0"):
        cat.predict_proba(X)
    with pytest.raises(ValueError, match="probability 0"):
        cat.decode(X)
    with pytest.raises(ValueError, match="Sequence 0 has probability 0"):
        cat.fit(X)


# ----------------------------------------------------------------------
# numerics
# ----------------------------------------------------------------------


@pytest.mark.parametrize("ct", ["spherical", "full"])
def test_likelihood_never_decreases_at_ml_priors(ct):
    X = gaussian_data(9)
    m = GaussianHMM(K, covariance_type=ct, random_state=1, n_iter=25, tol=-np.inf,
                    covars_prior=0.0, covars_weight=1, min_covar=1e-3).fit(X, LENGTHS)
    h = np.array(m.monitor_.history)
    assert np.all(np.diff(h) >= -1e-9 * np.abs(h[1:]))


def test_far_emissions_exact_against_log_space():
    # every frame far from every state: emission log-densities near -800
    X = gaussian_data(10) + 40.0
    m = gaussian_model("diag")
    logB = np.stack([ref.hmm_gaussian_emissions(X, m.means_, full(m._covars_, "diag"))[0]])[0]
    assert logB.max() < -300
    ll, post, _, _ = ref.hmm_estep(logB, LENGTHS, m.startprob_, m.transmat_)
    score, got = m.score_samples(X, LENGTHS)
    assert score == pytest.approx(ll, rel=1e-12)
    np.testing.assert_allclose(got, post, atol=1e-10)


def test_viterbi_equals_brute_force():
    rng = np.random.default_rng(11)
    m = gaussian_model("full")
    for _ in range(5):
        X = MEANS[rng.integers(0, K, 6)] + 2 * rng.normal(size=(6, D))
        logB = ref.hmm_gaussian_emissions(X, m.means_, m._covars_)[0]
        _, best, path = ref.hmm_brute_force(logB, m.startprob_, m.transmat_)
        logprob, states = m.decode(X)
        assert logprob == pytest.approx(best, rel=1e-12)
        np.testing.assert_array_equal(states, path)


def test_fit_is_bitwise_identical_for_one_and_two_threads():
    X = gaussian_data(12, n=None)
    lengths = LENGTHS
    out = []
    for threads in (1, 2):
        numba.set_num_threads(threads)
        try:
            m = gaussian_model("full", n_iter=5, tol=-np.inf).fit(X, lengths)
        finally:
            numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
        out.append((m.means_, m._covars_, m.transmat_, np.array(m.monitor_.history)))
    for a, b in zip(*out):
        np.testing.assert_array_equal(a, b)


# ----------------------------------------------------------------------
# the hmmlearn fixes, and the API
# ----------------------------------------------------------------------


def test_spherical_covars_and_sample_use_each_states_variance():
    m = GaussianHMM(2, covariance_type="spherical", init_params="")
    m.startprob_ = np.array([0.5, 0.5])
    m.transmat_ = np.array([[0.5, 0.5], [0.5, 0.5]])
    m.means_ = np.zeros((2, 3))
    m.covars_ = np.array([0.01, 100.0])
    assert m.covars_.shape == (2, 3, 3)
    np.testing.assert_array_equal(m.covars_[1], 100.0 * np.eye(3))
    X, states = m.sample(4000, random_state=0)
    assert X[states == 0].var() == pytest.approx(0.01, rel=0.1)
    assert X[states == 1].var() == pytest.approx(100.0, rel=0.1)


def test_c_without_m_uses_the_fixed_means():
    X = gaussian_data(13)
    m = gaussian_model("diag", params="c", n_iter=1, tol=-np.inf, covars_prior=0.0,
                       covars_weight=1)
    post = gaussian_model("diag").predict_proba(X, LENGTHS)
    m.fit(X, LENGTHS)
    mu = MEANS + 0.5
    want = np.stack([(post[:, k:k + 1] * (X - mu[k]) ** 2).sum(axis=0) / post[:, k].sum()
                     for k in range(K)])
    np.testing.assert_allclose(m._covars_, want, rtol=1e-10)
    np.testing.assert_array_equal(m.means_, mu)


def test_errors_name_the_problem():
    X = gaussian_data()
    m = gaussian_model("diag", n_iter=2).fit(X, LENGTHS)
    with pytest.raises(ValueError, match="sum to 175, but X has 176"):
        m.score(X, [175])
    with pytest.raises(ValueError, match="positive"):
        m.score(X, [176, 0])
    with pytest.raises(ValueError, match="3 features, but the model has 2"):
        m.score(np.ones((5, 3)))
    with pytest.raises(ValueError, match="non-finite"):
        m.score(np.full((3, 2), np.inf))
    with pytest.raises(ValueError, match="algorithm"):
        GaussianHMM(algorithm="best").fit(X)
    with pytest.raises(ValueError, match="covariance_type"):
        GaussianHMM(covariance_type="round").fit(X)
    with pytest.raises(ValueError, match="Unknown decoder"):
        m.decode(X, algorithm="best")
    cat = CategoricalHMM(2, random_state=0, n_iter=2).fit(np.array([[0], [1], [2], [1]]))
    with pytest.raises(ValueError, match="Largest symbol is 3"):
        cat.score(np.array([[0], [3]]))
    with pytest.raises(ValueError, match="non-negative"):
        cat.score(np.array([[0], [-1]]))
    with pytest.raises(ValueError, match="integers"):
        cat.score(np.array([[0.5], [1.0]]))
    with pytest.raises(ValueError, match=r"shape \(n_samples, 1\)"):
        cat.score(np.array([[0, 1], [1, 0]]))
    poi = PoissonHMM(2, random_state=0, n_iter=2).fit(np.array([[1, 2], [3, 0], [0, 5]]))
    with pytest.raises(ValueError, match="negative value -1"):
        poi.score(np.array([[1, -1]]))
    with pytest.raises(ValueError, match="NaN"):
        poi.score(np.array([[1.0, np.nan]]))


def test_failed_fit_leaves_the_model_as_it_was():
    X = gaussian_data()
    m = gaussian_model("diag", n_iter=2).fit(X, LENGTHS)
    before = {k: np.copy(v) for k, v in vars(m).items() if k.endswith("_") and k != "monitor_"}
    history = list(m.monitor_.history)
    with pytest.raises(ValueError):
        m.fit(X, [10])
    with pytest.raises(ValueError):
        m.fit(np.ones((4, 3)))
    for k, v in before.items():
        np.testing.assert_array_equal(getattr(m, k), v)
    assert list(m.monitor_.history) == history
    cat = CategoricalHMM(2, random_state=0)
    with pytest.raises(ValueError):
        cat.fit(np.array([[0], [-1]]))
    assert cat.n_features is None and not hasattr(cat, "emissionprob_")


def test_monitor_and_verbose(capsys):
    X = gaussian_data()
    m = GaussianHMM(K, random_state=0, n_iter=50, tol=1e-2, verbose=True).fit(X, LENGTHS)
    err = capsys.readouterr().err
    assert m.monitor_.converged and m.monitor_.iter == len(m.monitor_.history)
    assert m.monitor_.iter < 50 and err.count("\n") == m.monitor_.iter
    # set_params after construction reaches the monitor at the next fit
    m.set_params(n_iter=2, tol=-np.inf, verbose=False).fit(X, LENGTHS)
    assert m.monitor_.iter == 2 and m.monitor_.n_iter == 2


def test_sample_continues_from_currstate_and_is_reproducible():
    m = gaussian_model("tied")
    X1, s1 = m.sample(50, random_state=3)
    X2, s2 = m.sample(50, random_state=3)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(s1, s2)
    _, s3 = m.sample(30, random_state=4, currstate=2)
    assert s3[0] == 2
    with pytest.raises(ValueError, match="currstate"):
        m.sample(3, currstate=K)
    for model, X in ((CategoricalHMM(2, random_state=0, n_iter=3), np.array([[0], [1], [2]] * 9)),
                     (PoissonHMM(2, random_state=0, n_iter=3), np.array([[1, 4], [5, 0]] * 9))):
        model.fit(X)
        Xs, states = model.sample(20, random_state=0)
        assert Xs.shape == (20, X.shape[1]) and Xs.dtype.kind == "i"
        assert model.score(Xs) > -np.inf


def test_stationary_distribution():
    m = gaussian_model("diag")
    pi = m.get_stationary_distribution()
    np.testing.assert_allclose(pi @ m.transmat_, pi, atol=1e-12)
    assert pi.sum() == pytest.approx(1.0)


# ----------------------------------------------------------------------
# out of core and Dask: groups of whole sequences
# ----------------------------------------------------------------------


def _memmap(tmp_path, X):
    mm = np.memmap(tmp_path / "x.dat", dtype=X.dtype, mode="w+", shape=X.shape)
    mm[:] = X
    mm.flush()
    return np.memmap(tmp_path / "x.dat", dtype=X.dtype, mode="r", shape=X.shape)


def _long_data(seed=14):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(20, 90, size=30)
    X = MEANS[_states(int(lengths.sum()), rng)] + rng.normal(size=(int(lengths.sum()), D))
    return X, lengths


@pytest.mark.parametrize("ct", ["diag", "full"])
def test_out_of_core_equals_in_memory(tmp_path, monkeypatch, ct):
    from fastem import _config

    monkeypatch.setattr(_config, "CHUNK_BYTES", 8 * D * 300)  # several groups of sequences
    X, lengths = _long_data()
    mm = _memmap(tmp_path, X)
    a = gaussian_model(ct, n_iter=4, tol=-np.inf).fit(X, lengths, sample_weight=np.arange(30) % 3)
    b = gaussian_model(ct, n_iter=4, tol=-np.inf).fit(mm, lengths, sample_weight=np.arange(30) % 3)
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-12)
    np.testing.assert_allclose(a._covars_, b._covars_, rtol=1e-12)
    np.testing.assert_allclose(a.monitor_.history, b.monitor_.history, rtol=1e-12)
    assert a.score(X, lengths) == pytest.approx(b.score(mm, lengths), rel=1e-12)
    np.testing.assert_allclose(a.predict_proba(X, lengths), b.predict_proba(mm, lengths),
                               atol=1e-12)
    np.testing.assert_array_equal(a.predict(X, lengths), b.predict(mm, lengths))
    c = GaussianHMM(K, covariance_type=ct, random_state=0, n_iter=5).fit(mm, lengths)
    assert np.isfinite(c.monitor_.history[-1])


def test_out_of_core_categorical_learns_every_symbol(tmp_path, monkeypatch):
    from fastem import _config

    monkeypatch.setattr(_config, "CHUNK_BYTES", 8 * 200)
    rng = np.random.default_rng(15)
    lengths = rng.integers(20, 60, size=25)
    X = rng.integers(0, 5, size=(int(lengths.sum()), 1))
    X[-1] = 7  # the largest symbol only in the last group
    mm = _memmap(tmp_path, X)
    a = CategoricalHMM(K, random_state=0, n_iter=3).fit(X, lengths)
    b = CategoricalHMM(K, random_state=0, n_iter=3).fit(mm, lengths)
    assert a.n_features == b.n_features == 8
    np.testing.assert_allclose(a.emissionprob_, b.emissionprob_, rtol=1e-12)


def test_dask_chunks_of_whole_sequences():
    da = pytest.importorskip("dask.array")
    X, lengths = _long_data(16)
    ends = np.cumsum(lengths)
    chunks = np.diff(np.concatenate(([0], ends[4::5])))
    dX = da.from_array(X, chunks=(tuple(int(c) for c in chunks), D))
    a = gaussian_model("tied", n_iter=3, tol=-np.inf).fit(X, lengths)
    b = gaussian_model("tied", n_iter=3, tol=-np.inf).fit(dX, lengths)
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-12)
    np.testing.assert_allclose(a.monitor_.history, b.monitor_.history, rtol=1e-12)
    logprob, states = b.decode(dX, lengths)
    np.testing.assert_array_equal(states, a.predict(X, lengths))
    assert logprob == pytest.approx(a.decode(X, lengths)[0], rel=1e-12)
    with pytest.raises(ValueError, match="falls inside sequence"):
        b.fit(da.from_array(X, chunks=(500, D)), lengths)


def test_command_line_refuses_hmm_files(tmp_path, capsys):
    from fastem.cli import main

    m = gaussian_model("diag", n_iter=1).fit(gaussian_data(), LENGTHS)
    path = tmp_path / "hmm.fem"
    m.save(path)
    data = tmp_path / "x.csv"
    np.savetxt(data, gaussian_data()[:20], delimiter=",", header="a,b", comments="")
    for argv in (["predict", str(path), str(data)], ["score", str(path), str(data)],
                 ["sample", str(path), "-n", "3"]):
        assert main(argv) != 0
        assert "hidden Markov model (GaussianHMM)" in capsys.readouterr().err


def test_a_later_family_is_an_emission_without_new_maths():
    """Bernoulli emissions: the linear emission object over the mixture
    family, its log-densities and posterior-weighted statistics against a
    direct computation (what a BernoulliHMM would run)."""
    from fastem._baum_welch import EStep
    from fastem._emissions import Linear
    from fastem.families.linear import Bernoulli

    rng = np.random.default_rng(17)
    P = np.array([[0.9, 0.1, 0.5], [0.2, 0.8, 0.3], [0.5, 0.5, 0.9]])
    X = (rng.random((sum(LENGTHS), 3)) < P[_states(sum(LENGTHS), rng)]).astype(np.uint8)
    em = Linear(Bernoulli(), K, 3, X.shape[0])
    params = em.params(P)
    logB = em.log_densities(X, params, np.empty((X.shape[0], K)))
    want = X @ np.log(P).T + (1 - X) @ np.log1p(-P).T
    np.testing.assert_allclose(logB, want, rtol=1e-12)
    ll, starts, trans, (S0, S1, _) = EStep(em, X, np.array(LENGTHS))(params, PI, A)
    rll, post, rstarts, rtrans = ref.hmm_estep(want, LENGTHS, PI, A)
    assert ll == pytest.approx(rll, rel=1e-12)
    np.testing.assert_allclose(S0, post.sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(S1, post.T @ X, rtol=1e-12)
    np.testing.assert_allclose(trans, rtrans, rtol=1e-10)


# ----------------------------------------------------------------------
# hostile inputs: each a clear ValueError, nothing half-changed
# ----------------------------------------------------------------------


@pytest.mark.parametrize("make, match", [
    (lambda: GaussianHMM(2, means_prior=np.nan, means_weight=1), "means_prior should be finite"),
    (lambda: GaussianHMM(2, covars_prior="a"), "covars_prior should be a number"),
    (lambda: GaussianHMM(2, startprob_prior=np.inf), "startprob_prior should be finite"),
    (lambda: GaussianHMM(2, min_covar=-1.0), "min_covar should be non-negative"),
    (lambda: GaussianHMM(2, means_weight=-1.0), "means_weight should be non-negative"),
    (lambda: PoissonHMM(2, lambdas_weight=-1.0), "lambdas_weight should be non-negative"),
    (lambda: CategoricalHMM(2, emissionprob_prior=np.nan), "emissionprob_prior should be"),
    (lambda: CategoricalHMM(2, n_features=0), "n_features should be None"),
    (lambda: CategoricalHMM(2, n_features=2.5), "n_features should be None"),
    (lambda: GaussianHMM(2, n_iter=2.0), "n_iter should be"),
])
def test_bad_parameters_are_named(make, match):
    model = make()
    X = np.array([[0], [1], [1], [0]]) if isinstance(model, CategoricalHMM) else \
        np.abs(gaussian_data()[:40])
    with pytest.raises(ValueError, match=match):
        model.fit(X)
    assert not hasattr(model, "startprob_")


def test_absurd_sizes_and_degenerate_data():
    with pytest.raises(ValueError, match="10000000000001 symbols"):
        CategoricalHMM(2).fit(np.array([[0], [10**13]]))
    m = gaussian_model("diag", n_iter=1).fit(gaussian_data(), LENGTHS)
    with pytest.raises(ValueError, match="more than this machine"):
        m.sample(10**14)
    with pytest.raises(ValueError, match="at least n_components = 30 frames"):
        GaussianHMM(30).fit(gaussian_data()[:20])
    with pytest.raises(ValueError, match="at least 2 frames"):
        GaussianHMM(1).fit(np.ones((1, 2)))
    with pytest.raises(ValueError, match="magnitude"):
        GaussianHMM(2).fit(gaussian_data() * 1e200)
    # constant counts: a start without NaN (hmmlearn's gamma draw divides by 0)
    poi = PoissonHMM(2, random_state=0, n_iter=3).fit(np.zeros((20, 2)))
    assert np.isfinite(poi.lambdas_).all()
    assert poi.score(np.zeros((3, 2))) == pytest.approx(0.0, abs=1e-300)


def test_set_parameters_must_be_finite():
    X = gaussian_data()
    m = gaussian_model("diag")
    m.means_ = np.where(MEANS == 0, np.nan, MEANS)
    with pytest.raises(ValueError, match="means_ must hold finite"):
        m.score(X)
    m = gaussian_model("full")
    bad = COVS["full"].copy()
    bad[0, 0, 0] = np.inf
    with pytest.raises(ValueError, match="covars_ must hold finite"):
        m.covars_ = bad


def test_zero_and_rescaled_sequence_weights():
    # a sequence of weight 0 is left out, even one the model finds impossible
    cat = CategoricalHMM(2, init_params="", params="e", n_iter=3, tol=-np.inf)
    cat.startprob_, cat.transmat_ = np.array([1.0, 0.0]), np.eye(2)
    cat.emissionprob_ = np.array([[0.5, 0.5, 0.0], [0.0, 0.0, 1.0]])
    base = {k: np.copy(getattr(cat, k)) for k in ("startprob_", "transmat_", "emissionprob_")}
    X = np.array([[0], [1], [0], [2], [2]])
    cat.fit(X, [3, 2], sample_weight=[1.0, 0.0])
    alone = CategoricalHMM(2, init_params="", params="e", n_iter=3, tol=-np.inf)
    for k, v in base.items():
        setattr(alone, k, v)
    alone.fit(X[:3])
    np.testing.assert_array_equal(cat.emissionprob_, alone.emissionprob_)
    # at maximum-likelihood priors, weights times 1e6 give the same fit
    X = gaussian_data(18)
    w = np.array([1.0, 2.0, 0.5, 3.0])
    ml = dict(n_iter=4, tol=-np.inf, covars_prior=0.0, covars_weight=1)
    a = gaussian_model("full", **ml).fit(X, LENGTHS, sample_weight=w)
    b = gaussian_model("full", **ml).fit(X, LENGTHS, sample_weight=w * 1e6)
    for name in ("startprob_", "transmat_", "means_", "_covars_"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-9, atol=1e-13)


def test_a_failed_refit_keeps_n_features():
    rng = np.random.default_rng(19)
    poi = PoissonHMM(2, random_state=0, n_iter=2).fit(rng.poisson(3, size=(40, 2)))
    with pytest.raises(ValueError):
        poi.fit(rng.poisson(3, size=(40, 3)), [41])
    assert poi.n_features == 2 and np.isfinite(poi.score(rng.poisson(3, size=(5, 2))))
    g = GaussianHMM(2, random_state=0, n_iter=2)
    with pytest.raises(ValueError):
        g.fit(np.ones((1, 3)))
    assert "n_features" not in vars(g)


def test_the_out_of_core_start_reads_at_most_its_sample(tmp_path):
    from fastem._hmm_sources import SequenceChunks

    X, lengths = _long_data(20)
    mm = _memmap(tmp_path, X)
    for lens in (lengths, np.array([X.shape[0]])):  # many sequences; one long one
        chunks = SequenceChunks(mm, lens)
        got = chunks.sample(500, np.random.RandomState(0))
        assert got.shape == (500, D)
        # every row sampled is a row of X, in contiguous runs
        rows = {tuple(r) for r in X}
        assert all(tuple(r) in rows for r in got)
