"""fastem: Gaussian mixtures fitted by EM with fused, parallel Numba kernels.

``fastem.GaussianMixture`` is a drop-in replacement for
``sklearn.mixture.GaussianMixture``; ``fastem.MiniBatchGaussianMixture``
fits by online (stepwise) EM and learns from streams with ``partial_fit``;
``model.save(path)`` and ``fastem.load(path)`` store and read fitted models.

The names below are imported when first used (PEP 562), so that
``import fastem`` and the command line start without loading scikit-learn,
SciPy and Numba: ``fastem fit data.csv`` parses its file while they load.
"""

import importlib
import sys
import types
from typing import TYPE_CHECKING

from . import _config  # noqa: F401  (reads the FASTEM_* settings first)

if TYPE_CHECKING:  # what type checkers and the API docs read; at run time, __getattr__
    from ._collapse import CollapseWarning
    from ._io import load
    from .bayesian import BayesianGaussianMixture, MiniBatchBayesianGaussianMixture
    from .categorical import CategoricalMixture
    from .discrete import BernoulliMixture, BinomialMixture, MultinomialMixture, PoissonMixture
    from .discrete_online import (
        MiniBatchBernoulliMixture,
        MiniBatchBinomialMixture,
        MiniBatchCategoricalMixture,
        MiniBatchMultinomialMixture,
        MiniBatchPoissonMixture,
    )
    from .hmm import CategoricalHMM, GaussianHMM, PoissonHMM
    from .impute import MixtureImputer
    from .mixture import GaussianMixture
    from .online import MiniBatchGaussianMixture
    from .select import SelectionResult, select

__version__ = "0.1.0"

#: Each public name and the submodule that defines it.
_EXPORTS = {
    "BayesianGaussianMixture": "bayesian", "MiniBatchBayesianGaussianMixture": "bayesian",
    "BernoulliMixture": "discrete", "BinomialMixture": "discrete",
    "MultinomialMixture": "discrete", "PoissonMixture": "discrete",
    "CategoricalMixture": "categorical",
    "CollapseWarning": "_collapse",
    "GaussianMixture": "mixture",
    "MiniBatchBernoulliMixture": "discrete_online", "MiniBatchBinomialMixture": "discrete_online",
    "MiniBatchCategoricalMixture": "discrete_online",
    "MiniBatchMultinomialMixture": "discrete_online",
    "MiniBatchPoissonMixture": "discrete_online",
    "MiniBatchGaussianMixture": "online",
    "MixtureImputer": "impute",
    "GaussianHMM": "hmm", "CategoricalHMM": "hmm", "PoissonHMM": "hmm",
    "SelectionResult": "select", "select": "select",
    "load": "_io",
}

__all__ = ["BayesianGaussianMixture", "BernoulliMixture", "BinomialMixture", "CategoricalHMM", "CategoricalMixture",
           "CollapseWarning", "GaussianHMM", "GaussianMixture", "MiniBatchBernoulliMixture", "MiniBatchBinomialMixture",
           "MiniBatchBayesianGaussianMixture", "MiniBatchCategoricalMixture",
           "MiniBatchGaussianMixture", "MiniBatchMultinomialMixture",
           "MiniBatchPoissonMixture", "MixtureImputer", "MultinomialMixture", "PoissonHMM",
           "PoissonMixture", "SelectionResult",
           "__version__", "load", "select"]
assert sorted(__all__) == sorted([*_EXPORTS, "__version__"])


def __getattr__(name):
    where = _EXPORTS.get(name)
    if where is None:
        try:  # a submodule not imported yet (fastem.plot, fastem.datasets)
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{where}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted({*globals(), *_EXPORTS})


class _Package(types.ModuleType):
    """Keeps an exported name from being bound over by the submodule of the
    same name: importing ``fastem.select`` (the module) sets the package's
    attribute ``select`` to it, and ``fastem.select`` is the function."""

    def __setattr__(self, name, value):
        if isinstance(value, types.ModuleType) and _EXPORTS.get(name) == name:
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
