r"""Kernels for the conditioner MLP: the passes BLAS does badly, fused with bias and activation.

The MLP of :mod:`nfscratch.nn` is ``h_{i+1} = act(h_i W_i + b_i)`` (no activation after the last
layer); rows are samples. Its backward pass, with ``dpre_i = dL/d(h_i W_i + b_i)``:

.. math::

    dW_i = h_i^\top dpre_i, \quad db_i = \textstyle\sum_n dpre_{i,n}, \quad
    dh_i = dpre_i W_i^\top, \quad dpre_{i-1} = dh_i \odot act'(h_i),

with ``act'`` read off the activation's output: ``tanh' = 1 - h^2``, ``relu' = [h > 0]``,
``leaky_relu' = 1 if h > 0 else 0.01``.

What runs where (the measurements behind it, on the 1 -> 64 -> 64 -> 2 coupling conditioner:
``benchmarks/README.md``, "Why the kernels look the way they do"):

* a square-ish product (64 x 64) is BLAS's job: Numba's ``np.dot`` (which needs SciPy) calls the
  same BLAS no faster than ``np.matmul`` from Python, so the kernels below never multiply two
  big matrices;
* a product with a thin side (fan-in or fan-out <= ``SMALL`` features) is memory-bound, and BLAS
  spends its time on packing: the kernels do it directly and fuse it with the bias, the
  activation or its derivative and the bias gradient (column sums), so each (N, H) array is read
  and written once;
* ``tanh`` is :func:`._math.tanh_v`, which vectorizes (``math.tanh`` is a call per number).

Each kernel has a checked entry ``<name>_nb`` and its NumPy twin ``<name>_ref``; the MLP of
:mod:`nfscratch._nn_fast`, which builds all but its input arrays itself, calls ``_<name>``.

Activation codes (``act``): 0 tanh, 1 relu, 2 leaky_relu (slope 0.01), as ``ACT_CODES``.
"""
import numpy as np
from numba import njit

from . import _checks as ck
from ._math import dot_v, tanh_v

__all__ = ["ACT_CODES", "SMALL", "dense_small_in_forward_ref", "dense_small_in_forward_nb",
           "bias_act_forward_ref", "bias_act_forward_nb", "act_backward_ref", "act_backward_nb",
           "dense_small_out_backward_ref", "dense_small_out_backward_nb",
           "dense_small_in_backward_ref", "dense_small_in_backward_nb", "act_small_in_backward_ref",
           "act_small_in_backward_nb"]

ACT_CODES = {"tanh": 0, "relu": 1, "leaky_relu": 2}
_ACT_NAMES = {code: name for name, code in ACT_CODES.items()}
LEAKY_SLOPE = 0.01
#: A layer with at most this many inputs (outputs) is "thin": the kernels, not BLAS, do it.
SMALL = 8

_JIT = dict(cache=True, error_model="numpy", fastmath={"contract"})


# ---------------------------------------------------------------------------------------------
# the activations: nfscratch.nn's, and their derivative as a function of their output
# ---------------------------------------------------------------------------------------------
def _act_ref(pre, act):
    from ..nn import ACTIVATIONS          # the activations' one NumPy definition (at call time:
    name = _ACT_NAMES[act]                # kernels/ does not import the layers above it)
    return ACTIVATIONS[name][0](pre)[0]


def _act_grad_ref(h, act):
    """``act'`` as a function of the activation's output ``h``."""
    if act == 0:
        return 1.0 - h * h
    if act == 1:
        return (h > 0).astype(np.float64)
    return np.where(h > 0, 1.0, LEAKY_SLOPE)


def _check_act(kernel, act):
    if type(act) is not int or act not in (0, 1, 2):
        raise ValueError(f"{kernel}: act: expected an activation code in {ACT_CODES}, got {act!r}.")


# Numba versions, inlined into the loops that call them: the branch on ``act`` does not change
# inside a loop, so LLVM hoists it out ("unswitching") and each copy of the loop vectorizes.
@njit(cache=True, inline="always", error_model="numpy", fastmath={"contract"})
def _act(x, act):
    if act == 0:
        return tanh_v(x)
    if act == 1:
        return 0.0 if x < 0.0 else x             # NaN passes through, as with np.maximum
    return x if x > 0.0 else LEAKY_SLOPE * x


@njit(cache=True, inline="always", error_model="numpy", fastmath={"contract"})
def _act_grad(h, act):
    """``act'`` from the activation's output ``h``."""
    if act == 0:
        return 1.0 - h * h
    if act == 1:
        return 1.0 if h > 0.0 else 0.0
    return 1.0 if h > 0.0 else LEAKY_SLOPE


# ---------------------------------------------------------------------------------------------
# forward
# ---------------------------------------------------------------------------------------------
def _check_dense(kernel, x_name, x, W, b):
    N, I = ck.f64(kernel, x_name, x, 2)
    ck.positive(kernel, f"{x_name}.shape[0] (N)", N)
    I_w, H = ck.f64(kernel, "W", W, 2)
    ck.dim_equal(kernel, "W.shape[0]", I_w, I, f"the number of columns of {x_name}")
    ck.same_shape(kernel, "b", ck.f64(kernel, "b", b, 1), (H,), "(H,) = (W.shape[1],)")
    return N, I, H


# the names the checks below report, made once: they run on every pass, and format no string
# unless one fails
_LAYER_NAMES = tuple((f"W{i}", f"b{i}") for i in range(8))


def _check_layers(kernel, x, Ws, bs=None):
    """``x`` (N, I), ``Ws[i]`` (fan_in, fan_out), ``bs[i]`` (fan_out,): float64, C-contiguous,
    widths that chain; return N. (A whole MLP's arguments: ``_nn_fast`` and ``.mlp_fused``;
    ``bs=None`` for a backward pass, which reads no biases.)"""
    N, I = ck.f64(kernel, "x", x, 2)
    ck.positive(kernel, "x.shape[0] (N)", N)
    for i, W in enumerate(Ws):
        W_name, b_name = _LAYER_NAMES[i] if i < len(_LAYER_NAMES) else (f"W{i}", f"b{i}")
        fan_in, fan_out = ck.f64(kernel, W_name, W, 2)
        if fan_in != I:
            ck.dim_equal(kernel, f"{W_name}.shape[0]", fan_in, I, "the width of the layer's input")
        if bs is not None and ck.f64(kernel, b_name, bs[i], 1) != (fan_out,):
            ck.same_shape(kernel, b_name, bs[i].shape, (fan_out,),
                          f"(fan_out,) = ({W_name}.shape[1],)")
        I = fan_out
    return N


def _check_out(kernel, out, shape):
    """``out`` (optional): where to write the result, e.g. rows of a larger array."""
    if out is None:
        return np.empty(shape)
    ck.same_shape(kernel, "out", ck.f64(kernel, "out", out, 2), shape, "(N, H) of the result")
    ck.writable(kernel, "out", out)
    return out


def dense_small_in_forward_ref(x, W, b, act, out=None):
    """A thin-input dense layer with its activation, ``h = act(x W + b)``.

    Parameters
    ----------
    x : ndarray, shape (N, I)
        ``I`` small (at most ``SMALL`` is where the kernel beats BLAS; any I works).
    W : ndarray, shape (I, H)
    b : ndarray, shape (H,)
    act : int
        Activation code (``ACT_CODES``).
    out : ndarray, shape (N, H), optional
        Written with the result (and returned) instead of a new array.

    Returns
    -------
    h : ndarray, shape (N, H)
    """
    N, _, H = _check_dense("dense_small_in_forward_ref", "x", x, W, b)
    _check_act("dense_small_in_forward_ref", act)
    out = _check_out("dense_small_in_forward_ref", out, (N, H))
    out[...] = _act_ref(x @ W + b, act)
    return out


@njit(**_JIT)
def _dense_small_in_forward(x, W, b, act, h):
    N, I = x.shape
    H = W.shape[1]
    hf = h.reshape(-1)            # flat view + row offset: no per-row array objects
    pre = np.empty(H)             # one row of x W + b, stays in L1
    for n in range(N):
        for j in range(H):
            pre[j] = b[j]
        for i in range(I):
            xi = x[n, i]
            for j in range(H):
                pre[j] += xi * W[i, j]
        base = n * H
        for j in range(H):
            hf[base + j] = _act(pre[j], act)
    return h


def dense_small_in_forward_nb(x, W, b, act, out=None):
    """Numba twin of :func:`dense_small_in_forward_ref`."""
    N, _, H = _check_dense("dense_small_in_forward_nb", "x", x, W, b)
    _check_act("dense_small_in_forward_nb", act)
    return _dense_small_in_forward(x, W, b, act,
                                   _check_out("dense_small_in_forward_nb", out, (N, H)))


def _check_bias_act(kernel, pre, b, act):
    N, H = ck.f64(kernel, "pre", pre, 2)
    ck.positive(kernel, "pre.shape[0] (N)", N)
    ck.same_shape(kernel, "b", ck.f64(kernel, "b", b, 1), (H,), "(H,) = (pre.shape[1],)")
    _check_act(kernel, act)
    return N, H


def bias_act_forward_ref(pre, b, act, out=None):
    """Bias and activation after a BLAS product: ``h = act(pre + b)``.

    Parameters
    ----------
    pre : ndarray, shape (N, H)
        ``h_prev @ W``, without the bias.
    b : ndarray, shape (H,)
    act : int
    out : ndarray, shape (N, H), optional
        Written with the result (and returned). It may be ``pre`` itself, but the compiled
        loop then runs without SIMD (an overlap check fails): use another array.

    Returns
    -------
    h : ndarray, shape (N, H)
    """
    N, H = _check_bias_act("bias_act_forward_ref", pre, b, act)
    out = _check_out("bias_act_forward_ref", out, (N, H))
    out[...] = _act_ref(pre + b, act)
    return out


@njit(**_JIT)
def _bias_act_forward(pre, b, act, h):
    N, H = pre.shape
    hf = h.reshape(-1)
    pf = pre.reshape(-1)
    for n in range(N):
        base = n * H
        for j in range(H):
            hf[base + j] = _act(pf[base + j] + b[j], act)
    return h


def bias_act_forward_nb(pre, b, act, out=None):
    """Numba twin of :func:`bias_act_forward_ref`."""
    N, H = _check_bias_act("bias_act_forward_nb", pre, b, act)
    return _bias_act_forward(pre, b, act, _check_out("bias_act_forward_nb", out, (N, H)))


# ---------------------------------------------------------------------------------------------
# backward
# ---------------------------------------------------------------------------------------------
def _check_act_backward(kernel, dh, h, act):
    N, H = ck.f64(kernel, "h", h, 2)
    ck.positive(kernel, "h.shape[0] (N)", N)
    ck.same_shape(kernel, "dh", ck.f64(kernel, "dh", dh, 2), (N, H), "(N, H) like h")
    _check_act(kernel, act)


def act_backward_ref(dh, h, act):
    """Through an activation: ``dpre = dh * act'(h)`` and its column sums.

    Parameters
    ----------
    dh : ndarray, shape (N, H)
        dL/dh (e.g. ``dpre_next @ W_next.T`` from BLAS).
    h : ndarray, shape (N, H)
        The activation's output.
    act : int

    Returns
    -------
    dpre : ndarray, shape (N, H)
    db : ndarray, shape (H,)
        ``sum_n dpre[n]``: the gradient of the bias that fed this activation.
    """
    _check_act_backward("act_backward_ref", dh, h, act)
    dpre = dh * _act_grad_ref(h, act)
    return dpre, dpre.sum(axis=0)


@njit(**_JIT)
def _act_backward(dh, h, act):
    N, H = h.shape
    dpre = np.empty((N, H))
    db = np.zeros(H)
    df, hf, dhf = dpre.reshape(-1), h.reshape(-1), dh.reshape(-1)
    for n in range(N):
        base = n * H
        for j in range(H):
            d = dhf[base + j] * _act_grad(hf[base + j], act)
            df[base + j] = d
            db[j] += d
    return dpre, db


def act_backward_nb(dh, h, act):
    """Numba twin of :func:`act_backward_ref`."""
    _check_act_backward("act_backward_nb", dh, h, act)
    return _act_backward(dh, h, act)


def _check_small_out_backward(kernel, dy, h, W, act):
    N, O = ck.f64(kernel, "dy", dy, 2)
    ck.positive(kernel, "dy.shape[0] (N)", N)
    H, O_w = ck.f64(kernel, "W", W, 2)
    ck.dim_equal(kernel, "W.shape[1]", O_w, O, "the number of columns of dy")
    ck.same_shape(kernel, "h", ck.f64(kernel, "h", h, 2), (N, H), "(N, H) = (dy.shape[0], W.shape[0])")
    _check_act(kernel, act)
    return N, H


def dense_small_out_backward_ref(dy, h, W, act, out=None):
    """Backward of a thin-output layer ``y = h W + b`` and of the activation that made ``h``.

    Parameters
    ----------
    dy : ndarray, shape (N, O)
        dL/dy, ``O`` small.
    h : ndarray, shape (N, H)
        The layer's input, ``act(pre)`` of the layer before.
    W : ndarray, shape (H, O)
    act : int
        The activation that produced ``h``.

    out : ndarray, shape (N, H), optional
        Written with ``dpre`` (and returned as it) instead of a new array.

    Returns
    -------
    dpre : ndarray, shape (N, H)
        ``(dy W^T) * act'(h)``: dL/dpre of the layer before.
    db_prev : ndarray, shape (H,)
        ``sum_n dpre[n]``, the bias gradient of the layer before.
    dW : ndarray, shape (H, O)
        ``h^T dy``.
    db : ndarray, shape (O,)
        ``sum_n dy[n]``.
    """
    N, H = _check_small_out_backward("dense_small_out_backward_ref", dy, h, W, act)
    dpre = _check_out("dense_small_out_backward_ref", out, (N, H))
    dpre[...] = (dy @ W.T) * _act_grad_ref(h, act)
    return dpre, dpre.sum(axis=0), h.T @ dy, dy.sum(axis=0)


@njit(**_JIT)
def _dense_small_out_backward(dy, h, W, act, dpre):
    N, O = dy.shape
    H = W.shape[0]
    WT = np.ascontiguousarray(W.T)                    # (O, H): rows contiguous along H
    dWT = np.zeros((O, H))
    db = np.zeros(O)
    db_prev = np.zeros(H)
    dh = np.empty(H)
    for n in range(N):
        hn = h[n]
        dh[:] = 0.0
        for o in range(O):
            d = dy[n, o]
            db[o] += d
            Wo = WT[o]
            dWo = dWT[o]
            for j in range(H):
                dh[j] += d * Wo[j]
                dWo[j] += d * hn[j]
        dn = dpre[n]
        for j in range(H):
            d = dh[j] * _act_grad(hn[j], act)
            dn[j] = d
            db_prev[j] += d
    return dpre, db_prev, np.ascontiguousarray(dWT.T), db


def dense_small_out_backward_nb(dy, h, W, act, out=None):
    """Numba twin of :func:`dense_small_out_backward_ref`."""
    N, H = _check_small_out_backward("dense_small_out_backward_nb", dy, h, W, act)
    return _dense_small_out_backward(dy, h, W, act,
                                     _check_out("dense_small_out_backward_nb", out, (N, H)))


def _check_small_in_backward(kernel, dpre, x, W):
    N, I = ck.f64(kernel, "x", x, 2)
    ck.positive(kernel, "x.shape[0] (N)", N)
    I_w, H = ck.f64(kernel, "W", W, 2)
    ck.dim_equal(kernel, "W.shape[0]", I_w, I, "the number of columns of x")
    ck.same_shape(kernel, "dpre", ck.f64(kernel, "dpre", dpre, 2), (N, H), "(N, H) = (x.shape[0], W.shape[1])")


def dense_small_in_backward_ref(dpre, x, W):
    """Backward of a thin-input layer ``pre = x W + b`` (its bias gradient comes with ``dpre``).

    Parameters
    ----------
    dpre : ndarray, shape (N, H)
    x : ndarray, shape (N, I)
    W : ndarray, shape (I, H)

    Returns
    -------
    dx : ndarray, shape (N, I)
        ``dpre W^T``.
    dW : ndarray, shape (I, H)
        ``x^T dpre``.
    """
    _check_small_in_backward("dense_small_in_backward_ref", dpre, x, W)
    return dpre @ W.T, x.T @ dpre


@njit(**_JIT)
def _dense_small_in_backward(dpre, x, W):
    N, I = x.shape
    H = W.shape[1]
    dx = np.empty((N, I))
    dW = np.zeros((I, H))
    for n in range(N):
        dn = dpre[n]
        for i in range(I):
            xi = x[n, i]
            dWi = dW[i]
            for j in range(H):
                dWi[j] += xi * dn[j]
            dx[n, i] = dot_v(dn, W[i])
    return dx, dW


def dense_small_in_backward_nb(dpre, x, W):
    """Numba twin of :func:`dense_small_in_backward_ref`."""
    _check_small_in_backward("dense_small_in_backward_nb", dpre, x, W)
    return _dense_small_in_backward(dpre, x, W)


def _check_act_small_in_backward(kernel, dh, h, x, W, act):
    N, I = ck.f64(kernel, "x", x, 2)
    ck.positive(kernel, "x.shape[0] (N)", N)
    I_w, H = ck.f64(kernel, "W", W, 2)
    ck.dim_equal(kernel, "W.shape[0]", I_w, I, "the number of columns of x")
    ck.same_shape(kernel, "h", ck.f64(kernel, "h", h, 2), (N, H), "(N, H) = (x.shape[0], W.shape[1])")
    ck.same_shape(kernel, "dh", ck.f64(kernel, "dh", dh, 2), (N, H), "(N, H) like h")
    _check_act(kernel, act)


def act_small_in_backward_ref(dh, h, x, W, act):
    """The first layer's backward with its activation: ``dpre = dh * act'(h)``, then
    ``dx = dpre W^T``, ``dW = x^T dpre``, ``db = sum_n dpre[n]`` -- one pass instead of two.

    Parameters
    ----------
    dh : ndarray, shape (N, H)
        dL/dh for the layer's output ``h = act(x W + b)``.
    h : ndarray, shape (N, H)
    x : ndarray, shape (N, I)
    W : ndarray, shape (I, H)
    act : int

    Returns
    -------
    dx : ndarray, shape (N, I)
    dW : ndarray, shape (I, H)
    db : ndarray, shape (H,)
    """
    _check_act_small_in_backward("act_small_in_backward_ref", dh, h, x, W, act)
    dpre = dh * _act_grad_ref(h, act)
    return dpre @ W.T, x.T @ dpre, dpre.sum(axis=0)


@njit(**_JIT)
def _act_small_in_backward(dh, h, x, W, act):
    N, I = x.shape
    H = W.shape[1]
    dx = np.empty((N, I))
    dW = np.zeros((I, H))
    db = np.zeros(H)
    d = np.empty(H)                                   # one row of dpre, stays in L1
    for n in range(N):
        dhn = dh[n]
        hn = h[n]
        for j in range(H):
            d[j] = dhn[j] * _act_grad(hn[j], act)
            db[j] += d[j]
        for i in range(I):
            xi = x[n, i]
            for j in range(H):
                dW[i, j] += xi * d[j]
            dx[n, i] = dot_v(d, W[i])
    return dx, dW, db


def act_small_in_backward_nb(dh, h, x, W, act):
    """Numba twin of :func:`act_small_in_backward_ref`."""
    _check_act_small_in_backward("act_small_in_backward_nb", dh, h, x, W, act)
    return _act_small_in_backward(dh, h, x, W, act)
