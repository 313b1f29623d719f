r"""Two-dimensional targets for flows: toy data sets to fit and energies to match.

Two kinds of target live here, one for each training objective in DESIGN.md:

* **Samplers** (density estimation, forward KL). ``two_moons``, ``circles``,
  ``eight_gaussians``, ``checkerboard``, ``rings``, ``swiss_roll``, ``pinwheel`` and
  ``two_spirals`` each return an ``(n, 2)`` float64 array of iid draws. This is the 2-D suite
  used by most flow papers since FFJORD (Grathwohl et al., 2019); "two moons", "circles" and
  "swiss roll" follow scikit-learn's generators. Every mixture draws its component for each
  point independently (never in equal blocks), so sample statistics are unbiased for any ``n``.
  ``SAMPLERS`` maps names to functions and ``sample(name, n)`` dispatches on a name;
  ``entropy(name)`` gives the differential entropy where it is known, which is the floor of the
  negative log-likelihood any model can reach.
* **Energies** (variational inference, reverse KL). ``U1`` .. ``U4`` of Rezende & Mohamed
  (2015, Table 1) as :class:`Energy` objects with hand-derived gradients and a quadrature
  ``log_normalizer``; ``ENERGIES`` maps names to them and ``energy(name)`` looks one up.

The box convention for energies
-------------------------------
U2, U3 and U4 do not grow along :math:`z_1`, so :math:`\int \exp(-U)` over
:math:`\mathbb{R}^2` is infinite and the reverse KL has no lower bound (a flow could lower it
forever by spreading along :math:`z_1`). Every energy here -- U1 included, so that all four obey
one rule -- therefore has the wall

.. math:: W(z) = \sum_d \tfrac12 \big(\max(0, |z_d| - 4) / 0.25\big)^2

added to it. :math:`W` is exactly zero on the plotting box :math:`[-4, 4]^2`, so inside the
box the energies are exactly the paper's; outside, the density falls off like the tail of a
Gaussian with standard deviation 0.25. U1 already decays on its own (its density at the
wall is about :math:`e^{-12.5}` of its peak), so the wall changes its normalizer by a
negligible amount; adding it anyway keeps "the target" one well-defined thing for all four.

References
----------
.. [1] D. J. Rezende and S. Mohamed, "Variational Inference with Normalizing Flows",
   ICML 2015. arXiv:1505.05770
.. [2] W. Grathwohl, R. T. Q. Chen, J. Bettencourt, I. Sutskever and D. Duvenaud, "FFJORD:
   Free-form Continuous Dynamics for Scalable Reversible Generative Models", ICLR 2019.
   arXiv:1810.01367
"""
import math
import numbers

import numpy as np

from nfscratch._validate import as_batch, as_rng, check_positive_int
from nfscratch.config import get_backend

__all__ = [
    "two_moons", "circles", "eight_gaussians", "checkerboard", "rings", "swiss_roll",
    "pinwheel", "two_spirals", "SAMPLERS", "sample", "entropy",
    "Energy", "ENERGIES", "energy", "BOX_HALF_WIDTH", "WALL_SCALE",
    "digits", "dequantize", "bits_per_dim",
]


# ----------------------------------------------------------------------------------------------
# Argument checks specific to this module
# ----------------------------------------------------------------------------------------------
def _check_nonneg(value, name):
    """Return ``value`` as a float, requiring a finite real number >= 0."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a non-negative number, got {value!r} "
                        f"({type(value).__name__}).")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name}: expected a finite number >= 0, got {value}. "
                         f"Use {name}=0 for noise-free samples.")
    return value


def _add_noise(x, noise, rng):
    """Add iid N(0, noise^2) to every coordinate of ``x`` (in place) and return it."""
    if noise > 0:
        x += noise * rng.standard_normal(x.shape)
    return x


# ----------------------------------------------------------------------------------------------
# Samplers. Each: (n, rng=None, **kw) -> (n, 2) float64.
# ----------------------------------------------------------------------------------------------
def two_moons(n, rng=None, noise=0.1):
    r"""Two interleaving half circles (scikit-learn's ``make_moons`` with iid draws).

    Parameters
    ----------
    n : int
        Number of points.
    rng : numpy.random.Generator or int or None
    noise : float, default 0.1
        Standard deviation of the Gaussian noise added to each coordinate.

    Returns
    -------
    x : ndarray, shape (n, 2), float64

    Notes
    -----
    With :math:`t \sim U[0, \pi]` and a fair coin per point, the outer moon is
    :math:`(\cos t, \sin t)` and the inner one :math:`(1 - \cos t, \tfrac12 - \sin t)`.
    scikit-learn spaces :math:`t` evenly and splits the points in two halves; here both are
    drawn, which gives the same distribution.

    Examples
    --------
    >>> two_moons(5, rng=0).shape
    (5, 2)
    """
    n = check_positive_int(n, "n")
    noise = _check_nonneg(noise, "noise")
    rng = as_rng(rng)
    inner = rng.random(n) < 0.5                                   # (N,) which moon
    t = rng.uniform(0.0, np.pi, size=n)                           # (N,)
    x = np.empty((n, 2))
    x[:, 0] = np.where(inner, 1.0 - np.cos(t), np.cos(t))
    x[:, 1] = np.where(inner, 0.5 - np.sin(t), np.sin(t))
    return _add_noise(x, noise, rng)


def circles(n, rng=None, noise=0.08, factor=0.5):
    r"""Two concentric circles of radii 3 and ``3 * factor`` (``make_circles`` scaled by 3).

    Parameters
    ----------
    n : int
    rng : numpy.random.Generator or int or None
    noise : float, default 0.08
        Standard deviation of the noise on each coordinate, *before* the scaling by 3 (as in
        ``3 * make_circles(noise=noise)``), so the noise in the output has std ``3 * noise``.
    factor : float, default 0.5
        Ratio of the inner radius to the outer one, in (0, 1).

    Returns
    -------
    x : ndarray, shape (n, 2), float64

    Examples
    --------
    >>> circles(3, rng=0).shape
    (3, 2)
    """
    n = check_positive_int(n, "n")
    noise = _check_nonneg(noise, "noise")
    factor = _check_nonneg(factor, "factor")
    if not 0.0 < factor < 1.0:
        raise ValueError(f"factor: expected a ratio of radii in (0, 1), got {factor}.")
    rng = as_rng(rng)
    inner = rng.random(n) < 0.5                                   # (N,)
    angle = rng.uniform(0.0, 2.0 * np.pi, size=n)                 # (N,)
    radius = np.where(inner, factor, 1.0)
    x = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)  # (N, 2)
    return 3.0 * _add_noise(x, noise, rng)


_EIGHT_STD = 0.5 / math.sqrt(2.0)


def eight_gaussians(n, rng=None):
    r"""A mixture of 8 equally weighted Gaussians on a circle of radius :math:`4/\sqrt2`.

    Notes
    -----
    Means :math:`(4/\sqrt2)(\cos k\pi/4, \sin k\pi/4)`, :math:`k = 0..7`; isotropic standard
    deviation :math:`0.5/\sqrt2`; the component is drawn uniformly for each point.

    Returns
    -------
    x : ndarray, shape (n, 2), float64

    Examples
    --------
    >>> eight_gaussians(4, rng=0).shape
    (4, 2)
    """
    n = check_positive_int(n, "n")
    rng = as_rng(rng)
    k = rng.integers(0, 8, size=n)                                # (N,) component
    angle = k * (np.pi / 4.0)
    centers = (4.0 / math.sqrt(2.0)) * np.stack([np.cos(angle), np.sin(angle)], axis=1)  # (N, 2)
    return centers + _EIGHT_STD * rng.standard_normal((n, 2))


def checkerboard(n, rng=None):
    r"""Uniform on the 8 "on" squares (side 2) of a 4 x 4 checkerboard covering [-4, 4]^2.

    Notes
    -----
    :math:`x_1 \sim U[-2, 2]`, :math:`x_2 = U[0, 1) - 2\,\mathrm{Bernoulli}(\tfrac12) +
    (\lfloor x_1 \rfloor \bmod 2)`, then both are doubled. The square with column
    :math:`i = \lfloor x_1/2 \rfloor + 2` and row :math:`j = \lfloor x_2/2 \rfloor + 2` is "on"
    when :math:`i + j` is even. The density is 1/32 on a support of area 32, so the entropy
    is :math:`\ln 32` exactly.

    Returns
    -------
    x : ndarray, shape (n, 2), float64

    Examples
    --------
    >>> bool(np.all(np.abs(checkerboard(100, rng=0)) <= 4))
    True
    """
    n = check_positive_int(n, "n")
    rng = as_rng(rng)
    x1 = rng.uniform(-2.0, 2.0, size=n)
    x2 = rng.random(n) - 2.0 * (rng.random(n) < 0.5) + np.mod(np.floor(x1), 2.0)
    return 2.0 * np.stack([x1, x2], axis=1)                       # (N, 2)


_RING_RADII = 3.0 * np.array([1.0, 0.75, 0.5, 0.25])


def rings(n, rng=None, noise=0.08):
    r"""Four concentric rings of radii 3, 2.25, 1.5 and 0.75, each chosen with probability 1/4.

    Parameters
    ----------
    n : int
    rng : numpy.random.Generator or int or None
    noise : float, default 0.08
        Standard deviation of the Gaussian noise added to each coordinate.

    Returns
    -------
    x : ndarray, shape (n, 2), float64

    Examples
    --------
    >>> rings(2, rng=0).shape
    (2, 2)
    """
    n = check_positive_int(n, "n")
    noise = _check_nonneg(noise, "noise")
    rng = as_rng(rng)
    radius = _RING_RADII[rng.integers(0, 4, size=n)]              # (N,)
    angle = rng.uniform(0.0, 2.0 * np.pi, size=n)
    x = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)  # (N, 2)
    return _add_noise(x, noise, rng)


def swiss_roll(n, rng=None, noise=1.0):
    r"""The swiss roll seen from its side: ``make_swiss_roll(noise)[:, [0, 2]] / 5``.

    Parameters
    ----------
    n : int
    rng : numpy.random.Generator or int or None
    noise : float, default 1.0
        Standard deviation of the noise on each coordinate *before* the division by 5.

    Notes
    -----
    :math:`t = \tfrac32\pi(1 + 2u)`, :math:`u \sim U[0, 1]`, then
    :math:`x = (t\cos t + \epsilon_1,\; t\sin t + \epsilon_2) / 5` with
    :math:`\epsilon \sim N(0, \mathrm{noise}^2 I)`.

    Returns
    -------
    x : ndarray, shape (n, 2), float64

    Examples
    --------
    >>> swiss_roll(3, rng=0).shape
    (3, 2)
    """
    n = check_positive_int(n, "n")
    noise = _check_nonneg(noise, "noise")
    rng = as_rng(rng)
    t = 1.5 * np.pi * (1.0 + 2.0 * rng.random(n))                 # (N,) in [1.5 pi, 4.5 pi]
    x = np.stack([t * np.cos(t), t * np.sin(t)], axis=1)          # (N, 2)
    return _add_noise(x, noise, rng) / 5.0


def pinwheel(n, rng=None):
    r"""Five curved arms ("pinwheel"), each point on an arm chosen uniformly.

    Notes
    -----
    :math:`f \sim N((1, 0), \mathrm{diag}(0.3^2, 0.1^2))`, arm :math:`k \in \{0..4\}`,
    :math:`a = 2\pi k/5 + 0.25\, e^{f_0}` and
    :math:`x = 2\,(f_0\cos a + f_1 \sin a,\; -f_0 \sin a + f_1 \cos a)`: the point ``f`` rotated
    by :math:`-a`, where the angle grows with the radius so the arms curl.

    Returns
    -------
    x : ndarray, shape (n, 2), float64

    Examples
    --------
    >>> pinwheel(5, rng=0).shape
    (5, 2)
    """
    n = check_positive_int(n, "n")
    rng = as_rng(rng)
    f = rng.standard_normal((n, 2)) * np.array([0.3, 0.1])        # (N, 2)
    f[:, 0] += 1.0
    k = rng.integers(0, 5, size=n)                                # (N,) arm
    a = 2.0 * np.pi * k / 5.0 + 0.25 * np.exp(f[:, 0])            # (N,)
    cos_a, sin_a = np.cos(a), np.sin(a)
    x = np.stack([f[:, 0] * cos_a + f[:, 1] * sin_a,
                  -f[:, 0] * sin_a + f[:, 1] * cos_a], axis=1)    # (N, 2)
    return 2.0 * x


def two_spirals(n, rng=None, noise=0.1):
    r"""Two interleaved spirals, point-symmetric about the origin.

    Parameters
    ----------
    n : int
    rng : numpy.random.Generator or int or None
    noise : float, default 0.1
        Standard deviation of the Gaussian noise added to each coordinate (after the /3).

    Notes
    -----
    :math:`s = 3\pi\sqrt{u}` (so points are uniform in arc length, roughly), then
    :math:`x = \pm[(-s\cos s, s\sin s) + v] / 3 + \epsilon` with
    :math:`v \sim U[0, \tfrac12)^2`, a fair sign per point and
    :math:`\epsilon \sim N(0, \mathrm{noise}^2 I)`.

    Returns
    -------
    x : ndarray, shape (n, 2), float64

    Examples
    --------
    >>> two_spirals(4, rng=0).shape
    (4, 2)
    """
    n = check_positive_int(n, "n")
    noise = _check_nonneg(noise, "noise")
    rng = as_rng(rng)
    s = 3.0 * np.pi * np.sqrt(rng.random(n))                      # (N,) angle along the spiral
    x = np.stack([-s * np.cos(s), s * np.sin(s)], axis=1)         # (N, 2)
    x += 0.5 * rng.random((n, 2))
    sign = np.where(rng.random(n) < 0.5, 1.0, -1.0)[:, None]      # (N, 1) which spiral
    x = sign * x / 3.0
    return _add_noise(x, noise, rng)


SAMPLERS = {
    "two_moons": two_moons,
    "circles": circles,
    "eight_gaussians": eight_gaussians,
    "checkerboard": checkerboard,
    "rings": rings,
    "swiss_roll": swiss_roll,
    "pinwheel": pinwheel,
    "two_spirals": two_spirals,
}


def _lookup_sampler(name):
    if not isinstance(name, str) or name not in SAMPLERS:
        raise ValueError(f"name: unknown data set {name!r}; valid names are "
                         f"{', '.join(sorted(SAMPLERS))}.")
    return SAMPLERS[name]


def sample(name, n, rng=None, **kw):
    """Draw ``n`` points from the data set called ``name`` (a key of ``SAMPLERS``).

    Extra keyword arguments (e.g. ``noise``) are passed to the sampler.

    Returns
    -------
    x : ndarray, shape (n, 2), float64

    Examples
    --------
    >>> sample("rings", 3, rng=0, noise=0.0).shape
    (3, 2)
    """
    return _lookup_sampler(name)(n, rng=rng, **kw)


# Differential entropies (nats) for the default parameters, where one is known.
_ENTROPY = {
    "checkerboard": math.log(32.0),
    # Sum-of-parts value for 8 disjoint Gaussians: ln 8 + ln(2 pi e sigma^2). The components
    # overlap slightly, so the true value is lower by about 0.0063 nats (2.8316 by quadrature).
    "eight_gaussians": math.log(8.0) + math.log(2.0 * math.pi * math.e * _EIGHT_STD ** 2),
}


def entropy(name):
    r"""Differential entropy (nats) of a data set with its default parameters, or None.

    The entropy :math:`H(p) = -E_p[\log p(x)]` is the lowest average negative log-likelihood
    any model ``q`` can reach on data from ``p``, since
    :math:`E_p[-\log q] = H(p) + \mathrm{KL}(p\,\|\,q) \ge H(p)`. Training curves draw it as
    "the known limit": a test NLL below it signals a bug (or overfitting on too little data).

    * ``checkerboard``: :math:`\ln 32` exactly (uniform on area 32).
    * ``eight_gaussians``: :math:`\ln 8 + \ln(2\pi e \sigma^2)`, :math:`\sigma = 0.5/\sqrt2`,
      the value for 8 non-overlapping components. It is *approximate*: the slight overlap makes
      the true entropy about 0.006 nats smaller (2.8316 vs 2.8379).
    * every other data set: None (no closed form).

    Examples
    --------
    >>> round(entropy("checkerboard"), 4)
    3.4657
    >>> entropy("two_moons") is None
    True
    """
    _lookup_sampler(name)
    return _ENTROPY.get(name)


# ----------------------------------------------------------------------------------------------
# Energies of Rezende & Mohamed (2015), Table 1, plus the box wall.
# ----------------------------------------------------------------------------------------------
BOX_HALF_WIDTH = 4.0   # the wall starts at |z_d| = 4: the energies are the paper's on [-4, 4]^2
WALL_SCALE = 0.25      # beyond it, density decays like a Gaussian tail of this std


def _logaddexp(a, b):
    """``log(exp(a) + exp(b))`` elementwise without overflow or underflow to -inf."""
    return np.logaddexp(a, b)


def _wall(z):
    """W(z) = sum_d 1/2 (max(0, |z_d| - 4) / 0.25)^2, shape (N,); zero inside the box."""
    excess = np.maximum(0.0, np.abs(z) - BOX_HALF_WIDTH) / WALL_SCALE   # (N, D)
    return 0.5 * np.sum(excess * excess, axis=1)


def _wall_grad(z):
    """dW/dz_d = sign(z_d) max(0, |z_d| - 4) / 0.25^2, shape (N, D)."""
    return np.sign(z) * np.maximum(0.0, np.abs(z) - BOX_HALF_WIDTH) / WALL_SCALE ** 2


def _w1(z1):
    return np.sin(0.5 * np.pi * z1)                      # sin(2 pi z1 / 4)


def _dw1(z1):
    return 0.5 * np.pi * np.cos(0.5 * np.pi * z1)


def _w2(z1):
    return 3.0 * np.exp(-0.5 * ((z1 - 1.0) / 0.6) ** 2)


def _dw2(z1):
    return -_w2(z1) * (z1 - 1.0) / 0.36


def _sigmoid(t):
    # exp of a non-positive number only: no overflow warning for large |t|
    e = np.exp(-np.abs(t))
    return np.where(t >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _w3(z1):
    return 3.0 * _sigmoid((z1 - 1.0) / 0.3)              # /0.3, not /3 (a circulating typo)


def _dw3(z1):
    s = _sigmoid((z1 - 1.0) / 0.3)
    return 3.0 * s * (1.0 - s) / 0.3


def _two_bumps_grad(a, b, da, db):
    """Gradient of -log(e^a + e^b) given a, b (N,) and their gradients da, db (N, D)."""
    lse = _logaddexp(a, b)
    pa = np.exp(a - lse)[:, None]                         # (N, 1) softmax weights
    pb = np.exp(b - lse)[:, None]
    return -(pa * da + pb * db)


def _u1(z):
    z1 = z[:, 0]
    r = np.sqrt(np.sum(z * z, axis=1))                    # (N,)
    ring = 0.5 * ((r - 2.0) / 0.4) ** 2
    a = -0.5 * ((z1 - 2.0) / 0.6) ** 2
    b = -0.5 * ((z1 + 2.0) / 0.6) ** 2
    return ring - _logaddexp(a, b) + _wall(z)


def _u1_grad(z):
    z1 = z[:, 0]
    r = np.sqrt(np.sum(z * z, axis=1))
    # radial term: (r - 2)/0.16 * z/r, taken as 0 at the kink r = 0 (a valid subgradient)
    safe_r = np.where(r > 0.0, r, 1.0)
    coef = np.where(r > 0.0, (r - 2.0) / (0.16 * safe_r), 0.0)
    g = coef[:, None] * z                                 # (N, 2)
    a = -0.5 * ((z1 - 2.0) / 0.6) ** 2
    b = -0.5 * ((z1 + 2.0) / 0.6) ** 2
    da = np.zeros_like(z)
    db = np.zeros_like(z)
    da[:, 0] = -(z1 - 2.0) / 0.36
    db[:, 0] = -(z1 + 2.0) / 0.36
    return g + _two_bumps_grad(a, b, da, db) + _wall_grad(z)


def _u2(z):
    u = z[:, 1] - _w1(z[:, 0])
    return 0.5 * (u / 0.4) ** 2 + _wall(z)


def _u2_grad(z):
    u = z[:, 1] - _w1(z[:, 0])
    g = np.empty_like(z)
    g[:, 0] = -u / 0.16 * _dw1(z[:, 0])
    g[:, 1] = u / 0.16
    return g + _wall_grad(z)


def _u3_ab(z):
    u = z[:, 1] - _w1(z[:, 0])
    v = u + _w2(z[:, 0])
    return u, v, -0.5 * (u / 0.35) ** 2, -0.5 * (v / 0.35) ** 2


def _u3(z):
    _, _, a, b = _u3_ab(z)
    return -_logaddexp(a, b) + _wall(z)


def _u3_grad(z):
    z1 = z[:, 0]
    u, v, a, b = _u3_ab(z)
    s2 = 0.35 ** 2
    da = np.empty_like(z)
    db = np.empty_like(z)
    da[:, 0] = u / s2 * _dw1(z1)                          # da/dz1 = -(u/s^2) * du/dz1, du/dz1 = -w1'
    da[:, 1] = -u / s2
    db[:, 0] = -v / s2 * (-_dw1(z1) + _dw2(z1))
    db[:, 1] = -v / s2
    return _two_bumps_grad(a, b, da, db) + _wall_grad(z)


def _u4_ab(z):
    u = z[:, 1] - _w1(z[:, 0])
    v = u + _w3(z[:, 0])
    return u, v, -0.5 * (u / 0.4) ** 2, -0.5 * (v / 0.35) ** 2


def _u4(z):
    _, _, a, b = _u4_ab(z)
    return -_logaddexp(a, b) + _wall(z)


def _u4_grad(z):
    z1 = z[:, 0]
    u, v, a, b = _u4_ab(z)
    da = np.empty_like(z)
    db = np.empty_like(z)
    da[:, 0] = u / 0.16 * _dw1(z1)
    da[:, 1] = -u / 0.16
    db[:, 0] = -v / 0.35 ** 2 * (-_dw1(z1) + _dw3(z1))
    db[:, 1] = -v / 0.35 ** 2
    return _two_bumps_grad(a, b, da, db) + _wall_grad(z)


class Energy:
    r"""An unnormalized target density :math:`p(x) \propto \exp(-U(x))` on R^D with its gradient.

    Build one from your own functions with :meth:`Energy.from_functions`; the four of Rezende
    & Mohamed are in ``ENERGIES`` (see :func:`energy` for their formulas and gradients).

    Parameters
    ----------
    name : str
    dim : int
        D, the dimension of x.
    energy_fn : callable
        ``energy_fn(x)`` with x of shape (N, D) float64, returning U(x) of shape (N,).
    grad_fn : callable
        ``grad_fn(x)`` returning dU/dx of shape (N, D).

    Attributes
    ----------
    name : str
    dim : int
    """

    def __init__(self, name, dim, energy_fn, grad_fn):
        if not isinstance(name, str) or not name:
            raise TypeError(f"name: expected a non-empty string, got {name!r}.")
        for arg, fn in (("energy_fn", energy_fn), ("grad_fn", grad_fn)):
            if not callable(fn):
                raise TypeError(f"{arg}: expected a callable taking x of shape (N, D) and "
                                f"returning an array, got {type(fn).__name__}.")
        self.name = name
        self.dim = check_positive_int(dim, "dim")
        self._energy_fn = energy_fn
        self._grad_fn = grad_fn
        self._log_z_cache = {}
        self._kernel_code = None    # U1-U4: their code in nfscratch.kernels.energies (set below)

    @classmethod
    def from_functions(cls, name, dim, energy_fn, grad_fn):
        """Wrap a user-supplied energy ``U(x) -> (N,)`` and its gradient ``-> (N, D)``.

        The functions receive validated float64 arrays of shape (N, D); their outputs are
        checked for shape on every call.

        Examples
        --------
        >>> gauss = Energy.from_functions("gauss", 2, lambda x: 0.5 * np.sum(x**2, axis=1),
        ...                               lambda x: x)
        >>> gauss.energy(np.array([[3.0, 4.0]]))
        array([12.5])
        """
        return cls(name, dim, energy_fn, grad_fn)

    def __repr__(self):
        return f"Energy(name={self.name!r}, dim={self.dim})"

    def _checked_output(self, out, shape, what):
        out = np.asarray(out, dtype=np.float64)
        if out.shape != shape:
            raise ValueError(f"{self.name}: the {what} function returned shape {out.shape}, "
                             f"expected {shape}. It must map x of shape (N, D) to {what} of "
                             f"shape {shape}.")
        return out

    # The built-in U1-U4 run as one Numba kernel each on the "numba" backend
    # (nfscratch.kernels.energies, the same numbers to ~1e-15); the functions above are the spec
    # and run on the "numpy" backend.
    def energy(self, x):
        """U(x), shape (N,), for x of shape (N, D)."""
        x = as_batch(x, self.dim, "x")
        if self._kernel_code is not None and get_backend() == "numba":
            return _energy_kernels().energy_nb(x, self._kernel_code)
        return self._checked_output(self._energy_fn(x), (x.shape[0],), "energy")

    def energy_grad(self, x):
        """dU/dx, shape (N, D), for x of shape (N, D)."""
        x = as_batch(x, self.dim, "x")
        if self._kernel_code is not None and get_backend() == "numba":
            return _energy_kernels().energy_grad_nb(x, self._kernel_code)
        return self._checked_output(self._grad_fn(x), x.shape, "gradient")

    def log_prob_unnormalized(self, x):
        """-U(x), shape (N,): log p(x) up to the constant log Z."""
        return -self.energy(x)

    def log_normalizer(self, limit=6.0, n_grid=801):
        r"""log Z = log of the integral of exp(-U) over R^D, by quadrature on a grid.

        The integral is taken over the box :math:`[-\mathrm{limit}, \mathrm{limit}]^D` with
        ``n_grid`` equally spaced nodes per axis:
        :math:`\log Z \approx \operatorname{logsumexp}_i(-U(x_i)) + D \log h`,
        :math:`h = 2\,\mathrm{limit}/(n_{grid} - 1)`. Summing in log space keeps it exact for
        energies whose minimum is far from 0. Results are cached per ``(limit, n_grid)``.

        Why the box suffices: every energy in ``ENERGIES`` carries the wall beyond
        :math:`|z_d| = 4`, so past the wall the density decays like a Gaussian of std 0.25.
        At the default ``limit = 6`` (8 wall-stds out) the mass left outside is below
        :math:`10^{-14}` of Z. Since the integrand is smooth and nearly zero at the edge of the
        box, the node sum is the trapezoid rule with negligible end corrections, and it
        converges fast; the only non-smooth spot is the wall's onset (a jump in the second
        derivative), which makes the error :math:`O(h^3)`. With the defaults
        (:math:`h = 0.015`) the four built-ins agree with a 3201-node grid to within
        :math:`1.1 \times 10^{-7}` in log Z (U1, whose mass stays inside the wall, to
        :math:`10^{-12}`), and U2 matches its closed form
        :math:`\log(0.4\sqrt{2\pi}) + \log(8 + 0.25\sqrt{2\pi})` to :math:`8 \times 10^{-8}`.

        For a user-supplied energy the box must hold essentially all of its mass; the
        quadrature is only offered for D <= 2 (a grid in higher D is too large).

        Parameters
        ----------
        limit : float, default 6.0
        n_grid : int, default 801
            Nodes per axis (at least 3).

        Returns
        -------
        log_z : float

        Examples
        --------
        >>> round(energy("U2").log_normalizer(), 6)
        2.157505
        """
        if self.dim > 2:
            raise ValueError(f"{self.name}: log_normalizer integrates on a grid and supports "
                             f"dim <= 2, this energy has dim={self.dim}. Estimate log Z by "
                             "importance sampling instead.")
        limit = _check_nonneg(limit, "limit")
        if limit == 0.0:
            raise ValueError("limit: expected a half-width > 0, got 0.")
        n_grid = check_positive_int(n_grid, "n_grid")
        if n_grid < 3:
            raise ValueError(f"n_grid: expected at least 3 nodes per axis, got {n_grid}.")
        key = (limit, n_grid)
        if key not in self._log_z_cache:
            self._log_z_cache[key] = self._grid_log_normalizer(limit, n_grid)
        return self._log_z_cache[key]

    def _grid_log_normalizer(self, limit, n_grid):
        g = np.linspace(-limit, limit, n_grid)                    # (G,)
        h = g[1] - g[0]
        if self.dim == 1:
            neg_u = -self.energy(g[:, None])                      # (G,)
            return float(_logsumexp(neg_u) + math.log(h))
        # D = 2: evaluate row blocks of the grid so memory stays small for fine grids
        rows_per_block = max(1, 250_000 // n_grid)
        partial = []
        for start in range(0, n_grid, rows_per_block):
            z1 = g[start:start + rows_per_block]
            pts = np.stack(np.meshgrid(z1, g, indexing="ij"), axis=-1).reshape(-1, 2)  # (B*G, 2)
            partial.append(_logsumexp(-self.energy(pts)))
        return float(_logsumexp(np.array(partial)) + 2.0 * math.log(h))


def _logsumexp(v):
    """log(sum(exp(v))) of a 1-D array, shifted by its max for stability."""
    m = np.max(v)
    if not np.isfinite(m):
        return m
    return m + math.log(np.sum(np.exp(v - m)))


def energy(name):
    r"""Return the built-in :class:`Energy` called ``name`` ("U1" .. "U4", any case).

    All four are Rezende & Mohamed's Table 1 energies plus the box wall
    :math:`W(z) = \sum_d \tfrac12(\max(0, |z_d| - 4)/0.25)^2`, which is exactly zero on
    :math:`[-4, 4]^2` (see the module docstring for why every one of them, U1 included, has it).

    Notes
    -----
    Definitions, with :math:`\sigma` the logistic sigmoid:

    .. math::

        w_1 &= \sin(2\pi z_1/4), \quad w_2 = 3 e^{-\frac12((z_1 - 1)/0.6)^2}, \quad
        w_3 = 3\sigma((z_1 - 1)/0.3) \\
        U_1 &= \tfrac12\big((\lVert z\rVert - 2)/0.4\big)^2
              - \log\big(e^{-\frac12((z_1 - 2)/0.6)^2} + e^{-\frac12((z_1 + 2)/0.6)^2}\big) \\
        U_2 &= \tfrac12\big((z_2 - w_1)/0.4\big)^2 \\
        U_3 &= -\log\big(e^{-\frac12((z_2 - w_1)/0.35)^2}
                        + e^{-\frac12((z_2 - w_1 + w_2)/0.35)^2}\big) \\
        U_4 &= -\log\big(e^{-\frac12((z_2 - w_1)/0.4)^2}
                        + e^{-\frac12((z_2 - w_1 + w_3)/0.35)^2}\big)

    Gradients, derived by hand. Write :math:`-\log(e^a + e^b)` with softmax weights
    :math:`p_a = e^{a}/(e^a + e^b)`, :math:`p_b = 1 - p_a`; its gradient is
    :math:`-(p_a \nabla a + p_b \nabla b)`. The pieces:

    .. math::

        w_1' &= \tfrac{\pi}{2}\cos(\pi z_1/2), \quad
        w_2' = -w_2 (z_1 - 1)/0.36, \quad
        w_3' = 3\sigma(1 - \sigma)/0.3 \\
        \nabla U_1 &= \frac{\lVert z\rVert - 2}{0.16}\frac{z}{\lVert z\rVert}
              + \Big(p_a \frac{z_1 - 2}{0.36} + p_b \frac{z_1 + 2}{0.36},\ 0\Big) \\
        \nabla U_2 &= \frac{u}{0.16}\,(-w_1',\ 1), \qquad u = z_2 - w_1 \\
        \nabla U_3 &= p_a \frac{u}{0.35^2}(-w_1',\ 1)
              + p_b \frac{v}{0.35^2}(-w_1' + w_2',\ 1), \qquad v = u + w_2 \\
        \nabla U_4 &= p_a \frac{u}{0.16}(-w_1',\ 1)
              + p_b \frac{v}{0.35^2}(-w_1' + w_3',\ 1), \qquad v = u + w_3 \\
        \partial W/\partial z_d &= \operatorname{sign}(z_d)\max(0, |z_d| - 4)/0.25^2

    The norm in U1 has a kink at :math:`z = 0`; there the radial term's gradient is defined as
    0 (a valid subgradient: the radial term has a local maximum of 12.5 there), which also
    avoids a 0/0.

    Examples
    --------
    >>> u2 = energy("u2")
    >>> u2.energy(np.zeros((1, 2)))
    array([0.])
    """
    key = name.upper() if isinstance(name, str) else name
    if key not in ENERGIES:
        raise ValueError(f"name: unknown energy {name!r}; valid names are "
                         f"{', '.join(ENERGIES)} (case-insensitive).")
    return ENERGIES[key]


ENERGIES = {
    "U1": Energy("U1", 2, _u1, _u1_grad),
    "U2": Energy("U2", 2, _u2, _u2_grad),
    "U3": Energy("U3", 2, _u3, _u3_grad),
    "U4": Energy("U4", 2, _u4, _u4_grad),
}
for _code, _e in enumerate(ENERGIES.values(), start=1):
    _e._kernel_code = _code         # = nfscratch.kernels.energies.ENERGY_CODES[name]


_KE = None


def _energy_kernels():
    global _KE
    if _KE is None:
        from nfscratch.kernels import energies  # imported on first use: it loads Numba code
        _KE = energies
    return _KE


# ------------------------------------------------------------------------------------------------
# Small images: the 8x8 digits
# ------------------------------------------------------------------------------------------------
def digits():
    r"""The 1797 handwritten digits of 8x8 pixels with values 0..16, shipped with nfscratch.

    The UCI "Optical Recognition of Handwritten Digits" test set (Alpaydin & Kaynak 1998,
    CC BY 4.0; see ``nfscratch/data/README.md``), read from the package without network access
    and without pickle.

    Returns
    -------
    images : ndarray, shape (1797, 64), float64
        Row-major flattened 8x8 images, integer values 0..16.
    labels : ndarray, shape (1797,), int64

    Examples
    --------
    >>> images, labels = digits()
    >>> images.shape, int(images.max()), labels[:5].tolist()
    ((1797, 64), 16, [0, 1, 2, 3, 4])
    """
    from importlib.resources import files
    with files("nfscratch").joinpath("data/digits.npz").open("rb") as f:
        with np.load(f, allow_pickle=False) as npz:
            images, labels = npz["images"], npz["labels"]
    return images.reshape(len(images), -1).astype(np.float64), labels.astype(np.int64)


def dequantize(x, rng=None, levels=17):
    r"""Uniform dequantization onto the unit cube: ``(x + u) / levels``, ``u ~ U[0, 1)``.

    A continuous density on integer-valued pixels can put infinite density on the integers;
    adding uniform noise turns the data continuous, and the continuous NLL of the noisy data is
    an upper bound on the discrete NLL of the original (Theis et al. 2016, arXiv:1511.01844)
    once the ``levels`` scaling is counted (:func:`bits_per_dim`).

    Parameters
    ----------
    x : ndarray, shape (N, D)
        Integer pixel values in ``0 .. levels - 1``.
    rng : numpy.random.Generator or int
    levels : int
        Number of pixel values (17 for the digits).

    Returns
    -------
    ndarray, shape (N, D), values in [0, 1)
    """
    x = np.asarray(x)
    if x.dtype.kind in "iu":           # pixel values are integers: that is the point here
        x = x.astype(np.float64)
    x = as_batch(x, None, "x")
    levels = check_positive_int(levels, "levels")
    if np.any(x < 0) or np.any(x > levels - 1) or np.any(x != np.round(x)):
        raise ValueError(f"x: expected integer pixel values in 0..{levels - 1}, got values in "
                         f"[{x.min():g}, {x.max():g}].")
    return (x + as_rng(rng).random(x.shape)) / levels


def bits_per_dim(nll, dim, levels=17):
    r"""Turn a mean NLL in nats of dequantized data in [0, 1)^D into bits per dimension.

    .. math:: \mathrm{bpd} = \frac{\mathrm{NLL} + D \log(\mathrm{levels})}{D \log 2}

    The ``D log(levels)`` term undoes the division by ``levels`` (a change of variables), so
    the number is an upper bound on the discrete model's bits per pixel; ``log2(levels)``
    (4.09 for 17 levels) is what a uniform model over the pixel values achieves.
    """
    dim = check_positive_int(dim, "dim")
    return (float(nll) + dim * math.log(levels)) / (dim * math.log(2.0))
