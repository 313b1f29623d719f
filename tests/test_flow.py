"""Flow: the two chains agree, densities integrate to one, trajectories, chained backward passes."""
import numpy as np
import pytest

from nfscratch import Flow, StandardNormal, gradcheck, models, use_backend
from nfscratch.transforms import AffineCoupling, Planar, PlanarChain, Reverse

from conftest import assert_same_passes


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


def with_chain(rng, dim=2):
    return Flow([PlanarChain(dim, 3, rng=rng), AffineCoupling(dim, hidden=[8], rng=rng,
                                                              zero_init=False),
                 PlanarChain(dim, 2, rng=rng, constrain=False), Reverse(dim), Planar(dim, rng=rng)])


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("build", [mixed, with_chain])
@pytest.mark.parametrize("direction", ["forward", "inverse"])
def test_chained_backward_matches_finite_differences(direction, build, backend, rng):
    with use_backend(backend):
        _check_chain(build(rng), rng, direction)


def test_flow_construction_errors():
    with pytest.raises(ValueError, match="at least one"):
        Flow([])
    with pytest.raises(TypeError, match=r"transforms\[1\]"):
        Flow([Planar(2), "planar"])
    with pytest.raises(ValueError, match="same dim"):
        Flow([Planar(2), Planar(3)])
    with pytest.raises(ValueError, match="base"):
        Flow([Planar(2)], base=StandardNormal(3))
    with pytest.raises(TypeError, match=r"^transforms: expected a list of Transforms, got Planar"):
        Flow(Planar(2))
    with pytest.raises(TypeError, match=r"^base: expected a base density"):
        Flow([Planar(2)], base="normal")
    t = Planar(2)
    with pytest.raises(ValueError, match=r"transforms\[2\]: the same Planar object as transforms\[0\]"):
        Flow([t, Planar(2), t])


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


# ---------------------------------------------------------------------------------------------
# pass tokens: a backward pass uses the caches of the flow's last pass, or refuses
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_a_layer_run_on_its_own_with_the_same_batch_size_is_detected(backend, rng):
    flow = mixed(rng)
    z = rng.normal(size=(6, 2))
    with use_backend(backend):
        flow.forward(z)
        flow[3].forward(rng.normal(size=(6, 2)))          # same direction, same batch size
        with pytest.raises(RuntimeError, match=r"layer 3 \(Planar\) was called on its own"):
            flow.backward(np.ones((6, 2)), np.ones(6))
        chained = models.planar_flow(2, 4, rng=0)
        chained.forward(z)
        chained.transforms[0].forward(z + 1.0)            # the chain itself, same batch size
        with pytest.raises(RuntimeError, match=r"layers 0-3 \(PlanarChain\) was called on its own"):
            chained.backward(np.ones((6, 2)), np.ones(6))


def test_a_failed_pass_leaves_nothing_to_backpropagate(rng):
    t = Planar(2, constrain=False)
    t.forward(rng.normal(size=(4, 2)))
    t.params["u"][:] = -5.0 * t.params["w"] / (t.params["w"] @ t.params["w"])   # w.u = -5
    with pytest.raises(ValueError, match="invertibility"):
        t.forward(rng.normal(size=(4, 2)))
    with pytest.raises(RuntimeError, match="call forward"):
        t.backward(np.ones((4, 2)), np.ones(4))


def test_a_chain_layer_run_on_its_own_does_not_disturb_the_flow(rng):
    flow = models.planar_flow(2, 4, rng=rng)
    z = rng.normal(size=(6, 2))
    flow.forward(z)
    want = flow.backward(np.ones((6, 2)), np.ones(6)), dict(flow.grads())
    want = want[0], {k: v.copy() for k, v in want[1].items()}
    flow.forward(z)
    flow[2].forward(rng.normal(size=(6, 2)))          # a view: its own cache, the chain's intact
    flow[2].backward(np.ones((6, 2)), np.ones(6))
    got = flow.backward(np.ones((6, 2)), np.ones(6))
    np.testing.assert_array_equal(got, want[0])
    for k, v in flow.grads().items():
        np.testing.assert_array_equal(v, want[1][k])


@pytest.mark.parametrize("bad", [np.zeros(3) + 0j, np.zeros(3, dtype=np.int64), "abc"])
def test_backward_refuses_a_dlog_det_that_is_not_real_floats(bad, rng):
    flow = models.planar_flow(2, 2, rng=rng)
    flow.forward(np.zeros((3, 2)))
    with pytest.raises(TypeError, match="^dlog_det: expected a floating-point array"):
        flow.backward(np.zeros((3, 2)), bad)
    layer = Planar(2, rng=rng)
    layer.forward(np.zeros((3, 2)))
    with pytest.raises(TypeError, match="^dlog_det: expected a floating-point array"):
        layer.backward(np.zeros((3, 2)), bad)


# ---------------------------------------------------------------------------------------------
# a chain of K planar layers is K Planar layers, numbered, plotted and checked layer by layer
# ---------------------------------------------------------------------------------------------
def planar_pair(rng, K=4, constrain=True):
    layers = [Planar(2, rng=rng, constrain=constrain) for _ in range(K)]
    for t in layers:
        for p in t.params.values():
            p += 0.4 * rng.normal(size=p.shape)
        if not constrain:                                 # keep w.u > -1/2: invertible
            p, w = t.params, t.params["w"]
            p["u"] += max(0.0, -0.5 - w @ p["u"]) / (w @ w) * w
    return Flow([PlanarChain.from_layers(layers)]), Flow(layers)


@pytest.mark.parametrize("constrain", [True, False])
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_chain_equals_a_sequence_of_planar_layers(backend, constrain, rng):
    chain, layers = planar_pair(rng, constrain=constrain)
    assert len(chain) == len(layers) == 4 and len(chain.transforms) == 1
    assert list(chain.params()) == list(layers.params())
    z = 1.5 * rng.normal(size=(30, 2))
    dx, dl = rng.normal(size=(30, 2)), rng.normal(size=30)
    with use_backend(backend):
        assert_same_passes(chain, layers, z, dx, dl, 1e-13)


def test_chain_layers_are_views_of_its_rows(rng):
    chain = PlanarChain(3, 4, rng=rng)
    assert len(chain) == 4 and [type(t).__name__ for t in chain.sublayers()] == ["Planar"] * 4
    assert chain.params["u"].shape == (4, 3) and chain.params["b"].shape == (4,)
    chain[2].params["w"][1] = 7.0
    assert chain.params["w"][2, 1] == 7.0
    chain.params["b"][3] = -2.0
    assert chain[3].params["b"][0] == -2.0
    x = rng.normal(size=(5, 3))
    # the chain's layer k on its own is the chain's k-th step
    traj = Flow([chain]).trajectory(x)
    for k in range(4):
        out, ld = chain[k].forward(traj.points[k])
        np.testing.assert_allclose(out, traj.points[k + 1], rtol=0, atol=1e-14)
        np.testing.assert_allclose(ld, traj.log_dets[k], rtol=0, atol=1e-14)
    with pytest.raises(TypeError, match="expected a non-empty list of Planar layers"):
        PlanarChain.from_layers([Planar(2), Reverse(2)])
    with pytest.raises(ValueError, match="same dim and constrain"):
        PlanarChain.from_layers([Planar(2), Planar(2, constrain=False)])
    with pytest.raises(ValueError, match="n_layers: expected a positive integer"):
        PlanarChain(2, 0)


def test_same_seed_gives_the_same_planar_flow_as_separate_layers():
    chain = models.planar_flow(2, 5, rng=3)
    rng = np.random.default_rng(3)
    layers = [Planar(2, rng=rng) for _ in range(5)]
    for t, layer in zip(layers, chain):
        for k, p in t.params.items():
            np.testing.assert_array_equal(layer.params[k], p)


def test_gradcheck_of_a_chain_flow_is_per_layer():
    flow = gradcheck.perturb_params(models.planar_flow(2, 3, rng=0))
    result = gradcheck.check_flow(flow, rng=0, verbose=False)
    assert result.passed, result.table()
    names = {r.name for r in result.rows}
    assert {"d0.u", "d1.w", "d2.b"} <= names and not any(n.startswith("d3.") for n in names)


@pytest.mark.parametrize("dim", [1, 2])
def test_trajectory_points_survive_the_next_pass(dim, rng):
    flow = models.planar_flow(dim, 3, rng=rng)
    for direction in ("forward", "inverse"):
        traj = flow.trajectory(rng.normal(size=(5, dim)), direction)
        saved = [p.copy() for p in traj.points + traj.log_dets]
        flow.forward(rng.normal(size=(5, dim)))        # reuses the chain's kept arrays
        for a, b in zip(traj.points + traj.log_dets, saved):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_an_unconstrained_chain_past_its_bound_is_refused(backend, rng):
    chain = PlanarChain(2, 3, rng=rng, constrain=False)
    w = chain.params["w"][1]
    chain.params["u"][1] = -1.5 * w / (w @ w)            # c = w.u = -1.5: not invertible
    with use_backend(backend):
        for run in (chain.forward, chain.inverse):
            with pytest.raises(ValueError, match=r"w.u = -1.5 but invertibility needs w.u >= -1"):
                run(rng.normal(size=(4, 2)))


def test_a_chain_alone_keeps_its_memory_in_a_flow(rng):
    chain = PlanarChain(2, 3, rng=rng)
    layer = chain[1]
    flow = Flow([chain])
    assert flow[1] is layer
    layer.params["w"][0] = 5.0                          # the same memory before and after
    assert flow.params()["1.w"][0] == chain.params["w"][1, 0] == 5.0
