"""fastem's own k-means (initialisation) against scikit-learn's KMeans."""

import numpy as np
from sklearn.cluster import KMeans

from fastem._kmeans import kmeans, kmeans_plusplus

from conftest import blobs, numba_threads


def _inertia(X, centers):
    d = ((X[:, None, :] - centers[None]) ** 2).sum(-1)
    return d.min(axis=1).sum()


def test_kmeans_quality_close_to_sklearn():
    X = blobs(n=4000, d=3, k=5, seed=5)
    ours = [_inertia(X, kmeans(X, 5, np.random.RandomState(s))[0]) for s in range(5)]
    theirs = [KMeans(5, n_init=1, random_state=s).fit(X).inertia_ for s in range(5)]
    assert np.median(ours) <= np.median(theirs) * 1.02


def test_kmeans_labels_are_nearest_centres():
    X = blobs(n=1500, d=2, k=4, seed=6)
    centers, labels = kmeans(X, 4, np.random.RandomState(0))
    d = ((X[:, None, :] - centers[None]) ** 2).sum(-1)
    assert np.array_equal(labels, d.argmin(axis=1))


def test_kmeans_deterministic_across_threads():
    X = blobs(n=10_000, d=3, k=4, seed=7)
    with numba_threads(1):
        c1, l1 = kmeans(X, 4, np.random.RandomState(3))
    with numba_threads(2):
        c2, l2 = kmeans(X, 4, np.random.RandomState(3))
    assert np.array_equal(c1, c2) and np.array_equal(l1, l2)


def test_kmeans_plusplus_picks_distinct_rows_and_respects_zero_weight():
    X = blobs(n=500, d=2, k=3, seed=8)
    w = np.ones(500)
    w[:250] = 0.0
    centers, idx = kmeans_plusplus(X, 6, np.random.RandomState(0), sample_weight=w)
    assert len(set(idx.tolist())) == 6
    assert (idx >= 250).all()
    assert np.array_equal(centers, X[idx])


def test_weighted_kmeans_equals_duplicated_rows():
    X = blobs(n=600, d=2, k=3, seed=9)
    w = np.ones(600)
    w[:100] = 2.0
    Xd = np.vstack([X, X[:100]])
    start = X[[0, 200, 400]].copy()
    from fastem._kernels.kmeans import _lloyd_step

    def step(Y, sw):
        labels = np.empty(Y.shape[0], dtype=np.int64)
        sums, counts, inertia = np.zeros((1, 3, 2)), np.zeros((1, 3)), np.zeros(1)
        _lloyd_step(Y, sw, start, labels, sums, counts, inertia, 256, np.zeros(2, dtype=np.int64))
        return sums[0], counts[0], inertia[0]

    a = step(X, w)
    b = step(Xd, np.empty(0))
    for u, v in zip(a, b):
        np.testing.assert_allclose(u, v, rtol=1e-12)
