"""The command line on a large CSV against the same work in a Python session.

    python benchmarks/cli_io.py [--rows 1000000] [--repeats 5]

Writes a rows x 16 CSV (150 MB at a million rows) of eight Gaussian
clusters to a temporary folder, then times, interleaved, medians of
``--repeats``:

- ``fastem fit FILE -k 8 --covariance diag -o m.fem -q --seed 0`` and
  ``fastem predict m.fem FILE -o labels.csv -q``, each a fresh process
  (start-up, imports, parsing, the work, writing, exit);
- in one running session (imports done, kernels loaded): reading the file
  as the command line does (``fastem._datafile.read_data``), the fit, the
  prediction and writing the labels (``fastem.cli.write_table``).

Prints a markdown table; the ratio column is the command's time over the
session's read + work (+ write).
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np


def _csv(path, rows, d=16, k=8, seed=0):
    rng = np.random.default_rng(seed)
    centers = 3 * rng.normal(size=(k, d))
    X = centers[rng.integers(k, size=rows)] + rng.normal(size=(rows, d))
    np.savetxt(path, X, delimiter=",", fmt="%.6f", comments="",
               header=",".join(f"x{i}" for i in range(d)))


def _command(argv):
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "fastem", *argv], check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    from fastem import GaussianMixture
    from fastem._datafile import read_data
    from fastem.cli import write_table

    with tempfile.TemporaryDirectory(prefix="fastem-cli-io-") as tmp:
        data, model = os.path.join(tmp, "big.csv"), os.path.join(tmp, "m.fem")
        labels = os.path.join(tmp, "labels.csv")
        _csv(data, args.rows)
        size = os.path.getsize(data) / 1e6
        fit_argv = ["fit", data, "-k", "8", "--covariance", "diag", "-o", model, "-q",
                    "--seed", "0"]
        predict_argv = ["predict", model, data, "-o", labels, "-q"]
        _command(fit_argv)  # warms the kernels' cache and the page cache
        X = read_data(data).X
        gm = GaussianMixture(8, covariance_type="diag", random_state=0).fit(X)
        t = {k: [] for k in ("cli_fit", "cli_predict", "read", "fit", "predict", "write")}
        for _ in range(args.repeats):
            t["cli_fit"].append(_command(fit_argv))
            t["cli_predict"].append(_command(predict_argv))
            s = time.perf_counter()
            X = read_data(data).X
            t["read"].append(time.perf_counter() - s)
            s = time.perf_counter()
            gm = GaussianMixture(8, covariance_type="diag", random_state=0).fit(X)
            t["fit"].append(time.perf_counter() - s)
            s = time.perf_counter()
            y = gm.predict(X)
            t["predict"].append(time.perf_counter() - s)
            s = time.perf_counter()
            write_table(labels, ["label"], [y])
            t["write"].append(time.perf_counter() - s)
    m = {k: statistics.median(v) for k, v in t.items()}
    fit_session = m["read"] + m["fit"]
    predict_session = m["read"] + m["predict"] + m["write"]
    print(f"{args.rows:,} x 16 CSV ({size:.0f} MB), {os.cpu_count()} cores, medians of "
          f"{args.repeats}\n")
    print("| command | command line | in a session | ratio | the session's parts |")
    print("|---|---|---|---|---|")
    print(f"| fit -k 8 diag | {m['cli_fit']:.2f} s | {fit_session:.2f} s | "
          f"{m['cli_fit'] / fit_session:.1f}x | read {m['read']:.2f} s, fit {m['fit']:.2f} s |")
    print(f"| predict | {m['cli_predict']:.2f} s | {predict_session:.2f} s | "
          f"{m['cli_predict'] / predict_session:.1f}x | read {m['read']:.2f} s, predict "
          f"{m['predict']:.3f} s, write {m['write']:.3f} s |")
    return m


if __name__ == "__main__":
    main()
