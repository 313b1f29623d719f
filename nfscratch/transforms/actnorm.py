r"""ActNorm: a per-feature scale and shift, initialized from the first batch of data.

Glow (Kingma & Dhariwal 2018) replaces batch normalization by an affine layer whose parameters
are *set* from the statistics of the first minibatch and then trained like any other: the
layer starts out standardizing its input, which is what batch norm buys early in training,
without making one sample's output depend on the rest of the batch (that would break the
exact, per-sample density of a flow).

Notes
-----
The map is the elementwise affine one of :mod:`nfscratch.transforms.elementwise`,

.. math::

    x = z \odot e^{\log s} + b, \qquad
    \log\left|\det \frac{\partial x}{\partial z}\right| = \textstyle\sum_j \log s_j,

an O(D) log-det (diagonal Jacobian), the same for every sample. Its forward, inverse and both
backward passes are exactly the functions of that module; what is new here is the
*data-dependent initialization* (:func:`actnorm_init`). On the first batch the layer sees,
in either direction, it sets ``log s`` and ``b`` so that the layer's *output* on that batch has
zero mean and unit variance per feature:

* first call ``inverse(x)`` (density estimation, the usual case): with the batch mean ``m`` and
  standard deviation ``sd`` of ``x``, ``b = m`` and ``log s = log sd``, so
  ``z = (x - m) / sd`` is standardized -- Glow's rule;
* first call ``forward(z)`` (sampling or variational inference first): ``log s = -log sd`` and
  ``b = -m / sd`` with the statistics of ``z``, so ``x = (z - m) / sd`` is standardized.

The initialization is a preprocessing of the parameters, not part of the function being
differentiated: gradients are those of the affine map at the parameters it chose. Afterwards
``initialized`` is True, is part of the layer's config, and is saved with it by
:mod:`nfscratch.io`, so a loaded layer is never re-initialized (and a layer saved before it saw
data initializes on its first batch after loading).

References
----------
Kingma, Dhariwal, "Glow: Generative Flow with Invertible 1x1 Convolutions", NeurIPS 2018,
arXiv:1807.03039 (Sec. 3.1).
"""
import numpy as np

from .elementwise import ElementwiseAffine, elementwise_affine_forward, elementwise_affine_inverse

__all__ = ["actnorm_init", "ActNorm"]

#: Added to the standard deviation, so a feature that is constant in the first batch (a blank
#: pixel) gets a large but finite scale instead of a division by zero.
EPS = 1e-6


def actnorm_init(p, direction):
    r"""``(log_scale, shift)`` that standardize the layer's output on the batch ``p``.

    Parameters
    ----------
    p : ndarray, shape (N, D), N >= 2
        The first batch: data-side ``x`` for ``direction="inverse"``, base-side ``z`` for
        ``"forward"``.
    direction : {"forward", "inverse"}

    Returns
    -------
    log_scale, shift : ndarray, shape (D,)

    Examples
    --------
    >>> x = np.array([[1.0, 10.0], [3.0, 30.0]])
    >>> log_scale, shift = actnorm_init(x, "inverse")
    >>> z, _, _ = elementwise_affine_inverse(x, log_scale, shift)
    >>> np.round(z, 6).tolist()
    [[-1.0, -1.0], [1.0, 1.0]]
    """
    if p.shape[0] < 2:
        raise ValueError(f"{'x' if direction == 'inverse' else 'z'}: ActNorm initializes its scale "
                         f"from the spread of its first batch and needs at least 2 samples, got "
                         f"{p.shape[0]}. Pass a larger first batch, or build it with "
                         "initialized=True.")
    mean, sd = p.mean(axis=0), p.std(axis=0) + EPS                    # (D,), (D,)
    if direction == "inverse":                                        # z = (x - mean) / sd
        return np.log(sd), mean
    return -np.log(sd), -mean / sd                                    # x = (z - mean) / sd


class ActNorm(ElementwiseAffine):
    """Per-feature scale and shift with Glow's data-dependent initialization.

    Parameters
    ----------
    dim : int
    initialized : bool
        False (default): the first batch seen, in either direction, sets the parameters (see
        the module docstring). True: the layer is used as it is (the identity when new).

    Examples
    --------
    >>> t = ActNorm(2)
    >>> x = np.random.default_rng(0).normal(3.0, 2.0, size=(500, 2))
    >>> z, log_det = t.inverse(x)
    >>> t.initialized, np.round(z.mean(axis=0), 10).tolist(), np.round(z.std(axis=0), 6).tolist()
    (True, [0.0, 0.0], [1.0, 1.0])
    """

    def __init__(self, dim, initialized=False):
        super().__init__(dim)
        if not isinstance(initialized, (bool, np.bool_)):
            raise TypeError(f"initialized: expected True or False, got {initialized!r}.")
        self.initialized = bool(initialized)

    def config(self):
        return {"dim": self.dim, "initialized": self.initialized}

    def _initialize(self, p, direction):
        log_scale, shift = actnorm_init(p, direction)
        self.params["log_scale"][...] = log_scale        # in place: optimizers hold these arrays
        self.params["shift"][...] = shift
        self.initialized = True

    def _forward(self, z):
        if not self.initialized:
            self._initialize(z, "forward")
        return elementwise_affine_forward(z, **self.params)

    def _inverse(self, x):
        if not self.initialized:
            self._initialize(x, "inverse")
        return elementwise_affine_inverse(x, **self.params)

    # the backward passes are ElementwiseAffine's (elementwise_affine_backward and
    # elementwise_affine_inverse_backward): initialization does not change the map's gradient
