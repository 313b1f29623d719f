"""``nfscratch doctor CHECKPOINT``: examine a saved flow layer by layer and say what is wrong."""
import sys
from pathlib import Path


def register(sub):
    p = sub.add_parser("doctor", help="examine a saved flow layer by layer in both directions: "
                                      "NaNs, round trips, log-dets, conditioning, mass")
    p.add_argument("checkpoint", help="a .npz file written by nfscratch (train, io.save)")
    p.add_argument("--data", default=None,
                   help="data for the density direction: a built-in 2-D data set name "
                        "(e.g. two_moons) or a .npy file of shape (N, D); default: the flow's "
                        "own samples")
    p.add_argument("--context", default=None,
                   help="for a conditional flow: one context row as comma-separated numbers "
                        "(e.g. 1,0 for the first of two one-hot classes) or a .npy file of shape "
                        "(N, C), one row per --data point; default: a standard-normal row per "
                        "point")
    p.add_argument("--n", type=int, default=2000, help="points per direction (default 2000)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def _fail(message):
    print(f"nfscratch doctor: {message}", file=sys.stderr)
    return 2


def _load_data(spec, n, seed):
    import numpy as np
    from .. import datasets
    path = Path(spec)
    if path.suffix == ".npy":
        if not path.is_file():
            raise ValueError(f"--data: no file {path}.")
        return np.load(path, allow_pickle=False)
    if spec not in datasets.SAMPLERS:
        raise ValueError(f"--data: expected a .npy file or one of {sorted(datasets.SAMPLERS)}, "
                         f"got {spec!r}.")
    return datasets.sample(spec, n, rng=seed)


def _load_context(spec):
    import numpy as np
    path = Path(spec)
    if path.suffix == ".npy":
        if not path.is_file():
            raise ValueError(f"--context: no file {path}.")
        return np.load(path, allow_pickle=False)
    try:
        return np.array([float(v) for v in spec.split(",")])
    except ValueError:
        raise ValueError(f"--context: expected comma-separated numbers or a .npy file, got "
                         f"{spec!r}.") from None


def run(args):
    if args.n < 1:
        return _fail(f"--n: expected a positive number of points, got {args.n}.")
    if args.seed < 0:
        return _fail(f"--seed: expected a non-negative integer, got {args.seed}.")
    from .. import io
    from ..doctor import doctor
    try:
        flow = io.load(args.checkpoint)
    except (OSError, ValueError) as exc:
        return _fail(str(exc))
    try:
        x = None if args.data is None else _load_data(args.data, args.n, args.seed)
        context = None if args.context is None else _load_context(args.context)
        report = doctor(flow, x, context=context, n=args.n, rng=args.seed, verbose=False)
    except (TypeError, ValueError) as exc:
        return _fail(str(exc))
    print(report)
    return 0 if report.ok else 1
