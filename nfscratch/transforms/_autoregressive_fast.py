"""The kernel path of MAF/IAF (backend "numba"): same math as ``autoregressive.py``.

* one pass: the MADE runs through ``_nn_fast.net_forward``/``net_backward`` (Numba for its thin
  layers, BLAS for the square ones) on the masked weights, and the elementwise affine part is the
  affine-coupling kernel with every feature transformed (``ib = 0..D-1``): ``y = u e^s + t`` is
  exactly a coupling whose conditioner reads all of ``u`` through the masks;
* sequential direction: :func:`nfscratch.kernels.autoregressive.maf_forward_nb`, one fused kernel,
  and its backward :func:`~nfscratch.kernels.autoregressive.maf_forward_backward_nb`, the
  implicit-function back-substitution of :func:`.autoregressive.maf_forward_backward` done as
  one backward pass in reverse order of degree (instead of D one-pass backward passes).
"""
import weakref

import numpy as np

from .. import _nn_fast
from .autoregressive import maf_forward


def _kernels():
    from ..kernels import autoregressive as ka, coupling as kc, mlp as km
    return ka, kc, km


def _masked(layer):
    return {key: (value * layer.masks[int(key[1:])] if key[0] == "W" else value)
            for key, value in layer.params.items()}


_workspaces = weakref.WeakKeyDictionary()    # layer -> the scratch arrays of its MADE passes


def one_pass(layer, u):
    _, kc, _ = _kernels()
    ib = np.arange(layer.dim, dtype=np.int64)
    u = np.ascontiguousarray(u)
    out, net_cache = _nn_fast.net_forward(u, _masked(layer), layer.activation,
                                          _workspaces.setdefault(layer, {}))     # (N, 2D)
    y, log_det, e, ds_draw = kc.affine_elementwise_forward_nb(u, np.ascontiguousarray(out), ib,
                                                           layer.s_max)
    return y, log_det, {"n": u.shape[0], "kernels": "one_pass", "u": u, "ib": ib, "e": e,
                        "ds_draw": ds_draw, "net_cache": net_cache, "masks": layer.masks}


def one_pass_backward(cache, dy, dlog_det):
    _, kc, _ = _kernels()
    du, dout = kc.affine_elementwise_backward_nb(np.ascontiguousarray(dy),
                                              np.ascontiguousarray(dlog_det), cache["u"],
                                              cache["ib"], cache["e"], cache["ds_draw"])
    du_net, grads = _nn_fast.net_backward(dout, cache["net_cache"])
    du += du_net
    for l, M in enumerate(cache["masks"]):
        grads[f"W{l}"] = grads[f"W{l}"] * M
    return du, grads


def sequential(layer, y):
    ka, _, km = _kernels()
    if layer.activation not in km.ACT_CODES:             # no kernel for it: the teaching code
        return maf_forward(y, layer.params, layer.masks, layer.order, layer.activation,
                           layer.s_max)
    weights, sizes = ka.pack_made(layer.params, layer.masks)
    u, log_det = ka.maf_forward_nb(np.ascontiguousarray(y), weights, sizes,
                                   ka.unit_degrees(layer.masks, layer.order), layer.order,
                                   km.ACT_CODES[layer.activation], layer.s_max)
    # the backward kernel recomputes the one pass at u: nothing else is kept
    return u, log_det, {"n": y.shape[0], "kernels": "sequential", "u": u}


def sequential_backward(layer, cache, du, dlog_det):
    ka, _, km = _kernels()
    weights, sizes = ka.pack_made(layer.params, layer.masks)
    dz, dweights = ka.maf_forward_backward_nb(
        np.ascontiguousarray(du), np.ascontiguousarray(dlog_det), cache["u"], weights,
        ka.pack_masks(layer.masks), sizes, ka.unit_degrees(layer.masks, layer.order), layer.order,
        km.ACT_CODES[layer.activation], layer.s_max)
    return dz, ka.unpack_made(dweights, sizes)
