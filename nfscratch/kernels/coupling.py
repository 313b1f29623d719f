r"""Kernels for the elementwise part of coupling layers (RealNVP affine, NICE additive).

The conditioner MLP is run by :mod:`.mlp` (and BLAS); these kernels take its output ``out``
and do the rest of the layer in one pass over the batch: split, soft-bounded scale, exponential,
the transform of the ``mask == 0`` features, the log-det, and in the backward pass the gradient
that goes back into the conditioner. The math is that of :mod:`nfscratch.transforms.coupling`:

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
``ib`` int64 (d_b,); ``exp_s``, ``ds_draw`` (N, d_b).
"""
import numpy as np
from numba import njit

from . import _checks as ck
from ._math import exp_v, tanh_v

__all__ = ["affine_coupling_forward_ref", "affine_coupling_forward_nb",
           "affine_coupling_backward_ref", "affine_coupling_backward_nb",
           "affine_coupling_inverse_ref", "affine_coupling_inverse_nb",
           "affine_coupling_inverse_backward_ref", "affine_coupling_inverse_backward_nb",
           "additive_coupling_ref", "additive_coupling_nb", "additive_coupling_backward_ref",
           "additive_coupling_backward_nb"]

_JIT = dict(cache=True, error_model="numpy", fastmath={"contract"})


def _check_affine(kernel, p_name, p, out, ib, s_max):
    N, D = ck.f64(kernel, p_name, p, 2)
    ck.positive(kernel, f"{p_name}.shape[0] (N)", N)
    d_b = ck.index_array(kernel, "ib", ib, D)
    ck.positive(kernel, "ib.shape[0] (d_b)", d_b)
    ck.same_shape(kernel, "out", ck.f64(kernel, "out", out, 2), (N, 2 * d_b), "(N, 2 d_b)")
    if type(s_max) is not float or not s_max > 0.0:
        raise ValueError(f"{kernel}: s_max: expected a positive float, got {s_max!r}.")


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
def affine_coupling_forward_ref(z, out, ib, s_max):
    """Affine coupling given the conditioner output: ``(x, log_det, exp_s, ds_draw)``.

    Parameters
    ----------
    z : ndarray, shape (N, D)
    out : ndarray, shape (N, 2 d_b)
        Conditioner output ``[raw | t]`` for the conditioning part of ``z``.
    ib : ndarray of int64, shape (d_b,)
        The transformed features (``mask == 0``).
    s_max : float

    Returns
    -------
    x : ndarray, shape (N, D)
    log_det : ndarray, shape (N,)
    exp_s, ds_draw : ndarray, shape (N, d_b)
        ``e^s`` and ``ds/draw = 1 - tanh^2(raw/s_max)``, for the backward pass.
    """
    _check_affine("affine_coupling_forward_ref", "z", z, out, ib, s_max)
    d_b = ib.size
    th = np.tanh(out[:, :d_b] / s_max)
    s = s_max * th
    exp_s = np.exp(s)
    x = z.copy()
    x[:, ib] = z[:, ib] * exp_s + out[:, d_b:]
    return x, s.sum(axis=1), exp_s, 1.0 - th * th


@njit(**_JIT)
def _affine_forward(p, out, ib, s_max, sign):
    # sign +1: x_b = z_b e^s + t;  sign -1: z_b = (x_b - t) e^{-s}
    N, D = p.shape
    d_b = ib.shape[0]
    res = p.copy()
    log_det = np.zeros(N)
    e = np.empty((N, d_b))
    ds_draw = np.empty((N, d_b))
    # one transformed feature at a time, gathered into contiguous scratch first: a loop that
    # reads a column of a 2-D array (a stride) does not vectorize, and tanh/exp then cost
    # ~8 ns a number instead of ~1
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


def affine_coupling_forward_nb(z, out, ib, s_max):
    """Numba twin of :func:`affine_coupling_forward_ref`."""
    _check_affine("affine_coupling_forward_nb", "z", z, out, ib, s_max)
    return _affine_forward(z, out, ib, s_max, 1)


def affine_coupling_backward_ref(dx, dlog_det, z, ib, exp_s, ds_draw):
    """Backward of :func:`affine_coupling_forward_ref`: ``(dz, dout)``.

    Parameters
    ----------
    dx : ndarray, shape (N, D)
    dlog_det : ndarray, shape (N,)
    z : ndarray, shape (N, D)
        The forward pass's input.
    ib : ndarray of int64, shape (d_b,)
    exp_s, ds_draw : ndarray, shape (N, d_b)
        From the forward pass.

    Returns
    -------
    dz : ndarray, shape (N, D)
        ``dz_b = dx_b e^s``; ``dz_a = dx_a`` (the caller adds the conditioner's part).
    dout : ndarray, shape (N, 2 d_b)
        dL/d[raw | t], to backpropagate through the conditioner.
    """
    _check_affine_backward("affine_coupling_backward_ref", "dx", dx, dlog_det, z, ib, exp_s, ds_draw)
    dxb = dx[:, ib]
    ds = dxb * z[:, ib] * exp_s + dlog_det[:, None]
    dz = dx.copy()
    dz[:, ib] = dxb * exp_s
    return dz, np.concatenate([ds * ds_draw, dxb], axis=1)


@njit(**_JIT)
def _affine_backward(d, dlog_det, p, ib, e, ds_draw, sign):
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


def affine_coupling_backward_nb(dx, dlog_det, z, ib, exp_s, ds_draw):
    """Numba twin of :func:`affine_coupling_backward_ref`."""
    _check_affine_backward("affine_coupling_backward_nb", "dx", dx, dlog_det, z, ib, exp_s, ds_draw)
    return _affine_backward(dx, dlog_det, z, ib, exp_s, ds_draw, 1)


# ---------------------------------------------------------------------------------------------
# affine coupling, inverse direction
# ---------------------------------------------------------------------------------------------
def affine_coupling_inverse_ref(x, out, ib, s_max):
    """Inverse affine coupling: ``(z, log_det, exp_neg_s, ds_draw)``, ``log_det = -sum s``.

    Shapes as in :func:`affine_coupling_forward_ref`, with ``out`` computed from ``x_a``.
    """
    _check_affine("affine_coupling_inverse_ref", "x", x, out, ib, s_max)
    d_b = ib.size
    th = np.tanh(out[:, :d_b] / s_max)
    s = s_max * th
    exp_neg_s = np.exp(-s)
    z = x.copy()
    z[:, ib] = (x[:, ib] - out[:, d_b:]) * exp_neg_s
    return z, -s.sum(axis=1), exp_neg_s, 1.0 - th * th


def affine_coupling_inverse_nb(x, out, ib, s_max):
    """Numba twin of :func:`affine_coupling_inverse_ref`."""
    _check_affine("affine_coupling_inverse_nb", "x", x, out, ib, s_max)
    return _affine_forward(x, out, ib, s_max, -1)


def affine_coupling_inverse_backward_ref(dz, dlog_det, z, ib, exp_neg_s, ds_draw):
    """Backward of :func:`affine_coupling_inverse_ref`: ``(dx, dout)``.

    ``z`` is the inverse pass's *output*; ``dx_a = dz_a`` (the caller adds the conditioner's part).
    """
    _check_affine_backward("affine_coupling_inverse_backward_ref", "dz", dz, dlog_det, z, ib,
                           exp_neg_s, ds_draw)
    dzb = dz[:, ib]
    dxb = dzb * exp_neg_s
    ds = -dzb * z[:, ib] - dlog_det[:, None]
    dx = dz.copy()
    dx[:, ib] = dxb
    return dx, np.concatenate([ds * ds_draw, -dxb], axis=1)


def affine_coupling_inverse_backward_nb(dz, dlog_det, z, ib, exp_neg_s, ds_draw):
    """Numba twin of :func:`affine_coupling_inverse_backward_ref`."""
    _check_affine_backward("affine_coupling_inverse_backward_nb", "dz", dz, dlog_det, z, ib,
                           exp_neg_s, ds_draw)
    return _affine_backward(dz, dlog_det, z, ib, exp_neg_s, ds_draw, -1)


# ---------------------------------------------------------------------------------------------
# additive coupling (both directions: sign +1 forward, -1 inverse; log-det 0)
# ---------------------------------------------------------------------------------------------
def _check_additive(kernel, p_name, p, t, ib, sign):
    N, D = ck.f64(kernel, p_name, p, 2)
    ck.positive(kernel, f"{p_name}.shape[0] (N)", N)
    d_b = ck.index_array(kernel, "ib", ib, D)
    ck.positive(kernel, "ib.shape[0] (d_b)", d_b)
    ck.same_shape(kernel, "t", ck.f64(kernel, "t", t, 2), (N, d_b), "(N, d_b)")
    if type(sign) is not float or sign not in (1.0, -1.0):
        raise ValueError(f"{kernel}: sign: expected 1.0 (forward) or -1.0 (inverse), got {sign!r}.")


def _check_additive_backward(kernel, d, ib, sign):
    N, D = ck.f64(kernel, "d", d, 2)
    ck.positive(kernel, "d.shape[0] (N)", N)
    ck.positive(kernel, "ib.shape[0] (d_b)", ck.index_array(kernel, "ib", ib, D))
    if type(sign) is not float or sign not in (1.0, -1.0):
        raise ValueError(f"{kernel}: sign: expected 1.0 (forward) or -1.0 (inverse), got {sign!r}.")


def additive_coupling_ref(p, t, ib, sign):
    """NICE coupling ``out_b = p_b + sign * t`` (forward: sign 1.0, inverse: -1.0); log-det 0.

    Parameters
    ----------
    p : ndarray, shape (N, D)
    t : ndarray, shape (N, d_b)
        Conditioner output.
    ib : ndarray of int64, shape (d_b,)
    sign : float

    Returns
    -------
    out : ndarray, shape (N, D)
    """
    _check_additive("additive_coupling_ref", "p", p, t, ib, sign)
    out = p.copy()
    out[:, ib] = p[:, ib] + sign * t
    return out


@njit(**_JIT)
def _additive(p, t, ib, sign):
    N = p.shape[0]
    out = p.copy()
    for n in range(N):
        for j in range(ib.shape[0]):
            out[n, ib[j]] = p[n, ib[j]] + sign * t[n, j]
    return out


def additive_coupling_nb(p, t, ib, sign):
    """Numba twin of :func:`additive_coupling_ref`."""
    _check_additive("additive_coupling_nb", "p", p, t, ib, sign)
    return _additive(p, t, ib, sign)


def additive_coupling_backward_ref(d, ib, sign):
    """Backward of :func:`additive_coupling_ref`: ``(d_in = d, dt = sign * d[:, ib])``.

    Parameters
    ----------
    d : ndarray, shape (N, D)
        Upstream gradient (the conditioner part of ``d_in`` is added by the caller).
    ib : ndarray of int64, shape (d_b,)
    sign : float

    Returns
    -------
    d_in : ndarray, shape (N, D)
    dt : ndarray, shape (N, d_b)
    """
    _check_additive_backward("additive_coupling_backward_ref", d, ib, sign)
    return d.copy(), sign * d[:, ib]


@njit(**_JIT)
def _additive_backward(d, ib, sign):
    N = d.shape[0]
    dt = np.empty((N, ib.shape[0]))
    for n in range(N):
        for j in range(ib.shape[0]):
            dt[n, j] = sign * d[n, ib[j]]
    return d.copy(), dt


def additive_coupling_backward_nb(d, ib, sign):
    """Numba twin of :func:`additive_coupling_backward_ref`."""
    _check_additive_backward("additive_coupling_backward_nb", d, ib, sign)
    return _additive_backward(d, ib, sign)
