r"""The training loop: batches, a step of either objective, the optimizer, a NaN guard.

``fit`` trains a :class:`~nfscratch.flow.Flow` by maximum likelihood on data (``data=...``) or by
reverse KL against an unnormalized target (``target=...``). Before each optimizer update it keeps
a copy of the parameters that just gave a finite loss and gradient. Training has diverged when a
step's loss or gradient comes out non-finite (or the step raises), when an update makes a
parameter non-finite, or when the parameters after the last update give a non-finite loss (``fit``
evaluates them once more at the end): then it puts the copy back, finds the first layer whose
parameters, output, log-det or gradient are non-finite, and raises :class:`TrainingDiverged`
naming it (``nfscratch/_train_report.py``). The copy costs one memcpy of the parameters per step,
small next to a forward and backward pass; it is what lets a student see *where* training broke.

Data batches are drawn without replacement and the data reshuffled every epoch; the last
partial batch of an epoch is dropped, so every step sees ``batch_size`` points.
"""
import sys
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np

from . import _train_report as report
from ._validate import (as_batch, as_rng, check_callable, check_positive_float,
                        check_positive_int)
from .losses import nll_step, reverse_kl_step
from .optim import Adam, clip_grad_norm

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


def fit(flow, *, data=None, target=None, steps=1000, batch_size=256, optimizer=None, lr=1e-3,
        clip=None, anneal=None, rng=None, progress=None, record_every=10, callback=None):
    """Train ``flow`` in place and return its :class:`History`.

    Parameters
    ----------
    flow : Flow
    data : ndarray, shape (M, D), optional
        Training data for maximum likelihood (forward KL). Batches are drawn without replacement
        within an epoch, reshuffled every epoch.
    target : Energy or str, optional
        Unnormalized target for reverse KL: an object with ``energy``/``energy_grad`` (e.g.
        ``datasets.energy("U1")``) or the name of a built-in energy (``"U1"`` .. ``"U4"``).
        Exactly one of ``data`` and ``target`` is given.
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
        When a loss, gradient or parameter becomes non-finite (or a step raises); the parameters
        are restored to those of the last step with a finite loss and gradient, and the message
        names the first layer found non-finite.
    """
    objective = _Objective(flow, data, target, check_positive_int(batch_size, "batch_size"),
                           as_rng(rng), anneal)
    steps = check_positive_int(steps, "steps")
    record_every = check_positive_int(record_every, "record_every")
    if clip is not None:
        clip = check_positive_float(clip, "clip", what="a positive maximum gradient norm")
    callback = check_callable(callback, "callback")
    optimizer = Adam(lr=lr) if optimizer is None else optimizer
    if not callable(getattr(optimizer, "step", None)):
        raise TypeError(f"optimizer: expected an object with step(params, grads), e.g. "
                        f"optim.Adam(lr), got {type(optimizer).__name__}.")
    history = History(objective.name, log_normalizer=objective.log_normalizer())
    params = flow.params()
    guard = report.Guard(params)
    with _progress_bar(progress, steps, history.objective) as bar:
        for step in range(steps):
            loss, grads, g_all, failure = objective.step(step)
            grad_norm = float(np.sqrt(g_all @ g_all)) if failure is None else float("nan")
            if not (np.isfinite(loss) and np.isfinite(grad_norm)):
                _diverged(objective, guard, history, step,
                          report.describe_failure(failure, loss, grad_norm), failure)
            if step % record_every == 0:
                history.record_steps.append(step)
                history.layer_grad_norm.append(_layer_norms(flow, g_all))
                history.layer_log_det.append(_layer_log_dets(flow))
            if clip is not None:
                clip_grad_norm(grads, clip)
            guard.save(step)
            optimizer.step(params, grads)
            history.loss.append(loss)
            history.grad_norm.append(grad_norm)
            if objective.beta is not None:
                history.beta.append(objective.beta)
            bad = guard.first_nonfinite()
            if bad is not None:
                _diverged(objective, guard, history, step,
                          f"made parameter {bad!r} non-finite in its update", None)
            if bar is not None:
                bar.update(1)
                if step % 10 == 0:
                    bar.set_postfix(loss=f"{loss:.4f}")
            if callback is not None and callback(step, loss, flow):
                break
    # the last update has not been tried yet: its parameters must give a finite loss too
    loss, _, _, failure = objective.step(step, again=True)
    if not np.isfinite(loss):
        _diverged(objective, guard, history, step, "left parameters whose next pass "
                  + report.describe_failure(failure, loss, None), failure)
    return history


def _diverged(objective, guard, history, step, what_failed, failure):
    """Find the bad layer (with the bad parameters), restore the good ones, raise."""
    layer, message = report.diagnose(objective.flow, objective.last_input(), objective.direction,
                                     step, what_failed)
    restored = guard.restore()
    raise TrainingDiverged(f"{message}. {restored}. Try a smaller learning rate, gradient "
                           "clipping (clip=...), or a bound on the scales.", history,
                           layer) from failure


def _progress_bar(progress, steps, objective):
    if progress is None:
        progress = sys.stderr.isatty()
    if not progress:
        return nullcontext(None)
    from tqdm.auto import tqdm
    return tqdm(total=steps, desc=f"fit ({objective})", leave=False)


class _Objective:
    """One loss-and-gradient evaluation per step, on a fresh batch: maximum likelihood on data
    (batches without replacement, reshuffled every epoch, the last partial batch dropped) or
    reverse KL on fresh base samples. Remembers what the last step used, so that the same pass
    can be run again: at the end of training, and to find a bad layer."""

    def __init__(self, flow, data, target, batch_size, rng, anneal):
        self.flow, self.rng, self.batch_size = _check_flow(flow), rng, batch_size
        if (data is None) == (target is None):
            raise ValueError("fit: give exactly one of data= (maximum likelihood) or target= "
                             "(reverse KL), got " + ("both" if data is not None else "neither") + ".")
        self.beta, self.anneal = None, anneal
        if data is not None:
            if anneal is not None:
                raise ValueError("anneal: annealing applies to reverse KL (target=...), not to data.")
            self.name, self.direction, self.target = "nll", "inverse", None
            self.data = as_batch(data, flow.dim, "data")
            self.order, self.pos = rng.permutation(self.data.shape[0]), 0
        else:
            if anneal is not None:
                self.anneal = check_positive_int(anneal, "anneal")
            self.name, self.direction, self.target = "reverse_kl", "forward", _check_target(target, flow)
        self.batch, self.state = None, None

    def log_normalizer(self):
        log_z = getattr(self.target, "log_normalizer", None)
        try:
            return float(log_z()) if callable(log_z) else None
        except ValueError:   # e.g. no quadrature in D > 2: the KL is then reported up to log Z
            return None

    def step(self, step, again=False):
        """``(loss, grads, g_all, failure)`` of one step (of the last one again if ``again``)."""
        if self.target is None:
            if not again:
                if self.pos + self.batch_size > self.data.shape[0]:
                    self.order, self.pos = self.rng.permutation(self.data.shape[0]), 0
                self.batch = self.data[self.order[self.pos:self.pos + self.batch_size]]
                self.pos += self.batch_size
        else:
            if not again:
                self.state = self.rng.bit_generator.state
                self.beta = 1.0 if self.anneal is None else min(1.0, 0.01 + step / self.anneal)
        try:
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                if self.target is None:
                    loss = nll_step(self.flow, self.batch)
                else:
                    loss = reverse_kl_step(self.flow, self.target, self.batch_size,
                                           self._replay() if again else self.rng, self.beta)
                grads = self.flow.grads()
                g_all = np.concatenate(list(grads.values()), axis=None) if grads else np.zeros(0)
        except (FloatingPointError, RuntimeError, ValueError) as exc:
            # e.g. a root-find that cannot converge once parameters have blown up, or an
            # unconstrained layer whose update crossed its invertibility bound
            return float("nan"), None, None, exc
        return loss, grads, g_all, None

    def _replay(self):
        """A generator that gives the base samples of the last step again."""
        replay = np.random.Generator(type(self.rng.bit_generator)())
        replay.bit_generator.state = self.state
        return replay

    def last_input(self):
        """The batch the last step's pass started from (data, or the base samples)."""
        if self.target is None:
            return self.batch
        return self.flow.base.sample(self.batch_size, self._replay())


def _check_flow(flow):
    from .flow import Flow
    if not isinstance(flow, Flow):
        raise TypeError(f"flow: expected an nfscratch.Flow (e.g. models.realnvp(2, 4)), got "
                        f"{type(flow).__name__}.")
    return flow


def _check_target(target, flow):
    """An energy object, or the name of a built-in one; its dimension must be the flow's."""
    if isinstance(target, str):
        from .datasets import ENERGIES, energy
        if target.upper() not in ENERGIES:
            raise ValueError(f"target: expected an energy object or the name of a built-in one "
                             f"({', '.join(ENERGIES)}), got {target!r}.")
        target = energy(target)
    if not (callable(getattr(target, "energy", None)) and callable(getattr(target, "energy_grad", None))):
        raise TypeError(f"target: expected an energy with energy(x) and energy_grad(x) (e.g. "
                        f"datasets.energy('U1')) or the name of a built-in one, got "
                        f"{type(target).__name__}.")
    dim = getattr(target, "dim", flow.dim)
    if dim != flow.dim:
        raise ValueError(f"target: the energy {getattr(target, 'name', '')!r} is a density on "
                         f"R^{dim}, but the flow maps R^{flow.dim}: build the flow with dim={dim}.")
    return target


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
