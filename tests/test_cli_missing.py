"""Missing values on the command line: ``fit --missing em`` reads empty
cells (cells ``NaN``, Parquet nulls) as NaN and fits
``GaussianMixture(missing='em')``; ``predict`` and ``score`` read them so
for a model saved with ``missing='em'``; ``fastem impute`` fills them in.
pyarrow and NumPy, in memory and streamed, give the same NaN positions and
the same one-line errors, which without the flag point to ``--missing em``."""

import numpy as np
import pytest

import fastem
from fastem import _config, _datafile, cli
from fastem._datafile import DataFileError, open_data, read_data
from fastem._registry import FAMILIES
from fastem.cli import main

SMALL = 2048  # FASTEM_CHUNK_BYTES for the streaming runs: the files here are larger


def _cell(v):
    return "" if np.isnan(v) else repr(float(v))


def _write_csv(path, X, header="a,b,c", sep=",", cell=_cell):
    lines = ([header] if header else []) + [sep.join(cell(v) for v in row) for row in X]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def d(tmp_path_factory):
    d = tmp_path_factory.mktemp("missing")
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(120, 3)), rng.normal(size=(120, 3)) + 4]).round(4)
    M = rng.random(X.shape) < 0.1
    M[M.all(axis=1), 0] = False  # no row with every value missing
    Xn = np.where(M, np.nan, X)
    _write_csv(d / "holes.csv", Xn)
    _write_csv(d / "holes.tsv", Xn, header="a\tb\tc", sep="\t")
    _write_csv(d / "noheader.csv", Xn, header=None)
    # the same NaN positions spelled otherwise: NaN/nan cells, a quoted empty
    # cell and a cell of spaces (pyarrow gives up on those: NumPy reads them)
    spellings = iter(["NaN", "nan", '""', "  ", ""])
    _write_csv(d / "spelled.csv", Xn,
               cell=lambda v: next(spellings, "") if np.isnan(v) else repr(float(v)))
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({c: pa.array(Xn[:, j], mask=np.isnan(Xn[:, j]))
                             for j, c in enumerate("abc")}), d / "holes.parquet",
                   row_group_size=50)
    empty_row = Xn.copy()
    empty_row[200] = np.nan  # data row 200, line 202 of the file
    _write_csv(d / "empty_row.csv", empty_row)
    nan_cell = X.copy()
    nan_cell[150, 2] = np.nan
    _write_csv(d / "nan_cell.csv", nan_cell, cell=lambda v: "NaN" if np.isnan(v) else
               repr(float(v)))
    np.save(d / "holes.npy", Xn)
    model = fastem.GaussianMixture(2, missing="em", random_state=0).fit(Xn)
    model.save(d / "em.fem")
    fastem.GaussianMixture(2, random_state=0).fit(X).save(d / "raise.fem")
    return {"d": d, "X": X, "Xn": Xn, "model": model}


def _run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def _no_pyarrow(monkeypatch):
    monkeypatch.setattr(_datafile, "_pyarrow", lambda: None)
    monkeypatch.setattr(cli, "_pyarrow", lambda: None)


def _streamed(monkeypatch):
    monkeypatch.setattr(_config, "CHUNK_BYTES", SMALL, raising=False)
    monkeypatch.setattr(cli, "FIT_IN_MEMORY_BYTES", 0)


def _table(text):
    """A CSV written by the command line: its header row and its numbers."""
    lines = text.splitlines()
    return lines[0], np.loadtxt(lines[1:], delimiter=",", ndmin=2)


def _same_fit(a, b, rtol=1e-10):
    for attr in ("weights_", "means_", "covariances_"):
        np.testing.assert_allclose(getattr(a, attr), getattr(b, attr), rtol=rtol, atol=1e-12)


# ----------------------------------------------------------------------
# reading: the NaN positions, whatever reads them
# ----------------------------------------------------------------------

def _readers(names, hows=("pyarrow", "numpy")):
    """(reader, file) pairs; Parquet is read by pyarrow only, so never with
    the NumPy fallback."""
    return [(how, name) for how in hows for name in names
            if not ("numpy" in how and name.endswith(".parquet"))]


@pytest.mark.parametrize("chunk", [None, SMALL])
@pytest.mark.parametrize("how, name", _readers(["holes.csv", "holes.tsv", "noheader.csv",
                                                "spelled.csv", "holes.parquet", "holes.npy"]))
def test_missing_cells_read_as_nan(d, monkeypatch, how, chunk, name):
    if how == "numpy":
        _no_pyarrow(monkeypatch)
    if chunk:
        monkeypatch.setattr(_config, "CHUNK_BYTES", chunk, raising=False)
    whole = read_data(d["d"] / name, missing=True)
    np.testing.assert_array_equal(whole.X, d["Xn"])  # NaN where NaN, numbers bitwise
    stream = open_data(d["d"] / name, missing=True)
    chunks = list(stream)
    assert len(chunks) >= (3 if chunk else 1)
    np.testing.assert_array_equal(np.concatenate(chunks), d["Xn"])
    assert (whole.names is None) == (name in ("noheader.csv", "holes.npy"))


def test_a_first_row_with_empty_cells_is_data_with_missing(d, tmp_path):
    path = tmp_path / "first.csv"
    path.write_text("1.5,,2\n3,4,5\n")
    with pytest.raises(DataFileError, match=r"line 1, column 2: an empty cell in a first row.*"
                                            r"if the empty cells are missing values, pass "
                                            r"--missing em to fit on the observed entries$"):
        read_data(path)
    got = read_data(path, missing=True)
    assert got.names is None
    np.testing.assert_array_equal(got.X, [[1.5, np.nan, 2], [3, 4, 5]])
    path.write_text("a,,c\n1,,3\n")  # a header with an unnamed column, then data
    assert read_data(path, missing=True).names == ["a", "Unnamed: 1", "c"]


def test_na_tokens_are_not_missing_values(tmp_path):
    """Only empty cells and NaN are missing: NA stays an error."""
    path = tmp_path / "na.csv"
    path.write_text("a,b\n1,2\n3,NA\n")
    with pytest.raises(DataFileError, match="line 3, column 2: 'NA' is not a number; expected "
                                            "numbers only, or an empty cell or NaN for a "
                                            "missing value"):
        read_data(path, missing=True)


# ----------------------------------------------------------------------
# fit --missing em
# ----------------------------------------------------------------------

@pytest.mark.parametrize("how, name", _readers(["holes.csv", "spelled.csv", "holes.parquet"],
                                               ["pyarrow", "numpy", "streamed",
                                                "numpy-streamed"]))
def test_fit_missing_em_is_the_in_process_fit(d, capsys, monkeypatch, tmp_path, how, name):
    if "numpy" in how:
        _no_pyarrow(monkeypatch)
    copies = []
    if "streamed" in how:
        _streamed(monkeypatch)
        monkeypatch.setattr(cli, "to_memmap",
                            lambda s, f: copies.append(1) or _datafile.to_memmap(s, f))
    rc, out, err = _run(capsys, "fit", d["d"] / name, "-k", 2, "--seed", 0, "--missing", "em",
                        "-o", tmp_path / "m.fem")
    assert rc == 0, err
    assert copies == ([1] if "streamed" in how else [])  # large: a memory map, out of core
    n_missing = int(np.isnan(d["Xn"]).sum())
    assert f"missing values: {n_missing} of 720 cells" in out
    got = fastem.load(tmp_path / "m.fem")
    assert got.missing == "em"
    assert list(got.feature_names_in_) == ["a", "b", "c"]
    _same_fit(got, d["model"])


def test_fit_missing_em_json(d, capsys):
    rc, out, _ = _run(capsys, "fit", d["d"] / "holes.csv", "-k", 2, "--seed", 0, "--missing",
                      "em", "--json")
    import json

    s = json.loads(out)
    assert rc == 0 and s["missing"] == "em"
    assert s["n_missing_values"] == int(np.isnan(d["Xn"]).sum())
    np.testing.assert_allclose(s["log_likelihood"], d["model"].score(d["Xn"]) * 240, rtol=1e-9)


@pytest.mark.parametrize("how", ["pyarrow", "numpy"])
@pytest.mark.parametrize("chunk", [None, SMALL])
@pytest.mark.parametrize("command", ["fit", "select"])
def test_without_the_flag_an_empty_cell_is_an_error_pointing_to_it(d, capsys, monkeypatch, how,
                                                                   chunk, command):
    if how == "numpy":
        _no_pyarrow(monkeypatch)
    if chunk:
        _streamed(monkeypatch)
    argv = [command, d["d"] / "holes.csv", "-k", 2 if command == "fit" else "1-2"]
    rc, out, err = _run(capsys, *argv)
    row, col = np.argwhere(np.isnan(d["Xn"]))[0]
    assert rc == 2 and out == "" and len(err.splitlines()) == 1, err
    assert (f"{d['d']}/holes.csv: line {row + 2}, column {col + 1}: empty cell; expected "
            "numbers only, and missing values are not supported by default: impute or drop "
            "those rows, or ") in err
    assert err.rstrip().endswith("pass --missing em to fit on the observed entries" if
                                 command == "fit" else "fit one k at a time with fastem fit "
                                 "--missing em"), err


@pytest.mark.parametrize("chunk", [None, SMALL])
@pytest.mark.parametrize("name,message", [
    ("holes.parquet", ("column 'a' of {d}/holes.parquet has a missing value at row {r}; "
                       "missing values are not supported by default")),
    ("nan_cell.csv", ("{d}/nan_cell.csv: line 152, column 3: 'NaN' is a missing value (NaN); "
                      "missing values are not supported by default")),
    ("holes.npy", "{d}/holes.npy: row {i}, column {j}: NaN, a missing value; missing values"),
])
def test_without_the_flag_a_null_or_nan_is_an_error(d, capsys, monkeypatch, chunk, name,
                                                    message):
    if chunk:
        _streamed(monkeypatch)
    rc, out, err = _run(capsys, "fit", d["d"] / name, "-k", 2)
    r = int(np.flatnonzero(np.isnan(d["Xn"][:, 0]))[0])  # Parquet: column by column
    i, j = np.argwhere(np.isnan(d["Xn"]))[0]  # .npy: row by row
    assert rc == 2 and out == "" and len(err.splitlines()) == 1, err
    assert message.format(d=d["d"], r=r, i=i, j=j) in err, err
    assert err.rstrip().endswith("pass --missing em to fit on the observed entries")


@pytest.mark.parametrize("how", ["pyarrow", "numpy"])
@pytest.mark.parametrize("chunk", [None, SMALL])
def test_a_row_with_every_value_missing(d, capsys, monkeypatch, how, chunk):
    if how == "numpy":
        _no_pyarrow(monkeypatch)
    if chunk:
        _streamed(monkeypatch)
    for argv in (["fit", d["d"] / "empty_row.csv", "-k", 2, "--missing", "em"],
                 ["predict", d["d"] / "em.fem", d["d"] / "empty_row.csv"],
                 ["score", d["d"] / "em.fem", d["d"] / "empty_row.csv"]):
        rc, _, err = _run(capsys, *argv)
        assert rc == 2 and len(err.splitlines()) == 1, err
        assert "has 1 row with every value missing (NaN): row 200." in err, err


def test_online_missing_em(d, capsys, tmp_path):
    """--online passes missing='em' to the MiniBatch class (the same fit as
    in process), or says in one line that it does not take it yet."""
    cls = FAMILIES["gaussian"].estimator_class(online=True)
    rc, out, err = _run(capsys, "fit", d["d"] / "holes.csv", "-k", 2, "--online", "--missing",
                        "em", "--seed", 0, "--batch-size", 64, "-o", tmp_path / "m.fem")
    if "missing" not in cls().get_params():
        assert rc == 2 and out == "" and len(err.splitlines()) == 1
        assert f"--missing em is not available for --family gaussian --online ({cls.__name__})" \
            in err
        return
    assert rc == 0, err
    want = cls(2, batch_size=64, random_state=0, missing="em").fit(d["Xn"])
    got = fastem.load(tmp_path / "m.fem")
    assert got.missing == "em"
    np.testing.assert_allclose(got.means_, want.means_, rtol=1e-10, atol=1e-12)


# ----------------------------------------------------------------------
# predict and score
# ----------------------------------------------------------------------

@pytest.mark.parametrize("chunk", [None, SMALL])
@pytest.mark.parametrize("how, name", _readers(["holes.csv", "holes.parquet"]))
def test_predict_and_score_with_a_missing_em_model(d, capsys, monkeypatch, how, chunk, name):
    if how == "numpy":
        _no_pyarrow(monkeypatch)
    if chunk:
        _streamed(monkeypatch)
    model, Xn = d["model"], d["Xn"]
    m, path = d["d"] / "em.fem", d["d"] / name
    rc, out, err = _run(capsys, "predict", m, path)
    assert rc == 0, err
    assert _table(out)[0] == "label"
    np.testing.assert_array_equal(_table(out)[1].ravel(), model.predict(Xn))
    rc, out, _ = _run(capsys, "predict", m, path, "--proba")
    np.testing.assert_allclose(_table(out)[1], model.predict_proba(Xn), rtol=1e-10, atol=1e-12)
    rc, out, _ = _run(capsys, "score", m, path)
    np.testing.assert_allclose(_table(out)[1].ravel(), model.score_samples(Xn), rtol=1e-10)
    rc, out, _ = _run(capsys, "score", m, path, "--anomalies", "0.05")
    logp = model.score_samples(Xn)
    flags = (logp <= np.quantile(logp, 0.05)).astype(float)
    np.testing.assert_array_equal(_table(out)[1][:, 1], flags)


@pytest.mark.parametrize("chunk", [None, SMALL])
@pytest.mark.parametrize("command", ["predict", "score"])
def test_a_missing_raise_model_keeps_the_error_with_the_hint(d, capsys, monkeypatch, tmp_path,
                                                             chunk, command):
    if chunk:
        _streamed(monkeypatch)
    rc, out, err = _run(capsys, command, d["d"] / "raise.fem", d["d"] / "holes.csv", "-o",
                        tmp_path / "out.csv")
    row, col = np.argwhere(np.isnan(d["Xn"]))[0]
    assert rc == 2 and out == "" and len(err.splitlines()) == 1
    assert f"line {row + 2}, column {col + 1}: empty cell; expected numbers only" in err
    assert err.rstrip().endswith(f"or {command} with a model fitted with --missing em"), err
    assert not (tmp_path / "out.csv").exists()


# ----------------------------------------------------------------------
# impute
# ----------------------------------------------------------------------

@pytest.mark.parametrize("how", ["pyarrow", "numpy"])
@pytest.mark.parametrize("chunk", [None, SMALL])
@pytest.mark.parametrize("model_name", ["em.fem", "raise.fem"])
def test_impute_is_model_impute(d, capsys, monkeypatch, tmp_path, how, chunk, model_name):
    if how == "numpy":
        _no_pyarrow(monkeypatch)
    if chunk:
        _streamed(monkeypatch)
    Xn = d["Xn"]
    model = fastem.load(d["d"] / model_name)
    rc, out, err = _run(capsys, "impute", d["d"] / model_name, d["d"] / "holes.csv")
    assert rc == 0, err
    header, got = _table(out)
    assert header == "a,b,c"
    want = model.impute(Xn)
    assert not np.isnan(got).any()
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)
    observed = ~np.isnan(Xn)
    np.testing.assert_array_equal(got[observed], Xn[observed])  # exactly, every digit
    assert f"; {int((~observed).sum())} missing values filled" in err
    # -o, and the file read back is the same table
    rc, _, _ = _run(capsys, "impute", d["d"] / model_name, d["d"] / "holes.csv", "-q", "-o",
                    tmp_path / "filled.csv")
    back = read_data(tmp_path / "filled.csv")
    assert rc == 0 and back.names == ["a", "b", "c"]
    np.testing.assert_array_equal(back.X, got)


@pytest.mark.parametrize("chunk", [None, SMALL])
def test_impute_without_header_parquet_columns_json(d, capsys, monkeypatch, chunk):
    if chunk:
        monkeypatch.setattr(_config, "CHUNK_BYTES", chunk, raising=False)
    model, Xn, m = d["model"], d["Xn"], d["d"] / "em.fem"
    rc, out, _ = _run(capsys, "impute", m, d["d"] / "noheader.csv")
    got = np.loadtxt(out.splitlines(), delimiter=",", ndmin=2)  # no header row
    assert rc == 0 and got.shape == Xn.shape
    np.testing.assert_allclose(got, model.impute(Xn), rtol=1e-12)
    rc, out, _ = _run(capsys, "impute", m, d["d"] / "holes.parquet")
    assert rc == 0 and _table(out)[0] == "a,b,c"
    np.testing.assert_allclose(_table(out)[1], model.impute(Xn), rtol=1e-12)
    rc, out, _ = _run(capsys, "impute", m, d["d"] / "holes.csv", "--columns", "c,a,b",
                      "--header", "yes")
    assert rc == 0  # the columns by position, as picked
    np.testing.assert_allclose(_table(out)[1], model.impute(Xn[:, [2, 0, 1]]), rtol=1e-12)
    assert _table(out)[0] == "c,a,b"
    import json

    rc, out, _ = _run(capsys, "impute", m, d["d"] / "holes.csv", "--json")
    s = json.loads(out)
    assert rc == 0 and s["columns"] == ["a", "b", "c"]
    assert s["n_missing_values"] == int(np.isnan(Xn).sum())
    np.testing.assert_allclose(s["X"], model.impute(Xn), rtol=1e-12)


def test_impute_streamed_never_reads_the_file_whole(d, capsys, monkeypatch):
    _streamed(monkeypatch)

    def whole(*_):
        raise AssertionError("read whole")

    monkeypatch.setattr(_datafile.DataStream, "read_all", whole)
    monkeypatch.setattr(cli, "read_data", whole)
    rc, out, err = _run(capsys, "impute", d["d"] / "em.fem", d["d"] / "holes.csv")
    assert rc == 0, err
    np.testing.assert_allclose(_table(out)[1], d["model"].impute(d["Xn"]), rtol=1e-12)


def test_impute_errors(d, capsys, tmp_path):
    rc, _, err = _run(capsys, "impute", d["d"] / "em.fem", d["d"] / "holes.csv", "--columns",
                      "a,b")
    assert rc == 2 and "has 2 columns, but the model was fitted on 3 features" in err
    rc, _, err = _run(capsys, "impute", tmp_path / "none.fem", d["d"] / "holes.csv")
    assert rc == 2 and "not found" in err
    rc, out, _ = _run(capsys, "impute", "--help")
    assert rc == 0 and "fastem impute model.fem holes.csv -o filled.csv" in out


# ----------------------------------------------------------------------
# the discrete families: as soon as their estimators take missing
# ----------------------------------------------------------------------

def _counts(name, rng):
    if name == "bernoulli":
        A = rng.integers(0, 2, size=(60, 4))
        return np.vstack([A, 1 - A]), []
    if name == "binomial":
        return np.vstack([rng.binomial(5, 0.2, size=(60, 4)),
                          rng.binomial(5, 0.8, size=(60, 4))]), ["--n-trials", "5"]
    return np.vstack([rng.poisson(1, size=(60, 4)), rng.poisson(6, size=(60, 4))]), []


@pytest.mark.parametrize("name", ["bernoulli", "binomial", "poisson", "multinomial"])
def test_discrete_fit_missing_em(capsys, tmp_path, name):
    family = FAMILIES[name]
    cls = family.estimator_class()
    X, options = _counts(name, np.random.default_rng(1))
    Xn = X.astype(float)
    Xn[np.random.default_rng(2).random(X.shape) < 0.1] = np.nan
    Xn[np.isnan(Xn).all(axis=1), 0] = X[np.isnan(Xn).all(axis=1), 0]
    _write_csv(tmp_path / "c.csv", Xn, header="a,b,c,d",
               cell=lambda v: "" if np.isnan(v) else str(int(v)))
    argv = ["fit", tmp_path / "c.csv", "-k", 2, "--family", name, "--seed", 0, "--missing",
            "em", "-o", tmp_path / "m.fem", *options]
    rc, out, err = _run(capsys, *argv)
    if "missing" not in cls().get_params():
        assert rc == 2 and out == "" and len(err.splitlines()) == 1
        assert f"--missing em is not available for --family {name} ({cls.__name__}) yet" in err
        pytest.skip(f"{cls.__name__} does not take missing= yet (the one-line error is checked)")
    kwargs = {"n_trials": 5} if name == "binomial" else {}
    try:
        want = cls(2, random_state=0, missing="em", **kwargs).fit(Xn)
    except ValueError as exc:  # the family refuses missing entries: the same one line
        assert rc == 2 and out == "" and len(err.splitlines()) == 1
        assert " ".join(str(exc).split()) in err
        return
    assert rc == 0, err
    got = fastem.load(tmp_path / "m.fem")
    assert got.missing == "em"
    for attr in ("weights_", *family.parameters):
        np.testing.assert_allclose(getattr(got, attr), getattr(want, attr), rtol=1e-10,
                                   atol=1e-12)
    rc, out, err = _run(capsys, "predict", tmp_path / "m.fem", tmp_path / "c.csv")
    assert rc == 0, err
    np.testing.assert_array_equal(_table(out)[1].ravel(), want.predict(Xn))


@pytest.mark.parametrize("name", ["poisson", "bernoulli"])
def test_impute_with_a_discrete_model(capsys, tmp_path, name):
    """A family whose estimator has no impute yet: one line, exit 2; once it
    has one, the output is its impute."""
    family = FAMILIES[name]
    cls = family.estimator_class()
    X, _ = _counts(name, np.random.default_rng(3))
    cls(2, random_state=0).fit(X).save(tmp_path / "m.fem")
    Xn = X.astype(float)
    Xn[5, 1] = Xn[17, 3] = np.nan
    _write_csv(tmp_path / "c.csv", Xn, header="a,b,c,d")
    rc, out, err = _run(capsys, "impute", tmp_path / "m.fem", tmp_path / "c.csv", "-o",
                        tmp_path / "out.csv")
    if not hasattr(cls, "impute"):
        assert rc == 2 and out == "" and len(err.splitlines()) == 1
        assert f"a {name} mixture ({cls.__name__}) cannot impute missing values yet" in err
        assert not (tmp_path / "out.csv").exists()
        return
    assert rc == 0, err
    got = read_data(tmp_path / "out.csv")
    assert got.names == ["a", "b", "c", "d"]
    np.testing.assert_allclose(got.X, fastem.load(tmp_path / "m.fem").impute(Xn), rtol=1e-12)


def test_categorical_fit_missing_em(capsys, tmp_path):
    cls = FAMILIES["categorical"].estimator_class()
    rng = np.random.default_rng(4)
    levels = np.array(["lo", "mid", "hi"])
    codes = np.vstack([rng.integers(0, 2, size=(50, 3)), rng.integers(1, 3, size=(50, 3))])
    cells = levels[codes].astype(object)
    cells[rng.random(cells.shape) < 0.1] = ""
    cells[(cells == "").all(axis=1), 0] = "lo"
    (tmp_path / "s.csv").write_text("q1,q2,q3\n" + "\n".join(",".join(r) for r in cells) + "\n")
    rc, out, err = _run(capsys, "fit", tmp_path / "s.csv", "-k", 2, "--family", "categorical",
                        "--seed", 0, "--missing", "em", "-o", tmp_path / "m.fem")
    if "missing" not in cls().get_params():
        assert rc == 2 and len(err.splitlines()) == 1
        assert "--missing em is not available for --family categorical" in err
        pytest.skip(f"{cls.__name__} does not take missing= yet (the one-line error is checked)")
    frame = _datafile.read_table(tmp_path / "s.csv", missing=True).X
    assert frame.isna().to_numpy().sum() == (cells == "").sum()
    try:
        want = cls(2, random_state=0, missing="em").fit(frame)
    except ValueError as exc:  # the estimator refuses missing cells: the same one line
        assert rc == 2 and out == "" and len(err.splitlines()) == 1
        assert " ".join(str(exc).split()) in err
        return
    assert rc == 0, err
    np.testing.assert_allclose(fastem.load(tmp_path / "m.fem").weights_, want.weights_,
                               rtol=1e-10)
    if not hasattr(cls, "impute"):
        return
    rc, out, err = _run(capsys, "impute", tmp_path / "m.fem", tmp_path / "s.csv")
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0] == "q1,q2,q3" and len(lines) == 1 + len(cells)
    got = np.array([line.split(",") for line in lines[1:]], dtype=object)
    observed = cells != ""
    assert (got[observed] == cells[observed]).all()  # observed cells unchanged
    assert set(got[~observed]) <= set(levels)  # each missing cell a category, as text
