"""Hidden Markov model kernels: forward-backward (Baum-Welch's E-step) and
Viterbi, over many sequences at once.

Sequences are the unit of parallel work: slot ``s`` of ``S`` covers the
sequences ``[s N / S, (s + 1) N / S)`` of the N given, claimed through
``ctrl`` like every slot kernel (:mod:`fastem._parallel`), and the caller
sums the slots in order, so results do not depend on the thread count.

Forward-backward scales per frame after subtracting the frame's largest
emission log-density ``m_t``: with ``b_tk = exp(logB_tk - m_t)`` in (0, 1],

A state whose forward probability falls below ~1e-308 of the frame's best
becomes 0 in this scaled recursion.  If the chain later needs it alone (a
left-right model forced through a far tail), the sequence finds a frame with
no probability: it is then run again in log space
(:func:`fastem._kernels.hmm_log.forward_backward_log`), exact as hmmlearn's
``implementation='log'``, and counts as impossible only if that pass agrees.

    a'_t = (a_{t-1} A) * b_t,   c_t = sum_k a'_tk,   a_t = a'_t / c_t
    log p(x) = sum_t (log c_t + m_t)
    beta_{T-1} = 1,   beta_t = A (b_{t+1} * beta_{t+1}) / c_{t+1}
    gamma_t = a_t * beta_t,   xi_t(i, j) = a_{t-1,i} A_ij b_tj beta_tj / c_t

so emission log-densities far below zero (-800 and less) lose nothing.  The
expected transition counts are summed on the fly (never a T x K x K array)
as ``A_ij * sum_t a_{t-1,i} nxt_tj`` with ``nxt_t = b_t * beta_t / c_t``:
one K x K outer product a frame, multiplied by A once a sequence.  The
forward variables are kept in the posterior output, which the backward pass
overwrites.  Statistics are float64 and weighted by the sequence's weight.

Speed (K = 8, one million frames: 6-7x the first scalar kernel; K = 10 and
16, 1.8x and 2.3x the scalar path; see ``benchmarks/hmm_kernel_speed.py``):

* ``b_t`` comes from :mod:`.vecmath`'s branch-free exp, on W lanes inside
  the recursions' loops (:func:`_vexp_le0`, the same operations), where the
  processor overlaps it with the recursion's dependency chain; a sequence
  of up to ``_KEEP`` frames keeps them for the backward pass, a longer one
  computes them again there.  The general path (K > 16) calls the scalar
  exp in its loops over the states.
* K <= 8 runs on W = 8 lanes, 9 <= K <= 16 on W = 16 (zeros in the padding
  lanes, -inf in the padded log-densities); the width is the length of the
  kernels' ``lanes`` argument, so each is its own compiled variant.  Numba
  runs no SLP vectoriser, and its loop vectoriser leaves loops of 8 scalar,
  so the recursions are written as loops in LLVM IR on ``<W x double>``
  (:func:`_forward_run`, :func:`_backward_run`,
  :func:`_viterbi_run`) that keep the carried vectors (the forward
  variables, beta, the transition sums, Viterbi's delta) in registers.
  The IR carries no fast-math flags and fixes every sum's order (a_{t-1} A
  in four partial sums, c_t by a fixed tree), so results stay the same for
  any thread count.  In the forward recursion the division by c_{t-1}
  follows the product with A (``tmp = (a'_{t-1} A) / c_{t-1}``), off its
  dependency path.  K > 16 runs the same steps as scalar Numba loops
  (:func:`_sequence_general`).
* A frame whose c_t (with the fast exp) is below ``_TINY`` or not a number
  is redone as the first kernel did, with libm's exp (which keeps
  subnormal factors the fast exp flushes to 0 below -708) and exact
  divisions (``_div``: the kernels' ``arcp`` would turn a division by a
  subnormal c_t into a product with inf); its scale is kept negated.

Arguments (n frames in all, N sequences, K states, S slots):

============ =============== ==================================================
logB         (n, K)          emission log-densities of every frame and state
bounds       (N + 1,) int64  sequence i is frames bounds[i]:bounds[i + 1]
seq_weight   (N,) or (0,)    per-sequence weights ((0,): all ones)
startprob    (K,)            initial state probabilities
transmat     (K, K)          transition probabilities, rows summing to 1
gamma        (n, K)          out: state posteriors
scale        (n,)            scratch: the frames' scales (c_t; 1 / c_t on the
                             general path; -c_t: a frame redone with libm's exp)
logliks      (N,)            out: each sequence's log-likelihood
starts       (S, K)          out: per slot, sum_seq w gamma_0
trans        (S, K, K)       out: per slot, sum_seq w sum_t xi_t
vmc          (25,)           ``vecmath.VM_CONSTS``
lanes        (W,) tuple      W floats: the width of the vector path (8 or 16)
============ =============== ==================================================
"""

import math
from collections import namedtuple

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .._config import JIT_OPTIONS
from .hmm_log import forward_backward_log
from .sync import claim_slot, finish_slot
from .vecmath import _exp_le0, _fmax, _log_pos, vm_consts

#: A frame whose scale c_t comes out below this (or is not a number) is
#: redone with libm's exp, as the first kernel did: the fast exp flushes
#: exp(x) to 0 below x = -708, where libm's still gives subnormals, which
#: matters only when every state the frame can be in is that unlikely.
_TINY = 1e-250

#: Lane counts of the fixed-width paths: K <= 8 states run on 8 lanes, 9 to
#: 16 states on 16, padded (zeros in the padding lanes of every vector and of
#: the transition matrix); a kernel's width W is the length of its argument
#: ``lanes``, a tuple of W floats, so each width is its own compiled variant.
_WIDTHS = (8, 16)
#: Frames whose emission factors b_t are computed at a time (one loop over
#: _CHUNK * W values that LLVM vectorises, with the exp of vecmath).
_CHUNK = 64

#: Offsets in the fixed-width path's scratch ``ws`` (float64, 1-d), for W
#: lanes (:func:`_layout`): the vectors prev, tmp, nxt, beta, start and inv
#: (W each); row i of transmat at ``a + i W``, its column j at ``at + j W``;
#: sum_t a_{t-1,i} nxt_t at ``loc + i W``; from ``x``, _CHUNK rows of
#: logB_t - m_t (-inf in the padding lanes), from ``mx`` their m_t; ``end``,
#: the size of ws.  b_t = exp(logB_t - m_t) go to another array: a whole
#: sequence's, or _CHUNK rows.
_Layout = namedtuple("_Layout", "prev tmp nxt beta start inv a at loc x mx end")


def _layout(W):
    a = 8 * W
    x = a + 3 * W * W
    return _Layout(0, W, 2 * W, 3 * W, 4 * W, 5 * W, a, a + W * W, a + 2 * W * W, x,
                   x + _CHUNK * W, x + _CHUNK * W + _CHUNK)


_lay = njit(**JIT_OPTIONS)(_layout)

#: Sequences of up to this many frames keep their b_t from the forward pass
#: to the backward one (256 KiB a thread on 8 lanes, 512 KiB on 16); longer
#: ones compute them again in the backward loop.
_KEEP = 4096

# --- vector steps of the fixed-width path, in LLVM IR -------------------------
#
# Numba runs no SLP vectoriser and its loop vectoriser wants long loops, so
# loops over 8 states stay scalar; these intrinsics work on <W x double>
# vectors at given offsets of ``ws``.  No fast-math flags: every sum has the
# order written here, whatever the thread count.

_I32 = ir.IntType(32)


def _vt(W):
    return ir.VectorType(ir.DoubleType(), W)


def _width(lanes):
    """W of a kernel's ``lanes`` argument (a tuple of W floats), or None."""
    if isinstance(lanes, types.UniTuple) and lanes.dtype == types.float64 \
            and lanes.count in _WIDTHS:
        return lanes.count
    return None


def _vptr(context, builder, arrty, arr, off, W):
    ary = context.make_array(arrty)(context, builder, arr)
    return builder.bitcast(builder.gep(ary.data, [off]), _vt(W).as_pointer())


def _shuffle(builder, v, lanes):
    undef = ir.Constant(v.type, ir.Undefined)
    return builder.shuffle_vector(v, undef, ir.Constant(ir.VectorType(_I32, len(lanes)), lanes))


def _splat(builder, v, i):
    return _shuffle(builder, v, [i] * v.type.count)


def _splat_scalar(builder, s, W):
    v = builder.insert_element(ir.Constant(_vt(W), ir.Undefined), s, ir.Constant(_I32, 0))
    return _splat(builder, v, 0)


def _tree(builder, v, op):
    """A lanes' reduction by halves, a fixed tree: on 8 lanes ((v0 op v4) op
    (v2 op v6)) op ((v1 op v5) op (v3 op v7))."""
    h = v.type.count // 2
    while h > 1:
        v = op(_shuffle(builder, v, list(range(h))), _shuffle(builder, v, list(range(h, 2 * h))))
        h //= 2
    return op(builder.extract_element(v, ir.Constant(_I32, 0)),
              builder.extract_element(v, ir.Constant(_I32, 1)))


def _hsum(builder, v):
    return _tree(builder, v, builder.fadd)


def _fma(builder, a, b, c):
    """a * b + c, rounded once (llvm.fma on vectors)."""
    vt = a.type
    fnty = ir.FunctionType(vt, [vt, vt, vt])
    fn = cgutils.get_or_insert_function(builder.module, fnty, f"llvm.fma.v{vt.count}f64")
    return builder.call(fn, [a, b, c])


def _vecmat(builder, xv, row_ptr):
    """sum_i x_i row_i over the W rows ``row_ptr(i)``, in four partial sums."""
    acc = [None] * 4
    for i in range(xv.type.count):
        r = builder.load(row_ptr(i), align=8)
        xi = _splat(builder, xv, i)
        acc[i % 4] = builder.fmul(xi, r) if acc[i % 4] is None else _fma(builder, xi, r, acc[i % 4])
    return builder.fadd(builder.fadd(acc[0], acc[1]), builder.fadd(acc[2], acc[3]))


def _ws_type_ok(ws):
    return isinstance(ws, types.Array) and ws.dtype == types.float64 and ws.ndim == 1 \
        and ws.layout == "C"


def _rows_type_ok(x):
    return isinstance(x, types.Array) and x.dtype == types.float64 and x.ndim == 2 \
        and x.layout == "C"


def _row_access(context, builder, arrty, arr, t, W):
    """(pointer to x[t, 0] as <W x double>*, mask of the lanes k < K)."""
    ary = context.make_array(arrty)(context, builder, arr)
    p = cgutils.get_item_pointer(context, builder, arrty, ary, [t, ir.Constant(t.type, 0)])
    i64v = ir.VectorType(ir.IntType(64), W)
    k = builder.insert_element(ir.Constant(i64v, ir.Undefined), builder.extract_value(ary.shape, 1),
                               ir.Constant(_I32, 0))
    mask = builder.icmp_signed("<", ir.Constant(i64v, list(range(W))), _splat(builder, k, 0))
    return builder.bitcast(p, _vt(W).as_pointer()), mask


def _masked_load(builder, ptr, mask, fill):
    W = mask.type.count
    vt = _vt(W)
    fnty = ir.FunctionType(vt, [vt.as_pointer(), _I32, mask.type, vt])
    fn = cgutils.get_or_insert_function(builder.module, fnty, f"llvm.masked.load.v{W}f64.p0")
    return builder.call(fn, [ptr, ir.Constant(_I32, 8), mask, ir.Constant(vt, [fill] * W)])


def _masked_store(builder, v, ptr, mask):
    vt = v.type
    fnty = ir.FunctionType(ir.VoidType(), [vt, vt.as_pointer(), _I32, mask.type])
    name = f"llvm.masked.store.v{vt.count}{'f64' if vt.element == ir.DoubleType() else 'i64'}.p0"
    fn = cgutils.get_or_insert_function(builder.module, fnty, name)
    builder.call(fn, [v, ptr, ir.Constant(_I32, 8), mask])


def _maxnum(builder, a, b):
    fnty = ir.FunctionType(a.type, [a.type, a.type])
    name = "llvm.maxnum.f64" if isinstance(a.type, ir.DoubleType) else \
        f"llvm.maxnum.v{a.type.count}f64"
    return builder.call(cgutils.get_or_insert_function(builder.module, fnty, name), [a, b])


def _centre(context, builder, lty, logB, t, W):
    """(m_t, logB[t] - m_t with -inf in the padding lanes, the lanes' mask),
    m_t = max_k logB[t, k] (NaN ignored, as ``vecmath._fmax``)."""
    ptr, mask = _row_access(context, builder, lty, logB, t, W)
    v = _masked_load(builder, ptr, mask, -math.inf)
    mx = _tree(builder, v, lambda a, b: _maxnum(builder, a, b))
    return mx, builder.fsub(v, _splat_scalar(builder, mx, W)), mask


def _exp_constants(context, builder, vty, vmc, W):
    """``vecmath.VM_CONSTS`` (the array ``vmc``) as splatted vectors, read
    once before a loop: {name: vector}, 'poly' the list of q's 10."""
    ary = context.make_array(vty)(context, builder, vmc)

    def get(i):
        item = builder.gep(ary.data, [ir.Constant(ir.IntType(64), i)])
        return _splat_scalar(builder, builder.load(item), W)

    k = {name: get(i) for name, i in (("log2e", 0), ("magic", 1), ("lo", 4))}
    k["neg_hi"] = builder.fsub(ir.Constant(_vt(W), [0.0] * W), get(2))
    k["neg_lo"] = builder.fsub(ir.Constant(_vt(W), [0.0] * W), get(3))
    k["poly"] = [get(5 + i) for i in range(10)]
    return k


def _vexp_le0(builder, x, k):
    """``vecmath._exp_le0`` on <W x double>, operation for operation (the
    products and sums it leaves to ``contract`` written as FMAs)."""
    W = x.type.count
    vt = x.type
    i64v = ir.VectorType(ir.IntType(64), W)
    t = _fma(builder, x, k["log2e"], k["magic"])
    n = builder.fsub(t, k["magic"])
    r = _fma(builder, n, k["neg_hi"], x)
    r = _fma(builder, n, k["neg_lo"], r)
    x2 = builder.fmul(r, r)
    x4 = builder.fmul(x2, x2)
    x8 = builder.fmul(x4, x4)
    p = k["poly"]
    a = [_fma(builder, p[2 * j + 1], r, p[2 * j]) for j in range(5)]
    q = _fma(builder, _fma(builder, a[3], x2, a[2]), x4, _fma(builder, a[1], x2, a[0]))
    q = _fma(builder, a[4], x8, q)
    e = builder.fadd(ir.Constant(vt, [1.0] * W), _fma(builder, x2, q, r))
    ni = builder.sub(builder.bitcast(t, i64v), builder.bitcast(k["magic"], i64v))
    scaled = builder.bitcast(builder.add(builder.bitcast(e, i64v),
                                         builder.shl(ni, ir.Constant(i64v, [52] * W))), vt)
    return builder.select(builder.fcmp_ordered("<", x, k["lo"]), ir.Constant(vt, [0.0] * W),
                          scaled)


@intrinsic
def _centre_row(typingctx, logB, t, ws, off, lanes):
    """ws[off:off + W] = logB[t] - m_t (-inf in the padding lanes), where
    m_t = max_k logB[t, k] (NaN ignored, as ``vecmath._fmax``); returns m_t."""
    W = _width(lanes)
    if not (_rows_type_ok(logB) and _ws_type_ok(ws) and W):
        return None
    sig = types.float64(logB, types.intp, ws, types.intp, lanes)

    def codegen(context, builder, signature, args):
        logB, t, ws, off, _ = args
        mx, x, _ = _centre(context, builder, signature.args[0], logB, t, W)
        builder.store(x, _vptr(context, builder, signature.args[2], ws, off, W), align=8)
        return mx

    return sig, codegen


@intrinsic
def _first_step(typingctx, ws, eb, e, gamma, t, lanes):
    """A sequence's first frame: ``tmp = startprob``, ``f = tmp * eb[e]`` and
    ``a = f * (1 / sum f)`` into ws[L.tmp], ws[L.prev] and gamma[t]; returns
    sum f."""
    W = _width(lanes)
    if not (_ws_type_ok(ws) and _ws_type_ok(eb) and _rows_type_ok(gamma) and W):
        return None
    sig = types.float64(ws, eb, types.intp, gamma, types.intp, lanes)
    L = _layout(W)

    def codegen(context, builder, signature, args):
        arr, eb, e, gamma, t, _ = args

        def ptr(off):
            return _vptr(context, builder, signature.args[0], arr, ir.Constant(e.type, off), W)

        tmp = builder.load(ptr(L.start), align=8)
        builder.store(tmp, ptr(L.tmp), align=8)
        ev = builder.load(_vptr(context, builder, signature.args[1], eb, e, W), align=8)
        f = builder.fmul(tmp, ev)
        builder.store(f, ptr(L.prev), align=8)
        tot = _hsum(builder, f)
        a = builder.fmul(f, _splat_scalar(builder, builder.fdiv(
            ir.Constant(ir.DoubleType(), 1.0), tot), W))
        _masked_store(builder, a, *_row_access(context, builder, signature.args[3], gamma, t, W))
        return tot

    return sig, codegen


def _backward_frame(context, builder, gty, gamma, t, beta, loc, nxt, at_row):
    """The IR of one backward frame once ``nxt = b_t * beta / c_t`` is known:
    gamma[t] *= beta and, with a = gamma[t - 1], returns (loc_i + a_i nxt
    for each i, A nxt from the columns ``at_row(j)``)."""
    W = beta.type.count
    gptr, mask = _row_access(context, builder, gty, gamma, t, W)
    _masked_store(builder, builder.fmul(_masked_load(builder, gptr, mask, 0.0), beta), gptr, mask)
    av = _masked_load(builder, _row_access(context, builder, gty, gamma,
                                           builder.sub(t, ir.Constant(t.type, 1)), W)[0],
                      mask, 0.0)
    loc = [_fma(builder, _splat(builder, av, i), nxt, loc[i]) for i in range(W)]
    return loc, _vecmat(builder, nxt, at_row)


@intrinsic
def _backward_step(typingctx, ws, gamma, t, lanes):
    """One backward frame with ``nxt`` given in ws[L.nxt] (a frame that
    :func:`_slow_frame` scaled): :func:`_backward_frame` on beta and the sums
    ``loc`` in ws[L.beta], ws[L.loc:]."""
    W = _width(lanes)
    if not (_ws_type_ok(ws) and _rows_type_ok(gamma) and W):
        return None
    sig = types.void(ws, gamma, types.intp, lanes)
    L = _layout(W)

    def codegen(context, builder, signature, args):
        arr, gamma, t, _ = args

        def ptr(off):
            return _vptr(context, builder, signature.args[0], arr, ir.Constant(t.type, off), W)

        loc = [builder.load(ptr(L.loc + i * W), align=8) for i in range(W)]
        loc, beta = _backward_frame(context, builder, signature.args[1], gamma, t,
                                    builder.load(ptr(L.beta), align=8), loc,
                                    builder.load(ptr(L.nxt), align=8),
                                    lambda j: ptr(L.at + j * W))
        for i in range(W):
            builder.store(loc[i], ptr(L.loc + i * W), align=8)
        builder.store(beta, ptr(L.beta), align=8)
        return context.get_dummy_value()

    return sig, codegen


def _scalar_ptr(context, builder, arrty, arr, idx):
    ary = context.make_array(arrty)(context, builder, arr)
    return cgutils.get_item_pointer(context, builder, arrty, ary, [idx])


@intrinsic
def _forward_run(typingctx, ws, inv, eb, e, n, gamma, scale, t, logB, vmc, u0, lanes):
    """Frames t, t + 1, ..., t + n - 1 of the forward pass (not a sequence's
    first), as a loop in LLVM IR that keeps f_{t-1} and 1 / c_{t-1} in
    registers: per frame ``tmp = (f_{t-1} A) * inv``, ``f_t = tmp *
    eb[e + W r]``, c_t = sum f_t into scale[t], a_t = f_t / c_t into gamma[t].
    Stops at the first frame with c_t < _TINY (or NaN), tmp of that frame in
    ws[L.tmp]; returns the number of frames done, f and 1 / c of the last
    one in ws[L.prev] and ws[L.inv] (``inv``, ws[L.prev]: those of frame t - 1).
    Each frame's b_t (from logB[t] and the exp constants ``vmc``, as
    :func:`_emission_rows`) goes to eb[e + W r] and m_t to ws[L.mx + t - u0]:
    work off the recursion's dependency path, which the processor overlaps
    with it."""
    W = _width(lanes)
    if not (_ws_type_ok(ws) and _ws_type_ok(eb) and _rows_type_ok(gamma)
            and _ws_type_ok(scale) and _rows_type_ok(logB) and _ws_type_ok(vmc) and W):
        return None
    sig = types.intp(ws, types.float64, eb, types.intp, types.intp, gamma, scale, types.intp,
                     logB, vmc, types.intp, lanes)
    L = _layout(W)

    def codegen(context, builder, signature, args):
        wty, _, ety, _, _, gty, sty, _, lty, vty, _, _ = signature.args
        arr, inv0, ebv, e, n, gamma, scale, t0, logB, vmc, u0, _ = args
        kexp = _exp_constants(context, builder, vty, vmc, W)
        ity = e.type
        dbl = ir.DoubleType()

        def ptr(off):
            return _vptr(context, builder, wty, arr, ir.Constant(ity, off), W)

        g0 = builder.load(ptr(L.prev), align=8)
        entry = builder.block
        loop = builder.append_basic_block("fwd.loop")
        body = builder.append_basic_block("fwd.body")
        cont = builder.append_basic_block("fwd.cont")
        fail = builder.append_basic_block("fwd.fail")
        done = builder.append_basic_block("fwd.done")
        builder.branch(loop)
        builder.position_at_end(loop)
        i = builder.phi(ity)
        g = builder.phi(_vt(W))
        inv = builder.phi(dbl)
        i.add_incoming(ir.Constant(ity, 0), entry)
        g.add_incoming(g0, entry)
        inv.add_incoming(inv0, entry)
        builder.cbranch(builder.icmp_signed("<", i, n), body, done)
        builder.position_at_end(body)
        t = builder.add(t0, i)
        mx, x, _ = _centre(context, builder, lty, logB, t, W)
        b = _vexp_le0(builder, x, kexp)
        eo = builder.add(e, builder.mul(i, ir.Constant(ity, W)))
        builder.store(b, _vptr(context, builder, ety, ebv, eo, W), align=8)
        builder.store(mx, _scalar_ptr(context, builder, wty, arr,
                                      builder.add(builder.sub(t, u0), ir.Constant(ity, L.mx))))
        tmp = builder.fmul(_vecmat(builder, g, lambda k: ptr(L.a + k * W)),
                           _splat_scalar(builder, inv, W))
        f = builder.fmul(tmp, b)
        tot = _hsum(builder, f)
        builder.cbranch(builder.fcmp_ordered(">=", tot, ir.Constant(dbl, _TINY)), cont, fail)
        builder.position_at_end(cont)
        invn = builder.fdiv(ir.Constant(dbl, 1.0), tot)
        _masked_store(builder, builder.fmul(f, _splat_scalar(builder, invn, W)),
                      *_row_access(context, builder, gty, gamma, t, W))
        builder.store(tot, _scalar_ptr(context, builder, sty, scale, t))
        i.add_incoming(builder.add(i, ir.Constant(ity, 1)), cont)
        g.add_incoming(f, cont)
        inv.add_incoming(invn, cont)
        builder.branch(loop)
        builder.position_at_end(fail)
        builder.store(tmp, ptr(L.tmp), align=8)
        builder.branch(done)
        builder.position_at_end(done)
        builder.store(g, ptr(L.prev), align=8)
        builder.store(inv, builder.bitcast(ptr(L.inv), dbl.as_pointer()))
        return i

    return sig, codegen


def _backward_run_intrinsic(compute):
    def impl(typingctx, ws, eb, e, u0, n, gamma, scale, logB, vmc, lanes):
        """Frames u0 + n - 1, ..., u0 of the backward pass (after a sequence's
        first frame), as a loop in LLVM IR that keeps beta and the sums
        ``loc`` in registers (from and back to ws[L.beta], ws[L.loc:]): per frame,
        gamma[t] *= beta, ``nxt = (eb[e + W r] / scale[t]) * beta``, ``loc_i +=
        gamma[t - 1, i] nxt``, ``beta = A nxt``.  Stops at a frame whose scale
        is not positive (:func:`_slow_frame` scaled it); returns its r = t - u0,
        or -1.  ``_backward_run_computing``: b_t computed from logB[t] (and the
        exp constants ``vmc``), not read from ``eb``."""
        W = _width(lanes)
        if not (_ws_type_ok(ws) and _ws_type_ok(eb) and _rows_type_ok(gamma)
                and _ws_type_ok(scale) and _rows_type_ok(logB) and _ws_type_ok(vmc) and W):
            return None
        sig = types.intp(ws, eb, types.intp, types.intp, types.intp, gamma, scale, logB, vmc,
                         lanes)
        L = _layout(W)

        def codegen(context, builder, signature, args):
            wty, ety, _, _, _, gty, sty, lty, vty, _ = signature.args
            arr, ebv, e, u0, n, gamma, scale, logB, vmc, _ = args
            kexp = _exp_constants(context, builder, vty, vmc, W) if compute else None
            ity = e.type
            dbl = ir.DoubleType()

            def ptr(off):
                return _vptr(context, builder, wty, arr, ir.Constant(ity, off), W)

            beta0 = builder.load(ptr(L.beta), align=8)
            loc0 = [builder.load(ptr(L.loc + k * W), align=8) for k in range(W)]
            last = builder.sub(n, ir.Constant(ity, 1))
            entry = builder.block
            loop = builder.append_basic_block("bwd.loop")
            check = builder.append_basic_block("bwd.check")
            body = builder.append_basic_block("bwd.body")
            done = builder.append_basic_block("bwd.done")
            builder.branch(loop)
            builder.position_at_end(loop)
            r = builder.phi(ity)
            beta = builder.phi(_vt(W))
            loc = [builder.phi(_vt(W)) for _ in range(W)]
            r.add_incoming(last, entry)
            beta.add_incoming(beta0, entry)
            for k in range(W):
                loc[k].add_incoming(loc0[k], entry)
            builder.cbranch(builder.icmp_signed(">=", r, ir.Constant(ity, 0)), check, done)
            builder.position_at_end(check)
            t = builder.add(u0, r)
            v = builder.load(_scalar_ptr(context, builder, sty, scale, t))
            builder.cbranch(builder.fcmp_ordered(">", v, ir.Constant(dbl, 0.0)), body, done)
            builder.position_at_end(body)
            if compute:
                ev = _vexp_le0(builder, _centre(context, builder, lty, logB, t, W)[1], kexp)
            else:
                eo = builder.add(e, builder.mul(r, ir.Constant(ity, W)))
                ev = builder.load(_vptr(context, builder, ety, ebv, eo, W), align=8)
            inv = builder.fdiv(ir.Constant(dbl, 1.0), v)
            nv = builder.fmul(builder.fmul(ev, _splat_scalar(builder, inv, W)), beta)
            new_loc, new_beta = _backward_frame(context, builder, gty, gamma, t, beta, loc, nv,
                                                lambda j: ptr(L.at + j * W))
            for k in range(W):
                loc[k].add_incoming(new_loc[k], body)
            beta.add_incoming(new_beta, body)
            r.add_incoming(builder.sub(r, ir.Constant(ity, 1)), body)
            builder.branch(loop)
            builder.position_at_end(done)
            builder.store(beta, ptr(L.beta), align=8)
            for k in range(W):
                builder.store(loc[k], ptr(L.loc + k * W), align=8)
            return r

        return sig, codegen
    return intrinsic(impl)


_backward_run = _backward_run_intrinsic(False)
_backward_run_computing = _backward_run_intrinsic(True)


@njit(**JIT_OPTIONS)
def _frame_max(logB, t, K):
    mx = logB[t, 0]
    for k in range(1, K):
        mx = _fmax(mx, logB[t, k])
    return mx


@njit(**JIT_OPTIONS)
def _slow_max(logB, t):
    mx = -math.inf
    for k in range(logB.shape[1]):
        mx = max(mx, logB[t, k])
    return mx


@njit(**dict(JIT_OPTIONS, fastmath={"contract"}))
def _div(a, b):
    """a / b, rounded: ``arcp`` in the kernels' flags would let LLVM compute
    a * (1 / b), which is inf for a subnormal b."""
    return a / b


@njit(**JIT_OPTIONS)
def _slow_frame(logB, t, tmp, f):
    """The first kernel's frame: ``f = tmp * exp(logB_t - m_t)`` with libm's
    exp (subnormals kept; 0 where every log-density is -inf); returns c_t,
    their sum."""
    mx = _slow_max(logB, t)
    tot = 0.0
    for k in range(logB.shape[1]):
        v = tmp[k] * math.exp(logB[t, k] - mx) if mx > -math.inf else 0.0
        f[k] = v
        tot += v
    return tot


@njit(**JIT_OPTIONS)
def _slow_next(logB, t, tot, beta, nxt):
    """The backward pass's ``nxt = b_t * beta_t / c_t`` of a frame that
    :func:`_slow_frame` scaled."""
    mx = _slow_max(logB, t)
    for k in range(logB.shape[1]):
        nxt[k] = _div(math.exp(logB[t, k] - mx) * beta[k], tot)


@njit(**JIT_OPTIONS)
def _emission_rows(logB, u0, u1, ws, eb, e, c, lanes):
    """b_t = exp(logB_t - m_t) of frames u0:u1 (at most _CHUNK) into the rows
    of eb[e:], m_t into ws[L.mx:]: one long loop of exps, vectorised (``eb``
    another array than ``ws``, so that LLVM needs one check of overlap)."""
    W = len(lanes)
    L = _lay(W)
    for t in range(u0, u1):
        ws[L.mx + t - u0] = _centre_row(logB, t, ws, L.x + (t - u0) * W, lanes)
    for i in range((u1 - u0) * W):
        eb[e + i] = _exp_le0(ws[L.x + i], c)


@njit(**JIT_OPTIONS)
def _forward_fallback(logB, t, ws, gamma, scale, lanes):
    """Frame t redone by :func:`_slow_frame` from tmp in ws[L.tmp]; a_t into
    ws[L.prev] (the next frame starts from it with inv = 1) and gamma[t];
    returns log c_t + m_t, or -inf: no state can emit the frame from where
    it is."""
    K = logB.shape[1]
    W = len(lanes)
    L = _lay(W)
    tot = _slow_frame(logB, t, ws[L.tmp:L.tmp + W], ws[L.prev:L.prev + W])
    if not tot > 0.0:
        return -math.inf
    for k in range(W):
        ws[L.prev + k] = _div(ws[L.prev + k], tot) if k < K else 0.0
        if k < K:
            gamma[t, k] = ws[L.prev + k]
    scale[t] = -tot
    return math.log(tot) + _slow_max(logB, t)


@njit(**JIT_OPTIONS)
def _sequence_small(logB, t0, t1, gamma, scale, ws, eb, c, vmc, lanes):
    """Forward-backward over frames t0:t1 for K <= W states, on W lanes
    with the vector loops above.  Adds sum_t a_{t-1,i} nxt_tj to
    ws[L.loc + i * W + j]; returns the log-likelihood (-inf, gamma NaN: the
    sequence is impossible).  ``scale[t]`` keeps c_t (-c_t: a frame that
    :func:`_slow_frame` scaled)."""
    K = logB.shape[1]
    W = len(lanes)
    L = _lay(W)
    keep = (t1 - t0) * W <= eb.shape[0]  # b_t of every frame kept
    ll = 0.0
    inv = 1.0
    for u0 in range(t0, t1, _CHUNK):
        u1 = min(u0 + _CHUNK, t1)
        e = (u0 - t0) * W if keep else 0
        t = u0
        if t == t0:
            _emission_rows(logB, t, t + 1, ws, eb, e, c, lanes)
            tot = _first_step(ws, eb, e, gamma, t, lanes)
            scale[t] = tot
            inv = 1.0 / tot
            if not tot >= _TINY:
                tot = _forward_fallback(logB, t, ws, gamma, scale, lanes)
                ll += tot
                inv = 1.0
            t += 1
        while t < u1 and ll > -math.inf:
            t += _forward_run(ws, inv, eb, e + (t - u0) * W, u1 - t, gamma, scale, t, logB,
                              vmc, u0, lanes)
            inv = ws[L.inv]
            if t < u1:
                ll += _forward_fallback(logB, t, ws, gamma, scale, lanes)
                inv = 1.0
                t += 1
        if not ll > -math.inf:  # no state can emit a frame from where it is
            for t in range(t0, t1):
                for k in range(K):
                    gamma[t, k] = math.nan
            return -math.inf
        # log c_t + m_t of the chunk's frames (a vectorised loop)
        for t in range(u0, u1):
            v = scale[t]
            ll += _log_pos(v, c) + ws[L.mx + t - u0] if v > 0.0 else 0.0
    # backward: beta from the end; gamma_t = a_t * beta_t; xi summed
    for k in range(W):
        ws[L.beta + k] = 1.0
    for u1 in range(t1, t0 + 1, -_CHUNK):
        u0 = max(u1 - _CHUNK, t0 + 1)
        e = (u0 - t0) * W
        r = u1 - u0
        while r > 0:
            if keep:
                r = _backward_run(ws, eb, e, u0, r, gamma, scale, logB, vmc, lanes)
            else:  # b_t computed again in the loop, off the path of beta
                r = _backward_run_computing(ws, eb, 0, u0, r, gamma, scale, logB, vmc, lanes)
            if r >= 0:  # a frame _slow_frame scaled
                t = u0 + r
                _slow_next(logB, t, -scale[t], ws[L.beta:L.beta + W], ws[L.nxt:L.nxt + W])
                for k in range(K, W):
                    ws[L.nxt + k] = 0.0
                _backward_step(ws, gamma, t, lanes)
            # r frames left: u0 .. u0 + r - 1
    for k in range(K):
        gamma[t0, k] *= ws[L.beta + k]
    return ll


@njit(**JIT_OPTIONS)
def _sequence_general(logB, t0, t1, startprob, transmat, AT, gamma, scale, tmp, f, beta,
                      loc, c):
    """:func:`_sequence_small` for any K (``AT`` transmat transposed; ``tmp``,
    ``f``, ``beta`` (K,) and ``loc`` (K, K) scratch, ``loc`` summed into)."""
    K = logB.shape[1]
    ll = 0.0
    for t in range(t0, t1):
        mx = _frame_max(logB, t, K)
        if t == t0:
            for k in range(K):
                tmp[k] = startprob[k]
        else:
            for j in range(K):
                tmp[j] = gamma[t - 1, 0] * transmat[0, j]
            for i in range(1, K):
                a = gamma[t - 1, i]
                for j in range(K):
                    tmp[j] += a * transmat[i, j]
        tot = 0.0
        for k in range(K):
            v = tmp[k] * _exp_le0(logB[t, k] - mx, c)
            f[k] = v
            tot += v
        if tot >= _TINY:
            inv = 1.0 / tot
            scale[t] = inv
            ll += _log_pos(tot, c) + mx
        else:
            tot = _slow_frame(logB, t, tmp, f)
            if not tot > 0.0:
                for t in range(t0, t1):
                    for k in range(K):
                        gamma[t, k] = math.nan
                return -math.inf
            inv = 1.0 / tot
            scale[t] = -tot
            ll += math.log(tot) + _slow_max(logB, t)
        for k in range(K):
            gamma[t, k] = _div(f[k], tot) if inv == math.inf else f[k] * inv
    for k in range(K):
        beta[k] = 1.0
    for t in range(t1 - 1, t0, -1):
        inv = scale[t]
        if inv > 0.0:
            mx = _frame_max(logB, t, K)
            for k in range(K):
                f[k] = (_exp_le0(logB[t, k] - mx, c) * inv) * beta[k]
        else:
            _slow_next(logB, t, -inv, beta, f)
        for k in range(K):
            gamma[t, k] *= beta[k]
        for i in range(K):
            a = gamma[t - 1, i]
            for j in range(K):
                loc[i, j] += a * f[j]
        for i in range(K):
            beta[i] = AT[0, i] * f[0]
        for j in range(1, K):
            x = f[j]
            for i in range(K):
                beta[i] += AT[j, i] * x
    for k in range(K):
        gamma[t0, k] *= beta[k]
    return ll


@njit(**JIT_OPTIONS)
def _forward_backward(logB, bounds, seq_weight, startprob, transmat, gamma, scale, logliks,
                      starts, trans, vmc, lanes, ctrl):
    K = logB.shape[1]
    N = bounds.shape[0] - 1
    n_slots = starts.shape[0]
    c = vm_consts(vmc)
    W = len(lanes)
    L = _lay(W)
    small = K <= W
    # the fixed-size path's scratch: padding lanes 0 (-inf in the frame's
    # row), room for the b_t of a whole sequence up to _KEEP frames
    longest = 0
    for q in range(N):
        longest = max(longest, bounds[q + 1] - bounds[q])
    ws = np.zeros(L.end if small else 0)
    eb = np.empty(max(_CHUNK, min(longest, _KEEP)) * W if small else 0)
    # the general path's
    AT = np.empty((K, K))
    tmp = np.empty(K)
    f = np.empty(K)
    beta = np.empty(K)
    loc = np.empty((K, K))
    for i in range(K):
        for j in range(K):
            AT[j, i] = transmat[i, j]
    # the log-space fallback's (hmm_log): a sequence the scaled pass loses
    log_start = np.empty(K)
    log_trans = np.empty((K, K))
    for i in range(K):
        log_start[i] = math.log(startprob[i]) if startprob[i] > 0.0 else -math.inf
        for j in range(K):
            log_trans[i, j] = math.log(transmat[i, j]) if transmat[i, j] > 0.0 else -math.inf
    xi = np.empty((K, K))
    if small:
        for r in range(_CHUNK):
            for k in range(K, W):
                ws[L.x + r * W + k] = -math.inf
        for i in range(K):
            ws[L.start + i] = startprob[i]
            for j in range(K):
                ws[L.a + i * W + j] = transmat[i, j]
                ws[L.at + j * W + i] = transmat[i, j]
    while True:
        s = claim_slot(ctrl)
        if s >= n_slots:
            break
        starts[s, :] = 0.0
        trans[s, :, :] = 0.0
        for q in range((s * N) // n_slots, ((s + 1) * N) // n_slots):
            t0 = bounds[q]
            t1 = bounds[q + 1]
            w = seq_weight[q] if seq_weight.shape[0] > 0 else 1.0
            if small:
                ws[L.loc:L.loc + W * W] = 0.0
                ll = _sequence_small(logB, t0, t1, gamma, scale, ws, eb, c, vmc, lanes)
                sums = ws[L.loc:L.loc + W * W].reshape((W, W))
            else:
                loc[:, :] = 0.0
                ll = _sequence_general(logB, t0, t1, startprob, transmat, AT, gamma, scale, tmp,
                                       f, beta, loc, c)
                sums = loc
            if ll == -math.inf:  # a state lost to underflow, or truly impossible
                ll = forward_backward_log(logB, t0, t1, log_start, log_trans, gamma, xi)
                logliks[q] = ll
                if ll == -math.inf:
                    continue
                for k in range(K):
                    starts[s, k] += w * gamma[t0, k]
                for i in range(K):
                    for j in range(K):
                        trans[s, i, j] += w * xi[i, j]
                continue
            logliks[q] = ll
            for k in range(K):
                starts[s, k] += w * gamma[t0, k]
            # xi summed: A_ij sum_t a_{t-1,i} nxt_tj, weighted
            for i in range(K):
                for j in range(K):
                    trans[s, i, j] += (w * transmat[i, j]) * sums[i, j]
        finish_slot(ctrl)


@intrinsic
def _viterbi_run(typingctx, ws, logB, back, t0, t1, lanes):
    """Frames t0 + 1 .. t1 - 1 of Viterbi for K <= W, as a loop in LLVM IR:
    delta (ws[0:W], -inf in the padding lanes) in registers; per frame and
    state j, the first i of the largest delta_i + log A_ij (ws[W + i * W
    + j]; a NaN or -inf never wins, as in the scalar loop: arg 0 then) by a
    tree of strict comparisons, whose left operands have the smaller i;
    back[t, j] = that i, delta_j = its value + logB[t, j]."""
    W = _width(lanes)
    if not (_ws_type_ok(ws) and _rows_type_ok(logB) and isinstance(back, types.Array)
            and back.dtype == types.int64 and back.ndim == 2 and back.layout == "C" and W):
        return None
    sig = types.void(ws, logB, back, types.intp, types.intp, lanes)

    def codegen(context, builder, signature, args):
        wty, lty, bty, _, _, _ = signature.args
        arr, logB, back, t0, t1, _ = args
        ity = t0.type
        i64v = ir.VectorType(ir.IntType(64), W)
        ninf = ir.Constant(_vt(W), [-math.inf] * W)

        def ptr(off):
            return _vptr(context, builder, wty, arr, ir.Constant(ity, off), W)

        d0 = builder.load(ptr(0), align=8)
        start = builder.add(t0, ir.Constant(ity, 1))
        entry = builder.block
        loop = builder.append_basic_block("vit.loop")
        body = builder.append_basic_block("vit.body")
        done = builder.append_basic_block("vit.done")
        builder.branch(loop)
        builder.position_at_end(loop)
        t = builder.phi(ity)
        delta = builder.phi(_vt(W))
        t.add_incoming(start, entry)
        delta.add_incoming(d0, entry)
        builder.cbranch(builder.icmp_signed("<", t, t1), body, done)
        builder.position_at_end(body)
        level = []
        for i in range(W):
            v = builder.fadd(_splat(builder, delta, i), builder.load(ptr(W + i * W), align=8))
            v = builder.select(builder.fcmp_ordered(">", v, ninf), v, ninf)
            level.append((v, ir.Constant(i64v, [i] * W)))
        while len(level) > 1:
            nxt = []
            for (va, ia), (vb, ib) in zip(level[::2], level[1::2]):
                gt = builder.fcmp_ordered(">", vb, va)
                nxt.append((builder.select(gt, vb, va), builder.select(gt, ib, ia)))
            level = nxt
        best, arg = level[0]
        lptr, mask = _row_access(context, builder, lty, logB, t, W)
        new = builder.fadd(best, _masked_load(builder, lptr, mask, -math.inf))
        bary = context.make_array(bty)(context, builder, back)
        bptr = cgutils.get_item_pointer(context, builder, bty, bary, [t, ir.Constant(ity, 0)])
        _masked_store(builder, arg, builder.bitcast(bptr, i64v.as_pointer()), mask)
        t.add_incoming(builder.add(t, ir.Constant(ity, 1)), body)
        delta.add_incoming(new, body)
        builder.branch(loop)
        builder.position_at_end(done)
        builder.store(delta, ptr(0), align=8)
        return context.get_dummy_value()

    return sig, codegen


@njit(**JIT_OPTIONS)
def _viterbi(logB, bounds, log_startprob, log_transmat, states, logprobs, back, lanes, ctrl):
    """The most probable state path of each sequence (``states`` (n,)
    int64) and its log-probability (``logprobs`` (N,)), in log space;
    ``back`` (n, K) int64 scratch for the back-pointers.  One slot a
    sequence group, as in :func:`_forward_backward` (``logprobs`` sized N,
    the number of slots ``ctrl``'s caller chose is N here); ``lanes``
    as in :func:`_forward_backward`."""
    K = logB.shape[1]
    W = len(lanes)
    N = bounds.shape[0] - 1
    delta = np.empty(K)
    new = np.empty(K)
    small = K <= W
    # K <= W: delta and log A, padded with -inf, for _viterbi_run
    ws = np.full(W + W * W if small else 0, -math.inf)
    if small:
        for i in range(K):
            for j in range(K):
                ws[W + i * W + j] = log_transmat[i, j]
    while True:
        q = claim_slot(ctrl)
        if q >= N:
            break
        t0 = bounds[q]
        t1 = bounds[q + 1]
        for k in range(K):
            delta[k] = log_startprob[k] + logB[t0, k]
        if small:
            for k in range(K):
                ws[k] = delta[k]
            _viterbi_run(ws, logB, back, t0, t1, lanes)
            for k in range(K):
                delta[k] = ws[k]
        for t in range(t0 + 1, t1 if not small else t0 + 1):
            for j in range(K):
                best = -math.inf
                arg = 0
                for i in range(K):
                    v = delta[i] + log_transmat[i, j]
                    if v > best:
                        best = v
                        arg = i
                new[j] = best + logB[t, j]
                back[t, j] = arg
            for k in range(K):
                delta[k] = new[k]
        best = -math.inf
        arg = 0
        for k in range(K):
            if delta[k] > best:
                best = delta[k]
                arg = k
        logprobs[q] = best
        states[t1 - 1] = arg
        for t in range(t1 - 1, t0, -1):
            arg = back[t, arg]
            states[t - 1] = arg
        finish_slot(ctrl)
