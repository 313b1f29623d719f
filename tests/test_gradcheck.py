"""Tests of the gradient checker itself.

The checker must pass correct code with errors near 1e-10 and catch each planted bug in the row
where it lives. The transforms below are written here (not imported from nfscratch.transforms)
so that the checker is tested against code whose correctness and bugs we control.
"""

import numpy as np
import pytest

from nfscratch import gradcheck as gc
from nfscratch.transforms.base import Transform


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


# ------------------------------------------------------------------------------------------------
# Test transforms
# ------------------------------------------------------------------------------------------------
class Affine(Transform):
    """x = z * exp(s) + t, log|det dx/dz| = sum(s). Correct in both directions."""

    def __init__(self, dim, rng):
        super().__init__(dim)
        self.params = {"s": 0.5 * rng.standard_normal(dim), "t": rng.standard_normal(dim)}

    def _forward(self, z):
        s, t = self.params["s"], self.params["t"]
        x = z * np.exp(s) + t
        return x, np.full(len(z), s.sum()), {"n": len(z), "z": z}

    def _backward(self, dx, dlog_det, cache):
        s = self.params["s"]
        dz = dx * np.exp(s)
        ds = np.sum(dx * cache["z"] * np.exp(s), axis=0) + dlog_det.sum()
        return dz, {"s": ds, "t": dx.sum(axis=0)}

    def _inverse(self, x):
        s, t = self.params["s"], self.params["t"]
        z = (x - t) * np.exp(-s)
        return z, np.full(len(x), -s.sum()), {"n": len(x), "z": z}

    def _inverse_backward(self, dz, dlog_det, cache):
        s = self.params["s"]
        dx = dz * np.exp(-s)
        ds = -np.sum(dz * cache["z"], axis=0) - dlog_det.sum()
        return dx, {"s": ds, "t": -dx.sum(axis=0)}


class DroppedLogDetGrad(Affine):
    """Bug: the forward ds forgets the log-det term."""

    def _backward(self, dx, dlog_det, cache):
        dz, grads = super()._backward(dx, dlog_det, cache)
        grads["s"] = grads["s"] - dlog_det.sum()
        return dz, grads


class SignErrorDz(Affine):
    """Bug: dz has the wrong sign."""

    def _backward(self, dx, dlog_det, cache):
        dz, grads = super()._backward(dx, dlog_det, cache)
        return -dz, grads


class MissingLogDetTerm(Affine):
    """Bug: the forward log-det misses the first feature's term (its gradient is consistent)."""

    def _forward(self, z):
        x, _, cache = super()._forward(z)
        return x, np.full(len(z), self.params["s"][1:].sum()), cache

    def _backward(self, dx, dlog_det, cache):
        dz, grads = super()._backward(dx, dlog_det, cache)
        grads["s"][0] -= dlog_det.sum()
        return dz, grads


class ScalarLogDet(Affine):
    """Bug: log_det returned as a broadcast scalar."""

    def _forward(self, z):
        x, log_det, cache = super()._forward(z)
        return x, log_det[0], cache


class NoInverse(Transform):
    """Forward only: x = tanh(z) * a + z (monotone for a > -1)."""

    def __init__(self, dim, rng):
        super().__init__(dim)
        self.params = {"a": 0.3 + 0.2 * rng.random(dim)}

    def _forward(self, z):
        a = self.params["a"]
        h = np.tanh(z)
        deriv = 1.0 + a * (1.0 - h ** 2)
        return z + a * h, np.sum(np.log(deriv), axis=1), {"n": len(z), "h": h, "deriv": deriv}

    def _backward(self, dx, dlog_det, cache):
        a, h, deriv = self.params["a"], cache["h"], cache["deriv"]
        dh = 1.0 - h ** 2
        w = dlog_det[:, None] / deriv                     # dL/dderiv
        dz = dx * deriv + w * a * (-2.0 * h * dh)
        da = np.sum(dx * h + w * dh, axis=0)
        return dz, {"a": da}


class NoBackward(Affine):
    """Both passes, but no gradients."""

    def _backward(self, dx, dlog_det, cache):
        return Transform._backward(self, dx, dlog_det, cache)

    def _inverse_backward(self, dz, dlog_det, cache):
        return Transform._inverse_backward(self, dz, dlog_det, cache)


class MLPCoupling(Transform):
    """Affine coupling on D = 2 with a tanh MLP 1 -> H -> H -> 2 (H = 64: 4418 parameters).

    x1 = z1, x2 = z2 * exp(s) + t with (s, t) = MLP(z1); log|det| = s.
    """

    def __init__(self, rng, H=64):
        super().__init__(2)
        self.params = {"W1": rng.standard_normal((1, H)), "b1": 0.1 * rng.standard_normal(H),
                       "W2": rng.standard_normal((H, H)) / np.sqrt(H), "b2": 0.1 * rng.standard_normal(H),
                       "W3": 0.3 * rng.standard_normal((H, 2)) / np.sqrt(H), "b3": 0.1 * rng.standard_normal(2)}

    def _mlp(self, c):
        p = self.params
        h1 = np.tanh(c @ p["W1"] + p["b1"])                   # (N, H)
        h2 = np.tanh(h1 @ p["W2"] + p["b2"])                  # (N, H)
        o = h2 @ p["W3"] + p["b3"]                            # (N, 2)
        return o[:, :1], o[:, 1:], (c, h1, h2)

    def _mlp_backward(self, ds, dt, mcache):
        p = self.params
        c, h1, h2 = mcache
        do = np.concatenate([ds, dt], axis=1)                 # (N, 2)
        da2 = (do @ p["W3"].T) * (1 - h2 ** 2)
        da1 = (da2 @ p["W2"].T) * (1 - h1 ** 2)
        grads = {"W3": h2.T @ do, "b3": do.sum(0), "W2": h1.T @ da2, "b2": da2.sum(0),
                 "W1": c.T @ da1, "b1": da1.sum(0)}
        return da1 @ p["W1"].T, grads

    def _forward(self, z):
        s, t, m = self._mlp(z[:, :1])
        x = np.concatenate([z[:, :1], z[:, 1:] * np.exp(s) + t], axis=1)
        return x, s[:, 0], {"n": len(z), "z2": z[:, 1:], "s": s, "m": m}

    def _backward(self, dx, dlog_det, cache):
        s, z2 = cache["s"], cache["z2"]
        dx2 = dx[:, 1:]
        dc, grads = self._mlp_backward(dx2 * z2 * np.exp(s) + dlog_det[:, None], dx2, cache["m"])
        return np.concatenate([dx[:, :1] + dc, dx2 * np.exp(s)], axis=1), grads

    def _inverse(self, x):
        s, t, m = self._mlp(x[:, :1])
        z2 = (x[:, 1:] - t) * np.exp(-s)
        return np.concatenate([x[:, :1], z2], axis=1), -s[:, 0], {"n": len(x), "z2": z2, "s": s, "m": m}

    def _inverse_backward(self, dz, dlog_det, cache):
        s, z2 = cache["s"], cache["z2"]
        dz2 = dz[:, 1:]
        dx2 = dz2 * np.exp(-s)
        dc, grads = self._mlp_backward(-dz2 * z2 - dlog_det[:, None], -dx2, cache["m"])
        return np.concatenate([dz[:, :1] + dc, dx2], axis=1), grads


class TinyFlow:
    """The Flow protocol: chained passes, flat params()/grads() keyed "<layer>.<name>"."""

    def __init__(self, transforms, copy_params=False):
        self.transforms, self.dim, self.copy_params = transforms, transforms[0].dim, copy_params

    def forward(self, z):
        log_det = np.zeros(len(z))
        for t in self.transforms:
            z, ld = t.forward(z)
            log_det += ld
        return z, log_det

    def inverse(self, x):
        log_det = np.zeros(len(x))
        for t in reversed(self.transforms):
            x, ld = t.inverse(x)
            log_det += ld
        return x, log_det

    def backward(self, dx, dlog_det):
        for t in reversed(self.transforms):
            dx = t.backward(dx, dlog_det)
        return dx

    def inverse_backward(self, dz, dlog_det):
        for t in self.transforms:
            dz = t.inverse_backward(dz, dlog_det)
        return dz

    def params(self):
        out = {f"{i}.{k}": v for i, t in enumerate(self.transforms) for k, v in t.params.items()}
        return {k: v.copy() for k, v in out.items()} if self.copy_params else out

    def grads(self):
        return {f"{i}.{k}": v for i, t in enumerate(self.transforms) for k, v in t.grads.items()}


def statuses(result):
    return {(r.name, r.direction): r.status for r in result.rows}


# ------------------------------------------------------------------------------------------------
# Building blocks
# ------------------------------------------------------------------------------------------------
def test_rel_error_edge_cases():
    assert gc.rel_error(0.0, 0.0) == 0.0
    assert gc.rel_error(np.zeros(3), np.zeros(3)) == 0.0
    assert gc.rel_error(np.zeros(0), np.zeros(0)) == 0.0
    assert gc.rel_error(1.0, -1.0) == 1.0                         # opposite signs: maximal
    assert gc.rel_error(2.0, 0.0) == 1.0
    assert gc.rel_error([1.0, 3.0], [1.0, 1.0]) == pytest.approx(0.5)
    assert gc.rel_error(1e-20, 0.0) == pytest.approx(1e-12)      # the floor (1e-8) applies
    assert gc.rel_error(1e-20, 0.0, floor=0.0) == 1.0
    assert np.isnan(gc.rel_error([1.0, np.nan], [1.0, 1.0]))
    with pytest.raises(ValueError, match="same shape"):
        gc.rel_error(np.zeros(2), np.zeros(3))


def test_numerical_gradient_restores_param_in_place(rng):
    W = rng.standard_normal((3, 2))
    before, x = W.copy(), rng.standard_normal(3)
    g = gc.numerical_gradient(lambda _: float(np.sum(np.sin(x @ W))), W)
    assert np.array_equal(W, before)
    assert gc.rel_error(g, np.outer(x, np.cos(x @ W))) < 1e-8


def test_numerical_jacobian_of_linear_map_is_the_matrix(rng):
    A = rng.standard_normal((3, 3))
    v = rng.standard_normal(3)
    J = gc.numerical_jacobian(lambda u: A @ u, v)
    assert J.shape == (3, 3)
    np.testing.assert_allclose(J, A, rtol=0, atol=1e-9)
    B = rng.standard_normal((2, 3))                              # non-square: (M, D)
    np.testing.assert_allclose(gc.numerical_jacobian(lambda u: B @ u, v), B, atol=1e-9)


def test_float32_is_refused_with_the_reason(rng):
    t = Affine(2, rng)
    with pytest.raises(TypeError, match=r"float32.*rounding"):
        gc.check_transform(t, rng.standard_normal((4, 2)).astype(np.float32), verbose=False)
    t.params["s"] = t.params["s"].astype(np.float32)
    with pytest.raises(TypeError, match=r"parameter 's'.*float32.*float64"):
        gc.check_transform(t, verbose=False)
    with pytest.raises(TypeError, match="float64"):
        gc.numerical_gradient(lambda a: a.sum(), np.ones(3, dtype=np.float32))
    with pytest.raises(TypeError, match="float64"):
        gc.check_gradients(lambda x: (2 * x, None), lambda dy, c: 2 * dy,
                           {"x": np.ones(3, dtype=np.float32)}, verbose=False)


# ------------------------------------------------------------------------------------------------
# check_transform
# ------------------------------------------------------------------------------------------------
def test_correct_transform_passes_everything(rng):
    t = Affine(3, rng)
    result = gc.check_transform(t, rng=0, verbose=False)
    assert result.passed and result.status == "PASS", result.table()
    names = {(r.name, r.direction) for r in result.rows}
    for d in ("forward", "inverse"):
        for nm in ("shapes", "ds", "dt", "log_det"):
            assert (nm, d) in names
    assert ("dz", "forward") in names and ("dx", "inverse") in names
    assert ("round trip", "both") in names and ("log_det sum", "both") in names
    assert all(r.error < 1e-8 for r in result.rows if r.error is not None), result.table()


def test_mlp_coupling_checks_a_sample_of_a_large_weight(rng):
    # speed is not asserted here (tests are correctness tests); sampling 200 of the 4096
    # entries is what keeps a check of a realistic layer cheap
    t = MLPCoupling(rng)
    assert t.n_params() == 4418
    result = gc.check_transform(t, rng=0, verbose=False)
    assert result.passed and result.status == "PASS", result.table()
    assert result.max_error < 1e-7
    assert "200 of 4096 entries" in result.row("dW2", "forward").detail


def test_check_restores_parameters_bit_for_bit(rng):
    t = MLPCoupling(rng, H=8)
    before = {k: v.copy() for k, v in t.params.items()}
    ids = {k: id(v) for k, v in t.params.items()}
    gc.check_transform(t, verbose=False)
    for k in before:
        assert id(t.params[k]) == ids[k]
        assert np.array_equal(t.params[k], before[k])


@pytest.mark.parametrize("cls, failing", [
    (DroppedLogDetGrad, {("ds", "forward")}),
    (SignErrorDz, {("dz", "forward")}),
    (MissingLogDetTerm, {("log_det", "forward"), ("log_det sum", "both")}),
])
def test_planted_bug_fails_its_row(rng, cls, failing):
    result = gc.check_transform(cls(2, rng), rng=0, verbose=False)
    assert not result.passed
    got = {k for k, s in statuses(result).items() if s == "FAIL"}
    assert got == failing, result.table()
    assert "worst at [" in result.table() or "worst sample" in result.table()


def test_scalar_log_det_fails_shapes(rng):
    result = gc.check_transform(ScalarLogDet(2, rng), verbose=False)
    row = result.row("shapes", "forward")
    assert row.status == "FAIL" and "one per sample" in row.detail
    assert result.row("dz", "forward").status == "SKIP"


def test_missing_inverse_is_skipped_not_a_crash(rng):
    result = gc.check_transform(NoInverse(2, rng), verbose=False)
    st = statuses(result)
    assert st[("inverse()", "inverse")] == "SKIP"
    assert "not provided" in result.row("inverse()").detail
    assert st[("round trip", "both")] == "SKIP" and st[("log_det sum", "both")] == "SKIP"
    assert st[("da", "forward")] == st[("dz", "forward")] == st[("log_det", "forward")] == "PASS"
    assert result.passed


def test_missing_backward_skips_gradients_but_checks_log_det(rng):
    result = gc.check_transform(NoBackward(2, rng), verbose=False)
    st = statuses(result)
    assert st[("backward()", "forward")] == "SKIP" and st[("inverse_backward()", "inverse")] == "SKIP"
    assert st[("log_det", "forward")] == st[("log_det", "inverse")] == "PASS"
    assert st[("round trip", "both")] == "PASS"
    assert ("ds", "forward") not in st


def test_one_direction_and_given_points(rng):
    x = rng.standard_normal((5, 2))
    result = gc.check_transform(Affine(2, rng), x, directions="inverse", verbose=False)
    assert result.passed and result.n == 5
    assert {r.direction for r in result.rows} == {"inverse"}
    with pytest.raises(ValueError, match="directions"):
        gc.check_transform(Affine(2, rng), directions=("sideways",), verbose=False)
    with pytest.raises(ValueError, match=r"shape \(N, 2\)"):
        gc.check_transform(Affine(2, rng), rng.standard_normal((5, 3)), verbose=False)


def test_table_layout(rng, capsys):
    result = gc.check_transform(Affine(2, rng), verbose=True)
    printed = capsys.readouterr().out
    assert printed.strip() == result.table() == str(result)
    lines = result.table().splitlines()
    assert lines[0].startswith("gradcheck Affine") and "WARN > 1e-07" in lines[0] and "FAIL > 1e-04" in lines[0]
    header = lines[1]
    assert header.split()[:5] == ["check", "direction", "max", "rel", "error"]
    col = header.index("status")
    assert all(line[col:col + 4] in ("PASS", "WARN", "FAIL", "SKIP") for line in lines[3:3 + len(result.rows)])
    assert lines[-1].startswith("PASSED")


def test_custom_thresholds_turn_noise_into_warn(rng):
    result = gc.check_transform(MLPCoupling(rng, H=8), warn=1e-16, fail=1.0, verbose=False)
    assert result.passed and result.status == "WARN"
    with pytest.raises(ValueError, match="warn"):
        gc.check_transform(Affine(2, rng), warn=1e-3, fail=1e-5, verbose=False)


# ------------------------------------------------------------------------------------------------
# check_flow and check_all
# ------------------------------------------------------------------------------------------------
def test_check_flow_names_every_layer_parameter(rng):
    flow = TinyFlow([Affine(2, rng), MLPCoupling(rng, H=8), Affine(2, rng)])
    result = gc.check_flow(flow, verbose=False)
    assert result.passed, result.table()
    names = {r.name for r in result.rows}
    assert {"d0.s", "d0.t", "d1.W2", "d2.t"} <= names


def test_check_flow_catches_a_buggy_layer(rng):
    flow = TinyFlow([Affine(2, rng), SignErrorDz(2, rng), Affine(2, rng)])
    result = gc.check_flow(flow, verbose=False)
    failing = {k for k, s in statuses(result).items() if s == "FAIL"}
    # dz of layer 1 is wrong, so every gradient upstream of it (dz, layer 0's params) is wrong
    assert failing == {("dz", "forward"), ("d0.s", "forward"), ("d0.t", "forward")}, result.table()


def test_flow_whose_params_are_copies_is_refused(rng):
    with pytest.raises(TypeError, match="live arrays"):
        gc.check_flow(TinyFlow([Affine(2, rng)], copy_params=True), verbose=False)


def test_check_all_summary(rng, capsys):
    results = gc.check_all([Affine(2, rng), Affine(2, rng), SignErrorDz(2, rng)])
    out = capsys.readouterr().out
    assert list(results) == ["Affine", "Affine#2", "SignErrorDz"]
    assert results["Affine"].passed and not results["SignErrorDz"].passed
    assert "2 of 3 passed" in out
    assert "gradcheck SignErrorDz" in out            # the failing table is printed in full
    with pytest.raises(TypeError, match="unexpected keyword"):
        gc.check_all([Affine(2, rng)], epsilon=1e-5)


# ------------------------------------------------------------------------------------------------
# check_gradients on pure functions
# ------------------------------------------------------------------------------------------------
def linear_forward(x, W, b):
    return x @ W + b, (x, W)


def linear_backward(dy, cache):
    x, W = cache
    return dy @ W.T, x.T @ dy, dy.sum(axis=0)


def linear_backward_transposed(dy, cache):
    dx, dW, db = linear_backward(dy, cache)
    return dx, dW.T, db


def affine_forward(z, s, t):
    """The functional core of Affine: returns (x, log_det, cache)."""
    return z * np.exp(s) + t, np.full(len(z), s.sum()), (z, s)


def affine_backward(dx, dlog_det, cache):
    z, s = cache
    return dx * np.exp(s), {"s": np.sum(dx * z * np.exp(s), axis=0) + dlog_det.sum(),
                            "t": dx.sum(axis=0)}


def test_check_gradients_linear_layer(rng):
    inputs = {"x": rng.standard_normal((4, 3)), "W": rng.standard_normal((3, 3)), "b": rng.standard_normal(3)}
    kept = {k: v.copy() for k, v in inputs.items()}
    ok = gc.check_gradients(linear_forward, linear_backward, inputs, verbose=False)
    assert ok.passed and [r.name for r in ok.rows] == ["dx", "dW", "db"]
    assert ok.max_error < 1e-8
    assert all(np.array_equal(inputs[k], kept[k]) for k in inputs)     # inputs untouched

    bad = gc.check_gradients(linear_forward, linear_backward_transposed, inputs, verbose=False)
    assert {r.name: r.status for r in bad.rows} == {"dx": "PASS", "dW": "FAIL", "db": "PASS"}

    inputs["W"], inputs["b"] = rng.standard_normal((3, 2)), rng.standard_normal(2)  # non-square
    bad = gc.check_gradients(linear_forward, linear_backward_transposed, inputs, verbose=False)
    assert bad.row("dW").status == "FAIL" and "shape" in bad.row("dW").detail


def test_check_gradients_with_log_det_and_dict_forms(rng):
    inputs = {"z": rng.standard_normal((5, 2)), "s": rng.standard_normal(2), "t": rng.standard_normal(2)}
    res = gc.check_gradients(affine_forward, affine_backward, inputs, verbose=False)   # (dz, grads)
    assert res.passed and [r.name for r in res.rows] == ["dz", "ds", "dt"]

    def as_dict(dx, dlog_det, cache):
        dz, grads = affine_backward(dx, dlog_det, cache)
        return {"z": dz, **grads}
    assert gc.check_gradients(affine_forward, as_dict, inputs, verbose=False).passed

    def dropped(dx, dlog_det, cache):
        dz, grads = affine_backward(dx, dlog_det, cache)
        grads["s"] = grads["s"] - dlog_det.sum()
        return dz, grads
    res = gc.check_gradients(affine_forward, dropped, inputs, verbose=False)
    assert {r.name: r.status for r in res.rows} == {"dz": "PASS", "ds": "FAIL", "dt": "PASS"}


def test_check_gradients_constants_and_wrt(rng):
    mask = np.array([1.0, 0.0])
    z = rng.standard_normal((4, 2))
    fwd = lambda z, mask: (z * (1 + mask), None)                        # noqa: E731
    bwd = lambda dy, cache: dy * (1 + mask)                             # noqa: E731
    res = gc.check_gradients(fwd, bwd, {"z": z, "mask": mask}, verbose=False)
    assert res.row("dz").status == "PASS" and res.row("dmask").status == "SKIP"
    res = gc.check_gradients(fwd, bwd, {"z": z, "mask": mask}, wrt=["z"], verbose=False)
    assert [r.name for r in res.rows] == ["dz"] and res.passed
    res = gc.check_gradients(fwd, lambda dy, c: {"z": dy * (1 + mask)}, {"z": z, "mask": mask},
                             wrt=["z", "mask"], verbose=False)
    assert res.row("dmask").status == "FAIL"
    with pytest.raises(ValueError, match="wrt"):
        gc.check_gradients(linear_forward, lambda dy, c: (dy, dy), {"x": z, "W": np.eye(2), "b": np.zeros(2)},
                           verbose=False)


# ------------------------------------------------------------------------------------------------
# conditional models: the context's gradient is checked like a parameter's
# ------------------------------------------------------------------------------------------------
def _conditional_flow():
    from nfscratch import models
    flow = models.realnvp(2, 3, hidden=(8,), rng=0, context_dim=3)
    gc.perturb_params(flow, rng=1)
    return flow


def test_check_transform_checks_dcontext_of_conditional_models():
    from nfscratch.transforms import AffineCoupling
    layer = AffineCoupling(2, hidden=(8,), context_dim=3, rng=0)
    gc.perturb_params(layer, rng=1)
    for model in (layer, _conditional_flow()):
        res = gc.check_transform(model, verbose=False)       # standard-normal contexts
        assert res.passed, res.table()
        assert {r.direction for r in res.rows if r.name == "dcontext"} == {"forward", "inverse"}
        ctx = np.random.default_rng(2).standard_normal((8, 3))
        assert gc.check_flow(model, context=ctx, verbose=False).passed


class _WrongContextGrad:
    """A conditional flow whose stored dcontext is off by a factor 2 (a planted bug)."""
    def __init__(self, flow):
        self.flow, self.dim, self.context_dim = flow, flow.dim, flow.context_dim
        self.params, self.grads = flow.params, flow.grads
        self.forward, self.inverse = flow.forward, flow.inverse

    def backward(self, dx, dlog_det):
        dz = self.flow.backward(dx, dlog_det)
        self.dcontext = 2.0 * self.flow.dcontext
        return dz

    def inverse_backward(self, dz, dlog_det):
        dx = self.flow.inverse_backward(dz, dlog_det)
        self.dcontext = self.flow.dcontext
        return dx


def test_wrong_dcontext_fails_in_its_direction_only():
    res = gc.check_transform(_WrongContextGrad(_conditional_flow()), verbose=False)
    assert not res.passed
    assert res.row("dcontext", "forward").status == "FAIL"
    assert res.row("dcontext", "inverse").status == "PASS"


def test_context_bad_input():
    with pytest.raises(ValueError, match="context: .*not conditional"):
        gc.check_transform(_small_flow_for_context(), context=np.zeros((8, 3)), verbose=False)
    with pytest.raises(ValueError, match=r"context: expected one row per sample, shape \(8, 3\)"):
        gc.check_transform(_conditional_flow(), context=np.zeros((5, 3)), verbose=False)
    with pytest.raises(TypeError, match="context"):
        gc.check_transform(_conditional_flow(), context=np.zeros((8, 3), dtype=np.float32),
                           verbose=False)
    # the rules of every pass (_validate.as_context), on top of gradcheck's float64 rule
    with pytest.raises(ValueError, match=r"context: expected 3 features"):
        gc.check_transform(_conditional_flow(), context=np.zeros((8, 2)), verbose=False)
    with pytest.raises(ValueError, match=r"context: expected finite values"):
        gc.check_transform(_conditional_flow(), context=np.full((8, 3), np.nan), verbose=False)


def _small_flow_for_context():
    from nfscratch import models
    return models.realnvp(2, 2, hidden=(4,), rng=0)
