"""The CNF's fast path: its params dict unpacked into the layout of :mod:`nfscratch.kernels.ode`
and the fused RK4 kernel called on it (reached from ``CNF.integrate`` by a one-line dispatch)."""
import numpy as np

__all__ = ["kernel_weights", "rk4"]


def kernel_weights(params, dim, n_freq):
    """``(Wx, Wt, b0, Wh, bh, Wo, bo, freqs)`` of :func:`nfscratch.kernels.ode.rk4_nb` from an
    MLP params dict with equal hidden widths (``W0`` reads ``[x, e(t)]``)."""
    n_layers = len(params) // 2
    W0 = params["W0"]
    H = W0.shape[1]
    hidden = range(1, n_layers - 1)
    Wh = np.ascontiguousarray(np.stack([params[f"W{i}"] for i in hidden])
                              if n_layers > 2 else np.zeros((0, H, H)))
    bh = np.ascontiguousarray(np.stack([params[f"b{i}"] for i in hidden])
                              if n_layers > 2 else np.zeros((0, H)))
    last = n_layers - 1
    freqs = np.pi * 2.0 ** np.arange(n_freq)
    return (np.ascontiguousarray(W0[:dim]), np.ascontiguousarray(W0[dim:]),
            np.ascontiguousarray(params["b0"]), Wh, bh, np.ascontiguousarray(params[f"W{last}"]),
            np.ascontiguousarray(params[f"b{last}"]), freqs)


def rk4(cnf, x, t0, t1, trace):
    """``CNF.integrate`` with RK4 by the kernel: ``(x_end, log_det, nfe)``."""
    from .kernels.ode import _rk4
    weights = kernel_weights(cnf.params, cnf.dim, cnf.n_freq)
    out = np.empty_like(x)
    log_det = np.zeros(x.shape[0])
    _rk4(x, *weights, t0, t1, cnf.n_steps, trace, out, log_det)
    return out, log_det, 4 * cnf.n_steps
