"""SQUAREM (``accelerate='squarem'``) against plain EM on overlapping clusters:
E+M passes and wall time to convergence at ``tol=1e-8``, both started from
the same k-means parameters, over several generated data sets.

``benchmark.extra_info`` holds, per data set, the passes and seconds of each
mode and their ratios plain / squarem, and the medians.  Speed is reported,
not asserted; the test only checks that both converge to the same optimum
(SQUAREM's log-likelihood at least plain EM's, which stops a little short)."""

import time

import numpy as np
import pytest

from fastem import GaussianMixture
from fastem.datasets import make_mixture

from conftest import MODE

#: rows per data set, number of data sets
CASE = {"full": (1_000_000, 7), "quick": (200_000, 5), "smoke": (20_000, 3)}[MODE]
D, K, SEPARATION, TOL = 3, 4, 1.0, 1e-8
TYPES = ["full", "diag"] if MODE != "smoke" else ["full"]


def _fit(X, covariance_type, init, accelerate):
    t = time.perf_counter()
    gm = GaussianMixture(K, covariance_type=covariance_type, tol=TOL, max_iter=100_000,
                         accelerate=accelerate, **init).fit(X)
    return gm, time.perf_counter() - t


def squarem_race(n, n_sets, covariance_type):
    """Per data set: passes, seconds and final log-likelihood of each mode."""
    # JIT warm-up outside the timing
    Xw = make_mixture(2000, D, K, separation=SEPARATION, random_state=99)[0]
    for acc in (None, "squarem"):
        GaussianMixture(K, covariance_type=covariance_type, max_iter=3, tol=0,
                        accelerate=acc, random_state=0).fit(Xw)
    out = {}
    rows = []
    for seed in range(n_sets):
        X = make_mixture(n, D, K, separation=SEPARATION, random_state=seed)[0]
        g0 = GaussianMixture(K, covariance_type=covariance_type, max_iter=0,
                             random_state=seed).fit(X)  # k-means start, no EM
        init = dict(weights_init=g0.weights_, means_init=g0.means_,
                    precisions_init=g0.precisions_)
        plain, t_plain = _fit(X, covariance_type, init, None)
        fast, t_fast = _fit(X, covariance_type, init, "squarem")
        rows.append(dict(
            seed=seed, plain_passes=plain.n_em_maps_, squarem_passes=fast.n_em_maps_,
            squarem_cycles=fast.n_iter_, plain_seconds=t_plain, squarem_seconds=t_fast,
            pass_ratio=plain.n_em_maps_ / fast.n_em_maps_, time_ratio=t_plain / t_fast,
            plain_loglik=plain.score(X), squarem_loglik=fast.score(X),
            converged=bool(plain.converged_ and fast.converged_)))
    for r in rows:
        for key, value in r.items():
            if key != "seed":
                out[f"set{r['seed']}_{key}"] = value
    out["median_pass_ratio"] = float(np.median([r["pass_ratio"] for r in rows]))
    out["median_time_ratio"] = float(np.median([r["time_ratio"] for r in rows]))
    out["rows"] = n
    out["data"] = f"make_mixture(n, {D}, {K}, separation={SEPARATION}), tol={TOL}"
    return out, rows


@pytest.mark.parametrize("covariance_type", TYPES)
def test_squarem_against_plain_em(benchmark, covariance_type):
    n, n_sets = CASE
    benchmark.group = f"SQUAREM vs plain EM to tol={TOL}, n={n:,} d={D} k={K}"
    out, rows = benchmark.pedantic(squarem_race, args=(n, n_sets, covariance_type),
                                   rounds=1, iterations=1)
    benchmark.extra_info.update(out)
    for r in rows:
        print(f"{covariance_type} set {r['seed']}: passes {r['plain_passes']} / "
              f"{r['squarem_passes']} = {r['pass_ratio']:.2f}x, time "
              f"{r['plain_seconds']:.2f} s / {r['squarem_seconds']:.2f} s = "
              f"{r['time_ratio']:.2f}x")
    print(f"{covariance_type} median: passes {out['median_pass_ratio']:.2f}x, "
          f"time {out['median_time_ratio']:.2f}x")
    assert all(r["converged"] for r in rows)
    for r in rows:  # the same optimum, SQUAREM at least as close to it
        assert r["squarem_loglik"] >= r["plain_loglik"] - 1e-7
        assert r["squarem_loglik"] - r["plain_loglik"] < 1e-4
