r"""Radial flow (Rezende & Mohamed, 2015): contract or expand space around a centre ``z0``.

Notes
-----
Forward map (generative direction), for one sample ``z`` of dimension D:

.. math::

    x = z + \hat\beta\, h(\alpha, r)\,(z - z_0), \qquad r = \|z - z_0\|, \qquad
    h(\alpha, r) = \frac{1}{\alpha + r},

with ``alpha > 0``. Every point moves along the ray from ``z0`` through it: ``x - z0`` is
``d = z - z0`` times the radial factor

.. math:: g(r) = 1 + \hat\beta h = \frac{r + m}{r + \alpha}, \qquad m = \alpha + \hat\beta,

so near ``z0`` space is scaled by ``m / alpha`` and far from it points are pushed out by
``beta_hat`` (pulled in if ``beta_hat < 0``).

Log-det. The Jacobian is ``g I + g'(r) d d^T / r``: the factor ``g`` on the D - 1 directions
across the ray, and the radial slope ``q = d r_x / d r`` along it, where ``r_x = |x - z0| = r g``:

.. math::

    \log|\det \partial x/\partial z| = (D - 1) \log g + \log q, \qquad
    q = g + r g' = 1 + \hat\beta h + \hat\beta h'(r)\, r
      = 1 + \frac{\alpha \hat\beta}{(\alpha + r)^2}.

Invertibility. ``r_x = r g(r)`` must increase with ``r``: ``q >= 0`` for all ``r >= 0``. ``q`` is
smallest at ``r = 0``, where it is ``1 + beta_hat / alpha``, hence ``beta_hat >= -alpha``
(Appendix A.2), i.e. ``m >= 0``; ``m > 0`` for a finite log-det at ``z0``.

Parameterization. The stored, unconstrained parameters are ``z0`` (D,), ``log_alpha`` (1,) and
``beta`` (1,):

.. math:: \alpha = e^{\log\alpha}, \qquad m = \log(1 + e^{\beta}), \qquad \hat\beta = -\alpha + m,

so ``beta_hat > -alpha`` whatever the parameters are (the same softplus ``m(x) = log(1 + e^x)``
that keeps the planar ``u_hat`` invertible). ``alpha`` is a length -- the radius where the map turns from "scale by
m/alpha" into "shift by beta_hat" -- so it is stored as its log: an optimizer step changes it by
a relative amount, the same at every scale, and no step can make it negative or zero (a softplus
would behave the same for small ``alpha``, where it equals ``exp``; for large ``alpha`` the log
keeps ``dL/dlog_alpha = alpha dL/dalpha`` scale free). ``alpha`` and ``m`` each depend on one raw
parameter only, which keeps the chain rule through the reparameterization trivial.

Numerics. The code is written in ``alpha`` and ``m`` (both > 0), never ``1 + beta_hat h`` or
``1 + alpha beta_hat / s^2`` as written: near the constraint ``beta_hat ~ -alpha`` those sums
cancel to ``~ m / alpha`` and lose every digit (like ``1 + c`` in planar). With ``s = alpha + r``
and ``t = m + r``

.. math:: g = \frac{t}{s}, \qquad
          q = \frac{r (r + 2\alpha) + \alpha m}{s^2}
            = \frac{r}{s}\Big(1 + \frac{\alpha}{s}\Big) + \frac{\alpha}{s}\,\frac{m}{s}

are ratios and sums of non-negative numbers, accurate to a few ulps for any ``m`` (the last form
also cannot overflow for huge ``r``). ``m = softplus(beta)`` is itself computed without
cancellation; it underflows to 0 only for ``beta < -745``, where the layer stops being
invertible in float64 (``q = 0`` at ``z0``).

Backward (forward direction). Upstream ``dx`` (N, D) and ``dl`` (N,) = dL/dlog_det; per sample
``dg = dx . d``. From ``dg/dr = -beta_hat / s^2``, ``d log g / dr = -beta_hat / (t s)`` and
``d log q / dr = -2 alpha beta_hat / (q s^3)``:

.. math::

    dr = -\hat\beta \Big(\frac{dg}{s^2} + dl\,\frac{D-1}{t s}
                         + dl\,\frac{2\alpha}{q s^3}\Big), \qquad
    dz = g\, dx + dr\, \frac{d}{r}, \qquad dz_0 = \textstyle\sum_n (dx_n - dz_n),

    dm = \sum_n \Big(\frac{dg}{s} + dl\,\frac{D-1}{t} + dl\,\frac{\alpha}{q s^2}\Big), \qquad
    d\alpha = \sum_n \Big(-\frac{dg\, g}{s} - dl\,\frac{D-1}{s}
              + dl\,\frac{r(\hat\beta - \alpha) - \alpha m}{q s^3}\Big),

then ``dlog_alpha = alpha dalpha`` and ``dbeta = sigmoid(beta) dm``.

The centre ``r = 0``. ``d / r`` has no limit there and is taken as 0. For the ``x`` output this is
exact: the term it carries, ``-beta_hat (dx . d) d / (s^2 r)``, has size ``|d|`` and vanishes at
``d = 0``, where the map is C^1 with Jacobian ``(m / alpha) I``. The log-det is a function of
``r = |d|`` alone and its slope in ``r`` is not 0 at ``r = 0``, so it has a cone-shaped kink at
``z0`` and no gradient there; 0 is the symmetric choice (the average over directions, and what
central differences return), as ``datasets.U1`` does for its ``|z|``. Only C^1 (the map contains
``g'(0) |d| d``) means central differences at ``z0`` have an O(eps) error instead of O(eps^2):
check gradients there with a smaller step.

Inverse (closed form). Given ``x``, let ``y = x - z0`` and ``r_x = |y|``. Then ``r`` solves
``r (r + m) = r_x (r + alpha)``:

.. math:: r^2 + b\, r - \alpha r_x = 0, \qquad b = m - r_x,

whose roots multiply to ``-alpha r_x <= 0``, so exactly one is non-negative,
``r = (-b + sqrt(b^2 + 4 alpha r_x)) / 2``. For ``b > 0`` that subtraction cancels (badly when
``b^2 >> alpha r_x``), so there the equal ``r = 2 alpha r_x / (b + sqrt(b^2 + 4 alpha r_x))`` is
used: each branch only adds positive numbers. The square root is ``hypot(b, 2 sqrt(alpha r_x))``,
which cannot overflow. Then ``z = z0 + y / g(r) = z0 + k y`` with ``k = s / t``, and
``log|det dz/dx| = -(D - 1) log g - log q``.

Backward of the inverse. ``r(r_x, alpha, m)`` is differentiated implicitly, not through the root
formula: ``r_x = r g(r, alpha, m)`` gives

.. math:: q\, \delta r = \delta r_x + \frac{r g}{s}\, \delta\alpha - \frac{r}{s}\, \delta m,

whose divisor is the same cancellation-free ``q``; differentiating the root formula instead
would bring back ``1 - b / sqrt(b^2 + 4 alpha r_x)``-type differences. With upstream ``dz``,
``dl`` and ``dk = dz . y``, first the explicit dependence on ``r`` (at fixed ``r_x``), then the
chain through ``r``:

.. math::

    \rho = \hat\beta \Big(\frac{dk}{t^2} + dl\,\frac{D-1}{t s} + dl\,\frac{2\alpha}{q s^3}\Big),
    \qquad dx = k\, dz + \frac{\rho}{q} \frac{y}{r_x}, \qquad
    dz_0 = \textstyle\sum_n (dz_n - dx_n),

    dm = \sum_n \Big(-\frac{dk\, k}{t} - dl\,\frac{D-1}{t} - dl\,\frac{\alpha}{q s^2}
                     - \frac{\rho\, r}{q s}\Big), \qquad
    d\alpha = \sum_n \Big(\frac{dk}{t} + dl\,\frac{D-1}{s}
              - dl\,\frac{r(\hat\beta - \alpha) - \alpha m}{q s^3} + \frac{\rho\, r g}{q s}\Big),

with ``y / r_x`` taken as 0 at ``x = z0`` (as above).

References
----------
Rezende, Mohamed, "Variational Inference with Normalizing Flows", ICML 2015, arXiv:1505.05770
(Eq. 14 for the radial flow, Appendix A.2 for the invertibility condition).
"""
import numpy as np

from ..nn import sigmoid, softplus
from .._validate import as_rng
from .base import Transform

__all__ = ["radial_params", "radial_forward", "radial_backward", "solve_radial_r",
           "radial_inverse", "radial_inverse_backward", "Radial"]


# ---------------------------------------------------------------------------------------------
# the reparameterization (log_alpha, beta) -> (alpha, m, beta_hat), shared by both directions
# ---------------------------------------------------------------------------------------------
def radial_params(log_alpha, beta, constrain=True):
    """Return the scalars ``(alpha, m, beta_hat)``; ``m = alpha + beta_hat`` is computed directly.

    ``constrain=True``: ``alpha = exp(log_alpha)``, ``m = softplus(beta)``, ``beta_hat = m - alpha``
    (always invertible). ``constrain=False``: ``beta_hat = beta`` as is, ``m = alpha + beta``
    (which cancels near the constraint -- one of the things the reparameterization avoids).
    The scalars keep the dtype of the inputs, so the forward and inverse functions also run in
    ``np.longdouble`` (the tests use that as a higher-precision reference).
    """
    alpha = np.exp(log_alpha[0])
    if constrain:
        m = softplus(beta[0])
        return alpha, m, m - alpha
    return alpha, alpha + beta[0], beta[0]


def _params_backward(dalpha, dm, log_alpha, beta, constrain):
    """Chain ``dalpha`` and ``dm`` (floats) back to ``{"log_alpha", "beta"}``."""
    alpha = float(np.exp(log_alpha[0]))
    if constrain:                     # alpha(log_alpha) and m(beta) are independent
        return {"log_alpha": np.array([alpha * dalpha]),
                "beta": np.array([float(sigmoid(beta[0])) * dm])}
    return {"log_alpha": np.array([alpha * (dalpha + dm)]), "beta": np.array([dm])}


def _check_invertible(alpha, m, beta_hat, constrain):
    if not constrain and not m > 0.0:
        raise ValueError(f"Radial: beta = {beta_hat:.6g} with alpha = {alpha:.6g}, but "
                         "invertibility needs beta >= -alpha (strictly > for a finite log-det). "
                         "Use constrain=True (beta_hat = -alpha + softplus(beta)) or raise beta.")


def _radial_terms(r, alpha, m):
    """Per-sample ``s = alpha + r``, ``t = m + r``, ``g = t/s`` and ``q`` (see the module notes)."""
    s = alpha + r                             # (N,)
    t = m + r                                 # (N,)
    u, v = r / s, alpha / s                   # u + v = 1, both in [0, 1]
    q = u * (1.0 + v) + v * (m / s)           # = 1 + alpha beta_hat / s^2 > 0, no cancellation
    return s, t, t / s, q


def _norm(d):
    """Row norms ``|d_n|`` (N,). A row whose squares overflow (entries beyond ~1e154) is scaled
    by its largest entry first, so any finite row has a finite norm."""
    with np.errstate(over="ignore"):
        r = np.sqrt(np.sum(d * d, axis=1))
    big = np.isinf(r) & np.all(np.isfinite(d), axis=1)
    if np.any(big):
        scale = np.max(np.abs(d[big]), axis=1)
        r[big] = scale * np.sqrt(np.sum((d[big] / scale[:, None]) ** 2, axis=1))
    return r


def _unit(d, r):
    """``d / r`` row by row, with 0 where ``r = 0`` (the gradient convention at the centre)."""
    pos = r > 0.0
    return d * np.where(pos, 1.0 / np.where(pos, r, 1.0), 0.0)[:, None]


# ---------------------------------------------------------------------------------------------
# forward direction
# ---------------------------------------------------------------------------------------------
def radial_forward(z, z0, log_alpha, beta, constrain=True):
    """Radial map ``x = z + beta_hat (z - z0) / (alpha + |z - z0|)``.

    Parameters
    ----------
    z : ndarray, shape (N, D)
    z0 : ndarray, shape (D,)
    log_alpha, beta : ndarray, shape (1,)
    constrain : bool
        Use ``beta_hat = -alpha + softplus(beta)`` (always invertible). With False, ``beta`` is
        ``beta_hat`` itself and ``beta <= -alpha`` raises ValueError.

    Returns
    -------
    x : ndarray, shape (N, D)
    log_det : ndarray, shape (N,)
        ``log|det dx/dz|`` per sample.
    cache : dict

    Examples
    --------
    >>> z = np.array([[0.0, 0.0], [3.0, 4.0]])
    >>> b = np.array([np.log(np.expm1(3.0))])                 # softplus(b) = 3, so m = 3
    >>> x, log_det, _ = radial_forward(z, np.zeros(2), np.zeros(1), b)  # alpha 1, beta_hat 2
    >>> x                                                      # |z| = 5 grows to 5 + 2 * 5/6
    array([[0. , 0. ],
           [4. , 5.3...]])
    >>> bool(np.isclose(log_det[0], 2 * np.log(3.0)))          # scale m/alpha = 3 at z0
    True
    """
    alpha, m, beta_hat = radial_params(log_alpha, beta, constrain)
    _check_invertible(alpha, m, beta_hat, constrain)
    D = z.shape[1]
    d = z - z0                                # (N, D)
    r = _norm(d)                              # (N,)
    s, t, g, q = _radial_terms(r, alpha, m)
    x = z0 + g[:, None] * d                   # (N, D) = z + beta_hat h d
    log_det = (D - 1) * np.log(g) + np.log(q)
    cache = {"n": z.shape[0], "d": d, "r": r, "s": s, "t": t, "g": g, "q": q, "alpha": alpha,
             "m": m, "beta_hat": beta_hat, "log_alpha": log_alpha, "beta": beta,
             "constrain": constrain}
    return x, log_det, cache


def radial_backward(dx, dlog_det, cache):
    """Backward of :func:`radial_forward`: return ``(dz, {"z0", "log_alpha", "beta"})``."""
    d, r, s, t, g, q = (cache[k] for k in ("d", "r", "s", "t", "g", "q"))
    alpha, m, beta_hat = cache["alpha"], cache["m"], cache["beta_hat"]
    D = d.shape[1]
    dl = dlog_det
    # written with 1/s, 1/t and dg/s so that no product overflows when |z - z0| is huge
    i_s, i_t = 1.0 / s, 1.0 / t                                       # (N,)
    dg_s = np.sum(dx * (d * i_s[:, None]), axis=1)                    # (N,) = dg / s
    dr = -beta_hat * (dg_s * i_s + dl * (D - 1) * i_t * i_s + dl * 2.0 * alpha * i_s**3 / q)
    dz = g[:, None] * dx + dr[:, None] * _unit(d, r)                  # (N, D)
    dm = float(np.sum(dg_s + dl * (D - 1) * i_t + dl * alpha * i_s**2 / q))
    dalpha = float(np.sum(-dg_s * g - dl * (D - 1) * i_s
                          + dl * ((r * i_s) * (beta_hat - alpha) - alpha * m * i_s) * i_s**2 / q))
    grads = _params_backward(dalpha, dm, cache["log_alpha"], cache["beta"], cache["constrain"])
    grads["z0"] = np.sum(dx - dz, axis=0)
    return dz, grads


# ---------------------------------------------------------------------------------------------
# inverse direction (closed form)
# ---------------------------------------------------------------------------------------------
def solve_radial_r(r_x, alpha, m):
    """The radius ``r >= 0`` with ``r (r + m) / (r + alpha) = r_x``, for every entry of ``r_x``.

    The non-negative root of ``r^2 + (m - r_x) r - alpha r_x = 0``, from whichever of the two
    algebraically equal formulas does not cancel (see the module notes).

    Examples
    --------
    >>> r = solve_radial_r(np.array([0.0, 0.5, 100.0]), alpha=1.0, m=1e-9)
    >>> bool(np.allclose(r * (r + 1e-9) / (r + 1.0), [0.0, 0.5, 100.0], rtol=1e-15, atol=0))
    True
    """
    b = m - r_x                                            # (N,)
    root = np.hypot(b, 2.0 * np.sqrt(alpha * r_x))         # sqrt(b^2 + 4 alpha r_x), no overflow
    pos = b > 0.0
    return np.where(pos, 2.0 * alpha * r_x / np.where(pos, b + root, 1.0), 0.5 * (root - b))


def radial_inverse(x, z0, log_alpha, beta, constrain=True):
    """Inverse of :func:`radial_forward` in closed form: ``(z, log_det, cache)``.

    ``log_det = log|det dz/dx|`` per sample, shape (N,).
    """
    alpha, m, beta_hat = radial_params(log_alpha, beta, constrain)
    _check_invertible(alpha, m, beta_hat, constrain)
    D = x.shape[1]
    y = x - z0                                 # (N, D)
    r_x = _norm(y)                             # (N,)
    r = solve_radial_r(r_x, alpha, m)          # (N,) radius on the base side
    s, t, g, q = _radial_terms(r, alpha, m)
    k = s / t                                  # (N,) = 1 / g
    z = z0 + k[:, None] * y
    log_det = -(D - 1) * np.log(g) - np.log(q)
    cache = {"n": x.shape[0], "y": y, "r_x": r_x, "r": r, "s": s, "t": t, "g": g, "q": q,
             "k": k, "alpha": alpha, "m": m, "beta_hat": beta_hat, "log_alpha": log_alpha,
             "beta": beta, "constrain": constrain}
    return z, log_det, cache


def radial_inverse_backward(dz, dlog_det, cache):
    """Backward of :func:`radial_inverse`: ``(dx, {"z0", "log_alpha", "beta"})``.

    The radius ``r`` is differentiated implicitly (see the module notes).
    """
    y, r_x, r, s, t, g, q, k = (cache[n] for n in ("y", "r_x", "r", "s", "t", "g", "q", "k"))
    alpha, m, beta_hat = cache["alpha"], cache["m"], cache["beta_hat"]
    D = y.shape[1]
    dl = dlog_det
    # z = z0 + k(r, alpha, m) y and log_det = -(D-1) log g - log q: explicit dependence first
    # (with 1/s, 1/t and dk/t, as in radial_backward, so that nothing overflows)
    i_s, i_t = 1.0 / s, 1.0 / t                                            # (N,)
    dk_t = np.sum(dz * (y * i_t[:, None]), axis=1)                         # (N,) = dk / t
    rho = beta_hat * (dk_t * i_t + dl * (D - 1) * i_t * i_s + dl * 2.0 * alpha * i_s**3 / q)
    dm = float(np.sum(-dk_t * k - dl * (D - 1) * i_t - dl * alpha * i_s**2 / q))
    dalpha = float(np.sum(dk_t + dl * (D - 1) * i_s
                          - dl * ((r * i_s) * (beta_hat - alpha) - alpha * m * i_s) * i_s**2 / q))
    # then r(r_x, alpha, m) through r g(r, alpha, m) = r_x:  q dr = dr_x + (r g/s) dalpha - (r/s) dm
    a = rho / q                                                            # (N,)
    dr_x = a
    dalpha += float(np.sum(a * r * g / s))
    dm -= float(np.sum(a * r / s))
    dx = k[:, None] * dz + dr_x[:, None] * _unit(y, r_x)                  # (N, D)
    grads = _params_backward(dalpha, dm, cache["log_alpha"], cache["beta"], cache["constrain"])
    grads["z0"] = np.sum(dz - dx, axis=0)
    return dx, grads


# ---------------------------------------------------------------------------------------------
# the layer
# ---------------------------------------------------------------------------------------------
class Radial(Transform):
    """Radial flow layer ``x = z + beta_hat (z - z0) / (alpha + |z - z0|)``.

    Parameters
    ----------
    dim : int
    rng : numpy.random.Generator or int, optional
        Initial ``z0 ~ N(0, I)`` (centres spread where the base puts its mass), ``alpha = 1``
        and ``beta_hat`` within about 0.1 of 0, so the layer starts close to the identity.
    constrain : bool
        Use ``beta_hat = -alpha + softplus(beta)`` (default). Turn it off only to study the failure.

    Examples
    --------
    >>> t = Radial(2, rng=0)
    >>> z = np.random.default_rng(1).normal(size=(4, 2))
    >>> x, log_det = t.forward(z)
    >>> z_back, log_det_inv = t.inverse(x)
    >>> bool(np.allclose(z_back, z) and np.allclose(log_det, -log_det_inv))
    True
    """

    def __init__(self, dim, rng=None, constrain=True):
        super().__init__(dim)
        rng = as_rng(rng)
        self.constrain = bool(constrain)
        beta0 = np.log(np.expm1(1.0)) if self.constrain else 0.0    # beta_hat = 0: the identity
        self.params = {"z0": rng.normal(0.0, 1.0, dim), "log_alpha": np.zeros(1),
                       "beta": beta0 + rng.normal(0.0, 0.1, 1)}
        self.zero_grads()

    def config(self):
        return {"dim": self.dim, "constrain": self.constrain}

    @classmethod
    def param_shapes(cls, dim, **config):
        return {"z0": (dim,), "log_alpha": (1,), "beta": (1,)}

    @property
    def alpha(self):
        return float(self._alpha_m_beta_hat()[0])

    @property
    def beta_hat(self):
        return float(self._alpha_m_beta_hat()[2])

    def invertibility_margin(self):
        """The smallest radial slope ``q`` over all inputs, ``min(1, m / alpha)`` (at the centre
        when ``beta_hat < 0``): 0 is the limit where the layer stops being invertible (what
        :func:`nfscratch.doctor` reports)."""
        alpha, m, _ = self._alpha_m_beta_hat()
        return min(1.0, float(m / alpha))

    def _alpha_m_beta_hat(self):
        return radial_params(self.params["log_alpha"], self.params["beta"], self.constrain)

    def _forward(self, z):
        return radial_forward(z, **self.params, constrain=self.constrain)

    def _backward(self, dx, dlog_det, cache):
        return radial_backward(dx, dlog_det, cache)

    def _inverse(self, x):
        return radial_inverse(x, **self.params, constrain=self.constrain)

    def _inverse_backward(self, dz, dlog_det, cache):
        return radial_inverse_backward(dz, dlog_det, cache)
