"""The numba-backend path of :class:`~.spline_autoregressive.SplineAutoregressive` (one pass).

Same math as ``spline_autoregressive.py``: the MADE runs through ``_nn_fast.net_forward`` /
``net_backward`` (Numba for its thin layers, BLAS for the square ones) on the masked weights, as
MAF's kernel path does, and the ``N D`` elementwise splines run in one call of
:mod:`nfscratch.kernels.spline`. The sequential direction stays on the teaching functions
(sampling is not the training direction of this layer).
"""
import numpy as np

from .. import _nn_fast
from ..kernels import spline as ks
from ._autoregressive_fast import _masked, _workspaces


def _settings(layer):
    return (layer.bound, layer.min_width, layer.min_height, layer.min_derivative)


def inverse(layer, x):
    N, D, K = x.shape[0], layer.dim, layer.n_bins
    x = np.ascontiguousarray(x)
    out, net_cache = _nn_fast.net_forward(x, _masked(layer), layer.activation,
                                          _workspaces.setdefault(layer, {}))  # (N, (3K-1) D)
    theta = out.reshape(N, 3 * K - 1, D).transpose(0, 2, 1).reshape(N * D, 3 * K - 1)
    uw = np.ascontiguousarray(theta[:, :K])                                 # one row per element
    uh = np.ascontiguousarray(theta[:, K:2 * K])
    ud = np.ascontiguousarray(theta[:, 2 * K:])
    x_flat = x.reshape(N * D)
    z, log_slope = ks.spline_forward_nb(x_flat, uw, uh, ud, *_settings(layer))
    cache = {"n": N, "kernels": "inverse", "x": x_flat, "uw": uw, "uh": uh, "ud": ud,
             "settings": _settings(layer), "net_cache": net_cache, "masks": layer.masks}
    return z.reshape(N, D), log_slope.reshape(N, D).sum(axis=1), cache


def inverse_backward(cache, dz, dlog_det):
    N, D = dz.shape
    dl = np.repeat(np.ascontiguousarray(dlog_det), D)                       # (N D,)
    dx, duw, duh, dud = ks.spline_backward_nb(np.ascontiguousarray(dz).reshape(N * D), dl,
                                              cache["x"], cache["uw"], cache["uh"], cache["ud"],
                                              *cache["settings"])
    dtheta = np.concatenate([duw, duh, dud], axis=1).reshape(N, D, -1)      # (N, D, 3K-1)
    dout = np.ascontiguousarray(dtheta.transpose(0, 2, 1).reshape(N, -1))   # (N, (3K-1) D)
    dx_net, grads = _nn_fast.net_backward(dout, cache["net_cache"])
    for l, M in enumerate(cache["masks"]):
        grads[f"W{l}"] = grads[f"W{l}"] * M
    return dx.reshape(N, D) + dx_net, grads
