"""Private: set up Numba's compiler context once, without the SciPy import no kernel needs.

Why this file exists. Before Numba runs a kernel, even one loaded from its on-disk cache, it
sets up its whole compiler context: it imports every typing and lowering registry it ships.
One of them (for ``np.dot``, ``np.correlate`` and friends) checks at import whether SciPy's BLAS
is reachable, and when SciPy is installed that check imports ``scipy.linalg``, which in turn
imports a good part of NumPy's optional submodules: about a third of the first training step in
a fresh process, the largest part of it that Numba does not need (``benchmarks/README.md``,
"Warm first step"). No kernel of nfscratch calls BLAS from Numba (the large products stay with
NumPy's ``@``).

So the kernel modules import this one (through :mod:`._math`, or directly) before their first
kernel runs. It sets the context up with ``scipy.linalg.cython_blas`` marked as absent for the
duration (a ``None`` entry in ``sys.modules``: Python's import system then raises ImportError
for that name without touching SciPy) and removes the mark right after. Numba functions
compiled later that do use ``np.dot`` or ``np.linalg`` import SciPy themselves, as they would
anyway. The one lasting effect, for this process: Numba's ``np.correlate``/``np.convolve`` use
their plain loop instead of a BLAS dot.

Nothing is done when the context is already set up (Numba code ran before nfscratch's) or when
``scipy.linalg`` is already imported (then there is nothing to save).
"""
import sys

__all__ = []

_BLAS_MODULE = "scipy.linalg.cython_blas"


def _start():
    if any(name in sys.modules for name in ("numba.np.arraymath", "scipy.linalg", _BLAS_MODULE)):
        return
    # Numba internals (pinned to 0.68 in pyproject.toml): if they ever move, the kernels must
    # still run, only without the saving, so any failure here falls back to Numba's own setup.
    sys.modules[_BLAS_MODULE] = None
    try:
        from numba.core.registry import cpu_target
        cpu_target.target_context.refresh()
    except Exception:
        pass
    finally:
        sys.modules.pop(_BLAS_MODULE, None)      # the mark; the import stays blocked until here


_start()
