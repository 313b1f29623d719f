"""The MLP of :mod:`nfscratch.nn` on the kernel path (backend "numba"): same numbers, faster.

A layer with at most ``kernels.mlp.SMALL`` inputs (the coupling conditioner's first layer) or
outputs (its last) runs in a Numba kernel fused with the bias, the activation and, backward, the
activation's derivative and the bias gradient; the square hidden products stay with BLAS
(``np.matmul``), whose speed no hand loop matches. The batch is cut into blocks of rows of
``CHUNK_BYTES`` per layer, so that a block's activations are still in cache when the next layer
reads them. With a ``workspace`` (a dict the caller owns: a coupling layer has one) the scratch
arrays and the activations kept for the backward pass are reused from one pass to the next
instead of being allocated again. Why each of these choices, with measurements:
``benchmarks/README.md``, "Why the kernels look the way they do".

A three-layer MLP with a thin input and a thin output (the coupling conditioner, 1 -> 64 -> 64
-> 2) runs instead as one kernel per direction (:mod:`nfscratch.kernels.mlp_fused`: row blocks
that stay in L1 through all three layers, the square product in register tiles), which was
faster than BLAS plus the thin-layer kernels at batch 512 and 4096 (``benchmarks/README.md``,
"Coupling kernel, batch-major tiles").

The weights, the input and the upstream gradient are checked here once per pass (float64,
C-contiguous, sizes that chain, ``dy`` against the forward pass's batch); every other array a
kernel sees is built here, so the compiled kernels ``kernels.mlp._<name>`` are called directly.
"""
import functools

import numpy as np

from .kernels import _checks as ck     # plain NumPy: does not import Numba

#: Activations with a kernel (softplus runs on the NumPy path).
KERNEL_ACTIVATIONS = ("tanh", "relu", "leaky_relu")
CHUNK_BYTES = 1024 * 1024      # per layer and block of rows (2048 rows of a 64-wide layer)
KEEP_BYTES = 4 * 1024 * 1024   # activations above this size per array are not kept for reuse


def net_forward(x, params, activation, workspace=None):
    """:func:`mlp_forward` where the activation has a kernel, else :func:`nfscratch.nn.mlp_forward`
    (softplus); :func:`net_backward` follows whichever ran."""
    if activation in KERNEL_ACTIVATIONS:
        return mlp_forward(x, params, activation, workspace)
    from .nn import mlp_forward as numpy_forward
    return numpy_forward(x, params, activation)


def net_backward(dy, cache):
    """Backward of :func:`net_forward`: ``(dx, grads)``."""
    if isinstance(cache, MLPCache):
        return mlp_backward(dy, cache)
    from .nn import mlp_backward as numpy_backward
    return numpy_backward(dy, cache)


@functools.cache
def _km():
    from .kernels import mlp           # imported on first use (it loads Numba code), then cached
    return mlp


@functools.cache
def _kf():
    from .kernels import mlp_fused
    return mlp_fused


@functools.lru_cache(maxsize=None)
def _param_names(n_layers):
    """``("W0", "b0", "W1", "b1", ...)``: built once per depth, not on every pass."""
    return tuple(f"{kind}{i}" for i in range(n_layers) for kind in "Wb")


class MLPCache:
    """What :func:`mlp_backward` needs from :func:`mlp_forward`: the input of every layer, the
    weights and biases the pass used, the activation code, the rows per block and whether the
    fused three-layer kernel made it (its backward is then the fused kernel's too)."""

    __slots__ = ("hs", "Ws", "bs", "act", "rows", "workspace", "fused")

    def __init__(self, hs, Ws, bs, act, rows, workspace, fused=False):
        self.hs, self.Ws, self.bs, self.act, self.rows = hs, Ws, bs, act, rows
        self.workspace, self.fused = workspace, fused


class _Scratch:
    """Arrays of (rows, width) kept in ``workspace`` between calls (new ones without it).

    The activations kept for the backward pass are overwritten by the next pass that uses the
    same workspace -- exactly when the layer's cache is replaced, so ``backward`` still refers
    to the most recent pass.
    """

    def __init__(self, workspace, rows):
        self.store = {} if workspace is None else workspace.setdefault("scratch", {})
        self.rows = rows

    def get(self, name, n, width):
        a = self.store.get((name, width))
        if a is None or a.shape[0] < self.rows:
            a = self.store[(name, width)] = np.empty((self.rows, width))
        return a[:n]


def mlp_forward(x, params, activation, workspace=None):
    """:func:`nfscratch.nn.mlp_forward` with the kernels; returns ``(y, MLPCache)``."""
    km = _km()
    act = km.ACT_CODES[activation]
    n_layers = len(params) // 2
    names = _param_names(n_layers)
    Ws = [params[name] for name in names[0::2]]
    bs = [params[name] for name in names[1::2]]
    x = np.ascontiguousarray(x)
    if not x.flags.writeable:          # a read-only array would compile another kernel variant
        x = x.copy()
    N = km._check_layers("mlp_forward", x, Ws, bs)
    widest = max([W.shape[1] for W in Ws])
    rows = max(16, CHUNK_BYTES // (8 * widest))
    big = N * widest * 8 >= KEEP_BYTES
    kept = _Scratch(None if big else workspace, N)     # the input of every layer, for backward
    hs = [x] + [kept.get(f"h{i + 1}", N, W.shape[1]) for i, W in enumerate(Ws[:-1])]
    y = np.empty((N, Ws[-1].shape[1]))
    if n_layers == 3 and Ws[0].shape[0] <= km.SMALL and Ws[2].shape[1] <= km.SMALL:
        _kf()._mlp3_forward(x, Ws[0], bs[0], Ws[1], bs[1], Ws[2], bs[2], act, hs[1], hs[2], y)
        return y, MLPCache(hs, Ws, bs, act, rows, workspace, fused=True)
    scratch = _Scratch(workspace, min(rows, N))
    for r0 in range(0, N, rows):
        r1 = min(N, r0 + rows)
        for i in range(n_layers - 1):
            h_in, h_out = hs[i][r0:r1], hs[i + 1][r0:r1]       # row blocks: contiguous views
            if Ws[i].shape[0] <= km.SMALL:
                km._dense_small_in_forward(h_in, Ws[i], bs[i], act, h_out)
            else:
                # BLAS, then bias and activation (into another array: a kernel whose input and
                # output overlap does not vectorize)
                pre = np.matmul(h_in, Ws[i], out=scratch.get("pre", r1 - r0, Ws[i].shape[1]))
                km._bias_act_forward(pre, bs[i], act, h_out)
        np.matmul(hs[-1][r0:r1], Ws[-1], out=y[r0:r1])
    y += bs[-1]
    return y, MLPCache(hs, Ws, bs, act, rows, workspace)


def mlp_backward(dy, cache):
    """:func:`nfscratch.nn.mlp_backward` for a cache of :func:`mlp_forward`: ``(dx, grads)``."""
    km = _km()
    hs, Ws, rows = cache.hs, cache.Ws, cache.rows
    N = hs[0].shape[0]                 # the forward pass's batch: dy must match it
    dy_shape = ck.f64("mlp_backward", "dy", dy, 2)
    if any(h.shape != (N, W.shape[0]) for h, W in zip(hs, Ws)) or dy_shape != (N, Ws[-1].shape[1]):
        raise ck.KernelArgumentError(f"mlp_backward: dy: expected shape {(N, Ws[-1].shape[1])} "
                                     f"(the output of the forward pass), got {dy_shape}.")
    if cache.fused:
        (W0, W1, W2), (x, h1, h2), kf = Ws, hs, _kf()
        dx, *grads = kf._backward_outputs(x, W0, W1, W2)
        kf._mlp3_backward(dy, x, h1, h2, W0, W1, W2, cache.act, dx, *grads)
        return dx, dict(zip(_param_names(3), grads))
    scratch = _Scratch(cache.workspace, min(rows, N))
    if N <= rows:
        return _backward_rows(dy, hs, cache, km, {}, scratch)
    grads, dx = {}, np.empty(hs[0].shape)
    for r0 in range(0, N, rows):
        r1 = min(N, r0 + rows)
        dx[r0:r1] = _backward_rows(dy[r0:r1], [h[r0:r1] for h in hs], cache, km, grads,
                                   scratch)[0]
    return dx, grads


def _backward_rows(dpre, hs, cache, km, grads, scratch):
    """Backward over one block of rows; adds the block's parameter gradients into ``grads``."""
    Ws, act = cache.Ws, cache.act
    n = dpre.shape[0]

    def add(key, value):
        if key in grads:
            grads[key] += value
        else:
            grads[key] = value

    db = None                                           # column sums of dpre, when known
    for i in reversed(range(len(Ws))):                  # dpre: dL/d(pre-activation) of layer i
        W, h = Ws[i], hs[i]
        if db is None:
            db = dpre.sum(axis=0)
        if i == 0:
            if W.shape[0] <= km.SMALL:
                dx, dW = km._dense_small_in_backward(dpre, h, W)
            else:
                dx, dW = dpre @ W.T, h.T @ dpre
            add("W0", dW)
            add("b0", db)
            return dx, grads
        if W.shape[1] <= km.SMALL:
            dpre_prev, db_prev, dW, db = km._dense_small_out_backward(
                dpre, h, W, act, scratch.get("dpre", n, W.shape[0]))
        else:
            dW = h.T @ dpre
            dh = np.matmul(dpre, W.T, out=scratch.get("dh", n, W.shape[0]))
            if i == 1 and Ws[0].shape[0] <= km.SMALL:         # the thin first layer: one pass
                dx, dW0, db0 = km._act_small_in_backward(dh, h, hs[0], Ws[0], act)
                add(f"W{i}", dW)
                add(f"b{i}", db)
                add("W0", dW0)
                add("b0", db0)
                return dx, grads
            dpre_prev, db_prev = km._act_backward(dh, h, act)
        add(f"W{i}", dW)
        add(f"b{i}", db)
        dpre, db = dpre_prev, db_prev
