"""SQUAREM acceleration (``accelerate='squarem'``): the parameterisation, the
same optimum as plain EM, monotone log-likelihood, fewer E+M passes on
overlapping clusters, and the fallback to plain EM."""

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning

import fastem._squarem as sq
from fastem import CollapseWarning, GaussianMixture, MiniBatchGaussianMixture
from fastem._stats import GaussianParams, n_parameters, precisions_cholesky_from_covariances
from fastem.datasets import make_mixture

TYPES = ["full", "tied", "diag", "spherical"]

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def _random_params(ct, K=3, d=4, seed=0):
    rng = np.random.default_rng(seed)
    w = rng.dirichlet(np.full(K, 2.0))
    means = rng.normal(scale=3.0, size=(K, d))
    if ct == "full":
        A = rng.normal(size=(K, d, d))
        cov = A @ A.transpose(0, 2, 1) + 0.5 * np.eye(d)
    elif ct == "tied":
        A = rng.normal(size=(d, d))
        cov = A @ A.T + 0.5 * np.eye(d)
    elif ct == "diag":
        cov = rng.uniform(0.1, 5.0, size=(K, d))
    else:
        cov = rng.uniform(0.1, 5.0, size=K)
    return GaussianParams(w, means, cov, precisions_cholesky_from_covariances(cov, ct))


def _inits(gm):
    return dict(weights_init=gm.weights_, means_init=gm.means_,
                precisions_init=gm.precisions_)


def _start(X, K, ct, seed=0):
    """Identical starting parameters: k-means, then two EM iterations."""
    gm = GaussianMixture(K, covariance_type=ct, max_iter=2, random_state=seed).fit(X)
    return _inits(gm)


def _overlapping(seed, n=2000):
    """Four overlapping clusters in 3-D: plain EM needs hundreds of passes."""
    return make_mixture(n, 3, 4, separation=1.0, random_state=seed)[0]


# --------------------------------------------------------------------------
# parameterisation
# --------------------------------------------------------------------------

@pytest.mark.parametrize("ct", TYPES)
def test_pack_unpack_round_trip(ct):
    p = _random_params(ct)
    K, d = p.means.shape
    theta = sq.pack(p, ct)
    assert theta.shape == (n_parameters(K, ct, d),)
    q = sq.unpack(theta, ct, K, d, reg_covar=1e-6)
    for name in ("weights", "means", "covariances", "precisions_cholesky"):
        np.testing.assert_allclose(getattr(q, name), getattr(p, name), rtol=1e-12,
                                   atol=1e-12, err_msg=name)
    np.testing.assert_allclose(sq.pack(q, ct), theta, rtol=1e-12, atol=1e-12)
    # the vector is unconstrained: any finite theta gives valid parameters
    rng = np.random.default_rng(1)
    r = sq.unpack(theta + rng.normal(scale=0.5, size=theta.shape), ct, K, d, reg_covar=0)
    assert r.weights.sum() == pytest.approx(1.0) and (r.weights > 0).all()
    mats = r.covariances if ct == "full" else r.covariances[None]
    if ct in ("full", "tied"):
        assert (np.linalg.eigvalsh(mats) > 0).all()
    else:
        assert (r.covariances > 0).all()


@pytest.mark.parametrize("ct", TYPES)
def test_unpack_rejects_points_outside_the_valid_set(ct):
    p = _random_params(ct)
    K, d = p.means.shape
    theta = sq.pack(p, ct)
    bad = theta.copy()
    bad[-1] = np.nan
    with pytest.raises(ValueError):
        sq.unpack(bad, ct, K, d, reg_covar=1e-6)
    # a covariance below reg_covar (the M-step never makes one)
    with pytest.raises(ValueError):
        sq.unpack(theta, ct, K, d, reg_covar=100.0)
    # an underflowing weight
    bad = theta.copy()
    bad[0] = -1e4
    with pytest.raises(ValueError):
        sq.unpack(bad, ct, K, d, reg_covar=1e-6)


# --------------------------------------------------------------------------
# the optimum, monotonicity, speed
# --------------------------------------------------------------------------

def _matched(a, b):
    """b's component order that matches a's means."""
    cost = ((a.means_[:, None, :] - b.means_[None]) ** 2).sum(axis=2)
    rows, cols = linear_sum_assignment(cost)
    return cols[np.argsort(rows)]


def _rel_err(gm, ref):
    """Largest relative difference (in norm) of the weights, the means and the
    covariances of each component, components matched."""
    order = _matched(ref, gm)
    cov = gm.covariances_ if gm.covariance_type == "tied" else gm.covariances_[order]
    pairs = [(gm.weights_[order], ref.weights_)]
    pairs += list(zip(gm.means_[order], ref.means_))
    pairs += [(cov, ref.covariances_)] if gm.covariance_type == "tied" else \
        list(zip(cov, ref.covariances_))
    return max(np.linalg.norm(a - b) / np.linalg.norm(b) for a, b in pairs)


@pytest.mark.parametrize("ct", TYPES)
def test_same_optimum_as_plain_em(ct):
    X = make_mixture(1500, 2, 3, separation=2.5, random_state=3)[0]
    init = _start(X, 3, ct)
    kw = dict(covariance_type=ct, max_iter=20000, **init)
    plain = GaussianMixture(3, tol=1e-10, **kw).fit(X)
    fast = GaussianMixture(3, tol=1e-10, accelerate="squarem", **kw).fit(X)
    assert plain.converged_ and fast.converged_
    assert not plain.collapse_events_ and not fast.collapse_events_
    assert fast.score(X) == pytest.approx(plain.score(X), abs=1e-8)
    assert fast.lower_bound_ == pytest.approx(plain.lower_bound_, abs=1e-8)
    # Parameters against plain EM's fixed point (2,000 iterations, tol=0):
    # a stop on a log-likelihood change of 1e-10 leaves errors of order
    # sqrt(1e-10); here plain EM stops ~1e-4 short (slow EM), SQUAREM closer.
    exact = GaussianMixture(3, tol=0, **{**kw, "max_iter": 2000}).fit(X)
    assert _rel_err(fast, exact) < 3e-5
    assert _rel_err(plain, exact) < 1e-3
    assert _rel_err(fast, exact) < _rel_err(plain, exact)
    # with a tighter tol SQUAREM lands on that fixed point
    tight = GaussianMixture(3, tol=1e-12, accelerate="squarem", **kw).fit(X)
    assert _rel_err(tight, exact) < 1e-6
    assert fast.n_em_maps_ < plain.n_em_maps_
    assert plain.n_em_maps_ == plain.n_iter_


@pytest.mark.parametrize("ct", TYPES)
def test_lower_bounds_never_decrease(ct):
    for seed in (1, 2):
        X = _overlapping(seed)
        gm = GaussianMixture(4, covariance_type=ct, tol=1e-8, max_iter=5000,
                             random_state=seed, accelerate="squarem").fit(X)
        assert gm.converged_ and not gm.collapse_events_
        lb = np.asarray(gm.lower_bounds_)
        assert len(lb) == gm.n_iter_ and gm.lower_bound_ == lb[-1]
        assert gm.n_iter_ <= gm.n_em_maps_ <= 4 * gm.n_iter_
        slack = 1e-10 * np.abs(lb[:-1])
        assert (np.diff(lb) >= -slack).all(), np.diff(lb).min()
        # the returned parameters are at least as good as the last record
        assert gm.score(X) >= lb[-1] - 1e-10 * abs(lb[-1])


def test_at_least_three_times_fewer_passes_on_overlapping_clusters():
    ratios, gaps = [], []
    for seed in range(7):
        X = _overlapping(seed)
        kw = dict(tol=1e-8, max_iter=20000, random_state=seed)
        plain = GaussianMixture(4, **kw).fit(X)
        fast = GaussianMixture(4, accelerate="squarem", **kw).fit(X)
        assert plain.converged_ and fast.converged_
        ratios.append(plain.n_em_maps_ / fast.n_em_maps_)
        gaps.append(fast.score(X) - plain.score(X))
    print("plain / squarem E+M passes:", np.round(ratios, 2), "median", np.median(ratios))
    assert np.median(ratios) >= 3.0, ratios
    # and it gets at least as close to the optimum as plain EM does
    assert min(gaps) > -1e-7, gaps


# --------------------------------------------------------------------------
# fallback to plain EM
# --------------------------------------------------------------------------

def _plain_and_squarem(monkeypatch, patch, cycles=4):
    X = make_mixture(1500, 2, 3, separation=1.5, random_state=0)[0]
    init = _start(X, 3, "full", seed=1)
    plain = GaussianMixture(3, tol=0, max_iter=2 * cycles, **init).fit(X)
    with monkeypatch.context() as m:
        patch(m)
        fast = GaussianMixture(3, tol=0, max_iter=cycles, accelerate="squarem",
                               **init).fit(X)
    return plain, fast


def _assert_plain_steps(plain, fast):
    """Every extrapolation rejected: the fit is plain EM's, two steps a cycle."""
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        np.testing.assert_allclose(getattr(fast, name), getattr(plain, name),
                                   rtol=1e-12, atol=1e-14, err_msg=name)
    np.testing.assert_allclose(fast.lower_bounds_, plain.lower_bounds_[::2], rtol=1e-13)
    assert (np.diff(fast.lower_bounds_) >= 0).all()


def test_fallback_when_the_extrapolated_point_is_invalid(monkeypatch):
    rejected = []
    unpack = sq.unpack

    def spy(*args, **kwargs):
        try:
            return unpack(*args, **kwargs)
        except ValueError:
            rejected.append(True)
            raise

    def patch(m):
        m.setattr(sq.Squarem, "step_length", lambda self, r, v: -1e6)
        m.setattr(sq, "unpack", spy)

    plain, fast = _plain_and_squarem(monkeypatch, patch, cycles=4)
    assert len(rejected) == 3  # every cycle but the last, which never extrapolates
    _assert_plain_steps(plain, fast)
    assert fast.n_em_maps_ == 8  # an invalid point costs no pass


def test_fallback_when_the_extrapolation_lowers_the_likelihood(monkeypatch):
    calls = []

    def bad_point(self, p0, p1, p2):
        # valid but poor: means pulled together, covariances inflated; the
        # stabilising EM step from it is far below theta1
        centre = p2.weights @ p2.means
        cov = 4.0 * p2.covariances
        calls.append(True)
        return GaussianParams(p2.weights.copy(), centre + 0.05 * (p2.means - centre), cov,
                              precisions_cholesky_from_covariances(cov, "full")), -3.0

    plain, fast = _plain_and_squarem(
        monkeypatch, lambda m: m.setattr(sq.Squarem, "extrapolate", bad_point), cycles=4)
    assert len(calls) == 3
    _assert_plain_steps(plain, fast)
    # cycle 1: 3 passes; cycles 2, 3: the rejected point, theta0..theta2, theta';
    # cycle 4: the rejected point, theta0, theta1
    assert fast.n_em_maps_ == 3 + 4 + 4 + 3


def test_step_bound_adapts():
    s = sq.Squarem("diag", 2, 2, 1e-6)
    r, v = np.ones(3), -0.01 * np.ones(3)
    assert s.step_length(r, v) == -1.0  # bound 1 at first
    s.succeeded(-1.0)
    s.succeeded(-2.0)
    assert s.step_max == 4.0 and s.step_length(r, v) == -4.0
    s.succeeded(-3.0)  # below the bound: the bound stays
    assert s.step_max == 4.0
    s.failed(-4.0)
    assert s.step_max == 1.0
    s.step_max = 1000.0
    assert s.step_length(r, v) == pytest.approx(-100.0)  # SqS3: -|r| / |v|
    s.failed(-100.0)  # a failed step: the bound becomes a quarter of it
    assert s.step_max == pytest.approx(25.0)
    assert s.step_length(r, 0 * v) == -1.0  # no curvature information: plain EM


# --------------------------------------------------------------------------
# API
# --------------------------------------------------------------------------

def test_invalid_accelerate_raises():
    X = _overlapping(0, n=200)
    with pytest.raises(ValueError, match="accelerate"):
        GaussianMixture(2, accelerate="bogus").fit(X)


def test_plain_mode_counts_one_pass_per_iteration():
    X = _overlapping(0, n=500)
    gm = GaussianMixture(4, random_state=0).fit(X)
    assert gm.accelerate is None and gm.n_em_maps_ == gm.n_iter_ > 0
    gm = GaussianMixture(4, random_state=0, max_iter=0).fit(X)
    assert gm.n_em_maps_ == gm.n_iter_ == 0
    gm = GaussianMixture(4, random_state=0, max_iter=0, accelerate="squarem").fit(X)
    assert gm.n_em_maps_ == gm.n_iter_ == 0


def test_squarem_with_the_other_options():
    X = _overlapping(3, n=1500)
    sw = np.random.default_rng(0).uniform(0.5, 2.0, size=len(X))
    gm = GaussianMixture(4, accelerate="squarem", n_init=2, tol=1e-6, random_state=0,
                         warm_start=True)
    assert clone(gm).get_params()["accelerate"] == "squarem"
    gm.fit(X.astype(np.float32), sample_weight=sw)
    assert gm.converged_ and gm.n_em_maps_ >= gm.n_iter_
    first = gm.lower_bound_
    gm.fit(X.astype(np.float32), sample_weight=sw)  # warm start: already there
    assert gm.n_iter_ <= 2 and gm.lower_bound_ >= first - 1e-6
    # weights of 2 are duplicated rows
    w2 = np.where(np.arange(len(X)) % 3 == 0, 2.0, 1.0)
    Xd = np.vstack([X, X[w2 == 2.0]])
    kw = dict(accelerate="squarem", tol=1e-10, max_iter=500, **_start(X, 4, "diag"),
              covariance_type="diag")
    a = GaussianMixture(4, **kw).fit(X, sample_weight=w2)
    b = GaussianMixture(4, **kw).fit(Xd)
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-6, atol=1e-8)
    # the online estimator subclasses GaussianMixture and is unaffected
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CollapseWarning)
        mb = MiniBatchGaussianMixture(2, random_state=0, max_iter=2).fit(X)
    assert "accelerate" not in mb.get_params() and np.isfinite(mb.means_).all()


def _valid(gm, X):
    assert np.isfinite(gm.means_).all() and gm.weights_.sum() == pytest.approx(1.0)
    if gm.covariance_type in ("full", "tied"):
        assert (np.linalg.eigvalsh(gm.covariances_) > 0).all()
    else:
        assert (gm.covariances_ > 0).all()
    assert np.isfinite(gm.score_samples(X)).all()


@pytest.mark.parametrize("on_collapse", ["reseed", "raise"])
def test_degenerate_data_with_squarem(on_collapse):
    z = np.random.default_rng(0).normal(size=(500, 1))
    X = 1e6 * np.hstack([z, 2 * z, 3 * z])  # collinear: scikit-learn raises
    gm = GaussianMixture(4, accelerate="squarem", on_collapse=on_collapse, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if on_collapse == "raise":
            with pytest.raises(ValueError, match="ill-defined empirical covariance"):
                gm.fit(X)
            return
        gm.fit(X)
    assert gm.collapse_events_
    _valid(gm, X)


@pytest.mark.parametrize("ct", TYPES)
def test_reseed_during_squarem(ct):
    """A component started far away is re-seeded; the cycle with the re-seed
    is plain EM and the log-likelihood climbs between events."""
    rng = np.random.default_rng(1)
    X = np.vstack([rng.normal(size=(500, 2)), rng.normal(size=(500, 2)) + 6.0])
    g0 = GaussianMixture(3, covariance_type=ct, max_iter=2, random_state=0).fit(X)
    means = g0.means_.copy()
    means[0] = [1e4, -1e4]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm = GaussianMixture(3, covariance_type=ct, means_init=means, random_state=0,
                             accelerate="squarem", tol=1e-8).fit(X)
    assert gm.n_reseeds_ >= 1 and gm.collapse_events_[0][1] == 0
    assert np.abs(gm.means_).max() < 20 and gm.weights_.min() > 0.01
    _valid(gm, X)
    lb = np.asarray(gm.lower_bounds_)
    # lower_bounds_[i] is the start of cycle i + 1; a re-seed in cycle c may
    # lower the start of cycle c + 1
    events = {it for it, _, _ in gm.collapse_events_}
    for i in range(1, len(lb)):
        if i not in events:  # slack as in test_collapse: reg_covar makes EM's
            # M-step not quite monotone near a small component
            assert lb[i] >= lb[i - 1] - 1e-9 * abs(lb[i - 1]), (i, lb[i - 1], lb[i])


def test_docs_example_runs():
    page = Path(__file__).resolve().parents[1] / "docs" / "squarem.md"
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)
    assert blocks
    namespace = {"__name__": "__docs__"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for code in blocks:
            exec(compile(code, "docs/squarem.md", "exec"), namespace)
