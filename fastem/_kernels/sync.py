"""Atomic operations on an int64 control array, for the slot kernels.

A slot kernel is called on every thread with the same ``ctrl`` array
(``int64[2]``, zeros): ``ctrl[0]`` is the next slot to claim, ``ctrl[1]`` the
number of slots finished.  :func:`claim_slot` hands out each slot exactly
once, whichever thread asks; :func:`finish_slot` publishes a slot's results
(sequentially consistent, so a thread that reads ``ctrl[1] == n_slots`` with
:func:`finished` sees every slot's writes).  See :mod:`fastem._parallel`.
"""

from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .._config import CACHE


def _element_pointer(context, builder, arrty, arr, index):
    ary = context.make_array(arrty)(context, builder, arr)
    return cgutils.get_item_pointer(context, builder, arrty, ary, [index])


@intrinsic
def _fetch_add(typingctx, arr, index, value):
    """Atomically ``old = arr[index]; arr[index] += value``; returns old."""
    if not (isinstance(arr, types.Array) and arr.dtype == types.int64 and arr.ndim == 1):
        return None
    sig = types.int64(arr, types.intp, types.int64)

    def codegen(context, builder, signature, args):
        ptr = _element_pointer(context, builder, signature.args[0], args[0], args[1])
        return builder.atomic_rmw("add", ptr, args[2], "seq_cst")

    return sig, codegen


@intrinsic
def _load_acquire(typingctx, arr, index):
    """``arr[index]``, an atomic load with acquire ordering."""
    if not (isinstance(arr, types.Array) and arr.dtype == types.int64 and arr.ndim == 1):
        return None
    sig = types.int64(arr, types.intp)

    def codegen(context, builder, signature, args):
        ptr = _element_pointer(context, builder, signature.args[0], args[0], args[1])
        return builder.load_atomic(ptr, "acquire", 8)

    return sig, codegen


@njit(cache=CACHE, nogil=True)
def claim_slot(ctrl):
    """The next unclaimed slot (may be >= the number of slots: none left)."""
    return _fetch_add(ctrl, 0, 1)


@njit(cache=CACHE, nogil=True)
def finish_slot(ctrl):
    """Count one slot as finished, after its results are written."""
    _fetch_add(ctrl, 1, 1)


@njit(cache=CACHE, nogil=True)
def finished(ctrl, n_slots, max_spins):
    """Spin (without the GIL) until ``n_slots`` slots are finished, at most
    ``max_spins`` reads; True if they are."""
    for _ in range(max_spins):
        if _load_acquire(ctrl, 1) >= n_slots:
            return True
    return False
