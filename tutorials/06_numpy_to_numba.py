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
# # 06 · From NumPy to Numba: reading a kernel beside its twin
#
# **Learning goals.** After this notebook you can
#
# 1. read an nfscratch kernel (`<name>_nb`) next to its NumPy twin (the teaching function it
#    mirrors, or `<name>_ref` where there is none) and see
#    that they compute the same thing, one with whole-array operations, one with loops;
# 2. check that the two agree (bit for bit, or to ~$10^{-12}$), which is how the test suite
#    keeps them honest;
# 3. time both and explain *when* the compiled loop wins: many small arrays (per-call overhead)
#    and long chains of cheap elementwise work (memory traffic), not big matrix products;
# 4. switch a whole training run between backends with `nfscratch.use_backend`.
#
# Time: about 25 minutes.

# %%
import inspect
import os
import time

import numpy as np
from matplotlib.figure import Figure

import nfscratch
from nfscratch import datasets, models
from nfscratch.kernels import adam as kadam
from nfscratch.kernels import planar as kplanar
from nfscratch.transforms.planar import planar_chain_forward
from nfscratch.losses import reverse_kl_step
from nfscratch.optim import adam_update
from nfscratch.plotting import show
from nfscratch.timing import best_time as fastest_run

QUICK = os.environ.get("NFSCRATCH_QUICK", "") not in ("", "0")
BUDGET = 0.02 if QUICK else 0.2       # seconds of timing per measurement (fastest run kept)


def best_time(fn):
    """Seconds of the fastest of many runs of ``fn()`` (nfscratch.timing.best_time)."""
    return fastest_run(fn, BUDGET)


rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. The smallest kernel: one Adam step
#
# Adam updates each parameter array with a handful of elementwise operations. The NumPy twin
# is `nfscratch.optim.adam_update`, the function the optimizer itself runs on the numpy
# backend: those operations on whole arrays; the Numba kernel is one loop over the entries, compiled
# by `@njit` to machine code the first time it is called (and cached on disk, `cache=True`).

# %%
print(inspect.getsource(adam_update).split('"""')[-1])    # the twin's body, without the docstring
print(inspect.getsource(kadam._adam_update))

# %% [markdown]
# The same arithmetic in the same order — so the results are not just close, they are
# identical:

# %%
def adam_inputs(n, seed):
    r = np.random.default_rng(seed)
    return [r.standard_normal(n), r.standard_normal(n), r.standard_normal(n),
            np.abs(r.standard_normal(n))]


a_ref, a_nb = adam_inputs(1000, 1), adam_inputs(1000, 1)
adam_update(*a_ref, 1e-3, 0.9, 0.999, 1e-8, 0.1, 0.001)
kadam.adam_update_nb(*a_nb, 1e-3, 0.9, 0.999, 1e-8, 0.1, 0.001)
print("parameters identical after one step:", np.array_equal(a_ref[0], a_nb[0]))

# %% [markdown]
# Where does the loop win? Each NumPy operation costs a fixed overhead (a Python call, a
# temporary array) plus time per entry. For small arrays the overhead is everything: a 32-layer
# planar flow has 96 parameter arrays of 1–2 numbers each.

# %%
sizes = [1, 2, 8, 64, 512, 4096, 32768] + ([] if QUICK else [262144])
timing = []
for n in sizes:
    ref_args, nb_args = adam_inputs(n, 2), adam_inputs(n, 2)
    t_ref = best_time(lambda: adam_update(*ref_args, 1e-3, 0.9, 0.999, 1e-8, 0.1, 0.001))
    t_nb = best_time(lambda: kadam.adam_update_nb(*nb_args, 1e-3, 0.9, 0.999, 1e-8, 0.1, 0.001))
    timing.append((n, t_ref, t_nb))
    print(f"n = {n:7d}: NumPy {t_ref * 1e6:9.2f} µs   Numba {t_nb * 1e6:9.2f} µs   "
          f"speed-up {t_ref / t_nb:5.1f}x")
timing = np.array(timing)

# %% [markdown]
# ## 2. A real kernel: the whole planar chain
#
# `planar_chain_forward` (in `nfscratch.transforms.planar`) applies $K$ planar layers by calling
# the readable `planar_forward` once per layer: it is the kernel's NumPy twin.
# `_chain_forward` (behind `planar_chain_forward_nb`) does the same with explicit loops over
# layers, features and samples. Read them side by side with `planar_forward`: same variables,
# same order, the vectorized lines become loops. Two details in the kernel are about speed, not math: the data
# are stored feature-major, $(D, N)$, so the innermost loop walks contiguous memory, and the
# $\tanh$ and $\log$ loops are kept separate so the compiler can vectorize each one.

# %%
print(inspect.getsource(planar_chain_forward).split('"""')[-1])
print(inspect.getsource(kplanar._chain_forward))

# %%
K, D = 32, 2
u = 0.5 * rng.standard_normal((K, D))
w = 0.5 * rng.standard_normal((K, D))
b = 0.1 * rng.standard_normal(K)
constrain = np.ones(K, dtype=np.int64)
u_hat, c, one_plus_c = kplanar.planar_u_hat_nb(u, w, constrain)
z = rng.standard_normal((512, D))
x_ref, log_det_ref, cache = planar_chain_forward(z, u, w, b)
out_nb = kplanar.planar_chain_forward_nb(z, u_hat, w, b, c, one_plus_c)
out_ref = (x_ref, log_det_ref, np.array(cache["log_dets"]))
for name, r, n in zip(["x", "log_det", "log_dets"], out_ref, out_nb):
    print(f"{name:9s} max |ref - nb| = {np.max(np.abs(r - n)):.1e}")

# %% [markdown]
# They agree to rounding ($\le 10^{-14}$ here; the test suite asks for $10^{-12}$ over random
# shapes, including a batch of 1). Now the timings, over batch sizes:

# %%
chain_timing = []
for N in [64, 512, 4096] + ([] if QUICK else [32768]):
    zN = rng.standard_normal((N, D))
    t_ref = best_time(lambda: planar_chain_forward(zN, u, w, b))
    t_nb = best_time(lambda: kplanar.planar_chain_forward_nb(zN, u_hat, w, b, c, one_plus_c))
    chain_timing.append((N, t_ref, t_nb))
    print(f"N = {N:6d}: NumPy {t_ref * 1e3:8.3f} ms   Numba {t_nb * 1e3:8.3f} ms   "
          f"speed-up {t_ref / t_nb:5.1f}x")
chain_timing = np.array(chain_timing)

# %%
fig = Figure(figsize=(10.5, 3.6), layout="constrained")
ax0, ax1 = fig.subplots(1, 2)
ax0.loglog(timing[:, 0], timing[:, 1] * 1e6, "o-", label="NumPy twin (_ref)")
ax0.loglog(timing[:, 0], timing[:, 2] * 1e6, "s-", label="Numba kernel (_nb)")
ax0.set(xlabel="entries in the parameter array", ylabel="µs per Adam update",
        title="Adam update: overhead vs work")
ax0.legend(fontsize=8)
ax1.loglog(chain_timing[:, 0], chain_timing[:, 1] * 1e3, "o-", label="NumPy twin (layer loop)")
ax1.loglog(chain_timing[:, 0], chain_timing[:, 2] * 1e3, "s-", label="Numba kernel (_nb)")
ax1.set(xlabel="batch size N", ylabel="ms per forward pass",
        title=f"planar chain forward, K = {K}, D = {D}")
ax1.legend(fontsize=8)
show(fig, "timings")

# %% [markdown]
# *Look at:* on the left, the NumPy curve is flat for small arrays — it measures overhead, not
# arithmetic — and only starts to rise in the thousands of entries. On the right, the compiled
# chain wins by an order of magnitude at small batches, where NumPy's fixed cost per
# operation dominates, and its lead shrinks as $N$ grows: once each operation touches
# thousands of samples, NumPy's overhead is amortized and both versions wait on memory (the
# chain stores every layer's input for the backward pass). On a 2-core machine the kernel can
# even lose at the largest batch — measure, don't guess.
#
# ## 3. Switching a whole run: the backend
#
# Every hot loop in nfscratch has both versions, and one switch picks which one runs:
# `nfscratch.set_backend("numpy" | "numba")`, the context manager `nfscratch.use_backend`, or
# the environment variable `NFSCRATCH_BACKEND`. The same seed gives the same numbers on both,
# so you can debug with the readable twins and train with the kernels.

# %%
U1 = datasets.energy("U1")
n_steps = 20 if QUICK else 100
results = {}
for backend in ("numpy", "numba"):
    with nfscratch.use_backend(backend):
        flow = models.planar_flow(2, 32, rng=0)
        step_rng = np.random.default_rng(1)
        losses = [reverse_kl_step(flow, U1, 512, step_rng) for _ in range(3)]   # warm-up
        t0 = time.perf_counter()
        for _ in range(n_steps):
            losses.append(reverse_kl_step(flow, U1, 512, step_rng))
        results[backend] = (np.array(losses), (time.perf_counter() - t0) / n_steps)
    print(f"{backend:5s}: {results[backend][1] * 1e3:6.2f} ms per forward + backward step "
          f"(K = 32, batch 512)")
print("largest loss difference between the backends:",
      f"{np.max(np.abs(results['numpy'][0] - results['numba'][0])):.1e}")

# %% [markdown]
# The parameters are not updated in this loop (no optimizer step), so both backends see the
# same flow and the same base samples: the losses agree to rounding, and only the time differs.
#
# ## What to take away
#
# - Write the NumPy version first, as the specification; write the kernel as its literal
#   translation into loops; test one against the other on random shapes.
# - Compiled loops pay off where NumPy's per-operation overhead or its temporaries dominate:
#   many small arrays, long chains of elementwise work. Big matrix products are already
#   compiled (BLAS) — a hand loop rarely beats them.
# - Compilation happens once per function and signature; `cache=True` stores the machine code
#   next to the source, so a fresh process loads it instead of compiling again.
#
# References: the Numba documentation (https://numba.readthedocs.io), "Performance tips";
# Kingma & Ba, *Adam*, arXiv:1412.6980; Rezende & Mohamed 2015, arXiv:1505.05770.
