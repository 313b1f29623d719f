"""Numba kernels for the hot loops, each with its NumPy twin.

Every kernel has three parts, always named the same way:

* ``_<name>`` -- the ``@njit(cache=True)`` function (one compiled signature: float64 arrays,
  int64 index arrays, C-contiguous), which trusts its arguments;
* ``<name>_nb`` -- the one checked public entry: it checks every array (``_checks``: dtype,
  C-contiguity, dimensions, every size against the others and against any cache it is given,
  distinct indices, writeable outputs) and every scalar (a NaN ``lr``, an infinite ``s_max``)
  *before* any loop runs, raises an error naming the kernel, the argument, what was expected and
  what came, and only then calls ``_<name>``; so a compiled kernel never reads or writes out of
  bounds and never gets a second specialization;
* the NumPy twin, which gives the same numbers (to ~1e-13; the Adam update bit for bit): the
  readable statement of the formula. Where a teaching file already states it, the twin *is* that
  function (e.g. :func:`nfscratch.transforms.coupling.affine_elementwise_forward` for
  ``affine_elementwise_forward_nb``, :func:`nfscratch.optim.adam_update` for ``adam_update_nb``);
  otherwise it is ``<name>_ref`` beside the kernel. The tests compare every kernel with its twin.

A private fast path that builds a kernel's arguments itself and makes many calls per training
step (``nfscratch/_nn_fast.py``, ``_optim_fast.py``, ``transforms/_*_fast.py``) checks what comes from
outside once and calls ``_<name>`` directly. Kernels take arrays and return new arrays, except
where writing in place is their job (the Adam update, an ``out=`` argument).

Modules (import the one you need; importing any of them imports Numba; none imports the layers
above ``kernels/`` at import time):

* :mod:`.planar` -- a chain of K planar layers, both directions, with backward passes (twins:
  the functions of ``nfscratch.transforms.planar`` applied layer by layer);
* :mod:`.autoregressive` -- the sequential (D-pass) direction of an affine autoregressive layer,
  fused over the batch without per-pass allocation, and its backward (twins:
  ``transforms.autoregressive.iaf_inverse`` and ``iaf_inverse_backward``); and the one pass of
  a chain of K IAF layers with its backward (twins: ``transforms.iaf_chain.iaf_chain_forward``
  and ``iaf_chain_backward``, the one-pass functions looped over the layers);
* :mod:`.coupling` -- the elementwise step of affine and additive couplings, both directions,
  with log-det and backward;
* :mod:`.spline` -- rational-quadratic splines, elementwise: knots from the unconstrained
  parameters, bin search, the map or its stable inverse root, log-det, and the backward pass
  back to the parameters (twins: the functions of ``nfscratch.transforms.spline``);
* :mod:`.mlp` -- the conditioner's thin layers fused with bias, activation, derivative and bias
  gradient (the square products stay with BLAS);
* :mod:`.mlp_fused` -- the coupling conditioner (three layers, thin input and output) in one
  kernel per direction: row blocks through all layers, the square product in register tiles
  (twins: ``nn.mlp_forward`` and ``nn.mlp_backward``);
* :mod:`.adam` -- the Adam update, one array or a group of 8 per call, and a finiteness count;
* :mod:`.energies` -- the energies U1-U4 of ``nfscratch.datasets`` and their gradients (twins:
  the readable energies of ``nfscratch.datasets.energies``);
* :mod:`.ode` -- RK4 integration of a continuous flow's velocity MLP, fused for a block of
  samples, with the exact divergence carried along (twin: ``continuous.rk4_integrate``), and a
  one-pass SiLU with its derivative;
* :mod:`._math` -- ``tanh_v``/``exp_v``/``log_v``/``log1p_v`` written out so that loops calling
  them vectorize, and the reductions ``dot_v``/``sum_v``/``dot_rows_v``;
* :mod:`._checks` -- the argument checks, and ``packed_view`` (many arrays that are consecutive
  views of one buffer, as a Flow's parameters are, seen as one array).
* :mod:`._numba_start` -- sets Numba's compiler context up once, when the first kernel module is
  imported, without the SciPy import Numba would make for BLAS that no kernel here uses (the
  largest avoidable part of the first training step in a fresh process).

Which code runs is chosen by :func:`nfscratch.config.use_kernels` (the ``"numba"`` backend); the
classes of the teaching files reach their fast paths by a one-line dispatch. Timings and the
reasons for each design choice: ``benchmarks/README.md``.
"""
