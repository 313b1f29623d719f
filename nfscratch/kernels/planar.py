r"""Numba kernels for a chain of K planar layers: u_hat, forward, backward, inverse, inverse backward.

The math is the one of :mod:`nfscratch.transforms.planar` (see its docstring), applied to K layers
in one call, layer ``k`` having ``u_hat[k], w[k], b[k]`` and ``c[k] = w[k] . u_hat[k]``:

.. math::

    a_k = w_k^\top z_{k} + b_k, \quad h_k = \tanh a_k, \quad q_k = 1 + c_k (1 - h_k^2), \quad
    z_{k+1} = z_k + \hat u_k h_k, \quad \log|\det| = \textstyle\sum_k \log q_k .

Each kernel is a private ``@njit`` function ``_<name>`` and ONE checked public entry
``planar_<name>_nb`` that checks every array (float64/int64, C-contiguous, every shape against
the others and against the cache of the pass it differentiates) before any loop runs. The NumPy
twin of every kernel is the teaching file itself: :func:`~nfscratch.transforms.planar.planar_u_hat`
and the per-layer functions applied layer after layer (the ``planar_chain_*`` loops of
:mod:`nfscratch.transforms.planar`), which the tests compare with these kernels.

Why a chain kernel: one planar layer is ~10 flops, a ``tanh`` and a ``log`` per sample; called
layer by layer from Python, a K = 32 flow pays 32 times the call overhead of a dozen NumPy
operations on (N,) arrays. The chain kernel runs all K layers in one call, keeps every
intermediate its backward pass needs, and (with :mod:`._math`) vectorizes over the batch.

Layouts and shapes (N samples, D features, K layers):

* points ``z, x, dx, dz``: (N, D);
* parameters ``u, u_hat, w``: (K, D); ``b, c, one_plus_c``: (K,); ``constrain``: (K,) int64;
* caches: ``zs`` (K, D, N), the input of every layer, stored feature-major so that the loops over
  the samples are contiguous and vectorize; ``h`` (K, N); per-layer log-dets ``log_dets`` (K, N).

In the inverse direction the layers are undone last to first; index ``k`` always names layer k,
and ``xs[k]`` is the point *on the data side* of layer k (the input of its inverse). Totals are
summed in the order the layers are applied, as :class:`~nfscratch.flow.Flow` sums per-layer
log-dets.
"""
import math

import numpy as np
from numba import njit

from . import _checks as ck
from .._validate import MAX_ITERATIONS, check_positive_float, check_positive_int
from ._math import dot_v, log_v, sum_v, tanh_v

__all__ = ["planar_u_hat_nb", "planar_u_hat_backward_nb", "planar_chain_forward_nb",
           "planar_chain_backward_nb", "planar_chain_inverse_nb",
           "planar_chain_inverse_backward_nb"]

# error_model="numpy": x/0 gives inf/nan as in NumPy instead of a Python exception check, whose
# branch would stop the loops from vectorizing. fastmath={"contract"} only lets a*b + c become one
# fused multiply-add (see benchmarks/README.md); no reassociation, NaN/inf kept.
_JIT = dict(cache=True, error_model="numpy", fastmath={"contract"})

# ---------------------------------------------------------------------------------------------
# argument checks shared by the entries (every array against the others, before any loop)
# ---------------------------------------------------------------------------------------------
def _params(kernel, first, w, scalars, first_name="u_hat"):
    """Check ``first`` and ``w`` (K, D) and every ``(name, array)`` of ``scalars`` (K,)."""
    K, D = ck.f64(kernel, first_name, first, 2)
    ck.positive(kernel, f"{first_name}.shape[0] (K, the number of layers)", K)
    ck.same_shape(kernel, "w", ck.f64(kernel, "w", w, 2), (K, D), f"(K, D) like {first_name}")
    for name, s in scalars:
        ck.same_shape(kernel, name, ck.f64(kernel, name, s, 1), (K,),
                      f"(K,) with K = {first_name}.shape[0]")
    return K, D


def _batch(kernel, name, a, D):
    N, Da = ck.f64(kernel, name, a, 2)
    ck.positive(kernel, f"{name}.shape[0] (N)", N)
    ck.dim_equal(kernel, name, Da, D, "the number of features D of the parameters")
    return N


def _invertible(kernel, c, one_plus_c):
    # c <= -1 makes the map fold over itself: the log-det is NaN and the inverse is not unique
    if not (np.all(c > -1.0) and np.all(one_plus_c > 0.0)):
        k = int(np.argmin(one_plus_c))
        raise ValueError(f"{kernel}: c: expected every layer's c = w.u_hat > -1 (an invertible "
                         f"layer) and one_plus_c > 0, got c[{k}] = {float(c[k])!r} and "
                         f"one_plus_c[{k}] = {float(one_plus_c[k])!r}. Use the u_hat "
                         "reparameterization (constrain=True).")


def _pass_args(kernel, p_name, p, u_hat, w, b, c, one_plus_c):
    """The checks of a forward or inverse entry; returns ``(K, D, N)``."""
    K, D = _params(kernel, u_hat, w, (("b", b), ("c", c), ("one_plus_c", one_plus_c)))
    N = _batch(kernel, p_name, p, D)
    _invertible(kernel, c, one_plus_c)
    return K, D, N


def _backward_args(kernel, d_name, d_out, dlog_det, points_name, points, h, u_hat, w, c,
                   one_plus_c):
    """The checks of a backward entry: the upstream gradients against the pass's cache."""
    K, D = _params(kernel, u_hat, w, (("c", c), ("one_plus_c", one_plus_c)))
    N = _batch(kernel, d_name, d_out, D)
    ck.same_shape(kernel, "dlog_det", ck.f64(kernel, "dlog_det", dlog_det, 1), (N,),
                  f"(N,) with N = {d_name}.shape[0]")
    ck.same_shape(kernel, points_name, ck.f64(kernel, points_name, points, 3), (K, D, N),
                  "(K, D, N) of the pass")
    ck.same_shape(kernel, "h", ck.f64(kernel, "h", h, 2), (K, N), "(K, N) of the pass")


# ---------------------------------------------------------------------------------------------
# u -> u_hat for all K layers
# ---------------------------------------------------------------------------------------------
@njit(**_JIT)
def _u_hat(u, w, constrain):
    K, D = u.shape
    u_hat = np.empty((K, D))
    c = np.empty(K)
    one_plus_c = np.empty(K)
    for k in range(K):
        wu = 0.0
        w_sq = 0.0
        for d in range(D):
            wu += w[k, d] * u[k, d]
            w_sq += w[k, d] * w[k, d]
        scale = 0.0
        c[k] = wu
        one_plus_c[k] = 1.0 + wu
        if constrain[k] != 0 and w_sq > 0.0:
            sp = max(wu, 0.0) + math.log1p(math.exp(-abs(wu)))
            m = -1.0 + sp
            scale = (m - wu) / w_sq
            c[k] = m
            one_plus_c[k] = sp
        for d in range(D):
            u_hat[k, d] = u[k, d] + scale * w[k, d]
    return u_hat, c, one_plus_c

def planar_u_hat_nb(u, w, constrain):
    r"""The invertibility reparameterization of K layers at once.

    Twin: :func:`nfscratch.transforms.planar.planar_u_hat`, row by row.

    Parameters
    ----------
    u, w : ndarray, shape (K, D)
    constrain : ndarray of int64 {0, 1}, shape (K,)
        1: ``u_hat = u + (m(w.u) - w.u) w / |w|^2`` with ``m(s) = -1 + softplus(s)``;
        0: ``u_hat = u``. A layer with ``w = 0`` keeps ``u_hat = u``.

    Returns
    -------
    u_hat : ndarray, shape (K, D)
    c, one_plus_c : ndarray, shape (K,)
        ``c = w . u_hat`` and ``1 + c``, computed as ``softplus(w.u)`` for constrained layers.
    """
    K, D = _params("planar_u_hat_nb", u, w, (), first_name="u")
    ck.same_shape("planar_u_hat_nb", "constrain", ck.i64("planar_u_hat_nb", "constrain", constrain, 1),
                  (K,), "(K,) with K = u.shape[0]")
    return _u_hat(u, w, constrain)


@njit(**_JIT)
def _u_hat_backward(du_hat, dc, u, w, constrain):
    K, D = u.shape
    du = np.empty((K, D))
    dw = np.empty((K, D))
    for k in range(K):
        wu = 0.0
        w_sq = 0.0
        dk = 0.0
        for d in range(D):
            wu += w[k, d] * u[k, d]
            w_sq += w[k, d] * w[k, d]
            dk += du_hat[k, d] * w[k, d]
        if constrain[k] == 0:
            for d in range(D):
                du[k, d] = du_hat[k, d] + dc[k] * w[k, d]
                dw[k, d] = dc[k] * u[k, d]
        elif w_sq == 0.0:
            for d in range(D):
                du[k, d] = du_hat[k, d]
                dw[k, d] = 0.0
        else:
            e = math.exp(-abs(wu))
            m = -1.0 + max(wu, 0.0) + math.log1p(e)
            dm = 1.0 / (1.0 + e) if wu >= 0.0 else e / (1.0 + e)
            scale = (m - wu) / w_sq
            dwu = dc[k] * dm + dk * (dm - 1.0) / w_sq
            dw_sq = -dk * (m - wu) / w_sq ** 2
            for d in range(D):
                du[k, d] = du_hat[k, d] + dwu * w[k, d]
                dw[k, d] = scale * du_hat[k, d] + dwu * u[k, d] + 2.0 * dw_sq * w[k, d]
    return du, dw

def planar_u_hat_backward_nb(du_hat, dc, u, w, constrain):
    r"""Chain ``du_hat`` (K, D) and ``dc`` (K,) back through :func:`planar_u_hat_nb`.

    Twin: the ``u_hat`` part of :func:`nfscratch.transforms.planar.planar_backward`
    (``_u_hat_backward`` there), row by row.

    Returns
    -------
    du, dw : ndarray, shape (K, D)
        ``dw`` is only the part that flows through ``u_hat`` and ``c``; the caller adds the
        direct ``sum_n da_n z_n`` of the chain backward.
    """
    kernel = "planar_u_hat_backward_nb"
    K, D = _params(kernel, u, w, (("dc", dc),), first_name="u")
    ck.same_shape(kernel, "du_hat", ck.f64(kernel, "du_hat", du_hat, 2), (K, D), "(K, D) like u")
    ck.same_shape(kernel, "constrain", ck.i64(kernel, "constrain", constrain, 1), (K,),
                  "(K,) with K = u.shape[0]")
    return _u_hat_backward(du_hat, dc, u, w, constrain)


# ---------------------------------------------------------------------------------------------
# forward chain
# ---------------------------------------------------------------------------------------------
@njit(**_JIT)
def _chain_forward(z, u_hat, w, b, c, one_plus_c, zs, h, log_dets):
    # zs (K, D, N), h and log_dets (K, N): the outputs kept for the backward pass, passed in so
    # that a caller can reuse them from one pass to the next (fresh memory costs page faults)
    N, D = z.shape
    K = u_hat.shape[0]
    log_det = np.zeros(N)
    a = np.empty(N)
    zs[0] = z.T
    x_t = np.empty((D, N))          # the output of the last layer
    # Loops index 1-D row views (hk = h[k], ...): with 2-D indexing LLVM does not vectorize them.
    for k in range(K):
        zk = zs[k]
        nxt = zs[k + 1] if k + 1 < K else x_t      # each layer writes its output into the next
        a[:] = 0.0                                  # layer's slot of zs: no copy of the point
        for d in range(D):
            wd = w[k, d]
            zd = zk[d]
            for n in range(N):
                a[n] += wd * zd[n]
        opc = one_plus_c[k]
        bk = b[k]
        hk = h[k]
        ldk = log_dets[k]
        # the hot loops: tanh, then log, as two loops: LLVM vectorizes each, not their union
        for n in range(N):
            hk[n] = tanh_v(a[n] + bk)
        for n in range(N):
            hn = hk[n]
            ld = log_v(hn * hn + opc * (1.0 - hn * hn))
            ldk[n] = ld
            log_det[n] += ld
        for d in range(D):
            ud = u_hat[k, d]
            zd = zk[d]
            nd = nxt[d]
            for n in range(N):
                nd[n] = zd[n] + ud * hk[n]
    return np.ascontiguousarray(x_t.T), log_det, log_dets, zs, h

def planar_chain_forward_nb(z, u_hat, w, b, c, one_plus_c):
    r"""Apply K planar layers to ``z``: ``x = f_{K-1}(... f_0(z))``.

    Twin: :func:`nfscratch.transforms.planar.planar_forward` applied layer after layer.

    Parameters
    ----------
    z : ndarray, shape (N, D)
    u_hat, w : ndarray, shape (K, D)
    b, c, one_plus_c : ndarray, shape (K,)
        Biases, ``c = w . u_hat`` and ``1 + c`` (from :func:`planar_u_hat_nb`); every ``c > -1``.

    Returns
    -------
    x : ndarray, shape (N, D)
    log_det : ndarray, shape (N,)
        ``sum_k log q_k``, summed in layer order.
    log_dets : ndarray, shape (K, N)
        Per layer ``log q_k = log|det dz_{k+1}/dz_k|``.
    zs : ndarray, shape (K, D, N)
        The input of every layer (feature-major), for the backward pass.
    h : ndarray, shape (K, N)
        ``tanh(a_k)`` of every layer.

    Examples
    --------
    One layer with ``u_hat = w = (1, 0)``, ``b = 0``, so ``c = 1``:

    >>> z = np.array([[0.5, -1.0]])
    >>> u_hat = w = np.array([[1.0, 0.0]])
    >>> x, log_det, *_ = planar_chain_forward_nb(z, u_hat, w, np.zeros(1), np.ones(1),
    ...                                          np.full(1, 2.0))
    >>> np.round(x, 6).tolist(), np.round(log_det, 6).tolist()
    ([[0.962117, -1.0]], [0.580229])
    """
    K, D, N = _pass_args("planar_chain_forward_nb", "z", z, u_hat, w, b, c, one_plus_c)
    return _chain_forward(z, u_hat, w, b, c, one_plus_c, np.empty((K, D, N)), np.empty((K, N)),
                          np.empty((K, N)))


# ---------------------------------------------------------------------------------------------
# backward of the forward chain
# ---------------------------------------------------------------------------------------------
@njit(**_JIT)
def _chain_backward(dx, dlog_det, zs, h, u_hat, w, c, one_plus_c):
    N, D = dx.shape
    K = u_hat.shape[0]
    g = np.ascontiguousarray(dx.T)                    # (D, N)
    du_hat = np.empty((K, D))
    dw = np.empty((K, D))
    db = np.empty(K)
    dc = np.empty(K)
    da = np.empty(N)
    t = np.empty(N)                                   # (1 - h^2) / q, for dc
    for k in range(K - 1, -1, -1):
        ck_ = c[k]
        opc = one_plus_c[k]
        hk = h[k]
        for n in range(N):
            hn = hk[n]
            omh = 1.0 - hn * hn
            inv_q = 1.0 / (hn * hn + opc * omh)      # one division instead of two (cheaper)
            t[n] = omh * inv_q
            da[n] = -dlog_det[n] * 2.0 * hn * ck_ * inv_q
        for d in range(D):
            ud = u_hat[k, d]
            gd = g[d]
            for n in range(N):
                da[n] += ud * gd[n]
        for n in range(N):
            hn = hk[n]
            da[n] *= 1.0 - hn * hn
        dc[k] = dot_v(dlog_det, t)
        db[k] = sum_v(da)
        for d in range(D):
            gd = g[d]
            du_hat[k, d] = dot_v(gd, hk)
            dw[k, d] = dot_v(zs[k, d], da)
            wd = w[k, d]
            for n in range(N):
                gd[n] += wd * da[n]
    return np.ascontiguousarray(g.T), du_hat, dw, db, dc

def planar_chain_backward_nb(dx, dlog_det, zs, h, u_hat, w, c, one_plus_c):
    r"""Backpropagate through :func:`planar_chain_forward_nb`, last layer first.

    Twin: :func:`nfscratch.transforms.planar.planar_backward` applied from layer K-1 down to 0
    (its ``u_hat`` part is :func:`planar_u_hat_backward_nb`). Per layer, with running gradient
    ``g = dL/dz_{k+1}`` (D, N), ``dl = dlog_det`` (every layer gets the same one):

    .. math::

        dh = \hat u^\top g - dl\,\frac{2 h c}{q}, \quad da = dh (1 - h^2), \quad
        d\hat u = g h, \quad dc = dl \cdot \frac{1 - h^2}{q}, \quad dw = z_k\, da, \quad
        db = \textstyle\sum_n da_n, \quad g \leftarrow g + w\, da.

    Parameters
    ----------
    dx : ndarray, shape (N, D)
    dlog_det : ndarray, shape (N,)
    zs, h : ndarray, shapes (K, D, N) and (K, N)
        The caches of the forward pass.
    u_hat, w : ndarray, shape (K, D)
    c, one_plus_c : ndarray, shape (K,)

    Returns
    -------
    dz : ndarray, shape (N, D)
    du_hat, dw : ndarray, shape (K, D)
        ``dw`` is the direct part ``sum_n da_n z_n`` only.
    db, dc : ndarray, shape (K,)
    """
    _backward_args("planar_chain_backward_nb", "dx", dx, dlog_det, "zs", zs, h, u_hat, w, c,
                   one_plus_c)
    return _chain_backward(dx, dlog_det, zs, h, u_hat, w, c, one_plus_c)


# ---------------------------------------------------------------------------------------------
# inverse chain: K scalar root-finds per sample
# ---------------------------------------------------------------------------------------------
@njit(**_JIT)
def _chain_inverse(x, u_hat, w, b, c, one_plus_c, tol, max_iter, xs, h, log_dets):
    # xs (K, D, N), h and log_dets (K, N): outputs passed in, as in _chain_forward
    N, D = x.shape
    K = u_hat.shape[0]
    xt = np.ascontiguousarray(x.T)
    log_det = np.zeros(N)
    y = np.empty(N)
    a = np.empty(N)
    lo = np.empty(N)
    hi = np.empty(N)
    active = np.empty(N)                              # 1.0 while a sample still iterates
    n_failed = 0
    for k in range(K - 1, -1, -1):
        xs[k] = xt
        ck_ = c[k]
        opc = one_plus_c[k]
        y[:] = 0.0
        for d in range(D):
            wd = w[k, d]
            xd = xt[d]
            for n in range(N):
                y[n] += wd * xd[n]
        bk = b[k]
        for n in range(N):
            yn = y[n] + bk
            y[n] = yn
            lo[n] = yn - abs(ck_)
            hi[n] = yn + abs(ck_)
            finite = abs(yn) < math.inf
            a[n] = yn / (1.0 + max(ck_, 0.0)) if finite else math.nan
            active[n] = 1.0 if finite else 0.0
        converged = False
        for _ in range(max_iter):
            # one Newton round over the whole batch, written with selects so that it vectorizes
            # (only single comparisons inside the selects: "and"/"or" would branch)
            n_active = 0                              # an integer sum: it vectorizes
            for n in range(N):
                an = a[n]
                yn = y[n]
                th = tanh_v(an)
                f = an + ck_ * th - yn
                done = abs(f) <= tol * (1.0 + abs(yn))
                act = 0.0 if done else active[n]
                active[n] = act
                n_active += 1 if act > 0.0 else 0
                lo_f = an if f < 0.0 else lo[n]
                hi_f = an if f > 0.0 else hi[n]
                lo_n = lo_f if act > 0.0 else lo[n]
                hi_n = hi_f if act > 0.0 else hi[n]
                lo[n] = lo_n
                hi[n] = hi_n
                a_newton = an - f / (th * th + opc * (1.0 - th * th))
                a_mid = 0.5 * (lo_n + hi_n)
                a_next = a_newton if a_newton > lo_n else a_mid
                a_next = a_next if a_newton < hi_n else a_mid
                a[n] = a_next if act > 0.0 else an
            if n_active == 0:
                converged = True
                break
        if not converged:
            for n in range(N):
                n_failed += int(active[n])
        # polish, tanh and log as separate loops: LLVM vectorizes each of them, not their union
        for n in range(N):
            an = a[n]
            th = tanh_v(an)
            a_polished = an - (an + ck_ * th - y[n]) / (th * th + opc * (1.0 - th * th))
            a[n] = a_polished if abs(a_polished) < math.inf else an
        hk = h[k]
        ldk = log_dets[k]
        for n in range(N):
            hk[n] = tanh_v(a[n])
        for n in range(N):
            hn = hk[n]
            ld = -log_v(hn * hn + opc * (1.0 - hn * hn))
            ldk[n] = ld
            log_det[n] += ld
        for d in range(D):
            ud = u_hat[k, d]
            xd = xt[d]
            for n in range(N):
                xd[n] -= ud * hk[n]
    return np.ascontiguousarray(xt.T), log_det, log_dets, xs, h, n_failed

def planar_chain_inverse_nb(x, u_hat, w, b, c, one_plus_c, tol, max_iter):
    r"""Undo K planar layers, last to first, by a safeguarded Newton root-find per sample.

    Twin: :func:`nfscratch.transforms.planar.planar_inverse` (its root-find
    :func:`~nfscratch.transforms.planar.solve_planar_a`) applied from layer K-1 down to 0. The
    iteration is the same; here each sample stops once its own residual is below
    ``tol (1 + |y|)`` instead of when all have converged, and after the polishing Newton step
    both agree to rounding. A non-finite ``y`` (a diverging fit upstream) gives ``a = NaN`` and
    does not count as a failure.

    Parameters
    ----------
    x : ndarray, shape (N, D)
    u_hat, w : ndarray, shape (K, D)
    b, c, one_plus_c : ndarray, shape (K,)
        Every ``c > -1`` (else the layer is not invertible: ValueError).
    tol : float
        Positive and finite.
    max_iter : int
        In ``1 .. nfscratch._validate.MAX_ITERATIONS``.

    Returns
    -------
    z : ndarray, shape (N, D)
    log_det : ndarray, shape (N,)
        ``sum_k -log q_k``, summed from layer K-1 down to 0 (the order of application).
    log_dets : ndarray, shape (K, N)
    xs : ndarray, shape (K, D, N)
        The data-side point of every layer (the input of its inverse).
    h : ndarray, shape (K, N)
    n_failed : int
        Number of (layer, sample) root-finds that did not converge in ``max_iter`` steps
        (the caller raises when it is not 0).
    """
    kernel = "planar_chain_inverse_nb"
    K, D, N = _pass_args(kernel, "x", x, u_hat, w, b, c, one_plus_c)
    tol = check_positive_float(tol, f"{kernel}: tol")
    max_iter = check_positive_int(max_iter, f"{kernel}: max_iter", maximum=MAX_ITERATIONS)
    return _chain_inverse(x, u_hat, w, b, c, one_plus_c, tol, max_iter, np.empty((K, D, N)),
                          np.empty((K, N)), np.empty((K, N)))


# ---------------------------------------------------------------------------------------------
# backward of the inverse chain (implicit differentiation of the root-find)
# ---------------------------------------------------------------------------------------------
@njit(**_JIT)
def _chain_inverse_backward(dz, dlog_det, xs, h, u_hat, w, c, one_plus_c):
    N, D = dz.shape
    K = u_hat.shape[0]
    g = np.ascontiguousarray(dz.T)
    du_hat = np.empty((K, D))
    dw = np.empty((K, D))
    db = np.empty(K)
    dc = np.empty(K)
    r = np.empty(N)
    t = np.empty(N)
    for k in range(K):
        ck_ = c[k]
        opc = one_plus_c[k]
        hk = h[k]
        for n in range(N):
            hn = hk[n]
            omh = 1.0 - hn * hn
            q = hn * hn + opc * omh
            t[n] = omh / q
            r[n] = dlog_det[n] * 2.0 * hn * ck_ / q
        for d in range(D):
            ud = u_hat[k, d]
            gd = g[d]
            for n in range(N):
                r[n] -= ud * gd[n]
        for n in range(N):
            r[n] *= t[n]
        dc[k] = -dot_v(dlog_det, t) - dot_v(r, hk)
        db[k] = sum_v(r)
        for d in range(D):
            gd = g[d]
            du_hat[k, d] = -dot_v(gd, hk)
            dw[k, d] = dot_v(xs[k, d], r)
            wd = w[k, d]
            for n in range(N):
                gd[n] += wd * r[n]
    return np.ascontiguousarray(g.T), du_hat, dw, db, dc

def planar_chain_inverse_backward_nb(dz, dlog_det, xs, h, u_hat, w, c, one_plus_c):
    r"""Backpropagate through :func:`planar_chain_inverse_nb`, layer 0 first.

    Twin: :func:`nfscratch.transforms.planar.planar_inverse_backward` applied from layer 0 up.
    Per layer, with running gradient ``g = dL/dz`` on the base side of layer k (D, N):

    .. math::

        dh = -\hat u^\top g + dl\,\frac{2 h c}{q}, \quad r = dh\,\frac{1 - h^2}{q}, \quad
        d\hat u = -g h, \quad dc = -dl \cdot \frac{1 - h^2}{q} - r \cdot h, \quad
        dw = x_k\, r, \quad db = \textstyle\sum_n r_n, \quad g \leftarrow g + w\, r,

    where ``r`` is the adjoint of ``a`` divided by ``q`` (implicit-function theorem on
    ``a + c tanh a = w.x + b``).

    Returns
    -------
    dx : ndarray, shape (N, D)
    du_hat, dw : ndarray, shape (K, D)
        ``dw`` is the direct part ``sum_n r_n x_n`` only.
    db, dc : ndarray, shape (K,)
    """
    _backward_args("planar_chain_inverse_backward_nb", "dz", dz, dlog_det, "xs", xs, h, u_hat, w,
                   c, one_plus_c)
    return _chain_inverse_backward(dz, dlog_det, xs, h, u_hat, w, c, one_plus_c)
