r"""Fixed permutations of the features: ``Reverse`` and ``Permute``.

Notes
-----
``x = z[:, perm]``, so ``x_i = z_{perm[i]}``. The Jacobian is a permutation matrix with
determinant ±1, hence ``log|det| = 0`` in both directions. The inverse uses the inverse
permutation ``inv`` with ``inv[perm[i]] = i``; backpropagation through a gather is the scatter
``dz[:, perm] = dx``, i.e. ``dz = dx[:, inv]``. There are no parameters.

Coupling layers leave half the features unchanged; a permutation between them lets every feature
be transformed somewhere in the stack (Dinh et al. 2015, 2017).
"""
import numpy as np

from .._validate import as_rng, check_positive_int
from .base import Transform

__all__ = ["permute_forward", "permute_backward", "Permute", "Reverse"]


def permute_forward(z, perm):
    """``x = z[:, perm]``; returns ``(x, log_det = 0, cache)``.

    Examples
    --------
    >>> x, log_det, _ = permute_forward(np.array([[1.0, 2.0, 3.0]]), np.array([2, 0, 1]))
    >>> x.tolist(), log_det.tolist()
    ([[3.0, 1.0, 2.0]], [0.0])
    """
    return z[:, perm], np.zeros(z.shape[0]), {"n": z.shape[0], "perm": perm}


def permute_backward(dx, dlog_det, cache):
    """Backward of :func:`permute_forward`: scatter ``dx`` back, ``dz[:, perm] = dx``."""
    dz = np.empty_like(dx)
    dz[:, cache["perm"]] = dx
    return dz, {}


class Permute(Transform):
    """A fixed permutation of the features (random when ``perm`` is not given).

    Examples
    --------
    >>> t = Permute(3, perm=[2, 0, 1])
    >>> t.forward(np.array([[1.0, 2.0, 3.0]]))[0].tolist()
    [[3.0, 1.0, 2.0]]
    """

    def __init__(self, dim, perm=None, rng=None):
        super().__init__(dim)
        if perm is None:
            perm = as_rng(rng).permutation(dim)
        perm = np.asarray(perm)
        if (perm.shape != (dim,) or perm.dtype.kind not in "iu"
                or not np.array_equal(np.sort(perm), np.arange(dim))):
            raise ValueError(f"perm: expected a permutation of 0..{dim - 1} (each index once), "
                             f"got {perm.tolist()}.")
        self.perm = perm.astype(np.int64)
        self.inv_perm = np.argsort(self.perm)

    def config(self):
        return {"dim": self.dim, "perm": self.perm.tolist()}

    def _forward(self, z):
        return permute_forward(z, self.perm)

    def _backward(self, dx, dlog_det, cache):
        return permute_backward(dx, dlog_det, cache)

    def _inverse(self, x):
        return permute_forward(x, self.inv_perm)

    def _inverse_backward(self, dz, dlog_det, cache):
        return permute_backward(dz, dlog_det, cache)


class Reverse(Permute):
    """Reverse the order of the features (its own inverse).

    Examples
    --------
    >>> Reverse(3).forward(np.array([[1.0, 2.0, 3.0]]))[0].tolist()
    [[3.0, 2.0, 1.0]]
    """

    def __init__(self, dim):
        super().__init__(dim, perm=np.arange(check_positive_int(dim, "dim"))[::-1])

    def config(self):
        return {"dim": self.dim}
