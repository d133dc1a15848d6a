"""Every fused kernel against tests/reference.py, per covariance type, dtype
and thread count, and bitwise equality across thread counts."""

import numpy as np
import pytest

from fastem._estep import EStepWorkspace, evaluate
from fastem._stats import GaussianParams, m_step, precisions_cholesky_from_covariances

import reference as ref
from conftest import COVARIANCE_TYPES, blobs, numba_threads, random_params

RTOL = {np.float64: 1e-10, np.float32: 1e-5}


def _setup(covariance_type, dtype, n=3001, d=4, k=3, seed=0):
    X = blobs(n=n, d=d, k=k, seed=seed).astype(dtype)
    w, m, c = random_params(X, k, covariance_type, seed=seed)
    params = GaussianParams(w, m, c, precisions_cholesky_from_covariances(c, covariance_type))
    rng = np.random.default_rng(seed + 1)
    if covariance_type == "tied":
        shift = np.broadcast_to(rng.normal(size=d), (k, d)).copy()
    else:
        shift = m + rng.normal(scale=0.5, size=(k, d))
    sw = rng.uniform(0.0, 3.0, size=n)
    return X, sw, params, shift


def _run(X, sw, params, shift, covariance_type, threads):
    k, d = params.means.shape
    with numba_threads(threads):
        ws = EStepWorkspace(covariance_type, k, d, X.shape[0])
        return ws.run(X, sw, params, shift=shift)


def _close(actual, expected, rtol):
    scale = max(np.abs(expected).max(), 1e-300)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("threads", [1, 2])
def test_stats_match_reference(covariance_type, dtype, threads):
    X, sw, params, shift = _setup(covariance_type, dtype)
    stats = _run(X, sw, params, shift, covariance_type, threads)
    X64 = X.astype(np.float64)
    log_norm, resp = ref.estep(X64, params.weights, params.means, params.covariances,
                               covariance_type)
    expected = ref.sufficient_stats(X64, resp, shift, covariance_type, sample_weight=sw)
    rtol = RTOL[dtype]
    _close(stats.S0, expected["S0"], rtol)
    _close(stats.S1, expected["S1"], rtol)
    S2 = stats.S2
    if covariance_type in ("full", "tied"):  # the kernel fills the upper triangle
        S2 = np.triu(S2) + np.swapaxes(np.triu(S2, 1), -1, -2)
    _close(S2, expected["S2"], rtol)
    assert stats.weight == pytest.approx(expected["weight"], rel=1e-12)
    assert stats.loglik == pytest.approx(float(sw @ log_norm), rel=rtol)


@pytest.mark.parametrize("k", [3, 40])
def test_unweighted_loglik_matches_reference(covariance_type, k):
    """Without sample weights the kernel forms only the block's sum of
    log-densities (one log per group of rows): same value as the reference,
    and as the per-row log-densities of score_samples; a row that no
    component reaches gives -inf, as it does per row."""
    X, _, params, shift = _setup(covariance_type, np.float64, n=2049, d=3, k=k)
    stats = _run(X, None, params, shift, covariance_type, 2)
    log_norm, _ = ref.estep(X, params.weights, params.means, params.covariances,
                            covariance_type)
    assert stats.loglik == pytest.approx(float(log_norm.sum()), rel=1e-13)
    per_row = np.empty(X.shape[0])
    evaluate(X, params, covariance_type, out_lognorm=per_row)
    assert stats.loglik == pytest.approx(float(per_row.sum()), rel=1e-13)
    far = X.copy()
    far[700] = 1e200  # every component's log-density is -inf there
    stats = _run(far, None, params, shift, covariance_type, 2)
    assert stats.loglik == -np.inf


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_stats_bitwise_identical_across_threads(covariance_type, dtype):
    X, sw, params, shift = _setup(covariance_type, dtype, n=20_011)
    one = _run(X, sw, params, shift, covariance_type, 1)
    two = _run(X, sw, params, shift, covariance_type, 2)
    for name in ("S0", "S1", "S2"):
        assert np.array_equal(getattr(one, name), getattr(two, name)), name
    assert one.loglik == two.loglik


def test_m_step_matches_reference(covariance_type):
    X, sw, params, _ = _setup(covariance_type, np.float64)
    shift = params.means if covariance_type != "tied" else np.broadcast_to(
        params.means.mean(0), params.means.shape).copy()
    stats = _run(X, sw, params, shift, covariance_type, 2)
    new = m_step(stats, reg_covar=1e-6)
    _, resp = ref.estep(X, params.weights, params.means, params.covariances, covariance_type)
    w, m, c = ref.m_step(X, resp, 1e-6, covariance_type, sample_weight=sw)
    _close(new.weights, w, 1e-10)
    _close(new.means, m, 1e-10)
    _close(new.covariances, c, 1e-9)
    _close(new.precisions_cholesky, ref.precisions_cholesky(c, covariance_type), 1e-8)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("threads", [1, 2])
def test_inference_outputs_match_reference(covariance_type, dtype, threads):
    X, _, params, _ = _setup(covariance_type, dtype, n=1234)
    n, k = X.shape[0], params.means.shape[0]
    lognorm, resp, label = np.empty(n), np.empty((n, k)), np.empty(n, dtype=np.int64)
    with numba_threads(threads):
        ll, w = evaluate(X, params, covariance_type, out_lognorm=lognorm, out_resp=resp,
                         out_label=label)
    exp_norm, exp_resp = ref.estep(X.astype(np.float64), params.weights, params.means,
                                   params.covariances, covariance_type)
    rtol = RTOL[dtype]
    _close(lognorm, exp_norm, rtol)
    _close(resp, exp_resp, rtol * 10)
    confident = exp_resp.max(axis=1) > 0.5 + 1e-6
    assert np.array_equal(label[confident], exp_resp.argmax(axis=1)[confident])
    assert w == n
    assert ll == pytest.approx(exp_norm.sum(), rel=rtol)


def test_given_responsibilities_are_used():
    """resp_in replaces the computed responsibilities (initialisation path)."""
    covariance_type = "full"
    X, sw, params, shift = _setup(covariance_type, np.float64, n=700)
    resp = np.random.default_rng(3).dirichlet(np.ones(3), size=X.shape[0])
    ws = EStepWorkspace(covariance_type, 3, X.shape[1], X.shape[0])
    stats = ws.run(X, sw, params, shift=shift, resp_in=resp)
    expected = ref.sufficient_stats(X, resp, shift, covariance_type, sample_weight=sw)
    _close(stats.S0, expected["S0"], 1e-12)
    _close(stats.S1, expected["S1"], 1e-12)


@pytest.mark.parametrize("layout", ["F", "strided", "memmap"])
def test_layouts_give_the_same_statistics(layout, tmp_path):
    covariance_type = "diag"
    X, sw, params, shift = _setup(covariance_type, np.float64, n=2000)
    base = _run(X, sw, params, shift, covariance_type, 2)
    if layout == "F":
        Y = np.asfortranarray(X)
    elif layout == "strided":
        big = np.zeros((X.shape[0] * 2, X.shape[1] + 1))
        big[::2, 1:] = X
        Y = big[::2, 1:]
        assert not Y.flags.c_contiguous and not Y.flags.f_contiguous
    else:
        Y = np.memmap(tmp_path / "x.dat", dtype=X.dtype, mode="w+", shape=X.shape)
        Y[:] = X
        Y.flush()
    other = _run(Y, sw, params, shift, covariance_type, 2)
    # Each layout is its own compiled specialisation, and LLVM may vectorise
    # its reductions with a different interleaving, so agreement is to the
    # last bits, not bitwise (bitwise equality is promised, and tested, for
    # thread counts, which share one compiled function).
    for name in ("S0", "S1", "S2"):
        _close(getattr(other, name), getattr(base, name), 1e-13)


def test_every_covariance_type_has_a_kernel():
    from fastem._estep import KERNEL_TYPE
    from fastem._kernels.gaussian import ESTEP_KERNELS

    assert set(KERNEL_TYPE) == set(COVARIANCE_TYPES)
    assert set(KERNEL_TYPE.values()) == set(ESTEP_KERNELS)
    for name, kernel in ESTEP_KERNELS.items():
        assert kernel.__name__.endswith("_" + name)
    assert KERNEL_TYPE["spherical"] == "diag"  # one kernel fewer to compile


@pytest.mark.parametrize("ct", ["full", "tied"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("threads", [1, 2])
def test_blas_path_matches_reference(ct, dtype, threads):
    """From BLAS_MIN_FEATURES features on, the triangular products (full:
    U^T (x - mu), tied: the whitening) and half of the scatter are BLAS
    products; same statistics and bitwise thread independence.  n = 901
    leaves a partial last block, whose stale columns must add nothing."""
    from fastem._kernels.gaussian import BLAS_MIN_FEATURES

    d = BLAS_MIN_FEATURES + 1
    X, sw, params, shift = _setup(ct, dtype, n=901, d=d, k=2)
    stats = _run(X, sw, params, shift, ct, threads)
    X64 = X.astype(np.float64)
    log_norm, resp = ref.estep(X64, params.weights, params.means, params.covariances, ct)
    expected = ref.sufficient_stats(X64, resp, shift, ct, sample_weight=sw)
    rtol = 1e-9 if dtype == np.float64 else RTOL[dtype]
    _close(stats.S1, expected["S1"], rtol)
    S2 = np.triu(stats.S2) + np.swapaxes(np.triu(stats.S2, 1), -1, -2)
    _close(S2, expected["S2"], rtol)
    assert stats.loglik == pytest.approx(float(sw @ log_norm), rel=rtol)
    other = _run(X, sw, params, shift, ct, 3 - threads)
    assert np.array_equal(stats.S2, other.S2) and stats.loglik == other.loglik


def test_small_work_runs_on_one_thread_with_the_same_result():
    import numba

    from fastem import _config
    from fastem._estep import serial_if_small

    X, sw, params, shift = _setup("diag", np.float64, n=700)
    with numba_threads(2):  # the one-thread rule is off inside numba_threads
        two = _run(X, sw, params, shift, "diag", 2)
        _config.SERIAL_WORK = 1 << 17
        before = numba.get_num_threads()
        with serial_if_small(10):
            inside = numba.get_num_threads()
        with serial_if_small(1 << 20):
            large = numba.get_num_threads()
        k, d = params.means.shape  # 700 x 3 x (5 + 6) < 2**17: one thread
        capped = EStepWorkspace("diag", k, d, X.shape[0]).run(X, sw, params, shift=shift)
        assert numba.get_num_threads() == before
    assert inside == 1 and large == before == min(2, numba.config.NUMBA_NUM_THREADS)
    for name in ("S0", "S1", "S2"):
        assert np.array_equal(getattr(two, name), getattr(capped, name))


def test_serial_rule_follows_the_measured_crossovers():
    """Default FASTEM_SERIAL_WORK against the E-step work estimate: the sizes
    measured faster on one thread stay there, the others use the pool."""
    import os

    from fastem import _config
    from fastem._estep import estep_work

    limit = 1 << 19
    assert _config.SERIAL_WORK == limit or "FASTEM_SERIAL_WORK" in os.environ
    assert estep_work(16_384, 3, 2, "diag") < limit <= estep_work(32_768, 3, 2, "diag")
    assert estep_work(1_024, 16, 16, "diag") < limit <= estep_work(4_096, 16, 16, "diag")
    assert limit <= estep_work(8_192, 8, 2, "full")
    assert limit <= estep_work(512, 8, 64, "full")
    assert estep_work(1000, 4, 8, "tied") > estep_work(1000, 4, 8, "diag")
