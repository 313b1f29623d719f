r"""Kernels for the energies U1-U4 of Rezende & Mohamed (2015) and their gradients, wall included.

The formulas, their hand-derived gradients and the box wall are those of
:func:`nfscratch.datasets.energy` (read them there); ``which`` selects the energy
(``ENERGY_CODES``: 1 for U1 ... 4 for U4). With :math:`w_1 = \sin(\pi z_1/2)`,
:math:`w_2 = 3 e^{-\frac12((z_1-1)/0.6)^2}`, :math:`w_3 = 3\sigma((z_1-1)/0.3)` and
:math:`W(z) = \sum_d \frac12(\max(0, |z_d| - 4)/0.25)^2`:

.. math::

    U_1 &= \tfrac12\big((\lVert z\rVert - 2)/0.4\big)^2 - \mathrm{lse}\big(-\tfrac12((z_1-2)/0.6)^2,
           -\tfrac12((z_1+2)/0.6)^2\big) + W, \qquad
    U_2 = \tfrac12\big((z_2 - w_1)/0.4\big)^2 + W, \\
    U_3 &= -\mathrm{lse}\big(-\tfrac12(u/0.35)^2, -\tfrac12((u + w_2)/0.35)^2\big) + W, \qquad
    U_4 = -\mathrm{lse}\big(-\tfrac12(u/0.4)^2, -\tfrac12((u + w_3)/0.35)^2\big) + W,

with :math:`u = z_2 - w_1` and :math:`\mathrm{lse}(a, b) = \log(e^a + e^b)`.

Why a kernel. In the reverse-KL step of a planar flow (K = 32, batch 512) the energy and its
gradient in NumPy took ~106 us, more than the whole forward chain kernel: ~25 array operations
each, on arrays of 512 numbers. One pass per sample does the same work in a few microseconds.
U1's ``exp`` and ``log1p`` are :mod:`._math`'s vectorizable ``exp_v``/``log1p_v``, and its loop
(the benchmark's target) vectorizes. U2-U4 call the C library's ``sin``/``cos`` for every sample,
so their loops cannot, and they use its ``exp``/``log1p`` too (much faster to compile).

Shapes: ``z`` (N, 2), C-contiguous float64; ``energy`` returns (N,), ``energy_grad`` (N, 2). The
NumPy twins follow :mod:`nfscratch.datasets` operation by operation, so all three agree to
rounding (~1e-15; the tests ask for 1e-12).

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

__all__ = ["ENERGY_CODES", "energy_ref", "energy_nb", "energy_grad_ref", "energy_grad_nb"]

ENERGY_CODES = {"U1": 1, "U2": 2, "U3": 3, "U4": 4}
BOX = 4.0                       # the wall starts at |z_d| = 4 (datasets.BOX_HALF_WIDTH)
WALL = 0.25                     # its Gaussian-tail scale (datasets.WALL_SCALE)
HALF_PI = 0.5 * math.pi
LN2 = math.log(2.0)
S3 = 0.35 ** 2                  # written as datasets writes it: 0.12249999999999998

# No fastmath at all, not even "contract": with fused multiply-adds, p_a da + p_b db at U1's
# symmetric points (p_a = p_b, da = -db) leaves a rounding residue instead of NumPy's exact 0.
_JIT = dict(cache=True, error_model="numpy")


def _check(kernel, z, which):
    N, D = ck.f64(kernel, "z", z, 2)
    ck.positive(kernel, "z.shape[0] (N)", N)
    ck.dim_equal(kernel, "z.shape[1]", D, 2, "the dimension of U1-U4")
    if type(which) is not int or which not in (1, 2, 3, 4):
        raise ValueError(f"{kernel}: which: expected an energy code in {ENERGY_CODES}, got {which!r}.")


# ---------------------------------------------------------------------------------------------
# NumPy twins (the spec: the operations of nfscratch.datasets, vectorized over the batch)
# ---------------------------------------------------------------------------------------------
def _sigmoid_ref(t):
    e = np.exp(-np.abs(t))
    return np.where(t >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def _parts_ref(z, which):
    """``(a, b, da, db)``: the two log-bump exponents and their gradients, (N,) and (N, 2) --
    or for U2, ``(u, None, None, None)``."""
    z1, z2 = z[:, 0], z[:, 1]
    da, db = np.zeros_like(z), np.zeros_like(z)
    if which == 1:
        da[:, 0], db[:, 0] = -(z1 - 2.0) / 0.36, -(z1 + 2.0) / 0.36
        return -0.5 * ((z1 - 2.0) / 0.6) ** 2, -0.5 * ((z1 + 2.0) / 0.6) ** 2, da, db
    u = z2 - np.sin(HALF_PI * z1)
    if which == 2:
        return u, None, None, None
    dw1 = HALF_PI * np.cos(HALF_PI * z1)
    if which == 3:                                   # second bump shifted by w2, both of std 0.35
        w2 = 3.0 * np.exp(-0.5 * ((z1 - 1.0) / 0.6) ** 2)
        v, s_u, dw = u + w2, 0.35, -w2 * (z1 - 1.0) / 0.36
    else:                                            # U4: shifted by w3, stds 0.4 and 0.35
        s = _sigmoid_ref((z1 - 1.0) / 0.3)
        v, s_u, dw = u + 3.0 * s, 0.4, 3.0 * s * (1.0 - s) / 0.3
    var_u = S3 if which == 3 else 0.16
    da[:, 0], da[:, 1] = u / var_u * dw1, -u / var_u
    db[:, 0], db[:, 1] = -v / S3 * (-dw1 + dw), -v / S3
    return -0.5 * (u / s_u) ** 2, -0.5 * (v / 0.35) ** 2, da, db


def _wall_ref(z):
    excess = np.maximum(0.0, np.abs(z) - BOX) / WALL              # (N, 2)
    return 0.5 * np.sum(excess * excess, axis=1)


def energy_ref(z, which):
    """``U(z)``, shape (N,), for ``z`` (N, 2) and the energy code ``which`` (1..4).

    Examples
    --------
    >>> float(energy_ref(np.zeros((1, 2)), 2)[0])
    0.0
    """
    _check("energy_ref", z, which)
    if which == 1:
        r = np.sqrt(np.sum(z * z, axis=1))
        a, b, _, _ = _parts_ref(z, 1)
        return 0.5 * ((r - 2.0) / 0.4) ** 2 - np.logaddexp(a, b) + _wall_ref(z)
    a, b, _, _ = _parts_ref(z, which)
    if which == 2:
        return 0.5 * (a / 0.4) ** 2 + _wall_ref(z)
    return -np.logaddexp(a, b) + _wall_ref(z)


def energy_grad_ref(z, which):
    """``dU/dz``, shape (N, 2); at U1's kink ``z = 0`` the radial term contributes 0."""
    _check("energy_grad_ref", z, which)
    wall = np.sign(z) * np.maximum(0.0, np.abs(z) - BOX) / WALL ** 2
    a, b, da, db = _parts_ref(z, which)
    if which == 2:
        g = np.empty_like(z)
        g[:, 0] = -a / 0.16 * (HALF_PI * np.cos(HALF_PI * z[:, 0]))
        g[:, 1] = a / 0.16
        return g + wall
    lse = np.logaddexp(a, b)
    bumps = -(np.exp(a - lse)[:, None] * da + np.exp(b - lse)[:, None] * db)
    if which == 1:
        r = np.sqrt(np.sum(z * z, axis=1))
        coef = np.where(r > 0.0, (r - 2.0) / (0.16 * np.where(r > 0.0, r, 1.0)), 0.0)
        return coef[:, None] * z + bumps + wall
    return bumps + wall


# ---------------------------------------------------------------------------------------------
# Numba: one pass over the samples
# ---------------------------------------------------------------------------------------------
@njit(inline="always", **_JIT)
def _lse(a, b):
    """``log(e^a + e^b)`` as NumPy's ``logaddexp`` computes it (selects, so it vectorizes)."""
    d = a - b
    m = a if d > 0.0 else b
    out = m + log1p_v(exp_v(-abs(d)))
    return a + LN2 if a == b else out


# U3 and U4 call the C library's sin and cos for every sample, so their loops do not vectorize
# whatever the rest does: they use the C library's exp and log1p as well, which compile in a
# fraction of the time of the inlined exp_v/log1p_v (~4 s for U3/U4's kernel pair otherwise).
@njit(inline="always", **_JIT)
def _lse_c(a, b):
    """:func:`_lse` with the C library's ``exp``/``log1p`` (NumPy's ``logaddexp`` calls them too)."""
    d = a - b
    m = a if d > 0.0 else b
    out = m + math.log1p(math.exp(-abs(d)))
    return a + LN2 if a == b else out


@njit(inline="always", **_JIT)
def _sigmoid_c(t):
    e = math.exp(-abs(t))
    return 1.0 / (1.0 + e) if t >= 0.0 else e / (1.0 + e)


@njit(inline="always", **_JIT)
def _wall(z1, z2):
    e1 = max(0.0, abs(z1) - BOX) / WALL
    e2 = max(0.0, abs(z2) - BOX) / WALL
    return 0.5 * (e1 * e1 + e2 * e2)


@njit(inline="always", **_JIT)
def _wall_grad(zd):
    s = 1.0 if zd > 0.0 else (-1.0 if zd < 0.0 else 0.0)         # np.sign
    return s * max(0.0, abs(zd) - BOX) / (WALL * WALL)


# Per energy: the scalar U(z) and dU/dz of one sample (inlined), then a small kernel pair that
# loops over the batch (U3 and U4 share one). Not one pair for all four with a branch on
# ``which``: that took 5.6 s to compile from an empty cache and doubled the planar benchmark's
# cold start; a run that uses U1 now compiles U1's pair only (2.9 s).
@njit(inline="always", **_JIT)
def _u1_bumps(z1):
    """U1's two bumps: ``(a, b, da/dz1, db/dz1)`` (they do not depend on z2)."""
    t1 = (z1 - 2.0) / 0.6
    t2 = (z1 + 2.0) / 0.6
    return -0.5 * (t1 * t1), -0.5 * (t2 * t2), -(z1 - 2.0) / 0.36, -(z1 + 2.0) / 0.36


@njit(inline="always", **_JIT)
def _u34_bumps(z1, z2, which):
    """U3's (which 3) or U4's (which 4) bumps: ``(a, b, da1, da2, db1, db2)``."""
    dw1 = HALF_PI * math.cos(HALF_PI * z1)
    u = z2 - math.sin(HALF_PI * z1)
    if which == 3:
        t = (z1 - 1.0) / 0.6
        w2 = 3.0 * math.exp(-0.5 * (t * t))
        v = u + w2
        dw = -w2 * (z1 - 1.0) / 0.36
        s_u = 0.35
        var_u = S3
    else:
        s = _sigmoid_c((z1 - 1.0) / 0.3)
        v = u + 3.0 * s
        dw = 3.0 * s * (1.0 - s) / 0.3
        s_u = 0.4
        var_u = 0.16
    ta = u / s_u
    tb = v / 0.35
    return (-0.5 * (ta * ta), -0.5 * (tb * tb), u / var_u * dw1, -u / var_u,
            -v / S3 * (-dw1 + dw), -v / S3)


@njit(inline="always", **_JIT)
def _bumps_grad(a, b, da1, da2, db1, db2):
    """Gradient of ``-lse(a, b)``: ``-(p_a da + p_b db)`` with the softmax weights p."""
    lse = _lse(a, b)
    pa = exp_v(a - lse)
    pb = exp_v(b - lse)
    return -(pa * da1 + pb * db1), -(pa * da2 + pb * db2)


@njit(inline="always", **_JIT)
def _bumps_grad_c(a, b, da1, da2, db1, db2):
    """:func:`_bumps_grad` with the C library's ``exp``."""
    lse = _lse_c(a, b)
    pa = math.exp(a - lse)
    pb = math.exp(b - lse)
    return -(pa * da1 + pb * db1), -(pa * da2 + pb * db2)


@njit(inline="always", **_JIT)
def _u1(z1, z2):
    t = (math.sqrt(z1 * z1 + z2 * z2) - 2.0) / 0.4
    a, b, _, _ = _u1_bumps(z1)
    return 0.5 * (t * t) - _lse(a, b) + _wall(z1, z2)


@njit(inline="always", **_JIT)
def _u1_grad(z1, z2):
    a, b, da1, db1 = _u1_bumps(z1)
    g1, g2 = _bumps_grad(a, b, da1, 0.0, db1, 0.0)
    r = math.sqrt(z1 * z1 + z2 * z2)
    coef = (r - 2.0) / (0.16 * (r if r > 0.0 else 1.0))
    coef = coef if r > 0.0 else 0.0                           # the kink at 0: a subgradient
    return (coef * z1 + g1) + _wall_grad(z1), (coef * z2 + g2) + _wall_grad(z2)


@njit(inline="always", **_JIT)
def _u2(z1, z2):
    t = (z2 - math.sin(HALF_PI * z1)) / 0.4
    return 0.5 * (t * t) + _wall(z1, z2)


@njit(inline="always", **_JIT)
def _u2_grad(z1, z2):
    u = z2 - math.sin(HALF_PI * z1)
    return (-u / 0.16 * (HALF_PI * math.cos(HALF_PI * z1)) + _wall_grad(z1),
            u / 0.16 + _wall_grad(z2))


@njit(inline="always", **_JIT)
def _u34(z1, z2, which):
    a, b, _, _, _, _ = _u34_bumps(z1, z2, which)
    return -_lse_c(a, b) + _wall(z1, z2)


@njit(inline="always", **_JIT)
def _u34_grad(z1, z2, which):
    a, b, da1, da2, db1, db2 = _u34_bumps(z1, z2, which)
    g1, g2 = _bumps_grad_c(a, b, da1, da2, db1, db2)
    return g1 + _wall_grad(z1), g2 + _wall_grad(z2)


# The loops read z through a flat view (z1, z2 interleaved): with 2-D indexing they would not
# vectorize. The U1 pair vectorizes; U2-U4 call the C library's sin and cos.
@njit(**_JIT)
def _energy_u1(z):
    zf = z.reshape(-1)
    out = np.empty(z.shape[0])
    for n in range(z.shape[0]):
        out[n] = _u1(zf[2 * n], zf[2 * n + 1])
    return out


@njit(**_JIT)
def _energy_u2(z):
    zf = z.reshape(-1)
    out = np.empty(z.shape[0])
    for n in range(z.shape[0]):
        out[n] = _u2(zf[2 * n], zf[2 * n + 1])
    return out


@njit(**_JIT)
def _energy_u34(z, which):
    zf = z.reshape(-1)
    out = np.empty(z.shape[0])
    for n in range(z.shape[0]):
        out[n] = _u34(zf[2 * n], zf[2 * n + 1], which)
    return out


@njit(**_JIT)
def _grad_u1(z):
    zf = z.reshape(-1)
    g = np.empty(z.shape)
    gf = g.reshape(-1)
    for n in range(z.shape[0]):
        gf[2 * n], gf[2 * n + 1] = _u1_grad(zf[2 * n], zf[2 * n + 1])
    return g


@njit(**_JIT)
def _grad_u2(z):
    zf = z.reshape(-1)
    g = np.empty(z.shape)
    gf = g.reshape(-1)
    for n in range(z.shape[0]):
        gf[2 * n], gf[2 * n + 1] = _u2_grad(zf[2 * n], zf[2 * n + 1])
    return g


@njit(**_JIT)
def _grad_u34(z, which):
    zf = z.reshape(-1)
    g = np.empty(z.shape)
    gf = g.reshape(-1)
    for n in range(z.shape[0]):
        gf[2 * n], gf[2 * n + 1] = _u34_grad(zf[2 * n], zf[2 * n + 1], which)
    return g


def _energy(z, which):
    """The kernel for energy ``which`` (U3 and U4 share one: they differ in one branch)."""
    if which == 1:
        return _energy_u1(z)
    return _energy_u2(z) if which == 2 else _energy_u34(z, which)


def _energy_grad(z, which):
    if which == 1:
        return _grad_u1(z)
    return _grad_u2(z) if which == 2 else _grad_u34(z, which)


def energy_nb(z, which):
    """Numba twin of :func:`energy_ref`."""
    _check("energy_nb", z, which)
    return _energy(z, which)


def energy_grad_nb(z, which):
    """Numba twin of :func:`energy_grad_ref`."""
    _check("energy_grad_nb", z, which)
    return _energy_grad(z, which)
