"""Distributed EM on a LocalCluster (2 worker processes of one thread) against
the in-memory fit of the same data: seconds per iteration and bytes moved
(n = 10,000,000, d = 16, k = 16 with FASTEM_BENCH=full)."""

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
                            "repeats": 1 if MODE == "smoke" else 3, "log": print},
        rounds=1, iterations=1)
    benchmark.extra_info.update(out)
    # communication does not grow with the rows: a statistics vector per chunk
    assert out["stats_vector_bytes"] < 40_000
    assert out["worker_bytes_per_iteration"] < 0.01 * out["data_bytes"]
    assert out["dask_seconds"] > 0 and out["memory_seconds"] > 0
