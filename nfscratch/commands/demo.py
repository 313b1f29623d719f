"""``nfscratch demo``: the whole story in under a minute.

1. Maximum likelihood: a RealNVP (8 affine couplings, conditioner 1 -> 64 -> 64 -> 2) learns
   two moons from fresh points every step; the test NLL on 100k fresh points is reported
   against its floor, the data's exact entropy (and beside the best single Gaussian's).
2. Variational inference: 32 planar layers learn the energy U1 of Rezende & Mohamed (2015) by
   reverse KL (with annealing); the KL is reported in nats (floor 0) using U1's log-normalizer.

Figures (data vs model) and the trained flows go to a fresh folder ``<out>/demo-NNN``, so a
run never replaces the files of an earlier one; ``--out`` is checked before training starts.
"""
import time

import numpy as np

from ._common import add_progress_flag, fresh_run_dir, non_negative_int, output_folder


def register(sub):
    p = sub.add_parser("demo", help="train a RealNVP on two moons and a planar flow on U1, "
                                    "report NLL/KL in nats, write figures",
                       description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="nfscratch_out",
                   help="parent folder of the run's outputs (default: ./nfscratch_out)")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--quick", action="store_true", help="train briefly (for smoke tests)")
    add_progress_flag(p)
    p.set_defaults(func=run)


def gaussian_nll(train, test):
    """Mean NLL (nats) on ``test`` of the maximum-likelihood Gaussian fitted to ``train``."""
    mu = train.mean(axis=0)
    cov = np.cov(train, rowvar=False, bias=True)
    diff = test - mu
    _, logdet = np.linalg.slogdet(cov)
    maha = np.einsum("nd,de,ne->n", diff, np.linalg.inv(cov), diff)
    return float(np.mean(0.5 * (maha + logdet + train.shape[1] * np.log(2 * np.pi))))


def train_moons(seed, steps, progress):
    """The README's maximum-likelihood recipe: fresh points every step, cosine decay."""
    from .. import datasets, evaluate, models
    from ..train import fit
    rng = np.random.default_rng(seed)
    flow = models.realnvp(2, n_layers=8, hidden=(64, 64), rng=rng)
    history = fit(flow, data=lambda n, r: datasets.two_moons(n, r, noise=0.05), steps=steps,
                  batch_size=256, lr=2e-3, schedule="cosine", rng=rng, progress=progress)
    result = evaluate.nll(flow, "two_moons", n=100_000, rng=rng, noise=0.05)
    test = datasets.two_moons(4096, rng, noise=0.05)
    return flow, history, test, result, gaussian_nll(datasets.two_moons(4096, rng, noise=0.05),
                                                     test)


def train_u1(seed, steps, progress):
    """The planar recipe of benchmarks/quality.py: batch 512, warm-up then cosine decay, and
    annealing (beta rising to 1 over the first tenth) so q spreads over both of U1's lobes
    before the full energy pulls it in."""
    from .. import datasets, evaluate, models
    from ..optim import Cosine, Warmup
    from ..train import fit
    rng = np.random.default_rng(seed)
    target = datasets.energy("U1")
    flow = models.planar_flow(2, n_layers=32, rng=rng)
    history = fit(flow, target=target, steps=steps, batch_size=512,
                  schedule=Warmup(Cosine(2e-2, steps), max(1, steps // 20)),
                  anneal=max(1, steps // 10), rng=rng, progress=progress)
    result = evaluate.kl(flow, target, n=100_000, rng=rng)
    # the same estimate for the untrained starting point, a standard normal
    log_z = target.log_normalizer()
    z = flow.base.sample(20000, rng)
    kl_normal = float(np.mean(flow.base.log_prob(z) + target.energy(z)) + log_z)
    return flow, history, target, result, kl_normal


def run(args):
    from .. import io
    progress = False if args.no_progress else None
    out = fresh_run_dir(output_folder(args.out, "--out"), "demo")
    print(f"nfscratch demo: writing to {out}/")
    t0 = time.perf_counter()

    steps = 150 if args.quick else 4000
    print(f"[1/2] RealNVP (8 affine couplings) on two moons (noise 0.05), maximum likelihood, "
          f"{steps} steps of fresh points")
    flow_m, hist_m, test, nll, nll_gauss = train_moons(args.seed, steps, progress)
    print(f"      test {nll}  (best single Gaussian: {nll_gauss:.3f} nats)")

    steps = 300 if args.quick else 10_000
    print(f"[2/2] planar flow (K=32) on U1, reverse KL (annealed over {max(1, steps // 10)}), "
          f"{steps} steps")
    flow_u, hist_u, target, kl, kl_normal = train_u1(args.seed, steps, progress)
    print(f"      {kl}, floor 0  (standard normal: {kl_normal:.3f} nats)")

    io.save(flow_m, out / "moons_realnvp.npz")
    io.save(flow_u, out / "u1_planar.npz")
    written = ["moons_realnvp.npz", "u1_planar.npz"]
    written += write_figures(out, flow_m, hist_m, test, nll, flow_u, hist_u, target, kl,
                             progress)
    print(f"done in {time.perf_counter() - t0:.1f} s; wrote " + ", ".join(written))
    return 0


def write_figures(out, flow_m, hist_m, test, nll, flow_u, hist_u, target, kl, progress=None):
    """Write the demo's figures into the fresh folder ``out``; return their file names."""
    from ..plotting import animate_warp, film_strip, save_figure, target_vs_model

    K = len(flow_u)
    figures = {
        "moons_density.png": lambda: target_vs_model(flow_m, data=test,
                                                     metric_name="gap to the entropy",
                                                     metric=nll.gap),
        "u1_density.png": lambda: target_vs_model(flow_u, energy=target, metric_name="KL",
                                                  metric=kl.kl),
        "moons_warp.png": lambda: film_strip(flow_m),     # one panel per layer, base -> data
        "u1_warp.png": lambda: film_strip(flow_u, layers=sorted({0, 1, 2, 4, 8, 16, K}
                                                                & set(range(K + 1)))),
    }
    for name, make in figures.items():
        save_figure(make(), out / name, dpi=90 if "warp" in name else 120)
    animate_warp(flow_m, out / "moons_warp.gif", frames_per_layer=3, progress=progress)
    return [*figures, "moons_warp.gif"]
