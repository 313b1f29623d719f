#!/usr/bin/env python
r"""One training step of a neural spline flow, side by side: nfscratch (numba and numpy
backends), zuko's NSF and normflows' rational-quadratic spline coupling.

The step is "NLL of a two-moons batch, backward, Adam", float64, on one thread (by default),
for the same architecture in all three: 5 spline coupling layers with alternating masks, 8 bins
on [-5, 5] with linear tails, minimum bin width/height/derivative 1e-3, a 1 -> 64 -> 64 -> 23
tanh MLP conditioner per layer.

Where the three differ (said so the numbers are read right):

* zuko's ``NSF(passes=2)`` is a two-pass masked autoregressive flow: its conditioner is a masked
  MLP of the same widths, and the first half of the features also gets a spline, with
  parameters that depend on nothing (a bias). Per step it does the same matrix products plus
  one more spline per sample and layer. zuko evaluates the density with the spline's forward
  formula; nfscratch runs the inverse (the quadratic root), normflows the forward formula.
* normflows is built from its ``PiecewiseRationalQuadraticCoupling`` with a plain MLP
  conditioner (its ``CoupledRationalQuadraticSpline`` wrapper would use a residual net) and
  ``apply_unconditional_transform=False``: the same layer as nfscratch's.

Usage::

    python benchmarks/spline.py                       # batches 512 and 4096, 5 repeats
    python benchmarks/spline.py --batch 512 --repeats 3 --threads 1

Measured the way ``benchmarks/run.py`` measures: the implementations take turns, each repeat
times a block of steps of every one in rotating order, and the table gives the median and the
minimum over repeats (ms per step). Threads are fixed before NumPy is imported.
"""
import argparse
import os
import sys
import time

LAYERS, BINS, BOUND, HIDDEN, MIN = 5, 8, 5.0, (64, 64), 1e-3


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="benchmarks/spline.py",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, nargs="+", default=[512, 4096])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--impl", nargs="+", default=["numba", "numpy", "zuko", "normflows"],
                   choices=["numba", "numpy", "zuko", "normflows"])
    return p.parse_args(argv)


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None:
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[_var] = str(ARGS.threads)

import numpy as np  # noqa: E402  (after the thread settings)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


# ---------------------------------------------------------------------------------------------
# the implementations: each returns step(), a function taking one training step
# ---------------------------------------------------------------------------------------------
def nfscratch_step(backend, x):
    import nfscratch
    from nfscratch import losses, models
    from nfscratch.optim import Adam
    flow = models.nsf_coupling(2, LAYERS, HIDDEN, BINS, BOUND, rng=0)
    opt = Adam(lr=1e-3)

    def step():
        with nfscratch.use_backend(backend):
            loss = losses.nll_step(flow, x)
            opt.step(flow.params(), flow.grads())
        return loss
    return step


def zuko_step(x):
    import torch
    import zuko
    flow = zuko.flows.NSF(2, bins=BINS, transforms=LAYERS, passes=2, hidden_features=HIDDEN,
                          activation=torch.nn.Tanh, slope=MIN)
    opt = torch.optim.Adam(flow.parameters(), lr=1e-3)
    xt = torch.from_numpy(x)

    def step():
        opt.zero_grad()
        loss = -flow().log_prob(xt).mean()
        loss.backward()
        opt.step()
        return loss.item()
    return step


def normflows_step(x):
    import normflows as nf
    import torch
    from normflows.flows.neural_spline.coupling import PiecewiseRationalQuadraticCoupling

    class MLP(torch.nn.Sequential):   # normflows calls its conditioner with (input, context)
        def forward(self, h, context=None):
            return super().forward(h)

    class Coupling(nf.flows.Flow):     # CoupledRationalQuadraticSpline with a plain MLP
        def __init__(self, parity):
            super().__init__()

            def net(n_in, n_out):
                return MLP(torch.nn.Linear(n_in, HIDDEN[0]), torch.nn.Tanh(),
                                           torch.nn.Linear(HIDDEN[0], HIDDEN[1]), torch.nn.Tanh(),
                                           torch.nn.Linear(HIDDEN[1], n_out))
            mask = torch.tensor([1, 0] if parity else [0, 1])
            self.prqct = PiecewiseRationalQuadraticCoupling(
                mask, net, num_bins=BINS, tails="linear", tail_bound=BOUND,
                apply_unconditional_transform=False, min_bin_width=MIN, min_bin_height=MIN,
                min_derivative=MIN)

        def forward(self, z, context=None):
            z, log_det = self.prqct.inverse(z, context)
            return z, log_det.view(-1)

        def inverse(self, z, context=None):
            z, log_det = self.prqct(z, context)
            return z, log_det.view(-1)

    base = nf.distributions.DiagGaussian(2, trainable=False)
    model = nf.NormalizingFlow(base, [Coupling(k % 2) for k in range(LAYERS)]).double()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    xt = torch.from_numpy(x)

    def step():
        opt.zero_grad()
        loss = model.forward_kld(xt)
        loss.backward()
        opt.step()
        return loss.item()
    return step


def build(impl, x):
    if impl in ("numba", "numpy"):
        return nfscratch_step(impl, x)
    import torch
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(ARGS.threads if ARGS else 1)
    return zuko_step(x) if impl == "zuko" else normflows_step(x)


def time_all(steps, n_inner, repeats):
    """Rotating blocks of ``n_inner`` steps; returns {impl: [ms per step of each block]}."""
    times = {k: [] for k in steps}
    names = list(steps)
    for r in range(repeats):
        for k in names[r % len(names):] + names[:r % len(names)]:
            t0 = time.perf_counter()
            for _ in range(n_inner):
                steps[k]()
            times[k].append(1e3 * (time.perf_counter() - t0) / n_inner)
    return times


def main(args):
    from nfscratch import datasets
    impls = []
    for impl in args.impl:
        try:
            if impl in ("zuko", "normflows"):
                __import__(impl)
            impls.append(impl)
        except ImportError:
            print(f"({impl} is not installed: skipped)")
    print(f"NSF training step: {LAYERS} spline couplings, {BINS} bins on [-{BOUND:g}, {BOUND:g}], "
          f"conditioner 1 -> {HIDDEN[0]} -> {HIDDEN[1]} -> {3 * BINS - 1} tanh; float64, "
          f"{args.threads} thread(s); ms per step, median (min) of {args.repeats} blocks")
    for n in args.batch:
        x = np.ascontiguousarray(datasets.sample("two_moons", n, np.random.default_rng(0)))
        steps = {k: build(k, x) for k in impls}
        for s in steps.values():            # warm up: compile, allocate, settle
            for _ in range(3):
                s()
        n_inner = max(3, int(20 * 512 / n))
        times = time_all(steps, n_inner, args.repeats)
        med = {k: float(np.median(v)) for k, v in times.items()}
        row = "  ".join(f"{k} {med[k]:7.2f} ({min(times[k]):6.2f})" for k in impls)
        print(f"batch {n:5d}: {row}")
        if "numba" in med:
            ratios = "  ".join(f"{k}/numba {med[k] / med['numba']:.2f}x" for k in impls
                               if k != "numba")
            print(f"             {ratios}")


if __name__ == "__main__":
    main(ARGS)
