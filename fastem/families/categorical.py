"""The categorical family (latent class analysis): column j takes one of
C_j categories, coded 0 .. C_j - 1, independently given the component.

Parameters are held flat: ``theta`` (K, sum_j C_j), column j's category
probabilities at ``off[j]:off[j + 1]`` (each block's rows sum to 1); the
estimator shows them as a list of d arrays (K, C_j).  The kernel gathers
``log theta[k, off[j] + x_j]`` (:class:`fastem._discrete_estep.CategoricalWorkspace`);
its statistics are ``S0_k = sum_i w_i r_ik`` and the counts
``S1[k, off[j] + c] = sum_i w_i r_ik [x_ij = c]`` (a :class:`LinearStats`).

M-step with a pseudo-count ``alpha``: ``p_c = (S1_c + alpha) / (N + C_j
alpha)`` with ``N = sum_c S1_c`` the component's count, kept inside
[1e-10, 1 - 1e-10]; free parameters ``K sum_j (C_j - 1)`` (+ K - 1 weights).
"""

import numpy as np

from .._discrete_estep import CategoricalWorkspace, category_codes
from .linear import PROB_FLOOR, LinearFamily, _clip_prob, _first_bad, _first_bad_if, _log_weights


class Categorical(LinearFamily):
    """Columns of ``n_categories`` = (C_0, ..., C_{d-1}) levels."""

    name = "categorical"
    accepts_sparse = False
    skips_missing = True

    def __init__(self, n_categories):
        self.n_categories = np.asarray(n_categories, dtype=np.int64)
        self.off = np.concatenate(([0], np.cumsum(self.n_categories))).astype(np.int64)

    def workspace(self, n_components, n_features, n_rows):
        return CategoricalWorkspace(n_components, self.n_categories, n_rows)

    def theta_cols(self, n_features):
        return int(self.off[-1])

    def natural(self, params):
        with np.errstate(divide="ignore"):
            return (np.log(np.asarray(params.theta, dtype=np.float64)),
                    _log_weights(params.weights))

    def blocks(self, theta):
        """The flat (K, sum C_j) parameters as a list of d arrays (K, C_j)."""
        return [np.array(theta[:, a:b]) for a, b in zip(self.off[:-1], self.off[1:])]

    def flat(self, blocks):
        return np.concatenate([np.asarray(b, dtype=np.float64) for b in blocks], axis=1)

    def theta_from_stats(self, S0, S1, alpha):
        theta = np.empty_like(S1)
        for a, b in zip(self.off[:-1], self.off[1:]):
            block = S1[:, a:b]
            theta[:, a:b] = (block + alpha) / (block.sum(axis=1, keepdims=True)
                                               + (b - a) * alpha)
        return _clip_prob(theta)

    def n_free_theta(self, n_components, n_features):
        return n_components * int((self.n_categories - 1).sum())

    def theta_to_vector(self, theta):
        logp = np.log(theta)
        last = np.repeat(logp[:, self.off[1:] - 1], self.n_categories, axis=1)
        return (logp - last).ravel()

    def theta_from_vector(self, v, shape):
        logp = v.reshape(shape)
        theta = np.empty(shape)
        for a, b in zip(self.off[:-1], self.off[1:]):
            e = np.exp(logp[:, a:b] - logp[:, a:b].max(axis=1, keepdims=True))
            theta[:, a:b] = e / e.sum(axis=1, keepdims=True)
        if not ((theta >= PROB_FLOOR) & (theta <= 1.0 - PROB_FLOOR)).all():
            raise ValueError("a probability outside [1e-10, 1 - 1e-10]")
        return theta

    def kmeans_input(self, Xs):
        """One-hot codes: k-means on them clusters answer patterns, not code
        values (which have no order)."""
        codes = np.asarray(Xs, dtype=np.int64)
        onehot = np.zeros((codes.shape[0], int(self.off[-1])))
        rows = np.arange(codes.shape[0])
        for j in range(codes.shape[1]):
            onehot[rows, self.off[j] + codes[:, j]] = 1.0
        return onehot

    def restart(self, Xs, i):
        """Half way between row i's answers and the sample's frequencies."""
        onehot = self.kmeans_input(Xs)
        return _clip_prob(0.5 * (onehot[i] + onehot.mean(axis=0)))

    def mean(self, theta):
        return theta

    def check_theta(self, theta, what):
        super().check_theta(theta, what)
        for j, (a, b) in enumerate(zip(self.off[:-1], self.off[1:])):
            sums = theta[:, a:b].sum(axis=1)
            if not np.allclose(sums, 1.0, rtol=0, atol=1e-6):
                raise ValueError(f"{what}: the probabilities of column {j} should sum to 1 "
                                 f"for every component, but they sum to {sums}.")

    def check_values(self, values, where):
        values = np.asarray(values)
        if values.dtype.kind == "f":
            nan = np.isnan(values)
            if nan.any():
                _first_bad(values, nan, where,
                           "CategoricalMixture needs category codes; missing values (nan) "
                           "are refused by default", "Pass missing='em' to fit on the observed "
                           "entries, or drop or impute the rows with missing values.")
            _first_bad_if(values, values != np.floor(values), where,
                          "CategoricalMixture needs whole-number category codes 0, 1, 2, ...",
                          "Encode the categories as integers, or pass a pandas DataFrame.")
        if values.dtype.kind != "b":
            _first_bad_if(values, values < 0, where,
                          "CategoricalMixture needs category codes 0, 1, 2, ...",
                          "Codes cannot be negative; encode the categories from 0.")
        if values.ndim == 2 and values.shape[1] == self.n_categories.shape[0]:
            _first_bad_if(values, values >= self.n_categories, where,
                          "CategoricalMixture was given a category code not seen at fit "
                          "(codes must be below n_categories)",
                          "Pass codes seen at fit, or refit with n_categories large enough.")

    def codes(self, X):
        return category_codes(X)

    def sample(self, theta, count, rng, **options):
        out = np.empty((count, self.n_categories.shape[0]))
        for j, (a, b) in enumerate(zip(self.off[:-1], self.off[1:])):
            p = theta[a:b] / theta[a:b].sum()
            out[:, j] = rng.choice(b - a, size=count, p=p)
        return out
