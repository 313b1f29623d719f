"""Training by both objectives, the NaN guard, and fit's argument checks."""
import copy

import numpy as np
import pytest

from nfscratch import Flow, datasets, models
from nfscratch.commands.demo import gaussian_nll
from nfscratch.optim import SGD, Adam, Cosine, Warmup
from nfscratch.train import History, TrainingDiverged, fit
from nfscratch.transforms import ActNorm, ElementwiseAffine, Planar


def test_maximum_likelihood_beats_the_best_gaussian():
    rng = np.random.default_rng(0)
    train = datasets.two_moons(2048, rng, noise=0.05)
    test = datasets.two_moons(2048, rng, noise=0.05)
    flow = models.realnvp(2, 4, (32, 32), rng=rng)
    history = fit(flow, data=train, steps=300, batch_size=256, lr=5e-3, rng=rng, progress=False)
    nll = -np.mean(flow.log_prob(test))
    best_gaussian = gaussian_nll(train, test)          # ~1.89 nats
    assert nll < best_gaussian - 0.3                    # measured: 0.5-0.8 nats below
    assert np.mean(history.loss[-20:]) < np.mean(history.loss[:20]) - 0.5
    assert len(history) == 300 and history.objective == "nll"


def test_reverse_kl_on_u1_beats_a_standard_normal():
    rng = np.random.default_rng(0)
    target = datasets.energy("U1")
    flow = models.planar_flow(2, 16, rng=rng)
    history = fit(flow, target=target, steps=600, batch_size=256, lr=1e-2, anneal=200, rng=rng,
                  progress=False)
    log_z = target.log_normalizer()
    x, log_q = flow.sample_and_log_prob(20000, rng)
    kl = np.mean(log_q + target.energy(x)) + log_z
    z = flow.base.sample(20000, rng)
    kl_normal = np.mean(flow.base.log_prob(z) + target.energy(z)) + log_z   # ~4.6 nats
    assert -0.05 < kl < 0.2 < kl_normal                 # measured: 0.04 (both lobes)
    assert history.beta[0] == pytest.approx(0.01) and history.beta[-1] == 1.0
    assert np.isnan(history.kl[0]) and history.kl[-1] == pytest.approx(history.loss[-1] + log_z)


def _diverging_flow():
    return Flow([Planar(2, rng=0), ElementwiseAffine(2), Planar(2, rng=1)])


@pytest.mark.parametrize("average", [None, 0.9])
def test_nan_guard_names_the_layer_and_restores_the_last_finite_parameters(average):
    rng = np.random.default_rng(0)
    flow = _diverging_flow()
    data = datasets.two_moons(512, rng)
    seen = [{k: v.copy() for k, v in flow.params().items()}]     # parameters entering each step

    def remember(step, loss, flow):
        seen.append({k: v.copy() for k, v in flow.params().items()})

    with pytest.raises(TrainingDiverged) as info:
        fit(flow, data=data, steps=50, optimizer=SGD(lr=1e4), average=average, rng=0,
            progress=False, callback=remember)
    err = info.value
    failed_step = len(err.history.loss)                 # steps 0..failed_step-1 succeeded
    assert failed_step >= 1 and err.layer == 1
    assert "layer 1 (ElementwiseAffine)" in str(err)
    assert f"restored to those of step {failed_step - 1}" in str(err)
    # the parameters that entered the last successful step, which gave a finite loss
    for k, v in flow.params().items():
        np.testing.assert_array_equal(v, seen[failed_step - 1][k])
    assert np.isfinite(-np.mean(flow.log_prob(data)))


def test_nan_guard_at_the_first_step_and_with_another_bit_generator():
    flow = _diverging_flow()
    flow[1].params["log_scale"][:] = 800.0              # exp overflows before any update
    target = datasets.energy("U1")
    start = {k: v.copy() for k, v in flow.params().items()}
    rng = np.random.Generator(np.random.MT19937(0))     # replaying its samples must still work
    with pytest.raises(TrainingDiverged, match=r"step 0 .*layer 1 \(ElementwiseAffine\).*"
                                               r"starting parameters already give it"):
        fit(flow, target=target, steps=5, rng=rng, progress=False)
    for k, v in flow.params().items():
        np.testing.assert_array_equal(v, start[k])


def test_crossing_an_invertibility_bound_is_reported_as_divergence():
    flow = Flow([Planar(2, rng=k, constrain=False) for k in range(4)])
    with pytest.raises(TrainingDiverged, match=r"raised ValueError: Planar: w.u = .* layer \d"):
        fit(flow, target=datasets.energy("U1"), steps=300, lr=0.5, rng=0, progress=False)


def test_fit_trains_against_an_energy_without_a_log_normalizer():
    gauss3 = datasets.Energy.from_functions("gauss3", 3, lambda x: 0.5 * np.sum((x - 1) ** 2, axis=1),
                                            lambda x: x - 1)
    flow = Flow([ElementwiseAffine(3)])
    h = fit(flow, target=gauss3, steps=300, lr=0.05, rng=0, progress=False)
    assert h.log_normalizer is None
    np.testing.assert_allclose(flow[0].params["shift"], 1.0, atol=0.1)


def test_fit_records_per_layer_diagnostics():
    flow = models.realnvp(2, 3, (8,), rng=0)
    h = fit(flow, data=datasets.two_moons(256, 0), steps=25, batch_size=64, rng=0,
            progress=False, record_every=10)
    assert isinstance(h, History) and h.record_steps == [0, 10, 20]
    assert all(g.shape == (3,) for g in h.layer_grad_norm)
    assert all(ld.shape == (3,) for ld in h.layer_log_det)


def test_fit_is_reproducible_from_a_seed():
    def run():
        flow = models.realnvp(2, 2, (8,), rng=0)
        return fit(flow, data=datasets.two_moons(256, 0), steps=20, batch_size=32, rng=7,
                   progress=False).loss
    assert run() == run()


def test_fit_argument_errors():
    flow = models.planar_flow(2, 2, rng=0)
    with pytest.raises(ValueError, match="exactly one of data= .* got neither"):
        fit(flow)
    with pytest.raises(ValueError, match="got both"):
        fit(flow, data=np.zeros((4, 2)), target=datasets.energy("U1"))
    with pytest.raises(ValueError, match="data: expected 2 features"):
        fit(flow, data=np.zeros((4, 3)))
    with pytest.raises(ValueError, match="steps: expected a positive integer"):
        fit(flow, data=np.zeros((4, 2)), steps=0)
    with pytest.raises(ValueError, match="anneal: annealing applies to reverse KL"):
        fit(flow, data=np.zeros((4, 2)), anneal=10)


def test_loss_functions_validate_their_inputs():
    from nfscratch import StandardNormal
    from nfscratch.losses import nll_loss, reverse_kl_loss
    base = StandardNormal(2)
    z = np.zeros((4, 2))
    with pytest.raises(ValueError, match=r"log_det: expected a float array of shape \(4,\)"):
        nll_loss(z, np.float64(0.0), base)                      # a summed log-det
    with pytest.raises(TypeError, match="z: expected a floating-point array"):
        nll_loss(np.zeros((4, 2), dtype=int), np.zeros(4), base)
    with pytest.raises(ValueError, match="beta: expected an inverse temperature > 0"):
        reverse_kl_loss(z, z, np.zeros(4), base, datasets.energy("U1"), beta=-3)
    loss, dz, dlog_det = nll_loss(z, np.zeros(4), base)
    assert loss == pytest.approx(np.log(2 * np.pi)) and dlog_det.shape == (4,)


def test_fit_names_clip_in_its_error():
    with pytest.raises(ValueError, match="clip: expected a positive maximum gradient norm"):
        fit(models.planar_flow(2, 1, rng=0), data=np.zeros((4, 2)), clip=-1)


def test_whole_flow_gradients_of_both_losses_match_finite_differences():
    """The upstream gradients of nll_loss / reverse_kl_loss, chained through a flow, against
    central differences of the loss itself (annealed beta included)."""
    from nfscratch.gradcheck import numerical_gradient, perturb_params
    from nfscratch.losses import nll_step, reverse_kl_step
    rng = np.random.default_rng(3)
    flow = perturb_params(Flow([Planar(2, rng=0), models.realnvp(2, 1, (6,), rng=1)[0],
                                ElementwiseAffine(2)]), rng, scale=0.3)
    x = rng.normal(size=(7, 2))
    target = datasets.energy("U3")
    for name, step, loss_only in [
        ("nll", lambda: nll_step(flow, x), lambda: nll_step(flow, x)),
        ("reverse_kl", lambda: reverse_kl_step(flow, target, 7, rng=5, beta=0.3),
         lambda: reverse_kl_step(flow, target, 7, rng=5, beta=0.3)),
    ]:
        step()
        grads = {k: v.copy() for k, v in flow.grads().items()}
        for k, p in flow.params().items():
            num = numerical_gradient(lambda _: loss_only(), p)
            assert np.max(np.abs(num - grads[k])) < 1e-6 * max(1.0, np.max(np.abs(num))), (name, k)


@pytest.mark.parametrize("kind", ["data", "target"])
def test_a_huge_learning_rate_is_a_divergence_even_after_one_step(kind):
    # issue 9 item 4: lr=1e300 left finite parameters (~1e300) that give NaN log-densities
    flow = models.realnvp(2, 2, (8,), rng=0) if kind == "data" else models.planar_flow(2, 4, rng=0)
    start = {k: v.copy() for k, v in flow.params().items()}
    where = (dict(data=datasets.two_moons(256, rng=1)) if kind == "data"
             else dict(target=datasets.energy("U1")))
    with pytest.raises(TrainingDiverged, match=r"^fit: step 0 left parameters whose next pass "
                                               r"(produced a non-finite loss|raised).*; .*layer \d") as info:
        fit(flow, steps=1, lr=1e300, rng=0, progress=False, **where)
    assert info.value.layer is not None and len(info.value.history) == 1
    for k, v in flow.params().items():                 # the parameters entering step 0
        np.testing.assert_array_equal(v, start[k])


def test_an_update_that_makes_a_parameter_non_finite_stops_training():
    class Blowup(SGD):
        def step(self, params, grads):
            super().step(params, grads)
            if self.calls == 2:
                params["2.shift"][0] = np.inf
            self.calls += 1
        calls = 0

    flow = Flow([Planar(2, rng=0), ElementwiseAffine(2), ElementwiseAffine(2)])
    seen = []
    with pytest.raises(TrainingDiverged, match=r"^fit: step 2 made parameter '2.shift' non-finite "
                                               r"in its update; .*layer 2 \(ElementwiseAffine\): "
                                               r"its parameter 'shift'.*those of step 2") as info:
        fit(flow, data=datasets.two_moons(256, rng=1), steps=10, batch_size=32,
            optimizer=Blowup(lr=1e-3), rng=0, progress=False,
            callback=lambda step, loss, f: seen.append(f.params()["2.shift"].copy()))
    assert info.value.layer == 2 and np.all(np.isfinite(flow.params()["2.shift"]))
    np.testing.assert_array_equal(flow.params()["2.shift"], seen[-1])   # entering step 2


def test_fit_checks_every_argument_before_training():
    flow = models.planar_flow(2, 2, rng=0)
    start = {k: v.copy() for k, v in flow.params().items()}
    data = np.zeros((8, 2))
    cases = [
        (dict(flow="flow", target="U1"), TypeError, r"^flow: expected an nfscratch.Flow"),
        (dict(target="U7"), ValueError, r"^target: expected an energy object or the name of a "
                                        r"built-in one \(U1, U2, U3, U4\), got 'U7'"),
        (dict(target=3), TypeError, r"^target: expected an energy with energy\(x\)"),
        (dict(data=data, callback=3), TypeError, r"^callback: expected a function or None, got 3"),
        (dict(data=data, clip="abc"), TypeError, r"^clip: expected a positive maximum gradient "
                                                 r"norm, got 'abc'"),
        (dict(data=data, clip=float("inf")), ValueError, r"^clip: expected a positive maximum"),
        (dict(data=data, lr="1e-3"), TypeError, r"^lr: expected a positive finite number"),
        (dict(data=data, batch_size=2.5), TypeError, r"^batch_size: expected a positive integer"),
        (dict(data=data, optimizer="adam"), TypeError, r"^optimizer: expected an object with step"),
        (dict(target="U1", anneal=0), ValueError, r"^anneal: expected a positive integer"),
    ]
    for kwargs, exc, pattern in cases:
        kwargs = {"flow": flow, **kwargs}
        with pytest.raises(exc, match=pattern):
            fit(kwargs.pop("flow"), steps=2, progress=False, rng=0, **kwargs)
    for k, v in flow.params().items():
        np.testing.assert_array_equal(v, start[k])


def test_fit_accepts_the_name_of_a_built_in_energy_and_reports_a_dimension_mismatch():
    h = fit(models.planar_flow(2, 2, rng=0), target="u1", steps=3, rng=0, progress=False)
    assert h.log_normalizer == pytest.approx(datasets.energy("U1").log_normalizer())
    with pytest.raises(ValueError, match=r"^target: the energy 'U1' is a density on R\^2, but the "
                                         r"flow maps R\^3: build the flow with dim=2"):
        fit(models.planar_flow(3, 2, rng=0), target=datasets.energy("U1"), steps=1, progress=False)


# -- schedules, fresh data, validation and early stopping ------------------------------------------
def _moons(n, rng):
    return datasets.two_moons(n, rng, noise=0.1)


def test_fit_follows_a_schedule():
    flow = models.realnvp(2, 2, [8], rng=0)
    h = fit(flow, data=_moons, steps=20, lr=4e-3, schedule="cosine", rng=0, progress=False)
    assert h.lr == [Cosine(4e-3, 20)(t) for t in range(20)]
    s = Warmup(Cosine(1e-2, 20, final_lr=1e-4), 5)
    assert fit(flow, data=_moons, steps=20, schedule=s, rng=0, progress=False).lr == [s(t) for t in range(20)]
    assert fit(flow, data=_moons, steps=3, lr=1e-3, schedule="constant", rng=0,
               progress=False).lr == [1e-3] * 3
    opt = SGD(lr=1.0)                                      # a given optimizer takes the schedule
    fit(flow, data=_moons, steps=4, optimizer=opt, schedule=Cosine(1e-3, 4), rng=0, progress=False)
    assert isinstance(opt.schedule, Cosine) and opt.iterations == 4
    opt = Adam(lr=5e-3)                                   # "cosine" starts from its rate
    assert fit(flow, data=_moons, steps=4, optimizer=opt, schedule="cosine", rng=0,
               progress=False).lr == [Cosine(5e-3, 4)(t) for t in range(4)]


def test_a_sampler_gives_a_fresh_batch_every_step_and_a_transform_changes_every_batch():
    seen = []

    def sampler(n, rng):
        batch = _moons(n, rng)
        seen.append(batch)
        return batch

    flow = models.realnvp(2, 2, [8], rng=0)
    fit(flow, data=sampler, steps=5, batch_size=64, rng=0, progress=False)
    assert len(seen) == 6 and all(b.shape == (64, 2) for b in seen)   # + one checked up front
    assert len({b[0, 0] for b in seen}) == 6                            # all different
    # a transform sees every batch of a fixed array (and the validation set once)
    calls = []

    def jitter(batch, rng):
        calls.append(batch.shape)
        return batch + 1e-3 * rng.standard_normal(batch.shape)

    data = _moons(256, 1)
    h1 = fit(models.realnvp(2, 2, [8], rng=0), data=data, transform=jitter, steps=8,
             batch_size=64, validation=_moons(100, 2), rng=0, progress=False)
    assert calls == [(100, 2)] + [(64, 2)] * 8          # the validation set once, then each step
    h2 = fit(models.realnvp(2, 2, [8], rng=0), data=data, transform=jitter, steps=8,
             batch_size=64, validation=_moons(100, 2), rng=0, progress=False)
    assert h1.loss == h2.loss                           # reproducible from the seed


def test_validation_is_recorded_and_split_from_fixed_data():
    flow = models.realnvp(2, 2, [8], rng=0)
    val = _moons(300, 5)
    h = fit(flow, data=_moons(512, 4), steps=25, batch_size=64, validation=val, record_every=10,
            rng=0, progress=False)
    assert h.val_steps == [0, 10, 20, 25] and len(h.val_loss) == 4
    assert h.val_loss[-1] == pytest.approx(-np.mean(flow.log_prob(val)), abs=1e-12)
    assert h.best_step is None and not h.stopped_early
    seen = []
    fit(models.realnvp(2, 2, [8], rng=0), data=_moons(100, 4), validation_split=0.2, steps=3,
        batch_size=16, rng=0, progress=False, callback=lambda s, loss, f: seen.append(s))
    assert seen == [0, 1, 2]


def test_early_stopping_restores_the_parameters_with_the_best_validation_nll():
    rng = np.random.default_rng(0)
    train, val = _moons(64, rng), _moons(2000, rng)      # 64 points: memorized quickly
    flow = models.realnvp(2, 4, [64, 64], rng=0)
    snapshots = {}

    def remember(step, loss, f):
        snapshots[step + 1] = {k: v.copy() for k, v in f.params().items()}   # after the update

    snapshots[0] = {k: v.copy() for k, v in flow.params().items()}
    h = fit(flow, data=train, steps=3000, batch_size=64, lr=1e-2, validation=val, patience=3,
            record_every=25, rng=1, progress=False, callback=remember)
    assert h.stopped_early and len(h) < 3000
    best = int(np.argmin(h.val_loss))
    assert h.best_step == h.val_steps[best] and len(h.val_loss) - 1 - best == 3
    assert min(h.val_loss) < h.val_loss[-1]              # it did get worse after the best
    for k, v in flow.params().items():                   # the best parameters are back
        np.testing.assert_array_equal(v, snapshots[h.best_step][k])
    assert -np.mean(flow.log_prob(val)) == pytest.approx(min(h.val_loss), abs=1e-12)


def test_nice_has_a_learned_scaling_so_it_can_change_volume():
    rng = np.random.default_rng(0)
    data = 0.1 * rng.standard_normal((2048, 2))          # entropy ln(2 pi e) + 2 ln 0.1 = -1.77
    flow = models.nice(2, n_layers=2, hidden=[8], rng=0)
    fit(flow, data=data, steps=400, batch_size=256, lr=2e-2, rng=0, progress=False)
    # without the scaling every additive stack has NLL >= ln(2 pi) = 1.84 on any data
    assert -np.mean(flow.log_prob(data)) < -1.5


def test_fit_checks_the_new_arguments():
    flow = models.realnvp(2, 2, [8], rng=0)
    start = {k: v.copy() for k, v in flow.params().items()}
    data = _moons(64, 0)
    cases = [
        (dict(data=data, schedule="linear"), ValueError, r"^schedule: expected one of"),
        (dict(data=data, schedule=0.1), TypeError, r"^schedule: expected 'constant', 'cosine' or"),
        (dict(data=data, optimizer=type("Opt", (), {"step": lambda self, p, g: None})(),
              schedule="cosine"), TypeError, r"^schedule: only an nfscratch.optim optimizer"),
        (dict(data=lambda n, rng: np.zeros((n, 3))), ValueError, r"^data\(n, rng\): expected 2 features"),
        (dict(data=lambda n, rng: np.zeros((n - 1, 2))), ValueError,
         r"^data\(n, rng\): the sampler was asked for n = 16 points and returned 15"),
        (dict(data=data, transform=1), TypeError, r"^transform: expected a function or None"),
        (dict(data=data, transform=lambda b, rng: b[:, :1]), ValueError,
         r"^transform\(batch, rng\): expected 2 features"),
        (dict(target="U1", transform=lambda b, rng: b), ValueError, r"^transform: a per-batch"),
        (dict(target="U1", validation=data), ValueError, r"^validation: a validation NLL needs"),
        (dict(data=data, validation=data[:, :1]), ValueError, r"^validation: expected 2 features"),
        (dict(data=data, validation=data, validation_split=0.1), ValueError,
         r"^validation_split: give either"),
        (dict(data=data, validation_split=1.0), ValueError, r"^validation_split: expected a number in \[0, 1\)"),
        (dict(data=data, validation_split=0.0), ValueError, r"^validation_split: expected a fraction in \(0, 1\)"),
        (dict(data=data, validation_split=0.9), ValueError, r"^validation_split: 0.9 of 64 points leaves"),
        (dict(data=_moons, validation_split=0.1), ValueError, r"with a sampler as data"),
        (dict(data=data, patience=3), ValueError, r"^patience: early stopping watches a validation"),
        (dict(data=data, validation=data, patience=0), ValueError, r"^patience: expected a positive"),
        (dict(data=data, average=0), ValueError, r"^average: expected the decay d of the parameter "
                                                  r"average, a number in \(0, 1\) .*got 0\.$"),
        (dict(data=data, average=1.0), ValueError, r"^average: expected .* in \(0, 1\) .*got 1.0\.$"),
        (dict(data=data, average=-0.5), ValueError, r"^average: expected .*got -0.5\.$"),
        (dict(data=data, average=float("nan")), ValueError, r"^average: expected .*got nan\.$"),
        (dict(data=data, average="0.99"), TypeError, r"^average: expected .*got '0.99' \(str\)\.$"),
        (dict(data=data, average=True), TypeError, r"^average: expected .*got True \(bool\)\.$"),
    ]
    for kwargs, exc, pattern in cases:
        with pytest.raises(exc, match=pattern):
            fit(flow, steps=2, batch_size=16, progress=False, rng=0, **kwargs)
    for k, v in flow.params().items():
        np.testing.assert_array_equal(v, start[k])


# -- parameter averaging ------------------------------------------------------------------------
def _snapshot(flow):
    return {k: v.copy() for k, v in flow.params().items()}


def _moving_averages(thetas, d):
    """The average after each number of updates, by its formula: from the first parameters,
    then ``mean <- d mean + (1 - d) theta`` for each later one."""
    means = [thetas[0]]
    for theta in thetas[1:]:
        means.append({k: d * means[-1][k] + (1 - d) * theta[k] for k in theta})
    return means


def test_the_flow_ends_with_the_moving_average_started_after_actnorm_initialized():
    flow = Flow([ActNorm(2), *models.realnvp(2, 2, [8], rng=0).transforms])
    twin = copy.deepcopy(flow)
    batches, thetas = [], []

    def sampler(n, rng):
        batches.append(_moons(n, rng))
        return batches[-1]

    h = fit(flow, data=sampler, steps=6, batch_size=32, lr=1e-2, average=0.7, rng=0,
            progress=False, callback=lambda step, loss, f: thetas.append(_snapshot(f)))
    twin.log_prob(batches[1])           # ActNorm initializes on step 0's batch, as in training
    assert np.abs(twin[0].params["shift"]).max() > 0.1       # which moved its parameters
    expected = _moving_averages([_snapshot(twin)] + thetas, 0.7)[-1]
    assert h.average == 0.7 and fit(twin, data=sampler, steps=1, progress=False).average is None
    for k, v in flow.params().items():
        np.testing.assert_allclose(v, expected[k], rtol=1e-13, atol=1e-15)


def test_validation_and_early_stopping_see_the_average_and_training_does_not():
    rng = np.random.default_rng(0)
    train, val = _moons(64, rng), _moons(2000, rng)      # 64 points: memorized quickly

    def run(average):
        flow = models.realnvp(2, 4, [64, 64], rng=0)
        thetas = [_snapshot(flow)]                       # thetas[k]: after k updates
        h = fit(flow, data=train, steps=3000, batch_size=64, lr=1e-2, validation=val,
                patience=3, record_every=25, average=average, rng=1, progress=False,
                callback=lambda step, loss, f: thetas.append(_snapshot(f)))
        return flow, h, thetas

    flow, h, thetas = run(0.9)
    _, plain, plain_thetas = run(None)
    # the average is only evaluated: the training steps are those without it, bit for bit
    n = min(len(h), len(plain))
    assert h.loss[:n] == plain.loss[:n] and h.grad_norm[:n] == plain.grad_norm[:n]
    for k, v in thetas[n].items():
        np.testing.assert_array_equal(v, plain_thetas[n][k])
    # every validation number is that of the average after that many updates
    means = _moving_averages(thetas, 0.9)
    probe = models.realnvp(2, 4, [64, 64], rng=0)
    for step, val_loss in zip(h.val_steps, h.val_loss):
        for k, v in probe.params().items():
            v[...] = means[step][k]
        assert -np.mean(probe.log_prob(val)) == pytest.approx(val_loss, abs=1e-12)
    assert h.val_loss[0] == plain.val_loss[0] and h.val_loss[1] != plain.val_loss[1]
    # early stopping stopped on the average and put back its best
    assert h.stopped_early and len(h) < 3000
    best = int(np.argmin(h.val_loss))
    assert h.best_step == h.val_steps[best] and len(h.val_loss) - 1 - best == 3
    for k, v in flow.params().items():
        np.testing.assert_allclose(v, means[h.best_step][k], rtol=1e-13, atol=1e-15)
    assert -np.mean(flow.log_prob(val)) == pytest.approx(min(h.val_loss), abs=1e-12)
