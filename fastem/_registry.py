"""The mixture families fastem fits, by name: the one place that saving and
loading (:mod:`fastem._io`, :mod:`fastem._model_check`), :func:`fastem.select`,
the command line and :mod:`fastem.plot` learn which estimators exist.  The
hidden Markov models (:mod:`fastem.hmm`) are listed apart, in :data:`HMMS`:
they are not mixture families (the command line and the plots do not take
them), but :func:`fastem.load` reads them and ``select(model="hmm")`` fits
them.

A new family is a new module plus one :class:`Family` entry in
:data:`FAMILIES`; nothing else in the package changes.  Its estimator classes
are named by import strings (``"module:Class"``) and resolved only when asked
for, so this module imports no estimator (no import cycles), and an entry
whose class does not exist yet (a family still being written) is skipped
everywhere -- it starts working as soon as the class exists.

Security note: the classes listed here are the allow-list of
:func:`fastem.load`.  A model file names a class; only a class that one of
these entries (or of :data:`HMMS`) resolves to is ever instantiated, and
only the helper classes of that model's own family (:attr:`Family.state_classes`,
:attr:`HiddenMarkov.state_classes`) are rebuilt from the file.
"""

import importlib
from dataclasses import dataclass

__all__ = ["FAMILIES", "HMMS", "Family", "HiddenMarkov", "family_named", "family_names",
           "family_of", "get_family", "get_hmm", "hmm_names", "hmm_of", "model_classes",
           "state_classes"]

#: Private attributes of every online (stepwise EM) estimator that
#: ``partial_fit`` continues from (fastem.online.BaseMiniBatchMixture): the
#: running statistics, the collapse recovery (events, re-seed budget), the
#: once-per-model warning flag and the random state re-seeds draw from.
ONLINE_STATE = ("_running", "_collapse", "_collapse_warned", "_random_state")


@dataclass(frozen=True)
class Family:
    """One mixture family.

    Attributes
    ----------
    name : str
        What users type: ``select(family=...)``, ``fastem fit --family``.
    batch, online : str
        ``"module:Class"`` of the batch estimator and of its online
        (``partial_fit``) counterpart (None if there is none).
    variational : tuple of str
        ``"module:Class"`` of the family's variational Bayesian estimators
        (saved and loaded like the others; the command line reaches them by
        a flag, ``fastem fit --bayesian``).
    parameters : tuple of str
        The fitted per-component parameter attributes besides ``weights_``
        (``means_``, ``probabilities_``, ``rates_``): what summaries and
        profile plots show.  Each is an array (n_components, n_features), or
        a list of one array (n_components, C_j) per feature.
    fitted : tuple of str
        Other fitted attributes every fit of the family sets
        (``n_categories_``); those of every estimator are in
        :mod:`fastem._model_check`.
    covariance : bool
        Whether the estimators take ``covariance_type`` and ``reg_covar``
        (the Gaussian family only).
    options : tuple of (parameter, flag, help)
        Constructor parameters the command line passes through
        (``n_trials`` as ``--n-trials`` for the binomial family).
    table : bool
        The estimator reads a table of category codes or labels (a pandas
        DataFrame of strings, categories or integers), not only numbers: the
        command line reads text columns as text for it.
    online_state : tuple of str
        Private attributes of the online estimator saved in a model file.
    state_classes : tuple of str
        ``"module:Class"`` of the helper objects that state holds (running
        statistics, collapse recovery): the only classes a file of this
        family may rebuild.
    description : str
        One line for ``--help``.
    """

    name: str
    batch: str
    online: str | None = None
    variational: tuple = ()
    parameters: tuple = ()
    fitted: tuple = ()
    covariance: bool = False
    options: tuple = ()
    table: bool = False
    online_state: tuple = ONLINE_STATE
    state_classes: tuple = ()
    description: str = ""

    # -- the classes, resolved lazily -----------------------------------

    def batch_class(self):
        """The batch estimator class, or None while it does not exist."""
        return _resolve(self.batch)

    def online_class(self):
        """The online estimator class, or None (none, or not there yet)."""
        return None if self.online is None else _resolve(self.online)

    def estimator_class(self, online=False):
        """The batch (or online) class; a ValueError that says why when this
        fastem does not have it."""
        spec = self.online if online else self.batch
        cls = self.online_class() if online else self.batch_class()
        if cls is None:
            why = "none is planned" if spec is None else \
                f"{spec.replace(':', '.')} does not exist in this fastem"
            if online:
                raise ValueError(
                    f"The {self.name!r} family has no online (mini-batch) estimator ({why}). "
                    f"Families with one: {', '.join(family_names(online=True))}.")
            raise ValueError(
                f"The {self.name!r} family is not available ({why}). Families available: "
                f"{', '.join(family_names())}.")
        return cls

    def classes(self):
        """``[(class, private attributes saved)]`` of the classes that exist."""
        out = []
        cls = self.batch_class()
        if cls is not None:
            out.append((cls, ()))
        cls = self.online_class()
        if cls is not None:
            out.append((cls, tuple(self.online_state)))
        # an online variational estimator saves the online state too
        out += [(cls, tuple(self.online_state) if hasattr(cls, "partial_fit") else ())
                for cls in self.variational_classes()]
        return out

    def variational_classes(self):
        """The variational estimator classes that exist."""
        return [c for c in (_resolve(spec) for spec in self.variational) if c is not None]

    def helper_classes(self):
        """``{name: class}`` of this family's state classes that exist."""
        return _existing(self.state_classes)

    @property
    def available(self):
        return self.batch_class() is not None


def _existing(specs):
    """``{name: class}`` of the ``"module:Class"`` specs that resolve."""
    out = {}
    for spec in specs:
        cls = _resolve(spec)
        if cls is not None:
            out[cls.__name__] = cls
    return out


def _resolve(spec):
    """The class ``"module:Class"`` names, or None if the module or the
    class does not exist (yet); also looked up in the ``fastem`` namespace,
    where the public classes are exported."""
    module, _, name = spec.partition(":")
    for where in (module, "fastem"):
        try:
            cls = getattr(importlib.import_module(where), name)
        except (ImportError, AttributeError):
            continue
        if isinstance(cls, type):
            return cls
    return None


_DISCRETE_STATE = ("fastem.families.linear:LinearStats", "fastem.discrete:DiscreteRecovery")

#: Every family, by name, in the order they are listed to users.
FAMILIES = {f.name: f for f in (
    Family("gaussian", "fastem.mixture:GaussianMixture",
           "fastem.online:MiniBatchGaussianMixture",
           variational=("fastem.bayesian:BayesianGaussianMixture",
                        "fastem.bayesian:MiniBatchBayesianGaussianMixture"),
           parameters=("means_",), covariance=True,
           online_state=("_running", "_shift", "_collapse", "_collapse_warned",
                         "_random_state"),
           state_classes=("fastem._stats:GaussianStats", "fastem._collapse:Recovery"),
           description="real-valued features (full, tied, diag or spherical covariances)"),
    Family("bernoulli", "fastem.discrete:BernoulliMixture",
           "fastem.discrete_online:MiniBatchBernoulliMixture",
           parameters=("probabilities_",), state_classes=_DISCRETE_STATE,
           description="binary 0/1 features (latent class analysis of yes/no items)"),
    Family("binomial", "fastem.discrete:BinomialMixture",
           "fastem.discrete_online:MiniBatchBinomialMixture",
           parameters=("probabilities_",), state_classes=_DISCRETE_STATE,
           options=(("n_trials", "--n-trials",
                     "trials per cell, 0 <= x <= N (--family binomial only; default 1)"),),
           description="counts of successes out of n_trials per feature"),
    Family("poisson", "fastem.discrete:PoissonMixture",
           "fastem.discrete_online:MiniBatchPoissonMixture",
           parameters=("rates_",), state_classes=_DISCRETE_STATE,
           description="non-negative integer counts"),
    Family("multinomial", "fastem.discrete:MultinomialMixture",
           "fastem.discrete_online:MiniBatchMultinomialMixture",
           parameters=("probabilities_",), state_classes=_DISCRETE_STATE,
           description="count vectors over the features (bag of words)"),
    Family("categorical", "fastem.categorical:CategoricalMixture",
           "fastem.discrete_online:MiniBatchCategoricalMixture",
           parameters=("probabilities_",), fitted=("n_categories_",), table=True,
           state_classes=_DISCRETE_STATE,
           description="categorical features (codes, or text/category columns)"),
)}


@dataclass(frozen=True)
class HiddenMarkov:
    """One hidden Markov model class (:mod:`fastem.hmm`).

    Attributes
    ----------
    emissions : str
        The family of its emissions, as ``select(model="hmm", family=...)``
        names it (``"gaussian"``, ``"categorical"``, ``"poisson"``).
    spec : str
        ``"module:Class"`` of the estimator.
    parameters : tuple of str
        The emission attributes every fit sets (besides ``startprob_`` and
        ``transmat_``): what :mod:`fastem._model_check` checks.
    private : tuple of str
        Attributes saved in a model file besides the public fitted ones (a
        trailing ``_``): the compact covariance ``_covars_`` and the plain
        ``n_features`` (a constructor parameter of ``CategoricalHMM``, so
        saved with the parameters there).
    state_classes : tuple of str
        ``"module:Class"`` of the helper objects its state holds
        (``monitor_``): the only classes a file of this model may rebuild.
    """

    emissions: str
    spec: str
    parameters: tuple = ()
    private: tuple = ()
    state_classes: tuple = ("fastem._baum_welch:ConvergenceMonitor",)

    def estimator_class(self):
        """The class, or None while it does not exist."""
        return _resolve(self.spec)

    def helper_classes(self):
        """``{name: class}`` of its state classes that exist."""
        return _existing(self.state_classes)


#: The hidden Markov models, by the family of their emissions.  Not mixture
#: families: only saving and loading and ``select(model="hmm")`` read this.
HMMS = {h.emissions: h for h in (
    HiddenMarkov("gaussian", "fastem.hmm:GaussianHMM", parameters=("means_", "_covars_"),
                 private=("_covars_", "n_features")),
    HiddenMarkov("categorical", "fastem.hmm:CategoricalHMM", parameters=("emissionprob_",)),
    HiddenMarkov("poisson", "fastem.hmm:PoissonHMM", parameters=("lambdas_",),
                 private=("n_features",)),
)}


def hmm_names():
    """The emission families of the hidden Markov models that exist."""
    return [name for name, h in HMMS.items() if h.estimator_class() is not None]


def get_hmm(emissions):
    """The :class:`HiddenMarkov` whose emissions are ``emissions``; a
    ValueError naming the choices otherwise."""
    entry = HMMS.get(emissions) if isinstance(emissions, str) else None
    if entry is None or entry.estimator_class() is None:
        raise ValueError(f"No hidden Markov model has {emissions!r} emissions. Expected "
                         f"family= one of {hmm_names()} with model='hmm'.")
    return entry


def hmm_of(model):
    """The :class:`HiddenMarkov` of a hidden Markov model (instance or
    class), or None (subclasses are not fastem's)."""
    cls = model if isinstance(model, type) else type(model)
    for entry in HMMS.values():
        if cls is entry.estimator_class():
            return entry
    return None


def family_names(online=False):
    """Names of the families whose estimator (online: online estimator)
    exists in this fastem, in :data:`FAMILIES` order."""
    return [name for name, f in FAMILIES.items()
            if (f.online_class() if online else f.batch_class()) is not None]


def get_family(name):
    """The :class:`Family` called ``name``; a ValueError naming the choices
    for an unknown name or one whose estimator does not exist yet."""
    family = FAMILIES.get(name) if isinstance(name, str) else None
    if family is None:
        raise ValueError(f"Unknown family {name!r}. Expected one of "
                         f"{family_names()}.")
    family.estimator_class()  # raises if it is not there (yet)
    return family


def family_of(model):
    """The :class:`Family` of an estimator (instance or class), or None for
    a class that is not one of fastem's (subclasses are not)."""
    cls = model if isinstance(model, type) else type(model)
    for family in FAMILIES.values():
        if cls in (family.batch_class(), family.online_class(), *family.variational_classes()):
            return family
    return None


def family_named(class_name):
    """The :class:`Family` one of whose estimators is called
    ``class_name`` (the class a model file names), found without importing
    any estimator; None if there is none."""
    for family in FAMILIES.values():
        for spec in (family.batch, family.online, *family.variational):
            if spec is not None and spec.rpartition(":")[2] == class_name:
                return family
    return None


def model_classes():
    """``{class name: (class, private attributes saved)}`` of every
    registered estimator that exists (the mixture families', then the hidden
    Markov models'): the allow-list of :func:`fastem.load`."""
    out = {}
    for family in FAMILIES.values():
        for cls, private in family.classes():
            out[cls.__name__] = (cls, private)
    for entry in HMMS.values():
        cls = entry.estimator_class()
        if cls is not None:
            out[cls.__name__] = (cls, tuple(entry.private))
    return out


def state_classes(class_name=None):
    """``{name: class}`` of the helper objects a saved state may hold: those
    of the family of the estimator class ``class_name`` (all families' and
    hidden Markov models' if None)."""
    out = {}
    for family in FAMILIES.values():
        if class_name is None or any(cls.__name__ == class_name for cls, _ in family.classes()):
            out.update(family.helper_classes())
    for entry in HMMS.values():
        if class_name is None or entry.spec.rpartition(":")[2] == class_name:
            out.update(entry.helper_classes())
    return out
