"""The MLP's pure layers and the chained MLP against central differences in float64."""
import numpy as np
import pytest

from nfscratch import nn


def num_grad(f, a, eps=1e-6):
    g = np.zeros_like(a)
    for i in np.ndindex(a.shape):
        old = a[i]
        a[i] = old + eps
        fp = f()
        a[i] = old - eps
        fm = f()
        a[i] = old
        g[i] = (fp - fm) / (2 * eps)
    return g


def rel(a, b):
    return np.max(np.abs(a - b)) / max(np.max(np.abs(a)) + np.max(np.abs(b)), 1e-12)


def test_linear_backward_matches_finite_differences(rng):
    x, W, b = rng.normal(size=(5, 3)), rng.normal(size=(3, 4)), rng.normal(size=4)
    dy = rng.normal(size=(5, 4))
    dx, dW, db = nn.linear_backward(dy, nn.linear_forward(x, W, b)[1])
    loss = lambda: float(np.sum(nn.linear_forward(x, W, b)[0] * dy))
    for analytic, arr in [(dx, x), (dW, W), (db, b)]:
        assert rel(analytic, num_grad(loss, arr)) < 1e-8


@pytest.mark.parametrize("name", sorted(nn.ACTIVATIONS))
def test_activation_backward(name, rng):
    fwd, bwd, _ = nn.ACTIVATIONS[name]
    x = rng.normal(size=(6, 4))
    x[np.abs(x) < 1e-3] = 0.5   # keep away from the ReLU kink, where the derivative jumps
    dy = rng.normal(size=x.shape)
    dx = bwd(dy, fwd(x)[1])
    assert rel(dx, num_grad(lambda: float(np.sum(fwd(x)[0] * dy)), x)) < 1e-8


@pytest.mark.parametrize("activation", sorted(nn.ACTIVATIONS))
@pytest.mark.parametrize("sizes", [[2, 8, 3], [1, 5, 5, 2], [3, 4]])
def test_mlp_backward(sizes, activation, rng):
    net = nn.MLP(sizes, activation=activation, rng=rng)
    x = rng.normal(size=(7, sizes[0]))
    dy = rng.normal(size=(7, sizes[-1]))
    net.forward(x)
    dx = net.backward(dy)
    loss = lambda: float(np.sum(net.forward(x) * dy))
    assert rel(dx, num_grad(loss, x)) < 1e-7
    for k, p in net.params.items():
        assert rel(net.grads[k], num_grad(loss, p)) < 1e-7, k


def test_mlp_init_is_seeded_and_scaled():
    a, b = nn.MLP([4, 256, 2], rng=3), nn.MLP([4, 256, 2], rng=3)
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)
    # LeCun scaling for tanh: std of W0 ~ 1/sqrt(fan_in)
    assert abs(a.params["W0"].std() - 0.5) < 0.05
    assert np.all(nn.MLP([4, 8, 2], rng=0, zero_last=True).params["W1"] == 0)


def test_softplus_and_sigmoid_are_stable():
    x = np.array([-800.0, -30.0, 0.0, 30.0, 800.0])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        sp = nn.softplus(x)
        s = nn.sigmoid(x)
    assert s[0] == 0.0 and s[-1] == 1.0 and s[2] == 0.5
    assert sp[-1] == 800.0 and sp[0] == 0.0 and abs(sp[2] - np.log(2.0)) < 1e-15


def test_mlp_bad_input():
    with pytest.raises(ValueError, match="sizes"):
        nn.MLP([3])
    with pytest.raises(ValueError, match="activation"):
        nn.MLP([2, 2], activation="sigmoidal")
    net = nn.MLP([2, 3, 1], rng=0)
    with pytest.raises(ValueError, match=r"x: expected 2 features"):
        net.forward(np.zeros((4, 3)))
    with pytest.raises(RuntimeError, match="forward"):
        nn.MLP([2, 1]).backward(np.zeros((1, 1)))


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("rows", [2, 4, 5000])
def test_mlp_backward_refuses_dy_that_does_not_match_the_forward_pass(backend, rows):
    # issue 9 item 1: a dy with fewer rows than the forward pass made the kernel read past it
    from nfscratch.config import use_backend
    net = nn.MLP([2, 4, 3], rng=0)
    with use_backend(backend):
        net.forward(np.ones((3, 2)))
        with pytest.raises(ValueError, match=r"^dy: expected shape \(3, 3\) to match the last "
                                             r"forward call, got \(" + str(rows)):
            net.backward(np.ones((rows, 3)))
        with pytest.raises(ValueError, match=r"^dy: expected 3 features"):
            net.backward(np.ones((3, 2)))
        assert np.all(np.isfinite(net.backward(np.ones((3, 3)))))
