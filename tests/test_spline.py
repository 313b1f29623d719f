"""Rational-quadratic splines: identity at init, knots, bounds, tails, tiny bins, gradients in
both directions, log-det against slogdet, round trips, the kernel against its twin, the layer."""
from pathlib import Path

import numpy as np
import pytest

from nfscratch import gradcheck, use_backend
from nfscratch.kernels import spline as ks
from nfscratch.transforms.spline import (SplineCoupling, spline_backward, spline_forward,
                                         spline_inverse, spline_inverse_backward, spline_params)

B = 3.0
K = 6
OPTS = dict(bound=B, min_width=1e-3, min_height=1e-3, min_derivative=1e-3)


def _params(rng, M, K=K, scale=1.5):
    return (scale * rng.standard_normal((M, K)), scale * rng.standard_normal((M, K)),
            scale * rng.standard_normal((M, K - 1)))


def _fd_slope(f, x, eps=1e-6):
    return (f(x + eps) - f(x - eps)) / (2 * eps)


# --- identity at initialization -------------------------------------------------------------
def test_zero_parameters_give_the_identity_exactly():
    x = np.linspace(-2 * B, 2 * B, 4001)
    u = np.zeros((x.size, K))
    kx, ky, d, _ = spline_params(u, u, np.zeros((x.size, K - 1)), **OPTS)
    assert np.array_equal(d, np.ones_like(d))                 # derivatives exactly 1
    assert np.array_equal(kx, ky)
    for fn in (spline_forward, spline_inverse):
        y, log_det, _ = fn(x, u, u, np.zeros((x.size, K - 1)), **OPTS)
        np.testing.assert_allclose(y, x, rtol=0, atol=1e-15)
        np.testing.assert_allclose(log_det, 0.0, rtol=0, atol=1e-15)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_zero_init_layer_is_the_identity(backend, rng):
    t = SplineCoupling(2, hidden=[8], n_bins=K, bound=B, rng=0)
    z = rng.normal(size=(50, 2)) * 2
    with use_backend(backend):
        x, ld = t.forward(z)
        z2, ld2 = t.inverse(z)
    for out, log_det in ((x, ld), (z2, ld2)):
        np.testing.assert_allclose(out, z, rtol=0, atol=1e-15)
        np.testing.assert_allclose(log_det, 0.0, rtol=0, atol=1e-15)


# --- special inputs ---------------------------------------------------------------------------
def test_inputs_exactly_on_knots_and_at_the_bounds(rng):
    M = 40
    uw, uh, ud = _params(rng, M)
    kx, ky, d, _ = spline_params(uw, uh, ud, **OPTS)
    j = rng.integers(0, K + 1, size=M)
    j[:2] = [0, K]                                         # -B and +B
    x = np.take_along_axis(kx, j[:, None], 1)[:, 0]
    y, log_det, cache = spline_forward(x, uw, uh, ud, **OPTS)
    np.testing.assert_allclose(y, np.take_along_axis(ky, j[:, None], 1)[:, 0], atol=1e-13)
    np.testing.assert_allclose(log_det, np.log(np.take_along_axis(d, j[:, None], 1)[:, 0]),
                               atol=1e-12)
    x2, log_det2, cache2 = spline_inverse(y, uw, uh, ud, **OPTS)
    np.testing.assert_allclose(x2, x, atol=1e-12)
    np.testing.assert_allclose(log_det2, -log_det, atol=1e-12)
    ones = np.ones(M)
    for back, c in ((spline_backward, cache), (spline_inverse_backward, cache2)):
        assert all(np.all(np.isfinite(g)) for g in back(ones, ones, c))


@pytest.mark.parametrize("far", [1e300, 1e10, B * (1 + 1e-15)])
def test_tails_are_the_identity_with_no_nan(rng, far):
    M = 6
    uw, uh, ud = _params(rng, M)
    x = far * np.array([1, -1, 1, -1, 1, -1.0])
    for fn, back in ((spline_forward, spline_backward), (spline_inverse, spline_inverse_backward)):
        y, log_det, cache = fn(x, uw, uh, ud, **OPTS)
        assert np.array_equal(y, x) and np.array_equal(log_det, np.zeros(M))
        dy = rng.normal(size=M)
        d_in, duw, duh, dud = back(dy, rng.normal(size=M), cache)
        assert np.array_equal(d_in, dy)
        assert not duw.any() and not duh.any() and not dud.any()
    for fn in (ks.spline_forward_nb, ks.spline_inverse_nb):
        y, log_det = fn(x, uw, uh, ud, *OPTS.values())
        assert np.array_equal(y, x) and np.array_equal(log_det, np.zeros(M))


def test_tiny_bins_and_minimum_derivative(rng):
    M = 200
    uw, uh, ud = _params(rng, M)
    uw[:, 2] = uh[:, 3] = -60.0                 # bins at their minimum width / height
    ud[:, :] = -60.0                             # derivatives at their minimum
    kx, ky, d, _ = spline_params(uw, uh, ud, **OPTS)
    assert np.all(np.diff(kx, axis=1) >= 2 * B * 1e-3 * (1 - 1e-9))
    assert np.all(d[:, 1:-1] >= 1e-3) and np.all(d[:, 1:-1] < 1.01e-3)
    # points inside the tiny x bin and inside the tiny y bin
    x = np.concatenate([kx[:, 2] + 0.37 * (kx[:, 3] - kx[:, 2]), kx[:, 3] + 0.61 * (kx[:, 4] - kx[:, 3])])
    P = [np.concatenate([a, a]) for a in (uw, uh, ud)]
    y, log_det, _ = spline_forward(x, *P, **OPTS)
    assert np.all(np.isfinite(log_det))
    fd = _fd_slope(lambda v: spline_forward(v, *P, **OPTS)[0], x, eps=1e-9)
    np.testing.assert_allclose(log_det, np.log(fd), atol=1e-4)
    x2, log_det2, _ = spline_inverse(y, *P, **OPTS)
    np.testing.assert_allclose(x2, x, atol=1e-10)
    np.testing.assert_allclose(log_det2, -log_det, atol=1e-9)


def test_inverse_never_nan_on_a_dense_grid(rng):
    # many bins and extreme slopes: where a discriminant below zero would show up as NaN
    M = 20000
    uw, uh, ud = _params(rng, M, K=16, scale=4.0)
    y = rng.uniform(-B, B, M)
    y[:16] = spline_params(uw[:1], uh[:1], ud[:1], **OPTS)[1][0, :16]   # on the y knots
    x, log_det, _ = spline_inverse(y, uw, uh, ud, **OPTS)
    assert np.all(np.isfinite(x)) and np.all(np.isfinite(log_det))
    y2 = spline_forward(x, uw, uh, ud, **OPTS)[0]
    np.testing.assert_allclose(y2, y, atol=1e-10)


# --- gradients by finite differences, log-det by FD slope ---------------------------------
def _points(rng, M):
    # random points, in the bins and in both tails (knots are measure zero)
    return np.concatenate([rng.uniform(-B, B, M - 4), [-5.0, 4.0, -3.5, 7.0]])


@pytest.mark.parametrize("direction", ["forward", "inverse"])
def test_elementwise_gradients(rng, direction):
    M = 12
    uw, uh, ud = _params(rng, M)
    inputs = {"p": _points(rng, M), "uw": uw, "uh": uh, "ud": ud}
    fwd, back = ((spline_forward, spline_backward) if direction == "forward"
                 else (spline_inverse, spline_inverse_backward))
    res = gradcheck.check_gradients(lambda p, uw, uh, ud: fwd(p, uw, uh, ud, **OPTS), back,
                                    inputs, wrt=("p", "uw", "uh", "ud"), verbose=False,
                                    direction=direction)
    assert res.passed and res.max_error < 1e-6, res.table()


@pytest.mark.parametrize("fn", [spline_forward, spline_inverse])
def test_log_det_is_the_slope(rng, fn):
    M = 300
    uw, uh, ud = _params(rng, M)
    x = _points(rng, M)
    log_det = fn(x, uw, uh, ud, **OPTS)[1]
    fd = _fd_slope(lambda v: fn(v, uw, uh, ud, **OPTS)[0], x)
    # (slopes span e^-10 .. e^10 here: compare them, not their logs, where FD noise is relative)
    np.testing.assert_allclose(np.exp(log_det), fd, rtol=1e-6, atol=1e-9)


# --- the kernel against its twin, pair by pair ---------------------------------------------
@pytest.mark.parametrize("direction", ["forward", "inverse"])
def test_kernel_equals_twin(rng, direction):
    M = 3000
    uw, uh, ud = _params(rng, M, K=8, scale=2.0)
    p = _points(rng, M)
    p[:3] = [-B, B, 1e300]
    twin, twin_back = ((spline_forward, spline_backward) if direction == "forward"
                       else (spline_inverse, spline_inverse_backward))
    nb, nb_back = ((ks.spline_forward_nb, ks.spline_backward_nb) if direction == "forward"
                   else (ks.spline_inverse_nb, ks.spline_inverse_backward_nb))
    out, log_det, cache = twin(p, uw, uh, ud, **OPTS)
    out_nb, log_det_nb = nb(p, uw, uh, ud, *OPTS.values())
    np.testing.assert_allclose(out_nb, out, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(log_det_nb, log_det, rtol=1e-10, atol=1e-11)
    d, dl = rng.normal(size=M), rng.normal(size=M)
    for a, b in zip(twin_back(d, dl, cache), nb_back(d, dl, p, uw, uh, ud, *OPTS.values())):
        assert np.all(np.abs(a - b) <= 1e-10 * np.maximum(1.0, np.abs(a)))


def test_kernel_refuses_bad_arguments(rng):
    uw, uh, ud = _params(rng, 4)
    x = np.zeros(4)
    with pytest.raises(ValueError, match="ud: expected shape"):
        ks.spline_forward_nb(x, uw, uh, np.zeros((4, K - 2)), *OPTS.values())
    with pytest.raises(TypeError, match="x: expected dtype float64"):
        ks.spline_forward_nb(x.astype(np.float32), uw, uh, ud, *OPTS.values())
    with pytest.raises(ValueError, match="dlog_det: expected shape"):
        ks.spline_backward_nb(x, x[:3], x, uw, uh, ud, *OPTS.values())
    with pytest.raises(ValueError, match="bound: expected a positive float"):
        ks.spline_forward_nb(x, uw, uh, ud, 3, 1e-3, 1e-3, 1e-3)


# --- the coupling layer -----------------------------------------------------------------------
def _layer(**kw):
    t = SplineCoupling(kw.pop("dim", 2), hidden=[8], n_bins=5, bound=B, rng=1,
                       **kw)
    gradcheck.perturb_params(t, 2, scale=0.25)     # moderate slopes: FD stays accurate
    return t


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("kw", [{}, {"dim": 3, "parity": 1}, {"dim": 4, "mask": [1, 1, 0, 0],
                                                               "activation": "relu"}])
def test_layer_gradcheck_both_directions(backend, kw, rng):
    t = _layer(**kw)
    z = rng.normal(size=(8, t.dim))
    z[0, :] = 4.0                                        # a tail point
    with use_backend(backend):
        res = gradcheck.check_transform(t, z, verbose=False)
    assert res.passed, res.table()


def test_layer_backends_agree(rng):
    t = _layer(dim=3)
    z = 2.0 * rng.normal(size=(64, 3))
    out = {}
    for backend in ("numpy", "numba"):
        with use_backend(backend):
            x, ld = t.forward(z)
            dz = t.backward(np.ones_like(z), np.ones(64))
            g = dict(t.grads)
            zi, ldi = t.inverse(x)
            dx = t.inverse_backward(np.ones_like(z), np.ones(64))
            out[backend] = [x, ld, dz, zi, ldi, dx, *g.values(), *t.grads.values()]
    for a, b in zip(out["numpy"], out["numba"]):
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-11)


def test_layer_refuses_bad_settings_and_input():
    with pytest.raises(ValueError, match="n_bins"):
        SplineCoupling(2, n_bins=1)
    with pytest.raises(ValueError, match="bound"):
        SplineCoupling(2, bound=-1.0)
    with pytest.raises(ValueError, match="min_width"):
        SplineCoupling(2, n_bins=8, min_width=0.2)
    with pytest.raises(ValueError, match="mask"):
        SplineCoupling(2, mask=[1, 1])
    t = SplineCoupling(2, hidden=[4])
    for bad in (np.nan, np.inf):
        with pytest.raises(ValueError, match="z: expected finite values"):
            t.forward(np.array([[0.0, bad]]))
        with pytest.raises(ValueError, match="x: expected finite values"):
            t.inverse(np.array([[bad, 0.0]]))


def test_layer_param_shapes_match():
    t = SplineCoupling(3, hidden=[8, 4], n_bins=7, parity=1)
    assert {k: v.shape for k, v in t.params.items()} == SplineCoupling.param_shapes(**t.config())


# --- models, training, saving, the command line, pictures -----------------------------------
def test_nsf_coupling_trains_saves_and_loads(tmp_path, rng):
    from nfscratch import datasets, io, models
    from nfscratch.train import fit
    flow = models.nsf_coupling(2, n_layers=3, hidden=[16], n_bins=6, rng=0)
    data = datasets.sample("two_moons", 1024, rng)
    before = -np.mean(flow.log_prob(data))
    hist = fit(flow, data=data, steps=60, batch_size=128, lr=5e-3, rng=1, progress=False)
    after = -np.mean(flow.log_prob(data))
    assert np.all(np.isfinite(hist.loss)) and after < before - 0.3
    path = io.save(flow, tmp_path / "nsf.npz")
    again = io.load(path)
    assert [t.config() for t in again.transforms] == [t.config() for t in flow.transforms]
    np.testing.assert_array_equal(again.log_prob(data[:50]), flow.log_prob(data[:50]))


def test_cli_trains_an_nsf(tmp_path, capsys):
    from nfscratch import io
    from nfscratch.cli import main
    out = tmp_path / "nsf.npz"
    assert main(["train", "--dataset", "two_moons", "--model", "nsf", "--layers", "2",
                 "--hidden", "8", "--steps", "10", "-o", str(out), "--no-progress"]) == 0
    flow = io.load(out)
    assert [t.name for t in flow.transforms] == ["SplineCoupling", "SplineCoupling"]


def test_plots_work_for_a_spline_flow():
    from nfscratch import models
    from nfscratch.plotting import film_strip, plot_layer_densities, plot_spline_layer
    flow = models.nsf_coupling(2, n_layers=2, hidden=[8], n_bins=4, rng=0)
    before = {k: v.copy() for k, v in flow[0].params.items()}
    gradcheck.perturb_params(flow, 1, scale=0.3)
    assert len(plot_spline_layer(flow[0], before=before).axes) == 1
    plot_layer_densities(flow, grid_size=30)
    film_strip(flow, n_samples=50, grid_size=30)
    with pytest.raises(TypeError, match="layer: expected a SplineCoupling"):
        plot_spline_layer(flow)


# --- exercise 6: the solution passes, the handout fails, typical slips get named -------------
EX6 = Path(__file__).resolve().parents[1] / "tutorials" / "exercises" / "ex6_spline.py"
EX6_PLANTED = [
    ("numerator = s * s * (", "numerator = (", "rq_derivative", "factor s^2 is missing"),
    ("denominator = (s + (d1 + d0 - 2.0 * s) * e) ** 2", "denominator = s + (d1 + d0 - 2.0 * s) * e",
     "rq_derivative", "not squared"),
    ("(d1 * xi * xi + 2.0 * s * e + d0 * (1.0 - xi) ** 2)",
     "(d0 * xi * xi + 2.0 * s * e + d1 * (1.0 - xi) ** 2)", "rq_derivative", "swapped"),
    ("slope = numerator / denominator ", "slope = np.log(numerator / denominator) ",
     "rq_derivative", "returned log"),
    ("xi = 2.0 * c / (-b - np.sqrt(disc))", "xi = 2.0 * c / (-b + np.sqrt(disc))",
     "rq_inverse_xi", "division by zero"),
    ("xi = 2.0 * c / (-b - np.sqrt(disc))", "xi = (-b + np.sqrt(disc)) / (2.0 * a)",
     "rq_inverse_xi", "division by zero"),
    ("c = -s * r", "c = s * r", "rq_inverse_xi", "wrong sign"),
]


def test_ex6_solution_passes_and_handout_fails(tmp_path):
    from nfscratch.exercises import check_file, strip_solutions
    assert check_file(EX6, verbose=False).exit_code == 0
    student = tmp_path / EX6.name
    student.write_text(strip_solutions(EX6.read_text()))
    report = check_file(student, verbose=False)
    assert report.exit_code == 1
    assert all(r["status"] == "FAIL" for r in report.results)


@pytest.mark.parametrize("old, new, function, expected", EX6_PLANTED,
                         ids=[p[3] for p in EX6_PLANTED])
def test_ex6_planted_bug_is_diagnosed(tmp_path, old, new, function, expected):
    from nfscratch.exercises import check_file
    text = EX6.read_text()
    assert text.count(old) == 1, old
    path = tmp_path / EX6.name
    path.write_text(text.replace(old, new))
    report = check_file(path, functions=[function], verbose=False)
    assert report.exit_code == 1
    (row,) = report.result(function)["rows"]
    assert row["status"] == "FAIL" and expected in row["diagnosis"], report.text
