"""Shared helpers of the plotting package: input checks, grids in the plane, colour scales.

Every plot in :mod:`nfscratch.plotting` draws the plane, so each starts by checking that it was
given a 2-D flow and a sensible box, and evaluates densities on the same kind of grid: cell
centres of a ``G x G`` partition of the box, so that ``sum(p) * cell_area`` is the midpoint rule
for the integral of ``p`` over the box (the mass check every density panel reports).

Figures are built with :class:`matplotlib.figure.Figure` directly, not through ``pyplot``: no
global state, nothing shown, nothing to close, and it works on a machine without a screen.

It also holds what every figure shares so that a course's pictures agree with each other: one
colour map per quantity (:data:`DENSITY_CMAP`, :data:`SIGNED_CMAP`, :data:`MAGNITUDE_CMAP`), the
figure styles (:func:`style`: ``"default"`` for reading on screen, ``"slides"`` for a projector),
and files written whole or not at all (:func:`atomic_output`).
"""
import contextlib
import contextvars
from dataclasses import dataclass
import functools
import numbers
import os
from pathlib import Path
import tempfile

import matplotlib
import numpy as np
from matplotlib.colors import LogNorm, Normalize, TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

__all__ = ["Grid", "make_grid", "check_flow_2d", "parse_limits", "check_grid_size",
           "auto_limits", "default_ncols", "density_norm", "signed_norm", "new_figure", "layer_label",
           "DENSITY_CMAP", "SIGNED_CMAP", "MAGNITUDE_CMAP", "STYLES", "style", "styled",
           "current_style", "check_style", "style_scale", "compact_titles", "check_output_file", "atomic_output", "save_figure"]

# One colour map per quantity, for every figure of the package (and the tutorials):
# a density is always DENSITY_CMAP, a signed quantity (log-dets, Jacobian entries, differences)
# always SIGNED_CMAP centred on 0 (use signed_norm), a positive size that is not a density
# (gradient norms) MAGNITUDE_CMAP. The density map is light at 0 so that grid lines and the
# coloured samples drawn on top stay visible; the signed map avoids blue so that blue always
# means density.
DENSITY_CMAP = "Blues"
SIGNED_CMAP = "PuOr_r"
MAGNITUDE_CMAP = "viridis"


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


def signed_norm(values):
    """A colour norm for a signed quantity: symmetric around 0, 0 at the map's neutral middle."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.abs(values[np.isfinite(values)])
    lim = float(finite.max()) if finite.size else 0.0
    lim = lim if lim > 0 else 1.0
    return TwoSlopeNorm(0.0, -lim, lim)


# ----------------------------------------------------------------------------------------------
# figure styles
# ----------------------------------------------------------------------------------------------
# Font sizes in the figure code are relative ("small", "x-small"), so a style changes them all
# through rcParams["font.size"]. "scale" multiplies every figure's size in inches, so larger
# fonts keep the same room; "max_ticks" caps the ticks per axis (None: matplotlib's choice);
# "compact" asks for shorter panel titles (fonts grow faster than the panels).
_SLIDES_RC = {"font.size": 17.0, "axes.titlesize": "medium", "axes.labelsize": "medium",
              "xtick.labelsize": "small", "ytick.labelsize": "small", "legend.fontsize": "small",
              "figure.titlesize": "large", "lines.linewidth": 2.0, "axes.linewidth": 1.2,
              "xtick.major.width": 1.2, "ytick.major.width": 1.2}
STYLES = {
    "default": {"rc": {k: matplotlib.rcParamsDefault[k] for k in _SLIDES_RC},
                "scale": 1.0, "max_ticks": None, "compact": False},
    "slides": {"rc": _SLIDES_RC, "scale": 1.45, "max_ticks": 4, "compact": True},
}
_current_style = contextvars.ContextVar("nfscratch_plot_style", default="default")


def current_style():
    """Name of the style in force (``"default"`` outside any :func:`style` block)."""
    return _current_style.get()


def check_style(name):
    """Return ``name`` if it is a known style; raise a ValueError naming the choices otherwise."""
    if not isinstance(name, str) or name not in STYLES:
        raise ValueError(f"style: expected one of {sorted(STYLES)}, got {name!r}.")
    return name


@contextlib.contextmanager
def style(name="slides"):
    """Draw every figure made inside the block in the style ``name``.

    ``"slides"``: fonts about 1.7 times larger, figures 1.45 times larger (so panels keep their
    room), thicker lines and at most 4 ticks per axis, for a projector at the back of a room.
    ``"default"``: matplotlib's sizes, for reading on a screen or on paper. Every figure function
    of :mod:`nfscratch.plotting` also takes ``style=`` for one figure.

    Examples
    --------
    >>> from nfscratch.models import planar_flow
    >>> from nfscratch.plotting import film_strip
    >>> with style("slides"):
    ...     fig = film_strip(planar_flow(2, 2, rng=0), grid_size=10, n_samples=20)
    >>> fig.axes[0].title.get_fontsize() > 12
    True
    """
    token = _current_style.set(check_style(name))
    try:
        with matplotlib.rc_context(STYLES[name]["rc"]):
            yield
    finally:
        _current_style.reset(token)


def style_scale():
    """Size factor of the style in force, for marker sizes and line widths given in points."""
    return STYLES[current_style()]["scale"]


def compact_titles():
    """True when the style in force wants short panel titles."""
    return STYLES[current_style()]["compact"]


def _fewer_ticks(fig):
    """Cap the ticks of every linear axis of ``fig`` at the style's ``max_ticks``."""
    n = STYLES[current_style()]["max_ticks"]
    if n is None:
        return
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            locator = axis.get_major_locator()
            if isinstance(locator, MaxNLocator):     # not fixed labels, not log axes
                locator.set_params(nbins=n)


def styled(func):
    """Give a figure function a ``style=None`` keyword: draw it inside :func:`style` (None: the
    style in force) and cap its ticks; the function returns a Figure (or a path, for files)."""
    @functools.wraps(func)
    def wrapper(*args, style=None, **kw):
        with _use(style):
            out = func(*args, **kw)
            if isinstance(out, Figure):
                _fewer_ticks(out)
        return out
    return wrapper


def _use(name):
    return contextlib.nullcontext() if name is None else style(name)


def new_figure(width, height, **kw):
    """A headless Figure with constrained layout (labels never overlap or get cut), its size
    in inches scaled by the style in force."""
    scale = STYLES[current_style()]["scale"]
    return Figure(figsize=(width * scale, height * scale), layout="constrained", **kw)


# ----------------------------------------------------------------------------------------------
# writing files: refuse to replace unless asked; never leave half a file
# ----------------------------------------------------------------------------------------------
def check_output_file(path, *, overwrite=False, name="path", probe=False):
    """Return ``path`` as a Path if a file may be written there; raise a clear error otherwise.

    Refuses a directory, an existing file (unless ``overwrite``), a missing parent directory
    and, with ``probe=True``, a directory where no file can be created (checked by creating and
    removing an empty temporary file: permission bits alone miss read-only file systems and
    a process running as root). Call it before long work, so nothing is computed for nothing.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{name}: expected a file name, got the directory {path}.")
    if path.exists() and not overwrite:
        hint = "--overwrite" if name.startswith("--") else "overwrite=True"
        raise FileExistsError(f"{name}: {path} already exists; pass {hint} to replace it "
                              "(nothing was written).")
    parent = path.parent
    if not parent.is_dir():
        raise FileNotFoundError(f"{name}: the directory {parent} does not exist; create it "
                                "first or write elsewhere.")
    if probe:
        try:
            fd, tmp = tempfile.mkstemp(dir=parent, prefix=".nfscratch-probe-")
        except OSError as exc:
            raise PermissionError(f"{name}: cannot write into the directory {parent} "
                                  f"({exc.strerror or exc}); choose a writable place.") from None
        os.close(fd)
        os.unlink(tmp)
    return path


@contextlib.contextmanager
def atomic_output(path, *, overwrite=False, name="path"):
    """Yield a temporary path beside ``path``; on success rename it to ``path`` in one step.

    A crash or an error while writing leaves ``path`` as it was (absent, or the old file)
    and removes the temporary file. The temporary name keeps the suffix, so writers that pick
    the format from it (``savefig``, the GIF writer) still do.
    """
    path = check_output_file(path, overwrite=overwrite, name=name)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)       # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_figure(fig, path, *, dpi=None, overwrite=False, name="path"):
    """``fig.savefig`` through :func:`atomic_output`; returns the path written."""
    path = Path(path)
    with atomic_output(path, overwrite=overwrite, name=name) as tmp:
        fig.savefig(tmp, dpi=dpi)
    return path


def default_ncols(n, max_cols=5):
    """Columns for ``n`` panels: at most ``max_cols`` a row, rows as even as possible.

    Examples
    --------
    >>> [default_ncols(n) for n in (1, 4, 5, 6, 7, 9, 33)]
    [1, 4, 5, 3, 4, 5, 5]
    """
    rows = -(-n // max_cols)
    return -(-n // rows)


def layer_label(flow, k):
    """Short name of the point after ``k`` layers: ``"base"`` or ``"k: <layer name>"``."""
    return "base z0" if k == 0 else f"{k}: {flow.layers[k - 1].name}"
