"""Tests for nfscratch.plotting: the pictures are computed from the right numbers.

Every density is compared with an independent float64 reference (a sub-flow's own
``log_prob``), every drawn line with points pushed through the layers one at a time, and the
GIF is read back with pillow. Flows and grids are tiny so the whole file runs in seconds.
"""
import re

import matplotlib
import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from nfscratch import Flow, io
from nfscratch.cli import main
from nfscratch.datasets import energy, two_moons
from nfscratch.models import planar_flow
from nfscratch.plotting import (DENSITY_CMAP, SIGNED_CMAP, WarpMovie, animate_warp, film_strip,
                                grid_lines, layer_densities, layer_diagnostics,
                                log_density_after, numerical_jacobian, plot_density,
                                plot_jacobian, plot_layer_densities, save_figure, style,
                                target_vs_model, training_curves)
from nfscratch.plotting._common import make_grid
from nfscratch.plotting.animate import default_frames_per_layer
from nfscratch.train import fit
from nfscratch.transforms import (AffineCoupling, ElementwiseAffine, Permute, Planar, Radial,
                                  Reverse)

matplotlib.use("Agg")


def _planar():
    return planar_flow(2, n_layers=3, rng=1)


def _coupling():
    return Flow([AffineCoupling(2, hidden=[8], parity=k % 2, rng=k, zero_init=False)
                 for k in range(3)])


def _mixed():
    ew = ElementwiseAffine(2)
    ew.params["log_scale"][:] = [0.3, -0.2]
    ew.params["shift"][:] = [0.5, -0.1]
    return Flow([Planar(2, rng=3), Reverse(2), AffineCoupling(2, hidden=[8], rng=4, zero_init=False),
                 ew, Radial(2, rng=6), Permute(2, rng=5)])


FLOWS = {"planar": _planar, "coupling": _coupling, "mixed": _mixed}


@pytest.fixture(params=sorted(FLOWS))
def flow(request):
    return FLOWS[request.param]()


# ----------------------------------------------------------------------------------------------
# exact densities after every layer
# ----------------------------------------------------------------------------------------------
def test_log_density_after_matches_sub_flow(flow, rng):
    x = rng.normal(size=(50, 2))
    np.testing.assert_allclose(log_density_after(flow, 0, x), flow.base.log_prob(x), atol=1e-12)
    for k in range(1, len(flow) + 1):
        ref = Flow(flow.layers[:k]).log_prob(x)              # an independent route to p_k
        np.testing.assert_allclose(log_density_after(flow, k, x), ref, rtol=1e-10, atol=1e-10)


def test_every_density_panel_sums_to_one(flow):
    panels = layer_densities(flow, grid_size=60)
    assert [p.k for p in panels] == list(range(len(flow) + 1))
    for p in panels:
        assert p.log_density.shape == (60, 60)
        assert abs(p.mass - 1.0) < 0.02, (p.label, p.mass)
        # the reported mass is the midpoint rule over the drawn grid
        assert p.mass == pytest.approx(np.exp(p.log_density).sum() * p.grid.cell_area)


def test_mass_is_one_on_a_wide_fine_box():
    panels = layer_densities(_coupling(), [0, 3], limits=8.0, grid_size=200)
    for p in panels:
        assert abs(p.mass - 1.0) < 2e-3


def test_grid_layout_matches_imshow():
    g = make_grid(((0.0, 4.0), (-1.0, 1.0)), 4)
    img = g.as_image(g.points[:, 0] + 10 * g.points[:, 1])
    assert img[0, 0] == pytest.approx(0.5 + 10 * -0.75)     # row 0 is the bottom (origin="lower")
    assert img[-1, -1] == pytest.approx(3.5 + 10 * 0.75)
    assert g.cell_area == pytest.approx(0.5)


def test_density_figures_are_figures(flow):
    fig = plot_layer_densities(flow, [0, len(flow)], grid_size=30)
    assert isinstance(fig, Figure) and len(fig.panels) == 2
    assert "mass" in fig.axes[0].get_title()
    assert isinstance(plot_density(flow, grid_size=30), Figure)


# ----------------------------------------------------------------------------------------------
# film strip: drawn lines and samples are the pushed-forward points
# ----------------------------------------------------------------------------------------------
def _push(flow, points, direction, steps):
    """Reference: apply ``steps`` layers one at a time through the public Transform methods."""
    layers = flow.layers if direction == "forward" else flow.layers[::-1]
    for t in layers[:steps]:
        points = (t.forward if direction == "forward" else t.inverse)(points)[0]
    return points


@pytest.mark.parametrize("direction", ["forward", "inverse"])
def test_film_strip_lines_are_pushed_forward_grid(flow, direction):
    K = len(flow)
    data = flow.sample(40, 7) if direction == "inverse" else None
    fig = film_strip(flow, direction=direction, data=data, n_samples=40, grid_size=20, n_lines=5,
                     start_limits=2.0, rng=3)
    lines = grid_lines(2.0, 5, 100).reshape(-1, 2)
    order = list(range(K + 1)) if direction == "forward" else list(range(K, -1, -1))
    assert [p.k for p in fig.panels] == order
    axes = [ax for ax in fig.axes if ax.get_gid() != "colorbar" and ax.get_visible()][:K + 1]
    start = fig.warp.samples[0]
    for step, ax in enumerate(axes):
        drawn = [ln for ln in ax.lines if ln.get_gid() == "grid-line"]
        assert len(drawn) == 10
        got = np.concatenate([ln.get_xydata() for ln in drawn])
        np.testing.assert_allclose(got, _push(flow, lines, direction, step), atol=1e-9)
        (scatter,) = [c for c in ax.collections if c.get_gid() == "samples"]
        np.testing.assert_allclose(scatter.get_offsets(), _push(flow, start, direction, step),
                                   atol=1e-9)
    assert fig.axes[1].get_title().count("mean log|det") == 1


def test_film_strip_subset_titles_sum_log_dets():
    flow = planar_flow(2, n_layers=6, rng=0)
    rng = np.random.default_rng(1)
    for t in flow:   # fresh layers are the identity (log-det 0): give them something to sum
        t.params["u"][...] = rng.normal(0.0, 1.0, 2)
    fig = film_strip(flow, layers=[0, 2, 6], n_samples=30, grid_size=15)
    assert [p.k for p in fig.panels] == [0, 2, 6]
    title = fig.axes[2].get_title()
    assert "3-6" in title and "Planar" in title
    expect = sum(float(np.mean(fig.warp.step_log_det[s])) for s in range(2, 6))
    assert abs(expect) > 0.05
    shown = float(re.search(r"log\|det dx/dz\| ([+-][0-9.]+)", title).group(1))
    assert shown == pytest.approx(expect, abs=0.006)


def test_film_strip_panel_density_sums_to_one_in_both_directions(flow):
    for direction in ("forward", "inverse"):
        fig = film_strip(flow, direction=direction, n_samples=400, grid_size=60)
        for p in fig.panels:
            assert abs(p.mass - 1.0) < 0.03, (direction, p.label, p.mass)


# ----------------------------------------------------------------------------------------------
# animation
# ----------------------------------------------------------------------------------------------
def test_animation_writes_readable_gif_with_expected_frames(tmp_path, flow):
    path = animate_warp(flow, tmp_path / "warp.gif", frames_per_layer=2, mesh_size=12,
                        n_samples=20, dpi=30)
    with Image.open(path) as im:
        assert im.format == "GIF"
        assert im.n_frames == 2 * len(flow) + 1
        im.seek(im.n_frames - 1)
        assert im.convert("RGB").getextrema() != ((255, 255),) * 3      # not blank


def _gif_frames(path):
    """Every frame of a GIF as an RGB array (H, W, 3), composed as a viewer shows it."""
    frames = []
    with Image.open(path) as im:
        for i in range(im.n_frames):
            im.seek(i)
            frames.append(np.asarray(im.convert("RGB")))
    return frames


def _tick_label_strips(frame):
    """Pixels left of and below the movie's axes (fixed at (0.12, 0.08, 0.66, 0.78) of the
    figure): the tick labels, which change whenever the axes' limits do."""
    H, W, _ = frame.shape
    below = frame[int(H * 0.93):, int(W * 0.12):int(W * 0.78)]
    left = frame[int(H * 0.15):int(H * 0.91), :int(W * 0.115)]
    return below, left


@pytest.mark.parametrize("direction", ["forward", "inverse"])
def test_gif_axes_stay_fixed_and_frame_0_is_the_base(tmp_path, direction):
    flow = _mixed()
    movie = WarpMovie(flow, direction=direction, frames_per_layer=2, mesh_size=12, n_samples=30)
    boxes = np.array([movie.state(i).box for i in range(movie.n_frames)])
    assert np.all(boxes == boxes[0])                                  # one view box
    first = movie.state(0).title
    assert ("base" in first) if direction == "forward" else ("data" in first)
    assert "base" in movie.state(movie.n_frames - 1).title or direction == "forward"
    # read back from the file: the tick labels are the same pixels in every frame
    path = animate_warp(flow, tmp_path / "w.gif", direction=direction, frames_per_layer=2,
                        mesh_size=12, n_samples=30, dpi=60)
    strips = [_tick_label_strips(f) for f in _gif_frames(path)]
    assert len(strips) == movie.n_frames
    assert strips[0][0].min() < 128 and strips[0][1].min() < 128     # the labels are there
    for below, left in strips[1:]:
        np.testing.assert_array_equal(below, strips[0][0])
        np.testing.assert_array_equal(left, strips[0][1])


def test_gif_test_would_see_moving_axes(tmp_path):
    # the check above is not vacuous: a movie that follows its samples changes its tick labels
    path = animate_warp(_mixed(), tmp_path / "f.gif", frames_per_layer=2, mesh_size=12,
                        n_samples=30, dpi=60, follow=True)
    strips = [_tick_label_strips(f) for f in _gif_frames(path)]
    assert any(not np.array_equal(b, strips[0][0]) or not np.array_equal(lf, strips[0][1])
               for b, lf in strips[1:])


def test_default_gif_size_stays_under_2_mb(tmp_path):
    # the default frame count is bounded whatever the depth (the U2 demo flow has 32 layers) ...
    assert [default_frames_per_layer(K) for K in (1, 8, 32, 200)] == [8, 8, 3, 2]
    assert all(K * default_frames_per_layer(K) + 1 <= 101 for K in range(1, 51))
    # ... and a frame at the default size and resolution, with a flow that warps hard, is small
    # enough that 101 of them stay under 2 MB (a full-length movie is too slow for a test)
    flow = planar_flow(2, n_layers=2, rng=0)
    rng = np.random.default_rng(1)
    for t in flow:
        t.params["u"][...] = rng.normal(0.0, 1.5, 2)
        t.params["w"][...] = rng.normal(0.0, 1.5, 2)
    path = animate_warp(flow, tmp_path / "w.gif")
    with Image.open(path) as im:
        n, size = im.n_frames, im.size
    assert n == 2 * 8 + 1 and size == (367, 324)
    assert path.stat().st_size / n * 101 < 2e6, path.stat().st_size


def test_gif_is_written_whole_and_never_replaces_a_file_unasked(tmp_path, monkeypatch):
    flow = _planar()
    path = tmp_path / "w.gif"
    path.write_bytes(b"old movie")
    with pytest.raises(FileExistsError, match="path: .* already exists; pass overwrite=True"):
        animate_warp(flow, path, frames_per_layer=1, mesh_size=8, n_samples=10, dpi=20)
    assert path.read_bytes() == b"old movie"
    calls = []

    def fail_on_third_frame(self, ax, i):       # an error halfway through writing
        calls.append(i)
        if i == 2:
            raise RuntimeError("interrupted")
        return WarpMovie._draw(self, ax, i)
    monkeypatch.setattr(WarpMovie, "draw", fail_on_third_frame)
    with pytest.raises(RuntimeError, match="interrupted"):
        animate_warp(flow, path, frames_per_layer=1, mesh_size=8, n_samples=10, dpi=20,
                     overwrite=True)
    assert calls == [0, 1, 2] and path.read_bytes() == b"old movie"
    assert [p.name for p in tmp_path.iterdir()] == ["w.gif"]          # no temporary left
    monkeypatch.undo()
    animate_warp(flow, path, frames_per_layer=1, mesh_size=8, n_samples=10, dpi=20,
                 overwrite=True)
    with Image.open(path) as im:
        assert im.format == "GIF" and im.n_frames == len(flow) + 1


def test_save_figure_refuses_existing_and_directories(tmp_path):
    fig = plot_density(_planar(), grid_size=10)
    path = save_figure(fig, tmp_path / "d.png", dpi=20)
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="already exists"):
        save_figure(fig, path)
    with pytest.raises(IsADirectoryError, match="expected a file name"):
        save_figure(fig, tmp_path)
    assert path.read_bytes() == before
    save_figure(fig, path, dpi=30, overwrite=True)
    assert path.read_bytes() != before and len(list(tmp_path.iterdir())) == 1


def test_movie_keyframes_are_exact(flow):
    movie = WarpMovie(flow, frames_per_layer=3, mesh_size=10, n_samples=15)
    mesh0 = movie.mesh[0]
    for k in range(len(flow) + 1):
        mesh, log_p, samples, _, _ = movie.state(3 * k)
        np.testing.assert_allclose(mesh, _push(flow, mesh0, "forward", k), atol=1e-9)
        np.testing.assert_allclose(log_p, log_density_after(flow, k, mesh), atol=1e-6)


def test_movie_in_between_density_matches_finite_volume():
    # halfway through a planar layer the density is the start density over the area change
    flow = planar_flow(2, n_layers=1, rng=2)
    movie = WarpMovie(flow, frames_per_layer=2, mesh_size=10)
    mesh, log_p = movie.state(1)[:2]                        # s = smoothstep(0.5) = 0.5
    t = flow[0]
    half = lambda z: 0.5 * z + 0.5 * t.forward(z)[0]       # noqa: E731
    J = np.stack([(half(movie.mesh[0] + e) - half(movie.mesh[0] - e)) / 2e-6
                  for e in (np.array([1e-6, 0.0]), np.array([0.0, 1e-6]))], axis=-1)
    ref = movie.log_p[0] - np.log(np.abs(np.linalg.det(J)))
    np.testing.assert_allclose(log_p, ref, atol=1e-6)


def test_swap_layer_jumps_instead_of_folding():
    movie = WarpMovie(_mixed(), frames_per_layer=2, mesh_size=8)
    assert movie.jump[1] is True and movie.jump[0] is False
    assert "jumps" in movie.state(2).title or "jumps" in movie.state(3).title


# ----------------------------------------------------------------------------------------------
# target vs model, curves, diagnostics, jacobian
# ----------------------------------------------------------------------------------------------
def test_target_vs_model_data_and_energy():
    flow = _coupling()
    fig = target_vs_model(flow, data=two_moons(500, rng=0), metric_name="test NLL",
                          metric=1.234, grid_size=40)
    assert "test NLL = 1.234 nats" in fig._suptitle.get_text()
    (t_img,), (m_img,) = fig.axes[0].images, fig.axes[1].images
    assert t_img.norm is m_img.norm                          # one colour scale for both
    fig = target_vs_model(flow, energy=energy("U1"), metric_name="KL", metric=0.5,
                          grid_size=50, log=True)
    target = fig.axes[0].images[0].get_array()
    assert target.sum() * (8.0 / 50) ** 2 == pytest.approx(1.0, abs=0.01)  # exp(-U)/Z integrates to 1


def test_curves_and_diagnostics_from_a_short_fit():
    flow = planar_flow(2, n_layers=4, rng=0)
    hist = fit(flow, target=energy("U1"), steps=30, batch_size=64, lr=1e-2, rng=0,
               progress=False, record_every=5)
    fig = training_curves({"U1": hist})
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any("0: the limit" in s for s in labels)
    assert fig.axes[0].lines[-1].get_ydata()[0] == 0.0
    fig = layer_diagnostics(hist, flow, n_samples=100)
    assert len([ax for ax in fig.axes if ax.get_label() != "<colorbar>"]) >= 3
    assert fig.axes[0].images[0].get_array().shape == (4, len(hist.record_steps))

    hist = fit(planar_flow(2, n_layers=2, rng=0), target=energy("U1"), steps=40, batch_size=32,
               anneal=20, rng=0, progress=False)
    fig = training_curves(hist)                 # annealed steps have no KL: a gap, not a NaN curve
    smooth = fig.axes[0].lines[1].get_ydata()
    assert np.all(np.isnan(smooth[:19])) and np.all(np.isfinite(smooth[20:]))
    assert any("annealing" in t.get_text() for t in fig.axes[0].texts)

    data = two_moons(256, rng=0)
    flow = _coupling()
    hist = fit(flow, data=data, steps=20, batch_size=64, rng=0, progress=False, record_every=5)
    fig = training_curves(hist, entropy=1.5)
    ref = [ln for ln in fig.axes[0].lines if list(ln.get_ydata()) == [1.5, 1.5]]
    assert len(ref) == 1
    assert isinstance(layer_diagnostics(hist, flow, data), Figure)
    with pytest.raises(ValueError, match="points"):
        layer_diagnostics(hist, flow)


@pytest.mark.parametrize("make", [lambda: AffineCoupling(5, hidden=[8], rng=0, zero_init=False),
                                  lambda: Planar(5, rng=1), lambda: Radial(4, rng=2),
                                  lambda: Reverse(4),
                                  lambda: ElementwiseAffine(3)])
def test_jacobian_log_det_matches_slogdet(make, rng):
    t = make()
    p = rng.normal(size=t.dim)
    for direction in ("forward", "inverse"):
        J, log_det = numerical_jacobian(t, p, direction)
        assert np.linalg.slogdet(J)[1] == pytest.approx(log_det, abs=1e-7)
    fig = plot_jacobian(t, p)
    np.testing.assert_allclose(fig.jacobian, numerical_jacobian(t, p)[0])


def test_coupling_jacobian_is_triangular_after_reordering():
    t = AffineCoupling(6, hidden=[8], rng=0, zero_init=False)
    J, _ = numerical_jacobian(t, np.linspace(-1, 1, 6))
    order = np.concatenate([np.flatnonzero(t.mask == 1), np.flatnonzero(t.mask == 0)])
    Jr = J[np.ix_(order, order)]
    np.testing.assert_allclose(np.triu(Jr, 1), 0.0, atol=1e-8)


# ----------------------------------------------------------------------------------------------
# figures for slides: one colour map per quantity, wrapping, the slides style
# ----------------------------------------------------------------------------------------------
def _short_kl_history():
    return fit(planar_flow(2, n_layers=3, rng=0), target=energy("U1"), steps=60, batch_size=32,
               anneal=30, rng=0, progress=False, record_every=5)


def test_one_colour_map_per_quantity():
    flow = _coupling()
    density_images = [
        *film_strip(flow, grid_size=10, n_samples=20).axes[0].images,
        *plot_density(flow, grid_size=10).axes[0].images,
        *plot_layer_densities(flow, grid_size=10).axes[0].images,
        *target_vs_model(flow, data=two_moons(200, rng=0), grid_size=10).axes[0].images,
        *target_vs_model(flow, energy=energy("U2"), grid_size=10).axes[1].images,
    ]
    assert len(density_images) == 5
    assert {im.get_cmap().name for im in density_images} == {DENSITY_CMAP}
    assert WarpMovie(flow, mesh_size=8, n_samples=10).cmap == DENSITY_CMAP
    hist = fit(flow, data=two_moons(128, rng=0), steps=10, batch_size=32, rng=0,
               progress=False, record_every=2)
    (log_det_image,) = layer_diagnostics(hist).axes[0].images          # signed: centred on 0
    assert log_det_image.get_cmap().name == SIGNED_CMAP
    norm = log_det_image.norm
    assert norm.vcenter == 0.0 and norm.vmin == -norm.vmax
    assert SIGNED_CMAP != DENSITY_CMAP


@pytest.mark.parametrize("n_layers, ncols, rows", [(8, None, 2), (8, 3, 3), (3, None, 1),
                                                    (3, 10, 1)])
def test_film_strip_wraps_into_rows(n_layers, ncols, rows):
    fig = film_strip(planar_flow(2, n_layers=n_layers, rng=0), grid_size=8, n_samples=10,
                     ncols=ncols)
    panels = [ax for ax in fig.axes if ax.get_visible() and ax.images]
    assert len(panels) == n_layers + 1
    fig.canvas.draw()
    tops = {round(ax.get_position().y1, 3) for ax in panels}
    assert len(tops) == rows


def test_slides_style_larger_fonts_fewer_ticks_and_it_ends():
    flow = _planar()
    plain = film_strip(flow, grid_size=8, n_samples=10)
    with style("slides"):
        big = film_strip(flow, grid_size=8, n_samples=10)
        curves = training_curves(_short_kl_history())
    same = film_strip(flow, grid_size=8, n_samples=10, style="slides")
    after = film_strip(flow, grid_size=8, n_samples=10)
    for fig in (big, same):
        assert fig.axes[0].title.get_fontsize() > 1.5 * plain.axes[0].title.get_fontsize()
        assert fig.get_size_inches()[0] > 1.3 * plain.get_size_inches()[0]
    assert after.axes[0].title.get_fontsize() == plain.axes[0].title.get_fontsize()
    for fig in (big, curves):
        fig.canvas.draw()
        for ax in fig.axes:
            if ax.get_xscale() == "linear" and ax.get_label() != "<colorbar>":
                assert len([t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]) <= 5
    with pytest.raises(ValueError, match=r"style: expected one of \['default', 'slides'\]"):
        film_strip(flow, style="poster")


def test_annealing_label_is_clear_of_the_zero_line():
    fig = training_curves(_short_kl_history())
    fig.canvas.draw()
    ax = fig.axes[0]
    (label,) = [t for t in ax.texts if "annealing" in t.get_text()]
    box = label.get_window_extent()
    (zero,) = [ln for ln in ax.lines if list(ln.get_ydata()) == [0.0, 0.0]]
    y0 = ax.transData.transform((0.0, 0.0))[1]
    assert not box.y0 - 2 <= y0 <= box.y1 + 2, (box, y0)
    assert label.zorder > zero.zorder and label.get_bbox_patch() is not None


# ----------------------------------------------------------------------------------------------
# bad input
# ----------------------------------------------------------------------------------------------
def test_three_dimensional_flow_is_refused():
    flow3 = planar_flow(3, n_layers=2, rng=0)
    for call in (lambda: film_strip(flow3), lambda: layer_densities(flow3),
                 lambda: target_vs_model(flow3, data=np.zeros((5, 3))),
                 lambda: WarpMovie(flow3)):
        with pytest.raises(ValueError, match=r"flow: expected a 2-D flow .* dim=3"):
            call()


@pytest.mark.parametrize("grid_size, match", [(0, "at least 2 cells"), (1, "at least 2 cells"),
                                              (2.5, "integer")])
def test_degenerate_grid_is_refused(grid_size, match):
    with pytest.raises((ValueError, TypeError), match="grid_size: .*" + match):
        layer_densities(_planar(), grid_size=grid_size)


@pytest.mark.parametrize("limits", [(1.0, 1.0), ((0, 1), (2, -2)), (0.0, np.inf), [1, 2, 3]])
def test_empty_box_is_refused(limits):
    with pytest.raises(ValueError, match="limits: expected"):
        layer_densities(_planar(), limits=limits, grid_size=10)


def test_other_bad_arguments_name_themselves(tmp_path):
    flow = _planar()
    with pytest.raises(ValueError, match="layers: expected counts between 0 .* and 3"):
        film_strip(flow, layers=[0, 7])
    with pytest.raises(ValueError, match="direction"):
        film_strip(flow, direction="backward")
    with pytest.raises(ValueError, match="exactly one of data"):
        target_vs_model(flow)
    with pytest.raises(ValueError, match=r"path: expected a file name ending in \.gif"):
        animate_warp(flow, tmp_path / "warp.avi")
    with pytest.raises(ValueError, match="no recorded steps"):
        from nfscratch.train import History
        training_curves(History("nll"))


# ----------------------------------------------------------------------------------------------
# command line
# ----------------------------------------------------------------------------------------------
def test_cli_plot_on_saved_flow(tmp_path, capsys):
    path = io.save(_mixed(), tmp_path / "flow.npz")
    for kind, out in (("warp", "w.png"), ("density", "d.png"), ("jacobian", "j.png")):
        assert main(["plot", kind, "--flow", str(path), "--out", str(tmp_path / out),
                     "--dpi", "30"]) == 0
        with Image.open(tmp_path / out) as im:
            assert im.format == "PNG"
    assert main(["plot", "animate", "--flow", str(path), "--frames-per-layer", "1",
                 "--dpi", "30", "--out", str(tmp_path / "a.gif")]) == 0
    with Image.open(tmp_path / "a.gif") as im:
        assert im.n_frames == len(_mixed()) + 1
    assert f"wrote {tmp_path / 'a.gif'}" in capsys.readouterr().out


def test_cli_plot_refuses_to_overwrite_and_has_slide_options(tmp_path, capsys):
    path = io.save(_mixed(), tmp_path / "flow.npz")
    out = tmp_path / "w.png"
    out.write_bytes(b"keep")
    base = ["plot", "warp", "--flow", str(path), "--out", str(out), "--dpi", "30"]
    assert main(base) == 2
    assert "--out: " in capsys.readouterr().err and out.read_bytes() == b"keep"
    assert main(base + ["--overwrite", "--style", "slides", "--ncols", "4"]) == 0
    with Image.open(out) as im:
        w, h = im.size
    assert main(base + ["--overwrite", "--ncols", "7"]) == 0
    with Image.open(out) as im:
        assert im.size[0] > w and im.size[1] < h     # one row of 7 panels instead of 2 rows
    anim = tmp_path / "a.gif"
    anim.write_bytes(b"keep")
    assert main(["plot", "animate", "--flow", str(path), "--out", str(anim)]) == 2
    assert anim.read_bytes() == b"keep"
    assert "Traceback" not in capsys.readouterr().err


def test_cli_refuses_3d_flow(tmp_path, capsys):
    path = io.save(planar_flow(3, n_layers=2, rng=0), tmp_path / "flow3.npz")
    assert main(["plot", "warp", "--flow", str(path), "--out", str(tmp_path / "w.png")]) == 2
    assert "expected a 2-D flow" in capsys.readouterr().err
    assert not (tmp_path / "w.png").exists()
