r"""Compiled loops for the energies U1-U4 of Rezende & Mohamed (2015) and their gradients.

The formulas, their hand-derived gradients, the box wall and the overflow-safe forms are those of
:mod:`nfscratch.datasets.energies` (read them there): its functions ``_u1`` ... ``_u4`` and
``_u1_grad`` ... ``_u4_grad`` are the NumPy twins of these kernels, and the tests compare the two.
Here the same operations run one sample at a time, in the same order, so the two agree to
rounding. ``which`` selects the energy (``ENERGY_CODES``: 1 for U1 ... 4 for U4).

Public entries: ``energy_nb(z, which) -> (N,)`` and ``energy_grad_nb(z, which) -> (N, 2)`` for
``z`` of shape (N, 2), C-contiguous float64; they check every argument before the loop runs.

Why a kernel: in a reverse-KL step the energy and its gradient in NumPy are ~25 array passes
over a small batch each, while one pass per sample does the same work in a fraction of the time
(``benchmarks/README.md``). ``exp`` and ``log1p`` are :mod:`._math`'s ``exp_v``/``log1p_v``, so
U1's loop vectorizes; U2-U4 call the C library's ``sin``/``cos`` for every sample.

References
----------
Rezende, Mohamed, "Variational Inference with Normalizing Flows", ICML 2015, arXiv:1505.05770
(Table 1).
"""
import math

import numpy as np
from numba import njit

from . import _checks as ck
from ._math import exp_v, log1p_v

__all__ = ["ENERGY_CODES", "energy_nb", "energy_grad_nb"]

ENERGY_CODES = {"U1": 1, "U2": 2, "U3": 3, "U4": 4}
BOX = 4.0                       # the wall starts at |z_d| = 4 (datasets.BOX_HALF_WIDTH)
WALL = 0.25                     # its Gaussian-tail scale (datasets.WALL_SCALE)
HALF_PI = 0.5 * math.pi
LN2 = math.log(2.0)

# No fastmath at all, not even "contract": with fused multiply-adds, p_a t_a dt_a + p_b t_b dt_b
# at U1's symmetric points leaves a rounding residue instead of NumPy's exact 0.
_JIT = dict(cache=True, error_model="numpy")


def _check(kernel, z, which):
    N, D = ck.f64(kernel, "z", z, 2)
    ck.positive(kernel, "z.shape[0] (N)", N)
    ck.dim_equal(kernel, "z.shape[1]", D, 2, "the dimension of U1-U4")
    if type(which) is not int or which not in (1, 2, 3, 4):
        raise ValueError(f"{kernel}: which: expected an energy code in {ENERGY_CODES}, got {which!r}.")


# ---------------------------------------------------------------------------------------------
# One sample: the operations of nfscratch.datasets.energies, on scalars (all inlined)
# ---------------------------------------------------------------------------------------------
@njit(inline="always", **_JIT)
def _softmax2(d):
    """``(sigmoid(d), sigmoid(-d))`` as nn.sigmoid computes each, with one ``exp``."""
    e = exp_v(-abs(d))
    big, small = 1.0 / (1.0 + e), e / (1.0 + e)
    return (big, small) if d >= 0.0 else (small, big)


@njit(inline="always", **_JIT)
def _lse(a, b):
    """``log(e^a + e^b)`` as NumPy's ``logaddexp`` computes it (selects, so it vectorizes)."""
    d = a - b
    m = a if d > 0.0 else b
    out = m + log1p_v(exp_v(-abs(d)))
    return a + LN2 if a == b else out


@njit(inline="always", **_JIT)
def _two_bumps(t_a, t_b):
    return -_lse(-0.5 * (t_a * t_a), -0.5 * (t_b * t_b))


@njit(inline="always", **_JIT)
def _two_bumps_grad(t_a, t_b, dt_a1, dt_a2, dt_b1, dt_b2):
    p_a, p_b = _softmax2(0.5 * (t_b - t_a) * (t_b + t_a))
    return (p_a * (t_a * dt_a1) + p_b * (t_b * dt_b1),
            p_a * (t_a * dt_a2) + p_b * (t_b * dt_b2))


@njit(inline="always", **_JIT)
def _hypot(z1, z2):
    """``sqrt(z1^2 + z2^2)`` without overflow, as arithmetic (a call to the C library's ``hypot``
    would stop the loop from vectorizing); equal to ``np.hypot`` to within an ulp."""
    m = max(abs(z1), abs(z2))
    m_safe = m if m > 0.0 else 1.0
    a, b = z1 / m_safe, z2 / m_safe
    return m * math.sqrt(a * a + b * b)


@njit(inline="always", **_JIT)
def _wall(z1, z2):
    e1 = max(0.0, abs(z1) - BOX) / WALL
    e2 = max(0.0, abs(z2) - BOX) / WALL
    return 0.5 * (e1 * e1 + e2 * e2)


@njit(inline="always", **_JIT)
def _wall_grad(zd):
    s = 1.0 if zd > 0.0 else (-1.0 if zd < 0.0 else 0.0)         # np.sign
    return s * max(0.0, abs(zd) - BOX) / (WALL * WALL)


@njit(inline="always", **_JIT)
def _u34_parts(z1, z2, which):
    """``(t_a, t_b, dt_a1, dt_a2, dt_b1, dt_b2)`` of U3 (which 3) or U4 (which 4)."""
    dw1 = HALF_PI * math.cos(HALF_PI * z1)
    u = z2 - math.sin(HALF_PI * z1)
    if which == 3:
        t = (z1 - 1.0) / 0.6
        w = 3.0 * math.exp(-0.5 * (t * t))
        dw = -w * (z1 - 1.0) / 0.36
        s_a = 0.35
    else:
        s, _ = _softmax2((z1 - 1.0) / 0.3)
        w = 3.0 * s
        dw = 3.0 * s * (1.0 - s) / 0.3
        s_a = 0.4
    return u / s_a, (u + w) / 0.35, -dw1 / s_a, 1.0 / s_a, (-dw1 + dw) / 0.35, 1.0 / 0.35


@njit(inline="always", **_JIT)
def _u(z1, z2, which):
    if which == 1:
        t = (_hypot(z1, z2) - 2.0) / 0.4
        return 0.5 * (t * t) + _two_bumps((z1 - 2.0) / 0.6, (z1 + 2.0) / 0.6) + _wall(z1, z2)
    if which == 2:
        t = (z2 - math.sin(HALF_PI * z1)) / 0.4
        return 0.5 * (t * t) + _wall(z1, z2)
    t_a, t_b, _, _, _, _ = _u34_parts(z1, z2, which)
    return _two_bumps(t_a, t_b) + _wall(z1, z2)


@njit(inline="always", **_JIT)
def _u_grad(z1, z2, which):
    if which == 1:
        r = _hypot(z1, z2)
        r_safe = r if r > 0.0 else 1.0              # z/r := 0 at the kink r = 0
        c = (r - 2.0) / 0.16
        g1, g2 = _two_bumps_grad((z1 - 2.0) / 0.6, (z1 + 2.0) / 0.6, 1.0 / 0.6, 0.0, 1.0 / 0.6, 0.0)
        return (c * (z1 / r_safe) + g1) + _wall_grad(z1), (c * (z2 / r_safe) + g2) + _wall_grad(z2)
    if which == 2:
        u = z2 - math.sin(HALF_PI * z1)
        return (-u / 0.16 * (HALF_PI * math.cos(HALF_PI * z1)) + _wall_grad(z1),
                u / 0.16 + _wall_grad(z2))
    t_a, t_b, dt_a1, dt_a2, dt_b1, dt_b2 = _u34_parts(z1, z2, which)
    g1, g2 = _two_bumps_grad(t_a, t_b, dt_a1, dt_a2, dt_b1, dt_b2)
    return g1 + _wall_grad(z1), g2 + _wall_grad(z2)


# ---------------------------------------------------------------------------------------------
# The batch loops. They read z through a flat view (z1, z2 interleaved): with 2-D indexing they
# would not vectorize.
# ---------------------------------------------------------------------------------------------
@njit(**_JIT)
def _energy(z, which):
    zf = z.reshape(-1)
    out = np.empty(z.shape[0])
    for n in range(z.shape[0]):
        out[n] = _u(zf[2 * n], zf[2 * n + 1], which)
    return out


@njit(**_JIT)
def _energy_grad(z, which):
    zf = z.reshape(-1)
    g = np.empty(z.shape)
    gf = g.reshape(-1)
    for n in range(z.shape[0]):
        gf[2 * n], gf[2 * n + 1] = _u_grad(zf[2 * n], zf[2 * n + 1], which)
    return g


def energy_nb(z, which):
    """``U(z)``, shape (N,), for ``z`` (N, 2) and the energy code ``which`` (1..4).

    The twin is ``nfscratch.datasets.ENERGIES[name]`` on the "numpy" backend.
    """
    _check("energy_nb", z, which)
    return _energy(z, which)


def energy_grad_nb(z, which):
    """``dU/dz``, shape (N, 2); at U1's kink ``z = 0`` the radial term contributes 0."""
    _check("energy_grad_nb", z, which)
    return _energy_grad(z, which)
