r"""Target beside model: what the flow should have learned next to what it did learn.

The left panel is the target -- a normalized 2-D histogram of the data (density estimation) or
:math:`\exp(-U(x)) / Z` of an energy (variational inference) -- and the right panel the flow's
exact density :math:`q(x)`. Both share one colour scale, so equal colours mean equal density,
and the figure's title carries the number that training minimized (a test NLL or a KL, in nats).
"""
import numpy as np

from .._validate import as_batch
from ._common import (DENSITY_CMAP, auto_limits, check_flow_2d, density_norm, make_grid,
                      new_figure, styled)

__all__ = ["target_vs_model"]


def _target_density(grid, data, energy, hist_bins):
    """The target on ``grid`` (G, G) (or on its own coarser histogram grid), and a label."""
    if data is not None:
        n = data.shape[0]
        bins = hist_bins or int(np.clip(np.sqrt(n / 4.0), 20, grid.size))
        (x0, x1), (y0, y1) = grid.limits
        h, _, _ = np.histogram2d(data[:, 0], data[:, 1], bins=bins, range=[[x0, x1], [y0, y1]])
        cell = (x1 - x0) * (y1 - y0) / bins ** 2
        # divide by all n (not the count inside the box) so mass outside the box is not faked
        return h.T / (n * cell), f"data: histogram of {n} points ({bins}x{bins} bins)"
    neg_u = -np.asarray(energy.energy(grid.points), dtype=np.float64)      # (G*G,)
    log_z = None
    if hasattr(energy, "log_normalizer"):
        try:
            log_z = float(energy.log_normalizer())
        except (ValueError, NotImplementedError):
            log_z = None
    if log_z is None:     # normalize on the grid itself
        m = neg_u.max()
        log_z = m + np.log(np.sum(np.exp(neg_u - m)) * grid.cell_area)
    name = getattr(energy, "name", "U")
    return grid.as_image(np.exp(neg_u - log_z)), f"target: exp(-{name}) / Z"


@styled
def target_vs_model(flow, *, data=None, energy=None, metric_name=None, metric=None, limits=None,
                    grid_size=200, log=False, hist_bins=None, cmap=DENSITY_CMAP, title=None):
    r"""Target density (data histogram or ``exp(-U)/Z``) beside the flow's density.

    Parameters
    ----------
    flow : Flow
        A trained 2-D flow.
    data : ndarray, shape (N, 2), optional
        Samples of the target; drawn as a normalized histogram.
    energy : object with ``energy(x) -> (N,)``, optional
        An unnormalized target ``exp(-U)``, e.g. ``datasets.energy("U1")``; normalized by its
        ``log_normalizer()`` when it has one, otherwise on the grid. Give exactly one of
        ``data`` and ``energy``.
    metric_name : str, optional
        What ``metric`` is, e.g. ``"test NLL"`` or ``"KL(q||p)"``.
    metric : float, optional
        Its value in nats; shown in the title.
    limits : float, pair or two pairs, optional
        The box. Default: around the data, or ``[-4, 4]^2`` for an energy (the box on which the
        U1-U4 energies are the paper's).
    grid_size : int
        Cells per axis of the model's grid.
    log : bool
        Log colour scale (3 decades); shows the tails where a model leaks mass.
    hist_bins : int, optional
        Histogram bins per axis (default about ``sqrt(N/4)``, so each bin holds a few points).
    cmap : str
        Default: the package's density map, :data:`~nfscratch.plotting.DENSITY_CMAP`.
    title : str, optional
        Overrides the figure title.
    style : {"default", "slides"}, optional
        Figure style (see :func:`~nfscratch.plotting.style`); default the one in force.

    Returns
    -------
    matplotlib.figure.Figure
        ``fig.axes[0]`` is the target, ``fig.axes[1]`` the model.

    Examples
    --------
    >>> from nfscratch.models import planar_flow
    >>> fig = target_vs_model(planar_flow(2, 2, rng=0), data=np.random.default_rng(0).normal(size=(500, 2)),
    ...                       metric_name="test NLL", metric=2.84, grid_size=40)
    >>> [ax.get_title() for ax in fig.axes[:2]][1]
    'model: q(x) of the flow'
    """
    check_flow_2d(flow)
    if (data is None) == (energy is None):
        raise ValueError("target_vs_model: expected exactly one of data= (samples) or energy= "
                         "(an unnormalized target), got " + ("both." if data is not None else "neither."))
    if data is not None:
        data = as_batch(data, 2, "data")
    elif getattr(energy, "dim", 2) != 2 or not hasattr(energy, "energy"):
        raise ValueError(f"energy: expected a 2-D energy with an energy(x) method (e.g. "
                         f"datasets.energy('U1')), got {energy!r}.")
    if metric is not None and not np.isfinite(float(metric)):
        raise ValueError(f"metric: expected a finite number of nats, got {metric!r}.")
    if limits is None:
        limits = auto_limits([data], quantile=0.001, pad=0.1) if data is not None else 4.0
    grid = make_grid(limits, grid_size)
    target, target_label = _target_density(grid, data, energy, hist_bins)
    with np.errstate(over="ignore", under="ignore"):
        model = grid.as_image(np.exp(flow.log_prob(grid.points)))      # (G, G)
    norm = density_norm([target, model], log=log)

    (x0, x1), (y0, y1) = grid.limits
    aspect = float(np.clip((y1 - y0) / (x1 - x0), 0.4, 1.6))
    fig = new_figure(9.0, 3.6 * aspect + 0.9)     # panels of equal aspect, little blank space
    axes = fig.subplots(1, 2, sharex=True, sharey=True)
    # the histogram keeps its square bins; the smooth fields are resampled with antialiasing,
    # which avoids the stray rows that nearest-neighbour resampling of a fine grid can show
    for ax, img, label, interp in ((axes[0], target, target_label,
                                    "nearest" if data is not None else "antialiased"),
                                   (axes[1], model, "model: q(x) of the flow", "antialiased")):
        im = ax.imshow(img, origin="lower", extent=grid.extent, norm=norm, cmap=cmap,
                       interpolation=interp, aspect="equal")
        ax.set_facecolor(im.cmap(0.0))
        ax.set_title(label, fontsize="medium")
        ax.set_xlabel("$x_1$")
    axes[0].set_ylabel("$x_2$")
    fig.colorbar(im, ax=axes.tolist(), label="density" + (" (log scale)" if log else ""),
                 shrink=0.85)
    if title is None:
        title = "target vs model"
        if metric is not None:
            title += f" — {metric_name or 'metric'} = {float(metric):.3f} nats"
    fig.suptitle(title)
    return fig
