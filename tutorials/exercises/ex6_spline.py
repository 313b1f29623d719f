r"""Exercise 6 -- the rational-quadratic spline: its slope, and its inverse.

Tutorial 09 builds a monotone spline from bins. Inside bin ``k`` (width ``w``, height ``h``, slope
``s = h / w``, knot derivatives ``d0`` at its left end and ``d1`` at its right end) the map is,
with ``xi = (x - x_k) / w`` in [0, 1],

    g(x) = y_k + h [s xi^2 + d0 xi (1 - xi)] / [s + (d1 + d0 - 2 s) xi (1 - xi)].

Your tasks (every argument is an array of shape (M,), one entry per element; work elementwise):

1. ``rq_derivative(xi, s, d0, d1)``: the slope ``dg/dx`` at position ``xi`` in the bin. Its log is
   the element's log-det, so it must be exact. Differentiate the quotient with respect to ``xi``
   and remember ``d xi / dx = 1 / w``; simplify until ``w`` and ``h`` only appear through ``s``.
2. ``rq_inverse_xi(r, h, s, d0, d1)``: given ``r = y - y_k`` (the output's height above the bin's
   bottom knot), the position ``xi`` in [0, 1] with ``g = y``. Multiply out ``g(x) = y`` into a
   quadratic ``a xi^2 + b xi + c = 0`` and take the root in [0, 1] in a form that stays finite
   and accurate when ``a = 0`` (a bin where ``d0 = d1 = s``: the map is linear there).

Check your work with::

    nfscratch exercises check ex6_spline.py

References: Durkan, Bekasov, Murray, Papamakarios, "Neural Spline Flows", NeurIPS 2019,
arXiv:1906.04032 (Section 3 and Appendix A).
"""
import numpy as np

EXERCISE = "spline"


def rq_derivative(xi, s, d0, d1):
    """``dg/dx`` of the rational-quadratic map at ``xi`` in a bin of slope ``s``: shape (M,)."""
    ### BEGIN SOLUTION
    ### HINT 1: g = y_k + h N / D is a quotient; differentiate it with respect to xi by the quotient rule, then multiply by d xi / dx = 1 / w, and use h / w = s.
    ### HINT 2: dg/dx = s^2 [d1 xi^2 + 2 s xi (1 - xi) + d0 (1 - xi)^2] / [s + (d1 + d0 - 2 s) xi (1 - xi)]^2.
    ### HINT 3: everything is elementwise on arrays of shape (M,): no sums, no matrix products; the result has the shape of xi.
    e = xi * (1.0 - xi)                                          # (M,)
    numerator = s * s * (d1 * xi * xi + 2.0 * s * e + d0 * (1.0 - xi) ** 2)
    denominator = (s + (d1 + d0 - 2.0 * s) * e) ** 2
    slope = numerator / denominator                              # (M,)
    ### END SOLUTION
    return slope


def rq_inverse_xi(r, h, s, d0, d1):
    """The ``xi`` in [0, 1] at which the bin's map reaches ``y_k + r``: shape (M,)."""
    ### BEGIN SOLUTION
    ### HINT 1: multiply g(x) = y_k + r out by the denominator: you get a xi^2 + b xi + c = 0. Of its two roots only one lies in [0, 1]; since c <= 0 it is the one with + sqrt in the textbook form.
    ### HINT 2: with D = d1 + d0 - 2 s: a = h (s - d0) + r D, b = h d0 - r D, c = -s r, and xi = 2 c / (-b - sqrt(b^2 - 4 a c)) -- the textbook (-b + sqrt(.)) / (2 a) times (-b - sqrt(.)) / (-b - sqrt(.)), which never divides by a.
    ### HINT 3: elementwise on (M,) arrays; clamp the discriminant with np.maximum(., 0.0) before the square root (round-off can make it -1e-17).
    D = d1 + d0 - 2.0 * s
    a = h * (s - d0) + r * D
    b = h * d0 - r * D
    c = -s * r
    disc = np.maximum(b * b - 4.0 * a * c, 0.0)                 # >= 0 up to round-off
    xi = 2.0 * c / (-b - np.sqrt(disc))                          # (M,)
    ### END SOLUTION
    return xi
