"""Image flows (issue 14): ActNorm, the LU linear layer, squeeze, factor-out and glow_like.

Each layer: gradients in both directions against central differences in float64, log-det
against slogdet of a finite-difference Jacobian, round trip (all via ``gradcheck.check_transform``),
save/load exactness, and the bad inputs an image pipeline meets.
"""
import numpy as np
import pytest

from nfscratch import Flow, datasets, gradcheck, io, models
from nfscratch.transforms import (ActNorm, AffineCoupling, ElementwiseAffine, FactorOut, Logit,
                                  LULinear, Permute, squeeze)
from nfscratch.transforms.linear import lu_matrices, solve_triangular
from nfscratch.transforms.multiscale import squeeze_permutation


def _check(t, rng, x=None, tol=1e-6):
    result = gradcheck.check_transform(t, x, rng=rng, verbose=False)
    assert result.passed and result.counts()["SKIP"] == 0, result.table()
    assert result.max_error < tol, result.table()
    return result


# -- ActNorm ---------------------------------------------------------------------------------
@pytest.mark.parametrize("direction", ["forward", "inverse"])
def test_actnorm_initializes_on_the_first_batch_in_either_direction(direction, rng):
    t = ActNorm(3)
    p = rng.normal([1.0, -2.0, 5.0], [0.5, 3.0, 1e-2], size=(400, 3))
    out, log_det = getattr(t, direction)(p)
    assert t.initialized
    np.testing.assert_allclose(out.mean(axis=0), 0.0, atol=1e-10)
    np.testing.assert_allclose(out.std(axis=0), 1.0, rtol=1e-3)   # the eps in sd + eps
    first = {k: v.copy() for k, v in t.params.items()}
    getattr(t, direction)(rng.normal(size=(50, 3)))                # later batches change nothing
    for k in first:
        np.testing.assert_array_equal(t.params[k], first[k])


def test_actnorm_needs_two_samples_to_initialize():
    with pytest.raises(ValueError, match=r"x: ActNorm .* at least 2 samples, got 1"):
        ActNorm(2).inverse(np.ones((1, 2)))
    ActNorm(2, initialized=True).inverse(np.ones((1, 2)))          # fine once initialized
    with pytest.raises(TypeError, match="initialized"):
        ActNorm(2, initialized="yes")


@pytest.mark.parametrize("seed", [0, 1])
def test_actnorm_gradcheck_after_initialization(seed):
    rng = np.random.default_rng(seed)
    t = ActNorm(4)
    t.inverse(rng.normal(2.0, 3.0, size=(64, 4)))
    _check(t, rng)


def test_actnorm_state_survives_save_and_load(tmp_path, rng):
    x = rng.random((32, 4))
    fresh = Flow([ActNorm(4), Logit(4)])
    before = io.load(io.save(fresh, tmp_path / "fresh.npz"))
    assert not before[0].initialized                           # saved before init: still not
    fresh.log_prob(x)                                          # initializes
    after = io.load(io.save(fresh, tmp_path / "after.npz"))
    assert after[0].initialized
    for k, v in fresh[0].params.items():
        np.testing.assert_array_equal(after[0].params[k], v)
    np.testing.assert_array_equal(after.log_prob(x[:5] * 0.5), fresh.log_prob(x[:5] * 0.5))
    before.log_prob(x)                                         # the reloaded fresh one inits
    np.testing.assert_array_equal(before.log_prob(x), fresh.log_prob(x))


# -- LU linear --------------------------------------------------------------------------------
def test_solve_triangular_matches_a_general_solve(rng):
    T = np.tril(rng.normal(size=(6, 6))) + 4 * np.eye(6)
    B = rng.normal(size=(5, 6))
    np.testing.assert_allclose(solve_triangular(T, B, lower=True), np.linalg.solve(T, B.T).T,
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(solve_triangular(T.T, B, lower=False),
                               np.linalg.solve(T.T, B.T).T, rtol=1e-12, atol=1e-12)


def test_lu_linear_is_w_times_z_with_its_log_det(rng):
    t = LULinear(5, rng=rng)
    gradcheck.perturb_params(t, rng, scale=0.3)
    W = t.weight()
    z = rng.normal(size=(7, 5))
    x, log_det = t.forward(z)
    np.testing.assert_allclose(x, z @ W.T, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(log_det, np.linalg.slogdet(W)[1], rtol=1e-12)
    Lm, Um = lu_matrices(**t.params)
    assert np.all(np.diag(Lm) == 1) and np.all(np.diag(Um) > 0)


def test_lu_linear_starts_as_its_permutation(rng):
    t = LULinear(6, rng=3)
    z = rng.normal(size=(4, 6))
    np.testing.assert_array_equal(t.forward(z)[0], Permute(6, perm=t.perm).forward(z)[0])


@pytest.mark.parametrize("dim", [1, 3, 8])
def test_lu_linear_gradcheck_both_directions(dim, rng):
    t = LULinear(dim, rng=rng)
    gradcheck.perturb_params(t, rng, scale=0.4)
    _check(t, rng)
    # the entries outside the triangles are not parameters of W: zero gradient
    t.forward(rng.normal(size=(3, dim)))
    t.backward(rng.normal(size=(3, dim)), rng.normal(size=3))
    assert np.all(np.triu(t.grads["L"]) == 0) and np.all(np.tril(t.grads["U"]) == 0)


def test_lu_linear_save_load_exact(tmp_path, rng):
    flow = Flow([LULinear(5, rng=rng), ActNorm(5, initialized=True)])
    gradcheck.perturb_params(flow, rng)
    loaded = io.load(io.save(flow, tmp_path / "lu.npz"))
    assert loaded[0].perm.tolist() == flow[0].perm.tolist()
    x = rng.normal(size=(6, 5))
    np.testing.assert_array_equal(loaded.log_prob(x), flow.log_prob(x))


# -- squeeze and factor-out -----------------------------------------------------------------
def test_squeeze_is_space_to_depth():
    image = np.arange(2 * 4 * 4, dtype=float).reshape(2, 4, 4)       # (C, H, W)
    z, log_det = squeeze(2, 4, 4).inverse(image.reshape(1, -1))
    z = z.reshape(8, 2, 2)                                           # (4C, H/2, W/2)
    for c in range(2):
        for i in range(2):
            for j in range(2):
                np.testing.assert_array_equal(z[4 * c + 2 * i + j], image[c, i::2, j::2])
    assert log_det.tolist() == [0.0]
    with pytest.raises(ValueError, match="height, width: .* both even, got 3 x 4"):
        squeeze_permutation(1, 3, 4)


def test_factor_out_leaves_the_other_features_alone(rng):
    inner = [AffineCoupling(3, hidden=[8], rng=rng, zero_init=False), LULinear(3, rng=rng)]
    t = FactorOut(6, keep=[4, 0, 2], layers=inner)
    gradcheck.perturb_params(t, rng, 0.3)
    z = rng.normal(size=(5, 6))
    x, log_det = t.forward(z)
    np.testing.assert_array_equal(x[:, [1, 3, 5]], z[:, [1, 3, 5]])
    np.testing.assert_allclose(x[:, [4, 0, 2]], Flow(inner).forward(z[:, [4, 0, 2]])[0])
    np.testing.assert_allclose(log_det, Flow(inner).forward(z[:, [4, 0, 2]])[1])


def test_factor_out_gradcheck_and_log_det(rng):
    inner = [AffineCoupling(4, hidden=[8], rng=rng), ActNorm(4, initialized=True),
             LULinear(4, rng=rng)]
    t = FactorOut(7, keep=[6, 1, 3, 4], layers=inner)
    gradcheck.perturb_params(t, rng, 0.4)
    _check(t, rng)


def test_factor_out_bad_arguments():
    with pytest.raises(ValueError, match="keep: expected distinct feature indices in 0..3"):
        FactorOut(4, keep=[0, 0], layers=[ElementwiseAffine(2)])
    with pytest.raises(ValueError, match=r"layers\[0\]: expected dim 2"):
        FactorOut(4, keep=[0, 1], layers=[ElementwiseAffine(3)])
    with pytest.raises(ValueError, match="layers: expected at least one"):
        FactorOut(4, keep=[0, 1], layers=[])


# -- the model ---------------------------------------------------------------------------------
@pytest.mark.parametrize("coupling, lu", [("affine", True), ("spline", True), ("affine", False)])
def test_glow_like_gradcheck_log_det_and_round_trip(coupling, lu, rng):
    flow = models.glow_like(4, 4, levels=2, n_steps=2, hidden=[8], coupling=coupling, rng=rng,
                            lu=lu)
    names = [t.name for t in flow.transforms] + [t.name for t in flow[0].layers]
    assert ("LULinear" in names) == lu and names.count("ActNorm") == 4
    flow.log_prob(rng.random((32, 16)))                      # initializes the ActNorms
    gradcheck.perturb_params(flow, rng, 0.05)
    z = 0.5 * rng.normal(size=(4, 16))
    result = gradcheck.check_transform(flow, z, rng=rng, verbose=False, max_entries=30)
    assert result.passed, result.table()
    x = flow.forward(z)[0]
    assert np.all((x > 0) & (x < 1))
    np.testing.assert_allclose(flow.inverse(x)[0], z, atol=1e-9)


def test_glow_like_three_levels_samples_and_saves(tmp_path, rng):
    flow = models.glow_like(8, 8, levels=3, n_steps=(1, 1, 1), hidden=[8], rng=0)
    assert flow.dim == 64 and flow[0].name == "FactorOut" and flow[0].layers[0].name == "FactorOut"
    images = datasets.dequantize(datasets.digits()[0][:64], rng)
    lp = flow.log_prob(images)
    x, log_q = flow.sample_and_log_prob(8, rng)
    np.testing.assert_allclose(flow.log_prob(x), log_q, atol=1e-8)
    loaded = io.load(io.save(flow, tmp_path / "glow.npz"))
    np.testing.assert_array_equal(loaded.log_prob(images), lp)
    with pytest.raises(ValueError, match="levels: 3 levels .* divisible by 4, got 6 x 6"):
        models.glow_like(6, 6, levels=3)


def test_glow_like_trains_below_independent_pixels(rng):
    split = datasets.digits_split()
    flow = models.glow_like(8, 8, levels=2, n_steps=(2, 2), hidden=(64,), rng=0)
    from nfscratch.train import fit
    fit(flow, data=split["train"][0], transform=datasets.dequantize, steps=150, batch_size=128,
        lr=2e-3, rng=0, progress=False)
    bpd, se = datasets.heldout_bits_per_dim(flow, split["test"][0][:200], draws=2)
    assert bpd < 2.6 and 0 < se < 0.05                       # untrained: ~5 bits/dim


def test_image_bad_input():
    flow = models.glow_like(4, 4, levels=2, n_steps=1, hidden=[8], rng=0)
    with pytest.raises(ValueError, match=r"x: expected 16 features"):
        flow.log_prob(np.full((2, 15), 0.5))                          # wrong image size
    with pytest.raises(ValueError, match=r"x: the Logit layer maps the unit cube"):
        flow.log_prob(np.full((2, 16), 3.0))                          # not scaled to [0, 1]
    with pytest.raises(ValueError, match=r"x: expected integer pixel values in 0..16"):
        datasets.dequantize(np.full((2, 16), 2.5))                    # not pixel levels
    with pytest.raises(ValueError, match="coupling: expected 'affine' or 'spline'"):
        models.glow_like(4, 4, coupling="conv")
    with pytest.raises(ValueError, match=r"n_steps: expected one number or 2"):
        models.glow_like(4, 4, levels=2, n_steps=(1, 2, 3))


# -- class-conditional multi-scale: the factor-outs hand the context to the deeper couplings ---
@pytest.mark.parametrize("coupling", ["affine", "spline"])
def test_conditional_glow_like_gradcheck_round_trip_samples_and_saves(coupling, tmp_path, rng):
    flow = models.glow_like(4, 4, levels=2, n_steps=2, hidden=[8], coupling=coupling, rng=rng,
                            context_dim=3)
    assert flow.context_dim == 3 and flow[0].context_dim == 3
    readers = [t.name for t in flow.transforms + flow[0].layers if t.context_dim]
    assert readers == ["FactorOut"] + [f"{coupling.capitalize()}Coupling"] * 4
    y = models.one_hot(rng.integers(0, 3, 32), 3)
    flow.log_prob(rng.random((32, 16)), y)                   # initializes the ActNorms
    gradcheck.perturb_params(flow, rng, 0.05)
    z, y = 0.5 * rng.normal(size=(4, 16)), rng.normal(size=(4, 3))
    result = gradcheck.check_transform(flow, z, context=y, rng=rng, verbose=False,
                                       max_entries=30)
    assert result.passed, result.table()
    assert any("context" in r.name for r in result.rows), result.table()
    x = flow.forward(z, y)[0]
    np.testing.assert_allclose(flow.inverse(x, y)[0], z, atol=1e-9)
    assert not np.allclose(flow.forward(z, y + 1.0)[0], x)   # the deeper level reads y too
    x, log_q = flow.sample_and_log_prob(4, rng=0, context=y)
    np.testing.assert_allclose(flow.log_prob(x, y), log_q, atol=1e-8)
    loaded = io.load(io.save(flow, tmp_path / "cond.npz"))
    assert loaded.context_dim == 3 and loaded[0].context_dim == 3
    np.testing.assert_array_equal(loaded.log_prob(x, y), flow.log_prob(x, y))


def test_conditional_factor_out_dcontext_is_the_sum_over_its_couplings(rng):
    inner = [AffineCoupling(3, hidden=[8], rng=rng, zero_init=False, context_dim=2),
             LULinear(3, rng=rng),
             AffineCoupling(3, hidden=[8], rng=rng, zero_init=False, context_dim=2, parity=1)]
    t = FactorOut(5, keep=[4, 0, 2], layers=inner)
    z, y = rng.normal(size=(6, 5)), rng.normal(size=(6, 2))
    dx, dlog_det = rng.normal(size=(6, 5)), rng.normal(size=(6,))
    x, log_det = t.forward(z, y)
    dz = t.backward(dx, dlog_det)
    reference = Flow(inner)                                   # the same chain, run by a Flow
    x_ref, log_det_ref = reference.forward(z[:, [4, 0, 2]], y)
    np.testing.assert_allclose(x[:, [4, 0, 2]], x_ref, atol=1e-12)
    np.testing.assert_allclose(log_det, log_det_ref, atol=1e-12)
    reference.backward(dx[:, [4, 0, 2]], dlog_det)
    np.testing.assert_allclose(t.dcontext, reference.dcontext, atol=1e-12)
    np.testing.assert_array_equal(dz[:, [1, 3]], dx[:, [1, 3]])
    t.inverse(x, y)
    t.inverse_backward(dz, dlog_det)
    assert t.dcontext.shape == (6, 2)


def test_conditional_multiscale_bad_input(rng):
    flow = models.glow_like(4, 4, levels=2, n_steps=1, hidden=[8], rng=0, context_dim=10)
    x, y = np.full((2, 16), 0.5), models.one_hot([3, 7], 10)
    assert flow.log_prob(x, y).shape == (2,)
    with pytest.raises(ValueError, match=r"^context: this Flow is conditional"):
        flow.log_prob(x)                                              # missing
    with pytest.raises(ValueError, match=r"^context: expected 10 features"):
        flow.log_prob(x, y[:, :9])                                    # wrong width
    with pytest.raises(ValueError, match=r"^context: expected one row per sample, shape \(2, 10\)"):
        flow.log_prob(x, models.one_hot([3], 10))                     # wrong length
    with pytest.raises(ValueError, match=r"^context: FactorOut is conditional \(context_dim=10\)"):
        flow[0].inverse(rng.normal(size=(2, 16)))                     # the layer on its own
    with pytest.raises(ValueError, match=r"^context: FactorOut is not conditional"):
        FactorOut(4, keep=[0, 1], layers=[ElementwiseAffine(2)]).forward(np.ones((2, 4)),
                                                                         np.ones((2, 1)))
    with pytest.raises(ValueError, match=r"^layers: the conditional layers must read the same"):
        FactorOut(4, keep=[0, 1], layers=[AffineCoupling(2, context_dim=2),
                                          AffineCoupling(2, context_dim=3)])
    with pytest.raises(ValueError, match=r"^context_dim: expected a non-negative integer"):
        models.glow_like(4, 4, levels=2, n_steps=1, context_dim=-1)


def test_cli_trains_glow_like_on_the_digits(tmp_path, capsys):
    from nfscratch.cli import main
    out = tmp_path / "digits.npz"
    assert main(["train", "--dataset", "digits", "--steps", "3", "--hidden", "8", "--layers", "1",
                 "--no-progress", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "test" in printed and "bits/dim" in printed and out.exists()
    assert [t.name for t in io.load(out).transforms][0] == "FactorOut"
    assert main(["train", "--dataset", "two_moons", "--model", "glow_like", "-o",
                 str(tmp_path / "x.npz")]) == 2
    assert "--model glow_like goes with --dataset digits" in capsys.readouterr().err


def test_adamw_decays_every_parameter():
    from nfscratch.optim import AdamW
    params = {"w": np.array([2.0, -4.0])}
    opt = AdamW(lr=0.1, weight_decay=1.0)
    opt.step(params, {"w": np.zeros(2)})
    np.testing.assert_allclose(params["w"], [1.8, -3.6])
    state = opt.state_dict()
    again = AdamW()
    again.load_state_dict(state)
    assert again.weight_decay == 1.0
    with pytest.raises(ValueError, match="weight_decay"):
        AdamW(weight_decay=-1.0)


def test_a_checkpoint_with_a_bad_inner_layer_is_refused(tmp_path):
    import json
    flow = Flow([FactorOut(4, keep=[0, 1], layers=[ElementwiseAffine(2)])])
    path = io.save(flow, tmp_path / "f.npz")
    with np.load(path) as npz:
        arrays = dict(npz)
    header = json.loads(str(arrays["__nfscratch__"]))
    header["transforms"][0]["config"]["layers"][0]["type"] = "Nonsense"
    arrays["__nfscratch__"] = np.array(json.dumps(header))
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(io.CheckpointError, match=r"layers\[0\]: expected a dict with a known"):
        io.load(tmp_path / "bad.npz")


def test_train_digits_conditional_and_the_class_agreement_judge():
    from nfscratch.commands.train import DIGITS_RECIPES, train_digits
    from nfscratch.datasets.images import class_agreement, digit_classifier
    flow, hist, split = train_digits(DIGITS_RECIPES["affine"], 0, steps=2, conditional=True,
                                     n_steps=(1, 1), hidden=(8,))
    assert flow.context_dim == 10 and len(hist.val_loss) >= 1
    assert hist.average == DIGITS_RECIPES["affine"]["train"]["average"]   # the recipe's average
    y_test = models.one_hot(split["test"][1], 10)
    bpd, se = datasets.heldout_bits_per_dim(flow, split["test"][0][:50], draws=2,
                                            context=y_test[:50])
    assert np.isfinite(bpd) and se > 0
    with pytest.raises(ValueError, match=r"^context: this Flow is conditional"):
        datasets.heldout_bits_per_dim(flow, split["test"][0][:5], draws=1)
    # a "flow" whose samples are the training images of the class asked for: full agreement
    images, labels = split["train"]
    classify = digit_classifier(images, labels, steps=300)

    class Copier:
        dim, context_dim = 64, 10

        def forward(self, z, context):
            k = context.argmax(axis=1)
            picks = np.array([np.flatnonzero(labels == c)[0] for c in k])
            return (images[picks] + 0.5) / 17.0, np.zeros(len(z))

    first_of_each = np.array([np.flatnonzero(labels == c)[0] for c in range(10)])
    expected = classify(images[first_of_each]) == np.arange(10)
    agreement, per_class = class_agreement(Copier(), classify, n_per_class=3)
    np.testing.assert_array_equal(per_class, expected.astype(float))
    assert agreement == expected.mean()
    with pytest.raises(ValueError, match="^labels: expected 1000 integer class labels"):
        digit_classifier(images, labels[:10])
