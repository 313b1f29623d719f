"""``nfscratch train``: train a built-in architecture on a toy dataset or an energy and save it.

Where the flow goes is checked before training (a folder, an existing file without
``--overwrite``, a missing or read-only folder: one line, exit code 2), and a flow that diverged
is never saved: a non-finite loss during training (``fit`` raises ``TrainingDiverged``) or
non-finite parameters or metric after it end the command with exit code 1 and name the layer.
"""
import sys

import numpy as np

from ._common import (UsageError, add_progress_flag, non_negative_int, output_file,
                      positive_float, positive_int)

MODELS = ("realnvp", "nice", "planar", "maf", "iaf", "nsf", "nsf_coupling", "nsf_autoregressive",
          "glow_like")


def register(sub):
    p = sub.add_parser("train", help="train a flow on a 2-D toy dataset (maximum likelihood) or "
                                     "an energy U1-U4 (reverse KL) and save it as .npz")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--dataset", help="two_moons, circles, eight_gaussians, checkerboard, "
                                       "rings, swiss_roll, pinwheel, two_spirals, or digits "
                                       "(8x8 images: model glow_like)")
    src.add_argument("--energy", help="U1, U2, U3 or U4")
    p.add_argument("--model", choices=MODELS, default=None,
                   help="architecture (default: realnvp for data, planar for energies)")
    p.add_argument("--layers", type=positive_int, default=None, help="number of layers")
    p.add_argument("--hidden", type=positive_int, nargs="+", default=None,
                   help="conditioner hidden widths (couplings, maf, iaf; default 64 64, for "
                        "realnvp on data 32 32, for digits the recipe's)")
    p.add_argument("--steps", type=positive_int, default=None,
                   help="training steps (default for data: 5000 for realnvp, 6000 for nice "
                        "and nsf_autoregressive, 10000 for the others; 20000 for energies)")
    p.add_argument("--batch-size", type=positive_int, default=None,
                   help="batch size (default for data: 512 for realnvp, nice and "
                        "nsf_autoregressive, 256 for the others; 512 for energies)")
    p.add_argument("--lr", type=positive_float, default=None,
                   help="peak learning rate (default for data: 1e-2 for realnvp, 3e-3 for nice, "
                        "1e-3 for nsf_autoregressive, 2e-3 for the others; 2e-2 for energies)")
    p.add_argument("--schedule", choices=("cosine", "constant"), default="cosine",
                   help="learning-rate schedule (default cosine decay to 0; energies and "
                        "realnvp on data also warm up over the first 5%% of the steps)")
    p.add_argument("--clip", type=positive_float, default=None, help="clip the gradient norm")
    p.add_argument("--n-data", type=positive_int, default=None,
                   help="train on a fixed set of this many points (default: fresh points "
                        "every step, which cannot be overfitted)")
    p.add_argument("--conditional", action="store_true",
                   help="two_moons only: learn q(x | moon), the moon each point came from given "
                        "one-hot, and report the test NLL against H(X | Y)")
    p.add_argument("--coupling", choices=("affine", "spline"), default=None,
                   help="digits: the couplings of glow_like (default spline, the better recipe)")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--output", "-o", required=True, help="where to save the flow (.npz)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    add_progress_flag(p)
    p.set_defaults(func=run)


DEFAULT_LAYERS = {"realnvp": 10, "nice": 16, "planar": 32, "maf": 5, "iaf": 5, "nsf": 5,
                  "nsf_coupling": 5, "nsf_autoregressive": 5}


# Maximum-likelihood recipes on the 2-D toys (fresh points every step, cosine decay), measured
# against the true entropy in benchmarks/README.md ("Recipes of issues 11 and 13, second round").
# "hidden" replaces the 64 64 default; "warmup" is the fraction of the steps the rate warms up
# over before the cosine decay (benchmarks/README.md, "RealNVP moons in one minute").
DATA_RECIPES = {"realnvp": dict(steps=5000, batch_size=512, lr=1e-2, hidden=[32, 32], warmup=0.05),
                "nice": dict(steps=6000, batch_size=512, lr=3e-3),
                "nsf_autoregressive": dict(steps=6000, batch_size=512, lr=1e-3)}
DATA_DEFAULT = dict(steps=10_000, batch_size=256, lr=2e-3)


def build(model, layers, hidden, rng, context_dim=0):
    from .. import models
    n = DEFAULT_LAYERS[model] if layers is None else layers
    if context_dim:
        builders = {"realnvp": models.realnvp, "maf": models.maf, "iaf": models.iaf,
                    "nsf": models.nsf_coupling, "nsf_coupling": models.nsf_coupling,
                    "nsf_autoregressive": models.nsf_autoregressive}
        if model not in builders:
            raise UsageError(f"--conditional: expected a model with a conditioner "
                             f"({', '.join(builders)}), got {model}.")
        return builders[model](2, n_layers=n, hidden=hidden, rng=rng, context_dim=context_dim)
    if model == "realnvp":
        return models.realnvp(2, n_layers=n, hidden=hidden, rng=rng)
    if model == "nice":
        return models.nice(2, n_layers=n, hidden=hidden, rng=rng)
    if model in ("maf", "iaf"):
        return getattr(models, model)(2, n_layers=n, hidden=hidden, rng=rng)
    if model in ("nsf", "nsf_coupling"):          # rational-quadratic spline couplings
        return models.nsf_coupling(2, n_layers=n, hidden=hidden, rng=rng)
    if model == "nsf_autoregressive":             # rational-quadratic splines on a MADE
        return models.nsf_autoregressive(2, n_layers=n, hidden=hidden, rng=rng,
                                         activation="relu", bias_init="uniform")
    return models.planar_flow(2, n_layers=n, rng=rng)


def run(args):
    """Train and save; a bad argument is reported in one line with exit code 2, a diverged
    training run with exit code 1, and neither saves anything."""
    try:
        return _run(args)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"nfscratch train: {exc}", file=sys.stderr)
        return 2


def _non_finite_layer(flow):
    """``(index, name)`` of the first layer with a non-finite parameter, or None."""
    for i, t in enumerate(flow.transforms):
        for name, value in t.params.items():
            if not np.all(np.isfinite(value)):
                return i, f"{t.name}, parameter {name!r}"
    return None


def _diverged(message):
    print(f"nfscratch train: training diverged: {message} Nothing was saved.", file=sys.stderr)
    return 1


def _run(args):
    from pathlib import Path

    from .. import datasets, evaluate, io
    from ..optim import Cosine, Warmup
    from ..train import TrainingDiverged, fit
    out = Path(args.output)
    if out.is_dir():     # appending ".npz" would silently write beside it instead
        raise UsageError(f"--output: expected a file name, got the directory {out}; pass e.g. "
                         f"{out / 'flow.npz'}.")
    if out.suffix != ".npz":
        out = out.with_name(out.name + ".npz")
    out = output_file(out, args.overwrite, "--output")   # before spending minutes training
    rng = np.random.default_rng(args.seed)
    progress = False if args.no_progress else None
    if args.dataset == "digits" or args.model == "glow_like":
        return _run_digits(args, out, rng, progress)
    try:
        if args.dataset:
            name = args.dataset
            datasets.sample(name, 1, rng)                    # an unknown name fails here
            data = (datasets.sample(name, args.n_data, rng) if args.n_data
                    else (lambda n, r: datasets.sample(name, n, r)))
            if args.conditional:
                data, context = _conditional_data(name, args.n_data, rng)
            recipe = DATA_RECIPES.get(args.model or "realnvp", DATA_DEFAULT)
            flow = build(args.model or "realnvp", args.layers,
                         args.hidden or recipe.get("hidden", [64, 64]), rng,
                         2 if args.conditional else 0)
        elif args.conditional:
            raise UsageError("--conditional: conditions a --dataset (two_moons) on its labels; "
                             "energies have none.")
        else:
            target = datasets.energy(args.energy)
            flow = build(args.model or "planar", args.layers, args.hidden or [64, 64], rng)
    except (ValueError, TypeError) as exc:      # unknown names, impossible sizes
        raise UsageError(str(exc)) from None
    try:
        if args.dataset:
            steps, lr = args.steps or recipe["steps"], args.lr or recipe["lr"]
            schedule = (Warmup(Cosine(lr, steps), max(1, int(recipe["warmup"] * steps)))
                        if args.schedule == "cosine" and recipe.get("warmup") else args.schedule)
            hist = fit(flow, data=data, steps=steps,
                       batch_size=args.batch_size or recipe["batch_size"],
                       lr=lr, schedule=schedule, clip=args.clip,
                       rng=rng, progress=progress,
                       context=context if args.conditional else None)
        else:
            steps = args.steps or 20_000
            lr = args.lr or 2e-2
            schedule = (Warmup(Cosine(lr, steps), max(1, steps // 20))
                        if args.schedule == "cosine" else "constant")
            hist = fit(flow, target=target, steps=steps, batch_size=args.batch_size or 512,
                       lr=lr, schedule=schedule, anneal=max(1, steps // 10), clip=args.clip,
                       rng=rng, progress=progress)
    except TrainingDiverged as exc:
        return _diverged(str(exc))
    # fit may return normally with parameters that are finite but useless (e.g. --lr 1e300 for
    # one step): a non-finite parameter, final loss or metric is a divergence all the same
    advice = "Try a smaller --lr or --clip."
    bad = _non_finite_layer(flow)
    if bad is not None:
        return _diverged(f"layer {bad[0]} ({bad[1]}) is not finite after training. {advice}")
    try:
        with np.errstate(all="ignore"):
            result = (_conditional_nll(flow, rng) if args.conditional
                      else evaluate.nll(flow, args.dataset, n=100_000, rng=rng) if args.dataset
                      else evaluate.kl(flow, target, n=100_000, rng=rng))
            metric = result.nll if args.dataset else result.kl
    except (ValueError, FloatingPointError) as exc:     # e.g. samples that overflowed to inf
        return _diverged(f"the trained flow cannot be evaluated ({exc}). {advice}")
    name = "test NLL" if args.dataset else "KL(q || p)"
    if not (np.isfinite(hist.loss[-1]) and np.isfinite(metric)):
        return _diverged(f"the final training loss is {hist.loss[-1]} and the {name} is "
                         f"{metric}, not finite. {advice}")
    report = (f"final train loss {hist.loss[-1]:.4f}; test {result}" if args.dataset
              else f"{result}, floor 0")
    print(report)
    path = io.save(flow, out, overwrite=args.overwrite)
    print(f"saved {path}")
    return 0


def _conditional_data(name, n_data, rng):
    """``(data, context)`` for ``fit``: labelled two moons, a fixed set or fresh pairs."""
    from .. import datasets, models
    if name != "two_moons":
        raise UsageError(f"--conditional: only two_moons has labels (the moon), got {name}.")
    if n_data:
        x, label = datasets.two_moons_labeled(n_data, rng)
        return x, models.one_hot(label, 2)

    def pairs(n, r):
        x, label = datasets.two_moons_labeled(n, r)
        return x, models.one_hot(label, 2)
    return pairs, None


def _conditional_nll(flow, rng, n=100_000):
    """Test NLL -log q(x | moon) on fresh labelled points, against H(X | Y)."""
    from .. import datasets, evaluate, models
    x, label = datasets.two_moons_labeled(n, rng)
    terms = -flow.log_prob(x, models.one_hot(label, 2))
    if not np.all(np.isfinite(terms)):
        raise ValueError("log q(x | y) is not finite at some test points")
    return evaluate.NLLResult(nll=float(terms.mean()), se=float(terms.std(ddof=1) / np.sqrt(n)),
                              floor=datasets.moon_entropy(), n=n, data="two_moons | moon")


#: The digits recipes (issue 14): glow_like keyword arguments, then fit's (``weight_decay`` is
#: AdamW's, ``average`` the decay of fit's parameter average, None for none); the split is
#: datasets.digits_split(). benchmarks/quality_images.py reruns both and benchmarks/README.md
#: ("Digits, multi-scale" and later sections) has their numbers and how they were chosen.
DIGITS_RECIPES = {
    "affine": dict(model=dict(levels=2, n_steps=(48, 48), hidden=(32,), coupling="affine",
                              alpha=0.005, lu=False),
                   train=dict(steps=1000, batch_size=128, lr=1e-3, weight_decay=2.5,
                              patience=6, record_every=50, average=0.995)),
    "spline": dict(model=dict(levels=2, n_steps=(4, 4), hidden=(64,), coupling="spline",
                              n_bins=8, bound=4.0, alpha=0.005),
                   train=dict(steps=1000, batch_size=128, lr=1e-3, weight_decay=1.0,
                              patience=6, record_every=50, average=0.995)),
}


def train_digits(recipe, seed=0, steps=None, batch_size=None, lr=None, schedule="cosine",
                 clip=None, progress=False, conditional=False, **model_overrides):
    """Train ``models.glow_like`` on the digits by ``recipe`` (an entry of DIGITS_RECIPES):
    new dequantization noise every step, early stopping on the validation digits (on the
    parameter average when the recipe has one).
    ``conditional=True``: the class-conditional model ``p(x | label)``, the label one-hot
    (``context_dim=10``), validated on the validation digits given their labels.

    Returns ``(flow, history, split)``; the arguments after ``recipe`` override the recipe's.
    """
    from .. import datasets, models
    from ..optim import AdamW
    from ..train import fit
    rng = np.random.default_rng(seed) if not isinstance(seed, np.random.Generator) else seed
    train = recipe["train"]
    split = datasets.digits_split()
    if conditional:
        model_overrides["context_dim"] = 10
    flow = models.glow_like(8, 8, rng=rng, **{**recipe["model"], **model_overrides})
    (x_train, y_train), (x_val, y_val) = split["train"], split["validation"]
    given = {}
    if conditional:
        given = {"context": models.one_hot(y_train, 10)}
        x_val = (x_val, models.one_hot(y_val, 10))
    history = fit(flow, data=x_train, transform=datasets.dequantize, validation=x_val,
                  patience=train["patience"], record_every=train["record_every"],
                  average=train.get("average"),
                  steps=steps or train["steps"], batch_size=batch_size or train["batch_size"],
                  optimizer=AdamW(lr or train["lr"], weight_decay=train["weight_decay"]),
                  schedule=schedule, clip=clip, rng=rng, progress=progress, **given)
    return flow, history, split


def _run_digits(args, out, rng, progress):
    """``--dataset digits``: :func:`train_digits`; the report is test bits/dim (447 digits, 8
    fixed dequantizations) against the baselines."""
    from .. import datasets, io
    from ..train import TrainingDiverged
    if args.dataset != "digits" or (args.model or "glow_like") != "glow_like":
        raise UsageError("--model glow_like goes with --dataset digits (8x8 images), and "
                         f"digits with glow_like; got --dataset {args.dataset or args.energy} "
                         f"--model {args.model}.")
    if args.n_data:
        raise UsageError("--n-data: the digits split is fixed (1000 train, 350 validation, 447 "
                         "test images); leave --n-data out.")
    overrides = {}
    if args.hidden:
        overrides["hidden"] = tuple(args.hidden)
    if args.layers:
        overrides["n_steps"] = args.layers
    try:
        flow, hist, split = train_digits(
            DIGITS_RECIPES[args.coupling or "spline"], rng, steps=args.steps,
            batch_size=args.batch_size, lr=args.lr, schedule=args.schedule, clip=args.clip,
            progress=progress, **overrides)
    except TrainingDiverged as exc:
        return _diverged(str(exc))
    bad = _non_finite_layer(flow)
    if bad is not None:
        return _diverged(f"layer {bad[0]} ({bad[1]}) is not finite after training. Try a "
                         "smaller --lr or --clip.")
    with np.errstate(all="ignore"):
        bpd, se = datasets.heldout_bits_per_dim(flow, split["test"][0], draws=8, seed=20_000)
    if not np.isfinite(bpd):
        return _diverged(f"the test bits/dim is {bpd}, not finite. Try a smaller --lr.")
    averaged = "" if hist.average is None else f" (parameter average, decay {hist.average})"
    print(f"best validation {datasets.bits_per_dim(min(hist.val_loss), 64):.3f} bits/dim at step "
          f"{hist.best_step}{averaged}; test {bpd:.3f} ± {se:.3f} bits/dim (baselines: independent pixels "
          f"2.40, product-categorical mixture 2.25)")
    path = io.save(flow, out, overwrite=args.overwrite)
    print(f"saved {path}")
    return 0
