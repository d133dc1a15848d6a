"""The slot runner: every slot exactly once on any number of threads, pool
threads that wake late or fail, and thread-count independent results."""

import threading
import time

import numba
import numpy as np
import pytest

from fastem._kernels.peak import _fma_peak
from fastem._kernels.sync import claim_slot, finish_slot, finished
from fastem._parallel import run_slots

from conftest import numba_threads

TWO = min(2, numba.config.NUMBA_NUM_THREADS)


@pytest.mark.parametrize("n_slots", [1, 2, 5, 64])
def test_every_slot_once_on_any_thread_count(n_slots):
    serial = np.zeros(n_slots)
    with numba_threads(1):
        run_slots(_fma_peak, (serial, 7), n_slots)
    assert np.all(serial > 0)
    for _ in range(20):
        out = np.zeros(n_slots)
        with numba_threads(TWO):
            run_slots(_fma_peak, (out, 7), n_slots)
        assert np.array_equal(out, serial)


def test_claims_hand_out_each_slot_once_then_run_dry():
    ctrl = np.zeros(2, dtype=np.int64)
    assert [claim_slot(ctrl) for _ in range(4)] == [0, 1, 2, 3]
    assert not finished(ctrl, 3, 10)
    for _ in range(3):
        finish_slot(ctrl)
    assert finished(ctrl, 3, 1)


def _claim_all(out, ctrl):
    """What a kernel does: claim slots until none is left, count each."""
    while True:
        s = claim_slot(ctrl)
        if s >= out.shape[0]:
            return
        out[s] += 1
        finish_slot(ctrl)


def _claiming(out, delay_off_main, ctrl):
    """A Python stand-in for a kernel, the pool thread starting after
    ``delay_off_main`` seconds."""
    if threading.current_thread() is not threading.main_thread():
        time.sleep(delay_off_main)
    _claim_all(out, ctrl)


@pytest.mark.skipif(TWO < 2, reason="needs two Numba threads")
def test_late_pool_thread_leaves_its_slots_to_the_caller():
    out = np.zeros(8)
    t0 = time.perf_counter()
    with numba_threads(2):
        run_slots(_claiming, (out, 0.5), 8)
    assert time.perf_counter() - t0 < 0.4  # did not wait for the late thread
    assert np.array_equal(out, np.ones(8))


def _failing(out, ctrl):
    if threading.current_thread() is not threading.main_thread():
        claim_slot(ctrl)  # claims a slot, then fails before finishing it
        raise ValueError("pool thread failed")
    deadline = time.perf_counter() + 10
    while ctrl[0] == 0 and time.perf_counter() < deadline:
        time.sleep(0.001)  # let the pool thread claim first
    _claim_all(out, ctrl)


@pytest.mark.skipif(TWO < 2, reason="needs two Numba threads")
def test_pool_thread_error_is_raised_in_the_caller():
    with numba_threads(2), pytest.raises(ValueError, match="pool thread failed"):
        run_slots(_failing, (np.zeros(64),), 64)
    out = np.zeros(4)  # the pool still works afterwards
    with numba_threads(2):
        run_slots(_claiming, (out, 0.0), 4)
    assert np.array_equal(out, np.ones(4))
