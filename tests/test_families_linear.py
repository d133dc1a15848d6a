"""The linear families' maths (fastem/families/linear.py) against the readable
reference: natural parameters plus the row constant give the reference's log
joint, the M-step gives the reference's, and the domain checks name the bad
value and where it is."""

import numpy as np
import pytest
from scipy import sparse

import reference as ref
from fastem.families.linear import Bernoulli, Binomial, LinearParams, Multinomial, Poisson

RNG = np.random.default_rng(0)
K, D, N = 3, 5, 40
N_TRIALS = np.array([1, 3, 10, 2, 7])


def _case(name):
    w = RNG.dirichlet(np.ones(K))
    if name == "bernoulli":
        X, theta = RNG.integers(0, 2, (N, D)), RNG.uniform(0.05, 0.95, (K, D))
        return Bernoulli(), X, theta, ref.bernoulli_log_joint, ref.bernoulli_mstep, {}
    if name == "binomial":
        X, theta = RNG.binomial(N_TRIALS, 0.4, (N, D)), RNG.uniform(0.05, 0.95, (K, D))
        kw = {"n_trials": N_TRIALS}
        return Binomial(N_TRIALS), X, theta, ref.binomial_log_joint, ref.binomial_mstep, kw
    if name == "poisson":
        X, theta = RNG.poisson(3.0, (N, D)), RNG.uniform(0.5, 6.0, (K, D))
        return Poisson(), X, theta, ref.poisson_log_joint, ref.poisson_mstep, {}
    X, theta = RNG.poisson(2.0, (N, D)), RNG.dirichlet(np.ones(D), K)
    return Multinomial(), X, theta, ref.multinomial_log_joint, ref.multinomial_mstep, {}


FAMILIES = ["bernoulli", "binomial", "poisson", "multinomial"]


@pytest.mark.parametrize("name", FAMILIES)
def test_linear_form_plus_row_constant_is_the_log_joint(name):
    family, X, theta, log_joint, _, kw = _case(name)
    w = RNG.dirichlet(np.ones(K))
    A, b = family.natural(LinearParams(w, theta))
    ours = X @ A.T + b + family.row_constant(X)[:, None]
    np.testing.assert_allclose(ours, log_joint(X, (w, theta), **kw), rtol=1e-12)
    if family.accepts_sparse:
        np.testing.assert_allclose(family.row_constant(sparse.csr_matrix(X)),
                                   family.row_constant(X), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("alpha", [0.0, 0.5])
@pytest.mark.parametrize("name", FAMILIES)
def test_m_step_is_the_reference(name, alpha):
    family, X, theta, _, m_step, kw = _case(name)
    S0 = RNG.uniform(1, 20, K)
    S1 = RNG.uniform(0, 1, (K, D)) * S0[:, None] * (N_TRIALS if name == "binomial" else 1)
    ours = family.m_step(S0, S1, alpha)
    w, t = m_step({"S0": S0, "S1": S1}, alpha, **kw)
    np.testing.assert_allclose(ours.weights, w, rtol=1e-14)
    np.testing.assert_allclose(ours.theta, t, rtol=1e-14)
    fixed = family.m_step(S0, S1, alpha, fixed_weights=[0.2, 0.3, 0.5])
    assert np.array_equal(fixed.weights, [0.2, 0.3, 0.5])


def _where(shape):
    return lambda i: f"row {i // shape[1]}, column {i % shape[1]}"


@pytest.mark.parametrize("family, values, message", [
    (Bernoulli(), [[0, 1], [2, 0]], "values 0 or 1, but X holds 2 at row 1, column 0"),
    (Bernoulli(), [[0, np.nan]], "missing values \\(nan\\)"),
    (Poisson(), [[1, -1]], "non-negative counts, but X holds -1 at row 0, column 1"),
    (Poisson(), [[1.5, 1]], "whole-number counts, but X holds 1.5 at row 0, column 0"),
    (Multinomial(), [[np.inf, 1]], "whole-number counts"),
    (Binomial(np.array([2, 5])), [[3, 1]], "at most n_trials, but X holds 3 at row 0, column 0"),
])
def test_domain_checks_name_the_value_and_where(family, values, message):
    values = np.asarray(values)
    with pytest.raises(ValueError, match=message):
        family.check_values(values, _where(values.shape))
    family.check_values(np.zeros_like(values), _where(values.shape))  # 0 is in every domain
