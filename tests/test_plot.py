"""fastem.plot: what is drawn (patches, lines, bars, labels), not just that it runs."""

import copy
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.collections import PathCollection
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse, Rectangle
from sklearn.exceptions import NotFittedError

import fastem
from fastem import plot
from fastem.select import SelectionResult

ROOT = Path(__file__).resolve().parents[1]
COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _blobs(n=300, d=2, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [6.0, 1.0], [2.0, 7.0]])
    centres = np.hstack([centres, rng.normal(scale=3.0, size=(3, d - 2))]) if d > 2 \
        else centres[:, :d]
    labels = rng.integers(0, 3, size=n)
    X = np.empty((n, d))
    for j in range(3):
        a = rng.normal(size=(d, d)) / np.sqrt(d) + 0.6 * np.eye(d)
        rows = labels == j
        X[rows] = rng.normal(size=(rows.sum(), d)) @ a.T + centres[j]
    return X


@pytest.fixture(scope="module")
def X2():
    return _blobs()


@pytest.fixture(scope="module")
def models2(X2):
    return {ct: fastem.GaussianMixture(3, covariance_type=ct, random_state=0).fit(X2)
            for ct in COVARIANCE_TYPES}


@pytest.fixture(scope="module")
def selection_result(X2):
    return fastem.select(X2, n_components=range(1, 4), random_state=0)


def _covariance_from_precision(model, k):
    """Component k's d x d covariance, from precisions_ (independent of the
    plot module's reshaping of covariances_)."""
    prec = np.asarray(model.precisions_)
    d = model.means_.shape[1]
    ct = model.covariance_type
    if ct == "full":
        return np.linalg.inv(prec[k])
    if ct == "tied":
        return np.linalg.inv(prec)
    if ct == "diag":
        return np.diag(1.0 / prec[k])
    return np.eye(d) / prec[k]


def _ellipse_covariance(e, sigma):
    """The 2x2 covariance whose sigma ellipse is the patch e."""
    t = np.radians(e.angle)
    r = np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]])
    lam = np.diag([(e.width / (2 * sigma)) ** 2, (e.height / (2 * sigma)) ** 2])
    return r @ lam @ r.T


def _ellipses(ax):
    return [p for p in ax.patches if isinstance(p, Ellipse)]


# ----------------------------------------------------------------------
# optional dependency
# ----------------------------------------------------------------------


def test_import_fastem_without_matplotlib_and_plot_error_message():
    code = """
import sys

class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError("No module named 'matplotlib' (blocked)")
        return None

sys.meta_path.insert(0, Block())
import fastem
assert "matplotlib" not in sys.modules, "import fastem imported matplotlib"
try:
    import fastem.plot
except ImportError as exc:
    print("MESSAGE:", exc)
else:
    raise SystemExit("fastem.plot imported without matplotlib")
"""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], check=False, cwd=ROOT,
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "MESSAGE:" in out.stdout
    assert 'pip install "fastem[plot]"' in out.stdout
    assert "matplotlib" in out.stdout


# ----------------------------------------------------------------------
# components
# ----------------------------------------------------------------------


def test_components_full_2d_draws_data_ellipses_and_means(models2, X2):
    gm = models2["full"]
    ax = plot.components(gm, X2)
    ellipses = _ellipses(ax)
    assert len(ellipses) == 3 * 3
    # the data: every row (n < max_points), coloured by predicted component
    scatters = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(scatters) == 1
    np.testing.assert_allclose(scatters[0].get_offsets(), X2)
    colours = scatters[0].get_facecolors()[:, :3]
    labels = gm.predict(X2)
    for k in range(3):
        assert len(np.unique(colours[labels == k], axis=0)) == 1
    assert len(np.unique(colours, axis=0)) == 3
    # ellipses: component-major, sigmas 1, 2, 3, sizes from the eigenvalues
    for k in range(3):
        cov = _covariance_from_precision(gm, k)
        lam, vec = np.linalg.eigh(cov)
        for i, s in enumerate((1, 2, 3)):
            e = ellipses[3 * k + i]
            np.testing.assert_allclose(e.center, gm.means_[k])
            np.testing.assert_allclose(e.width, 2 * s * np.sqrt(lam[1]), rtol=1e-6)
            np.testing.assert_allclose(e.height, 2 * s * np.sqrt(lam[0]), rtol=1e-6)
            angle = np.degrees(np.arctan2(vec[1, 1], vec[0, 1]))
            assert abs((e.angle - angle + 90) % 180 - 90) < 1e-6
            np.testing.assert_allclose(_ellipse_covariance(e, s), cov, rtol=1e-6,
                                       atol=1e-12)
    # means marked, one line per component
    means = [line for line in ax.lines if line.get_label().startswith("component")]
    assert len(means) == 3
    for k, line in enumerate(means):
        np.testing.assert_allclose(np.ravel(line.get_xydata()), gm.means_[k])
    assert ax.get_xlabel() == "feature 0" and ax.get_ylabel() == "feature 1"


@pytest.mark.parametrize("covariance_type", ["tied", "diag", "spherical"])
def test_components_ellipses_every_covariance_type(models2, covariance_type):
    gm = models2[covariance_type]
    sigmas = (1, 2.5)
    ax = plot.components(gm, sigmas=sigmas)  # no data: components only
    ellipses = _ellipses(ax)
    assert len(ellipses) == gm.n_components * len(sigmas)
    assert not [c for c in ax.collections if isinstance(c, PathCollection)]
    for k in range(gm.n_components):
        cov = _covariance_from_precision(gm, k)
        lam = np.linalg.eigvalsh(cov)
        for i, s in enumerate(sigmas):
            e = ellipses[len(sigmas) * k + i]
            np.testing.assert_allclose(e.center, gm.means_[k])
            np.testing.assert_allclose([e.width, e.height], 2 * s * np.sqrt(lam[::-1]),
                                       rtol=1e-6)
            np.testing.assert_allclose(_ellipse_covariance(e, s), cov, rtol=1e-6,
                                       atol=1e-12)
            if covariance_type == "spherical":
                assert e.width == pytest.approx(e.height)
            if covariance_type == "diag":  # axis-aligned
                assert abs((e.angle + 45) % 90 - 45) < 1e-6
    if covariance_type == "tied":  # one shared shape
        shapes = {(round(e.width, 9), round(e.height, 9), round(e.angle, 6))
                  for e in ellipses[::len(sigmas)]}
        assert len(shapes) == 1


def test_components_pca_projection_for_4_features():
    X = _blobs(n=400, d=4, seed=1)
    gm = fastem.GaussianMixture(3, random_state=0).fit(X)
    ax = plot.components(gm, X)
    assert len(_ellipses(ax)) == 3 * 3
    lam, vec = np.linalg.eigh(np.cov(X, rowvar=False))
    lam, vec = lam[::-1], vec[:, ::-1]
    pct = 100 * lam / lam.sum()
    assert re.fullmatch(r"PC1 \(\d+\.\d% of variance\)", ax.get_xlabel())
    assert ax.get_xlabel() == f"PC1 ({pct[0]:.1f}% of variance)"
    assert ax.get_ylabel() == f"PC2 ({pct[1]:.1f}% of variance)"
    # each component's covariance projected as P^T Sigma P (up to the signs of P)
    p = vec[:, :2]
    scatter = next(c for c in ax.collections if isinstance(c, PathCollection))
    np.testing.assert_allclose(np.abs(scatter.get_offsets()),
                               np.abs((X - X.mean(axis=0)) @ p), atol=1e-9)
    ellipses = _ellipses(ax)
    for k in range(3):
        proj = p.T @ gm.covariances_[k] @ p
        lam2 = np.linalg.eigvalsh(proj)
        e = ellipses[3 * k]
        np.testing.assert_allclose([e.width, e.height], 2 * np.sqrt(lam2[::-1]), rtol=1e-6)
        np.testing.assert_allclose(np.abs(e.center), np.abs((gm.means_[k] - X.mean(0)) @ p),
                                   atol=1e-9)
    # oriented like the plot of the model alone (the axes' signs come from the model)
    alone = [e.center for e in _ellipses(plot.components(gm))[::3]]
    with_data = np.array([e.center for e in ellipses[::3]])
    big = np.abs(with_data) > 0.5
    np.testing.assert_array_equal(np.sign(with_data)[big], np.sign(alone)[big])


def test_components_pca_from_the_model_without_data():
    X = _blobs(n=400, d=4, seed=1)
    gm = fastem.GaussianMixture(3, covariance_type="diag", random_state=0).fit(X)
    ax = plot.components(gm)
    w, mu = gm.weights_, gm.means_
    covs = np.array([np.diag(c) for c in gm.covariances_])
    m = w @ mu
    total = sum(w[k] * (covs[k] + np.outer(mu[k], mu[k])) for k in range(3)) - np.outer(m, m)
    # the formula is the covariance of the mixture: compare with a large sample
    sample, _ = gm.sample(200_000)
    np.testing.assert_allclose(total, np.cov(sample, rowvar=False), atol=0.1)
    lam = np.linalg.eigvalsh(total)[::-1]
    pct = 100 * lam / lam.sum()
    assert ax.get_xlabel() == f"PC1 ({pct[0]:.1f}% of variance)"
    assert ax.get_ylabel() == f"PC2 ({pct[1]:.1f}% of variance)"
    assert len(_ellipses(ax)) == 9


def test_components_subsamples_reproducibly(models2):
    X = np.vstack([_blobs(seed=s) for s in range(5)])  # 1500 rows
    gm = models2["full"]
    offsets = []
    for _ in range(2):
        ax = plot.components(gm, X, max_points=200, random_state=3, sigmas=2)
        scatter = next(c for c in ax.collections if isinstance(c, PathCollection))
        offsets.append(np.asarray(scatter.get_offsets()))
        assert len(_ellipses(ax)) == 3
    assert offsets[0].shape == (200, 2)
    np.testing.assert_array_equal(offsets[0], offsets[1])
    # the rows are rows of X, without repetition
    rows = {tuple(r) for r in X}
    assert all(tuple(r) in rows for r in offsets[0])
    assert len({tuple(r) for r in offsets[0]}) == 200


def test_components_dataframe_and_memmap(X2, models2, tmp_path):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(X2, columns=["duration", "waiting"])
    gm = fastem.GaussianMixture(3, random_state=0).fit(df)
    ax = plot.components(gm, df, max_points=100)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("duration", "waiting")
    scatter = next(c for c in ax.collections if isinstance(c, PathCollection))
    assert scatter.get_offsets().shape == (100, 2)
    mm = np.lib.format.open_memmap(tmp_path / "X.npy", mode="w+", shape=X2.shape)
    mm[:] = X2
    ax = plot.components(models2["full"], mm, max_points=50)
    scatter = next(c for c in ax.collections if isinstance(c, PathCollection))
    assert scatter.get_offsets().shape == (50, 2)


def test_components_one_feature_draws_densities(X2):
    X1 = X2[:, :1]
    gm = fastem.GaussianMixture(2, random_state=0).fit(X1)
    ax = plot.components(gm, X1)
    assert not _ellipses(ax)
    labels = [line.get_label() for line in ax.lines]
    assert labels == [f"component 0 (w={gm.weights_[0]:.2f})",
                      f"component 1 (w={gm.weights_[1]:.2f})", "mixture"]
    x, y = ax.lines[-1].get_data()
    np.testing.assert_allclose(y, np.exp(gm.score_samples(x.reshape(-1, 1))), rtol=1e-8)
    comp = np.array([line.get_ydata() for line in ax.lines[:2]])
    np.testing.assert_allclose(comp.sum(axis=0), y, rtol=1e-10)


def test_components_draws_on_a_given_axes_without_pyplot(models2):
    fig = Figure()
    ax = fig.add_subplot()
    before = plt.get_fignums()
    assert plot.components(models2["diag"], ax=ax) is ax
    assert plot.convergence(models2["diag"], ax=ax) is ax
    assert plt.get_fignums() == before


def test_components_bad_inputs(models2, X2):
    gm = models2["full"]
    with pytest.raises(ValueError, match="X has 3 features, but the model was fitted on 2"):
        plot.components(gm, np.ones((5, 3)))
    with pytest.raises(ValueError, match=r"shape \(n_samples, n_features\).*reshape"):
        plot.components(gm, X2[:, 0])
    with pytest.raises(ValueError, match="X has no rows"):
        plot.components(gm, np.ones((0, 2)))
    for sigmas in [(), (1, -2), (np.inf,), "abc"]:
        with pytest.raises(ValueError, match="sigmas must"):
            plot.components(gm, sigmas=sigmas)
    for max_points in [0, -5, 2.5, True]:
        with pytest.raises(ValueError, match="max_points must be a positive integer"):
            plot.components(gm, X2, max_points=max_points)
    with pytest.raises(NotFittedError):
        plot.components(fastem.GaussianMixture(2))
    with pytest.raises(TypeError, match="expects a Gaussian mixture"):
        plot.components(np.ones(3))
    with pytest.raises(TypeError, match="ax to be a matplotlib Axes"):
        plot.components(gm, ax="left")


# ----------------------------------------------------------------------
# convergence
# ----------------------------------------------------------------------


def test_convergence_plots_lower_bounds(models2):
    gm = models2["full"]
    ax = plot.convergence(gm)
    curve, final = ax.lines[:2]
    n = len(gm.lower_bounds_)
    assert n == gm.n_iter_ >= 2
    np.testing.assert_array_equal(curve.get_xdata(), np.arange(1, n + 1))
    np.testing.assert_array_equal(curve.get_ydata(), gm.lower_bounds_)
    np.testing.assert_array_equal(final.get_xydata(), [[n, gm.lower_bounds_[-1]]])
    assert gm.converged_ and final.get_label().startswith(f"converged after {n} EM iter")
    assert ax.get_xlabel() == "EM iteration"


def test_convergence_not_converged_and_minibatch(X2):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm = fastem.GaussianMixture(3, max_iter=2, tol=0, random_state=0).fit(X2)
        mb = fastem.MiniBatchGaussianMixture(3, batch_size=50, max_iter=3,
                                             random_state=0).fit(X2)
    ax = plot.convergence(gm)
    assert not gm.converged_
    assert ax.lines[1].get_label().startswith("not converged after 2 EM iterations")
    ax = plot.convergence(mb)
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), mb.lower_bounds_)
    assert ax.get_xlabel() == "mini-batch update"


def test_convergence_errors(models2):
    with pytest.raises(NotFittedError):
        plot.convergence(fastem.GaussianMixture(2))

    old = copy.deepcopy(models2["full"])  # as fitted by scikit-learn < 1.7
    del old.lower_bounds_
    with pytest.raises(ValueError, match="has none.*scikit-learn >= 1.7"):
        plot.convergence(old)
    old.lower_bounds_ = []
    with pytest.raises(ValueError, match="recorded no iterations.*max_iter >= 1"):
        plot.convergence(old)


# ----------------------------------------------------------------------
# selection
# ----------------------------------------------------------------------


def _table_values(records, ct, crit):
    rows = records[(records["covariance_type"] == ct) & np.isfinite(records[crit])]
    rows = rows[np.argsort(rows["n_components"], kind="stable")]
    return rows["n_components"], rows[crit]


@pytest.mark.parametrize("kind", ["dataframe", "structured"])
def test_selection_one_line_per_type_and_criterion(selection_result, kind):
    result = selection_result
    if kind == "dataframe":
        pytest.importorskip("pandas")
        assert hasattr(result.table, "iloc")
    else:  # as without pandas
        result = SelectionResult(result.records, result.best_index_,
                                 result.best_estimator_, result.criterion,
                                 result.n_components, result.covariance_types)
        result.table = result.records
    ax = plot.selection(result, criteria=("bic", "aic", "icl"))
    lines = {line.get_label(): line for line in ax.lines}
    expected = [f"{ct} {c}" for c in ("BIC", "AIC", "ICL") for ct in COVARIANCE_TYPES]
    assert [line.get_label() for line in ax.lines[:-1]] == expected
    for crit in ("bic", "aic", "icl"):
        for ct in COVARIANCE_TYPES:
            k, v = _table_values(result.records, ct, crit)
            line = lines[f"{ct} {crit.upper()}"]
            np.testing.assert_array_equal(line.get_xdata(), k)
            np.testing.assert_array_equal(line.get_ydata(), v)
    best = ax.lines[-1]
    assert best.get_label().startswith("best by BIC: k=")
    np.testing.assert_array_equal(best.get_xydata(),
                                  [[result.best_params_["n_components"],
                                    result.best_score_]])


def test_selection_skips_failed_fits(selection_result):
    r = selection_result
    records = r.records.copy()
    failed = (records["covariance_type"] == "full") & (records["n_components"] == 2)
    all_failed = records["covariance_type"] == "spherical"
    for crit in ("bic", "aic", "icl"):
        records[crit][failed | all_failed] = np.nan
    records["error"][failed | all_failed] = "ValueError: ill-defined covariance"
    best = int(np.nanargmin(records["bic"]))
    result = SelectionResult(records, best, r.best_estimator_, "bic", r.n_components,
                             r.covariance_types)
    ax = plot.selection(result, criteria="bic")
    labels = [line.get_label() for line in ax.lines]
    assert labels[:-1] == ["full BIC", "tied BIC", "diag BIC"]  # spherical: all failed
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), [1, 3])
    assert not np.isnan(ax.lines[0].get_ydata()).any()
    assert "4 failed fit(s) not shown" in ax.get_title()


def test_selection_bad_inputs(selection_result):
    with pytest.raises(ValueError, match="unknown criterion 'bogus'"):
        plot.selection(selection_result, criteria=("bic", "bogus"))
    with pytest.raises(ValueError, match="criteria is empty"):
        plot.selection(selection_result, criteria=())
    with pytest.raises(TypeError, match="SelectionResult"):
        plot.selection(selection_result.table)


# ----------------------------------------------------------------------
# log_density
# ----------------------------------------------------------------------


def test_log_density_histogram_and_threshold(models2, X2):
    gm = models2["full"]
    ax = plot.log_density(gm, X2, bins=20, anomaly_quantile=0.05)
    bars = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert len(bars) == 20
    scores = gm.score_samples(X2)
    assert sum(b.get_height() for b in bars) == len(X2)
    assert bars[0].get_x() == pytest.approx(scores.min())
    threshold = np.quantile(scores, 0.05)
    line = ax.lines[0]
    np.testing.assert_allclose(line.get_xdata(), [threshold, threshold])
    flagged = int((scores < threshold).sum())
    assert f"{flagged} of {len(X2)} rows flagged" in line.get_label()
    assert 0 < flagged <= 0.05 * len(X2) + 1


def test_log_density_without_threshold(models2, X2):
    ax = plot.log_density(models2["spherical"], X2)
    assert len(ax.patches) == 50 and not ax.lines


def test_log_density_bad_inputs(models2, X2):
    gm = models2["full"]
    for q in [0, 1, -0.1, 1.5, float("nan"), True, "0.1"]:
        with pytest.raises(ValueError, match="anomaly_quantile must be a number strictly "
                                             "between 0 and 1"):
            plot.log_density(gm, X2, anomaly_quantile=q)
    for bins in [0, 2.0, "auto"]:
        with pytest.raises(ValueError, match="bins must be a positive integer"):
            plot.log_density(gm, X2, bins=bins)
    with pytest.raises(ValueError, match="X has 1 features"):
        plot.log_density(gm, X2[:, :1])
    with pytest.raises(ValueError, match="got X=None"):
        plot.log_density(gm, None)


# ----------------------------------------------------------------------
# the user guide page
# ----------------------------------------------------------------------


def test_docs_page_examples_run_and_save_pngs(tmp_path, monkeypatch):
    text = (ROOT / "docs" / "plots.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    assert blocks
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__docs__"}
    for code in blocks:
        exec(compile(code, "docs/plots.md", "exec"), namespace)  # noqa: S102
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    saved = sorted(set(re.findall(r'savefig\("([^"]+\.png)"', text)))
    assert pngs == saved and len(pngs) >= 4


def test_weights_bars_grey_below_the_threshold():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 1, (200, 2)), rng.normal(8, 1, (200, 2))])
    m = fastem.BayesianGaussianMixture(n_components=5, random_state=0).fit(X)
    ax = plot.weights(m)
    bars = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert [b.get_height() for b in bars] == pytest.approx(list(m.weights_))
    grey = [tuple(b.get_facecolor()[:3]) == matplotlib.colors.to_rgb("lightgrey") for b in bars]
    assert grey == list(m.weights_ < 0.01) and sum(grey) == 3
    assert ax.get_title() == "fitted weights: 2 of 5 components weigh 0.01 or more"
    # the convergence plot names the variational lower bound
    ax = plot.convergence(m)
    assert ax.get_ylabel() == "lower bound"
    assert list(ax.lines[0].get_ydata()) == pytest.approx(m.lower_bounds_)
    # any mixture with weights_; a threshold outside [0, 1) is named
    gm = fastem.GaussianMixture(2, random_state=0).fit(X)
    assert len(plot.weights(gm, threshold=0.0).patches) == 2
    with pytest.raises(ValueError, match=r"threshold in \[0, 1\), but got 1.5"):
        plot.weights(gm, threshold=1.5)
