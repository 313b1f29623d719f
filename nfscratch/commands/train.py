"""``nfscratch train``: train a built-in architecture on a toy dataset or an energy and save it."""
import sys

import numpy as np

MODELS = ("realnvp", "nice", "planar", "nsf", "nsf_coupling")


def register(sub):
    p = sub.add_parser("train", help="train a flow on a 2-D toy dataset (maximum likelihood) or "
                                     "an energy U1-U4 (reverse KL) and save it as .npz")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", help="two_moons, circles, eight_gaussians, checkerboard, "
                                       "rings, swiss_roll, pinwheel, two_spirals")
    src.add_argument("--energy", help="U1, U2, U3 or U4")
    p.add_argument("--model", choices=MODELS, default=None,
                   help="architecture (default: realnvp for data, planar for energies)")
    p.add_argument("--layers", type=int, default=None, help="number of layers")
    p.add_argument("--hidden", type=int, nargs="+", default=[64, 64],
                   help="conditioner hidden widths (couplings)")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--clip", type=float, default=None, help="clip the gradient norm")
    p.add_argument("--n-data", type=int, default=8192, help="training set size (datasets)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--output", "-o", required=True, help="where to save the flow (.npz)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


DEFAULT_LAYERS = {"realnvp": 8, "nice": 4, "planar": 32, "nsf": 5, "nsf_coupling": 5}


def build(model, layers, hidden, rng):
    from .. import models
    n = DEFAULT_LAYERS[model] if layers is None else layers
    if model == "realnvp":
        return models.realnvp(2, n_layers=n, hidden=hidden, rng=rng)
    if model == "nice":
        return models.nice(2, n_layers=n, hidden=hidden, rng=rng)
    if model in ("nsf", "nsf_coupling"):          # rational-quadratic spline couplings
        return models.nsf_coupling(2, n_layers=n, hidden=hidden, rng=rng)
    return models.planar_flow(2, n_layers=n, rng=rng)


def run(args):
    """Train and save; a bad argument is reported in one line with exit code 2."""
    try:
        return _run(args)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"nfscratch train: {exc}", file=sys.stderr)
        return 2


def _run(args):
    from pathlib import Path

    from .. import datasets, io
    from ..train import fit
    out = Path(args.output)
    if out.suffix != ".npz":
        out = out.with_name(out.name + ".npz")
    if out.exists() and not args.overwrite:  # refuse before spending minutes training
        print(f"nfscratch train: {out} already exists; pass --overwrite to replace it.")
        return 2
    if not out.parent.is_dir():
        raise FileNotFoundError(f"--output: the directory {out.parent} does not exist.")
    if args.lr is not None and not args.lr > 0:
        raise ValueError(f"--lr: expected a positive learning rate, got {args.lr}.")
    rng = np.random.default_rng(args.seed)
    progress = False if args.no_progress else None
    if args.dataset:
        data = datasets.sample(args.dataset, args.n_data, rng)
        test = datasets.sample(args.dataset, args.n_data, rng)
        flow = build(args.model or "realnvp", args.layers, args.hidden, rng)
        hist = fit(flow, data=data, steps=args.steps, batch_size=args.batch_size,
                   lr=args.lr or 2e-3, clip=args.clip, rng=rng, progress=progress)
        print(f"final train loss {hist.loss[-1]:.4f}; test NLL "
              f"{-np.mean(flow.log_prob(test)):.4f} nats")
    else:
        target = datasets.energy(args.energy)
        flow = build(args.model or "planar", args.layers, args.hidden, rng)
        hist = fit(flow, target=target, steps=args.steps, batch_size=args.batch_size,
                   lr=args.lr or 1e-2, clip=args.clip, rng=rng, progress=progress)
        x, log_q = flow.sample_and_log_prob(20000, rng)
        kl = np.mean(log_q + target.energy(x)) + target.log_normalizer()
        print(f"KL(q || p) {kl:.4f} nats")
    path = io.save(flow, out, overwrite=args.overwrite)
    print(f"saved {path}")
    return 0
