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
# # 09 · Splines: monotone rational-quadratic maps, and flows that reach the floor
#
# **Learning goals.** After this notebook you can
#
# 1. build a rational-quadratic (RQ) spline from unconstrained numbers: bins from a softmax,
#    knots from a running sum, derivatives from a softplus, and draw it with its knots;
# 2. explain why the map is strictly increasing whatever the network outputs (the
#    monotonicity argument) and why it starts as the identity exactly;
# 3. invert it with the quadratic root in its numerically stable form, and say why the
#    textbook form fails;
# 4. see what the linear tails do outside $[-B, B]$ — including at $\pm 10^{300}$;
# 5. train a spline coupling flow on a toy data set and judge it against the data's entropy.
#
# Time: about 40 minutes (training takes a few minutes in full mode). Exercise 6
# (`ex6_spline.py`) goes with sections 2 and 3.

# %%
import math
import os

import numpy as np
from matplotlib.figure import Figure

from nfscratch import datasets, losses, models
from nfscratch.optim import Adam
from nfscratch.plotting import plot_spline_layer, show, target_vs_model
from nfscratch.transforms.spline import spline_forward, spline_inverse, spline_params

QUICK = os.environ.get("NFSCRATCH_QUICK", "") not in ("", "0")

STEPS = 60 if QUICK else 3000
N_TEST = 2_000 if QUICK else 100_000
GRID = 60 if QUICK else 200
rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. Bins, knots and derivatives
#
# An RQ spline lives on $[-B, B]$, cut into $K$ bins. A network cannot output "widths that are
# positive and sum to $2B$" directly, so it outputs unconstrained numbers $u^w, u^h \in
# \mathbb R^K$ and $u^d \in \mathbb R^{K-1}$, and we map them:
#
# $$ w = m + (1 - K m)\,\mathrm{softmax}(u^w), \qquad x^{(k)} = -B + 2B \sum_{j<k} w_j, $$
#
# the same for the heights and the $y$ knots, and interior derivatives
# $\delta^{(k)} = 1 + (1 - m_d)(\mathrm{softplus}(u^d_k)/\log 2 - 1) > m_d$. The floor $m$
# keeps every bin at least $2Bm$ wide; the two *boundary* derivatives are fixed to 1 so that the
# spline meets the identity tails with slope 1. Here is one spline with random parameters.

# %%
K, B = 6, 3.0
uw, uh, ud = rng.normal(size=K), rng.normal(size=K), rng.normal(size=K - 1)
knot_x, knot_y, deriv, _ = spline_params(uw, uh, ud, bound=B)
print("x knots:    ", np.round(knot_x, 3))
print("y knots:    ", np.round(knot_y, 3))
print("derivatives:", np.round(deriv, 3))

x = np.linspace(-4.5, 4.5, 1201)
P = [np.broadcast_to(a, (x.size, a.size)) for a in (uw, uh, ud)]
y, log_det, _ = spline_forward(x, *P, bound=B)

fig = Figure(figsize=(8, 3.4), layout="constrained")
ax1, ax2 = fig.subplots(1, 2)
ax1.plot(x, y, lw=1.5)
ax1.plot(knot_x, knot_y, "o", color="C3", label="knots")
ax1.plot(x, x, color="0.8", lw=0.8, zorder=0, label="identity")
for v in (-B, B):
    ax1.axvline(v, color="0.7", ls=":", lw=0.8)
ax1.set_xlabel("x")
ax1.set_ylabel("g(x)")
ax1.legend(fontsize=8)
ax2.plot(x, np.exp(log_det), lw=1.5)
ax2.plot(knot_x, deriv, "o", color="C3", label="knot derivatives")
ax2.set_xlabel("x")
ax2.set_ylabel("g'(x) = exp(log_det)")
ax2.legend(fontsize=8)
show(fig, "spline_and_slope")

# %% [markdown]
# *What to look at:* the curve passes through every knot, and its slope (right) takes the value
# $\delta^{(k)}$ at knot $k$; outside the dotted lines the map is the identity with slope 1.
#
# ## 2. Why it is monotone, and the identity at initialization
#
# Inside bin $k$ (width $w_k$, height $h_k$, slope $s_k = h_k / w_k$, position
# $\xi = (x - x^{(k)})/w_k \in [0, 1]$) the map is the ratio of two quadratics
# (Gregory & Delbourgo 1982; Durkan et al. 2019):
#
# $$ g(x) = y^{(k)} + \frac{h_k\,[s_k \xi^2 + \delta^{(k)} \xi(1-\xi)]}
#            {s_k + [\delta^{(k+1)} + \delta^{(k)} - 2 s_k]\,\xi(1-\xi)}. $$
#
# Its derivative (exercise 6 asks you to derive and code it) has the form
# $s_k^2 \cdot [\text{positive combination of } \delta^{(k+1)}, s_k, \delta^{(k)}] /
# [\text{denominator}]^2$: every term of the numerator is a product of positive numbers
# ($\delta > 0$ by the softplus floor, $s_k > 0$ by the softmax floor, $\xi^2, \xi(1-\xi),
# (1-\xi)^2 \ge 0$ and not all zero), and the denominator is a square. So $g' > 0$ everywhere,
# whatever the network outputs: the map can never fold, and it is invertible by construction.
# At $\xi = 0$ and $\xi = 1$ the value and the slope are the knot's, so bins join smoothly.
#
# With all parameters 0 the bins are equal, $s_k = 1$, and every derivative is exactly 1 (the
# softplus is divided by its own value at 0): the map is then $y^{(k)} + h_k \xi$, the identity.

# %%
print("smallest slope on the grid:", f"{np.exp(log_det).min():.4f}", "(> 0: monotone)")
u0 = np.zeros((x.size, K))
y0, ld0, _ = spline_forward(x, u0, u0, np.zeros((x.size, K - 1)), bound=B)
print("identity at zero parameters: max |g(x) - x| =", f"{np.abs(y0 - x).max():.1e}",
      " max |log_det| =", f"{np.abs(ld0).max():.1e}")

# %% [markdown]
# ## 3. The inverse: a quadratic, solved stably
#
# Density estimation runs a flow backwards, data → base, so we need $g^{-1}$. Find the bin by
# searching the $y$ knots, write $r = y - y^{(k)}$, and multiply $g(x) = y$ out: $\xi$ solves
# $a\xi^2 + b\xi + c = 0$ with $c = -s_k r \le 0$. Exactly one root lies in $[0, 1]$. The
# textbook formula $(-b + \sqrt{b^2 - 4ac}) / 2a$ has two problems: where $4ac$ is small it
# subtracts two nearly equal numbers (losing digits), and in a bin where the map is linear,
# $a = 0$ and it divides by zero. Multiplying numerator and denominator by $-b - \sqrt{\cdot}$
# gives the same root as $2c / (-b - \sqrt{b^2 - 4ac})$, which has neither problem. Round-off can
# still push the discriminant to $-10^{-17}$ when it should be 0, so it is clamped at 0 before
# the square root. (Exercise 6 has you write this root.)
#
# The check: a round trip over many random splines, including steep ones.

# %%
M = 2_000 if QUICK else 20_000
U = [2.5 * rng.normal(size=(M, K)), 2.5 * rng.normal(size=(M, K)),
     2.5 * rng.normal(size=(M, K - 1))]
xs = rng.uniform(-B, B, M)
ys, ld_f, _ = spline_forward(xs, *U, bound=B)
xb, ld_i, _ = spline_inverse(ys, *U, bound=B)
print(f"round trip over {M} random splines: max |x - g^-1(g(x))| = {np.abs(xb - xs).max():.1e}, "
      f"max |log_det_f + log_det_inv| = {np.abs(ld_f + ld_i).max():.1e}, "
      f"NaN: {int(np.isnan(xb).sum())}")

# %% [markdown]
# ## 4. Tails
#
# Outside $[-B, B]$ the spline is the identity: $g(x) = x$, $\log g' = 0$, and no parameter
# has a gradient there. The boundary derivatives being 1 makes the joint smooth. The
# implementation clips the input to $[-B, B]$ before evaluating the rational function and then
# selects the identity outside, so even $\pm 10^{300}$ never reaches an overflow or a NaN.

# %%
far = np.array([-1e300, -10.0, -B, B, 10.0, 1e300])
Pf = [a[:far.size] for a in U]
y_far, ld_far, _ = spline_forward(far, *Pf, bound=B)
x_far, ld_far_inv, _ = spline_inverse(far, *Pf, bound=B)
for v, a, b, c in zip(far, y_far, ld_far, x_far):
    print(f"x = {v: .0e}:  g(x) = {a: .6e}  log_det = {b: .3f}  g^-1(x) = {c: .6e}")

# %% [markdown]
# *What to look at:* $\pm B$ map to $\pm B$ (the end knots are pinned) and everything outside
# passes through unchanged. Data that lie far outside $[-B, B]$ get no flexibility there:
# choose $B$ to cover the data.
#
# ## 5. A spline flow on a toy, against the floor
#
# `models.nsf_coupling` stacks spline coupling layers: the features with mask 1 pass through
# and an MLP reads them to output the $3K - 1$ numbers of every other feature's spline.
# We train by maximum likelihood on eight Gaussians with a **fresh batch every step** (no fixed
# training set: nothing to overfit) and a cosine decay of the learning rate. The floor is the
# data's entropy $H(p)$: $E_p[-\log q] = H(p) + \mathrm{KL}(p\|q) \ge H(p)$
# (`datasets.entropy`, computed exactly by quadrature).

# %%
name = "eight_gaussians"
flow = models.nsf_coupling(2, n_layers=5, hidden=(64, 64), n_bins=8, bound=4.0, rng=1)
before = {k: v.copy() for k, v in flow[0].params.items()}
opt = Adam(lr=2e-3)
for step in range(STEPS):
    opt.lr = 2e-3 * 0.5 * (1 + math.cos(math.pi * step / STEPS))
    loss = losses.nll_step(flow, datasets.sample(name, 512, rng))
    opt.step(flow.params(), flow.grads())
    if step % max(1, STEPS // 5) == 0:
        print(f"step {step:5d}  train NLL {loss:.4f}")

test = datasets.sample(name, N_TEST, np.random.default_rng(123))
nll = -flow.log_prob(test)
H = datasets.entropy(name)
print(f"test NLL {nll.mean():.4f} ± {nll.std() / math.sqrt(N_TEST):.4f} nats; entropy {H:.4f}; "
      f"gap {nll.mean() - H:.4f} nats")

# %%
show(target_vs_model(flow, data=test[:20_000], metric_name="gap to H (nats)",
                     metric=nll.mean() - H, grid_size=GRID), "target_vs_model")

# %% [markdown]
# *What to look at:* the eight modes come out round and equally weighted; the gap printed above
# is the KL divergence from the data to the model, in nats.

# %%
show(plot_spline_layer(flow[0], before=before, conditioning=(-2.0, 0.0, 2.0),
                      n_points=100 if QUICK else 400),
     "first_layer_before_after")

# %% [markdown]
# *What to look at:* before training (dashed) every curve is the identity with equally spaced
# knots; after training the first layer's splines bend differently for different values of the
# conditioning feature — flat stretches squeeze mass away, steep stretches pile it into the
# modes — and the knots moved to where the bending happens.
#
# **Further reading.** Durkan, Bekasov, Murray, Papamakarios, "Neural Spline Flows", NeurIPS
# 2019, arXiv:1906.04032. `benchmarks/quality_spline.py` has the recipes for the other toys and
# `benchmarks/README.md` their gaps.
