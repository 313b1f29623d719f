"""The kernel path of MAF/IAF (backend "numba"): same math as ``autoregressive.py``.

* one pass: the MADE runs through ``_nn_fast.net_forward``/``net_backward`` (Numba for its thin
  layers, BLAS for the square ones) on the masked weights, and the elementwise affine part is the
  affine-coupling kernel with every feature transformed (``ib = 0..D-1``): ``y = u e^s + t`` is
  exactly a coupling whose conditioner reads all of ``u`` through the masks;
* sequential direction: :func:`nfscratch.kernels.autoregressive.maf_forward_nb`, one fused kernel;
  its backward builds the one-pass cache at the solution and runs the implicit-function
  back-substitution of :func:`.autoregressive.maf_forward_backward` (D one-pass backward passes).
"""
import weakref

import numpy as np

from .. import _nn_fast
from .autoregressive import maf_forward, maf_forward_backward, maf_inverse


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
    hidden_deg = (np.concatenate(layer.net.degrees[1:]) if len(layer.net.degrees) > 1
                  else np.zeros(0, dtype=np.int64))
    u, log_det = ka.maf_forward_nb(y, weights, sizes, hidden_deg, layer.order,
                                   km.ACT_CODES[layer.activation], layer.s_max)
    # the one-pass cache at u is built only if a backward pass asks for it
    return u, log_det, {"n": y.shape[0], "kernels": "sequential", "u": u}


def sequential_backward(layer, cache, du, dlog_det):
    _, _, pass_cache = maf_inverse(cache["u"], layer.params, layer.masks, layer.activation,
                                   layer.s_max)
    return maf_forward_backward(du, dlog_det, {**pass_cache, "order": layer.order})
