"""The numba-backend path of :class:`~nfscratch.transforms.spline.SplineCoupling`.

Same math as the pure functions of ``spline.py``: the conditioner runs through
``_nn_fast.net_forward`` / ``net_backward`` (the MLP kernels for its thin layers, BLAS for the
square ones), and the elementwise splines of the ``N d_b``
transformed features run in one call of :mod:`nfscratch.kernels.spline`, which recomputes the
knots in its backward pass instead of caching them.
"""
import numpy as np

from .. import _nn_fast
from ..kernels import spline as ks
from .base import conditioner_input, split_conditioner_grad

_STEPS = {"forward": (ks.spline_forward_nb, ks.spline_backward_nb),
          "inverse": (ks.spline_inverse_nb, ks.spline_inverse_backward_nb)}


def _settings(layer):
    return (layer.bound, layer.min_width, layer.min_height, layer.min_derivative)


def _run(layer, p, direction, context):
    ia, ib = np.flatnonzero(layer.mask == 1), np.flatnonzero(layer.mask == 0)
    N, d_b, K = p.shape[0], ib.size, layer.n_bins
    out, net_cache = _nn_fast.net_forward(conditioner_input(p[:, ia], context), layer.params,
                                          layer.activation)            # (N, d_b (3K-1))
    theta = out.reshape(N * d_b, 3 * K - 1)                            # one row per element
    uw = np.ascontiguousarray(theta[:, :K])
    uh = np.ascontiguousarray(theta[:, K:2 * K])
    ud = np.ascontiguousarray(theta[:, 2 * K:])
    p_b = np.ascontiguousarray(p[:, ib]).reshape(N * d_b)
    res_b, log_det = _STEPS[direction][0](p_b, uw, uh, ud, *_settings(layer))
    res = p.copy()
    res[:, ib] = res_b.reshape(N, d_b)
    cache = {"n": N, "kernels": direction, "ia": ia, "ib": ib, "p_b": p_b, "uw": uw, "uh": uh,
             "ud": ud, "settings": _settings(layer), "net_cache": net_cache}
    return res, log_det.reshape(N, d_b).sum(axis=1), cache


def forward(layer, z, context=None):
    return _run(layer, z, "forward", context)


def inverse(layer, x, context=None):
    return _run(layer, x, "inverse", context)


def backward(cache, d_out, dlog_det):
    """Backward of whichever pass made ``cache``: ``(d_in, conditioner grads)``."""
    ia, ib = cache["ia"], cache["ib"]
    N, d_b = d_out.shape[0], ib.size
    d_b_out = np.ascontiguousarray(d_out[:, ib]).reshape(N * d_b)
    dl = np.repeat(np.ascontiguousarray(dlog_det), d_b)                # (N d_b,)
    back = _STEPS[cache["kernels"]][1]
    d_p, duw, duh, dud = back(d_b_out, dl, cache["p_b"], cache["uw"], cache["uh"], cache["ud"],
                              *cache["settings"])
    dout = np.concatenate([duw, duh, dud], axis=1).reshape(N, -1)      # (N, d_b (3K-1))
    d_net_in, grads = _nn_fast.net_backward(dout, cache["net_cache"])
    d_in = d_out.copy()
    d_in[:, ia] += split_conditioner_grad(d_net_in, ia.size, grads)
    d_in[:, ib] = d_p.reshape(N, d_b)
    return d_in, grads
