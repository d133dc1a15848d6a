"""The benchmark tooling works and measures what it says (tiny sizes; no
timing is asserted)."""

import numpy as np
import pytest

from fastem import bench
from fastem.cli import main


def test_flop_model_scales_as_documented():
    f = bench.flops_per_iteration
    assert f(1000, 4, 3, "full") == 1000 * 3 * (2 * 4 * 5 + 6 * 4)
    assert f(2000, 4, 3, "diag") == 2 * f(1000, 4, 3, "diag")
    assert f(1000, 4, 3, "tied") < f(1000, 4, 3, "full")
    assert f(1000, 4, 6, "spherical") == 2 * f(1000, 4, 3, "spherical")


def test_em_iteration_seconds_compares_identical_fits():
    from fastem.datasets import make_mixture

    X, _, _ = make_mixture(3000, 3, 2, random_state=0)
    r = bench.em_iteration_seconds(X, 2, "diag", repeats=1)
    assert r["fastem"] > 0 and r["sklearn"] > 0
    # both estimators ran the same iterations from the same start
    np.testing.assert_allclose(r["fastem_est"].means_, r["sklearn_est"].means_, rtol=1e-9)


def test_bench_cli_writes_markdown_table(tmp_path, capsys):
    rc = main(["bench", "--grid", "3000,2,2", "--repeats", "1", "--out", str(tmp_path)])
    assert rc == 0
    out = capsys.readouterr().out
    assert "reference rate" in out and "ratio" in out
    text = (tmp_path / "benchmarks.md").read_text()
    assert "| n " in text and "scikit-learn ms/iter" in text
    rows = [line for line in text.splitlines() if line.startswith("| 3,000")]
    assert len(rows) == 4  # one per covariance type


@pytest.mark.parametrize("module_entry", [True])
def test_python_m_fastem_bench_help(module_entry):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "fastem.bench", "--help"],
                         capture_output=True, text=True)
    assert out.returncode == 0 and "--full" in out.stdout


def test_bench_bayesian_compares_identical_fits(capsys):
    rc = main(["bench", "--bayesian", "--grid", "3000,2,2", "--repeats", "1"])
    assert rc == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| 3,000")]
    assert len(rows) == 4  # one per covariance type
    for row in rows:  # the same iterations from the same start: the same means
        assert float(row.strip("| ").split("|")[-1]) < 1e-9
    assert main(["bench", "--bayesian", "--family", "poisson"]) != 0
    assert "drop --family" in capsys.readouterr().err


@pytest.mark.parametrize("bayesian", [[], ["--bayesian"]])
def test_bench_refuses_zero_repeats(bayesian, capsys):
    assert main(["bench", *bayesian, "--grid", "2000,2,2", "--repeats", "0"]) != 0
    assert "argument --repeats: expected a whole number >= 1" in capsys.readouterr().err
