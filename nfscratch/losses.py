r"""The two training objectives, each as a pure function returning the loss and its upstream
gradients, and as a one-call step that also backpropagates through a flow.

Notes
-----
Forward KL / maximum likelihood on data ``x_1..x_N`` (runs the inverse chain):

.. math::

    L = -\frac{1}{N}\sum_n \left[\log p_0(z_n) + \ell_n\right], \quad z_n = f^{-1}(x_n),\;
    \ell_n = \log|\det \partial z/\partial x|_n,

    \frac{\partial L}{\partial z_n} = -\frac{1}{N}\nabla\log p_0(z_n) = \frac{z_n}{N}, \qquad
    \frac{\partial L}{\partial \ell_n} = -\frac{1}{N}.

It equals ``KL(p_data || q) + H(p_data)``, so it is bounded below by the data's entropy.

Reverse KL against an unnormalized target ``p(x) ∝ exp(-U(x))`` with ``z_n ~ p_0`` (runs the
forward chain; the samples are reparameterized, so gradients flow through ``x = f(z)``):

.. math::

    L = \frac{1}{N}\sum_n \left[\log p_0(z_n) - \ell_n + U(x_n)\right], \quad
    \ell_n = \log|\det \partial x/\partial z|_n,

    \frac{\partial L}{\partial x_n} = \frac{\nabla U(x_n)}{N}, \qquad
    \frac{\partial L}{\partial \ell_n} = -\frac{1}{N}.

``L + log Z = KL(q || p) >= 0``, so with the target's log-normalizer ``log Z`` the loss becomes a
true KL in nats. ``log p_0(z_n)`` does not depend on the parameters (z is sampled, not learned).

Reverse KL is mode-seeking: started from one Gaussian blob, a flow can settle on one of two
separated modes and stay there (a KL of about ln 2 for two equal modes). Annealing, i.e.
training against ``beta U`` with ``beta`` rising from ~0 to 1, first spreads q over the whole
support; ``beta`` below is that inverse temperature.

References
----------
Rezende, Mohamed, "Variational Inference with Normalizing Flows", ICML 2015, arXiv:1505.05770.
Papamakarios et al., "Normalizing Flows for Probabilistic Modeling and Inference", JMLR 2021,
arXiv:1912.02762 (Section 2.3, the two KL directions).
"""
import numpy as np

from ._validate import as_batch, as_rng, check_positive_float, check_positive_int


def _check_pass(points, log_det, dim, name):
    """Shapes of a pass's outputs: ``points`` (N, D) and one log-det per sample (N,).

    NaN/inf are let through on purpose: a diverging fit must get a NaN loss, not an error.
    """
    points = as_batch(points, dim, name, allow_nonfinite=True)
    log_det = np.asarray(log_det)
    if log_det.dtype.kind != "f" or log_det.shape != (points.shape[0],):
        raise ValueError(f"log_det: expected a float array of shape ({points.shape[0]},), one "
                         f"log-det per sample, got shape {log_det.shape} and dtype {log_det.dtype}"
                         " (a summed or broadcast scalar log-det gives a wrong loss).")
    return points, log_det.astype(np.float64, copy=False)

__all__ = ["nll_loss", "reverse_kl_loss", "nll_step", "reverse_kl_step"]


def nll_loss(z, log_det, base):
    """Mean negative log-likelihood from the inverse pass.

    Parameters
    ----------
    z : ndarray, shape (N, D)
        ``f^{-1}(x)``.
    log_det : ndarray, shape (N,)
        ``log|det dz/dx|`` summed over the layers.
    base : StandardNormal

    Returns
    -------
    loss : float
        Mean NLL in nats.
    dz : ndarray, shape (N, D)
    dlog_det : ndarray, shape (N,)
    """
    z, log_det = _check_pass(z, log_det, base.dim, "z")
    n = z.shape[0]
    # unchecked base density: a NaN that reached z must become a NaN loss, which fit's guard
    # then traces back to the layer that produced it
    loss = -float(np.mean(base._log_prob(z) + log_det))
    return loss, -base._grad_log_prob(z) / n, np.full(n, -1.0 / n)


def reverse_kl_loss(z0, x, log_det, base, target, beta=1.0):
    """Monte-Carlo ``KL(q || p) - log Z`` from the forward pass.

    Parameters
    ----------
    z0 : ndarray, shape (N, D)
        The base samples.
    x : ndarray, shape (N, D)
        Their images ``f(z0)``.
    log_det : ndarray, shape (N,)
        ``log|det dx/dz|`` summed over the layers.
    base : StandardNormal
    target : object with ``energy(x) -> (N,)`` and ``energy_grad(x) -> (N, D)``
        ``U`` of the target density ``p ∝ exp(-U)``.
    beta : float
        Inverse temperature: the loss uses ``beta * U`` (annealing, Rezende & Mohamed 2015, Sec. 6;
        1 is the true objective).

    Returns
    -------
    loss : float
    dx : ndarray, shape (N, D)
    dlog_det : ndarray, shape (N,)
    """
    x, log_det = _check_pass(x, log_det, base.dim, "x")
    z0 = as_batch(z0, base.dim, "z0")
    if z0.shape != x.shape:
        raise ValueError(f"z0: expected the base samples x came from, shape {x.shape}, got {z0.shape}.")
    beta = check_positive_float(beta, "beta", what="an inverse temperature > 0 (a finite number)")
    n = x.shape[0]
    if not np.all(np.isfinite(x)):   # diverged upstream: report NaN rather than ask U about it
        return float("nan"), np.full_like(x, np.nan), np.full(n, -1.0 / n)
    loss = float(np.mean(base._log_prob(z0) - log_det + beta * target.energy(x)))
    return loss, (beta / n) * target.energy_grad(x), np.full(n, -1.0 / n)


def nll_step(flow, x, context=None):
    """Forward KL on a batch: inverse pass, loss, and backprop into every layer's grads.

    Returns the mean NLL in nats. A conditional flow needs ``context`` (N, C), and the step
    leaves dNLL/dcontext in ``flow.dcontext``.
    """
    x = as_batch(x, flow.dim, "x")
    z, log_det = flow.inverse(x, context)
    loss, dz, dlog_det = nll_loss(z, log_det, flow.base)
    flow.inverse_backward(dz, dlog_det)
    return loss


def reverse_kl_step(flow, target, n, rng=None, beta=1.0):
    """Reverse KL with ``n`` fresh base samples: forward pass, loss, backprop.

    Returns the loss ``E_q[log q + beta U]`` (with ``beta = 1``, add ``target.log_normalizer()``
    for the KL in nats).
    """
    if getattr(target, "dim", flow.dim) != flow.dim:
        raise ValueError(f"target: expected a density on R^{flow.dim} to match the flow, "
                         f"got dim {target.dim}.")
    z0 = flow.base.sample(check_positive_int(n, "n"), as_rng(rng))
    x, log_det = flow.forward(z0)
    loss, dx, dlog_det = reverse_kl_loss(z0, x, log_det, flow.base, target, beta)
    flow.backward(dx, dlog_det)
    return loss
