"""The flow doctor finds planted faults and names the layer; it says a healthy flow is healthy."""
import numpy as np
import pytest

import nfscratch
from nfscratch import Flow, datasets, io, models
from nfscratch.cli import main
from nfscratch.doctor import doctor
from nfscratch.transforms import AffineCoupling, ElementwiseAffine


def _trained_like(rng=0):
    """A small RealNVP with random (not identity) parameters, so every layer does something."""
    flow = models.realnvp(2, 4, hidden=(16, 16), rng=rng)
    r = np.random.default_rng(rng)
    for p in flow.params().values():
        p[...] = r.normal(0.0, 0.3, p.shape)
    return flow


class NaNAbove(ElementwiseAffine):
    """Planted fault: the forward pass returns NaN for z_0 > 1 (a log of a negative number)."""
    def _forward(self, z):
        x, log_det, cache = super()._forward(z)
        with np.errstate(invalid="ignore"):
            x[:, 0] = x[:, 0] + 0.0 * np.log(1.0 - z[:, 0])
        return x, log_det, cache


class BrokenInverse(ElementwiseAffine):
    """Planted fault: the inverse forgets to undo the shift."""
    def _inverse(self, x):
        z, log_det, cache = super()._inverse(x)
        return z + self.params["shift"] * np.exp(-self.params["log_scale"]), log_det, cache


class WrongLogDet(ElementwiseAffine):
    """Planted fault: the forward log-det counts the scale twice."""
    def _forward(self, z):
        x, log_det, cache = super()._forward(z)
        return x, 2.0 * log_det, cache


def _with_fault(fault_cls, at=2):
    flow = _trained_like()
    bad = fault_cls(2)
    bad.params["log_scale"][...] = [0.3, -0.2]
    bad.params["shift"][...] = [0.5, -0.4]
    layers = list(flow.transforms)
    layers.insert(at, bad)
    return Flow(layers)


def test_healthy_flow_is_healthy():
    report = doctor(_trained_like(), datasets.two_moons(400, 0), rng=0, verbose=False)
    assert report.ok, str(report)
    assert report.problem_layers() == []
    assert abs(report.mass - 1.0) < 0.05
    assert any("healthy" in v for v in report.verdicts)


@pytest.mark.parametrize("fault, words", [(NaNAbove, "non-finite"),
                                          (BrokenInverse, "misses p"),
                                          (WrongLogDet, "log-det differs")])
def test_planted_fault_is_found_and_named(fault, words):
    flow = _with_fault(fault, at=2)
    report = doctor(flow, datasets.two_moons(400, 1), rng=0, verbose=False)
    assert not report.ok
    assert report.problem_layers() == [2], str(report)
    text = str(report)
    assert f"layer 2 ({fault.__name__})" in text and words in text


def test_negative_nll_is_explained():
    flow = Flow([ElementwiseAffine(2)])
    flow[0].params["log_scale"][...] = -3.0       # a narrow density: peaks far above 1
    report = doctor(flow, flow.sample(500, rng=0), rng=0, verbose=False)
    assert report.nll < 0 and report.ok
    assert any("negative NLL" in v and "fine" in v for v in report.verdicts)


def test_planar_margin_reported_when_available():
    flow = models.planar_flow(2, 3, rng=0)
    report = doctor(flow, rng=0, verbose=False)
    assert len(report.layers) == 3 and all(0 < l.margin <= 1 for l in report.layers)
    # push layer 1 to the edge of invertibility: w.u -> -30 makes 1 + c = softplus(-30) ~ 1e-13
    layer = flow[1]
    w = layer.params["w"]
    layer.params["u"][...] = -30.0 * w / (w @ w)
    report = doctor(flow, rng=0, verbose=False)
    assert report.layers[1].margin < 1e-10
    assert 1 in report.problem_layers()
    assert "layer 1 (Planar): its invertibility margin" in str(report)


def test_radial_margin():
    flow = models.radial_flow(2, 2, rng=0)
    flow[0].params["beta"][...] = -40.0      # m = softplus(-40) ~ 4e-18: nearly not invertible
    report = doctor(flow, rng=0, verbose=False)
    assert report.layers[0].margin < 1e-12 and report.layers[1].margin > 1e-3
    assert 0 in report.problem_layers()


def test_top_level_function_and_bad_arguments():
    assert nfscratch.doctor is doctor
    with pytest.raises(TypeError, match="flow"):
        doctor("flow")
    with pytest.raises(ValueError, match="n"):
        doctor(_trained_like(), n=0)
    with pytest.raises(ValueError, match="x"):
        doctor(_trained_like(), np.ones((5, 3)))


def test_cli_doctor(tmp_path, capsys):
    good = io.save(_trained_like(), tmp_path / "good.npz")
    assert main(["doctor", str(good), "--data", "two_moons", "--n", "300"]) == 0
    assert "healthy" in capsys.readouterr().out
    np.save(tmp_path / "x.npy", datasets.two_moons(300, 2))
    assert main(["doctor", str(good), "--data", str(tmp_path / "x.npy"), "--n", "300"]) == 0
    capsys.readouterr()
    assert main(["doctor", str(tmp_path / "missing.npz")]) == 2
    assert "nfscratch doctor:" in capsys.readouterr().err
    assert main(["doctor", str(good), "--data", "no_such_set"]) == 2
    assert "--data" in capsys.readouterr().err
    assert main(["doctor", str(good), "--seed", "-1"]) == 2
    assert "--seed" in capsys.readouterr().err


def _conditional(rng=0):
    """A conditional RealNVP (two one-hot classes) with random parameters."""
    flow = models.realnvp(2, 4, hidden=(16, 16), rng=rng, context_dim=2)
    r = np.random.default_rng(rng)
    for p in flow.params().values():
        p[...] = r.normal(0.0, 0.3, p.shape)
    return flow


def test_conditional_flow_is_examined_at_its_contexts():
    flow = _conditional()
    x, y = datasets.two_moons_labeled(300, 0)
    ctx = models.one_hot(y, 2)
    for context in (None, ctx, [0.0, 1.0]):       # random rows, one per point, one shared
        report = doctor(flow, x, context=context, n=300, rng=0, verbose=False)
        assert report.ok, str(report)
        assert abs(report.mass - 1.0) < 0.05
        assert all(r.log_det_error["inverse"] < 1e-5 for r in report.layers)
    with pytest.raises(ValueError, match="context"):
        doctor(flow, x, context=np.ones((300, 3)), verbose=False)
    with pytest.raises(ValueError, match="context"):
        doctor(flow, x, context=np.ones((7, 2)), verbose=False)
    with pytest.raises(ValueError, match="not conditional"):
        doctor(_trained_like(), context=[1.0, 0.0], verbose=False)


class ContextBlindInverse(AffineCoupling):
    """Planted fault: the inverse reads a zero context instead of the one it was given."""
    def _inverse(self, x, context=None):
        return super()._inverse(x, np.zeros_like(context))


def test_conditional_fault_is_found_and_named():
    flow = _conditional()
    bad = ContextBlindInverse(2, hidden=(8,), parity=1, context_dim=2, rng=1)
    for p in bad.params.values():
        p[...] = np.random.default_rng(1).normal(0.0, 0.5, p.shape)
    flow = Flow(list(flow.transforms[:2]) + [bad] + list(flow.transforms[2:]))
    report = doctor(flow, n=300, rng=0, verbose=False)
    assert report.problem_layers() == [2], str(report)
    assert any("layer 2" in v and "misses p" in v for v in report.verdicts)


def test_cli_doctor_conditional(tmp_path, capsys):
    path = io.save(_conditional(), tmp_path / "cond.npz")
    assert main(["doctor", str(path), "--n", "200"]) == 0
    assert main(["doctor", str(path), "--n", "200", "--context", "1,0"]) == 0
    assert "healthy" in capsys.readouterr().out
    assert main(["doctor", str(path), "--context", "1,x"]) == 2
    assert "--context" in capsys.readouterr().err
