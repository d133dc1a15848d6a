"""Imputation error and covariance bias on data scikit-learn ships.

    python benchmarks/imputation.py [--seeds 3]

For wine, breast cancer, digits and diabetes (standardised), 10% and 30%
of the entries removed completely at random (fixed seeds; a row left
without any value keeps its first entry): the RMSE on the removed entries
and the time of ``fastem.MixtureImputer`` (one component, and three),
``SimpleImputer(strategy='mean')``, ``KNNImputer()`` and
``IterativeImputer(random_state=0)``; medians over ``--seeds``.

Then the bias of the fitted covariance: one full Gaussian fitted with
``missing='em'`` on the incomplete data, and one fitted to the
mean-imputed data, each against the complete-data fit (relative Frobenius
error of the covariance matrix, and the mean ratio of the variances).
"""

import argparse
import statistics
import time
import warnings

import numpy as np
from sklearn import datasets
from sklearn.experimental import enable_iterative_imputer  # noqa: F401
from sklearn.impute import IterativeImputer, KNNImputer, SimpleImputer
from sklearn.preprocessing import StandardScaler

import fastem

DATASETS = {"wine": datasets.load_wine, "breast cancer": datasets.load_breast_cancer,
            "digits": datasets.load_digits, "diabetes": datasets.load_diabetes}


def _imputers():
    return {
        "MixtureImputer K=1": lambda: fastem.MixtureImputer(1, random_state=0),
        "MixtureImputer K=3": lambda: fastem.MixtureImputer(3, random_state=0, n_init=3),
        "SimpleImputer(mean)": lambda: SimpleImputer(strategy="mean"),
        "KNNImputer": lambda: KNNImputer(),
        "IterativeImputer": lambda: IterativeImputer(random_state=0, max_iter=10),
    }


def _remove(X, rate, seed):
    rng = np.random.default_rng(seed)
    Xm = X.copy()
    Xm[rng.random(X.shape) < rate] = np.nan
    empty = np.isnan(Xm).all(axis=1)
    Xm[empty, 0] = X[empty, 0]
    return Xm


def imputation_table(seeds=3, rates=(0.1, 0.3)):
    rows = []
    for name, load in DATASETS.items():
        X = StandardScaler().fit_transform(load().data)
        for rate in rates:
            errors = {k: [] for k in _imputers()}
            seconds = {k: [] for k in _imputers()}
            for seed in range(seeds):
                Xm = _remove(X, rate, seed)
                holes = np.isnan(Xm)
                for label, make in _imputers().items():
                    t = time.perf_counter()
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        filled = make().fit_transform(Xm)
                    seconds[label].append(time.perf_counter() - t)
                    errors[label].append(float(np.sqrt(np.mean((filled - X)[holes] ** 2))))
            rows.append((name, X.shape, rate,
                         {k: statistics.median(v) for k, v in errors.items()},
                         {k: statistics.median(v) for k, v in seconds.items()}))
    return rows


def bias_table(rates=(0.1, 0.3), seed=0):
    rows = []
    for name, load in DATASETS.items():
        X = StandardScaler().fit_transform(load().data)
        whole = np.cov(X.T, bias=True)
        for rate in rates:
            Xm = _remove(X, rate, seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                em = fastem.GaussianMixture(1, missing="em", tol=1e-6, max_iter=500).fit(Xm)
                naive = fastem.GaussianMixture(1).fit(SimpleImputer().fit_transform(Xm))
            out = {}
            for label, cov in (("em", em.covariances_[0]), ("mean-imputed", naive.covariances_[0])):
                out[label] = (np.linalg.norm(cov - whole) / np.linalg.norm(whole),
                              float(np.mean(np.diag(cov)[np.diag(whole) > 0]
                                            / np.diag(whole)[np.diag(whole) > 0])))
            rows.append((name, rate, out))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args(argv)
    labels = list(_imputers())
    rows = imputation_table(args.seeds)
    print(f"RMSE on the removed entries (standardised data), medians of {args.seeds} seeds; "
          "time of fit_transform in seconds\n")
    print("| data | n x d | removed | " + " | ".join(labels) + " |")
    print("|---|---|---|" + "---|" * len(labels))
    for name, shape, rate, err, sec in rows:
        best = min(err.values())
        cells = [(f"**{err[k]:.3f}**" if err[k] == best else f"{err[k]:.3f}") + f" ({sec[k]:.2f} s)"
                 for k in labels]
        print(f"| {name} | {shape[0]} x {shape[1]} | {rate:.0%} | " + " | ".join(cells) + " |")
    bias = bias_table()
    print("\nCovariance of one full Gaussian against the complete-data fit: relative "
          "Frobenius error, and the mean ratio of the variances\n")
    print("| data | removed | missing='em' | fitted to mean-imputed data |")
    print("|---|---|---|---|")
    for name, rate, out in bias:
        print(f"| {name} | {rate:.0%} | {out['em'][0]:.3f} (variances x{out['em'][1]:.2f}) | "
              f"{out['mean-imputed'][0]:.3f} (variances x{out['mean-imputed'][1]:.2f}) |")
    return rows, bias


if __name__ == "__main__":
    main()
