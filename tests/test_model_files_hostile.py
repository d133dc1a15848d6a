"""Model files from an untrusted source (fastem/_io.py, fastem/_model_check.py).

A checksum is no defence against a deliberate edit (the editor recomputes
it), so every test here either damages a file at random or edits it and signs
it again, and asks the same thing: ``load`` raises a ValueError, or returns
a model that is exactly the saved one (random damage) or whose predictions
agree with each other and with the reference maths (deliberate edits).
Nothing may crash, raise another exception type, or take memory or time out
of proportion to the file.  ``save`` is checked for what it refuses to
replace.
"""

import io
import json
import os
import socket
import stat
import struct
import subprocess
import sys
import textwrap
import tracemalloc
import warnings
import zipfile
import zlib

import numpy as np
import pytest
import reference
from conftest import blobs
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.exceptions import ConvergenceWarning
from test_save_load import _rewrite, assert_same_model

from fastem import CollapseWarning, GaussianMixture, MiniBatchGaussianMixture, _io
from fastem._io import METADATA_KEY, load, save

pytestmark = [pytest.mark.filterwarnings("ignore", category=CollapseWarning),
              pytest.mark.filterwarnings("ignore", category=ConvergenceWarning)]

#: Random single-byte changes tried anywhere in a file, and in its zip headers.
N_FLIPS = 300
N_HEADER_FLIPS = 300
#: Random re-signed replacements of one array of a file.
N_RANDOM_EDITS = 150
#: What refusing a hostile archive may cost, however large it claims to be:
#: memory is the sharp test (inflating a bomb takes 1 GiB); the time bound
#: only catches a refusal that scans far more than the file.
SMALL_BYTES = 32 << 20


@pytest.fixture(scope="module")
def X():
    return blobs(n=400, d=3, k=3, seed=3)


@pytest.fixture(scope="module")
def files(X, tmp_path_factory):
    """A saved model per (class, covariance type), three components on three
    features (so that 'tied' and 'diag' arrays have the same shape), and the
    model itself."""
    folder = tmp_path_factory.mktemp("hostile")
    out = {}
    for cls in (GaussianMixture, MiniBatchGaussianMixture):
        for ct in ("full", "tied", "diag", "spherical"):
            kw = {"batch_size": 100, "max_iter": 2} if cls is MiniBatchGaussianMixture else {
                "max_iter": 20}
            model = cls(3, covariance_type=ct, random_state=0, **kw).fit(X)
            path = folder / f"{cls.__name__}-{ct}.fem"
            save(model, path)
            out["GM" if cls is GaussianMixture else "Mi", ct] = (path, model)
    return out


def _load_or_refuse(path):
    """The loaded model, or None if load refused the file with a ValueError
    (any other exception fails the test)."""
    try:
        return load(path)
    except ValueError as exc:
        assert str(exc).startswith("Cannot load"), exc
        return None


def _agrees_with_reference(model, X):
    """predict, predict_proba and score_samples are finite and agree with
    each other and with the reference E-step on the model's own arrays."""
    labels, resp, logp = model.predict(X), model.predict_proba(X), model.score_samples(X)
    assert np.isfinite(resp).all() and np.isfinite(logp).all()
    ref_logp, ref_resp = reference.estep(X, model.weights_, model.means_, model.covariances_,
                                         model.covariance_type)
    np.testing.assert_allclose(logp, ref_logp, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(resp, ref_resp, rtol=0, atol=1e-6)
    np.testing.assert_allclose(resp.sum(axis=1), 1.0, rtol=0, atol=1e-9)
    assert np.array_equal(labels, resp.argmax(axis=1))


# ----------------------------------------------------------------------
# (a) random damage: refused, or exactly the saved model
# ----------------------------------------------------------------------


def _zip_header_spans(raw):
    """Byte ranges of the zip structure (local headers, central directory,
    end record): where a change is not caught by the entries' CRCs."""
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        spans = [range(i.header_offset, i.header_offset + 30 + len(i.filename) + 20)
                 for i in z.infolist()]
    return spans + [range(raw.find(b"PK\x01\x02"), len(raw))]


@pytest.mark.parametrize("where", ["anywhere", "zip headers"])
def test_random_byte_changes_are_refused_or_harmless(files, tmp_path, where):
    path, model = files["Mi", "full"]
    raw = path.read_bytes()
    positions = (np.arange(len(raw)) if where == "anywhere"
                 else np.concatenate([np.array(s) for s in _zip_header_spans(raw)]))
    rng = np.random.default_rng(0 if where == "anywhere" else 1)
    refused = 0
    n = N_FLIPS if where == "anywhere" else N_HEADER_FLIPS
    for trial in range(n):
        damaged = bytearray(raw)
        at = int(rng.choice(positions))
        # half single-bit flips, half arbitrary bytes
        damaged[at] = (damaged[at] ^ (1 << int(rng.integers(8))) if trial % 2
                       else int(rng.integers(256)))
        (tmp_path / "damaged.fem").write_bytes(bytes(damaged))
        loaded = _load_or_refuse(tmp_path / "damaged.fem")
        if loaded is None:
            refused += 1
        else:
            assert_same_model(model, loaded)
    assert refused > n // 2  # most changes are caught (CRCs, checksum, structure)


# ----------------------------------------------------------------------
# (b) deliberate edits, signed again
# ----------------------------------------------------------------------


def _arr(name, f):
    """An edit of the array entry ``name`` by ``f`` (a copy)."""
    return {"arrays": lambda e: e.update({name: f(e[name].copy())})}


def _state(f):
    return {"meta": lambda m: f(m["state"])}


def _obj(attr, f):
    """An edit of the attributes of the saved state object ``attr``."""
    return _state(lambda s: f(s[attr]["__object__"][1]))


def _param(**kw):
    return {"meta": lambda m: m["params"].update(kw)}


def _drop(*attrs):
    def edit(state):
        for a in attrs:
            state.pop(a)
    return _state(edit)


def _set_row(a, i, v):
    a[i] = v
    return a


def _neg_row(U):
    U[0, 0] = -U[0, 0]  # U U^T unchanged: precisions_ still agree
    return U


def _lower(U):
    U[0, 2, 0] = 0.5
    return U


_M, _W, _U = "state.means_", "state.weights_", "state.precisions_cholesky_"
_P, _C = "state.precisions_", "state.covariances_"

#: (model, edit, what the message must say)
EDITS = {
    # shapes against n_components, n_features_in_, covariance_type
    "means-extra-row": ("GM-full", _arr(_M, lambda a: np.vstack([a, a[:1]])),
                        r"means_ should be a float array of shape \(3, 3\).*\(4, 3\)"),
    "means-row-missing": ("GM-full", _arr(_M, lambda a: a[:2]), r"means_ .*\(2, 3\)"),
    "means-column-extra": ("GM-diag", _arr(_M, lambda a: np.hstack([a, a[:, :1]])),
                           r"means_ .*shape \(3, 3\).*\(3, 4\)"),
    "covariances-tied-shape-in-full": ("GM-full", _arr(_C, lambda a: a[0]),
                                       r"covariances_ should be a float array of shape \(3, 3, 3\)"),
    "precisions-shape": ("GM-spherical", _arr(_P, lambda a: a[:, None]), r"precisions_ .*\(3, 1\)"),
    "factor-shape": ("GM-tied", _arr(_U, lambda a: a[None]), r"precisions_cholesky_ .*\(1, 3, 3\)"),
    "n_features_in_-4": ("GM-full", _state(lambda s: s.update(n_features_in_=4)),
                         r"means_ .*shape \(3, 4\)"),
    "n_features_in_-0": ("GM-full", _state(lambda s: s.update(n_features_in_=0)),
                         r"n_features_in_ should be an int >= 1"),
    "n_features_in_-str": ("GM-full", _state(lambda s: s.update(n_features_in_="3")),
                           r"n_features_in_ should be an int"),
    "covariance_type-full-to-diag": ("GM-full", _param(covariance_type="diag"),
                                     r"precisions_cholesky_ .* shape \(3, 3\) "),
    "covariance_type-diag-to-tied": ("GM-diag", _param(covariance_type="tied"),
                                     "should be upper triangular"),
    "covariance_type-tied-to-diag": ("GM-tied", _param(covariance_type="diag"),
                                     "diagonal of precisions_cholesky_ should be positive"),
    "n_components-4": ("GM-full", _param(n_components=4), r"weights_ .*shape \(4,\)"),
    "n_components-2": ("Mi-diag", _param(n_components=2), r"weights_ .*shape \(2,\)"),
    "feature_names-length": ("GM-full", _state(lambda s: s.update(
        feature_names_in_={"__strings__": [[2], ["a", "b"]]})),
        r"feature_names_in_ should be an array of 3 str"),
    "feature_names-not-str": ("GM-full", _state(lambda s: s.update(
        feature_names_in_={"__tuple__": [1, 2, 3]})), "feature_names_in_"),
    # dtypes
    "means-complex": ("GM-full", _arr(_M, lambda a: a.astype(complex)), "dtype complex128"),
    "weights-int": ("GM-full", _arr(_W, lambda a: np.array([1, 0, 0])), "dtype int64"),
    "factor-bool": ("GM-diag", _arr(_U, lambda a: a > 0), "dtype bool"),
    "means-float16": ("GM-full", _arr(_M, lambda a: a.astype(np.float16)), "dtype float16"),
    "means-unicode": ("GM-full", _arr(_M, lambda a: a.astype(str)), "dtype <U"),
    # values
    "weights-nan": ("GM-full", _arr(_W, lambda a: _set_row(a, 0, np.nan)), "finite numbers"),
    "weights-inf": ("Mi-full", _arr(_W, lambda a: _set_row(a, 1, np.inf)), "finite numbers"),
    "weights-negative": ("GM-full", _arr(_W, lambda a: np.array([-0.2, 0.6, 0.6])),
                         "non-negative and sum to 1"),
    "weights-sum": ("GM-full", _arr(_W, lambda a: a / 2), "sum to 1"),
    "means-nan": ("GM-spherical", _arr(_M, lambda a: _set_row(a, 2, np.nan)), "finite numbers"),
    "factor-negative-diagonal-full": ("GM-full", _arr(_U, _neg_row),
                                      "diagonal of precisions_cholesky_ should be positive"),
    "factor-negative-diag": ("GM-diag", _arr(_U, lambda a: -a), "should be positive"),
    "factor-negative-spherical": ("Mi-spherical", _arr(_U, lambda a: -a), "should be positive"),
    "factor-zero-diagonal-tied": ("GM-tied", _arr(_U, lambda a: _set_row(a, 1, 0 * a[1])),
                                  "should be positive"),
    "factor-not-triangular": ("GM-full", _arr(_U, _lower), "upper triangular"),
    "factor-inf": ("GM-full", _arr(_U, lambda a: a * np.inf), "finite numbers"),
    "precisions-disagree": ("GM-full", _arr(_P, lambda a: 2 * a), "precisions_ should be"),
    "precisions-disagree-diag": ("GM-diag", _arr(_P, lambda a: a + 1e-3), "precisions_ should"),
    "covariances-disagree": ("GM-tied", _arr(_C, lambda a: 2 * a), "covariances_ should be"),
    "covariances-disagree-spherical": ("Mi-spherical", _arr(_C, lambda a: -a),
                                       "covariances_ should be"),
    # fitted or not, nothing in between
    "means-missing": ("GM-full", {**_drop("means_"),
                                  "arrays": lambda e: e.pop(_M)}, "only partly fitted"),
    "n_iter-missing": ("GM-full", _drop("n_iter_"), "n_iter_ missing"),
    "running-missing": ("Mi-full", {**_drop("_running"), "arrays": lambda e: [
        e.pop(k) for k in list(e) if k.startswith("state._running")]}, "_running missing"),
    "only-an-unknown-attribute": ("GM-unfitted", _state(lambda s: s.update(extra_=1)),
                                  "only partly fitted"),
    # fitted scalars
    "converged-int": ("GM-full", _state(lambda s: s.update(converged_=1)),
                      "converged_ should be a bool"),
    "n_iter-negative": ("GM-full", _state(lambda s: s.update(n_iter_=-1)),
                        "n_iter_ should be an int >= 0"),
    "n_em_maps-float": ("GM-full", _state(lambda s: s.update(n_em_maps_=1.5)), "n_em_maps_"),
    "lower_bound-str": ("GM-full", _state(lambda s: s.update(lower_bound_="high")),
                        "lower_bound_ should be a float"),
    "lower_bound-nan": ("GM-full", _state(lambda s: s.update(lower_bound_={"__float__": "nan"})),
                        r"lower_bound_ should be a float \(not NaN\)"),
    "lower_bounds-str": ("GM-full", _state(lambda s: s.update(lower_bounds_="x")),
                         "lower_bounds_ should be a list of float"),
    "event-component": ("GM-full", _state(lambda s: s.update(collapse_events_=[
        {"__tuple__": [1, 7, "reseed"]}])), r"component in \[0, 3\)"),
    "event-action": ("GM-full", _state(lambda s: s.update(collapse_events_=[
        {"__tuple__": [1, 0, "explode"]}])), "collapse_events_ should hold"),
    "event-tied-none-in-full": ("GM-full", _state(lambda s: s.update(collapse_events_=[
        {"__tuple__": [1, None, "ridge"]}])), "collapse_events_ should hold"),
    "n_reseeds-count": ("GM-full", _state(lambda s: s.update(n_reseeds_=5)),
                        "n_reseeds_ should count"),
    # parameters: the estimator's own validation, and the *_init arrays
    "n_components-0": ("GM-unfitted", _param(n_components=0), "parameters are invalid"),
    "covariance_type-unknown": ("GM-full", _param(covariance_type="weird"),
                                "'covariance_type' parameter"),
    "tol-negative": ("Mi-diag", _param(tol=-1.0), "'tol' parameter"),
    "learning_decay-2": ("Mi-diag", _param(learning_decay=2.0), "'learning_decay' parameter"),
    "random_state-str": ("GM-full", _param(random_state="x"), "'random_state' parameter"),
    "means_init-shape": ("GM-full", _param(means_init=[[0.0, 0.0]]), "'means_init' should have"),
    "means_init-strings": ("GM-unfitted", _param(means_init=[["a", "b"]]),
                           "means_init should be an array of real numbers"),
    "means_init-ragged": ("GM-unfitted", _param(means_init=[[0.0], [1.0, 2.0]]),
                          "means_init should be an array"),
    "weights_init-nan": ("GM-unfitted", _param(weights_init=[{"__float__": "nan"}, 0.5, 0.5]),
                         "'weights_init' should be in the range"),
    "precisions_init-not-pd": ("GM-unfitted", _param(
        covariance_type="tied", precisions_init=[[1.0, 2.0], [2.0, 1.0]]),
        "positive-definite"),
    "inits-disagree": ("GM-unfitted", _param(means_init=[[0.0] * 2] * 3, covariance_type="diag",
                                             precisions_init=[[1.0] * 4] * 3),
                       r"'precisions_init' should have the shape \(3, 2\)"),
    # MiniBatchGaussianMixture's running statistics and recovery state
    "running-S1-extra-row": ("Mi-diag", _arr("state._running.S1", lambda a: np.vstack([a, a])),
                             r"_running\.S1 should be a float array of shape \(3, 3\)"),
    "running-S2-full-shape-in-diag": ("Mi-diag", _arr("state._running.S2", lambda a: np.stack(
        [np.diag(r) for r in a])), r"_running\.S2 .*\(3, 3\)"),
    "running-S2-nan": ("Mi-tied", _arr("state._running.S2", lambda a: a * np.nan),
                       "finite numbers"),
    "running-S0-negative": ("Mi-full", _arr("state._running.S0", lambda a: -a),
                            "non-negative counts S0"),
    "running-type": ("Mi-diag", _obj("_running", lambda o: o.update(covariance_type="full")),
                     "covariance type 'diag' around _shift"),
    "running-shift": ("Mi-diag", _arr("state._running.shift", lambda a: a + 1),
                      "around _shift"),
    "running-attribute-missing": ("Mi-full", _obj("_running", lambda o: o.pop("weight")),
                                  "_running should be a GaussianStats with the attributes"),
    "running-weight-str": ("Mi-full", _obj("_running", lambda o: o.update(weight="1")),
                           "weight"),
    "running-not-stats": ("Mi-full", _state(lambda s: s.update(_running=[1, 2])),
                          "_running should be a GaussianStats"),
    "shift-shape": ("Mi-full", _arr("state._shift", lambda a: a[:, :2]), r"_shift .*\(3, 2\)"),
    "collapse-K": ("Mi-diag", _obj("_collapse", lambda o: o.update(K=4)),
                   "_collapse should be the recovery of n_components=3"),
    "collapse-type": ("Mi-diag", _obj("_collapse", lambda o: o.update(ct="full")),
                      "_collapse should be the recovery"),
    "collapse-event": ("Mi-full", _obj("_collapse", lambda o: o.update(
        events=[{"__tuple__": [1, -1, "reseed"]}])), r"_collapse\.events should hold"),
    "collapse-ridges": ("Mi-full", _obj("_collapse", lambda o: o.update(
        ridges={"__dict__": [[7, 1.0]]})), r"_collapse\.ridges should map"),
    "collapse-budget": ("Mi-full", _obj("_collapse", lambda o: o.update(budget=-1)),
                        r"_collapse\.budget should be an int >= 0"),
    "collapse-reg_covar": ("Mi-full", _obj("_collapse", lambda o: o.update(
        reg_covar={"__float__": "nan"})), "finite reg_covar"),
    "collapse-dtype": ("Mi-full", _obj("_collapse", lambda o: o.update(
        dtype={"__dtype__": "<i8"})), "a float dtype"),
    "n_steps-negative": ("Mi-full", _state(lambda s: s.update(n_steps_=-1)), "n_steps_"),
    "n_samples_seen-float": ("Mi-full", _state(lambda s: s.update(n_samples_seen_=1.5)),
                             "n_samples_seen_"),
    "collapse_warned-str": ("Mi-full", _state(lambda s: s.update(_collapse_warned="yes")),
                            "_collapse_warned should be a bool"),
    "private-random-state-int": ("Mi-full", _state(lambda s: s.update(_random_state=5)),
                                 "_random_state should be a numpy.random.RandomState"),
    # the decoder itself
    "scalar-of-a-huge-dtype": ("GM-full", _state(lambda s: s.update(
        n_iter_={"__scalar__": ["<U99999999", 1]})), "a scalar of dtype <U99999999"),
    "strings-of-a-huge-shape": ("GM-full", _state(lambda s: s.update(
        feature_names_in_={"__strings__": [[10**12], ["a"]]})), "malformed string array"),
}


@pytest.fixture(scope="module")
def unfitted_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("unfitted") / "model.fem"
    save(GaussianMixture(3), path)
    return path


@pytest.mark.parametrize("case", list(EDITS))
def test_signed_edits_are_refused(files, unfitted_file, tmp_path, case):
    which, edit, message = EDITS[case]
    kind, _, ct = which.partition("-")
    src = unfitted_file if ct == "unfitted" else files[kind, ct][0]
    path = _rewrite(src, tmp_path / "edited.fem", resign=True, **edit)
    with pytest.raises(ValueError, match=message) as info:
        load(path)
    assert str(info.value).startswith("Cannot load")


def _random_array(rng, like):
    """A random replacement for ``like``: another shape or dtype, or new
    values of its shape (some negative, NaN or infinite)."""
    how = rng.integers(3)
    shape = like.shape
    if how == 0:
        shape = tuple(int(s) for s in rng.integers(0, 5, size=rng.integers(0, 4)))
    values = rng.normal(scale=float(rng.choice([0.1, 1.0, 100.0])), size=shape)
    if how == 2 and values.size:
        values.flat[rng.integers(values.size)] = rng.choice([np.nan, np.inf, -1.0, 0.0])
    dtype = like.dtype if how else rng.choice(["f8", "f4", "i8", "c16", "?", "f2"])
    return values.astype(dtype)


def test_random_signed_edits_are_refused_or_consistent(files, X, tmp_path):
    rng = np.random.default_rng(7)
    keys = sorted(files)
    refused = 0
    for _ in range(N_RANDOM_EDITS):
        src = files[keys[rng.integers(len(keys))]][0]
        with np.load(src, allow_pickle=False) as z:
            names = sorted(k for k in z.files if k != METADATA_KEY)
        name = names[rng.integers(len(names))]
        path = _rewrite(src, tmp_path / "edited.fem", resign=True,
                        arrays=lambda e, name=name: e.update({name: _random_array(rng, e[name])}))
        loaded = _load_or_refuse(path)
        if loaded is None:
            refused += 1
        else:  # an edit the checks let through gives a consistent model
            _agrees_with_reference(loaded, X[:100])
    assert 0 < refused < N_RANDOM_EDITS  # some edits (new means) make valid models


def test_kernel_refuses_inconsistent_arrays_without_crashing():
    """The E-step checks the shapes it indexes by, whatever the model holds:
    a means_ row too many crashed the process (segmentation fault) before."""
    code = textwrap.dedent("""
        import warnings
        import numpy as np
        from fastem import GaussianMixture
        warnings.simplefilter("ignore")
        X = np.random.default_rng(0).normal(size=(300, 2))
        edits = {
            "means_": lambda m: np.vstack([m.means_, m.means_ + 100.0]),
            "precisions_cholesky_": lambda m: m.precisions_cholesky_[..., :1],
            "weights_": lambda m: m.weights_[:2],
        }
        for attr, edit in edits.items():
            for ct in ("full", "tied", "diag", "spherical"):
                gm = GaussianMixture(3, covariance_type=ct, max_iter=5, random_state=0).fit(X)
                setattr(gm, attr, edit(gm))
                for method in (gm.predict, gm.predict_proba, gm.score_samples, gm.score):
                    try:
                        method(X)
                    except ValueError:
                        print("refused")
                    else:
                        print("ran", attr, ct, method.__name__)
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.split()
    assert lines == ["refused"] * 48, done.stdout


# ----------------------------------------------------------------------
# (c) hostile archives: refused at once, in bounded time and memory
# ----------------------------------------------------------------------


def _bounded_refusal(path, message):
    """load(path) raises a ValueError matching ``message`` within SMALL_BYTES
    of Python-tracked memory (nothing was inflated or allocated to the sizes
    the file declares; no timing is asserted, the machine is shared)."""
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=message):
            load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < SMALL_BYTES, peak


def _central_records(raw):
    """Offsets of the central directory's file headers."""
    eocd = raw.rfind(b"PK\x05\x06")
    count, _, offset = struct.unpack_from("<HII", raw, eocd + 10)
    out, pos = [], offset
    for _ in range(count):
        out.append(pos)
        lengths = struct.unpack_from("<HHH", raw, pos + 28)
        pos += 46 + sum(lengths)
    return out


def _patch(raw, field, fmt, value, record=0):
    """``raw`` with ``field`` (its offset in a central file header) of the
    given record set to ``value``."""
    out = bytearray(raw)
    at = _central_records(raw)[record] + field
    struct.pack_into(fmt, out, at, value)
    return bytes(out)


_METHOD, _FLAGS, _CSIZE, _USIZE, _OFFSET = 10, 8, 20, 24, 42
#: (central header field, format, new value) -> what the refusal says
TAMPERING = {
    "method-99": (_METHOD, "<H", 99, "compression method 99"),
    "method-bzip2": (_METHOD, "<H", 12, "compression method 12"),
    "method-lzma": (_METHOD, "<H", 14, "compression method 14"),
    "method-deflate-on-stored-data": (_METHOD, "<H", 8, "truncated or corrupted"),
    "encrypted": (_FLAGS, "<H", 1, "marked as encrypted"),
    "uncompressed-size-4GiB": (_USIZE, "<I", 2**32 - 2, "declares 4294967294 bytes"),
    "uncompressed-size-0": (_USIZE, "<I", 0, "truncated or corrupted"),
    "uncompressed-size-smaller": (_USIZE, "<I", 100, "truncated or corrupted"),
    "compressed-size-beyond-file": (_CSIZE, "<I", 2**31, "truncated or corrupted"),
    "compressed-size-0": (_CSIZE, "<I", 0, "truncated or corrupted"),
    "local-header-offset-beyond-file": (_OFFSET, "<I", 2**31, "truncated or corrupted"),
    "local-header-offset-of-another-entry": (_OFFSET, "<I", 0, "truncated or corrupted"),
}


@pytest.mark.parametrize("record", [0, -1], ids=["first-entry", "last-entry"])
@pytest.mark.parametrize("case", list(TAMPERING))
def test_tampered_central_directory_is_refused(files, tmp_path, case, record):
    field, fmt, value, message = TAMPERING[case]
    raw = files["GM", "diag"][0].read_bytes()
    if case == "local-header-offset-of-another-entry" and record == 0:
        value = _central_records(raw)[-1] - raw.find(b"PK\x01\x02") + 1  # into the middle
    (tmp_path / "tampered.fem").write_bytes(_patch(raw, field, fmt, value, record))
    _bounded_refusal(tmp_path / "tampered.fem", message)


def _npy_header(shape, dtype="<f8"):
    head = {"descr": dtype, "fortran_order": False, "shape": shape}
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, head)
    return out.getvalue()


def _zip(entries):
    """A zip archive of (name, data as stored, method, declared size) entries,
    written by hand so that it can declare anything (a deflated entry's CRC
    is left 0: it is refused before it is read)."""
    body, central = b"", b""
    for name, data, method, size in entries:
        name = name.encode()
        crc = zlib.crc32(data) if method == 0 else 0
        fields = struct.pack("<HHHHHIIIHH", 20, 0, method, 0, 0, crc, len(data), size,
                             len(name), 0)
        central += (b"PK\x01\x02" + struct.pack("<H", 20) + fields
                    + struct.pack("<HHHII", 0, 0, 0, 0, len(body)) + name)
        body += b"PK\x03\x04" + fields + name + data
    end = struct.pack("<HHHHIIH", 0, 0, len(entries), len(entries), len(central), len(body), 0)
    return body + central + b"PK\x05\x06" + end


def _deflated_zeros(prefix, n_mib):
    """A raw deflate stream of ``prefix`` then ``n_mib`` MiB of zero bytes,
    made without compressing them all: after a full flush deflate restarts,
    so one compressed MiB of zeros can be repeated."""
    start = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = start.compress(prefix) + start.flush(zlib.Z_FULL_FLUSH)
    one = zlib.compressobj(9, zlib.DEFLATED, -15)
    mib = one.compress(bytes(1 << 20)) + one.flush(zlib.Z_FULL_FLUSH)
    return head + mib * n_mib + zlib.compressobj(9, zlib.DEFLATED, -15).flush()


def test_zip_bomb_is_refused_before_inflating(tmp_path):
    gib = 1 << 30
    header = _npy_header((gib // 8,))
    data = _deflated_zeros(header, 1024)
    assert zlib.decompressobj(-15).decompress(data[:200_000], 1 << 24)  # it does inflate
    path = tmp_path / "bomb.fem"
    path.write_bytes(_zip([("state.means_.npy", data, 8, len(header) + gib)]))
    assert path.stat().st_size < 2 << 20  # about 1 MiB on disk, 1 GiB inflated
    _bounded_refusal(path, r"declares 1073741952 bytes from \d+ bytes")


def test_zip_bomb_that_understates_its_size_is_cut_off(tmp_path):
    """An entry that inflates beyond its declared size yields no more than
    declared: the excess is never produced."""
    header = _npy_header((100,))
    data = _deflated_zeros(header, 256)
    path = tmp_path / "bomb.fem"
    path.write_bytes(_zip([("state.means_.npy", data, 8, len(header) + 800)]))
    _bounded_refusal(path, "truncated or corrupted")


@pytest.mark.parametrize("shape, dtype, message", [
    ((2**40,), "<f8", r"declares an array of shape \(1099511627776,\)"),
    ((2**31, 2**31, 2**31), "<f8", "declares an array of shape"),
    ((0, 2**62), "<f8", "declares an array"),
    ((3,), "<U99999999", "declares an array of shape"),
    ((3,), "|V8", "dtype"),
    ((3,), "<f8,<f8", "dtype"),
    ((3,), "|O", "pickled Python objects"),
])
def test_npy_header_is_checked_against_the_entry_size(tmp_path, shape, dtype, message):
    header = _npy_header(shape, dtype)
    data = header + bytes(24)
    path = tmp_path / "huge.fem"
    path.write_bytes(_zip([("state.means_.npy", data, 0, len(data))]))
    _bounded_refusal(path, message)


@pytest.mark.parametrize("text", [
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    b"[" * 1_000_000,
    b'{"format": "fastem-model", "params": ' + b"[" * 70 + b"]" * 70 + b"}",
], ids=["lists", "objects", "unclosed", "valid-but-too-deep"])
def test_deeply_nested_metadata_is_refused(tmp_path, text):
    path = tmp_path / "deep.fem"
    np.savez(path, **{METADATA_KEY: np.frombuffer(text, dtype=np.uint8)})
    os.replace(str(path) + ".npz", path)
    _bounded_refusal(path, "nested .* deep, deeper than the 64 levels")


def _depth(value):
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    return 0


_TEXT = st.text(alphabet='[]{}"\\ ax\u00e9', max_size=12)
_JSON = st.recursive(st.none() | st.integers() | _TEXT,
                     lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(_TEXT, inner, max_size=3), max_leaves=30)


@settings(max_examples=300, deadline=None)
@given(value=_JSON, chunk=st.integers(1, 64), ascii_only=st.booleans())
def test_json_depth_matches_the_parse(value, chunk, ascii_only):
    """Brackets, quotes and backslashes inside strings never count, across
    chunk boundaries too."""
    text = json.dumps(value, ensure_ascii=ascii_only).encode()
    assert _io._json_depth(text, chunk=chunk) == _depth(value)


def test_brackets_in_feature_names_load(X, tmp_path):
    pd = pytest.importorskip("pandas")
    names = ["[" * 80, '\\"{' * 40, "]" * 3 + '"']
    model = GaussianMixture(2, random_state=0).fit(pd.DataFrame(X, columns=names))
    save(model, tmp_path / "model.fem")
    assert_same_model(model, load(tmp_path / "model.fem"))


def test_unseekable_file_object_is_refused(files):
    read_end, write_end = os.pipe()
    with open(read_end, "rb") as r, open(write_end, "wb") as w:
        w.write(files["GM", "full"][0].read_bytes()[:1000])
        w.close()
        with pytest.raises(ValueError, match="cannot seek.*io.BytesIO"):
            load(r)


# ----------------------------------------------------------------------
# (d) save replaces regular files only
# ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_model(X):
    return GaussianMixture(2, covariance_type="diag", random_state=0).fit(X)


def _refuses(model, target, kind, tmp_path):
    before = os.stat(target)
    with pytest.raises(ValueError, match=f"Cannot save to .*: it is {kind}, and fastem.save "
                                         "writes regular files only"):
        save(model, target)
    after = os.stat(target)
    assert (after.st_mode, after.st_ino, after.st_rdev) == (
        before.st_mode, before.st_ino, before.st_rdev)
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_save_refuses_a_fifo(small_model, tmp_path):
    os.mkfifo(tmp_path / "fifo")
    _refuses(small_model, tmp_path / "fifo", r"a FIFO \(named pipe\)", tmp_path)


def test_save_refuses_a_directory(small_model, tmp_path):
    (tmp_path / "models").mkdir()
    _refuses(small_model, tmp_path / "models", "a directory", tmp_path)
    assert os.listdir(tmp_path / "models") == []


def test_save_refuses_a_socket(small_model, tmp_path):
    path = str(tmp_path / "sock")
    if len(path) > 100:
        pytest.skip("the temporary path is too long for a unix socket")
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(path)
        _refuses(small_model, path, "a socket", tmp_path)


def test_save_refuses_a_device(small_model, tmp_path):
    """A device node: a copy of /dev/null's made in tmp_path where mknod is
    allowed (root), else /dev/null itself when it is writable."""
    target = tmp_path / "null"
    try:
        os.mknod(target, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    except (OSError, AttributeError):
        if not os.access("/dev/null", os.W_OK) or os.geteuid() != 0:
            pytest.skip("no device node this user could replace")
        target = "/dev/null"
    _refuses(small_model, target, "a character device", tmp_path)
    assert stat.S_ISCHR(os.stat(target).st_mode)


def test_save_follows_a_link_only_to_test_it(small_model, X, tmp_path):
    """A link to a FIFO is refused; a link to a regular file is replaced by
    the new file, and the file it pointed to is left as it was."""
    os.mkfifo(tmp_path / "fifo")
    os.symlink(tmp_path / "fifo", tmp_path / "to-fifo")
    _refuses(small_model, tmp_path / "to-fifo", r"a FIFO \(named pipe\)", tmp_path)
    (tmp_path / "target").write_bytes(b"keep")
    os.symlink(tmp_path / "target", tmp_path / "to-file")
    save(small_model, tmp_path / "to-file")
    assert not os.path.islink(tmp_path / "to-file")
    assert (tmp_path / "target").read_bytes() == b"keep"
    assert_same_model(small_model, load(tmp_path / "to-file"))


@pytest.mark.parametrize("change, message", [
    (lambda m: m.set_params(n_components=5), r"weights_ should be a float array of shape \(5,\)"),
    (lambda m: m.set_params(covariance_type="spherical"), "precisions_cholesky_ should be"),
    (lambda m: setattr(m, "means_", m.means_[:1]), r"means_ .*\(1, 3\)"),
    (lambda m: delattr(m, "weights_"), "it is only partly fitted"),
], ids=["n_components", "covariance_type", "means", "missing"])
def test_save_refuses_an_inconsistent_model(X, tmp_path, change, message):
    model = GaussianMixture(2, covariance_type="diag", random_state=0).fit(X)
    change(model)
    with pytest.raises(ValueError, match=f"Cannot save the GaussianMixture: {message}"):
        save(model, tmp_path / "model.fem")
    assert os.listdir(tmp_path) == []


def test_round_trips_still_exact_after_the_checks(files, X):
    """Every saved model passes its own checks and loads unchanged."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for path, model in files.values():
            assert_same_model(model, load(path))
