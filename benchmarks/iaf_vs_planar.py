"""IAF (one IAFChain) against planar K = 32 by reverse KL on U1-U4 under the same CPU budget.

Each run trains with the settings of tutorial 08 (``anneal=500``, ``fit`` from ``rng=3``, batch
256 unless the recipe names another) until its process has spent ``--budget`` seconds of CPU
time (``time.process_time``: a wall-clock budget would favour whichever run met a quieter
machine), then measures KL(q||p) = E_q[log q + U] + log Z on 100,000 fresh samples (seed 123)
with its standard error. Every kernel is compiled before the first budget starts; the runs go
flow after flow within each energy. Run with ``OPENBLAS_NUM_THREADS=1 NUMBA_NUM_THREADS=1``;
results: benchmarks/README.md.

    python benchmarks/iaf_vs_planar.py --energies U1 U2 U3 U4 --budget 15
"""
import argparse
import json
import time

import numpy as np

from nfscratch import datasets, models
from nfscratch.train import fit

#: name -> (builder, lr, batch size)
RECIPES = {
    "planar K=32": (lambda: models.planar_flow(2, 32, rng=0), 1e-2, 256),
    "IAF 12x(16,16)": (lambda: models.iaf(2, 12, (16, 16), rng=0), 5e-3, 256),
    "IAF 24x(8,8)": (lambda: models.iaf(2, 24, (8, 8), rng=0), 1e-2, 256),
    "IAF 16x(8,8)": (lambda: models.iaf(2, 16, (8, 8), rng=0), 1e-2, 256),
    "IAF 8x(16,16)": (lambda: models.iaf(2, 8, (16, 16), rng=0), 1e-2, 256),
    "IAF 8x(16,16) b128": (lambda: models.iaf(2, 8, (16, 16), rng=0), 1e-2, 128),
    "IAF 12x(16,16) b128": (lambda: models.iaf(2, 12, (16, 16), rng=0), 5e-3, 128),
    "IAF 16x(8,8) b128": (lambda: models.iaf(2, 16, (8, 8), rng=0), 1e-2, 128),
    "IAF 8x(16,16) b64": (lambda: models.iaf(2, 8, (16, 16), rng=0), 5e-3, 64),
}


def kl_nats(flow, energy, n=100_000, seed=123):
    x, log_q = flow.sample_and_log_prob(n, rng=seed)
    terms = log_q + energy.energy(x) + energy.log_normalizer()
    return float(terms.mean()), float(terms.std() / np.sqrt(n))


def run(name, energy, budget, seed=3):
    build, lr, batch = RECIPES[name]
    flow = build()
    start_cpu, start_wall, steps = time.process_time(), time.perf_counter(), [0]

    def stop(step, loss, flow):
        steps[0] = step + 1
        return time.process_time() - start_cpu > budget

    fit(flow, target=energy, steps=10**7, batch_size=batch, lr=lr, anneal=500, rng=seed,
        progress=False, callback=stop)
    cpu, wall = time.process_time() - start_cpu, time.perf_counter() - start_wall
    kl, se = kl_nats(flow, energy)
    return {"flow": name, "lr": lr, "batch": batch, "steps": steps[0], "cpu_s": round(cpu, 2),
            "wall_s": round(wall, 2), "kl": kl, "se": se}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--energies", nargs="+", default=["U1", "U2", "U3", "U4"])
    ap.add_argument("--flows", nargs="+", default=list(RECIPES))
    ap.add_argument("--budget", type=float, default=15.0, help="CPU seconds of training per run")
    ap.add_argument("--seed", type=int, default=3, help="fit's rng")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    rows = []
    for name in args.flows:       # compile (or load) every kernel before any budget starts
        fit(RECIPES[name][0](), target=datasets.energy("U1"), steps=3, progress=False)
    for e in args.energies:
        energy = datasets.energy(e)
        for name in args.flows:
            r = {"energy": e, **run(name, energy, args.budget, args.seed)}
            rows.append(r)
            print(f"{e} {r['flow']:<16} lr {r['lr']:<6} KL {r['kl']:.3f} ± {r['se']:.3f}  "
                  f"{r['steps']} steps, {r['cpu_s']} s CPU, {r['wall_s']} s wall", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
