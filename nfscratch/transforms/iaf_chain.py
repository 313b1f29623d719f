r"""K IAF layers as one transform, with the orders of consecutive layers reversed.

Nothing new in the math: layer ``k`` is the :class:`~.autoregressive.IAF` map

.. math::

    u_{k+1} = u_k\, e^{s_k(u_k)} + t_k(u_k), \qquad u_0 = z,\ x = u_K, \qquad
    \log|\det \partial x/\partial z| = \textstyle\sum_k \sum_i s_{k,i},

each ``s_k, t_k`` one pass of the layer's own MADE, autoregressive in the layer's order. The
backward pass runs the layers last to first, each with the one-pass backward of
:func:`~.autoregressive.iaf_forward_backward` (every layer gets the same ``dlog_det``, since
the total log-det is a plain sum). The inverse undoes the layers last to first, each by the
sequential solve of :func:`~.autoregressive.iaf_inverse` (D MADE passes), and its backward
is the implicit-function back-substitution of :func:`~.autoregressive.iaf_inverse_backward`.

Why a chain: at D = 2 a layer's MADE is a few thousand flops per sample, so running the layers
one by one costs far more in Python than in arithmetic. On the ``"numba"`` backend the one-pass
direction of all K layers is one kernel call forward and one backward
(:mod:`nfscratch.kernels.autoregressive`), with the numbers of the loops below (the tests
compare them). The parameters of all layers are one array, so an optimizer updates them in one
call, and ``chain[k]`` is layer ``k`` as an :class:`~.autoregressive.IAF` whose parameters are
views of that array.

References
----------
Kingma, Salimans, Jozefowicz, Chen, Sutskever, Welling, "Improved Variational Inference with
Inverse Autoregressive Flow", NeurIPS 2016, arXiv:1606.04934.
"""
import numpy as np

from .._validate import as_rng, check_positive_int
from ..config import use_kernels
from .autoregressive import IAF, iaf_inverse, iaf_inverse_backward, iaf_forward, iaf_forward_backward
from .base import LayerChain

__all__ = ["iaf_chain_forward", "iaf_chain_backward", "iaf_chain_inverse",
           "iaf_chain_inverse_backward", "IAFChain"]


def iaf_chain_forward(z, params, masks, activation="tanh", s_max=2.0):
    """Apply K IAF layers, layer 0 first: :func:`~.autoregressive.iaf_forward` K times.

    Parameters
    ----------
    z : ndarray, shape (N, D)
    params, masks : list
        Layer ``k``'s MADE parameters (dict) and masks (list), in layer order.
    activation : str
    s_max : float

    Returns
    -------
    x : ndarray, shape (N, D)
    log_det : ndarray, shape (N,)
        The layers' log-dets summed in the order the layers are applied.
    cache : dict
        ``"layers"``: each layer's cache; ``"log_dets"``: each layer's log-det (N,).
    """
    caches, log_dets = [], []
    log_det = np.zeros(z.shape[0])
    for p, m in zip(params, masks):
        z, ld, cache = iaf_forward(z, p, m, activation, s_max)
        log_det += ld
        caches.append(cache)
        log_dets.append(ld)
    return z, log_det, {"layers": caches, "log_dets": log_dets}


def iaf_chain_backward(dx, dlog_det, cache):
    """Backward of :func:`iaf_chain_forward`, last layer first: ``(dz, [grads of layer k])``."""
    grads = [None] * len(cache["layers"])
    for k in reversed(range(len(grads))):
        dx, grads[k] = iaf_forward_backward(dx, dlog_det, cache["layers"][k])
    return dx, grads


def iaf_chain_inverse(x, params, masks, orders, activation="tanh", s_max=2.0):
    """Undo K IAF layers, layer K-1 first: :func:`~.autoregressive.iaf_inverse` K times.

    ``orders[k]`` is layer k's order. Returns ``(z, log_det, cache)`` as
    :func:`iaf_chain_forward` does, the log-dets ``log|det dz/dx|`` summed in the order the
    layers are undone and listed in layer order.
    """
    K = len(params)
    caches, log_dets = [None] * K, [None] * K
    log_det = np.zeros(x.shape[0])
    for k in reversed(range(K)):
        x, log_dets[k], caches[k] = iaf_inverse(x, params[k], masks[k], orders[k], activation, s_max)
        log_det += log_dets[k]
    return x, log_det, {"layers": caches, "log_dets": log_dets}


def iaf_chain_inverse_backward(dz, dlog_det, cache):
    """Backward of :func:`iaf_chain_inverse`, layer 0 first (the reverse of the pass)."""
    grads = []
    for layer_cache in cache["layers"]:
        dz, g = iaf_inverse_backward(dz, dlog_det, layer_cache)
        grads.append(g)
    return dz, grads


def _fast():
    from . import _autoregressive_fast   # the kernel path (backend "numba"), imported on first use
    return _autoregressive_fast


class IAFChain(LayerChain):
    """K :class:`~.autoregressive.IAF` layers as one transform: ``x = f_{K-1}(... f_0(z))``.

    The numbers are those of the K layers applied one after another (the tests compare them to
    ~1e-12); the chain is faster on the ``"numba"`` backend because the one-pass direction (sampling
    with its log-det, what reverse-KL training uses) of all K layers is one kernel call.

    Parameters
    ----------
    dim : int
        Number of features D >= 2.
    n_layers : int
        K.
    hidden : sequence of int
        Every layer's MADE hidden widths (each >= D - 1).
    activation : str
    s_max : float
        Bound on the log-scales.
    orders : "reverse", "random" or list of K permutations
        ``"reverse"``: natural and reversed orders alternate (layer 0 natural); ``"random"``:
        layer k draws its order from ``seed + k``; a list gives every layer's order.
    hidden_degrees : {"cyclic", "random"}
    seed : int
        Layer k gets ``seed + k`` (its random order / random hidden degrees).
    rng : numpy.random.Generator or int, optional
        Initial weights, drawn layer after layer exactly as K ``IAF(...)`` layers would
        (as :func:`nfscratch.models.iaf` builds them).
    zero_init : bool
        Every layer starts as the identity.

    Notes
    -----
    ``params`` are ``W0, b0, W1, ...`` with a leading axis K (``W0`` is (K, D, H_1)): views of one
    array ``theta`` (K, n) whose row k holds layer k's parameters one after another. ``chain[k]``
    (``len(chain)`` = K) is layer k, an :class:`~.autoregressive.IAF` whose ``params`` are views of
    row k. A :class:`~nfscratch.flow.Flow` numbers, plots and gradient-checks the K layers one by one.

    Examples
    --------
    >>> chain = IAFChain(2, 3, hidden=[4], rng=0, zero_init=False)
    >>> len(chain), chain[1].order.tolist(), chain.params["W0"].shape
    (3, [1, 0], (3, 2, 4))
    >>> x, log_det = chain.forward(np.zeros((5, 2)))
    >>> z, log_det_inv = chain.inverse(x)
    >>> bool(np.allclose(z, 0.0) and np.allclose(log_det, -log_det_inv))
    True
    """

    def __init__(self, dim, n_layers, hidden=(64, 64), activation="tanh", s_max=2.0,
                 orders="reverse", hidden_degrees="cyclic", seed=0, rng=None, zero_init=True):
        super().__init__(dim)
        K = check_positive_int(n_layers, "n_layers")
        if isinstance(orders, str):
            if orders not in ("reverse", "random"):
                raise ValueError(f"orders: expected 'reverse', 'random' or a list of {K} "
                                 f"permutations, got {orders!r}.")
            orders = ["random" if orders == "random" else ("natural", "reverse")[k % 2]
                      for k in range(K)]
        elif len(orders) != K:
            raise ValueError(f"orders: expected one order per layer ({K}), got {len(orders)}.")
        self.seed, rng = int(seed), as_rng(rng)      # one generator, drawn from layer after layer
        layers = [IAF(dim, hidden=hidden, order=orders[k], activation=activation, s_max=s_max,
                      hidden_degrees=hidden_degrees, seed=self.seed + k, rng=rng,
                      zero_init=zero_init)
                  for k in range(K)]
        self.hidden, self.activation, self.s_max = layers[0].hidden, activation, layers[0].s_max
        self.hidden_degrees = hidden_degrees
        self._layers = layers
        self._shapes = IAF.param_shapes(self.dim, self.hidden)     # one layer's, in param order
        n = layers[0].n_params()
        theta = np.zeros(K * n).reshape(K, n)
        for k, layer in enumerate(layers):
            theta[k] = np.concatenate([a.ravel() for a in layer.params.values()])
        self._use_theta(theta)

    @classmethod
    def from_layers(cls, layers):
        """A chain with the parameters (copied) of consecutive :class:`~.autoregressive.IAF`
        ``layers`` that share dim, hidden widths, activation, s_max and hidden degrees (and are
        not conditional): ``Flow([IAFChain.from_layers(layers)])`` computes what
        ``Flow(layers)`` does."""
        layers = list(layers)
        if not layers or not all(type(t) is IAF for t in layers):
            raise TypeError(f"layers: expected a non-empty list of IAF layers, got "
                            f"{[type(t).__name__ for t in layers]}.")
        first = layers[0]
        keys = ("dim", "hidden", "activation", "s_max", "hidden_degrees")
        shared = {key: getattr(first, key) for key in keys}
        for k, t in enumerate(layers):
            if t.context_dim or {key: getattr(t, key) for key in keys} != shared:
                raise ValueError(f"layers: layer {k} differs from layer 0 in {list(keys)} or is "
                                 "conditional; a chain needs the same MADE shape in every layer.")
        chain = cls(first.dim, len(layers), hidden=first.hidden, activation=first.activation,
                    s_max=first.s_max, orders=[t.order.tolist() for t in layers],
                    hidden_degrees=first.hidden_degrees, seed=first.seed, rng=0)
        for k, t in enumerate(layers):
            if not all(np.array_equal(a, b) for a, b in zip(chain[k].masks, t.masks)):
                raise ValueError(f"layers: layer {k}'s masks differ from those its config rebuilds "
                                 f"(random hidden degrees need seeds {first.seed} + k).")
            for name, p in t.params.items():
                chain[k].params[name][...] = p
        return chain

    def _use_theta(self, theta):
        """Make ``theta`` (K, n) the parameters' memory: the chain's and every layer's views."""
        self._theta = theta
        g = self._grad_theta = np.zeros_like(theta)
        self.params, self.grads = self._views(theta), self._views(g)
        self._layer_grads = []
        for k, layer in enumerate(self._layers):
            for name, view in self._views(theta[k:k + 1]).items():
                layer.params[name] = view[0]     # the layer's dict is its MADE's: both see it
            layer.grads = {name: view[0] for name, view in self._views(g[k:k + 1]).items()}
            self._layer_grads.append(dict(layer.grads))

    @property
    def theta(self):
        """All parameters, (K, n): row k is layer k's ``W0, b0, W1, ...`` flattened in turn."""
        return self._theta

    def _views(self, rows):
        """``{name: (K, *shape)}`` views of the parameter blocks of ``rows`` (K, n)."""
        out, pos = {}, 0
        for name, shape in self._shapes.items():
            size = int(np.prod(shape))
            out[name] = rows[:, pos:pos + size].reshape(rows.shape[0], *shape)
            pos += size
        return out

    def config(self):
        return {"dim": self.dim, "n_layers": len(self), "hidden": self.hidden,
                "activation": self.activation, "s_max": self.s_max,
                "orders": [t.order.tolist() for t in self._layers],
                "hidden_degrees": self.hidden_degrees, "seed": self.seed}

    @classmethod
    def param_shapes(cls, dim, n_layers, hidden=(64, 64), **config):
        K = check_positive_int(n_layers, "n_layers")
        return {name: (K, *shape) for name, shape in IAF.param_shapes(dim, hidden).items()}

    def __len__(self):
        return len(self._layers)

    def __getitem__(self, k):
        return self._layers[k]

    def _layer_args(self):
        return [t.params for t in self._layers], [t.masks for t in self._layers]

    # -- the passes: the loops above, or one kernel call ----------------------------------------
    def _forward(self, z):
        if use_kernels():
            return _fast().chain_forward(self, z)
        return iaf_chain_forward(z, *self._layer_args(), self.activation, self.s_max)

    def _backward(self, dx, dlog_det, cache):
        if "kernels" in cache:
            return _fast().chain_backward(self, cache, dx, dlog_det)
        dz, grads = iaf_chain_backward(dx, dlog_det, cache)
        return dz, self._stack(grads)

    def _inverse(self, x):
        if use_kernels():
            return _fast().chain_inverse(self, x)
        return iaf_chain_inverse(x, *self._layer_args(), [t.order for t in self._layers],
                                 self.activation, self.s_max)

    def _inverse_backward(self, dz, dlog_det, cache):
        if "kernels" in cache:
            return _fast().chain_inverse_backward(self, cache, dz, dlog_det)
        dx, grads = iaf_chain_inverse_backward(dz, dlog_det, cache)
        return dx, self._stack(grads)

    def _stack(self, grads):
        return {name: np.stack([g[name] for g in grads]) for name in self.params}

    # -- layer by layer ---------------------------------------------------------------------------
    def _trace(self, direction, p, token=None):
        out, log_det = self._run(direction, p, token)
        cache, K = self._cache, len(self)
        inputs = (_fast().chain_inputs(cache) if "kernels" in cache
                  else [c["u"] for c in cache["layers"]])
        if direction == "forward":      # layer k's output is layer k+1's input
            order, outs = range(K), inputs[1:] + [out]
        else:                           # undoing layer k (K-1 first) gives layer k's input
            order, outs = range(K - 1, -1, -1), inputs[::-1]
        return out, log_det, outs, [np.array(cache["log_dets"][k]) for k in order]

