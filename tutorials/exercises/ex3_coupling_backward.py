r"""Exercise 3 -- the backward pass of an affine coupling layer, through its conditioner.

RealNVP's coupling layer (Dinh et al., 2017) splits the features with a binary ``mask``: the
features with mask 1 (``z_a``) pass through unchanged and feed a conditioner network, whose
output gives a log-scale ``s`` and a shift ``t`` for the other features (``z_b``):

.. math::

    (raw, t) = \mathrm{NN}(z_a), \qquad s = s_{max} \tanh(raw / s_{max}),

    x_a = z_a, \qquad x_b = z_b \odot e^{s} + t, \qquad
    \log|\det \partial x/\partial z| = \textstyle\sum_j s_j.

The inverse is ``z_b = (x_b - t) \odot e^{-s}`` with ``log|det dz/dx| = -sum_j s_j``, where
``s`` and ``t`` are computed from ``x_a = z_a``.

Your task: the two backward passes, ``affine_coupling_backward`` (of the forward map, used for
sampling and variational inference) and ``affine_coupling_inverse_backward`` (of the inverse,
used for maximum likelihood). The conditioner's own backward is ``mlp_backward`` from
``nfscratch.nn`` (you wrote one in exercise 1). Tutorial 04, section 3, sets up the derivation;
``nfscratch exercises hint ex3_coupling_backward.py`` gives hints one level at a time.

Check your work with::

    nfscratch exercises check ex3_coupling_backward.py

References: Dinh, Krueger, Bengio, "NICE", arXiv:1410.8516; Dinh, Sohl-Dickstein, Bengio,
"Density estimation using Real NVP", ICLR 2017, arXiv:1605.08803.
"""
import numpy as np

from nfscratch.nn import mlp_backward, mlp_forward

EXERCISE = "coupling_backward"


def _split(mask):
    """Indices of the conditioning features (mask 1) and of the transformed ones (mask 0)."""
    return np.flatnonzero(mask == 1), np.flatnonzero(mask == 0)


def affine_coupling_forward(z, mask, params, s_max=2.0):
    """Forward map for ``z`` (N, D); returns ``(x, log_det (N,), cache)``.

    ``params`` are the conditioner's weights (``W0, b0, W1, b1, ...``), a tanh MLP from
    ``d_a`` inputs to ``2 d_b`` outputs.
    """
    ia, ib = _split(mask)
    d_b = ib.size
    out, net_cache = mlp_forward(z[:, ia], params)   # (N, 2 d_b)
    th = np.tanh(out[:, :d_b] / s_max)               # (N, d_b)
    s = s_max * th                                   # (N, d_b)  log-scale, |s| < s_max
    t = out[:, d_b:]                                 # (N, d_b)  shift
    exp_s = np.exp(s)
    x = z.copy()
    x[:, ib] = z[:, ib] * exp_s + t
    cache = {"ia": ia, "ib": ib, "zb": z[:, ib], "exp_s": exp_s, "th": th, "net_cache": net_cache}
    return x, s.sum(axis=1), cache


def affine_coupling_backward(dx, dlog_det, cache):
    """Given ``dx`` (N, D) and ``dlog_det`` (N,), return ``(dz, grads)``.

    ``grads`` holds the conditioner's gradients, keyed like its params (``W0, b0, ...``).
    """
    ia, ib, zb, exp_s, th = (cache[k] for k in ("ia", "ib", "zb", "exp_s", "th"))
    ### BEGIN SOLUTION
    ### HINT 1: follow the mask: x_b depends on z_b, s and t, and log_det on s; s and t come
    ### HINT 1: from the conditioner, which reads z_a. So z_a reaches L twice: directly (x_a =
    ### HINT 1: z_a) and through the network.
    ### HINT 2: ds = dx_b * z_b * e^s + dlog_det (for every feature of b);  dt = dx_b;  s =
    ### HINT 2: s_max tanh(raw / s_max) gives draw = ds (1 - th^2);  the conditioner's backward
    ### HINT 2: turns (draw, dt) into its input's gradient and its weights' gradients;  dz_a =
    ### HINT 2: dx_a + that input gradient;  dz_b = dx_b * e^s.
    ### HINT 3: ia and ib index columns: dx[:, ib] is (N, d_b), and dlog_det (N,) needs [:,
    ### HINT 3: None] to reach every feature. The conditioner produced one (N, 2 d_b) array, raw
    ### HINT 3: first and t second: its upstream gradient has the same layout. Its gradient dict
    ### HINT 3: is already keyed W0, b0, ...; build dz as a new (N, D) array.
    dxb = dx[:, ib]                                  # (N, d_b)
    ds = dxb * zb * exp_s + dlog_det[:, None]        # (N, d_b)  via x_b, and via log_det
    draw = ds * (1.0 - th * th)                      # (N, d_b)  through the soft bound
    dt = dxb                                         # (N, d_b)
    dza_net, grads = mlp_backward(np.concatenate([draw, dt], axis=1), cache["net_cache"])
    dz = np.empty_like(dx)
    dz[:, ia] = dx[:, ia] + dza_net                  # z_a: passed through, and fed the net
    dz[:, ib] = dxb * exp_s
    ### END SOLUTION
    return dz, grads


def affine_coupling_inverse(x, mask, params, s_max=2.0):
    """Inverse map for ``x`` (N, D); returns ``(z, log_det (N,), cache)``, log|det dz/dx|."""
    ia, ib = _split(mask)
    d_b = ib.size
    out, net_cache = mlp_forward(x[:, ia], params)   # (N, 2 d_b)
    th = np.tanh(out[:, :d_b] / s_max)
    s = s_max * th                                   # (N, d_b)
    t = out[:, d_b:]                                 # (N, d_b)
    exp_neg_s = np.exp(-s)
    z = x.copy()
    z[:, ib] = (x[:, ib] - t) * exp_neg_s
    cache = {"ia": ia, "ib": ib, "zb": z[:, ib], "exp_neg_s": exp_neg_s, "th": th,
             "net_cache": net_cache}
    return z, -s.sum(axis=1), cache


def affine_coupling_inverse_backward(dz, dlog_det, cache):
    """Given ``dz`` (N, D) and ``dlog_det`` (N,), return ``(dx, grads)``."""
    ia, ib, zb, exp_neg_s, th = (cache[k] for k in ("ia", "ib", "zb", "exp_neg_s", "th"))
    ### BEGIN SOLUTION
    ### HINT 1: the same graph, the other way round: z_b = (x_b - t) e^{-s}, log_det = -sum s,
    ### HINT 1: with s and t computed from x_a. The cache holds z_b, which is this direction's
    ### HINT 1: output.
    ### HINT 2: dx_b = dz_b * e^{-s};  dt = -dz_b * e^{-s};  ds = -dz_b * z_b - dlog_det
    ### HINT 2: (dz_b/ds = -z_b);  draw = ds (1 - th^2);  dx_a = dz_a + the conditioner's input
    ### HINT 2: gradient.
    ### HINT 3: the same bookkeeping as the forward case: (N, d_b) blocks, dlog_det[:, None],
    ### HINT 3: one (N, 2 d_b) upstream gradient for the conditioner (raw first, then t), a new
    ### HINT 3: (N, D) array for dx.
    dzb = dz[:, ib]                                  # (N, d_b)
    dxb = dzb * exp_neg_s                            # (N, d_b)
    dt = -dxb                                        # (N, d_b)
    ds = -dzb * zb - dlog_det[:, None]               # (N, d_b)  via z_b, and via log_det = -sum s
    draw = ds * (1.0 - th * th)
    dxa_net, grads = mlp_backward(np.concatenate([draw, dt], axis=1), cache["net_cache"])
    dx = np.empty_like(dz)
    dx[:, ia] = dz[:, ia] + dxa_net
    dx[:, ib] = dxb
    ### END SOLUTION
    return dx, grads
