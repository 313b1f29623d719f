"""Private: the ``"numba"`` path of :class:`~.planar.Planar` and :class:`~.planar.PlanarChain`.

Not part of the story told by :mod:`nfscratch.transforms.planar`: the classes there reach this
module by a one-line dispatch on the ``"numba"`` backend, and the numbers are those of the
functions there (the tests compare them). Here the K layers of a chain (K = 1 for a lone
``Planar``) run through the kernels of :mod:`nfscratch.kernels.planar` in one call per pass.

The parameters and caches are built here, so the compiled kernels ``_<name>`` are called
directly; only what comes from outside (the batch and the upstream gradients) is checked.

A pass returns ``(out, log_det, cache)``; the cache keys, each with one meaning:

``direction``  ``"forward"`` or ``"inverse"``: which kernel made the pass.
``u``, ``w``   (K, D) parameters used; ``constrain`` (K,) int64: the reparameterization flags.
``u_hat``, ``c``, ``one_plus_c``  the reparameterized ``u`` (K, D), ``w.u_hat`` and ``1 + c`` (K,).
``points``     (K, D, N): the input of every layer in the direction of the pass (``zs``/``xs``).
``h``          (K, N): ``tanh(a)`` of every layer.
``log_dets``   (K, N): every layer's log-det, in layer order.
``buffers``    the memory behind ``points``, ``h`` and ``log_dets`` (see :func:`_arrays`).
"""
import numpy as np

from ..kernels import _checks as ck

__all__ = []

#: The arrays a pass keeps for its backward pass are reused by the next pass of the same
#: transform up to this size (fresh memory of a few MB costs page faults on first write, which
#: slowed the forward kernel several times at large batches: see benchmarks/README.md).
KEEP_BYTES = 64 * 1024 * 1024

_KP = _P = None       # the kernels and the teaching module, bound on first use
_F64 = np.dtype(np.float64)
_ONE, _ZERO = np.ones(1, dtype=np.int64), np.zeros(1, dtype=np.int64)


def _kernels():
    global _KP, _P
    if _KP is None:
        from ..kernels import planar as kp      # imported on first use: it loads Numba code
        from . import planar                    # (which imports this module at its top)
        _KP, _P = kp, planar
    return _KP


def made(cache):
    """True when ``cache`` was made by this module (then the backward pass runs here too)."""
    return "points" in cache


def _outside(name, a, shape, what):
    """An array from outside the chain, C-contiguous float64 of ``shape`` (checked as a kernel
    entry would check it)."""
    a = np.ascontiguousarray(a)
    if not (type(a) is np.ndarray and a.dtype == _F64 and a.shape == shape):
        ck.same_shape("planar chain", name, ck.f64("planar chain", name, a, len(shape)), shape, what)
    return a


def _arrays(prev, K, D, N):
    """``(buffers, points (K, D, N), h (K, N), log_dets (K, N))`` for a pass.

    The buffers of ``prev`` (the previous cache of the same transform, which this pass replaces)
    are reused when they are large enough; above ``KEEP_BYTES`` they are new every time.
    """
    n = K * N
    bufs = prev.get("buffers") if prev is not None and made(prev) else None
    if n * (D + 2) * 8 > KEEP_BYTES or bufs is None or bufs[1].size < n or bufs[0].size < n * D:
        bufs = (np.empty(n * D), np.empty(n), np.empty(n))
    # the first K*N (K*D*N) entries of flat buffers: C-contiguous, as the kernels require
    return bufs, bufs[0][:n * D].reshape(K, D, N), bufs[1][:n].reshape(K, N), bufs[2][:n].reshape(K, N)


def _pass(u, w, b, constrain, direction, p, prev):
    kp = _kernels()
    K, D = u.shape
    p = _outside("p", p, (p.shape[0], D), "(N, D)")
    u_hat, c, one_plus_c = kp._u_hat(u, w, constrain)
    if not np.all(c > -1.0):             # only an unconstrained layer can be out of bounds
        for k in np.flatnonzero(~(c > -1.0)):
            _P._check_invertible(c[k], bool(constrain[k]))
    bufs, points, h, log_dets = _arrays(prev, K, D, p.shape[0])
    if direction == "forward":
        out, log_det, *_ = kp._chain_forward(p, u_hat, w, b, c, one_plus_c, points, h, log_dets)
    else:
        out, log_det, *_, n_failed = kp._chain_inverse(p, u_hat, w, b, c, one_plus_c, _P.NEWTON_TOL,
                                                       _P.NEWTON_MAX_ITER, points, h, log_dets)
        if n_failed:
            raise RuntimeError(f"planar inverse: the root-find did not converge in {_P.NEWTON_MAX_ITER} "
                               f"iterations for {n_failed} sample(s) (c = {c.min():.6g} at the "
                               "lowest); is c close to -1?")
    cache = {"direction": direction, "u": u, "w": w, "constrain": constrain, "u_hat": u_hat,
             "c": c, "one_plus_c": one_plus_c, "points": points, "h": h, "log_dets": log_dets,
             "buffers": bufs}
    return out, log_det, cache


def _backward(cache, d_out, dlog_det):
    kp = _kernels()
    (K, D), N = cache["u"].shape, cache["h"].shape[1]
    d_out = _outside("d_out", d_out, (N, D), "(N, D) of the pass")
    dlog_det = _outside("dlog_det", dlog_det, (N,), "(N,) of the pass")
    step = kp._chain_backward if cache["direction"] == "forward" else kp._chain_inverse_backward
    u, w = cache["u"], cache["w"]
    d_in, du_hat, dw_direct, db, dc = step(d_out, dlog_det, cache["points"], cache["h"],
                                           cache["u_hat"], w, cache["c"], cache["one_plus_c"])
    du, dw = kp._u_hat_backward(du_hat, dc, u, w, cache["constrain"])
    return d_in, du, dw + dw_direct, db


# -- the two classes ------------------------------------------------------------------------------
def _row(a, D):
    return np.ascontiguousarray(a, dtype=np.float64).reshape(1, D)


def planar_pass(layer, direction, p):
    """One :class:`~.planar.Planar` layer as a chain of K = 1."""
    D, params = layer.dim, layer.params
    return _pass(_row(params["u"], D), _row(params["w"], D), _row(params["b"], 1).reshape(1),
                 _ONE if layer.constrain else _ZERO, direction, p, layer._cache)


def planar_backward(cache, d_out, dlog_det):
    d_in, du, dw, db = _backward(cache, d_out, dlog_det)
    return d_in, {"u": du[0], "w": dw[0], "b": db}


def chain_pass(chain, direction, p):
    """All K layers of a :class:`~.planar.PlanarChain` in one kernel call."""
    params = chain.params          # u, w: (K, D) columns of the chain's parameter rows
    u, w, b = (np.ascontiguousarray(params[k]) for k in ("u", "w", "b"))
    constrain = np.full(u.shape[0], int(chain.constrain), dtype=np.int64)
    return _pass(u, w, b, constrain, direction, p, chain._cache)


def chain_backward(cache, d_out, dlog_det):
    d_in, du, dw, db = _backward(cache, d_out, dlog_det)
    return d_in, {"u": du, "w": dw, "b": db}


def layer_inputs(cache):
    """Every layer's input in the direction of the pass, as K new (N, D) arrays (layer order)."""
    return [np.array(p.T, order="C") for p in cache["points"]]     # copies: the buffers are reused
