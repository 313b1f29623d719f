"""Argument checks that run before every kernel, in both twins.

A compiled kernel trusts its arguments: with bounds checking off, a wrong shape reads or writes
out of bounds, and a float32 or non-contiguous array makes Numba compile (and cache) another
specialization. So each public kernel function first checks every array here -- exact type
``numpy.ndarray``, dtype float64 (or int64 for index arrays), C-contiguous, the expected number of
dimensions, sizes that agree with each other -- and raises a ``TypeError``/``ValueError`` naming
the kernel, the argument, what was expected and what came. The fast path is a handful of
attribute reads (well under a microsecond per array); the messages are built only on failure.
"""
import numpy as np

__all__ = ["f64", "i64", "same_shape", "dim_equal", "positive", "index_array", "packed_view",
           "KernelArgumentError"]

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
    """Check an int64 index array whose entries must lie in ``[0, bound)``."""
    (m,) = i64(kernel, name, idx, 1)
    if m:
        # a few indices (the usual case: a coupling mask) are checked faster as Python ints
        values = idx.tolist() if m <= 16 else (int(idx.min()), int(idx.max()))
        lo, hi = min(values), max(values)
        if lo < 0 or hi >= bound:
            raise KernelArgumentError(f"{kernel}: {name}: expected indices in [0, {bound}), got "
                                      f"min {lo} and max {hi}.")
    return m


def packed_view(arrays):
    """The 1-D view of the memory that ``arrays`` fill one after another, or None.

    :class:`~nfscratch.flow.Flow` keeps all its parameters in one float64 buffer (every entry of
    every layer's ``params`` is a view of it, in the order of ``flow.params()``). When the arrays
    are such views -- same buffer, C-contiguous, each starting where the previous one ends -- the
    result is one array over all of them, so that a kernel can take them in one call (the Adam
    update, a planar chain's parameters) instead of one call or copy per array. Writing into the
    result writes into the arrays. Costs ~0.3 us per array: call it once and keep the answer.
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
