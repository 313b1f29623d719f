r"""Autoregressive neural spline flow: a rational-quadratic spline per feature, chosen by a MADE.

The coupling layer of :mod:`.spline` leaves half of the features untouched and lets the other
half's splines depend on it. The autoregressive layer transforms *every* feature: feature ``i``
gets its own spline, whose knots depend on the features before ``i`` in the layer's ``order``
(Durkan et al. 2019, section 3.2). One :class:`~.made.MADE` pass computes all the knots at once,
exactly as for MAF (see :mod:`.autoregressive`); the first feature in the order sees no other
feature, so its spline is learned but input-independent (the MADE's output bias). In two
dimensions that is the difference that matters: a coupling layer bends one coordinate per layer,
this layer bends both.

Notes
-----
**The map** (density direction, this library's ``inverse``: data ``x`` -> base ``z``), one MADE
pass over ``x`` with ``3K - 1`` outputs per feature ``[u^w (K) | u^h (K) | u^d (K-1)]`` laid out
as in the spline coupling, then the elementwise spline of :func:`.spline.spline_forward`:

.. math::

    z_i = g\big(x_i;\ \theta_i(x_{<i})\big), \qquad
    \log|\det \partial z/\partial x| = \textstyle\sum_i \log g'\big(x_i; \theta_i(x_{<i})\big).

The Jacobian is triangular in the order (``z_i`` depends on ``x_i`` and on earlier features), so
its log-det is the sum of the diagonal, the spline slopes. MADE's output block ``c`` holds
columns ``c D .. c D + D - 1``, so its (N, (3K-1) D) output is read as (N, 3K-1, D) and turned
to (N, D, 3K-1): one row of spline parameters per element.

**Sampling** (``forward``: ``z`` -> ``x``) has no one-pass form: ``x_i = g^{-1}(z_i;
\theta_i(x_{<i}))`` needs the earlier ``x`` first, so it takes D MADE passes, each followed by
the spline's stable inverse root (:func:`.spline.spline_inverse`) for the one feature it fixes;
its log-det is ``-\sum_i \log g'(x_i)`` at the solution.

**Backward of the one pass** (upstream ``dz``, ``dl``): :func:`.spline.spline_backward` gives
``dx`` (direct) and the gradients of the spline parameters; they run back through the MADE
(:func:`.made.made_backward`), whose input gradient is added to the direct one.

**Gradient of the sequential direction** by the implicit-function theorem, as for MAF
(:func:`.autoregressive.iaf_inverse_backward`; the derivation is in that module's docstring):
with ``g`` the one-pass map, ``J = ∂g/∂x`` and ``ℓ(x) = \sum_i \log g'_i``, the upstream
``(d_x, dl)`` of the sequential pass (output ``x`` and log-det ``-ℓ``) are pulled back by the
``v`` that solves

.. math:: J^\top v + dl\, \nabla_x ℓ = d_x,

and then ``dz = v`` and ``dθ = -`` (the one-pass parameter gradients for upstream ``(v, dl)``).
The left side is exactly the ``dx`` of the one-pass backward for upstream ``(v, dl)``, and
``J`` is triangular, so ``v`` comes by back-substitution in reverse order, with the diagonal
``J_{ii} = g'_i``. MAF's function cannot be reused as it stands: it divides by the affine
diagonal ``e^{s}`` it reads from its cache, and it starts from ``∇_x ℓ = 0`` for the last feature,
true when ``ℓ = \sum s_i(x_{<i})`` does not depend on ``x_i`` itself. Here ``\log g'_i``
depends on ``x_i``, so one extra one-pass backward with ``v = 0`` first gives ``dl ∇_x ℓ``:
D + 1 one-pass backward passes and one cache.

Shapes: ``x, z`` (N, D); MADE output (N, (3K-1) D); spline parameters ``uw, uh`` (N, D, K),
``ud`` (N, D, K-1); ``log_det`` (N,).

References
----------
Durkan, Bekasov, Murray, Papamakarios, "Neural Spline Flows", NeurIPS 2019, arXiv:1906.04032.
Germain, Gregor, Murray, Larochelle, "MADE: Masked Autoencoder for Distribution Estimation",
ICML 2015, arXiv:1502.03509.
Papamakarios, Pavlakou, Murray, "Masked Autoregressive Flow for Density Estimation",
NeurIPS 2017, arXiv:1705.07057.
"""
import numpy as np

from ..config import use_kernels
from .._validate import check_context_dim
from .base import Transform, split_conditioner_grad
from .made import MADE, made_backward, made_forward, uniform_biases
from .spline import (BOUND, MIN_DERIVATIVE, MIN_HEIGHT, MIN_WIDTH, _check_spline_settings,
                     spline_backward, spline_forward, spline_inverse, spline_params)

__all__ = ["spline_autoregressive_inverse", "spline_autoregressive_inverse_backward",
           "spline_autoregressive_forward", "spline_autoregressive_forward_backward",
           "SplineAutoregressive"]


def _conditioner(u, params, masks, activation, n_bins, context=None):
    """MADE pass: spline parameters ``uw, uh`` (N, D, K), ``ud`` (N, D, K-1) and the MADE cache.

    The one place the conditioner is called; a conditional layer's context (N, C) enters the
    MADE here, through its degree-0 inputs (see :mod:`.made`).
    """
    N, D = u.shape
    out, made_cache = made_forward(u, params, masks, activation, context)  # (N, (3K-1) D)
    theta = out.reshape(N, 3 * n_bins - 1, D).transpose(0, 2, 1)          # (N, D, 3K-1)
    return theta[..., :n_bins], theta[..., n_bins:2 * n_bins], theta[..., 2 * n_bins:], made_cache


def _conditioner_backward(duw, duh, dud, made_cache):
    """Backward of :func:`_conditioner`: ``(du, MADE grads)``; with a context its gradient is
    ``grads["context"]``."""
    dtheta = np.concatenate([duw, duh, dud], axis=-1)                     # (N, D, 3K-1)
    dout = dtheta.transpose(0, 2, 1).reshape(dtheta.shape[0], -1)         # (N, (3K-1) D)
    d_in, grads = made_backward(dout, made_cache)
    return split_conditioner_grad(d_in, duw.shape[1], grads), grads


def spline_autoregressive_inverse(x, params, masks, activation="tanh", n_bins=8, bound=BOUND,
                                  min_width=MIN_WIDTH, min_height=MIN_HEIGHT,
                                  min_derivative=MIN_DERIVATIVE, context=None):
    """The one-pass direction ``z_i = g(x_i; θ_i(x_{<i}))``: ``(z, log_det, cache)``.

    Parameters
    ----------
    x : ndarray, shape (N, D)
    params : dict
        MADE parameters ``W0, b0, ...`` (output width ``(3 n_bins - 1) D``).
    masks : list of ndarray
    activation : str
    n_bins, bound, min_width, min_height, min_derivative
        The spline's settings (see :func:`.spline.spline_params`).
    context : ndarray, shape (N, C), optional
        A conditional MADE's context; its gradient comes back as ``grads["context"]``.

    Returns
    -------
    z : ndarray, shape (N, D)
    log_det : ndarray, shape (N,)
        ``log|det dz/dx|``.
    cache : dict
        ``"log_slope"`` (N, D) holds every element's ``log g'``.

    Examples
    --------
    >>> net = MADE(2, [4], k=23, rng=0)
    >>> z, log_det, _ = spline_autoregressive_inverse(np.ones((3, 2)), net.params, net.masks)
    >>> z.shape, log_det.shape
    ((3, 2), (3,))
    """
    uw, uh, ud, made_cache = _conditioner(x, params, masks, activation, n_bins, context)
    z, log_slope, sp_cache = spline_forward(x, uw, uh, ud, bound, min_width, min_height,
                                            min_derivative)               # (N, D) each
    cache = {"n": x.shape[0], "log_slope": log_slope, "spline": sp_cache, "made_cache": made_cache}
    return z, log_slope.sum(axis=1), cache


def spline_autoregressive_inverse_backward(dz, dlog_det, cache):
    """Backward of :func:`spline_autoregressive_inverse`: ``(dx, MADE grads)``."""
    dl = np.broadcast_to(dlog_det[:, None], dz.shape)                     # every element's log g'
    dx, duw, duh, dud = spline_backward(dz, dl, cache["spline"])          # the direct path
    dx_made, grads = _conditioner_backward(duw, duh, dud, cache["made_cache"])
    return dx + dx_made, grads


def spline_autoregressive_forward(z, params, masks, order, activation="tanh", n_bins=8,
                                  bound=BOUND, min_width=MIN_WIDTH, min_height=MIN_HEIGHT,
                                  min_derivative=MIN_DERIVATIVE, context=None):
    """The sequential direction: ``x_i = g^{-1}(z_i; θ_i(x_{<i}))`` in D MADE passes.

    Returns ``(x, log_det = log|det dx/dz|, cache)``; the cache is the one of the one pass at
    ``x`` (what :func:`spline_autoregressive_forward_backward` needs).

    Parameters
    ----------
    z : ndarray, shape (N, D)
    params, masks, activation, n_bins, bound, min_width, min_height, min_derivative, context
        As in :func:`spline_autoregressive_inverse`.
    order : ndarray of int, shape (D,)
        ``order[k]`` is the feature generated k-th (the MADE's order).

    Examples
    --------
    >>> net = MADE(3, [4], k=23, rng=0)
    >>> x, _, _ = spline_autoregressive_forward(np.ones((2, 3)), net.params, net.masks, net.order)
    >>> z, _, _ = spline_autoregressive_inverse(x, net.params, net.masks)
    >>> bool(np.allclose(z, 1.0))
    True
    """
    x = np.zeros_like(z)
    opts = (bound, min_width, min_height, min_derivative)
    for i in order:                         # pass k fixes feature order[k]: its inputs are final
        uw, uh, ud, _ = _conditioner(x, params, masks, activation, n_bins, context)
        x[:, i] = spline_inverse(z[:, i], uw[:, i], uh[:, i], ud[:, i], *opts)[0]
    # one more pass at the solution gives the cache (and log-det) the backward pass needs
    _, log_det, cache = spline_autoregressive_inverse(x, params, masks, activation, n_bins, *opts,
                                                      context=context)
    return x, -log_det, {**cache, "order": order}


def spline_autoregressive_forward_backward(dx, dlog_det, cache):
    """Backward of :func:`spline_autoregressive_forward` (implicit-function theorem): ``(dz, grads)``.

    Back-substitution for ``v`` in ``J^T v = dx - dlog_det * d(sum log g')/dx`` (module
    docstring), one :func:`spline_autoregressive_inverse_backward` per feature after one with
    ``v = 0``; ``dz = v``, grads = -(the last pass's grads). A context enters ``z = g(x; θ(x,
    y))`` exactly like a parameter does, so its gradient is negated the same way.
    """
    slope = np.exp(cache["log_slope"])                                    # (N, D): J's diagonal
    v = np.zeros_like(dx)                                                 # (N, D), becomes dz
    g, grads = spline_autoregressive_inverse_backward(v, dlog_det, cache)  # dl * grad of sum log g'
    for i in cache["order"][::-1]:
        # g[:, i] depends only on v of features after i, all known by now
        v[:, i] = (dx[:, i] - g[:, i]) / slope[:, i]
        g, grads = spline_autoregressive_inverse_backward(v, dlog_det, cache)
    return v, {key: -value for key, value in grads.items()}


# ---------------------------------------------------------------------------------------------
# the layer
# ---------------------------------------------------------------------------------------------
class SplineAutoregressive(Transform):
    r"""Autoregressive rational-quadratic spline layer: **density in one pass, sampling in D**.

    ``inverse(x)`` (the density direction, used by maximum likelihood) is one MADE pass and one
    elementwise spline; ``forward(z)`` (sampling) solves it feature by feature in D passes, and
    its gradient (for reverse-KL training) costs D + 1 one-pass backward passes.

    Parameters
    ----------
    dim : int
        Number of features D >= 2.
    hidden : sequence of int
        MADE hidden widths, each >= D - 1 (>= D with a context).
    n_bins : int
        K >= 2 bins per spline.
    bound : float
        The splines act on ``[-bound, bound]``; the identity outside.
    order : None, "natural", "reverse", "random" or permutation of 0..D-1
        The sequence in which the features are generated.
    activation : str
    min_width, min_height, min_derivative : float
        Floors of the bin sizes and of the knot derivatives (see :class:`.spline.SplineCoupling`).
    hidden_degrees : {"cyclic", "random"}
    seed : int
        Seed of a random order / random hidden degrees (saved in the config).
    rng : numpy.random.Generator or int, optional
        Initial weights.
    zero_init : bool
        Zero the MADE's last layer, so every spline starts as the identity exactly.
    context_dim : int
        Width C of a context read by the MADE (degree-0 inputs; ``p(x | y)``); 0: not
        conditional. When C > 0 every pass needs ``context`` (N, C), the backward passes leave
        its gradient in ``self.dcontext``, and the passes run the NumPy functions on either
        backend.

    Examples
    --------
    >>> t = SplineAutoregressive(3, hidden=[8], n_bins=4, rng=0, zero_init=False)
    >>> z = np.random.default_rng(1).normal(size=(4, 3))
    >>> x, log_det = t.forward(z)                 # 3 sequential passes
    >>> z2, log_det_inv = t.inverse(x)            # 1 pass
    >>> bool(np.allclose(z2, z)), bool(np.allclose(log_det, -log_det_inv))
    (True, True)
    """

    analytic_inverse = False        # the sequential direction inverts splines by their root

    def __init__(self, dim, hidden=(64, 64), n_bins=8, bound=BOUND, order=None,
                 activation="tanh", min_width=MIN_WIDTH, min_height=MIN_HEIGHT,
                 min_derivative=MIN_DERIVATIVE, hidden_degrees="cyclic", seed=0, rng=None,
                 zero_init=True, context_dim=0):
        super().__init__(dim)
        self.context_dim = check_context_dim(context_dim)
        _check_spline_settings(n_bins, bound, min_width, min_height, min_derivative)
        self.n_bins, self.bound = int(n_bins), float(bound)
        self.min_width, self.min_height = float(min_width), float(min_height)
        self.min_derivative = float(min_derivative)
        self.hidden_degrees, self.seed = hidden_degrees, int(seed)
        self.net = MADE(self.dim, hidden, k=3 * self.n_bins - 1, order=order,
                        hidden_degrees=hidden_degrees, activation=activation, rng=rng,
                        zero_last=zero_init, seed=self.seed, context_dim=self.context_dim)
        self.hidden, self.activation = self.net.hidden, activation
        self.order, self.masks = self.net.order, self.net.masks
        self.params = self.net.params                   # shared arrays: updates reach the net
        self.zero_grads()

    def config(self):
        return {"dim": self.dim, "hidden": self.hidden, "n_bins": self.n_bins,
                "bound": self.bound, "order": self.order.tolist(),
                "activation": self.activation, "min_width": self.min_width,
                "min_height": self.min_height, "min_derivative": self.min_derivative,
                "hidden_degrees": self.hidden_degrees, "seed": self.seed,
                **({"context_dim": self.context_dim} if self.context_dim else {})}

    @classmethod
    def param_shapes(cls, dim, hidden=(64, 64), n_bins=8, context_dim=0, **config):
        return MADE.param_shapes(dim, hidden, 3 * int(n_bins) - 1, context_dim)

    def _settings(self):
        return (self.activation, self.n_bins, self.bound, self.min_width, self.min_height,
                self.min_derivative)

    def uniform_biases(self, rng):
        r"""Draw every MADE bias ``b_l`` from ``U(-1/\sqrt{n_l}, 1/\sqrt{n_l})``, in place
        (:func:`~.made.uniform_biases`, which says why; zuko's NSF starts from this draw).

        The last layer's weights stay zero, so every spline starts input-independent but no
        longer exactly the identity (its knots are moved by the output biases, at most
        ``1/\sqrt{H}``). ``benchmarks/README.md`` ("Spline flows on moons: closing the gap to
        zuko") has the measurements.

        Parameters
        ----------
        rng : numpy.random.Generator or int
        """
        uniform_biases(self.params, rng)

    def knots(self, x, params=None):
        """The knots of every feature's spline at the data-side points ``x`` (N, D).

        Returns ``knot_x, knot_y, deriv``, each (N, D, K + 1), of the density-direction map
        ``x_i -> z_i``; ``params`` (default: the layer's own) lets one look at a saved copy.
        """
        uw, uh, ud, _ = _conditioner(np.asarray(x, dtype=np.float64),
                                     self.params if params is None else params, self.masks,
                                     self.activation, self.n_bins)
        return spline_params(uw, uh, ud, self.bound, self.min_width, self.min_height,
                             self.min_derivative)[:3]

    def _forward(self, z, context=None):
        return spline_autoregressive_forward(z, self.params, self.masks, self.order,
                                             *self._settings(), context=context)

    def _backward(self, dx, dlog_det, cache):
        return spline_autoregressive_forward_backward(dx, dlog_det, cache)

    # the kernel path has no context input: a conditional pass runs the NumPy functions
    def _inverse(self, x, context=None):
        if use_kernels() and context is None:
            return _fast().inverse(self, x)
        return spline_autoregressive_inverse(x, self.params, self.masks, *self._settings(),
                                             context=context)

    def _inverse_backward(self, dz, dlog_det, cache):
        if "kernels" in cache:
            return _fast().inverse_backward(cache, dz, dlog_det)
        return spline_autoregressive_inverse_backward(dz, dlog_det, cache)


def _fast():
    from . import _spline_autoregressive_fast     # imported on first use: it loads Numba code
    return _spline_autoregressive_fast
