import contextlib
import io
import re
from pathlib import Path

import numba
import numpy as np
import pytest

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


@contextlib.contextmanager
def numba_threads(n):
    """Run with ``n`` Numba threads, restoring the previous count; small
    inputs too (the one-thread rule for small work is off meanwhile)."""
    from fastem import _config

    previous = numba.get_num_threads()
    serial_work = _config.SERIAL_WORK
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    _config.SERIAL_WORK = 0
    try:
        yield
    finally:
        numba.set_num_threads(previous)
        _config.SERIAL_WORK = serial_work


def blobs(n=1500, d=3, k=3, seed=0, spread=4.0, offset=0.0):
    """Gaussian blobs with random full covariances."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=spread, size=(k, d))
    labels = rng.integers(0, k, size=n)
    X = np.empty((n, d))
    for j in range(k):
        a = rng.normal(size=(d, d)) / np.sqrt(d) + 0.5 * np.eye(d)
        rows = labels == j
        X[rows] = rng.normal(size=(rows.sum(), d)) @ a.T + centers[j]
    return X + offset


def random_params(X, k, covariance_type, seed=0):
    """Plausible mixture parameters (weights, means, covariances) for X."""
    rng = np.random.default_rng(seed)
    n, d = X.shape
    weights = rng.dirichlet(np.full(k, 3.0))
    means = X[rng.choice(n, size=k, replace=False)].astype(np.float64)
    var = X.var(axis=0).mean()
    if covariance_type == "full":
        covs = []
        for _ in range(k):
            a = rng.normal(size=(d, d))
            covs.append(var * (a @ a.T / d + 0.5 * np.eye(d)))
        cov = np.array(covs)
    elif covariance_type == "tied":
        a = rng.normal(size=(d, d))
        cov = var * (a @ a.T / d + 0.5 * np.eye(d))
    elif covariance_type == "diag":
        cov = var * rng.uniform(0.3, 2.0, size=(k, d))
    else:
        cov = var * rng.uniform(0.3, 2.0, size=k)
    return weights, means, cov


@pytest.fixture(params=COVARIANCE_TYPES)
def covariance_type(request):
    return request.param


DOCS = Path(__file__).resolve().parents[1] / "docs"


def run_doc_page(page, workdir, monkeypatch):
    """Run the ``python`` blocks of ``docs/<page>`` in order, in one
    namespace, with ``workdir`` as the working directory; returns what they
    printed."""
    text = (DOCS / page).read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    assert blocks, f"docs/{page} has no python example"
    monkeypatch.chdir(workdir)  # examples may write files
    namespace = {"__name__": "__docs__"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for code in blocks:
            exec(compile(code, f"docs/{page}", "exec"), namespace)
    return out.getvalue()
