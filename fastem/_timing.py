"""Time EM iterations of fastem and scikit-learn from identical parameters
(used by ``fastem demo`` and the benchmarks)."""

import time
import warnings

import numba
import numpy as np


def _initial_params(X, k, covariance_type, random_state=0):
    """Starting parameters from a short fastem fit on a subsample."""
    from .mixture import GaussianMixture

    rng = np.random.default_rng(random_state)
    idx = rng.choice(X.shape[0], size=min(X.shape[0], 20_000), replace=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm = GaussianMixture(k, covariance_type=covariance_type, max_iter=3,
                             random_state=random_state).fit(X[idx])
    return dict(weights_init=gm.weights_, means_init=gm.means_,
                precisions_init=gm.precisions_)


def time_em_iterations(X, k, covariance_type, n_iter=10, sklearn_iter=3, sklearn=True):
    """Seconds per EM iteration (median-free: total / iterations) of fastem
    and, when ``sklearn``, of scikit-learn, started from identical parameters
    with ``tol=0`` so that every iteration runs."""
    from sklearn.mixture import GaussianMixture as SKGaussianMixture
    from threadpoolctl import threadpool_info, threadpool_limits

    from .mixture import GaussianMixture

    init = _initial_params(X, k, covariance_type)
    kw = dict(covariance_type=covariance_type, tol=0.0, **init)
    out = {"threads": numba.get_num_threads()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        GaussianMixture(k, max_iter=1, **kw).fit(X[:1000])  # JIT warm-up
        t0 = time.perf_counter()
        fe = GaussianMixture(k, max_iter=n_iter, **kw).fit(X)
        out["fastem"] = (time.perf_counter() - t0) / n_iter
        if sklearn:
            cores = numba.config.NUMBA_NUM_THREADS
            with threadpool_limits(limits=cores, user_api="blas"):
                out["blas_threads"] = ",".join(
                    str(i["num_threads"]) for i in threadpool_info() if i["user_api"] == "blas"
                ) or "n/a"
                t0 = time.perf_counter()
                sk = SKGaussianMixture(k, max_iter=sklearn_iter, **kw).fit(X)
                out["sklearn"] = (time.perf_counter() - t0) / sklearn_iter
            if sklearn_iter == n_iter:
                ref = sk
            else:
                ref = SKGaussianMixture(k, max_iter=n_iter, **kw).fit(X[:50_000])
                fe = GaussianMixture(k, max_iter=n_iter, **kw).fit(X[:50_000])
            out["max_rel_diff"] = float(
                np.abs(fe.means_ - ref.means_).max() / np.abs(ref.means_).max()
            )
    return out
