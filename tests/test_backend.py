"""The backend switch: both backends give the same numbers, pass by pass and over 100 training steps."""
import os
import subprocess
import sys

import numpy as np
import pytest

import nfscratch
from nfscratch import Flow, datasets, gradcheck, models, nn
from nfscratch.config import get_backend, set_backend, use_backend
from nfscratch.optim import Adam
from nfscratch.train import fit
from nfscratch.transforms import AffineCoupling, Planar, Reverse


def test_switch_and_context_manager():
    assert nfscratch.get_backend is get_backend
    old = get_backend()
    with use_backend("numpy") as name:
        assert name == "numpy" == get_backend()
        with nfscratch.use_backend("NUMBA"):
            assert get_backend() == "numba"
        assert get_backend() == "numpy"
    assert get_backend() == old
    with pytest.raises(ValueError, match=r"^backend: expected one of \['numba', 'numpy'\], got 'jax'"):
        set_backend("jax")
    assert get_backend() == old
    with pytest.raises(RuntimeError), use_backend("numpy"):
        raise RuntimeError("the block failed")
    assert get_backend() == old


def test_environment_variable_sets_the_starting_backend():
    code = "import nfscratch; print(nfscratch.get_backend())"
    env = {**os.environ, "NFSCRATCH_BACKEND": "numpy"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "numpy", out.stderr
    env["NFSCRATCH_BACKEND"] = "fortran"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode != 0 and "NFSCRATCH_BACKEND: expected one of" in out.stderr


def close(a, b, tol=1e-10):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    scale = max(1.0, float(np.max(np.abs(b), initial=0.0)))
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol * scale)


def run_all_passes(t, z, x, rng):
    """Forward, backward, inverse, inverse backward of one transform; every output and grad."""
    out = {}
    out["x"], out["ld"] = t.forward(z)
    dx, dl = rng.normal(size=z.shape), rng.normal(size=z.shape[0])
    out["dz"] = t.backward(dx, dl)
    out.update({f"g_{k}": v.copy() for k, v in t.grads.items()})
    out["z"], out["ld_inv"] = t.inverse(x)
    out["dx"] = t.inverse_backward(dx, dl)
    out.update({f"gi_{k}": v.copy() for k, v in t.grads.items()})
    return out


@pytest.mark.parametrize("n", [1, 7, 64])
@pytest.mark.parametrize("dim", [2, 3])
def test_every_transform_gives_the_same_numbers_on_both_backends(dim, n):
    for name in gradcheck.builtin_examples(dim):
        results = []
        for backend in ("numpy", "numba"):
            t = gradcheck.builtin_examples(dim, rng=3)[name]
            rng = np.random.default_rng(5)
            # inside (0, 1) suits every layer's domain (some map the unit cube); x is an image point
            z = rng.uniform(0.1, 0.9, size=(n, dim))
            with use_backend("numpy"):
                x = t.forward(rng.uniform(0.1, 0.9, size=(n, dim)))[0]
            with use_backend(backend):
                results.append(run_all_passes(t, z, x, rng))
        ref, got = results
        assert ref.keys() == got.keys()
        for k in ref:
            close(got[k], ref[k])


def mixed_flow(seed):
    rng = np.random.default_rng(seed)
    return Flow([AffineCoupling(2, hidden=[16], rng=rng, zero_init=False)]
                + [Planar(2, rng=rng) for _ in range(5)] + [Reverse(2)]
                + [Planar(2, rng=rng, constrain=k != 1) for k in range(3)]
                + [AffineCoupling(2, hidden=[8, 8], activation="softplus", rng=rng, parity=1,
                                  zero_init=False)])


def test_flow_with_fused_planar_chains_matches_numpy():
    results = {}
    for backend in ("numpy", "numba"):
        flow = mixed_flow(0)
        rng = np.random.default_rng(1)
        z = rng.normal(size=(40, 2))
        with use_backend(backend):
            x, ld = flow.forward(z)
            dz = flow.backward(rng.normal(size=(40, 2)), np.full(40, -1 / 40))
            g = {k: v.copy() for k, v in flow.grads().items()}
            z_back, ld_inv = flow.inverse(x)
            dx = flow.inverse_backward(rng.normal(size=(40, 2)), np.full(40, 0.5))
            gi = {k: v.copy() for k, v in flow.grads().items()}
            traj = flow.trajectory(z)
        results[backend] = (x, ld, dz, g, z_back, ld_inv, dx, gi, traj)
    (x0, ld0, dz0, g0, zb0, li0, dx0, gi0, tr0) = results["numpy"]
    (x1, ld1, dz1, g1, zb1, li1, dx1, gi1, tr1) = results["numba"]
    for a, b in [(x1, x0), (ld1, ld0), (dz1, dz0), (zb1, zb0), (li1, li0), (dx1, dx0)]:
        close(a, b)
    for k in g0:
        close(g1[k], g0[k])
        close(gi1[k], gi0[k])
    # on the numba backend the fused chain and the layer-by-layer trajectory agree exactly
    np.testing.assert_array_equal(tr1.points[-1], x1)
    for p0, p1 in zip(tr0.points, tr1.points):
        close(p1, p0)


def test_a_single_layer_backward_after_a_fused_flow_pass():
    flow = Flow([Planar(2, rng=k) for k in range(4)])
    z = np.random.default_rng(0).normal(size=(10, 2))
    x, _ = flow.forward(z)
    dz_fused = flow.backward(np.ones((10, 2)), np.zeros(10))
    g_fused = flow.grads()
    with use_backend("numpy"):
        flow.forward(z)
        d = np.ones((10, 2))
        for t in reversed(flow.transforms):
            d = t.backward(d, np.zeros(10))
    close(dz_fused, d)
    for k, v in flow.grads().items():
        close(g_fused[k], v)


def test_mlp_on_both_backends():
    for activation in ("tanh", "relu", "leaky_relu", "softplus"):
        out = []
        for backend in ("numpy", "numba"):
            net = nn.MLP([3, 16, 9, 4], activation, rng=0)
            x = np.random.default_rng(1).normal(size=(11, 3))
            with use_backend(backend):
                y = net.forward(x)
                dx = net.backward(np.random.default_rng(2).normal(size=(11, 4)))
            out.append((y, dx, dict(net.grads)))
        close(out[1][0], out[0][0])
        close(out[1][1], out[0][1])
        for k in out[0][2]:
            close(out[1][2][k], out[0][2][k])


def test_adam_kernel_path_equals_numpy_path_and_refuses_nan():
    rng = np.random.default_rng(0)
    shapes = {"a": (3,), "b": (2, 4), "c": (1,)}
    runs = {}
    for backend in ("numpy", "numba"):
        params = {k: np.random.default_rng(1).normal(size=s) for k, s in shapes.items()}
        opt = Adam(lr=0.05)
        with use_backend(backend):
            for step in range(5):
                grads = {k: np.random.default_rng(10 + step).normal(size=s) for k, s in shapes.items()}
                opt.step(params, grads)
            state = opt.state_dict()
            bad = {k: np.ones(s) for k, s in shapes.items()}
            bad["c"][0] = np.nan
            before = {k: v.copy() for k, v in params.items()}
            with pytest.raises(FloatingPointError, match=r"grads\['c'\]"):
                opt.step(params, bad)
            for k in params:
                assert np.array_equal(params[k], before[k])
        runs[backend] = (params, state)
    for k in shapes:
        assert np.array_equal(runs["numba"][0][k], runs["numpy"][0][k])
        assert np.array_equal(runs["numba"][1][f"m/{k}"], runs["numpy"][1][f"m/{k}"])
    assert runs["numba"][1]["step/a"] == 5
    assert rng is not None


def train(backend, kind):
    with use_backend(backend):
        if kind == "planar":
            flow = models.planar_flow(2, 8, rng=0)
            hist = fit(flow, target=datasets.energy("U1"), steps=100, batch_size=128, lr=1e-2,
                       rng=7, progress=False)
        else:
            flow = models.realnvp(2, 4, hidden=(32, 32), rng=0)
            data = datasets.two_moons(512, rng=1)
            hist = fit(flow, data=data, steps=100, batch_size=128, lr=1e-2, rng=7, progress=False)
    return np.array(hist.loss), {k: v.copy() for k, v in flow.params().items()}


@pytest.mark.parametrize("kind", ["planar", "realnvp"])
def test_same_seed_same_training_trajectory_on_both_backends(kind):
    loss_np, params_np = train("numpy", kind)
    loss_nb, params_nb = train("numba", kind)
    assert loss_np[-1] < loss_np[0] - 0.1                      # it did train
    np.testing.assert_allclose(loss_nb, loss_np, rtol=1e-10, atol=1e-10)
    for k in params_np:
        np.testing.assert_allclose(params_nb[k], params_np[k], rtol=1e-10, atol=1e-10)
