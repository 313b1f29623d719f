r"""Exercise 5 -- MADE: the masks from the degrees, and the masked backward pass.

MADE (Germain et al., 2015) makes an MLP autoregressive by multiplying each weight matrix
elementwise by a binary mask. Every unit has a degree (tutorial 08, section 2):

* input ``j``: its position in the order, ``m(j)`` in ``1..D``;
* hidden unit: the largest input degree it may depend on, in ``1..D-1``;
* output: each input feature has ``k`` outputs, in ``k`` blocks of D columns; output
  ``c D + i`` has the degree of input ``i``.

A weight from a unit of degree ``m_in`` into a hidden unit of degree ``m_out`` is kept iff
``m_out >= m_in``; a weight into an output iff ``m_out > m_in`` (output ``i`` must not see input
``i`` itself). A mask has the shape of its weight matrix, ``(fan_in, fan_out)``, entries 0.0/1.0.

Forward, per layer ``l`` (tanh after every layer but the last):

.. math:: h_{l+1} = \tanh(h_l (W_l \odot M_l) + b_l).

Your tasks:

1. ``hidden_mask(m_in, m_out)`` and ``output_mask(m_prev, m_inputs, k)``;
2. ``made_backward(dout, cache)``: the backward pass of ``made_forward`` below, returning
   ``(dx, grads)`` with ``grads`` keyed like the params (``W0, b0, W1, ...``). Only the product
   ``W ⊙ M`` is used, so think about what that means for ``dW``.

Check your work with::

    nfscratch exercises check ex5_made.py

Reference: Germain, Gregor, Murray, Larochelle, "MADE: Masked Autoencoder for Distribution
Estimation", ICML 2015, arXiv:1502.03509.
"""
import numpy as np

EXERCISE = "made"


def hidden_mask(m_in, m_out):
    """Mask ``(len(m_in), len(m_out))`` of a layer into hidden units: 1.0 where a unit of degree
    ``m_out[b]`` may read a unit of degree ``m_in[a]``."""
    ### BEGIN SOLUTION
    ### HINT 1: A hidden unit of degree d may depend on every input of degree up to d, including d itself.
    ### HINT 2: M[a, b] = 1 if m_out[b] >= m_in[a] else 0.
    ### HINT 3: Broadcast a column against a row: m_out[None, :] >= m_in[:, None] has shape (len(m_in), len(m_out)); return it as float64.
    return (m_out[None, :] >= m_in[:, None]).astype(np.float64)
    ### END SOLUTION


def output_mask(m_prev, m_inputs, k):
    """Mask ``(len(m_prev), k D)`` of the output layer; ``m_inputs`` (D,) are the input degrees."""
    ### BEGIN SOLUTION
    ### HINT 1: An output must not see its own input: the inequality is strict here. And there are k outputs per feature.
    ### HINT 2: M[a, c D + i] = 1 if m(i) > m_prev[a] else 0, for every copy c = 0..k-1.
    ### HINT 3: The outputs' degrees are the inputs' degrees repeated k times (np.tile), a row of length k D; compared with m_prev as a column it gives (len(m_prev), k D).
    m_out = np.tile(m_inputs, k)                                # (k D,)
    return (m_out[None, :] > m_prev[:, None]).astype(np.float64)
    ### END SOLUTION


def made_masks(degrees, k):
    """All masks from the degrees ``[m_inputs, m_hidden_1, ...]`` (given; uses your two functions)."""
    masks = [hidden_mask(a, b) for a, b in zip(degrees[:-1], degrees[1:])]
    return masks + [output_mask(degrees[-1], degrees[0], k)]


def made_forward(x, params, masks):
    """MADE forward for ``x`` (N, D); returns ``(out (N, k D), cache)`` (given)."""
    caches = []
    h = x
    for l, M in enumerate(masks):
        W = params[f"W{l}"] * M                                 # (fan_in, fan_out)
        pre = h @ W + params[f"b{l}"]
        caches.append((h, W, M))                                # the layer's input, W ⊙ M, M
        h = np.tanh(pre) if l < len(masks) - 1 else pre
        if l < len(masks) - 1:
            caches[-1] = caches[-1] + (h,)                      # and its tanh output
    return h, caches


def made_backward(dout, cache):
    """Given ``dout`` (N, k D), return ``(dx, grads)``.

    ``cache[l]`` is ``(h_in, W_masked, M)`` for the last layer and ``(h_in, W_masked, M, h_out)``
    for the others, where ``h_out = tanh(pre)``.
    """
    ### BEGIN SOLUTION
    ### HINT 1: Walk the layers backwards as in exercise 1; the only new thing is that the layer used W ⊙ M, not W.
    ### HINT 2: dpre = dh (1 - h_out^2) (not for the last layer); dW = (h_in^T dpre) ⊙ M, db = sum_n dpre, dh_in = dpre (W ⊙ M)^T.
    ### HINT 3: h_in (N, fan_in), dpre (N, fan_out): h_in.T @ dpre is (fan_in, fan_out) like W and M; dpre @ W_masked.T is (N, fan_in).
    grads = {}
    dh = dout                                                   # (N, k D)
    for l in reversed(range(len(cache))):
        h_in, W, M = cache[l][:3]
        dpre = dh if l == len(cache) - 1 else dh * (1.0 - cache[l][3] ** 2)
        grads[f"W{l}"] = (h_in.T @ dpre) * M                    # only W ⊙ M acts on the output
        grads[f"b{l}"] = dpre.sum(axis=0)
        dh = dpre @ W.T                                         # W is already W ⊙ M
    return dh, grads
    ### END SOLUTION
