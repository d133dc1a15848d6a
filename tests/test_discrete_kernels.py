"""The discrete fused E-steps (fastem._discrete_estep, fastem._kernels.discrete)
against plain NumPy: the linear kernel on dense X of every dtype and on CSR X,
the categorical kernel, the per-row outputs, given responsibilities, bitwise
equality across thread counts, out-of-core input, and bad arguments."""

import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import numba_threads
from scipy.special import logsumexp

from fastem import _config
from fastem._data import RowSource
from fastem._discrete_estep import (
    CODE_DTYPES,
    LINEAR_DTYPES,
    CategoricalWorkspace,
    LinearWorkspace,
    category_codes,
    check_codes,
    csr_arrays,
    linear_array,
)
from fastem._estep import n_slots_for

RTOL = 1e-12
K = 3
D = 6
#: Categories per column: the first four columns make one joint code (3 * 2 *
#: 5 * 4 = 120 <= 128), 130 categories stand alone, and so does the last
#: column (130 * 2 > 128).
N_CATEGORIES = (3, 2, 5, 4, 130, 2)


# --------------------------------------------------------------------------
# data and NumPy references
# --------------------------------------------------------------------------


def _counts(n, d=D, seed=0, high=6):
    return np.random.default_rng(seed).integers(0, high, size=(n, d))


def _linear_params(d=D, seed=0):
    rng = np.random.default_rng(seed + 100)
    return rng.normal(scale=0.5, size=(K, d)), rng.normal(size=K)


def _weights(n, seed=0):
    w = np.random.default_rng(seed + 200).uniform(0.0, 3.0, size=n)
    w[::7] = 0.0  # rows of weight 0 count for nothing
    return w


def _reference(logjoint, sw=None, resp=None):
    """log p(x_i) (up to h(x)), responsibilities r, and (loglik, weight)."""
    lognorm = logsumexp(logjoint, axis=1)
    if resp is None:
        resp = np.exp(logjoint - lognorm[:, None])
    w = np.ones(logjoint.shape[0]) if sw is None else sw
    return lognorm, resp, float(w @ lognorm), float(w.sum())


def _linear_reference(X, A, b, sw=None, resp=None):
    """(S0, S1, loglik, weight), lognorm, resp, computed in NumPy."""
    Xf = np.asarray(X, dtype=np.float64)
    lognorm, r, ll, weight = _reference(Xf @ A.T + b, sw, resp)
    wr = r if sw is None else r * sw[:, None]
    return (wr.sum(axis=0), wr.T @ Xf, ll, weight), lognorm, r


def _offsets(n_categories):
    return np.concatenate(([0], np.cumsum(n_categories)))


def _codes(n, seed=0, n_categories=N_CATEGORIES):
    rng = np.random.default_rng(seed)
    return np.stack([rng.integers(0, c, size=n) for c in n_categories], axis=1)


def _categorical_params(seed=0, n_categories=N_CATEGORIES):
    rng = np.random.default_rng(seed + 300)
    logtheta = np.concatenate([np.log(rng.dirichlet(np.ones(c), size=K))
                               for c in n_categories], axis=1)
    if n_categories == N_CATEGORIES:
        logtheta[1, 3] = -np.inf  # component 1 never produces category 0 of column 1
    logw = np.log(rng.dirichlet(np.ones(K)))
    return logtheta, logw


def _categorical_reference(X, logtheta, logw, sw=None, resp=None,
                           n_categories=N_CATEGORIES):
    """(S0, counts, loglik, weight), lognorm, resp: a NumPy gather."""
    cols = _offsets(n_categories)[:-1] + np.asarray(X, dtype=np.int64)  # (n, d) table columns
    logjoint = logw + logtheta[:, cols].sum(axis=2).T
    lognorm, r, ll, weight = _reference(logjoint, sw, resp)
    wr = r if sw is None else r * sw[:, None]
    counts = np.zeros_like(logtheta)
    for j in range(cols.shape[1]):
        np.add.at(counts.T, cols[:, j], wr)
    return (wr.sum(axis=0), counts, ll, weight), lognorm, r


def _close(actual, expected, rtol=RTOL):
    expected = np.asarray(expected, dtype=np.float64)
    scale = max(float(np.abs(expected).max(initial=0.0)), 1e-300)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale)


def _assert_stats(got, expected, rtol=RTOL):
    assert len(got) == 4
    S0, S, ll, weight = got
    _close(S0, expected[0], rtol)
    _close(S, expected[1], rtol)
    assert ll == pytest.approx(expected[2], rel=rtol, abs=rtol)
    assert weight == pytest.approx(expected[3], rel=1e-14)
    assert isinstance(ll, float) and isinstance(weight, float)


def _outputs(n):
    return {"out_lognorm": np.full(n, np.nan), "out_resp": np.full((n, K), np.nan),
                "out_label": np.full(n, -1, dtype=np.int64)}


def _assert_outputs(out, lognorm, resp):
    _close(out["out_lognorm"], lognorm)
    _close(out["out_resp"], resp)
    assert np.array_equal(out["out_label"], resp.argmax(axis=1))


def _as_dtype(X, dtype):
    return X > 2 if dtype is bool else X.astype(dtype)


# --------------------------------------------------------------------------
# dense linear kernel
# --------------------------------------------------------------------------

#: the dtypes the kernel is compiled for (bool as a uint8 view), then some
#: that linear_array converts
DENSE_DTYPES = (bool, np.uint8, np.int64, np.float32, np.float64, np.int32, np.int16,
                np.uint16, np.float16)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("dtype", DENSE_DTYPES, ids=lambda t: np.dtype(t).name)
def test_dense_matches_numpy(dtype, weighted):
    n = 700  # three blocks, the last one partial
    X = _as_dtype(_counts(n), dtype)
    A, b = _linear_params()
    sw = _weights(n) if weighted else None
    got = LinearWorkspace(K, D, n).run(X, sw, A, b)
    expected, _, _ = _linear_reference(X, A, b, sw)
    _assert_stats(got, expected)


def test_float32_counts_are_read_exactly():
    """float32 X holding integers is read exactly: the same statistics,
    bit for bit, as the same counts in float64."""
    n = 700
    X = _counts(n, high=1000)
    A, b = _linear_params()
    A *= 1e-3
    ws = LinearWorkspace(K, D, n)
    a64 = ws.run(X.astype(np.float64), None, A, b)
    a32 = ws.run(X.astype(np.float32), None, A, b)
    for u, v in zip(a64, a32):
        assert np.array_equal(u, v)


def test_linear_array_reads_bool_uint8_and_int_as_they_are():
    X = _counts(50)
    for dtype in LINEAR_DTYPES:
        Xd = X.astype(dtype)
        assert linear_array(Xd) is Xd
    B = X > 2
    Bv = linear_array(B)
    assert Bv.dtype == np.uint8 and np.shares_memory(Bv, B)
    assert np.array_equal(Bv, B)
    for dtype, into in ((np.int32, np.int64), (np.int16, np.int64), (np.int8, np.int64),
                        (np.uint16, np.int64), (np.float16, np.float64)):
        Xc = linear_array(X.astype(dtype))
        assert Xc.dtype == into and np.array_equal(Xc, X)
    F = np.asfortranarray(X.astype(np.uint8))  # the kernel reads C order
    Fc = linear_array(F)
    assert Fc.dtype == np.uint8 and Fc.flags.c_contiguous and np.array_equal(Fc, F)


@pytest.mark.parametrize("dtype", [bool, np.uint8, np.int64, np.float32],
                         ids=lambda t: np.dtype(t).name)
def test_dense_run_makes_no_copy_of_x(dtype):
    """A run allocates nothing of X's size: no float64 (or other) copy."""
    n, d = 50_000, 8
    X = _as_dtype(_counts(n, d), dtype)
    A, b = _linear_params(d)
    ws = LinearWorkspace(K, d, n)
    ws.run(X, None, A, b)  # buffers, thread pool and compilation first
    tracemalloc.start()
    try:
        ws.run(X, None, A, b)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < n * d * 8 / 4


def test_given_responsibilities_give_their_statistics():
    n = 700
    X = _counts(n)
    A, b = _linear_params()
    sw = _weights(n)
    resp = np.random.default_rng(5).dirichlet(np.ones(K), size=n)
    ws = LinearWorkspace(K, D, n)
    for dtype in (np.uint8, np.float64):
        S0, S1, _, weight = ws.run(X.astype(dtype), sw, A, b, resp_in=resp)
        expected, _, _ = _linear_reference(X, A, b, sw, resp=resp)
        _close(S0, expected[0])
        _close(S1, expected[1])
        assert weight == pytest.approx(expected[3], rel=1e-14)


@pytest.mark.parametrize("weighted", [False, True])
def test_per_row_outputs_with_and_without_statistics(weighted):
    n = 700
    X = _counts(n).astype(np.uint8)
    A, b = _linear_params()
    sw = _weights(n) if weighted else None
    ws = LinearWorkspace(K, D, n)
    expected, lognorm, resp = _linear_reference(X, A, b, sw)
    out = _outputs(n)
    ll, weight = ws.run(X, sw, A, b, do_stats=False, **out)
    _assert_outputs(out, lognorm, resp)
    assert ll == pytest.approx(expected[2], rel=RTOL)
    assert weight == pytest.approx(expected[3], rel=1e-14)
    out = _outputs(n)
    _assert_stats(ws.run(X, sw, A, b, **out), expected)  # statistics and outputs
    _assert_outputs(out, lognorm, resp)
    for name in ("out_lognorm", "out_resp", "out_label"):  # one output alone
        out = _outputs(n)
        ws.run(X, sw, A, b, do_stats=False, **{name: out[name]})
        _close(out[name], {"out_lognorm": lognorm, "out_resp": resp,
                           "out_label": resp.argmax(axis=1)}[name])


def test_statistics_are_the_same_without_outputs():
    """Asking for per-row outputs changes no statistic."""
    n = 700
    X = _counts(n).astype(np.float64)
    A, b = _linear_params()
    ws = LinearWorkspace(K, D, n)
    for sw in (None, _weights(n)):
        plain = ws.run(X, sw, A, b)
        with_out = ws.run(X, sw, A, b, **_outputs(n))
        _close(plain[0], with_out[0], 1e-15)
        _close(plain[1], with_out[1], 1e-15)
        assert plain[2] == pytest.approx(with_out[2], rel=1e-14)


# --------------------------------------------------------------------------
# CSR linear kernel
# --------------------------------------------------------------------------


def _sparse_counts(n, d, seed=0, density=0.3, empty_rows=()):
    """A CSR matrix of counts with the given empty rows, its column indices
    shuffled inside every row (unsorted, no duplicates)."""
    rng = np.random.default_rng(seed)
    dense = rng.integers(1, 6, size=(n, d)) * (rng.random((n, d)) < density)
    dense[list(empty_rows)] = 0
    X = sp.csr_matrix(dense.astype(np.float64))
    for i in range(n):
        lo, hi = X.indptr[i], X.indptr[i + 1]
        order = lo + rng.permutation(hi - lo)
        X.indices[lo:hi] = X.indices[order]
        X.data[lo:hi] = X.data[order]
    X.has_sorted_indices = False
    assert np.array_equal(X.toarray(), dense)
    return X, dense


@pytest.mark.parametrize("weighted", [False, True])
def test_csr_equals_dense(weighted):
    n = 700
    empty = (0, 1, 255, 256, 699)  # first rows, around a block boundary, the last row
    X, dense = _sparse_counts(n, D, empty_rows=empty)
    unsorted = any((np.diff(X.indices[X.indptr[i]:X.indptr[i + 1]]) < 0).any()
                   for i in range(n))
    assert unsorted and X.indptr[1] == 0
    A, b = _linear_params()
    sw = _weights(n) if weighted else None
    ws = LinearWorkspace(K, D, n)
    out_csr, out_dense = _outputs(n), _outputs(n)
    got = ws.run(X, sw, A, b, **out_csr)
    want = ws.run(dense.astype(np.float64), sw, A, b, **out_dense)
    _assert_stats(got, want)
    expected, lognorm, resp = _linear_reference(dense, A, b, sw)
    _assert_stats(got, expected)
    _assert_outputs(out_csr, lognorm, resp)
    assert np.array_equal(out_csr["out_label"], out_dense["out_label"])
    assert got[1].shape == (K, D)


def test_csr_index_dtypes_formats_and_duplicates():
    """int64 indices, CSC and csr_array input, and repeated column indices
    (summed, as scipy sums them) give the dense statistics."""
    n = 500
    X, dense = _sparse_counts(n, D, seed=1, empty_rows=(3,))
    A, b = _linear_params()
    sw = _weights(n)
    ws = LinearWorkspace(K, D, n)
    expected, _, _ = _linear_reference(dense, A, b, sw)
    X64 = X.copy()  # scipy makes int32 indices when they fit: set int64 ones
    X64.indices = X64.indices.astype(np.int64)
    X64.indptr = X64.indptr.astype(np.int64)
    assert csr_arrays(X64)[1].dtype == csr_arrays(X64)[2].dtype == np.int64
    for Y in (X64, X.tocsc(), sp.csr_array(X), X.astype(np.int64)):
        _assert_stats(ws.run(Y, sw, A, b), expected)
    # every non-zero written twice, halved: duplicate entries
    data = np.repeat(X.data / 2, 2)
    indices = np.repeat(X.indices, 2)
    Xdup = sp.csr_matrix((data, indices, 2 * X.indptr), shape=X.shape)
    assert not Xdup.has_canonical_format
    _assert_stats(ws.run(Xdup, sw, A, b), expected)


def test_csr_given_responsibilities_and_no_statistics():
    n = 600
    X, dense = _sparse_counts(n, D, seed=2, empty_rows=(10, 11))
    A, b = _linear_params()
    sw = _weights(n)
    resp = np.random.default_rng(7).dirichlet(np.ones(K), size=n)
    ws = LinearWorkspace(K, D, n)
    S0, S1, _, weight = ws.run(X, sw, A, b, resp_in=resp)
    expected, lognorm, r = _linear_reference(dense, A, b, sw, resp=resp)
    _close(S0, expected[0])
    _close(S1, expected[1])
    expected, lognorm, r = _linear_reference(dense, A, b, sw)
    out = _outputs(n)
    ll, weight = ws.run(X, sw, A, b, do_stats=False, **out)
    _assert_outputs(out, lognorm, r)
    assert ll == pytest.approx(expected[2], rel=RTOL)
    assert weight == pytest.approx(expected[3], rel=1e-14)


def test_csr_reads_x_as_it_is():
    """The CSR path never makes X dense: float64 data is used in place, and a
    run over a matrix whose dense form would take 1.2 GB allocates a few MB."""
    n, d = 3000, 50_000
    rng = np.random.default_rng(3)
    X = sp.random(n, d, density=5e-5, format="csr", random_state=rng,
                  data_rvs=lambda size: rng.integers(1, 4, size=size).astype(np.float64))
    data, indices, indptr = csr_arrays(X)
    assert data is X.data and indices is X.indices and indptr is X.indptr
    A, b = _linear_params(d)
    ws = LinearWorkspace(K, d, n)
    first = ws.run(X, None, A, b)  # buffers, thread pool and compilation first
    tracemalloc.start()
    try:
        again = ws.run(X, None, A, b)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * K * d * 8 + 2**20  # the result and its reduction
    rows = rng.choice(n, size=200, replace=False)
    expected, _, _ = _linear_reference(X[rows].toarray(), A, b)
    sub = LinearWorkspace(K, d, 200).run(X[rows], None, A, b)
    _assert_stats(sub, expected)
    for u, v in zip(first, again):
        assert np.array_equal(u, v)


# --------------------------------------------------------------------------
# categorical kernel
# --------------------------------------------------------------------------


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("dtype", [np.uint8, np.int64, np.int32, np.int16, np.float64],
                         ids=lambda t: np.dtype(t).name)
def test_categorical_matches_numpy(dtype, weighted):
    n = 700
    X = _codes(n).astype(dtype)
    logtheta, logw = _categorical_params()
    sw = _weights(n) if weighted else None
    ws = CategoricalWorkspace(K, N_CATEGORIES, n)
    out = _outputs(n)
    got = ws.run(X, sw, logtheta, logw, **out)
    expected, lognorm, resp = _categorical_reference(X, logtheta, logw, sw)
    _assert_stats(got, expected)
    _assert_outputs(out, lognorm, resp)
    assert got[1].shape == logtheta.shape


def test_category_codes_reads_uint8_and_int64_as_they_are():
    X = _codes(40)
    for dtype in CODE_DTYPES:
        Xd = X.astype(dtype)
        assert category_codes(Xd) is Xd
    B = X[:, :2] > 0
    assert np.shares_memory(category_codes(B), B)
    for dtype in (np.int32, np.int16, np.uint16, np.float32, np.float64):
        codes = category_codes(X.astype(dtype))
        assert codes.dtype == np.int64 and np.array_equal(codes, X)
    with pytest.raises(ValueError, match="whole numbers"):
        category_codes(X + 0.5)
    with pytest.raises(ValueError, match="whole numbers"):
        category_codes(np.where(X == 1, np.nan, X))


def test_categorical_given_responsibilities_and_no_statistics():
    n = 600
    X = _codes(n, seed=4)
    logtheta, logw = _categorical_params(seed=4)
    sw = _weights(n)
    resp = np.random.default_rng(8).dirichlet(np.ones(K), size=n)
    ws = CategoricalWorkspace(K, N_CATEGORIES, n)
    S0, counts, _, weight = ws.run(X, sw, logtheta, logw, resp_in=resp)
    expected, _, _ = _categorical_reference(X, logtheta, logw, sw, resp=resp)
    _close(S0, expected[0])
    _close(counts, expected[1])
    assert weight == pytest.approx(expected[3], rel=1e-14)
    expected, lognorm, r = _categorical_reference(X, logtheta, logw, sw)
    out = _outputs(n)
    ll, weight = ws.run(X, sw, logtheta, logw, do_stats=False, **out)
    _assert_outputs(out, lognorm, r)
    assert ll == pytest.approx(expected[2], rel=RTOL)


@pytest.mark.parametrize("n_categories", [(1, 1, 1), (300,), (2,) * 9, (7, 1, 19, 128, 1)])
def test_categorical_column_groupings(n_categories):
    """Columns of one category, one wide column, many binary columns (one
    group of 7, then 2), a column of exactly 128 categories."""
    n = 400
    X = _codes(n, seed=6, n_categories=n_categories).astype(np.int64)
    logtheta, logw = _categorical_params(seed=6, n_categories=n_categories)
    sw = _weights(n)
    got = CategoricalWorkspace(K, n_categories, n).run(X, sw, logtheta, logw)
    expected, _, _ = _categorical_reference(X, logtheta, logw, sw,
                                            n_categories=n_categories)
    _assert_stats(got, expected)


@pytest.mark.parametrize("dtype", [np.uint8, np.int64, np.int16])
def test_code_out_of_range_names_the_column(dtype):
    n = 600
    logtheta, logw = _categorical_params()
    ws = CategoricalWorkspace(K, N_CATEGORIES, n)
    X = _codes(n).astype(dtype)
    X[517, 2] = 5  # column 2 has 5 categories: 0 .. 4
    with pytest.raises(ValueError, match="Column 2 of X holds category codes from 0 to 5"):
        ws.run(X, None, logtheta, logw)
    with pytest.raises(ValueError, match="Column 2"):  # also without statistics
        ws.run(X, None, logtheta, logw, do_stats=False, out_label=np.empty(n, np.int64))
    resp = np.full((n, K), 1.0 / K)
    with pytest.raises(ValueError, match="Column 2"):  # and with given responsibilities
        ws.run(X, None, logtheta, logw, resp_in=resp)
    if np.dtype(dtype).kind == "i":
        X = _codes(n).astype(dtype)
        X[3, 4] = -1
        with pytest.raises(ValueError, match="Column 4 of X holds category codes from -1"):
            ws.run(X, None, logtheta, logw)
    with pytest.raises(ValueError, match=r"Column 0 .* codes must be 0 \.\. 2"):
        check_codes(np.array([[3, 0]]), np.array([3, 2]))
    check_codes(np.array([[2, 1]]), np.array([3, 2]))
    check_codes(np.empty((0, 2), dtype=np.int64), np.array([3, 2]))


# --------------------------------------------------------------------------
# bitwise equality across thread counts
# --------------------------------------------------------------------------

N_THREADS_TEST = 16 * 256 + 77


def _on_threads(make, run):
    """run(workspace) on 1 and on 2 threads (fresh workspaces and outputs)."""
    results = []
    for threads in (1, 2):
        with numba_threads(threads):
            results.append(run(make()))
    return results


def _assert_bitwise(one, two):
    for u, v in zip(one, two):
        if isinstance(u, dict):
            for name in u:
                assert np.array_equal(u[name], v[name]), name
        else:
            assert np.array_equal(u, v)


@pytest.mark.parametrize("kind", ["dense-uint8", "dense-float64", "csr", "categorical"])
def test_bitwise_identical_across_threads(kind):
    n = N_THREADS_TEST
    assert n_slots_for(n) == min(_config.N_SLOTS, -(-n // _config.BLOCK_SIZE)) > 1
    sw = _weights(n)
    if kind == "categorical":
        X = _codes(n)
        params = _categorical_params()

        def make():
            return CategoricalWorkspace(K, N_CATEGORIES, n)
    else:
        A, b = _linear_params()
        params = (A, b)
        if kind == "csr":
            X, _ = _sparse_counts(n, D, empty_rows=(0, 4000))
        else:
            X = _counts(n).astype(np.uint8 if kind == "dense-uint8" else np.float64)

        def make():
            return LinearWorkspace(K, D, n)

    def run(ws):
        out = _outputs(n)
        stats = ws.run(X, sw, *params, **out)
        plain = ws.run(X, None, *params)
        return stats + plain + (out,)

    one, two = _on_threads(make, run)
    _assert_bitwise(one, two)


# --------------------------------------------------------------------------
# bad arguments
# --------------------------------------------------------------------------


def _linear_case(n=50):
    X = _counts(n).astype(np.uint8)
    A, b = _linear_params()
    return LinearWorkspace(K, D, n), X, A, b


@pytest.mark.parametrize("bad", [
    {"A": np.zeros((K, D + 1))}, {"A": np.zeros((K + 1, D))}, {"A": np.zeros(K * D)},
    {"b": np.zeros(K + 1)}, {"b": np.zeros((K, 1))},
    {"X": np.zeros((50, D + 1))}, {"X": np.zeros(50)},
    {"sample_weight": np.ones(49)}, {"sample_weight": np.ones((50, 1))},
    {"resp_in": np.ones((50, K + 1))}, {"resp_in": np.ones((50, K), dtype=np.float32)},
    {"out_lognorm": np.empty(49)}, {"out_lognorm": np.empty(50, dtype=np.float32)},
    {"out_resp": np.empty((50, K), dtype=np.float32)}, {"out_resp": np.empty((K, 50))},
    {"out_label": np.empty(50, dtype=np.int32)}, {"out_label": np.empty(50)},
], ids=lambda bad: "-".join(f"{k}{np.shape(v)}{np.asarray(v).dtype}" for k, v in bad.items()))
@pytest.mark.parametrize("sparse", [False, True])
def test_linear_shape_mismatch_raises(bad, sparse):
    ws, X, A, b = _linear_case()
    args = {"X": X, "sample_weight": None, "A": A, "b": b}
    args.update(bad)
    if sparse:
        args["X"] = sp.csr_matrix(args["X"].reshape(args["X"].shape[0], -1))
    with pytest.raises(ValueError, match="shape|dtype"):
        ws.run(args.pop("X"), args.pop("sample_weight"), args.pop("A"), args.pop("b"),
               **args)


def test_read_only_outputs_raise():
    ws, X, A, b = _linear_case()
    for name, out in _outputs(50).items():
        out.setflags(write=False)
        with pytest.raises(ValueError, match=name):
            ws.run(X, None, A, b, do_stats=False, **{name: out})


def test_bad_csr_structure_raises():
    ws, X, A, b = _linear_case()
    Xs = sp.csr_matrix(X.astype(np.float64))
    bad_col = Xs.copy()
    bad_col.indices[5] = D  # past the last column
    with pytest.raises(ValueError, match="column indices"):
        ws.run(bad_col, None, A, b)
    with pytest.raises(ValueError, match="column indices"):
        ws.run(bad_col, None, A, b, resp_in=np.full((50, K), 1.0 / K))
    neg = Xs.copy()
    neg.indices[0] = -1
    with pytest.raises(ValueError, match="column indices"):
        ws.run(neg, None, A, b, do_stats=False)
    short = Xs.copy()
    short.indptr[-1] = short.indices.shape[0] + 3
    with pytest.raises(ValueError, match="row pointers"):
        ws.run(short, None, A, b)
    truncated = Xs.copy()  # fewer values than column indices
    truncated.data = truncated.data[:-4]
    with pytest.raises(ValueError):
        ws.run(truncated, None, A, b)


def test_categorical_shape_mismatch_raises():
    n = 40
    X = _codes(n)
    logtheta, logw = _categorical_params()
    ws = CategoricalWorkspace(K, N_CATEGORIES, n)
    total = sum(N_CATEGORIES)
    for bad in ({"logtheta": np.zeros((K, total - 1))}, {"logtheta": np.zeros((K + 1, total))},
                {"logw": np.zeros(K + 1)}, {"X": X[:, :-1]}, {"X": X[:, 0]},
                {"sample_weight": np.ones(n + 1)},
                {"out_resp": np.empty((n, K), dtype=np.float32)},
                {"out_label": np.empty(n, dtype=np.int32)}):
        args = {"X": X, "sample_weight": None, "logtheta": logtheta, "logw": logw}
        args.update(bad)
        with pytest.raises(ValueError, match="shape|dtype"):
            ws.run(args.pop("X"), args.pop("sample_weight"), args.pop("logtheta"),
                   args.pop("logw"), **args)


@pytest.mark.parametrize("n_categories", [(3, 0, 2), (3, -1), ((2, 2),), (2.5, 3)])
def test_bad_numbers_of_categories_raise(n_categories):
    with pytest.raises(ValueError, match="categor"):
        CategoricalWorkspace(K, n_categories, 10)


# --------------------------------------------------------------------------
# out-of-core input
# --------------------------------------------------------------------------


class _Chunked:
    """A small array-like that is not an ndarray: rows by slices only."""

    def __init__(self, a):
        self._a = a
        self.shape = a.shape
        self.dtype = a.dtype

    def __getitem__(self, key):
        assert isinstance(key, slice)
        return self._a[key].copy()


def _row_source(X, how, tmp_path, chunk_rows=300):
    if how == "memmap":
        path = tmp_path / f"x{len(list(tmp_path.iterdir()))}.dat"
        mm = np.memmap(path, dtype=X.dtype, mode="w+", shape=X.shape)
        mm[:] = X
        mm.flush()
        X = np.memmap(path, dtype=X.dtype, mode="r", shape=X.shape)
    else:
        X = _Chunked(X)
    source = RowSource(X)
    source.chunk_rows = chunk_rows  # several chunks, the last one partial
    return source


@pytest.mark.parametrize("how", ["memmap", "chunked"])
def test_row_source_gives_the_in_memory_statistics(how, tmp_path):
    n = 1000
    X = _counts(n).astype(np.uint8)
    A, b = _linear_params()
    sw = _weights(n)
    source = _row_source(X, how, tmp_path)
    expected = LinearWorkspace(K, D, n).run(X, sw, A, b)
    ws = LinearWorkspace(K, D, source.chunk_rows)
    out, out_mem = _outputs(n), _outputs(n)
    _assert_stats(ws.run(source, sw, A, b, **out), expected)
    LinearWorkspace(K, D, n).run(X, sw, A, b, do_stats=False, **out_mem)
    for name in out:
        _close(out[name], out_mem[name])
    ll, weight = ws.run(source, None, A, b, do_stats=False)
    assert ll == pytest.approx(LinearWorkspace(K, D, n).run(X, None, A, b)[2], rel=RTOL)
    assert weight == n


@pytest.mark.parametrize("how", ["memmap", "chunked"])
def test_row_source_categorical(how, tmp_path):
    n = 1000
    X = _codes(n).astype(np.uint8)
    logtheta, logw = _categorical_params()
    sw = _weights(n)
    source = _row_source(X, how, tmp_path)
    expected = CategoricalWorkspace(K, N_CATEGORIES, n).run(X, sw, logtheta, logw)
    ws = CategoricalWorkspace(K, N_CATEGORIES, source.chunk_rows)
    _assert_stats(ws.run(source, sw, logtheta, logw), expected)
    bad = X.copy()
    bad[950, 5] = 2
    with pytest.raises(ValueError, match="Column 5"):
        ws.run(_row_source(bad, how, tmp_path), None, logtheta, logw)


# --------------------------------------------------------------------------
# caching
# --------------------------------------------------------------------------


def test_kernels_can_be_cached():
    """The kernels share one slot loop that takes their block functions as
    arguments; a function passed as a value left in the compiled code is a
    dynamic address, and Numba then refuses to cache the kernel (and
    recompiles it in every process)."""
    from fastem._kernels import discrete

    n = 40
    A, b = _linear_params()
    LinearWorkspace(K, D, n).run(_counts(n).astype(np.uint8), None, A, b)
    LinearWorkspace(K, D, n).run(_sparse_counts(n, D)[0], None, A, b)
    logtheta, logw = _categorical_params()
    CategoricalWorkspace(K, N_CATEGORIES, n).run(_codes(n).astype(np.uint8), None, logtheta,
                                                 logw)
    for kernel in (discrete._estep_linear_dense, discrete._estep_linear_csr,
                   discrete._estep_categorical):
        assert kernel.overloads
        for cres in kernel.overloads.values():
            assert not cres.library.has_dynamic_globals, kernel.__name__
