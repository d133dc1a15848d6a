"""``fastem.select``: model selection over n_components and covariance type."""

import contextlib
import importlib
import importlib.util
import io
import re
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.exceptions import ConvergenceWarning, FitFailedWarning
from sklearn.utils.validation import check_is_fitted

from fastem import GaussianMixture
from fastem.datasets import load_faithful
from fastem.select import TABLE_COLUMNS, SelectionResult, _best_index, select

# the module itself (``fastem.select`` may also name the function once exported)
select_module = importlib.import_module("fastem.select")

from conftest import blobs, numba_threads

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

DOCS = Path(__file__).resolve().parents[1] / "docs"
PANDAS = importlib.util.find_spec("pandas") is not None


def diag_mixture(seed=0, n=600):
    """Three well separated components with diagonal, unequal covariances."""
    rng = np.random.default_rng(seed)
    means = np.array([[0.0, 0.0], [8.0, 0.0], [0.0, 8.0]])
    sds = np.array([[1.0, 0.3], [0.3, 1.2], [0.6, 0.6]])
    labels = rng.integers(0, 3, size=n)
    return means[labels] + rng.normal(size=(n, 2)) * sds[labels]


def entropy_term(gm, X, sample_weight=None):
    """-sum_i w_i log t_{i, z_i}, from predict_proba (z_i: the MAP component)."""
    proba = gm.predict_proba(X)
    log_t = np.log(proba[np.arange(len(X)), proba.argmax(axis=1)])
    w = np.ones(len(X)) if sample_weight is None else sample_weight
    return -float(np.sum(w * log_t))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These tests fit hundreds of models of a few hundred rows: too few rows
    for the parallel kernels to help, and when another process holds one of
    the machine's cores, every 2-thread kernel call waits for a time slice (measured: 5.4 s instead of 0.1 s for the Old Faithful grid).
    Results do not depend on the thread count (tests/test_kernels.py)."""
    with numba_threads(1):
        yield


@pytest.fixture(scope="module")
def faithful():
    return load_faithful()[0]


@pytest.fixture(scope="module")
def faithful_default(faithful):
    """The default grid (k = 1..9, four types), n_init=1, random_state=0."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return select(faithful, random_state=0)


# --------------------------------------------------------------------------
# the criteria in the table are the estimator's
# --------------------------------------------------------------------------


def test_table_criteria_equal_standalone_fits():
    X = blobs(n=500, d=3, k=3, seed=4)
    result = select(X, n_components=[1, 2, 3], random_state=7, max_iter=50)
    records = result.records
    assert len(records) == 12
    n = X.shape[0]
    for row in records:
        k, ct = int(row["n_components"]), str(row["covariance_type"])
        gm = GaussianMixture(k, covariance_type=ct, random_state=7, max_iter=50).fit(X)
        assert_allclose(row["bic"], gm.bic(X), rtol=1e-10, err_msg=f"{k} {ct}")
        assert_allclose(row["aic"], gm.aic(X), rtol=1e-10, err_msg=f"{k} {ct}")
        assert_allclose(row["log_likelihood"], gm.score(X) * n, rtol=1e-10)
        assert row["n_parameters"] == gm._n_parameters()
        assert row["converged"] == gm.converged_ and row["n_iter"] == gm.n_iter_
        assert row["error"] == ""
        # ICL = BIC + 2 * entropy of the MAP assignment >= BIC
        assert row["icl"] >= row["bic"]
        assert_allclose(row["icl"], gm.bic(X) + 2 * entropy_term(gm, X), rtol=1e-10)
        if k == 1:
            assert row["icl"] == row["bic"]
    # overlapping components: some rows are not assigned with certainty
    assert (records["icl"] > records["bic"])[records["n_components"] > 1].any()


def test_weighted_criteria_equal_standalone_fit():
    X = blobs(n=400, d=2, k=2, seed=5)
    w = np.random.default_rng(0).uniform(0.2, 3.0, size=len(X))
    result = select(X, n_components=[2], covariance_types="full", random_state=1,
                    sample_weight=w)
    gm = GaussianMixture(2, random_state=1).fit(X, sample_weight=w)
    row = result.records[0]
    assert_allclose(row["bic"], gm.bic(X, sample_weight=w), rtol=1e-10)
    assert_allclose(row["aic"], gm.aic(X, sample_weight=w), rtol=1e-10)
    assert_allclose(row["log_likelihood"], gm.score(X, sample_weight=w) * w.sum(),
                    rtol=1e-10)
    assert_allclose(row["icl"], row["bic"] + 2 * entropy_term(gm, X, w), rtol=1e-10)
    assert_allclose(result.best_estimator_.means_, gm.means_, rtol=1e-12)


def test_icl_in_blocks_equals_one_pass(monkeypatch):
    """On large data the posterior probabilities are formed block by block."""
    X = blobs(n=3000, d=2, k=3, seed=6)
    whole = select(X, n_components=[3], covariance_types="diag", random_state=0)
    monkeypatch.setattr(select_module, "_RESP_BYTES", 8 * 3 * 257)  # 257-row blocks
    blocked = select(X, n_components=[3], covariance_types="diag", random_state=0)
    for col in ("bic", "aic", "icl", "log_likelihood"):
        assert_allclose(blocked.records[col], whole.records[col], rtol=1e-12, err_msg=col)


def test_memmap_input_gives_the_same_table(tmp_path):
    X = blobs(n=800, d=2, k=2, seed=8)
    mm = np.lib.format.open_memmap(tmp_path / "X.npy", mode="w+", dtype=np.float64,
                                   shape=X.shape)
    mm[:] = X
    mm.flush()
    kwargs = {"n_components": [1, 2], "covariance_types": ("full", "spherical"),
                  "random_state": 0}
    a = select(X, **kwargs).records
    b = select(np.load(tmp_path / "X.npy", mmap_mode="r"), **kwargs).records
    for col in ("bic", "aic", "icl", "log_likelihood"):
        assert_allclose(b[col], a[col], rtol=1e-10, err_msg=col)


# --------------------------------------------------------------------------
# what is selected
# --------------------------------------------------------------------------


def test_bic_selects_three_diag_components():
    X = diag_mixture(seed=3)
    result = select(X, n_components=range(1, 7), random_state=0)
    assert result.best_params_ == {"n_components": 3, "covariance_type": "diag"}
    assert result.best_estimator_.n_components == 3
    assert result.best_index_ == int(np.nanargmin(result.records["bic"]))


def test_old_faithful_with_ten_initialisations(faithful):
    """docs/select.md: with n_init=10 BIC picks mclust's answer, EEE (tied), k=3."""
    result = select(faithful, n_init=10, random_state=0)
    assert result.best_params_ == {"n_components": 3, "covariance_type": "tied"}
    records = result.records
    assert result.best_index_ == int(np.nanargmin(records["bic"]))
    assert result.best_score_ == records["bic"].min()
    assert_allclose(result.best_score_, 2315.645, atol=1e-3)
    # mclust: EEE,3 BIC -2314.386 (its sign), log-likelihood -1126.361
    assert abs(result.best_score_ - 2314.386) < 2.0
    best = result.best_estimator_
    check_is_fitted(best)
    assert (best.n_components, best.covariance_type) == (3, "tied")
    assert_allclose(best.bic(faithful), result.best_score_, rtol=1e-12)
    # the runner-up: two full components, as with n_init=1 below
    assert_allclose(result.pivot()[1, 0], 2322.192, atol=1e-3)


def test_old_faithful_default(faithful_default, faithful):
    """docs/select.md: with n_init=1, random_state=0, the tied k=3 fit stops in a
    local optimum and BIC picks two full components."""
    result = faithful_default
    assert result.best_params_ == {"n_components": 2, "covariance_type": "full"}
    assert_allclose(result.best_score_, 2322.192, atol=1e-3)
    assert result.best_index_ == int(np.nanargmin(result.records["bic"]))
    check_is_fitted(result.best_estimator_)
    assert_allclose(result.best_estimator_.bic(faithful), result.best_score_, rtol=1e-12)
    assert result.pivot().shape == (9, 4)


@pytest.mark.parametrize("criterion", ["aic", "icl"])
def test_other_criteria_select_by_their_column(faithful, faithful_default, criterion):
    result = select(faithful, criterion=criterion, random_state=0)
    records = result.records
    # the same fits: only the choice differs
    for col in ("bic", "aic", "icl"):
        assert_allclose(records[col], faithful_default.records[col], rtol=0, atol=0)
    assert result.criterion == criterion
    assert result.best_index_ == int(np.nanargmin(records[criterion]))
    assert result.best_score_ == records[criterion].min()
    best = records[result.best_index_]
    assert result.best_params_ == {"n_components": int(best["n_components"]),
                                   "covariance_type": str(best["covariance_type"])}
    if criterion == "aic":  # AIC's lighter penalty: more components than BIC
        assert result.best_params_["n_components"] > 2
    else:  # ICL: the two well separated eruption types
        assert result.best_params_ == {"n_components": 2, "covariance_type": "full"}


def test_ties_prefer_fewer_parameters():
    values = np.array([np.nan, 5.0, 3.0, 3.0, 3.0])
    n_params = np.array([1, 2, 9, 4, 4])
    assert _best_index(values, n_params) == 3
    assert _best_index(np.array([2.0, 2.0]), np.array([7, 7])) == 0


def test_feature_names_are_kept(monkeypatch):
    """Fits run on the converted ndarray; the models get X's column names as
    ``fit(DataFrame)`` would give them (pandas is not needed for the test)."""
    names = np.array(["eruptions", "waiting"], dtype=object)
    monkeypatch.setattr(select_module, "_get_feature_names", lambda X: names)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no "X has feature names" warning
        result = select(blobs(n=200, d=2, k=2, seed=16), n_components=[1, 2],
                        covariance_types="diag", random_state=0)
    assert list(result.best_estimator_.feature_names_in_) == list(names)


def test_random_state_instance_is_reproducible():
    X = blobs(n=300, d=2, k=2, seed=9)
    kwargs = {"n_components": [1, 2, 3], "covariance_types": ("diag",)}
    a = select(X, random_state=np.random.RandomState(3), **kwargs).records
    b = select(X, random_state=np.random.RandomState(3), **kwargs).records
    assert_allclose(a["bic"], b["bic"], rtol=0, atol=0)


# --------------------------------------------------------------------------
# the table and the result object
# --------------------------------------------------------------------------


def test_structured_table_columns_and_rows(monkeypatch):
    X = blobs(n=300, d=2, k=2, seed=10)
    monkeypatch.setitem(sys.modules, "pandas", None)  # "pandas is not installed"
    result = select(X, n_components=[3, 1, 3], covariance_types=["tied", "full"],
                    random_state=0)
    table = result.table
    assert isinstance(table, np.ndarray) and table is result.records
    assert table.dtype.names == TABLE_COLUMNS
    assert len(table) == 4  # duplicates removed, one row per grid point
    assert table["n_components"].tolist() == [3, 3, 1, 1]
    assert table["covariance_type"].tolist() == ["tied", "full", "tied", "full"]
    assert table["converged"].dtype == np.bool_
    assert np.isfinite(table["bic"]).all() and (table["error"] == "").all()
    assert result.n_components == [3, 1] and result.covariance_types == ["tied", "full"]


def test_table_type_follows_pandas_availability():
    result = select(blobs(n=200, d=2, k=2, seed=11), n_components=[1, 2],
                    covariance_types="full", random_state=0)
    if PANDAS:
        import pandas as pd

        assert isinstance(result.table, pd.DataFrame)
        assert tuple(result.table.columns) == TABLE_COLUMNS
        assert len(result.table) == 2
    else:
        assert result.table is result.records


def test_repr_and_text(faithful_default):
    text = repr(faithful_default)
    assert "BIC" in text and "*2322.192" in text
    assert "n_components=2, covariance_type='full'" in text
    lines = faithful_default.to_text().splitlines()
    assert len(lines) == 1 + 36 + 1
    assert lines[0].split()[:4] == ["k", "covariance", "bic", "aic"]
    assert sum("*" in line for line in lines[1:-1]) == 1
    assert isinstance(faithful_default, SelectionResult)


# --------------------------------------------------------------------------
# failing fits
# --------------------------------------------------------------------------


def _failing_fit(monkeypatch, should_fail):
    real_fit = GaussianMixture.fit

    def fit(self, X, y=None, sample_weight=None):
        if should_fail(self.n_components, self.covariance_type):
            raise ValueError("synthetic failure for the test")
        return real_fit(self, X, y, sample_weight=sample_weight)

    monkeypatch.setattr(GaussianMixture, "fit", fit)


def test_failing_grid_point_is_recorded(monkeypatch):
    X = blobs(n=300, d=2, k=2, seed=12)
    _failing_fit(monkeypatch, lambda k, ct: (k, ct) == (2, "full"))
    with pytest.warns(FitFailedWarning, match=r"1 of 4 fits failed") as record:
        result = select(X, n_components=[1, 2], covariance_types=("full", "diag"),
                        random_state=0)
    assert sum(issubclass(w.category, FitFailedWarning) for w in record) == 1
    table = result.records
    bad = (table["n_components"] == 2) & (table["covariance_type"] == "full")
    row = table[bad][0]
    for col in ("bic", "aic", "icl", "log_likelihood"):
        assert np.isnan(row[col])
    assert not row["converged"] and row["n_iter"] == 0
    assert "ValueError: synthetic failure for the test" in row["error"]
    assert row["n_parameters"] == 11
    assert np.isfinite(table["bic"][~bad]).all() and (table["error"][~bad] == "").all()
    assert result.best_index_ != int(np.flatnonzero(bad)[0])
    assert "1 fit(s) failed" in repr(result) and "failed" in repr(result).splitlines()[3]


def test_real_collapse_is_recorded_and_does_not_stop_selection():
    """Three distinct points repeated: with reg_covar=0, k >= 2 cannot be fitted."""
    X = np.repeat(np.random.default_rng(0).normal(size=(3, 2)), 20, axis=0)
    with pytest.warns(FitFailedWarning, match=r"8 of 12 fits failed"):
        result = select(X, n_components=[1, 2, 3], reg_covar=0, random_state=0)
    table = result.records
    assert np.isfinite(table["bic"][table["n_components"] == 1]).all()
    failed = table[table["n_components"] > 1]
    assert np.isnan(failed["bic"]).all() and not failed["converged"].any()
    assert all("covariance" in e for e in failed["error"])
    assert result.best_params_["n_components"] == 1


def test_all_failing_raises(monkeypatch):
    X = blobs(n=200, d=2, k=2, seed=13)
    _failing_fit(monkeypatch, lambda k, ct: True)
    with pytest.raises(ValueError, match=r"All 4 fits failed") as excinfo:
        select(X, n_components=[1, 2], covariance_types=("full", "tied"))
    assert "synthetic failure" in str(excinfo.value)
    assert "reg_covar" in str(excinfo.value)


def test_non_converged_fits_give_one_warning():
    X = blobs(n=300, d=2, k=3, seed=14)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        result = select(X, n_components=[2, 3], covariance_types=("full", "diag"),
                        max_iter=1, tol=0, random_state=0)
    conv = [w for w in record if issubclass(w.category, ConvergenceWarning)]
    assert len(conv) == 1 and "4 of 4 fits did not converge" in str(conv[0].message)
    assert not result.records["converged"].any()


# --------------------------------------------------------------------------
# argument errors
# --------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, pattern", [
    ({"n_components": []}, r"n_components is empty"),
    ({"n_components": range(0)}, r"n_components is empty"),
    ({"covariance_types": ()}, r"covariance_types is empty"),
    ({"n_components": [0, 1]}, r"integers >= 1, but got 0"),
    ({"n_components": [1, 2.5]}, r"must contain integers, but got 2\.5"),
    ({"n_components": [True]}, r"must contain integers"),
    ({"n_components": None}, r"int or an iterable of ints"),
    ({"n_components": [1, 51]}, r"must not exceed n_samples = 50, but got 51"),
    ({"covariance_types": ("full", "VVV")}, r"Unknown covariance type 'VVV'.*'tied'"),
    ({"covariance_types": "fulll"}, r"Unknown covariance type 'fulll'"),
    ({"criterion": "loglik"}, r"Unknown criterion 'loglik'.*'icl'"),
    ({"criterion": None}, r"Unknown criterion None"),
    ({"max_iter": -1}, r"max_iter"),
    ({"init_params": "hierarchical"}, r"init_params"),
    ({"n_init": 0}, r"n_init"),
    ({"means_init": np.zeros((2, 2))}, r"means_init.*fix the number of components"),
    ({"sample_weight": np.ones(3)}, r"sample_weight must have shape \(50,\)"),
])
def test_bad_arguments(kwargs, pattern):
    X = blobs(n=50, d=2, k=2, seed=15)
    with pytest.raises(ValueError, match=pattern):
        select(X, **kwargs)


def test_unknown_keyword_is_a_type_error():
    with pytest.raises(TypeError, match=r"unexpected keyword.*max_iters.*max_iter"):
        select(blobs(n=50, d=2, k=2), max_iters=10)


@pytest.mark.parametrize("X, pattern", [
    (np.array([[1.0, np.nan], [2.0, 3.0], [4.0, 5.0]]), r"non-finite"),
    (np.arange(10.0), r"reshape"),
    (np.ones((1, 2)), r"n_samples >= 2"),
])
def test_bad_X(X, pattern):
    with pytest.raises(ValueError, match=pattern):
        select(X, n_components=[1])


# --------------------------------------------------------------------------
# the documentation example runs and shows what the text says
# --------------------------------------------------------------------------


def test_docs_page_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", (DOCS / "select.md").read_text(), flags=re.DOTALL)
    assert blocks
    namespace = {"__name__": "__docs__"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for code in blocks:
            exec(compile(code, "docs/select.md", "exec"), namespace)
    text = out.getvalue()
    assert "n_components=3, covariance_type='tied'" in text
    assert "*2315.645" in text
