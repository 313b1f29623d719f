r"""Optimizers that update parameter arrays in place (SGD with momentum, Adam), and the
learning-rate schedules they follow.

Parameters and gradients are passed as dicts keyed by name -- exactly ``flow.params()`` and
``flow.grads()`` -- and the optimizer keeps its state (velocity, moment estimates, step count)
per name, so the same two dicts can be passed at every step::

    opt = Adam(lr=1e-3)
    for batch in batches:
        ...                                   # forward, loss, backward fill flow's grads
        clip_grad_norm(flow.grads(), 10.0)    # optional
        opt.step(flow.params(), flow.grads())

The update is written **into** each parameter array (``p -= ...``), never by rebinding, because
the transforms and the flow hold references to those arrays.

Every step validates first and updates second: matching names and shapes, float64 parameters,
finite gradients. A NaN or inf gradient raises ``FloatingPointError`` naming the parameter, and
no parameter is changed by a step that raises.

Learning-rate schedules
-----------------------
The learning rate of an optimizer is a schedule :math:`\eta(t)` of its step count
:math:`t = 0, 1, \ldots` (the number of ``step`` calls so far); a plain float is the constant
schedule. With a peak rate :math:`\eta_0`:

.. math::

    \text{constant:}\quad & \eta(t) = \eta_0 \\
    \text{cosine decay over } T \text{ steps to } \eta_T:\quad &
        \eta(t) = \eta_T + \tfrac12 (\eta_0 - \eta_T)\,\bigl(1 + \cos(\pi \min(t, T) / T)\bigr) \\
    \text{linear warm-up over } W \text{ steps of a schedule } s:\quad &
        \eta(t) = s(t)\, \min\bigl(1, (t + 1) / W\bigr)

Cosine decay (Loshchilov & Hutter 2017) lets the early steps move fast and the late ones settle
into a minimum instead of rattling around it at the noise level of a large constant rate;
warm-up keeps the first steps small while Adam's second-moment estimate is still poor. The
schedules compose: ``Warmup(Cosine(2e-3, 10_000), 200)``.

State round-trips through plain values: ``state_dict()`` is a flat dict of str -> float, int,
str or ndarray (``"m/0.u"``-style keys for per-parameter arrays), which ``np.savez`` can write
and ``np.load(..., allow_pickle=False)`` can read back -- no pickle.

References
----------
Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015, arXiv:1412.6980.
Sutskever, Martens, Dahl & Hinton, "On the importance of initialization and momentum in deep
learning", ICML 2013.
Loshchilov & Hutter, "SGDR: Stochastic Gradient Descent with Warm Restarts", ICLR 2017,
arXiv:1608.03983 (cosine decay).
Goyal et al., "Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour", 2017,
arXiv:1706.02677 (linear warm-up).
"""
import math
from collections.abc import Mapping

import numpy as np

from . import _optim_fast as _fast
from ._validate import (check_fraction, check_nonneg_float, check_positive_float,
                        check_positive_int)
from .config import use_kernels

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "adam_update", "clip_grad_norm", "cosine_lr", "warmup_lr",
           "Schedule", "Constant", "Cosine", "Warmup", "as_schedule"]


# -- learning-rate schedules: the formulas, then the objects ------------------------------------
def cosine_lr(step, lr, steps, final_lr=0.0):
    r"""Cosine decay from ``lr`` at step 0 to ``final_lr`` at step ``steps`` (then flat).

    .. math:: \eta(t) = \eta_T + \tfrac12 (\eta_0 - \eta_T)\,(1 + \cos(\pi \min(t, T) / T))

    Examples
    --------
    >>> cosine_lr(0, 1.0, 100), cosine_lr(50, 1.0, 100), cosine_lr(100, 1.0, 100, 0.1)
    (1.0, 0.5, 0.1)
    """
    progress = min(step, steps) / steps
    return final_lr + 0.5 * (lr - final_lr) * (1.0 + math.cos(math.pi * progress))


def warmup_lr(step, lr, warmup):
    r"""``lr`` scaled by the linear warm-up factor :math:`\min(1, (t + 1) / W)`.

    Step 0 already moves (by ``lr / W``); from step ``W - 1`` on the factor is 1.

    Examples
    --------
    >>> warmup_lr(0, 1.0, 4), warmup_lr(1, 1.0, 4), warmup_lr(3, 1.0, 4), warmup_lr(99, 1.0, 4)
    (0.25, 0.5, 1.0, 1.0)
    """
    return lr * min(1.0, (step + 1) / warmup)


class Schedule:
    """A learning rate as a function of the optimizer's step count: ``schedule(step) -> lr``."""

    def __call__(self, step):
        if isinstance(step, (bool, np.bool_)) or not isinstance(step, (int, np.integer)) or step < 0:
            raise ValueError(f"step: expected a non-negative integer, got {step!r}.")
        return self._lr(int(step))

    def _lr(self, step):  # pragma: no cover - abstract
        raise NotImplementedError


class Constant(Schedule):
    """The same learning rate at every step.

    >>> Constant(1e-3)(0), Constant(1e-3)(10_000)
    (0.001, 0.001)
    """

    def __init__(self, lr):
        self.lr = check_positive_float(lr, "lr")

    def _lr(self, step):
        return self.lr

    def __repr__(self):
        return f"Constant({self.lr!r})"


class Cosine(Schedule):
    """Cosine decay from ``lr`` to ``final_lr`` over ``steps`` steps (:func:`cosine_lr`).

    Parameters
    ----------
    lr : float
        The rate at step 0 (positive).
    steps : int
        The step at which the decay ends; later steps stay at ``final_lr``.
    final_lr : float, default 0.0
        The floor, ``0 <= final_lr <= lr``. Step ``steps`` itself is never taken by
        ``fit(steps=steps)`` (its last step is ``steps - 1``), so a floor of 0 is safe.

    Examples
    --------
    >>> s = Cosine(1e-2, 1000, final_lr=1e-4)
    >>> s(0), round(s(500), 6), s(1000), s(5000)
    (0.01, 0.00505, 0.0001, 0.0001)
    """

    def __init__(self, lr, steps, final_lr=0.0):
        self.lr = check_positive_float(lr, "lr")
        self.steps = check_positive_int(steps, "steps")
        self.final_lr = check_nonneg_float(final_lr, "final_lr")
        if self.final_lr > self.lr:
            raise ValueError(f"final_lr: expected a floor at most lr = {self.lr!r}, got "
                             f"{final_lr!r}.")

    def _lr(self, step):
        return cosine_lr(step, self.lr, self.steps, self.final_lr)

    def __repr__(self):
        return f"Cosine({self.lr!r}, {self.steps!r}, final_lr={self.final_lr!r})"


class Warmup(Schedule):
    """Linear warm-up over ``warmup`` steps in front of another schedule (:func:`warmup_lr`).

    Parameters
    ----------
    schedule : Schedule or float
        The schedule being warmed up (a float is a constant rate).
    warmup : int
        Number of warm-up steps ``W``.

    Examples
    --------
    >>> s = Warmup(Cosine(1.0, 100), 10)
    >>> s(0), s(9), s(50)
    (0.1, 0.9801468428384715, 0.5)
    """

    def __init__(self, schedule, warmup):
        self.schedule = as_schedule(schedule, "schedule")
        self.warmup = check_positive_int(warmup, "warmup")

    def _lr(self, step):
        return warmup_lr(step, self.schedule(step), self.warmup)

    def __repr__(self):
        return f"Warmup({self.schedule!r}, {self.warmup!r})"


def as_schedule(lr, name="lr"):
    """A :class:`Schedule` from a schedule or a positive float (the constant schedule)."""
    if isinstance(lr, Schedule):
        return lr
    if callable(lr):
        raise TypeError(f"{name}: expected a positive number or an optim.Schedule (Constant, "
                        f"Cosine, Warmup), got the function {lr!r}; wrap a custom rule in a "
                        "Schedule subclass that defines _lr(step).")
    return Constant(check_positive_float(lr, name))


def _scalar(value, name):
    """A float from a float or a 0-d array (as np.load returns scalars)."""
    arr = np.asarray(value)
    if arr.shape != () or arr.dtype.kind not in "fiu":
        raise ValueError(f"state_dict[{name!r}]: expected a number, got {value!r}.")
    return arr.item()


class Optimizer:
    """Base class: per-name state, validation, ``state_dict`` / ``load_state_dict``.

    Subclasses define ``_hyper`` (the names of their float hyperparameters, ``"lr"`` first),
    ``_slots`` (the names of their per-parameter arrays) and ``_update(name, p, g, st, lr)``.
    """

    _hyper = ("lr",)
    _slots = ()

    def __init__(self, lr):
        self.lr = lr
        self.iterations = 0  # step() calls so far: the schedule's t
        self.state = {}      # parameter name -> {"step": int, slot: ndarray, ...}

    @property
    def lr(self):
        """The learning rate the next step uses: ``schedule(iterations)``.

        Assign a positive float (a constant rate) or a :class:`Schedule` to change it."""
        return self.schedule(self.iterations)

    @lr.setter
    def lr(self, value):
        self.schedule = as_schedule(value, "lr")

    # -- the step ---------------------------------------------------------------------------------
    def step(self, params, grads):
        """Update every array in ``params`` in place from the matching entry of ``grads``.

        Parameters
        ----------
        params : dict of str -> ndarray of float64
            The live parameter arrays (e.g. ``flow.params()``).
        grads : dict of str -> array_like
            Same keys and shapes (e.g. ``flow.grads()``).
        """
        checked = self._validate(params, grads)
        lr = self.lr
        for name, p, g in checked:       # all checks passed: now update
            st = self.state.setdefault(name, {"step": 0})
            st["step"] += 1
            self._update(name, p, g, st, lr)
        self.iterations += 1

    def _validate(self, params, grads):
        for arg, d in (("params", params), ("grads", grads)):
            if not isinstance(d, Mapping):
                raise TypeError(f"{arg}: expected a dict of name -> array (e.g. flow.{arg}()), "
                                f"got {type(d).__name__}.")
        missing = [k for k in params if k not in grads]
        extra = [k for k in grads if k not in params]
        if missing or extra:
            msg = []
            if missing:
                msg.append(f"no gradient for parameter(s) {missing}")
            if extra:
                msg.append(f"gradient(s) {extra} match no parameter")
            raise ValueError(f"{type(self).__name__}.step: {'; '.join(msg)}. Pass params and grads "
                             "of the same model, after a backward pass.")
        checked = []
        for name, p in params.items():
            if not isinstance(p, np.ndarray) or p.dtype != np.float64:
                what = f"dtype {p.dtype}" if isinstance(p, np.ndarray) else type(p).__name__
                raise TypeError(f"params[{name!r}]: expected a float64 ndarray (updated in place), "
                                f"got {what}.")
            if not p.flags.writeable:
                raise ValueError(f"params[{name!r}]: the array is read-only, so it cannot be updated in place.")
            g = np.asarray(grads[name])
            if g.dtype.kind not in "fiu":
                raise TypeError(f"grads[{name!r}]: expected a float array, got dtype {g.dtype}.")
            g = g.astype(np.float64, copy=False)
            if g.shape != p.shape:
                raise ValueError(f"grads[{name!r}]: expected shape {p.shape} (the parameter's), "
                                 f"got {g.shape}.")
            if not np.all(np.isfinite(g)):
                bad = int(g.size - np.count_nonzero(np.isfinite(g)))
                raise FloatingPointError(f"grads[{name!r}]: {bad} non-finite entr"
                                         f"{'y' if bad == 1 else 'ies'} (NaN/inf); no parameter was "
                                         "updated. Lower the learning rate or clip the gradients.")
            st = self.state.get(name, {})
            for slot in self._slots:
                if slot in st and st[slot].shape != p.shape:
                    raise ValueError(f"{type(self).__name__} state {slot!r} for {name!r} has shape "
                                     f"{st[slot].shape} but the parameter has shape {p.shape}; the "
                                     "optimizer state belongs to a different model.")
            checked.append((name, p, g))
        return checked

    def _update(self, name, p, g, st, lr):  # pragma: no cover - abstract
        raise NotImplementedError

    # -- state ------------------------------------------------------------------------------------
    def state_dict(self):
        """A flat dict of plain values: hyperparameters and per-parameter state (copies).

        Keys: ``"type"``, ``"iterations"``, each hyperparameter (``"lr"`` is the rate of the
        next step), and for each parameter name ``"step/<name>"`` plus ``"<slot>/<name>"`` for
        each state array. A schedule is not saved: it is part of how the optimizer was built.
        """
        out = {"type": type(self).__name__, "iterations": int(self.iterations)}
        for h in self._hyper:
            out[h] = float(getattr(self, h))
        for name, st in self.state.items():
            out[f"step/{name}"] = int(st["step"])
            for slot in self._slots:
                if slot in st:
                    out[f"{slot}/{name}"] = st[slot].copy()
        return out

    def load_state_dict(self, state):
        """Restore hyperparameters and per-parameter state from :meth:`state_dict` output.

        Accepts the values as saved or as loaded back by ``np.load`` (0-d arrays for scalars).
        An optimizer built with a :class:`Schedule` keeps it and resumes it at the saved
        ``iterations``; one with a constant rate takes the saved ``lr``.
        """
        if not isinstance(state, Mapping):
            raise TypeError(f"state: expected a dict from state_dict(), got {type(state).__name__}.")
        kind = state.get("type")
        kind = None if kind is None else str(np.asarray(kind).item())
        if kind != type(self).__name__:
            raise ValueError(f"state: saved from a {kind} optimizer, cannot load it into "
                             f"{type(self).__name__}.")
        missing = [h for h in self._hyper if h not in state]
        if missing:
            raise ValueError(f"state: missing hyperparameter(s) {missing}.")
        new_state = {}
        iterations = _scalar(state.get("iterations", 0), "iterations")
        if iterations != int(iterations) or iterations < 0:
            raise ValueError(f"state['iterations']: expected a non-negative integer, got "
                             f"{state['iterations']!r}.")
        for key, value in state.items():
            if key in ("type", "iterations") or key in self._hyper:
                continue
            slot, sep, name = key.partition("/")
            if not sep or slot not in ("step",) + self._slots:
                raise ValueError(f"state: unexpected key {key!r} for {type(self).__name__}.")
            st = new_state.setdefault(name, {})
            if slot == "step":
                step = _scalar(value, key)
                if step != int(step) or step < 0:
                    raise ValueError(f"state[{key!r}]: expected a non-negative integer, got {value!r}.")
                st["step"] = int(step)
            else:
                arr = np.asarray(value)
                if arr.dtype.kind != "f" or not np.all(np.isfinite(arr)):
                    raise ValueError(f"state[{key!r}]: expected a finite float array, got dtype {arr.dtype}.")
                st[slot] = np.array(arr, dtype=np.float64, copy=True)
        for name, st in new_state.items():
            if "step" not in st:
                raise ValueError(f"state: {name!r} has {sorted(st)} but no 'step/{name}'.")
        # validate every hyperparameter before changing anything
        hyper = {h: _scalar(state[h], h) for h in self._hyper}
        if not isinstance(self.schedule, Constant):
            hyper["lr"] = self.schedule          # kept: the saved lr is where it had got to
        probe = type(self)(**self._constructor_kwargs(hyper))
        self.schedule = probe.schedule
        for h in self._hyper[1:]:
            setattr(self, h, getattr(probe, h))
        self.iterations = int(iterations)
        self.state = new_state

    def _constructor_kwargs(self, hyper):
        return dict(hyper)

    def _lr_repr(self):
        return repr(self.schedule.lr if isinstance(self.schedule, Constant) else self.schedule)

    def __repr__(self):
        args = ", ".join(f"{h}={self._lr_repr() if h == 'lr' else getattr(self, h)!r}"
                         for h in self._hyper)
        return f"{type(self).__name__}({args})"


def adam_update(p, g, m, v, lr, beta1, beta2, eps, bias1, bias2):
    """One Adam step (see :class:`Adam`) on the array ``p``, in place, and on its moments.

    Parameters
    ----------
    p, g, m, v : ndarray, same shape
        Parameter, its gradient, and the first and second moment estimates (updated in place).
    lr, beta1, beta2, eps : float
    bias1, bias2 : float
        The bias corrections ``1 - beta1**t`` and ``1 - beta2**t`` at step ``t`` (1 on the
        first step).

    Examples
    --------
    >>> p, m, v = np.array([1.0, -2.0]), np.zeros(2), np.zeros(2)
    >>> adam_update(p, np.array([3.0, -0.5]), m, v, 0.1, 0.9, 0.999, 1e-8, 1 - 0.9, 1 - 0.999)
    >>> np.round(p, 6)
    array([ 0.9, -1.9])
    """
    m *= beta1
    m += (1.0 - beta1) * g
    v *= beta2
    v += (1.0 - beta2) * g * g
    m_hat = m / bias1                  # undo the pull of m_0 = 0 towards zero
    v_hat = v / bias2
    p -= lr * m_hat / (np.sqrt(v_hat) + eps)


class SGD(Optimizer):
    r"""Stochastic gradient descent, optionally with (heavy-ball) momentum.

    For each parameter :math:`\theta` with gradient :math:`g`, velocity :math:`v_0 = 0`:

    .. math::

        v_t &= \mu\, v_{t-1} + g_t \\
        \theta_t &= \theta_{t-1} - \eta\, v_t

    (the PyTorch form; with a constant :math:`\eta` it equals Sutskever et al.'s
    :math:`v \leftarrow \mu v - \eta g,\ \theta \leftarrow \theta + v`). With :math:`\mu = 0`
    it is plain :math:`\theta \leftarrow \theta - \eta g` and keeps no velocity.

    Parameters
    ----------
    lr : float or Schedule, default 1e-2
        Learning rate :math:`\eta > 0`, or a schedule of it (:class:`Cosine`, ...).
    momentum : float, default 0.0
        :math:`\mu \in [0, 1)`.

    Examples
    --------
    >>> params = {"w": np.array([1.0, -2.0])}
    >>> opt = SGD(lr=0.1)
    >>> opt.step(params, {"w": np.array([1.0, 1.0])})
    >>> params["w"]
    array([ 0.9, -2.1])
    """

    _hyper = ("lr", "momentum")
    _slots = ("velocity",)

    def __init__(self, lr=1e-2, momentum=0.0):
        super().__init__(lr)
        self.momentum = check_fraction(momentum, "momentum")

    def _update(self, name, p, g, st, lr):
        if self.momentum == 0.0:
            p -= lr * g
            return
        v = st.setdefault("velocity", np.zeros_like(p))
        v *= self.momentum
        v += g
        p -= lr * v


class Adam(Optimizer):
    r"""Adam (Kingma & Ba 2015, arXiv:1412.6980), with bias correction.

    For each parameter :math:`\theta` with gradient :math:`g`, moments :math:`m_0 = v_0 = 0`
    and step count :math:`t` (kept per parameter name):

    .. math::

        m_t &= \beta_1 m_{t-1} + (1 - \beta_1)\, g_t \\
        v_t &= \beta_2 v_{t-1} + (1 - \beta_2)\, g_t^2 \\
        \hat m_t &= m_t / (1 - \beta_1^t), \qquad \hat v_t = v_t / (1 - \beta_2^t) \\
        \theta_t &= \theta_{t-1} - \eta\, \hat m_t / (\sqrt{\hat v_t} + \epsilon)

    The bias correction undoes the pull of the zero initial moments towards 0, so the first
    step moves every entry by about :math:`\eta` in the direction of :math:`-g`.

    Parameters
    ----------
    lr : float or Schedule, default 1e-3
        :math:`\eta > 0`, or a schedule of it (:class:`Cosine`, ...).
    betas : (float, float), default (0.9, 0.999)
        :math:`(\beta_1, \beta_2)`, each in [0, 1).
    eps : float, default 1e-8
        :math:`\epsilon > 0`, keeps the division finite.

    Examples
    --------
    >>> params = {"w": np.array([1.0, -2.0])}
    >>> opt = Adam(lr=0.1)
    >>> opt.step(params, {"w": np.array([3.0, -0.5])})   # first step: about lr * sign(g)
    >>> np.round(params["w"], 6)
    array([ 0.9, -1.9])
    """

    _hyper = ("lr", "beta1", "beta2", "eps")
    _slots = ("m", "v")

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(lr)
        try:
            beta1, beta2 = betas
        except (TypeError, ValueError):
            raise ValueError(f"betas: expected a pair (beta1, beta2), got {betas!r}.") from None
        self.beta1 = check_fraction(beta1, "betas[0]")
        self.beta2 = check_fraction(beta2, "betas[1]")
        self.eps = check_positive_float(eps, "eps")

    @property
    def betas(self):
        return (self.beta1, self.beta2)

    def _constructor_kwargs(self, hyper):
        return {"lr": hyper["lr"], "betas": (hyper["beta1"], hyper["beta2"]), "eps": hyper["eps"]}

    def _update(self, name, p, g, st, lr):
        m = st.setdefault("m", np.zeros_like(p))
        v = st.setdefault("v", np.zeros_like(p))
        t = st["step"]
        adam_update(p, g, m, v, lr, self.beta1, self.beta2, self.eps,
                    1.0 - self.beta1 ** t, 1.0 - self.beta2 ** t)

    def step(self, params, grads):
        """Update every array in ``params`` in place (see :meth:`Optimizer.step`)."""
        if use_kernels() and _fast.adam_step(self, params, grads, self.lr):
            self.iterations += 1    # the same update by the kernels, bit for bit: _optim_fast.py
            return
        super().step(params, grads)

    def __repr__(self):
        return f"Adam(lr={self._lr_repr()}, betas={self.betas!r}, eps={self.eps!r})"


class AdamW(Adam):
    r"""Adam with decoupled weight decay (Loshchilov & Hutter 2019, arXiv:1711.05101).

    After each Adam step (see :class:`Adam`) every parameter shrinks towards zero,

    .. math:: \theta_t \leftarrow (1 - \eta_t \lambda)\, \theta_t,

    with the step's learning rate :math:`\eta_t` (so a schedule decays the decay too). Unlike an
    L2 penalty added to the loss, the shrinkage does not pass through Adam's per-coordinate
    scaling, so every weight decays at the same relative rate. (The paper shrinks the
    parameters before the Adam update; after it, the difference is of order
    :math:`\eta^2 \lambda`.) It keeps a model with many parameters and little data, such as an
    image flow on 1000 digits, from growing weights that only fit the training set.

    Parameters
    ----------
    lr, betas, eps
        As for :class:`Adam`.
    weight_decay : float, default 1e-2
        :math:`\lambda \ge 0`.

    Examples
    --------
    >>> params = {"w": np.array([1.0])}
    >>> opt = AdamW(lr=0.1, weight_decay=0.5)
    >>> opt.step(params, {"w": np.array([0.0])})      # zero gradient: only the decay acts
    >>> params["w"].tolist()
    [0.95]
    """

    _hyper = Adam._hyper + ("weight_decay",)

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(lr, betas, eps)
        self.weight_decay = check_nonneg_float(weight_decay, "weight_decay")

    def _constructor_kwargs(self, hyper):
        return {**super()._constructor_kwargs(hyper), "weight_decay": hyper["weight_decay"]}

    def step(self, params, grads):
        """An Adam step, then the decay (see the class docstring)."""
        shrink = 1.0 - self.lr * self.weight_decay       # this step's rate, before it advances
        super().step(params, grads)
        for p in params.values():
            p *= shrink

    def __repr__(self):
        return f"AdamW(lr={self._lr_repr()}, betas={self.betas!r}, eps={self.eps!r}, " \
               f"weight_decay={self.weight_decay!r})"


def _l2(a):
    """L2 norm that cannot overflow: scale by the largest entry before squaring."""
    big = float(np.max(np.abs(a), initial=0.0))
    return 0.0 if big == 0.0 else big * float(np.sqrt(np.sum((a / big) ** 2)))


def clip_grad_norm(grads, max_norm):
    r"""Scale all gradients together so that their global L2 norm is at most ``max_norm``.

    .. math:: \|g\| = \sqrt{\textstyle\sum_k \|g_k\|_2^2}, \qquad
              g_k \leftarrow g_k \cdot \frac{\text{max\_norm}}{\|g\|} \ \text{ if } \|g\| > \text{max\_norm}

    One common factor keeps the direction of the full gradient; only its length is capped.

    Parameters
    ----------
    grads : dict of str -> ndarray of float
        Scaled **in place** (e.g. ``flow.grads()``, whose arrays the optimizer then reads).
    max_norm : float
        Positive.

    Returns
    -------
    float
        The global norm *before* clipping (useful to log).

    Examples
    --------
    >>> grads = {"a": np.array([3.0]), "b": np.array([4.0])}
    >>> clip_grad_norm(grads, 1.0)
    5.0
    >>> grads["a"], grads["b"]
    (array([0.6]), array([0.8]))
    """
    max_norm = check_positive_float(max_norm, "max_norm")
    if not isinstance(grads, Mapping):
        raise TypeError(f"grads: expected a dict of name -> array (e.g. flow.grads()), got "
                        f"{type(grads).__name__}.")
    norms = []
    for name, g in grads.items():
        if not isinstance(g, np.ndarray) or g.dtype.kind != "f":
            what = f"dtype {g.dtype}" if isinstance(g, np.ndarray) else type(g).__name__
            raise TypeError(f"grads[{name!r}]: expected a float ndarray (scaled in place), got {what}.")
        if not np.all(np.isfinite(g)):
            raise FloatingPointError(f"grads[{name!r}]: non-finite gradient (NaN/inf); its norm is "
                                     "undefined, so it cannot be clipped.")
        norms.append(_l2(g))
    total = _l2(np.array(norms))
    if total > max_norm:
        scale = max_norm / total
        for g in grads.values():
            g *= scale
    return total
