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

``dx`` is dL/dx (shape ``(N, D)``) and ``dlog_det`` is dL/dlog_det (shape ``(N,)``), the two
upstream gradients of a loss L that depends on both outputs.
"""
import numpy as np

from .._validate import as_batch, as_float_array

__all__ = ["Transform"]


class Transform:
    """Base class: holds ``params``/``grads`` dicts and the cache of the last call.

    Subclasses implement ``_forward``, ``_backward``, ``_inverse`` and ``_inverse_backward`` on
    validated float64 arrays, and ``config()`` (the JSON-able constructor arguments used by
    :mod:`nfscratch.io`). Parameters are updated in place by the optimizers, so a subclass must
    never rebind an entry of ``self.params``.
    """

    #: True when ``inverse`` is exact in closed form (False: solved numerically).
    analytic_inverse = True

    def __init__(self, dim):
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
            raise ValueError(f"dim: expected a positive integer number of features, got {dim!r}.")
        self.dim = int(dim)
        self.params = {}
        self.grads = {}
        self._cache = None
        self._cache_direction = None
        self._last_log_det = None   # per-sample log-det of the last pass, for diagnostics

    # -- public API: validate, then call the subclass ---------------------------------------------
    def forward(self, z):
        """Map base-side points ``z`` (N, D) to data-side ``x`` (N, D); return ``(x, log_det)``."""
        return self._run("forward", as_batch(z, self.dim, "z"))

    def inverse(self, x):
        """Map data-side points ``x`` (N, D) to base-side ``z`` (N, D); return ``(z, log_det)``."""
        return self._run("inverse", as_batch(x, self.dim, "x"))

    def backward(self, dx, dlog_det):
        """Backpropagate through the last ``forward``: return ``dz`` and fill ``self.grads``."""
        dx, dlog_det = self._check_upstream(dx, dlog_det, "forward", "dx")
        return self._run_backward(dx, dlog_det)

    def inverse_backward(self, dz, dlog_det):
        """Backpropagate through the last ``inverse``: return ``dx`` and fill ``self.grads``."""
        dz, dlog_det = self._check_upstream(dz, dlog_det, "inverse", "dz")
        return self._run_backward(dz, dlog_det)

    # -- unchecked versions, for Flow, which validates once at its own boundary -------------------
    def _run(self, direction, p):
        step = self._forward if direction == "forward" else self._inverse
        out, log_det, self._cache = step(p)
        self._cache_direction = direction
        self._last_log_det = log_det
        return out, log_det

    def _run_backward(self, d_out, dlog_det):
        step = self._backward if self._cache_direction == "forward" else self._inverse_backward
        d_in, grads = step(d_out, dlog_det, self._cache)
        self._store_grads(grads)
        return d_in

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
        if self._cache is None or self._cache_direction != direction:
            call = "forward" if direction == "forward" else "inverse"
            back = "backward" if direction == "forward" else "inverse_backward"
            raise RuntimeError(f"{self.name}.{back}: call {call}() first; the last call was "
                               f"{self._cache_direction or 'none'}(). {back} backpropagates through "
                               f"the most recent {call}() call.")
        n = self._cache_n()
        d_out = as_batch(d_out, self.dim, name)
        if d_out.shape[0] != n:
            raise ValueError(f"{name}: expected shape ({n}, {self.dim}) to match the last {direction} "
                             f"call, got {d_out.shape}.")
        dlog_det = as_float_array(dlog_det, "dlog_det")
        if dlog_det.ndim == 0:
            dlog_det = np.full(n, float(dlog_det))
        if dlog_det.shape != (n,):
            raise ValueError(f"dlog_det: expected shape ({n},) (one entry per sample), got {dlog_det.shape}.")
        return d_out, dlog_det

    def _cache_n(self):
        return self._cache["n"]

    def __repr__(self):
        cfg = ", ".join(f"{k}={v!r}" for k, v in self.config().items()
                        if not isinstance(v, list) or len(v) <= 8)
        return f"{self.name}({cfg})"

    # -- to be implemented ------------------------------------------------------------------------
    def _forward(self, z):  # -> x, log_det, cache (a dict with at least "n")
        raise NotImplementedError

    def _backward(self, dx, dlog_det, cache):  # -> dz, grads
        raise NotImplementedError(f"{self.name}: backward (gradient of forward) is not provided.")

    def _inverse(self, x):  # -> z, log_det, cache
        raise NotImplementedError(f"{self.name}: inverse is not provided.")

    def _inverse_backward(self, dz, dlog_det, cache):  # -> dx, grads
        raise NotImplementedError(f"{self.name}: inverse_backward (gradient of inverse) is not "
                                  "provided, so this transform cannot be trained by maximum likelihood.")
