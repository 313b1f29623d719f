# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · Change of variables, by hand
#
# **Learning goals.** After this notebook you can
#
# 1. push a density through an invertible map in 1-D and write the new density down;
# 2. explain *why* the absolute derivative (in 2-D, the absolute Jacobian determinant) appears —
#    probability mass is conserved, volume is not;
# 3. check a pushed-forward density numerically: it matches a histogram of pushed samples and
#    still integrates to 1, while the formula without the Jacobian does not;
# 4. recognise the 2-D map at the end as the seed of a coupling layer (tutorial 04).
#
# Everything here is plain NumPy; nfscratch appears only to check a Jacobian at the end.
# Time: about 20 minutes.

# %%
import os

import numpy as np
from matplotlib.figure import Figure

from nfscratch.gradcheck import numerical_jacobian
from nfscratch.plotting import show

QUICK = os.environ.get("NFSCRATCH_QUICK", "") not in ("", "0")   # tests run a shrunk version

rng = np.random.default_rng(0)
N_SAMPLES = 20_000 if QUICK else 200_000

# %% [markdown]
# ## 1. One dimension
#
# Draw $z \sim p_z = \mathcal N(0, 1)$ and set $x = f(z)$ for an increasing, invertible $f$.
# What is the density $p_x$ of $x$?
#
# Take a tiny interval $[z, z + dz]$. It holds probability $p_z(z)\,dz$. The map sends it to
# $[x, x + dx]$ with $dx = f'(z)\,dz$, and **the same samples land there**, so the probability is
# the same:
#
# $$ p_x(x)\,|dx| = p_z(z)\,|dz| \quad\Longrightarrow\quad
#    p_x(x) = p_z\big(f^{-1}(x)\big)\,\left|\frac{d f^{-1}}{dx}(x)\right|
#           = \frac{p_z(z)}{|f'(z)|}\Big|_{z = f^{-1}(x)}. $$
#
# Where $f$ stretches ($|f'| > 1$) the same mass is spread over more room and the density
# drops; where it squeezes, the density rises. The absolute value makes the rule hold for a
# decreasing $f$ too. In log form, which is what flows compute:
#
# $$ \log p_x(x) = \log p_z(z) - \log|f'(z)|. $$
#
# Our map: $f(z) = z + 0.9 \tanh(2z)$. Its derivative $1 + 1.8\,(1 - \tanh^2 2z)$ is positive,
# so $f$ is increasing; it stretches the middle and leaves the tails almost alone, so one bump
# should become two.

# %%
def f(z):
    return z + 0.9 * np.tanh(2.0 * z)


def f_prime(z):
    return 1.0 + 1.8 * (1.0 - np.tanh(2.0 * z) ** 2)


def f_inverse(x, iters=60):
    """Invert the increasing f by bisection (no closed form); the root lies in [x - 0.9, x + 0.9]."""
    lo, hi = x - 0.9, x + 0.9
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        too_big = f(mid) > x
        hi = np.where(too_big, mid, hi)
        lo = np.where(too_big, lo, mid)
    return 0.5 * (lo + hi)


def normal_pdf(z):
    return np.exp(-0.5 * z * z) / np.sqrt(2.0 * np.pi)


z = rng.standard_normal(N_SAMPLES)
x = f(z)

grid = np.linspace(-5.0, 5.0, 2001)
z_of_x = f_inverse(grid)
p_x = normal_pdf(z_of_x) / f_prime(z_of_x)          # the change of variables
p_x_naive = normal_pdf(z_of_x)                       # the same, forgetting the derivative

print(f"max |f(f^-1(x)) - x| on the grid: {np.max(np.abs(f(z_of_x) - grid)):.1e}")
dx = grid[1] - grid[0]
print(f"integral of p_x (with |f'|):      {np.sum(p_x) * dx:.5f}")
print(f"integral without the derivative:  {np.sum(p_x_naive) * dx:.5f}")

# %%
fig = Figure(figsize=(11, 3.4), layout="constrained")
ax0, ax1, ax2 = fig.subplots(1, 3)
zz = np.linspace(-3.5, 3.5, 400)
ax0.plot(zz, f(zz), color="k")
ax0.plot(zz, zz, color="0.7", ls="--", label="identity")
for z0 in np.linspace(-2.0, 2.0, 9):   # equal slices in z, unequal slices in x
    ax0.plot([z0, z0, -3.5], [-4.5, f(z0), f(z0)], color="tab:blue", lw=0.6, alpha=0.7)
ax0.set(xlabel="z", ylabel="x = f(z)", title="the map: equal steps in z, unequal in x",
        xlim=(-3.5, 3.5), ylim=(-4.5, 4.5))
ax0.legend(loc="lower right")
ax1.hist(z, bins=120, range=(-4, 4), density=True, color="0.75", label="samples of z")
ax1.plot(zz, normal_pdf(zz), color="k", label="$p_z$")
ax1.set(xlabel="z", title="base density", xlim=(-4, 4))
ax1.legend()
ax2.hist(x, bins=160, range=(-5, 5), density=True, color="0.75", label="samples of x = f(z)")
ax2.plot(grid, p_x, color="tab:blue", lw=2, label="$p_z(f^{-1}(x))\\,/\\,|f'|$")
ax2.plot(grid, p_x_naive, color="tab:red", ls="--", label="without $1/|f'|$")
ax2.set(xlabel="x", title="pushed-forward density", xlim=(-5, 5))
ax2.legend(fontsize=8, loc="upper left")
show(fig, "one_dimension")

# %% [markdown]
# *Look at:* on the right, the blue curve follows the histogram of pushed samples exactly and
# the middle has split into two bumps; the red dashed curve (no derivative) is simply the
# Gaussian relabelled, it misses the dip, and its area printed above is not 1.
#
# ## 2. Two dimensions: area instead of length
#
# In $D$ dimensions the small interval becomes a small box around $z$, and $f$ maps it (to first
# order) by the Jacobian matrix $J = \partial x / \partial z$. A linear map multiplies volumes by
# $|\det J|$, hence
#
# $$ p_x(x) = p_z(z)\,\left|\det \frac{\partial x}{\partial z}\right|^{-1}, \qquad
#    \log p_x(x) = \log p_z(z) - \log\left|\det \frac{\partial x}{\partial z}\right|,
#    \qquad z = f^{-1}(x). $$
#
# First a picture of that volume factor for a linear map $x = A z$: the unit square becomes a
# parallelogram of area $|\det A|$.

# %%
A = np.array([[1.5, 0.8], [0.3, 0.9]])
square = np.array([[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]], dtype=float)
fig = Figure(figsize=(7, 3.4), layout="constrained")
ax0, ax1 = fig.subplots(1, 2)
ax0.fill(square[:, 0], square[:, 1], alpha=0.4)
ax0.set(title="unit square in z: area 1", xlim=(-0.5, 2.6), ylim=(-0.5, 2.0), aspect="equal")
para = square @ A.T
ax1.fill(para[:, 0], para[:, 1], alpha=0.4, color="tab:orange")
ax1.set(title=f"its image A z: area |det A| = {abs(np.linalg.det(A)):.2f}", xlim=(-0.5, 2.6),
        ylim=(-0.5, 2.0), aspect="equal")
show(fig, "area")

# %% [markdown]
# *Look at:* the orange parallelogram's area is $|\det A| = 1.11$; a density pushed through $A$
# is divided by that number everywhere, so its total mass stays 1.
#
# Now a non-linear map, chosen so that every piece is easy:
#
# $$ x_1 = z_1, \qquad x_2 = z_2\, e^{s(z_1)} + t(z_1), \qquad s(z_1) = 0.5\,z_1,\;
#    t(z_1) = z_1^2 / 2. $$
#
# Its Jacobian is lower triangular,
# $\begin{pmatrix} 1 & 0 \\ \partial x_2/\partial z_1 & e^{s(z_1)} \end{pmatrix}$, so
# $\log|\det J| = s(z_1)$ — we never need $\partial x_2 / \partial z_1$, however complicated $t$
# and $s$ are. The inverse is explicit too: $z_1 = x_1$, $z_2 = (x_2 - t(x_1))\,e^{-s(x_1)}$.
# Keep this map in mind: it *is* an affine coupling layer (Dinh et al. 2017), with hand-written
# $s$ and $t$ where RealNVP uses a neural network.

# %%
def banana(z):
    """The map above for z of shape (N, 2); returns (x, log|det dx/dz|)."""
    s, t = 0.5 * z[:, 0], 0.5 * z[:, 0] ** 2
    x = np.stack([z[:, 0], z[:, 1] * np.exp(s) + t], axis=1)
    return x, s


def banana_inverse(x):
    s, t = 0.5 * x[:, 0], 0.5 * x[:, 0] ** 2
    return np.stack([x[:, 0], (x[:, 1] - t) * np.exp(-s)], axis=1), -s


def log_normal_2d(z):
    return -0.5 * np.sum(z * z, axis=1) - np.log(2.0 * np.pi)


# the log-det formula against slogdet of a finite-difference Jacobian, at a few points
for p in rng.standard_normal((3, 2)):
    J = numerical_jacobian(lambda v: banana(v[None, :])[0][0], p)
    print(f"z = {np.round(p, 3)}:  s(z1) = {0.5 * p[0]: .6f}   slogdet(J) = {np.linalg.slogdet(J)[1]: .6f}")

# %%
n_grid = 200 if QUICK else 400
lim = (-4.5, 4.5), (-4.0, 11.0)
g1, g2 = np.linspace(*lim[0], n_grid), np.linspace(*lim[1], n_grid)
X1, X2 = np.meshgrid(g1, g2)
pts = np.stack([X1.ravel(), X2.ravel()], axis=1)                  # (G, 2) points in x
z_back, log_det_inv = banana_inverse(pts)                          # log|det dz/dx| = -s
log_p = log_normal_2d(z_back) + log_det_inv                         # change of variables
cell = (g1[1] - g1[0]) * (g2[1] - g2[0])
mass = np.exp(log_p).sum() * cell
mass_naive = np.exp(log_normal_2d(z_back)).sum() * cell
print(f"mass of p_x on the grid: {mass:.4f}    without the log-det: {mass_naive:.4f}")

x_samples, _ = banana(rng.standard_normal((N_SAMPLES, 2)))

fig = Figure(figsize=(11, 3.8), layout="constrained")
axes = fig.subplots(1, 3, sharex=True, sharey=True)
extent = (*lim[0], *lim[1])
axes[0].hist2d(x_samples[:, 0], x_samples[:, 1], bins=120, range=lim, cmap="Blues")
axes[0].set_title("samples pushed through f")
vmax = np.exp(log_normal_2d(z_back)).max()          # one colour scale for both formulas
im = axes[1].imshow(np.exp(log_p).reshape(n_grid, n_grid), origin="lower", extent=extent,
                    aspect="auto", cmap="Blues", vmin=0, vmax=vmax)
axes[1].set_title(f"change of variables: mass {mass:.3f}")
axes[2].imshow(np.exp(log_normal_2d(z_back)).reshape(n_grid, n_grid), origin="lower",
               extent=extent, aspect="auto", cmap="Blues", vmin=0, vmax=vmax)
axes[2].set_title(f"no log-det: mass {mass_naive:.3f}")
for ax in axes:
    ax.set_xlabel("$x_1$")
axes[0].set_ylabel("$x_2$")
fig.colorbar(im, ax=axes, shrink=0.8, label="density (same scale in both)")
show(fig, "two_dimensions")

# %% [markdown]
# *Look at:* the middle panel matches the sample histogram on the left and integrates to 1;
# the right panel (no log-det) is too dense on the right ($x_1 > 0$), where $e^{s} > 1$
# stretched the samples thin, and too faint on the left arm, where they were squeezed — and its
# mass is not 1.
#
# ## What to take away
#
# - $\log p_x(x) = \log p_z(f^{-1}(x)) + \log|\det \partial f^{-1}/\partial x|$: a flow needs
#   the inverse **and** a log-determinant, per sample.
# - A general $D \times D$ determinant costs $O(D^3)$ (tutorial 05); a triangular Jacobian costs
#   $O(D)$ — the reason coupling layers (tutorial 04) and planar layers (tutorial 03) are built
#   the way they are.
# - Checking that a density integrates to 1 on a grid, and comparing a log-det with `slogdet`
#   of a finite-difference Jacobian, are the two cheapest sanity checks there are; nfscratch's
#   plots and `gradcheck` do both for you.
#
# References: Papamakarios et al., *Normalizing Flows for Probabilistic Modeling and Inference*,
# JMLR 2021, arXiv:1912.02762 (Section 2); Rezende & Mohamed 2015, arXiv:1505.05770.
