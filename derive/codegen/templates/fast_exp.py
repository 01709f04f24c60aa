# <<template only>>
# Template: the arithmetic-only exponential _exp and its bit casts, pasted into every kernel module
# whose element loops should vectorize (rendered by softsym.derive.codegen.fast_exp_source).
# Values: DEGREE (the Taylor degree) and the block taylor (p = the Horner polynomial in r).  The module
# it is pasted into imports math, llvmlite.ir, numba.njit and numba.types, numba.extending.intrinsic.

import math

from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from softsym.derive.codegen.templates import derived


# <<end template only>>
@intrinsic
def _as_float(typingctx, i):
    """The float64 whose bits are the int64 ``i``."""
    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.DoubleType())
    return types.float64(types.int64), codegen


@intrinsic
def _as_int(typingctx, x):
    """The int64 whose bits are the float64 ``x``."""
    def codegen(context, builder, sig, args):
        return builder.bitcast(args[0], ir.IntType(64))
    return types.int64(types.float64), codegen


@njit(cache=True, inline="always")
def _exp(x):
    """exp(x) from arithmetic only (vectorizes): 2^k e^r, k = round(x / ln 2), Cody-Waite r, Taylor degree __DEGREE__.

    Within 1 ulp of libm for -707 <= x <= 709.78; 0 below -707 (where exp < 1e-307), inf above.
    """
    xc = min(max(x, -707.0), 709.782712893384)
    t = xc * 1.4426950408889634 + 6755399441055744.0  # 1.5 * 2^52: k lands in the low bits
    kf = t - 6755399441055744.0
    r = (xc - kf * 0.6931471803691238) - kf * 1.9082149292705877e-10
    p = derived(r)  # <<taylor>>
    y = p * _as_float((_as_int(t) + 1022) << 52) * 2.0
    y = 0.0 if x < -707.0 else y
    y = math.inf if x > 709.782712893384 else y
    return x if x != x else y
