"""Every bad input to ``fastem.GaussianMixture`` raises a ``ValueError`` whose
message names the problem.

The regexes check key words (and, where useful, the numbers involved) rather
than whole sentences, so the exact wording of the messages stays free.
"""

import re

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError

from fastem import GaussianMixture

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


def make_X(n_samples=30, n_features=3, seed=0):
    """Small two-cluster data set."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_samples, n_features))
    X[: n_samples // 2] += 4.0
    return X


def assert_mentions(excinfo, *patterns):
    """Assert every regex in ``patterns`` occurs in the exception message."""
    message = str(excinfo.value)
    for pattern in patterns:
        assert re.search(pattern, message), (
            f"message does not match {pattern!r}: {message!r}"
        )


@pytest.fixture(scope="module")
def fitted():
    """A model fitted on 3 features."""
    return GaussianMixture(2, random_state=0).fit(make_X())


# --------------------------------------------------------------------------
# X: values, dimensions, dtypes
# --------------------------------------------------------------------------

def test_nan_in_X():
    X = make_X()
    X[[5, 17, 20, 21], [0, 1, 2, 0]] = np.nan  # four missing values
    with pytest.raises(ValueError, match=r"(?i)nan|non-finite") as excinfo:
        GaussianMixture(2).fit(X)
    assert_mentions(excinfo,
                    r"\b4\b",          # how many
                    r"(?i)\brows?\b",  # where
                    r"(?i)missing")    # missing values are not supported


def test_inf_in_X():
    X = make_X()
    X[7, 1] = np.inf
    X[9, 0] = -np.inf
    with pytest.raises(ValueError, match=r"(?i)inf|non-finite") as excinfo:
        GaussianMixture(2).fit(X)
    assert_mentions(excinfo, r"\b2\b", r"(?i)\brows?\b")


@pytest.mark.parametrize("method", ["predict", "predict_proba", "score_samples",
                                    "score"])
def test_nan_in_X_after_fit(fitted, method):
    X = make_X(seed=1)
    X[3, 2] = np.nan
    with pytest.raises(ValueError, match=r"(?i)nan|non-finite"):
        getattr(fitted, method)(X)


def test_1d_X_suggests_reshape():
    with pytest.raises(ValueError, match=r"(?i)reshape"):
        GaussianMixture(2).fit(np.arange(20.0))


def test_1d_X_at_predict_suggests_reshape(fitted):
    with pytest.raises(ValueError, match=r"(?i)reshape"):
        fitted.predict(np.arange(3.0))


def test_3d_X():
    with pytest.raises(ValueError, match=r"(?i)2-?d|dim|shape"):
        GaussianMixture(2).fit(np.zeros((10, 3, 2)))


def test_empty_X():
    with pytest.raises(ValueError, match=r"(?i)empty|0 sample|at least|shape"):
        GaussianMixture(1).fit(np.zeros((0, 3)))


def test_fewer_samples_than_components():
    X = make_X(n_samples=3)
    with pytest.raises(ValueError, match=r"n_components") as excinfo:
        GaussianMixture(5).fit(X)
    assert_mentions(excinfo, r"n_samples", r"\b5\b", r"\b3\b")


@pytest.mark.parametrize("method", ["predict", "predict_proba", "score_samples",
                                    "score", "bic", "aic"])
def test_feature_count_mismatch_after_fit(fitted, method):
    X_two_features = make_X(n_features=2)
    with pytest.raises(ValueError, match=r"(?i)feature") as excinfo:
        getattr(fitted, method)(X_two_features)
    assert_mentions(excinfo, r"\b2\b", r"\b3\b")


@pytest.mark.parametrize("X", [
    np.array([["a", "b"], ["c", "d"], ["e", "f"], ["g", "h"]]),
    np.array([[1.0, "x"], [2.0, "y"], [3.0, "z"], [4.0, "w"]], dtype=object),
], ids=["strings", "object"])
def test_non_numeric_X(X):
    with pytest.raises(ValueError, match=r"(?i)numeric|string|float|convert"):
        GaussianMixture(2).fit(X)


def test_complex_X():
    X = make_X() + 1j
    with pytest.raises(ValueError, match=r"(?i)complex"):
        GaussianMixture(2).fit(X)


def test_ragged_X():
    X = [[1.0, 2.0], [3.0], [4.0, 5.0]]
    with pytest.raises(ValueError, match=r"(?i)shape|inhomogeneous|sequence|array"):
        GaussianMixture(1).fit(X)


def test_predict_before_fit():
    with pytest.raises(NotFittedError):
        GaussianMixture(2).predict(make_X())


def test_sample_zero(fitted):
    with pytest.raises(ValueError, match=r"(?i)n_samples|sample"):
        fitted.sample(0)


# --------------------------------------------------------------------------
# sample_weight
# --------------------------------------------------------------------------

def test_negative_sample_weight():
    X = make_X()
    sample_weight = np.ones(len(X))
    sample_weight[4] = -1.0
    with pytest.raises(ValueError, match=r"(?i)negative") as excinfo:
        GaussianMixture(2).fit(X, sample_weight=sample_weight)
    assert_mentions(excinfo, r"(?i)sample_weight")


@pytest.mark.parametrize("length", [29, 31])
def test_wrong_length_sample_weight(length):
    X = make_X(n_samples=30)
    with pytest.raises(ValueError, match=r"(?i)sample_weight") as excinfo:
        GaussianMixture(2).fit(X, sample_weight=np.ones(length))
    assert_mentions(excinfo, r"\b30\b", rf"\b{length}\b")


def test_nan_sample_weight():
    X = make_X()
    sample_weight = np.ones(len(X))
    sample_weight[2] = np.nan
    with pytest.raises(ValueError, match=r"(?i)sample_weight") as excinfo:
        GaussianMixture(2).fit(X, sample_weight=sample_weight)
    assert_mentions(excinfo, r"(?i)nan|finite")


def test_all_zero_sample_weight():
    X = make_X()
    with pytest.raises(ValueError, match=r"(?i)sample_weight") as excinfo:
        GaussianMixture(2).fit(X, sample_weight=np.zeros(len(X)))
    assert_mentions(excinfo, r"(?i)zero|positive|\b0\b")


@pytest.mark.parametrize("method", ["score", "bic", "aic"])
def test_bad_sample_weight_when_scoring(fitted, method):
    X = make_X()
    sample_weight = np.ones(len(X))
    sample_weight[0] = -2.0
    with pytest.raises(ValueError, match=r"(?i)negative"):
        getattr(fitted, method)(X, sample_weight=sample_weight)
    with pytest.raises(ValueError, match=r"(?i)sample_weight"):
        getattr(fitted, method)(X, sample_weight=np.ones(len(X) - 1))


# --------------------------------------------------------------------------
# Constructor parameters
# --------------------------------------------------------------------------

@pytest.mark.parametrize("name, value", [
    ("n_components", 0),
    ("covariance_type", "banana"),
    ("tol", -1.0),
    ("reg_covar", -1.0),
    ("init_params", "nope"),
    ("max_iter", -1),
    ("n_init", 0),
])
def test_bad_parameter_values(name, value):
    with pytest.raises(ValueError, match=re.escape(name)) as excinfo:
        GaussianMixture(**{name: value}).fit(make_X())
    if isinstance(value, float) and value.is_integer():
        value_pattern = rf"{int(value)}(\.0*)?\b"  # -1 or -1.0
    else:
        value_pattern = re.escape(str(value))
    assert_mentions(excinfo, value_pattern)  # the offending value


# --------------------------------------------------------------------------
# Initial parameters
# --------------------------------------------------------------------------

def test_weights_init_wrong_shape():
    with pytest.raises(ValueError, match=r"(?i)weights") as excinfo:
        GaussianMixture(3, weights_init=[0.5, 0.5]).fit(make_X())
    assert_mentions(excinfo, r"\b3\b", r"\b2\b")


def test_weights_init_not_summing_to_one():
    with pytest.raises(ValueError, match=r"(?i)weights") as excinfo:
        GaussianMixture(3, weights_init=[0.2, 0.2, 0.2]).fit(make_X())
    assert_mentions(excinfo, r"(?i)sum|normali")


def test_weights_init_negative():
    with pytest.raises(ValueError, match=r"(?i)weights"):
        GaussianMixture(3, weights_init=[1.5, -0.5, 0.0]).fit(make_X())


def test_means_init_wrong_shape():
    means = np.zeros((3, 2))  # data have 3 features
    with pytest.raises(ValueError, match=r"(?i)means") as excinfo:
        GaussianMixture(3, means_init=means).fit(make_X())
    assert_mentions(excinfo, r"\b3\b", r"\b2\b")


@pytest.mark.parametrize("covariance_type, precisions", [
    ("full", np.stack([np.eye(3), np.diag([1.0, -1.0, 1.0])])),
    ("tied", np.array([[1.0, 2.0, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 1.0]])),
    ("diag", np.array([[1.0, 1.0, 1.0], [1.0, 0.0, 1.0]])),
    ("spherical", np.array([1.0, -2.0])),
])
def test_precisions_init_not_positive_definite(covariance_type, precisions):
    gm = GaussianMixture(2, covariance_type=covariance_type,
                         precisions_init=precisions)
    with pytest.raises(ValueError, match=r"(?i)positive|definite"):
        gm.fit(make_X())


def test_precisions_init_not_symmetric():
    precisions = np.stack([np.eye(3), np.array([[2.0, 0.5, 0.0],
                                                 [0.0, 2.0, 0.0],
                                                 [0.0, 0.0, 2.0]])])
    with pytest.raises(ValueError, match=r"(?i)symmetric"):
        GaussianMixture(2, precisions_init=precisions).fit(make_X())


@pytest.mark.parametrize("covariance_type, precisions", [
    ("full", np.tile(np.eye(3), (3, 1, 1))),  # 3 matrices for 2 components
    ("tied", np.tile(np.eye(3), (2, 1, 1))),  # a stack instead of one matrix
    ("diag", np.ones((2, 2))),                # 2 features instead of 3
    ("spherical", np.ones(3)),                # 3 values for 2 components
])
def test_precisions_init_wrong_shape(covariance_type, precisions):
    gm = GaussianMixture(2, covariance_type=covariance_type,
                         precisions_init=precisions)
    with pytest.raises(ValueError, match=r"(?i)precision|shape|dim"):
        gm.fit(make_X())


# --- Cholesky failure: names the component and gives the advice -------------


@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_cholesky_failure_names_component_and_suggests_fixes(covariance_type):
    # two distinct points, three components and no regularisation: a
    # component ends up with a singular covariance
    X = np.array([[0.0, 0.0], [1.0, 1.0]] * 20)
    gm = GaussianMixture(3, covariance_type=covariance_type, reg_covar=0.0,
                         init_params="random_from_data", random_state=0)
    with pytest.raises(ValueError) as info:
        gm.fit(X)
    msg = str(info.value)
    assert re.search(r"(?i)component \d|tied covariance", msg), msg
    assert "reg_covar" in msg
    assert re.search(r"(?i)decrease the number of components", msg)
    assert re.search(r"(?i)scale the input", msg)
