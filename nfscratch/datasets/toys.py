r"""Two-dimensional toy data for density estimation, with their exact densities and entropies.

``two_moons``, ``circles``, ``eight_gaussians``, ``checkerboard``, ``rings``, ``swiss_roll``,
``pinwheel`` and ``two_spirals`` each return an ``(n, 2)`` float64 array of iid draws. This is
the 2-D suite used by most flow papers since FFJORD (Grathwohl et al., 2019); "two moons",
"circles" and "swiss roll" follow scikit-learn's generators. Every mixture draws its component
for each point independently (never in equal blocks), so sample statistics are unbiased for any
``n``. ``SAMPLERS`` maps names to functions and ``sample(name, n)`` dispatches on a name.

The floor of every result
-------------------------
A model ``q`` fitted to data from ``p`` has expected test NLL
:math:`E_p[-\log q] = H(p) + \mathrm{KL}(p\,\|\,q) \ge H(p)`, so the entropy ``H(p)`` is the
floor no model can cross. ``log_prob(name, x)`` gives the true log-density and
``entropy(name)`` the true entropy, both for any sampler parameters (``noise=...``):

* Most toys are a latent point on a curve (or a finite set of points) plus isotropic Gaussian
  noise of std :math:`\sigma`, :math:`p(x) = \int \pi(t)\, N(x; \gamma(t), \sigma^2 I)\, dt`.
  The integral over the latent ``t`` is done by quadrature (Gauss--Legendre on an arc, the
  trapezoid rule on a closed circle, whose error falls geometrically for a periodic analytic
  integrand), which turns ``p`` into a finite Gaussian mixture :math:`\sum_j w_j N(x; \mu_j,
  \sigma^2 I)`. The nodes are spaced at most :math:`\sigma` apart along the curve, where the
  sum of Gaussians matches the integral to a relative ~1e-8.
* The entropy :math:`-\int p \log p` of such a smooth density is then a 2-D trapezoid sum on a
  grid of step :math:`h = \sigma/2` covering every node :math:`\pm 10\sigma`. For a function
  this smooth the trapezoid rule's error falls geometrically as :math:`h` shrinks: a step of
  :math:`\sigma/3` changes the entropies by less than 1e-7 nats. The tests check that, that
  the density integrates to 1, and that a Monte-Carlo estimate :math:`-\mathrm{mean}\log p(x_i)`
  on fresh samples agrees within its standard error.
* ``two_spirals`` has a second latent, a uniform offset, integrated the same way.
* ``checkerboard`` is uniform on area 32: :math:`H = \ln 32` exactly.
* ``pinwheel`` is a Gaussian pushed through a smooth map per arm (each arm turns by an angle
  that grows with the radius): its density is a change of variables, with the preimage found by
  a bracketed root-find per point (:func:`_pinwheel_log_prob`), and its entropy the same 2-D
  trapezoid sum on a grid of step 0.05.

References
----------
.. [1] W. Grathwohl, R. T. Q. Chen, J. Bettencourt, I. Sutskever and D. Duvenaud, "FFJORD:
   Free-form Continuous Dynamics for Scalable Reversible Generative Models", ICLR 2019.
   arXiv:1810.01367
"""
import inspect
import itertools
import math

import numpy as np

from nfscratch._validate import as_batch, as_rng, check_nonneg_float, check_positive_int

__all__ = ["two_moons", "circles", "eight_gaussians", "checkerboard", "rings", "swiss_roll",
           "pinwheel", "two_spirals", "SAMPLERS", "sample", "log_prob", "entropy",
           "two_moons_labeled", "moon_entropy"]

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
    return two_moons_labeled(n, rng, noise)[0]


def two_moons_labeled(n, rng=None, noise=0.1):
    r""":func:`two_moons` with the moon each point came from, for conditional flows ``p(x | y)``.

    The same seed gives the same points as :func:`two_moons`.

    Returns
    -------
    x : ndarray, shape (n, 2), float64
    y : ndarray, shape (n,), int64
        0 for the outer moon :math:`(\cos t, \sin t)`, 1 for the inner one.

    Examples
    --------
    >>> x, y = two_moons_labeled(4, rng=0)
    >>> x.shape, y.dtype.name, bool(np.array_equal(x, two_moons(4, rng=0)))
    ((4, 2), 'int64', True)
    """
    n = check_positive_int(n, "n")
    noise = check_nonneg_float(noise, "noise")
    rng = as_rng(rng)
    inner = rng.random(n) < 0.5                                   # (N,) which moon
    t = rng.uniform(0.0, np.pi, size=n)                           # (N,)
    x = np.empty((n, 2))
    x[:, 0] = np.where(inner, 1.0 - np.cos(t), np.cos(t))
    x[:, 1] = np.where(inner, 0.5 - np.sin(t), np.sin(t))
    return _add_noise(x, noise, rng), inner.astype(np.int64)


def moon_entropy(noise=0.1):
    r"""The exact conditional entropy :math:`H(X \mid Y)` (nats) of :func:`two_moons_labeled`.

    Given the moon, a point is one noisy half circle; the two moons are mirror images (the inner
    one is the outer one turned by 180 degrees and shifted), so both have the same entropy and
    :math:`H(X \mid Y)` is that of one. It is the floor of a conditional flow's test NLL
    :math:`-E \log q(x \mid y)`, as :func:`entropy` is of an unconditional one;
    ``entropy("two_moons") - moon_entropy()`` is the mutual information
    :math:`I(X; Y) \le \log 2`. Computed like :func:`entropy` (quadrature over ``t``, grid sum).

    Examples
    --------
    >>> 0 < entropy("two_moons") - moon_entropy() <= math.log(2)
    True
    """
    noise = _noise("two_moons", noise)
    key = ("two_moons | moon", noise)
    if key not in _ENTROPY_CACHE:
        outer = lambda t: np.stack([np.cos(t), np.sin(t)], axis=1)           # noqa: E731
        points, log_w = _arc(0.0, math.pi, outer, _unit, noise)
        lo, hi = points.min(axis=0) - 10.0 * noise, points.max(axis=0) + 10.0 * noise
        _ENTROPY_CACHE[key] = _grid_entropy(lambda x: _mixture_log_prob(x, points, log_w, noise),
                                            lo, hi, 0.5 * noise)
    return _ENTROPY_CACHE[key]


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
    noise = check_nonneg_float(noise, "noise")
    factor = check_nonneg_float(factor, "factor")
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
    noise = check_nonneg_float(noise, "noise")
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
    noise = check_nonneg_float(noise, "noise")
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
    noise = check_nonneg_float(noise, "noise")
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


# ----------------------------------------------------------------------------------------------
# Exact densities and entropies: each toy as a Gaussian mixture over quadrature nodes
# ----------------------------------------------------------------------------------------------
def _params(name, params):
    """The sampler's keyword arguments, defaults filled in, after refusing unknown ones."""
    sig = inspect.signature(SAMPLERS[name]).parameters
    allowed = {k: p.default for k, p in sig.items() if k not in ("n", "rng")}
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise TypeError(f"{name}: unknown parameter(s) {', '.join(unknown)}; {name} takes "
                        f"{', '.join(allowed) if allowed else 'none'}.")
    allowed.update(params)
    return allowed


def _noise(name, noise):
    noise = check_nonneg_float(noise, "noise")
    if noise == 0.0:
        raise ValueError(f"noise: {name} with noise=0 lies on a curve: it has no density and its "
                         "entropy is -inf. Use noise > 0.")
    return noise


# Largest gap between latent nodes along the curve, in units of sigma. Summing Gaussians of std
# sigma at spacing h has relative error ~2 exp(-2 pi^2 sigma^2 / h^2) = 5e-9 at h = sigma, and the
# entropies move by < 1e-8 nats between 1.0 and 0.3 (the tests compare).
_NODE_GAP = 1.0


def _arc(t0, t1, curve, speed, sigma, density=None, panels=1):
    """Gauss--Legendre nodes for a latent ``t`` on ``[t0, t1]`` mapped by ``curve(t) -> (M, 2)``.

    ``t`` is uniform, or has the probability density ``density(t)`` on the interval. The
    interval is cut into ``panels`` equal pieces, each with its own rule; ``speed(t)`` bounds
    ``|curve'(t)|`` (it is evaluated at each panel's ends, so it must be monotone on a panel).
    The widest gap between Gauss--Legendre nodes (in the middle) is about ``(pi/2) L / M`` on a
    panel of length ``L``, so ``M`` keeps it below ``_NODE_GAP * sigma`` along the curve.
    Returns the node points (M, 2) and their log-weights (M,), which sum (in exp) to 1.
    """
    ts, ws = [], []
    edges = np.linspace(t0, t1, panels + 1)
    for a, b in zip(edges[:-1], edges[1:]):
        top = max(speed(a), speed(b))
        m = int(math.ceil(0.5 * math.pi * (b - a) * top / (_NODE_GAP * sigma))) + 8
        u, w = np.polynomial.legendre.leggauss(m)
        ts.append(a + 0.5 * (b - a) * (u + 1.0))
        ws.append(0.5 * (b - a) * w)
    t, w = np.concatenate(ts), np.concatenate(ws)
    pdf = np.full(len(t), 1.0 / (t1 - t0)) if density is None else density(t)
    return curve(t), np.log(w * pdf)


def _unit(t):
    return 1.0


def _circle(radius, sigma):
    """Equally spaced nodes (the trapezoid rule, exact to rounding for this periodic integrand)
    for a uniform angle on a circle; spacing at most ``_NODE_GAP * sigma``."""
    m = int(math.ceil(2.0 * math.pi * radius / (_NODE_GAP * sigma))) + 8
    angle = 2.0 * math.pi * np.arange(m) / m
    return radius * np.stack([np.cos(angle), np.sin(angle)], axis=1), np.full(m, -math.log(m))


def _mix(parts, weights):
    """Concatenate node sets ``(points, log_w)`` with mixture weights."""
    points = np.concatenate([p for p, _ in parts])
    log_w = np.concatenate([lw + math.log(w) for (_, lw), w in zip(parts, weights)])
    return points, log_w


def _moons_nodes(noise):
    outer = lambda t: np.stack([np.cos(t), np.sin(t)], axis=1)               # noqa: E731
    inner = lambda t: np.stack([1.0 - np.cos(t), 0.5 - np.sin(t)], axis=1)   # noqa: E731
    return _mix([_arc(0.0, math.pi, outer, _unit, noise), _arc(0.0, math.pi, inner, _unit, noise)],
                [0.5, 0.5]), noise


def _circles_nodes(noise, factor):
    if not 0.0 < check_nonneg_float(factor, "factor") < 1.0:
        raise ValueError(f"factor: expected a ratio of radii in (0, 1), got {factor}.")
    sigma = 3.0 * noise                       # the sampler scales points and noise by 3
    return _mix([_circle(3.0, sigma), _circle(3.0 * factor, sigma)], [0.5, 0.5]), sigma


def _rings_nodes(noise):
    return _mix([_circle(r, noise) for r in _RING_RADII], [0.25] * 4), noise


def _swiss_roll_nodes(noise):
    t0, t1 = 1.5 * math.pi, 4.5 * math.pi
    curve = lambda t: np.stack([t * np.cos(t), t * np.sin(t)], axis=1) / 5.0   # noqa: E731
    sigma = noise / 5.0
    return _arc(t0, t1, curve, lambda t: math.hypot(1.0, t) / 5.0, sigma, panels=6), sigma


def _eight_nodes():
    angle = np.arange(8) * (np.pi / 4.0)
    centers = (4.0 / math.sqrt(2.0)) * np.stack([np.cos(angle), np.sin(angle)], axis=1)
    return (centers, np.full(8, -math.log(8.0))), _EIGHT_STD


def _two_spirals_nodes(noise):
    # x = sign (c(s) + v) / 3 + noise: s has density 2s / (3 pi)^2 on [0, 3 pi] (s = 3 pi sqrt(u)),
    # v ~ U[0, 1/2)^2 is a second latent, the sign a fair coin. v / 3 lies on [0, 1/6)^2, only
    # 1.7 sigma wide: 6 Gauss--Legendre nodes per axis match that integral to 1e-7 relative.
    s_max = 3.0 * math.pi
    curve = lambda s: np.stack([-s * np.cos(s), s * np.sin(s)], axis=1) / 3.0   # noqa: E731
    points, log_w = _arc(0.0, s_max, curve, lambda s: math.hypot(1.0, s) / 3.0, noise,
                         density=lambda s: 2.0 * s / s_max ** 2, panels=12)
    u, w = np.polynomial.legendre.leggauss(6)
    a, log_a = (u + 1.0) / 12.0, np.log(0.5 * w)                            # nodes on [0, 1/6]
    offsets = np.stack(np.meshgrid(a, a, indexing="ij"), -1).reshape(-1, 2)  # (36, 2)
    log_off = (log_a[:, None] + log_a[None, :]).reshape(-1)
    spiral = ((points[:, None, :] + offsets[None]).reshape(-1, 2),
              (log_w[:, None] + log_off[None]).reshape(-1))                     # (M * 36, ...)
    return _mix([spiral, (-spiral[0], spiral[1])], [0.5, 0.5]), noise


# name -> params -> ((points (M, 2), log_w (M,)), sigma)
_NODES = {
    "two_moons": lambda p: _moons_nodes(_noise("two_moons", p["noise"])),
    "circles": lambda p: _circles_nodes(_noise("circles", p["noise"]), p["factor"]),
    "rings": lambda p: _rings_nodes(_noise("rings", p["noise"])),
    "swiss_roll": lambda p: _swiss_roll_nodes(_noise("swiss_roll", p["noise"])),
    "eight_gaussians": lambda p: _eight_nodes(),
    "two_spirals": lambda p: _two_spirals_nodes(_noise("two_spirals", p["noise"])),
}


def _mixture_log_prob(x, points, log_w, sigma):
    r"""``log sum_j w_j N(x; points_j, sigma^2 I)``, shape (N,).

    The points ``x`` are grouped in square cells of side ``4 sigma``; each cell sums only the
    nodes within ``12 sigma`` (plus the cell's diagonal) of its nearest node. Every node left
    out is then more than ``12 sigma`` farther from each point of the cell than a node kept, so
    its term is below ``exp(-72)`` times that one's: the sum is the full sum to rounding.
    """
    cell = 4.0 * sigma
    keys = np.floor(x / cell)                                                 # (N, 2)
    order = np.lexsort((keys[:, 1], keys[:, 0]))
    split = np.nonzero(np.any(np.diff(keys[order], axis=0) != 0, axis=1))[0] + 1
    out = np.empty(x.shape[0])
    for rows in np.split(order, split):
        center = (keys[rows[0]] + 0.5) * cell
        dist = np.hypot(points[:, 0] - center[0], points[:, 1] - center[1])  # (M,)
        near = dist <= dist.min() + math.sqrt(2.0) * cell + 12.0 * sigma
        out[rows] = _dense_mixture_log_prob(x[rows], points[near], log_w[near], sigma)
    return out


def _dense_mixture_log_prob(x, points, log_w, sigma):
    """:func:`_mixture_log_prob` over every node, in row blocks to bound memory."""
    out = np.empty(x.shape[0])
    # |x - mu|^2 = |x|^2 + |mu|^2 - 2 x.mu: one matrix product; the rounding it adds to the
    # exponent is ~1e-15 |x|^2 / sigma^2, far below what the quadrature resolves
    shifted = log_w - np.sum(points ** 2, axis=1) / (2.0 * sigma ** 2)        # (M,)
    scaled = points.T / sigma ** 2                                            # (2, M)
    rows = max(1, 1_000_000 // len(points))
    for s in range(0, x.shape[0], rows):
        xs = x[s:s + rows]                                                    # (B, 2)
        e = shifted + xs @ scaled - (np.sum(xs ** 2, axis=1) / (2.0 * sigma ** 2))[:, None]
        m = e.max(axis=1)
        out[s:s + rows] = m + np.log(np.sum(np.exp(e - m[:, None]), axis=1))
    return out - math.log(2.0 * math.pi * sigma ** 2)


_PINWHEEL_MEAN, _PINWHEEL_STD = np.array([1.0, 0.0]), np.array([0.3, 0.1])


def _pinwheel_log_prob(x, n_beta=256):
    r"""Exact pinwheel log-density by a change of variables, shape (N,).

    Arm ``k`` maps :math:`f \sim N((1, 0), \mathrm{diag}(0.3^2, 0.1^2))` to
    :math:`x = 2R(-a)f` with :math:`a = 2\pi k/5 + e^{f_0}/4`, whose Jacobian determinant is
    :math:`4(1 + e^{f_0} f_1/4)`. The rotation keeps the radius, so a preimage has
    :math:`|f| = |x|/2 = \rho` and an angle :math:`\beta` solving
    :math:`h(\beta) = \beta - e^{\rho\cos\beta}/4 = \varphi + 2\pi k/5 \pmod{2\pi}`
    (:math:`\varphi` the angle of ``x``). Since :math:`h(\pi) - h(-\pi) = 2\pi`, the target is
    moved into :math:`[h(-\pi), h(-\pi) + 2\pi)`, and also tried :math:`2\pi m` lower, as far
    as :math:`h` dips (:math:`h \ge \beta - e^{\rho}/4`); roots are bracketed by sign changes on
    ``n_beta`` angles and refined by bisection (where :math:`h` is not monotone, several roots
    count, each with its own determinant). Then
    :math:`p(x) = \frac15 \sum_k \sum_{\text{roots}} N(f; \mu, \Sigma) / |4(1 + e^{f_0} f_1/4)|`.
    """
    out = np.full(x.shape[0], -np.inf)
    beta = np.linspace(-np.pi, np.pi, n_beta + 1)                             # (B,)
    for s in range(0, x.shape[0], 4096):
        xs = x[s:s + 4096]
        rho = 0.5 * np.hypot(xs[:, 0], xs[:, 1])                              # (n,)
        phi = np.arctan2(xs[:, 1], xs[:, 0])
        h = beta - 0.25 * np.exp(rho[:, None] * np.cos(beta))                 # (n, B)
        h_min = h.min(axis=1)
        # h dips below h(-pi) by up to exp(rho)/4, so targets 2 pi m lower can have roots too
        lowest = -int(math.ceil(0.25 * math.exp(float(rho.max())) / (2.0 * np.pi)))
        for k, m in itertools.product(range(5), range(lowest, 1)):
            target = (h[:, 0] + np.mod(phi + 2.0 * np.pi * k / 5.0 - h[:, 0], 2.0 * np.pi)
                      + 2.0 * np.pi * m)
            active = np.nonzero(h_min <= target)[0]       # rows where h reaches the target
            g = h[active] - target[active, None]
            rows, cols = np.nonzero((g[:, :-1] < 0.0) != (g[:, 1:] < 0.0))  # bracketed roots
            g_lo, rows = g[rows, cols], active[rows]
            lo, hi = beta[cols], beta[cols + 1]
            r, t = rho[rows], target[rows]
            for _ in range(60):
                mid = 0.5 * (lo + hi)
                g_mid = mid - 0.25 * np.exp(r * np.cos(mid)) - t
                left = (g_mid < 0.0) == (g_lo < 0.0)                          # root is right of mid
                lo, g_lo = np.where(left, mid, lo), np.where(left, g_mid, g_lo)
                hi = np.where(left, hi, mid)
            b = 0.5 * (lo + hi)
            f0, f1 = r * np.cos(b), r * np.sin(b)
            u = (np.stack([f0, f1], axis=1) - _PINWHEEL_MEAN) / _PINWHEEL_STD
            log_det = np.log(np.abs(4.0 * (1.0 + 0.25 * np.exp(f0) * f1)))
            log_f = -0.5 * np.sum(u * u, axis=1) - np.log(2.0 * np.pi * 0.3 * 0.1)
            np.logaddexp.at(out, s + rows, log_f - log_det - math.log(5.0))
    return out


def _checkerboard_log_prob(x):
    col = np.floor(x[:, 0] / 2.0) + 2
    row = np.floor(x[:, 1] / 2.0) + 2
    on = (np.abs(x[:, 0]) <= 4.0) & (np.abs(x[:, 1]) <= 4.0) & ((col + row) % 2 == 0)
    return np.where(on, -math.log(32.0), -np.inf)


def _density(name, params, step=0.5):
    """``(log_p, grid)``: the toy's log-density ``log_p(x) -> (N,)`` and the grid
    ``(lo (2,), hi (2,), h)`` on which its entropy is integrated (None for the checkerboard,
    whose entropy is exact). ``step`` is the grid step in units of the noise std."""
    _lookup_sampler(name)
    params = _params(name, params)
    if name == "checkerboard":
        return _checkerboard_log_prob, None
    if name == "pinwheel":
        # an arm is 0.2 wide (2 x f1's std); the grid needs steps of half that to converge to
        # 1e-6 nats (the arms meet and bend near the origin); |x| <= 7 holds f0 to 8 of its stds
        return _pinwheel_log_prob, (np.full(2, -7.0), np.full(2, 7.0), step * 0.1)
    (points, log_w), sigma = _NODES[name](params)
    grid = (points.min(axis=0) - 10.0 * sigma, points.max(axis=0) + 10.0 * sigma, step * sigma)
    return (lambda x: _mixture_log_prob(x, points, log_w, sigma)), grid


def log_prob(name, x, **params):
    r"""The true log-density :math:`\log p(x)` of the toy ``name`` (sampler keywords in ``params``).

    Computed as described in the module docstring: exact for ``eight_gaussians`` and
    ``checkerboard`` (``-inf`` off its squares), by quadrature over the latent curve parameter
    (to ~1e-12 relative) for ``two_moons``, ``circles``, ``rings`` and ``swiss_roll``.
    ``two_spirals`` by quadrature over both of its latents, ``pinwheel`` by a change of variables
    with a root-find per point.

    Parameters
    ----------
    name : str
    x : array_like, shape (N, 2)
    **params
        The sampler's keywords, e.g. ``noise=0.05``.

    Returns
    -------
    log_p : ndarray, shape (N,)

    Examples
    --------
    >>> float(log_prob("checkerboard", [[0.5, 0.5]])[0]) == -math.log(32)
    True
    """
    log_p, _ = _density(name, params)
    return log_p(as_batch(x, 2, "x"))


_ENTROPY_CACHE = {}


def entropy(name, **params):
    r"""The exact differential entropy :math:`H(p) = -\int p \log p` (nats) of the toy ``name``.

    It is the lowest expected test NLL any model can reach on data from ``p``
    (:math:`E_p[-\log q] = H(p) + \mathrm{KL}(p\,\|\,q)`), the floor every result is stated
    against (:mod:`nfscratch.evaluate`). How each is computed:

    * ``checkerboard``: :math:`\ln 32` exactly (uniform on area 32).
    * ``eight_gaussians``: the mixture's density is exact; its components overlap slightly, so
      the entropy is below the sum-of-parts value :math:`\ln 8 + \ln(2\pi e\sigma^2) = 2.8379`.
    * ``two_moons``, ``circles``, ``rings``, ``swiss_roll``: the density by quadrature over the
      latent curve parameter (see :func:`log_prob`).
    * all of these: :math:`-\int p\log p` by the trapezoid rule on a grid of step
      :math:`\sigma/2` (``sigma`` the noise std) covering the support to :math:`\pm 10\sigma`;
      converged to better than 1e-7 nats, and within a Monte-Carlo standard error of
      :math:`-\mathrm{mean}\log p(x_i)` on samples (``tests/test_datasets.py``).
    * ``two_spirals``: the same, with a second latent (the uniform offset ``v``, by a 6-node
      Gauss--Legendre rule per axis) and the latent angle's density :math:`2s/(3\pi)^2`.
    * ``pinwheel``: the density by a change of variables (a root-find per point), the same
      trapezoid sum on a grid of step 0.05 (converged to better than 1e-6 nats).

    Results are cached per ``(name, params)``.

    Parameters
    ----------
    name : str
    **params
        The sampler's keywords, e.g. ``noise=0.05`` for ``two_moons``; a noise of 0 has no
        density and raises ``ValueError``.

    Returns
    -------
    float

    Examples
    --------
    >>> round(entropy("checkerboard"), 4)
    3.4657
    >>> round(entropy("eight_gaussians"), 4)
    2.8316
    """
    _lookup_sampler(name)
    key = (name, tuple(sorted(_params(name, params).items())))
    if key not in _ENTROPY_CACHE:
        log_p, grid = _density(name, params)
        _ENTROPY_CACHE[key] = math.log(32.0) if grid is None else _grid_entropy(log_p, *grid)
    return _ENTROPY_CACHE[key]


def _grid_entropy(log_p, lo, hi, h):
    """``-sum p log p h^2`` over the grid of step ``h`` on the box ``[lo, hi]``."""
    g1, g2 = np.arange(lo[0], hi[0] + h, h), np.arange(lo[1], hi[1] + h, h)
    grid = np.stack(np.meshgrid(g1, g2, indexing="ij"), axis=-1).reshape(-1, 2)   # (G, 2)
    log_p = log_p(grid)
    return float(-np.sum(np.exp(log_p) * log_p) * h * h)
