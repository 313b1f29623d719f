"""Flow transforms: one family per file, each with pure forward/backward functions and a class.

``TRANSFORMS`` maps a class name to its class; :mod:`nfscratch.io` uses it to rebuild a saved
flow, so a new transform must be registered here to be saved and loaded.
"""
from .autoregressive import IAF, MAF
from .base import Transform
from .coupling import AdditiveCoupling, AffineCoupling, alternating_mask
from .elementwise import ElementwiseAffine
from .iaf_chain import IAFChain
from .logit import Logit
from .permutation import Permute, Reverse
from .planar import Planar, PlanarChain
from .radial import Radial
from .spline import SplineCoupling

TRANSFORMS = {cls.__name__: cls for cls in
              (Planar, PlanarChain, Radial, AffineCoupling, AdditiveCoupling, Permute, Reverse,
               ElementwiseAffine, Logit, MAF, IAF, SplineCoupling, IAFChain)}

__all__ = ["Transform", "Planar", "PlanarChain", "Radial", "AffineCoupling", "AdditiveCoupling",
           "Permute", "Reverse", "ElementwiseAffine", "Logit", "alternating_mask", "MAF", "IAF",
           "SplineCoupling", "TRANSFORMS", "IAFChain"]
