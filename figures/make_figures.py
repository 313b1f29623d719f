"""Regenerate every committed figure of nfscratch: ``python figures/make_figures.py``.

Trains a few small flows with fixed seeds and draws every picture the README and the tutorials
show, into this folder (or ``--out``). The whole run takes about two minutes on two cores;
``--quick`` trains briefly and draws at low resolution, for a smoke test.

Which file shows what is listed in ``FIGURES`` below and in ``figures/README.md``. Every file is
replaced in one step (written to a temporary name, then renamed), so an interrupted run leaves
the previous figures intact.
"""
import argparse
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))   # run from a checkout, uninstalled

from nfscratch import datasets, models  # noqa: E402
from nfscratch import plotting as P  # noqa: E402
from nfscratch.train import fit  # noqa: E402
from nfscratch.transforms import AffineCoupling, Planar  # noqa: E402

SEED = 0
FIGURES = {
    "moons_strip.png": "RealNVP (8 couplings) on two moons, base -> data, every layer",
    "moons_strip_inverse.png": "the same flow in the normalizing direction, data -> base",
    "moons_strip_slides.png": "the same strip for a slide: style='slides', layers 0, 2, .., 8",
    "moons_layer_densities.png": "exact density after every layer, each panel's mass on its grid",
    "moons_target_vs_model.png": "two-moons histogram beside the RealNVP density, test NLL",
    "moons_warp.gif": "animation of the two-moons warp, moving smoothly between layers",
    "planar_U1_strip.png": "32 planar layers on U1, base -> target (k = 0, 1, 2, 4, 8, 16, 32)",
    "planar_U2_strip.png": "the same for U2",
    "planar_U3_strip.png": "the same for U3",
    "planar_U4_strip.png": "the same for U4",
    "planar_U1_U4_target_vs_model.png": "exp(-U)/Z beside the planar flow's density, U1..U4, KL",
    "training_curves_nll.png": "NLL of RealNVP on three data sets with their entropy floors",
    "training_curves_kl.png": "KL(q||p) of planar flows on U1..U4 with the floor 0",
    "diagnostics_moons.png": "per-layer log-dets and gradient norms, RealNVP on two moons",
    "diagnostics_U1.png": "per-layer log-dets and gradient norms, planar flow on U1",
    "jacobian_coupling.png": "Jacobian of an affine coupling (D = 8): block triangular, O(D)",
    "jacobian_planar.png": "Jacobian of a planar layer (D = 8): identity plus rank one",
    "digits_samples.png": "glow_like (spline) on the 8x8 digits, the CLI recipe: samples at T = 0.5, 0.75, 1",
}


def train_data(name, steps, rng):
    """RealNVP by maximum likelihood on a toy data set; returns flow, history, test set, NLL."""
    train = datasets.sample(name, 4096, rng, **({"noise": 0.05} if name == "two_moons" else {}))
    test = datasets.sample(name, 4096, rng, **({"noise": 0.05} if name == "two_moons" else {}))
    flow = models.realnvp(2, n_layers=8, hidden=(64, 64), rng=rng)
    hist = fit(flow, data=train, steps=steps, batch_size=256, lr=2e-3, rng=rng, progress=None)
    return flow, hist, test, -float(np.mean(flow.log_prob(test)))


def train_energy(name, steps, rng):
    """32 planar layers by reverse KL on U1..U4; returns flow, history, energy, KL in nats."""
    target = datasets.energy(name)
    flow = models.planar_flow(2, n_layers=32, rng=rng)
    # annealing (beta rising to 1 over the first third of training, as in the demo) keeps the
    # flow from settling on one lobe of a two-lobed target (U1), which would cost about ln 2 nats
    hist = fit(flow, target=target, steps=steps, batch_size=256, lr=1e-2, clip=100.0,
               anneal=steps // 3, rng=rng, progress=None)
    x, log_q = flow.sample_and_log_prob(20000, rng)
    kl = float(np.mean(log_q + target.energy(x)) + target.log_normalizer())
    return flow, hist, target, kl


def energy_grid_figure(results, grid_size):
    """U1..U4 in one figure: target (top row) over model (bottom row), one colour scale a column."""
    from matplotlib.figure import Figure
    from nfscratch.plotting._common import make_grid

    fig = Figure(figsize=(12.5, 6.6), layout="constrained")
    axes = fig.subplots(2, len(results), sharex=True, sharey=True)
    grid = make_grid(4.0, grid_size)
    for col, (name, (flow, _, target, kl)) in enumerate(results.items()):
        neg_u = -target.energy(grid.points)
        p = grid.as_image(np.exp(neg_u - target.log_normalizer()))
        q = grid.as_image(np.exp(flow.log_prob(grid.points)))
        vmax = max(p.max(), q.max())
        for row, (img, label) in enumerate(((p, f"{name}: exp(-{name}) / Z"),
                                            (q, f"planar K=32: KL = {kl:.3f} nats"))):
            ax = axes[row, col]
            im = ax.imshow(img, origin="lower", extent=grid.extent, cmap=P.DENSITY_CMAP, vmin=0,
                           vmax=vmax, interpolation="antialiased")
            ax.set_title(label, fontsize=10)
            ax.tick_params(labelsize=7)
        fig.colorbar(im, ax=axes[:, col].tolist(), orientation="horizontal", shrink=0.8,
                     label="density", pad=0.02)
    fig.suptitle("target (top) vs planar flow (bottom), trained by reverse KL; "
                 "one colour scale per column")
    return fig


def digits_figure(quick):
    """The digits recipe of ``nfscratch train --dataset digits`` (glow_like with spline
    couplings; 20 steps with --quick) and a grid of its samples at three temperatures."""
    from nfscratch.commands.train import DIGITS_RECIPES, train_digits
    flow, _, split = train_digits(DIGITS_RECIPES["spline"], SEED, steps=20 if quick else None)
    bpd, se = datasets.heldout_bits_per_dim(flow, split["test"][0], draws=8, seed=20_000)
    return P.sample_grid(flow, (8, 8), temperatures=(0.5, 0.75, 1.0), n_per_row=12, rng=SEED,
                         title=f"glow_like (spline couplings) on the 8x8 digits: test {bpd:.3f} "
                               f"± {se:.3f} bits/dim; rows: temperature T")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent),
                        help="folder for the figures (default: this folder)")
    parser.add_argument("--quick", action="store_true", help="short training, low resolution")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    quick = args.quick
    dpi = 50 if quick else 100
    strip_dpi = 50 if quick else 90        # strips wrap at 5 panels: 90 dpi is ~1100 px wide
    steps_data, steps_energy = (100, 100) if quick else (2000, 2500)
    grid = 40 if quick else 120
    t0 = time.perf_counter()

    def save(fig, name, **kw):
        P.save_figure(fig, out / name, dpi=kw.get("dpi", dpi), overwrite=True)
        print(f"  {name:34s} {(out / name).stat().st_size / 1024:7.0f} KB   "
              f"{time.perf_counter() - t0:6.1f} s")

    print("training RealNVP on two moons, checkerboard, eight gaussians ...")
    data_runs = {name: train_data(name, steps_data, np.random.default_rng(SEED + i))
                 for i, name in enumerate(["two_moons", "checkerboard", "eight_gaussians"])}
    flow, hist, test, nll = data_runs["two_moons"]
    save(P.film_strip(flow, n_samples=800, grid_size=grid, rng=SEED,
                      title="RealNVP on two moons, generative direction (base → data); "
                            "colour = angle of the starting point"),
         "moons_strip.png", dpi=strip_dpi)
    save(P.film_strip(flow, direction="inverse", data=test[:800], grid_size=grid, rng=SEED,
                      title="the same flow, normalizing direction (data → base): the test "
                            "points become Gaussian; colour = angle in data space"),
         "moons_strip_inverse.png", dpi=strip_dpi)
    save(P.film_strip(flow, layers=[0, 2, 4, 6, 8], n_samples=800, grid_size=grid, rng=SEED,
                      style="slides", title="RealNVP on two moons: base → data"),
         "moons_strip_slides.png", dpi=strip_dpi)
    save(P.plot_layer_densities(flow, grid_size=grid, ncols=5), "moons_layer_densities.png")
    save(P.target_vs_model(flow, data=test, metric_name="test NLL", metric=nll,
                           grid_size=2 * grid), "moons_target_vs_model.png")
    P.animate_warp(flow, out / "moons_warp.gif", frames_per_layer=3 if quick else 5,
                   mesh_size=30 if quick else 70, dpi=40 if quick else 72, rng=SEED,
                   overwrite=True)
    print(f"  {'moons_warp.gif':34s} {(out / 'moons_warp.gif').stat().st_size / 1024:7.0f} KB"
          f"   {time.perf_counter() - t0:6.1f} s")
    save(P.layer_diagnostics(hist, flow, test, title="RealNVP on two moons: per-layer diagnostics"),
         "diagnostics_moons.png")
    entropies = {name: datasets.entropy(name) for name in data_runs}
    save(P.training_curves({name: run[1] for name, run in data_runs.items()}, entropy=entropies,
                           title="RealNVP (8 couplings), maximum likelihood; dashed: the data's "
                                 "entropy, the lowest NLL any model can reach"),
         "training_curves_nll.png")

    print("training planar flows (K = 32) on U1..U4 ...")
    energy_runs = {name: train_energy(name, steps_energy, np.random.default_rng(SEED + 10 + i))
                   for i, name in enumerate(["U1", "U2", "U3", "U4"])}
    for name, (flow, hist, target, kl) in energy_runs.items():
        save(P.film_strip(flow, layers=[0, 1, 2, 4, 8, 16, 32], n_samples=800, grid_size=grid,
                          rng=SEED, title=f"32 planar layers trained on {name} by reverse KL "
                                          f"(KL = {kl:.3f} nats); colour = starting angle"),
             f"planar_{name}_strip.png", dpi=strip_dpi)
    save(energy_grid_figure(energy_runs, 2 * grid), "planar_U1_U4_target_vs_model.png")
    save(P.training_curves({name: run[1] for name, run in energy_runs.items()},
                           title="planar flows (K = 32), reverse KL; dashed: 0, reached only "
                                 "when q equals the target"), "training_curves_kl.png")
    flow, hist, _, _ = energy_runs["U1"]
    save(P.layer_diagnostics(hist, flow, title="planar flow on U1: per-layer diagnostics"),
         "diagnostics_U1.png")

    rng = np.random.default_rng(SEED)
    coupling = AffineCoupling(8, hidden=[16], rng=rng, zero_init=False)
    save(P.plot_jacobian(coupling, rng=SEED), "jacobian_coupling.png")
    planar = Planar(8, rng=rng)
    planar.params["u"][:] = rng.normal(size=8)      # a visible rank-one part
    planar.params["w"][:] = rng.normal(size=8) * 0.5
    save(P.plot_jacobian(planar, rng=SEED), "jacobian_planar.png")

    print("training glow_like on the digits ...")
    save(digits_figure(quick), "digits_samples.png")

    missing = sorted(set(FIGURES) - {p.name for p in out.iterdir()})
    if missing:
        raise SystemExit(f"make_figures: these figures were not written: {missing}")
    total = sum((out / n).stat().st_size for n in FIGURES) / 1024 ** 2
    print(f"done: {len(FIGURES)} figures, {total:.1f} MB, {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
