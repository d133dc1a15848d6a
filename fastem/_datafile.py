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
* Missing values: with ``missing=True`` an empty cell (a Parquet null) is
  read as NaN, and so is a cell ``NaN``/``nan`` (always a number to
  Python's float syntax); nothing else (``NA``, ``null``, ``-``) is.  A
  first line of numbers and empty cells is then data.  Without it, an empty
  cell, a null or a NaN is an error naming where it is, which ends with
  ``hint`` (what the command line's user can do: ``--missing em``).

pyarrow, when installed, parses text (and always Parquet) with its
multi-threaded reader; a file it reads differently from the rules above
(whitespace-only lines, runs of spaces, a bad cell) is read, or its error
found, by NumPy from the row pyarrow stopped at, so results and messages do
not depend on it.  :func:`open_data` streams a file as float64 chunks of
``FASTEM_CHUNK_BYTES`` (:class:`DataStream`); :func:`to_memmap` copies a
stream to a temporary memory map.

:func:`read_table` reads the same files for a family whose estimator codes
categories itself (``--family categorical``): every cell is kept as text (a
column of whole numbers only becomes integers), into a pandas DataFrame; the
first line is a header unless all of its picked cells are numbers; an empty
cell is an error naming its line and column (``missing=True``: NaN).
"""

import contextlib
import csv
import itertools
import os
import re
import warnings
from typing import NamedTuple, Optional

import numpy as np

from . import _config

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


#: How an error about an empty cell or a missing value ends, unless the
#: caller gives its own: what to do on the command line.
MISSING_HINT = "pass --missing em to fit on the observed entries"


def _no_missing(hint):
    """The end of an error about a missing value."""
    return ("missing values are not supported by default: impute or drop those rows, or "
            f"{hint or MISSING_HINT}")


def read_data(path, columns=None, header="auto", missing=False, hint=None):
    """Read a CSV/TSV, ``.npy`` or Parquet file as :class:`Data`.

    ``columns`` is a comma-separated list of names or 0-based indices (only
    these columns are read); ``header`` is ``"auto"`` (the rule in the
    module docstring), ``"yes"`` or ``"no"`` (text files only).  Text and
    Parquet files are parsed by pyarrow's multi-threaded readers when
    pyarrow is installed (NumPy's otherwise, with the same results and
    errors).  ``missing=True`` reads empty cells and nulls as NaN; else a
    missing value is an error ending with ``hint``."""
    stream = open_data(path, columns, header, missing, hint)
    if stream.kind == "npy":
        X = stream.array
        stream._check_nan(X, 0)
    else:
        X = stream.read_all()
    return stream.data(X)


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


# --------------------------------------------------------------------------
# text files
# --------------------------------------------------------------------------

_NUMBERS_ONLY = "expected numbers only (pick numeric columns with --columns)"
_NUMBERS_OR_MISSING = ("expected numbers only, or an empty cell or NaN for a missing value "
                       "(pick numeric columns with --columns)")


def _numbers_only(missing):
    return _NUMBERS_OR_MISSING if missing else _NUMBERS_ONLY


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


def _first_line_is_header(cells, header, line_no, path, missing=False, hint=None):
    """Whether the first non-blank line (its ``cells``) is a header row
    (``missing``: a row of numbers and empty cells is data)."""
    if header != "auto":
        return header == "yes"
    numbers = [_is_number(c) for c in cells]
    if all(numbers):
        return False
    if missing and any(numbers) and all(num or c == "" for c, num in zip(cells, numbers)):
        return False
    if not any(numbers) and any(cells):
        return True
    if any(numbers):
        j = next(j for j, (c, num) in enumerate(zip(cells, numbers), 1) if not num)
        what = "an empty cell" if cells[j - 1] == "" else f"the name {cells[j - 1]!r}"
        if cells[j - 1] == "" and not missing:
            end = f"; if the empty cells are missing values, {hint or MISSING_HINT}"
        else:
            end = ""
        raise DataFileError(f"{path}: line {line_no}, column {j}: {what} in a first row whose "
                            "other cells hold numbers; a data row needs a number in every "
                            "column, a header row a name in every column (fix the line, pick "
                            f"columns with --columns, or pass --header yes or --header no){end}")
    raise DataFileError(f"{path}: line {line_no}: the first row has only empty cells; "
                        "expected a header row of names or a data row of numbers")


def _first_bad_line(path, delimiter, start, n_cols, usecols):
    """Raise the error for the first non-blank line from line ``start`` on
    (1-based) that does not hold ``n_cols`` cells (at least the ``usecols``
    ones, if given), all numbers; return if there is none."""
    with _open_text(path) as fh:
        _check_lines(_non_blank(itertools.islice(fh, start - 1, None), start), path,
                     delimiter, n_cols, usecols)


def _check_lines(numbered, path, delimiter, n_cols, usecols, missing=False, hint=None):
    """Raise the error for the first of the ``(line number, line)`` pairs
    that does not hold ``n_cols`` cells (at least the ``usecols`` ones),
    all numbers (``missing``: or empty); return if there is none."""
    for no, line in numbered:
        cells = _cells(line, delimiter)
        if len(cells) != n_cols and (usecols is None or len(cells) <= max(usecols)):
            raise DataFileError(f"{path}: line {no} has {_count(len(cells), 'cell')}, but "
                                f"the first row has {n_cols}; every row needs the same "
                                "number of columns")
        for j in range(len(cells)) if usecols is None else usecols:
            if not _is_number(cells[j]):
                if cells[j] == "":
                    if missing:
                        continue
                    raise DataFileError(f"{path}: line {no}, column {j + 1}: empty cell; "
                                        "expected numbers only, and "
                                        f"{_no_missing(hint)}")
                what = f"{cells[j]!r} is not a number"
                if re.fullmatch(r"[-+]?\d*,\d+", cells[j]):
                    what += " (a decimal comma: write 1.5, not 1,5)"
                raise DataFileError(f"{path}: line {no}, column {j + 1}: {what}; "
                                    f"{_numbers_only(missing)}")


def _parse_cell(text):
    """One cell as NumPy's fallback reads it with missing values: empty is
    NaN, else a number as :func:`_is_number` takes it."""
    text = text.strip()
    if not text:
        return np.nan
    if not _is_number(text):
        raise ValueError(f"could not convert string {text!r} to float64")
    return float(text)


def _nan_at(path, row, j, hint):
    """The error for a NaN at (0-based) row ``row`` and column ``j``."""
    return f"{path}: row {row}, column {j}: NaN, a missing value; {_no_missing(hint)}"


def _first_nan(X, step):
    """``(row, column)`` of the first NaN of X (row-major), looked for ``step``
    rows at a time; None if there is none."""
    for i in range(0, X.shape[0], step):
        nan = np.isnan(X[i:i + step])
        if nan.any():
            r, j = np.argwhere(nan)[0]
            return i + int(r), int(j)
    return None


# --------------------------------------------------------------------------
# streams: the rows of a file chunk by chunk
# --------------------------------------------------------------------------

def _pyarrow():
    """pyarrow's modules (``pyarrow``, ``pyarrow.csv``), or None if it is not
    installed: text files are then parsed by NumPy (slower, same results)."""
    try:
        import pyarrow as pa
        import pyarrow.csv as pc
    except ImportError:
        return None
    return pa, pc


def _arrow_pool():
    """The memory pool pyarrow reads into: the system allocator, because
    with pyarrow's default (mimalloc) the first pass over each freshly
    allocated NumPy array after a large read costs ~2 ms per MB."""
    import pyarrow as pa

    return pa.system_memory_pool()


def _arrow_to_array(part, names, check=None):
    """The columns ``names`` of a pyarrow Table or RecordBatch as one
    C-ordered float64 array, filled a record batch at a time (cache-sized
    pieces).  A float64 chunk without nulls is read in place (``to_numpy``
    costs ~90 us a chunk, more than the copy); other types are converted
    by ``to_numpy``.  ``check(j, values, row0)`` sees each column piece
    (values as converted, before the copy)."""
    import pyarrow as pa

    X = np.empty((part.num_rows, len(names)))
    batches = part.to_batches() if isinstance(part, pa.Table) else [part]
    r = 0
    for batch in batches:
        n = batch.num_rows
        for j, name in enumerate(names):
            c = batch.column(name)
            if pa.types.is_float64(c.type) and c.null_count == 0:
                values = np.frombuffer(c.buffers()[1], dtype=np.float64, count=n,
                                       offset=c.offset * 8)
            else:
                values = c.to_numpy(zero_copy_only=False)
            if check is not None:
                values = check(j, values, r)
            X[r:r + n, j] = values
        r += n
    return X


def _block_size(path):
    """Bytes of text per block of pyarrow's multi-threaded reader for a
    whole file: about four blocks a core, within 1-4 MiB.  pyarrow's 1 MiB
    default makes a batch of ~7,000 rows, each a round of calls holding the
    GIL when the table becomes one array; larger blocks cost memory."""
    per_core = os.path.getsize(path) // (4 * max(1, os.cpu_count() or 1))
    return int(min(max(per_core, 1 << 20), 4 << 20))


class _Shape(NamedTuple):
    """Stands for the rows of a file that were streamed, not kept: only
    their shape, for :meth:`Data.describe` and :meth:`Data.to_json`."""

    shape: tuple


def open_data(path, columns=None, header="auto", missing=False, hint=None):
    """A :class:`DataStream` over a CSV/TSV, ``.npy`` or Parquet file: the
    header, the columns and their names are read (and every error they can
    cause raised) now; the rows as they are iterated.  ``missing=True``:
    empty cells and nulls are NaN; else a missing value (an empty cell, a
    null or NaN) is an error whose message ends with ``hint``."""
    path, wanted, ext = _where(path, columns)
    if ext == ".npy":
        return _NpyStream(path, wanted, missing, hint)
    if ext in (".parquet", ".pq"):
        return _ParquetStream(path, wanted, missing, hint)
    return _TextStream(path, wanted, "\t" if ext == ".tsv" else None, header, missing, hint)


class DataStream:
    """The picked columns of a data file, as float64 arrays of at most
    :attr:`chunk_rows` rows (``FASTEM_CHUNK_BYTES`` worth) each: iterating
    holds one chunk at a time (pyarrow's reader a block of text more).

    Attributes: ``path``, ``kind`` (``"text"``, ``"npy"``, ``"parquet"``),
    ``names`` (None without a header), ``header_line``, ``n_columns``,
    ``n_rows`` (once iterated) and ``large`` (the file is larger than
    ``FASTEM_CHUNK_BYTES``: the command line streams it rather than read it
    whole).  A file that holds no rows is an error at the end of the
    iteration, a bad cell at the chunk that holds it."""

    names = None
    header_line = None
    n_rows = None
    missing = False  # empty cells and nulls read as NaN
    hint = None  # how an error about a missing value ends (None: MISSING_HINT)

    @property
    def chunk_rows(self):
        return max(1, _config.CHUNK_BYTES // (8 * max(1, self.n_columns)))

    @property
    def large(self):
        return os.path.getsize(self.path) > _config.CHUNK_BYTES

    def __iter__(self):
        self.n_rows, step = 0, self.chunk_rows
        for X in self._batches():
            for i in range(0, X.shape[0], step):
                chunk = X[i:i + step]
                self._check_nan(chunk, self.n_rows)
                self.n_rows += chunk.shape[0]
                yield chunk
        if self.n_rows == 0:
            self._no_data(0)

    def read_all(self):
        """Every row in one array (pyarrow: read by all its threads)."""
        X = self._read_all()
        if X.shape[0] == 0:
            self._no_data(0)
        self._check_nan(X, 0)
        self.n_rows = X.shape[0]
        return X

    def _read_all(self):
        batches = list(self)
        return np.concatenate(batches) if len(batches) > 1 else batches[0]

    def _check_nan(self, X, row0):
        """Without ``missing``: the error for the first NaN of the rows X
        (the first of them row ``row0`` of the file)."""
        if self.missing or X.shape[0] == 0:
            return
        at = _first_nan(X, self.chunk_rows)
        if at is not None:
            raise DataFileError(self._nan_message(row0 + at[0], at[1]))

    def _nan_message(self, row, j):
        return _nan_at(self.path, row, j, self.hint)

    def data(self, X=None):
        """:class:`Data` for the rows read: ``X``, or after an iteration
        their shape only."""
        if X is None:
            X = _Shape((self.n_rows, self.n_columns))
        if X.shape[0] == 0 or X.shape[1] == 0:
            self._no_data(X.shape[0])
        return Data(X, self.names, self.kind, self.header_line)

    def _no_data(self, n_rows):
        if self.header_line is not None and n_rows == 0:
            raise DataFileError(f"{self.path} has a header row (line {self.header_line}) but "
                                "no data rows")
        raise DataFileError(f"{self.path} holds no data ({n_rows} rows x {self.n_columns} "
                            "columns); expected at least one row of numbers")


def to_memmap(stream, folder):
    """Write the rows of ``stream`` chunk by chunk to a float64 file in
    ``folder`` and return it as a read-only ``np.memmap`` (which fastem
    fits and scores out of core), so that a file larger than memory can be
    fitted.  The caller deletes ``folder``."""
    path = os.path.join(folder, "rows.f64")
    with open(path, "wb") as out:
        out.writelines(np.ascontiguousarray(X, dtype=np.float64).data for X in stream)
    return np.memmap(path, dtype=np.float64, mode="r", shape=(stream.n_rows, stream.n_columns))


class _NpyStream(DataStream):
    kind = "npy"

    def __init__(self, path, wanted, missing=False, hint=None):
        self.path, self.missing, self.hint = path, bool(missing), hint
        X = _read_npy(path)
        idx = _pick(None, X.shape[1], wanted, path)
        self.array = X if idx is None else np.ascontiguousarray(X[:, idx])
        self.n_columns = self.array.shape[1]

    def _batches(self):
        yield from (np.ascontiguousarray(self.array[i:i + self.chunk_rows])
                    for i in range(0, self.array.shape[0], self.chunk_rows))

    def _read_all(self):
        return self.array


class _ParquetStream(DataStream):
    kind = "parquet"

    def __init__(self, path, wanted, missing=False, hint=None):
        self.missing, self.hint = bool(missing), hint
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise DataFileError("reading Parquet files needs pyarrow: pip install pyarrow") \
                from None
        self.path, self._pq = path, pq
        try:
            self._file = pq.ParquetFile(path)
            names = list(self._file.schema_arrow.names)
        except Exception as exc:  # noqa: BLE001  (pyarrow raises its own error classes)
            raise DataFileError(f"{path} is not a readable Parquet file ({exc})") from None
        idx = _pick(names, len(names), wanted, path) or range(len(names))
        self.names = [names[i] for i in idx]
        self.n_columns = len(self.names)

    def _batches(self):
        row0 = 0
        for batch in self._file.iter_batches(batch_size=self.chunk_rows,
                                             columns=list(dict.fromkeys(self.names))):
            yield self._array(batch, row0)
            row0 += batch.num_rows

    def _read_all(self):
        try:
            table = self._pq.read_table(self.path, columns=list(dict.fromkeys(self.names)))
        except Exception as exc:  # noqa: BLE001
            raise DataFileError(f"{self.path} is not a readable Parquet file ({exc})") from None
        return self._array(table, 0)

    def _array(self, part, row0):
        """The picked columns of a batch or table (starting at row ``row0``
        of the file) as one float64 array."""
        def check(j, values, r):
            name = self.names[j]
            try:
                values = np.asarray(values, dtype=np.float64)
            except (TypeError, ValueError):
                raise DataFileError(f"column {name!r} of {self.path} is not numeric (type "
                                    f"{part.schema.field(name).type}); pick numeric columns "
                                    "with --columns") from None
            if not self.missing:
                nan = np.isnan(values)
                if nan.any():
                    raise DataFileError(self._nan_message(
                        row0 + r + int(np.flatnonzero(nan)[0]), j))
            return values

        return _arrow_to_array(part, self.names, check)

    def _check_nan(self, X, row0):
        pass  # checked column by column as read (a null is NaN by then)

    def _nan_message(self, row, j):
        return (f"column {self.names[j]!r} of {self.path} has a missing value at row {row}; "
                f"{_no_missing(self.hint)}")


class _ArrowGaveUp(Exception):
    """pyarrow could not parse the file the way NumPy does: the NumPy path
    takes over (and names the bad line, if there is one)."""


class _TextStream(DataStream):
    kind = "text"

    def __init__(self, path, wanted, delimiter, header, missing=False, hint=None):
        self.path, self.missing, self.hint = path, bool(missing), hint
        with _readable(path), _open_text(path) as fh:
            _, first_no, _, delimiter, cells, usecols = _head(
                fh, path, delimiter, header, wanted, "numbers")
        picked = cells if usecols is None else [cells[i] for i in usecols]
        is_header = _first_line_is_header(picked, header, first_no, path, self.missing,
                                          self.hint)
        if not is_header:
            _pick(None, len(cells), [w for w in wanted if not _is_index(w)], path)  # no names
        else:
            names = [c or f"Unnamed: {j}" for j, c in enumerate(cells)]
            self.names = names if usecols is None else [names[i] for i in usecols]
            self.header_line = first_no
        self.delimiter, self.n_cells, self.usecols = delimiter, len(cells), usecols
        self.n_columns = len(picked)
        self.start = first_no + is_header  # the line the data rows start on

    # pyarrow -----------------------------------------------------------

    def _arrow_options(self, pc, pa, block_size=None):
        names = [f"f{i}" for i in range(self.n_cells)]
        picked = names if self.usecols is None else [names[i] for i in self.usecols]
        read = pc.ReadOptions(autogenerate_column_names=True, use_threads=True,
                              **({} if block_size is None else {"block_size": block_size}))
        parse = pc.ParseOptions(delimiter=self.delimiter, quote_char='"')
        convert = pc.ConvertOptions(
            column_types={n: pa.float64() for n in picked},
            null_values=[""] if self.missing else [],
            strings_can_be_null=False, quoted_strings_can_be_null=False,
            include_columns=None if self.usecols is None else list(dict.fromkeys(picked)))
        return picked, {"read_options": read, "parse_options": parse,
                        "convert_options": convert, "memory_pool": _arrow_pool()}

    def _arrow_file(self, pa):
        f = pa.OSFile(self.path, "r")
        f.seek(_line_offset(self.path, self.start))
        return f

    def _arrow_array(self, part, picked):
        if self.usecols is None and part.num_columns != self.n_cells:
            raise _ArrowGaveUp  # rows of another length than the first: NumPy's message
        return _arrow_to_array(part, picked)

    def _arrow_batches(self, arrow, done):
        """Pieces of about ``FASTEM_CHUNK_BYTES`` of text cut at a line end,
        each parsed by pyarrow's multi-threaded reader (its streaming reader
        parses on one thread)."""
        pa, pc = arrow
        picked, options = self._arrow_options(pc, pa)
        piece = max(_config.CHUNK_BYTES, 1 << 14)
        try:
            with open(self.path, "rb") as f:
                f.seek(_line_offset(self.path, self.start))
                rest = b""
                while True:
                    more = f.read(piece)
                    buf = rest + more
                    cut = len(buf) if not more else max(buf.rfind(b"\n"), buf.rfind(b"\r")) + 1
                    if cut == 0 and more:  # a line longer than a piece: read on
                        rest = buf
                        continue
                    body, rest = memoryview(buf)[:cut], buf[cut:]
                    if len(body) > 64 or bytes(body).strip():
                        table = pc.read_csv(pa.BufferReader(pa.py_buffer(body)), **options)
                        X = self._arrow_array(table, picked)
                        done[0] += X.shape[0]
                        yield X
                    if not more:
                        return
        except pa.ArrowException:
            raise _ArrowGaveUp from None

    # NumPy -------------------------------------------------------------

    def _numpy_batches(self, skip=0):
        """The rows from line ``start`` on, ``skip`` data rows skipped, by
        np.loadtxt a chunk of lines at a time; a bad chunk is scanned for its
        first bad line."""
        with _readable(self.path), _open_text(self.path) as fh:
            lines = _non_blank(itertools.islice(fh, self.start - 1, None), self.start)
            lines = itertools.islice(lines, skip, None)
            while True:
                group = list(itertools.islice(lines, self.chunk_rows))
                if not group:
                    return
                try:
                    X = self._loadtxt(group)
                    reason = (f"the data rows have {X.shape[1]} columns, the first row "
                              f"{self.n_cells}")
                except ValueError as exc:  # NumPy's message does not count lines right
                    X, reason = None, str(exc).splitlines()[0]
                if X is None or X.shape[1] != self.n_columns:
                    _check_lines(group, self.path, self.delimiter, self.n_cells, self.usecols,
                                 self.missing, self.hint)
                    raise DataFileError(f"{self.path}: {reason}; "
                                        f"{_numbers_only(self.missing)}")
                yield X

    def _loadtxt(self, group):
        """np.loadtxt of the lines of ``group``; with ``missing``, a chunk
        that holds an empty cell is parsed again cell by cell in Python
        (empty: NaN)."""
        lines = [line for _, line in group]
        kwargs = {"delimiter": self.delimiter, "quotechar": '"', "usecols": self.usecols,
                  "comments": None, "dtype": np.float64, "ndmin": 2}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                return np.loadtxt(lines, **kwargs)
            except ValueError:
                if not self.missing:
                    raise
            return np.loadtxt(lines, converters=_parse_cell, **kwargs)

    def _nan_message(self, row, j):
        """The error for a NaN cell (data row ``row``, picked column ``j``):
        its line and column."""
        col = j if self.usecols is None else self.usecols[j]
        line_no, cell = None, "NaN"
        with contextlib.suppress(OSError, UnicodeDecodeError), _open_text(self.path) as fh:
            lines = _non_blank(itertools.islice(fh, self.start - 1, None), self.start)
            line_no, line = next(itertools.islice(lines, row, None), (None, None))
            if line is not None:
                cell = _cells(line, self.delimiter)[col]
        if line_no is None:
            return super()._nan_message(row, j)
        return (f"{self.path}: line {line_no}, column {col + 1}: {cell!r} is a missing value "
                f"(NaN); {_no_missing(self.hint)}")

    def _batches(self):
        arrow = _pyarrow() if self.delimiter is not None else None
        done = [0]
        if arrow is not None:
            try:
                yield from self._arrow_batches(arrow, done)
                return
            except _ArrowGaveUp:
                pass
        yield from self._numpy_batches(skip=done[0])

    def _read_all(self):
        arrow = _pyarrow() if self.delimiter is not None else None
        if arrow is not None:
            pa, pc = arrow
            picked, options = self._arrow_options(pc, pa, _block_size(self.path))
            try:
                with self._arrow_file(pa) as f:
                    return self._arrow_array(pc.read_csv(f, **options), picked)
            except (pa.ArrowException, _ArrowGaveUp):
                pass
        batches = list(self._numpy_batches())
        if not batches:
            return np.empty((0, self.n_columns))
        return np.concatenate(batches) if len(batches) > 1 else batches[0]


_LINE_END = re.compile(rb"\r\n|\r|\n")


def _line_offset(path, line_no):
    """The byte offset of the start of 1-based line ``line_no`` of a text
    file, lines ending as Python's universal newlines end them."""
    if line_no <= 1:
        return 0
    with open(path, "rb") as f:
        buf = b""
        while True:
            more = f.read(1 << 16)
            buf += more
            ends = list(itertools.islice(_LINE_END.finditer(buf), line_no - 1))
            if len(ends) == line_no - 1 and (ends[-1].end() < len(buf) or not more):
                return ends[-1].end()
            if not more:
                return len(buf)


# --------------------------------------------------------------------------
# tables of categories (read_table)
# --------------------------------------------------------------------------

_INTEGER = re.compile(r"[-+]?\d+")


def read_table(path, columns=None, header="auto", missing=False, hint=None):
    """Read a CSV/TSV, ``.npy`` or Parquet file of categories as
    :class:`Data` whose ``X`` is a pandas DataFrame (a ``.npy`` file: its
    array of codes): text cells stay text, a column of whole numbers only
    becomes int64.  ``header="auto"``: the first line is a header unless
    every picked cell of it is a number.  Needs pandas (not for ``.npy``).
    ``missing=True``: an empty cell or a null is NaN (a column of whole
    numbers with one becomes float64, as in pandas); else an error ending
    with ``hint``."""
    path, wanted, ext = _where(path, columns)
    if ext == ".npy":
        X = _read_npy(path)
        idx = _pick(None, X.shape[1], wanted, path)
        X = X if idx is None else np.ascontiguousarray(X[:, idx])
        at = None if missing else _first_nan(X, 1 << 16)
        if at is not None:
            raise DataFileError(_nan_at(path, *at, hint))
        data = Data(X, None, "npy")
    else:
        try:
            import pandas as pd
        except ImportError:
            raise DataFileError("reading a table of categories needs pandas: pip install "
                                "pandas (or pass integer codes in a .npy file)") from None
        if ext in (".parquet", ".pq"):
            data = Data(*_read_parquet_table(path, wanted, pd, missing, hint), "parquet")
        else:
            data = Data(*_read_text_table(path, wanted, "\t" if ext == ".tsv" else None,
                                          header, pd, missing, hint))
    if data.X.shape[0] == 0 or data.X.shape[1] == 0:
        raise DataFileError(f"{path} holds no data ({data.X.shape[0]} rows x "
                            f"{data.X.shape[1]} columns); expected at least one row")
    return data


def _read_parquet_table(path, wanted, pd, missing=False, hint=None):
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
    nan = frame.isna().to_numpy()
    if nan.any() and not missing:
        row, j = (int(v[0]) for v in np.nonzero(nan))
        raise DataFileError(f"column {names[idx[j]]!r} of {path} has a missing value at row "
                            f"{row}; {_no_missing(hint)}")
    return frame, [names[i] for i in idx]


def _read_text_table(path, wanted, delimiter, header, pd, missing=False, hint=None):
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
                if row[j] == "" and not missing:
                    raise DataFileError(f"{path}: line {no}, column {j + 1}: empty cell; "
                                        "every cell needs a category, and "
                                        f"{_no_missing(hint)}")
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
    """A column's cells: int64 if every one is a whole number, else text;
    an empty cell (read with ``missing``) is NaN, and a column of whole
    numbers with one is float64."""
    empty = [c == "" for c in cells]
    if any(empty):
        if all(e or _INTEGER.fullmatch(c) for c, e in zip(cells, empty)):
            return np.array([np.nan if e else float(int(c)) for c, e in zip(cells, empty)])
        return np.array([np.nan if e else c for c, e in zip(cells, empty)], dtype=object)
    if all(_INTEGER.fullmatch(c) for c in cells):
        try:
            return np.array([int(c) for c in cells], dtype=np.int64)
        except OverflowError:
            pass
    return np.array(cells, dtype=object)
