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
# # 11 · Conditional flows: one flow, a density for every condition
#
# **Learning goals.** After this notebook you can
#
# 1. say what a conditional density $p(x \mid y)$ is and what a conditional flow computes;
# 2. point at the one place the condition $y$ enters a flow -- the conditioner's input -- and
#    explain why the log-det contains no derivative with respect to $y$;
# 3. get the gradient with respect to $y$ too (`dcontext`), and check it by finite differences;
# 4. see why a conditional MADE gives the context degree 0, and why it needs hidden units of
#    degree 0 as well;
# 5. train a conditional flow on two moons (conditioned on the moon) and judge it against the
#    exact conditional entropy $H(X \mid Y)$;
# 6. train a class-conditional flow on the 8×8 digits, draw a row of samples per digit, and
#    check with a logistic-regression classifier that the samples are of the class asked for.
#
# Time: about 30 minutes (the two training runs take about a minute each in full mode).
# Prerequisites: tutorial 4 (coupling layers), tutorial 8 (MADE) for section 4.

# %%
import math
import os

import numpy as np
from matplotlib.figure import Figure

from nfscratch import datasets, gradcheck, models
from nfscratch.datasets.images import class_agreement, digit_classifier
from nfscratch.gradcheck import numerical_jacobian
from nfscratch.plotting import show
from nfscratch.train import fit
from nfscratch.transforms import AffineCoupling
from nfscratch.transforms.coupling import affine_coupling_backward, affine_coupling_forward
from nfscratch.transforms.made import MADE

QUICK = os.environ.get("NFSCRATCH_QUICK", "") not in ("", "0")

TOY_STEPS = 60 if QUICK else 3000
DIGIT_STEPS = 60 if QUICK else 1500
N_TEST = 2_000 if QUICK else 100_000
GRID = 60 if QUICK else 160
rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. What $p(x \mid y)$ means
#
# An unconditional flow learns one density $p(x)$. Often the data come with a second quantity
# $y$ that we know when we want a sample or a likelihood: the class of an image, the moon a
# point was drawn from, a physical parameter of a simulation. A **conditional density**
# $p(x \mid y)$ is a density over $x$ for *each* value of $y$: for every fixed $y$ it is
# non-negative and integrates to one over $x$. Nothing is said about the distribution of $y$
# itself -- it is given, not modelled.
#
# A conditional flow is a family of invertible maps $x = f(z; y)$, one per $y$, sharing their
# parameters. For each fixed $y$ the change of variables holds exactly as before:
#
# $$\log q(x \mid y) = \log p_0\big(f^{-1}(x; y)\big)
#   + \log\left|\det \frac{\partial f^{-1}(x; y)}{\partial x}\right|.$$
#
# Sampling $x \sim q(\cdot \mid y)$ is: draw $z \sim p_0$, push it through $f(\cdot\,; y)$.
# Training by maximum likelihood on pairs $(x_n, y_n)$ minimizes
# $-\frac1N \sum_n \log q(x_n \mid y_n)$, which estimates
# $E_{p(y)} \mathrm{KL}\big(p(\cdot \mid y) \,\|\, q(\cdot \mid y)\big) + H(X \mid Y)$: its
# floor is the **conditional entropy** $H(X \mid Y)$, lower than $H(X)$ by the mutual
# information $I(X; Y)$ -- the nats the condition tells us about $x$.

# %% [markdown]
# ## 2. Where the context enters: the conditioner's input
#
# A coupling layer (tutorial 4) already has a network that *reads* something: the conditioner
# reads the passed-through half $z_a$ and outputs the scale and shift of the other half. A
# conditional coupling layer feeds it $[z_a \mid y]$ instead:
#
# $$x_a = z_a, \qquad x_b = z_b \odot e^{s(z_a,\, y)} + t(z_a,\, y).$$
#
# That is the whole change. In nfscratch a layer becomes conditional when built with
# `context_dim=C`; every pass then takes `context` of shape $(N, C)$.
#
# **Why the log-det has no $\partial/\partial y$.** The log-det is that of
# $\partial x / \partial z$ -- the Jacobian of the map for a *fixed* $y$. The context is an
# input of the map, like a parameter, not one of the variables being transformed: the density
# $q(x \mid y)$ is a density over $x$ only, so only the volume change in $x$-space counts. The
# Jacobian keeps its block-triangular form, and
# $\log|\det \partial x/\partial z| = \sum_j s_j(z_a, y)$, whatever $s$ does with $y$.
#
# The check: the same $z$ under two contexts gives two different points, and for each the
# layer's log-det equals `slogdet` of a finite-difference Jacobian taken at fixed $y$.

# %%
layer = AffineCoupling(2, hidden=[16], rng=0, zero_init=False, context_dim=1)
z = rng.normal(size=(3, 2))
for y_value in (-1.0, 1.0):
    y = np.full((3, 1), y_value)
    x, log_det = layer.forward(z, y)
    J = numerical_jacobian(lambda v: layer.forward(v[None, :], y[:1])[0][0], z[0].copy())
    print(f"y = {y_value:+.0f}: x[0] = {np.round(x[0], 4)}, log_det[0] = {log_det[0]:.6f}, "
          f"slogdet of dx/dz = {np.linalg.slogdet(J)[1]:.6f}")
z_back, _ = layer.inverse(x, y)
print(f"round trip with the context: max |z - f^-1(f(z; y); y)| = {np.abs(z_back - z).max():.1e}")

# %% [markdown]
# *What to look at:* the context moves the point; the log-det matches `slogdet` of the
# Jacobian in $z$ for each context separately. Inverting needs the same $y$ -- with another
# one you would land on another $z$.
#
# Forgetting the context, or giving one to a layer that has no conditioner, is an error that
# says so (rather than a silently unconditional model):

# %%
for call in (lambda: layer.forward(z),
             lambda: layer.forward(z, np.ones((3, 2))),
             lambda: models.realnvp(2, n_layers=2, rng=0).log_prob(z, np.ones((3, 1)))):
    try:
        call()
    except ValueError as exc:
        print(str(exc)[:150])

# %% [markdown]
# ## 3. The gradient with respect to the context
#
# Because $y$ enters the conditioner exactly as $z_a$ does, backpropagation through the
# conditioner already produces its gradient: the MLP's backward pass returns the gradient for
# its whole input $[z_a \mid y]$, and we split it in two. The pure functions return
# $\partial L/\partial y$ inside their `grads` dict under the key `"context"`; a layer keeps
# it in `layer.dcontext` and a `Flow` sums it over its conditional layers into
# `flow.dcontext` -- while `backward(dx, dlog_det)` still returns `dz`, as for every other
# transform. With it, $y$ can itself be learned (an embedding per class) or come out of an
# encoder network that is trained through the flow.
#
# `check_gradients` checks the parameters, the input and the context in one table:

# %%
mask = np.array([1, 0])
inputs = {"z": rng.normal(size=(5, 2)), "context": rng.normal(size=(5, 1)),
          **{k: v.copy() for k, v in layer.params.items()}}
result = gradcheck.check_gradients(
    lambda z, context, **p: affine_coupling_forward(z, mask, p, "tanh", 2.0, context),
    affine_coupling_backward, inputs, name="conditional affine coupling")

# %% [markdown]
# ## 4. MADE with a context: degree 0
#
# In MADE (tutorial 8) every input and hidden unit has a degree, and output $i$ may only see
# inputs of smaller degree. The context is given, not generated, so it may be seen by every
# output: its inputs get **degree 0**, below every feature. The masks keep a weight from a
# context input to every hidden unit (degree $\ge 0$), so context information flows everywhere,
# and no rule for the features changes -- the autoregressive property is kept.
#
# One more thing is needed. The first feature in the order has degree 1, and its outputs may
# only read hidden units of degree $< 1$. Without hidden units of degree 0 it reads nothing: its
# scale and shift are constant biases, and $p(x_{\text{first}} \mid y)$ would ignore $y$. So a
# conditional MADE lets the hidden degrees run over $0..D-1$: degree-0 units see only the
# context, and feed every output.

# %%
net = MADE(3, [4], k=1, rng=0, context_dim=2)
print("hidden degrees:", net.degrees[1].tolist())
print("mask into the hidden layer (rows: x0, x1, x2, y0, y1):")
print(net.masks[0].astype(int))
print("mask into the outputs (rows: hidden units; columns: outputs of x0, x1, x2):")
print(net.masks[1].astype(int))

# %% [markdown]
# *What to look at:* the two context rows are all ones; the hidden unit of degree 0 sees only
# the context and is the only one the first output may read. `tests/test_conditional.py` also
# checks the property on the function itself: the finite-difference Jacobian of the outputs in
# $x$ is zero wherever the order forbids a dependence, and nonzero in $y$ everywhere.
#
# ## 5. Two moons, conditioned on the moon
#
# `datasets.two_moons_labeled` draws the two moons with the moon each point came from
# ($y = 0$ the upper, $y = 1$ the lower). The condition is a class, so we give it **one-hot**
# (`models.one_hot`): two context features, $[1, 0]$ or $[0, 1]$. The floor is exact:
# given the moon, a point is one noisy half circle, and both moons have the same entropy,
# `datasets.moon_entropy()` (by quadrature, like `datasets.entropy`).

# %%
def moon_pairs(n, rng):
    x, label = datasets.two_moons_labeled(n, rng)
    return x, models.one_hot(label, 2)


flow = models.realnvp(2, n_layers=6, hidden=(64, 64), rng=1, context_dim=2)
history = fit(flow, data=moon_pairs, steps=TOY_STEPS, batch_size=256, lr=2e-3,
              schedule="cosine", rng=0)
x_test, y_test = moon_pairs(N_TEST, np.random.default_rng(123))
nll = -flow.log_prob(x_test, y_test)
H_cond, H = datasets.moon_entropy(), datasets.entropy("two_moons")
print(f"test NLL -log q(x | y) = {nll.mean():.4f} ± {nll.std() / math.sqrt(N_TEST):.4f} nats; "
      f"floor H(X | Y) = {H_cond:.4f}; gap {nll.mean() - H_cond:.4f} nats")
print(f"(for comparison H(X) = {H:.4f}: knowing the moon is worth I(X; Y) = {H - H_cond:.4f} "
      f"nats of the log 2 = {math.log(2):.4f} it could be)")
nll_swapped = -flow.log_prob(x_test, y_test[:, ::-1].copy())
print(f"the same points with the wrong moon as condition: NLL {nll_swapped.mean():.2f} nats")

# %%
lo, hi = np.array([-1.5, -1.0]), np.array([2.5, 1.5])
g1, g2 = np.linspace(lo[0], hi[0], GRID), np.linspace(lo[1], hi[1], GRID)
grid = np.stack(np.meshgrid(g1, g2), axis=-1).reshape(-1, 2)
fig = Figure(figsize=(10, 6.4), layout="constrained")
axes = fig.subplots(2, 2)
for col, label in enumerate((0, 1)):
    context = models.one_hot(np.full(len(grid), label), 2)
    density = np.exp(flow.log_prob(grid, context)).reshape(GRID, GRID)
    ax = axes[0, col]
    ax.pcolormesh(g1, g2, density, shading="auto", cmap="viridis")
    ax.set_title(f"q(x | moon {label})")
    samples = flow.sample(2000, rng=label, context=models.one_hot(np.full(2000, label), 2))
    ax = axes[1, col]
    ax.scatter(*x_test[:4000][y_test[:4000, label] == 1].T, s=2, c="0.75", label="data")
    ax.scatter(*samples.T, s=2, c=f"C{label}", label="samples")
    ax.set_title(f"samples given moon {label}")
    ax.legend(loc="upper right", markerscale=4)
for ax in axes.ravel():
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_aspect("equal")
show(fig, "moons_per_condition")

# %% [markdown]
# *What to look at:* one set of parameters, two densities -- each condition puts (almost) all
# its mass on its own moon, and the samples drawn given a moon lie on that moon. The test NLL
# is stated against $H(X \mid Y)$, not $H(X)$: a flow that ignored $y$ could not go below
# $H(X)$, which is $I(X; Y) \approx \log 2$ higher.
#
# ## 6. Class-conditional digits
#
# The same recipe on the 8×8 digits: `models.realnvp_image(context_dim=10)` (affine couplings
# with checkerboard masks, then a logit layer), the label given one-hot. The split of issue 14:
# the first 1000 images train, the next 350 validate, the last 447 test. Every training batch
# is dequantized afresh (`transform=`), and early stopping on the validation NLL keeps the
# parameters from before the model starts to memorize.

# %%
images, labels = datasets.digits()
train, val, test = slice(0, 1000), slice(1000, 1350), slice(1350, None)
onehot = models.one_hot(labels, 10)
digit_flow = models.realnvp_image(8, 8, n_layers=6, hidden=(256,), rng=0, context_dim=10)
hist = fit(digit_flow, data=images[train], context=onehot[train],
           transform=lambda batch, rng: datasets.dequantize(batch, rng),
           validation=(images[val], onehot[val]), patience=10, steps=DIGIT_STEPS,
           batch_size=128, lr=1e-3, schedule="cosine", record_every=100 if not QUICK else 20,
           rng=0)
draws = 5
x_te = np.concatenate([datasets.dequantize(images[test], seed) for seed in range(draws)])
nll_te = -digit_flow.log_prob(x_te, np.concatenate([onehot[test]] * draws))
per_image = nll_te.reshape(draws, -1).mean(axis=0)            # (447,) averaged over the draws
bpd = datasets.bits_per_dim(float(per_image.mean()), 64)
se = per_image.std() / math.sqrt(per_image.size) / (64 * math.log(2))   # bits/dim is linear
print(f"best validation step {hist.best_step}; test bits/dim given the label {bpd:.3f} ± "
      f"{se:.3f} ({per_image.size} test images, {draws} dequantizations each)")

# %% [markdown]
# This is $-\log_2 q(x \mid y)$ per pixel, not comparable to the unconditional numbers of
# tutorial 10 (independent pixels 2.40, mixture of categoricals 2.25): the label is given.
# For the true densities the label is worth $I(X; Y) \le H(Y) \le \log_2 10$ bits per image,
# at most $\log_2 10 / 64 \approx 0.05$ bits/dim. The multi-scale model of tutorial 10 is
# conditional in the same way, `models.glow_like(..., context_dim=10)`: its factor-outs hand
# the label on to the couplings of the deeper level (its numbers are in benchmarks/README.md).
#
# A row of samples per digit: the base noise is scaled by a **temperature** $T \le 1$
# ($z \sim \mathcal N(0, T^2 I)$), which trades variety for typical-looking samples.

# %%
T = 0.8
per_class = 8
sample_labels = np.repeat(np.arange(10), per_class)
z = T * np.random.default_rng(7).normal(size=(sample_labels.size, 64))
samples, _ = digit_flow.forward(z, models.one_hot(sample_labels, 10))
fig = Figure(figsize=(per_class * 0.9, 10 * 0.9), layout="constrained")
axes = fig.subplots(10, per_class)
for ax, image, label in zip(axes.ravel(), samples, sample_labels):
    ax.imshow(image.reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
    ax.set_xticks([])
    ax.set_yticks([])
for label in range(10):
    axes[label, 0].set_ylabel(str(label), rotation=0, labelpad=10)
show(fig, "digit_rows")

# %% [markdown]
# *What to look at:* row $k$ was asked for the digit $k$. The shapes should be recognizably
# that digit, with the variety of handwriting. The next cell makes "recognizably" a number.
#
# ## 7. Are the samples of the class asked for? A classifier's opinion
#
# A simple judge: multinomial logistic regression on the pixels, trained by gradient descent on
# the 1000 training digits only (`datasets.images.digit_classifier`, fifteen lines of NumPy worth
# reading). Its accuracy on the real test digits tells how far to trust it; then
# `datasets.images.class_agreement` draws conditional samples of every digit, maps them back to
# the 0..16 pixel scale, and counts how often the judge agrees with the condition.

# %%
classify = digit_classifier(images[train], labels[train])
print(f"classifier accuracy on the real test digits: {np.mean(classify(images[test]) == labels[test]):.3f}")

n_per_class = 20 if QUICK else 100
for T in (1.0, 0.8):
    agreement, per_digit = class_agreement(digit_flow, classify, n_per_class, temperature=T, seed=11)
    print(f"T = {T}: the classifier labels {agreement:.1%} of {10 * n_per_class} conditional "
          f"samples as their condition (per digit: {np.round(per_digit, 2).tolist()})")

# %% [markdown]
# *What to look at:* the agreement should be far above the 10% of a flow that ignored its
# label, and at or above the bar of 80%, with the classifier's own accuracy on real
# digits as the yardstick. (In quick mode the flow has trained for a few dozen steps only.)
#
# ## Summary
#
# - A conditional flow is a family of flows $f(\cdot\,; y)$ sharing parameters; for every $y$
#   it is an ordinary flow, so $\log q(x \mid y)$ is exact.
# - The context enters only through the conditioners' inputs, so the triangular Jacobians and
#   their cheap log-dets are untouched; the Jacobian is in $x$ (or $z$) at fixed $y$.
# - Its gradient falls out of the conditioner's backward pass (`dcontext`), so $y$ can be
#   learned or encoded.
# - In MADE, context inputs have degree 0, and hidden units of degree 0 let even the first
#   feature depend on $y$.
# - Results are stated against $H(X \mid Y)$; class-conditional samples are judged by an
#   independent classifier.
#
# **Try it.** Condition the moons on the noise level instead (a continuous $y$, e.g.
# $\log \sigma$ with $\sigma \in [0.05, 0.2]$) and look at $q(x \mid y)$ for several $y$,
# including values between those seen in training.
