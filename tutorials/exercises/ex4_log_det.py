r"""Exercise 4 -- log-determinants: compute them cheaply, and check them by brute force.

A flow's density needs ``log|det J|`` of every layer, per sample. For a general map this costs
a full Jacobian and an O(D^3) determinant; the point of flow architectures is that their
structure makes it O(D). A wrong log-det is the most silent bug a flow can have: sampling still
works, training still lowers the loss -- of the wrong objective. So one checks every analytic
log-det against the brute-force one, ``slogdet`` of a finite-difference Jacobian.

Your tasks:

1. ``numerical_jacobian(f, z)``: ``J[i, j] = d f_i / d z_j`` by central differences, for a map
   ``f`` of one point (D,) -> (M,).
2. ``planar_log_det(z, u, w, b)``: ``log|det dx/dz|`` of the planar map of exercise 2, per
   sample, shape (N,), without forming the Jacobian (tutorial 03, section 2).
3. ``affine_coupling_log_det(z, mask, params, s_max)``: the same for the coupling layer of
   exercise 3 (tutorial 04, section 2).
4. ``log_det_error(f, log_det_fn, z)``: the check itself. The largest, over the samples, of
   ``| log_det_fn(z)[n] - log|det J_f(z_n)| |``, with ``J_f`` from your ``numerical_jacobian``.

``nfscratch exercises hint ex4_log_det.py`` gives hints one level at a time.

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
    ### HINT 1: column j of J says how the whole output moves when only z_j moves.
    ### HINT 2: J[:, j] ~ (f(z + eps e_j) - f(z - eps e_j)) / (2 eps), where e_j is the j-th
    ### HINT 2: unit vector; the error is O(eps^2).
    ### HINT 3: J is (M, D): M the length of f's output, D that of z. Perturb a copy of z (never
    ### HINT 3: z itself), one coordinate at a time; the columns go side by side (axis 1).
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
    ### HINT 1: the Jacobian is the identity plus a rank-one matrix, u psi^T with psi = tanh'(a)
    ### HINT 1: w; the matrix determinant lemma turns its determinant into a dot product.
    ### HINT 2: det = 1 + (1 - tanh^2(a)) w.u with a = w.z + b, and the log-det is log|det|: det
    ### HINT 2: can be negative.
    ### HINT 3: a, h and det are (N,), one per sample; w.u is one number; return shape (N,).
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
    ### HINT 1: order the features as (a, b): the Jacobian is triangular, so its determinant is
    ### HINT 1: the product of its diagonal.
    ### HINT 2: the diagonal is (1, ..., 1, e^{s_1}, ..., e^{s_{d_b}}), so log|det| = sum_j s_j,
    ### HINT 2: with s = s_max tanh(raw / s_max) and raw the first d_b outputs of the
    ### HINT 2: conditioner.
    ### HINT 3: the conditioner's output is (N, 2 d_b); s is (N, d_b); the log-det is (N,): sum
    ### HINT 3: over the features (axis 1), never over the batch (axis 0).
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
    ### HINT 1: compare, sample by sample, the analytic log-det with the brute-force one, and
    ### HINT 1: keep the worst disagreement.
    ### HINT 2: error = max_n |log_det_fn(z)[n] - log|det J_f(z_n)||, with J_f from your
    ### HINT 2: numerical_jacobian and log|det J| = np.linalg.slogdet(J)[1] (a determinant may
    ### HINT 2: be negative).
    ### HINT 3: log_det_fn takes the whole batch (N, D) and returns (N,); f and
    ### HINT 3: numerical_jacobian take one point z[n] of shape (D,). Return one number (a
    ### HINT 3: float).
    analytic = np.asarray(log_det_fn(z), dtype=np.float64)   # (N,)
    errors = []
    for n in range(z.shape[0]):
        _, log_abs_det = np.linalg.slogdet(numerical_jacobian(f, z[n]))
        errors.append(abs(analytic[n] - log_abs_det))
    error = float(max(errors))
    ### END SOLUTION
    return error
