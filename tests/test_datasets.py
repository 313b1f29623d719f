"""Tests for nfscratch.datasets: the 2-D samplers and the energies U1-U4.

Energies are checked against a scalar re-implementation written with ``math`` (a trusted,
obviously-correct float64 reference), gradients against central differences, and log Z
against a closed form (U2) and a finer grid.
"""
import math

import numpy as np
import pytest

from nfscratch import datasets as ds
from nfscratch.datasets import ENERGIES, SAMPLERS, Energy, energy, entropy, sample

NAMES = sorted(SAMPLERS)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# ----------------------------------------------------------------------------------------------
# Samplers: contract shared by all
# ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_sampler_shape_dtype_finite(name):
    x = SAMPLERS[name](500, rng=0)
    assert x.shape == (500, 2)
    assert x.dtype == np.float64
    assert np.all(np.isfinite(x))
    assert sample(name, 7, rng=1).shape == (7, 2)


@pytest.mark.parametrize("name", NAMES)
def test_sampler_seeding(name):
    a = sample(name, 100, rng=3)
    b = sample(name, 100, rng=np.random.default_rng(3))
    c = sample(name, 100, rng=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("name", NAMES)
def test_sampler_n_equals_one(name):
    x = sample(name, 1, rng=0)
    assert x.shape == (1, 2) and np.all(np.isfinite(x))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_sampler_bad_n(name, bad):
    with pytest.raises((TypeError, ValueError), match="n"):
        SAMPLERS[name](bad, rng=0)


@pytest.mark.parametrize("name", ["two_moons", "circles", "rings", "swiss_roll", "two_spirals"])
@pytest.mark.parametrize("bad", [-0.1, float("nan"), "0.1"])
def test_sampler_bad_noise(name, bad):
    with pytest.raises((TypeError, ValueError), match="noise"):
        sample(name, 10, rng=0, noise=bad)


def test_unknown_sampler_name_lists_valid_ones():
    with pytest.raises(ValueError, match="moonz") as info:
        sample("moonz", 10)
    assert "two_moons" in str(info.value) and "checkerboard" in str(info.value)
    with pytest.raises(ValueError, match="moonz"):
        entropy("moonz")


def test_bad_rng():
    with pytest.raises(TypeError, match="rng"):
        sample("rings", 10, rng="seed")


def test_circles_bad_factor():
    with pytest.raises(ValueError, match="factor"):
        ds.circles(10, rng=0, factor=1.0)


# ----------------------------------------------------------------------------------------------
# Samplers: each one's geometry
# ----------------------------------------------------------------------------------------------
def test_two_moons_on_arcs_and_balanced(rng):
    n = 20_000
    x = ds.two_moons(n, rng=rng, noise=0.0)
    outer = np.abs(x[:, 0] ** 2 + x[:, 1] ** 2 - 1.0) < 1e-12
    outer &= x[:, 1] >= 0.0
    inner = np.abs((1.0 - x[:, 0]) ** 2 + (0.5 - x[:, 1]) ** 2 - 1.0) < 1e-12
    inner &= x[:, 1] <= 0.5
    assert np.all(outer | inner)
    frac = outer.mean()
    assert abs(frac - 0.5) < 4 * math.sqrt(0.25 / n)        # 4 binomial standard errors


def test_two_moons_moments_match_make_moons():
    # scikit-learn's make_moons spaces t evenly on [0, pi]; as n grows its moments tend to these
    # integrals over t ~ U[0, pi] (E cos t = 0, E sin t = 2/pi, E cos^2 t = E sin^2 t = 1/2), which
    # an iid draw must reproduce. Worked out by hand for the mixture of the two arcs plus noise:
    n, noise = 200_000, 0.1
    x = ds.two_moons(n, rng=0, noise=noise)
    mean = np.array([0.5, 0.25])
    cov = np.array([[0.75 + noise**2, 0.125 - 1 / math.pi],
                    [0.125 - 1 / math.pi, 0.5625 - 1 / math.pi + noise**2]])
    np.testing.assert_allclose(x.mean(axis=0), mean, atol=0.01)
    np.testing.assert_allclose(np.cov(x.T), cov, atol=0.01)


def test_circles_radii(rng):
    x = ds.circles(4000, rng=rng, noise=0.0)
    r = np.linalg.norm(x, axis=1)
    on_outer = np.isclose(r, 3.0, atol=1e-12)
    assert np.all(on_outer | np.isclose(r, 1.5, atol=1e-12))
    assert abs(on_outer.mean() - 0.5) < 0.04


def test_checkerboard_support_and_entropy(rng):
    n = 200_000
    x = ds.checkerboard(n, rng=rng)
    assert np.all(np.abs(x) <= 4.0)
    col = np.floor(x[:, 0] / 2.0).astype(int) + 2
    row = np.floor(x[:, 1] / 2.0).astype(int) + 2
    assert np.all((col + row) % 2 == 0), "points in an 'off' square"
    # plug-in entropy of a histogram with 0.5 x 0.5 cells: uniform density 1/32 gives ln 32
    edges = np.arange(-4.0, 4.0 + 0.5, 0.5)
    counts, _, _ = np.histogram2d(x[:, 0], x[:, 1], bins=[edges, edges])
    p = counts[counts > 0] / n
    h_hist = -np.sum(p * np.log(p / 0.25))
    assert abs(h_hist - entropy("checkerboard")) < 0.01
    assert entropy("checkerboard") == math.log(32.0)
    # every on-square (area 4) holds 1/8 of the mass
    sq, _, _ = np.histogram2d(x[:, 0], x[:, 1], bins=[np.arange(-4, 5, 2.0)] * 2)
    np.testing.assert_allclose(sq[sq > 0] / n, 1 / 8, atol=0.005)
    assert np.count_nonzero(sq) == 8


def test_eight_gaussians_means_std_and_entropy(rng):
    n = 80_000
    x = ds.eight_gaussians(n, rng=rng)
    k = np.arange(8)
    means = (4 / math.sqrt(2)) * np.stack([np.cos(k * np.pi / 4), np.sin(k * np.pi / 4)], 1)
    sigma = 0.5 / math.sqrt(2)
    label = np.argmin(((x[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    for j in range(8):
        xj = x[label == j]
        assert abs(len(xj) / n - 1 / 8) < 0.01
        np.testing.assert_allclose(xj.mean(axis=0), means[j], atol=0.02)
        np.testing.assert_allclose(xj.std(axis=0), sigma, rtol=0.03)
    # the components overlap a little, so the entropy is below the sum-of-parts value
    h = entropy("eight_gaussians")
    assert 0.005 < math.log(8) + math.log(2 * math.pi * math.e * sigma ** 2) - h < 0.007


def test_rings_radii(rng):
    x = ds.rings(20_000, rng=rng, noise=0.0)
    r = np.linalg.norm(x, axis=1)
    radii = np.array([0.75, 1.5, 2.25, 3.0])
    assert np.all(np.min(np.abs(r[:, None] - radii), axis=1) < 1e-12)
    x = ds.rings(20_000, rng=rng)                                  # default noise 0.08
    r = np.linalg.norm(x, axis=1)
    label = np.argmin(np.abs(r[:, None] - radii), axis=1)
    for j, rad in enumerate(radii):
        assert abs(np.mean(label == j) - 0.25) < 0.015
        assert abs(r[label == j].mean() - rad) < 0.01


def test_pinwheel_five_arms(rng):
    x = ds.pinwheel(20_000, rng=rng)
    # undo the curl: theta + 0.25 exp(|x|/2) ~ -2 pi k / 5 up to ~0.1 rad of noise
    phi = np.arctan2(x[:, 1], x[:, 0]) + 0.25 * np.exp(np.linalg.norm(x, axis=1) / 2)
    resultant = {m: abs(np.mean(np.exp(1j * m * phi))) for m in (4, 5, 6)}
    assert resultant[5] > 0.8
    assert resultant[4] < 0.05 and resultant[6] < 0.05
    arm = np.round(-5 * phi / (2 * np.pi)).astype(int) % 5
    np.testing.assert_allclose(np.bincount(arm, minlength=5) / len(x), 0.2, atol=0.015)


def test_swiss_roll_noise_free_lies_on_spiral(rng):
    x = ds.swiss_roll(2000, rng=rng, noise=0.0)
    t = 5 * np.linalg.norm(x, axis=1)                 # |(t cos t, t sin t)| = t
    assert np.all((t >= 1.5 * np.pi - 1e-12) & (t <= 4.5 * np.pi + 1e-12))
    np.testing.assert_allclose(5 * x, np.stack([t * np.cos(t), t * np.sin(t)], 1), atol=1e-10)


def test_two_spirals_point_symmetric(rng):
    x = ds.two_spirals(40_000, rng=rng)
    np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=0.05)
    assert np.abs(x).max() < 3 * math.pi / 3 + 0.5 + 1.0


# ----------------------------------------------------------------------------------------------
# Exact densities and entropies (the floor of every NLL)
# ----------------------------------------------------------------------------------------------
WITH_DENSITY = [("checkerboard", {}), ("eight_gaussians", {}), ("two_moons", {}),
                ("two_moons", {"noise": 0.05}), ("circles", {}), ("rings", {}), ("swiss_roll", {}),
                ("two_spirals", {}), ("pinwheel", {})]


@pytest.mark.parametrize("name, params", WITH_DENSITY)
def test_entropy_matches_monte_carlo(name, params):
    # H = E[-log p(x)]: the sample mean of -log p over fresh draws is an unbiased estimate with a
    # standard error; the quadrature value must sit within 4 of them
    x = sample(name, 10_000, rng=1, **params)
    neg_log_p = -ds.log_prob(name, x, **params)
    assert np.all(np.isfinite(neg_log_p))
    se = neg_log_p.std(ddof=1) / math.sqrt(len(x))
    h = entropy(name, **params)
    assert abs(h - neg_log_p.mean()) < 4 * se + 1e-12, (name, h, neg_log_p.mean(), se)


# (two_spirals has ~26k nodes: its finer grid is slow, and the Monte-Carlo test covers it)
@pytest.mark.parametrize("name, params", [p for p in WITH_DENSITY
                                          if p[0] not in ("checkerboard", "two_spirals")])
def test_entropy_quadrature_is_converged_and_density_normalized(name, params):
    from nfscratch.datasets import toys
    h = entropy(name, **params)
    log_p, finer = toys._density(name, params, step=0.33)
    assert abs(h - toys._grid_entropy(log_p, *finer)) < 1e-6
    # the density integrates to 1 (trapezoid on a grid shifted by a third of a step)
    _, (lo, hi, hgrid) = toys._density(name, params)
    g1, g2 = np.arange(lo[0] + hgrid / 3, hi[0], hgrid), np.arange(lo[1] + hgrid / 3, hi[1], hgrid)
    grid = np.stack(np.meshgrid(g1, g2, indexing="ij"), -1).reshape(-1, 2)
    mass = np.sum(np.exp(ds.log_prob(name, grid, **params))) * hgrid ** 2
    assert mass == pytest.approx(1, abs=1e-9 if name != "pinwheel" else 2e-8)   # 9e-9 short


def test_entropy_known_values_and_noise():
    assert entropy("checkerboard") == math.log(32.0)
    assert entropy("eight_gaussians") == pytest.approx(2.83158, abs=1e-5)
    # moons(0.05) is the README's data set: its floor, 0.289 nats
    assert entropy("two_moons", noise=0.05) == pytest.approx(0.28923, abs=1e-5)
    assert entropy("two_moons", noise=0.05) < entropy("two_moons")     # less noise, less entropy


def test_entropy_and_log_prob_bad_arguments():
    with pytest.raises(ValueError, match="noise"):
        entropy("two_moons", noise=0.0)
    with pytest.raises(ValueError, match="noise"):
        ds.log_prob("rings", np.zeros((1, 2)), noise=-1.0)
    with pytest.raises(TypeError, match="two_moons: unknown parameter"):
        entropy("two_moons", nosie=0.1)
    with pytest.raises(ValueError, match="factor"):
        entropy("circles", factor=2.0)
    with pytest.raises(TypeError, match="pinwheel: unknown parameter"):
        entropy("pinwheel", noise=0.1)
    with pytest.raises(ValueError, match="x: expected 2 features"):
        ds.log_prob("two_moons", np.zeros((3, 3)))
    assert ds.log_prob("checkerboard", [[1.0, -1.0], [5.0, 0.0]]).tolist() == [-np.inf, -np.inf]


# ----------------------------------------------------------------------------------------------
# Energies: scalar reference written straight from the paper's table
# ----------------------------------------------------------------------------------------------
def _ref_u(name, z1, z2, w3_scale=0.3):
    def bump(t, s):
        return math.exp(-0.5 * (t / s) ** 2)

    w1 = math.sin(2 * math.pi * z1 / 4)
    w2 = 3 * bump(z1 - 1, 0.6)
    w3 = 3 / (1 + math.exp(-(z1 - 1) / w3_scale))
    wall = sum(0.5 * (max(0.0, abs(z) - 4) / 0.25) ** 2 for z in (z1, z2))
    if name == "U1":
        r = math.hypot(z1, z2)
        u = 0.5 * ((r - 2) / 0.4) ** 2 - math.log(bump(z1 - 2, 0.6) + bump(z1 + 2, 0.6))
    elif name == "U2":
        u = 0.5 * ((z2 - w1) / 0.4) ** 2
    elif name == "U3":
        u = -math.log(bump(z2 - w1, 0.35) + bump(z2 - w1 + w2, 0.35))
    else:
        u = -math.log(bump(z2 - w1, 0.4) + bump(z2 - w1 + w3, 0.35))
    return u + wall


@pytest.mark.parametrize("name", list(ENERGIES))
def test_energy_matches_scalar_reference(name, rng):
    # moderate region: the naive scalar log(exp + exp) does not underflow here
    z = rng.uniform(-3.0, 3.0, size=(200, 2))
    z = np.vstack([z, rng.uniform(-5.0, 5.0, size=(50, 2)) * [1.0, 0.3]])   # past the z1-walls
    ref = np.array([_ref_u(name, a, b) for a, b in z])
    np.testing.assert_allclose(energy(name).energy(z), ref, rtol=1e-12, atol=1e-12)


def test_energy_hand_values():
    u1 = energy("U1").energy(np.array([[2.0, 0.0], [-2.0, 0.0]]))
    expected = -math.log1p(math.exp(-0.5 * (4 / 0.6) ** 2))
    np.testing.assert_allclose(u1, expected, rtol=0, atol=1e-15)
    assert energy("U2").energy(np.zeros((1, 2)))[0] == 0.0
    # U3 at (1, w1(1) - w2(1)) = (1, 1 - 3): the second bump is at its peak
    z = np.array([[1.0, -2.0]])
    expected = -math.log(math.exp(-0.5 * (3 / 0.35) ** 2) + 1.0)
    np.testing.assert_allclose(energy("U3").energy(z), expected, rtol=0, atol=1e-15)


def test_w3_uses_0_3_not_3():
    # at z1 = 2, sigma((2 - 1)/0.3) = 0.966 but sigma((2 - 1)/3) = 0.583: U4 differs a lot
    z1, z2 = 2.0, -2.5
    got = energy("U4").energy(np.array([[z1, z2]]))[0]
    assert got == pytest.approx(_ref_u("U4", z1, z2, w3_scale=0.3), rel=1e-12)
    assert abs(got - _ref_u("U4", z1, z2, w3_scale=3.0)) > 1.0


@pytest.mark.parametrize("name", list(ENERGIES))
def test_wall_is_zero_inside_box_and_positive_outside(name, rng):
    from nfscratch.datasets.energies import _wall, _wall_grad

    inside = rng.uniform(-4.0, 4.0, size=(500, 2))
    inside[:4] = [[4.0, 4.0], [-4.0, 4.0], [4.0, -4.0], [-4.0, -4.0]]
    assert np.all(_wall(inside) == 0.0) and np.all(_wall_grad(inside) == 0.0)
    outside = np.array([[4.5, 0.0], [0.0, -5.0]])
    np.testing.assert_allclose(_wall(outside), [0.5 * 4.0, 0.5 * 16.0])


@pytest.mark.parametrize("name", list(ENERGIES))
def test_energy_grad_central_differences(name, rng):
    e = energy(name)
    z = rng.uniform(-5.0, 5.0, size=(300, 2))              # includes points beyond the wall
    z = z[np.all(np.abs(np.abs(z) - 4.0) > 1e-3, axis=1)]  # the wall's 2nd derivative jumps at 4
    g = e.energy_grad(z)
    eps = 1e-6
    g_fd = np.empty_like(z)
    for d in range(2):                                     # each row is independent: perturb all
        step = np.zeros(2)
        step[d] = eps
        g_fd[:, d] = (e.energy(z + step) - e.energy(z - step)) / (2 * eps)
    err = np.abs(g - g_fd) / np.maximum(np.abs(g) + np.abs(g_fd), 1.0)
    assert err.max() < 1e-7, f"{name}: max rel error {err.max():.2e}"


def test_u1_grad_at_origin_is_finite():
    with np.errstate(all="raise"):
        g = energy("U1").energy_grad(np.zeros((1, 2)))
    np.testing.assert_array_equal(g, 0.0)      # radial term defined as 0; bumps symmetric


def test_energy_extreme_points_are_finite():
    z = np.array([[30.0, -30.0], [0.0, 25.0], [1.0, -40.0]])
    for e in ENERGIES.values():
        with np.errstate(over="raise", divide="raise", invalid="raise"):
            assert np.all(np.isfinite(e.energy(z)))
            assert np.all(np.isfinite(e.energy_grad(z)))
        np.testing.assert_array_equal(e.log_prob_unnormalized(z), -e.energy(z))


@pytest.mark.parametrize("name", list(ENERGIES))
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_energy_far_out_is_finite_or_refused(name, backend):
    # never NaN for finite input: the gradient is finite wherever it fits in float64, and the
    # energy is finite or refused with a clear error once it leaves the float64 range
    from nfscratch.config import use_backend
    e = energy(name)
    with use_backend(backend), np.errstate(invalid="raise", divide="raise"):
        for k in range(0, 306, 5):
            a = 10.0 ** k
            z = np.array([[a, -a], [a, 0.3], [0.3, -a], [-a, 1e-300]])
            g = e.energy_grad(z)
            assert np.all(np.isfinite(g)), (k, g)
            assert np.all(np.abs(g).max(axis=1) >= 0.5 * a / 0.0625 - 100.0)   # the wall pulls back
            if k <= 150:
                assert np.all(np.isfinite(e.energy(z)))
            elif k >= 155:
                with pytest.raises(ValueError, match=f"x: {name}'s energy is not finite at"):
                    e.energy(z)
    with use_backend(backend), np.errstate(invalid="ignore"), \
            pytest.raises(ValueError, match="gradient is not finite"):
        e.energy_grad(np.array([[1.7e308, 0.0]]))         # past 1e307 the gradient overflows too


def test_user_energy_nan_is_refused_but_inf_is_a_zero_density():
    walls = Energy.from_functions("walls", 1, lambda x: np.where(np.abs(x[:, 0]) < 1, 0.0, np.inf),
                                  lambda x: np.zeros_like(x))
    assert walls.energy(np.array([[0.0], [2.0]])).tolist() == [0.0, np.inf]
    assert walls.log_normalizer(limit=3.0, n_grid=601) == pytest.approx(math.log(2.0), abs=0.02)
    bad = Energy.from_functions("bad", 1, lambda x: np.log(x[:, 0]), lambda x: 1 / x)
    with np.errstate(invalid="ignore"), \
            pytest.raises(ValueError, match="x: bad's energy is not finite at 1 of 2 points"):
        bad.energy(np.array([[1.0], [-1.0]]))


def test_log_normalizer_u2_closed_form():
    # U2 factorizes: a Gaussian in z2 of std 0.4 times the z1-length 8 + 2 * (half a Gaussian
    # of std 0.25) from the wall; the z2-wall is ~7 sigma away and negligible
    closed = math.log(0.4 * math.sqrt(2 * math.pi)) + math.log(8 + 0.25 * math.sqrt(2 * math.pi))
    assert energy("U2").log_normalizer() == pytest.approx(closed, abs=1e-6)


@pytest.mark.parametrize("name", list(ENERGIES))
def test_log_normalizer_converged_and_normalizes(name):
    e = energy(name)
    log_z = e.log_normalizer()
    assert np.isfinite(log_z)
    assert abs(log_z - e.log_normalizer(n_grid=1601)) < 1e-4
    assert e.log_normalizer() is log_z or e.log_normalizer() == log_z    # cached
    # exp(-U - log Z) integrates to 1 on a different, wider grid
    g = np.linspace(-7.0, 7.0, 1001)
    h = g[1] - g[0]
    pts = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    total = np.sum(np.exp(-e.energy(pts) - log_z)) * h * h
    assert total == pytest.approx(1.0, abs=1e-4)


def test_log_normalizer_bad_args():
    e = energy("U1")
    with pytest.raises(ValueError, match="n_grid"):
        e.log_normalizer(n_grid=2)
    with pytest.raises(ValueError, match="limit"):
        e.log_normalizer(limit=0.0)


# ----------------------------------------------------------------------------------------------
# Energies: lookup, user-supplied energies, bad input
# ----------------------------------------------------------------------------------------------
def test_energy_lookup():
    assert energy("u3") is ENERGIES["U3"]
    assert energy("U4").name == "U4" and energy("U4").dim == 2
    with pytest.raises(ValueError, match="U5") as info:
        energy("U5")
    assert "U1" in str(info.value)


def test_from_functions(rng):
    gauss = Energy.from_functions("gauss", 2, lambda x: 0.5 * np.sum(x ** 2, axis=1), lambda x: x)
    z = rng.standard_normal((5, 2))
    np.testing.assert_allclose(gauss.energy_grad(z), z)
    # limit 9: the box must hold the mass (outside [-6, 6]^2 a unit Gaussian still has 4e-9)
    assert gauss.log_normalizer(limit=9.0) == pytest.approx(math.log(2 * math.pi), abs=1e-10)
    line = Energy.from_functions("g1", 1, lambda x: 0.5 * x[:, 0] ** 2, lambda x: x)
    assert line.log_normalizer(limit=9.0) == pytest.approx(0.5 * math.log(2 * math.pi), abs=1e-10)
    with pytest.raises(TypeError, match="grad_fn"):
        Energy.from_functions("bad", 2, lambda x: x[:, 0], "not callable")
    with pytest.raises(TypeError, match="energy_fn"):
        Energy.from_functions("bad", 2, None, lambda x: x)
    wrong = Energy.from_functions("wrong", 2, lambda x: x, lambda x: x)     # returns (N, 2)
    with pytest.raises(ValueError, match="energy"):
        wrong.energy(z)
    big = Energy.from_functions("big", 3, lambda x: x[:, 0], lambda x: x)
    with pytest.raises(ValueError, match="dim"):
        big.log_normalizer()


@pytest.mark.parametrize("method", ["energy", "energy_grad", "log_prob_unnormalized"])
def test_energy_bad_input(method):
    f = getattr(energy("U1"), method)
    with pytest.raises(ValueError, match=r"x: expected 2 features"):
        f(np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"x: expected a 2-D array"):
        f(np.zeros(2))
    with pytest.raises(ValueError, match=r"x: expected finite"):
        f(np.array([[0.0, np.nan]]))
    with pytest.raises(TypeError, match=r"x: expected a floating-point"):
        f(np.zeros((4, 2), dtype=int))


def test_gaussian_mixture_is_normalized_with_exact_gradient_and_matching_samples():
    from nfscratch.gradcheck import numerical_gradient
    means = np.array([[1.0, 1.0], [-4.0, -3.0]])
    target, sample = ds.gaussian_mixture(means, 0.5)
    assert abs(target.log_normalizer(limit=7.0)) < 1e-8          # log Z = 0 by construction
    x = sample(20_000, np.random.default_rng(0))
    assert x.shape == (20_000, 2)
    near_first = np.mean(np.sum((x - means[0]) ** 2, 1) < np.sum((x - means[1]) ** 2, 1))
    assert abs(near_first - 0.5) < 0.02
    for p in x[:4]:
        g = numerical_gradient(lambda v: float(target.energy(v[None])[0]), p.copy())
        np.testing.assert_allclose(target.energy_grad(p[None])[0], g, rtol=1e-6, atol=1e-8)
    with pytest.raises(ValueError, match="^std: expected a standard deviation > 0"):
        ds.gaussian_mixture(means, 0.0)
    with pytest.raises(ValueError, match=r"^means: expected a finite array of shape \(M, D\)"):
        ds.gaussian_mixture([1.0, 2.0], 0.5)
