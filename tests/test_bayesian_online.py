"""MiniBatchBayesianGaussianMixture: stochastic variational inference as
stepwise EM on the statistics (Hoffman et al. 2013)."""

import copy
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.exceptions import ConvergenceWarning
from test_save_load import assert_same_model

from fastem import BayesianGaussianMixture, MiniBatchBayesianGaussianMixture
from fastem._io import load, save

pytestmark = pytest.mark.filterwarnings("ignore", category=ConvergenceWarning)
COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]
PRIOR_TYPES = ["dirichlet_process", "dirichlet_distribution"]
POSTERIOR = ["weight_concentration_", "mean_precision_", "means_", "degrees_of_freedom_",
             "covariances_", "precisions_cholesky_", "weights_", "precisions_"]


def _two(n1=300, n2=200, seed=0):
    rng = np.random.default_rng(seed)
    X = np.vstack([rng.normal(0, 1, (n1, 2)), rng.normal(6, 1, (n2, 2))])
    return X[rng.permutation(X.shape[0])]


def _flat(v):
    return np.concatenate([np.ravel(x) for x in v]) if isinstance(v, tuple) else np.ravel(v)


@pytest.mark.parametrize("prior_type", PRIOR_TYPES)
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_an_update_blends_the_natural_parameters(covariance_type, prior_type):
    """SVI's step: each natural parameter of the posterior becomes (1 - rho)
    times its value plus rho times that of one variational update on the
    batch scaled to N (here the whole data: N = its rows)."""
    X = _two()
    n = X.shape[0]
    m = MiniBatchBayesianGaussianMixture(n_components=3, covariance_type=covariance_type,
                                         weight_concentration_prior_type=prior_type,
                                         random_state=0, total_samples=n)
    m.partial_fit(X)
    before = copy.deepcopy(m)
    m.partial_fit(X)
    rho = (1 + m.learning_offset) ** -m.learning_decay
    # lambda hat: one variational iteration from the same parameters and prior
    hat = BayesianGaussianMixture(n_components=3, covariance_type=covariance_type,
                                  weight_concentration_prior_type=prior_type, warm_start=True,
                                  max_iter=1, mean_prior=before.mean_prior_,
                                  covariance_prior=before.covariance_prior_)
    for a in POSTERIOR + ["n_features_in_", "lower_bound_"]:
        setattr(hat, a, copy.deepcopy(getattr(before, a)))
    hat.converged_ = False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        hat.fit(X)

    def natural(p):
        beta = p.mean_precision_
        nu = np.asarray(p.degrees_of_freedom_, dtype=np.float64)
        out = [_flat(p.weight_concentration_), beta, beta[:, None] * p.means_, nu]
        if covariance_type == "full":  # nu C + beta m m^T = W^-1 + beta m m^T
            out.append(nu[:, None, None] * p.covariances_
                       + beta[:, None, None] * np.einsum("ka,kb->kab", p.means_, p.means_))
        elif covariance_type == "diag":
            out.append(nu[:, None] * p.covariances_ + beta[:, None] * p.means_ ** 2)
        return out

    for got, old, new in zip(natural(m), natural(before), natural(hat)):
        assert_allclose(got, (1 - rho) * old + rho * new, rtol=1e-10)


def test_fit_and_a_stream_approach_the_batch_posterior():
    """On two clusters, SVI's fit and a stream of ten batches score the data
    as the batch variational fit does (to 0.01 nats a row), every component
    of weight above 0.05 sits on a cluster, and a stream's posterior counts
    the rows it was given."""
    X = _two(3000, 2000)
    kw = dict(n_components=6, weight_concentration_prior=1e-3, random_state=0)
    batch = BayesianGaussianMixture(max_iter=500, **kw).fit(X)
    m = MiniBatchBayesianGaussianMixture(batch_size=500, max_iter=20, **kw).fit(X)
    s = MiniBatchBayesianGaussianMixture(**kw)
    for i in range(0, 5000, 500):
        s.partial_fit(X[i:i + 500])
    assert m.n_total_samples_ == 5000.0 and s.n_total_samples_ == 5000.0 and s.n_steps_ == 10
    # the posterior counts the stream's rows: beta = beta_0 + n_k
    assert_allclose(s.mean_precision_.sum(), 6 * s.mean_precision_prior_ + 5000.0, rtol=1e-9)
    for model in (m, s):
        assert model.score(X) == pytest.approx(batch.score(X), abs=0.01)
        used = model.means_[model.weights_ > 0.05]
        near = np.minimum(np.abs(used - 0.0).max(axis=1), np.abs(used - 6.0).max(axis=1))
        assert len(used) >= 2 and (near < 1.5).all()


def test_save_load_and_continue(tmp_path):
    X = _two()
    m = MiniBatchBayesianGaussianMixture(n_components=3, batch_size=100, max_iter=3,
                                         random_state=0).fit(X)
    save(m, tmp_path / "m.fem")
    got = load(tmp_path / "m.fem")
    assert_same_model(m, got)
    for model in (m, got):
        model.partial_fit(X[:100])
    assert_same_model(m, got)


def test_a_failed_update_leaves_the_model():
    X = _two()
    m = MiniBatchBayesianGaussianMixture(n_components=3, random_state=0).fit(X)
    before = copy.deepcopy(m)
    with pytest.raises(ValueError, match="features"):
        m.partial_fit(X[:, :1])
    assert_same_model(before, m)


def test_a_weighted_stream_counts_its_weights_as_rows():
    """Weights count rows in a stream as in fit: a stream with weights of 2
    stands for twice its rows (N, and the posterior's beta = beta_0 + n_k)."""
    X = _two(1000, 1000)
    s = MiniBatchBayesianGaussianMixture(n_components=3, random_state=0)
    for i in range(0, 2000, 500):
        s.partial_fit(X[i:i + 500], sample_weight=np.full(500, 2.0))
    assert s.n_total_samples_ == 4000.0
    assert_allclose(s.mean_precision_.sum(), 3 * s.mean_precision_prior_ + 4000.0, rtol=1e-9)
    f = MiniBatchBayesianGaussianMixture(n_components=3, random_state=0, max_iter=1).fit(
        X, sample_weight=np.full(2000, 2.0))
    assert f.n_total_samples_ == 4000.0
