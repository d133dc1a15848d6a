"""Distributed EM on Dask: the same result as in memory, on a LocalCluster of
two worker processes and under the threaded scheduler."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

da = pytest.importorskip("dask.array")  # the test extra installs it
distributed = pytest.importorskip("distributed")
import dask  # noqa: E402

from fastem import GaussianMixture, MiniBatchGaussianMixture  # noqa: E402
from fastem._stats import COVARIANCE_TYPES  # noqa: E402

RTOL = 1e-10


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None, memory_limit="4GiB")
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


def _mixture(n=20_000, d=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = np.array([[0.0] * d, [4.0] * d, [0.0, 8.0] + [2.0] * (d - 2)])
    labels = rng.integers(0, 3, size=n)
    return centers[labels] + rng.standard_normal((n, d)) * (1.0 + labels[:, None] * 0.3)


X = _mixture()


def _inits(ct, d=3):
    """Deliberately rough initial parameters (several iterations to converge)."""
    prec = {"full": np.stack([np.eye(d) * 0.5] * 3), "tied": np.eye(d) * 0.5,
            "diag": np.full((3, d), 0.5), "spherical": np.full(3, 0.5)}[ct]
    return dict(weights_init=[0.2, 0.3, 0.5],
                means_init=np.array([[1.0] * d, [3.0] * d, [1.0, 6.0] + [1.0] * (d - 2)]),
                precisions_init=prec)


def _assert_same_fit(a, b, rtol=RTOL):
    assert a.n_iter_ == b.n_iter_
    assert a.converged_ == b.converged_
    for attr in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        np.testing.assert_allclose(getattr(b, attr), getattr(a, attr), rtol=rtol,
                                   atol=0, err_msg=attr)
    np.testing.assert_allclose(b.lower_bound_, a.lower_bound_, rtol=rtol)


@pytest.mark.parametrize("ct", COVARIANCE_TYPES)
def test_cluster_fit_equals_in_memory_fit(client, ct):
    kw = dict(n_components=3, covariance_type=ct, tol=1e-6, **_inits(ct))
    ref = GaussianMixture(**kw).fit(X)
    assert ref.n_iter_ >= 3
    got = GaussianMixture(**kw).fit(da.from_array(X, chunks=(3000, 3)))
    _assert_same_fit(ref, got)


def test_sampled_initialisation_is_the_in_memory_one(client):
    """k-means on the same row sample (random_state) as in memory: same fit."""
    kw = dict(n_components=3, covariance_type="full", random_state=7)
    ref = GaussianMixture(**kw).fit(X)
    got = GaussianMixture(**kw).fit(da.from_array(X, chunks=(5000, 3)))
    _assert_same_fit(ref, got)
    again = GaussianMixture(**kw).fit(da.from_array(X, chunks=(5000, 3)))
    _assert_same_fit(got, again, rtol=0)


def test_result_does_not_depend_on_the_chunking(client):
    kw = dict(n_components=3, covariance_type="diag", tol=1e-6, **_inits("diag"))
    fits = [GaussianMixture(**kw).fit(da.from_array(X, chunks=(rows, cols)))
            for rows, cols in ((1000, 3), (7001, 3), (20_000, 1))]
    for other in fits[1:]:
        _assert_same_fit(fits[0], other)


def test_threaded_scheduler(client):
    kw = dict(n_components=3, covariance_type="tied", tol=1e-6, **_inits("tied"))
    ref = GaussianMixture(**kw).fit(X)
    with dask.config.set(scheduler="threads"):
        got = GaussianMixture(**kw).fit(da.from_array(X, chunks=(2500, 3)))
    _assert_same_fit(ref, got)


def test_sample_weight_and_float32(client):
    w = np.random.default_rng(1).uniform(0.0, 3.0, size=X.shape[0])
    kw = dict(n_components=3, covariance_type="full", tol=1e-6, **_inits("full"))
    ref = GaussianMixture(**kw).fit(X, sample_weight=w)
    got = GaussianMixture(**kw).fit(da.from_array(X, chunks=(4000, 3)), sample_weight=w)
    _assert_same_fit(ref, got)
    X32 = X.astype(np.float32)
    ref32 = GaussianMixture(**kw).fit(X32)
    got32 = GaussianMixture(**kw).fit(da.from_array(X32, chunks=(4000, 3)))
    _assert_same_fit(ref32, got32, rtol=1e-9)


def test_inference_is_lazy_and_equal(client):
    gm = GaussianMixture(3, covariance_type="full", random_state=0).fit(X)
    Xd = da.from_array(X, chunks=(3000, 3))
    labels, proba, logp = gm.predict(Xd), gm.predict_proba(Xd), gm.score_samples(Xd)
    for lazy in (labels, proba, logp):
        assert isinstance(lazy, da.Array)
    assert proba.shape == (X.shape[0], 3)
    np.testing.assert_array_equal(labels.compute(), gm.predict(X))
    np.testing.assert_allclose(proba.compute(), gm.predict_proba(X), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(logp.compute(), gm.score_samples(X), rtol=1e-12)
    np.testing.assert_allclose(gm.score(Xd), gm.score(X), rtol=1e-12)
    np.testing.assert_allclose(gm.bic(Xd), gm.bic(X), rtol=1e-12)
    fp = GaussianMixture(3, covariance_type="full", random_state=0).fit_predict(Xd)
    assert isinstance(fp, da.Array)
    np.testing.assert_array_equal(fp.compute(), gm.predict(X))


def test_non_finite_chunk_raises_on_the_client(client):
    bad = X.copy()
    bad[17_321, 1] = np.nan
    bad[19_000, 0] = np.inf
    Xd = da.from_array(bad, chunks=(3000, 3))
    with pytest.raises(ValueError, match=r"2 non-finite values \(NaN: 1, inf: 1\).*"
                                         r"row 17321, column 1"):
        GaussianMixture(3, **_inits("full")).fit(Xd)
    with pytest.raises(ValueError, match="2 non-finite values"):
        GaussianMixture(3, random_state=0).fit(Xd)
    gm = GaussianMixture(3, random_state=0).fit(X)
    # lazy outputs: the first chunk to fail raises, with its own bad values
    with pytest.raises(ValueError, match=r"non-finite value .*(row 17321, column 1|"
                                         r"row 19000, column 0)"):
        gm.predict(Xd).compute()


def test_bad_dask_input():
    ragged = da.from_array(X, chunks=(3000, 3))
    ragged = ragged[ragged[:, 0] > 0]  # unknown chunk sizes
    with pytest.raises(ValueError, match="compute_chunk_sizes"):
        GaussianMixture(2).fit(ragged)
    strings = da.from_array(np.array([["a", "b"]] * 10), chunks=(5, 2))
    with pytest.raises(ValueError, match="numeric dtype.*astype"):
        GaussianMixture(2).fit(strings)
    import dask.bag as db

    with pytest.raises(ValueError, match="accepts a 2-D dask array"):
        GaussianMixture(2).fit(db.from_sequence([1.0, 2.0]))


def test_partial_fit_takes_a_dask_chunk(client):
    Xd = da.from_array(X, chunks=(2000, 3))
    kw = dict(n_components=3, random_state=0, **_inits("full"))
    a, b = MiniBatchGaussianMixture(**kw), MiniBatchGaussianMixture(**kw)
    for i in range(3):
        a.partial_fit(X[2000 * i:2000 * (i + 1)])
        b.partial_fit(Xd.blocks[i])
    np.testing.assert_array_equal(a.means_, b.means_)
    np.testing.assert_array_equal(a.covariances_, b.covariances_)


def test_worker_killed_mid_fit_does_not_change_the_result(client, monkeypatch):
    kw = dict(n_components=3, covariance_type="full", tol=1e-6, **_inits("full"))
    ref = GaussianMixture(**kw).fit(da.from_array(X, chunks=(2000, 3)))
    pids = list(client.run(os.getpid).values())
    calls = []
    m_step = GaussianMixture._m_step

    def m_step_then_kill(self, stats, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:  # after the third E-step: one worker dies
            os.kill(pids[0], signal.SIGKILL)
        return m_step(self, stats, *args, **kwargs)

    monkeypatch.setattr(GaussianMixture, "_m_step", m_step_then_kill)
    got = GaussianMixture(**kw).fit(da.from_array(X, chunks=(2000, 3)))
    monkeypatch.undo()
    assert len(calls) > 3
    _assert_same_fit(ref, got, rtol=0)
    client.wait_for_workers(2, timeout=60)
    assert pids[0] not in client.run(os.getpid).values()


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/statm")
def test_data_generated_on_the_workers_never_reaches_the_client(client):
    n, d = 5_000_000, 4
    rs = da.random.RandomState(0)
    z = rs.standard_normal((n, d), chunks=(250_000, d))
    label = rs.randint(0, 3, size=n, chunks=250_000)
    Xd = z + 5.0 * label[:, None]  # three unit clusters at 0, 5 and 10
    nbytes = n * d * 8
    gm = GaussianMixture(3, covariance_type="diag", random_state=0, max_iter=30)
    # imports and kernel loading first, so that the measurement sees the data only
    GaussianMixture(3, covariance_type="diag", random_state=0, max_iter=2).fit(Xd[:20_000])
    base = _rss_bytes()
    peak = [base]
    done = threading.Event()

    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        gm.fit(Xd)
    finally:
        done.set()
        watcher.join()
    growth = peak[0] - base
    assert growth < 0.05 * nbytes, f"client RSS grew by {growth / 2**20:.1f} MiB"
    np.testing.assert_allclose(np.sort(gm.means_[:, 0]), [0.0, 5.0, 10.0], atol=0.02)
    np.testing.assert_allclose(gm.covariances_, 1.0, atol=0.02)


def test_kernels_release_the_gil():
    """Threaded Dask workers run chunk tasks side by side only if they do."""
    from fastem._kernels.gaussian import ESTEP_KERNELS

    for kernel in ESTEP_KERNELS.values():
        assert kernel.targetoptions["nogil"] is True


def test_fastem_imports_and_fits_without_dask():
    code = textwrap.dedent("""
        import sys
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("dask", "distributed"):
                    raise ImportError("blocked: " + name)
        sys.meta_path.insert(0, Block())
        import numpy as np, fastem
        gm = fastem.GaussianMixture(2, random_state=0).fit(
            np.random.default_rng(0).normal(size=(200, 2)))
        assert gm.converged_
        assert not any(m.split(".")[0] == "dask" for m in sys.modules)
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
