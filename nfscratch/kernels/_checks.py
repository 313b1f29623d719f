"""Argument checks that run in every kernel's public entry ``<name>_nb``, before any loop.

A compiled kernel trusts its arguments: with bounds checking off, a wrong shape reads or writes
out of bounds, and a float32 or non-contiguous array makes Numba compile (and cache) another
specialization. So each public entry first checks every array here -- exact type
``numpy.ndarray``, dtype float64 (or int64 for index arrays), C-contiguous, the expected number of
dimensions, sizes that agree with each other -- and raises a ``TypeError``/``ValueError`` naming
the kernel, the argument, what was expected and what came. The fast path is a handful of
attribute reads per array; the messages are built only on failure. An array the kernel writes
into must also be writeable (Numba refuses a read-only one with a typing error), and a scalar
must be a Python float in its range (``lr = nan`` or ``s_max = inf`` would turn every number the
kernel computes into NaN).
"""
import numpy as np

__all__ = ["f64", "i64", "writable", "same_shape", "dim_equal", "positive", "float_in",
           "index_array", "packed_view", "KernelArgumentError"]

_F64 = np.dtype(np.float64)
_I64 = np.dtype(np.int64)


class KernelArgumentError(ValueError):
    """A kernel argument has the wrong shape (a ValueError, so callers can catch either)."""


def _describe(a):
    if not isinstance(a, np.ndarray):
        return f"{type(a).__name__}"
    layout = "C-contiguous" if a.flags.c_contiguous else "non-contiguous"
    return f"{layout} {a.dtype} array of shape {a.shape}"


def _check(kernel, name, a, ndim, dtype, what):
    # (arrays made by Numba carry their own, equal, dtype object: hence "is" or "==")
    if (type(a) is np.ndarray and (a.dtype is dtype or a.dtype == dtype) and a.ndim == ndim
            and a.flags.c_contiguous):
        return a.shape
    # slow path: find what is wrong and say it
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{kernel}: {name}: expected a {what} numpy array, got {_describe(a)}.")
    if a.dtype != dtype:
        raise TypeError(f"{kernel}: {name}: expected dtype {dtype}, got {_describe(a)}. "
                        f"Convert it first, e.g. {name}.astype(np.{dtype}).")
    if a.ndim != ndim:
        raise KernelArgumentError(f"{kernel}: {name}: expected a {ndim}-D array, got {_describe(a)}.")
    if not a.flags.c_contiguous:
        raise KernelArgumentError(f"{kernel}: {name}: expected a C-contiguous array, got "
                                  f"{_describe(a)}. Pass np.ascontiguousarray({name}).")
    return a.shape   # an ndarray subclass or a non-canonical float64 dtype object: accepted


def f64(kernel, name, a, ndim):
    """Check a C-contiguous float64 array with ``ndim`` dimensions; return its shape."""
    return _check(kernel, name, a, ndim, _F64, "float64")


def i64(kernel, name, a, ndim):
    """Check a C-contiguous int64 array (index lists); return its shape."""
    return _check(kernel, name, a, ndim, _I64, "int64")


def writable(kernel, name, a):
    """Require an array the kernel writes into to be writeable (after :func:`f64`)."""
    if not a.flags.writeable:
        raise KernelArgumentError(f"{kernel}: {name}: expected a writeable array (the kernel "
                                  f"writes into it), got a read-only {_describe(a)}. Pass a "
                                  f"writeable copy, np.array({name}).")


def float_in(kernel, name, x, lo, hi, what, lo_closed=False, hi_closed=False):
    """Require a Python float ``x`` in the interval from ``lo`` to ``hi`` (open unless said
    closed; NaN always fails); ``what`` describes it for the message."""
    if type(x) is not float:
        raise TypeError(f"{kernel}: {name}: expected {what} as a Python float, got {x!r} "
                        f"({type(x).__name__}).")
    if not ((lo <= x if lo_closed else lo < x) and (x <= hi if hi_closed else x < hi)):
        raise ValueError(f"{kernel}: {name}: expected {what}, got {x!r}.")
    return x


def same_shape(kernel, name, shape, expected, expected_text):
    """Require ``shape == expected``; ``expected_text`` says where the sizes come from."""
    if shape != expected:
        raise KernelArgumentError(f"{kernel}: {name}: expected shape {expected_text} = "
                                  f"{tuple(expected)}, got {tuple(shape)}.")


def dim_equal(kernel, name, got, expected, what):
    """Require one size to equal another, e.g. ``W.shape[0] == x.shape[1]``."""
    if got != expected:
        raise KernelArgumentError(f"{kernel}: {name}: expected {what} = {expected}, got {got}.")


def positive(kernel, name, n):
    """Require a non-empty dimension (a kernel over 0 samples or 0 layers is a caller's bug)."""
    if n < 1:
        raise KernelArgumentError(f"{kernel}: {name}: expected at least 1, got {n}.")


def index_array(kernel, name, idx, bound):
    """Check an int64 array of distinct indices in ``[0, bound)`` (a set of features: an index
    twice would make a kernel write one feature twice, from values meant for two)."""
    (m,) = i64(kernel, name, idx, 1)
    if m:
        # a few indices (the usual case: a coupling mask) are checked faster as Python ints
        values = idx.tolist() if m <= 16 else np.unique(idx).tolist()
        lo, hi = min(values), max(values)
        if lo < 0 or hi >= bound:
            raise KernelArgumentError(f"{kernel}: {name}: expected indices in [0, {bound}), got "
                                      f"min {lo} and max {hi}.")
        if len(set(values)) != m:
            raise KernelArgumentError(f"{kernel}: {name}: expected distinct indices, got "
                                      f"{m - len(set(values))} repeated in {idx.tolist()[:16]}.")
    return m


def packed_view(arrays):
    """The 1-D view of the memory that ``arrays`` fill one after another, or None.

    :class:`~nfscratch.flow.Flow` keeps all its parameters in one float64 buffer (every entry of
    every layer's ``params`` is a view of it, in the order of ``flow.params()``). When the arrays
    are such views -- same buffer, C-contiguous, each starting where the previous one ends -- the
    result is one array over all of them, so that a kernel can take them in one call (the Adam
    update, a planar chain's parameters) instead of one call or copy per array. Writing into the
    result writes into the arrays. It inspects every array: call it once and keep the answer.
    """
    arrays = list(arrays)
    if not arrays or type(arrays[0]) is not np.ndarray:
        return None
    buf = arrays[0].base
    if (type(buf) is not np.ndarray or buf.dtype != _F64 or buf.ndim != 1
            or not buf.flags.c_contiguous or not buf.flags.writeable):
        return None
    origin = buf.ctypes.data
    start = pos = (arrays[0].ctypes.data - origin) // _F64.itemsize
    for a in arrays:
        if (type(a) is not np.ndarray or a.base is not buf or not a.flags.c_contiguous
                or a.ctypes.data != origin + pos * _F64.itemsize):
            return None
        pos += a.size
    return buf[start:pos]
