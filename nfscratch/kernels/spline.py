r"""Kernels for rational-quadratic splines: parametrization, bin search, evaluation, backward.

One element at a time, in one pass over the batch: the softmax/cumulative-sum knots and the
softplus derivatives of that element's parameters, the bin search, the rational-quadratic map
(or its stable inverse root) with its log-det, and in the backward pass the whole chain rule back
to the unconstrained parameters. The backward kernels recompute the forward quantities from the
pass's input instead of reading a cache: that costs a few flops per element and saves the
(M, K) arrays a cache would hold.

The math, and the readable NumPy statement of it, is :mod:`nfscratch.transforms.spline`; its
functions are these kernels' twins:

==========================  =================================================================
kernel                      twin (``nfscratch.transforms.spline``)
==========================  =================================================================
``spline_forward_nb``         ``spline_forward(x, uw, uh, ud, ...)[:2]``
``spline_inverse_nb``         ``spline_inverse(y, uw, uh, ud, ...)[:2]``
``spline_backward_nb``        ``spline_backward(dy, dlog_det, cache)``, cache of the forward
``spline_inverse_backward_nb``  ``spline_inverse_backward(dx, dlog_det, cache)``
==========================  =================================================================

Shapes: ``x, y, dy, dx, dlog_det`` (M,) -- one entry per spline element (a coupling layer's
``N d_b`` transformed features); ``uw, uh`` (M, K); ``ud`` (M, K - 1). ``fastmath`` is off: the
twins must agree to ~1e-12 and the inverse's clamped discriminant relies on IEEE semantics.
"""
import numpy as np
from numba import njit

from . import _checks as ck
from . import _numba_start  # noqa: F401  (Numba set up without SciPy: see that module)

__all__ = ["spline_forward_nb", "spline_inverse_nb", "spline_backward_nb",
           "spline_inverse_backward_nb"]

_JIT = dict(cache=True, error_model="numpy")
_LOG2 = float(np.log1p(1.0))     # softplus(0), as nfscratch.nn.softplus computes it


def _check(kernel, names, p, uw, uh, ud, bound, min_width, min_height, min_derivative,
           extra=()):
    (M,) = ck.f64(kernel, names[0], p, 1)
    ck.positive(kernel, f"{names[0]}.shape[0] (M)", M)
    M_w, K = ck.f64(kernel, "uw", uw, 2)
    ck.same_shape(kernel, "uw", (M_w, K), (M, K), f"(M, K) with M from {names[0]}")
    ck.positive(kernel, "uw.shape[1] - 1 (K - 1)", K - 1)
    ck.same_shape(kernel, "uh", ck.f64(kernel, "uh", uh, 2), (M, K), "(M, K) like uw")
    ck.same_shape(kernel, "ud", ck.f64(kernel, "ud", ud, 2), (M, K - 1), "(M, K - 1)")
    for name, a in extra:
        ck.same_shape(kernel, name, ck.f64(kernel, name, a, 1), (M,), f"(M,) like {names[0]}")
    for name, v in (("bound", bound), ("min_width", min_width), ("min_height", min_height),
                    ("min_derivative", min_derivative)):
        if type(v) is not float or not v > 0.0:
            raise ValueError(f"{kernel}: {name}: expected a positive float, got {v!r}.")
    if not (min_width * K < 1.0 and min_height * K < 1.0 and min_derivative < 1.0):
        raise ValueError(f"{kernel}: expected min_width, min_height < 1/K = {1.0 / K:g} and "
                         f"min_derivative < 1, got {min_width!r}, {min_height!r}, "
                         f"{min_derivative!r}.")


# ---------------------------------------------------------------------------------------------
# per-element pieces (compiled into the kernels below)
# ---------------------------------------------------------------------------------------------
@njit(**_JIT)
def _knots(u, bound, minimum, knots, p):
    # softmax with a floor, cumulative sum, ends pinned at -bound and +bound
    K = u.shape[0]
    top = u[0]
    for j in range(1, K):
        top = max(top, u[j])
    total = 0.0
    for j in range(K):
        p[j] = np.exp(u[j] - top)
        total += p[j]
    for j in range(K):
        p[j] /= total
    knots[0] = -bound
    acc = 0.0
    for j in range(K - 1):
        acc += minimum + (1.0 - K * minimum) * p[j]
        knots[j + 1] = -bound + 2.0 * bound * acc
    knots[K] = bound


@njit(**_JIT)
def _knots_backward(dknots, p, bound, minimum, du):
    K = p.shape[0]
    run = 0.0
    inner = 0.0
    du[K - 1] = 0.0              # dfrac of the last bin: it reaches no free knot
    for j in range(K - 2, -1, -1):
        run += 2.0 * bound * dknots[j + 1]
        du[j] = (1.0 - K * minimum) * run
    for j in range(K):
        inner += du[j] * p[j]
    for j in range(K):
        du[j] = p[j] * (du[j] - inner)


@njit(**_JIT)
def _derivs(ud, min_derivative, d):
    K1 = ud.shape[0]
    d[0] = 1.0
    d[K1 + 1] = 1.0
    for j in range(K1):
        u = ud[j]
        sp = max(u, 0.0) + np.log1p(np.exp(-abs(u)))
        d[j + 1] = 1.0 + (1.0 - min_derivative) * (sp / _LOG2 - 1.0)


@njit(**_JIT)
def _softplus_grad(gd, u, min_derivative):
    # d/du of 1 + (1 - min_d) (softplus(u) / log 2 - 1) is (1 - min_d) sigmoid(u) / log 2
    e = np.exp(-abs(u))
    sig = 1.0 / (1.0 + e) if u >= 0 else e / (1.0 + e)
    return gd * (1.0 - min_derivative) / _LOG2 * sig


@njit(**_JIT)
def _search(knots, v):
    K = knots.shape[0] - 1
    k = 0
    for j in range(1, K):
        if knots[j] <= v:
            k += 1
    return k


@njit(**_JIT)
def _terms(xi, s, d0, d1):
    e = xi * (1.0 - xi)
    P = s * xi * xi + d0 * e
    den = s + (d1 + d0 - 2.0 * s) * e
    Q = d1 * xi * xi + 2.0 * s * e + d0 * (1.0 - xi) ** 2
    return P, den, Q, 2.0 * np.log(s) + np.log(Q) - 2.0 * np.log(den)


@njit(**_JIT)
def _pullback(dy, dl, xi, w, h, s, d0, d1, P, den, Q):
    # the reverse-mode equations of transforms/spline.py::_rq_pullback, one element
    e = xi * (1.0 - xi)
    D = d1 + d0 - 2.0 * s
    g_den = -dy * h * P / den ** 2 - 2.0 * dl / den
    g_P = dy * h / den
    g_Q = dl / Q
    g_h = dy * P / den
    g_s = g_P * xi * xi + g_den * (1.0 - 2.0 * e) + g_Q * 2.0 * e + 2.0 * dl / s
    g_d0 = g_P * e + g_den * e + g_Q * (1.0 - xi) ** 2
    g_d1 = g_den * e + g_Q * xi * xi
    g_e = g_P * d0 + g_den * D + g_Q * 2.0 * s
    g_xi = g_P * 2.0 * s * xi + g_Q * 2.0 * (d1 * xi - d0 * (1.0 - xi)) + g_e * (1.0 - 2.0 * xi)
    g_h = g_h + g_s / w
    g_w = -(g_s * s + g_xi * xi) / w
    dx = g_xi / w
    return dx, -dx - g_w, g_w, dy - g_h, g_h, g_d0, g_d1


@njit(**_JIT)
def _locate(v, kx, ky, dv, inverse):
    # bin, position xi in it, and the bin's geometry, for input v inside [-B, B]
    k = _search(ky if inverse else kx, v)
    w = kx[k + 1] - kx[k]
    h = ky[k + 1] - ky[k]
    s = h / w
    d0 = dv[k]
    d1 = dv[k + 1]
    if inverse:
        r = v - ky[k]
        D = d1 + d0 - 2.0 * s
        a = h * (s - d0) + r * D
        b = h * d0 - r * D
        c = -s * r
        disc = max(b * b - 4.0 * a * c, 0.0)
        xi = min(max(2.0 * c / (-b - np.sqrt(disc)), 0.0), 1.0)
    else:
        xi = (v - kx[k]) / w
    return k, xi, w, h, s, d0, d1


@njit(**_JIT)
def _element(v, uw, uh, ud, bound, min_width, min_height, min_derivative, inverse,
             kx, ky, dv, pw, ph):
    # one element's knots (into kx, ky, dv, pw, ph), its bin and the rational-quadratic terms
    _knots(uw, bound, min_width, kx, pw)
    _knots(uh, bound, min_height, ky, ph)
    _derivs(ud, min_derivative, dv)
    k, xi, w, h, s, d0, d1 = _locate(v, kx, ky, dv, inverse)
    P, den, Q, log_g = _terms(xi, s, d0, d1)
    return k, xi, w, h, s, d0, d1, P, den, Q, log_g


# ---------------------------------------------------------------------------------------------
# the kernels
# ---------------------------------------------------------------------------------------------
@njit(**_JIT)
def _spline(p, uw, uh, ud, bound, min_width, min_height, min_derivative, inverse):
    M, K = uw.shape
    out = np.empty(M)
    log_det = np.zeros(M)
    kx, ky, dv = np.empty(K + 1), np.empty(K + 1), np.empty(K + 1)
    pw, ph = np.empty(K), np.empty(K)
    for m in range(M):
        v = p[m]
        if not abs(v) <= bound:          # identity tails
            out[m] = v
            continue
        k, xi, w, h, s, d0, d1, P, den, Q, log_g = _element(
            v, uw[m], uh[m], ud[m], bound, min_width, min_height, min_derivative, inverse,
            kx, ky, dv, pw, ph)
        if inverse:
            out[m] = kx[k] + xi * w
            log_det[m] = -log_g
        else:
            out[m] = ky[k] + h * P / den
            log_det[m] = log_g
    return out, log_det


@njit(**_JIT)
def _spline_backward(d_out, dlog_det, p, uw, uh, ud, bound, min_width, min_height,
                     min_derivative, inverse):
    M, K = uw.shape
    d_in = d_out.copy()                  # the tails: identity, no parameter gradient
    duw, duh = np.zeros((M, K)), np.zeros((M, K))
    dud = np.zeros((M, K - 1))
    kx, ky, dv = np.empty(K + 1), np.empty(K + 1), np.empty(K + 1)
    pw, ph = np.empty(K), np.empty(K)
    gkx, gky = np.zeros(K + 1), np.zeros(K + 1)
    for m in range(M):
        v = p[m]
        if not abs(v) <= bound:
            continue
        k, xi, w, h, s, d0, d1, P, den, Q, log_g = _element(
            v, uw[m], uh[m], ud[m], bound, min_width, min_height, min_derivative, inverse,
            kx, ky, dv, pw, ph)
        if inverse:
            # implicit-function theorem (see the twin): x_bar = dx - dl d(log g')/dx
            slope = np.exp(log_g)
            dlogs_dx = _pullback(0.0, 1.0, xi, w, h, s, d0, d1, P, den, Q)[0]
            x_bar = d_out[m] - dlog_det[m] * dlogs_dx
            d_in[m] = x_bar / slope
            g = _pullback(-x_bar / slope, -dlog_det[m], xi, w, h, s, d0, d1, P, den, Q)
        else:
            g = _pullback(d_out[m], dlog_det[m], xi, w, h, s, d0, d1, P, den, Q)
            d_in[m] = g[0]
        gkx[:] = 0.0
        gky[:] = 0.0
        gkx[k], gkx[k + 1] = g[1], g[2]
        gky[k], gky[k + 1] = g[3], g[4]
        _knots_backward(gkx, pw, bound, min_width, duw[m])
        _knots_backward(gky, ph, bound, min_height, duh[m])
        # the boundary derivatives (knots 0 and K) are the constant 1: no parameter behind them
        if k >= 1:
            dud[m, k - 1] = _softplus_grad(g[5], ud[m, k - 1], min_derivative)
        if k + 1 <= K - 1:
            dud[m, k] = _softplus_grad(g[6], ud[m, k], min_derivative)
    return d_in, duw, duh, dud


# ---------------------------------------------------------------------------------------------
# checked entries
# ---------------------------------------------------------------------------------------------
def spline_forward_nb(x, uw, uh, ud, bound, min_width, min_height, min_derivative):
    """Elementwise RQ spline: ``(y, log_det)``, each (M,). Twin: ``spline_forward``."""
    _check("spline_forward_nb", ("x",), x, uw, uh, ud, bound, min_width, min_height,
           min_derivative)
    return _spline(x, uw, uh, ud, bound, min_width, min_height, min_derivative, False)


def spline_inverse_nb(y, uw, uh, ud, bound, min_width, min_height, min_derivative):
    """Inverse RQ spline: ``(x, log_det = log dx/dy)``. Twin: ``spline_inverse``."""
    _check("spline_inverse_nb", ("y",), y, uw, uh, ud, bound, min_width, min_height,
           min_derivative)
    return _spline(y, uw, uh, ud, bound, min_width, min_height, min_derivative, True)


def spline_backward_nb(dy, dlog_det, x, uw, uh, ud, bound, min_width, min_height,
                       min_derivative):
    """Backward of :func:`spline_forward_nb` at input ``x``: ``(dx, duw, duh, dud)``.

    Twin: ``spline_backward(dy, dlog_det, cache)`` with the cache of ``spline_forward(x, ...)``.
    """
    _check("spline_backward_nb", ("x",), x, uw, uh, ud, bound, min_width, min_height,
           min_derivative, (("dy", dy), ("dlog_det", dlog_det)))
    return _spline_backward(dy, dlog_det, x, uw, uh, ud, bound, min_width, min_height,
                            min_derivative, False)


def spline_inverse_backward_nb(dx, dlog_det, y, uw, uh, ud, bound, min_width, min_height,
                               min_derivative):
    """Backward of :func:`spline_inverse_nb` at input ``y``: ``(dy, duw, duh, dud)``.

    Twin: ``spline_inverse_backward(dx, dlog_det, cache)`` with the cache of
    ``spline_inverse(y, ...)``.
    """
    _check("spline_inverse_backward_nb", ("y",), y, uw, uh, ud, bound, min_width, min_height,
           min_derivative, (("dx", dx), ("dlog_det", dlog_det)))
    return _spline_backward(dx, dlog_det, y, uw, uh, ud, bound, min_width, min_height,
                            min_derivative, True)
