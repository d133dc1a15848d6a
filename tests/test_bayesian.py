"""BayesianGaussianMixture against scikit-learn's, started from identical
parameters, and its own properties (the lower bound, sample weights, the
prior's checks, inference)."""

import copy
import warnings
from dataclasses import replace

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import BayesianGaussianMixture as SkBGM

from fastem import BayesianGaussianMixture

FITTED = ["weight_concentration_", "mean_precision_", "means_", "degrees_of_freedom_",
          "covariances_", "precisions_cholesky_", "weights_", "precisions_"]
PRIORS = ["weight_concentration_prior_", "mean_precision_prior_", "mean_prior_",
          "degrees_of_freedom_prior_", "covariance_prior_"]
COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]
PRIOR_TYPES = ["dirichlet_process", "dirichlet_distribution"]


def _data(seed=0):
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.normal(0.0, 1.0, (240, 3)),
                   rng.normal(4.0, 2.0, (160, 3)) @ np.array([[1, 0.5, 0], [0, 1, 0], [0, 0, 1]])])
    return X + 10.0  # away from the origin: the shifted statistics matter


def _flat(v):
    if isinstance(v, tuple):
        return np.concatenate([np.ravel(x) for x in v])
    return np.ravel(np.asarray(v, dtype=np.float64))


def _same_start(X, K, resp, **kw):
    """scikit-learn's model initialised from ``resp`` (its own
    ``_initialize``), and fastem's with the same fitted attributes, both
    set to continue with warm_start."""
    sk = SkBGM(n_components=K, warm_start=True, **kw)
    sk._check_parameters(X)
    sk._initialize(X, resp)
    sk._set_parameters(sk._get_parameters())
    sk.converged_, sk.lower_bound_, sk.n_features_in_ = False, -np.inf, X.shape[1]
    fe = BayesianGaussianMixture(n_components=K, warm_start=True, **kw)
    for a in FITTED + ["converged_", "lower_bound_", "n_features_in_"]:
        setattr(fe, a, copy.deepcopy(getattr(sk, a)))
    return sk, fe


def _assert_same(sk, fe, rtol=1e-7):
    for a in FITTED + PRIORS + ["lower_bound_"]:
        assert_allclose(_flat(getattr(fe, a)), _flat(getattr(sk, a)), rtol=rtol, atol=0,
                        err_msg=a)
    assert_allclose(_flat(fe.lower_bounds_), _flat(sk.lower_bounds_), rtol=rtol, atol=0)
    assert fe.n_iter_ == sk.n_iter_


@pytest.mark.parametrize("n_iter", [1, 25])
@pytest.mark.parametrize("prior_type", PRIOR_TYPES)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_equals_scikit_learn_from_the_same_start(covariance_type, prior_type, n_iter):
    X = _data()
    K = 5
    resp = np.random.default_rng(1).dirichlet(np.ones(K), size=X.shape[0])
    sk, fe = _same_start(X, K, resp, covariance_type=covariance_type,
                         weight_concentration_prior_type=prior_type, max_iter=n_iter, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        sk.fit(X)
        fe.fit(X)
    _assert_same(sk, fe)
    # and the inference of the fitted model
    assert_allclose(fe.predict_proba(X), sk.predict_proba(X), rtol=1e-7, atol=1e-12)
    assert_allclose(fe.score_samples(X), sk.score_samples(X), rtol=1e-9)
    assert fe.score(X) == pytest.approx(sk.score(X), rel=1e-9)
    assert_array_equal(fe.predict(X), sk.predict(X))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_equals_scikit_learn_with_given_priors(covariance_type):
    X = _data(seed=2)
    d = X.shape[1]
    K = 4
    cov_prior = {"full": np.eye(d) * 2 + 0.3, "tied": np.eye(d) * 2 + 0.3,
                 "diag": np.array([1.0, 2.0, 3.0]), "spherical": 1.5}[covariance_type]
    kw = dict(covariance_type=covariance_type, weight_concentration_prior=0.01,
              mean_precision_prior=0.5, mean_prior=np.array([9.0, 11.0, 10.0]),
              degrees_of_freedom_prior=d + 2.5, covariance_prior=cov_prior, max_iter=25,
              tol=0.0, reg_covar=1e-4)
    for prior_type in PRIOR_TYPES:
        resp = np.random.default_rng(3).dirichlet(np.ones(K), size=X.shape[0])
        sk, fe = _same_start(X, K, resp, weight_concentration_prior_type=prior_type, **kw)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            sk.fit(X)
            fe.fit(X)
        _assert_same(sk, fe)


@pytest.mark.parametrize("prior_type", PRIOR_TYPES)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_the_lower_bound_never_decreases_and_unused_components_go_to_the_prior(
        covariance_type, prior_type):
    """Two clusters, eight components: the lower bound rises at every
    iteration; the components left without data end with the prior's
    concentration (their weights near 0), as in scikit-learn."""
    rng = np.random.default_rng(4)
    X = np.vstack([rng.normal(0, 1, (300, 2)), rng.normal(9, 1, (300, 2))])
    bgm = BayesianGaussianMixture(n_components=8, covariance_type=covariance_type,
                                  weight_concentration_prior_type=prior_type,
                                  weight_concentration_prior=1e-3, max_iter=500, tol=1e-8,
                                  random_state=0).fit(X)
    lb = np.asarray(bgm.lower_bounds_)
    assert np.all(np.diff(lb) >= -1e-9 * np.abs(lb[1:]))
    assert bgm.converged_
    used = bgm.weights_ > 0.01
    assert used.sum() == 2
    nk = bgm.mean_precision_ - bgm.mean_precision_prior_  # the rows each component holds
    assert nk[used].sum() > 599.0 and nk[~used].sum() < 1.0
    if prior_type == "dirichlet_distribution":  # alpha_0 + nk
        assert np.all(bgm.weight_concentration_[~used] < 1e-3 + 1.0)
        assert np.all(bgm.weight_concentration_[used] > 250.0)
    else:  # the sticks' Beta(1 + nk, gamma + rows after k)
        assert np.all(bgm.weight_concentration_[0][~used] < 2.0)
    assert_allclose(bgm.weights_.sum(), 1.0)


def test_sample_weights_count_rows():
    """A weight of w is the row repeated w times (the prior's moments too),
    and a weight of 0 drops the row."""
    X = _data(seed=5)
    w = np.random.default_rng(6).integers(0, 4, size=X.shape[0]).astype(float)
    Xr = np.repeat(X, w.astype(int), axis=0)
    start = BayesianGaussianMixture(n_components=3, max_iter=2, tol=0.0, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start.fit(Xr)
        a = clone(start).set_params(warm_start=True, max_iter=6)
        b = clone(start).set_params(warm_start=True, max_iter=6)
        for m in (a, b):
            for attr in FITTED + ["converged_", "lower_bound_", "n_features_in_"]:
                setattr(m, attr, copy.deepcopy(getattr(start, attr)))
        a.fit(Xr)
        b.fit(X, sample_weight=w)
    for attr in FITTED + PRIORS + ["lower_bound_"]:
        assert_allclose(_flat(getattr(b, attr)), _flat(getattr(a, attr)), rtol=1e-9,
                        err_msg=attr)


def test_responsibility_entropy_from_the_statistics():
    """sum r log r from the statistics (no (n, K) array) equals the direct
    sum over the responsibilities, for every covariance type."""
    from fastem._estep import EStepWorkspace
    from fastem._variational import kernel_params, kernel_shift, resp_entropy

    X = _data(seed=7)
    for ct in COVARIANCE_TYPES:
        for pt in PRIOR_TYPES:
            bgm = BayesianGaussianMixture(n_components=4, covariance_type=ct,
                                          weight_concentration_prior_type=pt, max_iter=3,
                                          random_state=1)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                bgm.fit(X)
            p = bgm._get_params_tuple()
            eff, offset = kernel_params(p, pt)
            ws = EStepWorkspace(ct, 4, X.shape[1], X.shape[0])
            st = ws.run(X, None, eff, shift=kernel_shift(p, pt, ct))
            st = replace(st, loglik=st.loglik + offset * st.weight)
            got = resp_entropy(st, eff, offset, ct)
            r = bgm.predict_proba(X)
            with np.errstate(divide="ignore", invalid="ignore"):
                want = np.nansum(r * np.log(r))
            assert got == pytest.approx(want, rel=1e-9, abs=1e-8)


def test_parameters_and_clone_are_scikit_learns():
    ours = BayesianGaussianMixture().get_params()
    theirs = SkBGM().get_params()
    assert ours.pop("on_collapse") == "ridge"  # fastem's one addition
    assert ours == theirs
    m = BayesianGaussianMixture(n_components=3, weight_concentration_prior=0.1)
    assert clone(m).get_params() == m.get_params()


def test_no_bic_or_aic_as_in_scikit_learn():
    m = BayesianGaussianMixture(n_components=2, random_state=0).fit(_data())
    assert not hasattr(m, "bic") and not hasattr(m, "aic")
    with pytest.raises(AttributeError, match="lower_bound_"):
        m.bic(_data())


@pytest.mark.parametrize("kw, match", [
    (dict(degrees_of_freedom_prior=1.5), "degrees_of_freedom_prior' should be greater than 2"),
    (dict(mean_prior=[1.0, 2.0]), r"shape of \(3,\)"),
    (dict(mean_prior=[1.0, np.nan, 2.0]), "mean_prior' contains NaN"),
    (dict(mean_prior=["a", "b", "c"]), "'mean_prior' should be an array of real numbers"),
    (dict(mean_prior=[1e300, 0.0, 0.0]), "'mean_prior' has values of magnitude 1e"),
    (dict(covariance_prior=[[1.0, "x", 0.0]] * 3), "'covariance_prior' should be an array of"),
    (dict(covariance_prior=np.eye(2)), r"shape of \(3, 3\)"),
    (dict(covariance_prior=-np.eye(3)), "positive-definite"),
    (dict(covariance_type="diag", covariance_prior=[1.0, -1.0, 1.0]), "should be positive"),
    (dict(covariance_type="spherical", covariance_prior=[1.0, 2.0]), "positive float"),
    (dict(weight_concentration_prior_type="dirichlet"), "weight_concentration_prior_type"),
    (dict(weight_concentration_prior=0.0), "weight_concentration_prior"),
])
def test_bad_priors_are_named_and_a_fitted_model_is_kept(kw, match):
    X = _data()
    m = BayesianGaussianMixture(n_components=2, random_state=0).fit(X)
    before = {a: copy.deepcopy(getattr(m, a)) for a in FITTED + PRIORS}
    m.set_params(**kw)
    with pytest.raises(ValueError, match=match):
        m.fit(X)
    for a, v in before.items():
        assert_array_equal(_flat(getattr(m, a)), _flat(v))


def test_default_priors_need_a_total_weight_above_one():
    X = _data()
    w = np.full(X.shape[0], 1.0 / X.shape[0])
    with pytest.raises(ValueError, match="total sample weight above 1"):
        BayesianGaussianMixture(n_components=2).fit(X, sample_weight=w)
    # given priors: weights that sum to 1 are a valid (prior-dominated) fit
    m = BayesianGaussianMixture(n_components=2, mean_prior=X.mean(0),
                                covariance_prior=np.cov(X.T), random_state=0)
    m.fit(X, sample_weight=w)
    assert np.isfinite(m.lower_bound_)


def test_sample_and_warm_start_checks():
    X = _data()
    m = BayesianGaussianMixture(n_components=3, random_state=0).fit(X)
    Xs, ys = m.sample(500)
    assert Xs.shape == (500, 3) and set(np.unique(ys)) <= {0, 1, 2}
    m.set_params(warm_start=True, n_components=4)
    with pytest.raises(ValueError, match="n_components is 4, the fitted model has 3"):
        m.fit(X)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_out_of_core_and_dask_equal_in_memory(covariance_type, tmp_path):
    """A memmap (read in chunks) and a dask array (E-steps on its chunks)
    give the in-memory fit: the prior's moments, the iterations, inference."""
    da = pytest.importorskip("dask.array")
    import dask

    X = _data(seed=8)
    w = np.random.default_rng(9).uniform(0.5, 2.0, X.shape[0])
    np.save(tmp_path / "X.npy", X)
    Xm = np.load(tmp_path / "X.npy", mmap_mode="r")
    kw = dict(n_components=3, covariance_type=covariance_type, max_iter=15, tol=0.0,
              random_state=0)
    with warnings.catch_warnings(), dask.config.set(scheduler="threads"):
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = BayesianGaussianMixture(**kw).fit(X, sample_weight=w)
        b = BayesianGaussianMixture(**kw).fit(Xm, sample_weight=w)
        c = BayesianGaussianMixture(**kw).fit(da.from_array(X, chunks=(100, 3)),
                                              sample_weight=w)
        for m in (b, c):
            for attr in FITTED + PRIORS + ["lower_bound_"]:
                assert_allclose(_flat(getattr(m, attr)), _flat(getattr(a, attr)), rtol=1e-9,
                                err_msg=attr)
        assert_allclose(np.asarray(c.score_samples(da.from_array(X, chunks=(100, 3)))),
                        a.score_samples(X), rtol=1e-12)
        assert_allclose(b.predict_proba(Xm), a.predict_proba(X), rtol=1e-12, atol=1e-15)


def test_a_covariance_that_cannot_be_factorised_gets_a_ridge_or_raises():
    """Rows on a line and an almost-zero covariance_prior: a component's
    covariance is (numerically) singular.  'ridge' repairs it, records and
    warns, and the model is valid; 'raise' raises scikit-learn's error, as
    scikit-learn does."""
    from fastem import CollapseWarning

    t = np.random.default_rng(0).normal(size=400)
    X = np.column_stack([t, 2.0 * t]) + 10.0
    kw = dict(n_components=2, reg_covar=1e-300, covariance_prior=1e-300 * np.eye(2),
              random_state=0, max_iter=20)
    with pytest.warns(CollapseWarning, match="ridge"):
        m = BayesianGaussianMixture(**kw).fit(X)
    assert m.collapse_events_ and {e[2] for e in m.collapse_events_} == {"ridge"}
    assert np.isfinite(m.precisions_cholesky_).all() and np.isfinite(m.score(X))
    with pytest.raises(ValueError, match="Cholesky factorisation of component"):
        BayesianGaussianMixture(on_collapse="raise", **kw).fit(X)
    with pytest.raises(ValueError, match="ill-defined empirical covariance"):
        SkBGM(**{k: v for k, v in kw.items()}).fit(X)


@pytest.mark.parametrize("prior_type", PRIOR_TYPES)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_one_iteration_equals_the_textbook_reference(covariance_type, prior_type):
    """Responsibilities from Bishop's log rho (tests/reference.py, a row and
    a component at a time), then Bishop's updates: fastem's predict_proba
    at the start and its parameters after one iteration."""
    import reference as ref

    X = _data(seed=11)[:120]
    K = 3
    resp0 = np.random.default_rng(12).dirichlet(np.ones(K), size=X.shape[0])
    sk, fe = _same_start(X, K, resp0, covariance_type=covariance_type,
                         weight_concentration_prior_type=prior_type, max_iter=1, tol=0.0)
    log_rho = ref.vb_log_rho(X, fe.weight_concentration_, fe.mean_precision_, fe.means_,
                             fe.degrees_of_freedom_, fe.covariances_, covariance_type,
                             prior_type)
    resp = np.exp(log_rho - log_rho.max(axis=1, keepdims=True))
    resp /= resp.sum(axis=1, keepdims=True)
    assert_allclose(fe.predict_proba(X), resp, rtol=1e-9, atol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fe.fit(X)
    conc, beta, means, dof, cov = ref.vb_update(
        X, resp, covariance_type, prior_type, fe.weight_concentration_prior_,
        fe.mean_precision_prior_, fe.mean_prior_, fe.degrees_of_freedom_prior_,
        fe.covariance_prior_, fe.reg_covar)
    for got, want in ((fe.weight_concentration_, conc), (fe.mean_precision_, beta),
                      (fe.means_, means), (fe.degrees_of_freedom_, dof),
                      (fe.covariances_, cov)):
        assert_allclose(_flat(got), _flat(want), rtol=1e-9)


def test_float32_and_impute():
    """float32 X fits as scikit-learn's does (float64 statistics); impute
    fills each NaN with its expectation under the fitted mixture and keeps
    the observed entries bitwise."""
    X = _data(seed=13)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = BayesianGaussianMixture(n_components=3, random_state=0, max_iter=30).fit(X)
        b = BayesianGaussianMixture(n_components=3, random_state=0,
                                    max_iter=30).fit(X.astype(np.float32))
    assert_allclose(b.means_, a.means_, rtol=1e-4)
    Xn = X.copy()
    Xn[::7, 1] = np.nan
    filled = a.impute(Xn)
    observed = ~np.isnan(Xn)
    assert_array_equal(filled[observed], Xn[observed])
    assert np.isfinite(filled).all()
    # a NaN in a row near one component's mean is filled near that mean
    k = int(np.argmax(a.weights_))
    row = np.array([[a.means_[k, 0], np.nan, a.means_[k, 2]]])
    assert abs(a.impute(row)[0, 1] - a.means_[k, 1]) < 1.0


def test_huge_weights_count_rows_without_overflow():
    """Weights of 1e300 count 1e300 rows each: the prior vanishes against
    them, the fit is the one of weights 1e10 (where it vanishes too), with
    finite statistics (the prior's moments are formed in the kernels' scaled
    units)."""
    X = _data(seed=14)
    fits = []
    for scale in (1e10, 1e300):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            fits.append(BayesianGaussianMixture(n_components=2, random_state=0, max_iter=5,
                                                tol=0.0).fit(X, np.full(X.shape[0], scale)))
    a, b = fits
    assert np.isfinite(b.lower_bound_) and np.isfinite(b.covariance_prior_).all()
    assert_allclose(b.means_, a.means_, rtol=1e-8)
    assert_allclose(b.covariances_, a.covariances_, rtol=1e-8)
    assert_allclose(b.covariance_prior_, a.covariance_prior_, rtol=1e-12)
