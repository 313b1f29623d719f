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
# # 03b · Radial flows: a point of attraction, and an inverse in closed form
#
# **Learning goals.** After this notebook you can
#
# 1. write the radial map $x = z + \hat\beta\,(z - z_0)/(\alpha + r)$, $r = \|z - z_0\|$, and
#    derive its log-determinant from the two kinds of directions it has (along the ray, across
#    it);
# 2. state when it is invertible ($\hat\beta \ge -\alpha$) and how a reparameterization keeps it
#    so;
# 3. invert it in closed form — one quadratic per sample — where the planar inverse needs a
#    root-find;
# 4. fit a stack of radial layers by reverse KL and compare it with planar layers on the same
#    budget, in nats against the true $\log Z$.
#
# Time: about 25 minutes (the training cell takes ~30 s; `NFSCRATCH_QUICK=1` shrinks it).
# Prerequisite: tutorial 03 (planar flows).

# %%
import os

import numpy as np
from matplotlib.figure import Figure

from nfscratch import Flow, datasets, models
from nfscratch.gradcheck import check_transform
from nfscratch.plotting import film_strip, show
from nfscratch.train import fit
from nfscratch.transforms import Radial

QUICK = os.environ.get("NFSCRATCH_QUICK", "") not in ("", "0")
K = 8 if QUICK else 32                 # layers per flow
STEPS = 300 if QUICK else 3000         # reverse-KL steps
N_KL = 5_000 if QUICK else 50_000      # samples for each KL estimate

# %% [markdown]
# ## 1. The map
#
# A radial layer has a centre $z_0 \in \mathbb R^D$ and two scalars $\alpha > 0$, $\hat\beta$.
# With $d = z - z_0$ and $r = \|d\|$,
#
# $$ x = z + \hat\beta\, h(r)\, d, \qquad h(r) = \frac{1}{\alpha + r}. $$
#
# Every point moves along the ray from $z_0$ through it: $x - z_0 = g(r)\, d$ with the radial
# factor $g(r) = 1 + \hat\beta h(r)$. Near the centre space is scaled by $g(0) = 1 +
# \hat\beta/\alpha$; far away points are shifted by about $\hat\beta$ along their ray — outward
# for $\hat\beta > 0$, inward for $\hat\beta < 0$.

# %%
layer = Radial(2, rng=0)
layer.params["z0"][:] = [0.5, 0.0]
layer.params["log_alpha"][:] = [np.log(0.3)]
layer.params["beta"][:] = [-2.5]          # beta_hat = -alpha + softplus(beta) < 0 (section 3)
print(f"alpha = {layer.alpha:.3f}, beta_hat = {layer.beta_hat:.3f}")
show(film_strip(Flow([layer]), n_samples=800,
                title=f"one radial layer, z0 = (0.5, 0), alpha = {layer.alpha:.2f}, "
                      f"beta_hat = {layer.beta_hat:.2f}"), "one_layer")

# %% [markdown]
# *Look at:* the grid lines bend toward the centre $z_0$ (printed above): with
# $\hat\beta < 0$ the layer pulls points in and piles density up around $z_0$; far from it the
# lines are only shifted.
#
# ## 2. The log-determinant from two kinds of directions
#
# The Jacobian is $g(r)\, I + g'(r)\, d d^\top / r$: across the ray ($D - 1$ directions
# orthogonal to $d$) it scales by $g$; along the ray by the radial slope
# $q = \frac{d}{dr}\big(r\,g(r)\big) = g + r g'$. So
#
# $$ \log\left|\det \frac{\partial x}{\partial z}\right| = (D - 1) \log g(r) + \log q(r),
#    \qquad q(r) = 1 + \frac{\alpha\hat\beta}{(\alpha + r)^2}, $$
#
# again $O(D)$ per sample. `check_transform` compares it with `slogdet` of a finite-difference
# Jacobian and checks every gradient in both directions:

# %%
result = check_transform(layer)
print(result.table())
assert result.passed

# %% [markdown]
# ## 3. Invertibility
#
# The map is invertible when the radius after the layer, $r_x = r\, g(r)$, grows with $r$, i.e.
# when $q(r) > 0$ for every $r \ge 0$. $q$ is smallest at the centre, where it is
# $1 + \hat\beta / \alpha$; so the condition is $\hat\beta > -\alpha$. The stored parameter is an
# unconstrained $\beta$, mapped to $\hat\beta = -\alpha + \log(1 + e^\beta)$ — the same
# softplus that keeps the planar $\hat u$ invertible — and $\alpha = e^{\log\alpha}$ is stored
# as its log.

# %%
r = np.linspace(0, 3, 300)
alpha = 0.5
fig = Figure(figsize=(10, 3.4), layout="constrained")
ax0, ax1 = fig.subplots(1, 2)
for beta_hat in (-0.9, -0.5, -0.25, 0.0, 1.0):
    ax0.plot(r, r * (1 + beta_hat / (alpha + r)), label=f"beta_hat = {beta_hat:g}")
ax0.plot(r, r, color="0.6", ls=":", lw=0.8)
ax0.set(xlabel="r = |z - z0|", ylabel="r_x = |x - z0|",
        title=f"alpha = {alpha}: monotone iff beta_hat >= -alpha")
ax0.legend(fontsize=8)
b = np.linspace(-6, 6, 300)
ax1.plot(b, -alpha + np.logaddexp(0, b), label="beta_hat = -alpha + log(1 + e^beta)")
ax1.axhline(-alpha, color="tab:red", lw=0.8, ls=":", label="-alpha")
ax1.set(xlabel="beta (stored)", ylabel="beta_hat", title="the reparameterization")
ax1.legend(fontsize=8)
show(fig, "invertibility")

# %% [markdown]
# *Look at:* on the left the curve for $\hat\beta = -0.9 < -\alpha$ first falls: two radii map
# to one, no inverse. On the right $\hat\beta$ approaches $-\alpha$ but never reaches it.
#
# ## 4. The inverse in closed form
#
# Given $x$, write $y = x - z_0$ and $r_x = \|y\|$. The radius $r$ before the layer solves
# $r_x = r\,(r + m)/(r + \alpha)$ with $m = \alpha + \hat\beta > 0$, a quadratic
#
# $$ r^2 + (m - r_x)\, r - \alpha r_x = 0, $$
#
# whose two roots multiply to $-\alpha r_x \le 0$: exactly one is non-negative. Then
# $z = z_0 + y / g(r)$. (The file `nfscratch/transforms/radial.py` explains which of the two
# algebraically equal root formulas is used where, so that no digits cancel.) Compare the
# planar layer, whose inverse has no closed form and is found by a safeguarded Newton
# iteration. The round trip:

# %%
z = np.random.default_rng(1).normal(size=(100_000, 2))
x, log_det = layer.forward(z)
z_back, log_det_inv = layer.inverse(x)
print(f"max |inverse(forward(z)) - z| = {np.max(np.abs(z_back - z)):.1e}, "
      f"max |log_det + log_det_inv| = {np.max(np.abs(log_det + log_det_inv)):.1e}")

# %% [markdown]
# ## 5. Radial against planar on $U_1$–$U_4$
#
# Both flows have $K$ layers and are trained the same way (reverse KL with annealing, the same
# steps and learning rate). The KL is reported in nats with the true $\log Z$ of each energy.

# %%
def kl_nats(flow, energy, n, seed):
    x, log_q = flow.sample_and_log_prob(n, rng=seed)
    return float(np.mean(log_q + energy.energy(x)) + energy.log_normalizer())


print(f"{'energy':<7} {'radial KL':>10} {'planar KL':>10}   (nats, K = {K}, {STEPS} steps)")
kls = {}
for name in ("U1", "U2", "U3", "U4"):
    energy = datasets.energy(name)
    row = []
    for build in (models.radial_flow, models.planar_flow):
        flow = build(2, K, rng=0)
        fit(flow, target=energy, steps=STEPS, lr=1e-2, anneal=STEPS // 3, rng=0, progress=False)
        row.append(kl_nats(flow, energy, N_KL, seed=1))
    kls[name] = row
    print(f"{name:<7} {row[0]:10.3f} {row[1]:10.3f}")

# %% [markdown]
# *Read the table:* each layer type is good at a different shape. A radial layer can only
# contract or expand around a point, so it builds round bumps and rings well; the wave-shaped
# $U_2$–$U_4$ need many bends along lines, which is what planar layers make. Which one wins on
# each energy is printed above — the full run and the quick run may disagree, since quick runs
# stop long before convergence.
