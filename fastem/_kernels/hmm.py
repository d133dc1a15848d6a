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

Speed (K = 8, one million frames: 6-7x the first scalar kernel, see
``benchmarks/hmm_kernel_speed.py``):

* ``b_t`` comes from :mod:`.vecmath`'s branch-free exp, on 8 lanes inside
  the recursions' loops (:func:`_vexp_le0`, the same operations), where the
  processor overlaps it with the recursion's dependency chain; a sequence
  of up to ``_KEEP`` frames keeps them for the backward pass, a longer one
  computes them again there.  The general path (K > 8) calls the scalar
  exp in its loops over the states.
* K <= 8 runs on 8 lanes (zeros in the padding lanes, -inf in the padded
  log-densities).  Numba runs no SLP vectoriser, and its loop vectoriser
  leaves loops of 8 scalar, so the recursions are written as loops in LLVM
  IR on ``<8 x double>`` (:func:`_forward_run`, :func:`_backward_run`,
  :func:`_viterbi_run`) that keep the carried vectors (the forward
  variables, beta, the transition sums, Viterbi's delta) in registers.
  The IR carries no fast-math flags and fixes every sum's order (a_{t-1} A
  in four partial sums, c_t by a fixed tree), so results stay the same for
  any thread count.  In the forward recursion the division by c_{t-1}
  follows the product with A (``tmp = (a'_{t-1} A) / c_{t-1}``), off its
  dependency path.  K > 8 runs the same steps as scalar Numba loops
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
============ =============== ==================================================
"""

import math

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

#: Lanes of the fixed-width path: K <= _W states are padded to _W lanes
#: (zeros in the padding lanes of every vector and of the transition matrix).
_W = 8
#: Frames whose emission factors b_t are computed at a time (one loop over
#: _CHUNK * _W values that LLVM vectorises, with the exp of vecmath).
_CHUNK = 64

# offsets in the fixed-width path's scratch ``ws`` (float64, 1-d)
_PREV, _TMP, _NXT, _BETA, _START, _INV = (r * _W for r in range(6))
_A = 8 * _W  # _A + i * _W: row i of transmat
_AT = _A + _W * _W  # _AT + j * _W: column j of transmat
_LOC = _AT + _W * _W  # _LOC + i * _W: sum_t a_{t-1,i} nxt_t
_X = _LOC + _W * _W  # _CHUNK rows of logB_t - m_t (-inf in the padding lanes)
_MX = _X + _CHUNK * _W  # their m_t
_E = _MX + _CHUNK  # the size of ws; b_t = exp(logB_t - m_t) go to another array:
# a whole sequence's, or _CHUNK rows
#: Sequences of up to this many frames keep their b_t from the forward pass
#: to the backward one (at K = 8, 256 KiB a thread); longer ones compute
#: them again in the backward loop.
_KEEP = 4096

# --- vector steps of the fixed-width path, in LLVM IR -------------------------
#
# Numba runs no SLP vectoriser and its loop vectoriser wants long loops, so
# loops over 8 states stay scalar; these intrinsics work on <8 x double>
# vectors at given offsets of ``ws``.  No fast-math flags: every sum has the
# order written here, whatever the thread count.

_VT = ir.VectorType(ir.DoubleType(), _W)
_I32 = ir.IntType(32)


def _vptr(context, builder, arrty, arr, off):
    ary = context.make_array(arrty)(context, builder, arr)
    return builder.bitcast(builder.gep(ary.data, [off]), _VT.as_pointer())


def _shuffle(builder, v, lanes):
    undef = ir.Constant(v.type, ir.Undefined)
    return builder.shuffle_vector(v, undef, ir.Constant(ir.VectorType(_I32, len(lanes)), lanes))


def _splat(builder, v, i):
    return _shuffle(builder, v, [i] * _W)


def _splat_scalar(builder, s):
    v = builder.insert_element(ir.Constant(_VT, ir.Undefined), s, ir.Constant(_I32, 0))
    return _splat(builder, v, 0)


def _hsum(builder, v):
    """((v0 + v4) + (v2 + v6)) + ((v1 + v5) + (v3 + v7)), a fixed tree."""
    s4 = builder.fadd(_shuffle(builder, v, [0, 1, 2, 3]), _shuffle(builder, v, [4, 5, 6, 7]))
    s2 = builder.fadd(_shuffle(builder, s4, [0, 1]), _shuffle(builder, s4, [2, 3]))
    return builder.fadd(builder.extract_element(s2, ir.Constant(_I32, 0)),
                        builder.extract_element(s2, ir.Constant(_I32, 1)))


def _fma(builder, a, b, c):
    """a * b + c, rounded once (llvm.fma on vectors)."""
    fnty = ir.FunctionType(_VT, [_VT, _VT, _VT])
    fn = cgutils.get_or_insert_function(builder.module, fnty, f"llvm.fma.v{_W}f64")
    return builder.call(fn, [a, b, c])


def _vecmat(builder, xv, row_ptr):
    """sum_i x_i row_i over the _W rows ``row_ptr(i)``, in four partial sums."""
    acc = [None] * 4
    for i in range(_W):
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


def _row_access(context, builder, arrty, arr, t):
    """(pointer to x[t, 0] as <_W x double>*, mask of the lanes k < K)."""
    ary = context.make_array(arrty)(context, builder, arr)
    p = cgutils.get_item_pointer(context, builder, arrty, ary, [t, ir.Constant(t.type, 0)])
    i64v = ir.VectorType(ir.IntType(64), _W)
    k = builder.insert_element(ir.Constant(i64v, ir.Undefined), builder.extract_value(ary.shape, 1),
                               ir.Constant(_I32, 0))
    mask = builder.icmp_signed("<", ir.Constant(i64v, list(range(_W))), _splat(builder, k, 0))
    return builder.bitcast(p, _VT.as_pointer()), mask


def _masked_load(builder, ptr, mask, fill):
    i1v = ir.VectorType(ir.IntType(1), _W)
    fnty = ir.FunctionType(_VT, [_VT.as_pointer(), _I32, i1v, _VT])
    fn = cgutils.get_or_insert_function(builder.module, fnty, f"llvm.masked.load.v{_W}f64.p0")
    return builder.call(fn, [ptr, ir.Constant(_I32, 8), mask, ir.Constant(_VT, [fill] * _W)])


def _masked_store(builder, v, ptr, mask):
    i1v = ir.VectorType(ir.IntType(1), _W)
    fnty = ir.FunctionType(ir.VoidType(), [_VT, _VT.as_pointer(), _I32, i1v])
    fn = cgutils.get_or_insert_function(builder.module, fnty, f"llvm.masked.store.v{_W}f64.p0")
    builder.call(fn, [v, ptr, ir.Constant(_I32, 8), mask])


def _maxnum(builder, a, b):
    fnty = ir.FunctionType(a.type, [a.type, a.type])
    name = "llvm.maxnum.f64" if isinstance(a.type, ir.DoubleType) else \
        f"llvm.maxnum.v{a.type.count}f64"
    return builder.call(cgutils.get_or_insert_function(builder.module, fnty, name), [a, b])


def _centre(context, builder, lty, logB, t):
    """(m_t, logB[t] - m_t with -inf in the padding lanes, the lanes' mask),
    m_t = max_k logB[t, k] (NaN ignored, as ``vecmath._fmax``)."""
    ptr, mask = _row_access(context, builder, lty, logB, t)
    v = _masked_load(builder, ptr, mask, -math.inf)
    m4 = _maxnum(builder, _shuffle(builder, v, [0, 1, 2, 3]), _shuffle(builder, v, [4, 5, 6, 7]))
    m2 = _maxnum(builder, _shuffle(builder, m4, [0, 1]), _shuffle(builder, m4, [2, 3]))
    mx = _maxnum(builder, builder.extract_element(m2, ir.Constant(_I32, 0)),
                 builder.extract_element(m2, ir.Constant(_I32, 1)))
    return mx, builder.fsub(v, _splat_scalar(builder, mx)), mask


def _exp_constants(context, builder, vty, vmc):
    """``vecmath.VM_CONSTS`` (the array ``vmc``) as splatted vectors, read
    once before a loop: {name: vector}, 'poly' the list of q's 10."""
    ary = context.make_array(vty)(context, builder, vmc)

    def get(i):
        return _splat_scalar(builder, builder.load(builder.gep(ary.data,
                                                               [ir.Constant(ir.IntType(64), i)])))

    k = {name: get(i) for name, i in (("log2e", 0), ("magic", 1), ("lo", 4))}
    k["neg_hi"] = builder.fsub(ir.Constant(_VT, [0.0] * _W), get(2))
    k["neg_lo"] = builder.fsub(ir.Constant(_VT, [0.0] * _W), get(3))
    k["poly"] = [get(5 + i) for i in range(10)]
    return k


def _vexp_le0(builder, x, k):
    """``vecmath._exp_le0`` on <_W x double>, operation for operation (the
    products and sums it leaves to ``contract`` written as FMAs)."""
    i64v = ir.VectorType(ir.IntType(64), _W)
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
    e = builder.fadd(ir.Constant(_VT, [1.0] * _W), _fma(builder, x2, q, r))
    ni = builder.sub(builder.bitcast(t, i64v), builder.bitcast(k["magic"], i64v))
    scaled = builder.bitcast(builder.add(builder.bitcast(e, i64v),
                                         builder.shl(ni, ir.Constant(i64v, [52] * _W))), _VT)
    return builder.select(builder.fcmp_ordered("<", x, k["lo"]),
                          ir.Constant(_VT, [0.0] * _W), scaled)


@intrinsic
def _centre_row(typingctx, logB, t, ws, off):
    """ws[off:off + _W] = logB[t] - m_t (-inf in the padding lanes), where
    m_t = max_k logB[t, k] (NaN ignored, as ``vecmath._fmax``); returns m_t."""
    if not (_rows_type_ok(logB) and _ws_type_ok(ws)):
        return None
    sig = types.float64(logB, types.intp, ws, types.intp)

    def codegen(context, builder, signature, args):
        logB, t, ws, off = args
        ptr, mask = _row_access(context, builder, signature.args[0], logB, t)
        v = _masked_load(builder, ptr, mask, -math.inf)
        m4 = _maxnum(builder, _shuffle(builder, v, [0, 1, 2, 3]), _shuffle(builder, v, [4, 5, 6, 7]))
        m2 = _maxnum(builder, _shuffle(builder, m4, [0, 1]), _shuffle(builder, m4, [2, 3]))
        mx = _maxnum(builder, builder.extract_element(m2, ir.Constant(_I32, 0)),
                     builder.extract_element(m2, ir.Constant(_I32, 1)))
        x = builder.fsub(v, _splat_scalar(builder, mx))
        builder.store(x, _vptr(context, builder, signature.args[2], ws, off), align=8)
        return mx

    return sig, codegen


def _forward_step_intrinsic(first):
    def impl(typingctx, ws, inv, eb, e, gamma, t):
        if not (_ws_type_ok(ws) and _ws_type_ok(eb) and _rows_type_ok(gamma)):
            return None
        sig = types.float64(ws, types.float64, eb, types.intp, gamma, types.intp)

        def codegen(context, builder, signature, args):
            arrty = signature.args[0]
            arr, inv, eb, e, gamma, t = args

            def ptr(off):
                return _vptr(context, builder, arrty, arr, ir.Constant(e.type, off))

            if first:
                tmp = builder.load(ptr(_START), align=8)
            else:  # (f_{t-1} A) / c_{t-1}: the division is off the product's path
                g = builder.load(ptr(_PREV), align=8)
                tmp = builder.fmul(_vecmat(builder, g, lambda i: ptr(_A + i * _W)),
                                   _splat_scalar(builder, inv))
            builder.store(tmp, ptr(_TMP), align=8)
            ev = builder.load(_vptr(context, builder, signature.args[2], eb, e), align=8)
            f = builder.fmul(tmp, ev)
            builder.store(f, ptr(_PREV), align=8)
            tot = _hsum(builder, f)
            a = builder.fmul(f, _splat_scalar(builder, builder.fdiv(
                ir.Constant(ir.DoubleType(), 1.0), tot)))
            _masked_store(builder, a, *_row_access(context, builder, signature.args[4], gamma, t))
            return tot

        return sig, codegen
    return intrinsic(impl)


#: One forward frame: ``tmp = (f_{t-1} A) * inv`` (``_first_step``: tmp =
#: startprob), ``f_t = tmp * eb[e]`` and ``a_t = f_t * (1 / sum f_t)`` into
#: ws[_TMP], ws[_PREV] (f_{t-1} on entry, with ``inv = 1 / sum f_{t-1}``)
#: and gamma[t]; returns sum f_t.
_forward_step = _forward_step_intrinsic(False)
_first_step = _forward_step_intrinsic(True)


def _backward_step_intrinsic(given):
    def impl(typingctx, ws, eb, e, inv, gamma, t):
        if not (_ws_type_ok(ws) and _ws_type_ok(eb) and _rows_type_ok(gamma)):
            return None
        sig = types.void(ws, eb, types.intp, types.float64, gamma, types.intp)

        def codegen(context, builder, signature, args):
            arrty = signature.args[0]
            arr, eb, e, inv, gamma, t = args

            def ptr(off):
                return _vptr(context, builder, arrty, arr, ir.Constant(e.type, off))

            beta = builder.load(ptr(_BETA), align=8)
            gty = signature.args[4]
            gptr, mask = _row_access(context, builder, gty, gamma, t)
            _masked_store(builder, builder.fmul(_masked_load(builder, gptr, mask, 0.0), beta),
                          gptr, mask)
            av = _masked_load(builder, _row_access(context, builder, gty, gamma,
                                                   builder.sub(t, ir.Constant(t.type, 1)))[0],
                              mask, 0.0)
            if given:
                nv = builder.load(ptr(_NXT), align=8)
            else:
                ev = builder.load(_vptr(context, builder, signature.args[1], eb, e), align=8)
                nv = builder.fmul(builder.fmul(ev, _splat_scalar(builder, inv)), beta)
            for i in range(_W):
                p = ptr(_LOC + i * _W)
                builder.store(_fma(builder, _splat(builder, av, i), nv, builder.load(p, align=8)),
                              p, align=8)
            builder.store(_vecmat(builder, nv, lambda j: ptr(_AT + j * _W)), ptr(_BETA), align=8)
            return context.get_dummy_value()

        return sig, codegen
    return intrinsic(impl)


#: gamma[t] *= beta; ``nxt = (ws[e] * inv) * beta`` (``_backward_step_given``:
#: nxt in ws[_NXT]); ``loc_i += gamma[t - 1, i] nxt`` and ``beta = A nxt``
#: (from the columns of A at _AT), in ws.
_backward_step = _backward_step_intrinsic(False)
_backward_step_given = _backward_step_intrinsic(True)


def _scalar_ptr(context, builder, arrty, arr, idx):
    ary = context.make_array(arrty)(context, builder, arr)
    return cgutils.get_item_pointer(context, builder, arrty, ary, [idx])


@intrinsic
def _forward_run(typingctx, ws, inv, eb, e, n, gamma, scale, t, logB, vmc, u0):
    """Frames t, t + 1, ..., t + n - 1 of the forward pass (not a sequence's
    first), as a loop in LLVM IR that keeps f_{t-1} and 1 / c_{t-1} in
    registers: per frame ``tmp = (f_{t-1} A) * inv``, ``f_t = tmp *
    eb[e + 8 r]``, c_t = sum f_t into scale[t], a_t = f_t / c_t into gamma[t].
    Stops at the first frame with c_t < _TINY (or NaN), tmp of that frame in
    ws[_TMP]; returns the number of frames done, f and 1 / c of the last
    one in ws[_PREV] and ws[_INV] (``inv``, ws[_PREV]: those of frame t - 1).
    Each frame's b_t (from logB[t] and the exp constants ``vmc``, as
    :func:`_emission_rows`) goes to eb[e + 8 r] and m_t to ws[_MX + t - u0]:
    work off the recursion's dependency path, which the processor overlaps
    with it."""
    if not (_ws_type_ok(ws) and _ws_type_ok(eb) and _rows_type_ok(gamma)
            and _ws_type_ok(scale) and _rows_type_ok(logB) and _ws_type_ok(vmc)):
        return None
    sig = types.intp(ws, types.float64, eb, types.intp, types.intp, gamma, scale, types.intp,
                     logB, vmc, types.intp)

    def codegen(context, builder, signature, args):
        wty, _, ety, _, _, gty, sty, _, lty, vty, _ = signature.args
        arr, inv0, ebv, e, n, gamma, scale, t0, logB, vmc, u0 = args
        kexp = _exp_constants(context, builder, vty, vmc)
        ity = e.type
        dbl = ir.DoubleType()

        def ptr(off):
            return _vptr(context, builder, wty, arr, ir.Constant(ity, off))

        g0 = builder.load(ptr(_PREV), align=8)
        entry = builder.block
        loop = builder.append_basic_block("fwd.loop")
        body = builder.append_basic_block("fwd.body")
        cont = builder.append_basic_block("fwd.cont")
        fail = builder.append_basic_block("fwd.fail")
        done = builder.append_basic_block("fwd.done")
        builder.branch(loop)
        builder.position_at_end(loop)
        i = builder.phi(ity)
        g = builder.phi(_VT)
        inv = builder.phi(dbl)
        i.add_incoming(ir.Constant(ity, 0), entry)
        g.add_incoming(g0, entry)
        inv.add_incoming(inv0, entry)
        builder.cbranch(builder.icmp_signed("<", i, n), body, done)
        builder.position_at_end(body)
        t = builder.add(t0, i)
        mx, x, _ = _centre(context, builder, lty, logB, t)
        b = _vexp_le0(builder, x, kexp)
        eo = builder.add(e, builder.mul(i, ir.Constant(ity, _W)))
        builder.store(b, _vptr(context, builder, ety, ebv, eo), align=8)
        builder.store(mx, _scalar_ptr(context, builder, wty, arr,
                                      builder.add(builder.sub(t, u0), ir.Constant(ity, _MX))))
        tmp = builder.fmul(_vecmat(builder, g, lambda k: ptr(_A + k * _W)),
                           _splat_scalar(builder, inv))
        f = builder.fmul(tmp, b)
        tot = _hsum(builder, f)
        builder.cbranch(builder.fcmp_ordered(">=", tot, ir.Constant(dbl, _TINY)), cont, fail)
        builder.position_at_end(cont)
        invn = builder.fdiv(ir.Constant(dbl, 1.0), tot)
        _masked_store(builder, builder.fmul(f, _splat_scalar(builder, invn)),
                      *_row_access(context, builder, gty, gamma, t))
        builder.store(tot, _scalar_ptr(context, builder, sty, scale, t))
        i.add_incoming(builder.add(i, ir.Constant(ity, 1)), cont)
        g.add_incoming(f, cont)
        inv.add_incoming(invn, cont)
        builder.branch(loop)
        builder.position_at_end(fail)
        builder.store(tmp, ptr(_TMP), align=8)
        builder.branch(done)
        builder.position_at_end(done)
        builder.store(g, ptr(_PREV), align=8)
        builder.store(inv, builder.bitcast(ptr(_INV), dbl.as_pointer()))
        return i

    return sig, codegen


def _backward_run_intrinsic(compute):
    def impl(typingctx, ws, eb, e, u0, n, gamma, scale, logB, vmc):
        """Frames u0 + n - 1, ..., u0 of the backward pass (after a sequence's
        first frame), as a loop in LLVM IR that keeps beta and the sums
        ``loc`` in registers (from and back to ws[_BETA], ws[_LOC:]): per frame,
        gamma[t] *= beta, ``nxt = (eb[e + 8 r] / scale[t]) * beta``, ``loc_i +=
        gamma[t - 1, i] nxt``, ``beta = A nxt``.  Stops at a frame whose scale
        is not positive (:func:`_slow_frame` scaled it); returns its r = t - u0,
        or -1.  ``_backward_run_computing``: b_t computed from logB[t] (and the
        exp constants ``vmc``), not read from ``eb``."""
        if not (_ws_type_ok(ws) and _ws_type_ok(eb) and _rows_type_ok(gamma)
                and _ws_type_ok(scale) and _rows_type_ok(logB) and _ws_type_ok(vmc)):
            return None
        sig = types.intp(ws, eb, types.intp, types.intp, types.intp, gamma, scale, logB, vmc)

        def codegen(context, builder, signature, args):
            wty, ety, _, _, _, gty, sty, lty, vty = signature.args
            arr, ebv, e, u0, n, gamma, scale, logB, vmc = args
            kexp = _exp_constants(context, builder, vty, vmc) if compute else None
            ity = e.type
            dbl = ir.DoubleType()

            def ptr(off):
                return _vptr(context, builder, wty, arr, ir.Constant(ity, off))

            beta0 = builder.load(ptr(_BETA), align=8)
            loc0 = [builder.load(ptr(_LOC + k * _W), align=8) for k in range(_W)]
            last = builder.sub(n, ir.Constant(ity, 1))
            entry = builder.block
            loop = builder.append_basic_block("bwd.loop")
            check = builder.append_basic_block("bwd.check")
            body = builder.append_basic_block("bwd.body")
            done = builder.append_basic_block("bwd.done")
            builder.branch(loop)
            builder.position_at_end(loop)
            r = builder.phi(ity)
            beta = builder.phi(_VT)
            loc = [builder.phi(_VT) for _ in range(_W)]
            r.add_incoming(last, entry)
            beta.add_incoming(beta0, entry)
            for k in range(_W):
                loc[k].add_incoming(loc0[k], entry)
            builder.cbranch(builder.icmp_signed(">=", r, ir.Constant(ity, 0)), check, done)
            builder.position_at_end(check)
            t = builder.add(u0, r)
            v = builder.load(_scalar_ptr(context, builder, sty, scale, t))
            builder.cbranch(builder.fcmp_ordered(">", v, ir.Constant(dbl, 0.0)), body, done)
            builder.position_at_end(body)
            gptr, mask = _row_access(context, builder, gty, gamma, t)
            _masked_store(builder, builder.fmul(_masked_load(builder, gptr, mask, 0.0), beta),
                          gptr, mask)
            av = _masked_load(builder, _row_access(context, builder, gty, gamma,
                                                   builder.sub(t, ir.Constant(ity, 1)))[0],
                              mask, 0.0)
            if compute:
                ev = _vexp_le0(builder, _centre(context, builder, lty, logB, t)[1], kexp)
            else:
                eo = builder.add(e, builder.mul(r, ir.Constant(ity, _W)))
                ev = builder.load(_vptr(context, builder, ety, ebv, eo), align=8)
            inv = builder.fdiv(ir.Constant(dbl, 1.0), v)
            nv = builder.fmul(builder.fmul(ev, _splat_scalar(builder, inv)), beta)
            for k in range(_W):
                loc[k].add_incoming(_fma(builder, _splat(builder, av, k), nv, loc[k]), body)
            beta.add_incoming(_vecmat(builder, nv, lambda j: ptr(_AT + j * _W)), body)
            r.add_incoming(builder.sub(r, ir.Constant(ity, 1)), body)
            builder.branch(loop)
            builder.position_at_end(done)
            builder.store(beta, ptr(_BETA), align=8)
            for k in range(_W):
                builder.store(loc[k], ptr(_LOC + k * _W), align=8)
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
def _emission_rows(logB, u0, u1, ws, eb, e, c):
    """b_t = exp(logB_t - m_t) of frames u0:u1 (at most _CHUNK) into the rows
    of eb[e:], m_t into ws[_MX:]: one long loop of exps, vectorised (``eb``
    another array than ``ws``, so that LLVM needs one check of overlap)."""
    for t in range(u0, u1):
        ws[_MX + t - u0] = _centre_row(logB, t, ws, _X + (t - u0) * _W)
    for i in range((u1 - u0) * _W):
        eb[e + i] = _exp_le0(ws[_X + i], c)


@njit(**JIT_OPTIONS)
def _forward_fallback(logB, t, ws, gamma, scale):
    """Frame t redone by :func:`_slow_frame` from tmp in ws[_TMP]; a_t into
    ws[_PREV] (the next frame starts from it with inv = 1) and gamma[t];
    returns log c_t + m_t, or -inf: no state can emit the frame from where
    it is."""
    K = logB.shape[1]
    tot = _slow_frame(logB, t, ws[_TMP:_TMP + _W], ws[_PREV:_PREV + _W])
    if not tot > 0.0:
        return -math.inf
    for k in range(_W):
        ws[_PREV + k] = _div(ws[_PREV + k], tot) if k < K else 0.0
        if k < K:
            gamma[t, k] = ws[_PREV + k]
    scale[t] = -tot
    return math.log(tot) + _slow_max(logB, t)


@njit(**JIT_OPTIONS)
def _sequence_small(logB, t0, t1, gamma, scale, ws, eb, c, vmc):
    """Forward-backward over frames t0:t1 for K <= _W states, on _W lanes
    with the vector loops above.  Adds sum_t a_{t-1,i} nxt_tj to
    ws[_LOC + i * _W + j]; returns the log-likelihood (-inf, gamma NaN: the
    sequence is impossible).  ``scale[t]`` keeps c_t (-c_t: a frame that
    :func:`_slow_frame` scaled)."""
    K = logB.shape[1]
    keep = (t1 - t0) * _W <= eb.shape[0]  # b_t of every frame kept
    ll = 0.0
    inv = 1.0
    for u0 in range(t0, t1, _CHUNK):
        u1 = min(u0 + _CHUNK, t1)
        e = (u0 - t0) * _W if keep else 0
        t = u0
        if t == t0:
            _emission_rows(logB, t, t + 1, ws, eb, e, c)
            tot = _first_step(ws, inv, eb, e, gamma, t)
            scale[t] = tot
            inv = 1.0 / tot
            if not tot >= _TINY:
                tot = _forward_fallback(logB, t, ws, gamma, scale)
                ll += tot
                inv = 1.0
            t += 1
        while t < u1 and ll > -math.inf:
            t += _forward_run(ws, inv, eb, e + (t - u0) * _W, u1 - t, gamma, scale, t, logB,
                              vmc, u0)
            inv = ws[_INV]
            if t < u1:
                ll += _forward_fallback(logB, t, ws, gamma, scale)
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
            ll += _log_pos(v, c) + ws[_MX + t - u0] if v > 0.0 else 0.0
    # backward: beta from the end; gamma_t = a_t * beta_t; xi summed
    for k in range(_W):
        ws[_BETA + k] = 1.0
    for u1 in range(t1, t0 + 1, -_CHUNK):
        u0 = max(u1 - _CHUNK, t0 + 1)
        e = (u0 - t0) * _W
        r = u1 - u0
        while r > 0:
            if keep:
                r = _backward_run(ws, eb, e, u0, r, gamma, scale, logB, vmc)
            else:  # b_t computed again in the loop, off the path of beta
                r = _backward_run_computing(ws, eb, 0, u0, r, gamma, scale, logB, vmc)
            if r >= 0:  # a frame _slow_frame scaled
                t = u0 + r
                _slow_next(logB, t, -scale[t], ws[_BETA:_BETA + _W], ws[_NXT:_NXT + _W])
                for k in range(K, _W):
                    ws[_NXT + k] = 0.0
                _backward_step_given(ws, eb, 0, 0.0, gamma, t)
            # r frames left: u0 .. u0 + r - 1
    for k in range(K):
        gamma[t0, k] *= ws[_BETA + k]
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
                      starts, trans, vmc, ctrl):
    K = logB.shape[1]
    N = bounds.shape[0] - 1
    n_slots = starts.shape[0]
    c = vm_consts(vmc)
    small = K <= _W
    # the fixed-size path's scratch: padding lanes 0 (-inf in the frame's
    # row), room for the b_t of a whole sequence up to _KEEP frames
    longest = 0
    for q in range(N):
        longest = max(longest, bounds[q + 1] - bounds[q])
    ws = np.zeros(_E if small else 0)
    eb = np.empty(max(_CHUNK, min(longest, _KEEP)) * _W if small else 0)
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
            for k in range(K, _W):
                ws[_X + r * _W + k] = -math.inf
        for i in range(K):
            ws[_START + i] = startprob[i]
            for j in range(K):
                ws[_A + i * _W + j] = transmat[i, j]
                ws[_AT + j * _W + i] = transmat[i, j]
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
                ws[_LOC:_LOC + _W * _W] = 0.0
                ll = _sequence_small(logB, t0, t1, gamma, scale, ws, eb, c, vmc)
                sums = ws[_LOC:_LOC + _W * _W].reshape((_W, _W))
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


def _masked_store_i64(builder, v, ptr, mask):
    i1v = ir.VectorType(ir.IntType(1), _W)
    vt = v.type
    fnty = ir.FunctionType(ir.VoidType(), [vt, vt.as_pointer(), _I32, i1v])
    fn = cgutils.get_or_insert_function(builder.module, fnty, f"llvm.masked.store.v{_W}i64.p0")
    builder.call(fn, [v, ptr, ir.Constant(_I32, 8), mask])


@intrinsic
def _viterbi_run(typingctx, ws, logB, back, t0, t1):
    """Frames t0 + 1 .. t1 - 1 of Viterbi for K <= _W, as a loop in LLVM IR:
    delta (ws[0:_W], -inf in the padding lanes) in registers; per frame and
    state j, the first i of the largest delta_i + log A_ij (ws[_W + i * _W
    + j]; a NaN or -inf never wins, as in the scalar loop: arg 0 then) by a
    tree of strict comparisons, whose left operands have the smaller i;
    back[t, j] = that i, delta_j = its value + logB[t, j]."""
    if not (_ws_type_ok(ws) and _rows_type_ok(logB) and isinstance(back, types.Array)
            and back.dtype == types.int64 and back.ndim == 2 and back.layout == "C"):
        return None
    sig = types.void(ws, logB, back, types.intp, types.intp)

    def codegen(context, builder, signature, args):
        wty, lty, bty, _, _ = signature.args
        arr, logB, back, t0, t1 = args
        ity = t0.type
        i64v = ir.VectorType(ir.IntType(64), _W)
        ninf = ir.Constant(_VT, [-math.inf] * _W)

        def ptr(off):
            return _vptr(context, builder, wty, arr, ir.Constant(ity, off))

        d0 = builder.load(ptr(0), align=8)
        start = builder.add(t0, ir.Constant(ity, 1))
        entry = builder.block
        loop = builder.append_basic_block("vit.loop")
        body = builder.append_basic_block("vit.body")
        done = builder.append_basic_block("vit.done")
        builder.branch(loop)
        builder.position_at_end(loop)
        t = builder.phi(ity)
        delta = builder.phi(_VT)
        t.add_incoming(start, entry)
        delta.add_incoming(d0, entry)
        builder.cbranch(builder.icmp_signed("<", t, t1), body, done)
        builder.position_at_end(body)
        level = []
        for i in range(_W):
            v = builder.fadd(_splat(builder, delta, i), builder.load(ptr(_W + i * _W), align=8))
            v = builder.select(builder.fcmp_ordered(">", v, ninf), v, ninf)
            level.append((v, ir.Constant(i64v, [i] * _W)))
        while len(level) > 1:
            nxt = []
            for (va, ia), (vb, ib) in zip(level[::2], level[1::2]):
                gt = builder.fcmp_ordered(">", vb, va)
                nxt.append((builder.select(gt, vb, va), builder.select(gt, ib, ia)))
            level = nxt
        best, arg = level[0]
        lptr, mask = _row_access(context, builder, lty, logB, t)
        new = builder.fadd(best, _masked_load(builder, lptr, mask, -math.inf))
        bary = context.make_array(bty)(context, builder, back)
        bptr = cgutils.get_item_pointer(context, builder, bty, bary, [t, ir.Constant(ity, 0)])
        _masked_store_i64(builder, arg, builder.bitcast(bptr, i64v.as_pointer()), mask)
        t.add_incoming(builder.add(t, ir.Constant(ity, 1)), body)
        delta.add_incoming(new, body)
        builder.branch(loop)
        builder.position_at_end(done)
        builder.store(delta, ptr(0), align=8)
        return context.get_dummy_value()

    return sig, codegen


@njit(**JIT_OPTIONS)
def _viterbi(logB, bounds, log_startprob, log_transmat, states, logprobs, back, ctrl):
    """The most probable state path of each sequence (``states`` (n,)
    int64) and its log-probability (``logprobs`` (N,)), in log space;
    ``back`` (n, K) int64 scratch for the back-pointers.  One slot a
    sequence group, as in :func:`_forward_backward` (``logprobs`` sized N,
    the number of slots ``ctrl``'s caller chose is N here)."""
    K = logB.shape[1]
    N = bounds.shape[0] - 1
    delta = np.empty(K)
    new = np.empty(K)
    small = K <= _W
    # K <= _W: delta and log A, padded with -inf, for _viterbi_run
    ws = np.full(_W + _W * _W if small else 0, -math.inf)
    if small:
        for i in range(K):
            for j in range(K):
                ws[_W + i * _W + j] = log_transmat[i, j]
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
            _viterbi_run(ws, logB, back, t0, t1)
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
