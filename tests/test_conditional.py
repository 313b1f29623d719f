"""Conditional transforms and flows, q(x | y): the context y (N, C) enters every conditioner.

For every conditional transform, on both backends: gradients with respect to the parameters, the
input AND the context in both directions (finite differences in float64), log-det against
slogdet of a finite-difference Jacobian at fixed context, inverse round trip with context, the
two backends agree; MADE keeps the autoregressive property with context inputs; bad context
input gives clear errors; a conditional Flow gradchecks, saves and loads.
"""
import numpy as np
import pytest

from nfscratch import Flow, gradcheck, io
from nfscratch.config import use_backend
from nfscratch.gradcheck import numerical_jacobian
from nfscratch.transforms import (IAF, MAF, AdditiveCoupling, AffineCoupling, ElementwiseAffine,
                                  FactorOut, Planar, Reverse, SplineAutoregressive, SplineCoupling)
from nfscratch.transforms.made import MADE, check_made_masks

C = 3

FACTORIES = {
    "AffineCoupling": lambda D, rng: AffineCoupling(D, hidden=[8], rng=rng, zero_init=False,
                                                    context_dim=C),
    "AdditiveCoupling": lambda D, rng: AdditiveCoupling(D, hidden=[8], rng=rng, zero_init=False,
                                                        context_dim=C, parity=1),
    "MAF": lambda D, rng: MAF(D, hidden=[8], rng=rng, zero_init=False, context_dim=C,
                              order="reverse"),
    "IAF": lambda D, rng: IAF(D, hidden=[8], rng=rng, zero_init=False, context_dim=C),
    "SplineCoupling": lambda D, rng: SplineCoupling(D, hidden=[8], n_bins=4, rng=rng,
                                                    zero_init=False, context_dim=C),
    "SplineAutoregressive": lambda D, rng: SplineAutoregressive(
        D, hidden=[8], n_bins=4, rng=rng, zero_init=False, context_dim=C, order="reverse"),
    "FactorOut": lambda D, rng: _factor_out(D, rng),
}


def _factor_out(D, rng):
    """Two conditional couplings around an unconditional layer on the last max(2, D - 1)
    features: the context reaches both couplings, and dcontext is the sum of theirs."""
    keep = np.arange(D - max(2, D - 1), D)[::-1].copy()
    K = keep.size
    return FactorOut(D, keep, [AffineCoupling(K, hidden=[8], rng=rng, zero_init=False,
                                              context_dim=C),
                               ElementwiseAffine(K),
                               SplineCoupling(K, hidden=[8], n_bins=4, rng=rng + 1,
                                              zero_init=False, context_dim=C)])
NAMES = list(FACTORIES)
BACKENDS = ["numpy", "numba"]


def _layer_pass(t, direction):
    """``forward_fn`` / ``backward_fn`` for check_gradients: parameters, input and context of the
    layer ``t`` as inputs, run through the public methods (so the backend's path is tested)."""
    back = t.backward if direction == "forward" else t.inverse_backward

    def run(p, context, **params):
        for k, v in params.items():
            t.params[k][...] = v
        out, log_det = getattr(t, direction)(p, context)
        return out, log_det, None

    def backward(d_out, dlog_det, _):
        d_in = back(d_out, dlog_det)
        return d_in, {**t.grads, "context": t.dcontext}

    return run, backward


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("direction", ["forward", "inverse"])
@pytest.mark.parametrize("dim", [2, 4])
@pytest.mark.parametrize("name", NAMES)
def test_gradients_wrt_params_input_and_context(name, dim, direction, backend, rng):
    t = FACTORIES[name](dim, 1)
    inputs = {"p": 0.8 * rng.normal(size=(6, dim)), "context": rng.normal(size=(6, C)),
              **{k: v.copy() for k, v in t.params.items()}}
    with use_backend(backend):
        run, backward = _layer_pass(t, direction)
        result = gradcheck.check_gradients(run, backward, inputs, rng=0, verbose=False,
                                           direction=direction, name=name)
    assert result.passed, result.table()
    assert result.max_error < 1e-6, result.table()
    assert {r.name for r in result.rows} == {f"d{k}" for k in inputs}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", NAMES)
def test_log_det_matches_slogdet_and_round_trip_with_context(name, backend, rng):
    D = 3
    t = FACTORIES[name](D, 2)
    z, y = rng.normal(size=(5, D)), rng.normal(size=(5, C))
    with use_backend(backend):
        x, log_det = t.forward(z, y)
        z_back, log_det_inv = t.inverse(x, y)
        np.testing.assert_allclose(z_back, z, atol=1e-10)
        np.testing.assert_allclose(log_det_inv, -log_det, atol=1e-10)
        for n in range(5):
            # the Jacobian at fixed context: y is an input of the map, not one of its variables
            J = numerical_jacobian(lambda v: t.forward(v[None, :], y[n:n + 1])[0][0], z[n].copy())
            sign, logabs = np.linalg.slogdet(J)
            assert sign > 0
            assert abs(logabs - log_det[n]) < 1e-7


@pytest.mark.parametrize("name", NAMES)
def test_context_changes_the_map_and_backends_agree(name, rng):
    t = FACTORIES[name](4, 3)
    z, y = rng.normal(size=(7, 4)), rng.normal(size=(7, C))
    res = {}
    for backend in BACKENDS:
        with use_backend(backend):
            x, ld = t.forward(z, y)
            dz = t.backward(np.ones_like(x), np.ones(7))
            res[backend] = (x, ld, dz, t.dcontext, t.grads)
            x2, _ = t.forward(z, y + 1.0)
            assert not np.allclose(x2, x)           # the context does condition the map
    (a, b) = res["numpy"], res["numba"]
    for u, v in zip(a[:4], b[:4]):
        np.testing.assert_allclose(u, v, rtol=1e-11, atol=1e-12)
    for k in a[4]:
        np.testing.assert_allclose(a[4][k], b[4][k], rtol=1e-10, atol=1e-12)


def test_unconditional_layers_leave_no_context_gradient(rng):
    t = AffineCoupling(2, hidden=[4], rng=0, zero_init=False)
    x, _ = t.forward(rng.normal(size=(3, 2)))
    t.backward(np.ones_like(x), np.ones(3))
    assert t.dcontext is None and t.context_dim == 0 and "context_dim" not in t.config()


def test_made_context_inputs_keep_the_autoregressive_property(rng):
    D, order = 4, np.array([2, 0, 3, 1])
    for hidden in ([6], [5, 7], []):
        net = MADE(D, hidden, k=2, order=order, rng=0, context_dim=C)
        check_made_masks(net.masks, net.order, 2, context_dim=C)   # the mask-level proof
        assert net.masks[0].shape == (D + C, (hidden or [2 * D])[0])
        assert np.all(net.masks[0][D:] == 1)                        # context reaches every unit
        x, y = rng.normal(size=D), rng.normal(size=C)
        # the function-level proof: d out / d x is zero wherever the order forbids it
        Jx = numerical_jacobian(lambda v: net.forward(v[None], y[None])[0], x.copy())    # (2D, D)
        Jy = numerical_jacobian(lambda v: net.forward(x[None], v[None])[0], y.copy())    # (2D, C)
        m_in = np.empty(D, dtype=int)
        m_in[order] = np.arange(1, D + 1)
        allowed = np.tile(m_in, 2)[:, None] > m_in[None, :]
        assert np.all(Jx[~allowed] == 0.0)
        assert np.all(np.abs(Jx[allowed]) > 0)
        assert np.all(np.abs(Jy) > 0)                               # every output sees y
    bad = [m.copy() for m in MADE(D, [6], k=2, rng=0, context_dim=C).masks]
    bad[0][0, :] = 1.0            # feature 0 now reaches units of degree below its own
    with pytest.raises(ValueError, match="autoregressive"):
        MADE(D, [6], k=2, rng=0, context_dim=C, masks=bad)


# -- a conditional Flow -----------------------------------------------------------------------
def _flow(rng=0):
    D = 3
    return Flow([AffineCoupling(D, hidden=[8], rng=rng, zero_init=False, context_dim=C),
                 Reverse(D),
                 MAF(D, hidden=[6], rng=rng + 1, zero_init=False, context_dim=C),
                 Planar(D, rng=rng + 2),
                 SplineCoupling(D, hidden=[8], n_bins=4, rng=rng + 3, zero_init=False,
                                context_dim=C)])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("direction", ["forward", "inverse"])
def test_conditional_flow_gradients(direction, backend, rng):
    flow = _flow()
    assert flow.context_dim == C
    back = flow.backward if direction == "forward" else flow.inverse_backward

    def run(p, context, **params):
        for k, v in params.items():
            flow.params()[k][...] = v
        out, log_det = getattr(flow, direction)(p, context)
        return out, log_det, None

    def backward(d_out, dlog_det, _):
        d_in = back(d_out, dlog_det)
        return d_in, {**flow.grads(), "context": flow.dcontext}

    inputs = {"p": 0.7 * rng.normal(size=(5, 3)), "context": rng.normal(size=(5, C)),
              **{k: v.copy() for k, v in flow.params().items()}}
    with use_backend(backend):
        result = gradcheck.check_gradients(run, backward, inputs, rng=1, verbose=False,
                                           direction=direction, name="conditional flow")
    assert result.passed, result.table()
    assert result.max_error < 1e-6, result.table()


def test_conditional_flow_log_prob_sample_trajectory_and_io(tmp_path, rng):
    flow = _flow()
    y = rng.normal(size=(6, C))
    x, log_q = flow.sample_and_log_prob(6, rng=0, context=y)
    np.testing.assert_allclose(flow.log_prob(x, y), log_q, atol=1e-10)
    assert np.array_equal(flow.sample(6, rng=0, context=y), x)
    traj = flow.trajectory(x, "inverse", context=y)
    np.testing.assert_allclose(traj.points[-1], flow.inverse(x, y)[0])
    path = tmp_path / "cond.npz"
    io.save(flow, path)
    again = io.load(path)
    assert again.context_dim == C
    assert [t.config() for t in again.transforms] == [t.config() for t in flow.transforms]
    np.testing.assert_array_equal(again.log_prob(x, y), flow.log_prob(x, y))


def test_bad_context_input_is_refused_with_clear_messages(rng):
    t = AffineCoupling(2, hidden=[4], rng=0, context_dim=2)
    z = rng.normal(size=(4, 2))
    with pytest.raises(ValueError, match=r"^context: AffineCoupling is conditional \(context_dim=2\)"
                                         r" and needs a context of shape \(N, 2\).*got None"):
        t.forward(z)
    with pytest.raises(ValueError, match=r"^context: expected 2 features"):
        t.forward(z, rng.normal(size=(4, 3)))
    with pytest.raises(ValueError, match=r"^context: expected one row per sample, shape \(4, 2\)"):
        t.inverse(z, rng.normal(size=(5, 2)))
    with pytest.raises(ValueError, match=r"^context: expected finite values"):
        t.forward(z, np.full((4, 2), np.nan))
    with pytest.raises(TypeError, match=r"^context: expected a floating-point array"):
        t.forward(z, np.ones((4, 2), dtype=int))
    with pytest.raises(ValueError, match=r"^context: Planar is not conditional \(context_dim=0\)"):
        Planar(2).forward(z, rng.normal(size=(4, 2)))
    with pytest.raises(ValueError, match=r"^context: this Flow is not conditional"):
        Flow([Planar(2)]).log_prob(z, np.ones((4, 1)))
    with pytest.raises(ValueError, match=r"^context: this Flow is conditional"):
        Flow([t, Reverse(2)]).sample(3)
    with pytest.raises(ValueError, match="same context"):
        Flow([t, AffineCoupling(2, context_dim=3)])
    for bad in (-1, 1.5, True, "2"):
        with pytest.raises(ValueError, match=r"^context_dim: expected a non-negative integer"):
            AffineCoupling(2, context_dim=bad)


# -- models, fit, data ------------------------------------------------------------------------
@pytest.mark.parametrize("builder", ["realnvp", "maf", "iaf", "nsf_coupling",
                                     "nsf_autoregressive"])
def test_model_builders_take_context_dim(builder, rng):
    from nfscratch import models
    flow = getattr(models, builder)(2, n_layers=2, hidden=[8], rng=0, context_dim=2)
    assert flow.context_dim == 2 and all(t.context_dim == 2 for t in flow.transforms)
    x = rng.normal(size=(4, 2))
    assert flow.log_prob(x, models.one_hot(np.array([0, 1, 1, 0]), 2)).shape == (4,)
    assert getattr(models, builder)(2, n_layers=2, hidden=[8], rng=0).context_dim == 0


def test_realnvp_image_conditional_and_one_hot():
    from nfscratch import models
    flow = models.realnvp_image(4, 4, n_layers=2, hidden=[8], rng=0, context_dim=10)
    assert flow.context_dim == 10 and flow[-1].context_dim == 0      # the Logit reads no context
    y = models.one_hot(np.arange(3), 10)
    assert y.shape == (3, 10) and np.array_equal(y.argmax(axis=1), np.arange(3))
    assert flow.sample(3, rng=0, context=y).shape == (3, 16)
    for bad in ([0, 10], [1.0, 2.0], [[0, 1]], [-1]):
        with pytest.raises(ValueError, match="^labels: expected"):
            models.one_hot(np.array(bad), 10)


def test_two_moons_labeled_and_the_conditional_floor():
    from nfscratch import datasets
    x, y = datasets.two_moons_labeled(500, rng=3)
    assert np.array_equal(x, datasets.two_moons(500, rng=3))
    assert set(np.unique(y)) == {0, 1}
    assert np.all(x[y == 0, 1] > -0.5)                   # the outer moon is the upper one
    h, h_cond = datasets.entropy("two_moons"), datasets.moon_entropy()
    assert 0.68 < h - h_cond <= np.log(2)                 # I(X; Y): the moons barely overlap
    # Monte-Carlo check of H(X | Y): one moon's density is twice the mixture's, off the overlap
    x0, y0 = datasets.two_moons_labeled(20_000, rng=4, noise=0.1)
    far = y0 == 0
    log_p_cond = datasets.log_prob("two_moons", x0[far]) + np.log(2)
    # points of the outer moon that sit in the inner moon's density make this a bound, nearly tight
    assert abs(-log_p_cond.mean() - h_cond) < 4 * log_p_cond.std() / np.sqrt(far.sum()) + 0.01


@pytest.mark.parametrize("kind", ["array", "sampler"])
def test_fit_learns_a_conditional_density(kind):
    from nfscratch import datasets, models
    from nfscratch.train import fit
    flow = models.realnvp(2, n_layers=4, hidden=[16], rng=0, context_dim=2)

    def pairs(n, rng):
        x, y = datasets.two_moons_labeled(n, rng)
        return x, models.one_hot(y, 2)

    x_val, y_val = pairs(500, 99)
    if kind == "array":
        x, y = pairs(2000, 1)
        hist = fit(flow, data=x, context=y, steps=150, batch_size=128, lr=5e-3, rng=0,
                   validation_split=0.2, record_every=50)
    else:
        hist = fit(flow, data=pairs, steps=150, batch_size=128, lr=5e-3, rng=0,
                   validation=(x_val, y_val), record_every=50)
    assert hist.val_loss[-1] < hist.val_loss[0] - 0.3
    nll_cond = -flow.log_prob(x_val, y_val).mean()
    # the condition carries information: the wrong moon's label gives a much worse fit
    nll_wrong = -flow.log_prob(x_val, y_val[:, ::-1].copy()).mean()
    assert nll_wrong > nll_cond + 0.5


def test_fit_refuses_bad_conditional_setups(rng):
    from nfscratch import models
    from nfscratch.train import fit
    cond = models.realnvp(2, n_layers=2, hidden=[8], rng=0, context_dim=2)
    x = rng.normal(size=(300, 2))
    with pytest.raises(ValueError, match=r"^context: this Flow is conditional"):
        fit(cond, data=x, steps=1)
    with pytest.raises(ValueError, match=r"^context: expected one row per sample"):
        fit(cond, data=x, context=np.zeros((10, 2)), steps=1)
    with pytest.raises(TypeError, match=r"expected the sampler to return \(x, context\)"):
        fit(cond, data=lambda n, r: r.normal(size=(n, 2)), steps=1)
    with pytest.raises(ValueError, match=r"^target: reverse KL"):
        fit(cond, target="U1", steps=1)
    with pytest.raises(TypeError, match=r"^validation: a conditional flow is validated on pairs"):
        fit(cond, data=x, context=np.zeros((300, 2)), validation=x[:10], steps=1)
    with pytest.raises(ValueError, match=r"^context: this Flow is not conditional"):
        fit(models.realnvp(2, n_layers=2, hidden=[8], rng=0), data=x, context=np.zeros((300, 2)),
            steps=1)


def test_cli_trains_a_conditional_toy_and_refuses_what_it_cannot(tmp_path, capsys):
    from nfscratch import io
    from nfscratch.cli import main
    out = tmp_path / "cond.npz"
    assert main(["train", "--dataset", "two_moons", "--conditional", "--layers", "2", "--hidden",
                 "8", "--steps", "20", "-o", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "floor 0.316" in printed and "saved" in printed
    assert io.load(out).context_dim == 2
    for args, message in ((["--energy", "U1"], "energies have none"),
                          (["--dataset", "circles"], "only two_moons has labels"),
                          (["--dataset", "two_moons", "--model", "planar"], "with a conditioner")):
        assert main(["train", *args, "--conditional", "-o", str(tmp_path / "x.npz"),
                     "--no-progress"]) == 2
        assert message in capsys.readouterr().err


def test_a_diverging_conditional_run_is_diagnosed_with_its_context(rng):
    from nfscratch import models
    from nfscratch.train import TrainingDiverged, fit
    flow = models.realnvp(2, n_layers=2, hidden=[8], rng=0, context_dim=2)
    x = rng.normal(size=(256, 2))
    y = models.one_hot(rng.integers(0, 2, 256), 2)
    with pytest.raises(TrainingDiverged) as info:
        fit(flow, data=x, context=y, steps=50, lr=1e300, batch_size=64, rng=0)
    # the layers were re-run with the batch's context (without it each pass would raise)
    assert "layer" in str(info.value) and "context" not in str(info.value)
    assert all(np.all(np.isfinite(p)) for p in flow.params().values())
