r"""Kernels for the elementwise part of coupling layers (RealNVP affine, NICE additive).

The conditioner MLP is run by :mod:`.mlp` (and BLAS); these kernels take its output ``out``
and do the rest of the layer in one pass over the batch: split, soft-bounded scale, exponential,
the transform of the ``mask == 0`` features, the log-det, and in the backward pass the gradient
that goes back into the conditioner. Their NumPy twins are the functions of the same names in
:mod:`nfscratch.transforms.coupling` (``affine_elementwise_forward`` for
``affine_elementwise_forward_nb``, ...), whose math is:

.. math::

    s = s_{max} \tanh(raw / s_{max}), \quad x_b = z_b e^s + t, \quad
    \log|\det| = \textstyle\sum_j s_j, \qquad z_b = (x_b - t) e^{-s}, \quad
    \log|\det| = -\textstyle\sum_j s_j,

with ``out = [raw | t]`` of shape (N, 2 d_b) and ``ib`` the indices of the ``d_b`` transformed
features. Backward of the forward pass (upstream ``dx``, ``dl`` = dL/dlog_det):
``ds = dx_b z_b e^s + dl``, ``dout = [ds (1 - tanh^2), dx_b]``, ``dz_b = dx_b e^s``;
of the inverse: ``dx_b = dz_b e^{-s}``, ``ds = -dz_b z_b - dl``, ``dout = [ds (1 - tanh^2), -dx_b]``.
``dz_a = dx_a`` here: the caller adds the conditioner's contribution ``NN^T(dout)``.

Shapes: ``z, x, dx, dz`` (N, D); ``out`` (N, 2 d_b) (affine) or ``t`` (N, d_b) (additive);
``ib`` int64 (d_b,), distinct indices; ``exp_s``, ``ds_draw`` (N, d_b). ``s_max`` is a finite
positive float (``inf`` would make ``s = inf * tanh(0)`` NaN).
"""
import math

import numpy as np
from numba import njit

from . import _checks as ck
from ._math import exp_v, tanh_v

__all__ = ["affine_elementwise_forward_nb", "affine_elementwise_backward_nb",
           "affine_elementwise_inverse_nb", "affine_elementwise_inverse_backward_nb",
           "additive_elementwise_nb", "additive_elementwise_backward_nb"]

_JIT = dict(cache=True, error_model="numpy", fastmath={"contract"})


def _check_affine(kernel, p_name, p, out, ib, s_max):
    N, D = ck.f64(kernel, p_name, p, 2)
    ck.positive(kernel, f"{p_name}.shape[0] (N)", N)
    d_b = ck.index_array(kernel, "ib", ib, D)
    ck.positive(kernel, "ib.shape[0] (d_b)", d_b)
    ck.same_shape(kernel, "out", ck.f64(kernel, "out", out, 2), (N, 2 * d_b), "(N, 2 d_b)")
    ck.float_in(kernel, "s_max", s_max, 0.0, math.inf, "a finite positive bound on |s|")


def _check_affine_backward(kernel, d_name, d, dlog_det, p, ib, e, ds_draw):
    N, D = ck.f64(kernel, d_name, d, 2)
    ck.positive(kernel, f"{d_name}.shape[0] (N)", N)
    d_b = ck.index_array(kernel, "ib", ib, D)
    ck.positive(kernel, "ib.shape[0] (d_b)", d_b)
    ck.same_shape(kernel, "dlog_det", ck.f64(kernel, "dlog_det", dlog_det, 1), (N,), "(N,)")
    ck.same_shape(kernel, "z", ck.f64(kernel, "z", p, 2), (N, D), f"(N, D) like {d_name}")
    for name, a in (("exp_s", e), ("ds_draw", ds_draw)):
        ck.same_shape(kernel, name, ck.f64(kernel, name, a, 2), (N, d_b), "(N, d_b)")


# ---------------------------------------------------------------------------------------------
# affine coupling, forward direction
# ---------------------------------------------------------------------------------------------
@njit(**_JIT)
def _affine_elementwise_forward(p, out, ib, s_max, sign):
    # sign +1: x_b = z_b e^s + t;  sign -1: z_b = (x_b - t) e^{-s}
    N, D = p.shape
    d_b = ib.shape[0]
    res = p.copy()
    log_det = np.zeros(N)
    e = np.empty((N, d_b))
    ds_draw = np.empty((N, d_b))
    # one transformed feature at a time, gathered into contiguous scratch first: a loop that
    # reads a column of a 2-D array (a stride) does not vectorize (benchmarks/README.md, "Why the
    # kernels look the way they do")
    scratch = np.empty((6, N))
    raw, t, pb = scratch[0], scratch[1], scratch[2]          # the column's raw, t and z_b
    out_b, e_b, dsd_b = scratch[3], scratch[4], scratch[5]   # its results
    for j in range(d_b):
        col = ib[j]
        for n in range(N):
            raw[n] = out[n, j]
            t[n] = out[n, d_b + j]
            pb[n] = p[n, col]
        for n in range(N):
            th = tanh_v(raw[n] / s_max)
            s = s_max * th
            dsd_b[n] = 1.0 - th * th
            ej = exp_v(sign * s)
            e_b[n] = ej
            out_b[n] = pb[n] * ej + t[n] if sign > 0 else (pb[n] - t[n]) * ej
            log_det[n] += sign * s
        for n in range(N):
            res[n, col] = out_b[n]
            e[n, j] = e_b[n]
            ds_draw[n, j] = dsd_b[n]
    return res, log_det, e, ds_draw


def affine_elementwise_forward_nb(z, out, ib, s_max):
    """The kernel of :func:`nfscratch.transforms.coupling.affine_elementwise_forward`, checked."""
    _check_affine("affine_elementwise_forward_nb", "z", z, out, ib, s_max)
    return _affine_elementwise_forward(z, out, ib, s_max, 1)


@njit(**_JIT)
def _affine_elementwise_backward(d, dlog_det, p, ib, e, ds_draw, sign):
    # sign +1: backward of the forward pass; -1: of the inverse (p is then the inverse's output)
    N, D = d.shape
    d_b = ib.shape[0]
    d_in = d.copy()
    dout = np.empty((N, 2 * d_b))
    for n in range(N):
        for j in range(d_b):
            col = ib[j]
            dj = d[n, col]
            if sign > 0:
                ds = dj * p[n, col] * e[n, j] + dlog_det[n]
                dout[n, d_b + j] = dj
                d_in[n, col] = dj * e[n, j]
            else:
                dxb = dj * e[n, j]
                ds = -dj * p[n, col] - dlog_det[n]
                dout[n, d_b + j] = -dxb
                d_in[n, col] = dxb
            dout[n, j] = ds * ds_draw[n, j]
    return d_in, dout


def affine_elementwise_backward_nb(dx, dlog_det, z, ib, exp_s, ds_draw):
    """The kernel of :func:`nfscratch.transforms.coupling.affine_elementwise_backward`, checked."""
    _check_affine_backward("affine_elementwise_backward_nb", "dx", dx, dlog_det, z, ib, exp_s, ds_draw)
    return _affine_elementwise_backward(dx, dlog_det, z, ib, exp_s, ds_draw, 1)


# ---------------------------------------------------------------------------------------------
# affine coupling, inverse direction
# ---------------------------------------------------------------------------------------------
def affine_elementwise_inverse_nb(x, out, ib, s_max):
    """The kernel of :func:`nfscratch.transforms.coupling.affine_elementwise_inverse`, checked."""
    _check_affine("affine_elementwise_inverse_nb", "x", x, out, ib, s_max)
    return _affine_elementwise_forward(x, out, ib, s_max, -1)


def affine_elementwise_inverse_backward_nb(dz, dlog_det, z, ib, exp_neg_s, ds_draw):
    """The kernel of :func:`nfscratch.transforms.coupling.affine_elementwise_inverse_backward`, checked."""
    _check_affine_backward("affine_elementwise_inverse_backward_nb", "dz", dz, dlog_det, z, ib,
                           exp_neg_s, ds_draw)
    return _affine_elementwise_backward(dz, dlog_det, z, ib, exp_neg_s, ds_draw, -1)


# ---------------------------------------------------------------------------------------------
# additive coupling (both directions: sign +1 forward, -1 inverse; log-det 0)
# ---------------------------------------------------------------------------------------------
def _check_sign(kernel, sign):
    if type(sign) is not float or sign not in (1.0, -1.0):
        raise ValueError(f"{kernel}: sign: expected 1.0 (forward) or -1.0 (inverse), got {sign!r}.")


def _check_additive(kernel, p_name, p, t, ib, sign):
    N, D = ck.f64(kernel, p_name, p, 2)
    ck.positive(kernel, f"{p_name}.shape[0] (N)", N)
    d_b = ck.index_array(kernel, "ib", ib, D)
    ck.positive(kernel, "ib.shape[0] (d_b)", d_b)
    ck.same_shape(kernel, "t", ck.f64(kernel, "t", t, 2), (N, d_b), "(N, d_b)")
    _check_sign(kernel, sign)


def _check_additive_backward(kernel, d, ib, sign):
    N, D = ck.f64(kernel, "d", d, 2)
    ck.positive(kernel, "d.shape[0] (N)", N)
    ck.positive(kernel, "ib.shape[0] (d_b)", ck.index_array(kernel, "ib", ib, D))
    _check_sign(kernel, sign)


@njit(**_JIT)
def _additive_elementwise(p, t, ib, sign):
    N = p.shape[0]
    out = p.copy()
    for n in range(N):
        for j in range(ib.shape[0]):
            out[n, ib[j]] = p[n, ib[j]] + sign * t[n, j]
    return out


def additive_elementwise_nb(p, t, ib, sign):
    """The kernel of :func:`nfscratch.transforms.coupling.additive_elementwise`, checked."""
    _check_additive("additive_elementwise_nb", "p", p, t, ib, sign)
    return _additive_elementwise(p, t, ib, sign)


@njit(**_JIT)
def _additive_elementwise_backward(d, ib, sign):
    N = d.shape[0]
    dt = np.empty((N, ib.shape[0]))
    for n in range(N):
        for j in range(ib.shape[0]):
            dt[n, j] = sign * d[n, ib[j]]
    return d.copy(), dt


def additive_elementwise_backward_nb(d, ib, sign):
    """The kernel of :func:`nfscratch.transforms.coupling.additive_elementwise_backward`, checked."""
    _check_additive_backward("additive_elementwise_backward_nb", d, ib, sign)
    return _additive_elementwise_backward(d, ib, sign)
