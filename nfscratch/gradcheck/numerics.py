r"""The numbers behind gradcheck: relative error and central differences in float64.

Everything here rests on one loop, :func:`central_differences`: perturb one entry of an array
in place by :math:`\pm\epsilon`, evaluate, restore the entry exactly, and divide the change of
every output by the step. :func:`numerical_gradient` (a scalar function),
:func:`numerical_jacobian` (a vector function of one point) and :func:`numerical_vjp` (the
gradient of :math:`L = \sum_k \langle \bar y_k, y_k \rangle` that a backward pass returns) are
three ways of reading its differences.

Why the outputs are differenced before any contraction, why the quotient divides by the step as
stored rather than by ``2 eps``, and why float64 is required: see :mod:`nfscratch.gradcheck`.
"""
import numpy as np

__all__ = ["EPS", "REL_FLOOR", "rel_error", "numerical_gradient", "numerical_jacobian",
           "numerical_vjp", "central_differences"]

EPS = 1e-6          # central-difference step
REL_FLOOR = 1e-2    # gradient rows never divide by less than this fraction of the largest gradient
_TINY = 1e-300

_FLOAT64_WHY = ("gradcheck needs float64: central differences with eps ~1e-6 have rounding "
                "error ~machine_eps/eps, about 2e-10 in float64 but 1e-1 in float32, so in "
                "float32 the check cannot tell a bug from rounding noise.")


# ------------------------------------------------------------------------------------------------
# Relative error
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
    return float(np.max(rel_errors(a, b, floor), initial=0.0))


def rel_errors(a, b, floor):
    """Entrywise relative errors of :func:`rel_error` (same shape as ``a``)."""
    num = np.abs(a - b)
    den = np.maximum(np.abs(a) + np.abs(b), max(float(floor), _TINY))
    return num / den          # NaN propagates: a NaN gradient must FAIL, not vanish


# ------------------------------------------------------------------------------------------------
# The one perturb-and-restore loop
# ------------------------------------------------------------------------------------------------
def central_differences(evaluate, arr, flat_indices, eps=EPS):
    r"""Central differences of every output of ``evaluate()`` with respect to entries of ``arr``.

    For each flat index ``i``, ``arr`` is perturbed **in place** to ``arr[i] + eps`` and to
    ``arr[i] - eps``, ``evaluate()`` is called at each, and ``arr[i]`` is restored exactly (also
    when ``evaluate`` raises). ``evaluate`` reads ``arr`` from wherever it lives (a parameter
    dict, a closure), so ``arr`` may be a live parameter array.

    .. math:: \frac{y(\theta + \epsilon e_i) - y(\theta - \epsilon e_i)}
                   {(\theta_i + \epsilon) - (\theta_i - \epsilon)}

    Parameters
    ----------
    evaluate : callable
        ``evaluate() -> sequence of array_like``: the outputs, each differenced separately.
    arr : ndarray of float64, any shape
        Perturbed in place and restored bit for bit.
    flat_indices : iterable of int
        Entries of ``arr.reshape(-1)`` to perturb.
    eps : float, default 1e-6

    Yields
    ------
    list of ndarray
        For each index, in order, one difference quotient per output (shape of that output).
    """
    for i in flat_indices:
        ix = np.unravel_index(int(i), arr.shape)
        old = arr[ix].copy()
        hi, lo = old + eps, old - eps
        try:
            arr[ix] = hi
            plus = _copies(evaluate())
            arr[ix] = lo
            minus = _copies(evaluate())
        finally:
            arr[ix] = old
        step = hi - lo      # the step as stored, not exactly 2 eps
        yield [(p - m) / step for p, m in zip(plus, minus)]


def _copies(outputs):
    # copies: a pass may return (a view of) a buffer that the next pass overwrites
    return [np.array(o, dtype=np.float64, copy=True) for o in outputs]


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
    require_float64_array(x, "x")
    eps = check_eps(eps)
    diffs = central_differences(lambda: [float(f(x))], x, range(x.size), eps)
    return np.array([d[0] for d in diffs], dtype=np.float64).reshape(x.shape)


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
    require_float64_array(x, "x")
    if x.ndim != 1:
        raise ValueError(f"x: expected a 1-D point of shape (D,), got shape {x.shape}. "
                         "For a batched map, Jacobian one sample at a time: x[n].")
    eps = check_eps(eps)
    x = x.copy()
    cols = [d[0] for d in central_differences(lambda: [f(x)], x, range(x.size), eps)]
    return np.stack(cols, axis=-1).reshape(-1, x.size)      # (M, D): column j = d f / d x_j


def numerical_vjp(evaluate, arr, upstream, flat_indices, eps=EPS):
    r"""Gradient of :math:`L = \sum_k \langle upstream_k, y_k \rangle` at some entries of ``arr``.

    This is what a backward pass computes: ``evaluate() -> (y_1, ..., y_K)`` is a forward pass
    (for a transform, ``(out, log_det)``) that reads ``arr``; ``upstream`` holds the gradients
    ``dL/dy_k``, one array per output and of its shape.

    Parameters
    ----------
    evaluate : callable
        ``evaluate() -> sequence of K arrays``.
    arr : ndarray of float64
        Perturbed in place and restored bit for bit.
    upstream : sequence of K ndarrays
    flat_indices : sequence of int
        Entries of ``arr.reshape(-1)`` to differentiate.
    eps : float, default 1e-6

    Returns
    -------
    ndarray, shape (len(flat_indices),)

    Examples
    --------
    >>> W = np.array([[1.0, 2.0], [3.0, 4.0]])
    >>> x = np.array([1.0, -1.0])
    >>> dy = np.array([0.5, 2.0])                      # L = dy . (x @ W), dL/dW = outer(x, dy)
    >>> g = numerical_vjp(lambda: [x @ W], W, [dy], range(W.size))
    >>> bool(np.allclose(g.reshape(2, 2), np.outer(x, dy)))
    True
    """
    diffs = central_differences(evaluate, arr, flat_indices, eps)
    return np.array([sum(float(np.sum(w * d)) for w, d in zip(upstream, ds)) for ds in diffs],
                    dtype=np.float64)


# ------------------------------------------------------------------------------------------------
# The checker's own arguments
# ------------------------------------------------------------------------------------------------
def require_float64_array(a, name):
    """Refuse anything but a float64 ndarray, saying why gradcheck needs float64."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{name}: expected a float64 ndarray (it is perturbed in place), got "
                        f"{type(a).__name__}. Make one with np.asarray({name}, dtype=np.float64).")
    if a.dtype != np.float64:
        raise TypeError(f"{name}: got dtype {a.dtype}; {_FLOAT64_WHY} Convert it with "
                        f"{name}.astype(np.float64).")


def check_eps(eps):
    """``eps`` as a float, or a ValueError if it is not a small positive finite step."""
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating, np.integer)) \
            or not np.isfinite(eps) or eps <= 0:
        raise ValueError(f"eps: expected a small positive step such as 1e-6, got {eps!r}.")
    return float(eps)
