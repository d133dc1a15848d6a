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


def _load_codes(name):
    """Read ``data/<name>.csv``: a header of column names, then integer codes."""
    path = resources.files("fastem").joinpath("data", name + ".csv")
    with path.open("r", newline="") as fh:
        rows = list(csv.reader(fh))
    return np.array(rows[1:], dtype=np.int64), rows[0]


def load_carcinoma():
    """Carcinoma diagnoses: 118 slides rated by 7 pathologists (binary).

    Columns ``A`` to ``G`` are the pathologists; each rated every slide for
    carcinoma of the uterine cervix, coded as in R's poLCA: 1 = no,
    2 = yes (subtract 1 for 0/1 data).  There are 20 distinct response
    patterns.  Latent class fits (poLCA's documentation): maximum
    log-likelihood -317.2568 with 2 classes, -293.705 with 3.

    Source: Agresti, A. (2002), *Categorical Data Analysis*, 2nd ed., Wiley,
    Table 13.1 (p. 542); originally Landis, J. R. and Koch, G. G. (1977),
    Biometrics 33, 363-374, from Holmquist, N. D., McMahan, C. A. and
    Williams, O. D. (1967), Archives of Pathology 84, 334-345.  Converted
    from ``data/carcinoma.rda`` of the R package poLCA 1.6.0.2 (Linzer and
    Lewis, GPL >= 2; CRAN mirror github.com/cran/poLCA).

    Returns
    -------
    X : ndarray of shape (118, 7), int64, values 1 and 2
    columns : list of str
    """
    return _load_codes("carcinoma")


def load_gss82():
    """Attitudes towards surveys: 1202 respondents of the 1982 GSS, 4 items.

    Codes as in R's poLCA (1-based, subtract 1 for 0-based categories):

    - ``PURPOSE``: 1 good, 2 depends, 3 waste of time and money;
    - ``ACCURACY``: 1 mostly true, 2 not true;
    - ``UNDERSTA``: 1 good, 2 fair/poor;
    - ``COOPERAT``: 1 interested, 2 cooperative, 3 impatient/hostile.

    33 distinct response patterns.  Latent class fits (poLCA's
    documentation): maximum log-likelihood -2783.268 with 2 classes,
    -2754.545 with 3.

    Source: McCutcheon, A. L. (1987), *Latent Class Analysis*, Sage,
    Table 3.1 (p. 30); white respondents to the 1982 General Social Survey.
    Converted from ``data/gss82.rda`` of the R package poLCA 1.6.0.2 (Linzer
    and Lewis, GPL >= 2; CRAN mirror github.com/cran/poLCA).

    Returns
    -------
    X : ndarray of shape (1202, 4), int64, values from 1
    columns : list of str
    """
    return _load_codes("gss82")


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
