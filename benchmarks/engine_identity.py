"""Are fits bitwise identical across two revisions of fastem?

The engine restructuring (issue 15) must not change any result.  This script
fits a grid of models -- every covariance type, float32 and float64, batch
EM, SQUAREM, weighted, warm-started, online EM (fit and partial_fit),
out-of-core (memmap) and Dask input, collapse recovery -- and writes every fitted array and
per-row output to one ``.npz``; ``compare`` checks two such files bit for
bit.

    PYTHONPATH=/path/to/old python benchmarks/engine_identity.py dump old.npz
    PYTHONPATH=/path/to/new python benchmarks/engine_identity.py dump new.npz
    python benchmarks/engine_identity.py compare old.npz new.npz

Each dump compiles its kernels into a fresh Numba cache (a temporary
``NUMBA_CACHE_DIR`` unless one is set): float32 results were seen to differ
in the last bits between kernels compiled in different processes (a cache
filled by the test suite against one filled by this script, same source),
so only fresh caches compare revisions fairly.
"""

import os
import sys
import tempfile
import warnings
from pathlib import Path

if __name__ == "__main__" and sys.argv[1:2] == ["dump"]:
    os.environ.setdefault("NUMBA_CACHE_DIR", tempfile.mkdtemp(prefix="fastem-identity-"))

import numpy as np  # noqa: E402

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
ATTRS = ("weights_", "means_", "covariances_", "precisions_cholesky_", "precisions_",
         "lower_bound_", "n_iter_")


def _data(dtype, seed=0):
    from fastem.datasets import make_mixture

    X, _, _ = make_mixture(6000, 3, 4, random_state=seed)
    return X.astype(dtype)


def _record(out, key, model, X):
    for attr in ATTRS:
        out[f"{key}/{attr}"] = np.asarray(getattr(model, attr))
    out[f"{key}/lower_bounds_"] = np.asarray(model.lower_bounds_, dtype=np.float64)
    out[f"{key}/predict_proba"] = np.asarray(model.predict_proba(X))
    out[f"{key}/score_samples"] = np.asarray(model.score_samples(X))


def dump(path):
    from fastem import GaussianMixture, MiniBatchGaussianMixture

    warnings.simplefilter("ignore")
    out = {}
    tmp = Path(tempfile.mkdtemp())
    for dtype in (np.float64, np.float32):
        X = _data(dtype)
        w = np.random.default_rng(1).uniform(0.2, 2.0, size=len(X))
        mm_path = tmp / f"x_{np.dtype(dtype).name}.npy"
        np.save(mm_path, X)
        Xmm = np.load(mm_path, mmap_mode="r")
        for ct in COVARIANCE_TYPES:
            tag = f"{np.dtype(dtype).name}/{ct}"
            kw = dict(covariance_type=ct, random_state=0)
            _record(out, f"{tag}/batch", GaussianMixture(4, n_init=2, **kw).fit(X), X)
            _record(out, f"{tag}/squarem",
                    GaussianMixture(4, accelerate="squarem", **kw).fit(X), X)
            _record(out, f"{tag}/weighted",
                    GaussianMixture(4, **kw).fit(X, sample_weight=w), X)
            warm = GaussianMixture(4, warm_start=True, max_iter=5, **kw).fit(X)
            _record(out, f"{tag}/warm", warm.fit(X), X)
            _record(out, f"{tag}/memmap", GaussianMixture(4, **kw).fit(Xmm), X)
            _record(out, f"{tag}/online",
                    MiniBatchGaussianMixture(4, batch_size=512, max_iter=3, **kw).fit(X), X)
            stream = MiniBatchGaussianMixture(4, **kw)
            for b in range(0, len(X), 1000):
                stream.partial_fit(X[b:b + 1000])
            _record(out, f"{tag}/partial_fit", stream, X)
    # collapse recovery: 8 components on 40 rows of positive weight re-seed
    X = _data(np.float64)
    w = np.zeros(len(X))
    w[np.random.default_rng(0).choice(len(X), 40, replace=False)] = 1.0
    for ct in COVARIANCE_TYPES:
        kw = dict(covariance_type=ct, random_state=0)
        for name, model in (("batch", GaussianMixture(8, **kw)),
                            ("online", MiniBatchGaussianMixture(8, batch_size=16, max_iter=2,
                                                                **kw))):
            model.fit(X, sample_weight=w)
            _record(out, f"collapse/{ct}/{name}", model, X)
            out[f"collapse/{ct}/{name}/events"] = np.array(
                [-1 if e[1] is None else e[1] for e in model.collapse_events_])
    try:
        import dask.array as da
    except ImportError:  # pragma: no cover
        da = None
    if da is not None:
        X = _data(np.float64)
        for ct in COVARIANCE_TYPES:
            model = GaussianMixture(4, covariance_type=ct, random_state=0).fit(
                da.from_array(X, chunks=(1500, 3)))
            _record(out, f"dask/{ct}", model, X)
    np.savez(path, **out)
    print(f"{len(out)} arrays written to {path}")


def compare(a_path, b_path):
    a, b = np.load(a_path), np.load(b_path)
    keys = sorted(set(a.files) | set(b.files))
    differ = [k for k in keys if k not in a.files or k not in b.files
              or a[k].dtype != b[k].dtype or a[k].shape != b[k].shape
              or a[k].tobytes() != b[k].tobytes()]
    print(f"{len(keys) - len(differ)} of {len(keys)} arrays bitwise identical")
    for k in differ[:20]:
        print("  differs:", k)
    return 1 if differ else 0


if __name__ == "__main__":
    if sys.argv[1] == "dump":
        dump(sys.argv[2])
    else:
        sys.exit(compare(sys.argv[2], sys.argv[3]))
