"""The ``fastem`` command line.

Commands: ``fit``, ``predict``, ``score``, ``impute``, ``select``,
``sample``, ``demo`` and ``bench`` (``fastem COMMAND --help`` shows each
one's options and examples).  ``fit --missing em`` reads empty cells (and
Parquet nulls) as missing values and fits on the observed entries;
``predict`` and ``score`` read them so for a model fitted that way, and
``impute`` fills them in.  ``fit`` and ``select`` take ``--family`` (any family of
:mod:`fastem._registry`; Gaussian by default); ``predict``, ``score`` and
``sample`` work on a saved model of any family.  Every command takes
``--json`` (machine-readable output on stdout) and ``--quiet``; long work
shows a progress bar on stderr when it is a terminal.  Every failure that bad input or usage can cause (a bad file,
cell, column, option, model file, output path or ``FASTEM_*`` variable)
ends with a one-line error on stderr and exit code 2, never a traceback
(``FASTEM_DEBUG=1`` shows the traceback of an unexpected error, exit 1).
Data files are read by :mod:`fastem._datafile`.
"""

import argparse
import contextlib
import csv
import io
import json
import math
import os
import queue
import sys
import tempfile
import threading
import time
import warnings

import numpy as np

from . import _config
from ._datafile import (
    HEADER_CHOICES,
    DataFileError,
    _pyarrow,
    _Shape,
    open_data,
    read_data,
    read_table,
    to_memmap,
)
from ._registry import FAMILIES, family_named, family_of, get_family

__all__ = ["build_parser", "main", "read_data", "write_table"]

#: Exit codes: bad input or usage, an unexpected failure, and stdout closed
#: by its reader (128 + SIGPIPE, what a shell reports for other programs).
EXIT_USAGE = 2
EXIT_FAILURE = 1
EXIT_BROKEN_PIPE = 141

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
MISSING_CHOICES = ("raise", "em")


class CliError(Exception):
    """A failure to report in one line (bad file, bad column, bad option)."""


# --------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------

def _check_output(path, option):
    """Refuse, before any work, an output path that cannot be written."""
    if path is None:
        return
    folder = os.path.dirname(os.path.abspath(path))
    if not path.strip():
        problem = "the name is empty; give a file name"
    elif os.path.isdir(path):
        problem = "it is a directory; give a file name"
    elif not os.path.isdir(folder):
        problem = f"the directory {folder!r} does not exist; create it first"
    elif not os.access(folder, os.W_OK):
        problem = f"the directory {folder!r} is not writable"
    else:
        return
    raise CliError(f"cannot write {option} {path!r}: {problem}")


def write_table(path, header, columns):
    """Write columns (1-D arrays) as CSV to ``path`` (or stdout if None),
    ``FASTEM_CHUNK_BYTES`` worth of rows at a time; ``header`` None writes
    no header row."""
    n = len(columns[0]) if columns else 0
    step = max(1, _config.CHUNK_BYTES // (8 * max(1, len(columns))))
    with _CsvOut(path, header) as out:
        for i in range(0, n, step):
            out.write([c[i:i + step] for c in columns])


class _CsvOut:
    """CSV written a chunk of rows at a time to ``path`` (stdout if None):
    numbers through pyarrow's writer when it is installed (Python's csv
    module otherwise, and for text columns).  A file left unfinished by an
    error is removed."""

    def __init__(self, path, header):
        self.path = path
        self.fh = open(path, "wb") if path is not None else None  # noqa: SIM115
        if header is not None:  # None: no header row
            head = io.StringIO()
            csv.writer(head, lineterminator="\n").writerow(header)
            self._put(head.getvalue().encode())

    def _put(self, data):
        if self.fh is not None:
            self.fh.write(data)
            return
        buffer = getattr(sys.stdout, "buffer", None)
        if buffer is None:  # a text stream (io.StringIO)
            sys.stdout.write(data.decode())
        else:
            sys.stdout.flush()
            buffer.write(data)
            buffer.flush()

    def write(self, columns):
        """Append rows: one 1-D array per column."""
        arrow = _pyarrow()
        if arrow is not None and all(np.asarray(c).dtype.kind in "biuf" for c in columns):
            pa, pc = arrow
            table = pa.table({f"c{j}": np.asarray(c) for j, c in enumerate(columns)})
            text = io.BytesIO()
            pc.write_csv(table, text, write_options=pc.WriteOptions(include_header=False))
            self._put(text.getvalue())
            return
        text = io.StringIO()
        n = len(columns[0]) if columns else 0
        csv.writer(text, lineterminator="\n").writerows(
            [_fmt(c[i]) for c in columns] for i in range(n))
        self._put(text.getvalue().encode())

    def __enter__(self):
        return self

    def __exit__(self, kind, value, tb):
        if self.fh is not None:
            self.fh.close()
            if kind is not None:
                with contextlib.suppress(OSError):
                    os.remove(self.path)


def _fmt(v):
    if isinstance(v, (np.integer, int)):
        return str(int(v))
    if isinstance(v, str):  # a category
        return v
    return repr(float(v))


def _emit_json(obj):
    """Print ``obj`` as JSON in one write; nothing at all if it cannot be
    encoded."""
    try:
        text = json.dumps(obj, indent=1, allow_nan=False,
                          default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
    except ValueError:
        raise CliError("the result holds NaN or infinite values, which JSON cannot "
                       "represent; drop --json to write CSV (nan, inf)") from None
    sys.stdout.write(text + "\n")


def _note(args, message):
    """A line on stderr for the person at the terminal (not with --quiet or
    --json)."""
    if not (args.quiet or args.json):
        print(f"fastem {args.command}: {message}", file=sys.stderr)


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
    kind = getattr(model, "covariance_type", None) or family_of(model).name
    bar = Progress(outer * per, f"fit k={model.n_components} {kind}", quiet)

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

    family = family_of(model)
    summary = {
        "class": type(model).__name__,
        "family": family.name,
        "n_components": int(model.n_components),
    }
    if family.covariance:
        summary["covariance_type"] = model.covariance_type
    summary.update({
        "n_samples": int(X.shape[0]) if X is not None else None,
        "n_features": int(model.n_features_in_),
        "n_iter": int(getattr(model, "n_iter_", 0)),
        "converged": bool(getattr(model, "converged_", False)),
        "weights": model.weights_.tolist(),
    })
    for param, _, _ in family.options:
        summary[param] = np.asarray(model.get_params()[param]).tolist()
    for attr in family.parameters:  # means, probabilities, rates
        value = getattr(model, attr)
        summary[attr.rstrip("_")] = ([np.asarray(v).tolist() for v in value]
                                     if isinstance(value, list) else value.tolist())
    if getattr(model, "categories_", None) is not None:
        summary["categories"] = [c.tolist() for c in model.categories_]
    if hasattr(model, "weight_concentration_"):  # variational: the lower bound, no BIC
        summary["lower_bound"] = float(model.lower_bound_)
        summary["n_active"] = int(np.sum(model.weights_ >= _ACTIVE_WEIGHT))
    elif X is not None:  # one pass over X for all three
        total, weight = model._total_loglik(X, None)
        bic, aic = bic_aic(total, weight, model._n_parameters())
        summary.update(log_likelihood=float(total), mean_log_likelihood=float(total / weight),
                       bic=float(bic), aic=float(aic))
    return summary


#: A variational fit's components of at least this weight are reported as
#: the ones the data use (the others are switched off by the prior).
_ACTIVE_WEIGHT = 0.01


def _summary_text(s, names, data_line):
    if "covariance_type" in s:
        kind = f"covariance_type={s['covariance_type']!r}"
    else:
        kind = ", ".join([f"family {s['family']}"] + [
            f"{p}={s[p]}" for p, _, _ in FAMILIES[s["family"]].options])
    lines = [(f"{s['class']}: k={s['n_components']}, {kind}, "
             f"{s['n_samples']} rows x {s['n_features']} features"),
             f"  data: {data_line}",
             f"  iterations {s['n_iter']}, converged {s['converged']}",
             (f"  lower bound {s['lower_bound']:.6g}; {s['n_active']} of {s['n_components']} "
              f"components weigh {_ACTIVE_WEIGHT} or more" if "lower_bound" in s else
              f"  log-likelihood {s['log_likelihood']:.6g} (mean {s['mean_log_likelihood']:.6g}"
              f" per row), BIC {s['bic']:.6g}, AIC {s['aic']:.6g}")]
    if s.get("missing") == "em":
        cells = s["n_samples"] * s["n_features"]
        lines.insert(2, f"  missing values: {s['n_missing_values']} of {cells} cells "
                     f"({100 * s['n_missing_values'] / max(cells, 1):.3g}%), EM on the observed "
                     "entries (--missing em)")
    cols = names or [f"x{j}" for j in range(s["n_features"])]
    if "means" in s:
        for j, (w, m) in enumerate(zip(s["weights"], s["means"])):
            mean = ", ".join(f"{c}={v:.4g}" for c, v in zip(cols, m))
            lines.append(f"  component {j}: weight {w:.4f}, mean ({mean})")
    for attr in FAMILIES[s["family"]].parameters:
        key = attr.rstrip("_")
        if key == "means":
            continue
        values = s[key]
        for j, w in enumerate(s["weights"]):
            if "categories" in s or (values and isinstance(values[0][0], list)):
                lines.append(f"  component {j}: weight {w:.4f}, {key}:")
                levels = s.get("categories") or [range(len(b[0])) for b in values]
                for c, block, cats in zip(cols, values, levels):
                    cells = ", ".join(f"{v}={p:.4g}" for v, p in zip(cats, block[j]))
                    lines.append(f"    {c}: {cells}")
            else:
                cells = ", ".join(f"{c}={v:.4g}" for c, v in zip(cols, values[j]))
                lines.append(f"  component {j}: weight {w:.4f}, {key} ({cells})")
    if "model" in s:
        lines.append(f"  saved to {s['model']}")
    return "\n".join(lines)


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

    if not os.path.isfile(path):
        problem = "is a directory" if os.path.isdir(path) else "not found"
        raise CliError(f"model file {path!r} {problem}; expected a file written by "
                       "'fastem fit -o' or model.save()")
    model = load(path)
    _refuse_hmm(path, type(model).__name__)
    return model


def _refuse_hmm(path, class_name):
    """A CliError for a hidden Markov model's file: the commands apply
    mixtures to rows, not models of sequences."""
    from ._registry import HMMS

    if any(h.spec.rpartition(":")[2] == class_name for h in HMMS.values()):
        raise CliError(f"model file {path!r} holds a hidden Markov model ({class_name}); the "
                       "command line applies mixture models. Use it from Python: "
                       "model = fastem.load(path); model.predict(X, lengths)")


class _Meanwhile:
    """``fn(*args)`` run on a helper thread while the command reads its data
    file: the work that imports the estimators (scikit-learn, SciPy and
    Numba, about a second) then overlaps pyarrow's parsing, which runs on
    threads of its own.  pyarrow is imported first, on this thread, so that
    the two threads never import one module at once (a module imported by
    two threads together can be seen half-initialised).  With ``at_once``
    (a reader that imports pandas, which scikit-learn imports too) ``fn``
    runs here and now, and its error is raised at once."""

    def __init__(self, fn, *args, at_once=False):
        self._thread = self._error = None
        if at_once:
            self._value = fn(*args)
            return
        if _pyarrow() is not None:
            with contextlib.suppress(ImportError):
                import pyarrow.parquet  # noqa: F401
        self._thread = threading.Thread(target=self._run, args=(fn, args), daemon=True,
                                        name="fastem-setup")
        self._thread.start()

    def _run(self, fn, args):
        try:
            self._value = fn(*args)
        except BaseException as exc:  # noqa: BLE001  (raised by result(), on the main thread)
            self._error = exc

    def result(self):
        if self._thread is not None:
            self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value

    def then_read(self, read, *args):
        """``(fn's value, read(*args))``; fn's error is raised before
        read's, the order in which one after the other would meet them."""
        try:
            data = read(*args)
        except BaseException:
            self.result()
            raise
        return self.result(), data


class _Ahead:
    """The items of ``items`` (chunks of a streamed file), produced on a
    helper thread up to ``depth`` ahead of their use: the next chunk is
    parsed while this one is predicted and written.  An error is raised
    where its item would have been; :meth:`close` stops the helper."""

    _END = object()

    def __init__(self, items, depth=2):
        self._queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._fill, args=(items,), daemon=True,
                                        name="fastem-read")
        self._thread.start()

    def _put(self, item):
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _fill(self, items):
        try:
            for item in items:
                if not self._put((True, item)):
                    return
            self._put((True, self._END))
        except BaseException as exc:  # noqa: BLE001  (raised where its item would be)
            self._put((False, exc))

    def __iter__(self):
        while True:
            ok, item = self._queue.get()
            if not ok:
                raise item
            if item is self._END:
                return
            yield item

    def close(self):
        self._stop.set()
        self._thread.join()


def _read(args, family=None, missing=False, hint=None):
    """The command's data file, as :class:`fastem._datafile.Data`: numbers,
    or for a family that codes categories itself (``Family.table``) a
    DataFrame of text and integer columns.  ``missing``: empty cells and
    nulls are NaN; else an error about one ends with ``hint``."""
    if family is not None and family.table:
        return read_table(args.data, args.columns, args.header, missing, hint)
    return read_data(args.data, args.columns, args.header, missing, hint)


#: fit reads a data file of numbers whole if it is no larger than this many
#: bytes (None: a quarter of the physical memory), else parses it chunk by
#: chunk into a temporary memory-mapped copy and fits that out of core.
FIT_IN_MEMORY_BYTES = None


def _fit_in_memory_bytes():
    if FIT_IN_MEMORY_BYTES is not None:
        return FIT_IN_MEMORY_BYTES
    memory = _physical_memory()
    return memory // 4 if memory else 2**31


def _stream(args, family, missing=False, hint=None):
    """A :class:`fastem._datafile.DataStream` over the command's data file
    if it is a file of numbers larger than ``FASTEM_CHUNK_BYTES`` (not a
    table of categories, not ``.npy``, which is memory-mapped as it is);
    else None (read it whole with :func:`_read`)."""
    if family is not None and family.table:
        return None
    stream = open_data(args.data, args.columns, args.header, missing, hint)
    return stream if stream.kind != "npy" and stream.large else None


def _family(args):
    """The ``--family`` of ``fit``/``select`` and the estimator parameters
    its options give; options of other families are usage errors."""
    try:
        family = get_family(args.family)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    kwargs = {}
    if not family.covariance:
        for flag, given in (("--covariance", args.covariance),
                            ("--reg-covar", getattr(args, "reg_covar", None))):
            if given is not None:
                raise CliError(f"{flag} is for --family gaussian only; a {family.name} "
                               "mixture has no covariance: drop it")
    for other in FAMILIES.values():
        for param, flag, _ in other.options:
            value = getattr(args, param, None)
            if value is None:
                continue
            if other is not family and param not in (p for p, _, _ in family.options):
                raise CliError(f"{flag} is for --family {other.name} only, not "
                               f"{family.name}: drop it")
            kwargs[param] = value
    return family, kwargs


def _check_features(model, X, path):
    """Same number of columns as at fit (names are not checked: the columns
    are taken by position, as picked with --columns).  Returns X, a table's
    columns named as at fit."""
    warnings.filterwarnings("ignore", message="X does not have valid feature names")
    d = model.n_features_in_
    if X.shape[1] != d:
        raise CliError(f"{path} has {X.shape[1]} columns, but the model was fitted on {d} "
                       "features; pick the same columns with --columns")
    if hasattr(X, "columns"):  # by position: the names the model was fitted with
        names = getattr(model, "feature_names_in_", None)
        X = X.set_axis(list(names) if names is not None else list(range(d)), axis=1)
    return X


def _check_k(k, n_rows, path):
    """A mixture needs at least one row per component: refuse, before any
    work, a k larger than the number of rows read."""
    if k > n_rows:
        raise CliError(f"-k asks for {k:,} components, but only {n_rows:,} data rows were "
                       f"read from {path}; a mixture needs at least one row per component: "
                       f"use k <= {n_rows:,}")


def _physical_memory():
    """Bytes of physical memory, or None where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        return None


# --------------------------------------------------------------------------
# commands
# --------------------------------------------------------------------------

def _cmd_fit(args):
    with contextlib.ExitStack() as cleanup:
        return _fit(args, cleanup)


def _fit_setup(args):
    """The family, its estimator's parameters and class (imported here)."""
    family, common = _family(args)
    if args.online and args.n_init != 1:
        raise CliError("--online runs one initialisation; drop --n-init")
    if args.bayesian:
        if args.missing == "em":
            raise CliError("--bayesian does not take --missing em yet; fit the variational "
                           "mixture on complete rows")
        found = [c for c in family.variational_classes()
                 if hasattr(c, "partial_fit") == bool(args.online)]
        if not found:
            raise CliError(f"--bayesian is available for --family gaussian only, not "
                           f"--family {family.name}")
        return family, common, found[0]
    try:
        cls = family.estimator_class(online=args.online)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    if args.missing == "em":
        if "missing" not in cls._get_param_names():
            how = f"--family {family.name}" + (" --online" if args.online else "")
            raise CliError(f"--missing em is not available for {how} ({cls.__name__}) yet; "
                           "impute or drop the rows with missing values"
                           + (", or fit without --online" if args.online else ""))
        common["missing"] = "em"
    return family, common, cls


def _fit_data(args, family, cleanup):
    missing = args.missing == "em"
    stream = _stream(args, family, missing)
    if stream is None or os.path.getsize(stream.path) <= _fit_in_memory_bytes():
        return _read(args, family, missing)
    # parsed chunk by chunk into a memory-mapped copy, fitted out of core
    folder = cleanup.enter_context(tempfile.TemporaryDirectory(prefix="fastem-"))
    return stream.data(to_memmap(stream, folder))


def _fit(args, cleanup):
    family = FAMILIES[args.family]
    setup = _Meanwhile(_fit_setup, args, at_once=family.table)
    (family, common, cls), data = setup.then_read(_fit_data, args, family, cleanup)
    X, names = data.X, data.names
    _check_k(args.k, X.shape[0], args.data)
    common.update(max_iter=args.max_iter, random_state=args.seed)
    if family.covariance:
        common.update(covariance_type=args.covariance or "full",
                      reg_covar=1e-6 if args.reg_covar is None else args.reg_covar)
    if args.tol is not None:
        common["tol"] = args.tol
    if args.online:
        model = cls(n_components=args.k, batch_size=args.batch_size, **common)
    else:
        model = cls(n_components=args.k, n_init=args.n_init, **common)
    with _collected_warnings(args.quiet):
        _fit_with_progress(model, X, args.quiet)
    summary = _model_summary(model, X)
    if args.missing == "em":
        summary["missing"] = "em"
        summary["n_missing_values"] = _count_missing(X)
    if family.covariance:
        _plot("components", args.plot, model,
              _complete_rows(X) if args.missing == "em" and args.plot else X)
    else:
        _plot("profiles", args.plot, model, feature_names=names)
    if names and not hasattr(X, "columns"):  # saved with the model (a table sets them)
        model.feature_names_in_ = np.asarray(names, dtype=object)
    if args.output:
        model.save(args.output)
        summary["model"] = args.output
    if args.json:
        _emit_json({**summary, "data": data.to_json(args.data)})
    else:
        print(_summary_text(summary, names, data.describe(args.data)))
    return 0


def _count_missing(X):
    """The number of NaN cells of X (a table: of missing cells), a block of
    rows at a time."""
    if hasattr(X, "isna"):
        return int(X.isna().to_numpy().sum())
    step = max(1, _config.CHUNK_BYTES // (8 * max(1, X.shape[1])))
    return int(sum(np.count_nonzero(np.isnan(X[i:i + step]))
                   for i in range(0, X.shape[0], step)))


def _complete_rows(X):
    """The rows of X without a missing value (what --plot draws)."""
    if hasattr(X, "isna"):
        return X[~X.isna().any(axis=1)]
    return np.asarray(X)[~np.isnan(X).any(axis=1)]


def _missing_em(model):
    """Whether ``model`` was fitted with ``missing='em'``."""
    return getattr(model, "missing", "raise") == "em"


def _model_and_data(args, stream_ok):
    """The command's model and its data: ``(model, stream, data)``
    with a :class:`_Ahead` over the chunks of a file to stream (already
    being parsed) or the data read whole.  The model file is read and
    checked here, the model built on a helper thread (which imports its
    estimator) while the data is read.  Empty cells and nulls are read as
    missing (NaN) for ``impute`` and for a model saved with
    ``missing='em'`` (its saved parameters say so); otherwise one is an
    error that points to ``fit --missing em``."""
    from ._io import decode_model, read_model_file

    if not os.path.isfile(args.model):
        _load_model(args.model)  # says what is wrong with the path
    contents = read_model_file(args.model)
    named = contents[0].get("class") if isinstance(contents[0], dict) else None
    if isinstance(named, str):
        _refuse_hmm(args.model, named)
    family = family_named(named) if isinstance(named, str) else None
    params = contents[0].get("params") if isinstance(contents[0], dict) else None
    missing = args.command == "impute" or (isinstance(params, dict)
                                           and params.get("missing") == "em")
    hint = None if missing else f"{args.command} with a model fitted with --missing em"
    loading = _Meanwhile(decode_model, contents, at_once=family is None or family.table)

    started = []

    def read():
        stream = _stream(args, family, missing, hint) if stream_ok else None
        if stream is None:
            return None, _read(args, family, missing, hint)
        started.append(_Ahead(stream))
        return stream, started[0]

    try:
        model, (stream, data) = loading.then_read(read)
    except BaseException:
        for chunks in started:
            chunks.close()
        raise
    return model, stream, data


def _cmd_predict(args):
    model, stream, data = _model_and_data(args, stream_ok=not args.json)
    if stream is not None:
        _stream_out(args, model, stream, data)
        return 0
    X = _check_features(model, data.X, args.data)
    if args.proba:
        P = model.predict_proba(X)
        header, columns, result = [f"p{j}" for j in range(P.shape[1])], list(P.T), {"proba": P}
    else:
        labels = model.predict(X)
        header, columns, result = ["label"], [labels], {"labels": labels}
    if args.json:
        _emit_json({**result, "data": data.to_json(args.data)})
    else:
        write_table(args.output, header, columns)
    _note(args, data.describe(args.data))
    return 0


def _stream_out(args, model, stream, chunks):
    """predict, or score without --anomalies: one chunk of rows at a time
    in, its results out, so that memory holds a chunk whatever the size of
    the file.  (A bad line is found when its chunk is read: the rows before
    it have been written to stdout by then; an -o file is removed.)"""
    with contextlib.closing(chunks):
        _check_features(model, _Shape((0, stream.n_columns)), args.data)
        if args.command == "score":
            header = ["log_density"]
        elif args.proba:
            header = [f"p{j}" for j in range(model.n_components)]
        else:
            header = ["label"]
        with _CsvOut(args.output, header) as out:
            for X in _rows_checked(model, chunks):
                if args.command == "score":
                    out.write([model.score_samples(X)])
                elif args.proba:
                    out.write(list(model.predict_proba(X).T))
                else:
                    out.write([model.predict(X)])
    _note(args, stream.data().describe(args.data))


def _rows_checked(model, chunks):
    """The chunks of a streamed file, for a model fitted with
    ``missing='em'`` each checked for rows with every value missing: the
    library's error, the rows numbered in the whole file (not the chunk)."""
    if not _missing_em(model):
        yield from chunks
        return
    row0 = 0
    for X in chunks:
        empty = np.flatnonzero(np.isnan(X).all(axis=1))
        if empty.size:
            from ._missing import all_missing_message

            raise CliError(all_missing_message(empty + row0))
        row0 += X.shape[0]
        yield X


def _cmd_impute(args):
    model, stream, data = _model_and_data(args, stream_ok=not args.json)
    if not callable(getattr(type(model), "impute", None)):
        if stream is not None:
            data.close()
        family = family_of(model)
        raise CliError(f"a {family.name} mixture ({type(model).__name__}) cannot impute "
                       "missing values yet; fit a Gaussian mixture (fastem fit --missing em) "
                       "to impute with")
    if stream is not None:
        with contextlib.closing(data):
            _check_features(model, _Shape((0, stream.n_columns)), args.data)
            header = _impute_header(stream)
            n_missing = 0
            with _CsvOut(args.output, header) as out:
                for X in data:
                    n_missing += int(np.count_nonzero(np.isnan(X)))
                    out.write(_table_columns(model.impute(X), model))
        data = stream.data()
    else:
        X = _check_features(model, data.X, args.data)
        n_missing = _count_missing(X)
        filled = model.impute(X)
        if args.json:
            _emit_json({"columns": data.names, "n_missing_values": n_missing,
                        "X": filled.to_numpy() if hasattr(filled, "to_numpy") else filled,
                        "data": data.to_json(args.data)})
        else:
            write_table(args.output, _impute_header(data), _table_columns(filled, model))
    _note(args, f"{data.describe(args.data)}; {n_missing} missing "
          f"value{'' if n_missing == 1 else 's'} filled")
    return 0


def _impute_header(data):
    """The header row of imputed data: the input's (None if it had none)."""
    if data.names is None or (data.kind == "text" and data.header_line is None):
        return None
    return [str(c) for c in data.names]


def _table_columns(X, model=None):
    """The columns of an array or DataFrame, as 1-D arrays; codes of a model
    that codes categories itself (``categories_``) as its categories."""
    if hasattr(X, "iloc"):
        return [X.iloc[:, j].to_numpy() for j in range(X.shape[1])]
    X = np.asarray(X)
    columns = list(X.T)
    categories = getattr(model, "categories_", None)
    if categories is not None and X.dtype.kind in "iuf" and len(categories) == len(columns) \
            and any(np.asarray(c).dtype.kind not in "biuf" for c in categories):
        columns = [np.asarray(c)[np.asarray(v, dtype=np.int64)] if
                   np.asarray(c).dtype.kind not in "biuf" else v
                   for c, v in zip(categories, columns)]
    return columns


def _cmd_score(args):
    model, stream, data = _model_and_data(args, stream_ok=not (args.json or args.plot))
    if stream is not None and args.anomalies is None:
        _stream_out(args, model, stream, data)
        return 0
    if stream is not None:  # --anomalies: the scores of every row, then the quantile
        with contextlib.closing(data):
            _check_features(model, _Shape((0, stream.n_columns)), args.data)
            logp = np.concatenate([model.score_samples(X)
                                   for X in _rows_checked(model, data)])
        data, X = stream.data(), None
    else:
        X = _check_features(model, data.X, args.data)
        logp = model.score_samples(X)
    out = {"mean_log_density": float(np.mean(logp)), "data": data.to_json(args.data)}
    columns, header, notes = [logp], ["log_density"], [data.describe(args.data)]
    if args.anomalies is not None:
        threshold = float(np.quantile(logp, args.anomalies))
        flags = (logp <= threshold).astype(np.int64)
        columns.append(flags)
        header.append("anomaly")
        out.update(threshold=threshold, n_anomalies=int(flags.sum()),
                   anomalies=np.flatnonzero(flags))
        notes.append(f"{int(flags.sum())} of {len(logp)} rows at or below the "
                     f"{args.anomalies:g} quantile of the log-density ({threshold:.6g})")
    _plot("log_density", args.plot, model, X, anomaly_quantile=args.anomalies)
    if args.json:
        _emit_json({**out, "log_density": logp})
    else:
        write_table(args.output, header, columns)
    for note in notes:
        _note(args, note)
    return 0


def _parse_k(spec, n_rows, path):
    """'3', '1-10' or '2,4,8' as a list of ints from 1 to ``n_rows``; the
    bounds are checked before a range is expanded."""
    bounds = []
    try:
        for part in filter(None, (p.strip() for p in spec.split(","))):
            lo, _, hi = part.partition("-")
            bounds.append((int(lo), int(hi or lo)))
        if not bounds or any(hi < lo for lo, hi in bounds):
            raise ValueError
    except ValueError:
        raise CliError(f"-k expects a number, a range like 1-10 or a list like 2,4,8, "
                       f"got {spec!r}") from None
    if min(lo for lo, _ in bounds) < 1:
        raise CliError(f"-k expects numbers of components >= 1, got {spec!r}")
    _check_k(max(hi for _, hi in bounds), n_rows, path)
    return [k for lo, hi in bounds for k in range(lo, hi + 1)]


def _parse_types(spec):
    """Comma-separated covariance types (select() checks them)."""
    return [t.strip() for t in spec.split(",") if t.strip()]


def _cmd_select(args):
    from .select import select

    family, params = _family(args)
    data = _read(args, family, hint="since select does not take missing values yet, fit one k "
                 "at a time with fastem fit --missing em")
    X, names = data.X, data.names
    ks = _parse_k(args.k or f"1-{min(10, X.shape[0])}", X.shape[0], args.data)
    if family.covariance:
        types = _parse_types(args.covariance or ",".join(COVARIANCE_TYPES))
        params["covariance_types"] = types
    else:
        types = [family.name]
    bar = Progress(len(ks) * len(types), "select", args.quiet)
    with _collected_warnings(args.quiet):
        try:
            result = select(X, ks, criterion=args.criterion, n_init=args.n_init,
                            random_state=args.seed, max_iter=args.max_iter,
                            family=family.name,
                            progress=lambda done, total, k, ct: bar.update(
                                done, f"k={k} {ct}"), **params)
        finally:
            bar.close()
    best = result.best_estimator_
    if names and not hasattr(X, "columns"):
        best.feature_names_in_ = np.asarray(names, dtype=object)
    if args.output:
        best.save(args.output)
    _plot("selection", args.plot, result)
    rows = [{c: (None if isinstance(v, float) and math.isnan(v) else v)
             for c, v in zip(result.records.dtype.names, r.tolist())}
            for r in result.records]
    if args.json:
        _emit_json({"family": family.name, "criterion": args.criterion,
                    "best": result.best_params_,
                    "best_score": float(result.best_score_), "table": rows,
                    "model": args.output, "data": data.to_json(args.data)})
        return 0
    crit = args.criterion.upper()
    kind = (f"covariance_type={result.best_params_['covariance_type']!r}"
            if family.covariance else f"family {family.name}")
    print(f"data: {data.describe(args.data)}\n\n{_selection_text(result)}\n\n"
          f"Best by {crit}: k={result.best_params_['n_components']}, {kind} "
          f"({crit} {result.best_score_:.6g})"
          + (f"\nsaved to {args.output}" if args.output else ""))
    return 0


def _selection_text(result):
    r = result.records
    what = "covariance" if result.covariance_types else "family"
    lines = [(f"{'k':>3} {what:<10} {'BIC':>14} {'AIC':>14} {'ICL':>14} "
             f"{'params':>6} {'iter':>5} conv")]
    for row in r:
        lines.append(f"{row['n_components']:>3} {row['covariance_type'] or result.family:<10} "
                     f"{row['bic']:>14.6g} {row['aic']:>14.6g} {row['icl']:>14.6g} "
                     f"{row['n_parameters']:>6} {row['n_iter']:>5} "
                     f"{'yes' if row['converged'] else 'no'}"
                     + (f"  ({row['error'][:60]})" if row["error"] else ""))
    return "\n".join(lines)


def _cmd_sample(args):
    model = _load_model(args.model)
    d = model.n_features_in_
    need, memory = args.n * (d + 1) * 8, _physical_memory()
    if memory is not None and need > memory // 2:
        raise CliError(f"-n {args.n:,} rows of {d} features and their components need "
                       f"{need / 2**30:,.1f} GiB of memory, more than half of this machine's "
                       f"{memory / 2**30:,.1f} GiB; draw fewer rows at a time (runs with "
                       "different --seed values are independent draws)")
    if args.seed is not None:
        model.random_state = args.seed
    X, y = model.sample(args.n)
    if not family_of(model).covariance and X.dtype.kind == "f" and \
            np.array_equal(X, np.floor(X)):
        X = X.astype(np.int64)  # counts and codes as whole numbers
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
  fastem fit big.npy -k 8 --online --batch-size 4096 -o model.fem
  fastem fit answers.csv -k 3 --family bernoulli --plot profiles.png -o lca.fem
  fastem fit scores.csv -k 2 --family binomial --n-trials 10
  fastem fit survey.csv -k 4 --family categorical -o survey.fem
  fastem fit holes.csv -k 3 --missing em -o model.fem  empty cells are missing values""",
    "impute": """examples:
  fastem impute model.fem holes.csv -o filled.csv    each empty cell filled in
  fastem impute model.fem holes.parquet --json

Empty cells (and Parquet nulls, and cells NaN) are read as missing values,
whatever the model was fitted with; each is replaced by its expectation given
the row's observed cells under the mixture (a row with nothing observed gets
the mixture's mean).  Observed cells are written back unchanged, in the same
columns, under the input's header row if it had one.""",
    "predict": """examples:
  fastem predict model.fem data.csv                  labels on stdout, one per row
  fastem predict model.fem data.csv --proba -o p.csv posterior probabilities""",
    "score": """examples:
  fastem score model.fem data.csv -o logp.csv
  fastem score model.fem data.csv --anomalies 0.01 --plot scores.png""",
    "select": """examples:
  fastem select data.csv -k 1-10
  fastem select data.csv -k 2,4,8 --covariance full,diag --n-init 5 -o best.fem
  fastem select counts.csv -k 1-6 --family poisson""",
    "sample": """examples:
  fastem sample model.fem -n 1000 --seed 0 -o synthetic.csv""",
    "demo": """examples:
  fastem demo
  fastem demo --no-speed --json""",
    "bench": """examples:
  fastem bench
  fastem bench --grid '20000,2,3;5000,8,4' --repeats 3
  fastem bench --full                                 writes docs/benchmarks.md
  fastem bench --family poisson --peers none          a discrete family, fastem only""",
}


def _add_common(p):
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    p.add_argument("--quiet", "-q", action="store_true",
                   help="no progress bar, no warnings on stderr")


def _add_data(p):
    p.add_argument("data", help="CSV or TSV (header detected), .npy, or Parquet (pyarrow)")
    p.add_argument("--columns", default=None,
                   help="comma-separated column names or 0-based indices (default: all)")
    p.add_argument("--header", choices=HEADER_CHOICES, default="auto",
                   help="whether the first non-blank line of a CSV/TSV is a header row "
                   "(default auto: yes if none of its cells is a number, no if all are)")


def _add_model(p):
    p.add_argument("model", help="a model saved by 'fastem fit -o' or model.save()")


def _add_output(p, what="write CSV here instead of stdout"):
    p.add_argument("-o", "--output", default=None, help=what)


def _add_family(p):
    """--family and the options of the families that have some (--n-trials)."""
    lines = "; ".join(f"{f.name}: {f.description}" for f in FAMILIES.values())
    p.add_argument("--family", choices=list(FAMILIES), default="gaussian",
                   help=f"the mixture family (default gaussian). {lines}")
    seen = set()
    for family in FAMILIES.values():
        for param, flag, help_ in family.options:
            if flag not in seen:
                seen.add(flag)
                p.add_argument(flag, dest=param, type=_COUNTS, default=None, help=help_)


def _add_fit_options(p):
    p.add_argument("--max-iter", type=_COUNT, default=100, help="EM iterations (default 100)")
    p.add_argument("--n-init", type=_COUNT, default=1, help="initialisations (default 1)")
    _add_seed(p)


def _add_seed(p):
    p.add_argument("--seed", type=_SEED, default=None, help="random seed")


def add_bench_arguments(parser):
    """The options of ``fastem bench`` (here, not in :mod:`fastem.bench`, which
    imports Numba: building the parser stays light)."""
    parser.add_argument("--full", action="store_true", help="run the whole grid and more")
    parser.add_argument("--bayesian", action="store_true",
                        help="time BayesianGaussianMixture's variational iterations against "
                             "scikit-learn's, beside GaussianMixture's EM ratio")
    parser.add_argument("--repeats", type=_COUNT, default=3, help="interleaved repeats (median)")
    parser.add_argument("--out", default=None,
                        help="folder for benchmarks.md and the chart (default with --full: docs)")
    parser.add_argument("--grid", default=None,
                        help="sizes as n,d,k;n,d,k (e.g. '20000,2,3;5000,8,4')")
    parser.add_argument("--family", default=None,
                        choices=("bernoulli", "categorical", "poisson", "multinomial",
                                 "binomial"),
                        help="time a discrete family instead of the Gaussian grid: fastem's "
                             "time per EM iteration, GFLOP/s and GB/s read against the "
                             "machine's rates, and the peers installed side by side (--full: "
                             "the sizes of the speed issue and the CSR fit's memory)")
    parser.add_argument("--peers", default="auto",
                        help="with --family: 'auto' (those installed), 'none', or some of "
                             "stepmix,pomegranate,polca")
    parser.add_argument("--levels", type=int, default=None,
                        help="with --family categorical: levels per column (default 5)")
    parser.add_argument("--density", type=float, default=None,
                        help="with --family bernoulli or multinomial: CSR data with this "
                             "fraction of non-zeros (multinomial default 0.005)")


def _checked(kind, expected, ok):
    """An argparse type: ``kind(text)``, finite, for which ``ok`` holds;
    anything else is a one-line usage error saying what was expected."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or (kind is float and not math.isfinite(value)) or not ok(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


_COUNT = _checked(int, "a whole number >= 1", lambda v: v >= 1)
_SEED = _checked(int, "a whole number from 0 to 4294967295", lambda v: 0 <= v < 2**32)
_NON_NEGATIVE = _checked(float, "a finite number >= 0", lambda v: v >= 0)
_QUANTILE = _checked(float, "a number between 0 and 1 (exclusive), e.g. 0.01",
                     lambda v: 0 < v < 1)


def _COUNTS(text):
    """A whole number >= 1, or one per column: '10' or '10,10,20'."""
    values = [_COUNT(part.strip()) for part in text.split(",")] if text.strip() else \
        [_COUNT(text)]
    return values[0] if len(values) == 1 else values


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

    p = command("fit", "fit a mixture (Gaussian, or --family ...) to a data file",
                "Fit a mixture by EM, print a summary (iterations, convergence, "
                "log-likelihood, BIC, weights, means or per-component probabilities) and "
                "optionally save the model.")
    _add_data(p)
    p.add_argument("-k", "--n-components", dest="k", type=_COUNT, required=True,
                   help="number of components")
    _add_family(p)
    p.add_argument("--covariance", choices=COVARIANCE_TYPES, default=None,
                   help="covariance type (--family gaussian only; default full)")
    _add_fit_options(p)
    p.add_argument("--tol", type=_NON_NEGATIVE, default=None,
                   help="convergence tolerance (default: the estimator's, 1e-3 for batch EM)")
    p.add_argument("--bayesian", action="store_true",
                   help="variational Bayesian mixture (BayesianGaussianMixture, Dirichlet "
                        "process prior): -k is an upper bound, the components the data do "
                        "not need get weights near 0; with --online, stochastic variational "
                        "inference (MiniBatchBayesianGaussianMixture)")
    p.add_argument("--online", action="store_true",
                   help="online (mini-batch) EM: the family's MiniBatch estimator "
                   "(MiniBatchGaussianMixture...); --max-iter counts epochs")
    p.add_argument("--batch-size", type=_COUNT, default=1024,
                   help="rows per mini-batch with --online (default 1024)")
    p.add_argument("--reg-covar", type=_NON_NEGATIVE, default=None,
                   help="added to the diagonal (--family gaussian only; default 1e-6)")
    p.add_argument("--missing", choices=MISSING_CHOICES, default="raise",
                   help="'em': read empty cells (and cells NaN, and Parquet nulls) as missing "
                   "at random and fit by EM on the observed entries; the saved model's "
                   "predict and score read them so too (default raise: a missing value is "
                   "an error)")
    _add_output(p, "save the model (e.g. model.fem)")
    p.add_argument("--plot", default=None, help="draw the components (discrete families: "
                   "the component profiles) to this PNG")
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
    p.add_argument("--anomalies", type=_QUANTILE, default=None, metavar="Q",
                   help="flag the lowest Q quantile (0 < Q < 1), e.g. 0.01")
    _add_output(p)
    p.add_argument("--plot", default=None, help="draw the log-density histogram to this PNG")
    _add_common(p)
    p.set_defaults(func=_cmd_score)

    p = command("impute", "fill in the missing values of a data file with a saved model",
                "Write the data with each missing value (an empty cell, NaN, or a Parquet "
                "null) replaced by its conditional expectation under the model.")
    _add_model(p)
    _add_data(p)
    _add_output(p)
    _add_common(p)
    p.set_defaults(func=_cmd_impute)

    p = command("select", "choose k (and the covariance type) by BIC/AIC/ICL",
                "Fit every (k, covariance type) -- with --family, every k of that family's "
                "mixture -- and print the BIC/AIC/ICL table and the best model.")
    _add_data(p)
    p.add_argument("-k", "--n-components", dest="k", default=None,
                   help="numbers of components: 3, 1-10 or 2,4,8, at most the number of "
                   "rows (default 1-10, or 1 to the number of rows if fewer)")
    _add_family(p)
    p.add_argument("--covariance", default=None,
                   help="comma-separated covariance types (--family gaussian only; default "
                   "all four)")
    p.add_argument("--criterion", choices=("bic", "aic", "icl"), default="bic")
    _add_fit_options(p)
    _add_output(p, "save the best model here")
    p.add_argument("--plot", default=None, help="draw the criteria against k to this PNG")
    _add_common(p)
    p.set_defaults(func=_cmd_select)

    p = command("sample", "draw rows from a saved model",
                "Draw N rows from the mixture; CSV with the features and the component.")
    _add_model(p)
    p.add_argument("-n", type=_COUNT, required=True, help="number of rows")
    _add_seed(p)
    _add_output(p)
    _add_common(p)
    p.set_defaults(func=_cmd_sample)

    p = command("demo", "select a model for Old Faithful, then time a 1,000,000-row fit "
                "against scikit-learn",
                "Fit mixtures to the Old Faithful data shipped with fastem, print a BIC "
                "table and the chosen model, then time EM iterations on a large synthetic "
                "mixture against scikit-learn from identical parameters.")
    p.add_argument("--n", type=_COUNT, default=1_000_000, help="rows of the synthetic data")
    p.add_argument("--d", type=_COUNT, default=8, help="features of the synthetic data")
    p.add_argument("--k", type=_COUNT, default=8, help="components of the synthetic data")
    p.add_argument("--iters", type=_COUNT, default=10, help="fastem EM iterations timed")
    p.add_argument("--sk-iters", type=_COUNT, default=2,
                   help="scikit-learn EM iterations timed")
    p.add_argument("--no-speed", action="store_true", help="skip the timing part")
    _add_common(p)
    p.set_defaults(func=_cmd_demo)

    p = command("bench", "time EM iterations against scikit-learn side by side",
                "Time EM iterations of fastem and scikit-learn from identical parameters "
                "(medians of interleaved repeats); --full runs the whole grid, float32, "
                "memory, cold start and thread scaling and writes docs/benchmarks.md.")
    add_bench_arguments(p)
    _add_common(p)
    p.set_defaults(func=_cmd_bench)
    return parser


def _fail(args, message, code=EXIT_USAGE):
    """Report a failure in one line on stderr; return the exit code."""
    message = " ".join(str(message).split())
    print(f"fastem {args.command}: error: {message}", file=sys.stderr)
    return code


def _detach_stdout():
    """Point stdout at the null device, so that nothing more (not even the
    flush at exit) is written to a reader that has gone away."""
    with contextlib.suppress(AttributeError, OSError, ValueError, io.UnsupportedOperation):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def main(argv=None):
    """Run the command line; return the exit code (0, 1, 2, 130 or 141)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error argparse has printed
        return exc.code
    try:
        _config.check()
        _check_output(getattr(args, "output", None), "-o/--output")
        _check_output(getattr(args, "plot", None), "--plot")
        with warnings.catch_warnings():  # filters a command sets end with it
            return args.func(args)
    except (CliError, DataFileError, _config.ConfigError) as exc:
        return _fail(args, exc)
    except BrokenPipeError:  # e.g. `fastem predict ... | head`: not an error of fastem's
        _detach_stdout()
        return EXIT_BROKEN_PIPE
    except MemoryError:
        return _fail(args, "not enough memory; use fewer rows, columns or components "
                     "(fit --online holds one mini-batch's statistics at a time)")
    except (ValueError, OSError, ImportError, TypeError) as exc:
        # the library's own messages say what was expected and what to do
        if os.environ.get("FASTEM_DEBUG"):
            raise
        return _fail(args, exc)
    except KeyboardInterrupt:
        print(f"fastem {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # never a traceback, unless asked for
        if os.environ.get("FASTEM_DEBUG"):
            raise
        return _fail(args, f"unexpected error ({type(exc).__name__}): {exc}; run with "
                     "FASTEM_DEBUG=1 for the traceback", EXIT_FAILURE)


def run():
    """The ``fastem`` command (and ``python -m fastem``): :func:`main`, its
    output flushed, then the process ended at once with ``os._exit``.  A
    finished command needs nothing of Python's teardown of the modules it
    imported, which takes 0.4-0.5 s after scikit-learn and a large pyarrow
    read; temporary files are removed and model files closed before
    :func:`main` returns."""
    code = main()
    code = code if isinstance(code, int) else EXIT_FAILURE
    try:
        sys.stdout.flush()
    except (BrokenPipeError, OSError, ValueError):
        code = code or EXIT_BROKEN_PIPE
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    run()
