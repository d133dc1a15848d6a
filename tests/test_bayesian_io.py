"""BayesianGaussianMixture saved and loaded (fastem/_io.py), and files
edited against it refused (fastem/_model_check.py)."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from test_save_load import _rewrite, assert_same_model, assert_same_predictions

from fastem import BayesianGaussianMixture
from fastem._io import load, save

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]
PRIOR_TYPES = ["dirichlet_process", "dirichlet_distribution"]


@pytest.fixture(scope="module")
def X():
    rng = np.random.default_rng(0)
    return np.vstack([rng.normal(0, 1, (150, 3)), rng.normal(5, 1, (150, 3))])


def _fit(X, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return BayesianGaussianMixture(n_components=3, random_state=0, **kw).fit(X)


@pytest.mark.parametrize("prior_type", PRIOR_TYPES)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_round_trip_is_exact_and_continues(X, tmp_path, covariance_type, prior_type):
    m = _fit(X, covariance_type=covariance_type, weight_concentration_prior_type=prior_type,
             max_iter=5)
    save(m, tmp_path / "m.fem")
    got = load(tmp_path / "m.fem")
    assert_same_model(m, got)
    assert_same_predictions(m, got, X)
    # a warm start from the loaded model is the one from the original
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for model in (m, got):
            model.set_params(warm_start=True, max_iter=3).fit(X)
    assert_same_model(m, got)


def test_unfitted_round_trip(tmp_path):
    m = BayesianGaussianMixture(n_components=4, weight_concentration_prior=0.5,
                                covariance_prior=np.eye(2), mean_prior=[1.0, 2.0])
    save(m, tmp_path / "u.fem")
    assert_same_model(m, load(tmp_path / "u.fem"))


def _edit(name, fn):
    def arrays(entries):
        entries[name] = fn(entries[name])
    return arrays


@pytest.mark.parametrize("name, fn, match", [
    ("state.mean_precision_", lambda a: -a, "mean_precision_ should be positive"),
    ("state.weight_concentration_.1", lambda a: a[:-1], r"weight_concentration_ should be a float "
                                                        r"array of shape \(3,\)"),
    ("state.weight_concentration_.0", lambda a: a * np.array([1.0, 50.0, 1.0]),
     "normalised expected weights"),
    ("state.degrees_of_freedom_", lambda a: a * 0 + 1.5,
     "degrees_of_freedom_ should be above n_features_in_ - 1 = 2"),
    ("state.covariance_prior_", lambda a: -a, "covariance_prior_ should be positive definite"),
    ("state.mean_prior_", lambda a: np.append(a, 1.0), r"mean_prior_ should be a float array "
                                                       r"of shape \(3,\)"),
])
def test_edited_files_are_refused(X, tmp_path, name, fn, match):
    m = _fit(X, max_iter=5)
    save(m, tmp_path / "m.fem")
    bad = _rewrite(tmp_path / "m.fem", tmp_path / "bad.fem", arrays=_edit(name, fn),
                   resign=True)
    with pytest.raises(ValueError, match=match):
        load(bad)


@pytest.mark.parametrize("attr, value, match", [
    ("weight_concentration_prior_", -1.0, "weight_concentration_prior_ should be positive"),
    ("degrees_of_freedom_prior_", 0.5, "degrees_of_freedom_prior_ should be above"),
    ("mean_precision_prior_", "1", "mean_precision_prior_ should be a float"),
    ("weight_concentration_", [1.0, 2.0, 3.0], "weight_concentration_ should be a pair"),
])
def test_edited_scalars_are_refused(X, tmp_path, attr, value, match):
    m = _fit(X, max_iter=5)
    save(m, tmp_path / "m.fem")

    def meta(header):
        header["state"][attr] = value

    bad = _rewrite(tmp_path / "m.fem", tmp_path / "bad.fem", meta=meta, resign=True)
    with pytest.raises(ValueError, match=match):
        load(bad)
