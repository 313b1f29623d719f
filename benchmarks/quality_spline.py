#!/usr/bin/env python
r"""Recipes: neural spline flows on the 2-D toys, measured against the data's true entropy.

Each recipe trains ``models.nsf_coupling`` or ``models.nsf_autoregressive`` (the recipe's
``model``; both take ``(dim, n_layers, hidden, n_bins, bound)``, and a recipe may add the
conditioner's ``activation`` and, for ``nsf_autoregressive``, ``bias_init``) by maximum
likelihood with a fresh batch from the sampler at every step (no fixed training set, so no
overfitting), Adam with a cosine decay of the learning rate to 0, one thread, and then reports
the test NLL on 100k
fresh points with its standard error and the gap ``NLL - H(p)`` to the entropy ``H(p)``, the
floor no model crosses.

The gap is measured against the exact log-density ``datasets.log_prob`` on the first 20k test
points (paired, so its standard error is small); ``datasets.entropy`` (exact, by quadrature) is
printed beside it.

Usage::

    python benchmarks/quality_spline.py                      # every recipe, one after another
    python benchmarks/quality_spline.py two_moons --steps 500  # a shorter run of one recipe
    nice python benchmarks/quality_spline.py --json benchmarks/quality_spline.json

The time limit of a recipe is 4 minutes of CPU time on one core; the script prints the CPU
seconds each run took (``time.process_time``, which a busy shared machine does not inflate the
way it inflates wall time).
"""
import argparse
import json
import math
import os
import sys
import time

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from nfscratch import datasets, losses, models  # noqa: E402
from nfscratch.optim import Adam  # noqa: E402

RECIPES = {
    # both coordinates bent in every layer (the first by an input-independent spline); zuko's
    # NSF settings (ReLU, PyTorch's random biases, B = 5, lr 1e-3) close the gap to it:
    # benchmarks/README.md, "Spline flows on moons: closing the gap to zuko"
    "two_moons":       dict(model="nsf_autoregressive", layers=5, bins=8, bound=5.0,
                            hidden=(64, 64), activation="relu", bias_init="uniform", batch=512,
                            steps=6000, lr=1e-3),
    "eight_gaussians": dict(layers=8, bins=16, bound=4.0, hidden=(64, 64), batch=512, steps=6000,
                            lr=2e-3),
    "pinwheel":        dict(layers=8, bins=16, bound=4.0, hidden=(64, 64), batch=512, steps=6000,
                            lr=2e-3),
    "two_spirals":     dict(layers=8, bins=16, bound=4.0, hidden=(64, 64), batch=512, steps=4000,
                            lr=2e-3),
    "checkerboard":    dict(layers=8, bins=16, bound=4.5, hidden=(64, 64), batch=512, steps=4000,
                            lr=2e-3),
}
N_TEST = 100_000
BUDGET_S = 240.0


# ---------------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------------
def train(name, seed=0, **overrides):
    r = {**RECIPES[name], **overrides}
    rng = np.random.default_rng(seed)
    build = getattr(models, r.get("model", "nsf_coupling"))
    options = {key: r[key] for key in ("activation", "bias_init") if key in r}
    flow = build(2, r["layers"], r["hidden"], r["bins"], r["bound"], rng=rng, **options)
    opt = Adam(lr=r["lr"])
    t0 = time.process_time()
    w0 = time.perf_counter()
    losses_seen = []
    for step in range(r["steps"]):
        opt.lr = r["lr"] * 0.5 * (1.0 + math.cos(math.pi * step / r["steps"]))   # cosine decay
        x = datasets.sample(name, r["batch"], rng)                               # fresh data
        losses_seen.append(losses.nll_step(flow, x))
        opt.step(flow.params(), flow.grads())
        if not np.isfinite(losses_seen[-1]):
            raise FloatingPointError(f"{name}: non-finite loss at step {step}")
    cpu = time.process_time() - t0
    wall = time.perf_counter() - w0
    return flow, {"recipe": {k: (list(v) if isinstance(v, tuple) else v) for k, v in r.items()},
                  "cpu_s": cpu, "wall_s": wall, "final_train_loss": float(np.mean(losses_seen[-200:]))}


def test_nll(flow, name, seed=12345):
    """Per-point NLL on ``N_TEST`` fresh points, and the points."""
    x = datasets.sample(name, N_TEST, np.random.default_rng(seed))
    return -np.concatenate([flow.log_prob(x[i:i + 10_000]) for i in range(0, N_TEST, 10_000)]), x


# ---------------------------------------------------------------------------------------------
N_PAIRED = 20_000


def gap_to_entropy(name, nll, x):
    """``(gap, standard error, H, how)`` for per-point test NLLs ``nll`` at points ``x``.

    The gap is ``mean(log p - log q)`` on the first ``N_PAIRED`` test points, with the exact
    log-density ``datasets.log_prob``: the same points on both sides, so its standard error is
    that of the difference, far below that of either. ``H = datasets.entropy(name)`` is reported
    beside it (exact, by quadrature).
    """
    log_p = datasets.log_prob(name, x[:N_PAIRED])
    diff = log_p + nll[:N_PAIRED]
    return (float(diff.mean()), float(diff.std() / math.sqrt(N_PAIRED)),
            float(datasets.entropy(name)), f"exact log-density, paired on {N_PAIRED} points")


# ---------------------------------------------------------------------------------------------
def main(argv=None):
    p = argparse.ArgumentParser(prog="benchmarks/quality_spline.py",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("names", nargs="*", help=f"recipes to run (default all: {list(RECIPES)})")
    p.add_argument("--steps", type=int, help="override the recipe's number of steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="append the results to this JSON file")
    args = p.parse_args(argv)
    unknown = [n for n in args.names if n not in RECIPES]
    if unknown:
        p.error(f"unknown recipe(s) {unknown}; expected some of {list(RECIPES)}")
    results = {}
    for name in args.names or list(RECIPES):
        over = {} if args.steps is None else {"steps": args.steps}
        flow, info = train(name, args.seed, **over)
        nll_points, x = test_nll(flow, name)
        nll, se = float(nll_points.mean()), float(nll_points.std() / math.sqrt(N_TEST))
        gap, gap_se, h, how = gap_to_entropy(name, nll_points, x)
        info.update(test_nll=nll, test_nll_se=se, entropy=h, entropy_from=how, gap=gap,
                    gap_se=gap_se, seed=args.seed)
        results[name] = info
        r = info["recipe"]
        print(f"{name:16s} gap {gap:.4f} ± {gap_se:.4f} nats  (NLL {nll:.4f} ± {se:.4f}, "
              f"H {h:.4f} [{how}])  {r.get('model', 'nsf_coupling')}, {r['layers']} layers, "
              f"{r['bins']} bins, B={r['bound']}, hidden {r['hidden']} "
              f"{r.get('activation', 'tanh')}, batch {r['batch']}, lr {r['lr']}, "
              f"{r['steps']} steps: "
              f"{info['cpu_s']:.0f} s CPU ({info['wall_s']:.0f} s wall)", flush=True)
        if args.json:
            old = json.load(open(args.json)) if os.path.exists(args.json) else {}
            old[name] = info
            with open(args.json, "w") as fh:
                json.dump(old, fh, indent=1)
    return results


if __name__ == "__main__":
    main()
