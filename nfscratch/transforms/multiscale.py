r"""Multi-scale flows: squeeze (space-to-depth) and factor-out, as in RealNVP and Glow.

Two ideas let an image flow spend its computation where it matters (Dinh et al. 2017, Sec. 3.6):

* **Squeeze** reshapes a ``(C, H, W)`` image into ``(4C, H/2, W/2)``: every 2x2 block of pixels
  becomes four channels at one position. A coupling that splits *channels* after a squeeze
  then conditions each pixel on its neighbours in the block. Squeezing only moves numbers, so it
  is a permutation of the D = C H W features: log-det 0, inverse the reverse permutation.
  Here it is exactly that, a :class:`~nfscratch.transforms.Permute` built by :func:`squeeze`.
* **Factor-out**: after some layers, half of the variables stop being transformed and are
  modelled directly by the standard normal base; only the other half goes on through the
  deeper layers. Because the base is a product of independent standard normals, "leave the flow
  early and go to the base" is the same as "go on through the identity". So a factor-out is a
  transform that applies an inner chain to the kept coordinates and the identity to the rest:
  :class:`FactorOut`. The flow, its base, sampling, ``log_prob``, plots and checkpoints see one
  more layer and nothing else changes.

Notes
-----
Squeeze, in the normalizing direction (data ``x`` of shape (C, H, W), flattened row-major, to
base-side ``z`` of shape (4C, H/2, W/2)):

.. math:: z[4c + 2 i + j,\; h,\; w] = x[c,\; 2h + i,\; 2w + j], \qquad i, j \in \{0, 1\}.

The generative (forward) direction is the reverse, depth-to-space, because a flow's forward
runs from the base to the data: ``x = z[:, perm]`` with ``perm`` from :func:`squeeze_permutation`.

Factor-out with kept indices ``k`` and inner chain ``g`` (forward order ``g_1, ..., g_m``):

.. math::

    x_k = g(z_k), \quad x_{\bar k} = z_{\bar k}, \qquad
    \log\left|\det\frac{\partial x}{\partial z}\right| = \log\left|\det\frac{\partial g}{\partial z_k}\right|,

since the Jacobian is block diagonal with an identity block. The inverse runs ``g^{-1}`` on
``x_k``. Backward: ``dz_{\bar k} = dx_{\bar k}``, and ``dz_k`` is the inner chain's backward pass
of ``dx_k`` (the same ``dlog_det`` goes to every inner layer, as in a flow); likewise for the
inverse. The parameters of inner layer ``j`` appear as ``"<j>.<name>"``.

Conditional factor-out (``p(x | y)``): when inner layers are conditional (``context_dim = C``),
the factor-out is too; it hands the context ``y`` (N, C) to each of them, and since every one
reads the same ``y``, ``dL/dy`` is the sum of their context gradients (as in a Flow). The
factored-out features never meet ``y``: they go to the base unchanged.

References
----------
Dinh, Sohl-Dickstein, Bengio, "Density estimation using Real NVP", ICLR 2017, arXiv:1605.08803.
Kingma, Dhariwal, "Glow: Generative Flow with Invertible 1x1 Convolutions", NeurIPS 2018,
arXiv:1807.03039.
"""
import numpy as np

from .._validate import check_positive_int
from .base import Transform
from .permutation import Permute

__all__ = ["squeeze_permutation", "squeeze", "factor_out_forward", "factor_out_backward",
           "FactorOut"]


def squeeze_permutation(channels, height, width):
    """``perm`` with ``x = z[:, perm]``: ``x`` a (C, H, W) image, ``z`` its (4C, H/2, W/2)
    squeeze, both flattened row-major.

    Examples
    --------
    >>> squeeze_permutation(1, 2, 4).tolist()     # two 2x2 blocks -> 4 channels of 1x2
    [0, 2, 1, 3, 4, 6, 5, 7]
    """
    C = check_positive_int(channels, "channels")
    H, W = check_positive_int(height, "height"), check_positive_int(width, "width")
    if H % 2 or W % 2:
        raise ValueError(f"height, width: a squeeze takes 2x2 blocks and needs both even, got "
                         f"{H} x {W}.")
    c, h, w = np.indices((C, H, W))                                   # indices of x, (C, H, W)
    z_channel = 4 * c + 2 * (h % 2) + (w % 2)
    return np.ravel_multi_index((z_channel, h // 2, w // 2), (4 * C, H // 2, W // 2)).ravel()


def squeeze(channels, height, width):
    """The squeeze of a (C, H, W) image as a flow layer: a :class:`Permute` whose forward is
    depth-to-space and whose inverse (data to base) is space-to-depth.

    Examples
    --------
    >>> t = squeeze(1, 2, 2)
    >>> t.inverse(np.array([[1.0, 2.0, 3.0, 4.0]]))[0].tolist()   # one 2x2 block -> 4 channels
    [[1.0, 2.0, 3.0, 4.0]]
    """
    perm = squeeze_permutation(channels, height, width)
    return Permute(perm.size, perm=perm)


def factor_out_forward(z, keep, run_inner):
    """Apply ``run_inner`` to ``z[:, keep]`` and the identity to the other features.

    Parameters
    ----------
    z : ndarray, shape (N, D)
    keep : ndarray of int64, shape (K,)
    run_inner : callable ``(N, K) -> ((N, K), log_det (N,))``
        The inner chain in the direction wanted (forward or inverse).

    Returns
    -------
    x : ndarray, shape (N, D)
    log_det : ndarray, shape (N,)
    cache : dict
    """
    x = z.copy()
    x[:, keep], log_det = run_inner(z[:, keep])
    return x, log_det, {"n": z.shape[0], "keep": keep}


def factor_out_backward(dx, keep, backprop_inner):
    """Backward of :func:`factor_out_forward` (either direction): ``backprop_inner`` maps the
    kept part of the upstream gradient (N, K) to the gradient of the inner chain's input."""
    dz = dx.copy()
    dz[:, keep] = backprop_inner(dx[:, keep])
    return dz


class FactorOut(Transform):
    """Run ``layers`` on the features ``keep`` and leave the others to the base.

    Parameters
    ----------
    dim : int
        Number of features D of the flow.
    keep : sequence of int
        The K features that go on through ``layers`` (the rest are factored out).
    layers : list of Transform (each of dim K), or of ``{"type", "config"}`` dicts
        The inner chain in forward order; dicts (as in a checkpoint) are built with the classes
        registered in ``nfscratch.transforms.TRANSFORMS``. Conditional members must all read
        the same context width C; the factor-out then has ``context_dim = C`` and every pass
        needs a context (N, C), which it hands to those members.

    Examples
    --------
    >>> from nfscratch.transforms import ElementwiseAffine
    >>> t = FactorOut(4, keep=[0, 2], layers=[ElementwiseAffine(2)])
    >>> t.params["0.log_scale"][:] = np.log(2.0)
    >>> x, log_det = t.forward(np.ones((1, 4)))
    >>> x.tolist(), round(float(log_det[0] / np.log(2.0)), 12)
    ([[2.0, 1.0, 2.0, 1.0]], 2.0)
    """

    def __init__(self, dim, keep, layers):
        super().__init__(dim)
        keep = np.asarray(keep)
        if (keep.ndim != 1 or keep.size == 0 or keep.dtype.kind not in "iu"
                or np.unique(keep).size != keep.size or keep.min() < 0 or keep.max() >= self.dim):
            raise ValueError(f"keep: expected distinct feature indices in 0..{self.dim - 1}, got "
                             f"{keep.tolist()}.")
        self.keep = keep.astype(np.int64)
        self.layers = [self._build(spec, i) for i, spec in enumerate(layers)]
        if not self.layers:
            raise ValueError("layers: expected at least one Transform to run on the kept features.")
        self.analytic_inverse = all(t.analytic_inverse for t in self.layers)
        widths = {t.context_dim for t in self.layers if t.context_dim}
        if len(widths) > 1:
            raise ValueError(f"layers: the conditional layers must read the same context, got "
                             f"context_dim {[t.context_dim for t in self.layers]}.")
        self.context_dim = widths.pop() if widths else 0
        self._collect_params()
        self.zero_grads()

    def _build(self, spec, i):
        if isinstance(spec, dict):
            from . import TRANSFORMS           # the registry imports this module
            if spec.get("type") not in TRANSFORMS or not isinstance(spec.get("config"), dict):
                raise ValueError(f"layers[{i}]: expected a Transform or a dict with a known "
                                 f"'type' and a 'config', got {spec!r}.")
            spec = TRANSFORMS[spec["type"]](**spec["config"])
        if not isinstance(spec, Transform):
            raise TypeError(f"layers[{i}]: expected a Transform, got {type(spec).__name__}.")
        if spec.dim != self.keep.size:
            raise ValueError(f"layers[{i}]: expected dim {self.keep.size} (the number of kept "
                             f"features), got {spec.dim}.")
        return spec

    def _collect_params(self):
        self.params = {f"{j}.{k}": v for j, t in enumerate(self.layers) for k, v in t.params.items()}

    def config(self):
        return {"dim": self.dim, "keep": self.keep.tolist(),
                "layers": [{"type": t.name, "config": t.config()} for t in self.layers]}

    @classmethod
    def param_shapes(cls, dim, keep, layers):
        from . import TRANSFORMS
        shapes = {}
        for j, spec in enumerate(layers):
            if (not isinstance(spec, dict) or spec.get("type") not in TRANSFORMS
                    or not isinstance(spec.get("config"), dict)):
                raise ValueError(f"layers[{j}]: expected a dict with a known 'type' and a "
                                 f"'config', got {spec!r}.")
            if spec["config"].get("dim") != len(keep):
                raise ValueError(f"layers[{j}]: expected dim {len(keep)}, got "
                                 f"{spec['config'].get('dim')!r}.")
            shapes.update({f"{j}.{k}": s for k, s in
                           TRANSFORMS[spec["type"]].param_shapes(**spec["config"]).items()})
        return shapes

    def _move_params_to(self, buffer):
        start = 0
        for t in self.layers:
            t._move_params_to(buffer[start:start + t.n_params()])
            start += t.n_params()
        self._collect_params()

    # The inner layers run unchecked, like the members of a Flow: the input (and the context)
    # was validated at the boundary, and each layer keeps the cache of its own pass.
    def _chain(self, direction, context):
        members = self.layers if direction == "forward" else self.layers[::-1]

        def run(p):
            log_det = np.zeros(p.shape[0])
            for t in members:
                p, ld = t._run(direction, p, context=context if t.context_dim else None)
                log_det += ld
            return p, log_det
        return run

    def _backprop(self, dlog_det, direction):
        members = self.layers[::-1] if direction == "forward" else self.layers

        def backprop(d):
            for t in members:
                d = t._run_backward(d, dlog_det)
            return d
        return backprop

    def _inner_grads(self):
        """The inner layers' gradients, and under ``"context"`` the sum of their context
        gradients when the pass had a context."""
        grads = {f"{j}.{k}": v for j, t in enumerate(self.layers) for k, v in t.grads.items()}
        dcontexts = [t.dcontext for t in self.layers if t.dcontext is not None]
        if dcontexts:
            grads["context"] = np.sum(dcontexts, axis=0)
        return grads

    def _forward(self, z, context=None):
        return factor_out_forward(z, self.keep, self._chain("forward", context))

    def _backward(self, dx, dlog_det, cache):
        dz = factor_out_backward(dx, cache["keep"], self._backprop(dlog_det, "forward"))
        return dz, self._inner_grads()

    def _inverse(self, x, context=None):
        return factor_out_forward(x, self.keep, self._chain("inverse", context))

    def _inverse_backward(self, dz, dlog_det, cache):
        dx = factor_out_backward(dz, cache["keep"], self._backprop(dlog_det, "inverse"))
        return dx, self._inner_grads()
