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
partial batch of an epoch is dropped, so every step sees ``batch_size`` points. A model that
sees the same few thousand points for thousands of steps memorizes them (its training NLL falls
below the data's entropy while its NLL on fresh points rises), so ``fit`` can also draw
every batch fresh from a sampler (``data=callable(n, rng)``), re-randomize each batch
(``transform=``, e.g. a new dequantization of the images every step), watch a held-out set
(``validation=`` / ``validation_split=``) and stop early when its NLL stops improving, putting
the best parameters back. A learning-rate schedule (``schedule="cosine"``, see
:mod:`nfscratch.optim`) lets the last steps settle instead of rattling at the noise level of a
large constant rate. An exponential moving average of the parameters (``average=``) smooths
what the noise of the last steps leaves behind: validation, early stopping and the returned
flow then use the average instead of the last iterate.
"""
import sys
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

import numpy as np

from . import _train_report as report
from ._validate import (as_batch, as_context, as_rng, check_callable, check_choice, check_fraction,
                        check_positive_float, check_positive_int)
from .losses import nll_step, reverse_kl_step
from .optim import Adam, Cosine, Optimizer, Schedule, as_schedule, clip_grad_norm

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
    lr : list of float
        The learning rate of each step (when the optimizer has an ``lr``).
    val_loss, val_steps : list of float, list of int
        Mean NLL of the validation set (nats) and the step whose parameters gave it: every
        ``record_every`` steps, and once more after the last update (step ``len(loss)``).
    best_step : int or None
        With ``patience``: the entry of ``val_steps`` with the lowest validation NLL, whose
        parameters ``fit`` put back at the end.
    stopped_early : bool
        True when ``patience`` evaluations in a row did not improve on the best.
    average : float or None
        The decay ``d`` of ``fit(average=d)``: ``val_loss``, ``best_step`` and the parameters
        the flow ends with are then those of the parameter average. None: no averaging.
    """

    objective: str
    loss: list = field(default_factory=list)
    grad_norm: list = field(default_factory=list)
    layer_grad_norm: list = field(default_factory=list)
    layer_log_det: list = field(default_factory=list)
    record_steps: list = field(default_factory=list)
    beta: list = field(default_factory=list)
    log_normalizer: float = None
    lr: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    val_steps: list = field(default_factory=list)
    best_step: int = None
    stopped_early: bool = False
    average: float = None

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
        schedule=None, clip=None, anneal=None, transform=None, validation=None,
        validation_split=None, patience=None, average=None, rng=None, progress=None,
        record_every=10, callback=None, context=None):
    """Train ``flow`` in place and return its :class:`History`.

    Parameters
    ----------
    flow : Flow
    data : ndarray of shape (M, D), or callable, optional
        Maximum likelihood (forward KL) on data: a fixed array, whose batches are drawn without
        replacement within an epoch and reshuffled every epoch, or a sampler
        ``data(n, rng) -> (n, D)`` called for a fresh batch at every step (e.g.
        ``lambda n, rng: datasets.two_moons(n, rng, noise=0.1)``), which cannot be memorized.
    target : Energy or str, optional
        Unnormalized target for reverse KL: an object with ``energy``/``energy_grad`` (e.g.
        ``datasets.energy("U1")``) or the name of a built-in energy (``"U1"`` .. ``"U4"``).
        Exactly one of ``data`` and ``target`` is given.
    steps : int
    batch_size : int
        Data batch size, or the number of base samples per reverse-KL step.
    optimizer : object with ``step(params, grads)``, optional
        Defaults to ``Adam(lr)`` (following ``schedule``).
    lr : float
        Learning rate of the default optimizer; the peak rate of ``schedule="cosine"``.
    schedule : {"constant", "cosine"} or optim.Schedule, optional
        ``"cosine"`` decays ``lr`` to 0 over ``steps`` (``optim.Cosine(lr, steps)``); a
        schedule object (e.g. ``optim.Warmup(optim.Cosine(2e-3, steps), 200)``) is used as
        given. With ``optimizer=`` (an ``optim`` optimizer) it replaces that optimizer's rate,
        and ``"cosine"`` starts from that rate. Default: the constant ``lr``.
    clip : float, optional
        Clip the global gradient norm to this value.
    anneal : int, optional
        Reverse KL only: train against ``beta U`` with ``beta = min(1, 0.01 + step / anneal)``
        (Rezende & Mohamed 2015), which keeps a flow from settling on one mode of a multimodal
        target. The recorded loss uses the current beta (see ``History.beta``).
    transform : callable, optional
        Data only: ``transform(batch, rng) -> batch`` applied to every training batch, e.g.
        ``datasets.dequantize`` to add new uniform noise to integer pixels at every step. The
        validation set goes through it once, at the start.
    validation : ndarray, shape (V, D), optional
        Held-out points whose mean NLL is recorded in ``History.val_loss`` every
        ``record_every`` steps (and after the last step).
    validation_split : float in (0, 1), optional
        Instead of ``validation``: hold out this fraction of a fixed ``data`` array (chosen at
        random with ``rng``) and train on the rest.
    patience : int, optional
        Early stopping: stop after this many validation evaluations in a row without a new
        lowest validation NLL, and put back the parameters that gave the lowest (also when
        training runs to the end). Needs a validation set.
    average : float in (0, 1), optional
        Keep an exponential moving average of the parameters, ``θ̄ ← d θ̄ + (1 − d) θ`` after
        every update with ``d = average`` (e.g. 0.995: roughly the last ``1 / (1 − d)`` = 200
        steps), and use it instead of the last iterate: validation evaluates (and early
        stopping keeps) the averaged parameters, and the flow ends with the best average (by
        validation, with ``patience``) or else the final one. Why: near a minimum, stochastic
        gradient steps rattle around it at the noise level of the learning rate, and the
        average of the iterates sits nearer the minimum than any one of them (Polyak &
        Juditsky 1992; the moving average forgets the early, distant iterates). Training itself
        continues from the raw parameters. The average starts from the parameters of the first
        step's pass, so after any data-dependent initialization (ActNorm). When training
        diverges the flow holds the last good trained parameters, as without averaging.
    rng : numpy.random.Generator or int
        All randomness of training (batches, samplers, transforms, base samples) comes from
        here.
    progress : bool, optional
        Show a progress bar; default: only when stderr is a terminal.
    record_every : int
        Record per-layer diagnostics, and evaluate the validation set, every this many steps.
    callback : callable, optional
        ``callback(step, loss, flow)`` after every step; return True to stop early.
    context : ndarray, shape (M, C), optional
        A conditional flow (``flow.context_dim = C > 0``) learns ``q(x | y)`` by maximum
        likelihood on pairs: with a fixed ``data`` array, ``context[m]`` is the condition of
        ``data[m]`` and batches (and ``validation_split``) keep the pairs together. A sampler
        returns the pairs itself, ``data(n, rng) -> (x (n, D), y (n, C))``, and ``context`` is
        not given; ``validation`` is then the pair ``(x, y)`` too. ``transform`` sees only ``x``.
        (Reverse KL of a conditional flow is not provided.)

    Returns
    -------
    History

    Raises
    ------
    TrainingDiverged
        When a loss, gradient or parameter becomes non-finite (or a step raises); the parameters
        are restored to those of the last step with a finite loss and gradient, and the message
        names the first layer found non-finite.

    Examples
    --------
    >>> from nfscratch import datasets, models
    >>> flow = models.realnvp(2, n_layers=4, hidden=[16], rng=0)
    >>> moons = lambda n, rng: datasets.two_moons(n, rng, noise=0.1)
    >>> history = fit(flow, data=moons, steps=200, lr=5e-3, schedule="cosine",
    ...               validation=moons(1000, 1), record_every=50, rng=0)
    >>> history.val_steps, history.val_loss[-1] < history.val_loss[0]
    ([0, 50, 100, 150, 200], True)
    """
    objective = _Objective(flow, data, target, check_positive_int(batch_size, "batch_size"),
                           as_rng(rng), anneal, check_callable(transform, "transform"), context)
    steps = check_positive_int(steps, "steps")
    record_every = check_positive_int(record_every, "record_every")
    if clip is not None:
        clip = check_positive_float(clip, "clip", what="a positive maximum gradient norm")
    callback = check_callable(callback, "callback")
    val = objective.validation_set(validation, validation_split)
    if patience is not None:
        patience = check_positive_int(patience, "patience")
        if val is None:
            raise ValueError("patience: early stopping watches a validation set; give "
                             "validation= (held-out points) or validation_split= (a fraction).")
    # a string schedule starts from the given optimizer's rate, else from lr
    schedule = _schedule(schedule, optimizer.lr if isinstance(optimizer, Optimizer) else lr, steps)
    if optimizer is None:
        optimizer = Adam(lr=lr if schedule is None else schedule)
    elif not callable(getattr(optimizer, "step", None)):
        raise TypeError(f"optimizer: expected an object with step(params, grads), e.g. "
                        f"optim.Adam(lr), got {type(optimizer).__name__}.")
    elif schedule is not None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"schedule: only an nfscratch.optim optimizer can follow it; give "
                            f"{type(optimizer).__name__} its own learning-rate rule instead.")
        optimizer.lr = schedule
    params = flow.params()
    average = None if average is None else _Average(params, average)
    history = History(objective.name, log_normalizer=objective.log_normalizer(),
                      average=None if average is None else average.decay)
    guard = report.Guard(params)
    early = None if patience is None else _EarlyStopping(params, patience)
    has_lr = hasattr(optimizer, "lr")
    with _progress_bar(progress, steps, history.objective) as bar:
        for step in range(steps):
            loss, grads, g_all, failure = objective.step(step)
            with np.errstate(over="ignore"):    # an overflowing norm is reported just below
                grad_norm = float(np.sqrt(g_all @ g_all)) if failure is None else float("nan")
            if not (np.isfinite(loss) and np.isfinite(grad_norm)):
                _diverged(objective, guard, history, step,
                          report.describe_failure(failure, loss, grad_norm), failure)
            if average is not None:
                average.take_in(step)               # the parameters after `step` updates
            if step % record_every == 0:
                history.record_steps.append(step)
                history.layer_grad_norm.append(_layer_norms(flow, g_all))
                history.layer_log_det.append(_layer_log_dets(flow))
                if val is not None and _validate(flow, val, step, history, early, average):
                    history.stopped_early = True
                    break
            if clip is not None:
                clip_grad_norm(grads, clip)
            guard.save(step)
            if has_lr:
                history.lr.append(float(optimizer.lr))
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
                    shown = {"loss": f"{loss:.4f}"}
                    if history.val_loss:
                        shown["val"] = f"{history.val_loss[-1]:.4f}"
                    bar.set_postfix(shown)
            if callback is not None and callback(step, loss, flow):
                break
    # the last update has not been tried yet: its parameters must give a finite loss too
    loss, _, _, failure = objective.step(step, again=True)
    if not np.isfinite(loss):
        _diverged(objective, guard, history, step, "left parameters whose next pass "
                  + report.describe_failure(failure, loss, None), failure)
    if average is not None:
        average.take_in(len(history.loss))  # after the last update (a no-op if stopped early)
    if val is not None and not history.stopped_early:
        _validate(flow, val, step + 1, history, early, average)
    if average is not None:
        average.mean.put_back()         # the final average; early stopping's best replaces it
    if early is not None and early.best.saved is not None:   # None: no evaluation was finite
        early.best.put_back()
        history.best_step = early.best.saved_step
    return history


def _schedule(schedule, lr, steps):
    """None (the constant ``lr``) or the Schedule that ``fit(schedule=...)`` names."""
    if schedule is None or isinstance(schedule, Schedule):
        return schedule
    if isinstance(schedule, str):
        check_choice(schedule, "schedule", ("constant", "cosine"))
        return as_schedule(lr) if schedule == "constant" else Cosine(lr, steps)
    raise TypeError(f"schedule: expected 'constant', 'cosine' or an optim.Schedule (e.g. "
                    f"optim.Cosine(lr, steps)), got {schedule!r} ({type(schedule).__name__}).")


def _validate(flow, val, step, history, early, average=None):
    """Record the validation NLL of the current parameters (of their ``average`` when given:
    early stopping then keeps the average); True when early stopping is due.

    ``val`` is ``(x, context)``, the context None for an unconditional flow."""
    x, y = val
    chunk = lambda a, i: None if a is None else a[i:i + _VAL_CHUNK]
    with nullcontext() if average is None else average.swapped_in():
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            val_loss = -float(np.mean(np.concatenate(
                [flow.log_prob(x[i:i + _VAL_CHUNK], chunk(y, i)) for i in range(0, len(x), _VAL_CHUNK)])))
        history.val_loss.append(val_loss)
        history.val_steps.append(step)
        return early is not None and early.update(val_loss, step)


class _EarlyStopping:
    """The parameters with the lowest validation NLL so far, and how long ago that was."""

    def __init__(self, params, patience):
        self.best = report.Guard(params)        # its copy of the parameters, and their step
        self.patience, self.best_loss, self.since = patience, np.inf, 0

    def update(self, val_loss, step):
        """Keep the parameters if ``val_loss`` is a new best; True once ``patience`` runs out."""
        if val_loss < self.best_loss:           # a NaN never counts as better
            self.best.save(step)
            self.best_loss, self.since = val_loss, 0
            return False
        self.since += 1
        return self.since >= self.patience


class _Average:
    """An exponential moving average of the parameters, ``θ̄ ← d θ̄ + (1 − d) θ``.

    It takes in the parameters after every update, once they have given a finite loss and
    gradient (so a diverging step never enters it), starting from those of the first step's
    pass, i.e. after any data-dependent initialization."""

    def __init__(self, params, decay):
        self.decay = check_fraction(decay, "average", open_below=True, what=(
            "the decay d of the parameter average, a number in (0, 1) such as 0.995 (about the "
            "last 200 steps)"))                # 0 would be the last iterate itself, 1 the start
        self.mean = report.Guard(params)       # its copy is θ̄, put_back() writes θ̄ in
        self.trained = report.Guard(params)    # the trained θ, kept while θ̄ is swapped in
        self.updates = None                    # how many updates the latest θ taken in had had

    def take_in(self, updates):
        """Fold the live parameters, those after ``updates`` updates, into θ̄ (once each)."""
        if updates == self.updates:
            return
        self.trained.save(updates)
        if self.mean.saved is None:
            self.mean.save(updates)
        else:
            self.mean.saved *= self.decay
            self.mean.saved += (1.0 - self.decay) * self.trained.saved
        self.updates = updates

    @contextmanager
    def swapped_in(self):
        """θ̄ in the flow for the ``with`` block, the trained parameters back after it."""
        self.trained.save(self.updates)
        self.mean.put_back()
        try:
            yield
        finally:
            self.trained.put_back()


_VAL_CHUNK = 8192      # validation points per log_prob call: bounded temporaries


def _diverged(objective, guard, history, step, what_failed, failure):
    """Find the bad layer (with the bad parameters), restore the good ones, raise."""
    layer, message = report.diagnose(objective.flow, objective.last_input(), objective.direction,
                                     step, what_failed, objective.batch_context)
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

    def __init__(self, flow, data, target, batch_size, rng, anneal, transform, context=None):
        self.flow, self.rng, self.batch_size = _check_flow(flow), rng, batch_size
        if (data is None) == (target is None):
            raise ValueError("fit: give exactly one of data= (maximum likelihood) or target= "
                             "(reverse KL), got " + ("both" if data is not None else "neither") + ".")
        self.beta, self.anneal, self.transform = None, anneal, transform
        self.sampler, self.data, self.context = None, None, None
        self.conditional = flow.context_dim > 0
        if data is not None:
            if anneal is not None:
                raise ValueError("anneal: annealing applies to reverse KL (target=...), not to data.")
            self.name, self.direction, self.target = "nll", "inverse", None
            if callable(data):
                if context is not None:
                    raise ValueError("context: with a sampler as data, the sampler returns the "
                                     "pairs itself, data(n, rng) -> (x, context); drop context=.")
                self.sampler = data
                self._draw(batch_size, "data(n, rng)")     # fails now, not at step 0 of a bar
            else:
                self.data = as_batch(data, flow.dim, "data")
                self.context = as_context(context, flow.context_dim, self.data.shape[0],
                                          "this Flow")
                self.order, self.pos = rng.permutation(self.data.shape[0]), 0
        elif self.conditional:
            raise ValueError("target: reverse KL (target=...) of a conditional flow is not "
                             "provided; train a conditional flow on data with its context.")
        elif context is not None:
            raise ValueError("context: goes with data= (pairs for a conditional flow), not with "
                             "target= (reverse KL).")
        else:
            if anneal is not None:
                self.anneal = check_positive_int(anneal, "anneal")
            if transform is not None:
                raise ValueError("transform: a per-batch transform applies to data, not to "
                                 "reverse KL (target=...), whose batches are base samples.")
            self.name, self.direction, self.target = "reverse_kl", "forward", _check_target(target, flow)
        self.batch, self.batch_context, self.state = None, None, None

    def _draw(self, n, what):
        """A fresh batch from the sampler, checked: (n, D) finite floats, and for a conditional
        flow its context (n, C), else None."""
        out = self.sampler(n, self.rng)
        if self.conditional:
            if not (isinstance(out, tuple) and len(out) == 2):
                raise TypeError(f"{what}: a conditional flow learns from pairs; expected the "
                                f"sampler to return (x, context), got {type(out).__name__}.")
            out, y = out
        batch = as_batch(out, self.flow.dim, what)
        if batch.shape[0] != n:
            raise ValueError(f"{what}: the sampler was asked for n = {n} points and returned "
                             f"{batch.shape[0]}.")
        return batch, (as_context(y, self.flow.context_dim, n, "this Flow")
                       if self.conditional else None)

    def _transformed(self, batch, what):
        if self.transform is None:
            return batch
        out = as_batch(self.transform(batch, self.rng), self.flow.dim, what)
        if out.shape != batch.shape:
            raise ValueError(f"{what}: expected the batch's shape {batch.shape}, got {out.shape}.")
        return out

    def validation_set(self, validation, split):
        """The validation points (transformed once), or None; a split shrinks ``self.data``."""
        if validation is None and split is None:
            return None
        val_context = None
        if self.target is not None:
            raise ValueError("validation: a validation NLL needs data (maximum likelihood); "
                             "for reverse KL (target=...) evaluate the KL instead.")
        if validation is not None and split is not None:
            raise ValueError("validation_split: give either validation= (held-out points) or "
                             "validation_split= (a fraction of data), not both.")
        if split is not None:
            split = check_fraction(split, "validation_split")
            if self.data is None or split == 0.0:
                raise ValueError(f"validation_split: expected a fraction in (0, 1) of a fixed data "
                                 f"array, got {split!r}" + (" with a sampler as data; give "
                                 "validation= points instead" if self.data is None else "") + ".")
            m = self.data.shape[0]
            n_val = int(round(split * m))
            if not 1 <= n_val <= m - self.batch_size:
                raise ValueError(f"validation_split: {split!r} of {m} points leaves {n_val} for "
                                 f"validation and {m - n_val} for training; both need at least "
                                 f"1 and training at least batch_size = {self.batch_size}.")
            order = self.rng.permutation(m)
            validation = self.data[order[:n_val]]
            self.data = np.ascontiguousarray(self.data[order[n_val:]])
            if self.context is not None:
                val_context = self.context[order[:n_val]]
                self.context = np.ascontiguousarray(self.context[order[n_val:]])
            self.order, self.pos = self.rng.permutation(m - n_val), 0
        else:
            if self.conditional:
                if not (isinstance(validation, tuple) and len(validation) == 2):
                    raise TypeError(f"validation: a conditional flow is validated on pairs; "
                                    f"expected (x, context), got {type(validation).__name__}.")
                validation, val_context = validation
            validation = as_batch(validation, self.flow.dim, "validation")
            val_context = as_context(val_context, self.flow.context_dim, validation.shape[0],
                                     "this Flow")
        return self._transformed(validation, "transform(validation, rng)"), val_context

    def log_normalizer(self):
        log_z = getattr(self.target, "log_normalizer", None)
        try:
            return float(log_z()) if callable(log_z) else None
        except ValueError:   # e.g. no quadrature in D > 2: the KL is then reported up to log Z
            return None

    def step(self, step, again=False):
        """``(loss, grads, g_all, failure)`` of one step (of the last one again if ``again``)."""
        if self.target is None:
            if not again and self.sampler is not None:
                batch, self.batch_context = self._draw(self.batch_size, "data(n, rng)")
                self.batch = self._transformed(batch, "transform(batch, rng)")
            elif not again:
                if self.pos + self.batch_size > self.data.shape[0]:
                    self.order, self.pos = self.rng.permutation(self.data.shape[0]), 0
                rows = self.order[self.pos:self.pos + self.batch_size]
                self.batch = self._transformed(self.data[rows], "transform(batch, rng)")
                self.batch_context = None if self.context is None else self.context[rows]
                self.pos += self.batch_size
        else:
            if not again:
                self.state = self.rng.bit_generator.state
                self.beta = 1.0 if self.anneal is None else min(1.0, 0.01 + step / self.anneal)
        try:
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                if self.target is None:
                    loss = nll_step(self.flow, self.batch, self.batch_context)
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
