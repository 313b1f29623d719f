"""``fit``'s divergence guard: the last good parameters, and the report that names the bad layer.

:class:`Guard` keeps a copy of the parameters before each optimizer update and puts it back
when training diverges; :func:`diagnose` re-runs the failed pass layer by layer to find where
the first non-finite value appeared, and builds the message of ``TrainingDiverged``.

The copies work on flat arrays: a K = 32 planar flow has 96 parameter arrays of 1-2 numbers,
and one NumPy call per array would cost more than the training step itself. When the arrays are
consecutive views of one buffer (a Flow's parameters are, see ``kernels._checks.packed_view``)
a copy is one memcpy.
"""
import numpy as np

from .kernels._checks import packed_view     # plain NumPy: does not import Numba


def _flat_copy(arrays, flat):
    """All values of ``arrays`` in one new 1-D array (one memcpy when ``flat`` is their buffer)."""
    if flat is not None:
        return flat.copy()
    return np.concatenate(arrays, axis=None) if arrays else np.empty(0)


def _restore(arrays, flat, saved):
    """Write the values saved by :func:`_flat_copy` back into ``arrays``."""
    if flat is not None:
        flat[...] = saved
        return
    start = 0
    for a in arrays:
        a[...] = saved[start:start + a.size].reshape(a.shape)
        start += a.size


class Guard:
    """The parameters of ``flow`` before the latest optimizer update, to restore on divergence.

    ``fit`` also keeps a second one for early stopping: the parameters with the best
    validation NLL, put back with :meth:`put_back`."""

    def __init__(self, params):
        self.arrays = list(params.values())
        self.names = list(params)
        self.flat = packed_view(self.arrays)      # one buffer behind all of them, or None
        self.saved = None                         # None until the first update
        self.saved_step = None

    def save(self, step):
        """Remember the parameters entering ``step``'s update (they gave a finite loss)."""
        self.saved = _flat_copy(self.arrays, self.flat)
        self.saved_step = step

    def first_nonfinite(self):
        """The name of the first parameter with a NaN/inf entry, or None."""
        values = self.flat if self.flat is not None else _flat_copy(self.arrays, None)
        if np.isfinite(values).all():
            return None
        return next(n for n, a in zip(self.names, self.arrays) if not np.isfinite(a).all())

    def put_back(self):
        """Write the saved parameters back into the live arrays."""
        _restore(self.arrays, self.flat, self.saved)

    def restore(self):
        """Put back the saved parameters; return a sentence saying what was restored."""
        if self.saved is None:
            return ("The starting parameters already give it, so nothing was trained "
                    "(check the initialization and the data)")
        self.put_back()
        return (f"Parameters were restored to those of step {self.saved_step}, the last "
                "with a finite loss and gradient (the optimizer's state was not)")


def find_bad_layer(flow, batch, direction, context=None):
    """Re-run the pass layer by layer; return ``(index, what)`` of the first non-finite value.

    ``context``: that of the batch, for the conditional layers of a conditional flow."""
    layers = list(enumerate(flow.layers))
    if direction == "inverse":
        layers = layers[::-1]
    p = batch
    with np.errstate(all="ignore"):
        for i, t in layers:
            for k, v in t.params.items():
                if not np.all(np.isfinite(v)):
                    return i, f"its parameter {k!r}"
            try:
                p, ld = getattr(t, direction)(p, context if t.context_dim else None)
            except (ValueError, FloatingPointError, RuntimeError) as exc:
                return i, f"its {direction} pass raised: {exc}"
            if not np.all(np.isfinite(p)):
                return i, f"its {direction} output"
            if not np.all(np.isfinite(ld)):
                return i, f"its log-det ({direction} pass)"
    for i, grads in enumerate(flow.layer_grads()):
        for k, g in grads.items():
            if not np.all(np.isfinite(g)):
                return i, f"the gradient of its parameter {k!r}"
    return None, None


def diagnose(flow, batch, direction, step, what_failed, context=None):
    """The layer where the pass on ``batch`` first goes non-finite, and a message saying so."""
    layer, what = find_bad_layer(flow, batch, direction, context)
    where = ("no single layer was non-finite on its own (the loss itself overflowed)"
             if layer is None else
             f"the first non-finite value was in layer {layer} ({flow.layers[layer].name}): "
             f"{what}")
    return layer, f"fit: step {step} {what_failed}; {where}"


def describe_failure(failure, loss, grad_norm):
    """What went wrong in a step, as the middle of the divergence message."""
    if failure is not None:
        return f"raised {type(failure).__name__}: {failure}"
    if not np.isfinite(loss):
        return f"produced a non-finite loss ({loss!r})"
    return f"produced a non-finite gradient (norm {grad_norm!r}; the loss was {loss:.4g})"
