r"""The energies U1-U4 of Rezende & Mohamed (2015) as targets for variational inference.

An :class:`Energy` is an unnormalized density :math:`p(x) \propto \exp(-U(x))` with its hand-derived
gradient; ``ENERGIES`` maps "U1".."U4" to the four of the paper's Table 1 and ``energy(name)``
looks one up (any case). Reverse KL against it, :math:`\mathrm{KL}(q\,\|\,p) = E_q[\log q + U]
+ \log Z \ge 0`, needs :meth:`Energy.log_normalizer` to be stated in nats.

The box convention
------------------
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

Overflow
--------
Far from the box the terms grow like :math:`8 z_d^2`: U itself exceeds the float64 range for
:math:`|z_d| \gtrsim 4 \times 10^{153}` and its gradient for :math:`|z_d| \gtrsim 10^{307}`.
Below that, both are computed without NaN: the radius by ``hypot`` and the unit vector
:math:`z/r` (never :math:`(r - 2)/r` with an overflowed :math:`r`), and the softmax weights of
the two bumps as a sigmoid of their *difference*, factored so that it does not overflow where
each bump's exponent does (see :func:`_two_bumps_grad`). Where a value does not fit in float64,
:meth:`Energy.energy` and :meth:`Energy.energy_grad` raise ``ValueError`` instead of returning
inf or NaN.

These functions are the spec; on the "numba" backend the built-ins run the same formulas as
compiled loops (:mod:`nfscratch.kernels.energies`, equal to ~1e-15).

References
----------
.. [1] D. J. Rezende and S. Mohamed, "Variational Inference with Normalizing Flows",
   ICML 2015. arXiv:1505.05770
"""
import math

import numpy as np

from nfscratch._validate import as_batch, check_nonneg_float, check_positive_int
from ..config import use_kernels
from nfscratch.nn import sigmoid

__all__ = ["Energy", "ENERGIES", "energy", "gaussian_mixture", "BOX_HALF_WIDTH", "WALL_SCALE"]

BOX_HALF_WIDTH = 4.0   # the wall starts at |z_d| = 4: the energies are the paper's on [-4, 4]^2
WALL_SCALE = 0.25      # beyond it, density decays like a Gaussian tail of this std


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


def _w3(z1):
    return 3.0 * sigmoid((z1 - 1.0) / 0.3)               # /0.3, not /3 (a circulating typo)


def _dw3(z1):
    s = sigmoid((z1 - 1.0) / 0.3)
    return 3.0 * s * (1.0 - s) / 0.3


def _two_bumps(t_a, t_b):
    r"""``-log(exp(-t_a^2/2) + exp(-t_b^2/2))``, shape (N,): the paper's two-bump term."""
    return -np.logaddexp(-0.5 * t_a ** 2, -0.5 * t_b ** 2)


def _two_bumps_grad(t_a, t_b, dt_a, dt_b):
    r"""Gradient of :func:`_two_bumps`: :math:`p_a t_a \nabla t_a + p_b t_b \nabla t_b`, (N, D).

    ``dt_a``, ``dt_b`` (N, D) are the gradients of ``t_a``, ``t_b`` (N,). The softmax weights
    are :math:`p_a = e^a/(e^a + e^b) = \sigma(a - b)` with :math:`a = -t_a^2/2`,
    :math:`b = -t_b^2/2`, and the difference is written as
    :math:`a - b = \tfrac12 (t_b - t_a)(t_b + t_a)`: where :math:`t^2` overflows, ``a`` and ``b``
    are both ``-inf`` and ``exp(a - lse)`` would be NaN, while the factored difference is finite
    (or an infinity of the right sign) and the sigmoid gives the right weight.
    """
    p_a = sigmoid(0.5 * (t_b - t_a) * (t_b + t_a))[:, None]      # (N, 1)
    p_b = sigmoid(0.5 * (t_a - t_b) * (t_a + t_b))[:, None]      # = 1 - p_a, exact when p_a ~ 1
    return p_a * (t_a[:, None] * dt_a) + p_b * (t_b[:, None] * dt_b)


def _u1_parts(z):
    """U1's radius and bump arguments: r (N,), t_a, t_b (N,) and their gradient (N, 2)."""
    z1 = z[:, 0]
    dt = np.zeros_like(z)
    dt[:, 0] = 1.0 / 0.6                                  # both bumps depend on z1 alone
    return np.hypot(z1, z[:, 1]), (z1 - 2.0) / 0.6, (z1 + 2.0) / 0.6, dt


def _u1(z):
    r, t_a, t_b, _ = _u1_parts(z)
    return 0.5 * ((r - 2.0) / 0.4) ** 2 + _two_bumps(t_a, t_b) + _wall(z)


def _u1_grad(z):
    r, t_a, t_b, dt = _u1_parts(z)
    # radial term: (r - 2)/0.16 * z/r, with z/r := 0 at the kink r = 0 (a valid subgradient);
    # the unit vector z/r stays bounded where r would overflow or underflow in (r - 2)/r
    unit = z / np.where(r > 0.0, r, 1.0)[:, None]        # (N, 2)
    return (((r - 2.0) / 0.16)[:, None] * unit + _two_bumps_grad(t_a, t_b, dt, dt)
            + _wall_grad(z))


def _u2(z):
    u = z[:, 1] - _w1(z[:, 0])
    return 0.5 * (u / 0.4) ** 2 + _wall(z)


def _u2_grad(z):
    u = z[:, 1] - _w1(z[:, 0])
    g = np.empty_like(z)
    g[:, 0] = -u / 0.16 * _dw1(z[:, 0])
    g[:, 1] = u / 0.16
    return g + _wall_grad(z)


def _u34_parts(z, w, dw, s_a):
    """U3/U4's bump arguments t_a = u/s_a, t_b = (u + w)/0.35 with u = z2 - w1, and gradients."""
    z1 = z[:, 0]
    u = z[:, 1] - _w1(z1)
    dt_a, dt_b = np.empty_like(z), np.empty_like(z)
    dt_a[:, 0], dt_a[:, 1] = -_dw1(z1) / s_a, 1.0 / s_a
    dt_b[:, 0], dt_b[:, 1] = (-_dw1(z1) + dw(z1)) / 0.35, 1.0 / 0.35
    return u / s_a, (u + w(z1)) / 0.35, dt_a, dt_b


def _u3(z):
    t_a, t_b, _, _ = _u34_parts(z, _w2, _dw2, 0.35)
    return _two_bumps(t_a, t_b) + _wall(z)


def _u3_grad(z):
    return _two_bumps_grad(*_u34_parts(z, _w2, _dw2, 0.35)) + _wall_grad(z)


def _u4(z):
    t_a, t_b, _, _ = _u34_parts(z, _w3, _dw3, 0.4)
    return _two_bumps(t_a, t_b) + _wall(z)


def _u4_grad(z):
    return _two_bumps_grad(*_u34_parts(z, _w3, _dw3, 0.4)) + _wall_grad(z)


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
        self._overflow = None       # U1-U4: "ignore" (every overflow is handled, see the top)

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

    def _checked_output(self, out, x, shape, what):
        out = np.asarray(out, dtype=np.float64)
        if out.shape != shape:
            raise ValueError(f"{self.name}: the {what} function returned shape {out.shape}, "
                             f"expected {shape}. It must map x of shape (N, D) to {what} of "
                             f"shape {shape}.")
        # +inf energy is a density of 0, which a user's energy may mean; NaN never is, and
        # a built-in's inf (or any inf gradient) is a value that does not fit in float64
        bad = np.isnan(out) if what == "energy" and self._kernel_code is None else ~np.isfinite(out)
        if bad.any():
            rows = bad if bad.ndim == 1 else bad.any(axis=1)
            far = float(np.max(np.abs(x[rows])))
            why = (" U1-U4 grow like 8 x_d^2 beyond the wall at |x_d| = 4 and leave the float64 "
                   "range near |x_d| = 4e153 (their gradients near 1e307); points that far out "
                   "have density 0, so whatever produced them has diverged."
                   if self._kernel_code is not None else
                   " Check the function at those points.")
            raise ValueError(f"x: {self.name}'s {what} is not finite at {int(rows.sum())} of "
                             f"{len(x)} points (largest |x_d| there: {far:.3g}); expected points "
                             f"where it is finite.{why}")
        return out

    def energy(self, x):
        """U(x), shape (N,), for x of shape (N, D)."""
        return self._evaluate(x, "energy")

    def energy_grad(self, x):
        """dU/dx, shape (N, D), for x of shape (N, D)."""
        return self._evaluate(x, "gradient")

    def _evaluate(self, x, what):
        x = as_batch(x, self.dim, "x")
        # the built-ins U1-U4 also exist as compiled loops (nfscratch.kernels.energies, the same
        # formulas); the functions above are the spec and run on the "numpy" backend
        if self._kernel_code is not None and use_kernels():
            kernel = _kernels().energy_nb if what == "energy" else _kernels().energy_grad_nb
            out = kernel(x, self._kernel_code)
        else:
            with np.errstate(over=self._overflow):
                out = (self._energy_fn if what == "energy" else self._grad_fn)(x)
        return self._checked_output(out, x, (len(x),) if what == "energy" else x.shape, what)

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
        limit = check_nonneg_float(limit, "limit")
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

    Gradients, derived by hand. Each two-bump term is
    :math:`-\log(e^{a} + e^{b})` with :math:`a = -t_a^2/2`, :math:`b = -t_b^2/2`; with the
    softmax weights :math:`p_a = \sigma(a - b)`, :math:`p_b = \sigma(b - a)` its gradient is
    :math:`p_a t_a \nabla t_a + p_b t_b \nabla t_b`. The pieces, with :math:`u = z_2 - w_1`:

    .. math::

        w_1' &= \tfrac{\pi}{2}\cos(\pi z_1/2), \quad
        w_2' = -w_2 (z_1 - 1)/0.36, \quad
        w_3' = 3\sigma(1 - \sigma)/0.3 \\
        U_1 &: t_{a,b} = (z_1 \mp 2)/0.6, \quad \nabla t = (1/0.6,\ 0), \quad
              \nabla\text{ring} = \frac{\lVert z\rVert - 2}{0.16}\frac{z}{\lVert z\rVert} \\
        \nabla U_2 &= \frac{u}{0.16}\,(-w_1',\ 1) \\
        U_3 &: t_a = u/0.35,\ t_b = (u + w_2)/0.35, \quad
              \nabla t_a = (-w_1',\ 1)/0.35,\ \nabla t_b = (-w_1' + w_2',\ 1)/0.35 \\
        U_4 &: t_a = u/0.4,\ t_b = (u + w_3)/0.35, \quad
              \nabla t_a = (-w_1',\ 1)/0.4,\ \nabla t_b = (-w_1' + w_3',\ 1)/0.35 \\
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
    _e._overflow = "ignore"


_KERNELS = None


def _kernels():
    global _KERNELS
    if _KERNELS is None:
        from nfscratch.kernels import energies  # imported on first use: it loads Numba code
        _KERNELS = energies
    return _KERNELS


def gaussian_mixture(means, std):
    r"""An equal-weight mixture of isotropic Gaussians, as an energy *and* a sampler.

    .. math:: p(x) = \frac1M \sum_{m=1}^M \mathcal N(x;\, \mu_m, \sigma^2 I), \qquad U = -\log p,

    normalized, so ``log Z = 0`` exactly. Having both the density and samples of one target is
    what a side-by-side of maximum likelihood and reverse KL needs (tutorials 03 and 04b).

    Parameters
    ----------
    means : array_like, shape (M, D)
    std : float
        sigma > 0.

    Returns
    -------
    energy : Energy
        ``energy(x)`` = -log p(x), ``energy_grad(x)`` = sum_m r_m(x) (x - mu_m) / sigma^2 with
        the responsibilities r_m.
    sample : callable
        ``sample(n, rng) -> (n, D)``.

    Examples
    --------
    >>> target, sample = gaussian_mixture([[1.0, 1.0], [-4.0, -3.0]], 0.5)
    >>> round(target.log_normalizer(limit=7.0), 6) + 0.0
    0.0
    """
    means = np.asarray(means, dtype=np.float64)
    if means.ndim != 2 or not means.size or not np.all(np.isfinite(means)):
        raise ValueError(f"means: expected a finite array of shape (M, D), got {means.tolist()!r}.")
    std = check_nonneg_float(std, "std")
    if std == 0.0:
        raise ValueError("std: expected a standard deviation > 0, got 0.")
    M, D = means.shape
    log_norm = math.log(M) + 0.5 * D * math.log(2.0 * math.pi * std * std)

    def log_components(x):                       # (N, M): log N(x; mu_m, std^2 I) + const
        return -0.5 * np.sum((x[:, None, :] - means[None]) ** 2, axis=2) / std**2

    def energy_fn(x):
        a = log_components(x)
        top = a.max(axis=1)
        return -(top + np.log(np.exp(a - top[:, None]).sum(axis=1))) + log_norm

    def grad_fn(x):
        a = log_components(x)
        r = np.exp(a - a.max(axis=1, keepdims=True))
        r /= r.sum(axis=1, keepdims=True)          # responsibilities (N, M)
        return np.einsum("nm,nmd->nd", r, x[:, None, :] - means[None]) / std**2

    def sample(n, rng=None):
        from .._validate import as_rng
        rng = as_rng(rng)
        n = check_positive_int(n, "n")
        return means[rng.integers(0, M, n)] + std * rng.standard_normal((n, D))

    return Energy.from_functions(f"gaussian mixture ({M} modes)", D, energy_fn, grad_fn), sample
