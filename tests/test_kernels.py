"""Every kernel equals its NumPy twin; bad arguments are refused before any compiled code runs.

Each case builds random arguments (batch 1 and odd sizes, D in {1, 2, 3, 5}) and compares
``<name>_nb`` with ``<name>_ref``. The refs are themselves tied to the readable transform code:
the planar chain to ``transforms.planar`` layer by layer (incl. ``solve_planar_a``), the MLP and
coupling kernels to ``nn`` and ``transforms.coupling`` through ``tests/test_backend.py``.
"""
import math

import numpy as np
import pytest
from numba import njit

from nfscratch.kernels import adam as ka
from nfscratch.kernels import coupling as kc
from nfscratch.kernels import energies as ke
from nfscratch.kernels import mlp as km
from nfscratch.kernels import planar as kp
from nfscratch.kernels._checks import packed_view
from nfscratch.kernels._math import EXP_MAX, exp_v, log1p_v, log_v, tanh_v
from nfscratch.transforms import planar as P

RTOL = 1e-12


def assert_twins(ref_out, nb_out, rtol=RTOL, what=""):
    if not isinstance(ref_out, tuple):
        ref_out, nb_out = (ref_out,), (nb_out,)
    assert len(ref_out) == len(nb_out)
    for i, (r, n) in enumerate(zip(ref_out, nb_out)):
        r, n = np.asarray(r, dtype=float), np.asarray(n, dtype=float)
        assert r.shape == n.shape, f"{what} output {i}: shapes {r.shape} vs {n.shape}"
        scale = max(1.0, float(np.max(np.abs(r), initial=0.0)))
        np.testing.assert_allclose(n, r, rtol=rtol, atol=rtol * scale, err_msg=f"{what} output {i}")


# ---------------------------------------------------------------------------------------------
# the vectorizable tanh and log
# ---------------------------------------------------------------------------------------------
@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _tanh_loop(a):
    out = np.empty_like(a)
    for i in range(a.shape[0]):
        out[i] = tanh_v(a[i])
    return out


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _log_loop(a):
    out = np.empty_like(a)
    for i in range(a.shape[0]):
        out[i] = log_v(a[i])
    return out


SPECIAL = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 5e-324, 2.2250738585072014e-308, 1e-300,
                    1.0, -1.0, np.sqrt(2), np.nextafter(np.sqrt(2), 0), 19.0, 20.0, 25.0, 710.0,
                    1.7976931348623157e308, 0.34657359027997264, -0.34657359027997264])


def test_tanh_v_matches_numpy(rng):
    x = np.concatenate([rng.normal(size=20000) * 4, np.logspace(-320, 3, 5000),
                        -np.logspace(-320, 3, 5000), SPECIAL])
    got, want = _tanh_loop(x), np.tanh(x)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    np.testing.assert_allclose(got[ok], want[ok], rtol=1e-15, atol=0)
    assert np.signbit(_tanh_loop(np.array([-0.0])))[0]


def test_log_v_matches_numpy(rng):
    x = np.concatenate([np.abs(rng.normal(size=20000)) * 5, np.logspace(-323, 308, 5000),
                        1.0 + rng.normal(size=5000) * 1e-9, SPECIAL, -SPECIAL])
    with np.errstate(divide="ignore", invalid="ignore"):
        want = np.log(x)
    got = _log_loop(x)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    inf = np.isinf(want)
    assert np.array_equal(got[inf], want[inf])
    ok = ~np.isnan(want) & ~inf
    np.testing.assert_allclose(got[ok], want[ok], rtol=1e-15, atol=1e-300)


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _exp_loop(a):
    out = np.empty_like(a)
    for i in range(a.shape[0]):
        out[i] = exp_v(a[i])
    return out


@njit(cache=True, error_model="numpy", fastmath={"contract"})
def _log1p_loop(a):
    out = np.empty_like(a)
    for i in range(a.shape[0]):
        out[i] = log1p_v(a[i])
    return out


def test_exp_v_matches_numpy(rng):
    x = np.concatenate([rng.normal(size=20000) * 30, np.linspace(-708.0, EXP_MAX, 20001),
                        -np.logspace(-320, 2.8, 2000), np.logspace(-320, 2.8, 2000), SPECIAL,
                        -SPECIAL, [EXP_MAX, np.nextafter(EXP_MAX, 0), -708.0]])
    with np.errstate(over="ignore"):
        want = np.exp(x)
    got = _exp_loop(x)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    assert np.array_equal(got[np.isinf(want)], want[np.isinf(want)])
    normal = (x >= -708.0) & np.isfinite(want)
    np.testing.assert_allclose(got[normal], want[normal], rtol=1e-15, atol=0)
    assert np.all(got[x < -708.0] == 0.0)          # documented: subnormal results become 0


def test_log1p_v_matches_numpy(rng):
    x = np.concatenate([np.abs(rng.normal(size=20000)) * 3, np.logspace(-320, 300, 5000),
                        rng.random(5000) * 1e-8, [0.0, -0.0, np.inf, np.nan, 1.0, 5e-324]])
    want, got = np.log1p(x), _log1p_loop(x)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    np.testing.assert_allclose(got[ok], want[ok], rtol=2e-16 * 8, atol=0)


# ---------------------------------------------------------------------------------------------
# planar chain
# ---------------------------------------------------------------------------------------------
def planar_params(rng, K, D, scale=0.5, free_layer=True):
    u, w = rng.normal(size=(K, D)) * scale, rng.normal(size=(K, D)) * scale
    b = rng.normal(size=K) * 0.3
    constrain = np.ones(K, dtype=np.int64)
    if free_layer and K > 1:     # an unconstrained layer that is still invertible: c = w.u > -1
        constrain[0] = 0
        u[0] = 0.3 * w[0]
    if K > 2:
        w[2] = 0.0               # the w = 0 branch of the reparameterization
    return u, w, b, constrain


SHAPES = [(1, 1, 1), (1, 2, 3), (7, 2, 1), (7, 3, 5), (64, 5, 4), (33, 2, 32)]


@pytest.mark.parametrize("N, D, K", SHAPES)
def test_planar_chain_twins_all_directions(N, D, K, rng):
    u, w, b, constrain = planar_params(rng, K, D)
    uh = kp.planar_u_hat_ref(u, w, constrain)
    assert_twins(uh, kp.planar_u_hat_nb(u, w, constrain), what="u_hat")
    u_hat, c, opc = uh
    z = rng.normal(size=(N, D))
    fwd = kp.planar_chain_forward_ref(z, u_hat, w, b, c, opc)
    assert_twins(fwd, kp.planar_chain_forward_nb(z, u_hat, w, b, c, opc), what="forward")
    dx, dl = rng.normal(size=(N, D)), rng.normal(size=N)
    bwd = kp.planar_chain_backward_ref(dx, dl, fwd[3], fwd[4], u_hat, w, c, opc)
    assert_twins(bwd, kp.planar_chain_backward_nb(dx, dl, fwd[3], fwd[4], u_hat, w, c, opc),
                 what="backward")
    assert_twins(kp.planar_u_hat_backward_ref(bwd[1], bwd[4], u, w, constrain),
                 kp.planar_u_hat_backward_nb(bwd[1], bwd[4], u, w, constrain), what="u_hat backward")
    inv = kp.planar_chain_inverse_ref(fwd[0], u_hat, w, b, c, opc, P.NEWTON_TOL, P.NEWTON_MAX_ITER)
    inv_nb = kp.planar_chain_inverse_nb(fwd[0], u_hat, w, b, c, opc, P.NEWTON_TOL, P.NEWTON_MAX_ITER)
    assert inv[5] == inv_nb[5] == 0
    assert_twins(inv[:5], inv_nb[:5], rtol=1e-11, what="inverse")
    np.testing.assert_allclose(inv_nb[0], z, atol=1e-10)
    np.testing.assert_allclose(inv_nb[1], -fwd[1], atol=1e-10)
    ib = kp.planar_chain_inverse_backward_ref(dx, dl, inv[3], inv[4], u_hat, w, c, opc)
    assert_twins(ib, kp.planar_chain_inverse_backward_nb(dx, dl, inv_nb[3], inv_nb[4], u_hat, w, c,
                                                         opc), rtol=1e-10, what="inverse backward")


@pytest.mark.parametrize("N, D, K", [(1, 2, 1), (9, 3, 4), (50, 2, 6)])
def test_planar_chain_equals_the_layer_by_layer_transform_code(N, D, K, rng):
    u, w, b, constrain = planar_params(rng, K, D)
    u_hat, c, opc = kp.planar_u_hat_nb(u, w, constrain)
    z = rng.normal(size=(N, D))
    x, log_det, log_dets, zs, h = kp.planar_chain_forward_nb(z, u_hat, w, b, c, opc)
    p, caches, total = z, [], np.zeros(N)
    for k in range(K):
        p, ld, cache = P.planar_forward(p, u[k], w[k], b[k:k + 1], constrain=bool(constrain[k]))
        np.testing.assert_allclose(log_dets[k], ld, rtol=1e-12, atol=1e-14)
        caches.append(cache)
        total += ld
    np.testing.assert_allclose(x, p, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(log_det, total, rtol=1e-12, atol=1e-14)
    dx, dl = rng.normal(size=(N, D)), rng.normal(size=N)
    dz, du_hat, dw_direct, db, dc = kp.planar_chain_backward_nb(dx, dl, zs, h, u_hat, w, c, opc)
    du, dw = kp.planar_u_hat_backward_nb(du_hat, dc, u, w, constrain)
    g = dx
    for k in reversed(range(K)):
        g, grads = P.planar_backward(g, dl, caches[k])
        np.testing.assert_allclose(du[k], grads["u"], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(dw[k] + dw_direct[k], grads["w"], rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(db[k], grads["b"][0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dz, g, rtol=1e-10, atol=1e-12)


def test_planar_inverse_root_find_agrees_with_solve_planar_a(rng):
    # one layer per c, from far inside the constraint to close to it; y over a wide range
    for c_target in (-0.95, -0.5, 0.0, 0.7, 5.0):
        w = np.array([[1.0, 0.0]])
        u_hat = np.array([[c_target, 0.3]])
        c, opc = np.array([c_target]), np.array([1.0 + c_target])
        x = np.column_stack([rng.normal(size=200) * 4, rng.normal(size=200)])
        y = x[:, 0].copy()
        a = P.solve_planar_a(y, c_target, 1.0 + c_target)
        for fn in (kp.planar_chain_inverse_ref, kp.planar_chain_inverse_nb):
            z, *_, h, n_failed = fn(x, u_hat, w, np.zeros(1), c, opc, P.NEWTON_TOL, P.NEWTON_MAX_ITER)
            assert n_failed == 0
            np.testing.assert_allclose(h[0], np.tanh(a), rtol=0, atol=1e-13)
            np.testing.assert_allclose(z, x - np.tanh(a)[:, None] * u_hat[0], rtol=0, atol=1e-12)


def test_planar_inverse_passes_nan_through_and_counts_failures():
    u_hat, w = np.array([[0.5, 0.0]]), np.array([[1.0, 0.0]])
    c, opc, b = np.array([0.5]), np.array([1.5]), np.zeros(1)
    x = np.array([[np.nan, 1.0], [0.3, 0.2]])
    for fn in (kp.planar_chain_inverse_ref, kp.planar_chain_inverse_nb):
        z, *_, n_failed = fn(x, u_hat, w, b, c, opc, 1e-13, 100)
        assert n_failed == 0 and np.isnan(z[0]).all() and np.isfinite(z[1]).all()
        *_, n_failed = fn(np.array([[3.0, 0.0]]), u_hat, w, b, c, opc, 1e-300, 2)
        assert n_failed == 1


# ---------------------------------------------------------------------------------------------
# MLP
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("act", [0, 1, 2])
@pytest.mark.parametrize("N, I, H, O", [(1, 1, 64, 2), (7, 2, 5, 1), (64, 3, 17, 6), (33, 5, 64, 4)])
def test_mlp_kernel_twins(N, I, H, O, act, rng):
    x, W0, b0 = rng.normal(size=(N, I)), rng.normal(size=(I, H)), rng.normal(size=H)
    assert_twins(km.dense_small_in_forward_ref(x, W0, b0, act),
                 km.dense_small_in_forward_nb(x, W0, b0, act), what="dense_small_in_forward")
    pre = rng.normal(size=(N, H))
    assert_twins(km.bias_act_forward_ref(pre, b0, act), km.bias_act_forward_nb(pre, b0, act),
                 what="bias_act_forward")
    h = km.bias_act_forward_ref(pre, b0, act)
    dh = rng.normal(size=(N, H))
    assert_twins(km.act_backward_ref(dh, h, act), km.act_backward_nb(dh, h, act),
                 what="act_backward")
    dy, W2 = rng.normal(size=(N, O)), rng.normal(size=(H, O))
    assert_twins(km.dense_small_out_backward_ref(dy, h, W2, act),
                 km.dense_small_out_backward_nb(dy, h, W2, act), what="dense_small_out_backward")
    assert_twins(km.dense_small_in_backward_ref(dh, x, W0), km.dense_small_in_backward_nb(dh, x, W0),
                 what="dense_small_in_backward")
    assert_twins(km.act_small_in_backward_ref(dh, h, x, W0, act),
                 km.act_small_in_backward_nb(dh, h, x, W0, act), what="act_small_in_backward")


def test_mlp_refs_follow_nn(rng):
    from nfscratch import nn
    x, W, b = rng.normal(size=(5, 3)), rng.normal(size=(3, 8)), rng.normal(size=8)
    for name, code in km.ACT_CODES.items():
        fwd, _, _ = nn.ACTIVATIONS[name]
        want = fwd(x @ W + b)[0]
        np.testing.assert_allclose(km.dense_small_in_forward_ref(x, W, b, code), want, rtol=1e-14)


# ---------------------------------------------------------------------------------------------
# coupling
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("N", [1, 7, 64])
@pytest.mark.parametrize("D, ib", [(2, [1]), (2, [0]), (3, [1, 2]), (5, [0, 2, 4])])
def test_coupling_kernel_twins_both_directions(N, D, ib, rng):
    ib = np.array(ib, dtype=np.int64)
    d_b = ib.size
    z, out = rng.normal(size=(N, D)), 2.0 * rng.normal(size=(N, 2 * d_b))
    fwd = kc.affine_coupling_forward_ref(z, out, ib, 2.0)
    assert_twins(fwd, kc.affine_coupling_forward_nb(z, out, ib, 2.0), what="affine forward")
    dx, dl = rng.normal(size=(N, D)), rng.normal(size=N)
    assert_twins(kc.affine_coupling_backward_ref(dx, dl, z, ib, fwd[2], fwd[3]),
                 kc.affine_coupling_backward_nb(dx, dl, z, ib, fwd[2], fwd[3]), what="affine backward")
    inv = kc.affine_coupling_inverse_ref(fwd[0], out, ib, 2.0)
    assert_twins(inv, kc.affine_coupling_inverse_nb(fwd[0], out, ib, 2.0), what="affine inverse")
    np.testing.assert_allclose(inv[0], z, atol=1e-12)
    np.testing.assert_allclose(inv[1], -fwd[1], atol=1e-12)
    assert_twins(kc.affine_coupling_inverse_backward_ref(dx, dl, inv[0], ib, inv[2], inv[3]),
                 kc.affine_coupling_inverse_backward_nb(dx, dl, inv[0], ib, inv[2], inv[3]),
                 what="affine inverse backward")
    t = rng.normal(size=(N, d_b))
    for sign in (1.0, -1.0):
        assert_twins(kc.additive_coupling_ref(z, t, ib, sign), kc.additive_coupling_nb(z, t, ib, sign),
                     what="additive")
        assert_twins(kc.additive_coupling_backward_ref(dx, ib, sign),
                     kc.additive_coupling_backward_nb(dx, ib, sign), what="additive backward")


@pytest.mark.parametrize("N", [1, 7, 64])
def test_mlp_kernels_write_into_out(N, rng):
    x, W0, b0 = rng.normal(size=(N, 1)), rng.normal(size=(1, 9)), rng.normal(size=9)
    pre, dy, W2 = rng.normal(size=(N, 9)), rng.normal(size=(N, 2)), rng.normal(size=(9, 2))
    for twin in ("ref", "nb"):
        big = np.full((N + 3, 9), np.nan)               # rows of a larger array, as nn uses them
        out = big[2:2 + N]
        got = getattr(km, f"dense_small_in_forward_{twin}")(x, W0, b0, 0, out=out)
        assert got is out and np.isnan(big[:2]).all() and np.isnan(big[2 + N:]).all()
        assert_twins(km.dense_small_in_forward_ref(x, W0, b0, 0), out.copy())
        got = getattr(km, f"bias_act_forward_{twin}")(pre, b0, 0, out=out)
        assert got is out
        assert_twins(km.bias_act_forward_ref(pre, b0, 0), out.copy())
        res = getattr(km, f"dense_small_out_backward_{twin}")(dy, pre, W2, 0, out=out)
        assert res[0] is out
        assert_twins(km.dense_small_out_backward_ref(dy, pre, W2, 0), res)
        with pytest.raises(ValueError, match=f"^dense_small_in_forward_{twin}: out: expected shape"):
            getattr(km, f"dense_small_in_forward_{twin}")(x, W0, b0, 0, out=big)
        with pytest.raises(TypeError, match=f"^bias_act_forward_{twin}: out: expected dtype"):
            getattr(km, f"bias_act_forward_{twin}")(pre, b0, 0, out=out.astype(np.float32))


def test_check_mlp_refuses_weights_that_do_not_chain(rng):
    x = rng.normal(size=(5, 1))
    Ws, bs = [rng.normal(size=(1, 8)), rng.normal(size=(8, 2))], [np.zeros(8), np.zeros(2)]
    assert km.check_mlp("k", x, Ws, bs, 0) == 5
    with pytest.raises(ValueError, match=r"^k: W1.shape\[0\]: expected the width of the layer's "
                                         r"input = 8, got 7"):
        km.check_mlp("k", x, [Ws[0], rng.normal(size=(7, 2))], bs, 0)
    with pytest.raises(ValueError, match=r"^k: b0: expected shape"):
        km.check_mlp("k", x, Ws, [np.zeros(7), bs[1]], 0)
    with pytest.raises(TypeError, match=r"^k: W0: expected dtype float64"):
        km.check_mlp("k", x, [Ws[0].astype(np.float32), Ws[1]], bs, 0)


# ---------------------------------------------------------------------------------------------
# the energies U1-U4
# ---------------------------------------------------------------------------------------------
ENERGY_POINTS = np.array([[0.0, 0.0], [2.0, 0.0], [-2.0, 0.0], [1.0, -2.0], [30.0, -30.0],
                          [0.0, 25.0], [1.0, -40.0], [100.0, 3.0], [4.0, 4.0], [-4.5, 5.0],
                          [1e-300, -1e-300], [4.0 + 1e-12, -4.0 - 1e-12]])


@pytest.mark.parametrize("name", list(ke.ENERGY_CODES))
@pytest.mark.parametrize("N", [1, 7, 300])
def test_energy_kernels_equal_their_twins_in_datasets(name, N, rng):
    # the twin of each kernel is the readable NumPy energy in nfscratch.datasets.energies
    from nfscratch.datasets import energies as de
    code = ke.ENERGY_CODES[name]
    u_ref, g_ref = getattr(de, f"_{name.lower()}"), getattr(de, f"_{name.lower()}_grad")
    z = np.vstack([rng.normal(size=(N, 2)) * 2.5, ENERGY_POINTS])
    with np.errstate(over="ignore"):
        assert_twins(u_ref(z), ke.energy_nb(z, code), what=f"{name} energy")
        assert_twins(g_ref(z), ke.energy_grad_nb(z, code), what=f"{name} gradient")
    assert np.all(np.isfinite(ke.energy_nb(z, code))) and np.all(np.isfinite(ke.energy_grad_nb(z, code)))


@pytest.mark.parametrize("name", list(ke.ENERGY_CODES))
def test_energy_kernels_are_finite_far_out_like_their_twins(name):
    # where U overflows (|z_d| > ~4e153) both say inf, never NaN; the gradient stays finite
    from nfscratch.datasets import energies as de
    code = ke.ENERGY_CODES[name]
    z = np.array([[1e200, 1e200], [1e200, -3.0], [0.3, -1e200], [1e300, 0.0], [-1e306, 2e305],
                  [1e150, 1e-300], [5e-324, 0.0]])
    with np.errstate(over="ignore"):
        u_ref, g_ref = getattr(de, f"_{name.lower()}")(z), getattr(de, f"_{name.lower()}_grad")(z)
    u_nb, g_nb = ke.energy_nb(z, code), ke.energy_grad_nb(z, code)
    assert not np.any(np.isnan(u_nb)) and np.all(np.isfinite(g_nb))
    np.testing.assert_array_equal(np.isinf(u_nb), np.isinf(u_ref))
    assert_twins(g_ref, g_nb, what=f"{name} gradient far out")


def test_energy_kernels_keep_the_exact_zeros():
    # U1's gradient at the origin (the radial kink, symmetric bumps) and U2 at 0, as in NumPy
    np.testing.assert_array_equal(ke.energy_grad_nb(np.zeros((1, 2)), 1), 0.0)
    assert ke.energy_nb(np.zeros((1, 2)), 2)[0] == 0.0
    np.testing.assert_allclose(ke.energy_nb(np.array([[2.0, 0.0]]), 1),
                               -math.log1p(math.exp(-0.5 * (4 / 0.6) ** 2)), rtol=1e-15)


# ---------------------------------------------------------------------------------------------
# Adam
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 7, 1000])
def test_adam_twins_are_bit_identical_and_match_optim(n, rng):
    from nfscratch.config import use_backend
    from nfscratch.optim import Adam
    p, g, m, v = rng.normal(size=n), rng.normal(size=n), rng.normal(size=n), rng.random(n)
    a = [x.copy() for x in (p, g, m, v)]
    b = [x.copy() for x in (p, g, m, v)]
    ka.adam_update_ref(*a, 0.01, 0.9, 0.999, 1e-8, 1 - 0.9 ** 3, 1 - 0.999 ** 3)
    ka.adam_update_nb(*b, 0.01, 0.9, 0.999, 1e-8, 1 - 0.9 ** 3, 1 - 0.999 ** 3)
    for x, y in zip(a, b):
        assert np.array_equal(x, y)
    with use_backend("numpy"):
        params, opt = {"w": p.copy()}, Adam(0.01)
        opt.step(params, {"w": g})
    q, mq, vq = p.copy(), np.zeros(n), np.zeros(n)
    ka.adam_update_nb(q, g, mq, vq, 0.01, 0.9, 0.999, 1e-8, 1 - 0.9, 1 - 0.999)
    assert np.array_equal(q, params["w"])
    g[0] = np.nan
    assert ka.count_nonfinite_nb(g) == ka.count_nonfinite_ref(g) == 1


# ---------------------------------------------------------------------------------------------
# bad arguments are refused before any compiled code runs
# ---------------------------------------------------------------------------------------------
def _planar_args(rng, N=4, D=2, K=3):
    u, w, b, constrain = planar_params(rng, K, D)
    u_hat, c, opc = kp.planar_u_hat_ref(u, w, constrain)
    return rng.normal(size=(N, D)), u_hat, w, b, c, opc


def _bad_variants(arr):
    """(label, replacement) pairs that must all be refused."""
    if arr.dtype == np.int64:                     # index arrays and flags
        yield "float64", arr.astype(np.float64)
        yield "int32", arr.astype(np.int32)
    else:
        yield "float32", arr.astype(np.float32)
        yield "int64", arr.astype(np.int64)
    if arr.ndim >= 1 and arr.shape[-1] > 1:
        yield "non-contiguous", np.repeat(arr, 2, axis=-1)[..., ::2]
    yield "extra row", np.concatenate([arr, arr[:1]], axis=0)
    yield "wrong ndim", arr[None]
    yield "list", arr.tolist()


def _cases(rng):
    z, u_hat, w, b, c, opc = _planar_args(rng)
    fwd = kp.planar_chain_forward_ref(z, u_hat, w, b, c, opc)
    dx, dl = rng.normal(size=z.shape), rng.normal(size=z.shape[0])
    x, W0, b0 = rng.normal(size=(5, 1)), rng.normal(size=(1, 8)), rng.normal(size=8)
    h, W2, dy = rng.normal(size=(5, 8)), rng.normal(size=(8, 2)), rng.normal(size=(5, 2))
    zc, out, ib = rng.normal(size=(5, 2)), rng.normal(size=(5, 2)), np.array([1])
    e = np.ones((5, 1))
    p1 = rng.normal(size=6)
    return [
        ("planar_chain_forward", (z, u_hat, w, b, c, opc), kp, "_chain_forward"),
        ("planar_chain_backward", (dx, dl, fwd[3], fwd[4], u_hat, w, c, opc), kp, "_chain_backward"),
        ("planar_chain_inverse", (fwd[0], u_hat, w, b, c, opc, 1e-13, 100), kp, "_chain_inverse"),
        ("planar_u_hat", (u_hat, w, np.ones(3, dtype=np.int64)), kp, "_u_hat"),
        ("dense_small_in_forward", (x, W0, b0, 0), km, "_dense_small_in_forward"),
        ("bias_act_forward", (h, b0, 0), km, "_bias_act_forward"),
        ("act_backward", (h, h, 0), km, "_act_backward"),
        ("dense_small_out_backward", (dy, h, W2, 0), km, "_dense_small_out_backward"),
        ("dense_small_in_backward", (h, x, W0), km, "_dense_small_in_backward"),
        ("act_small_in_backward", (h, h, x, W0, 0), km, "_act_small_in_backward"),
        ("affine_coupling_forward", (zc, out, ib, 2.0), kc, "_affine_forward"),
        ("affine_coupling_backward", (zc, zc[:, 0].copy(), zc, ib, e, e), kc, "_affine_backward"),
        ("additive_coupling", (zc, e, ib, 1.0), kc, "_additive"),
        ("adam_update", (p1, p1.copy(), p1.copy(), p1.copy(), 0.1, 0.9, 0.999, 1e-8, 0.1, 0.001),
         ka, "_adam_update"),
        ("energy", (zc, 1), ke, "_energy"),
        ("energy_grad", (zc, 3), ke, "_energy_grad"),
    ]


FREE_BATCH = {"planar_chain_forward": (0,), "planar_chain_inverse": (0,),
              "dense_small_in_forward": (0,), "bias_act_forward": (0,), "energy": (0,),
              "energy_grad": (0,)}


def test_bad_arguments_are_refused_before_the_kernel_runs(rng, monkeypatch):
    def must_not_run(*args, **kwargs):
        raise AssertionError("the compiled kernel was entered with bad arguments")

    for name, args, module, jitted in _cases(rng):
        monkeypatch.setattr(module, jitted, must_not_run)
        for twin in ("ref", "nb"):
            fn = getattr(module, f"{name}_{twin}", None)
            if fn is None:          # a twin that lives in the readable module (the energies)
                continue
            for i, arg in enumerate(args):
                if not isinstance(arg, np.ndarray):
                    continue
                for label, bad in _bad_variants(arg):
                    bad_args = list(args)
                    bad_args[i] = bad
                    if label == "extra row" and i in FREE_BATCH.get(name, ()):
                        continue        # the only array that sets N: one more row is valid
                    with pytest.raises((TypeError, ValueError), match=f"^{name}_{twin}: ") as info:
                        fn(*bad_args)
                    assert "expected" in str(info.value) and "got" in str(info.value), \
                        f"{name}_{twin} arg {i} ({label}): {info.value}"


def test_index_arrays_out_of_range_are_refused(rng):
    z, out = rng.normal(size=(5, 2)), rng.normal(size=(5, 2))
    for ib in (np.array([2]), np.array([-1])):
        for fn in (kc.affine_coupling_forward_ref, kc.affine_coupling_forward_nb):
            with pytest.raises(ValueError, match=r"ib: expected indices in \[0, 2\)"):
                fn(z, out, ib, 2.0)
    with pytest.raises(ValueError, match="act: expected an activation code"):
        km.bias_act_forward_nb(z, np.zeros(2), 7)
    with pytest.raises(ValueError, match="s_max: expected a positive float"):
        kc.affine_coupling_forward_nb(z, out, np.array([1]), -1.0)
    with pytest.raises(TypeError, match="max_iter: expected a positive int"):
        kp.planar_chain_inverse_nb(*_planar_args(rng), 1e-13, 0)
    for which in (0, 5, 1.0, True):
        with pytest.raises(ValueError, match="which: expected an energy code"):
            ke.energy_nb(z, which)
    with pytest.raises(ValueError, match=r"energy_grad_nb: z.shape\[1\]: expected the dimension "
                                         r"of U1-U4 = 2, got 3"):
        ke.energy_grad_nb(rng.normal(size=(4, 3)), 1)


# ---------------------------------------------------------------------------------------------
# one buffer behind many parameter arrays
# ---------------------------------------------------------------------------------------------
def test_packed_view_recognizes_consecutive_views_only():
    buf = np.arange(12.0)
    a, b, c = buf[1:3], buf[3:9].reshape(2, 3), buf[9:10]
    view = packed_view([a, b, c])
    np.testing.assert_array_equal(view, buf[1:10])
    view[0] = -1.0                                  # the same memory as the arrays
    assert a[0] == -1.0
    assert packed_view([a, c]) is None              # a gap
    assert packed_view([b, a]) is None              # out of order
    assert packed_view([a, a]) is None              # the same array twice
    assert packed_view([a, np.zeros(6), c]) is None  # another buffer
    assert packed_view([buf[1:7:2]]) is None        # not contiguous
    assert packed_view([np.zeros(3)]) is None       # owns its data: no buffer to share
    assert packed_view([]) is None and packed_view([a.tolist()]) is None
    assert packed_view([np.arange(4)[:2]]) is None  # not float64


def test_error_message_names_argument_expected_and_received(rng):
    z, u_hat, w, b, c, opc = _planar_args(rng)
    with pytest.raises(ValueError, match=r"^planar_chain_forward_nb: w: expected shape \(K, D\) "
                                         r"like u_hat = \(3, 2\), got \(3, 3\)\.$"):
        kp.planar_chain_forward_nb(z, u_hat, np.ones((3, 3)), b, c, opc)
    with pytest.raises(TypeError, match=r"^planar_chain_forward_nb: z: expected dtype float64, got "
                                        r"C-contiguous float32 array of shape \(4, 2\)"):
        kp.planar_chain_forward_nb(z.astype(np.float32), u_hat, w, b, c, opc)
    assert math.isfinite(float(kp.planar_chain_forward_nb(z, u_hat, w, b, c, opc)[1][0]))
