"""Is an estimator's state consistent?  What :func:`fastem.load` checks
before it returns a model, and :func:`fastem.save` before it writes one.

A model file's checksum shows that the file is intact, not who wrote it:
anyone who edits a file can recompute it.  So the model a file describes is
checked as a whole, from its attributes (never from the file's JSON):

* its parameters pass the estimator's own validation, and the ``*_init``
  arrays have the shapes and values ``fit`` accepts;
* it is either not fitted (no fitted attribute) or fully fitted (all of
  them), never in between;
* every fitted array has the shape that ``n_components``, ``n_features_in_``
  and ``covariance_type`` ask for, a float dtype and finite values in its
  domain (weights a probability vector, precision factors upper triangular
  with a positive diagonal, ``precisions_`` and ``covariances_`` what the
  factors say), and every fitted scalar, list and state object has the
  right type and range.

The discrete families (:mod:`fastem.discrete`) are checked the same way,
their family's domain by the estimator's own ``_check_loaded()`` (weights,
probabilities in [0, 1] summing to 1 where they must, rates > 0, shapes
against ``n_components``, ``n_features_in_`` and the family's parameters);
which class belongs to which family is read from :mod:`fastem._registry`.

A hidden Markov model (:mod:`fastem.hmm`, :data:`fastem._registry.HMMS`) is
saved fitted only, and checked against its ``n_components``, ``n_features``
and ``covariance_type``: ``startprob_`` and every row of ``transmat_`` and
``emissionprob_`` probabilities summing to 1, means finite, covariances
symmetric and positive definite, Poisson rates finite and non-negative, and
its ``monitor_`` a ``ConvergenceMonitor`` with a history of floats; then the
model's own checks (those ``score`` runs first) must pass too.

So no model that passes can make a kernel read out of bounds, and its
``predict``, ``predict_proba`` and ``score_samples`` agree with each other.
"""

import math
import reprlib
from collections import deque
from numbers import Integral

import numpy as np

from ._collapse import BaseRecovery, Recovery, min_count
from ._registry import family_of, hmm_of
from ._stats import GaussianStats, covariance_shape, precisions_from_cholesky


class InconsistentModel(ValueError):
    """A model's parameters or fitted state contradict each other."""


class NotFitted(InconsistentModel):
    """A model that is saved only once fitted (a hidden Markov model) is not."""


#: The arrays every fit sets, in the order they are checked (each one is
#: compared with those before it).
_ARRAYS = ("weights_", "means_", "precisions_cholesky_", "precisions_", "covariances_")
#: Everything a fit sets (``feature_names_in_`` only for named columns), per class.
_COMMON = _ARRAYS + ("n_features_in_", "converged_", "n_iter_", "lower_bound_",
                     "lower_bounds_", "n_reseeds_", "collapse_events_")
_FITTED = {
    "GaussianMixture": _COMMON + ("n_em_maps_",),
    "MiniBatchGaussianMixture": _COMMON + ("n_steps_", "n_samples_seen_", "_running",
                                           "_shift", "_collapse", "_collapse_warned"),
    "BayesianGaussianMixture": _COMMON + (
        "n_em_maps_", "weight_concentration_", "mean_precision_", "degrees_of_freedom_",
        "weight_concentration_prior_", "mean_precision_prior_", "mean_prior_",
        "degrees_of_freedom_prior_", "covariance_prior_"),
}
_FITTED["MiniBatchBayesianGaussianMixture"] = tuple(
    a for a in _FITTED["BayesianGaussianMixture"] if a != "n_em_maps_") + (
    "n_steps_", "n_samples_seen_", "n_total_samples_", "_running", "_shift", "_collapse",
    "_collapse_warned")
_INITS = ("weights_init", "means_init", "precisions_init")
_ACTIONS = ("reseed", "ridge")
#: What every fit of a discrete family sets, besides its parameters
#: (Family.parameters), and what its batch and online fits add.
_DISCRETE_COMMON = ("weights_", "n_features_in_", "converged_", "n_iter_", "lower_bound_",
                    "lower_bounds_", "n_reseeds_", "collapse_events_")
_DISCRETE_BATCH = ("n_em_maps_",)
_DISCRETE_ONLINE = ("n_steps_", "n_samples_seen_", "_running", "_collapse", "_collapse_warned")
#: What a discrete family's ``_check_loaded`` may raise about a hostile state.
_STATE_ERRORS = (TypeError, ValueError, IndexError, KeyError, AttributeError, ArithmeticError)
#: ``|sum(weights_) - 1|`` allowed (weights_init is checked to 1e-8).
_WEIGHT_SUM_TOL = 1e-6
#: Rounding allowed, in units of eps x n_features, between the factors and
#: ``precisions_`` and between ``precisions_`` and ``covariances_``.
_ROUNDING = 100


def _check_whole(required, attrs):
    """An InconsistentModel unless every required fitted attribute is there."""
    missing = [a for a in required if a not in attrs]
    if missing:
        raise InconsistentModel(
            f"it is only partly fitted: {', '.join(missing)} missing while "
            f"{', '.join(a for a in required if a in attrs) or 'other fitted attributes'} "
            "are present; a model has all of its fitted attributes or none")


def check_model(model):
    """Raise :class:`InconsistentModel` (a ValueError) naming the first
    attribute whose value contradicts the class, the parameters or the other
    attributes: what was expected and what was found."""
    _check_shadowed(model)
    hmm = hmm_of(model)
    if hmm is not None:
        _HMMFitted(model, hmm).check()
        return
    _check_params(model)
    attrs = vars(model)
    family = family_of(model)
    discrete = family is not None and not family.covariance
    required = _discrete_required(model, family) if discrete else _FITTED[type(model).__name__]
    # scikit-learn's rule (check_is_fitted: any attribute ending with '_'),
    # and online EM's (partial_fit continues from _running)
    fitted = "_running" in attrs or any(a.endswith("_") and not a.startswith("__")
                                        for a in attrs)
    if fitted:
        _check_whole(required, attrs)
        (_DiscreteFitted(model, family) if discrete else _Fitted(model)).check()
    elif discrete:
        _check_discrete_inits(model, None)
    else:
        _check_inits(model, None)
    for attr, check in (("_random_state", _is_random_state), ("_collapse_warned", _is_bool)):
        if attr in attrs and not check(attrs[attr]):
            raise InconsistentModel(f"{attr} should be a {check.__doc__}, but it is "
                                    f"{_found(attrs[attr])}")


def _check_shadowed(model):
    """No state attribute hides behind a property of the class (a loaded
    ``covars_`` next to ``_covars_``): it would be saved, but never read."""
    for attr in vars(model):
        if isinstance(getattr(type(model), attr, None), property):
            raise InconsistentModel(f"it holds an attribute {attr!r} in its state, but "
                                    f"{attr} is a property of {type(model).__name__}, "
                                    "computed from other attributes")


def _check_params(model):
    try:
        model._validate_params()  # scikit-learn's parameter constraints
    except (TypeError, ValueError) as exc:
        raise InconsistentModel(f"its parameters are invalid: {exc}") from None


def _check_inits(model, n_features):
    """The ``*_init`` arrays as ``fit`` checks them; ``n_features`` None:
    the one they imply (an unfitted model)."""
    given = {}
    for name in _INITS:
        value = getattr(model, name)
        if value is None:
            continue
        try:
            given[name] = np.asarray(value)
        except (TypeError, ValueError) as exc:  # ragged lists
            raise InconsistentModel(f"{name} should be an array, but it is not ({exc})") \
                from None
        if given[name].dtype.kind not in "biuf" or given[name].ndim == 0:
            raise InconsistentModel(f"{name} should be an array of real numbers, but it is "
                                    f"{_found(given[name])}")
    if n_features is None:
        implied = [a.shape[-1] for k, a in given.items() if k == "means_init" or (
            k == "precisions_init" and model.covariance_type != "spherical")]
        n_features = implied[0] if implied else 0
    try:
        model._checked_inits(n_features)
    except (TypeError, ValueError) as exc:
        raise InconsistentModel(str(exc)) from None


def _discrete_required(model, family):
    online = type(model) is family.online_class()
    return (_DISCRETE_COMMON + tuple(family.parameters) + tuple(family.fitted)
            + (_DISCRETE_ONLINE if online else _DISCRETE_BATCH))


def _check_discrete_inits(model, n_features):
    """A discrete estimator's ``*_init`` parameters as its ``fit`` checks
    them (``_checked_inits``); ``n_features`` None: an unfitted model, the
    number of features they imply."""
    if n_features is None:
        implied = []
        for name, value in model.get_params(deep=False).items():
            if name.endswith("_init") and name not in ("n_init", "weights_init") \
                    and value is not None:
                try:
                    implied.append(int(np.shape(value)[-1]))
                except (TypeError, ValueError, IndexError):  # ragged: one array per column
                    implied.append(len(value) if hasattr(value, "__len__") else 0)
        n_features = implied[0] if implied else 0
    try:
        model._checked_inits(n_features)
    except AttributeError as exc:
        if n_features == 0 or not hasattr(model, "n_features_in_"):
            return  # an unfitted model whose inits need fitted values: fit checks them
        raise InconsistentModel(str(exc)) from None
    except _STATE_ERRORS as exc:
        raise InconsistentModel(str(exc)) from None


def _found(value):
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape} and dtype {value.dtype}"
    return f"the {type(value).__name__} {reprlib.repr(value)}"


def _is_int(value, minimum=0):
    return isinstance(value, Integral) and not isinstance(value, bool) and value >= minimum


def _is_float(value):
    """float"""
    return isinstance(value, (float, np.floating))


def _is_bool(value):
    """bool"""
    return isinstance(value, (bool, np.bool_))


def _is_random_state(value):
    """numpy.random.RandomState"""
    return isinstance(value, np.random.RandomState)


def _eps(*arrays):
    return max(np.finfo(a.dtype).eps for a in arrays)


class _Fitted:
    """The checks of a fitted model, against its n_components, n_features_in_
    and covariance_type."""

    def __init__(self, model):
        self.model = model
        self.K, self.ct = model.n_components, model.covariance_type
        self.d = self.integer("n_features_in_", minimum=1)
        self.context = (f"n_components={self.K}, n_features_in_={self.d}, "
                        f"covariance_type={self.ct!r}")

    def integer(self, attr, minimum=0, value=None):
        value = getattr(self.model, attr) if value is None else value
        if not _is_int(value, minimum):
            raise InconsistentModel(f"{attr} should be an int >= {minimum}, but it is {_found(value)}")
        return value

    def scalar(self, attr, check):
        value = getattr(self.model, attr)
        if not check(value) or (check is _is_float and math.isnan(value)):
            raise InconsistentModel(f"{attr} should be a {check.__doc__}"
                            f"{' (not NaN)' if check is _is_float else ''}, but it is "
                            f"{_found(value)}")
        return value

    def array(self, attr, shape, value=None):
        """A finite float32/float64 array of the given shape."""
        a = getattr(self.model, attr) if value is None else value
        if not (isinstance(a, np.ndarray) and a.dtype.kind == "f" and a.dtype.itemsize in (4, 8)
                and a.shape == shape):
            raise InconsistentModel(f"{attr} should be a float array of shape {shape} ({self.context}), "
                            f"but it is {_found(a)}")
        if not np.isfinite(a).all():
            raise InconsistentModel(f"{attr} should hold finite numbers, but it holds NaN or infinity")
        return a

    def check(self):
        m, K, d, ct = self.model, self.K, self.d, self.ct
        _check_inits(m, d)
        shape = covariance_shape(ct, K, d)
        w = self.array("weights_", (K,))
        if (w < 0).any() or abs(float(w.sum()) - 1.0) > _WEIGHT_SUM_TOL:
            raise InconsistentModel(f"weights_ should be non-negative and sum to 1, but their minimum "
                            f"is {w.min():.6g} and their sum {w.sum():.10g}")
        self.array("means_", (K, d))
        U = self.array("precisions_cholesky_", shape)
        self.check_factor(U)
        P = self.array("precisions_", shape)
        self.check_precisions(U, P)
        self.check_covariances(self.array("covariances_", shape), P, U)
        self.check_scalars()
        self.check_names()
        if type(m).__name__ in ("MiniBatchGaussianMixture", "MiniBatchBayesianGaussianMixture"):
            self.check_online()
        if hasattr(m, "weight_concentration_prior_type"):
            self.check_variational()
        if hasattr(m, "total_samples"):
            n = self.scalar("n_total_samples_", _is_float)
            if not n >= 0:
                raise InconsistentModel(f"n_total_samples_ should be >= 0, but it is {n!r}")

    def check_variational(self):
        """The posterior's and the prior's values: positive (the prior's
        covariance positive definite, the degrees of freedom above d - 1),
        shaped by n_components, n_features_in_ and covariance_type; weights_
        the normalised expected weights of weight_concentration_."""
        from ._variational import weights_from_concentration

        m, K, d, ct = self.model, self.K, self.d, self.ct
        conc = m.weight_concentration_
        if m.weight_concentration_prior_type == "dirichlet_process":
            if not (isinstance(conc, tuple) and len(conc) == 2):
                raise InconsistentModel("weight_concentration_ should be a pair of arrays (the "
                                        "Beta parameters of a Dirichlet process), but it is "
                                        f"{_found(conc)}")
            values = {"weight_concentration_": np.concatenate(
                [self.array("weight_concentration_", (K,), c) for c in conc])}
        else:
            values = {"weight_concentration_": self.array("weight_concentration_", (K,))}
        values["mean_precision_"] = self.array("mean_precision_", (K,))
        for attr in ("weight_concentration_prior_", "mean_precision_prior_"):
            values[attr] = self.scalar(attr, _is_float)
        tied = ct == "tied"
        values["degrees_of_freedom_"] = (self.scalar("degrees_of_freedom_", _is_float) - (d - 1)
                                         if tied else
                                         self.array("degrees_of_freedom_", (K,)) - (d - 1))
        values["degrees_of_freedom_prior_"] = \
            self.scalar("degrees_of_freedom_prior_", _is_float) - (d - 1)
        self.array("mean_prior_", (d,))
        if ct == "spherical":
            values["covariance_prior_"] = self.scalar("covariance_prior_", _is_float)
        else:
            cov = self.array("covariance_prior_", (d, d) if ct in ("full", "tied") else (d,))
            values["covariance_prior_"] = (np.linalg.eigvalsh((cov + cov.T) / 2.0)
                                           if cov.ndim == 2 else cov)
        for attr, v in values.items():
            if not (np.asarray(v) > 0).all():
                what = ("above n_features_in_ - 1 = " + str(d - 1) if "degrees" in attr else
                        "positive definite" if attr == "covariance_prior_" and ct != "diag"
                        else "positive")
                raise InconsistentModel(f"{attr} should be {what}, but it is "
                                        f"{_found(getattr(m, attr))}")
        expected = weights_from_concentration(conc, m.weight_concentration_prior_type)
        if np.abs(expected - m.weights_).max() > _WEIGHT_SUM_TOL:
            raise InconsistentModel("weights_ should be the normalised expected weights of "
                                    "weight_concentration_, but they differ by up to "
                                    f"{np.abs(expected - m.weights_).max():.3g}")

    def check_factor(self, U):
        if self.ct in ("full", "tied"):
            if np.tril(U, -1).any():
                raise InconsistentModel("precisions_cholesky_ should be upper triangular (precision = "
                                "U U^T), but it has non-zero entries below the diagonal")
            diag = np.diagonal(U, axis1=-2, axis2=-1)
        else:
            diag = U
        if not (diag > 0).all():
            raise InconsistentModel("the diagonal of precisions_cholesky_ should be positive, but its "
                            f"smallest entry is {diag.min():.6g}")

    def check_precisions(self, U, P):
        expected = precisions_from_cholesky(U.astype(np.float64), self.ct)
        axes = (-2, -1) if self.ct in ("full", "tied") else ()
        scale = np.abs(expected).max(axis=axes, keepdims=True)
        tol = _ROUNDING * self.d * _eps(U, P) * scale
        if not (np.abs(P - expected) <= tol).all():
            raise InconsistentModel("precisions_ should be precisions_cholesky_ U times U^T, but it "
                            f"differs from it by up to {np.abs(P - expected).max():.3g}")

    def check_covariances(self, C, P, U):
        eps = _eps(C, P, U)
        if self.ct in ("full", "tied"):
            residual = np.abs(C @ P - np.eye(self.d))
            scale = (np.abs(C).max(axis=(-2, -1), keepdims=True)
                     * np.abs(P).max(axis=(-2, -1), keepdims=True))
            tol = _ROUNDING * self.d * self.d * eps * scale
        else:
            residual = np.abs(C * P - 1.0)
            tol = _ROUNDING * eps
        if not (residual <= tol).all():
            raise InconsistentModel("covariances_ should be the inverse of precisions_, but their "
                            f"product differs from the identity by up to {residual.max():.3g}")

    def check_scalars(self):
        m = self.model
        for attr in ("n_iter_", "n_reseeds_", "n_em_maps_", "n_steps_", "n_samples_seen_"):
            if attr in vars(m):
                self.integer(attr)
        self.scalar("converged_", _is_bool)
        self.scalar("lower_bound_", _is_float)
        history = m.lower_bounds_
        if not (isinstance(history, list) and all(_is_float(v) for v in history)):
            raise InconsistentModel(f"lower_bounds_ should be a list of float, but it is {_found(history)}")
        self.check_events("collapse_events_", m.collapse_events_)
        reseeds = sum(1 for e in m.collapse_events_ if e[2] == "reseed")
        if m.n_reseeds_ != reseeds:
            raise InconsistentModel(f"n_reseeds_ should count the {reseeds} 'reseed' events of "
                            f"collapse_events_, but it is {m.n_reseeds_}")

    def check_events(self, attr, events):
        """A list of (iteration, component, action): component None only for
        the tied covariance's ridge."""
        if not isinstance(events, list):
            raise InconsistentModel(f"{attr} should be a list, but it is {_found(events)}")
        for e in events:
            ok = (isinstance(e, tuple) and len(e) == 3 and _is_int(e[0], -2**63)
                  and e[2] in _ACTIONS and self.component_ok(e[1], e[2] == "ridge"))
            if not ok:
                raise InconsistentModel(f"{attr} should hold (iteration, component, action) events "
                                f"with a component in [0, {self.K}) and an action in "
                                f"{_ACTIONS}, but it holds {_found(e)}")

    def component_ok(self, k, may_be_tied):
        if k is None:
            return may_be_tied and self.ct == "tied"
        return _is_int(k) and k < self.K

    # ------------------------------------------------------------------
    # MiniBatchGaussianMixture: the state partial_fit continues from
    # ------------------------------------------------------------------

    def check_online(self):
        m, K, d, ct = self.model, self.K, self.d, self.ct
        shift = self.array("_shift", (K, d))
        self.check_object("_running", GaussianStats(ct, shift, None, None, None, 0.0, 0.0))
        run = m._running
        if run.covariance_type != ct or not np.array_equal(
                self.array("_running.shift", (K, d), run.shift), shift):
            raise InconsistentModel(f"_running should hold statistics of covariance type {ct!r} "
                            f"around _shift, but they are of type {run.covariance_type!r} "
                            "or around another shift")
        S0 = self.array("_running.S0", (K,), run.S0)
        self.array("_running.S1", (K, d), run.S1)
        self.array("_running.S2", covariance_shape(ct, K, d), run.S2)
        weight = run.weight
        if (S0 < 0).any() or not (_is_float(run.loglik) and not math.isnan(run.loglik)) or not (
                _is_float(weight) and math.isfinite(weight) and weight >= 0):
            raise InconsistentModel("_running should hold non-negative counts S0, a float loglik and a "
                            f"finite non-negative weight, but S0 has minimum {S0.min():.6g}, "
                            f"loglik is {_found(run.loglik)} and weight {_found(weight)}")
        self.check_object("_collapse", Recovery(ct, K, d, 0.0, np.float64, None))
        self.check_recovery(m._collapse)

    def check_object(self, attr, like):
        """``attr`` is an object of ``like``'s class with its attributes."""
        value = getattr(self.model, attr)
        if type(value) is not type(like) or set(vars(value)) != set(vars(like)):
            raise InconsistentModel(f"{attr} should be a {type(like).__name__} with the attributes "
                            f"{sorted(vars(like))}, but it is {_found(value)}"
                            + (f" with {sorted(vars(value))}" if hasattr(value, "__dict__")
                               else ""))

    def check_recovery(self, rec):
        K, d, ct = self.K, self.d, self.ct
        if (rec.ct, rec.K, rec.d) != (ct, K, d) or rec.min_count != min_count(ct, d):
            raise InconsistentModel(f"_collapse should be the recovery of {self.context} (min_count "
                            f"{min_count(ct, d)}), but it is that of covariance_type="
                            f"{rec.ct!r}, K={rec.K!r}, d={rec.d!r} (min_count {rec.min_count!r})")
        if not (_is_float(rec.reg_covar) and math.isfinite(rec.reg_covar) and rec.reg_covar >= 0
                and isinstance(rec.dtype, np.dtype) and rec.dtype.kind == "f"
                and _is_random_state(rec.random_state)):
            raise InconsistentModel("_collapse should have a finite reg_covar >= 0, a float dtype and a "
                            f"RandomState, but has {_found(rec.reg_covar)}, "
                            f"{_found(rec.dtype)} and {_found(rec.random_state)}")
        self.integer("_collapse.budget", value=rec.budget)
        self.check_events("_collapse.events", rec.events)
        ridges = rec.ridges
        if not (isinstance(ridges, dict) and all(
                self.component_ok(k, True) and _is_float(v) and math.isfinite(v) and v > 0
                for k, v in ridges.items())):
            raise InconsistentModel(f"_collapse.ridges should map components in [0, {K}) (None for "
                            f"'tied') to positive floats, but it is {_found(ridges)}")


    def check_names(self):
        m, d = self.model, self.d
        if "feature_names_in_" in vars(m):
            names = m.feature_names_in_
            if not (isinstance(names, np.ndarray) and names.shape == (d,)
                    and all(isinstance(s, str) for s in names.flat)):
                raise InconsistentModel(f"feature_names_in_ should be an array of {d} str "
                                        f"(n_features_in_={d}), but it is {_found(names)}")


class _DiscreteFitted(_Fitted):
    """The checks of a fitted discrete mixture (a family without covariance
    types): the common attributes here, the family's domain by the
    estimator's ``_check_loaded()``."""

    actions = ("reseed",)

    def __init__(self, model, family):
        self.model, self.family = model, family
        self.K, self.ct = model.n_components, None
        self.d = self.integer("n_features_in_", minimum=1)
        self.context = f"n_components={self.K}, n_features_in_={self.d}"

    def check(self):
        m, K, d = self.model, self.K, self.d
        _check_discrete_inits(m, d)
        w = self.array("weights_", (K,))
        if (w < 0).any() or abs(float(w.sum()) - 1.0) > _WEIGHT_SUM_TOL:
            raise InconsistentModel(f"weights_ should be non-negative and sum to 1, but their "
                                    f"minimum is {w.min():.6g} and their sum {w.sum():.10g}")
        for attr in self.family.parameters:
            self.parameter(attr)
        try:
            m._check_loaded()
        except _STATE_ERRORS as exc:
            raise InconsistentModel(str(exc).rstrip(".")) from None
        self.check_scalars()
        self.check_names()
        if "categories_" in vars(m):
            self.check_categories(m.categories_)
        if type(m) is self.family.online_class():
            self.check_online()

    def parameter(self, attr):
        """A (K, d) float array, or (categorical) a list of d float arrays
        of K rows, all finite."""
        value = getattr(self.model, attr)
        if not isinstance(value, list):
            return self.array(attr, (self.K, self.d))
        if len(value) != self.d:
            raise InconsistentModel(f"{attr} should be a list of {self.d} arrays, one per "
                                    f"feature ({self.context}), but it has {len(value)}")
        for j, a in enumerate(value):
            if not (isinstance(a, np.ndarray) and a.ndim == 2 and a.shape[0] == self.K):
                raise InconsistentModel(f"{attr}[{j}] should be a float array of {self.K} rows "
                                        f"({self.context}), but it is {_found(a)}")
            self.array(f"{attr}[{j}]", a.shape, a)
        return value

    def check_categories(self, categories):
        """The values behind each feature's codes: d 1-D arrays of distinct
        numbers or strings."""
        ok = isinstance(categories, list) and len(categories) == self.d
        for c in categories if ok else ():
            ok = (isinstance(c, np.ndarray) and c.ndim == 1 and c.dtype.kind in "biufUO"
                  and all(isinstance(v, (str, int, float, np.generic)) for v in c.tolist())
                  and len(set(c.tolist())) == c.shape[0])
            if not ok:
                break
        if not ok:
            raise InconsistentModel(f"categories_ should be a list of {self.d} arrays of "
                                    f"distinct values, one per feature (n_features_in_="
                                    f"{self.d}), but it is {_found(categories)}")

    def check_events(self, attr, events):
        """A list of (iteration, component, 'reseed')."""
        if not isinstance(events, list):
            raise InconsistentModel(f"{attr} should be a list, but it is {_found(events)}")
        for e in events:
            if not (isinstance(e, tuple) and len(e) == 3 and _is_int(e[0], -2**63)
                    and e[2] in self.actions and _is_int(e[1]) and e[1] < self.K):
                raise InconsistentModel(
                    f"{attr} should hold (iteration, component, action) events with a "
                    f"component in [0, {self.K}) and an action in {self.actions}, but it "
                    f"holds {_found(e)}")

    # ------------------------------------------------------------------
    # the online estimators: the state partial_fit continues from
    # ------------------------------------------------------------------

    def helper(self, attr, base=None):
        """``attr`` holds one of the family's state classes (a subclass of
        ``base``)."""
        value = getattr(self.model, attr)
        classes = self.family.helper_classes()
        if type(value) not in classes.values() or (base is not None
                                                    and not isinstance(value, base)):
            raise InconsistentModel(f"{attr} should be one of {sorted(classes)}, but it is "
                                    f"{_found(value)}")
        return value

    def check_online(self):
        m, K = self.model, self.K
        run = self.helper("_running")
        attrs = vars(run)
        if set(attrs) - {"observed"} != {"S0", "S1", "loglik", "weight"}:
            raise InconsistentModel(f"_running should be statistics with the attributes "
                                    f"['S0', 'S1', 'loglik', 'weight'] (and 'observed' after "
                                    f"missing entries), but it has {sorted(attrs)}")
        S0 = self.array("_running.S0", (K,), run.S0)
        theta = np.asarray(m._get_params_tuple().theta)  # the family's flat parameters
        self.array("_running.S1", theta.shape, run.S1)
        if "observed" in attrs:
            observed = self.array("_running.observed", theta.shape, run.observed)
            if (observed < 0).any():
                raise InconsistentModel("_running.observed should hold non-negative "
                                        f"weights, but has minimum {observed.min():.6g}")
        weight = run.weight
        if (S0 < 0).any() or not (_is_float(run.loglik) and not math.isnan(run.loglik)) or not (
                _is_float(weight) and math.isfinite(weight) and weight >= 0):
            raise InconsistentModel(
                "_running should hold non-negative counts S0, a float loglik and a finite "
                f"non-negative weight, but S0 has minimum {S0.min():.6g}, loglik is "
                f"{_found(run.loglik)} and weight {_found(weight)}")
        rec = self.helper("_collapse", BaseRecovery)
        expected = set(vars(BaseRecovery(K, 1.0, None))) | {"estimator"}
        if set(vars(rec)) != expected:
            raise InconsistentModel(f"_collapse should be a recovery with the attributes "
                                    f"{sorted(expected)}, but it has {sorted(vars(rec))}")
        if rec.K != K or rec.estimator is not m:
            raise InconsistentModel(f"_collapse should be the recovery of this model "
                                    f"({self.context}), but it is that of K={rec.K!r} or of "
                                    "another estimator")
        if not (_is_float(rec.min_count) and math.isfinite(rec.min_count)
                and rec.min_count > 0 and _is_random_state(rec.random_state)):
            raise InconsistentModel("_collapse should have a finite min_count > 0 and a "
                                    f"RandomState, but has {_found(rec.min_count)} and "
                                    f"{_found(rec.random_state)}")
        self.integer("_collapse.budget", value=rec.budget)
        self.check_events("_collapse.events", rec.events)


# ----------------------------------------------------------------------
# hidden Markov models
# ----------------------------------------------------------------------


#: The attributes of a ConvergenceMonitor (hmmlearn's).
_MONITOR_ATTRS = frozenset({"tol", "n_iter", "verbose", "history", "iter"})
#: What the model's own checks (``_check``, the kernel's parameters) may raise.
_HMM_ERRORS = (TypeError, ValueError, ArithmeticError, IndexError, KeyError, AttributeError,
               np.linalg.LinAlgError)
#: Prior parameters: numbers, or arrays of numbers (hmmlearn broadcasts them).
_HMM_PRIORS = ("startprob_prior", "transmat_prior", "means_prior", "means_weight",
               "covars_prior", "covars_weight", "emissionprob_prior", "lambdas_prior",
               "lambdas_weight", "min_covar")


class _HMMFitted:
    """The checks of a hidden Markov model: only fitted ones are saved."""

    def __init__(self, model, entry):
        self.model, self.entry = model, entry
        self.name = type(model).__name__

    def check(self):
        m = self.model
        try:
            m._check_hyper()
        except (TypeError, ValueError, ArithmeticError) as exc:
            raise InconsistentModel(f"its parameters are invalid: {exc}") from None
        self.check_priors()
        attrs = vars(m)
        chain = ("startprob_", "transmat_") + tuple(self.entry.parameters)
        present = [a for a in chain if a in attrs]
        if not present:
            raise NotFitted(
                f"it is not fitted (it has no {', '.join(chain)}), and fastem saves hidden "
                "Markov models only once fitted. Fit it first (or keep its parameters, "
                "get_params(), to build it again)")
        required = chain + ("monitor_",)
        _check_whole(required, attrs)
        self.K = m.n_components
        self.d = attrs.get("n_features")  # a parameter of CategoricalHMM
        if self.d is None:
            # set by hand and not used yet: the model takes it from its emissions
            emissions = attrs[chain[2]]
            if isinstance(emissions, np.ndarray) and emissions.ndim == 2:
                self.d = emissions.shape[1]
            else:
                raise InconsistentModel(f"{chain[2]} should be a 2-d float array (n_features "
                                        f"is not set), but it is {_found(emissions)}")
        if not _is_int(self.d, 1):
            raise InconsistentModel(f"n_features should be an int >= 1, but it is "
                                    f"{_found(self.d)}")
        ct = getattr(m, "covariance_type", None)
        self.context = (f"n_components={self.K}, n_features={self.d}"
                        + (f", covariance_type={ct!r}" if ct is not None else ""))
        K, d = self.K, self.d
        self.probabilities("startprob_", (K,))
        self.probabilities("transmat_", (K, K))
        if "means_" in chain:
            self.array("means_", (K, d))
            self.covariances(ct)
        if "emissionprob_" in chain:
            self.probabilities("emissionprob_", (K, d))
        if "lambdas_" in chain:
            lam = self.array("lambdas_", (K, d))
            if (lam < 0).any():
                raise InconsistentModel(f"lambdas_ should hold non-negative rates, but its "
                                        f"smallest is {lam.min():.6g}")
        self.check_monitor(m.monitor_)
        self.check_own()

    def check_priors(self):
        """What ``_check_hyper`` leaves to ``fit``: the priors (and
        ``min_covar``), ``random_state`` and ``verbose``."""
        params = self.model.get_params(deep=False)
        rs = params["random_state"]
        if not (rs is None or _is_random_state(rs) or (_is_int(rs) and rs < 2**32)):
            raise InconsistentModel(f"its parameters are invalid: random_state should be None, "
                                    f"an int in [0, 2**32) or a RandomState, but it is "
                                    f"{_found(rs)}")
        if not isinstance(params["verbose"], (bool, np.bool_, Integral)):
            raise InconsistentModel(f"its parameters are invalid: verbose should be a bool, "
                                    f"but it is {_found(params['verbose'])}")
        for name, value in params.items():
            if name not in _HMM_PRIORS:
                continue
            try:
                a = np.asarray(value)
            except (TypeError, ValueError):  # ragged lists
                a = None
            if a is None or a.dtype.kind not in "iuf" or not np.isfinite(a).all():
                raise InconsistentModel(f"{name} should be a finite number or an array of "
                                        f"them, but it is {_found(value)}")

    def array(self, attr, shape):
        """A finite real array of the given shape."""
        a = getattr(self.model, attr)
        if not (isinstance(a, np.ndarray) and a.dtype.kind in "iuf" and a.shape == shape):
            raise InconsistentModel(f"{attr} should be a float array of shape {shape} "
                                    f"({self.context}), but it is {_found(a)}")
        if not np.isfinite(a).all():
            raise InconsistentModel(f"{attr} should hold finite numbers, but it holds NaN "
                                    "or infinity")
        return a

    def probabilities(self, attr, shape):
        """Non-negative, summing to 1 (per row), as the model itself checks
        them (``numpy.allclose``)."""
        a = self.array(attr, shape)
        s = a.sum(axis=-1, dtype=np.float64)
        if (a < 0).any() or not np.allclose(s, 1):
            rows = "every row of " if a.ndim == 2 else ""
            worst = int(np.argmax(np.abs(s - 1))) if a.ndim == 2 else None
            where = (f"row {worst} sums to {s[worst]:.10g}" if worst is not None
                     else f"they sum to {float(s):.10g}")
            raise InconsistentModel(f"{rows}{attr} should hold non-negative probabilities "
                                    f"summing to 1, but its minimum is {a.min():.6g} and "
                                    f"{where}")

    def covariances(self, ct):
        K, d = self.K, self.d
        shape = {"spherical": (K,), "diag": (K, d), "full": (K, d, d), "tied": (d, d)}[ct]
        c = self.model._covars_
        if not (isinstance(c, np.ndarray) and c.dtype.kind in "iuf" and c.shape == shape):
            raise InconsistentModel(f"the covariances (_covars_, covars_ in compact form) "
                                    f"should be a float array of shape {shape} "
                                    f"({self.context}), but they are {_found(c)}")
        if not np.isfinite(c).all():
            raise InconsistentModel("the covariances (_covars_) should hold finite numbers, "
                                    "but they hold NaN or infinity")
        if ct in ("spherical", "diag"):
            if not (c > 0).all():
                raise InconsistentModel(f"the {ct} variances (_covars_) should be positive, "
                                        f"but the smallest is {c.min():.6g}")
            return
        mats = c.reshape(-1, d, d).astype(np.float64)
        for k, cv in enumerate(mats):
            which = "the tied covariance" if ct == "tied" else f"the covariance of state {k}"
            if not np.allclose(cv, cv.T):
                raise InconsistentModel(f"{which} (_covars_) should be symmetric, but it "
                                        f"differs from its transpose by up to "
                                        f"{np.abs(cv - cv.T).max():.3g}")
            try:
                np.linalg.cholesky(cv)
            except np.linalg.LinAlgError:
                raise InconsistentModel(f"{which} (_covars_) should be positive definite, but "
                                        f"its smallest eigenvalue is "
                                        f"{np.linalg.eigvalsh(cv).min():.6g}") from None

    def check_monitor(self, mon):
        from ._baum_welch import ConvergenceMonitor

        if type(mon) is not ConvergenceMonitor or set(vars(mon)) != _MONITOR_ATTRS:
            raise InconsistentModel(
                f"monitor_ should be a ConvergenceMonitor with the attributes "
                f"{sorted(_MONITOR_ATTRS)}, but it is {_found(mon)}"
                + (f" with {sorted(vars(mon))}" if hasattr(mon, "__dict__") else ""))
        history = mon.history
        if not (isinstance(history, deque) and all(
                _is_float(v) and not math.isnan(v) for v in history)):
            raise InconsistentModel(f"monitor_.history should be a deque of log-likelihoods "
                                    f"(float), but it is {_found(history)}")
        if not (_is_int(mon.iter) and len(history) <= mon.iter):
            raise InconsistentModel(f"monitor_.iter should count the iterations, at least the "
                                    f"{len(history)} of monitor_.history, but it is "
                                    f"{_found(mon.iter)}")
        if not _is_int(mon.n_iter):
            raise InconsistentModel(f"monitor_.n_iter should be an int >= 0, but it is "
                                    f"{_found(mon.n_iter)}")
        tol = mon.tol
        if not (_is_int(tol, -math.inf) or (_is_float(tol) and not math.isnan(tol))):
            raise InconsistentModel(f"monitor_.tol should be a number, but it is "
                                    f"{_found(mon.tol)}")
        if not isinstance(mon.verbose, (bool, np.bool_, Integral)):
            raise InconsistentModel(f"monitor_.verbose should be a bool, but it is "
                                    f"{_found(mon.verbose)}")

    def check_own(self):
        """The model's own checks, as ``score`` runs them (on a shallow copy:
        they convert attributes in place)."""
        m = self.model
        copy = type(m).__new__(type(m))
        copy.__dict__.update(vars(m))
        try:
            copy._check()
        except _HMM_ERRORS as exc:
            raise InconsistentModel(f"the {self.name} refuses its own state: "
                                    f"{str(exc).rstrip('.')}") from None
        if copy.n_features != self.d:
            raise InconsistentModel(f"n_features should be {copy.n_features}, the number of "
                                    f"features of its emission parameters, but it is "
                                    f"{self.d}")
