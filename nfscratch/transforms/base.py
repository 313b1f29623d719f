r"""The interface every flow transform implements.

Direction convention (Rezende & Mohamed, 2015): a flow pushes base samples forward into data,

.. math:: z_0 \sim \mathcal N(0, I), \qquad x = f_K \circ \dots \circ f_1(z_0).

* ``forward(z) -> (x, log_det)``: the generative direction, ``log_det[n] = log|det dx/dz|`` of
  sample ``n`` (shape ``(N,)``).
* ``inverse(x) -> (z, log_det)``: the normalizing direction, ``log_det[n] = log|det dz/dx|``.
* ``backward(dx, dlog_det) -> dz``: backpropagation (vector-Jacobian product) of the last
  ``forward`` call; fills ``self.grads`` with dL/dparam for every entry of ``self.params``.
* ``inverse_backward(dz, dlog_det) -> dx``: backpropagation of the last ``inverse`` call.

"backward" always means backpropagation; inversion is always called "inverse".

Conditional transforms
----------------------
A transform with a conditioner (a coupling, MAF/IAF, a spline coupling) becomes *conditional*
when built with ``context_dim=C > 0``: it then models ``p(x | y)`` and every pass takes a context
``y`` of shape ``(N, C)``, ``forward(z, context)`` and ``inverse(x, context)``, which is
concatenated to the conditioner's input. The context is required (an error names the argument
if it is missing or has the wrong shape). A transform with ``context_dim == 0`` -- every
transform without a conditioner, and a conditioner-based one built unconditional -- refuses a
context with an error instead of ignoring it; a :class:`~nfscratch.flow.Flow` hands the context
only to its conditional members.

The backward passes keep their contract, ``backward(dx, dlog_det) -> dz``. The gradient with
respect to the context is *stored*: after the backward pass of a pass that had a context,
``self.dcontext`` holds dL/dcontext ``(N, C)`` (None otherwise). The pure backward functions
return it inside their ``grads`` dict under the key ``"context"``, beside the conditioner's
parameter gradients (the context enters the conditioner exactly like a parameter does); the
class moves it from there to ``dcontext``.

``dx`` is dL/dx (shape ``(N, D)``) and ``dlog_det`` is dL/dlog_det (shape ``(N,)``), the two
upstream gradients of a loss L that depends on both outputs.

What a transform remembers between a pass and its backward pass
----------------------------------------------------------------
* ``self._cache``: the dict returned by the step that made the last pass (``_forward`` or
  ``_inverse``), exactly as that step made it; its keys are documented by the function that
  makes it (e.g. :func:`~nfscratch.transforms.planar.planar_forward`). Nothing else writes it.
* ``self._pass``: the record of that pass, ``(direction, token, n)``, kept beside the cache, not
  in it. ``token`` names the pass: a :class:`~nfscratch.flow.Flow` stamps one token into every
  layer it runs, and its backward pass checks that every layer still holds that token, so a
  layer run on its own in between (whatever the batch size) is detected, not silently used.

Layers inside a transform
-------------------------
A transform may stand for several numbered layers (a
:class:`~nfscratch.transforms.planar.PlanarChain` is K planar layers run by one kernel call).
:meth:`Transform.sublayers` lists them (``[self]`` by default), and the other per-layer methods
(:meth:`last_log_dets`, :meth:`layer_grads`, :meth:`_trace`) answer in the same order. A Flow
numbers its layers through them, so plots, diagnostics and gradient tables see every layer
without knowing any transform class.
"""
import itertools
from collections import namedtuple

import numpy as np

from .._validate import as_batch, as_context, check_upstream

__all__ = ["Transform", "LayerChain", "conditioner_input", "split_conditioner_grad"]

_Pass = namedtuple("_Pass", "direction token n")
_TOKENS = itertools.count(1)


def new_pass_token():
    """A token no other pass has: the name of one pass through a Flow or a lone layer."""
    return next(_TOKENS)


def conditioner_input(p_a, context):
    """What a conditioner reads: the passed-through features ``p_a`` (N, d_a), followed by the
    context (N, C) when the pass has one."""
    return p_a if context is None else np.concatenate([p_a, context], axis=1)


def split_conditioner_grad(d_net_in, d_a, grads):
    """Split the conditioner's input gradient (N, d_a [+ C]) made by a backward pass.

    Returns dL/dp_a (N, d_a); the context's part, if the pass had one, goes into
    ``grads["context"]`` (see the module docstring).
    """
    if d_net_in.shape[1] > d_a:
        grads["context"] = d_net_in[:, d_a:]
    return d_net_in[:, :d_a]


class Transform:
    """Base class: holds ``params``/``grads`` dicts and the cache of the last call.

    Subclasses implement ``_forward``, ``_backward``, ``_inverse`` and ``_inverse_backward`` on
    validated float64 arrays, and ``config()`` (the JSON-able constructor arguments used by
    :mod:`nfscratch.io`). Parameters are updated in place by the optimizers, so a subclass must
    never rebind an entry of ``self.params``.
    """

    #: True when ``inverse`` is exact in closed form (False: solved numerically).
    analytic_inverse = True
    #: Width C of the context every pass needs (0: not conditional, a context is refused).
    context_dim = 0

    def __init__(self, dim):
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
            raise ValueError(f"dim: expected a positive integer number of features, got {dim!r}.")
        self.dim = int(dim)
        self.params = {}
        self.grads = {}
        self._cache = None
        self._pass = None
        self._last_log_det = None   # per-sample log-det of the last pass, for diagnostics
        self.dcontext = None        # dL/dcontext (N, C) of the last backward pass with a context

    # -- public API: validate, then call the subclass ---------------------------------------------
    def forward(self, z, context=None):
        """Map base-side points ``z`` (N, D) to data-side ``x`` (N, D); return ``(x, log_det)``.

        ``context`` (N, C) is required when the layer is conditional (``context_dim = C > 0``)
        and refused otherwise."""
        z = as_batch(z, self.dim, "z")
        return self._run("forward", z, context=self.check_context(context, z.shape[0]))

    def inverse(self, x, context=None):
        """Map data-side points ``x`` (N, D) to base-side ``z`` (N, D); return ``(z, log_det)``.

        ``context`` as in :meth:`forward`."""
        x = as_batch(x, self.dim, "x")
        return self._run("inverse", x, context=self.check_context(context, x.shape[0]))

    def check_context(self, context, n):
        """The validated context of a pass over ``n`` samples (None for a non-conditional layer)."""
        return as_context(context, self.context_dim, n, self.name)

    def backward(self, dx, dlog_det):
        """Backpropagate through the last ``forward``: return ``dz`` and fill ``self.grads``."""
        dx, dlog_det = self._check_upstream(dx, dlog_det, "forward", "dx")
        return self._run_backward(dx, dlog_det)

    def inverse_backward(self, dz, dlog_det):
        """Backpropagate through the last ``inverse``: return ``dx`` and fill ``self.grads``."""
        dz, dlog_det = self._check_upstream(dz, dlog_det, "inverse", "dz")
        return self._run_backward(dz, dlog_det)

    # -- unchecked versions, for Flow, which validates once at its own boundary -------------------
    def _run(self, direction, p, token=None, context=None):
        """One pass on a validated batch ``p``; ``token`` names the pass (a new one if None);
        ``context`` is validated too, and None for a non-conditional layer."""
        step = self._forward if direction == "forward" else self._inverse
        self._pass = None    # a step that raises leaves no pass to backpropagate through
        out, log_det, self._cache = step(p) if context is None else step(p, context)
        self._pass = _Pass(direction, new_pass_token() if token is None else token, p.shape[0])
        self._last_log_det = log_det
        return out, log_det

    def _run_backward(self, d_out, dlog_det):
        step = self._backward if self._pass.direction == "forward" else self._inverse_backward
        d_in, grads = step(d_out, dlog_det, self._cache)
        self.dcontext = grads.pop("context", None)
        self._store_grads(grads)
        return d_in

    def _holds_pass(self, direction, token):
        """True when the cache is the one of pass ``token`` in ``direction``."""
        return self._pass is not None and self._pass[:2] == (direction, token)

    def _trace(self, direction, p, token=None, context=None):
        """Like :meth:`_run`, and also every sublayer's output and log-det in the order applied.

        Returns ``(out, log_det, outs, log_dets)``; ``outs[-1]`` is ``out``. The backward pass
        afterwards is the one of this pass. A transform with sublayers overrides it (and is
        called without ``context``: such transforms are not conditional).
        """
        out, log_det = self._run(direction, p, token, context)
        return out, log_det, [out], [log_det]

    # -- layers -----------------------------------------------------------------------------------
    def sublayers(self):
        """The numbered layers this transform stands for, in forward order (default ``[self]``).

        Each is a Transform whose ``params`` are views of this transform's parameters.
        """
        return [self]

    def last_log_dets(self):
        """Per-sample log-det (N,) of every sublayer in the last pass, in sublayer order
        (None for a layer never run). Valid until the next pass."""
        return [self._last_log_det]

    def layer_grads(self):
        """The gradients of every sublayer (dicts keyed like its ``params``), in sublayer order."""
        return [self.grads]

    def _move_params_to(self, buffer):
        """Copy every parameter into ``buffer`` (1-D float64, ``n_params()`` long) and keep it
        there: afterwards each ``params`` entry is a view of ``buffer``.

        The order is the one of the sublayers' ``params`` one after another; :class:`Flow`
        calls this once, to give all its layers one parameter buffer (see ``Flow``). A
        transform whose parameters are views of one array of its own overrides it.
        """
        start = 0
        for name, a in self.params.items():
            view = buffer[start:start + a.size].reshape(a.shape)
            view[...] = a
            self.params[name] = view
            start += a.size

    # -- helpers ----------------------------------------------------------------------------------
    @property
    def name(self):
        return type(self).__name__

    def config(self):
        """JSON-able keyword arguments that rebuild this transform (parameters excluded)."""
        return {"dim": self.dim}

    @classmethod
    def param_shapes(cls, **config):
        """The shape of every parameter of ``cls(**config)``, without building it.

        :mod:`nfscratch.io` compares these with a checkpoint's arrays *before* building a layer,
        so a crafted file cannot make it allocate a huge model. The default builds the layer;
        a transform with parameters overrides it with arithmetic on the config.
        """
        return {k: v.shape for k, v in cls(**config).params.items()}

    def n_params(self):
        return int(sum(p.size for p in self.params.values()))

    def zero_grads(self):
        self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}

    def _store_grads(self, grads):
        missing = set(self.params) - set(grads)
        if missing:  # a bug in a subclass, not a user error
            raise RuntimeError(f"{self.name}: backward produced no gradient for {sorted(missing)}")
        self.grads = {k: np.asarray(grads[k], dtype=np.float64).reshape(self.params[k].shape)
                      for k in self.params}

    def _check_upstream(self, d_out, dlog_det, direction, name):
        if self._pass is None or self._pass.direction != direction:
            call = "forward" if direction == "forward" else "inverse"
            back = "backward" if direction == "forward" else "inverse_backward"
            last = self._pass.direction if self._pass is not None else "none"
            raise RuntimeError(f"{self.name}.{back}: call {call}() first; the last call was "
                               f"{last}(). {back} backpropagates through the most recent "
                               f"{call}() call.")
        return check_upstream(d_out, dlog_det, self._pass.n, self.dim, name)

    def __repr__(self):
        cfg = ", ".join(f"{k}={v!r}" for k, v in self.config().items()
                        if not isinstance(v, list) or len(v) <= 8)
        return f"{self.name}({cfg})"

    # -- to be implemented ------------------------------------------------------------------------
    def _forward(self, z):  # -> x, log_det, cache (a dict)
        raise NotImplementedError

    def _backward(self, dx, dlog_det, cache):  # -> dz, grads
        raise NotImplementedError(f"{self.name}: backward (gradient of forward) is not provided.")

    def _inverse(self, x):  # -> z, log_det, cache
        raise NotImplementedError(f"{self.name}: inverse is not provided.")

    def _inverse_backward(self, dz, dlog_det, cache):  # -> dx, grads
        raise NotImplementedError(f"{self.name}: inverse_backward (gradient of inverse) is not "
                                  "provided, so this transform cannot be trained by maximum likelihood.")


class LayerChain(Transform):
    """Base of a transform that runs K layers as one (``PlanarChain``, ``IAFChain``).

    A subclass keeps its member layers in ``self._layers`` (each a Transform whose ``params`` are
    views of row k of the chain's), puts the per-layer log-dets of its last pass in
    ``self._cache["log_dets"]`` and the per-layer gradients in ``self._layer_grads``; the
    per-layer methods below read them, in layer order. Its parameters live in one array
    ``self._theta`` (K rows) and its gradients in ``self._grad_theta`` of the same shape, both
    (re)bound with their views by the subclass's ``_use_theta(theta)``.
    """

    def sublayers(self):
        return list(self._layers)

    def last_log_dets(self):
        if self._cache is None:
            return [None] * len(self)
        return list(self._cache["log_dets"])

    def layer_grads(self):
        return self._layer_grads

    # -- gradients live in one array too, so that each layer's are views of its row -------------
    def _store_grads(self, grads):
        for name, g in self.grads.items():
            g[...] = grads[name]

    def zero_grads(self):
        self._grad_theta[...] = 0.0

    def _move_params_to(self, buffer):
        theta = buffer.reshape(self._theta.shape)
        theta[...] = self._theta
        self._use_theta(theta)
