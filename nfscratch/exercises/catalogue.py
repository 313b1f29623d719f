r"""The exercises: which functions each file must provide, their inputs, references and the
mistakes the grader knows how to name.

Every reference is nfscratch's own pure functional core (:mod:`nfscratch.nn`, the
``<name>_forward``/``<name>_backward`` functions of :mod:`nfscratch.transforms`), so the grader
and the library can never disagree. Inputs come from fixed seeds and are chosen so that every
term of every formula matters: non-square weights (a transposed gradient has the wrong shape),
``w.u`` clearly non-zero (the log-det path of the planar backward is visible), conditioner
weights large enough that the coupling's ``s_max`` bound bites.

``EXERCISES`` maps an exercise id (the ``EXERCISE = "..."`` line of a file) to an
:class:`Exercise`.
"""
from dataclasses import dataclass

import numpy as np

from .. import nn
from ..transforms.coupling import (affine_coupling_backward, affine_coupling_forward,
                                   affine_coupling_inverse, affine_coupling_inverse_backward)
from ..transforms.made import made_backward, made_degrees, made_forward, made_masks
from ..transforms.planar import planar_backward, planar_forward
from ..transforms.spline import _rq_root, _rq_terms
from .grader import BackwardSpec, JacobianSpec, ScalarSpec, ValueSpec

__all__ = ["Exercise", "EXERCISES", "find_exercise"]


@dataclass
class Exercise:
    """One exercise file: its id, the solution file's name, a title, the graded functions."""
    id: str
    filename: str
    title: str
    functions: list

    def spec(self, name):
        for s in self.functions:
            if s.name == name:
                return s
        raise KeyError(f"exercise {self.id!r} has no function {name!r}; it has "
                       f"{[s.name for s in self.functions]}.")


def _rng(seed):
    return np.random.default_rng(seed)


# ------------------------------------------------------------------------------------------------
# Exercise 1: the MLP
# ------------------------------------------------------------------------------------------------
def _linear_inputs():
    r = _rng(101)
    return {"x": r.standard_normal((5, 3)), "W": r.standard_normal((3, 4)),
            "b": r.standard_normal(4)}


def _tanh_inputs():
    return {"x": 1.5 * _rng(102).standard_normal((5, 4))}


def _tanh_variants(inputs, dout, dlog_det):
    y = np.tanh(inputs["x"])
    return [("tanh' applied to the cache as if it were x: the cache already is y = tanh(x), so "
             "tanh'(x) = 1 - y^2 (not 1 - tanh(y)^2).", {"x": dout * (1.0 - np.tanh(y) ** 2)}),
            ("used 1 - y where tanh'(x) = 1 - y^2.", {"x": dout * (1.0 - y)})]


_MLP_KEYS = ("W0", "b0", "W1", "b1", "W2", "b2")


def _mlp_inputs():
    r = _rng(103)
    sizes = [3, 5, 4, 2]
    inputs = {"x": r.standard_normal((6, 3))}
    for i, (fi, fo) in enumerate(zip(sizes[:-1], sizes[1:])):
        inputs[f"W{i}"] = r.standard_normal((fi, fo)) / np.sqrt(fi) * 1.2
        inputs[f"b{i}"] = 0.3 * r.standard_normal(fo)
    return inputs


def _call_mlp(fn, kw):
    return fn(kw["x"], {k: kw[k] for k in _MLP_KEYS})


def _ref_mlp_forward(x, **params):
    return nn.mlp_forward(x, params, "tanh")


# ------------------------------------------------------------------------------------------------
# Exercise 2 (and 4): the planar layer, u used as u_hat
# ------------------------------------------------------------------------------------------------
def _planar_inputs():
    # c = w.u = -0.18: non-zero and safely above -1, so the map is invertible
    return {"z": _rng(201).standard_normal((7, 3)), "u": np.array([0.8, -0.5, 0.3]),
            "w": np.array([0.6, 0.9, -0.7]), "b": np.array([0.2])}


def _planar_negative_det_inputs():
    """w.u = -2.5 < -1 (not invertible, but the log-det formula holds point by point): with
    q = 1 + c (1 - h^2), samples with |a| < 0.9 have q < 0 and the others q > 0, so log|q| needs
    its abs. The pre-activations a = w.z + b are placed away from q = 0."""
    w, b = np.array([0.6, 0.9, -0.7]), np.array([0.2])
    u = np.array([0.8, -0.5, 0.3])
    u = u + (-2.5 - w @ u) * w / (w @ w)                       # w.u = -2.5
    a = np.array([-2.0, -0.5, 0.1, 0.5, 1.5, 2.5, -1.4])      # q < 0 for three of them
    r = _rng(203).standard_normal((a.size, 3))
    z = r + (a - (r @ w + b[0]))[:, None] * w / (w @ w)       # (7, 3) with z @ w + b = a
    return {"z": z, "u": u, "w": w, "b": b}


def _ref_planar_forward(z, u, w, b):
    return planar_forward(z, u, w, b, constrain=False)


def _planar_variants(inputs, dout, dlog_det):
    """The planar backward without the path through c = w.u (in du and dw)."""
    z, u, w, b = (inputs[k] for k in ("z", "u", "w", "b"))
    _, _, cache = planar_forward(z, u, w, b, constrain=False)
    dz, g = planar_backward(dout, dlog_det, cache)
    h, q = cache["h"], cache["q"]
    dc = float(dlog_det @ ((1.0 - h * h) / q))
    return [("the path through c = w.u is missing: q = 1 + c (1 - h^2) depends on u and w "
             "through c, so du gets + dc * w and dw gets + dc * u, with dc = sum_n dlog_det_n "
             "(1 - h_n^2) / q_n.", {"u": g["u"] - dc * w, "w": g["w"] - dc * u}),
            ("the direct path is missing: x = z + u h contains z itself, so dz = dx + (the "
             "path through a).", {"z": dz - dout}),
            ("the path through x is not weighted by h: x_n = z_n + u h_n, so it gives du = "
             "sum_n h_n dx_n, not sum_n dx_n.", {"u": g["u"] - h @ dout + dout.sum(axis=0)})]


def _planar_log_det(z, u, w, b):
    if w @ u > -1.0:
        return _ref_planar_forward(z, u, w, b)[1]
    # Planar refuses a layer that is not invertible; the log-det formula still holds point by
    # point (the grader's brute-force column compares it with slogdet of the FD Jacobian)
    h = np.tanh(z @ w + b[0])
    return np.log(np.abs(1.0 + (w @ u) * (1.0 - h * h)))


def _planar_log_det_variants(z, u, w, b):
    h = np.tanh(z @ w + b[0])
    c = float(w @ u)
    with np.errstate(all="ignore"):
        return [
            ("the log-det of the inverse direction (log|det dz/dx| = -log|det dx/dz|): the sign "
             "is flipped.", -np.log(np.abs(1.0 + c * (1.0 - h * h)))),
            ("the '1 +' is missing: det(I + u psi^T) = 1 + psi^T u, the identity contributes "
             "the 1.", np.log(np.abs(c * (1.0 - h * h)))),
            ("the factor (1 - tanh^2(a)) is missing: psi = tanh'(a) w, so det = 1 + (1 - h^2) "
             "w.u.", np.full(z.shape[0], np.log(abs(1.0 + c)))),
            ("used tanh(a) where its derivative 1 - tanh^2(a) belongs.",
             np.log(np.abs(1.0 + c * h))),
            ("used det directly: the log is missing (return log|det|).", 1.0 + c * (1.0 - h * h)),
            ("the abs is missing: det = 1 + (1 - h^2) w.u is negative for some samples here "
             "(w.u < -1), and the log-det is log|det|: np.log(np.abs(det)).",
             np.log(1.0 + c * (1.0 - h * h))),
        ]


def _planar_point_map(inputs):
    u, w, b = inputs["u"], inputs["w"], inputs["b"]
    return lambda v: v + u * np.tanh(v @ w + b[0])


# ------------------------------------------------------------------------------------------------
# Exercise 3 (and 4): the affine coupling layer
# ------------------------------------------------------------------------------------------------
_COUPLING_MASK = np.array([1, 0, 0, 1])
_NET_KEYS = ("W0", "b0", "W1", "b1")


def _net_params(r):
    # d_a = 2 -> 8 -> 2 d_b = 4; weights large enough that |raw| ~ 1-3, where the bound matters
    return {"W0": 0.9 * r.standard_normal((2, 8)), "b0": 0.3 * r.standard_normal(8),
            "W1": 0.8 * r.standard_normal((8, 4)), "b1": 0.3 * r.standard_normal(4)}


def _coupling_inputs():
    r = _rng(301)
    return {"z": r.standard_normal((6, 4)), "mask": _COUPLING_MASK.copy(), **_net_params(r)}


def _coupling_inverse_inputs():
    r = _rng(302)
    return {"x": 1.3 * r.standard_normal((6, 4)), "mask": _COUPLING_MASK.copy(), **_net_params(r)}


def _call_coupling(fn, kw):
    first = "z" if "z" in kw else "x"
    return fn(kw[first], kw["mask"], {k: kw[k] for k in _NET_KEYS})


def _ref_coupling_forward(z, mask, **params):
    return affine_coupling_forward(z, mask, params, "tanh", 2.0)


def _ref_coupling_inverse(x, mask, **params):
    return affine_coupling_inverse(x, mask, params, "tanh", 2.0)


def _coupling_variants_for(direction):
    """Coupling backward with one path left out: the conditioner's share of d(input)_a, or the
    derivative of the soft bound s = s_max tanh(raw / s_max)."""
    def variants(inputs, dout, dlog_det):
        first = "z" if direction == "forward" else "x"
        params = {k: inputs[k] for k in _NET_KEYS}
        run = affine_coupling_forward if direction == "forward" else affine_coupling_inverse
        back = affine_coupling_backward if direction == "forward" else affine_coupling_inverse_backward
        _, _, cache = run(inputs[first], inputs["mask"], params, "tanh", 2.0)
        d_in, _ = back(dout, dlog_det, cache)
        ia, ib = cache["ia"], cache["ib"]
        no_net = d_in.copy()
        no_net[:, ia] = dout[:, ia]
        d_nb, g_nb = back(dout, dlog_det, dict(cache, ds_draw=np.ones_like(cache["ds_draw"])))
        # d(input)_b is dout_b times the scale: left out, or the other direction's. Forward:
        # only dz_b uses it. Inverse: dt = -dx_b, so it reaches the conditioner too.
        if direction == "forward":
            no_scale, wrong_scale = d_in.copy(), d_in.copy()
            no_scale[:, ib] = dout[:, ib]
            wrong_scale[:, ib] = dout[:, ib] / cache["exp_s"]
            no_scale, wrong_scale = {first: no_scale}, {first: wrong_scale}
        else:
            scale = cache["exp_neg_s"]
            d_ns, g_ns = back(dout, dlog_det, dict(cache, exp_neg_s=np.ones_like(scale)))
            d_ws, g_ws = back(dout, dlog_det, dict(cache, exp_neg_s=1.0 / scale))
            no_scale, wrong_scale = {first: d_ns, **g_ns}, {first: d_ws, **g_ws}
        out_b, sign = ("x_b = z_b e^s + t", "e^s") if direction == "forward" else \
            ("z_b = (x_b - t) e^{-s}", "e^{-s}")
        return [
            (f"the conditioner's path is missing from d{first}_a: {first}_a reaches the loss "
             f"twice, directly and through the conditioner (s and t depend on it), so add the "
             f"gradient mlp_backward returns for its input.", {first: no_net}),
            ("the derivative of the soft bound is missing: s = s_max tanh(raw / s_max), so "
             "draw = ds * (1 - th^2) before the conditioner's backward.", {first: d_nb, **g_nb}),
            (f"d{first}_b is missing its scale: {out_b}, so the upstream gradient of the "
             f"transformed half is multiplied by {sign}.", no_scale),
            (f"d{first}_b has the scale of the other direction: {out_b}, so the factor is "
             f"{sign}.", wrong_scale),
        ]
    return variants


def _coupling_log_det_inputs():
    r = _rng(401)
    return {"z": r.standard_normal((6, 4)), "mask": _COUPLING_MASK.copy(),
            "params": _net_params(r), "s_max": 2.0}


def _coupling_log_det(z, mask, params, s_max):
    return affine_coupling_forward(z, mask, params, "tanh", s_max)[1]


def _coupling_log_det_variants(z, mask, params, s_max):
    d_b = int(np.sum(mask == 0))
    out, _ = nn.mlp_forward(z[:, mask == 1], params, "tanh")
    raw, t = out[:, :d_b], out[:, d_b:]
    s = s_max * np.tanh(raw / s_max)
    return [
        ("summed exp(s): the diagonal of the Jacobian is e^s, and log|det| = log prod e^s = "
         "sum s.", np.exp(s).sum(axis=1)),
        ("used the raw conditioner output: apply the bound s = s_max tanh(raw / s_max) first.",
         raw.sum(axis=1)),
        ("summed the shift t: a shift does not change volume, only the scale e^s does.",
         t.sum(axis=1)),
        ("the log-det of the inverse direction (-sum s): the sign is flipped.", -s.sum(axis=1)),
    ]


def _coupling_point_map(inputs):
    mask, params, s_max = inputs["mask"], inputs["params"], inputs["s_max"]
    return lambda v: affine_coupling_forward(v[None, :], mask, params, "tanh", s_max)[0][0]


# ------------------------------------------------------------------------------------------------
# Exercise 4: Jacobians and the log-det check
# ------------------------------------------------------------------------------------------------
def _jacobian_cases():
    A = np.array([[2.0, -1.0], [0.5, 3.0], [1.0, 1.0]])           # (3, 2): not square
    inp = _planar_inputs()
    u, w, b = inp["u"], inp["w"], inp["b"]
    zp = np.array([0.3, -0.4, 0.8])
    h = np.tanh(zp @ w + b[0])
    J_planar = np.eye(3) + np.outer(u, (1.0 - h * h) * w)
    v = np.array([0.7, -0.3, 1.2])
    J_elem = np.array([[np.cos(v[0]) * v[1], np.sin(v[0]), 0.0],
                       [0.0, 0.5 * np.exp(v[1] / 2.0), 0.0],
                       [v[2], 0.0, v[0]]])
    return [
        ("linear map, A (3 x 2)", lambda z: A @ z, np.array([0.3, -0.7]), A, False),
        ("planar map (3 -> 3)", _planar_point_map(inp), zp, J_planar, True),
        ("nonlinear map (3 -> 3)",
         lambda z: np.array([np.sin(z[0]) * z[1], np.exp(z[1] / 2.0), z[0] * z[2]]), v, J_elem,
         True),
    ]


def _brute_log_det(f, z):
    return np.array([np.linalg.slogdet(_numjac(f, z[n]))[1] for n in range(z.shape[0])])


def _numjac(f, z):
    from ..gradcheck import numerical_jacobian
    return numerical_jacobian(f, np.array(z, dtype=np.float64))


def _log_det_error_cases():
    inp = _planar_inputs()
    f = _planar_point_map(inp)
    z = inp["z"][:5]

    def ld(p):
        return _planar_log_det(p, inp["u"], inp["w"], inp["b"])

    brute = _brute_log_det(f, z)
    exact_err = float(np.max(np.abs(ld(z) - brute)))
    offsets = 0.1 * np.arange(z.shape[0])                       # 0, 0.1, ..., 0.4
    off_err = np.abs(ld(z) + offsets - brute)

    def ld_off(p):
        return ld(p) + offsets

    M = np.array([[0.0, 2.0], [1.0, 0.0]])                      # det = -2: a reflection
    zr = _rng(402).standard_normal((3, 2))
    return [
        ("planar map, correct log_det", (f, ld, z), exact_err, []),
        ("planar map, log_det off by 0.1 n", (f, ld_off, z), float(off_err.max()),
         [("the mean error, not the largest one: return the max over the samples.",
           float(off_err.mean())),
          ("the error of the first sample only: loop over every sample.", float(off_err[0]))]),
        ("reflection, det J = -2", (lambda v: M @ v, lambda p: np.full(p.shape[0], np.log(2.0)),
                                    zr), 0.0,
         [("multiplied by the sign of det J: log|det J| is slogdet(J)[1] alone; a density only "
           "sees the volume change, never the orientation.", float(2.0 * np.log(2.0)))]),
    ]


# ------------------------------------------------------------------------------------------------
# Exercise 5: MADE masks and the masked backward pass
# ------------------------------------------------------------------------------------------------
# order (2, 0, 3, 1), hidden widths 6 and 5, k = 2: nothing square, every degree present
_MADE_DEGREES = made_degrees(np.array([2, 0, 3, 1]), [6, 5])
_MADE_MASKS = made_masks(_MADE_DEGREES, k=2)
_MADE_KEYS = ("W0", "b0", "W1", "b1", "W2", "b2")


def _hidden_mask_inputs():
    return {"m_in": _MADE_DEGREES[0].copy(), "m_out": _MADE_DEGREES[1].copy()}


def _ref_hidden_mask(m_in, m_out):
    return made_masks([m_in, m_out], k=1)[0]


def _hidden_mask_variants(m_in, m_out):
    return [("used > where a hidden unit may also read inputs of its own degree: keep the weight "
             "iff m_out >= m_in (only the output layer is strict).",
             (m_out[None, :] > m_in[:, None]).astype(np.float64)),
            ("compared the other way round (m_in >= m_out): a unit of degree d reads the units "
             "of degree <= d.", (m_in[:, None] >= m_out[None, :]).astype(np.float64))]


def _output_mask_inputs():
    return {"m_prev": _MADE_DEGREES[2].copy(), "m_inputs": _MADE_DEGREES[0].copy(), "k": 2}


def _ref_output_mask(m_prev, m_inputs, k):
    return made_masks([m_inputs, m_prev], k)[-1]


def _output_mask_variants(m_prev, m_inputs, k):
    def mask(m_out, strict=True):
        return ((m_out[None, :] > m_prev[:, None]) if strict
                else (m_out[None, :] >= m_prev[:, None])).astype(np.float64)
    return [("used >= in the output layer: output i would then see input i itself (the "
             "Jacobian's diagonal); outputs need the strict m_out > m_in.",
             mask(np.tile(m_inputs, k), strict=False)),
            ("np.repeat interleaves the copies (i, i, i+1, ...); the k outputs of a feature are "
             "k blocks of D columns: use np.tile(m_inputs, k).", mask(np.repeat(m_inputs, k)))]


def _made_inputs():
    r = _rng(501)
    sizes = [4, 6, 5, 8]
    inputs = {"x": r.standard_normal((5, 4))}
    for i, (fi, fo) in enumerate(zip(sizes[:-1], sizes[1:])):
        # stored unmasked, so a gradient that forgets the mask differs where the mask is 0
        inputs[f"W{i}"] = 1.2 * r.standard_normal((fi, fo)) / np.sqrt(fi)
        inputs[f"b{i}"] = 0.3 * r.standard_normal(fo)
    return inputs


def _call_made(fn, kw):
    return fn(kw["x"], {k: kw[k] for k in _MADE_KEYS}, [M.copy() for M in _MADE_MASKS])


def _ref_made_forward(x, **params):
    return made_forward(x, params, _MADE_MASKS, "tanh")


def _made_variants(inputs, dout, dlog_det):
    params = {k: inputs[k] for k in _MADE_KEYS}
    _, (caches, masks, act) = made_forward(inputs["x"], params, _MADE_MASKS, "tanh")
    _, unmasked = made_backward(dout, (caches, [np.ones_like(M) for M in masks], act))
    raw_w = [((h, params[f"W{l}"]), a) for l, ((h, _), a) in enumerate(caches)]
    dx_raw, g_raw = made_backward(dout, (raw_w, masks, act))
    return [("dW is not multiplied by the mask: the layer uses W ⊙ M, so dL/dW = (h^T dpre) ⊙ M "
             "(a masked weight has no effect, its gradient is 0).",
             {k: v for k, v in unmasked.items() if k.startswith("W")}),
            ("backpropagated through W instead of W ⊙ M: dh_in = dpre (W ⊙ M)^T -- the masked "
             "weights are not part of the network.", {"x": dx_raw, **{k: g_raw[k] for k in
                                                                       ("W0", "b0", "W1", "b1")}})]


# ------------------------------------------------------------------------------------------------
# Exercise 6: the rational-quadratic spline
# ------------------------------------------------------------------------------------------------
def _bin_inputs(r):
    # slopes clearly away from 1 and d0 != d1, so that each typical slip changes the numbers
    M = 9
    return {"s": r.uniform(0.3, 2.5, M), "d0": r.uniform(0.2, 3.0, M),
            "d1": r.uniform(0.2, 3.0, M)}


def _rq_derivative_inputs():
    r = _rng(601)
    return {"xi": r.uniform(0.05, 0.95, 9), **_bin_inputs(r)}


def _rq_derivative(xi, s, d0, d1):
    return np.exp(_rq_terms(xi, s, d0, d1)[3])


def _rq_derivative_variants(xi, s, d0, d1):
    e = xi * (1.0 - xi)
    den = s + (d1 + d0 - 2.0 * s) * e
    Q = d1 * xi * xi + 2.0 * s * e + d0 * (1.0 - xi) ** 2
    return [
        ("the factor s^2 is missing: dg/dxi carries h^2/w-type factors that leave s^2 = (h/w)^2 "
         "in front once d xi/dx = 1/w is applied.", Q / den ** 2),
        ("the denominator is not squared: the quotient rule gives (N' D - N D') / D^2.",
         s * s * Q / den),
        ("d0 and d1 are swapped: at xi = 0 the slope must be d0 (the left knot's derivative), at "
         "xi = 1 it must be d1.", s * s * (d0 * xi * xi + 2.0 * s * e + d1 * (1.0 - xi) ** 2) / den ** 2),
        ("the middle term is 2 s xi (1 - xi), not s xi (1 - xi).",
         s * s * (d1 * xi * xi + s * e + d0 * (1.0 - xi) ** 2) / den ** 2),
        ("returned log(dg/dx): the function asks for the slope itself.",
         _rq_terms(xi, s, d0, d1)[3]),
    ]


def _rq_inverse_inputs():
    r = _rng(602)
    b = _bin_inputs(r)
    b["d0"][0] = b["d1"][0] = b["s"][0]          # a linear bin: a = 0 in the quadratic
    xi = r.uniform(0.02, 0.98, 9)
    h = r.uniform(0.2, 2.0, 9)
    e = xi * (1.0 - xi)
    P = b["s"] * xi * xi + b["d0"] * e
    den = b["s"] + (b["d1"] + b["d0"] - 2.0 * b["s"]) * e
    return {"r": h * P / den, "h": h, **b}


def _rq_inverse_xi(r, h, s, d0, d1):
    return _rq_root(r, h, s, d0, d1)


def _rq_inverse_variants(r, h, s, d0, d1):
    # (the other root, and the textbook form (-b + sqrt) / 2a, both divide by zero in the bin
    # with a = 0: the grader's non-finite message catches them before any variant is compared)
    D = d1 + d0 - 2.0 * s
    a, b, c = h * (s - d0) + r * D, h * d0 - r * D, -s * r
    disc = np.maximum(b * b - 4.0 * a * c, 0.0)
    with np.errstate(all="ignore"):
        return [
            ("c has the wrong sign: multiplying g = y_k + r out gives c = -s r.",
             -2.0 * c / (-b - np.sqrt(np.maximum(b * b + 4.0 * a * c, 0.0)))),
        ]


# ------------------------------------------------------------------------------------------------
EXERCISES = {
    "mlp_backward": Exercise("mlp_backward", "ex1_mlp_backward.py", "The MLP backward pass", [
        BackwardSpec("linear_backward", "linear_forward", _linear_inputs, ("x", "W", "b"),
                     nn.linear_forward, nn.linear_backward,
                     summary="y = x W + b: dx, dW, db"),
        BackwardSpec("tanh_backward", "tanh_forward", _tanh_inputs, ("x",),
                     nn.tanh_forward, nn.tanh_backward, variants=_tanh_variants,
                     summary="y = tanh(x): dx"),
        BackwardSpec("mlp_backward", "mlp_forward", _mlp_inputs, ("x",) + _MLP_KEYS,
                     _ref_mlp_forward, nn.mlp_backward, call_forward=_call_mlp,
                     depends_on=("linear_backward", "tanh_backward"),
                     summary="3 -> 5 -> 4 -> 2 tanh MLP: dx and every weight"),
    ]),
    "planar_backward": Exercise("planar_backward", "ex2_planar_backward.py",
                                "The planar flow backward pass", [
        BackwardSpec("planar_backward", "planar_forward", _planar_inputs, ("z", "u", "w", "b"),
                     _ref_planar_forward, planar_backward, variants=_planar_variants,
                     summary="x = z + u tanh(w.z + b), log_det = log|1 + (1 - h^2) w.u|"),
    ]),
    "coupling_backward": Exercise("coupling_backward", "ex3_coupling_backward.py",
                                  "The affine coupling backward pass, through the conditioner", [
        BackwardSpec("affine_coupling_backward", "affine_coupling_forward", _coupling_inputs,
                     ("z",) + _NET_KEYS, _ref_coupling_forward, affine_coupling_backward,
                     call_forward=_call_coupling, variants=_coupling_variants_for("forward"),
                     summary="x_b = z_b e^s + t, mask [1, 0, 0, 1], conditioner 2 -> 8 -> 4"),
        BackwardSpec("affine_coupling_inverse_backward", "affine_coupling_inverse",
                     _coupling_inverse_inputs, ("x",) + _NET_KEYS, _ref_coupling_inverse,
                     affine_coupling_inverse_backward, call_forward=_call_coupling,
                     variants=_coupling_variants_for("inverse"), direction="inverse",
                     summary="z_b = (x_b - t) e^-s, mask [1, 0, 0, 1], conditioner 2 -> 8 -> 4"),
    ]),
    "log_det": Exercise("log_det", "ex4_log_det.py", "Log-determinants and the log-det check", [
        JacobianSpec("numerical_jacobian", _jacobian_cases,
                     summary="central differences on maps with a known Jacobian"),
        ValueSpec("planar_log_det", _planar_inputs, _planar_log_det,
                  variants=_planar_log_det_variants, point_map=_planar_point_map,
                  more_inputs=[("log_det, w.u = -2.5: det < 0 for some z",
                                _planar_negative_det_inputs)],
                  summary="log|1 + (1 - h^2) w.u| per sample"),
        ValueSpec("affine_coupling_log_det", _coupling_log_det_inputs, _coupling_log_det,
                  variants=_coupling_log_det_variants, point_map=_coupling_point_map,
                  summary="sum_j s_j(z_a) per sample"),
        ScalarSpec("log_det_error", _log_det_error_cases, depends_on=("numerical_jacobian",),
                   summary="max_n |log_det(z_n) - log|det J_f(z_n)||"),
    ]),
    "made": Exercise("made", "ex5_made.py", "MADE: masks from degrees, the masked backward pass", [
        ValueSpec("hidden_mask", _hidden_mask_inputs, _ref_hidden_mask,
                  variants=_hidden_mask_variants, what="mask",
                  summary="degrees [2, 4, 1, 3] -> 6 hidden units: keep iff m_out >= m_in"),
        ValueSpec("output_mask", _output_mask_inputs, _ref_output_mask,
                  variants=_output_mask_variants, what="mask",
                  summary="5 hidden units -> k D = 8 outputs: keep iff m_out > m_in"),
        BackwardSpec("made_backward", "made_forward", _made_inputs, ("x",) + _MADE_KEYS,
                     _ref_made_forward, made_backward, call_forward=_call_made,
                     variants=_made_variants,
                     summary="MADE 4 -> 6 -> 5 -> 8 (k = 2), order (2, 0, 3, 1): dx, dW, db"),
    ]),
    "spline": Exercise("spline", "ex6_spline.py", "The rational-quadratic spline: slope and inverse", [
        ValueSpec("rq_derivative", _rq_derivative_inputs, _rq_derivative,
                  variants=_rq_derivative_variants, what="dg/dx",
                  summary="s^2 [d1 xi^2 + 2 s xi(1-xi) + d0 (1-xi)^2] / den^2, 9 bins"),
        ValueSpec("rq_inverse_xi", _rq_inverse_inputs, _rq_inverse_xi,
                  variants=_rq_inverse_variants, what="xi",
                  summary="the stable root in [0, 1], including a bin with a = 0"),
    ]),
}


def find_exercise(name_or_file):
    """Look an exercise up by id (``"planar_backward"``) or solution-file name/stem."""
    key = str(name_or_file)
    if key in EXERCISES:
        return EXERCISES[key]
    for ex in EXERCISES.values():
        stem = ex.filename[:-3]
        if key in (ex.filename, stem) or key.endswith(ex.id) or key.endswith(stem):
            return ex
    return None
