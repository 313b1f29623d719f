r"""The warp as an animation: points, grid lines and density move smoothly from layer to layer.

Between layer ``k`` and ``k + 1`` every point moves on the straight segment
:math:`z(s) = (1 - s)\,z_k + s\,f_{k+1}(z_k)`, ``s`` in [0, 1] (eased, so the motion pauses at each
layer). That in-between map has the Jacobian :math:`(1 - s) I + s J` with :math:`J` the layer's
Jacobian, and in two dimensions its determinant is a quadratic in ``s``:

.. math:: \det((1-s)I + sJ) = (1-s)^2 + s(1-s)\operatorname{tr}J + s^2 \det J .

So the density carried by each moving point stays exact along the way,
:math:`\log p_s(z(s)) = \log p_k(z_k) - \log|\det((1-s)I + sJ)|`, and the heatmap is drawn on the
moving mesh itself (``pcolormesh`` with Gouraud shading): density is mass per area, and one
watches the area change. ``J`` comes from central differences of the layer, which every layer
supports, analytic inverse or not.

A layer whose straight path would fold the plane (the determinant crosses 0, as for a swap of
coordinates, whose determinant is -1) has no such smooth path; it is shown as a jump halfway
through its frames, and its title says so.

The view box is the same in every frame (fitted once to the samples of all layers), so
what moves on screen is the flow and never the axes; frame 0 is the base (forward) or the data
(inverse), and the first and last frames are held a little longer.

The file is written with matplotlib's animation writers: pillow for ``.gif`` (always
available), ffmpeg for ``.mp4`` (only when ffmpeg is installed). A GIF's size grows with its
number of frames, so by default a deep flow gets fewer frames per layer (see
:func:`default_frames_per_layer`), which keeps the files of the built-in demos under ~2 MB.
"""
import pathlib
import sys
from typing import NamedTuple

import numpy as np
from matplotlib import animation, colormaps
from matplotlib.collections import LineCollection

from .._validate import check_positive_int
from ._common import (DENSITY_CMAP, STYLES, atomic_output, auto_limits, check_flow_2d,
                      check_output_file, check_style, current_style, density_norm, parse_limits,
                      style, style_scale)
from .warp import start_colours

_style = style      # WarpMovie's own ``style`` attribute and argument hide the function

__all__ = ["Frame", "WarpMovie", "warp_animation", "animate_warp", "ffmpeg_available",
           "default_frames_per_layer"]

_FD_STEP = 1e-5
_HOLD_MS = 900      # how long the first (base) and the last frame stay on screen


def default_frames_per_layer(n_layers, max_frames=100):
    """Frames per layer when none is asked: 8 for a shallow flow, fewer for a deep one, so the
    movie has about ``max_frames`` frames at most (and at least 2 frames a layer).

    Examples
    --------
    >>> [default_frames_per_layer(K) for K in (1, 8, 16, 32, 100)]
    [8, 8, 6, 3, 2]
    """
    return int(np.clip(max_frames // max(n_layers, 1), 2, 8))


def ffmpeg_available():
    """True when matplotlib can find ffmpeg (needed for MP4)."""
    return animation.writers.is_available("ffmpeg")


def _step_jacobian(transform, p, direction):
    """Central-difference Jacobian of one layer at each point: (N, 2, 2), ``J[n, i, j] = d out_i / d in_j``."""
    run = transform.forward if direction == "forward" else transform.inverse
    J = np.empty((p.shape[0], 2, 2))
    for j in range(2):
        e = np.zeros(2)
        e[j] = _FD_STEP
        J[:, :, j] = (run(p + e)[0] - run(p - e)[0]) / (2 * _FD_STEP)
    return J


class _CompactGifWriter(animation.PillowWriter):
    """matplotlib's pillow writer, with every frame mapped to one fixed palette without dithering.

    Pillow's default gives each frame its own dithered palette; smooth density gradients then
    turn into per-frame noise that GIF compression cannot shrink (files several times larger)
    and that flickers. The fixed palette holds the density colour map, the hues of the sample
    colours and a grey ramp (text, grid lines), so every colour drawn has a close entry.
    """

    def __init__(self, *args, cmap=DENSITY_CMAP, colors=(32, 24, 16), **kw):
        super().__init__(*args, **kw)
        self.cmap, self.colors = cmap, colors

    def _palette(self):
        from PIL import Image
        n_map, n_hue, n_grey = self.colors
        rgb = np.concatenate([colormaps[self.cmap](np.linspace(0, 1, n_map))[:, :3],
                              colormaps["hsv"](np.linspace(0, 1, n_hue, endpoint=False))[:, :3],
                              np.repeat(np.linspace(0, 1, n_grey)[:, None], 3, axis=1)])
        flat = np.round(rgb * 255).astype(np.uint8).ravel().tolist()
        pal = Image.new("P", (1, 1))
        pal.putpalette(flat + [255] * (768 - len(flat)))
        return pal

    def finish(self):
        from PIL import Image
        pal = self._palette()
        frames = [im.convert("RGB").quantize(palette=pal, dither=Image.Dither.NONE)
                  for im in self._frames]
        duration = [int(1000 / self.fps)] * len(frames)
        duration[0] = duration[-1] = max(duration[0], _HOLD_MS)   # pause on the base and the end
        frames[0].save(self.outfile, save_all=True, append_images=frames[1:],
                       duration=duration, loop=0, optimize=True)


def _smoothstep(s):
    return s * s * (3.0 - 2.0 * s)


class Frame(NamedTuple):
    """One frame of a :class:`WarpMovie`."""

    mesh: np.ndarray        #: (M*M, 2) mesh vertices
    log_p: np.ndarray       #: (M*M,) exact log density carried by each vertex
    samples: np.ndarray     #: (N, 2)
    title: str
    box: np.ndarray         #: (2, 2) view box ((x_lo, x_hi), (y_lo, y_hi))


class WarpMovie:
    """Everything an animation of the warp needs, computed once; ``draw(ax, i)`` draws frame ``i``.

    Parameters
    ----------
    flow : Flow
        A 2-D flow.
    direction : {"forward", "inverse"}
    frames_per_layer : int, optional
        Frames from one layer to the next; the movie has ``K * frames_per_layer + 1`` frames.
        Default :func:`default_frames_per_layer` (8, fewer for deep flows).
    mesh_size : int
        Vertices per axis of the moving mesh that carries the density.
    start_limits : optional
        Box of the mesh in the starting space. Default ``[-4, 4]^2`` forward (beyond it the
        base density is below 1e-3 of its peak), and the box of the model's samples inverse.
    limits : optional
        Fixed view box. Default: one square box fitted to the samples of every layer.
    follow : bool
        Without ``limits``: True moves the view box with the samples instead (fitted at every
        layer and interpolated in between), for a flow with a layer that stretches far out; the
        axes then change from frame to frame.
    n_samples : int
    n_lines : int
        Grid lines per direction (a subset of the mesh lines).
    colour_by : {"angle", "quadrant"}
    rng : Generator or int
    log, decades : bool, float
        Log colour scale of the density over ``decades`` powers of ten.
    cmap : str
        Default: the package's density map, :data:`~nfscratch.plotting.DENSITY_CMAP`.
    style : {"default", "slides"}, optional
        Figure style of every frame (see :func:`~nfscratch.plotting.style`); default the one in
        force when the movie is made.
    """

    def __init__(self, flow, direction="forward", frames_per_layer=None, mesh_size=70,
                 start_limits=None, limits=None, n_samples=400, n_lines=11, colour_by="angle",
                 rng=0, log=True, decades=3.0, cmap=DENSITY_CMAP, follow=False, style=None):
        check_flow_2d(flow)
        if direction not in ("forward", "inverse"):
            raise ValueError(f"direction: expected 'forward' or 'inverse', got {direction!r}.")
        self.flow, self.direction = flow, direction
        self.style = current_style() if style is None else check_style(style)
        self.frames_per_layer = (default_frames_per_layer(len(flow.transforms))
                                 if frames_per_layer is None
                                 else check_positive_int(frames_per_layer, "frames_per_layer"))
        M = check_positive_int(mesh_size, "mesh_size")
        if M < 4:
            raise ValueError(f"mesh_size: expected at least 4 vertices per axis, got {M}.")
        n_lines = check_positive_int(n_lines, "n_lines")
        gen = np.random.default_rng(rng)
        K = self.K = len(flow.layers)
        layers = flow.layers if direction == "forward" else flow.layers[::-1]
        self.names = [t.name for t in layers]

        if direction == "forward":
            samples = flow.base.sample(check_positive_int(n_samples, "n_samples"), gen)
            start_limits = 4.0 if start_limits is None else start_limits
        else:
            samples = flow.sample(check_positive_int(n_samples, "n_samples"), gen)
            if start_limits is None:
                start_limits = auto_limits([samples], quantile=0.002, pad=0.2)
        (x0, x1), (y0, y1) = parse_limits(start_limits, "start_limits")
        X, Y = np.meshgrid(np.linspace(x0, x1, M), np.linspace(y0, y1, M))   # (M, M)
        mesh = np.column_stack([X.ravel(), Y.ravel()])                       # (M*M, 2)
        N = samples.shape[0]

        # one trajectory carries samples and mesh together
        traj = flow.trajectory(np.concatenate([samples, mesh]), direction)
        self.samples = [p[:N] for p in traj.points]                        # K+1 x (N, 2)
        self.mesh = [p[N:] for p in traj.points]                           # K+1 x (M*M, 2)
        with np.errstate(over="ignore", under="ignore"):
            log_p0 = (flow.base.log_prob(mesh) if direction == "forward" else flow.log_prob(mesh))
        # density after each step: divide by |det| of the step (log-dets are in the pass direction)
        self.log_p = [log_p0]
        for ld in traj.log_dets:
            self.log_p.append(self.log_p[-1] - ld[N:])
        # per step: trace and determinant of the Jacobian at the mesh points and samples
        self.tr, self.det, self.jump = [], [], []
        s = np.linspace(0.0, 1.0, 41)[:, None]                               # (S, 1)
        for t, p in zip(layers, traj.points[:-1]):
            J = _step_jacobian(t, p, direction)                              # (N+M*M, 2, 2)
            tr = J[:, 0, 0] + J[:, 1, 1]
            det = J[:, 0, 0] * J[:, 1, 1] - J[:, 0, 1] * J[:, 1, 0]
            path_det = (1 - s) ** 2 + s * (1 - s) * tr[None, N:] + s ** 2 * det[None, N:]
            self.tr.append(tr[N:])
            self.det.append(det[N:])
            self.jump.append(bool(np.any(path_det <= 1e-8)))
        self.shape = (M, M)
        self.colours = start_colours(samples, colour_by)
        step = max(1, (M - 1) // max(n_lines - 1, 1))
        self.line_rows = np.arange(0, M, step)
        if limits is not None:
            self.limits = [parse_limits(limits)] * (K + 1)
        elif follow:   # the view box of each layer, interpolated between layers like the points
            self.limits = [auto_limits([p], square=True) for p in self.samples]
        else:
            self.limits = [auto_limits(self.samples, square=True)] * (K + 1)
        finite = [np.exp(lp[np.isfinite(lp)]) for lp in self.log_p]
        self.norm = density_norm(finite, log=log, decades=decades)
        self.cmap = cmap
        self.log = log

    @property
    def n_frames(self):
        return self.K * self.frames_per_layer + 1

    def state(self, i):
        """The :class:`Frame` number ``i``: mesh, density, samples, title and view box."""
        if not 0 <= i < self.n_frames:
            raise IndexError(f"i: expected a frame between 0 and {self.n_frames - 1}, got {i}.")
        j, r = divmod(i, self.frames_per_layer)
        if j == self.K:                                 # the last frame: the end of the pass
            j, r = self.K - 1, self.frames_per_layer
        s = _smoothstep(r / self.frames_per_layer)
        note = ""
        if self.jump[j]:                                # no smooth path: switch halfway
            s = 1.0 if r / self.frames_per_layer >= 0.5 else 0.0
            note = " (a swap: no smooth path, it jumps)"
        mesh = (1 - s) * self.mesh[j] + s * self.mesh[j + 1]
        samples = (1 - s) * self.samples[j] + s * self.samples[j + 1]
        det = (1 - s) ** 2 + s * (1 - s) * self.tr[j] + s ** 2 * self.det[j]
        with np.errstate(divide="ignore", invalid="ignore"):
            log_p = self.log_p[j] - np.log(np.abs(det))
        verb = "layer" if self.direction == "forward" else "undo layer"
        k = j + 1 if self.direction == "forward" else self.K - j
        forward = self.direction == "forward"
        if i == 0:
            title = ("base $z_0$: standard normal" if forward else "data: samples of the model")
            title += f"\nbefore {verb} {k}/{self.K}"
        elif i == self.n_frames - 1:
            title = (f"after all {self.K} layers: the model" if forward
                     else f"base $z_0$: all {self.K} layers undone")
            title += f"\n{self.K} of {self.K}"
        else:
            title = (f"{verb} {k}/{self.K}: {self.names[j]}{note}\n"
                     f"progress {j + r / self.frames_per_layer:.2f} of {self.K}")
        box = (1 - s) * np.asarray(self.limits[j]) + s * np.asarray(self.limits[j + 1])   # (2, 2)
        return Frame(mesh, log_p, samples, title, box)

    def draw(self, ax, i):
        """Clear ``ax`` and draw frame ``i``."""
        with _style(self.style):
            self._draw(ax, i)

    def _draw(self, ax, i):
        frame = self.state(i)
        mesh, log_p, samples = frame.mesh, frame.log_p, frame.samples
        M = self.shape[0]
        X, Y = mesh[:, 0].reshape(M, M), mesh[:, 1].reshape(M, M)
        ax.clear()
        with np.errstate(over="ignore", under="ignore"):
            C = np.exp(np.nan_to_num(log_p, nan=-np.inf)).reshape(M, M)
        ax.set_facecolor(self._floor)
        ax.pcolormesh(X, Y, C, shading="gouraud", norm=self.norm, cmap=self.cmap, rasterized=True)
        scale = style_scale()
        # every grid line in one artist: one ax.plot per line costs more than the rest of the frame
        lines = [np.column_stack([X[r], Y[r]]) for r in self.line_rows]        # (M, 2) each
        lines += [np.column_stack([X[:, r], Y[:, r]]) for r in self.line_rows]
        ax.add_collection(LineCollection(lines, colors="0.25", linewidths=0.5 * scale,
                                         alpha=0.55, gid="grid-lines"), autolim=False)
        ax.scatter(samples[:, 0], samples[:, 1], s=4 * scale ** 2, c=self.colours, linewidths=0)
        ax.set_xlim(frame.box[0])
        ax.set_ylim(frame.box[1])
        ax.set_aspect("equal")
        ax.set_title(frame.title, fontsize="medium")
        ax.tick_params(labelsize="x-small")
        max_ticks = STYLES[self.style]["max_ticks"]
        if max_ticks:
            ax.locator_params(nbins=max_ticks)

    def figure(self, size=4.2):
        """A fresh figure with one axes and a colour bar (``size`` in inches, scaled by the
        movie's style)."""
        from matplotlib.cm import ScalarMappable
        from matplotlib.figure import Figure
        with _style(self.style):
            size *= style_scale()
            # fixed axes positions (no layout engine): a layout recomputed every frame would
            # make the picture jitter as the tick labels change
            fig = Figure(figsize=(size + 0.9, size + 0.3))
            ax = fig.add_axes((0.12, 0.08, 0.66, 0.78))
            cax = fig.add_axes((0.84, 0.2, 0.035, 0.56))
            sm = ScalarMappable(norm=self.norm, cmap=self.cmap)
            self._floor = sm.cmap(0.0)
            fig.colorbar(sm, cax=cax, label="density" + (" (log)" if self.log else ""))
        return fig, ax


def warp_animation(flow, *, interval=80, **kw):
    """A :class:`matplotlib.animation.FuncAnimation` of the warp (for notebooks: ``.to_jshtml()``).

    Keyword arguments go to :class:`WarpMovie`. Nothing is written.
    """
    movie = WarpMovie(flow, **kw)
    fig, ax = movie.figure()
    anim = animation.FuncAnimation(fig, lambda i: movie.draw(ax, i), frames=movie.n_frames,
                                   interval=interval, blit=False)
    anim.movie = movie
    return anim


def animate_warp(flow, path, *, fps=12, dpi=72, overwrite=False, progress=None, **kw):
    """Write the warp as a GIF (pillow) or MP4 (ffmpeg) to ``path`` and return the path.

    Parameters
    ----------
    flow : Flow
        A 2-D flow.
    path : str or Path
        Ends in ``.gif`` or ``.mp4``.
    fps : int
        Frames per second.
    dpi : int
        Resolution; a 5.1 x 4.5 inch figure at 72 dpi is 367 x 324 pixels.
    overwrite : bool
        Replace an existing file; without it an existing ``path`` is refused, untouched.
    progress : bool, optional
        A progress bar over the frames; default: only when stderr is a terminal.
    **kw
        Passed to :class:`WarpMovie` (``direction``, ``frames_per_layer``, ``mesh_size``,
        ``style``, ...). The file has ``K * frames_per_layer + 1`` frames.

    Returns
    -------
    pathlib.Path

    Notes
    -----
    The file is written to a temporary name beside ``path`` and renamed when complete, so an
    error or an interruption never leaves half a movie (nor destroys the old one).
    """
    path = pathlib.Path(path)
    suffix = path.suffix.lower()
    if suffix == ".gif":
        writer = _CompactGifWriter(fps=check_positive_int(fps, "fps"),
                                   cmap=kw.get("cmap", DENSITY_CMAP))
    elif suffix == ".mp4":
        if not ffmpeg_available():
            raise RuntimeError(f"path: {path} asks for an MP4, which needs ffmpeg, and ffmpeg was "
                               "not found. Install it (e.g. apt-get install ffmpeg) or write a .gif.")
        writer = animation.FFMpegWriter(fps=check_positive_int(fps, "fps"))
    else:
        raise ValueError(f"path: expected a file name ending in .gif or .mp4, got {str(path)!r}.")
    check_output_file(path, overwrite=overwrite)          # before the work, not after
    movie = WarpMovie(flow, **kw)
    fig, ax = movie.figure()
    if progress is None:
        progress = sys.stderr.isatty()
    frames = range(movie.n_frames)
    if progress:
        from tqdm.auto import tqdm
        frames = tqdm(frames, desc=f"frames of {path.name}", leave=False)
    with atomic_output(path, overwrite=overwrite) as tmp:
        with writer.saving(fig, str(tmp), dpi):
            for i in frames:
                movie.draw(ax, i)
                writer.grab_frame()
    return path
