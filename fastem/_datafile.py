"""Data files for the command line: CSV/TSV, ``.npy`` and Parquet, read
into a float64 array, with one-line errors that say where and what.

Text files (CSV, TSV, anything else that is not ``.npy`` or Parquet):

* UTF-8, with or without a byte-order mark; ``\\n``, ``\\r\\n`` or ``\\r``
  line ends; lines holding only whitespace are skipped everywhere.
* The delimiter is a tab, a comma or a semicolon (the first of these found
  in the first non-blank line; ``.tsv``: a tab), or else runs of spaces.
  Fields may be quoted (``"1.5"`` is the number 1.5).
* The first non-blank line is data if every cell of it is a number, and a
  header if none is (an empty header cell, like the unnamed index column
  pandas writes, is named ``Unnamed: J``).  A first line that mixes numbers
  with names or empty cells is an error naming the line and the column
  (``header="yes"`` or ``"no"`` decides instead).  Only the cells of the
  picked columns count.  So a header row never swallows a data row.
* Every other line must have as many cells as the first, all numbers; the
  first that does not is an error naming its 1-based line (blank lines
  counted) and column.

:func:`read_table` reads the same files for a family whose estimator codes
categories itself (``--family categorical``): every cell is kept as text (a
column of whole numbers only becomes integers), into a pandas DataFrame; the
first line is a header unless all of its picked cells are numbers; an empty
cell is an error naming its line and column.
"""

import contextlib
import csv
import itertools
import os
import re
import warnings
from typing import NamedTuple, Optional

import numpy as np

HEADER_CHOICES = ("auto", "yes", "no")


class DataFileError(ValueError):
    """A data file that cannot be read as a table of numbers."""


class Data(NamedTuple):
    """What :func:`read_data` read: the picked columns as a float64 array
    (:func:`read_table`: a pandas DataFrame, or the array of a ``.npy``),
    their names (None without a header), the kind of file (``"text"``,
    ``"npy"`` or ``"parquet"``) and the 1-based line of the header row of a
    text file (None if it has none)."""

    X: np.ndarray
    names: Optional[list]
    kind: str
    header_line: Optional[int] = None

    def describe(self, path):
        """One line for a summary: how many rows, and the header."""
        n, d = self.X.shape
        if self.header_line is not None:
            how = f" after the header row on line {self.header_line}"
        else:
            how = " (no header row)" if self.kind == "text" else ""
        return f"{_count(n, 'row')} x {_count(d, 'column')} read from {path}{how}"

    def to_json(self, path):
        return {"file": path, "rows": int(self.X.shape[0]), "columns": int(self.X.shape[1]),
                "names": self.names, "header": self.header_line is not None,
                "header_line": self.header_line}


def _count(n, what):
    return f"{n} {what}{'' if n == 1 else 's'}"


def _where(path, columns):
    """The path, the wanted columns and the file's extension, once the path
    is a file."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise DataFileError(f"data file {path!r} not found")
    if os.path.isdir(path):
        raise DataFileError(f"{path!r} is a directory; expected a CSV, TSV, .npy or "
                            "Parquet file")
    wanted = [c.strip() for c in columns.split(",") if c.strip()] if columns else []
    return path, wanted, os.path.splitext(path)[1].lower()


def read_data(path, columns=None, header="auto"):
    """Read a CSV/TSV, ``.npy`` or Parquet file as :class:`Data`.

    ``columns`` is a comma-separated list of names or 0-based indices (only
    these columns are read); ``header`` is ``"auto"`` (the rule in the
    module docstring), ``"yes"`` or ``"no"`` (text files only)."""
    path, wanted, ext = _where(path, columns)
    if ext == ".npy":
        X = _read_npy(path)
        idx = _pick(None, X.shape[1], wanted, path)
        data = Data(X if idx is None else np.ascontiguousarray(X[:, idx]), None, "npy")
    elif ext in (".parquet", ".pq"):
        data = Data(*_read_parquet(path, wanted), "parquet")
    else:
        data = Data(*_read_text(path, wanted, "\t" if ext == ".tsv" else None, header))
    if data.X.shape[0] == 0 or data.X.shape[1] == 0:
        raise DataFileError(f"{path} holds no data ({data.X.shape[0]} rows x "
                            f"{data.X.shape[1]} columns); expected at least one row of numbers")
    return data


def _pick(names, n_cols, wanted, path):
    """0-based indices of the ``wanted`` columns (None if none are wanted):
    a whole number is an index, anything else a name."""
    return [_column_index(names, n_cols, w, path) for w in wanted] if wanted else None


def _is_index(wanted):
    return wanted.lstrip("-").isdigit()


def _column_index(names, n_cols, wanted, path):
    if _is_index(wanted):
        i = int(wanted)
        if not 0 <= i < n_cols:
            raise DataFileError(f"column index {i} is out of range for {path}, which has "
                                f"{_count(n_cols, 'column')} (indices start at 0)")
        return i
    if names is not None and wanted in names:
        return names.index(wanted)
    have = (", ".join(names) if names else
            f"none by name ({path} has no header row; use indices 0 to {n_cols - 1})")
    raise DataFileError(f"column {wanted!r} not found in {path}; its columns are: {have}")


def _read_npy(path):
    try:
        X = np.load(path, allow_pickle=False, mmap_mode="r")
    except (ValueError, OSError) as exc:
        raise DataFileError(f"{path} is not a readable .npy array file ({exc})") from None
    if X.dtype.kind not in "biuf":
        raise DataFileError(f"{path} holds dtype {X.dtype}; expected numbers")
    if X.ndim == 1:
        X = X[:, None]
    if X.ndim != 2:
        raise DataFileError(f"{path} holds an array of shape {X.shape}; expected 2-D "
                            "(rows, features)")
    return np.asarray(X, dtype=np.float64)


def _read_parquet(path, wanted):
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataFileError("reading Parquet files needs pyarrow: pip install pyarrow") \
            from None
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow raises its own error classes
        raise DataFileError(f"{path} is not a readable Parquet file ({exc})") from None
    names = list(table.column_names)
    idx = _pick(names, len(names), wanted, path) or range(len(names))
    cols = []
    for name, col in ((names[i], table.column(i)) for i in idx):
        try:
            values = np.asarray(col.to_numpy(zero_copy_only=False), dtype=np.float64)
        except (TypeError, ValueError):
            raise DataFileError(f"column {name!r} of {path} is not numeric (type "
                                f"{col.type}); pick numeric columns with --columns") from None
        if np.isnan(values).any():
            row = int(np.flatnonzero(np.isnan(values))[0])
            raise DataFileError(f"column {name!r} of {path} has a missing value at row {row}; "
                                "missing values are not supported: impute or drop those rows")
        cols.append(values)
    X = np.column_stack(cols) if cols else np.empty((table.num_rows, 0))
    return X, [names[i] for i in idx]


# --------------------------------------------------------------------------
# text files
# --------------------------------------------------------------------------

_NUMBERS_ONLY = ("expected numbers only (missing values are not supported: impute or drop "
                 "those rows; pick numeric columns with --columns)")


def _is_number(cell):
    """A number as NumPy reads it: Python's float syntax, ASCII, no ``_``."""
    if not cell.isascii() or "_" in cell:
        return False
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _cells(line, delimiter):
    """The stripped cells of one line (quotes removed)."""
    if delimiter is None:  # runs of spaces or tabs
        line, delimiter = line.strip().replace("\t", " "), " "
    return [c.strip() for c in next(csv.reader([line], delimiter=delimiter,
                                               skipinitialspace=delimiter == " "))]


def _non_blank(lines, start=1):
    """(1-based line number, line) for the lines that are not blank."""
    return ((no, line) for no, line in enumerate(lines, start) if line.strip())


def _open_text(path):
    return open(path, encoding="utf-8-sig", newline=None)


@contextlib.contextmanager
def _readable(path):
    """Turn a file that cannot be read, or read as UTF-8, into one line."""
    try:
        yield
    except UnicodeDecodeError:
        raise DataFileError(f"{path} is not UTF-8 text; expected a CSV or TSV file saved as "
                            "UTF-8 (spreadsheet programs: 'CSV UTF-8'), .npy or Parquet") \
            from None
    except OSError as exc:
        raise DataFileError(f"cannot read {path}: {exc.strerror or exc}") from None


def _head(fh, path, delimiter, header, wanted, what):
    """The first non-blank line of a text file: ``(the other lines, its line
    number, the line, the delimiter (sniffed if None), its cells, the picked
    columns)``."""
    rows = _non_blank(fh)
    first_no, first = next(rows, (0, None))
    if first is None:
        raise DataFileError(f"{path} is empty (no line holds anything but whitespace); "
                            f"expected rows of {what}")
    if delimiter is None:
        delimiter = next((c for c in "\t,;" if c in first), None)
    cells = _cells(first, delimiter)
    usecols = _pick(None if header == "no" else cells, len(cells), wanted, path)
    return rows, first_no, first, delimiter, cells, usecols


def _read_text(path, wanted, delimiter, header):
    with _readable(path), _open_text(path) as fh:
        rows, first_no, first, delimiter, cells, usecols = _head(
            fh, path, delimiter, header, wanted, "numbers")
        picked = cells if usecols is None else [cells[i] for i in usecols]
        is_header = _first_line_is_header(picked, header, first_no, path)
        data_lines = (line for _, line in rows)
        if not is_header:
            _pick(None, len(cells), [w for w in wanted if not _is_index(w)], path)  # no names
            data_lines = itertools.chain([first], data_lines)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "input contained no data"
                X = np.loadtxt(data_lines, delimiter=delimiter, quotechar='"', usecols=usecols,
                               comments=None, dtype=np.float64, ndmin=2)
            reason = f"the data rows have {X.shape[1]} columns, the first row {len(cells)}"
        except UnicodeDecodeError:
            raise
        except ValueError as exc:  # NumPy's message does not count lines right
            X, reason = None, str(exc).splitlines()[0]
    if X is not None and X.shape[0] == 0:
        raise DataFileError(f"{path} has a header row (line {first_no}) but no data rows")
    if X is None or X.shape[1] != len(picked):
        with _readable(path):
            _first_bad_line(path, delimiter, first_no + is_header, len(cells), usecols)
        raise DataFileError(f"{path}: {reason}; {_NUMBERS_ONLY}")
    if not is_header:
        return X, None, "text"
    names = [c or f"Unnamed: {j}" for j, c in enumerate(cells)]
    return X, names if usecols is None else [names[i] for i in usecols], "text", first_no


def _first_line_is_header(cells, header, line_no, path):
    """Whether the first non-blank line (its ``cells``) is a header row."""
    if header != "auto":
        return header == "yes"
    numbers = [_is_number(c) for c in cells]
    if all(numbers):
        return False
    if not any(numbers) and any(cells):
        return True
    if any(numbers):
        j = next(j for j, (c, num) in enumerate(zip(cells, numbers), 1) if not num)
        what = "an empty cell" if cells[j - 1] == "" else f"the name {cells[j - 1]!r}"
        raise DataFileError(f"{path}: line {line_no}, column {j}: {what} in a first row whose "
                            "other cells hold numbers; a data row needs a number in every "
                            "column, a header row a name in every column (fix the line, pick "
                            "columns with --columns, or pass --header yes or --header no)")
    raise DataFileError(f"{path}: line {line_no}: the first row has only empty cells; "
                        "expected a header row of names or a data row of numbers")


def _first_bad_line(path, delimiter, start, n_cols, usecols):
    """Raise the error for the first non-blank line from line ``start`` on
    (1-based) that does not hold ``n_cols`` cells (at least the ``usecols``
    ones, if given), all numbers; return if there is none."""
    with _open_text(path) as fh:
        for no, line in _non_blank(itertools.islice(fh, start - 1, None), start):
            cells = _cells(line, delimiter)
            if len(cells) != n_cols and (usecols is None or len(cells) <= max(usecols)):
                raise DataFileError(f"{path}: line {no} has {_count(len(cells), 'cell')}, but "
                                    f"the first row has {n_cols}; every row needs the same "
                                    "number of columns")
            for j in range(len(cells)) if usecols is None else usecols:
                if not _is_number(cells[j]):
                    what = "empty cell" if cells[j] == "" else f"{cells[j]!r} is not a number"
                    if re.fullmatch(r"[-+]?\d*,\d+", cells[j]):
                        what += " (a decimal comma: write 1.5, not 1,5)"
                    raise DataFileError(f"{path}: line {no}, column {j + 1}: {what}; "
                                        f"{_NUMBERS_ONLY}")


# --------------------------------------------------------------------------
# tables of categories (read_table)
# --------------------------------------------------------------------------

_INTEGER = re.compile(r"[-+]?\d+")


def read_table(path, columns=None, header="auto"):
    """Read a CSV/TSV, ``.npy`` or Parquet file of categories as
    :class:`Data` whose ``X`` is a pandas DataFrame (a ``.npy`` file: its
    array of codes): text cells stay text, a column of whole numbers only
    becomes int64.  ``header="auto"``: the first line is a header unless
    every picked cell of it is a number.  Needs pandas (not for ``.npy``)."""
    path, wanted, ext = _where(path, columns)
    if ext == ".npy":
        X = _read_npy(path)
        idx = _pick(None, X.shape[1], wanted, path)
        data = Data(X if idx is None else np.ascontiguousarray(X[:, idx]), None, "npy")
    else:
        try:
            import pandas as pd
        except ImportError:
            raise DataFileError("reading a table of categories needs pandas: pip install "
                                "pandas (or pass integer codes in a .npy file)") from None
        if ext in (".parquet", ".pq"):
            data = Data(*_read_parquet_table(path, wanted, pd), "parquet")
        else:
            data = Data(*_read_text_table(path, wanted, "\t" if ext == ".tsv" else None,
                                          header, pd))
    if data.X.shape[0] == 0 or data.X.shape[1] == 0:
        raise DataFileError(f"{path} holds no data ({data.X.shape[0]} rows x "
                            f"{data.X.shape[1]} columns); expected at least one row")
    return data


def _read_parquet_table(path, wanted, pd):
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataFileError("reading Parquet files needs pyarrow: pip install pyarrow") \
            from None
    try:
        frame = pq.read_table(path).to_pandas()
    except Exception as exc:  # noqa: BLE001  (pyarrow raises its own error classes)
        raise DataFileError(f"{path} is not a readable Parquet file ({exc})") from None
    names = [str(c) for c in frame.columns]
    idx = _pick(names, len(names), wanted, path) or range(len(names))
    frame = frame.iloc[:, list(idx)]
    missing = frame.isna().to_numpy()
    if missing.any():
        row, j = (int(v[0]) for v in np.nonzero(missing))
        raise DataFileError(f"column {names[idx[j]]!r} of {path} has a missing value at row "
                            f"{row}; missing values are not supported: impute or drop those "
                            "rows")
    return frame, [names[i] for i in idx]


def _read_text_table(path, wanted, delimiter, header, pd):
    with _readable(path), _open_text(path) as fh:
        rows, first_no, first, delimiter, cells, usecols = _head(
            fh, path, delimiter, header, wanted, "categories")
        picked = list(range(len(cells))) if usecols is None else usecols
        is_header = header == "yes" or (
            header == "auto" and not all(_is_number(cells[j]) for j in picked))
        if not is_header:
            _pick(None, len(cells), [w for w in wanted if not _is_index(w)], path)  # no names
            rows = itertools.chain([(first_no, first)], rows)
        values = [[] for _ in picked]
        for no, line in rows:
            row = _cells(line, delimiter)
            if len(row) != len(cells) and (usecols is None or len(row) <= max(usecols)):
                raise DataFileError(f"{path}: line {no} has {_count(len(row), 'cell')}, but "
                                    f"the first row has {len(cells)}; every row needs the "
                                    "same number of columns")
            for out, j in zip(values, picked):
                if row[j] == "":
                    raise DataFileError(f"{path}: line {no}, column {j + 1}: empty cell; "
                                        "every cell needs a category (missing values are not "
                                        "supported: impute or drop those rows)")
                out.append(row[j])
    if not values[0]:
        raise DataFileError(f"{path} has a header row (line {first_no}) but no data rows")
    names = [c or f"Unnamed: {j}" for j, c in enumerate(cells)] if is_header else None
    labels = [names[j] for j in picked] if names else list(range(len(picked)))
    frame = pd.DataFrame({label: _column_values(v) for label, v in zip(labels, values)})
    if is_header:
        return frame, labels, "text", first_no
    return frame, None, "text"


def _column_values(cells):
    """A column's cells: int64 if every one is a whole number, else text."""
    if all(_INTEGER.fullmatch(c) for c in cells):
        try:
            return np.array([int(c) for c in cells], dtype=np.int64)
        except OverflowError:
            pass
    return np.array(cells, dtype=object)
