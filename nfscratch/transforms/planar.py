r"""Planar flow (Rezende & Mohamed, 2015): a hyperplane-shaped bump added to the identity.

Notes
-----
Forward map (generative direction), for one sample ``z`` of dimension D:

.. math::

    a = w^\top z + b, \qquad x = z + \hat u \tanh(a).

Its Jacobian is the identity plus a rank-one matrix, ``I + \hat u\, \psi^\top`` with
``\psi = (1 - \tanh^2 a)\, w``, so by the matrix determinant lemma

.. math:: \log|\det \partial x / \partial z| = \log|1 + c\,(1 - \tanh^2 a)|, \qquad c = w^\top \hat u,

an O(D) log-det instead of O(D^3).

Invertibility. ``x(z)`` is invertible iff ``c >= -1``. The free parameter ``u`` is mapped to

.. math:: \hat u = u + \frac{m(w^\top u) - w^\top u}{\|w\|^2} w, \qquad m(s) = -1 + \log(1 + e^s),

so that ``c = w^\top \hat u = m(w^\top u) > -1`` whatever ``u`` and ``w`` are.

Inverse. Project ``x`` on ``w``: ``w^\top x + b = a + c \tanh(a)``. The right side is strictly
increasing in ``a`` (its slope ``1 + c(1 - \tanh^2 a) > 0``), and ``a`` lies in
``[y - |c|, y + |c|]`` with ``y = w^\top x + b``, so a safeguarded Newton iteration on that bracket
finds it to ~1e-13; then ``z = x - \hat u \tanh(a)``. There is no closed form.

Backward (forward direction), with ``h = tanh(a)``, ``q = 1 + c(1 - h^2)`` and upstream
``dx`` (N, D), ``dl`` (N,) = dL/dlog_det:

.. math::

    dh = dx\cdot\hat u - dl\,\frac{2hc}{q}, \quad da = dh\,(1 - h^2), \quad
    dz = dx + da\, w,

    dw \mathrel{+}= \textstyle\sum_n da_n z_n, \quad db = \sum_n da_n, \quad
    d\hat u = \sum_n h_n dx_n, \quad dc = \sum_n dl_n (1 - h_n^2)/q_n,

then ``d\hat u`` and ``dc`` flow back into ``u`` and ``w`` through the reparameterization.

Backward of the inverse. ``a`` is defined implicitly by ``a + c\tanh a = w^\top x + b``; the
implicit-function theorem gives ``q\, \delta a = w^\top \delta x + x^\top \delta w + \delta b - h\,\delta c``.
So an adjoint ``da`` becomes ``r = da / q`` and contributes ``r\,w`` to ``dx``, ``\sum r x`` to
``dw``, ``\sum r`` to ``db`` and ``-\sum r h`` to ``dc``.

References
----------
Rezende, Mohamed, "Variational Inference with Normalizing Flows", ICML 2015, arXiv:1505.05770
(Eq. 10-12 and Appendix A.1 for the invertibility condition).
"""
import operator

import numpy as np

from ..kernels._checks import packed_view
from ..nn import sigmoid, softplus
from .._validate import as_rng
from ..config import get_backend
from .base import Transform

__all__ = ["planar_u_hat", "planar_forward", "planar_backward", "planar_inverse",
           "planar_inverse_backward", "Planar"]

NEWTON_TOL = 1e-13
NEWTON_MAX_ITER = 100


# ---------------------------------------------------------------------------------------------
# the reparameterization u -> u_hat, shared by both directions
# ---------------------------------------------------------------------------------------------
def planar_u_hat(u, w, constrain=True):
    """Return ``(u_hat, c, one_plus_c, cache)`` with ``c = w . u_hat``.

    ``one_plus_c = 1 + c`` is returned separately because it is computed exactly as
    ``softplus(w.u)``: when ``w.u << 0``, ``c = -1 + softplus(w.u)`` rounds to -1 in floating
    point, and ``1 + c(1 - h^2)`` would lose every digit; written as ``h^2 + (1 + c)(1 - h^2)`` it
    stays accurate and positive (down to ``w.u ~ -745``, where ``softplus`` itself underflows to 0
    and the layer is no longer invertible in float64). ``constrain=False`` uses ``u`` as is.
    """
    wu = float(w @ u)
    if not constrain:
        return u.copy(), wu, 1.0 + wu, (u, w, wu, None, None, constrain)
    w_sq = float(w @ w)
    sp = float(softplus(wu))
    if w_sq == 0.0:
        # u_hat is singular at w = 0 (it grows like w / |w|^2 as w -> 0, while the map becomes
        # x = z + u_hat tanh(b)); exactly at 0 we keep u, and gradients there are not meaningful
        return u.copy(), wu, 1.0 + wu, (u, w, wu, w_sq, 0.0, constrain)
    m = -1.0 + sp
    k = (m - wu) / w_sq
    return u + k * w, m, sp, (u, w, wu, w_sq, k, constrain)


def _u_hat_backward(du_hat, dc, cache):
    """Chain ``du_hat`` (D,) and ``dc`` (scalar) back to ``(du, dw)``."""
    u, w, wu, w_sq, k, constrain = cache
    if not constrain:  # u_hat = u, c = w . u
        return du_hat + dc * w, dc * u
    if w_sq == 0.0:
        return du_hat.copy(), np.zeros_like(w)
    m = -1.0 + float(softplus(wu))
    dm = float(sigmoid(wu))                 # m'(wu)
    dk = float(du_hat @ w)                  # u_hat = u + k w
    dwu = dc * dm + dk * (dm - 1.0) / w_sq  # c = m(wu);  k = (m(wu) - wu) / |w|^2
    dw_sq = -dk * (m - wu) / w_sq ** 2
    du = du_hat + dwu * w
    dw = k * du_hat + dwu * u + 2.0 * dw_sq * w
    return du, dw


# ---------------------------------------------------------------------------------------------
# forward direction
# ---------------------------------------------------------------------------------------------
def planar_forward(z, u, w, b, constrain=True):
    """Planar map ``x = z + u_hat tanh(w.z + b)``.

    Parameters
    ----------
    z : ndarray, shape (N, D)
    u, w : ndarray, shape (D,)
    b : ndarray, shape (1,)
    constrain : bool
        Use the ``u_hat`` reparameterization (always invertible). With False, ``u`` is used as is
        and ``w.u < -1`` raises ValueError.

    Returns
    -------
    x : ndarray, shape (N, D)
    log_det : ndarray, shape (N,)
        ``log|det dx/dz|`` per sample.
    cache : dict

    Examples
    --------
    >>> z = np.array([[0.5, -1.0]])
    >>> x, log_det, _ = planar_forward(z, np.array([1.0, 0.0]), np.array([1.0, 0.0]), np.zeros(1))
    >>> x.shape, log_det.shape
    ((1, 2), (1,))
    """
    u_hat, c, one_plus_c, uh_cache = planar_u_hat(u, w, constrain)
    _check_invertible(c, constrain)
    a = z @ w + b[0]                         # (N,)
    h = np.tanh(a)                           # (N,)
    q = h * h + one_plus_c * (1.0 - h * h)   # (N,) = 1 + c (1 - h^2) = det dx/dz > 0
    x = z + h[:, None] * u_hat               # (N, D)
    cache = {"n": z.shape[0], "z": z, "h": h, "q": q, "c": c, "u_hat": u_hat, "w": w,
             "uh_cache": uh_cache}
    return x, np.log(q), cache


def planar_backward(dx, dlog_det, cache):
    """Backward of :func:`planar_forward`: return ``(dz, {"u", "w", "b"})``."""
    z, h, q, c, u_hat, w = (cache[k] for k in ("z", "h", "q", "c", "u_hat", "w"))
    one_m_h2 = 1.0 - h * h
    dh = dx @ u_hat - dlog_det * 2.0 * h * c / q      # (N,)
    da = dh * one_m_h2                                 # (N,)
    dz = dx + da[:, None] * w                          # (N, D)
    du_hat = h @ dx                                    # (D,)
    dc = float(dlog_det @ (one_m_h2 / q))
    du, dw = _u_hat_backward(du_hat, dc, cache["uh_cache"])
    dw = dw + da @ z
    return dz, {"u": du, "w": dw, "b": np.array([da.sum()])}


# ---------------------------------------------------------------------------------------------
# inverse direction (numerical)
# ---------------------------------------------------------------------------------------------
def solve_planar_a(y, c, one_plus_c=None, tol=NEWTON_TOL, max_iter=NEWTON_MAX_ITER):
    """Solve ``a + c tanh(a) = y`` for every entry of ``y`` (shape (N,)), assuming ``c > -1``.

    Safeguarded Newton: the root lies in ``[y - |c|, y + |c|]``; a Newton step that leaves the
    current bracket is replaced by bisection, so convergence is guaranteed and quadratic near the
    root. Stops when every residual is below ``tol * (1 + |y|)``, then polishes with one more
    Newton step. The slope ``1 + c (1 - h^2)`` is evaluated as ``h^2 + (1 + c)(1 - h^2)`` (see
    :func:`planar_u_hat`); pass ``one_plus_c`` when it is known more accurately than ``1 + c``.
    """
    if one_plus_c is None:
        one_plus_c = 1.0 + c
    finite = np.isfinite(y)
    if not np.all(finite):   # a NaN/inf upstream (a diverging fit): solve the rest, pass NaN on
        a = np.full_like(y, np.nan)
        if np.any(finite):
            a[finite] = solve_planar_a(y[finite], c, one_plus_c, tol, max_iter)
        return a
    lo = y - abs(c)
    hi = y + abs(c)
    a = y / (1.0 + max(c, 0.0))              # exact when the root is in the linear part
    with np.errstate(divide="ignore", invalid="ignore"):
        for _ in range(max_iter):
            h = np.tanh(a)
            f = a + c * h - y
            if np.all(np.abs(f) <= tol * (1.0 + np.abs(y))):
                break
            lo = np.where(f < 0, a, lo)
            hi = np.where(f > 0, a, hi)
            a_newton = a - f / (h * h + one_plus_c * (1.0 - h * h))
            inside = (a_newton > lo) & (a_newton < hi)     # False for NaN/inf steps too
            a = np.where(inside, a_newton, 0.5 * (lo + hi))
        else:
            raise RuntimeError(f"planar inverse: the root-find did not converge in {max_iter} "
                               f"iterations (c = {c:.6g}); is c close to -1?")
        # the polishing step removes the finite-difference noise the tolerance would add to
        # inverse-direction gradients (~tol/eps); skipped where the slope vanishes
        h = np.tanh(a)
        a_polished = a - (a + c * h - y) / (h * h + one_plus_c * (1.0 - h * h))
    return np.where(np.isfinite(a_polished), a_polished, a)


def planar_inverse(x, u, w, b, constrain=True):
    """Inverse of :func:`planar_forward`: return ``(z, log_det, cache)``, ``log_det = log|det dz/dx|``."""
    u_hat, c, one_plus_c, uh_cache = planar_u_hat(u, w, constrain)
    _check_invertible(c, constrain)
    y = x @ w + b[0]                          # (N,) = a + c tanh(a)
    a = solve_planar_a(y, c, one_plus_c)
    h = np.tanh(a)
    q = h * h + one_plus_c * (1.0 - h * h)
    z = x - h[:, None] * u_hat
    cache = {"n": x.shape[0], "x": x, "h": h, "q": q, "c": c, "u_hat": u_hat, "w": w,
             "uh_cache": uh_cache}
    return z, -np.log(q), cache


def planar_inverse_backward(dz, dlog_det, cache):
    """Backward of :func:`planar_inverse` by implicit differentiation: ``(dx, {"u", "w", "b"})``."""
    x, h, q, c, u_hat, w = (cache[k] for k in ("x", "h", "q", "c", "u_hat", "w"))
    one_m_h2 = 1.0 - h * h
    # z = x - h u_hat and log_det = -log q: first the explicit dependence on h, u_hat and c
    dh = -(dz @ u_hat) + dlog_det * 2.0 * h * c / q    # (N,)
    du_hat = -(h @ dz)                                  # (D,)
    dc = -float(dlog_det @ (one_m_h2 / q))
    # then a(x, w, b, c) through the implicit equation a + c tanh(a) = w.x + b
    r = dh * one_m_h2 / q                               # (N,)
    dx = dz + r[:, None] * w
    dc -= float(r @ h)
    du, dw = _u_hat_backward(du_hat, dc, cache["uh_cache"])
    dw = dw + r @ x
    return dx, {"u": du, "w": dw, "b": np.array([r.sum()])}


def _check_invertible(c, constrain):
    if not constrain and c <= -1.0:
        raise ValueError(f"Planar: w.u = {c:.6g} but invertibility needs w.u >= -1 (strictly > -1 "
                         "for a finite log-det). Use constrain=True (the u_hat reparameterization) "
                         "or choose u, w with w.u > -1.")


# ---------------------------------------------------------------------------------------------
# the layer
# ---------------------------------------------------------------------------------------------
class Planar(Transform):
    """Planar flow layer ``x = z + u_hat tanh(w.z + b)``.

    Parameters
    ----------
    dim : int
    rng : numpy.random.Generator or int, optional
        Initial parameters: ``w ~ N(0, I)``, ``b = 0`` and ``u`` chosen so that ``c = w.u_hat = 0``
        and ``u_hat`` is a small vector (std 0.1) orthogonal to ``w``: a fresh layer is close to
        the identity and its log-det is exactly 0. (Small random ``u`` and ``w`` would not do:
        with the reparameterization, ``u, w -> 0`` gives ``c = -1 + log 2``, a layer that
        shrinks space by 0.69 along ``w``.)
    constrain : bool
        Use the ``u_hat`` reparameterization (default). Turn it off only to study the failure.

    Examples
    --------
    >>> t = Planar(2, rng=0)
    >>> z = np.random.default_rng(1).normal(size=(4, 2))
    >>> x, log_det = t.forward(z)
    >>> z_back, log_det_inv = t.inverse(x)
    >>> bool(np.allclose(z_back, z) and np.allclose(log_det, -log_det_inv))
    True
    """

    analytic_inverse = False

    def __init__(self, dim, rng=None, constrain=True):
        super().__init__(dim)
        rng = as_rng(rng)
        self.constrain = bool(constrain)
        w = rng.normal(0.0, 1.0, dim)
        u_perp = rng.normal(0.0, 0.1, dim)
        u_perp -= (u_perp @ w) / (w @ w) * w               # u_hat starts orthogonal to w
        # constrained: w.u = log(e - 1) makes softplus(w.u) = 1, i.e. c = 0 and u_hat = u_perp
        u = u_perp + np.log(np.expm1(1.0)) * w / (w @ w) if constrain else u_perp
        self.params = {"u": u, "w": w, "b": np.zeros(1)}
        self.zero_grads()

    def config(self):
        return {"dim": self.dim, "constrain": self.constrain}

    @classmethod
    def param_shapes(cls, dim, **config):
        return {"u": (dim,), "w": (dim,), "b": (1,)}

    @property
    def u_hat(self):
        return planar_u_hat(self.params["u"], self.params["w"], self.constrain)[0]

    # With the "numba" backend every pass goes through the chain kernels (here with K = 1; a Flow
    # runs consecutive planar layers as one chain). The cache says which path made it.
    def _forward(self, z):
        if get_backend() == "numba":
            return _chain_layer_pass(self, "forward", z)
        return planar_forward(z, **self.params, constrain=self.constrain)

    def _backward(self, dx, dlog_det, cache):
        if "chain" in cache:
            return _chain_layer_backward(cache, dx, dlog_det)
        return planar_backward(dx, dlog_det, cache)

    def _inverse(self, x):
        if get_backend() == "numba":
            return _chain_layer_pass(self, "inverse", x)
        return planar_inverse(x, **self.params, constrain=self.constrain)

    def _inverse_backward(self, dz, dlog_det, cache):
        if "chain" in cache:
            return _chain_layer_backward(cache, dz, dlog_det)
        return planar_inverse_backward(dz, dlog_det, cache)


# ---------------------------------------------------------------------------------------------
# the Numba path (backend "numba"): the same math for a whole chain of layers at once
# ---------------------------------------------------------------------------------------------
# nfscratch.kernels.planar runs K consecutive planar layers in one call (forward, backward,
# inverse and its backward); its NumPy twins are the vectorized form of the functions above.
# Flow calls planar_chain_run / planar_chain_backprop for every run of consecutive Planar layers.
# The kernels of a K = 32, batch-512 training step take ~85 us; everything here is written so
# that the Python around them (gathering 96 parameter arrays, K caches, K gradient dicts) stays
# well below that: one gather (or none, see _chain_params), no per-call argument checks for
# arrays built here, row views made by NumPy rather than by a Python loop.

_KP = None
_F64 = np.dtype(np.float64)
_cache_of = operator.attrgetter("_cache")


def _kernels():
    global _KP
    if _KP is None:
        from ..kernels import planar as kp  # imported on first use: it compiles/loads Numba code
        _KP = kp
    return _KP


def _check_from_outside(name, a, shape, what):
    """The chain calls its kernels without their argument checks (it builds their arguments
    itself); an array that comes from outside the chain is checked here the same way."""
    if type(a) is np.ndarray and a.dtype == _F64 and a.flags.c_contiguous and a.shape == shape:
        return
    from ..kernels import _checks as ck      # find what is wrong and say it
    ck.same_shape("planar chain", name, ck.f64("planar chain", name, a, len(shape)), shape, what)


def _chain_params(layers):
    """Every layer's ``(u, w, b)`` side by side, ``theta`` (K, 2D + 1), ``constrain`` (K,) and
    whether every layer is constrained.

    A Flow keeps its parameters in one buffer, layer after layer (``Flow._pack_params``), so
    for consecutive planar layers ``theta`` is a view of that buffer: nothing to gather. Finding
    that out costs more than gathering, so the answer is kept on the first layer together with
    the arrays it was found for, and reused while every layer still holds exactly those arrays
    (and the same ``constrain`` flags). Otherwise the parameters are gathered in one copy.
    """
    arrays = [a for t in layers for a in (t.params["u"], t.params["w"], t.params["b"])]
    flags = [t.constrain for t in layers]
    memo = getattr(layers[0], "_chain_memo", None)
    if (memo is not None and len(memo[0]) == len(arrays) and all(map(operator.is_, memo[0], arrays))
            and memo[1] == flags):
        theta, constrain = memo[2], memo[3]
        return (theta if theta is not None else _gather(layers, arrays)), constrain, memo[4]
    K, D = len(layers), layers[0].dim
    flat = packed_view(arrays)
    fits = flat is not None and flat.size == K * (2 * D + 1)
    theta = flat.reshape(K, 2 * D + 1) if fits else None
    constrain = np.array(flags, dtype=np.int64)
    layers[0]._chain_memo = (arrays, flags, theta, constrain, all(flags))
    return (theta if theta is not None else _gather(layers, arrays)), constrain, all(flags)


#: Arrays a chain pass keeps for its backward pass are reused between passes up to this size.
KEEP_BYTES = 64 * 1024 * 1024


def _kept_arrays(layers, D, N):
    """``(points (K, D, N), h (K, N), log_dets (K, N))`` for a pass of the chain ``layers``.

    Reused from the same chain's previous pass (kept on its first layer): a new array of a few
    MB costs a page fault every 4 KB when first written, which made the forward kernel 4x
    slower at batch 4096 (1.86 ms instead of 0.46; 500 faults per training step). A pass
    overwrites them exactly when it replaces these layers' caches, so a backward pass always
    refers to the most recent pass; another chain starting with the same layer (e.g. that
    layer called on its own) gets new arrays and leaves these alone. Above ``KEEP_BYTES``
    (rare batches, for which keeping the memory would cost more than the faults) they are
    new every time.
    """
    K = len(layers)
    n = K * N
    if n * (D + 2) * 8 > KEEP_BYTES:
        return np.empty((K, D, N)), np.empty((K, N)), np.empty((K, N))
    kept = layers[0].__dict__.get("_chain_kept")
    chain = tuple(layers)
    if kept is None or kept[0] != chain or kept[2].size < n or kept[1].size < n * D:
        kept = layers[0]._chain_kept = (chain, np.empty(n * D), np.empty(n), np.empty(n))
    # the first K*N (K*D*N) entries of flat buffers: C-contiguous, as the kernels require
    return kept[1][:n * D].reshape(K, D, N), kept[2][:n].reshape(K, N), kept[3][:n].reshape(K, N)


def _gather(layers, arrays):
    K, D = len(layers), layers[0].dim
    theta = np.concatenate(arrays)
    if theta.size != K * (2 * D + 1):
        shapes = [tuple(map(np.shape, t.params.values())) for t in layers]
        raise ValueError(f"Planar: expected parameters u ({D},), w ({D},) and b (1,) in each of "
                         f"the {K} layers, got {shapes}.")
    return theta.reshape(K, 2 * D + 1)


def _chain_pass(layers, direction, p):
    """Run ``layers`` (consecutive Planar) in ``direction``; return ``(out, log_det, chain)``.

    ``chain`` is the record of the pass that the backward pass needs (parameters, ``u_hat``,
    the kernels' caches).
    """
    kp = _kernels()
    p = np.ascontiguousarray(p)         # e.g. a permutation's output can be Fortran-ordered
    D = layers[0].dim
    _check_from_outside("p", p, (p.shape[0], D), "(N, D)")
    theta, constrain, all_constrained = _chain_params(layers)
    u, w, b = theta[:, :D].copy(), theta[:, D:2 * D].copy(), theta[:, 2 * D].copy()
    # every argument below is built here, so the kernels run without their argument checks
    u_hat, c, one_plus_c = kp.planar_u_hat_unchecked(u, w, constrain)
    if not all_constrained:
        for k in np.flatnonzero(constrain == 0):
            _check_invertible(c[k], False)
    kept = _kept_arrays(layers, D, p.shape[0])
    if direction == "forward":
        out, log_det, log_dets, points, h = kp.planar_chain_forward_unchecked(
            p, u_hat, w, b, c, one_plus_c, *kept)
    else:
        out, log_det, log_dets, points, h, n_failed = kp.planar_chain_inverse_unchecked(
            p, u_hat, w, b, c, one_plus_c, NEWTON_TOL, NEWTON_MAX_ITER, *kept)
        if n_failed:
            raise RuntimeError(f"planar inverse: the root-find did not converge in {NEWTON_MAX_ITER} "
                               f"iterations for {n_failed} sample(s) (c = {c.min():.6g} at the "
                               "lowest); is c close to -1?")
    chain = {"direction": direction, "layers": layers, "u": u, "w": w, "constrain": constrain,
             "u_hat": u_hat, "c": c, "one_plus_c": one_plus_c, "points": points, "h": h,
             "log_dets": log_dets, "n": p.shape[0]}
    return out, log_det, chain


def _chain_backward(chain, d_out, dlog_det, ks):
    """Backward through layers ``ks`` (a slice) of a chain pass: ``(d_in, du, dw, db)``."""
    kp = _kernels()
    d_out, dlog_det = np.ascontiguousarray(d_out), np.ascontiguousarray(dlog_det)
    N, D = chain["n"], chain["u"].shape[1]
    _check_from_outside("d_out", d_out, (N, D), "(N, D) of the pass")
    _check_from_outside("dlog_det", dlog_det, (N,), "(N,) of the pass")
    step = (kp.planar_chain_backward_unchecked if chain["direction"] == "forward"
            else kp.planar_chain_inverse_backward_unchecked)
    if ks == slice(None):
        u, u_hat, w, c, opc, points, h, constrain = (chain[k] for k in (
            "u", "u_hat", "w", "c", "one_plus_c", "points", "h", "constrain"))
    else:
        u, u_hat, w, c, opc, points, h, constrain = (chain[k][ks] for k in (
            "u", "u_hat", "w", "c", "one_plus_c", "points", "h", "constrain"))
    d_in, du_hat, dw_direct, db, dc = step(d_out, dlog_det, points, h, u_hat, w, c, opc)
    du, dw = kp.planar_u_hat_backward_unchecked(du_hat, dc, u, w, constrain)
    return d_in, du, dw + dw_direct, db


def _chain_layer_pass(layer, direction, p):
    """One layer through the chain kernels (K = 1), when called on its own, not through Flow."""
    out, log_det, chain = _chain_pass([layer], direction, p)
    return out, log_det, {"n": chain["n"], "chain": chain, "k": 0}


def _chain_layer_backward(cache, d_out, dlog_det):
    """Backward of one layer of a chain pass (when called on its own, not through Flow)."""
    k = cache["k"]
    d_in, du, dw, db = _chain_backward(cache["chain"], d_out, dlog_det, slice(k, k + 1))
    return d_in, {"u": du[0], "w": dw[0], "b": db}


def planar_chain_run(layers, direction, p):
    """Run consecutive Planar ``layers`` as one chain; set each layer's cache and log-det.

    ``p`` (N, D) is validated by the caller. Returns ``(out, log_det)`` where ``log_det`` (N,)
    sums the layers' log-dets in the order they are applied. Every layer's cache is
    ``{"n", "chain", "k"}``: the shared record of the pass and the layer's index in it.
    """
    layers = list(layers)
    out, log_det, chain = _chain_pass(layers, direction, p)
    n = chain["n"]
    for k, (t, log_det_k) in enumerate(zip(layers, chain["log_dets"])):   # rows: views, made in C
        t._cache = {"n": n, "chain": chain, "k": k}
        t._cache_direction = direction
        t._last_log_det = log_det_k
    return out, log_det


def planar_chain_backprop(layers, d_out, dlog_det):
    """Backward through a :func:`planar_chain_run` pass of ``layers``; fill every layer's grads.

    Returns ``d_in``, or None when the layers' caches are not one chain pass (then the caller
    backpropagates layer by layer).
    """
    first = layers[0]._cache
    chain = first.get("chain") if first else None
    # the same layers in the same order, each still holding its cache of this pass (then its
    # index "k" in the pass is its position here)
    if chain is None or chain["layers"] != layers or not all(
            cache is not None and cache.get("chain") is chain for cache in map(_cache_of, layers)):
        return None
    d_in, du, dw, db = _chain_backward(chain, d_out, dlog_det, slice(None))
    for t, du_k, dw_k, db_k in zip(layers, du, dw, db.reshape(-1, 1)):   # rows: views
        t.grads = {"u": du_k, "w": dw_k, "b": db_k}
    return d_in
