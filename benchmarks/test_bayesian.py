"""Time of a variational fit with a fixed number of iterations from
identical variational parameters, fastem and scikit-learn in the same group."""

import pytest
from sklearn.mixture import BayesianGaussianMixture as SkBGM

from fastem import BayesianGaussianMixture
from fastem.bench_bayesian import _continued, _start

from conftest import GRID, data

IMPLS = {"fastem": BayesianGaussianMixture, "sklearn": SkBGM}
N_ITER = 3


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
@pytest.mark.parametrize("size", GRID, ids=lambda s: "n{}-d{}-k{}".format(*s))
@pytest.mark.parametrize("impl", ["fastem", "sklearn"])
def test_variational_iterations(benchmark, impl, size, covariance_type):
    n, d, k = size
    X, _ = data(n, d, k, covariance_type)
    state = _start(X, k, covariance_type)
    cls = IMPLS[impl]
    _continued(cls, X[:1000], k, covariance_type, state, 1)  # JIT warm-up outside the timing
    benchmark.group = f"variational x{N_ITER} n={n} d={d} k={k} {covariance_type}"
    _, est = benchmark.pedantic(
        lambda: _continued(cls, X, k, covariance_type, state, N_ITER),
        rounds=3 if impl == "fastem" else 1, iterations=1, warmup_rounds=0)
    assert est.n_iter_ == N_ITER
