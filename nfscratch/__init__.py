"""nfscratch: normalizing flows from scratch in NumPy, with hand-written gradients.

Direction convention: ``forward`` maps base -> data (z -> x), ``inverse`` maps data -> base,
and "backward" always means backpropagation.
"""
from . import datasets, distributions, losses, nn, transforms
from .config import get_backend, set_backend, use_backend
from .distributions import StandardNormal
from .flow import Flow, Trajectory
from .transforms import (AdditiveCoupling, AffineCoupling, ElementwiseAffine, Logit, Permute,
                         Planar, PlanarChain, Radial, Reverse, Transform)

from .doctor import doctor   # the function; the module stays importable as nfscratch.doctor

__version__ = "0.1.0"

__all__ = ["Flow", "Trajectory", "StandardNormal", "Transform", "Planar", "PlanarChain", "Radial",
           "AffineCoupling", "AdditiveCoupling", "Permute", "Reverse", "ElementwiseAffine", "Logit",
           "datasets", "distributions", "losses", "nn", "transforms", "get_backend", "set_backend",
           "use_backend", "doctor"]
