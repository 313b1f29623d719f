"""Ready-made flows: the architectures the demo, the benchmarks and the tutorials share.

Each builder returns a :class:`~nfscratch.flow.Flow`; all randomness of the initial parameters
comes from ``rng``.
"""
import numpy as np

from ._validate import as_rng, check_positive_int
from .flow import Flow
from .transforms import (AdditiveCoupling, AffineCoupling, ElementwiseAffine, Logit, Planar,
                         Radial)

__all__ = ["realnvp", "nice", "planar_flow", "radial_flow", "realnvp_image"]


def realnvp(dim=2, n_layers=8, hidden=(64, 64), activation="tanh", s_max=2.0, rng=None):
    """A RealNVP stack: ``n_layers`` affine couplings with alternating masks.

    Alternating the mask parity between layers means every feature is transformed by every
    other layer; for D = 2 this is the "1 -> 64 -> 64 -> 2" conditioner architecture.

    Examples
    --------
    >>> flow = realnvp(2, n_layers=4, hidden=[16], rng=0)
    >>> len(flow), flow.dim
    (4, 2)
    """
    rng = as_rng(rng)
    n_layers = check_positive_int(n_layers, "n_layers")
    return Flow([AffineCoupling(dim, hidden=hidden, activation=activation, s_max=s_max,
                                parity=k % 2, rng=rng) for k in range(n_layers)])


def nice(dim=2, n_layers=4, hidden=(64, 64), activation="relu", rng=None):
    r"""NICE (Dinh, Krueger & Bengio 2014, arXiv:1410.8516): ``n_layers`` additive couplings
    with alternating masks and a learned diagonal scaling.

    Additive couplings have unit Jacobian determinant, so on their own they preserve volume and
    cannot make the density more concentrated than the base: the NLL of any such stack is at
    least the base's entropy. Section 3.3 of the paper adds a diagonal scaling ``S`` as the top
    layer of the data-to-latent map, ``h = S \odot g(x)``, which contributes
    :math:`\sum_j \log S_j` to the log-det. Here it is an
    :class:`~nfscratch.transforms.ElementwiseAffine` (log-scale and shift, both starting at
    zero) at the latent end: the first transform of the generative (forward) direction, the
    last of the normalizing (inverse) one.

    Examples
    --------
    >>> flow = nice(2, n_layers=4, hidden=[8], rng=0)
    >>> len(flow), type(flow[0]).__name__
    (5, 'ElementwiseAffine')
    """
    rng = as_rng(rng)
    n_layers = check_positive_int(n_layers, "n_layers")
    return Flow([ElementwiseAffine(dim)]
                + [AdditiveCoupling(dim, hidden=hidden, activation=activation, parity=k % 2,
                                    rng=rng) for k in range(n_layers)])


def planar_flow(dim=2, n_layers=32, rng=None):
    """``n_layers`` planar layers (Rezende & Mohamed 2015 used K = 2..32 on U1-U4)."""
    rng = as_rng(rng)
    n_layers = check_positive_int(n_layers, "n_layers")
    return Flow([Planar(dim, rng=rng) for _ in range(n_layers)])


def radial_flow(dim=2, n_layers=8, rng=None):
    """``n_layers`` radial layers, each contracting or expanding space around its own centre.

    Examples
    --------
    >>> flow = radial_flow(2, n_layers=3, rng=0)
    >>> len(flow), flow.dim
    (3, 2)
    """
    rng = as_rng(rng)
    n_layers = check_positive_int(n_layers, "n_layers")
    return Flow([Radial(dim, rng=rng) for _ in range(n_layers)])


def checkerboard_mask(height, width, parity=0):
    """A flattened ``height x width`` checkerboard of 0/1 (RealNVP's spatial mask)."""
    i, j = np.indices((height, width))
    return ((i + j + parity) % 2 == 0).astype(np.int64).ravel()


def realnvp_image(height=8, width=8, n_layers=6, hidden=(256,), s_max=2.0, alpha=0.05,
                  rng=None):
    """A RealNVP for small images with values in [0, 1]: affine couplings with alternating
    checkerboard masks, then a :class:`~nfscratch.transforms.Logit` layer onto the unit cube.

    The conditioner is a fully connected MLP over the masked pixels (the images are tiny, so
    no convolutions are needed to make the point).

    Examples
    --------
    >>> flow = realnvp_image(4, 4, n_layers=2, hidden=[8], rng=0)
    >>> len(flow), flow.dim, type(flow[-1]).__name__
    (3, 16, 'Logit')
    """
    rng = as_rng(rng)
    n_layers = check_positive_int(n_layers, "n_layers")
    dim = check_positive_int(height, "height") * check_positive_int(width, "width")
    layers = [AffineCoupling(dim, mask=checkerboard_mask(height, width, k % 2), hidden=hidden,
                             s_max=s_max, rng=rng) for k in range(n_layers)]
    return Flow(layers + [Logit(dim, alpha=alpha)])
