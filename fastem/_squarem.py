"""SQUAREM acceleration of EM (``GaussianMixture(accelerate='squarem')``).

The SqS3 scheme of Varadhan & Roland (2008), "Simple and globally convergent
methods for accelerating the convergence of any EM algorithm", Scand. J.
Statist. 35: 335-353, with the step-length adaptation of the R package
``SQUAREM``, retuned: the bound on |alpha| starts at 1, doubles after a
successful step at the bound, and after a failed step becomes a quarter of
that step's length (see ``GROW`` and ``SHRINK``).

One cycle, from parameters theta0, with F one plain EM iteration (the E-step
through the fused kernel, the M-step of :func:`fastem._stats.m_step` or of
the collapse recovery), so that the fixed points are plain EM's:

    theta1 = F(theta0), theta2 = F(theta1)                   passes 1 and 2
    r = theta1 - theta0, v = (theta2 - theta1) - r
    alpha = -sqrt(r.r / v.v), clamped to [-step_max, -1]
    theta' = theta0 - 2 alpha r + alpha^2 v                  (alpha = -1: theta2)
    theta_new = F(theta')                                     pass 3, stabilising

The extrapolation is made on an unconstrained vector (:func:`pack`): the
log-ratios log(w_k / w_K), the means, and per covariance its lower Cholesky
factor L (Sigma = L L^T) with the diagonal stored as its log (diag: log
standard deviations, spherical: one per component).

Fallback to plain EM (the cycle ends at theta2, plain EM's second step):

* theta' is outside the valid set -- a non-finite entry, a weight that
  underflows, a covariance not above (1 - 1e-3) reg_covar times the identity
  (the M-step never makes one) or not positive definite -- or the
  stabilising M-step from it would need a collapse recovery;
* theta_new has a lower log-likelihood than theta1, or would starve a
  component.  The next cycle's first E-step computes that log-likelihood
  anyway (an E-step at theta gives the log-likelihood *of theta*); when the
  check fails, the cycle restarts from theta2 at the cost of one pass.  The
  check is made after the stabilising step, as Varadhan & Roland and the
  R package do: the extrapolated point itself is often worse than theta1
  while its EM step is much better (checking theta' rejected ~40% of the
  extrapolations on overlapping clusters; the median pass ratio on the
  test's data sets rose from 3.0 to 3.3 when the check moved).

So every cycle starts from a point whose log-likelihood is at least that of
the previous cycle's theta1: ``lower_bounds_`` (the log-likelihood at the
start of each cycle, as plain EM records it at the start of each iteration)
never decreases, and no unchecked extrapolation is ever returned (the last
allowed cycle is plain EM; a converged fit returns F of the cycle's start).

A cycle whose first or second pass triggers a collapse recovery (a re-seed or
a ridge) is finished as plain EM: no extrapolation across it.
"""

import math

import numpy as np

from ._stats import (
    CollapseError,
    GaussianParams,
    n_parameters,
    precisions_cholesky_from_covariances,
)

#: Initial bound on |alpha| (R package SQUAREM's ``step.max0 = 1``); its
#: growth after a successful step at the bound; its reduction after a failed
#: step: the bound becomes that step's length over SHRINK.  The package uses
#: ``mstep = 4`` for both and shrinks only after a failure at the bound; on
#: overlapping clusters (benchmarks/test_squarem.py, 200,000 rows) these
#: values saved ~10% of the passes in the median and half on the worst data
#: set: SqS3's step keeps growing along a curved path, failing again and
#: again below the bound.
STEP_MAX0 = 1.0
GROW = 2.0
SHRINK = 4.0
#: Covariances of an extrapolated point must exceed (1 - _FLOOR_SLACK) *
#: reg_covar * I: the M-step adds reg_covar to a positive semi-definite scatter.
_FLOOR_SLACK = 1e-3


class InvalidParameters(ValueError):
    """An extrapolated parameter vector outside the valid set."""


# --------------------------------------------------------------------------
# parameterisation
# --------------------------------------------------------------------------

def _tril(d):
    rows, cols = np.tril_indices(d)
    return rows, cols, rows == cols


def pack(params, covariance_type):
    """Unconstrained float64 vector of :class:`GaussianParams`:
    ``[log(w_k / w_K), k < K] + means.ravel() + covariance part`` where the
    covariance part is, per covariance, the lower triangle (row-major) of its
    Cholesky factor with the diagonal as log ('full': K factors, 'tied':
    one), the log standard deviations ('diag': K x d) or the log standard
    deviation per component ('spherical')."""
    ct = covariance_type
    w = np.asarray(params.weights, dtype=np.float64)
    means = np.asarray(params.means, dtype=np.float64)
    cov = np.asarray(params.covariances, dtype=np.float64)
    d = means.shape[1]
    logw = np.log(w[:-1]) - np.log(w[-1])
    if ct in ("full", "tied"):
        stack = cov[None] if ct == "tied" else cov
        L = np.linalg.cholesky(stack)
        rows, cols, diag = _tril(d)
        tri = L[:, rows, cols]
        tri[:, diag] = np.log(tri[:, diag])
        cpart = tri.ravel()
    else:  # diag (K, d), spherical (K,): log standard deviations
        cpart = 0.5 * np.log(cov).ravel()
    return np.concatenate([logw, means.ravel(), cpart])


def unpack(theta, covariance_type, n_components, n_features, reg_covar,
           dtype=np.float64):
    """:class:`GaussianParams` from a vector made like :func:`pack`'s.

    Covariances are rebuilt as L L^T and their precision Cholesky factors by
    :func:`fastem._stats.precisions_cholesky_from_covariances`.  Raises a
    ValueError (:class:`InvalidParameters`, :class:`fastem._stats.CollapseError`
    or ``numpy.linalg.LinAlgError``) when the point is not valid: a
    non-finite entry, a weight that underflows to 0, a covariance not above
    ``(1 - 1e-3) * reg_covar`` times the identity or not positive definite."""
    ct, K, d = covariance_type, n_components, n_features
    theta = np.asarray(theta, dtype=np.float64)
    if theta.shape != (n_parameters(K, ct, d),):
        raise ValueError(f"theta has shape {theta.shape}, expected ({n_parameters(K, ct, d)},)")
    if not np.isfinite(theta).all():
        raise InvalidParameters("non-finite parameter")
    logw = np.append(theta[:K - 1], 0.0)
    w = np.exp(logw - logw.max())
    w /= w.sum()
    if not (w > 0).all():
        raise InvalidParameters("a weight underflows to 0")
    means = theta[K - 1:K - 1 + K * d].reshape(K, d).copy()
    cpart = theta[K - 1 + K * d:]
    floor = (1.0 - _FLOOR_SLACK) * reg_covar
    with np.errstate(over="ignore", invalid="ignore"):
        if ct in ("full", "tied"):
            m = 1 if ct == "tied" else K
            rows, cols, diag = _tril(d)
            tri = cpart.reshape(m, -1).copy()
            tri[:, diag] = np.exp(tri[:, diag])
            L = np.zeros((m, d, d))
            L[:, rows, cols] = tri
            cov = L @ L.transpose(0, 2, 1)
            if not np.isfinite(cov).all():
                raise InvalidParameters("non-finite covariance")
            if floor > 0:  # LinAlgError (a ValueError) below the floor
                np.linalg.cholesky(cov - floor * np.eye(d))
            if ct == "tied":
                cov = cov[0]
        else:
            cov = np.exp(2.0 * cpart).reshape((K, d) if ct == "diag" else (K,))
            if not (np.isfinite(cov).all() and (cov > floor).all()):
                raise InvalidParameters("covariance not above reg_covar or not finite")
    prec = precisions_cholesky_from_covariances(cov, ct, dtype)
    return GaussianParams(w, means, cov, prec)


# --------------------------------------------------------------------------
# the EM map, the step and the loop
# --------------------------------------------------------------------------

class EMMap:
    """Plain EM's iteration F as its two halves, counting the passes over the
    data (E-steps) in ``n_calls``.

    ``estep(params)`` returns the statistics at ``params``,
    ``mstep(stats, iteration)`` returns ``(params, reseeded)``; ``recovery``
    is the :class:`fastem._collapse.Recovery` the M-step uses (None when
    collapses raise)."""

    def __init__(self, estep, mstep, recovery=None):
        self.estep = estep
        self.mstep = mstep
        self.recovery = recovery
        self.n_calls = 0

    def e(self, params):
        """``(stats, mean log-likelihood of params)``: one pass over the data."""
        self.n_calls += 1
        stats = self.estep(params)
        return stats, stats.loglik / stats.weight

    def starved(self, stats):
        """Whether the M-step from ``stats`` would re-seed a component."""
        return self.recovery is not None and bool(self.recovery.starved(stats))

    def m(self, stats, iteration, guard=False):
        """``(params, reseeded, recovered)``: the M-step, and whether it
        re-seeded or made any collapse recovery.

        With ``guard`` (the stabilising step from an extrapolated point) an
        M-step that would need a collapse recovery, or raise, is not made:
        ``params`` is None and the recovery's state is left unchanged."""
        rec = self.recovery
        n_events = len(rec.events) if rec is not None else 0
        if not guard:
            new, reseeded = self.mstep(stats, iteration)
            return new, reseeded, rec is not None and len(rec.events) > n_events
        if not (np.isfinite(stats.loglik) and np.isfinite(stats.S0).all()):
            return None, False, False
        if self.starved(stats):
            return None, False, False
        ridges = dict(rec.ridges) if hasattr(rec, "ridges") else None
        try:
            new, _ = self.mstep(stats, iteration)
        except CollapseError:
            new = None
        if rec is not None and (new is None or len(rec.events) > n_events):
            del rec.events[n_events:]  # a ridge for an extrapolated point: undone
            if ridges is not None:
                rec.ridges = ridges
            new = None
        return new, False, False


class GaussianSpace:
    """The Gaussian parameterisation SQUAREM extrapolates in (:func:`pack`,
    :func:`unpack`).  A family gives its own object with the same two
    methods: ``pack(params)`` -> unconstrained float64 vector, and
    ``unpack(theta)`` -> params, raising a ValueError for an invalid point."""

    def __init__(self, covariance_type, n_components, n_features, reg_covar,
                 dtype=np.float64):
        self.ct = covariance_type
        self.K = n_components
        self.d = n_features
        self.reg_covar = reg_covar
        self.dtype = dtype

    def pack(self, params):
        return pack(params, self.ct)

    def unpack(self, theta):
        return unpack(theta, self.ct, self.K, self.d, self.reg_covar, self.dtype)


class Squarem:
    """The SqS3 extrapolation with an adaptive bound on the step length, in
    the parameterisation ``space`` (a :class:`GaussianSpace` is built from
    ``(covariance_type, n_components, n_features, reg_covar, dtype)``)."""

    def __init__(self, space, n_components=None, n_features=None, reg_covar=None,
                 dtype=np.float64, step_max0=STEP_MAX0, grow=GROW, shrink=SHRINK):
        if isinstance(space, str):
            space = GaussianSpace(space, n_components, n_features, reg_covar, dtype)
        self.space = space
        self.step_max0 = step_max0
        self.grow = grow
        self.shrink = shrink
        self.step_max = step_max0

    def reset(self):
        self.step_max = self.step_max0

    def step_length(self, r, v):
        """SqS3: alpha = -sqrt(r.r / v.v), clamped to [-step_max, -1]."""
        rr, vv = float(r @ r), float(v @ v)
        if not (vv > 0 and math.isfinite(rr) and math.isfinite(vv)):
            return -1.0
        alpha = -math.sqrt(rr / vv)
        return max(min(alpha, -1.0), -self.step_max)

    def extrapolate(self, p0, p1, p2):
        """``(theta', alpha)`` from theta0, theta1 = F(theta0), theta2 =
        F(theta1); theta' is None when alpha = -1 (theta' would be theta2) or
        when it is not valid."""
        t0, t1, t2 = self.space.pack(p0), self.space.pack(p1), self.space.pack(p2)
        r = t1 - t0
        v = (t2 - t1) - r
        alpha = self.step_length(r, v)
        if alpha == -1.0:
            self.succeeded(alpha)
            return None, alpha
        theta = t0 - 2.0 * alpha * r + alpha * alpha * v
        try:
            return self.space.unpack(theta), alpha
        except ValueError:  # InvalidParameters, CollapseError, LinAlgError
            self.failed(alpha)
            return None, alpha

    def succeeded(self, alpha):
        """A step at the bound that worked: the bound grows."""
        if alpha == -self.step_max:
            self.step_max *= self.grow

    def failed(self, alpha):
        """A step that failed: the bound becomes its length over ``shrink``."""
        self.step_max = max(self.step_max0, min(self.step_max, -alpha) / self.shrink)


def run_squarem(em_map, params, space, max_iter, tol, lower_bound=-np.inf, on_cycle=None,
                **options):
    """Up to ``max_iter`` SQUAREM cycles from ``params`` (see the module
    docstring); stops when the change of the mean log-likelihood at the start
    of a cycle from the previous cycle's is below ``tol``.  ``lower_bound``
    is the value the first cycle is compared with (-inf, or the previous
    fit's with warm_start); ``on_cycle(n_iter, change)`` is called after each
    comparison.

    Returns ``(params, n_iter, history, converged, n_maps)``: ``history``
    holds the log-likelihood at the start of each cycle, ``n_maps`` the
    passes over the data (E-steps) made.  ``space`` is the parameterisation
    the extrapolation is made in (see :class:`GaussianSpace`)."""
    sq = Squarem(space, **options)
    calls0 = em_map.n_calls
    history = []
    n_iter = 0
    converged = False
    p0 = params
    pending = None  # (theta2, log-likelihood of theta1, alpha) while p0 = F(theta')
    for n_iter in range(1, max_iter + 1):
        prev = lower_bound
        stats, ll0 = em_map.e(p0)
        if pending is not None:
            fallback, floor, alpha = pending
            pending = None
            if ll0 >= floor and not em_map.starved(stats):
                sq.succeeded(alpha)
            else:  # lower log-likelihood, or a collapse ahead: plain EM's theta2
                sq.failed(alpha)
                p0 = fallback
                stats, ll0 = em_map.e(p0)
        p1, reseeded, recovered = em_map.m(stats, n_iter)
        lower_bound = ll0
        history.append(ll0)
        change = ll0 - prev
        if on_cycle is not None:
            on_cycle(n_iter, change)
        if reseeded:  # a new start: no convergence test, no step memory
            lower_bound = -np.inf
            sq.reset()
        elif abs(change) < tol:
            converged = True
            p0 = p1
            break
        stats, ll1 = em_map.e(p1)
        p2, reseeded2, recovered2 = em_map.m(stats, n_iter)
        if reseeded2:
            lower_bound = -np.inf
            sq.reset()
        if recovered or recovered2 or n_iter == max_iter:
            p0 = p2  # no extrapolation across a recovery, none left unchecked
            continue
        p_ext, alpha = sq.extrapolate(p0, p1, p2)
        p0 = p2
        if p_ext is None:
            continue
        stats, ll_ext = em_map.e(p_ext)
        p_new = em_map.m(stats, n_iter, guard=True)[0] if math.isfinite(ll_ext) else None
        if p_new is None:
            sq.failed(alpha)
            continue
        p0 = p_new  # F(theta'), checked by the next cycle's first E-step
        pending = (p2, ll1, alpha)
    return p0, n_iter, history, converged, em_map.n_calls - calls0
