r"""A Bayesian posterior as a variational-inference target: logistic regression.

The energies U1-U4 are pictures; a posterior is what variational inference is for. Given inputs
``X`` (M, D) and labels ``y`` in {0, 1}, with a Gaussian prior ``w ~ N(0, s^2 I)`` on the
weights, the unnormalized posterior is ``p(w | X, y) ∝ exp(-U(w))`` with

.. math::

    U(w) = -\sum_{m=1}^M \left[ y_m\, \ell_m - \log(1 + e^{\ell_m}) \right]
           + \frac{\|w\|^2}{2 s^2}, \qquad \ell_m = x_m^\top w,

    \nabla U(w) = -\sum_m \left(y_m - \sigma(\ell_m)\right) x_m + \frac{w}{s^2}.

There is no closed form for the posterior or for ``log Z``; with D = 2 weights both can be
computed to high accuracy on a grid (:meth:`~nfscratch.datasets.Energy.log_normalizer`,
:func:`grid_moments`), which makes the KL of a trained flow measurable in nats -- and shows
where a Gaussian (Laplace) approximation would be off.

References
----------
Rezende, Mohamed, "Variational Inference with Normalizing Flows", ICML 2015, arXiv:1505.05770.
Bishop, "Pattern Recognition and Machine Learning", 2006, Sec. 4.5 (Bayesian logistic regression).
"""
import numpy as np

from ._validate import as_batch, as_float_array, as_rng, check_positive_int
from .datasets import Energy
from .nn import sigmoid, softplus

__all__ = ["logistic_regression_data", "logistic_regression_posterior", "grid_moments"]


def logistic_regression_data(n, rng=None, w_true=(1.5, -1.0)):
    """A small labelled data set for logistic regression without bias.

    ``x ~ N(0, I_D)``, ``y ~ Bernoulli(sigmoid(x . w_true))``. With few points (``n`` ~ 10-30)
    the posterior over ``w`` is wide and visibly skewed, which a Gaussian cannot represent.

    Returns
    -------
    X : ndarray, shape (n, D)
    y : ndarray, shape (n,), float64 in {0, 1}

    Examples
    --------
    >>> X, y = logistic_regression_data(5, rng=0)
    >>> X.shape, y.shape
    ((5, 2), (5,))
    """
    n = check_positive_int(n, "n")
    w_true = as_float_array(w_true, "w_true").ravel()
    rng = as_rng(rng)
    X = rng.standard_normal((n, w_true.size))
    y = (rng.random(n) < sigmoid(X @ w_true)).astype(np.float64)
    return X, y


def logistic_regression_posterior(X, y, prior_std=1.0):
    """The posterior over logistic-regression weights as an :class:`~nfscratch.datasets.Energy`.

    Parameters
    ----------
    X : ndarray, shape (M, D)
    y : ndarray, shape (M,), entries 0 or 1
    prior_std : float
        ``s`` of the prior ``N(0, s^2 I)``.

    Returns
    -------
    Energy
        ``energy(W)`` for a batch of weight vectors ``W`` (N, D), and its gradient.

    Examples
    --------
    >>> X, y = logistic_regression_data(20, rng=0)
    >>> post = logistic_regression_posterior(X, y)
    >>> post.energy(np.zeros((1, 2))).round(6).tolist()   # 20 log 2 at w = 0
    [13.862944]
    """
    X = as_batch(X, None, "X")
    y = as_float_array(y, "y")
    if y.shape != (X.shape[0],):
        raise ValueError(f"y: expected shape ({X.shape[0]},) to match X, got {y.shape}.")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("y: expected labels 0 or 1 only.")
    prior_std = float(prior_std)
    if not prior_std > 0:
        raise ValueError(f"prior_std: expected a positive standard deviation, got {prior_std}.")
    inv_var = 1.0 / prior_std**2

    def energy(W):                                   # W (N, D)
        logits = W @ X.T                             # (N, M)
        log_lik = logits @ y - softplus(logits).sum(axis=1)
        return -log_lik + 0.5 * inv_var * np.einsum("nd,nd->n", W, W)

    def grad(W):
        residual = y[None, :] - sigmoid(W @ X.T)     # (N, M)
        return -residual @ X + inv_var * W

    return Energy(f"logistic-regression posterior (M={X.shape[0]}, D={X.shape[1]})", X.shape[1],
                  energy, grad)


def grid_moments(energy, limit=6.0, n_grid=401):
    """Mean (D,) and covariance (D, D) of ``exp(-U)`` by quadrature on a grid (D = 2).

    The reference against which a flow's samples are compared.
    """
    if energy.dim != 2:
        raise ValueError(f"energy: grid_moments supports dim 2, got dim {energy.dim}.")
    g = np.linspace(-limit, limit, check_positive_int(n_grid, "n_grid"))
    pts = np.stack(np.meshgrid(g, g, indexing="ij"), axis=-1).reshape(-1, 2)   # (G*G, 2)
    neg_u = -energy.energy(pts)
    p = np.exp(neg_u - neg_u.max())
    p /= p.sum()
    mean = p @ pts
    centred = pts - mean
    return mean, (centred * p[:, None]).T @ centred
