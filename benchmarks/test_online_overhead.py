"""Per-call overhead of the fused kernel on tiny inputs (10,000 rows are
handed to the pool threads; 100 rows run on the calling thread)."""

import numpy as np
import pytest

from fastem import GaussianMixture

from conftest import data


@pytest.mark.parametrize("rows", [100, 10_000])
def test_small_score_samples(benchmark, rows):
    X, init = data(20_000, 4, 3, "diag")
    est = GaussianMixture(3, covariance_type="diag", max_iter=1, **init).fit(X)
    Y = np.ascontiguousarray(X[:rows])
    est.score_samples(Y)
    benchmark.group = "per-call overhead"
    out = benchmark(est.score_samples, Y)
    assert out.shape == (rows,)
