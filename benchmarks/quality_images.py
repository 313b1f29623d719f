#!/usr/bin/env python
r"""Digits recipes (issue 14): test bits/dim of the multi-scale image flows on the fixed split.

The split is ``datasets.digits_split()``: the first 1000 digits train, the next 350 validate,
the last 447 test. Training re-dequantizes every batch (``fit(..., transform=dequantize)``),
watches the validation images (dequantized once, by ``fit``) and stops early, restoring the best
parameters. The test bits/dim averages every test image's log-density over 8 fixed
dequantizations (``datasets.heldout_bits_per_dim``) and comes with its standard error over the
447 images. Baselines on this split (issue 14): independent pixels 2.40, a mixture of
product-categoricals 2.25.

Usage::

    python benchmarks/quality_images.py                         # every recipe, seed 0
    python benchmarks/quality_images.py --only glow_affine --seeds 0 1
    python benchmarks/quality_images.py --only glow_spline --steps 500    # a short run

The thread count is fixed to 1 before NumPy is imported; the script prints CPU seconds
(``time.process_time``, which a loaded machine does not inflate) beside wall seconds.
"""
import argparse
import inspect
import os
import sys
import time

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from nfscratch import datasets, models  # noqa: E402
from nfscratch.commands.train import DIGITS_RECIPES, train_digits  # noqa: E402

# the recipes of `nfscratch train --dataset digits --coupling affine|spline`
RECIPES = {"glow_affine": DIGITS_RECIPES["affine"], "glow_spline": DIGITS_RECIPES["spline"]}


def run(name, seed=0, steps=None, **overrides):
    """Train recipe ``name`` once (``overrides`` replace glow_like's or the training entries);
    return a dict of the numbers the table reports."""
    recipe = RECIPES[name]
    is_model = set(inspect.signature(models.glow_like).parameters).__contains__
    recipe = {"model": {**recipe["model"], **{k: v for k, v in overrides.items() if is_model(k)}},
              "train": {**recipe["train"], **{k: v for k, v in overrides.items()
                                              if not is_model(k)}}}
    cpu, wall = time.process_time(), time.perf_counter()
    flow, history, split = train_digits(recipe, seed, steps=steps)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    bpd, se = datasets.heldout_bits_per_dim(flow, split["test"][0], draws=8, seed=20_000)
    best = history.best_step
    near_best = history.loss[max(0, best - 100):best + 1]
    return {"recipe": name, "seed": seed, "test_bpd": bpd, "se": se,
            "val_bpd": datasets.bits_per_dim(min(history.val_loss), 64),
            "train_bpd_near_best": datasets.bits_per_dim(float(np.mean(near_best)), 64),
            "best_step": best, "steps_run": len(history.loss),
            "stopped_early": history.stopped_early, "cpu_s": cpu, "wall_s": wall,
            "n_params": flow.n_params(), "val_curve": [round(datasets.bits_per_dim(v, 64), 3)
                                                      for v in history.val_loss]}


def _value(text):
    """A --set value: a number, a list or tuple of numbers, or a string."""
    import ast
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    return tuple(value) if isinstance(value, list) else value


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=sorted(RECIPES), help="recipes to run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--steps", type=int, help="override the maximum number of steps")
    parser.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="override a recipe entry, e.g. hidden=[128] weight_decay=1e-3")
    args = parser.parse_args(argv)
    overrides = {k: _value(v) for k, v in (kv.split("=", 1) for kv in args.set)}
    for name in args.only or list(RECIPES):
        for seed in args.seeds:
            r = run(name, seed, args.steps, **overrides)
            print(f"{name} {overrides or ''}", flush=True)
            print(f"{name} seed {seed}: test {r['test_bpd']:.3f} ± {r['se']:.3f} bits/dim, "
                  f"best validation {r['val_bpd']:.3f} at step {r['best_step']} (training "
                  f"batches then {r['train_bpd_near_best']:.3f}), {r['steps_run']} steps, "
                  f"stopped early {r['stopped_early']}, {r['cpu_s']:.0f} s CPU / "
                  f"{r['wall_s']:.0f} s wall, {r['n_params']} parameters", flush=True)
            print(f"    validation curve: {r['val_curve']}", flush=True)


if __name__ == "__main__":
    main()
