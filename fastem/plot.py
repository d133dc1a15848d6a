"""Diagnostic plots for fitted mixtures and model selection.

Six functions, each drawing on a matplotlib ``Axes`` (a new figure when
``ax`` is None) and returning it:

- :func:`components`: the data coloured by component, with the components'
  sigma ellipses and means (2-D data, the first two principal components of
  higher-dimensional data, or the component densities of 1-D data);
- :func:`convergence`: the mean log-likelihood per EM iteration
  (``lower_bounds_``);
- :func:`selection`: BIC/AIC/ICL against ``n_components`` from a
  :class:`fastem.SelectionResult`;
- :func:`log_density`: a histogram of ``score_samples(X)`` with an optional
  anomaly threshold;
- :func:`profiles`: a heatmap of a discrete mixture's per-component
  parameters (components x features, or x categories of each feature);
- :func:`weights`: the fitted weights, one bar per component, those below a
  threshold (components a variational mixture switched off) greyed out.

They work with :class:`fastem.GaussianMixture`,
:class:`fastem.MiniBatchGaussianMixture` and scikit-learn's
``GaussianMixture`` (the same fitted attributes); :func:`log_density`,
:func:`convergence` and :func:`selection` with every family, :func:`profiles`
with the discrete ones (``BernoulliMixture``, ``PoissonMixture``, ...).  matplotlib is an optional
dependency: ``pip install "fastem[plot]"``.  ``import fastem`` never imports
it; this module is imported explicitly (``import fastem.plot``).  Only the
object-oriented matplotlib API is used; ``pyplot`` only creates a figure
when no ``ax`` is given.  See ``docs/plots.md``.
"""

from numbers import Integral, Real

import numpy as np

try:
    import matplotlib
except ImportError as exc:  # pragma: no cover - exercised in a subprocess
    raise ImportError(
        "fastem.plot needs matplotlib, which is not installed. Install the optional "
        'plotting dependencies with: pip install "fastem[plot]" (or pip install '
        "matplotlib)."
    ) from exc

from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.patches import Ellipse
from matplotlib.ticker import MaxNLocator
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from ._data import sample_rows
from ._registry import family_of
from ._stats import COVARIANCE_TYPES
from .select import CRITERIA, SelectionResult

__all__ = ["components", "convergence", "log_density", "profiles", "selection", "weights"]

#: Line style of each criterion in :func:`selection`.
_CRITERION_STYLE = {"bic": "-", "aic": "--", "icl": ":"}

#: Marker size (points^2) of the scattered rows, by number of rows drawn.
_POINT_SIZE = ((1000, 12.0), (10000, 5.0), (None, 2.0))


# ----------------------------------------------------------------------
# small helpers
# ----------------------------------------------------------------------


def _new_axes(ax, function):
    """``ax`` itself after checking it, or the Axes of a new figure."""
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots()
        return ax
    if not isinstance(ax, Axes):
        raise TypeError(
            f"fastem.plot.{function} expects ax to be a matplotlib Axes or None, but got "
            f"{type(ax).__name__}. Pass e.g. ax=fig.add_subplot() or leave ax=None to "
            "create a new figure."
        )
    return ax


def _check_model(model, function):
    """A fitted mixture: weights_, means_, covariances_ and covariance_type."""
    if not hasattr(model, "fit") or not hasattr(model, "covariance_type"):
        raise TypeError(
            f"fastem.plot.{function} expects a Gaussian mixture (fastem.GaussianMixture, "
            "fastem.MiniBatchGaussianMixture or sklearn.mixture.GaussianMixture), but "
            f"got {type(model).__name__}."
        )
    check_is_fitted(model, ["weights_", "means_", "covariances_"])
    if model.covariance_type not in COVARIANCE_TYPES:
        raise ValueError(
            f"The model's covariance_type must be one of {list(COVARIANCE_TYPES)}, but "
            f"got {model.covariance_type!r}."
        )


def _check_any_model(model, function):
    """A fitted mixture of any fastem family, or a Gaussian mixture."""
    family = family_of(model)
    if family is None or family.covariance:
        _check_model(model, function)
        return
    check_is_fitted(model, ["weights_"])


def _n_features(model):
    n = getattr(model, "n_features_in_", None)
    return int(n) if n is not None else int(np.asarray(model.means_).shape[1])


def _component_covariances(model):
    """The (K, d, d) covariance matrices of a fitted model, from
    scikit-learn's shapes for every covariance type."""
    means = np.asarray(model.means_, dtype=np.float64)
    k, d = means.shape
    cov = np.asarray(model.covariances_, dtype=np.float64)
    ct = model.covariance_type
    if ct == "full":
        return cov.reshape(k, d, d)
    if ct == "tied":
        return np.broadcast_to(cov.reshape(d, d), (k, d, d)).copy()
    if ct == "diag":
        return np.einsum("kj,ij->kij", cov.reshape(k, d), np.eye(d))
    return cov.reshape(k, 1, 1) * np.eye(d)


def _mixture_covariance(model):
    """Mean and covariance of the whole mixture.

    ``mu = sum_k w_k mu_k`` and
    ``Sigma = sum_k w_k (Sigma_k + mu_k mu_k^T) - mu mu^T``.

    Parameters
    ----------
    model : fitted GaussianMixture

    Returns
    -------
    mean : ndarray of shape (n_features,)
    covariance : ndarray of shape (n_features, n_features)
    """
    w = np.asarray(model.weights_, dtype=np.float64)
    means = np.asarray(model.means_, dtype=np.float64)
    covs = _component_covariances(model)
    mean = w @ means
    second = np.einsum("k,kij->ij", w, covs) + np.einsum("k,ki,kj->ij", w, means, means)
    return mean, second - np.outer(mean, mean)


def _principal_axes(cov):
    """Eigenvalues (descending) and eigenvectors (columns) of a covariance,
    each vector's largest-magnitude entry made positive (a fixed sign, as
    scikit-learn's ``svd_flip``)."""
    vals, vecs = np.linalg.eigh((cov + cov.T) / 2.0)
    order = np.argsort(vals)[::-1]
    vals, vecs = np.clip(vals[order], 0.0, None), vecs[:, order]
    signs = np.sign(vecs[np.argmax(np.abs(vecs), axis=0), np.arange(vecs.shape[1])])
    signs[signs == 0] = 1.0
    return vals, vecs * signs


def _ellipse_parameters(cov2, sigma=1.0):
    """Width, height and angle (degrees) of the ``sigma`` ellipse of a 2x2
    covariance: the set ``{x : x^T cov2^{-1} x = sigma^2}``.

    ``width = 2 sigma sqrt(lambda_max)`` along the leading eigenvector,
    ``height = 2 sigma sqrt(lambda_min)``, and ``angle`` the leading
    eigenvector's angle to the x axis, in (-90, 90].

    Parameters
    ----------
    cov2 : array-like of shape (2, 2)
    sigma : float, default=1.0

    Returns
    -------
    width, height, angle : float
    """
    cov2 = np.asarray(cov2, dtype=np.float64)
    if cov2.shape != (2, 2):
        raise ValueError(f"Expected a 2x2 covariance matrix, but got shape {cov2.shape}.")
    vals, vecs = np.linalg.eigh((cov2 + cov2.T) / 2.0)
    vals = np.clip(vals, 0.0, None)
    major = vecs[:, 1]
    angle = float(np.degrees(np.arctan2(major[1], major[0])))
    if angle <= -90.0:
        angle += 180.0
    elif angle > 90.0:
        angle -= 180.0
    return (2.0 * sigma * float(np.sqrt(vals[1])), 2.0 * sigma * float(np.sqrt(vals[0])),
            angle)


def _colours(k):
    """One colour per component: tab10/tab20, or evenly spaced turbo."""
    if k <= 10:
        return np.asarray(matplotlib.colormaps["tab10"].colors[:k])
    if k <= 20:
        return np.asarray(matplotlib.colormaps["tab20"].colors[:k])
    return matplotlib.colormaps["turbo"](np.linspace(0.05, 0.95, k))[:, :3]


def _check_positive_int(value, name, function):
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ValueError(
            f"fastem.plot.{function}: {name} must be a positive integer, but got "
            f"{value!r}."
        )
    return int(value)


def _check_sigmas(sigmas):
    if isinstance(sigmas, Real) and not isinstance(sigmas, bool):
        sigmas = (sigmas,)
    try:
        values = [float(s) for s in sigmas]
    except (TypeError, ValueError):
        raise ValueError(
            "fastem.plot.components: sigmas must be a number or a sequence of positive "
            f"numbers (e.g. (1, 2, 3)), but got {sigmas!r}."
        ) from None
    if not values or not all(np.isfinite(s) and s > 0 for s in values):
        raise ValueError(
            "fastem.plot.components: sigmas must contain at least one number, all "
            f"positive and finite (e.g. (1, 2, 3)), but got {sigmas!r}."
        )
    return values


def _rows_of(X, n_features, function):
    """``(X, n_samples)`` after checking that X is 2-D with the model's
    feature count; an array-like with ``.shape`` (memmap, h5py, dask,
    DataFrame) is not read."""
    shape = getattr(X, "shape", None)
    if shape is None:
        X = np.asarray(X)
        shape = X.shape
    if len(shape) != 2:
        raise ValueError(
            f"fastem.plot.{function} expects X of shape (n_samples, n_features), but got "
            f"an array of shape {tuple(shape)}. Reshape a single feature with "
            "X.reshape(-1, 1)."
        )
    if shape[1] != n_features:
        raise ValueError(
            f"fastem.plot.{function}: X has {shape[1]} features, but the model was fitted "
            f"on {n_features}. Pass the data the model describes."
        )
    if shape[0] < 1:
        raise ValueError(f"fastem.plot.{function}: X has no rows; pass at least one row.")
    return X, int(shape[0])


def _subsample(X, max_points, random_state, n_features):
    """At most ``max_points`` rows of X drawn without replacement (in their
    original order), as given to ``predict`` and as a float64 ndarray."""
    X, n = _rows_of(X, n_features, "components")
    if n > max_points:
        # O(max_points) memory however large n is (out-of-core X)
        idx = sample_rows(check_random_state(random_state), n, max_points)
        X = X.iloc[idx] if hasattr(X, "iloc") else X[idx]
    data = X.to_numpy() if hasattr(X, "to_numpy") else X
    return X, np.asarray(data, dtype=np.float64)


def _feature_labels(model):
    names = getattr(model, "feature_names_in_", None)
    if names is not None and len(names) == model.means_.shape[1]:
        return [str(n) for n in names]
    return [f"feature {j}" for j in range(model.means_.shape[1])]


# ----------------------------------------------------------------------
# components
# ----------------------------------------------------------------------


def components(model, X=None, *, ax=None, sigmas=(1, 2, 3), max_points=20000,
               random_state=0):
    """Draw the components of a fitted mixture: data, sigma ellipses, means.

    For 2-D data the plot is in the data's coordinates.  For more features
    it is on the first two principal components: of the plotted rows of X
    when X is given, else of the mixture's own covariance
    ``sum_k w_k (Sigma_k + mu_k mu_k^T) - mu mu^T``; coordinates are centred
    on the mean of the same (the plotted rows, or the mixture mean ``mu``),
    each covariance is projected as ``P^T Sigma_k P`` and the axes are
    labelled ``"PC1 (xx.x% of variance)"``.  Each axis's sign is fixed by
    the model (that of the mixture's principal axis closest to it), so plots
    with and without X are oriented alike.  For 1-D data the weighted
    component densities ``w_k N(x; mu_k, sigma_k^2)`` and the mixture
    density are drawn instead (over a density histogram of X if given);
    ``sigmas`` is then unused.

    The ``s``-sigma ellipse of a component is the set of points at
    Mahalanobis distance ``s`` from its mean in the plotted plane:
    width ``2 s sqrt(lambda_1)`` and height ``2 s sqrt(lambda_2)`` along the
    eigenvectors of the projected 2x2 covariance.  In two dimensions the
    1-, 2- and 3-sigma ellipses hold about 39%, 86% and 99% of a
    component's mass (not 68/95/99.7% as on a line).

    Parameters
    ----------
    model : fitted GaussianMixture
        A fastem or scikit-learn Gaussian mixture, any covariance type.
    X : array-like of shape (n_samples, n_features), default=None
        Data to scatter, coloured by ``model.predict``.  None draws the
        components alone.
    ax : matplotlib.axes.Axes, default=None
        Where to draw; None creates a new figure.
    sigmas : float or sequence of float, default=(1, 2, 3)
        Mahalanobis radii of the ellipses drawn per component.
    max_points : int, default=20000
        At most this many rows of X (drawn at random without replacement)
        are scattered, predicted and, for d > 2, used for the principal
        components.
    random_state : int, RandomState instance or None, default=0
        Seed of that subsample.

    Returns
    -------
    ax : matplotlib.axes.Axes
        With one ``Ellipse`` patch per component and sigma (component-major
        order, ``len(sigmas) * n_components`` patches), one ``Line2D`` per
        component marking its mean (labelled ``"component k (w=...)"``), and
        a ``PathCollection`` of the data if X is given.

    Raises
    ------
    ValueError
        If X is not 2-D, has no rows or not the model's number of features,
        ``sigmas`` or ``max_points`` is invalid, or (d > 2) X has a single
        row to take principal components of.
    sklearn.exceptions.NotFittedError
        If the model is not fitted.
    TypeError
        If ``model`` is not a Gaussian mixture or ``ax`` is not an Axes.
    """
    _check_model(model, "components")
    sigmas = _check_sigmas(sigmas)
    max_points = _check_positive_int(max_points, "max_points", "components")
    means = np.asarray(model.means_, dtype=np.float64)
    weights = np.asarray(model.weights_, dtype=np.float64)
    k, d = means.shape
    covs = _component_covariances(model)
    sub = data = None
    if X is not None:
        sub, data = _subsample(X, max_points, random_state, d)
    ax = _new_axes(ax, "components")
    colours = _colours(k)
    if d == 1:
        return _densities_1d(ax, model, weights, means[:, 0], covs[:, 0, 0], data,
                             colours)

    if d == 2:
        proj = np.eye(2)
        centre = np.zeros(2)
        xlabel, ylabel = _feature_labels(model)
    else:
        if data is not None:
            if data.shape[0] < 2:
                raise ValueError(
                    "fastem.plot.components: the principal components of X need at "
                    f"least 2 rows, but X has {data.shape[0]}. Pass more rows, or "
                    "X=None to project on the model's own principal components."
                )
            centre = data.mean(axis=0)
            total = np.cov(data, rowvar=False)
        else:
            centre, total = _mixture_covariance(model)
        vals, vecs = _principal_axes(total)
        proj = vecs[:, :2]
        if data is not None:
            # the signs of the model's own principal axes, so that plots with
            # and without X (or of two samples) are oriented alike
            _, ref = _principal_axes(_mixture_covariance(model)[1])
            proj = proj * np.where(np.sum(proj * ref[:, :2], axis=0) < 0, -1.0, 1.0)
        ratio = vals[:2] / vals.sum() if vals.sum() > 0 else np.zeros(2)
        xlabel, ylabel = (f"PC{j + 1} ({100 * ratio[j]:.1f}% of variance)" for j in (0, 1))

    if data is not None:
        labels = np.asarray(model.predict(sub), dtype=np.int64)
        points = (data - centre) @ proj
        size = next(s for limit, s in _POINT_SIZE if limit is None or len(points) <= limit)
        ax.scatter(points[:, 0], points[:, 1], c=colours[labels], s=size, alpha=0.5,
                   linewidths=0, rasterized=len(points) > 5000, zorder=1)

    centres = (means - centre) @ proj
    alphas = np.linspace(1.0, 0.4, len(sigmas)) if len(sigmas) > 1 else [1.0]
    for j in range(k):
        cov2 = proj.T @ covs[j] @ proj
        for s, alpha in zip(sigmas, alphas):
            width, height, angle = _ellipse_parameters(cov2, s)
            ax.add_patch(Ellipse(tuple(centres[j]), width, height, angle=angle,
                                 facecolor="none", edgecolor=colours[j], linewidth=1.5,
                                 alpha=alpha, zorder=2))
        ax.plot(centres[j, 0], centres[j, 1], linestyle="none", marker="X", markersize=9,
                color=colours[j], markeredgecolor="black", zorder=3,
                label=f"component {j} (w={weights[j]:.2f})")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(f"{k} components ({model.covariance_type}); ellipses at "
                 f"{', '.join(f'{s:g}' for s in sigmas)} sigma")
    ax.autoscale_view()
    if k <= 10:
        ax.legend(loc="best", fontsize="small")
    return ax


def _densities_1d(ax, model, weights, means, variances, data, colours):
    """Weighted component densities and the mixture density of a 1-D model."""
    sds = np.sqrt(np.clip(variances, 0.0, None))
    lo, hi = float(np.min(means - 4 * sds)), float(np.max(means + 4 * sds))
    if data is not None:
        lo, hi = min(lo, float(data.min())), max(hi, float(data.max()))
        ax.hist(data[:, 0], bins=50, density=True, color="0.8", label="X (density)")
    x = np.linspace(lo, hi, 512)
    with np.errstate(divide="ignore", invalid="ignore"):
        dens = weights[:, None] * np.exp(-0.5 * (x - means[:, None]) ** 2 / variances[:, None]) \
            / np.sqrt(2 * np.pi * variances[:, None])
    for j in range(len(means)):
        ax.plot(x, dens[j], color=colours[j], linewidth=2.5,
                label=f"component {j} (w={weights[j]:.2f})")
    ax.plot(x, dens.sum(axis=0), color="black", linewidth=1, linestyle="--",
            label="mixture")
    ax.set_xlabel(_feature_labels(model)[0])
    ax.set_ylabel("density")
    ax.set_title(f"{len(means)} components ({model.covariance_type})")
    if len(means) <= 10:
        ax.legend(loc="best", fontsize="small")
    return ax


# ----------------------------------------------------------------------
# convergence
# ----------------------------------------------------------------------


def convergence(model, *, ax=None):
    """Plot the mean log-likelihood at every EM iteration (``lower_bounds_``).

    The x axis counts iterations 1..n (SQUAREM cycles with
    ``accelerate="squarem"``; mini-batch updates for
    :class:`fastem.MiniBatchGaussianMixture`, whose curve is the running
    average of the mini-batch log-likelihood).  The final value is marked
    with a star labelled with the convergence state.

    Parameters
    ----------
    model : fitted GaussianMixture
        Any model with ``lower_bounds_`` (fastem's, or scikit-learn's from
        version 1.7).
    ax : matplotlib.axes.Axes, default=None
        Where to draw; None creates a new figure.

    Returns
    -------
    ax : matplotlib.axes.Axes
        Its first line is the curve (y-data ``lower_bounds_``), its second
        the final-value marker.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If the model is not fitted.
    ValueError
        If the fitted model has no ``lower_bounds_`` or no iterations were
        recorded (``max_iter=0``).
    """
    _check_any_model(model, "convergence")
    history = getattr(model, "lower_bounds_", None)
    if history is None:
        raise ValueError(
            f"fastem.plot.convergence needs the per-iteration log-likelihoods in "
            f"lower_bounds_, but this fitted {type(model).__name__} has none. Fit with "
            "fastem.GaussianMixture (or scikit-learn >= 1.7)."
        )
    y = np.asarray(history, dtype=np.float64).ravel()
    if y.size == 0:
        raise ValueError(
            "fastem.plot.convergence: the model recorded no iterations (lower_bounds_ is "
            "empty, e.g. after max_iter=0). Fit with max_iter >= 1."
        )
    x = np.arange(1, y.size + 1)
    variational = hasattr(model, "weight_concentration_")
    quantity = "variational lower bound" if variational else "mean log-likelihood"
    online = hasattr(model, "n_steps_") and hasattr(model, "batch_size")
    squarem = getattr(model, "accelerate", None) == "squarem"
    unit = "mini-batch update" if online else ("SQUAREM cycle" if squarem else "EM iteration")
    ax = _new_axes(ax, "convergence")
    ax.plot(x, y, marker="o" if y.size <= 50 else None, markersize=3,
            label="running average of mini-batch log-likelihood" if online else quantity)
    converged = bool(getattr(model, "converged_", False))
    state = "converged" if converged else "not converged"
    ax.plot([x[-1]], [y[-1]], linestyle="none", marker="*", markersize=14,
            color="tab:green" if converged else "tab:red",
            label=f"{state} after {y.size} {unit}s: {y[-1]:.4f}")
    ax.set_xlabel(unit)
    ax.set_ylabel("lower bound" if variational else "mean log-likelihood per row")
    ax.set_title("variational EM convergence" if variational else "EM convergence")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(loc="lower right", fontsize="small")
    return ax


# ----------------------------------------------------------------------
# selection
# ----------------------------------------------------------------------


def _column(table, name):
    """One column of a pandas DataFrame or a NumPy structured array."""
    return np.asarray(table[name])


def _check_criteria(criteria):
    if isinstance(criteria, str):
        criteria = (criteria,)
    try:
        values = list(criteria)
    except TypeError:
        raise ValueError(
            f"fastem.plot.selection: criteria must be a string or a sequence of strings "
            f"from {list(CRITERIA)}, but got {criteria!r}."
        ) from None
    out = []
    for c in values:
        if not isinstance(c, str) or c.lower() not in CRITERIA:
            raise ValueError(
                f"fastem.plot.selection: unknown criterion {c!r}. Expected any of "
                f"{list(CRITERIA)}, e.g. criteria=('bic', 'aic')."
            )
        if c.lower() not in out:
            out.append(c.lower())
    if not out:
        raise ValueError(
            "fastem.plot.selection: criteria is empty. Pass at least one of "
            f"{list(CRITERIA)}."
        )
    return out


def selection(result, *, ax=None, criteria=("bic", "aic")):
    """Plot BIC/AIC/ICL against ``n_components``, one line per covariance
    type and criterion, with the selected model marked.

    Colours tell covariance types apart, line styles criteria (BIC solid,
    AIC dashed, ICL dotted).  Failed fits (NaN criteria in the table) are
    left out of their line; a covariance type whose every fit failed gets no
    line, and the title counts the failures.  All criteria are on
    scikit-learn's scale: lower is better.

    Parameters
    ----------
    result : SelectionResult
        The outcome of :func:`fastem.select`.  Its ``table`` may be a pandas
        DataFrame or a NumPy structured array.
    ax : matplotlib.axes.Axes, default=None
        Where to draw; None creates a new figure.
    criteria : str or sequence of {"bic", "aic", "icl"}, default=("bic", "aic")
        The criteria to draw.

    Returns
    -------
    ax : matplotlib.axes.Axes
        One line per (criterion, covariance type), labelled e.g.
        ``"full BIC"``, with x the grid's ``n_components`` (sorted) and y the
        table's values; then one marker line for the best model, labelled
        ``"best by BIC: ..."``.  The legend shows one entry per covariance
        type (colour) and per criterion (line style), not per line.

    Raises
    ------
    TypeError
        If ``result`` is not a SelectionResult.
    ValueError
        For an unknown or empty ``criteria``.
    """
    if not isinstance(result, SelectionResult):
        raise TypeError(
            "fastem.plot.selection expects the SelectionResult returned by "
            f"fastem.select(...), but got {type(result).__name__}."
        )
    criteria = _check_criteria(criteria)
    table = result.table
    ks = _column(table, "n_components").astype(np.int64)
    types = _column(table, "covariance_type").astype(str)
    order_types = list(result.covariance_types) or list(dict.fromkeys(types))
    colours = dict(zip(order_types, _colours(len(order_types))))
    family = getattr(result, "family", "gaussian")
    names = {ct: ct or family for ct in order_types}  # '' for a family without types
    ax = _new_axes(ax, "selection")
    for crit in criteria:
        values = _column(table, crit).astype(np.float64)
        for ct in order_types:
            rows = np.flatnonzero((types == ct) & np.isfinite(values))
            if rows.size == 0:
                continue
            rows = rows[np.argsort(ks[rows], kind="stable")]
            ax.plot(ks[rows], values[rows], linestyle=_CRITERION_STYLE[crit], marker="o",
                    markersize=4, color=colours[ct], label=f"{names[ct]} {crit.upper()}")

    best = result.best_index_
    on = result.criterion if result.criterion in criteria else criteria[0]
    best_k = int(ks[best])
    best_value = float(_column(table, on)[best])
    p = result.best_params_
    label = (f"best by {result.criterion.upper()}: k={p['n_components']}, "
             f"{p.get('covariance_type', family)}")
    if on != result.criterion:
        label += f" (shown on {on.upper()})"
    ax.plot([best_k], [best_value], linestyle="none", marker="o", markersize=14,
            markerfacecolor="none", markeredgecolor="black", markeredgewidth=2, label=label)
    # a compact legend: colour = covariance type, line style = criterion
    drawn = {line.get_label() for line in ax.lines}
    handles = [Line2D([], [], color=colours[ct], marker="o", markersize=4, label=names[ct])
               for ct in order_types
               if any(f"{names[ct]} {c.upper()}" in drawn for c in criteria)]
    if len(criteria) > 1:
        handles += [Line2D([], [], color="0.3", linestyle=_CRITERION_STYLE[c], label=c.upper())
                    for c in criteria]
    handles.append(ax.lines[-1])
    n_failed = int(np.sum(_column(table, "error").astype(str) != ""))
    title = "Model selection (lower is better)"
    if n_failed:
        title += f"; {n_failed} failed fit(s) not shown"
    ax.set_title(title)
    ax.set_xlabel("n_components")
    ax.set_ylabel(" / ".join(c.upper() for c in criteria))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(handles=handles, loc="best", fontsize="small")
    return ax


# ----------------------------------------------------------------------
# log_density
# ----------------------------------------------------------------------


def log_density(model, X, *, ax=None, anomaly_quantile=None, bins=50):
    """Histogram of the log-density ``model.score_samples(X)`` of every row,
    with an optional anomaly threshold.

    With ``anomaly_quantile=q`` a vertical dashed line is drawn at
    ``np.quantile(score_samples(X), q)``; rows with a log-density strictly
    below it are "flagged", and their number is in the line's legend label.

    Parameters
    ----------
    model : fitted GaussianMixture
    X : array-like of shape (n_samples, n_features)
        Anything ``model.score_samples`` accepts.
    ax : matplotlib.axes.Axes, default=None
        Where to draw; None creates a new figure.
    anomaly_quantile : float in (0, 1), default=None
        Quantile of the log-densities at which to draw the threshold, e.g.
        0.01 flags the 1% least likely rows.  None draws no threshold.
    bins : int, default=50
        Number of histogram bins.

    Returns
    -------
    ax : matplotlib.axes.Axes
        ``bins`` bar patches, and with ``anomaly_quantile`` one vertical
        line labelled ``"q quantile = t: m of n rows flagged"``.

    Raises
    ------
    ValueError
        If ``anomaly_quantile`` is not in (0, 1), ``bins`` is not a positive
        integer, or X does not fit the model.
    """
    _check_any_model(model, "log_density")
    bins = _check_positive_int(bins, "bins", "log_density")
    if anomaly_quantile is not None:
        q = anomaly_quantile
        if (isinstance(q, bool) or not isinstance(q, Real) or not np.isfinite(q)
                or not 0.0 < q < 1.0):
            raise ValueError(
                "fastem.plot.log_density: anomaly_quantile must be a number strictly "
                f"between 0 and 1 (e.g. 0.01 for the lowest 1%), or None, but got {q!r}."
            )
    if X is None:
        raise ValueError(
            "fastem.plot.log_density needs the data X whose log-densities to show, but "
            "got X=None."
        )
    X, _ = _rows_of(X, _n_features(model), "log_density")
    scores = np.asarray(model.score_samples(X), dtype=np.float64).ravel()
    finite = np.isfinite(scores)
    n = scores.size
    ax = _new_axes(ax, "log_density")
    label = f"{n} rows"
    if not finite.all():
        label += f" ({n - int(finite.sum())} with non-finite log-density not shown)"
    ax.hist(scores[finite], bins=bins, color="tab:blue", alpha=0.8, label=label)
    if anomaly_quantile is not None:
        threshold = float(np.quantile(scores, anomaly_quantile))
        flagged = int(np.sum(scores < threshold))
        ax.axvline(threshold, color="tab:red", linestyle="--", linewidth=1.5,
                   label=f"{anomaly_quantile:g} quantile = {threshold:.4g}: {flagged} of "
                         f"{n} rows flagged")
    ax.set_xlabel("log-density (score_samples)")
    ax.set_ylabel("rows")
    ax.set_title("Log-density of each row")
    ax.legend(loc="upper left", fontsize="small")
    return ax



# ----------------------------------------------------------------------
# profiles (discrete families)
# ----------------------------------------------------------------------

#: Cells up to which :func:`profiles` writes each value in its cell.
_ANNOTATE_MAX_CELLS = 150


def _profile_matrix(model, attr, labels):
    """``(matrix, column labels, boundaries between features)`` of a
    discrete model's parameter ``attr``: (K, d), or the (K, C_j) blocks of a
    categorical mixture side by side, their columns labelled
    ``feature=category``."""
    value = getattr(model, attr)
    if not isinstance(value, list):
        return np.asarray(value, dtype=np.float64), list(labels), []
    categories = getattr(model, "categories_", None)
    blocks, columns, bounds = [], [], []
    for j, (block, name) in enumerate(zip(value, labels)):
        block = np.asarray(block, dtype=np.float64)
        levels = categories[j] if categories is not None else range(block.shape[1])
        blocks.append(block)
        columns += [f"{name}={c}" for c in levels]
        bounds.append(len(columns))
    return np.hstack(blocks), columns, bounds[:-1]


def profiles(model, *, ax=None, feature_names=None, annotate=None, cmap="viridis"):
    """Heatmap of a discrete mixture's component profiles: one row per
    component (labelled with its weight), one column per feature -- for a
    :class:`fastem.CategoricalMixture` one column per category of each
    feature, features separated by white lines.

    The colour is the component's parameter: the probability of a 1
    (Bernoulli), of a success (binomial), of the feature's share of the
    counts (multinomial) or of the category (categorical), on a 0-1 scale;
    the rate (Poisson), from 0 to the largest rate.

    Parameters
    ----------
    model : fitted discrete mixture
        ``BernoulliMixture``, ``BinomialMixture``, ``PoissonMixture``,
        ``MultinomialMixture``, ``CategoricalMixture`` or an online
        counterpart.
    ax : matplotlib.axes.Axes, default=None
        Where to draw; None creates a new figure.
    feature_names : sequence of str, default=None
        One name per feature; default ``feature_names_in_`` or
        ``"feature j"``.
    annotate : bool, default=None
        Write each value in its cell; None: when there are at most 150 cells.
    cmap : str or matplotlib colormap, default="viridis"

    Returns
    -------
    ax : matplotlib.axes.Axes
        Its one image (``ax.images[0]``) holds the (n_components, columns)
        matrix; the y tick labels read ``"k (w=0.31)"``, the x tick labels
        the feature (``feature=category``) names; with a colour bar.

    Raises
    ------
    TypeError
        If the model is not one of fastem's discrete mixtures (for a
        Gaussian mixture use :func:`components`).
    sklearn.exceptions.NotFittedError
        If the model is not fitted.
    ValueError
        If ``feature_names`` does not give one name per feature.
    """
    family = family_of(model)
    if family is None or family.covariance or not family.parameters:
        raise TypeError(
            "fastem.plot.profiles expects a discrete mixture (fastem.BernoulliMixture, "
            "BinomialMixture, PoissonMixture, MultinomialMixture, CategoricalMixture...), "
            f"but got {type(model).__name__}. For a Gaussian mixture use "
            "fastem.plot.components."
        )
    attr = family.parameters[0]
    check_is_fitted(model, ["weights_", attr])
    d = _n_features(model)
    if feature_names is None:
        names = getattr(model, "feature_names_in_", None)
        labels = [str(n) for n in names] if names is not None and len(names) == d else \
            [f"feature {j}" for j in range(d)]
    else:
        labels = [str(n) for n in feature_names] if not isinstance(feature_names, str) \
            else [feature_names]
        if len(labels) != d:
            raise ValueError(
                f"fastem.plot.profiles: feature_names should give one name per feature "
                f"({d}), but has {len(labels)}."
            )
    matrix, columns, bounds = _profile_matrix(model, attr, labels)
    weights = np.asarray(model.weights_, dtype=np.float64)
    K = matrix.shape[0]
    is_rate = attr == "rates_"
    top = float(matrix.max()) if is_rate and matrix.size else 1.0
    ax = _new_axes(ax, "profiles")
    image = ax.imshow(matrix, aspect="auto", cmap=cmap, vmin=0.0, vmax=top or 1.0,
                      interpolation="nearest")
    ax.figure.colorbar(image, ax=ax, label="rate" if is_rate else "probability")
    ax.set_yticks(range(K), [f"{k} (w={weights[k]:.2f})" for k in range(K)])
    ax.set_xticks(range(len(columns)), columns, rotation=90 if len(columns) > 6 else 0)
    for b in bounds:
        ax.axvline(b - 0.5, color="white", linewidth=2)
    if annotate is None:
        annotate = matrix.size <= _ANNOTATE_MAX_CELLS
    if annotate:
        for (k, j), v in np.ndenumerate(matrix):
            ax.text(j, k, f"{v:.2f}" if v < 100 else f"{v:.3g}", ha="center", va="center",
                    fontsize="x-small", color="black" if v > 0.6 * (top or 1.0) else "white")
    ax.set_ylabel("component (weight)")
    ax.set_xlabel("category of each feature" if bounds or columns != labels else "feature")
    ax.set_title(f"{type(model).__name__}: component profiles")
    return ax


# ----------------------------------------------------------------------
# weights
# ----------------------------------------------------------------------


def weights(model, *, ax=None, threshold=0.01):
    """Plot the fitted weights, one bar per component in the model's order.

    Components of weight ``threshold`` or more are drawn in their colour of
    :func:`components`, the others in grey: for a
    :class:`fastem.BayesianGaussianMixture`, the components its prior
    switched off, so the title counts the components the data use.

    Parameters
    ----------
    model : fitted mixture
        Any fitted fastem mixture (or scikit-learn's), with ``weights_``.
    ax : matplotlib.axes.Axes, default=None
        Where to draw; None creates a new figure.
    threshold : float in [0, 1), default=0.01
        The weight below which a component counts as unused (drawn as a
        dashed line).

    Returns
    -------
    ax : matplotlib.axes.Axes
        Its bars (``ax.patches``) are the weights, in component order.
    """
    _check_any_model(model, "weights")
    if isinstance(threshold, bool) or not isinstance(threshold, Real) \
            or not 0.0 <= threshold < 1.0:
        raise ValueError(f"fastem.plot.weights expects threshold in [0, 1), but got "
                         f"{threshold!r}.")
    w = np.asarray(model.weights_, dtype=np.float64)
    k = w.size
    used = w >= threshold
    colours = _colours(k)
    ax = _new_axes(ax, "weights")
    ax.bar(np.arange(k), w, color=[colours[j] if used[j] else "lightgrey" for j in range(k)],
           edgecolor="black", linewidth=0.5)
    ax.axhline(threshold, color="grey", linestyle="--", linewidth=1,
               label=f"threshold {threshold:g}")
    ax.set_xlabel("component")
    ax.set_ylabel("weight")
    ax.set_title(f"fitted weights: {int(used.sum())} of {k} components weigh {threshold:g} "
                 "or more")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(loc="upper right", fontsize="small")
    return ax
