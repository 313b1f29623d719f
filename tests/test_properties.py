"""Property-based tests (hypothesis): every built-in transform, random sizes, parameters and inputs.

For each transform of ``gradcheck.builtin_examples`` (the list ``nfscratch gradcheck`` checks),
hypothesis draws the dimension, the batch size, the seed of the parameter perturbation and of
the inputs, and their scale, and checks the properties every flow layer must have:

* the round trip ``inverse(forward(z)) = z``;
* ``log_det(forward)(z) = -log_det(inverse)(x)`` at ``x = forward(z)``;
* the log-det against ``slogdet`` of a central-difference Jacobian;
* the numba and numpy backends agree;
* bad input raises the documented exception types (ValueError for shapes and non-finite
  values, TypeError for non-numeric data), never anything else.

Example counts are kept small so the file runs in well under a minute; the fixed-seed
suites (test_transforms, test_gradcheck) cover each transform in depth.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nfscratch import use_backend
from nfscratch.gradcheck import builtin_examples, numerical_jacobian, perturb_params

NAMES = sorted(builtin_examples(2, rng=0))
SETTINGS = settings(max_examples=8, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


def _layer(name, dim, seed, scale):
    layers = builtin_examples(dim, rng=seed)
    if name not in layers:            # couplings and autoregressive layers need dim >= 2
        return None
    t = layers[name]
    if scale and "Planar(unconstrained)" != name:
        perturb_params(t, np.random.default_rng(seed + 1), scale=scale)
    return t


def _inputs(t, n, seed, spread):
    z = spread * np.random.default_rng(seed).standard_normal((n, t.dim))
    if t.name == "Logit":             # the logit layer maps R^D onto the unit cube
        z = np.clip(z, -6.0, 6.0)
    return z


cases = st.tuples(st.integers(1, 4), st.integers(1, 9), st.integers(0, 10_000),
                  st.sampled_from([0.0, 0.3]), st.sampled_from([0.5, 1.0, 2.0]))


@pytest.mark.parametrize("name", NAMES)
@SETTINGS
@given(case=cases)
def test_round_trip_and_opposite_log_dets(name, case):
    dim, n, seed, scale, spread = case
    t = _layer(name, dim, seed, scale)
    if t is None:
        return
    z = _inputs(t, n, seed, spread)
    x, log_det_fwd = t.forward(z)
    assert x.shape == z.shape and log_det_fwd.shape == (n,)
    z_back, log_det_inv = t.inverse(x)
    np.testing.assert_allclose(z_back, z, rtol=1e-7, atol=1e-7 * (1 + spread))
    np.testing.assert_allclose(log_det_fwd, -log_det_inv, rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("name", NAMES)
@SETTINGS
@given(case=cases)
def test_log_det_matches_slogdet(name, case):
    dim, n, seed, scale, spread = case
    t = _layer(name, dim, seed, scale)
    if t is None:
        return
    z = _inputs(t, min(n, 3), seed, spread)
    _, log_det = t.forward(z)
    for i in range(z.shape[0]):
        J = numerical_jacobian(lambda v: t.forward(v[None, :])[0][0], z[i].copy())
        sign, logabs = np.linalg.slogdet(J)
        assert sign != 0
        assert abs(logabs - log_det[i]) < 1e-5 * (1 + abs(logabs))


@pytest.mark.parametrize("name", NAMES)
@SETTINGS
@given(case=cases)
def test_backends_agree(name, case):
    dim, n, seed, scale, spread = case
    t = _layer(name, dim, seed, scale)
    if t is None:
        return
    z = _inputs(t, n, seed, spread)
    out = {}
    for backend in ("numba", "numpy"):
        with use_backend(backend):
            x, ld = t.forward(z)
            dz = t.backward(np.ones_like(x), np.ones(n))
            grads = {k: v.copy() for k, v in t.grads.items()}
            out[backend] = (x, ld, dz, grads)
    (x1, l1, d1, g1), (x2, l2, d2, g2) = out["numba"], out["numpy"]
    np.testing.assert_allclose(x1, x2, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(l1, l2, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(d1, d2, rtol=1e-9, atol=1e-9)
    for k in g1:
        np.testing.assert_allclose(g1[k], g2[k], rtol=1e-8, atol=1e-9)


BAD = st.sampled_from(["nan", "inf", "shape", "ndim", "string", "complex", "empty-dim"])


@pytest.mark.parametrize("name", NAMES)
@SETTINGS
@given(bad=BAD, n=st.integers(1, 5), direction=st.sampled_from(["forward", "inverse"]))
def test_bad_input_raises_the_documented_types(name, bad, n, direction):
    t = builtin_examples(2, rng=0)[name]
    z = np.zeros((n, 2)) + 0.1
    if bad == "nan":
        z[0, 0] = np.nan
    elif bad == "inf":
        z[-1, 1] = np.inf
    elif bad == "shape":
        z = np.zeros((n, 3))
    elif bad == "ndim":
        z = np.zeros((n, 2, 1))
    elif bad == "string":
        z = [["a", "b"]] * n
    elif bad == "complex":
        z = z + 1j
    elif bad == "empty-dim":
        z = np.zeros((n, 0))
    with pytest.raises((ValueError, TypeError)) as info:
        getattr(t, direction)(z)
    message = str(info.value)
    assert ("z" if direction == "forward" else "x") in message and "expected" in message
