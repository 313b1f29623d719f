r"""An invertible linear layer in LU form: ``x = P L U z`` with an O(D) log-determinant.

A fixed permutation between coupling layers decides once and for all which features condition
which; a *learned* invertible matrix lets training choose the mixing. Glow (Kingma & Dhariwal
2018) learns it as a 1x1 convolution over channels; on the flattened 8x8 images here it is the
full D x D matrix. Parametrizing ``W`` by its LU decomposition makes the determinant the product
of ``U``'s diagonal, so the log-det costs O(D) instead of O(D^3), and the inverse is two
triangular solves.

Notes
-----
Parameters: ``L`` (D, D), of which only the strictly lower triangle is used; ``U`` (D, D), of
which only the strictly upper triangle is used; ``log_diag`` (D,). With the fixed permutation
``perm`` (``P``) and ``1`` the identity,

.. math::

    \mathcal L = \mathrm{tril}(L, -1) + 1, \qquad
    \mathcal U = \mathrm{triu}(U, 1) + \mathrm{diag}(e^{\log d}), \qquad W = P \mathcal L \mathcal U.

The diagonal of ``U`` is ``exp(log_diag)`` with its sign fixed (positive), so ``W`` stays
invertible at every step of training and ``log|det W| = sum_j log_diag_j``.

Forward, on rows (``z`` is (N, D), each row one sample), in three steps:

.. math::

    a = z \mathcal U^\top, \quad b = a \mathcal L^\top, \quad x = b[:, perm] \;(= P b),
    \qquad \log\left|\det\frac{\partial x}{\partial z}\right| = \textstyle\sum_j \log d_j.

Backward of the forward pass, upstream ``dx`` (N, D) and ``dl`` (N,), the steps in reverse
(``db[:, perm] = dx`` undoes the gather):

.. math::

    d\mathcal L = \mathrm{tril}(db^\top a, -1), \quad da = db\, \mathcal L, \quad
    dU = \mathrm{triu}(da^\top z, 1), \quad
    d\log d = \mathrm{diag}(da^\top z) \odot e^{\log d} + \textstyle\sum_n dl_n, \quad
    dz = da\, \mathcal U.

Inverse: ``b = x[:, inv]``, solve ``\mathcal L a^\top = b^\top`` (forward substitution, unit
diagonal), solve ``\mathcal U z^\top = a^\top`` (back substitution); log-det ``-sum log d``.
Backward of the inverse, upstream ``dz``: with ``z = \mathcal U^{-1} a`` per sample, the
gradient of a solve is a solve with the transpose,

.. math::

    da^\top = \mathcal U^{-\top} dz^\top, \quad d\mathcal U = -da^\top z, \quad
    db^\top = \mathcal L^{-\top} da^\top, \quad d\mathcal L = -db^\top a, \quad
    dx = db[:, perm],

    d\log d = \mathrm{diag}(d\mathcal U) \odot e^{\log d} - \textstyle\sum_n dl_n,

and ``dL``, ``dU`` are the strictly lower / upper parts of ``dL``-calligraphic and
``dU``-calligraphic (the entries that are not parameters get gradient 0).

Initialization: ``L = U = 0`` and ``log_diag = 0``, so the layer starts as the random
permutation ``P`` -- exactly the fixed ``Permute`` layer it replaces, from which training
moves on. (Glow starts from a random rotation instead; a permutation keeps every diagonal sign
positive, which is the sign this parametrization keeps fixed, and does not mix the pixels of an
image before the couplings have learned anything.)

References
----------
Kingma, Dhariwal, "Glow: Generative Flow with Invertible 1x1 Convolutions", NeurIPS 2018,
arXiv:1807.03039 (Sec. 3.2, LU decomposition).
"""
import numpy as np

from .._validate import as_rng
from .base import Transform

__all__ = ["lu_matrices", "solve_triangular", "lu_linear_forward", "lu_linear_backward",
           "lu_linear_inverse", "lu_linear_inverse_backward", "LULinear"]


def lu_matrices(L, U, log_diag):
    r"""The triangular factors from the parameters: unit-lower :math:`\mathcal L` and upper
    :math:`\mathcal U` with diagonal ``exp(log_diag)``, both (D, D)."""
    D = log_diag.size
    return np.tril(L, -1) + np.eye(D), np.triu(U, 1) + np.diag(np.exp(log_diag))


def solve_triangular(T, B, lower):
    r"""Solve ``T Y^T = B^T`` for the rows ``Y`` (N, D), ``T`` (D, D) triangular.

    Forward substitution when ``lower`` (row ``i`` of the system uses the unknowns ``0..i-1``
    already found), back substitution otherwise: D steps, each vectorized over the N samples,
    O(N D^2) work in all (a general solve would be O(D^3 + N D^2)).

    Examples
    --------
    >>> T = np.array([[2.0, 0.0], [1.0, 1.0]])
    >>> solve_triangular(T, np.array([[2.0, 3.0]]), lower=True).tolist()
    [[1.0, 2.0]]
    """
    D = T.shape[0]
    Y = np.empty_like(B)                                             # (N, D)
    order = range(D) if lower else range(D - 1, -1, -1)
    for i in order:
        known = slice(0, i) if lower else slice(i + 1, D)
        Y[:, i] = (B[:, i] - Y[:, known] @ T[i, known]) / T[i, i]
    return Y


def lu_linear_forward(z, L, U, log_diag, perm):
    """``x = P L U z`` row by row; returns ``(x, log_det (N,), cache)``.

    Parameters
    ----------
    z : ndarray, shape (N, D)
    L, U : ndarray, shape (D, D)
        Only the strictly lower (``L``) and strictly upper (``U``) triangles are used.
    log_diag : ndarray, shape (D,)
    perm : ndarray of int64, shape (D,)

    Examples
    --------
    >>> D = 3
    >>> x, log_det, _ = lu_linear_forward(np.eye(D), np.zeros((D, D)), np.zeros((D, D)),
    ...                                   np.log([1.0, 2.0, 4.0]), np.array([2, 0, 1]))
    >>> x.tolist(), float(np.exp(log_det[0]))
    ([[0.0, 1.0, 0.0], [0.0, 0.0, 2.0], [4.0, 0.0, 0.0]], 8.0)
    """
    Lm, Um = lu_matrices(L, U, log_diag)
    a = z @ Um.T                                                     # (N, D)
    b = a @ Lm.T                                                     # (N, D)
    log_det = np.full(z.shape[0], log_diag.sum())
    return b[:, perm], log_det, {"n": z.shape[0], "z": z, "a": a, "Lm": Lm, "Um": Um,
                                 "perm": perm, "diag": np.exp(log_diag)}


def _param_grads(dLm, dUm, diag, dlog_det_total):
    """The parameters' share of the gradients of the two triangular matrices."""
    return {"L": np.tril(dLm, -1), "U": np.triu(dUm, 1),
            "log_diag": np.diag(dUm) * diag + dlog_det_total}


def lu_linear_backward(dx, dlog_det, cache):
    """Backward of :func:`lu_linear_forward`: ``(dz, grads)``, the steps of forward reversed."""
    db = np.empty_like(dx)
    db[:, cache["perm"]] = dx                                        # 3. x = b[:, perm]
    dLm = db.T @ cache["a"]                                          # 2. b = a L^T
    da = db @ cache["Lm"]
    dUm = da.T @ cache["z"]                                          # 1. a = z U^T
    dz = da @ cache["Um"]
    return dz, _param_grads(dLm, dUm, cache["diag"], dlog_det.sum())


def lu_linear_inverse(x, L, U, log_diag, perm):
    """``z = U^{-1} L^{-1} P^T x`` by two triangular solves; returns ``(z, log_det, cache)``
    (arguments as in :func:`lu_linear_forward`)."""
    Lm, Um = lu_matrices(L, U, log_diag)
    inv = np.argsort(perm)
    b = x[:, inv]                                                    # (N, D)
    a = solve_triangular(Lm, b, lower=True)
    z = solve_triangular(Um, a, lower=False)
    log_det = np.full(x.shape[0], -log_diag.sum())
    return z, log_det, {"n": x.shape[0], "z": z, "a": a, "Lm": Lm, "Um": Um, "perm": perm,
                        "diag": np.exp(log_diag)}


def lu_linear_inverse_backward(dz, dlog_det, cache):
    """Backward of :func:`lu_linear_inverse`: ``(dx, grads)``; the gradient of a triangular
    solve is a solve with the transposed (so lower <-> upper) matrix."""
    da = solve_triangular(cache["Um"].T, dz, lower=True)             # z = U^{-1} a
    dUm = -da.T @ cache["z"]
    db = solve_triangular(cache["Lm"].T, da, lower=False)            # a = L^{-1} b
    dLm = -db.T @ cache["a"]
    return db[:, cache["perm"]], _param_grads(dLm, dUm, cache["diag"], -dlog_det.sum())


class LULinear(Transform):
    """Learned invertible linear map ``x = P L U z`` (see the module docstring for the math).

    Parameters
    ----------
    dim : int
    perm : sequence of int, optional
        The fixed permutation ``P`` (``x = b[:, perm]``); default: drawn from ``rng``.
    rng : numpy.random.Generator or int, optional

    Examples
    --------
    >>> t = LULinear(3, rng=0)
    >>> t.params["L"][2, 0], t.params["U"][0, 1], t.params["log_diag"][1] = 0.5, -1.0, 0.3
    >>> z = np.random.default_rng(1).normal(size=(4, 3))
    >>> x, log_det = t.forward(z)
    >>> bool(np.allclose(t.inverse(x)[0], z)), round(float(log_det[0]), 12)
    (True, 0.3)
    """

    def __init__(self, dim, perm=None, rng=None):
        super().__init__(dim)
        if perm is None:
            perm = as_rng(rng).permutation(self.dim)
        perm = np.asarray(perm)
        if (perm.shape != (self.dim,) or perm.dtype.kind not in "iu"
                or not np.array_equal(np.sort(perm), np.arange(self.dim))):
            raise ValueError(f"perm: expected a permutation of 0..{self.dim - 1} (each index "
                             f"once), got {perm.tolist()}.")
        self.perm = perm.astype(np.int64)
        D = self.dim
        self.params = {"L": np.zeros((D, D)), "U": np.zeros((D, D)), "log_diag": np.zeros(D)}
        self.zero_grads()

    def config(self):
        return {"dim": self.dim, "perm": self.perm.tolist()}

    @classmethod
    def param_shapes(cls, dim, **config):
        return {"L": (dim, dim), "U": (dim, dim), "log_diag": (dim,)}

    def weight(self):
        """The matrix ``W = P L U`` (D, D) with ``x_n = W z_n``, for plots and checks."""
        Lm, Um = lu_matrices(**self.params)
        return (Lm @ Um)[self.perm]                                  # row i of W is row perm[i]

    def _forward(self, z):
        return lu_linear_forward(z, perm=self.perm, **self.params)

    def _backward(self, dx, dlog_det, cache):
        return lu_linear_backward(dx, dlog_det, cache)

    def _inverse(self, x):
        return lu_linear_inverse(x, perm=self.perm, **self.params)

    def _inverse_backward(self, dz, dlog_det, cache):
        return lu_linear_inverse_backward(dz, dlog_det, cache)
