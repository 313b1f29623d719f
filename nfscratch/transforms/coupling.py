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

In the code each direction is two steps: the conditioner (:func:`nfscratch.nn.mlp_forward`) maps
the passed-through part to ``out = [raw | t]``, then an elementwise step (``affine_elementwise_*``,
``additive_elementwise*``) does the rest; the backward passes run the two steps in reverse.

The additive coupling (NICE) is the case ``s = 0``: the conditioner outputs only ``t`` and every
log-det is exactly 0 (volume preserving).

**Conditional coupling** (``context_dim = C > 0``, a density ``p(x | y)``): the conditioner reads
``[z_a | y]`` instead of ``z_a``, so ``s = s(z_a, y)`` and ``t = t(z_a, y)``. The Jacobian
``∂x/∂z`` is taken at fixed ``y`` -- the context is an input of the map, not one of its
variables -- so it is still block triangular and the log-det is still ``sum_j s_j(z_a, y)``; no
derivative with respect to ``y`` enters it. The backward pass through the conditioner returns
the gradient for the whole input ``[z_a | y]``; its ``y`` part is ``dy`` (``grads["context"]``).

References
----------
Dinh, Krueger, Bengio, "NICE: Non-linear Independent Components Estimation", ICLR 2015 workshop,
arXiv:1410.8516.
Dinh, Sohl-Dickstein, Bengio, "Density estimation using Real NVP", ICLR 2017, arXiv:1605.08803.
"""
import numpy as np

from .. import _validate as V
from ..config import use_kernels
from ..nn import ACTIVATIONS, MLP, mlp_backward, mlp_forward, mlp_param_shapes
from . import _coupling_fast as _fast
from .base import Transform, conditioner_input, split_conditioner_grad

__all__ = ["affine_coupling_forward", "affine_coupling_backward", "affine_coupling_inverse",
           "affine_coupling_inverse_backward", "affine_elementwise_forward",
           "affine_elementwise_backward", "affine_elementwise_inverse",
           "affine_elementwise_inverse_backward", "additive_coupling_forward",
           "additive_coupling_backward", "additive_coupling_inverse",
           "additive_coupling_inverse_backward", "additive_elementwise",
           "additive_elementwise_backward", "alternating_mask", "split_mask", "AffineCoupling",
           "AdditiveCoupling"]


def alternating_mask(dim, parity=0):
    """``[1, 0, 1, 0, ...]`` (parity 0) or ``[0, 1, 0, 1, ...]`` (parity 1), as int64."""
    return ((np.arange(dim) + parity + 1) % 2).astype(np.int64)


def split_mask(mask):
    """Indices of the conditioning (mask 1) and transformed (mask 0) features, as int64."""
    return np.flatnonzero(mask == 1), np.flatnonzero(mask == 0)


def _scale(raw, s_max):
    """Soft bound ``s = s_max tanh(raw / s_max)``; returns ``s`` and ``ds/draw``."""
    th = np.tanh(raw / s_max)
    return s_max * th, 1.0 - th * th


# ---------------------------------------------------------------------------------------------
# the elementwise step, given the conditioner's output
# ---------------------------------------------------------------------------------------------
def affine_elementwise_forward(z, out, ib, s_max):
    """``x_b = z_b e^s + t`` from the conditioner output ``out = [raw | t]``.

    Parameters
    ----------
    z : ndarray, shape (N, D)
    out : ndarray, shape (N, 2 d_b)
        The conditioner's output for ``z_a``: ``raw`` then ``t``.
    ib : ndarray of int64, shape (d_b,)
        The transformed features (``mask == 0``).
    s_max : float

    Returns
    -------
    x : ndarray, shape (N, D)
    log_det : ndarray, shape (N,)
        ``sum_j s_j``.
    exp_s, ds_draw : ndarray, shape (N, d_b)
        ``e^s`` and ``ds/draw = 1 - tanh^2(raw / s_max)``, kept for the backward pass.
    """
    d_b = ib.size
    s, ds_draw = _scale(out[:, :d_b], s_max)                        # (N, d_b)
    exp_s = np.exp(s)
    x = z.copy()
    x[:, ib] = z[:, ib] * exp_s + out[:, d_b:]
    return x, s.sum(axis=1), exp_s, ds_draw


def affine_elementwise_backward(dx, dlog_det, z, ib, exp_s, ds_draw):
    """Backward of :func:`affine_elementwise_forward`: ``(dz, dout)``.

    ``dz_b = dx_b e^s`` and ``dz_a = dx_a`` (the conditioner's share is added by the caller);
    ``dout = [ds * ds/draw | dt]`` (N, 2 d_b) with ``ds = dx_b z_b e^s + dlog_det``, ``dt = dx_b``.
    """
    dxb = dx[:, ib]                                                  # (N, d_b)
    ds = dxb * z[:, ib] * exp_s + dlog_det[:, None]                  # via x_b, and via log_det
    dz = dx.copy()
    dz[:, ib] = dxb * exp_s
    return dz, np.concatenate([ds * ds_draw, dxb], axis=1)


def affine_elementwise_inverse(x, out, ib, s_max):
    """``z_b = (x_b - t) e^{-s}``: ``(z, log_det = -sum s, exp_neg_s, ds_draw)``, shapes as in
    :func:`affine_elementwise_forward` (``out`` computed from ``x_a``)."""
    d_b = ib.size
    s, ds_draw = _scale(out[:, :d_b], s_max)
    exp_neg_s = np.exp(-s)
    z = x.copy()
    z[:, ib] = (x[:, ib] - out[:, d_b:]) * exp_neg_s
    return z, -s.sum(axis=1), exp_neg_s, ds_draw


def affine_elementwise_inverse_backward(dz, dlog_det, z, ib, exp_neg_s, ds_draw):
    """Backward of :func:`affine_elementwise_inverse`: ``(dx, dout)``, ``z`` its *output*.

    ``dx_b = dz_b e^{-s}``, ``dt = -dx_b``, ``ds = -dz_b z_b - dlog_det``; ``dx_a = dz_a``.
    """
    dzb = dz[:, ib]
    dxb = dzb * exp_neg_s
    ds = -dzb * z[:, ib] - dlog_det[:, None]
    dx = dz.copy()
    dx[:, ib] = dxb
    return dx, np.concatenate([ds * ds_draw, -dxb], axis=1)


def additive_elementwise(p, t, ib, sign):
    """``out_b = p_b + sign * t``: the NICE step forward (``sign = 1.0``) or inverse (``-1.0``)."""
    out = p.copy()
    out[:, ib] = p[:, ib] + sign * t
    return out


def additive_elementwise_backward(d, ib, sign):
    """Backward of :func:`additive_elementwise`: ``(d_in = d, dt = sign * d_b)``; the
    conditioner's share of ``d_in`` is added by the caller."""
    return d.copy(), sign * d[:, ib]


# ---------------------------------------------------------------------------------------------
# affine coupling (RealNVP): conditioner, then the elementwise step
# ---------------------------------------------------------------------------------------------
def affine_coupling_forward(z, mask, net_params, activation="tanh", s_max=2.0, context=None):
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
    context : ndarray, shape (N, C), optional
        Conditioning input, read by the conditioner beside ``z_a`` (then the MLP maps
        ``d_a + C -> 2 d_b``).

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
    ia, ib = split_mask(mask)
    out, net_cache = mlp_forward(conditioner_input(z[:, ia], context), net_params,
                                 activation)                         # (N, 2 d_b)
    x, log_det, exp_s, ds_draw = affine_elementwise_forward(z, out, ib, s_max)
    return x, log_det, {"n": z.shape[0], "ia": ia, "ib": ib, "z": z, "exp_s": exp_s,
                        "ds_draw": ds_draw, "net_cache": net_cache}


def affine_coupling_backward(dx, dlog_det, cache):
    """Backward of :func:`affine_coupling_forward`: ``(dz, conditioner grads)``; with a context,
    ``grads["context"]`` is its gradient."""
    dz, dout = affine_elementwise_backward(dx, dlog_det, cache["z"], cache["ib"], cache["exp_s"],
                                           cache["ds_draw"])
    d_net_in, grads = mlp_backward(dout, cache["net_cache"])        # z_a also fed the net
    dz[:, cache["ia"]] += split_conditioner_grad(d_net_in, cache["ia"].size, grads)
    return dz, grads


def affine_coupling_inverse(x, mask, net_params, activation="tanh", s_max=2.0, context=None):
    """RealNVP coupling, normalizing direction: ``(z, log_det = log|det dz/dx|, cache)``."""
    ia, ib = split_mask(mask)
    out, net_cache = mlp_forward(conditioner_input(x[:, ia], context), net_params, activation)
    z, log_det, exp_neg_s, ds_draw = affine_elementwise_inverse(x, out, ib, s_max)
    return z, log_det, {"n": x.shape[0], "ia": ia, "ib": ib, "z": z, "exp_neg_s": exp_neg_s,
                        "ds_draw": ds_draw, "net_cache": net_cache}


def affine_coupling_inverse_backward(dz, dlog_det, cache):
    """Backward of :func:`affine_coupling_inverse`: ``(dx, conditioner grads)``."""
    dx, dout = affine_elementwise_inverse_backward(dz, dlog_det, cache["z"], cache["ib"],
                                                   cache["exp_neg_s"], cache["ds_draw"])
    d_net_in, grads = mlp_backward(dout, cache["net_cache"])
    dx[:, cache["ia"]] += split_conditioner_grad(d_net_in, cache["ia"].size, grads)
    return dx, grads


# ---------------------------------------------------------------------------------------------
# additive coupling (NICE)
# ---------------------------------------------------------------------------------------------
def additive_coupling_forward(z, mask, net_params, activation="tanh", context=None):
    """NICE coupling ``x_b = z_b + t(z_a)`` (``t(z_a, y)`` with a context):
    ``(x, log_det = 0, cache)``."""
    ia, ib = split_mask(mask)
    t, net_cache = mlp_forward(conditioner_input(z[:, ia], context), net_params,
                               activation)                           # (N, d_b)
    x = additive_elementwise(z, t, ib, 1.0)
    return x, np.zeros(z.shape[0]), {"n": z.shape[0], "ia": ia, "ib": ib, "net_cache": net_cache}


def additive_coupling_backward(dx, dlog_det, cache):
    """Backward of :func:`additive_coupling_forward` (``dlog_det`` has no effect: log_det = 0)."""
    dz, dt = additive_elementwise_backward(dx, cache["ib"], 1.0)
    d_net_in, grads = mlp_backward(dt, cache["net_cache"])
    dz[:, cache["ia"]] += split_conditioner_grad(d_net_in, cache["ia"].size, grads)
    return dz, grads


def additive_coupling_inverse(x, mask, net_params, activation="tanh", context=None):
    """NICE coupling inverse ``z_b = x_b - t(x_a)``: ``(z, log_det = 0, cache)``."""
    ia, ib = split_mask(mask)
    t, net_cache = mlp_forward(conditioner_input(x[:, ia], context), net_params, activation)
    z = additive_elementwise(x, t, ib, -1.0)
    return z, np.zeros(x.shape[0]), {"n": x.shape[0], "ia": ia, "ib": ib, "net_cache": net_cache}


def additive_coupling_inverse_backward(dz, dlog_det, cache):
    """Backward of :func:`additive_coupling_inverse`."""
    dx, dt = additive_elementwise_backward(dz, cache["ib"], -1.0)
    d_net_in, grads = mlp_backward(dt, cache["net_cache"])
    dx[:, cache["ia"]] += split_conditioner_grad(d_net_in, cache["ia"].size, grads)
    return dx, grads


# ---------------------------------------------------------------------------------------------
# the layers
# ---------------------------------------------------------------------------------------------
class _Coupling(Transform):
    """Shared construction: mask checks and the conditioner MLP (params ``W0, b0, ...``)."""

    _out_per_feature = 1

    def __init__(self, dim, mask=None, hidden=(64, 64), activation="tanh", rng=None,
                 parity=0, zero_init=True, context_dim=0):
        super().__init__(dim)
        self.context_dim = V.check_context_dim(context_dim)
        if self.dim < 2:
            raise ValueError(f"dim: a coupling layer needs at least 2 features, got {dim}.")
        self.mask = self._check_mask(mask, parity)
        self.hidden = V.check_widths(hidden, "hidden")
        self.activation = V.check_choice(activation, "activation", ACTIVATIONS)
        d_a, d_b = int(self.mask.sum()), self.dim - int(self.mask.sum())
        self.net = MLP([d_a + self.context_dim, *self.hidden, self._out_per_feature * d_b], activation,
                       rng=V.as_rng(rng), zero_last=zero_init)
        self.params = self.net.params                   # shared arrays: updates reach the net
        self.zero_grads()

    def _check_mask(self, mask, parity):
        dim = self.dim
        if mask is None:
            return alternating_mask(dim, V.check_choice(parity, "parity", (0, 1)))
        mask = np.asarray(mask)
        if mask.shape != (dim,) or mask.dtype.kind not in "biuf" or not np.all((mask == 0) | (mask == 1)):
            raise ValueError(f"mask: expected {dim} entries of 0 or 1, got {mask.tolist()}.")
        if mask.sum() in (0, dim):
            raise ValueError(f"mask: needs both 0s and 1s (some features condition, some are "
                             f"transformed), got {mask.tolist()}.")
        return mask.astype(np.int64)

    def config(self):
        cfg = {"dim": self.dim, "mask": self.mask.tolist(), "hidden": self.hidden,
               "activation": self.activation}
        return {**cfg, "context_dim": self.context_dim} if self.context_dim else cfg

    @classmethod
    def param_shapes(cls, dim, mask=None, hidden=(64, 64), parity=0, context_dim=0, **config):
        mask = alternating_mask(dim, parity) if mask is None else np.asarray(mask)
        d_a = int(np.sum(mask)) + int(context_dim)
        sizes = [d_a, *[int(h) for h in hidden], cls._out_per_feature * (dim - int(np.sum(mask)))]
        return mlp_param_shapes(sizes)


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
    context_dim : int
        Width C of a context ``y`` read by the conditioner (``p(x | y)``); 0 (default): not
        conditional. When C > 0 every pass needs ``context`` (N, C), and each backward pass
        leaves dL/dcontext in ``self.dcontext``.

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
                 parity=0, zero_init=True, context_dim=0):
        self.s_max = V.check_positive_float(s_max, "s_max", what="a finite positive bound on |s|")
        super().__init__(dim, mask, hidden, activation, rng, parity, zero_init, context_dim)

    def config(self):
        return {**super().config(), "s_max": self.s_max}

    # On the numba backend each pass runs the kernels (_coupling_fast.py); a backward pass follows
    # the path of the pass it differentiates.
    def _forward(self, z, context=None):
        if use_kernels(): return _fast.affine_forward(self, z, context)
        return affine_coupling_forward(z, self.mask, self.params, self.activation, self.s_max,
                                       context)

    def _backward(self, dx, dlog_det, cache):
        if _fast.made(cache): return _fast.affine_backward(dx, dlog_det, cache)
        return affine_coupling_backward(dx, dlog_det, cache)

    def _inverse(self, x, context=None):
        if use_kernels(): return _fast.affine_inverse(self, x, context)
        return affine_coupling_inverse(x, self.mask, self.params, self.activation, self.s_max,
                                       context)

    def _inverse_backward(self, dz, dlog_det, cache):
        if _fast.made(cache): return _fast.affine_backward(dz, dlog_det, cache)
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

    def _forward(self, z, context=None):
        if use_kernels(): return _fast.additive_forward(self, z, 1.0, context)
        return additive_coupling_forward(z, self.mask, self.params, self.activation, context)

    def _backward(self, dx, dlog_det, cache):
        if _fast.made(cache): return _fast.additive_backward(dx, cache)
        return additive_coupling_backward(dx, dlog_det, cache)

    def _inverse(self, x, context=None):
        if use_kernels(): return _fast.additive_forward(self, x, -1.0, context)
        return additive_coupling_inverse(x, self.mask, self.params, self.activation, context)

    def _inverse_backward(self, dz, dlog_det, cache):
        if _fast.made(cache): return _fast.additive_backward(dz, cache)
        return additive_coupling_inverse_backward(dz, dlog_det, cache)
