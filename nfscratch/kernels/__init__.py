"""Numba kernels for the hot loops, each beside its NumPy twin.

Every kernel exists twice with the same signature and the same result (to ~1e-13; the Adam
update bit for bit): ``<name>_ref`` is vectorized NumPy, the readable spec, and ``<name>_nb``
runs the ``@njit(cache=True)`` version. Both check their arguments first (``_checks``): dtype
float64 (int64 for index arrays), C-contiguous, the expected dimensions and matching sizes, so a
compiled kernel never reads out of bounds and never gets a second specialization. Kernels take
arrays and return new arrays (the Adam update writes into the parameters: that is its job).

Modules (import the one you need; importing any of them imports Numba):

* :mod:`.planar` -- a whole chain of K planar layers: ``planar_u_hat`` (+ backward),
  ``planar_chain_forward``, ``planar_chain_backward``, ``planar_chain_inverse`` (the batched
  Newton root-find) and ``planar_chain_inverse_backward``;
* :mod:`.coupling` -- the elementwise part of affine and additive couplings, both directions,
  with log-det and backward;
* :mod:`.spline` -- rational-quadratic splines, elementwise: knots from the unconstrained
  parameters, bin search, the map or its stable inverse root, log-det, and the backward pass
  back to the parameters (twins: the functions of ``nfscratch.transforms.spline``);
* :mod:`.mlp` -- the conditioner's thin layers fused with bias, activation, derivative and bias
  gradient (the square products stay with BLAS);
* :mod:`.adam` -- the Adam update, one array or a group of 8 per call, and a finiteness count;
* :mod:`.energies` -- the energies U1-U4 of ``nfscratch.datasets`` and their gradients;
* :mod:`._math` -- ``tanh_v``/``exp_v``/``log_v``/``log1p_v`` written out so that loops calling
  them vectorize, and the two reductions ``dot_v``/``sum_v``;
* :mod:`._checks` -- the argument checks, and ``packed_view`` (many arrays that are consecutive
  views of one buffer, as a Flow's parameters are, seen as one array).

Where a caller builds the arguments itself and makes many calls per training step (the planar
chain in ``nfscratch.transforms.planar``, the MLP over blocks of rows in ``nfscratch.nn``, the
Adam step), it checks what comes from outside once and calls the compiled function directly:
``<name>_unchecked`` is the kernel behind ``<name>_nb``.

Which code runs is chosen by :func:`nfscratch.config.get_backend`: the transforms, ``nn``,
``Flow``, ``optim.Adam`` and the built-in energies call these kernels on the ``"numba"`` backend
and their own NumPy functions on ``"numpy"``. Timings: ``benchmarks/README.md``.
"""
