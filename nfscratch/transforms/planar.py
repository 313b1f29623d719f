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

Several layers at once. A planar flow stacks K such layers. :class:`PlanarChain` holds the K
layers' parameters as rows of one array and runs them as one transform: on the ``"numpy"``
backend its passes are the functions above applied layer after layer (``planar_chain_*``); on the
``"numba"`` backend one compiled kernel call runs all K layers (:mod:`nfscratch.kernels.planar`,
reached through the private module ``_planar_fast``). ``chain[k]`` is layer k as a
:class:`Planar` whose parameters are views of the chain's row k, so a chain is indexed, plotted
and gradient-checked layer by layer.

References
----------
Rezende, Mohamed, "Variational Inference with Normalizing Flows", ICML 2015, arXiv:1505.05770
(Eq. 10-12 and Appendix A.1 for the invertibility condition).
"""
import numpy as np

from ..nn import sigmoid, softplus
from .._validate import MAX_ITERATIONS, as_rng, check_positive_float, check_positive_int
from ..config import use_kernels
from . import _planar_fast as _fast
from .base import LayerChain, Transform

__all__ = ["planar_u_hat", "planar_forward", "planar_backward", "solve_planar_a", "planar_inverse",
           "planar_inverse_backward", "Planar", "planar_chain_forward", "planar_chain_backward",
           "planar_chain_inverse", "planar_chain_inverse_backward", "PlanarChain"]

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
    tol = check_positive_float(tol, "tol")
    max_iter = check_positive_int(max_iter, "max_iter", maximum=MAX_ITERATIONS)
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
        self.constrain = bool(constrain)
        u, w = _initial_u_w(self.dim, as_rng(rng), self.constrain)
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

    def invertibility_margin(self):
        """The smallest Jacobian determinant over all inputs, ``min(1, 1 + c)``: 0 is the limit
        where the layer stops being invertible (what :func:`nfscratch.doctor` reports)."""
        return min(1.0, planar_u_hat(self.params["u"], self.params["w"], self.constrain)[2])

    # On the "numba" backend the passes run the chain kernels with K = 1; the cache says which
    # path made it, and the backward pass follows that path.
    def _forward(self, z):
        if use_kernels():
            return _fast.planar_pass(self, "forward", z)
        return planar_forward(z, **self.params, constrain=self.constrain)

    def _backward(self, dx, dlog_det, cache):
        if _fast.made(cache):
            return _fast.planar_backward(cache, dx, dlog_det)
        return planar_backward(dx, dlog_det, cache)

    def _inverse(self, x):
        if use_kernels():
            return _fast.planar_pass(self, "inverse", x)
        return planar_inverse(x, **self.params, constrain=self.constrain)

    def _inverse_backward(self, dz, dlog_det, cache):
        if _fast.made(cache):
            return _fast.planar_backward(cache, dz, dlog_det)
        return planar_inverse_backward(dz, dlog_det, cache)


def _initial_u_w(dim, rng, constrain):
    """``(u, w)`` of a fresh layer: ``w ~ N(0, I)`` and ``u_hat`` small and orthogonal to ``w``."""
    w = rng.normal(0.0, 1.0, dim)
    u_perp = rng.normal(0.0, 0.1, dim)
    u_perp -= (u_perp @ w) / (w @ w) * w               # u_hat starts orthogonal to w
    # constrained: w.u = log(e - 1) makes softplus(w.u) = 1, i.e. c = 0 and u_hat = u_perp
    u = u_perp + np.log(np.expm1(1.0)) * w / (w @ w) if constrain else u_perp
    return u, w


# ---------------------------------------------------------------------------------------------
# K layers, one after another: the functions above in a loop
# ---------------------------------------------------------------------------------------------
def planar_chain_forward(z, u, w, b, constrain=True):
    """Apply K planar layers, layer 0 first: :func:`planar_forward` K times.

    Parameters
    ----------
    z : ndarray, shape (N, D)
    u, w : ndarray, shape (K, D)
    b : ndarray, shape (K,)

    Returns
    -------
    x : ndarray, shape (N, D)
    log_det : ndarray, shape (N,)
        The sum of the layers' log-dets, added in the order the layers are applied.
    cache : dict
        ``"layers"``: each layer's cache, in layer order; ``"log_dets"``: each layer's log-det.
    """
    caches, log_dets = [], []
    log_det = np.zeros(z.shape[0])
    for k in range(u.shape[0]):
        z, ld, cache = planar_forward(z, u[k], w[k], b[k:k + 1], constrain)
        log_det += ld
        caches.append(cache)
        log_dets.append(ld)
    return z, log_det, {"layers": caches, "log_dets": log_dets}


def planar_chain_backward(dx, dlog_det, cache):
    """Backward of :func:`planar_chain_forward`, last layer first: ``(dz, {"u", "w", "b"})``
    with gradients of shapes (K, D), (K, D), (K,). Every layer gets the same ``dlog_det``."""
    grads = [None] * len(cache["layers"])
    for k in reversed(range(len(grads))):
        dx, grads[k] = planar_backward(dx, dlog_det, cache["layers"][k])
    return dx, _stack(grads)


def planar_chain_inverse(x, u, w, b, constrain=True):
    """Undo K planar layers, layer K-1 first: :func:`planar_inverse` K times.

    Returns ``(z, log_det, cache)`` as :func:`planar_chain_forward` does, with the log-dets
    ``log|det dz/dx|`` summed in the order the layers are undone.
    """
    K = u.shape[0]
    caches, log_dets = [None] * K, [None] * K
    log_det = np.zeros(x.shape[0])
    for k in reversed(range(K)):
        x, log_dets[k], caches[k] = planar_inverse(x, u[k], w[k], b[k:k + 1], constrain)
        log_det += log_dets[k]
    return x, log_det, {"layers": caches, "log_dets": log_dets}


def planar_chain_inverse_backward(dz, dlog_det, cache):
    """Backward of :func:`planar_chain_inverse`, layer 0 first (the reverse of the pass)."""
    grads = []
    for layer_cache in cache["layers"]:
        dz, g = planar_inverse_backward(dz, dlog_det, layer_cache)
        grads.append(g)
    return dz, _stack(grads)


def _stack(grads):
    return {"u": np.stack([g["u"] for g in grads]), "w": np.stack([g["w"] for g in grads]),
            "b": np.concatenate([g["b"] for g in grads])}


class PlanarChain(LayerChain):
    """K planar layers as one transform: ``x = f_{K-1}(... f_0(z))``, each ``f_k`` a planar map.

    The numbers are those of K :class:`Planar` layers applied one after another (to ~1e-13); a
    chain is faster because the ``"numba"`` backend runs all K layers in one kernel call.

    Parameters
    ----------
    dim : int
    n_layers : int
        K.
    rng : numpy.random.Generator or int, optional
        Initial parameters, drawn layer after layer exactly as K ``Planar(dim, rng)`` would.
    constrain : bool
        The ``u_hat`` reparameterization in every layer (see :class:`Planar`).

    Notes
    -----
    ``params`` are ``u`` (K, D), ``w`` (K, D) and ``b`` (K,): the columns of one array ``theta``
    (K, 2D + 1) whose row k is ``(u_k, w_k, b_k)``, so that layer k's parameters are one piece of
    memory. ``chain[k]`` (``len(chain)`` = K) is layer k as a :class:`Planar` whose ``params`` are
    views of row k: writing into them writes into the chain (rebinding an entry detaches it).
    ``sublayers()``, ``last_log_dets()`` and ``layer_grads()`` answer layer by layer, which is how
    a :class:`~nfscratch.flow.Flow` numbers, plots and gradient-checks the K layers.

    Examples
    --------
    >>> chain = PlanarChain(2, 4, rng=0)
    >>> len(chain), chain[1].params["u"].shape, chain.params["u"].shape
    (4, (2,), (4, 2))
    >>> z = np.random.default_rng(1).normal(size=(5, 2))
    >>> x, log_det = chain.forward(z)
    >>> z_back, log_det_inv = chain.inverse(x)
    >>> bool(np.allclose(z_back, z) and np.allclose(log_det, -log_det_inv))
    True
    """

    analytic_inverse = False

    def __init__(self, dim, n_layers, rng=None, constrain=True):
        super().__init__(dim)
        K, D = check_positive_int(n_layers, "n_layers"), self.dim
        rng = as_rng(rng)
        self.constrain = bool(constrain)
        theta = np.zeros(K * (2 * D + 1)).reshape(K, 2 * D + 1)   # rows of one flat buffer
        for k in range(K):
            theta[k, :D], theta[k, D:2 * D] = _initial_u_w(D, rng, self.constrain)
        self._use_theta(theta)

    @classmethod
    def from_layers(cls, layers):
        """A chain with the parameters (copied) of consecutive :class:`Planar` ``layers``.

        This is how a flow built by hand from ``Planar`` layers gets the one-call kernel path:
        ``Flow([PlanarChain.from_layers(layers)])``. The numbers are the same; the chain has its
        own copy of the parameters, so train the chain (or a flow of it), not the old layers.
        """
        layers = list(layers)
        if not layers or not all(type(t) is Planar for t in layers):
            raise TypeError(f"layers: expected a non-empty list of Planar layers, got "
                            f"{[type(t).__name__ for t in layers]}.")
        dims, flags = {t.dim for t in layers}, {t.constrain for t in layers}
        if len(dims) != 1 or len(flags) != 1:
            raise ValueError(f"layers: expected the same dim and constrain in every layer, got dims "
                             f"{[t.dim for t in layers]} and constrain {[t.constrain for t in layers]}.")
        chain = cls(dims.pop(), len(layers), rng=0, constrain=flags.pop())
        for k, t in enumerate(layers):
            for name, p in t.params.items():
                chain[k].params[name][...] = p
        return chain

    def _use_theta(self, theta):
        """Make ``theta`` (K, 2D + 1) the parameters' memory; rebuild the views and layers."""
        K, D = theta.shape[0], self.dim
        self._theta = theta
        self.params = {"u": theta[:, :D], "w": theta[:, D:2 * D], "b": theta[:, 2 * D]}
        g = self._grad_theta = np.zeros_like(theta)
        self.grads = {"u": g[:, :D], "w": g[:, D:2 * D], "b": g[:, 2 * D]}
        self._layer_grads = [{"u": g[k, :D], "w": g[k, D:2 * D], "b": g[k, 2 * D:]} for k in range(K)]
        self._layers = []
        for k in range(K):       # Planar layers made around existing arrays, not initialized
            layer = Planar.__new__(Planar)
            Transform.__init__(layer, D)
            layer.constrain = self.constrain
            layer.params = {"u": theta[k, :D], "w": theta[k, D:2 * D], "b": theta[k, 2 * D:]}
            layer.grads = dict(self._layer_grads[k])
            self._layers.append(layer)

    def config(self):
        return {"dim": self.dim, "n_layers": len(self), "constrain": self.constrain}

    @classmethod
    def param_shapes(cls, dim, n_layers, **config):
        K = check_positive_int(n_layers, "n_layers")
        return {"u": (K, dim), "w": (K, dim), "b": (K,)}

    def __len__(self):
        return len(self._layers)

    def __getitem__(self, k):
        return self._layers[k]

    # -- the passes: the loops above, or one kernel call ----------------------------------------
    def _forward(self, z):
        if use_kernels():
            return _fast.chain_pass(self, "forward", z)
        return planar_chain_forward(z, **self.params, constrain=self.constrain)

    def _backward(self, dx, dlog_det, cache):
        if _fast.made(cache):
            return _fast.chain_backward(cache, dx, dlog_det)
        return planar_chain_backward(dx, dlog_det, cache)

    def _inverse(self, x):
        if use_kernels():
            return _fast.chain_pass(self, "inverse", x)
        return planar_chain_inverse(x, **self.params, constrain=self.constrain)

    def _inverse_backward(self, dz, dlog_det, cache):
        if _fast.made(cache):
            return _fast.chain_backward(cache, dz, dlog_det)
        return planar_chain_inverse_backward(dz, dlog_det, cache)

    # -- layer by layer ---------------------------------------------------------------------------
    def _trace(self, direction, p, token=None):
        out, log_det = self._run(direction, p, token)
        cache, K = self._cache, len(self)
        inputs = (_fast.layer_inputs(cache) if _fast.made(cache) else
                  [c["z" if direction == "forward" else "x"] for c in cache["layers"]])
        if direction == "forward":      # layer k's output is layer k+1's input
            order, outs = range(K), inputs[1:] + [out]
        else:                           # undoing layer k (K-1 first) gives layer k-1's input
            order, outs = range(K - 1, -1, -1), inputs[:-1][::-1] + [out]
        return out, log_det, outs, [np.array(cache["log_dets"][k]) for k in order]

