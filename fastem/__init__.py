"""fastem: Gaussian mixtures fitted by EM with fused, parallel Numba kernels.

``fastem.GaussianMixture`` is a drop-in replacement for
``sklearn.mixture.GaussianMixture``; ``fastem.MiniBatchGaussianMixture``
fits by online (stepwise) EM and learns from streams with ``partial_fit``;
``model.save(path)`` and ``fastem.load(path)`` store and read fitted models.
"""

from . import _config  # noqa: F401  (reads the FASTEM_* settings first)
from ._collapse import CollapseWarning
from ._io import load
from .categorical import CategoricalMixture
from .discrete import BernoulliMixture, BinomialMixture, MultinomialMixture, PoissonMixture
from .discrete_online import (
    MiniBatchBernoulliMixture,
    MiniBatchBinomialMixture,
    MiniBatchCategoricalMixture,
    MiniBatchMultinomialMixture,
    MiniBatchPoissonMixture,
)
from .mixture import GaussianMixture
from .online import MiniBatchGaussianMixture
from .select import SelectionResult, select

__version__ = "0.1.0"

__all__ = ["BernoulliMixture", "BinomialMixture", "CategoricalMixture", "CollapseWarning", "GaussianMixture", "MiniBatchBernoulliMixture", "MiniBatchBinomialMixture",
           "MiniBatchCategoricalMixture", "MiniBatchGaussianMixture", "MiniBatchMultinomialMixture",
           "MiniBatchPoissonMixture", "MultinomialMixture", "PoissonMixture",
           "SelectionResult",
           "__version__", "load", "select"]
