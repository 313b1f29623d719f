"""Pictures of flows in the plane: densities after every layer, the warp, training, Jacobians.

Every function returns a :class:`matplotlib.figure.Figure` (or, for movies, writes the file it is
given); nothing here calls ``plt.show()`` or writes anything unasked. Figures are built without
``pyplot``, so they work on a machine with no screen and need no closing.

* :mod:`~nfscratch.plotting.grid` -- exact density of ``z_k`` on a grid after every layer, each
  panel with its mass on the grid (which must be ~1).
* :mod:`~nfscratch.plotting.warp` -- the film strip: density, deformed grid lines and coloured
  samples, one panel per layer, in either direction.
* :mod:`~nfscratch.plotting.animate` -- the same warp as a GIF (or MP4 with ffmpeg), moving
  smoothly between layers.
* :mod:`~nfscratch.plotting.compare` -- target beside model on one colour scale.
* :mod:`~nfscratch.plotting.curves` -- training curves with their known limit, per-layer
  diagnostics.
* :mod:`~nfscratch.plotting.jacobian` -- one layer's Jacobian, its structure, the cost of its
  log-det.
* :mod:`~nfscratch.plotting.spline` -- one spline coupling layer's monotone functions, knots
  marked, before and after training.
* :mod:`~nfscratch.plotting.continuous` -- a continuous flow: velocity arrows at several times,
  trajectories and their straightness, the exact density over time, its animation.

Pictures for a course
---------------------
* One colour map per quantity, in every figure: densities in :data:`DENSITY_CMAP` (light at 0),
  signed quantities -- log-dets, Jacobian entries, differences -- in :data:`SIGNED_CMAP` centred
  on 0 (:func:`signed_norm`), gradient sizes in :data:`MAGNITUDE_CMAP`.
* Slides: ``with plotting.style("slides"): fig = film_strip(flow)`` (or ``style="slides"`` on any
  figure function) draws larger fonts, thicker lines, fewer ticks, on a proportionally larger
  figure; panels wrap after ``ncols`` a row (default at most 5). On the command line:
  ``nfscratch plot warp --style slides --ncols 4``.
* Files: :func:`animate_warp` refuses to replace an existing file unless ``overwrite=True`` and
  writes through a temporary file, so an interrupted run never leaves half a GIF; its axes stay
  fixed across frames and frame 0 is the base.
"""
from ._common import (DENSITY_CMAP, MAGNITUDE_CMAP, SIGNED_CMAP, STYLES, save_figure,
                      signed_norm, style)
from .animate import WarpMovie, animate_warp, ffmpeg_available, warp_animation
from .compare import target_vs_model
from .curves import layer_diagnostics, training_curves
from .grid import (DensityPanel, layer_densities, log_density_after, plot_density,
                   plot_layer_densities)
from .jacobian import numerical_jacobian, plot_jacobian
from .show import show
from .spline import plot_spline_layer
from .continuous import (animate_density, density_animation, plot_density_over_time,
                         plot_trajectories, plot_velocity_field)
from .warp import film_strip, grid_lines, start_colours, warp_paths
from .images import sample_grid

__all__ = ["DENSITY_CMAP", "SIGNED_CMAP", "MAGNITUDE_CMAP", "STYLES", "style", "signed_norm",
           "save_figure", "target_vs_model", "DensityPanel", "layer_densities", "log_density_after",
           "plot_density", "plot_layer_densities", "film_strip", "grid_lines", "start_colours",
           "warp_paths", "WarpMovie", "animate_warp", "warp_animation", "ffmpeg_available",
           "training_curves", "layer_diagnostics", "numerical_jacobian", "plot_jacobian",
           "plot_spline_layer", "plot_velocity_field", "plot_trajectories",
           "plot_density_over_time", "density_animation", "animate_density",
           "sample_grid"]
