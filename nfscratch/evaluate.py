r"""Results stated against their floor: test NLL vs the data's entropy, reverse KL in nats.

A flow gives exact log-densities, so every result has a hard floor (DESIGN.md, "Results are
stated against their floor"):

* **Density estimation.** On fresh points from the data density ``p``, the expected NLL of a
  model ``q`` is :math:`E_p[-\log q] = H(p) + \mathrm{KL}(p\,\|\,q)`. :func:`nll` estimates it
  on ``n`` new samples (never the training set, which a model can memorize) and reports the
  floor :math:`H(p)` (:func:`nfscratch.datasets.entropy`, exact) and the gap
  :math:`\mathrm{NLL} - H(p) = \mathrm{KL}(p\,\|\,q) \ge 0`.
* **Variational inference.** For a target :math:`p = e^{-U}/Z`,
  :math:`\mathrm{KL}(q\,\|\,p) = E_q[\log q + U] + \log Z \ge 0`, 0 only when the flow *is* the
  target. :func:`kl` estimates it on ``n`` samples of the flow, with ``log Z`` from
  :meth:`~nfscratch.datasets.Energy.log_normalizer`.

Both are Monte-Carlo means of iid terms, so each comes with its standard error
:math:`\mathrm{SE} = s/\sqrt{n}` (``s`` the sample standard deviation of the terms): a gap
below ``-3 SE`` would mean a bug, not a good model. :func:`kl` also gives the effective sample
size of the importance weights :math:`w_i = p(x_i)/q(x_i)`,
:math:`\mathrm{ESS} = (\sum_i w_i)^2 / \sum_i w_i^2`, as a fraction of ``n``: near 100% when
``q`` covers ``p`` well; a small ESS flags a ``q`` that misses some of ``p``'s mass, which the
mode-seeking reverse KL does not punish much.

Examples
--------
>>> from nfscratch import datasets, evaluate
>>> from nfscratch.flow import Flow
>>> from nfscratch.transforms import Reverse
>>> gauss = datasets.Energy.from_functions("gauss", 2, lambda x: 0.5 * np.sum(x**2, axis=1),
...                                        lambda x: x)
>>> result = evaluate.kl(Flow([Reverse(2)]), gauss, n=1000, rng=0, log_z=np.log(2 * np.pi))
>>> print(result)         # this flow *is* the target: KL 0, every importance weight equal
KL 0.000 ± 0.000 nats (ESS 100%)
"""
import functools
import math
from dataclasses import dataclass

import numpy as np

from ._validate import as_rng, check_finite_float, check_positive_int
from .datasets import SAMPLERS, energy, entropy, sample

__all__ = ["NLLResult", "KLResult", "nll", "kl"]

_CHUNK = 10_000      # samples per pass, so that n = 100_000 needs no large temporaries


@dataclass(frozen=True)
class NLLResult:
    r"""Test NLL on fresh points, with its standard error and the floor it is measured against.

    Attributes
    ----------
    nll : float
        Mean of :math:`-\log q(x_i)` over ``n`` fresh points (nats).
    se : float
        Its standard error.
    floor : float or None
        The data's true entropy (nats), None when it is not known.
    n : int
    data : str
        What the points came from.
    """
    nll: float
    se: float
    floor: float
    n: int
    data: str

    @property
    def gap(self):
        """``nll - floor`` = KL(p || q) in nats (None without a floor); its SE is ``se``."""
        return None if self.floor is None else self.nll - self.floor

    def __str__(self):
        head = f"NLL {_fmt(self.nll)} ± {_fmt(self.se)} nats"
        if self.floor is None:
            return f"{head} (floor unknown for {self.data})"
        return f"{head} (floor {_fmt(self.floor)}, gap {_fmt(self.gap)} nats)"


@dataclass(frozen=True)
class KLResult:
    r"""Reverse KL(q || p) in nats with its standard error and the importance-sampling ESS.

    Attributes
    ----------
    kl : float
        :math:`E_q[\log q + U] + \log Z` estimated on ``n`` samples of the flow.
    se : float
        Its standard error.
    ess : float
        Effective sample size of the weights p/q as a fraction of ``n`` (in (0, 1]).
    log_z : float
        The target's log-normalizer used.
    n : int
    target : str
    """
    kl: float
    se: float
    ess: float
    log_z: float
    n: int
    target: str

    def __str__(self):
        return f"KL {_fmt(self.kl)} ± {_fmt(self.se)} nats (ESS {100 * self.ess:.0f}%)"


def _fmt(value):
    text = f"{value:.3f}"
    return "0.000" if text == "-0.000" else text           # a rounding residue has no sign


def _check_flow(flow, needs):
    if not all(callable(getattr(flow, m, None)) for m in needs) or not hasattr(flow, "dim"):
        raise TypeError(f"flow: expected a Flow (an object with dim and {', '.join(needs)}), got "
                        f"{type(flow).__name__}. Build one with nfscratch.models or Flow([...]).")
    return flow


def _check_n(n):
    n = check_positive_int(n, "n")
    if n < 2:
        raise ValueError(f"n: expected at least 2 samples (a standard error needs two), got {n}.")
    return n


def _sampler_name(sampler):
    """``(name, params)`` when ``sampler`` is a built-in sampler or a ``partial`` of one."""
    params = {}
    while isinstance(sampler, functools.partial):
        if sampler.args:
            return None, {}
        params = {**sampler.keywords, **params}
        sampler = sampler.func
    for name, fn in SAMPLERS.items():
        if sampler is fn:
            return name, params
    return None, {}


def _mean_and_se(terms):
    return float(np.mean(terms)), float(np.std(terms, ddof=1) / math.sqrt(len(terms)))


def nll(flow, data, n=100_000, rng=None, **params):
    r"""Test NLL of ``flow`` on ``n`` fresh points of ``data``, against the data's entropy.

    Parameters
    ----------
    flow : Flow
        Any object with ``dim`` and ``log_prob(x) -> (N,)``.
    data : str or callable
        The name of a built-in toy (``nfscratch.datasets.SAMPLERS``), drawn with the sampler
        keywords ``params`` (e.g. ``noise=0.05``); or a sampler ``data(n, rng) -> (n, D)``.
        A built-in sampler function, or a ``functools.partial`` of one with keywords, is
        recognized and gets its floor; any other callable is reported with the floor unknown.
    n : int, default 100_000
        Fresh points to draw (at least 2).
    rng : numpy.random.Generator or int or None
    **params
        Sampler keywords, with a name only.

    Returns
    -------
    NLLResult
        Prints as ``NLL 0.312 ± 0.003 nats (floor 0.289, gap 0.023 nats)``.

    Raises
    ------
    ValueError
        If the flow's log-density is not finite at some of the points (it has diverged or puts
        no mass where the data lie).
    """
    flow = _check_flow(flow, ("log_prob",))
    n = _check_n(n)
    rng = as_rng(rng)
    if isinstance(data, str):
        name, draw = data, functools.partial(sample, data, **params)
    elif callable(data):
        if params:
            raise TypeError(f"params: sampler keywords go with a data set name; for a callable, "
                            f"bind them with functools.partial. Got {sorted(params)}.")
        name, params = _sampler_name(data)
        draw = data
    else:
        raise TypeError(f"data: expected the name of a data set ({', '.join(sorted(SAMPLERS))}) "
                        f"or a sampler callable(n, rng), got {type(data).__name__}.")
    neg_log_q = np.concatenate([-np.asarray(flow.log_prob(_draw(draw, m, rng, flow.dim)))
                                for m in _chunks(n)])
    bad = int(np.count_nonzero(~np.isfinite(neg_log_q)))
    if bad:
        raise ValueError(f"flow: log q(x) is not finite at {bad} of {n} fresh points, so the NLL "
                         "is infinite or undefined: the flow has diverged or puts no density "
                         "where the data lie (nfscratch.doctor finds the layer).")
    mean, se = _mean_and_se(neg_log_q)
    floor = None if name is None else entropy(name, **params)
    label = name or getattr(data, "__name__", type(data).__name__)
    if params:
        label += "(" + ", ".join(f"{k}={v!r}" for k, v in sorted(params.items())) + ")"
    return NLLResult(nll=mean, se=se, floor=floor, n=n, data=label)


def _chunks(n):
    return [min(_CHUNK, n - s) for s in range(0, n, _CHUNK)]


def _draw(draw, m, rng, dim):
    x = np.asarray(draw(m, rng))
    if x.shape != (m, dim):
        raise ValueError(f"data: the sampler returned shape {x.shape} for n={m}, expected "
                         f"({m}, {dim}) to match the flow's dimension.")
    return x


def kl(flow, target, n=100_000, rng=None, log_z=None):
    r"""Reverse KL(q || p) in nats of ``flow`` to the target ``p = exp(-U) / Z``.

    .. math:: \mathrm{KL}(q\,\|\,p) = E_q[\log q(x) + U(x)] + \log Z

    estimated on ``n`` samples of the flow, with its standard error and the effective sample
    size of the importance weights :math:`p/q` (module docstring).

    Parameters
    ----------
    flow : Flow
        Any object with ``dim`` and ``sample_and_log_prob(n, rng) -> (x, log_q)``.
    target : Energy or str
        An energy (``nfscratch.datasets.energy("U1")``, ``Energy.from_functions``) or the name of
        a built-in one ("U1" .. "U4").
    n : int, default 100_000
    rng : numpy.random.Generator or int or None
    log_z : float, optional
        ``log Z`` of the target; by default ``target.log_normalizer()`` (quadrature, D <= 2).

    Returns
    -------
    KLResult
        Prints as ``KL 0.004 ± 0.001 nats (ESS 97%)``.
    """
    flow = _check_flow(flow, ("sample_and_log_prob",))
    if isinstance(target, str):
        target = energy(target)
    if not (callable(getattr(target, "energy", None)) and hasattr(target, "dim")):
        raise TypeError(f"target: expected an Energy or the name of a built-in one (U1..U4), "
                        f"got {type(target).__name__}.")
    if target.dim != flow.dim:
        raise ValueError(f"target: expected an energy in dimension {flow.dim} (the flow's), got "
                         f"{target.name if hasattr(target, 'name') else 'one'} in dimension "
                         f"{target.dim}.")
    n = _check_n(n)
    rng = as_rng(rng)
    if log_z is None:
        if not callable(getattr(target, "log_normalizer", None)):
            raise ValueError("log_z: the target has no log_normalizer(); pass log_z=... so that "
                             "the KL is in nats.")
        log_z = target.log_normalizer()
    log_z = check_finite_float(log_z, "log_z")
    terms = []                                        # log q(x_i) + U(x_i), one per sample
    for m in _chunks(n):
        x, log_q = flow.sample_and_log_prob(m, rng)
        terms.append(np.asarray(log_q) + target.energy(x))
    terms = np.concatenate(terms)
    bad = int(np.count_nonzero(~np.isfinite(terms)))
    if bad:
        raise ValueError(f"flow: log q(x) + U(x) is not finite at {bad} of {n} samples: the "
                         "flow has diverged (nfscratch.doctor finds the layer).")
    mean, se = _mean_and_se(terms)
    # log w_i = log p(x_i) - log q(x_i) = -terms_i - log Z; ESS = (sum w)^2 / sum w^2
    log_w = -terms - log_z
    ess = math.exp(2.0 * _logsumexp(log_w) - _logsumexp(2.0 * log_w)) / n
    name = getattr(target, "name", type(target).__name__)
    return KLResult(kl=mean + log_z, se=se, ess=min(ess, 1.0), log_z=log_z, n=n, target=name)


def _logsumexp(v):
    m = float(np.max(v))
    return m + math.log(float(np.sum(np.exp(v - m))))
