"""Small data sets shipped with fastem."""

import csv
from importlib import resources

import numpy as np


def load_faithful():
    """Old Faithful geyser eruptions (272 rows).

    Columns: ``eruptions`` (duration, minutes) and ``waiting`` (minutes to
    the next eruption).  Source: Azzalini, A. and Bowman, A. W. (1990),
    "A look at some data on the Old Faithful geyser", Applied Statistics 39,
    357-365; distributed as R's ``datasets::faithful``.

    Returns
    -------
    X : ndarray of shape (272, 2), float64
    columns : list of str
    """
    path = resources.files("fastem").joinpath("data", "faithful.csv")
    with path.open("r", newline="") as fh:
        rows = list(csv.reader(fh))
    columns = rows[0]
    X = np.array([[float(v) for v in row] for row in rows[1:]], dtype=np.float64)
    return X, columns


def make_mixture(n_samples, n_features, n_components, *, separation=4.0,
                 dtype=np.float64, random_state=0):
    """A random Gaussian mixture sample (X, labels, true means).

    Means are drawn with spread ``separation``; each component gets a random
    full covariance with eigenvalues between 0.25 and 1.  Generated in row
    chunks so that memory stays at the size of X.
    """
    rng = np.random.default_rng(random_state)
    means = rng.normal(scale=separation, size=(n_components, n_features))
    chols = []
    for _ in range(n_components):
        q, _ = np.linalg.qr(rng.normal(size=(n_features, n_features)))
        evals = rng.uniform(0.25, 1.0, size=n_features)
        chols.append(q * np.sqrt(evals))
    weights = rng.dirichlet(np.full(n_components, 5.0))
    labels = rng.choice(n_components, size=n_samples, p=weights)
    X = np.empty((n_samples, n_features), dtype=dtype)
    chunk = 100_000
    for i0 in range(0, n_samples, chunk):
        lab = labels[i0:i0 + chunk]
        z = rng.standard_normal(size=(lab.size, n_features))
        for k in range(n_components):
            rows = lab == k
            z[rows] = z[rows] @ chols[k].T + means[k]
        X[i0:i0 + chunk] = z
    return X, labels, means
