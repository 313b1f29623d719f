r"""Turn "your array is wrong" into "your array is wrong *because*": the usual mistakes.

When a student's array (a gradient, a log-det, a Jacobian) disagrees with the reference, the
grader does not stop at the error. It compares the student's array with the reference
transformed in the ways a derivation usually goes wrong, and names the first that fits:

* the wrong shape -- and, for a matrix, exactly the transpose (``dy.T @ x`` for ``x.T @ dy``),
  or the per-sample contributions not summed over the batch;
* the right numbers with the opposite sign (a sign error);
* a *variant* the exercise knows about: for a backward with a log-det, the reference computed
  with ``dlog_det = 0`` (the log-det term is missing) or with ``-dlog_det`` (its sign is wrong);
  for a log-det, the formula with one term dropped;
* all zeros, or the reference times a constant (a missing or extra factor such as 1/N);
* NaN or inf.

``compare`` returns the relative error (as in :func:`nfscratch.gradcheck.rel_error`, with a floor
of 1% of the largest reference entry) and that diagnosis.
"""
import numpy as np

from ..gradcheck import REL_FLOOR

__all__ = ["rel_error_floor", "close", "compare", "describe_exception"]

#: two arrays "match" (for a diagnosis) below this relative error
MATCH = 1e-6


def rel_error_floor(got, want):
    """Largest relative error with the gradcheck floor (1% of the largest ``|want|``)."""
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    scale = float(np.max(np.abs(want), initial=0.0))
    floor = max(REL_FLOOR * scale, 1e-300)
    if scale == 0.0:
        floor = 1e-12            # an all-zero reference: compare absolutely
    err = np.abs(got - want) / np.maximum(np.abs(got) + np.abs(want), floor)
    if np.any(np.isnan(err)):
        return float("nan")
    return float(np.max(err, initial=0.0))


def close(got, want, tol=MATCH):
    got = np.asarray(got)
    want = np.asarray(want)
    return got.shape == want.shape and rel_error_floor(got, want) <= tol


def _same_with_nan(arr, v):
    """``arr`` equals ``v``, NaN and inf where ``v`` has them and close elsewhere."""
    v = np.asarray(v, dtype=np.float64)
    if v.shape != arr.shape:
        return False
    fin = np.isfinite(v)
    return (np.array_equal(fin, np.isfinite(arr)) and np.array_equal(np.isnan(v), np.isnan(arr))
            and close(arr[fin], v[fin]))


def _as_array(value):
    """``value`` as a float64 array, or None when it cannot be one (an object, a ragged list)."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return arr


def _where(got, want):
    """Where the worst entry is, for the last resort diagnosis."""
    diff = np.abs(got - want)
    if diff.size == 0:
        return ""
    j = int(np.nanargmax(diff)) if not np.all(np.isnan(diff)) else 0
    ix = np.unravel_index(j, got.shape)
    pos = "[" + ", ".join(str(int(i)) for i in ix) + "]" if got.ndim else ""
    return f"worst entry {pos}: yours {got[ix]:.10g}, correct {want[ix]:.10g}"


def compare(name, got, want, variants=(), what="gradient", tol=MATCH):
    """Compare a student's array with the reference; return ``(error, diagnosis)``.

    Parameters
    ----------
    name : str
        How to call the array in the message (``"dW"``).
    got : object
        What the student returned (anything: it is validated here).
    want : ndarray
        The reference.
    variants : sequence of (str, ndarray)
        Known wrong answers, each with the diagnosis to give when ``got`` matches it.
    what : str
        "gradient", "log_det", "Jacobian", ... (used in messages).
    tol : float
        Relative error at or below which ``got`` is correct.

    Returns
    -------
    error : float or None
        Relative error (None when there is no comparable array: wrong shape, not an array).
    diagnosis : str
        Empty when ``got`` is correct.

    Examples
    --------
    >>> W = np.arange(6.0).reshape(2, 3)
    >>> compare("dW", W.T, W)[1].split(":")[0]
    'transposed'
    >>> compare("dW", -W, W)[1].split(":")[0]
    'sign error'
    """
    want = np.asarray(want, dtype=np.float64)
    if got is None:
        return None, f"no {what} returned for {name} (got None): did you forget a return?"
    arr = _as_array(got)
    if arr is None:
        return None, (f"{name} is not an array of numbers (got {type(got).__name__}); return a "
                      f"NumPy array of shape {want.shape}.")
    if arr.shape != want.shape:
        return None, _shape_diagnosis(name, arr, want, what)
    dtype = getattr(got, "dtype", None)
    if dtype is not None and dtype.kind in "fc" and dtype != np.float64:
        err = rel_error_floor(arr, want) if np.all(np.isfinite(arr)) else float("nan")
        return err, (f"{name} has dtype {dtype}, not float64: everything here is float64 (a "
                     f"float32 array keeps ~7 digits, so its round-off alone, ~1e-7, can fail a "
                     f"check, and it spreads to every function that uses it). Look for "
                     f"astype(np.float32) or dtype=np.float32, and return float64.")
    if not np.all(np.isfinite(arr)):
        for label, v in variants:      # a known mistake that produces NaN (a log without abs)
            if _same_with_nan(arr, v):
                return float("nan"), label
        bad = int(np.sum(~np.isfinite(arr)))
        return float("nan"), (f"non-finite values: {bad} of {arr.size} entries of {name} are NaN "
                              "or inf (a division by zero, a log of a non-positive number, an "
                              "overflow in exp?).")
    err = rel_error_floor(arr, want)
    if err <= tol:
        return err, ""
    return err, _value_diagnosis(name, arr, want, variants, what)


def _shape_diagnosis(name, arr, want, what):
    exp = f"expected shape {want.shape}, got {arr.shape}"
    if want.ndim == 2 and arr.shape == want.T.shape and close(arr, want.T):
        return (f"transposed: {name} is the transpose of the correct {what} ({exp}). A {what} "
                f"has the shape of the thing it differentiates; e.g. dW = x.T @ dy (I, O), not "
                f"dy.T @ x (O, I).")
    if arr.size == want.size and close(arr.reshape(want.shape), want):
        if arr.ndim == 0:
            how = f"wrap the number in an array, e.g. np.array([value]) for shape {want.shape}"
        elif want.ndim == 1 and arr.ndim == 2:
            how = "e.g. a (N, 1) column where one value per sample (N,) is expected: .ravel()"
        else:
            how = f"reshape it to {want.shape}"
        return f"right numbers, wrong shape ({exp}): {how}."
    if arr.ndim == want.ndim + 1 and arr.shape[1:] == want.shape and close(arr.sum(axis=0), want):
        return (f"not summed over the batch ({exp}): a parameter is shared by all N samples, so "
                f"its gradient adds up their contributions (sum over axis 0).")
    if arr.ndim == want.ndim + 1 and arr.shape[:-1] == want.shape and close(arr.sum(axis=-1), want):
        return (f"not summed over the features ({exp}): the log-det of one sample is the sum of "
                f"the log-scales of its features (sum over the last axis).")
    if arr.ndim == 0 and want.ndim == 1:
        return (f"a single number where one value per sample is expected ({exp}); do not average "
                f"or sum over the batch.")
    if want.ndim == 1 and arr.ndim == 2 and 1 in arr.shape:
        return f"{exp}: return a 1-D array (use .ravel() or index [:, 0])."
    if what == "log_det":
        return (f"wrong shape: {exp}. A log_det has one entry per sample, shape (N,) = "
                f"{want.shape}: if you summed log-scales, sum over the features (axis=1), never "
                f"over the batch (axis 0).")
    if what == "gradient":
        return (f"wrong shape: {exp}. A gradient has the shape of the thing it differentiates; "
                f"write the shape of every intermediate array in a comment and check each product.")
    return (f"wrong shape: {exp}. Write the shape of every intermediate array in a comment and "
            f"check each product.")


def _value_diagnosis(name, arr, want, variants, what):
    for label, v in variants:          # the exercise's own, more specific, diagnoses first
        v = np.asarray(v, dtype=np.float64)
        if v.shape == arr.shape and close(arr, v):
            return label
    if close(arr, -want):
        return (f"sign error: {name} is minus the correct {what} (check the sign of each term, "
                f"e.g. a derivative of (a - b) with respect to b).")
    if want.ndim == 2 and want.shape[0] == want.shape[1] and close(arr, want.T):
        return (f"transposed: {name} is the transpose of the correct {what} (for a square matrix "
                f"the shapes cannot tell; check which index is the row).")
    if not np.any(arr) and np.any(want):
        return f"all zeros: {name} is 0 everywhere but the correct {what} is not."
    denom = float(np.sum(want * want))
    if denom > 0:
        k = float(np.sum(arr * want)) / denom
        if abs(k - 1.0) > 1e-3 and k != 0 and close(arr, k * want):
            return (f"off by a constant factor: {name} = {k:.6g} x the correct {what} (a factor "
                    f"of 2, or a mean where a sum belongs, or the other way round?).")
    err = rel_error_floor(arr, want)
    if err < 1e-4:
        return (f"close, but only to {err:.1e}, not to float64 precision (~1e-12): round-off "
                f"of about 1e-7 is the signature of float32 -- does a function this one uses "
                f"return float32 (check its .dtype)? Otherwise a small term is missing or "
                f"approximated. {_where(arr, want)}.")
    return f"wrong values: {_where(arr, want)}."


def describe_exception(exc, tb_frames=(), hint=""):
    """One line saying what a student's exception most likely means.

    ``tb_frames`` is a list of ``(lineno, source line)`` in the student's file, innermost last.
    """
    kind = type(exc).__name__
    msg = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    where = ""
    if tb_frames:
        lineno, src = tb_frames[-1]
        where = f" at line {lineno} of your file ({src.strip()})" if src else f" at line {lineno}"
    if isinstance(exc, NotImplementedError):
        line = f" at line {tb_frames[-1][0]}" if tb_frames else ""
        return (f"NotImplementedError: not implemented yet -- replace the `raise "
                f"NotImplementedError(...)`{line} with your code" + (f" ({hint})" if hint else "")
                + ".")
    text = f"raised {kind}{where}: {msg}"
    low = msg.lower()
    if isinstance(exc, ValueError) and ("matmul" in low or "shapes" in low or "broadcast" in low
                                        or "aligned" in low):
        text += (" -- a shape mismatch: write each array's shape in a comment (# (N, D)); a "
                 "matrix often needs transposing (dx = dy @ W.T), or a per-sample vector (N,) "
                 "needs [:, None] to broadcast against (N, D).")
    elif isinstance(exc, IndexError):
        text += " -- an index out of range: check which axis is the batch (axis 0) and which the features."
    elif isinstance(exc, KeyError):
        text += " -- a missing key: use the names of the cache/params dicts exactly as the forward pass wrote them."
    elif isinstance(exc, NameError):
        text += " -- a name that is not defined: a typo, or a variable from another function?"
    elif isinstance(exc, RecursionError):
        text += " -- the function calls itself without end."
    return text
