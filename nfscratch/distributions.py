r"""Base densities.

Notes
-----
Standard normal on R^D:

.. math:: \log p_0(z) = -\tfrac{1}{2}\|z\|^2 - \tfrac{D}{2}\log 2\pi, \qquad
          \nabla_z \log p_0(z) = -z.
"""
import numpy as np

from ._validate import as_batch, as_rng, check_positive_int

__all__ = ["StandardNormal"]


class StandardNormal:
    """The standard normal ``N(0, I_D)``.

    Examples
    --------
    >>> base = StandardNormal(2)
    >>> round(float(base.log_prob(np.zeros((1, 2)))[0]), 6)   # -log(2 pi)
    -1.837877
    """

    def __init__(self, dim):
        self.dim = check_positive_int(dim, "dim")

    def log_prob(self, z):
        """``log p0(z)`` per sample, shape (N,)."""
        return self._log_prob(as_batch(z, self.dim, "z"))

    def _log_prob(self, z):
        """Unchecked ``log_prob`` for internal use on already-validated (possibly NaN) arrays."""
        return -0.5 * np.einsum("nd,nd->n", z, z) - 0.5 * self.dim * np.log(2.0 * np.pi)

    def grad_log_prob(self, z):
        """``d log p0(z) / dz = -z``, shape (N, D)."""
        return -as_batch(z, self.dim, "z")

    def _grad_log_prob(self, z):
        return -z

    def sample(self, n, rng=None):
        """``n`` samples, shape (n, D)."""
        return as_rng(rng).standard_normal((check_positive_int(n, "n"), self.dim))

    def entropy(self):
        """Differential entropy in nats, ``D/2 log(2 pi e)``."""
        return 0.5 * self.dim * np.log(2.0 * np.pi * np.e)

    def config(self):
        return {"dim": self.dim}

    def __repr__(self):
        return f"StandardNormal({self.dim})"
