r"""Gradient checking: compare hand-written backward passes with central differences.

Every transform in nfscratch has a backward pass written by hand, and a backward pass that is a
little wrong still trains -- only worse, and nobody notices. This module compares each analytic
gradient with **central differences**

.. math:: \frac{\partial L}{\partial \theta_i} \approx
          \frac{L(\theta + \epsilon e_i) - L(\theta - \epsilon e_i)}{2 \epsilon}

and prints a table with one row per gradient and a PASS / WARN / FAIL / SKIP status.

What is checked
---------------
:func:`check_transform` (a :class:`~nfscratch.transforms.base.Transform`, or a
:class:`~nfscratch.flow.Flow`: :func:`check_flow` is the same function) runs, on a small float64
batch (N = 8), in each direction:

* ``shapes``: the output is (N, D) and finite, ``log_det`` is (N,) -- one entry per sample,
  never a broadcast scalar;
* ``dz`` / ``dx`` and one row per parameter: the gradients left by ``backward`` (forward
  direction) or ``inverse_backward`` (inverse direction) for the scalar loss

  .. math:: L = \sum_{n,d} dout_{nd}\, out_{nd} + \sum_n dlog\_det_n\, log\_det_n

  with random upstream gradients ``dout ~ N(0, 1)`` (N, D) and ``dlog_det ~ N(0, 1)`` (N,).
  Random (not all-ones) so that no term cancels by accident and both outputs are exercised;
* ``log_det``: the log-det of a few samples against ``np.linalg.slogdet`` of the
  finite-difference Jacobian of the single-sample map (``log|det dx/dz|`` forward,
  ``log|det dz/dx|`` inverse);

and once for the pair: ``round trip`` (``max |inverse(forward(z)) - z|``) and ``log_det sum``
(``max |log_det_forward(z) + log_det_inverse(forward(z))|``, which must be 0). The inverse
direction is evaluated at ``x = forward(z)``, inside the range of the transform. A direction
that raises ``NotImplementedError`` is reported as SKIP ("not provided"), not as a crash.

:func:`check_gradients` does the same gradient comparison for a *pure* functional core,
``forward_fn(**inputs) -> (out, cache)`` or ``(out, log_det, cache)`` and
``backward_fn(dout, [dlog_det,] cache) -> gradients``, e.g. ``linear_forward`` /
``linear_backward`` or ``planar_forward`` / ``planar_backward``.

Thresholds
----------
A correct backward pass in float64 typically agrees to about 1e-10 (CS231n: "expect ~1e-10").
A row WARNs above ``warn=1e-7`` and FAILs above ``fail=1e-4`` unless told otherwise. Gradient
rows report :func:`rel_error` with a floor of ``REL_FLOOR`` (1%) of the largest gradient entry
in the same check: an entry that is zero up to rounding (~1e-10) would otherwise be divided by
~0 and FAIL a correct pass. The ``log_det``, ``round trip`` and ``log_det sum`` rows report an
absolute error (marked ``*``); for ``log_det`` that is already relative, since
``|Δ log|det J|| ≈ |Δ det J| / |det J|``.

Why float64 is required
-----------------------
Central differences have two errors: truncation, ``O(eps^2)`` from the Taylor series
(~1e-12 at ``eps = 1e-6``), and rounding, ``O(machine_eps / eps)``, because ``L(θ + eps)`` and
``L(θ - eps)`` share most of their digits and the subtraction cancels them. In float64 the
rounding term is ``2.2e-16 / 1e-6 ≈ 2e-10``; in float32 it is ``1.2e-7 / 1e-6 ≈ 1e-1`` -- as
large as the error a bug makes, so the check could not tell a bug from noise. Float32 (or any
non-float64) inputs and parameters are therefore refused with a ``TypeError``.

Two details keep the rounding noise near its floor (:mod:`~nfscratch.gradcheck.numerics`): the
differences are taken on the outputs *before* contracting them with the upstream gradients
(outputs the perturbation does not touch cancel exactly), and they are divided by the step
actually taken, ``(θ + eps) - (θ - eps)`` as stored in floating point, rather than by ``2 eps``.

Cost
----
Each checked entry costs two passes. Every entry of an input or parameter tensor is checked up
to ``max_entries`` (200) entries; a larger tensor is checked on a seeded random subset of
``max_entries`` entries, and the detail column says so. A coupling layer whose conditioner has
~5000 parameters is checked in a fraction of a second.

Where things are
----------------
* :mod:`~nfscratch.gradcheck.numerics` -- :func:`rel_error` and the one central-difference loop
  behind :func:`numerical_gradient`, :func:`numerical_jacobian` and the vector-Jacobian product;
* :mod:`~nfscratch.gradcheck.report` -- rows, results and the PASS / WARN / FAIL tables;
* :mod:`~nfscratch.gradcheck.checks` -- :func:`check_gradients`, :func:`check_transform` /
  :func:`check_flow`, :func:`check_all`, :func:`builtin_examples`, :func:`perturb_params`,
  :func:`parse_gradients`.

References
----------
CS231n, ``gradient_check.py`` (Stanford, https://cs231n.github.io/optimization-1/).
Rezende & Mohamed, "Variational Inference with Normalizing Flows", ICML 2015, arXiv:1505.05770.
"""
from .checks import (builtin_examples, check_all, check_flow, check_gradients, check_transform,
                     parse_gradients, perturb_params)
from .numerics import EPS, REL_FLOOR, numerical_gradient, numerical_jacobian, rel_error
from .report import FAIL, WARN, GradcheckResult, GradcheckRow

__all__ = ["rel_error", "numerical_gradient", "numerical_jacobian", "check_gradients",
           "check_transform", "check_flow", "check_all", "builtin_examples", "perturb_params",
           "parse_gradients", "GradcheckResult", "GradcheckRow", "EPS", "WARN", "FAIL", "REL_FLOOR"]
