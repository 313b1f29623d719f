"""MADE, MAF and IAF: masks, the autoregressive property, both directions' gradients, the
sequential kernel against its twin, bad input, models, save/load and a short training run."""
import numpy as np
import pytest

from nfscratch import datasets, gradcheck, io, models, use_backend
from nfscratch.gradcheck import check_transform, numerical_jacobian, perturb_params
from nfscratch.kernels.autoregressive import (maf_forward_backward_nb, maf_forward_nb, pack_made,
                                              pack_masks, unit_degrees, unpack_made)
from nfscratch.kernels.mlp import ACT_CODES
from nfscratch.train import fit
from nfscratch.transforms import IAF, MAF, TRANSFORMS
from nfscratch.transforms.autoregressive import (iaf_inverse, iaf_inverse_backward, iaf_forward,
                                                 iaf_forward_backward, maf_forward,
                                                 maf_forward_backward, maf_inverse,
                                                 maf_inverse_backward)
from nfscratch.transforms.made import (MADE, check_made_masks, made_backward, made_degrees,
                                       made_forward, made_masks)

BACKENDS = ("numpy", "numba")


def _degrees_in(order):
    m = np.empty(order.size, dtype=int)
    m[order] = np.arange(1, order.size + 1)
    return m


# ------------------------------------------------------------------------------------------------
# MADE
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(6))
def test_made_is_autoregressive_by_its_numerical_jacobian(seed):
    """Random order, random hidden degrees, random depth: output c D + i depends only on the
    inputs generated before i (finite differences of an input it must not see are exactly 0)."""
    r = np.random.default_rng(seed)
    D, k = int(r.integers(2, 7)), int(r.integers(1, 4))
    hidden = [int(h) for h in r.integers(D - 1, D + 6, size=r.integers(0, 4))]
    net = MADE(D, hidden, k=k, order="random", hidden_degrees="random", seed=seed, rng=r)
    perturb_params(net, r)
    J = numerical_jacobian(lambda x: made_forward(x[None], net.params, net.masks)[0][0],
                           r.normal(size=D))                          # (k D, D)
    m = _degrees_in(net.order)
    allowed = np.tile(m, k)[:, None] > m[None, :]
    assert np.all(J[~allowed] == 0.0)


def test_cyclic_degrees_connect_every_allowed_pair(rng):
    """With widths >= D - 1 and cyclic degrees, every allowed dependence exists."""
    D = 5
    net = MADE(D, [D - 1, D - 1], k=2, order=[3, 1, 4, 0, 2], rng=rng)
    J = numerical_jacobian(lambda x: made_forward(x[None], net.params, net.masks)[0][0],
                           rng.normal(size=D))
    m = _degrees_in(net.order)
    allowed = np.tile(m, 2)[:, None] > m[None, :]
    assert np.all(J[~allowed] == 0.0) and np.all(J[allowed] != 0.0)


def test_made_masks_and_backward_by_hand(rng):
    degrees = made_degrees(np.array([1, 0, 2]), [4, 3])
    assert [d.tolist() for d in degrees] == [[2, 1, 3], [1, 2, 1, 2], [1, 2, 1]]
    masks = made_masks(degrees, k=2)
    assert [M.shape for M in masks] == [(3, 4), (4, 3), (3, 6)]
    net = MADE(3, [4, 3], k=2, order=[1, 0, 2], rng=rng)
    perturb_params(net, rng)
    x = rng.normal(size=(7, 3))
    out, cache = made_forward(x, net.params, net.masks)
    result = gradcheck.check_gradients(
        lambda x, **p: made_forward(x, p, net.masks), made_backward,
        {"x": x, **net.params}, verbose=False)
    assert result.passed, result.table()
    _, grads = made_backward(rng.normal(size=out.shape), cache)
    for l, M in enumerate(net.masks):
        assert np.all(grads[f"W{l}"][M == 0] == 0.0)     # the mask multiplies the gradient


def test_made_class_matches_the_functions(rng):
    net = MADE(4, [6], k=2, rng=rng)
    x = rng.normal(size=(5, 4))
    out = net.forward(x)
    dx = net.backward(np.ones_like(out))
    ref, cache = made_forward(x, net.params, net.masks)
    ref_dx, grads = made_backward(np.ones_like(out), cache)
    assert np.array_equal(out, ref) and np.array_equal(dx, ref_dx)
    assert all(np.array_equal(net.grads[key], grads[key]) for key in grads)


# ------------------------------------------------------------------------------------------------
# bad input at construction
# ------------------------------------------------------------------------------------------------
def test_hidden_width_below_d_minus_1_is_refused():
    with pytest.raises(ValueError, match=r"hidden: layer 1 has width 3 < D - 1 = 5.*no path"):
        MAF(6, hidden=[8, 3])


@pytest.mark.parametrize("order", [[0, 0, 1], [0, 1], [0, 1, 3], [0.0, 1.0, 2.0], "sideways"])
def test_orders_that_are_not_permutations_are_refused(order):
    with pytest.raises(ValueError, match="order: expected"):
        IAF(3, hidden=[4], order=order)


def test_masks_that_break_the_property_are_refused(rng):
    good = made_masks(made_degrees(np.arange(3), [4]), k=2)
    MADE(3, [4], k=2, masks=good)
    bad = [M.copy() for M in good]
    bad[0][2, :] = 1.0                     # the last input now reaches every hidden unit
    with pytest.raises(ValueError, match="masks: they break the autoregressive property"):
        MADE(3, [4], k=2, masks=bad)
    diag = [M.copy() for M in good]
    diag[1][:, 0] = 1.0                    # output 0 (generated first) now sees input 0
    with pytest.raises(ValueError, match="output 0 .* depends on input 0"):
        check_made_masks(diag, np.arange(3), k=2)
    with pytest.raises(ValueError, match="masks: expected a chain"):
        MADE(3, [4], k=2, masks=good[:1])


@pytest.mark.parametrize("kwargs, match", [
    ({"dim": 1, "hidden": [4]}, "at least 2 features"),
    ({"dim": 2, "s_max": 0.0}, "s_max"),
    ({"dim": 2, "activation": "gelu"}, "activation"),
    ({"dim": 3, "hidden_degrees": "sorted"}, "hidden_degrees"),
])
def test_other_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MAF(**kwargs)


# ------------------------------------------------------------------------------------------------
# the transforms: triangular Jacobian, gradients in both directions, backends agree
# ------------------------------------------------------------------------------------------------
CONFIGS = [
    dict(hidden=[8, 8]),
    dict(hidden=[5], order="random", seed=3, activation="relu"),
    dict(hidden=[6, 5, 4], order="reverse", hidden_degrees="random", activation="leaky_relu"),
    dict(hidden=[], order=[2, 0, 3, 1]),
    dict(hidden=[7], activation="softplus", s_max=1.0),
]


@pytest.mark.parametrize("cls", [MAF, IAF])
@pytest.mark.parametrize("config", range(len(CONFIGS)))
@pytest.mark.parametrize("backend", BACKENDS)
def test_gradcheck_both_directions(cls, config, backend):
    t = cls(4, rng=config, **CONFIGS[config])
    perturb_params(t, config)
    with use_backend(backend):
        result = check_transform(t, n=6, verbose=False)
    assert result.passed, result.table()
    assert result.max_error < 1e-6


@pytest.mark.parametrize("cls, direction", [(MAF, "forward"), (MAF, "inverse"),
                                            (IAF, "forward"), (IAF, "inverse")])
def test_jacobian_is_triangular_in_the_order(cls, direction, rng):
    t = perturb_params(cls(5, hidden=[6], order="random", seed=2, rng=rng), rng)
    step = t.forward if direction == "forward" else t.inverse
    p = rng.normal(size=5)
    J = numerical_jacobian(lambda q: step(q[None])[0][0], p)
    m = _degrees_in(t.order)
    assert np.all(J[m[:, None] < m[None, :]] == 0.0)
    P = J[np.ix_(t.order, t.order)]                     # rows/columns in the generation order
    assert np.array_equal(P, np.tril(P))
    assert np.isclose(np.linalg.slogdet(J)[1], step(p[None])[1][0], atol=1e-7)


@pytest.mark.parametrize("cls", [MAF, IAF])
def test_backends_agree(cls, rng):
    t = perturb_params(cls(6, hidden=[16, 16], order="random", rng=rng), rng)
    z = rng.normal(size=(700, 6))
    results = {}
    for backend in BACKENDS:
        with use_backend(backend):
            x, ld = t.forward(z)
            dz = t.backward(np.cos(x), np.sin(ld))
            g1 = {k: v.copy() for k, v in t.grads.items()}
            z2, ld2 = t.inverse(x)
            dx = t.inverse_backward(np.cos(z2), np.sin(ld2))
            results[backend] = [x, ld, dz, z2, ld2, dx, *g1.values(), *t.grads.values()]
    for a, b in zip(*results.values()):
        assert np.allclose(a, b, rtol=1e-11, atol=1e-11)


# (one pass, its backward, sequential direction, its backward) of each form
FORMS = {"IAF form": (iaf_forward, iaf_forward_backward, iaf_inverse, iaf_inverse_backward),
         "MAF form": (maf_inverse, maf_inverse_backward, maf_forward,
                      maf_forward_backward)}


@pytest.mark.parametrize("form", list(FORMS))
def test_sequential_gradient_agrees_with_autograd(form, rng):
    """Both routes of the module docstring: the implicit-function back-substitution here, and
    PyTorch's autograd through the D passes as they ran, to 1e-10; and the one pass."""
    torch = pytest.importorskip("torch")
    one_pass, one_pass_backward, sequential, sequential_backward = FORMS[form]
    shift_first = form == "MAF form"
    D = 4
    net = perturb_params(MADE(D, [6, 5], k=2, order=[2, 0, 3, 1], rng=rng), rng)
    z = rng.normal(size=(9, D))
    dx, dl = rng.normal(size=(9, D)), rng.normal(size=9)
    for forward in (sequential, one_pass):
        args = (net.order,) if forward is sequential else ()
        out, log_det, cache = forward(z, net.params, net.masks, *args)
        backward = sequential_backward if forward is sequential else one_pass_backward
        dz, grads = backward(dx, dl, cache)

        tp = {k: torch.tensor(v, requires_grad=True) for k, v in net.params.items()}
        tm = [torch.tensor(M) for M in net.masks]

        def made(u):
            h = u
            for l, M in enumerate(tm):
                h = h @ (tp[f"W{l}"] * M) + tp[f"b{l}"]
                if l < len(tm) - 1:
                    h = torch.tanh(h)
            s = 2.0 * torch.tanh(h[:, :D] / 2.0)
            return s, h[:, D:]

        tz = torch.tensor(z, requires_grad=True)
        if forward is one_pass:
            s, t = made(tz)
            if shift_first:                              # z = (x - t) e^{-s}
                y, ld = (tz - t) * torch.exp(-s), -s.sum(1)
            else:                                        # y = u e^{s} + t
                y, ld = tz * torch.exp(s) + t, s.sum(1)
        else:
            cols = [torch.zeros(9, dtype=torch.float64) for _ in range(D)]
            for i in net.order:                          # D passes, autograd through each
                s, t = made(torch.stack(cols, 1))
                if shift_first:
                    cols[i] = tz[:, i] * torch.exp(s[:, i]) + t[:, i]
                else:
                    cols[i] = (tz[:, i] - t[:, i]) * torch.exp(-s[:, i])
            y = torch.stack(cols, 1)
            ld = (1.0 if shift_first else -1.0) * made(y)[0].sum(1)
        loss = (y * torch.tensor(dx)).sum() + (ld * torch.tensor(dl)).sum()
        loss.backward()
        assert np.allclose(y.detach().numpy(), out, atol=1e-12)
        assert np.allclose(log_det, ld.detach().numpy(), atol=1e-12)
        assert np.allclose(dz, tz.grad.numpy(), rtol=1e-10, atol=1e-10)
        for key in grads:
            assert np.allclose(grads[key], tp[key].grad.numpy(), rtol=1e-10, atol=1e-10), key


def test_maf_uses_the_shift_first_form_and_iaf_the_scale_first(rng):
    """The layers' one passes against the MADE's outputs written out: MAF's density direction
    ``z = (x - t) e^{-s}`` (Papamakarios et al.), IAF's sampling ``x = z e^{s} + t`` (Kingma et
    al.), on both backends."""
    D = 3
    for cls in (MAF, IAF):
        layer = perturb_params(cls(D, hidden=[6], order="random", seed=1, rng=rng), rng)
        p = rng.normal(size=(5, D))
        out = made_forward(p, layer.params, layer.masks)[0]
        s, t = layer.s_max * np.tanh(out[:, :D] / layer.s_max), out[:, D:]
        for backend in BACKENDS:
            with use_backend(backend):
                if cls is MAF:
                    z, log_det = layer.inverse(p)
                    assert np.allclose(z, (p - t) * np.exp(-s), rtol=1e-12, atol=1e-12)
                    assert np.allclose(log_det, -s.sum(axis=1), rtol=1e-12, atol=1e-12)
                else:
                    x, log_det = layer.forward(p)
                    assert np.allclose(x, p * np.exp(s) + t, rtol=1e-12, atol=1e-12)
                    assert np.allclose(log_det, s.sum(axis=1), rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------------------------------------
# the kernel and its twin
# ------------------------------------------------------------------------------------------------
KERNEL_CASES = [(2, [8], "tanh", 5), (5, [7, 9], "relu", 600), (3, [], "tanh", 3),
                (8, [16, 16, 16], "leaky_relu", 257), (16, [20], "tanh", 1)]


@pytest.mark.parametrize("form", list(FORMS))
@pytest.mark.parametrize("D, hidden, activation, N", KERNEL_CASES)
def test_kernel_equals_its_twin(form, D, hidden, activation, N, rng):
    net = perturb_params(MADE(D, hidden, k=2, order="random", hidden_degrees="random",
                              activation=activation, rng=rng, seed=D), rng)
    z = rng.normal(size=(N, D))
    x_ref, ld_ref, _ = FORMS[form][2](z, net.params, net.masks, net.order, activation, 1.5)
    weights, sizes = pack_made(net.params, net.masks)
    hidden_deg = np.concatenate([np.zeros(0, dtype=np.int64), *net.degrees[1:]])
    x, ld = maf_forward_nb(z, weights, sizes, hidden_deg, net.order, ACT_CODES[activation], 1.5,
                           form == "MAF form")
    assert np.allclose(x, x_ref, rtol=1e-12, atol=1e-12)
    assert np.allclose(ld, ld_ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("D, hidden, activation, N", KERNEL_CASES)
def test_backward_kernel_of_the_maf_form_equals_its_twin(D, hidden, activation, N, rng):
    """The sequential backward kernel with ``shift_first=True`` against the teaching
    back-substitution of the MAF form (the IAF form's is compared in tests/test_kernels.py)."""
    net = perturb_params(MADE(D, hidden, k=2, order="random", hidden_degrees="random",
                              activation=activation, rng=rng, seed=D), rng)
    net.params[f"W{len(hidden)}"][:, 0] = 0.0   # zero weights that exist still have gradients
    u = rng.normal(size=(N, D))
    dx, dlog_det = rng.normal(size=(N, D)), rng.normal(size=N)
    _, _, cache = maf_inverse(u, net.params, net.masks, activation, 1.5)
    dz_ref, grads_ref = maf_forward_backward(dx, dlog_det, {**cache, "order": net.order})
    weights, sizes = pack_made(net.params, net.masks)
    dz, dweights = maf_forward_backward_nb(dx, dlog_det, u, weights, pack_masks(net.masks), sizes,
                                           unit_degrees(net.masks, net.order), net.order,
                                           ACT_CODES[activation], 1.5, True)
    assert np.allclose(dz, dz_ref, rtol=1e-11, atol=1e-11)
    grads = unpack_made(dweights, sizes)
    assert set(grads) == set(grads_ref)
    for key in grads:
        assert np.allclose(grads[key], grads_ref[key], rtol=1e-11, atol=1e-11), key


def test_kernel_refuses_bad_arguments(rng):
    net = MADE(3, [4], k=2, rng=rng)
    weights, sizes = pack_made(net.params, net.masks)
    deg, order, z = net.degrees[1], net.order, rng.normal(size=(4, 3))
    ok = (z, weights, sizes, deg, order, 0, 2.0)
    maf_forward_nb(*ok)
    cases = [
        ((z.astype(np.float32),) + ok[1:], TypeError, "z: expected dtype float64"),
        ((z[:, ::-1],) + ok[1:], ValueError, "C-contiguous"),
        (ok[:1] + (weights[:-1],) + ok[2:], ValueError, "weights: expected shape"),
        (ok[:2] + (np.array([3, 4, 5]),) + ok[3:], ValueError, r"sizes: expected \[D, H_1"),
        (ok[:3] + (deg[:2],) + ok[4:], ValueError, "hidden_deg: expected shape"),
        (ok[:4] + (np.array([0, 1, 3]),) + ok[5:], ValueError, "order: expected indices"),
        (ok[:5] + (7, 2.0), ValueError, "act: expected"),
        (ok[:6] + (-1.0,), ValueError, "s_max"),
        (ok + (1,), ValueError, "shift_first: expected True"),
    ]
    for args, exc, match in cases:
        with pytest.raises(exc, match=match):
            maf_forward_nb(*args)


# ------------------------------------------------------------------------------------------------
# models, save/load, plots, training
# ------------------------------------------------------------------------------------------------
def test_models_alternate_orders_and_refuse_bad_ones():
    flow = models.maf(3, n_layers=3, hidden=[4], rng=0)
    assert [t.order.tolist() for t in flow] == [[0, 1, 2], [2, 1, 0], [0, 1, 2]]
    flow = models.iaf(4, n_layers=2, hidden=[4], orders="random", seed=5, rng=0)
    assert all(sorted(t.order.tolist()) == [0, 1, 2, 3] for t in flow)
    with pytest.raises(ValueError, match="orders: expected"):
        models.maf(2, orders="shuffled")


@pytest.mark.parametrize("builder", [models.maf, models.iaf])
def test_save_load_round_trip(builder, tmp_path, rng):
    flow = builder(3, n_layers=2, hidden=[5, 5], orders="random", rng=rng)
    for t in flow:
        perturb_params(t, rng)
    path = io.save(flow, tmp_path / "ar.npz")
    back = io.load(path)
    x = rng.normal(size=(6, 3))
    assert np.array_equal(back.log_prob(x), flow.log_prob(x))
    for t, u in zip(flow, back):
        assert t.config() == u.config() and all(np.array_equal(a, b)
                                                for a, b in zip(t.masks, u.masks))
        assert TRANSFORMS[type(t).__name__].param_shapes(**t.config()) == {
            k: v.shape for k, v in t.params.items()}


def test_a_maf_checkpoint_of_the_scale_first_form_is_refused(tmp_path, monkeypatch, rng):
    """A MAF saved before the MAF took the shift-first form has no ``form`` in its config: its
    parameters would give other densities, so loading it names the problem instead."""
    flow = models.maf(2, n_layers=2, hidden=[4], rng=rng)
    assert all(t.config()["form"] == "shift-first" for t in flow)
    old_config = MAF.config
    monkeypatch.setattr(MAF, "config", lambda self: {k: v for k, v in old_config(self).items()
                                                     if k != "form"})
    path = io.save(flow, tmp_path / "old_maf.npz")
    with pytest.raises(io.CheckpointError, match="form: expected 'shift-first', got None"):
        io.load(path)
    with pytest.raises(ValueError, match="form: expected 'shift-first'"):
        MAF(2, hidden=[4], form="scale-first")


def test_maf_learns_two_moons_and_iaf_learns_u1(rng):
    flow = models.maf(2, n_layers=3, hidden=[16, 16], rng=rng)
    data = datasets.sample("two_moons", 2000, rng)
    hist = fit(flow, data=data, steps=150, batch_size=128, lr=5e-3, rng=rng, progress=False)
    assert np.mean(hist.loss[-20:]) < np.mean(hist.loss[:20]) - 0.3
    flow = models.iaf(2, n_layers=3, hidden=[16, 16], rng=rng)
    hist = fit(flow, target=datasets.energy("U1"), steps=150, batch_size=128, lr=5e-3, rng=rng,
               progress=False)
    assert np.mean(hist.loss[-20:]) < np.mean(hist.loss[:20]) - 0.3


def test_plots_work_and_the_jacobian_picture_shows_the_order(rng):
    import matplotlib.pyplot as plt
    from nfscratch import plotting
    flow = models.maf(2, n_layers=2, hidden=[8], rng=rng)
    for t in flow:
        perturb_params(t, rng)
    fig = plotting.plot_jacobian(flow[1])
    assert any("autoregressive order" in ax.get_title() for ax in fig.axes)
    assert np.isclose(np.linalg.slogdet(fig.jacobian)[1],
                      flow[1].forward(np.random.default_rng(0).standard_normal((1, 2)))[1][0])
    plt.close(fig)
    for make in (lambda: plotting.film_strip(flow),
                 lambda: plotting.plot_layer_densities(models.iaf(2, 2, hidden=[4], rng=0),
                                                       grid_size=30)):
        plt.close(make())
