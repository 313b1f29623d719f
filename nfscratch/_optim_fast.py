"""The Adam step on the kernel path (backend "numba"): same numbers as ``optim.adam_update``.

:class:`nfscratch.optim.Adam` calls :func:`adam_step` first; it returns False, having changed
nothing, when the kernel path does not apply (another dtype, a non-contiguous or read-only
array, mismatched names or shapes, a non-finite gradient), and Adam then runs its NumPy path,
which validates fully and raises the usual errors.

A flow has many small parameter arrays (a K = 32 planar flow: 96 arrays of 1-2 numbers), so
NumPy's per-operation overhead dominates its Adam step. Here the moments of all arrays live in
two flat buffers (``opt.state[name]["m"]`` are views into them) and the parameters go to the
kernel as one array when they are consecutive views of one buffer (``packed_view``: a Flow's
are), else ``kernels.adam.GROUP`` at a time. That layout is a *plan*, built on the first step and
kept while the parameter arrays, their names and the optimizer's state dict stay the same
objects (``load_state_dict`` replaces the state dict, so it starts a new plan). Plans are kept
here, keyed weakly by the optimizer. Timings: ``benchmarks/README.md``.
"""
import operator
import weakref

import numpy as np

from .kernels._checks import packed_view     # plain NumPy: does not import Numba

_F64 = np.dtype(np.float64)
_shape_of = operator.attrgetter("shape")
_step_of = operator.itemgetter("step")
_plans = weakref.WeakKeyDictionary()          # optimizer -> its plan


def adam_step(opt, params, grads, lr):
    """Do ``opt``'s Adam step at rate ``lr`` with the kernels; return False (nothing changed) if
    they do not apply."""
    from .kernels import adam as ka              # imported on first use: it loads Numba code
    if type(params) is not dict or type(grads) is not dict or len(grads) != len(params):
        return False
    plan = _plan(opt, params, ka)
    if plan is None:
        return False
    try:                                         # the same names (and as many) and shapes
        gs = [grads[name] for name in plan["names"]]
        if list(map(_shape_of, gs)) != plan["shapes"]:
            return False
    except (KeyError, AttributeError):
        return False
    g_all = np.concatenate(gs, axis=None)        # flattened and joined in one call
    # every gradient is checked before any parameter moves (a NaN leaves the model untouched)
    if g_all.dtype != _F64 or ka._count_nonfinite(g_all):
        return False
    states = plan["states"]
    if not plan["adopted"]:                      # first step with this plan: adopt its state
        opt.state.update(states)
        plan["adopted"] = True
    # the plan checked what adam_update_nb checks (1-D float64 views, moments of equal length);
    # the scalars were checked by Adam's constructor and its schedule
    beta1, beta2, eps = opt.beta1, opt.beta2, opt.eps
    m_all, v_all = plan["m_all"], plan["v_all"]
    state_list = plan["state_list"]
    steps = set(map(_step_of, state_list))
    for st in state_list:
        st["step"] += 1
    if len(steps) == 1:                          # the usual case: every array is at step t
        t = steps.pop() + 1
        bias1, bias2 = 1.0 - beta1 ** t, 1.0 - beta2 ** t
        if plan["flat"] is not None:             # a Flow's parameters: one buffer, one call
            ka._adam_update(plan["flat"], g_all, m_all, v_all, lr, beta1, beta2, eps, bias1, bias2)
            return True
        for ps, offsets in plan["groups"]:
            ka._adam_update_group(ps, g_all, m_all, v_all, offsets, lr, beta1, beta2, eps, bias1,
                                  bias2)
    else:
        for p, lo, st in zip(plan["views"], plan["offsets"], states.values()):
            t, hi = st["step"], lo + p.size
            ka._adam_update(p, g_all[lo:hi], m_all[lo:hi], v_all[lo:hi], lr, beta1, beta2, eps,
                            1.0 - beta1 ** t, 1.0 - beta2 ** t)
    return True


def _plan(opt, params, ka):
    """Everything the kernel path needs that does not change from step to step, or None."""
    key = (tuple(map(id, params.values())), tuple(params), len(opt.state))
    plan = _plans.get(opt)
    if plan is not None and plan["key"] == key and plan["state"] is opt.state:
        return plan
    views, offsets, states, moments, total = [], [], {}, [], 0
    for name, p in params.items():
        if (type(p) is not np.ndarray or p.dtype != _F64 or not p.flags.c_contiguous
                or not p.flags.writeable):
            return None
        st = dict(opt.state.get(name, {"step": 0}))
        m, v = st.get("m", np.zeros(p.shape)), st.get("v", np.zeros(p.shape))
        if m.shape != p.shape or v.shape != p.shape:
            return None
        views.append(p.reshape(-1))
        offsets.append(total)
        states[name] = st
        moments.append((m, v))
        total += p.size
    m_all, v_all = np.empty(total), np.empty(total)
    for (name, st), (m, v), p, lo in zip(states.items(), moments, views, offsets):
        shape = params[name].shape
        m_all[lo:lo + p.size], v_all[lo:lo + p.size] = m.reshape(-1), v.reshape(-1)
        st["m"] = m_all[lo:lo + p.size].reshape(shape)
        st["v"] = v_all[lo:lo + p.size].reshape(shape)
    groups = []
    for start in range(0, len(views), ka.GROUP):
        chunk = views[start:start + ka.GROUP]
        group_offsets = np.zeros(ka.GROUP, dtype=np.int64)
        group_offsets[:len(chunk)] = offsets[start:start + ka.GROUP]
        groups.append((tuple(chunk) + (ka.EMPTY,) * (ka.GROUP - len(chunk)), group_offsets))
    plan = _plans[opt] = {
        "key": key, "state": opt.state, "names": list(params),
        "shapes": [p.shape for p in params.values()], "views": views, "offsets": offsets,
        "states": states, "m_all": m_all, "v_all": v_all, "groups": groups,
        "flat": packed_view(params.values()), "adopted": False,
        "state_list": list(states.values()),
        # the key holds ids: keeping the arrays alive means no id can be reused
        "params": list(params.values())}
    return plan


def plan_of(opt):
    """The plan :func:`adam_step` uses for ``opt`` (None before its first kernel step); for tests."""
    return _plans.get(opt)
