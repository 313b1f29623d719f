r"""Why structure makes log-dets cheap: one transform's Jacobian at one point, and what it costs.

A flow needs :math:`\log|\det J|` of every layer for every sample. For a dense :math:`D \times D`
Jacobian that is an LU factorization, about :math:`\tfrac23 D^3` flops; the layers in nfscratch
are built so that it is :math:`O(D)`:

* coupling: with the features ordered (conditioning ``a``, transformed ``b``) the Jacobian is
  block lower triangular, :math:`\begin{pmatrix} I & 0 \\ \partial x_b/\partial z_a &
  \operatorname{diag}(e^{s}) \end{pmatrix}`, so :math:`\log|\det J| = \sum_j s_j`; the dense
  block never has to be formed;
* planar: :math:`J = I + \hat u\,\psi^\top` is the identity plus a rank-one matrix, so by the
  matrix determinant lemma :math:`\det J = 1 + \psi^\top \hat u`;
* radial: :math:`J = g\,I + g'(r)\, d\,d^\top / r` is a scaled identity plus a rank-one
  matrix along the ray ``d = z - z0``, so its log-det is :math:`(D-1)\log g + \log q` in O(D);
* elementwise affine: diagonal; permutations: :math:`|\det J| = 1`.

The picture computes the Jacobian by central differences (the way a student would check it),
shows it as a heatmap, shows the structure, and compares ``slogdet`` of that matrix with the
layer's own cheap log-det, beside the flop counts of the two routes over a sweep of D.
"""
import numpy as np
from matplotlib.patches import Rectangle

from .._validate import as_float_array
from ..gradcheck import numerical_jacobian as _central_difference_jacobian
from ._common import SIGNED_CMAP, signed_norm, styled

__all__ = ["numerical_jacobian", "plot_jacobian", "logdet_flops"]


def numerical_jacobian(transform, point, direction="forward", eps=1e-6):
    r"""Central-difference Jacobian of one transform at one point, and the layer's own log-det.

    The differences are :func:`nfscratch.gradcheck.numerical_jacobian` of the single-sample map.

    Parameters
    ----------
    transform : Transform
    point : array_like, shape (D,)
    direction : {"forward", "inverse"}
    eps : float

    Returns
    -------
    J : ndarray, shape (D, D)
        ``J[i, j] = d out_i / d in_j``.
    log_det : float
        The transform's own log-det at ``point`` in that direction.

    Examples
    --------
    >>> from nfscratch.transforms import ElementwiseAffine
    >>> t = ElementwiseAffine(2)
    >>> t.params["log_scale"][:] = [np.log(2.0), 0.0]
    >>> J, log_det = numerical_jacobian(t, [1.0, 1.0])
    >>> np.round(J, 6).tolist(), round(log_det, 6)
    ([[2.0, 0.0], [0.0, 1.0]], 0.693147)
    """
    if direction not in ("forward", "inverse"):
        raise ValueError(f"direction: expected 'forward' or 'inverse', got {direction!r}.")
    p = as_float_array(point, "point")
    D = transform.dim
    if p.shape != (D,):
        raise ValueError(f"point: expected one point of shape ({D},) for this {D}-D transform, "
                         f"got shape {p.shape}.")
    run = transform.forward if direction == "forward" else transform.inverse
    J = _central_difference_jacobian(lambda v: run(v[None, :])[0][0], p, eps)   # (D, D)
    log_det = float(run(p[None, :])[1][0])
    return J, log_det


def logdet_flops(D, structure):
    """Rough flop count of ``log|det J|`` for a D x D Jacobian of the given structure.

    ``"dense"``: LU, ``2/3 D^3``. ``"coupling"``: a sum of ``D/2`` log-scales. ``"planar"``: the
    dot product ``psi . u_hat`` (``2 D``) plus a log. ``"diagonal"``: ``D`` logs and adds.
    ``"radial"``: the distance ``r`` (``2 D``) plus a few scalar operations.
    ``"permutation"``: 0. ``"autoregressive"``: a sum of ``D`` log-scales.
    """
    D = np.asarray(D, dtype=np.float64)
    table = {"dense": 2.0 / 3.0 * D ** 3, "coupling": np.maximum(D / 2.0, 1.0),
             "planar": 2.0 * D + 1.0, "radial": 2.0 * D + 4.0, "diagonal": 2.0 * D,
             "permutation": np.zeros_like(D), "autoregressive": D}
    if structure not in table:
        raise ValueError(f"structure: expected one of {sorted(table)}, got {structure!r}.")
    return table[structure]


def _structure_of(transform):
    name = transform.name
    if hasattr(transform, "mask"):
        return "coupling"
    if hasattr(transform, "order") and hasattr(transform, "masks"):   # MAF, IAF (MADE-based)
        return "autoregressive"
    if name == "Planar":
        return "planar"
    if name == "Radial":
        return "radial"
    if name == "ElementwiseAffine":
        return "diagonal"
    if name in ("Permute", "Reverse"):
        return "permutation"
    return "dense"


def _heatmap(ax, M, labels, title, annotate):
    norm = signed_norm(M)
    lim = norm.vmax
    im = ax.imshow(M, cmap=SIGNED_CMAP, norm=norm, interpolation="nearest")
    D = M.shape[0]
    ax.set_xticks(range(D), labels=labels, fontsize="small")
    ax.set_yticks(range(D), labels=labels, fontsize="small")
    ax.set_title(title, fontsize="medium")
    if annotate:
        for i in range(D):
            for j in range(D):
                v = M[i, j]
                txt = "0" if abs(v) < 5e-7 else f"{v:.2f}"
                ax.text(j, i, txt, ha="center", va="center", fontsize="x-small",
                        color="white" if abs(v) > 0.6 * lim else "black")
    return im


@styled
def plot_jacobian(transform, point=None, *, direction="forward", rng=0, max_dim=1024):
    r"""Heatmap of one transform's Jacobian at one point, its structure, and the cost of its log-det.

    Parameters
    ----------
    transform : Transform
        Any transform; dimensions 2 to ~16 read best.
    point : array_like, shape (D,), optional
        Default: a standard-normal draw from ``rng``.
    direction : {"forward", "inverse"}
    rng : Generator or int
    max_dim : int
        Largest D of the flop sweep.

    Returns
    -------
    matplotlib.figure.Figure
        Three panels: the Jacobian; its structure (for a coupling the features reordered so the
        blocks show; for planar ``J - I``, which is rank one); flops of ``log|det J|``, dense
        versus structured, against D.
    """
    from ._common import new_figure

    if not hasattr(transform, "forward") or not hasattr(transform, "dim"):
        raise TypeError(f"transform: expected an nfscratch Transform, got {type(transform).__name__}.")
    D = transform.dim
    if point is None:
        point = np.random.default_rng(rng).standard_normal(D)
    J, log_det = numerical_jacobian(transform, point, direction)
    sign, slog = np.linalg.slogdet(J)
    structure = _structure_of(transform)
    annotate = D <= 6
    names = [f"{i + 1}" for i in range(D)]
    sym_in, sym_out = ("z", "x") if direction == "forward" else ("x", "z")

    fig = new_figure(13.0, 4.3)
    axes = fig.subplots(1, 3)
    im = _heatmap(axes[0], J, names,
                  f"Jacobian $\\partial {sym_out}/\\partial {sym_in}$ of {transform.name} "
                  f"({direction})\nat one point, by central differences", annotate)
    axes[0].set_xlabel(f"input feature (${sym_in}_j$)")
    axes[0].set_ylabel(f"output feature (${sym_out}_i$)")
    fig.colorbar(im, ax=axes[0], shrink=0.8)

    ax = axes[1]
    if structure == "coupling":
        mask = np.asarray(transform.mask)
        order = np.concatenate([np.flatnonzero(mask == 1), np.flatnonzero(mask == 0)])
        d_a = int(mask.sum())
        _heatmap(ax, J[np.ix_(order, order)], [names[i] for i in order],
                 "same matrix, features reordered (conditioning a | transformed b):\n"
                 "block lower triangular", annotate)
        for (r, c, h, w, label) in ((0, 0, d_a, d_a, "I"), (0, d_a, d_a, D - d_a, "0"),
                                    (d_a, 0, D - d_a, d_a, "dense\n(never needed)"),
                                    (d_a, d_a, D - d_a, D - d_a, "diag(exp s)")):
            ax.add_patch(Rectangle((c - 0.5, r - 0.5), w, h, fill=False, ec="k", lw=1.5))
            if not annotate:   # labels of diagonal blocks sit off the diagonal
                fx, fy = {"I": (0.28, 0.72), "diag(exp s)": (0.68, 0.25)}.get(label, (0.5, 0.5))
                ax.text(c - 0.5 + fx * w, r - 0.5 + fy * h, label, ha="center", va="center",
                        fontsize="medium", weight="bold", color="k",
                        bbox=dict(fc="white", ec="none", alpha=0.7))
        formula = r"log|det J| = $\sum_j s_j$ (the diagonal of the b block)"
    elif structure == "autoregressive":
        order = np.asarray(transform.order)
        _heatmap(ax, J[np.ix_(order, order)], [names[i] for i in order],
                 "same matrix, features in the autoregressive order:\nlower triangular", annotate)
        formula = r"log|det J| = $\pm\sum_i s_i$ (the diagonal: $e^{\pm s_i}$)"
    elif structure == "planar":
        R = J - np.eye(D)
        sv = np.linalg.svd(R, compute_uv=False)
        _heatmap(ax, R, names, "J − I = $\\hat u\\,\\psi^T$: rank one\n"
                 f"singular values {sv[0]:.2f}, then ≤ {sv[1:].max() if D > 1 else 0:.0e}",
                 annotate)
        formula = r"log|det J| = log|1 + $\psi^T \hat u$| (matrix determinant lemma)"
    elif structure == "radial":
        # the factor g across the ray is the most repeated eigenvalue: the median one
        g = float(np.median(np.linalg.eigvals(J).real))
        R = J - g * np.eye(D)
        sv = np.linalg.svd(R, compute_uv=False)
        _heatmap(ax, R, names, f"J − g I (g = {g:.3f}) = $g'\\,d\\,d^T/r$: rank one\n"
                 f"singular values {sv[0]:.2f}, then ≤ {sv[1:].max() if D > 1 else 0:.0e}",
                 annotate)
        formula = r"log|det J| = (D − 1) log g + log q (g across the ray, q along it)"
    else:
        pattern = (np.abs(J) > 1e-7).astype(float)
        ax.imshow(pattern, cmap="Greys", vmin=0, vmax=1.3, interpolation="nearest")
        ax.set_xticks(range(D), labels=names, fontsize="small")
        ax.set_yticks(range(D), labels=names, fontsize="small")
        ax.set_title(f"non-zero pattern ({structure})", fontsize="medium")
        formula = {"diagonal": r"log|det J| = $\sum_j \log|a_j|$",
                   "permutation": "|det J| = 1, log-det 0"}.get(structure, "dense: LU needed")
    ax.set_xlabel(formula, fontsize="medium")

    ax = axes[2]
    Ds = np.unique(np.round(np.logspace(np.log10(2), np.log10(max(max_dim, D + 1)), 40)).astype(int))
    ax.loglog(Ds, logdet_flops(Ds, "dense"), lw=2, label=r"dense LU ($\frac{2}{3}D^3$)")
    if structure not in ("dense", "permutation"):
        ax.loglog(Ds, logdet_flops(Ds, structure), lw=2, label=f"{structure} ($O(D)$)")
        ax.plot([D, D], [logdet_flops(D, structure), logdet_flops(D, "dense")], "k:", lw=1)
        ax.plot([D], [logdet_flops(D, structure)], "ko", ms=4)
    ax.plot([D], [logdet_flops(D, "dense")], "ko", ms=4, label=f"this layer, D = {D}")
    ax.set_xlabel("dimension D")
    ax.set_ylabel("flops per sample for log|det J|")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small", loc="upper left")
    ax.set_title("cost of the log-det", fontsize="medium")
    agree = abs(slog - log_det)
    fig.suptitle(f"{transform.name}, D = {D}: slogdet of the {D}x{D} matrix = {slog:+.6f}"
                 f"{'' if sign > 0 else ' (negative det)'};  the layer's O(D) log-det = "
                 f"{log_det:+.6f}  (differ by {agree:.1e})", fontsize="medium")
    fig.jacobian = J
    return fig
