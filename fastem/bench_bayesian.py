"""``fastem bench --bayesian``: time per variational iteration of
:class:`fastem.BayesianGaussianMixture` against scikit-learn's, next to the
EM iteration of :class:`fastem.GaussianMixture` against scikit-learn's,
measured in the same run on the Gaussian grid of :mod:`fastem.bench`.

Protocol (as :func:`fastem.bench.em_iteration_seconds`): both libraries
continue (``warm_start``) from identical variational parameters (a short
fastem fit on a subsample), ``tol=0``; the time per iteration is the
difference of a long and a short fit divided by the difference of their
iterations; the libraries take turns; medians of ``repeats``.
"""

import copy
import time
import warnings

import numba
import numpy as np

from ._stats import COVARIANCE_TYPES
from .bench import _QUIET_SECONDS, QUICK_GRID, _rel_diff, _table, em_iteration_seconds

_STATE = ("weight_concentration_", "mean_precision_", "means_", "degrees_of_freedom_",
          "covariances_", "precisions_cholesky_", "weights_", "precisions_")


def _start(X, k, covariance_type, random_state=0):
    """Variational parameters to start both libraries from: a fastem fit of
    three iterations on a subsample of 20,000 rows."""
    from .bayesian import BayesianGaussianMixture

    rng = np.random.default_rng(random_state)
    idx = np.sort(rng.choice(X.shape[0], size=min(X.shape[0], 20_000), replace=False))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = BayesianGaussianMixture(n_components=k, covariance_type=covariance_type,
                                    max_iter=3, random_state=random_state).fit(X[idx])
    return {a: getattr(m, a) for a in _STATE}


def _continued(cls, X, k, covariance_type, state, n_iter):
    """Seconds of ``n_iter`` iterations of ``cls`` from ``state``, and the model."""
    est = cls(n_components=k, covariance_type=covariance_type, tol=0.0, max_iter=n_iter,
              warm_start=True)
    for a, v in state.items():
        setattr(est, a, copy.deepcopy(v))
    est.converged_, est.lower_bound_, est.n_features_in_ = False, -np.inf, X.shape[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        est.fit(X)
        return time.perf_counter() - t0, est


def vb_iteration_seconds(X, k, covariance_type, state, repeats=3, fastem_iters=(2, 12),
                         sklearn_iters=(1, 3)):
    """Median seconds per variational iteration: ``(fastem, scikit-learn,
    max relative difference of the means after the same iterations)``."""
    from sklearn.mixture import BayesianGaussianMixture as SkBGM
    from threadpoolctl import threadpool_limits

    from .bayesian import BayesianGaussianMixture

    _continued(BayesianGaussianMixture, X[:2000], k, covariance_type, state, 1)  # compile
    fe, sk = [], []
    for _ in range(repeats):
        a, _ = _continued(BayesianGaussianMixture, X, k, covariance_type, state, fastem_iters[0])
        b, _ = _continued(BayesianGaussianMixture, X, k, covariance_type, state, fastem_iters[1])
        fe.append((b - a) / (fastem_iters[1] - fastem_iters[0]))
        with threadpool_limits(limits=numba.config.NUMBA_NUM_THREADS, user_api="blas"):
            a, _ = _continued(SkBGM, X, k, covariance_type, state, sklearn_iters[0])
            b, theirs = _continued(SkBGM, X, k, covariance_type, state, sklearn_iters[1])
        sk.append((b - a) / (sklearn_iters[1] - sklearn_iters[0]))
        time.sleep(_QUIET_SECONDS)  # OpenBLAS's workers go idle before fastem runs
    _, ours = _continued(BayesianGaussianMixture, X, k, covariance_type, state, sklearn_iters[1])
    return float(np.median(fe)), float(np.median(sk)), _rel_diff(ours.means_, theirs.means_)


def run_bayesian(grid=None, types=COVARIANCE_TYPES, repeats=3, log=print):
    """The table (markdown) of both ratios for every size and covariance type."""
    from .datasets import make_mixture

    rows = []
    for n, d, k in grid or QUICK_GRID:
        X, _, _ = make_mixture(n, d, k, random_state=1)
        big = n * d * d * k > 2e9
        sk_iters = (1, 2) if big else (1, 3)
        for ct in types:
            fe, sk, diff = vb_iteration_seconds(X, k, ct, _start(X, k, ct), repeats=repeats,
                                                sklearn_iters=sk_iters)
            gm = em_iteration_seconds(X, k, ct, repeats=repeats, sklearn_iters=sk_iters)
            rows.append([f"{n:,}", str(d), str(k), ct, f"{fe * 1e3:.2f}", f"{sk * 1e3:.1f}",
                         f"{sk / fe:.1f}x", f"{gm['sklearn'] / gm['fastem']:.1f}x",
                         f"{diff:.1e}"])
            log(f"  {n:>9,} {d:>3} {k:>3} {ct:>9}  variational: fastem {fe * 1e3:8.2f} ms  "
                f"scikit-learn {sk * 1e3:8.1f} ms  ratio {sk / fe:5.1f}x; EM ratio "
                f"{gm['sklearn'] / gm['fastem']:5.1f}x")
    return _table(rows, ["n", "d", "k", "covariance", "fastem ms/iter",
                         "scikit-learn ms/iter", "variational ratio", "EM ratio (same run)",
                         "max rel. diff of means"])
