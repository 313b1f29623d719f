r"""The flow doctor: which layer broke, and how.

The questions users of flow libraries ask most are "why NaN?", "why is my NLL negative?" and
"which layer is wrong?". :func:`doctor` answers them by examining every layer on its own, in
both directions, on the points that really reach it:

* **non-finite values** — the first layer whose output or log-det is NaN/inf (or whose pass
  raises), in the forward (sampling) and in the inverse (density) pass;
* **round trip** — ``inverse(forward(z))`` against ``z`` for the points entering the layer, and
  ``forward(inverse(x))`` against ``x``: the largest error relative to ``1 + |p|`` and the share
  of points where it exceeds ``1e-6``;
* **log-det** — against ``log|det J|`` of a central-difference Jacobian on a few points
  (``np.linalg.slogdet``), in both directions (skipped where the Jacobian is so ill-conditioned,
  ``cond > 1e10``, that finite differences cannot resolve it);
* **conditioning** — the Jacobian's condition number ``s_max / s_min`` at those points: a huge
  value means the layer nearly collapses a direction, so its inverse amplifies round-off;
* **invertibility margins** — for layers that report one (``invertibility_margin()``, e.g. the
  planar ``1 + w.u_hat > 0`` and radial ``m = alpha + beta_hat > 0``), how close they are to 0;
* for 2-D flows, the **mass** of the model density on a grid around the data and the model's
  own samples (should be ≈ 1).

It ends with plain-language verdicts. Nothing here changes the flow: each layer is called
through its public ``forward``/``inverse``, and the gradients and caches of a training step in
progress are not needed.

Examples
--------
>>> from nfscratch import models
>>> report = doctor(models.planar_flow(2, 4, rng=0), rng=0, verbose=False)
>>> report.ok
True
"""
from dataclasses import dataclass, field

import numpy as np

from ._validate import as_batch, as_context, as_rng, check_positive_int
from .flow import Flow
from .gradcheck import numerical_jacobian

__all__ = ["doctor", "DoctorReport", "LayerReport"]

#: A round trip is "lossy" at a point when its error exceeds ROUND_TRIP_TOL * (1 + |p|).
ROUND_TRIP_TOL = 1e-6
#: A log-det disagrees with the finite-difference Jacobian when off by more than this (nats).
LOG_DET_TOL = 1e-4
#: Condition numbers above this are reported as ill-conditioned.
COND_WARN = 1e8
#: Above this condition number a finite-difference Jacobian's log-det is not trusted (skipped).
COND_TRUST = 1e10
#: Invertibility margins below this are reported as close to the limit.
MARGIN_WARN = 1e-3


@dataclass
class LayerReport:
    """What the doctor found for one layer (numbered from 0, in the flow's order)."""
    index: int
    name: str
    nonfinite: dict = field(default_factory=dict)      # direction -> description
    raised: dict = field(default_factory=dict)         # direction -> exception text
    round_trip: dict = field(default_factory=dict)     # direction -> (max error, lossy share)
    log_det_error: dict = field(default_factory=dict)  # direction -> max |log_det - slogdet|
    cond: float = float("nan")                         # max condition number (forward Jacobian)
    margin: float = None                               # invertibility margin, if reported
    problems: list = field(default_factory=list)       # plain-language findings

    @property
    def ok(self):
        return not self.problems


@dataclass
class DoctorReport:
    """The doctor's findings: one :class:`LayerReport` per layer, flow-level facts, verdicts."""
    layers: list
    nll: float
    mass: float
    verdicts: list

    @property
    def ok(self):
        """True when no layer has a problem and the density's mass (2-D) is about 1."""
        return all(l.ok for l in self.layers) and not (np.isfinite(self.mass)
                                                      and abs(self.mass - 1.0) > 0.05)

    def problem_layers(self):
        """Indices of the layers with at least one problem."""
        return [l.index for l in self.layers if not l.ok]

    def table(self):
        """Per-layer table: round-trip errors, log-det errors, conditioning, margin."""
        head = (f"{'layer':<22} {'trip fwd':>9} {'trip inv':>9} {'logdet fwd':>10} "
                f"{'logdet inv':>10} {'cond':>9} {'margin':>9}  status")
        rows = [head, "-" * len(head)]
        for l in self.layers:
            def trip(d):
                return f"{l.round_trip[d][0]:9.1e}" if d in l.round_trip else f"{'-':>9}"

            def ld(d):
                err = l.log_det_error.get(d, float("nan"))
                return f"{err:10.1e}" if not np.isnan(err) else f"{'-':>10}"
            margin = f"{l.margin:9.2e}" if l.margin is not None else f"{'-':>9}"
            cond = f"{l.cond:9.1e}" if not np.isnan(l.cond) else f"{'-':>9}"
            rows.append(f"{f'{l.index} {l.name}':<22} {trip('forward')} {trip('inverse')} "
                        f"{ld('forward')} {ld('inverse')} {cond} {margin}  "
                        f"{'ok' if l.ok else 'PROBLEM'}")
        return "\n".join(rows)

    def __str__(self):
        return self.table() + "\n\n" + "\n".join(f"- {v}" for v in self.verdicts)


def _nonfinite_text(out, log_det):
    bad_out = ~np.all(np.isfinite(out), axis=1)
    bad_ld = ~np.isfinite(log_det)
    if bad_out.any():
        return f"non-finite output on {bad_out.mean():.1%} of points"
    if bad_ld.any():
        return f"non-finite log-det on {bad_ld.mean():.1%} of points"
    return None


def _run(t, direction, p, ctx=None):
    """``t``'s pass in ``direction`` on ``p``, errors silenced; ``(out, log_det)`` or the exception.

    ``ctx`` holds one context row per point of ``p``; only a conditional layer is given it."""
    with np.errstate(all="ignore"):
        try:
            return getattr(t, direction)(p, context=ctx if t.context_dim else None)
        except (ValueError, RuntimeError, FloatingPointError, ArithmeticError) as exc:
            return exc


def _round_trip(t, direction, p, ctx=None):
    """Max error and lossy share of ``other(direction(p))`` against ``p`` (finite points only)."""
    other = "inverse" if direction == "forward" else "forward"
    first = _run(t, direction, p, ctx)
    if isinstance(first, Exception):
        return None
    keep = np.all(np.isfinite(first[0]), axis=1)
    if not keep.any():
        return None
    back = _run(t, other, first[0][keep], None if ctx is None else ctx[keep])
    if isinstance(back, Exception):
        return float("inf"), 1.0
    # relative to the size of the point: a layer that maps to 1e14 cannot round-trip better
    # than 1e14 * eps in absolute terms
    err = np.max(np.abs(back[0] - p[keep]), axis=1) / (1.0 + np.max(np.abs(p[keep]), axis=1))
    err = np.where(np.isfinite(err), err, np.inf)
    return float(err.max()), float(np.mean(err > ROUND_TRIP_TOL))


def _jacobian_checks(t, direction, points, ctx=None):
    """Max |log_det - slogdet(J)| and max condition number of J over ``points`` (K, D), each at
    its own context row (the Jacobian is taken in the points, the context held fixed)."""
    ld_err, cond, compared = 0.0, 0.0, 0
    for k, p in enumerate(points):
        c = None if ctx is None else ctx[k:k + 1]
        res = _run(t, direction, p[None, :], c)
        if isinstance(res, Exception) or not np.all(np.isfinite(res[0])):
            continue

        def f(v):
            out = _run(t, direction, v[None, :], c)
            return out[0][0] if not isinstance(out, Exception) else np.full(v.size, np.nan)
        with np.errstate(all="ignore"):
            J = numerical_jacobian(f, p.copy())
        if not np.all(np.isfinite(J)):
            continue
        s = np.linalg.svd(J, compute_uv=False)
        cond_p = s[0] / s[-1] if s[-1] > 0 else np.inf
        cond = max(cond, cond_p)
        if cond_p > COND_TRUST:     # finite differences cannot resolve log|det J| there
            continue
        sign, logabs = np.linalg.slogdet(J)
        ld_err = max(ld_err, abs(float(res[1][0]) - logabs))
        compared += 1
    return (ld_err if compared else float("nan")), cond


def _grid_mass(flow, points, ctx=None):
    """Mass of the model density on a grid covering ``points`` (the data and the model's own
    samples), for 2-D flows only; else NaN. A conditional density is integrated at one fixed
    context, the first row of ``ctx``: p(x | y) integrates to 1 for every y."""
    if flow.dim != 2:
        return float("nan")
    lo, hi = np.min(points, axis=0), np.max(points, axis=0)
    pad = 0.5 * (hi - lo) + 1.0
    n = 200
    g1 = np.linspace(lo[0] - pad[0], hi[0] + pad[0], n)
    g2 = np.linspace(lo[1] - pad[1], hi[1] + pad[1], n)
    grid = np.stack(np.meshgrid(g1, g2), axis=-1).reshape(-1, 2)
    with np.errstate(all="ignore"):
        try:
            log_q = flow.log_prob(grid, context=None if ctx is None
                                  else np.repeat(ctx[:1], len(grid), axis=0))
        except (ValueError, RuntimeError, FloatingPointError):
            return float("nan")
    cell = (g1[1] - g1[0]) * (g2[1] - g2[0])
    return float(np.sum(np.exp(log_q[np.isfinite(log_q)])) * cell)


def _layer_problems(rep):
    """Turn the numbers of one layer into sentences; return them."""
    out = []
    where = f"layer {rep.index} ({rep.name})"
    for d, text in rep.raised.items():
        out.append(f"{where}: its {d} pass raised: {text}")
    for d, text in rep.nonfinite.items():
        out.append(f"{where}: {text} in the {d} pass: the first layer where they appear")
    for d, trip in rep.round_trip.items():
        err, share = trip
        if share > 0:
            other = "inverse" if d == "forward" else "forward"
            out.append(f"{where}: {other}({d}(p)) misses p by up to {err:.1e} (relative) on "
                       f"{share:.1%} of points: its {other} is wrong or inaccurate there")
    for d, err in rep.log_det_error.items():
        if err > LOG_DET_TOL:
            out.append(f"{where}: its {d} log-det differs from log|det J| of a finite-difference "
                       f"Jacobian by up to {err:.2e} nats: the log-det formula is wrong")
    if rep.cond > COND_WARN:     # inf included; NaN (never measured) is not
        out.append(f"{where}: its Jacobian is ill-conditioned (condition number {rep.cond:.1e}): "
                   "it nearly collapses a direction, so its inverse amplifies round-off")
    if rep.margin is not None and rep.margin < MARGIN_WARN:
        out.append(f"{where}: its invertibility margin is {rep.margin:.1e} (the layer stops being "
                   "invertible at 0)")
    return out


def doctor(flow, x=None, *, context=None, n=2000, n_jacobian=8, rng=0, verbose=True):
    """Examine every layer of ``flow`` in both directions and say what is wrong, if anything.

    Parameters
    ----------
    flow : Flow
    x : array_like, shape (N, D), optional
        Data points for the inverse (density) direction. Default: ``n`` samples of the flow.
    context : array_like, shape (C,) or (N, C), optional
        For a conditional flow (``flow.context_dim = C > 0``): the context of the checks, one
        row shared by every point or one row per row of ``x``. Default: a standard-normal row
        per point. Invertibility and the log-det formula must hold at every context, so random
        rows test them as well as real ones; pass real contexts to examine the model on them.
        Refused for a flow that is not conditional.
    n : int
        Number of base samples pushed forward (and of data points used, at most).
    n_jacobian : int
        Points per layer and direction at which the log-det is compared with a finite-difference
        Jacobian (costs ``2 D`` passes each).
    rng : numpy.random.Generator or int
    verbose : bool
        Print the report.

    Returns
    -------
    DoctorReport
    """
    if not isinstance(flow, Flow):
        raise TypeError(f"flow: expected a nfscratch Flow, got {type(flow).__name__}.")
    n = check_positive_int(n, "n")
    n_jacobian = check_positive_int(n_jacobian, "n_jacobian")
    rng = as_rng(rng)
    if x is not None:
        x = as_batch(x, flow.dim, "x", allow_nonfinite=False)
    ctx_x = _contexts(flow, context, None if x is None else x.shape[0], n, rng)
    if x is not None and x.shape[0] > n:
        keep = rng.choice(x.shape[0], n, replace=False)
        x = x[keep]
        ctx_x = None if ctx_x is None else ctx_x[keep]
    z = flow.base.sample(n, rng)
    # the forward checks run at the data's contexts, recycled to n rows
    ctx_z = None if ctx_x is None else ctx_x[np.arange(n) % len(ctx_x)]
    with np.errstate(all="ignore"):
        samples, ctx_s = _run_flow_samples(flow, z, ctx_z)
    if x is None:
        x, ctx_x = samples, ctx_s

    layers = list(flow.layers)
    reports = [LayerReport(i, t.name) for i, t in enumerate(layers)]
    # the points that reach each layer: forward from the base, inverse from the data
    inputs = {"forward": _inputs(layers, z, ctx_z, "forward", reports),
              "inverse": _inputs(layers, x, ctx_x, "inverse", reports)}
    for i, t in enumerate(layers):
        rep = reports[i]
        for d in ("forward", "inverse"):
            p, c = inputs[d][i]
            if p is None or d in rep.raised:
                continue
            finite = np.all(np.isfinite(p), axis=1)
            p, c = p[finite], None if c is None else c[finite]
            if not len(p):
                continue
            trip = _round_trip(t, d, p, c)
            if trip is not None:
                rep.round_trip[d] = trip
            pick = rng.choice(len(p), min(n_jacobian, len(p)), replace=False)
            ld_err, cond = _jacobian_checks(t, d, p[pick], None if c is None else c[pick])
            rep.log_det_error[d] = ld_err
            if d == "forward":
                rep.cond = cond
        margin = getattr(t, "invertibility_margin", None)
        if callable(margin):
            rep.margin = float(margin())
        rep.problems = _layer_problems(rep)

    with np.errstate(all="ignore"):
        try:
            log_q = flow.log_prob(x, context=ctx_x)
        except (ValueError, RuntimeError, FloatingPointError):
            log_q = np.full(x.shape[0], np.nan)
    nll = float(-np.mean(log_q)) if np.all(np.isfinite(log_q)) else float("nan")
    mass = _grid_mass(flow, np.concatenate([x, samples]), ctx_x)
    report = DoctorReport(reports, nll, mass, _verdicts(reports, nll, mass, log_q, flow.dim))
    if verbose:
        print(report)
    return report


def _contexts(flow, context, n_x, n, rng):
    """The context rows of the data points (``n_x`` of them, or ``n`` samples when None)."""
    if not flow.context_dim:
        as_context(context, 0, 0, "this Flow")      # refuses a context, with its message
        return None
    rows = n if n_x is None else n_x
    if context is None:
        return rng.standard_normal((rows, flow.context_dim))
    arr = np.asarray(context)
    if arr.ndim == 1:       # one row for every point
        arr = np.repeat(arr[None, :], rows, axis=0)
    return as_context(arr, flow.context_dim, rows, "this Flow")


def _run_flow_samples(flow, z, ctx):
    """The flow's samples from ``z`` and their contexts (``z`` itself if the flow fails)."""
    p = z
    for t in flow.layers:
        res = _run(t, "forward", p, ctx)
        if isinstance(res, Exception):
            return z, ctx
        p = res[0]
    finite = np.all(np.isfinite(p), axis=1)
    if not finite.any():
        return z, ctx
    return p[finite], None if ctx is None else ctx[finite]


def _inputs(layers, start, ctx, direction, reports):
    """The points entering each layer in a pass of ``direction`` with their context rows, as
    ``(points, contexts)`` pairs; records non-finite/raised."""
    order = range(len(layers)) if direction == "forward" else range(len(layers) - 1, -1, -1)
    inputs = [(None, None)] * len(layers)
    p = start
    for i in order:
        inputs[i] = (p, ctx)
        res = _run(layers[i], direction, p, ctx)
        if isinstance(res, Exception):
            reports[i].raised[direction] = f"{type(res).__name__}: {res}"
            break
        text = _nonfinite_text(*res)
        if text:
            reports[i].nonfinite[direction] = text
        # the points that stay finite go on, so the layers after a faulty one are checked too
        keep = np.all(np.isfinite(res[0]), axis=1) & np.isfinite(res[1])
        if not keep.any():
            break
        p = res[0][keep]
        ctx = None if ctx is None else ctx[keep]
    return inputs


def _verdicts(reports, nll, mass, log_q, dim):
    out = []
    bad = [r for r in reports if not r.ok]
    for r in bad:
        out.extend(r.problems)
    if not bad:
        out.append(f"every layer is healthy: finite, invertible to {ROUND_TRIP_TOL:g}, log-dets "
                   "match the finite-difference Jacobian in both directions")
    if np.isfinite(nll) and nll < 0:
        out.append(f"a negative NLL ({nll:.3f} nats) is fine: a density can exceed 1 "
                   f"(here up to {np.exp(np.max(log_q)):.3g}) when the data are concentrated")
    elif not np.isfinite(nll):
        out.append("the log-density of some data points is not finite: see the first layer "
                   "with non-finite values above")
    if np.isfinite(mass):
        if abs(mass - 1.0) > 0.05:
            out.append(f"the 2-D density integrates to {mass:.3f} on a grid around the data and "
                       "samples (expected ≈ 1): mass outside the grid, or a wrong log-det")
        else:
            out.append(f"the 2-D density integrates to {mass:.3f} on a grid around the data and samples (≈ 1)")
    return out
