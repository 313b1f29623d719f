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
# # 03 · Planar flows and variational inference
#
# **Learning goals.** After this notebook you can
#
# 1. write down the planar map $x = z + u \tanh(w^\top z + b)$, its Jacobian and its $O(D)$
#    log-determinant (matrix determinant lemma);
# 2. explain when a planar layer stops being invertible and how the reparameterization
#    $u \mapsto \hat u$ prevents it;
# 3. state the backward pass of a layer with two outputs ($x$ and $\log|\det|$) and check it;
# 4. fit a stack of planar layers to the unnormalized targets $U_1$–$U_4$ of Rezende & Mohamed
#    (2015) by reverse KL, see why annealing matters for $U_1$, and report the KL **in nats**
#    using the true log-normalizer;
# 5. read a film strip: the base Gaussian warped one group of layers at a time.
#
# Time: about 40 minutes (the training cells take ~20 s; `NFSCRATCH_QUICK=1` shrinks them).
# Exercise 2 (`ex2_planar_backward.py`) goes with section 4.

# %%
import os

import numpy as np
from matplotlib.figure import Figure

from nfscratch import Flow, datasets, models
from nfscratch.gradcheck import check_transform
from nfscratch.plotting import film_strip, show
from nfscratch.train import fit
from nfscratch.transforms import Planar

QUICK = os.environ.get("NFSCRATCH_QUICK", "") not in ("", "0")

K = 8 if QUICK else 32                 # planar layers
STEPS = 400 if QUICK else 3000         # reverse-KL steps per target
ANNEAL = 150 if QUICK else 1000        # steps over which beta rises from 0.01 to 1
N_KL = 5_000 if QUICK else 50_000      # samples for the final KL estimate

# %% [markdown]
# ## 1. The map
#
# For one sample $z \in \mathbb R^D$ and parameters $u, w \in \mathbb R^D$, $b \in \mathbb R$:
#
# $$ a = w^\top z + b, \qquad x = f(z) = z + u \tanh(a). $$
#
# The layer moves every point along the single direction $u$, by an amount that depends on
# which side of the hyperplane $w^\top z + b = 0$ it is and how far: a smooth "step" that
# pulls space apart (or pushes it together) along that hyperplane.

# %%
layer = Planar(2, rng=0)
layer.params["u"][:] = [1.2, 0.6]
layer.params["w"][:] = [2.0, 1.0]
layer.params["b"][:] = [0.0]
u_hat = layer.u_hat          # the vector the layer really moves points along (section 3)
print(f"u = {layer.params['u']}, u_hat = {np.round(u_hat, 3)}")
show(film_strip(Flow([layer]), n_samples=800,
                title=f"one planar layer, u_hat = ({u_hat[0]:.2f}, {u_hat[1]:.2f}) "
                      f"(from u = (1.2, 0.6)), w = (2, 1), b = 0"), "one_layer")

# %% [markdown]
# *Look at:* points on the two sides of the line $w^\top z + b = 0$ (here $2 z_1 + z_2 = 0$,
# through the origin) are pushed apart along $\hat u$ — the layer uses a corrected $\hat u$
# instead of $u$ to stay invertible (section 3 explains it; both are printed above) —
# up-right and down-left, opening a paler band of low density along that line; far from it the
# layer is nearly a plain shift by $\pm \hat u$.
#
# ## 2. The log-determinant, in $O(D)$
#
# The Jacobian is the identity plus a rank-one matrix,
#
# $$ \frac{\partial x}{\partial z} = I + u\, \psi(z)^\top, \qquad
#    \psi(z) = (1 - \tanh^2 a)\, w, $$
#
# and the **matrix determinant lemma** $\det(I + u\psi^\top) = 1 + \psi^\top u$ gives
#
# $$ \log\left|\det \frac{\partial x}{\partial z}\right| = \log\left|1 + (1 - \tanh^2 a)\,
#    w^\top u\right|, $$
#
# a dot product instead of an $O(D^3)$ determinant. `check_transform` compares it with
# `slogdet` of a finite-difference Jacobian (the `log_det` rows), and checks every gradient in
# both directions and the numerical inverse:

# %%
result = check_transform(layer)
assert result.passed

# %% [markdown]
# ## 3. Invertibility, and $\hat u$
#
# Project the map on $w$: with $c = w^\top u$,
# $w^\top x + b = a + c \tanh(a)$. The layer is invertible exactly when this scalar function of
# $a$ is, i.e. when its slope $1 + c(1 - \tanh^2 a)$ never changes sign: $c \ge -1$. Below that
# the map folds space onto itself and the determinant crosses zero.

# %%
a = np.linspace(-4, 4, 400)
fig = Figure(figsize=(10, 3.4), layout="constrained")
ax0, ax1 = fig.subplots(1, 2)
for c in (-2.5, -1.0, 0.0, 2.0):
    ax0.plot(a, a + c * np.tanh(a), label=f"c = w.u = {c:g}")
ax0.set(xlabel="a = w.z + b", ylabel="w.x + b = a + c tanh(a)",
        title="invertible iff monotone, iff c >= -1")
ax0.legend(fontsize=8)
s = np.linspace(-6, 6, 400)
ax1.plot(s, s, color="0.6", ls="--", label="w.u (unconstrained)")
ax1.plot(s, -1 + np.logaddexp(0, s), label="w.u_hat = m(w.u) = -1 + log(1 + e^{w.u})")
ax1.axhline(-1, color="tab:red", lw=0.8, ls=":")
ax1.set(xlabel="w.u", ylabel="w.u_hat", title="the reparameterization keeps w.u_hat > -1")
ax1.legend(fontsize=8)
show(fig, "invertibility")

# %% [markdown]
# *Look at:* on the left, the blue curve ($c = -2.5$) goes down and up again — two values of
# $a$ give the same output, so no inverse; on the right, $m$ never reaches the red line at $-1$.
#
# Rezende & Mohamed (2015, appendix A.1) replace $u$ by
#
# $$ \hat u = u + \big(m(w^\top u) - w^\top u\big)\frac{w}{\|w\|^2}, \qquad
#    m(s) = -1 + \log(1 + e^{s}), $$
#
# which changes only the component of $u$ along $w$ so that $w^\top \hat u = m(w^\top u) > -1$
# for **any** $u, w$: the optimizer can go anywhere and the layer stays invertible. nfscratch's
# `Planar` does this by default (`constrain=True`); without it, a bad $u$ is refused:

# %%
unsafe = Planar(2, rng=0, constrain=False)
unsafe.params["u"][:] = [-1.5, -0.5]
unsafe.params["w"][:] = [2.0, 1.0]            # w.u = -3.5 < -1
try:
    unsafe.forward(np.zeros((1, 2)))
except ValueError as err:
    print("ValueError:", err)

# %% [markdown]
# There is no closed-form inverse: nfscratch solves $a + c\tanh(a) = w^\top x + b$ for $a$
# with a safeguarded Newton iteration (monotone, so the root is unique and bracketed), then
# $z = x - \hat u \tanh(a)$. The round-trip row of the table above shows it is exact to
# ~$10^{-15}$.
#
# ## 4. The backward pass
#
# A loss downstream depends on both outputs, so backward receives $dx = \partial L/\partial x$
# (N, D) **and** $d\ell = \partial L / \partial \log|\det|$ (N,). Draw the graph of one sample:
# $z \to a \to h \to x$ and $h \to q \to \log|q|$, with $h = \tanh a$ and
# $q = 1 + c(1 - h^2)$; $\hat u$ enters $x$ and $c = w^\top \hat u$; $w$ enters $a$ and $c$.
# The chain rule sums, for every input, over all its paths to $L$: $h$ collects a term from $x$
# and one from $q$ ($\partial \log|q| / \partial h = -2hc/q$); $c$ only reaches $L$ through
# $q$; and $w$, $\hat u$, $b$ are shared by all $N$ samples, so their gradients sum over $n$.
#
# **Try it first: exercise 2** asks for this backward pass (with $u$ used as is, no $\hat u$).
# Derive it from the graph on paper, write `planar_backward` in `ex2_planar_backward.py`, and
# check it with `nfscratch exercises check ex2_planar_backward.py`;
# `nfscratch exercises hint ex2_planar_backward.py` gives hints one level at a time. Then
# compare with the result:
#
# $$ dh = dx \cdot \hat u - d\ell\,\frac{2hc}{q}, \qquad da = dh\,(1 - h^2), \qquad
#    dz = dx + da\, w, $$
#
# $$ dw = \textstyle\sum_n da_n z_n + dc\,\hat u, \quad db = \sum_n da_n, \quad
#    d\hat u = \sum_n h_n dx_n + dc\, w, \quad dc = \sum_n d\ell_n\,\frac{1 - h_n^2}{q_n}, $$
#
# and finally $d\hat u$ and the $c$ terms flow back through $u \mapsto \hat u$ into $u$ and
# $w$. The full version, reparameterization included, is `planar_backward` in
# `nfscratch/transforms/planar.py`; `check_transform` above checked it in both directions.
#
# ## 5. Variational inference: reverse KL against $e^{-U}$
#
# We know a target only up to its normalizer, $p(x) = e^{-U(x)}/Z$. Sampling $z_0 \sim
# \mathcal N(0, I)$ and pushing it through the flow gives $x$ and, for free,
# $\log q(x) = \log p_0(z_0) - \sum_k \log|\det J_k|$. So
#
# $$ \mathrm{KL}(q\,\|\,p) = \mathbb E_{q}\big[\log q(x) + U(x)\big] + \log Z \;\ge 0, $$
#
# and minimizing the expectation (the *loss*) minimizes the KL; $\log Z$ is a constant. nfscratch
# knows $\log Z$ of each $U_i$ by quadrature, so we can report a **true KL in nats**, where 0
# means a perfect fit. (The energies carry a wall outside $[-4, 4]^2$; see the README.)
#
# Reverse KL is *mode-seeking*: $q$ pays dearly for mass where $p$ has none and little for
# missing mass where $p$ has some, so a flow can settle on one mode of a two-mode target and
# never find the other — at a KL of about $\ln 2 \approx 0.69$ nats when the two modes weigh
# the same. Whether it does depends on where it starts. nfscratch's planar layers start as the
# identity, so $q$ starts as the base Gaussian; the two lobes of $U_1$ lie on either side of it
# and a fresh flow usually reaches both. The failure needs a mode far from where the base puts
# its mass: below, two Gaussians of equal weight (std 0.5) at $(1, 1)$ and $(-4, -3)$, trained
# from several seeds.
#
# The remedy used by Rezende & Mohamed is **annealing**: train against $\beta U$ with $\beta$
# rising from $0.01$ to $1$, so that early on the target is nearly flat and $q$ spreads out
# first (`fit(..., anneal=steps)`). The runs below count, over seeds, how often the far mode
# is dropped with and without it. (Tutorial 04b puts maximum likelihood beside them.)

# %%
def kl_nats(flow, energy, n, seed=123, log_z=None):
    """Monte-Carlo KL(q || p) in nats and its standard error, with fresh samples."""
    x, log_q = flow.sample_and_log_prob(n, rng=seed)
    terms = log_q + energy.energy(x) + (energy.log_normalizer() if log_z is None else log_z)
    return float(terms.mean()), float(terms.std() / np.sqrt(n))


MEANS = np.array([[1.0, 1.0], [-4.0, -3.0]])
two_modes, _ = datasets.gaussian_mixture(MEANS, 0.5)     # normalized: log Z = 0
dropped = {"no annealing": 0, "annealing": 0}
seeds = range(2 if QUICK else 6)
for seed in seeds:
    for label in dropped:
        fl = models.planar_flow(2, 16, rng=seed)
        fit(fl, target=two_modes, steps=STEPS, lr=1e-2, rng=seed,
            anneal=ANNEAL if label == "annealing" else None)
        x = fl.sample(5000, rng=seed)
        far = np.mean(np.sum((x - MEANS[1]) ** 2, 1) < np.sum((x - MEANS[0]) ** 2, 1))
        kl, _ = kl_nats(fl, two_modes, N_KL, log_z=0.0)
        dropped[label] += far < 0.05
        print(f"seed {seed}, {label:13s}: share of samples at the far mode {far:.2f} "
              f"(target 0.50), KL = {kl:.3f} nats")
for label, count in dropped.items():
    print(f"{label}: far mode dropped in {count} of {len(seeds)} seeds")

# %% [markdown]
# *Read:* a dropped mode shows as a far-mode share near 0 and a KL near $\ln 2$; the last two
# lines count them. Now $U_1$, with and without annealing:

# %%
U1 = datasets.energy("U1")
flow_plain = models.planar_flow(2, K, rng=0)
hist_plain = fit(flow_plain, target=U1, steps=STEPS, batch_size=256, lr=1e-2, rng=1)
flow_anneal = models.planar_flow(2, K, rng=0)
hist_anneal = fit(flow_anneal, target=U1, steps=STEPS, batch_size=256, lr=1e-2, anneal=ANNEAL,
                  rng=1)
for label, fl in (("no annealing", flow_plain), ("annealing", flow_anneal)):
    kl, se = kl_nats(fl, U1, N_KL)
    print(f"U1, {label:13s}: KL = {kl:.3f} ± {se:.3f} nats   (ln 2 = {np.log(2):.3f})")

# %% [markdown]
# The film strip of the annealed flow: the base Gaussian on the left, then the density after
# each group of layers. Points are coloured by their angle in the base, so you can follow
# where each part of the Gaussian went.

# %%
show(film_strip(flow_anneal, layers=list(np.linspace(0, K, 5).astype(int)), n_samples=800,
                title=f"{K} planar layers fitted to U1 (annealed)"), "film_strip_U1")

# %% [markdown]
# *Look at:* the colours: the first group of layers already splits the Gaussian in two (warm
# angles to the left mode, cool ones to the right), and the later groups bend each half into a
# crescent. The mass printed in each panel's corner stays ~1: the density is exact at every stage.
#
# Now all four targets, with annealing:

# %%
names = ["U1", "U2", "U3", "U4"]
flows, kls = {"U1": flow_anneal}, {}
for name in names[1:]:
    flows[name] = models.planar_flow(2, K, rng=0)
    fit(flows[name], target=datasets.energy(name), steps=STEPS, batch_size=256, lr=1e-2,
        anneal=ANNEAL, rng=1)
print(f"{'target':6s}  {'log Z':>6s}  {'KL(q||p) nats':>14s}")
for name in names:
    kls[name] = kl_nats(flows[name], datasets.energy(name), N_KL)
    print(f"{name:6s}  {datasets.energy(name).log_normalizer():6.3f}  "
          f"{kls[name][0]:8.3f} ± {kls[name][1]:.3f}")

# %%
n_grid = 100 if QUICK else 200
g = np.linspace(-4, 4, n_grid)
G1, G2 = np.meshgrid(g, g)
pts = np.stack([G1.ravel(), G2.ravel()], axis=1)
fig = Figure(figsize=(12, 6.2), layout="constrained")
axes = fig.subplots(2, 4, sharex=True, sharey=True)
for j, name in enumerate(names):
    U = datasets.energy(name)
    p = np.exp(-U.energy(pts) - U.log_normalizer()).reshape(n_grid, n_grid)
    q = np.exp(flows[name].log_prob(pts)).reshape(n_grid, n_grid)
    vmax = max(p.max(), q.max())                       # one colour scale per column
    axes[0, j].imshow(p, origin="lower", extent=(-4, 4, -4, 4), cmap="viridis", vmin=0, vmax=vmax)
    axes[1, j].imshow(q, origin="lower", extent=(-4, 4, -4, 4), cmap="viridis", vmin=0, vmax=vmax)
    axes[0, j].set_title(f"target {name}: exp(-U)/Z")
    axes[1, j].set_title(f"planar flow, KL = {kls[name][0]:.2f} nats")
show(fig, "U1_to_U4")

# %% [markdown]
# *Look at:* each column shares one colour scale; the model (bottom) puts its mass where the
# target (top) does, and the KL in each title says how far it still is. $U_4$, with its sharp
# kink, is the hardest for planar layers — its KL is the largest.
#
# ## What to take away
#
# - A planar layer is cheap — $O(D)$ forward and log-det — but each one bends space along one
#   direction only; it takes many of them to build a complicated shape, and there is no
#   closed-form inverse (so density *evaluation* of new points is slow: a root-find per layer).
# - That is why planar flows are used for variational inference, where we only sample, and
#   coupling flows (tutorial 04) for density estimation.
# - Reverse KL with a known $\log Z$ is an absolute yardstick: 0 nats is perfect, $\ln 2$ is
#   "one of two modes missing".
#
# References: Rezende & Mohamed, *Variational Inference with Normalizing Flows*, ICML 2015,
# arXiv:1505.05770; Papamakarios et al. 2021, arXiv:1912.02762 (Section 2.3, the two KLs).
