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
# # 02 · The MLP backward pass, derived and gradient-checked layer by layer
#
# **Learning goals.** After this notebook you can
#
# 1. derive the backward pass of a linear layer from index notation and say why
#    $dW = x^\top dy$ has the shape of $W$;
# 2. backpropagate through an elementwise activation;
# 3. chain layers into an MLP's backward pass with explicit caches (the conditioner of every
#    coupling layer in nfscratch is such an MLP);
# 4. check any backward pass against central differences with
#    `nfscratch.gradcheck.check_gradients`, read its table, and know why it needs float64.
#
# Time: about 30 minutes. Then do exercise 1 (`tutorials/exercises/ex1_mlp_backward.py`).

# %%
import os

import numpy as np
from matplotlib.figure import Figure

from nfscratch import nn
from nfscratch.gradcheck import FAIL, WARN, check_gradients
from nfscratch.plotting import show

QUICK = os.environ.get("NFSCRATCH_QUICK", "") not in ("", "0")

rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. The linear layer
#
# Rows are samples: $x \in \mathbb R^{N \times I}$, $W \in \mathbb R^{I \times O}$,
# $b \in \mathbb R^{O}$ and $y = xW + b$, i.e. $y_{nj} = \sum_i x_{ni} W_{ij} + b_j$.
# Some scalar loss $L$ sits downstream; backpropagation hands us $dy = \partial L/\partial y$
# (shape $N \times O$) and asks for the gradients of the inputs. The chain rule, one entry at a
# time:
#
# $$ \frac{\partial L}{\partial W_{ij}} = \sum_{n,k} \frac{\partial L}{\partial y_{nk}}
#    \frac{\partial y_{nk}}{\partial W_{ij}} = \sum_n dy_{nj}\, x_{ni}
#    \quad\Longrightarrow\quad dW = x^\top dy \;\; (I \times O), $$
#
# $$ dx_{ni} = \sum_j dy_{nj} W_{ij} \;\Longrightarrow\; dx = dy\, W^\top \;\; (N \times I),
#    \qquad db_j = \sum_n dy_{nj} \;\; (O). $$
#
# Two habits make this mechanical: **a gradient has the shape of what it differentiates**, and
# **a parameter shared by all samples sums their contributions** (the $\sum_n$ in $dW$ and
# $db$). If the shapes only fit one way, that way is usually right.
#
# **Try it first.** Turning these three equations into NumPy is the first part of exercise 1
# (`linear_backward` in `ex1_mlp_backward.py`; `nfscratch exercises make-student my_exercises/`
# writes your copy). nfscratch's own version is `nfscratch.nn.linear_backward`; below we only
# *check* it, without reading it, as you will check yours.
#
# ## 2. Checking it: central differences
#
# A backward pass computes $\partial L / \partial \theta$ for the loss
# $L = \sum dy \odot y$ with a random $dy$ (random, so no term cancels by luck). Each entry can
# also be estimated by nudging one number:
#
# $$ \frac{\partial L}{\partial \theta_i} \approx
#    \frac{L(\theta + \epsilon e_i) - L(\theta - \epsilon e_i)}{2\epsilon}, $$
#
# whose error is $O(\epsilon^2)$. `check_gradients(forward_fn, backward_fn, inputs)` does this
# for every input and prints one row per gradient with the largest **relative error**
# $|a - b| / (|a| + |b|)$ (CS231n's convention; a floor keeps near-zero entries from dividing
# by ~0). A correct float64 backward lands near $10^{-10}$; WARN above $10^{-7}$, FAIL above
# $10^{-4}$.

# %%
inputs = {"x": rng.standard_normal((5, 3)), "W": rng.standard_normal((3, 4)),
          "b": rng.standard_normal(4)}
result = check_gradients(nn.linear_forward, nn.linear_backward, inputs)

# %% [markdown]
# ## 3. Activations
#
# An elementwise $y = \sigma(x)$ has a diagonal Jacobian, so its backward is a product:
# $dx = dy \odot \sigma'(x)$. For tanh the forward already computed what the derivative needs,
# $\tanh' = 1 - \tanh^2$, which is why nfscratch caches $y$ rather than $x$. For ReLU,
# $\sigma' = [x > 0]$.

# %%
x_act = 1.5 * rng.standard_normal((6, 4))
check_gradients(nn.tanh_forward, nn.tanh_backward, {"x": x_act})
check_gradients(nn.softplus_forward, nn.softplus_backward, {"x": x_act});  # noqa: E703

# %% [markdown]
# What a mistake looks like: a softplus backward, $\mathrm{softplus}(x) = \log(1 + e^x)$, that
# forgot the denominator of its derivative, $e^x$ instead of $e^x / (1 + e^x)$. The check
# fails, and the `worst at` column says where.

# %%
def softplus_backward_buggy(dy, cache):
    x = cache                      # softplus caches its input
    return dy * np.exp(x)          # the bug: the derivative is e^x / (1 + e^x)


bad = check_gradients(nn.softplus_forward, softplus_backward_buggy, {"x": x_act})
assert not bad.passed

# %% [markdown]
# ## 4. The MLP: the chain rule, layer by layer
#
# An MLP with tanh between its linear layers computes
# $h_0 = x,\; a_i = h_i W_i + b_i,\; h_{i+1} = \tanh(a_i)$ (no tanh after the last layer). The
# forward pass keeps, for every layer, what its backward needs (the *cache*). The backward pass
# walks the layers in reverse: the gradient of a layer's input is the upstream gradient of the
# layer below it. With $K$ layers the output is $y = a_{K-1}$ (no tanh), so
# $da_{K-1} = dy$, and for $i = K-1, \dots, 0$:
#
# $$ dW_i = h_i^\top da_i, \quad db_i = \textstyle\sum_n da_{i,n}, \quad
#    dh_i = da_i W_i^\top, \qquad da_{i-1} = dh_i \odot \big(1 - h_i^2\big)
#    \;\;(\text{since } h_i = \tanh a_{i-1},\ i \ge 1), $$
#
# and $dx = dh_0$. Nothing else is needed — no graph, no autograd: each step is the backward of
# one of the two functions above, fed the cache its forward kept.
#
# **Try it first.** Writing this loop is the last part of exercise 1 (`mlp_backward`).
#
# nfscratch's version is `nfscratch.nn.mlp_backward`. Checking the whole network at once needs
# the weights as separate inputs, so we wrap the forward in a small function:

# %%
sizes = [2, 16, 16, 4]                       # the shape of a coupling conditioner for D = 4
net = nn.MLP(sizes, activation="tanh", rng=1)
params = {k: v.copy() for k, v in net.params.items()}
mlp_inputs = {"x": rng.standard_normal((8, 2)), **params}


def mlp_forward_flat(x, **weights):
    return nn.mlp_forward(x, weights, "tanh")


mlp_result = check_gradients(mlp_forward_flat, nn.mlp_backward, mlp_inputs)

# %% [markdown]
# ## 5. Why float64, and why $\epsilon = 10^{-6}$
#
# A central difference has two errors that pull in opposite directions: truncation, about
# $\epsilon^2$ (the Taylor remainder), and rounding, about $u/\epsilon$ where $u$ is the
# machine precision ($2.2 \times 10^{-16}$ in float64, $1.2 \times 10^{-7}$ in float32) —
# $L(\theta \pm \epsilon)$ share most of their digits and the subtraction cancels them. We can
# measure both on one weight of the MLP:

# %%
def loss_of(weights, x, dy):
    """L = sum(dy * MLP(x)), computed in the dtype of its inputs (float32 stays float32)."""
    h = x
    for i in range(3):
        h = h @ weights[f"W{i}"] + weights[f"b{i}"]
        if i < 2:
            h = np.tanh(h)
    return float(np.sum(dy * h))


x0 = mlp_inputs["x"]
y0, cache0 = nn.mlp_forward(x0, params, "tanh")
dy0 = rng.standard_normal(y0.shape)
_, grads0 = nn.mlp_backward(dy0, cache0)
exact = grads0["W1"][3, 5]

eps_values = np.logspace(-12, -1, 23 if not QUICK else 12)
errors = {}
for dtype in (np.float64, np.float32):
    errs = []
    w32 = {k: v.astype(dtype) for k, v in params.items()}
    x32, dy32 = x0.astype(dtype), dy0.astype(dtype)
    for eps in eps_values:
        wp = {k: v.copy() for k, v in w32.items()}
        wm = {k: v.copy() for k, v in w32.items()}
        wp["W1"][3, 5] += dtype(eps)
        wm["W1"][3, 5] -= dtype(eps)
        step = float(wp["W1"][3, 5]) - float(wm["W1"][3, 5])       # the step actually taken
        num = (loss_of(wp, x32, dy32) - loss_of(wm, x32, dy32)) / step if step else np.nan
        errs.append(abs(num - exact) / (abs(num) + abs(exact)))
    errors[np.dtype(dtype).name] = np.array(errs)

fig = Figure(figsize=(6.5, 3.8), layout="constrained")
ax = fig.subplots()
for name, errs in errors.items():
    ax.loglog(eps_values, np.maximum(errs, 1e-17), "o-", label=name)
ax.axhline(WARN, color="tab:orange", ls=":", label=f"WARN > {WARN:.0e}")
ax.axhline(FAIL, color="tab:red", ls=":", label=f"FAIL > {FAIL:.0e}")
ax.axvline(1e-6, color="0.5", ls="--", lw=0.8)
ax.set(xlabel="step $\\epsilon$", ylabel="relative error of the central difference",
       title="truncation ($\\propto\\epsilon^2$) against rounding ($\\propto u/\\epsilon$)")
ax.legend(fontsize=8)
show(fig, "eps_tradeoff")
i6 = int(np.argmin(np.abs(eps_values - 1e-6)))
print(f"relative error at eps = {eps_values[i6]:.0e}: float64 {errors['float64'][i6]:.1e}, "
      f"float32 {errors['float32'][i6]:.1e}; float32's smallest over all steps "
      f"{np.nanmin(errors['float32']):.1e}")

# %% [markdown]
# *Look at:* the float64 curve is a V whose floor, near $\epsilon \approx 10^{-5}$–$10^{-6}$,
# lies far below the WARN line; the float32 curve stays above WARN at every step, and at
# $\epsilon = 10^{-6}$ it is off by the relative error printed above (below $10^{-8}$ the step is lost
# to rounding altogether). In float32 a gradient check cannot tell a bug from noise, which is why
# nfscratch's gradcheck refuses non-float64 input.
#
# ## What to take away
#
# - Derive with indices, then vectorise; check every shape; shared parameters sum over $n$.
# - Every backward pass gets checked, once, against central differences in float64 with
#   $\epsilon \approx 10^{-6}$: `check_gradients` for pure functions, `check_transform` for a
#   layer (tutorial 03), `check_flow` for a whole flow.
# - Now do **exercise 1**: `nfscratch exercises make-student my_exercises/`, fill in
#   `ex1_mlp_backward.py`, and run `nfscratch exercises check my_exercises/ex1_mlp_backward.py`.
#
# Reference: CS231n, *Backpropagation, intuitions* and *gradient checks*
# (https://cs231n.github.io/optimization-2/, https://cs231n.github.io/neural-networks-3/).
