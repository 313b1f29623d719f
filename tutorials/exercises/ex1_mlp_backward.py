r"""Exercise 1 -- the backward pass of a small MLP, one layer at a time.

A coupling layer's conditioner is a small multilayer perceptron, so its backward pass is the
first thing to get right. Rows are samples: ``x`` has shape (N, I).

Linear layer, ``y = x W + b`` with ``W`` of shape (I, O) and ``b`` of shape (O,). Tanh,
``y = tanh(x)`` elementwise. The MLP alternates them (tanh after every linear layer but the
last). For a scalar loss L downstream, each backward receives the upstream gradient
``dy = dL/dy`` and returns the gradients of its inputs and parameters; tutorial 02 derives the
equations (sections 1, 3 and 4), and ``nfscratch exercises hint ex1_mlp_backward.py`` gives
hints one level at a time if you are stuck.

Your task: fill in ``linear_backward``, ``tanh_backward`` and ``mlp_backward`` where they raise
``NotImplementedError``. Check your work with::

    nfscratch exercises check ex1_mlp_backward.py

Rule of thumb: a gradient always has the shape of the thing it differentiates (``dW`` has the
shape of ``W``); writing the shape beside every line (``# (N, O)``) catches most bugs.
Reference: CS231n, "Backpropagation, intuitions" (https://cs231n.github.io/optimization-2/).
"""
import numpy as np

EXERCISE = "mlp_backward"


def linear_forward(x, W, b):
    """``y = x @ W + b`` for ``x`` (N, I), ``W`` (I, O), ``b`` (O,); returns ``(y, cache)``."""
    y = x @ W + b                                    # (N, O)
    return y, (x, W)


def linear_backward(dy, cache):
    """Given ``dy = dL/dy`` (N, O), return ``(dx, dW, db)`` of shapes (N, I), (I, O), (O,)."""
    x, W = cache
    ### BEGIN SOLUTION
    ### HINT 1: write one entry, y_nj = sum_i x_ni W_ij + b_j, and ask which entries of y each
    ### HINT 1: x_ni, W_ij and b_j touches. A parameter shared by all N samples collects a
    ### HINT 1: contribution from every sample.
    ### HINT 2: dL/dx_ni = sum_j dy_nj W_ij;  dL/dW_ij = sum_n x_ni dy_nj;  dL/db_j = sum_n
    ### HINT 2: dy_nj.
    ### HINT 3: dy is (N, O), x is (N, I), W is (I, O); dx must come out (N, I), dW (I, O), db
    ### HINT 3: (O,). Of the products of dy with W (or its transpose), only one has shape (N,
    ### HINT 3: I); likewise for x and dy.
    dx = dy @ W.T                                    # (N, I)
    dW = x.T @ dy                                    # (I, O)
    db = dy.sum(axis=0)                              # (O,)
    ### END SOLUTION
    return dx, dW, db


def tanh_forward(x):
    """``y = tanh(x)``; the cache is ``y`` itself (the backward needs nothing else)."""
    y = np.tanh(x)
    return y, y


def tanh_backward(dy, cache):
    """Given ``dy`` and the cache ``y = tanh(x)``, return ``dx`` (same shape as ``dy``)."""
    y = cache
    ### BEGIN SOLUTION
    ### HINT 1: tanh acts on each entry separately, so its Jacobian is diagonal: the backward is
    ### HINT 1: an elementwise product, with no matrix product and no sum.
    ### HINT 2: d tanh(x)/dx = 1 - tanh(x)^2, and the cache already holds y = tanh(x), not x.
    ### HINT 3: dx has the shape of dy (and of y).
    dx = dy * (1.0 - y * y)
    ### END SOLUTION
    return dx


def mlp_forward(x, params):
    """Run the MLP with params ``{"W0", "b0", "W1", "b1", ...}``; return ``(y, caches)``.

    ``caches[i]`` is ``(linear cache, tanh cache or None)`` of layer ``i``; the last layer has no
    tanh.
    """
    n_layers = len(params) // 2
    caches = []
    h = x
    for i in range(n_layers):
        h, lin_cache = linear_forward(h, params[f"W{i}"], params[f"b{i}"])
        act_cache = None
        if i < n_layers - 1:
            h, act_cache = tanh_forward(h)
        caches.append((lin_cache, act_cache))
    return h, caches


def mlp_backward(dy, caches):
    """Given ``dy`` (N, O) and the caches of ``mlp_forward``, return ``(dx, grads)``.

    ``grads`` is a dict with a gradient for every parameter: ``"W0"``, ``"b0"``, ``"W1"``, ...
    """
    grads = {}
    ### BEGIN SOLUTION
    ### HINT 1: undo mlp_forward step by step, from its last operation to its first, each with
    ### HINT 1: the backward of the function that did it; what comes out of one layer is the
    ### HINT 1: upstream gradient of the layer below.
    ### HINT 2: layer i computes a_i = h_i W_i + b_i, then h_(i+1) = tanh(a_i) (no tanh after
    ### HINT 2: the last layer). So: da_i from dh_(i+1) through the tanh (if there is one), then
    ### HINT 2: dh_i, dW_i, db_i from da_i through the linear part; dx = dh_0.
    ### HINT 3: caches[i] is (linear cache, tanh cache or None); walk i from len(caches) - 1
    ### HINT 3: down to 0. Every dh has the batch on axis 0, (N, width of that layer); grads
    ### HINT 3: gets keys 'W0', 'b0', 'W1', ... with the shapes of the weights.
    dh = dy                                          # (N, O)
    for i in reversed(range(len(caches))):
        lin_cache, act_cache = caches[i]
        if act_cache is not None:
            dh = tanh_backward(dh, act_cache)
        dh, grads[f"W{i}"], grads[f"b{i}"] = linear_backward(dh, lin_cache)
    dx = dh                                          # (N, I)
    ### END SOLUTION
    return dx, grads


if __name__ == "__main__":
    # A quick self-test you can run with `python ex1_mlp_backward.py`: one gradient, by hand.
    rng = np.random.default_rng(0)
    x, W, b = rng.normal(size=(4, 3)), rng.normal(size=(3, 2)), rng.normal(size=2)
    y, cache = linear_forward(x, W, b)
    dx, dW, db = linear_backward(np.ones_like(y), cache)      # L = sum(y)
    eps = 1e-6
    W[0, 1] += eps
    L_plus = linear_forward(x, W, b)[0].sum()
    W[0, 1] -= 2 * eps
    L_minus = linear_forward(x, W, b)[0].sum()
    print("dW[0, 1] analytic", dW[0, 1], " numerical", (L_plus - L_minus) / (2 * eps))
