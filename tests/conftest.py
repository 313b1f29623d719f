"""Shared fixtures: a seeded generator, and matplotlib forced headless."""
import os

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
os.environ.setdefault("MPLBACKEND", "Agg")


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def assert_same_passes(a, b, z, dx, dl, atol):
    """Flows ``a`` and ``b`` (e.g. a chain transform and the layers it stands for) give the same
    outputs, log-dets, input and parameter gradients, per-layer log-dets and trajectories, in
    both directions, to ``atol``."""
    for direction in ("forward", "inverse"):
        run = {f: f.forward if direction == "forward" else f.inverse for f in (a, b)}
        back = {f: f.backward if direction == "forward" else f.inverse_backward for f in (a, b)}
        (o1, l1), (o2, l2) = run[a](z), run[b](z)
        np.testing.assert_allclose(o1, o2, rtol=0, atol=atol)
        np.testing.assert_allclose(l1, l2, rtol=0, atol=atol)
        np.testing.assert_allclose(back[a](dx, dl), back[b](dx, dl), rtol=0, atol=atol)
        g1, g2 = a.grads(), b.grads()
        assert list(g1) == list(g2)
        for k in g2:
            np.testing.assert_allclose(g1[k], g2[k], rtol=atol, atol=atol)
        for k, (p, q) in enumerate(zip(a.layer_log_dets(), b.layer_log_dets())):
            np.testing.assert_allclose(p, q, rtol=0, atol=atol, err_msg=f"layer {k}")
        t1, t2 = a.trajectory(z, direction), b.trajectory(z, direction)
        assert t1.names == t2.names and len(t1.points) == len(b) + 1
        for p, q in zip(t1.points + t1.log_dets, t2.points + t2.log_dets):
            np.testing.assert_allclose(p, q, rtol=0, atol=atol)
