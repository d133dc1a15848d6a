"""Hidden Markov models: time per Baum-Welch iteration of fastem against
hmmlearn 0.3.3 (``implementation='scaling'`` and ``'log'``) and pomegranate
1.x (``DenseHMM`` on CPU), from the same start on the same threads.

    python benchmarks/hmm_speed.py                      # the issue's sizes (~10 min)
    python benchmarks/hmm_speed.py --quick              # 10x smaller cases
    python benchmarks/hmm_speed.py --cases diag,long --iters 3 --repeats 3

Cases (full size; ``--quick`` has 10x fewer sequences, or 10x fewer steps
for the single sequence):

* ``diag``: Gaussian, diagonal covariances, 1,000 sequences x 1,000 steps,
  d = 4, K = 8;
* ``long``: the same model, one sequence of 1,000,000 steps;
* ``full``: Gaussian, full covariances, d = 16, K = 8, 100 sequences x
  1,000 steps;
* ``categorical``: 1,000 sequences x 1,000 steps, 50 symbols, K = 10.

Method:

* data drawn from a known HMM with a fixed seed (:func:`make_data`; the
  state paths by a vectorised parallel-prefix composition of the per-frame
  transition maps, exact, no Python loop per frame);
* the same start for every library (:func:`starting_params`): uniform
  start probabilities, a sticky transition matrix, means at random frames
  and the data's (co)variance, or random emission probabilities; set on the
  hmmlearn and fastem models with ``init_params=''``;
* time per iteration = time of ``fit`` with ``n_iter=m`` (``--iters``) and
  ``tol=-inf`` (exactly m iterations), divided by m; a warm-up fit on a
  slice first, so that Numba compiling and first calls are not timed; the
  libraries take turns in each repeat; medians of ``--repeats`` (3);
* a slow peer's fits are held to about ``--budget`` seconds per case (60):
  fewer runs, and fewer iterations per fit where the warm-up says that m
  of them would overrun it twice over; the table says so next to its time
  ("1 it x 1": one iteration, one fit);
* the same work: fastem's log-likelihood after the m iterations (the last
  E-step's, ``monitor_.history[-1]``) must equal hmmlearn's (both
  implementations) to a relative 1e-6 (the script exits with status 1
  otherwise); pomegranate's parameters after one iteration on the warm-up
  slice are compared with hmmlearn's (max abs difference, untimed);
* threads: ``--threads`` (all Numba threads by default) for fastem and the
  rate bound, BLAS (threadpoolctl) and torch (``torch.set_num_threads``);
  hmmlearn's forward-backward is single-threaded C++ whatever the limit;
* rate bound: the O(T K^2) recursion at the machine's rate, measured in the
  same run by a small Numba kernel doing 3 K^2 multiply-adds per frame (the
  forward and backward recursions and the expected transition counts) over
  the case's T frames in a vectorised loop, on the case's threads (all of
  them where fastem parallelises over sequences, one for a single
  sequence); fastem's time per observation per iteration is reported as a
  multiple of it (the bound is the fastest of 5 runs of the kernel: other
  load only slows it).  The emission densities are not in the bound (they
  dominate the full-covariance case).

pomegranate (optional, ``pip install pomegranate``; 'n/a' where it is not
importable) is set up (:func:`pomegranate_model`) with
``Normal(means, covs, covariance_type)`` / ``Categorical(probs=(1, 50))``
per state and ``DenseHMM(dists, edges=transmat, starts=startprob,
ends=ones, max_iter=m)`` (probabilities: it stores their logarithms),
cast whole to float64 with ``.to(torch.float64)`` (its dtype is that of a
float32 placeholder parameter, so float64 tensors alone fail in its
forward pass; ``--pomegranate-dtype float32`` runs its float32 default),
``tol`` set to -inf after construction (its constructor rejects a negative
tol), X as a (sequences, steps, features) tensor.  Its model has end
states: the end probabilities are held at 1 (frozen), so the likelihood is
hmmlearn's, but its M-step divides the expected transitions out of a state
by counts that include the sequences ending there (transition rows sum to
a little less than 1), and it adds no covariance prior (hmmlearn's
``covars_prior=1e-2``): after one iteration from the same start the start
probabilities and means or emission probabilities agree with hmmlearn's to
rounding, the transition matrix to about 1 / (steps per sequence), the
covariances to about 1e-4.  Its forward and backward passes are Python
loops over frames batched over sequences, and its expected transition
counts materialise a (sequences, steps - 1, K, K) tensor (0.5 GB for
``diag``, 0.8 GB for ``categorical``).  It has a Viterbi
(``DenseHMM.viterbi``, the same batched loop over frames); its ``predict``
is the posterior argmax.
"""

import argparse
import os
import platform
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, replace

import numpy as np


@dataclass(frozen=True)
class Case:
    name: str
    family: str  # 'gaussian' or 'categorical'
    n_seq: int
    length: int
    k: int
    d: int = 1
    covariance_type: str = "diag"
    n_symbols: int = 0

    @property
    def n_frames(self):
        return self.n_seq * self.length

    def describe(self):
        what = (f"Gaussian {self.covariance_type}, d = {self.d}" if self.family == "gaussian"
                else f"categorical, {self.n_symbols} symbols")
        return f"{what}, K = {self.k}, {self.n_seq:,} x {self.length:,} steps"


CASES = {
    "diag": Case("diag", "gaussian", 1_000, 1_000, k=8, d=4, covariance_type="diag"),
    "long": Case("long", "gaussian", 1, 1_000_000, k=8, d=4, covariance_type="diag"),
    "full": Case("full", "gaussian", 100, 1_000, k=8, d=16, covariance_type="full"),
    "categorical": Case("categorical", "categorical", 1_000, 1_000, k=10, n_symbols=50),
}

PEERS = ("hmmlearn-scaling", "hmmlearn-log", "pomegranate")


def scaled(case, factor):
    """``case`` with ``factor`` times fewer sequences (fewer steps for a
    single sequence)."""
    if case.n_seq > 1:
        return replace(case, n_seq=max(1, case.n_seq // factor))
    return replace(case, length=max(2, case.length // factor))


# -- data --------------------------------------------------------------------

def true_model(case, random_state=0):
    """The HMM the data are drawn from."""
    rng = np.random.default_rng(random_state)
    K = case.k
    model = {"startprob": rng.dirichlet(np.ones(K)),
             "transmat": 0.8 * np.eye(K) + 0.2 * rng.dirichlet(np.ones(K), size=K)}
    if case.family == "categorical":
        model["emissionprob"] = rng.dirichlet(np.full(case.n_symbols, 0.5), size=K)
        return model
    model["means"] = rng.normal(0.0, 2.0, (K, case.d))
    if case.covariance_type == "diag":
        model["covars"] = rng.uniform(0.5, 1.5, (K, case.d))
    else:
        A = rng.normal(size=(K, case.d, case.d)) / np.sqrt(case.d)
        model["covars"] = A @ A.transpose(0, 2, 1) + 0.5 * np.eye(case.d)
    return model


def _inverse_cdf(cum, u):
    """Index of the first ``cum`` entry above ``u`` (a draw from the
    probabilities whose cumulative sums are ``cum``)."""
    return np.minimum(np.searchsorted(cum, u, side="right"), cum.shape[0] - 1)


def sample_states(startprob, transmat, n_seq, length, rng):
    """State paths ``(n_seq, length)`` of a Markov chain, vectorised: frame
    t's uniform draw u_t gives the map F_t(i) = the next state from i, and
    the path is s_t = F_t(F_{t-1}(... F_1(s_0))), the maps composed by a
    parallel prefix (Hillis-Steele) in log2(length) rounds of gathers."""
    K = startprob.shape[0]
    s0 = _inverse_cdf(np.cumsum(startprob), rng.random(n_seq))
    states = np.empty((n_seq, length), dtype=np.intp)
    states[:, 0] = s0
    if length == 1:
        return states
    cum = np.cumsum(transmat, axis=1)
    u = rng.random((n_seq, length - 1))
    G = np.empty((n_seq, length - 1, K), dtype=np.intp)
    for i in range(K):
        G[:, :, i] = _inverse_cdf(cum[i], u)
    off = 1
    while off < length - 1:
        # G[t] <- G[t] o G[t - off]: the map over frames t - 2 off + 1 .. t
        G[:, off:] = np.take_along_axis(G[:, off:], G[:, :-off], axis=2)
        off *= 2
    states[:, 1:] = np.take_along_axis(G, s0[:, None, None], axis=2)[:, :, 0]
    return states


def make_data(case, random_state=0):
    """``(X, lengths, true states)`` drawn from :func:`true_model`: X is
    ``(n_frames, d)`` float64, or ``(n_frames, 1)`` int64 symbols."""
    model = true_model(case, random_state)
    rng = np.random.default_rng(random_state + 1)
    states = sample_states(model["startprob"], model["transmat"], case.n_seq, case.length,
                           rng).ravel()
    n = states.shape[0]
    lengths = np.full(case.n_seq, case.length, dtype=np.int64)
    if case.family == "categorical":
        cum = np.cumsum(model["emissionprob"], axis=1)
        u = rng.random(n)
        X = np.empty((n, 1), dtype=np.int64)
        for k in range(case.k):
            idx = states == k
            X[idx, 0] = _inverse_cdf(cum[k], u[idx])
        return X, lengths, states
    z = rng.standard_normal((n, case.d))
    if case.covariance_type == "diag":
        X = model["means"][states] + z * np.sqrt(model["covars"])[states]
    else:
        X = np.empty((n, case.d))
        for k in range(case.k):
            idx = states == k
            X[idx] = model["means"][k] + z[idx] @ np.linalg.cholesky(model["covars"][k]).T
    return X, lengths, states


def starting_params(case, X, random_state=2):
    """The start every library gets: uniform start probabilities, a sticky
    transition matrix, means at K random frames and the data's
    (co)variance, or random (Dirichlet(5)) emission probabilities."""
    rng = np.random.default_rng(random_state)
    K = case.k
    start = {"startprob": np.full(K, 1.0 / K),
             "transmat": 0.5 * np.eye(K) + 0.5 / K}
    if case.family == "categorical":
        start["emissionprob"] = rng.dirichlet(np.full(case.n_symbols, 5.0), size=K)
        return start
    start["means"] = X[rng.choice(X.shape[0], K, replace=False)].copy()
    if case.covariance_type == "diag":
        start["covars"] = np.tile(X.var(axis=0), (K, 1))
    else:
        start["covars"] = np.tile(np.cov(X, rowvar=False), (K, 1, 1))
    return start


def head(case, X, lengths, n_frames=None):
    """A slice for the warm-up fits and the peers' time estimates: whole
    sequences (about 50,000 frames: enough sequences that a peer batching
    over them shows its per-sequence cost), or the single sequence's first
    20,000 frames."""
    if lengths.shape[0] > 1:
        n_frames = n_frames or 50_000
        n_seq = max(1, min(lengths.shape[0], n_frames // int(lengths[0])))
        return X[:int(lengths[:n_seq].sum())], lengths[:n_seq]
    m = min(X.shape[0], n_frames or 20_000)
    return X[:m], np.array([m], dtype=np.int64)


# -- the models ----------------------------------------------------------------

def _hmm_kwargs(case, n_iter):
    kw = {"n_components": case.k, "n_iter": n_iter, "tol": -np.inf, "init_params": "",
          "random_state": 0}
    if case.family == "categorical":
        kw["n_features"] = case.n_symbols
    else:
        kw["covariance_type"] = case.covariance_type
    return kw


def set_start(model, case, start):
    """Set ``start`` on an hmmlearn-style model (fastem's or hmmlearn's)."""
    model.startprob_ = start["startprob"].copy()
    model.transmat_ = start["transmat"].copy()
    if case.family == "categorical":
        model.emissionprob_ = start["emissionprob"].copy()
    else:
        model.means_ = start["means"].copy()
        model.covars_ = start["covars"].copy()
    return model


def fastem_model(case, start, n_iter):
    """The fastem model, unfitted, with ``start`` set (the only place that
    builds one)."""
    import fastem

    cls = fastem.CategoricalHMM if case.family == "categorical" else fastem.GaussianHMM
    return set_start(cls(**_hmm_kwargs(case, n_iter)), case, start)


def hmmlearn_model(case, start, n_iter, implementation="scaling"):
    from hmmlearn import hmm

    cls = hmm.CategoricalHMM if case.family == "categorical" else hmm.GaussianHMM
    return set_start(cls(implementation=implementation, **_hmm_kwargs(case, n_iter)),
                     case, start)


def last_loglik(model):
    """The log-likelihood of the last E-step of ``fit``."""
    return float(model.monitor_.history[-1])


def pomegranate_available():
    try:
        import pomegranate.hmm  # noqa: F401
    except Exception:  # noqa: BLE001 (not installed, or torch broken: n/a either way)
        return False
    return True


def pomegranate_model(case, start, n_iter, dtype="float64"):
    """pomegranate 1.x ``DenseHMM`` with ``start`` in ``dtype``, end
    probabilities frozen at 1 and exactly ``n_iter`` iterations."""
    import torch
    from pomegranate.distributions import Categorical, Normal
    from pomegranate.hmm import DenseHMM

    tdt = getattr(torch, dtype)
    if case.family == "categorical":
        dists = [Categorical(probs=torch.tensor(p[None, :], dtype=tdt))
                 for p in start["emissionprob"]]
    else:
        dists = [Normal(means=torch.tensor(m, dtype=tdt), covs=torch.tensor(c, dtype=tdt),
                        covariance_type=case.covariance_type)
                 for m, c in zip(start["means"], start["covars"])]
    model = DenseHMM(dists, edges=torch.tensor(start["transmat"], dtype=tdt),
                     starts=torch.tensor(start["startprob"], dtype=tdt),
                     ends=torch.ones(case.k, dtype=tdt), max_iter=n_iter, tol=0.0)
    # its statistics buffers and its dtype (that of its first parameter, a
    # float32 placeholder) follow the module's: cast it whole
    model = model.to(tdt)
    model.tol = float("-inf")  # the constructor checks tol >= 0; -inf: never stops early
    model.ends.frozen = True  # no end states: hmmlearn's likelihood
    return model


def pomegranate_data(case, X, lengths, dtype="float64"):
    """X as pomegranate's ``(sequences, length, features)`` tensor (the
    sequences here all have the same length)."""
    import torch

    n_seq, length = lengths.shape[0], int(lengths[0])
    if not (lengths == length).all():
        raise ValueError("pomegranate_data expects sequences of one length")
    X = X.reshape(n_seq, length, X.shape[1])
    if case.family != "categorical":
        X = X.astype(dtype, copy=False)
    return torch.from_numpy(np.ascontiguousarray(X))


def pomegranate_params(model, case):
    """pomegranate's fitted parameters, named as hmmlearn's."""
    import torch

    with torch.no_grad():
        out = {"startprob": torch.exp(model.starts).numpy().copy(),
               "transmat": torch.exp(model.edges).numpy().copy()}
        if case.family == "categorical":
            out["emissionprob"] = np.stack([d.probs[0].numpy() for d in model.distributions])
        else:
            out["means"] = np.stack([d.means.numpy() for d in model.distributions])
            out["covars"] = np.stack([d.covs.numpy() for d in model.distributions])
    return out


def hmm_params(model, case):
    out = {"startprob": model.startprob_, "transmat": model.transmat_}
    if case.family == "categorical":
        out["emissionprob"] = model.emissionprob_
    else:
        out["means"] = model.means_
        out["covars"] = model.covars_
    return out


def max_param_diff(a, b):
    """Largest absolute difference over the parameters, and where."""
    worst = (0.0, "")
    for key in a:
        x, y = np.asarray(a[key]), np.asarray(b[key])
        if x.ndim == 3 and y.ndim == 2:  # hmmlearn's diagonal covars_ read as matrices
            x = np.diagonal(x, axis1=1, axis2=2)
        diff = float(np.max(np.abs(x - y)))
        if not diff <= worst[0]:
            worst = (diff, key)
    return worst


# -- runners --------------------------------------------------------------------

class Runner:
    """``fit(X, lengths, m)`` -> the fitted model; time excludes building it."""

    def __init__(self, name, build, fit_data=None):
        self.name, self.build, self.fit_data = name, build, fit_data

    def timed_fit(self, X, lengths, m):
        model = self.build(m)
        data = self.fit_data(X, lengths) if self.fit_data else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            if data is not None:
                model.fit(data)
            else:
                model.fit(X, lengths)
            dt = time.perf_counter() - t0
        return model, dt


def runners(case, start, peers, pomegranate_dtype="float64"):
    out = [Runner("fastem", lambda m: fastem_model(case, start, m))]
    if "hmmlearn-scaling" in peers:
        out.append(Runner("hmmlearn-scaling", lambda m: hmmlearn_model(case, start, m)))
    if "hmmlearn-log" in peers:
        out.append(Runner("hmmlearn-log", lambda m: hmmlearn_model(case, start, m, "log")))
    if "pomegranate" in peers and pomegranate_available():
        out.append(Runner("pomegranate",
                          lambda m: pomegranate_model(case, start, m, pomegranate_dtype),
                          lambda X, lengths: pomegranate_data(case, X, lengths,
                                                              pomegranate_dtype)))
    return out


def compare(case, models, iters, rtol=1e-6):
    """fastem's log-likelihood after ``iters`` iterations against hmmlearn's
    (the models that ran ``iters`` iterations); a dict of findings."""
    out = {}
    ref = models.get("fastem")
    if ref is None:
        return out
    ll = last_loglik(ref)
    out["fastem_loglik"] = ll
    ok = True
    for name in ("hmmlearn-scaling", "hmmlearn-log"):
        if name in models and models[name].n_iter == iters:
            other = last_loglik(models[name])
            rel = abs(other - ll) / max(abs(ll), 1e-300)
            out[f"{name}_loglik"] = other
            out[f"{name}_rel"] = rel
            ok &= rel <= rtol
    out["loglik_ok"] = ok
    return out


def compare_pomegranate(case, start, Xh, lh, dtype="float64"):
    """pomegranate's parameters against hmmlearn's after one iteration on
    the slice ``Xh`` (untimed): ``{name: max abs difference}``.  From the
    same start the E-step is the same, so the start probabilities and the
    means or emission probabilities agree to rounding; the transition
    matrix differs by pomegranate's end-state normalisation and the
    covariances by hmmlearn's ``covars_prior``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hl = hmmlearn_model(case, start, 1).fit(Xh, lh)
        pg = pomegranate_model(case, start, 1, dtype)
        pg.fit(pomegranate_data(case, Xh, lh, dtype))
    a, b = hmm_params(hl, case), pomegranate_params(pg, case)
    return {key: max_param_diff({key: a[key]}, {key: b[key]})[0] for key in a}


# -- rate bound -----------------------------------------------------------------

_BOUND_KERNEL = None


def _bound_kernel():
    """3 K^2 multiply-adds per frame: ``acc[m] += x_t * a[m]`` over the
    3 K^2 entries of ``a`` (the forward and backward recursions' and the
    transition counts' K^2 each), a contiguous loop that vectorises, with
    independent accumulators (no latency chain); frames split into slots
    run on :func:`fastem._parallel.run_slots`'s threads."""
    global _BOUND_KERNEL
    if _BOUND_KERNEL is None:
        from numba import njit

        from fastem._kernels.sync import claim_slot, finish_slot

        @njit(fastmath={"contract"}, nogil=True)
        def kernel(v, a, n_frames, out, ctrl):
            M = a.shape[0]
            mask = v.shape[0] - 1
            n_slots = out.shape[0]
            per = (n_frames + n_slots - 1) // n_slots
            while True:
                s = claim_slot(ctrl)
                if s >= n_slots:
                    break
                acc = np.zeros(M)
                for t in range(s * per, min(n_frames, (s + 1) * per)):
                    x = v[t & mask]
                    for m in range(M):
                        acc[m] += x * a[m]
                out[s] = acc.sum()
                finish_slot(ctrl)

        _BOUND_KERNEL = kernel
    return _BOUND_KERNEL


def rate_bound(n_frames, k, threads, repeats=5):
    """Seconds of 3 K^2 multiply-adds per frame over ``n_frames`` frames on
    ``threads`` threads: the fastest of ``repeats`` (a bound: other load on
    the machine only slows it)."""
    import numba

    from fastem._parallel import run_slots

    kernel = _bound_kernel()
    rng = np.random.default_rng(0)
    v = rng.random(1024)  # a power of 2: frame t reads v[t & 1023]
    a = rng.random(3 * k * k) / k
    slots = 8 * threads if threads > 1 else 1
    out = np.zeros(slots)
    saved = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        run_slots(kernel, (v, a, min(n_frames, 4096), out), slots)  # compile
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            run_slots(kernel, (v, a, n_frames, out), slots)
            times.append(time.perf_counter() - t0)
    finally:
        numba.set_num_threads(saved)
    return min(times)


# -- the benchmark -----------------------------------------------------------

def plan_iterations(seconds_per_iter, iters, budget):
    """Iterations per fit for a peer whose iteration lasts about
    ``seconds_per_iter`` (an estimate): ``iters``, or fewer (at least one)
    where ``iters`` of them would clearly overrun ``budget`` (twice over)."""
    if seconds_per_iter * iters <= 2 * budget:
        return iters
    return max(1, int(2 * budget // seconds_per_iter))


#: Libraries also timed per iteration after the first: (fit of m iterations -
#: fit of 1) / (m - 1), without a fit's one-off costs (checks, allocations).
MARGINAL = ("fastem", "hmmlearn-scaling")


def bench_case(case, peers=PEERS, iters=3, repeats=3, threads=None, log=print, data=None,
               pomegranate_dtype="float64", budget=60.0):
    """Time per iteration of each library on ``case``: a dict of results.

    fastem always runs ``iters`` iterations x ``repeats`` fits.  A peer's
    fits last about ``budget`` seconds in all at most: its iterations per
    fit from the warm-up fits on the slice scaled to the case's frames
    (:func:`plan_iterations`), and no further fit once the next one (as
    long as its last) would overrun the budget.
    """
    import numba

    threads = threads or numba.get_num_threads()
    X, lengths, _ = data if data is not None else make_data(case)
    start = starting_params(case, X)
    rs = runners(case, start, peers, pomegranate_dtype)
    Xh, lh = head(case, X, lengths)
    n_iters = {}
    for r in rs:  # warm-up: compiling, first calls of torch and BLAS
        first = r.timed_fit(Xh, lh, 1)[1]
        if r.name == "fastem":
            n_iters[r.name] = iters
            continue
        est = min(first, r.timed_fit(Xh, lh, 1)[1]) * X.shape[0] / Xh.shape[0]
        n_iters[r.name] = plan_iterations(est, iters, budget)
        if n_iters[r.name] != iters:
            log(f"  {r.name}: about {est:.3g} s/iter, so {n_iters[r.name]} iteration(s) "
                f"per fit (budget {budget:g} s)")
    times = {r.name: [] for r in rs}
    marginal = {name: [] for name in MARGINAL}
    spent = {r.name: 0.0 for r in rs}
    models = {}
    for rep in range(repeats):
        for r in rs:
            if r.name != "fastem" and rep > 0 and spent[r.name] * (1 + 1 / rep) > budget:
                continue
            m = n_iters[r.name]
            models[r.name], dt = r.timed_fit(X, lengths, m)
            spent[r.name] += dt
            times[r.name].append(dt / m)
            extra = ""
            if r.name in MARGINAL and m > 1:  # an iteration without the fit's one-off costs
                dt1 = r.timed_fit(X, lengths, 1)[1]
                marginal[r.name].append((dt - dt1) / (m - 1))
                extra = f", {(dt - dt1) / (m - 1):.4g} s/iter after the first"
            log(f"  {case.name} repeat {rep + 1}: {r.name} {dt / m:.4g} s/iter{extra}")
    med = {name: statistics.median(t) for name, t in times.items()}
    marginal = {name: statistics.median(t) for name, t in marginal.items() if t}
    plans = {name: (n_iters[name], len(times[name])) for name in times}
    # the recursion parallelises over sequences: all threads, one for one sequence
    bound_threads = threads if case.n_seq > 1 else 1
    bound = rate_bound(case.n_frames, case.k, bound_threads)
    out = {"case": case, "seconds": med, "times": times, "plans": plans, "marginal": marginal,
           "bound_seconds": bound, "bound_threads": bound_threads}
    out.update(compare(case, models, iters))
    if "pomegranate" in models:
        out["pomegranate_diff"] = compare_pomegranate(case, start, Xh, lh, pomegranate_dtype)
    return out


def _fmt_s(s):
    return "n/a" if s is None else (f"{s:.3g}" if s < 100 else f"{s:.0f}")


def _ratio(a, b):
    return "n/a" if a is None or b is None else f"{a / b:.1f}x"


def _peer_cell(r, name):
    sec = r["seconds"].get(name)
    if sec is None:
        return "n/a"
    m, n_runs = r["plans"][name]
    if (m, n_runs) == r["plans"]["fastem"]:
        return _fmt_s(sec)
    return f"{_fmt_s(sec)} ({m} it x {n_runs})"


def _marginal_cell(marginal):
    fe, hl = marginal.get("fastem"), marginal.get("hmmlearn-scaling")
    if fe is None:
        return "n/a"
    return f"{_fmt_s(fe)}, {_fmt_s(hl)}, {_ratio(hl, fe)}"


def results_table(results):
    """The markdown table: seconds per iteration (median; a peer planned
    down to fewer iterations or runs says how many), ratios peer / fastem,
    fastem per observation against the rate bound."""
    head_ = ["case", "fastem s/iter", "hmmlearn scaling", "hmmlearn log", "pomegranate",
             "scaling / fastem", "log / fastem", "pomegranate / fastem",
             "fastem ns/obs/iter", "rate bound ns/obs (threads, GFLOP/s)", "fastem / bound",
             "after the first iteration: fastem, hmmlearn scaling, ratio"]
    rows = []
    for r in results:
        c, s = r["case"], r["seconds"]
        fe = s.get("fastem")
        per_obs = None if fe is None else fe / c.n_frames * 1e9
        bound = r["bound_seconds"] / c.n_frames * 1e9
        gflops = 6 * c.k * c.k / bound
        rows.append([f"{c.name}: {c.describe()}", _fmt_s(fe),
                     *(_peer_cell(r, p) for p in PEERS),
                     *(_ratio(s.get(p), fe) for p in PEERS),
                     "n/a" if per_obs is None else f"{per_obs:.1f}",
                     f"{bound:.2f} ({r['bound_threads']}, {gflops:.1f})",
                     "n/a" if per_obs is None else f"{per_obs / bound:.1f}x",
                     _marginal_cell(r.get("marginal", {}))])
    lines = ["| " + " | ".join(head_) + " |", "|" + "---|" * len(head_)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def checks_table(results):
    """The same work: fastem's log-likelihood after the timed fits against
    hmmlearn's, and pomegranate's parameters after one iteration on the
    warm-up slice against hmmlearn's."""
    head_ = ["case", "fastem log-likelihood", "hmmlearn scaling rel. diff",
             "hmmlearn log rel. diff", "same (1e-6)",
             ("pomegranate - hmmlearn, 1 iteration on the slice: E-step (start, "
              "means / emission probs); transmat; covars")]
    lines = ["| " + " | ".join(head_) + " |", "|" + "---|" * len(head_)]
    for r in results:
        pd = r.get("pomegranate_diff")
        if pd is None:
            pcell = "n/a"
        else:
            estep = max(v for key, v in pd.items() if key not in ("transmat", "covars"))
            pcell = f"{estep:.1e}; {pd['transmat']:.1e}"
            if "covars" in pd:
                pcell += f"; {pd['covars']:.1e}"
        lines.append("| " + " | ".join([
            r["case"].name,
            f"{r['fastem_loglik']:.10g}" if "fastem_loglik" in r else "n/a",
            f"{r['hmmlearn-scaling_rel']:.1e}" if "hmmlearn-scaling_rel" in r else "n/a",
            f"{r['hmmlearn-log_rel']:.1e}" if "hmmlearn-log_rel" in r else "n/a",
            ("yes" if r["loglik_ok"] else "NO") if "loglik_ok" in r else "n/a",
            pcell]) + " |")
    return "\n".join(lines)


def machine(threads):
    import numba

    lines = [f"machine: {platform.machine()} {platform.processor() or ''}".rstrip()
             + f", {os.cpu_count()} logical CPUs, "
             f"{len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else '?'} "
             f"usable; threads used: numba.get_num_threads() = {numba.get_num_threads()}, "
             f"BLAS and torch limited to {threads}"]
    try:
        with open("/proc/cpuinfo") as f:
            names = {line.split(":", 1)[1].strip() for line in f if line.startswith("model name")}
        if names:
            lines.append("cpu: " + ", ".join(sorted(names)))
    except OSError:
        pass
    versions = []
    for mod in ("fastem", "hmmlearn", "pomegranate", "torch", "numba", "numpy"):
        try:
            versions.append(f"{mod} {__import__(mod).__version__}")
        except Exception:  # noqa: BLE001
            versions.append(f"{mod} n/a")
    lines.append("versions: " + ", ".join(versions) + f", Python {platform.python_version()}")
    return "\n".join(lines)


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="10x smaller cases")
    p.add_argument("--cases", default=",".join(CASES),
                   help=f"comma-separated, from {','.join(CASES)} (default: all)")
    p.add_argument("--peers", default=",".join(PEERS),
                   help=f"comma-separated, from {','.join(PEERS)}, or 'none'")
    p.add_argument("--iters", type=int, default=3, help="Baum-Welch iterations per fit (3)")
    p.add_argument("--repeats", type=int, default=3, help="timed fits per library (3)")
    p.add_argument("--pomegranate-dtype", default="float64", choices=("float64", "float32"),
                   help="pomegranate's tensors (float64: the others' precision; float32: "
                        "its default for float32 input)")
    p.add_argument("--budget", type=float, default=60.0,
                   help="seconds of timed fits per peer and case, about (60): a slower "
                        "peer runs fewer repeats, then fewer iterations")
    p.add_argument("--threads", type=int, default=None,
                   help="threads (default: NUMBA_NUM_THREADS, all cores)")
    return p.parse_args(argv)


def main(argv=None):
    args = _parse(argv)
    if args.threads:
        for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                    "OPENBLAS_NUM_THREADS"):
            os.environ[var] = str(args.threads)
    import numba
    from threadpoolctl import threadpool_limits

    threads = args.threads or numba.config.NUMBA_NUM_THREADS
    numba.set_num_threads(threads)
    names = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in names if c not in CASES]
    if unknown:
        sys.exit(f"unknown case(s) {unknown}; choose from {list(CASES)}")
    peers = () if args.peers == "none" else tuple(p.strip() for p in args.peers.split(","))
    bad = [p for p in peers if p not in PEERS]
    if bad:
        sys.exit(f"unknown peer(s) {bad}; choose from {list(PEERS)}")
    if "pomegranate" in peers:
        if pomegranate_available():
            import torch

            torch.set_num_threads(threads)
        else:
            print("pomegranate is not importable: its column reads n/a")
    print(machine(threads))
    print(f"protocol: fit with n_iter={args.iters}, tol=-inf, from the same start; "
          f"seconds per iteration = fit time / {args.iters}; median of {args.repeats}")
    results = []
    t_all = time.perf_counter()
    with threadpool_limits(limits=threads, user_api="blas"):
        for name in names:
            case = scaled(CASES[name], 10) if args.quick else CASES[name]
            print(f"{case.name}: {case.describe()}", flush=True)
            results.append(bench_case(case, peers, args.iters, args.repeats, threads,
                                      pomegranate_dtype=args.pomegranate_dtype,
                                      budget=args.budget))
    print()
    print(results_table(results))
    print()
    print(checks_table(results))
    print(f"\ntotal {time.perf_counter() - t_all:.0f} s")
    if not all(r.get("loglik_ok", True) for r in results):
        print("fastem's log-likelihood differs from hmmlearn's: not the same work")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
