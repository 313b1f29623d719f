#!/usr/bin/env python
r"""Recipes: a continuous flow trained by flow matching on 2-D toys, against the true entropy.

Each recipe trains :class:`nfscratch.continuous.CNF` (velocity MLP with SiLU and a sinusoidal
time embedding) by conditional flow matching with linear paths, a fresh batch from the sampler
at every step, Adam with a cosine decay to 0, one thread; then it reports

* the test NLL on ``--n-test`` fresh points by the exact trace and RK4 (``--n-steps`` steps, the
  Numba kernel), the paired gap ``mean(log p - log q)`` against the exact ``datasets.log_prob``,
  and ``datasets.entropy`` beside it;
* the integration error: the same log-likelihoods with twice the steps, mean |difference|,
  against the standard error of the NLL;
* the time to evaluate the likelihood of 20k points, and to sample 4096 points (kernel and
  NumPy twin, alternating).

Usage::

    nice python benchmarks/flow_matching.py --json benchmarks/flow_matching.json
    python benchmarks/flow_matching.py two_moons --steps 500 --n-test 2000   # a short run

CPU seconds are ``time.process_time`` (the machine is shared; wall time is inflated).
"""
import argparse
import json
import os
import sys
import time

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from nfscratch import continuous, datasets  # noqa: E402
from nfscratch.config import use_backend  # noqa: E402

RECIPES = {
    "two_moons": dict(params={"noise": 0.1}),
    "eight_gaussians": dict(params={}),
}


def _timed(f):
    c, w = time.process_time(), time.perf_counter()
    out = f()
    return out, time.process_time() - c, time.perf_counter() - w


def run(name, args, seed=0):
    params = RECIPES[name]["params"]
    rng = np.random.default_rng(seed)
    cnf = continuous.CNF(2, hidden=(args.hidden,) * args.depth, n_freq=4, n_steps=args.n_steps,
                         rng=rng)

    def data(n, r):
        return datasets.sample(name, n, r, **params)

    def progress(step, loss):
        if (step + 1) % 2500 == 0:
            print(f"  step {step + 1}: loss {loss:.4f}", flush=True)

    history, cpu, wall = _timed(lambda: continuous.fit_cfm(
        cnf, data, args.steps, batch_size=args.batch, lr=args.lr, ot=args.ot, rng=rng,
        callback=progress))
    print(f"{name}: {args.steps} steps in {cpu:.1f} CPU s ({wall:.1f} wall s), "
          f"last loss {np.mean(history[-200:]):.4f}", flush=True)
    x = data(args.n_test, np.random.default_rng(seed + 1000))
    log_q, cpu_lik, wall_lik = _timed(lambda: cnf.log_prob(x))
    log_p = datasets.log_prob(name, x, **params)
    nll = float(-log_q.mean())
    se = float(log_q.std(ddof=1) / np.sqrt(len(log_q)))
    diff = log_p - log_q
    gap, gap_se = float(diff.mean()), float(diff.std(ddof=1) / np.sqrt(len(diff)))
    m = min(args.n_test, 5000)                    # integration error: twice the steps
    cnf.n_steps = 2 * args.n_steps
    err = float(np.mean(np.abs(cnf.log_prob(x[:m]) - log_q[:m])))
    cnf.n_steps = args.n_steps
    per_20k = cpu_lik * 20_000 / args.n_test
    row = dict(data=name, params=params, steps=args.steps, batch=args.batch, lr=args.lr,
               hidden=[args.hidden] * args.depth, ot=args.ot, n_steps=args.n_steps,
               train_cpu_s=cpu, train_wall_s=wall, nll=nll, se=se,
               entropy=datasets.entropy(name, **params), gap=gap, gap_se=gap_se,
               integration_error=err, likelihood_cpu_s_per_20k=per_20k,
               likelihood_wall_s=wall_lik, n_test=args.n_test)
    print(f"  NLL {nll:.4f} ± {se:.4f}, entropy {row['entropy']:.4f}, paired gap {gap:.4f} ± "
          f"{gap_se:.4f}; |log q(2x steps) - log q| {err:.1e}; likelihood of 20k points "
          f"{per_20k:.1f} CPU s (exact trace, {4 * args.n_steps} evaluations)", flush=True)
    return row, cnf


def sampling_speed(cnf, n=4096, n_steps=10, reps=3):
    """Sampling at batch ``n``: kernel and NumPy twin alternating, CPU s each (median)."""
    z = np.random.default_rng(0).standard_normal((n, cnf.dim))
    cnf.n_steps = n_steps
    times = {"numba": [], "numpy": []}
    for _ in range(reps):
        for backend in times:
            with use_backend(backend):
                times[backend].append(_timed(lambda: cnf.integrate(z, 0.0, 1.0))[1])
    out = {k: float(np.median(v)) for k, v in times.items()}
    out["ratio"] = out["numpy"] / out["numba"]
    out["n_steps"] = n_steps
    out["hidden"] = cnf.hidden
    print(f"sampling {n} points, {n_steps} RK4 steps: kernel {out['numba']:.2f} CPU s, NumPy "
          f"twin {out['numpy']:.2f} CPU s: {out['ratio']:.1f}x", flush=True)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("recipes", nargs="*", default=list(RECIPES))
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--n-steps", type=int, default=20, help="RK4 steps for the likelihood")
    p.add_argument("--n-test", type=int, default=20_000)
    p.add_argument("--ot", action="store_true", help="minibatch OT pairing (1-D projections)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write the results here (refuses to overwrite)")
    args = p.parse_args(argv)
    if args.json and os.path.exists(args.json):
        p.error(f"--json: {args.json} exists; choose another name or remove it first.")
    rows, cnf = [], None
    for name in args.recipes:
        row, cnf = run(name, args, args.seed)
        rows.append(row)
    speed = sampling_speed(cnf)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"recipes": rows, "sampling": speed}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
