"""Ready-made flows: the architectures the demo, the benchmarks and the tutorials share.

Each builder returns a :class:`~nfscratch.flow.Flow`; all randomness of the initial parameters
comes from ``rng``.
"""
import numpy as np

from ._validate import as_rng, check_choice, check_positive_int
from .flow import Flow
from .transforms import (IAF, MAF, ActNorm, AdditiveCoupling, AffineCoupling, ElementwiseAffine,
                         FactorOut, IAFChain, Logit, LULinear, PlanarChain, Radial,
                         SplineAutoregressive, SplineCoupling)
from .transforms.made import uniform_biases

__all__ = ["realnvp", "nice", "planar_flow", "radial_flow", "realnvp_image", "maf", "iaf",
           "nsf_coupling", "nsf_autoregressive", "one_hot", "glow_like"]


def realnvp(dim=2, n_layers=8, hidden=(64, 64), activation="tanh", s_max=2.0, rng=None,
            context_dim=0):
    """A RealNVP stack: ``n_layers`` affine couplings with alternating masks.

    Alternating the mask parity between layers means every feature is transformed by every
    other layer; for D = 2 this is the "1 -> 64 -> 64 -> 2" conditioner architecture.
    ``context_dim = C > 0`` makes it conditional, ``q(x | y)`` with ``y`` of shape (N, C) read by
    every conditioner (see :func:`one_hot` for class labels).

    Examples
    --------
    >>> flow = realnvp(2, n_layers=4, hidden=[16], rng=0)
    >>> len(flow), flow.dim
    (4, 2)
    """
    rng = as_rng(rng)
    n_layers = check_positive_int(n_layers, "n_layers")
    return Flow([AffineCoupling(dim, hidden=hidden, activation=activation, s_max=s_max,
                                parity=k % 2, rng=rng, context_dim=context_dim)
                 for k in range(n_layers)])


def nice(dim=2, n_layers=4, hidden=(64, 64), activation="relu", rng=None):
    r"""NICE (Dinh, Krueger & Bengio 2014, arXiv:1410.8516): ``n_layers`` additive couplings
    with alternating masks and a learned diagonal scaling.

    Additive couplings have unit Jacobian determinant, so on their own they preserve volume and
    cannot make the density more concentrated than the base: the NLL of any such stack is at
    least the base's entropy. Section 3.3 of the paper adds a diagonal scaling ``S`` as the top
    layer of the data-to-latent map, ``h = S \odot g(x)``, which contributes
    :math:`\sum_j \log S_j` to the log-det. Here it is an
    :class:`~nfscratch.transforms.ElementwiseAffine` (log-scale and shift, both starting at
    zero) at the latent end: the first transform of the generative (forward) direction, the
    last of the normalizing (inverse) one.

    The paper's 4 couplings (of deep conditioners) leave a large gap in 2-D: each additive layer
    shifts one coordinate, so depth is what bends the density. On two moons (0.1) the gap to
    the entropy falls from 0.17 (4 layers) to 0.078 (8) and 0.047 (16 layers, 6000 steps of
    batch 512, lr 3e-3 with cosine decay: the recipe of ``nfscratch train --model nice`` and
    ``benchmarks/quality.py``; benchmarks/README.md).

    Examples
    --------
    >>> flow = nice(2, n_layers=4, hidden=[8], rng=0)
    >>> len(flow), type(flow[0]).__name__
    (5, 'ElementwiseAffine')
    """
    rng = as_rng(rng)
    n_layers = check_positive_int(n_layers, "n_layers")
    return Flow([ElementwiseAffine(dim)]
                + [AdditiveCoupling(dim, hidden=hidden, activation=activation, parity=k % 2,
                                    rng=rng) for k in range(n_layers)])


def planar_flow(dim=2, n_layers=32, rng=None):
    """``n_layers`` planar layers (Rezende & Mohamed 2015 used K = 2..32 on U1-U4).

    They are one :class:`~nfscratch.transforms.PlanarChain` (one kernel call per pass), with the
    parameters ``n_layers`` separate ``Planar(dim, rng)`` layers would draw; the flow still
    counts, indexes and plots them layer by layer.

    Examples
    --------
    >>> flow = planar_flow(2, n_layers=3, rng=0)
    >>> len(flow), type(flow[0]).__name__, len(flow.transforms)
    (3, 'Planar', 1)
    """
    rng = as_rng(rng)
    n_layers = check_positive_int(n_layers, "n_layers")
    return Flow([PlanarChain(dim, n_layers, rng=rng)])


def radial_flow(dim=2, n_layers=8, rng=None):
    """``n_layers`` radial layers, each contracting or expanding space around its own centre.

    Examples
    --------
    >>> flow = radial_flow(2, n_layers=3, rng=0)
    >>> len(flow), flow.dim
    (3, 2)
    """
    rng = as_rng(rng)
    n_layers = check_positive_int(n_layers, "n_layers")
    return Flow([Radial(dim, rng=rng) for _ in range(n_layers)])


def checkerboard_mask(height, width, parity=0):
    """A flattened ``height x width`` checkerboard of 0/1 (RealNVP's spatial mask)."""
    i, j = np.indices((height, width))
    return ((i + j + parity) % 2 == 0).astype(np.int64).ravel()


def realnvp_image(height=8, width=8, n_layers=6, hidden=(256,), s_max=2.0, alpha=0.005,
                  rng=None, context_dim=0):
    """A RealNVP for small images with values in [0, 1]: affine couplings with alternating
    checkerboard masks, then a :class:`~nfscratch.transforms.Logit` layer onto the unit cube.

    The conditioner is a fully connected MLP over the masked pixels (the images are tiny, so
    no convolutions are needed to make the point). ``context_dim = C > 0``: class-conditional
    (e.g. ``C = 10`` with ``one_hot(labels, 10)``); the Logit layer reads no context.

    ``alpha`` is the Logit layer's margin. RealNVP used 0.05; on the 8x8 digits, whose pixels
    are 0 half of the time, 0.005 is better on held-out images: 2.156 and 2.165 bits/dim
    against 2.226 and 2.243 at 0.05 (two seeds of ``benchmarks/quality.py``'s digits recipe),
    and 2.176 against 2.275 bits/dim given the label for tutorial 11's class-conditional model
    (benchmarks/README.md).

    Examples
    --------
    >>> flow = realnvp_image(4, 4, n_layers=2, hidden=[8], rng=0)
    >>> len(flow), flow.dim, type(flow[-1]).__name__
    (3, 16, 'Logit')
    """
    rng = as_rng(rng)
    n_layers = check_positive_int(n_layers, "n_layers")
    dim = check_positive_int(height, "height") * check_positive_int(width, "width")
    layers = [AffineCoupling(dim, mask=checkerboard_mask(height, width, k % 2), hidden=hidden,
                             s_max=s_max, rng=rng, context_dim=context_dim)
              for k in range(n_layers)]
    return Flow(layers + [Logit(dim, alpha=alpha)])


def _autoregressive(cls, dim, n_layers, orders, seed, rng, **layer_options):
    rng = as_rng(rng)
    n_layers = check_positive_int(n_layers, "n_layers")
    if orders not in ("reverse", "random"):
        raise ValueError(f"orders: expected 'reverse' (natural and reversed orders alternate) or "
                         f"'random' (a random permutation per layer), got {orders!r}.")
    layers = []
    for k in range(n_layers):
        order = "random" if orders == "random" else ("natural", "reverse")[k % 2]
        layers.append(cls(dim, order=order, seed=seed + k, rng=rng, **layer_options))
    return Flow(layers)


def maf(dim=2, n_layers=5, hidden=(64, 64), activation="tanh", s_max=2.0, orders="reverse",
        seed=0, rng=None, context_dim=0):
    """A stack of MAF layers (density in one pass per layer, sampling in D passes per layer).

    Consecutive layers use reversed orders (``orders="reverse"``, as zuko's MAF does), or each a
    random permutation drawn from ``seed + k`` (``orders="random"``), so that every feature is
    conditioned on every other one somewhere in the stack -- the autoregressive counterpart of
    the permutations between coupling layers. ``context_dim = C > 0``: conditional, every MADE
    also reads a context (N, C) (hidden widths >= D then).

    Examples
    --------
    >>> flow = maf(2, n_layers=3, hidden=[8], rng=0)
    >>> len(flow), [t.order.tolist() for t in flow]
    (3, [[0, 1], [1, 0], [0, 1]])
    """
    return _autoregressive(MAF, dim, n_layers, orders, seed, rng, hidden=hidden,
                           activation=activation, s_max=s_max, context_dim=context_dim)


def iaf(dim=2, n_layers=5, hidden=(64, 64), activation="tanh", s_max=2.0, orders="reverse",
        seed=0, rng=None, context_dim=0, bias_init="zero"):
    """A stack of IAF layers (sampling with log-det in one pass per layer, density in D passes);
    the layers' orders and ``context_dim`` as in :func:`maf`.

    ``bias_init="uniform"`` then draws every MADE bias from ``rng``, layer after layer, from
    ``U(-1/sqrt(n), 1/sqrt(n))`` with ``n`` the width of the bias's layer input
    (:func:`~nfscratch.transforms.made.uniform_biases`, which says why); the layers then start
    near, not at, the identity. ``"zero"`` keeps them at 0.

    Examples
    --------
    >>> flow = iaf(3, n_layers=2, hidden=[8], rng=0)
    >>> type(flow[0]).__name__, flow[1].order.tolist()
    ('IAF', [2, 1, 0])

    Unconditional, the layers are one :class:`~nfscratch.transforms.IAFChain` (the one pass of
    all layers in one kernel call), with the parameters the separate layers would draw; the flow
    still counts, indexes and plots them layer by layer.
    """
    check_choice(bias_init, "bias_init", ("zero", "uniform"))
    rng = as_rng(rng)
    if not context_dim and orders in ("reverse", "random"):
        flow = Flow([IAFChain(dim, check_positive_int(n_layers, "n_layers"), hidden, activation,
                              s_max, orders, seed=seed, rng=rng)])
    else:
        flow = _autoregressive(IAF, dim, n_layers, orders, seed, rng, hidden=hidden,
                               activation=activation, s_max=s_max, context_dim=context_dim)
    if bias_init == "uniform":
        for layer in flow:      # a chain's layers are views of its parameters: drawn in place
            uniform_biases(layer.params, rng)
    return flow


def nsf_coupling(dim=2, n_layers=5, hidden=(64, 64), n_bins=8, bound=5.0, activation="tanh",
                 rng=None, context_dim=0, **spline_options):
    """A neural spline flow: ``n_layers`` rational-quadratic spline couplings, alternating masks.

    Every layer starts as the identity (zero last conditioner layer). ``spline_options`` are
    ``min_width``, ``min_height``, ``min_derivative`` of
    :class:`~nfscratch.transforms.SplineCoupling`. The data should lie mostly in
    ``[-bound, bound]``: outside, the layers are the identity. ``context_dim = C > 0``:
    conditional, as in :func:`realnvp`.

    Examples
    --------
    >>> flow = nsf_coupling(2, n_layers=3, hidden=[16], n_bins=4, rng=0)
    >>> len(flow), flow.dim, flow[0].name
    (3, 2, 'SplineCoupling')
    """
    rng = as_rng(rng)
    n_layers = check_positive_int(n_layers, "n_layers")
    return Flow([SplineCoupling(dim, hidden=hidden, activation=activation, n_bins=n_bins,
                                bound=bound, parity=k % 2, rng=rng, context_dim=context_dim,
                                **spline_options)
                 for k in range(n_layers)])


def nsf_autoregressive(dim=2, n_layers=5, hidden=(64, 64), n_bins=8, bound=5.0,
                       activation="tanh", orders="reverse", seed=0, rng=None, bias_init="zero",
                       **spline_options):
    """An autoregressive neural spline flow: ``n_layers``
    :class:`~nfscratch.transforms.SplineAutoregressive` layers (density in one MADE pass per
    layer, sampling in D passes per layer).

    Every layer transforms every feature and starts as the identity; consecutive layers use
    reversed orders (``orders="reverse"``) or each a random permutation from ``seed + k``
    (``orders="random"``), as in :func:`maf`. The arguments are those of :func:`nsf_coupling`;
    the data should lie mostly in ``[-bound, bound]``. ``bias_init="uniform"`` then draws every
    MADE bias from ``rng`` as PyTorch does
    (:meth:`~nfscratch.transforms.SplineAutoregressive.uniform_biases`; the splines then start
    near, not at, the identity); ``"zero"`` keeps them at 0.

    Examples
    --------
    >>> flow = nsf_autoregressive(2, n_layers=3, hidden=[16], n_bins=4, rng=0)
    >>> flow[0].name, [t.order.tolist() for t in flow]
    ('SplineAutoregressive', [[0, 1], [1, 0], [0, 1]])
    """
    check_choice(bias_init, "bias_init", ("zero", "uniform"))
    rng = as_rng(rng)
    flow = _autoregressive(SplineAutoregressive, dim, n_layers, orders, seed, rng,
                           hidden=hidden, n_bins=n_bins, bound=bound, activation=activation,
                           **spline_options)
    if bias_init == "uniform":
        for t in flow.transforms:
            t.uniform_biases(rng)
    return flow


def one_hot(labels, n_classes):
    """Class labels (N,) of integers in ``0..n_classes-1`` as a float64 context (N, n_classes).

    The usual context of a class-conditional flow: row ``n`` is 1 in column ``labels[n]``.

    Examples
    --------
    >>> one_hot([2, 0], 3).tolist()
    [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]
    """
    n_classes = check_positive_int(n_classes, "n_classes")
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.dtype.kind not in "iu" or labels.size == 0:
        raise ValueError(f"labels: expected a non-empty 1-D array of integer class labels, got "
                         f"an array of shape {labels.shape} and dtype {labels.dtype}.")
    if labels.min() < 0 or labels.max() >= n_classes:
        raise ValueError(f"labels: expected integers in 0..{n_classes - 1}, got values from "
                         f"{labels.min()} to {labels.max()}.")
    out = np.zeros((labels.size, n_classes))
    out[np.arange(labels.size), labels] = 1.0
    return out


def _glow_step(dim, mask, hidden, s_max, coupling, n_bins, bound, lu, rng, context_dim):
    """One Glow step in forward order: coupling, then LU mixing (if ``lu``), then ActNorm (so
    the normalizing direction runs ActNorm -> LU -> coupling, as in Glow)."""
    if coupling == "affine":
        layer = AffineCoupling(dim, mask=mask, hidden=hidden, s_max=s_max, rng=rng,
                               context_dim=context_dim)
    else:
        layer = SplineCoupling(dim, mask=mask, hidden=hidden, n_bins=n_bins, bound=bound, rng=rng,
                               context_dim=context_dim)
    return [layer, LULinear(dim, rng=rng), ActNorm(dim)] if lu else [layer, ActNorm(dim)]


def glow_like(height=8, width=8, channels=1, levels=2, n_steps=4, hidden=(256,), s_max=2.0,
              coupling="affine", n_bins=8, bound=4.0, alpha=0.05, rng=None, lu=True,
              context_dim=0):
    r"""A multi-scale flow for small images in [0, 1] (Glow / RealNVP, fully connected).

    Read in the normalizing direction (data to base), as in the papers: a
    :class:`~nfscratch.transforms.Logit` maps the unit cube to R^D; then each level runs
    ``n_steps`` Glow steps (ActNorm, an invertible LU-parametrized linear map, a coupling
    whose conditioner is an MLP over the conditioning half), squeezes the ``(C, H, W)`` image
    to ``(4C, H/2, W/2)`` and factors out half of the channels to the base; the last level only
    runs its steps. The first level's couplings use checkerboard masks, the later ones split
    the channels. The returned flow lists the same layers in forward (base to data) order.

    Parameters
    ----------
    height, width, channels : int
        The image shape ``(C, H, W)``; ``D = C H W``. ``H`` and ``W`` must be divisible by
        ``2 ** (levels - 1)``.
    levels : int
        Number of scales; each level but the last ends with a squeeze and a factor-out.
    n_steps : int or sequence of int
        Glow steps per level (one number for every level, or one per level).
    hidden : sequence of int
        Hidden widths of the conditioner MLPs.
    coupling : {"affine", "spline"}
        RealNVP affine couplings (``s_max`` bounds their log-scale) or rational-quadratic
        spline couplings (``n_bins`` bins on ``[-bound, bound]``).
    alpha : float
        The Logit layer's margin.
    rng : numpy.random.Generator or int, optional
    lu : bool
        Put an LU linear map in every step (Glow). ``False`` leaves it out, so the steps are
        RealNVP's: ActNorm and a coupling, the alternating masks doing the mixing. The LU map
        mixes all ``D`` features of a level at ``O(D^2)`` per sample, which dominates the cost of
        small conditioners.
    context_dim : int
        ``C > 0``: class-conditional, ``p(x | y)``: every coupling's conditioner also reads a
        context ``y`` (N, C), e.g. ``one_hot(labels, 10)``, at every level (the factor-outs
        hand it to the couplings of the deeper levels); ActNorm, LU, squeeze and Logit read
        none. 0 (default): unconditional.

    Examples
    --------
    >>> flow = glow_like(4, 4, levels=2, n_steps=1, hidden=[8], rng=0)
    >>> [t.name for t in flow.transforms]
    ['FactorOut', 'Permute', 'AffineCoupling', 'LULinear', 'ActNorm', 'Logit']
    >>> flow[0].keep.size, flow.dim
    (8, 16)
    >>> cond = glow_like(4, 4, levels=2, n_steps=1, hidden=[8], rng=0, context_dim=10)
    >>> cond.sample(2, rng=0, context=one_hot([3, 7], 10)).shape
    (2, 16)
    """
    from .transforms.multiscale import squeeze
    rng = as_rng(rng)
    C, H, W = (check_positive_int(channels, "channels"), check_positive_int(height, "height"),
               check_positive_int(width, "width"))
    levels = check_positive_int(levels, "levels")
    steps = [n_steps] * levels if np.ndim(n_steps) == 0 else list(n_steps)
    if len(steps) != levels:
        raise ValueError(f"n_steps: expected one number or {levels} (one per level), got {n_steps!r}.")
    steps = [check_positive_int(n, "n_steps") for n in steps]
    if coupling not in ("affine", "spline"):
        raise ValueError(f"coupling: expected 'affine' or 'spline', got {coupling!r}.")
    if H % 2 ** (levels - 1) or W % 2 ** (levels - 1):
        raise ValueError(f"levels: {levels} levels squeeze {levels - 1} times and need height and "
                         f"width divisible by {2 ** (levels - 1)}, got {H} x {W}.")

    def level(k, C, H, W):
        """The layers of level k and below, in forward order, for a (C, H, W) input."""
        D = C * H * W
        masks = [checkerboard_mask(H, W, j % 2) if C == 1 else
                 np.repeat(np.arange(C) < C // 2 if j % 2 == 0 else np.arange(C) >= C // 2,
                           H * W).astype(np.int64) for j in range(steps[k])]
        body = [_glow_step(D, masks[j], hidden, s_max, coupling, n_bins, bound, lu, rng,
                           context_dim) for j in range(steps[k])]
        flow_order = [layer for j in reversed(range(steps[k]))  # the last normalizing step first
                      for layer in body[j]]
        if k == levels - 1:
            return flow_order
        # squeeze to (4C, H/2, W/2); the first 2C channels go on, the other 2C go to the base
        inner = level(k + 1, 2 * C, H // 2, W // 2)
        keep = np.arange(2 * C * (H // 2) * (W // 2))
        return [FactorOut(D, keep, inner), squeeze(C, H, W)] + flow_order

    return Flow(level(0, C, H, W) + [Logit(C * H * W, alpha=alpha)])
