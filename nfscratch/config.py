"""Run-time settings: which backend computes the hot loops.

``backend`` is ``"numba"`` (the default: the compiled kernels of :mod:`nfscratch.kernels`) or
``"numpy"`` (the pure NumPy functions of the transform files, ``nn`` and ``optim``). The NumPy
code is the spec, the Numba code is fast; the choice is read at every call, so it can change
between two calls, and a backward pass always follows the path of the forward pass it
differentiates.

What "the same numbers" means: one pass, or one training step, agrees between the backends to
~1e-13 relative (often to the last bit; the Adam update is bit-identical). The two differ only
in rounding (the order of a sum, a fused multiply-add), so a short training run stays close
(20 steps of a coupling flow agree to ~1e-9 in ``tests/test_backend.py``), but training is
chaotic: over hundreds of steps the rounding differences grow, and two runs with the same seed
on the two backends end in different (equally good) places. Compare long runs statistically,
not number by number.

The starting value comes from the environment variable ``NFSCRATCH_BACKEND`` (read once, at
import), else ``"numba"``. Change it with :func:`set_backend` or, for a block of code, with the
:func:`use_backend` context manager::

    >>> import nfscratch
    >>> with nfscratch.use_backend("numpy"):
    ...     nfscratch.get_backend()
    'numpy'

There is no thread setting: no kernel is parallel. On the 2-core machine this project targets,
``parallel=True`` kernels paid only while both cores were idle, compiled several times slower,
and lost to the serial ones as soon as anything else ran. The coupling step's large products run
in BLAS, whose threads are set the usual way (``OPENBLAS_NUM_THREADS`` before Python starts):
that is the one multi-threading option, and it helps on idle cores only. Measurements:
``benchmarks/README.md`` ("2 threads", "Why the kernels look the way they do").
"""
import contextlib
import os

__all__ = ["BACKENDS", "get_backend", "set_backend", "use_backend", "use_kernels"]

BACKENDS = ("numba", "numpy")


def _check_backend(name, source):
    if not isinstance(name, str) or name.lower() not in BACKENDS:
        raise ValueError(f"{source}: expected one of {list(BACKENDS)}, got {name!r}. "
                         "'numba' runs the compiled kernels, 'numpy' the readable NumPy twins.")
    return name.lower()


_backend = _check_backend(os.environ.get("NFSCRATCH_BACKEND", "numba"), "NFSCRATCH_BACKEND")


def get_backend():
    """Return the current backend name, ``"numba"`` or ``"numpy"``."""
    return _backend


def use_kernels():
    """True on the ``"numba"`` backend: the one-line test a class makes before taking its fast path."""
    return _backend == "numba"


def set_backend(name):
    """Select the backend (``"numba"`` or ``"numpy"``) for every later call; return the old one."""
    global _backend
    old, _backend = _backend, _check_backend(name, "backend")
    return old


@contextlib.contextmanager
def use_backend(name):
    """Context manager: run the block with backend ``name``, then restore the previous one."""
    old = set_backend(name)
    try:
        yield name.lower()
    finally:
        set_backend(old)

