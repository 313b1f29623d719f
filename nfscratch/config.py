"""Run-time settings: which backend computes the hot loops.

``backend`` is ``"numba"`` (the default: the compiled kernels of :mod:`nfscratch.kernels`) or
``"numpy"`` (the pure NumPy functions of the transform files, ``nn`` and ``optim``). Both give the
same numbers to ~1e-12; the NumPy code is the spec, the Numba code is fast. The choice is read at
every call, so it can change between two calls; a backward pass always follows the path of the
forward pass it differentiates.

The starting value comes from the environment variable ``NFSCRATCH_BACKEND`` (read once, at
import), else ``"numba"``. Change it with :func:`set_backend` or, for a block of code, with the
:func:`use_backend` context manager::

    >>> import nfscratch
    >>> with nfscratch.use_backend("numpy"):
    ...     nfscratch.get_backend()
    'numpy'

There is no thread setting: no kernel is parallel. Measured on the 2-core machine this project
targets, ``parallel=True`` kernels paid only while both cores were idle, compiled several times
slower, and lost to the serial ones as soon as anything else ran (see ``benchmarks/README.md``).
The coupling step's large products run in BLAS, whose threads are set the usual way
(``OPENBLAS_NUM_THREADS`` before Python starts): that is the one multi-threading option. With 2
threads the coupling benchmark's step took 4.4 instead of 5.1 ms at batch 512 and 189 instead of
249 ms at 32768, on idle cores only; it became slower than on 1 thread whenever the other core
was busy (``benchmarks/README.md``, "2 threads").
"""
import contextlib
import os

__all__ = ["BACKENDS", "get_backend", "set_backend", "use_backend"]

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

