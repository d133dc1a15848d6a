"""pytest-benchmark suite: fastem against scikit-learn, side by side.

Run with ``python -m pytest benchmarks`` (groups compare the two
implementations for each case); ``FASTEM_BENCH=full`` runs the whole grid of
the speed issue, ``FASTEM_BENCH=smoke`` tiny sizes (used by CI to check that
the suite runs). ``fastem bench`` prints the same comparison as a table with
ratios and GFLOP/s.
"""

import os
import warnings

import numba
import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from fastem.bench import FULL_GRID, QUICK_GRID, starting_params
from fastem.datasets import make_mixture

MODE = os.environ.get("FASTEM_BENCH", "quick")
GRID = {"full": FULL_GRID, "quick": QUICK_GRID, "smoke": [(5000, 2, 3), (2000, 8, 4)]}[MODE]

_DATA = {}


def data(n, d, k, covariance_type, dtype=np.float64):
    """Cached (X, identical starting parameters) for a case."""
    key = (n, d, k, covariance_type, np.dtype(dtype).name)
    if key not in _DATA:
        X, _, _ = make_mixture(n, d, k, random_state=1)
        init = starting_params(X, k, covariance_type)
        _DATA[key] = (X.astype(dtype, copy=False), init)
    return _DATA[key]


@pytest.fixture(autouse=True)
def _fair_blas():
    """scikit-learn's BLAS limited to the cores available (no oversubscription
    by NumPy's and SciPy's two OpenBLAS copies)."""
    with threadpool_limits(limits=numba.config.NUMBA_NUM_THREADS, user_api="blas"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
