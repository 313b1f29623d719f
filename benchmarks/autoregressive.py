#!/usr/bin/env python
r"""MAF side by side with zuko and normflows, and the cost of sampling vs density against D.

Part 1 -- one density training step (NLL on a batch + backward + Adam) and one sampling call,
at D = 2, 8, 64 (``--dims``), batch 512 (``--batch``), all float64, 1 thread:

* nfscratch ``models.maf(D, 3, (64, 64))`` (tanh MADE, natural/reversed orders alternating),
  ``numba`` and ``numpy`` backends;
* zuko ``zuko.flows.MAF(D, transforms=3, hidden_features=(64, 64), activation=Tanh)`` (its
  orders alternate the same way);
* normflows: 3 ``MaskedAffineAutoregressive(D, 64, num_blocks=1, use_residual_blocks=False,
  activation=tanh)`` (the same MADE D -> 64 -> 64 -> 2D) with ``Permute(mode="swap")`` between
  them. normflows' ``log_prob`` runs every layer's ``inverse``, which for this class is its
  D-pass direction; so "normflows MAF" wraps each layer to swap its directions (density in one
  pass, as a MAF), and "normflows as shipped" is the class used directly (density in D passes,
  sampling in one: an IAF in effect) -- the direction mix-up users keep asking about.

The scale functions differ slightly (nfscratch and zuko a bounded log-scale, normflows a
sigmoid); the matrix products, which dominate, are the same. Implementations take turns in
rotating order within each repeat; tables give the median (min) ms over the repeats.

Part 2 (``--sweep``) -- nfscratch MAF and IAF (one layer, MADE D -> 64 -> 64 -> 2D, batch 512):
time of ``forward`` (sampling for both, the D-pass solve for MAF) and ``inverse`` (density)
against D, on both backends; ``--figure`` draws it (``figures/autoregressive_cost.png``). The
sweep times single calls and prints and draws the *minimum* over the repeats: on a shared
machine it is the number least disturbed by other work.

Part 3 (``--quality``) -- issue 12's quality target: MAF and RealNVP of the same size
(``models.maf`` and ``models.realnvp``, 8 layers, MADE / conditioner hidden (64, 64), tanh) by
maximum likelihood on moons(0.1), eight Gaussians and the pinwheel, and the MAF in the
scale-first form it had before (``z = x e^{s} + t``, "MAF scale-first"), the same recipe for all
(``QUALITY``: fresh points every step, Adam with warmup then cosine decay), each seed from the
same initial seed; test NLL on 100,000 fresh points (``evaluate.nll``) and its gap to the
data's exact entropy (``datasets.entropy``) ± standard error, with the CPU and wall seconds of
training (run it with nothing else of yours running: one training at a time).

Usage::

    python benchmarks/autoregressive.py --json benchmarks/autoregressive.json \
        --figure figures/autoregressive_cost.png
    python benchmarks/autoregressive.py --quick      # 3 repeats, dims 2 8
    python benchmarks/autoregressive.py --quality --seeds 0 1 2 --json benchmarks/autoregressive_quality.json
"""
import argparse
import json
import os
import sys
import time

for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[var] = "1"

import numpy as np  # noqa: E402

from nfscratch import datasets, evaluate, models, use_backend  # noqa: E402
from nfscratch.losses import nll_step  # noqa: E402
from nfscratch.optim import Adam, Cosine, Warmup  # noqa: E402
from nfscratch.train import fit  # noqa: E402
from nfscratch.flow import Flow  # noqa: E402
from nfscratch.transforms import MAF  # noqa: E402

LAYERS, HIDDEN, LR, SEED = 3, (64, 64), 1e-3, 0


def data(D, n):
    rng = np.random.default_rng(SEED)
    if D == 2:
        return datasets.two_moons(n, rng=rng)
    return rng.normal(size=(n, D)) * np.linspace(0.5, 2.0, D)


class Ours:
    def __init__(self, backend, D, x):
        self.backend, self.x = backend, x
        self.flow = models.maf(D, LAYERS, HIDDEN, rng=SEED)
        self.opt, self.params = Adam(lr=LR), self.flow.params()
        self.rng = np.random.default_rng(SEED)

    def step(self):
        with use_backend(self.backend):
            nll_step(self.flow, self.x)
            self.opt.step(self.params, self.flow.grads())

    def sample(self):
        with use_backend(self.backend):
            return self.flow.sample(self.x.shape[0], self.rng)


def torch_impls(D, x):
    import torch
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    import normflows as nf
    import zuko

    xt = torch.tensor(x)
    n = x.shape[0]

    class Zuko:
        def __init__(self):
            torch.manual_seed(SEED)
            self.flow = zuko.flows.MAF(D, transforms=LAYERS, hidden_features=HIDDEN,
                                       activation=torch.nn.Tanh)
            self.opt = torch.optim.Adam(self.flow.parameters(), lr=LR)

        def step(self):
            self.opt.zero_grad()
            loss = -self.flow().log_prob(xt).mean()
            loss.backward()
            self.opt.step()

        def sample(self):
            with torch.no_grad():
                return self.flow().sample((n,))

    class Swapped(nf.flows.Flow):
        """A normflows layer with forward and inverse exchanged (density in its one pass)."""

        def __init__(self, layer):
            super().__init__()
            self.layer = layer

        def forward(self, z):
            return self.layer.inverse(z)

        def inverse(self, z):
            return self.layer.forward(z)

    class Normflows:
        def __init__(self, swap):
            torch.manual_seed(SEED)
            flows = []
            for k in range(LAYERS):
                layer = nf.flows.MaskedAffineAutoregressive(
                    D, HIDDEN[0], num_blocks=len(HIDDEN) - 1, use_residual_blocks=False,
                    activation=torch.tanh)
                flows.append(Swapped(layer) if swap else layer)
                if k < LAYERS - 1:
                    flows.append(nf.flows.Permute(D, mode="swap"))
            self.model = nf.NormalizingFlow(nf.distributions.DiagGaussian(D, trainable=False),
                                            flows)
            self.opt = torch.optim.Adam(self.model.parameters(), lr=LR)

        def step(self):
            self.opt.zero_grad()
            loss = self.model.forward_kld(xt)
            loss.backward()
            self.opt.step()

        def sample(self):
            with torch.no_grad():
                return self.model.sample(n)

    return {"zuko": Zuko, "normflows MAF": lambda: Normflows(True),
            "normflows as shipped": lambda: Normflows(False)}


def time_block(fn, calls):
    """Wall and CPU seconds per call over ``calls`` calls."""
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls, (time.process_time() - c0) / calls


def measure(fns, repeats, block_seconds=0.15):
    """``fns``: name -> callable. Median and min ms over ``repeats`` rotating blocks, in wall time
    and in CPU time of this (single-threaded) process: on a shared machine the CPU time leaves out
    the time the process waited for a core."""
    names = list(fns)
    calls = {}
    for name in names:                        # warm up (compiles), then size the blocks
        fns[name]()
        per_call = time_block(fns[name], 1)[0]
        calls[name] = max(1, min(200, int(block_seconds / max(per_call, 1e-6))))
    samples = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            samples[name].append(time_block(fns[name], calls[name]))
    out = {}
    for name, s in samples.items():
        wall, cpu = np.array(s).T
        out[name] = {"median_ms": 1e3 * float(np.median(wall)), "min_ms": 1e3 * float(np.min(wall)),
                     "cpu_median_ms": 1e3 * float(np.median(cpu)),
                     "cpu_min_ms": 1e3 * float(np.min(cpu))}
    return out


def part1(dims, batch, repeats):
    results = {}
    for D in dims:
        x = data(D, batch)
        impls = {"nfscratch numba": Ours("numba", D, x), "nfscratch numpy": Ours("numpy", D, x)}
        try:
            impls.update({name: make() for name, make in torch_impls(D, x).items()})
        except ImportError as exc:
            print(f"(torch/zuko/normflows not available: {exc})", file=sys.stderr)
        for what in ("step", "sample"):
            res = measure({name: getattr(obj, what) for name, obj in impls.items()}, repeats)
            results[f"{what} D={D}"] = res
            print(f"\n{what}, D = {D}, batch {batch} (load {os.getloadavg()[0]:.1f}): "
                  "ms median (min), wall | CPU")
            for name, r in res.items():
                ref = res.get("nfscratch numba", r)
                print(f"  {name:22s} {r['median_ms']:9.3f} ({r['min_ms']:.3f})   "
                      f"x{r['median_ms'] / ref['median_ms']:6.2f} of nfscratch numba | "
                      f"{r['cpu_median_ms']:9.3f} ({r['cpu_min_ms']:.3f})   "
                      f"x{r['cpu_median_ms'] / ref['cpu_median_ms']:6.2f}")
    return results


def part2(dims, batch, repeats):
    from nfscratch.transforms import IAF, MAF
    rng = np.random.default_rng(SEED)
    out = {}
    for D in dims:
        p = rng.normal(size=(batch, D))
        layers = {}
        for cls in (MAF, IAF):
            t = cls(D, hidden=HIDDEN, rng=SEED, zero_init=False)
            for v in t.params.values():
                v += 0.1 * rng.normal(size=v.shape)
            layers[cls.__name__] = t
        fns = {}
        for backend in ("numba", "numpy"):
            for name, t in layers.items():
                for direction in ("forward", "inverse"):
                    def call(t=t, direction=direction, backend=backend):
                        with use_backend(backend):
                            getattr(t, direction)(p)
                    fns[f"{name} {direction} {backend}"] = call
        # one call per block: the minimum over many single calls is the call no other process
        # interrupted, the steadiest figure on a busy machine for calls of a few ms
        out[D] = measure(fns, repeats, block_seconds=0.0)
        row = "  ".join(f"{k} {v['min_ms']:.3f}" for k, v in out[D].items())
        print(f"D = {D}: {row}")
    return out


#: Part 3's recipe, the same for every model (benchmarks/README.md: lr 1e-2 made the MAF
#: diverge on moons, 4000 steps at 3e-3 left 0.10-0.18 nats on eight Gaussians and the pinwheel).
QUALITY = dict(n_layers=8, hidden=(64, 64), steps=8000, batch_size=512, lr=5e-3, warmup=200)
QUALITY_DATA = {"two_moons": dict(noise=0.1), "eight_gaussians": {}, "pinwheel": {}}


class _ScaleFirstMAF(MAF):
    """The MAF in the IAF's scale-then-shift form ``z = x e^{s} + t`` (the library's MAF before
    it took its paper's form), kept here to measure the difference."""

    _shift_first = False


def _scale_first_maf(dim, n_layers, hidden, s_max, rng):
    """Like ``models.maf`` (orders alternating, the same initial weights from ``rng``)."""
    rng = np.random.default_rng(rng)
    return Flow([_ScaleFirstMAF(dim, hidden=hidden, order=("natural", "reverse")[k % 2], seed=k,
                                s_max=s_max, rng=rng) for k in range(n_layers)])


QUALITY_MODELS = {"MAF": models.maf, "RealNVP": models.realnvp,
                  "MAF scale-first": _scale_first_maf}


def part3(data_names, model_names, seeds, steps=None, lr=None, s_max=2.0):
    """Train each model on each data set from each seed; the gap to the entropy of each."""
    steps, lr = steps or QUALITY["steps"], lr or QUALITY["lr"]
    rows = []
    for name in data_names:
        params = QUALITY_DATA[name]
        floor = datasets.entropy(name, **params)
        for model in model_names:
            for seed in seeds:
                flow = QUALITY_MODELS[model](2, QUALITY["n_layers"], QUALITY["hidden"],
                                             s_max=s_max, rng=seed)
                schedule = Warmup(Cosine(lr, steps), QUALITY["warmup"])
                t0, c0 = time.perf_counter(), time.process_time()
                fit(flow, data=lambda n, rng: datasets.sample(name, n, rng, **params),
                    steps=steps, batch_size=QUALITY["batch_size"], schedule=schedule, rng=seed,
                    progress=False)
                cpu, wall = time.process_time() - c0, time.perf_counter() - t0
                r = evaluate.nll(flow, name, n=100_000, rng=10_000 + seed, **params)
                rows.append({"data": name, "model": model, "seed": seed, "steps": steps,
                             "lr": lr, "s_max": s_max,
                             "nll": r.nll, "se": r.se, "entropy": floor, "gap": r.nll - floor,
                             "cpu_s": round(cpu, 1), "wall_s": round(wall, 1)})
                print(f"{name:16s} {model:8s} seed {seed}: NLL {r.nll:.4f} ± {r.se:.4f}, "
                      f"entropy {floor:.4f}, gap {r.nll - floor:.4f}  ({cpu:.0f} s CPU, "
                      f"{wall:.0f} s wall, load {os.getloadavg()[0]:.1f})", flush=True)
    return rows


def figure(sweep, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    dims = sorted(sweep)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    styles = {("MAF", "inverse"): ("C0", "-", "MAF density (inverse, 1 pass)"),
              ("MAF", "forward"): ("C0", "--", "MAF sampling (forward, D passes)"),
              ("IAF", "forward"): ("C3", "-", "IAF sampling (forward, 1 pass)"),
              ("IAF", "inverse"): ("C3", "--", "IAF density (inverse, D passes)")}
    for ax, backend in zip(axes, ("numpy", "numba")):
        for (name, direction), (color, ls, label) in styles.items():
            ms = [sweep[D][f"{name} {direction} {backend}"]["min_ms"] for D in dims]
            ax.loglog(dims, ms, color=color, ls=ls, marker="o", ms=3, label=label)
        ax.set_xticks(dims, labels=[str(D) for D in dims])
        ax.minorticks_off()
        ax.set_xlabel("dimension D")
        ax.set_title(f"backend {backend!r}" + (": D full MADE passes" if backend == "numpy"
                                               else ": fused kernel, each unit once"), fontsize=10)
        ax.grid(alpha=0.3, which="both")
    axes[0].set_ylabel("ms per call (min over repeats), batch 512, one layer")
    axes[0].legend(fontsize=8)
    fig.suptitle("MAF and IAF are one layer turned around: the sequential direction costs "
                 "D passes (numpy) -- or one pass's arithmetic in a chain of D steps (numba)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dims", type=int, nargs="+", default=[2, 8, 64])
    p.add_argument("--batch", type=int, default=512)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--skip-compare", action="store_true", help="only the sweep")
    p.add_argument("--skip-sweep", action="store_true", help="only the comparison")
    p.add_argument("--sweep", type=int, nargs="*", default=None,
                   help="dimensions of the sampling-vs-density sweep (default 2 4 8 16 32 64)")
    p.add_argument("--figure", help="draw the sweep to this file")
    p.add_argument("--json", help="write all results here (with --skip-compare, the comparison "
                                  "already in the file is kept, with --skip-sweep the sweep)")
    p.add_argument("--replot", metavar="JSON",
                   help="only redraw --figure from the sweep saved in this JSON file")
    p.add_argument("--quality", action="store_true",
                   help="only part 3: MAF against RealNVP by maximum likelihood, gap to the entropy")
    p.add_argument("--data", nargs="+", default=list(QUALITY_DATA), choices=list(QUALITY_DATA))
    p.add_argument("--models", nargs="+", default=list(QUALITY_MODELS),
                   choices=list(QUALITY_MODELS))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--steps", type=int, default=None, help=f"default {QUALITY['steps']}")
    p.add_argument("--lr", type=float, default=None, help=f"peak rate, default {QUALITY['lr']}")
    p.add_argument("--s-max", type=float, default=2.0, help="bound on the log-scales")
    args = p.parse_args(argv)
    if args.quality:
        rows = part3(args.data, args.models, args.seeds, args.steps, args.lr, args.s_max)
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"recipe": {**QUALITY, "steps": args.steps or QUALITY["steps"],
                                      "lr": args.lr or QUALITY["lr"], "s_max": args.s_max},
                           "runs": rows}, f, indent=1)
            print(f"wrote {args.json}")
        return
    if args.replot:
        with open(args.replot) as f:
            figure({int(D): v for D, v in json.load(f)["sweep"].items()},
                   args.figure or "autoregressive_cost.png")
        return
    if args.quick:
        args.dims, args.repeats = [2, 8], 3
    results = {"batch": args.batch, "layers": LAYERS, "hidden": list(HIDDEN)}
    if not args.skip_compare:
        results["compare"] = part1(args.dims, args.batch, args.repeats)
    if not args.skip_sweep:
        sweep_dims = args.sweep if args.sweep else [2, 4, 8, 16, 32, 64]
        print("\nsampling vs density, one layer:")
        results["sweep"] = part2(sweep_dims, args.batch, args.repeats)
    if args.figure and "sweep" in results:
        figure(results["sweep"], args.figure)
    if args.json:
        if (args.skip_compare or args.skip_sweep) and os.path.exists(args.json):
            with open(args.json) as f:
                results = {**json.load(f), **results}
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
        print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
