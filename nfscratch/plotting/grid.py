r"""Exact density of a 2-D flow on a grid, after every layer.

Write :math:`z_k = f_k \circ \dots \circ f_1(z_0)` for the point after ``k`` layers. Its density
follows from the change of variables through the *inverse* of the first ``k`` layers:

.. math::

    \log p_k(y) = \log p_0(z_0) + \sum_{j=1}^{k} \log\left|\det
                  \frac{\partial z_{j-1}}{\partial z_j}\right|, \qquad
    z_0 = f_1^{-1} \circ \dots \circ f_k^{-1}(y).

Evaluating it at the centres of a grid and summing ``p_k * cell_area`` integrates the density
over the box, which must give 1 up to the mass outside the box and the grid's resolution. Each
panel reports that number: a built-in sanity check a student can see (a log-det with the wrong
sign or a missing term shows up at once as a mass far from 1).

Cost: panel ``k`` needs ``k`` inverse layers on ``G^2`` points, so all panels together need
``K(K+1)/2``; pass ``layers=`` to draw a subset when a flow is deep.
"""
from dataclasses import dataclass

import numpy as np

from .._validate import check_positive_int
from ._common import (DENSITY_CMAP, Grid, auto_limits, check_flow_2d, default_ncols, density_norm,
                      layer_label, make_grid, new_figure, styled)

__all__ = ["log_density_after", "DensityPanel", "layer_densities", "plot_density",
           "plot_layer_densities", "check_layers"]


def check_layers(flow, layers):
    """Validate a list of layer counts ``k`` (0 = base, K = the whole flow); None means all."""
    K = len(flow.layers)
    if layers is None:
        return list(range(K + 1))
    try:
        out = [int(k) for k in layers]
    except (TypeError, ValueError):
        raise TypeError(f"layers: expected a list of integers between 0 and {K}, got {layers!r}.") from None
    if not out:
        raise ValueError(f"layers: expected at least one layer count between 0 and {K}, got an empty list.")
    bad = [k for k in out if not 0 <= k <= K]
    if bad:
        raise ValueError(f"layers: expected counts between 0 (the base) and {K} (all layers of "
                         f"this flow), got {bad}.")
    return out


def log_density_after(flow, k, points):
    r"""Exact :math:`\log p_k` at ``points``: the density of the point after ``k`` layers.

    Parameters
    ----------
    flow : Flow
    k : int
        Number of layers applied, 0 (the base) to ``len(flow)`` (the model, ``flow.log_prob``).
    points : ndarray, shape (N, D)

    Returns
    -------
    log_p : ndarray, shape (N,)

    Examples
    --------
    >>> from nfscratch.models import planar_flow
    >>> flow = planar_flow(2, n_layers=3, rng=0)
    >>> x = np.array([[0.5, -1.0]])
    >>> bool(np.allclose(log_density_after(flow, 3, x), flow.log_prob(x)))
    True
    """
    K = len(flow.layers)
    if not 0 <= int(k) <= K:
        raise ValueError(f"k: expected a layer count between 0 and {K}, got {k}.")
    y = np.asarray(points, dtype=np.float64)
    log_det = np.zeros(y.shape[0])
    for t in reversed(flow.layers[:int(k)]):   # undo layer k first, layer 1 last
        y, ld = t.inverse(y)
        log_det += ld
    return flow.base.log_prob(y) + log_det


@dataclass
class DensityPanel:
    """The density of ``z_k`` on a grid.

    Attributes
    ----------
    k : int
        Layers applied (0 = base).
    label : str
    grid : Grid
    log_density : ndarray, shape (G, G)
        ``log p_k`` at the cell centres, indexed ``[iy, ix]``.
    mass : float
        ``sum(p_k) * cell_area``: 1 up to the mass outside the box and the grid's resolution.
    """

    k: int
    label: str
    grid: Grid
    log_density: np.ndarray
    mass: float

    @property
    def density(self):
        return np.exp(self.log_density)


def layer_densities(flow, layers=None, *, limits=None, grid_size=120, n_probe=2000, rng=0):
    """Exact density of every intermediate ``z_k`` on a common grid.

    Parameters
    ----------
    flow : Flow
        A 2-D flow.
    layers : list of int, optional
        Layer counts to evaluate (0 = base ... K = model); default all.
    limits : float, pair or two pairs, optional
        The box. Default: one box holding the central 99% of ``n_probe`` samples at every
        requested layer, padded.
    grid_size : int
        Cells per axis, G.
    n_probe : int
        Samples used to size the default box.
    rng : Generator or int
        Randomness of those samples.

    Returns
    -------
    list of DensityPanel
    """
    check_flow_2d(flow)
    layers = check_layers(flow, layers)
    if limits is None:
        traj = flow.trajectory(flow.base.sample(n_probe, np.random.default_rng(rng)))
        limits = auto_limits([traj.points[k] for k in layers])
    grid = make_grid(limits, grid_size)
    with np.errstate(over="ignore", under="ignore"):
        panels = []
        for k in layers:
            log_p = log_density_after(flow, k, grid.points)
            panels.append(DensityPanel(k, layer_label(flow, k), grid, grid.as_image(log_p),
                                       grid.mass(log_p)))
    return panels


def _draw_panel(ax, panel, norm, cmap):
    im = ax.imshow(panel.density, origin="lower", extent=panel.grid.extent, norm=norm,
                   cmap=cmap, interpolation="antialiased", aspect="equal")
    ax.set_facecolor(im.cmap(0.0))     # below the scale's floor looks the same as the floor
    return im


@styled
def plot_density(flow, *, k=None, limits=None, grid_size=200, log=True, cmap=DENSITY_CMAP,
                 title=None):
    """One heatmap of the density after ``k`` layers (default: the whole flow, the model).

    ``style=`` ("default" or "slides") picks the figure style, see
    :func:`~nfscratch.plotting.style`.

    Returns
    -------
    matplotlib.figure.Figure
        The panel's mass is in the title.
    """
    check_flow_2d(flow)
    k = len(flow.layers) if k is None else k
    (panel,) = layer_densities(flow, [k], limits=limits, grid_size=grid_size)
    fig = new_figure(4.6, 4.0)
    ax = fig.add_subplot()
    im = _draw_panel(ax, panel, density_norm([panel.density], log=log), cmap)
    ax.set_title(title or f"density after {panel.label}\n"
                          f"mass on grid = {panel.mass:.4f}", fontsize="medium")
    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    fig.colorbar(im, ax=ax, label="density" + (" (log scale)" if log else ""), shrink=0.85)
    return fig


@styled
def plot_layer_densities(flow, layers=None, *, limits=None, grid_size=120, log=True,
                         cmap=DENSITY_CMAP, ncols=None, tol=0.02):
    r"""A heatmap of :math:`p_k` for every requested layer, on one grid and one colour scale.

    Each panel's title gives its mass on the grid; masses further than ``tol`` from 1 are
    flagged with "(!)" (usually the box is too small; otherwise a log-det is wrong). Panels
    wrap after ``ncols`` a row (default: at most 5, rows as even as possible); ``style=``
    ("default" or "slides") picks the figure style, see :func:`~nfscratch.plotting.style`.

    Returns
    -------
    matplotlib.figure.Figure
        ``fig.panels`` holds the :class:`DensityPanel` list that was drawn.
    """
    panels = layer_densities(flow, layers, limits=limits, grid_size=grid_size)
    n = len(panels)
    ncols = default_ncols(n) if ncols is None else min(check_positive_int(ncols, "ncols"), n)
    nrows = -(-n // ncols)
    fig = new_figure(2.6 * ncols + 0.8, 2.6 * nrows + 0.3)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    norm = density_norm([p.density for p in panels], log=log)
    for ax, p in zip(axes, panels):
        im = _draw_panel(ax, p, norm, cmap)
        flag = "" if abs(p.mass - 1) <= tol else " (!)"
        ax.set_title(f"{p.label}\nmass {p.mass:.3f}{flag}", fontsize="small")
        ax.tick_params(labelsize="x-small")
    for ax in axes[n:]:
        ax.set_visible(False)
    fig.colorbar(im, ax=axes[:n].tolist(), label="density" + (" (log)" if log else ""), shrink=0.8)
    fig.panels = panels
    return fig
