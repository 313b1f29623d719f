"""IAFChain: K IAF layers as one transform; its kernels against the teaching loops."""
import numpy as np
import pytest

from nfscratch import Flow, io, models, use_backend
from nfscratch.gradcheck import check_transform
from nfscratch.kernels import _checks as ck
from nfscratch.kernels import autoregressive as ka
from nfscratch.kernels.mlp import ACT_CODES
from nfscratch.transforms import IAF, IAFChain, Planar
from nfscratch.transforms.iaf_chain import iaf_chain_backward, iaf_chain_forward

from conftest import assert_same_passes


def perturbed_chain(rng, K=3, hidden=(8, 8), activation="tanh", orders="reverse", dim=2):
    chain = IAFChain(dim, K, hidden=hidden, activation=activation, orders=orders, seed=4, rng=rng,
                     zero_init=False)
    chain.theta[...] += 0.3 * rng.normal(size=chain.theta.shape)   # masked entries too: unused
    return chain


def kernel_args(chain):
    sizes = np.array([chain.dim, *chain.hidden, 2 * chain.dim], dtype=np.int64)
    masks = np.stack([ka.pack_masks(t.masks) for t in chain])
    return chain.theta, masks, sizes, ACT_CODES[chain.activation]


@pytest.mark.parametrize("activation", ["tanh", "relu", "leaky_relu"])
@pytest.mark.parametrize("hidden, orders, dim", [((8, 8), "reverse", 2), ((5,), "random", 3),
                                                 ((6, 4, 7), "random", 4)])
def test_kernels_equal_their_twins(activation, hidden, orders, dim, rng):
    chain = perturbed_chain(rng, 4, hidden, activation, orders, dim)
    weights, masks, sizes, act = kernel_args(chain)
    z = 1.5 * rng.normal(size=(37, dim))
    dx, dl = rng.normal(size=(37, dim)), rng.normal(size=37)
    params, layer_masks = [t.params for t in chain], [t.masks for t in chain]
    x_ref, ld_ref, cache = iaf_chain_forward(z, params, layer_masks, activation, chain.s_max)
    x, ld, acts, e, dd, log_dets = ka.iaf_chain_forward_nb(z, weights, masks, sizes, act,
                                                           chain.s_max)
    np.testing.assert_allclose(x, x_ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ld, ld_ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(log_dets, np.stack(cache["log_dets"]), rtol=0, atol=1e-12)
    for k, layer_cache in enumerate(cache["layers"]):       # the kept inputs are the layers'
        np.testing.assert_allclose(acts[k, :dim].T, layer_cache["u"], rtol=0, atol=1e-12)
    dz_ref, grads_ref = iaf_chain_backward(dx, dl, cache)
    dz, dweights = ka.iaf_chain_backward_nb(dx, dl, weights, masks, sizes, act, acts, e, dd)
    np.testing.assert_allclose(dz, dz_ref, rtol=0, atol=1e-12)
    for k, g in enumerate(grads_ref):
        np.testing.assert_allclose(dweights[k], np.concatenate([g[n].ravel() for n in chain.params]),
                                   rtol=0, atol=1e-11)
        assert np.all(dweights[k][masks[k] == 0] == 0.0)


def test_kernel_entries_refuse_bad_arguments(rng):
    chain = perturbed_chain(rng)
    weights, masks, sizes, act = kernel_args(chain)
    z = rng.normal(size=(5, 2))
    with pytest.raises(TypeError, match="z"):
        ka.iaf_chain_forward_nb(z.astype(np.float32), weights, masks, sizes, act, 2.0)
    with pytest.raises(ck.KernelArgumentError, match="masks"):
        ka.iaf_chain_forward_nb(z, weights, masks[:, 1:], sizes, act, 2.0)
    with pytest.raises(ck.KernelArgumentError, match="weights"):
        ka.iaf_chain_forward_nb(z, weights[:, 1:], masks, sizes, act, 2.0)
    with pytest.raises(ck.KernelArgumentError, match="sizes"):
        ka.iaf_chain_forward_nb(z, weights, masks, sizes[:-1], act, 2.0)
    with pytest.raises(ValueError, match="s_max"):
        ka.iaf_chain_forward_nb(z, weights, masks, sizes, act, -1.0)
    with pytest.raises(ValueError, match="act"):
        ka.iaf_chain_forward_nb(z, weights, masks, sizes, 7, 2.0)
    kept = ka.iaf_chain_forward_nb(z, weights, masks, sizes, act, 2.0)[2:5]
    with pytest.raises(ck.KernelArgumentError, match="dlog_det"):
        ka.iaf_chain_backward_nb(z, np.ones(4), weights, masks, sizes, act, *kept)
    with pytest.raises(ck.KernelArgumentError, match="acts"):
        ka.iaf_chain_backward_nb(z, np.ones(5), weights, masks, sizes, act, kept[0][:, :, :4],
                                 *kept[1:])
    with pytest.raises(ck.KernelArgumentError, match="dx"):
        ka.iaf_chain_backward_nb(z[:, :1], np.ones(5), weights, masks, sizes, act, *kept)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("activation", ["tanh", "relu"])
def test_gradcheck_of_the_chain(backend, activation, rng):
    chain = perturbed_chain(rng, 3, (6,), activation, "random")
    with use_backend(backend):
        result = check_transform(chain, n=6, verbose=False)
        assert result.passed, result.table()
        result = check_transform(Flow([chain]), n=6, verbose=False)
        assert result.passed, result.table()


def hand_built(rng, K=4, hidden=(8, 8), activation="tanh"):
    layers = [IAF(2, hidden=hidden, order=("natural", "reverse")[k % 2], activation=activation,
                  seed=k, rng=rng, zero_init=False) for k in range(K)]
    for t in layers:
        for p in t.params.values():
            p += 0.3 * rng.normal(size=p.shape) * (p != 0)
    return Flow([IAFChain.from_layers(layers)]), Flow(layers)


@pytest.mark.parametrize("activation", ["tanh", "softplus"])    # softplus: no kernel, loops
@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_chain_equals_a_stack_of_iaf_layers(backend, activation, rng):
    chain, layers = hand_built(rng, activation=activation)
    assert len(chain) == len(layers) == 4 and len(chain.transforms) == 1
    assert list(chain.params()) == list(layers.params())
    z = 1.5 * rng.normal(size=(30, 2))
    dx, dl = rng.normal(size=(30, 2)), rng.normal(size=30)
    with use_backend(backend):
        assert_same_passes(chain, layers, z, dx, dl, 1e-11)


def test_models_iaf_builds_a_chain_with_the_stacks_parameters():
    flow = models.iaf(2, 5, (8, 8), rng=7)
    assert len(flow.transforms) == 1 and type(flow.transforms[0]) is IAFChain
    assert len(flow) == 5 and all(type(t) is IAF for t in flow.layers)
    assert [t.order.tolist() for t in flow] == [[0, 1], [1, 0]] * 2 + [[0, 1]]
    stack = models._autoregressive(IAF, 2, 5, "reverse", 0, 7, hidden=(8, 8), activation="tanh",
                                   s_max=2.0)
    for (k1, a), (k2, b) in zip(flow.params().items(), stack.params().items()):
        assert k1 == k2
        np.testing.assert_array_equal(a, b)
    assert type(models.iaf(2, 2, (8,), context_dim=1).transforms[0]) is IAF   # conditional: layers
    chain = IAFChain(2, 3, (8,), rng=3, zero_init=False)     # an int seeds one generator
    stack = [IAF(2, (8,), order=("natural", "reverse")[k % 2], seed=k, rng=g, zero_init=False)
             for g in [np.random.default_rng(3)] for k in range(3)]
    for k in range(3):
        for name, p in stack[k].params.items():
            np.testing.assert_array_equal(chain[k].params[name], p)


@pytest.mark.parametrize("context_dim", [0, 1])                # a chain; separate layers
def test_models_iaf_uniform_biases(context_dim):
    kw = dict(hidden=(8, 8), activation="relu", context_dim=context_dim, rng=5)
    flow, zero = models.iaf(2, 4, bias_init="uniform", **kw), models.iaf(2, 4, **kw)
    assert (type(flow.transforms[0]) is IAFChain) == (context_dim == 0)
    for name, p in flow.params().items():
        if ".W" in name:                                  # the weights: the same draws
            np.testing.assert_array_equal(p, zero.params()[name])
        else:                                             # the biases: drawn within 1/sqrt(fan-in)
            fan_in = flow.params()[name.replace(".b", ".W")].shape[0]
            assert np.all(p != 0.0) and np.all(np.abs(p) <= 1.0 / np.sqrt(fan_in))
    with pytest.raises(ValueError, match="bias_init"):
        models.iaf(2, 4, bias_init="normal")


def test_layers_are_views_and_the_parameters_one_buffer(rng):
    flow = models.iaf(2, 3, (8,), rng=0)
    chain = flow.transforms[0]
    assert ck.packed_view(list(flow.params().values())) is not None
    chain[1].params["W0"][0, 0] = 3.0                   # a layer's entry writes into the chain
    assert chain.params["W0"][1, 0, 0] == 3.0 and chain.theta.base is not None
    z = rng.normal(size=(4, 2))
    for backend in ("numpy", "numba"):
        with use_backend(backend):
            x, _ = flow.forward(z)
            flow.backward(np.ones((4, 2)), np.ones(4))
            assert np.shares_memory(chain[2].grads["b1"], chain.grads["b1"])
            np.testing.assert_array_equal(flow.grads()["2.b1"], chain.grads["b1"][2])


def test_save_and_load(tmp_path, rng):
    chain, _ = hand_built(rng)
    path = io.save(chain, tmp_path / "iaf")
    loaded = io.load(path)
    x = rng.normal(size=(20, 2))
    np.testing.assert_array_equal(chain.log_prob(x), loaded.log_prob(x))
    assert [t.config() for t in chain] == [t.config() for t in loaded]
    assert loaded.transforms[0].config() == chain.transforms[0].config()


def test_from_layers_refuses_mixed_layers(rng):
    with pytest.raises(TypeError, match="layers"):
        IAFChain.from_layers([IAF(2, hidden=[4]), Planar(2)])
    with pytest.raises(ValueError, match="layer 1"):
        IAFChain.from_layers([IAF(2, hidden=[4]), IAF(2, hidden=[6])])
    with pytest.raises(ValueError, match="orders"):
        IAFChain(2, 3, orders="sideways")
