r"""``tanh``, ``exp``, ``log`` and ``log1p`` written out in arithmetic, so that loops calling
them vectorize.

Why this file exists. A Numba loop that calls ``math.tanh`` or ``math.log`` makes one call into
the C library per element, and the call stops LLVM from vectorizing the loop. NumPy's own
``np.tanh`` is a SIMD routine, so a "fused" Numba kernel built on ``math.tanh`` loses to three
separate NumPy passes (measurements: ``benchmarks/README.md``, "Why the kernels look the way they
do"). Written as
plain arithmetic (a polynomial, a division, a few selects and two integer/float bit casts) the
same functions are inlined into the caller's loop and run 8 doubles at a time (AVX-512) at NumPy's
speed, while staying within a few ulp of the C library: the tests check ``tanh_v`` and ``log_v``
against ``np.tanh``/``np.log`` to 1e-15 relative, including 0, -0, subnormals, +-inf and NaN.

Editing this file: these functions are inlined into kernels defined in other files, and Numba's
on-disk cache only watches the file that defines each kernel. After a change here, delete
``nfscratch/kernels/__pycache__/*.nbi`` and ``*.nbc`` (a fresh clone or install has no cache).

Notes
-----
``tanh``. With :math:`y = -2|x| \le 0` and :math:`E = e^{y} - 1 = \mathrm{expm1}(y)`,

.. math:: \tanh|x| = \frac{1 - e^{y}}{1 + e^{y}} = \frac{-E}{2 + E},

which has no cancellation for small :math:`|x|` because ``expm1`` is computed directly.
``expm1(y)``: split :math:`y = n \ln 2 + r` with :math:`n = \mathrm{round}(y/\ln 2)`,
:math:`|r| \le \ln 2 / 2` (``ln 2`` in two parts so that :math:`n \ln 2` is exact), then

.. math:: e^y - 1 = 2^n\,\mathrm{expm1}(r) + (2^n - 1), \qquad
          \mathrm{expm1}(r) = r + r^2\left(\tfrac1{2!} + \tfrac{r}{3!} + \dots + \tfrac{r^{11}}{13!}\right),

the Taylor series, whose first dropped term is below 1e-17 relative for :math:`|r| \le 0.347`.
:math:`2^n` is built directly from its bits. :math:`|x|` is capped at 20, where
:math:`\tanh = 1` to double precision, so :math:`n \ge -58` never underflows.

``exp`` is the same reduction, :math:`e^y = (2^n\,\mathrm{expm1}(r) + 2^n)`, for
:math:`-708 \le y \le 709.78` (0 below, where :math:`e^y` would be subnormal; inf above), with
:math:`2^n` applied as two normal powers of two, since :math:`2^{1024}` is not a double.

``log``. Write :math:`q = m\, 2^e` with :math:`m \in [\sqrt{1/2}, \sqrt 2)` (read from the bits;
subnormal inputs are first scaled by :math:`2^{54}`). With :math:`s = (m - 1)/(m + 1)`,
:math:`|s| \le 0.172`,

.. math:: \log q = e \ln 2 + 2\,\mathrm{atanh}(s)
          = e \ln 2 + 2 s \left(1 + \tfrac{s^2}{3} + \tfrac{s^4}{5} + \dots + \tfrac{s^{22}}{23}\right),

again a truncated series with error below 1e-17 relative. ``log(0) = -inf``, ``log(inf) = inf``,
``log`` of a negative number or NaN is NaN, as in NumPy.

All constants are derived below from their definitions (factorials, odd reciprocals, ``ln 2``
split in a high part with 32 significant bits and the remainder).
"""
import math
from decimal import Decimal, getcontext

from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from . import _numba_start  # noqa: F401  (Numba's context, set up without SciPy)

__all__ = ["tanh_v", "exp_v", "log_v", "log1p_v", "dot_v", "sum_v", "dot_rows_v"]

# ln 2 = LN2_HI + LN2_LO, LN2_HI with only 32 significant bits so n * LN2_HI is exact for |n| < 2^20
getcontext().prec = 40
_LN2_DIGITS = Decimal("0.6931471805599453094172321214581765680755")
LN2_HI = math.ldexp(math.floor(math.ldexp(math.log(2.0), 32)), -32)
LN2_LO = float(_LN2_DIGITS - Decimal(LN2_HI))
LN2 = math.log(2.0)
INV_LN2 = 1.0 / LN2
SQRT2 = math.sqrt(2.0)
TWO_54 = 2.0 ** 54
TANH_CAP = 20.0          # tanh(20) = 1 - 8.5e-18, i.e. 1.0 in double precision
EXP_MIN = -708.0         # exp(-708) = 3.3e-308, the last normal double on the way down
EXP_MAX = math.log(2.0 ** 1023 * (2.0 - 2.0 ** -52))   # 709.78: exp of anything larger is inf

# Taylor coefficients 1/k! (k = 2..13) for expm1, and 1/(2k+1) (k = 1..11) for atanh
_F2, _F3, _F4, _F5, _F6, _F7, _F8, _F9, _F10, _F11, _F12, _F13 = \
    (1.0 / math.factorial(k) for k in range(2, 14))
_A3, _A5, _A7, _A9, _A11, _A13, _A15, _A17, _A19, _A21, _A23 = \
    (1.0 / (2 * k + 1) for k in range(1, 12))


# Reinterpreting the 64 bits of an int as a float and back is a single LLVM instruction
# (``bitcast``); Numba has no scalar spelling of it, so it is declared as an intrinsic.
@intrinsic
def _bits_to_float(typingctx, bits):
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())
    return sig, codegen


@intrinsic
def _float_to_bits(typingctx, value):
    sig = types.int64(types.float64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))
    return sig, codegen


@njit(cache=True, inline="always", error_model="numpy", fastmath={"contract"})
def _expm1_reduced(r):
    """``expm1(r)`` for ``|r| <= ln2 / 2`` by its Taylor polynomial, in Horner form."""
    p = _F13
    p = p * r + _F12
    p = p * r + _F11
    p = p * r + _F10
    p = p * r + _F9
    p = p * r + _F8
    p = p * r + _F7
    p = p * r + _F6
    p = p * r + _F5
    p = p * r + _F4
    p = p * r + _F3
    p = p * r + _F2
    return r + r * r * p


@njit(cache=True, inline="always", error_model="numpy", fastmath={"contract"})
def _exp_parts(y):
    """``(2^n, expm1(r))`` with ``y = n ln 2 + r``, for ``-708 <= y <= 0`` (see the module Notes):
    ``exp(y) = 2^n expm1(r) + 2^n`` and ``expm1(y) = 2^n expm1(r) + (2^n - 1)``."""
    n = math.floor(y * INV_LN2 + 0.5)
    r = (y - n * LN2_HI) - n * LN2_LO                 # exact reduction, |r| <= ln2 / 2
    expm1_r = _expm1_reduced(r)
    two_n = _bits_to_float((int(n) + 1023) << 52)     # 2^n from its exponent bits
    return two_n, expm1_r


@njit(cache=True, inline="always", error_model="numpy", fastmath={"contract"})
def _expm1_nonpositive(y):
    """``exp(y) - 1`` for ``-40 <= y <= 0`` (see the module Notes)."""
    two_n, expm1_r = _exp_parts(y)
    return two_n * expm1_r + (two_n - 1.0)


@njit(cache=True, inline="always", error_model="numpy", fastmath={"contract"})
def tanh_v(x):
    """``tanh(x)`` for a float64 scalar, vectorizable when inlined in a loop."""
    em = _expm1_nonpositive(-2.0 * min(abs(x), TANH_CAP))
    t = math.copysign(-em / (2.0 + em), x)
    return x if x != x else t                         # NaN in, NaN out


@njit(cache=True, inline="always", error_model="numpy", fastmath={"contract"})
def exp_v(y):
    """``exp(y)`` for a float64 scalar, vectorizable when inlined in a loop.

    Within ~1 ulp of ``np.exp`` for ``EXP_MIN <= y <= EXP_MAX``; 0 below -708 (where ``exp``
    would be subnormal, < 3.3e-308), inf above 709.78, NaN for NaN.
    """
    yc = min(max(y, EXP_MIN), EXP_MAX)
    n = math.floor(yc * INV_LN2 + 0.5)                # -1022 <= n <= 1024
    r = (yc - n * LN2_HI) - n * LN2_LO
    expm1_r = _expm1_reduced(r)
    # 2^n in two normal halves (2^1024 itself is not a double); scaling by them is exact
    half = int(n) >> 1
    two_a = _bits_to_float((half + 1023) << 52)
    two_b = _bits_to_float((int(n) - half + 1023) << 52)
    e = (two_a * expm1_r + two_a) * two_b
    e = 0.0 if y < EXP_MIN else e
    e = math.inf if y > EXP_MAX else e
    return y if y != y else e


@njit(cache=True, inline="always", error_model="numpy", fastmath={"contract"})
def log_v(q):
    """``log(q)`` for a float64 scalar, vectorizable when inlined in a loop."""
    tiny = q < 2.2250738585072014e-308                # subnormal (or 0, negative): scale up first
    qs = q * TWO_54 if tiny else q
    bits = _float_to_bits(qs)
    e = ((bits >> 52) & 0x7FF) - 1023
    m = _bits_to_float((bits & 0x000FFFFFFFFFFFFF) | 0x3FF0000000000000)   # in [1, 2)
    big = m > SQRT2
    m = 0.5 * m if big else m                          # now in [sqrt(1/2), sqrt(2))
    e = e + 1 if big else e
    e = e - 54 if tiny else e
    s = (m - 1.0) / (m + 1.0)
    s2 = s * s
    p = _A23
    p = p * s2 + _A21
    p = p * s2 + _A19
    p = p * s2 + _A17
    p = p * s2 + _A15
    p = p * s2 + _A13
    p = p * s2 + _A11
    p = p * s2 + _A9
    p = p * s2 + _A7
    p = p * s2 + _A5
    p = p * s2 + _A3
    ef = float(e)
    out = ef * LN2_HI + (2.0 * s + 2.0 * s * s2 * p + ef * LN2_LO)
    # special values, as selects so the loop still vectorizes
    out = -math.inf if q == 0.0 else out
    out = q if q == math.inf else out
    return math.nan if (q < 0.0 or q != q) else out


@njit(cache=True, inline="always", error_model="numpy", fastmath={"contract"})
def log1p_v(x):
    """``log(1 + x)`` for a float64 ``x >= 0``, vectorizable, accurate for tiny ``x`` too.

    ``u = 1 + x`` rounds, but ``log(u) * x / (u - 1)`` cancels that rounding to first order
    (Goldberg 1991, "What every computer scientist should know about floating-point
    arithmetic", Theorem 4); where ``u`` rounds to 1, ``log1p(x) = x`` to double precision.
    """
    u = 1.0 + x
    r = log_v(u) * (x / (u - 1.0))
    r = x if u == 1.0 else r
    return x if x == math.inf else r                  # inf / inf above would give NaN


# Sums over the batch. Written as a plain loop, a sum is one chain of dependent additions (4
# cycles each); allowing reassociation ("reassoc") lets LLVM keep many partial sums in vector
# registers, several times faster (benchmarks/README.md). The result differs from a left-to-right
# sum by rounding only (like NumPy's own pairwise sum does). These three helpers are the only code
# compiled with "reassoc", and they are not inlined, so the flag cannot reorder the careful
# arithmetic above.
@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def dot_v(x, y):
    """``sum_n x[n] * y[n]`` of two 1-D float64 arrays of the same length."""
    s = 0.0
    for n in range(x.shape[0]):
        s += x[n] * y[n]
    return s


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def sum_v(x):
    """``sum_n x[n]`` of a 1-D float64 array."""
    s = 0.0
    for n in range(x.shape[0]):
        s += x[n]
    return s


@njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def dot_rows_v(A, BT, c, C, R):
    """``C[r, o] = c[o] + sum_j A[r, j] * BT[o, j]`` for ``r < R``: ``A[:R] @ BT.T + c`` with a
    thin output (``BT`` has a few rows), as one dot product per row and output."""
    for r in range(R):
        a = A[r]
        for o in range(BT.shape[0]):
            b = BT[o]
            s = 0.0
            for j in range(a.shape[0]):
                s += a[j] * b[j]
            C[r, o] = c[o] + s
