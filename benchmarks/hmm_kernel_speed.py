"""Speed of the hidden Markov model kernels (forward-backward, Viterbi).

    python benchmarks/hmm_kernel_speed.py [--baseline REV] [--K 8] [--n 1000000]
                                          [--repeats 5] [--threads 2]

K states, n frames of random emission log-densities, as 1,000 sequences of
n / 1,000 frames (``--threads`` threads) and as one sequence of n frames
(necessarily one thread).  Medians of ``--repeats`` calls after a warm-up;
with ``--baseline REV`` the kernels of ``fastem/_kernels/hmm.py`` at git
revision REV are timed in the same run, interleaved with the current ones
(other work on the machine shifts both alike).  Wall and CPU time (of
all the process's threads) are both given: on a shared machine the CPU
time is the steadier.

The rate bound: a plain loop doing 3 K^2 multiply-adds per frame (the
forward-backward's O(T K^2) work: a_{t-1} A, A (b beta), the outer product
of the expected transition counts), with no dependence between frames, on
one thread; and (K = 8) the same work as 24 vector multiply-adds of 8 lanes
a frame into accumulators held in registers: the vector units' peak.
"""

import argparse
import importlib.util
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import numba
import numpy as np
from numba import njit, types
from numba.extending import intrinsic

from fastem import _hmm
from fastem._config import JIT_OPTIONS

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _load(name, src, rev):
    tag = "".join(ch if ch.isalnum() else "_" for ch in rev)
    d = pathlib.Path(tempfile.gettempdir()) / f"fastem_hmm_baseline_{tag}"
    d.mkdir(exist_ok=True)
    path = d / f"{name}.py"
    if not path.exists() or path.read_text() != src:
        path.write_text(src)
    spec = importlib.util.spec_from_file_location(f"{name}_{tag}", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def _baseline_module(rev):
    """``fastem/_hmm.py`` at ``rev``, with its kernels (``fastem/_kernels/hmm.py``
    at ``rev``), imported as separate modules (compiled afresh, not cached).
    ``rev`` may also be the path of a file of kernels (with the current
    ``fastem/_hmm.py``)."""
    def show(path):
        if pathlib.Path(rev).is_file():
            return pathlib.Path(rev if path.endswith("hmm.py") and "_kernels" in path
                                else ROOT / path).read_text()
        return subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT, check=True,
                              capture_output=True, text=True).stdout

    src = show("fastem/_kernels/hmm.py")
    for mod in ("_config", "_parallel"):
        src = src.replace(f"from .._{mod[1:]}", f"from fastem.{mod}")
    for mod in ("sync", "vecmath", "hmm_log"):
        src = src.replace(f"from .{mod}", f"from fastem._kernels.{mod}")
    src = src.replace("@njit(**JIT_OPTIONS)", "@njit(**dict(JIT_OPTIONS, cache=False))")
    kernels = _load("hmm_kernels_baseline", src, rev)
    src = show("fastem/_hmm.py")
    src = src.replace("from ._kernels.hmm import", f"from {kernels.__name__} import")
    src = src.replace("from ._kernels.", "from fastem._kernels.")
    src = src.replace("from ._", "from fastem._")
    return _load("hmm_baseline", src, rev)


@njit(**JIT_OPTIONS)
def _fma_bound(x, M, acc):
    """3 K^2 multiply-adds per frame: acc[m, i, :] += x[t, i] * M[m, i, :]."""
    n, K = x.shape
    for t in range(n):
        for m in range(3):
            for i in range(K):
                xi = x[t, i]
                for j in range(K):
                    acc[m, i, j] += xi * M[m, i, j]


@intrinsic
def _fma_peak_loop(typingctx, x, M):
    """For K = 8: per frame x[t] (8 values) times the 3 x 8 rows of M (3, 8,
    8), 24 vector multiply-adds of 8 lanes into 24 accumulators held in
    registers, frames independent: the vector units' throughput, no
    dependence between frames, no loads but x[t]'s."""
    sig = types.float64(x, M)

    def codegen(context, builder, signature, args):
        from llvmlite import ir
        from numba.core import cgutils

        xty, mty = signature.args
        xa = context.make_array(xty)(context, builder, args[0])
        ma = context.make_array(mty)(context, builder, args[1])
        vt = ir.VectorType(ir.DoubleType(), 8)
        i32 = ir.IntType(32)
        ity = ir.IntType(64)
        n = builder.extract_value(xa.shape, 0)
        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vt, [vt] * 3),
                                             "llvm.fma.v8f64")
        rows = [builder.bitcast(builder.gep(ma.data, [ir.Constant(ity, 8 * r)]),
                                vt.as_pointer()) for r in range(24)]
        entry = builder.block
        loop = builder.append_basic_block("peak.loop")
        body = builder.append_basic_block("peak.body")
        done = builder.append_basic_block("peak.done")
        builder.branch(loop)
        builder.position_at_end(loop)
        t = builder.phi(ity)
        acc = [builder.phi(vt) for _ in range(24)]
        t.add_incoming(ir.Constant(ity, 0), entry)
        for a in acc:
            a.add_incoming(ir.Constant(vt, [0.0] * 8), entry)
        builder.cbranch(builder.icmp_signed("<", t, n), body, done)
        builder.position_at_end(body)
        xp = builder.bitcast(builder.gep(xa.data, [builder.mul(t, ir.Constant(ity, 8))]),
                             vt.as_pointer())
        xv = builder.load(xp, align=8)
        undef = ir.Constant(vt, ir.Undefined)
        for r in range(24):
            xi = builder.shuffle_vector(xv, undef, ir.Constant(ir.VectorType(i32, 8), [r % 8] * 8))
            acc[r].add_incoming(builder.call(fma, [xi, builder.load(rows[r], align=8), acc[r]]),
                                body)
        t.add_incoming(builder.add(t, ir.Constant(ity, 1)), body)
        builder.branch(loop)
        builder.position_at_end(done)
        total = acc[0]
        for a in acc[1:]:
            total = builder.fadd(total, a)
        return builder.extract_element(total, ir.Constant(i32, 0))

    return sig, codegen


@njit(**JIT_OPTIONS)
def _fma_peak(x, M):
    return _fma_peak_loop(x, M)


def _median_time(fn, repeats):
    """Medians of (wall, CPU) seconds of ``fn()``, after a warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        t, cpu = time.perf_counter(), time.process_time()
        fn()
        times.append((time.perf_counter() - t, time.process_time() - cpu))
    return statistics.median(x[0] for x in times), statistics.median(x[1] for x in times)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--baseline", default=None,
                   help="git revision (or file of kernels) to time alongside")
    p.add_argument("--only", default=None, help="forward_backward or viterbi")
    p.add_argument("--K", type=int, default=8)
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    rng = np.random.default_rng(0)
    K, n = args.K, args.n
    logB = rng.normal(size=(n, K)) * 3
    pi = rng.dirichlet(np.ones(K))
    A = rng.dirichlet(np.ones(K), size=K)
    cases = {"1000 seqs": np.full(1000, n // 1000), "1 seq": np.array([n])}
    out = np.empty((n, K))
    impls = {"new": (lambda lb, L: _hmm.forward_backward(lb, L, pi, A),
                     lambda lb, L: _hmm.viterbi(lb, L, pi, A)),
             # gamma into a buffer kept between calls, as a fit can: no page faults
             "new, out=": (lambda lb, L: _hmm.forward_backward(lb, L, pi, A, out=out), None)}
    if args.baseline:
        mod = _baseline_module(args.baseline)
        impls["baseline"] = (lambda lb, L: mod.forward_backward(lb, L, pi, A),
                             lambda lb, L: mod.viterbi(lb, L, pi, A))
    times = {}
    for case, L in cases.items():
        threads = min(numba.get_num_threads(), len(L))
        for kind in ((0, 1) if args.only is None else (("forward_backward", "viterbi").index(args.only),)):
            run = {name: fns[kind] for name, fns in impls.items() if fns[kind] is not None}
            for name, fn in run.items():
                times[(name, case, kind)] = []
                fn(logB, L)  # warm-up (and compile)
            for _ in range(args.repeats):  # interleaved
                for name, fn in run.items():
                    t, cpu = time.perf_counter(), time.process_time()
                    fn(logB, L)
                    times[(name, case, kind)].append((time.perf_counter() - t,
                                                      time.process_time() - cpu))
            for name in run:
                wall = statistics.median(x[0] for x in times[(name, case, kind)]) * 1e3
                cpu = statistics.median(x[1] for x in times[(name, case, kind)]) * 1e3
                what = ("forward_backward", "viterbi")[kind]
                print(f"{what:17s} {case:10s} {threads} thr  {name:10s} {wall:8.1f} ms wall"
                      f"  {cpu:8.1f} ms cpu")
    if args.baseline:  # the same results
        for case, L in cases.items():
            a = impls["new"][0](logB, L)
            b = impls["baseline"][0](logB, L)
            for x, y in zip(a, b):
                err = np.max(np.abs(x - y) / np.maximum(np.abs(y), 1e-300))
                print(f"  {case}: max relative difference {err:.2e}")
    M = rng.dirichlet(np.ones(K), size=(3, K))
    acc = np.zeros((3, K, K))
    t, cpu = _median_time(lambda: _fma_bound(logB, M, acc), args.repeats)
    print(f"rate bound: 3 K^2 = {3 * K * K} multiply-adds per frame, {n} frames, "
          f"1 thread, plain loop: {t * 1e3:.1f} ms wall, {cpu * 1e3:.1f} ms cpu")
    if K == 8:
        M = np.ascontiguousarray(M)
        t, cpu = _median_time(lambda: _fma_peak(logB, M), args.repeats)
        print(f"rate bound, 24 8-lane FMAs a frame in registers: {t * 1e3:.1f} ms wall, "
              f"{cpu * 1e3:.1f} ms cpu")
    return 0


if __name__ == "__main__":
    sys.exit(main())
