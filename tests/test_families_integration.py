"""Every family of the registry (fastem/_registry.py) through saving and
loading, ``fastem.select``, the command line and ``fastem.plot``.

Tests are parametrised over the registry: a class a family names but this
fastem does not have yet is skipped, and is tested as soon as it exists.
The four linear families and the Gaussian one must be there now."""

import json
import shlex
import sys
import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from conftest import blobs
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from test_cli_hostile import _assert_one_line_error
from test_model_files_hostile import _arr, _obj, _param, _state  # edits of a saved file
from test_save_load import _rewrite

import fastem
from fastem import CollapseWarning, _registry, plot
from fastem import discrete as discrete_module
from fastem._datafile import read_table
from fastem._io import load, save
from fastem._registry import FAMILIES, Family
from fastem.cli import main

pytestmark = [pytest.mark.filterwarnings("ignore", category=CollapseWarning),
              pytest.mark.filterwarnings("ignore", category=ConvergenceWarning)]

DISCRETE = [name for name, f in FAMILIES.items() if not f.covariance]
LINEAR = ("bernoulli", "binomial", "poisson", "multinomial")
#: (family, online) for every class the registry names.
CASES = [(name, online) for name in FAMILIES for online in (False, True)]
N_TRIALS = 4


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


# ----------------------------------------------------------------------
# data and models of every family
# ----------------------------------------------------------------------


def _data(name, n=120, seed=0):
    """Two well separated components of the family, n rows."""
    rng = np.random.default_rng(seed)
    z = np.repeat([0, 1], n // 2)
    if name == "gaussian":
        return blobs(n=n, d=2, k=2, seed=seed)
    if name == "bernoulli":
        p = np.array([[0.1, 0.2, 0.8, 0.9], [0.9, 0.8, 0.2, 0.1]])
        return (rng.random((n, 4)) < p[z]).astype(np.float64)
    if name == "binomial":
        p = np.array([[0.1, 0.5, 0.9], [0.8, 0.3, 0.2]])
        return rng.binomial(N_TRIALS, p[z]).astype(np.float64)
    if name == "poisson":
        rates = np.array([[1.0, 6.0, 2.0], [5.0, 1.0, 3.0]])
        return rng.poisson(rates[z]).astype(np.float64)
    if name == "multinomial":
        p = np.array([[0.6, 0.2, 0.1, 0.1], [0.1, 0.1, 0.3, 0.5]])
        return np.vstack([rng.multinomial(20, p[k]) for k in z]).astype(np.float64)
    if name == "categorical":
        p = [np.array([[0.8, 0.1, 0.1], [0.1, 0.1, 0.8]]), np.array([[0.9, 0.1], [0.2, 0.8]]),
             np.array([[0.5, 0.3, 0.1, 0.1], [0.1, 0.1, 0.3, 0.5]])]
        return np.column_stack([[rng.choice(len(pj[k]), p=pj[k]) for k in z] for pj in p])
    raise AssertionError(f"no test data for the family {name!r}: add it here")


def _frame(n=120, seed=1):
    """A table of text, integer and category columns for the categorical family."""
    pd = pytest.importorskip("pandas")
    codes = _data("categorical", n, seed)
    return pd.DataFrame({
        "colour": np.array(["red", "green", "blue"], dtype=object)[codes[:, 0]],
        "size": pd.Categorical(np.array(["small", "big"])[codes[:, 1]]),
        "score": codes[:, 2] + 1,
    })


def _params(name):
    return {"n_trials": N_TRIALS} if name == "binomial" else {}


def _class(name, online=False):
    """The family's class, or skip: the registry names it, this fastem does
    not have it yet."""
    family = FAMILIES[name]
    cls = family.online_class() if online else family.batch_class()
    if cls is None:
        pytest.skip(f"{family.online if online else family.batch} is not in this fastem yet")
    return cls


def _model(name, online=False, k=2, **kw):
    cls = _class(name, online)
    kw = {**_params(name), "random_state": 0, **kw}
    if online:
        kw = {"batch_size": 40, "max_iter": 3, **kw}
    else:
        kw = {"max_iter": 30, **kw}
    return cls(k, **kw)


def test_linear_families_and_gaussian_are_registered_and_available():
    """The four linear families (batch) are tested now, not skipped."""
    for name in ("gaussian",) + LINEAR:
        assert FAMILIES[name].available, name
    names = set(_registry.model_classes())
    assert {"GaussianMixture", "MiniBatchGaussianMixture", "BernoulliMixture",
            "BinomialMixture", "PoissonMixture", "MultinomialMixture"} <= names
    assert _registry.family_of(fastem.PoissonMixture()).name == "poisson"
    assert _registry.family_of(type("Sub", (fastem.PoissonMixture,), {})) is None
    assert _registry.get_family("bernoulli") is FAMILIES["bernoulli"]
    with pytest.raises(ValueError, match=r"Unknown family 'gauss'\. Expected one of "
                                         r"\['gaussian', 'bernoulli'"):
        _registry.get_family("gauss")


# ----------------------------------------------------------------------
# save and load
# ----------------------------------------------------------------------


def _assert_same(a, b, where, ma, mb):
    """Equal values of equal types (arrays bitwise); a reference to the
    model ``ma`` must be one to ``mb``."""
    if a is ma:
        assert b is mb, f"{where}: not a reference to the loaded model"
        return
    assert type(a) is type(b), f"{where}: {type(a)} != {type(b)}"
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        if a.dtype.kind == "O":
            assert a.tolist() == b.tolist() and all(
                type(x) is type(y) for x, y in zip(a.flat, b.flat)), where
        else:
            assert np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"), where
    elif isinstance(a, np.random.RandomState):
        sa, sb = a.get_state(legacy=False), b.get_state(legacy=False)
        assert np.array_equal(sa["state"]["key"], sb["state"]["key"]), where
        assert sa["state"]["pos"] == sb["state"]["pos"], where
    elif isinstance(a, dict):
        assert set(a) == set(b), where
        for k in a:
            _assert_same(a[k], b[k], f"{where}.{k}", ma, mb)
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]", ma, mb)
    elif hasattr(a, "__dict__") and not isinstance(a, type):
        _assert_same(vars(a), vars(b), where, ma, mb)
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b), where
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def _saved(model):
    private = _registry.model_classes()[type(model).__name__][1]
    return {k: v for k, v in vars(model).items()
            if (not k.startswith("_") and k.endswith("_")) or k in private}


def _assert_same_model(a, b):
    _assert_same(a.get_params(deep=False), b.get_params(deep=False), "params", a, b)
    _assert_same(_saved(a), _saved(b), "state", a, b)


def _assert_same_predictions(a, b, X):
    assert np.array_equal(a.predict(X), b.predict(X))
    assert np.array_equal(a.predict_proba(X), b.predict_proba(X))
    assert np.array_equal(a.score_samples(X), b.score_samples(X))
    assert a.score(X) == b.score(X)


@pytest.mark.parametrize("name, online", CASES,
                         ids=[f"{n}-{'online' if o else 'batch'}" for n, o in CASES])
def test_round_trip_of_every_registered_class(name, online, tmp_path):
    X = _data(name)
    model = _model(name, online).fit(X)
    save(model, tmp_path / "m.fem")
    loaded = load(tmp_path / "m.fem")
    assert type(loaded) is type(model)
    _assert_same_model(model, loaded)
    _assert_same_predictions(model, loaded, X)
    if online:  # partial_fit goes on exactly as the saved model would have
        for m in (model, loaded):
            m.partial_fit(X[:50])
            m.partial_fit(X[50:])
        _assert_same_model(model, loaded)
    unfitted = _model(name, online)
    save(unfitted, tmp_path / "u.fem")
    again = load(tmp_path / "u.fem")
    _assert_same_model(unfitted, again)
    assert not hasattr(again, "weights_")


@pytest.mark.parametrize("online", [False, True])
def test_categorical_table_round_trip_keeps_categories(online, tmp_path):
    X = _frame()
    model = _model("categorical", online).fit(X)
    assert [list(c) for c in model.categories_] == [["blue", "green", "red"], ["big", "small"],
                                                    [1, 2, 3, 4]]
    save(model, tmp_path / "m.fem")
    loaded = load(tmp_path / "m.fem")
    _assert_same_model(model, loaded)  # categories_ items keep their types (str, int)
    assert isinstance(loaded.probabilities_, list) and len(loaded.probabilities_) == 3
    _assert_same_predictions(model, loaded, X)
    assert list(loaded.feature_names_in_) == ["colour", "size", "score"]


def test_binomial_trials_per_column_round_trip(tmp_path):
    X = _data("binomial")
    model = _model("binomial", n_trials=np.array([4, 5, 6])).fit(X)
    save(model, tmp_path / "m.fem")
    loaded = load(tmp_path / "m.fem")
    _assert_same_model(model, loaded)
    _assert_same_predictions(model, loaded, X)


def test_a_family_works_once_its_class_exists(monkeypatch, tmp_path):
    """A new family is its module plus its registry line: until the class
    exists it is skipped everywhere; then save, load and select serve it."""
    ghost = Family("ghost", "fastem.discrete:GhostMixture", None,
                   parameters=("probabilities_",),
                   state_classes=FAMILIES["bernoulli"].state_classes)
    monkeypatch.setitem(FAMILIES, "ghost", ghost)
    assert not ghost.available and "ghost" not in _registry.family_names()
    assert "GhostMixture" not in _registry.model_classes()
    with pytest.raises(ValueError, match=r"'ghost' family is not available "
                                         r"\(fastem\.discrete\.GhostMixture does not exist"):
        fastem.select(_data("bernoulli"), [1, 2], family="ghost")
    X = _data("bernoulli")
    with pytest.raises(TypeError, match="save expects a model of one of fastem's classes"):
        save(type("GhostMixture", (fastem.BernoulliMixture,), {})(2).fit(X), tmp_path / "g.fem")

    cls = type("GhostMixture", (fastem.BernoulliMixture,), {"__module__": "fastem.discrete"})
    monkeypatch.setattr(discrete_module, "GhostMixture", cls, raising=False)
    assert ghost.available and _registry.family_of(cls) is ghost
    model = cls(2, random_state=0).fit(X)
    save(model, tmp_path / "g.fem")
    loaded = load(tmp_path / "g.fem")
    assert type(loaded) is cls
    _assert_same_predictions(model, loaded, X)
    result = fastem.select(X, [1, 2], family="ghost", random_state=0)
    assert type(result.best_estimator_) is cls


# ----------------------------------------------------------------------
# tampered files, signed again: refused with a ValueError
# ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Saved models (3 components) by key; online ones only where they exist."""
    folder = tmp_path_factory.mktemp("tampered")
    out = {}
    specs = {"B": ("bernoulli", False, None), "P": ("poisson", False, None),
             "Bin": ("binomial", False, None), "M": ("multinomial", False, None),
             "C": ("categorical", False, "frame"), "MB": ("bernoulli", True, None),
             "MC": ("categorical", True, "frame"), "MG": ("gaussian", True, None)}
    for key, (name, online, kind) in specs.items():
        family = FAMILIES[name]
        cls = family.online_class() if online else family.batch_class()
        if cls is None:
            continue
        X = _frame(150) if kind == "frame" else _data(name, 150)
        kw = {**_params(name), "random_state": 0}
        kw.update({"batch_size": 50, "max_iter": 2} if online else {"max_iter": 20})
        model = cls(3, **kw).fit(X)
        path = folder / f"{key}.fem"
        save(model, path)
        out[key] = path
    return out




def _set(a, index, v):
    a[index] = v
    return a


_P, _W, _R = "state.probabilities_", "state.weights_", "state.rates_"

EDITS = {
    # shapes against n_components and n_features_in_
    "probabilities-wrong-shape": ("B", _arr(_P, lambda a: a[:, :3]),
                                  r"probabilities_ should be a float array of shape \(3, 4\)"),
    "probabilities-extra-row": ("B", _arr(_P, lambda a: np.vstack([a, a[:1]])),
                                r"probabilities_ .*\(4, 4\)"),
    "probabilities-flattened": ("Bin", _arr(_P, lambda a: a.ravel()),
                                r"probabilities_ should be a float array of shape \(3, 3\)"),
    "rates-wrong-shape": ("P", _arr(_R, lambda a: a[:2]), r"rates_ .*\(2, 3\)"),
    "n_components-2": ("B", _param(n_components=2), r"weights_ .*shape \(2,\)"),
    "n_features_in_-5": ("P", _state(lambda s: s.update(n_features_in_=5)),
                         r"rates_ .*shape \(3, 5\)"),
    # dtypes and values
    "probabilities-int": ("B", _arr(_P, lambda a: (a > 0.5).astype(np.int64)), "dtype int64"),
    "probabilities-nan": ("B", _arr(_P, lambda a: _set(a, (0, 0), np.nan)), "finite numbers"),
    "probability-1.5": ("B", _arr(_P, lambda a: _set(a, (1, 2), 1.5)),
                        "probabilities strictly between 0 and 1"),
    "probability-0": ("Bin", _arr(_P, lambda a: _set(a, (0, 0), 0.0)),
                      "probabilities strictly between 0 and 1"),
    "rates-minus-1": ("P", _arr(_R, lambda a: _set(a, (0, 1), -1.0)), "positive rates"),
    "rates-zero": ("P", _arr(_R, lambda a: a * 0), "positive rates"),
    "multinomial-rows-not-summing": ("M", _arr(_P, lambda a: a * 0.5), "should sum to 1"),
    "weights-sum": ("B", _arr(_W, lambda a: a / 2), "non-negative and sum to 1"),
    "weights-negative": ("P", _arr(_W, lambda a: np.array([-0.2, 0.6, 0.6])),
                         "non-negative and sum to 1"),
    "weights-inf": ("B", _arr(_W, lambda a: _set(a, 0, np.inf)), "finite numbers"),
    # parameters
    "n_trials-0": ("Bin", _param(n_trials=0), "parameters are invalid"),
    "n_trials-per-column-length": ("Bin", _param(n_trials=[4, 4]),
                                   "n_trials has 2 values but X has 3 columns"),
    "alpha-negative": ("B", _param(alpha=-1.0), "parameters are invalid"),
    "probabilities_init-shape": ("B", _param(probabilities_init=[[0.5, 0.5]] * 3),
                                 "'probabilities_init' should be"),
    # fitted scalars, events, all or nothing
    "n_em_maps-missing": ("P", _state(lambda s: s.pop("n_em_maps_")), "n_em_maps_ missing"),
    "probabilities-missing": ("B", {**_state(lambda s: s.pop("probabilities_")),
                                    "arrays": lambda e: e.pop(_P)}, "only partly fitted"),
    "event-ridge": ("B", _state(lambda s: s.update(collapse_events_=[
        {"__tuple__": [1, 0, "ridge"]}])), "collapse_events_ should hold"),
    "event-component": ("P", _state(lambda s: s.update(collapse_events_=[
        {"__tuple__": [1, 7, "reseed"]}])), r"component in \[0, 3\)"),
    "n_reseeds-count": ("B", _state(lambda s: s.update(n_reseeds_=99)), "n_reseeds_ should count"),
    "converged-int": ("P", _state(lambda s: s.update(converged_=1)), "converged_ should be a bool"),
    "lower_bounds-str": ("B", _state(lambda s: s.update(lower_bounds_="x")),
                         "lower_bounds_ should be a list of float"),
    "feature_names-length": ("C", _state(lambda s: s.update(
        feature_names_in_={"__strings__": [[2], ["a", "b"]]})),
        r"feature_names_in_ should be an array of 3 str"),
    # categorical: the list of blocks, n_categories_ and categories_
    "categorical-block-columns": ("C", _arr(f"{_P}.0", lambda a: a[:, :2]),
                                  "probabilities_ should be"),
    "categorical-block-rows": ("C", _arr(f"{_P}.1", lambda a: a[:2]),
                               r"probabilities_\[1\] should be a float array of 3 rows"),
    "categorical-block-sum": ("C", _arr(f"{_P}.1", lambda a: a * 0.5), "should sum to 1"),
    "categorical-blocks-missing": ("C", _state(lambda s: s["probabilities_"].pop()),
                                   "probabilities_ should be a list of 3 arrays"),
    "n_categories-bigger": ("C", _arr("state.n_categories_", lambda a: a + 1),
                            "probabilities_ should be"),
    "n_categories-missing": ("C", {**_state(lambda s: s.pop("n_categories_")),
                                   "arrays": lambda e: e.pop("state.n_categories_")},
                             "n_categories_ missing"),
    "categories-duplicate": ("C", _state(lambda s: s["categories_"].__setitem__(
        0, {"__strings__": [[3], ["red", "red", "blue"]]})), "categories_ should be"),
    "categories-length": ("C", _state(lambda s: s["categories_"].__setitem__(
        1, {"__strings__": [[3], ["a", "b", "c"]]})), "categories_ should"),
    "categories-not-a-list": ("C", _state(lambda s: s.update(categories_="red")),
                              "categories_ should"),
    # online: the running statistics and the recovery partial_fit continues from
    "running-S1-shape": ("MB", _arr("state._running.S1", lambda a: a[:, :2]),
                         r"_running\.S1 should be a float array of shape \(3, 4\)"),
    "running-S1-flat-categorical": ("MC", _arr("state._running.S1", lambda a: a[:, :-1]),
                                    r"_running\.S1 should be a float array of shape \(3, 9\)"),
    "running-S0-negative": ("MB", _arr("state._running.S0", lambda a: -a),
                            "non-negative counts S0"),
    "running-attribute-missing": ("MB", _obj("_running", lambda o: o.pop("weight")),
                                  "_running should be statistics with the attributes"),
    "running-not-stats": ("MB", _state(lambda s: s.update(_running=[1, 2])),
                          r"_running should be one of \['DiscreteRecovery', 'LinearStats'\]"),
    "collapse-K": ("MB", _obj("_collapse", lambda o: o.update(K=4)),
                   "_collapse should be the recovery of this model"),
    "collapse-estimator": ("MB", _obj("_collapse", lambda o: o.update(estimator=None)),
                           "_collapse should be the recovery of this model"),
    "collapse-budget": ("MB", _obj("_collapse", lambda o: o.update(budget=-1)),
                        r"_collapse\.budget should be an int >= 0"),
    "collapse-min-count": ("MB", _obj("_collapse", lambda o: o.update(
        min_count={"__float__": "nan"})), "finite min_count"),
    "collapse-extra-attribute": ("MB", _obj("_collapse", lambda o: o.update(extra=1)),
                                 "_collapse should be a recovery with the attributes"),
    "collapse-gaussian-class": ("MB", _state(lambda s: s["_collapse"]["__object__"].__setitem__(
        0, "Recovery")), (r"the class 'Recovery', which is not one of \['DiscreteRecovery', "
                          r"'LinearStats'\]")),
    "gaussian-file-discrete-class": ("MG", _state(
        lambda s: s["_collapse"]["__object__"].__setitem__(0, "DiscreteRecovery")),
        r"the class 'DiscreteRecovery', which is not one of \['GaussianStats', 'Recovery'\]"),
    "model-reference-in-params": ("B", _param(random_state={"__model__": 0}),
                                  "a reference to the model outside its state"),
    "model-reference-malformed": ("MB", _obj("_collapse", lambda o: o.update(
        estimator={"__model__": 1})), "a reference to the model outside its state"),
    "objects-malformed": ("C", _state(lambda s: s["categories_"].__setitem__(
        2, {"__objects__": [[2], [1]]})), "a malformed object array"),
    "objects-of-lists": ("C", _state(lambda s: s["categories_"].__setitem__(
        2, {"__objects__": [[1], [[1, 2]]]})), "items that are not numbers, str or bool"),
}


@pytest.mark.parametrize("case", list(EDITS))
def test_signed_edits_of_discrete_files_are_refused(files, tmp_path, case):
    which, edit, message = EDITS[case]
    if which not in files:
        pytest.skip(f"no {which} model in this fastem yet")
    path = _rewrite(files[which], tmp_path / "edited.fem", resign=True, **edit)
    with pytest.raises(ValueError, match=message) as info:
        load(path)
    assert str(info.value).startswith("Cannot load")


def test_unsigned_edit_of_a_discrete_file_fails_the_checksum(files, tmp_path):
    path = _rewrite(files["B"], tmp_path / "edited.fem",
                    **_arr(_P, lambda a: _set(a, (0, 0), 0.5)))
    with pytest.raises(ValueError, match="checksum does not match"):
        load(path)


def test_an_edit_that_keeps_the_model_consistent_loads(files, tmp_path):
    """Signed edits the checks let through give a model that works."""
    path = _rewrite(files["B"], tmp_path / "edited.fem", resign=True,
                    **_arr(_P, lambda a: np.clip(a[::-1].copy(), 0.05, 0.95)))
    model = load(path)
    X = _data("bernoulli")
    P = model.predict_proba(X)
    assert np.isfinite(P).all() and np.allclose(P.sum(axis=1), 1.0)


def test_save_refuses_an_inconsistent_discrete_model(tmp_path):
    model = _model("poisson").fit(_data("poisson"))
    model.rates_ = -model.rates_
    with pytest.raises(ValueError, match=r"Cannot save the PoissonMixture: .*positive rates"):
        save(model, tmp_path / "m.fem")


# ----------------------------------------------------------------------
# select
# ----------------------------------------------------------------------


@pytest.mark.parametrize("name", DISCRETE)
def test_select_over_k_for_every_discrete_family(name):
    _class(name)
    X = _data(name, 160)
    result = fastem.select(X, [1, 2, 3], family=name, random_state=0, **_params(name))
    table = result.records
    assert table["n_components"].tolist() == [1, 2, 3]
    assert (table["covariance_type"] == "").all() and (table["error"] == "").all()
    assert result.best_params_ == {"n_components": 2}
    assert result.family == name and result.covariance_types == []
    assert result.pivot().shape == (3, 1)
    for row in table:  # each row equals a standalone fit's bic, aic and score
        est = _class(name)(int(row["n_components"]), random_state=0, **_params(name)).fit(X)
        np.testing.assert_allclose(row["bic"], est.bic(X), rtol=1e-10)
        np.testing.assert_allclose(row["aic"], est.aic(X), rtol=1e-10)
        np.testing.assert_allclose(row["log_likelihood"], est.score(X) * len(X), rtol=1e-10)
        entropy = -np.log(est.predict_proba(X).max(axis=1)).sum()
        np.testing.assert_allclose(row["icl"], row["bic"] + 2 * entropy, rtol=1e-8, atol=1e-8)
        assert row["n_parameters"] == est._n_parameters()
    assert type(result.best_estimator_) is _class(name)
    assert f"family={name!r}" in repr(result) and name in result.to_text()


def test_select_weighted_and_in_blocks(monkeypatch):
    select_module = sys.modules["fastem.select"]  # fastem.select is the function
    X = _data("poisson", 200)
    w = np.random.default_rng(3).uniform(0.5, 2.0, size=len(X))
    whole = fastem.select(X, [2], family="poisson", random_state=0, sample_weight=w)
    est = fastem.PoissonMixture(2, random_state=0).fit(X, sample_weight=w)
    np.testing.assert_allclose(whole.records["bic"][0], est.bic(X, sample_weight=w), rtol=1e-10)
    monkeypatch.setattr(select_module, "_RESP_BYTES", 8 * 2 * 37)  # 37-row blocks
    blocked = fastem.select(X, [2], family="poisson", random_state=0, sample_weight=w)
    for col in ("bic", "aic", "icl", "log_likelihood"):
        np.testing.assert_allclose(blocked.records[col], whole.records[col], rtol=1e-12)


def test_select_categorical_table():
    _class("categorical")
    X = _frame(160)
    result = fastem.select(X, [1, 2], family="categorical", random_state=0)
    assert list(result.best_estimator_.categories_[0]) == ["blue", "green", "red"]
    assert np.isfinite(result.records["bic"]).all()


@pytest.mark.parametrize("kwargs, error, pattern", [
    ({"covariance_types": "full"}, ValueError, r"covariance_types is for family='gaussian' only"),
    ({"covariance_types": ["diag", "full"]}, ValueError, "covariance_types is for"),
    ({"family": "gauss"}, ValueError, r"Unknown family 'gauss'"),
    ({"family": None}, ValueError, r"Unknown family None"),
    ({"reg_covar": 1e-3}, TypeError, r"unexpected keyword.*'reg_covar'.*PoissonMixture"),
    ({"rates_init": np.ones((2, 3))}, ValueError, r"\['rates_init'\] fix the number"),
    ({"alpha": -1.0}, ValueError, "alpha"),
    ({"n_components": [0, 1]}, ValueError, "integers >= 1"),
    ({"n_components": [1, 500]}, ValueError, "must not exceed n_samples = 120"),
])
def test_select_bad_arguments_for_a_discrete_family(kwargs, error, pattern):
    kwargs = {"family": "poisson", "n_components": [1, 2], **kwargs}
    with pytest.raises(error, match=pattern):
        fastem.select(_data("poisson"), **kwargs)


def test_select_bad_data_for_the_family_is_refused_before_any_fit():
    with pytest.raises(ValueError, match="BernoulliMixture needs binary data"):
        fastem.select(_data("poisson"), [1, 2], family="bernoulli")


def test_select_gaussian_explicit_family_is_the_default():
    X = blobs(n=200, d=2, k=2, seed=4)
    a = fastem.select(X, [1, 2], "diag", random_state=0)
    b = fastem.select(X, [1, 2], "diag", family="gaussian", random_state=0)
    assert np.array_equal(a.records["bic"], b.records["bic"])
    assert b.best_params_ == {"n_components": 2, "covariance_type": "diag"}


# ----------------------------------------------------------------------
# the command line
# ----------------------------------------------------------------------


def _run(capsys, argv):
    rc = main([str(a) for a in argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.fixture(scope="module")
def cli_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    for name in LINEAR:
        X = _data(name)
        cols = ",".join(f"f{j}" for j in range(X.shape[1]))
        np.savetxt(d / f"{name}.csv", X, delimiter=",", header=cols, comments="", fmt="%d")
    frame = _frame()
    frame.to_csv(d / "categorical.csv", index=False)
    frame.iloc[:20].to_csv(d / "categorical_head.csv", index=False)
    (d / "categorical_empty.csv").write_text("a,b\nx,y\nz,\n")
    (d / "categorical_unseen.csv").write_text("colour,size,score\npurple,big,1\n")
    np.savetxt(d / "gaussian.csv", blobs(n=100, d=2, k=2), delimiter=",", header="a,b",
               comments="")
    return d


def _cli_data(name, d):
    """What the command line reads from the family's file (as the library
    would get it)."""
    if FAMILIES[name].table:
        return read_table(str(d / f"{name}.csv")).X
    return np.loadtxt(d / f"{name}.csv", delimiter=",", skiprows=1)


@pytest.mark.parametrize("name", DISCRETE)
def test_cli_fit_predict_score_sample_select(name, cli_files, capsys, tmp_path):
    cls = _class(name)
    d = cli_files
    data = d / f"{name}.csv"
    extra = ["--n-trials", N_TRIALS] if name == "binomial" else []
    rc, out, err = _run(capsys, ["fit", data, "-k", 2, "--family", name, "--seed", 0,
                                 "-o", tmp_path / "m.fem", *extra])
    assert rc == 0, err
    X = _cli_data(name, d)
    ref = cls(2, random_state=0, **_params(name)).fit(X)
    assert out.startswith(f"{cls.__name__}: k=2, family {name}")
    assert f"BIC {ref.bic(X):.6g}" in out
    assert f"component 1: weight {ref.weights_[1]:.4f}" in out
    model = fastem.load(tmp_path / "m.fem")
    assert type(model) is cls
    np.testing.assert_array_equal(model.weights_, ref.weights_)

    rc, out, err = _run(capsys, ["fit", data, "-k", 2, "--family", name, "--seed", 0,
                                 "--json", *extra])
    s = json.loads(out)
    assert s["family"] == name and "covariance_type" not in s and "means" not in s
    key = FAMILIES[name].parameters[0].rstrip("_")
    assert len(s[key]) == (X.shape[1] if name == "categorical" else 2)
    np.testing.assert_allclose(s["bic"], ref.bic(X), rtol=1e-12)

    rc, out, err = _run(capsys, ["predict", tmp_path / "m.fem", data])
    assert rc == 0, err
    np.testing.assert_array_equal(np.array(out.split()[1:], dtype=int), ref.predict(X))
    rc, out, err = _run(capsys, ["predict", tmp_path / "m.fem", data, "--proba", "--json"])
    np.testing.assert_allclose(json.loads(out)["proba"], ref.predict_proba(X), rtol=1e-12)
    rc, out, err = _run(capsys, ["score", tmp_path / "m.fem", data, "--anomalies", 0.1,
                                 "--json"])
    assert rc == 0, err
    np.testing.assert_allclose(json.loads(out)["log_density"], ref.score_samples(X),
                               rtol=1e-12)

    rc, out, err = _run(capsys, ["sample", tmp_path / "m.fem", "-n", 5, "--seed", 1])
    if rc == 0:
        rows = [line.split(",") for line in out.splitlines()]
        assert rows[0][-1] == "component" and len(rows) == 6 and len(rows[1]) == X.shape[1] + 1
        if name != "categorical":  # counts and flags as whole numbers
            assert all(cell.lstrip("-").isdigit() for row in rows[1:] for cell in row)
    else:  # a family that cannot draw rows says so in one line
        _assert_one_line_error(rc, out, err, "cannot sample")

    rc, out, err = _run(capsys, ["select", data, "-k", "1-3", "--family", name, "--seed", 0,
                                 "--json", "-o", tmp_path / "best.fem", *extra])
    assert rc == 0, err
    s = json.loads(out)
    result = fastem.select(X, [1, 2, 3], family=name, random_state=0, **_params(name))
    assert s["family"] == name and s["best"] == result.best_params_
    assert [r["n_components"] for r in s["table"]] == [1, 2, 3]
    np.testing.assert_allclose([r["bic"] for r in s["table"]], result.records["bic"],
                               rtol=1e-12)
    assert type(fastem.load(tmp_path / "best.fem")) is cls
    rc, out, err = _run(capsys, ["select", data, "-k", "1-2", "--family", name, *extra])
    assert rc == 0 and "Best by BIC: k=" in out and f"family {name}" in out


@pytest.mark.parametrize("name", DISCRETE)
def test_cli_fit_online_uses_the_family_minibatch_class(name, cli_files, capsys, tmp_path):
    cls = _class(name, online=True)
    extra = ["--n-trials", N_TRIALS] if name == "binomial" else []
    rc, out, err = _run(capsys, ["fit", cli_files / f"{name}.csv", "-k", 2, "--family", name,
                                 "--online", "--batch-size", 40, "--max-iter", 3, "--seed", 0,
                                 "-o", tmp_path / "m.fem", *extra])
    assert rc == 0, err
    assert out.startswith(f"{cls.__name__}: k=2")
    assert type(fastem.load(tmp_path / "m.fem")) is cls


def test_cli_categorical_reads_text_columns(cli_files, capsys, tmp_path):
    _class("categorical")
    d = cli_files
    rc, out, err = _run(capsys, ["fit", d / "categorical.csv", "-k", 2, "--family",
                                 "categorical", "--seed", 0, "-o", tmp_path / "c.fem"])
    assert rc == 0, err
    assert "    colour: blue=" in out and "    score: 1=" in out
    model = fastem.load(tmp_path / "c.fem")
    assert [list(c) for c in model.categories_] == [["blue", "green", "red"], ["big", "small"],
                                                    [1, 2, 3, 4]]
    assert list(model.feature_names_in_) == ["colour", "size", "score"]
    # columns are taken by position, and picked with --columns
    rc, out, err = _run(capsys, ["predict", tmp_path / "c.fem", d / "categorical_head.csv"])
    assert rc == 0 and len(out.split()) == 21, err
    rc, out, err = _run(capsys, ["fit", d / "categorical.csv", "-k", 2, "--family",
                                 "categorical", "--columns", "size,colour", "--json"])
    assert json.loads(out)["categories"] == [["big", "small"], ["blue", "green", "red"]]
    rc, out, err = _run(capsys, ["sample", tmp_path / "c.fem", "-n", 4, "--seed", 0])
    rows = [line.split(",") for line in out.splitlines()]
    assert rows[0] == ["colour", "size", "score", "component"]
    assert all(r[0] in ("blue", "green", "red") and r[1] in ("big", "small") for r in rows[1:])


#: (command line, part of the message); {d} is the folder of files.
HOSTILE = [
    ("fit {d}/bernoulli.csv -k 2 --family weird", "argument --family: invalid choice: 'weird'"),
    ("select {d}/bernoulli.csv -k 1-2 --family Bernoulli", "invalid choice: 'Bernoulli'"),
    ("fit {d}/bernoulli.csv -k 2 --family bernoulli --n-trials 3",
     "--n-trials is for --family binomial only, not bernoulli"),
    ("fit {d}/poisson.csv -k 2 --n-trials 3", "--n-trials is for --family binomial only"),
    ("select {d}/poisson.csv -k 1-2 --family poisson --n-trials 3", "--n-trials is for"),
    ("fit {d}/binomial.csv -k 2 --family binomial --n-trials 0",
     "argument --n-trials: expected a whole number >= 1, got '0'"),
    ("fit {d}/binomial.csv -k 2 --family binomial --n-trials 4,x", "argument --n-trials"),
    ("fit {d}/binomial.csv -k 2 --family binomial --n-trials 4,4",
     "n_trials has 2 values but X has 3 columns"),
    ("fit {d}/binomial.csv -k 2 --family binomial --n-trials 1", "at most n_trials"),
    ("fit {d}/poisson.csv -k 2 --family poisson --covariance diag",
     "--covariance is for --family gaussian only"),
    ("fit {d}/poisson.csv -k 2 --family poisson --reg-covar 0.1",
     "--reg-covar is for --family gaussian only"),
    ("select {d}/poisson.csv -k 1-2 --family poisson --covariance full",
     "--covariance is for --family gaussian only"),
    ("fit {d}/poisson.csv -k 2 --family bernoulli", "BernoulliMixture needs binary data"),
    ("select {d}/poisson.csv -k 1-2 --family bernoulli", "BernoulliMixture needs binary data"),
    ("fit {d}/gaussian.csv -k 2 --family poisson", "PoissonMixture"),
    ("fit {d}/categorical.csv -k 2 --family poisson", "is not a number"),
    ("fit {d}/categorical_empty.csv -k 1 --family categorical",
     "line 3, column 2: empty cell; every cell needs a category"),
    ("fit {d}/categorical.csv -k 2 --family categorical --online --n-init 2",
     "--online runs one initialisation"),
    ("fit {d}/categorical.csv -k 2 --family categorical --columns nope", "column 'nope' not"),
    ("fit {d}/bernoulli.csv -k 500 --family bernoulli", "-k asks for 500 components"),
]


@pytest.mark.parametrize("command, message", HOSTILE, ids=[c for c, _ in HOSTILE])
def test_cli_bad_family_input_fails_in_one_line(cli_files, capsys, command, message):
    if "categorical" in command:
        _class("categorical")
    argv = [a.format(d=cli_files) for a in shlex.split(command)]
    rc, out, err = _run(capsys, argv)
    _assert_one_line_error(rc, out, err, message)


def test_cli_predict_with_a_discrete_model_checks_its_data(cli_files, capsys, tmp_path):
    d = cli_files
    fastem.BernoulliMixture(2, random_state=0).fit(_data("bernoulli")).save(tmp_path / "b.fem")
    rc, out, err = _run(capsys, ["predict", tmp_path / "b.fem", d / "poisson.csv"])
    _assert_one_line_error(rc, out, err, "has 3 columns, but the model was fitted on 4")
    rc, out, err = _run(capsys, ["score", tmp_path / "b.fem", d / "multinomial.csv"])
    _assert_one_line_error(rc, out, err, "needs binary data")
    if FAMILIES["categorical"].available:
        _model("categorical").fit(_frame()).save(tmp_path / "c.fem")
        rc, out, err = _run(capsys, ["predict", tmp_path / "c.fem",
                                     d / "categorical_unseen.csv"])
        _assert_one_line_error(rc, out, err, "'purple'")


def test_cli_fit_plot_draws_profiles_for_discrete_families(cli_files, capsys, tmp_path,
                                                          monkeypatch):
    drawn = []
    real = plot.profiles
    monkeypatch.setattr(plot, "profiles", lambda *a, **k: drawn.append(a) or real(*a, **k))
    rc, _, err = _run(capsys, ["fit", cli_files / "bernoulli.csv", "-k", 2, "--family",
                               "bernoulli", "--plot", tmp_path / "p.png", "--quiet"])
    assert rc == 0, err
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(drawn) == 1 and type(drawn[0][0]) is fastem.BernoulliMixture
    rc, _, err = _run(capsys, ["select", cli_files / "poisson.csv", "-k", "1-2", "--family",
                               "poisson", "--plot", tmp_path / "s.png", "--quiet"])
    assert rc == 0, err
    fastem.PoissonMixture(2, random_state=0).fit(_data("poisson")).save(tmp_path / "p.fem")
    rc, _, err = _run(capsys, ["score", tmp_path / "p.fem", cli_files / "poisson.csv",
                               "--anomalies", 0.05, "--plot", tmp_path / "d.png", "-o",
                               tmp_path / "d.csv"])
    assert rc == 0, err
    for png in ("s.png", "d.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------
# plots
# ----------------------------------------------------------------------


@pytest.mark.parametrize("name", DISCRETE)
def test_profiles_heatmap_components_by_features(name):
    X = _frame() if name == "categorical" and FAMILIES[name].available else _data(name)
    model = _model(name).fit(X)
    ax = plot.profiles(model)
    image = ax.images[0].get_array()
    ticks = [t.get_text() for t in ax.get_yticklabels()]
    assert ticks == [f"{k} (w={w:.2f})" for k, w in enumerate(model.weights_)]
    columns = [t.get_text() for t in ax.get_xticklabels()]
    if name == "categorical":
        assert image.shape == (2, 3 + 2 + 4)
        np.testing.assert_array_equal(image, np.hstack(model.probabilities_))
        assert columns[:4] == ["colour=blue", "colour=green", "colour=red", "size=big"]
        assert len(ax.lines) == 2  # white lines between the three features
    else:
        attr = FAMILIES[name].parameters[0]
        np.testing.assert_array_equal(image, getattr(model, attr))
        assert columns == [f"feature {j}" for j in range(X.shape[1])]
    assert len(ax.texts) == image.size  # small: every value written in its cell
    ax = plot.profiles(model, feature_names=[f"q{j}" for j in range(X.shape[1])],
                       annotate=False)
    assert not ax.texts and ax.get_xticklabels()[0].get_text().startswith("q0")


def test_profiles_uses_feature_names_and_rejects_bad_input():
    pd = pytest.importorskip("pandas")
    X = pd.DataFrame(_data("bernoulli"), columns=["a", "b", "c", "d"])
    model = fastem.BernoulliMixture(2, random_state=0).fit(X)
    ax = plot.profiles(model)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c", "d"]
    assert ax.images[0].get_clim() == (0.0, 1.0)
    with pytest.raises(ValueError, match=r"one name per feature \(4\), but has 2"):
        plot.profiles(model, feature_names=["a", "b"])
    with pytest.raises(TypeError, match="expects ax to be a matplotlib Axes"):
        plot.profiles(model, ax="nope")
    gm = fastem.GaussianMixture(2, random_state=0).fit(blobs(n=100, d=2, k=2))
    with pytest.raises(TypeError, match="For a Gaussian mixture use fastem.plot.components"):
        plot.profiles(gm)
    with pytest.raises(NotFittedError):
        plot.profiles(fastem.PoissonMixture(2))
    _, given = plt.subplots()
    assert plot.profiles(model, ax=given) is given


def test_profiles_rates_scale_to_the_largest_rate():
    model = fastem.PoissonMixture(2, random_state=0).fit(_data("poisson"))
    ax = plot.profiles(model)
    assert ax.images[0].get_clim() == (0.0, float(model.rates_.max()))


def test_other_plots_serve_discrete_models():
    X = _data("poisson", 200)
    model = fastem.PoissonMixture(2, random_state=0).fit(X)
    ax = plot.log_density(model, X, anomaly_quantile=0.05)
    assert len(ax.patches) == 50 and len(ax.lines) == 1
    with pytest.raises(ValueError, match="X has 2 features"):
        plot.log_density(model, X[:, :2])
    ax = plot.convergence(model)
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), model.lower_bounds_)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = fastem.select(X, [1, 2, 3], family="poisson", random_state=0)
    ax = plot.selection(result, criteria=("bic", "icl"))
    labels = [line.get_label() for line in ax.lines]
    assert labels[:2] == ["poisson BIC", "poisson ICL"]
    assert labels[-1].startswith("best by BIC: k=2, poisson")


# ----------------------------------------------------------------------
# random signed edits: refused, or a model that works
# ----------------------------------------------------------------------

N_RANDOM_EDITS = 120


def test_random_signed_edits_of_discrete_files_are_refused_or_work(files, tmp_path):
    from test_model_files_hostile import _random_array

    rng = np.random.default_rng(11)
    keys = sorted(k for k in files if k != "MG")
    data = {k: _frame(60) if k in ("C", "MC") else _data(
        {"B": "bernoulli", "MB": "bernoulli", "P": "poisson", "Bin": "binomial",
         "M": "multinomial"}[k], 60) for k in keys}
    refused = 0
    for _ in range(N_RANDOM_EDITS):
        key = keys[rng.integers(len(keys))]
        with np.load(files[key], allow_pickle=False) as z:
            names = sorted(n for n in z.files if n != "fastem_metadata")
        name = names[rng.integers(len(names))]
        path = _rewrite(files[key], tmp_path / "edited.fem", resign=True,
                        arrays=lambda e, name=name: e.update({name: _random_array(rng, e[name])}))
        try:
            model = load(path)
        except ValueError as exc:
            assert str(exc).startswith("Cannot load"), exc
            refused += 1
            continue
        X = data[key]
        P, logp = model.predict_proba(X), model.score_samples(X)
        assert np.isfinite(P).all() and np.allclose(P.sum(axis=1), 1.0)
        assert np.isfinite(logp).all()
        assert np.array_equal(model.predict(X), P.argmax(axis=1))
    assert 0 < refused < N_RANDOM_EDITS
