r"""A normalizing flow: a base density pushed through a chain of transforms.

Notes
-----
With ``z_0 ~ p_0`` and ``z_k = f_k(z_{k-1})``, ``x = z_K``:

.. math::

    \log q(x) = \log p_0(z_0) - \sum_{k=1}^K \log\left|\det \frac{\partial z_k}{\partial z_{k-1}}\right|
              = \log p_0(f^{-1}(x)) + \sum_{k=1}^K \log\left|\det \frac{\partial z_{k-1}}{\partial z_k}\right|.

The first form is what sampling gives for free (``sample_and_log_prob``, variational inference);
the second is what density estimation needs (``log_prob``, runs the inverse chain).

The chained backward passes walk the layers in the opposite order of the pass they
differentiate. Each layer's log-det enters the total additively, so every layer receives the
same upstream ``dlog_det``.

**Conditional flows** ``q(x | y)``: when some members are conditional (built with
``context_dim = C > 0``, see :mod:`nfscratch.transforms.base`), the flow is conditional too
(``flow.context_dim = C``): every pass, ``log_prob``, ``sample`` and ``trajectory`` take a context
``y`` (N, C), which the flow hands to each conditional member (the others never see it). Both
formulas above hold for every fixed ``y``. The backward passes still return ``dz0`` / ``dx``;
they also leave dL/dy, summed over the members that read ``y``, in ``flow.dcontext`` (N, C), so
a context produced by an encoder or learned as an embedding can be trained through it.

The container does not know its members: it only calls the
:class:`~nfscratch.transforms.base.Transform` interface. A member may stand for several numbered
layers (a :class:`~nfscratch.transforms.planar.PlanarChain` is K planar layers run by one kernel
call); ``flow.layers`` lists every layer through ``Transform.sublayers()``, and ``len(flow)``,
``flow[i]``, ``params()``, ``grads()`` and ``trajectory`` count layers, not members.
"""
from dataclasses import dataclass, field

import numpy as np

from ._validate import as_batch, as_context, as_rng, check_positive_int, check_upstream
from .distributions import StandardNormal
from .kernels._checks import packed_view   # plain NumPy: does not import Numba
from .transforms import Transform
from .transforms.base import new_pass_token

__all__ = ["Flow", "Trajectory"]


@dataclass
class Trajectory:
    """Every intermediate of a pass through a flow.

    Attributes
    ----------
    points : list of ndarray, K+1 entries of shape (N, D)
        ``points[0]`` is the input, ``points[k]`` the output of the k-th layer applied.
    log_dets : list of ndarray, K entries of shape (N,)
        ``log_dets[k]`` is the log-det of that step (in the direction of the pass).
    names : list of str
        The layers in the order they were applied.
    direction : {"forward", "inverse"}
    """

    points: list
    log_dets: list
    names: list
    direction: str = "forward"
    total_log_det: np.ndarray = field(init=False)

    def __post_init__(self):
        n = self.points[0].shape[0]
        self.total_log_det = np.sum(self.log_dets, axis=0) if self.log_dets else np.zeros(n)


def _byte_span(a):
    """``(first, end)`` byte addresses of the memory an array's elements occupy."""
    lo = hi = a.ctypes.data
    for n, stride in zip(a.shape, a.strides):
        if n == 0:
            return lo, lo
        if stride < 0:
            lo += (n - 1) * stride
        else:
            hi += (n - 1) * stride
    return lo, hi + a.itemsize


class Flow:
    """A base density and a list of transforms applied in order (base -> data).

    Parameters
    ----------
    transforms : list of Transform
        Applied first to last in the forward direction. Each object may appear once (it keeps
        the cache of its last pass). The list is fixed at construction: build a new Flow to
        change it.
    base : StandardNormal, optional
        Defaults to the standard normal of the transforms' dimension.

    Attributes
    ----------
    transforms : list of Transform
        The members, as given; the passes call them in turn.
    layers : list of Transform
        Every numbered layer: each member's ``sublayers()`` in order (a member is usually one
        layer; a ``PlanarChain`` of K layers is K). ``len(flow)``, ``flow[i]`` and iteration
        go over these, and ``params()``/``grads()`` keys start with the layer index.

    Examples
    --------
    >>> from nfscratch.transforms import Planar
    >>> flow = Flow([Planar(2, rng=k) for k in range(4)])
    >>> x, log_q = flow.sample_and_log_prob(5, rng=0)
    >>> bool(np.allclose(flow.log_prob(x), log_q))
    True
    """

    def __init__(self, transforms, base=None):
        if isinstance(transforms, Transform) or not hasattr(transforms, "__iter__"):
            raise TypeError(f"transforms: expected a list of Transforms, got "
                            f"{type(transforms).__name__}. Wrap a single one: Flow([t]).")
        transforms = list(transforms)
        if not transforms:
            raise ValueError("transforms: expected at least one Transform, got an empty list.")
        seen = {}
        for i, t in enumerate(transforms):
            if not isinstance(t, Transform):
                raise TypeError(f"transforms[{i}]: expected a Transform, got {type(t).__name__}.")
            if id(t) in seen:
                raise ValueError(f"transforms[{i}]: the same {t.name} object as "
                                 f"transforms[{seen[id(t)]}]. A transform keeps the cache of its "
                                 "last pass, so it can appear only once; build another one "
                                 "(to tie parameters, let two layers share the arrays).")
            seen[id(t)] = i
        dims = {t.dim for t in transforms}
        if len(dims) != 1:
            raise ValueError(f"transforms: all layers must have the same dim, got "
                             f"{[t.dim for t in transforms]}.")
        self.dim = dims.pop()
        if base is not None and not all(hasattr(base, a) for a in ("dim", "log_prob", "sample")):
            raise TypeError(f"base: expected a base density such as StandardNormal({self.dim}), "
                            f"got {type(base).__name__} {base!r}.")
        self.base = StandardNormal(self.dim) if base is None else base
        if self.base.dim != self.dim:
            raise ValueError(f"base: expected dim {self.dim} to match the transforms, got {self.base.dim}.")
        context_dims = {t.context_dim for t in transforms if t.context_dim}
        if len(context_dims) > 1:
            raise ValueError(f"transforms: the conditional layers must read the same context, "
                             f"got context_dim {[t.context_dim for t in transforms]}.")
        self.context_dim = context_dims.pop() if context_dims else 0
        self.dcontext = None    # dL/dcontext (N, C) left by the last backward pass
        self.transforms = transforms
        self._pack_params()
        self.layers = [layer for t in transforms for layer in t.sublayers()]
        self._first_layer = np.cumsum([0] + [len(t.sublayers()) for t in transforms]).tolist()
        self._grad_keys = [{k: f"{i}.{k}" for k in layer.params} for i, layer in enumerate(self.layers)]
        self._last = None    # (direction, token, n) of the last pass through the flow

    # -- the two chains -----------------------------------------------------------------------
    # Inputs are validated once here; the layers are then called without re-validation, so a
    # non-finite intermediate propagates to the loss (where fit's guard can locate it) instead of
    # raising a confusing "z: expected finite values" from inside the chain. Every pass has a
    # token, stamped into each member's pass record; a backward pass checks it.
    def forward(self, z, context=None):
        """Push base points ``z`` (N, D) to data space; return ``(x, sum of log|det dx/dz|)``.

        ``context`` (N, C): required by a conditional flow, refused by another."""
        z = as_batch(z, self.dim, "z")
        return self._pass("forward", z, self.transforms, self._context(context, z.shape[0]))

    def inverse(self, x, context=None):
        """Pull data points ``x`` (N, D) back to the base; return ``(z0, sum of log|det dz/dx|)``.

        ``context`` as in :meth:`forward`."""
        x = as_batch(x, self.dim, "x")
        return self._pass("inverse", x, self.transforms[::-1], self._context(context, x.shape[0]))

    def _context(self, context, n):
        return as_context(context, self.context_dim, n, "this Flow")

    def _pass(self, direction, p, members, context=None):
        self._last, token, n = None, new_pass_token(), p.shape[0]
        log_det = np.zeros(n)
        for t in members:
            p, ld = t._run(direction, p, token, context if t.context_dim else None)
            log_det += ld
        self._last = (direction, token, n)
        return p, log_det

    def backward(self, dx, dlog_det):
        """Backprop through the last ``forward``: return ``dz0``; fills every layer's grads
        (and ``self.dcontext`` when the pass had a context)."""
        dx, dlog_det = self._check_upstream(dx, dlog_det, "forward", "dx")
        return self._backprop(dx, dlog_det, self.transforms[::-1])

    def inverse_backward(self, dz, dlog_det):
        """Backprop through the last ``inverse``: return ``dx``; fills every layer's grads
        (and ``self.dcontext`` when the pass had a context)."""
        dz, dlog_det = self._check_upstream(dz, dlog_det, "inverse", "dz")
        return self._backprop(dz, dlog_det, self.transforms)

    def _backprop(self, d, dlog_det, members):
        """The members' backward passes in ``members`` order; sums their context gradients."""
        self.dcontext = None
        for t in members:
            d = t._run_backward(d, dlog_det)
            if t.dcontext is not None:     # every member that read the context adds its share
                self.dcontext = t.dcontext if self.dcontext is None else self.dcontext + t.dcontext
        return d

    def _check_upstream(self, d_out, dlog_det, direction, name):
        back = "backward" if direction == "forward" else "inverse_backward"
        if self._last is None or self._last[0] != direction:
            raise RuntimeError(f"Flow.{back}: call {direction}() first; {back} backpropagates "
                               f"through the most recent {direction}() call.")
        _, token, n = self._last
        for i, t in enumerate(self.transforms):
            if not t._holds_pass(direction, token):
                first, stop = self._first_layer[i], self._first_layer[i + 1]
                which = f"layer {first}" if stop == first + 1 else f"layers {first}-{stop - 1}"
                raise RuntimeError(f"Flow.{back}: {which} ({t.name}) was called on its own after "
                                   f"the flow's last {direction}() call, so its cache belongs to "
                                   f"another pass; call flow.{direction}() again first.")
        return check_upstream(d_out, dlog_det, n, self.dim, name, allow_nonfinite=True)

    # -- densities and samples ----------------------------------------------------------------
    def log_prob(self, x, context=None):
        """Exact ``log q(x)`` (or ``log q(x | context)``) per sample (N,), by the inverse chain."""
        z, log_det = self.inverse(x, context)
        return self.base.log_prob(z) + log_det

    def sample(self, n, rng=None, context=None):
        """``n`` samples ``x`` of shape (n, D); a conditional flow needs ``context`` (n, C),
        row i the condition of sample i."""
        return self.sample_and_log_prob(n, rng, context)[0]

    def sample_and_log_prob(self, n, rng=None, context=None):
        """``n`` samples and their exact ``log q`` in one forward pass (no inversion needed)."""
        n = check_positive_int(n, "n")
        context = self._context(context, n)      # checked before any work
        z0 = self.base.sample(n, as_rng(rng))
        x, log_det = self.forward(z0, context)
        return x, self.base.log_prob(z0) - log_det

    def trajectory(self, points, direction="forward", context=None):
        """Run a pass and keep every intermediate point and per-layer log-det.

        Parameters
        ----------
        points : ndarray, shape (N, D)
            Base points (``direction="forward"``) or data points (``"inverse"``).
        direction : {"forward", "inverse"}
        context : ndarray, shape (N, C), optional
            Required by a conditional flow.

        Returns
        -------
        Trajectory
            One step per layer (``len(flow)`` of them); in the inverse direction the layers
            appear last-to-first, as they are applied. A backward pass afterwards
            backpropagates through this pass.
        """
        if direction not in ("forward", "inverse"):
            raise ValueError(f"direction: expected 'forward' or 'inverse', got {direction!r}.")
        name = "z" if direction == "forward" else "x"
        p = as_batch(points, self.dim, name)
        context = self._context(context, p.shape[0])
        self._last, token, n = None, new_pass_token(), p.shape[0]
        members = self.transforms if direction == "forward" else self.transforms[::-1]
        pts, lds = [p], []
        for t in members:
            if t.context_dim:
                p, _, outs, layer_lds = t._trace(direction, p, token, context)
            else:
                p, _, outs, layer_lds = t._trace(direction, p, token)
            pts += outs
            lds += layer_lds
        self._last = (direction, token, n)
        layers = self.layers if direction == "forward" else self.layers[::-1]
        return Trajectory(pts, lds, [t.name for t in layers], direction)

    # -- layer by layer -------------------------------------------------------------------------
    def layer_log_dets(self):
        """Per-sample log-det (N,) of every layer in the last pass (None if never run)."""
        return [ld for t in self.transforms for ld in t.last_log_dets()]

    def layer_grads(self):
        """The gradient dicts of every layer, from the last backward pass, in layer order."""
        return [g for t in self.transforms for g in t.layer_grads()]

    # -- parameters -----------------------------------------------------------------------------
    def _pack_params(self):
        """Move every parameter into one flat float64 buffer; each ``params`` entry becomes a view.

        The layers keep arrays with the same shapes and values, updated in place as before;
        only the memory behind them is now one array, in the order of :meth:`params`.
        Why: a K = 32 planar flow has 96 arrays of 1-2 numbers, and touching them one by one
        (an optimizer step, fit's copy for its NaN guard) costs more than the arithmetic. Over
        one buffer each is a single call (``nfscratch.kernels._checks.packed_view`` recognizes
        such views). Each member moves its own parameters (``Transform._move_params_to``).
        Nothing is packed when an array is not float64 or two members share memory (tied
        parameters must stay tied). Packing is an optimization only: code that rebinds an entry
        later still works, without the shortcut.
        """
        arrays = [a for t in self.transforms for layer in t.sublayers() for a in layer.params.values()]
        if packed_view(arrays) is not None:
            return              # already one buffer (e.g. a single PlanarChain): nothing to move
        spans = []
        for i, t in enumerate(self.transforms):
            for a in t.params.values():
                if type(a) is not np.ndarray or a.dtype != np.float64:
                    return
                spans.append((*_byte_span(a), i))
        spans.sort()
        end, owner = -1, None
        for lo, hi, i in spans:
            if lo < end and i != owner:
                return          # memory shared by two members
            if hi > end:
                end, owner = hi, i
        flat = np.empty(sum(t.n_params() for t in self.transforms))
        start = 0
        for t in self.transforms:
            t._move_params_to(flat[start:start + t.n_params()])
            start += t.n_params()

    def params(self):
        """Flat dict ``"<layer index>.<name>" -> array`` (the live arrays, updated in place)."""
        return {f"{i}.{k}": v for i, layer in enumerate(self.layers) for k, v in layer.params.items()}

    def grads(self):
        """Flat dict of the gradients left by the last backward pass, keyed like ``params()``."""
        layer_grads = self.layer_grads()
        try:
            return {keys[k]: v for keys, g in zip(self._grad_keys, layer_grads) for k, v in g.items()}
        except KeyError:    # a gradient named like no parameter (a bug in a custom transform)
            return {f"{i}.{k}": v for i, g in enumerate(layer_grads) for k, v in g.items()}

    def n_params(self):
        return sum(t.n_params() for t in self.transforms)

    def __len__(self):
        return len(self.layers)

    def __getitem__(self, i):
        return self.layers[i]

    def __iter__(self):
        return iter(self.layers)

    def __repr__(self):
        body = "\n".join(f"  ({self._first_layer[i]}) {t!r}" for i, t in enumerate(self.transforms))
        return f"Flow(base={self.base!r}, {self.n_params()} parameters,\n{body}\n)"
