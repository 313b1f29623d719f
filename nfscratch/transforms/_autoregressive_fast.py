"""The kernel path of MAF/IAF (backend "numba"): same math as ``autoregressive.py``.

* one pass: the MADE runs through ``_nn_fast.net_forward``/``net_backward`` (Numba for its thin
  layers, BLAS for the square ones) on the masked weights, and the elementwise affine part is the
  affine-coupling kernel with every feature transformed (``ib = 0..D-1``): the IAF form
  ``y = u e^s + t`` is exactly a coupling's forward step whose conditioner reads all of ``u``
  through the masks, the MAF form ``z = (x - t) e^{-s}`` a coupling's inverse step;
* sequential direction: :func:`nfscratch.kernels.autoregressive.maf_forward_nb`, one fused kernel,
  and its backward :func:`~nfscratch.kernels.autoregressive.maf_forward_backward_nb`, the
  implicit-function back-substitution of :func:`.autoregressive.iaf_inverse_backward` done as
  one backward pass in reverse order of degree (instead of D one-pass backward passes).
"""
import weakref

import numpy as np

from .. import _nn_fast
from .autoregressive import iaf_inverse, maf_forward


def _kernels():
    from ..kernels import autoregressive as ka, coupling as kc, mlp as km
    return ka, kc, km


def _masked(layer):
    return {key: (value * layer.masks[int(key[1:])] if key[0] == "W" else value)
            for key, value in layer.params.items()}


_workspaces = weakref.WeakKeyDictionary()    # layer -> the scratch arrays of its MADE passes


def one_pass(layer, u, shift_first):
    _, kc, _ = _kernels()
    ib = np.arange(layer.dim, dtype=np.int64)
    u = np.ascontiguousarray(u)
    out, net_cache = _nn_fast.net_forward(u, _masked(layer), layer.activation,
                                          _workspaces.setdefault(layer, {}))     # (N, 2D)
    out = np.ascontiguousarray(out)
    if shift_first:          # the MAF form z = (u - t) e^{-s}: the coupling's inverse step
        y, log_det, e, ds_draw = kc.affine_elementwise_inverse_nb(u, out, ib, layer.s_max)
    else:
        y, log_det, e, ds_draw = kc.affine_elementwise_forward_nb(u, out, ib, layer.s_max)
    # the inverse step's backward reads its output, the forward step's its input
    return y, log_det, {"n": u.shape[0], "kernels": "one_pass", "shift_first": shift_first,
                        "p": y if shift_first else u, "ib": ib, "e": e, "ds_draw": ds_draw,
                        "net_cache": net_cache, "masks": layer.masks}


def one_pass_backward(cache, dy, dlog_det):
    _, kc, _ = _kernels()
    step_backward = (kc.affine_elementwise_inverse_backward_nb if cache["shift_first"]
                     else kc.affine_elementwise_backward_nb)
    du, dout = step_backward(np.ascontiguousarray(dy), np.ascontiguousarray(dlog_det),
                             cache["p"], cache["ib"], cache["e"], cache["ds_draw"])
    du_net, grads = _nn_fast.net_backward(dout, cache["net_cache"])
    du += du_net
    for l, M in enumerate(cache["masks"]):
        grads[f"W{l}"] = grads[f"W{l}"] * M
    return du, grads


def sequential(layer, y, shift_first):
    ka, _, km = _kernels()
    if layer.activation not in km.ACT_CODES:             # no kernel for it: the teaching code
        solve = maf_forward if shift_first else iaf_inverse
        return solve(y, layer.params, layer.masks, layer.order, layer.activation, layer.s_max)
    weights, sizes = ka.pack_made(layer.params, layer.masks)
    u, log_det = ka.maf_forward_nb(np.ascontiguousarray(y), weights, sizes,
                                   ka.unit_degrees(layer.masks, layer.order), layer.order,
                                   km.ACT_CODES[layer.activation], layer.s_max, shift_first)
    # the backward kernel recomputes the one pass at u: nothing else is kept
    return u, log_det, {"n": y.shape[0], "kernels": "sequential", "u": u,
                        "shift_first": shift_first}


def sequential_backward(layer, cache, du, dlog_det):
    ka, _, km = _kernels()
    weights, sizes = ka.pack_made(layer.params, layer.masks)
    dz, dweights = ka.maf_forward_backward_nb(
        np.ascontiguousarray(du), np.ascontiguousarray(dlog_det), cache["u"], weights,
        ka.pack_masks(layer.masks), sizes, ka.unit_degrees(layer.masks, layer.order), layer.order,
        km.ACT_CODES[layer.activation], layer.s_max, cache["shift_first"])
    return dz, ka.unpack_made(dweights, sizes)


# -- IAFChain: the one pass of all K layers in one kernel call --------------------------------
def _chain_args(chain):
    ka, _, km = _kernels()
    masks = _chain_masks.get(chain)
    if masks is None:            # the masks never change: packed once per chain
        masks = _chain_masks[chain] = np.stack([ka.pack_masks(t.masks) for t in chain.sublayers()])
    sizes = np.array([chain.dim, *chain.hidden, 2 * chain.dim], dtype=np.int64)
    return np.ascontiguousarray(chain.theta), masks, sizes, km.ACT_CODES[chain.activation]


_chain_masks = weakref.WeakKeyDictionary()   # chain -> its layers' masks, packed (K, n)


def chain_forward(chain, z):
    ka, _, km = _kernels()
    if chain.activation not in km.ACT_CODES:             # no kernel for it: the teaching code
        return _iaf_chain().iaf_chain_forward(z, *chain._layer_args(), chain.activation,
                                              chain.s_max)
    weights, masks, sizes, act = _chain_args(chain)
    z = np.ascontiguousarray(z)
    shape = (len(chain), int(sizes[:-1].sum()), z.shape[0])
    kept = _chain_kept.get(chain)
    # fresh memory costs page faults on first write (benchmarks/README.md): the arrays of the
    # last pass are reused; its cache is superseded by this pass anyway
    if kept is None or kept[0].shape != shape:
        kept = _chain_kept[chain] = ka.chain_arrays(shape[0], chain.dim, shape[1], shape[2])
    acts, e, dd, log_dets = kept
    x, log_det = ka._iaf_chain_forward(z, weights, masks, sizes, act, chain.s_max, *kept)
    return x, log_det, {"n": z.shape[0], "kernels": "iaf_chain", "acts": acts, "e": e, "dd": dd,
                        "log_dets": log_dets}


_chain_kept = weakref.WeakKeyDictionary()    # chain -> the arrays its last one pass keeps


def chain_backward(chain, cache, dx, dlog_det):
    ka, _, _ = _kernels()
    weights, masks, sizes, act = _chain_args(chain)
    # the arrays were built here or checked by Transform.backward (shapes (N, D) and (N,))
    dz, dweights = ka._iaf_chain_backward(np.ascontiguousarray(dx, dtype=np.float64),
                                          np.ascontiguousarray(dlog_det, dtype=np.float64),
                                          weights, masks, sizes, act, cache["acts"], cache["e"],
                                          cache["dd"])
    return dz, chain._views(dweights)


def chain_inverse(chain, x):
    """The K sequential solves, layer K-1 first, each by the sequential kernel of its layer."""
    layers, K = chain.sublayers(), len(chain)
    caches, log_dets = [None] * K, [None] * K
    log_det = np.zeros(x.shape[0])
    for k in reversed(range(K)):
        x, log_dets[k], caches[k] = layers[k]._sequential(x)
        log_det += log_dets[k]
    return x, log_det, {"n": x.shape[0], "kernels": "iaf_chain_inverse", "layers": caches,
                        "log_dets": log_dets}


def chain_inverse_backward(chain, cache, dz, dlog_det):
    grads = []
    for layer, layer_cache in zip(chain.sublayers(), cache["layers"]):
        dz, g = layer._sequential_backward(dz, dlog_det, layer_cache)
        grads.append(g)
    return dz, chain._stack(grads)


def chain_inputs(cache):
    """Every layer's input (base side), as K new (N, D) arrays in layer order."""
    if cache["kernels"] == "iaf_chain":
        D = cache["e"].shape[1]
        return [np.array(a[:D].T, order="C") for a in cache["acts"]]
    return [c["u"] for c in cache["layers"]]


def _iaf_chain():
    from . import iaf_chain
    return iaf_chain
