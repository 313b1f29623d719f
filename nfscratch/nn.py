r"""The small neural network used as a coupling conditioner, with every backward pass by hand.

Each layer is a pair of pure functions in the CS231n style::

    out, cache = <layer>_forward(x, ...)
    dx[, dW, db] = <layer>_backward(dout, cache)

where ``dout`` is dL/dout for some scalar loss L and the returned values are dL/dx and the
parameter gradients. :class:`MLP` chains them and keeps the caches explicitly. (On the ``"numba"``
backend the class runs the same MLP through ``_nn_fast.py``, which gives the same numbers faster.)

Notes
-----
Linear layer, rows are samples (shapes ``x (N, I)``, ``W (I, O)``, ``b (O,)``):

.. math:: y = x W + b, \qquad dx = dy\, W^\top, \quad dW = x^\top dy, \quad db = \textstyle\sum_n dy_n.

Activations act elementwise, so their backward is ``dx = dy * f'(x)``:
``tanh' = 1 - tanh^2``, ``relu' = [x > 0]``, ``leaky_relu' = 1 if x > 0 else alpha``,
``softplus' = sigmoid``, ``silu(x) = x sigmoid(x)`` with
``silu' = sigmoid(x) (1 + x (1 - sigmoid(x)))``.

Initialization: weights ``W ~ N(0, gain^2 / I)`` (LeCun for tanh with gain 1, He for the
ReLU family with gain sqrt(2)), biases zero. ``zero_last=True`` zeroes the last layer so a coupling
layer starts as the identity map (Dinh et al. 2017 use a similar trick).

References
----------
Dinh, Sohl-Dickstein, Bengio, "Density estimation using Real NVP", ICLR 2017, arXiv:1605.08803.
He, Zhang, Ren, Sun, "Delving deep into rectifiers", ICCV 2015, arXiv:1502.01852.
"""
import numpy as np

from . import _nn_fast as _fast
from ._validate import as_batch, as_rng, check_choice, check_widths
from .config import use_kernels

__all__ = ["linear_forward", "linear_backward", "tanh_forward", "tanh_backward",
           "relu_forward", "relu_backward", "leaky_relu_forward", "leaky_relu_backward",
           "softplus_forward", "softplus_backward", "silu_forward", "silu_backward", "sigmoid", "softplus", "ACTIVATIONS",
           "mlp_param_shapes", "MLP"]


# ---------------------------------------------------------------------------------------------
# pure layers
# ---------------------------------------------------------------------------------------------
def linear_forward(x, W, b):
    """Affine layer ``y = x @ W + b``.

    Parameters
    ----------
    x : ndarray, shape (N, I)
    W : ndarray, shape (I, O)
    b : ndarray, shape (O,)

    Returns
    -------
    y : ndarray, shape (N, O)
    cache : tuple ``(x, W)``

    Examples
    --------
    >>> y, cache = linear_forward(np.ones((2, 3)), np.ones((3, 1)), np.zeros(1))
    >>> y.ravel().tolist()
    [3.0, 3.0]
    """
    return x @ W + b, (x, W)


def linear_backward(dy, cache):
    """Backward of :func:`linear_forward`: return ``(dx, dW, db)`` from ``dy`` (N, O)."""
    x, W = cache
    return dy @ W.T, x.T @ dy, dy.sum(axis=0)


def tanh_forward(x):
    """``y = tanh(x)``; the cache is ``y`` itself because ``tanh' = 1 - y^2``."""
    y = np.tanh(x)
    return y, y


def tanh_backward(dy, cache):
    y = cache
    return dy * (1.0 - y * y)


def relu_forward(x):
    return np.maximum(x, 0.0), x


def relu_backward(dy, cache):
    x = cache
    return dy * (x > 0)


def leaky_relu_forward(x, alpha=0.01):
    return np.where(x > 0, x, alpha * x), (x, alpha)


def leaky_relu_backward(dy, cache):
    x, alpha = cache
    return dy * np.where(x > 0, 1.0, alpha)


def sigmoid(x):
    """Logistic sigmoid, evaluated without overflow for large |x|."""
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def softplus(x):
    """``log(1 + exp(x))`` without overflow: ``max(x, 0) + log1p(exp(-|x|))``."""
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


def softplus_forward(x):
    return softplus(x), x


def softplus_backward(dy, cache):
    x = cache
    return dy * sigmoid(x)


def silu_forward(x):
    """``y = x sigmoid(x)`` (SiLU, "swish"): smooth, so a velocity field built on it has a
    continuous Jacobian; the cache keeps ``x`` and ``sigmoid(x)`` for the derivative."""
    s = sigmoid(x)
    return x * s, (x, s)


def silu_backward(dy, cache):
    x, s = cache
    return dy * (s * (1.0 + x * (1.0 - s)))


#: name -> (forward, backward, gain used at initialization)
ACTIVATIONS = {
    "tanh": (tanh_forward, tanh_backward, 1.0),
    "relu": (relu_forward, relu_backward, np.sqrt(2.0)),
    "leaky_relu": (leaky_relu_forward, leaky_relu_backward, np.sqrt(2.0)),
    "softplus": (softplus_forward, softplus_backward, 1.0),
    "silu": (silu_forward, silu_backward, np.sqrt(2.0)),
}


# ---------------------------------------------------------------------------------------------
# the MLP
# ---------------------------------------------------------------------------------------------
def mlp_forward(x, params, activation="tanh"):
    """Run an MLP given its params ``{"W0", "b0", "W1", ...}``; return ``(y, cache)``.

    The activation follows every linear layer except the last.
    """
    act_forward = ACTIVATIONS[activation][0]
    n_layers = len(params) // 2
    caches = []
    h = x
    for i in range(n_layers):
        h, lin_cache = linear_forward(h, params[f"W{i}"], params[f"b{i}"])
        act_cache = None
        if i < n_layers - 1:
            h, act_cache = act_forward(h)
        caches.append((lin_cache, act_cache))
    return h, (caches, activation)


def mlp_backward(dy, cache):
    """Backward of :func:`mlp_forward`: return ``(dx, grads)`` with grads keyed like params."""
    caches, activation = cache
    act_backward = ACTIVATIONS[activation][1]
    grads = {}
    dh = dy
    for i in reversed(range(len(caches))):       # backward mirrors forward, last layer first
        lin_cache, act_cache = caches[i]
        if act_cache is not None:
            dh = act_backward(dh, act_cache)
        dh, grads[f"W{i}"], grads[f"b{i}"] = linear_backward(dh, lin_cache)
    return dh, grads


def mlp_param_shapes(sizes):
    """Shapes of an MLP's parameters for layer widths ``sizes`` = [in, hidden..., out]:
    ``W{i}`` (fan_in, fan_out) and ``b{i}`` (fan_out,), without building anything (what
    :mod:`nfscratch.io` checks a checkpoint against)."""
    shapes = {}
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        shapes[f"W{i}"], shapes[f"b{i}"] = (int(fan_in), int(fan_out)), (int(fan_out),)
    return shapes


class MLP:
    """A multilayer perceptron with explicit caches and hand-written backward.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths ``[in, hidden..., out]``, at least two entries.
    activation : {"tanh", "relu", "leaky_relu", "softplus", "silu"}
    rng : numpy.random.Generator or int, optional
        Source of the initial weights.
    zero_last : bool
        Start with the last layer's weights and bias at zero (output identically 0).

    Attributes
    ----------
    params, grads : dict of ndarray
        ``W{i}`` of shape ``(sizes[i], sizes[i+1])`` and ``b{i}`` of shape ``(sizes[i+1],)``.

    Examples
    --------
    >>> net = MLP([2, 8, 3], rng=0)
    >>> y = net.forward(np.zeros((5, 2)))
    >>> dx = net.backward(np.ones((5, 3)))
    >>> y.shape, dx.shape, net.grads["W0"].shape
    ((5, 3), (5, 2), (2, 8))
    """

    def __init__(self, sizes, activation="tanh", rng=None, zero_last=False):
        sizes = check_widths(sizes, "sizes")
        if len(sizes) < 2:
            raise ValueError(f"sizes: expected at least two positive layer widths, got {sizes}.")
        self.sizes = sizes
        self.activation = check_choice(activation, "activation", ACTIVATIONS)
        rng = as_rng(rng)
        gain = ACTIVATIONS[activation][2]
        self.params = {}
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            W = rng.normal(0.0, gain / np.sqrt(fan_in), size=(fan_in, fan_out))
            if zero_last and i == len(sizes) - 2:
                W[:] = 0.0
            self.params[f"W{i}"] = W
            self.params[f"b{i}"] = np.zeros(fan_out)
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self._cache = None

    def forward(self, x):
        """Return the output ``(N, sizes[-1])`` for input ``x`` ``(N, sizes[0])``."""
        x = as_batch(x, self.sizes[0], "x")
        self._n = x.shape[0]
        if use_kernels() and self.activation in _fast.KERNEL_ACTIVATIONS:   # see _nn_fast.py
            y, self._cache = _fast.mlp_forward(x, self.params, self.activation)
        else:
            y, self._cache = mlp_forward(x, self.params, self.activation)
        return y

    def backward(self, dy):
        """Backpropagate ``dy`` (N, out) through the last forward; return ``dx`` and fill grads."""
        if self._cache is None:
            raise RuntimeError("MLP.backward: call forward() first.")
        dy = as_batch(dy, self.sizes[-1], "dy")
        if dy.shape[0] != self._n:
            raise ValueError(f"dy: expected shape ({self._n}, {self.sizes[-1]}) to match the last "
                             f"forward call, got {dy.shape}.")
        if isinstance(self._cache, _fast.MLPCache):          # made by the kernel path
            dx, self.grads = _fast.mlp_backward(dy, self._cache)
        else:
            dx, self.grads = mlp_backward(dy, self._cache)
        return dx

    def __repr__(self):
        return f"MLP({self.sizes}, activation={self.activation!r})"
