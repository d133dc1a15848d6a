"""score_samples / predict throughput, fastem and scikit-learn."""

import pytest
from sklearn.mixture import GaussianMixture as SKGaussianMixture

from fastem import GaussianMixture

from conftest import GRID, data

IMPLS = {"fastem": GaussianMixture, "sklearn": SKGaussianMixture}


@pytest.mark.parametrize("method", ["score_samples", "predict"])
@pytest.mark.parametrize("covariance_type", ["full", "diag"])
@pytest.mark.parametrize("size", GRID, ids=lambda s: "n{}-d{}-k{}".format(*s))
@pytest.mark.parametrize("impl", ["fastem", "sklearn"])
def test_inference(benchmark, impl, size, covariance_type, method):
    n, d, k = size
    X, init = data(n, d, k, covariance_type)
    est = IMPLS[impl](k, covariance_type=covariance_type, max_iter=1, **init).fit(X[:2000])
    getattr(est, method)(X[:1000])  # warm-up
    benchmark.group = f"{method} n={n} d={d} k={k} {covariance_type}"
    out = benchmark(getattr(est, method), X)
    assert out.shape[0] == n
