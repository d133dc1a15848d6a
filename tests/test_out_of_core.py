"""Out-of-core input: ``np.memmap`` and array-likes with ``.shape``, ``.dtype``
and row slicing (as h5py and zarr arrays) are read in chunks.

- fitting a 2 GB memmap raises the peak resident memory by far less than the
  file size (measured in a fresh process);
- chunked fits, predictions and scores equal the in-memory ones;
- a slice-only array-like is never read whole nor fancy-indexed;
- NaN/inf and bad dtypes raise the in-memory errors.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import COVARIANCE_TYPES, blobs

import fastem
from fastem import GaussianMixture, _base, _config, _data
from fastem._data import MIN_CHUNK_ROWS, RowSource, is_out_of_core
from fastem._validation import check_array_2d

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

REPO = str(Path(fastem.__file__).resolve().parent.parent)
N, D, K = 20_000, 5, 3


class SliceOnlyArray:
    """An h5py/zarr-like array: ``.shape``, ``.dtype`` and ``X[i0:i1]`` only.

    No ``__array__`` (it raises), no fancy indexing (non-slice keys raise);
    records the largest slice it served and how many reads it made."""

    def __init__(self, data):
        self._data = data
        self.shape = data.shape
        self.dtype = data.dtype
        self.max_rows = 0
        self.n_reads = 0

    def __getitem__(self, key):
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError(f"SliceOnlyArray serves row slices only, got {key!r}")
        start, stop, _ = key.indices(self.shape[0])
        self.max_rows = max(self.max_rows, stop - start)
        self.n_reads += 1
        return self._data[key].copy()

    def __array__(self, *args, **kwargs):
        raise AssertionError("SliceOnlyArray was read whole through __array__")


@pytest.fixture
def reads(monkeypatch):
    """Small chunks (MIN_CHUNK_ROWS = 4096 rows); returns the list of
    (i0, i1) ranges the RowSources read."""
    monkeypatch.setattr(_config, "CHUNK_BYTES", 1)
    log = []
    original = RowSource._read

    def spy(self, i0, i1):
        log.append((i0, i1))
        return original(self, i0, i1)

    monkeypatch.setattr(RowSource, "_read", spy)
    return log


@pytest.fixture(scope="module")
def data():
    return blobs(n=N, d=D, k=K, seed=11)


def to_memmap(path, X, mode="r"):
    mm = np.memmap(path, dtype=X.dtype, mode="w+", shape=X.shape)
    mm[:] = X
    mm.flush()
    del mm
    return np.memmap(path, dtype=X.dtype, mode=mode, shape=X.shape)


def assert_same_fit(a, b, rtol=1e-10):
    assert a.n_iter_ == b.n_iter_
    assert a.converged_ == b.converged_
    for attr in ("weights_", "means_", "covariances_", "precisions_cholesky_",
                 "precisions_"):
        np.testing.assert_allclose(getattr(b, attr), getattr(a, attr), rtol=rtol,
                                   atol=0, err_msg=attr)
    np.testing.assert_allclose(b.lower_bound_, a.lower_bound_, rtol=rtol)


def assert_chunked(log, n):
    assert len({i0 for i0, _ in log}) > 1, "a single chunk was used"
    assert max(i1 - i0 for i0, i1 in log) <= MIN_CHUNK_ROWS < n


# --------------------------------------------------------------------------
# (1) peak memory of a 2 GB memmap fit, in a fresh process
# --------------------------------------------------------------------------

_MEMORY_SCRIPT = """
import json, sys
import numpy as np
from fastem import GaussianMixture

def status(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024

big, small, n, d, k = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), 4
centres = np.kron(6.0 * np.eye(k), np.ones(d // k))
given = dict(covariance_type="diag", max_iter=2, tol=0, weights_init=np.full(k, 1 / k),
             means_init=centres + 0.5, precisions_init=np.ones((k, d)))
kmeans = dict(covariance_type="diag", max_iter=1, tol=0, random_state=0)

# warm-up on tiny data, so that imports, compilation and caches are not counted
tiny = np.memmap(small, dtype=np.float64, mode="r", shape=(20000, d))
GaussianMixture(k, **given).fit(tiny).score(tiny)
GaussianMixture(k, **kmeans).fit(tiny)
try:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current resident size
except OSError:
    pass
X = np.memmap(big, dtype=np.float64, mode="r", shape=(n, d))
base = status("VmHWM")
gm = GaussianMixture(k, **given).fit(X)
score = gm.score(X)
after_given = status("VmHWM")
GaussianMixture(k, **kmeans).fit(X)  # initialised on a sample of rows
after_kmeans = status("VmHWM")
print(json.dumps(dict(base=base, after_given=after_given, after_kmeans=after_kmeans,
                      n_iter=gm.n_iter_, score=score, weights=gm.weights_.tolist(),
                      means=gm.means_.tolist())))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_fit_of_2gb_memmap_keeps_peak_memory_low(tmp_path):
    d, k = 16, 4
    rows = 2**25 // (8 * d)  # 32 MiB of rows, written 64 times: 2 GiB
    rng = np.random.default_rng(0)
    labels = rng.integers(0, k, size=rows)
    centres = np.kron(6.0 * np.eye(k), np.ones(d // k))
    block = centres[labels] + rng.standard_normal((rows, d))
    big = tmp_path / "big.f64"
    with open(big, "wb") as f:
        raw = block.tobytes()
        f.writelines(raw for _ in range(64))
    del raw
    block[:20000].tofile(tmp_path / "small.f64")
    n = big.stat().st_size // (8 * d)
    assert n * d * 8 == 2**31
    script = tmp_path / "measure.py"
    script.write_text(_MEMORY_SCRIPT)
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(
        [sys.executable, str(script), str(big), str(tmp_path / "small.f64"), str(n), str(d)],
        check=False, capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    mib = 2**20
    assert (r["after_given"] - r["base"]) < 300 * mib, r
    assert (r["after_kmeans"] - r["base"]) < 300 * mib, r
    # the fit did read the data: two iterations found the four equal clusters
    assert r["n_iter"] == 2 and np.isfinite(r["score"])
    np.testing.assert_allclose(r["weights"], 0.25, atol=0.01)
    np.testing.assert_allclose(r["means"], centres, atol=0.05)


# --------------------------------------------------------------------------
# (2) a memmap fit equals the in-memory fit of the same data
# --------------------------------------------------------------------------

@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_memmap_fit_equals_in_memory_fit(tmp_path, data, reads, covariance_type):
    mm = to_memmap(tmp_path / "x.f64", data)
    kw = {"covariance_type": covariance_type, "random_state": 0, "tol": 1e-6}
    ref = GaussianMixture(K, **kw).fit(data)
    gm = GaussianMixture(K, **kw).fit(mm)
    assert_chunked(reads, N)
    assert ref.n_iter_ > 2
    assert_same_fit(ref, gm)
    # inference on the memmap: the same model, the same per-row outputs
    np.testing.assert_array_equal(gm.predict(mm), gm.predict(data))
    np.testing.assert_array_equal(gm.predict_proba(mm), gm.predict_proba(data))
    np.testing.assert_array_equal(gm.score_samples(mm), gm.score_samples(data))
    for method in ("score", "bic", "aic"):
        np.testing.assert_allclose(getattr(gm, method)(mm), getattr(gm, method)(data),
                                   rtol=1e-12)


def test_memmap_sample_weight_and_fit_predict(tmp_path, data, reads):
    mm = to_memmap(tmp_path / "x.f64", data)
    sw = np.random.default_rng(1).uniform(0, 2, size=N)
    ref = GaussianMixture(K, random_state=0)
    labels_ref = ref.fit_predict(data, sample_weight=sw)
    gm = GaussianMixture(K, random_state=0)
    labels = gm.fit_predict(mm, sample_weight=sw)
    assert_chunked(reads, N)
    assert_same_fit(ref, gm)
    np.testing.assert_array_equal(labels, labels_ref)
    np.testing.assert_allclose(gm.score(mm, sample_weight=sw),
                               gm.score(data, sample_weight=sw), rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.int32])
def test_memmap_dtypes_are_converted_per_chunk(tmp_path, data, reads, dtype):
    X = (data * 100).astype(dtype)
    mm = to_memmap(tmp_path / "x.bin", X)
    assert check_array_2d(mm).dtype == (np.float32 if dtype == np.float32 else np.float64)
    ref = GaussianMixture(K, covariance_type="diag", random_state=0).fit(X)
    gm = GaussianMixture(K, covariance_type="diag", random_state=0).fit(mm)
    assert_chunked(reads, N)
    assert_same_fit(ref, gm)


def test_copy_on_write_memmap_keeps_private_changes(tmp_path, data, reads):
    """Pages of a 'c' memmap are never released: that would discard the
    user's private modifications."""
    mm = to_memmap(tmp_path / "x.f64", data, mode="c")
    mm[:N // 2] += 50.0  # private changes, not in the file
    changed = data.copy()
    changed[:N // 2] += 50.0
    ref = GaussianMixture(K, random_state=0).fit(changed)
    gm = GaussianMixture(K, random_state=0).fit(mm)
    assert_chunked(reads, N)
    np.testing.assert_array_equal(mm, changed)
    assert_same_fit(ref, gm)


def test_shared_memmap_writes_survive_page_release(tmp_path, data, reads):
    mm = to_memmap(tmp_path / "x.f64", data, mode="r+")
    mm[N - 7] = 123.0  # a dirty shared page, released after its chunk
    GaussianMixture(K, covariance_type="diag", random_state=0).fit(mm)
    assert_chunked(reads, N)
    assert (mm[N - 7] == 123.0).all()
    on_disk = np.fromfile(tmp_path / "x.f64").reshape(N, D)
    assert (on_disk[N - 7] == 123.0).all()


class _PandasLike(SliceOnlyArray):
    """Has .shape, .dtype and __getitem__, but lives in pandas: in memory."""

    __module__ = "pandas.core.series"


def test_in_memory_inputs_stay_in_memory(data, monkeypatch):
    assert check_array_2d(data) is data
    assert not is_out_of_core(data) and not is_out_of_core(data.tolist())
    assert not is_out_of_core(_PandasLike(data))
    assert is_out_of_core(SliceOnlyArray(data))
    # feature names are taken from the caller's object, before any routing
    seen = []
    original = _base._check_feature_names
    monkeypatch.setattr(_base, "_check_feature_names",
                        lambda est, X, reset: seen.append(X) or original(est, X, reset=reset))
    X = SliceOnlyArray(data)
    gm = GaussianMixture(K, random_state=0, max_iter=2).fit(data)
    gm.predict(X)
    assert seen[0] is data and seen[1] is X


# --------------------------------------------------------------------------
# (3) a generic array-like that is not an ndarray
# --------------------------------------------------------------------------

@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_slice_only_array_like_fits_like_ndarray(data, reads, covariance_type):
    X = SliceOnlyArray(data)
    kw = {"covariance_type": covariance_type, "random_state": 0}
    ref = GaussianMixture(K, **kw).fit(data)
    gm = GaussianMixture(K, **kw).fit(X)
    assert_chunked(reads, N)
    assert_same_fit(ref, gm)
    np.testing.assert_array_equal(gm.predict(X), gm.predict(data))
    np.testing.assert_array_equal(gm.predict_proba(X), gm.predict_proba(data))
    np.testing.assert_array_equal(gm.score_samples(X), gm.score_samples(data))
    for method in ("score", "bic", "aic"):
        np.testing.assert_allclose(getattr(gm, method)(X), getattr(gm, method)(data),
                                   rtol=1e-12)
    assert 0 < X.max_rows <= MIN_CHUNK_ROWS < N  # never read whole


def test_slice_only_array_like_init_methods_and_weights(data, reads):
    sw = np.random.default_rng(2).uniform(0.5, 1.5, size=N)
    for init in ("kmeans", "k-means++", "random", "random_from_data"):
        X = SliceOnlyArray(data)
        kw = {"init_params": init, "random_state": 1, "max_iter": 5}
        ref = GaussianMixture(K, **kw).fit(data, sample_weight=sw)
        gm = GaussianMixture(K, **kw).fit(X, sample_weight=sw)
        assert_same_fit(ref, gm)
        assert X.max_rows <= MIN_CHUNK_ROWS


def test_row_source_indexing(data, reads):
    X = SliceOnlyArray(data)
    rs = check_array_2d(X)
    assert isinstance(rs, RowSource) and rs.shape == (N, D) and len(rs) == N
    idx = np.random.default_rng(3).choice(N, size=3000, replace=False)  # unsorted
    np.testing.assert_array_equal(rs[idx], data[idx])
    np.testing.assert_array_equal(rs.take(np.sort(idx)), data[np.sort(idx)])
    np.testing.assert_array_equal(rs[100:9000], data[100:9000])
    np.testing.assert_array_equal(rs[::7], data[::7])
    np.testing.assert_array_equal(rs[-1], data[-1])
    np.testing.assert_array_equal(np.asarray(rs), data)
    assert X.max_rows <= MIN_CHUNK_ROWS


def test_large_n_init_sample_is_uniform_and_distinct(monkeypatch):
    monkeypatch.setattr(_data, "PERMUTATION_MAX_ROWS", 10)
    rng = np.random.RandomState(0)
    counts = np.zeros(1000)
    for _ in range(400):
        idx = _data.sample_rows(rng, 1000, 100)
        assert idx.shape == (100,) and np.all(np.diff(idx) > 0)
        assert idx[0] >= 0 and idx[-1] < 1000
        counts[idx] += 1
    # each row is drawn with probability 0.1: 40 +- 6 times in 400 draws
    assert 15 < counts.min() and counts.max() < 70


# --------------------------------------------------------------------------
# (4) NaN / inf in the middle of out-of-core input
# --------------------------------------------------------------------------

def _message(fn, *args):
    with pytest.raises(ValueError) as excinfo:
        fn(*args)
    return str(excinfo.value)


@pytest.mark.parametrize("n_bad", [1, 800])
def test_nan_in_the_middle_raises_the_in_memory_error(tmp_path, data, reads, n_bad):
    X = data.copy()
    rows = np.random.default_rng(4).choice(np.arange(10_000, N), n_bad, replace=False)
    X[rows, 2] = np.nan
    X[rows[0], 0] = np.inf
    mm = to_memmap(tmp_path / "x.f64", X)
    inputs = [mm, SliceOnlyArray(X)]
    expected = _message(GaussianMixture(K, random_state=0).fit, X)
    assert re.search(r"non-finite", expected) and f"NaN: {n_bad}" in expected
    given = {"weights_init": np.full(K, 1 / K), "means_init": data[:K],
             "precisions_init": np.ones((K, D, D)) * np.eye(D)}
    for Xo in inputs:
        assert _message(GaussianMixture(K, random_state=0).fit, Xo) == expected
        assert _message(GaussianMixture(K, **given).fit, Xo) == expected
        assert _message(GaussianMixture(K, max_iter=0, **given).fit, Xo) == expected
    fitted = GaussianMixture(K, random_state=0).fit(data)
    for method in ("predict", "predict_proba", "score_samples", "score", "bic"):
        expected = _message(getattr(fitted, method), X)
        for Xo in inputs:
            assert _message(getattr(fitted, method), Xo) == expected
    assert inputs[1].max_rows <= MIN_CHUNK_ROWS


# --------------------------------------------------------------------------
# (5) dtypes and shapes that cannot be read
# --------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["<U8", object, "datetime64[s]"])
def test_non_numeric_array_like_raises(dtype):
    X = SliceOnlyArray(np.zeros((100, 3)).astype(dtype))
    with pytest.raises(ValueError) as excinfo:
        GaussianMixture(2).fit(X)
    message = str(excinfo.value)
    assert str(np.dtype(dtype)) in message                 # what was received
    assert re.search(r"float64", message)                  # what was expected
    assert re.search(r"(?i)store the data|np\.asarray", message)  # what to do
    assert X.n_reads == 0


def test_complex_memmap_raises(tmp_path):
    mm = to_memmap(tmp_path / "x.c16", np.zeros((50, 2), dtype=np.complex128))
    with pytest.raises(ValueError, match=r"(?i)complex.*real part"):
        GaussianMixture(2).fit(mm)


def test_bad_shapes_of_out_of_core_input(tmp_path):
    one_d = to_memmap(tmp_path / "x1.f64", np.zeros(100))
    with pytest.raises(ValueError, match=r"1-D.*reshape"):
        GaussianMixture(2).fit(one_d)
    with pytest.raises(ValueError, match=r"3 dimensions"):
        GaussianMixture(2).fit(SliceOnlyArray(np.zeros((10, 3, 2))))
    with pytest.raises(ValueError, match=r"non-empty"):
        GaussianMixture(2).fit(SliceOnlyArray(np.zeros((10, 0))))
    fitted = GaussianMixture(2, random_state=0).fit(np.random.default_rng(0).normal(
        size=(50, 3)))
    with pytest.raises(ValueError, match=r"X has 2 features.*3 features"):
        fitted.predict(SliceOnlyArray(np.zeros((10, 2))))
