r"""Neural spline flows: monotone rational-quadratic splines with identity tails.

A rational-quadratic (RQ) spline is a monotone map of one number built from ``K`` bins on
``[-B, B]``; outside that interval it is the identity. A coupling layer (or, later, an
autoregressive one) lets a neural network choose the bins of every transformed feature, so one
layer can bend a density into far more shapes than an affine layer can (Durkan et al. 2019).

Notes
-----
**Parametrization** (one element; ``uw, uh`` have ``K`` entries, ``ud`` has ``K - 1``). Bin widths
and heights are a softmax with a floor, scaled to the interval, and the knots are their running
sums; the interior derivatives are a softplus with a floor, and the two boundary derivatives are 1
so that the spline joins the identity tails with slope 1:

.. math::

    w = m_w + (1 - K m_w)\,\mathrm{softmax}(u^w), \qquad
    x^{(k)} = -B + 2B \textstyle\sum_{j<k} w_j \quad (x^{(0)} = -B,\; x^{(K)} = B),

    h = m_h + (1 - K m_h)\,\mathrm{softmax}(u^h), \qquad y^{(k)}\ \text{likewise},

    \delta^{(k)} = 1 + (1 - m_d)\left(\frac{\mathrm{softplus}(u^d_k)}{\log 2} - 1\right)
    \quad (k = 1..K-1), \qquad \delta^{(0)} = \delta^{(K)} = 1.

With all ``u = 0`` the bins are equal and every derivative is exactly 1: the map is the identity
(the softplus is divided by its value at 0, ``log 2``, so that this holds to the last bit). The
floors ``m_w, m_h, m_d`` keep every bin at least ``2 B m`` wide and every slope at least ``m_d``,
which bounds the log-det.

**Forward map** (bin ``k`` found by a search of the knots; ``w_k = x^{(k+1)} - x^{(k)}``,
``h_k = y^{(k+1)} - y^{(k)}``, slope ``s_k = h_k / w_k``, position in the bin
``\xi = (x - x^{(k)}) / w_k \in [0, 1]``):

.. math::

    g(x) = y^{(k)} + \frac{h_k\,[s_k \xi^2 + \delta^{(k)} \xi(1-\xi)]}
                          {s_k + [\delta^{(k+1)} + \delta^{(k)} - 2 s_k]\,\xi(1-\xi)},

    \frac{dg}{dx} = \frac{s_k^2\,[\delta^{(k+1)}\xi^2 + 2 s_k \xi(1-\xi)
                    + \delta^{(k)}(1-\xi)^2]}{(s_k + [\delta^{(k+1)} + \delta^{(k)} - 2 s_k]
                    \,\xi(1-\xi))^2}.

**Monotonicity**: the numerator of ``dg/dx`` is a sum of positive terms (every ``δ > 0``,
``s_k > 0``, ``ξ(1-ξ) ≥ 0``) and the denominator is a square, so ``dg/dx > 0`` everywhere:
the map is strictly increasing, hence invertible. At ``ξ = 0`` and ``ξ = 1`` the formula gives
``g = y^{(k)}, y^{(k+1)}`` and slopes ``δ^{(k)}, δ^{(k+1)}``: neighbouring bins meet with equal
value and slope. ``log_det = log dg/dx`` per element (outside ``[-B, B]``: 0).

**Inverse**: in bin ``k`` of the *y* knots, ``g(x) = y`` is a quadratic ``a ξ^2 + b ξ + c = 0``
with (``Δ = δ^{(k+1)} + δ^{(k)} - 2 s_k``, ``r = y - y^{(k)}``)

.. math::

    a = h_k (s_k - \delta^{(k)}) + r Δ, \quad b = h_k \delta^{(k)} - r Δ, \quad c = -s_k r,
    \qquad \xi = \frac{2c}{-b - \sqrt{b^2 - 4ac}}.

This is the root in ``[0, 1]``, written as ``2c / (-b - sqrt(.))`` instead of the textbook
``(-b + sqrt(.)) / 2a``: the two are equal, but the textbook form subtracts two nearly equal
numbers when ``4ac`` is small and divides by zero where ``a = 0`` (a bin in which the map is a
Möbius transform with a linear inverse). Here ``c = -s r ≤ 0`` and the denominator is ``-2 h
δ^{(k)} < 0`` at ``r = 0``, so it does not vanish. The discriminant is ``≥ 0`` in exact arithmetic;
round-off can push it a hair below, so it is clamped at 0 before the square root.

**Backward of the forward map** (upstream ``dy = dL/dg``, ``dl = dL/d log_det``). Write
``P = s ξ^2 + δ_0 ξ(1-ξ)``, ``den = s + Δ ξ(1-ξ)``, ``Q = δ_1 ξ^2 + 2 s ξ(1-ξ) + δ_0 (1-ξ)^2``
(``δ_0, δ_1`` the bin's two derivatives), so ``g = y_0 + h P / den`` and
``log_det = 2 log s + log Q - 2 log den``. Reverse mode, one node at a time:

.. math::

    \bar{den} = -dy\,hP/den^2 - 2\,dl/den, \quad \bar P = dy\,h/den, \quad \bar Q = dl/Q,
    \quad \bar h = dy\,P/den, \quad \bar y_0 = dy,

then through ``P, den, Q`` into ``s, δ_0, δ_1, ξ`` and ``e = ξ(1-ξ)``; through ``e`` into ``ξ``;
through ``s = h/w`` and ``ξ = (x - x_0)/w`` into ``h, w, x, x_0``; through ``w = x_1 - x_0``
and ``h = y_1 - y_0`` into the four knot coordinates. The bin index is piecewise constant, so
the search itself contributes nothing: its backward *scatters* each element's knot gradients
back to the two knots it read. Then the knots' gradients run back through the cumulative sum
(a reverse cumulative sum), the floor and the softmax (``du = p ⊙ (dp - <dp, p>)``), and the
derivatives' through the softplus (``sigmoid``). Inside the bins every step is smooth; at a knot
the map is C^1 but its parameter gradients jump, so finite differences are only tried away
from knots.

**Backward of the inverse** by the implicit-function theorem: with ``x = g^{-1}(y; θ)`` and
``log_det_inv = -log g'(x; θ)``, the upstream ``dx, dl`` give the total pull on ``x``,
``\bar x = dx - dl\,∂_x \log g'``, and then

.. math::

    dy = \bar x / g', \qquad d\theta = -(\bar x / g')\,∂_θ g - dl\,∂_θ \log g',

which is exactly the forward backward run with ``dy' = -\bar x / g'`` and ``dl' = -dl``: the
inverse needs no second copy of the chain rule.

**Spline coupling**: as in RealNVP (see :mod:`.coupling`), a mask splits the features; an MLP
reads the ``mask == 1`` part and outputs ``3K - 1`` numbers per transformed feature
``[u^w (K) | u^h (K) | u^d (K-1)]``. ``log_det`` sums the elements' log-dets.

**Conditional** (``context_dim = C > 0``): the conditioner reads ``[z_a | y]``, so every bin
of every transformed feature depends on the context too; at fixed ``y`` each feature's map is
the same monotone spline of one variable, and the log-det is the same sum of ``log dg/dx``.
The conditioner's backward pass returns the context's gradient beside ``dz_a``.

References
----------
Durkan, Bekasov, Murray, Papamakarios, "Neural Spline Flows", NeurIPS 2019, arXiv:1906.04032.
Gregory, Delbourgo, "Piecewise rational quadratic interpolation to monotonic data", IMA J.
Numer. Anal. 2 (1982).
Dinh, Sohl-Dickstein, Bengio, "Density estimation using Real NVP", ICLR 2017, arXiv:1605.08803.
"""
import numpy as np

from ..config import use_kernels
from ..nn import ACTIVATIONS, MLP, mlp_backward, mlp_forward, mlp_param_shapes, sigmoid, softplus
from .._validate import as_rng, check_context_dim, check_positive_float, check_positive_int
from .base import Transform, conditioner_input, split_conditioner_grad
from .coupling import alternating_mask

__all__ = ["spline_params", "spline_params_backward", "rq_forward", "rq_backward",
           "rq_inverse", "rq_inverse_backward", "spline_forward", "spline_backward",
           "spline_inverse", "spline_inverse_backward", "spline_coupling_forward",
           "spline_coupling_backward", "spline_coupling_inverse",
           "spline_coupling_inverse_backward", "SplineCoupling"]

# Defaults shared by the functions, the layer and the model builder.
BOUND = 5.0
MIN_WIDTH = 1e-3
MIN_HEIGHT = 1e-3
MIN_DERIVATIVE = 1e-3
_SOFTPLUS_0 = float(softplus(np.zeros(1))[0])      # log 2, computed the way softplus computes it


# ---------------------------------------------------------------------------------------------
# 1. the parametrization: unconstrained numbers -> knots and derivatives
# ---------------------------------------------------------------------------------------------
def _softmax(u):
    e = np.exp(u - u.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _knots(u, bound, minimum):
    """Knots ``(..., K+1)`` from unnormalized sizes ``u (..., K)``; returns knots and the softmax."""
    K = u.shape[-1]
    p = _softmax(u)                                                  # (..., K)
    frac = minimum + (1.0 - K * minimum) * p                         # sums to 1
    knots = np.empty(u.shape[:-1] + (K + 1,))
    knots[..., 0] = -bound
    knots[..., 1:K] = -bound + 2.0 * bound * np.cumsum(frac[..., :-1], axis=-1)
    knots[..., K] = bound                                            # exactly, not by round-off
    return knots, p


def _knots_backward(dknots, p, bound, minimum):
    """Backward of :func:`_knots`: ``du (..., K)`` from ``dknots (..., K+1)``."""
    K = p.shape[-1]
    dcum = 2.0 * bound * dknots[..., 1:K]                            # (..., K-1)
    # knot k = sum of frac[:k]: frac_j reaches every knot after it (a reverse cumulative sum)
    dfrac = np.zeros_like(p)
    dfrac[..., :-1] = np.cumsum(dcum[..., ::-1], axis=-1)[..., ::-1]
    dp = (1.0 - K * minimum) * dfrac
    return p * (dp - np.sum(dp * p, axis=-1, keepdims=True))        # softmax backward


def spline_params(uw, uh, ud, bound=BOUND, min_width=MIN_WIDTH, min_height=MIN_HEIGHT,
                  min_derivative=MIN_DERIVATIVE):
    r"""Knots and knot derivatives of the spline from unconstrained parameters.

    Parameters
    ----------
    uw, uh : ndarray, shape (..., K)
        Unnormalized bin widths and heights.
    ud : ndarray, shape (..., K - 1)
        Unconstrained derivatives at the interior knots.
    bound : float
        The spline covers ``[-bound, bound]``.
    min_width, min_height, min_derivative : float
        Floors; need ``K * min_width < 1``, ``K * min_height < 1``, ``0 < min_derivative < 1``.

    Returns
    -------
    knot_x, knot_y, deriv : ndarray, shape (..., K + 1)
    cache : dict

    Examples
    --------
    >>> kx, ky, d, _ = spline_params(np.zeros(4), np.zeros(4), np.zeros(3), bound=2.0)
    >>> kx.tolist(), d.tolist()
    ([-2.0, -1.0, 0.0, 1.0, 2.0], [1.0, 1.0, 1.0, 1.0, 1.0])
    """
    knot_x, pw = _knots(uw, bound, min_width)
    knot_y, ph = _knots(uh, bound, min_height)
    deriv = np.ones(ud.shape[:-1] + (ud.shape[-1] + 2,))
    deriv[..., 1:-1] = 1.0 + (1.0 - min_derivative) * (softplus(ud) / _SOFTPLUS_0 - 1.0)
    cache = {"pw": pw, "ph": ph, "ud": ud, "bound": bound, "min_width": min_width,
             "min_height": min_height, "min_derivative": min_derivative}
    return knot_x, knot_y, deriv, cache


def spline_params_backward(dknot_x, dknot_y, dderiv, cache):
    """Backward of :func:`spline_params`: ``(duw, duh, dud)``."""
    duw = _knots_backward(dknot_x, cache["pw"], cache["bound"], cache["min_width"])
    duh = _knots_backward(dknot_y, cache["ph"], cache["bound"], cache["min_height"])
    dud = dderiv[..., 1:-1] * (1.0 - cache["min_derivative"]) / _SOFTPLUS_0 * sigmoid(cache["ud"])
    return duw, duh, dud


# ---------------------------------------------------------------------------------------------
# 2. the rational-quadratic map given its knots
# ---------------------------------------------------------------------------------------------
def _search(knots, v):
    """Bin index of every element of ``v`` in its own row of ``knots`` (..., K+1), in [0, K-1].

    A point exactly on knot k belongs to bin k (``xi = 0``); ``v = B`` to the last bin (``xi = 1``).
    """
    K = knots.shape[-1] - 1
    k = np.sum(knots[..., 1:K] <= v[..., None], axis=-1)
    return k


def _gather(knot_x, knot_y, deriv, k):
    """The bin's corner values: ``x0, x1, y0, y1, d0, d1`` (each shaped like ``k``)."""
    def at(a, j):
        return np.take_along_axis(a, j[..., None], axis=-1)[..., 0]
    return (at(knot_x, k), at(knot_x, k + 1), at(knot_y, k), at(knot_y, k + 1),
            at(deriv, k), at(deriv, k + 1))


def _rq_terms(xi, s, d0, d1):
    """``P, den, Q`` of the module docstring and ``log g' = 2 log s + log Q - 2 log den``."""
    e = xi * (1.0 - xi)
    P = s * xi * xi + d0 * e
    den = s + (d1 + d0 - 2.0 * s) * e
    Q = d1 * xi * xi + 2.0 * s * e + d0 * (1.0 - xi) ** 2
    return P, den, Q, 2.0 * np.log(s) + np.log(Q) - 2.0 * np.log(den)


def rq_forward(x, knot_x, knot_y, deriv):
    r"""The rational-quadratic map, elementwise, with identity tails outside ``[-B, B]``.

    Parameters
    ----------
    x : ndarray, shape S (any)
    knot_x, knot_y, deriv : ndarray, shape S + (K + 1,)
        Each element's own knots and knot derivatives (from :func:`spline_params`).

    Returns
    -------
    y : ndarray, shape S
    log_det : ndarray, shape S
        ``log dy/dx`` of every element (0 in the tails).
    cache : dict
    """
    B = knot_x[..., -1]
    inside = np.abs(x) <= B
    xc = np.clip(x, -B, B)                  # the tails never enter the formula: no inf, no NaN
    k = _search(knot_x, xc)
    x0, x1, y0, y1, d0, d1 = _gather(knot_x, knot_y, deriv, k)
    w, h = x1 - x0, y1 - y0
    s = h / w
    xi = (xc - x0) / w
    P, den, Q, log_g = _rq_terms(xi, s, d0, d1)
    y = np.where(inside, y0 + h * P / den, x)
    log_det = np.where(inside, log_g, 0.0)
    cache = {"inside": inside, "k": k, "xi": xi, "w": w, "h": h, "s": s, "d0": d0, "d1": d1,
             "P": P, "den": den, "Q": Q, "K": knot_x.shape[-1] - 1}
    return y, log_det, cache


def _rq_pullback(dy, dl, c):
    """Reverse mode through ``g`` and ``log g'`` inside the bins (the docstring's equations).

    Returns ``dx`` and the gradients of the bin's corners ``(x0, x1, y0, y1, d0, d1)``.
    """
    xi, w, h, s, d0, d1 = c["xi"], c["w"], c["h"], c["s"], c["d0"], c["d1"]
    P, den, Q = c["P"], c["den"], c["Q"]
    e = xi * (1.0 - xi)
    D = d1 + d0 - 2.0 * s
    # y = y0 + h P / den;  log_det = 2 log s + log Q - 2 log den
    g_den = -dy * h * P / den ** 2 - 2.0 * dl / den
    g_P = dy * h / den
    g_Q = dl / Q
    g_h = dy * P / den
    g_y0 = dy
    # P = s xi^2 + d0 e;  den = s + D e;  Q = d1 xi^2 + 2 s e + d0 (1 - xi)^2
    g_s = g_P * xi * xi + g_den * (1.0 - 2.0 * e) + g_Q * 2.0 * e + 2.0 * dl / s
    g_d0 = g_P * e + g_den * e + g_Q * (1.0 - xi) ** 2
    g_d1 = g_den * e + g_Q * xi * xi
    g_e = g_P * d0 + g_den * D + g_Q * 2.0 * s
    g_xi = g_P * 2.0 * s * xi + g_Q * 2.0 * (d1 * xi - d0 * (1.0 - xi)) + g_e * (1.0 - 2.0 * xi)
    # s = h / w;  xi = (x - x0) / w;  w = x1 - x0;  h = y1 - y0
    g_h = g_h + g_s / w
    g_w = -(g_s * s + g_xi * xi) / w
    dx = g_xi / w
    return dx, (-dx - g_w, g_w, g_y0 - g_h, g_h, g_d0, g_d1)


def _scatter(corner_grads, k, K):
    """Backward of the bin search and gather: put each element's corner gradients at its knots."""
    shape = k.shape + (K + 1,)
    out = []
    for lo, hi in zip(corner_grads[0::2], corner_grads[1::2]):
        g = np.zeros(shape)
        np.put_along_axis(g, k[..., None], lo[..., None], axis=-1)
        np.put_along_axis(g, k[..., None] + 1, hi[..., None], axis=-1)
        out.append(g)
    return out                              # dknot_x, dknot_y, dderiv


def rq_backward(dy, dlog_det, cache):
    """Backward of :func:`rq_forward`: ``(dx, dknot_x, dknot_y, dderiv)``."""
    inside = cache["inside"]
    dx_in, corners = _rq_pullback(dy * inside, dlog_det * inside, cache)
    dx = np.where(inside, dx_in, dy)        # tails: y = x, log_det = 0
    return (dx, *_scatter(corners, cache["k"], cache["K"]))


def _rq_root(r, h, s, d0, d1):
    """``xi`` in [0, 1] with ``g = y0 + r`` in a bin: the stable root, discriminant clamped."""
    D = d1 + d0 - 2.0 * s
    a = h * (s - d0) + r * D
    b = h * d0 - r * D
    c = -s * r
    disc = np.maximum(b * b - 4.0 * a * c, 0.0)
    return np.clip(2.0 * c / (-b - np.sqrt(disc)), 0.0, 1.0)


def rq_inverse(y, knot_x, knot_y, deriv):
    r"""Inverse of :func:`rq_forward`: ``(x, log_det = log dx/dy, cache)``, elementwise.

    The bin is found among the *y* knots; ``xi`` is the stable root of the quadratic in the
    module docstring, with the discriminant clamped at 0 and ``xi`` at ``[0, 1]`` (round-off only).
    """
    B = knot_y[..., -1]
    inside = np.abs(y) <= B
    yc = np.clip(y, -B, B)
    k = _search(knot_y, yc)
    x0, x1, y0, y1, d0, d1 = _gather(knot_x, knot_y, deriv, k)
    w, h = x1 - x0, y1 - y0
    s = h / w
    xi = _rq_root(yc - y0, h, s, d0, d1)
    P, den, Q, log_g = _rq_terms(xi, s, d0, d1)
    x = np.where(inside, x0 + xi * w, y)
    log_det = np.where(inside, -log_g, 0.0)
    cache = {"inside": inside, "k": k, "xi": xi, "w": w, "h": h, "s": s, "d0": d0, "d1": d1,
             "P": P, "den": den, "Q": Q, "K": knot_x.shape[-1] - 1}
    return x, log_det, cache


def rq_inverse_backward(dx, dlog_det, cache):
    """Backward of :func:`rq_inverse` by the implicit-function theorem: ``(dy, dknot_x, ...)``."""
    inside = cache["inside"]
    dx_in, dl = dx * inside, dlog_det * inside
    # g' and d(log g')/dx at the root: one pullback with dy = 0, dl = 1 gives the latter
    slope = np.exp(_rq_terms(cache["xi"], cache["s"], cache["d0"], cache["d1"])[3])
    dlog_slope_dx, _ = _rq_pullback(np.zeros_like(dx_in), np.ones_like(dx_in), cache)
    x_bar = dx_in - dl * dlog_slope_dx
    _, corners = _rq_pullback(-x_bar / slope, -dl, cache)
    dy = np.where(inside, x_bar / slope, dx)
    return (dy, *_scatter(corners, cache["k"], cache["K"]))


# ---------------------------------------------------------------------------------------------
# 3. the whole elementwise spline: parameters -> knots -> map (the autoregressive layer's unit)
# ---------------------------------------------------------------------------------------------
def spline_forward(x, uw, uh, ud, bound=BOUND, min_width=MIN_WIDTH, min_height=MIN_HEIGHT,
                   min_derivative=MIN_DERIVATIVE):
    r"""Elementwise RQ spline from unconstrained parameters: ``(y, log_det, cache)``.

    Parameters
    ----------
    x : ndarray, shape S
    uw, uh : ndarray, shape S + (K,)
    ud : ndarray, shape S + (K - 1,)
    bound, min_width, min_height, min_derivative : float
        See :func:`spline_params`.

    Returns
    -------
    y, log_det : ndarray, shape S
    cache : dict

    Examples
    --------
    >>> x = np.array([-9.0, -1.0, 0.5, 2.0])
    >>> y, log_det, _ = spline_forward(x, np.zeros((4, 8)), np.zeros((4, 8)), np.zeros((4, 7)))
    >>> bool(np.allclose(y, x)), bool(np.allclose(log_det, 0.0))
    (True, True)
    """
    knot_x, knot_y, deriv, p_cache = spline_params(uw, uh, ud, bound, min_width, min_height,
                                                   min_derivative)
    y, log_det, cache = rq_forward(x, knot_x, knot_y, deriv)
    return y, log_det, {"rq": cache, "params": p_cache}


def spline_backward(dy, dlog_det, cache):
    """Backward of :func:`spline_forward`: ``(dx, duw, duh, dud)``."""
    dx, *dknots = rq_backward(dy, dlog_det, cache["rq"])
    return (dx, *spline_params_backward(*dknots, cache["params"]))


def spline_inverse(y, uw, uh, ud, bound=BOUND, min_width=MIN_WIDTH, min_height=MIN_HEIGHT,
                   min_derivative=MIN_DERIVATIVE):
    """Inverse of :func:`spline_forward`: ``(x, log_det = log dx/dy, cache)``."""
    knot_x, knot_y, deriv, p_cache = spline_params(uw, uh, ud, bound, min_width, min_height,
                                                   min_derivative)
    x, log_det, cache = rq_inverse(y, knot_x, knot_y, deriv)
    return x, log_det, {"rq": cache, "params": p_cache}


def spline_inverse_backward(dx, dlog_det, cache):
    """Backward of :func:`spline_inverse`: ``(dy, duw, duh, dud)``."""
    dy, *dknots = rq_inverse_backward(dx, dlog_det, cache["rq"])
    return (dy, *spline_params_backward(*dknots, cache["params"]))


# ---------------------------------------------------------------------------------------------
# 4. spline coupling: the conditioner chooses every transformed feature's spline
# ---------------------------------------------------------------------------------------------
def _split(mask):
    return np.flatnonzero(mask == 1), np.flatnonzero(mask == 0)


def _unpack(out, d_b, n_bins):
    """Conditioner output (N, d_b (3K-1)) -> ``uw, uh`` (N, d_b, K) and ``ud`` (N, d_b, K-1)."""
    theta = out.reshape(out.shape[0], d_b, 3 * n_bins - 1)
    return theta[..., :n_bins], theta[..., n_bins:2 * n_bins], theta[..., 2 * n_bins:]


def _opts(bound, min_width, min_height, min_derivative):
    return dict(bound=bound, min_width=min_width, min_height=min_height,
                min_derivative=min_derivative)


def _coupling_pass(p, mask, net_params, activation, n_bins, spline_opts, step, context):
    ia, ib = _split(mask)
    out, net_cache = mlp_forward(conditioner_input(p[:, ia], context), net_params,
                                 activation)                          # (N, d_b (3K-1))
    res_b, log_det, sp_cache = step(p[:, ib], *_unpack(out, ib.size, n_bins), **spline_opts)
    res = p.copy()
    res[:, ib] = res_b
    cache = {"n": p.shape[0], "ia": ia, "ib": ib, "net_cache": net_cache, "spline": sp_cache}
    return res, log_det.sum(axis=1), cache


def _coupling_pass_backward(d_out, dlog_det, cache, step):
    ia, ib = cache["ia"], cache["ib"]
    d_b, *dtheta = step(d_out[:, ib], np.broadcast_to(dlog_det[:, None], (d_out.shape[0], ib.size)),
                        cache["spline"])
    dout = np.concatenate(dtheta, axis=-1).reshape(d_out.shape[0], -1)   # (N, d_b (3K-1))
    d_net_in, grads = mlp_backward(dout, cache["net_cache"])
    d_in = np.empty_like(d_out)
    d_in[:, ia] = d_out[:, ia] + split_conditioner_grad(d_net_in, ia.size, grads)
    d_in[:, ib] = d_b
    return d_in, grads


def spline_coupling_forward(z, mask, net_params, activation="tanh", n_bins=8, bound=BOUND,
                            min_width=MIN_WIDTH, min_height=MIN_HEIGHT,
                            min_derivative=MIN_DERIVATIVE, context=None):
    """Spline coupling, generative direction: ``(x, log_det, cache)``.

    Parameters
    ----------
    z : ndarray, shape (N, D)
    mask : ndarray of {0, 1}, shape (D,)
        1 marks the conditioning features (passed through), 0 the transformed ones.
    net_params : dict
        Conditioner MLP params mapping ``d_a -> d_b (3 n_bins - 1)``.
    activation : str
    n_bins, bound, min_width, min_height, min_derivative
        The spline's settings (see :func:`spline_params`).
    context : ndarray, shape (N, C), optional
        Conditioning input, read by the conditioner after ``z_a`` (the MLP then maps
        ``d_a + C -> d_b (3 n_bins - 1)``); its gradient comes back as ``grads["context"]``.

    Examples
    --------
    >>> from nfscratch.nn import MLP
    >>> net = MLP([1, 8, 23], rng=0)
    >>> x, log_det, _ = spline_coupling_forward(np.ones((3, 2)), np.array([1, 0]), net.params)
    >>> x.shape, log_det.shape
    ((3, 2), (3,))
    """
    opts = _opts(bound, min_width, min_height, min_derivative)
    return _coupling_pass(z, mask, net_params, activation, n_bins, opts, spline_forward, context)


def spline_coupling_backward(dx, dlog_det, cache):
    """Backward of :func:`spline_coupling_forward`: ``(dz, conditioner grads)``."""
    return _coupling_pass_backward(dx, dlog_det, cache, spline_backward)


def spline_coupling_inverse(x, mask, net_params, activation="tanh", n_bins=8, bound=BOUND,
                            min_width=MIN_WIDTH, min_height=MIN_HEIGHT,
                            min_derivative=MIN_DERIVATIVE, context=None):
    """Spline coupling, normalizing direction: ``(z, log_det = log|det dz/dx|, cache)``."""
    opts = _opts(bound, min_width, min_height, min_derivative)
    return _coupling_pass(x, mask, net_params, activation, n_bins, opts, spline_inverse, context)


def spline_coupling_inverse_backward(dz, dlog_det, cache):
    """Backward of :func:`spline_coupling_inverse`: ``(dx, conditioner grads)``."""
    return _coupling_pass_backward(dz, dlog_det, cache, spline_inverse_backward)


class SplineCoupling(Transform):
    """Rational-quadratic spline coupling layer (see the module docstring for the math).

    Parameters
    ----------
    dim : int
        Number of features D >= 2.
    mask : array_like of {0, 1}, shape (D,), optional
        1 = conditioning feature. Default: alternating, starting with 1 (or 0 if ``parity=1``).
    hidden : sequence of int
        Hidden widths of the conditioner MLP.
    activation : str
    n_bins : int
        K >= 2 bins.
    bound : float
        The splines act on ``[-bound, bound]``; the identity outside.
    min_width, min_height, min_derivative : float
        Floors of the bin sizes (fractions of the interval) and of the knot derivatives.
    rng : numpy.random.Generator or int, optional
    zero_init : bool
        Zero the conditioner's last layer, so the layer starts as the identity exactly.
    context_dim : int
        Width C of a context read by the conditioner (``p(x | y)``); 0 (default): not
        conditional. When C > 0 every pass needs ``context`` (N, C) and the backward passes
        leave its gradient in ``self.dcontext``.

    Examples
    --------
    >>> t = SplineCoupling(2, hidden=[16], n_bins=4, rng=0, zero_init=False)
    >>> z = np.random.default_rng(1).normal(size=(5, 2))
    >>> x, log_det = t.forward(z)
    >>> bool(np.allclose(t.inverse(x)[0], z))
    True
    """

    def __init__(self, dim, mask=None, hidden=(64, 64), activation="tanh", n_bins=8,
                 bound=BOUND, min_width=MIN_WIDTH, min_height=MIN_HEIGHT,
                 min_derivative=MIN_DERIVATIVE, rng=None, parity=0, zero_init=True, context_dim=0):
        super().__init__(dim)
        self.context_dim = check_context_dim(context_dim)
        if dim < 2:
            raise ValueError(f"dim: a coupling layer needs at least 2 features, got {dim}.")
        mask = alternating_mask(dim, parity) if mask is None else np.asarray(mask)
        if mask.shape != (dim,) or not np.all((mask == 0) | (mask == 1)) or mask.sum() in (0, dim):
            raise ValueError(f"mask: expected {dim} entries of 0 or 1 with both values present, "
                             f"got {np.asarray(mask).tolist()}.")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation: expected one of {sorted(ACTIVATIONS)}, got {activation!r}.")
        _check_spline_settings(n_bins, bound, min_width, min_height, min_derivative)
        self.mask = mask.astype(np.int64)
        self.hidden = [int(h) for h in hidden]
        self.activation = activation
        self.n_bins = int(n_bins)
        self.bound = float(bound)
        self.min_width, self.min_height = float(min_width), float(min_height)
        self.min_derivative = float(min_derivative)
        d_a = int(self.mask.sum())
        self.net = MLP([d_a + self.context_dim, *self.hidden, (dim - d_a) * (3 * self.n_bins - 1)],
                       activation,
                       rng=as_rng(rng), zero_last=zero_init)
        self.params = self.net.params                   # shared arrays: updates reach the net
        self.zero_grads()

    def config(self):
        cfg = {"dim": self.dim, "mask": self.mask.tolist(), "hidden": self.hidden,
               "activation": self.activation, "n_bins": self.n_bins, "bound": self.bound,
               "min_width": self.min_width, "min_height": self.min_height,
               "min_derivative": self.min_derivative}
        return {**cfg, "context_dim": self.context_dim} if self.context_dim else cfg

    @classmethod
    def param_shapes(cls, dim, mask=None, hidden=(64, 64), n_bins=8, parity=0, context_dim=0,
                     **config):
        mask = alternating_mask(dim, parity) if mask is None else np.asarray(mask)
        d_a = int(np.sum(mask))
        sizes = [d_a + int(context_dim), *[int(h) for h in hidden],
                 (dim - d_a) * (3 * int(n_bins) - 1)]
        return mlp_param_shapes(sizes)

    def knots(self, z, params=None, context=None):
        """The knots every transformed feature uses at the points ``z`` (N, D).

        Returns ``knot_x, knot_y, deriv``, each (N, d_b, K + 1), for pictures and teaching;
        ``params`` (default: the layer's own) lets one look at a saved copy, e.g. before training;
        ``context`` (N, C) is required for a conditional layer.
        """
        ia, ib = _split(self.mask)
        z = np.asarray(z, dtype=np.float64)
        context = self.check_context(context, z.shape[0])
        out, _ = mlp_forward(conditioner_input(z[:, ia], context),
                             self.params if params is None else params, self.activation)
        return spline_params(*_unpack(out, ib.size, self.n_bins),
                             **_opts(self.bound, self.min_width, self.min_height,
                                     self.min_derivative))[:3]

    def _spline_args(self):
        return (self.mask, self.params, self.activation, self.n_bins, self.bound,
                self.min_width, self.min_height, self.min_derivative)

    def _forward(self, z, context=None):
        if use_kernels():
            return _fast().forward(self, z, context)
        return spline_coupling_forward(z, *self._spline_args(), context=context)

    def _backward(self, dx, dlog_det, cache):
        if "kernels" in cache:
            return _fast().backward(cache, dx, dlog_det)
        return spline_coupling_backward(dx, dlog_det, cache)

    def _inverse(self, x, context=None):
        if use_kernels():
            return _fast().inverse(self, x, context)
        return spline_coupling_inverse(x, *self._spline_args(), context=context)

    def _inverse_backward(self, dz, dlog_det, cache):
        if "kernels" in cache:
            return _fast().backward(cache, dz, dlog_det)
        return spline_coupling_inverse_backward(dz, dlog_det, cache)


def _check_spline_settings(n_bins, bound, min_width, min_height, min_derivative):
    if check_positive_int(n_bins, "n_bins") < 2:
        raise ValueError(f"n_bins: expected at least 2 bins, got {n_bins}.")
    check_positive_float(bound, "bound")
    check_positive_float(min_width, "min_width", below=1.0 / n_bins)
    check_positive_float(min_height, "min_height", below=1.0 / n_bins)
    check_positive_float(min_derivative, "min_derivative", below=1.0)


def _fast():
    from . import _spline_fast      # imported on first use: it loads Numba code
    return _spline_fast
