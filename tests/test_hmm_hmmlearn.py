"""``fastem.GaussianHMM``, ``CategoricalHMM`` and ``PoissonHMM`` against
hmmlearn 0.3.3's classes of the same names.

Both libraries start from identical parameters (``init_params=''``, the same
``startprob_``, ``transmat_`` and emission parameters set on both) and run
exactly N EM iterations (``tol=-inf``); every fitted parameter, the monitor's
history and every prediction must then agree to ``rtol=1e-7``, for every
covariance type and emission family, several sequences (one of them a single
frame), default and non-default priors, subsets of ``params``, and both of
hmmlearn's implementations ("log", "scaling") as the peer.

Where hmmlearn 0.3.3 is wrong, the tests assert the correct behaviour instead
(the "documented differences" at the end): a spherical model's ``covars_``
and its samples, ``params`` with 'c' but not 'm', the Poisson rate prior,
and bad symbols or counts.  Two small subclasses of hmmlearn's classes with
the bug mended (``_MendedGaussianHMM``, ``_MendedPoissonHMM``) serve as the
peer there for several iterations, besides the explicit one-step formulas.
"""

import inspect
import pickle

import numpy as np
import pytest
from hmmlearn import hmm as hl
from hmmlearn.base import BaseHMM as HlBaseHMM
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import clone
from threadpoolctl import threadpool_limits

from fastem import CategoricalHMM, GaussianHMM, PoissonHMM

COVARIANCE_TYPES = ["spherical", "diag", "full", "tied"]
FAMILIES = [f"gaussian-{c}" for c in COVARIANCE_TYPES] + ["categorical", "poisson"]
IMPLEMENTATIONS = ["log", "scaling"]
RTOL = 1e-7
ATOL = 1e-10  # parameters are O(1) to O(10); keeps exact zeros from failing on round-off
PROBA_ATOL = 1e-9  # posteriors

# the data: three states, several sequences, two of them a single frame
K = 3
D = 3  # Gaussian features
M = 4  # categorical symbols
LENGTHS = np.array([140, 1, 90, 1, 68])
NEW_LENGTHS = np.array([50, 1, 29])

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


@pytest.fixture(autouse=True, scope="module")
def _one_blas_thread():
    """hmmlearn makes many tiny BLAS calls: threads only make them wait."""
    with threadpool_limits(1, user_api="blas"):
        yield


# --------------------------------------------------------------------------
# A known hidden Markov model and its data
# --------------------------------------------------------------------------

TRUE_STARTPROB = np.array([0.5, 0.3, 0.2])
TRUE_TRANSMAT = np.array([[0.80, 0.10, 0.10],
                          [0.15, 0.75, 0.10],
                          [0.10, 0.20, 0.70]])
TRUE_MEANS = np.array([[0.0, 0.0, 0.0], [6.0, -1.0, 2.0], [-2.0, 5.0, 5.0]])
TRUE_CHOL = np.array([
    [[1.0, 0.0, 0.0], [0.4, 0.8, 0.0], [0.2, -0.3, 0.6]],
    [[0.6, 0.0, 0.0], [-0.2, 1.1, 0.0], [0.0, 0.4, 0.9]],
    [[0.8, 0.0, 0.0], [0.3, 0.5, 0.0], [-0.4, 0.1, 1.2]],
])
TRUE_EMISSIONPROB = np.array([[0.70, 0.10, 0.10, 0.10],
                              [0.10, 0.70, 0.10, 0.10],
                              [0.05, 0.05, 0.45, 0.45]])
TRUE_LAMBDAS = np.array([[1.0, 8.0], [6.0, 2.0], [15.0, 12.0]])


def sample_states(lengths, rng, startprob=TRUE_STARTPROB, transmat=TRUE_TRANSMAT):
    """A state path of the chain for each sequence, concatenated."""
    states = []
    for n in lengths:
        z = rng.choice(len(startprob), p=startprob)
        states.append(z)
        for _ in range(n - 1):
            z = rng.choice(len(startprob), p=transmat[z])
            states.append(z)
    return np.array(states)


def make_data(family, lengths=LENGTHS, seed=0):
    """Frames of the known model, drawn with a fixed seed (NumPy only)."""
    rng = np.random.default_rng(seed)
    z = sample_states(lengths, rng)
    if family.startswith("gaussian"):
        noise = rng.normal(size=(len(z), D))
        return TRUE_MEANS[z] + np.einsum("tij,tj->ti", TRUE_CHOL[z], noise)
    if family == "categorical":
        u = rng.random(len(z))
        return (u[:, None] > np.cumsum(TRUE_EMISSIONPROB[z], axis=1)).sum(axis=1)[:, None]
    return rng.poisson(TRUE_LAMBDAS[z])


def start_parameters(family):
    """Starting parameters near (not at) the truth, as hmmlearn's setters take them."""
    params = {
        "startprob_": np.array([0.4, 0.35, 0.25]),
        "transmat_": 0.6 * TRUE_TRANSMAT + 0.4 / K,
    }
    if family.startswith("gaussian"):
        covariance_type = family.split("-")[1]
        params["means_"] = TRUE_MEANS + np.array([[0.7, -0.5, 0.3], [-0.4, 0.6, -0.8],
                                                  [0.5, 0.5, -0.6]])
        full = np.einsum("kij,klj->kil", TRUE_CHOL, TRUE_CHOL) * 1.3 + 0.2 * np.eye(D)
        params["covars_"] = {
            "spherical": np.array([1.5, 0.8, 2.0]),
            "diag": np.array([[1.2, 0.9, 0.5], [0.4, 1.6, 1.1], [0.8, 0.3, 1.9]]),
            "full": full,
            "tied": full.mean(axis=0),
        }[covariance_type]
    elif family == "categorical":
        params["emissionprob_"] = 0.7 * TRUE_EMISSIONPROB + 0.3 / M
    else:
        params["lambdas_"] = TRUE_LAMBDAS * 1.2 + 0.5
    return params


def nondefault_priors(family):
    """Priors away from the defaults (Poisson: only those hmmlearn gets right)."""
    priors = {
        "startprob_prior": np.array([2.0, 3.0, 1.5]),
        "transmat_prior": np.array([[3.0, 1.5, 1.2], [1.1, 4.0, 2.0], [1.3, 1.7, 2.5]]),
    }
    if family.startswith("gaussian"):
        covariance_type = family.split("-")[1]
        priors["means_prior"] = TRUE_MEANS + 0.3
        priors["means_weight"] = 2.5
        priors["covars_prior"] = {
            "spherical": 0.4,
            "diag": np.array([[0.3, 0.5, 0.2], [0.6, 0.1, 0.4], [0.2, 0.2, 0.7]]),
            "full": np.array([0.5, 0.3, 0.8])[:, None, None] * np.eye(D) + 0.05,
            "tied": 0.6 * np.eye(D) + 0.05,
        }[covariance_type]
        priors["covars_weight"] = 3.0 if covariance_type in ("spherical", "diag") else D + 2.5
    elif family == "categorical":
        priors["emissionprob_prior"] = np.array([[1.2, 2.0, 1.5, 3.0],
                                                 [2.5, 1.1, 1.0, 1.4],
                                                 [1.0, 1.3, 2.2, 1.8]])
    return priors


# --------------------------------------------------------------------------
# Building the two models
# --------------------------------------------------------------------------

def classes(family):
    """(fastem's class, hmmlearn's class, constructor keywords of the family)."""
    if family.startswith("gaussian"):
        return GaussianHMM, hl.GaussianHMM, {"covariance_type": family.split("-")[1]}
    if family == "categorical":
        return CategoricalHMM, hl.CategoricalHMM, {"n_features": M}
    return PoissonHMM, hl.PoissonHMM, {}


def set_parameters(model, parameters):
    for name, value in parameters.items():
        setattr(model, name, np.array(value, copy=True))
    return model


def build_pair(family, parameters=None, peer_class=None, **kwargs):
    """fastem's model and hmmlearn's, built alike with ``parameters`` set."""
    fe_class, hl_class, family_kwargs = classes(family)
    kwargs = {**family_kwargs, **kwargs}
    parameters = start_parameters(family) if parameters is None else parameters
    n_components = len(parameters["startprob_"])
    fe = set_parameters(fe_class(n_components, **kwargs), parameters)
    peer = set_parameters((peer_class or hl_class)(n_components, **kwargs), parameters)
    return fe, peer


def fit_pair(family, X, lengths, n_iter, *, params=None, priors=None,
             implementation="log", peer_class=None, parameters=None):
    """Both models fitted by exactly ``n_iter`` iterations from the same start."""
    kwargs = {"n_iter": n_iter, "tol": -np.inf, "init_params": "",
              "implementation": implementation, **(priors or {})}
    if params is not None:
        kwargs["params"] = params
    fe, peer = build_pair(family, parameters, peer_class=peer_class, **kwargs)
    assert fe.fit(X, lengths) is fe
    peer.fit(X, lengths)
    return fe, peer


def peer_covars(peer):
    """hmmlearn's ``covars_`` as one (d, d) matrix per state: after a fit, its
    spherical ``covars_`` repeats each state's matrix n_features times."""
    covars = np.asarray(peer.covars_)
    if peer.covariance_type == "spherical" and len(covars) == peer.n_components * peer.n_features:
        covars = covars[::peer.n_features]
    return covars


def full_covars(family, covars):
    """The (n_components, d, d) matrices of covariance parameters as set."""
    covariance_type = family.split("-")[1]
    if covariance_type == "spherical":
        return covars[:, None, None] * np.eye(D)
    if covariance_type == "diag":
        return covars[:, :, None] * np.eye(D)
    return np.tile(covars, (K, 1, 1)) if covariance_type == "tied" else covars


def emission_attributes(family):
    if family.startswith("gaussian"):
        return ["means_", "covars_"]
    return ["emissionprob_"] if family == "categorical" else ["lambdas_"]


def assert_same_parameters(fe, peer, family, rtol=RTOL):
    for name in ["startprob_", "transmat_", *emission_attributes(family)]:
        want = peer_covars(peer) if name == "covars_" else getattr(peer, name)
        got = np.asarray(getattr(fe, name))
        assert got.shape == np.shape(want), f"{name}: {got.shape} != {np.shape(want)}"
        assert_allclose(got, want, rtol=rtol, atol=ATOL, err_msg=name)
    assert fe.n_features == peer.n_features


def assert_same_fit(fe, peer, family, n_iter):
    assert_same_parameters(fe, peer, family)
    assert fe.monitor_.iter == peer.monitor_.iter == n_iter
    assert len(fe.monitor_.history) == len(peer.monitor_.history)
    assert_allclose(list(fe.monitor_.history), list(peer.monitor_.history), rtol=RTOL,
                    atol=ATOL, err_msg="monitor_.history")
    assert bool(fe.monitor_.converged) == bool(peer.monitor_.converged)


def assert_same_outputs(fe, peer, X, lengths):
    """Every method's output on ``X``, with ``lengths`` and without."""
    for lens in (None, lengths):
        assert fe.score(X, lens) == pytest.approx(peer.score(X, lens), rel=RTOL)
        logprob, post = fe.score_samples(X, lens)
        want_logprob, want_post = peer.score_samples(X, lens)
        assert logprob == pytest.approx(want_logprob, rel=RTOL)
        assert_allclose(post, want_post, rtol=RTOL, atol=PROBA_ATOL, err_msg="posteriors")
        assert_allclose(fe.predict_proba(X, lens), want_post, rtol=RTOL, atol=PROBA_ATOL,
                        err_msg="predict_proba")
        for algorithm in ("viterbi", "map"):
            logprob, states = fe.decode(X, lens, algorithm=algorithm)
            want_logprob, want_states = peer.decode(X, lens, algorithm=algorithm)
            assert logprob == pytest.approx(want_logprob, rel=RTOL), algorithm
            assert_array_equal(states, want_states, err_msg=algorithm)
        assert_array_equal(fe.predict(X, lens), peer.predict(X, lens))
        assert fe.aic(X, lens) == pytest.approx(peer.aic(X, lens), rel=RTOL)
        assert fe.bic(X, lens) == pytest.approx(peer.bic(X, lens), rel=RTOL)
    assert_allclose(fe.get_stationary_distribution(), peer.get_stationary_distribution(),
                    rtol=RTOL, atol=ATOL)


# --------------------------------------------------------------------------
# Same start, same fit
# --------------------------------------------------------------------------

@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("priors", ["default", "nondefault"])
@pytest.mark.parametrize("n_iter", [1, 5, 20])
@pytest.mark.parametrize("family", FAMILIES)
def test_fit_agrees_with_hmmlearn(family, n_iter, priors, implementation):
    X = make_data(family)
    kwargs = nondefault_priors(family) if priors == "nondefault" else {}
    fe, peer = fit_pair(family, X, LENGTHS, n_iter, priors=kwargs,
                        implementation=implementation)
    assert_same_fit(fe, peer, family, n_iter)
    if n_iter == 5:
        assert_same_outputs(fe, peer, make_data(family, NEW_LENGTHS, seed=1), NEW_LENGTHS)


PARAMS_SUBSETS = {
    "gaussian": ["st", "s", "t", "m", "mc", "stm", "smc", "tmc"],
    "categorical": ["st", "e", "se", "te"],
    "poisson": ["st", "l", "sl", "tl"],
}


@pytest.mark.parametrize("family, params", [
    (family, params) for family in FAMILIES
    for params in PARAMS_SUBSETS[family.split("-")[0]]
])
def test_params_subsets_agree_with_hmmlearn(family, params):
    X = make_data(family, seed=2)
    implementation = IMPLEMENTATIONS[len(params) % 2]
    fe, peer = fit_pair(family, X, LENGTHS, 5, params=params, priors=nondefault_priors(family),
                        implementation=implementation)
    assert_same_fit(fe, peer, family, 5)
    start = start_parameters(family)
    letters = {"startprob_": "s", "transmat_": "t", "means_": "m", "covars_": "c",
               "emissionprob_": "e", "lambdas_": "l"}
    for name, value in start.items():  # what is not in params stays as it was
        if letters[name] not in params:
            want = full_covars(family, value) if name == "covars_" else value
            assert_allclose(getattr(fe, name), want, rtol=0, atol=0, err_msg=name)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_one_feature_two_states(covariance_type):
    """Other shapes: d = 1 and two states."""
    rng = np.random.default_rng(16)
    z = sample_states([120, 1, 79], rng, np.array([0.6, 0.4]), np.array([[0.9, 0.1], [0.2, 0.8]]))
    X = np.array([-2.0, 3.0])[z][:, None] + rng.normal(size=(len(z), 1)) * np.array([0.7, 1.5])[z, None]
    covars = {"spherical": np.array([1.0, 2.0]), "diag": np.array([[1.0], [2.0]]),
              "full": np.array([[[1.0]], [[2.0]]]), "tied": np.array([[1.5]])}[covariance_type]
    parameters = {"startprob_": np.array([0.5, 0.5]),
                  "transmat_": np.array([[0.8, 0.2], [0.3, 0.7]]),
                  "means_": np.array([[-1.0], [2.0]]), "covars_": covars}
    lengths = np.array([120, 1, 79])
    family = f"gaussian-{covariance_type}"
    fe, peer = fit_pair(family, X, lengths, 5, parameters=parameters,
                        priors={"means_prior": 0.5, "means_weight": 1.0, "covars_prior": 0.3,
                                "covars_weight": 2.0},
                        implementation="scaling")
    assert fe.covars_.shape == (2, 1, 1)
    assert_same_fit(fe, peer, family, 5)
    assert_same_outputs(fe, peer, X, lengths)


@pytest.mark.parametrize("family", FAMILIES)
def test_one_sequence_without_lengths(family):
    X = make_data(family, seed=3)
    fe, peer = fit_pair(family, X, None, 5, implementation="scaling")
    assert_same_fit(fe, peer, family, 5)
    assert_same_outputs(fe, peer, X[:100], None)


@pytest.mark.parametrize("family", FAMILIES)
def test_outputs_agree_at_set_parameters(family):
    """The methods on models whose parameters were set, never fitted (as
    hmmlearn allows), on new data, with and without lengths, and on one frame."""
    fe, peer = build_pair(family, algorithm="map")
    X = make_data(family, NEW_LENGTHS, seed=4)
    assert_same_outputs(fe, peer, X, NEW_LENGTHS)
    assert_same_outputs(fe, peer, X[:1], np.array([1]))
    # the model's own algorithm is the default of decode and predict
    assert_array_equal(fe.predict(X, NEW_LENGTHS), peer.decode(X, NEW_LENGTHS, "map")[1])
    assert fe.decode(X)[0] == pytest.approx(peer.decode(X, algorithm="map")[0], rel=RTOL)


@pytest.mark.parametrize("family", ["gaussian-spherical", "gaussian-diag", "gaussian-full",
                                    "gaussian-tied", "poisson"])
def test_outputs_agree_far_from_the_model(family):
    """Frames far from every state (emission log-densities down to about
    -1e4 per frame) still give hmmlearn's outputs."""
    X = make_data(family, NEW_LENGTHS, seed=21)
    X = X + 40.0 if family.startswith("gaussian") else X * 8
    fe, peer = build_pair(family)
    assert peer.score(X) < -5000
    assert_same_outputs(fe, peer, X, NEW_LENGTHS)


def test_verbose_report_and_zero_iterations(capsys):
    """verbose=True prints hmmlearn's monitor lines; n_iter=0 changes nothing."""
    X = make_data("poisson", seed=22)
    fe, peer = build_pair("poisson", n_iter=3, init_params="", verbose=True)
    fe.fit(X, LENGTHS)
    fe_report = capsys.readouterr().err
    peer.fit(X, LENGTHS)
    peer_report = capsys.readouterr().err
    fe_lines, peer_lines = fe_report.splitlines(), peer_report.splitlines()
    assert len(fe_lines) == len(peer_lines) == 3
    for got, want in zip(fe_lines, peer_lines):  # iteration, log-probability, delta
        assert len(got) == len(want) and got.split()[0] == want.split()[0]
        assert_allclose([float(v) for v in got.split()[1:]],
                        [float(v) for v in want.split()[1:]], rtol=RTOL)
    fe, peer = fit_pair("poisson", X, LENGTHS, 0)
    assert fe.monitor_.iter == 0 and len(fe.monitor_.history) == 0
    assert_same_parameters(fe, peer, "poisson")


@pytest.mark.parametrize("family", FAMILIES)
def test_priors_below_one(family):
    """Dirichlet priors below one: counts short of 1 - prior are clipped to
    zero (and stay zero), as in hmmlearn."""
    priors = {"startprob_prior": np.array([0.5, 0.2, 0.9]), "transmat_prior": 0.7}
    if family == "categorical":
        priors["emissionprob_prior"] = 0.6
    X = make_data(family, seed=23)
    fe, peer = fit_pair(family, X, LENGTHS, 5, priors=priors, implementation="scaling")
    assert_same_fit(fe, peer, family, 5)
    assert np.any(peer.startprob_ == 0.0)  # the clipping happened
    assert np.all(fe.startprob_[peer.startprob_ == 0.0] == 0.0)


@pytest.mark.parametrize("transmat", [
    [[0.01, 0.98, 0.01], [0.01, 0.01, 0.98], [0.98, 0.01, 0.01]],  # nearly periodic
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.3, 0.3, 0.4]],  # two absorbing states
    np.eye(3),
])
def test_stationary_distribution_edge_cases(transmat):
    parameters = {**start_parameters("poisson"), "transmat_": np.array(transmat)}
    fe, peer = build_pair("poisson", parameters)
    stationary = fe.get_stationary_distribution()
    assert np.isrealobj(stationary)
    assert_allclose(stationary, peer.get_stationary_distribution(), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("family", ["gaussian-full", "categorical", "poisson"])
def test_many_short_sequences(family):
    """300 sequences of 1 to 4 frames (more sequences than fastem's slots)."""
    lengths = np.random.default_rng(26).integers(1, 5, size=300)
    X = make_data(family, lengths, seed=27)
    fe, peer = fit_pair(family, X, lengths, 5, priors=nondefault_priors(family))
    assert_same_fit(fe, peer, family, 5)
    assert_same_outputs(fe, peer, X, lengths)


# --------------------------------------------------------------------------
# Sequences of length one
# --------------------------------------------------------------------------

@pytest.mark.parametrize("family", FAMILIES)
def test_length_one_sequences_only(family):
    """Forty single frames: no transitions at all.  With a transition prior
    above one the rows of ``transmat_`` are its normalised excess; without
    't' in params they stay as set."""
    lengths = np.ones(40, dtype=int)
    X = make_data(family, lengths, seed=5)
    priors = nondefault_priors(family)
    for params, implementation in [(None, "log"), ("s" + emission_letters(family), "scaling")]:
        fe, peer = fit_pair(family, X, lengths, 5, params=params, priors=priors,
                            implementation=implementation)
        assert_same_fit(fe, peer, family, 5)
        assert_same_outputs(fe, peer, X, lengths)
    tp = priors["transmat_prior"]
    fe, _ = fit_pair(family, X, lengths, 1, params="t", priors=priors)
    assert_allclose(fe.transmat_, (tp - 1) / (tp - 1).sum(axis=1, keepdims=True), rtol=1e-12)


def emission_letters(family):
    if family.startswith("gaussian"):
        return "mc"
    return "e" if family == "categorical" else "l"


@pytest.mark.parametrize("family", FAMILIES)
def test_single_frame(family):
    """X of one frame: a fit of startprob_ (and the means) and every output."""
    X = make_data(family, [1], seed=6)
    # one frame leaves a full or tied covariance singular: means only
    params = "sm" if family.startswith("gaussian") else "s" + emission_letters(family)
    fe, peer = fit_pair(family, X, None, 3, params=params)
    assert_same_fit(fe, peer, family, 3)
    assert_same_outputs(fe, peer, X, np.array([1]))


# --------------------------------------------------------------------------
# scikit-learn protocol
# --------------------------------------------------------------------------

#: fastem's additions to hmmlearn's parameters, and their defaults (which
#: behave as hmmlearn: one start, NaN refused)
ADDITIONS = {"n_init": 1, "missing": "raise"}


def without_additions(params):
    for name, default in ADDITIONS.items():
        assert params.pop(name) == default, name
    return params


@pytest.mark.parametrize("family", ["gaussian-full", "categorical", "poisson"])
def test_constructor_and_clone_like_hmmlearn(family):
    fe_class, hl_class, _ = classes(family)
    assert without_additions(fe_class().get_params()) == hl_class().get_params()
    kwargs = {"n_components": 2, "n_iter": 7, "tol": 0.5, "params": "st", "init_params": "s",
              "algorithm": "map", "implementation": "scaling", "random_state": 3,
              "startprob_prior": 2.0}
    model = fe_class(**kwargs)
    assert without_additions(model.get_params()) == hl_class(**kwargs).get_params()
    copy = clone(model)
    assert copy is not model and type(copy) is fe_class
    assert copy.get_params() == model.get_params()
    X = make_data(family, [60], seed=7)
    fitted = fe_class(K, **classes(family)[2], random_state=0, n_iter=3).fit(X)
    unfitted = clone(fitted)
    assert not hasattr(unfitted, "startprob_") and not hasattr(unfitted, "transmat_")
    assert set(without_additions(unfitted.get_params())) == set(hl_class().get_params())


@pytest.mark.parametrize("family", ["gaussian-full", "categorical", "poisson"])
def test_constructor_signature_like_hmmlearn(family):
    """hmmlearn's parameters in its order, of its kinds (positional or
    keyword-only), with its defaults; fastem's additions keyword-only at the end."""
    fe_class, hl_class, _ = classes(family)
    fe_params = list(inspect.signature(fe_class).parameters.values())
    hl_params = list(inspect.signature(hl_class).parameters.values())
    assert [(p.name, p.kind, p.default) for p in fe_params[:len(hl_params)]] == \
        [(p.name, p.kind, p.default) for p in hl_params]
    extra = fe_params[len(hl_params):]
    assert {p.name: p.default for p in extra} == ADDITIONS
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in extra)


def test_gaussian_constructor_defaults_every_type():
    for covariance_type in COVARIANCE_TYPES:
        params = {"covariance_type": covariance_type, "min_covar": 0.1, "means_prior": 1.0,
                  "means_weight": 0.5, "covars_prior": 0.2, "covars_weight": 4.0}
        assert without_additions(GaussianHMM(**params).get_params()) == \
            hl.GaussianHMM(**params).get_params()


@pytest.mark.parametrize("family", FAMILIES)
def test_refit_starts_afresh(family):
    """A second fit from the same start gives the same model and monitor."""
    X = make_data(family)
    fe, peer = fit_pair(family, X, LENGTHS, 4)
    set_parameters(fe, start_parameters(family))
    fe.fit(X, LENGTHS)
    assert_same_fit(fe, peer, family, 4)


@pytest.mark.parametrize("family", FAMILIES)
def test_second_fit_continues_from_the_first(family):
    """init_params='': a second fit starts where the first ended, as in hmmlearn."""
    X = make_data(family, seed=17)
    fe, peer = fit_pair(family, X, LENGTHS, 3, priors=nondefault_priors(family))
    fe.fit(X, LENGTHS)
    peer.fit(X, LENGTHS)
    assert_same_fit(fe, peer, family, 3)


@pytest.mark.parametrize("family", FAMILIES)
def test_parameters_set_after_a_fit_are_used(family):
    """Parameters assigned after a fit (nothing cached from it) rule every output."""
    X = make_data(family, seed=18)
    fe, peer = fit_pair(family, X, LENGTHS, 3)
    before = fe.score(X, LENGTHS)
    fe.predict_proba(X)  # whatever a prediction may cache
    perm = [2, 0, 1]  # the start's states relabelled
    fresh = {name: value if family == "gaussian-tied" and name == "covars_" else value[perm]
             for name, value in start_parameters(family).items()}
    fresh["transmat_"] = fresh["transmat_"][:, perm]
    for model in (fe, peer):
        set_parameters(model, fresh)
    assert abs(fe.score(X, LENGTHS) - before) > 1.0
    assert_same_outputs(fe, peer, X, LENGTHS)


@pytest.mark.parametrize("family", FAMILIES)
def test_pickle_round_trip(family):
    X = make_data(family, seed=19)
    fe, peer = fit_pair(family, X, LENGTHS, 3)
    loaded = pickle.loads(pickle.dumps(fe))
    assert_same_fit(loaded, peer, family, 3)
    assert_same_outputs(loaded, peer, X, LENGTHS)


@pytest.mark.parametrize("family", ["categorical", "poisson", "gaussian-diag", "gaussian-full"])
def test_random_start_like_hmmlearn(family):
    """startprob_, transmat_ (and the categorical and Poisson emissions) are
    drawn as hmmlearn draws them from an integer random_state; a Gaussian
    model's covariances start from the data's covariance plus min_covar
    (its means from fastem's own k-means, so they are set here)."""
    X = make_data(family, seed=20)
    fe_class, hl_class, kwargs = classes(family)
    init_params = "stc" if family.startswith("gaussian") else None
    kwargs = {**kwargs, "random_state": 7, "n_iter": 6, "tol": -np.inf}
    if init_params:
        kwargs["init_params"] = init_params
    fe, peer = fe_class(K, **kwargs), hl_class(K, **kwargs)
    if family.startswith("gaussian"):
        for model in (fe, peer):
            model.means_ = start_parameters(family)["means_"]
    fe.fit(X, LENGTHS)
    peer.fit(X, LENGTHS)
    assert_same_fit(fe, peer, family, 6)


@pytest.mark.parametrize("family", FAMILIES)
def test_structural_zeros_stay_zero(family):
    """Zeros in startprob_ and transmat_ (transitions 0 -> 2 and 2 -> 1
    forbidden; the chain can still go round) stay zero through EM, as in
    hmmlearn."""
    parameters = start_parameters(family)
    parameters["startprob_"] = np.array([0.7, 0.3, 0.0])
    transmat = parameters["transmat_"].copy()
    transmat[0, 2] = transmat[2, 1] = 0.0
    parameters["transmat_"] = transmat / transmat.sum(axis=1, keepdims=True)
    X = make_data(family)
    fe, peer = fit_pair(family, X, LENGTHS, 5, parameters=parameters,
                        priors=nondefault_priors(family))
    assert_same_fit(fe, peer, family, 5)
    assert fe.startprob_[2] == 0.0 and fe.transmat_[0, 2] == 0.0 and fe.transmat_[2, 1] == 0.0
    assert_same_outputs(fe, peer, X[:150], np.array([140, 1, 9]))


@pytest.mark.parametrize("n_far", [100, 150, 300])
def test_forced_path_far_in_a_tail(n_far):
    """A left-right model whose last frame only state 0 can emit: the path
    stays in state 0 through ``n_far`` frames that state 1 explains e^-4.6
    times better each, so state 0's forward probability relative to state
    1's falls below 1e-308 on the way (hmmlearn's 'scaling' fails the same
    way; its default 'log' gets it right)."""
    X = np.array([[10.0]] * n_far + [[300.0]])
    parameters = {"startprob_": np.array([0.5, 0.5]),
                  "transmat_": np.array([[0.5, 0.5], [0.0, 1.0]]),
                  "means_": np.array([[0.0], [10.0]]), "covars_": np.array([[1e4], [1.0]])}
    fe = set_parameters(GaussianHMM(2), parameters)
    peer = set_parameters(hl.GaussianHMM(2, implementation="log"), parameters)
    assert_same_outputs(fe, peer, X, np.array([n_far + 1]))
    assert_array_equal(fe.predict(X), 0)
    # state 1 is empty: a small prior keeps its mean where it was
    fe, peer = fit_pair("gaussian-diag", X, None, 3, params="sm", parameters=parameters,
                        priors={"means_prior": 10.0, "means_weight": 1e-3})
    assert_same_fit(fe, peer, "gaussian-diag", 3)
    assert_allclose(fe.startprob_, [1.0, 0.0])


@pytest.mark.parametrize("family", FAMILIES)
def test_convergence_with_default_tol(family):
    """With hmmlearn's tol (1e-2) EM stops at the same iteration."""
    X = make_data(family, seed=12)
    fe, peer = build_pair(family, n_iter=100, init_params="")
    fe.fit(X, LENGTHS)
    peer.fit(X, LENGTHS)
    assert 2 <= peer.monitor_.iter < 100 and peer.monitor_.converged
    assert_same_fit(fe, peer, family, peer.monitor_.iter)


@pytest.mark.parametrize("family", FAMILIES)
def test_array_like_and_float_input(family):
    """Lists fit as arrays do; Poisson counts and Gaussian frames as float or
    int arrays alike."""
    X = make_data(family, seed=13)
    fe, peer = fit_pair(family, X, LENGTHS, 3)
    fe_list, _ = fit_pair(family, X.tolist(), LENGTHS.tolist(), 3)
    assert_same_parameters(fe_list, peer, family)
    if family == "poisson":
        fe_float, _ = fit_pair(family, X.astype(np.float64), LENGTHS, 3)
        assert_same_parameters(fe_float, peer, family)
        assert fe.score(X.astype(np.float64)) == pytest.approx(peer.score(X), rel=RTOL)


@pytest.mark.parametrize("family", FAMILIES)
def test_bad_input_raises_like_hmmlearn(family):
    """Errors hmmlearn raises as ValueError are ValueErrors here too."""
    X = make_data(family, seed=14)
    fe, peer = fit_pair(family, X, LENGTHS, 2)
    for model in (fe, peer):
        with pytest.raises(ValueError):
            model.score(X, LENGTHS[:-1])  # lengths short of X
        with pytest.raises(ValueError):
            model.decode(X, algorithm="bogus")
        if family != "categorical":
            bad = X.astype(np.float64)
            bad[3, 0] = np.nan
            with pytest.raises(ValueError):
                model.score(bad)
            if model is fe or family != "poisson":  # hmmlearn's Poisson broadcasts it
                with pytest.raises(ValueError):  # a column short
                    model.score(X[:, :-1])
    for name, value in [("startprob_", np.array([0.5, 0.3, 0.3])),
                        ("transmat_", np.full((K, K), 0.5))]:
        fe, peer = build_pair(family, n_iter=1, init_params="")
        for model in (fe, peer):
            setattr(model, name, value)
            with pytest.raises(ValueError):
                model.fit(X, LENGTHS)


def test_categorical_symbols_never_seen():
    """n_features above the symbols seen: the unseen symbols' probabilities
    follow the prior, as in hmmlearn."""
    X = make_data("categorical", seed=15)
    parameters = start_parameters("categorical")
    wide = np.hstack([parameters["emissionprob_"], np.full((K, 2), 0.1)])
    parameters["emissionprob_"] = wide / wide.sum(axis=1, keepdims=True)
    for priors in ({}, {"emissionprob_prior": 1.5}):
        fe, peer = fit_pair("categorical", X, LENGTHS, 4, parameters=parameters,
                            priors={"n_features": M + 2, **priors})
        assert fe.n_features == M + 2
        assert_same_fit(fe, peer, "categorical", 4)
        assert_same_outputs(fe, peer, X, LENGTHS)


# --------------------------------------------------------------------------
# Documented differences: where hmmlearn 0.3.3 is wrong
# --------------------------------------------------------------------------

class _MendedGaussianHMM(hl.GaussianHMM):
    """hmmlearn's GaussianHMM gathering the statistics of the means whenever
    it updates the covariances (hmmlearn only does with 'm' in params)."""

    def _needs_sufficient_statistics_for_mean(self):
        return True


class _MendedPoissonHMM(hl.PoissonHMM):
    """hmmlearn's PoissonHMM with each state's own weight in the rate prior."""

    def _do_mstep(self, stats):
        HlBaseHMM._do_mstep(self, stats)
        if "l" in self.params:
            self.lambdas_ = ((self.lambdas_prior + stats["obs"])
                             / (self.lambdas_weight + stats["post"][:, None]))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_spherical_and_other_covars_shapes(covariance_type):
    """``covars_`` is (n_components, d, d) for every type; a spherical
    state's matrix is sigma2_k * I (hmmlearn's, after a fit, repeats each
    state's matrix d times: (n_components * d, d, d))."""
    family = f"gaussian-{covariance_type}"
    X = make_data(family)
    fe, peer = fit_pair(family, X, LENGTHS, 3)
    assert fe.covars_.shape == (K, D, D)
    if covariance_type == "spherical":
        assert peer.covars_.shape == (K * D, D, D)  # hmmlearn 0.3.3
        sigma2 = fe.covars_[:, 0, 0]
        assert_allclose(fe.covars_, sigma2[:, None, None] * np.eye(D), rtol=0, atol=0)
        assert_allclose(fe.covars_, peer_covars(peer), rtol=RTOL)
    else:
        assert_allclose(fe.covars_, peer.covars_, rtol=RTOL, atol=ATOL)
    if covariance_type in ("spherical", "diag"):
        assert np.count_nonzero(fe.covars_ - fe.covars_ * np.eye(D)) == 0


def test_spherical_sample_uses_each_state_variance():
    """States with variances 0.04 and 9: the samples drawn in each state have
    that state's variance (hmmlearn 0.3.3 draws state 1 with state 0's)."""
    d = 2
    variances = np.array([0.04, 9.0])
    means = np.array([[0.0, 0.0], [20.0, 20.0]])
    parameters = {"startprob_": np.array([0.5, 0.5]),
                  "transmat_": np.array([[0.7, 0.3], [0.4, 0.6]]),
                  "means_": means, "covars_": variances}
    rng = np.random.default_rng(8)
    z = sample_states([400], rng, parameters["startprob_"], parameters["transmat_"])
    X = means[z] + rng.normal(size=(len(z), d)) * np.sqrt(variances[z])[:, None]
    model = set_parameters(GaussianHMM(2, covariance_type="spherical", n_iter=3, tol=-np.inf,
                                       init_params=""), parameters).fit(X)
    assert model.covars_.shape == (2, d, d)
    assert_allclose(model.covars_[:, 0, 0] / variances, 1.0, atol=0.25)
    Xs, Zs = model.sample(4000, random_state=0)
    assert Xs.shape == (4000, d) and Zs.shape == (4000,)
    for k in range(2):
        in_k = Xs[Zs == k]
        assert len(in_k) > 1000
        assert_allclose(in_k.mean(axis=0), model.means_[k], atol=0.3)
        assert in_k.var(axis=0).mean() / model.covars_[k, 0, 0] == pytest.approx(1.0, abs=0.1)


@pytest.mark.parametrize("family", FAMILIES)
def test_sample(family):
    """Reproducible with a seed, starts at currstate, frames and states of
    the right shape, states following the chain."""
    X = make_data(family)
    model, _ = fit_pair(family, X, LENGTHS, 2)
    X1, Z1 = model.sample(3000, random_state=5)
    X2, Z2 = model.sample(3000, random_state=5)
    assert_array_equal(X1, X2)
    assert_array_equal(Z1, Z2)
    n_columns = D if family.startswith("gaussian") else (1 if family == "categorical" else 2)
    assert X1.shape == (3000, n_columns) and Z1.shape == (3000,)
    assert np.issubdtype(X1.dtype, np.floating if family.startswith("gaussian") else np.integer)
    assert model.sample(10, random_state=1, currstate=2)[1][0] == 2
    assert model.sample(1, random_state=1)[0].shape == (1, n_columns)
    counts = np.zeros((K, K))
    np.add.at(counts, (Z1[:-1], Z1[1:]), 1)
    assert_allclose(counts / counts.sum(axis=1, keepdims=True), model.transmat_, atol=0.05)
    if family.startswith("gaussian"):
        for k in range(K):
            assert_allclose(X1[Z1 == k].mean(axis=0), model.means_[k], atol=0.3)
            assert_allclose(np.cov(X1[Z1 == k].T), model.covars_[k], atol=0.35)
    elif family == "categorical":
        for k in range(K):
            freq = np.bincount(X1[Z1 == k, 0], minlength=M) / np.sum(Z1 == k)
            assert_allclose(freq, model.emissionprob_[k], atol=0.06)
    else:
        for k in range(K):
            assert_allclose(X1[Z1 == k].mean(axis=0), model.lambdas_[k], rtol=0.1)


def start_posteriors(family, X, lengths, **kwargs):
    """hmmlearn's posteriors at the starting parameters (its E-step is right)."""
    return build_pair(family, **kwargs)[1].predict_proba(X, lengths)


@pytest.mark.parametrize("priors", ["default", "nondefault"])
@pytest.mark.parametrize("params", ["c", "stc"])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_covars_without_means(covariance_type, params, priors):
    """'c' without 'm': the covariances are the posterior-weighted scatter
    about the fixed means, with the prior (hmmlearn 0.3.3 leaves out the
    statistics it needs and returns garbage)."""
    family = f"gaussian-{covariance_type}"
    X = make_data(family, seed=9)
    pri = nondefault_priors(family) if priors == "nondefault" else {}
    fe, peer = fit_pair(family, X, LENGTHS, 1, params=params, priors=pri)
    g = start_posteriors(family, X, LENGTHS)
    start = start_parameters(family)
    mu = start["means_"]
    means_prior = pri.get("means_prior", 0.0)
    means_weight = pri.get("means_weight", 0.0)
    covars_prior = pri.get("covars_prior", 1e-2)
    covars_weight = pri.get("covars_weight", 1.0)
    n_k = g.sum(axis=0)
    dev = X[:, None, :] - mu[None]  # (T, K, d)
    mdiff = mu - means_prior
    if covariance_type in ("spherical", "diag"):
        num = covars_prior + np.einsum("tk,tkj->kj", g, dev ** 2) + means_weight * mdiff ** 2
        var = num / (max(covars_weight - 1, 0) + n_k[:, None])
        if covariance_type == "spherical":
            want = var.mean(axis=1)[:, None, None] * np.eye(D)
        else:
            want = var[:, :, None] * np.eye(D)
    else:
        scatter = (np.einsum("tk,tki,tkj->kij", g, dev, dev)
                   + means_weight * np.einsum("ki,kj->kij", mdiff, mdiff))
        weight = max(covars_weight - D, 0)
        if covariance_type == "full":
            want = (covars_prior + scatter) / (weight + n_k[:, None, None])
        else:
            want = np.tile((covars_prior + scatter.sum(axis=0)) / (weight + n_k.sum()), (K, 1, 1))
    assert_allclose(fe.covars_, want, rtol=RTOL, atol=ATOL)
    assert_allclose(fe.means_, mu, rtol=0, atol=0)
    # hmmlearn 0.3.3 is far off here
    assert not np.allclose(peer_covars(peer), want, rtol=1e-3)
    # and several iterations follow hmmlearn mended
    fe, mended = fit_pair(family, X, LENGTHS, 5, params=params, priors=pri,
                          peer_class=_MendedGaussianHMM)
    assert_same_fit(fe, mended, family, 5)
    mended_one = fit_pair(family, X, LENGTHS, 1, params=params, priors=pri,
                          peer_class=_MendedGaussianHMM)[1]
    assert_allclose(peer_covars(mended_one), want, rtol=1e-10, atol=1e-12)  # the formula


@pytest.mark.parametrize("lambdas_prior, lambdas_weight", [
    (2.0, 0.5),
    (np.array([[0.5, 3.0], [2.0, 1.0], [4.0, 4.0]]), np.array([[1.0, 0.2], [0.3, 2.0], [5.0, 0.5]])),
])
def test_poisson_rate_prior_per_state(lambdas_prior, lambdas_weight):
    """lambdas_[k] = (lambdas_prior + sum_t g_tk x_t) / (lambdas_weight +
    sum_t g_tk): each state's own weight (hmmlearn 0.3.3 uses the total of
    every state as each state's)."""
    X = make_data("poisson", seed=10)
    priors = {"lambdas_prior": lambdas_prior, "lambdas_weight": lambdas_weight}
    fe, peer = fit_pair("poisson", X, LENGTHS, 1, params="l", priors=priors)
    g = start_posteriors("poisson", X, LENGTHS)
    want = (lambdas_prior + g.T @ X) / (lambdas_weight + g.sum(axis=0)[:, None])
    assert_allclose(fe.lambdas_, want, rtol=RTOL, atol=ATOL)
    assert not np.allclose(peer.lambdas_, want, rtol=1e-3)  # hmmlearn 0.3.3
    for n_iter, implementation in [(5, "log"), (20, "scaling")]:
        priors_st = {**priors, **nondefault_priors("poisson")}
        fe, mended = fit_pair("poisson", X, LENGTHS, n_iter, priors=priors_st,
                              implementation=implementation, peer_class=_MendedPoissonHMM)
        assert_same_fit(fe, mended, "poisson", n_iter)
        assert_same_outputs(fe, mended, X[:120], np.array([100, 1, 19]))


def test_set_params_reaches_the_monitor():
    """n_iter and tol given by set_params rule the next fit (hmmlearn's
    monitor keeps the constructor's)."""
    X = make_data("categorical", seed=24)
    model, _ = build_pair("categorical", init_params="")
    model.set_params(n_iter=4, tol=-np.inf)
    model.fit(X, LENGTHS)
    assert model.monitor_.iter == 4 and model.monitor_.n_iter == 4
    _, peer = fit_pair("categorical", X, LENGTHS, 4)
    assert_same_fit(model, peer, "categorical", 4)


@pytest.mark.parametrize("method", ["score", "predict_proba", "score_samples", "decode-map",
                                    "decode-viterbi", "predict", "fit"])
def test_impossible_sequence(method):
    """A sequence no path can emit (a forbidden transition): score is -inf
    (as hmmlearn's), the posteriors, decoding and fit a ValueError naming
    the sequence (hmmlearn returns NaN posteriors and a made-up path)."""
    parameters = start_parameters("categorical")
    parameters["emissionprob_"] = np.array([[0.5, 0.5, 0.0, 0.0],
                                            [0.0, 0.0, 0.5, 0.5],
                                            [0.0, 0.0, 0.5, 0.5]])
    parameters["transmat_"] = np.array([[0.9, 0.1, 0.0], [0.0, 0.8, 0.2], [0.0, 0.3, 0.7]])
    X = np.array([[0], [1], [2], [3], [0], [1], [2]])  # sequence 1 goes 3 -> 0: impossible
    lengths = np.array([2, 3, 2])
    fe, peer = build_pair("categorical", parameters, n_iter=2, init_params="")
    if method == "score":
        assert fe.score(X, lengths) == peer.score(X, lengths) == -np.inf
        assert fe.score(X[:2]) == pytest.approx(peer.score(X[:2]), rel=RTOL)
        return
    name, _, algorithm = method.partition("-")
    kwargs = {"algorithm": algorithm} if algorithm else {}
    with pytest.raises(ValueError, match=r"[Ss]equence 1\b"):
        getattr(fe, name)(X, lengths, **kwargs)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_empty_state_keeps_its_parameters(covariance_type):
    """A state no frame can reach (startprob_ 0, no transition into it)
    keeps its mean and full covariance (hmmlearn writes NaN); its diag or
    spherical variances follow hmmlearn's formula floored at 1e-5."""
    parameters = start_parameters(f"gaussian-{covariance_type}")
    parameters["startprob_"] = np.array([0.6, 0.4, 0.0])
    transmat = parameters["transmat_"].copy()
    transmat[:, 2] = 0.0
    parameters["transmat_"] = transmat / transmat.sum(axis=1, keepdims=True)
    X = make_data("gaussian", seed=25)
    fe = set_parameters(GaussianHMM(K, covariance_type=covariance_type, n_iter=3, tol=-np.inf,
                                    init_params=""), parameters).fit(X, LENGTHS)
    assert np.all(np.isfinite(fe.means_)) and np.all(np.isfinite(fe.covars_))
    assert_allclose(fe.means_[2], parameters["means_"][2], rtol=0, atol=0)
    if covariance_type == "full":
        assert_allclose(fe.covars_[2], parameters["covars_"][2], rtol=0, atol=0)
    elif covariance_type in ("diag", "spherical"):
        # (covars_prior + 0) / max(0 + 0, 1e-5) with the default prior 1e-2
        assert_allclose(np.diag(fe.covars_[2]), 1e-2 / 1e-5, rtol=1e-12)
    assert fe.startprob_[2] == 0.0 and np.all(fe.transmat_[:, 2] == 0.0)


@pytest.mark.parametrize("method", ["fit", "score", "predict", "decode"])
def test_negative_poisson_counts_raise(method):
    X = make_data("poisson")
    X[17, 1] = -3
    model, _ = build_pair("poisson", init_params="")
    with pytest.raises(ValueError, match=r"(?i)negative.*-3|-3.*negative"):
        getattr(model, method)(X)


@pytest.mark.parametrize("method", ["score", "score_samples", "predict", "predict_proba",
                                    "decode"])
@pytest.mark.parametrize("bad", [M, M + 3, -1])
def test_categorical_symbol_out_of_range_raises(method, bad):
    """Symbols at or past n_features of a fitted model, or negative: a
    ValueError (hmmlearn 0.3.3 raises IndexError, or wraps a negative
    symbol around to the last ones)."""
    X = make_data("categorical")
    model, _ = fit_pair("categorical", X, LENGTHS, 2)
    X[5, 0] = bad
    with pytest.raises(ValueError):
        getattr(model, method)(X)


@pytest.mark.parametrize("bad", [M, -1])
def test_categorical_fit_symbol_out_of_range_raises(bad):
    X = make_data("categorical")
    X[5, 0] = bad
    with pytest.raises(ValueError):
        CategoricalHMM(K, n_features=M, n_iter=2).fit(X)
    model, _ = build_pair("categorical", init_params="", n_iter=2)
    with pytest.raises(ValueError):
        model.fit(X, LENGTHS)


@pytest.mark.parametrize("method", ["fit", "score", "predict"])
def test_categorical_non_integer_symbols_raise(method):
    X = make_data("categorical").astype(np.float64)
    X[9, 0] = 1.5
    model, _ = fit_pair("categorical", make_data("categorical"), LENGTHS, 2)
    with pytest.raises(ValueError):
        getattr(model, method)(X)


def test_categorical_n_features_from_data():
    """Without n_features, the symbols seen set it, as in hmmlearn."""
    X = make_data("categorical", seed=11)
    assert X.max() == M - 1
    fe = CategoricalHMM(K, random_state=0, n_iter=3, init_params="",
                        params="ste")
    peer = hl.CategoricalHMM(K, random_state=0, n_iter=3, init_params="", params="ste")
    for model in (fe, peer):
        set_parameters(model, start_parameters("categorical"))
        model.fit(X, LENGTHS)
    assert fe.n_features == peer.n_features == M
    assert_same_parameters(fe, peer, "categorical")
