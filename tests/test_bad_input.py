"""Bad input gets a clear error naming the argument, what was expected and what came."""
import numpy as np
import pytest

from nfscratch import Flow, models
from nfscratch.transforms import (AdditiveCoupling, AffineCoupling, ElementwiseAffine, Logit, Permute,
                                  Planar, Radial, Reverse)

LAYERS = [lambda: Planar(2, rng=0), lambda: AffineCoupling(2, hidden=[4], rng=0),
          lambda: AdditiveCoupling(2, hidden=[4], rng=0), lambda: Permute(2, rng=0),
          lambda: Reverse(2), lambda: ElementwiseAffine(2), lambda: Radial(2, rng=0),
          lambda: Logit(2)]
CALLS = ["forward", "inverse"]


@pytest.fixture(params=range(len(LAYERS)), ids=lambda i: LAYERS[i]().name)
def layer(request):
    return LAYERS[request.param]()


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("bad, exc, pattern", [
    (np.zeros((4, 3)), ValueError, r"expected 2 features \(shape \(N, 2\)\), got array of shape \(4, 3\)"),
    (np.zeros(2), ValueError, r"expected a 2-D array of shape \(N, 2\), got 1-D .*\[None, :\]"),
    (np.zeros((2, 2, 2)), ValueError, r"expected a 2-D array .* got 3-D"),
    (np.array([[0.0, np.nan]]), ValueError, r"expected finite values, got 1 NaN/inf entry"),
    (np.array([[0.0, np.inf], [np.inf, 1.0]]), ValueError, r"got 2 NaN/inf entries"),
    (np.zeros((3, 2), dtype=np.int64), TypeError, r"expected a floating-point array, got .*int64"),
    (np.zeros((0, 2)), ValueError, r"expected at least one sample, got an empty batch"),
    ([[1.0], [2.0, 3.0]], TypeError, r"NumPy cannot turn into an array"),
])
def test_transform_rejects(layer, call, bad, exc, pattern):
    name = "z" if call == "forward" else "x"
    with pytest.raises(exc, match=f"^{name}: .*" + pattern):
        getattr(layer, call)(bad)


@pytest.mark.parametrize("bad, pattern", [
    (np.zeros((4, 3)), r"^x: expected 2 features"),
    (np.full((2, 2), np.nan), r"^x: expected finite values"),
    (np.zeros((2, 2), dtype=np.int32), r"^x: expected a floating-point array"),
])
def test_flow_log_prob_rejects(bad, pattern):
    with pytest.raises((ValueError, TypeError), match=pattern):
        models.realnvp(2, 2, hidden=[4], rng=0).log_prob(bad)


def test_float32_is_converted_not_refused_by_transforms():
    # float32 is a float: transforms compute in float64 (only gradcheck refuses float32)
    x, _ = Planar(2, rng=0).forward(np.ones((2, 2), dtype=np.float32))
    assert x.dtype == np.float64


def test_planar_without_constraint_refuses_non_invertible_parameters():
    t = Planar(2, constrain=False)
    t.params["u"][:] = [-2.0, 0.0]
    t.params["w"][:] = [1.0, 0.0]          # w.u = -2 < -1: the map folds over itself
    with pytest.raises(ValueError, match=r"Planar: w.u = -2 but invertibility needs w.u >= -1"):
        t.forward(np.zeros((1, 2)))
    t.constrain = True                     # the u_hat reparameterization makes the same u, w fine
    x, log_det = t.forward(np.zeros((1, 2)))
    assert np.all(np.isfinite(log_det))


def test_constructor_errors():
    with pytest.raises(ValueError, match="dim: expected a positive integer"):
        Planar(0)
    with pytest.raises(ValueError, match="dim: a coupling layer needs at least 2 features"):
        AffineCoupling(1)
    with pytest.raises(ValueError, match=r"mask: expected 3 entries of 0 or 1"):
        AffineCoupling(3, mask=[1, 2, 0])
    with pytest.raises(ValueError, match=r"mask: needs both 0s and 1s"):
        AffineCoupling(2, mask=[1, 1])
    with pytest.raises(ValueError, match=r"perm: expected a permutation of 0..2"):
        Permute(3, perm=[0, 0, 1])
    with pytest.raises(ValueError, match="s_max"):
        AffineCoupling(2, s_max=0.0)
    with pytest.raises(ValueError, match="s_max: expected a finite positive bound"):
        AffineCoupling(2, s_max=float("inf"))


def test_sample_count_errors():
    flow = Flow([Planar(2)])
    for bad in (0, -3):
        with pytest.raises(ValueError, match="n: expected a positive integer"):
            flow.sample(bad)
    with pytest.raises(TypeError, match="n: expected a positive integer"):
        flow.sample(2.5)
    with pytest.raises(TypeError, match="rng: expected a numpy.random.Generator"):
        flow.sample(3, rng="seed")


@pytest.mark.parametrize("make, exc, pattern", [
    (lambda: AffineCoupling(2, hidden=64), TypeError, r"^hidden: expected a sequence of layer "
                                                      r"widths such as \(64, 64\), got 64 \(int\)"),
    (lambda: AffineCoupling(2, hidden="64"), TypeError, r"^hidden: expected a sequence of layer widths"),
    (lambda: AdditiveCoupling(2, hidden=[8, 0]), ValueError, r"^hidden: expected positive integer "
                                                             r"widths, got \[8, 0\]"),
    (lambda: AffineCoupling(2, hidden=[8.5]), ValueError, r"^hidden: expected positive integer"),
    (lambda: AffineCoupling(2, activation=["tanh"]), ValueError, r"^activation: expected one of "
                                                                r"\['leaky_relu', .*got \['tanh'\]"),
    (lambda: AffineCoupling(2, s_max="2"), TypeError, r"^s_max: expected a finite positive bound "
                                                      r"on \|s\|, got '2' \(str\)"),
    (lambda: AffineCoupling(2, s_max=float("nan")), ValueError, r"^s_max: expected a finite positive"),
    (lambda: AffineCoupling(3, parity=2), ValueError, r"^parity: expected one of \[0, 1\], got 2"),
    (lambda: AffineCoupling(2, rng=-1), ValueError, r"^rng: expected a non-negative int seed or a "
                                                 r"numpy.random.Generator, got -1"),
])
def test_coupling_constructor_arguments_are_checked_first(make, exc, pattern):
    with pytest.raises(exc, match=pattern):
        make()


def test_mlp_constructor_arguments():
    from nfscratch.nn import MLP
    with pytest.raises(TypeError, match=r"^sizes: expected a sequence of layer widths"):
        MLP("23")
    with pytest.raises(ValueError, match=r"^activation: expected one of"):
        MLP([2, 3], activation=("tanh",))


def test_logit_margin_is_checked():
    for bad, exc in (("x", TypeError), (0.5, ValueError), (0.0, ValueError), (float("nan"), ValueError)):
        with pytest.raises(exc, match=r"^alpha: expected a margin in \(0, 0.5\)"):
            Logit(2, alpha=bad)


def test_reverse_and_beta_name_their_argument():
    from nfscratch import datasets, losses, models
    from nfscratch.transforms import Reverse
    with pytest.raises(TypeError, match=r"^dim: expected a positive integer, got '2'"):
        Reverse("2")
    with pytest.raises(TypeError, match=r"^beta: expected an inverse temperature"):
        losses.reverse_kl_step(models.planar_flow(2, 2, rng=0), datasets.energy("U1"), 4, rng=0,
                               beta="x")
    with pytest.raises(ValueError, match=r"^beta: expected an inverse temperature"):
        losses.reverse_kl_step(models.planar_flow(2, 2, rng=0), datasets.energy("U1"), 4, rng=0,
                               beta=float("nan"))
