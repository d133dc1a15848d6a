"""Discrete families in ``fastem bench --family`` and
``benchmarks/discrete_peers.py``: data, starts, FLOP and byte models, the
per-iteration timing of fastem and of the peers a user would pick
(StepMix, pomegranate 1.x on CPU, polca), side by side.

How a time per EM iteration is measured, for every library alike: fits from
the same starting parameters that cannot stop early (fastem ``tol=0``;
StepMix ``abs_tol=rel_tol=0``; pomegranate ``tol=-inf``; polca ``tol=0``),
one with ``m1`` and one with ``m2`` iterations; ``(t(m2) - t(m1)) / (m2 -
m1)`` leaves out what a fit does once (checks, conversions, the final
E-step).  The libraries take turns within each repeat (interleaved) and the
figure is the median over the repeats.  ``m1 = 1``; ``m2`` is chosen from
warm-up fits of 1 and 3 iterations so that the difference lasts about half
a second for fastem and two seconds for a peer (whose fits spend longer on
set-up; at least 3, which is what the peers get at the issue's sizes, at
most 31).  A median that is not positive (set-up noise larger than the
iterations) is reported as unreliable, without a speed-up.

The same start: weights uniform (StepMix and polca always start there) and
the component parameters of a 3-iteration fastem fit on a 20,000-row
subsample (from fastem's k-means start; CSR: from k random rows blended
with the mean row), handed to every library (StepMix through its measurement model's
parameters, pomegranate as initialised distributions, polca as
``probs_start``).  After the timed fits each peer's parameters are compared
with fastem's after the same number of iterations on the same rows ("max
diff": the largest absolute difference over the component parameters,
relative to their largest value): it shows that the libraries ran the same
EM.

Each library reads the data in the form it computes in, converted once
before the clock starts: fastem uint8 (binary, category codes), int64
(counts) and CSR (text); StepMix float64 (its own check converts to that);
pomegranate float32 tensors (its default dtype; int64 codes for
Categorical); polca int32 codes from 1.

Threads: fastem on ``numba.get_num_threads()``; StepMix's NumPy BLAS limited
to as many (threadpoolctl); pomegranate ``torch.set_num_threads`` as many;
polca's C++ EM has no threading (one thread).

FLOP model (:func:`flops_per_iteration`, exp/log not counted): the linear
families (Bernoulli, binomial, Poisson, multinomial) cost a multiply-add per
value read and component for the log-joint ``x . a_k + b_k`` and another for
the moments ``sum_i r_ik x_i``, so ``4 K V + 6 n K`` with V the values read
(``n d`` dense, the non-zeros of a CSR matrix) and 6 per row and component
for the log-sum-exp and the weights; categorical: one add per (row, column,
component) for the log-likelihood and one for the counts, ``2 n d K + 6 n
K`` (fastem's kernel reads columns three at a time as joint codes, so it
does fewer: its rate is an effective one).  Bytes read per iteration
(:func:`bytes_per_iteration`): the input arrays once (fastem's E-step and
M-step are one fused pass), the least any EM must read.  Both are compared
with the machine's rates measured in the same run: multiply-add loop and
dgemm (:func:`fastem.bench.reference_rate`) and a streaming read on all
threads (:func:`reference_bandwidth`).
"""

import importlib.metadata
import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass, replace

import numba
import numpy as np
from numba import njit
from scipy import sparse

from ._config import CACHE
from ._kernels.sync import claim_slot, finish_slot

#: The linear families fastem fits and their estimator class names.
LINEAR = {"bernoulli": "BernoulliMixture", "binomial": "BinomialMixture",
          "poisson": "PoissonMixture", "multinomial": "MultinomialMixture"}
FAMILIES = ("bernoulli", "categorical", "poisson", "multinomial", "binomial")
PEERS = ("stepmix", "pomegranate", "polca")
#: Pause after a peer's BLAS-heavy fits (see fastem.bench._QUIET_SECONDS).
QUIET_SECONDS = 0.3
#: The long fit runs until the difference lasts about this long (fastem;
#: the peers, whose fits spend longer on set-up, PEER_TARGET_SECONDS), as
#: estimated from warm-up fits of 1 and 3 iterations; peers at least (1, 3)
#: and at most (1, 1 + PEER_MAX_ITERS).
TARGET_SECONDS = 0.5
PEER_TARGET_SECONDS = 2.0
PEER_MAX_ITERS = 30


@dataclass(frozen=True)
class Case:
    """One benchmark case: ``family`` fitted to ``n`` x ``d`` data from a
    ``k``-component mixture; ``levels`` (categorical), ``n_trials``
    (binomial), ``density`` (CSR text: the fraction of non-zeros)."""

    name: str
    family: str
    n: int
    d: int
    k: int
    levels: int = 0
    n_trials: int = 0
    density: float = 0.0

    @property
    def sparse(self):
        return self.density > 0

    def describe(self):
        what = {"bernoulli": "binary", "categorical": f"categorical, {self.levels} levels",
                "poisson": "Poisson counts", "binomial": f"binomial counts of {self.n_trials}",
                "multinomial": "word counts"}[self.family]
        if self.sparse:
            what = f"{'presence' if self.family == 'bernoulli' else what}, CSR " \
                   f"{self.density:.1%} dense"
        return f"{self.family} {self.n:,} x {self.d:,} ({what}), K = {self.k}"


#: The cases of the issue (and binomial, fastem only), full size.
CASES = {
    "binary": Case("binary", "bernoulli", 1_000_000, 20, 8),
    "categorical": Case("categorical", "categorical", 1_000_000, 10, 6, levels=5),
    "poisson": Case("poisson", "poisson", 1_000_000, 20, 8),
    "text-bernoulli": Case("text-bernoulli", "bernoulli", 100_000, 20_000, 20, density=0.005),
    "text-multinomial": Case("text-multinomial", "multinomial", 100_000, 20_000, 20,
                             density=0.005),
    "binomial": Case("binomial", "binomial", 1_000_000, 20, 8, n_trials=10),
}
#: Which cases ``fastem bench --family F`` runs by default.
FAMILY_CASES = {"bernoulli": ("binary", "text-bernoulli"), "categorical": ("categorical",),
                "poisson": ("poisson",), "multinomial": ("text-multinomial",),
                "binomial": ("binomial",)}
#: Which peers fit which family (the multinomial case: no peer has a
#: multinomial mixture; StepMix's binary model on the same text, presence
#: only, is the reference the issue's target is stated against).
PEER_FAMILIES = {"stepmix": ("bernoulli", "categorical", "multinomial"),
                 "pomegranate": ("bernoulli", "categorical", "poisson"),
                 "polca": ("bernoulli", "categorical")}
#: Rows the peers get on the text cases (they densify X); the issue's sizes.
PEER_TEXT_ROWS = {"stepmix": 20_000, "pomegranate": 1_000, "polca": 1_000}


# --------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------


def make_data(case, random_state=0, chunk=250_000):
    """``case``'s data drawn from a known mixture (``random_state``): uint8
    binary values or category codes, int64 counts, CSR text (float64 data,
    int32 indices). Returns ``(X, labels)``."""
    rng = np.random.default_rng(random_state)
    n, d, k = case.n, case.d, case.k
    if case.sparse:
        return _make_text(case, rng)
    weights = rng.dirichlet(np.full(k, 5.0))
    labels = rng.choice(k, size=n, p=weights)
    if case.family == "bernoulli":
        theta = rng.beta(0.6, 0.6, (k, d)).clip(0.02, 0.98)
        out = np.empty((n, d), dtype=np.uint8)
    elif case.family == "categorical":
        theta = np.cumsum(rng.dirichlet(np.full(case.levels, 0.7), (k, d)), axis=-1)
        out = np.empty((n, d), dtype=np.uint8)
    elif case.family == "poisson":
        theta = rng.gamma(2.0, 2.0, (k, d))
        out = np.empty((n, d), dtype=np.int64)
    elif case.family == "binomial":
        theta = rng.beta(0.8, 0.8, (k, d)).clip(0.02, 0.98)
        out = np.empty((n, d), dtype=np.int64)
    else:
        raise ValueError(f"no dense data for the {case.family} family")
    for i0 in range(0, n, chunk):
        lab = labels[i0:i0 + chunk]
        if case.family == "bernoulli":
            out[i0:i0 + chunk] = rng.random((lab.size, d)) < theta[lab]
        elif case.family == "categorical":
            u = rng.random((lab.size, d, 1))
            out[i0:i0 + chunk] = np.minimum((u > theta[lab]).sum(axis=-1), case.levels - 1)
        elif case.family == "poisson":
            out[i0:i0 + chunk] = rng.poisson(theta[lab])
        else:
            out[i0:i0 + chunk] = rng.binomial(case.n_trials, theta[lab])
    return out, labels


def _make_text(case, rng):
    """Documents from K topics over a Zipf vocabulary: a Poisson number of
    word draws per row from its topic's distribution, counted (multinomial)
    or present/absent (Bernoulli: data set to 1); the draw count is scaled
    on a pilot so that about ``density`` of the cells are non-zero."""
    n, V, k = case.n, case.d, case.k
    base = 1.0 / (rng.permutation(V) + 10.0)
    topics = base * np.exp(rng.normal(0.0, 1.5, (k, V)))
    topics /= topics.sum(axis=1, keepdims=True)
    weights = rng.dirichlet(np.full(k, 5.0))
    labels = rng.choice(k, size=n, p=weights)
    target = case.density * V

    def draw(lengths, labs):
        rows = np.repeat(np.arange(lengths.size), lengths)
        words = np.empty(rows.size, dtype=np.int32)
        for t in range(k):
            hit = labs[rows] == t
            words[hit] = rng.choice(V, size=int(hit.sum()), p=topics[t])
        X = sparse.csr_matrix((np.ones(rows.size), (rows, words)), shape=(lengths.size, V))
        X.sum_duplicates()
        return X

    m = min(n, 2000)
    pilot = draw(rng.poisson(target, m), labels[:m])
    scale = target / max(pilot.nnz / m, 1e-9)
    X = draw(rng.poisson(target * scale, n), labels)
    X.indices = X.indices.astype(np.int32)
    X.indptr = X.indptr.astype(np.int32 if X.nnz < 2**31 else np.int64)
    if case.family == "bernoulli":
        X.data[:] = 1.0
    return X, labels


def data_bytes(X):
    """Bytes of X as given: the array, or a CSR matrix's three arrays."""
    if sparse.issparse(X):
        return X.data.nbytes + X.indices.nbytes + X.indptr.nbytes
    return X.nbytes


def flops_per_iteration(case, X):
    """FLOPs of one EM iteration (see the module docstring)."""
    n, k = X.shape[0], case.k
    if case.family == "categorical":
        return 2 * n * X.shape[1] * k + 6 * n * k
    values = X.nnz if sparse.issparse(X) else X.size
    return 4 * k * values + 6 * n * k


def bytes_per_iteration(X):
    """Bytes an EM iteration must read: X once."""
    return data_bytes(X)


@njit(cache=CACHE, nogil=True, fastmath={"reassoc", "contract"})
def _stream_read(a, out, ctrl):
    """Sum slot s's share of ``a`` into ``out[s]`` (slots claimed as they
    come; eight accumulators, vectorised): a read-only memory stream."""
    n_slots = out.shape[0]
    n = a.shape[0]
    while True:
        s = claim_slot(ctrl)
        if s >= n_slots:
            break
        i0 = s * n // n_slots
        i1 = (s + 1) * n // n_slots
        acc = np.zeros(8)
        i = i0
        while i + 8 <= i1:
            for j in range(8):
                acc[j] += a[i + j]
            i += 8
        for j in range(i, i1):
            acc[0] += a[j]
        out[s] = acc.sum()
        finish_slot(ctrl)


def reference_bandwidth(mib=256, seconds=0.5):
    """GB/s of a streaming read of a ``mib`` MiB float64 array (far larger
    than the caches) on all the threads, as fastem's kernels run (median of
    repeats for at least ``seconds``)."""
    from ._parallel import run_slots

    a = np.ones(mib * 2**20 // 8)
    slots = 16 * numba.get_num_threads()
    out = np.zeros(slots)
    run_slots(_stream_read, (a, out), slots)
    times = []
    t_end = time.perf_counter() + seconds
    while time.perf_counter() < t_end or len(times) < 3:
        t0 = time.perf_counter()
        run_slots(_stream_read, (a, out), slots)
        times.append(time.perf_counter() - t0)
    if out.sum() != a.size:  # the work cannot be optimised away
        raise RuntimeError("bandwidth kernel summed wrongly")
    return a.nbytes / float(np.median(times)) / 1e9


# --------------------------------------------------------------------------
# fastem
# --------------------------------------------------------------------------


def fastem_class(family):
    """fastem's estimator class for ``family``, or None where it does not
    exist (yet)."""
    import fastem

    name = "CategoricalMixture" if family == "categorical" else LINEAR[family]
    return getattr(fastem, name, None)


def _theta_name(family):
    return "rates" if family == "poisson" else "probabilities"


def _fastem_kwargs(case):
    return {"n_trials": case.n_trials} if case.family == "binomial" else {}


def starting_params(case, X, sample=20_000, random_state=0):
    """The common start: uniform weights and the component parameters of a
    3-iteration fastem fit on ``sample`` random rows. Returns ``(weights,
    theta)``, theta (K, d) or, categorical, a list of d (K, C_j) arrays."""
    cls = fastem_class(case.family)
    rng = np.random.default_rng(random_state)
    idx = np.sort(rng.choice(X.shape[0], size=min(X.shape[0], sample), replace=False))
    Xs = X[idx]
    kwargs = _fastem_kwargs(case)
    if sparse.issparse(X):
        # CSR: given inits (k random rows, each blended half and half with the
        # mean row), so that fastem's own start, which samples rows of dense
        # arrays only, is not involved
        rows = np.asarray(Xs[rng.choice(Xs.shape[0], size=case.k, replace=False)].todense())
        mean = np.asarray(Xs.mean(axis=0))
        theta = 0.5 * rows + 0.5 * mean
        if case.family == "multinomial":
            theta /= theta.sum(axis=1, keepdims=True)
        kwargs = dict(kwargs, weights_init=np.full(case.k, 1.0 / case.k),
                      **{_theta_name(case.family) + "_init":
                         _inside_domain(case.family, theta)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = cls(case.k, max_iter=3, random_state=random_state, **kwargs).fit(Xs)
    theta = getattr(est, _theta_name(case.family) + "_")
    return np.full(case.k, 1.0 / case.k), _inside_domain(case.family, theta)


#: The start keeps probabilities and rates at least this far from 0 and 1
#: (pomegranate's float32 distributions refuse values below float32's eps).
START_FLOOR = 1e-6


def _inside_domain(family, theta):
    """theta with probabilities in [START_FLOOR, 1 - START_FLOOR] (rows of
    multinomial and categorical tables renormalised to sum to 1 exactly),
    rates at least START_FLOOR."""
    if family == "categorical":
        out = []
        for t in theta:
            t = np.maximum(np.asarray(t, dtype=np.float64), START_FLOOR)
            out.append(t / t.sum(axis=1, keepdims=True))
        return out
    theta = np.asarray(theta, dtype=np.float64)
    if family == "poisson":
        return np.maximum(theta, START_FLOOR)
    if family == "multinomial":
        theta = np.maximum(theta, START_FLOOR)
        return theta / theta.sum(axis=1, keepdims=True)
    return theta.clip(START_FLOOR, 1.0 - START_FLOOR)


def _theta_array(theta):
    """Component parameters as one array: (K, d), or (K, d, C) stacked."""
    if isinstance(theta, (list, tuple)):
        return np.stack([np.asarray(t) for t in theta], axis=1)
    return np.asarray(theta)


def fastem_fit(case, start, max_iter, info=None):
    """A function of X: a fastem fit of exactly ``max_iter`` iterations from
    ``start``; returns ``(weights, theta array)`` (and puts the number of
    collapsed components it re-seeded into ``info['n_reseeds']``)."""
    cls = fastem_class(case.family)
    weights, theta = start
    kwargs = {"weights_init": weights, _theta_name(case.family) + "_init": theta,
              **_fastem_kwargs(case)}

    def fit(X):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = cls(case.k, tol=0.0, max_iter=max_iter, **kwargs).fit(X)
        if info is not None:
            info["n_reseeds"] = int(getattr(est, "n_reseeds_", 0))
        return est.weights_, _theta_array(getattr(est, _theta_name(case.family) + "_"))

    return fit


# --------------------------------------------------------------------------
# peers
# --------------------------------------------------------------------------


def peer_available(name):
    """Whether peer ``name`` can be imported."""
    module = {"stepmix": "stepmix", "pomegranate": "pomegranate", "polca": "pypolca"}[name]
    return importlib.util.find_spec(module) is not None


def peer_version(name):
    try:
        version = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "?"
    if name == "pomegranate":
        try:
            version += f" (torch {importlib.metadata.version('torch')} CPU)"
        except importlib.metadata.PackageNotFoundError:
            pass
    return version


@dataclass
class Runner:
    """A library ready to fit: ``fit(m)`` runs exactly m EM iterations from
    the common start and returns ``(weights, theta array)``; ``iters`` the
    two iteration counts timed; ``rows`` the rows it fits; ``threads`` the
    threads it computes on; ``blas`` whether it calls multithreaded BLAS
    (pause after its fits); ``note`` what its row of the table says."""

    name: str
    fit: object
    iters: object  # (m1, m2), or None: chosen at the warm-up (see time_runners)
    rows: int
    threads: int
    blas: bool = False
    note: str = ""
    compare: bool = True


def _dense_rows(X, rows):
    return np.asarray(X[:rows].toarray() if sparse.issparse(X) else X[:rows])


def stepmix_runner(case, X, start, rows, threads):
    """StepMix ``measurement='binary'`` or ``'categorical'``, its start set
    through the measurement model (StepMix has no *_init parameters: a
    subclass replaces its random initialisation by the common start)."""
    from stepmix import StepMix
    from threadpoolctl import threadpool_limits

    weights, theta = start
    measurement = "categorical" if case.family == "categorical" else "binary"
    if case.family == "multinomial":  # the reference: presence, StepMix binary
        X = X[:rows].copy()
        X.data[:] = 1.0
    Xs = _dense_rows(X, rows).astype(np.float64, copy=False)
    if case.family == "categorical":
        levels = theta[0].shape[1]
        pis = _theta_array(theta).reshape(case.k, -1)
    else:
        pis = np.asarray(theta)

    class StartedStepMix(StepMix):
        def _initialize_parameters(self, X, random_state):
            self.weights_ = weights.copy()
            self.log_resp_ = np.zeros((1, self.n_components))
            self._initialize_parameters_measurement(X, random_state, init_emission=False)
            self._mm.parameters["pis"] = pis.copy()
            if measurement == "categorical":
                self._mm.parameters["max_n_outcomes"] = levels
                self._mm.parameters["total_outcomes"] = levels * X.shape[1]

    def fit(m):
        with warnings.catch_warnings(), threadpool_limits(limits=threads, user_api="blas"):
            warnings.simplefilter("ignore")
            est = StartedStepMix(n_components=case.k, measurement=measurement, max_iter=m,
                                 abs_tol=0.0, rel_tol=0.0, n_init=1, progress_bar=0,
                                 verbose=0, random_state=0).fit(Xs)
        out = est._mm.parameters["pis"]
        if measurement == "categorical":
            out = out.reshape(case.k, Xs.shape[1], -1)
        return np.asarray(est.weights_), np.asarray(out)

    note = "binary model on presence (no multinomial mixture)" \
        if case.family == "multinomial" else ""
    if case.sparse:
        note = (note + "; " if note else "") + "densified"
    return Runner("stepmix", fit, None, Xs.shape[0], threads, blas=True, note=note,
                  compare=case.family != "multinomial")


def pomegranate_runner(case, X, start, rows, threads):
    """pomegranate 1.x ``GeneralMixtureModel`` of initialised Bernoulli,
    Categorical or Poisson distributions (float32, its default), on CPU."""
    import torch
    from pomegranate.distributions import Bernoulli, Categorical, Poisson
    from pomegranate.gmm import GeneralMixtureModel

    torch.set_num_threads(threads)
    weights, theta = start
    dtype = torch.float32
    Xd = _dense_rows(X, rows)
    if case.family == "categorical":
        Xt = torch.from_numpy(Xd.astype(np.int64))
        comps = [Categorical(probs=torch.tensor(np.stack([t[k] for t in theta]), dtype=dtype))
                 for k in range(case.k)]
    elif case.family == "poisson":
        Xt = torch.from_numpy(Xd.astype(np.float32))
        comps = [Poisson(lambdas=torch.tensor(theta[k], dtype=dtype)) for k in range(case.k)]
    else:
        Xt = torch.from_numpy(Xd.astype(np.float32))
        comps = [Bernoulli(probs=torch.tensor(theta[k], dtype=dtype)) for k in range(case.k)]

    def fit(m):
        import copy

        model = GeneralMixtureModel(copy.deepcopy(comps),
                                    priors=torch.tensor(weights, dtype=dtype),
                                    max_iter=m, tol=float("-inf"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(Xt)
        attr = "lambdas" if case.family == "poisson" else "probs"
        out = np.stack([getattr(c, attr).detach().numpy() for c in model.distributions])
        return model.priors.detach().numpy().astype(np.float64), out.astype(np.float64)

    return Runner("pomegranate", fit, None, Xt.shape[0], threads,
                  note="float32" + ("; densified" if case.sparse else ""))


def polca_runner(case, X, start, rows, threads):
    """polca (poLCA's port, C++ EM) through ``pypolca._core.fit_em`` (what
    ``pypolca.fit`` calls, without its formula and polars front end):
    codes from 1, binary items as two categories, ``probs_start`` the common
    start. polca always starts from uniform weights, as the common start
    does."""
    from pypolca._core import Data, fit_em

    theta = start[1]
    Xd = _dense_rows(X, rows)
    data = Data()
    data.y = (Xd.astype(np.int32) + 1)
    data.x = np.ones((Xd.shape[0], 1))
    if case.family == "categorical":
        levels = [t.shape[1] for t in theta]
        table = _theta_array(theta)  # (K, d, C)
    else:
        levels = [2] * Xd.shape[1]
        p = np.asarray(theta)
        table = np.stack([1.0 - p, p], axis=-1)
    data.num_choices = levels
    probs_start = np.ascontiguousarray(table.reshape(-1), dtype=np.float64)
    no_beta = np.array([], dtype=np.float64)

    def fit(m):
        res = fit_em(data, nclass=case.k, maxiter=m, tol=0.0, probs_start=probs_start,
                     beta_start=no_beta, seed=0, calc_se=False)
        vec = np.asarray(res.params.vecprobs).reshape(case.k, Xd.shape[1], -1)
        out = vec if case.family == "categorical" else vec[..., 1]
        return np.asarray(res.prior)[0].copy(), out

    return Runner("polca", fit, None, Xd.shape[0], 1,
                  note="no threading" + ("; densified" if case.sparse else ""))


PEER_RUNNERS = {"stepmix": stepmix_runner, "pomegranate": pomegranate_runner,
                "polca": polca_runner}


# --------------------------------------------------------------------------
# timing
# --------------------------------------------------------------------------


def _timed(fit, m):
    t0 = time.perf_counter()
    out = fit(m)
    return time.perf_counter() - t0, out


def _fastem_iters(make, X):
    """fastem's two iteration counts: (1, m2), the difference lasting about
    TARGET_SECONDS (estimated from fits of 1 and 3 iterations)."""
    a, _ = _timed(lambda m: make(m)(X), 1)
    b, _ = _timed(lambda m: make(m)(X), 3)
    per = max((b - a) / 2, 1e-5)
    return (1, 1 + int(min(200, max(4, math.ceil(TARGET_SECONDS / per)))))


def time_runners(runners, repeats=3, log=print):
    """Median seconds per iteration of each runner, interleaved over
    ``repeats``; also keeps each runner's last result (its parameters after
    ``iters[1]`` iterations) as ``runner.result``."""
    per = {r.name: [] for r in runners}
    for r in runners:  # warm-up: first calls (JIT, torch, BLAS pools) are not timed
        t1, _ = _timed(r.fit, 1 if r.iters is None else r.iters[0])
        if r.iters is None:  # a peer: from fits of 1 and 3 iterations
            t3, _ = _timed(r.fit, 3)
            each = max((t3 - t1) / 2, 1e-4)
            r.iters = (1, 1 + int(min(PEER_MAX_ITERS,
                                      max(2, math.ceil(PEER_TARGET_SECONDS / each)))))
    log(f"  timing {', '.join(f'{r.name} {r.iters}' for r in runners)} iterations, "
        f"{repeats} repeats")
    for rep in range(repeats):
        for r in runners:
            m1, m2 = r.iters
            a, _ = _timed(r.fit, m1)
            b, r.result = _timed(r.fit, m2)
            per[r.name].append((b - a) / (m2 - m1))
            if r.blas:
                time.sleep(QUIET_SECONDS)
        log(f"    repeat {rep + 1}: " + ", ".join(
            f"{name} {v[-1]:.4g} s" for name, v in per.items()))
    return {name: float(np.median(v)) for name, v in per.items()}


def _compare_fit(case, start, m, Xr, info=None):
    """fastem's parameters after m iterations on the peer's rows Xr; a CSR
    fit that fails (a collapsed component re-seeded on a few rows) is run
    again on the same rows densified."""
    fit = fastem_fit(case, start, m, info)
    if not sparse.issparse(Xr):
        return fit(Xr)
    try:
        return fit(Xr)
    except Exception:  # noqa: BLE001
        return fit(Xr.toarray())


def _rel_diff(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return float("nan")
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


def bench_case(case, peers=(), peer_rows=None, repeats=3, peak=None, bandwidth=None,
               data=None, log=print):
    """Time one case for fastem and ``peers`` (names; those not installed or
    not fitting the family are left out); returns a list of row dicts, one
    per library (fastem first), or an empty list when fastem cannot fit the
    family yet (said in the log)."""
    cls = fastem_class(case.family)
    if cls is None:
        log(f"  skipped {case.name}: fastem.{'CategoricalMixture' if case.family == 'categorical' else LINEAR[case.family]} "
            "does not exist yet; the case runs as soon as it does")
        return []
    threads = numba.get_num_threads()
    log(f"  {case.describe()}: generating data ...")
    X, _ = data if data is not None else make_data(case)
    start = starting_params(case, X)

    def make(m):
        return fastem_fit(case, start, m)

    make(1)(X[:2000])  # JIT warm-up
    iters = _fastem_iters(make, X)
    runners = [Runner("fastem", lambda m: make(m)(X), iters, X.shape[0], threads,
                      note="CSR" if case.sparse else "")]
    peer_rows = dict(PEER_TEXT_ROWS, **(peer_rows or {}))
    for name in peers:
        if case.family not in PEER_FAMILIES[name]:
            continue
        if not peer_available(name):
            log(f"  {name}: not installed (pip install 'fastem[bench]')")
            continue
        rows = min(peer_rows[name], X.shape[0]) if case.sparse else X.shape[0]
        pstart = start
        if case.family == "multinomial":  # StepMix fits presence: a Bernoulli start
            pstart = starting_params(replace(case, family="bernoulli"),
                                     (X[:max(rows, 2000)] > 0).astype(np.float64))
        try:
            runners.append(PEER_RUNNERS[name](case, X, pstart, rows, threads))
        except Exception as exc:  # noqa: BLE001 (a peer that fails is reported, not fatal)
            log(f"  {name}: could not be set up: {type(exc).__name__}: {exc}")
    try:
        seconds = time_runners(runners, repeats, log=log)
    except Exception as exc:  # noqa: BLE001
        log(f"  a library failed while timed: {type(exc).__name__}: {exc}; retrying fastem alone")
        runners = runners[:1]
        seconds = time_runners(runners, repeats, log=log)
    fe = runners[0]
    fe_s = seconds["fastem"]
    fe_per_row = fe_s / fe.rows
    flops = flops_per_iteration(case, X)
    nbytes = bytes_per_iteration(X)
    rows_out = []
    for r in runners:
        s = seconds[r.name]
        note = r.note
        if s <= 0:
            note = (note + "; " if note else "") + "UNRELIABLE: noise larger than the iterations"
            log(f"  {r.name}: the median difference is not positive ({s:.3g} s): timing noise; "
                "rerun on a quiet machine or with more rows")
        row = {"case": case.name, "family": case.family, "n": case.n, "d": case.d,
               "k": case.k, "library": r.name, "rows": r.rows, "threads": r.threads,
               "iters": list(r.iters), "seconds": s, "us_per_row": s / r.rows * 1e6,
               "speedup": (s / r.rows) / fe_per_row if s > 0 and fe_s > 0 else float("nan"),
               "note": note}
        if r.name == "fastem":
            row.update(gflops=flops / s / 1e9, gbps=nbytes / s / 1e9, flops=flops,
                       bytes=nbytes)
            if peak:
                row["peak_fraction"] = row["gflops"] / peak
            if bandwidth:
                row["bandwidth_fraction"] = row["gbps"] / bandwidth
        elif r.compare:
            try:
                info = {}
                w, theta = _compare_fit(case, start, r.iters[1], X[:r.rows], info)
                row["max_diff"] = max(_rel_diff(r.result[1], theta),
                                      _rel_diff(r.result[0], w))
                if not np.isfinite(r.result[1]).all():
                    row["note"] = (row["note"] + "; " if row["note"] else "") + (
                        f"{r.name}'s parameters hold NaN (a component lost all its rows)")
                elif info.get("n_reseeds"):
                    row["note"] = (row["note"] + "; " if row["note"] else "") + (
                        f"diff n/a: on these {r.rows:,} rows fastem re-seeded "
                        f"{info['n_reseeds']} collapsed component(s), {r.name} does not")
            except Exception as exc:  # noqa: BLE001 (the timing stands; say why no diff)
                log(f"  {r.name}: no comparison, fastem's fit of its {r.rows:,} rows failed: "
                    f"{type(exc).__name__}: {exc}")
        rows_out.append(row)
        log(f"  {r.name:>12}: {s:10.4g} s/iteration on {r.rows:,} rows "
            f"({row['us_per_row']:.4g} us/row)"
            + (f", {row['gflops']:.1f} GFLOP/s, {row['gbps']:.2f} GB/s read"
               if r.name == "fastem" else f", fastem {row['speedup']:.1f}x per row")
            + (f", max diff {row['max_diff']:.1e}" if "max_diff" in row else ""))
    return rows_out


# --------------------------------------------------------------------------
# memory (CSR)
# --------------------------------------------------------------------------

_MEMORY_CHILD = r"""
import json, sys, warnings
import numpy as np
from scipy import sparse
import fastem
cls, path, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
X = sparse.load_npz(path).tocsr()
w = np.load(path + ".w.npy")
theta = np.load(path + ".theta.npy")
name = "rates_init" if cls == "PoissonMixture" else "probabilities_init"
Est = getattr(fastem, cls)
warnings.simplefilter("ignore")
Est(k, max_iter=1, tol=0, weights_init=w, **{name: theta}).fit(X)  # warm-up (compiles)
def status(key):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
before = status("VmRSS:")
try:
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # reset the high-water mark to the current RSS
    reset = True
except OSError:
    reset = False
Est(k, max_iter=3, tol=0, weights_init=w, **{name: theta}).fit(X)
print(json.dumps({"extra": status("VmHWM:") - before, "reset": reset}))
"""


def fit_memory(case, X, start):
    """Peak extra resident memory of a 3-iteration fastem fit of the CSR X
    in a fresh process (VmHWM after resetting it, minus VmRSS before the fit:
    X itself is not counted), against the CSR's own bytes. Returns a dict."""
    weights, theta = start
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "x.npz")
        sparse.save_npz(path, X, compressed=False)
        np.save(path + ".w.npy", weights)
        np.save(path + ".theta.npy", np.asarray(theta))
        out = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, LINEAR[case.family], path,
                              str(case.k)], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(out.stderr.strip().splitlines()[-1] if out.stderr else "failed")
    res = json.loads(out.stdout.strip().splitlines()[-1])
    csr = data_bytes(X)
    return {"case": case.name, "extra_bytes": res["extra"], "csr_bytes": csr,
            "extra_fraction": res["extra"] / csr, "hwm_reset": res["reset"],
            "dense_bytes": X.shape[0] * X.shape[1] * 8}


# --------------------------------------------------------------------------
# tables
# --------------------------------------------------------------------------


def _fmt_s(s):
    return f"{s:.3g}" if s < 1 else f"{s:.2f}"


def results_table(rows):
    """Markdown: case, library, rows, s/iteration, us/row, fastem speed-up
    (per row), GFLOP/s and GB/s read (fastem) or max diff (peers), note."""
    from .bench import _table

    columns = ["case", "library", "rows", "threads", "s/iteration", "us/row",
               "fastem speed-up", "GFLOP/s (of peak)", "GB/s read (of bandwidth)",
               "max diff", "note"]
    body = []
    for r in rows:
        fe = r["library"] == "fastem"
        body.append([
            r["case"], r["library"], f"{r['rows']:,}", str(r["threads"]), _fmt_s(r["seconds"]),
            f"{r['us_per_row']:.3g}",
            "" if fe else (f"{r['speedup']:.1f}x" if np.isfinite(r["speedup"]) else "n/a"),
            f"{r['gflops']:.1f} ({r.get('peak_fraction', float('nan')):.0%})" if fe else "",
            f"{r['gbps']:.2f} ({r.get('bandwidth_fraction', float('nan')):.0%})" if fe else "",
            f"{r['max_diff']:.1e}" if "max_diff" in r else "", r["note"]])
    return _table(body, columns)


def memory_table(mems):
    from .bench import _table

    return _table([[m["case"], f"{m['csr_bytes'] / 2**20:.1f}",
                    f"{m['extra_bytes'] / 2**20:.1f} ({m['extra_fraction']:.0%})",
                    f"{m['dense_bytes'] / 2**30:.1f}"] for m in mems],
                  ["case", "CSR MiB", "fastem fit extra MiB (of CSR)",
                   "dense float64 GiB (what peers densify to)"])


def machine_rates(log=print):
    """The machine's reference rates, measured now: {'fma_loop', 'dgemm',
    'peak' (GFLOP/s), 'bandwidth' (GB/s)}."""
    from .bench import reference_rate

    ref = reference_rate()
    ref["bandwidth"] = reference_bandwidth()
    log(f"reference rates: Numba multiply-add loop {ref['fma_loop']:.1f} GFLOP/s, OpenBLAS "
        f"dgemm {ref['dgemm']:.1f} GFLOP/s, streaming read {ref['bandwidth']:.1f} GB/s "
        f"({numba.get_num_threads()} threads)")
    return ref


def scaled_case(case, n=None, d=None, k=None, levels=None, density=None):
    """``case`` with some sizes replaced (None: kept)."""
    changes = {key: v for key, v in (("n", n), ("d", d), ("k", k), ("levels", levels),
                                     ("density", density)) if v is not None}
    return replace(case, **changes)


def run_cases(cases, peers=(), peer_rows=None, repeats=3, memory=True, log=print,
              records=None):
    """Run ``cases`` (Case objects) with ``peers``; print and return the
    markdown (results table, CSR memory table)."""
    ref = machine_rates(log=log)
    rows, mems = [], []
    for case in cases:
        log(f"{case.name}: {case.describe()}")
        data = None
        if fastem_class(case.family) is not None:
            data = make_data(case)
        try:
            got = bench_case(case, peers, peer_rows, repeats, peak=ref["peak"],
                             bandwidth=ref["bandwidth"], data=data, log=log)
        except Exception as exc:  # noqa: BLE001 (one case failing does not stop the others)
            log(f"  {case.name} failed: {type(exc).__name__}: {exc}")
            got = []
        rows += got
        if memory and got and case.sparse:
            X = data[0]
            try:
                mems.append(fit_memory(case, X, starting_params(case, X)))
                m = mems[-1]
                log(f"  fastem fit memory: {m['extra_bytes'] / 2**20:.1f} MiB extra against a "
                    f"{m['csr_bytes'] / 2**20:.1f} MiB CSR ({m['extra_fraction']:.0%})")
            except Exception as exc:  # noqa: BLE001
                log(f"  memory not measured: {type(exc).__name__}: {exc}")
    if records is not None:
        records.extend(rows)
        records.extend({"memory": m} for m in mems)
    md = [f"Threads: {numba.get_num_threads()}. Machine: multiply-add loop "
          f"{ref['fma_loop']:.1f} GFLOP/s, dgemm {ref['dgemm']:.1f} GFLOP/s, streaming read "
          f"{ref['bandwidth']:.1f} GB/s. Peers: "
          + (", ".join(f"{p} {peer_version(p)}" for p in peers if peer_available(p)) or "none")
          + ".", "", results_table(rows) if rows else "(no case ran)"]
    if mems:
        md += ["", memory_table(mems)]
    text = "\n".join(md)
    log("")
    log(text)
    return text, rows, mems


# --------------------------------------------------------------------------
# fastem bench --family
# --------------------------------------------------------------------------

#: ``fastem bench --family F`` without --full: dense cases on this many rows,
#: text on TEXT_QUICK_ROWS (the columns and densities of the issue's cases).
QUICK_ROWS = 200_000
TEXT_QUICK_ROWS = 20_000


def family_cases(family, full=False, grid=None, levels=None, density=None):
    """The cases ``fastem bench --family`` runs: the family's cases of the
    issue (full size with ``full``, else QUICK_ROWS / TEXT_QUICK_ROWS rows),
    or one per ``grid`` entry (n, d, k): dense, or CSR with ``density``
    (multinomial: always CSR, default 0.5%)."""
    if family not in FAMILY_CASES:
        raise ValueError(f"--family expects one of {', '.join(FAMILIES)}, got {family!r}")
    if levels is not None and (family != "categorical" or levels < 2):
        raise ValueError("--levels goes with --family categorical and is at least 2")
    if density is not None and (family not in ("bernoulli", "multinomial")
                                or not 0 < density <= 1):
        raise ValueError("--density goes with --family bernoulli or multinomial and is in (0, 1]")
    if grid:
        base = CASES[FAMILY_CASES[family][0]]
        if density is None and base.sparse:
            density = base.density
        return [replace(base, name=f"{family}-{n}x{d}", n=n, d=d, k=k,
                        levels=levels or base.levels, density=density or 0.0)
                for n, d, k in grid]
    cases = []
    for name in FAMILY_CASES[family]:
        case = CASES[name]
        if levels is not None:
            case = replace(case, levels=levels)
        if density is not None and case.sparse:
            case = replace(case, density=density)
        if not full:
            case = replace(case, n=min(case.n, TEXT_QUICK_ROWS if case.sparse else QUICK_ROWS))
        cases.append(case)
    return cases


def parse_peers(spec):
    """``--peers``: 'auto' (those installed), 'none', or comma-separated names."""
    if spec in (None, "auto"):
        return [p for p in PEERS if peer_available(p)]
    if spec == "none":
        return []
    names = [p.strip() for p in spec.split(",") if p.strip()]
    bad = [p for p in names if p not in PEERS]
    if bad or not names:
        raise ValueError(f"--peers expects 'auto', 'none' or names from {', '.join(PEERS)}, "
                         f"got {spec!r}")
    return names


def run_family(family, full=False, grid=None, repeats=3, peers="auto", levels=None,
               density=None, out_dir=None, log=print, records=None):
    """``fastem bench --family``: fastem's time per EM iteration, GFLOP/s and
    GB/s read against the machine's rates for ``family`` (and the peers
    installed, side by side; on text they densify PEER_TEXT_ROWS scaled by
    the text's rows over 100,000); with ``full`` the issue's sizes and, on
    CSR, the fit's peak memory. Returns the markdown; ``out_dir`` also gets it as
    ``benchmarks_<family>.md``."""
    import platform
    from pathlib import Path

    cases = family_cases(family, full, grid, levels, density)
    names = parse_peers(peers)
    log(f"fastem bench --family {family}: {numba.get_num_threads()} threads, numba "
        f"{numba.__version__}, {platform.machine()}; peers: "
        + (", ".join(f"{p} {peer_version(p)}" for p in names) or "none"))
    # peers densify text: their rows scale with the text's (the at 100,000)
    text_n = max([c.n for c in cases if c.sparse], default=CASES["text-bernoulli"].n)
    peer_rows = {p: max(50, min(v, v * text_n // CASES["text-bernoulli"].n))
                 for p, v in PEER_TEXT_ROWS.items()}
    text = run_cases(cases, names, peer_rows, repeats=repeats, memory=full, log=log,
                     records=records)[0]
    how = (f"Measured by `fastem bench --family {family}{' --full' if full else ''}` on "
           f"{time.strftime('%Y-%m-%d')}. Method: `fastem.bench_discrete` (same start, "
           "`tol=0`, difference of a long and a short fit, interleaved repeats, medians; "
           "speed-ups per row).")
    md = "\n".join([f"# {family} mixtures: time per EM iteration", "", how, "", text, ""])
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"benchmarks_{family}.md"
        path.write_text(md)
        log(f"wrote {path}")
    return md
