#!/usr/bin/env python
r"""Side-by-side timings of one training step: nfscratch (numba and numpy backends), PyTorch by
hand and normflows, all float64 and on the same number of threads.

Two steps, both "forward + backward + Adam":

(a) planar flow, K = 32 layers, D = 2, reverse KL against the energy U1 (``nfscratch.datasets``);
(b) RealNVP, 8 affine couplings with a 1 -> 64 -> 64 -> 2 tanh conditioner
    (``nfscratch.models.realnvp(2, 8, (64, 64))``), maximum likelihood on a two-moons batch.

Usage::

    python benchmarks/run.py                  # batches 64, 512, 4096, 32768; 7 repeats
    python benchmarks/run.py --quick          # batches 64, 512; 3 repeats; cold start once
    python benchmarks/run.py --batch 512 4096 --threads 2 --json results.json
    nfscratch bench [same flags]              # runs this script

How it measures. Every implementation is built from the same initial parameters, and the losses
they compute on the same inputs are compared first (the run stops if they differ by more than
1e-9 relative). Then, per batch size, the implementations take turns: each repeat times a block
of steps of every implementation in rotating order, so that a slow minute on this shared machine
hits all of them alike; the table gives the median and the minimum over the repeats (ms per
step), and after the bar the median CPU time of this process per step with the same ratios --
on a shared machine the one that leaves out the time spent waiting for a core (the large matmul
is then also counted per CPU second). The thread count is fixed before NumPy is imported
(``OPENBLAS_NUM_THREADS`` etc.) and passed to ``torch.set_num_threads``. GFLOP/s counts the matrix products of the coupling step
(forward ``2 N (1*64 + 64*64 + 64*2)`` per layer, backward twice that) and is compared with a
large ``matmul`` measured in the same run. The planar step does ~10 flops per sample and layer
around a ``tanh`` and a ``log``; its GFLOP/s is not meaningful and is left out.

Cold start: a fresh Python process imports nfscratch, builds the model and takes one training
step, once with an empty Numba cache (``NUMBA_CACHE_DIR`` pointing to a new temporary directory:
everything compiles) and once with the cache warm.

torch and normflows are optional (``pip install nfscratch[bench]``); without them those columns
are skipped.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

BATCHES = (64, 512, 4096, 32768)
K_PLANAR = 32
N_COUPLING = 8
HIDDEN = (64, 64)
LR = 1e-3
S_MAX = 2.0


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="benchmarks/run.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="batches 64 and 512, 3 repeats, one cold-start sample (about a minute)")
    p.add_argument("--batch", type=int, nargs="+", metavar="N",
                   help=f"batch sizes (default {' '.join(map(str, BATCHES))})")
    p.add_argument("--threads", type=int, default=1,
                   help="threads for BLAS, Numba and PyTorch alike (default 1)")
    p.add_argument("--repeats", type=int, help="timed blocks per implementation (default 7)")
    p.add_argument("--only", choices=["planar", "coupling"], help="run one of the two steps")
    p.add_argument("--impl", nargs="+", choices=["numba", "numpy", "torch", "normflows"],
                   help="implementations to time (default: all available)")
    p.add_argument("--no-cold", action="store_true", help="skip the cold-start measurement")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = p.parse_args(argv)
    if args.threads < 1:
        p.error("--threads: expected a positive integer")
    if args.batch and min(args.batch) < 1:
        p.error("--batch: expected positive integers")
    return args


# Threads must be fixed before NumPy (and its BLAS) is imported: parse first, import after.
ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None:
    for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[_var] = str(ARGS.threads)

import numpy as np  # noqa: E402

import nfscratch  # noqa: E402
from nfscratch import datasets, models  # noqa: E402
from nfscratch.config import use_backend  # noqa: E402
from nfscratch.losses import nll_loss, nll_step, reverse_kl_loss, reverse_kl_step  # noqa: E402
from nfscratch.optim import Adam  # noqa: E402

try:
    import torch
except ImportError:          # the optional "bench" extra is not installed
    torch = None
try:
    import normflows as nf
except ImportError:
    nf = None


# ---------------------------------------------------------------------------------------------
# shared initial parameters
# ---------------------------------------------------------------------------------------------
def planar_init(seed):
    """u, w (K, D) and b (K,) as ``models.planar_flow`` draws them, plus a random bias."""
    flow = models.planar_flow(2, K_PLANAR, rng=seed)
    rng = np.random.default_rng(seed + 1)
    for t in flow:
        t.params["b"][:] = rng.normal(0.0, 0.1, 1)
    return [{k: v.copy() for k, v in t.params.items()} for t in flow]


def coupling_init(seed):
    """Per-layer MLP params of ``models.realnvp``; the zero-initialized last layer is given
    small random values so that the loss comparison is not trivially the identity map."""
    flow = models.realnvp(2, N_COUPLING, HIDDEN, rng=seed)
    rng = np.random.default_rng(seed + 1)
    layers = []
    for t in flow:
        last = len(HIDDEN)
        t.params[f"W{last}"][:] = rng.normal(0.0, 0.05, t.params[f"W{last}"].shape)
        t.params[f"b{last}"][:] = rng.normal(0.0, 0.05, t.params[f"b{last}"].shape)
        layers.append({k: v.copy() for k, v in t.params.items()})
    return layers


def coupling_flops(n):
    """Matrix-product flops of one coupling step (forward + backward, all layers)."""
    sizes = (1, *HIDDEN, 2)
    forward = sum(2 * n * a * b for a, b in zip(sizes[:-1], sizes[1:]))
    return 3 * forward * N_COUPLING


# ---------------------------------------------------------------------------------------------
# nfscratch, on either backend
# ---------------------------------------------------------------------------------------------
class NfscratchPlanar:
    def __init__(self, backend, init, n, seed):
        self.backend, self.n = backend, n
        self.flow = models.planar_flow(2, K_PLANAR, rng=0)
        for t, p in zip(self.flow, init):
            for k, v in p.items():
                t.params[k][...] = v
        self.target = datasets.energy("U1")
        self.opt = Adam(lr=LR)
        self.params = self.flow.params()
        self.rng = np.random.default_rng(seed)

    def loss_on(self, z0):
        with use_backend(self.backend):
            x, log_det = self.flow.forward(z0)
            return reverse_kl_loss(z0, x, log_det, self.flow.base, self.target)[0]

    def step(self):
        with use_backend(self.backend):
            loss = reverse_kl_step(self.flow, self.target, self.n, self.rng)
            self.opt.step(self.params, self.flow.grads())
        return loss


class NfscratchCoupling:
    def __init__(self, backend, init, x):
        self.backend, self.x = backend, x
        self.flow = models.realnvp(2, N_COUPLING, HIDDEN, rng=0)
        for t, p in zip(self.flow, init):
            for k, v in p.items():
                t.params[k][...] = v
        self.opt = Adam(lr=LR)
        self.params = self.flow.params()

    def loss_on(self, x):
        with use_backend(self.backend):
            z, log_det = self.flow.inverse(x)
            return nll_loss(z, log_det, self.flow.base)[0]

    def step(self):
        with use_backend(self.backend):
            loss = nll_step(self.flow, self.x)
            self.opt.step(self.params, self.flow.grads())
        return loss


# ---------------------------------------------------------------------------------------------
# PyTorch by hand and normflows (optional)
# ---------------------------------------------------------------------------------------------
def u1_torch(z):
    """U1 of nfscratch.datasets with its box wall, in torch."""
    z1 = z[:, 0]
    r = torch.sqrt(torch.sum(z * z, dim=1))
    ring = 0.5 * ((r - 2.0) / 0.4) ** 2
    a = -0.5 * ((z1 - 2.0) / 0.6) ** 2
    b = -0.5 * ((z1 + 2.0) / 0.6) ** 2
    excess = torch.clamp(torch.abs(z) - 4.0, min=0.0) / 0.25
    return ring - torch.logaddexp(a, b) + 0.5 * torch.sum(excess * excess, dim=1)


def log_p0_torch(z):
    return -0.5 * torch.sum(z * z, dim=1) - 0.5 * z.shape[1] * float(np.log(2 * np.pi))


class TorchPlanar:
    """The planar flow written directly in PyTorch (autograd for the backward pass)."""

    def __init__(self, init, n, seed):
        self.n = n
        self.u = torch.tensor(np.stack([p["u"] for p in init]), requires_grad=True)
        self.w = torch.tensor(np.stack([p["w"] for p in init]), requires_grad=True)
        self.b = torch.tensor(np.array([p["b"][0] for p in init]), requires_grad=True)
        self.opt = torch.optim.Adam([self.u, self.w, self.b], lr=LR)
        self.gen = torch.Generator().manual_seed(seed)

    def _loss(self, z0):
        z, log_det = z0, torch.zeros(z0.shape[0], dtype=torch.float64)
        for k in range(self.u.shape[0]):
            u, w, b = self.u[k], self.w[k], self.b[k]
            wu = torch.dot(w, u)
            u_hat = u + (torch.nn.functional.softplus(wu) - 1.0 - wu) * w / torch.dot(w, w)
            h = torch.tanh(z @ w + b)
            log_det = log_det + torch.log(1.0 + torch.dot(w, u_hat) * (1.0 - h * h))
            z = z + h[:, None] * u_hat
        return torch.mean(log_p0_torch(z0) - log_det + u1_torch(z))

    def loss_on(self, z0):
        with torch.no_grad():
            return float(self._loss(torch.from_numpy(z0)))

    def step(self):
        z0 = torch.randn(self.n, 2, generator=self.gen, dtype=torch.float64)
        loss = self._loss(z0)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return loss.detach().item()


class TorchCoupling:
    """The RealNVP stack written directly in PyTorch: same masks, soft-bounded scale, tanh MLP."""

    def __init__(self, init, x):
        self.x = torch.from_numpy(x)
        self.layers = [{k: torch.tensor(v, requires_grad=True) for k, v in p.items()} for p in init]
        self.opt = torch.optim.Adam([v for p in self.layers for v in p.values()], lr=LR)

    def _loss(self, x):
        log_det = torch.zeros(x.shape[0], dtype=torch.float64)
        for k in reversed(range(len(self.layers))):        # the inverse chain, last layer first
            p = self.layers[k]
            ia, ib = (0, 1) if k % 2 == 0 else (1, 0)      # realnvp's alternating masks
            h = torch.tanh(x[:, ia:ia + 1] @ p["W0"] + p["b0"])
            h = torch.tanh(h @ p["W1"] + p["b1"])
            out = h @ p["W2"] + p["b2"]
            s = S_MAX * torch.tanh(out[:, 0] / S_MAX)
            zb = (x[:, ib] - out[:, 1]) * torch.exp(-s)
            x = torch.stack([x[:, 0], zb] if ib == 1 else [zb, x[:, 1]], dim=1)
            log_det = log_det - s
        return -torch.mean(log_p0_torch(x) + log_det)

    def loss_on(self, x):
        with torch.no_grad():
            return float(self._loss(torch.from_numpy(x)))

    def step(self):
        loss = self._loss(self.x)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return loss.detach().item()


if nf is not None:
    class _U1Target(nf.distributions.Target):
        def __init__(self):
            super().__init__()

        def log_prob(self, z):
            return -u1_torch(z)

    class _BoundedConditioner(torch.nn.Module):
        """realnvp's conditioner for normflows' AffineCoupling: it returns ``[t, s]`` (normflows
        reads shift = param[:, 0::2], scale = param[:, 1::2]) with ``s = s_max tanh(raw / s_max)``."""

        def __init__(self, p):
            super().__init__()
            self.net = torch.nn.Sequential(
                torch.nn.Linear(1, HIDDEN[0]), torch.nn.Tanh(), torch.nn.Linear(*HIDDEN),
                torch.nn.Tanh(), torch.nn.Linear(HIDDEN[1], 2)).double()
            with torch.no_grad():
                for i, lin in enumerate(self.net[::2]):
                    lin.weight.copy_(torch.from_numpy(p[f"W{i}"].T))
                    lin.bias.copy_(torch.from_numpy(p[f"b{i}"]))

        def forward(self, z1):
            out = self.net(z1)
            return torch.cat([out[:, 1:], S_MAX * torch.tanh(out[:, :1] / S_MAX)], dim=1)


class NormflowsPlanar:
    def __init__(self, init, n, seed):
        self.n = n
        # normflows keeps u and w with a leading batch axis, shape (1, D)
        flows = [nf.flows.Planar((2,), u=torch.tensor(p["u"][None]), w=torch.tensor(p["w"][None]),
                                 b=torch.tensor(p["b"])) for p in init]
        q0 = nf.distributions.DiagGaussian(2, trainable=False)
        self.model = nf.NormalizingFlow(q0=q0, flows=flows, p=_U1Target()).double()
        self.opt = torch.optim.Adam(self.model.parameters(), lr=LR)
        torch.manual_seed(seed)

    def loss_on(self, z0):
        with torch.no_grad():
            z = torch.from_numpy(z0)
            log_q = self.model.q0.log_prob(z)
            for f in self.model.flows:
                z, log_det = f(z)
                log_q = log_q - log_det
            return float(torch.mean(log_q) - torch.mean(self.model.p.log_prob(z)))

    def step(self):
        loss = self.model.reverse_kld(self.n)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return loss.detach().item()


class NormflowsCoupling:
    def __init__(self, init, x):
        self.x = torch.from_numpy(x)
        flows = [nf.flows.AffineCouplingBlock(_BoundedConditioner(p), scale=True, scale_map="exp",
                                              split_mode="channel" if k % 2 == 0 else "channel_inv")
                 for k, p in enumerate(init)]
        q0 = nf.distributions.DiagGaussian(2, trainable=False)
        self.model = nf.NormalizingFlow(q0=q0, flows=flows).double()
        self.opt = torch.optim.Adam(self.model.parameters(), lr=LR)

    def loss_on(self, x):
        with torch.no_grad():
            return float(self.model.forward_kld(torch.from_numpy(x)))

    def step(self):
        loss = self.model.forward_kld(self.x)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return loss.detach().item()


# ---------------------------------------------------------------------------------------------
# measuring
# ---------------------------------------------------------------------------------------------
def available_impls(wanted):
    names = ["numba", "numpy"]
    if torch is not None:
        names.append("torch")
        if nf is not None:
            names.append("normflows")
    return [n for n in names if wanted is None or n in wanted]


def build(kind, impl, n, seed=0):
    if kind == "planar":
        init = planar_init(seed)
        return {"numba": lambda: NfscratchPlanar("numba", init, n, seed),
                "numpy": lambda: NfscratchPlanar("numpy", init, n, seed),
                "torch": lambda: TorchPlanar(init, n, seed),
                "normflows": lambda: NormflowsPlanar(init, n, seed)}[impl]()
    init = coupling_init(seed)
    x = datasets.two_moons(n, rng=seed)
    return {"numba": lambda: NfscratchCoupling("numba", init, x),
            "numpy": lambda: NfscratchCoupling("numpy", init, x),
            "torch": lambda: TorchCoupling(init, x),
            "normflows": lambda: NormflowsCoupling(init, x)}[impl]()


def check_agreement(kind, impls, n=256):
    """Every implementation's loss on the same inputs and parameters; raise if they differ."""
    rng = np.random.default_rng(123)
    inputs = rng.normal(size=(n, 2)) if kind == "planar" else datasets.two_moons(n, rng=123)
    losses = {name: build(kind, name, n).loss_on(inputs) for name in impls}
    ref = losses["numpy"] if "numpy" in losses else next(iter(losses.values()))
    worst = max(abs(v - ref) for v in losses.values()) / (1.0 + abs(ref))
    if not worst < 1e-9:
        raise SystemExit(f"{kind}: the implementations disagree on the loss: {losses}")
    return losses, worst


def time_block(obj, steps):
    """Wall and CPU seconds per step (the CPU time of this process leaves out the time it waited
    for a core on a shared machine; with more than one thread it adds theirs up)."""
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(steps):
        obj.step()
    return (time.perf_counter() - t0) / steps, (time.process_time() - c0) / steps


def measure(kind, impls, n, repeats, block_seconds):
    objs = {name: build(kind, name, n) for name in impls}
    inner = {}
    for name, obj in objs.items():                 # warm up (compiles), then size the blocks
        obj.step()
        per_step = time_block(obj, 2)[0]
        inner[name] = max(1, min(200, int(block_seconds / max(per_step, 1e-6))))
    samples = {name: [] for name in impls}
    for r in range(repeats):
        order = impls[r % len(impls):] + impls[:r % len(impls)]    # rotate who goes first
        for name in order:
            samples[name].append(time_block(objs[name], inner[name]))
    out = {}
    for name, s in samples.items():
        wall, cpu = np.array(s).T
        out[name] = {"median_ms": 1e3 * float(np.median(wall)), "min_ms": 1e3 * float(np.min(wall)),
                     "cpu_median_ms": 1e3 * float(np.median(cpu)),
                     "steps_per_block": inner[name], "repeats": len(s)}
    return out


def large_matmul_gflops(size=2048, repeats=5, clock=time.perf_counter):
    a = np.random.default_rng(0).normal(size=(size, size))
    b = np.random.default_rng(1).normal(size=(size, size))
    out = np.empty_like(a)
    np.matmul(a, b, out=out)
    best = min(_timed(lambda: np.matmul(a, b, out=out), clock) for _ in range(repeats))
    return 2.0 * size ** 3 / best / 1e9


def _timed(fn, clock=time.perf_counter):
    t0 = clock()
    fn()
    return clock() - t0


COLD_SCRIPT = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
import nfscratch
from nfscratch import datasets, models
from nfscratch.losses import nll_step, reverse_kl_step
from nfscratch.optim import Adam
t1 = time.perf_counter()
kind = sys.argv[1]
if kind == "planar":
    flow = models.planar_flow(2, 32, rng=0)
    opt = Adam(1e-3)
    reverse_kl_step(flow, datasets.energy("U1"), 512, np.random.default_rng(0))
else:
    flow = models.realnvp(2, 8, (64, 64), rng=0)
    opt = Adam(1e-3)
    nll_step(flow, datasets.two_moons(512, rng=0))
opt.step(flow.params(), flow.grads())
t2 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "first_step_s": t2 - t1}))
"""


def cold_start(kind, cache_dir=None, samples=1):
    """Wall time of a fresh process up to the end of its first training step (s)."""
    env = {**os.environ, "NFSCRATCH_BACKEND": "numba"}
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    runs = []
    for _ in range(samples):
        t0, c0 = time.perf_counter(), os.times()
        out = subprocess.run([sys.executable, "-c", COLD_SCRIPT, kind], env=env, check=True,
                             capture_output=True, text=True)
        wall, c1 = time.perf_counter() - t0, os.times()
        cpu = (c1.children_user - c0.children_user) + (c1.children_system - c0.children_system)
        runs.append({"wall_s": wall, "cpu_s": cpu,
                     **json.loads(out.stdout.strip().splitlines()[-1])})
    return min(runs, key=lambda r: r["wall_s"])


def machine_description(threads):
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import numba
    parts = [f"{cpu}, {os.cpu_count()} logical cores, {threads} thread(s) per implementation",
             f"Python {platform.python_version()}, NumPy {np.__version__}, Numba {numba.__version__}"]
    if torch is not None:
        parts.append(f"PyTorch {torch.__version__}" + (f", normflows {nf.__version__}" if nf is not None
                                                       and hasattr(nf, "__version__") else ""))
    return "; ".join(parts)


# ---------------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------------
def print_table(kind, n, res, matmul, matmul_cpu):
    flops = coupling_flops(n) if kind == "coupling" else None
    ref = res.get("normflows", {}).get("median_ms")
    ref_cpu = res.get("normflows", {}).get("cpu_median_ms")
    print(f"\n{kind} step, batch {n} (load average {os.getloadavg()[0]:.1f})")
    print(f"  {'implementation':<12} {'median ms':>10} {'min ms':>9} {'samples/s':>11} "
          f"{'x normflows':>12} {'GFLOP/s':>8} {'% matmul':>9} | {'CPU ms':>8} {'x nf':>6} "
          f"{'% matmul':>9}")
    for name, r in res.items():
        med, cpu = r["median_ms"], r["cpu_median_ms"]
        speed = f"{ref / med:.1f}" if ref else "-"
        speed_cpu = f"{ref_cpu / cpu:.1f}" if ref_cpu else "-"
        gf = flops / (med * 1e-3) / 1e9 if flops else None
        gfs = f"{gf:.1f}" if gf else "-"
        frac = f"{100 * gf / matmul:.0f}%" if gf else "-"
        frac_cpu = f"{100 * flops / (cpu * 1e-3) / 1e9 / matmul_cpu:.0f}%" if flops else "-"
        print(f"  {name:<12} {med:>10.3f} {r['min_ms']:>9.3f} {n / (med * 1e-3):>11,.0f} "
              f"{speed:>12} {gfs:>8} {frac:>9} | {cpu:>8.3f} {speed_cpu:>6} {frac_cpu:>9}")


def main(args):
    if torch is not None:
        torch.set_num_threads(args.threads)
        torch.set_default_dtype(torch.float64)     # normflows builds its log-density in it
    batches = args.batch or ((64, 512) if args.quick else BATCHES)
    repeats = args.repeats or (3 if args.quick else 7)
    kinds = [args.only] if args.only else ["planar", "coupling"]
    impls = available_impls(args.impl)
    results = {"machine": machine_description(args.threads), "threads": args.threads,
               "batches": list(batches), "repeats": repeats, "impls": impls}
    print("machine:", results["machine"])
    if torch is None or nf is None:
        print("(torch/normflows not importable: their columns are skipped; "
              "pip install 'nfscratch[bench]' to add them)")
    matmul = large_matmul_gflops()
    matmul_cpu = large_matmul_gflops(clock=time.process_time)
    results["large_matmul_gflops"] = matmul
    results["large_matmul_gflops_cpu"] = matmul_cpu
    print(f"large matmul (2048 x 2048, float64): {matmul:.1f} GFLOP/s "
          f"({matmul_cpu:.1f} per CPU second)")

    for kind in kinds:
        losses, worst = check_agreement(kind, impls)
        results[f"{kind}_agreement"] = {"losses": losses, "max_rel_diff": worst}
        print(f"{kind}: losses agree on the same inputs: max relative difference {worst:.1e} "
              f"({', '.join(f'{k} {v:.12f}' for k, v in losses.items())})")
        for n in batches:
            block = 0.05 if n < 32768 else 0.2
            res = measure(kind, impls, n, repeats, block)
            results.setdefault(kind, {})[str(n)] = res
            print_table(kind, n, res, matmul, matmul_cpu)

    if not args.no_cold:
        print("\ncold start: fresh process, import + build + first training step (numba backend)")
        samples = 1 if args.quick else 3
        for kind in kinds:
            with tempfile.TemporaryDirectory() as empty:
                no_cache = cold_start(kind, cache_dir=empty)
            cold_start(kind)                        # make sure the default cache is filled
            warm = cold_start(kind, samples=samples)
            results[f"{kind}_cold_start"] = {"no_cache": no_cache, "warm_cache": warm}
            for label, r in (("empty cache", no_cache), ("warm cache", warm)):
                print(f"  {kind:<9} {label:<12} {r['wall_s']:6.2f} s total "
                      f"(import {r['import_s']:.2f} s, first step {r['first_step_s']:.2f} s; "
                      f"CPU {r['cpu_s']:.2f} s; load average {os.getloadavg()[0]:.1f})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main(ARGS))
