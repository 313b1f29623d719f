"""Input checks shared by every public entry point.

Every public function converts its array arguments here, so that a wrong shape, a NaN or an
integer array is caught at the boundary with a message that names the argument, says what was
expected and what came, and how to fix it -- instead of surfacing as a broadcasting error or a
silent wrong number three layers deeper.
"""
import math
import numbers

import numpy as np

__all__ = ["as_batch", "as_float_array", "as_rng", "check_positive_int", "check_positive_float",
           "check_finite_float", "check_nonneg_float", "check_fraction", "check_choice",
           "check_widths", "check_callable", "check_upstream", "as_context", "check_context_dim",
           "check_time", "as_times"]


def _describe(a):
    return f"array of shape {a.shape} and dtype {a.dtype}"


def as_float_array(a, name, *, allow_nonfinite=False):
    """Return ``a`` as a float64 ndarray, refusing integer/bool/complex/object input and NaN/inf."""
    if isinstance(a, np.ndarray):
        arr = a
    else:
        try:
            arr = np.asarray(a)
        except Exception as exc:  # ragged lists and the like
            raise TypeError(f"{name}: expected an array of floats, got {type(a).__name__} "
                            f"that NumPy cannot turn into an array ({exc})") from None
    if arr.dtype.kind != "f":
        raise TypeError(f"{name}: expected a floating-point array, got {_describe(arr)}. "
                        f"Convert it first, e.g. {name}.astype(np.float64); integer data is "
                        "refused because a density over integers is not what a flow models.")
    arr = np.asarray(arr, dtype=np.float64)
    if not allow_nonfinite and not np.all(np.isfinite(arr)):
        bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
        raise ValueError(f"{name}: expected finite values, got {bad} NaN/inf entr"
                         f"{'y' if bad == 1 else 'ies'} in an {_describe(arr)}. "
                         "Remove or impute them before passing the data in.")
    return arr


def as_batch(x, dim, name="x", *, allow_empty=False, allow_nonfinite=False):
    """Return ``x`` as a C-contiguous float64 array of shape ``(N, dim)``.

    Parameters
    ----------
    x : array_like, shape (N, D)
    dim : int or None
        The expected number of features D (None accepts any).
    name : str
        The argument's name, used in error messages.
    """
    arr = as_float_array(x, name, allow_nonfinite=allow_nonfinite)
    if arr.ndim != 2:
        hint = (f" For a single point use {name}[None, :]." if arr.ndim == 1 else "")
        raise ValueError(f"{name}: expected a 2-D array of shape (N, {dim if dim is not None else 'D'}), "
                         f"got {arr.ndim}-D {_describe(arr)}.{hint}")
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(f"{name}: expected {dim} features (shape (N, {dim})), got {_describe(arr)}. "
                         "The flow was built for a different dimension.")
    if arr.shape[0] == 0 and not allow_empty:
        raise ValueError(f"{name}: expected at least one sample, got an empty batch ({_describe(arr)}).")
    return np.ascontiguousarray(arr)


#: The most iterations an iterative solver accepts (the planar inverse's root-find): more is a
#: typo or a hang, and the compiled kernels count in int64.
MAX_ITERATIONS = 1_000_000


def check_positive_int(n, name, *, maximum=None):
    """Return ``n`` as an int, requiring ``1 <= n`` (and ``n <= maximum`` when given)."""
    if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"{name}: expected a positive integer, got {n!r} ({type(n).__name__}).")
    if n < 1:
        raise ValueError(f"{name}: expected a positive integer, got {n}.")
    if maximum is not None and n > maximum:
        raise ValueError(f"{name}: expected an integer in 1..{maximum}, got {n}.")
    return int(n)


def _is_real(x):
    return (isinstance(x, (int, float, np.integer, np.floating))
            and not isinstance(x, (bool, np.bool_)))


def check_positive_float(x, name, *, what="a positive finite number", below=None):
    """Return ``x`` as a float, requiring a real number with 0 < x < inf (e.g. ``lr``, ``clip``,
    ``s_max``), and ``x < below`` if given; a string such as ``'2'`` is refused, not parsed."""
    if not _is_real(x):
        raise TypeError(f"{name}: expected {what}, got {x!r} ({type(x).__name__}).")
    if not 0.0 < float(x) < (np.inf if below is None else below):
        bound = "" if below is None else f" below {below:g}"
        raise ValueError(f"{name}: expected {what}{bound}, got {x!r}.")
    return float(x)


def check_fraction(x, name, *, open_below=False, what=None):
    """Return ``x`` as a float in [0, 1) (Adam's betas, momentum, an annealing start), or in
    (0, 1) with ``open_below``; ``what`` replaces "a number in [0, 1)" in the message."""
    what = what or f"a number in {'(' if open_below else '['}0, 1)"
    if not _is_real(x):
        raise TypeError(f"{name}: expected {what}, got {x!r} ({type(x).__name__}).")
    if not (0.0 < float(x) < 1.0 if open_below else 0.0 <= float(x) < 1.0):   # NaN fails both
        raise ValueError(f"{name}: expected {what}, got {x!r}.")
    return float(x)


def check_choice(value, name, choices):
    """Return ``value`` if it is one of ``choices`` (e.g. an activation name), else raise."""
    try:
        ok = isinstance(value, str) == all(isinstance(c, str) for c in choices) and value in choices
    except TypeError:        # an unhashable value, e.g. a list
        ok = False
    if not ok:
        raise ValueError(f"{name}: expected one of {sorted(choices)}, got {value!r}.")
    return value


def check_widths(widths, name):
    """Return a list of positive ints from a sequence of layer widths, e.g. ``hidden=(64, 64)``.

    A bare int or a string is refused (``"64"`` would otherwise become the widths 6 and 4)."""
    if isinstance(widths, (str, bytes)) or not hasattr(widths, "__iter__"):
        raise TypeError(f"{name}: expected a sequence of layer widths such as (64, 64), got "
                        f"{widths!r} ({type(widths).__name__}).")
    out = list(widths)
    for w in out:
        if isinstance(w, (bool, np.bool_)) or not isinstance(w, (int, np.integer)) or w < 1:
            raise ValueError(f"{name}: expected positive integer widths, got {out!r}.")
    return [int(w) for w in out]


def check_callable(f, name):
    """Return ``f`` if it is None or callable (checked before any work, not when first called)."""
    if f is not None and not callable(f):
        raise TypeError(f"{name}: expected a function or None, got {f!r} ({type(f).__name__}).")
    return f


def check_upstream(d_out, dlog_det, n, dim, name, *, allow_nonfinite=False):
    """Return the upstream gradients of a backward pass as ``(d_out (n, dim), dlog_det (n,))``.

    ``d_out`` is dL/d(output) and must match the ``n`` samples of the pass it differentiates;
    ``dlog_det`` is dL/dlog_det, one entry per sample or a scalar (broadcast). Both must be real
    floating-point arrays (complex, integer and object input is refused, not cast), finite unless
    ``allow_nonfinite`` (a Flow lets a diverging loss's NaN through, for fit's guard to locate).
    Shared by :class:`~nfscratch.transforms.base.Transform` and :class:`~nfscratch.flow.Flow`.
    """
    d_out = as_batch(d_out, dim, name, allow_nonfinite=allow_nonfinite)
    if d_out.shape[0] != n:
        raise ValueError(f"{name}: expected shape ({n}, {dim}) to match the last pass, got "
                         f"{d_out.shape}.")
    dlog_det = as_float_array(dlog_det, "dlog_det", allow_nonfinite=allow_nonfinite)
    if dlog_det.ndim == 0:
        dlog_det = np.full(n, float(dlog_det))
    if dlog_det.shape != (n,):
        raise ValueError(f"dlog_det: expected shape ({n},) (one entry per sample), got "
                         f"{dlog_det.shape}.")
    return d_out, np.ascontiguousarray(dlog_det)


def check_finite_float(value, name):
    """Return ``value`` as a float, requiring a finite real number (bools refused)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a finite number, got {value!r} "
                        f"({type(value).__name__}).")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value}.")
    return value


def check_nonneg_float(value, name):
    """Return ``value`` as a float, requiring a finite real number >= 0 (bools refused)."""
    if not _is_real(value):
        raise TypeError(f"{name}: expected a non-negative finite number, got {value!r} "
                        f"({type(value).__name__}).")
    value = check_finite_float(value, name)
    if value < 0:
        raise ValueError(f"{name}: expected a non-negative finite number, got {value}.")
    return value


def as_rng(rng, name="rng"):
    """Return a ``np.random.Generator`` from a Generator, an int seed or None (fresh entropy)."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        return np.random.default_rng()
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, (bool, np.bool_)):
        if rng < 0:
            raise ValueError(f"{name}: expected a non-negative int seed or a "
                             f"numpy.random.Generator, got {rng}.")
        return np.random.default_rng(rng)
    raise TypeError(f"{name}: expected a numpy.random.Generator or an int seed, got {type(rng).__name__}. "
                    "Make one with np.random.default_rng(seed).")


def as_context(context, context_dim, n, owner):
    """Return the conditioning input of a pass as a C-contiguous float64 ``(n, context_dim)``.

    ``owner`` names the layer or flow in the message. With ``context_dim == 0`` (nothing is
    conditioned) a context is refused rather than silently ignored, and None is returned; with
    ``context_dim > 0`` it is required and must have one row per sample of the pass.
    """
    if context_dim == 0:
        if context is not None:
            raise ValueError(f"context: {owner} is not conditional (context_dim=0), so it takes no "
                             f"context, got {type(context).__name__} "
                             f"{getattr(context, 'shape', '')}. Build it with context_dim=C to "
                             "condition it, or drop the context argument.")
        return None
    if context is None:
        raise ValueError(f"context: {owner} is conditional (context_dim={context_dim}) and needs a "
                         f"context of shape (N, {context_dim}) with every pass, got None.")
    arr = as_batch(context, context_dim, "context")
    if arr.shape[0] != n:
        raise ValueError(f"context: expected one row per sample, shape ({n}, {context_dim}), got "
                         f"{_describe(arr)}.")
    return arr


def check_context_dim(c, name="context_dim"):
    """Return ``c`` as an int >= 0: the width of a layer's context (0: not conditional)."""
    if isinstance(c, (bool, np.bool_)) or not isinstance(c, (int, np.integer)) or c < 0:
        raise ValueError(f"{name}: expected a non-negative integer (the number of context "
                         f"features; 0 for an unconditional layer), got {c!r}.")
    return int(c)


def check_time(t, name):
    """Return a time of a continuous flow, a number or an array of them, all in [0, 1], as a
    float (or a float64 array); bools, strings, NaN and values outside [0, 1] are refused."""
    if np.ndim(t) == 0:
        if not _is_real(t):
            raise TypeError(f"{name}: expected a time in [0, 1], got {t!r} ({type(t).__name__}).")
        value = float(t)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name}: expected a time in [0, 1] (0 is the base, 1 the data), "
                             f"got {t!r}.")
        return value
    arr = as_float_array(t, name)
    if arr.size and not (arr.min() >= 0.0 and arr.max() <= 1.0):
        raise ValueError(f"{name}: expected times in [0, 1] (0 is the base, 1 the data), got "
                         f"values from {arr.min()!r} to {arr.max()!r}.")
    return arr


def as_times(t, n, name="t"):
    """Return the times of ``n`` samples as a float64 array of shape (n,): ``t`` is one time in
    [0, 1] for all of them or an array of shape (n,), one per sample (checked by
    :func:`check_time`); any other shape is refused here, before it could broadcast."""
    value = check_time(t, name)
    if np.ndim(value) == 0:
        return np.full(n, value)
    if value.shape != (n,):
        raise ValueError(f"{name}: expected one time for all {n} samples or one per sample "
                         f"(shape ({n},)), got {_describe(value)}.")
    return np.ascontiguousarray(value)
