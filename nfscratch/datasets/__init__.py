r"""Two-dimensional targets for flows, and small images.

Three kinds of target, one module each (every public name is re-exported here, so
``datasets.two_moons(...)``, ``datasets.energy("U1")`` and ``datasets.digits()`` all work):

* :mod:`.toys` -- **samplers** for density estimation (forward KL): ``two_moons``, ``circles``,
  ``eight_gaussians``, ``checkerboard``, ``rings``, ``swiss_roll``, ``pinwheel``,
  ``two_spirals``, ``sample(name, n)``, and the floor of every result: the true density
  ``log_prob(name, x)`` and entropy ``entropy(name)``, computed exactly (by quadrature).
* :mod:`.energies` -- **energies** for variational inference (reverse KL): U1-U4 of Rezende &
  Mohamed (2015) with the box wall, hand-derived gradients and ``log_normalizer``;
  ``energy(name)``, ``ENERGIES``, ``Energy.from_functions`` for your own.
* :mod:`.images` -- the 8x8 ``digits``, ``dequantize`` and ``bits_per_dim``.
"""
from .energies import BOX_HALF_WIDTH, ENERGIES, WALL_SCALE, Energy, energy, gaussian_mixture
from .images import bits_per_dim, dequantize, digits
from .images import digits_split, heldout_bits_per_dim
from .toys import (SAMPLERS, checkerboard, circles, eight_gaussians, entropy, log_prob, pinwheel,
                   rings, sample, swiss_roll, two_moons, two_spirals)
from .toys import moon_entropy, two_moons_labeled

__all__ = [
    "two_moons", "circles", "eight_gaussians", "checkerboard", "rings", "swiss_roll",
    "pinwheel", "two_spirals", "SAMPLERS", "sample", "log_prob", "entropy",
    "Energy", "ENERGIES", "energy", "gaussian_mixture", "BOX_HALF_WIDTH", "WALL_SCALE",
    "digits", "dequantize", "bits_per_dim",
    "two_moons_labeled", "moon_entropy",
    "digits_split", "heldout_bits_per_dim",
]
