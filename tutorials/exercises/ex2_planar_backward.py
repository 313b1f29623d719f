r"""Exercise 2 -- the backward pass of a planar flow layer (Rezende & Mohamed, 2015).

Forward map of one sample ``z`` (D,), with parameters ``u, w`` (D,) and ``b`` (1,):

.. math::

    a = w^\top z + b, \qquad h = \tanh(a), \qquad x = z + u\,h,

    \log|\det \partial x/\partial z| = \log|q|, \qquad q = 1 + c\,(1 - h^2), \quad c = w^\top u.

(The Jacobian is ``I + u (1 - h^2) w^T``, identity plus rank one, and the matrix determinant
lemma gives ``det = 1 + (1 - h^2) w^T u``.)

Here ``u`` is used as is, so the grader picks ``u, w`` with ``w^T u > -1`` (the layer is then
invertible and ``q > 0``). nfscratch's ``Planar`` layer adds the ``u_hat`` reparameterization
on top, which guarantees this for any ``u``; its gradient is one more chain-rule step.

Your task: ``planar_backward``. The loss depends on both outputs, so you receive two upstream
gradients, ``dx = dL/dx`` (N, D) and ``dlog_det = dL/dlog_det`` (N,), and return
``dz = dL/dz`` (N, D) and the parameter gradients. Every path from an input to L counts:
``z`` reaches L through ``x`` directly and through ``a``; ``u`` through ``x`` and through ``c``;
``w`` through ``a`` and through ``c``.

Check your work with::

    nfscratch exercises check ex2_planar_backward.py

Reference: Rezende, Mohamed, "Variational Inference with Normalizing Flows", ICML 2015,
arXiv:1505.05770 (Eq. 10-12).
"""
import numpy as np

EXERCISE = "planar_backward"


def planar_forward(z, u, w, b):
    """``x = z + u tanh(w.z + b)`` for ``z`` (N, D); returns ``(x, log_det (N,), cache)``."""
    a = z @ w + b[0]                                 # (N,)
    h = np.tanh(a)                                   # (N,)
    c = float(w @ u)                                 # scalar
    q = 1.0 + c * (1.0 - h * h)                      # (N,)  det dx/dz
    x = z + h[:, None] * u                           # (N, D)
    cache = {"z": z, "u": u, "w": w, "h": h, "q": q, "c": c}
    return x, np.log(np.abs(q)), cache


def planar_backward(dx, dlog_det, cache):
    """Given ``dx`` (N, D) and ``dlog_det`` (N,), return ``(dz, {"u": du, "w": dw, "b": db})``.

    Shapes: ``dz`` (N, D), ``du`` (D,), ``dw`` (D,), ``db`` (1,).
    """
    z, u, w, h, q, c = (cache[k] for k in ("z", "u", "w", "h", "q", "c"))
    ### BEGIN SOLUTION
    ### HINT: two outputs feed L: x = z + u h and log_det = log q, q = 1 + c (1 - h^2). Collect dh from both (dx @ u, and dlog_det / q * dq/dh with dq/dh = -2 c h), then da = dh (1 - h^2), dz = dx + da w. The scalar c = w.u gets dc = sum_n dlog_det_n (1 - h_n^2) / q_n, which adds dc * w to du and dc * u to dw.
    one_m_h2 = 1.0 - h * h                           # (N,)  tanh'(a)
    dq = dlog_det / q                                # (N,)  through log q
    dh = dx @ u - 2.0 * c * h * dq                   # (N,)  via x, and via q
    da = dh * one_m_h2                               # (N,)
    dz = dx + da[:, None] * w                        # (N, D)
    dc = dq @ one_m_h2                               # scalar: q depends on c
    du = h @ dx + dc * w                             # (D,)  via x, and via c = w.u
    dw = da @ z + dc * u                             # (D,)  via a, and via c
    db = np.array([da.sum()])                        # (1,)
    ### END SOLUTION
    return dz, {"u": du, "w": dw, "b": db}
