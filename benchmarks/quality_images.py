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
    python benchmarks/quality_images.py --only glow_affine --conditional  # p(x | label)

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
from nfscratch.datasets.images import class_agreement, digit_classifier  # noqa: E402

# the recipes of `nfscratch train --dataset digits --coupling affine|spline`
RECIPES = {"glow_affine": DIGITS_RECIPES["affine"], "glow_spline": DIGITS_RECIPES["spline"]}


def run(name, seed=0, steps=None, conditional=False, **overrides):
    """Train recipe ``name`` once (``overrides`` replace glow_like's or the training entries);
    return a dict of the numbers the table reports.

    ``train_bpd`` evaluates the 1000 training digits exactly as the test digits are evaluated
    (8 fixed dequantizations each), so that it compares with ``test_bpd`` on the same footing,
    unlike the running loss of the training batches. ``conditional=True`` trains
    ``p(x | label)`` (every number is then given the label) and also reports how often a
    logistic regression labels the conditional samples as their class, at T = 1 and 0.8.
    """
    recipe = RECIPES[name]
    is_model = set(inspect.signature(models.glow_like).parameters).__contains__
    recipe = {"model": {**recipe["model"], **{k: v for k, v in overrides.items() if is_model(k)}},
              "train": {**recipe["train"], **{k: v for k, v in overrides.items()
                                              if not is_model(k)}}}
    cpu, wall = time.process_time(), time.perf_counter()
    flow, history, split = train_digits(recipe, seed, steps=steps, conditional=conditional)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    given = {k: models.one_hot(split[k][1], 10) if conditional else None for k in split}
    bpd, se = datasets.heldout_bits_per_dim(flow, split["test"][0], draws=8, seed=20_000,
                                            context=given["test"])
    train_bpd, _ = datasets.heldout_bits_per_dim(flow, split["train"][0], draws=8, seed=30_000,
                                                 context=given["train"])
    best = history.best_step
    near_best = history.loss[max(0, best - 100):best + 1]
    result = {"recipe": name, "seed": seed, "test_bpd": bpd, "se": se, "train_bpd": train_bpd,
              "val_bpd": datasets.bits_per_dim(min(history.val_loss), 64),
              "train_bpd_near_best": datasets.bits_per_dim(float(np.mean(near_best)), 64),
              "best_step": best, "steps_run": len(history.loss),
              "stopped_early": history.stopped_early, "average": history.average,
              "cpu_s": cpu, "wall_s": wall,
              "n_params": flow.n_params(), "val_curve": [round(datasets.bits_per_dim(v, 64), 3)
                                                         for v in history.val_loss]}
    if conditional:
        classify = digit_classifier(*split["train"])
        result["classifier_test_accuracy"] = float(np.mean(classify(split["test"][0])
                                                           == split["test"][1]))
        result["agreement"] = {T: class_agreement(flow, classify, 100, temperature=T, seed=11)
                               for T in (1.0, 0.8)}
    return result


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
    parser.add_argument("--conditional", action="store_true",
                        help="class-conditional: p(x | label), judged by a logistic regression")
    args = parser.parse_args(argv)
    overrides = {k: _value(v) for k, v in (kv.split("=", 1) for kv in args.set)}
    for name in args.only or list(RECIPES):
        for seed in args.seeds:
            r = run(name, seed, args.steps, args.conditional, **overrides)
            print(f"{name} {'conditional ' if args.conditional else ''}{overrides or ''}",
                  flush=True)
            print(f"{name} seed {seed}: test {r['test_bpd']:.4f} ± {r['se']:.4f} bits/dim, "
                  f"best validation {r['val_bpd']:.3f} at step {r['best_step']} (training "
                  f"batches then {r['train_bpd_near_best']:.3f}; the training digits evaluated "
                  f"as the test digits {r['train_bpd']:.3f}), {r['steps_run']} steps, "
                  f"stopped early {r['stopped_early']}, parameter average "
                  f"{r['average'] or 'off'}, {r['cpu_s']:.0f} s CPU / "
                  f"{r['wall_s']:.0f} s wall, {r['n_params']} parameters", flush=True)
            print(f"    validation curve: {r['val_curve']}", flush=True)
            if args.conditional:
                print(f"    logistic regression: {r['classifier_test_accuracy']:.3f} accurate on "
                      f"the real test digits; it labels conditional samples as their class: "
                      + "; ".join(f"T = {T}: {a:.1%} (per digit {np.round(per, 2).tolist()})"
                                  for T, (a, per) in r["agreement"].items()), flush=True)


if __name__ == "__main__":
    main()
