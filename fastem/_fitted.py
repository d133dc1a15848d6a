"""The fitted state of an estimator, kept whole when a call fails: a failed
``fit`` or ``partial_fit`` leaves the model exactly as it was."""

import contextlib
import threading

import numpy as np

#: Attributes that are caches or the command line's hooks, not model state.
_NOT_STATE = ("_workspaces", "_progress")


def _is_state(name):
    """Fitted attributes end with '_', private state starts with it;
    hyper-parameters (scikit-learn's rule) do neither."""
    return (name.endswith("_") or name.startswith("_")) and name not in _NOT_STATE


#: fastem's state objects that a fit changes in place (the collapse
#: recovery: events, ridges, budget); others (statistics) are replaced.
_MUTABLE_OBJECTS = ("Recovery", "DiscreteRecovery")

#: Types a fit only ever replaces (the fast path of :func:`_restorer`).
_REPLACED = frozenset((np.ndarray, int, float, bool, str, type(None), tuple, np.float64,
                       np.int64, np.bool_))

_guards = threading.local()


def before_draw(random_state):
    """Called by code about to draw from a RandomState that may be model
    state (the collapse recovery's re-seeds): the innermost active
    :func:`kept_on_error` saves its generator state the first time.  Saving
    it costs ~30 us, so a lazy guard does it only when a draw happens."""
    stack = getattr(_guards, "stack", None)
    if stack:
        stack[-1].setdefault(id(random_state), (random_state, random_state.get_state()))


def _restorer(value, lazy):
    """A function that puts ``value`` back, in place, as it is now (None if
    a fit never changes it in place): a list or dict its items (numbers and
    tuples in an estimator's state), a RandomState its generator state (with
    ``lazy``, only if :func:`before_draw` saw a draw), the collapse recovery
    its attributes, recursively.  Arrays, numbers, strings and statistics
    are replaced by a fit, never changed in place."""
    if type(value) in _REPLACED:
        return None
    if isinstance(value, list):
        items = list(value)
        return lambda: value.__setitem__(slice(None), items)
    if isinstance(value, dict):
        items = dict(value)
        return lambda: (value.clear(), value.update(items))
    if isinstance(value, np.random.RandomState):
        if lazy:
            return None
        state = value.get_state()
        return lambda: value.set_state(state)
    if type(value).__name__ not in _MUTABLE_OBJECTS:
        return None
    attrs = vars(value)
    items = dict(attrs)
    inner = [f for f in (_restorer(v, lazy) for v in items.values()) if f is not None]

    def restore():
        attrs.clear()
        attrs.update(items)
        for f in inner:
            f()

    return restore


@contextlib.contextmanager
def kept_on_error(estimator, lazy_random_state=False):
    """Run the block; if it raises, restore the estimator's fitted and private
    state exactly as it was: attributes added are removed, replaced ones put
    back, and objects changed in place (the collapse recovery's events and
    ridges, random generators, lists) restored in place, so that objects
    shared between attributes stay shared.

    ``lazy_random_state``: the generators in the state are saved only when
    :func:`before_draw` reports a draw (for ``partial_fit``, where only a
    re-seed draws and the eager ~30 us would be paid on every call)."""
    state = {k: v for k, v in vars(estimator).items() if _is_state(k)}
    restorers = [f for f in (_restorer(v, lazy_random_state) for v in state.values())
                 if f is not None]
    drawn = {}
    stack = _guards.__dict__.setdefault("stack", [])
    stack.append(drawn)
    try:
        yield
    except BaseException:
        attrs = vars(estimator)
        for k in [k for k in attrs if _is_state(k)]:
            del attrs[k]
        attrs.update(state)
        for f in restorers:
            f()
        for rs, rs_state in drawn.values():
            rs.set_state(rs_state)
        raise
    finally:
        stack.pop()
