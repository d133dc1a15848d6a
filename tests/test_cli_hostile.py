"""The command line against hostile input: every failure is one line on
stderr and exit code 2, nothing on stdout, never a traceback; and the CSV
reader reads back exactly the numbers written, or names the line and
column of the first bad cell."""

import csv
import io
import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastem
from fastem import _config
from fastem._datafile import read_data
from fastem.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    """A folder of good and bad files."""
    d = tmp_path_factory.mktemp("hostile")
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.normal(size=(40, 2)) + np.repeat([[0.0], [6.0]], 20, axis=0),
                         rng.integers(0, 3, size=40)])
    np.savetxt(d / "d.csv", X, delimiter=",", header="a,b,c", comments="")
    np.save(d / "d.npy", X)
    np.save(d / "cube.npy", np.zeros((2, 2, 2)))
    np.save(d / "none.npy", np.zeros((0, 2)))
    np.save(d / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    texts = {
        "bad.csv": "a,b\n1,2\n3,x\n",
        "empty_first.csv": "1.5,,3\n4,5,6\n",
        "na_first.csv": "NA,2\n1,2\n",
        "blank_lines.csv": "a,b\n\n1,2\n  \n3,\n",
        "ragged.csv": "a,b\n1,2\n3,4,5\n",
        "header_only.csv": "a,b\n",
        "empty.csv": "",
        "blank.csv": "\n \n\t\n",
        "two_rows.csv": "a,b\n1,2\n3,4\n",
        "iris.csv": "5.1,3.5,setosa\n4.9,3.0,setosa\n",
        "decimal_comma.csv": "a;b\n1,5;2\n",
        "junk.fem": "not a model\n",
        "junk.parquet": "not parquet\n",
    }
    for name, text in texts.items():
        (d / name).write_text(text)
    (d / "utf16.csv").write_bytes("a,b\n1,2\n".encode("utf-16"))
    (d / "folder.csv").mkdir()
    gm = fastem.GaussianMixture(2, random_state=0).fit(X[:, :2])
    gm.save(d / "m.fem")
    (d / "truncated.fem").write_bytes((d / "m.fem").read_bytes()[:200])
    return d


def _run(capsys, argv):
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


#: (command line, part of the message); {d} is the folder of files.  Each
#: must end with exit code 2, one line on stderr and nothing on stdout.
HOSTILE = [
    # files that are not there or not data
    ("fit {d}/missing.csv -k 2", "data file '{d}/missing.csv' not found"),
    ("fit {d}/folder.csv -k 2", "is a directory"),
    ("fit {d}/empty.csv -k 1", "is empty"),
    ("fit {d}/blank.csv -k 1", "is empty"),
    ("fit {d}/header_only.csv -k 1", "has a header row (line 1) but no data rows"),
    ("fit {d}/utf16.csv -k 1", "is not UTF-8 text"),
    ("fit {d}/cube.npy -k 1", "expected 2-D"),
    ("fit {d}/none.npy -k 1", "holds no data (0 rows x 2 columns)"),
    ("fit {d}/objects.npy -k 1", "is not a readable .npy array file"),
    ("fit {d}/junk.parquet -k 1", "is not a readable Parquet file"),
    # cells, lines and columns
    ("fit {d}/bad.csv -k 1", "line 3, column 2: 'x' is not a number"),
    ("fit {d}/empty_first.csv -k 1", "line 1, column 2: an empty cell in a first row"),
    ("fit {d}/na_first.csv -k 1", "line 1, column 1: the name 'NA' in a first row"),
    ("fit {d}/blank_lines.csv -k 1", "line 5, column 2: empty cell"),
    ("fit {d}/ragged.csv -k 1", "line 3 has 3 cells, but the first row has 2"),
    ("fit {d}/decimal_comma.csv -k 1", "line 2, column 1: '1,5' is not a number (a decimal"),
    ("fit {d}/iris.csv -k 1", "line 1, column 3: the name 'setosa'"),
    ("fit {d}/iris.csv -k 1 --columns 0,2 --header no", "line 1, column 3: 'setosa' is not"),
    ("fit {d}/d.csv -k 2 --columns zz", "column 'zz' not found in {d}/d.csv; its columns are"),
    ("fit {d}/d.csv -k 2 --columns 7", "column index 7 is out of range"),
    ("fit {d}/d.npy -k 2 --columns 9", "column index 9 is out of range for {d}/d.npy"),
    ("fit {d}/d.npy -k 2 --columns a", "column 'a' not found"),
    ("fit {d}/d.csv -k 1 --columns a --header no", "column 'a' not found"),
    # out-of-range requests
    ("fit {d}/d.csv -k 0", "argument -k/--n-components: expected a whole number >= 1"),
    ("fit {d}/d.csv -k -3", "expected a whole number >= 1"),
    ("fit {d}/two_rows.csv -k 3", "-k asks for 3 components, but only 2 data rows were read"),
    ("fit {d}/d.csv -k 2 --online --batch-size 0", "argument --batch-size: expected a whole"),
    ("fit {d}/d.csv -k 2 --max-iter -1", "argument --max-iter: expected a whole number >= 1"),
    ("fit {d}/d.csv -k 2 --n-init 0", "argument --n-init: expected a whole number >= 1"),
    ("fit {d}/d.csv -k 2 --tol nan", "argument --tol: expected a finite number >= 0"),
    ("fit {d}/d.csv -k 2 --tol -1", "argument --tol: expected a finite number >= 0"),
    ("fit {d}/d.csv -k 2 --reg-covar inf", "argument --reg-covar: expected a finite number"),
    ("fit {d}/d.csv -k 2 --seed -1", "argument --seed: expected a whole number from 0"),
    ("fit {d}/d.csv -k 2 --seed 1.5", "argument --seed: expected a whole number from 0"),
    ("fit {d}/d.csv -k 2 --covariance round", "argument --covariance: invalid choice"),
    ("fit {d}/d.csv -k 2 --header maybe", "argument --header: invalid choice"),
    ("fit {d}/d.csv -k 2 --bogus", "unrecognized arguments: --bogus"),
    ("fit {d}/d.csv -k 2 --online --n-init 3", "--online runs one initialisation"),
    ("select {d}/d.csv -k 1-1000000000", "-k asks for 1,000,000,000 components, but only 40"),
    ("select {d}/d.csv -k 3-1", "-k expects a number, a range like 1-10"),
    ("select {d}/d.csv -k two", "-k expects a number, a range like 1-10"),
    ("select {d}/d.csv -k 0-2", "-k expects numbers of components >= 1"),
    ("select {d}/d.csv -k 1-2 --covariance round", "Unknown covariance type 'round'"),
    ("sample {d}/m.fem -n 0", "argument -n: expected a whole number >= 1"),
    ("sample {d}/m.fem -n -5", "argument -n: expected a whole number >= 1"),
    ("sample {d}/m.fem -n 1000000000000", "GiB of memory, more than half of this machine"),
    ("score {d}/m.fem {d}/d.csv --anomalies 2", "expected a number between 0 and 1"),
    ("score {d}/m.fem {d}/d.csv --anomalies nan", "expected a number between 0 and 1"),
    ("demo --n nope", "argument --n: expected a whole number >= 1"),
    ("demo --iters 0", "argument --iters: expected a whole number >= 1"),
    ("", "the following arguments are required: command"),
    ("frobnicate", "invalid choice: 'frobnicate'"),
    # model files
    ("predict {d}/missing.fem {d}/d.csv", "model file '{d}/missing.fem' not found"),
    ("predict {d}/folder.csv {d}/d.csv", "model file '{d}/folder.csv' is a directory"),
    ("predict {d}/junk.fem {d}/d.csv", "expected a fastem model file"),
    ("predict {d}/truncated.fem {d}/d.csv", "truncated or corrupted"),
    ("predict {d}/m.fem {d}/d.csv", "has 3 columns, but the model was fitted on 2"),
    # output that cannot be written, refused before any work
    ("fit {d}/d.csv -k 2 -o {d}/folder.csv", "cannot write -o/--output '{d}/folder.csv': it is"),
    ("fit {d}/d.csv -k 2 -o {d}/no/m.fem", "the directory '{d}/no' does not exist"),
    ("fit {d}/d.csv -k 2 --plot {d}/no/c.png", "cannot write --plot '{d}/no/c.png'"),
    ("predict {d}/m.fem {d}/d.csv --columns a,b -o {d}/no/p.csv", "does not exist"),
    ("sample {d}/m.fem -n 5 -o {d}/folder.csv", "it is a directory"),
    ("predict {d}/m.fem {d}/d.csv --columns a,b -o ''", "the name is empty"),
]
if os.path.isdir("/proc"):  # passes the early check, fails when opened
    HOSTILE.append(("predict {d}/m.fem {d}/d.csv --columns a,b -o /proc/p.csv",
                    "No such file or directory: '/proc/p.csv'"))


def _assert_one_line_error(rc, out, err, message):
    assert rc == 2, (rc, err)
    assert out == "", out
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("fastem") and ": error: " in lines[0], err
    assert message in lines[0], err
    assert "Traceback" not in err


@pytest.mark.parametrize("command, message", HOSTILE, ids=[c or "(none)" for c, _ in HOSTILE])
def test_hostile_command_lines_fail_in_one_line(d, capsys, command, message):
    argv = [a.format(d=d) for a in shlex.split(command)]
    rc, out, err = _run(capsys, argv)
    _assert_one_line_error(rc, out, err, message.format(d=d))


def test_a_bad_fastem_variable_is_one_line_in_process(d, capsys, monkeypatch):
    monkeypatch.setattr(_config, "PROBLEMS", ["environment variable FASTEM_N_SLOTS must be "
                                              "a whole number >= 1, got '0'"])
    rc, out, err = _run(capsys, ["fit", d / "d.csv", "-k", "2"])
    _assert_one_line_error(rc, out, err, "FASTEM_N_SLOTS must be a whole number >= 1")


def test_score_json_is_all_or_nothing(d, capsys, monkeypatch):
    """A result JSON cannot hold (-inf) prints nothing on stdout, not half
    an object."""
    monkeypatch.setattr(fastem.GaussianMixture, "score_samples",
                        lambda self, X: np.full(len(X), -np.inf))
    rc, out, err = _run(capsys, ["score", d / "m.fem", d / "d.csv", "--columns", "a,b",
                                 "--json"])
    _assert_one_line_error(rc, out, err, "JSON cannot represent")


def test_an_unreadable_file_is_one_line(d, capsys, monkeypatch):
    def denied(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))
    monkeypatch.setattr("fastem._datafile.open", denied, raising=False)
    rc, out, err = _run(capsys, ["fit", d / "d.csv", "-k", "2"])
    _assert_one_line_error(rc, out, err, f"cannot read {d}/d.csv: Permission denied")


def test_out_of_memory_is_one_line(d, capsys, monkeypatch):
    def no_memory(*args, **kwargs):
        raise MemoryError
    monkeypatch.setattr(fastem.GaussianMixture, "fit", no_memory)
    rc, out, err = _run(capsys, ["fit", d / "d.csv", "-k", "2", "--columns", "a,b"])
    _assert_one_line_error(rc, out, err, "not enough memory")


def _cli(args, env=None):
    """``python -m fastem`` or the installed ``fastem`` script in a fresh
    process (where the FASTEM_* variables are read at import)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run(args, capture_output=True, text=True, env=env, cwd=ROOT)


SCRIPT = Path(sys.executable).with_name("fastem")


def test_a_bad_fastem_variable_never_shows_a_traceback(d):
    """Read at import: ``fastem --help`` still helps, a command fails in one
    line (``python -m fastem`` and the installed script alike), and the
    library raises ConfigError at its first fit, not at import."""
    block, cache = {"FASTEM_BLOCK_SIZE": "abc"}, {"FASTEM_CACHE": "maybe"}
    helped = _cli([sys.executable, "-m", "fastem", "--help"], block)
    assert helped.returncode == 0 and "usage: fastem" in helped.stdout, helped.stderr
    script = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "fastem"]
    for entry, env, variable in ((script, block, "FASTEM_BLOCK_SIZE"),
                                 ([sys.executable, "-m", "fastem"], cache, "FASTEM_CACHE")):
        failed = _cli(entry + ["fit", str(d / "d.csv"), "-k", "2"], env)
        _assert_one_line_error(failed.returncode, failed.stdout, failed.stderr,
                               f"environment variable {variable} must be")
    library = _cli([sys.executable, "-c", "import fastem, numpy as np\n"
                    "fastem.GaussianMixture(1).fit(np.ones((4, 1)))"], cache)
    assert library.returncode == 1, library.stderr
    assert "ConfigError: environment variable FASTEM_CACHE must be" in library.stderr


def test_a_closed_stdout_ends_quietly(d):
    """`fastem sample ... | head -1`: no error, no second message at exit."""
    proc = subprocess.Popen([sys.executable, "-m", "fastem", "sample", str(d / "m.fem"),
                             "-n", "200000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=ROOT)
    assert proc.stdout.readline().startswith(b"x0,x1,component")
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait() == 141 and err == "", err


# --------------------------------------------------------------------------
# what a good file gives: every row, the header stated
# --------------------------------------------------------------------------

def test_bom_headerless_file_keeps_its_first_row_and_says_so(d, capsys, tmp_path):
    X = np.loadtxt(d / "d.csv", delimiter=",", skiprows=1)
    text = "\r\n".join(",".join(_repr(v) for v in row) for row in X)
    (tmp_path / "bom.csv").write_bytes(b"\xef\xbb\xbf" + text.encode())
    rc, out, _ = _run(capsys, ["fit", tmp_path / "bom.csv", "-k", "2", "--seed", "0", "--json"])
    s = json.loads(out)
    assert rc == 0 and s["n_samples"] == 40
    assert s["data"] == {"file": str(tmp_path / "bom.csv"), "rows": 40, "columns": 3,
                         "names": None, "header": False, "header_line": None}
    rc, out, _ = _run(capsys, ["fit", tmp_path / "bom.csv", "-k", "2", "--seed", "0"])
    assert f"  data: 40 rows x 3 columns read from {tmp_path / 'bom.csv'} (no header row)" \
        in out.splitlines()


def test_score_and_predict_state_the_rows_read_on_stderr(d, capsys):
    rc, out, err = _run(capsys, ["score", d / "m.fem", d / "d.csv", "--columns", "a,b"])
    assert rc == 0 and len(out.splitlines()) == 41
    assert err.splitlines() == [f"fastem score: 40 rows x 2 columns read from {d}/d.csv "
                                "after the header row on line 1"]
    rc, out, err = _run(capsys, ["score", d / "m.fem", d / "d.csv", "--columns", "a,b",
                                 "--json"])
    assert err == "" and json.loads(out)["data"]["rows"] == 40
    rc, out, err = _run(capsys, ["predict", d / "m.fem", d / "d.csv", "--columns", "0,1",
                                 "-q"])
    assert rc == 0 and err == "" and len(out.splitlines()) == 41


def test_forced_header_and_picked_numeric_columns(d, capsys, tmp_path):
    (tmp_path / "years.csv").write_text("2019,2020\n1,2\n3,5\n2,9\n")
    A = read_data(tmp_path / "years.csv", header="yes")
    assert A.names == ["2019", "2020"] and A.X.shape == (3, 2) and A.header_line == 1
    assert read_data(tmp_path / "years.csv").X.shape == (4, 2)  # auto: all numbers, data
    B = read_data(d / "iris.csv", "0,1")  # the picked cells decide: data
    np.testing.assert_array_equal(B.X, [[5.1, 3.5], [4.9, 3.0]])
    (tmp_path / "pandas.csv").write_text(",a,b\n0,1.5,2\n1,2.5,3\n")
    C = read_data(tmp_path / "pandas.csv")  # pandas' unnamed index column
    assert C.names == ["Unnamed: 0", "a", "b"] and C.X.shape == (2, 3)
    rc, out, err = _run(capsys, ["select", tmp_path / "years.csv", "--header", "yes",
                                 "--covariance", "spherical", "--json", "-q"])
    s = json.loads(out)  # the default -k 1-10 stops at the 3 rows read
    assert rc == 0 and [r["n_components"] for r in s["table"]] == [1, 2, 3]


# --------------------------------------------------------------------------
# the CSV reader, fuzzed
# --------------------------------------------------------------------------

def _integer(v):
    return str(int(v))


def _repr(v):
    return repr(float(v))


FORMATS = (_repr, "{:.17g}".format, "{:.17e}".format, _integer)


@st.composite
def tables(draw):
    """A random numeric table written as text, with or without a header,
    byte-order mark, quotes, padding, blank lines, CRLF line ends: (text,
    values, names, line of the header, 1-based line of each data row)."""
    n, d = draw(st.integers(1, 6)), draw(st.integers(1, 4))
    floats = st.floats(-1e12, 1e12, allow_nan=False, allow_infinity=False)
    values = np.array([[draw(floats) for _ in range(d)] for _ in range(n)])
    fmt = draw(st.lists(st.sampled_from(FORMATS), min_size=d, max_size=d))
    for j, f in enumerate(fmt):
        if f is _integer:
            values[:, j] = np.trunc(values[:, j])
    pad = draw(st.sampled_from(["", " ", "  "]))
    rows = [[pad + f(v) + pad for f, v in zip(fmt, row)] for row in values]
    names = [f"c{j}" + draw(st.sampled_from(["", "_x", "Y"])) for j in range(d)]
    header = draw(st.booleans())
    delimiter = draw(st.sampled_from([",", ";", "\t"]))
    quoting = draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL]))
    buf = io.StringIO()
    csv.writer(buf, delimiter=delimiter, quoting=quoting, lineterminator="\n").writerows(
        ([names] if header else []) + rows)
    lines = buf.getvalue().splitlines()
    for at in sorted(draw(st.lists(st.integers(0, len(lines)), max_size=4)), reverse=True):
        lines.insert(at, draw(st.sampled_from(["", "  ", "\t"])))
    filled = [no for no, line in enumerate(lines, 1) if line.strip()]
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    text = eol.join(lines) + draw(st.sampled_from(["", eol]))
    if draw(st.booleans()):
        text = "\ufeff" + text
    return (text, values, names if header else None, filled[0] if header else None,
            filled[header:])


def _read_text(text):
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "t.csv")
        with open(path, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        return read_data(path)


FUZZ = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(tables())
def test_fuzz_every_number_read_back_no_row_lost(table):
    text, values, names, header_line, _ = table
    data = _read_text(text)
    np.testing.assert_array_equal(data.X, values)
    assert data.names == names and data.header_line == header_line


@FUZZ
@given(tables(), st.data())
def test_fuzz_a_bad_cell_is_named_by_line_and_column(table, draw):
    text, values, names, _, data_lines = table
    n, d = values.shape
    row, col = draw.draw(st.integers(0, n - 1)), draw.draw(st.integers(0, d - 1))
    bad = draw.draw(st.sampled_from(["", "NA", "abc", "1.2.3", "--1"]))
    if d == 1 and (bad == "" or (row == 0 and names is None)):
        return  # one column: an empty cell is a blank line, a lone name a header
    lines = text.split("\n")
    no = data_lines[row]
    line, eol = (lines[no - 1][:-1], "\r") if lines[no - 1].endswith("\r") else \
        (lines[no - 1], "")
    delimiter = next((c for c in ",;\t" if c in line), "") if d > 1 else ""
    cells = line.split(delimiter) if delimiter else [line]
    cells[col] = bad
    lines[no - 1] = delimiter.join(cells) + eol
    with pytest.raises(ValueError) as exc:
        _read_text("\n".join(lines))
    assert f"line {no}, column {col + 1}: " in str(exc.value), str(exc.value)
