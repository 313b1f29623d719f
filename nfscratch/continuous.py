r"""Continuous normalizing flows trained by flow matching, with the exact likelihood in 2-D.

From discrete to continuous layers
----------------------------------
A discrete flow stacks K maps, :math:`z_{k+1} = f_k(z_k)`, and pays
:math:`\log p(z_{k+1}) = \log p(z_k) - \log|\det \partial f_k / \partial z_k|` per layer. Make
every layer a small step of a residual map, :math:`f_k(z) = z + h\,v(z, t_k)` with
:math:`h = 1/K`. Then :math:`\det(I + h J) = 1 + h\,\mathrm{tr} J + O(h^2)` with
:math:`J = \partial v/\partial z`, so :math:`\log|\det(I + hJ)| = h\,\mathrm{tr}J + O(h^2)`, and
as :math:`K \to \infty` the stack becomes an ordinary differential equation with its
*instantaneous change of variables* (Chen et al. 2018):

.. math::

    \frac{dx_t}{dt} = v(x_t, t), \qquad
    \frac{d \log p_t(x_t)}{dt} = -\,\mathrm{tr}\,\frac{\partial v}{\partial x}(x_t, t).

The library's convention carries over: ``forward`` integrates from :math:`t = 0` (the standard
normal base) to :math:`t = 1` (data) and returns
:math:`\log|\det \partial x_1/\partial x_0| = \int_0^1 \mathrm{tr}\,\partial v/\partial x\,dt`;
``inverse`` integrates back from 1 to 0 and returns minus that. A determinant of a D x D matrix
has become a trace, D numbers: in 2-D the exact trace costs two extra passes of the network
(forward-mode derivatives, :func:`velocity_jacobian`); for large D Hutchinson's estimator
:math:`\mathrm{tr}J = E_\varepsilon[\varepsilon^\top J \varepsilon]` with
:math:`E[\varepsilon\varepsilon^\top] = I` costs one backward pass and is unbiased
(:func:`divergence`; Grathwohl et al. 2019).

The velocity field
------------------
:math:`v(x, t)` is the library's MLP (:mod:`nfscratch.nn`, SiLU activations: smooth, so the
field and its Jacobian are continuous and the ODE solvers see a smooth right-hand side) fed with
``[x, e(t)]``, where :math:`e(t) = (\sin \omega_k t, \cos \omega_k t)_{k<K}` with
:math:`\omega_k = \pi 2^k` is a small sinusoidal time embedding that lets the field change
quickly in t without a wide network. Its backward is the MLP's, plus
:math:`dt = \sum_k \omega_k(\cos(\omega_k t)\, de^{\sin}_k - \sin(\omega_k t)\, de^{\cos}_k)`.

Conditional flow matching
-------------------------
Training a CNF by maximum likelihood needs the ODE solved (and differentiated, by the adjoint
method) at every step. Flow matching (Lipman et al. 2023; Liu et al. 2023, "rectified flow";
Albergo & Vanden-Eijnden 2023) avoids the solver: pick a path between a base point
:math:`z \sim N(0, I)` and a data point :math:`x`, the straight line
:math:`x_t = (1 - t) z + t x`, whose velocity is :math:`x - z`. Regress the field on it,

.. math::

    L(\theta) = E_{t \sim U(0,1),\, z,\, x}\,\bigl\|v_\theta(x_t, t) - (x - z)\bigr\|^2,
    \qquad \frac{\partial L}{\partial v_n} = \frac{2}{N}\,(v_n - (x_n - z_n))

on a batch of N triples. The minimizer is the conditional mean
:math:`v^*(y, t) = E[x - z \mid x_t = y]`, whose flow carries N(0, I) to the data distribution
exactly (the marginal paths match), so fitting it well gives a flow whose density is the data's.
Lines from independent pairs cross, so :math:`v^*` averages over crossing directions and its
trajectories curve. *Minibatch OT pairing* (Tong et al. 2024; Pooladian et al. 2023) re-pairs
each batch's z and x to shorten the lines before the regression: the solution still carries the
base to the data (it is a coupling of the two), with fewer crossings, straighter paths and fewer
solver steps needed. The exact assignment costs :math:`O(N^3)` a batch; here :func:`ot_pairing`
solves it exactly in one dimension instead: project both sets on a random direction and pair
them by rank (the 1-D optimal transport), a new direction every batch -- :math:`O(N \log N)`,
straightening the paths along that direction only (the tutorial measures by how much).

Integration
-----------
:func:`rk4_integrate`: classical Runge-Kutta with ``n_steps`` equal steps, four evaluations a
step, error :math:`O(h^4)`; it integrates the state and, with ``trace``, the log-det beside it.
It is the NumPy twin of the Numba kernel :func:`nfscratch.kernels.ode.rk4_nb`, which fuses the
MLP and the four stages for a block of samples in cache with no allocation per step.
:func:`dopri5_integrate`: Dormand-Prince 5(4) with an embedded error estimate, one step size for
the whole batch, chosen so that the scaled error :math:`\|e / (atol + rtol\,|y|)\|_{\rm RMS} \le 1`.

References
----------
Chen, Rubanova, Bettencourt, Duvenaud, "Neural Ordinary Differential Equations", NeurIPS 2018,
arXiv:1806.07366.
Grathwohl, Chen, Bettencourt, Sutskever, Duvenaud, "FFJORD", ICLR 2019, arXiv:1810.01367.
Lipman, Chen, Ben-Hamu, Nickel, Le, "Flow Matching for Generative Modeling", ICLR 2023,
arXiv:2210.02747.
Liu, Gong, Liu, "Flow Straight and Fast: ... Rectified Flow", ICLR 2023, arXiv:2209.03003.
Albergo, Vanden-Eijnden, "Building Normalizing Flows with Stochastic Interpolants", ICLR 2023,
arXiv:2209.15571.
Tong et al., "Improving and generalizing flow-based generative models with minibatch optimal
transport", TMLR 2024, arXiv:2302.00482.
Hutchinson, "A stochastic estimator of the trace of the influence matrix ...", 1989.
Dormand, Prince, "A family of embedded Runge-Kutta formulae", J. Comp. Appl. Math. 6, 1980.
"""
import math

import numpy as np

from . import _continuous_fast as _fast
from ._validate import (as_batch, as_rng, as_times, check_choice, check_positive_float,
                        check_positive_int, check_time, check_widths)
from .config import use_kernels
from .nn import ACTIVATIONS, mlp_backward, mlp_forward, mlp_param_shapes
from .optim import Adam, Cosine

__all__ = ["frequencies", "time_embedding_forward", "time_embedding_backward",
           "velocity_forward", "velocity_backward", "velocity_jacobian", "divergence",
           "cfm_loss", "ot_pairing", "rk4_integrate", "dopri5_integrate", "CNF", "fit_cfm"]

_ACT = "silu"


# ---------------------------------------------------------------------------------------------
# the time embedding
# ---------------------------------------------------------------------------------------------
def frequencies(n_freq):
    """The embedding's angular frequencies :math:`\\omega_k = \\pi 2^k`, shape (K,)."""
    return math.pi * 2.0 ** np.arange(n_freq)


def time_embedding_forward(t, n_freq):
    r"""``e(t) = [sin(w_k t) for k] + [cos(w_k t) for k]``; t (N,) -> e (N, 2K), cache."""
    wt = t[:, None] * frequencies(n_freq)                    # (N, K)
    s, c = np.sin(wt), np.cos(wt)
    return np.concatenate([s, c], axis=1), (s, c, frequencies(n_freq))


def time_embedding_backward(de, cache):
    """Backward of :func:`time_embedding_forward`: ``dt`` (N,) from ``de`` (N, 2K)."""
    s, c, w = cache
    K = w.size
    return (de[:, :K] * c * w).sum(axis=1) - (de[:, K:] * s * w).sum(axis=1)


# ---------------------------------------------------------------------------------------------
# the velocity field v(x, t) = MLP([x, e(t)])
# ---------------------------------------------------------------------------------------------
def velocity_forward(x, t, params, n_freq):
    """``v(x, t)`` for x (N, D), t (N,); return ``(v (N, D), cache)``."""
    e, e_cache = time_embedding_forward(t, n_freq)
    v, mlp_cache = mlp_forward(np.concatenate([x, e], axis=1), params, _ACT)
    return v, (mlp_cache, e_cache, x.shape[1])


def velocity_backward(dv, cache):
    """Backward of :func:`velocity_forward`: ``(dx (N, D), dt (N,), grads)``."""
    mlp_cache, e_cache, D = cache
    dinp, grads = mlp_backward(dv, mlp_cache)
    return dinp[:, :D], time_embedding_backward(dinp[:, D:], e_cache), grads


def velocity_jacobian(x, t, params, n_freq):
    r"""``v(x, t)`` and its exact Jacobian by forward-mode derivatives through the MLP.

    Carry :math:`G = \partial h / \partial x` (N, D, H) beside each hidden layer h:
    :math:`G \leftarrow G W` through a linear layer (:math:`W_0[:D]` for the first, whose other
    inputs do not depend on x), :math:`G \leftarrow G \odot \mathrm{silu}'(\mathrm{pre})` through
    the activation. Cost: D + 1 passes of the network.

    Returns
    -------
    v : ndarray, shape (N, D)
    J : ndarray, shape (N, D, D)
        ``J[n, i, j] = dv_j / dx_i`` at sample n (its trace is the divergence).
    """
    D = x.shape[1]
    n_layers = len(params) // 2
    act_forward, act_backward = ACTIVATIONS[_ACT][:2]
    h = np.concatenate([x, time_embedding_forward(t, n_freq)[0]], axis=1)
    G = None
    for i in range(n_layers):
        W = params[f"W{i}"]
        pre = h @ W + params[f"b{i}"]
        G = np.broadcast_to(W[:D], (x.shape[0],) + W[:D].shape) if G is None else G @ W
        if i < n_layers - 1:
            h, act_cache = act_forward(pre)
            # silu' scales each of the D rows of G: the activation's backward, with its cache
            # (pre-activation and sigmoid, (N, H)) broadcast over the rows
            G = act_backward(G, (act_cache[0][:, None, :], act_cache[1][:, None, :]))
        else:
            h = pre
    return h, G


def divergence(x, t, params, n_freq, method="exact", eps=None):
    r"""``v(x, t)`` and ``tr dv/dx`` (N,): exact, or Hutchinson's ``eps^T J eps``.

    ``method="hutchinson"`` needs the probe ``eps`` (N, D) with :math:`E[\varepsilon
    \varepsilon^\top] = I` (Rademacher or Gaussian): one backward pass gives
    :math:`J\varepsilon` (the gradient of :math:`\varepsilon \cdot v` with respect to x), and
    :math:`\varepsilon^\top J \varepsilon` is unbiased for the trace.
    """
    if method == "exact":
        v, J = velocity_jacobian(x, t, params, n_freq)
        return v, np.trace(J, axis1=1, axis2=2)
    v, cache = velocity_forward(x, t, params, n_freq)
    Jeps = velocity_backward(eps, cache)[0]
    return v, np.sum(Jeps * eps, axis=1)


# ---------------------------------------------------------------------------------------------
# conditional flow matching
# ---------------------------------------------------------------------------------------------
def cfm_loss(params, x, z, t, n_freq):
    r"""Flow-matching loss on a batch and its gradient: ``(loss, grads)``.

    .. math:: L = \frac1N \sum_n \|v(x_{t,n}, t_n) - (x_n - z_n)\|^2,
              \quad x_t = (1 - t) z + t x.

    Parameters
    ----------
    params : dict of ndarray
    x, z : ndarray, shape (N, D)
        Data points and their paired base points.
    t : ndarray, shape (N,)
        Times in [0, 1].
    """
    if use_kernels():
        return _fast.cfm_loss(params, x, z, t, n_freq)             # see _continuous_fast.py
    xt = (1.0 - t)[:, None] * z + t[:, None] * x                  # (N, D)
    v, cache = velocity_forward(xt, t, params, n_freq)
    r = v - (x - z)                                                # residual (N, D)
    N = x.shape[0]
    loss = float(np.sum(r * r) / N)
    grads = velocity_backward((2.0 / N) * r, cache)[2]
    return loss, grads


def ot_pairing(z, x, rng):
    """Re-order ``z`` so that ``z[i]`` goes with ``x[i]``: rank pairing along a random direction.

    Both sets are projected on one random unit vector u and matched by the ranks of their
    projections, the optimal transport plan of the 1-D projections (module docstring).
    """
    u = rng.normal(size=z.shape[1])
    u /= np.linalg.norm(u)
    perm = np.empty(z.shape[0], dtype=np.int64)
    perm[np.argsort(x @ u)] = np.argsort(z @ u)
    return z[perm]


# ---------------------------------------------------------------------------------------------
# ODE solvers (the NumPy twins of kernels/ode.py)
# ---------------------------------------------------------------------------------------------
def _field(params, n_freq, trace, eps):
    """The right-hand side ``f(y, t) -> (v, tr J or None)`` for a scalar time t."""
    def f(y, t):
        tt = np.full(y.shape[0], t)
        if not trace:
            return velocity_forward(y, tt, params, n_freq)[0], None
        return divergence(y, tt, params, n_freq, trace, eps)
    return f


def rk4_integrate(x, params, n_freq, t0, t1, n_steps, trace=None, eps=None):
    r"""Integrate :math:`dx/dt = v(x, t)` from t0 to t1 with ``n_steps`` RK4 steps.

    With ``trace`` ("exact" or "hutchinson", the latter with the fixed probe ``eps``), the
    integral :math:`\int_{t_0}^{t_1} \mathrm{tr}\,\partial v/\partial x\,dt` rides along as a
    second state with the same four stages. Returns ``(x_end, log_det (N,), nfe)``, with
    ``log_det = 0`` without ``trace`` and ``nfe = 4 n_steps`` evaluations of the field.
    """
    f = _field(params, n_freq, trace, eps)
    h = (t1 - t0) / n_steps
    y = x.copy()
    log_det = np.zeros(x.shape[0])
    for k in range(n_steps):
        t = t0 + k * h
        k1, d1 = f(y, t)
        k2, d2 = f(y + 0.5 * h * k1, t + 0.5 * h)
        k3, d3 = f(y + 0.5 * h * k2, t + 0.5 * h)
        k4, d4 = f(y + h * k3, t + h)
        y = y + (h / 6.0) * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
        if trace:
            log_det = log_det + (h / 6.0) * (d1 + 2.0 * d2 + 2.0 * d3 + d4)
    return y, log_det, 4 * n_steps


# Dormand-Prince 5(4): nodes c, stages a, the 5th-order weights b (= the last row of a: the
# method is "first same as last") and the difference e = b - b* to the embedded 4th order.
_DP_C = np.array([0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0])
_DP_A = [[], [1 / 5], [3 / 40, 9 / 40], [44 / 45, -56 / 15, 32 / 9],
         [19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729],
         [9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656],
         [35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84]]
_DP_E = np.array([71 / 57600, 0.0, -71 / 16695, 71 / 1920, -17253 / 339200, 22 / 525, -1 / 40])


def dopri5_integrate(x, params, n_freq, t0, t1, rtol=1e-5, atol=1e-5, trace=None, eps=None,
                     max_steps=10_000):
    r"""Adaptive Dormand-Prince 5(4) from t0 to t1; returns ``(x_end, log_det, nfe)``.

    One step size h for the whole batch (the states are stacked into one vector, with the
    log-det as one more component when ``trace`` is set). A step is accepted when the
    scaled RMS error ``err = rms(e / (atol + rtol max(|y|, |y_new|)))`` is at most 1, and the
    next h is ``h * clip(0.9 err^(-1/5), 0.2, 5)``.
    """
    f = _field(params, n_freq, trace, eps)
    N, D = x.shape

    def rhs(y, t):                              # y (N, D + 1): state and log-det
        v, div = f(y[:, :D], t)
        return np.concatenate([v, (np.zeros(N) if div is None else div)[:, None]], axis=1)

    y = np.concatenate([x, np.zeros((N, 1))], axis=1)
    span = t1 - t0
    direction = 1.0 if span > 0 else -1.0
    t, h = t0, direction * min(abs(span), 0.05)
    k = [rhs(y, t)] + [None] * 6
    nfe, steps = 1, 0
    while direction * (t1 - t) > 1e-12 * abs(span):
        if steps >= max_steps:
            raise RuntimeError(f"dopri5_integrate: more than max_steps={max_steps} steps; "
                               "loosen rtol/atol or raise max_steps.")
        h = direction * min(abs(h), abs(t1 - t))
        for s in range(1, 7):
            ys = y + h * sum(a * k[j] for j, a in enumerate(_DP_A[s]) if a != 0.0)
            k[s] = rhs(ys, t + _DP_C[s] * h)
        nfe += 6
        y_new = ys                                          # stage 7 is the 5th-order solution
        err_vec = h * sum(e * k[j] for j, e in enumerate(_DP_E) if e != 0.0)
        scale = atol + rtol * np.maximum(np.abs(y), np.abs(y_new))
        err = float(np.sqrt(np.mean((err_vec / scale) ** 2)))
        steps += 1
        if err <= 1.0:
            t, y, k[0] = t + h, y_new, k[6]
        h *= min(5.0, max(0.2, 0.9 * (err if err > 0 else 1e-10) ** -0.2))
    return y[:, :D].copy(), y[:, D].copy(), nfe


# ---------------------------------------------------------------------------------------------
# the CNF object
# ---------------------------------------------------------------------------------------------
class CNF:
    r"""A continuous normalizing flow: base N(0, I) at t = 0, data at t = 1.

    Parameters
    ----------
    dim : int
        D, the dimension of the data.
    hidden : sequence of int, default (64, 64, 64)
        Hidden widths of the velocity MLP (all equal for the Numba kernel).
    n_freq : int, default 4
        K, frequencies of the time embedding (the MLP reads D + 2K inputs).
    n_steps : int, default 50
        RK4 steps for ``solver="rk4"``.
    solver : {"rk4", "dopri5"}
    rtol, atol : float
        Tolerances of ``"dopri5"``.
    divergence : {"exact", "hutchinson"}
        How ``log_prob`` gets the trace (Hutchinson with a Rademacher probe from ``rng``).
    rng : numpy.random.Generator or int, optional
        Source of the initial weights (the last layer starts at zero: v = 0, the identity flow).

    Examples
    --------
    >>> cnf = CNF(2, hidden=(16, 16), n_steps=4, rng=0)
    >>> x, log_det = cnf.forward(np.zeros((3, 2)))           # v = 0 at init: the identity
    >>> x.tolist(), log_det.tolist()
    ([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]], [0.0, 0.0, 0.0])
    """

    def __init__(self, dim=2, hidden=(64, 64, 64), n_freq=4, n_steps=50, solver="rk4",
                 rtol=1e-5, atol=1e-5, divergence="exact", rng=None):
        self.dim = check_positive_int(dim, "dim")
        self.hidden = check_widths(hidden, "hidden")
        if not self.hidden:
            raise ValueError("hidden: expected at least one hidden layer, got ().")
        self.n_freq = check_positive_int(n_freq, "n_freq")
        self.n_steps = check_positive_int(n_steps, "n_steps")
        self.solver = check_choice(solver, "solver", ("rk4", "dopri5"))
        self.rtol = check_positive_float(rtol, "rtol")
        self.atol = check_positive_float(atol, "atol")
        self.divergence = check_choice(divergence, "divergence", ("exact", "hutchinson"))
        rng = as_rng(rng)
        gain = ACTIVATIONS[_ACT][2]
        self.params = {}
        for name, shape in self.param_shapes(self.dim, self.hidden, self.n_freq).items():
            last = name == f"W{len(self.hidden)}"
            self.params[name] = (np.zeros(shape) if name.startswith("b") or last
                                 else rng.normal(0.0, gain / math.sqrt(shape[0]), size=shape))
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        self.nfe = 0            # field evaluations of the last solve

    def config(self):
        """The constructor's arguments but ``rng``: what :mod:`nfscratch.io` saves beside the
        parameters (``CNF(**cnf.config())`` builds the same architecture and settings)."""
        return {"dim": self.dim, "hidden": list(self.hidden), "n_freq": self.n_freq,
                "n_steps": self.n_steps, "solver": self.solver, "rtol": self.rtol,
                "atol": self.atol, "divergence": self.divergence}

    @staticmethod
    def param_shapes(dim, hidden=(64, 64, 64), n_freq=4, **config):
        """Shapes of the velocity MLP's parameters for a config, without building anything
        (``W{i}``, ``b{i}``; the MLP reads D + 2K inputs and returns D)."""
        dim = check_positive_int(dim, "dim")
        sizes = [dim + 2 * check_positive_int(n_freq, "n_freq")] + check_widths(hidden, "hidden")
        return mlp_param_shapes(sizes + [dim])

    # -- the field ------------------------------------------------------------------------------
    def velocity(self, x, t):
        """``v(x, t)`` for x (N, D) and a time t in [0, 1] (a float or one per sample)."""
        x = as_batch(x, self.dim, "x")
        t = as_times(t, x.shape[0], "t")
        return velocity_forward(x, t, self.params, self.n_freq)[0]

    # -- integration ----------------------------------------------------------------------------
    def integrate(self, x, t0, t1, trace=None, rng=None):
        """Solve the ODE from t0 to t1: ``(x_end, log_det)``, log_det = the integrated trace."""
        x = as_batch(x, self.dim, "x")
        t0, t1 = float(check_time(t0, "t0")), float(check_time(t1, "t1"))
        trace = self.divergence if trace else None
        eps = None
        if trace == "hutchinson":          # one Rademacher probe per sample for the whole solve
            eps = as_rng(rng).choice([-1.0, 1.0], size=x.shape)
        if self.solver == "dopri5":
            y, log_det, self.nfe = dopri5_integrate(x, self.params, self.n_freq, t0, t1,
                                                    self.rtol, self.atol, trace, eps)
        elif use_kernels() and trace != "hutchinson" and len(set(self.hidden)) == 1:
            y, log_det, self.nfe = _fast.rk4(self, x, t0, t1, bool(trace))   # _continuous_fast
        else:
            y, log_det, self.nfe = rk4_integrate(x, self.params, self.n_freq, t0, t1,
                                                 self.n_steps, trace, eps)
        return y, log_det

    def forward(self, z):
        """Base -> data: ``(x, log|det dx/dz|)`` by integrating from t = 0 to 1."""
        return self.integrate(z, 0.0, 1.0, trace=True)

    def inverse(self, x, rng=None):
        """Data -> base: ``(z, log|det dz/dx|)`` by integrating from t = 1 back to 0."""
        return self.integrate(x, 1.0, 0.0, trace=True, rng=rng)

    def backward(self, dx, dlog_det):
        raise NotImplementedError("CNF.backward: the gradient of the forward ODE solve (the "
                                  "adjoint method) is not provided; train with fit_cfm.")

    def inverse_backward(self, dz, dlog_det):
        raise NotImplementedError("CNF.inverse_backward: the gradient of the inverse ODE solve "
                                  "(the adjoint method) is not provided; train with fit_cfm.")

    # -- densities ------------------------------------------------------------------------------
    def log_prob(self, x, rng=None):
        r"""``log p(x) = log N(z; 0, I) + log|det dz/dx|`` with z the solution at t = 0, (N,)."""
        z, log_det = self.inverse(x, rng=rng)
        return _log_normal(z) + log_det

    def sample(self, n, rng=None):
        """``n`` samples: normal base points pushed from t = 0 to 1 (no trace), (n, D)."""
        z = as_rng(rng).standard_normal((check_positive_int(n, "n"), self.dim))
        return self.integrate(z, 0.0, 1.0)[0]

    def sample_and_log_prob(self, n, rng=None):
        z = as_rng(rng).standard_normal((check_positive_int(n, "n"), self.dim))
        x, log_det = self.forward(z)
        return x, _log_normal(z) - log_det

    def trajectory(self, z, n_times=11):
        """Positions at ``n_times`` equally spaced times from 0 to 1: (n_times, N, D)."""
        n_times = check_positive_int(n_times, "n_times")
        z = as_batch(z, self.dim, "z")
        out = [z]
        times = np.linspace(0.0, 1.0, max(n_times, 2))
        for a, b in zip(times[:-1], times[1:]):
            out.append(self.integrate(out[-1], a, b)[0])
        return np.stack(out[:n_times])

    def __repr__(self):
        return (f"CNF(dim={self.dim}, hidden={tuple(self.hidden)}, n_freq={self.n_freq}, "
                f"solver={self.solver!r}, n_steps={self.n_steps})")


def _log_normal(z):
    return -0.5 * np.sum(z * z, axis=1) - 0.5 * z.shape[1] * math.log(2.0 * math.pi)


# ---------------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------------
def fit_cfm(cnf, data, steps, batch_size=512, lr=2e-3, final_lr=0.0, ot=False, rng=None,
            callback=None):
    """Train ``cnf`` by conditional flow matching on fresh samples every step.

    Parameters
    ----------
    cnf : CNF
    data : callable
        ``data(n, rng) -> (n, D)``, a sampler (fresh points each step).
    steps, batch_size : int
    lr, final_lr : float
        Adam's rate, decayed by a cosine from ``lr`` to ``final_lr`` over ``steps``.
    ot : bool
        Re-pair each batch by :func:`ot_pairing`.
    callback : callable, optional
        ``callback(step, loss)`` after every step.

    Returns
    -------
    list of float
        The loss at every step.
    """
    steps = check_positive_int(steps, "steps")
    batch_size = check_positive_int(batch_size, "batch_size")
    rng = as_rng(rng)
    opt = Adam(lr=Cosine(lr, steps, final_lr=final_lr))
    history = []
    for step in range(steps):
        x = as_batch(data(batch_size, rng), cnf.dim, "data(n, rng)")
        z = rng.standard_normal(x.shape)
        if ot:
            z = ot_pairing(z, x, rng)
        t = rng.random(batch_size)
        loss, grads = cfm_loss(cnf.params, x, z, t, cnf.n_freq)
        for k, g in grads.items():
            cnf.grads[k][...] = g
        opt.step(cnf.params, cnf.grads)
        history.append(loss)
        if callback is not None:
            callback(step, loss)
    return history
