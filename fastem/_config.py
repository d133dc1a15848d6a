"""Environment-driven settings, read in one place.

``FASTEM_CACHE``       ``1`` (default) caches compiled kernels on disk
                       (Numba ``cache=True``); ``0`` turns caching off.
``FASTEM_BLOCK_SIZE``  rows per block in the fused kernels (default 256).
``FASTEM_N_SLOTS``     the most partial-statistics slots (default 256; fewer
                       when the rows or the slot buffers' memory bound ask for
                       fewer).  The slot count, never the thread count, fixes the order of
                       the floating-point reduction, so results are bitwise
                       identical for any number of threads.
``FASTEM_CHUNK_BYTES`` bytes of rows read at a time from out-of-core input
                       (``np.memmap``, h5py/zarr-like arrays; default 32 MiB,
                       and never fewer than 4096 rows).  Bounds the memory of
                       fitting and scoring such input, whatever its size.

fastem starts no OpenMP or TBB runtime: its kernels are serial Numba
functions run on a pool of Python threads (:mod:`fastem._parallel`), and it
sets no ``OMP_*`` variables.  ``NUMBA_NUM_THREADS`` and
``numba.set_num_threads`` set the number of threads.

A bad value never makes ``import fastem`` fail: it raises
:class:`ConfigError` (a ``ValueError`` naming the variable, the value and
the default) at the first use of the settings, i.e. the first fit, score or
prediction, and the command line reports it in one line before doing any
work.
"""

import os


class ConfigError(ValueError):
    """A ``FASTEM_*`` environment variable holds a value fastem cannot use."""


def _env_int(name, default, minimum):
    raw = os.environ.get(name, "")
    try:
        value = int(raw) if raw.strip() else default
    except ValueError:
        value = None
    if value is None or value < minimum:
        raise ConfigError(
            f"environment variable {name} must be a whole number >= {minimum}, "
            f"got {raw!r}; unset it to use the default {default}"
        )
    return value


def _env_bool(name, default):
    raw = os.environ.get(name, "")
    if not raw.strip():
        return default
    if raw.strip().lower() in ("1", "true", "yes", "on"):
        return True
    if raw.strip().lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(
        f"environment variable {name} must be 1 or 0 (also true/false, yes/no, on/off), "
        f"got {raw!r}; unset it to use the default {int(default)}"
    )


#: Every setting: name -> (reader, environment variable, default[, minimum]).
#: BLOCK_SIZE: rows per block processed by one slot at a time.  N_SLOTS:
#: the most partial-statistics slots (their number depends on the work and
#: the statistics' size, never on the thread count: fastem._estep.n_slots_for).
#: CHUNK_BYTES:
#: bytes of rows per chunk read from out-of-core input (see fastem._data).
#: SERIAL_WORK: E-steps (and k-means passes) with less work than this (see
#: ``fastem._estep.estep_work``, about 0.3 ns a unit: ~150 us on one core)
#: run on the calling thread alone, since waking a pool thread costs 30-60 us
#: on these VMs; 0 always uses every thread.
_SPECS = {
    "CACHE": (_env_bool, "FASTEM_CACHE", True),
    "BLOCK_SIZE": (_env_int, "FASTEM_BLOCK_SIZE", 256, 8),
    "N_SLOTS": (_env_int, "FASTEM_N_SLOTS", 256, 1),
    "CHUNK_BYTES": (_env_int, "FASTEM_CHUNK_BYTES", 32 * 2**20, 1),
    "SERIAL_WORK": (_env_int, "FASTEM_SERIAL_WORK", 1 << 19, 0),
}


def _read():
    """The settings (a bad variable's default in its place) and the list of
    one-line problems."""
    values, problems = {}, []
    for name, (read, *spec) in _SPECS.items():
        try:
            values[name] = read(*spec)
        except ConfigError as exc:
            values[name] = spec[1]
            problems.append(str(exc))
    return values, problems


_VALUES, PROBLEMS = _read()


def check():
    """Raise :class:`ConfigError` (one line naming every bad variable) if a
    ``FASTEM_*`` variable holds a value fastem cannot use."""
    if PROBLEMS:
        raise ConfigError("; ".join(PROBLEMS))


def __getattr__(name):
    """BLOCK_SIZE, N_SLOTS, CHUNK_BYTES and SERIAL_WORK, read at their first
    use rather than at import, so that a bad value raises there and ``import
    fastem`` never fails."""
    if name in _VALUES:
        check()
        globals()[name] = _VALUES[name]
        return _VALUES[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: Cache compiled kernels on disk.  Read at import, since the kernels are
#: compiled with it; a bad value leaves the default, and :func:`check` (or
#: the first use of any other setting) reports it.
CACHE = _VALUES["CACHE"]

#: fastmath flags for the kernels: reassociation lets LLVM vectorise the
#: reductions over rows; no ``nnan``/``ninf`` because log-sum-exp relies on
#: ``-inf`` and the validation on NaN.
FASTMATH = {"nsz", "arcp", "contract", "reassoc"}

JIT_OPTIONS = dict(cache=CACHE, fastmath=FASTMATH, nogil=True, error_model="numpy")
