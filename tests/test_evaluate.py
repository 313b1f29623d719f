"""Tests for nfscratch.evaluate: results stated against their floor.

Cases with a known answer: a flow that *is* the target (KL exactly 0, every importance weight
equal), a Gaussian flow against a Gaussian target (KL in closed form), a standard-normal flow on
standard-normal data (NLL = ln(2 pi e)); standard errors that shrink as 1/sqrt(n); and a briefly
trained flow whose gap to the exact entropy is not below -3 standard errors.
"""
import functools
import math
import re

import numpy as np
import pytest

from nfscratch import datasets, evaluate, models
from nfscratch.flow import Flow
from nfscratch.train import fit
from nfscratch.transforms import ElementwiseAffine, Reverse

LOG_2PI = math.log(2 * math.pi)


def gauss():
    """0.5 |x|^2: the standard normal, log Z = log 2 pi."""
    return datasets.Energy.from_functions("gauss", 2, lambda x: 0.5 * np.sum(x ** 2, axis=1),
                                          lambda x: x)


def scaled_flow(log_scale):
    flow = Flow([ElementwiseAffine(2)])
    flow.transforms[0].params["log_scale"][:] = log_scale
    return flow


def standard_normal(n, rng):
    return rng.standard_normal((n, 2))


# ----------------------------------------------------------------------------------------------
# KL(q || p)
# ----------------------------------------------------------------------------------------------
def test_kl_is_zero_when_the_flow_is_the_target():
    for flow in (Flow([Reverse(2)]), scaled_flow([0.0, 0.0])):
        result = evaluate.kl(flow, gauss(), n=5000, rng=0, log_z=LOG_2PI)
        assert abs(result.kl) < 1e-12 and result.se < 1e-12
        assert result.ess == pytest.approx(1.0, abs=1e-12)
        assert str(result) == "KL 0.000 ± 0.000 nats (ESS 100%)"
    # log Z by the energy's own quadrature gives the same (to its accuracy)
    assert abs(evaluate.kl(Flow([Reverse(2)]), gauss(), n=100, rng=0).kl) < 1e-6


def test_kl_matches_the_gaussian_closed_form():
    # q = N(0, diag(s^2)), p = N(0, I): KL = sum_d (s_d^2 - 1 - ln s_d^2) / 2
    log_s = np.array([0.3, -0.2])
    exact = float(np.sum(np.exp(2 * log_s) - 1 - 2 * log_s) / 2)
    result = evaluate.kl(scaled_flow(log_s), gauss(), n=40_000, rng=1, log_z=LOG_2PI)
    assert abs(result.kl - exact) < 4 * result.se
    assert 0.0 < result.ess < 1.0
    assert re.fullmatch(r"KL \d\.\d{3} ± \d\.\d{3} nats \(ESS \d+%\)", str(result))


def test_standard_errors_shrink_as_one_over_sqrt_n():
    flow = scaled_flow([0.3, -0.2])
    se_kl = [evaluate.kl(flow, gauss(), n=n, rng=2, log_z=LOG_2PI).se for n in (4000, 64_000)]
    se_nll = [evaluate.nll(flow, standard_normal, n=n, rng=2).se for n in (4000, 64_000)]
    for small_n, big_n in (se_kl, se_nll):
        assert small_n / big_n == pytest.approx(4.0, rel=0.15)


def test_kl_on_a_built_in_energy_by_name():
    flow = models.planar_flow(2, n_layers=4, rng=0)
    by_name = evaluate.kl(flow, "U1", n=2000, rng=3)
    by_object = evaluate.kl(flow, datasets.energy("U1"), n=2000, rng=3)
    assert by_name == by_object
    assert by_name.kl > -3 * by_name.se and by_name.log_z == datasets.energy("U1").log_normalizer()
    assert by_name.target == "U1" and by_name.n == 2000


# ----------------------------------------------------------------------------------------------
# NLL against the entropy
# ----------------------------------------------------------------------------------------------
def test_nll_of_the_true_density_is_its_entropy():
    result = evaluate.nll(Flow([Reverse(2)]), standard_normal, n=20_000, rng=4)
    assert abs(result.nll - (LOG_2PI + 1)) < 4 * result.se          # H(N(0, I_2)) = ln(2 pi e)
    assert result.floor is None and result.gap is None
    assert str(result).endswith("(floor unknown for standard_normal)")


def test_nll_of_a_briefly_trained_flow_is_above_the_floor():
    flow = models.realnvp(2, n_layers=4, hidden=(32, 32), rng=0)
    fit(flow, data=datasets.two_moons(4000, rng=5), steps=300, batch_size=256, lr=3e-3, rng=6)
    result = evaluate.nll(flow, "two_moons", n=20_000, rng=7)
    assert result.floor == datasets.entropy("two_moons")
    assert result.gap == result.nll - result.floor
    assert result.gap > -3 * result.se
    assert result.gap < 1.0                    # it did learn something (an untrained flow: ~1.7)
    number = r"-?\d\.\d{3}"
    assert re.fullmatch(rf"NLL {number} ± {number} nats \(floor {number}, gap {number} nats\)",
                        str(result))


def test_nll_recognizes_built_in_samplers_and_their_keywords():
    flow = Flow([Reverse(2)])
    by_name = evaluate.nll(flow, "two_moons", n=1000, rng=8, noise=0.05)
    moons_005 = functools.partial(datasets.two_moons, noise=0.05)
    by_partial = evaluate.nll(flow, moons_005, n=1000, rng=8)
    by_function = evaluate.nll(flow, datasets.two_moons, n=1000, rng=8)
    assert by_name.floor == by_partial.floor == datasets.entropy("two_moons", noise=0.05)
    assert by_function.floor == datasets.entropy("two_moons")
    assert by_name.data == "two_moons(noise=0.05)"
    assert evaluate.nll(flow, "pinwheel", n=100, rng=0).floor == datasets.entropy("pinwheel")


# ----------------------------------------------------------------------------------------------
# bad arguments
# ----------------------------------------------------------------------------------------------
def test_bad_arguments_are_named():
    flow = Flow([Reverse(2)])
    with pytest.raises(TypeError, match="flow: expected a Flow"):
        evaluate.nll("flow", "two_moons")
    with pytest.raises(TypeError, match="flow: expected a Flow"):
        evaluate.kl(None, "U1")
    with pytest.raises(TypeError, match="data: expected the name of a data set"):
        evaluate.nll(flow, 3)
    with pytest.raises(ValueError, match="moonz"):
        evaluate.nll(flow, "moonz", n=10)
    with pytest.raises(TypeError, match="params: sampler keywords go with a data set name"):
        evaluate.nll(flow, standard_normal, n=10, noise=0.1)
    for n in (1, 0):
        with pytest.raises(ValueError, match="n: expected"):
            evaluate.nll(flow, "two_moons", n=n)
    with pytest.raises(TypeError, match="n: expected a positive integer"):
        evaluate.kl(flow, "U1", n=2.5)
    with pytest.raises(ValueError, match="U5"):
        evaluate.kl(flow, "U5")
    with pytest.raises(TypeError, match="target: expected an Energy"):
        evaluate.kl(flow, 3)
    with pytest.raises(ValueError, match="target: expected an energy in dimension 3"):
        evaluate.kl(models.planar_flow(3, n_layers=2, rng=0), "U1", n=10)
    with pytest.raises(TypeError, match="log_z: expected a finite number"):
        evaluate.kl(flow, gauss(), n=10, log_z="abc")
    with pytest.raises(ValueError, match="log_z: expected a finite number"):
        evaluate.kl(flow, gauss(), n=10, log_z=float("nan"))
    with pytest.raises(ValueError, match=r"data: the sampler returned shape \(10, 3\)"):
        evaluate.nll(flow, lambda n, rng: np.zeros((n, 3)), n=10)


def test_a_flow_with_non_finite_log_density_is_reported():
    class Broken:
        dim = 2

        def log_prob(self, x):
            return np.where(x[:, 0] > 0, np.nan, 0.0)

    with pytest.raises(ValueError, match="flow: log q\\(x\\) is not finite at"):
        evaluate.nll(Broken(), standard_normal, n=100, rng=0)
