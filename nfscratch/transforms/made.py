r"""MADE: a dense network made autoregressive by masking its weights (Germain et al. 2015).

An autoregressive conditioner must compute, for every feature ``i``, parameters that depend only
on the features that come *before* ``i`` in some order. MADE gets all D of them from one pass of
an ordinary MLP by multiplying each weight matrix by a fixed binary mask that cuts every path
from an input to an output that must not see it. MADE is a conditioner, like :class:`nn.MLP`,
not a flow layer; :mod:`.autoregressive` builds MAF and IAF on it.

Notes
-----
**Degrees.** ``order`` lists the features in the sequence in which they are generated, so the
input ``order[k]`` gets the degree ``m(order[k]) = k + 1`` (1..D). Every hidden unit gets a degree
in ``1..D-1``: the largest input degree it may see. Here they cycle through ``1..D-1``
(``m = (j mod (D-1)) + 1`` for unit ``j``) so that every degree is present in every layer as soon
as the width is ``>= D - 1``; or they are drawn at random (Germain et al.'s sampling,
``m ~ U{min of the layer below, .., D-1}``) from a documented seed. Each input feature has
``k`` outputs (2 for affine: a log-scale and a shift), block ``c`` holding columns ``c D .. c D + D - 1``;
output ``c D + i`` has the degree of input ``i``.

**Masks.** A weight from a unit of degree ``m_in`` to a hidden unit of degree ``m_out`` is kept iff
``m_out >= m_in``; a weight into an output is kept iff ``m_out > m_in`` (strictly: output ``i``
must not see input ``i`` itself). A path input ``j`` -> output ``i`` then exists only if
``m(j) <= ... <= m(hidden) < m(i)``: output ``i`` depends only on the inputs before it, so the
Jacobian of the outputs is strictly triangular in the order.

**Width.** An output of degree ``d`` reads only hidden units of degree ``<= d - 1``; if no hidden
unit has degree ``d - 1`` the input of degree ``d - 1`` reaches no output at all. With fewer than
``D - 1`` units in a layer some degree is missing, so such a width is refused.

**Context** (a conditional MADE, ``context_dim = C > 0``): ``C`` more inputs, read by the first
layer beside the D features, each of degree 0 (the context is given, not generated: every output
may see it). The hidden degrees then run over ``0..D-1`` instead of ``1..D-1``: a unit of degree 0
sees only the context, and it is the only kind of unit that the *first* feature's outputs (degree
1, ``m_out > m_in`` strictly) may read -- without it they would be constant biases and the first
feature's density would ignore the context. Every rule above is unchanged, so a path from input
feature ``j`` to output ``i`` still needs ``m(j) <= ... < m(i)``: the property holds for the D
features, and the width must be ``>= D``. The first weight matrix is ``(D + C, H_1)``.

**Forward and backward**, per layer ``l`` with mask ``M_l`` (``W_l`` of shape (fan_in, fan_out)):

.. math::

    h_{l+1} = \sigma(h_l (W_l \odot M_l) + b_l), \qquad
    dW_l = (h_l^\top\, d\mathrm{pre}_l) \odot M_l, \quad db_l = \textstyle\sum_n d\mathrm{pre}_{l,n},
    \quad dh_l = d\mathrm{pre}_l (W_l \odot M_l)^\top.

The mask multiplies the weight gradient because the network only ever uses the product
``W ⊙ M``: by the chain rule ``dL/dW = dL/d(W ⊙ M) ⊙ M``. A masked weight has no effect on the
output, so its true gradient is exactly zero -- which is also what keeps it from drifting under
an optimizer and what ``gradcheck`` measures when it perturbs it.

References
----------
Germain, Gregor, Murray, Larochelle, "MADE: Masked Autoencoder for Distribution Estimation",
ICML 2015, arXiv:1502.03509.
"""
import numpy as np

from .._validate import as_batch, as_context, as_rng
from ..nn import ACTIVATIONS, linear_backward, linear_forward, mlp_param_shapes

__all__ = ["made_order", "made_degrees", "made_masks", "check_made_masks", "made_forward",
           "made_backward", "uniform_biases", "MADE"]


def made_order(dim, order=None, rng=None):
    """Validate ``order`` (a permutation of ``0..dim-1``); ``None`` or ``"natural"`` gives
    ``0..dim-1``, ``"reverse"`` its reverse, ``"random"`` a permutation drawn from ``rng``."""
    if order is None or (isinstance(order, str) and order == "natural"):
        return np.arange(dim, dtype=np.int64)
    if isinstance(order, str):
        if order == "reverse":
            return np.arange(dim, dtype=np.int64)[::-1].copy()
        if order == "random":
            return as_rng(rng).permutation(dim).astype(np.int64)
        raise ValueError(f"order: expected 'natural', 'reverse', 'random' or a permutation of "
                         f"0..{dim - 1}, got {order!r}.")
    arr = np.asarray(order)
    if (arr.shape != (dim,) or arr.dtype.kind not in "iu"
            or not np.array_equal(np.sort(arr), np.arange(dim))):
        raise ValueError(f"order: expected a permutation of 0..{dim - 1} (each feature once, the "
                         f"sequence in which they are generated), got {arr.tolist()}.")
    return arr.astype(np.int64)


def made_degrees(order, hidden, hidden_degrees="cyclic", rng=None, context_dim=0):
    """Degrees of the inputs and of every hidden layer.

    Parameters
    ----------
    order : ndarray of int, shape (D,)
        A permutation: ``order[k]`` is the feature generated k-th.
    hidden : sequence of int
        Hidden widths; each must be ``>= D - 1``.
    hidden_degrees : {"cyclic", "random"}
    rng : numpy.random.Generator or int, optional
        Used only by ``"random"``.
    context_dim : int
        With context inputs (> 0) the hidden degrees start at 0 (units that see only the
        context) and each width must be ``>= D``.

    Returns
    -------
    list of ndarray of int64
        ``[m_in (D,), m_1 (H_1,), ...]`` (the context's degree-0 inputs are not listed).

    Examples
    --------
    >>> [m.tolist() for m in made_degrees(np.array([2, 0, 1]), [4])]
    [[2, 3, 1], [1, 2, 1, 2]]
    """
    D = order.size
    if D < 2:
        raise ValueError(f"dim: MADE needs at least 2 features (with one, nothing is "
                         f"conditioned on anything), got {D}.")
    m_in = np.empty(D, dtype=np.int64)
    m_in[order] = np.arange(1, D + 1)
    degrees = [m_in]
    lowest = 0 if context_dim else 1                 # degree 0: units that see only the context
    below = lowest                                   # the lowest degree of the layer below
    rng = as_rng(rng) if hidden_degrees == "random" else None
    for layer, H in enumerate(hidden):
        if H < D - lowest:
            need = "D - 1" if lowest else "D (with a context)"
            raise ValueError(f"hidden: layer {layer} has width {H} < {need} = {D - lowest}: some "
                             "input would have no path to the outputs that should depend on it (MADE "
                             f"needs a unit of every degree {lowest}..{D - 1}); use a width >= "
                             f"{D - lowest}.")
        if hidden_degrees == "cyclic":
            degrees.append(np.arange(H, dtype=np.int64) % (D - lowest) + lowest)
        elif hidden_degrees == "random":
            degrees.append(rng.integers(min(below, D - 1), D, size=H).astype(np.int64))
            below = int(degrees[-1].min())
        else:
            raise ValueError(f"hidden_degrees: expected 'cyclic' or 'random', got {hidden_degrees!r}.")
    return degrees


def made_masks(degrees, k=1, context_dim=0):
    """Binary masks ``[M_0, ..., M_L]`` (float64, shapes like the weights) from the degrees.

    Hidden layers keep ``m_out >= m_in``; the output layer (``k`` blocks of D outputs) keeps
    ``m_out > m_in``. ``context_dim`` inputs of degree 0 follow the D features (rows of ones
    appended to ``M_0``).

    Examples
    --------
    >>> masks = made_masks(made_degrees(np.arange(3), [2]))
    >>> [m.astype(int).tolist() for m in masks]
    [[[1, 1], [0, 1], [0, 0]], [[0, 1, 1], [0, 0, 1]]]
    """
    m_out = np.tile(degrees[0], k)                                   # (k D,)
    degrees = [np.concatenate([degrees[0], np.zeros(int(context_dim), dtype=np.int64)]),
               *degrees[1:]]
    masks = [(d_out[None, :] >= d_in[:, None]).astype(np.float64)
             for d_in, d_out in zip(degrees[:-1], degrees[1:])]
    masks.append((m_out[None, :] > degrees[-1][:, None]).astype(np.float64))
    return masks


def check_made_masks(masks, order, k=1, context_dim=0):
    """Raise ``ValueError`` unless ``masks`` make output ``c D + i`` depend only on inputs
    generated before ``i`` (shapes chained, entries 0/1); ``context_dim`` context inputs after
    the D features may reach any output."""
    D = order.size
    n_in = D + int(context_dim)
    if not masks or np.shape(masks[0])[0] != n_in or np.shape(masks[-1])[1] != k * D:
        raise ValueError(f"masks: expected a chain from {n_in} inputs to {k * D} outputs, got "
                         f"shapes {[np.shape(m) for m in masks]}.")
    reach = np.eye(D, n_in)                     # paths from the D features only
    for layer, M in enumerate(masks):
        if M.ndim != 2 or M.shape[0] != reach.shape[1] or not np.all((M == 0) | (M == 1)):
            raise ValueError(f"masks[{layer}]: expected a 0/1 matrix with {reach.shape[1]} rows, "
                             f"got shape {np.shape(M)}.")
        reach = (reach @ M > 0).astype(np.float64)                   # (D, width): paths exist
    m_in = np.empty(D, dtype=np.int64)
    m_in[order] = np.arange(1, D + 1)
    m_out = np.tile(m_in, k)
    bad = np.argwhere((reach > 0) & (m_in[:, None] >= m_out[None, :]))
    if bad.size:
        j, col = bad[0]
        raise ValueError(f"masks: they break the autoregressive property: output {col} (feature "
                         f"{col % D}, generated {m_out[col]}-th) depends on input {j} (generated "
                         f"{m_in[j]}-th); an output may only see inputs generated before it.")


def made_forward(x, params, masks, activation="tanh", context=None):
    r"""MADE pass: the MLP with every weight multiplied by its mask.

    Parameters
    ----------
    x : ndarray, shape (N, D)
    params : dict
        ``W0, b0, W1, ...`` as in :class:`nn.MLP`.
    masks : list of ndarray
        ``masks[l]`` has the shape of ``W{l}``.
    activation : str
    context : ndarray, shape (N, C), optional
        Inputs of degree 0 of a conditional MADE, read after ``x``.

    Returns
    -------
    out : ndarray, shape (N, k D)
    cache : tuple

    Examples
    --------
    >>> net = MADE(2, [3], k=2, rng=0)
    >>> out, _ = made_forward(np.ones((4, 2)), net.params, net.masks)
    >>> out.shape
    (4, 4)
    """
    act_forward = ACTIVATIONS[activation][0]
    caches = []
    h = x if context is None else np.concatenate([x, context], axis=1)      # (N, D [+ C])
    for l, M in enumerate(masks):
        h, lin_cache = linear_forward(h, params[f"W{l}"] * M, params[f"b{l}"])   # (N, H_{l+1})
        act_cache = None
        if l < len(masks) - 1:
            h, act_cache = act_forward(h)
        caches.append((lin_cache, act_cache))
    return h, (caches, masks, activation)


def made_backward(dout, cache):
    """Backward of :func:`made_forward`: ``(dx, grads)``; every ``dW`` is multiplied by its mask.

    ``dx`` has a column per input: (N, D), or (N, D + C) with a context (the caller splits it)."""
    caches, masks, activation = cache
    act_backward = ACTIVATIONS[activation][1]
    grads = {}
    dh = dout
    for l in reversed(range(len(caches))):
        lin_cache, act_cache = caches[l]
        if act_cache is not None:
            dh = act_backward(dh, act_cache)
        dh, dW, grads[f"b{l}"] = linear_backward(dh, lin_cache)
        grads[f"W{l}"] = dW * masks[l]          # only W ⊙ M is used: dL/dW = dL/d(W ⊙ M) ⊙ M
    return dh, grads


def uniform_biases(params, rng):
    r"""Draw every bias ``b_l`` of a MADE's ``params`` from ``U(-1/\sqrt{n_l}, 1/\sqrt{n_l})``,
    in place, layer after layer from ``rng``; ``n_l`` is the width of layer ``l``'s input,
    masked weights included (PyTorch's ``nn.Linear`` default).

    Why: in two dimensions the MADE of the second feature reads one number, ``x_1``, and with
    zero biases every first-layer unit is ``\sigma(w_j x_1)``, bending at ``x_1 = 0`` (a ReLU's
    kink, a tanh's inflection) for every ``j``: the conditioner starts with all its flexibility
    at one point, and training spends much of its budget spreading the bends out. Random biases
    spread them over the data from the first step. (A zero-initialized last layer stays zero, so
    the layer starts input-independent, near but no longer exactly at the identity.)
    """
    rng = as_rng(rng)
    l = 0
    while f"b{l}" in params:
        a = 1.0 / np.sqrt(params[f"W{l}"].shape[0])
        params[f"b{l}"][...] = rng.uniform(-a, a, size=params[f"b{l}"].shape)
        l += 1


class MADE:
    """A masked MLP with ``k`` outputs per input feature, autoregressive in ``order``.

    Parameters
    ----------
    dim : int
        Number of features D >= 2.
    hidden : sequence of int
        Hidden widths, each >= D - 1 (>= D with a context).
    k : int
        Outputs per feature.
    order : None, "natural", "reverse", "random" or permutation of 0..D-1
        The sequence in which features are generated.
    hidden_degrees : {"cyclic", "random"}
    activation : str
    rng : numpy.random.Generator or int, optional
        Initial weights.
    zero_last : bool
        Zero the last layer (the flow built on it starts as the identity).
    masks : list of ndarray, optional
        Explicit masks instead of those from the degrees; checked to be autoregressive.
    seed : int
        Seed of the ``"random"`` order (``default_rng(seed)``) and of the ``"random"`` hidden
        degrees (``default_rng([seed, 1])``).
    context_dim : int
        Number C of context inputs (degree 0, seen by every output); 0: none.

    Examples
    --------
    >>> net = MADE(3, [8], k=2, rng=0)
    >>> out = net.forward(np.zeros((5, 3)))
    >>> out.shape, net.order.tolist()
    ((5, 6), [0, 1, 2])
    """

    def __init__(self, dim, hidden=(64, 64), k=2, order=None, hidden_degrees="cyclic",
                 activation="tanh", rng=None, zero_last=False, masks=None, seed=0, context_dim=0):
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation: expected one of {sorted(ACTIVATIONS)}, got {activation!r}.")
        rng = as_rng(rng)
        self.dim, self.k, self.activation = int(dim), int(k), activation
        self.context_dim = int(context_dim)
        self.hidden = [int(h) for h in hidden]
        # the random order and degrees come from their own seed, not from ``rng``, so that a
        # saved layer (which stores ``seed``) gets the same masks back when it is rebuilt
        self.order = made_order(self.dim, order, seed)
        self.degrees = made_degrees(self.order, self.hidden, hidden_degrees,
                                    np.random.default_rng([int(seed), 1]), self.context_dim)
        if masks is None:
            masks = made_masks(self.degrees, self.k, self.context_dim)
        else:
            masks = [np.asarray(M, dtype=np.float64) for M in masks]
            check_made_masks(masks, self.order, self.k, self.context_dim)
        self.masks = masks
        sizes = [self.dim + self.context_dim, *self.hidden, self.k * self.dim]
        gain = ACTIVATIONS[activation][2]
        self.params = {}
        for l, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            # fan-in counts only the unmasked weights a unit actually sums over
            fan = np.maximum(masks[l].sum(axis=0), 1.0)
            W = rng.normal(size=(fan_in, fan_out)) * gain / np.sqrt(fan)
            if zero_last and l == len(sizes) - 2:
                W[:] = 0.0
            self.params[f"W{l}"] = W * masks[l]
            self.params[f"b{l}"] = np.zeros(fan_out)
        self.grads = {key: np.zeros_like(v) for key, v in self.params.items()}
        self._cache = None

    def forward(self, x, context=None):
        """Outputs ``(N, k D)``; output ``c D + i`` depends only on inputs generated before ``i``
        (and on all of ``context`` (N, C), required when ``context_dim > 0``)."""
        x = as_batch(x, self.dim, "x")
        context = as_context(context, self.context_dim, x.shape[0], "MADE")
        out, self._cache = made_forward(x, self.params, self.masks, self.activation, context)
        return out

    def backward(self, dout):
        """Backpropagate ``dout`` (N, k D) through the last forward; return ``dx``, fill grads.

        With a context, ``dx`` is (N, D + C): the features' gradient, then the context's."""
        if self._cache is None:
            raise RuntimeError("MADE.backward: call forward() first.")
        dx, self.grads = made_backward(dout, self._cache)
        return dx

    @staticmethod
    def param_shapes(dim, hidden, k, context_dim=0):
        sizes = [int(dim) + int(context_dim), *[int(h) for h in hidden], int(k) * int(dim)]
        return mlp_param_shapes(sizes)
