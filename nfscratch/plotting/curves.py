r"""Training pictures: the loss against its known limit, and per-layer diagnostics.

Two numbers bound what training can reach, and a curve is easier to read with them drawn:

* maximum likelihood: the test NLL satisfies :math:`E_p[-\log q] = H(p) + KL(p\|q) \ge H(p)`,
  so the data's entropy (``datasets.entropy(name)``, where known) is a floor no model crosses;
* reverse KL: with the target's ``log Z`` the loss becomes :math:`KL(q\|p) \ge 0`, so the floor
  is 0.

The per-layer diagnostics are what one looks at when training goes wrong: the distribution of
each layer's log-det (a layer with a huge or collapsing log-det is blowing up or squashing
space) and the size of each layer's parameter gradients over training (vanishing in the first
layers, or exploding just before a NaN).
"""
import matplotlib
import numpy as np
from matplotlib.colors import LogNorm

from .._validate import as_batch
from ._common import MAGNITUDE_CMAP, SIGNED_CMAP, new_figure, signed_norm, styled

__all__ = ["training_curves", "layer_diagnostics", "moving_average"]

# matplotlib 3.10 renamed boxplot's vert=False to orientation="horizontal"
_HORIZONTAL = ({"orientation": "horizontal"}
               if tuple(int(v) for v in matplotlib.__version__.split(".")[:2]) >= (3, 10)
               else {"vert": False})


def moving_average(y, window):
    """Trailing mean over ``window`` steps, same length as ``y``, skipping NaN entries.

    Entries whose window holds no finite value are NaN (e.g. annealed steps, where the loss is
    not a KL to the target).

    Examples
    --------
    >>> moving_average([1.0, 3.0, np.nan, 5.0], 2).tolist()
    [1.0, 2.0, 3.0, 5.0]
    """
    y = np.asarray(y, dtype=np.float64)
    window = max(1, int(window))
    ok = np.isfinite(y)
    c = np.concatenate([[0.0], np.cumsum(np.where(ok, y, 0.0))])
    n = np.concatenate([[0], np.cumsum(ok)])
    idx = np.arange(1, y.size + 1)
    lo = np.maximum(0, idx - window)
    count = n[idx] - n[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, (c[idx] - c[lo]) / np.maximum(count, 1), np.nan)


def _as_histories(histories):
    if isinstance(histories, dict):
        items = list(histories.items())
    elif isinstance(histories, (list, tuple)):
        items = [(f"run {i}", h) for i, h in enumerate(histories)]
    else:
        items = [(None, histories)]
    if not items:
        raise ValueError("histories: expected a History, a list or a dict of them, got an empty one.")
    for name, h in items:
        if not hasattr(h, "loss") or not hasattr(h, "objective"):
            raise TypeError(f"histories: expected nfscratch.train.History objects, got "
                            f"{type(h).__name__}" + (f" for {name!r}" if name else "") + ".")
        if len(h.loss) == 0:
            raise ValueError("histories: " + (f"{name!r} " if name else "") + "has no recorded "
                             "steps (an empty History); train for at least one step.")
    objectives = {h.objective for _, h in items}
    if len(objectives) != 1:
        raise ValueError(f"histories: expected one objective to share an axis, got {sorted(objectives)}.")
    return items, objectives.pop()


@styled
def training_curves(histories, *, entropy=None, smooth=None, grad_norm=True, title=None):
    """Loss per step with the known limit drawn as a line, and the gradient norm.

    Parameters
    ----------
    histories : History, list of History or dict name -> History
        Runs with the same objective, drawn on one axis.
    entropy : float or dict name -> float, optional
        For maximum likelihood: the data's entropy in nats (``datasets.entropy(name)``), the
        lowest NLL any model can reach; drawn as a dashed line. A reverse-KL run whose History
        knows ``log_normalizer`` is drawn as a KL with its floor 0 instead.
    smooth : int, optional
        Window of the moving average drawn over the raw (faint) curve; default ``len / 50``.
    grad_norm : bool
        Add a panel with the global gradient norm (log scale).
    title : str, optional
    style : {"default", "slides"}, optional
        Figure style (see :func:`~nfscratch.plotting.style`); default the one in force.

    Returns
    -------
    matplotlib.figure.Figure
    """
    items, objective = _as_histories(histories)
    fig = new_figure(9.5 if grad_norm else 5.5, 3.8)
    axes = fig.subplots(1, 2 if grad_norm else 1, squeeze=False).ravel()
    ax = axes[0]
    kl_mode = objective == "reverse_kl" and all(h.log_normalizer is not None for _, h in items)
    colours = [f"C{i}" for i in range(len(items))]
    floors, anneal_ends = [], set()
    for (name, h), col in zip(items, colours):
        y = h.kl if kl_mode else np.asarray(h.loss, dtype=np.float64)
        steps = np.arange(y.size)
        w = smooth or max(1, y.size // 50)
        ax.plot(steps, y, color=col, alpha=0.25, lw=0.7)
        ax.plot(steps, moving_average(y, w), color=col, lw=1.6,
                label=(name + ": " if name else "") + f"last {w} steps {np.nanmean(y[-w:]):.4g}")
        beta = np.asarray(getattr(h, "beta", None) or [1.0])
        if kl_mode and np.any(beta < 1.0):     # annealed steps: the loss is not a KL, not drawn
            anneal_ends.add(int(np.flatnonzero(beta < 1.0)[-1]) + 1)
        if objective == "nll" and entropy is not None:
            e = entropy.get(name) if isinstance(entropy, dict) else entropy
            if e is not None:
                ax.axhline(e, color=col, ls="--", lw=1.2,
                           label=f"entropy H(p) = {e:.3f} (lowest reachable NLL)")
                floors.append(e)
    for end in sorted(anneal_ends):
        ax.axvspan(0, end, color="0.5", alpha=0.12, lw=0)
        # halfway up, above every line and on its own background: the floor line at 0 runs
        # along the bottom, where the label used to be drawn over
        ax.text(end / 2, 0.5, "annealing (β < 1):\nthe loss is not\na KL yet",
                fontsize="x-small", ha="center", va="center", color="0.3", zorder=5,
                transform=ax.get_xaxis_transform(),
                bbox=dict(fc="white", ec="0.7", alpha=0.9, boxstyle="round,pad=0.3"))
    if kl_mode:
        ax.axhline(0.0, color="k", ls="--", lw=1.2, label="0: the limit, reached when q = p")
        floors.append(0.0)
        ax.set_ylabel(r"KL$(q\,\|\,p)$ = loss + log Z  (nats)")
    elif objective == "nll":
        ax.set_ylabel("negative log-likelihood (nats)")
    else:
        ax.set_ylabel(r"$E_q[\log q + U]$ (nats; log Z unknown, no floor drawn)")
    # a few huge first-step losses should not flatten the rest of the curve
    ys = np.concatenate([h.kl if kl_mode else np.asarray(h.loss) for _, h in items])
    ys = ys[np.isfinite(ys)]
    if ys.size == 0:
        raise ValueError("histories: every recorded loss is NaN or infinite; nothing to draw.")
    lo = min(np.quantile(ys, 0.005), *floors) if floors else np.quantile(ys, 0.005)
    hi = np.quantile(ys, 0.98)
    span = max(hi - lo, 1e-3)
    ax.set_ylim(lo - 0.08 * span, hi + 0.15 * span)
    ax.set_xlabel("step")
    ax.set_title("maximum likelihood" if objective == "nll" else "reverse KL", fontsize="medium")
    ax.legend(fontsize="x-small", loc="best", framealpha=0.85)
    ax.grid(alpha=0.3)
    if grad_norm:
        ax = axes[1]
        for (name, h), col in zip(items, colours):
            g = np.asarray(h.grad_norm, dtype=np.float64)
            w = smooth or max(1, g.size // 50)
            ax.plot(np.arange(g.size), g, color=col, alpha=0.25, lw=0.7)
            ax.plot(np.arange(g.size), moving_average(g, w), color=col, lw=1.4, label=name)
        ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel("global gradient norm (before clipping)")
        ax.set_title("gradient norm", fontsize="medium")
        ax.grid(alpha=0.3, which="both")
        if len(items) > 1:
            ax.legend(fontsize="x-small")
    if title:
        fig.suptitle(title)
    return fig


def _sample_log_dets(flow, points, direction):
    """Per-sample log-det of every layer, (K, N), indexed like ``flow.layers``."""
    traj = flow.trajectory(points, direction)
    lds = np.array(traj.log_dets)                          # (K, N) in pass order
    return lds if direction == "forward" else lds[::-1]


@styled
def layer_diagnostics(history, flow=None, points=None, *, direction=None, n_samples=2000, rng=0,
                      title=None):
    r"""Per-layer log-dets and gradient sizes: the picture to look at when training goes wrong.

    Parameters
    ----------
    history : History
        Uses ``record_steps``, ``layer_log_det`` (mean log-det of each layer, each (K,)) and
        ``layer_grad_norm`` (norm of each layer's parameter gradient, each (K,)).
    flow : Flow, optional
        The trained flow; adds a box plot of every layer's per-sample log-det.
    points : ndarray, shape (N, D), optional
        Where to evaluate those log-dets: data points for a maximum-likelihood run (run through
        the inverse, as in training). Default: ``n_samples`` base samples pushed forward.
    direction : {"forward", "inverse"}, optional
        Default: the direction training used (``"inverse"`` for NLL, ``"forward"`` for KL);
        ``"inverse"`` needs ``points``.
    n_samples : int
    rng : Generator or int
    title : str, optional
    style : {"default", "slides"}, optional
        Figure style (see :func:`~nfscratch.plotting.style`); default the one in force.

    Returns
    -------
    matplotlib.figure.Figure
        Heatmaps over (record step, layer); layer ``i`` is ``flow.layers[i - 1]``.
    """
    if not hasattr(history, "layer_grad_norm") or not hasattr(history, "record_steps"):
        raise TypeError(f"history: expected an nfscratch.train.History, got {type(history).__name__}.")
    if len(history.record_steps) == 0:
        raise ValueError("history: expected recorded per-layer diagnostics, got none; train for "
                         "at least one step (fit records every record_every steps).")
    steps = np.asarray(history.record_steps)
    grads = np.array(history.layer_grad_norm).T                  # (K, R)
    log_dets = np.array(history.layer_log_det).T                 # (K, R)
    K = grads.shape[0]
    trained_dir = "inverse" if history.objective == "nll" else "forward"
    what = r"log|det $\partial z/\partial x$|" if trained_dir == "inverse" else r"log|det $\partial x/\partial z$|"

    ncols = 3 if flow is not None else 2
    fig = new_figure(4.3 * ncols, 3.3 + 0.06 * K)
    axes = fig.subplots(1, ncols).ravel()
    # rows are numbered from 0 like flow[i], the parameter keys "i.name" and TrainingDiverged.layer
    extent = (steps[0], steps[-1] + (steps[1] - steps[0] if steps.size > 1 else 1), K - 0.5, -0.5)

    im = axes[0].imshow(log_dets, aspect="auto", interpolation="nearest", extent=extent,
                        cmap=SIGNED_CMAP, norm=signed_norm(log_dets))
    fig.colorbar(im, ax=axes[0], label="mean " + what)
    axes[0].set_title(f"mean log-det of each layer ({trained_dir} pass)", fontsize="small")

    positive = grads[grads > 0]
    g_lo = float(np.quantile(positive, 0.01)) if positive.size else 1e-12
    g_hi = float(np.max(grads)) if positive.size else 1.0
    im = axes[1].imshow(np.maximum(grads, g_lo), aspect="auto", interpolation="nearest",
                        extent=extent, cmap=MAGNITUDE_CMAP, norm=LogNorm(g_lo, max(g_hi, g_lo * 10)))
    fig.colorbar(im, ax=axes[1], label="gradient norm (log scale)")
    axes[1].set_title("size of each layer's parameter gradient", fontsize="small")
    for ax in axes[:2]:
        ax.set_xlabel("training step")
        ax.set_ylabel("layer i (flow[i])")

    if flow is not None:
        if len(flow.layers) != K:
            raise ValueError(f"flow: expected {K} layers to match history, got {len(flow.layers)}.")
        direction = trained_dir if direction is None else direction
        if direction == "inverse":
            if points is None:
                raise ValueError("points: the inverse direction needs data points (N, D) to pull "
                                 "back, got None. Pass points=data or direction='forward'.")
            pts = as_batch(points, flow.dim, "points")
        elif direction == "forward":
            pts = flow.base.sample(n_samples, np.random.default_rng(rng))
        else:
            raise ValueError(f"direction: expected 'forward' or 'inverse', got {direction!r}.")
        lds = _sample_log_dets(flow, pts, direction)             # (K, N)
        ax = axes[2]
        ax.boxplot(lds.T, **_HORIZONTAL, positions=np.arange(K), widths=0.6,
                   showfliers=True, flierprops=dict(markersize=1.5, alpha=0.4),
                   medianprops=dict(color="C3"))
        ax.axvline(0.0, color="0.5", lw=0.8, ls=":")
        ax.set_ylim(K - 0.5, -0.5)
        ax.set_xlabel(r"per-sample log|det $\partial x/\partial z$|" if direction == "forward"
                      else r"per-sample log|det $\partial z/\partial x$|")
        ax.set_ylabel("layer i (flow[i])")
        ax.set_title(f"log-det per sample, {pts.shape[0]} points ({direction})", fontsize="small")
        ticks = np.arange(K)[::max(1, K // 8)]
        ax.set_yticks(ticks, labels=[str(t) for t in ticks])
    if title:
        fig.suptitle(title)
    return fig
