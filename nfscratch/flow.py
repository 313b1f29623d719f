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
"""
from dataclasses import dataclass, field

import numpy as np

from ._validate import as_batch, as_rng, check_positive_int
from .distributions import StandardNormal
from .config import get_backend
from .transforms import Transform
from .transforms.planar import Planar, planar_chain_backprop, planar_chain_run

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


class Flow:
    """A base density and a list of transforms applied in order (base -> data).

    Parameters
    ----------
    transforms : list of Transform
    base : StandardNormal, optional
        Defaults to the standard normal of the transforms' dimension.

    Examples
    --------
    >>> from nfscratch.transforms import Planar
    >>> flow = Flow([Planar(2, rng=k) for k in range(4)])
    >>> x, log_q = flow.sample_and_log_prob(5, rng=0)
    >>> bool(np.allclose(flow.log_prob(x), log_q))
    True
    """

    def __init__(self, transforms, base=None):
        transforms = list(transforms)
        if not transforms:
            raise ValueError("transforms: expected at least one Transform, got an empty list.")
        for i, t in enumerate(transforms):
            if not isinstance(t, Transform):
                raise TypeError(f"transforms[{i}]: expected a Transform, got {type(t).__name__}.")
        dims = {t.dim for t in transforms}
        if len(dims) != 1:
            raise ValueError(f"transforms: all layers must have the same dim, got "
                             f"{[t.dim for t in transforms]}.")
        self.dim = dims.pop()
        self.base = StandardNormal(self.dim) if base is None else base
        if self.base.dim != self.dim:
            raise ValueError(f"base: expected dim {self.dim} to match the transforms, got {self.base.dim}.")
        self.transforms = transforms
        self._pack_params()

    # -- the two chains -----------------------------------------------------------------------
    # Inputs are validated once here; the layers are then called without re-validation, so a
    # non-finite intermediate propagates to the loss (where fit's guard can locate it) instead of
    # raising a confusing "z: expected finite values" from inside the chain.
    def forward(self, z):
        """Push base points ``z`` (N, D) to data space; return ``(x, sum of log|det dx/dz|)``."""
        z = as_batch(z, self.dim, "z")
        log_det = np.zeros(z.shape[0])
        for seg in self._segments():
            z, ld = planar_chain_run(seg, "forward", z) if len(seg) > 1 else seg[0]._run("forward", z)
            log_det += ld
        self._last = ("forward", z.shape[0])
        return z, log_det

    def inverse(self, x):
        """Pull data points ``x`` (N, D) back to the base; return ``(z0, sum of log|det dz/dx|)``."""
        x = as_batch(x, self.dim, "x")
        log_det = np.zeros(x.shape[0])
        for seg in reversed(self._segments()):
            x, ld = planar_chain_run(seg, "inverse", x) if len(seg) > 1 else seg[0]._run("inverse", x)
            log_det += ld
        self._last = ("inverse", x.shape[0])
        return x, log_det

    def backward(self, dx, dlog_det):
        """Backprop through the last ``forward``: return ``dz0``; fills every layer's grads."""
        dx, dlog_det = self._check_upstream(dx, dlog_det, "forward", "dx")
        for seg in reversed(self._segments()):
            dx = self._backprop(seg, dx, dlog_det, reverse=True)
        return dx

    def inverse_backward(self, dz, dlog_det):
        """Backprop through the last ``inverse``: return ``dx``; fills every layer's grads."""
        dz, dlog_det = self._check_upstream(dz, dlog_det, "inverse", "dz")
        for seg in self._segments():
            dz = self._backprop(seg, dz, dlog_det, reverse=False)
        return dz

    # With the "numba" backend, every run of consecutive Planar layers is one segment, passed
    # through the planar chain kernels in one call (see nfscratch.transforms.planar); every other
    # layer is a segment of its own. The numbers are those of the layer-by-layer pass.
    # The split is kept while the backend and the list of layers stay the same.
    def _segments(self):
        key = (get_backend(), tuple(map(id, self.transforms)))
        memo = getattr(self, "_segments_memo", None)
        if memo is not None and memo[0] == key:
            return memo[1]
        if key[0] != "numba":
            segs = [[t] for t in self.transforms]
        else:
            segs = []
            for t in self.transforms:
                if segs and type(t) is Planar and type(segs[-1][-1]) is Planar:
                    segs[-1].append(t)
                else:
                    segs.append([t])
        self._segments_memo = (key, segs)
        return segs

    @staticmethod
    def _backprop(seg, d_out, dlog_det, reverse):
        """Backprop through one segment (``reverse``: last layer first); one call for a chain pass."""
        if len(seg) > 1:
            d_in = planar_chain_backprop(seg, d_out, dlog_det)
            if d_in is not None:
                return d_in
        for t in (reversed(seg) if reverse else seg):
            d_out = t._run_backward(d_out, dlog_det)
        return d_out

    def _check_upstream(self, d_out, dlog_det, direction, name):
        last = getattr(self, "_last", None)
        if last is None or last[0] != direction:
            back = "backward" if direction == "forward" else "inverse_backward"
            raise RuntimeError(f"Flow.{back}: call {direction}() first; {back} backpropagates "
                               f"through the most recent {direction}() call.")
        n = last[1]
        for i, t in enumerate(self.transforms):
            # a layer called on its own since (flow[i].inverse(...)) holds another pass's cache
            if t._cache_direction != direction or t._cache is None or t._cache_n() != n:
                back = "backward" if direction == "forward" else "inverse_backward"
                raise RuntimeError(f"Flow.{back}: layer {i} ({t.name}) was called on its own after "
                                   f"the flow's last {direction}() call, so its cache belongs to "
                                   f"another pass; call flow.{direction}() again first.")
        d_out = as_batch(d_out, self.dim, name, allow_nonfinite=True)
        if d_out.shape[0] != n:
            raise ValueError(f"{name}: expected shape ({n}, {self.dim}) to match the last "
                             f"{direction} call, got {d_out.shape}.")
        dlog_det = np.asarray(dlog_det, dtype=np.float64)
        if dlog_det.ndim == 0:
            dlog_det = np.full(n, float(dlog_det))
        if dlog_det.shape != (n,):
            raise ValueError(f"dlog_det: expected shape ({n},) (one entry per sample), got {dlog_det.shape}.")
        return d_out, dlog_det

    # -- densities and samples ----------------------------------------------------------------
    def log_prob(self, x):
        """Exact ``log q(x)`` per sample (N,), by the inverse chain."""
        z, log_det = self.inverse(x)
        return self.base.log_prob(z) + log_det

    def sample(self, n, rng=None):
        """``n`` samples ``x`` of shape (n, D)."""
        return self.forward(self.base.sample(check_positive_int(n, "n"), as_rng(rng)))[0]

    def sample_and_log_prob(self, n, rng=None):
        """``n`` samples and their exact ``log q`` in one forward pass (no inversion needed)."""
        z0 = self.base.sample(check_positive_int(n, "n"), as_rng(rng))
        x, log_det = self.forward(z0)
        return x, self.base.log_prob(z0) - log_det

    def trajectory(self, points, direction="forward"):
        """Run a pass and keep every intermediate point and per-layer log-det.

        Parameters
        ----------
        points : ndarray, shape (N, D)
            Base points (``direction="forward"``) or data points (``"inverse"``).
        direction : {"forward", "inverse"}

        Returns
        -------
        Trajectory
            In the inverse direction the layers appear last-to-first, as they are applied.
        """
        if direction not in ("forward", "inverse"):
            raise ValueError(f"direction: expected 'forward' or 'inverse', got {direction!r}.")
        name = "z" if direction == "forward" else "x"
        p = as_batch(points, self.dim, name)
        layers = self.transforms if direction == "forward" else self.transforms[::-1]
        pts, lds = [p], []
        for t in layers:
            p, ld = t._run(direction, p)
            pts.append(p)
            lds.append(ld)
        self._last = (direction, p.shape[0])   # the layers now hold this pass's caches
        return Trajectory(pts, lds, [t.name for t in layers], direction)

    # -- parameters -----------------------------------------------------------------------------
    def _pack_params(self):
        """Move every parameter into one flat float64 buffer; each ``params`` entry becomes a view.

        The layers keep dicts of arrays with the same shapes and values, updated in place as
        before; only the memory behind them is now one array, in the order of :meth:`params`.
        Why: a K = 32 planar flow has 96 arrays of 1-2 numbers, and touching them one by one
        (an optimizer step, fit's copy for its NaN guard, gathering a planar chain's
        parameters) costs more than the arithmetic. Over one buffer each is a single call
        (``nfscratch.kernels._checks.packed_view`` recognizes such views). Nothing is packed
        when an array is not float64 or is shared by two entries (tied parameters must stay
        tied); a layer that appears twice is packed once. Packing is an optimization only:
        code that rebinds an entry later still works, without the shortcut.
        """
        entries, seen_layers, seen_arrays = [], set(), set()
        for t in self.transforms:
            if id(t) in seen_layers:
                continue
            seen_layers.add(id(t))
            for name, a in t.params.items():
                if type(a) is not np.ndarray or a.dtype != np.float64 or id(a) in seen_arrays:
                    return
                seen_arrays.add(id(a))
                entries.append((t.params, name, a))
        flat = np.empty(sum(a.size for _, _, a in entries))
        start = 0
        for params, name, a in entries:
            view = flat[start:start + a.size].reshape(a.shape)
            view[...] = a
            params[name] = view
            start += a.size

    def params(self):
        """Flat dict ``"<layer index>.<name>" -> array`` (the live arrays, updated in place)."""
        return {f"{i}.{k}": v for i, t in enumerate(self.transforms) for k, v in t.params.items()}

    def grads(self):
        """Flat dict of the gradients left by the last backward pass, keyed like ``params()``."""
        # called every training step: the "<i>.<name>" strings are made once, not every time
        key = tuple(map(id, self.transforms))
        memo = getattr(self, "_keys_memo", None)
        if memo is None or memo[0] != key:
            memo = self._keys_memo = (key, [{k: f"{i}.{k}" for k in t.params}
                                            for i, t in enumerate(self.transforms)])
        try:
            return {keys[k]: v for keys, t in zip(memo[1], self.transforms)
                    for k, v in t.grads.items()}
        except KeyError:    # a gradient named like no parameter (a bug in a custom transform)
            return {f"{i}.{k}": v for i, t in enumerate(self.transforms)
                    for k, v in t.grads.items()}

    def n_params(self):
        return sum(t.n_params() for t in self.transforms)

    def __len__(self):
        return len(self.transforms)

    def __getitem__(self, i):
        return self.transforms[i]

    def __iter__(self):
        return iter(self.transforms)

    def __repr__(self):
        body = "\n".join(f"  ({i}) {t!r}" for i, t in enumerate(self.transforms))
        return f"Flow(base={self.base!r}, {self.n_params()} parameters,\n{body}\n)"
