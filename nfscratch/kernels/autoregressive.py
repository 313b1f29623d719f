r"""Kernel for the sequential direction of an affine autoregressive layer (MAF sampling, IAF density).

(At the end of the module: the one-pass direction of a chain of K IAF layers, forward and
backward in one call each, for :class:`~nfscratch.transforms.iaf_chain.IAFChain`.)

The twin is the teaching function :func:`nfscratch.transforms.autoregressive.iaf_inverse`
(same arguments, unpacked): solve ``z = x e^{s(x)} + t(x)`` for ``x`` feature by feature, where
``[raw | t] = MADE(x)``, ``s = s_max tanh(raw / s_max)``,

.. math:: x_i = (z_i - t_i(x_{<i}))\, e^{-s_i(x_{<i})}, \qquad \log|\det| = -\textstyle\sum_i s_i,

for the features ``i = order[0], order[1], ...`` (the IAF form: the IAF's density direction).
With ``shift_first=True`` each step is instead the MAF form's sampling step
``x_i = z_i e^{s_i(x_{<i})} + t_i(x_{<i})``, log-det ``+sum_i s_i`` (twin
:func:`~nfscratch.transforms.autoregressive.maf_forward`); the schedule below is the same.
The teaching function runs D full MADE passes.
This kernel gives the same numbers (to round-off) with the work of *one* pass: a hidden unit of
degree ``d`` reads only inputs (and lower units) of degree ``<= d``, so it is final as soon as the
``d``-th feature is known. At step ``k`` the kernel computes exactly the hidden units of degree
``k`` (layer by layer), then the two outputs of feature ``order[k]`` -- each unit once, skipping
masked (zero) weights (units of degree 0, which read no input, at step 0). The D steps remain a
chain (step k needs step k-1), which is what makes sampling a MAF slow on parallel hardware;
the arithmetic is no longer D times larger. Its backward (:func:`maf_forward_backward_nb`, below)
is the same idea run backwards.

Layout: samples run in the inner loop (vectorized), over blocks of ``BLOCK`` samples whose
activations, stored unit-major ``(units, BLOCK)``, stay in cache. Scratch is allocated once per
call, never per step.

Arguments: ``z`` (N, D); ``weights`` 1-D, for each layer ``l`` the masked weights ``W_l ⊙ M_l``
(row-major, shape ``(sizes[l], sizes[l+1])``) then ``b_l``; ``sizes`` int64 ``[D, H_1, .., 2D]``;
``hidden_deg`` int64, the degrees of all hidden units, layer after layer (:func:`unit_degrees`
reads them off the masks; a MADE's own degrees 1..D-1 also work for masks built from them),
each at least the degree of every unit it reads; ``order``
int64 (D,); ``act`` an activation code of :mod:`.mlp` (0 tanh, 1 relu, 2 leaky_relu);
``s_max`` a positive float; ``shift_first`` a bool. Returns ``x`` (N, D) and ``log_det`` (N,).
"""
import numpy as np
from numba import njit

from . import _checks as ck
from ._math import dot_v, exp_v, sum_v, tanh_v
from .mlp import ACT_CODES, _act, _act_grad

__all__ = ["maf_forward_nb", "maf_forward_backward_nb", "pack_made", "unpack_made", "pack_masks",
           "unit_degrees", "iaf_chain_forward_nb", "iaf_chain_backward_nb", "chain_arrays"]

BLOCK = 256
_JIT = dict(cache=True, error_model="numpy", fastmath={"contract"})


def pack_made(params, masks):
    """``(weights, sizes)`` for :func:`maf_forward_nb` from MADE params and masks."""
    parts, sizes = [], [masks[0].shape[0]]
    for l, M in enumerate(masks):
        parts += [(params[f"W{l}"] * M).ravel(), params[f"b{l}"]]
        sizes.append(M.shape[1])
    return np.concatenate(parts), np.array(sizes, dtype=np.int64)


def unpack_made(packed, sizes):
    """The inverse of :func:`pack_made`: ``{"W0": (sizes[0], sizes[1]), "b0": ..., ...}``."""
    out, pos = {}, 0
    for l, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        out[f"W{l}"] = packed[pos:pos + fan_in * fan_out].reshape(fan_in, fan_out)
        pos += fan_in * fan_out
        out[f"b{l}"] = packed[pos:pos + fan_out]
        pos += fan_out
    return out


def pack_masks(masks):
    """The masks in the layout of :func:`pack_made`'s ``weights`` (1 for every bias)."""
    parts = []
    for M in masks:
        parts += [M.ravel(), np.ones(M.shape[1])]
    return np.concatenate(parts).astype(np.float64)


def unit_degrees(masks, order):
    """Degrees of the hidden units read off the masks: the latest position (1..D) in ``order`` of
    any input a unit reads through them, 0 for a unit that reads none; layer after layer, int64.

    For masks built from degrees these are at most the MADE's own degrees, and for any masks that
    pass :func:`~nfscratch.transforms.made.check_made_masks` they are what the kernels need: a
    unit of degree d is final once the first d features in the order are, and feeds only units of
    degree >= d and outputs of features after position d.
    """
    deg = np.empty(order.size, dtype=np.int64)
    deg[order] = np.arange(1, order.size + 1)
    hidden = []
    for M in masks[:-1]:
        deg = np.where(M != 0, deg[:, None], 0).max(axis=0)              # (fan_out,)
        hidden.append(deg)
    return np.concatenate(hidden) if hidden else np.zeros(0, dtype=np.int64)


def _check(kernel, z, weights, sizes, hidden_deg, order, act, s_max):
    N, D = ck.f64(kernel, "z", z, 2)
    ck.positive(kernel, "z.shape[0] (N)", N)
    (L1,) = ck.i64(kernel, "sizes", sizes, 1)
    if L1 < 2 or sizes[0] != D or sizes[-1] != 2 * D or sizes.min() < 1:
        raise ck.KernelArgumentError(f"{kernel}: sizes: expected [D, H_1, .., 2D] with D = {D} "
                                     f"and positive widths, got {sizes.tolist()}.")
    n_w = int(np.sum(sizes[:-1] * sizes[1:] + sizes[1:]))
    ck.same_shape(kernel, "weights", ck.f64(kernel, "weights", weights, 1), (n_w,),
                  "(sum of W and b sizes,)")
    n_h = int(np.sum(sizes[1:-1]))
    ck.same_shape(kernel, "hidden_deg", ck.i64(kernel, "hidden_deg", hidden_deg, 1), (n_h,),
                  "(total hidden units,)")
    ck.dim_equal(kernel, "order.shape[0]", ck.index_array(kernel, "order", order, D), D, "D")
    if type(act) is not int or act not in ACT_CODES.values():
        raise ValueError(f"{kernel}: act: expected an activation code in {ACT_CODES}, got {act!r}.")
    if type(s_max) is not float or not s_max > 0.0:
        raise ValueError(f"{kernel}: s_max: expected a positive float, got {s_max!r}.")


@njit(cache=True, inline="always", error_model="numpy", fastmath={"contract"})
def _layout(sizes):
    """Where ``W_l`` and ``b_l`` start in ``weights``, and the first row of layer ``l``'s units
    in the unit-major activations (row 0: the inputs; ``a_off[L]``: the total)."""
    L = sizes.shape[0] - 1
    w_off = np.empty(L, np.int64)
    b_off = np.empty(L, np.int64)
    a_off = np.empty(L + 1, np.int64)
    pos = 0
    rows = 0
    for l in range(L):
        w_off[l] = pos
        pos += sizes[l] * sizes[l + 1]
        b_off[l] = pos
        pos += sizes[l + 1]
        a_off[l] = rows
        rows += sizes[l]
    a_off[L] = rows
    return w_off, b_off, a_off


@njit(cache=True, inline="always", error_model="numpy", fastmath={"contract"})
def _hidden_unit(acts, weights, sizes, w_off, b_off, a_off, l, j, nb, act):
    """Unit ``j`` of hidden layer ``l + 1`` for the first ``nb`` samples of a block, from the
    units of layer ``l`` (skipping zero weights)."""
    H_in, H = sizes[l], sizes[l + 1]
    row = acts[a_off[l + 1] + j]
    bj = weights[b_off[l] + j]
    for n in range(nb):
        row[n] = bj
    for p in range(H_in):
        w = weights[w_off[l] + p * H + j]
        if w != 0.0:
            src = acts[a_off[l] + p]
            for n in range(nb):
                row[n] += w * src[n]
    for n in range(nb):
        row[n] = _act(row[n], act)


@njit(cache=True, inline="always", error_model="numpy", fastmath={"contract"})
def _hidden_unit_backward(acts, grad, weights, masks, dweights, sizes, w_off, b_off, a_off, l, j,
                          nb, act, dpre):
    """Backward through unit ``j`` of hidden layer ``l`` (fed by ``W_{l-1}``) for the first
    ``nb`` samples of a block: its gradient ``grad`` is complete; send it down to the units of
    layer ``l - 1`` (skipping masked weights) and add the gradients of the unit's bias and
    weights. ``dpre`` is scratch of at least ``nb``. Shared by the sequential direction's
    backward and the IAF chain's backward."""
    H_in, H = sizes[l - 1], sizes[l]
    g, h = grad[a_off[l] + j], acts[a_off[l] + j]
    for n in range(nb):
        dpre[n] = g[n] * _act_grad(h[n], act)
    dweights[b_off[l - 1] + j] += sum_v(dpre[:nb])
    for p in range(H_in):
        q = w_off[l - 1] + p * H + j
        if masks[q] != 0.0:
            w = weights[q]
            src, gsrc = acts[a_off[l - 1] + p], grad[a_off[l - 1] + p]
            for n in range(nb):
                gsrc[n] += w * dpre[n]
            dweights[q] += dot_v(src[:nb], dpre[:nb])


@njit(cache=True, inline="always", error_model="numpy", fastmath={"contract"})
def _outputs_backward(acts, grad, weights, masks, dweights, sizes, w_off, b_off, a_off, i, nb,
                      c_raw, v):
    """Backward through the two outputs of feature ``i`` (log-scale pre-activation ``raw_i``,
    gradient ``c_raw``; shift ``t_i``, gradient ``v``) to the last hidden layer and to their
    weights and biases, for the first ``nb`` samples of a block. Shared as above."""
    L = sizes.shape[0] - 1
    D = sizes[0]
    H_last, O = sizes[L - 1], sizes[L]
    dweights[b_off[L - 1] + i] += sum_v(c_raw[:nb])
    dweights[b_off[L - 1] + D + i] += sum_v(v[:nb])
    for p in range(H_last):
        q_raw = w_off[L - 1] + p * O + i
        q_t = q_raw + D
        src, gsrc = acts[a_off[L - 1] + p], grad[a_off[L - 1] + p]
        if masks[q_raw] != 0.0:
            w = weights[q_raw]
            for n in range(nb):
                gsrc[n] += w * c_raw[n]
            dweights[q_raw] += dot_v(src[:nb], c_raw[:nb])
        if masks[q_t] != 0.0:
            w = weights[q_t]
            for n in range(nb):
                gsrc[n] += w * v[n]
            dweights[q_t] += dot_v(src[:nb], v[:nb])


@njit(cache=True, inline="always", error_model="numpy", fastmath={"contract"})
def _outputs(acts, weights, sizes, w_off, b_off, a_off, i, nb, raw, t):
    """The two outputs of feature ``i`` (log-scale pre-activation into ``raw``, shift into
    ``t``) from the last hidden layer, for the first ``nb`` samples of a block."""
    L = sizes.shape[0] - 1
    D = sizes[0]
    H_in, O = sizes[L - 1], sizes[L]
    b_raw, b_t = weights[b_off[L - 1] + i], weights[b_off[L - 1] + D + i]
    for n in range(nb):
        raw[n] = b_raw
        t[n] = b_t
    for p in range(H_in):
        w_raw = weights[w_off[L - 1] + p * O + i]
        w_t = weights[w_off[L - 1] + p * O + D + i]
        if w_raw != 0.0 or w_t != 0.0:
            src = acts[a_off[L - 1] + p]
            for n in range(nb):
                raw[n] += w_raw * src[n]
                t[n] += w_t * src[n]


@njit(**_JIT)
def _maf_forward(z, weights, sizes, hidden_deg, order, act, s_max, shift_first):
    N, D = z.shape
    L = sizes.shape[0] - 1
    w_off, b_off, a_off = _layout(sizes)
    B = min(N, BLOCK)
    acts = np.empty((a_off[L], B))         # (units, samples) of one block
    raw = np.empty(B)
    t = np.empty(B)
    x = np.empty((N, D))
    log_det = np.zeros(N)
    for n0 in range(0, N, B):
        nb = min(B, N - n0)
        for k in range(D):
            hd = 0                         # hidden units of degree k: their inputs are final now
            for l in range(L - 1):
                for j in range(sizes[l + 1]):
                    if hidden_deg[hd + j] == k:
                        _hidden_unit(acts, weights, sizes, w_off, b_off, a_off, l, j, nb, act)
                hd += sizes[l + 1]
            i = order[k]                   # the feature generated k-th: its two outputs
            _outputs(acts, weights, sizes, w_off, b_off, a_off, i, nb, raw, t)
            xi = acts[i]                   # input row i, read by the units of later steps
            if shift_first:                # x_i = z_i e^{s} + t (the MAF's sampling step)
                for n in range(nb):
                    s = s_max * tanh_v(raw[n] / s_max)
                    xi[n] = z[n0 + n, i] * exp_v(s) + t[n]
                    log_det[n0 + n] += s
            else:                          # solve z_i = x_i e^{s} + t (the IAF's density)
                for n in range(nb):
                    s = s_max * tanh_v(raw[n] / s_max)
                    xi[n] = (z[n0 + n, i] - t[n]) * exp_v(-s)
                    log_det[n0 + n] -= s
            for n in range(nb):
                x[n0 + n, i] = xi[n]
    return x, log_det


def maf_forward_nb(z, weights, sizes, hidden_deg, order, act, s_max, shift_first=False):
    """Sequential direction of an affine autoregressive layer: ``(x, log_det)`` (module docstring).

    ``shift_first=False``: solve the IAF form ``z = x e^{s} + t`` (log_det ``-sum s``);
    ``True``: the MAF form's sampling step ``x_i = z_i e^{s_i} + t_i`` (log_det ``+sum s``).

    Twin: ``nfscratch.transforms.autoregressive.iaf_inverse`` (``maf_forward`` for
    ``shift_first``) on the unpacked parameters.
    """
    _check("maf_forward_nb", z, weights, sizes, hidden_deg, order, act, s_max)
    _check_flag("maf_forward_nb", shift_first)
    return _maf_forward(z, weights, sizes, hidden_deg, order, act, s_max, shift_first)


def _check_flag(kernel, shift_first):
    if type(shift_first) is not bool:
        raise ValueError(f"{kernel}: shift_first: expected True (the MAF form) or False (the IAF "
                         f"form), got {shift_first!r}.")


# ---------------------------------------------------------------------------------------------
# backward of the sequential direction
# ---------------------------------------------------------------------------------------------
# Twin: ``iaf_inverse_backward`` of the teaching file, on the cache of ``iaf_forward`` at the
# solution. The teaching function finds ``v`` (= dz) of ``J^T v = dx - dlog_det d(sum s)/dx`` by
# back-substitution with D full one-pass backward passes. Here it is one backward pass, run in
# reverse order of degree: the gradient reaching a hidden unit of degree d is complete once the
# outputs of every feature after position d are (they are the only outputs it feeds, directly or
# through units of degree >= d). So at each position m = D .. 1, the units of degree m are
# finished (last hidden layer first), which completes the gradient reaching input ``order[m-1]``
# and gives its ``v``; its two outputs then send their gradient down to the units of lower degree.
# Each weight's gradient is summed once, where its unit is finished; units of degree 0 last.
def _check_backward(kernel, dx, dlog_det, u, weights, masks, sizes, hidden_deg, order, act,
                    s_max):
    _check(kernel, u, weights, sizes, hidden_deg, order, act, s_max)
    N, D = u.shape
    ck.same_shape(kernel, "dx", ck.f64(kernel, "dx", dx, 2), (N, D), "(N, D) like u")
    ck.same_shape(kernel, "dlog_det", ck.f64(kernel, "dlog_det", dlog_det, 1), (N,), "(N,)")
    ck.same_shape(kernel, "masks", ck.f64(kernel, "masks", masks, 1), weights.shape,
                  "weights.shape (pack_masks)")


@njit(**_JIT)
def _maf_forward_backward(dx, dlog_det, u, weights, masks, sizes, hidden_deg, order, act, s_max,
                          shift_first):
    N, D = u.shape
    L = sizes.shape[0] - 1
    w_off, b_off, a_off = _layout(sizes)
    rows = a_off[L]
    B = min(N, BLOCK)
    acts = np.empty((rows, B))             # unit outputs at u, (units, samples) of one block
    grad = np.empty((rows, B))             # dL/d(unit output), summed as outputs finish
    diag = np.empty((D, B))                # J_ii of the one pass: e^{s} (IAF form), e^{-s} (MAF)
    ds_draw = np.empty((D, B))
    y = np.empty((D, B))                   # the one pass's output (MAF form only)
    raw = np.empty(B)
    t = np.empty(B)
    dpre = np.empty(B)
    c_raw = np.empty(B)
    v = np.empty(B)
    dt = np.empty(B)
    dz = np.empty((N, D))
    dweights = np.zeros(weights.shape[0])
    sign = -1.0 if shift_first else 1.0
    for n0 in range(0, N, B):
        nb = min(B, N - n0)
        # the one pass at u, every unit (its cache)
        for i in range(D):
            row = acts[i]
            for n in range(nb):
                row[n] = u[n0 + n, i]
        for l in range(L - 1):
            for j in range(sizes[l + 1]):
                _hidden_unit(acts, weights, sizes, w_off, b_off, a_off, l, j, nb, act)
        for i in range(D):
            _outputs(acts, weights, sizes, w_off, b_off, a_off, i, nb, raw, t)
            ji, dd, yi, ui = diag[i], ds_draw[i], y[i], acts[i]
            for n in range(nb):
                th = tanh_v(raw[n] / s_max)
                ji[n] = exp_v(sign * s_max * th)
                dd[n] = 1.0 - th * th
                yi[n] = (ui[n] - t[n]) * ji[n]
        for r in range(rows):
            g = grad[r]
            for n in range(nb):
                g[n] = 0.0
        # back-substitution in reverse order of degree
        for m in range(D, -1, -1):
            hd = rows - D                  # past the last hidden unit: walk the layers down
            for l in range(L - 1, 0, -1):  # hidden layer l, fed by W_{l-1}
                H = sizes[l]
                hd -= H
                for j in range(H):
                    if hidden_deg[hd + j] == m:
                        _hidden_unit_backward(acts, grad, weights, masks, dweights, sizes, w_off,
                                              b_off, a_off, l, j, nb, act, dpre)
            if m == 0:
                break
            i = order[m - 1]               # its input gradient is complete: solve for v_i
            gi, ui, ji, dd, yi = grad[i], acts[i], diag[i], ds_draw[i], y[i]
            for n in range(nb):
                v[n] = (dx[n0 + n, i] - gi[n]) / ji[n]
            if shift_first:                # z = (u - t) e^{-s}: ds = -v z - dl, dt = -v e^{-s}
                for n in range(nb):
                    c_raw[n] = (-v[n] * yi[n] - dlog_det[n0 + n]) * dd[n]
                    dt[n] = -v[n] * ji[n]
            else:                          # y = u e^{s} + t: ds = v u e^{s} + dl, dt = v
                for n in range(nb):
                    c_raw[n] = (v[n] * ui[n] * ji[n] + dlog_det[n0 + n]) * dd[n]
                    dt[n] = v[n]
            for n in range(nb):
                dz[n0 + n, i] = v[n]
            # the two outputs of feature i, down to the units
            _outputs_backward(acts, grad, weights, masks, dweights, sizes, w_off, b_off, a_off, i,
                              nb, c_raw, dt)
    for k in range(dweights.shape[0]):     # the one pass's gradients, with the sign of u(theta)
        dweights[k] = -dweights[k]
    return dz, dweights


def maf_forward_backward_nb(dx, dlog_det, u, weights, masks, sizes, hidden_deg, order, act,
                            s_max, shift_first=False):
    """Backward of :func:`maf_forward_nb`: ``(dz, dweights)`` for upstream ``(dx, dlog_det)``.

    ``u`` (N, D) is the forward's solution ``x``; ``masks`` (:func:`pack_masks`) says which
    weights exist (a weight that is zero still has a gradient); ``hidden_deg`` as for the forward
    (:func:`unit_degrees`). ``dweights`` has the layout of ``weights``, masked entries zero.

    ``shift_first`` as for :func:`maf_forward_nb`.

    Twin: ``nfscratch.transforms.autoregressive.iaf_inverse_backward`` on the cache of
    ``iaf_forward(u, ...)`` with ``"order"`` added (for ``shift_first``:
    ``maf_forward_backward`` on the cache of ``maf_inverse(u, ...)``).
    """
    _check_backward("maf_forward_backward_nb", dx, dlog_det, u, weights, masks, sizes,
                    hidden_deg, order, act, s_max)
    _check_flag("maf_forward_backward_nb", shift_first)
    return _maf_forward_backward(dx, dlog_det, u, weights, masks, sizes, hidden_deg, order, act,
                                 s_max, shift_first)


# ---------------------------------------------------------------------------------------------
# a chain of K IAF layers: the one-pass direction of every layer in one call
# ---------------------------------------------------------------------------------------------
# Twin: ``nfscratch.transforms.iaf_chain.iaf_chain_forward`` / ``iaf_chain_backward``, which loop
# the teaching ``iaf_forward`` / ``iaf_forward_backward`` over the layers. Why a kernel: at D = 2
# a layer's MADE is a few thousand flops a sample, far less than the Python cost of running it
# layer by layer (see benchmarks/README.md), so all K layers run here in one call.
#
# Arguments: ``weights`` (K, n_w), row k the raw (unmasked) parameters of layer k in the layout
# of :func:`pack_made`; ``masks`` (K, n_w), row k :func:`pack_masks` of layer k (a weight whose
# mask is 0 is skipped, which is the product ``W ⊙ M`` without forming it); ``sizes`` as for
# :func:`maf_forward_nb`, the same for every layer. The forward keeps, for the backward, every
# layer's input and hidden activations ``acts`` (K, rows, N) unit-major (rows = D + hidden
# units), ``e = exp(s)`` and ``dd = ds/draw`` (K, D, N), and the per-layer log-dets (K, N).
def _check_chain(kernel, weights, masks, sizes, act, s_max):
    K, n_w = ck.f64(kernel, "weights", weights, 2)
    ck.positive(kernel, "weights.shape[0] (K, the number of layers)", K)
    (L1,) = ck.i64(kernel, "sizes", sizes, 1)
    D = int(sizes[0]) if L1 else 0
    if L1 < 2 or D < 1 or sizes[-1] != 2 * D or sizes.min() < 1:
        raise ck.KernelArgumentError(f"{kernel}: sizes: expected [D, H_1, .., 2D] with positive "
                                     f"widths, got {sizes.tolist()}.")
    ck.same_shape(kernel, "weights", weights.shape, (K, int(np.sum(sizes[:-1] * sizes[1:] + sizes[1:]))),
                  "(K, sum of W and b sizes)")
    ck.same_shape(kernel, "masks", ck.f64(kernel, "masks", masks, 2), weights.shape,
                  "weights.shape (pack_masks per layer)")
    if type(act) is not int or act not in ACT_CODES.values():
        raise ValueError(f"{kernel}: act: expected an activation code in {ACT_CODES}, got {act!r}.")
    if type(s_max) is not float or not s_max > 0.0:
        raise ValueError(f"{kernel}: s_max: expected a positive float, got {s_max!r}.")
    return K, D, int(np.sum(sizes[:-1]))


@njit(**_JIT)
def _iaf_chain_forward(z, weights, masks, sizes, act, s_max, acts, e, dd, log_dets):
    N, D = z.shape
    K = weights.shape[0]
    L = sizes.shape[0] - 1
    w_off, b_off, a_off = _layout(sizes)
    log_dets[...] = 0.0
    log_det = np.zeros(N)
    x = np.empty((N, D))
    raw = np.empty(N)
    t = np.empty(N)
    for i in range(D):
        for n in range(N):
            acts[0, i, n] = z[n, i]
    H_last, O = sizes[L - 1], sizes[L]
    for k in range(K):
        a, w, msk = acts[k], weights[k], masks[k]
        for l in range(L - 1):               # hidden layer l + 1 from layer l
            H_in, H = sizes[l], sizes[l + 1]
            for j in range(H):
                row = a[a_off[l + 1] + j]
                bj = w[b_off[l] + j]
                for n in range(N):
                    row[n] = bj
                for p in range(H_in):
                    q = w_off[l] + p * H + j
                    if msk[q] != 0.0:
                        wq = w[q]
                        src = a[a_off[l] + p]
                        for n in range(N):
                            row[n] += wq * src[n]
                for n in range(N):
                    row[n] = _act(row[n], act)
        ld = log_dets[k]
        for i in range(D):                   # feature i: its log-scale and shift, then y_i
            b_raw, b_t = w[b_off[L - 1] + i], w[b_off[L - 1] + D + i]
            for n in range(N):
                raw[n] = b_raw
                t[n] = b_t
            for p in range(H_last):
                q_raw = w_off[L - 1] + p * O + i
                q_t = q_raw + D
                src = a[a_off[L - 1] + p]
                if msk[q_raw] != 0.0:
                    wq = w[q_raw]
                    for n in range(N):
                        raw[n] += wq * src[n]
                if msk[q_t] != 0.0:
                    wq = w[q_t]
                    for n in range(N):
                        t[n] += wq * src[n]
            ui, ei, di = a[i], e[k, i], dd[k, i]
            for n in range(N):
                th = tanh_v(raw[n] / s_max)
                s = s_max * th
                ei[n] = exp_v(s)
                di[n] = 1.0 - th * th
                ld[n] += s
                raw[n] = ui[n] * ei[n] + t[n]       # y_i, kept in raw
            if k + 1 < K:                    # y is the next layer's input
                nxt = acts[k + 1, i]
                for n in range(N):
                    nxt[n] = raw[n]
            else:
                for n in range(N):
                    x[n, i] = raw[n]
        for n in range(N):
            log_det[n] += ld[n]
    return x, log_det


def iaf_chain_forward_nb(z, weights, masks, sizes, act, s_max):
    """K IAF layers' one pass, layer 0 first: ``(x, log_det, acts, e, dd, log_dets)``.

    Twin: :func:`nfscratch.transforms.iaf_chain.iaf_chain_forward` on the unpacked parameters.
    (The compiled ``_iaf_chain_forward`` fills the four kept arrays given to it, so that a
    caller running many passes can reuse their memory.)
    """
    K, D, rows = _check_chain("iaf_chain_forward_nb", weights, masks, sizes, act, s_max)
    N, Dz = ck.f64("iaf_chain_forward_nb", "z", z, 2)
    ck.positive("iaf_chain_forward_nb", "z.shape[0] (N)", N)
    ck.dim_equal("iaf_chain_forward_nb", "z.shape[1]", Dz, D, "D = sizes[0]")
    kept = chain_arrays(K, D, rows, N)
    return (*_iaf_chain_forward(z, weights, masks, sizes, act, s_max, *kept), *kept)


def chain_arrays(K, D, rows, N):
    """Empty ``(acts (K, rows, N), e (K, D, N), dd (K, D, N), log_dets (K, N))`` of a chain pass."""
    return np.empty((K, rows, N)), np.empty((K, D, N)), np.empty((K, D, N)), np.empty((K, N))


@njit(**_JIT)
def _iaf_chain_backward(dx, dlog_det, weights, masks, sizes, act, acts, e, dd):
    N, D = dx.shape
    K = weights.shape[0]
    L = sizes.shape[0] - 1
    w_off, b_off, a_off = _layout(sizes)
    rows = a_off[L]
    g = np.empty((D, N))                     # dL/d(output of the layer being undone)
    for i in range(D):
        for n in range(N):
            g[i, n] = dx[n, i]
    grad = np.empty((rows, N))               # dL/d(unit output) of that layer's MADE
    c_raw = np.empty(N)
    dpre = np.empty(N)
    dweights = np.zeros(weights.shape)
    for k in range(K - 1, -1, -1):
        a, w, msk, dw = acts[k], weights[k], masks[k], dweights[k]
        for r in range(rows):
            gr = grad[r]
            for n in range(N):
                gr[n] = 0.0
        for i in range(D):                   # y_i = u_i e^{s_i} + t_i: to raw_i, t_i and u_i
            gi, ui, ei, di = g[i], a[i], e[k, i], dd[k, i]
            for n in range(N):
                c_raw[n] = (gi[n] * ui[n] * ei[n] + dlog_det[n]) * di[n]
            _outputs_backward(a, grad, w, msk, dw, sizes, w_off, b_off, a_off, i, N, c_raw, gi)
            gu = grad[i]
            for n in range(N):
                gu[n] += gi[n] * ei[n]
        for l in range(L - 1, 0, -1):        # hidden layer l, fed by W_{l-1}
            for j in range(sizes[l]):
                _hidden_unit_backward(a, grad, w, msk, dw, sizes, w_off, b_off, a_off, l, j, N,
                                      act, dpre)
        for i in range(D):
            for n in range(N):
                g[i, n] = grad[i, n]
    dz = np.empty((N, D))
    for i in range(D):
        for n in range(N):
            dz[n, i] = g[i, n]
    return dz, dweights


def iaf_chain_backward_nb(dx, dlog_det, weights, masks, sizes, act, acts, e, dd):
    """Backward of :func:`iaf_chain_forward_nb`, last layer first: ``(dz, dweights)``,
    ``dweights`` (K, n_w) in the layout of ``weights``, zero where the mask is 0 (every layer
    gets the same ``dlog_det``).

    Twin: :func:`nfscratch.transforms.iaf_chain.iaf_chain_backward`.
    """
    kernel = "iaf_chain_backward_nb"
    K, D, rows = _check_chain(kernel, weights, masks, sizes, act, 1.0)
    N, Dx = ck.f64(kernel, "dx", dx, 2)
    ck.positive(kernel, "dx.shape[0] (N)", N)
    ck.dim_equal(kernel, "dx.shape[1]", Dx, D, "D = sizes[0]")
    ck.same_shape(kernel, "dlog_det", ck.f64(kernel, "dlog_det", dlog_det, 1), (N,), "(N,)")
    ck.same_shape(kernel, "acts", ck.f64(kernel, "acts", acts, 3), (K, rows, N),
                  "(K, D + hidden units, N) of the forward pass")
    ck.same_shape(kernel, "e", ck.f64(kernel, "e", e, 3), (K, D, N), "(K, D, N) of the forward pass")
    ck.same_shape(kernel, "dd", ck.f64(kernel, "dd", dd, 3), (K, D, N), "(K, D, N) of the forward pass")
    return _iaf_chain_backward(dx, dlog_det, weights, masks, sizes, act, acts, e, dd)
