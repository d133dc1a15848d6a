"""The hidden Markov model kernels (forward-backward with per-frame
scaling, Viterbi) against the log-space reference of tests/reference.py,
brute-force enumeration and hmmlearn's own routines."""

import itertools

import numba
import numpy as np
import pytest
import reference as ref
from numpy.testing import assert_allclose, assert_array_equal

from fastem import _config
from fastem._hmm import check_lengths, forward_backward, viterbi


def _problem(lengths, K=3, seed=0, offset=0.0, zeros=False):
    rng = np.random.default_rng(seed)
    n = int(np.sum(lengths))
    logB = rng.normal(size=(n, K)) * 3 + offset
    startprob = rng.dirichlet(np.ones(K))
    transmat = rng.dirichlet(np.ones(K), size=K)
    if zeros:  # a left-right model: structural zeros below the diagonal
        transmat = np.triu(transmat)
        transmat /= transmat.sum(axis=1, keepdims=True)
        startprob = np.eye(K)[0]
    return logB, startprob, transmat


@pytest.mark.parametrize("offset", [0.0, -800.0])
@pytest.mark.parametrize("lengths", [[7], [1], [5, 1, 9, 3], [2] * 40])
def test_forward_backward_matches_log_space(lengths, offset):
    """Exact to 1e-12 against log space, also with emission log-densities
    near -800 (where plain scaling underflows)."""
    logB, pi, A = _problem(lengths, offset=offset)
    sw = np.linspace(0.5, 2.0, len(lengths))
    logliks, gamma, starts, trans = forward_backward(logB, np.array(lengths), pi, A, sw)
    bounds = np.concatenate(([0], np.cumsum(lengths)))
    want_starts, want_trans = np.zeros(3), np.zeros((3, 3))
    for q, (t0, t1) in enumerate(zip(bounds[:-1], bounds[1:])):
        ll, post, xi = ref.hmm_forward_backward(logB[t0:t1], pi, A)
        assert logliks[q] == pytest.approx(ll, rel=1e-12, abs=1e-9)
        assert_allclose(gamma[t0:t1], post, rtol=1e-10, atol=1e-12)
        want_starts += sw[q] * post[0]
        want_trans += sw[q] * xi
    assert_allclose(starts, want_starts, rtol=1e-11, atol=1e-13)
    assert_allclose(trans, want_trans, rtol=1e-10, atol=1e-12)


def test_structural_zeros_and_impossible_sequences():
    logB, pi, A = _problem([6, 4], K=4, zeros=True, seed=1)
    logliks, gamma, _, trans = forward_backward(logB, np.array([6, 4]), pi, A)
    assert np.all(trans[np.tril_indices(4, -1)] == 0.0)  # zeros stay zeros
    assert logliks[0] == pytest.approx(ref.hmm_forward_backward(logB[:6], pi, A)[0], rel=1e-12)
    logB[7, :] = -np.inf  # no state can emit frame 7: that sequence is impossible
    logliks, gamma, _, _ = forward_backward(logB, np.array([6, 4]), pi, A)
    assert logliks[1] == -np.inf and np.isnan(gamma[6:]).all() and np.isfinite(logliks[0])


@pytest.mark.parametrize("lengths", [[1], [4], [3, 2, 4]])
def test_viterbi_is_the_best_path(lengths):
    logB, pi, A = _problem(lengths, seed=2)
    total, states = viterbi(logB, np.array(lengths), pi, A)
    bounds = np.concatenate(([0], np.cumsum(lengths)))
    want = 0.0
    for t0, t1 in zip(bounds[:-1], bounds[1:]):
        ll, best, path = ref.hmm_brute_force(logB[t0:t1], pi, A)
        assert_array_equal(states[t0:t1], path)
        assert ref.hmm_viterbi(logB[t0:t1], pi, A)[0] == pytest.approx(best, rel=1e-12)
        want += best
        assert forward_backward(logB[t0:t1], None, pi, A)[0][0] == pytest.approx(ll, rel=1e-12)
    assert total == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("K", [5, 10])
def test_bitwise_identical_for_1_2_5_threads(K, monkeypatch):
    logB, pi, A = _problem([50] * 300, K=K, seed=3)
    lengths = np.array([50] * 300)
    runs = []
    for threads in (1, 2, 5):
        monkeypatch.setattr(numba, "get_num_threads", lambda t=threads: t)
        monkeypatch.setattr(_config, "SERIAL_WORK", 0)
        runs.append(forward_backward(logB, lengths, pi, A) + viterbi(logB, lengths, pi, A))
        monkeypatch.undo()
    for run in runs[1:]:
        for a, b in zip(run, runs[0]):
            assert_array_equal(np.asarray(a), np.asarray(b))


def test_hmmlearn_agrees():
    """hmmlearn's own scaled forward-backward (its C++ routines) on the
    same emission probabilities."""
    from hmmlearn import _hmmc
    logB, pi, A = _problem([30], K=4, seed=4)
    ll, gamma, _, trans = forward_backward(logB, None, pi, A)
    frame = np.exp(logB)
    log_prob, fwd, scaling = _hmmc.forward_scaling(pi, A, frame)
    bwd = _hmmc.backward_scaling(pi, A, frame, scaling)
    assert ll[0] == pytest.approx(log_prob, rel=1e-12)
    assert_allclose(gamma, fwd * bwd / (fwd * bwd).sum(axis=1, keepdims=True), rtol=1e-9)
    assert_allclose(trans, _hmmc.compute_scaling_xi_sum(fwd, A, bwd, frame), rtol=1e-9)
    logprob, path = _hmmc.viterbi(pi, A, logB)
    total, states = viterbi(logB, None, pi, A)
    assert total == pytest.approx(logprob, rel=1e-12)
    assert_array_equal(states, path)


def test_lengths_are_checked():
    assert_array_equal(check_lengths(None, 5), [5])
    with pytest.raises(ValueError, match="sum to 4, but X has 5 rows"):
        check_lengths([2, 2], 5)
    with pytest.raises(ValueError, match=r"lengths\[1\] = 0"):
        check_lengths([5, 0], 5)
    with pytest.raises(ValueError, match="integers"):
        check_lengths([2.5, 2.5], 5)


@pytest.mark.parametrize("rows", [300, 3000])  # the NumPy path and the kernels
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("ct", ["full", "tied", "diag", "spherical"])
def test_the_mixture_kernels_give_each_states_log_density(ct, dtype, rows, tmp_path):
    """``out_logprob``: log w_k + log N(x | k) per row and component, what a
    Gaussian hidden Markov model's emissions are, from the E-step kernels
    (in memory and out of core)."""
    import fastem
    from fastem._estep import EStepWorkspace

    rng = np.random.default_rng(5)
    X = (rng.normal(size=(rows, 4)) + rng.integers(0, 3, size=(rows, 1)) * 3).astype(dtype)
    m = fastem.GaussianMixture(3, covariance_type=ct, random_state=0).fit(X)
    want = np.log(m.weights_) + ref.log_gaussian_prob(X.astype(np.float64), m.means_,
                                                      m.covariances_, ct)
    out = np.empty((rows, 3))
    EStepWorkspace(ct, 3, 4, rows).run(X, None, m._get_params_tuple(), do_stats=False,
                                       out_logprob=out)
    tol = 1e-10 if dtype == np.float64 else 1e-4
    assert_allclose(out, want, rtol=tol, atol=tol)
    path = tmp_path / "x.npy"
    np.save(path, X)
    from fastem._data import RowSource

    source = RowSource(np.load(path, mmap_mode="r"))
    chunked = np.empty((rows, 3))
    EStepWorkspace(ct, 3, 4, source.chunk_rows).run(source, None, m._get_params_tuple(),
                                                    do_stats=False, out_logprob=chunked)
    assert_allclose(chunked, want, rtol=tol, atol=tol)


def test_the_discrete_kernels_give_each_states_log_density():
    """``out_logprob`` of the discrete kernels: the log-joint ``log w_k + x .
    a_k + b_k`` without the row constant h(x) (dense, CSR, categorical),
    what Poisson and categorical hidden Markov models' emissions build on."""
    from scipy import sparse

    import fastem
    from fastem.families.categorical import Categorical

    rng = np.random.default_rng(6)
    X = rng.poisson(3.0, size=(700, 4)).astype(float)
    m = fastem.PoissonMixture(3, random_state=0).fit(X)
    params = m._get_params_tuple()
    want = ref.poisson_log_joint(X, (m.weights_, m.rates_)) - \
        fastem.discrete._row_constants(m._family, X)[:, None]
    A, b = m._family.natural(params)
    for data in (X, sparse.csr_matrix(X)):
        out = np.empty((700, 3))
        m._family.workspace(3, 4, 700).run(data, None, A, b, do_stats=False, out_logprob=out)
        assert_allclose(out, want, rtol=1e-10, atol=1e-10)
    codes = rng.integers(0, 3, size=(700, 2))
    c = fastem.CategoricalMixture(2, random_state=0).fit(codes)
    fam = Categorical(c.n_categories_)
    logtheta, logw = fam.natural(c._get_params_tuple())
    out = np.empty((700, 2))
    fam.workspace(2, 2, 700).run(codes, None, logtheta, logw, do_stats=False, out_logprob=out)
    assert_allclose(out, ref.categorical_log_joint(codes, (c.weights_, c.probabilities_)),
                    rtol=1e-10, atol=1e-10)


def _check_against_log_space(logB, lengths, pi, A, sw=None, rtol=1e-10):
    K = logB.shape[1]
    logliks, gamma, starts, trans = forward_backward(logB, np.array(lengths), pi, A, sw)
    sw = np.ones(len(lengths)) if sw is None else sw
    bounds = np.concatenate(([0], np.cumsum(lengths)))
    want_starts, want_trans = np.zeros(K), np.zeros((K, K))
    for q, (t0, t1) in enumerate(itertools.pairwise(bounds)):
        ll, post, xi = ref.hmm_forward_backward(logB[t0:t1], pi, A)
        assert logliks[q] == pytest.approx(ll, rel=1e-12, abs=1e-9)
        assert_allclose(gamma[t0:t1], post, rtol=rtol, atol=1e-12)
        want_starts += sw[q] * post[0]
        want_trans += sw[q] * xi
    # the reference's exp(log alpha + log beta - loglik) cancels terms of
    # ~|sum_t logB_t| (5e4 here), so it is itself good to ~1e-11 only
    assert_allclose(starts, want_starts, rtol=rtol, atol=1e-12)
    assert_allclose(trans, want_trans, rtol=rtol, atol=1e-12)


@pytest.mark.parametrize("K", [1, 7, 8, 9, 12, 16, 17])
def test_every_width(K):
    """K <= 8 runs on 8 vector lanes (padding lanes), 9 to 16 on 16, more
    on the general path; each exact against log space, with log-densities
    near -800."""
    lengths = [30, 1, 65, 2]
    logB, pi, A = _problem(lengths, K=K, seed=10 + K, offset=-800.0)
    _check_against_log_space(logB, lengths, pi, A, np.linspace(0.5, 2.0, 4))


@pytest.mark.parametrize("K", [3, 12])
@pytest.mark.parametrize("lengths", [[4500], [130, 4097, 64]])
def test_long_sequences(lengths, K):
    """Sequences longer than the frames kept between the passes (4096) and
    than a chunk of frames (64): the emission factors computed again, from
    the end, chunk by chunk (on 8 and on 16 lanes)."""
    logB, pi, A = _problem(lengths, K=K, seed=7)
    # 2e-10 from the log-space reference over 4,500 frames, as the first
    # kernel (plain scalar loops) showed
    _check_against_log_space(logB, lengths, pi, A, rtol=1e-9)


@pytest.mark.parametrize("K", [3, 10, 17])
def test_a_frame_below_the_fast_exp(K):
    """At the first frame the only possible state's log-density is 712 below
    the frame's largest: its factor exp(-712) is subnormal, which the fast
    exp flushes to 0; the frame is redone with libm's exp, so the sequence
    stays possible, as in log space (the first kernel, dividing by the
    subnormal scale with the kernels' ``arcp``, found it impossible)."""
    logB, pi, A = _problem([6], K=K, seed=8, zeros=True)
    logB[0, 1:] = 0.0
    logB[0, 0] = -712.0
    _check_against_log_space(logB, [6], pi, A, rtol=1e-9)


@pytest.mark.parametrize("K", [3, 8, 10, 16, 17])
def test_viterbi_ties_and_structural_zeros(K):
    """Ties go to the first state, as the reference's argmax (the vector
    paths compare in a tree whose left operands have the smaller states);
    log 0 = -inf transitions never win."""
    lengths = [9, 1, 14]
    logB, pi, A = _problem(lengths, K=K, seed=11, zeros=True)
    logB = np.round(logB)  # exact ties
    A = np.triu(np.ones((K, K)))
    A /= A.sum(axis=1, keepdims=True)
    total, states = viterbi(logB, np.array(lengths), pi, A)
    want = 0.0
    for t0, t1 in itertools.pairwise(np.concatenate(([0], np.cumsum(lengths)))):
        best, path = ref.hmm_viterbi(logB[t0:t1], pi, A)
        assert_array_equal(states[t0:t1], path)
        want += best
    assert total == pytest.approx(want, rel=1e-12)
    logB[:] = 0.0  # every path through allowed transitions ties
    _, states = viterbi(logB, np.array(lengths), pi, A)
    for t0, t1 in itertools.pairwise(np.concatenate(([0], np.cumsum(lengths)))):
        assert_array_equal(states[t0:t1], ref.hmm_viterbi(logB[t0:t1], pi, A)[1])


def test_gamma_into_out():
    logB, pi, A = _problem([5, 7], K=4, seed=9)
    want = forward_backward(logB, np.array([5, 7]), pi, A)
    out = np.full((12, 4), np.nan)
    got = forward_backward(logB, np.array([5, 7]), pi, A, out=out)
    assert got[1] is out
    for a, b in zip(got, want):
        assert_array_equal(a, b)
    assert forward_backward(logB, np.array([5, 7]), pi, A, posteriors=False)[1] is None
    with pytest.raises(ValueError, match="out should be"):
        forward_backward(logB, np.array([5, 7]), pi, A, out=np.empty((12, 4), np.float32))
    with pytest.raises(ValueError, match="shares memory with logB"):
        forward_backward(logB, np.array([5, 7]), pi, A, out=logB)


@pytest.mark.parametrize("K", [2, 10, 17])
def test_a_state_lost_to_underflow_is_recovered_in_log_space(K):
    """A left-right chain forced through a far tail: state 0's forward
    probability falls below 1e-308 of state 1's over 300 frames, then only
    state 0 can emit.  The scaled pass loses the sequence; the log-space
    fallback gives the exact log-likelihood, posteriors and counts."""
    T = 301
    logB = np.full((T, K), -1000.0)
    logB[:-1, 0] = -5.0
    logB[:-1, 1] = -0.4
    logB[-1, 0] = -3.0  # only state 0 emits the last frame
    logB[-1, 1:] = -np.inf
    startprob = np.full(K, 1.0 / K)
    transmat = np.full((K, K), 0.0)
    transmat[0, :] = 1.0 / K
    for i in range(1, K):
        transmat[i, i:] = 1.0 / (K - i)  # never back to state 0
    lengths = [T, 5]
    logB = np.vstack([logB, np.full((5, K), -2.0)])
    ll, gamma, starts, trans = forward_backward(logB, lengths, startprob, transmat,
                                                seq_weight=np.array([2.0, 1.0]))
    want = [ref.hmm_forward_backward(logB[a:b], startprob, transmat)
            for a, b in ((0, T), (T, T + 5))]
    assert np.isfinite(ll).all()
    assert_allclose(ll, [w[0] for w in want], rtol=1e-12)
    assert_allclose(gamma[:T], want[0][1], atol=1e-12)
    assert_array_equal(gamma[:T].argmax(axis=1), 0)
    assert_allclose(trans, 2 * want[0][2] + want[1][2], rtol=1e-9, atol=1e-12)
    assert_allclose(starts, 2 * want[0][1][0] + want[1][1][0], rtol=1e-12)
    impossible = logB.copy()
    impossible[T - 1, 0] = -np.inf  # now truly impossible
    ll, gamma, _, _ = forward_backward(impossible, lengths, startprob, transmat)
    assert ll[0] == -np.inf and np.isnan(gamma[:T]).all() and np.isfinite(ll[1])


@pytest.mark.parametrize("large", [False, True])
@pytest.mark.parametrize("ct", ["full", "tied", "diag", "spherical"])
def test_the_missing_data_kernels_give_each_states_log_density(ct, large, monkeypatch):
    """``out_logprob`` of the missing-data E-step: log w_k + log N(x_o; mu_ko,
    Sigma_koo) per row, on complete rows, a large pattern (the fused kernel
    on the observed columns) and small ones (the missing-data kernel) --
    exact also for a component ~1000 nats below the best, where
    responsibilities underflow (a hidden Markov model may need it alone)."""
    import fastem
    from fastem import _missing
    from fastem._missing import MissingWorkspace, Patterns

    monkeypatch.setattr(_missing, "LARGE_PATTERN_ROWS", 40 if large else 10**9)
    rng = np.random.default_rng(7)
    X = rng.normal(size=(300, 3)) + rng.integers(0, 3, size=(300, 1)) * 3
    m = fastem.GaussianMixture(3, covariance_type=ct, random_state=0).fit(X)
    X[rng.random(X.shape) < 0.2] = np.nan
    X[:60, 1] = np.nan  # one pattern of 60+ rows
    X[:60, [0, 2]] = 0.5
    X[X.shape[0] - 1] = [200.0, np.nan, 200.0]  # far from every component
    X = X[~np.isnan(X).all(axis=1)]
    params = m._get_params_tuple()
    out = np.empty((X.shape[0], 3))
    MissingWorkspace(X, Patterns(X), ct, 3).run(None, None, params, do_stats=False,
                                               out_logprob=out)
    full = ref.full_covariances(m.covariances_, ct, 3, 3)
    want = np.array([[np.log(m.weights_[k]) + ref._conditional_gaussian(
        x, np.isnan(x), m.means_[k], full[k])[0] for k in range(3)] for x in X])
    assert want[-1].max() - want[-1].min() > 745  # beyond the responsibilities' reach
    assert_allclose(out, want, rtol=1e-10)
