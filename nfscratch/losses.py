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

References
----------
Rezende, Mohamed, "Variational Inference with Normalizing Flows", ICML 2015, arXiv:1505.05770.
Papamakarios et al., "Normalizing Flows for Probabilistic Modeling and Inference", JMLR 2021,
arXiv:1912.02762 (Section 2.3, the two KL directions).
"""
import numpy as np

from ._validate import as_batch, as_rng, check_positive_int

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
    n = z.shape[0]
    loss = -float(np.mean(base.log_prob(z) + log_det))
    return loss, -base.grad_log_prob(z) / n, np.full(n, -1.0 / n)


def reverse_kl_loss(z0, x, log_det, base, target):
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

    Returns
    -------
    loss : float
    dx : ndarray, shape (N, D)
    dlog_det : ndarray, shape (N,)
    """
    n = x.shape[0]
    loss = float(np.mean(base.log_prob(z0) - log_det + target.energy(x)))
    return loss, target.energy_grad(x) / n, np.full(n, -1.0 / n)


def nll_step(flow, x):
    """Forward KL on a batch: inverse pass, loss, and backprop into every layer's grads.

    Returns the mean NLL in nats.
    """
    x = as_batch(x, flow.dim, "x")
    z, log_det = flow.inverse(x)
    loss, dz, dlog_det = nll_loss(z, log_det, flow.base)
    flow.inverse_backward(dz, dlog_det)
    return loss


def reverse_kl_step(flow, target, n, rng=None):
    """Reverse KL with ``n`` fresh base samples: forward pass, loss, backprop.

    Returns the loss ``E_q[log q + U]`` (add ``target.log_normalizer()`` for KL in nats).
    """
    if getattr(target, "dim", flow.dim) != flow.dim:
        raise ValueError(f"target: expected a density on R^{flow.dim} to match the flow, "
                         f"got dim {target.dim}.")
    z0 = flow.base.sample(check_positive_int(n, "n"), as_rng(rng))
    x, log_det = flow.forward(z0)
    loss, dx, dlog_det = reverse_kl_loss(z0, x, log_det, flow.base, target)
    flow.backward(dx, dlog_det)
    return loss
