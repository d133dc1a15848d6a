"""Distributed EM on a LocalCluster (2 worker processes of one thread) against
the in-memory fit of the same data: seconds per iteration and bytes moved
(n = 10,000,000, d = 16, k = 16 with FASTEM_BENCH=full).

Dask's work stealing is off here, so that the bytes counted are fastem's
own traffic; with it on, the scheduler may also copy whole chunks to a less
loaded worker (docs/dask.md measures both)."""

import numpy as np
import pytest

pytest.importorskip("distributed")

from conftest import MODE  # noqa: E402

from fastem.bench import bench_dask  # noqa: E402

SIZE = {"full": (10_000_000, 250_000), "quick": (2_000_000, 250_000),
        "smoke": (100_000, 25_000)}[MODE]


def test_distributed_iteration_overhead(benchmark):
    n, chunk_rows = SIZE
    benchmark.group = f"distributed EM per iteration, n={n:,} d=16 k=16 full"
    out = benchmark.pedantic(
        bench_dask, kwargs={"n": n, "d": 16, "k": 16, "chunk_rows": chunk_rows,
                            "repeats": 1 if MODE == "smoke" else 3, "log": print,
                            "work_stealing": False},
        rounds=1, iterations=1)
    benchmark.extra_info.update(out)
    # no row moves: at most one statistics vector per chunk (and the
    # reduction's partial sums) travels between processes
    assert out["stats_vector_bytes"] < 40_000
    assert out["worker_bytes_per_iteration"] <= \
        1.5 * (out["chunks"] + 1) * out["stats_vector_bytes"] + 8192
    # timings are reported, not asserted: at smoke sizes the difference of two
    # fits' times is within the noise of a busy machine (and may be negative)
    assert np.isfinite(out["dask_seconds"]) and np.isfinite(out["memory_seconds"])
