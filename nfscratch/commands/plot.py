"""``nfscratch plot``: pictures of a saved 2-D flow, or of a demo flow trained on the spot.

Sub-commands (each writes one file and prints its path):

* ``warp``     -- the film strip: density, deformed grid and coloured samples after every layer;
* ``animate``  -- the same warp as a GIF (or MP4 when ffmpeg is installed);
* ``density``  -- target beside model (with a target), the model's density, or every layer's;
* ``jacobian`` -- one layer's Jacobian at one point, its structure and the cost of its log-det.

The flow comes from ``--flow path.npz`` (written by ``nfscratch train`` or ``demo``), or, with
``--demo moons`` / ``--demo U1`` .. ``U4``, from a short training run done here (with a progress
bar on a terminal). ``--style slides`` draws for a projector (large fonts, few ticks) and
``--ncols`` wraps the panels of a film strip. An existing output file is never replaced unless
``--overwrite`` is given, and that is checked before any training or drawing.
"""
import sys

import numpy as np

from ._common import (UsageError, add_progress_flag, non_negative_int, output_file,
                      positive_int)

DEFAULT_OUT = {"warp": "warp.png", "animate": "warp.gif", "density": "density.png",
               "jacobian": "jacobian.png"}


def register(sub):
    p = sub.add_parser("plot", help="film strip, animation, densities or a Jacobian of a 2-D flow",
                       description=__doc__.split("\n\n")[0])
    kinds = p.add_subparsers(dest="kind", metavar="KIND")
    kinds.required = True
    helps = {"warp": "film strip of the warp, one panel per layer",
             "animate": "the warp as a GIF (.gif) or MP4 (.mp4, needs ffmpeg)",
             "density": "target vs model, or the density after chosen layers",
             "jacobian": "one layer's Jacobian at one point and the cost of its log-det"}
    for kind, text in helps.items():
        q = kinds.add_parser(kind, help=text, description=text)
        src = q.add_mutually_exclusive_group()
        src.add_argument("--flow", help="a saved flow (.npz) of dimension 2")
        src.add_argument("--demo", default=None, metavar="TARGET",
                         help="train a demo flow here instead: 'moons' (RealNVP, maximum "
                              "likelihood) or U1..U4 (planar, reverse KL); default moons")
        q.add_argument("--steps", type=positive_int, default=1500,
                       help="training steps of a demo flow")
        q.add_argument("--seed", type=non_negative_int, default=0)
        q.add_argument("--out", "-o", default=DEFAULT_OUT[kind],
                       help=f"output file (default {DEFAULT_OUT[kind]})")
        q.add_argument("--overwrite", action="store_true",
                       help="replace the output file if it exists (default: refuse)")
        q.add_argument("--dpi", type=positive_int, default=110 if kind != "animate" else 72)
        q.add_argument("--style", choices=["default", "slides"], default="default",
                       help="slides: large fonts, thick lines, few ticks, for a projector")
        add_progress_flag(q)
        if kind in ("warp", "animate"):
            q.add_argument("--direction", choices=["forward", "inverse"], default="forward",
                           help="forward: base -> data; inverse: data -> base")
            q.add_argument("--colour-by", choices=["angle", "quadrant"], default="angle")
        if kind in ("warp", "density"):
            q.add_argument("--layers", type=int, nargs="+", default=None,
                           help="layer counts to draw (0 = base, K = model)")
            q.add_argument("--ncols", type=positive_int, default=None,
                           help="panels per row (default: at most 5, rows as even as possible)")
        if kind == "density":
            tgt = q.add_mutually_exclusive_group()
            tgt.add_argument("--dataset", help="draw this dataset's histogram beside the model")
            tgt.add_argument("--energy", help="draw exp(-U) of U1..U4 beside the model")
            q.add_argument("--log", action="store_true", help="log colour scale")
        if kind == "animate":
            q.add_argument("--frames-per-layer", type=positive_int, default=None,
                           help="frames from one layer to the next (default: 8, fewer for a "
                                "deep flow, so a GIF stays under ~2 MB)")
            q.add_argument("--fps", type=positive_int, default=12)
        if kind == "jacobian":
            q.add_argument("--layer", type=int, default=0, help="index of the layer (0-based)")
            q.add_argument("--point", type=float, nargs="+", default=None,
                           help="where to take the Jacobian (default: a random point)")
            q.add_argument("--direction", choices=["forward", "inverse"], default="forward")
        q.set_defaults(func=run)


def demo_flow(name, steps, seed, progress=None):
    """Train a small flow for a picture: RealNVP on two moons, or planar on an energy.

    Returns ``(flow, target)`` with target ``("data", array)`` or ``("energy", Energy)``.
    ``progress``: a progress bar (default: when stderr is a terminal).
    """
    from .. import datasets, models
    from ..train import fit
    rng = np.random.default_rng(seed)
    if name.lower() in ("moons", "two_moons"):
        data = datasets.two_moons(4096, rng, noise=0.05)
        flow = models.realnvp(2, n_layers=8, hidden=(64, 64), rng=rng)
        fit(flow, data=data, steps=steps, batch_size=256, lr=2e-3, rng=rng, progress=progress)
        return flow, ("data", data)
    target = datasets.energy(name)
    flow = models.planar_flow(2, n_layers=32, rng=rng)
    fit(flow, target=target, steps=steps, batch_size=256, lr=1e-2, anneal=max(1, steps // 3),
        rng=rng, progress=progress)
    return flow, ("energy", target)


def run(args):
    from pathlib import Path

    from .. import datasets, plotting
    out = Path(args.out)
    progress = False if args.no_progress else None
    try:
        output_file(out, args.overwrite, "--out")     # before training or drawing
        if args.kind == "animate" and out.suffix.lower() not in (".gif", ".mp4"):
            raise UsageError(f"--out: expected a file name ending in .gif or .mp4, got {out}.")
        if out.suffix.lower() == ".mp4" and not plotting.ffmpeg_available():
            raise UsageError(f"--out: {out} asks for an MP4, which needs ffmpeg, and ffmpeg was "
                             "not found; install it or write a .gif.")
        if args.flow:
            from .. import io
            flow, target = io.load(args.flow), None
        else:
            name = args.demo or "moons"
            print(f"nfscratch plot: training a demo flow on {name} ({args.steps} steps)")
            flow, target = demo_flow(name, args.steps, args.seed, progress)
        if getattr(args, "dataset", None):
            target = ("data", datasets.sample(args.dataset, 4096, np.random.default_rng(args.seed)))
        elif getattr(args, "energy", None):
            target = ("energy", datasets.energy(args.energy))
        with plotting.style(args.style):
            if args.kind == "animate":
                plotting.animate_warp(flow, out, direction=args.direction,
                                      colour_by=args.colour_by,
                                      frames_per_layer=args.frames_per_layer, fps=args.fps,
                                      dpi=args.dpi, rng=args.seed, overwrite=args.overwrite,
                                      progress=progress)
            else:
                plotting.save_figure(_figure(args, flow, target, plotting), out, dpi=args.dpi,
                                     overwrite=args.overwrite, name="--out")
    except (ValueError, TypeError, RuntimeError, OSError) as exc:
        print(f"nfscratch plot {args.kind}: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


def _figure(args, flow, target, plotting):
    if args.kind == "warp":
        data = target[1] if target is not None and target[0] == "data" else None
        return plotting.film_strip(flow, direction=args.direction, layers=args.layers,
                                   data=data[:800] if data is not None else None,
                                   colour_by=args.colour_by, rng=args.seed, ncols=args.ncols)
    if args.kind == "density":
        if args.layers is not None:
            return plotting.plot_layer_densities(flow, args.layers, log=True, ncols=args.ncols)
        if target is None:
            return plotting.plot_density(flow, log=args.log)
        kw = {"data": target[1]} if target[0] == "data" else {"energy": target[1]}
        return plotting.target_vs_model(flow, log=args.log, **kw)
    # jacobian
    K = len(flow.layers)
    if not 0 <= args.layer < K:
        raise ValueError(f"--layer: expected a layer index between 0 and {K - 1}, got {args.layer}.")
    point = None if args.point is None else np.asarray(args.point, dtype=np.float64)
    return plotting.plot_jacobian(flow.layers[args.layer], point, direction=args.direction,
                                  rng=args.seed)
