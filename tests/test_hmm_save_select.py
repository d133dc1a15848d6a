"""Hidden Markov models saved and loaded (fastem/_io.py, fastem/_model_check.py,
fastem/_registry.py) and selected (fastem.select(model="hmm"))."""

import io
import warnings
from collections import deque

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from test_save_load import _rewrite, assert_same

import fastem
from fastem import CategoricalHMM, GaussianHMM, PoissonHMM, _registry
from fastem._baum_welch import ConvergenceMonitor
from fastem._io import load, save
from fastem.select import select

pytestmark = pytest.mark.filterwarnings("ignore", category=ConvergenceWarning)

COVARIANCE_TYPES = ("spherical", "diag", "full", "tied")
LENGTHS = [60, 40, 50]


@pytest.fixture(scope="module")
def truth():
    """A 3-state Gaussian HMM on 2 features, set by hand."""
    h = GaussianHMM(3, covariance_type="diag")
    h.startprob_ = np.array([0.6, 0.3, 0.1])
    h.transmat_ = np.array([[0.9, 0.05, 0.05], [0.05, 0.9, 0.05], [0.05, 0.05, 0.9]])
    h.means_ = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]])
    h.covars_ = np.full((3, 2), 0.5)
    return h


@pytest.fixture(scope="module")
def sequences(truth):
    """Four sequences of 100 frames drawn from ``truth``."""
    X = np.concatenate([truth.sample(100, random_state=s)[0] for s in range(4)])
    return X, [100] * 4


@pytest.fixture(scope="module")
def X(sequences):
    return sequences[0][:sum(LENGTHS)]


@pytest.fixture(scope="module")
def symbols():
    rs = np.random.RandomState(1)
    return np.concatenate([rs.randint(0, 3, (75, 1)), rs.randint(2, 5, (75, 1))])


@pytest.fixture(scope="module")
def counts():
    rs = np.random.RandomState(2)
    return np.concatenate([rs.poisson([1.0, 5.0], (75, 2)), rs.poisson([6.0, 0.5], (75, 2))])


def _gaussian(ct, X, **kw):
    return GaussianHMM(3, covariance_type=ct, random_state=0, n_iter=8, **kw).fit(X, LENGTHS)


def _fitted(kind, X, symbols, counts):
    """(model, data) for a model id."""
    if kind in COVARIANCE_TYPES:
        return _gaussian(kind, X), X
    if kind == "categorical":
        return CategoricalHMM(2, random_state=0, n_iter=8).fit(symbols, LENGTHS), symbols
    return PoissonHMM(2, random_state=0, n_iter=8).fit(counts, LENGTHS), counts


def _round_trip(model):
    f = io.BytesIO()
    save(model, f)
    f.seek(0)
    return load(f)


def assert_same_hmm(a, b):
    """Same class, parameters and every attribute (monitor_ included), bitwise."""
    assert type(a) is type(b)
    assert_same(a.get_params(deep=False), b.get_params(deep=False), "params")
    va, vb = vars(a), vars(b)
    assert sorted(va) == sorted(vb)
    for k, v in va.items():
        if k == "monitor_":
            assert type(vb[k]) is ConvergenceMonitor
            assert sorted(vars(v)) == sorted(vars(vb[k]))
            assert type(vb[k].history) is deque
            assert_same(list(v.history), list(vb[k].history), "monitor_.history")
            for attr in ("tol", "n_iter", "verbose", "iter", "converged"):
                assert_same(getattr(v, attr), getattr(vb[k], attr), f"monitor_.{attr}")
        else:
            assert_same(v, vb[k], k)


KINDS = COVARIANCE_TYPES + ("categorical", "poisson")


# ----------------------------------------------------------------------
# save and load
# ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_round_trip_is_exact(kind, X, symbols, counts, tmp_path):
    model, data = _fitted(kind, X, symbols, counts)
    assert len(model.monitor_.history) == model.monitor_.iter > 0
    model.save(tmp_path / "hmm.fem")
    loaded = fastem.load(tmp_path / "hmm.fem")
    assert_same_hmm(model, loaded)
    assert loaded.score(data, LENGTHS) == model.score(data, LENGTHS)
    assert np.array_equal(loaded.predict_proba(data, LENGTHS), model.predict_proba(data, LENGTHS))
    la, sa = model.decode(data, LENGTHS)
    lb, sb = loaded.decode(data, LENGTHS)
    assert la == lb and np.array_equal(sa, sb)
    assert np.array_equal(loaded.predict(data, LENGTHS), model.predict(data, LENGTHS))
    if kind == "full":
        assert np.array_equal(loaded.covars_, model.covars_)


def test_monitor_history_and_restarts_round_trip(X):
    # a long history (stored as one array), n_init restarts, a RandomState
    model = GaussianHMM(2, random_state=np.random.RandomState(3), n_iter=40, tol=-np.inf,
                        n_init=2).fit(X, LENGTHS)
    assert model.monitor_.iter == 40 and model.monitor_.converged
    loaded = _round_trip(model)
    assert_same_hmm(model, loaded)
    # the loaded model fits on exactly as the saved one would
    assert_same_hmm(model.fit(X, LENGTHS), loaded.fit(X, LENGTHS))


def test_loaded_model_refits_and_samples_as_the_saved_one(X):
    model = _gaussian("tied", X)
    loaded = _round_trip(model)
    a, sa = model.sample(20, random_state=5)
    b, sb = loaded.sample(20, random_state=5)
    assert np.array_equal(a, b) and np.array_equal(sa, sb)


def test_hand_set_model_saves(truth, sequences):
    loaded = _round_trip(truth)
    assert_same_hmm(truth, loaded)
    X, lengths = sequences
    assert loaded.score(X, lengths) == truth.score(X, lengths)
    # set by hand and saved before any call (n_features not set yet)
    for model, data in [(GaussianHMM(3, covariance_type="full"), X),
                        (CategoricalHMM(2), np.array([[0], [2], [1]])),
                        (PoissonHMM(2), np.array([[0, 3], [2, 1]]))]:
        model.startprob_ = np.array([1.0] + [0.0] * (model.n_components - 1))
        model.transmat_ = np.full((model.n_components,) * 2, 1 / model.n_components)
        if isinstance(model, GaussianHMM):
            model.means_, model.covars_ = truth.means_, truth.covars_
        elif isinstance(model, CategoricalHMM):
            model.emissionprob_ = np.array([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8]])
        else:
            model.lambdas_ = np.array([[1.0, 2.0], [3.0, 0.5]])
        loaded = _round_trip(model)
        assert_same_hmm(model, loaded)
        assert loaded.score(data) == model.score(data)


@pytest.mark.parametrize("cls", [GaussianHMM, CategoricalHMM, PoissonHMM])
def test_unfitted_model_is_refused(cls, tmp_path):
    with pytest.raises(NotFittedError, match=rf"Cannot save the {cls.__name__}: it is not "
                                             r"fitted .* Fit it first"):
        cls(2).save(tmp_path / "hmm.fem")
    assert not (tmp_path / "hmm.fem").exists()


def test_partly_set_model_is_refused(truth):
    model = GaussianHMM(3)
    model.startprob_ = truth.startprob_
    with pytest.raises(ValueError, match=r"only partly fitted: transmat_, means_, _covars_ "
                                         r"missing while startprob_, monitor_ are present"):
        _round_trip(model)


@pytest.mark.parametrize("edit, message", [
    (lambda m: m.transmat_.__setitem__((1, 0), m.transmat_[1, 0] + 0.25),
     r"transmat_ should hold non-negative probabilities summing to 1, .* row 1 sums to 1.25"),
    (lambda m: setattr(m, "startprob_", np.array([0.5, 0.6, -0.1])),
     r"startprob_ should hold non-negative probabilities"),
    (lambda m: setattr(m, "means_", m.means_[:, :1]),
     r"means_ should be a float array of shape \(3, 2\) \(n_components=3, n_features=2, "),
    (lambda m: setattr(m, "_covars_", -m._covars_), "positive definite"),
    (lambda m: setattr(m, "n_features", 3), r"means_ should be a float array of shape \(3, 3\)"),
    (lambda m: m.set_params(covariance_type="diag"),
     r"_covars_, covars_ in compact form\) should be a float array of shape \(3, 2\)"),
    (lambda m: setattr(m.monitor_, "history", [1.0]), "monitor_.history should be a deque"),
    (lambda m: setattr(m.monitor_, "iter", -1), "monitor_.iter should count the iterations"),
    (lambda m: m.set_params(n_iter=-1), "its parameters are invalid: n_iter"),
    (lambda m: delattr(m, "monitor_"), "only partly fitted: monitor_ missing"),
    (lambda m: setattr(m, "monitor_", None), "monitor_ should be a ConvergenceMonitor"),
], ids=["transmat", "startprob", "means-shape", "covars-pd", "n_features", "set_params",
        "history", "iter", "param", "no-monitor", "monitor-none"])
def test_inconsistent_state_is_not_saved(edit, message, X):
    model = _gaussian("full", X)
    edit(model)
    with pytest.raises(ValueError, match=message):
        save(model, io.BytesIO())


def _tampered(model, tmp_path, meta=None, arrays=None):
    save(model, tmp_path / "good.fem")
    return _rewrite(tmp_path / "good.fem", tmp_path / "bad.fem", meta=meta, arrays=arrays,
                    resign=True)


def _set_row(entries):
    t = entries["state.transmat_"].copy()
    t[0] = [0.5, 0.25, 0.2]
    entries["state.transmat_"] = t


@pytest.mark.parametrize("arrays, message", [
    (_set_row, (r"transmat_ should hold non-negative probabilities summing to 1, but .* "
               r"row 0 sums to 0.95")),
    (lambda e: e.update(**{"state.means_": e["state.means_"][:2]}),
     (r"means_ should be a float array of shape \(3, 2\) \(n_components=3, n_features=2, "
     r"covariance_type='full'\), but it is an array of shape \(2, 2\)")),
    (lambda e: e["state._covars_"].__setitem__(1, [[1.0, 2.0], [2.0, 1.0]]),
     (r"the covariance of state 1 \(_covars_\) should be positive definite, but its smallest "
     r"eigenvalue is -1")),
    (lambda e: e.update(**{"state.startprob_": np.array([np.nan, 0.5, 0.5])}),
     "startprob_ should hold finite numbers"),
], ids=["transmat-row", "means-shape", "covars-not-pd", "nan"])
def test_tampered_arrays_are_refused(arrays, message, X, tmp_path):
    path = _tampered(_gaussian("full", X), tmp_path, arrays=arrays)
    with pytest.raises(ValueError, match=rf"Cannot load .*bad.fem': (every row of )?{message}.*The file was "
                                         "edited or corrupted"):
        load(path)


def test_tampered_emission_probabilities_are_refused(symbols, counts, tmp_path):
    model = CategoricalHMM(2, random_state=0, n_iter=3).fit(symbols)

    def halve(e):
        e["state.emissionprob_"] = e["state.emissionprob_"] / 2

    with pytest.raises(ValueError, match="every row of emissionprob_ should hold non-negative "
                                         "probabilities summing to 1"):
        load(_tampered(model, tmp_path, arrays=halve))
    with pytest.raises(ValueError, match=r"emissionprob_ should be a float array of shape "
                                         r"\(2, 9\)"):
        load(_tampered(model, tmp_path,
                       meta=lambda m: m["params"].update(n_features=9)))
    poisson = PoissonHMM(2, random_state=0, n_iter=3).fit(counts)
    with pytest.raises(ValueError, match="lambdas_ should hold non-negative rates"):
        load(_tampered(poisson, tmp_path, arrays=lambda e: e.update(
            **{"state.lambdas_": -e["state.lambdas_"]})))


@pytest.mark.parametrize("name", ["ConvergenceMonitor", "Pipeline", "_BaseHMM",
                                  "GaussianHMMX", "os.system"])
def test_class_outside_the_allow_list_is_refused(name, X, tmp_path):
    path = _tampered(_gaussian("diag", X), tmp_path, meta=lambda m: m.update(**{"class": name}))
    with pytest.raises(ValueError, match=r"fastem loads only its own classes \(GaussianMixture, "
                                         r".*GaussianHMM, CategoricalHMM, PoissonHMM\)"):
        load(path)


@pytest.mark.parametrize("edit, message", [
    (lambda m: m["state"]["monitor_"]["__object__"].__setitem__(0, "GaussianStats"),
     r"the class 'GaussianStats', which is not one of \['ConvergenceMonitor'\]"),
    (lambda m: m.update(**{"class": "GaussianMixture"}),
     r"parameters \[.*'covars_prior'.*\] that GaussianMixture .* does not have"),
    (lambda m: m["state"].update(covars_=m["state"]["_covars_"]),
     "'covars_' in its state, but covars_ is a property"),
    (lambda m: m["state"].update(_secret=1), "the state attribute '_secret'"),
    (lambda m: m["state"]["monitor_"]["__object__"][1].update(extra=1),
     r"monitor_ should be a ConvergenceMonitor with the attributes"),
    (lambda m: m["state"]["monitor_"]["__object__"][1]["history"].update(
        __deque__=[["x"], None]), "monitor_.history should be a deque of log-likelihoods"),
    (lambda m: m["state"]["monitor_"]["__object__"][1]["history"].update(
        __deque__=[[], -1]), "a malformed deque"),
], ids=["helper", "mixture", "property", "private", "monitor-attrs", "history", "maxlen"])
def test_tampered_metadata_is_refused(edit, message, X, tmp_path):
    path = _tampered(_gaussian("diag", X), tmp_path, meta=edit)
    with pytest.raises(ValueError, match=message):
        load(path)


def test_registry_keeps_hmms_out_of_the_mixture_families():
    names = [spec.rpartition(":")[2] for f in _registry.FAMILIES.values()
             for spec in (f.batch, f.online) if spec]
    assert not any(n.endswith("HMM") for n in names)
    assert "GaussianHMM" not in str(_registry.family_names())
    assert _registry.family_of(GaussianHMM) is None
    assert _registry.family_named("GaussianHMM") is None
    classes = _registry.model_classes()
    assert classes["GaussianHMM"] == (GaussianHMM, ("_covars_", "n_features"))
    assert classes["CategoricalHMM"] == (CategoricalHMM, ())
    assert classes["PoissonHMM"] == (PoissonHMM, ("n_features",))
    assert _registry.state_classes("PoissonHMM") == {"ConvergenceMonitor": ConvergenceMonitor}
    assert "ConvergenceMonitor" not in _registry.state_classes("GaussianMixture")
    assert _registry.hmm_of(PoissonHMM()) is _registry.HMMS["poisson"]
    assert _registry.hmm_names() == ["gaussian", "categorical", "poisson"]


def test_cli_family_choices_have_no_hmm():
    from fastem.cli import build_parser

    parser = build_parser()
    text = parser.format_help() + "".join(
        a.format_help() for a in parser._subparsers._group_actions[0].choices.values())
    assert "hmm" not in text.lower()


# ----------------------------------------------------------------------
# select(model="hmm")
# ----------------------------------------------------------------------


@pytest.mark.parametrize("criterion", ["bic", "icl"])
def test_select_finds_the_number_of_states(criterion, sequences):
    X, lengths = sequences
    result = select(X, range(1, 6), "diag", model="hmm", lengths=lengths, criterion=criterion,
                    n_init=3, n_iter=30, random_state=0)
    assert result.best_params_ == {"n_components": 3, "covariance_type": "diag"}
    assert type(result.best_estimator_) is GaussianHMM
    assert result.best_estimator_.n_components == 3
    assert result.model == "hmm" and result.family == "gaussian"
    assert "hidden Markov model" in repr(result)
    icl, bic = result.records["icl"], result.records["bic"]
    assert (icl >= bic - 1e-9).all()


def test_select_rows_equal_standalone_fits(sequences):
    X, lengths = sequences
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        result = select(X, [1, 2, 3], ["full", "spherical"], model="hmm", lengths=lengths,
                        n_iter=5, tol=1e-3, random_state=7)
    assert [(int(r["n_components"]), str(r["covariance_type"])) for r in result.records] == [
        (1, "full"), (1, "spherical"), (2, "full"), (2, "spherical"), (3, "full"),
        (3, "spherical")]
    for r in result.records:
        k, ct = int(r["n_components"]), str(r["covariance_type"])
        m = GaussianHMM(k, covariance_type=ct, n_iter=5, tol=1e-3, random_state=7).fit(
            X, lengths)
        assert r["bic"] == m.bic(X, lengths)
        assert r["aic"] == m.aic(X, lengths)
        assert r["log_likelihood"] == m.score(X, lengths)
        post = m.predict_proba(X, lengths)
        assert np.isclose(r["icl"], m.bic(X, lengths) - 2 * np.log(post.max(axis=1)).sum(),
                          rtol=1e-12)
        assert r["n_parameters"] == m._n_parameters()
        assert r["n_iter"] == m.monitor_.iter
        assert r["error"] == ""
    best = result.best_estimator_
    again = GaussianHMM(**result.best_params_, n_iter=5, tol=1e-3, random_state=7).fit(
        X, lengths)
    assert np.array_equal(best.means_, again.means_)


def test_select_random_state_instance_draws_one_seed_per_fit(sequences):
    X, lengths = sequences
    a = select(X, [1, 2], "diag", model="hmm", lengths=lengths, n_iter=3,
               random_state=np.random.RandomState(0))
    b = select(X, [1, 2], "diag", model="hmm", lengths=lengths, n_iter=3,
               random_state=np.random.RandomState(0))
    assert np.array_equal(a.records["bic"], b.records["bic"])


@pytest.mark.parametrize("family", ["categorical", "poisson"])
def test_select_other_emissions(family, symbols, counts):
    X = symbols if family == "categorical" else counts
    cls = CategoricalHMM if family == "categorical" else PoissonHMM
    calls = []
    result = select(X, range(1, 4), family=family, model="hmm", lengths=[75, 75], n_iter=10,
                    random_state=0, progress=lambda *a: calls.append(a))
    assert type(result.best_estimator_) is cls
    assert result.covariance_types == [] and list(result.best_params_) == ["n_components"]
    assert list(result.records["covariance_type"]) == ["", "", ""]
    assert calls == [(i + 1, 3, i + 1, family) for i in range(3)]
    for r in result.records:
        m = cls(int(r["n_components"]), n_iter=10, random_state=0).fit(X, [75, 75])
        assert r["bic"] == m.bic(X, [75, 75])
    result.best_estimator_.save(io.BytesIO())  # a selected model saves


def test_select_mixture_default_is_unchanged(X):
    a = select(X, [1, 2], "diag", random_state=0)
    b = select(X, [1, 2], "diag", model="mixture", random_state=0)
    assert type(a.best_estimator_) is fastem.GaussianMixture
    assert a.model == "mixture"
    assert np.array_equal(a.records["bic"], b.records["bic"])


@pytest.mark.parametrize("kwargs, error, message", [
    ({"model": "markov"}, ValueError, (r"Unknown model 'markov'. Expected one of "
                                      r"\['mixture', 'hmm'\]")),
    ({"model": None}, ValueError, "Unknown model None"),
    ({"lengths": [150]}, ValueError, ("lengths gives the sequences of a hidden Markov model, "
                                     "but model='mixture'")),
    ({"model": "hmm", "family": "bernoulli"}, ValueError,
     (r"emissions are one of \['gaussian', 'categorical', 'poisson'\] \(family=...\), but got "
     r"family='bernoulli'")),
    ({"model": "hmm", "family": "nope"}, ValueError, r"one of \['gaussian', 'categorical'"),
    ({"model": "hmm", "lengths": [100, 100]}, ValueError, "lengths sum to 200, but X has 150"),
    ({"model": "hmm", "lengths": [150, 0]}, ValueError, "lengths should be positive"),
    ({"model": "hmm", "covariance_types": ["diag", "VVV"]}, ValueError,
     "Unknown covariance type 'VVV'"),
    ({"model": "hmm", "family": "poisson", "covariance_types": "diag"}, ValueError,
     "covariance_types is for Gaussian emissions only"),
    ({"model": "hmm", "n_components": [0, 2]}, ValueError, "integers >= 1"),
    ({"model": "hmm", "max_iter": 5}, TypeError,
     (r"unexpected keyword argument\(s\) \['max_iter'\]. With model='hmm', extra keyword "
     r"arguments are passed to fastem.GaussianHMM; expected any of .*'n_iter'")),
    ({"model": "hmm", "n_iter": -1}, ValueError, "n_iter should be a non-negative integer"),
    ({"model": "hmm", "sample_weight": np.ones(150)}, ValueError,
     "sample_weight is not supported with model='hmm'"),
    ({"model": "hmm", "criterion": "hqic"}, ValueError, "Unknown criterion 'hqic'"),
], ids=["model", "model-none", "lengths-mixture", "family", "family-unknown", "lengths-sum",
        "lengths-zero", "covariance", "covariance-poisson", "k", "param", "param-value",
        "weights", "criterion"])
def test_select_bad_arguments(kwargs, error, message, X):
    kwargs = {"n_components": [1, 2], **kwargs}
    data = np.abs(X).astype(int) if kwargs.get("family") == "poisson" else X
    with pytest.raises(error, match=message):
        select(data, **kwargs)


def test_select_hmm_failed_fits_are_rows():
    # the symbols of the data are beyond n_features=2: every fit fails
    with pytest.raises(ValueError, match=r"All 2 fits failed.*Largest symbol"):
        select(np.arange(6).reshape(-1, 1) % 3, [1, 2], family="categorical", model="hmm",
               n_features=2)


# ----------------------------------------------------------------------
# random signed edits: refused, or a model that works
# ----------------------------------------------------------------------

_JUNK = [10**30, -(10**400), -1, 0, 1, 2, 2.5, 1e308, "x", "full", None, [], {}, [1, [2]],
         True, [[0.5, 0.5], [0.5, 0.5]], {"__float__": "nan"}, {"__float__": "-inf"}]


def _random_array(rng, like):
    how = rng.integers(3)
    shape = like.shape
    if how == 0:
        shape = tuple(int(s) for s in rng.integers(0, 5, size=rng.integers(0, 4)))
    values = np.abs(rng.normal(scale=float(rng.choice([0.1, 1.0, 100.0])), size=shape))
    if how == 2 and values.size:
        values.flat[rng.integers(values.size)] = rng.choice([np.nan, np.inf, -1.0, 0.0])
    dtype = like.dtype if how else rng.choice(["f8", "f4", "i8", "c16", "?", "f2"])
    return values.astype(dtype)


def _works_or_refuses(model, data):
    """A loaded model scores, decodes and gives posteriors, or says why not
    with a ValueError (e.g. a sequence impossible under edited transitions)."""
    for method in ("score", "predict_proba", "decode"):
        try:
            out = getattr(model, method)(data, LENGTHS)
        except ValueError:
            continue
        if method == "predict_proba":
            assert np.allclose(out.sum(axis=1), 1)


def test_random_signed_edits_are_refused_or_work(X, symbols, counts, tmp_path):
    rng = np.random.default_rng(11)
    files = {}
    for kind in KINDS:
        model, data = _fitted(kind, X, symbols, counts)
        save(model, tmp_path / f"{kind}.fem")
        files[kind] = (tmp_path / f"{kind}.fem", data)
    refused = 0
    n = 240
    for trial in range(n):
        kind = KINDS[trial % len(KINDS)]
        src, data = files[kind]
        if trial % 2:
            with np.load(src, allow_pickle=False) as z:
                names = sorted(k for k in z.files if k.startswith("state."))
            name = names[rng.integers(len(names))]
            edit = {"arrays": lambda e, name=name: e.update({name: _random_array(rng, e[name])})}
        else:
            value = _JUNK[rng.integers(len(_JUNK))]

            def meta(m, value=value):
                spots = [m["params"]] + [m["state"]["monitor_"]["__object__"][1]]
                spot = spots[rng.integers(2)]
                spot[sorted(spot)[rng.integers(len(spot))]] = value

            edit = {"meta": meta}
        path = _rewrite(src, tmp_path / "edited.fem", resign=True, **edit)
        try:
            loaded = load(path)
        except ValueError:
            refused += 1
            continue
        _works_or_refuses(loaded, data)
    assert n // 2 < refused < n
