r"""Gradient checking: compare hand-written backward passes with central differences.

Every transform in nfscratch has a backward pass written by hand, and a backward pass that is a
little wrong still trains -- only worse, and nobody notices. This module compares each analytic
gradient with **central differences**

.. math:: \frac{\partial L}{\partial \theta_i} \approx
          \frac{L(\theta + \epsilon e_i) - L(\theta - \epsilon e_i)}{2 \epsilon}

and prints a table with one row per gradient and a PASS / WARN / FAIL / SKIP status.

What is checked
---------------
:func:`check_transform` (a :class:`~nfscratch.transforms.base.Transform`) and :func:`check_flow`
(a :class:`~nfscratch.flow.Flow`) run, on a small float64 batch (N = 8), in each direction:

* ``shapes``: the output is (N, D) and finite, ``log_det`` is (N,) -- one entry per sample,
  never a broadcast scalar;
* ``dz`` / ``dx`` and one row per parameter: the gradients left by ``backward`` (forward
  direction) or ``inverse_backward`` (inverse direction) for the scalar loss

  .. math:: L = \sum_{n,d} dout_{nd}\, out_{nd} + \sum_n dlog\_det_n\, log\_det_n

  with random upstream gradients ``dout ~ N(0, 1)`` (N, D) and ``dlog_det ~ N(0, 1)`` (N,).
  Random (not all-ones) so that no term cancels by accident and both outputs are exercised;
* ``log_det``: the log-det of a few samples against ``np.linalg.slogdet`` of the
  finite-difference Jacobian of the single-sample map (``log|det dx/dz|`` forward,
  ``log|det dz/dx|`` inverse);

and once for the pair: ``round trip`` (``max |inverse(forward(z)) - z|``) and ``log_det sum``
(``max |log_det_forward(z) + log_det_inverse(forward(z))|``, which must be 0). The inverse
direction is evaluated at ``x = forward(z)``, inside the range of the transform. A direction
that raises ``NotImplementedError`` is reported as SKIP ("not provided"), not as a crash.

:func:`check_gradients` does the same gradient comparison for a *pure* functional core,
``forward_fn(**inputs) -> (out, cache)`` or ``(out, log_det, cache)`` and
``backward_fn(dout, [dlog_det,] cache) -> gradients``, e.g. ``linear_forward`` /
``linear_backward`` or ``planar_forward`` / ``planar_backward``.

Thresholds
----------
A correct backward pass in float64 typically agrees to about 1e-10 (CS231n: "expect ~1e-10").
A row WARNs above ``warn=1e-7`` and FAILs above ``fail=1e-4`` unless told otherwise. Gradient
rows report :func:`rel_error` with a floor of ``REL_FLOOR`` (1%) of the largest gradient entry
in the same check: an entry that is zero up to rounding (~1e-10) would otherwise be divided by
~0 and FAIL a correct pass. The ``log_det``, ``round trip`` and ``log_det sum`` rows report an
absolute error (marked ``*``); for ``log_det`` that is already relative, since
``|Δ log|det J|| ≈ |Δ det J| / |det J|``.

Why float64 is required
-----------------------
Central differences have two errors: truncation, ``O(eps^2)`` from the Taylor series
(~1e-12 at ``eps = 1e-6``), and rounding, ``O(machine_eps / eps)``, because ``L(θ + eps)`` and
``L(θ - eps)`` share most of their digits and the subtraction cancels them. In float64 the
rounding term is ``2.2e-16 / 1e-6 ≈ 2e-10``; in float32 it is ``1.2e-7 / 1e-6 ≈ 1e-1`` -- as
large as the error a bug makes, so the check could not tell a bug from noise. Float32 (or any
non-float64) inputs and parameters are therefore refused with a ``TypeError``.

Two details keep the rounding noise near its floor: the differences are taken on the outputs
*before* contracting them with the upstream gradients (outputs the perturbation does not touch
cancel exactly), and they are divided by the step actually taken, ``(θ + eps) - (θ - eps)`` as
stored in floating point, rather than by ``2 eps``.

Cost
----
Each checked entry costs two passes. Every entry of an input or parameter tensor is checked up
to ``max_entries`` (200) entries; a larger tensor is checked on a seeded random subset of
``max_entries`` entries, and the detail column says so. A coupling layer whose conditioner has
~5000 parameters is checked in a fraction of a second.

References
----------
CS231n, ``gradient_check.py`` (Stanford, https://cs231n.github.io/optimization-1/).
Rezende & Mohamed, "Variational Inference with Normalizing Flows", ICML 2015, arXiv:1505.05770.
"""
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from ._validate import as_rng, check_positive_int

__all__ = ["rel_error", "numerical_gradient", "numerical_jacobian", "check_gradients",
           "check_transform", "check_flow", "check_all", "parse_gradients", "GradcheckResult",
           "GradcheckRow", "EPS", "WARN", "FAIL", "REL_FLOOR"]

EPS = 1e-6          # central-difference step
WARN = 1e-7         # error above this: WARN
FAIL = 1e-4         # error above this: FAIL
REL_FLOOR = 1e-2    # rel_error never divides by less than this fraction of the largest gradient
_TINY = 1e-300

_DIRECTIONS = ("forward", "inverse")


# ------------------------------------------------------------------------------------------------
# The three building blocks: relative error, numerical gradient, numerical Jacobian
# ------------------------------------------------------------------------------------------------
def rel_error(a, b, floor=1e-8):
    r"""Largest entrywise relative error between two arrays.

    .. math:: \max_i \frac{|a_i - b_i|}{\max(|a_i| + |b_i|,\ floor)}

    Entries where both are exactly 0 contribute 0. The ``floor`` stops entries that are zero
    up to rounding from dividing by ~0 (CS231n uses 1e-8); :func:`check_transform` passes a
    floor of ``REL_FLOOR`` times the largest gradient entry in the check.

    Parameters
    ----------
    a, b : array_like, same shape
    floor : float, default 1e-8

    Returns
    -------
    float
        In [0, 1]; NaN if either array holds NaN.

    Examples
    --------
    >>> rel_error(np.array([1.0, 2.0]), np.array([1.0, 2.0]))
    0.0
    >>> print(f"{rel_error(1.0, 1.1):.4f}")     # |1 - 1.1| / (1 + 1.1)
    0.0476
    >>> rel_error(0.0, 0.0)
    0.0
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"rel_error: a and b must have the same shape, got {a.shape} and {b.shape}.")
    return float(np.max(_rel_errors(a, b, floor), initial=0.0))


def _rel_errors(a, b, floor):
    num = np.abs(a - b)
    den = np.maximum(np.abs(a) + np.abs(b), max(float(floor), _TINY))
    return num / den          # NaN propagates: a NaN gradient must FAIL, not vanish


def numerical_gradient(f, x, eps=EPS):
    r"""Central-difference gradient of a scalar function of an array.

    ``x`` is perturbed **in place**, one entry at a time, and restored exactly, so it may be a
    parameter array that ``f`` reads from elsewhere (``f`` then ignores its argument).

    .. math:: g_i = \frac{f(x + \epsilon e_i) - f(x - \epsilon e_i)}{(x_i + \epsilon) - (x_i - \epsilon)}

    Parameters
    ----------
    f : callable
        ``f(x) -> float``.
    x : ndarray of float64, any shape
    eps : float, default 1e-6

    Returns
    -------
    ndarray, shape of ``x``

    Examples
    --------
    >>> x = np.array([[1.0, -2.0], [0.5, 3.0]])
    >>> g = numerical_gradient(lambda a: np.sum(a ** 2), x)
    >>> bool(np.allclose(g, 2 * x))
    True
    """
    _require_float64_array(x, "x")
    eps = _check_eps(eps)
    g = np.zeros(x.shape)
    for i in range(x.size):
        ix = np.unravel_index(i, x.shape)
        g[ix] = _central_difference(lambda: float(f(x)), x, ix, eps)
    return g


def numerical_jacobian(f, x, eps=EPS):
    r"""Central-difference Jacobian of a vector function, ``J[i, j] = d f_i / d x_j``.

    Parameters
    ----------
    f : callable
        ``f(x) -> ndarray`` of shape (M,), for ``x`` of shape (D,).
    x : ndarray of float64, shape (D,)
        Not modified (a copy is perturbed).
    eps : float, default 1e-6

    Returns
    -------
    ndarray, shape (M, D)

    Examples
    --------
    >>> A = np.array([[2.0, 1.0], [0.0, 3.0]])
    >>> J = numerical_jacobian(lambda v: A @ v, np.array([0.3, -0.7]))
    >>> bool(np.allclose(J, A))
    True
    """
    _require_float64_array(x, "x")
    if x.ndim != 1:
        raise ValueError(f"x: expected a 1-D point of shape (D,), got shape {x.shape}. "
                         "For a batched map, Jacobian one sample at a time: x[n].")
    eps = _check_eps(eps)
    x = x.copy()
    cols = []
    for j in range(x.size):
        cols.append(_central_difference(lambda: np.array(f(x), dtype=np.float64, copy=True),
                                        x, (j,), eps))
    return np.stack(cols, axis=-1).reshape(-1, x.size)


def _central_difference(evaluate, arr, ix, eps):
    """(evaluate() at arr[ix] + eps  minus  at arr[ix] - eps) / actual step; arr restored exactly."""
    old = arr[ix].copy()
    hi, lo = old + eps, old - eps
    try:
        arr[ix] = hi
        plus = evaluate()
        arr[ix] = lo
        minus = evaluate()
    finally:
        arr[ix] = old
    return (plus - minus) / (hi - lo)   # (hi - lo) is the step as stored, not exactly 2 eps


def _numerical_vjp(evaluate, arr, upstream, eps, flat_indices):
    """dL/darr at ``flat_indices`` for L = sum_k <upstream[k], evaluate()[k]>.

    The outputs are differenced before the contraction, so outputs that the perturbation does
    not touch cancel exactly instead of adding their rounding noise to L.
    """
    def outputs():
        return [np.array(o, dtype=np.float64, copy=True) for o in evaluate()]

    g = np.empty(len(flat_indices))
    for j, i in enumerate(flat_indices):
        ix = np.unravel_index(int(i), arr.shape)
        old = arr[ix].copy()
        hi, lo = old + eps, old - eps
        try:
            arr[ix] = hi
            plus = outputs()
            arr[ix] = lo
            minus = outputs()
        finally:
            arr[ix] = old
        g[j] = sum(float(np.sum(w * (p - m))) for w, p, m in zip(upstream, plus, minus)) / (hi - lo)
    return g


# ------------------------------------------------------------------------------------------------
# Results
# ------------------------------------------------------------------------------------------------
@dataclass
class GradcheckRow:
    """One line of the table.

    ``error`` is a relative error (``kind="rel"``, gradient rows) or an absolute one
    (``kind="abs"``: log-det, round trip, log-det sum); None for shape and SKIP rows.
    """
    name: str
    direction: str
    error: float | None
    status: str                 # "PASS", "WARN", "FAIL" or "SKIP"
    detail: str = ""
    kind: str = "rel"

    @property
    def max_rel_error(self):
        """Alias of ``error`` (the table's "max rel error" column)."""
        return self.error


@dataclass
class GradcheckResult:
    """The outcome of a check: rows plus the settings they were judged with.

    ``passed`` is True when no row FAILs (WARN and SKIP rows do not fail a check).
    ``str(result)`` is the table.
    """
    name: str
    rows: list = field(default_factory=list)
    eps: float = EPS
    warn: float = WARN
    fail: float = FAIL
    n: int | None = None

    @property
    def passed(self):
        return not any(r.status == "FAIL" for r in self.rows)

    @property
    def status(self):
        """Overall status: FAIL if any row fails, else WARN if any warns, else PASS."""
        statuses = {r.status for r in self.rows}
        return "FAIL" if "FAIL" in statuses else "WARN" if "WARN" in statuses else "PASS"

    @property
    def max_error(self):
        """Largest gradient (relative) error in the table, 0.0 if there is none."""
        errs = [r.error for r in self.rows if r.kind == "rel" and r.error is not None]
        return float(np.max(errs, initial=0.0))      # NaN if any gradient row is NaN

    def failures(self):
        """The FAIL rows."""
        return [r for r in self.rows if r.status == "FAIL"]

    def row(self, name, direction=None):
        """The row called ``name`` (in ``direction``, if given); KeyError if there is none."""
        for r in self.rows:
            if r.name == name and (direction is None or r.direction == direction):
                return r
        have = ", ".join(f"{r.name}/{r.direction}" for r in self.rows)
        raise KeyError(f"no row {name!r}{'' if direction is None else f' in direction {direction!r}'}; "
                       f"rows are: {have}")

    def counts(self):
        return {s: sum(r.status == s for r in self.rows) for s in ("PASS", "WARN", "FAIL", "SKIP")}

    def table(self):
        """The printed table: a header with the settings, one line per row, a verdict."""
        batch = "" if self.n is None else f", N={self.n}"
        lines = [f"gradcheck {self.name}: float64, eps={self.eps:.0e}{batch}; "
                 f"WARN > {self.warn:.0e}, FAIL > {self.fail:.0e}"]
        cells = [("check", "direction", "max rel error", "status", "detail")]
        for r in self.rows:
            if r.error is None:
                err = "-"
            else:
                err = f"{r.error:.1e}" + ("*" if r.kind == "abs" else " ")
            cells.append((r.name, r.direction, err, r.status, r.detail))
        widths = [max(len(c[i]) for c in cells) for i in range(4)]
        for k, c in enumerate(cells):
            lines.append("  ".join([c[0].ljust(widths[0]), c[1].ljust(widths[1]),
                                    c[2].rjust(widths[2]), c[3].ljust(widths[3]), c[4]]).rstrip())
            if k == 0:
                lines.append("  ".join("-" * w for w in widths) + "  ------")
        if any(r.kind == "abs" and r.error is not None for r in self.rows):
            lines.append("* absolute error: log_det rows compare log|det J| (a relative error of "
                         "|det J|); round trip in units of z.")
        c = self.counts()
        verdict = "PASSED" if self.passed else "FAILED"
        lines.append(f"{verdict}: {c['PASS']} PASS, {c['WARN']} WARN, {c['FAIL']} FAIL, {c['SKIP']} SKIP")
        return "\n".join(lines)

    def __str__(self):
        return self.table()


def _status(err, warn, fail):
    if err is None or not np.isfinite(err) or err > fail:
        return "FAIL"
    return "WARN" if err > warn else "PASS"


# ------------------------------------------------------------------------------------------------
# Validation of the checker's own arguments
# ------------------------------------------------------------------------------------------------
_FLOAT64_WHY = ("gradcheck needs float64: central differences with eps ~1e-6 have rounding "
                "error ~machine_eps/eps, about 2e-10 in float64 but 1e-1 in float32, so in "
                "float32 the check cannot tell a bug from rounding noise.")


def _require_float64_array(a, name):
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name}: expected a float64 ndarray (it is perturbed in place), got "
                        f"{type(a).__name__}. Make one with np.asarray({name}, dtype=np.float64).")
    if a.dtype != np.float64:
        raise TypeError(f"{name}: got dtype {a.dtype}; {_FLOAT64_WHY} Convert it with "
                        f"{name}.astype(np.float64).")


def _check_eps(eps):
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating, np.integer)) \
            or not np.isfinite(eps) or eps <= 0:
        raise ValueError(f"eps: expected a small positive step such as 1e-6, got {eps!r}.")
    return float(eps)


def _check_settings(eps, warn, fail, max_entries):
    eps = _check_eps(eps)
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
        num = _numerical_vjp(evaluate, arr, upstream, eps, idx)
        ana = np.asarray(analytic, dtype=np.float64).reshape(-1)[idx]
        compared.append((name, idx, ana, num, what, arr.shape))
    # one floor for the whole check: FD noise scales with the problem, not with each tensor
    vals = [np.abs(np.concatenate([c[2], c[3]])) for c in compared if len(c) > 2]
    scale = max([float(np.max(v, where=np.isfinite(v), initial=0.0)) for v in vals], default=0.0)
    floor = max(REL_FLOOR * scale, _TINY)
    rows = []
    for c in compared:
        if len(c) == 2:
            name, note = c
            rows.append(GradcheckRow(name, direction, None, "FAIL" if note.startswith("!") else "SKIP",
                                     note.lstrip("!")))
            continue
        name, idx, a, n, detail, shape = c
        errs = _rel_errors(a, n, floor)
        err = float("nan") if np.any(np.isnan(errs)) else float(np.max(errs, initial=0.0))
        status = _status(err, warn, fail)
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
        _require_float64_array(inputs[k], f"inputs[{k!r}]")
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
# Transforms and flows: one protocol, two adapters
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

    def run(self, direction, inp):
        out, log_det = (self.obj.forward if direction == "forward" else self.obj.inverse)(inp)
        return np.asarray(out), np.asarray(log_det)

    def backprop(self, direction, d_out, dlog_det):
        f = self.obj.backward if direction == "forward" else self.obj.inverse_backward
        return np.asarray(f(d_out, dlog_det))

    def params(self):
        params = self._params()
        for k, v in params.items():
            _require_float64_array(v, f"{self.name} parameter {k!r}")
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
    _require_float64_array(x, "x")
    if x.ndim != 2 or (model.dim is not None and x.shape[1] != model.dim) or x.shape[0] == 0:
        raise ValueError(f"x: expected shape (N, {model.dim or 'D'}) with N >= 1, got {x.shape}.")
    if not np.all(np.isfinite(x)):
        raise ValueError("x: expected finite values.")
    return x.copy()


def _skip_rows(direction, message, names):
    return [GradcheckRow(nm, direction, None, "SKIP", message) for nm in names]


def _check_direction(model, direction, inp, params, opts, rng):
    """All rows of one direction; returns (rows, out, log_det) -- out None if the pass failed."""
    eps, warn, fail, max_entries, n_logdet = opts
    d_in = "dz" if direction == "forward" else "dx"
    back = "backward" if direction == "forward" else "inverse_backward"
    try:
        out, log_det = model.run(direction, inp.copy())
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
        return rows + _skip_rows(direction, "skipped: the pass returned wrong shapes",
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
        # the input is perturbed in `work`; parameters in place. Both are read by evaluate.
        evaluate = lambda: model.run(direction, work)  # noqa: E731
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
        J = numerical_jacobian(lambda v: model.run(direction, v[None, :])[0][0], inp[i].copy(), eps)
        sign, logabs = np.linalg.slogdet(J)
        errs.append(abs(logabs - log_det[i]) if sign != 0 else np.inf)
        details.append((i, log_det[i], logabs))
    err = float(max(errs))
    status = _status(err, warn, fail)
    jac = "dx/dz" if direction == "forward" else "dz/dx"
    detail = f"{k} sample{'s' if k > 1 else ''} vs slogdet of the FD Jacobian {jac}"
    if status != "PASS":
        i, ld, ref = details[int(np.argmax(errs))]
        detail += f"; worst sample {i}: log_det {ld:.6g} vs {ref:.6g}"
    rows.append(GradcheckRow("log_det", direction, err, status, detail, kind="abs"))
    return rows, out, log_det


def _check_model(model, x=None, directions=_DIRECTIONS, rng=None, eps=EPS, warn=WARN, fail=FAIL,
                 n=8, max_entries=200, n_logdet=5, verbose=True):
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
    opts = (eps, warn, fail, max_entries, n_logdet)

    rows, fwd = [], None
    if "forward" in directions:
        r, x_out, ld_f = _check_direction(model, "forward", z, params, opts, rng)
        rows += r
        if x_out is not None:
            fwd = (x_out, ld_f)
    if "inverse" in directions:
        # evaluate the inverse inside the range of the transform, at x = forward(z)
        x_in = fwd[0] if fwd is not None else z
        r, z_back, ld_i = _check_direction(model, "inverse", x_in, params, opts, rng)
        rows += r
        if len(directions) == 2:
            if fwd is None or z_back is None:
                why = "needs both forward and inverse"
                rows += _skip_rows("both", why, ["round trip", "log_det sum"])
            else:
                err = float(np.max(np.abs(z_back - z)))
                rows.append(GradcheckRow("round trip", "both", err, _status(err, warn, fail),
                                         "max |inverse(forward(z)) - z|", kind="abs"))
                err = float(np.max(np.abs(fwd[1] + ld_i)))
                rows.append(GradcheckRow("log_det sum", "both", err, _status(err, warn, fail),
                                         "max |log_det_forward(z) + log_det_inverse(x)|, must be 0",
                                         kind="abs"))
    result = GradcheckResult(model.name, rows, eps, warn, fail, n=z.shape[0])
    if verbose:
        print(result.table())
    return result


_SHARED_DOC = r"""
    Parameters
    ----------
    {arg}
    x : ndarray of float64, shape (N, D), optional
        Base-side points fed to ``forward``; the inverse direction is checked at
        ``forward(x)`` (or at ``x`` when forward is not provided). Default: ``n`` standard
        normal points. Non-float64 input is refused (see the module docstring).
    directions : tuple of {{"forward", "inverse"}}, default both
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
"""


def check_transform(t, x=None, *, directions=_DIRECTIONS, rng=None, eps=EPS, warn=WARN, fail=FAIL,
                    n=8, max_entries=200, n_logdet=5, verbose=True):
    """Check a Transform: shapes, every gradient in both directions, log-det, round trip.

    Parameter gradients are read from ``t.grads`` and the parameters in ``t.params`` are
    perturbed in place (and restored exactly).
    {doc}
    Examples
    --------
    >>> from nfscratch.transforms.base import Transform
    >>> class Shift(Transform):                     # x = z + t, log|det| = 0
    ...     def __init__(self, dim):
    ...         super().__init__(dim)
    ...         self.params = {{"t": np.zeros(dim)}}
    ...     def _forward(self, z):
    ...         return z + self.params["t"], np.zeros(len(z)), {{"n": len(z)}}
    ...     def _backward(self, dx, dlog_det, cache):
    ...         return dx, {{"t": dx.sum(axis=0)}}
    >>> result = check_transform(Shift(2), verbose=False)   # no inverse: those rows SKIP
    >>> result.passed, result.row("dt").status, result.row("inverse()").status
    (True, 'PASS', 'SKIP')
    """
    return _check_model(_Model(t), x, directions, rng, eps, warn, fail, n, max_entries, n_logdet,
                        verbose)


def check_flow(flow, x=None, *, directions=_DIRECTIONS, rng=None, eps=EPS, warn=WARN, fail=FAIL,
               n=8, max_entries=200, n_logdet=5, verbose=True):
    """Check a whole flow the way :func:`check_transform` checks one layer.

    ``flow`` needs ``forward``, ``inverse``, ``backward``, ``inverse_backward`` and the flat
    dicts ``params()`` (the live arrays) and ``grads()``, keyed like ``"0.u"``; one row per key.
    {doc}"""
    return _check_model(_Model(flow), x, directions, rng, eps, warn, fail, n, max_entries, n_logdet,
                        verbose)


check_transform.__doc__ = check_transform.__doc__.format(
    doc=_SHARED_DOC.format(arg="t : Transform"))
check_flow.__doc__ = check_flow.__doc__.format(doc=_SHARED_DOC.format(arg="flow : Flow"))


def check_all(models, *, verbose=True, **kwargs):
    """Check several transforms and/or flows; print a one-line-per-model summary.

    Parameters
    ----------
    models : list of Transform/Flow, or dict of name -> Transform/Flow
    verbose : bool, default True
        Print the full table of every model that does not pass, then the summary.
    **kwargs
        Passed to :func:`check_transform` / :func:`check_flow` (``rng``, ``eps``, ``n``, ...).

    Returns
    -------
    dict of str -> GradcheckResult
        Keyed by the given names, or by ``model.name`` (``"Planar#2"`` for a repeat).
    """
    allowed = {"x", "directions", "rng", "eps", "warn", "fail", "n", "max_entries", "n_logdet"}
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        raise TypeError(f"check_all: unexpected keyword arguments {unknown}; accepted: {sorted(allowed)}.")
    if isinstance(models, Mapping):
        items = [(str(k), _Model(m)) for k, m in models.items()]
    else:
        items, seen = [], {}
        for m in models:
            model = _Model(m)
            seen[model.name] = seen.get(model.name, 0) + 1
            k = seen[model.name]
            items.append((model.name if k == 1 else f"{model.name}#{k}", model))
    results = {}
    for name, model in items:
        results[name] = _check_model(model, **{**kwargs, "verbose": False})
        results[name].name = name
    if verbose:
        print(_summary(results))
    return results


def _summary(results):
    """The tables of the models that did not pass, then one line per model."""
    lines = []
    for r in results.values():
        if r.status != "PASS":
            lines += [r.table(), ""]
    w = max([len(nm) for nm in results] + [5])
    lines.append(f"{'model'.ljust(w)}  status  max rel error  PASS  WARN  FAIL  SKIP")
    for nm, r in results.items():
        c = r.counts()
        lines.append(f"{nm.ljust(w)}  {r.status:<6}  {r.max_error:13.1e}  {c['PASS']:4d}  "
                     f"{c['WARN']:4d}  {c['FAIL']:4d}  {c['SKIP']:4d}")
    n_fail = sum(not r.passed for r in results.values())
    lines.append(f"{len(results) - n_fail} of {len(results)} passed")
    return "\n".join(lines)


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
    from .transforms import (AdditiveCoupling, AffineCoupling, ElementwiseAffine, Logit, Permute,
                             Planar, Radial, Reverse, SplineCoupling)
    rng = as_rng(0 if rng is None else rng)
    # a block mask (first half conditions the rest) besides the alternating ones
    block = [1 if d < max(1, dim // 2) else 0 for d in range(dim)]
    builders = {
        "Planar": lambda: Planar(dim, rng=rng),
        "Planar(unconstrained)": lambda: Planar(dim, rng=rng, constrain=False),
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
        "SplineCoupling": lambda: SplineCoupling(dim, hidden=[8], n_bins=4, bound=3.0, rng=rng),
    }
    # couplings need two features; the rest work from D = 1
    layers = {name: build() for name, build in builders.items()
              if dim >= 2 or "Coupling" not in name}
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
