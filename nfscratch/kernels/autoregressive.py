r"""Kernel for the sequential direction of an affine autoregressive layer (MAF sampling, IAF density).

The twin is the teaching function :func:`nfscratch.transforms.autoregressive.maf_forward`
(same arguments, unpacked): solve ``z = x e^{s(x)} + t(x)`` for ``x`` feature by feature, where
``[raw | t] = MADE(x)``, ``s = s_max tanh(raw / s_max)``,

.. math:: x_i = (z_i - t_i(x_{<i}))\, e^{-s_i(x_{<i})}, \qquad \log|\det| = -\textstyle\sum_i s_i,

for the features ``i = order[0], order[1], ...``. The teaching function runs D full MADE passes.
This kernel gives the same numbers (to round-off) with the work of *one* pass: a hidden unit of
degree ``d`` reads only inputs (and lower units) of degree ``<= d``, so it is final as soon as the
``d``-th feature is known. At step ``k`` the kernel computes exactly the hidden units of degree
``k`` (layer by layer), then the two outputs of feature ``order[k]`` -- each unit once, skipping
masked (zero) weights. The D steps remain a chain (step k needs step k-1), which is what makes
sampling a MAF slow on parallel hardware; the arithmetic is no longer D times larger.

Layout: samples run in the inner loop (vectorized), over blocks of ``BLOCK`` samples whose
activations, stored unit-major ``(units, BLOCK)``, stay in cache. Scratch is allocated once per
call, never per step.

Arguments: ``z`` (N, D); ``weights`` 1-D, for each layer ``l`` the masked weights ``W_l ⊙ M_l``
(row-major, shape ``(sizes[l], sizes[l+1])``) then ``b_l``; ``sizes`` int64 ``[D, H_1, .., 2D]``;
``hidden_deg`` int64, the degrees (1..D-1) of all hidden units, layer after layer; ``order``
int64 (D,); ``act`` an activation code of :mod:`.mlp` (0 tanh, 1 relu, 2 leaky_relu);
``s_max`` a positive float. Returns ``x`` (N, D) and ``log_det`` (N,).
"""
import numpy as np
from numba import njit

from . import _checks as ck
from ._math import exp_v, tanh_v
from .mlp import ACT_CODES, _act

__all__ = ["maf_forward_nb", "pack_made"]

BLOCK = 256
_JIT = dict(cache=True, error_model="numpy", fastmath={"contract"})


def pack_made(params, masks):
    """``(weights, sizes)`` for :func:`maf_forward_nb` from MADE params and masks."""
    parts, sizes = [], [masks[0].shape[0]]
    for l, M in enumerate(masks):
        parts += [(params[f"W{l}"] * M).ravel(), params[f"b{l}"]]
        sizes.append(M.shape[1])
    return np.concatenate(parts), np.array(sizes, dtype=np.int64)


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


@njit(**_JIT)
def _maf_forward(z, weights, sizes, hidden_deg, order, act, s_max):
    N, D = z.shape
    L = sizes.shape[0] - 1
    w_off = np.empty(L, np.int64)          # where W_l starts in weights
    b_off = np.empty(L, np.int64)          # where b_l starts
    a_off = np.empty(L, np.int64)          # first row of layer l's units in acts (0: inputs)
    pos = 0
    rows = 0
    for l in range(L):
        w_off[l] = pos
        pos += sizes[l] * sizes[l + 1]
        b_off[l] = pos
        pos += sizes[l + 1]
        a_off[l] = rows
        rows += sizes[l]
    B = min(N, BLOCK)
    acts = np.empty((rows, B))             # (units, samples) of one block
    raw = np.empty(B)
    t = np.empty(B)
    x = np.empty((N, D))
    log_det = np.zeros(N)
    for n0 in range(0, N, B):
        nb = min(B, N - n0)
        for k in range(D):
            if k >= 1:                     # hidden units of degree k: their inputs are final now
                hd = 0
                for l in range(L - 1):
                    H_in, H = sizes[l], sizes[l + 1]
                    for j in range(H):
                        if hidden_deg[hd + j] != k:
                            continue
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
                    hd += H
            i = order[k]                   # the feature generated k-th: its two outputs
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
            xi = acts[i]                   # input row i, read by the units of later steps
            for n in range(nb):
                s = s_max * tanh_v(raw[n] / s_max)
                xi[n] = (z[n0 + n, i] - t[n]) * exp_v(-s)
                log_det[n0 + n] -= s
            for n in range(nb):
                x[n0 + n, i] = xi[n]
    return x, log_det


def maf_forward_nb(z, weights, sizes, hidden_deg, order, act, s_max):
    """Sequential direction of an affine autoregressive layer: ``(x, log_det)`` (module docstring).

    Twin: ``nfscratch.transforms.autoregressive.maf_forward`` on the unpacked parameters.
    """
    _check("maf_forward_nb", z, weights, sizes, hidden_deg, order, act, s_max)
    return _maf_forward(z, weights, sizes, hidden_deg, order, act, s_max)
