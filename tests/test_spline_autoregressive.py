"""Autoregressive rational-quadratic spline layer: identity at init, gradients in both directions
on both backends, log-det against slogdet, round trip, kernel path == teaching functions, the
model builder, training, saving, the command line and the pictures."""
import numpy as np
import pytest

from nfscratch import gradcheck, use_backend
from nfscratch.transforms import SplineAutoregressive
from nfscratch.transforms.made import MADE
from nfscratch.transforms.spline import spline_forward
from nfscratch.transforms.spline_autoregressive import (spline_autoregressive_forward,
                                                        spline_autoregressive_inverse)

B = 3.0


def _layer(dim=2, **kw):
    t = SplineAutoregressive(dim, hidden=kw.pop("hidden", [8]), n_bins=5, bound=B, rng=1, **kw)
    gradcheck.perturb_params(t, 2, scale=0.25)     # moderate slopes: FD stays accurate
    return t


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_zero_init_layer_is_the_identity(backend, rng):
    t = SplineAutoregressive(3, hidden=[8], n_bins=6, bound=B, rng=0)
    z = 2.0 * rng.normal(size=(40, 3))
    with use_backend(backend):
        x, log_det = t.forward(z)
        z2, log_det_inv = t.inverse(z)
    for a, b in ((x, z), (z2, z)):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-14)
    np.testing.assert_allclose(log_det, 0.0, rtol=0, atol=1e-14)       # round-off of the knots
    np.testing.assert_allclose(log_det_inv, 0.0, rtol=0, atol=1e-14)


def test_the_map_is_made_then_one_spline_per_feature(rng):
    # the one pass, rebuilt from MADE's outputs and the elementwise spline by hand
    net = MADE(3, [8], k=3 * 4 - 1, order="reverse", rng=0)
    gradcheck.perturb_params(net, 1)
    x = rng.normal(size=(6, 3))
    z, log_det, _ = spline_autoregressive_inverse(x, net.params, net.masks, n_bins=4, bound=B)
    out = net.forward(x)                                          # (6, 11 * 3), block c = column c D + i
    for i in range(3):
        theta = out[:, i::3]                                      # (6, 11): feature i's parameters
        zi, li, _ = spline_forward(x[:, i], theta[:, :4], theta[:, 4:8], theta[:, 8:], bound=B)
        np.testing.assert_allclose(z[:, i], zi, rtol=1e-14, atol=1e-14)
    # the first feature in the order (feature 2) sees no input: its spline is the same for all
    x_other = x.copy()
    x_other[:, :2] = rng.normal(size=(6, 2))
    z_other = spline_autoregressive_inverse(x_other, net.params, net.masks, n_bins=4, bound=B)[0]
    np.testing.assert_array_equal(z_other[:, 2], z[:, 2])


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("kw", [{}, {"dim": 3, "order": "reverse"},
                                {"dim": 4, "order": "random", "seed": 3, "activation": "relu",
                                 "hidden": [8, 8]}])
def test_layer_gradcheck_both_directions(backend, kw, rng):
    t = _layer(**kw)
    z = rng.normal(size=(8, t.dim))
    z[0, :] = 4.0                                        # tail points (|z| > B)
    with use_backend(backend):
        res = gradcheck.check_transform(t, z, verbose=False)
    assert res.passed, res.table()
    assert res.counts()["SKIP"] == 0, res.table()
    assert {r.name for r in res.rows} >= {"log_det", "round trip"}


def test_sequential_direction_round_trips_far_out_and_in_the_tails(rng):
    t = _layer(dim=3, order="random", seed=2)
    z = np.concatenate([rng.normal(size=(30, 3)), [[1e300, -1e300, 0.0], [B, -B, 0.5]]])
    x, log_det = t.forward(z)
    assert np.all(np.isfinite(x)) and np.all(np.isfinite(log_det))
    z2, log_det_inv = t.inverse(x)
    np.testing.assert_allclose(z2, z, rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(log_det_inv, -log_det, atol=1e-10)


def test_kernel_path_equals_the_teaching_functions(rng):
    t = _layer(dim=3, order="reverse", hidden=[16, 16])
    x = 2.0 * rng.normal(size=(64, 3))
    out = {}
    for backend in ("numpy", "numba"):
        with use_backend(backend):
            z, ld = t.inverse(x)
            dx = t.inverse_backward(np.cos(x), np.sin(ld))
            out[backend] = [z, ld, dx, *t.grads.values()]
    for a, b in zip(out["numpy"], out["numba"]):
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-11)


def test_teaching_functions_round_trip(rng):
    net = MADE(3, [8], k=3 * 6 - 1, rng=0)
    gradcheck.perturb_params(net, 4, scale=0.4)
    z = rng.normal(size=(10, 3))
    x, log_det, _ = spline_autoregressive_forward(z, net.params, net.masks, net.order, n_bins=6)
    z2, log_det_inv, _ = spline_autoregressive_inverse(x, net.params, net.masks, n_bins=6)
    np.testing.assert_allclose(z2, z, atol=1e-11)
    np.testing.assert_allclose(log_det, -log_det_inv, atol=1e-11)


def test_layer_refuses_bad_settings_and_input():
    with pytest.raises(ValueError, match="n_bins"):
        SplineAutoregressive(2, n_bins=1)
    with pytest.raises(ValueError, match="bound"):
        SplineAutoregressive(2, bound=0.0)
    with pytest.raises(ValueError, match="hidden"):
        SplineAutoregressive(4, hidden=[2])
    with pytest.raises(ValueError, match="dim"):
        SplineAutoregressive(1)
    t = SplineAutoregressive(2, hidden=[4])
    for bad in (np.nan, np.inf):
        with pytest.raises(ValueError, match="x: expected finite values"):
            t.inverse(np.array([[bad, 0.0]]))


def test_layer_param_shapes_and_config_rebuild():
    t = SplineAutoregressive(3, hidden=[8, 4], n_bins=7, order="random", seed=5)
    assert {k: v.shape for k, v in t.params.items()} == SplineAutoregressive.param_shapes(**t.config())
    again = SplineAutoregressive(**t.config())
    assert again.order.tolist() == t.order.tolist()
    assert all(np.array_equal(a, b) for a, b in zip(again.masks, t.masks))


# --- models, training, saving, the command line, pictures -----------------------------------
def test_nsf_autoregressive_alternates_orders_trains_saves_and_loads(tmp_path, rng):
    from nfscratch import datasets, io, models
    from nfscratch.train import fit
    flow = models.nsf_autoregressive(2, n_layers=3, hidden=[16], n_bins=6, bound=3.0, rng=0)
    assert [t.order.tolist() for t in flow] == [[0, 1], [1, 0], [0, 1]]
    data = datasets.sample("two_moons", 1024, rng)
    before = -np.mean(flow.log_prob(data))
    hist = fit(flow, data=data, steps=60, batch_size=128, lr=5e-3, rng=1, progress=False)
    after = -np.mean(flow.log_prob(data))
    assert np.all(np.isfinite(hist.loss)) and after < before - 0.3
    path = io.save(flow, tmp_path / "nsf_ar.npz")
    again = io.load(path)
    assert [t.config() for t in again.transforms] == [t.config() for t in flow.transforms]
    np.testing.assert_array_equal(again.log_prob(data[:50]), flow.log_prob(data[:50]))
    x = flow.sample(20, rng=3)
    assert x.shape == (20, 2) and np.all(np.isfinite(x))


def test_nsf_autoregressive_uniform_biases(rng):
    from nfscratch import models
    flow = models.nsf_autoregressive(2, n_layers=2, hidden=[16, 16], n_bins=4, rng=0,
                                     activation="relu", bias_init="uniform")
    zero = models.nsf_autoregressive(2, n_layers=2, hidden=[16, 16], n_bins=4, rng=0,
                                     activation="relu")
    for t, t0 in zip(flow.transforms, zero.transforms):
        for l, M in enumerate(t.masks):
            b, a = t.params[f"b{l}"], 1.0 / np.sqrt(M.shape[0])      # PyTorch's nn.Linear bound
            assert np.all(np.abs(b) <= a) and np.std(b) > 0.2 * a
            np.testing.assert_array_equal(t.params[f"W{l}"], t0.params[f"W{l}"])
        assert not np.any(t.params["W2"])                # input-independent splines at the start
    assert np.all(np.isfinite(flow.log_prob(rng.normal(size=(64, 2)))))
    assert np.all(np.isfinite(flow.sample(16, rng=0)))    # the sequential direction still runs
    gradcheck.perturb_params(flow, 1, scale=0.3)
    res = gradcheck.check_transform(flow[0], rng.normal(size=(8, 2)), verbose=False)
    assert res.passed, res.table()
    with pytest.raises(ValueError, match="bias_init"):
        models.nsf_autoregressive(2, bias_init="normal")


def test_cli_trains_an_nsf_autoregressive(tmp_path):
    from nfscratch import io
    from nfscratch.cli import main
    out = tmp_path / "nsf_ar.npz"
    assert main(["train", "--dataset", "two_moons", "--model", "nsf_autoregressive",
                 "--layers", "2", "--hidden", "8", "--steps", "10", "-o", str(out),
                 "--no-progress"]) == 0
    flow = io.load(out)
    assert [t.name for t in flow.transforms] == ["SplineAutoregressive"] * 2


def test_plots_work_for_an_autoregressive_spline_flow():
    from nfscratch import models
    from nfscratch.plotting import film_strip, plot_layer_densities, plot_spline_layer
    flow = models.nsf_autoregressive(2, n_layers=2, hidden=[8], n_bins=4, rng=0)
    before = {k: v.copy() for k, v in flow[0].params.items()}
    gradcheck.perturb_params(flow, 1, scale=0.3)
    assert len(plot_spline_layer(flow[0], before=before).axes) == 2     # both features bend
    plot_layer_densities(flow, grid_size=30)
    film_strip(flow, n_samples=50, grid_size=30)
