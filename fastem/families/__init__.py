"""Mixture families: what a component is (its parameters, statistics,
M-step, domain, parameter count and sampler).  The Gaussian family's maths
lives in :mod:`fastem._stats`; the discrete families are here."""
