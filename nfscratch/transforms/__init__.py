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
from .actnorm import ActNorm
from .linear import LULinear
from .multiscale import FactorOut, squeeze
from .spline_autoregressive import SplineAutoregressive

TRANSFORMS = {cls.__name__: cls for cls in
              (Planar, PlanarChain, Radial, AffineCoupling, AdditiveCoupling, Permute, Reverse,
               ElementwiseAffine, Logit, MAF, IAF, SplineCoupling, SplineAutoregressive,
               IAFChain, ActNorm, LULinear, FactorOut)}

__all__ = ["Transform", "Planar", "PlanarChain", "Radial", "AffineCoupling", "AdditiveCoupling",
           "Permute", "Reverse", "ElementwiseAffine", "Logit", "alternating_mask", "MAF", "IAF",
           "SplineCoupling", "TRANSFORMS", "SplineAutoregressive", "IAFChain",
           "ActNorm", "LULinear", "FactorOut", "squeeze"]
