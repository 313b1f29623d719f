#!/usr/bin/env python
r"""Recipes: neural spline flows on the 2-D toys, measured against the data's true entropy.

Each recipe trains ``models.nsf_coupling`` by maximum likelihood with a fresh batch from the
sampler at every step (no fixed training set, so no overfitting), Adam with a cosine decay of
the learning rate to 0, one thread, and then reports the test NLL on 100k fresh points with its
standard error and the gap ``NLL - H(p)`` to the entropy ``H(p)``, the floor no model crosses.

Entropies: ``datasets.entropy(name)`` where it has one (checkerboard exactly ``ln 32``;
eight_gaussians' value there is the sum of 8 disjoint components, 0.006 nats above the true
entropy, so 0.006 is subtracted here until ``datasets`` has the exact value). For the others
this script evaluates the exact density ``p``: for two_moons and two_spirals by integrating over
the sampler's 1-D latent (the position along the curve) with the midpoint rule, for pinwheel by
finding every preimage of ``x`` (a 1-D root-find per arm) and summing ``p(f) / |det J|``; the gap
is then ``mean(log p - log q)`` over the first 20k test points (paired, so its standard error is
small).

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
    "two_moons":       dict(layers=8, bins=16, bound=3.0, hidden=(64, 64), batch=512, steps=6000,
                            lr=2e-3),
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
EIGHT_GAUSSIANS_CORRECTION = 0.006      # datasets.entropy's value is this much too high


# ---------------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------------
def train(name, seed=0, **overrides):
    r = {**RECIPES[name], **overrides}
    rng = np.random.default_rng(seed)
    flow = models.nsf_coupling(2, r["layers"], r["hidden"], r["bins"], r["bound"], rng=rng)
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
# entropies
# ---------------------------------------------------------------------------------------------
def _log_density_moons(x, noise=0.1, n_nodes=1000):
    t = (np.arange(n_nodes) + 0.5) * np.pi / n_nodes                  # midpoint rule on [0, pi]
    out = np.empty(len(x))
    for i in range(0, len(x), 2000):
        xc = x[i:i + 2000, None, :]                                    # (B, 1, 2)
        dens = 0.0
        for cx, cy in ((np.cos(t), np.sin(t)), (1.0 - np.cos(t), 0.5 - np.sin(t))):
            d2 = (xc[..., 0] - cx) ** 2 + (xc[..., 1] - cy) ** 2      # (B, T)
            dens = dens + np.exp(-0.5 * d2 / noise ** 2).mean(axis=1)  # E_t over [0, pi]
        out[i:i + 2000] = np.log(0.5 * dens / (2 * np.pi * noise ** 2))
    return out


def _log_density_spirals(x, noise=0.1, n_nodes=3000):
    from scipy.special import ndtr
    smax = 3.0 * np.pi
    s = (np.arange(n_nodes) + 0.5) * smax / n_nodes                   # s = 3 pi sqrt(u)
    w = 2.0 * s / smax ** 2 * (smax / n_nodes)                         # p(s) ds
    c = np.stack([-s * np.cos(s), s * np.sin(s)], axis=1) / 3.0        # (T, 2)
    out = np.empty(len(x))
    for i in range(0, len(x), 1000):
        xc = x[i:i + 1000, None, :]                                    # (B, 1, 2)
        dens = 0.0
        for sign in (1.0, -1.0):
            # x_d = sign (c_d + v_d / 3) + eps: uniform of width 1/6 convolved with N(0, noise^2)
            lo = np.where(sign > 0, c, -c - 1.0 / 6.0)                  # (T, 2)
            pd = 6.0 * (ndtr((xc - lo) / noise) - ndtr((xc - lo - 1.0 / 6.0) / noise))
            dens = dens + (pd[..., 0] * pd[..., 1]) @ w
        out[i:i + 1000] = np.log(0.5 * dens)
    return out


def _log_density_pinwheel(x, n_grid=4000):
    # x = 2 R(a) f with R(a) f = (f0 cos a + f1 sin a, -f0 sin a + f1 cos a), a = 2 pi k/5 +
    # 0.25 e^{f0}. For each arm k, f = R(a)^T x / 2 must have first component f0: find every
    # root of g(f0) = (R(a(f0))^T x / 2)_0 - f0 on a grid, refine by bisection, and add
    # p(f) / |det dx/df| / 5 over the roots (the Jacobian of the map (f0, f1) -> x, written out
    # below; a depends on f0).
    f0g = np.linspace(-1.5, 3.5, n_grid)
    dens = np.zeros(len(x))
    for k in range(5):
        def g(f0, xx):
            a = 2 * np.pi * k / 5 + 0.25 * np.exp(f0)
            return (np.cos(a) * xx[..., 0] - np.sin(a) * xx[..., 1]) / 2.0 - f0
        for i in range(0, len(x), 2000):
            xx = x[i:i + 2000, None, :]
            vals = g(f0g[None, :], xx)                                 # (B, G)
            sgn = np.signbit(vals)
            rows, cols = np.nonzero(sgn[:, 1:] != sgn[:, :-1])
            lo, hi = f0g[cols].copy(), f0g[cols + 1].copy()
            xr = xx[rows, 0, :]
            glo = g(lo, xr)
            for _ in range(50):                                        # bisection
                mid = 0.5 * (lo + hi)
                gm = g(mid, xr)
                left = np.signbit(gm) == np.signbit(glo)
                lo, glo = np.where(left, mid, lo), np.where(left, gm, glo)
                hi = np.where(left, hi, mid)
            f0 = 0.5 * (lo + hi)
            a = 2 * np.pi * k / 5 + 0.25 * np.exp(f0)
            f1 = (np.sin(a) * xr[:, 0] + np.cos(a) * xr[:, 1]) / 2.0
            da = 0.25 * np.exp(f0)
            # x/2 = (f0 cos a + f1 sin a, -f0 sin a + f1 cos a); Jacobian wrt (f0, f1)
            j00 = np.cos(a) + (-f0 * np.sin(a) + f1 * np.cos(a)) * da
            j10 = -np.sin(a) + (-f0 * np.cos(a) - f1 * np.sin(a)) * da
            j01, j11 = np.sin(a), np.cos(a)
            det = 4.0 * np.abs(j00 * j11 - j01 * j10)
            pf = (np.exp(-0.5 * ((f0 - 1.0) / 0.3) ** 2 - 0.5 * (f1 / 0.1) ** 2)
                  / (2 * np.pi * 0.3 * 0.1))
            np.add.at(dens, i + rows, pf / det / 5.0)
    return np.log(dens)


_LOG_DENSITY = {"two_moons": _log_density_moons, "two_spirals": _log_density_spirals,
                "pinwheel": _log_density_pinwheel}


N_PAIRED = 20_000


def gap_to_entropy(name, nll, x):
    """``(gap, standard error, H, how)`` for per-point test NLLs ``nll`` at points ``x``.

    With a known entropy, gap = mean NLL - H. Otherwise the exact log-density is evaluated at
    the first ``N_PAIRED`` test points and gap = mean(log p - log q) there: the same points on
    both sides, so the standard error is that of the difference, far below that of either.
    """
    h = datasets.entropy(name)
    se = float(nll.std() / math.sqrt(nll.size))
    if h is not None:
        how = "datasets.entropy"
        if name == "eight_gaussians":
            h, how = h - EIGHT_GAUSSIANS_CORRECTION, "datasets.entropy - 0.006"
        return float(nll.mean() - h), se, h, how
    log_p = _LOG_DENSITY[name](x[:N_PAIRED])
    diff = log_p + nll[:N_PAIRED]
    return (float(diff.mean()), float(diff.std() / math.sqrt(N_PAIRED)), float(-log_p.mean()),
            f"exact density by quadrature, paired on {N_PAIRED} points")


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
              f"H {h:.4f} [{how}])  {r['layers']} layers, {r['bins']} bins, B={r['bound']}, "
              f"hidden {r['hidden']}, batch {r['batch']}, {r['steps']} steps: "
              f"{info['cpu_s']:.0f} s CPU ({info['wall_s']:.0f} s wall)", flush=True)
        if args.json:
            old = json.load(open(args.json)) if os.path.exists(args.json) else {}
            old[name] = info
            with open(args.json, "w") as fh:
                json.dump(old, fh, indent=1)
    return results


if __name__ == "__main__":
    main()
