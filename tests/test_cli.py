"""The ``fastem`` command line: fit, predict, score, select, sample, --json,
--plot, progress on a terminal only, and one-line errors."""

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import fastem
from fastem.cli import main, read_data

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def data(tmp_path):
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(size=(200, 2)), rng.normal(size=(200, 2)) + 6.0])
    X = np.column_stack([X, rng.integers(0, 3, size=400)])  # a third, integer column
    csv = tmp_path / "d.csv"
    np.savetxt(csv, X, delimiter=",", header="a,b,c", comments="")
    tsv = tmp_path / "d.tsv"
    np.savetxt(tsv, X, delimiter="\t")  # no header
    npy = tmp_path / "d.npy"
    np.save(npy, X)
    return X, tmp_path


def _run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_read_data_formats_and_columns(data):
    X, d = data
    A = read_data(str(d / "d.csv"))
    np.testing.assert_array_equal(A.X, X)
    assert A.names == ["a", "b", "c"] and A.header_line == 1
    B = read_data(str(d / "d.tsv"), "0,2")
    np.testing.assert_array_equal(B.X, X[:, [0, 2]])
    assert B.names is None and B.header_line is None
    C = read_data(str(d / "d.npy"), "1")
    np.testing.assert_array_equal(C.X, X[:, [1]])
    D = read_data(str(d / "d.csv"), "b,a")
    np.testing.assert_array_equal(D.X, X[:, [1, 0]])
    assert D.names == ["b", "a"]


def test_read_parquet(data):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    X, d = data
    pq.write_table(pa.table({"a": X[:, 0], "b": X[:, 1], "s": ["x"] * len(X)}), d / "d.parquet")
    A = read_data(str(d / "d.parquet"), "a,b")
    np.testing.assert_array_equal(A.X, X[:, :2])
    assert A.names == ["a", "b"]
    with pytest.raises(Exception, match="column 's' .* is not numeric"):
        read_data(str(d / "d.parquet"))


def test_fit_prints_summary_saves_and_matches_the_library(data, capsys):
    X, d = data
    rc, out, _ = _run(capsys, "fit", d / "d.csv", "-k", 2, "--columns", "a,b", "--seed", 0,
                      "-o", d / "m.fem")
    assert rc == 0
    gm = fastem.GaussianMixture(2, random_state=0).fit(X[:, :2])
    assert f"iterations {gm.n_iter_}, converged True" in out
    assert f"  data: 400 rows x 2 columns read from {d / 'd.csv'} after the header row on " \
        "line 1" in out.splitlines()
    assert f"BIC {gm.bic(X[:, :2]):.6g}" in out
    model = fastem.load(d / "m.fem")
    np.testing.assert_array_equal(model.means_, gm.means_)
    assert list(model.feature_names_in_) == ["a", "b"]
    for j in range(2):
        assert f"component {j}: weight {gm.weights_[j]:.4f}, mean (a={gm.means_[j, 0]:.4g}" in out


def test_fit_json(data, capsys):
    X, d = data
    rc, out, _ = _run(capsys, "fit", d / "d.npy", "-k", 2, "--covariance", "diag",
                      "--columns", "0,1", "--seed", 3, "--json")
    assert rc == 0
    s = json.loads(out)
    gm = fastem.GaussianMixture(2, covariance_type="diag", random_state=3).fit(X[:, :2])
    np.testing.assert_allclose(s["means"], gm.means_, rtol=1e-12)
    np.testing.assert_allclose(s["bic"], gm.bic(X[:, :2]), rtol=1e-12)
    assert s["converged"] is True and s["n_iter"] == gm.n_iter_


def test_predict_score_sample(data, capsys):
    X, d = data
    gm = fastem.GaussianMixture(2, random_state=0).fit(X[:, :2])
    gm.save(d / "m.fem")
    rc, out, _ = _run(capsys, "predict", d / "m.fem", d / "d.csv", "--columns", "a,b")
    assert rc == 0
    lines = out.splitlines()
    assert lines[0] == "label"
    np.testing.assert_array_equal(np.array(lines[1:], dtype=int), gm.predict(X[:, :2]))

    rc, _, _ = _run(capsys, "predict", d / "m.fem", d / "d.csv", "--columns", "a,b",
                    "--proba", "-o", d / "p.csv")
    P = np.loadtxt(d / "p.csv", delimiter=",", skiprows=1)
    np.testing.assert_allclose(P, gm.predict_proba(X[:, :2]), rtol=1e-15, atol=1e-300)

    rc, out, err = _run(capsys, "score", d / "m.fem", d / "d.csv", "--columns", "a,b",
                        "--anomalies", "0.05", "--json")
    s = json.loads(out)
    logp = gm.score_samples(X[:, :2])
    np.testing.assert_array_equal(s["log_density"], logp)
    threshold = np.quantile(logp, 0.05)
    assert s["threshold"] == threshold
    np.testing.assert_array_equal(s["anomalies"], np.flatnonzero(logp <= threshold))
    assert s["n_anomalies"] == 20

    rc, out, _ = _run(capsys, "sample", d / "m.fem", "-n", 50, "--seed", 1)
    rows = [line.split(",") for line in out.splitlines()]
    assert rows[0] == ["x0", "x1", "component"]  # fitted on an array: no names
    assert len(rows) == 51
    gm.random_state = 1
    S, y = gm.sample(50)
    np.testing.assert_allclose(np.array(rows[1:], dtype=float)[:, :2], S, rtol=1e-15)


def test_select_table_and_json(data, capsys):
    X, d = data
    rc, out, _ = _run(capsys, "select", d / "d.csv", "--columns", "a,b", "-k", "1-3",
                      "--covariance", "full,spherical", "--seed", 0, "-o", d / "best.fem")
    assert rc == 0
    result = fastem.select(X[:, :2], range(1, 4), ("full", "spherical"), random_state=0)
    assert f"k={result.best_params_['n_components']}, " \
           f"covariance_type={result.best_params_['covariance_type']!r}" in out
    assert len([ln for ln in out.splitlines() if ln[:3].strip().isdigit()]) == 6
    best = fastem.load(d / "best.fem")
    np.testing.assert_array_equal(best.means_, result.best_estimator_.means_)
    rc, out, _ = _run(capsys, "select", d / "d.csv", "--columns", "a,b", "-k", "2,3",
                      "--covariance", "diag", "--criterion", "aic", "--seed", 0, "--json")
    s = json.loads(out)
    assert [r["n_components"] for r in s["table"]] == [2, 3]
    assert s["criterion"] == "aic"
    assert s["best_score"] == min(r["aic"] for r in s["table"])


def test_plots_are_written(data, capsys):
    pytest.importorskip("matplotlib")
    X, d = data
    rc, _, _ = _run(capsys, "fit", d / "d.csv", "-k", 2, "--columns", "a,b", "--seed", 0,
                    "-o", d / "m.fem", "--plot", d / "c.png", "--quiet")
    assert rc == 0
    rc, _, _ = _run(capsys, "score", d / "m.fem", d / "d.csv", "--columns", "a,b",
                    "--anomalies", "0.01", "--plot", d / "s.png", "-o", d / "s.csv")
    rc2, _, _ = _run(capsys, "select", d / "d.csv", "--columns", "a,b", "-k", "1-2",
                     "--plot", d / "sel.png", "--quiet")
    assert rc == rc2 == 0
    for name in ("c.png", "s.png", "sel.png"):
        assert (d / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _env():
    return dict(os.environ, PYTHONPATH=str(ROOT))


def test_help_has_examples_for_every_command():
    for command in ("fit", "predict", "score", "select", "sample", "demo", "bench"):
        out = subprocess.run([sys.executable, "-m", "fastem", command, "--help"],
                             capture_output=True, text=True, env=_env())
        assert out.returncode == 0
        assert "examples:" in out.stdout and f"fastem {command}" in out.stdout


def test_progress_bar_on_a_terminal_only(data):
    """Drawn when stderr is a terminal, silent when piped or with --quiet."""
    X, d = data
    argv = [sys.executable, "-m", "fastem", "select", str(d / "d.csv"), "--columns", "a,b",
            "-k", "1-2", "--covariance", "full"]
    piped = subprocess.run(argv, capture_output=True, text=True, env=_env())
    assert piped.returncode == 0
    assert "select [" not in piped.stderr and "\r" not in piped.stderr

    def on_terminal(extra):
        main_fd, sub_fd = pty.openpty()
        proc = subprocess.Popen(argv + extra, stdout=subprocess.DEVNULL, stderr=sub_fd,
                                env=_env())
        os.close(sub_fd)
        chunks = []
        while True:
            try:
                chunk = os.read(main_fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        proc.wait()
        os.close(main_fd)
        assert proc.returncode == 0
        return b"".join(chunks).decode()

    assert "select [" in on_terminal([]) and "2/2" in on_terminal([])
    assert "select [" not in on_terminal(["--quiet"])


def test_docs_cli_page_runs_as_written(tmp_path, monkeypatch, capsys):
    """docs/cli.md: its python block, then every `fastem ...` line of its bash
    blocks, in order, in one working directory."""
    import re
    import shlex

    text = (ROOT / "docs" / "cli.md").read_text()
    monkeypatch.chdir(tmp_path)
    for code in re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL):
        exec(compile(code, "docs/cli.md", "exec"), {"__name__": "__docs__"})
    commands = [line for block in re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL)
                for line in block.splitlines() if line.startswith("fastem ")]
    assert len(commands) >= 8
    summary = None
    for line in commands:
        rc = main(shlex.split(line)[1:])
        out = capsys.readouterr()
        assert rc == 0, (line, out.err)
        if "--json" in line:
            summary = json.loads(out.out)
    assert summary["n_components"] == 3 and summary["covariance_type"] == "tied"
    for name in ("model.fem", "labels.csv", "proba.csv", "scores.csv", "best.fem",
                 "synthetic.csv", "components.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    labels = np.loadtxt(tmp_path / "labels.csv", skiprows=1)
    assert labels.shape == (272,) and set(np.unique(labels)) == {0.0, 1.0}
    scores = np.loadtxt(tmp_path / "scores.csv", delimiter=",", skiprows=1)
    assert scores.shape == (272, 2) and scores[:, 1].sum() == 3  # 1% of 272, rounded up


def test_bench_and_demo_json(capsys):
    rc, out, _ = _run(capsys, "bench", "--grid", "3000,2,2", "--repeats", "1", "--json")
    assert rc == 0
    rows = json.loads(out)["em_iteration"]
    assert len(rows) == 4 and {r["covariance_type"] for r in rows} == {
        "full", "tied", "diag", "spherical"}
    # timings of a 3,000-row case are noise (even negative): only their presence is checked
    assert all(np.isfinite([r["ratio"], r["fastem_ms"], r["sklearn_ms"]]).all() for r in rows)
    rc, out, _ = _run(capsys, "demo", "--no-speed", "--json")
    s = json.loads(out)
    assert s["selection"]["best"] == {"n_components": 3, "covariance_type": "tied"}
    rc, _, err = _run(capsys, "bench", "--grid", "3,2", "--json")
    assert rc == 2 and "--grid expects" in err


def test_fit_online(data, capsys):
    X, d = data
    rc, out, _ = _run(capsys, "fit", d / "d.csv", "-k", 2, "--columns", "a,b", "--online",
                      "--batch-size", 100, "--seed", 0, "--json", "-o", d / "mb.fem")
    assert rc == 0
    s = json.loads(out)
    mb = fastem.MiniBatchGaussianMixture(2, batch_size=100, random_state=0).fit(X[:, :2])
    assert s["class"] == "MiniBatchGaussianMixture"
    np.testing.assert_array_equal(s["means"], mb.means_)
    assert isinstance(fastem.load(d / "mb.fem"), fastem.MiniBatchGaussianMixture)
    rc, _, err = _run(capsys, "fit", d / "d.csv", "-k", 2, "--online", "--n-init", 3)
    assert rc == 2 and "--online runs one initialisation" in err


def test_progress_hook_sees_every_iteration_of_every_start():
    """The bar's source: (restart, iteration) after each EM iteration, plain
    and SQUAREM, and (epoch, batch) for online EM; no state left behind."""
    X = np.random.default_rng(0).normal(size=(2000, 2))
    for accelerate in (None, "squarem"):
        gm = fastem.GaussianMixture(2, n_init=2, random_state=0, accelerate=accelerate)
        calls = []
        gm._progress = lambda i, n: calls.append((i, n))
        gm.fit(X)
        assert [n for i, n in calls if i == 0] == list(range(1, len(
            [c for c in calls if c[0] == 0]) + 1))
        assert {i for i, _ in calls} == {0, 1}
        assert max(n for i, n in calls if i == 1) >= 1
    mb = fastem.MiniBatchGaussianMixture(2, batch_size=500, random_state=0, max_iter=2,
                                         max_no_improvement=None)
    calls = []
    mb._progress = lambda i, n: calls.append((i, n))
    mb.fit(X)
    assert calls == [(e, b) for e in range(2) for b in range(1, 5)]
