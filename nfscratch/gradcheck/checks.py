"""The checks students run: pure functions, transforms and flows against central differences.

* :func:`check_gradients` -- a pure functional core, ``forward_fn(**inputs)`` and its
  ``backward_fn``;
* :func:`check_transform` (also called :func:`check_flow`) -- a Transform or a whole Flow, in
  both directions: shapes, every gradient, log-det against ``slogdet`` of a finite-difference
  Jacobian, round trip;
* :func:`check_all` -- several of them with a one-line-per-model summary, and
  :func:`builtin_examples`, the list of every built-in transform that ``nfscratch gradcheck`` and
  the test suite check.

The thresholds, the loss that is differentiated and why float64 is required are explained in
:mod:`nfscratch.gradcheck`; the finite differences live in :mod:`~nfscratch.gradcheck.numerics`,
the tables in :mod:`~nfscratch.gradcheck.report`.
"""
import inspect
from collections.abc import Mapping

import numpy as np

from .._validate import as_context, as_rng, check_positive_int
from .numerics import (EPS, REL_FLOOR, check_eps, numerical_jacobian, numerical_vjp,
                       rel_errors, require_float64_array)
from .report import FAIL, WARN, GradcheckResult, GradcheckRow, judge, skip_rows, summary

__all__ = ["check_gradients", "parse_gradients", "check_transform", "check_flow", "check_all",
           "perturb_params", "builtin_examples"]

_DIRECTIONS = ("forward", "inverse")


# ------------------------------------------------------------------------------------------------
# Shared by every check: settings, entry subsets, analytic against numerical gradients
# ------------------------------------------------------------------------------------------------
def _check_settings(eps, warn, fail, max_entries):
    eps = check_eps(eps)
    for nm, v in (("warn", warn), ("fail", fail)):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.floating)) or not v > 0:
            raise ValueError(f"{nm}: expected a positive threshold, got {v!r}.")
    if warn > fail:
        raise ValueError(f"warn ({warn}) must not exceed fail ({fail}).")
    return eps, float(warn), float(fail), check_positive_int(max_entries, "max_entries")


def _pick(size, max_entries, rng):
    """All flat indices, or a sorted seeded random subset of ``max_entries`` of them."""
    if size <= max_entries:
        return np.arange(size), f"{size} entr{'y' if size == 1 else 'ies'}"
    idx = np.sort(rng.choice(size, size=max_entries, replace=False))
    return idx, f"{max_entries} of {size} entries (seeded random subset)"


def _gradient_rows(targets, evaluate, upstream, direction, eps, warn, fail, max_entries, rng):
    """Compare analytic and numerical gradients for every target.

    targets : list of (row name, live array to perturb, analytic gradient or None, note)
        With no analytic gradient the row is SKIP with ``note``, or FAIL if ``note`` starts "!".
    """
    compared = []   # (name, flat indices, analytic, numerical, detail, shape) or (name, note)
    for name, arr, analytic, note in targets:
        if analytic is None:
            compared.append((name, note))
            continue
        idx, what = _pick(arr.size, max_entries, rng)
        num = numerical_vjp(evaluate, arr, upstream, idx, eps)
        ana = np.asarray(analytic, dtype=np.float64).reshape(-1)[idx]
        compared.append((name, idx, ana, num, what, arr.shape))
    # one floor for the whole check: FD noise scales with the problem, not with each tensor
    vals = [np.abs(np.concatenate([c[2], c[3]])) for c in compared if len(c) > 2]
    scale = max([float(np.max(v, where=np.isfinite(v), initial=0.0)) for v in vals], default=0.0)
    floor = REL_FLOOR * scale        # rel_errors keeps it above 0
    rows = []
    for c in compared:
        if len(c) == 2:
            name, note = c
            rows.append(GradcheckRow(name, direction, None, "FAIL" if note.startswith("!") else "SKIP",
                                     note.lstrip("!")))
            continue
        name, idx, a, n, detail, shape = c
        errs = rel_errors(a, n, floor)
        err = float("nan") if np.any(np.isnan(errs)) else float(np.max(errs, initial=0.0))
        status = judge(err, warn, fail)
        if a.size and not np.any(a) and not np.any(n):
            detail += ("; exactly 0 here, so nothing was tested (a zero-initialized layer?): "
                       "randomize the parameters to test it")
        if status != "PASS" and errs.size:
            j = 0 if np.all(np.isnan(errs)) else int(np.nanargmax(errs))
            where = list(map(int, np.unravel_index(int(idx[j]), shape)))
            detail += f"; worst at {where}: analytic {a[j]:.6g} vs numerical {n[j]:.6g}"
        rows.append(GradcheckRow(name, direction, err, status, detail))
    return rows


# ------------------------------------------------------------------------------------------------
# Pure functions: forward_fn(**inputs) -> (out, [log_det,] cache); backward_fn(...) -> grads
# ------------------------------------------------------------------------------------------------
def check_gradients(forward_fn, backward_fn, inputs, *, wrt=None, rng=None, eps=EPS, warn=WARN,
                    fail=FAIL, max_entries=200, direction="forward", name=None, verbose=True):
    r"""Check the backward of a pure functional core against central differences.

    The forward is called as ``forward_fn(**inputs)`` and must return ``(out, cache)`` or
    ``(out, log_det, cache)`` (the cache is always last). The backward is called as
    ``backward_fn(dout, cache)`` or ``backward_fn(dout, dlog_det, cache)`` with random upstream
    gradients, i.e. it backpropagates

    .. math:: L = \sum dout \odot out \;[+ \sum dlog\_det \odot log\_det].

    It may return the gradients in any of these forms:

    * a dict ``{input name: gradient}``;
    * ``(d_first, grads_dict)``: the gradient of the first checked input plus a dict for the
      others -- the form of the transforms' ``<name>_backward`` functions;
    * a tuple of arrays in the order of the checked inputs, e.g. ``linear_backward`` returning
      ``(dx, dW, db)`` for ``inputs={"x": ..., "W": ..., "b": ...}``;
    * a single array: the gradient of the first checked input.

    Parameters
    ----------
    forward_fn, backward_fn : callable
        Usually the library's functions or lambdas around them; a lambda is also the way to
        hold an argument constant (``lambda z: planar_forward(z, u, w, b)``).
    inputs : dict of str -> array
        Keyword arguments of ``forward_fn``. The float64 arrays are copied, then perturbed.
    wrt : sequence of str, optional
        The inputs to check, in the order a tuple-returning backward uses. Default: every
        floating-point ndarray in ``inputs``, in order; one that receives no gradient is
        reported as SKIP (treated as a constant), while a name listed in ``wrt`` without a
        gradient FAILs.
    rng : Generator or int, optional
        For the upstream gradients and entry subsets; None means seed 0 (reproducible).
    eps, warn, fail : float
        Step and thresholds (see the module docstring).
    max_entries : int, default 200
        Per input, check at most this many entries (a seeded random subset beyond it).
    direction : str, default "forward"
        Only the label of the rows (use "inverse" for an inverse functional core).
    name : str, optional
        Table header; default ``forward_fn.__name__``.
    verbose : bool, default True
        Print the table.

    Returns
    -------
    GradcheckResult

    Examples
    --------
    >>> def linear_forward(x, W, b):
    ...     return x @ W + b, (x, W)
    >>> def linear_backward(dy, cache):
    ...     x, W = cache
    ...     return dy @ W.T, x.T @ dy, dy.sum(axis=0)
    >>> rng = np.random.default_rng(0)
    >>> inputs = {"x": rng.standard_normal((4, 3)), "W": rng.standard_normal((3, 2)),
    ...           "b": rng.standard_normal(2)}
    >>> result = check_gradients(linear_forward, linear_backward, inputs, verbose=False)
    >>> result.passed, [r.name for r in result.rows]
    (True, ['dx', 'dW', 'db'])
    """
    eps, warn, fail, max_entries = _check_settings(eps, warn, fail, max_entries)
    rng = as_rng(0 if rng is None else rng)
    if not isinstance(inputs, Mapping):
        raise TypeError(f"inputs: expected a dict of keyword arguments for forward_fn, got "
                        f"{type(inputs).__name__}.")
    if wrt is None:
        names = [k for k, v in inputs.items() if isinstance(v, np.ndarray) and v.dtype.kind == "f"]
    else:
        names = [wrt] if isinstance(wrt, str) else list(wrt)
        unknown = [k for k in names if k not in inputs]
        if unknown:
            raise KeyError(f"wrt: {unknown} are not keys of inputs ({list(inputs)}).")
    for k in names:
        require_float64_array(inputs[k], f"inputs[{k!r}]")
    work = {k: (np.array(v, copy=True) if k in names else v) for k, v in inputs.items()}

    def run():
        res = forward_fn(**work)
        if not isinstance(res, tuple) or len(res) not in (2, 3):
            got = f"a tuple of length {len(res)}" if isinstance(res, tuple) else type(res).__name__
            raise TypeError("forward_fn: expected it to return (out, cache) or (out, log_det, cache) "
                            f"-- the cache last -- got {got}.")
        return res

    res = run()
    with_log_det = len(res) == 3
    outs = [np.asarray(o, dtype=np.float64) for o in res[:-1]]
    upstream = [rng.standard_normal(o.shape) for o in outs]
    back = backward_fn(*upstream, res[-1])
    analytic = parse_gradients(back, names)

    rows, targets = [], []
    for k in names:
        g = analytic.pop(k, None)
        if g is None:
            note = (f"!backward_fn returned no gradient for {k!r}" if wrt is not None
                    else f"no gradient returned; {k!r} treated as a constant")
            targets.append((f"d{k}", work[k], None, note))
            continue
        g = np.asarray(g, dtype=np.float64)
        if g.shape != work[k].shape:
            rows.append(GradcheckRow(f"d{k}", direction, None, "FAIL",
                                     f"gradient shape {g.shape} != input shape {work[k].shape}"))
            continue
        targets.append((f"d{k}", work[k], g, ""))
    rows = _gradient_rows(targets, lambda: run()[:-1], upstream, direction, eps, warn, fail,
                          max_entries, rng) + rows
    order = {f"d{k}": i for i, k in enumerate(names)}
    rows.sort(key=lambda r: order.get(r.name, len(order)))
    for k in analytic:
        rows.append(GradcheckRow(f"d{k}", direction, None, "FAIL",
                                 f"backward_fn returned a gradient for {k!r}, which is not a checked input"))
    label = name or getattr(forward_fn, "__name__", "function")
    result = GradcheckResult(f"{label}{' (with log_det)' if with_log_det else ''}", rows,
                             eps, warn, fail)
    if verbose:
        print(result.table())
    return result


def parse_gradients(back, names):
    """Turn any accepted backward return value into ``{input name: gradient}``.

    Accepted: a dict; ``(d_first, grads_dict)``; a tuple of arrays in the order of ``names``;
    a single array (the gradient of ``names[0]``). Used by :func:`check_gradients` and by the
    exercise grader.
    """
    if isinstance(back, Mapping):
        return dict(back)
    if isinstance(back, np.ndarray):
        return {names[0]: back}
    if isinstance(back, (tuple, list)):
        if len(back) == 2 and isinstance(back[1], Mapping):
            grads = dict(back[1])
            grads[names[0]] = back[0]
            return grads
        if len(back) != len(names):
            raise ValueError(f"backward_fn returned {len(back)} gradients but {len(names)} inputs are "
                             f"checked ({names}); pass wrt=(...) naming the inputs in the order of "
                             "the returned gradients.")
        return dict(zip(names, back))
    raise TypeError(f"backward_fn: expected a dict, (d_input, grads_dict), a tuple of arrays or an "
                    f"array, got {type(back).__name__}.")


# ------------------------------------------------------------------------------------------------
# Transforms and flows: one protocol, one check
# ------------------------------------------------------------------------------------------------
class _Model:
    """A Transform or a Flow seen through one protocol: run, backprop, params, grads."""

    def __init__(self, obj):
        p = getattr(obj, "params", None)
        for m in ("forward", "inverse", "backward", "inverse_backward"):
            if not callable(getattr(obj, m, None)):
                raise TypeError(f"{type(obj).__name__}: expected a Transform or a Flow with a "
                                f"{m}() method.")
        if isinstance(p, Mapping):          # a Transform: t.params / t.grads are dicts
            self._params = lambda: obj.params
            self._grads = lambda: obj.grads
        elif callable(p) and callable(getattr(obj, "grads", None)):   # a Flow: params() / grads()
            self._params, self._grads = obj.params, obj.grads
        else:
            raise TypeError(f"{type(obj).__name__}: expected a Transform (params dict) or a Flow "
                            "(params() and grads() methods).")
        self.obj = obj
        nm = getattr(obj, "name", None)
        self.name = nm if isinstance(nm, str) else type(obj).__name__
        self.dim = getattr(obj, "dim", None)
        if self.dim is None:
            self.dim = getattr(getattr(obj, "base", None), "dim", None)

    def run(self, direction, inp, context=None):
        step = self.obj.forward if direction == "forward" else self.obj.inverse
        out, log_det = step(inp) if context is None else step(inp, context=context)
        return np.asarray(out), np.asarray(log_det)

    def backprop(self, direction, d_out, dlog_det):
        f = self.obj.backward if direction == "forward" else self.obj.inverse_backward
        return np.asarray(f(d_out, dlog_det))

    def params(self):
        params = self._params()
        for k, v in params.items():
            require_float64_array(v, f"{self.name} parameter {k!r}")
        again = self._params()   # must be the live arrays, or perturbing them changes nothing
        for k, v in params.items():
            if v.size and (k not in again or not np.shares_memory(v, again[k])):
                raise TypeError(f"{self.name}.params(): parameter {k!r} is a new copy on every "
                                "call; gradcheck (and the optimizers) need the live arrays.")
        return params

    def grads(self):
        return {k: np.array(v, dtype=np.float64, copy=True) for k, v in self._grads().items()}


def _validate_points(x, model, n, rng):
    if x is None:
        if model.dim is None:
            raise ValueError(f"x: {model.name} has no .dim, so pass the points x of shape (N, D).")
        return rng.standard_normal((n, model.dim))
    if not isinstance(x, np.ndarray):
        x = np.asarray(x)
    require_float64_array(x, "x")
    if x.ndim != 2 or (model.dim is not None and x.shape[1] != model.dim) or x.shape[0] == 0:
        raise ValueError(f"x: expected shape (N, {model.dim or 'D'}) with N >= 1, got {x.shape}.")
    if not np.all(np.isfinite(x)):
        raise ValueError("x: expected finite values.")
    return x.copy()


def _validate_context(context, model, n, rng):
    """The context rows of a conditional model's check (None for an unconditional one).

    The rules of every pass (:func:`nfscratch._validate.as_context`: refused by an unconditional
    model, one finite row of ``context_dim`` per point), plus gradcheck's own: a missing context
    is drawn from ``rng``, and a given one must already be float64, since it is perturbed (a
    copy of it) in place.
    """
    c = getattr(model.obj, "context_dim", 0) or 0
    if c and context is None:
        return rng.standard_normal((n, c))
    if c:
        require_float64_array(context if isinstance(context, np.ndarray) else np.asarray(context),
                              "context")
    context = as_context(context, c, n, model.name)
    return None if context is None else context.copy()


def _check_direction(model, direction, inp, params, opts, rng, ctx=None):
    """All rows of one direction; returns (rows, out, log_det) -- out None if the pass failed.

    ``ctx`` (N, C) is the context of a conditional model; its gradient ``dcontext`` (stored by
    the backward pass) is checked like a parameter's, by perturbing ``ctx`` in place."""
    eps, warn, fail, max_entries, n_logdet = opts
    d_in = "dz" if direction == "forward" else "dx"
    back = "backward" if direction == "forward" else "inverse_backward"
    try:
        out, log_det = model.run(direction, inp.copy(), ctx)
    except NotImplementedError as exc:
        return [GradcheckRow(f"{direction}()", direction, None, "SKIP", f"not provided: {exc}")], None, None
    except Exception as exc:   # a crash is a finding: report it and check the other direction
        return [GradcheckRow(f"{direction}()", direction, None, "FAIL",
                             f"raised {type(exc).__name__}: {exc}")], None, None
    N, D = inp.shape
    problems = []
    if out.shape != (N, D):
        problems.append(f"output shape {out.shape}, expected ({N}, {D})")
    if log_det.shape != (N,):
        problems.append(f"log_det shape {log_det.shape}, expected ({N},) -- one per sample, "
                        "not a broadcast scalar")
    if not problems and not (np.all(np.isfinite(out)) and np.all(np.isfinite(log_det))):
        problems.append("non-finite values in the output or log_det")
    out_name = "x" if direction == "forward" else "z"
    if problems:
        rows = [GradcheckRow("shapes", direction, None, "FAIL", "; ".join(problems))]
        return rows + skip_rows(direction, "skipped: the pass returned wrong shapes",
                                 [d_in, "log_det"]), None, None
    rows = [GradcheckRow("shapes", direction, None, "PASS", f"{out_name} {out.shape}, log_det {log_det.shape}")]
    out, log_det = out.copy(), log_det.copy()

    # -- gradients: analytic first (the FD passes below overwrite the cache) -------------------
    dout = rng.standard_normal(out.shape)
    dlog_det = rng.standard_normal(log_det.shape)
    try:
        din = model.backprop(direction, dout, dlog_det)
        grads = model.grads()
    except NotImplementedError as exc:
        rows.append(GradcheckRow(f"{back}()", direction, None, "SKIP", f"not provided: {exc}"))
        din = None
    except Exception as exc:
        rows.append(GradcheckRow(f"{back}()", direction, None, "FAIL", f"raised {type(exc).__name__}: {exc}"))
        din = None
    if din is not None:
        work = inp.copy()
        targets = []
        if din.shape != inp.shape:
            rows.append(GradcheckRow(d_in, direction, None, "FAIL",
                                     f"{back} returned shape {din.shape}, expected {inp.shape}"))
        else:
            targets.append((d_in, work, din, ""))
        for k, p in params.items():
            g = grads.get(k)
            if g is None:
                targets.append((f"d{k}", p, None, f"!{back} left no gradient for {k!r}"))
            elif g.shape != p.shape:
                rows.append(GradcheckRow(f"d{k}", direction, None, "FAIL",
                                         f"gradient shape {g.shape} != parameter shape {p.shape}"))
            else:
                targets.append((f"d{k}", p, g, ""))
        if ctx is not None:
            dctx = getattr(model.obj, "dcontext", None)
            if dctx is None or np.shape(dctx) != ctx.shape:
                targets.append(("dcontext", ctx, None,
                                f"!{back} left no dcontext of shape {ctx.shape}"))
            else:
                targets.append(("dcontext", ctx, np.array(dctx, dtype=np.float64), ""))
        # the input is perturbed in `work`, the context in `ctx`, parameters in place; all are
        # read by evaluate
        evaluate = lambda: model.run(direction, work, ctx)  # noqa: E731
        try:
            rows += _gradient_rows(targets, evaluate, [dout, dlog_det], direction, eps, warn, fail,
                                   max_entries, rng)
        except Exception as exc:   # e.g. a perturbation broke an invertibility constraint
            rows.append(GradcheckRow("gradients", direction, None, "FAIL",
                                     f"a finite-difference pass raised {type(exc).__name__}: {exc}"))
        extra = sorted(set(grads) - set(params))
        if extra:
            rows.append(GradcheckRow("grads", direction, None, "FAIL",
                                     f"gradients for unknown parameters {extra}"))

    # -- log-det against slogdet of the finite-difference Jacobian ------------------------------
    k = min(N, n_logdet)
    errs, details = [], []
    for i in range(k):
        c = None if ctx is None else ctx[i:i + 1]
        J = numerical_jacobian(lambda v: model.run(direction, v[None, :], c)[0][0], inp[i].copy(),
                               eps)
        sign, logabs = np.linalg.slogdet(J)
        errs.append(abs(logabs - log_det[i]) if sign != 0 else np.inf)
        details.append((i, log_det[i], logabs))
    err = float(max(errs))
    status = judge(err, warn, fail)
    jac = "dx/dz" if direction == "forward" else "dz/dx"
    detail = f"{k} sample{'s' if k > 1 else ''} vs slogdet of the FD Jacobian {jac}"
    if status != "PASS":
        i, ld, ref = details[int(np.argmax(errs))]
        detail += f"; worst sample {i}: log_det {ld:.6g} vs {ref:.6g}"
    rows.append(GradcheckRow("log_det", direction, err, status, detail, kind="abs"))
    return rows, out, log_det


def check_transform(model, x=None, *, context=None, directions=_DIRECTIONS, rng=None, eps=EPS,
                    warn=WARN, fail=FAIL, n=8, max_entries=200, n_logdet=5, verbose=True):
    """Check a Transform or a whole Flow: shapes, every gradient in both directions, log-det,
    round trip.

    A flow is checked as one big transform, so :func:`check_flow` is this same function. The
    parameters are perturbed in place (and restored exactly) and the analytic gradients read
    after ``backward`` / ``inverse_backward``: for a Transform from the dicts ``t.params`` and
    ``t.grads``; for a Flow from its methods ``params()`` (the live arrays) and ``grads()``,
    flat dicts keyed like ``"0.u"``, one row per key.

    Parameters
    ----------
    model : Transform or Flow
        Anything with ``forward``, ``inverse``, ``backward``, ``inverse_backward`` and
        parameters as described above.
    x : ndarray of float64, shape (N, D), optional
        Base-side points fed to ``forward``; the inverse direction is checked at
        ``forward(x)`` (or at ``x`` when forward is not provided). Default: ``n`` standard
        normal points. Non-float64 input is refused (see :mod:`nfscratch.gradcheck`).
    context : ndarray of float64, shape (N, C), optional
        For a conditional model (``context_dim = C > 0``): the context of each point, used in
        both directions; its gradient (``dcontext``, stored by the backward passes) is checked
        like a parameter's. Default: standard-normal rows. Refused for an unconditional model.
    directions : tuple of {"forward", "inverse"}, default both
        The round-trip and log-det-sum rows need both.
    rng : Generator or int, optional
        For the points, the upstream gradients and entry subsets; None means seed 0, so a
        check is reproducible.
    eps : float, default 1e-6
        Central-difference step.
    warn, fail : float, default 1e-7 and 1e-4
        A row WARNs above ``warn`` and FAILs above ``fail``.
    n : int, default 8
        Batch size when ``x`` is None (keep it small: every checked entry costs two passes).
    max_entries : int, default 200
        Per input or parameter tensor, check at most this many entries (seeded random subset).
    n_logdet : int, default 5
        Samples whose log-det is compared with ``slogdet`` of the FD Jacobian.
    verbose : bool, default True
        Print the table.

    Returns
    -------
    GradcheckResult
        ``.passed``, ``.rows``, ``.table()``; parameters are left bit-for-bit unchanged.

    Examples
    --------
    >>> from nfscratch.transforms.base import Transform
    >>> class Shift(Transform):                     # x = z + t, log|det| = 0
    ...     def __init__(self, dim):
    ...         super().__init__(dim)
    ...         self.params = {"t": np.zeros(dim)}
    ...     def _forward(self, z):
    ...         return z + self.params["t"], np.zeros(len(z)), {"n": len(z)}
    ...     def _backward(self, dx, dlog_det, cache):
    ...         return dx, {"t": dx.sum(axis=0)}
    >>> result = check_transform(Shift(2), verbose=False)   # no inverse: those rows SKIP
    >>> result.passed, result.row("dt").status, result.row("inverse()").status
    (True, 'PASS', 'SKIP')
    """
    model = _Model(model)
    eps, warn, fail, max_entries = _check_settings(eps, warn, fail, max_entries)
    n = check_positive_int(n, "n")
    n_logdet = check_positive_int(n_logdet, "n_logdet")
    directions = (directions,) if isinstance(directions, str) else tuple(directions)
    bad = [d for d in directions if d not in _DIRECTIONS]
    if bad or not directions:
        raise ValueError(f"directions: expected a non-empty subset of {_DIRECTIONS}, got {directions!r}.")
    rng = as_rng(0 if rng is None else rng)
    params = model.params()                          # validated float64, live
    z = _validate_points(x, model, n, rng)
    ctx = _validate_context(context, model, z.shape[0], rng)
    opts = (eps, warn, fail, max_entries, n_logdet)

    rows, fwd = [], None
    if "forward" in directions:
        r, x_out, ld_f = _check_direction(model, "forward", z, params, opts, rng, ctx)
        rows += r
        if x_out is not None:
            fwd = (x_out, ld_f)
    if "inverse" in directions:
        # evaluate the inverse inside the range of the transform, at x = forward(z)
        x_in = fwd[0] if fwd is not None else z
        r, z_back, ld_i = _check_direction(model, "inverse", x_in, params, opts, rng, ctx)
        rows += r
        if len(directions) == 2:
            if fwd is None or z_back is None:
                why = "needs both forward and inverse"
                rows += skip_rows("both", why, ["round trip", "log_det sum"])
            else:
                err = float(np.max(np.abs(z_back - z)))
                rows.append(GradcheckRow("round trip", "both", err, judge(err, warn, fail),
                                         "max |inverse(forward(z)) - z|", kind="abs"))
                err = float(np.max(np.abs(fwd[1] + ld_i)))
                rows.append(GradcheckRow("log_det sum", "both", err, judge(err, warn, fail),
                                         "max |log_det_forward(z) + log_det_inverse(x)|, must be 0",
                                         kind="abs"))
    result = GradcheckResult(model.name, rows, eps, warn, fail, n=z.shape[0])
    if verbose:
        print(result.table())
    return result


check_flow = check_transform    # a Flow has the same protocol: one body for both


def check_all(models, *, verbose=True, **kwargs):
    """Check several transforms and/or flows; print a one-line-per-model summary.

    Parameters
    ----------
    models : list of Transform/Flow, or dict of name -> Transform/Flow
    verbose : bool, default True
        Print the full table of every model that does not pass, then the summary.
    **kwargs
        Passed to :func:`check_transform` (``rng``, ``eps``, ``n``, ...).

    Returns
    -------
    dict of str -> GradcheckResult
        Keyed by the given names, or by ``model.name`` (``"Planar#2"`` for a repeat).
    """
    allowed = set(inspect.signature(check_transform).parameters) - {"model", "verbose"}
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        raise TypeError(f"check_all: unexpected keyword arguments {unknown}; accepted: {sorted(allowed)}.")
    if isinstance(models, Mapping):
        items = [(str(k), m) for k, m in models.items()]
    else:
        items, seen = [], {}
        for m in models:
            name = _Model(m).name
            seen[name] = seen.get(name, 0) + 1
            k = seen[name]
            items.append((name if k == 1 else f"{name}#{k}", m))
    results = {}
    for name, m in items:
        results[name] = check_transform(m, **{**kwargs, "verbose": False})
        results[name].name = name
    if verbose:
        print(summary(results))
    return results


# ------------------------------------------------------------------------------------------------
# The built-in transforms, ready to check
# ------------------------------------------------------------------------------------------------
def perturb_params(model, rng=None, scale=0.5):
    """Add ``N(0, scale^2)`` noise to every parameter of a Transform or Flow, in place.

    Freshly built layers start near the identity (a coupling's last layer is zero), where many
    gradients are exactly zero and a check would test nothing; perturbing first makes every
    term of every backward pass matter.
    """
    rng = as_rng(0 if rng is None else rng)
    params = model.params() if callable(model.params) else model.params
    for p in params.values():
        p += scale * rng.standard_normal(p.shape)
    return model


def builtin_examples(dim=2, rng=None):
    """One instance of every built-in transform (and of its variants: unconstrained planar,
    block masks, every activation), with perturbed parameters, keyed by name.

    This is the list ``nfscratch gradcheck`` checks and the test suite parametrizes over. For
    ``dim = 1`` the couplings, which need two features, are left out.
    """
    from ..transforms import (IAF, MAF, AdditiveCoupling, AffineCoupling, ElementwiseAffine, Logit,
                              Permute, Planar, PlanarChain, Radial, Reverse, SplineAutoregressive,
                              SplineCoupling)
    from ..transforms import ActNorm, FactorOut, LULinear
    from ..transforms import IAFChain
    rng = as_rng(0 if rng is None else rng)
    # a block mask (first half conditions the rest) besides the alternating ones
    block = [1 if d < max(1, dim // 2) else 0 for d in range(dim)]
    builders = {
        "Planar": lambda: Planar(dim, rng=rng),
        "Planar(unconstrained)": lambda: Planar(dim, rng=rng, constrain=False),
        "PlanarChain": lambda: PlanarChain(dim, 3, rng=rng),
        "AffineCoupling": lambda: AffineCoupling(dim, hidden=[16, 16], rng=rng),
        "AffineCoupling(relu, parity 1)": lambda: AffineCoupling(dim, hidden=[8], activation="relu",
                                                                 parity=1, rng=rng),
        "AffineCoupling(block mask, leaky_relu)": lambda: AffineCoupling(
            dim, mask=block, hidden=[8, 8], activation="leaky_relu", rng=rng),
        "AdditiveCoupling": lambda: AdditiveCoupling(dim, hidden=[16], rng=rng),
        "AdditiveCoupling(block mask, softplus)": lambda: AdditiveCoupling(
            dim, mask=block, hidden=[8], activation="softplus", rng=rng),
        "Permute": lambda: Permute(dim, rng=rng),
        "Reverse": lambda: Reverse(dim),
        "ElementwiseAffine": lambda: ElementwiseAffine(dim),
        "Radial": lambda: Radial(dim, rng=rng),
        "Logit": lambda: Logit(dim),
        # autoregressive: each direction once as the one pass and once as the D-pass solve
        "MAF": lambda: MAF(dim, hidden=[8, 8], rng=rng),
        "IAF(random order, relu)": lambda: IAF(dim, hidden=[8], order="random", seed=1,
                                               activation="relu", rng=rng),
        "SplineCoupling": lambda: SplineCoupling(dim, hidden=[8], n_bins=4, bound=3.0, rng=rng),
        # images: ActNorm past its data-dependent initialization, LU mixing, a factor-out whose
        # inner chain runs on every other feature
        "ActNorm": lambda: ActNorm(dim, initialized=True),
        "LULinear": lambda: LULinear(dim, rng=rng),
        "FactorOut": lambda: FactorOut(dim, keep=range(0, dim, 2), layers=[
            ElementwiseAffine(len(range(0, dim, 2))), LULinear(len(range(0, dim, 2)), rng=rng)]),
        "SplineAutoregressive(reverse order)": lambda: SplineAutoregressive(
            dim, hidden=[8], n_bins=4, bound=3.0, order="reverse", rng=rng),
        "IAFChain": lambda: IAFChain(dim, 3, hidden=[8], orders="random", rng=rng),
    }
    # couplings and autoregressive layers need two features; the rest work from D = 1
    layers = {name: build() for name, build in builders.items()
              if dim >= 2 or not ("Coupling" in name or "AF" in name or "Autoregressive" in name)}
    for t in layers.values():
        perturb_params(t, rng)
    if "Planar(unconstrained)" in layers:   # keep w.u > -1/2: the map must stay invertible
        p = layers["Planar(unconstrained)"].params
        wu, ww = p["w"] @ p["u"], p["w"] @ p["w"]
        if wu < -0.5:
            p["u"] += (-0.5 - wu) / ww * p["w"]
    if "SplineCoupling" in layers:          # gentler bins: steep inverses make FD noisy, not wrong
        layers["SplineCoupling"].params["W1"] *= 0.5
    return layers
