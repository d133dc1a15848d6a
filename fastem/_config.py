"""Environment-driven settings, read in one place.

``FASTEM_CACHE``       ``1`` (default) caches compiled kernels on disk
                       (Numba ``cache=True``); ``0`` turns caching off.
``FASTEM_BLOCK_SIZE``  rows per block in the fused kernels (default 256).
``FASTEM_N_SLOTS``     number of partial-statistics slots (default 16).  The
                       slot count, never the thread count, fixes the order of
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
"""

import os


def _env_int(name, default, minimum):
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(
            f"Environment variable {name} must be an integer >= {minimum}, "
            f"got {raw!r}. Unset it to use the default {default}."
        ) from None
    if value < minimum:
        raise ValueError(
            f"Environment variable {name} must be an integer >= {minimum}, "
            f"got {value}. Unset it to use the default {default}."
        )
    return value


def _env_bool(name, default):
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(
        f"Environment variable {name} must be 0 or 1, got {raw!r}."
    )


#: Cache compiled kernels on disk.
CACHE = _env_bool("FASTEM_CACHE", True)
#: Rows per block processed by one slot at a time.
BLOCK_SIZE = _env_int("FASTEM_BLOCK_SIZE", 256, 8)
#: Number of partial-statistics slots (independent of the thread count).
N_SLOTS = _env_int("FASTEM_N_SLOTS", 16, 1)
#: Bytes of rows per chunk read from out-of-core input (see fastem._data).
CHUNK_BYTES = _env_int("FASTEM_CHUNK_BYTES", 32 * 2**20, 1)

#: E-steps (and k-means passes) with less work than this (see
#: ``fastem._estep.estep_work``, about 0.3 ns a unit: ~150 us on one core)
#: run on the calling thread alone: waking a pool thread costs 30-60 us on
#: these VMs.  0 always uses every thread.
SERIAL_WORK = _env_int("FASTEM_SERIAL_WORK", 1 << 19, 0)

#: fastmath flags for the kernels: reassociation lets LLVM vectorise the
#: reductions over rows; no ``nnan``/``ninf`` because log-sum-exp relies on
#: ``-inf`` and the validation on NaN.
FASTMATH = {"nsz", "arcp", "contract", "reassoc"}

JIT_OPTIONS = dict(cache=CACHE, fastmath=FASTMATH, nogil=True, error_model="numpy")
