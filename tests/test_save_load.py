"""Saving and loading models (fastem/_io.py): exact round trips, continued
online EM, and clear refusals of anything that is not an intact fastem file."""

import contextlib
import io
import json
import os
import pickle
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import COVARIANCE_TYPES, blobs
from sklearn.exceptions import ConvergenceWarning, NotFittedError

import fastem
from fastem import CollapseWarning, GaussianMixture, MiniBatchGaussianMixture, _io
from fastem._collapse import Recovery
from fastem._io import FORMAT_NAME, FORMAT_VERSION, METADATA_KEY, SaveLoadMixin, load, save
from fastem._stats import GaussianStats

# k-means++ (MiniBatch's default) re-seeds at the initialisation, which is
# what we want here: the recovery state then has events to round-trip
pytestmark = [pytest.mark.filterwarnings("ignore", category=CollapseWarning),
              pytest.mark.filterwarnings("ignore", category=ConvergenceWarning)]

CLASSES = (GaussianMixture, MiniBatchGaussianMixture)
DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.fixture(scope="module")
def X():
    return blobs(n=600, d=3, k=3, seed=0)


def _model(cls, covariance_type="full", **kw):
    if cls is MiniBatchGaussianMixture:
        kw = {"batch_size": 100, "max_iter": 3, **kw}
    else:
        kw = {"max_iter": 30, **kw}
    return cls(3, covariance_type=covariance_type, **{"random_state": 0, **kw})


def _saved_attrs(model):
    """Public fitted attributes and the class's saved private state."""
    private = _io._model_classes()[type(model).__name__][1]
    return {k: v for k, v in vars(model).items()
            if (not k.startswith("_") and k.endswith("_")) or k in private}


def assert_same(a, b, where="model"):
    """Equal values of equal types, bitwise for arrays and floats."""
    assert type(a) is type(b), f"{where}: {type(a)} != {type(b)}"
    if isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        assert np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"), where
    elif isinstance(a, np.random.RandomState):
        sa, sb = a.get_state(legacy=False), b.get_state(legacy=False)
        assert np.array_equal(sa["state"]["key"], sb["state"]["key"]), where
        assert (sa["state"]["pos"], sa["has_gauss"], sa["gauss"]) == (
            sb["state"]["pos"], sb["has_gauss"], sb["gauss"]), where
    elif isinstance(a, (GaussianStats, Recovery)):
        assert_same(vars(a), vars(b), where)
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b), where
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def assert_same_model(a, b):
    assert type(a) is type(b)
    assert_same(a.get_params(deep=False), b.get_params(deep=False), "params")
    sa, sb = _saved_attrs(a), _saved_attrs(b)
    assert sorted(sa) == sorted(sb)
    for k in sa:
        assert_same(sa[k], sb[k], k)


def assert_same_predictions(a, b, X):
    assert np.array_equal(a.predict(X), b.predict(X))
    assert np.array_equal(a.predict_proba(X), b.predict_proba(X))
    assert np.array_equal(a.score_samples(X), b.score_samples(X))
    assert a.score(X) == b.score(X)


def _meta(path):
    with np.load(path, allow_pickle=False) as z:
        return json.loads(z[METADATA_KEY].tobytes())


def _rewrite(src, dst, *, meta=None, arrays=None, resign=False):
    """Copy a model file, editing its metadata and arrays in place; with
    ``resign`` the checksum is recomputed (a deliberate, consistent edit)."""
    with np.load(src, allow_pickle=False) as z:
        entries = {k: z[k] for k in z.files}
    header = json.loads(entries.pop(METADATA_KEY).tobytes())
    if meta is not None:
        meta(header)
    if arrays is not None:
        arrays(entries)
    if resign:
        header["checksum"]["hexdigest"] = _io._digest(header, entries)
    raw = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    with open(dst, "wb") as f:
        np.savez(f, **{METADATA_KEY: raw}, **entries)
    return dst


# ----------------------------------------------------------------------
# exact round trips
# ----------------------------------------------------------------------


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("cls", CLASSES)
def test_round_trip_is_exact(cls, covariance_type, X, tmp_path):
    model = _model(cls, covariance_type).fit(X)
    save(model, tmp_path / "model.fem")
    assert os.listdir(tmp_path) == ["model.fem"]  # no ".npz" added, no temporary left
    loaded = load(tmp_path / "model.fem")
    assert_same_model(model, loaded)
    assert_same_predictions(model, loaded, X)
    assert model.bic(X) == loaded.bic(X) and model.aic(X) == loaded.aic(X)
    for a, b in zip(model.sample(7), loaded.sample(7)):  # same random_state seed
        assert np.array_equal(a, b)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("cls", CLASSES)
def test_float32_round_trip_is_exact(cls, covariance_type, X, tmp_path):
    X32 = X.astype(np.float32)
    model = _model(cls, covariance_type).fit(X32)
    save(model, tmp_path / "model.fem")
    loaded = load(tmp_path / "model.fem")
    assert_same_model(model, loaded)
    assert_same_predictions(model, loaded, X32)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("start", ["partial_fit", "fit"])
def test_partial_fit_continues_exactly(start, covariance_type, X, tmp_path):
    model = _model(MiniBatchGaussianMixture, covariance_type)
    batches = [X[i:i + 60] for i in range(0, 600, 60)]
    if start == "fit":
        model.fit(X)
    else:
        for b in batches[:4]:
            model.partial_fit(b)
    save(model, tmp_path / "model.fem")
    loaded = load(tmp_path / "model.fem")
    for b in batches[4:]:
        model.partial_fit(b)
        loaded.partial_fit(b)
        np.testing.assert_allclose(loaded.means_, model.means_, rtol=0, atol=1e-12)
    assert_same_model(model, loaded)  # bitwise: statistics, counters, random state
    assert_same_predictions(model, loaded, X)


def test_partial_fit_reseeds_after_loading_as_the_original_would(tmp_path):
    """A re-seed draws from the random state: the saved generator state makes
    the loaded model pick the same rows."""
    X = blobs(n=3000, d=2, k=3, seed=1, spread=8.0)
    model = MiniBatchGaussianMixture(3, init_params="kmeans", learning_decay=0.51,
                                     learning_offset=0.0, random_state=0)
    for i in range(5):
        model.partial_fit(X[i * 200:(i + 1) * 200])
    n_events = len(model.collapse_events_)
    save(model, tmp_path / "model.fem")
    loaded = load(tmp_path / "model.fem")
    one = X[model.predict(X) == 0]  # batches from one cluster starve the others
    for t in range(40):
        b = one[(t * 50) % (len(one) - 50):][:50]
        model.partial_fit(b)
        loaded.partial_fit(b)
    assert any(e[2] == "reseed" for e in model.collapse_events_[n_events:])
    assert_same_model(model, loaded)


def test_random_state_instance_is_saved_exactly(X, tmp_path):
    model = _model(MiniBatchGaussianMixture, random_state=np.random.RandomState(5)).fit(X)
    save(model, tmp_path / "model.fem")
    loaded = load(tmp_path / "model.fem")
    assert_same_model(model, loaded)
    # one generator shared by the parameter, the fit and the recovery, as before
    assert loaded.random_state is loaded._random_state is loaded._collapse.random_state
    assert loaded.random_state is not model.random_state
    for a, b in zip(model.sample(5), loaded.sample(5)):
        assert np.array_equal(a, b)


def test_random_state_none_stays_none(X, tmp_path):
    model = _model(MiniBatchGaussianMixture, random_state=None).fit(X)
    save(model, tmp_path / "model.fem")
    loaded = load(tmp_path / "model.fem")
    assert loaded.random_state is None
    # partial_fit's generator was numpy's global one: the copy is private
    assert model._random_state is np.random.mtrand._rand
    assert loaded._random_state is not np.random.mtrand._rand
    assert_same_model(model, loaded)


def test_generator_random_state_is_refused(tmp_path):
    model = GaussianMixture(random_state=np.random.default_rng(0))
    with pytest.raises(TypeError, match=r"params\.random_state.*numpy\.random\.Generator"):
        save(model, tmp_path / "model.fem")
    assert os.listdir(tmp_path) == []


def test_array_parameters_round_trip(X, tmp_path):
    weights = np.array([0.2, 0.3, 0.5])
    means = [[0.0, 0.0, 0.0], [1.0, 2.0, 3.0], [-1.0, 4.0, 0.5]]  # a list stays a list
    precisions = np.full((3, 3), 2.0, dtype=np.float32)
    model = GaussianMixture(3, covariance_type="diag", weights_init=weights, means_init=means,
                            precisions_init=precisions, random_state=0).fit(X)
    save(model, tmp_path / "model.fem")
    loaded = load(tmp_path / "model.fem")
    assert_same_model(model, loaded)
    assert loaded.means_init == means and loaded.precisions_init.dtype == np.float32
    refit = loaded.fit(X)  # the parameters work as given
    assert_same_predictions(model, refit, X)


@pytest.mark.parametrize("cls", CLASSES)
def test_unfitted_model_saves_its_parameters(cls, X, tmp_path):
    model = _model(cls, "diag", reg_covar=1e-4)
    save(model, tmp_path / "model.fem")
    assert _meta(tmp_path / "model.fem")["fitted"] is False
    loaded = load(tmp_path / "model.fem")
    assert_same_model(model, loaded)
    assert _saved_attrs(loaded) == {}
    with pytest.raises(NotFittedError):
        loaded.predict(X)
    if cls is MiniBatchGaussianMixture:
        model.partial_fit(X[:200])
        loaded.partial_fit(X[:200])
    else:
        model.fit(X)
        loaded.fit(X)
    assert_same_model(model, loaded)


@pytest.mark.parametrize("cls", CLASSES)
def test_feature_names_round_trip(cls, X, tmp_path):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(X, columns=["a", "b", "c"])
    model = _model(cls).fit(df)
    save(model, tmp_path / "model.fem")
    loaded = load(tmp_path / "model.fem")
    assert loaded.feature_names_in_.dtype == object
    assert_same_model(model, loaded)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "fitted with feature names" warning
        assert_same_predictions(model, loaded, df)
    with pytest.raises(ValueError, match="feature names"):
        loaded.predict(df.rename(columns={"a": "z"}))


def test_paths_and_file_objects(X, tmp_path):
    model = _model(GaussianMixture).fit(X)
    save(model, str(tmp_path / "as_str.fem"))
    save(model, tmp_path / "no_extension")
    buf = io.BytesIO()
    save(model, buf)
    assert sorted(os.listdir(tmp_path)) == ["as_str.fem", "no_extension"]
    buf.seek(0)
    for source in (str(tmp_path / "as_str.fem"), tmp_path / "no_extension", buf):
        assert_same_predictions(model, load(source), X)
    with open(tmp_path / "as_str.fem", "rb") as f:
        assert_same_model(model, load(f))


def test_saving_over_a_file_replaces_it_only_when_complete(X, tmp_path):
    path = tmp_path / "model.fem"
    first = _model(GaussianMixture).fit(X)
    save(first, path)
    save(_model(GaussianMixture, "diag").fit(X), path)
    assert load(path).covariance_type == "diag"
    with pytest.raises(TypeError):
        save(GaussianMixture(random_state=np.random.default_rng(0)), path)
    assert load(path).covariance_type == "diag"
    assert os.listdir(tmp_path) == ["model.fem"]


def test_file_layout_and_metadata(X, tmp_path):
    model = _model(MiniBatchGaussianMixture).fit(X)
    save(model, tmp_path / "model.fem")
    meta = _meta(tmp_path / "model.fem")
    assert meta["format"] == FORMAT_NAME == "fastem-model"
    assert meta["format_version"] == FORMAT_VERSION == 1
    assert meta["class"] == "MiniBatchGaussianMixture" and meta["fitted"] is True
    assert meta["fastem_version"] == fastem.__version__
    assert meta["numpy_version"] == np.__version__
    assert meta["checksum"]["algorithm"] == "sha256"
    assert re.fullmatch(r"[0-9a-f]{64}", meta["checksum"]["hexdigest"])
    assert meta["params"]["n_components"] == 3 and meta["params"]["random_state"] == 0
    with np.load(tmp_path / "model.fem", allow_pickle=False) as z:
        assert "state.means_" in z.files and "state._running.S2" in z.files
        assert all(z[k].dtype != object for k in z.files)
        assert np.array_equal(z["state.means_"], model.means_)


def test_long_float_lists_are_stored_as_arrays(X, tmp_path):
    model = _model(GaussianMixture).fit(X)
    history = np.random.default_rng(0).normal(size=10_000).tolist() + [np.nan, -np.inf]
    model.lower_bounds_ = history
    model.history_ = [1.5, 2.5]  # a short list stays JSON (an attribute of the user's)
    save(model, tmp_path / "model.fem")
    meta = _meta(tmp_path / "model.fem")
    assert meta["state"]["lower_bounds_"] == {"__floats__": {"__array__": "state.lower_bounds_"}}
    assert meta["state"]["history_"] == [1.5, 2.5]
    loaded = load(tmp_path / "model.fem")
    assert_same_model(model, loaded)
    assert all(type(v) is float for v in loaded.lower_bounds_)


def test_mixin_save(X, tmp_path):
    model = _model(MiniBatchGaussianMixture).fit(X)
    SaveLoadMixin.save(model, tmp_path / "model.fem")
    assert_same_model(model, load(tmp_path / "model.fem"))


def test_public_api_is_wired(X, tmp_path):
    if not (hasattr(fastem, "load") and issubclass(GaussianMixture, SaveLoadMixin)):
        pytest.skip("model.save and fastem.load are not wired into the estimators yet")
    assert fastem.load is load
    for cls in CLASSES:
        assert issubclass(cls, SaveLoadMixin)
        model = _model(cls).fit(X)
        model.save(tmp_path / "model.fem")
        assert_same_model(model, fastem.load(tmp_path / "model.fem"))


def test_docs_page_examples_run(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", (DOCS / "saving.md").read_text(),
                        flags=re.DOTALL)
    assert blocks, "docs/saving.md has no python example"
    # the page uses the public API; provide it if it is not wired in yet
    monkeypatch.setattr(fastem, "load", load, raising=False)
    for cls in CLASSES:
        if "save" not in dir(cls):
            monkeypatch.setattr(cls, "save", SaveLoadMixin.save, raising=False)
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__docs__"}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for code in blocks:
            exec(compile(code, "docs/saving.md", "exec"), namespace)  # noqa: S102
    assert out.getvalue() == "True\nTrue 20\n"  # as the page's comments say


# ----------------------------------------------------------------------
# pickle and joblib
# ----------------------------------------------------------------------


@pytest.mark.parametrize("cls", CLASSES)
def test_pickle_round_trip(cls, X):
    model = _model(cls).fit(X)
    loaded = pickle.loads(pickle.dumps(model))
    assert_same_model(model, loaded)
    assert_same_predictions(model, loaded, X)
    if cls is MiniBatchGaussianMixture:
        model.partial_fit(X[:100])
        loaded.partial_fit(X[:100])
        assert_same_model(model, loaded)


@pytest.mark.parametrize("cls", CLASSES)
def test_joblib_round_trip(cls, X, tmp_path):
    joblib = pytest.importorskip("joblib")
    model = _model(cls).fit(X)
    joblib.dump(model, tmp_path / "model.joblib")
    loaded = joblib.load(tmp_path / "model.joblib")
    assert_same_model(model, loaded)
    assert_same_predictions(model, loaded, X)


# ----------------------------------------------------------------------
# refusals
# ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved(X, tmp_path_factory):
    """A fitted MiniBatchGaussianMixture's file and the model."""
    model = _model(MiniBatchGaussianMixture).fit(X)
    path = tmp_path_factory.mktemp("saved") / "model.fem"
    save(model, path)
    return path, model


@pytest.mark.parametrize("keep", [0.5, 0.99, 100])
def test_truncated_file_is_refused(saved, tmp_path, keep):
    raw = saved[0].read_bytes()
    n = int(len(raw) * keep) if keep < 1 else keep
    (tmp_path / "cut.fem").write_bytes(raw[:n])
    with pytest.raises(ValueError, match=r"truncated or corrupted\. Save the model again"):
        load(tmp_path / "cut.fem")


def test_flipped_byte_is_refused(saved, tmp_path):
    path, model = saved
    raw = bytearray(path.read_bytes())
    at = raw.find(model.means_.tobytes())  # np.savez stores arrays uncompressed
    assert at > 0
    raw[at + 3] ^= 0x01
    (tmp_path / "flipped.fem").write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="truncated or corrupted"):  # the zip CRC
        load(tmp_path / "flipped.fem")


def _bump(entries):
    entries["state.means_"] = entries["state.means_"].copy()
    entries["state.means_"][0, 0] = np.nextafter(entries["state.means_"][0, 0], np.inf)


@pytest.mark.parametrize("edit", [
    {"arrays": _bump},
    {"arrays": lambda e: e.update(extra=np.zeros(3))},
    {"arrays": lambda e: e.pop("state._shift")},
    {"meta": lambda m: m["params"].update(reg_covar=0.5)},
    {"meta": lambda m: m["state"].update(n_steps_=1)},
    {"meta": lambda m: m.update(**{"class": "GaussianMixture"})},
], ids=["array-value", "extra-array", "missing-array", "param", "state", "class"])
def test_modified_file_is_refused(saved, tmp_path, edit):
    path = _rewrite(saved[0], tmp_path / "edited.fem", **edit)
    with pytest.raises(ValueError, match=r"checksum does not match.*modified or corrupted"):
        load(path)


def test_newer_format_version_is_refused(saved, tmp_path):
    path = _rewrite(saved[0], tmp_path / "v2.fem",
                    meta=lambda m: m.update(format_version=2, fastem_version="9.0"))
    with pytest.raises(ValueError, match=r"format version 2 \(by fastem 9\.0\).*reads format "
                                         r"versions up to 1\. Upgrade fastem"):
        load(path)


@pytest.mark.parametrize("version", [0, "1", 1.0, True, None])
def test_invalid_format_version_is_refused(saved, tmp_path, version):
    path = _rewrite(saved[0], tmp_path / "bad.fem",
                    meta=lambda m: m.update(format_version=version), resign=True)
    with pytest.raises(ValueError, match="expected an integer format version"):
        load(path)


def _not_fastem_files(tmp_path, model):
    text = tmp_path / "text.fem"
    text.write_text("weights: 0.5 0.5\n")
    pkl = tmp_path / "model.pkl"
    pkl.write_bytes(pickle.dumps(model))
    npy = tmp_path / "arr.npy"
    np.save(npy, np.zeros(3))
    npz = tmp_path / "plain.npz"
    np.savez(npz, means=model.means_)
    empty = tmp_path / "empty.fem"
    empty.write_bytes(b"")
    wrong = _rewrite(_saved_file(tmp_path, model), tmp_path / "wrong.fem",
                     meta=lambda m: m.update(format="other-format"))
    return {
        text: r"starts with b'weights:' instead of the zip signature",
        pkl: r"it is a Python pickle\. fastem\.load never unpickles",
        npy: r"single \.npy array .*numpy\.load",
        npz: r"not a fastem model: it has no 'fastem_metadata' entry \(its entries: means\)",
        empty: "the file is empty",
        wrong: r"expected the format 'fastem-model' .* found 'other-format'",
    }


def _saved_file(tmp_path, model):
    save(model, tmp_path / "source.fem")
    return tmp_path / "source.fem"


def test_files_that_are_not_fastem_models_are_refused(saved, tmp_path):
    for path, message in _not_fastem_files(tmp_path, saved[1]).items():
        with pytest.raises(ValueError, match=message):
            load(path)
        with pytest.raises(ValueError, match="Cannot load"), open(path, "rb") as f:
            load(f)


def test_bad_metadata_entry_is_refused(saved, tmp_path):
    with np.load(saved[0], allow_pickle=False) as z:
        entries = {k: z[k] for k in z.files}
    entries[METADATA_KEY] = entries[METADATA_KEY][:-5]  # cut JSON
    np.savez(tmp_path / "bad.npz", **entries)
    with pytest.raises(ValueError, match="should be UTF-8 JSON in a uint8 array"):
        load(tmp_path / "bad.npz")


@pytest.mark.parametrize("name", ["Pipeline", "os.system", "GaussianStats", ""])
def test_class_outside_the_allow_list_is_refused(saved, tmp_path, name):
    path = _rewrite(saved[0], tmp_path / "foreign.fem",
                    meta=lambda m: m.update(**{"class": name}), resign=True)
    with pytest.raises(ValueError, match=r"fastem loads only its own classes "
                                         r"\(GaussianMixture, MiniBatchGaussianMixture, "
                                         r"BayesianGaussianMixture, "
                                         r"MiniBatchBayesianGaussianMixture, BernoulliMixture, "):
        load(path)


@pytest.mark.parametrize("edit, message", [
    (lambda m: m["params"].update(new_option=1),
     r"parameters \['new_option'\] that MiniBatchGaussianMixture .* does not have"),
    (lambda m: m["state"].update(_secret=1), "the state attribute '_secret'"),
    (lambda m: m["state"].update(means_={"__pickle__": "x"}), "unknown marker '__pickle__'"),
    (lambda m: m["state"].update(means_={"__array__": "nowhere"}), "missing array 'nowhere'"),
    (lambda m: m["state"]["_collapse"]["__object__"].__setitem__(0, "Popen"),
     r"the class 'Popen', which is not one of \['GaussianStats', 'Recovery'\]"),
    (lambda m: m["state"]["_collapse"]["__object__"][1].update(__class__=1),
     "the attribute name '__class__'"),
    (lambda m: m["state"].update(n_iter_={"__scalar__": ["|O", 1]}), "the dtype object"),
    (lambda m: m["state"].update(n_iter_={"__random_state__": 7}), "missing random state 7"),
], ids=["param", "private", "marker", "array", "object", "dunder", "dtype", "rng"])
def test_undecodable_content_is_refused(saved, tmp_path, edit, message):
    path = _rewrite(saved[0], tmp_path / "odd.fem", meta=edit, resign=True)
    with pytest.raises(ValueError, match=message):
        load(path)


class _Tripwire:
    """Unpickling it would set ``fired``."""

    fired = False

    def __reduce__(self):
        return (_Tripwire._fire, ())

    @staticmethod
    def _fire():
        _Tripwire.fired = True
        return _Tripwire()


def test_loading_never_unpickles(saved, tmp_path):
    path = _rewrite(saved[0], tmp_path / "evil.fem", arrays=lambda e: e.update(
        **{"state.means_": np.array([_Tripwire()], dtype=object)}), resign=False)
    with pytest.raises(ValueError, match="pickled Python objects.*never unpickles"):
        load(path)
    assert not _Tripwire.fired


@pytest.mark.parametrize("model", [
    type("MyMixture", (GaussianMixture,), {})(),
    object(),
], ids=["subclass", "object"])
def test_saving_other_classes_is_refused(model, tmp_path):
    with pytest.raises(TypeError, match=r"save expects a model of one of fastem's classes "
                                        r"\(GaussianMixture, MiniBatchGaussianMixture, "
                                        r"BayesianGaussianMixture, "
                                        r"MiniBatchBayesianGaussianMixture, BernoulliMixture, "):
        save(model, tmp_path / "model.fem")


def test_unsupported_attribute_value_is_refused(X, tmp_path):
    model = _model(GaussianMixture).fit(X)
    model.labels_ = [object()]
    with pytest.raises(TypeError, match=r"Cannot save state\.labels_\.0: it is a "
                                        r"builtins\.object.*use pickle or joblib"):
        save(model, tmp_path / "model.fem")
