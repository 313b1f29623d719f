"""Every kernel equals its NumPy twin; bad arguments are refused before any compiled code runs.

Each case builds random arguments (batch 1 and odd sizes, D in {1, 2, 3, 5}) and compares
``<name>_nb`` with its twin: the teaching function where one states the formula (the planar
chain against ``transforms.planar`` applied layer by layer, incl. ``solve_planar_a``; the
coupling kernels against ``transforms.coupling``'s elementwise steps; Adam against
``optim.adam_update``), else ``<name>_ref``. The MLP refs are tied to ``nn`` here and through
``tests/test_backend.py``.
"""
import math

import numpy as np
import pytest
from numba import njit

from nfscratch.kernels import adam as ka
from nfscratch.kernels import autoregressive as kar
from nfscratch.kernels import coupling as kc
from nfscratch.kernels import energies as ke
from nfscratch.kernels import mlp as km
from nfscratch.kernels import mlp_fused as kf
from nfscratch.kernels import planar as kp
from nfscratch.kernels._checks import packed_view
from nfscratch.kernels._math import EXP_MAX, exp_v, log1p_v, log_v, tanh_v
from nfscratch.gradcheck import perturb_params
from nfscratch.transforms import autoregressive as AR
from nfscratch.transforms import coupling as C
from nfscratch.transforms.made import MADE
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


def layer_by_layer(direction, p, u, w, b, constrain):
    """The twin of the chain kernels: the teaching file's per-layer functions, K times.

    Returns ``(out, log_det, log_dets (K, N), points (K, D, N), h (K, N), caches)`` laid out as
    the kernels lay them out (``points[k]`` is layer k's input in the direction of the pass).
    """
    K, N = u.shape[0], p.shape[0]
    step = P.planar_forward if direction == "forward" else P.planar_inverse
    caches, log_dets, total = [None] * K, np.empty((K, N)), np.zeros(N)
    for k in (range(K) if direction == "forward" else reversed(range(K))):
        p, log_dets[k], caches[k] = step(p, u[k], w[k], b[k:k + 1], constrain=bool(constrain[k]))
        total += log_dets[k]
    key = "z" if direction == "forward" else "x"
    points = np.stack([c[key].T for c in caches])
    return p, total, log_dets, points, np.stack([c["h"] for c in caches]), caches


def backward_layer_by_layer(direction, d_out, dlog_det, caches):
    """``(d_in, du, dw, db)``: the per-layer backward functions, in the reverse of the pass."""
    K = len(caches)
    back = P.planar_backward if direction == "forward" else P.planar_inverse_backward
    grads = [None] * K
    for k in (reversed(range(K)) if direction == "forward" else range(K)):
        d_out, grads[k] = back(d_out, dlog_det, caches[k])
    return (d_out, np.stack([g["u"] for g in grads]), np.stack([g["w"] for g in grads]),
            np.concatenate([g["b"] for g in grads]))


@pytest.mark.parametrize("N, D, K", SHAPES)
def test_planar_chain_kernels_equal_the_layer_by_layer_transform_code(N, D, K, rng):
    u, w, b, constrain = planar_params(rng, K, D)
    u_hat, c, opc = kp.planar_u_hat_nb(u, w, constrain)
    for k in range(K):                                  # u_hat: planar_u_hat row by row
        assert_twins(P.planar_u_hat(u[k], w[k], bool(constrain[k]))[:3], (u_hat[k], c[k], opc[k]),
                     what="u_hat")
    du_hat, dc = rng.normal(size=(K, D)), rng.normal(size=K)
    du, dw = kp.planar_u_hat_backward_nb(du_hat, dc, u, w, constrain)
    for k in range(K):
        uh_cache = P.planar_u_hat(u[k], w[k], bool(constrain[k]))[3]
        assert_twins(P._u_hat_backward(du_hat[k], dc[k], uh_cache), (du[k], dw[k]),
                     rtol=1e-10, what="u_hat backward")
    z = rng.normal(size=(N, D))
    dx, dl = rng.normal(size=(N, D)), rng.normal(size=N)
    fwd = kp.planar_chain_forward_nb(z, u_hat, w, b, c, opc)
    *want, caches = layer_by_layer("forward", z, u, w, b, constrain)
    assert_twins(tuple(want), fwd, what="forward")
    dz, du_hat, dw_direct, db, dc = kp.planar_chain_backward_nb(dx, dl, fwd[3], fwd[4], u_hat, w, c, opc)
    du, dw = kp.planar_u_hat_backward_nb(du_hat, dc, u, w, constrain)
    assert_twins(backward_layer_by_layer("forward", dx, dl, caches), (dz, du, dw + dw_direct, db),
                 rtol=1e-10, what="backward")
    inv = kp.planar_chain_inverse_nb(fwd[0], u_hat, w, b, c, opc, P.NEWTON_TOL, P.NEWTON_MAX_ITER)
    assert inv[5] == 0
    *want, caches = layer_by_layer("inverse", fwd[0], u, w, b, constrain)
    assert_twins(tuple(want), inv[:5], rtol=1e-11, what="inverse")
    np.testing.assert_allclose(inv[0], z, atol=1e-10)
    np.testing.assert_allclose(inv[1], -fwd[1], atol=1e-10)
    dx_, du_hat, dw_direct, db, dc = kp.planar_chain_inverse_backward_nb(dx, dl, inv[3], inv[4],
                                                                         u_hat, w, c, opc)
    du, dw = kp.planar_u_hat_backward_nb(du_hat, dc, u, w, constrain)
    assert_twins(backward_layer_by_layer("inverse", dx, dl, caches), (dx_, du, dw + dw_direct, db),
                 rtol=1e-10, what="inverse backward")


def test_planar_inverse_root_find_agrees_with_solve_planar_a(rng):
    # one layer per c, from far inside the constraint to close to it; y over a wide range
    for c_target in (-0.95, -0.5, 0.0, 0.7, 5.0):
        w = np.array([[1.0, 0.0]])
        u_hat = np.array([[c_target, 0.3]])
        c, opc = np.array([c_target]), np.array([1.0 + c_target])
        x = np.column_stack([rng.normal(size=200) * 4, rng.normal(size=200)])
        y = x[:, 0].copy()
        a = P.solve_planar_a(y, c_target, 1.0 + c_target)
        z, *_, h, n_failed = kp.planar_chain_inverse_nb(x, u_hat, w, np.zeros(1), c, opc,
                                                        P.NEWTON_TOL, P.NEWTON_MAX_ITER)
        assert n_failed == 0
        np.testing.assert_allclose(h[0], np.tanh(a), rtol=0, atol=1e-13)
        np.testing.assert_allclose(z, x - np.tanh(a)[:, None] * u_hat[0], rtol=0, atol=1e-12)


def test_planar_inverse_passes_nan_through_and_counts_failures():
    u_hat, w = np.array([[0.5, 0.0]]), np.array([[1.0, 0.0]])
    c, opc, b = np.array([0.5]), np.array([1.5]), np.zeros(1)
    x = np.array([[np.nan, 1.0], [0.3, 0.2]])
    z, *_, n_failed = kp.planar_chain_inverse_nb(x, u_hat, w, b, c, opc, 1e-13, 100)
    assert n_failed == 0 and np.isnan(z[0]).all() and np.isfinite(z[1]).all()
    *_, n_failed = kp.planar_chain_inverse_nb(np.array([[3.0, 0.0]]), u_hat, w, b, c, opc, 1e-300, 2)
    assert n_failed == 1


def test_planar_kernels_refuse_a_layer_that_is_not_invertible(rng):
    # c < -1: the map folds over itself; the inverse used to "converge" to one of several roots
    z, u_hat, w, b, c, opc = _planar_args(rng)
    c[1], opc[1] = -1.5, -0.5
    for fn, args in ((kp.planar_chain_forward_nb, (z, u_hat, w, b, c, opc)),
                     (kp.planar_chain_inverse_nb, (z, u_hat, w, b, c, opc, 1e-13, 100))):
        with pytest.raises(ValueError, match=r"c: expected every layer's c = w.u_hat > -1 .* "
                                             r"got c\[1\] = -1.5"):
            fn(*args)


def test_planar_iteration_counts_and_tolerances_are_checked(rng):
    args = _planar_args(rng)
    for max_iter, err in ((2**70, ValueError), (0, ValueError), (1.5, TypeError), (True, TypeError)):
        with pytest.raises(err, match=r"max_iter: expected"):
            kp.planar_chain_inverse_nb(*args, 1e-13, max_iter)
        with pytest.raises(err, match=r"^max_iter: expected"):
            P.solve_planar_a(np.zeros(3), 0.5, max_iter=max_iter)
    for tol in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=r"tol: expected a positive finite number"):
            kp.planar_chain_inverse_nb(*args, tol, 100)
        with pytest.raises(ValueError, match=r"^tol: expected a positive finite number"):
            P.solve_planar_a(np.zeros(3), 0.5, tol=tol)


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


@pytest.mark.parametrize("act", [0, 1, 2])
@pytest.mark.parametrize("N, I, H1, H2, O", [(1, 1, 64, 64, 2), (7, 2, 5, 3, 1), (33, 3, 17, 9, 4),
                                            (70, 1, 64, 64, 2)])
def test_fused_mlp_kernels_equal_nn(N, I, H1, H2, O, act, rng):
    # the twins are the teaching MLP's forward and backward (blocks of kf.ROWS rows: N = 70
    # ends in a partial block, H1 = 5 and 17 in partial register tiles)
    from nfscratch import nn
    sizes = (I, H1, H2, O)
    p = {}
    for i in range(3):
        p[f"W{i}"], p[f"b{i}"] = rng.normal(size=sizes[i:i + 2]), rng.normal(size=sizes[i + 1])
    x, dy = rng.normal(size=(N, I)), rng.normal(size=(N, O))
    name = [k for k, v in km.ACT_CODES.items() if v == act][0]
    y, cache = nn.mlp_forward(x, p, name)
    dx, grads = nn.mlp_backward(dy, cache)
    hidden = [cache[0][i + 1][0][0] for i in range(2)]          # the inputs of layers 1 and 2
    got = kf.mlp3_forward_nb(x, p["W0"], p["b0"], p["W1"], p["b1"], p["W2"], p["b2"], act)
    assert_twins((y, *hidden), got, what="mlp3_forward")
    assert_twins((dx, grads["W0"], grads["b0"], grads["W1"], grads["b1"], grads["W2"], grads["b2"]),
                 kf.mlp3_backward_nb(dy, x, got[1], got[2], p["W0"], p["W1"], p["W2"], act),
                 what="mlp3_backward")


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
@pytest.mark.parametrize("D, ib", [(2, [1]), (2, [0]), (3, [1, 2]), (5, [0, 2, 4]), (4, [3, 0])])
def test_coupling_kernel_twins_both_directions(N, D, ib, rng):
    # the twins are the elementwise steps of the teaching file
    ib = np.array(ib, dtype=np.int64)
    d_b = ib.size
    z, out = rng.normal(size=(N, D)), 2.0 * rng.normal(size=(N, 2 * d_b))
    fwd = C.affine_elementwise_forward(z, out, ib, 2.0)
    assert_twins(fwd, kc.affine_elementwise_forward_nb(z, out, ib, 2.0), what="affine forward")
    dx, dl = rng.normal(size=(N, D)), rng.normal(size=N)
    assert_twins(C.affine_elementwise_backward(dx, dl, z, ib, fwd[2], fwd[3]),
                 kc.affine_elementwise_backward_nb(dx, dl, z, ib, fwd[2], fwd[3]),
                 what="affine backward")
    inv = C.affine_elementwise_inverse(fwd[0], out, ib, 2.0)
    assert_twins(inv, kc.affine_elementwise_inverse_nb(fwd[0], out, ib, 2.0), what="affine inverse")
    np.testing.assert_allclose(inv[0], z, atol=1e-12)
    np.testing.assert_allclose(inv[1], -fwd[1], atol=1e-12)
    assert_twins(C.affine_elementwise_inverse_backward(dx, dl, inv[0], ib, inv[2], inv[3]),
                 kc.affine_elementwise_inverse_backward_nb(dx, dl, inv[0], ib, inv[2], inv[3]),
                 what="affine inverse backward")
    t = rng.normal(size=(N, d_b))
    for sign in (1.0, -1.0):
        assert_twins(C.additive_elementwise(z, t, ib, sign),
                     kc.additive_elementwise_nb(z, t, ib, sign), what="additive")
        assert_twins(C.additive_elementwise_backward(dx, ib, sign),
                     kc.additive_elementwise_backward_nb(dx, ib, sign), what="additive backward")


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


def test_the_mlp_kernel_path_refuses_weights_that_do_not_chain(rng):
    from nfscratch import _nn_fast
    x = rng.normal(size=(5, 1))
    params = {"W0": rng.normal(size=(1, 8)), "b0": np.zeros(8), "W1": rng.normal(size=(8, 2)),
              "b1": np.zeros(2)}
    assert _nn_fast.mlp_forward(x, params, "tanh")[0].shape == (5, 2)
    with pytest.raises(ValueError, match=r"^mlp_forward: W1.shape\[0\]: expected the width of "
                                         r"the layer's input = 8, got 7"):
        _nn_fast.mlp_forward(x, dict(params, W1=rng.normal(size=(7, 2))), "tanh")
    with pytest.raises(ValueError, match=r"^mlp_forward: b0: expected shape"):
        _nn_fast.mlp_forward(x, dict(params, b0=np.zeros(7)), "tanh")
    with pytest.raises(TypeError, match=r"^mlp_forward: W0: expected dtype float64"):
        _nn_fast.mlp_forward(x, dict(params, W0=params["W0"].astype(np.float32)), "tanh")
    y, cache = _nn_fast.mlp_forward(x, params, "tanh")
    for bad in (np.ones((4, 2)), np.ones((6, 2)), np.ones((5, 3))):
        with pytest.raises(ValueError, match=r"^mlp_backward: dy: expected shape \(5, 2\)"):
            _nn_fast.mlp_backward(bad, cache)
    with pytest.raises(TypeError, match=r"^mlp_backward: dy: expected dtype float64"):
        _nn_fast.mlp_backward(np.ones((5, 2), dtype=np.float32), cache)
    assert set(_nn_fast.KERNEL_ACTIVATIONS) == set(km.ACT_CODES)


# ---------------------------------------------------------------------------------------------
# the energies U1-U4
# ---------------------------------------------------------------------------------------------
ENERGY_POINTS = np.array([[0.0, 0.0], [2.0, 0.0], [-2.0, 0.0], [1.0, -2.0], [30.0, -30.0],
                          [0.0, 25.0], [1.0, -40.0], [100.0, 3.0], [4.0, 4.0], [-4.5, 5.0],
                          [1e-300, -1e-300], [4.0 + 1e-12, -4.0 - 1e-12]])


# ---------------------------------------------------------------------------------------------
# the sequential direction of MAF/IAF and its backward
# ---------------------------------------------------------------------------------------------
AR_CASES = [(2, [8], "tanh", "cyclic", 5), (5, [7, 9], "relu", "random", 600),
            (3, [], "tanh", "cyclic", 3), (8, [16, 16, 16], "leaky_relu", "random", 257),
            (16, [20], "tanh", "cyclic", 1)]


def _made(rng, D, hidden, activation, hidden_degrees):
    return perturb_params(MADE(D, hidden, k=2, order="random", hidden_degrees=hidden_degrees,
                               activation=activation, rng=rng, seed=D), rng)


@pytest.mark.parametrize("D, hidden, activation, hidden_degrees, N", AR_CASES)
def test_maf_forward_backward_kernel_equals_the_teaching_back_substitution(
        D, hidden, activation, hidden_degrees, N, rng):
    net = _made(rng, D, hidden, activation, hidden_degrees)
    W_last = f"W{len(hidden)}"
    net.params[W_last][:, 0] = 0.0   # zero weights that exist still have gradients
    weights, sizes = kar.pack_made(net.params, net.masks)
    u = rng.normal(size=(N, D))
    dx, dlog_det = rng.normal(size=(N, D)), rng.normal(size=N)
    _, _, cache = AR.iaf_forward(u, net.params, net.masks, activation, 1.5)
    dz_ref, grads_ref = AR.iaf_inverse_backward(dx, dlog_det, {**cache, "order": net.order})
    dz, dweights = kar.maf_forward_backward_nb(
        dx, dlog_det, u, weights, kar.pack_masks(net.masks), sizes,
        kar.unit_degrees(net.masks, net.order), net.order, km.ACT_CODES[activation], 1.5)
    assert_twins(dz_ref, dz, what="dz")
    grads = kar.unpack_made(dweights, sizes)
    assert set(grads) == set(grads_ref)
    for key in grads:
        assert_twins(grads_ref[key], grads[key], what=key)
    assert np.any(grads[W_last][:, 0] != 0.0) or not net.masks[-1][:, 0].any()


def test_unit_degrees_schedule_custom_masks_the_nominal_degrees_would_not(rng):
    # a hidden unit whose nominal degree (1) is lower than an input it reads through a custom
    # mask (feature 1, degree 2): the unit may feed only feature 2, and the kernels must not
    # compute it before feature 1 is known
    order = np.arange(3)
    M0 = np.array([[1, 1], [1, 0], [0, 0]], dtype=float)         # unit 0 reads features 0 and 1
    M1 = np.array([[0, 0, 1, 0, 0, 1], [0, 1, 1, 0, 1, 1]], dtype=float)
    net = perturb_params(MADE(3, [2], k=2, masks=[M0, M1], rng=rng), rng)
    assert kar.unit_degrees(net.masks, order).tolist() == [2, 1]
    z = rng.normal(size=(4, 3))
    x_ref, ld_ref, _ = AR.iaf_inverse(z, net.params, net.masks, order, "tanh", 2.0)
    weights, sizes = kar.pack_made(net.params, net.masks)
    x, ld = kar.maf_forward_nb(z, weights, sizes, kar.unit_degrees(net.masks, order), order, 0,
                               2.0)
    assert_twins(x_ref, x, what="x")
    assert_twins(ld_ref, ld, what="log_det")


@pytest.mark.parametrize("cls_name", ["MAF", "IAF"])
def test_the_sequential_direction_trains_the_same_on_both_backends(cls_name, rng):
    from nfscratch import use_backend
    from nfscratch import transforms
    layer = perturb_params(getattr(transforms, cls_name)(4, hidden=[6, 6], order="random",
                                                          rng=rng, seed=2), rng)
    p = rng.normal(size=(9, 4))
    d_out, dlog_det = rng.normal(size=(9, 4)), rng.normal(size=9)
    direction = "forward" if cls_name == "MAF" else "inverse"
    results = {}
    for backend in ("numpy", "numba"):
        with use_backend(backend):
            out, log_det = getattr(layer, direction)(p)
            back = layer.backward if direction == "forward" else layer.inverse_backward
            d_in = back(d_out, dlog_det)
            results[backend] = (out, log_det, d_in, {k: v.copy() for k, v in layer.grads.items()})
    (o1, l1, d1, g1), (o2, l2, d2, g2) = results["numpy"], results["numba"]
    for a, b, what in [(o1, o2, "out"), (l1, l2, "log_det"), (d1, d2, "d_in")]:
        assert_twins(a, b, what=what)
    for key in g1:
        assert_twins(g1[key], g2[key], what=key)


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
def test_adam_kernels_are_bit_identical_to_optim_adam_update(n, rng):
    from nfscratch.optim import adam_update
    p, g, m, v = rng.normal(size=n), rng.normal(size=n), rng.normal(size=n), rng.random(n)
    a = [x.copy() for x in (p, g, m, v)]
    b = [x.copy() for x in (p, g, m, v)]
    adam_update(*a, 0.01, 0.9, 0.999, 1e-8, 1 - 0.9 ** 3, 1 - 0.999 ** 3)
    ka.adam_update_nb(*b, 0.01, 0.9, 0.999, 1e-8, 1 - 0.9 ** 3, 1 - 0.999 ** 3)
    for x, y in zip(a, b):
        assert np.array_equal(x, y)
    # the group kernel: its twin is adam_update on each array in turn
    sizes = [n, 3, 1]
    ps = [rng.normal(size=k) for k in sizes]
    g_all, m_all, v_all = (rng.normal(size=sum(sizes)), rng.normal(size=sum(sizes)),
                           rng.random(sum(sizes)))
    offsets = np.zeros(ka.GROUP, dtype=np.int64)
    offsets[:3] = np.cumsum([0] + sizes[:-1])
    want = [(q.copy(), m_all[o:o + q.size].copy(), v_all[o:o + q.size].copy())
            for q, o in zip(ps, offsets)]
    for (q, mq, vq), o in zip(want, offsets):
        adam_update(q, g_all[o:o + q.size], mq, vq, 0.01, 0.9, 0.999, 1e-8, 1 - 0.9 ** 2,
                    1 - 0.999 ** 2)
    ka.adam_update_group_nb(tuple(ps) + (ka.EMPTY,) * (ka.GROUP - 3), g_all, m_all, v_all,
                            offsets, 0.01, 0.9, 0.999, 1e-8, 1 - 0.9 ** 2, 1 - 0.999 ** 2)
    for q, (qw, mw, vw), o in zip(ps, want, offsets):
        assert np.array_equal(q, qw)
        assert np.array_equal(m_all[o:o + q.size], mw) and np.array_equal(v_all[o:o + q.size], vw)
    g[0] = np.nan
    assert ka.count_nonfinite_nb(g) == ka.count_nonfinite_ref(g) == 1


# ---------------------------------------------------------------------------------------------
# bad arguments are refused before any compiled code runs
# ---------------------------------------------------------------------------------------------
def _planar_args(rng, N=4, D=2, K=3):
    u, w, b, constrain = planar_params(rng, K, D)
    u_hat, c, opc = kp.planar_u_hat_nb(u, w, constrain)
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
    fwd = kp.planar_chain_forward_nb(z, u_hat, w, b, c, opc)
    inv = kp.planar_chain_inverse_nb(fwd[0], u_hat, w, b, c, opc, 1e-13, 100)
    dx, dl = rng.normal(size=z.shape), rng.normal(size=z.shape[0])
    zc = rng.normal(size=(5, 2))
    flags = np.ones(3, dtype=np.int64)
    return [
        ("planar_chain_forward", (z, u_hat, w, b, c, opc), kp, "_chain_forward"),
        ("planar_chain_backward", (dx, dl, fwd[3], fwd[4], u_hat, w, c, opc), kp, "_chain_backward"),
        ("planar_chain_inverse", (fwd[0], u_hat, w, b, c, opc, 1e-13, 100), kp, "_chain_inverse"),
        ("planar_chain_inverse_backward", (dx, dl, inv[3], inv[4], u_hat, w, c, opc), kp,
         "_chain_inverse_backward"),
        ("planar_u_hat", (u_hat, w, flags), kp, "_u_hat"),
        ("planar_u_hat_backward", (u_hat.copy(), c.copy(), u_hat, w, flags), kp, "_u_hat_backward"),
        ("energy", (zc, 1), ke, "_energy"),
        ("energy_grad", (zc, 3), ke, "_energy_grad"),
    ]


FREE_BATCH = {"planar_chain_forward": (0,), "planar_chain_inverse": (0,), "energy": (0,),
              "energy_grad": (0,)}


def test_bad_arguments_are_refused_before_the_kernel_runs(rng, monkeypatch):
    _assert_refused(_cases(rng), ("ref", "nb"), monkeypatch, FREE_BATCH)


def _assert_refused(cases, twins, monkeypatch, free_batch):
    def must_not_run(*args, **kwargs):
        raise AssertionError("the compiled kernel was entered with bad arguments")

    for name, args, module, jitted in cases:
        monkeypatch.setattr(module, jitted, must_not_run)
        for twin in twins:
            fn = getattr(module, f"{name}_{twin}", None)
            if fn is None:      # a twin that is a teaching function lives elsewhere
                continue
            for i, arg in enumerate(args):
                if not isinstance(arg, np.ndarray):
                    continue
                for label, bad in _bad_variants(arg):
                    bad_args = list(args)
                    bad_args[i] = bad
                    if label == "extra row" and i in free_batch.get(name, ()):
                        continue        # the only array that sets N: one more row is valid
                    with pytest.raises((TypeError, ValueError), match=f"^{name}_{twin}: ") as info:
                        fn(*bad_args)
                    assert "expected" in str(info.value) and "got" in str(info.value), \
                        f"{name}_{twin} arg {i} ({label}): {info.value}"


def _my_cases(rng):
    """The MLP, coupling and Adam kernels: (name, args, module, compiled function)."""
    x, W0, b0 = rng.normal(size=(5, 1)), rng.normal(size=(1, 8)), rng.normal(size=8)
    h, W2, dy = rng.normal(size=(5, 8)), rng.normal(size=(8, 2)), rng.normal(size=(5, 2))
    zc, out, ib = rng.normal(size=(5, 3)), rng.normal(size=(5, 4)), np.array([2, 0])
    e, t = np.ones((5, 2)), rng.normal(size=(5, 2))
    p1 = rng.normal(size=6)
    W1f, b1f, W2f, h2f = rng.normal(size=(8, 6)), rng.normal(size=6), rng.normal(size=(6, 2)), \
        rng.normal(size=(5, 6))                       # the fused MLP's 1 -> 8 -> 6 -> 2
    group = (p1.copy(),) + (ka.EMPTY,) * (ka.GROUP - 1)
    return [
        ("dense_small_in_forward", (x, W0, b0, 0), km, "_dense_small_in_forward"),
        ("bias_act_forward", (h, b0, 0), km, "_bias_act_forward"),
        ("act_backward", (h, h, 0), km, "_act_backward"),
        ("dense_small_out_backward", (dy, h, W2, 0), km, "_dense_small_out_backward"),
        ("dense_small_in_backward", (h, x, W0), km, "_dense_small_in_backward"),
        ("act_small_in_backward", (h, h, x, W0, 0), km, "_act_small_in_backward"),
        ("affine_elementwise_forward", (zc, out, ib, 2.0), kc, "_affine_elementwise_forward"),
        ("affine_elementwise_inverse", (zc, out, ib, 2.0), kc, "_affine_elementwise_forward"),
        ("affine_elementwise_backward", (zc, zc[:, 0].copy(), zc, ib, e, e), kc,
         "_affine_elementwise_backward"),
        ("affine_elementwise_inverse_backward", (zc, zc[:, 0].copy(), zc, ib, e, e), kc,
         "_affine_elementwise_backward"),
        ("additive_elementwise", (zc, t, ib, 1.0), kc, "_additive_elementwise"),
        ("additive_elementwise_backward", (zc, ib, -1.0), kc, "_additive_elementwise_backward"),
        ("adam_update", (p1, p1.copy(), p1.copy(), p1.copy(), 0.1, 0.9, 0.999, 1e-8, 0.1, 0.001),
         ka, "_adam_update"),
        ("adam_update_group", (group, p1.copy(), p1.copy(), p1.copy(),
                               np.zeros(ka.GROUP, dtype=np.int64), 0.1, 0.9, 0.999, 1e-8, 0.1,
                               0.001), ka, "_adam_update_group"),
        ("count_nonfinite", (p1,), ka, "_count_nonfinite"),
        ("maf_forward", _maf_forward_args(rng), kar, "_maf_forward"),
        ("maf_forward_backward", _made_args(rng), kar, "_maf_forward_backward"),
        ("mlp3_forward", (x, W0, b0, W1f, b1f, W2f, rng.normal(size=2), 0), kf, "_mlp3_forward"),
        ("mlp3_backward", (dy, x, h, h2f, W0, W1f, W2f, 0), kf, "_mlp3_backward"),
    ]


def _made_args(rng, N=5, D=3):
    """Arguments of ``maf_forward_backward_nb``: (dx, dlog_det, u, weights, masks, sizes,
    hidden_deg, order, act, s_max)."""
    net = MADE(D, [4], k=2, rng=0)
    weights, sizes = kar.pack_made(net.params, net.masks)
    return (rng.normal(size=(N, D)), rng.normal(size=N), rng.normal(size=(N, D)), weights,
            kar.pack_masks(net.masks), sizes, kar.unit_degrees(net.masks, net.order), net.order,
            0, 1.5)


def _maf_forward_args(rng):
    dx, dlog_det, u, weights, masks, sizes, hidden_deg, order, act, s_max = _made_args(rng)
    return u, weights, sizes, hidden_deg, order, act, s_max


MY_FREE_BATCH = {"dense_small_in_forward": (0,), "bias_act_forward": (0,), "maf_forward": (0,),
                 "mlp3_forward": (0,),
                 "additive_elementwise_backward": (0,), "count_nonfinite": (0,)}


def test_mlp_coupling_and_adam_kernels_refuse_every_bad_array(rng, monkeypatch):
    # every array argument, every way wrong (dtype, layout, one row too many, ndim, a list):
    # refused by the checked entry before the compiled function is entered
    for name, args, module, _ in _my_cases(rng):
        getattr(module, f"{name}_nb")(*args)        # the good arguments pass
    _assert_refused(_my_cases(rng), ("nb",), monkeypatch, MY_FREE_BATCH)


def test_mismatched_shapes_are_refused_one_argument_at_a_time(rng, monkeypatch):
    # issue 9 item 1: each array's shape against every other's (here: one row or column short)
    def must_not_run(*args, **kwargs):
        raise AssertionError("the compiled kernel was entered with mismatched shapes")

    for name, args, module, jitted in _my_cases(rng):
        monkeypatch.setattr(module, jitted, must_not_run)
        fn = getattr(module, f"{name}_nb")
        for i, arg in enumerate(args):
            if not isinstance(arg, np.ndarray) or arg.ndim == 0 or arg.dtype != np.float64:
                continue
            for axis in range(arg.ndim):
                if arg.shape[axis] < 2 or (axis == 0 and i in MY_FREE_BATCH.get(name, ())):
                    continue
                short = np.ascontiguousarray(np.delete(arg, 0, axis=axis))
                bad_args = list(args)
                bad_args[i] = short
                with pytest.raises(ValueError, match=f"^{name}_nb: .*expected.*got"):
                    fn(*bad_args)


def test_read_only_outputs_are_refused_clearly(rng):
    x, W0, b0 = rng.normal(size=(5, 1)), rng.normal(size=(1, 8)), rng.normal(size=8)
    out = np.empty((5, 8))
    out.flags.writeable = False
    with pytest.raises(ValueError, match=r"^dense_small_in_forward_nb: out: expected a writeable "
                                         r"array .* got a read-only"):
        km.dense_small_in_forward_nb(x, W0, b0, 0, out=out)
    p, g, m, v = (rng.normal(size=4) for _ in range(4))
    for k, name in ((0, "p"), (2, "m"), (3, "v")):
        args = [p.copy(), g.copy(), m.copy(), v.copy()]
        args[k].flags.writeable = False
        with pytest.raises(ValueError, match=f"^adam_update_nb: {name}: expected a writeable"):
            ka.adam_update_nb(*args, 0.1, 0.9, 0.999, 1e-8, 0.1, 0.001)
    ro = p.copy()
    ro.flags.writeable = False
    with pytest.raises(ValueError, match=r"^adam_update_group_nb: ps\[0\]: expected a writeable"):
        ka.adam_update_group_nb((ro,) + (ka.EMPTY,) * (ka.GROUP - 1), g, m.copy(), v.copy(),
                                np.zeros(ka.GROUP, dtype=np.int64), 0.1, 0.9, 0.999, 1e-8, 0.1,
                                0.001)


@pytest.mark.parametrize("name, value, pattern", [
    ("lr", float("nan"), "a finite positive learning rate, got nan"),
    ("lr", float("inf"), "a finite positive learning rate, got inf"),
    ("lr", 0.0, "a finite positive learning rate, got 0.0"),
    ("lr", 1, r"a finite positive learning rate as a Python float, got 1 \(int\)"),
    ("beta1", 1.0, r"a number in \[0, 1\), got 1.0"),
    ("beta2", float("nan"), r"a number in \[0, 1\), got nan"),
    ("eps", -1e-8, "a finite positive epsilon"),
    ("bias1", 0.0, r"a bias correction 1 - beta\^t in \(0, 1\], got 0.0"),
    ("bias2", 1.5, r"a bias correction"),
])
def test_adam_kernels_refuse_scalars_that_would_make_nan(name, value, pattern, rng):
    scalars = dict(lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8, bias1=0.1, bias2=0.001)
    scalars[name] = value
    p, g, m, v = (rng.normal(size=4) for _ in range(4))
    before = p.copy()
    with pytest.raises((ValueError, TypeError), match=f"^adam_update_nb: {name}: expected {pattern}"):
        ka.adam_update_nb(p, g, m, v, *scalars.values())
    with pytest.raises((ValueError, TypeError), match=f"^adam_update_group_nb: {name}: expected"):
        ka.adam_update_group_nb((p,) + (ka.EMPTY,) * (ka.GROUP - 1), g, m, v,
                                np.zeros(ka.GROUP, dtype=np.int64), *scalars.values())
    assert np.array_equal(p, before)
    ka.adam_update_nb(p, g, m, v, *dict(scalars, **{name: 0.5 if name != "eps" else 1e-8}).values())


def test_index_arrays_out_of_range_or_repeated_are_refused(rng):
    z, out = rng.normal(size=(5, 2)), rng.normal(size=(5, 2))
    for ib in (np.array([2]), np.array([-1])):
        with pytest.raises(ValueError, match=r"ib: expected indices in \[0, 2\)"):
            kc.affine_elementwise_forward_nb(z, out, ib, 2.0)
    z3 = rng.normal(size=(5, 3))
    dup = np.array([1, 1])
    with pytest.raises(ValueError, match=r"^affine_elementwise_forward_nb: ib: expected distinct "
                                         r"indices, got 1 repeated in \[1, 1\]"):
        kc.affine_elementwise_forward_nb(z3, rng.normal(size=(5, 4)), dup, 2.0)
    with pytest.raises(ValueError, match=r"ib: expected distinct indices"):
        kc.additive_elementwise_nb(z3, rng.normal(size=(5, 2)), dup, 1.0)
    with pytest.raises(ValueError, match=r"ib: expected distinct indices"):
        kc.additive_elementwise_backward_nb(z3, dup, 1.0)
    many = np.r_[np.arange(20), 3].astype(np.int64)            # past the small-list fast path
    with pytest.raises(ValueError, match=r"ib: expected distinct indices"):
        kc.additive_elementwise_backward_nb(rng.normal(size=(2, 30)), many, 1.0)
    with pytest.raises(ValueError, match="act: expected an activation code"):
        km.bias_act_forward_nb(z, np.zeros(2), 7)
    for s_max in (-1.0, 0.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match=r"s_max: expected a finite positive bound on \|s\|"):
            kc.affine_elementwise_forward_nb(z, out, np.array([1]), s_max)
        with pytest.raises(ValueError, match=r"s_max: expected a finite positive bound"):
            kc.affine_elementwise_inverse_nb(z, out, np.array([1]), s_max)
    with pytest.raises(TypeError, match=r"s_max: expected a finite positive bound on \|s\| as a "
                                        r"Python float, got '2'"):
        kc.affine_elementwise_forward_nb(z, out, np.array([1]), "2")
    with pytest.raises((TypeError, ValueError), match="max_iter: expected a positive int"):
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
