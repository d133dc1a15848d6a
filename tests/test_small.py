"""The NumPy paths for small input (fastem/_small.py): the same results as
the kernels and tests/reference.py, and a first fit on small data that
compiles nothing."""

import os
import subprocess
import sys

import numpy as np
import pytest
import reference as ref
from conftest import blobs
from test_kernels import _setup  # data, parameters, shift and weights

from fastem import _small
from fastem._estep import EStepWorkspace, evaluate
from fastem._kernels.linalg import _precision_cholesky
from fastem._kmeans import kmeans, kmeans_plusplus

RTOL = {np.float64: 1e-10, np.float32: 1e-5}


def _close(actual, expected, rtol):
    scale = max(np.abs(expected).max(), 1e-300)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale)


@pytest.fixture
def small_rows(monkeypatch):
    """Set SMALL_ROWS (0: every call runs the kernels)."""
    return lambda rows: monkeypatch.setattr(_small, "SMALL_ROWS", rows)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weighted", [False, True])
def test_small_estep_matches_reference_and_kernel(covariance_type, dtype, weighted,
                                                  small_rows):
    n = _small.SMALL_ROWS
    X, sw, params, shift = _setup(covariance_type, dtype, n)
    sw = sw if weighted else None
    k, d = params.means.shape
    runs = {}
    for rows in (0, n):
        small_rows(rows)
        ws = EStepWorkspace(covariance_type, k, d, n)
        stats = ws.run(X, sw, params, shift=shift)
        ll = evaluate(X, params, covariance_type, sample_weight=sw)
        runs[rows] = stats, ll
    # per-row outputs, NumPy (rows = n) and kernel (rows = 0)
    outs = {}
    for rows in (n, 0):
        small_rows(rows)
        lognorm, resp, label = np.empty(n), np.empty((n, k)), np.empty(n, dtype=np.int64)
        evaluate(X, params, covariance_type, out_lognorm=lognorm, out_resp=resp,
                 out_label=label)
        outs[rows] = lognorm, resp, label
    lognorm, resp, label = outs[n]
    klognorm, kresp, klabel = outs[0]
    stats, ll = runs[n]
    X64 = X.astype(np.float64)
    exp_norm, exp_resp = ref.estep(X64, params.weights, params.means, params.covariances,
                                   covariance_type)
    expected = ref.sufficient_stats(X64, exp_resp, shift, covariance_type, sample_weight=sw)
    rtol = RTOL[dtype]
    _close(stats.S0, expected["S0"], rtol)
    _close(stats.S1, expected["S1"], rtol)
    S2 = stats.S2
    if covariance_type in ("full", "tied"):  # the upper triangle, as the kernels
        assert not np.tril(S2, -1).any()
        S2 = np.triu(S2) + np.swapaxes(np.triu(S2, 1), -1, -2)
    _close(S2, expected["S2"], rtol)
    _close(lognorm, exp_norm, rtol)
    _close(resp, exp_resp, rtol * 10)
    w = np.ones(n) if sw is None else sw
    assert stats.loglik == pytest.approx(float(w @ exp_norm), rel=rtol)
    assert ll[0] == pytest.approx(float(w @ exp_norm), rel=rtol)
    assert ll[1] == stats.weight == pytest.approx(float(w.sum()), rel=1e-12)
    # and the kernel's results, to rounding
    kstats, kll = runs[0]
    assert ll[0] == pytest.approx(kll[0], rel=rtol)
    for name in ("S0", "S1", "S2"):
        _close(getattr(stats, name), getattr(kstats, name), rtol)
    _close(lognorm, klognorm, rtol)
    _close(resp, kresp, rtol * 10)
    confident = kresp.max(axis=1) > 0.5 + 1e-6
    assert np.array_equal(label[confident], klabel[confident])


def test_small_estep_given_responsibilities(covariance_type):
    X, sw, params, shift = _setup(covariance_type, np.float64, 300)
    k, d = params.means.shape
    resp = np.random.default_rng(3).dirichlet(np.ones(k), size=X.shape[0])
    stats = EStepWorkspace(covariance_type, k, d, 300).run(X, sw, params, shift=shift,
                                                            resp_in=resp)
    expected = ref.sufficient_stats(X, resp, shift, covariance_type, sample_weight=sw)
    _close(stats.S0, expected["S0"], 1e-12)
    _close(stats.S1, expected["S1"], 1e-12)
    assert stats.loglik == 0.0


@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("d", [1, 2, 3, 4, 6])
def test_python_factorisation_is_bitwise_the_kernels(k, d):
    rng = np.random.default_rng(10 * k + d)
    A = rng.normal(size=(k, d, d + 3))
    cov = np.ascontiguousarray(A @ np.swapaxes(A, 1, 2) / (d + 3) + 1e-3 * np.eye(d))
    out_kernel, out_python = np.full_like(cov, np.nan), np.full_like(cov, np.nan)
    assert _precision_cholesky(cov, out_kernel) == _small.precision_cholesky(cov, out_python)
    assert np.array_equal(out_kernel, out_python)
    if d > 1:  # not positive definite: the same failing component, the same writes
        cov[k - 1, 0, 0] = -1.0
        out_kernel, out_python = np.full_like(cov, np.nan), np.full_like(cov, np.nan)
        failed = _precision_cholesky(cov, out_kernel)
        assert failed == k - 1 == _small.precision_cholesky(cov, out_python)
        np.testing.assert_array_equal(out_kernel, out_python)


@pytest.mark.parametrize("weighted", [False, True])
def test_small_kmeans_matches_kernel(weighted, small_rows):
    X = blobs(n=400, d=3, k=4, seed=5)
    sw = np.random.default_rng(2).uniform(0.5, 2.0, size=400) if weighted else None
    results = {}
    for rows in (0, 512):
        small_rows(rows)
        seeds = kmeans_plusplus(X, 4, np.random.RandomState(0), sw)
        centers, labels = kmeans(X, 4, np.random.RandomState(0), sw)
        results[rows] = seeds, centers, labels
    (s0, c0, l0), (s1, c1, l1) = results[0], results[512]
    np.testing.assert_array_equal(s0[1], s1[1])
    np.testing.assert_allclose(c0, c1, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(l0, l1)


_FIRST_FIT = """
import sys
from numba.core import event
compiled = []
class Listener(event.Listener):
    def on_start(self, ev):
        compiled.append(ev.data["dispatcher"].py_func.__qualname__)
    def on_end(self, ev):
        pass
event.register("numba:compile", Listener())
import fastem
from fastem.datasets import load_faithful
X, _ = load_faithful()
for ct in ("full", "tied", "diag", "spherical"):
    gm = fastem.GaussianMixture(2, covariance_type=ct, random_state=0).fit(X)
    gm.predict(X), gm.predict_proba(X), gm.score_samples(X), gm.score(X), gm.bic(X)
print(compiled)
"""


def test_first_fit_on_small_data_compiles_nothing(tmp_path):
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", _FIRST_FIT], env=env, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout

