"""The coupling layers on the kernel path (backend "numba"); same math as coupling.py.

Each pass is the same two steps as the functions of :mod:`nfscratch.transforms.coupling`, with
the fast version of each: the conditioner through :mod:`nfscratch._nn_fast` (thin layers fused in
Numba, row blocks, scratch arrays reused from one pass to the next), the elementwise step through
:mod:`nfscratch.kernels.coupling`. The caches have the keys of the NumPy path's, plus
``"kernels"`` (the direction), which tells a layer's backward pass which path made them, and
``"a_cols"`` (the conditioning features as a slice where they are consecutive).

Per layer, the scratch arrays and the mask's index split are kept here, in a table keyed weakly
by the layer (they go when the layer goes), so the layer object holds none of it.
"""
import functools
import math
import weakref

import numpy as np

from .. import _nn_fast
from . import coupling          # (coupling.py imports this module: use its names at call time)
from .base import conditioner_input, split_conditioner_grad

_layers = weakref.WeakKeyDictionary()    # layer -> {"mask", "ia", "ib", "a_cols", "workspace"}
_F64 = np.dtype(np.float64)


@functools.cache
def _kc():
    from ..kernels import coupling as kc     # imported on first use (it loads Numba code), cached
    return kc


def _state(layer):
    st = _layers.get(layer)
    if st is None or st["mask"] is not layer.mask:
        ia, ib = coupling.split_mask(layer.mask)
        # the conditioning features as a slice when they are consecutive (the usual masks): a
        # slice reads and adds into p's columns 2-3x faster than an index array
        consecutive = ia.size > 0 and ia[-1] - ia[0] == ia.size - 1
        a_cols = slice(int(ia[0]), int(ia[-1]) + 1) if consecutive else ia
        st = _layers[layer] = {"mask": layer.mask, "ia": ia, "ib": ib, "a_cols": a_cols,
                               "workspace": {}}
    return st


def made(cache):
    """True when ``cache`` was made by this module (its backward must run here too)."""
    return "kernels" in cache


def _affine(layer, p, direction, context):
    kc, st = _kc(), _state(layer)
    p = np.ascontiguousarray(p)          # a Flow passes the previous layer's output as it is
    out, net_cache = _nn_fast.net_forward(conditioner_input(p[:, st["a_cols"]], context),
                                           layer.params, layer.activation, st["workspace"])                    # (N, 2 d_b)
    # The mask's indices and the conditioner's output are made here and p was validated by the
    # layer's caller, so the compiled kernel is called directly; the checked entry (which says
    # what is wrong) only when a cheap test fails.
    ib, s_max = st["ib"], layer.s_max
    if (p.dtype == _F64 and out.shape == (p.shape[0], 2 * ib.size) and type(s_max) is float
            and 0.0 < s_max < math.inf):
        res, log_det, e, ds_draw = kc._affine_elementwise_forward(
            p, out, ib, s_max, 1 if direction == "forward" else -1)
    elif direction == "forward":
        res, log_det, e, ds_draw = kc.affine_elementwise_forward_nb(p, out, ib, s_max)
    else:
        res, log_det, e, ds_draw = kc.affine_elementwise_inverse_nb(p, out, ib, s_max)
    base_side, e_key = (p, "exp_s") if direction == "forward" else (res, "exp_neg_s")
    return res, log_det, {"n": p.shape[0], "kernels": direction, "ia": st["ia"], "ib": st["ib"],
                          "a_cols": st["a_cols"], "z": base_side, e_key: e, "ds_draw": ds_draw,
                          "net_cache": net_cache}


def affine_forward(layer, z, context=None):
    return _affine(layer, z, "forward", context)


def affine_inverse(layer, x, context=None):
    return _affine(layer, x, "inverse", context)


def affine_backward(d_out, dlog_det, cache):
    """Backward of :func:`affine_forward` or :func:`affine_inverse`, whichever made ``cache``."""
    kc = _kc()
    d_out, dlog_det = np.ascontiguousarray(d_out), np.ascontiguousarray(dlog_det)
    forward = cache["kernels"] == "forward"
    z, ib, ds_draw = cache["z"], cache["ib"], cache["ds_draw"]
    e = cache["exp_s"] if forward else cache["exp_neg_s"]
    # the forward kernel made the cache's arrays: only the upstream gradients come from outside
    if (d_out.dtype == _F64 and dlog_det.dtype == _F64 and d_out.shape == z.shape
            and dlog_det.shape == (z.shape[0],)):
        d_in, dout = kc._affine_elementwise_backward(d_out, dlog_det, z, ib, e, ds_draw,
                                                     1 if forward else -1)
    elif forward:
        d_in, dout = kc.affine_elementwise_backward_nb(d_out, dlog_det, z, ib, e, ds_draw)
    else:
        d_in, dout = kc.affine_elementwise_inverse_backward_nb(d_out, dlog_det, z, ib, e, ds_draw)
    d_net, grads = _nn_fast.net_backward(dout, cache["net_cache"])
    d_in[:, cache["a_cols"]] += split_conditioner_grad(d_net, cache["ia"].size, grads)
    return d_in, grads


def additive_forward(layer, p, sign, context=None):
    """Forward (``sign = 1.0``) or inverse (``-1.0``) of an additive coupling."""
    kc, st = _kc(), _state(layer)
    p = np.ascontiguousarray(p)
    t, net_cache = _nn_fast.net_forward(conditioner_input(p[:, st["a_cols"]], context),
                                         layer.params, layer.activation, st["workspace"])                      # (N, d_b)
    out = kc.additive_elementwise_nb(p, np.ascontiguousarray(t), st["ib"], sign)
    return out, np.zeros(p.shape[0]), {"n": p.shape[0], "kernels": sign, "ia": st["ia"],
                                       "ib": st["ib"], "a_cols": st["a_cols"],
                                       "net_cache": net_cache}


def additive_backward(d_out, cache):
    kc = _kc()
    d_in, dt = kc.additive_elementwise_backward_nb(np.ascontiguousarray(d_out), cache["ib"], cache["kernels"])
    d_net, grads = _nn_fast.net_backward(dt, cache["net_cache"])
    d_in[:, cache["a_cols"]] += split_conditioner_grad(d_net, cache["ia"].size, grads)
    return d_in, grads
