r"""The training loop: batches, a step of either objective, the optimizer, a NaN guard.

``fit`` trains a :class:`~nfscratch.flow.Flow` by maximum likelihood on data (``data=...``) or by
reverse KL against an unnormalized target (``target=...``). Before each optimizer update it keeps
a copy of the parameters that just gave a finite loss and gradient; if a later step's loss or
gradient comes out non-finite (or the step raises), it puts that copy back, finds the first layer
whose output, log-det or gradient is non-finite, and raises :class:`TrainingDiverged` naming it.
The copy costs one memcpy of the parameters per step, which is small next to a forward and
backward pass; it is what lets a student see *where* training broke.

Data batches are drawn without replacement and the data reshuffled every epoch; the last
partial batch of an epoch is dropped, so every step sees ``batch_size`` points.
"""
import sys
from dataclasses import dataclass, field

import numpy as np

from ._validate import as_batch, as_rng, check_positive_int
from .losses import nll_step, reverse_kl_step
from .optim import Adam, clip_grad_norm, packed_view

__all__ = ["fit", "History", "TrainingDiverged"]


@dataclass
class History:
    """What ``fit`` recorded, one entry per step.

    Attributes
    ----------
    objective : {"nll", "reverse_kl"}
    loss : list of float
        Mean NLL in nats (``"nll"``), or ``E_q[log q + U]`` (``"reverse_kl"``).
    grad_norm : list of float
        Global gradient norm before clipping.
    beta : list of float
        Reverse KL: the inverse temperature of each step (1 without annealing).
    layer_grad_norm : list of ndarray
        Per-layer gradient norms, shape (K,), every ``record_every`` steps (for diagnostics plots).
    layer_log_det : list of ndarray
        Per-layer mean log-det, shape (K,), every ``record_every`` steps.
    log_normalizer : float or None
        ``log Z`` of the target when known: ``loss + log Z`` is the KL in nats.
    """

    objective: str
    loss: list = field(default_factory=list)
    grad_norm: list = field(default_factory=list)
    layer_grad_norm: list = field(default_factory=list)
    layer_log_det: list = field(default_factory=list)
    record_steps: list = field(default_factory=list)
    beta: list = field(default_factory=list)
    log_normalizer: float = None

    @property
    def kl(self):
        """Reverse KL in nats per step (needs ``log_normalizer``), as an array; NaN at annealed
        steps (beta < 1), where the loss is not a KL to the target."""
        if self.log_normalizer is None:
            raise ValueError("History.kl: the target's log-normalizer is unknown.")
        kl = np.asarray(self.loss) + self.log_normalizer
        if self.beta:
            kl[np.asarray(self.beta) < 1.0] = np.nan
        return kl

    def __len__(self):
        return len(self.loss)


class TrainingDiverged(FloatingPointError):
    """Raised when a step produced a non-finite value; ``.history`` holds what was recorded and
    ``.layer`` the index of the first layer found non-finite (None if none was)."""

    def __init__(self, message, history, layer=None):
        super().__init__(message)
        self.history = history
        self.layer = layer


# Per-step bookkeeping works on flat arrays: a K = 32 planar flow has 96 parameter arrays of
# 1-2 numbers, and one NumPy call per array cost more than the training step itself.
def _flat_copy(arrays, flat):
    """All values of ``arrays`` in one new 1-D array; one memcpy when they are the views of one
    buffer ``flat`` (a Flow's parameters are, see ``optim.packed_view``)."""
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


def _layer_norms(flow, g_all):
    """Each layer's gradient norm, from ``g_all``: ``flow.grads()``'s entries joined in order."""
    sizes = [sum(g.size for g in grads.values()) for grads in flow.layer_grads()]
    layer_of_entry = np.repeat(np.arange(len(sizes)), sizes)
    return np.sqrt(np.bincount(layer_of_entry, weights=g_all * g_all, minlength=len(sizes)))


def _layer_log_dets(flow):
    """Each layer's mean log-det over the batch of its last pass (0 for a layer never run)."""
    lds = flow.layer_log_dets()
    if lds and all(ld is not None and ld.shape == lds[0].shape for ld in lds):
        return np.mean(np.stack(lds), axis=1)        # one call instead of one per layer
    return np.array([float(np.mean(ld)) if ld is not None else 0.0 for ld in lds])


def _find_bad_layer(flow, batch, direction):
    """Re-run the pass layer by layer; return ``(index, what)`` of the first non-finite value."""
    layers = list(enumerate(flow.layers))
    if direction == "inverse":
        layers = layers[::-1]
    p = batch
    with np.errstate(all="ignore"):
        for i, t in layers:
            try:
                p, ld = getattr(t, direction)(p)
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


def fit(flow, *, data=None, target=None, steps=1000, batch_size=256, optimizer=None, lr=1e-3,
        clip=None, anneal=None, rng=None, progress=None, record_every=10, callback=None):
    """Train ``flow`` in place and return its :class:`History`.

    Parameters
    ----------
    flow : Flow
    data : ndarray, shape (M, D), optional
        Training data for maximum likelihood (forward KL). Batches are drawn without replacement
        within an epoch, reshuffled every epoch.
    target : object with ``energy``/``energy_grad`` (e.g. ``datasets.energy("U1")``), optional
        Unnormalized target for reverse KL. Exactly one of ``data`` and ``target`` is given.
    steps : int
    batch_size : int
        Data batch size, or the number of base samples per reverse-KL step.
    optimizer : object with ``step(params, grads)``, optional
        Defaults to ``Adam(lr)``.
    lr : float
        Learning rate of the default optimizer.
    clip : float, optional
        Clip the global gradient norm to this value.
    anneal : int, optional
        Reverse KL only: train against ``beta U`` with ``beta = min(1, 0.01 + step / anneal)``
        (Rezende & Mohamed 2015), which keeps a flow from settling on one mode of a multimodal
        target. The recorded loss uses the current beta (see ``History.beta``).
    rng : numpy.random.Generator or int
        All randomness of training (batches, base samples) comes from here.
    progress : bool, optional
        Show a progress bar; default: only when stderr is a terminal.
    record_every : int
        Record per-layer diagnostics every this many steps.
    callback : callable, optional
        ``callback(step, loss, flow)`` after every step; return True to stop early.

    Returns
    -------
    History

    Raises
    ------
    TrainingDiverged
        When a loss or gradient becomes non-finite (or a step raises); the parameters are
        restored to those of the last step with a finite loss and gradient, and the message
        names the first layer found non-finite.
    """
    if (data is None) == (target is None):
        raise ValueError("fit: give exactly one of data= (maximum likelihood) or target= "
                         "(reverse KL), got " + ("both" if data is not None else "neither") + ".")
    steps = check_positive_int(steps, "steps")
    batch_size = check_positive_int(batch_size, "batch_size")
    record_every = check_positive_int(record_every, "record_every")
    if anneal is not None:
        if data is not None:
            raise ValueError("anneal: annealing applies to reverse KL (target=...), not to data.")
        anneal = check_positive_int(anneal, "anneal")
    if clip is not None and not (float(clip) > 0 and np.isfinite(clip)):
        raise ValueError(f"clip: expected a positive maximum gradient norm, got {clip!r}.")
    rng = as_rng(rng)
    optimizer = Adam(lr=lr) if optimizer is None else optimizer
    if progress is None:
        progress = sys.stderr.isatty()
    if data is not None:
        data = as_batch(data, flow.dim, "data")
        history = History("nll")
        direction = "inverse"
        order, pos = rng.permutation(data.shape[0]), 0
    else:
        history = History("reverse_kl")
        direction = "forward"
        log_z = getattr(target, "log_normalizer", None)
        try:
            history.log_normalizer = float(log_z()) if callable(log_z) else None
        except ValueError:   # e.g. no quadrature in D > 2: the KL is then reported up to log Z
            history.log_normalizer = None

    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=steps, desc=f"fit ({history.objective})", leave=False)
    params = flow.params()
    param_list = list(params.values())
    param_flat = packed_view(param_list)    # one buffer behind all of them (a Flow's): or None
    last_good = None   # the parameters of the last step whose loss and gradient were finite
    try:
        for step in range(steps):
            failure = None
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                if data is not None:
                    if pos + batch_size > data.shape[0]:
                        order, pos = rng.permutation(data.shape[0]), 0
                    batch = data[order[pos:pos + batch_size]]
                    pos += batch_size
                else:
                    state = rng.bit_generator.state
                try:
                    if data is not None:
                        loss = nll_step(flow, batch)
                    else:
                        beta = 1.0 if anneal is None else min(1.0, 0.01 + step / anneal)
                        loss = reverse_kl_step(flow, target, batch_size, rng, beta)
                    grads = flow.grads()
                    g_all = (np.concatenate(list(grads.values()), axis=None) if grads
                             else np.zeros(0))
                    grad_norm = float(np.sqrt(g_all @ g_all))
                except (FloatingPointError, RuntimeError, ValueError) as exc:
                    # e.g. a root-find that cannot converge once parameters have blown up, or an
                    # unconstrained layer whose update crossed its invertibility bound
                    failure, loss, grad_norm = exc, float("nan"), float("nan")
            if not (np.isfinite(loss) and np.isfinite(grad_norm)):
                if data is None:  # replay the same base samples to locate the layer
                    replay = np.random.Generator(type(rng.bit_generator)())
                    replay.bit_generator.state = state
                    batch = flow.base.sample(batch_size, replay)
                layer, what = _find_bad_layer(flow, batch, direction)
                if last_good is None:
                    restored = ("The starting parameters already give it, so nothing was trained "
                                "(check the initialization and the data)")
                else:
                    _restore(param_list, param_flat, last_good)
                    restored = (f"Parameters were restored to those of step {step - 1}, the last "
                                "with a finite loss and gradient (the optimizer's state was not)")
                where = ("no single layer was non-finite on its own (the loss itself overflowed)"
                         if layer is None else
                         f"the first non-finite value was in layer {layer} "
                         f"({flow[layer].name}): {what}")
                if failure is not None:
                    what_failed = f"raised {type(failure).__name__}: {failure}"
                elif not np.isfinite(loss):
                    what_failed = f"produced a non-finite loss ({loss!r})"
                else:
                    what_failed = (f"produced a non-finite gradient (norm {grad_norm!r}; the loss "
                                   f"was {loss:.4g})")
                raise TrainingDiverged(
                    f"fit: step {step} {what_failed}; {where}. {restored}. Try a smaller learning "
                    "rate, gradient clipping (clip=...), or a bound on the scales.",
                    history, layer) from failure
            if step % record_every == 0:
                history.record_steps.append(step)
                history.layer_grad_norm.append(_layer_norms(flow, g_all))
                history.layer_log_det.append(_layer_log_dets(flow))
            if clip is not None:
                clip_grad_norm(grads, clip)
            last_good = _flat_copy(param_list, param_flat)
            optimizer.step(params, grads)
            history.loss.append(loss)
            history.grad_norm.append(grad_norm)
            if data is None:
                history.beta.append(beta)
            if bar is not None:
                bar.update(1)
                if step % 10 == 0:
                    bar.set_postfix(loss=f"{loss:.4f}")
            if callback is not None and callback(step, loss, flow):
                break
    finally:
        if bar is not None:
            bar.close()
    return history
