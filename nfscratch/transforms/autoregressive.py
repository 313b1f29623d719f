r"""Affine autoregressive flows: MAF and IAF, one layer turned around.

Both use an affine autoregressive map computed in one pass of a :class:`~.made.MADE` that reads
the map's own input ``u`` (N, D) and outputs a log-scale and a shift per feature, soft-bounded
exactly as in the coupling layers (``s = s_max tanh(raw / s_max)``, ``|s| < s_max``); ``u_{<i}``
are the features generated before ``i`` in the layer's ``order``. Each output feature depends on
its own input and on earlier features only, so the Jacobian is triangular in the order and the
log-det is a sum of log-scales. The map comes in two forms, the one of each paper:

.. math::

    \text{IAF (scale, then shift):}\quad y_i = u_i\, e^{s_i(u_{<i})} + t_i(u_{<i}),
    \qquad \log|\det \partial y/\partial u| = \textstyle\sum_i s_i;

    \text{MAF (shift, then scale):}\quad z_i = (x_i - t_i(x_{<i}))\, e^{-s_i(x_{<i})},
    \qquad \log|\det \partial z/\partial x| = -\textstyle\sum_i s_i.

The other direction of either has no one-pass form: ``u_i`` (or ``x_i``) needs ``s_i, t_i`` of
the earlier features, so it is computed feature by feature in D MADE passes:
``u_i = (y_i - t_i) e^{-s_i}`` (IAF), ``x_i = z_i e^{s_i} + t_i`` (MAF, the paper's sampling
step ``x_i = u_i e^{α_i} + μ_i`` with ``α = s``, ``μ = t``).

Which direction is the cheap one (this library's ``forward`` = base -> data):

* **MAF** (Papamakarios et al. 2017): the map reads the *data*: ``inverse`` (x -> z, density) is
  the one pass, ``forward`` (z -> x, sampling) takes D passes. Fast to train by maximum
  likelihood, slow to sample.
* **IAF** (Kingma et al. 2016): the map reads the *base* sample: ``forward`` (z -> x, sampling,
  with its log-det) is the one pass, ``inverse`` (density of a given x) takes D passes. Fast for
  variational inference (reverse KL needs only samples and their own log-det), slow on data.

The two forms are the same family (``z = x e^{-s} - t e^{-s}`` is a scale-then-shift map with
shift ``-t e^{-s}``), but they do not train the same. In the scale-first form the shift that
centres a conditional mean ``μ`` must be ``-μ e^{s}``, tied to the layer's own scale, and the
log-scale's gradient ``dz · x e^{s}`` carries the uncentred input; shift-first, ``t`` is the
conditional mean itself and the log-scale's gradient ``-dz · z`` carries the centred output.
Trained by maximum likelihood on the 2-D toys (three seeds, benchmarks/README.md), the
shift-first MAF came closer to the entropy on eight Gaussians at every seed and on moons on
average, and no worse than the seed spread on the pinwheel, so the MAF uses its paper's form;
the IAF keeps its paper's scale-first form (``iaf_forward`` / ``iaf_inverse`` below are that map: the
IAF's one pass and its sequential solve, also used by :mod:`.iaf_chain`).

Backward of the one pass, upstream ``dy`` (or ``dz``) and ``dl`` = dL/dlog_det, with
``draw = ds ⊙ (1 - tanh^2(raw/s_max))`` and ``MADE^T(draw, dt)`` the MADE's backward:

IAF form (``iaf_forward``):

.. math:: ds = dy \odot u \odot e^{s} + dl, \quad dt = dy, \quad
          du = dy \odot e^{s} + \mathrm{MADE}^\top(draw, dt);

MAF form (``maf_inverse``; ``z`` is its output):

.. math:: ds = -dz \odot z - dl, \quad dt = -dz \odot e^{-s}, \quad
          dx = dz \odot e^{-s} + \mathrm{MADE}^\top(draw, dt).

**Gradient of the sequential direction** (``iaf_inverse``: ``u`` from ``y``;
``maf_forward``: ``x`` from ``z``). Two routes:

1. backprop through the D passes as they ran: keep every pass's MADE cache and run D MADE
   backward passes in reverse, each feeding the gradient of the features it produced into the
   earlier ones -- D caches of memory;
2. the implicit-function theorem (implemented here, as for the planar inverse): ``u`` is defined
   by ``g(u, θ) = y`` with ``g`` the one-pass map. With ``J = ∂g/∂u`` (triangular in the order),
   ``du/dy = J^{-1}`` and ``du/dθ = -J^{-1} ∂g/∂θ``, and the log-det of the sequential direction is
   ``-ℓ(u)``, minus the one pass's ``ℓ`` (``ℓ = \sum s`` in the IAF form, ``-\sum s`` in the MAF
   form). For upstream ``(d_u, dl)`` find ``v`` with

   .. math:: \nabla_u \big[ v \cdot g(u) + dl\, ℓ(u) \big] = d_u,

   i.e. ``J^\top v = d_u - dl\, \nabla_u ℓ``. The left side is exactly the ``du`` that the
   one-pass backward returns for upstream ``(v, dl)``, and ``J^\top`` is triangular, so ``v`` is
   found by back-substitution in reverse order: set ``v_i = (d_{u,i} - g_i) / J_{ii}`` (``J_{ii} =
   e^{s_i}`` in the IAF form, ``e^{-s_i}`` in the MAF form) for the last feature, run the
   one-pass backward with the ``v`` known so far to get ``g``, and repeat -- each ``g_i`` depends
   only on features after ``i``. Then ``dy = v`` and the parameter gradients are *minus* those of
   that last one-pass backward. D one-pass backward passes and one cache, the sequential
   direction's true cost.

**Conditional** (``context_dim = C > 0``, a density ``p(x | y)``): the MADE also reads the
context ``y`` (N, C) through inputs of degree 0 (see :mod:`.made`), so ``s_i = s_i(u_{<i}, y)``,
``t_i = t_i(u_{<i}, y)``. At fixed ``y`` the map is still triangular in ``u`` and the log-det is
still ``±sum_i s_i``. The context's gradient comes out of MADE's backward beside ``du``; in the
sequential direction it is, like the parameters', minus that of the last one-pass backward
(``y`` enters ``g(u, θ, y) = y_out`` exactly as ``θ`` does).

Shapes: ``u, y`` (N, D); MADE output ``[raw | t]`` (N, 2D); ``log_det`` (N,).

References
----------
Germain, Gregor, Murray, Larochelle, "MADE: Masked Autoencoder for Distribution Estimation",
ICML 2015, arXiv:1502.03509.
Kingma, Salimans, Jozefowicz, Chen, Sutskever, Welling, "Improved Variational Inference with
Inverse Autoregressive Flow", NeurIPS 2016, arXiv:1606.04934.
Papamakarios, Pavlakou, Murray, "Masked Autoregressive Flow for Density Estimation",
NeurIPS 2017, arXiv:1705.07057.
"""
import numpy as np

from ..config import use_kernels
from .._validate import check_context_dim
from .base import Transform, split_conditioner_grad
from .made import MADE, made_backward, made_forward

__all__ = ["maf_inverse", "maf_inverse_backward", "maf_forward",
           "maf_forward_backward", "iaf_forward", "iaf_forward_backward", "iaf_inverse",
           "iaf_inverse_backward", "MAF", "IAF"]


def _scale_shift(out, D, s_max):
    """Split MADE's output ``[raw | t]``: ``(s, t, ds/draw)`` with ``s = s_max tanh(raw/s_max)``."""
    th = np.tanh(out[:, :D] / s_max)                                 # (N, D)
    return s_max * th, out[:, D:], 1.0 - th * th


def _feature_by_feature(p, params, masks, order, activation, s_max, context, step):
    """The sequential direction of either form: pass k sets feature ``order[k]`` to
    ``step(p_i, s_i, t_i)``, its inputs being final by then. Returns the result, and the
    ``(s, ds/draw, MADE cache)`` of the one pass at it."""
    D = p.shape[1]
    u = np.zeros_like(p)
    for i in order:
        out, made_cache = made_forward(u, params, masks, activation, context)
        u[:, i] = step(p[:, i], s_max * np.tanh(out[:, i] / s_max), out[:, D + i])
    # The last pass saw every input an output depends on (the last feature in the order feeds
    # no output), so its MADE output and cache are those of the one pass at the final u.
    s, _, ds_draw = _scale_shift(out, D, s_max)
    return u, s, ds_draw, made_cache


def _back_substitute(d_u, dlog_det, cache, one_pass_backward, diag):
    """``J^T v = d_u - dlog_det ∇ℓ`` by back-substitution in reverse order (module docstring):
    ``(v, -(the last one-pass backward's grads))``; ``diag`` (N, D) is ``J``'s diagonal."""
    v = np.zeros_like(d_u)                                           # (N, D)
    g = np.zeros_like(d_u)
    for i in cache["order"][::-1]:
        # g[:, i] depends only on v of features after i, all known by now
        v[:, i] = (d_u[:, i] - g[:, i]) / diag[:, i]
        g, grads = one_pass_backward(v, dlog_det, cache)
    return v, {key: -value for key, value in grads.items()}


def iaf_forward(x, params, masks, activation="tanh", s_max=2.0, context=None):
    """The IAF form's one pass: ``z = x e^{s(x)} + t(x)``; returns ``(z, log_det = sum s, cache)``.

    IAF's ``forward`` (applied to a base sample); the MAF's one pass is :func:`maf_inverse`.

    Parameters
    ----------
    x : ndarray, shape (N, D)
    params : dict
        MADE parameters ``W0, b0, ...`` (output width 2 D).
    masks : list of ndarray
    activation : str
    s_max : float
    context : ndarray, shape (N, C), optional
        Context of a conditional MADE.

    Returns
    -------
    z : ndarray, shape (N, D)
    log_det : ndarray, shape (N,)
        ``log|det dz/dx| = sum_i s_i``.
    cache : dict

    Examples
    --------
    >>> net = MADE(2, [4], k=2, rng=0)
    >>> z, log_det, _ = iaf_forward(np.ones((3, 2)), net.params, net.masks)
    >>> z.shape, log_det.shape
    ((3, 2), (3,))
    """
    D = x.shape[1]
    out, made_cache = made_forward(x, params, masks, activation, context)    # (N, 2D)
    s, t, ds_draw = _scale_shift(out, D, s_max)
    exp_s = np.exp(s)
    z = x * exp_s + t
    cache = {"n": x.shape[0], "u": x, "exp_s": exp_s, "ds_draw": ds_draw, "made_cache": made_cache}
    return z, s.sum(axis=1), cache


def iaf_forward_backward(dz, dlog_det, cache):
    """Backward of :func:`iaf_forward`: ``(dx, MADE grads)``; with a context,
    ``grads["context"]`` is its gradient."""
    x, exp_s = cache["u"], cache["exp_s"]
    ds = dz * x * exp_s + dlog_det[:, None]                          # (N, D)
    dout = np.concatenate([ds * cache["ds_draw"], dz], axis=1)       # (N, 2D): [draw | dt]
    d_made_in, grads = made_backward(dout, cache["made_cache"])     # (N, D [+ C])
    return dz * exp_s + split_conditioner_grad(d_made_in, x.shape[1], grads), grads


def iaf_inverse(z, params, masks, order, activation="tanh", s_max=2.0, context=None):
    """The IAF form's sequential direction: solve ``z = x e^{s(x)} + t(x)`` for ``x`` in D MADE
    passes.

    IAF's ``inverse`` (density). Returns ``(x, log_det = -sum s(x), cache)``;
    the cache is that of the one pass at ``x`` (see :func:`iaf_inverse_backward`).

    Parameters
    ----------
    z : ndarray, shape (N, D)
    params, masks, activation, s_max, context
        As in :func:`iaf_forward`.
    order : ndarray of int, shape (D,)
        ``order[k]`` is the feature generated k-th (the MADE's order).

    Examples
    --------
    >>> net = MADE(3, [4], k=2, rng=0)
    >>> x, _, _ = iaf_inverse(np.ones((2, 3)), net.params, net.masks, net.order)
    >>> bool(np.allclose(iaf_forward(x, net.params, net.masks)[0], 1.0))
    True
    """
    x, s, ds_draw, made_cache = _feature_by_feature(
        z, params, masks, order, activation, s_max, context,
        lambda z_i, s_i, t_i: (z_i - t_i) * np.exp(-s_i))
    cache = {"n": z.shape[0], "u": x, "exp_s": np.exp(s), "ds_draw": ds_draw,
             "made_cache": made_cache, "order": order}
    return x, -s.sum(axis=1), cache


def iaf_inverse_backward(dx, dlog_det, cache):
    """Backward of :func:`iaf_inverse` by the implicit-function theorem: ``(dz, grads)``.

    Back-substitution for ``v`` in ``J^T v = dx - dlog_det * d(sum s)/dx`` (module docstring),
    one :func:`iaf_forward_backward` per feature; ``dz = v``, grads = -(the last pass's grads),
    the context's included.
    """
    return _back_substitute(dx, dlog_det, cache, iaf_forward_backward, cache["exp_s"])


# ---------------------------------------------------------------------------------------------
# the MAF form: shift, then scale
# ---------------------------------------------------------------------------------------------
def maf_inverse(x, params, masks, activation="tanh", s_max=2.0, context=None):
    """MAF's density direction in one pass: ``z = (x - t(x)) e^{-s(x)}``; returns
    ``(z, log_det = -sum s, cache)``.

    Parameters and returns as in :func:`iaf_forward` (``log_det = log|det dz/dx| = -sum_i s_i``).

    Examples
    --------
    >>> net = MADE(3, [4], k=2, rng=0)
    >>> x = np.arange(6.0).reshape(2, 3)
    >>> z, log_det, _ = maf_inverse(x, net.params, net.masks)      # one pass
    >>> x2, log_det2, _ = maf_forward(z, net.params, net.masks, net.order)   # D passes
    >>> bool(np.allclose(x2, x)), bool(np.allclose(log_det2, -log_det))
    (True, True)
    """
    D = x.shape[1]
    out, made_cache = made_forward(x, params, masks, activation, context)    # (N, 2D)
    s, t, ds_draw = _scale_shift(out, D, s_max)
    exp_neg_s = np.exp(-s)
    z = (x - t) * exp_neg_s                     # t is the conditional mean: centre, then scale
    cache = {"n": x.shape[0], "z": z, "exp_neg_s": exp_neg_s, "ds_draw": ds_draw,
             "made_cache": made_cache}
    return z, -s.sum(axis=1), cache


def maf_inverse_backward(dz, dlog_det, cache):
    """Backward of :func:`maf_inverse`: ``(dx, MADE grads)``; with a context,
    ``grads["context"]`` is its gradient."""
    dx = dz * cache["exp_neg_s"]                                     # (N, D), and dt = -dx
    ds = -dz * cache["z"] - dlog_det[:, None]                        # via z, and via log_det
    dout = np.concatenate([ds * cache["ds_draw"], -dx], axis=1)      # (N, 2D): [draw | dt]
    d_made_in, grads = made_backward(dout, cache["made_cache"])     # (N, D [+ C])
    return dx + split_conditioner_grad(d_made_in, dz.shape[1], grads), grads


def maf_forward(z, params, masks, order, activation="tanh", s_max=2.0, context=None):
    """MAF's sampling direction in D MADE passes: ``x_i = z_i e^{s_i(x_{<i})} + t_i(x_{<i})``.

    Returns ``(x, log_det = sum s(x), cache)``; the cache is that of
    :func:`maf_inverse` at ``x`` (see :func:`maf_forward_backward`). Arguments as
    in :func:`iaf_inverse`.

    Examples
    --------
    >>> net = MADE(2, [4], k=2, rng=0)        # order (0, 1): x_0 = z_0 e^{s_0} + t_0 first
    >>> x, log_det, _ = maf_forward(np.zeros((1, 2)), net.params, net.masks, net.order)
    >>> out = made_forward(x, net.params, net.masks)[0]
    >>> bool(np.allclose(x, out[:, 2:]))      # z = 0: each x_i is its conditional mean t_i
    True
    """
    x, s, ds_draw, made_cache = _feature_by_feature(
        z, params, masks, order, activation, s_max, context,
        lambda z_i, s_i, t_i: z_i * np.exp(s_i) + t_i)
    # the one pass at x gives back z: its cache holds z as its output
    cache = {"n": z.shape[0], "z": z, "exp_neg_s": np.exp(-s), "ds_draw": ds_draw,
             "made_cache": made_cache, "order": order}
    return x, s.sum(axis=1), cache


def maf_forward_backward(dx, dlog_det, cache):
    """Backward of :func:`maf_forward` by the implicit-function theorem: ``(dz, grads)``.

    The back-substitution of :func:`iaf_inverse_backward` with this form's one-pass backward
    and diagonal ``J_ii = e^{-s_i}`` (module docstring).
    """
    return _back_substitute(dx, dlog_det, cache, maf_inverse_backward, cache["exp_neg_s"])


# ---------------------------------------------------------------------------------------------
# the layers
# ---------------------------------------------------------------------------------------------
def _check_form(form):
    if form != "shift-first":
        raise ValueError(
            f"form: expected 'shift-first', got {form!r}. A MAF config without 'form' was saved "
            "before the MAF took its paper's form z = (x - t) e^{-s} (2026-12-01): its parameters "
            "belong to the earlier z = x e^s + t and would give other densities; retrain it.")


def _fast():
    from . import _autoregressive_fast   # the kernel path (backend "numba"), imported on first use
    return _autoregressive_fast


class _AffineAutoregressive(Transform):
    """Shared construction: a MADE with 2 outputs per feature (log-scale and shift)."""

    def __init__(self, dim, hidden=(64, 64), order=None, activation="tanh", s_max=2.0,
                 hidden_degrees="cyclic", seed=0, rng=None, zero_init=True, context_dim=0):
        super().__init__(dim)
        self.context_dim = check_context_dim(context_dim)
        if not (s_max > 0 and np.isfinite(s_max)):
            raise ValueError(f"s_max: expected a finite positive bound on |s|, got {s_max!r}.")
        self.s_max = float(s_max)
        self.hidden_degrees, self.seed = hidden_degrees, int(seed)
        self.net = MADE(self.dim, hidden, k=2, order=order, hidden_degrees=hidden_degrees,
                        activation=activation, rng=rng, zero_last=zero_init, seed=self.seed,
                        context_dim=self.context_dim)
        self.hidden, self.activation = self.net.hidden, activation
        self.order, self.masks = self.net.order, self.net.masks
        self.params = self.net.params                   # shared arrays: updates reach the net
        self.zero_grads()

    def config(self):
        cfg = {"dim": self.dim, "hidden": self.hidden, "order": self.order.tolist(),
               "activation": self.activation, "s_max": self.s_max,
               "hidden_degrees": self.hidden_degrees, "seed": self.seed}
        return {**cfg, "context_dim": self.context_dim} if self.context_dim else cfg

    @classmethod
    def param_shapes(cls, dim, hidden=(64, 64), context_dim=0, **config):
        return MADE.param_shapes(dim, hidden, 2, context_dim)

    # The layer's form: False the IAF's ``y = u e^{s} + t`` (iaf_forward / iaf_inverse), True
    # the MAF's ``z = (x - t) e^{-s}`` (maf_inverse / maf_forward).
    _shift_first = False

    # The kernel path (_autoregressive_fast.py) has no context input: a pass with a context runs
    # the NumPy functions on either backend.
    def _one_pass(self, p, context=None):
        if use_kernels() and context is None:
            return _fast().one_pass(self, p, self._shift_first)
        one_pass = maf_inverse if self._shift_first else iaf_forward
        return one_pass(p, self.params, self.masks, self.activation, self.s_max, context)

    def _one_pass_backward(self, d_out, dlog_det, cache):
        if "kernels" in cache:
            return _fast().one_pass_backward(cache, d_out, dlog_det)
        backward = maf_inverse_backward if self._shift_first else iaf_forward_backward
        return backward(d_out, dlog_det, cache)

    def _sequential(self, p, context=None):
        if use_kernels() and context is None:
            return _fast().sequential(self, p, self._shift_first)
        sequential = maf_forward if self._shift_first else iaf_inverse
        return sequential(p, self.params, self.masks, self.order, self.activation, self.s_max,
                          context)

    def _sequential_backward(self, d_out, dlog_det, cache):
        if "kernels" in cache:
            return _fast().sequential_backward(self, cache, d_out, dlog_det)
        backward = maf_forward_backward if self._shift_first else iaf_inverse_backward
        return backward(d_out, dlog_det, cache)


class MAF(_AffineAutoregressive):
    r"""Masked autoregressive flow layer: **density in one pass, sampling in D passes**.

    ``inverse(x)`` (the density direction) is one MADE pass over the data in the paper's
    form, ``z = (x - t(x)) e^{-s(x)}`` (:func:`maf_inverse`); ``forward(z)`` (sampling)
    runs ``x_i = z_i e^{s_i(x_{<i})} + t_i(x_{<i})`` feature by feature in D passes
    (:func:`maf_forward`), and its gradient (for reverse-KL training) costs D one-pass
    backward passes (see the module docstring).

    Parameters
    ----------
    dim : int
        Number of features D >= 2.
    hidden : sequence of int
        MADE hidden widths, each >= D - 1.
    order : None, "natural", "reverse", "random" or permutation of 0..D-1
        The sequence in which the features are generated.
    activation : str
    s_max : float
        Bound on the log-scales, ``|s| < s_max``.
    hidden_degrees : {"cyclic", "random"}
    seed : int
        Seed of a random order / random hidden degrees (saved in the config).
    rng : numpy.random.Generator or int, optional
        Initial weights.
    zero_init : bool
        Zero MADE's last layer so the layer starts as the identity.
    context_dim : int
        Width C of a context read by the MADE (degree-0 inputs; ``p(x | y)``); 0: not
        conditional. When C > 0 every pass needs ``context`` (N, C) and the backward passes
        leave its gradient in ``self.dcontext``. (Such passes run the NumPy functions on the
        numba backend too.)
    form : {"shift-first"}
        The affine form, recorded in the config so that a checkpoint of the MAF's earlier
        scale-first form (``z = x e^{s} + t``, whose config has no ``form``) is refused by
        :func:`nfscratch.io.load` instead of loading into a different density.

    Examples
    --------
    >>> t = MAF(3, hidden=[8], rng=0, zero_init=False)
    >>> z = np.random.default_rng(1).normal(size=(4, 3))
    >>> x, log_det = t.forward(z)                 # 3 sequential passes
    >>> z2, log_det_inv = t.inverse(x)            # 1 pass
    >>> bool(np.allclose(z2, z)), bool(np.allclose(log_det, -log_det_inv))
    (True, True)
    """

    _shift_first = True

    def __init__(self, dim, *args, form="shift-first", **kwargs):
        _check_form(form)
        super().__init__(dim, *args, **kwargs)

    def config(self):
        return {**super().config(), "form": "shift-first"}

    @classmethod
    def param_shapes(cls, dim, hidden=(64, 64), context_dim=0, form=None, **config):
        _check_form(form)                   # io.load asks this before it builds a layer
        return super().param_shapes(dim, hidden, context_dim, **config)

    def _forward(self, z, context=None):
        return self._sequential(z, context)

    def _backward(self, dx, dlog_det, cache):
        return self._sequential_backward(dx, dlog_det, cache)

    def _inverse(self, x, context=None):
        return self._one_pass(x, context)

    def _inverse_backward(self, dz, dlog_det, cache):
        return self._one_pass_backward(dz, dlog_det, cache)


class IAF(_AffineAutoregressive):
    r"""Inverse autoregressive flow layer: **sampling in one pass, density in D passes**.

    ``forward(z)`` (sampling, with the exact log-det of the sample) is one MADE pass over the
    base sample, ``x = z e^{s(z)} + t(z)`` (:func:`iaf_forward`, the paper's scale-then-shift
    form); ``inverse(x)`` (the density of a given point) solves it feature by feature in D
    passes (:func:`iaf_inverse`). Same parameters as :class:`MAF`.

    Examples
    --------
    >>> t = IAF(3, hidden=[8], rng=0, zero_init=False)
    >>> x, log_det = t.forward(np.zeros((2, 3)))   # 1 pass
    >>> z, _ = t.inverse(x)                          # 3 sequential passes
    >>> bool(np.allclose(z, 0.0))
    True
    """

    def _forward(self, z, context=None):
        return self._one_pass(z, context)

    def _backward(self, dx, dlog_det, cache):
        return self._one_pass_backward(dx, dlog_det, cache)

    def _inverse(self, x, context=None):
        return self._sequential(x, context)

    def _inverse_backward(self, dz, dlog_det, cache):
        return self._sequential_backward(dz, dlog_det, cache)
