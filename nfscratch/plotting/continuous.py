r"""Pictures of a continuous flow in the plane: its velocity field, its paths, its density in time.

* :func:`plot_velocity_field` -- arrows of :math:`v(x, t)` at a few times; a field trained by
  flow matching points from the Gaussian towards the data early and settles late.
* :func:`plot_trajectories` -- samples followed from t = 0 to 1, one panel per model (e.g.
  independent pairs against minibatch-OT pairs), with the mean *excess length*
  :math:`E[\text{path length} / |x_1 - x_0|] - 1` (0 for straight lines) in the title.
* :func:`plot_density_over_time` -- the exact density :math:`p_t` on a grid at several times,
  the continuous version of the discrete film strip: :math:`\log p_t(y) = \log N(z; 0, I) +
  \int_t^0 \mathrm{tr}\,\partial v/\partial x\,ds` with :math:`z` the solution at 0 of the ODE
  started at :math:`y` at time t. Each panel's corner gives its mass on the grid (~1).
* :func:`density_animation` / :func:`animate_density` -- the same density moving smoothly in
  time with samples riding on it, as a matplotlib animation or a GIF file.
"""
import pathlib

import numpy as np
from matplotlib import animation
from matplotlib.collections import LineCollection

from .._validate import as_rng, check_positive_int, check_time
from ._common import (DENSITY_CMAP, atomic_output, check_flow_2d, check_output_file,
                      density_norm, make_grid, new_figure, styled)
from .warp import start_colours

__all__ = ["plot_velocity_field", "trajectories", "plot_trajectories", "density_at_time",
           "plot_density_over_time", "density_animation", "animate_density"]

_TIMES = (0.0, 0.25, 0.5, 0.75, 1.0)


def _times(times):
    times = [check_time(t, "times") for t in np.atleast_1d(np.asarray(times, dtype=object))]
    if not times:
        raise ValueError("times: expected at least one time in [0, 1], got none.")
    return times


def _panels(n, width=2.6, height=2.6):
    fig = new_figure(width * n + 0.4, height + 0.3)
    return fig, fig.subplots(1, n, squeeze=False)[0]


@styled
def plot_velocity_field(cnf, times=_TIMES, *, limits=3.0, n_arrows=17, data=None):
    """Arrows of ``v(x, t)`` on an ``n_arrows x n_arrows`` grid, one panel per time.

    ``data`` (N, 2), if given, is drawn faintly behind the arrows: the target they lead to.
    """
    check_flow_2d(cnf, "cnf")
    times = _times(times)
    grid = make_grid(limits, check_positive_int(n_arrows, "n_arrows"))
    fig, axes = _panels(len(times))
    for ax, t in zip(axes, times):
        v = cnf.velocity(grid.points, t)                                  # (G*G, 2)
        if data is not None:
            ax.scatter(data[:, 0], data[:, 1], s=2, c="0.8", lw=0)
        speed = np.linalg.norm(v, axis=1)
        ax.quiver(grid.points[:, 0], grid.points[:, 1], v[:, 0], v[:, 1], speed, cmap="viridis",
                  angles="xy")
        ax.set_title(f"v(x, t={t:g})")
        ax.set_xlim(grid.limits[0])
        ax.set_ylim(grid.limits[1])
        ax.set_aspect("equal")
    return fig


def trajectories(cnf, z, n_times=21):
    """Positions (n_times, N, 2) of the samples started at ``z`` and their mean excess length."""
    path = cnf.trajectory(z, n_times)
    length = np.sum(np.linalg.norm(np.diff(path, axis=0), axis=2), axis=0)       # (N,)
    chord = np.linalg.norm(path[-1] - path[0], axis=1)
    return path, float(np.mean(length / np.maximum(chord, 1e-12)) - 1.0)


@styled
def plot_trajectories(cnfs, labels=None, *, n=300, n_times=21, rng=0, limits=None):
    """Paths of ``n`` base samples from t = 0 (dots) to t = 1 (crosses), a panel per model.

    Returns the figure with ``fig.excess_length``: one number per model, the mean of
    path length / distance between the ends, minus 1 (0 for straight paths).
    """
    cnfs = list(cnfs) if isinstance(cnfs, (list, tuple)) else [cnfs]
    for c in cnfs:
        check_flow_2d(c, "cnfs")
    labels = labels or [repr(c) for c in cnfs]
    z = as_rng(rng).standard_normal((check_positive_int(n, "n"), 2))
    colours = start_colours(z)
    fig, axes = _panels(len(cnfs), 3.2, 3.2)
    fig.excess_length = []
    for ax, c, label in zip(axes, cnfs, labels):
        path, excess = trajectories(c, z, n_times)
        fig.excess_length.append(excess)
        segments = np.transpose(path, (1, 0, 2))                             # (N, T, 2)
        ax.add_collection(LineCollection(segments, colors=colours, linewidths=0.6, alpha=0.6))
        ax.scatter(path[0, :, 0], path[0, :, 1], s=4, c=colours, lw=0)
        ax.scatter(path[-1, :, 0], path[-1, :, 1], s=10, c=colours, marker="x", lw=0.8)
        ax.set_title(f"{label}\nexcess length {excess:.3f}")
        if limits is not None:
            ax.set_xlim(-limits, limits)
            ax.set_ylim(-limits, limits)
        else:
            ax.autoscale()
        ax.set_aspect("equal")
    return fig


def density_at_time(cnf, t, grid):
    """``log p_t`` at the grid's points (G*G,): integrate back from t to 0 with the trace."""
    z, log_det = cnf.integrate(grid.points, check_time(t, "t"), 0.0, trace=True)
    return -0.5 * np.sum(z * z, axis=1) - np.log(2 * np.pi) + log_det


@styled
def plot_density_over_time(cnf, times=_TIMES, *, limits=3.5, grid_size=80, log=True,
                           decades=3.0, cmap=DENSITY_CMAP, tol=0.02):
    """The exact density ``p_t`` on a grid at each time, one colour scale for all panels."""
    check_flow_2d(cnf, "cnf")
    times = _times(times)
    grid = make_grid(limits, grid_size)
    logs = [density_at_time(cnf, t, grid) for t in times]
    dens = [grid.as_image(np.exp(lp)) for lp in logs]
    norm = density_norm(dens, log=log, decades=decades)
    fig, axes = _panels(len(times))
    fig.masses = []
    for ax, t, lp, d in zip(axes, times, logs, dens):
        ax.imshow(d, origin="lower", extent=grid.extent, cmap=cmap, norm=norm)
        mass = grid.mass(lp)
        fig.masses.append(mass)
        bad = abs(mass - 1.0) > tol
        ax.text(0.03, 0.03, f"mass {mass:.3f}" + (" (!)" if bad else ""), transform=ax.transAxes,
                fontsize="small", color="red" if bad else "0.3")
        ax.set_title(f"p_t, t = {t:g}")
    return fig


def density_animation(cnf, *, n_frames=25, limits=3.5, grid_size=60, n_samples=300, rng=0,
                      interval=120, cmap=DENSITY_CMAP):
    """A :class:`matplotlib.animation.FuncAnimation` of ``p_t`` from t = 0 to 1 with samples
    riding the flow (the axes and colour scale stay fixed). Nothing is written."""
    check_flow_2d(cnf, "cnf")
    n_frames = check_positive_int(n_frames, "n_frames")
    times = np.linspace(0.0, 1.0, max(n_frames, 2))[:n_frames]
    grid = make_grid(limits, grid_size)
    dens = [grid.as_image(np.exp(density_at_time(cnf, t, grid))) for t in times]
    z = as_rng(rng).standard_normal((check_positive_int(n_samples, "n_samples"), 2))
    path = cnf.trajectory(z, n_frames) if n_frames > 1 else z[None]
    norm = density_norm(dens, log=True)
    fig = new_figure(4.2, 4.2)
    ax = fig.subplots()
    image = ax.imshow(dens[0], origin="lower", extent=grid.extent, cmap=cmap, norm=norm)
    dots = ax.scatter(path[0, :, 0], path[0, :, 1], s=4, c=start_colours(z), lw=0)
    title = ax.set_title("t = 0.00")

    def draw(i):
        image.set_data(dens[i])
        dots.set_offsets(path[i])
        title.set_text(f"t = {times[i]:.2f}")
        return image, dots, title

    return animation.FuncAnimation(fig, draw, frames=n_frames, interval=interval, blit=False)


def animate_density(cnf, path, *, fps=8, dpi=72, overwrite=False, **kw):
    """Write :func:`density_animation` as a GIF to ``path`` (refused if it exists unless
    ``overwrite``; written through a temporary file) and return the path."""
    path = pathlib.Path(path)
    if path.suffix.lower() != ".gif":
        raise ValueError(f"path: expected a file name ending in .gif, got {str(path)!r}.")
    check_output_file(path, overwrite=overwrite)
    anim = density_animation(cnf, **kw)
    with atomic_output(path, overwrite=overwrite) as tmp:
        anim.save(str(tmp), writer=animation.PillowWriter(fps=check_positive_int(fps, "fps")),
                  dpi=dpi)
    return path
