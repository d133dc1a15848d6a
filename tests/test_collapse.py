"""Collapsed components never crash a fit (on_collapse='reseed'), and
on_collapse='raise' keeps scikit-learn's error."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SkGaussianMixture

from fastem import CollapseWarning, GaussianMixture, MiniBatchGaussianMixture

TYPES = ["full", "tied", "diag", "spherical"]
SKLEARN_ERROR = "ill-defined empirical covariance"


def _degenerate(name):
    rng = np.random.default_rng(0)
    if name == "duplicated points":
        return np.repeat(rng.normal(size=(30, 3)), 10, axis=0), 4
    if name == "k above distinct points":
        return np.repeat(rng.normal(size=(3, 2)), 50, axis=0), 5
    if name == "constant feature":
        X = rng.normal(size=(400, 3))
        X[:, 1] = 5.0
        return X, 4
    if name == "collinear at 1e6":
        z = rng.normal(size=(500, 1))
        return 1e6 * np.hstack([z, 2 * z, 3 * z]), 4
    if name == "float32 spread 1e-4 at 1e3":
        return (1e3 + 1e-4 * rng.normal(size=(1000, 3))).astype(np.float32), 4
    raise KeyError(name)


CASES = ["duplicated points", "k above distinct points", "constant feature",
         "collinear at 1e6", "float32 spread 1e-4 at 1e3"]


def assert_valid(gm, X):
    assert gm.weights_.sum() == pytest.approx(1.0, abs=1e-10)
    assert (gm.weights_ >= 0).all()
    assert np.isfinite(gm.means_).all()
    cov = gm.covariances_
    if gm.covariance_type in ("full", "tied"):
        mats = cov[None] if gm.covariance_type == "tied" else cov
        assert (np.linalg.eigvalsh(mats) > 0).all()
        np.linalg.cholesky(mats)
    else:
        assert (cov > 0).all()
    assert np.isfinite(gm.score_samples(X)).all()
    proba = gm.predict_proba(X)
    assert np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-10)


def assert_climbs_between_events(gm):
    """EM never lowers the log-likelihood except right after a recovery."""
    lb = np.asarray(gm.lower_bounds_)
    events = {it for it, _, _ in gm.collapse_events_}
    for i in range(1, len(lb)):
        # lower_bounds_[i] is computed after the M-step of iteration i
        if i in events:
            continue
        assert lb[i] >= lb[i - 1] - 1e-9 * max(1.0, abs(lb[i - 1])), (i, lb[i - 1], lb[i])


def _fit(X, k, ct, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gm = GaussianMixture(k, covariance_type=ct, random_state=0, **kw).fit(X)
    collapse = [w for w in caught if issubclass(w.category, CollapseWarning)]
    return gm, collapse


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("covariance_type", TYPES)
def test_degenerate_data_gives_a_valid_model(case, covariance_type):
    X, k = _degenerate(case)
    gm, collapse = _fit(X, k, covariance_type)
    assert_valid(gm, X)
    assert len(collapse) == (1 if gm.collapse_events_ else 0)  # warned once at most
    assert gm.n_reseeds_ == sum(e[2] == "reseed" for e in gm.collapse_events_)
    assert_climbs_between_events(gm)


def test_cases_scikit_learn_cannot_fit():
    """The degenerate data sets on which scikit-learn 1.9 raises (checked
    here, so the comparison stays honest) and fastem does not."""
    failing = []
    for case in CASES:
        X, k = _degenerate(case)
        for ct in TYPES:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    SkGaussianMixture(k, covariance_type=ct, random_state=0).fit(X)
            except ValueError as exc:
                assert SKLEARN_ERROR in str(exc)
                failing.append((case, ct))
    assert ("collinear at 1e6", "full") in failing
    assert ("collinear at 1e6", "tied") in failing
    for case, ct in failing:
        X, k = _degenerate(case)
        assert_valid(_fit(X, k, ct)[0], X)


@pytest.mark.parametrize("covariance_type", TYPES)
def test_component_started_far_from_the_data_is_reseeded(covariance_type):
    rng = np.random.default_rng(1)
    X = np.vstack([rng.normal(size=(500, 2)), rng.normal(size=(500, 2)) + 6.0])
    g0 = GaussianMixture(3, covariance_type=covariance_type, max_iter=2, random_state=0).fit(X)
    means = g0.means_.copy()
    means[0] = [1e4, -1e4]
    gm, collapse = _fit(X, 3, covariance_type, means_init=means)
    assert gm.n_reseeds_ >= 1 and gm.collapse_events_[0][1] == 0
    assert len(collapse) == 1
    assert np.abs(gm.means_).max() < 20  # the component came back to the data
    assert gm.weights_.min() > 0.01
    assert_valid(gm, X)
    assert_climbs_between_events(gm)
    again, _ = _fit(X, 3, covariance_type, means_init=means)
    np.testing.assert_array_equal(again.means_, gm.means_)  # reproducible


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
def test_raise_mode_keeps_scikit_learns_error(covariance_type):
    X, k = _degenerate("collinear at 1e6")
    with pytest.raises(ValueError, match=SKLEARN_ERROR) as info, warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        GaussianMixture(k, covariance_type=covariance_type, random_state=0,
                        on_collapse="raise").fit(X)
    assert "increase reg_covar" in str(info.value)


@pytest.mark.parametrize("covariance_type", TYPES)
def test_unrecoverable_without_reg_covar_raises(covariance_type):
    """reg_covar=0 and fewer distinct points than components: nothing can
    make every covariance positive definite."""
    X, _ = _degenerate("k above distinct points")
    with pytest.raises(ValueError, match=SKLEARN_ERROR), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        GaussianMixture(5, covariance_type=covariance_type, reg_covar=0.0,
                        random_state=0).fit(X)


def test_well_posed_data_has_no_events():
    rng = np.random.default_rng(2)
    X = np.vstack([rng.normal(size=(300, 2)), rng.normal(size=(300, 2)) + 5])
    gm, collapse = _fit(X, 2, "full")
    assert gm.collapse_events_ == [] and gm.n_reseeds_ == 0 and not collapse


def test_invalid_on_collapse():
    with pytest.raises(ValueError, match="on_collapse"):
        GaussianMixture(2, on_collapse="ignore").fit(np.random.default_rng(0).normal(size=(50, 2)))


# --------------------------------------------------------------------------
# online EM
# --------------------------------------------------------------------------


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("covariance_type", TYPES)
def test_minibatch_on_degenerate_data_gives_a_valid_model(case, covariance_type):
    X, k = _degenerate(case)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        m = MiniBatchGaussianMixture(k, covariance_type=covariance_type, batch_size=100,
                                     max_iter=3, random_state=0).fit(X)
    assert_valid(m, X)
    warned = [w for w in caught if issubclass(w.category, CollapseWarning)]
    assert len(warned) == (1 if m.collapse_events_ else 0)
    assert m.n_reseeds_ == sum(e[2] == "reseed" for e in m.collapse_events_)


@pytest.mark.parametrize("covariance_type", TYPES)
def test_minibatch_stream_reseeds_a_lost_component(covariance_type):
    rng = np.random.default_rng(1)
    X = np.vstack([rng.normal(size=(2000, 2)), rng.normal(size=(2000, 2)) + 6.0])
    rng.shuffle(X)
    g0 = GaussianMixture(3, covariance_type=covariance_type, max_iter=2, random_state=0).fit(X)
    means = g0.means_.copy()
    means[0] = [1e4, -1e4]
    m = MiniBatchGaussianMixture(3, covariance_type=covariance_type, means_init=means,
                                 weights_init=g0.weights_, precisions_init=g0.precisions_,
                                 random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CollapseWarning)
        for i0 in range(0, len(X), 200):
            m.partial_fit(X[i0:i0 + 200])
    assert m.collapse_events_[0][:2] == (1, 0) and m.n_reseeds_ >= 1
    assert np.abs(m.means_).max() < 20 and m.weights_.min() > 0.01
    assert_valid(m, X)


def test_minibatch_raise_mode():
    X, k = _degenerate("collinear at 1e6")
    m = MiniBatchGaussianMixture(k, covariance_type="full", on_collapse="raise", random_state=0)
    with pytest.raises(ValueError, match=SKLEARN_ERROR):
        m.partial_fit(X)
    assert not hasattr(m, "means_")
    assert m.get_params()["on_collapse"] == "raise"


@pytest.mark.parametrize("init_params", ["k-means++", "random_from_data"])
def test_seeded_starts_are_point_masses_not_collapses(init_params):
    """One row per component is a legitimate start (scikit-learn's point masses
    of variance reg_covar); the first E-step spreads them over the data, so
    ordinary data sees no re-seed and no CollapseWarning."""
    rng = np.random.default_rng(5)
    X = np.concatenate([rng.normal(size=(300, 3)) + 6.0 * j for j in range(3)])
    start = GaussianMixture(3, init_params=init_params, max_iter=0, random_state=0).fit(X)
    np.testing.assert_allclose(start.covariances_, np.stack([np.eye(3) * 1e-6] * 3),
                               rtol=1e-6, atol=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CollapseWarning)
        gm = GaussianMixture(3, init_params=init_params, random_state=0).fit(X)
        online = MiniBatchGaussianMixture(3, init_params=init_params, random_state=0,
                                          batch_size=256).fit(X)
    assert gm.collapse_events_ == [] and gm.n_reseeds_ == 0
    assert online.collapse_events_ == []
    assert sorted(np.round(gm.means_[:, 0] / 6.0).astype(int).tolist()) == [0, 1, 2]
