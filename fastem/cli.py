"""The ``fastem`` command line."""

import argparse
import sys
import warnings

import numpy as np


def _demo(args):
    from sklearn.exceptions import ConvergenceWarning

    from .bench import em_iteration_seconds
    from .datasets import load_faithful, make_mixture
    from .select import select

    X, columns = load_faithful()
    print(f"Old Faithful: {X.shape[0]} eruptions, columns {columns}")
    print("Model selection by BIC (scikit-learn's sign, lower is better; mclust reports "
          "-BIC), k = 1..6, n_init=10, random_state=0\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = select(X, range(1, 7), n_init=10, random_state=0)
    print(result)
    best = result.best_estimator_
    k, ct = result.best_params_["n_components"], result.best_params_["covariance_type"]
    print(f"\nChosen by BIC: k={k}, covariance_type={ct!r} (BIC {result.best_score_:.2f})")
    for j in range(k):
        mean = ", ".join(f"{c}={m:.3f}" for c, m in zip(columns, best.means_[j]))
        print(f"  component {j}: weight {best.weights_[j]:.3f}, mean ({mean})")
        cov = best.covariances_[j] if ct == "full" else best.covariances_
        if ct in ("full", "tied") and (ct == "full" or j == 0):
            print("    covariance " + np.array2string(np.asarray(cov), precision=3,
                                                       prefix="    covariance "))
    if args.no_speed:
        return 0
    n, d, kk = args.n, args.d, args.k
    print(f"\nSpeed: {n:,}-row synthetic mixture, d={d}, k={kk}, full covariance, "
          "float64, identical starting parameters (time per iteration: difference of a "
          "long and a short fit)")
    Xs, _, _ = make_mixture(n, d, kk, random_state=1)
    res = em_iteration_seconds(Xs, kk, "full", repeats=1, fastem_iters=(2, 2 + args.iters),
                               sklearn_iters=(1, 1 + args.sk_iters))
    import numba

    print(f"  fastem       {res['fastem'] * 1e3:10.1f} ms per EM iteration "
          f"({numba.get_num_threads()} threads)")
    print(f"  scikit-learn {res['sklearn'] * 1e3:10.1f} ms per EM iteration "
          f"(BLAS threads {res['blas_threads']})")
    print(f"  ratio        {res['sklearn'] / res['fastem']:10.1f}x")
    fe, sk = res["fastem_est"].means_, res["sklearn_est"].means_
    print(f"  means after {1 + args.sk_iters} iterations agree with scikit-learn's to "
          f"{np.abs(fe - sk).max() / np.abs(sk).max():.1e} (relative)")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="fastem",
        description="Gaussian mixtures by EM, fast. 'fastem demo' runs the main job.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="select a model for Old Faithful (k=1..6, every covariance type, BIC), "
        "then time a 1,000,000-row fit against scikit-learn",
        description="Fit mixtures to the Old Faithful data shipped with fastem, print "
        "a BIC table and the chosen model, then time EM iterations on a large "
        "synthetic mixture against scikit-learn from identical parameters.",
    )
    demo.add_argument("--n", type=int, default=1_000_000, help="rows of the synthetic data")
    demo.add_argument("--d", type=int, default=8, help="features of the synthetic data")
    demo.add_argument("--k", type=int, default=8, help="components of the synthetic data")
    demo.add_argument("--iters", type=int, default=10, help="fastem EM iterations timed")
    demo.add_argument("--sk-iters", type=int, default=2, help="scikit-learn EM iterations timed")
    demo.add_argument("--no-speed", action="store_true", help="skip the timing part")
    demo.set_defaults(func=_demo)
    bench = sub.add_parser(
        "bench",
        help="time EM iterations against scikit-learn side by side",
        description="Time EM iterations of fastem and scikit-learn from identical "
        "parameters (medians of interleaved repeats); --full runs the whole grid, "
        "float32, memory, cold start and thread scaling and writes docs/benchmarks.md.",
    )
    from .bench import add_arguments, run_from_args

    add_arguments(bench)
    bench.set_defaults(func=run_from_args)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, OSError) as exc:
        print(f"fastem {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
