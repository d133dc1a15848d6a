"""BayesianGaussianMixture against scikit-learn's, per variational iteration,
from the same start, beside GaussianMixture's EM ratio measured in the same
run (the kernels are the same, so the ratios should be too).

    python benchmarks/bayesian_speed.py                 # the quick grid of fastem bench
    python benchmarks/bayesian_speed.py --grid "1000000,16,16" --repeats 3

Equivalent to ``fastem bench --bayesian``; see :mod:`fastem.bench_bayesian`
for the protocol.
"""

import sys

from fastem.bench import main

if __name__ == "__main__":
    sys.exit(main(["--bayesian", *sys.argv[1:]]))
