"""The slot rule: how many partial-statistics slots an E-step has (from the
work and the statistics' size, never from the thread count), the memory
bound of the slot buffers, and bitwise identical fits for 1, 2, 5 and 64
threads."""

import numba
import numpy as np
import pytest
from numpy.testing import assert_array_equal

import fastem
from fastem import _config
from fastem._estep import (
    MIN_SLOTS,
    SLOT_FRACTION,
    SLOT_MEMORY,
    SLOT_MEMORY_FLOOR,
    EStepWorkspace,
    n_slots_for,
)
from fastem.datasets import make_mixture


def slot_bytes(ct, K, d):
    stats2 = {"full": K * d * d, "tied": d * d, "diag": K * d, "spherical": K * d}[ct]
    return 8 * (K + K * d + stats2 + 2)


@pytest.mark.parametrize("n, d, K, ct, expected", [
    (2_000_000, 16, 16, "full", 256),  # many blocks, small statistics: N_SLOTS
    (4_000_000, 2, 8, "diag", 256),
    (500_000, 64, 8, "full", 76),      # 8% of X (20.5 MB) / 266 KB a slot
    (100_000, 512, 16, "full", 16),    # 33.6 MB a slot: the floor of 16
    (272, 2, 2, "full", 2),            # two blocks
    (5_000, 3, 3, "diag", 20),         # one slot per block
    (10**8, 1000, 64, "full", 16),     # 512 MB a slot: the floor
    (3_000_000, 100, 10, "full", 83),  # 64 MiB / 808 KB a slot
])
def test_slot_rule(n, d, K, ct, expected):
    block = _config.BLOCK_SIZE
    n_blocks = -(-n // block)
    sb = slot_bytes(ct, K, d)
    ns = n_slots_for(n, block, sb, 8 * d)
    assert ns == expected
    assert ns >= min(MIN_SLOTS, n_blocks)  # never fewer than the old fixed 16
    budget = min(SLOT_MEMORY, max(SLOT_MEMORY_FLOOR, SLOT_FRACTION * n * 8 * d))
    assert ns * sb <= max(budget, MIN_SLOTS * sb)  # the buffers' memory bound
    ws = EStepWorkspace(ct, K, d, n) if n * d <= 10**7 else None
    if ws is not None:
        assert ws.S0s.shape[0] == ns


def test_issue_cases_get_enough_slots_for_many_cores():
    """The three cases of the issue: at least 3 slots per thread on 16
    threads, so that dynamic claiming can balance them."""
    for n, d, K in [(2_000_000, 16, 16), (4_000_000, 2, 8), (500_000, 64, 8)]:
        ct = "diag" if d == 2 else "full"
        assert n_slots_for(n, None, slot_bytes(ct, K, d), 8 * d) >= 48
    # large n, small statistics: up to N_SLOTS (no cap below 64 threads x 4)
    assert n_slots_for(10**7, None, slot_bytes("diag", 8, 4), 32) == _config.N_SLOTS >= 256


def _fit_on(threads, monkeypatch, make):
    """A fit with ``threads`` threads: numba's count patched, so that more
    threads than this machine's cores are used (they are Python threads)."""
    monkeypatch.setattr(numba, "get_num_threads", lambda: threads)
    monkeypatch.setattr(_config, "SERIAL_WORK", 0)
    try:
        return make()
    finally:
        monkeypatch.undo()


@pytest.mark.parametrize("ct", ["full", "diag", "tied", "spherical"])
def test_gaussian_fits_bitwise_identical_for_1_2_5_64_threads(ct, monkeypatch):
    X, _, _ = make_mixture(60_000, 3, 4, random_state=0)  # 235 blocks: 235 slots
    assert n_slots_for(len(X), None, slot_bytes(ct, 4, 3), 24) > 64
    fits = [_fit_on(t, monkeypatch, lambda: fastem.GaussianMixture(
        4, covariance_type=ct, max_iter=5, tol=0, random_state=0).fit(X)) for t in (1, 2, 5, 64)]
    for m in fits[1:]:
        for a in ("weights_", "means_", "covariances_", "lower_bounds_"):
            assert_array_equal(np.asarray(getattr(m, a)), np.asarray(getattr(fits[0], a)))


def test_discrete_fits_bitwise_identical_for_1_2_5_64_threads(monkeypatch):
    rng = np.random.default_rng(0)
    X = (rng.random((60_000, 6)) < 0.3).astype(np.uint8)
    C = rng.integers(0, 4, (60_000, 5))
    for make in (lambda: fastem.BernoulliMixture(3, max_iter=4, tol=0, random_state=0).fit(X),
                 lambda: fastem.CategoricalMixture(3, max_iter=4, tol=0,
                                                   random_state=0).fit(C)):
        fits = [_fit_on(t, monkeypatch, make) for t in (1, 2, 5, 64)]
        for m in fits[1:]:
            assert_array_equal(m.weights_, fits[0].weights_)
            assert_array_equal(np.concatenate([np.ravel(p) for p in m.probabilities_]),
                               np.concatenate([np.ravel(p) for p in fits[0].probabilities_]))
            assert_array_equal(m.lower_bounds_, fits[0].lower_bounds_)


def test_n_slots_setting_is_the_most(monkeypatch):
    monkeypatch.setattr(_config, "N_SLOTS", 4)
    assert n_slots_for(10**6, None, 100, 8) == 4
    assert n_slots_for(300, None, 100, 8) == 2  # fewer blocks than that


def test_bench_scaling_table():
    from fastem.bench import bench_scaling, thread_counts

    assert thread_counts(16) == [1, 2, 4, 8, 16]
    assert thread_counts(12) == [1, 2, 4, 8, 12]
    assert thread_counts(1) == [1]
    table = bench_scaling(cases=(("diag", 20_000, 2, 3),), threads=(1, 2), repeats=1)
    assert "diag, 20,000 x 2, K = 3" in table and "2 threads" in table
    slots = EStepWorkspace("diag", 3, 2, 20_000).S0s.shape[0]  # 79 blocks: 79 slots
    assert slots == 79 and f" {slots} " in table
