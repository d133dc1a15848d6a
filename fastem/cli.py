"""The ``fastem`` command line.

Commands: ``fit``, ``predict``, ``score``, ``select``, ``sample``, ``demo``
and ``bench`` (``fastem COMMAND --help`` shows each one's options and
examples).  Every command takes ``--json`` (machine-readable output on
stdout) and ``--quiet``; long work shows a progress bar on stderr when it is
a terminal.  Bad files, missing columns, non-numeric cells and unknown
options end with a one-line error and exit code 2, never a traceback
(``FASTEM_DEBUG=1`` shows the traceback of an unexpected error).
"""

import argparse
import contextlib
import csv
import io
import json
import math
import os
import re
import sys
import time
import warnings

import numpy as np

#: Exit codes: bad input or usage, and an unexpected failure.
EXIT_USAGE = 2
EXIT_FAILURE = 1

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


class CliError(Exception):
    """A failure to report in one line (bad file, bad column, bad option)."""


# --------------------------------------------------------------------------
# reading data
# --------------------------------------------------------------------------

def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def _split_columns(spec):
    return [c.strip() for c in spec.split(",") if c.strip()] if spec else None


def _pick_columns(names, wanted, path):
    """0-based indices of ``wanted`` (names, or integers when there is no
    header or the name is not a column)."""
    idx = []
    for w in wanted:
        if names is not None and w in names:
            idx.append(names.index(w))
        elif w.lstrip("-").isdigit():
            i = int(w)
            n_cols = len(names) if names is not None else None
            if i < 0 or (n_cols is not None and i >= n_cols):
                raise CliError(f"column index {i} is out of range for {path} "
                               f"({n_cols} columns; indices start at 0)")
            idx.append(i)
        else:
            have = ", ".join(names) if names else "none (the file has no header row)"
            raise CliError(f"column {w!r} not found in {path}; its columns are: {have}")
    return idx


def read_data(path, columns=None):
    """Rows of a CSV/TSV (header detected), ``.npy`` or Parquet file as a
    float64 array, and the column names (or None).

    ``columns`` is a comma-separated list of names or 0-based indices."""
    if not os.path.exists(path):
        raise CliError(f"data file {path!r} not found")
    if os.path.isdir(path):
        raise CliError(f"{path!r} is a directory; expected a CSV, TSV, .npy or Parquet file")
    wanted = _split_columns(columns)
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npy":
        return _read_npy(path, wanted)
    if ext in (".parquet", ".pq"):
        return _read_parquet(path, wanted)
    return _read_text(path, wanted, "\t" if ext == ".tsv" else None)


def _read_npy(path, wanted):
    try:
        X = np.load(path, allow_pickle=False, mmap_mode="r")
    except (ValueError, OSError) as exc:
        raise CliError(f"{path} is not a readable .npy array file ({exc})") from None
    if X.dtype.kind not in "biuf":
        raise CliError(f"{path} holds dtype {X.dtype}; expected numbers")
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2:
        raise CliError(f"{path} holds an array of shape {X.shape}; expected 2-D "
                       "(rows, features)")
    if wanted:
        X = X[:, _pick_columns(None, wanted, path)]
    return np.asarray(X, dtype=np.float64), None


def _read_parquet(path, wanted):
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise CliError("reading Parquet files needs pyarrow: pip install pyarrow") from None
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises its own error classes
        raise CliError(f"{path} is not a readable Parquet file ({exc})") from None
    names = list(table.column_names)
    idx = _pick_columns(names, wanted, path) if wanted else range(len(names))
    cols, picked = [], []
    for i in idx:
        col = table.column(i)
        try:
            values = col.to_numpy(zero_copy_only=False)
            values = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            raise CliError(f"column {names[i]!r} of {path} is not numeric "
                           f"(type {col.type}); pick numeric columns with --columns") from None
        if values.dtype.kind == "f" and np.isnan(values).any():
            row = int(np.flatnonzero(np.isnan(values))[0])
            raise CliError(f"column {names[i]!r} of {path} has a missing value at row {row}; "
                           "missing values are not supported: impute or drop those rows")
        cols.append(values)
        picked.append(names[i])
    if not cols:
        raise CliError(f"{path} has no columns")
    return np.column_stack(cols), picked


def _read_text(path, wanted, delimiter):
    try:
        with open(path, newline="") as fh:
            head = [fh.readline() for _ in range(2)]
    except UnicodeDecodeError:
        raise CliError(f"{path} is not a text file; expected CSV, TSV, .npy or "
                       "Parquet (by extension)") from None
    first = head[0].rstrip("\r\n")
    if not first.strip():
        raise CliError(f"{path} is empty")
    if delimiter is None:
        delimiter = "\t" if "\t" in first else ("," if "," in first else
                                                (";" if ";" in first else None))
    fields = next(csv.reader([first], delimiter=delimiter or ","))
    fields = [f.strip() for f in (fields if delimiter else first.split())]
    header = not all(_is_number(f) for f in fields)
    names = fields if header else None
    usecols = _pick_columns(names, wanted, path) if wanted else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # an empty file body is an error
            X = np.loadtxt(path, delimiter=delimiter, skiprows=1 if header else 0,
                           usecols=usecols, ndmin=2, dtype=np.float64, comments=None)
    except (ValueError, UserWarning) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "Empty input" in msg or "input contained no data" in msg:
            raise CliError(f"{path} has a header but no data rows") from None
        m = re.search(r"could not convert string '(.*)' to float64 at row (\d+), column (\d+)",
                      msg)
        if m:  # numpy counts data rows from 0 and columns from 1
            line = int(m.group(2)) + 1 + (1 if header else 0)
            cell = m.group(1)
            what = "an empty cell" if cell == "" else f"the non-numeric cell {cell!r}"
            raise CliError(f"{path}: {what} at line {line}, column {m.group(3)}; expected "
                           "numbers only (missing values are not supported: impute or drop "
                           "those rows; pick numeric columns with --columns)") from None
        raise CliError(f"{path}: {msg} (expected numbers only in the data rows; "
                       "pick numeric columns with --columns)") from None
    if X.size == 0:
        raise CliError(f"{path} has no data rows")
    picked = [names[i] for i in usecols] if (names and usecols is not None) else names
    return X, picked


def write_table(path, header, columns, json_mode=False):
    """Write columns (1-D arrays) as CSV to ``path`` (or stdout if None)."""
    out = io.StringIO() if path is None else open(path, "w", newline="")
    try:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        n = len(columns[0]) if columns else 0
        for i in range(n):
            writer.writerow([_fmt(c[i]) for c in columns])
        if path is None:
            sys.stdout.write(out.getvalue())
    finally:
        if path is not None:
            out.close()


def _fmt(v):
    if isinstance(v, (np.integer, int)):
        return str(int(v))
    return repr(float(v))


# --------------------------------------------------------------------------
# progress and warnings
# --------------------------------------------------------------------------

class Progress:
    """A one-line progress bar on stderr, drawn only on a terminal (and not
    with --quiet): silent when stderr is piped or redirected."""

    def __init__(self, total, label, quiet=False, stream=None):
        self.stream = sys.stderr if stream is None else stream
        self.enabled = (not quiet and hasattr(self.stream, "isatty")
                        and self.stream.isatty())
        self.total = max(1, int(total))
        self.label = label
        self.start = time.perf_counter()
        self.done = 0
        self._last = 0.0

    def update(self, done=None, note=""):
        self.done = self.done + 1 if done is None else done
        if not self.enabled:
            return
        now = time.perf_counter()
        if now - self._last < 0.1 and self.done < self.total:
            return
        self._last = now
        frac = min(1.0, self.done / self.total)
        bar = "#" * int(30 * frac) + "-" * (30 - int(30 * frac))
        self.stream.write(f"\r{self.label} [{bar}] {self.done}/{self.total} "
                          f"{now - self.start:.1f}s {note}".ljust(78)[:120])
        self.stream.flush()

    def close(self):
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


@contextlib.contextmanager
def _collected_warnings(quiet):
    """Warnings as one line each on stderr (after the work), not Python's
    multi-line format; none with --quiet."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    if quiet:
        return
    seen = set()
    for w in caught:
        line = f"fastem: warning: {w.category.__name__}: {str(w.message).splitlines()[0]}"
        if line not in seen:
            seen.add(line)
            print(line, file=sys.stderr)


def _fit_with_progress(model, X, quiet):
    """``model.fit(X)`` with a progress bar over its EM iterations and
    restarts (online EM: over its mini-batches and epochs)."""
    online = hasattr(model, "batch_size")
    if online:
        outer, per = model.max_iter, -(-X.shape[0] // min(model.batch_size, X.shape[0]))
        what = ("epoch", "batch")
    else:
        outer, per = model.n_init, model.max_iter
        what = ("init", "iteration")
    bar = Progress(outer * per, f"fit k={model.n_components} {model.covariance_type}", quiet)

    def on_iteration(i, j):
        bar.update(i * per + j, f"{what[0]} {i + 1}/{outer} {what[1]} {j}")

    model._progress = on_iteration
    try:
        model.fit(X)
    finally:
        del model._progress
        bar.close()
    return model


# --------------------------------------------------------------------------
# summaries
# --------------------------------------------------------------------------

def _model_summary(model, X):
    from ._stats import bic_aic

    d = model.means_.shape[1]
    summary = {
        "class": type(model).__name__,
        "n_components": int(model.n_components),
        "covariance_type": model.covariance_type,
        "n_samples": int(X.shape[0]) if X is not None else None,
        "n_features": int(d),
        "n_iter": int(getattr(model, "n_iter_", 0)),
        "converged": bool(getattr(model, "converged_", False)),
        "weights": model.weights_.tolist(),
        "means": model.means_.tolist(),
    }
    if X is not None:  # one pass over X for all three
        total, weight = model._total_loglik(X, None)
        bic, aic = bic_aic(total, weight, model._n_parameters())
        summary.update(log_likelihood=float(total), mean_log_likelihood=float(total / weight),
                       bic=float(bic), aic=float(aic))
    return summary


def _print_summary(s, names):
    print(f"{s['class']}: k={s['n_components']}, covariance_type={s['covariance_type']!r}, "
          f"{s['n_samples']} rows x {s['n_features']} features")
    print(f"  iterations {s['n_iter']}, converged {s['converged']}")
    if "log_likelihood" in s:
        print(f"  log-likelihood {s['log_likelihood']:.6g} (mean {s['mean_log_likelihood']:.6g}"
              f" per row), BIC {s['bic']:.6g}, AIC {s['aic']:.6g}")
    cols = names or [f"x{j}" for j in range(s["n_features"])]
    for j, (w, m) in enumerate(zip(s["weights"], s["means"])):
        mean = ", ".join(f"{c}={v:.4g}" for c, v in zip(cols, m))
        print(f"  component {j}: weight {w:.4f}, mean ({mean})")


def _emit_json(obj):
    json.dump(obj, sys.stdout, indent=1, allow_nan=False,
              default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
    sys.stdout.write("\n")


def _plot(kind, path, *args, **kwargs):
    if not path:
        return
    try:
        import matplotlib

        matplotlib.use("Agg")
        from . import plot
    except ImportError:
        raise CliError('--plot needs matplotlib: pip install "fastem[plot]"') from None
    ax = getattr(plot, kind)(*args, **kwargs)
    ax.figure.savefig(path, dpi=120, bbox_inches="tight")


def _load_model(path):
    from ._io import load

    if not os.path.exists(path):
        raise CliError(f"model file {path!r} not found")
    return load(path)


def _check_features(model, X, path):
    """Same number of columns as at fit (names are not checked: the columns
    are taken by position, as picked with --columns)."""
    warnings.filterwarnings("ignore", message="X does not have valid feature names")
    d = model.means_.shape[1]
    if X.shape[1] != d:
        raise CliError(f"{path} has {X.shape[1]} columns, but the model was fitted on {d} "
                       "features; pick the same columns with --columns")


# --------------------------------------------------------------------------
# commands
# --------------------------------------------------------------------------

def _cmd_fit(args):
    from .mixture import GaussianMixture
    from .online import MiniBatchGaussianMixture

    X, names = read_data(args.data, args.columns)
    common = {"covariance_type": args.covariance, "max_iter": args.max_iter,
              "reg_covar": args.reg_covar, "random_state": args.seed}
    if args.tol is not None:
        common["tol"] = args.tol
    if args.online:
        if args.n_init != 1:
            raise CliError("--online runs one initialisation; drop --n-init")
        model = MiniBatchGaussianMixture(args.k, batch_size=args.batch_size, **common)
    else:
        model = GaussianMixture(args.k, n_init=args.n_init, **common)
    with _collected_warnings(args.quiet):
        _fit_with_progress(model, X, args.quiet)
    summary = _model_summary(model, X)
    _plot("components", args.plot, model, X)
    if names:  # saved with the model; the rows above were given as an array
        model.feature_names_in_ = np.asarray(names, dtype=object)
    if args.output:
        model.save(args.output)
        summary["model"] = args.output
    if args.json:
        _emit_json(summary)
    else:
        _print_summary(summary, names)
        if args.output:
            print(f"  saved to {args.output}")
    return 0


def _cmd_predict(args):
    model = _load_model(args.model)
    X, _ = read_data(args.data, args.columns)
    _check_features(model, X, args.data)
    if args.proba:
        P = model.predict_proba(X)
        header = [f"p{j}" for j in range(P.shape[1])]
        if args.json:
            _emit_json({"proba": P})
        else:
            write_table(args.output, header, list(P.T))
    else:
        labels = model.predict(X)
        if args.json:
            _emit_json({"labels": labels})
        else:
            write_table(args.output, ["label"], [labels])
    return 0


def _cmd_score(args):
    model = _load_model(args.model)
    X, _ = read_data(args.data, args.columns)
    _check_features(model, X, args.data)
    logp = model.score_samples(X)
    out = {"mean_log_density": float(np.mean(logp))}
    columns, header = [logp], ["log_density"]
    if args.anomalies is not None:
        threshold = float(np.quantile(logp, args.anomalies))
        flags = (logp <= threshold).astype(np.int64)
        columns.append(flags)
        header.append("anomaly")
        out.update(threshold=threshold, n_anomalies=int(flags.sum()),
                   anomalies=np.flatnonzero(flags))
        if not args.quiet and not args.json:
            print(f"fastem score: {int(flags.sum())} of {len(logp)} rows at or below the "
                  f"{args.anomalies:g} quantile of the log-density ({threshold:.6g})",
                  file=sys.stderr)
    _plot("log_density", args.plot, model, X, anomaly_quantile=args.anomalies)
    if args.json:
        out["log_density"] = logp
        _emit_json(out)
    else:
        write_table(args.output, header, columns)
    return 0


def _parse_k(spec):
    """'3', '1-10' or '2,4,8' as a list of ints."""
    ks = []
    try:
        for part in spec.split(","):
            part = part.strip()
            if "-" in part:
                lo, hi = (int(v) for v in part.split("-", 1))
                if hi < lo:
                    raise ValueError
                ks.extend(range(lo, hi + 1))
            elif part:
                ks.append(int(part))
    except ValueError:
        raise CliError(f"-k expects a number, a range like 1-10 or a list like 2,4,8, "
                       f"got {spec!r}") from None
    if not ks or min(ks) < 1:
        raise CliError(f"-k expects numbers of components >= 1, got {spec!r}")
    return ks


def _parse_types(spec):
    """Comma-separated covariance types (select() checks them)."""
    return [t.strip() for t in spec.split(",") if t.strip()]


def _cmd_select(args):
    from .select import select

    X, names = read_data(args.data, args.columns)
    ks, types = _parse_k(args.k), _parse_types(args.covariance)
    bar = Progress(len(ks) * len(types), "select", args.quiet)
    with _collected_warnings(args.quiet):
        try:
            result = select(X, ks, types, criterion=args.criterion, n_init=args.n_init,
                            random_state=args.seed, max_iter=args.max_iter,
                            progress=lambda done, total, k, ct: bar.update(
                                done, f"k={k} {ct}"))
        finally:
            bar.close()
    best = result.best_estimator_
    if names:
        best.feature_names_in_ = np.asarray(names, dtype=object)
    if args.output:
        best.save(args.output)
    _plot("selection", args.plot, result)
    rows = [{c: (None if isinstance(v, float) and math.isnan(v) else v)
             for c, v in zip(result.records.dtype.names, r.tolist())}
            for r in result.records]
    if args.json:
        _emit_json({"criterion": args.criterion, "best": result.best_params_,
                    "best_score": float(result.best_score_), "table": rows,
                    "model": args.output})
        return 0
    print(_selection_text(result))
    print(f"\nBest by {args.criterion.upper()}: k={result.best_params_['n_components']}, "
          f"covariance_type={result.best_params_['covariance_type']!r} "
          f"({args.criterion.upper()} {result.best_score_:.6g})")
    if args.output:
        print(f"saved to {args.output}")
    return 0


def _selection_text(result):
    r = result.records
    lines = [f"{'k':>3} {'covariance':<10} {'BIC':>14} {'AIC':>14} {'ICL':>14} "
             f"{'params':>6} {'iter':>5} conv"]
    for row in r:
        lines.append(f"{row['n_components']:>3} {row['covariance_type']:<10} "
                     f"{row['bic']:>14.6g} {row['aic']:>14.6g} {row['icl']:>14.6g} "
                     f"{row['n_parameters']:>6} {row['n_iter']:>5} "
                     f"{'yes' if row['converged'] else 'no'}"
                     + (f"  ({row['error'][:60]})" if row["error"] else ""))
    return "\n".join(lines)


def _cmd_sample(args):
    if args.n < 1:
        raise CliError(f"-n expects a number of rows >= 1, got {args.n}")
    model = _load_model(args.model)
    if args.seed is not None:
        model.random_state = args.seed
    X, y = model.sample(args.n)
    names = getattr(model, "feature_names_in_", None)
    header = [str(c) for c in names] if names is not None else \
        [f"x{j}" for j in range(X.shape[1])]
    if args.json:
        _emit_json({"columns": header, "X": X, "component": y})
    else:
        write_table(args.output, header + ["component"], list(X.T) + [y])
    return 0


def _cmd_demo(args):
    from sklearn.exceptions import ConvergenceWarning

    from .bench import em_iteration_seconds
    from .datasets import load_faithful, make_mixture
    from .select import select

    say = (lambda *a, **k: None) if args.json else print
    X, columns = load_faithful()
    say(f"Old Faithful: {X.shape[0]} eruptions, columns {columns}")
    say("Model selection by BIC (scikit-learn's sign, lower is better; mclust reports "
        "-BIC), k = 1..6, n_init=10, random_state=0\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = select(X, range(1, 7), n_init=10, random_state=0)
    say(result)
    best = result.best_estimator_
    k, ct = result.best_params_["n_components"], result.best_params_["covariance_type"]
    out = {"selection": {"best": result.best_params_, "bic": float(result.best_score_),
                         "weights": best.weights_, "means": best.means_}}
    say(f"\nChosen by BIC: k={k}, covariance_type={ct!r} (BIC {result.best_score_:.2f})")
    for j in range(k):
        mean = ", ".join(f"{c}={m:.3f}" for c, m in zip(columns, best.means_[j]))
        say(f"  component {j}: weight {best.weights_[j]:.3f}, mean ({mean})")
        cov = best.covariances_[j] if ct == "full" else best.covariances_
        if ct in ("full", "tied") and (ct == "full" or j == 0):
            say("    covariance " + np.array2string(np.asarray(cov), precision=3,
                                                     prefix="    covariance "))
    if not args.no_speed:
        n, d, kk = args.n, args.d, args.k
        say(f"\nSpeed: {n:,}-row synthetic mixture, d={d}, k={kk}, full covariance, "
            "float64, identical starting parameters (time per iteration: difference of a "
            "long and a short fit)")
        Xs, _, _ = make_mixture(n, d, kk, random_state=1)
        res = em_iteration_seconds(Xs, kk, "full", repeats=1, fastem_iters=(2, 2 + args.iters),
                                   sklearn_iters=(1, 1 + args.sk_iters))
        import numba

        fe, sk = res["fastem_est"].means_, res["sklearn_est"].means_
        agreement = float(np.abs(fe - sk).max() / np.abs(sk).max())
        say(f"  fastem       {res['fastem'] * 1e3:10.1f} ms per EM iteration "
            f"({numba.get_num_threads()} threads)")
        say(f"  scikit-learn {res['sklearn'] * 1e3:10.1f} ms per EM iteration "
            f"(BLAS threads {res['blas_threads']})")
        say(f"  ratio        {res['sklearn'] / res['fastem']:10.1f}x")
        say(f"  means after {1 + args.sk_iters} iterations agree with scikit-learn's to "
            f"{agreement:.1e} (relative)")
        out["speed"] = {"n": n, "d": d, "k": kk, "fastem_seconds": res["fastem"],
                        "sklearn_seconds": res["sklearn"],
                        "ratio": res["sklearn"] / res["fastem"],
                        "threads": numba.get_num_threads(), "agreement": agreement}
    if args.json:
        _emit_json(out)
    return 0


def _cmd_bench(args):
    from .bench import run_from_args

    if not args.json:
        return run_from_args(args)
    records = []
    with contextlib.redirect_stdout(io.StringIO()):
        run_from_args(args, records=records)
    _emit_json({"em_iteration": records})
    return 0


# --------------------------------------------------------------------------
# the parser
# --------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (exit code 2)."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


_EXAMPLES = {
    "fit": """examples:
  fastem fit data.csv -k 3 --covariance full -o model.fem
  fastem fit data.npy -k 5 --n-init 10 --seed 0 --json
  fastem fit data.csv -k 3 --columns height,weight --plot components.png
  fastem fit big.npy -k 8 --online --batch-size 4096 -o model.fem""",
    "predict": """examples:
  fastem predict model.fem data.csv                  labels on stdout, one per row
  fastem predict model.fem data.csv --proba -o p.csv posterior probabilities""",
    "score": """examples:
  fastem score model.fem data.csv -o logp.csv
  fastem score model.fem data.csv --anomalies 0.01 --plot scores.png""",
    "select": """examples:
  fastem select data.csv -k 1-10
  fastem select data.csv -k 2,4,8 --covariance full,diag --n-init 5 -o best.fem""",
    "sample": """examples:
  fastem sample model.fem -n 1000 --seed 0 -o synthetic.csv""",
    "demo": """examples:
  fastem demo
  fastem demo --no-speed --json""",
    "bench": """examples:
  fastem bench
  fastem bench --grid '20000,2,3;5000,8,4' --repeats 3
  fastem bench --full                                 writes docs/benchmarks.md""",
}


def _add_common(p):
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    p.add_argument("--quiet", "-q", action="store_true",
                   help="no progress bar, no warnings on stderr")


def _add_data(p):
    p.add_argument("data", help="CSV or TSV (header detected), .npy, or Parquet (pyarrow)")
    p.add_argument("--columns", default=None,
                   help="comma-separated column names or 0-based indices (default: all)")


def _add_model(p):
    p.add_argument("model", help="a model saved by 'fastem fit -o' or model.save()")


def _add_output(p, what="write CSV here instead of stdout"):
    p.add_argument("-o", "--output", default=None, help=what)


def _add_fit_options(p):
    p.add_argument("--max-iter", type=int, default=100, help="EM iterations (default 100)")
    p.add_argument("--n-init", type=int, default=1, help="initialisations (default 1)")
    p.add_argument("--seed", type=int, default=None, help="random seed")


def build_parser():
    parser = _Parser(
        prog="fastem",
        description="Gaussian mixtures by EM, fast. 'fastem demo' runs the main job; "
        "'fastem COMMAND --help' shows a command's options and examples.",
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def command(name, help_, description):
        return sub.add_parser(name, help=help_, description=description,
                              epilog=_EXAMPLES[name],
                              formatter_class=argparse.RawDescriptionHelpFormatter)

    p = command("fit", "fit a Gaussian mixture to a data file",
                "Fit a Gaussian mixture by EM, print a summary (iterations, convergence, "
                "log-likelihood, BIC, weights, means) and optionally save the model.")
    _add_data(p)
    p.add_argument("-k", "--n-components", dest="k", type=int, required=True,
                   help="number of components")
    p.add_argument("--covariance", choices=COVARIANCE_TYPES, default="full",
                   help="covariance type (default full)")
    _add_fit_options(p)
    p.add_argument("--tol", type=float, default=None,
                   help="convergence tolerance (default: the estimator's, 1e-3 for batch EM)")
    p.add_argument("--online", action="store_true",
                   help="online (mini-batch) EM: MiniBatchGaussianMixture; --max-iter "
                   "counts epochs")
    p.add_argument("--batch-size", type=int, default=1024,
                   help="rows per mini-batch with --online (default 1024)")
    p.add_argument("--reg-covar", type=float, default=1e-6, help="added to the diagonal")
    _add_output(p, "save the model (e.g. model.fem)")
    p.add_argument("--plot", default=None, help="draw the components to this PNG")
    _add_common(p)
    p.set_defaults(func=_cmd_fit)

    p = command("predict", "label rows with a saved model",
                "Print (or write) the most probable component of each row, or with "
                "--proba the posterior probabilities.")
    _add_model(p)
    _add_data(p)
    p.add_argument("--proba", action="store_true", help="posterior probabilities")
    _add_output(p)
    _add_common(p)
    p.set_defaults(func=_cmd_predict)

    p = command("score", "per-row log-density with a saved model; flag anomalies",
                "Print (or write) the log-density of each row; --anomalies Q flags the "
                "rows at or below the Q quantile.")
    _add_model(p)
    _add_data(p)
    p.add_argument("--anomalies", type=_quantile, default=None, metavar="Q",
                   help="flag the lowest Q quantile (0 < Q < 1), e.g. 0.01")
    _add_output(p)
    p.add_argument("--plot", default=None, help="draw the log-density histogram to this PNG")
    _add_common(p)
    p.set_defaults(func=_cmd_score)

    p = command("select", "choose k and the covariance type by BIC/AIC/ICL",
                "Fit every (k, covariance type) and print the BIC/AIC/ICL table and the "
                "best model.")
    _add_data(p)
    p.add_argument("-k", "--n-components", dest="k", default="1-10",
                   help="numbers of components: 3, 1-10 or 2,4,8 (default 1-10)")
    p.add_argument("--covariance", default=",".join(COVARIANCE_TYPES),
                   help="comma-separated covariance types (default all four)")
    p.add_argument("--criterion", choices=("bic", "aic", "icl"), default="bic")
    _add_fit_options(p)
    _add_output(p, "save the best model here")
    p.add_argument("--plot", default=None, help="draw the criteria against k to this PNG")
    _add_common(p)
    p.set_defaults(func=_cmd_select)

    p = command("sample", "draw rows from a saved model",
                "Draw N rows from the mixture; CSV with the features and the component.")
    _add_model(p)
    p.add_argument("-n", type=int, required=True, help="number of rows")
    p.add_argument("--seed", type=int, default=None, help="random seed")
    _add_output(p)
    _add_common(p)
    p.set_defaults(func=_cmd_sample)

    p = command("demo", "select a model for Old Faithful, then time a 1,000,000-row fit "
                "against scikit-learn",
                "Fit mixtures to the Old Faithful data shipped with fastem, print a BIC "
                "table and the chosen model, then time EM iterations on a large synthetic "
                "mixture against scikit-learn from identical parameters.")
    p.add_argument("--n", type=int, default=1_000_000, help="rows of the synthetic data")
    p.add_argument("--d", type=int, default=8, help="features of the synthetic data")
    p.add_argument("--k", type=int, default=8, help="components of the synthetic data")
    p.add_argument("--iters", type=int, default=10, help="fastem EM iterations timed")
    p.add_argument("--sk-iters", type=int, default=2, help="scikit-learn EM iterations timed")
    p.add_argument("--no-speed", action="store_true", help="skip the timing part")
    _add_common(p)
    p.set_defaults(func=_cmd_demo)

    p = command("bench", "time EM iterations against scikit-learn side by side",
                "Time EM iterations of fastem and scikit-learn from identical parameters "
                "(medians of interleaved repeats); --full runs the whole grid, float32, "
                "memory, cold start and thread scaling and writes docs/benchmarks.md.")
    from .bench import add_arguments

    add_arguments(p)
    _add_common(p)
    p.set_defaults(func=_cmd_bench)
    return parser


def _quantile(text):
    try:
        q = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {text!r}") \
            from None
    if not 0.0 < q < 1.0:
        raise argparse.ArgumentTypeError(f"expected a number between 0 and 1, got {q}")
    return q


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        with warnings.catch_warnings():  # filters a command sets end with it
            return args.func(args)
    except CliError as exc:
        print(f"fastem {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (ValueError, OSError, ImportError, TypeError) as exc:
        # the library's own messages say what was expected and what to do
        if os.environ.get("FASTEM_DEBUG"):
            raise
        msg = " ".join(str(exc).split())
        print(f"fastem {args.command}: error: {msg}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"fastem {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # never a traceback, unless asked for
        if os.environ.get("FASTEM_DEBUG"):
            raise
        msg = " ".join(str(exc).split())
        print(f"fastem {args.command}: unexpected error ({type(exc).__name__}): {msg}; "
              "run with FASTEM_DEBUG=1 for the traceback", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
