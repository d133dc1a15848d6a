"""fastem: Gaussian mixtures fitted by EM with fused, parallel Numba kernels.

``fastem.GaussianMixture`` is a drop-in replacement for
``sklearn.mixture.GaussianMixture``.
"""

from . import _config  # noqa: F401  (sets the OpenMP wait policy first)
from .mixture import GaussianMixture

__version__ = "0.1.0"

__all__ = ["GaussianMixture", "__version__"]
