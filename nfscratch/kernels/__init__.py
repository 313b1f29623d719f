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
* :mod:`.mlp` -- the conditioner's thin layers fused with bias, activation, derivative and bias
  gradient (the square products stay with BLAS);
* :mod:`.adam` -- the Adam update, one array or a group of 8 per call, and a finiteness count;
* :mod:`._math` -- ``tanh_v``/``log_v`` written out so that loops calling them vectorize, and the
  two reductions ``dot_v``/``sum_v``.

Which code runs is chosen by :func:`nfscratch.config.get_backend`: the transforms, ``nn``,
``Flow`` and ``optim.Adam`` call these kernels on the ``"numba"`` backend and their own NumPy
functions on ``"numpy"``. Timings: ``benchmarks/README.md``.
"""
