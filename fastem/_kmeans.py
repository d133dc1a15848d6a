"""k-means++ seeding and Lloyd's algorithm on the Numba kernels, used to
initialise mixtures.  Deterministic for a given random state whatever the
number of threads."""

import math

import numpy as np

from . import _config, _small
from ._estep import kernel_array, n_slots_for, serial_if_small
from ._kernels.kmeans import _lloyd_step, _sqdist_to_point
from ._parallel import run_slots


def _run(kernel, small, args, ns):
    """A k-means kernel on every thread, or its NumPy version (``small``, from
    :mod:`fastem._small`: nothing to compile) on at most ``SMALL_ROWS`` rows."""
    if args[0].shape[0] <= _small.SMALL_ROWS:
        small(*args)
    else:
        run_slots(kernel, args, ns)


_EMPTY_W = np.empty(0, dtype=np.float64)


def kmeans_plusplus(X, n_clusters, random_state, sample_weight=None):
    """Greedy k-means++ seeding (Arthur & Vassilvitskii 2007), as in
    scikit-learn: each new centre is the best of ``2 + log(k)`` candidates
    drawn with probability proportional to the weighted squared distance.

    Returns (centers (k, d) float64, indices (k,) int64).
    """
    with serial_if_small(X.shape[0] * n_clusters * (X.shape[1] + 1)):
        return _kmeans_plusplus(X, n_clusters, random_state, sample_weight)


def _kmeans_plusplus(X, n_clusters, random_state, sample_weight=None):
    X = kernel_array(X)
    n, d = X.shape
    block = _config.BLOCK_SIZE
    ns = n_slots_for(n, block, 8 * (n_clusters * (d + 1) + 2), 8 * d)
    w = np.ones(n) if sample_weight is None else sample_weight
    p_uniform = w / w.sum()
    n_trials = 2 + int(math.log(n_clusters))
    centers = np.empty((n_clusters, d))
    indices = np.empty(n_clusters, dtype=np.int64)
    indices[0] = random_state.choice(n, p=p_uniform)
    centers[0] = X[indices[0]]
    closest = np.empty(n)
    _run(_sqdist_to_point, _small.sqdist_to_point, (X, centers[0], closest, ns, block), ns)
    cand_dist = np.empty(n)
    for c in range(1, n_clusters):
        weighted = w * closest
        pot = float(weighted.sum())
        if pot > 0 and np.isfinite(pot):
            cum = np.cumsum(weighted)
            draws = random_state.uniform(size=n_trials) * cum[-1]
            cands = np.minimum(np.searchsorted(cum, draws), n - 1)
        else:  # every point sits on a centre already
            cands = random_state.choice(n, size=n_trials, p=p_uniform)
        best_pot, best_idx, best_dist = np.inf, cands[0], None
        for idx in cands:
            _run(_sqdist_to_point, _small.sqdist_to_point,
                 (X, np.asarray(X[idx], dtype=np.float64), cand_dist, ns, block), ns)
            np.minimum(cand_dist, closest, out=cand_dist)
            cand_pot = float(w @ cand_dist)
            if cand_pot < best_pot:
                best_pot, best_idx = cand_pot, idx
                best_dist = cand_dist.copy()
        indices[c] = best_idx
        centers[c] = X[best_idx]
        closest = best_dist
    return centers, indices


def kmeans(X, n_clusters, random_state, sample_weight=None, max_iter=300, tol=1e-4):
    """Lloyd's algorithm from k-means++ seeds.

    Stops when the squared centre movement falls below ``tol`` times the
    mean feature variance (scikit-learn's rule) or the labels stop changing.
    Returns (centers (k, d), labels (n,) int64).
    """
    with serial_if_small(X.shape[0] * n_clusters * (X.shape[1] + 1)):
        return _kmeans(X, n_clusters, random_state, sample_weight, max_iter, tol)


def _kmeans(X, n_clusters, random_state, sample_weight=None, max_iter=300, tol=1e-4):
    X = kernel_array(X)
    n, d = X.shape
    block = _config.BLOCK_SIZE
    ns = n_slots_for(n, block, 8 * (n_clusters * (d + 1) + 2), 8 * d)
    sw = _EMPTY_W if sample_weight is None else sample_weight
    centers, _ = kmeans_plusplus(X, n_clusters, random_state, sample_weight)
    w = None if sample_weight is None else sample_weight
    xm = np.average(X, axis=0, weights=w)
    var = np.average((X - xm) ** 2, axis=0, weights=w)
    tol_abs = tol * float(np.mean(var))
    labels = np.full(n, -1, dtype=np.int64)
    prev = np.empty_like(labels)
    sums = np.zeros((ns, n_clusters, d))
    counts = np.zeros((ns, n_clusters))
    inertia = np.zeros(ns)
    for _ in range(max_iter):
        prev[:] = labels
        _run(_lloyd_step, _small.lloyd_step,
             (X, sw, centers, labels, sums, counts, inertia, block), ns)
        tot = np.add.reduce(counts, axis=0)
        move = np.zeros_like(centers)
        nz = tot > 0
        move[nz] = np.add.reduce(sums, axis=0)[nz] / tot[nz, None]
        centers = centers + move
        if np.array_equal(labels, prev) or float((move**2).sum()) <= tol_abs:
            break
    # labels consistent with the final centres
    _run(_lloyd_step, _small.lloyd_step,
         (X, sw, centers, labels, sums, counts, inertia, block), ns)
    return centers, labels
