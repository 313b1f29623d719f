r"""Small images for flows: the 8x8 handwritten digits, uniform dequantization and bits/dim.

Pixels take a few integer values, and a continuous density on integers can grow without bound;
adding uniform noise makes the data continuous and turns the model's NLL into an upper bound on
the discrete one (Theis, van den Oord and Bethge 2016). :func:`bits_per_dim` counts the scaling
of that noise exactly once, so numbers compare with the literature's bits per dimension.

References
----------
.. [1] L. Theis, A. van den Oord and M. Bethge, "A note on the evaluation of generative
   models", ICLR 2016. arXiv:1511.01844
"""
import math
import numbers

import numpy as np

from nfscratch._validate import as_batch, as_rng, check_positive_int

__all__ = ["digits", "dequantize", "bits_per_dim", "digits_split", "heldout_bits_per_dim",
           "digit_classifier", "class_agreement"]


def digits():
    r"""The 1797 handwritten digits of 8x8 pixels with values 0..16, shipped with nfscratch.

    The UCI "Optical Recognition of Handwritten Digits" test set (Alpaydin & Kaynak 1998,
    CC BY 4.0; see ``nfscratch/data/README.md``), read from the package without network access
    and without pickle.

    Returns
    -------
    images : ndarray, shape (1797, 64), float64
        Row-major flattened 8x8 images, integer values 0..16.
    labels : ndarray, shape (1797,), int64

    Examples
    --------
    >>> images, labels = digits()
    >>> images.shape, int(images.max()), labels[:5].tolist()
    ((1797, 64), 16, [0, 1, 2, 3, 4])
    """
    from importlib.resources import files
    with files("nfscratch").joinpath("data/digits.npz").open("rb") as f:
        with np.load(f, allow_pickle=False) as npz:
            images, labels = npz["images"], npz["labels"]
    return images.reshape(len(images), -1).astype(np.float64), labels.astype(np.int64)


def dequantize(x, rng=None, levels=17):
    r"""Uniform dequantization onto the unit cube: ``(x + u) / levels``, ``u ~ U[0, 1)``.

    A continuous density on integer-valued pixels can put infinite density on the integers;
    adding uniform noise turns the data continuous, and the continuous NLL of the noisy data is
    an upper bound on the discrete NLL of the original (Theis et al. 2016, arXiv:1511.01844)
    once the ``levels`` scaling is counted (:func:`bits_per_dim`).

    Parameters
    ----------
    x : ndarray, shape (N, D)
        Integer pixel values in ``0 .. levels - 1``.
    rng : numpy.random.Generator or int
    levels : int
        Number of pixel values (17 for the digits).

    Returns
    -------
    ndarray, shape (N, D), values in [0, 1)
    """
    x = np.asarray(x)
    if x.dtype.kind in "iu":           # pixel values are integers: that is the point here
        x = x.astype(np.float64)
    x = as_batch(x, None, "x")
    levels = check_positive_int(levels, "levels")
    if np.any(x < 0) or np.any(x > levels - 1) or np.any(x != np.round(x)):
        raise ValueError(f"x: expected integer pixel values in 0..{levels - 1}, got values in "
                         f"[{x.min():g}, {x.max():g}].")
    return (x + as_rng(rng).random(x.shape)) / levels


def bits_per_dim(nll, dim, levels=17):
    r"""Turn a mean NLL in nats of dequantized data in [0, 1)^D into bits per dimension.

    .. math:: \mathrm{bpd} = \frac{\mathrm{NLL} + D \log(\mathrm{levels})}{D \log 2}

    The ``D log(levels)`` term undoes the division by ``levels`` (a change of variables), so
    the number is an upper bound on the discrete model's bits per pixel; ``log2(levels)``
    (4.09 for 17 levels) is what a uniform model over the pixel values achieves.
    """
    dim = check_positive_int(dim, "dim")
    levels = check_positive_int(levels, "levels")
    if isinstance(nll, (bool, np.bool_)) or not isinstance(nll, numbers.Real):
        raise TypeError(f"nll: expected a number (a mean NLL in nats), got {nll!r} "
                        f"({type(nll).__name__}).")
    return (float(nll) + dim * math.log(levels)) / (dim * math.log(2.0))


#: The digits split of the images issue (#14): the first 1000 images in the shipped order
#: train, the next 350 validate, the last 447 test.
DIGITS_SPLIT = (1000, 350, 447)


def digits_split():
    r"""The digits split into train (first 1000), validation (next 350) and test (last 447).

    Returns
    -------
    dict
        ``"train"``, ``"validation"``, ``"test"``: each a pair ``(images (M, 64), labels (M,))``
        of integer pixel values 0..16, in the shipped order.

    Examples
    --------
    >>> split = digits_split()
    >>> [len(split[k][0]) for k in ("train", "validation", "test")]
    [1000, 350, 447]
    """
    images, labels = digits()
    n_train, n_val, _ = DIGITS_SPLIT
    cuts = {"train": slice(0, n_train), "validation": slice(n_train, n_train + n_val),
            "test": slice(n_train + n_val, None)}
    return {k: (images[c], labels[c]) for k, c in cuts.items()}


def heldout_bits_per_dim(flow, images, draws=8, seed=0, levels=17, context=None):
    r"""Bits/dim of integer images under ``flow``, averaged over ``draws`` dequantizations.

    Each draw dequantizes every image with its own fixed seed (``seed + d`` for draw ``d``), so
    the number is reproducible and its dequantization noise averages out; the standard error
    is that of the per-image mean over the draws. A conditional flow needs ``context`` (one
    row per image, e.g. one-hot labels): the number is then ``-log2 q(x | y)`` per pixel.

    Returns
    -------
    bpd, se : float
        Mean bits/dim and its standard error over the images.
    """
    images = np.asarray(images)
    n, dim = images.shape
    draws = check_positive_int(draws, "draws")
    lp = np.mean([flow.log_prob(dequantize(images, seed + d, levels), context)
                  for d in range(draws)], axis=0)                    # (n,): per-image, averaged
    bpd = bits_per_dim(-float(np.mean(lp)), dim, levels)
    return bpd, float(np.std(lp) / math.sqrt(n) / (dim * math.log(2.0)))


def digit_classifier(images, labels, steps=2000, lr=0.5, weight_decay=1e-3):
    r"""A simple judge of digit images: multinomial logistic regression on the pixels / 16.

    Softmax regression ``p(k | x) = softmax(x W + b)_k``, ``W`` (64, 10), ``b`` (10,), by
    full-batch gradient descent on the mean cross-entropy plus ``weight_decay / 2 ||W||^2``:
    with ``P`` the predicted probabilities and ``Y`` the one-hot labels (N, 10), the gradient
    of the mean cross-entropy with respect to the logits is ``(P - Y) / N``.

    Parameters
    ----------
    images : ndarray, shape (N, 64)
        Pixel values on the 0..16 scale.
    labels : ndarray of int, shape (N,)

    Returns
    -------
    classify : callable
        ``classify(pixels (M, 64)) -> labels (M,)``, pixels on the 0..16 scale.

    Examples
    --------
    >>> train, test = digits_split()["train"], digits_split()["test"]
    >>> classify = digit_classifier(*train, steps=200)
    >>> float(np.mean(classify(test[0]) == test[1])) > 0.8
    True
    """
    X = as_batch(images, None, "images") / 16.0
    labels = np.asarray(labels)
    if labels.shape != (X.shape[0],) or labels.dtype.kind not in "iu":
        raise ValueError(f"labels: expected {X.shape[0]} integer class labels, got an array of "
                         f"shape {labels.shape} and dtype {labels.dtype}.")
    from ..models import one_hot       # here: models builds flows, which datasets need not load
    n_classes = int(labels.max()) + 1
    Y = one_hot(labels, n_classes)                                  # (N, K)
    W, b = np.zeros((X.shape[1], n_classes)), np.zeros(n_classes)
    for _ in range(check_positive_int(steps, "steps")):
        logits = X @ W + b                                          # (N, K)
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        d_logits = (p - Y) / len(X)
        W -= lr * (X.T @ d_logits + weight_decay * W)
        b -= lr * d_logits.sum(axis=0)
    return lambda pixels: (np.asarray(pixels) / 16.0 @ W + b).argmax(axis=1)


def class_agreement(flow, classify, n_per_class=100, temperature=1.0, seed=11, levels=17):
    r"""How often ``classify`` labels a class-conditional flow's samples as their condition.

    Draws ``n_per_class`` samples of every class ``k`` from ``flow`` (context: one-hot ``k``)
    with base noise ``z ~ N(0, T^2 I)``, maps them back to the pixel scale (undoing
    :func:`dequantize`'s ``(x + u) / levels`` at ``u = 1/2``) and classifies them.

    Returns
    -------
    agreement : float
        The fraction of all samples labelled as their conditioning class.
    per_class : ndarray, shape (K,)
        The same fraction class by class.
    """
    n_classes = flow.context_dim
    wanted = np.repeat(np.arange(n_classes), check_positive_int(n_per_class, "n_per_class"))
    z = temperature * as_rng(seed).normal(size=(wanted.size, flow.dim))
    from ..models import one_hot
    x, _ = flow.forward(z, one_hot(wanted, n_classes))
    pixels = np.clip(x * levels - 0.5, 0.0, levels - 1.0)
    agree = classify(pixels) == wanted
    return float(agree.mean()), agree.reshape(n_classes, -1).mean(axis=1)
