r"""The coupling conditioner, a three-layer MLP, in one kernel per direction.

The conditioner of a coupling layer (``models.realnvp``: 1 -> 64 -> 64 -> 2) is

.. math::

    h_1 = act(x W_0 + b_0), \quad h_2 = act(h_1 W_1 + b_1), \quad y = h_2 W_2 + b_2,

and its backward pass, with :math:`dpre_i = dL/d(h_i W_i + b_i)` as in :mod:`.mlp`:

.. math::

    dW_2 = h_2^\top dy,\ db_2 = \textstyle\sum_n dy_n, \quad
    dpre_1 = (dy W_2^\top) \odot act'(h_2),\ dW_1 = h_1^\top dpre_1,\ db_1 = \textstyle\sum_n dpre_{1,n},

    dpre_0 = (dpre_1 W_1^\top) \odot act'(h_1),\ dW_0 = x^\top dpre_0,\ db_0 = \textstyle\sum_n
    dpre_{0,n}, \quad dx = dpre_0 W_0^\top.

Why one kernel. :mod:`nfscratch._nn_fast` runs the thin layers in kernels and the square
product with BLAS, a dozen calls per layer and pass, each reading and writing a whole (N, H)
array. Here the batch goes through in blocks of ``ROWS`` samples: a block's pre-activations
(ROWS x H, a few kB) stay in L1 from the product to the bias and the activation, the square
products run in 4 x 4 register tiles (:func:`.ode._matmul_acc`, the CNF kernel's), and only the
activations the backward pass needs (``h1``, ``h2``) are written out. The backward pass's sums
over rows run in the same tiles given the block's rows transposed as a view, not a copy
(``h1^T dpre_1``), or four rows at a time into a thin result (``h2^T dy``, ``x^T dpre_0``:
:func:`_thin_tn_acc`); the thin products ``h2 W2`` and ``dpre_0 W0^T`` are dot products per row
(:func:`._math.dot_rows_v`). The measurements that decided it: ``benchmarks/README.md``,
"Coupling kernel, batch-major tiles" and "The coupling step's bars with margin".

The twins are the teaching functions :func:`nfscratch.nn.mlp_forward` and
:func:`nfscratch.nn.mlp_backward` on the params ``{"W0", "b0", "W1", "b1", "W2", "b2"}``; the
sums run in another order (per block, then over blocks), so the twins agree to rounding.

Shapes: ``x`` (N, I), ``W0`` (I, H1), ``W1`` (H1, H2), ``W2`` (H2, O), biases (fan_out,),
``h1`` (N, H1), ``h2`` (N, H2), ``y`` and ``dy`` (N, O). ``act`` is an activation code of
:data:`.mlp.ACT_CODES`.
"""
import numpy as np
from numba import njit

from . import _checks as ck
from ._math import dot_rows_v
from .mlp import _act, _act_grad, _check_act, _check_layers
from .ode import _matmul_acc

__all__ = ["ROWS", "mlp3_forward_nb", "mlp3_backward_nb"]

_JIT = dict(cache=True, error_model="numpy", fastmath={"contract"})
#: Samples per block: a multiple of 4 (whole register tiles).
ROWS = 32


@njit(**_JIT)
def _thin_tn_acc(A, B, C, R):
    """``C += A[:R]^T @ B[:R]`` for a C of a few rows (``dW2^T``, ``dW0``): each row of C adds
    four rows of B at a time, so that it is loaded and stored once per four rows, not per row.
    (The 4 x 4 tiles of ``_matmul_acc`` would take C's rows one at a time here.)"""
    R4 = R - R % 4
    for i in range(C.shape[0]):
        c = C[i]
        for r in range(0, R4, 4):
            a0, a1, a2, a3 = A[r, i], A[r + 1, i], A[r + 2, i], A[r + 3, i]
            b0, b1, b2, b3 = B[r], B[r + 1], B[r + 2], B[r + 3]
            for j in range(c.shape[0]):
                c[j] += a0 * b0[j] + a1 * b1[j] + a2 * b2[j] + a3 * b3[j]
        for r in range(R4, R):
            a, b = A[r, i], B[r]
            for j in range(c.shape[0]):
                c[j] += a * b[j]


@njit(**_JIT)
def _mlp3_forward(x, W0, b0, W1, b1, W2, b2, act, h1, h2, y):
    N, I = x.shape
    H1, H2, O = W1.shape[0], W1.shape[1], W2.shape[1]
    pre1, pre2 = np.empty((ROWS, H1)), np.empty((ROWS, H2))    # one block's pre-activations
    W2T = np.ascontiguousarray(W2.T)                   # (O, H2): a row per output
    for r0 in range(0, N, ROWS):
        R = min(ROWS, N - r0)
        a1, a2 = h1[r0:r0 + R], h2[r0:r0 + R]           # (R, H1), (R, H2): rows kept for backward
        for r in range(R):                               # layer 0: thin input, row by row
            p = pre1[r]
            for j in range(H1):
                p[j] = b0[j]
            for i in range(I):
                xi = x[r0 + r, i]
                for j in range(H1):
                    p[j] += xi * W0[i, j]
            a = a1[r]
            for j in range(H1):
                a[j] = _act(p[j], act)
        for r in range(R):                               # layer 1: bias, tiles, activation
            for j in range(H2):
                pre2[r, j] = b1[j]
        _matmul_acc(a1, W1, pre2, R)
        for r in range(R):
            p, a = pre2[r], a2[r]
            for j in range(H2):
                a[j] = _act(p[j], act)
        dot_rows_v(a2, W2T, b2, y[r0:r0 + R], R)         # layer 2: thin output, a dot per row


def mlp3_forward_nb(x, W0, b0, W1, b1, W2, b2, act):
    """The three-layer MLP forward in one pass: ``(y, h1, h2)``, ``h1``/``h2`` the hidden
    activations its backward pass reads. Twin: :func:`nfscratch.nn.mlp_forward`."""
    N = _check_layers("mlp3_forward_nb", x, (W0, W1, W2), (b0, b1, b2))
    _check_act("mlp3_forward_nb", act)
    h1, h2, y = np.empty((N, W0.shape[1])), np.empty((N, W1.shape[1])), np.empty((N, W2.shape[1]))
    _mlp3_forward(x, W0, b0, W1, b1, W2, b2, act, h1, h2, y)
    return y, h1, h2


@njit(**_JIT)
def _mlp3_backward(dy, x, h1, h2, W0, W1, W2, act, dx, dW0, db0, dW1, db1, dW2, db2):
    """Fills ``dx`` and the gradients (the gradient arrays start at zero: it adds into them)."""
    N, I = x.shape
    H1, H2, O = W1.shape[0], W1.shape[1], W2.shape[1]
    W2T = np.zeros((O + O % 2, H2))                    # (O, H2): rows along H2, and a zero
    W2T[:O] = W2.T                                     # row when O is odd (outputs go in pairs)
    W1T = np.ascontiguousarray(W1.T)                   # (H2, H1)
    dW2T = np.zeros((O, H2))
    d2 = np.empty((ROWS, H2))                          # one block of dpre_1
    d1 = np.empty((ROWS, H1))                          # dpre_1 W1^T, then dpre_0 in place
    no_bias = np.zeros(I)
    for r0 in range(0, N, ROWS):
        R = min(ROWS, N - r0)
        a1, a2, g = h1[r0:r0 + R], h2[r0:r0 + R], dy[r0:r0 + R]
        for r in range(R):                             # dpre_1 = (dy W2^T) act'(h2), by row
            d, a = d2[r], a2[r]
            for o in range(O):
                db2[o] += g[r, o]
            for o in range(0, O, 2):                   # two outputs per pass over the row
                g0 = g[r, o]
                g1 = g[r, o + 1] if o + 1 < O else 0.0
                w0, w1 = W2T[o], W2T[o + 1]
                if o == 0:
                    for j in range(H2):
                        d[j] = g0 * w0[j] + g1 * w1[j]
                else:
                    for j in range(H2):
                        d[j] += g0 * w0[j] + g1 * w1[j]
            for j in range(H2):
                dj = d[j] * _act_grad(a[j], act)
                d[j] = dj
                db1[j] += dj
        # the sums over the block's rows, A^T B (the tiles read h1's transpose as a view)
        _thin_tn_acc(g, a2, dW2T, R)                   # dW2 += h2^T dy
        _matmul_acc(a1.T, d2[:R], dW1, H1)             # dW1 += h1^T dpre_1
        for r in range(R):                             # dh1 = dpre_1 W1^T, in tiles
            for j in range(H1):
                d1[r, j] = 0.0
        _matmul_acc(d2[:R], W1T, d1, R)
        for r in range(R):                             # dpre_0 = dh1 act'(h1)
            d, a = d1[r], a1[r]
            for j in range(H1):
                d[j] *= _act_grad(a[j], act)
                db0[j] += d[j]
        _thin_tn_acc(x[r0:r0 + R], d1, dW0, R)         # layer 0: dW0 += x^T dpre_0, dx
        dot_rows_v(d1, W0, no_bias, dx[r0:r0 + R], R)
    for o in range(O):
        for j in range(H2):
            dW2[j, o] = dW2T[o, j]


def mlp3_backward_nb(dy, x, h1, h2, W0, W1, W2, act):
    """Backward of :func:`mlp3_forward_nb`: ``(dx, dW0, db0, dW1, db1, dW2, db2)``.
    Twin: :func:`nfscratch.nn.mlp_backward`."""
    name = "mlp3_backward_nb"
    N = _check_layers(name, x, (W0, W1, W2))
    ck.same_shape(name, "h1", ck.f64(name, "h1", h1, 2), (N, W0.shape[1]), "(N, W0.shape[1])")
    ck.same_shape(name, "h2", ck.f64(name, "h2", h2, 2), (N, W1.shape[1]), "(N, W1.shape[1])")
    ck.same_shape(name, "dy", ck.f64(name, "dy", dy, 2), (N, W2.shape[1]), "(N, W2.shape[1])")
    _check_act(name, act)
    out = _backward_outputs(x, W0, W1, W2)
    _mlp3_backward(dy, x, h1, h2, W0, W1, W2, act, *out)
    return out


def _backward_outputs(x, W0, W1, W2):
    """The arrays :func:`_mlp3_backward` fills: ``(dx, dW0, db0, dW1, db1, dW2, db2)``, those it
    adds into at zero."""
    return (np.empty(x.shape), np.zeros(W0.shape), np.zeros(W0.shape[1]), np.zeros(W1.shape),
            np.zeros(W1.shape[1]), np.empty(W2.shape), np.zeros(W2.shape[1]))
