"""Every built-in transform, over several D, batch sizes and seeds: gradients in both directions,
log-det against slogdet of a finite-difference Jacobian, inverse round trip, shapes.

The list of transforms is ``gradcheck.builtin_examples`` -- the same one ``nfscratch gradcheck``
checks -- so a new transform registered there is tested here automatically.
"""
import numpy as np
import pytest

from nfscratch import gradcheck
from nfscratch.transforms import TRANSFORMS

NAMES = list(gradcheck.builtin_examples(2))


def test_every_registered_transform_is_in_the_checked_list():
    checked = {type(t).__name__ for t in gradcheck.builtin_examples(2).values()}
    assert checked == set(TRANSFORMS)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("dim", [2, 3, 5])
@pytest.mark.parametrize("name", NAMES)
def test_gradcheck_passes_both_directions(name, dim, seed):
    t = gradcheck.builtin_examples(dim, rng=seed)[name]
    result = gradcheck.check_transform(t, rng=seed, verbose=False)
    assert result.passed, result.table()
    assert result.counts()["SKIP"] == 0, result.table()       # both directions are provided
    # much tighter than the FAIL threshold: a correct pass agrees to ~1e-8 or better
    assert result.max_error < 1e-6, result.table()
    assert {r.name for r in result.rows} >= {"log_det", "round trip", "log_det sum", "shapes"}


@pytest.mark.parametrize("n", [1, 7, 64])
@pytest.mark.parametrize("name", NAMES)
def test_shapes_and_round_trip_over_batch_sizes(name, n, rng):
    t = gradcheck.builtin_examples(3, rng=1)[name]
    z = 1.5 * rng.normal(size=(n, 3))
    x, ld = t.forward(z)
    assert x.shape == (n, 3) and ld.shape == (n,) and x.dtype == np.float64
    dz = t.backward(np.ones_like(x), np.ones(n))
    assert dz.shape == (n, 3)
    z_back, ld_inv = t.inverse(x)
    np.testing.assert_allclose(z_back, z, rtol=0, atol=1e-11)
    np.testing.assert_allclose(ld_inv, -ld, rtol=0, atol=1e-11)
    assert all(t.grads[k].shape == p.shape for k, p in t.params.items())


def test_planar_inverse_far_from_origin_and_near_the_constraint(rng):
    from nfscratch.transforms import Planar
    t = Planar(2, constrain=False)
    t.params["w"][:] = [1.0, 0.5]
    t.params["u"][:] = [-0.799, 0.0]         # w.u = -0.799: strongly contracting but invertible
    t.params["b"][:] = 0.3
    z = np.concatenate([rng.normal(size=(50, 2)), 1e3 * rng.normal(size=(5, 2))])
    x, ld = t.forward(z)
    z_back, ld_inv = t.inverse(x)
    np.testing.assert_allclose(z_back, z, rtol=1e-13, atol=1e-12)
    np.testing.assert_allclose(ld_inv, -ld, atol=1e-12)


def test_planar_u_hat_keeps_the_log_det_finite(rng):
    # w.u << 0 makes c = w.u_hat = -1 + softplus(w.u) round to -1; the log-det must still be
    # finite (and accurate) at a = 0, where 1 + c (1 - h^2) is smallest
    from nfscratch.transforms import Planar
    from nfscratch.transforms.planar import planar_u_hat
    for scale in (0.1, 1.0, 3.0, 6.0):      # w.u down to about -100: 1 + c = exp(w.u) ~ 1e-44
        t = Planar(4, rng=rng)
        t.params["u"][:] = scale * rng.normal(size=4)
        t.params["w"][:] = scale * rng.normal(size=4)
        _, c, one_plus_c, _ = planar_u_hat(t.params["u"], t.params["w"])
        assert one_plus_c > 0 and abs((1.0 + c) - one_plus_c) < 1e-12
        w = t.params["w"]
        z = (-t.params["b"][0] / (w @ w)) * w[None, :] + np.zeros((1, 4))   # a = w.z + b = 0
        x, log_det = t.forward(z)
        assert np.isfinite(log_det[0])
        np.testing.assert_allclose(log_det[0], np.log(one_plus_c), rtol=1e-12)
        z_back, log_det_inv = t.inverse(x)
        np.testing.assert_allclose(log_det_inv, -log_det, rtol=1e-10)


def test_affine_coupling_scale_is_bounded(rng):
    from nfscratch.transforms import AffineCoupling
    t = AffineCoupling(2, hidden=[8], s_max=1.5, rng=0)
    for p in t.params.values():
        p += 50 * rng.normal(size=p.shape)      # a wild step cannot make exp(s) overflow
    _, log_det = t.forward(rng.normal(size=(100, 2)))
    assert np.all(np.abs(log_det) <= 1.5)


def test_coupling_leaves_conditioning_features_unchanged(rng):
    from nfscratch.transforms import AdditiveCoupling, AffineCoupling
    for cls in (AffineCoupling, AdditiveCoupling):
        t = gradcheck.perturb_params(cls(4, mask=[0, 1, 1, 0], hidden=[8], rng=0))
        z = rng.normal(size=(6, 4))
        x, _ = t.forward(z)
        np.testing.assert_array_equal(x[:, [1, 2]], z[:, [1, 2]])
        assert not np.allclose(x[:, [0, 3]], z[:, [0, 3]])


@pytest.mark.parametrize("constrain", [True, False])
@pytest.mark.parametrize("dim", [1, 2, 5])
def test_fresh_planar_layer_is_the_identity_up_to_a_small_shift(dim, constrain, rng):
    from nfscratch.transforms import Planar
    t = Planar(dim, rng=rng, constrain=constrain)
    z = rng.normal(size=(50, dim))
    x, log_det = t.forward(z)
    assert np.max(np.abs(log_det)) < 1e-12          # c = w.u_hat = 0 at initialization
    assert np.max(np.abs(x - z)) < 1.0               # u_hat is small (std 0.1)


@pytest.mark.parametrize("dim", [1, 2, 5])
def test_param_shapes_match_the_built_layer(dim):
    # io.load trusts param_shapes to vet a checkpoint before building anything
    for name, t in gradcheck.builtin_examples(dim).items():
        shapes = {k: tuple(v) for k, v in type(t).param_shapes(**t.config()).items()}
        assert shapes == {k: v.shape for k, v in t.params.items()}, name
