r"""Elementwise affine transform with a learned scale and shift (an ActNorm-like layer).

Notes
-----
Forward and inverse, with parameters ``log_scale`` and ``shift`` of shape (D,):

.. math::

    x = z \odot e^{\log s} + \mathrm{shift}, \qquad
    \log|\det \partial x/\partial z| = \textstyle\sum_j \log s_j,

    z = (x - \mathrm{shift}) \odot e^{-\log s}, \qquad
    \log|\det \partial z/\partial x| = -\textstyle\sum_j \log s_j.

The Jacobian is diagonal. Backward of the forward pass, upstream ``dx`` (N, D), ``dl`` (N,):
``dz = dx * e^{log s}``, ``d log s = sum_n dx_n * z_n * e^{log s} + sum_n dl_n``,
``d shift = sum_n dx_n``. Backward of the inverse: ``dx = dz * e^{-log s}``,
``d log s = -sum_n dz_n * z_n - sum_n dl_n``, ``d shift = -sum_n dz_n * e^{-log s}``.

Parameterizing the scale by its log keeps it positive, hence invertible, at every step.

References
----------
Kingma, Dhariwal, "Glow: Generative Flow with Invertible 1x1 Convolutions", NeurIPS 2018,
arXiv:1807.03039 (ActNorm).
"""
import numpy as np

from .base import Transform

__all__ = ["elementwise_affine_forward", "elementwise_affine_backward",
           "elementwise_affine_inverse", "elementwise_affine_inverse_backward", "ElementwiseAffine"]


def elementwise_affine_forward(z, log_scale, shift):
    """``x = z * exp(log_scale) + shift``; returns ``(x, log_det (N,), cache)``.

    Examples
    --------
    >>> x, log_det, _ = elementwise_affine_forward(np.ones((2, 2)), np.log([2.0, 3.0]), np.zeros(2))
    >>> x.tolist(), np.round(np.exp(log_det), 12).tolist()
    ([[2.0, 3.0], [2.0, 3.0]], [6.0, 6.0])
    """
    scale = np.exp(log_scale)
    x = z * scale + shift
    log_det = np.full(z.shape[0], log_scale.sum())
    return x, log_det, {"n": z.shape[0], "z": z, "scale": scale}


def elementwise_affine_backward(dx, dlog_det, cache):
    z, scale = cache["z"], cache["scale"]
    dz = dx * scale
    return dz, {"log_scale": (dx * z).sum(axis=0) * scale + dlog_det.sum(),
                "shift": dx.sum(axis=0)}


def elementwise_affine_inverse(x, log_scale, shift):
    """``z = (x - shift) * exp(-log_scale)``; returns ``(z, log_det (N,), cache)``."""
    inv_scale = np.exp(-log_scale)
    z = (x - shift) * inv_scale
    log_det = np.full(x.shape[0], -log_scale.sum())
    return z, log_det, {"n": x.shape[0], "z": z, "inv_scale": inv_scale}


def elementwise_affine_inverse_backward(dz, dlog_det, cache):
    z, inv_scale = cache["z"], cache["inv_scale"]
    dx = dz * inv_scale
    return dx, {"log_scale": -(dz * z).sum(axis=0) - dlog_det.sum(), "shift": -dx.sum(axis=0)}


class ElementwiseAffine(Transform):
    """Learned per-feature scale and shift; starts as the identity.

    Examples
    --------
    >>> t = ElementwiseAffine(2)
    >>> t.params["log_scale"][:] = [0.5, -0.5]
    >>> x, log_det = t.forward(np.ones((3, 2)))
    >>> log_det.tolist()
    [0.0, 0.0, 0.0]
    """

    def __init__(self, dim):
        super().__init__(dim)
        self.params = {"log_scale": np.zeros(dim), "shift": np.zeros(dim)}
        self.zero_grads()

    @classmethod
    def param_shapes(cls, dim, **config):
        return {"log_scale": (dim,), "shift": (dim,)}

    def _forward(self, z):
        return elementwise_affine_forward(z, **self.params)

    def _backward(self, dx, dlog_det, cache):
        return elementwise_affine_backward(dx, dlog_det, cache)

    def _inverse(self, x):
        return elementwise_affine_inverse(x, **self.params)

    def _inverse_backward(self, dz, dlog_det, cache):
        return elementwise_affine_inverse_backward(dz, dlog_det, cache)
