"""fastem's discrete mixtures against the peers a user would pick, side by
side: StepMix (binary and categorical latent class analysis), pomegranate
1.x on CPU (Bernoulli, Categorical and Poisson mixtures) and polca, poLCA's
port (binary and categorical).

    python benchmarks/discrete_peers.py                 # the issue's sizes
    python benchmarks/discrete_peers.py --quick         # 20,000 rows, text 10,000 rows
    python benchmarks/discrete_peers.py --rows 200000 --cases binary,poisson
    python benchmarks/discrete_peers.py --out results.md --json results.json

Cases (full size): 1,000,000 x 20 binary, K = 8; 1,000,000 x 10 categorical
with 5 levels, K = 6; 1,000,000 x 20 Poisson counts, K = 8; text 100,000 x
20,000 at 0.5% non-zeros, K = 20, Bernoulli (presence) and multinomial
(counts), CSR for fastem.  Each case's data is drawn from a known mixture
with a fixed seed (``fastem.bench_discrete.make_data``).

Method (details in :mod:`fastem.bench_discrete`):

* the same start for every library: uniform weights (StepMix and polca
  always start there) and the component parameters of a 3-iteration fastem
  fit on a 20,000-row subsample; StepMix gets them through its measurement
  model (it has no *_init parameters), pomegranate as initialised
  distributions, polca as ``probs_start``;
* time per EM iteration: fits that cannot stop early, one of ``m1`` and one
  of ``m2`` iterations, ``(t(m2) - t(m1)) / (m2 - m1)``, so that set-up,
  conversions and the final E-step cancel; ``(1, m2)`` with ``m2`` chosen
  from warm-up fits of 1 and 3 iterations so that the difference lasts
  about 0.5 s (fastem: tens of iterations at the issue's sizes) or 2 s (a
  peer: at least 3); a non-positive median is flagged UNRELIABLE;
  the libraries take turns in each repeat; medians of ``--repeats`` (3);
* after the timed fits each peer's parameters are compared with fastem's
  after the same iterations on the same rows ("max diff"): the same EM ran;
* threads: ``--threads`` (2) for fastem (NUMBA_NUM_THREADS), StepMix's BLAS
  (threadpoolctl), torch (``torch.set_num_threads``); polca has no threading;
* text: every peer densifies X, so they run on fewer rows (StepMix 20,000,
  polca and pomegranate 1,000, the issue's sizes; ``--peer-text-rows``) and
  are compared per row (the "fastem speed-up" column is always per row).
  No peer has a multinomial mixture: the multinomial case is compared with
  StepMix's binary model on the same text (presence), which is what the
  issue's target is stated against;
* fastem's GFLOP/s and GB/s read per iteration against the machine's rates
  measured in the same run (multiply-add loop, dgemm, streaming read);
* text: fastem's peak extra resident memory during a 3-iteration fit in a
  fresh process, against the CSR's own bytes (and the dense float64 size the
  peers need).

The categorical case needs ``fastem.CategoricalMixture``; where it does not
exist yet the case is skipped with a message and runs as soon as it does.
Peers: ``pip install 'fastem[bench]'``; a peer not installed is reported
and left out.  polca 0.4.0 (the package ``pypolca``) is a C++ extension that
declares Python >= 3.12 and fetches Eigen and pybind11 with git at build
time; on Python 3.11, or offline, build it from its sdist against a system
Eigen::

    pip download polca==0.4.0 --no-deps --no-binary :all: --ignore-requires-python
    tar xzf polca-0.4.0.tar.gz && cd polca-0.4.0
    # CMakeLists.txt: replace the two FetchContent blocks by
    #   find_package(Eigen3 3.3 REQUIRED NO_MODULE)
    #   find_package(Python COMPONENTS Interpreter Development.Module REQUIRED)
    #   find_package(pybind11 CONFIG REQUIRED)
    # and drop the `tryout` executable; pyproject.toml: requires-python >= 3.10
    apt-get install libeigen3-dev && pip install pybind11 scikit-build-core polars
    pip install --no-build-isolation \\
        --config-settings=cmake.define.pybind11_DIR=$(python -m pybind11 --cmakedir) .

Expected duration at full size on a quiet 2-core machine: about 10 minutes
(allow 15), nearly all of it the peers (0.6-5 s per iteration; per peer and
case a warm-up of 1 + 3 iterations, then 3 repeats of 1 + 3 to 1 + 5
iterations).  Peak memory about 10 GB: StepMix's densified 20,000 x 20,000
text in float64 (3.2 GB) and its temporaries.
"""

import argparse
import os
import sys


def _parse(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="small sizes: 20,000 rows; text 10,000 rows, peers on a tenth")
    p.add_argument("--rows", type=int, default=None,
                   help="rows of the dense cases (default 1,000,000; --quick 20,000)")
    p.add_argument("--text-rows", type=int, default=None,
                   help="rows of the text cases (default 100,000; --quick 10,000)")
    p.add_argument("--text-cols", type=int, default=None, help="text vocabulary (20,000)")
    p.add_argument("--peer-text-rows", default=None,
                   help="rows the peers densify on the text cases, e.g. "
                        "'stepmix=20000,polca=1000,pomegranate=1000' (the default; --quick a "
                        "tenth)")
    p.add_argument("--cases", default="binary,categorical,poisson,text-bernoulli,"
                   "text-multinomial", help="comma-separated; also 'binomial' (fastem only)")
    p.add_argument("--peers", default="stepmix,pomegranate,polca",
                   help="comma-separated peers, or 'none'")
    p.add_argument("--repeats", type=int, default=3, help="interleaved repeats (median)")
    p.add_argument("--threads", type=int, default=2, help="threads for every library")
    p.add_argument("--no-memory", action="store_true", help="skip the CSR memory measurement")
    p.add_argument("--out", default=None, help="write the markdown tables to this file")
    p.add_argument("--json", default=None, help="write the rows as JSON to this file")
    return p.parse_args(argv)


def main(argv=None):
    args = _parse(argv)
    # threads before NumPy, Numba and torch start their pools
    for var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(args.threads)

    import json

    import numba

    from fastem import bench_discrete as bd

    numba.set_num_threads(args.threads)
    names = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in names if c not in bd.CASES]
    if unknown:
        sys.exit(f"unknown case(s) {unknown}; choose from {list(bd.CASES)}")
    peers = [] if args.peers == "none" else [p.strip() for p in args.peers.split(",")]
    bad = [p for p in peers if p not in bd.PEERS]
    if bad:
        sys.exit(f"unknown peer(s) {bad}; choose from {list(bd.PEERS)}")
    rows = args.rows or (20_000 if args.quick else None)
    text_rows = args.text_rows or (10_000 if args.quick else None)
    peer_rows = {k: max(v // 10, 50) if args.quick else v for k, v in bd.PEER_TEXT_ROWS.items()}
    if args.peer_text_rows:
        for item in args.peer_text_rows.split(","):
            key, _, value = item.partition("=")
            if key.strip() not in bd.PEERS or not value.strip().isdigit():
                sys.exit(f"--peer-text-rows expects name=rows,... got {args.peer_text_rows!r}")
            peer_rows[key.strip()] = int(value)
    cases = []
    for name in names:
        case = bd.CASES[name]
        if case.sparse:
            case = bd.scaled_case(case, n=text_rows, d=args.text_cols)
        else:
            case = bd.scaled_case(case, n=rows)
        cases.append(case)
    for p in peers:
        print(f"{p}: {bd.peer_version(p) if bd.peer_available(p) else 'not installed'}")
    text, results, mems = bd.run_cases(cases, peers, peer_rows, repeats=args.repeats,
                                       memory=not args.no_memory)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write("# fastem discrete mixtures against peers\n\n"
                     f"`python benchmarks/discrete_peers.py {' '.join(argv or sys.argv[1:])}`"
                     "\n\n" + text + "\n")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"rows": results, "memory": mems}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
