"""IAF (one IAFChain) against planar K = 32 by reverse KL on U1-U4 under the same CPU budget.

Each run trains until its process has spent ``--budget`` seconds of CPU time
(``time.process_time``: a wall-clock budget would favour whichever run met a quieter machine),
then measures KL(q||p) = E_q[log q + U] + log Z on 100,000 fresh samples (seed 10,000 + the
run's seed, ``evaluate.kl``) with its standard error. Every kernel is compiled before the first
budget starts; the runs go energy after energy, seed after seed, and the flows take turns at
each seed, so that the flows compared meet the same load on the machine (the CPU seconds a step
costs grow with it). Run with
``OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1``; results: benchmarks/README.md.

Two kinds of recipe (``RECIPES``):

* ``"constant"``: a constant learning rate and ``anneal=500`` (the settings of tutorial 08),
  stopped when the budget is spent (the first table of benchmarks/README.md's section "IAF as
  one chain kernel against planar K = 32");
* ``"cosine"``: the committed planar recipe's shape (benchmarks/quality.py ``PLANAR``, ``nfscratch
  train --energy``) fitted to the budget: the learning rate warms up linearly over the first 5%
  of the CPU budget and decays by cosine to 0 at its end (:class:`BudgetCosine`, a function of
  the CPU seconds spent, so that a step time that changes with the machine's load cannot leave
  the run stopped half-way down the decay); ``beta`` is annealed over 10% (or the recipe's own
  fraction) of the steps the budget is expected to hold (the step time of 200 steps of a
  throwaway copy, not counted).

    python benchmarks/iaf_vs_planar.py --energies U1 U2 U3 U4 --budget 15
    python benchmarks/iaf_vs_planar.py --flows "planar K=32 cosine" "IAF 12x(16,16) cosine" \
        --budget 10 --seeds 0 1 2 --json benchmarks/iaf_vs_planar_cosine.json
    python benchmarks/iaf_vs_planar.py --flows "planar K=32 cosine" \
        "IAF 16x(8,8) tanh cosine a0.3" --energies U3 --budget 60 --seeds 0 1 2
"""
import argparse
import json
import time

import numpy as np

from nfscratch import datasets, evaluate, models
from nfscratch.optim import Schedule, cosine_lr, warmup_lr
from nfscratch.train import fit


def _spread(n_layers, hidden, activation, seed):
    return models.iaf(2, n_layers, hidden, activation=activation, bias_init="uniform", rng=seed)


#: name -> (builder(seed), lr, batch size, schedule kind[, annealing length as a fraction of the
#: expected steps, cosine recipes only: 0.1 when not given])
RECIPES = {
    "planar K=32": (lambda s: models.planar_flow(2, 32, rng=s), 1e-2, 256, "constant"),
    "IAF 12x(16,16)": (lambda s: models.iaf(2, 12, (16, 16), rng=s), 5e-3, 256, "constant"),
    "IAF 24x(8,8)": (lambda s: models.iaf(2, 24, (8, 8), rng=s), 1e-2, 256, "constant"),
    "IAF 16x(8,8)": (lambda s: models.iaf(2, 16, (8, 8), rng=s), 1e-2, 256, "constant"),
    "IAF 8x(16,16)": (lambda s: models.iaf(2, 8, (16, 16), rng=s), 1e-2, 256, "constant"),
    "IAF 8x(16,16) b128": (lambda s: models.iaf(2, 8, (16, 16), rng=s), 1e-2, 128, "constant"),
    "IAF 12x(16,16) b128": (lambda s: models.iaf(2, 12, (16, 16), rng=s), 5e-3, 128, "constant"),
    "IAF 16x(8,8) b128": (lambda s: models.iaf(2, 16, (8, 8), rng=s), 1e-2, 128, "constant"),
    "IAF 8x(16,16) b64": (lambda s: models.iaf(2, 8, (16, 16), rng=s), 5e-3, 64, "constant"),
    # the committed planar recipe (lr 2e-2, batch 512, warmup + cosine, anneal 10%)
    "planar K=32 cosine": (lambda s: models.planar_flow(2, 32, rng=s), 2e-2, 512, "cosine"),
    "IAF 12x(16,16) cosine": (lambda s: models.iaf(2, 12, (16, 16), rng=s), 5e-3, 256, "cosine"),
    "IAF 12x(16,16) cosine b512": (lambda s: models.iaf(2, 12, (16, 16), rng=s), 5e-3, 512,
                                   "cosine"),
    "IAF 16x(8,8) cosine": (lambda s: models.iaf(2, 16, (8, 8), rng=s), 5e-3, 256, "cosine"),
    # spread initial biases (``bias_init``), ReLU or tanh hidden units, longer annealing
    "IAF 16x(8,8) relu cosine": (lambda s: _spread(16, (8, 8), "relu", s), 5e-3, 256, "cosine"),
    "IAF 16x(8,8) relu cosine a0.3": (lambda s: _spread(16, (8, 8), "relu", s), 5e-3, 256,
                                      "cosine", 0.3),
    "IAF 16x(8,8) relu cosine a0.3 lr1e-2": (lambda s: _spread(16, (8, 8), "relu", s), 1e-2, 256,
                                             "cosine", 0.3),
    "IAF 16x(8,8) tanh cosine a0.3": (lambda s: _spread(16, (8, 8), "tanh", s), 5e-3, 256,
                                      "cosine", 0.3),
}


class BudgetCosine(Schedule):
    """Warmup over the first 5% of ``budget`` CPU seconds from now, then cosine decay to 0 at
    ``budget`` (in millionths of the budget, with the library's ``warmup_lr`` and ``cosine_lr``)."""

    def __init__(self, lr, budget):
        self.lr, self.budget, self.start = lr, budget, time.process_time()

    def _lr(self, step):
        spent = min(10**6, int(10**6 * (time.process_time() - self.start) / self.budget))
        return warmup_lr(spent, cosine_lr(spent, self.lr, 10**6), 5 * 10**4)


def planned_steps(name, energy, budget, seed):
    """Steps that fit in ``0.95 budget`` CPU seconds, from 200 timed steps of a throwaway copy."""
    build, lr, batch = RECIPES[name][:3]
    flow = build(seed)
    fit(flow, target=energy, steps=20, batch_size=batch, lr=lr, progress=False)
    start = time.process_time()
    fit(flow, target=energy, steps=200, batch_size=batch, lr=lr, progress=False)
    return max(20, int(0.95 * budget / ((time.process_time() - start) / 200)))


def run(name, energy, budget, seed):
    build, lr, batch, kind = RECIPES[name][:4]
    anneal_fraction = RECIPES[name][4] if len(RECIPES[name]) > 4 else 0.1
    steps = planned_steps(name, energy, budget, seed) if kind == "cosine" else None
    flow = build(0 if kind == "constant" else seed)   # the first table: rng=0 builds, fit rng=seed
    start_cpu, start_wall, done = time.process_time(), time.perf_counter(), [0]
    schedule = BudgetCosine(lr, budget) if kind == "cosine" else "constant"
    anneal = max(1, int(anneal_fraction * steps)) if kind == "cosine" else 500

    def stop(step, loss, flow):
        done[0] = step + 1
        return time.process_time() - start_cpu > budget

    fit(flow, target=energy, steps=10**8, batch_size=batch, lr=lr, schedule=schedule,
        anneal=anneal, rng=seed, progress=False, callback=stop)
    cpu, wall = time.process_time() - start_cpu, time.perf_counter() - start_wall
    result = evaluate.kl(flow, energy, n=100_000, rng=10_000 + seed)
    return {"flow": name, "lr": lr, "batch": batch, "schedule": kind, "seed": seed,
            "steps": done[0], "expected_steps": steps,
            "cpu_s": round(cpu, 2), "wall_s": round(wall, 2), "kl": result.kl, "se": result.se}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--energies", nargs="+", default=["U1", "U2", "U3", "U4"])
    ap.add_argument("--flows", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    ap.add_argument("--budget", type=float, default=15.0, help="CPU seconds of training per run")
    ap.add_argument("--seeds", type=int, nargs="+", default=[3], help="fit's rng (and, for the "
                    "cosine recipes, the initial weights')")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    rows = []
    for name in args.flows:       # compile (or load) every kernel before any budget starts
        fit(RECIPES[name][0](0), target=datasets.energy("U1"), steps=3, progress=False)
    for e in args.energies:       # the flows take turns at each seed: they meet the same load
        energy = datasets.energy(e)
        for seed in args.seeds:
            for name in args.flows:
                r = {"energy": e, **run(name, energy, args.budget, seed)}
                rows.append(r)
                print(f"{e} {r['flow']:<22} seed {seed} KL {r['kl']:.4f} ± {r['se']:.4f}  "
                      f"{r['steps']} steps, {r['cpu_s']} s CPU, {r['wall_s']} s wall",
                      flush=True)
                if args.json:     # after every run: a stopped session keeps what it measured
                    with open(args.json, "w") as f:
                        json.dump(rows, f, indent=1)
    for e in args.energies:       # mean ± standard error over the seeds
        for name in args.flows:
            kls = [r["kl"] for r in rows if r["energy"] == e and r["flow"] == name]
            se = np.std(kls, ddof=1) / np.sqrt(len(kls)) if len(kls) > 1 else float("nan")
            print(f"{e} {name:<22} mean KL {np.mean(kls):.4f} ± {se:.4f} over {len(kls)} seeds")


if __name__ == "__main__":
    main()
