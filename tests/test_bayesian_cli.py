"""``fastem fit --bayesian``: the variational mixture from the command line."""

import json

import numpy as np
import pytest

from fastem import BayesianGaussianMixture
from fastem._io import load
from fastem.cli import main


@pytest.fixture
def two(tmp_path):
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 1, (300, 2)), rng.normal(6, 1, (300, 2))])
    np.save(tmp_path / "two.npy", X)
    return tmp_path / "two.npy", X


def _run(capsys, *argv):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_fit_bayesian_finds_two_of_six(two, tmp_path, capsys):
    path, X = two
    rc, out, _ = _run(capsys, "fit", path, "-k", 6, "--bayesian", "--seed", 0, "--json",
                      "-o", tmp_path / "m.fem", "--quiet")
    assert rc == 0
    s = json.loads(out)
    assert s["class"] == "BayesianGaussianMixture" and s["n_active"] == 2
    model = load(tmp_path / "m.fem")
    assert isinstance(model, BayesianGaussianMixture)
    want = BayesianGaussianMixture(n_components=6, random_state=0).fit(X)
    assert s["lower_bound"] == pytest.approx(want.lower_bound_, rel=1e-12)
    np.testing.assert_array_equal(model.predict(X), want.predict(X))
    rc, out, _ = _run(capsys, "fit", path, "-k", 6, "--bayesian", "--seed", 0, "--quiet")
    assert "lower bound" in out and "2 of 6 components weigh 0.01 or more" in out
    assert "BIC" not in out
    rc, out, _ = _run(capsys, "predict", tmp_path / "m.fem", path)
    assert rc == 0 and out.splitlines()[1:] == [str(v) for v in want.predict(X)]


def test_fit_bayesian_online(two, capsys):
    path, _ = two
    rc, out, _ = _run(capsys, "fit", path, "-k", 4, "--bayesian", "--online", "--batch-size",
                      100, "--seed", 0, "--json", "--quiet")
    s = json.loads(out)
    assert rc == 0 and s["class"] == "MiniBatchBayesianGaussianMixture" and s["n_active"] >= 2


@pytest.mark.parametrize("extra, message", [
    (["--missing", "em"], "--bayesian does not take --missing em"),
    (["--family", "poisson"], "--bayesian is available for --family gaussian only"),
])
def test_fit_bayesian_refusals(two, capsys, extra, message):
    path, _ = two
    rc, _, err = _run(capsys, "fit", path, "-k", 3, "--bayesian", *extra)
    assert rc != 0 and message in err
