"""Tests of the optimizers: hand-computed references, convergence, in-place updates, state, errors."""
import io
import math

import numpy as np
import pytest

from nfscratch.optim import SGD, Adam, Constant, Cosine, Warmup, clip_grad_norm, cosine_lr, warmup_lr

GRADS = [0.5, -1.0, 2.0]   # the gradient sequence of the 3-step references


@pytest.fixture
def rng():
    return np.random.default_rng(7)


def run_steps(opt, w0, grads):
    params = {"w": np.array([w0])}
    for g in grads:
        opt.step(params, {"w": np.array([g])})
    return params["w"][0]


def test_adam_three_steps_by_hand():
    # lr 0.1, betas (0.9, 0.999), eps 1e-8, w0 = 1, g = 0.5, -1, 2. Moments worked out by hand:
    #   m1 = 0.05     v1 = 0.00025
    #   m2 = 0.9 m1 - 0.1 = -0.055          v2 = 0.999 v1 + 0.001 = 0.00124975
    #   m3 = 0.9 m2 + 0.2 = 0.1505          v3 = 0.999 v2 + 0.004 = 0.00524850025
    # step 1: m_hat = 0.5, v_hat = 0.25 -> w1 = 1 - 0.1 * 0.5 / 0.5 = 0.9
    w = 1.0
    for t, (m, v) in enumerate([(0.05, 0.00025), (-0.055, 0.00124975), (0.1505, 0.00524850025)], 1):
        w -= 0.1 * (m / (1 - 0.9 ** t)) / (math.sqrt(v / (1 - 0.999 ** t)) + 1e-8)
        if t == 1:
            assert w == pytest.approx(0.9, abs=1e-8)   # eps shifts it by 2e-9
    assert w == pytest.approx(0.8946448, abs=1e-7)   # w2 = 0.9366104
    got = run_steps(Adam(lr=0.1), 1.0, GRADS)
    assert got == pytest.approx(w, rel=0, abs=1e-14)


def test_sgd_momentum_three_steps_by_hand():
    # lr 0.1, momentum 0.9: v = 0.5, -0.55, 1.505; w = 0.95, 1.005, 0.8545
    assert run_steps(SGD(lr=0.1, momentum=0.9), 1.0, GRADS) == pytest.approx(0.8545, abs=1e-14)
    # plain SGD: 1 - 0.1 * (0.5 - 1 + 2) = 0.85
    assert run_steps(SGD(lr=0.1), 1.0, GRADS) == pytest.approx(0.85, abs=1e-14)


def test_state_is_per_name():
    opt = Adam(lr=0.1)
    params = {"a": np.array([1.0]), "b": np.array([1.0])}
    opt.step(params, {"a": np.array([0.5]), "b": np.array([0.5])})
    opt.step({"a": params["a"]}, {"a": np.array([-1.0])})          # b skips a step
    opt.step(params, {"a": np.array([2.0]), "b": np.array([-1.0])})
    assert params["a"][0] == pytest.approx(run_steps(Adam(lr=0.1), 1.0, GRADS), abs=1e-14)
    assert params["b"][0] == pytest.approx(run_steps(Adam(lr=0.1), 1.0, [0.5, -1.0]), abs=1e-14)
    assert opt.state["a"]["step"] == 3 and opt.state["b"]["step"] == 2


@pytest.mark.parametrize("opt", [SGD(lr=0.05), SGD(lr=0.02, momentum=0.9), Adam(lr=0.05)],
                         ids=["sgd", "momentum", "adam"])
def test_minimizes_a_quadratic(opt, rng):
    # f = 0.5 (w - c)^T A (w - c) + 0.5 |B - C|^2, A symmetric positive definite (eigenvalues 1..10)
    Q, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    A = Q @ np.diag(np.linspace(1.0, 10.0, 4)) @ Q.T
    c, C = rng.standard_normal(4), rng.standard_normal((2, 3))
    params = {"w": np.zeros(4), "B": np.zeros((2, 3))}
    f = lambda: 0.5 * (params["w"] - c) @ A @ (params["w"] - c) + 0.5 * np.sum((params["B"] - C) ** 2)  # noqa: E731
    f0 = f()
    for _ in range(2000):
        opt.step(params, {"w": A @ (params["w"] - c), "B": params["B"] - C})
    assert f() < 1e-8 * f0
    np.testing.assert_allclose(params["w"], c, atol=1e-4)


@pytest.mark.parametrize("opt", [SGD(lr=0.1), SGD(lr=0.1, momentum=0.5), Adam()])
def test_update_is_in_place(opt):
    w = np.ones((2, 3))
    view = w[0]                                        # someone else holding a view sees the update
    params = {"w": w}
    opt.step(params, {"w": np.ones((2, 3))})
    assert params["w"] is w
    assert np.all(w < 1.0) and np.all(view < 1.0)


def test_clip_grad_norm():
    a, b = np.array([3.0, 0.0]), np.array([[4.0]])
    grads = {"a": a, "b": b}
    assert clip_grad_norm(grads, 10.0) == pytest.approx(5.0)
    assert np.array_equal(a, [3.0, 0.0])               # below the cap: untouched
    assert clip_grad_norm(grads, 1.0) == pytest.approx(5.0)
    assert grads["a"] is a and grads["b"] is b         # scaled in place
    np.testing.assert_allclose(a, [0.6, 0.0])
    np.testing.assert_allclose(b, [[0.8]])
    assert clip_grad_norm(grads, 1.0) == pytest.approx(1.0)
    assert clip_grad_norm({}, 1.0) == 0.0
    big = {"x": np.full(4, 1e200)}                     # no overflow from squaring
    assert clip_grad_norm(big, 1.0) == pytest.approx(2e200)
    np.testing.assert_allclose(big["x"], 0.5)
    with pytest.raises(FloatingPointError, match="'b'"):
        clip_grad_norm({"a": np.ones(2), "b": np.array([np.nan])}, 1.0)
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm(grads, 0.0)
    with pytest.raises(TypeError, match="'a'"):
        clip_grad_norm({"a": [1.0, 2.0]}, 1.0)


@pytest.mark.parametrize("make, match", [
    (lambda: SGD(lr=0.0), "lr"), (lambda: SGD(lr=-1.0), "lr"), (lambda: Adam(lr=float("nan")), "lr"),
    (lambda: Adam(lr=float("inf")), "lr"), (lambda: SGD(momentum=1.0), "momentum"),
    (lambda: SGD(momentum=-0.1), "momentum"), (lambda: Adam(betas=(0.9, 1.0)), r"betas\[1\]"),
    (lambda: Adam(betas=(-0.1, 0.9)), r"betas\[0\]"), (lambda: Adam(betas=0.9), "betas"),
    (lambda: Adam(eps=0.0), "eps"),
])
def test_bad_hyperparameters(make, match):
    with pytest.raises(ValueError, match="^" + match + ": expected"):
        make()


@pytest.mark.parametrize("make, match", [
    (lambda: SGD(lr=True), r"^lr: expected a positive finite number, got True \(bool\)"),
    (lambda: Adam(lr="1e-3"), r"^lr: expected a positive finite number, got '1e-3' \(str\)"),
    (lambda: SGD(momentum="0.9"), r"^momentum: expected a number in \[0, 1\), got '0.9'"),
    (lambda: Adam(betas=(None, 0.9)), r"^betas\[0\]: expected a number in \[0, 1\), got None"),
    (lambda: Adam(eps=[1e-8]), r"^eps: expected a positive finite number, got \[1e-08\]"),
    (lambda: clip_grad_norm({}, "abc"), r"^max_norm: expected a positive finite number"),
])
def test_hyperparameters_of_the_wrong_type(make, match):
    with pytest.raises(TypeError, match=match):
        make()


def test_lr_can_be_scheduled_but_stays_positive():
    opt = Adam(lr=1e-3)
    opt.lr = 1e-4
    assert opt.lr == 1e-4
    with pytest.raises(ValueError, match="lr"):
        opt.lr = 0


@pytest.mark.parametrize("opt", [SGD(lr=0.1, momentum=0.9), Adam()])
def test_bad_step_inputs_name_the_key_and_change_nothing(opt):
    params = {"a": np.ones(2), "b": np.ones(3)}
    good = {"a": np.ones(2), "b": np.ones(3)}
    with pytest.raises(ValueError, match=r"no gradient.*'b'"):
        opt.step(params, {"a": np.ones(2)})
    with pytest.raises(ValueError, match=r"'c'.*match no parameter"):
        opt.step(params, {**good, "c": np.ones(1)})
    with pytest.raises(ValueError, match=r"grads\['b'\].*shape \(3,\)"):
        opt.step(params, {"a": np.ones(2), "b": np.ones(4)})
    with pytest.raises(FloatingPointError, match=r"grads\['b'\]"):
        opt.step(params, {"a": np.ones(2), "b": np.array([1.0, np.inf, 1.0])})
    assert np.array_equal(params["a"], np.ones(2))      # "a" comes first and was still not updated
    with pytest.raises(TypeError, match=r"params\['a'\].*float64"):
        opt.step({"a": np.ones(2, dtype=np.float32)}, {"a": np.ones(2)})
    with pytest.raises(TypeError, match=r"params\['a'\]"):
        opt.step({"a": [1.0, 2.0]}, {"a": np.ones(2)})
    with pytest.raises(TypeError, match="dict"):
        opt.step([np.ones(2)], [np.ones(2)])
    assert opt.state == {}


@pytest.mark.parametrize("make", [lambda: SGD(lr=0.1, momentum=0.9), lambda: Adam(lr=0.05)])
def test_state_dict_round_trip_without_pickle(make, rng):
    grads = [{"0.u": rng.standard_normal(3), "1.W": rng.standard_normal((2, 2))} for _ in range(6)]
    p_ref = {"0.u": np.zeros(3), "1.W": np.zeros((2, 2))}
    ref = make()
    for g in grads:
        ref.step(p_ref, g)

    p = {"0.u": np.zeros(3), "1.W": np.zeros((2, 2))}
    first = make()
    for g in grads[:3]:
        first.step(p, g)
    state = first.state_dict()
    assert all(isinstance(v, (str, float, int, np.ndarray)) for v in state.values())
    buf = io.BytesIO()
    np.savez(buf, **state)
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as f:
        loaded = {k: f[k] for k in f.files}
    second = make()
    second.lr = 1.0                                     # overwritten by the load
    second.load_state_dict(loaded)
    assert second.lr == first.lr
    for g in grads[3:]:
        second.step(p, g)
    for k in p:
        np.testing.assert_allclose(p[k], p_ref[k], rtol=0, atol=1e-15)
    state["lr"] = 7.0                                   # state_dict holds copies, not live state
    assert first.lr != 7.0


def test_load_state_dict_errors():
    sgd_state = SGD(lr=0.1, momentum=0.5).state_dict()
    with pytest.raises(ValueError, match="SGD optimizer, cannot load it into Adam"):
        Adam().load_state_dict(sgd_state)
    with pytest.raises(ValueError, match="momentum"):
        SGD().load_state_dict({**sgd_state, "momentum": 1.5})
    with pytest.raises(ValueError, match="unexpected key"):
        SGD().load_state_dict({**sgd_state, "m/x": np.zeros(2)})
    opt = Adam()
    p = {"x": np.zeros(2)}
    opt.step(p, {"x": np.ones(2)})
    state = opt.state_dict()
    state["m/x"] = np.zeros(5)                          # a checkpoint of another model
    other = Adam()
    other.load_state_dict(state)
    with pytest.raises(ValueError, match="different model"):
        other.step(p, {"x": np.ones(2)})


# -- learning-rate schedules -----------------------------------------------------------------------
def test_schedule_formulas_at_known_steps():
    assert Constant(3e-3)(0) == Constant(3e-3)(10**6) == 3e-3
    s = Cosine(1.0, 100, final_lr=0.2)
    assert s(0) == 1.0
    assert s(50) == pytest.approx(0.6, abs=1e-15)                 # halfway: the mean of the ends
    assert s(25) == pytest.approx(0.2 + 0.4 * (1 + math.cos(math.pi / 4)), abs=1e-15)
    assert s(100) == pytest.approx(0.2, abs=1e-15) and s(1000) == s(100)   # flat after T
    assert [s(t) for t in range(101)] == sorted((s(t) for t in range(101)), reverse=True)
    assert cosine_lr(30, 2.0, 60) == pytest.approx(1.0, abs=1e-15)
    w = Warmup(0.5, 4)                                            # a float is a constant rate
    assert [w(t) for t in range(6)] == [0.125, 0.25, 0.375, 0.5, 0.5, 0.5]
    assert warmup_lr(0, 1.0, 1) == 1.0


def test_schedules_compose():
    inner = Cosine(2e-3, 1000, final_lr=1e-5)
    s = Warmup(inner, 50)
    for t in (0, 10, 49, 50, 500, 999, 5000):
        assert s(t) == pytest.approx(inner(t) * min(1.0, (t + 1) / 50), rel=1e-15)
    assert Warmup(Warmup(1.0, 2), 4)(0) == pytest.approx(0.5 * 0.25)


def test_optimizer_follows_its_schedule_and_saves_its_position():
    s = Warmup(Cosine(0.1, 4), 2)
    sgd = SGD(lr=s)
    p = {"w": np.array([0.0])}
    expected = 0.0
    for t in range(5):
        assert sgd.lr == s(t) and sgd.iterations == t
        sgd.step(p, {"w": np.array([1.0])})
        expected -= s(t)
    assert p["w"][0] == pytest.approx(expected, abs=1e-15)
    assert "Warmup(Cosine(0.1, 4" in repr(sgd)
    # Adam with a schedule equals Adam whose lr is set by hand before each step
    a, b = Adam(lr=Cosine(0.05, 3)), Adam(lr=0.05)
    pa, pb = {"w": np.array([1.0, 2.0])}, {"w": np.array([1.0, 2.0])}
    for t, g in enumerate(GRADS):
        b.lr = cosine_lr(t, 0.05, 3) if t else 0.05
        a.step(pa, {"w": np.array([g, -g])})
        b.step(pb, {"w": np.array([g, -g])})
    np.testing.assert_array_equal(pa["w"], pb["w"])
    # a checkpoint resumes the schedule where it stopped; the schedule itself stays
    state = a.state_dict()
    assert state["iterations"] == 3
    resumed = Adam(lr=Cosine(0.05, 3))
    resumed.load_state_dict(state)
    assert resumed.iterations == 3 and resumed.lr == a.lr and isinstance(resumed.schedule, Cosine)
    with pytest.raises(ValueError, match="iterations"):
        Adam().load_state_dict({**state, "iterations": -1})


@pytest.mark.parametrize("make, error, match", [
    (lambda: Cosine(0.0, 10), ValueError, r"^lr: expected a positive"),
    (lambda: Cosine(1e-3, 0), ValueError, r"^steps: expected a positive integer"),
    (lambda: Cosine(1e-3, 10.0), TypeError, r"^steps: expected a positive integer"),
    (lambda: Cosine(1e-3, 10, final_lr=-1.0), ValueError, r"^final_lr: expected a non-negative"),
    (lambda: Cosine(1e-3, 10, final_lr=1e-2), ValueError, r"^final_lr: expected a floor at most"),
    (lambda: Cosine(1e-3, 10, final_lr="0"), TypeError, r"^final_lr: expected a non-negative"),
    (lambda: Warmup(Cosine(1e-3, 10), 0), ValueError, r"^warmup: expected a positive integer"),
    (lambda: Warmup("cosine", 10), TypeError, r"^schedule: expected a positive finite number"),
    (lambda: Warmup(lambda t: 1e-3, 10), TypeError, r"^schedule: expected .* Schedule"),
    (lambda: Adam(lr=lambda t: 1e-3), TypeError, r"^lr: expected .* Schedule"),
    (lambda: Constant(1e-3)(-1), ValueError, r"^step: expected a non-negative integer"),
    (lambda: Constant(1e-3)(1.5), ValueError, r"^step: expected a non-negative integer"),
])
def test_bad_schedule_arguments(make, error, match):
    with pytest.raises(error, match=match):
        make()
