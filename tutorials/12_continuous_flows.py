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
# # 12 · Continuous flows and flow matching
#
# **Learning goals.** After this notebook you can
#
# 1. explain how a stack of small residual layers becomes an ODE, and why its log-det becomes
#    the integral of a *trace*, $\frac{d}{dt}\log p_t(x_t) = -\operatorname{tr}\frac{\partial v}{\partial x}$;
# 2. compute that trace exactly from the hand-written Jacobian of the velocity network (and
#    estimate it with Hutchinson's trick), and check both;
# 3. train the velocity field by conditional flow matching — a plain regression, no ODE solve —
#    and say what minibatch OT pairing changes;
# 4. sample and evaluate exact likelihoods with RK4 (and adaptive Dormand–Prince), and count
#    what each costs in function evaluations;
# 5. judge the model against the data's entropy, beside the discrete flows of tutorials 4 and 9.
#
# Time: about 40 minutes (training takes a few minutes in full mode). The code lives in
# `nfscratch/continuous.py` (read it top to bottom) and `nfscratch/kernels/ode.py`.

# %%
import math
import os
import time

import numpy as np

from nfscratch import continuous as C
from nfscratch import datasets, evaluate
from nfscratch.config import use_backend
from nfscratch.plotting import show
from nfscratch.plotting import plot_density_over_time, plot_trajectories, plot_velocity_field

QUICK = os.environ.get("NFSCRATCH_QUICK", "") not in ("", "0")

HIDDEN = (32, 32) if QUICK else (64, 64, 64)
STEPS = 150 if QUICK else 8000
N_TEST = 500 if QUICK else 20_000
GRID = 30 if QUICK else 90
rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. From discrete layers to infinitesimal ones
#
# Take a residual layer $f(x) = x + h\,v(x)$ with a small step $h$. Its Jacobian is $I + hJ$
# with $J = \partial v/\partial x$, and
#
# $$ \log\lvert\det(I + hJ)\rvert = h\,\operatorname{tr}J + O(h^2). $$
#
# Stack $K = 1/h$ such layers, each with its own $v(\cdot, t_k)$: the positions follow
# $x_{k+1} = x_k + h\,v(x_k, t_k)$ — Euler's method for the ODE $dx/dt = v(x, t)$ — and the
# log-dets add up to $\sum_k h\,\operatorname{tr}J(x_k, t_k) \to \int_0^1 \operatorname{tr}J\,dt$.
# A D×D determinant has become a sum of D diagonal entries. Let us watch the $O(h^2)$ vanish on a
# random velocity network.

# %%
cnf0 = C.CNF(2, hidden=(16, 16), n_freq=4, rng=1)
for p in cnf0.params.values():                      # a random, non-zero field
    p[...] = rng.normal(size=p.shape) * 0.5
x = rng.normal(size=(1, 2))
t = np.array([0.3])
v, J = C.velocity_jacobian(x, t, cnf0.params, cnf0.n_freq)
for h in (0.5, 0.1, 0.01, 0.001):
    exact = np.linalg.slogdet(np.eye(2) + h * J[0])[1]
    print(f"h = {h:<6} log|det(I + hJ)| = {exact: .6f}   h tr J = {h * np.trace(J[0]): .6f}   "
          f"ratio = {exact / (h * np.trace(J[0])):.4f}")

# %% [markdown]
# The ratio goes to 1 as $h \to 0$: in the limit the change of variables is the
# **instantaneous change of variables** (Chen et al. 2018),
#
# $$ \frac{dx_t}{dt} = v(x_t, t), \qquad \frac{d\log p_t(x_t)}{dt} = -\operatorname{tr}\frac{\partial v}{\partial x}(x_t, t). $$
#
# The library's direction convention carries over: `forward` integrates from $t=0$ (the
# Gaussian) to $t=1$ (data) and returns $\log|\det \partial x_1/\partial x_0| = \int_0^1
# \operatorname{tr} J\,dt$; `inverse` integrates back and returns minus that.
#
# ## 2. The trace, exactly and stochastically
#
# `velocity_jacobian` pushes derivatives *forward* through the MLP: next to each hidden layer $h$
# it carries $G = \partial h/\partial x$ (D rows), multiplies it by each weight matrix and by
# $\mathrm{silu}'$ of each pre-activation. In 2-D this costs two extra passes. Check it against
# central differences:

# %%
from nfscratch.gradcheck import numerical_jacobian  # noqa: E402

xs = rng.normal(size=(4, 2))
ts = rng.random(4)
div_exact = C.divergence(xs, ts, cnf0.params, cnf0.n_freq)[1]
div_fd = [np.trace(numerical_jacobian(
    lambda y, n=n: C.velocity_forward(y[None], ts[n:n + 1], cnf0.params, cnf0.n_freq)[0][0],
    xs[n])) for n in range(4)]
print("exact trace:        ", np.round(div_exact, 8))
print("finite differences: ", np.round(div_fd, 8))

# %% [markdown]
# For large D the exact trace costs D passes. **Hutchinson's estimator** needs one backward
# pass: for a probe $\varepsilon$ with $E[\varepsilon\varepsilon^\top] = I$ (random signs),
# $E[\varepsilon^\top J \varepsilon] = \operatorname{tr}J$, and the vector $J\varepsilon$ is what
# backpropagating $\varepsilon$ through $v$ gives (the gradient of $\varepsilon\cdot v$ with
# respect to $x$). It is unbiased but noisy:

# %%
M = 2000
probes = rng.choice([-1.0, 1.0], size=(M, 2))
est = C.divergence(np.repeat(xs[:1], M, 0), np.repeat(ts[:1], M), cnf0.params, cnf0.n_freq,
                   "hutchinson", probes)[1]
print(f"exact {div_exact[0]:.4f}; Hutchinson mean of {M} probes {est.mean():.4f} "
      f"± {est.std() / math.sqrt(M):.4f}; one probe's spread (std) {est.std():.3f}")

# %% [markdown]
# ## 3. Flow matching: train the field by regression
#
# Maximum likelihood would solve (and differentiate through) the ODE at every step. Flow
# matching does not: draw $z \sim N(0, I)$, a data point $x$ and $t \sim U(0, 1)$, put
# $x_t = (1-t)z + t x$ on the straight line between them, and regress $v(x_t, t)$ on the line's
# velocity $x - z$:
#
# $$ L(\theta) = E\,\lVert v_\theta(x_t, t) - (x - z)\rVert^2, \qquad
#    \frac{\partial L}{\partial v_n} = \tfrac{2}{N}\,(v_n - (x_n - z_n)). $$
#
# The best field is the average of the line velocities through each point, $E[x - z \mid x_t]$,
# and its flow carries the Gaussian exactly onto the data. Lines from independent pairs cross,
# so that average turns and the paths curve. **Minibatch OT pairing** re-pairs each batch so that
# the lines are short; here, cheaply, by sorting both sets along a random direction (the exact
# 1-D optimal transport of that projection).
#
# The gradient of `cfm_loss` is hand-written like everything else; `tests/test_continuous.py`
# checks it by finite differences. Train on two moons, with and without pairing:

# %%
def moons(n, r):
    return datasets.sample("two_moons", n, r, noise=0.1)


models, times = {}, {}
for ot in (False, True):
    cnf = C.CNF(2, hidden=HIDDEN, n_freq=4, n_steps=20, rng=0)
    c0 = time.process_time()
    hist = C.fit_cfm(cnf, moons, STEPS, batch_size=512, lr=2e-3, ot=ot, rng=1)
    times[ot] = time.process_time() - c0
    models[ot] = cnf
    print(f"OT pairing {ot!s:5}: {STEPS} steps in {times[ot]:.1f} CPU s, "
          f"loss (last 100 steps) {np.mean(hist[-100:]):.3f}")

# %% [markdown]
# The loss does not go to 0 (the regression target is noisy: many lines pass through each
# point); with OT pairing it is lower because the pairs are closer.
#
# ## 4. Pictures: the field, the paths, the density in time

# %%
cnf = models[False]
data = moons(1000, rng)
show(plot_velocity_field(cnf, (0.0, 0.33, 0.66, 1.0), limits=3.0,
                         n_arrows=11 if QUICK else 17, data=data), "velocity_field")

# %% [markdown]
# Early on (t = 0) the arrows leave the Gaussian's centre towards the moons; late (t = 1) they
# point along the moons, the points being almost in place.

# %%
fig = plot_trajectories([models[False], models[True]], ["independent pairs", "1-D OT pairs"],
                        n=200 if QUICK else 400, n_times=11 if QUICK else 21)
show(fig, "trajectories")
print("mean excess length (path / chord - 1):", np.round(fig.excess_length, 4))

# %% [markdown]
# Look at how much the coloured paths bend: the excess length above is 0 for straight lines.
# Pairing along a random direction shortens the pairs' lines, so the learned paths bend less;
# it is not the full OT plan, so they are not straight either.

# %%
fig = plot_density_over_time(cnf, (0.0, 0.25, 0.5, 0.75, 1.0), limits=3.0, grid_size=GRID)
show(fig, "density_over_time")

# %% [markdown]
# The continuous film strip: the exact density $p_t$ on the same kind of grid as the discrete
# strips of tutorial 4, each panel's mass on the grid in its corner (~1). Every pixel needs
# one ODE solve backwards from $t$ to 0 with the trace riding along. For a movie of it:
# `nfscratch.plotting.animate_density(cnf, "cnf.gif")`.
#
# ## 5. Likelihood against the floor, and what it costs
#
# $\log p(x) = \log N(z; 0, I) + \int_1^0 \operatorname{tr} J\,dt$ with $z$ the solution at $t=0$.
# `evaluate.nll` only needs `log_prob`, so it takes the CNF as it takes a `Flow`:

# %%
for ot, m in models.items():
    res = evaluate.nll(m, "two_moons", n=N_TEST, rng=5, noise=0.1)
    print(f"OT pairing {ot!s:5}: {res}")

# %% [markdown]
# Straighter is not the same as closer to the data: in `benchmarks/README.md` (two moons,
# 3 × 64, 5000 steps) the 1-D OT pairing cut the paths' excess length from 0.46 to 0.11 but
# doubled the gap to the entropy (0.094 → 0.198 nats). Straight paths pay off when sampling
# with very few solver steps; for the density, independent pairs did better here.
#
# How many RK4 steps are enough? Compare the log-likelihoods with a reference of many steps,
# and count function evaluations (NFE, 4 per RK4 step):

# %%
x_test = moons(400 if QUICK else 2000, np.random.default_rng(9))
cnf.n_steps = 100
ref = cnf.log_prob(x_test)
for n_steps in (2, 5, 10, 20, 50):
    cnf.n_steps = n_steps
    c0 = time.process_time()
    lp = cnf.log_prob(x_test)
    dt = time.process_time() - c0
    print(f"RK4 {n_steps:3d} steps, NFE {4 * n_steps:4d}: mean |log q - ref| = "
          f"{np.mean(np.abs(lp - ref)):.1e}  ({dt:.2f} CPU s for {len(x_test)} points)")
cnf.n_steps = 20
cnf.solver = "dopri5"
for tol in (1e-3, 1e-5):
    cnf.rtol = cnf.atol = tol
    lp = cnf.log_prob(x_test)
    print(f"Dormand-Prince rtol = atol = {tol:g}: NFE {cnf.nfe:4d}, mean |log q - ref| = "
          f"{np.mean(np.abs(lp - ref)):.1e}")
cnf.solver = "rk4"

# %% [markdown]
# Compare the error with the standard error of the NLL above: once the integration error is
# ten times smaller, more steps buy nothing. The adaptive solver chooses its own NFE for a
# tolerance; on these nearly straight paths fixed-step RK4 with a few tens of evaluations is as
# accurate and simpler.
#
# The compiled kernel (`kernels/ode.py`) runs the same RK4 with the MLP fused for a few samples
# at a time in cache; the NumPy twin (`continuous.rk4_integrate`) is the readable one:

# %%
z = np.random.default_rng(3).standard_normal((512 if QUICK else 4096, 2))
for backend in ("numpy", "numba"):
    with use_backend(backend):
        c0 = time.process_time()
        xs_b, ld_b = cnf.forward(z)
        print(f"{backend:5}: sampling {len(z)} points with the log-det, {cnf.nfe} NFE: "
              f"{time.process_time() - c0:.2f} CPU s")

# %% [markdown]
# **Hutchinson on the whole likelihood.** With one random-sign probe per point (fixed along the
# path), the log-likelihood is unbiased but each point's value is noisy:

# %%
cnf.divergence = "hutchinson"
lp_h = cnf.log_prob(x_test[:200], rng=0)
cnf.divergence = "exact"
lp_e = cnf.log_prob(x_test[:200])
print(f"mean log q: exact {lp_e.mean():.4f}, Hutchinson {lp_h.mean():.4f}; per-point error "
      f"std {np.std(lp_h - lp_e):.3f} nats")

# %% [markdown]
# ## 6. Beside the discrete flows
#
# Recipes committed in `benchmarks/README.md` (fresh batches every step, one core, test NLL on
# fresh points minus the true entropy):
#
# | model | data | training | gap (nats) |
# |---|---|---|---|
# | RealNVP 8 × (64, 64) | two moons (0.1) | 10k steps, ~125 s | 0.020 |
# | spline coupling 8 × 16 bins | two moons (0.1) | 6000 steps, 171 CPU s | 0.010 |
# | spline coupling 8 × 16 bins | eight Gaussians | 6000 steps, 163 CPU s | 0.003 |
# | CNF 3 × 64 SiLU, flow matching, RK4 20 steps | two moons (0.1) | 40k steps, 254 CPU s | 0.018 |
# | CNF 3 × 64 SiLU, flow matching, RK4 20 steps | eight Gaussians | 40k steps, 148 CPU s | 0.008 |
#
# (The CNF rows: `benchmarks/flow_matching.py`, its default recipe, paired gaps on 20k fresh
# points, standard errors 0.0012 and 0.0008; with 20k steps the gaps were 0.033 and 0.014.
# Details in the flow-matching sections of `benchmarks/README.md`.)
#
# What each costs: a discrete flow samples and evaluates in one pass of its layers (~8 MLP
# evaluations); the CNF trains fast (one MLP pass and backward a step, no solver), but every
# sample costs 4 × (RK4 steps) field evaluations, and every likelihood three times that with
# the exact trace in 2-D (the Jacobian rows travel with the activations).
#
# **Try it.** (1) Train with `ot=True` and fewer RK4 steps: how few steps keep the NLL within
# one standard error? (2) Replace the exact trace by Hutchinson in `log_prob` for a 10-D
# Gaussian mixture and measure the error against the exact one as D grows.
#
# **References.** Chen et al., *Neural ODEs*, arXiv:1806.07366 · Grathwohl et al., *FFJORD*,
# arXiv:1810.01367 · Lipman et al., *Flow Matching for Generative Modeling*, arXiv:2210.02747 ·
# Liu et al., *Rectified Flow*, arXiv:2209.03003 · Albergo & Vanden-Eijnden, *Stochastic
# Interpolants*, arXiv:2209.15571 · Tong et al., *minibatch OT flow matching*, arXiv:2302.00482.
