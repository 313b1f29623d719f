r"""The Adam update as a kernel, and the finiteness check that must come before it.

Adam (Kingma & Ba 2015, arXiv:1412.6980) on one parameter array ``p`` with gradient ``g``,
moments ``m, v`` and bias corrections ``bias1 = 1 - beta1^t``, ``bias2 = 1 - beta2^t``:

.. math::

    m \leftarrow \beta_1 m + (1 - \beta_1) g, \quad v \leftarrow \beta_2 v + (1 - \beta_2) g^2,
    \quad p \leftarrow p - \eta\, \frac{m / \text{bias1}}{\sqrt{v / \text{bias2}} + \epsilon}.

The NumPy twin is :func:`nfscratch.optim.adam_update`, same signature. Why a kernel: NumPy
runs ~8 array operations per parameter array, and a flow has many small ones, so its step is
mostly per-operation overhead; the kernel does one pass per array (``benchmarks/README.md``).
Each operation is the one NumPy performs, in the same order (no ``contract``), so both give
bit-identical parameters.

All arrays are 1-D (the caller passes ``p.reshape(-1)``, a view of a contiguous parameter) and
updated in place; that is the one exception to "kernels return new arrays", because an optimizer
must write into the arrays the model holds. The scalars are checked like the arrays: a NaN or
infinite ``lr`` (or ``eps``, a ``beta`` outside [0, 1), a bias correction outside (0, 1]) would
make every parameter NaN.
"""
import math

import numpy as np
from numba import njit

from . import _checks as ck
from . import _numba_start  # noqa: F401  (Numba's context, set up without SciPy)

__all__ = ["adam_update_nb", "adam_update_group_nb", "GROUP", "count_nonfinite_ref",
           "count_nonfinite_nb"]


def _check_scalars(kernel, lr, beta1, beta2, eps, bias1, bias2):
    ck.float_in(kernel, "lr", lr, 0.0, math.inf, "a finite positive learning rate")
    for name, beta in (("beta1", beta1), ("beta2", beta2)):
        ck.float_in(kernel, name, beta, 0.0, 1.0, "a number in [0, 1)", lo_closed=True)
    ck.float_in(kernel, "eps", eps, 0.0, math.inf, "a finite positive epsilon")
    for name, bias in (("bias1", bias1), ("bias2", bias2)):
        ck.float_in(kernel, name, bias, 0.0, 1.0, "a bias correction 1 - beta^t in (0, 1]",
                    hi_closed=True)


def _check(kernel, p, g, m, v, lr, beta1, beta2, eps, bias1, bias2):
    (n,) = ck.f64(kernel, "p", p, 1)
    for name, a in (("g", g), ("m", m), ("v", v)):
        ck.same_shape(kernel, name, ck.f64(kernel, name, a, 1), (n,), "(n,) like p")
    for name, a in (("p", p), ("m", m), ("v", v)):
        ck.writable(kernel, name, a)
    _check_scalars(kernel, lr, beta1, beta2, eps, bias1, bias2)


@njit(cache=True, error_model="numpy")
def _adam_update(p, g, m, v, lr, beta1, beta2, eps, bias1, bias2):
    for i in range(p.shape[0]):
        gi = g[i]
        mi = m[i] * beta1 + (1.0 - beta1) * gi
        vi = v[i] * beta2 + (1.0 - beta2) * gi * gi
        m[i] = mi
        v[i] = vi
        p[i] -= lr * (mi / bias1) / (math.sqrt(vi / bias2) + eps)


def adam_update_nb(p, g, m, v, lr, beta1, beta2, eps, bias1, bias2):
    """One Adam step on ``p`` in place (and on the moments ``m``, ``v``).

    Parameters
    ----------
    p, g, m, v : ndarray, shape (n,)
        Parameter, its gradient (finite: check with :func:`count_nonfinite_nb` first), and the
        first and second moment estimates.
    lr, beta1, beta2, eps : float
    bias1, bias2 : float
        ``1 - beta1**t`` and ``1 - beta2**t`` for step number ``t`` (1 on the first step).

    Examples
    --------
    >>> p, m, v = np.array([1.0, -2.0]), np.zeros(2), np.zeros(2)
    >>> adam_update_nb(p, np.array([3.0, -0.5]), m, v, 0.1, 0.9, 0.999, 1e-8, 0.1, 0.001)
    >>> np.round(p, 6)
    array([ 0.9, -1.9])
    """
    _check("adam_update_nb", p, g, m, v, lr, beta1, beta2, eps, bias1, bias2)
    _adam_update(p, g, m, v, lr, beta1, beta2, eps, bias1, bias2)


# ---------------------------------------------------------------------------------------------
# many parameter arrays per call
# ---------------------------------------------------------------------------------------------
# A flow has many small parameter arrays, and one call per array costs more in Python and
# dispatch than the update itself. The group kernel takes GROUP arrays at once as a tuple of 1-D
# views (a fixed length, padded with empty arrays, so that one compiled signature serves every
# model), with the gradients and moments of all arrays concatenated.
GROUP = 8
EMPTY = np.empty(0)


def _check_group(kernel, ps, g_all, m_all, v_all, offsets, lr, beta1, beta2, eps, bias1, bias2):
    if type(ps) is not tuple or len(ps) != GROUP:
        length = len(ps) if hasattr(ps, "__len__") else "?"
        raise TypeError(f"{kernel}: ps: expected a tuple of {GROUP} 1-D float64 arrays (pad with "
                        f"empty arrays), got {type(ps).__name__} of length {length}.")
    (n,) = ck.f64(kernel, "g_all", g_all, 1)
    for name, a in (("m_all", m_all), ("v_all", v_all)):
        ck.same_shape(kernel, name, ck.f64(kernel, name, a, 1), (n,), "(n,) like g_all")
        ck.writable(kernel, name, a)
    ck.same_shape(kernel, "offsets", ck.i64(kernel, "offsets", offsets, 1), (GROUP,), f"({GROUP},)")
    for j, p in enumerate(ps):
        (size,) = ck.f64(kernel, f"ps[{j}]", p, 1)
        if size:
            ck.writable(kernel, f"ps[{j}]", p)
            if not 0 <= offsets[j] <= n - size:
                raise ck.KernelArgumentError(
                    f"{kernel}: offsets[{j}]: expected a start in [0, {n - size}] for {size} "
                    f"entries of g_all (length {n}), got {offsets[j]}.")
    _check_scalars(kernel, lr, beta1, beta2, eps, bias1, bias2)


@njit(cache=True, error_model="numpy")
def _adam_update_group(ps, g_all, m_all, v_all, offsets, lr, beta1, beta2, eps, bias1, bias2):
    for j in range(len(ps)):         # a loop over a homogeneous tuple: unrolled by Numba
        p = ps[j]
        o = offsets[j]
        for i in range(p.shape[0]):
            gi = g_all[o + i]
            mi = m_all[o + i] * beta1 + (1.0 - beta1) * gi
            vi = v_all[o + i] * beta2 + (1.0 - beta2) * gi * gi
            m_all[o + i] = mi
            v_all[o + i] = vi
            p[i] -= lr * (mi / bias1) / (math.sqrt(vi / bias2) + eps)


def adam_update_group_nb(ps, g_all, m_all, v_all, offsets, lr, beta1, beta2, eps, bias1, bias2):
    """:func:`adam_update_nb` on each array ``ps[j]``, whose gradient and moments are
    ``g_all[o:o + size]`` etc. with ``o = offsets[j]``; ``ps`` is a tuple of ``GROUP`` 1-D views
    (padded with empty arrays). Updates ``ps``, ``m_all`` and ``v_all`` in place. Its NumPy twin
    is :func:`nfscratch.optim.adam_update` on each array in turn."""
    _check_group("adam_update_group_nb", ps, g_all, m_all, v_all, offsets, lr, beta1, beta2, eps,
                 bias1, bias2)
    _adam_update_group(ps, g_all, m_all, v_all, offsets, lr, beta1, beta2, eps, bias1, bias2)


def count_nonfinite_ref(g):
    """Number of NaN/inf entries of the 1-D float64 array ``g``."""
    return int(g.size - np.count_nonzero(np.isfinite(g)))


@njit(cache=True, error_model="numpy")
def _count_nonfinite(g):
    bad = 0
    for i in range(g.shape[0]):
        bad += 0 if abs(g[i]) < math.inf else 1
    return bad


def count_nonfinite_nb(g):
    """The kernel of :func:`count_nonfinite_ref`, checked."""
    ck.f64("count_nonfinite_nb", "g", g, 1)
    return _count_nonfinite(g)
