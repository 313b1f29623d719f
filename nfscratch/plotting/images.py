r"""Image flows: a grid of samples, one row per sampling temperature.

Sampling at temperature ``T`` draws ``z ~ N(0, T^2 I)`` and pushes it forward (Kingma &
Dhariwal 2018, arXiv:1807.03039, Sec. 5): ``T < 1`` stays in the high-density core of the base
and gives cleaner, less varied images. Every row uses the same base points, scaled, so a column
shows one point at several temperatures.
"""
import numpy as np
from matplotlib.figure import Figure

from .._validate import as_rng, check_positive_int

__all__ = ["sample_grid"]


def sample_grid(flow, shape=(8, 8), temperatures=(0.5, 0.75, 1.0), n_per_row=10, rng=None,
                title=None):
    """A Figure of ``n_per_row`` samples per temperature, each drawn as a ``shape`` image.

    Parameters
    ----------
    flow : Flow
        Its samples lie in [0, 1]^D (e.g. ``models.glow_like``), ``D = prod(shape)``.
    shape : (int, int)
    temperatures : sequence of float
    n_per_row : int
    rng : numpy.random.Generator or int, optional
    title : str, optional
    """
    n_per_row = check_positive_int(n_per_row, "n_per_row")
    if int(np.prod(shape)) != flow.dim:
        raise ValueError(f"shape: expected {flow.dim} pixels in all (the flow's dim), got {shape}.")
    z = flow.base.sample(n_per_row, as_rng(rng))                    # (n, D)
    fig = Figure(figsize=(0.8 * n_per_row, 0.85 * len(temperatures) + 0.4), layout="constrained")
    axes = np.atleast_2d(fig.subplots(len(temperatures), n_per_row))
    for row, T in zip(axes, temperatures):
        images = flow.forward(float(T) * z)[0]
        for ax, image in zip(row, images):
            ax.imshow(image.reshape(shape), cmap="gray_r", vmin=0.0, vmax=1.0)
            ax.set_xticks([]), ax.set_yticks([])
        row[0].set_ylabel(f"T = {T:g}")
    if title:
        fig.suptitle(title)
    return fig
