"""Accuracy of the branch-free exp/log used inside the kernels."""

import numpy as np
from numba import njit

from fastem._kernels.vecmath import VM_CONSTS, _exp_le0, _log_pos, vm_consts


@njit(fastmath={"nsz", "arcp", "contract", "reassoc"})
def _apply_exp(x, out):
    # called from a caller compiled with reassoc, as in the kernels
    c = vm_consts(VM_CONSTS)
    for i in range(x.shape[0]):
        out[i] = _exp_le0(x[i], c)


@njit(fastmath={"nsz", "arcp", "contract", "reassoc"})
def _apply_log(x, out):
    c = vm_consts(VM_CONSTS)
    for i in range(x.shape[0]):
        out[i] = _log_pos(x[i], c)


def test_exp_relative_error_and_special_values():
    rng = np.random.default_rng(0)
    x = np.concatenate([-rng.uniform(0, 708, 200_000), -rng.uniform(0, 1, 50_000),
                        -np.arange(0, 700, 0.3465735902799727)])
    out = np.empty_like(x)
    _apply_exp(x, out)
    ref = np.exp(x)
    assert (np.abs(out - ref) / ref).max() < 4e-16
    special = np.array([0.0, -0.0, -1e-300, -708.5, -745.2, -np.inf, np.nan])
    out = np.empty_like(special)
    _apply_exp(special, out)
    assert out[0] == 1.0 and out[1] == 1.0 and out[2] == 1.0
    assert out[3] == 0.0 and out[4] == 0.0 and out[5] == 0.0  # flushed below exp(-708)
    assert np.isnan(out[6])


def test_log_absolute_error_and_zero():
    rng = np.random.default_rng(1)
    s = np.concatenate([np.exp(rng.uniform(0, np.log(1e6), 200_000)),
                        [1.0, 2.0, np.sqrt(0.5), np.sqrt(2.0), 1e-300, 1e300]])
    out = np.empty_like(s)
    _apply_log(s, out)
    assert np.abs(out - np.log(s)).max() <= 4e-16 * np.maximum(1, np.abs(np.log(s))).max()
    z = np.zeros(1)
    _apply_log(z, z)
    assert z[0] == -np.inf
