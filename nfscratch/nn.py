r"""The small neural network used as a coupling conditioner, with every backward pass by hand.

Each layer is a pair of pure functions in the CS231n style::

    out, cache = <layer>_forward(x, ...)
    dx[, dW, db] = <layer>_backward(dout, cache)

where ``dout`` is dL/dout for some scalar loss L and the returned values are dL/dx and the
parameter gradients. :class:`MLP` chains them and keeps the caches explicitly.

Notes
-----
Linear layer, rows are samples (shapes ``x (N, I)``, ``W (I, O)``, ``b (O,)``):

.. math:: y = x W + b, \qquad dx = dy\, W^\top, \quad dW = x^\top dy, \quad db = \textstyle\sum_n dy_n.

Activations act elementwise, so their backward is ``dx = dy * f'(x)``:
``tanh' = 1 - tanh^2``, ``relu' = [x > 0]``, ``leaky_relu' = 1 if x > 0 else alpha``,
``softplus' = sigmoid``.

Initialization: weights ``W ~ N(0, gain^2 / I)`` (LeCun for tanh with gain 1, He for the
ReLU family with gain sqrt(2)), biases zero. ``zero_last=True`` zeroes the last layer so a coupling
layer starts as the identity map (Dinh et al. 2017 use a similar trick).

References
----------
Dinh, Sohl-Dickstein, Bengio, "Density estimation using Real NVP", ICLR 2017, arXiv:1605.08803.
He, Zhang, Ren, Sun, "Delving deep into rectifiers", ICCV 2015, arXiv:1502.01852.
"""
import numpy as np

from ._validate import as_batch, as_rng
from .config import get_backend

__all__ = ["linear_forward", "linear_backward", "tanh_forward", "tanh_backward",
           "relu_forward", "relu_backward", "leaky_relu_forward", "leaky_relu_backward",
           "softplus_forward", "softplus_backward", "sigmoid", "softplus", "ACTIVATIONS", "MLP"]


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


#: name -> (forward, backward, gain used at initialization)
ACTIVATIONS = {
    "tanh": (tanh_forward, tanh_backward, 1.0),
    "relu": (relu_forward, relu_backward, np.sqrt(2.0)),
    "leaky_relu": (leaky_relu_forward, leaky_relu_backward, np.sqrt(2.0)),
    "softplus": (softplus_forward, softplus_backward, 1.0),
}


def _check_activation(activation):
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation: expected one of {sorted(ACTIVATIONS)}, got {activation!r}.")
    return activation


# ---------------------------------------------------------------------------------------------
# the MLP
# ---------------------------------------------------------------------------------------------
def mlp_forward(x, params, activation="tanh", workspace=None):
    """Run an MLP given its params ``{"W0", "b0", "W1", ...}``; return ``(y, caches)``.

    The activation follows every linear layer except the last. ``workspace`` (a dict, optional)
    lets the kernel path keep its scratch arrays from one call to the next (see ``_Scratch``).
    """
    if get_backend() == "numba" and activation in _KERNEL_ACTIVATIONS:
        return _mlp_forward_kernels(x, params, activation, workspace)
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
    if isinstance(cache, dict):            # made by the kernel path
        return _mlp_backward_kernels(dy, cache)
    caches, activation = cache
    act_backward = ACTIVATIONS[activation][1]
    grads = {}
    dh = dy
    for i in reversed(range(len(caches))):
        lin_cache, act_cache = caches[i]
        if act_cache is not None:
            dh = act_backward(dh, act_cache)
        dh, grads[f"W{i}"], grads[f"b{i}"] = linear_backward(dh, lin_cache)
    return dh, grads


# ---------------------------------------------------------------------------------------------
# the kernel path (backend "numba"): the same MLP, its thin layers fused with bias and activation
# ---------------------------------------------------------------------------------------------
# A layer with at most kernels.mlp.SMALL inputs (the coupling conditioner's first layer) or
# outputs (its last) runs in a Numba kernel fused with the bias, the activation and, backward,
# the activation's derivative and the bias gradient; the square hidden products stay with BLAS
# (np.matmul), whose speed no hand loop matches. See nfscratch/kernels/mlp.py.
_KERNEL_ACTIVATIONS = ("tanh", "relu", "leaky_relu")      # softplus stays on the NumPy path

# The kernel path runs the MLP over blocks of CHUNK_BYTES per layer (2048 rows of a 64-wide
# layer): a block's activations are still in cache when the next layer, or the same layer's
# bias and tanh, read them, and BLAS runs its products at its small-matrix speed. On the whole
# batch at once, every (N, 64) array of a batch of 32768 is 16 MB: each pass over it went to
# memory and BLAS slowed from ~40 to ~30 GFLOP/s; the coupling benchmark's step went from 338
# to 249 ms (blocks of 256 KB: 268 ms, 512 KB: 254, 2 MB: 254; at batch 4096, within 3%).
# Batches up to one block are one call per layer, as before; the numbers are the same either
# way, up to the order in which the blocks' parameter gradients are summed.
CHUNK_BYTES = 1024 * 1024
# Activations kept for the backward pass are reused between passes (see _Scratch) only below
# this size per array: larger ones are rare, NumPy already maps them with huge pages (so they
# cost few page faults), and keeping them would hold on to a lot of memory.
KEEP_BYTES = 4 * 1024 * 1024


def _chunk_rows(widths):
    return max(16, CHUNK_BYTES // (8 * max(widths)))


class _Scratch:
    """Arrays of (rows, width) kept in ``workspace`` (a dict the caller owns) between calls.

    Without a workspace they are new arrays every call. With one -- a coupling layer passes its
    own -- the forward pass's scratch block, the activations kept for the backward pass and the
    backward pass's blocks are reused from one pass to the next: a new array of a few MB costs
    a page fault every 4 KB when first written, 1.1k faults and ~3 ms of a 35 ms training step
    at batch 4096 (measured with ``ru_minflt``), a reused one none. The activations kept for
    the backward pass are therefore overwritten by the layer's next pass -- exactly when its
    cache is replaced, so ``backward`` still always refers to the most recent pass.
    """

    def __init__(self, workspace, rows):
        self.store = {} if workspace is None else workspace.setdefault("scratch", {})
        self.rows = rows

    def get(self, name, n, width):
        a = self.store.get((name, width))
        if a is None or a.shape[0] < self.rows:
            a = self.store[(name, width)] = np.empty((self.rows, width))
        return a[:n]


def _mlp_forward_kernels(x, params, activation, workspace=None):
    from .kernels import mlp as km             # imported on first use: it loads Numba code
    act = km.ACT_CODES[activation]
    n_layers = len(params) // 2
    Ws = [params[f"W{i}"] for i in range(n_layers)]
    bs = [params[f"b{i}"] for i in range(n_layers)]
    x = np.ascontiguousarray(x)
    N = km.check_mlp("mlp_forward", x, Ws, bs, act)    # then the kernels run unchecked
    rows = _chunk_rows([W.shape[1] for W in Ws])
    scratch = _Scratch(workspace, min(rows, N))
    big = N * max(W.shape[1] for W in Ws) * 8 >= KEEP_BYTES
    kept = _Scratch(None if big else workspace, N)     # the input of every layer, for backward
    hs = [x] + [kept.get(f"h{i + 1}", N, W.shape[1]) for i, W in enumerate(Ws[:-1])]
    y = np.empty((N, Ws[-1].shape[1]))
    for r0 in range(0, N, rows):
        r1 = min(N, r0 + rows)
        for i in range(n_layers - 1):
            h_in, h_out = hs[i][r0:r1], hs[i + 1][r0:r1]       # row blocks: contiguous views
            if Ws[i].shape[0] <= km.SMALL:
                km.dense_small_in_forward_unchecked(h_in, Ws[i], bs[i], act, h_out)
            else:
                # BLAS, then bias and activation (not in place: a kernel whose input and
                # output overlap does not vectorize)
                pre = np.matmul(h_in, Ws[i], out=scratch.get("pre", r1 - r0, Ws[i].shape[1]))
                km.bias_act_forward_unchecked(pre, bs[i], act, h_out)
        np.matmul(hs[-1][r0:r1], Ws[-1], out=y[r0:r1])
    y += bs[-1]
    return y, {"hs": hs, "params": params, "act": act, "n_layers": n_layers, "rows": rows,
               "workspace": workspace}


def _mlp_backward_kernels(dy, cache):
    from .kernels import mlp as km
    hs, rows = cache["hs"], cache["rows"]
    N = hs[0].shape[0]                 # the forward pass's batch: dy must match it, not itself
    # the kernels below run unchecked: the weights (the caller may have replaced one since the
    # forward pass), the kept activations and dy must still fit together
    params, n_layers = cache["params"], cache["n_layers"]
    Ws = [params[f"W{i}"] for i in range(n_layers)]
    bs = [params[f"b{i}"] for i in range(n_layers)]
    km.check_mlp("mlp_backward", hs[0], Ws, bs, cache["act"])
    dy_shape = km.ck.f64("mlp_backward", "dy", dy, 2)
    if any(h.shape != (N, W.shape[0]) for h, W in zip(hs, Ws)) or dy_shape != (N, Ws[-1].shape[1]):
        raise ValueError(f"mlp_backward: dy: expected shape {(hs[0].shape[0], Ws[-1].shape[1])} "
                         f"(the output of the forward pass, same weights), got {dy.shape}.")
    scratch = _Scratch(cache["workspace"], min(rows, N))
    if N <= rows:
        return _mlp_backward_rows(dy, hs, cache, km, {}, scratch)
    grads, dx = {}, np.empty(hs[0].shape)
    for r0 in range(0, N, rows):
        r1 = min(N, r0 + rows)
        dx[r0:r1] = _mlp_backward_rows(dy[r0:r1], [h[r0:r1] for h in hs], cache, km, grads,
                                       scratch)[0]
    return dx, grads


def _mlp_backward_rows(dpre, hs, cache, km, grads, scratch):
    """Backward over one block of rows; adds the block's parameter gradients into ``grads``."""
    params, act = cache["params"], cache["act"]
    n = dpre.shape[0]

    def add(key, value):
        if key in grads:
            grads[key] += value
        else:
            grads[key] = value

    db = None                                           # column sums of dpre, when known
    for i in reversed(range(cache["n_layers"])):       # dpre: dL/d(pre-activation) of layer i
        W, h = params[f"W{i}"], hs[i]
        if db is None:
            db = dpre.sum(axis=0)
        if i == 0:
            if W.shape[0] <= km.SMALL:
                dx, dW = km.dense_small_in_backward_unchecked(dpre, h, W)
            else:
                dx, dW = dpre @ W.T, h.T @ dpre
            add("W0", dW)
            add("b0", db)
            return dx, grads
        if W.shape[1] <= km.SMALL:
            dpre_prev, db_prev, dW, db = km.dense_small_out_backward_unchecked(
                dpre, h, W, act, scratch.get("dpre", n, W.shape[0]))
        else:
            dW = h.T @ dpre
            dh = np.matmul(dpre, W.T, out=scratch.get("dh", n, W.shape[0]))
            if i == 1 and params["W0"].shape[0] <= km.SMALL:    # the thin first layer: one pass
                dx, dW0, db0 = km.act_small_in_backward_unchecked(dh, h, hs[0], params["W0"], act)
                add(f"W{i}", dW)
                add(f"b{i}", db)
                add("W0", dW0)
                add("b0", db0)
                return dx, grads
            dpre_prev, db_prev = km.act_backward_unchecked(dh, h, act)
        add(f"W{i}", dW)
        add(f"b{i}", db)
        dpre, db = dpre_prev, db_prev


class MLP:
    """A multilayer perceptron with explicit caches and hand-written backward.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths ``[in, hidden..., out]``, at least two entries.
    activation : {"tanh", "relu", "leaky_relu", "softplus"}
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
        sizes = [int(s) for s in sizes]
        if len(sizes) < 2 or any(s < 1 for s in sizes):
            raise ValueError(f"sizes: expected at least two positive layer widths, got {sizes}.")
        self.sizes = sizes
        self.activation = _check_activation(activation)
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
        y, self._cache = mlp_forward(x, self.params, self.activation)
        self._n = x.shape[0]
        return y

    def backward(self, dy):
        """Backpropagate ``dy`` (N, out) through the last forward; return ``dx`` and fill grads."""
        if self._cache is None:
            raise RuntimeError("MLP.backward: call forward() first.")
        dy = as_batch(dy, self.sizes[-1], "dy")
        if dy.shape[0] != self._n:
            raise ValueError(f"dy: expected shape ({self._n}, {self.sizes[-1]}) to match the last "
                             f"forward call, got {dy.shape}.")
        dx, self.grads = mlp_backward(dy, self._cache)
        return dx

    def __repr__(self):
        return f"MLP({self.sizes}, activation={self.activation!r})"
