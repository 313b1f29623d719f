r"""Anomaly detection by likelihood: a point is unusual when the flow gives it low density.

A trained flow gives the exact ``log q(x)`` of every point. Calibrate a threshold on held-out
normal data -- the ``alpha`` quantile of their log-likelihoods -- and flag points below it; by
construction about a fraction ``alpha`` of normal points are flagged (the false-positive rate).

Notes
-----
Likelihood is a density, so it depends on the coordinates: rescaling a feature shifts every
``log q`` by a constant Jacobian term. Thresholds are only comparable within one
parameterization of the data. And high-dimensional flows are known to give *higher* likelihood
to some out-of-distribution inputs than to their training data (Nalisnick et al. 2019,
arXiv:1810.09136), so in high dimension likelihood alone is a weak detector; in 2-D toys it
works as one expects.
"""
import numpy as np

from ._validate import as_batch

__all__ = ["anomaly_scores", "LikelihoodDetector", "roc_curve"]


def anomaly_scores(flow, x):
    """``-log q(x)`` per point (N,): higher means more anomalous."""
    return -flow.log_prob(x)


class LikelihoodDetector:
    """Flag points whose log-likelihood under ``flow`` falls below a calibrated threshold.

    Parameters
    ----------
    flow : Flow
        A trained flow.
    alpha : float
        Target false-positive rate on normal data, in (0, 1).

    Examples
    --------
    >>> from nfscratch import models
    >>> flow = models.planar_flow(2, 2, rng=0)       # untrained: close to a standard normal
    >>> normal = np.random.default_rng(0).normal(size=(2000, 2))
    >>> detector = LikelihoodDetector(flow, alpha=0.05).calibrate(normal)
    >>> detector.predict(np.array([[0.0, 0.0], [6.0, 6.0]])).tolist()
    [False, True]
    """

    def __init__(self, flow, alpha=0.01):
        if not 0.0 < float(alpha) < 1.0:
            raise ValueError(f"alpha: expected a false-positive rate in (0, 1), got {alpha!r}.")
        self.flow = flow
        self.alpha = float(alpha)
        self.threshold = None

    def calibrate(self, x_normal):
        """Set the threshold to the ``alpha`` quantile of ``log q`` on normal data; return self."""
        x_normal = as_batch(x_normal, self.flow.dim, "x_normal")
        if x_normal.shape[0] < int(np.ceil(1.0 / self.alpha)):
            raise ValueError(f"x_normal: {x_normal.shape[0]} points cannot calibrate a "
                             f"{self.alpha:g} quantile; give at least {int(np.ceil(1 / self.alpha))}.")
        self.threshold = float(np.quantile(self.flow.log_prob(x_normal), self.alpha))
        return self

    def log_prob(self, x):
        return self.flow.log_prob(x)

    def predict(self, x):
        """Boolean (N,): True where ``log q(x)`` is below the threshold."""
        if self.threshold is None:
            raise RuntimeError("LikelihoodDetector.predict: call calibrate(x_normal) first.")
        return self.flow.log_prob(x) < self.threshold


def roc_curve(scores_normal, scores_anomalous):
    r"""The ROC curve of a score (higher = more anomalous) and the area under it.

    Flagging every point with score at least ``s`` gives, over all thresholds ``s``, the
    false-positive rate (fraction of normal points flagged) and the true-positive rate
    (fraction of anomalies flagged); the area under that curve is the probability that a random
    anomaly scores higher than a random normal point (ties count one half).

    Parameters
    ----------
    scores_normal, scores_anomalous : array_like, shape (N,) and (M,)

    Returns
    -------
    fpr, tpr : ndarray, from (1, 1) down to (0, 0)
    auc : float

    Examples
    --------
    >>> fpr, tpr, auc = roc_curve([0.0, 1.0, 2.0], [1.5, 3.0])
    >>> round(auc, 6)
    0.833333
    """
    normal = np.sort(np.asarray(scores_normal, dtype=np.float64).ravel())
    anomalous = np.sort(np.asarray(scores_anomalous, dtype=np.float64).ravel())
    if normal.size == 0 or anomalous.size == 0:
        raise ValueError("scores_normal, scores_anomalous: expected at least one score each.")
    thresholds = np.unique(np.concatenate([normal, anomalous, [np.inf]]))
    fpr = 1.0 - np.searchsorted(normal, thresholds, side="left") / normal.size
    tpr = 1.0 - np.searchsorted(anomalous, thresholds, side="left") / anomalous.size
    auc = float(np.sum(-np.diff(fpr) * 0.5 * (tpr[1:] + tpr[:-1])))
    return fpr, tpr, auc
