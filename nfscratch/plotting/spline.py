"""One spline layer's functions: the monotone maps it applies, with their knots.

A :class:`~nfscratch.transforms.SplineCoupling` applies to every transformed feature a
rational-quadratic spline whose knots depend on the conditioning features. This draws those
functions for a few values of the conditioning features, knots marked, with the identity tails
outside ``[-B, B]``, and optionally the same layer before training (dashed) for comparison.
A :class:`~nfscratch.transforms.SplineAutoregressive` layer transforms every feature; its
splines are drawn in the direction it computes in one pass (data side ``x_j`` -> base side
``z_j``), with every other feature held at the conditioning value (only the earlier ones in
the layer's order matter).
"""
import numpy as np

from ..transforms.spline import SplineCoupling, spline_coupling_forward
from ..transforms.spline_autoregressive import (SplineAutoregressive,
                                                spline_autoregressive_inverse)
from ._common import new_figure

__all__ = ["plot_spline_layer"]


def plot_spline_layer(layer, before=None, conditioning=(-1.0, 0.0, 1.0), n_points=400,
                      title=None):
    """Plot ``x_b = g(z_b | z_a)`` of one spline coupling layer, one panel per transformed feature.

    Parameters
    ----------
    layer : SplineCoupling or SplineAutoregressive
    before : dict of ndarray, optional
        The layer's parameters at another time (e.g. ``{k: v.copy() for k, v in
        layer.params.items()}`` saved before training), drawn dashed.
    conditioning : sequence of float
        Values given to every conditioning feature; one curve each.
    n_points : int
        Points per curve.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = plot_spline_layer(SplineCoupling(2, hidden=[4], n_bins=4, zero_init=False, rng=0))
    >>> len(fig.axes)
    1
    """
    if not isinstance(layer, (SplineCoupling, SplineAutoregressive)):
        raise TypeError(f"layer: expected a SplineCoupling or a SplineAutoregressive, got "
                        f"{type(layer).__name__}.")
    settings = (layer.activation, layer.n_bins, layer.bound, layer.min_width,
                layer.min_height, layer.min_derivative)
    if isinstance(layer, SplineCoupling):
        ib = np.flatnonzero(layer.mask == 0)
        names = ("z", "x")
        def apply(z, params):
            return spline_coupling_forward(z, layer.mask, params, *settings)[0]
    else:
        ib = np.arange(layer.dim)                # every feature; knots indexed by feature
        names = ("x", "z")
        def apply(z, params):
            return spline_autoregressive_inverse(z, params, layer.masks, *settings)[0]
    B = layer.bound
    t = np.linspace(-1.3 * B, 1.3 * B, int(n_points))
    fig = new_figure(3.6 * ib.size, 3.4)
    axes = fig.subplots(1, ib.size, squeeze=False)[0]
    colours = [f"C{i}" for i in range(len(conditioning))]
    for ax, j, col in zip(axes, ib, range(ib.size)):
        for c, colour in zip(conditioning, colours):
            z = np.full((t.size, layer.dim), float(c))
            z[:, j] = t
            for params, style, label in ((before, "--", "before"), (layer.params, "-", "after")):
                if params is None:
                    continue
                x = apply(z, params)
                kx, ky, _ = layer.knots(z[:1], params)
                ax.plot(t, x[:, j], style, color=colour, lw=1.2,
                        label=f"z_a = {c:g} ({label})" if before is not None else f"z_a = {c:g}")
                ax.plot(kx[0, col], ky[0, col], "o" if style == "-" else "s", color=colour,
                        ms=3.5, mfc="white" if style == "--" else colour)
        ax.axvline(-B, color="0.7", lw=0.8, ls=":")
        ax.axvline(B, color="0.7", lw=0.8, ls=":")
        ax.plot(t, t, color="0.8", lw=0.8, zorder=0)
        ax.set_xlabel(f"{names[0]}_{j} (input)")
        ax.set_ylabel(f"{names[1]}_{j} (output)")
        ax.set_aspect("equal")
        ax.legend(fontsize=6, loc="upper left")
    fig.suptitle(title or f"{layer.name}: {layer.n_bins} bins on [-{B:g}, {B:g}], knots marked",
                 fontsize=9)
    return fig
