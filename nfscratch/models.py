"""Ready-made flows: the architectures the demo, the benchmarks and the tutorials share.

Each builder returns a :class:`~nfscratch.flow.Flow`; all randomness of the initial parameters
comes from ``rng``.
"""
from ._validate import as_rng, check_positive_int
from .flow import Flow
from .transforms import AdditiveCoupling, AffineCoupling, Planar, Radial

__all__ = ["realnvp", "nice", "planar_flow", "radial_flow"]


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
    """A NICE stack of additive couplings with alternating masks (volume preserving)."""
    rng = as_rng(rng)
    n_layers = check_positive_int(n_layers, "n_layers")
    return Flow([AdditiveCoupling(dim, hidden=hidden, activation=activation, parity=k % 2, rng=rng)
                 for k in range(n_layers)])


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
