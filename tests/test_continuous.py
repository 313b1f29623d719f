"""Continuous flows: gradients by finite differences, the exact trace, the RK4 kernel against its
twin, round trips, a linear field's closed-form likelihood, Hutchinson, bad input."""
import math

import numpy as np
import pytest

from nfscratch import continuous as C
from nfscratch import evaluate
from nfscratch._continuous_fast import kernel_weights
from nfscratch.config import use_backend
from nfscratch.gradcheck import numerical_gradient, rel_error
from nfscratch.kernels.ode import rk4_nb

K = 3


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def _cnf(rng, hidden=(16, 16, 16), **kw):
    cnf = C.CNF(2, hidden=hidden, n_freq=K, rng=rng, **kw)
    for v in cnf.params.values():              # a non-trivial field (the last layer starts at 0)
        v[...] = rng.normal(size=v.shape) * 0.4
    return cnf


def _fd(f, a):
    return numerical_gradient(lambda _: f(), a)


def test_velocity_backward_matches_finite_differences(rng):
    cnf = _cnf(rng)
    x, t = rng.normal(size=(5, 2)), rng.random(5)
    dv = rng.normal(size=(5, 2))

    def loss():
        return float(np.sum(C.velocity_forward(x, t, cnf.params, K)[0] * dv))

    v, cache = C.velocity_forward(x, t, cnf.params, K)
    dx, dt, grads = C.velocity_backward(dv, cache)
    assert rel_error(dx, _fd(loss, x)) < 1e-7
    assert rel_error(dt, _fd(loss, t)) < 1e-7
    for k, p in cnf.params.items():
        assert rel_error(grads[k], _fd(loss, p)) < 1e-5, k


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_cfm_loss_gradient_matches_finite_differences(rng, backend):
    cnf = _cnf(rng)
    x, z, t = rng.normal(size=(6, 2)), rng.normal(size=(6, 2)), rng.random(6)
    with use_backend(backend):
        loss, grads = C.cfm_loss(cnf.params, x, z, t, K)
        for k, p in cnf.params.items():
            num = _fd(lambda: C.cfm_loss(cnf.params, x, z, t, K)[0], p)
            assert rel_error(grads[k], num) < 1e-5, k


def test_exact_trace_equals_trace_of_finite_difference_jacobian(rng):
    cnf = _cnf(rng)
    x, t = rng.normal(size=(7, 2)), rng.random(7)
    v, J = C.velocity_jacobian(x, t, cnf.params, K)
    assert np.allclose(v, C.velocity_forward(x, t, cnf.params, K)[0], rtol=0, atol=1e-14)
    h = 1e-6
    J_fd = np.empty_like(J)
    for i in range(2):
        e = np.zeros(2)
        e[i] = h
        J_fd[:, i, :] = (C.velocity_forward(x + e, t, cnf.params, K)[0]
                         - C.velocity_forward(x - e, t, cnf.params, K)[0]) / (2 * h)
    assert np.max(np.abs(J - J_fd)) < 1e-8
    div = C.divergence(x, t, cnf.params, K)[1]
    assert np.allclose(div, np.trace(J_fd, axis1=1, axis2=2), atol=1e-8)


def test_hutchinson_is_unbiased(rng):
    cnf = _cnf(rng)
    x, t = rng.normal(size=(4, 2)), rng.random(4)
    exact = C.divergence(x, t, cnf.params, K)[1]
    M = 4000
    xs, ts = np.repeat(x, M, axis=0), np.repeat(t, M)
    eps = rng.choice([-1.0, 1.0], size=xs.shape)
    est = C.divergence(xs, ts, cnf.params, K, "hutchinson", eps)[1].reshape(4, M)
    se = est.std(axis=1, ddof=1) / math.sqrt(M)
    assert np.all(np.abs(est.mean(axis=1) - exact) < 4 * se + 1e-12)


@pytest.mark.parametrize("trace", [False, True])
@pytest.mark.parametrize("t0,t1", [(0.0, 1.0), (1.0, 0.0), (0.2, 0.7)])
def test_rk4_kernel_equals_twin(rng, trace, t0, t1):
    cnf = _cnf(rng, hidden=(13, 13, 13))               # 13: not a multiple of the unrolling
    x = rng.normal(size=(23, 2))                         # 23: a partial last block
    out, log_det = rk4_nb(x, *kernel_weights(cnf.params, 2, K), t0, t1, 6, trace)
    y, ld, nfe = C.rk4_integrate(x, cnf.params, K, t0, t1, 6, "exact" if trace else None)
    assert nfe == 24
    assert np.allclose(out, y, rtol=1e-12, atol=1e-12)
    assert np.allclose(log_det, ld, rtol=1e-12, atol=1e-12)


def test_rk4_kernel_one_hidden_layer_and_backends_agree(rng):
    cnf = _cnf(rng, hidden=(9,), n_steps=5)
    x = rng.normal(size=(11, 2))
    with use_backend("numba"):
        a = cnf.inverse(x)
    with use_backend("numpy"):
        b = cnf.inverse(x)
    assert np.allclose(a[0], b[0], atol=1e-12) and np.allclose(a[1], b[1], atol=1e-12)


@pytest.mark.parametrize("solver", ["rk4", "dopri5"])
def test_forward_inverse_round_trip(rng, solver):
    cnf = _cnf(rng, n_steps=40, solver=solver, rtol=1e-8, atol=1e-8)
    z = rng.normal(size=(9, 2))
    x, ld_f = cnf.forward(z)
    z2, ld_i = cnf.inverse(x)
    assert np.max(np.abs(z2 - z)) < 1e-5
    assert np.max(np.abs(ld_f + ld_i)) < 1e-5


def test_dopri5_agrees_with_fine_rk4(rng):
    cnf = _cnf(rng)
    x = rng.normal(size=(6, 2))
    a = C.dopri5_integrate(x, cnf.params, K, 0.0, 1.0, 1e-9, 1e-9, "exact")
    b = C.rk4_integrate(x, cnf.params, K, 0.0, 1.0, 200, "exact")
    assert np.allclose(a[0], b[0], atol=1e-6) and np.allclose(a[1], b[1], atol=1e-6)
    assert a[2] > 7


def test_log_det_matches_slogdet_of_numerical_jacobian_of_the_flow(rng):
    cnf = _cnf(rng, n_steps=30)
    with use_backend("numpy"):
        z = rng.normal(size=(3, 2))
        log_det = cnf.forward(z)[1]
        h = 1e-5
        for n in range(3):
            J = np.empty((2, 2))
            for i in range(2):
                e = np.zeros((1, 2))
                e[0, i] = h
                J[i] = (cnf.integrate(z[n:n + 1] + e, 0.0, 1.0)[0]
                        - cnf.integrate(z[n:n + 1] - e, 0.0, 1.0)[0])[0] / (2 * h)
            assert abs(np.linalg.slogdet(J)[1] - log_det[n]) < 1e-6


def test_linear_field_likelihood_matches_closed_form(rng):
    """v(x, t) = x A (a one-hidden-layer net cannot be linear, so set the field by hand): the
    flow is x_1 = x_0 expm(A), its log-det is tr(A), and log p is a Gaussian's."""
    A = np.array([[0.3, -0.4], [0.2, -0.1]])
    params = {"W0": np.vstack([A, np.zeros((2 * K, 2))]), "b0": np.zeros(2)}
    # a bare linear layer is an MLP with no hidden layer: mlp_forward applies no activation
    x = rng.normal(size=(5, 2))
    z, log_det, _ = C.rk4_integrate(x, params, K, 1.0, 0.0, 50, "exact")
    w, V = np.linalg.eig(A)
    expm_minus = np.real(V @ np.diag(np.exp(-w)) @ np.linalg.inv(V))
    assert np.allclose(z, x @ expm_minus, atol=1e-9)
    assert np.allclose(log_det, -np.trace(A), atol=1e-12)
    # log p(x) of the pushed-forward normal: N(0, S) with S = M^T M, M = expm(A)
    M = np.linalg.inv(expm_minus)
    S = M.T @ M
    closed = (-0.5 * np.einsum("ni,ij,nj->n", x, np.linalg.inv(S), x)
              - 0.5 * np.linalg.slogdet(S)[1] - math.log(2 * math.pi))
    ours = -0.5 * np.sum(z * z, axis=1) - math.log(2 * math.pi) + log_det
    assert np.allclose(ours, closed, atol=1e-9)


def test_cnf_at_init_is_identity_and_evaluate_nll_works(rng):
    cnf = C.CNF(2, hidden=(8, 8), n_steps=2, rng=0)
    result = evaluate.nll(cnf, "eight_gaussians", n=200, rng=1)
    x = np.random.default_rng(1).normal(size=(3, 2))
    assert np.allclose(cnf.log_prob(x), -0.5 * np.sum(x * x, 1) - math.log(2 * math.pi))
    assert np.isfinite(result.nll) and result.floor is not None


def test_training_reduces_the_loss(rng):
    cnf = C.CNF(2, hidden=(32, 32), rng=0)
    sampler = lambda n, r: r.normal(size=(n, 2)) * 0.3 + 1.0          # noqa: E731
    hist = C.fit_cfm(cnf, sampler, 150, batch_size=128, lr=5e-3, rng=0)
    assert np.mean(hist[-20:]) < 0.5 * np.mean(hist[:10])
    hist_ot = C.fit_cfm(C.CNF(2, hidden=(32, 32), rng=0), sampler, 20, batch_size=64, ot=True,
                        rng=0)
    assert np.all(np.isfinite(hist_ot))


def test_ot_pairing_is_a_permutation_sorted_along_a_direction(rng):
    z, x = rng.normal(size=(50, 2)), rng.normal(size=(50, 2)) + 3
    zp = C.ot_pairing(z, x, np.random.default_rng(5))
    assert sorted(map(tuple, zp)) == sorted(map(tuple, z))
    u = np.random.default_rng(5).normal(size=2)
    u /= np.linalg.norm(u)
    assert np.all(np.diff((zp @ u)[np.argsort(x @ u)]) >= 0)


@pytest.mark.parametrize("kw,msg", [
    (dict(n_steps=0), "n_steps"), (dict(n_steps=-3), "n_steps"), (dict(rtol=0.0), "rtol"),
    (dict(atol=-1e-6), "atol"), (dict(solver="euler"), "solver"),
])
def test_bad_construction(kw, msg):
    with pytest.raises((ValueError, TypeError), match=msg):
        C.CNF(2, **kw)


@pytest.mark.parametrize("t", [-0.1, 1.5, float("nan"), "0.5", True])
def test_bad_time(rng, t):
    cnf = _cnf(rng)
    with pytest.raises((ValueError, TypeError), match="t"):
        cnf.velocity(np.zeros((2, 2)), t)
    with pytest.raises((ValueError, TypeError), match="t1"):
        cnf.integrate(np.zeros((2, 2)), 0.0, t)


def test_bad_kernel_arguments(rng):
    cnf = _cnf(rng)
    w = kernel_weights(cnf.params, 2, K)
    x = rng.normal(size=(3, 2))
    with pytest.raises(ValueError, match="t1"):
        rk4_nb(x, *w, 0.0, 1.5, 4, False)
    with pytest.raises(ValueError, match="n_steps"):
        rk4_nb(x, *w, 0.0, 1.0, 0, False)
    with pytest.raises(ValueError, match="Wo"):
        rk4_nb(x, *w[:5], w[5][:, :1].copy(), *w[6:], 0.0, 1.0, 4, False)
    with pytest.raises(TypeError, match="x"):
        rk4_nb(x.astype(np.float32), *w, 0.0, 1.0, 4, False)


def test_backward_says_it_is_not_provided(rng):
    with pytest.raises(NotImplementedError, match="adjoint"):
        _cnf(rng).backward(np.zeros((1, 2)), np.zeros(1))


def test_silu_kernel_equals_nn(rng):
    from nfscratch import nn
    from nfscratch.kernels.ode import silu_act_nb
    pre = rng.normal(size=(7, 5)) * 10
    pre[0, :3] = [800.0, -800.0, 0.0]
    h, dact = silu_act_nb(pre)
    h_ref, cache = nn.silu_forward(pre)
    assert np.allclose(h, h_ref, rtol=1e-14, atol=1e-300)
    assert np.allclose(dact, nn.silu_backward(np.ones_like(pre), cache), rtol=1e-13, atol=1e-300)


def test_cfm_loss_fast_path_equals_numpy(rng):
    cnf = _cnf(rng)
    x, z, t = rng.normal(size=(6, 2)), rng.normal(size=(6, 2)), rng.random(6)
    with use_backend("numpy"):
        a = C.cfm_loss(cnf.params, x, z, t, K)
    with use_backend("numba"):
        b = C.cfm_loss(cnf.params, x, z, t, K)
    assert abs(a[0] - b[0]) < 1e-13 * abs(a[0])
    for k in a[1]:
        assert np.allclose(a[1][k], b[1][k], rtol=1e-12, atol=1e-14), k


def test_pictures(rng, tmp_path):
    from nfscratch import plotting
    cnf = _cnf(rng, hidden=(8, 8), n_steps=3)
    assert len(plotting.plot_velocity_field(cnf, (0.0, 1.0), n_arrows=5).axes) == 2
    fig = plotting.plot_trajectories([cnf], ["a"], n=20, n_times=4)
    assert len(fig.excess_length) == 1 and fig.excess_length[0] >= 0
    fig = plotting.plot_density_over_time(cnf, (0.0,), limits=6.0, grid_size=40)
    assert abs(fig.masses[0] - 1.0) < 0.02                    # p_0 is the standard normal
    path = tmp_path / "cnf.gif"
    plotting.animate_density(cnf, path, n_frames=2, grid_size=8, n_samples=5)
    assert path.stat().st_size > 0
    with pytest.raises(FileExistsError, match="overwrite"):
        plotting.animate_density(cnf, path, n_frames=2, grid_size=8)
    with pytest.raises(ValueError, match="times"):
        plotting.plot_velocity_field(cnf, (0.5, 2.0))


@pytest.mark.parametrize("t", [np.full(3, 0.5), np.full((2, 1), 0.5), np.full((1, 2), 0.5)])
def test_time_array_of_the_wrong_shape_is_named(rng, t):
    with pytest.raises(ValueError, match=r"t: expected one time for all 2 samples or one per "
                                         r"sample \(shape \(2,\)\)"):
        _cnf(rng).velocity(np.zeros((2, 2)), t)
    assert _cnf(rng).velocity(np.zeros((2, 2)), np.array([0.0, 1.0])).shape == (2, 2)
