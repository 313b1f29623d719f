#!/usr/bin/env python
r"""Recipes: a continuous flow trained by flow matching on 2-D toys, against the true entropy.

Each recipe trains :class:`nfscratch.continuous.CNF` (velocity MLP with SiLU and a sinusoidal
time embedding) by conditional flow matching with linear paths, a fresh batch from the sampler
at every step, Adam with a cosine decay to 0, one thread. The recipe (the defaults): 3 x 64
SiLU, 40k steps of batch 512, Adam 2e-3, RK4 with 20 steps for the likelihood -- the one size
that meets every target of issue 15 at once (benchmarks/README.md). Then it reports

* the test NLL on ``--n-test`` fresh points by the exact trace and RK4 (``--n-steps`` steps, the
  Numba kernel), the paired gap ``mean(log p - log q)`` against the exact ``datasets.log_prob``,
  and ``datasets.entropy`` beside it;
* the integration error: the same log-likelihoods with twice the steps, mean |difference|,
  against the standard error of the NLL;
* the time to evaluate the likelihood of 20k points, and to sample 4096 points (kernel and
  NumPy twin, alternating).

Usage::

    nice python benchmarks/flow_matching.py --json benchmarks/flow_matching_40k.json
    nice python benchmarks/flow_matching.py pinwheel --json benchmarks/flow_matching_pinwheel.json
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
from nfscratch.plotting.continuous import trajectories  # noqa: E402

RECIPES = {
    "two_moons": dict(params={"noise": 0.1}),
    "eight_gaussians": dict(params={}),
    "pinwheel": dict(params={}),
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
    delta = cnf.log_prob(x[:m]) - log_q[:m]
    err, bias = float(np.mean(np.abs(delta))), float(np.mean(delta))
    cnf.n_steps = args.n_steps
    cnf.divergence = "hutchinson"                # one Rademacher probe per point, fixed in t
    hutch = cnf.log_prob(x[:m], rng=seed) - log_q[:m]
    cnf.divergence = "exact"
    per_20k = cpu_lik * 20_000 / args.n_test
    excess = trajectories(cnf, np.random.default_rng(seed + 7).standard_normal((1000, 2)), 21)[1]
    row = dict(data=name, params=params, steps=args.steps, batch=args.batch, lr=args.lr,
               hidden=[args.hidden] * args.depth, ot=args.ot, n_steps=args.n_steps,
               train_cpu_s=cpu, train_wall_s=wall, nll=nll, se=se,
               entropy=datasets.entropy(name, **params), gap=gap, gap_se=gap_se,
               integration_error=err, integration_bias=bias,
               hutchinson_bias=float(hutch.mean()), hutchinson_bias_se=float(
                   hutch.std(ddof=1) / np.sqrt(m)), hutchinson_std=float(hutch.std(ddof=1)),
               likelihood_cpu_s_per_20k=per_20k,
               likelihood_wall_s=wall_lik, n_test=args.n_test, excess_length=excess)
    print(f"  NLL {nll:.4f} ± {se:.4f}, entropy {row['entropy']:.4f}, paired gap {gap:.4f} ± "
          f"{gap_se:.4f}; log q(2x steps) - log q: mean |.| {err:.1e}, mean {bias:.1e}; likelihood of 20k points "
          f"{per_20k:.1f} CPU s (exact trace, {4 * args.n_steps} evaluations); Hutchinson "
          f"(1 probe) - exact: mean {hutch.mean():.4f} ± {row['hutchinson_bias_se']:.4f}, "
          f"std per point {hutch.std():.3f}; path excess length {excess:.4f}", flush=True)
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


def torch_side_by_side(hidden, depth, n_steps, n_train=300, n_lik=2000, batch=512):
    """The same MLP and recipe in PyTorch (float64, one thread): CPU ms per training step and
    CPU s for the exact-trace likelihood of 20k points (extrapolated from ``n_lik``) with RK4
    ``n_steps`` steps, against nfscratch's, measured here one after the other."""
    import torch
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    freqs = torch.pi * 2.0 ** torch.arange(4.0)
    sizes = [2 + 8] + [hidden] * depth + [2]
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [torch.nn.Linear(a, b), torch.nn.SiLU()]
    net = torch.nn.Sequential(*layers[:-1])

    def v(x, t):
        wt = t[:, None] * freqs
        return net(torch.cat([x, torch.sin(wt), torch.cos(wt)], 1))

    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    c0 = time.process_time()
    for _ in range(n_train):
        x = torch.from_numpy(datasets.sample("two_moons", batch, rng, noise=0.1))
        z, t = torch.randn_like(x), torch.rand(batch)
        loss = ((v((1 - t[:, None]) * z + t[:, None] * x, t) - (x - z)) ** 2).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    ms_step = (time.process_time() - c0) / n_train * 1e3

    def f(y, t):                                # velocity and exact divergence by autograd
        with torch.enable_grad():
            y = y.detach().requires_grad_(True)
            out = v(y, torch.full((y.shape[0],), t))
            div = sum(torch.autograd.grad(out[:, d].sum(), y, retain_graph=True)[0][:, d]
                      for d in range(2))
        return out.detach(), div.detach()

    y = torch.from_numpy(datasets.sample("two_moons", n_lik, rng, noise=0.1))
    ld = torch.zeros(n_lik)
    h = -1.0 / n_steps
    c0 = time.process_time()
    with torch.no_grad():
        for k in range(n_steps):
            t = 1.0 + k * h
            k1, d1 = f(y, t)
            k2, d2 = f(y + 0.5 * h * k1, t + 0.5 * h)
            k3, d3 = f(y + 0.5 * h * k2, t + 0.5 * h)
            k4, d4 = f(y + h * k3, t + h)
            y = y + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
            ld = ld + h / 6 * (d1 + 2 * d2 + 2 * d3 + d4)
    lik_20k = (time.process_time() - c0) * 20_000 / n_lik
    # nfscratch, the same sizes, right after
    cnf = continuous.CNF(2, hidden=(hidden,) * depth, n_steps=n_steps, rng=0)
    data = lambda n, r: datasets.sample("two_moons", n, r, noise=0.1)   # noqa: E731
    continuous.fit_cfm(cnf, data, 5, batch_size=batch, rng=0)              # compile, warm up
    ours_step = _timed(lambda: continuous.fit_cfm(cnf, data, n_train, batch_size=batch,
                                                  rng=0))[1] / n_train * 1e3
    x = data(n_lik, rng)
    cnf.log_prob(x[:8])
    ours_lik = _timed(lambda: cnf.log_prob(x))[1] * 20_000 / n_lik
    out = dict(hidden=[hidden] * depth, n_steps=n_steps, torch_ms_per_step=ms_step,
               nfscratch_ms_per_step=ours_step, torch_likelihood_20k_cpu_s=lik_20k,
               nfscratch_likelihood_20k_cpu_s=ours_lik)
    print(f"torch (float64, 1 thread) vs nfscratch, MLP {sizes}: training {ms_step:.1f} vs "
          f"{ours_step:.1f} CPU ms/step; likelihood of 20k points, RK4 {n_steps} steps, exact "
          f"trace: {lik_20k:.1f} vs {ours_lik:.1f} CPU s", flush=True)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("recipes", nargs="*", default=["two_moons", "eight_gaussians"])
    p.add_argument("--steps", type=int, default=40_000)
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--n-steps", type=int, default=20, help="RK4 steps for the likelihood")
    p.add_argument("--n-test", type=int, default=20_000)
    p.add_argument("--ot", action="store_true", help="minibatch OT pairing (1-D projections)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--torch", action="store_true", help="only the PyTorch side-by-side")
    p.add_argument("--json", help="write the results here (refuses to overwrite)")
    args = p.parse_args(argv)
    if args.json and os.path.exists(args.json):
        p.error(f"--json: {args.json} exists; choose another name or remove it first.")
    if args.torch:
        out = torch_side_by_side(args.hidden, args.depth, args.n_steps)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(out, f, indent=1)
        return 0
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
