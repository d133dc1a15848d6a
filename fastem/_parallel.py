"""Running a slot kernel on several threads.

Every parallel kernel in fastem is a plain ``@njit(nogil=True)`` function whose
last argument is a control array ``ctrl`` (``int64[2]``, zeros; see
:mod:`fastem._kernels.sync`).  The kernel loops: claim the next slot
atomically, process that slot's rows into the slot's own row of the output
buffers, count the slot as finished; it returns when no slot is left.
:func:`run_slots` calls the kernel in the calling thread and, at the same
time, on ``threads - 1`` pool threads.  The kernels release the GIL, so the
calls run in parallel.

Which thread takes which slot varies from run to run; what a slot sums, and
in what order, does not: slot ``s`` always covers the same rows, and the
caller adds the slots up in slot order.  Results are bitwise identical for
any number of threads.  Claiming slots as they come also balances the load:
a pool thread that wakes late (waking a virtual CPU takes tens of
microseconds) or is descheduled by a busy host takes fewer slots, and the
calling thread does the rest instead of waiting for it.  The calling thread
then waits for the slots still running by spinning on ``ctrl`` without the
GIL, so it is not put to sleep and woken again.

Why not ``parallel=True`` and ``prange``: Numba compiles a ``prange`` loop as
a separate function that LLVM then optimises and turns into machine code four
times (the loop body, two wrappers, and the kernel that links them), which
made about two thirds of every kernel's compile time.  A serial kernel is
optimised and code-generated once.

The number of threads is ``numba.get_num_threads()`` of the calling thread,
so ``numba.set_num_threads`` and ``NUMBA_NUM_THREADS`` keep their meaning.
"""

import _thread
import os
import queue
import threading

import numba
import numpy as np

from ._kernels.sync import finished

#: Reads of ``ctrl`` the calling thread spins for (about 0.65 ms on this
#: project's machine) before it blocks on the pool threads instead.
_MAX_SPINS = 1 << 21

_INBOXES = []  # one queue per pool thread
_LOCK = threading.Lock()


def _work(inbox):
    while True:
        kernel, args, ctrl, done, errors = inbox.get()
        try:
            kernel(*args, ctrl)
        except BaseException as exc:  # noqa: BLE001 (re-raised in the calling thread)
            errors.append(exc)
        finally:
            done.release()


def _inboxes(n):
    """The first ``n`` pool threads' queues, starting threads as needed."""
    if len(_INBOXES) < n:
        with _LOCK:
            while len(_INBOXES) < n:
                inbox = queue.SimpleQueue()
                threading.Thread(target=_work, args=(inbox,), daemon=True,
                                 name=f"fastem-{len(_INBOXES) + 1}").start()
                _INBOXES.append(inbox)
    return _INBOXES[:n]


def _forget_threads():  # a forked child has none of the parent's threads
    global _LOCK
    _INBOXES.clear()
    _LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_threads)


def run_slots(kernel, args, n_slots):
    """``kernel(*args, ctrl)`` on ``min(numba.get_num_threads(), n_slots)``
    threads, which share the ``n_slots`` slots between them."""
    ctrl = np.zeros(2, dtype=np.int64)
    threads = min(numba.get_num_threads(), n_slots)
    if threads <= 1:
        kernel(*args, ctrl)
        return
    errors = []
    done = []
    for inbox in _inboxes(threads - 1):
        lock = _thread.allocate_lock()
        lock.acquire()  # released by the pool thread when its call returns
        done.append(lock)
        inbox.put((kernel, args, ctrl, lock, errors))
    try:
        kernel(*args, ctrl)
    finally:
        # Normally every slot is finished after a short spin, and a pool
        # thread that got no slot returns on its own.  Otherwise (a pool
        # thread descheduled, or failed) wait until every pool call has
        # returned, then re-raise a pool thread's exception here.
        if not finished(ctrl, n_slots, _MAX_SPINS):
            for lock in done:
                lock.acquire()
            if errors:
                raise errors[0]
