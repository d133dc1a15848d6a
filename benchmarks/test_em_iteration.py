"""Time of a fit with a fixed number of EM iterations from identical starting
parameters, fastem and scikit-learn in the same group."""

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture as SKGaussianMixture

from fastem import GaussianMixture
from fastem.bench import flops_per_iteration

from conftest import GRID, MODE, data

IMPLS = {"fastem": GaussianMixture, "sklearn": SKGaussianMixture}
N_ITER = 3
DTYPES = [np.float64, np.float32] if MODE == "full" else [np.float64]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda t: np.dtype(t).name)
@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
@pytest.mark.parametrize("size", GRID, ids=lambda s: "n{}-d{}-k{}".format(*s))
@pytest.mark.parametrize("impl", ["fastem", "sklearn"])
def test_em_iterations(benchmark, impl, size, covariance_type, dtype):
    n, d, k = size
    X, init = data(n, d, k, covariance_type, dtype)
    cls = IMPLS[impl]
    # JIT warm-up outside the timing
    cls(k, covariance_type=covariance_type, max_iter=1, tol=0, **init).fit(X[:1000])
    benchmark.group = f"EM x{N_ITER} n={n} d={d} k={k} {covariance_type} {np.dtype(dtype).name}"
    benchmark.extra_info["flops_per_iteration"] = flops_per_iteration(n, d, k, covariance_type)
    est = benchmark.pedantic(
        lambda: cls(k, covariance_type=covariance_type, max_iter=N_ITER, tol=0, **init).fit(X),
        rounds=3 if impl == "fastem" else 1, iterations=1, warmup_rounds=0)
    assert est.n_iter_ == N_ITER
