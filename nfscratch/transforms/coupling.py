r"""Coupling layers: NICE (additive) and RealNVP (affine).

A binary ``mask`` splits the D features in two groups. The features with ``mask == 1`` pass
through unchanged and *condition* the others: an MLP reads them and outputs a shift ``t``
(additive) or a log-scale ``s`` and a shift ``t`` (affine) for the features with ``mask == 0``.

Notes
-----
Write ``z_a`` for the conditioning part (mask 1, ``d_a`` features) and ``z_b`` for the transformed
part (mask 0, ``d_b`` features). The conditioner is ``NN: R^{d_a} -> R^{2 d_b}`` (affine) whose
output is split into ``raw`` and ``t``; the log-scale is soft-bounded,

.. math:: s = s_{max} \tanh(raw / s_{max}),

which is the identity near 0 and can never exceed ``s_max`` in magnitude, so one bad step cannot
make ``exp(s)`` overflow.

Affine coupling (RealNVP), forward and inverse:

.. math::

    x_a = z_a, \quad x_b = z_b \odot e^{s(z_a)} + t(z_a), \qquad
    \log|\det \partial x/\partial z| = \textstyle\sum_j s_j(z_a),

    z_a = x_a, \quad z_b = (x_b - t(x_a)) \odot e^{-s(x_a)}, \qquad
    \log|\det \partial z/\partial x| = -\textstyle\sum_j s_j(x_a).

The Jacobian is block triangular (``x_a`` does not depend on ``z_b``), so its determinant is the
product of the diagonal ``e^{s_j}``: O(D) instead of O(D^3), whatever the conditioner.

Backward of the forward pass, with upstream ``dx = (dx_a, dx_b)`` and ``dl`` = dL/dlog_det:

.. math::

    dz_b = dx_b \odot e^s, \quad ds = dx_b \odot z_b \odot e^s + dl, \quad dt = dx_b,
    \quad draw = ds \odot (1 - \tanh^2(raw/s_{max})),

    dz_a = dx_a + \mathrm{NN}^\top(draw, dt) \quad\text{(backprop through the conditioner).}

Backward of the inverse, with upstream ``dz`` and ``dl``:

.. math::

    dx_b = dz_b \odot e^{-s}, \quad dt = -dz_b \odot e^{-s}, \quad ds = -dz_b \odot z_b - dl,
    \quad dx_a = dz_a + \mathrm{NN}^\top(draw, dt).

The additive coupling (NICE) is the case ``s = 0``: the conditioner outputs only ``t`` and every
log-det is exactly 0 (volume preserving).

References
----------
Dinh, Krueger, Bengio, "NICE: Non-linear Independent Components Estimation", ICLR 2015 workshop,
arXiv:1410.8516.
Dinh, Sohl-Dickstein, Bengio, "Density estimation using Real NVP", ICLR 2017, arXiv:1605.08803.
"""
import numpy as np

from ..config import get_backend
from ..nn import ACTIVATIONS, MLP, mlp_backward, mlp_forward
from .._validate import as_rng
from .base import Transform

__all__ = ["affine_coupling_forward", "affine_coupling_backward", "affine_coupling_inverse",
           "affine_coupling_inverse_backward", "additive_coupling_forward",
           "additive_coupling_backward", "additive_coupling_inverse",
           "additive_coupling_inverse_backward", "alternating_mask", "AffineCoupling",
           "AdditiveCoupling"]


def alternating_mask(dim, parity=0):
    """``[1, 0, 1, 0, ...]`` (parity 0) or ``[0, 1, 0, 1, ...]`` (parity 1), as int64."""
    return ((np.arange(dim) + parity + 1) % 2).astype(np.int64)


def _split(mask):
    """Indices of the conditioning (mask 1) and transformed (mask 0) features."""
    return np.flatnonzero(mask == 1), np.flatnonzero(mask == 0)


def _scale(raw, s_max):
    """Soft bound ``s = s_max tanh(raw / s_max)``; returns ``s`` and ``ds/draw``."""
    th = np.tanh(raw / s_max)
    return s_max * th, 1.0 - th * th


# ---------------------------------------------------------------------------------------------
# affine coupling (RealNVP)
# ---------------------------------------------------------------------------------------------
def affine_coupling_forward(z, mask, net_params, activation="tanh", s_max=2.0):
    """RealNVP coupling, generative direction.

    Parameters
    ----------
    z : ndarray, shape (N, D)
    mask : ndarray of {0, 1}, shape (D,)
        1 marks the conditioning features (passed through), 0 the transformed ones.
    net_params : dict
        Conditioner MLP params ``W0, b0, ...`` mapping ``d_a -> 2 d_b``.
    activation : str
    s_max : float
        Bound on ``|s|``.

    Returns
    -------
    x : ndarray, shape (N, D)
    log_det : ndarray, shape (N,)
    cache : dict

    Examples
    --------
    >>> from nfscratch.nn import MLP
    >>> net = MLP([1, 8, 2], rng=0)
    >>> x, log_det, _ = affine_coupling_forward(np.ones((3, 2)), np.array([1, 0]), net.params)
    >>> x.shape, log_det.shape
    ((3, 2), (3,))
    """
    ia, ib = _split(mask)
    d_b = ib.size
    out, net_cache = mlp_forward(z[:, ia], net_params, activation)   # (N, 2 d_b)
    s, ds_draw = _scale(out[:, :d_b], s_max)                        # (N, d_b)
    t = out[:, d_b:]                                                 # (N, d_b)
    exp_s = np.exp(s)
    x = z.copy()
    x[:, ib] = z[:, ib] * exp_s + t
    cache = {"n": z.shape[0], "ia": ia, "ib": ib, "zb": z[:, ib], "exp_s": exp_s,
             "ds_draw": ds_draw, "net_cache": net_cache}
    return x, s.sum(axis=1), cache


def affine_coupling_backward(dx, dlog_det, cache):
    """Backward of :func:`affine_coupling_forward`: ``(dz, conditioner grads)``."""
    ia, ib, zb, exp_s = cache["ia"], cache["ib"], cache["zb"], cache["exp_s"]
    dxb = dx[:, ib]
    ds = dxb * zb * exp_s + dlog_det[:, None]                        # (N, d_b)
    dout = np.concatenate([ds * cache["ds_draw"], dxb], axis=1)      # (N, 2 d_b)
    dza_net, grads = mlp_backward(dout, cache["net_cache"])
    dz = np.empty_like(dx)
    dz[:, ia] = dx[:, ia] + dza_net
    dz[:, ib] = dxb * exp_s
    return dz, grads


def affine_coupling_inverse(x, mask, net_params, activation="tanh", s_max=2.0):
    """RealNVP coupling, normalizing direction: ``(z, log_det = log|det dz/dx|, cache)``."""
    ia, ib = _split(mask)
    d_b = ib.size
    out, net_cache = mlp_forward(x[:, ia], net_params, activation)
    s, ds_draw = _scale(out[:, :d_b], s_max)
    t = out[:, d_b:]
    exp_neg_s = np.exp(-s)
    z = x.copy()
    z[:, ib] = (x[:, ib] - t) * exp_neg_s
    cache = {"n": x.shape[0], "ia": ia, "ib": ib, "zb": z[:, ib], "exp_neg_s": exp_neg_s,
             "ds_draw": ds_draw, "net_cache": net_cache}
    return z, -s.sum(axis=1), cache


def affine_coupling_inverse_backward(dz, dlog_det, cache):
    """Backward of :func:`affine_coupling_inverse`: ``(dx, conditioner grads)``."""
    ia, ib, zb, exp_neg_s = cache["ia"], cache["ib"], cache["zb"], cache["exp_neg_s"]
    dzb = dz[:, ib]
    dxb = dzb * exp_neg_s                                            # also -dt
    ds = -dzb * zb - dlog_det[:, None]
    dout = np.concatenate([ds * cache["ds_draw"], -dxb], axis=1)
    dxa_net, grads = mlp_backward(dout, cache["net_cache"])
    dx = np.empty_like(dz)
    dx[:, ia] = dz[:, ia] + dxa_net
    dx[:, ib] = dxb
    return dx, grads


# ---------------------------------------------------------------------------------------------
# additive coupling (NICE)
# ---------------------------------------------------------------------------------------------
def additive_coupling_forward(z, mask, net_params, activation="tanh"):
    """NICE coupling ``x_b = z_b + t(z_a)``: ``(x, log_det = 0, cache)``."""
    ia, ib = _split(mask)
    t, net_cache = mlp_forward(z[:, ia], net_params, activation)    # (N, d_b)
    x = z.copy()
    x[:, ib] = z[:, ib] + t
    return x, np.zeros(z.shape[0]), {"n": z.shape[0], "ia": ia, "ib": ib, "net_cache": net_cache}


def additive_coupling_backward(dx, dlog_det, cache):
    """Backward of :func:`additive_coupling_forward` (``dlog_det`` has no effect: log_det = 0)."""
    ia, ib = cache["ia"], cache["ib"]
    dza_net, grads = mlp_backward(dx[:, ib], cache["net_cache"])
    dz = dx.copy()
    dz[:, ia] += dza_net
    return dz, grads


def additive_coupling_inverse(x, mask, net_params, activation="tanh"):
    """NICE coupling inverse ``z_b = x_b - t(x_a)``: ``(z, log_det = 0, cache)``."""
    ia, ib = _split(mask)
    t, net_cache = mlp_forward(x[:, ia], net_params, activation)
    z = x.copy()
    z[:, ib] = x[:, ib] - t
    return z, np.zeros(x.shape[0]), {"n": x.shape[0], "ia": ia, "ib": ib, "net_cache": net_cache}


def additive_coupling_inverse_backward(dz, dlog_det, cache):
    """Backward of :func:`additive_coupling_inverse`."""
    ia, ib = cache["ia"], cache["ib"]
    dxa_net, grads = mlp_backward(-dz[:, ib], cache["net_cache"])
    dx = dz.copy()
    dx[:, ia] += dxa_net
    return dx, grads


# ---------------------------------------------------------------------------------------------
# the layers
# ---------------------------------------------------------------------------------------------
class _Coupling(Transform):
    """Shared construction: mask checks and the conditioner MLP (params ``W0, b0, ...``)."""

    _out_per_feature = 1

    def __init__(self, dim, mask=None, hidden=(64, 64), activation="tanh", rng=None,
                 parity=0, zero_init=True):
        super().__init__(dim)
        if dim < 2:
            raise ValueError(f"dim: a coupling layer needs at least 2 features, got {dim}.")
        if mask is None:
            mask = alternating_mask(dim, parity)
        mask = np.asarray(mask)
        if mask.shape != (dim,) or not np.all((mask == 0) | (mask == 1)):
            raise ValueError(f"mask: expected {dim} entries of 0 or 1, got {mask.tolist()}.")
        if mask.sum() in (0, dim):
            raise ValueError(f"mask: needs both 0s and 1s (some features condition, some are "
                             f"transformed), got {mask.tolist()}.")
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation: expected one of {sorted(ACTIVATIONS)}, got {activation!r}.")
        self.mask = mask.astype(np.int64)
        self.hidden = [int(h) for h in hidden]
        self.activation = activation
        d_a, d_b = int(self.mask.sum()), dim - int(self.mask.sum())
        self.net = MLP([d_a, *self.hidden, self._out_per_feature * d_b], activation,
                       rng=as_rng(rng), zero_last=zero_init)
        self.params = self.net.params                   # shared arrays: updates reach the net
        self._workspace = {}                            # the kernel path's scratch arrays
        self.zero_grads()

    def config(self):
        return {"dim": self.dim, "mask": self.mask.tolist(), "hidden": self.hidden,
                "activation": self.activation}

    @classmethod
    def param_shapes(cls, dim, mask=None, hidden=(64, 64), parity=0, **config):
        mask = alternating_mask(dim, parity) if mask is None else np.asarray(mask)
        d_a = int(np.sum(mask))
        sizes = [d_a, *[int(h) for h in hidden], cls._out_per_feature * (dim - d_a)]
        shapes = {}
        for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            shapes[f"W{i}"], shapes[f"b{i}"] = (fan_in, fan_out), (fan_out,)
        return shapes


class AffineCoupling(_Coupling):
    """RealNVP affine coupling layer (see the module docstring for the math).

    Parameters
    ----------
    dim : int
        Number of features D >= 2.
    mask : array_like of {0, 1}, shape (D,), optional
        1 = conditioning feature. Default: alternating, starting with 1 (or 0 if ``parity=1``).
    hidden : sequence of int
        Hidden widths of the conditioner MLP.
    activation : str
    s_max : float
        Bound on the log-scale, ``|s| < s_max``.
    rng : numpy.random.Generator or int, optional
    zero_init : bool
        Zero the conditioner's last layer, so the layer starts as the identity.

    Examples
    --------
    >>> t = AffineCoupling(2, hidden=[16], rng=0, zero_init=False)
    >>> z = np.random.default_rng(1).normal(size=(5, 2))
    >>> x, log_det = t.forward(z)
    >>> bool(np.allclose(t.inverse(x)[0], z))
    True
    """

    _out_per_feature = 2

    def __init__(self, dim, mask=None, hidden=(64, 64), activation="tanh", s_max=2.0, rng=None,
                 parity=0, zero_init=True):
        if not (s_max > 0 and np.isfinite(s_max)):
            raise ValueError(f"s_max: expected a finite positive bound on |s|, got {s_max!r}.")
        self.s_max = float(s_max)
        super().__init__(dim, mask, hidden, activation, rng, parity, zero_init)

    def config(self):
        return {**super().config(), "s_max": self.s_max}

    # With the "numba" backend the passes run through the kernels (see the end of this file);
    # the cache says which path made it.
    def _forward(self, z):
        if get_backend() == "numba":
            return _affine_kernels(self, z, "forward")
        return affine_coupling_forward(z, self.mask, self.params, self.activation, self.s_max)

    def _backward(self, dx, dlog_det, cache):
        if "kernels" in cache:
            return _affine_kernels_backward(cache, dx, dlog_det)
        return affine_coupling_backward(dx, dlog_det, cache)

    def _inverse(self, x):
        if get_backend() == "numba":
            return _affine_kernels(self, x, "inverse")
        return affine_coupling_inverse(x, self.mask, self.params, self.activation, self.s_max)

    def _inverse_backward(self, dz, dlog_det, cache):
        if "kernels" in cache:
            return _affine_kernels_backward(cache, dz, dlog_det)
        return affine_coupling_inverse_backward(dz, dlog_det, cache)


class AdditiveCoupling(_Coupling):
    """NICE additive coupling layer ``x_b = z_b + t(z_a)``; volume preserving (log-det 0).

    Parameters are those of :class:`AffineCoupling` without ``s_max``.

    Examples
    --------
    >>> t = AdditiveCoupling(3, hidden=[8], rng=0, zero_init=False)
    >>> x, log_det = t.forward(np.ones((2, 3)))
    >>> log_det.tolist()
    [0.0, 0.0]
    """

    def _forward(self, z):
        if get_backend() == "numba":
            return _additive_kernels(self, z, 1.0)
        return additive_coupling_forward(z, self.mask, self.params, self.activation)

    def _backward(self, dx, dlog_det, cache):
        if "kernels" in cache:
            return _additive_kernels_backward(cache, dx)
        return additive_coupling_backward(dx, dlog_det, cache)

    def _inverse(self, x):
        if get_backend() == "numba":
            return _additive_kernels(self, x, -1.0)
        return additive_coupling_inverse(x, self.mask, self.params, self.activation)

    def _inverse_backward(self, dz, dlog_det, cache):
        if "kernels" in cache:
            return _additive_kernels_backward(cache, dz)
        return additive_coupling_inverse_backward(dz, dlog_det, cache)


# ---------------------------------------------------------------------------------------------
# the kernel path (backend "numba")
# ---------------------------------------------------------------------------------------------
# The conditioner runs through mlp_forward/mlp_backward (which use nfscratch.kernels.mlp on this
# backend); the elementwise part of the layer -- split, scale, exp, log-det and their backward --
# is one pass of nfscratch.kernels.coupling. Same math as the functions above.

def _coupling_kernels():
    from ..kernels import coupling as kc     # imported on first use: it loads Numba code
    return kc


def _layer_split(layer):
    """``_split(layer.mask)``, computed once per mask array."""
    cached = getattr(layer, "_split_cache", None)
    if cached is None or cached[0] is not layer.mask:
        cached = layer._split_cache = (layer.mask, *_split(layer.mask))
    return cached[1], cached[2]


def _affine_kernels(layer, p, direction):
    kc = _coupling_kernels()
    ia, ib = _layer_split(layer)
    p = np.ascontiguousarray(p)
    out, net_cache = mlp_forward(p[:, ia], layer.params, layer.activation,    # (N, 2 d_b)
                                 workspace=layer._workspace)
    step = kc.affine_coupling_forward_nb if direction == "forward" else kc.affine_coupling_inverse_nb
    res, log_det, e, ds_draw = step(p, out, ib, layer.s_max)
    # the backward pass needs the base-side point: the input forward, the output inverse
    base_side = p if direction == "forward" else res
    return res, log_det, {"n": p.shape[0], "kernels": direction, "ia": ia, "ib": ib,
                          "z": base_side, "e": e, "ds_draw": ds_draw, "net_cache": net_cache}


def _affine_kernels_backward(cache, d_out, dlog_det):
    kc = _coupling_kernels()
    step = (kc.affine_coupling_backward_nb if cache["kernels"] == "forward"
            else kc.affine_coupling_inverse_backward_nb)
    d_in, dout = step(np.ascontiguousarray(d_out), np.ascontiguousarray(dlog_det), cache["z"],
                      cache["ib"], cache["e"], cache["ds_draw"])
    d_net, grads = mlp_backward(dout, cache["net_cache"])
    d_in[:, cache["ia"]] += d_net
    return d_in, grads


def _additive_kernels(layer, p, sign):
    kc = _coupling_kernels()
    ia, ib = _layer_split(layer)
    p = np.ascontiguousarray(p)
    t, net_cache = mlp_forward(p[:, ia], layer.params, layer.activation,      # (N, d_b)
                               workspace=layer._workspace)
    out = kc.additive_coupling_nb(p, np.ascontiguousarray(t), ib, sign)
    return out, np.zeros(p.shape[0]), {"n": p.shape[0], "kernels": sign, "ia": ia, "ib": ib,
                                       "net_cache": net_cache}


def _additive_kernels_backward(cache, d_out):
    kc = _coupling_kernels()
    d_in, dt = kc.additive_coupling_backward_nb(np.ascontiguousarray(d_out), cache["ib"],
                                                cache["kernels"])
    d_net, grads = mlp_backward(dt, cache["net_cache"])
    d_in[:, cache["ia"]] += d_net
    return d_in, grads
