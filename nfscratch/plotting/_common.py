"""Shared helpers of the plotting package: input checks, grids in the plane, colour scales.

Every plot in :mod:`nfscratch.plotting` draws the plane, so each starts by checking that it was
given a 2-D flow and a sensible box, and evaluates densities on the same kind of grid: cell
centres of a ``G x G`` partition of the box, so that ``sum(p) * cell_area`` is the midpoint rule
for the integral of ``p`` over the box (the mass check every density panel reports).

Figures are built with :class:`matplotlib.figure.Figure` directly, not through ``pyplot``: no
global state, nothing shown, nothing to close, and it works on a machine without a screen.
"""
from dataclasses import dataclass
import numbers

import numpy as np
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure

__all__ = ["Grid", "make_grid", "check_flow_2d", "parse_limits", "check_grid_size",
           "auto_limits", "density_norm", "new_figure", "layer_label"]


@dataclass
class Grid:
    """Cell centres of a regular ``G x G`` partition of a box in the plane.

    Attributes
    ----------
    limits : tuple of two (lo, hi) pairs
        ``((x_lo, x_hi), (y_lo, y_hi))``.
    xs, ys : ndarray, shape (G,)
        Cell centres along each axis.
    points : ndarray, shape (G*G, 2)
        All cell centres, row-major in y: ``points.reshape(G, G, 2)[i, j] == (xs[j], ys[i])``,
        which is the layout ``imshow(..., origin="lower")`` expects.
    cell_area : float
    """

    limits: tuple
    xs: np.ndarray
    ys: np.ndarray
    points: np.ndarray
    cell_area: float

    @property
    def size(self):
        return self.xs.size

    @property
    def extent(self):
        """``(x_lo, x_hi, y_lo, y_hi)`` for ``imshow``."""
        (x0, x1), (y0, y1) = self.limits
        return (x0, x1, y0, y1)

    def as_image(self, values):
        """Reshape per-point values (G*G,) to an image (G, G) indexed ``[iy, ix]``."""
        return np.asarray(values).reshape(self.ys.size, self.xs.size)

    def mass(self, log_density):
        """Midpoint-rule integral of ``exp(log_density)`` over the box (1 for a full density)."""
        return float(np.sum(np.exp(log_density)) * self.cell_area)


def check_grid_size(grid_size, name="grid_size"):
    """Return ``grid_size`` as an int >= 2 (a grid of 0 or 1 cells per axis is degenerate)."""
    if isinstance(grid_size, (bool, np.bool_)) or not isinstance(grid_size, (int, np.integer)):
        raise TypeError(f"{name}: expected an integer number of cells per axis (>= 2), "
                        f"got {grid_size!r} ({type(grid_size).__name__}).")
    if grid_size < 2:
        raise ValueError(f"{name}: expected at least 2 cells per axis, got {grid_size}; a grid "
                         "with fewer cells is empty or a single point and cannot show a density.")
    return int(grid_size)


def parse_limits(limits, name="limits"):
    """Normalize a box to ``((x_lo, x_hi), (y_lo, y_hi))`` of floats.

    Accepts a number ``L`` (the square ``[-L, L]^2``), one pair ``(lo, hi)`` for both axes, or
    two pairs. Each pair must be finite with ``lo < hi``.
    """
    if isinstance(limits, numbers.Real) and not isinstance(limits, bool):
        limits = (-float(limits), float(limits))
    try:
        arr = np.asarray(limits, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name}: expected a half-width L, a pair (lo, hi) or two pairs "
                        f"((x_lo, x_hi), (y_lo, y_hi)), got {limits!r}.") from None
    if arr.shape == (2,):
        arr = np.stack([arr, arr])
    if arr.shape != (2, 2):
        raise ValueError(f"{name}: expected a half-width L, a pair (lo, hi) or two pairs "
                         f"((x_lo, x_hi), (y_lo, y_hi)), got an array of shape {arr.shape}.")
    if not np.all(np.isfinite(arr)) or np.any(arr[:, 1] <= arr[:, 0]):
        raise ValueError(f"{name}: expected finite bounds with lo < hi on each axis, got "
                         f"{arr.tolist()}; an empty or inverted box holds no grid.")
    return ((float(arr[0, 0]), float(arr[0, 1])), (float(arr[1, 0]), float(arr[1, 1])))


def make_grid(limits, grid_size):
    """Build the :class:`Grid` of ``grid_size`` cells per axis over ``limits``.

    Examples
    --------
    >>> g = make_grid(2.0, 4)
    >>> g.points.shape, g.cell_area
    ((16, 2), 1.0)
    """
    limits = parse_limits(limits)
    G = check_grid_size(grid_size)
    (x0, x1), (y0, y1) = limits
    xe, ye = np.linspace(x0, x1, G + 1), np.linspace(y0, y1, G + 1)
    xs, ys = 0.5 * (xe[:-1] + xe[1:]), 0.5 * (ye[:-1] + ye[1:])     # (G,), (G,)
    X, Y = np.meshgrid(xs, ys)                                      # (G, G) each, [iy, ix]
    points = np.column_stack([X.ravel(), Y.ravel()])                # (G*G, 2)
    return Grid(limits, xs, ys, points, float((xe[1] - xe[0]) * (ye[1] - ye[0])))


def check_flow_2d(flow, name="flow"):
    """Raise unless ``flow`` is a Flow (or Transform) acting on the plane (``dim == 2``)."""
    if not hasattr(flow, "dim") or not (hasattr(flow, "transforms") or hasattr(flow, "forward")):
        raise TypeError(f"{name}: expected an nfscratch Flow, got {type(flow).__name__}.")
    if flow.dim != 2:
        raise ValueError(f"{name}: expected a 2-D flow (dim == 2) because this plot draws the "
                         f"plane, got a flow with dim={flow.dim}. Plot a 2-D flow, or a 2-D "
                         "slice of your model built as its own Flow.")
    return flow


def auto_limits(point_sets, quantile=0.005, pad=0.15, square=False):
    """A box holding the central ``1 - 2*quantile`` of every point set, padded by ``pad``.

    Parameters
    ----------
    point_sets : list of ndarray, each (N, 2)
    quantile : float
        Fraction clipped on each side of each axis, so a few outliers do not shrink the picture.
    pad : float
        Extra margin, as a fraction of the box's width, on every side.
    square : bool
        Make both axes the same length (around the same centre).
    """
    pts = np.concatenate([np.asarray(p, dtype=np.float64) for p in point_sets])
    pts = pts[np.all(np.isfinite(pts), axis=1)]
    if pts.size == 0:
        raise ValueError("point_sets: expected some finite points to size the box, got none.")
    lo = np.quantile(pts, quantile, axis=0)
    hi = np.quantile(pts, 1.0 - quantile, axis=0)
    width = np.maximum(hi - lo, 1e-6)
    if square:
        c, width = 0.5 * (lo + hi), np.full(2, width.max())
        lo, hi = c - width / 2, c + width / 2
    lo, hi = lo - pad * width, hi + pad * width
    return ((float(lo[0]), float(hi[0])), (float(lo[1]), float(hi[1])))


def density_norm(densities, log=True, decades=3.0):
    """A colour norm shared by several density images.

    ``log=True`` spans ``decades`` powers of ten below the largest value: a flow's density
    covers many decades, and a linear scale would hide everything but the peaks.
    """
    vmax = max(float(np.max(d)) for d in densities)
    if not np.isfinite(vmax) or vmax <= 0:
        raise ValueError(f"densities: expected a positive maximum to set the colour scale, got "
                         f"{vmax}. The box may miss the mass of the density; widen limits.")
    if log:
        return LogNorm(vmin=vmax * 10.0 ** (-decades), vmax=vmax, clip=True)
    return Normalize(vmin=0.0, vmax=vmax, clip=True)


def new_figure(width, height, **kw):
    """A headless Figure with constrained layout (labels never overlap or get cut)."""
    return Figure(figsize=(width, height), layout="constrained", **kw)


def layer_label(flow, k):
    """Short name of the point after ``k`` layers: ``"base"`` or ``"k: <layer name>"``."""
    return "base z0" if k == 0 else f"{k}: {flow.layers[k - 1].name}"
