r"""Grade one function of a student's file: the checks behind ``nfscratch exercises check``.

This module runs *inside the worker process* (see :mod:`nfscratch.exercises.runner`), next to
the student's imported module; it returns plain dicts (numbers and strings) that the parent
process prints. There are four kinds of exercise function:

``BackwardSpec``
    A ``<name>_backward(dout, [dlog_det,] cache)`` beside the file's own forward. Rows: the
    forward value against nfscratch's reference, then one row per gradient with two errors:
    against central differences of the student's *own* forward (:func:`nfscratch.gradcheck.
    check_gradients`) and against the reference gradient for the same upstream gradients.
``ValueSpec``
    A function returning one array, e.g. a per-sample log-det. Compared with the reference
    and, for a log-det, with ``slogdet`` of the finite-difference Jacobian of the map.
``JacobianSpec``
    A finite-difference Jacobian routine, tried on maps whose Jacobian is known exactly.
``ScalarSpec``
    A function returning one number, tried on cases whose answer is known.

Every comparison that fails goes through :func:`nfscratch.exercises.diagnose.compare`, which
names the usual mistake. All inputs come from fixed seeds, everything is float64, so a grade is
reproducible.
"""
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..gradcheck import check_gradients, numerical_jacobian, parse_gradients
from .diagnose import compare, describe_exception

__all__ = ["BackwardSpec", "ValueSpec", "JacobianSpec", "ScalarSpec", "grade", "GRAD_TOL",
           "FD_TOL", "VALUE_TOL", "JAC_TOL", "SCALAR_TOL", "UPSTREAM_SEED"]

#: a gradient passes at or below these relative errors (reference, finite differences)
GRAD_TOL = 1e-6
FD_TOL = 1e-5
#: forward values and returned arrays: relative error against the reference
VALUE_TOL = 1e-8
#: a finite-difference Jacobian against the exact one (central differences reach ~1e-10)
JAC_TOL = 1e-7
#: scalar answers: absolute error
SCALAR_TOL = 1e-6
UPSTREAM_SEED = 1234


@dataclass
class BackwardSpec:
    """A backward pass to grade against a reference.

    ``forward`` names the student's forward in the same file; ``inputs()`` builds the keyword
    arguments (float64, fixed seed); ``wrt`` lists the inputs that receive a gradient, in the
    order a tuple-returning backward uses. ``call_forward(fn, inputs)`` adapts the flat inputs to
    the forward's signature (e.g. packs MLP weights into a dict). ``variants(inputs, dout,
    dlog_det)`` may return extra ``(diagnosis, {name: gradient})`` pairs.
    """
    name: str
    forward: str
    inputs: object
    wrt: tuple
    ref_forward: object
    ref_backward: object
    call_forward: object = None
    direction: str = "forward"
    variants: object = None
    depends_on: tuple = ()
    summary: str = ""
    kind: str = field(default="backward", init=False)


@dataclass
class ValueSpec:
    """A function returning one array, compared with ``reference(**inputs)``.

    ``point_map(inputs)`` (optional) returns the single-sample map ``f`` whose log|det J| the
    array should be: then the row also reports the error against slogdet of its FD Jacobian.
    ``more_inputs`` lists further ``(label, inputs)`` cases, each graded in a row of its own
    (e.g. parameters where the determinant is negative, so that a missing ``abs`` shows).
    """
    name: str
    inputs: object
    reference: object
    variants: object = None
    point_map: object = None
    more_inputs: tuple = ()
    what: str = "log_det"
    depends_on: tuple = ()
    summary: str = ""
    kind: str = field(default="value", init=False)


@dataclass
class JacobianSpec:
    """A Jacobian routine ``fn(f, z) -> J (M, D)``, tried on ``cases() -> [(label, f, z, J, nonlinear)]``."""
    name: str
    cases: object
    depends_on: tuple = ()
    summary: str = ""
    kind: str = field(default="jacobian", init=False)


@dataclass
class ScalarSpec:
    """A function returning a number, tried on ``cases() -> [(label, args, expected, variants)]``."""
    name: str
    cases: object
    depends_on: tuple = ()
    summary: str = ""
    kind: str = field(default="scalar", init=False)


# ------------------------------------------------------------------------------------------------
def _row(check, status, fd_error=None, ref_error=None, threshold="", diagnosis="", kind="rel"):
    return {"check": check, "fd_error": _num(fd_error), "ref_error": _num(ref_error),
            "threshold": threshold, "status": status, "diagnosis": diagnosis, "kind": kind}


def _num(x):
    return None if x is None else float(x)


def _student_frames(exc, path):
    """(lineno, source) of the traceback frames inside the student's file."""
    if exc is None or path is None:
        return []
    frames = traceback.extract_tb(exc.__traceback__)
    return [(f.lineno, f.line or "") for f in frames if f.filename == str(path)]


def _exc_text(exc, path):
    hint = f"stuck? `nfscratch exercises hint {Path(path).name}`" if path else ""
    return describe_exception(exc, _student_frames(exc, path), hint)


def _copy_inputs(inputs):
    return {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in inputs.items()}


def grade(spec, module, path=None):
    """Grade ``spec`` against ``module`` (the student's); return a plain dict.

    ``{"function", "status", "rows": [...], "notes": [...]}``. Never raises for a student's
    mistake: every exception becomes a FAIL row with a diagnosis.
    """
    fn = getattr(module, spec.name, None)
    if not callable(fn):
        rows = [_row(spec.name, "FAIL", diagnosis=f"no function called {spec.name} in your file "
                                                  "(was it renamed?).")]
        return _result(spec, rows, [])
    with np.errstate(all="ignore"):
        rows, notes = _GRADERS[spec.kind](spec, module, fn, path)
    return _result(spec, rows, notes)


def _result(spec, rows, notes):
    status = "PASS" if rows and all(r["status"] == "PASS" for r in rows) else "FAIL"
    return {"function": spec.name, "status": status, "rows": rows, "notes": notes,
            "kind": spec.kind, "summary": spec.summary, "depends_on": list(spec.depends_on)}


# -- backward ------------------------------------------------------------------------------------
def _split_result(res, what):
    """(out, log_det or None, cache) from a forward's return value."""
    if not isinstance(res, tuple) or len(res) not in (2, 3):
        got = f"a tuple of length {len(res)}" if isinstance(res, tuple) else type(res).__name__
        raise TypeError(f"{what} must return (out, cache) or (out, log_det, cache), got {got}")
    if len(res) == 2:
        return res[0], None, res[1]
    return res


def _grade_backward(spec, module, fn, path):
    fwd = getattr(module, spec.forward, None)
    names = list(spec.wrt)
    call = spec.call_forward or (lambda f, kw: f(**kw))
    if not callable(fwd):
        why = f"the forward function {spec.forward} is missing from your file."
        return [_row("forward value", "FAIL", diagnosis=why)], []
    inputs = spec.inputs()
    notes = []
    # -- forward value ---------------------------------------------------------------------------
    ref_out, ref_ld, _ = _split_result(spec.ref_forward(**_copy_inputs(inputs)), "the reference")
    try:
        out, log_det, cache = _split_result(call(fwd, _copy_inputs(inputs)), spec.forward)
    except Exception as exc:                     # noqa: BLE001 - a student's bug is a finding
        why = f"{spec.forward} " + _exc_text(exc, path)
        return [_row("forward value", "FAIL", threshold=f"{VALUE_TOL:.0e}", diagnosis=why),
                _row(f"{spec.name}()", "FAIL", diagnosis="not run: the forward pass failed")], []
    errs, diags = [], []
    for label, got, want in (("out", out, ref_out), ("log_det", log_det, ref_ld)):
        if want is None:
            continue
        err, diag = compare(f"{spec.forward}'s {label}", got, want, what=label, tol=VALUE_TOL)
        errs.append(np.inf if err is None else err)
        if diag:
            diags.append(diag)
    ferr = float(max(errs))
    rows = [_row("forward value", "PASS" if not diags else "FAIL", ref_error=ferr,
                 threshold=f"{VALUE_TOL:.0e}",
                 diagnosis=("" if not diags else "your forward pass differs from nfscratch's: "
                            + "; ".join(diags) + " (it was given: did it get edited?)"))]
    with_log_det = ref_ld is not None
    # -- the student's gradients for fixed upstream gradients -------------------------------------
    rng = np.random.default_rng(UPSTREAM_SEED)
    dout = rng.standard_normal(np.shape(ref_out))
    dlog = rng.standard_normal(np.shape(ref_ld)) if with_log_det else None

    def ref_grads(d_out, d_log):
        _, _, rc = _split_result(spec.ref_forward(**_copy_inputs(inputs)), "the reference")
        back = spec.ref_backward(d_out, d_log, rc) if with_log_det else spec.ref_backward(d_out, rc)
        return parse_gradients(back, names)

    want = ref_grads(dout, dlog)
    variants = {k: [] for k in names}
    if with_log_det:
        for label, g in (
                ("the log-det term is missing: this is the gradient with dlog_det = 0. L also "
                 "depends on log_det, so add its path (dL/dlog_det times the derivative of the "
                 "log-det).", ref_grads(dout, np.zeros_like(dlog))),
                ("the log-det term has the wrong sign: this is the gradient with -dlog_det.",
                 ref_grads(dout, -dlog)),
                ("only the log-det term: the path through the output (dout) is missing.",
                 ref_grads(np.zeros_like(dout), dlog))):
            for k in names:
                variants[k].append((label, g[k]))
    if spec.variants is not None:
        for label, g in spec.variants(_copy_inputs(inputs), dout, dlog):
            for k in names:
                if k in g:
                    variants[k].append((label, g[k]))
    try:
        args = (dout.copy(), dlog.copy(), cache) if with_log_det else (dout.copy(), cache)
        got = parse_gradients(fn(*args), names)
    except Exception as exc:                     # noqa: BLE001
        why = _exc_text(exc, path)
        return rows + [_row(f"{spec.name}()", "FAIL", threshold=f"{GRAD_TOL:.0e}",
                            diagnosis=why)], notes
    # a backward that writes into its upstream gradient breaks its caller (a flow passes the same
    # array on), and it spoils the finite-difference check below, which reuses its upstream
    upstream = [("its upstream gradient (the first argument)", args[0], dout)]
    if with_log_det:
        upstream.append(("dlog_det", args[1], dlog))
    mutated = [label for label, given, kept in upstream if not _unchanged(given, kept)]
    if mutated:
        rows.append(_row("upstream unchanged", "FAIL", diagnosis=(
            f"your {spec.name} changed {' and '.join(mutated)} in place "
            "(e.g. `dz = dx` then `dz[...] += ...`, or `dx *= ...`): the caller still needs it. "
            "Build new arrays (dz = dx.copy(), np.empty_like(dx), dz = dx + ...).")))
    # -- gradcheck: the student's backward against central differences of the student's forward --
    fd = {}
    try:
        res = check_gradients(lambda **kw: call(fwd, kw), fn, _copy_inputs(inputs), wrt=names,
                              rng=0, warn=1e-7, fail=FD_TOL, max_entries=60,
                              direction=spec.direction, name=spec.name, verbose=False)
        fd = {r.name: r for r in res.rows}
    except Exception as exc:                     # noqa: BLE001
        notes.append("the finite-difference check could not run: " + _exc_text(exc, path))
    for k in names:
        g = f"d{k}"
        err, diag = compare(g, got.get(k), want[k], variants[k], tol=GRAD_TOL)
        r = fd.get(g)
        fd_err = r.error if r is not None else None
        fd_ok = r is not None and r.status in ("PASS", "WARN")
        if not diag and not fd_ok:
            if r is None:
                diag = "the finite-difference check could not run (see the notes)."
            elif mutated:
                diag = ("matches nfscratch's gradient, but the finite-difference check saw its "
                        "upstream gradient change under it: see 'upstream unchanged'.")
            else:
                diag = ("matches nfscratch's gradient but not finite differences of your forward "
                        "pass: was the forward edited?")
        status = "PASS" if not diag else "FAIL"
        rows.append(_row(g, status, fd_error=fd_err, ref_error=err,
                         threshold=f"{GRAD_TOL:.0e} / {FD_TOL:.0e}", diagnosis=diag))
    extra = sorted(set(got) - set(names))
    if extra:
        notes.append(f"gradients returned for unknown names {extra} were ignored; expected "
                     f"{names}.")
    return rows, notes


def _unchanged(given, kept):
    given = np.asarray(given)
    return given.shape == kept.shape and np.array_equal(given, kept, equal_nan=True)


# -- value ---------------------------------------------------------------------------------------
def _grade_value(spec, module, fn, path):
    cases = [(spec.what, spec.inputs)] + list(spec.more_inputs)
    return [_value_row(spec, fn, path, label, make()) for label, make in cases], []


def _value_row(spec, fn, path, label, inputs):
    want = np.asarray(spec.reference(**_copy_inputs(inputs)), dtype=np.float64)
    variants = list(spec.variants(**_copy_inputs(inputs))) if spec.variants else []
    try:
        got = fn(**_copy_inputs(inputs))
    except Exception as exc:                     # noqa: BLE001
        return _row(label, "FAIL", threshold=f"{VALUE_TOL:.0e}", diagnosis=_exc_text(exc, path))
    err, diag = compare(spec.what, got, want, variants, what=spec.what, tol=VALUE_TOL)
    fd_err = None
    if spec.point_map is not None and err is not None:
        # the brute-force check: slogdet of the finite-difference Jacobian, sample by sample
        f = spec.point_map(_copy_inputs(inputs))
        z = inputs["z"]
        brute = np.array([np.linalg.slogdet(numerical_jacobian(f, z[n].copy()))[1]
                          for n in range(z.shape[0])])
        fd_err = float(np.max(np.abs(np.asarray(got, dtype=np.float64) - brute)))
    return _row(label, "PASS" if not diag else "FAIL", fd_error=fd_err, ref_error=err,
                threshold=f"{VALUE_TOL:.0e}", diagnosis=diag, kind="value")


# -- jacobian ------------------------------------------------------------------------------------
def _grade_jacobian(spec, module, fn, path):
    rows = []
    for label, f, z, J, nonlinear in spec.cases():
        z_given = z.copy()
        try:
            got = fn(f, z_given)
        except Exception as exc:                 # noqa: BLE001
            rows.append(_row(label, "FAIL", threshold=f"{JAC_TOL:.0e}",
                             diagnosis=_exc_text(exc, path)))
            continue
        err, diag = compare("J", got, J, what="Jacobian", tol=JAC_TOL)
        if diag and err is not None and np.isfinite(err) and err < 1e-3 and nonlinear:
            diag = (f"close but not accurate enough ({err:.1e}): a one-sided difference "
                    "(f(z + eps) - f(z)) / eps is off by ~eps; use central differences "
                    "(f(z + eps) - f(z - eps)) / (2 eps), accurate to ~1e-10.")
        if not diag and not np.array_equal(z_given, z):
            diag = "your function changed z in place: perturb a copy (z = z.copy())."
        rows.append(_row(label, "PASS" if not diag else "FAIL", ref_error=err,
                         threshold=f"{JAC_TOL:.0e}", diagnosis=diag, kind="value"))
    return rows, []


# -- scalar --------------------------------------------------------------------------------------
def _grade_scalar(spec, module, fn, path):
    rows = []
    for label, args, expected, variants in spec.cases():
        try:
            got = fn(*args)
        except Exception as exc:                 # noqa: BLE001
            rows.append(_row(label, "FAIL", threshold=f"{SCALAR_TOL:.0e}",
                             diagnosis=_exc_text(exc, path), kind="abs"))
            continue
        try:
            value = float(np.asarray(got, dtype=np.float64).reshape(()))
        except (TypeError, ValueError):
            rows.append(_row(label, "FAIL", threshold=f"{SCALAR_TOL:.0e}", kind="abs",
                             diagnosis=f"expected one number, got {type(got).__name__} "
                                       f"{np.shape(got) if hasattr(got, 'shape') else ''}".strip()))
            continue
        err = abs(value - expected)
        diag = ""
        if not np.isfinite(value):
            diag = (f"got {value}: np.log(np.linalg.det(J)) is NaN when det J < 0; "
                    "np.linalg.slogdet(J)[1] is log|det J| for any sign.")
        elif err > SCALAR_TOL:
            for vlabel, v in variants:
                if abs(value - v) <= SCALAR_TOL * max(1.0, abs(v)):
                    diag = vlabel
                    break
            else:
                if value < 0:
                    diag = f"got {value:.6g} < 0: an error is the absolute difference, never negative."
                else:
                    diag = f"got {value:.6g}, expected {expected:.6g}."
        rows.append(_row(label, "PASS" if not diag else "FAIL", ref_error=err,
                         threshold=f"{SCALAR_TOL:.0e}", diagnosis=diag, kind="abs"))
    return rows, []


_GRADERS = {"backward": _grade_backward, "value": _grade_value, "jacobian": _grade_jacobian,
            "scalar": _grade_scalar}
