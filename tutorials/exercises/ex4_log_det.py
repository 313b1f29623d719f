r"""Exercise 4 -- log-determinants: compute them cheaply, and check them by brute force.

A flow's density needs ``log|det J|`` of every layer, per sample. For a general map this costs
a full Jacobian and an O(D^3) determinant; the point of flow architectures is that their
structure makes it O(D). A wrong log-det is the most silent bug a flow can have: sampling still
works, training still lowers the loss -- of the wrong objective. So one checks every analytic
log-det against the brute-force one, ``slogdet`` of a finite-difference Jacobian.

Your tasks:

1. ``numerical_jacobian(f, z)``: ``J[i, j] = d f_i / d z_j`` by central differences,
   ``(f(z + eps e_j) - f(z - eps e_j)) / (2 eps)``, for a map ``f`` of one point (D,) -> (M,).
2. ``planar_log_det(z, u, w, b)``: ``log|1 + (1 - tanh^2(w.z + b)) w.u|`` per sample (the
   matrix determinant lemma applied to ``I + u (1 - h^2) w^T``), shape (N,).
3. ``affine_coupling_log_det(z, mask, params, s_max)``: ``sum_j s_j(z_a)`` per sample, shape
   (N,), for the coupling layer of exercise 3.
4. ``log_det_error(f, log_det_fn, z)``: the check itself. The largest, over the samples, of
   ``| log_det_fn(z)[n] - log|det J_f(z_n)| |`` with ``J_f`` from your ``numerical_jacobian`` and
   ``np.linalg.slogdet`` (which returns ``log|det|`` even when ``det < 0``).

Check your work with::

    nfscratch exercises check ex4_log_det.py

References: Papamakarios et al., "Normalizing Flows for Probabilistic Modeling and Inference",
JMLR 2021, arXiv:1912.02762 (Sections 2 and 3).
"""
import numpy as np

from nfscratch.nn import mlp_forward

EXERCISE = "log_det"


def numerical_jacobian(f, z, eps=1e-6):
    """Central-difference Jacobian of ``f`` at ``z`` (D,): returns ``J`` of shape (M, D).

    ``f`` maps an array of shape (D,) to an array of shape (M,). Do not change ``z`` itself
    (work on a copy).
    """
    ### BEGIN SOLUTION
    ### HINT: loop over the D input coordinates j: perturb a copy of z by +eps and -eps in coordinate j, and the difference of the two outputs divided by 2 eps is column j of J (J[:, j]).
    z = np.array(z, dtype=np.float64, copy=True)
    columns = []
    for j in range(z.size):
        old = z[j]
        z[j] = old + eps
        f_plus = np.array(f(z), dtype=np.float64)
        z[j] = old - eps
        f_minus = np.array(f(z), dtype=np.float64)
        z[j] = old
        columns.append((f_plus - f_minus) / (2.0 * eps))     # (M,)
    J = np.stack(columns, axis=1)                              # (M, D)
    ### END SOLUTION
    return J


def planar_log_det(z, u, w, b):
    """``log|det dx/dz|`` of the planar map ``x = z + u tanh(w.z + b)``, per sample: (N,)."""
    ### BEGIN SOLUTION
    ### HINT: a = z @ w + b[0] has shape (N,); with h = tanh(a), det = 1 + (1 - h^2) (w @ u). Return np.log(np.abs(det)), one entry per sample.
    h = np.tanh(z @ w + b[0])                        # (N,)
    det = 1.0 + (1.0 - h * h) * (w @ u)              # (N,)
    log_det = np.log(np.abs(det))
    ### END SOLUTION
    return log_det


def affine_coupling_log_det(z, mask, params, s_max=2.0):
    """``log|det dx/dz|`` of the affine coupling layer of exercise 3, per sample: (N,).

    The conditioner is ``mlp_forward(z[:, mask == 1], params)``; the first ``d_b`` of its
    outputs are ``raw``, with ``s = s_max tanh(raw / s_max)``.
    """
    ### BEGIN SOLUTION
    ### HINT: the Jacobian is triangular with diagonal (1, ..., 1, e^{s_1}, ..., e^{s_{d_b}}), so log|det| = sum_j s_j. Compute s from the conditioner output (mind the s_max bound) and sum over the features, not over the batch.
    d_b = int(np.sum(mask == 0))
    out, _ = mlp_forward(z[:, mask == 1], params)    # (N, 2 d_b)
    s = s_max * np.tanh(out[:, :d_b] / s_max)        # (N, d_b)
    log_det = s.sum(axis=1)                          # (N,)
    ### END SOLUTION
    return log_det


def log_det_error(f, log_det_fn, z):
    """Largest ``|log_det_fn(z)[n] - log|det J_f(z[n])||`` over the samples ``z`` (N, D).

    ``f`` maps one point (D,) -> (D,); ``log_det_fn`` maps a batch (N, D) -> (N,).
    """
    ### BEGIN SOLUTION
    ### HINT: compute analytic = log_det_fn(z) once; for each sample n, J = numerical_jacobian(f, z[n]) and np.linalg.slogdet(J)[1] is log|det J|. Return the largest absolute difference as a float.
    analytic = np.asarray(log_det_fn(z), dtype=np.float64)   # (N,)
    errors = []
    for n in range(z.shape[0]):
        _, log_abs_det = np.linalg.slogdet(numerical_jacobian(f, z[n]))
        errors.append(abs(analytic[n] - log_abs_det))
    error = float(max(errors))
    ### END SOLUTION
    return error
