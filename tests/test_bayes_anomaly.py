"""A Bayesian posterior as a VI target, and anomaly detection by likelihood."""
import numpy as np
import pytest

from nfscratch import datasets, models
from nfscratch.anomaly import LikelihoodDetector, anomaly_scores
from nfscratch.bayes import grid_moments, logistic_regression_data, logistic_regression_posterior
from nfscratch.gradcheck import numerical_gradient
from nfscratch.train import fit


@pytest.fixture(scope="module")
def posterior():
    X, y = logistic_regression_data(15, rng=3)
    return logistic_regression_posterior(X, y, prior_std=2.0)


def test_posterior_energy_and_gradient(posterior, rng):
    W = 2 * rng.normal(size=(6, 2))
    g = posterior.energy_grad(W)
    for n in range(6):
        w = W[n].copy()
        num = numerical_gradient(lambda v: float(posterior.energy(v[None])[0]), w)
        assert np.max(np.abs(g[n] - num)) < 1e-7 * max(1.0, np.max(np.abs(num)))
    assert posterior.energy(np.zeros((1, 2)))[0] == pytest.approx(15 * np.log(2.0))


def test_flow_learns_the_posterior(posterior):
    rng = np.random.default_rng(0)
    flow = models.realnvp(2, 4, (32, 32), rng=rng)
    fit(flow, target=posterior, steps=1000, batch_size=256, lr=3e-3, rng=rng, progress=False)
    log_z = posterior.log_normalizer(limit=12.0, n_grid=1201)   # the box holds all the mass
    x, log_q = flow.sample_and_log_prob(20000, rng)
    kl = np.mean(log_q + posterior.energy(x)) + log_z
    assert -0.02 < kl < 0.06                                    # measured 0.01-0.025 nats
    mean, cov = grid_moments(posterior, limit=12.0)             # posterior std ~1.2
    np.testing.assert_allclose(x.mean(axis=0), mean, atol=0.15)
    np.testing.assert_allclose(np.cov(x.T), cov, atol=0.3)


def test_posterior_bad_input():
    X, y = logistic_regression_data(5, rng=0)
    with pytest.raises(ValueError, match=r"y: expected shape \(5,\)"):
        logistic_regression_posterior(X, y[:3])
    with pytest.raises(ValueError, match="y: expected labels 0 or 1"):
        logistic_regression_posterior(X, y + 0.5)
    with pytest.raises(ValueError, match="prior_std"):
        logistic_regression_posterior(X, y, prior_std=0.0)


def test_likelihood_detector_on_two_moons():
    rng = np.random.default_rng(0)
    flow = models.realnvp(2, 4, (32, 32), rng=rng)
    fit(flow, data=datasets.two_moons(2048, rng, noise=0.05), steps=300, lr=5e-3, rng=rng,
        progress=False)
    detector = LikelihoodDetector(flow, alpha=0.05).calibrate(datasets.two_moons(2000, rng, noise=0.05))
    normal = datasets.two_moons(4000, rng, noise=0.05)
    fpr = detector.predict(normal).mean()
    assert abs(fpr - 0.05) < 0.02                               # calibrated false-positive rate
    outliers = np.array([[2.5, 1.0], [3.0, 3.0], [-2.0, -1.5], [0.0, 1.6]])    # off the moons
    assert detector.predict(outliers).all()
    assert np.all(anomaly_scores(flow, outliers) > np.quantile(anomaly_scores(flow, normal), 0.95))


def test_detector_errors():
    flow = models.planar_flow(2, 1, rng=0)
    with pytest.raises(ValueError, match="alpha"):
        LikelihoodDetector(flow, alpha=1.5)
    with pytest.raises(RuntimeError, match="calibrate"):
        LikelihoodDetector(flow).predict(np.zeros((1, 2)))
    with pytest.raises(ValueError, match="cannot calibrate a 0.01 quantile"):
        LikelihoodDetector(flow, alpha=0.01).calibrate(np.zeros((10, 2)))
