"""A sweep of bad inputs to every public entry point: each either works or
raises a TypeError/ValueError of fastem's or scikit-learn's own -- never
a Numba typing error, an IndexError, an AttributeError or a crash."""

import warnings

import numpy as np
import pytest

from fastem import GaussianMixture, MiniBatchGaussianMixture
from fastem.select import select

GOOD = np.random.default_rng(0).normal(size=(50, 2))


def _bad_arrays():
    out = {
        "ragged list": [[1, 2], [3]], "strings": np.array([["a", "b"], ["c", "d"], ["e", "f"]]),
        "None": None, "dict": {"a": 1}, "generator": (r for r in GOOD),
        "3-d": np.zeros((5, 2, 2)), "no rows": np.zeros((0, 2)), "no columns": np.zeros((5, 0)),
        "object with None": np.array([[1, None], [2, 3], [4, 5]], dtype=object),
        "bytes": b"abc", "scalar": 3.0, "bool": np.ones((10, 2), bool),
        "int8 extremes": np.array([[127, -128]] * 5, np.int8), "float16": GOOD.astype(np.float16),
        "complex": GOOD.astype(complex), "numeric strings with a word": [["1", "2"], ["3", "x"]],
        "all NaN": np.full((5, 2), np.nan), "all inf": np.full((5, 2), np.inf),
        "one row": GOOD[:1], "uint64 max": np.array([[2**64 - 1, 0]] * 5, np.uint64),
        "longdouble": GOOD.astype(np.longdouble), "set": {1, 2},
        "structured": np.zeros(5, dtype=[("a", float), ("b", float)]),
        "void": np.zeros((5, 2), dtype="V8"), "datetime": np.zeros((5, 2), "datetime64[s]"),
        "matrix": np.asmatrix(GOOD), "huge": GOOD * 1e200,
    }
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is a test extra
        return out
    out["categorical frame"] = pd.DataFrame({"a": pd.Categorical(["x", "y"] * 5), "b": range(10)})
    out["nullable frame"] = pd.DataFrame({"a": pd.array([1, None] * 5, dtype="Int64"),
                                          "b": range(10)})
    out["text frame"] = pd.DataFrame({"a": ["1"] * 10, "b": range(10)})
    return out


_PARAMS = (
    [{"n_components": v} for v in (0, -1, 2.5, "3", None, np.nan, True)]
    + [{"covariance_type": v} for v in ("FULL", None, 3)]
    + [{"tol": v} for v in (-1, np.nan, "x")] + [{"reg_covar": v} for v in (-1, np.nan)]
    + [{"max_iter": v} for v in (-1, 2.5)] + [{"n_init": v} for v in (0, -1)]
    + [{"init_params": v} for v in ("kmeans++", None)]
    + [{"weights_init": v} for v in ([1], [0.5, 0.5, 0], [np.nan, 1], "ab", [[0.5, 0.5]],
                                     [2, -1])]
    + [{"means_init": v} for v in ([1, 2], np.zeros((2, 3)), [[np.inf, 0], [0, 0]], "x")]
    + [{"precisions_init": v} for v in (np.zeros((2, 2, 2)), -np.ones((2, 2, 2)), np.ones((2, 2)),
                                        [[1]], np.full((2, 2, 2), np.nan))]
    + [{"random_state": v} for v in (-1, "x", 2**40, 1.5)]
    + [{"verbose_interval": 0}, {"on_collapse": "x"}, {"accelerate": "x"}, {"warm_start": "yes"}]
)
_ONLINE_PARAMS = ([{"batch_size": v} for v in (0, -1, 2.5)]
                  + [{"learning_decay": v} for v in (0, 2, np.nan)]
                  + [{"max_no_improvement": v} for v in (-1, 0, 1.5)] + [{"n_warmup_iter": -1}])
_WEIGHTS = {"3 weights": np.ones(3), "negative": -np.ones(50), "NaN": np.full(50, np.nan),
            "text": "abc", "2-d": np.ones((50, 1)), "all zero": np.zeros(50),
            "51 weights": [1] * 51, "complex": np.ones(50, dtype=complex),
            "inf": np.full(50, np.inf)}


def _cases():
    fitted = GaussianMixture(2, random_state=0).fit(GOOD)
    cases = []
    for name, X in _bad_arrays().items():
        for cls in (GaussianMixture, MiniBatchGaussianMixture):
            cases.append((f"{cls.__name__}.fit X={name}", lambda cls=cls, X=X: cls(2).fit(X)))
        cases.append((f"partial_fit X={name}",
                      lambda X=X: MiniBatchGaussianMixture(2).partial_fit(X)))
        for method in ("predict", "predict_proba", "score_samples", "score", "bic"):
            cases.append((f"{method} X={name}",
                          lambda m=method, X=X: getattr(fitted, m)(X)))
        cases.append((f"select X={name}", lambda X=X: select(X, [1, 2])))
    for p in _PARAMS:
        cases.append((f"GaussianMixture({p})",
                       lambda p=p: GaussianMixture(**{"n_components": 2, **p}).fit(GOOD)))
    for p in _ONLINE_PARAMS:
        cases.append((f"MiniBatchGaussianMixture({p})",
                       lambda p=p: MiniBatchGaussianMixture(2, **p).fit(GOOD)))
    for name, w in _WEIGHTS.items():
        for cls in (GaussianMixture, MiniBatchGaussianMixture):
            cases.append((f"{cls.__name__}.fit sample_weight={name}",
                          lambda cls=cls, w=w: cls(2).fit(GOOD, sample_weight=w)))
        cases.append((f"score sample_weight={name}",
                      lambda w=w: fitted.score(GOOD, sample_weight=w)))
    for n in (0, -1, 2.5, "3", None, True, 10**15):
        cases.append((f"sample({n!r})", lambda n=n: fitted.sample(n)))
    for v in ([0], 0, "x", [1, 10**9], [1.5], [], None, range(0), range(-3, 2)):
        cases.append((f"select n_components={v!r}", lambda v=v: select(GOOD, v)))
    for v in ("x", [], ["full", "x"], None, 3):
        cases.append((f"select covariance_types={v!r}",
                      lambda v=v: select(GOOD, 2, covariance_types=v)))
    return cases


CASES = _cases()


@pytest.mark.filterwarnings("ignore")
@pytest.mark.parametrize("call", [c[1] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_gets_a_clear_error_or_works(call):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            call()
        except (TypeError, ValueError) as exc:
            text = f"{type(exc).__module__} {exc}"
            assert not any(s in text for s in ("numba", "Numba", "nopython")), text
            assert len(str(exc)) > 20, exc  # says something, not a bare repr
