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
# # 05 · Why structure matters: the cost of a log-determinant
#
# **Learning goals.** After this notebook you can
#
# 1. say why a flow with an arbitrary Jacobian is impractical: $\log|\det J|$ of a dense
#    $D \times D$ matrix costs $O(D^3)$ per sample (plus $D$ passes to even *build* $J$);
# 2. measure that cost, and the $O(D)$ cost of a triangular (coupling) or identity-plus-rank-one
#    (planar) log-det, on this machine;
# 3. read a log-log timing plot: slopes are exponents.
#
# This is the limitation that shapes every flow design: each architecture is a way to keep the
# Jacobian's determinant cheap while keeping the map expressive. Time: about 15 minutes.

# %%
import os

# One BLAS thread: on a small shared machine, a multi-threaded LU spends its time waiting for
# cores, and the curve would measure the scheduler instead of the arithmetic. (Set before NumPy
# is imported; in a notebook, restart the kernel for it to take effect.)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from nfscratch.plotting import show  # noqa: E402
from nfscratch.timing import best_time  # noqa: E402
from nfscratch.transforms import AffineCoupling  # noqa: E402

QUICK = os.environ.get("NFSCRATCH_QUICK", "") not in ("", "0")

rng = np.random.default_rng(0)
DIMS = [2, 4, 8, 16, 32, 64, 128] + ([] if QUICK else [256, 512, 1024])
BUDGET = 0.02 if QUICK else 0.2       # seconds of timing per measurement

# %% [markdown]
# ## 1. Three log-determinants
#
# For a batch of $N$ samples in $D$ dimensions:
#
# | Jacobian | log-det | cost per sample |
# |---|---|---|
# | dense (any map) | `np.linalg.slogdet(J)` — an LU factorization | $\tfrac23 D^3$ flops |
# | triangular (coupling: diagonal $e^{s}$) | $\sum_j s_j$ | $D$ additions |
# | $I + u\psi^\top$ (planar) | $\log\lvert 1 + \psi^\top u \rvert$ | $\approx 2D$ flops |
#
# We time each the way a flow would use it: on a batch, per sample. To time fairly we repeat a
# call until a time budget is spent and keep the *fastest* repetition (the one least disturbed
# by the rest of the machine): that is all `nfscratch.timing.best_time` does.

# %%
rows = []
for D in DIMS:
    N = max(1, min(256, 2 ** 20 // D ** 2))         # keep the dense batch under ~8 MB
    J = rng.standard_normal((N, D, D)) + 3.0 * np.eye(D)    # (N, D, D) well conditioned
    M = 1024                                                # the cheap ones: a fixed batch
    s = rng.standard_normal((M, D))                         # (M, D) coupling log-scales
    u, psi = rng.standard_normal((M, D)), rng.standard_normal((M, D))
    t_dense = best_time(lambda: np.linalg.slogdet(J), BUDGET) / N
    t_tri = best_time(lambda: s.sum(axis=1), BUDGET) / M
    planar_log_det = lambda: np.log(np.abs(1.0 + np.einsum("nd,nd->n", psi, u)))  # noqa: E731
    t_planar = best_time(planar_log_det, BUDGET) / M
    rows.append((D, N, t_dense, t_tri, t_planar))
    print(f"D = {D:5d} (dense batch {N:3d}): dense {t_dense * 1e6:10.2f} µs   triangular "
          f"{t_tri * 1e6:7.3f} µs   planar {t_planar * 1e6:7.3f} µs   per sample")
rows = np.array(rows)

# %% [markdown]
# And the check that the structured formula is not an approximation: for a RealNVP layer in
# $D = 64$, `slogdet` of its (finite-difference) Jacobian equals its $O(D)$ log-det.

# %%
from nfscratch.gradcheck import numerical_jacobian  # noqa: E402

layer = AffineCoupling(64, hidden=[32], rng=0, zero_init=False)
point = rng.standard_normal(64)
J64 = numerical_jacobian(lambda v: layer.forward(v[None, :])[0][0], point)
print(f"slogdet of the 64 x 64 Jacobian: {np.linalg.slogdet(J64)[1]:.8f}")
print(f"the layer's sum of s:            {layer.forward(point[None, :])[1][0]:.8f}")

# %%
D = rows[:, 0]
fig = Figure(figsize=(7.5, 4.4), layout="constrained")
ax = fig.subplots()
ax.loglog(D, rows[:, 2], "o-", label="dense: slogdet (LU)")
ax.loglog(D, rows[:, 3], "s-", label="triangular (coupling): sum of s")
ax.loglog(D, rows[:, 4], "^-", label="identity + rank one (planar)")
big = D >= D[-3]                                   # fit the three largest: arithmetic dominates
slope_dense = np.polyfit(np.log(D[big]), np.log(rows[big, 2]), 1)[0]
slope_tri = np.polyfit(np.log(D[big]), np.log(rows[big, 3]), 1)[0]
ax.loglog(D, rows[-1, 2] * (D / D[-1]) ** 3, color="0.6", ls=":", label="slope 3 (reference)")
ax.loglog(D, rows[-1, 3] * (D / D[-1]), color="0.6", ls="--", label="slope 1 (reference)")
ax.set(xlabel="dimension D", ylabel="seconds per sample (fastest run)",
       title=f"log|det J| per sample: fitted slopes {slope_dense:.1f} (dense) vs "
             f"{slope_tri:.1f} (triangular)")
ax.legend(fontsize=8)
show(fig, "logdet_cost")
print(f"at D = {int(D[-1])}, dense / triangular = {rows[-1, 2] / rows[-1, 3]:,.0f}x")

# %% [markdown]
# *Look at:* for $D$ in the hundreds the dense curve runs almost parallel to the slope-3
# line (the fitted exponent comes out a little below 3, because a blocked LU uses the CPU more
# efficiently as matrices grow), while the structured log-dets follow the slope-1 line, below
# which they cannot go — they must at least read their $D$ numbers. At $D = 1024$ the gap is
# about five orders of magnitude, per sample and per layer.
#
# ## 2. What that means in practice
#
# - An image of $28 \times 28$ pixels has $D = 784$. A dense log-det is then roughly
#   $\tfrac23 \cdot 784^3 \approx 3 \times 10^8$ flops **per sample per layer**, before building
#   the Jacobian at all — which itself needs $D$ backward passes. A coupling layer's log-det
#   is a sum of the $392$ log-scales its conditioner outputs: the determinant itself costs
#   nothing beyond the conditioner's forward pass, which the layer must run anyway to transform
#   $x$: for a conditioner $392 \to H \to H \to 784$ (a scale and a shift for each of 392
#   features) about $392H + H^2 + 784H$ multiply-adds per sample — linear in $D$, not cubic.
# - So flow architectures are catalogues of Jacobian structures with cheap determinants:
#   triangular (coupling, autoregressive), identity plus low rank (planar, Sylvester), diagonal
#   (elementwise, ActNorm), $\pm 1$ (permutations), or an LU-parameterized matrix whose
#   determinant is read off its diagonal (Glow's $1 \times 1$ convolutions).
# - The other way out is to estimate $\log|\det|$ stochastically (residual flows) or to
#   integrate a trace (continuous flows, FFJORD) — trading exactness for freedom.
#
# References: Papamakarios et al., *Normalizing Flows for Probabilistic Modeling and
# Inference*, JMLR 2021, arXiv:1912.02762 (Section 3, "constructing flows" by Jacobian
# structure); Dinh et al. 2017, arXiv:1605.08803; Rezende & Mohamed 2015, arXiv:1505.05770.
