r"""RK4 integration of a continuous flow's velocity MLP, fused for a block of samples.

The field is the MLP of :mod:`nfscratch.continuous`: inputs ``[x, e(t)]`` with the time
embedding :math:`e(t) = (\sin\omega_k t, \cos\omega_k t)`, SiLU hidden layers of equal width H,
a linear output. At one time t every sample sees the same embedding, so the first layer is
:math:`x W_x + (b_0 + e(t) W_t)`: the kernel folds the embedding into the bias once per stage.

With ``trace`` the kernel also carries the forward-mode derivatives :math:`G = \partial h /
\partial x` (D rows per sample) through the network, stacked under the activations so that both
go through each hidden layer's product together, and integrates the exact divergence
:math:`\mathrm{tr}(G_{\rm last} W_o)` beside the state (see
:func:`nfscratch.continuous.velocity_jacobian`).

Why fused: the NumPy twin, :func:`nfscratch.continuous.rk4_integrate`, makes each (N, H)
activation in several passes over memory and allocates every stage; here a block of a few
samples (rows of h and G together, a few kB) stays in L1 through all layers, stages and steps,
the SiLU is vectorized arithmetic (:func:`._math.exp_v`), and nothing is allocated after the
start. Weights stay in L2 (a 128 x 128 layer is 128 kB).

Layout of the weights (:func:`nfscratch._continuous_fast.kernel_weights` builds it from a
params dict): ``Wx`` (D, H) and ``Wt`` (2K, H) are the rows of ``W0`` for x and for e(t),
``b0`` (H,), ``Wh`` (L, H, H) and ``bh`` (L, H) the hidden-to-hidden layers, ``Wo`` (H, D) and
``bo`` (D,) the output layer, ``freqs`` (K,) the :math:`\omega_k`.
"""
import numpy as np
from numba import njit

from . import _checks as ck
from ._math import exp_v

__all__ = ["rk4_nb", "silu_act_nb", "ROWS"]

_JIT = dict(cache=True, error_model="numpy", fastmath={"contract"})
#: Rows (samples, plus D derivative rows each with the trace) pushed through the MLP together.
ROWS = 16


@njit(**_JIT)
def _silu_act(pre, h, dact):
    """``h = silu(pre)`` and ``dact = silu'(pre)`` in one pass (twin: ``nn.silu_forward`` and
    ``nn.silu_backward`` of ones)."""
    p, hf, df = pre.ravel(), h.ravel(), dact.ravel()
    for k in range(p.shape[0]):
        s = 1.0 / (1.0 + exp_v(-p[k]))
        hf[k] = p[k] * s
        df[k] = s * (1.0 + p[k] * (1.0 - s))


def silu_act_nb(pre):
    """``(silu(pre), silu'(pre))`` of a C-contiguous float64 (N, H) array, in one pass."""
    ck.f64("silu_act_nb", "pre", pre, 2)
    h, dact = np.empty_like(pre), np.empty_like(pre)
    _silu_act(pre, h, dact)
    return h, dact


@njit(**_JIT)
def _matmul_acc(A, W, C, R):
    """``C[:R] += A[:R] @ W`` for a few rows, in 4 x 4 register tiles: each pass over a row of
    C reads four rows of W once for four rows of A (16 multiply-adds per load and store of C)."""
    H = W.shape[0]
    H4, R4 = H - H % 4, R - R % 4
    for r in range(0, R4, 4):
        for i in range(0, H4, 4):
            a0, a1, a2, a3 = A[r, i], A[r, i + 1], A[r, i + 2], A[r, i + 3]
            b0, b1, b2, b3 = A[r + 1, i], A[r + 1, i + 1], A[r + 1, i + 2], A[r + 1, i + 3]
            c0, c1, c2, c3 = A[r + 2, i], A[r + 2, i + 1], A[r + 2, i + 2], A[r + 2, i + 3]
            d0, d1, d2, d3 = A[r + 3, i], A[r + 3, i + 1], A[r + 3, i + 2], A[r + 3, i + 3]
            for j in range(W.shape[1]):
                w0, w1, w2, w3 = W[i, j], W[i + 1, j], W[i + 2, j], W[i + 3, j]
                C[r, j] += a0 * w0 + a1 * w1 + a2 * w2 + a3 * w3
                C[r + 1, j] += b0 * w0 + b1 * w1 + b2 * w2 + b3 * w3
                C[r + 2, j] += c0 * w0 + c1 * w1 + c2 * w2 + c3 * w3
                C[r + 3, j] += d0 * w0 + d1 * w1 + d2 * w2 + d3 * w3
        for i in range(H4, H):
            for rr in range(r, r + 4):
                a = A[rr, i]
                for j in range(W.shape[1]):
                    C[rr, j] += a * W[i, j]
    for r in range(R4, R):
        for i in range(H):
            a = A[r, i]
            for j in range(W.shape[1]):
                C[r, j] += a * W[i, j]


@njit(**_JIT)
def _field(ys, t, nb, Wx, Wt, b0, Wh, bh, Wo, bo, freqs, trace, A, C, dact, beff, kv, div):
    """v(ys, t) into kv (and the divergence into div) for the first nb rows of ys."""
    D, H = Wx.shape
    K = freqs.shape[0]
    L = Wh.shape[0]
    R = nb * (1 + D) if trace else nb
    for j in range(H):                                   # b0 + e(t) W_t
        beff[j] = b0[j]
    for k in range(K):
        s, c = np.sin(t * freqs[k]), np.cos(t * freqs[k])
        for j in range(H):
            beff[j] += s * Wt[k, j] + c * Wt[K + k, j]
    for b in range(nb):                                  # first layer, then SiLU
        for j in range(H):
            A[b, j] = beff[j]
        for d in range(D):
            yd = ys[b, d]
            for j in range(H):
                A[b, j] += yd * Wx[d, j]
    for layer in range(L + 1):
        # A holds pre-activations of rows 0..nb-1 and (with trace) the G rows' products
        for b in range(nb):
            for j in range(H):
                p = A[b, j]
                s = 1.0 / (1.0 + exp_v(-p))
                A[b, j] = p * s
                if trace:
                    dact[b, j] = s * (1.0 + p * (1.0 - s))
        if trace:
            for b in range(nb):
                for d in range(D):
                    r = nb + b * D + d
                    if layer == 0:
                        for j in range(H):
                            A[r, j] = Wx[d, j] * dact[b, j]
                    else:
                        for j in range(H):
                            A[r, j] *= dact[b, j]
        if layer == L:
            break
        for r in range(R):                               # C = A W_h + b_h (no bias on G)
            bias = 1.0 if r < nb else 0.0
            for j in range(H):
                C[r, j] = bias * bh[layer, j]
        _matmul_acc(A, Wh[layer], C, R)
        for r in range(R):
            for j in range(H):
                A[r, j] = C[r, j]
    for b in range(nb):                                  # output layer
        for e in range(D):
            acc = bo[e]
            for i in range(H):
                acc += A[b, i] * Wo[i, e]
            kv[b, e] = acc
        if trace:
            acc = 0.0
            for d in range(D):
                r = nb + b * D + d
                for i in range(H):
                    acc += A[r, i] * Wo[i, d]
            div[b] = acc


@njit(**_JIT)
def _rk4(x, Wx, Wt, b0, Wh, bh, Wo, bo, freqs, t0, t1, n_steps, trace, out, log_det):
    N, D = x.shape
    H = Wx.shape[1]
    # samples per block: with the trace, a multiple of 4 (whole 4-row tiles when D = 2 or 3)
    B = max(4, 4 * (ROWS // (4 * (1 + D)))) if trace else ROWS
    A = np.empty((max(ROWS, B * (1 + D)), H))
    C = np.empty((max(ROWS, B * (1 + D)), H))
    dact = np.empty((B, H))
    beff = np.empty(H)
    y = np.empty((B, D))
    ys = np.empty((B, D))
    kv = np.empty((B, D))
    acc = np.empty((B, D))
    div = np.zeros(B)
    ld = np.empty(B)
    ld_acc = np.empty(B)
    h = (t1 - t0) / n_steps
    for start in range(0, N, B):
        nb = min(B, N - start)
        for b in range(nb):
            ld[b] = 0.0
            for d in range(D):
                y[b, d] = x[start + b, d]
        for step in range(n_steps):
            t = t0 + step * h
            for b in range(nb):
                ld_acc[b] = 0.0
                for d in range(D):
                    acc[b, d] = 0.0
            for stage in range(4):
                # stages of the classical RK4: nodes 0, 1/2, 1/2, 1; weights 1, 2, 2, 1 (/6)
                if stage == 0:
                    for b in range(nb):
                        for d in range(D):
                            ys[b, d] = y[b, d]
                    ts = t
                else:
                    c = 1.0 if stage == 3 else 0.5
                    for b in range(nb):
                        for d in range(D):
                            ys[b, d] = y[b, d] + (c * h) * kv[b, d]
                    ts = t + c * h
                _field(ys, ts, nb, Wx, Wt, b0, Wh, bh, Wo, bo, freqs, trace, A, C, dact, beff,
                       kv, div)
                w = 2.0 if stage == 1 or stage == 2 else 1.0
                for b in range(nb):
                    for d in range(D):
                        acc[b, d] += w * kv[b, d]
                    ld_acc[b] += w * div[b]
            for b in range(nb):
                for d in range(D):
                    y[b, d] += (h / 6.0) * acc[b, d]
                if trace:
                    ld[b] += (h / 6.0) * ld_acc[b]
        for b in range(nb):
            log_det[start + b] = ld[b]
            for d in range(D):
                out[start + b, d] = y[b, d]


def rk4_nb(x, Wx, Wt, b0, Wh, bh, Wo, bo, freqs, t0, t1, n_steps, trace):
    """Integrate ``dx/dt = v(x, t)`` from t0 to t1 in ``n_steps`` RK4 steps: ``(x_end,
    log_det)``, log_det the integrated exact divergence (zeros without ``trace``).

    Twin: :func:`nfscratch.continuous.rk4_integrate` (``nfe`` aside), on the params dict that
    :func:`nfscratch._continuous_fast.kernel_weights` unpacks into these arrays.

    Parameters
    ----------
    x : ndarray (N, D)
    Wx (D, H), Wt (2K, H), b0 (H,), Wh (L, H, H), bh (L, H), Wo (H, D), bo (D,), freqs (K,)
    t0, t1 : float in [0, 1]
    n_steps : int >= 1
    trace : bool
    """
    name = "rk4_nb"
    N, D = ck.f64(name, "x", x, 2)
    ck.positive(name, "x.shape[0]", N)
    ck.positive(name, "x.shape[1]", D)
    D2, H = ck.f64(name, "Wx", Wx, 2)
    ck.dim_equal(name, "Wx.shape[0]", D2, D, "x.shape[1]")
    ck.positive(name, "Wx.shape[1]", H)
    (K,) = ck.f64(name, "freqs", freqs, 1)
    ck.same_shape(name, "Wt", ck.f64(name, "Wt", Wt, 2), (2 * K, H), "(2 * freqs.size, H)")
    ck.same_shape(name, "b0", ck.f64(name, "b0", b0, 1), (H,), "(H,)")
    L = ck.f64(name, "Wh", Wh, 3)[0]
    ck.same_shape(name, "Wh", Wh.shape, (L, H, H), "(L, H, H)")
    ck.same_shape(name, "bh", ck.f64(name, "bh", bh, 2), (L, H), "(L, H)")
    ck.same_shape(name, "Wo", ck.f64(name, "Wo", Wo, 2), (H, D), "(H, D)")
    ck.same_shape(name, "bo", ck.f64(name, "bo", bo, 1), (D,), "(D,)")
    ck.float_in(name, "t0", t0, 0.0, 1.0, "a time in [0, 1]", True, True)
    ck.float_in(name, "t1", t1, 0.0, 1.0, "a time in [0, 1]", True, True)
    if type(n_steps) is not int or n_steps < 1:
        raise ValueError(f"{name}: n_steps: expected a positive int, got {n_steps!r}.")
    if type(trace) is not bool:
        raise TypeError(f"{name}: trace: expected a bool, got {trace!r}.")
    out = np.empty((N, D))
    log_det = np.zeros(N)
    _rk4(x, Wx, Wt, b0, Wh, bh, Wo, bo, freqs, t0, t1, n_steps, trace, out, log_det)
    return out, log_det
