"""Branch-free ``exp`` and ``log`` that LLVM can vectorise.

This Numba has no vector math library: ``math.exp``/``math.log`` are scalar
libm calls (~5 ns each), which dominates the E-step at small d.  These
versions use Cody-Waite range reduction, a polynomial, and exponent-bit
manipulation through bit casts, so loops over rows that call them vectorise.

Three choices make the vectorised loops about 1.6x faster than a plain
Horner polynomial with literal constants (1.0 against 1.6 ns per exp):

* Both polynomials (degree 9, one shared ``_poly9``) are evaluated in
  Estrin's scheme (powers r^2, r^4, r^8 and independent pairs), so no
  dependency chain is longer than 6 operations: the degree-12 Horner chain
  of the first version kept the loop waiting on FMA latency.
* The constants come from the array ``VM_CONSTS``, passed in by the caller.
  Numba compiles with LLVM's large code model, where a literal constant that
  does not fit in the 16 vector registers is re-materialised in every
  iteration with a 64-bit address move plus a broadcast (two instructions
  each, ~30 per four exps); a value loaded from an argument is instead
  spilled once and read by the FMAs as a memory operand.
* The last two steps add the small terms first, ``1 + (r + r^2 q(r))``, so
  Estrin's extra roundings stay below half an ulp of the result.

They are compiled with their own fastmath flags: ``contract`` (FMA) only.
``reassoc`` would let LLVM fold the rounding trick ``(x + MAGIC) - MAGIC`` and
reorder the two-constant reduction, destroying the accuracy.

Accuracy (tested against NumPy): relative error below 4e-16 for ``_exp_le0``
on [-708, 0] and absolute error below 4e-16 for ``_log_pos`` on [1, 1e6].
"""

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .._config import CACHE

# Not inline="always": Numba-level inlining would apply the caller's flags
# (reassoc) to this code; LLVM's inlining keeps each instruction's own flags.
_OPTS = dict(cache=CACHE, fastmath={"contract"}, nogil=True, error_model="numpy")

_MAGIC = 6755399441055744.0  # 1.5 * 2**52: x + MAGIC rounds x to an integer
_LOG2E = 1.4426950408889634
_LN2_HI = 0.693145751953125
_LN2_LO = 1.42860682030941723212e-6
_EXP_MIN = -708.0
_SQRT_HALF_BITS = 0x3FE6A09E667F3BCD  # bits of sqrt(1/2)
_MANTISSA_MASK = 0x000FFFFFFFFFFFFF  # below this the result is flushed to 0 (< 3.3e-308)

# layout of VM_CONSTS
_I_LOG2E, _I_MAGIC, _I_LN2_HI, _I_LN2_LO, _I_EXP_MIN = 0, 1, 2, 3, 4
_I_EXP_POLY = 5  # q(r), degree 9: exp(r) = 1 + r + r^2 q(r)
_N_EXP_POLY = 10
_I_LOG_POLY = _I_EXP_POLY + _N_EXP_POLY  # 1/3, 1/5, ..., 1/21: 2 atanh(z) / (2 z)
_N_LOG_POLY = 10


#: q(r) = (exp(r) - 1 - r) / r^2 on |r| <= ln(2)/2: the polynomial of degree
#: 9 interpolating it at the 10 Chebyshev nodes, computed in 50-digit
#: arithmetic and rounded to doubles (near-minimax; 1 + r + r^2 q(r) is then
#: within 1.6e-17 of exp(r), against 1.7e-16 for the Taylor polynomial of one
#: degree more).
_EXP_Q = (0.5000000000000001, 0.16666666666666669, 0.041666666666624164,
          0.008333333333330065, 0.0013888888917196719, 0.00019841269863040545,
          2.4801521322368692e-05, 2.7557268480310024e-06, 2.7620075879983367e-07,
          2.5100375832561234e-08)


def _constants():

    exp_poly = list(_EXP_Q)
    log_poly = [1.0 / (2 * i + 1) for i in range(1, 1 + _N_LOG_POLY)]
    head = [_LOG2E, _MAGIC, _LN2_HI, _LN2_LO, _EXP_MIN]
    out = np.array(head + exp_poly + log_poly, dtype=np.float64)
    out.setflags(write=False)
    return out


#: The constants of ``_exp_le0`` and ``_log_pos``; kernels take this array as
#: an argument and read it with ``vm_consts`` (see the module docstring for why).
VM_CONSTS = _constants()
_N_CONSTS = VM_CONSTS.shape[0]


@njit(**_OPTS)
def vm_consts(a):
    """The values of ``VM_CONSTS`` (passed in as ``a``) as a tuple, read once
    before a loop: loop-invariant values the vectoriser needs no alias checks
    for (reading the array inside the loop stopped vectorisation)."""
    return (a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8], a[9], a[10], a[11],
            a[12], a[13], a[14], a[15], a[16], a[17], a[18], a[19], a[20], a[21],
            a[22], a[23], a[24])


@intrinsic
def _f64_as_i64(typingctx, x):
    sig = types.int64(types.float64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return sig, codegen


@intrinsic
def _i64_as_f64(typingctx, i):
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return sig, codegen


@intrinsic
def _fmax(typingctx, a, b):
    """max(a, b) as LLVM's ``maxnum`` (NaN loses to a number).

    Written as ``a if a > b else b`` into an array element that was just
    read, a maximum becomes a masked store after vectorisation (vmaskmovpd,
    slow on AMD: the running row maximum of the log-densities cost 0.6 ns
    per row and component); ``maxnum`` is a plain vmaxpd."""
    sig = types.float64(types.float64, types.float64)

    def codegen(context, builder, signature, args):
        fnty = ir.FunctionType(ir.DoubleType(), [ir.DoubleType(), ir.DoubleType()])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.maxnum.f64")
        return builder.call(fn, args)

    return sig, codegen


@njit(**_OPTS)
def _poly9(c, p, x):
    """sum_i c[p + i] x^i for i = 0..9, in Estrin's scheme: independent pairs
    and the powers x^2, x^4, x^8, so no chain is longer than 6 operations
    (Horner's would be 9)."""
    x2 = x * x
    x4 = x2 * x2
    x8 = x4 * x4
    a0 = c[p] + c[p + 1] * x
    a1 = c[p + 2] + c[p + 3] * x
    a2 = c[p + 4] + c[p + 5] * x
    a3 = c[p + 6] + c[p + 7] * x
    a4 = c[p + 8] + c[p + 9] * x
    return ((a0 + a1 * x2) + (a2 + a3 * x2) * x4) + a4 * x8


@njit(**_OPTS)
def _exp_above(x, c, lo):
    """exp(x) for lo <= x <= 0, and 0 for x < lo (-708 <= lo; NaN gives
    NaN); ``c`` is ``vm_consts(VM_CONSTS)``."""
    magic = c[_I_MAGIC]
    t = x * c[_I_LOG2E] + magic
    n = t - magic  # round(x / ln 2), exactly representable
    r = x - n * c[_I_LN2_HI]
    r = r - n * c[_I_LN2_LO]  # |r| <= ln2 / 2
    # exp(r) = 1 + r + r^2 q(r), q of degree 9 (_EXP_Q)
    q = _poly9(c, _I_EXP_POLY, r)
    e = 1.0 + (r + (r * r) * q)  # in [0.7, 1.42]
    # times 2**n by adding n to the exponent field (an integer add, not a
    # multiply: the multiply units are the bottleneck); x >= -708 keeps the
    # result a normal number
    ni = _f64_as_i64(t) - _f64_as_i64(magic)
    scaled = _i64_as_f64(_f64_as_i64(e) + (ni << 52))
    return 0.0 if x < lo else scaled


@njit(**_OPTS)
def _exp_le0(x, c):
    """exp(x) for x <= 0 (0 below -708, where exp underflows towards the
    subnormal range; x = -inf gives 0; NaN gives NaN); ``c`` is
    ``vm_consts(VM_CONSTS)``."""
    return _exp_above(x, c, c[_I_EXP_MIN])


@njit(**_OPTS)
def _log_pos(s, c):
    """log(s) for normal, finite s > 0 (0 gives -inf); ``c`` is
    ``vm_consts(VM_CONSTS)``."""
    # split s = m * 2**k with m in [sqrt(1/2), sqrt(2)): offset the bits by
    # those of sqrt(1/2) so that the exponent field counts from there
    ix = _f64_as_i64(s) - _SQRT_HALF_BITS
    k = ix >> 52
    m = _i64_as_f64((ix & _MANTISSA_MASK) + _SQRT_HALF_BITS)
    z = (m - 1.0) / (m + 1.0)  # |z| <= 0.1716
    # log(m) = 2 atanh(z) = 2 z (1 + z^2 g(z^2)), g of degree 9 (truncation
    # error < 1e-19)
    u = z * z
    g = _poly9(c, _I_LOG_POLY, u)
    z2 = z + z
    kf = float(k)
    res = kf * c[_I_LN2_HI] + (z2 + (z2 * u * g + kf * c[_I_LN2_LO]))
    return -np.inf if s == 0.0 else res


assert _N_CONSTS == 25, "vm_consts lists every constant"
