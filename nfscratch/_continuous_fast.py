"""The CNF's fast paths, reached from the teaching module by one-line dispatches.

* ``rk4``: the params dict unpacked into the layout of :mod:`nfscratch.kernels.ode` and the
  fused RK4 kernel called on it (``CNF.integrate``);
* ``cfm_loss``: the flow-matching loss and gradient of :func:`nfscratch.continuous.cfm_loss`
  with each SiLU and its derivative made in one compiled pass (``_silu_act``) instead of the
  several NumPy passes of ``nn.silu_forward``; the products stay with BLAS.
"""
import numpy as np

__all__ = ["kernel_weights", "rk4", "cfm_loss"]


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
    from .continuous import frequencies      # (at call time: continuous imports this module)
    freqs = frequencies(n_freq)
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


def cfm_loss(params, x, z, t, n_freq):
    """:func:`nfscratch.continuous.cfm_loss`, the same numbers (to rounding): ``(loss, grads)``."""
    from .continuous import time_embedding_forward
    from .kernels.ode import _silu_act
    xt = (1.0 - t)[:, None] * z + t[:, None] * x
    e = time_embedding_forward(t, n_freq)[0]
    n_layers = len(params) // 2
    hs, dacts = [np.concatenate([xt, e], axis=1)], []
    for i in range(n_layers):                       # forward: keep each layer's input and silu'
        pre = hs[-1] @ params[f"W{i}"] + params[f"b{i}"]
        if i < n_layers - 1:
            h, dact = np.empty_like(pre), np.empty_like(pre)
            _silu_act(pre, h, dact)
            hs.append(h)
            dacts.append(dact)
    r = pre - (x - z)
    N = x.shape[0]
    loss = float(np.sum(r * r) / N)
    dpre = (2.0 / N) * r
    grads = {}
    for i in reversed(range(n_layers)):              # backward mirrors forward
        grads[f"W{i}"], grads[f"b{i}"] = hs[i].T @ dpre, dpre.sum(axis=0)
        if i > 0:
            dpre = (dpre @ params[f"W{i}"].T) * dacts[i - 1]
    return loss, grads
