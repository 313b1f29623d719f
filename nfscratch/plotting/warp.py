r"""The film strip: a Gaussian warped into the target one layer at a time (or back again).

One panel per layer count ``k``, each with three things on top of each other:

* the exact density of :math:`z_k` as a heatmap (:mod:`nfscratch.plotting.grid`);
* a deformed grid: straight lines drawn in the starting space, pushed through the same layers,
  so one sees *how* each layer bends, stretches and squeezes the plane;
* samples coloured by where they started (their angle around the centre, or their quadrant),
  so one can follow a point from panel to panel.

In the generative direction (``"forward"``) the strip starts at the base and the lines and
samples start there. In the normalizing direction (``"inverse"``) it starts at the data: data
points (or model samples) and a grid drawn over them are pulled back layer by layer to the
base, which is what maximum-likelihood training makes Gaussian. Titles name the layer and the
mean of its per-sample log-det in the direction of the pass, so a layer that does nothing (log-det
0) or that blows up (huge log-det) stands out.
"""
from dataclasses import dataclass

import numpy as np
from matplotlib import colormaps

from .._validate import as_batch, check_positive_int
from ._common import (DENSITY_CMAP, auto_limits, check_flow_2d, compact_titles, default_ncols,
                      density_norm, new_figure, parse_limits, style_scale, styled)
from .grid import check_layers, layer_densities

__all__ = ["start_colours", "grid_lines", "WarpPaths", "warp_paths", "film_strip"]


def start_colours(points, mode="angle", centre=None):
    """RGBA colour of each point from where it starts.

    Parameters
    ----------
    points : ndarray, shape (N, 2)
    mode : {"angle", "quadrant"}
        ``"angle"``: hue from the angle around ``centre`` (a cyclic colour map, so neighbours
        get similar colours). ``"quadrant"``: four distinct colours by the signs of the offsets.
    centre : array_like of 2 floats, optional
        Default: the mean of ``points``.

    Returns
    -------
    ndarray, shape (N, 4)
    """
    points = as_batch(points, 2, "points")
    c = points.mean(axis=0) if centre is None else np.asarray(centre, dtype=np.float64)
    d = points - c                                                        # (N, 2)
    if mode == "angle":
        return colormaps["hsv"]((np.arctan2(d[:, 1], d[:, 0]) + np.pi) / (2 * np.pi))
    if mode == "quadrant":
        palette = colormaps["tab10"](np.array([0, 1, 2, 3]))              # (4, 4)
        return palette[(d[:, 0] < 0).astype(int) + 2 * (d[:, 1] < 0).astype(int)]
    raise ValueError(f"mode: expected 'angle' or 'quadrant', got {mode!r}.")


def grid_lines(limits, n_lines=11, points_per_line=100):
    """Straight lines of a grid over ``limits``: ``n_lines`` vertical then ``n_lines`` horizontal.

    Returns
    -------
    ndarray, shape (2 * n_lines, points_per_line, 2)
    """
    (x0, x1), (y0, y1) = parse_limits(limits)
    L = check_positive_int(n_lines, "n_lines")
    P = check_positive_int(points_per_line, "points_per_line")
    if L < 2 or P < 2:
        raise ValueError(f"n_lines, points_per_line: expected at least 2 of each for a grid, "
                         f"got n_lines={L}, points_per_line={P}.")
    at_x, at_y = np.linspace(x0, x1, L), np.linspace(y0, y1, L)
    along_x, along_y = np.linspace(x0, x1, P), np.linspace(y0, y1, P)
    vertical = np.stack(np.broadcast_arrays(at_x[:, None], along_y[None, :]), axis=-1)   # (L, P, 2)
    horizontal = np.stack(np.broadcast_arrays(along_x[None, :], at_y[:, None]), axis=-1)
    return np.concatenate([vertical, horizontal])                                       # (2L, P, 2)


@dataclass
class WarpPaths:
    """Samples and grid lines after every layer, in the order of a pass.

    Attributes
    ----------
    direction : {"forward", "inverse"}
    layer_counts : list of int
        ``layer_counts[j]`` is the ``k`` of ``z_k`` after ``j`` steps of the pass
        (``0, 1, ..., K`` forward; ``K, ..., 0`` inverse).
    samples : list of ndarray, each (N, 2)
    lines : list of ndarray, each (2L, P, 2)
    step_log_det : list of ndarray, each (N,)
        ``step_log_det[j]`` is the per-sample log-det of step ``j`` (going from entry ``j`` to
        ``j + 1``), in the direction of the pass.
    names : list of str
        The layer applied at each step.
    colours : ndarray, shape (N, 4)
        Each sample's colour, from where it started.
    """

    direction: str
    layer_counts: list
    samples: list
    lines: list
    step_log_det: list
    names: list
    colours: np.ndarray

    def index(self, k):
        """Position in the lists of the point after ``k`` layers."""
        return self.layer_counts.index(k)


def warp_paths(flow, samples, lines, direction="forward", colour_by="angle"):
    """Push ``samples`` (N, 2) and ``lines`` (2L, P, 2) through the whole flow, keeping every step.

    One call of :meth:`Flow.trajectory` carries both, so the lines drawn in a panel are exactly
    the points the flow produced.
    """
    check_flow_2d(flow)
    samples = as_batch(samples, 2, "samples")
    lines = np.asarray(lines, dtype=np.float64)
    if lines.ndim != 3 or lines.shape[-1] != 2:
        raise ValueError(f"lines: expected shape (n_lines, points_per_line, 2), got {lines.shape}.")
    N = samples.shape[0]
    traj = flow.trajectory(np.concatenate([samples, lines.reshape(-1, 2)]), direction)
    K = len(flow.layers)
    counts = list(range(K + 1)) if direction == "forward" else list(range(K, -1, -1))
    return WarpPaths(direction, counts,
                     [p[:N] for p in traj.points],
                     [p[N:].reshape(lines.shape) for p in traj.points],
                     [ld[:N] for ld in traj.log_dets], list(traj.names),
                     start_colours(samples, colour_by))


def _panel_title(paths, j_prev, j, flow):
    """Title of the panel reached at step ``j`` of the pass, coming from step ``j_prev``."""
    k = paths.layer_counts[j]
    if j == 0:
        return "base $z_0$" if paths.direction == "forward" else f"data $x = z_{{{k}}}$"
    steps = range(j_prev, j)
    mean_ld = sum(float(np.mean(paths.step_log_det[s])) for s in steps)
    compact = compact_titles()
    if compact:
        what = "log-det"
    else:
        what = "log|det dx/dz|" if paths.direction == "forward" else "log|det dz/dx|"
    if paths.direction == "forward":
        ks = [paths.layer_counts[s + 1] for s in steps]
    else:
        ks = [paths.layer_counts[s] for s in steps]
    names = sorted({flow.layers[i - 1].name for i in ks})
    if len(ks) == 1:
        head = f"{'after' if paths.direction == 'forward' else 'undo'} {ks[0]}: {names[0]}"
    else:
        head = (f"{'after' if paths.direction == 'forward' else 'undo'} {min(ks)}-{max(ks)}: "
                f"{'/'.join(names)}")
    end = "\n(= base)" if paths.direction == "inverse" and k == 0 else ""
    stat = "mean" if len(ks) == 1 else ("Σ mean" if compact else "Σ of means,")
    mean_ld = 0.0 if abs(mean_ld) < 0.005 else mean_ld     # no "-0.00"
    return f"{head}{end}\n{stat} {what} {'+' if mean_ld >= 0 else ''}{mean_ld:.2f}"


@styled
def film_strip(flow, *, direction="forward", layers=None, data=None, n_samples=600,
               limits=None, share_limits=False, start_limits=None, grid_size=100, n_lines=9,
               colour_by="angle", log=True, decades=3.0, ncols=None, rng=0, cmap=DENSITY_CMAP,
               tol=0.02, title=None):
    r"""A panel per layer: density heatmap, deformed grid and coloured samples.

    Parameters
    ----------
    flow : Flow
        A 2-D flow.
    direction : {"forward", "inverse"}
        ``"forward"``: base -> data (generative). ``"inverse"``: data -> base (normalizing).
    layers : list of int, optional
        Layer counts ``k`` to draw (0 = base, K = model); default all. A deep flow is easier to
        read with a few, e.g. ``[0, 1, 2, 4, 8, 16, 32]``; titles then sum over the skipped
        layers.
    data : ndarray, shape (N, 2), optional
        Points to pull back in the inverse direction (default: ``n_samples`` model samples).
        Ignored in the forward direction, which starts from base samples.
    n_samples : int
    limits : optional
        One box for every panel. Default: a square box per panel fitted to its samples (the
        tick labels give the scale), or one box for all with ``share_limits=True``.
    share_limits : bool
        Fit one common box to the samples of every panel, so sizes compare directly; a layer
        that stretches far out then shrinks the others.
    start_limits : optional
        The box in which the straight grid lines are drawn before the warp. Default
        ``[-3, 3]^2`` forward, the data's box inverse.
    grid_size : int
        Cells per axis of each density heatmap.
    n_lines : int
        Grid lines per direction.
    colour_by : {"angle", "quadrant"}
    log : bool
        Log colour scale of the densities (``decades`` powers of ten).
    decades : float
    ncols : int, optional
        Panels per row; more panels wrap onto further rows. Default: at most 5 a row, rows as
        even as possible (9 panels: 5 + 4), so a slide shows panels large enough to read.
    rng : Generator or int
        Randomness of the samples.
    cmap : str
        Colour map of the density; default the package's density map
        (:data:`~nfscratch.plotting.DENSITY_CMAP`, light, so lines and samples stay visible).
    tol : float
        Each panel's corner shows the density's mass on its grid; a mass further than ``tol``
        from 1 is marked "(!)" in red.
    title : str, optional
    style : {"default", "slides"}, optional
        Figure style (see :func:`~nfscratch.plotting.style`); default the one in force.

    Returns
    -------
    matplotlib.figure.Figure
        Attributes added: ``fig.panels`` (the :class:`~nfscratch.plotting.grid.DensityPanel`
        list, in drawing order) and ``fig.warp`` (the :class:`WarpPaths`).

    Examples
    --------
    >>> from nfscratch.models import planar_flow
    >>> fig = film_strip(planar_flow(2, 3, rng=0), grid_size=20, n_samples=50)
    >>> len(fig.panels)
    4
    """
    check_flow_2d(flow)
    if direction not in ("forward", "inverse"):
        raise ValueError(f"direction: expected 'forward' (base -> data) or 'inverse' "
                         f"(data -> base), got {direction!r}.")
    K = len(flow.layers)
    layers = sorted(set(check_layers(flow, layers)), reverse=(direction == "inverse"))
    n_samples = check_positive_int(n_samples, "n_samples")
    gen = np.random.default_rng(rng)
    if direction == "forward":
        start = flow.base.sample(n_samples, gen)
        start_limits = 3.0 if start_limits is None else start_limits
    else:
        start = flow.sample(n_samples, gen) if data is None else as_batch(data, 2, "data")
        if start_limits is None:
            start_limits = auto_limits([start], quantile=0.01, pad=0.05)
    lines = grid_lines(start_limits, n_lines, 100)
    paths = warp_paths(flow, start, lines, direction, colour_by)
    idx = [paths.index(k) for k in layers]
    if limits is not None:
        panels = layer_densities(flow, layers, limits=limits, grid_size=grid_size)
    elif share_limits:
        panels = layer_densities(flow, layers, grid_size=grid_size,
                                 limits=auto_limits([paths.samples[j] for j in idx], square=True))
    else:   # each panel its own square box: intermediate layers may stretch far out
        panels = [layer_densities(flow, [k], grid_size=grid_size,
                                  limits=auto_limits([paths.samples[j]], square=True))[0]
                  for k, j in zip(layers, idx)]
    norm = density_norm([p.density for p in panels], log=log, decades=decades)

    n = len(layers)
    ncols = default_ncols(n) if ncols is None else min(check_positive_int(ncols, "ncols"), n)
    nrows = -(-n // ncols)
    fig = new_figure(2.3 * ncols + 0.9, 2.75 * nrows + 0.4)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    scale = style_scale()                # markers and lines in points: grow with the figure
    j_prev = None
    for ax, panel, j in zip(axes, panels, idx):
        im = ax.imshow(panel.density, origin="lower", extent=panel.grid.extent, norm=norm,
                       cmap=cmap, interpolation="bilinear", aspect="equal")
        ax.set_facecolor(im.cmap(0.0))
        for line in paths.lines[j]:                                        # (P, 2)
            (artist,) = ax.plot(line[:, 0], line[:, 1], color="0.2", lw=0.45 * scale,
                                alpha=0.45)
            artist.set_gid("grid-line")
        ax.scatter(paths.samples[j][:, 0], paths.samples[j][:, 1], s=3 * scale ** 2, c=paths.colours,
                   linewidths=0, gid="samples")
        ax.set_xlim(panel.grid.limits[0])
        ax.set_ylim(panel.grid.limits[1])
        ax.set_title(_panel_title(paths, 0 if j_prev is None else j_prev, j, flow),
                     fontsize="small")
        off = abs(panel.mass - 1.0) > tol       # box too small, or a wrong log-det
        ax.text(0.02, 0.02, f"mass {panel.mass:.3f}" + (" (!)" if off else ""),
                transform=ax.transAxes, fontsize="x-small", color="C3" if off else "0.2",
                bbox=dict(fc="white", ec="none", alpha=0.6, pad=1))
        ax.tick_params(labelsize="x-small")
        j_prev = j
    for ax in axes[n:]:
        ax.set_visible(False)
    fig.colorbar(im, ax=axes[:n].tolist(), shrink=0.8, label="density" + (" (log)" if log else ""))
    if title is None:
        title = ("generative direction: base → data (forward)" if direction == "forward"
                 else "normalizing direction: data → base (inverse)")
        title += f"; {K} layers; colour = {'angle' if colour_by == 'angle' else 'quadrant'} at the start"
    fig.suptitle(title, fontsize="medium")
    fig.panels = panels
    fig.warp = paths
    return fig
