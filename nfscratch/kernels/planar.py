r"""Kernels for a whole chain of K planar layers: forward, backward, inverse, inverse backward.

Each public function exists twice with the same signature and the same result (to ~1e-13):
``<name>_ref`` in vectorized NumPy, the readable spec, and ``<name>_nb``, which checks its
arguments (:mod:`._checks`) and runs a Numba kernel. The math is the one of
:mod:`nfscratch.transforms.planar` (see its docstring); here it is applied to K layers at once,
layer ``k`` having ``u_hat[k], w[k], b[k]`` and ``c[k] = w[k] . u_hat[k]``:

.. math::

    a_k = w_k^\top z_{k} + b_k, \quad h_k = \tanh a_k, \quad q_k = 1 + c_k (1 - h_k^2), \quad
    z_{k+1} = z_k + \hat u_k h_k, \quad \log|\det| = \textstyle\sum_k \log q_k .

Why a chain kernel. One planar layer is ~10 flops, a ``tanh`` and a ``log`` per sample: called
layer by layer from Python, a K = 32 flow pays 32 times the call and allocation overhead of a
dozen NumPy operations on (N,) arrays. The chain kernel runs all K layers in one call, keeps every
intermediate it needs for the backward pass, and (with :mod:`._math`) vectorizes over the batch.

Layouts and shapes (N samples, D features, K layers):

* public inputs/outputs ``z, x, dx, dz``: (N, D), C-contiguous float64;
* parameters ``u_hat, w``: (K, D); ``b, c``: (K,);
* caches: ``zs`` (K, D, N), the input of every layer, stored feature-major so that the loops over
  the samples are contiguous and vectorize; ``h`` (K, N); per-layer log-dets ``log_dets`` (K, N).

In the inverse direction the layers are undone last to first; index ``k`` always names layer k of
the chain, and ``xs[k]`` is the point *on the data side* of layer k (the input of its inverse).
Totals are summed in the order the layers are applied, exactly as :class:`~nfscratch.flow.Flow`
sums per-layer log-dets, so the chain and a layer-by-layer pass give identical numbers.
"""
import math

import numpy as np
from numba import njit

from . import _checks as ck
from ._math import dot_v, log_v, sum_v, tanh_v

__all__ = ["planar_u_hat_ref", "planar_u_hat_nb", "planar_u_hat_backward_ref",
           "planar_u_hat_backward_nb", "planar_chain_forward_ref", "planar_chain_forward_nb",
           "planar_chain_backward_ref", "planar_chain_backward_nb", "planar_chain_inverse_ref",
           "planar_chain_inverse_nb", "planar_chain_inverse_backward_ref",
           "planar_chain_inverse_backward_nb"]

# error_model="numpy": x/0 gives inf/nan as in NumPy instead of a Python exception check, whose
# branch would stop the loops from vectorizing. fastmath={"contract"} only lets a*b + c become one
# fused multiply-add (1.5x on the tanh/log loops, measured); no reassociation, NaN/inf kept.
_JIT = dict(cache=True, error_model="numpy", fastmath={"contract"})


# ---------------------------------------------------------------------------------------------
# argument checks shared by both twins
# ---------------------------------------------------------------------------------------------
def _check_params(kernel, u_or_uhat, w, *scalars, uname="u_hat", snames=("b", "c", "one_plus_c")):
    K, D = ck.f64(kernel, uname, u_or_uhat, 2)
    ck.positive(kernel, f"{uname}.shape[0] (K, the number of layers)", K)
    ck.same_shape(kernel, "w", ck.f64(kernel, "w", w, 2), (K, D), f"(K, D) like {uname}")
    for name, s in zip(snames, scalars):
        ck.same_shape(kernel, name, ck.f64(kernel, name, s, 1), (K,), f"(K,) with K = {uname}.shape[0]")
    return K, D


def _check_batch(kernel, name, a, D):
    N, Da = ck.f64(kernel, name, a, 2)
    ck.positive(kernel, f"{name}.shape[0] (N)", N)
    ck.dim_equal(kernel, name, Da, D, "the number of features D of the parameters")
    return N


def _check_cache(kernel, K, N, D, dlog_det, zs, h, zs_name):
    ck.same_shape(kernel, "dlog_det", ck.f64(kernel, "dlog_det", dlog_det, 1), (N,), "(N,)")
    ck.same_shape(kernel, zs_name, ck.f64(kernel, zs_name, zs, 3), (K, D, N), "(K, D, N)")
    ck.same_shape(kernel, "h", ck.f64(kernel, "h", h, 2), (K, N), "(K, N)")


# ---------------------------------------------------------------------------------------------
# u -> u_hat for all K layers
# ---------------------------------------------------------------------------------------------
def _check_u_hat(kernel, u, w, constrain):
    K, D = _check_params(kernel, u, w, uname="u")
    ck.same_shape(kernel, "constrain", ck.i64(kernel, "constrain", constrain, 1), (K,), "(K,)")
    return K, D


def planar_u_hat_ref(u, w, constrain):
    r"""Invertibility reparameterization of K layers at once.

    Parameters
    ----------
    u, w : ndarray, shape (K, D)
    constrain : ndarray of int64 {0, 1}, shape (K,)
        1: ``u_hat = u + (m(w.u) - w.u) w / |w|^2`` with ``m(s) = -1 + softplus(s)``;
        0: ``u_hat = u``. A layer with ``w = 0`` keeps ``u_hat = u``.

    Returns
    -------
    u_hat : ndarray, shape (K, D)
    c : ndarray, shape (K,)
        ``w . u_hat`` (> -1 for constrained layers).
    one_plus_c : ndarray, shape (K,)
        ``1 + c``, computed as ``softplus(w.u)`` for constrained layers: when ``w.u << 0``,
        ``c`` rounds to -1 and ``1 + c`` would lose every digit (see
        :func:`nfscratch.transforms.planar.planar_u_hat`).
    """
    _check_u_hat("planar_u_hat_ref", u, w, constrain)
    wu = np.sum(w * u, axis=1)                                  # (K,)
    w_sq = np.sum(w * w, axis=1)                                # (K,)
    sp = np.maximum(wu, 0.0) + np.log1p(np.exp(-np.abs(wu)))    # softplus(wu)
    m = -1.0 + sp
    fix = (constrain != 0) & (w_sq > 0.0)
    k = np.where(fix, (m - wu) / np.where(fix, w_sq, 1.0), 0.0)  # (K,)
    return u + k[:, None] * w, np.where(fix, m, wu), np.where(fix, sp, 1.0 + wu)


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
    """Numba twin of :func:`planar_u_hat_ref`."""
    _check_u_hat("planar_u_hat_nb", u, w, constrain)
    return _u_hat(u, w, constrain)


def _check_u_hat_backward(kernel, du_hat, dc, u, w, constrain):
    K, D = _check_u_hat(kernel, u, w, constrain)
    ck.same_shape(kernel, "du_hat", ck.f64(kernel, "du_hat", du_hat, 2), (K, D), "(K, D) like u")
    ck.same_shape(kernel, "dc", ck.f64(kernel, "dc", dc, 1), (K,), "(K,)")


def planar_u_hat_backward_ref(du_hat, dc, u, w, constrain):
    r"""Chain ``du_hat`` (K, D) and ``dc`` (K,) back through :func:`planar_u_hat_ref`.

    With ``s = w.u``, ``m = -1 + softplus(s)``, ``k = (m - s)/|w|^2``, ``u_hat = u + k w`` and
    ``c = m``: ``dk = du_hat . w``, ``ds = dc m'(s) + dk (m'(s) - 1)/|w|^2`` with
    ``m' = sigmoid``, ``d|w|^2 = -dk (m - s)/|w|^4``, then ``du = du_hat + ds w`` and
    ``dw = k du_hat + ds u + 2 d|w|^2 w``. Unconstrained: ``du = du_hat + dc w``, ``dw = dc u``.

    Returns
    -------
    du, dw : ndarray, shape (K, D)
        ``dw`` is only the part that flows through ``u_hat`` and ``c``; the caller adds the
        direct ``sum_n da_n z_n`` of the chain backward.
    """
    _check_u_hat_backward("planar_u_hat_backward_ref", du_hat, dc, u, w, constrain)
    wu = np.sum(w * u, axis=1)
    w_sq = np.sum(w * w, axis=1)
    fix = (constrain != 0) & (w_sq > 0.0)
    safe_w_sq = np.where(fix, w_sq, 1.0)
    m = -1.0 + np.maximum(wu, 0.0) + np.log1p(np.exp(-np.abs(wu)))
    e = np.exp(-np.abs(wu))
    dm = np.where(wu >= 0.0, 1.0 / (1.0 + e), e / (1.0 + e))   # sigmoid(wu)
    k = (m - wu) / safe_w_sq
    dk = np.sum(du_hat * w, axis=1)
    dwu = dc * dm + dk * (dm - 1.0) / safe_w_sq
    dw_sq = -dk * (m - wu) / safe_w_sq ** 2
    du_fix = du_hat + dwu[:, None] * w
    dw_fix = k[:, None] * du_hat + dwu[:, None] * u + 2.0 * dw_sq[:, None] * w
    free = (constrain == 0)[:, None]                 # unconstrained: u_hat = u, c = w.u
    du = np.where(fix[:, None], du_fix, np.where(free, du_hat + dc[:, None] * w, du_hat))
    dw = np.where(fix[:, None], dw_fix, np.where(free, dc[:, None] * u, 0.0))
    return du, dw


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
    """Numba twin of :func:`planar_u_hat_backward_ref`."""
    _check_u_hat_backward("planar_u_hat_backward_nb", du_hat, dc, u, w, constrain)
    return _u_hat_backward(du_hat, dc, u, w, constrain)


# ---------------------------------------------------------------------------------------------
# forward chain
# ---------------------------------------------------------------------------------------------
def planar_chain_forward_ref(z, u_hat, w, b, c, one_plus_c):
    r"""Apply K planar layers to ``z``: ``x = f_{K-1}(... f_0(z))``.

    Parameters
    ----------
    z : ndarray, shape (N, D)
    u_hat, w : ndarray, shape (K, D)
    b, c : ndarray, shape (K,)
        Biases, ``c_k = w_k . u_hat_k`` and ``one_plus_c`` (from :func:`planar_u_hat_ref`).
        ``q_k = 1 + c_k (1 - h_k^2)`` is evaluated as ``h_k^2 + (1 + c_k)(1 - h_k^2)``.

    Returns
    -------
    x : ndarray, shape (N, D)
    log_det : ndarray, shape (N,)
        ``sum_k log q_k``, summed in layer order starting from 0.
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
    >>> x, log_det, *_ = planar_chain_forward_ref(z, u_hat, w, np.zeros(1), np.ones(1),
    ...                                           np.full(1, 2.0))
    >>> np.round(x, 6).tolist(), np.round(log_det, 6).tolist()
    ([[0.962117, -1.0]], [0.580229])
    """
    K, D = _check_params("planar_chain_forward_ref", u_hat, w, b, c, one_plus_c)
    N = _check_batch("planar_chain_forward_ref", "z", z, D)
    zt = z.T.copy()                                   # (D, N)
    zs = np.empty((K, D, N))
    h = np.empty((K, N))
    log_dets = np.empty((K, N))
    log_det = np.zeros(N)
    for k in range(K):
        zs[k] = zt
        a = w[k] @ zt + b[k]                          # (N,)
        h[k] = np.tanh(a)
        log_dets[k] = np.log(h[k] * h[k] + one_plus_c[k] * (1.0 - h[k] * h[k]))
        log_det += log_dets[k]
        zt = zt + u_hat[k][:, None] * h[k]            # (D, N)
    return np.ascontiguousarray(zt.T), log_det, log_dets, zs, h


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
    """Numba twin of :func:`planar_chain_forward_ref`."""
    K, D = _check_params("planar_chain_forward_nb", u_hat, w, b, c, one_plus_c)
    N = _check_batch("planar_chain_forward_nb", "z", z, D)
    return _chain_forward(z, u_hat, w, b, c, one_plus_c, np.empty((K, D, N)), np.empty((K, N)),
                          np.empty((K, N)))


# ---------------------------------------------------------------------------------------------
# backward of the forward chain
# ---------------------------------------------------------------------------------------------
def _check_backward(kernel, dx, dlog_det, zs, h, u_hat, w, c, one_plus_c, dx_name="dx", zs_name="zs"):
    K, D = _check_params(kernel, u_hat, w, c, one_plus_c, snames=("c", "one_plus_c"))
    N = _check_batch(kernel, dx_name, dx, D)
    _check_cache(kernel, K, N, D, dlog_det, zs, h, zs_name)


def planar_chain_backward_ref(dx, dlog_det, zs, h, u_hat, w, c, one_plus_c):
    r"""Backpropagate through :func:`planar_chain_forward_ref`, last layer first.

    Per layer, with running gradient ``g = dL/dz_{k+1}`` (D, N), ``dl = dlog_det`` (every layer
    gets the same one), ``q = 1 + c(1 - h^2)``:

    .. math::

        dh = \hat u^\top g - dl\,\frac{2 h c}{q}, \quad da = dh (1 - h^2), \quad
        d\hat u = g h, \quad dc = dl \cdot \frac{1 - h^2}{q}, \quad dw = z_k\, da, \quad
        db = \textstyle\sum_n da_n, \quad g \leftarrow g + w\, da.

    Parameters
    ----------
    dx : ndarray, shape (N, D)
        dL/dx at the output of the chain.
    dlog_det : ndarray, shape (N,)
    zs, h : caches of the forward pass, shapes (K, D, N) and (K, N)
    u_hat, w : ndarray, shape (K, D)
    c : ndarray, shape (K,)

    Returns
    -------
    dz : ndarray, shape (N, D)
    du_hat, dw : ndarray, shape (K, D)
        ``dw`` is the direct part ``sum_n da_n z_n`` only (see
        :func:`planar_u_hat_backward_ref` for the rest).
    db, dc : ndarray, shape (K,)
    """
    _check_backward("planar_chain_backward_ref", dx, dlog_det, zs, h, u_hat, w, c, one_plus_c)
    K, D = u_hat.shape
    g = dx.T.copy()                                   # (D, N)
    du_hat, dw = np.empty((K, D)), np.empty((K, D))
    db, dc = np.empty(K), np.empty(K)
    for k in reversed(range(K)):
        one_m_h2 = 1.0 - h[k] * h[k]
        q = h[k] * h[k] + one_plus_c[k] * one_m_h2
        dh = u_hat[k] @ g - dlog_det * 2.0 * h[k] * c[k] / q
        da = dh * one_m_h2                            # (N,)
        du_hat[k] = g @ h[k]
        dc[k] = dlog_det @ (one_m_h2 / q)
        dw[k] = zs[k] @ da
        db[k] = da.sum()
        g = g + w[k][:, None] * da
    return np.ascontiguousarray(g.T), du_hat, dw, db, dc


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
            inv_q = 1.0 / (hn * hn + opc * omh)      # one division instead of two: 14% faster
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
    """Numba twin of :func:`planar_chain_backward_ref`."""
    _check_backward("planar_chain_backward_nb", dx, dlog_det, zs, h, u_hat, w, c, one_plus_c)
    return _chain_backward(dx, dlog_det, zs, h, u_hat, w, c, one_plus_c)


# ---------------------------------------------------------------------------------------------
# inverse chain: K scalar root-finds per sample
# ---------------------------------------------------------------------------------------------
def _check_inverse(kernel, x, u_hat, w, b, c, one_plus_c, tol, max_iter):
    K, D = _check_params(kernel, u_hat, w, b, c, one_plus_c)
    _check_batch(kernel, "x", x, D)
    if not (isinstance(tol, float) and tol > 0.0):
        raise TypeError(f"{kernel}: tol: expected a positive float, got {tol!r}.")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise TypeError(f"{kernel}: max_iter: expected a positive int, got {max_iter!r}.")


def planar_chain_inverse_ref(x, u_hat, w, b, c, one_plus_c, tol, max_iter):
    r"""Undo K planar layers, last to first, by a safeguarded Newton root-find per sample.

    For each layer, ``y = w.x + b`` and ``a`` solves ``a + c tanh(a) = y`` (strictly increasing
    in ``a`` when ``c > -1``); the root lies in ``[y - |c|, y + |c|]``. Newton steps that leave
    the current bracket are replaced by bisection; the slope ``1 + c(1 - h^2)`` is evaluated as
    ``h^2 + (1 + c)(1 - h^2)``. A sample stops iterating once
    ``|a + c tanh a - y| <= tol (1 + |y|)``, then every root gets one polishing Newton step
    (kept where it is finite). A non-finite ``y`` (a diverging fit upstream) gives ``a = NaN``
    and does not count as a failure. This is the iteration of
    :func:`nfscratch.transforms.planar.solve_planar_a`, which stops when all samples have
    converged instead of each on its own; after the polishing step the two agree to rounding.
    Then ``z = x - u_hat tanh(a)``.

    Parameters
    ----------
    x : ndarray, shape (N, D)
    u_hat, w : ndarray, shape (K, D)
    b, c, one_plus_c : ndarray, shape (K,)
    tol : float
    max_iter : int

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
    _check_inverse("planar_chain_inverse_ref", x, u_hat, w, b, c, one_plus_c, tol, max_iter)
    K, D = u_hat.shape
    N = x.shape[0]
    xt = x.T.copy()                                   # (D, N)
    xs, h = np.empty((K, D, N)), np.empty((K, N))
    log_dets, log_det = np.empty((K, N)), np.zeros(N)
    n_failed = 0
    with np.errstate(divide="ignore", invalid="ignore"):
        for k in reversed(range(K)):
            xs[k] = xt
            y = w[k] @ xt + b[k]                      # (N,) = a + c tanh(a)
            ck_, opc = c[k], one_plus_c[k]
            lo, hi = y - abs(ck_), y + abs(ck_)
            finite = np.abs(y) < np.inf
            a = np.where(finite, y / (1.0 + max(ck_, 0.0)), np.nan)
            active = finite.copy()
            for _ in range(max_iter):
                th = np.tanh(a)
                f = a + ck_ * th - y
                active &= ~(np.abs(f) <= tol * (1.0 + np.abs(y)))
                if not active.any():
                    break
                lo = np.where(active & (f < 0), a, lo)
                hi = np.where(active & (f > 0), a, hi)
                a_newton = a - f / (th * th + opc * (1.0 - th * th))
                inside = (a_newton > lo) & (a_newton < hi)
                a = np.where(active, np.where(inside, a_newton, 0.5 * (lo + hi)), a)
            else:
                n_failed += int(active.sum())
            th = np.tanh(a)
            a_polished = a - (a + ck_ * th - y) / (th * th + opc * (1.0 - th * th))
            a = np.where(np.abs(a_polished) < np.inf, a_polished, a)
            h[k] = np.tanh(a)
            log_dets[k] = -np.log(h[k] * h[k] + opc * (1.0 - h[k] * h[k]))
            log_det += log_dets[k]
            xt = xt - u_hat[k][:, None] * h[k]
    return np.ascontiguousarray(xt.T), log_det, log_dets, xs, h, n_failed


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
    """Numba twin of :func:`planar_chain_inverse_ref`."""
    _check_inverse("planar_chain_inverse_nb", x, u_hat, w, b, c, one_plus_c, tol, max_iter)
    (K, D), N = u_hat.shape, x.shape[0]
    return _chain_inverse(x, u_hat, w, b, c, one_plus_c, tol, max_iter, np.empty((K, D, N)),
                          np.empty((K, N)), np.empty((K, N)))


# ---------------------------------------------------------------------------------------------
# backward of the inverse chain (implicit differentiation of the root-find)
# ---------------------------------------------------------------------------------------------
def planar_chain_inverse_backward_ref(dz, dlog_det, xs, h, u_hat, w, c, one_plus_c):
    r"""Backpropagate through :func:`planar_chain_inverse_ref`, layer 0 first.

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
    _check_backward("planar_chain_inverse_backward_ref", dz, dlog_det, xs, h, u_hat, w, c,
                    one_plus_c, dx_name="dz", zs_name="xs")
    K, D = u_hat.shape
    g = dz.T.copy()                                   # (D, N)
    du_hat, dw = np.empty((K, D)), np.empty((K, D))
    db, dc = np.empty(K), np.empty(K)
    for k in range(K):
        one_m_h2 = 1.0 - h[k] * h[k]
        q = h[k] * h[k] + one_plus_c[k] * one_m_h2
        dh = -(u_hat[k] @ g) + dlog_det * 2.0 * h[k] * c[k] / q
        du_hat[k] = -(g @ h[k])
        r = dh * one_m_h2 / q                         # (N,)
        dc[k] = -(dlog_det @ (one_m_h2 / q)) - r @ h[k]
        dw[k] = xs[k] @ r
        db[k] = r.sum()
        g = g + w[k][:, None] * r
    return np.ascontiguousarray(g.T), du_hat, dw, db, dc


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
    """Numba twin of :func:`planar_chain_inverse_backward_ref`."""
    _check_backward("planar_chain_inverse_backward_nb", dz, dlog_det, xs, h, u_hat, w, c,
                    one_plus_c, dx_name="dz", zs_name="xs")
    return _chain_inverse_backward(dz, dlog_det, xs, h, u_hat, w, c, one_plus_c)


# ---------------------------------------------------------------------------------------------
# without the checks, for the chain path of nfscratch.transforms.planar
# ---------------------------------------------------------------------------------------------
# A K = 32 chain pass makes ~25 argument checks per training step (~0.5 us each, a tenth of the
# Python time of the step). The chain path builds every parameter array itself (u, w, b,
# constrain from the layers; u_hat, c, one_plus_c and the caches from these kernels), so it
# checks only what comes from outside -- the batch and the upstream gradients, their dtype,
# contiguity and shape -- and calls the compiled kernels directly. The forward and inverse
# kernels then take the arrays they keep for the backward pass as arguments (zs or xs (K, D, N),
# h and log_dets (K, N), C-contiguous), which the chain path reuses from pass to pass.
planar_u_hat_unchecked = _u_hat
planar_u_hat_backward_unchecked = _u_hat_backward
planar_chain_forward_unchecked = _chain_forward
planar_chain_backward_unchecked = _chain_backward
planar_chain_inverse_unchecked = _chain_inverse
planar_chain_inverse_backward_unchecked = _chain_inverse_backward
