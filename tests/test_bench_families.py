"""``fastem bench --family`` and the discrete benchmarks' tooling
(fastem.bench_discrete) work and measure what they say (tiny sizes; no
timing is asserted)."""

import json

import numpy as np
import pytest
from scipy import sparse

import fastem
from fastem import bench_discrete as bd
from fastem.cli import main

RATES = {"fma_loop": 10.0, "dgemm": 20.0, "peak": 20.0, "bandwidth": 10.0}


@pytest.fixture(autouse=True)
def quick(monkeypatch):
    """Short timed fits, and no machine-rate measurement (256 MiB streamed)
    except in the test of the bandwidth kernel itself."""
    monkeypatch.setattr(bd, "TARGET_SECONDS", 0.01)
    monkeypatch.setattr(bd, "PEER_TARGET_SECONDS", 0.01)
    monkeypatch.setattr(bd, "machine_rates", lambda log=print: dict(RATES))


def _cells(line):
    """The cells of a markdown table row (none for other lines)."""
    if not line.startswith("|"):
        return []
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _case(name, **sizes):
    return bd.scaled_case(bd.CASES[name], **sizes)


def test_flop_and_byte_models_follow_the_docstring():
    case = _case("poisson", n=100, d=4, k=3)
    X = np.ones((100, 4), dtype=np.int64)
    assert bd.flops_per_iteration(case, X) == 4 * 3 * 400 + 6 * 100 * 3
    cat = _case("categorical", n=100, d=4, k=3)
    assert bd.flops_per_iteration(cat, X.astype(np.uint8)) == 2 * 100 * 4 * 3 + 6 * 100 * 3
    S = sparse.random(100, 50, density=0.1, format="csr", random_state=0)
    text = _case("text-multinomial", n=100, d=50, k=3)
    assert bd.flops_per_iteration(text, S) == 4 * 3 * S.nnz + 6 * 100 * 3
    assert bd.bytes_per_iteration(X) == X.nbytes
    assert bd.bytes_per_iteration(S) == S.data.nbytes + S.indices.nbytes + S.indptr.nbytes


@pytest.mark.parametrize("name, dtype", [("binary", np.uint8), ("categorical", np.uint8),
                                         ("poisson", np.int64), ("binomial", np.int64)])
def test_dense_data_is_reproducible_and_in_the_family_domain(name, dtype):
    case = _case(name, n=3000, d=6, k=3)
    X, labels = bd.make_data(case, random_state=1)
    assert X.shape == (3000, 6) and X.dtype == dtype and labels.shape == (3000,)
    np.testing.assert_array_equal(X, bd.make_data(case, random_state=1)[0])
    assert X.min() >= 0
    if name == "binary":
        assert X.max() == 1
    if name == "categorical":
        assert X.max() == case.levels - 1
    if name == "binomial":
        assert X.max() <= case.n_trials


@pytest.mark.parametrize("name", ["text-bernoulli", "text-multinomial"])
def test_text_is_csr_at_about_the_density_asked(name):
    case = _case(name, n=2000, d=3000)
    X, _ = bd.make_data(case)
    assert sparse.issparse(X) and X.format == "csr" and X.shape == (2000, 3000)
    assert X.indices.dtype == np.int32 and X.data.dtype == np.float64
    assert 0.6 * case.density < X.nnz / (2000 * 3000) < 1.4 * case.density
    if case.family == "bernoulli":
        assert (X.data == 1).all()
    else:
        assert (X.data >= 1).all() and X.data.max() > 1


@pytest.mark.parametrize("name", ["binary", "poisson", "binomial", "text-multinomial"])
def test_common_start_is_uniform_and_inside_the_domain(name):
    case = _case(name, n=2000, d=8 if not name.startswith("text") else 500, k=3)
    X, _ = bd.make_data(case)
    w, theta = bd.starting_params(case, X)
    np.testing.assert_array_equal(w, np.full(3, 1 / 3))
    assert theta.shape == (3, X.shape[1]) and (theta >= 0.99 * bd.START_FLOOR).all()
    if case.family == "multinomial":
        np.testing.assert_allclose(theta.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    elif case.family != "poisson":
        assert (theta <= 1 - bd.START_FLOOR).all()


def test_bench_case_reports_fastem_rates_against_the_machine():
    case = _case("binary", n=4000, d=6, k=3)
    rows = bd.bench_case(case, peers=(), repeats=1, peak=RATES["peak"],
                         bandwidth=RATES["bandwidth"], log=lambda *a: None)
    assert [r["library"] for r in rows] == ["fastem"]
    r = rows[0]
    assert r["rows"] == 4000 and r["iters"][0] == 1 and r["iters"][1] >= 5
    assert r["bytes"] == 4000 * 6  # uint8, read once per iteration
    assert r["flops"] == 4 * 3 * 4000 * 6 + 6 * 4000 * 3
    assert r["gflops"] == pytest.approx(r["flops"] / r["seconds"] / 1e9)
    assert r["gbps"] == pytest.approx(r["bytes"] / r["seconds"] / 1e9)
    assert r["peak_fraction"] == pytest.approx(r["gflops"] / RATES["peak"])
    assert r["bandwidth_fraction"] == pytest.approx(r["gbps"] / RATES["bandwidth"])


def test_reference_bandwidth_streams_the_array():
    assert bd.reference_bandwidth(mib=8, seconds=0.01) > 0


@pytest.mark.parametrize("family, grid", [("poisson", "2000,4,3"), ("bernoulli", "2000,5,2"),
                                          ("binomial", "1500,3,2"),
                                          ("multinomial", "800,300,3")])
def test_bench_cli_family_writes_markdown(tmp_path, capsys, family, grid):
    rc = main(["bench", "--family", family, "--grid", grid, "--repeats", "1",
               "--peers", "none", "--out", str(tmp_path)])
    assert rc == 0
    out = capsys.readouterr().out
    assert "GFLOP/s" in out and "GB/s read" in out
    text = (tmp_path / f"benchmarks_{family}.md").read_text()
    n = int(grid.split(",")[0])
    rows = [line for line in text.splitlines() if _cells(line)[1:2] == ["fastem"]]
    assert len(rows) == 1 and _cells(rows[0])[2] == f"{n:,}"
    if family == "multinomial":
        assert "CSR" in rows[0]


def test_bench_cli_family_json(capsys):
    rc = main(["bench", "--family", "bernoulli", "--grid", "1000,4,2", "--density", "0.2",
               "--repeats", "1", "--peers", "none", "--json"])
    assert rc == 0
    records = json.loads(capsys.readouterr().out)["em_iteration"]
    assert [r["library"] for r in records] == ["fastem"]
    assert records[0]["note"] == "CSR" and records[0]["seconds"] > 0


def test_categorical_is_skipped_with_a_message_while_fastem_lacks_it(monkeypatch, capsys):
    monkeypatch.delattr(fastem, "CategoricalMixture", raising=False)
    monkeypatch.delitem(fastem._EXPORTS, "CategoricalMixture")  # not resolved on first use
    rc = main(["bench", "--family", "categorical", "--grid", "2000,4,2", "--repeats", "1",
               "--peers", "none"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "fastem.CategoricalMixture does not exist yet" in out and "(no case ran)" in out


def test_categorical_runs_once_fastem_has_it(capsys):
    if getattr(fastem, "CategoricalMixture", None) is None:
        pytest.skip("fastem.CategoricalMixture does not exist yet")
    rc = main(["bench", "--family", "categorical", "--grid", "2000,4,2", "--levels", "3",
               "--repeats", "1", "--peers", "none"])
    assert rc == 0
    out = capsys.readouterr().out
    assert ["categorical-2000x4", "fastem"] in [_cells(line)[:2] for line in out.splitlines()]


@pytest.mark.parametrize("argv, message", [
    (["--levels", "3"], "--levels goes with --family"),
    (["--family", "poisson", "--levels", "3"], "--levels goes with --family categorical"),
    (["--family", "poisson", "--density", "0.1"], "--density goes with"),
    (["--family", "multinomial", "--density", "2"], "--density goes with"),
    (["--family", "poisson", "--peers", "sklearn"], "--peers expects"),
    (["--peers", "stepmix"], "--peers goes with --family"),
])
def test_bench_cli_family_options_are_checked(capsys, argv, message):
    rc = main(["bench", "--grid", "500,2,2", "--repeats", "1", *argv])
    assert rc == 2
    assert message in capsys.readouterr().err


def test_bench_family_needs_a_known_family(capsys):
    assert main(["bench", "--family", "gamma"]) == 2
    assert "invalid choice" in capsys.readouterr().err


# --------------------------------------------------------------------------
# the peers, where installed: the same EM from the same start
# --------------------------------------------------------------------------

PEER_CASES = [("stepmix", "binary", 1e-9), ("stepmix", "categorical", 1e-9),
              ("pomegranate", "binary", 1e-4), ("pomegranate", "poisson", 1e-4),
              ("pomegranate", "categorical", 1e-4), ("polca", "binary", 1e-9),
              ("polca", "categorical", 1e-9)]


@pytest.mark.parametrize("peer, name, tol", PEER_CASES)
def test_peer_runs_the_same_em_as_fastem(peer, name, tol):
    if not bd.peer_available(peer):
        pytest.skip(f"{peer} is not installed (pip install 'fastem[bench]')")
    if bd.fastem_class(bd.CASES[name].family) is None:
        pytest.skip(f"fastem has no {bd.CASES[name].family} mixture yet")
    case = _case(name, n=1500, d=5, k=2, **({"levels": 3} if name == "categorical" else {}))
    rows = bd.bench_case(case, peers=(peer,), repeats=1, log=lambda *a: None)
    assert [r["library"] for r in rows] == ["fastem", peer]
    assert rows[1]["max_diff"] < tol
    assert rows[1]["iters"][1] >= 3
    _check_speedup(rows[1], rows[0])


def _check_speedup(peer, fe):
    """The speed-up is per row; a non-positive median (noise at these tiny
    sizes) has none and says so."""
    if peer["seconds"] > 0 and fe["seconds"] > 0:
        assert peer["speedup"] == pytest.approx(
            (peer["seconds"] / peer["rows"]) / (fe["seconds"] / fe["rows"]))
    else:
        assert np.isnan(peer["speedup"]) or "UNRELIABLE" in fe["note"]


def test_text_peers_densify_fewer_rows_and_compare_per_row():
    if not bd.peer_available("stepmix"):
        pytest.skip("stepmix is not installed")
    case = _case("text-bernoulli", n=1000, d=400, k=2)
    rows = bd.bench_case(case, peers=("stepmix",), peer_rows={"stepmix": 300}, repeats=1,
                         log=lambda *a: None)
    fe, sm = rows
    assert fe["rows"] == 1000 and sm["rows"] == 300 and "densified" in sm["note"]
    _check_speedup(sm, fe)


def test_fit_memory_of_a_csr_fit_is_measured_in_a_child():
    case = _case("text-multinomial", n=3000, d=2000, k=3)
    X, _ = bd.make_data(case)
    m = bd.fit_memory(case, X, bd.starting_params(case, X))
    assert m["csr_bytes"] == X.data.nbytes + X.indices.nbytes + X.indptr.nbytes
    assert m["extra_bytes"] >= 0 and m["dense_bytes"] == 3000 * 2000 * 8
