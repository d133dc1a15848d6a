"""Collapsed components: detection and recovery (``on_collapse='reseed'``).

A component collapses when its effective count (its share of the sample
weight) falls below :func:`min_count` -- d + 1 for full covariances, 2 for
diag and spherical, 1 for tied -- or when its covariance cannot be
factorised.  Recovery, in this order:

* a component with too small a count is **re-seeded**: its mean moves to a
  row the other components explain worst (drawn with the estimator's random
  state among the worst 5% of a sample of rows), its covariance becomes the
  per-feature variance of that sample, its weight 1/K;
* a component with a healthy count whose covariance is still not positive
  definite (the data themselves are degenerate there: collinear features,
  a constant feature at a large scale) gets a **ridge**: a multiple of the
  identity grown tenfold from max(reg_covar, 1e-9 x mean variance) until the
  factorisation succeeds; this needs ``reg_covar > 0``;
* with ``reg_covar == 0`` a covariance that cannot be factorised, or a
  re-seed budget spent, raises scikit-learn's error and advice.

Every action is recorded as ``(iteration, component, action)``.
"""

import numpy as np
from scipy import sparse

from ._data import sample_weighted_rows, take_rows
from ._estep import evaluate
from ._fitted import before_draw
from ._stats import (
    CollapseError,
    GaussianParams,
    collapse_message,
    factor_covariances,
    m_step_moments,
)


class CollapseWarning(UserWarning):
    """Components collapsed during a fit and were re-seeded or regularised."""


def min_count(covariance_type, n_features):
    """Smallest effective count a component needs for its covariance."""
    return {"full": n_features + 1, "diag": 2.0, "spherical": 2.0,
            "tied": 1.0}[covariance_type]


#: Smallest ridge relative to the mean variance: keeps the condition number of
#: a repaired covariance below ~1e9, so that it is positive definite by any
#: test, not only by the factorisation that just succeeded.
_RIDGE_RELATIVE = 1e-9
#: Smallest ratio of the diagonal of a repaired precision factor, min / max.
_MIN_DIAG_RATIO = 1e-6
#: Rows drawn to find the worst-explained points of a re-seed.
_RESEED_SAMPLE = 2048
#: Fraction of the sample, the worst explained, a new mean is drawn from.
_WORST_FRACTION = 0.05


class BaseRecovery:
    """What collapse recovery does whatever the family: its state (events,
    the re-seed budget), which components are starved, which rows re-seed
    them, and the weights after a re-seed.  A family's recovery adds its
    M-step and how a component restarts from a row."""

    def __init__(self, n_components, min_count, random_state, budget=None):
        self.K = n_components
        self.random_state = random_state
        self.min_count = min_count
        self.budget = 3 * n_components if budget is None else budget
        self.events = []

    @property
    def n_reseeds(self):
        return sum(1 for e in self.events if e[2] == "reseed")

    def starved(self, stats, count_scale=1.0):
        """Components whose effective count (S0 x ``count_scale``) is too small."""
        low = stats.S0 * count_scale < self.min_count
        return [int(k) for k in np.flatnonzero(low)] if low.any() else []

    def to_reseed(self, stats, count_scale):
        """The starved components to re-seed now: all but one if all starve,
        within what is left of the budget."""
        low = self.starved(stats, count_scale)
        reseed = low if len(low) < self.K else low[:-1]  # keep one component
        return reseed[: max(0, self.budget - self.n_reseeds)]

    def reseed_rows(self, comps, X, sample_weight, score_others):
        """``(Xs, chosen)``: a sample of rows of positive weight (float64) and,
        for each component of ``comps``, the index of its new row, drawn among
        the worst 5% of the sample by ``score_others(Xs)`` (the log-density
        under the other components; None: any row)."""
        rs = self.random_state
        before_draw(rs)  # a failing partial_fit puts the generator back
        idx = sample_weighted_rows(rs, X.shape[0], _RESEED_SAMPLE, sample_weight)
        if idx is None:
            idx = np.arange(X.shape[0])
        Xs = take_rows(X, idx)  # rows of positive weight, float64 (CSR stays CSR)
        Xs = Xs.astype(np.float64) if sparse.issparse(Xs) else \
            self._filled(np.asarray(Xs, dtype=np.float64))
        m = Xs.shape[0]
        score = np.zeros(m) if score_others is None else score_others(Xs)
        order = np.argsort(score, kind="stable")
        n_worst = max(len(comps), int(np.ceil(_WORST_FRACTION * m)))
        pool = order[:n_worst]
        chosen = rs.choice(pool, size=len(comps), replace=len(pool) < len(comps))
        return Xs, chosen

    def _filled(self, Xs):
        """The re-seed sample with its missing entries (missing='em') at
        their columns' observed means: the rows a component restarts from."""
        from ._missing import observed_mean_fill

        return observed_mean_fill(Xs)

    def reseeded_weights(self, weights, comps):
        """Weight 1/K for each re-seeded component, the others scaled down."""
        weights = weights.copy()
        new = np.zeros(self.K, dtype=bool)
        new[list(comps)] = True
        if new.all():
            weights[:] = 1.0 / self.K
        else:
            weights[new] = 1.0 / self.K
            weights[~new] *= (1.0 - new.sum() / self.K) / weights[~new].sum()
        return weights


class Recovery(BaseRecovery):
    """The Gaussian M-step with collapse recovery, and its state (events,
    ridges, the re-seed budget) for one EM run."""

    def __init__(self, covariance_type, n_components, n_features, reg_covar, dtype,
                 random_state, budget=None):
        super().__init__(n_components, min_count(covariance_type, n_features), random_state,
                         budget)
        self.ct = covariance_type
        self.d = n_features
        self.reg_covar = reg_covar
        self.dtype = dtype
        self.ridges = {}  # component (None: tied) -> extra ridge kept from then on

    def m_step(self, stats, iteration, X, sample_weight=None, count_scale=1.0):
        """Parameters from ``stats``; returns ``(params, reseeded)``.

        A re-seed draws rows of ``X`` (an array or a RowSource);
        ``count_scale`` converts S0 into effective counts (1 for batch EM)."""
        weights, means, cov = m_step_moments(stats, self.reg_covar)
        cov = self._apply_ridges(cov)
        prec, bad = self._factor(cov)
        reseed = self.to_reseed(stats, count_scale)
        reseeded = False
        if reseed:
            weights, means, cov, prec = self._reseed(weights, means, cov, prec, reseed, X,
                                                     sample_weight)
            for k in reseed:
                self.events.append((iteration, k, "reseed"))
            for k in reseed:
                self.ridges.pop(k, None)
            prec, bad = self._factor(cov)
            reseeded = True
        if bad:
            cov, prec = self._ridge(cov, prec, bad, iteration)
        return GaussianParams(weights, means, cov, prec), reseeded

    def repaired(self, cov, iteration):
        """``(cov, precisions_cholesky)``: the ridges set earlier applied,
        then a new ridge (recorded) on each covariance that cannot be
        factorised or is too ill-conditioned (another M-step's covariances,
        the variational mixture's)."""
        cov = self._apply_ridges(cov)
        prec, bad = self._factor(cov)
        if bad:
            cov, prec = self._ridge(cov, prec, bad, iteration)
        return cov, prec

    def _apply_ridges(self, cov):
        """Ridges set earlier stay (a fixed extra regularisation per component),
        so that EM keeps climbing one objective between recovery events."""
        if not self.ridges:
            return cov
        cov = cov.copy()
        for k, jitter in self.ridges.items():
            if k is None:
                cov += jitter * np.eye(self.d)
            elif np.ndim(cov[k]) == 2:
                cov[k] += jitter * np.eye(self.d)
            else:
                cov[k] += jitter
        return cov

    def _factor(self, cov):
        """Factors and the components to repair: not positive definite, or
        (full, tied) so ill-conditioned (diagonal ratio of the factor below
        1e-6, condition number above ~1e12) that other tests may disagree."""
        prec, bad = factor_covariances(cov, self.ct)
        if self.ct in ("full", "tied"):
            stack = prec[None] if self.ct == "tied" else prec
            diag = np.diagonal(stack, axis1=1, axis2=2)
            ill = np.isfinite(diag).all(axis=1) & (
                diag.min(axis=1) < _MIN_DIAG_RATIO * diag.max(axis=1))
            if ill.any():
                bad.extend(None if self.ct == "tied" else int(k) for k in np.flatnonzero(ill))
        if not bad:
            return prec, bad
        return prec, sorted(set(bad), key=lambda k: -1 if k is None else k)

    def _factor_one(self, c):
        """Factor of one covariance (tied: the shared one); None if it needs
        repair."""
        kind = "full" if self.ct == "tied" else self.ct
        p, bad = factor_covariances(np.asarray(c)[None], kind)
        if bad:
            return None
        if kind == "full":
            diag = np.diag(p[0])
            if diag.min() < _MIN_DIAG_RATIO * diag.max():
                return None
        return p[0]

    def _ridge(self, cov, prec, bad, iteration):
        if self.reg_covar <= 0:
            raise CollapseError(collapse_message(bad[0], self.ct, self.dtype))
        cov, prec = cov.copy(), prec.copy()
        for k in bad:
            c = cov if k is None else cov[k]
            eye = np.eye(self.d) if np.ndim(c) == 2 else 1.0
            # the size of the entries, however wrong (variances rounded below 0,
            # or covariances rounded far above them, when a component moved
            # far from its shift in one step)
            scale = float(np.max(np.abs(c)))
            jitter = self.reg_covar
            if np.isfinite(scale):
                jitter = max(jitter, _RIDGE_RELATIVE * abs(scale))
            for _ in range(40):
                trial = c + jitter * eye
                p = self._factor_one(trial)
                if p is not None:
                    break
                jitter *= 10.0
            else:
                raise CollapseError(collapse_message(k, self.ct, self.dtype))
            self.ridges[k] = self.ridges.get(k, 0.0) + jitter
            if k is None:
                cov, prec = trial, p
            else:
                cov[k], prec[k] = trial, p
            self.events.append((iteration, k, "ridge"))
        return cov, prec

    def _reseed(self, weights, means, cov, prec, comps, X, sample_weight):
        others = [k for k in range(self.K) if k not in comps]
        finite = (np.isfinite(prec).all() if self.ct == "tied"
                  else all(np.isfinite(prec[k]).all() for k in others))
        score_others = None
        if others and finite:
            wo = weights[others] / weights[others].sum()
            po = GaussianParams(wo, means[others], cov if self.ct == "tied" else cov[others],
                                prec if self.ct == "tied" else prec[others])

            def score_others(Xs):
                score = np.empty(Xs.shape[0])
                evaluate(Xs, po, self.ct, out_lognorm=score)
                return score

        Xs, chosen = self.reseed_rows(comps, X, sample_weight, score_others)
        var = Xs.var(axis=0) + self.reg_covar
        means, cov = means.copy(), cov.copy()
        for k, row in zip(comps, chosen):
            means[k] = Xs[row]
            if self.ct == "full":
                cov[k] = np.diag(var)
            elif self.ct == "diag":
                cov[k] = var
            elif self.ct == "spherical":
                cov[k] = var.mean()
        return self.reseeded_weights(weights, comps), means, cov, prec


def restated(stats, params, comps, reg_covar):
    """``stats`` with the entries of the re-seeded components ``comps``
    replaced by the statistics of ``1 / K`` of the current total weight drawn
    from their new parameters (about the same shift); the other components'
    entries are kept.

    Used by online EM after a re-seed: its running statistics, not only its
    parameters, must restart.  For 'tied' the pooled scatter gains the new
    component's share of the shared covariance, so that the within-component
    scatter stays what it was."""
    ct = stats.covariance_type
    S0, S1, S2 = stats.S0.copy(), stats.S1.copy(), stats.S2.copy()
    w = S0.sum() / len(S0)
    d = params.means.shape[1]
    for k in comps:
        delta = params.means[k] - stats.shift[k]
        if ct == "tied":
            # remove the old between-component term, add the new one's share
            old = np.outer(S1[k], S1[k]) / S0[k] if S0[k] > 0 else np.zeros((d, d))
            raw = params.covariances - reg_covar * np.eye(d)
            S2 = S2 - np.triu(old) + np.triu(w * (raw + np.outer(delta, delta)))
        elif ct == "full":
            S2[k] = w * (params.covariances[k] - reg_covar * np.eye(d) + np.outer(delta, delta))
        elif ct == "diag":
            S2[k] = w * (params.covariances[k] - reg_covar + delta**2)
        else:  # spherical
            S2[k] = w * (d * (params.covariances[k] - reg_covar) + delta @ delta)
        S0[k] = w
        S1[k] = w * delta
    return type(stats)(ct, stats.shift, S0, S1, S2, stats.loglik, stats.weight)
