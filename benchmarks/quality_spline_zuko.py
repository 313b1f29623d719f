#!/usr/bin/env python
r"""The reference point of ``quality_spline.py``: zuko's NSF trained the same way, measured the same way.

zuko 1.6 ``NSF(2, bins, transforms, hidden_features)`` (fully autoregressive, ReLU masked MLP,
bound 5, minimum slope 1e-3, PyTorch's default initialization), float64, one thread, Adam with a
cosine decay of the learning rate to 0, a fresh batch from ``nfscratch.datasets`` at every step;
then the paired gap ``mean(log p - log q)`` on the first 20k of 100k fresh test points, exactly
as :func:`quality_spline.gap_to_entropy` computes it for nfscratch's flows.

Usage::

    python benchmarks/quality_spline_zuko.py two_moons --steps 5300 --seed 0
"""
import argparse
import math
import os
import sys
import time

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from nfscratch import datasets  # noqa: E402
from quality_spline import N_TEST, gap_to_entropy  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(prog="benchmarks/quality_spline_zuko.py",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("name", nargs="?", default="two_moons")
    p.add_argument("--steps", type=int, default=5300)
    p.add_argument("--layers", type=int, default=5)
    p.add_argument("--bins", type=int, default=8)
    p.add_argument("--hidden", type=int, nargs="+", default=[64, 64])
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--schedule", choices=("cosine", "constant"), default="cosine")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    import torch
    import zuko
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(args.seed)
    flow = zuko.flows.NSF(2, bins=args.bins, transforms=args.layers,
                          hidden_features=tuple(args.hidden))
    opt = torch.optim.Adam(flow.parameters(), lr=args.lr)
    rng = np.random.default_rng(args.seed)
    t0, w0 = time.process_time(), time.perf_counter()
    for step in range(args.steps):
        if args.schedule == "cosine":
            for g in opt.param_groups:
                g["lr"] = args.lr * 0.5 * (1.0 + math.cos(math.pi * step / args.steps))
        x = torch.from_numpy(datasets.sample(args.name, args.batch, rng))
        loss = -flow().log_prob(x).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    cpu, wall = time.process_time() - t0, time.perf_counter() - w0
    x = datasets.sample(args.name, N_TEST, np.random.default_rng(12345))
    with torch.no_grad():
        nll = -np.concatenate([flow().log_prob(torch.from_numpy(x[i:i + 10_000])).numpy()
                               for i in range(0, N_TEST, 10_000)])
    gap, gap_se, h, _ = gap_to_entropy(args.name, nll, x)
    print(f"zuko {args.name:12s} seed {args.seed} gap {gap:.4f} ± {gap_se:.4f} nats (NLL "
          f"{nll.mean():.4f}, H {h:.4f})  {args.layers} layers, {args.bins} bins, hidden "
          f"{args.hidden}, batch {args.batch}, lr {args.lr} {args.schedule}, {args.steps} steps: "
          f"{cpu:.0f} s CPU ({wall:.0f} s wall)", flush=True)


if __name__ == "__main__":
    main()
