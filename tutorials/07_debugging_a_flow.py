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
# # 07 · Debugging a flow
#
# **Learning goals.** After this notebook you can
#
# 1. write a new transform against nfscratch's interface and catch a wrong backward pass with
#    `check_transform` before it ever trains — and read *which* gradient is wrong;
# 2. recognise the most common silent bug in a flow, a missing log-det term in the backward;
# 3. diagnose a diverging training run: read the `TrainingDiverged` message (which step, which
#    layer, what went non-finite), then the per-layer diagnostics plots and the flow doctor
#    (`nfscratch.doctor`), and fix it.
#
# Time: about 30 minutes.

# %%
import os
import tempfile
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from nfscratch import Flow, datasets, doctor
from nfscratch.gradcheck import check_transform
from nfscratch.optim import SGD
from nfscratch.plotting import layer_diagnostics, show, training_curves
from nfscratch.train import TrainingDiverged, fit
from nfscratch.transforms import AffineCoupling, Transform

QUICK = os.environ.get("NFSCRATCH_QUICK", "") not in ("", "0")


# %% [markdown]
# ## 1. A new layer with a broken backward
#
# A learned per-feature scale and shift, $x = z \odot e^{\ell} + t$ with parameters
# $\ell$ (log-scale) and $t$, has $\log|\det \partial x/\partial z| = \sum_j \ell_j$ for every
# sample. Its backward, for upstream $dx$ and $d\lambda = \partial L/\partial \log|\det|$:
#
# $$ dz = dx \odot e^{\ell}, \qquad dt = \textstyle\sum_n dx_n, \qquad
#    d\ell = \sum_n dx_n \odot z_n \odot e^{\ell} \;+\; \sum_n d\lambda_n. $$
#
# The last term is the one people forget: the log-det depends on $\ell$ too. Here is the layer
# written the forgetful way. A transform implements `_forward` / `_backward` (and the inverse
# pair) on validated arrays; the base class does the bookkeeping.

# %%
class ScaleShift(Transform):
    """x = z * exp(log_scale) + shift -- with a bug planted in the backward pass."""

    def __init__(self, dim, rng=None, forget_log_det=True):
        super().__init__(dim)
        rng = np.random.default_rng(rng)
        self.params = {"log_scale": 0.3 * rng.standard_normal(dim),
                       "shift": 0.3 * rng.standard_normal(dim)}
        self.forget_log_det = forget_log_det
        self.zero_grads()

    def _forward(self, z):                                   # z (N, D)
        scale = np.exp(self.params["log_scale"])             # (D,)
        log_det = np.full(z.shape[0], self.params["log_scale"].sum())      # (N,)
        return z * scale + self.params["shift"], log_det, {"n": z.shape[0], "z": z, "scale": scale}

    def _backward(self, dx, dlog_det, cache):
        z, scale = cache["z"], cache["scale"]
        d_log_scale = (dx * z * scale).sum(axis=0)           # through x ...
        if not self.forget_log_det:
            d_log_scale = d_log_scale + dlog_det.sum()       # ... and through log_det
        return dx * scale, {"log_scale": d_log_scale, "shift": dx.sum(axis=0)}


broken = check_transform(ScaleShift(3, rng=0), directions="forward")

# %% [markdown]
# Read the table row by row: `shapes` and `log_det` PASS (the forward pass is right: the
# log-det even agrees with `slogdet`), `dz` and `dshift` PASS, and **only `dlog_scale` FAILs**
# — the bug is in that one gradient, and the `worst at` detail gives the entry. The forward
# pass working perfectly is exactly why this bug is dangerous: sampling works and training
# still lowers the loss, just not the right one (here: the flow would never learn to scale).

# %%
fixed = check_transform(ScaleShift(3, rng=0, forget_log_det=False), directions="forward")
assert not broken.passed and fixed.passed

# %% [markdown]
# The exercise grader goes one step further and *names* the mistake, by comparing a wrong
# gradient with the reference computed under typical mistakes (here: the gradient one gets with
# $d\lambda = 0$). The same bug planted in the planar exercise:

# %%
from nfscratch.exercises import check_file  # noqa: E402
from nfscratch.exercises.markers import default_source_dir  # noqa: E402

source = default_source_dir()
if source is not None:                     # only in a source checkout of nfscratch
    text = (source / "ex2_planar_backward.py").read_text()
    planted = text.replace("dq = dlog_det / q", "dq = 0.0 * dlog_det / q   # the bug")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ex2_planar_backward.py"
        path.write_text(planted)
        report = check_file(path)
    assert report.exit_code == 1

# %% [markdown]
# ## 2. A training run that diverges
#
# A RealNVP of six coupling layers on two moons. nfscratch bounds every coupling's log-scale
# softly, $s = s_{max}\tanh(\mathrm{raw}/s_{max})$ with $s_{max} = 2$; in layer 3 somebody
# "removed" the bound ($s_{max} = 10^4$, so $s \approx \mathrm{raw}$). Trained with plain SGD
# and momentum, whose steps grow with the gradient.
#
# `fit` keeps a copy of the parameters before every step; when a loss or gradient comes out
# non-finite it restores that copy, replays the step layer by layer to find the first
# non-finite value, and raises `TrainingDiverged`.

# %%
moons = datasets.two_moons(8192, rng=0, noise=0.05)


def make_flow(unbounded_layer=3):
    return Flow([AffineCoupling(2, hidden=(32, 32), parity=k % 2, rng=k,
                                s_max=1e4 if k == unbounded_layer else 2.0) for k in range(6)])


flow = make_flow()
try:
    fit(flow, data=moons, steps=800, optimizer=SGD(lr=0.01, momentum=0.9), rng=1, record_every=2)
    raise AssertionError("this run was meant to diverge")
except TrainingDiverged as err:
    diverged = err
    print(err)
    print(f"\nlayer: {err.layer}, steps recorded: {len(err.history)}")

# %% [markdown]
# The message names the step, the layer (here 3, the unbounded one) and what became
# non-finite (its inverse output: $e^{-s}$ overflowed). The history up to that step is attached
# to the exception, and the parameters are the last finite ones, so we can look at how it got
# there. First the loss and the gradient norm:

# %%
h = diverged.history
fig = Figure(figsize=(10, 3.4), layout="constrained")
ax0, ax1 = fig.subplots(1, 2)
ax0.semilogy(np.arange(len(h.loss)), h.loss, lw=1)
ax0.set(xlabel="step", ylabel="NLL (nats, log scale)", title="loss")
ax1.semilogy(np.arange(len(h.grad_norm)), h.grad_norm, lw=1, color="tab:red")
ax1.set(xlabel="step", ylabel="global gradient norm", title="gradient norm")
show(fig, "diverging_curves")

# %% [markdown]
# *Look at:* the loss falls normally for a few dozen steps, then jumps up by orders of
# magnitude within a handful of steps, with the gradient norm leading the way: an exploding
# step, not a bad objective.

# %%
show(layer_diagnostics(h, flow, points=moons[:2000], direction="inverse",
                       title="per-layer diagnostics of the diverging run"), "diverging_layers")

# %%
points = moons[:2000]
ranges = []
p = points
for i in reversed(range(len(flow))):              # the inverse pass: last layer first
    p, log_det = flow[i].inverse(p)
    ranges.append((i, log_det.min(), log_det.max()))
for i, lo, hi in sorted(ranges):
    print(f"layer {i}: per-sample log-dets from {lo:9.2f} to {hi:9.2f} nats")

# %% [markdown]
# *Look at:* the row labelled **3** — the plots number layers like the message and like
# `flow[i]`, from 0. Its mean log-det (left) runs away in the last steps while every other row
# stays near 0; on the right its per-sample log-dets spread far beyond what a bounded layer can
# reach (at most $s_{max} = 2$ per transformed feature, so $\pm 2$ nats here). The printed
# ranges above say how far, for the parameters `fit` restored. In the middle, the gradient
# norms of row 3 and the rows after it explode together: in the normalizing direction those
# layers run *before* layer 3, so their gradients pass through its Jacobian. A layer whose own
# numbers run away while its neighbours stay calm is the one to look at.
#
# ### Ask the doctor
#
# `nfscratch.doctor(flow, x)` examines every layer on its own, in both directions, on the
# points that really reach it: where non-finite values first appear, whether `inverse` undoes
# `forward` (the round trip, relative to the size of the point), the log-det against `slogdet`
# of a finite-difference Jacobian, the Jacobian's conditioning, the invertibility margins of
# planar and radial layers, and for 2-D flows whether the density still integrates to 1. It
# ends with plain sentences. (From the command line: `nfscratch doctor flow.npz --data
# two_moons`.)

# %%
report = doctor(flow, points, rng=0)
print("layers with a problem:", report.problem_layers())

# %% [markdown]
# *Read:* the layers listed on the last line are the ones the doctor found a problem in, each
# with its sentences above. For the unbounded layer the telling one is the round trip: with
# scales this large, $e^{s}$ and $e^{-s}$ no longer undo each other in floating point, so the
# layer's inverse loses the points it maps — the density of the whole flow is no longer
# trustworthy, which the mass line says too.
#
# ## 3. The fix
#
# Put the bound back — the reason nfscratch has one — and, for good measure, clip the global
# gradient norm (`clip=...`), which caps the size of any single step. (Adam, whose step does
# not grow with the gradient, would also have survived.)

# %%
flow = make_flow(unbounded_layer=None)
steps = 300 if QUICK else 2000
history = fit(flow, data=moons, steps=steps, optimizer=SGD(lr=0.01, momentum=0.9), clip=10.0,
              rng=1)
nll = -flow.log_prob(datasets.two_moons(5000, rng=9, noise=0.05)).mean()
print(f"bounded scales + clip=10: {len(history)} steps, no divergence, test NLL = {nll:.3f} nats")
show(training_curves(history, title="the same run with the bound restored and clipping"),
     "fixed_curves")

# %% [markdown]
# *Look at:* the loss now falls steadily, and the gradient norm (right) stays within a narrow
# band.
#
# ## A checklist for a flow that misbehaves
#
# 1. `nfscratch gradcheck` (or `check_transform` on your own layer): every gradient, both
#    directions, log-det against `slogdet`, the round trip. Fix any FAIL before anything else.
# 2. Does the density integrate to ~1 on a grid (the film strip prints the mass of every
#    panel)? If not, a log-det is wrong even if the gradients agree with it.
# 3. Is the loss above its floor (data entropy for NLL, 0 for a KL in nats)? Below it means a
#    bug, not a good model.
# 4. On divergence: read the layer in the message, then the per-layer plots and
#    `nfscratch.doctor(flow, x)` (which layer loses its inverse, its log-det, its finiteness;
#    a negative NLL alone is fine: densities can exceed 1); lower the learning
#    rate, clip gradients, bound scales (`s_max` in coupling layers), or use Adam.
#
# References: CS231n, *Neural networks part 3* (gradient checks, babysitting the learning
# process), https://cs231n.github.io/neural-networks-3/; Rezende & Mohamed 2015,
# arXiv:1505.05770.
