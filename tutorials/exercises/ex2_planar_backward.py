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
``dz = dL/dz`` (N, D) and the parameter gradients. Tutorial 03, section 4, sets up the
derivation; ``nfscratch exercises hint ex2_planar_backward.py`` gives hints one level at a time.

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
    ### HINT 1: draw the graph: z -> a -> h -> x, and h -> q -> log_det; u enters x and c = w.u;
    ### HINT 1: w enters a and c. Each input's gradient is the sum over all its paths to L, and
    ### HINT 1: L gets there through both outputs.
    ### HINT 2: dh_n = dx_n . u - dlog_det_n 2 c h_n / q_n;  da = dh (1 - h^2);  dz = dx + da w;
    ### HINT 2: dc = sum_n dlog_det_n (1 - h_n^2) / q_n;  du = sum_n h_n dx_n + dc w;  dw =
    ### HINT 2: sum_n da_n z_n + dc u;  db = sum_n da_n.
    ### HINT 3: h, q, dh and da are (N,), one per sample; c and dc are numbers. dz is (N, D): a
    ### HINT 3: per-sample (N,) times w (D,) needs [:, None]. du and dw are (D,): a sum over n
    ### HINT 3: of (N,) against (N, D) is one matrix-vector product. db is (1,), not a scalar.
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
