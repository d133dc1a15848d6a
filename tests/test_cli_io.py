"""Command-line I/O: CSV/TSV/Parquet read by pyarrow (NumPy without it),
files larger than ``FASTEM_CHUNK_BYTES`` streamed chunk by chunk (predict,
score) or copied to a memory map and fitted out of core (fit), output
written chunk by chunk; the results and the one-line errors are those of
the in-memory path."""

import os
import subprocess
import sys

import numpy as np
import pytest

import fastem
from fastem import _config, _datafile, cli
from fastem._datafile import DataFileError, open_data, read_data
from fastem.cli import main, write_table

SMALL = 2048  # FASTEM_CHUNK_BYTES for the streaming runs: files here are larger


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    d = tmp_path_factory.mktemp("io")
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(300, 3)), rng.normal(size=(300, 3)) + 5]).round(6)
    np.savetxt(d / "d.csv", X, delimiter=",", header="a,b,c", comments="", fmt="%.6f")
    np.savetxt(d / "d.tsv", X, delimiter="\t", header="a\tb\tc", comments="", fmt="%.6f")
    np.save(d / "d.npy", X)
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"a": X[:, 0], "b": X[:, 1], "c": X[:, 2]}), d / "d.parquet",
                   row_group_size=100)
    fastem.GaussianMixture(2, random_state=0).fit(X).save(d / "m.fem")
    # larger than pyarrow's smallest block (16 KiB): bad lines in a later block
    big = np.tile(X, (4, 1))
    lines = ["a,b,c"] + [",".join(f"{v:.6f}" for v in row) for row in big]
    (d / "big.csv").write_text("\n".join(lines) + "\n")
    for name, line_no, text in [("bad_cell", 2000, "1.0,x,2.0"), ("ragged", 2100, "1,2"),
                                ("empty_cell", 2200, "1.0,,2.0"),
                                ("comma", 2300, '1.0,"1,5",2.0')]:
        bad = list(lines)
        bad[line_no - 1] = text
        (d / f"{name}.csv").write_text("\n".join(bad) + "\n")
    spaced = list(lines)
    spaced[1500] = "   "  # a whitespace-only line: skipped (pyarrow would not)
    (d / "spaced.csv").write_text("\r\n".join(spaced) + "\r\n")
    (d / "bom_cr.csv").write_bytes(b"\xef\xbb\xbf\r\n" + "\r".join(lines).encode() + b"\r")
    (d / "header_only.csv").write_text("a,b,c\n\n")
    (d / "empty.csv").write_text("")
    pq.write_table(pa.table({"a": np.r_[X[:, 0], np.nan], "b": np.r_[X[:, 1], 0.0],
                             "c": np.r_[X[:, 2], 0.0], "s": ["x"] * (len(X) + 1)}),
                   d / "holes.parquet", row_group_size=100)
    return d


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(_config, "CHUNK_BYTES", SMALL, raising=False)


def _run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def _both(capsys, monkeypatch, *argv):
    """The output of a command line run in memory and streamed."""
    rc, whole, _ = _run(capsys, *argv)
    assert rc == 0
    monkeypatch.setattr(_config, "CHUNK_BYTES", SMALL, raising=False)
    rc, streamed, err = _run(capsys, *argv)
    monkeypatch.undo()
    assert rc == 0
    return whole, streamed, err


def _same_table(a, b):
    """The same CSV table: the same header and labels, the same numbers to
    rounding (a chunk of at most 512 rows runs NumPy versions of the
    kernels, whose results differ from the kernels' in the last bits)."""
    assert a.splitlines()[0] == b.splitlines()[0]
    A, B = (np.loadtxt(t.splitlines()[1:], delimiter=",", ndmin=2) for t in (a, b))
    assert A.shape == B.shape
    np.testing.assert_allclose(A, B, rtol=1e-10, atol=1e-12)


def test_the_small_files_stream(d, small_chunks):
    stream = open_data(d / "d.csv")
    assert stream.large and stream.chunk_rows == SMALL // 24
    chunks = list(stream)
    assert len(chunks) > 5 and sum(len(c) for c in chunks) == stream.n_rows == 600
    np.testing.assert_array_equal(np.concatenate(chunks), np.load(d / "d.npy"))


@pytest.mark.parametrize("name", ["d.csv", "d.tsv", "d.parquet", "big.csv", "spaced.csv",
                                  "bom_cr.csv"])
@pytest.mark.parametrize("what", [("predict",), ("predict", "--proba"), ("score",),
                                  ("score", "--anomalies", "0.05")])
def test_streamed_output_is_the_in_memory_output(d, capsys, monkeypatch, name, what):
    whole, streamed, err = _both(capsys, monkeypatch, what[0], d / "m.fem", d / name, *what[1:])
    _same_table(streamed, whole)
    assert len(whole.splitlines()) == 1 + len(read_data(d / name).X)
    assert f"{len(whole.splitlines()) - 1} rows x 3 columns read from" in err


def test_formats_agree_and_the_output_reads_back(d, capsys):
    outs = {name: _run(capsys, "score", d / "m.fem", d / name)[1]
            for name in ("d.csv", "d.tsv", "d.parquet", "d.npy")}
    assert len(set(outs.values())) == 1
    logp = fastem.load(d / "m.fem").score_samples(np.load(d / "d.npy"))
    np.testing.assert_array_equal(np.loadtxt(outs["d.csv"].splitlines()[1:]), logp)


def test_write_table_round_trips_every_float(tmp_path):
    rng = np.random.default_rng(1)
    v = np.r_[rng.normal(size=500) * 10.0 ** rng.integers(-300, 300, 500), 0.0, -0.0, 1.0,
              1e-5, 2.5e-300, 1.7976931348623157e308]
    write_table(str(tmp_path / "v.csv"), ["v", "i"], [v, np.arange(len(v))])
    back = read_data(tmp_path / "v.csv")
    assert back.names == ["v", "i"]
    np.testing.assert_array_equal(back.X[:, 0], v)
    np.testing.assert_array_equal(back.X[:, 1], np.arange(len(v)))


@pytest.mark.parametrize("name", ["d.csv", "d.parquet"])
def test_fit_through_the_memory_map_is_the_in_memory_fit(d, tmp_path, monkeypatch, capsys,
                                                         name):
    argv = ["fit", d / name, "-k", 2, "--covariance", "full", "--seed", 0, "--n-init", 2]
    assert _run(capsys, *argv, "-o", tmp_path / "a.fem")[0] == 0
    copies = []
    monkeypatch.setattr(cli, "to_memmap",
                        lambda s, f: copies.append(_datafile.to_memmap(s, f)) or copies[-1])
    monkeypatch.setattr(_config, "CHUNK_BYTES", SMALL, raising=False)
    rc, out, _ = _run(capsys, *argv, "-o", tmp_path / "c.fem")
    assert rc == 0 and not copies  # smaller than FIT_IN_MEMORY_BYTES: read whole
    monkeypatch.setattr(cli, "FIT_IN_MEMORY_BYTES", 0)
    rc, out, _ = _run(capsys, *argv, "-o", tmp_path / "b.fem")
    assert rc == 0 and "600 rows x 3 columns read from" in out
    assert len(copies) == 1 and isinstance(copies[0], np.memmap)
    assert not os.path.exists(copies[0].filename)  # the temporary copy is gone
    a, b = fastem.load(tmp_path / "a.fem"), fastem.load(tmp_path / "b.fem")
    for attr in ("weights_", "means_", "covariances_"):
        np.testing.assert_allclose(getattr(b, attr), getattr(a, attr), rtol=0, atol=1e-10)
    assert list(b.feature_names_in_) == ["a", "b", "c"]


def test_fit_streamed_json_and_online(d, capsys, small_chunks, monkeypatch):
    monkeypatch.setattr(cli, "FIT_IN_MEMORY_BYTES", 0)
    rc, out, _ = _run(capsys, "fit", d / "big.csv", "-k", 2, "--json", "--seed", 0)
    assert rc == 0 and '"rows": 2400' in out
    rc, out, _ = _run(capsys, "fit", d / "big.csv", "-k", 2, "--online", "--seed", 0, "-q")
    assert rc == 0 and "2400 rows x 3 features" in out


def test_columns_stream(d, capsys, monkeypatch):
    argv = ("predict", d / "m.fem", d / "big.csv", "--columns", "c,0,b")
    whole, streamed, _ = _both(capsys, monkeypatch, *argv)
    _same_table(streamed, whole)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_config, "CHUNK_BYTES", SMALL, raising=False)
        X = read_data(d / "big.csv", "c,0,b").X
    np.testing.assert_array_equal(X, np.tile(np.load(d / "d.npy"), (4, 1))[:, [2, 0, 1]])


def test_without_pyarrow_the_same(d, capsys, monkeypatch):
    expected = {n: _run(capsys, "predict", d / "m.fem", d / n)[1]
                for n in ("big.csv", "spaced.csv")}
    monkeypatch.setattr(_datafile, "_pyarrow", lambda: None)
    monkeypatch.setattr(cli, "_pyarrow", lambda: None)
    for chunk in (None, SMALL):
        if chunk:
            monkeypatch.setattr(_config, "CHUNK_BYTES", chunk, raising=False)
        for name, out in expected.items():
            _same_table(_run(capsys, "predict", d / "m.fem", d / name)[1], out)


#: (file, the error); each for fit, predict and score, in memory and streamed
ERRORS = [
    ("bad_cell.csv", ("{d}/bad_cell.csv: line 2000, column 2: 'x' is not a number; "
                      "expected numbers only")),
    ("ragged.csv", ("{d}/ragged.csv: line 2100 has 2 cells, but the first row has 3; "
                    "every row needs the same number of columns")),
    ("empty_cell.csv", "{d}/empty_cell.csv: line 2200, column 2: empty cell; expected"),
    ("comma.csv", "line 2300, column 2: '1,5' is not a number (a decimal comma: write 1.5"),
    ("header_only.csv", "{d}/header_only.csv has a header row (line 1) but no data rows"),
    ("empty.csv", "{d}/empty.csv is empty (no line holds anything but whitespace)"),
    ("missing.csv", "data file '{d}/missing.csv' not found"),
    ("holes.parquet", ("column 'a' of {d}/holes.parquet has a missing value at row 600; "
                       "missing values are not supported")),
]


@pytest.mark.parametrize("chunk", [None, SMALL])
@pytest.mark.parametrize("command", ["fit", "predict", "score"])
@pytest.mark.parametrize("name,message", ERRORS)
def test_errors_are_the_same_one_line(d, capsys, monkeypatch, tmp_path, chunk, command, name,
                                      message):
    if chunk:
        monkeypatch.setattr(_config, "CHUNK_BYTES", chunk, raising=False)
        monkeypatch.setattr(cli, "FIT_IN_MEMORY_BYTES", 0)
    argv = (["fit", d / name, "-k", 2] if command == "fit" else
            [command, d / "m.fem", d / name, "-o", tmp_path / "out.csv"])
    if name == "holes.parquet":
        argv += ["--columns", "a,b,c"]
    rc, out, err = _run(capsys, *argv)
    assert rc == 2 and out == "" and len(err.splitlines()) == 1, err
    assert message.format(d=d) in err, err
    assert not (tmp_path / "out.csv").exists()  # no partial output left behind


@pytest.mark.parametrize("argv,message", [
    (["--columns", "zz"], "column 'zz' not found in {d}/big.csv; its columns are: a, b, c"),
    (["--columns", "5"], "column index 5 is out of range for {d}/big.csv, which has 3"),
    (["--columns", "a,b"], "{d}/big.csv has 2 columns, but the model was fitted on 3"),
])
def test_column_errors_streamed(d, capsys, small_chunks, argv, message):
    rc, out, err = _run(capsys, "predict", d / "m.fem", d / "big.csv", *argv)
    assert rc == 2 and out == "" and len(err.splitlines()) == 1
    assert message.format(d=d) in err, err


def test_parquet_non_numeric_column(d, capsys, small_chunks):
    rc, _, err = _run(capsys, "predict", d / "m.fem", d / "holes.parquet", "--columns", "a,b,s")
    assert rc == 2 and "column 's' of" in err and "is not numeric (type string)" in err


def test_a_bad_line_streamed_to_stdout(d, capsys, small_chunks):
    """Streamed to stdout, the rows before a bad line are out before it is
    found (documented); the error is the same one line."""
    rc, out, err = _run(capsys, "predict", d / "m.fem", d / "bad_cell.csv")
    assert rc == 2 and "line 2000, column 2: 'x' is not a number" in err
    # what was printed is exactly the start of the good file's output, and
    # stops before the chunk holding the bad line (line 2000: data row 1998)
    rc_good, good, _ = _run(capsys, "predict", d / "m.fem", d / "big.csv")
    printed, whole = out.splitlines(), good.splitlines()
    assert rc_good == 0 and 1 < len(printed) <= 1998
    assert printed == whole[:len(printed)]


def test_streaming_in_a_subprocess(d, tmp_path):
    """FASTEM_CHUNK_BYTES from the environment: the command line as run."""
    env = {**os.environ, "FASTEM_CHUNK_BYTES": str(SMALL)}
    cmd = [sys.executable, "-m", "fastem.cli"]
    run = subprocess.run(cmd + ["predict", str(d / "m.fem"), str(d / "big.csv"), "-o",
                                str(tmp_path / "p.csv")], env=env, capture_output=True,
                         text=True, check=False)
    assert run.returncode == 0, run.stderr
    labels = np.loadtxt(tmp_path / "p.csv", skiprows=1)
    X = np.tile(np.load(d / "d.npy"), (4, 1))
    np.testing.assert_array_equal(labels, fastem.load(d / "m.fem").predict(X))
    run = subprocess.run(cmd + ["fit", str(d / "bad_cell.csv"), "-k", "2"], env=env,
                         capture_output=True, text=True, check=False)
    assert run.returncode == 2 and run.stderr.count("\n") == 1
    assert "line 2000, column 2: 'x' is not a number" in run.stderr


def test_read_data_errors_unchanged(d):
    with pytest.raises(DataFileError, match="line 2000, column 2: 'x' is not a number"):
        read_data(d / "bad_cell.csv")


@pytest.mark.parametrize("argv", [("predict", "{d}/m.fem", "{d}/big.csv"),
                                  ("predict", "{d}/m.fem", "{d}/d.parquet", "--proba"),
                                  ("score", "{d}/m.fem", "{d}/big.csv"),
                                  ("score", "{d}/m.fem", "{d}/big.csv", "--anomalies", "0.1"),
                                  ("fit", "{d}/big.csv", "-k", "2")])
def test_streamed_commands_never_read_a_file_whole(d, capsys, small_chunks, monkeypatch, argv):
    def whole(*_):
        raise AssertionError("read whole")

    monkeypatch.setattr(_datafile.DataStream, "read_all", whole)
    monkeypatch.setattr(cli, "read_data", whole)
    monkeypatch.setattr(cli, "FIT_IN_MEMORY_BYTES", 0)
    rc, _, err = _run(capsys, *(a.format(d=d) for a in argv))
    assert rc == 0, err


# ----------------------------------------------------------------------
# the estimators imported while the data is read (cli._Meanwhile, _Ahead)
# ----------------------------------------------------------------------


def _threads(prefix="fastem-"):
    import threading

    return [t.name for t in threading.enumerate()
            if t.name.startswith(prefix) and t.name[len(prefix):].isalpha()]


@pytest.mark.parametrize("chunk", [None, SMALL])
def test_an_option_error_comes_before_a_data_error(d, capsys, monkeypatch, chunk):
    """fit checks its options on a helper thread while the file is read:
    a bad option and a bad file report the option, as one after the other
    would; a bad file alone reports the file."""
    if chunk:
        monkeypatch.setattr(_config, "CHUNK_BYTES", chunk, raising=False)
    rc, _, err = _run(capsys, "fit", d / "bad_cell.csv", "-k", "2", "--online", "--n-init", "3")
    assert rc == 2 and "--online runs one initialisation" in err
    rc, _, err = _run(capsys, "fit", d / "bad_cell.csv", "-k", "2", "--family", "poisson",
                      "--covariance", "diag")
    assert rc == 2 and "--covariance is for --family gaussian only" in err
    rc, _, err = _run(capsys, "fit", d / "bad_cell.csv", "-k", "2")
    assert rc == 2 and "line 2000, column 2: 'x' is not a number" in err
    assert _threads() == []


@pytest.mark.parametrize("command", ["predict", "score"])
@pytest.mark.parametrize("chunk", [None, SMALL])
def test_a_model_error_comes_before_a_data_error(d, capsys, monkeypatch, tmp_path, command,
                                                 chunk):
    """The model is built on a helper thread while the data is read (or its
    first chunks parsed ahead): a model that fails only when built (its
    file intact) is reported before a bad data file, and the reader thread
    is stopped."""
    from test_save_load import _rewrite

    bad_model = _rewrite(d / "m.fem", tmp_path / "bad.fem", resign=True,
                         meta=lambda m: m["params"].update(no_such_parameter=1))
    if chunk:
        monkeypatch.setattr(_config, "CHUNK_BYTES", chunk, raising=False)
    for data in ("bad_cell.csv", "d.csv"):
        rc, out, err = _run(capsys, command, bad_model, d / data)
        assert rc == 2 and "no_such_parameter" in err and out == ""
    rc, _, err = _run(capsys, command, d / "m.fem", d / "bad_cell.csv")
    assert rc == 2 and "line 2000, column 2: 'x' is not a number" in err
    assert _threads() == []


def test_the_reader_thread_stops_when_the_output_fails(d, capsys, small_chunks, monkeypatch):
    """A streamed predict that fails after its first chunk (here the pipe
    closed) stops the helper that parses ahead."""
    calls = []
    real = cli._CsvOut.write

    def write(self, columns):
        calls.append(1)
        if len(calls) == 2:
            raise BrokenPipeError
        return real(self, columns)

    monkeypatch.setattr(cli._CsvOut, "write", write)
    rc, _, _ = _run(capsys, "predict", d / "m.fem", d / "big.csv")
    assert rc == 141 and len(calls) == 2
    assert _threads() == []


def test_ahead_keeps_order_and_raises_in_place():
    items = []

    def produce():
        for i in range(5):
            items.append(i)
            yield i
        raise DataFileError("bad line")

    got = []
    with pytest.raises(DataFileError, match="bad line"):
        for x in cli._Ahead(produce(), depth=2):
            got.append(x)
    assert got == [0, 1, 2, 3, 4]
    ahead = cli._Ahead(iter(range(100)), depth=2)
    assert next(iter(ahead)) == 0
    ahead.close()  # a consumer that stops early: the producer ends
    assert not ahead._thread.is_alive()


def test_arrow_columns_to_one_array():
    """Chunks read in place (float64 without nulls, sliced at any offset)
    or converted (other types), a record batch at a time."""
    import pyarrow as pa

    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 3))
    ints = np.arange(50)
    table = pa.Table.from_batches([pa.record_batch({"a": X[:20, 0], "b": ints[:20],
                                                    "c": X[:20, 2]}),
                                   pa.record_batch({"a": X[20:, 0], "b": ints[20:],
                                                    "c": X[20:, 2]})])
    sliced = table.slice(7, 31)  # chunks with non-zero offsets
    got = _datafile._arrow_to_array(sliced, ["c", "a", "b", "a"])
    want = np.column_stack([X[7:38, 2], X[7:38, 0], ints[7:38], X[7:38, 0]])
    assert got.flags.c_contiguous and got.dtype == np.float64
    np.testing.assert_array_equal(got, want)
    seen = []
    _datafile._arrow_to_array(sliced, ["a"], lambda j, v, r: seen.append((j, r, len(v))) or v)
    assert seen == [(0, 0, 13), (0, 13, 18)]
    with_null = pa.table({"a": pa.array([1.0, None, 3.0])})
    np.testing.assert_array_equal(_datafile._arrow_to_array(with_null, ["a"]).ravel(),
                                  [1.0, np.nan, 3.0])


def test_the_command_exits_with_its_output_flushed(d, tmp_path):
    """``fastem`` ends its process with os._exit after flushing: the output
    is whole, the exit code the command's."""
    env = {**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(fastem.__file__))}
    run = [sys.executable, "-m", "fastem"]
    out = subprocess.run([*run, "predict", d / "m.fem", d / "big.csv", "-q"], env=env,
                         capture_output=True, text=True)
    assert out.returncode == 0 and out.stderr == ""
    assert out.stdout.splitlines()[0] == "label" and len(out.stdout.splitlines()) == 2401
    bad = subprocess.run([*run, "fit", d / "bad_cell.csv", "-k", "2"], env=env,
                         capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "line 2000" in bad.stderr
    head = subprocess.run(f"{sys.executable} -m fastem predict {d / 'm.fem'} {d / 'big.csv'} "
                          "| head -1", shell=True, env=env, capture_output=True, text=True)
    assert head.stdout == "label\n" and head.stderr == ""


def test_the_cli_io_benchmark_runs(capsys):
    """benchmarks/cli_io.py (the table of docs/cli.md) at a smoke size."""
    import runpy

    script = os.path.join(os.path.dirname(os.path.dirname(fastem.__file__)), "benchmarks",
                          "cli_io.py")
    m = runpy.run_path(script)["main"](["--rows", "3000", "--repeats", "1"])
    out = capsys.readouterr().out
    assert "| fit -k 8 diag |" in out and "| predict |" in out
    assert all(v > 0 for v in m.values()) and m["cli_fit"] > m["fit"]
