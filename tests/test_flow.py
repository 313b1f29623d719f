"""Flow: the two chains agree, densities integrate to one, trajectories, chained backward passes."""
import numpy as np
import pytest

from nfscratch import Flow, StandardNormal, models
from nfscratch.transforms import AffineCoupling, Planar, Reverse


def mixed(rng, dim=2):
    return Flow([AffineCoupling(dim, hidden=[16], rng=rng, zero_init=False), Planar(dim, rng=rng),
                 Reverse(dim), Planar(dim, rng=rng), AffineCoupling(dim, hidden=[8, 8], rng=rng,
                                                                   zero_init=False, parity=1)])


def test_sample_and_log_prob_agree_with_log_prob(rng):
    flow = mixed(rng)
    x, log_q = flow.sample_and_log_prob(50, rng=1)
    np.testing.assert_allclose(flow.log_prob(x), log_q, rtol=0, atol=1e-10)
    np.testing.assert_array_equal(flow.sample(50, rng=1), x)


def test_density_integrates_to_one(rng):
    flow = mixed(rng)
    g = np.linspace(-7, 7, 401)
    xx, yy = np.meshgrid(g, g)
    p = np.exp(flow.log_prob(np.column_stack([xx.ravel(), yy.ravel()])))
    mass = p.sum() * (g[1] - g[0]) ** 2
    assert abs(mass - 1.0) < 2e-3


def test_trajectory_both_directions(rng):
    flow = mixed(rng)
    z0 = rng.normal(size=(20, 2))
    fwd = flow.trajectory(z0)
    assert len(fwd.points) == len(flow) + 1 and len(fwd.log_dets) == len(flow)
    x, log_det = flow.forward(z0)
    np.testing.assert_array_equal(fwd.points[-1], x)
    np.testing.assert_allclose(fwd.total_log_det, log_det, atol=1e-12)
    inv = flow.trajectory(x, direction="inverse")
    assert inv.names == fwd.names[::-1]
    for a, b in zip(inv.points, fwd.points[::-1]):
        np.testing.assert_allclose(a, b, atol=1e-9)
    np.testing.assert_allclose(inv.total_log_det, -log_det, atol=1e-9)
    with pytest.raises(ValueError, match="direction"):
        flow.trajectory(z0, direction="backward")


def _check_chain(flow, rng, direction):
    n = 4
    inp = rng.normal(size=(n, flow.dim))
    run = flow.forward if direction == "forward" else flow.inverse
    back = flow.backward if direction == "forward" else flow.inverse_backward
    out, ld = run(inp)
    dout, dld = rng.normal(size=out.shape), rng.normal(size=n)
    d_in = back(dout, dld)
    grads = {k: v.copy() for k, v in flow.grads().items()}

    def loss():
        o, l = run(inp)
        return float(np.sum(o * dout) + np.sum(l * dld))

    def num(a, eps=1e-6):
        g = np.zeros_like(a)
        for i in np.ndindex(a.shape):
            old = a[i]
            a[i] = old + eps
            lp = loss()
            a[i] = old - eps
            lm = loss()
            a[i] = old
            g[i] = (lp - lm) / (2 * eps)
        return g

    assert np.max(np.abs(num(inp) - d_in)) < 1e-6
    for k, p in flow.params().items():
        assert np.max(np.abs(num(p) - grads[k])) < 1e-6 * max(1.0, np.max(np.abs(grads[k]))), k


@pytest.mark.parametrize("direction", ["forward", "inverse"])
def test_chained_backward_matches_finite_differences(direction, rng):
    _check_chain(mixed(rng), rng, direction)


def test_flow_construction_errors():
    with pytest.raises(ValueError, match="at least one"):
        Flow([])
    with pytest.raises(TypeError, match=r"transforms\[1\]"):
        Flow([Planar(2), "planar"])
    with pytest.raises(ValueError, match="same dim"):
        Flow([Planar(2), Planar(3)])
    with pytest.raises(ValueError, match="base"):
        Flow([Planar(2)], base=StandardNormal(3))


def test_backward_needs_a_pass_first(rng):
    flow = models.planar_flow(2, 2, rng=rng)
    with pytest.raises(RuntimeError, match="call forward"):
        flow.backward(np.zeros((3, 2)), np.zeros(3))
    flow.forward(np.zeros((3, 2)))
    with pytest.raises(RuntimeError, match="call inverse"):
        flow.inverse_backward(np.zeros((3, 2)), np.zeros(3))
    with pytest.raises(ValueError, match=r"dx: expected shape \(3, 2\)"):
        flow.backward(np.zeros((4, 2)), np.zeros(4))
    with pytest.raises(ValueError, match=r"dlog_det: expected shape \(3,\)"):
        flow.backward(np.zeros((3, 2)), np.zeros(4))


def test_backward_refuses_caches_of_another_pass(rng):
    flow = mixed(rng)
    x = rng.normal(size=(6, 2))
    flow.inverse(x)
    flow[1].forward(rng.normal(size=(6, 2)))          # one layer run on its own since
    with pytest.raises(RuntimeError, match=r"layer 1 \(Planar\) was called on its own"):
        flow.inverse_backward(np.zeros((6, 2)), np.zeros(6))
    flow.inverse(x)
    flow[0].inverse(rng.normal(size=(3, 2)))          # same direction, another batch
    with pytest.raises(RuntimeError, match="layer 0"):
        flow.inverse_backward(np.zeros((6, 2)), np.zeros(6))


def test_trajectory_leaves_caches_that_backward_can_use(rng):
    flow = mixed(rng)
    x = rng.normal(size=(5, 2))
    flow.inverse(x)
    traj = flow.trajectory(traj_in := rng.normal(size=(5, 2)))    # a forward pass of other points
    dz = flow.backward(np.ones((5, 2)), np.ones(5))                 # backprop of that pass
    g_traj = {k: v.copy() for k, v in flow.grads().items()}
    flow.forward(traj_in)
    np.testing.assert_allclose(flow.backward(np.ones((5, 2)), np.ones(5)), dz, atol=1e-12)
    for k, v in flow.grads().items():
        np.testing.assert_allclose(v, g_traj[k], atol=1e-12)
    assert traj.points[-1].shape == (5, 2)
