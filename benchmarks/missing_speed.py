"""Time per EM iteration on incomplete data against complete data.

    python benchmarks/missing_speed.py [--n 1000000] [--repeats 3]

GaussianMixture(K=8, full) on n x 16 rows from 8 clusters: complete;
10% of entries missing completely at random (almost every row has its own
pattern: about 9,500 patterns at d = 16); and 3 patterns (20% of the rows
miss a block of columns: 3 columns or 4 others, the rest complete).
Then the MCAR case against d.  One iteration's time is the difference of
fits of 6 and 1 iterations from identical starting parameters (``tol=0``),
over 5; medians of ``--repeats`` interleaved runs.
"""

import argparse
import statistics
import time
import warnings

import numpy as np

import fastem


def _data(n, d, K, seed=0):
    rng = np.random.default_rng(seed)
    centres = 3 * rng.normal(size=(K, d))
    return rng.normal(size=(n, d)) + centres[rng.integers(K, size=n)]


def _with_holes(X, kind, seed=1):
    rng = np.random.default_rng(seed)
    X = X.copy()
    if kind == "mcar10":
        X[rng.random(X.shape) < 0.1] = np.nan
        X[np.isnan(X).all(axis=1), 0] = 0.0
    elif kind == "3 patterns":
        r = rng.random(X.shape[0])
        X[r < 0.1, :3] = np.nan
        X[(r >= 0.1) & (r < 0.2), 5:9] = np.nan
    return X


def _fit_seconds(X, init, iters):
    m = fastem.GaussianMixture(8, covariance_type="full", tol=0, max_iter=iters,
                               missing="em", **init)
    t = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m.fit(X)
    return time.perf_counter() - t


def per_iteration(cases, init, repeats):
    """{name: median seconds per iteration}, the cases interleaved."""
    times = {name: [] for name in cases}
    for _ in range(repeats):
        for name, X in cases.items():
            long, short = _fit_seconds(X, init, 6), _fit_seconds(X, init, 1)
            times[name].append((long - short) / 5)
    return {name: statistics.median(v) for name, v in times.items()}


def _init(X):
    m = fastem.GaussianMixture(8, covariance_type="full", max_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m.fit(X[:100_000])
    return {"weights_init": m.weights_, "means_init": m.means_, "precisions_init": m.precisions_}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dims", default="4,8,16,32")
    args = parser.parse_args(argv)
    X = _data(args.n, 16, 8)
    init = _init(X)
    cases = {"complete": X, "mcar10": _with_holes(X, "mcar10"),
             "3 patterns": _with_holes(X, "3 patterns")}
    fastem.GaussianMixture(8, max_iter=1, missing="em", **init).fit(cases["mcar10"][:5000])
    t = per_iteration(cases, init, args.repeats)
    n_patterns = {name: len(fastem._missing.Patterns(Xc).groups) for name, Xc in cases.items()}
    print(f"n = {args.n:,}, d = 16, K = 8, full; medians of {args.repeats}\n")
    print("| data | missingness patterns | s / iteration | vs complete |")
    print("|---|---|---|---|")
    for name in cases:
        print(f"| {name} | {n_patterns[name]:,} | {t[name]:.3f} | {t[name] / t['complete']:.2f}x |")
    out = {"d16": t}
    print("\n10% MCAR against d (n, K as above)\n")
    print("| d | patterns | complete s / it | MCAR s / it | ratio |")
    print("|---|---|---|---|---|")
    for d in (int(v) for v in args.dims.split(",")):
        Xd = _data(args.n, d, 8, seed=d)
        Xh = _with_holes(Xd, "mcar10", seed=d + 1)
        td = per_iteration({"complete": Xd, "mcar10": Xh}, _init(Xd), args.repeats)
        out[f"d{d}"] = td
        print(f"| {d} | {len(fastem._missing.Patterns(Xh).groups):,} | {td['complete']:.3f} | "
              f"{td['mcar10']:.3f} | {td['mcar10'] / td['complete']:.2f}x |")
    return out


if __name__ == "__main__":
    main()
