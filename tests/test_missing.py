"""``missing='em'``: Gaussian mixtures fitted on incomplete data (NaN =
missing at random), checked against the reference of ``tests/reference.py``
(Ghahramani & Jordan 1994, computed through Sigma_oo; fastem goes through
the precision), the closed-form maximum likelihood of monotone data, and
the complete-data fit."""

import numba
import numpy as np
import pytest
import reference as ref
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import ConvergenceWarning

import fastem
from fastem import _config
from fastem._stats import precisions_cholesky_from_covariances

TYPES = ["full", "tied", "diag", "spherical"]


def _blobs(n=300, d=4, K=3, seed=0):
    rng = np.random.default_rng(seed)
    centres = 4 * rng.normal(size=(K, d))
    return rng.normal(size=(n, d)) + centres[rng.integers(K, size=n)]


def _holes(X, kind, seed=1):
    """X with NaN: MCAR at 5% or 30%, a column mostly missing, monotone."""
    rng = np.random.default_rng(seed)
    X = X.copy()
    n, d = X.shape
    if kind.startswith("mcar"):
        X[rng.random(X.shape) < float(kind[4:]) / 100] = np.nan
    elif kind == "column":
        X[rng.random(n) < 0.85, d - 1] = np.nan
    elif kind == "monotone":  # column j missing => every later column missing
        first = rng.choice([d, d, d - 1, d - 2, 1], size=n)
        X[np.arange(d)[None, :] >= first[:, None]] = np.nan
    full = np.isnan(X).all(axis=1)
    X[full, 0] = 0.0  # no row without an observed value
    return X


PATTERNS = ["mcar5", "mcar30", "column", "monotone"]


def _start(X, K, ct, seed=0):
    """Parameters to start both implementations from: a short fastem fit."""
    m = fastem.GaussianMixture(K, covariance_type=ct, max_iter=2, random_state=seed,
                               missing="em").fit(X)
    return m.weights_, m.means_, m.covariances_


def _from(params, ct, **kw):
    w, mu, cov = params
    prec = precisions_cholesky_from_covariances(cov, ct)
    precisions = {"full": lambda: np.einsum("kab,kcb->kac", prec, prec),
                  "tied": lambda: prec @ prec.T}.get(ct, lambda: prec**2)()
    return fastem.GaussianMixture(len(w), covariance_type=ct, weights_init=w, means_init=mu,
                                  precisions_init=precisions, missing="em", tol=0, **kw)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("kind", PATTERNS)
@pytest.mark.parametrize("ct", TYPES)
def test_em_matches_the_reference_after_1_and_25_iterations(ct, kind):
    X = _holes(_blobs(), kind)
    start = _start(X, 3, ct)
    for n_iter in (1, 25):
        m = _from(start, ct, max_iter=n_iter).fit(X)
        (w, mu, cov), lls = ref.em_missing(X, start, n_iter, ct, 1e-6)
        assert_allclose(m.weights_, w, rtol=1e-10, atol=1e-13)
        assert_allclose(m.means_, mu, rtol=1e-10, atol=1e-12)
        assert_allclose(m.covariances_, cov, rtol=1e-10, atol=1e-12)
        assert_allclose(m.lower_bounds_, lls, rtol=1e-10)


@pytest.mark.parametrize("ct", TYPES)
def test_per_row_outputs_are_the_observed_data_marginals(ct):
    X = _holes(_blobs(seed=3), "mcar30", seed=4)
    m = fastem.GaussianMixture(3, covariance_type=ct, random_state=0, missing="em").fit(X)
    log_norm, resp, _, _ = ref.estep_missing(X, m.weights_, m.means_, m.covariances_, ct)
    assert_allclose(m.score_samples(X), log_norm, rtol=1e-11)
    assert_allclose(m.predict_proba(X), resp, rtol=1e-9, atol=1e-12)
    assert_array_equal(m.predict(X), resp.argmax(axis=1))
    assert m.score(X) == pytest.approx(log_norm.mean(), rel=1e-12)
    p = m._n_parameters()
    assert m.bic(X) == pytest.approx(-2 * log_norm.sum() + p * np.log(len(X)), rel=1e-12)
    assert m.aic(X) == pytest.approx(-2 * log_norm.sum() + 2 * p, rel=1e-12)
    filled = fastem._missing.conditional_means(
        X, fastem._missing.Patterns(X), m._get_params_tuple(), ct)
    want = ref.impute_missing(X, m.weights_, m.means_, m.covariances_, ct)
    assert_array_equal(filled[~np.isnan(X)], X[~np.isnan(X)])
    assert_allclose(filled, want, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("ct", TYPES)
def test_without_nan_the_fit_of_raise_bitwise(ct):
    X = _blobs(2000, 3, 3, seed=5)
    a = fastem.GaussianMixture(3, covariance_type=ct, random_state=0).fit(X)
    b = fastem.GaussianMixture(3, covariance_type=ct, random_state=0, missing="em").fit(X)
    for attr in ("weights_", "means_", "covariances_", "lower_bounds_"):
        assert_array_equal(np.asarray(getattr(a, attr)), np.asarray(getattr(b, attr)))
    assert_array_equal(a.score_samples(X), b.score_samples(X))


def test_monotone_data_reach_the_closed_form_maximum():
    """One component, full covariance, monotone missingness: EM converges
    to the factored-likelihood MLE (Anderson 1957)."""
    rng = np.random.default_rng(7)
    cov = np.array([[2.0, 0.8, 0.3], [0.8, 1.5, 0.5], [0.3, 0.5, 1.0]])
    X = rng.multivariate_normal([1.0, -2.0, 0.5], cov, size=400)
    X[200:, 2] = np.nan
    X[320:, 1:] = np.nan
    mu, sigma = ref.monotone_normal_mle(X)
    m = fastem.GaussianMixture(1, reg_covar=0.0, tol=0, max_iter=3000, missing="em")
    with pytest.warns(ConvergenceWarning):  # tol=0: EM's linear rate, run out
        m.fit(X)
    assert_allclose(m.means_[0], mu, rtol=1e-8, atol=1e-10)
    assert_allclose(m.covariances_[0], sigma, rtol=1e-8, atol=1e-10)


def test_dropping_the_conditional_covariance_would_show():
    """Impute-then-fit (the conditional means as data, no C) shrinks the
    variances; missing='em' keeps them."""
    rng = np.random.default_rng(8)
    X = rng.multivariate_normal([0, 0, 0], [[1, .6, .3], [.6, 1, .4], [.3, .4, 1]], 4000)
    Xm = _holes(X, "mcar30", seed=9)
    em = fastem.GaussianMixture(1, missing="em", tol=1e-10, max_iter=1000).fit(Xm)
    filled = fastem._missing.conditional_means(
        Xm, fastem._missing.Patterns(Xm), em._get_params_tuple(), "full")
    naive = fastem.GaussianMixture(1).fit(filled)
    truth = np.cov(X.T, bias=True)
    assert np.all(np.diag(naive.covariances_[0]) < 0.9 * np.diag(em.covariances_[0]))
    assert_allclose(np.diag(em.covariances_[0]), np.diag(truth), rtol=0.1)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10**6), rate=st.floats(0.05, 0.5),
       ct=st.sampled_from(TYPES))
def test_the_observed_likelihood_never_decreases(seed, rate, ct):
    rng = np.random.default_rng(seed)
    X = _blobs(150, 3, 2, seed=seed)
    X[rng.random(X.shape) < rate] = np.nan
    X[np.isnan(X).all(axis=1), 0] = 0.0
    m = fastem.GaussianMixture(2, covariance_type=ct, tol=0, max_iter=30, random_state=seed,
                               missing="em", on_collapse="raise")
    try:
        m.fit(X)
    except ValueError as exc:  # a collapse on a tiny random sample is not the point
        assert "ill-defined empirical covariance" in str(exc)
        return
    lb = np.asarray(m.lower_bounds_)
    assert np.all(np.diff(lb) >= -1e-10 * np.abs(lb[1:]))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("ct", TYPES)
def test_bitwise_identical_for_1_2_5_64_threads(ct, monkeypatch):
    X = _holes(_blobs(30_000, 3, 3, seed=11), "mcar30", seed=12)
    fits = []
    for threads in (1, 2, 5, 64):
        monkeypatch.setattr(numba, "get_num_threads", lambda t=threads: t)
        monkeypatch.setattr(_config, "SERIAL_WORK", 0)
        fits.append(fastem.GaussianMixture(3, covariance_type=ct, max_iter=4, tol=0,
                                           random_state=0, missing="em").fit(X))
        monkeypatch.undo()
    for m in fits[1:]:
        for attr in ("weights_", "means_", "covariances_", "lower_bounds_"):
            assert_array_equal(np.asarray(getattr(m, attr)),
                               np.asarray(getattr(fits[0], attr)))


def test_rows_without_any_value_are_named():
    X = _blobs(50)
    X[[3, 17], :] = np.nan
    with pytest.raises(ValueError, match=r"2 rows with every value missing.*rows 3, 17"):
        fastem.GaussianMixture(2, missing="em").fit(X)
    m = fastem.GaussianMixture(2, missing="em", random_state=0).fit(_blobs(50))
    for method in (m.predict, m.predict_proba, m.score_samples, m.score, m.bic):
        with pytest.raises(ValueError, match="rows 3, 17"):
            method(X)
    with pytest.raises(ValueError, match="1 row with every value missing.*row 2"):
        m.score(X[15:18])


def test_nan_is_refused_by_default_and_inf_always():
    X = _holes(_blobs(50), "mcar5")
    with pytest.raises(ValueError, match="non-finite"):
        fastem.GaussianMixture(2).fit(X)
    X[0, 0] = np.inf
    with pytest.raises(ValueError, match="inf: 1"):
        fastem.GaussianMixture(2, missing="em").fit(X)
    with pytest.raises(ValueError, match="missing"):
        fastem.GaussianMixture(2, missing="maybe").fit(_blobs(50))


def test_float32_input():
    X = _holes(_blobs(400, seed=13), "mcar30", seed=14)
    a = fastem.GaussianMixture(3, random_state=0, missing="em").fit(X)
    b = fastem.GaussianMixture(3, random_state=0, missing="em").fit(X.astype(np.float32))
    assert_allclose(b.means_, a.means_, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("d", [5, 70])
def test_patterns_group_the_rows(d):
    """Rows grouped by missingness pattern, one integer key a row up to 64
    features and the rows' bytes beyond."""
    from fastem._missing import Patterns

    rng = np.random.default_rng(d)
    X = rng.normal(size=(200, d))
    masks = rng.random((4, d)) < 0.3
    masks[:, 0] = False
    which = rng.integers(-1, 4, size=200)  # -1: complete
    for i, w in enumerate(which):
        if w >= 0:
            X[i, masks[w]] = np.nan
    p = Patterns(X)
    assert_array_equal(p.complete, np.flatnonzero(~np.isnan(X).any(axis=1)))
    seen = np.concatenate([p.complete] + [rows for _, rows in p.groups])
    assert_array_equal(np.sort(seen), np.arange(200))
    for miss, rows in p.groups:
        assert miss.any() and np.all(np.isnan(X[rows]) == miss)
        assert np.all(np.diff(rows) > 0)
    assert len(p.groups) == len({tuple(m) for m in masks[np.unique(which[which >= 0])]
                                 if m.any()})


# ----------------------------------------------------------------------
# impute and MixtureImputer
# ----------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_impute_fills_only_the_holes(dtype):
    X = _holes(_blobs(300, seed=15), "mcar30", seed=16).astype(dtype)
    X[7] = np.nan  # nothing observed: the mixture's mean
    m = fastem.GaussianMixture(3, random_state=0).fit(_blobs(300, seed=15))  # fitted whole
    filled = m.impute(X)
    assert filled.dtype == dtype and not np.isnan(filled).any()
    holes = np.isnan(X)
    assert_array_equal(filled[~holes], X[~holes])
    want = ref.impute_missing(np.delete(X, 7, axis=0).astype(np.float64), m.weights_,
                              m.means_, m.covariances_, "full")
    tol = 1e-10 if dtype == np.float64 else 1e-5
    assert_allclose(np.delete(filled, 7, axis=0), want, rtol=tol, atol=tol)
    assert_allclose(filled[7], m.weights_ @ m.means_, rtol=tol)
    assert_array_equal(m.impute(_blobs(20)), _blobs(20))  # nothing to fill


def test_the_imputer_is_a_transformer():
    from sklearn.base import clone
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline

    pd = pytest.importorskip("pandas")
    rng = np.random.default_rng(17)
    X = rng.multivariate_normal([0, 1, 2], [[1, .8, .2], [.8, 1, .3], [.2, .3, 1]], 3000)
    Xm = _holes(X, "mcar30", seed=18)
    frame = pd.DataFrame(Xm, columns=["a", "b", "c"])
    imp = fastem.MixtureImputer(random_state=0)
    filled = imp.fit_transform(frame)
    assert_array_equal(filled, imp.mixture_.impute(frame))
    assert list(imp.get_feature_names_out()) == ["a", "b", "c"]
    assert imp.mixture_.missing == "em" and imp.n_features_in_ == 3
    rmse = np.sqrt(np.mean((filled - X)[np.isnan(Xm)] ** 2))
    mean_rmse = np.sqrt(np.mean((np.nanmean(Xm, axis=0) - X)[np.isnan(Xm)] ** 2))
    assert rmse < 0.85 * mean_rmse  # correlated columns: better than the column means
    model = make_pipeline(clone(imp), LinearRegression()).fit(Xm, X[:, 0])
    assert model.score(Xm, X[:, 0]) > 0.5
    with pytest.raises(ValueError, match="n_components"):
        fastem.MixtureImputer(n_components=0).fit(Xm)


def test_posterior_draws_are_reproducible_and_centred():
    rng = np.random.default_rng(19)
    X = rng.multivariate_normal([0, 0], [[1, .9], [.9, 1]], 2000)
    Xm = X.copy()
    Xm[:1000, 1] = np.nan
    a = fastem.MixtureImputer(sample_posterior=True, random_state=3).fit(Xm)
    b = fastem.MixtureImputer(sample_posterior=True, random_state=3).fit(Xm)
    before = a.mixture_.means_.copy()
    draws = np.stack([a.transform(Xm) for _ in range(400)])
    assert_array_equal(draws[0], b.transform(Xm))  # the same seed, the same draws
    assert_array_equal(a.mixture_.means_, before)  # the fit is not touched
    assert_array_equal(draws[:, 1000:], np.broadcast_to(Xm[1000:], (400, 1000, 2)))
    mean = a.mixture_.impute(Xm)[:1000, 1]
    # the average of 400 draws: within 5 standard errors of the conditional mean
    sd = np.sqrt(a.mixture_.covariances_[0, 1, 1] * (1 - 0.9**2))
    assert np.abs(draws[:, :1000, 1].mean(axis=0) - mean).max() < 5 * 1.1 * sd / np.sqrt(400)
    spread = draws[:, :1000, 1].std(axis=0).mean()
    assert 0.8 * sd < spread < 1.2 * sd


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("ct", ["full", "diag"])
def test_the_online_estimator_takes_nan(ct):
    X = _holes(_blobs(8000, 3, 2, seed=21), "mcar30", seed=22)
    batch = fastem.GaussianMixture(2, covariance_type=ct, random_state=0, missing="em").fit(X)
    online = fastem.MiniBatchGaussianMixture(2, covariance_type=ct, random_state=0,
                                             missing="em", batch_size=500).fit(X)
    order = np.argsort(batch.means_[:, 0]), np.argsort(online.means_[:, 0])
    assert_allclose(online.means_[order[1]], batch.means_[order[0]], atol=0.1)
    assert online.score(X) == pytest.approx(batch.score(X), abs=0.02)
    stream = fastem.MiniBatchGaussianMixture(2, covariance_type=ct, random_state=0,
                                             missing="em")
    for i in range(0, 4000, 500):
        stream.partial_fit(X[i:i + 500])
    stream.partial_fit(_blobs(500, 3, 2, seed=21))  # a batch without NaN
    assert stream.n_steps_ == 9 and np.isfinite(stream.score(X))
    with pytest.raises(ValueError, match="non-finite"):
        fastem.MiniBatchGaussianMixture(2).fit(X)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("ct", ["full", "diag"])
def test_out_of_core_and_dask_input_with_nan(ct, tmp_path, monkeypatch):
    """A memory-mapped file and a dask array with NaN: chunk by chunk (a
    chunk with NaN through the missing-data workspace), the in-memory fit."""
    da = pytest.importorskip("dask.array")
    X = _holes(_blobs(3000, 3, 2, seed=23), "mcar30", seed=24)
    path = tmp_path / "x.npy"
    np.save(path, X)
    monkeypatch.setattr(_config, "CHUNK_BYTES", 20_000, raising=False)
    kw = {"covariance_type": ct, "random_state": 0, "missing": "em", "max_iter": 8, "tol": 0}
    whole = fastem.GaussianMixture(2, **kw).fit(X)
    mapped = fastem.GaussianMixture(2, **kw).fit(np.load(path, mmap_mode="r"))
    lazy = fastem.GaussianMixture(2, **kw).fit(da.from_array(X, chunks=700))
    for m in (mapped, lazy):
        assert_allclose(m.means_, whole.means_, rtol=1e-10, atol=1e-12)
        assert_allclose(m.covariances_, whole.covariances_, rtol=1e-10, atol=1e-12)
    assert_allclose(mapped.score_samples(np.load(path, mmap_mode="r")), whole.score_samples(X),
                    rtol=1e-10)
    assert_allclose(np.asarray(lazy.predict_proba(da.from_array(X, chunks=700))),
                    whole.predict_proba(X), rtol=1e-9, atol=1e-12)
    bad = X.copy()
    bad[2500] = np.nan
    with pytest.raises(ValueError, match="row 2500"):
        fastem.GaussianMixture(2, **kw).fit(da.from_array(bad, chunks=700))
    np.save(path, bad)
    with pytest.raises(ValueError, match="row 2500"):
        fastem.GaussianMixture(2, **kw).fit(np.load(path, mmap_mode="r"))


def test_select_takes_missing_em():
    """fastem.select(..., missing='em'): every grid point fitted on the
    observed entries, its criteria from the observed-data marginal."""
    X = _holes(_blobs(400, 2, 2, seed=25), "mcar30", seed=26)
    result = fastem.select(X, range(1, 4), ("full", "diag"), missing="em", random_state=0)
    best = result.best_params_
    m = fastem.GaussianMixture(best["n_components"], covariance_type=best["covariance_type"],
                               missing="em", random_state=0).fit(X)
    assert result.best_score_ == pytest.approx(m.bic(X), rel=1e-10)
    assert len(result.table) == 6 and np.isfinite(result.table["bic"]).all()
    with pytest.raises(ValueError, match="missing='em'"):
        fastem.select(X, range(1, 3))
    B = (np.random.default_rng(0).random((400, 5)) < 0.5).astype(float)
    B[np.random.default_rng(1).random(B.shape) < 0.2] = np.nan
    B[np.isnan(B).all(axis=1), 0] = 1.0
    assert np.isfinite(fastem.select(B, [1, 2], family="bernoulli", missing="em",
                                     random_state=0).best_score_)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_the_speed_benchmark_runs(capsys):
    """benchmarks/missing_speed.py (the tables of docs/missing.md) at a smoke size."""
    import os
    import runpy

    script = os.path.join(os.path.dirname(os.path.dirname(fastem.__file__)), "benchmarks",
                          "missing_speed.py")
    out = runpy.run_path(script)["main"](["--n", "4000", "--repeats", "1", "--dims", "4"])
    printed = capsys.readouterr().out
    assert "| mcar10 |" in printed and "| 3 patterns |" in printed and "| 4 |" in printed
    assert set(out) == {"d16", "d4"} and all(v == v for t in out.values() for v in t.values())


@pytest.fixture(params=[4096, 1], ids=["kernel", "large-pattern path"])
def large_patterns(request, monkeypatch):
    """Patterns of at least this many rows run the fused kernel on their
    observed columns: 1 sends every pattern there."""
    monkeypatch.setattr(fastem._missing, "LARGE_PATTERN_ROWS", request.param)
    return request.param


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("kind", ["mcar30", "column", "monotone"])
@pytest.mark.parametrize("ct", TYPES)
def test_both_paths_match_the_reference(ct, kind, large_patterns):
    X = _holes(_blobs(), kind)
    start = _start(X, 3, ct)
    m = _from(start, ct, max_iter=3).fit(X)
    (w, mu, cov), lls = ref.em_missing(X, start, 3, ct, 1e-6)
    assert_allclose(m.means_, mu, rtol=1e-10, atol=1e-12)
    assert_allclose(m.covariances_, cov, rtol=1e-10, atol=1e-12)
    assert_allclose(m.lower_bounds_, lls, rtol=1e-10)
    log_norm, resp, _, _ = ref.estep_missing(X, m.weights_, m.means_, m.covariances_, ct)
    assert_allclose(m.score_samples(X), log_norm, rtol=1e-11)
    assert_allclose(m.predict_proba(X), resp, rtol=1e-9, atol=1e-12)
    assert_allclose(m.impute(X), ref.impute_missing(X, m.weights_, m.means_, m.covariances_,
                                                    ct), rtol=1e-10, atol=1e-12)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("ct", TYPES)
def test_sample_weight_with_missing_entries(ct, large_patterns):
    """Weights (some 0) on incomplete rows: the reference's weighted EM, and
    the same fit for weights rescaled by 1e6 (both missing-data paths)."""
    X = _holes(_blobs(seed=27), "mcar30", seed=28)
    w = np.random.default_rng(29).uniform(0, 3, size=len(X))
    w[:40] = 0.0
    start = _start(X, 3, ct)
    m = _from(start, ct, max_iter=4).fit(X, sample_weight=w)
    (_, mu, cov), lls = ref.em_missing(X, start, 4, ct, 1e-6, sample_weight=w)
    assert_allclose(m.means_, mu, rtol=1e-10, atol=1e-12)
    assert_allclose(m.covariances_, cov, rtol=1e-10, atol=1e-12)
    assert_allclose(m.lower_bounds_, lls, rtol=1e-10)
    scaled = _from(start, ct, max_iter=4).fit(X, sample_weight=w * 1e6)
    assert_allclose(scaled.means_, m.means_, rtol=1e-10, atol=1e-12)
    assert scaled.score(X, sample_weight=w * 1e6) == pytest.approx(m.score(X, sample_weight=w),
                                                                   rel=1e-12)


def test_validation_with_missing_entries_makes_no_copy_of_x():
    """The NaN/inf check of missing='em' reads X in row chunks: no array of
    X's size is made to look past the NaN."""
    import tracemalloc

    from fastem._validation import check_array_2d

    X = np.random.default_rng(30).normal(size=(250_000, 8))
    X[::7, 3] = np.nan
    tracemalloc.start()
    check_array_2d(X, allow_nan=True)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < X.nbytes / 4
    X[5, 0] = np.inf
    with pytest.raises(ValueError, match="inf: 1"):
        check_array_2d(X, allow_nan=True)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.filterwarnings("ignore::fastem.CollapseWarning")
def test_a_starved_component_is_reseeded_from_filled_rows():
    """Collapse recovery restarts a component at a row of the re-seed sample,
    whose missing entries it reads at their columns' observed means: the
    new means are finite, and so is the fit (Gaussian, and categorical codes
    filled with the column's most frequent code)."""
    X = _holes(_blobs(400, 3, 2, seed=31), "mcar30", seed=32)
    centre = np.nanmean(X, axis=0)
    far = np.vstack([centre - 1, centre + 1, [1e3] * 3])  # the third explains nothing
    m = fastem.GaussianMixture(3, means_init=far, max_iter=20, missing="em",
                               random_state=0).fit(X)
    assert any(e[2] == "reseed" for e in m.collapse_events_)
    assert np.isfinite(m.means_).all() and np.isfinite(m.covariances_).all()
    codes = np.random.default_rng(33).integers(0, 3, size=(300, 3)).astype(float)
    codes[np.random.default_rng(34).random(codes.shape) < 0.3] = np.nan
    codes[np.isnan(codes).all(axis=1), 0] = 1.0
    c = fastem.CategoricalMixture(3, weights_init=[0.998, 0.001, 0.001], max_iter=20,
                                  missing="em", random_state=0).fit(codes)
    assert any(e[2] == "reseed" for e in c.collapse_events_)
    assert all(np.isfinite(p).all() for p in c.probabilities_)
