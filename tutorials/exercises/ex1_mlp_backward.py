r"""Exercise 1 -- the backward pass of a small MLP, one layer at a time.

A coupling layer's conditioner is a small multilayer perceptron, so its backward pass is the
first thing to get right. Rows are samples: ``x`` has shape (N, I).

Linear layer, ``y = x W + b`` with ``W`` of shape (I, O). For a scalar loss L with upstream
gradient ``dy = dL/dy`` (N, O):

.. math:: dx = dy\,W^\top, \qquad dW = x^\top dy, \qquad db = \textstyle\sum_n dy_n.

Tanh, ``y = tanh(x)`` elementwise: ``dx = dy * (1 - y^2)``.

The MLP alternates them (tanh after every linear layer but the last); its backward walks the
layers in reverse order, each layer turning the gradient of its output into the gradient of
its input and of its parameters.

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
    ### HINT: y_nj = sum_i x_ni W_ij + b_j. So dx = dy W^T, dW = x^T dy, and db sums dy over the batch. Check the shapes: (N, O) @ (O, I) is (N, I).
    dx = dy @ W.T                                    # (N, I)
    dW = x.T @ dy                                    # (I, O)
    db = dy.sum(axis=0)                              # (O,)
    ### END SOLUTION
    return dx, dW, db


def tanh_forward(x):
    """``y = tanh(x)``; the cache is ``y`` itself, since ``tanh'(x) = 1 - tanh(x)^2``."""
    y = np.tanh(x)
    return y, y


def tanh_backward(dy, cache):
    """Given ``dy`` and the cache ``y = tanh(x)``, return ``dx`` (same shape as ``dy``)."""
    y = cache
    ### BEGIN SOLUTION
    ### HINT: tanh acts elementwise and tanh'(x) = 1 - tanh(x)^2; the cache already holds tanh(x).
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
    ### HINT: walk the layers from the last to the first: for layer i, first undo its tanh (if its tanh cache is not None) with tanh_backward, then its linear part with linear_backward, which gives the gradient for the layer below and grads[f"W{i}"], grads[f"b{i}"].
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
