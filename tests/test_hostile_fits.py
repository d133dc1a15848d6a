"""Fits that must not fail, and inputs that must fail clearly (issue: hostile
input): the scale of sample weights, sparse weights, failed calls that leave
the model as it was, overflow, rows far from every component, unusual array
types and absurd request sizes."""

import warnings

import numpy as np
import pytest
from conftest import COVARIANCE_TYPES, blobs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastem import CollapseWarning, GaussianMixture, MiniBatchGaussianMixture
from fastem._collapse import Recovery
from fastem._fitted import kept_on_error
from fastem._stats import GaussianParams, m_step
from fastem.select import select

# ----------------------------------------------------------------------
# exact comparison of a model's whole state
# ----------------------------------------------------------------------


def _state(model):
    """Every fitted and private attribute, deep-copied (random generators as
    their states, fastem's state objects as their attributes)."""
    return {k: _frozen(v) for k, v in vars(model).items()
            if (k.endswith("_") or k.startswith("_")) and k != "_workspaces"}


def _frozen(v):
    if isinstance(v, np.random.RandomState):
        state = v.get_state()
        return ("RandomState", state[0], state[1].copy(), *state[2:])
    if isinstance(v, np.ndarray):
        return ("array", v.dtype.str, v.shape, v.tobytes())
    if isinstance(v, (list, tuple)):
        return (type(v).__name__, [_frozen(x) for x in v])
    if isinstance(v, dict):
        return ("dict", sorted((repr(k), _frozen(x)) for k, x in v.items()))
    if hasattr(v, "__dict__") and not isinstance(v, type):
        return (type(v).__name__, {k: _frozen(x) for k, x in vars(v).items()})
    return v


def _assert_same_state(before, after):
    assert before.keys() == after.keys()
    for k in before:
        a, b = before[k], after[k]
        if isinstance(a, tuple) and a and a[0] == "RandomState":
            assert a[:2] == b[:2] and np.array_equal(a[2], b[2]) and a[3:] == b[3:], k
        else:
            assert repr(a) == repr(b), k


# ----------------------------------------------------------------------
# the scale of the sample weights
# ----------------------------------------------------------------------

X_W = blobs(n=600, d=2, k=3, seed=4)


def _fit(cls, w, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("error", CollapseWarning)
        return cls(3, random_state=0, **kw).fit(X_W, sample_weight=w)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_weights_summing_to_one_give_the_unweighted_fit(covariance_type):
    """Weights of 1/n gave a worse optimum with spurious re-seeds before."""
    n = X_W.shape[0]
    ref = _fit(GaussianMixture, None, covariance_type=covariance_type)
    for w in (np.full(n, 1.0 / n), np.full(n, 1e-300), np.full(n, 1e308)):
        gm = _fit(GaussianMixture, w, covariance_type=covariance_type)
        assert gm.n_reseeds_ == 0 and gm.n_iter_ == ref.n_iter_
        np.testing.assert_allclose(gm.means_, ref.means_, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(gm.covariances_, ref.covariances_, rtol=1e-9, atol=1e-12)
        assert gm.lower_bound_ == pytest.approx(ref.lower_bound_, rel=1e-12)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(exponent=st.integers(-1000, 1000), factor=st.floats(0.5, 1.0),
       covariance_type=st.sampled_from(COVARIANCE_TYPES), seed=st.integers(0, 3))
def test_random_weight_scales_give_the_identical_fit(exponent, factor, covariance_type, seed):
    """Any positive scale: identical to rounding; a power of two: bitwise."""
    w = np.random.default_rng(seed).uniform(0.2, 3.0, size=X_W.shape[0])
    ref = _fit(GaussianMixture, w, covariance_type=covariance_type)
    exact = _fit(GaussianMixture, np.ldexp(w, exponent), covariance_type=covariance_type)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        assert np.array_equal(getattr(exact, name), getattr(ref, name)), name
    with np.errstate(under="ignore"):
        scaled = np.ldexp(w * factor, min(exponent, 1000))
    gm = _fit(GaussianMixture, scaled, covariance_type=covariance_type)
    assert gm.n_iter_ == ref.n_iter_ and gm.n_reseeds_ == ref.n_reseeds_
    np.testing.assert_allclose(gm.means_, ref.means_, rtol=1e-8, atol=1e-10)
    assert gm.score(X_W, sample_weight=scaled) == pytest.approx(
        ref.score(X_W, sample_weight=w), rel=1e-10)


def test_online_fit_does_not_depend_on_the_weight_scale():
    n = X_W.shape[0]
    ref = _fit(MiniBatchGaussianMixture, np.ones(n), batch_size=100, max_iter=3)
    exact = _fit(MiniBatchGaussianMixture, np.full(n, 2.0**-900), batch_size=100, max_iter=3)
    assert np.array_equal(exact.means_, ref.means_)
    gm = _fit(MiniBatchGaussianMixture, np.full(n, 1.0 / n), batch_size=100, max_iter=3)
    np.testing.assert_allclose(gm.means_, ref.means_, rtol=1e-10)
    assert gm.n_reseeds_ == 0 and gm.n_steps_ == ref.n_steps_


def test_information_criteria_with_huge_weights():
    gm = _fit(GaussianMixture, None)
    n = X_W.shape[0]
    # score is an average: any scale works, even near the largest float
    assert gm.score(X_W, sample_weight=np.full(n, 1e308)) == pytest.approx(gm.score(X_W))
    # BIC counts the weight: 2**-3 x the rows is well defined, 1e308 x n is not
    w = np.full(n, 0.125)
    expected = -2 * gm.score(X_W) * n / 8 + gm._n_parameters() * np.log(n / 8)
    assert gm.bic(X_W, sample_weight=w) == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="beyond the range of float64.*Divide sample_weight"):
        select(X_W, 3, sample_weight=np.full(n, 1e308))
    with pytest.raises(ValueError, match="beyond the range of float64.*Divide sample_weight"):
        gm.bic(X_W, sample_weight=np.full(n, 1e308))


# ----------------------------------------------------------------------
# sparse weights
# ----------------------------------------------------------------------


def _sparse_weights(n, n_positive, seed=0):
    rng = np.random.default_rng(seed)
    w = np.zeros(n)
    w[rng.choice(n, n_positive, replace=False)] = rng.uniform(0.5, 2.0, n_positive)
    return w


@pytest.mark.parametrize("cls", [GaussianMixture, MiniBatchGaussianMixture])
@pytest.mark.parametrize("init_params", ["kmeans", "random_from_data", "k-means++", "random"])
def test_mostly_zero_weights_fit(cls, init_params):
    """A sample of 4096 rows (the initialisation) or 2048 (a re-seed), or a
    mini-batch, may hold only rows of weight 0: they are drawn among rows of
    positive weight."""
    X = blobs(n=30_000, d=2, k=3, seed=1)
    w = _sparse_weights(len(X), 60)
    kw = {"batch_size": 16, "max_iter": 2} if cls is MiniBatchGaussianMixture else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CollapseWarning)
        gm = cls(6, init_params=init_params, random_state=0, **kw).fit(X, sample_weight=w)
    assert np.isfinite(gm.means_).all() and np.isfinite(gm.lower_bound_)
    # the positive rows alone, unweighted by the zeros, give the same model
    ref_kw = dict(init_params=init_params, random_state=0, **kw)
    if cls is GaussianMixture:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CollapseWarning)
            ref = cls(6, **ref_kw).fit(X[w > 0], sample_weight=w[w > 0])
        np.testing.assert_allclose(gm.means_, ref.means_, rtol=1e-10)


def test_reseed_with_mostly_zero_weights_draws_positive_rows():
    """Every one of the 2048 rows a re-seed samples weighed 0 before
    ("'a' cannot be empty")."""
    X = blobs(n=100_000, d=2, k=2, seed=2)
    w = _sparse_weights(len(X), 5, seed=3)
    rec = Recovery("diag", 3, 2, 1e-6, np.float64, np.random.RandomState(0))
    weights, means, cov = np.full(3, 1 / 3), np.zeros((3, 2)), np.ones((3, 2))
    prec = 1.0 / np.sqrt(cov)
    _, means2, _, _ = rec._reseed(weights, means, cov, prec, [0, 2], X, w)
    positive = X[w > 0]
    for k in (0, 2):
        assert (np.abs(positive - means2[k]).sum(axis=1) == 0).any()


def test_fewer_positive_weights_than_components_is_an_error():
    X = blobs(n=500, d=2, k=2)
    w = _sparse_weights(len(X), 3)
    for model in (GaussianMixture(4), MiniBatchGaussianMixture(4)):
        with pytest.raises(ValueError, match="at least n_components = 4 rows of positive"):
            model.fit(X, sample_weight=w)
    with pytest.raises(ValueError, match="at least n_components = 4 rows of positive"):
        MiniBatchGaussianMixture(4).partial_fit(X, sample_weight=w)


# ----------------------------------------------------------------------
# a failed call leaves the model as it was
# ----------------------------------------------------------------------

X_A = blobs(n=400, d=3, k=3, seed=5)


def _fitted(cls, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if cls is MiniBatchGaussianMixture:
            m = cls(3, random_state=0, **kw)
            for b in range(0, 400, 100):
                m.partial_fit(X_A[b:b + 100])
            return m
        return cls(3, random_state=0, **kw).fit(X_A)


CHANGES = [
    ("features", {}, lambda X: X[:, :2], "X has 2 features, the model was fitted with 3"),
    ("n_components", {"n_components": 4}, None, "n_components is 4, the fitted model has 3"),
    ("covariance_type", {"covariance_type": "diag"}, None,
     "covariance_type is 'diag', the model was fitted with 'full'"),
]


@pytest.mark.parametrize("what, params, data, message", CHANGES, ids=[c[0] for c in CHANGES])
@pytest.mark.parametrize("how", ["warm_start", "partial_fit", "online warm_start"])
def test_continuing_with_another_shape_is_an_error_in_words(how, what, params, data, message):
    cls = GaussianMixture if how == "warm_start" else MiniBatchGaussianMixture
    m = _fitted(cls, warm_start=how != "partial_fit")
    before = _state(m)
    m.set_params(**params)
    X = X_A if data is None else data(X_A)
    call = m.partial_fit if how == "partial_fit" else m.fit
    with pytest.raises(ValueError, match=message):
        call(X)
    _assert_same_state(before, _state(m))
    m.set_params(n_components=3, covariance_type="full")
    assert m.predict(X_A).shape == (400,)  # still accepts its own data
    call(X_A)


def test_tied_and_diag_are_told_apart_when_k_equals_d():
    m = _fitted(GaussianMixture, covariance_type="diag", warm_start=True)
    m.set_params(covariance_type="tied")
    with pytest.raises(ValueError, match="the model was fitted with 'diag'"):
        m.fit(X_A)
    m = _fitted(GaussianMixture, covariance_type="tied", warm_start=True)
    m.set_params(covariance_type="diag")
    with pytest.raises(ValueError, match="the model was fitted with 'tied'"):
        m.fit(X_A)


class _Boom(Exception):
    pass


@pytest.mark.parametrize("warm_start", [False, True])
@pytest.mark.parametrize("accelerate", [None, "squarem"])
def test_fit_interrupted_midway_leaves_the_previous_model(warm_start, accelerate):
    m = _fitted(GaussianMixture, warm_start=warm_start, accelerate=accelerate, tol=0)
    before = _state(m)

    def interrupt(init, n_iter):
        if n_iter == 3:
            raise _Boom

    m._progress = interrupt  # the command line's per-iteration hook
    with pytest.raises(_Boom):
        m.fit(X_A[::-1] * 1.5)
    del m._progress
    _assert_same_state(before, _state(m))


def test_failed_partial_fit_update_restores_everything_it_touched(monkeypatch):
    """An update re-seeds two components (drawing from the model's generator,
    recording events) and then fails: all of it is undone, generator
    included, and the next update is the one the model would have made."""
    m = _fitted(MiniBatchGaussianMixture)
    twin = _fitted(MiniBatchGaussianMixture)
    before = _state(m)
    import fastem.online

    def fail(*args):
        raise _Boom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CollapseWarning)
        with monkeypatch.context() as patch:
            patch.setattr(fastem.online, "restated", fail)  # runs after a re-seed
            with pytest.raises(_Boom):
                m.partial_fit(X_A[:2])  # 2 rows: two components starve, re-seeds
        _assert_same_state(before, _state(m))
        m.partial_fit(X_A[:2])
        twin.partial_fit(X_A[:2])
    assert m.n_reseeds_ == 2
    _assert_same_state(_state(twin), _state(m))


def test_kept_on_error_restores_objects_changed_in_place():
    m = _fitted(MiniBatchGaussianMixture)
    before = _state(m)
    with pytest.raises(_Boom), kept_on_error(m):
        m._collapse.events.append((9, 0, "reseed"))
        m._collapse.ridges[1] = 3.0
        m._random_state.uniform(size=5)
        m.lower_bounds_.append(1.0)
        m.means_ = m.means_ + 1
        m.extra_ = 1
        raise _Boom
    _assert_same_state(before, _state(m))
    assert m._collapse.random_state is m._random_state  # sharing kept


# ----------------------------------------------------------------------
# overflow and rows far from every component
# ----------------------------------------------------------------------


@pytest.mark.parametrize("scale", [1e140, 1e154, 1e200, 1e300])
def test_values_whose_squares_overflow_are_refused_with_advice(scale, tmp_path):
    X = blobs(n=300, d=2, k=2) * scale
    msg = "magnitude >= 1e\\+140.*overflow.*scale the data"
    with pytest.raises(ValueError, match=msg):
        GaussianMixture(2).fit(X)
    mm = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float64,
                                   shape=X.shape)
    mm[:] = X
    mm.flush()
    with pytest.raises(ValueError, match=msg):
        GaussianMixture(2).fit(np.load(tmp_path / "x.npy", mmap_mode="r"))
    gm = GaussianMixture(2, random_state=0).fit(blobs(n=300, d=2, k=2))
    for method in (gm.predict, gm.predict_proba, gm.score_samples, gm.score):
        with pytest.raises(ValueError, match=msg):
            method(X)


def test_large_but_representable_values_fit():
    X = blobs(n=300, d=2, k=2, seed=1)
    a = GaussianMixture(2, random_state=0, reg_covar=0).fit(X)
    b = GaussianMixture(2, random_state=0, reg_covar=0).fit(X * 1e130)
    np.testing.assert_allclose(b.means_ / 1e130, a.means_, rtol=1e-8)


def test_dask_input_that_overflows_is_refused():
    da = pytest.importorskip("dask.array")
    X = da.from_array(blobs(n=300, d=2, k=2) * 1e160, chunks=(100, 2))
    with pytest.raises(ValueError, match="overflow"):
        GaussianMixture(2).fit(X)


FAR_ROWS = np.array([[1e10, 0.0], [-1e10, 3.0], [10.0 + 1e-160, 0.0], [9e9, 1e9]])


def _far_model(covariance_type, means, covariances, prec):
    gm = GaussianMixture(3, covariance_type=covariance_type)
    gm._set_params_tuple(GaussianParams(np.full(3, 1 / 3), means, covariances, prec))
    gm.n_features_in_ = 2
    gm.converged_ = True
    return gm


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_rows_far_from_every_component_go_to_the_nearest(covariance_type):
    """All log-densities underflow to -inf: the probabilities still sum to 1,
    on the component nearest in log space, and predict agrees."""
    means = np.array([[0.0, 0.0], [10.0, 0.0], [20.0, 0.0]])
    k, d = 3, 2
    shape = {"full": (k, d, d), "tied": (d, d), "diag": (k, d), "spherical": (k,)}
    prec = {"full": np.tile(np.eye(d), (k, 1, 1)), "tied": np.eye(d),
            "diag": np.ones((k, d)), "spherical": np.ones(k)}[covariance_type] * 1e150
    gm = _far_model(covariance_type, means, np.ones(shape[covariance_type]), prec)
    rows = FAR_ROWS
    proba = gm.predict_proba(rows)
    assert np.array_equal(proba.sum(axis=1), np.ones(4))
    expected = [2, 0, 1, 2]
    assert proba.argmax(axis=1).tolist() == expected
    assert gm.predict(rows).tolist() == expected
    scores = gm.score_samples(rows)
    assert np.isneginf(scores[[0, 1, 3]]).all() and np.isfinite(scores[2])


def test_far_rows_out_of_core_in_dask_and_in_select(tmp_path):
    means = np.array([[0.0, 0.0], [10.0, 0.0], [20.0, 0.0]])
    gm = _far_model("diag", means, np.ones((3, 2)), np.full((3, 2), 1e150))
    rows = np.vstack([FAR_ROWS] * 3000)  # chunks of the memmap and dask array
    path = tmp_path / "far.npy"
    np.save(path, rows)
    expected = np.tile([2, 0, 1, 2], 3000)
    assert np.array_equal(gm.predict(np.load(path, mmap_mode="r")), expected)
    da = pytest.importorskip("dask.array")
    lazy = da.from_array(rows, chunks=(5000, 2))
    proba = gm.predict_proba(lazy).compute()
    assert np.array_equal(proba.argmax(axis=1), expected) and (proba.sum(axis=1) == 1).all()
    from fastem.select import _criteria
    _, _, entropy = _criteria(gm, rows, None)
    assert entropy == 0.0  # each row certain of its component, none NaN


# ----------------------------------------------------------------------
# array types that are not plain numeric arrays
# ----------------------------------------------------------------------

X_T = blobs(n=60, d=2, k=2, seed=6)


@pytest.mark.filterwarnings("ignore::PendingDeprecationWarning")  # np.matrix itself
def test_np_matrix_is_refused_with_the_conversion():
    with pytest.raises(TypeError, match="np.matrix.*np.asarray"):
        GaussianMixture(2).fit(np.asmatrix(X_T))
    gm = GaussianMixture(2, random_state=0).fit(X_T)
    with pytest.raises(TypeError, match="np.matrix"):
        gm.predict(np.asmatrix(X_T))


def test_masked_arrays():
    masked = np.ma.masked_array(X_T, mask=np.zeros(X_T.shape, dtype=bool))
    a = GaussianMixture(2, random_state=0).fit(X_T)
    b = GaussianMixture(2, random_state=0).fit(masked)  # nothing masked: its data
    assert np.array_equal(a.means_, b.means_)
    masked[3, 1] = np.ma.masked
    with pytest.raises(ValueError, match="1 masked values"):
        GaussianMixture(2).fit(masked)


@pytest.mark.parametrize("dtype", ["datetime64[ns]", "timedelta64[s]", "datetime64[D]"])
def test_dates_and_durations_are_refused(dtype):
    X = np.arange(40).reshape(20, 2).astype(dtype)
    with pytest.raises(TypeError, match="dates or durations"):
        GaussianMixture(2).fit(X)


def test_dataframe_with_a_date_column_is_refused():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"a": np.arange(20.0),
                       "t": pd.date_range("2024-01-01", periods=20, freq="D")})
    with pytest.raises((TypeError, ValueError), match="numeric"):
        GaussianMixture(2).fit(df)


# ----------------------------------------------------------------------
# absurd request sizes fail at once
# ----------------------------------------------------------------------


def test_absurd_sizes_fail_fast():
    """Refused before any work: the grid of n_components is read lazily (a
    range of 10**9 stops at n_samples + 1), and sample's output is sized
    against the machine's memory before it is allocated."""
    gm = GaussianMixture(2, random_state=0).fit(X_T)
    consumed = []

    def grid():
        for k in range(1, 10**9):
            consumed.append(k)
            yield k

    with pytest.raises(ValueError, match="must not exceed n_samples = 60"):
        select(X_T, n_components=range(1, 10**9))
    with pytest.raises(ValueError, match="must not exceed n_samples = 60"):
        select(X_T, n_components=grid())
    assert len(consumed) == 61
    with pytest.raises(ValueError, match="GiB, more than this machine's"):
        gm.sample(10**12)
    with pytest.raises(TypeError, match="n_samples must be an int"):
        gm.sample(2.5)


def test_m_step_stays_scale_free():
    """The M-step's 10 eps guard is negligible against counts of weights
    scaled into [1, 2)."""
    X = blobs(n=200, d=2, k=2)
    gm = GaussianMixture(2, random_state=0).fit(X)
    from fastem._estep import EStepWorkspace
    ws = EStepWorkspace("full", 2, 2, 200)
    p = gm._get_params_tuple()
    a = m_step(ws.run(X, None, p), 1e-6)
    b = m_step(ws.run(X, np.full(200, 1.5), p), 1e-6)
    np.testing.assert_allclose(a.means, b.means, rtol=1e-13)


# ----------------------------------------------------------------------
# degenerate data: collapse recovery always gives a valid model
# ----------------------------------------------------------------------

def _degenerate(kind, n, d, rng):
    X = rng.normal(size=(n, d))
    if kind == "constant column":
        X[:, rng.integers(d)] = rng.choice([0.0, 1e6, -3.5])
    elif kind == "duplicated rows":
        X = np.repeat(X[:max(1, n // 4)], 4, axis=0)[:n]
    elif kind == "binary grid":
        X = rng.integers(0, 2, size=(n, d)).astype(float)
    elif kind == "far offset":
        X = X + 1e12
    elif kind == "tiny scale":
        X = X * 1e-150
    elif kind == "huge scale":
        X = X * 1e120
    elif kind == "collinear":
        X = np.outer(rng.normal(size=n), rng.normal(size=d))
    elif kind == "one-hot":
        X = np.eye(d)[rng.integers(0, d, size=n)]
    return X


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(["constant column", "duplicated rows", "binary grid", "far offset",
                             "tiny scale", "huge scale", "collinear", "one-hot", "normal",
                             "sparse weights"]),
       n=st.sampled_from([2, 3, 5, 8, 20, 100]), d=st.sampled_from([1, 2, 3, 5]),
       k=st.integers(1, 6), covariance_type=st.sampled_from(COVARIANCE_TYPES),
       init_params=st.sampled_from(["kmeans", "random", "random_from_data", "k-means++"]),
       reg_covar=st.sampled_from([1e-6, 1e-3]), online=st.booleans(), seed=st.integers(0, 99))
def test_degenerate_fits_give_a_valid_model(kind, n, d, k, covariance_type, init_params,
                                             reg_covar, online, seed):
    rng = np.random.default_rng(seed)
    X = _degenerate(kind, n, d, rng)
    k = min(k, len(X))
    w = None
    if kind == "sparse weights":
        w = np.zeros(len(X))
        w[rng.choice(len(X), max(k, len(X) // 3), replace=False)] = rng.uniform(0.1, 1, 1) + 1
    kw = dict(covariance_type=covariance_type, init_params=init_params, random_state=seed,
              reg_covar=reg_covar)
    if online:
        model = MiniBatchGaussianMixture(k, batch_size=int(rng.choice([1, 16, 256])), **kw)
    else:
        model = GaussianMixture(k, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model.fit(X, sample_weight=w)
        except ValueError as exc:  # only the documented size errors
            assert "n_samples" in str(exc), exc
            return
        proba = model.predict_proba(X)
        for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
            assert np.isfinite(getattr(model, name)).all(), name
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
        assert np.array_equal(model.predict(X), proba.argmax(axis=1)) or kind != "normal"
        assert np.isfinite(model.score(X))
