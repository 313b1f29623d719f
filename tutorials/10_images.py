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
# # 10 · Images: dequantization, bits per dimension, and a multi-scale flow on the digits
#
# **Learning goals.** After this notebook you can
#
# 1. say why a continuous density on integer pixels needs *dequantization*, and what the
#    number it gives you bounds;
# 2. put the logit preprocessing into the flow as a layer, so its log-det is counted;
# 3. turn a negative log-likelihood into **bits per dimension** and compare it with baselines;
# 4. draw what a **squeeze** does to an image and explain why **factoring out** half of the
#    variables is just "the identity, then the base";
# 5. train `models.glow_like` (ActNorm, an LU-parametrized linear layer, couplings, squeeze,
#    factor-out) on the 8×8 digits, sample it at several **temperatures**, check that the
#    samples are not copies of training images, and use its likelihood to flag **anomalies**.
#
# Time: about 40 minutes (the training cell takes a few minutes in full mode).

# %%
import math
import os

import numpy as np
from matplotlib.figure import Figure

from nfscratch import datasets, models
from nfscratch.anomaly import anomaly_scores, roc_curve
from nfscratch.commands.train import DIGITS_RECIPES
from nfscratch.optim import AdamW
from nfscratch.plotting import sample_grid, show
from nfscratch.train import fit
from nfscratch.transforms import Logit
from nfscratch.transforms.multiscale import squeeze_permutation

QUICK = os.environ.get("NFSCRATCH_QUICK", "") not in ("", "0")

# the affine digits recipe of `nfscratch train --dataset digits --coupling affine`, with Glow's
# LU layers put back (8 steps per level; the recipe drops them for 48 cheaper steps) and shrunk
# in quick mode (the numbers of both, and of the spline recipe, are in benchmarks/README.md)
RECIPE = DIGITS_RECIPES["affine"]
MODEL = {**RECIPE["model"], "lu": True, "n_steps": (1, 1) if QUICK else (8, 8), "hidden": (32,)}
TRAIN = {**RECIPE["train"], **(dict(steps=40, batch_size=64, record_every=20) if QUICK else {})}
DRAWS = 1 if QUICK else 8
rng = np.random.default_rng(0)

split = datasets.digits_split()
train_images, train_labels = split["train"]
val_images = split["validation"][0]
test_images, test_labels = split["test"]
print({k: v[0].shape for k, v in split.items()})

# %% [markdown]
# ## 1. Pixels are integers: dequantization
#
# Each digit is 8×8 pixels with one of 17 grey levels, 0..16. A flow defines a continuous
# density $q(x)$ on $\mathbb R^{64}$. Fit it to integer points and it can cheat without bound:
# a density that piles all its mass into ever narrower spikes at the integers has ever higher
# likelihood, and none of that says anything about the digits. *Uniform dequantization* adds
# noise $u \sim U[0,1)^{64}$ and rescales, $y = (x + u)/17 \in [0,1)^{64}$. A density on the
# noisy $y$ cannot spike (the noise fills each unit cell), and by Jensen's inequality its NLL
# bounds the discrete model's NLL $P(x) = \int_{\text{cell}} q$ from above (Theis et al. 2016,
# arXiv:1511.01844). Drawing **new** noise at every training step matters: a fixed noise draw
# is just another finite data set, which a big flow memorizes.

# %%
y1, y2 = datasets.dequantize(train_images[:1], 1), datasets.dequantize(train_images[:1], 2)
fig = Figure(figsize=(9, 2.6), layout="constrained")
axes = fig.subplots(1, 4)
axes[0].imshow(train_images[0].reshape(8, 8), cmap="gray_r", vmin=0, vmax=16)
axes[0].set_title(f"a '{train_labels[0]}': levels 0..16")
for ax, y, k in ((axes[1], y1, 1), (axes[2], y2, 2)):
    ax.imshow(y.reshape(8, 8), cmap="gray_r", vmin=0, vmax=1)
    ax.set_title(f"dequantized, draw {k}")
for ax in axes[:3]:
    ax.set_xticks([]), ax.set_yticks([])
axes[3].hist(train_images.ravel(), bins=np.arange(18) - 0.5, color="0.4")
axes[3].set(title="pixel levels (train)", xlabel="level", yscale="log")
show(fig, "dequantization")

# %% [markdown]
# *Look at:* the two dequantized copies differ only inside each pixel's cell of width 1/17;
# most pixels are 0 (the log-scale histogram), the rest spread over the 16 other levels.
#
# ## 2. The logit layer, and bits per dimension
#
# Affine couplings and a Gaussian base live on all of $\mathbb R^D$, the data on the unit cube.
# RealNVP maps the data through a logit first, $z = \operatorname{logit}(\alpha + (1-2\alpha)y)$;
# here that is the **last** layer of the flow (`transforms.Logit`), so its log-det
# $\sum_d [\log(1-2\alpha) - \log s_d - \log(1-s_d)]$ enters every likelihood and the density
# stays a density *of the pixels*, not of their logits. The margin $\alpha$ keeps pixels at 0
# away from $-\infty$. It is not a harmless constant: it decides the shape the rest of the flow
# must produce. Half of all pixels are 0, so each of them is a uniform block in $[0, 1/17)$;
# after the logit with $\alpha = 0.05$ that block is narrow and sits close to the others,
# with $\alpha = 0.005$ it is wide and far out. On this split the affine recipe reaches about
# 0.1 bits/dim less with $\alpha = 0.005$ than with RealNVP's 0.05 (benchmarks/README.md).
#
# The NLL of $y$ in nats becomes **bits per dimension** of the original pixels by undoing the
# division by 17 (a change of variables worth $D \log 17$) and changing the logarithm's base:
#
# $$ \text{bpd} = \frac{\text{NLL}(y) + D \log 17}{D \log 2}. $$
#
# A uniform density over the 17 levels scores $\log_2 17 = 4.09$; on this split, modelling every
# pixel independently scores 2.40 and a mixture of product-categoricals 2.25 (issue 14).

# %%
logit = Logit(64, alpha=MODEL["alpha"])
z, log_det = logit.inverse(y1)
print(f"logit layer: z in [{z.min():.2f}, {z.max():.2f}], log|det dz/dy| = {log_det[0]:.1f} nats")
print(f"uniform over 17 levels: {datasets.bits_per_dim(0.0, 64):.3f} bits/dim")

# %% [markdown]
# ## 3. Multi-scale: squeeze and factor-out
#
# A **squeeze** turns a $(C, H, W)$ image into $(4C, H/2, W/2)$: each 2×2 block becomes four
# channels at one position. It only moves numbers, so it is a permutation (log-det 0); in
# nfscratch it *is* a `Permute` layer (`transforms.squeeze`). Below, the pixels of a 4×4 image
# are numbered, and each of the four channels after the squeeze collects one corner of every
# block.

# %%
perm = squeeze_permutation(1, 4, 4)       # x = z[:, perm]: x is the image, z the squeeze
image = np.arange(16).reshape(4, 4)
squeezed = np.empty(16, dtype=int)
squeezed[perm] = image.ravel()            # z = x[:, inverse of perm]
squeezed = squeezed.reshape(4, 2, 2)
fig = Figure(figsize=(9, 2.4), layout="constrained")
axes = fig.subplots(1, 5)
block = lambda v: (v // 8) * 2 + (v % 4) // 2           # noqa: E731 (which 2x2 block v is in)
for ax, a, title in [(axes[0], image, "image (1, 4, 4)")] + [
        (axes[c + 1], squeezed[c], f"channel {c}") for c in range(4)]:
    ax.imshow(block(a), cmap="Pastel1", vmin=0, vmax=8)
    for (i, j), v in np.ndenumerate(a):
        ax.text(j, i, str(v), ha="center", va="center")
    ax.set_title(title), ax.set_xticks([]), ax.set_yticks([])
show(fig, "squeeze")

# %% [markdown]
# *Look at:* the colours mark the four 2×2 blocks; channel 0 holds the top-left pixel of every
# block, channel 3 the bottom-right; the numbers are the same sixteen, only rearranged.
#
# **Factor-out.** After the first level of layers, RealNVP and Glow send half of the channels
# straight to the base and continue only with the other half. With a standard normal base,
# "goes to the base now" means the same as "is left unchanged by every later layer", so
# `transforms.FactorOut(dim, keep, layers)` runs its inner layers on the kept coordinates and
# the identity on the rest; its log-det is the inner chain's. The deeper layers cost half as
# much, and the model gets a hierarchy: coarse structure late, fine detail early.
#
# `models.glow_like` builds, in the normalizing direction: logit; `n_steps` Glow steps
# (ActNorm, LU linear, affine coupling with checkerboard masks) on the 1×8×8 image; squeeze to
# 4×4×4; factor out 2 channels; `n_steps` more steps on the 2×4×4 that remain.

# %%
flow = models.glow_like(8, 8, rng=0, **MODEL)
print([t.name for t in flow.transforms])
print(f"{flow.n_params()} parameters; the FactorOut holds {len(flow[0].layers)} layers on "
      f"{flow[0].keep.size} of the 64 coordinates")

# %% [markdown]
# ## 4. Training, with new noise at every step
#
# `fit(..., transform=datasets.dequantize)` dequantizes every batch afresh; the validation
# digits are dequantized once and watched every `record_every` steps, and training stops when
# they stop improving, putting the best parameters back. The learning rate decays to zero over
# a short run (cosine): with 1000 training digits a flow starts to memorize them within a few
# hundred steps, so the recipe is short on purpose. The ActNorm layers initialize
# themselves on the first batch (zero mean, unit variance of their output). `average=0.995`
# keeps a moving average of the parameters over roughly the last 200 steps: the last iterate
# rattles around the minimum at the noise level of the learning rate, and the average sits
# nearer to it, so validation (and the flow we end with) uses the average. The test number
# averages each test digit's log-density over several fixed noise draws.

# %%
def train(flow, images, validation, seed):
    """fit with the recipe: AdamW, cosine decay, a parameter average, early stopping on the
    validation digits."""
    return fit(flow, data=images, transform=datasets.dequantize, validation=validation,
               optimizer=AdamW(TRAIN["lr"], weight_decay=TRAIN["weight_decay"]),
               schedule="cosine", steps=TRAIN["steps"], batch_size=TRAIN["batch_size"],
               patience=TRAIN["patience"], record_every=TRAIN["record_every"],
               average=TRAIN["average"], rng=seed, progress=False)


history = train(flow, train_images, val_images, seed=0)
bpd, se = datasets.heldout_bits_per_dim(flow, test_images, draws=DRAWS, seed=20_000)
print(f"test: {bpd:.3f} ± {se:.3f} bits/dim (independent pixels 2.40, product-categorical "
      f"mixture 2.25, uniform {math.log2(17):.2f}); best validation at step {history.best_step}")

steps = np.arange(1, len(history.loss) + 1)
to_bpd = lambda nll: (np.asarray(nll) + 64 * math.log(17)) / (64 * math.log(2))  # noqa: E731
fig = Figure(figsize=(6, 3.2), layout="constrained")
ax = fig.subplots()
ax.plot(steps, to_bpd(history.loss), lw=0.5, color="0.6", label="training batches")
ax.plot(history.val_steps, to_bpd(history.val_loss), "o-", color="C1", label="validation")
ax.axhline(2.40, ls="--", color="C3", lw=1, label="independent pixels")
ax.set(xlabel="step", ylabel="bits/dim", ylim=(1.5, 3.5), title=f"test {bpd:.3f} ± {se:.3f}")
ax.legend()
show(fig, "training")

# %% [markdown]
# *Look at:* the validation curve follows the training batches (in the first few hundred steps
# it lags behind them: the average still remembers the early parameters); when it flattens and
# starts to rise while the training loss keeps falling, the model is starting to memorize the
# 1000 training digits, which is what early stopping catches.
#
# ## 5. Samples at several temperatures
#
# Sampling at temperature $T$ draws $z \sim \mathcal N(0, T^2 I)$ and pushes it forward. $T < 1$
# keeps to the high-density core of the base: cleaner, less varied digits. $T = 1$ samples the
# model itself.

# %%
fig = sample_grid(flow, (8, 8), temperatures=(0.5, 0.7, 0.85, 1.0), n_per_row=8, rng=1)
show(fig, "samples_temperature")

# %% [markdown]
# *Look at:* each column uses the same base point, scaled; lower temperatures give smoother,
# more typical strokes, $T = 1$ more varied (and more broken) ones.
#
# ## 6. Are the samples copies of training digits?
#
# A flow that memorized its data would reproduce training images. Compare the distance from
# each sample to its nearest training digit with the distance from each *test* digit to its
# nearest training digit (pixels on the 0..16 scale, Euclidean).

# %%
def nearest_distance(a, b):
    """Distance from each row of a to its nearest row of b (both (N, 64))."""
    d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(d2.min(axis=1), 0.0))


samples = 17.0 * flow.sample(200, rng) - 0.5            # back to the 0..16 pixel scale
d_samples = nearest_distance(samples, train_images)
d_test = nearest_distance(test_images, train_images)
print(f"median distance to the nearest training digit: samples {np.median(d_samples):.1f}, "
      f"test digits {np.median(d_test):.1f}; smallest over the samples {d_samples.min():.1f}")
fig = Figure(figsize=(6, 3), layout="constrained")
ax = fig.subplots()
bins = np.linspace(0, max(d_samples.max(), d_test.max()), 40)
ax.hist(d_test, bins, alpha=0.6, label="test digits")
ax.hist(d_samples, bins, alpha=0.6, label="samples (T = 1)")
ax.set(xlabel="distance to the nearest training digit", ylabel="count")
ax.legend()
show(fig, "nearest_training")

# %% [markdown]
# *Look at:* no sample sits at distance 0; samples are about as far from the training set as
# fresh digits from the same source are, so they are new images, not retrieved ones.
#
# ## 7. Anomaly detection with held-out classes
#
# Train a second flow on the training digits of every class but two, and score the test digits
# by $-\log q(x)$ (`anomaly.anomaly_scores`), the held-out classes being the anomalies. The ROC
# curve shows every threshold at once; its area is the chance that an anomaly scores higher
# than a normal digit. Each test digit is scored with one fixed dequantization.

# %%
held_out = (0, 7)
normal_train = train_images[~np.isin(train_labels, held_out)]
normal_val = val_images[~np.isin(split["validation"][1], held_out)]
detector = models.glow_like(8, 8, rng=1, **MODEL)
train(detector, normal_train, normal_val, seed=1)
y_test = datasets.dequantize(test_images, 30_000)
is_anomaly = np.isin(test_labels, held_out)
scores = anomaly_scores(detector, y_test)
fpr, tpr, auc = roc_curve(scores[~is_anomaly], scores[is_anomaly])
print(f"held-out classes {held_out}: area under the ROC curve {auc:.3f}")
fig = Figure(figsize=(8, 3.2), layout="constrained")
ax1, ax2 = fig.subplots(1, 2)
bpd_each = to_bpd(scores)                        # the score -log q of each digit, in bits/dim
bins = np.linspace(*np.quantile(bpd_each, [0.0, 0.995]), 40)
ax1.hist(bpd_each[~is_anomaly], bins, alpha=0.6, density=True, label="normal classes")
ax1.hist(bpd_each[is_anomaly], bins, alpha=0.6, density=True, label=f"held out {held_out}")
ax1.set(xlabel="bits/dim of the digit (score)", ylabel="density", title="anomaly scores")
ax1.legend()
ax2.plot(fpr, tpr)
ax2.plot([0, 1], [0, 1], color="0.7", lw=0.8)
ax2.set(xlabel="false-positive rate", ylabel="true-positive rate", title=f"ROC, area {auc:.3f}")
show(fig, "anomaly_roc")

# %% [markdown]
# *Look at:* the held-out digits score higher (less likely) on the whole, but the histograms
# overlap: likelihood mixes "unfamiliar" with "complicated" (a digit with many dark pixels
# costs more bits whatever its class), which is why likelihood alone is a limited anomaly
# detector in high dimension (Nalisnick et al. 2019, arXiv:1810.09136).
#
# **Summary.** Dequantize with new noise at every step and report bits/dim of held-out images
# against baselines; the logit is a layer; squeeze is a permutation and factor-out is the
# identity on the coordinates that went to the base, so a multi-scale flow is still a plain
# `Flow`. The numbers of the full recipes are in `benchmarks/README.md` (section "Digits,
# multi-scale").
