#!/usr/bin/env python
r"""How close the shipped recipes train to the floor: the quality table of benchmarks/README.md.

Every number is stated against its floor (DESIGN.md): for density estimation the gap
``test NLL - true entropy`` on fresh points (``nfscratch.evaluate.nll``), for variational
inference ``KL(q || p) = E_q[log q + U] + log Z`` (``nfscratch.evaluate.kl``), each with its
standard error; for the digits, bits per dimension on held-out images against the
independent-pixel baseline. Each recipe runs once per seed; the table gives the mean, the
spread (min..max) over the seeds, the largest standard error, and the seconds of training (CPU
seconds of this process, ``time.process_time``, and wall seconds; the evaluation is not counted).

Usage::

    python benchmarks/quality.py                    # every recipe, 5 seeds
    python benchmarks/quality.py --quick            # fewer steps and seeds, 20k test points
    python benchmarks/quality.py --only planar nice --seeds 0 1 2

The thread count is fixed to 1 before NumPy is imported; run it on an idle machine, or state
the load next to the seconds.
"""
import argparse
import os
import sys
import time

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from nfscratch import datasets, evaluate, models  # noqa: E402
from nfscratch.optim import Cosine, Warmup  # noqa: E402
from nfscratch.train import fit  # noqa: E402

# The recipes (also what the demo, `nfscratch train` and the README use: see the report of
# issue 11). Each is (what it builds, how it trains); --quick scales the steps down.
PLANAR = dict(n_layers=32, steps=20_000, batch_size=512, lr=2e-2, anneal=2000, warmup=1000)
# moons: half as wide as 64 (a step costs half as much), so 10 layers fit in the minute, and a
# high peak rate behind a linear warm-up over the first ``warmup`` fraction of the steps
# (benchmarks/README.md, "RealNVP moons in one minute").
MOONS = dict(n_layers=10, hidden=(32, 32), steps=5000, batch_size=512, lr=1e-2, warmup=0.05,
             noise=0.1)
TEN_LINES = dict(n_layers=8, hidden=(64, 64), steps=6000, batch_size=256, lr=2e-3, noise=0.05)
NICE = dict(n_layers=16, hidden=(64, 64), steps=6000, batch_size=512, lr=3e-3, noise=0.1)
DIGITS = dict(n_layers=6, hidden=(256,), alpha=0.005, steps=4000, batch_size=128, lr=1e-3,
              patience=8, record_every=100)


def planar(name, seed, quick):
    steps = PLANAR["steps"] // (4 if quick else 1)
    flow = models.planar_flow(2, PLANAR["n_layers"], rng=seed)
    schedule = Cosine(PLANAR["lr"], steps)
    if PLANAR["warmup"]:
        schedule = Warmup(schedule, PLANAR["warmup"])
    with _Clock() as clock:
        fit(flow, target=name, steps=steps, batch_size=PLANAR["batch_size"], schedule=schedule,
            anneal=PLANAR["anneal"], rng=seed, progress=False)
    result = evaluate.kl(flow, name, n=_test_points(quick), rng=10_000 + seed)
    return result.kl, result.se, clock


def toy_mle(recipe, build):
    """A maximum-likelihood recipe on two moons with fresh points every step."""
    def run(seed, quick):
        noise = recipe["noise"]
        flow = build(recipe, seed)
        steps = recipe["steps"] // (4 if quick else 1)
        schedule = Cosine(recipe["lr"], steps)
        if recipe.get("warmup"):
            schedule = Warmup(schedule, max(1, int(recipe["warmup"] * steps)))
        with _Clock() as clock:
            fit(flow, data=lambda n, rng: datasets.two_moons(n, rng, noise=noise), steps=steps,
                batch_size=recipe["batch_size"], schedule=schedule, rng=seed, progress=False)
        result = evaluate.nll(flow, "two_moons", n=_test_points(quick), rng=10_000 + seed,
                              noise=noise)
        return result.gap, result.se, clock
    return run


def _realnvp(recipe, seed):
    return models.realnvp(2, recipe["n_layers"], recipe["hidden"], rng=seed)


def _nice(recipe, seed):
    return models.nice(2, recipe["n_layers"], recipe["hidden"], rng=seed)


def digits(seed, quick):
    """realnvp_image on the 8x8 digits: re-dequantized every step, early stopping on a
    validation split; bits/dim on held-out test images (dequantized once)."""
    images, _ = datasets.digits()
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(images))
    test, train = images[order[:300]], images[order[300:]]
    flow = models.realnvp_image(8, 8, DIGITS["n_layers"], DIGITS["hidden"], alpha=DIGITS["alpha"],
                                rng=seed)
    with _Clock() as clock:
        history = fit(flow, data=train, transform=datasets.dequantize, validation_split=0.15,
                      patience=DIGITS["patience"], record_every=DIGITS["record_every"],
                      steps=DIGITS["steps"] // (4 if quick else 1),
                      batch_size=DIGITS["batch_size"], lr=DIGITS["lr"], schedule="cosine",
                      rng=seed, progress=False)
    lp = flow.log_prob(datasets.dequantize(test, 20_000 + seed))
    bpd = datasets.bits_per_dim(-np.mean(lp), 64)
    se = np.std(lp) / np.sqrt(len(lp)) / (64 * np.log(2.0))
    near_best = history.loss[max(0, history.best_step - 100):history.best_step + 1]
    train_bpd = datasets.bits_per_dim(np.mean(near_best), 64)      # training batches near it
    val_bpd = datasets.bits_per_dim(min(history.val_loss), 64)
    print(f"    digits seed {seed}: best validation {val_bpd:.3f} at step {history.best_step} "
          f"(training batches then: {train_bpd:.3f}; stopped early: {history.stopped_early}), "
          f"test {bpd:.3f} bits/dim", flush=True)
    return bpd, se, clock


def _test_points(quick):
    return 20_000 if quick else 100_000


class _Clock:
    """CPU seconds of this process (what counts on a shared machine) and wall seconds."""

    def __enter__(self):
        self.cpu, self.wall = time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.cpu = time.process_time() - self.cpu
        self.wall = time.perf_counter() - self.wall


RECIPES = {
    "planar": [(f"planar K=32 reverse KL, {u}", "KL nats", lambda s, q, u=u: planar(u, s, q))
               for u in ("U1", "U2", "U3", "U4")],
    "moons": [(f"RealNVP {MOONS['n_layers']}x{MOONS['hidden']} moons(0.1), fresh points",
               "gap nats",
               toy_mle(MOONS, _realnvp))],
    "ten_lines": [(f"README ten lines: RealNVP {TEN_LINES['n_layers']}x(64,64) moons(0.05)",
                   "gap nats",
                   toy_mle(TEN_LINES, _realnvp))],
    "nice": [(f"NICE {NICE['n_layers']}x(64,64) + scaling moons(0.1)", "gap nats",
              toy_mle(NICE, _nice))],
    "digits": [("realnvp_image 6x(256) digits (baseline 2.40)", "bits/dim", digits)],
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a quarter of the steps, 3 seeds")
    parser.add_argument("--seeds", type=int, nargs="+", help="default: 0..4 (quick: 0..2)")
    parser.add_argument("--only", nargs="+", choices=sorted(RECIPES), help="recipes to run")
    args = parser.parse_args(argv)
    seeds = args.seeds or list(range(3 if args.quick else 5))
    rows = []
    for key in args.only or list(RECIPES):
        for title, unit, run in RECIPES[key]:
            values, ses, cpus, walls = [], [], [], []
            for seed in seeds:
                value, se, clock = run(seed, args.quick)
                values.append(value), ses.append(se), cpus.append(clock.cpu)
                walls.append(clock.wall)
                print(f"  {title}, seed {seed}: {value:.4f} ± {se:.4f} {unit}, {clock.cpu:.1f} s "
                      f"CPU ({clock.wall:.1f} s wall)", flush=True)
            rows.append((title, unit, values, ses, cpus, walls))
    print("\n| recipe | measure | mean | min..max over seeds | max SE | CPU s (mean) "
          "| wall s (mean) | seeds |")
    print("|---|---|---|---|---|---|---|---|")
    for title, unit, values, ses, cpus, walls in rows:
        print(f"| {title} | {unit} | {np.mean(values):.4f} | {min(values):.4f}..{max(values):.4f}"
              f" | {max(ses):.4f} | {np.mean(cpus):.1f} | {np.mean(walls):.1f} | {len(values)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
