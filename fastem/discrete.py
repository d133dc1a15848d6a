"""Mixtures of the linear discrete families on the shared EM driver
(:mod:`fastem._base`): ``BernoulliMixture``, ``BinomialMixture``,
``PoissonMixture`` and ``MultinomialMixture`` (no @njit here).

Each EM iteration is one call of the fused linear kernel
(:mod:`fastem._kernels.discrete`, ``x . a_k + b_k`` per block, dense or
CSR) and the family's closed-form M-step (:mod:`fastem.families.linear`).

Work in progress (issue 15): in-memory dense and CSR input, sample weights,
``n_init``, warm starts, SQUAREM and collapse re-seeding work; out-of-core
and Dask input, online EM, saving, ``select`` and the command line come next.
"""

from abc import ABCMeta, abstractmethod
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
from scipy import sparse
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._base import INIT_CHUNK, BaseMixture
from ._collapse import BaseRecovery
from ._dask import DaskSource, is_dask_collection
from ._data import RowSource, is_out_of_core
from ._discrete_missing import (
    MISSING_WORKSPACES,
    MissingDiscrete,
    checked_holes,
    expected_values,
    filled_for_start,
)
from ._estep import summed
from ._squarem import run_squarem
from ._stats import CollapseError
from ._validation import _check_shape, _plain_ndarray, check_array_2d, count_scale
from .families.linear import (
    Bernoulli,
    Binomial,
    LinearParams,
    LinearStats,
    Multinomial,
    Poisson,
)

#: A component needs at least this many effective rows, else it is re-seeded.
MIN_COUNT = 1.0


class DiscreteRecovery(BaseRecovery):
    """The discrete families' M-step with collapse re-seeding: a component
    with less than one effective row restarts half way between a row the
    others explain worst and the sample's mean."""

    def __init__(self, estimator, n_components, random_state):
        super().__init__(n_components, MIN_COUNT, random_state)
        self.estimator = estimator

    def _filled(self, Xs):  # categorical codes: a column's most frequent code
        return filled_for_start(Xs, self.estimator._family.name == "categorical")

    def m_step(self, stats, iteration, X, sample_weight=None, count_scale=1.0):
        est = self.estimator
        params = est._raw_m_step(stats)
        reseed = self.to_reseed(stats, count_scale)
        if not reseed:
            return est._defined(params), False
        others = [k for k in range(self.K) if k not in reseed]
        w = params.weights[others] / params.weights[others].sum()
        po = LinearParams(w, params.theta[others])

        def score_others(Xs):
            return est._log_density_rows(Xs, po)

        Xs, chosen = self.reseed_rows(reseed, X, sample_weight, score_others)
        theta = params.theta.copy()
        for k, row in zip(reseed, chosen):
            theta[k] = est._family.restart(Xs, row)
            self.events.append((iteration, k, "reseed"))
        weights = params.weights if est.fixed_weights else \
            self.reseeded_weights(params.weights, reseed)
        return est._defined(LinearParams(weights, theta)), True


class DiscreteSpace:
    """SQUAREM's coordinates for a discrete family: weight log-ratios and the
    family's unconstrained parameters (logits, log rates, log-ratios)."""

    def __init__(self, family, shape, fixed_weights):
        self.family, self.shape, self.fixed = family, shape, fixed_weights

    def pack(self, params):
        w = np.asarray(params.weights, dtype=np.float64)
        logw = np.log(w[:-1]) - np.log(w[-1])
        return np.concatenate([logw, self.family.theta_to_vector(params.theta)])

    def unpack(self, theta):
        K = self.shape[0]
        if not np.isfinite(theta).all():
            raise ValueError("non-finite parameter")
        logw = np.append(theta[:K - 1], 0.0)
        w = np.exp(logw - logw.max())
        w /= w.sum()
        if not (w > 0).all():
            raise ValueError("a weight underflows to 0")
        return LinearParams(w, self.family.theta_from_vector(theta[K - 1:], self.shape))


class _DiscreteMixture(BaseMixture, metaclass=ABCMeta):
    """What the discrete mixtures share; a subclass names its family (an
    object of :mod:`fastem.families`)."""

    _collapse_advice = "Fewer components may fit better"
    _label_noise = 0.3
    _parameter_constraints: ClassVar[dict] = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0.0, None, closed="left")],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "init_params": [StrOptions({"kmeans", "random", "random_from_data", "k-means++"})],
        "weights_init": ["array-like", None],
        "random_state": ["random_state"],
        "warm_start": ["boolean"],
        "verbose": ["verbose"],
        "verbose_interval": [Interval(Integral, 1, None, closed="left")],
        "on_collapse": [StrOptions({"reseed", "raise"})],
        "accelerate": [StrOptions({"squarem"}), None],
        "fixed_weights": ["boolean"],
        "alpha": [Interval(Real, 0.0, None, closed="left")],
        "missing": [StrOptions({"raise", "em"})],
    }

    @property
    @abstractmethod
    def _family(self):
        """The family (:mod:`fastem.families`) the subclass fits."""

    @property
    def _theta_attr(self):
        return self._family.theta_name + "_"

    @property
    def _theta_init(self):
        return getattr(self, self._family.theta_name + "_init")

    # -- data ------------------------------------------------------------

    def _validate_data(self, X, allow_nan=None):
        name = type(self).__name__
        if allow_nan is None:
            allow_nan = getattr(self, "missing", "raise") == "em"
        if not sparse.issparse(X) and (is_dask_collection(X) or is_out_of_core(X)
                                       or isinstance(X, RowSource)):
            return self._validate_source(X, bool(allow_nan))
        if sparse.issparse(X):
            if not self._family.accepts_sparse:
                raise ValueError(
                    f"{name} needs a dense array, but got a sparse {X.format} matrix of "
                    f"shape {X.shape}. Convert it with X.toarray().")
            X = X.tocsr()
            _check_shape(X.shape, "X")
            try:  # indices and row pointers, before anything reads by them
                X.check_format(full_check=True)
            except ValueError as exc:
                raise ValueError(f"The sparse matrix X is malformed ({exc}); rebuild it with "
                                 "scipy.sparse.csr_matrix((data, indices, indptr), "
                                 "shape=...).") from None
            if allow_nan and X.dtype.kind == "f" and np.isnan(X.data).any():
                raise ValueError(
                    f"{name} with missing='em' reads missing entries from dense arrays, but "
                    f"the sparse matrix X stores {int(np.isnan(X.data).sum())} NaN values. "
                    "Pass X.toarray() if it fits in memory, or drop the rows that hold them.")
            step = 1 << 20  # the checks' temporaries stay small next to X
            for p0 in range(0, X.data.shape[0], step):
                self._family.check_values(X.data[p0:p0 + step],
                                          lambda i, p0=p0: _csr_where(X, p0 + i))
            return X
        X = _plain_ndarray(X, "X", name)
        if X.dtype.kind not in "biuf":
            raise ValueError(
                f"{name} needs numeric data (bool, integers or floats), but got dtype "
                f"{X.dtype}. Encode the columns as numbers first.")
        _check_shape(X.shape, "X")
        where = lambda i: f"row {i // X.shape[1]}, column {i % X.shape[1]}"
        if allow_nan and X.dtype.kind == "f" and np.isnan(X).any():
            return checked_holes(self._family, X, where, strict=allow_nan != "impute")
        self._family.check_values(X, where)
        return self._family.codes(X)

    def _validate_source(self, X, allow_nan=False):
        """A dask array (a DaskSource: its values are checked by the first
        E-step's tasks, on the chunks) or out-of-core X (a RowSource, whose
        values are checked here, chunk by chunk: one pass)."""
        name = type(self).__name__
        source = check_array_2d(X, estimator_name=name, allow_nan=allow_nan) \
            if is_dask_collection(X) or is_out_of_core(X) else X
        source.allow_nan = bool(allow_nan)
        if isinstance(source, DaskSource) or source.validated:
            return source
        for i0, chunk in source.chunks():
            _check_chunk(self._family, chunk, i0, source.allow_nan)
        return source

    # -- parameters ------------------------------------------------------

    def _checked_inits(self, n_features, theta_given=True):
        k = self.n_components
        theta = None
        weights = self._checked_weights_init()
        if weights is None and self.fixed_weights:
            weights = np.full(k, 1.0 / k)
        if self.fixed_weights and (weights == 0).any():
            raise ValueError(
                f"With fixed_weights=True, component {int(np.flatnonzero(weights == 0)[0])} "
                f"has weight 0 in weights_init and could never be given any data. Give it "
                f"a positive weight, or use fewer components.")
        if theta_given and self._theta_init is not None:
            theta = np.asarray(self._theta_init, dtype=np.float64)
            name = self._family.theta_name + "_init"
            if theta.shape != (k, n_features) or not np.isfinite(theta).all():
                raise ValueError(
                    f"The parameter {name!r} should be a finite array of shape ({k}, "
                    f"{n_features}) (n_components, n_features), but got shape {theta.shape}.")
            self._family.check_theta(theta, f"The parameter {name!r}")
        return weights, theta

    def _params_from_inits(self, inits):
        weights, theta = inits
        if weights is None or theta is None:
            return None
        return LinearParams(weights.copy(), theta.copy())

    def _with_inits(self, params, inits):
        weights, theta = inits
        return LinearParams(params.weights if weights is None else weights.copy(),
                            params.theta if theta is None else theta.copy())

    def _fixed(self):
        """The weights that stay, with ``fixed_weights`` (else None)."""
        if not self.fixed_weights:
            return None
        if self.weights_init is not None:
            return np.asarray(self.weights_init, dtype=np.float64)
        return np.full(self.n_components, 1.0 / self.n_components)

    def _get_params_tuple(self):
        return LinearParams(self.weights_, getattr(self, self._theta_attr))

    def _set_params_tuple(self, params):
        self.weights_ = np.asarray(params.weights, dtype=np.float64)
        setattr(self, self._theta_attr, np.asarray(params.theta, dtype=np.float64))

    def _check_loaded(self):
        """Raise a ValueError naming what is wrong when the fitted arrays
        (e.g. of a loaded file) disagree with each other, the parameters or
        the family's domain; used by :func:`fastem.load`."""
        k, d = self.n_components, self.n_features_in_
        self._check_weights_loaded()
        theta = np.asarray(getattr(self, self._theta_attr))
        name = self._theta_attr
        if theta.shape != (k, d) or theta.dtype != np.float64 or not np.isfinite(theta).all():
            raise ValueError(f"{name} should be a finite float64 array of shape ({k}, {d}) "
                             f"(n_components, n_features_in_), but has shape {theta.shape}.")
        self._family.check_theta(theta, name)

    def _check_weights_loaded(self):
        k = self.n_components
        w = np.asarray(self.weights_)
        if w.shape != (k,) or w.dtype != np.float64 or not np.isfinite(w).all() \
                or (w < 0).any() or not np.isclose(w.sum(), 1.0, rtol=0, atol=1e-6):
            raise ValueError(f"weights_ should be {k} finite non-negative float64 weights "
                             f"summing to 1 (n_components={k}), but has shape {w.shape}.")
        if self.fixed_weights and self.weights_init is None and \
                not np.allclose(w, 1.0 / k, rtol=0, atol=1e-12):
            raise ValueError("weights_ should be uniform: the model has fixed_weights=True "
                             "and no weights_init.")

    def _n_parameters(self):
        k, d = self.n_components, self.n_features_in_
        return self._family.n_free_theta(k, d) + (0 if self.fixed_weights else k - 1)

    # -- the E-step and M-step -------------------------------------------

    def _make_workspace(self, n_features, n_rows):
        return self._family.workspace(self.n_components, n_features, n_rows)

    def _row_constant_total(self, workspace, X, sw):
        """``sum_i w_i h(x_i)``, computed once per workspace (per fit)."""
        key = (id(X), id(sw))
        cache = workspace.__dict__.setdefault("_h_total", {})
        if key not in cache:
            h = _row_constants(self._family, X)
            cache.clear()
            cache[key] = float(h.sum() if sw is None else sw @ h)
        return cache[key]

    def impute(self, X):
        """X with each missing entry (NaN) replaced by its expectation given
        the row's observed entries under the fitted mixture: ``sum_k r_ik
        E[x_j | k]`` (a probability, ``n_trials`` times a probability, a
        rate); for categorical codes the most probable category,
        ``argmax_c sum_k r_ik p_kjc``.  Observed entries are returned
        unchanged.  Works whatever ``missing`` the model was fitted with; a
        row with nothing observed gets the expectation under the weights.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), NaN where missing

        Returns
        -------
        X_filled : ndarray of shape (n_samples, n_features), float64
        """
        check_is_fitted(self)
        X = self._check_X(X, reset=False, nan=True)
        holes = self._missing_workspace(X)
        if holes is None:
            return np.array(X.toarray() if sparse.issparse(X) else X, dtype=np.float64)
        resp = np.empty((X.shape[0], self.n_components))
        params = self._get_params_tuple()
        holes.run(None, params, do_stats=False, out_resp=resp)
        return expected_values(self._family, X, resp, params.theta)

    def _workspace(self, X):
        holes = self._missing_workspace(X)
        return holes if holes is not None else super()._workspace(X)

    def _missing_workspace(self, X):
        """A :class:`fastem._discrete_missing.MissingDiscrete` for an X with
        NaN entries (validated with ``missing='em'`` or by ``impute``), else
        None."""
        if isinstance(X, np.ndarray) and X.dtype.kind == "f" and np.isnan(X).any():
            return MissingDiscrete(self._family, X, self.n_components)
        return None

    def _estep(self, workspace, X, sw, params, cache=True):
        """``cache``: X and sw are the same every call (batch EM), so their
        row-constant total is computed once per workspace."""
        if isinstance(workspace, MISSING_WORKSPACES):
            stats = workspace.run(sw, params)
            stats.loglik += self._row_constant_total(workspace, workspace.X0, sw)
            return stats
        A, b = self._family.natural(params)
        if isinstance(X, DaskSource):  # on the chunks, where they are
            check = not X.validated
            vec = X.reduce(_block_estep, (self._family, A, b, True, check, X.allow_nan, params),
                           sw, check)
            return LinearStats.from_vector(vec, *A.shape, observed=X.allow_nan)
        if isinstance(X, RowSource) and X.allow_nan:  # chunk by chunk, NaN skipped
            return self._chunked(X, sw, params, True)
        S0, S1, ll, w = workspace.run(X, sw, A, b)
        if cache:
            h = self._row_constant_total(workspace, X, sw)
        else:
            h = _row_constants(self._family, X)
            h = float(h.sum() if sw is None else sw @ h)
        return LinearStats(S0, S1, ll + h, w)

    def _chunked(self, X, sw, params, do_stats, **outputs):
        """The E-step of out-of-core X with missing entries, a chunk at a
        time (a chunk with NaN through the missing-data workspace);
        log-likelihoods include h(x).  Per-row outputs are filled."""
        total = None
        for i0, chunk in X.chunks():
            rows = slice(i0, i0 + chunk.shape[0])
            swc = None if sw is None else sw[rows]
            outs = {k: v[rows] for k, v in outputs.items() if v is not None}
            total = summed(total, _chunk_estep(self._family, chunk, swc, params, do_stats, outs))
        return total

    def _plain_m_step(self, stats, X):
        return self._defined(self._raw_m_step(stats))

    def _raw_m_step(self, stats):
        """The family's M-step; a component without data (S0 = 0, alpha = 0)
        has NaN parameters (0 / 0), which collapse recovery replaces."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self._family.m_step(stats.S0, stats.S1, self.alpha, self._fixed(),
                                       stats.observed)

    def _defined(self, params):
        """``params``, or a CollapseError naming a component without data."""
        if not np.isfinite(params.theta).all():  # 0 / 0: a component without data
            k = int(np.flatnonzero(~np.isfinite(params.theta).all(axis=1))[0])
            raise CollapseError(
                f"Fitting the mixture failed: component {k} lost all its data (its expected "
                f"count is 0, so its parameters are undefined). Use fewer components, "
                f"alpha > 0, or on_collapse='reseed'.")
        return params

    def _recovery(self, X, random_state):
        return DiscreteRecovery(self, self.n_components, random_state)

    def _resp_statistics(self, Xs):
        K = self.n_components
        ws = self._family.workspace(K, Xs.shape[1], min(Xs.shape[0], INIT_CHUNK))
        # unused with given responsibilities
        A, b = np.zeros((K, self._family.theta_cols(Xs.shape[1]))), np.zeros(K)

        holes = not sparse.issparse(Xs) and Xs.dtype.kind == "f" and np.isnan(Xs).any()
        if not holes:
            def statistics(Xc, swc, resp):
                return LinearStats(*ws.run(Xc, swc, A, b, resp_in=resp))

            return statistics
        # missing='em': the start reads the sample filled with its columns' means
        # (categorical: modes), and each component gets one pseudo-row of the
        # sample's mean, so that a start from single rows (k-means++,
        # random_from_data) has no probability at its bounds beside a filled
        # column at its mean (EM could not leave such a start)
        categorical = self._family.name == "categorical"
        filled = self._family.codes(filled_for_start(Xs, categorical))
        prior = self._family.kmeans_input(filled).mean(axis=0) if categorical else \
            np.nanmean(Xs, axis=0)
        first = [True]

        def statistics(Xc, swc, resp):
            stats = LinearStats(*ws.run(self._family.codes(
                filled_for_start(Xc, categorical)), swc, A, b, resp_in=resp))
            if first[0]:
                first[0] = False
                stats.S0 = stats.S0 + 1.0
                stats.S1 = stats.S1 + prior[None, :]
            return stats

        return statistics

    def _kmeans_input(self, Xs):
        if not sparse.issparse(Xs) and Xs.dtype.kind == "f" and np.isnan(Xs).any():
            Xs = self._family.codes(filled_for_start(Xs, self._family.name == "categorical"))
        return self._family.kmeans_input(Xs)

    def _kmeans_labels(self, Xs, k, random_state, sws):
        if not sparse.issparse(Xs):
            return super()._kmeans_labels(Xs, k, random_state, sws)
        # a CSR sample (text): scikit-learn's sparse k-means, never densified
        from sklearn.cluster import KMeans

        seed = random_state.randint(np.iinfo(np.int32).max)
        return KMeans(k, n_init=1, random_state=seed).fit(
            Xs.astype(np.float64), sample_weight=sws).labels_

    def _kmeans_seeds(self, Xs, k, random_state, sws):
        if not sparse.issparse(Xs):
            return super()._kmeans_seeds(Xs, k, random_state, sws)
        from sklearn.cluster import kmeans_plusplus

        seed = random_state.randint(np.iinfo(np.int32).max)
        return kmeans_plusplus(Xs.astype(np.float64), k, sample_weight=sws,
                               random_state=seed)[1]

    def _init_m_step(self, stats, X, sw, recovery, sws):
        if (stats.S0 > 0).all() or recovery is None:
            return self._plain_m_step(stats, X)
        # a start with an empty component (an empty k-means cluster): re-seeded
        return self._m_step(stats, X, sw, recovery, 0, count_scale(sws))[0]

    def _run_squarem(self, em_map, params, X, lower_bound, on_iteration):
        space = DiscreteSpace(self._family, params.theta.shape, self.fixed_weights)
        return run_squarem(em_map, params, space, self.max_iter, self.tol, lower_bound,
                           on_iteration)

    # -- per-row outputs ---------------------------------------------------

    def _evaluate(self, X, params, sw=None, **outputs):
        """Per-row outputs and ``(loglik, weight)`` without h(x)."""
        holes = self._missing_workspace(X)
        if holes is not None:
            return holes.run(sw, params, do_stats=False, **outputs)
        if isinstance(X, RowSource) and X.allow_nan:
            ll, w = self._chunked(X, sw, params, False, **outputs)
            h = _row_constants(self._family, X)
            return ll - float(h.sum() if sw is None else sw @ h), w
        n = X.chunk_rows if isinstance(X, RowSource) else X.shape[0]
        ws = self._family.workspace(len(params.weights), X.shape[1], n)
        A, b = self._family.natural(params)
        return ws.run(X, sw, A, b, do_stats=False, **outputs)

    def _log_density_rows(self, X, params):
        out = np.empty(X.shape[0])
        self._evaluate(X, params, out_lognorm=out)
        return out + _row_constants(self._family, X)

    def _rows(self, X, kind):
        params = self._get_params_tuple()
        if isinstance(X, DaskSource):  # lazy, per chunk
            A, b = self._family.natural(params)
            return X.map_rows_with(_block_rows, (self._family, A, b, X.allow_nan, params),
                                   kind, len(b))
        if kind == "lognorm":
            return self._log_density_rows(X, params)
        n, K = X.shape[0], self.n_components
        out = np.empty((n, K)) if kind == "resp" else np.empty(n, dtype=np.int64)
        self._evaluate(X, params, **{"out_" + kind: out})
        return out

    def _loglik(self, X, sw):
        if isinstance(X, DaskSource):
            A, b = self._family.natural(self._get_params_tuple())
            check = not X.validated
            ll, w = X.reduce(_block_estep, (self._family, A, b, False, check, X.allow_nan,
                                            self._get_params_tuple()), sw, check)
            return float(ll), float(w)
        ll, w = self._evaluate(X, self._get_params_tuple(), sw)
        h = _row_constants(self._family, X)
        return ll + float(h.sum() if sw is None else sw @ h), w

    def _sample_components(self, rng, counts):
        theta = getattr(self, self._theta_attr)
        options = self._sample_options()
        return np.vstack([self._family.sample(theta[k], int(c), rng, **options)
                          for k, c in enumerate(counts)])

    def _sample_options(self):
        """What the family's ``sample`` needs besides the parameters."""
        return {}


def _row_constants(family, X):
    """``h(x_i)`` per row (over the observed entries); out-of-core X chunk by
    chunk."""
    if not isinstance(X, RowSource):
        if isinstance(X, np.ndarray) and X.dtype.kind == "f" and np.isnan(X).any():
            X = np.where(np.isnan(X), 0.0, X)  # h of a skipped entry: that of 0, 0
        return family.row_constant(X)
    return np.concatenate([_row_constants(family, c) for _, c in X.chunks()]
                          or [np.zeros(0)])


def _check_chunk(family, chunk, offset, allow_nan):
    """The family's check of a chunk (rows ``offset ...``); with
    ``allow_nan`` a NaN is a missing entry, and a row without any value an
    error."""
    d = chunk.shape[1]

    def where(i):
        return f"row {offset + i // d}, column {i % d}"

    if allow_nan and chunk.dtype.kind == "f" and np.isnan(chunk).any():
        checked_holes(family, chunk, where, strict=False)
        rows = np.flatnonzero(np.isnan(chunk).all(axis=1))
        if rows.size:
            from ._missing import all_missing_message

            raise ValueError(all_missing_message(rows + offset))
    else:
        family.check_values(chunk, where)


def _chunk_estep(family, chunk, sw, params, do_stats, outputs):
    """One chunk's E-step: :class:`LinearStats` (with the observed weights
    when the chunk has NaN) or ``(loglik, weight)``, h(x) included."""
    K = len(params.weights)
    if chunk.dtype.kind == "f" and np.isnan(chunk).any():
        out = MissingDiscrete(family, chunk, K).run(sw, params, do_stats=do_stats, **outputs)
    else:
        A, b = family.natural(params)
        out = family.workspace(K, chunk.shape[1], chunk.shape[0]).run(
            family.codes(chunk), sw, A, b, do_stats=do_stats, **outputs)
        if do_stats:
            out = LinearStats(*out)
    h = _row_constants(family, chunk)
    h = float(h.sum() if sw is None else np.asarray(sw) @ h)
    if do_stats:
        out.loglik += h
        return out
    return out[0] + h, out[1]


def _block_estep(block, weights, offset, payload):
    """A Dask chunk task: the chunk's ``[S0, S1, loglik, weight]`` (with
    ``allow_nan``, missing='em': ``[S0, S1, observed, loglik, weight]``; or
    ``[loglik, weight]``) as one vector, with h(x) in the log-likelihood;
    with ``check`` the chunk's values are checked first (a ValueError
    naming the row and column)."""
    from ._estep import one_thread

    family, _, _, do_stats, check, allow_nan, params = payload
    block = np.asarray(block)
    if check:
        _check_chunk(family, block, offset, allow_nan)
    with one_thread():
        out = _chunk_estep(family, block, weights, params, do_stats, {})
    if do_stats:
        return out.to_vector(observed=allow_nan), None
    return np.array(out), None


def _block_rows(block, kind, payload, block_info=None):
    """A Dask chunk task: per-row 'label', 'lognorm' or 'resp'."""
    from ._estep import one_thread

    family, A, _, allow_nan, params = payload
    block = np.asarray(block)
    n = block.shape[0]
    offset = block_info[0]["array-location"][0][0] if block_info else 0
    _check_chunk(family, block, offset, allow_nan)
    K = A.shape[0]
    out = np.empty((n, K)) if kind == "resp" else np.empty(n, dtype=np.int64 if kind == "label"
                                                           else np.float64)
    with one_thread():
        _chunk_estep(family, block, None, params, False, {"out_" + kind: out})
    return out + _row_constants(family, block) if kind == "lognorm" else out


def _csr_where(X, i):
    row = int(np.searchsorted(X.indptr, i, side="right")) - 1
    return f"row {row}, column {int(X.indices[i])}"


_KD = "array-like of shape (n_components, n_features)"

_COMMON_DOC = """
    Parameters
    ----------
    n_components : int, default=1
        The number of mixture components (latent classes).
    tol : float, default=1e-3
        EM stops when the mean log-likelihood per row changes by less than
        ``tol`` between two iterations (0: run all ``max_iter`` iterations).
    max_iter : int, default=100
        The number of EM iterations to perform.
    n_init : int, default=1
        The number of initialisations; the best result is kept.
    init_params : {{'kmeans', 'k-means++', 'random', 'random_from_data'}}, default='kmeans'
        How the start is made, on a random sample of max(4096, 256 *
        n_components) rows: 'kmeans' from k-means labels (on one-hot codes for
        categorical data) blended with random responsibilities (0.7 / 0.3,
        so that restarts explore other optima); 'k-means++' from k-means++
        seed rows; 'random' from random responsibilities; 'random_from_data'
        from randomly chosen rows.
    weights_init : array-like of shape (n_components,), default=None
        User-provided initial weights.
    {theta}_init : {theta_shape}, default=None
        User-provided initial {theta}.
    random_state : int, RandomState instance or None, default=None
        Seed for the initialisation, collapse re-seeding and :meth:`sample`.
    warm_start : bool, default=False
        Start each ``fit`` from the previous solution (``n_init`` is then
        ignored after the first fit).
    verbose : int, default=0
        1 prints each initialisation and iteration; 2 adds timings and the
        change of the log-likelihood.
    verbose_interval : int, default=10
        Iterations between two messages.
    on_collapse : {{'reseed', 'raise'}}, default='reseed'
        What to do when a component is starved (less than one effective row):
        'reseed' restarts it half way between a row the others explain worst
        and the sample's mean, records it in ``collapse_events_`` and warns
        once (:class:`fastem.CollapseWarning`); 'raise' raises when a
        component has no data at all.
    accelerate : {{'squarem'}} or None, default=None
        'squarem' accelerates EM with SQUAREM (docs/squarem.md), extrapolating
        in unconstrained coordinates (logits, log rates, log-ratios).
    fixed_weights : bool, default=False
        Keep the weights at ``weights_init`` (or uniform); never re-estimate
        them (they are then not counted as free parameters).
    alpha : float, default=0.0
        Symmetric pseudo-count added to the parameter statistics (0: maximum
        likelihood); probabilities stay inside [1e-10, 1 - 1e-10] and rates
        above 1e-10 in any case.  The weights are never smoothed.
    missing : {{'raise', 'em'}}, default='raise'
        NaN entries of X.  'raise' refuses them.  'em' takes them as missing
        at random: a missing entry is skipped in its row's density, and each
        column's parameters are estimated from the rows where it is observed
        (``docs/missing.md``); ``score_samples``, ``predict`` and the
        criteria use the observed entries.  A row with every value missing,
        or a column never observed, is an error.  Multinomial rows are
        taken given the total of their observed counts.
{extra}
    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
    {theta}_ : {theta_shape}
    converged_ : bool
    n_iter_ : int
    n_em_maps_ : int
        E+M passes over the data (up to 3 per SQUAREM cycle).
    lower_bound_ : float
        Mean log-likelihood per row (weighted mean with ``sample_weight``) at
        the start of the last iteration of the best initialisation.
    lower_bounds_ : list of float
    n_reseeds_ : int
    collapse_events_ : list of (iteration, component, action)
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
"""


def _store(self, params):
    """Store the constructor's arguments (``locals()``) as attributes of the
    same names, scikit-learn's rule for ``__init__``."""
    for name, value in params.items():
        if name not in ("self", "__class__"):
            setattr(self, name, value)


class BernoulliMixture(_DiscreteMixture):
    __doc__ = ("Mixture of independent Bernoulli variables (latent class analysis of "
               "binary items), fitted by EM.\n" + _COMMON_DOC.format(theta="probabilities", theta_shape=_KD, extra=""))

    _parameter_constraints: ClassVar[dict] = {**_DiscreteMixture._parameter_constraints,
                              "probabilities_init": ["array-like", None]}

    def __init__(self, n_components=1, *, tol=1e-3, max_iter=100, n_init=1,
                 init_params="kmeans", weights_init=None, probabilities_init=None,
                 random_state=None, warm_start=False, verbose=0, verbose_interval=10,
                 on_collapse="reseed", accelerate=None, fixed_weights=False, alpha=0.0,
                 missing="raise"):
        _store(self, locals())

    _family = Bernoulli()


class BinomialMixture(_DiscreteMixture):
    __doc__ = ("Mixture of independent binomial counts (``n_trials`` per column), "
               "fitted by EM.\n" + _COMMON_DOC.format(
                   theta="probabilities", theta_shape=_KD, extra=(
                       "    n_trials : int or array-like of shape (n_features,), default=1\n"
                       "        Trials per cell: one for every column, or one per column;\n"
                       "        X holds successes 0 .. n_trials.\n")))

    _parameter_constraints: ClassVar[dict] = {**_DiscreteMixture._parameter_constraints,
                              "probabilities_init": ["array-like", None],
                              "n_trials": [Interval(Integral, 1, None, closed="left"),
                                           "array-like"]}

    def __init__(self, n_components=1, *, n_trials=1, tol=1e-3, max_iter=100, n_init=1,
                 init_params="kmeans", weights_init=None, probabilities_init=None,
                 random_state=None, warm_start=False, verbose=0, verbose_interval=10,
                 on_collapse="reseed", accelerate=None, fixed_weights=False, alpha=0.0,
                 missing="raise"):
        _store(self, locals())

    @property
    def _family(self):
        m = np.asarray(self.n_trials)
        if m.dtype.kind not in "iuf" or m.ndim > 1 or (m < 1).any() or (m != np.floor(m)).any():
            raise ValueError(f"n_trials should be a whole number >= 1, or one per column, "
                             f"but got {self.n_trials!r}.")
        if m.ndim == 1 and hasattr(self, "n_features_in_") and m.shape[0] != self.n_features_in_:
            raise ValueError(f"n_trials has {m.shape[0]} values but X has "
                             f"{self.n_features_in_} columns: pass one per column or one int.")
        return Binomial(m)


class PoissonMixture(_DiscreteMixture):
    __doc__ = ("Mixture of independent Poisson counts, fitted by EM.\n"
               + _COMMON_DOC.format(theta="rates", theta_shape=_KD, extra=""))

    _parameter_constraints: ClassVar[dict] = {**_DiscreteMixture._parameter_constraints,
                              "rates_init": ["array-like", None]}

    def __init__(self, n_components=1, *, tol=1e-3, max_iter=100, n_init=1,
                 init_params="kmeans", weights_init=None, rates_init=None,
                 random_state=None, warm_start=False, verbose=0, verbose_interval=10,
                 on_collapse="reseed", accelerate=None, fixed_weights=False, alpha=0.0,
                 missing="raise"):
        _store(self, locals())

    _family = Poisson()


class MultinomialMixture(_DiscreteMixture):
    __doc__ = ("Mixture of multinomial count vectors (bag of words), fitted by EM.\n"
               + _COMMON_DOC.format(theta="probabilities", theta_shape=_KD, extra=""))

    _parameter_constraints: ClassVar[dict] = {**_DiscreteMixture._parameter_constraints,
                              "probabilities_init": ["array-like", None]}

    def __init__(self, n_components=1, *, tol=1e-3, max_iter=100, n_init=1,
                 init_params="kmeans", weights_init=None, probabilities_init=None,
                 random_state=None, warm_start=False, verbose=0, verbose_interval=10,
                 on_collapse="reseed", accelerate=None, fixed_weights=False, alpha=0.0,
                 missing="raise"):
        _store(self, locals())

    _family = Multinomial()

    def _check_loaded(self):
        super()._check_loaded()
        v = np.asarray(getattr(self, "row_totals_", np.zeros(0, np.int64)))
        p = np.asarray(getattr(self, "row_total_weights_", np.zeros(0)))
        if v.ndim != 1 or v.dtype.kind not in "iu" or p.shape != v.shape or \
                p.dtype != np.float64 or (v < 0).any() or not np.isfinite(p).all() or \
                (p < 0).any() or (v.size and not np.isclose(p.sum(), 1.0, atol=1e-6)):
            raise ValueError("row_totals_ and row_total_weights_ should be the distinct row "
                             "totals (non-negative integers) and their probabilities.")

    def _fit_guarded(self, X, sample_weight):
        X = super()._fit_guarded(X, sample_weight)
        self.row_totals_, self.row_total_weights_ = _merge_totals(
            None, None, X, sample_weight, 1.0)
        return X

    def _sample_options(self):
        """Each row's number of draws comes from the training rows' totals
        (``row_totals_``, with probabilities ``row_total_weights_``)."""
        return {"totals": (self.row_totals_, self.row_total_weights_)}


def _merge_totals(values, weights, X, sample_weight, eta):
    """The distribution of row totals (distinct totals and their
    probabilities): X's, blended into ``(values, weights)`` with weight
    ``eta`` (1: X's alone); with missing counts, the totals of the observed
    ones."""
    if isinstance(X, DaskSource):
        import dask.array as da

        totals = np.asarray(da.nansum(X.array, axis=1).compute())
    elif isinstance(X, RowSource):
        totals = np.concatenate([np.nansum(c, axis=1) for _, c in X.chunks()])
    elif sparse.issparse(X):
        totals = np.asarray(X.sum(axis=1)).ravel()
    else:
        totals = np.nansum(X, axis=1)
    new, inverse = np.unique(np.rint(totals).astype(np.int64), return_inverse=True)
    w = np.bincount(inverse, weights=sample_weight, minlength=new.size).astype(np.float64)
    w /= w.sum()
    if values is None or eta >= 1.0:
        return new, w
    allv = np.union1d(values, new)
    merged = np.zeros(allv.size)
    merged[np.searchsorted(allv, values)] += (1.0 - eta) * weights
    merged[np.searchsorted(allv, new)] += eta * w
    return allv, merged / merged.sum()
