r"""The logit preprocessing of RealNVP as a flow layer, for data in the unit cube (images).

Pixel data live in a bounded box, while a flow's base density lives on all of R^D. Dinh et al.
(2017, Sec. 4.1) map the data to R^D with a logit before modelling it; here that map is a
layer, so its log-det is part of the likelihood and densities stay exact in data space.

Notes
-----
With ``a = alpha`` (keeps the logit away from 0 and 1) and ``k = 1 - 2a``:

.. math::

    \text{forward (base → data):}\quad x = \frac{\sigma(z) - a}{k}, \qquad
    \log\left|\det\frac{\partial x}{\partial z}\right| = \sum_d \left[\log\sigma(z_d)
        + \log\sigma(-z_d)\right] - D\log k,

    \text{inverse (data → base):}\quad y = a + k x, \quad z = \log y - \log(1 - y), \qquad
    \log\left|\det\frac{\partial z}{\partial x}\right| = \sum_d \left[\log k - \log y_d
        - \log(1 - y_d)\right].

Backward of the forward pass (``s = sigma(z)``): ``dz = dx * s(1 - s)/k + dl * (1 - 2s)``.
Backward of the inverse: ``dx = dz * k / (y(1 - y)) + dl * k (1/(1 - y) - 1/y)``.
There are no parameters. The inverse needs ``0 <= x <= 1`` (strictly, ``-a/k < x < (1-a)/k``).

References
----------
Dinh, Sohl-Dickstein, Bengio, "Density estimation using Real NVP", ICLR 2017, arXiv:1605.08803.
"""
import numpy as np

from .._validate import check_positive_float
from ..nn import sigmoid, softplus
from .base import Transform

__all__ = ["logit_forward", "logit_backward", "logit_inverse", "logit_inverse_backward", "Logit"]


def logit_forward(z, alpha=0.05):
    """``x = (sigmoid(z) - alpha) / (1 - 2 alpha)``; returns ``(x, log_det (N,), cache)``.

    Examples
    --------
    >>> x, log_det, _ = logit_forward(np.zeros((1, 3)))
    >>> x.round(12).tolist()
    [[0.5, 0.5, 0.5]]
    """
    k = 1.0 - 2.0 * alpha
    s = sigmoid(z)
    x = (s - alpha) / k
    # log sigma(z) + log sigma(-z) = -softplus(-z) - softplus(z), without overflow
    log_det = -(softplus(z) + softplus(-z)).sum(axis=1) - z.shape[1] * np.log(k)
    return x, log_det, {"n": z.shape[0], "s": s, "k": k}


def logit_backward(dx, dlog_det, cache):
    s, k = cache["s"], cache["k"]
    return dx * (s * (1.0 - s) / k) + dlog_det[:, None] * (1.0 - 2.0 * s), {}


def logit_inverse(x, alpha=0.05):
    """``z = logit(alpha + (1 - 2 alpha) x)``; returns ``(z, log_det (N,), cache)``."""
    k = 1.0 - 2.0 * alpha
    y = alpha + k * x
    if np.any(y <= 0.0) or np.any(y >= 1.0):
        lo, hi = float(x.min()), float(x.max())
        raise ValueError(f"x: the Logit layer maps the unit cube; expected values in [0, 1] "
                         f"(strictly inside ({-alpha / k:.4g}, {(1 - alpha) / k:.4g})), got values in "
                         f"[{lo:.4g}, {hi:.4g}]. Scale pixel data to [0, 1] first (see "
                         "datasets.dequantize).")
    log_y, log_1my = np.log(y), np.log1p(-y)
    z = log_y - log_1my
    log_det = x.shape[1] * np.log(k) - (log_y + log_1my).sum(axis=1)
    return z, log_det, {"n": x.shape[0], "y": y, "k": k}


def logit_inverse_backward(dz, dlog_det, cache):
    y, k = cache["y"], cache["k"]
    return dz * (k / (y * (1.0 - y))) + dlog_det[:, None] * (k / (1.0 - y) - k / y), {}


class Logit(Transform):
    """Sigmoid from the base side, logit from the data side: a flow onto the unit cube.

    Parameters
    ----------
    dim : int
    alpha : float
        Margin in (0, 0.5): data ``x`` in [0, 1] are squeezed to ``[alpha, 1 - alpha]`` before
        the logit, so pixels at exactly 0 or 1 map to finite values.

    Examples
    --------
    >>> t = Logit(2)
    >>> z, log_det = t.inverse(np.array([[0.0, 1.0]]))
    >>> bool(np.allclose(t.forward(z)[0], [[0.0, 1.0]]))
    True
    """

    def __init__(self, dim, alpha=0.05):
        super().__init__(dim)
        alpha = check_positive_float(alpha, "alpha", what="a margin in (0, 0.5)")
        if not alpha < 0.5:
            raise ValueError(f"alpha: expected a margin in (0, 0.5), got {alpha!r}.")
        self.alpha = alpha

    def config(self):
        return {"dim": self.dim, "alpha": self.alpha}

    def _forward(self, z):
        return logit_forward(z, self.alpha)

    def _backward(self, dx, dlog_det, cache):
        return logit_backward(dx, dlog_det, cache)

    def _inverse(self, x):
        return logit_inverse(x, self.alpha)

    def _inverse_backward(self, dz, dlog_det, cache):
        return logit_inverse_backward(dz, dlog_det, cache)
