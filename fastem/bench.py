"""Side-by-side benchmarks against scikit-learn (``fastem bench``).

Every figure is measured in the run that prints it:

* time per EM iteration of fastem and of scikit-learn, from identical
  starting parameters with ``tol=0``, as the difference between fits with a
  long and a short fixed number of iterations (so set-up and the final E-step
  cancel), repeated with fastem and scikit-learn interleaved; medians;
* GFLOP/s with the FLOP model of :func:`flops_per_iteration` and the
  fraction of the machine's reference rate (the larger of a Numba
  multiply-add loop and OpenBLAS dgemm on all cores, measured here);
* with ``--full``: float32, predict throughput, peak extra memory of a fit
  in a fresh process, cold start with an empty and a warm Numba cache,
  compile time per kernel, and 1-thread versus 2-thread kernel speed.

scikit-learn runs with its BLAS limited (threadpoolctl) to the cores
available, so that NumPy's and SciPy's OpenBLAS copies do not oversubscribe.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from pathlib import Path

import numba
import numpy as np

from . import _config, _small
from ._stats import COVARIANCE_TYPES

#: Pause after scikit-learn's fits (see em_iteration_seconds).
_QUIET_SECONDS = 0.3

QUICK_GRID = [(100_000, 2, 3), (200_000, 16, 8)]
FULL_GRID = [(100_000, 2, 3), (1_000_000, 2, 8), (200_000, 16, 8), (1_000_000, 16, 16),
             (100_000, 64, 8)]


def flops_per_iteration(n, d, k, covariance_type):
    """FLOPs of one EM iteration in fastem's kernels (exp/log not counted).

    full:      n k (2 d(d+1) + 6 d)  triangular product and scatter, d(d+1)/2
                                     multiply-adds each; differences, squares,
                                     first moments
    tied:      n (2 d(d+1)) + n k 6 d  one triangular product and one pooled
                                     scatter per row; per component distances
                                     and first moments
    diag:      n k 9 d
    spherical: n k 8 d
    """
    if covariance_type == "full":
        return n * k * (2 * d * (d + 1) + 6 * d)
    if covariance_type == "tied":
        return n * 2 * d * (d + 1) + n * k * 6 * d
    if covariance_type == "diag":
        return n * k * 9 * d
    return n * k * 8 * d


def reference_rate(seconds=0.5):
    """GFLOP/s of a vectorised Numba multiply-add loop and of OpenBLAS dgemm,
    both on all the threads available; ``peak`` is the larger."""
    from threadpoolctl import threadpool_limits

    from ._kernels.peak import _fma_peak
    from ._parallel import run_slots

    slots = 8 * numba.get_num_threads()  # claimed as they come: balanced
    out = np.zeros(slots)
    run_slots(_fma_peak, (out, 10), slots)
    reps = 2_500
    t0 = time.perf_counter()
    run_slots(_fma_peak, (out, reps), slots)
    dt = time.perf_counter() - t0
    fma = slots * reps * 64 * 8 * 2 / dt / 1e9
    a = np.random.default_rng(0).random((1024, 1024))
    with threadpool_limits(limits=numba.config.NUMBA_NUM_THREADS, user_api="blas"):
        a @ a
        times = []
        t_end = time.perf_counter() + seconds
        while time.perf_counter() < t_end or len(times) < 3:
            t0 = time.perf_counter()
            a @ a
            times.append(time.perf_counter() - t0)
    dgemm = 2 * 1024**3 / float(np.median(times)) / 1e9
    return {"fma_loop": fma, "dgemm": dgemm, "peak": max(fma, dgemm)}


def starting_params(X, k, covariance_type, random_state=0):
    """Identical starting parameters for both libraries: a short fastem fit
    on a subsample."""
    from .mixture import GaussianMixture

    rng = np.random.default_rng(random_state)
    idx = np.sort(rng.choice(X.shape[0], size=min(X.shape[0], 20_000), replace=False))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm = GaussianMixture(k, covariance_type=covariance_type, max_iter=3,
                             random_state=random_state).fit(np.asarray(X[idx], dtype=np.float64))
    return dict(weights_init=gm.weights_, means_init=gm.means_, precisions_init=gm.precisions_)


def _fit_seconds(cls, X, k, covariance_type, init, n_iter):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = cls(k, covariance_type=covariance_type, tol=0.0, max_iter=n_iter, **init)
        t0 = time.perf_counter()
        est.fit(X)
        return time.perf_counter() - t0, est


def em_iteration_seconds(X, k, covariance_type, init=None, repeats=3, sklearn=True,
                         fastem_iters=(2, 12), sklearn_iters=(1, 3)):
    """Median seconds per EM iteration of fastem and scikit-learn, interleaved.

    Returns a dict with ``fastem``, ``sklearn`` (None if not run), the
    fitted estimators of the last repeat (``fastem_est``, ``sklearn_est``)
    and ``blas_threads``.
    """
    from sklearn.mixture import GaussianMixture as SKGaussianMixture
    from threadpoolctl import threadpool_info, threadpool_limits

    from .mixture import GaussianMixture

    if init is None:
        init = starting_params(X, k, covariance_type)
    _fit_seconds(GaussianMixture, X[:2000], k, covariance_type, init, 1)  # JIT warm-up
    cores = numba.config.NUMBA_NUM_THREADS
    fe, sk = [], []
    out = {"sklearn": None, "sklearn_est": None}
    for _ in range(repeats):
        a, _ = _fit_seconds(GaussianMixture, X, k, covariance_type, init, fastem_iters[0])
        b, est = _fit_seconds(GaussianMixture, X, k, covariance_type, init, fastem_iters[1])
        fe.append((b - a) / (fastem_iters[1] - fastem_iters[0]))
        out["fastem_est"] = est
        if sklearn:
            with threadpool_limits(limits=cores, user_api="blas"):
                out["blas_threads"] = ",".join(
                    str(i["num_threads"]) for i in threadpool_info() if i["user_api"] == "blas")
                a, _ = _fit_seconds(SKGaussianMixture, X, k, covariance_type, init,
                                    sklearn_iters[0])
                b, est = _fit_seconds(SKGaussianMixture, X, k, covariance_type, init,
                                      sklearn_iters[1])
            sk.append((b - a) / (sklearn_iters[1] - sklearn_iters[0]))
            out["sklearn_est"] = est
            # OpenBLAS workers busy-wait for a while after scikit-learn's BLAS
            # calls; let them go idle so the next fastem fit starts on a quiet
            # machine, as scikit-learn's fits do
            time.sleep(_QUIET_SECONDS)
    out["fastem"] = float(np.median(fe))
    if sklearn:
        out["sklearn"] = float(np.median(sk))
        # the same number of iterations as the scikit-learn estimator kept
        _, out["fastem_est"] = _fit_seconds(GaussianMixture, X, k, covariance_type, init,
                                            sklearn_iters[1])
    return out


def _rel_diff(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


def _table(rows, columns):
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    line = "| " + " | ".join(c.ljust(w) for c, w in zip(columns, widths)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = ["| " + " | ".join(v.rjust(w) for v, w in zip(r, widths)) + " |" for r in rows]
    return "\n".join([line, sep, *body])


def bench_em(grid, types=COVARIANCE_TYPES, dtypes=(np.float64,), repeats=3, peak=None,
             log=print):
    """The EM-iteration table; returns (rows as dicts, markdown)."""
    from .datasets import make_mixture

    results = []
    for n, d, k in grid:
        X64, _, _ = make_mixture(n, d, k, random_state=1)
        big = flops_per_iteration(n, d, k, "full") > 5e9
        sk_iters = (1, 2) if big else (1, 3)
        for ct in types:
            init = starting_params(X64, k, ct)
            for dtype in dtypes:
                X = X64 if dtype == np.float64 else X64.astype(dtype)
                r = em_iteration_seconds(X, k, ct, init, repeats=repeats, sklearn_iters=sk_iters)
                fl = flops_per_iteration(n, d, k, ct)
                row = {
                    "n": n, "d": d, "k": k, "covariance_type": ct,
                    "dtype": np.dtype(dtype).name, "fastem_ms": r["fastem"] * 1e3,
                    "sklearn_ms": r["sklearn"] * 1e3, "ratio": r["sklearn"] / r["fastem"],
                    "gflops": fl / r["fastem"] / 1e9,
                    "means_rel_diff": _rel_diff(r["fastem_est"].means_, r["sklearn_est"].means_),
                }
                if peak:
                    row["peak_fraction"] = row["gflops"] / peak
                results.append(row)
                log(f"  {n:>9,} {d:>3} {k:>3} {ct:>9} {row['dtype']:>7}  fastem "
                    f"{row['fastem_ms']:9.2f} ms  scikit-learn {row['sklearn_ms']:9.1f} ms  "
                    f"ratio {row['ratio']:6.1f}x  {row['gflops']:6.1f} GFLOP/s")
    columns = ["n", "d", "k", "covariance", "dtype", "fastem ms/iter", "scikit-learn ms/iter",
               "ratio", "GFLOP/s", "of peak", "max rel. diff of means"]
    rows = [[f"{r['n']:,}", str(r["d"]), str(r["k"]), r["covariance_type"], r["dtype"],
             f"{r['fastem_ms']:.2f}", f"{r['sklearn_ms']:.1f}", f"{r['ratio']:.1f}x",
             f"{r['gflops']:.1f}", f"{r.get('peak_fraction', float('nan')):.0%}",
             f"{r['means_rel_diff']:.1e}"] for r in results]
    return results, _table(rows, columns)


def bench_predict(n=1_000_000, d=16, k=16, types=COVARIANCE_TYPES, repeats=3):
    """Rows per second of score_samples, fastem and scikit-learn."""
    from sklearn.mixture import GaussianMixture as SKGaussianMixture
    from threadpoolctl import threadpool_limits

    from .datasets import make_mixture
    from .mixture import GaussianMixture

    X, _, _ = make_mixture(n, d, k, random_state=2)
    rows = []
    for ct in types:
        init = starting_params(X, k, ct)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fe = GaussianMixture(k, covariance_type=ct, max_iter=1, **init).fit(X[:5000])
            sk = SKGaussianMixture(k, covariance_type=ct, max_iter=1, **init).fit(X[:5000])
        fe.score_samples(X[:1000])
        tf, ts = [], []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fe.score_samples(X)
            tf.append(time.perf_counter() - t0)
            with threadpool_limits(limits=numba.config.NUMBA_NUM_THREADS, user_api="blas"):
                t0 = time.perf_counter()
                sk.score_samples(X)
                ts.append(time.perf_counter() - t0)
        f, s = float(np.median(tf)), float(np.median(ts))
        rows.append([ct, f"{n / f / 1e6:.1f}", f"{n / s / 1e6:.2f}", f"{s / f:.1f}x"])
    return _table(rows, ["covariance", "fastem M rows/s", "scikit-learn M rows/s", "ratio"])


_MEMORY_CHILD = r"""
import json, sys, warnings
import numpy as np
impl, path, k, ct = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
X = np.load(path)
init = {key: np.load(path + "." + key + ".npy") for key in ("weights_init", "means_init", "precisions_init")}
if impl == "fastem":
    from fastem import GaussianMixture
else:
    from sklearn.mixture import GaussianMixture
warnings.simplefilter("ignore")
GaussianMixture(k, covariance_type=ct, max_iter=1, **init).fit(X[:3000])  # warm-up
def status(key):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
before = status("VmRSS:")
with open("/proc/self/clear_refs", "w") as fh:
    fh.write("5")  # reset the high-water mark to the current RSS
GaussianMixture(k, covariance_type=ct, max_iter=3, tol=0, **init).fit(X)
print(json.dumps({"extra": status("VmHWM:") - before, "x_bytes": X.nbytes}))
"""


def bench_memory(n=1_000_000, d=16, k=16, types=("full", "diag")):
    """Peak extra resident memory of a 3-iteration fit in a fresh process
    (VmHWM after resetting it, minus VmRSS before the fit)."""
    from .datasets import make_mixture

    X, _, _ = make_mixture(n, d, k, random_state=3)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "x.npy")
        np.save(path, X)
        for ct in types:
            for key, value in starting_params(X, k, ct).items():
                np.save(f"{path}.{key}.npy", value)
            res = {}
            for impl in ("fastem", "sklearn"):
                out = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, impl, path, str(k), ct],
                                     capture_output=True, text=True, check=True)
                res[impl] = json.loads(out.stdout.strip().splitlines()[-1])
            xb = res["fastem"]["x_bytes"]
            rows.append([ct, f"{xb / 2**20:.0f}",
                         f"{res['fastem']['extra'] / 2**20:.2f} ({res['fastem']['extra'] / xb:.2%})",
                         f"{res['sklearn']['extra'] / 2**20:.0f} ({res['sklearn']['extra'] / xb:.0%})"])
    return _table(rows, ["covariance", "X MiB", "fastem extra MiB (of X)",
                         "scikit-learn extra MiB (of X)"])


_COLD_CHILD = r"""
import json, time
t0 = time.perf_counter()
import numpy as np
import fastem
from fastem.datasets import load_faithful
t1 = time.perf_counter()
X, _ = load_faithful()
fastem.GaussianMixture(2, random_state=0).fit(X)
t2 = time.perf_counter()
compile_times = {}
if __import__("sys").argv[1] == "kernels":
    from fastem.datasets import make_mixture
    Y, _, _ = make_mixture(2000, 3, 2, random_state=0)
    for ct in ("full", "tied", "diag", "spherical"):
        for dt in (np.float64, np.float32):
            t = time.perf_counter()
            fastem.GaussianMixture(2, covariance_type=ct, max_iter=2, random_state=0).fit(Y.astype(dt))
            compile_times[f"{ct}/{np.dtype(dt).name}"] = time.perf_counter() - t
print(json.dumps({"import": t1 - t0, "first_fit": t2 - t1, "total": t2 - t0,
                  "kernels": compile_times}))
"""


def bench_cold_start():
    """Fresh processes: import + first fit on Old Faithful with an empty and a
    warm Numba cache; compile time of every kernel variant (empty cache)."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)

        def child(mode):
            out = subprocess.run([sys.executable, "-c", _COLD_CHILD, mode], env=env,
                                 capture_output=True, text=True, check=True)
            return json.loads(out.stdout.strip().splitlines()[-1])

        cold = child("kernels")
        warm = [child("plain") for _ in range(3)]
    warm_total = float(np.median([w["total"] for w in warm]))
    warm_import = float(np.median([w["import"] for w in warm]))
    kernels = cold["kernels"]
    compile_total = cold["first_fit"] + sum(kernels.values())
    lines = [
        f"- empty cache: import {cold['import']:.2f} s + first fit ({_small.SMALL_ROWS} rows "
        f"or fewer run the NumPy E-step and k-means: nothing to compile) "
        f"{cold['first_fit']:.2f} s = {cold['total']:.2f} s",
        f"- warm cache (median of 3 fresh processes): {warm_total:.2f} s, of which import "
        f"{warm_import:.2f} s",
        "- first fit per kernel variant with an empty cache (compile + run on 2,000 rows, "
        "in the process of the empty-cache fit above, so the first variant also compiles "
        "the k-means kernels; spherical runs the diag kernel): "
        + ", ".join(f"{k} {v:.1f} s" for k, v in kernels.items()),
        f"- all kernels compiled in this process: about {compile_total:.0f} s",
    ]
    return "\n".join(lines), {"cold": cold, "warm_total": warm_total,
                              "compile_total": compile_total}


def _estep_setup(X, covariance_type, k):
    """Parameters from a short fit on X's first 20,000 rows, and the E-step
    workspace for all of X."""
    from ._estep import EStepWorkspace
    from .mixture import GaussianMixture

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm = GaussianMixture(k, covariance_type=covariance_type, max_iter=2,
                             random_state=0).fit(X[:20000])
    return gm._get_params_tuple(), EStepWorkspace(covariance_type, k, X.shape[1], X.shape[0])


def bench_threads(n=1_000_000, d=16, k=8, types=COVARIANCE_TYPES, repeats=5):
    """Kernel time (one fused E-step) with 1 and with 2 threads; and a whole
    E-step on 1,024 rows on 1 and on 2 threads (what handing work to the pool
    thread costs)."""
    from ._estep import EStepWorkspace
    from .datasets import make_mixture
    from .mixture import GaussianMixture

    X, _, _ = make_mixture(n, d, k, random_state=4)
    rows = []
    previous = numba.get_num_threads()
    try:
        for ct in types:
            params, ws = _estep_setup(X, ct, k)
            times = {}
            for threads in (1, 2):
                numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
                ws.run(X, None, params)
                ts = []
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    ws.run(X, None, params)
                    ts.append(time.perf_counter() - t0)
                times[threads] = float(np.median(ts))
            rows.append([ct, f"{times[1] * 1e3:.1f}", f"{times[2] * 1e3:.1f}",
                         f"{times[1] / times[2]:.2f}x"])
        small = X[:1024]  # four blocks: four slots, so the pool thread gets some
        ws = EStepWorkspace("diag", k, d, 1024)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            gm = GaussianMixture(k, covariance_type="diag", max_iter=1, random_state=0).fit(X[:5000])
        p = gm._get_params_tuple()
        serial_work = _config.SERIAL_WORK
        _config.SERIAL_WORK = 0  # hand even these rows to the pool thread
        region_us = {}
        try:
            for threads in (1, 2):
                numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
                ws.run(small, None, p)
                ts = []
                for _ in range(200):
                    t0 = time.perf_counter()
                    ws.run(small, None, p)
                    ts.append(time.perf_counter() - t0)
                region_us[threads] = float(np.median(ts)) * 1e6
        finally:
            _config.SERIAL_WORK = serial_work
    finally:
        numba.set_num_threads(previous)
    table = _table(rows, ["covariance", "1 thread ms", "2 threads ms", "speed-up"])
    return table, region_us


#: The cases of the 16-core measurement (../shared/scripts/scale16.py):
#: (covariance type, n, d, k).
SCALING_CASES = (("full", 2_000_000, 16, 16), ("diag", 4_000_000, 2, 8),
                 ("full", 500_000, 64, 8))


def thread_counts(most=None):
    """1, 2, 4, ... up to the machine's threads (``NUMBA_NUM_THREADS``),
    that count included."""
    most = numba.config.NUMBA_NUM_THREADS if most is None else most
    counts = [1]
    while counts[-1] * 2 < most:
        counts.append(counts[-1] * 2)
    if most > 1:
        counts.append(most)
    return counts


def bench_scaling(cases=SCALING_CASES, threads=None, repeats=5):
    """One fused E-step per case on 1, 2, 4, ... threads (medians): the
    thread-scaling table, with the number of slots each case has."""
    from .datasets import make_mixture

    threads = thread_counts() if threads is None else list(threads)
    rows = []
    previous = numba.get_num_threads()
    try:
        for ct, n, d, k in cases:
            X, _, _ = make_mixture(n, d, k, random_state=5)
            params, ws = _estep_setup(X, ct, k)
            times = []
            for t in threads:
                numba.set_num_threads(t)
                ws.run(X, None, params)
                ts = []
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    ws.run(X, None, params)
                    ts.append(time.perf_counter() - t0)
                times.append(float(np.median(ts)))
            rows.append([f"{ct}, {n:,} x {d}, K = {k}", str(ws.S0s.shape[0])]
                        + [f"{t * 1e3:.1f} ms ({times[0] / t:.1f}x)" for t in times])
            del X
    finally:
        numba.set_num_threads(previous)
    return _table(rows, ["case", "slots"] + [f"{t} threads" for t in threads])


def bench_partial_fit(d=16, k=16, batch_size=1024, n_batches=200, types=COVARIANCE_TYPES,
                      repeats=3):
    """Rows per second of MiniBatchGaussianMixture.partial_fit (one stepwise
    EM update per call, validation included); returns (rows, markdown)."""
    from .datasets import make_mixture
    from .online import MiniBatchGaussianMixture

    X, _, _ = make_mixture(4096 + n_batches * batch_size, d, k, random_state=3)
    batches = [X[4096 + i * batch_size:4096 + (i + 1) * batch_size] for i in range(n_batches)]
    rows = []
    for ct in types:
        times = []
        for _ in range(repeats):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                est = MiniBatchGaussianMixture(k, covariance_type=ct, random_state=0)
                est.partial_fit(X[:4096])
                t0 = time.perf_counter()
                for b in batches:
                    est.partial_fit(b)
                times.append(time.perf_counter() - t0)
        sec = float(np.median(times))
        rows.append({"covariance_type": ct, "rows_per_s": n_batches * batch_size / sec,
                     "ms_per_step": sec / n_batches * 1e3})
    md = _table([[r["covariance_type"], f"{r['rows_per_s']:,.0f}", f"{r['ms_per_step']:.2f}"]
                 for r in rows], ["covariance", "rows/s", "ms per update"])
    return rows, md


def online_vs_batch(n=5_000_000, d=8, k=8, covariance_type="full", target=1e-3,
                    batch_size=1024, max_epochs=3, separation=2.5, log=print):
    """Wall time to get within ``target`` nats per sample of the batch EM
    optimum, online (partial_fit over the rows in order, as a stream) against
    batch EM, both from the same starting parameters, in one run.

    Overlapping clusters (``separation``) and a k-means++ start, as in
    practice.  The optimum is batch EM run to ``tol=1e-7``; batch EM's time is that of
    a fit with just enough iterations; the online clock stops at the first
    checkpoint (every 1/20 epoch, the full-data score is not timed) within
    ``target``.  Returns a dict of the figures.
    """
    from .datasets import make_mixture
    from .mixture import GaussianMixture
    from .online import MiniBatchGaussianMixture

    X, _, _ = make_mixture(n, d, k, separation=separation, random_state=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # a common, typical start: k-means++ seeds on a sample, no EM iteration
        start = GaussianMixture(k, covariance_type=covariance_type, init_params="k-means++",
                                max_iter=0, random_state=0).fit(X[:200_000])
        init = {"weights_init": start.weights_, "means_init": start.means_,
                "precisions_init": start.precisions_}
        GaussianMixture(k, covariance_type=covariance_type, max_iter=1, **init).fit(X[:2000])
        # plain EM dynamics on both sides (no collapse re-seeds, which would
        # move batch EM to another basin than the online run's)
        init["on_collapse"] = "raise"
        ref = GaussianMixture(k, covariance_type=covariance_type, tol=1e-7, max_iter=3000,
                              random_state=0, **init).fit(X)
        optimum = ref.score(X)
        # lower_bounds_[i] is the log-likelihood of the parameters after i iterations
        lbs = np.asarray(ref.lower_bounds_ + [optimum])
        iters = int(np.argmax(lbs >= optimum - target))
        t0 = time.perf_counter()
        batch = GaussianMixture(k, covariance_type=covariance_type, tol=0.0,
                                max_iter=max(iters, 1), random_state=0, **init).fit(X)
        batch_s = time.perf_counter() - t0
        batch_gap = optimum - batch.score(X)
        log(f"  batch EM: {iters} iterations, {batch_s:.2f} s, gap {batch_gap:.1e}")

        online = MiniBatchGaussianMixture(k, covariance_type=covariance_type, random_state=0,
                                          **init)
        check = max(1, n // batch_size // 20)
        elapsed, steps, online_gap, reached = 0.0, 0, np.inf, False
        for _ in range(max_epochs):
            for i0 in range(0, n, batch_size):
                t0 = time.perf_counter()
                online.partial_fit(X[i0:i0 + batch_size])
                elapsed += time.perf_counter() - t0
                steps += 1
                if steps % check == 0:
                    online_gap = optimum - online.score(X)
                    if online_gap <= target:
                        reached = True
                        break
            if reached:
                break
    log(f"  online EM: {steps} updates ({online.n_samples_seen_:,} rows), {elapsed:.2f} s, "
        f"gap {online_gap:.1e}{'' if reached else ' (target not reached)'}")
    return {"n": n, "d": d, "k": k, "covariance_type": covariance_type, "target": target,
            "optimum": optimum, "batch_iterations": iters, "batch_seconds": batch_s,
            "batch_gap": batch_gap, "online_steps": steps,
            "online_rows": int(online.n_samples_seen_), "online_seconds": elapsed,
            "online_gap": float(online_gap), "online_reached": reached,
            "speedup": batch_s / elapsed if reached else float("nan")}


def bench_dask(n=10_000_000, d=16, k=16, covariance_type="full", n_workers=2,
               iters=(2, 6), repeats=3, chunk_rows=250_000, work_stealing=True, log=print):
    """Per-iteration cost of distributed EM on a ``distributed.LocalCluster``
    (``n_workers`` processes of one thread) against the in-memory fit (all
    Numba threads) of the same data from the same parameters, and the bytes
    moved per iteration.

    The data is generated lazily on the workers (a mixture of unit clusters)
    and persisted there; the in-memory copy is gathered once for the
    comparison.  Seconds per iteration are the difference of fits with
    ``iters[1]`` and ``iters[0]`` fixed iterations (``tol=0``), over the
    difference; medians over ``repeats``, the two interleaved.  Bytes: what
    the workers sent to peers and to the client per iteration (their
    ``transfer_outgoing_bytes_total``), the pickled size of the parameters
    the client sends with each iteration's tasks, and the size of one
    chunk's statistics vector.  ``work_stealing=False`` turns off Dask's
    work stealing in the cluster (it may copy a chunk to a less loaded worker).
    """
    import pickle

    import dask
    import dask.array as da
    import distributed

    from ._dask import payload as dask_payload
    from ._stats import default_shift, stats_vector_length
    from .mixture import GaussianMixture

    def outgoing(client):
        return sum(client.run(lambda dask_worker: dask_worker.transfer_outgoing_bytes_total)
                   .values())

    with dask.config.set({"distributed.scheduler.work-stealing": bool(work_stealing)}), \
            distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1,
                                     processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        rs = da.random.RandomState(0)
        label = rs.randint(0, k, size=n, chunks=chunk_rows)
        centers = da.from_array(np.random.default_rng(0).normal(0, 4, size=(k, d)))
        Xd = (rs.standard_normal((n, d), chunks=(chunk_rows, d)) + centers[label]).persist()
        distributed.wait(Xd)
        X = Xd.compute()
        init = starting_params(X, k, covariance_type)
        timings = {"memory": [], "dask": []}
        moved = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            GaussianMixture(k, covariance_type=covariance_type, max_iter=1, **init).fit(Xd)
            for _ in range(repeats):
                for where, data in (("memory", X), ("dask", Xd)):
                    ts = []
                    for m in iters:
                        before = outgoing(client)
                        t, _ = _fit_seconds(GaussianMixture, data, k, covariance_type, init, m)
                        ts.append(t)
                        if where == "dask":
                            moved.append((m, outgoing(client) - before))
                    timings[where].append((ts[1] - ts[0]) / (iters[1] - iters[0]))
        per_iter_bytes = float(np.median([(b1 - b0) / (iters[1] - iters[0]) for (_, b0), (_, b1)
                                          in zip(moved[0::2], moved[1::2])]))
        gm = GaussianMixture(k, covariance_type=covariance_type, max_iter=1, **init).fit(X)
        params = gm._get_params_tuple()
        n_chunks = Xd.numblocks[0]
        payload = len(pickle.dumps(dask_payload(covariance_type, params,
                                                default_shift(params, covariance_type),
                                                True, False)))
        stats_bytes = 8 * stats_vector_length(covariance_type, k, d)
    memory_s = float(np.median(timings["memory"]))
    dask_s = float(np.median(timings["dask"]))
    out = {"n": n, "d": d, "k": k, "covariance_type": covariance_type, "n_workers": n_workers,
           "work_stealing": bool(work_stealing),
           "chunks": n_chunks, "data_bytes": n * d * 8, "memory_seconds": memory_s,
           "dask_seconds": dask_s, "overhead": dask_s / memory_s,
           "worker_bytes_per_iteration": per_iter_bytes, "parameter_bytes": payload,
           "stats_vector_bytes": int(stats_bytes)}
    log(f"  distributed EM, n={n:,} d={d} k={k} {covariance_type}, {n_chunks} chunks on "
        f"{n_workers} workers (work stealing {'on' if work_stealing else 'off'}): {1e3 * dask_s:.1f} ms per iteration against "
        f"{1e3 * memory_s:.1f} ms in memory ({out['overhead']:.2f}x); workers sent "
        f"{per_iter_bytes / 1024:.1f} KiB per iteration; parameters {payload / 1024:.1f} KiB, "
        f"statistics {stats_bytes / 1024:.1f} KiB per chunk")
    return out


def online_md(race, throughput_md):
    r = race
    return "\n".join([
        (f"Time to get within {r['target']:g} nats per sample of the batch EM optimum "
         f"(n={r['n']:,}, d={r['d']}, k={r['k']}, {r['covariance_type']}, overlapping "
         "clusters), both from the same k-means++ start; online EM reads the rows in order as a stream of 1,024-row "
         "batches through `partial_fit`:"),
        "",
        _table([["batch EM", f"{r['batch_iterations']} iterations", f"{r['batch_seconds']:.2f}",
                 f"{r['batch_gap']:.1e}"],
                ["online EM", f"{r['online_steps']} updates ({r['online_rows']:,} rows)",
                 f"{r['online_seconds']:.2f}", f"{r['online_gap']:.1e}"]],
               ["method", "work", "seconds", "gap to optimum"]),
        "",
        f"Online EM is {r['speedup']:.1f}x faster to this accuracy.",
        "",
        "partial_fit throughput (d=16, k=16, 1,024-row batches, validation included):",
        "",
        throughput_md,
    ])


def _chart(results, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    rs = [r for r in results if r["dtype"] == "float64"]
    labels = [f"{r['covariance_type']}\n{r['n'] // 1000}k,{r['d']},{r['k']}" for r in rs]
    fig, ax = plt.subplots(figsize=(max(8, len(rs) * 0.45), 4.5))
    colors = {"full": "C0", "tied": "C1", "diag": "C2", "spherical": "C3"}
    ax.bar(range(len(rs)), [r["ratio"] for r in rs],
           color=[colors[r["covariance_type"]] for r in rs])
    ax.set_xticks(range(len(rs)))
    ax.set_xticklabels(labels, fontsize=7, rotation=90)
    ax.set_ylabel("speed-up over scikit-learn (x)")
    ax.set_title("fastem vs scikit-learn: time per EM iteration, float64, 2 threads (median)")
    ax.axhline(1, color="k", lw=0.8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def run(full=False, grid=None, types=COVARIANCE_TYPES, repeats=3, out_dir=None, log=print,
        records=None):
    """Run the benchmarks, print the tables and (``out_dir``) write
    ``benchmarks.md`` and ``benchmarks.png`` there; returns the markdown.
    ``records``, a list, receives one dict per EM-iteration case."""
    import platform

    import sklearn
    from threadpoolctl import threadpool_info

    grid = grid or (FULL_GRID if full else QUICK_GRID)
    log(f"fastem bench: {numba.get_num_threads()} threads, numba {numba.__version__}, "
        f"scikit-learn {sklearn.__version__}, {platform.machine()}")
    ref = reference_rate()
    log(f"reference rate: Numba multiply-add loop {ref['fma_loop']:.1f} GFLOP/s, OpenBLAS dgemm "
        f"{ref['dgemm']:.1f} GFLOP/s")
    dtypes = (np.float64, np.float32) if full else (np.float64,)
    results, em_md = bench_em(grid, types, dtypes, repeats=repeats, peak=ref["peak"], log=log)
    if records is not None:
        records.extend(results)
    blas = ",".join(str(i["num_threads"]) for i in threadpool_info() if i["user_api"] == "blas")
    md = [
        "# Benchmarks",
        "",
        f"Measured by `fastem bench{' --full' if full else ''}` on "
        f"{time.strftime('%Y-%m-%d')}: {platform.processor() or platform.machine()}, "
        f"{numba.config.NUMBA_NUM_THREADS} cores, numba {numba.__version__}, "
        f"scikit-learn {sklearn.__version__}, BLAS threads for scikit-learn {blas}.",
        f"Reference rate measured in the same run: Numba multiply-add loop "
        f"{ref['fma_loop']:.1f} GFLOP/s, OpenBLAS dgemm {ref['dgemm']:.1f} GFLOP/s; "
        "'of peak' is relative to the larger.",
        "",
        "## Time per EM iteration",
        "",
        "Identical starting parameters, `tol=0`, difference of a long and a short fit, "
        f"{repeats} interleaved repeats, medians; a {_QUIET_SECONDS} s pause after each "
        "scikit-learn fit lets OpenBLAS's busy-waiting worker threads go idle before fastem "
        "runs. FLOP model: `fastem.bench.flops_per_iteration`.",
        "",
        em_md,
    ]
    if full:
        f32 = [r for r in results if r["dtype"] == "float32"]
        if f32:
            f64 = {(r["n"], r["d"], r["k"], r["covariance_type"]): r for r in results
                   if r["dtype"] == "float64"}
            rows = [[f"{r['n']:,}", str(r["d"]), str(r["k"]), r["covariance_type"],
                     f"{f64[(r['n'], r['d'], r['k'], r['covariance_type'])]['fastem_ms'] / r['fastem_ms']:.2f}x"]
                    for r in f32]
            md += ["", "## float32 against float64 (fastem)", "",
                   _table(rows, ["n", "d", "k", "covariance", "float32 speed-up"])]
        log("predict throughput ...")
        md += ["", "## score_samples throughput (n=1,000,000, d=16, k=16)", "",
               bench_predict()]
        log("memory ...")
        md += ["", "## Peak extra memory of a fit (fresh process, n=1,000,000, d=16, k=16)", "",
               bench_memory()]
        log("cold start ...")
        cold_md, _ = bench_cold_start()
        md += ["", "## Cold start and compile time", "", cold_md]
        log("online ...")
        _, thr = bench_partial_fit()
        race = online_vs_batch(log=log)
        md += ["", "## Online EM", "", online_md(race, thr)]
        log("threads ...")
        thr_md, region_us = bench_threads()
        md += ["", "## One thread against two (one fused E-step, n=1,000,000, d=16, k=8)", "",
               thr_md, "",
               f"A whole fused E-step on 1,024 rows (d=16, k=8, diag) takes "
               f"{region_us[1]:.0f} us on 1 thread and {region_us[2]:.0f} us when half of its "
               f"slots are handed to the pool thread; fastem runs work this small on one "
               f"thread (`FASTEM_SERIAL_WORK`)."]
        if numba.config.NUMBA_NUM_THREADS > 2:
            log("thread scaling ...")
            md += ["", f"## Thread scaling (one fused E-step, up to "
                   f"{numba.config.NUMBA_NUM_THREADS} threads)", "", bench_scaling()]
    text = "\n".join(md) + "\n"
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        if _chart(results, out_dir / "benchmarks.png"):
            text = text.replace("## Time per EM iteration\n",
                                "## Time per EM iteration\n\n![speed-up](benchmarks.png)\n", 1)
        (out_dir / "benchmarks.md").write_text(text)
        log(f"wrote {out_dir / 'benchmarks.md'}")
    return text


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="fastem bench",
        description="Time EM iterations of fastem and scikit-learn side by side.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=textwrap.dedent("""\
            examples:
              fastem bench                 quick table (two sizes, four covariance types)
              fastem bench --full          whole grid, float32, memory, cold start, threads;
                                           writes docs/benchmarks.md and docs/benchmarks.png
              fastem bench --family poisson
                                           a discrete family: fastem's time per iteration,
                                           GFLOP/s and GB/s read, installed peers side by side
              fastem bench --family bernoulli --full --out results
                                           the speed issue's sizes, CSR memory; writes
                                           results/benchmarks_bernoulli.md
        """),
    )
    from .cli import add_bench_arguments

    add_bench_arguments(parser)
    return run_from_args(parser.parse_args(argv))


def run_from_args(args, records=None):
    grid = None
    if args.grid:
        try:
            grid = [tuple(int(v) for v in item.split(",")) for item in args.grid.split(";")]
        except ValueError:
            grid = None
        if not grid or any(len(g) != 3 or min(g) < 1 for g in grid):
            raise ValueError(f"--grid expects sizes as n,d,k;n,d,k (positive integers), "
                             f"got {args.grid!r}")
    family = getattr(args, "family", None)
    if getattr(args, "bayesian", False):
        if family is not None:
            raise ValueError("--bayesian times the Gaussian variational mixture; drop --family")
        from .bench_bayesian import run_bayesian

        print(run_bayesian(grid=grid, repeats=args.repeats))
        return 0
    if family is not None:
        from .bench_discrete import run_family

        run_family(family, full=args.full, grid=grid, repeats=args.repeats, peers=args.peers,
                   levels=args.levels, density=args.density, out_dir=args.out,
                   records=records)
        return 0
    for option in ("levels", "density"):
        if getattr(args, option, None) is not None:
            raise ValueError(f"--{option} goes with --family")
    if getattr(args, "peers", "auto") != "auto":
        raise ValueError("--peers goes with --family (the Gaussian bench compares with "
                         "scikit-learn)")
    out = args.out if args.out is not None else ("docs" if args.full else None)
    run(full=args.full, grid=grid, repeats=args.repeats, out_dir=out, records=records)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
