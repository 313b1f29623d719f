"""Checkpoints: exact round trip, no pickle, atomic writes, refusing to overwrite, clear errors."""
import json
import os

import numpy as np
import pytest

from nfscratch import Flow, io, models
from nfscratch.continuous import CNF
from nfscratch.transforms import AdditiveCoupling, AffineCoupling, ElementwiseAffine, Permute, Planar, Reverse


def mixed_flow(rng):
    flow = Flow([AffineCoupling(3, hidden=[8], rng=rng, zero_init=False), Permute(3, rng=rng),
                 Planar(3, rng=rng), AdditiveCoupling(3, hidden=[4, 4], activation="relu", rng=rng,
                                                      zero_init=False),
                 Reverse(3), ElementwiseAffine(3)])
    flow[5].params["log_scale"][:] = rng.normal(size=3)
    return flow


def test_round_trip_is_exact(tmp_path, rng):
    flow = mixed_flow(rng)
    path = io.save(flow, tmp_path / "flow.npz")
    loaded = io.load(path)
    x = rng.normal(size=(10, 3))
    np.testing.assert_array_equal(flow.log_prob(x), loaded.log_prob(x))
    assert [t.config() for t in flow] == [t.config() for t in loaded]


def test_file_holds_no_pickle(tmp_path, rng):
    path = io.save(mixed_flow(rng), tmp_path / "flow")
    assert path.suffix == ".npz"
    with np.load(path, allow_pickle=False) as npz:    # would raise if anything were pickled
        header = json.loads(str(npz["__nfscratch__"]))
    assert header["format"] == "nfscratch-flow"


def trained_cnf(rng):
    """A continuous flow with a non-trivial field (its last layer starts at 0)."""
    cnf = CNF(2, hidden=(8, 8), n_freq=3, n_steps=6, solver="rk4", rtol=1e-4, atol=1e-6, rng=rng)
    for v in cnf.params.values():
        v[...] = rng.normal(size=v.shape) * 0.4
    return cnf


@pytest.mark.parametrize("make", [mixed_flow, trained_cnf])
def test_never_overwrites_without_asking(tmp_path, rng, make):
    path = tmp_path / "flow.npz"
    path.write_bytes(b"precious user data")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        io.save(make(rng), path)
    assert path.read_bytes() == b"precious user data"
    io.save(make(rng), path, overwrite=True)
    assert io.load(path).dim == make(rng).dim


def test_interrupted_save_leaves_nothing_behind(tmp_path, rng, monkeypatch):
    path = tmp_path / "flow.npz"
    io.save(mixed_flow(rng), path)
    before = path.read_bytes()

    def boom(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(KeyboardInterrupt):
        io.save(mixed_flow(rng), path, overwrite=True)
    assert path.read_bytes() == before                  # the old file is intact
    assert os.listdir(tmp_path) == ["flow.npz"]         # and no temporary file is left


def test_truncated_file(tmp_path, rng):
    path = io.save(mixed_flow(rng), tmp_path / "flow.npz")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(io.CheckpointError, match="truncated or corrupt"):
        io.load(path)


def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "other.npz"
    np.savez(path, a=np.zeros(3))
    with pytest.raises(io.CheckpointError, match="not an nfscratch checkpoint"):
        io.load(path)
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        io.load(tmp_path / "missing.npz")


def test_load_into_other_architecture(tmp_path, rng):
    path = io.save(models.realnvp(2, n_layers=4, hidden=[8], rng=rng), tmp_path / "a.npz")
    other = models.realnvp(2, n_layers=4, hidden=[16], rng=rng)
    with pytest.raises(io.CheckpointError, match="another architecture"):
        io.load_into(other, path)
    same = models.realnvp(2, n_layers=4, hidden=[8], rng=1)
    io.load_into(same, path)
    x = rng.normal(size=(4, 2))
    np.testing.assert_array_equal(same.log_prob(x), io.load(path).log_prob(x))


def test_tampered_parameter_shape(tmp_path, rng):
    path = io.save(models.planar_flow(2, 3, rng=rng), tmp_path / "p.npz")
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["0.u"] = np.zeros(5)                # the chain's u is (K, D) = (3, 2)
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(io.CheckpointError, match=r"'0.u'.*shape \(5,\).*\(3, 2\)"):
        io.load(tmp_path / "bad.npz")


def test_planar_chain_round_trip_and_old_checkpoints_of_separate_layers(tmp_path, rng):
    flow = models.planar_flow(2, 4, rng=rng)
    for p in flow.params().values():
        p += 0.3 * rng.normal(size=p.shape)
    path = io.save(flow, tmp_path / "chain.npz")
    with np.load(path) as npz:                  # one entry for the chain, not one per layer
        assert sorted(k for k in npz.files if k != "__nfscratch__") == ["0.b", "0.u", "0.w"]
    back = io.load(path)
    x = rng.normal(size=(6, 2))
    assert type(back.transforms[0]).__name__ == "PlanarChain" and len(back) == 4
    np.testing.assert_array_equal(back.log_prob(x), flow.log_prob(x))
    # a checkpoint written before chains existed: K separate Planar layers
    layers = [Planar(2, rng=rng) for _ in range(4)]
    for t, layer in zip(layers, flow):
        for k, p in t.params.items():
            p[...] = layer.params[k]
    old = io.load(io.save(Flow(layers), tmp_path / "old.npz"))
    assert [t.name for t in old.transforms] == ["Planar"] * 4
    np.testing.assert_allclose(old.log_prob(x), flow.log_prob(x), rtol=0, atol=1e-12)


def _write_npz(path, members):
    """A hand-made .npz: ``members`` maps a name to raw .npy bytes."""
    import zipfile
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name + ".npy", data)


def _npy_bytes(shape, payload=b""):
    import io as _io
    buf = _io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False,
                                               "shape": shape})
    return buf.getvalue() + payload


def _header_bytes(header):
    import io as _io
    buf = _io.BytesIO()
    np.save(buf, np.array(json.dumps(header)))
    return buf.getvalue()


def test_a_huge_declared_array_is_refused_without_allocating(tmp_path):
    path = tmp_path / "huge.npz"
    good = json.loads(json.dumps(io._architecture(models.planar_flow(2, 1, rng=0))))
    _write_npz(path, {"__nfscratch__": _header_bytes(good), "0.u": _npy_bytes((10**12,)),
                      "0.w": _npy_bytes((2,), b"\0" * 16), "0.b": _npy_bytes((1,), b"\0" * 8)})
    with pytest.raises(io.CheckpointError, match=r"declares \(1000000000000,\).*does not hold"):
        io.load(path)


def test_a_huge_architecture_is_refused_before_it_is_built(tmp_path, rng):
    path = io.save(models.realnvp(2, 1, hidden=[4], rng=rng), tmp_path / "small.npz")
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    header = json.loads(str(arrays.pop("__nfscratch__")))
    header["transforms"][0]["config"]["hidden"] = [20000, 20000]     # 3.2 GB if it were built
    _write_npz(tmp_path / "big.npz", {"__nfscratch__": _header_bytes(header),
                                      **{k: _npy_bytes(v.shape, v.tobytes()) for k, v in arrays.items()}})
    with pytest.raises(io.CheckpointError, match="does not match the architecture it declares"):
        io.load(tmp_path / "big.npz")


@pytest.mark.parametrize("mutate, pattern", [
    (lambda h: [], r"has a list; expected"),
    (lambda h: 3, r"has a int; expected"),
    (lambda h: {**h, "transforms": "Planar"}, r"architecture .* is malformed"),
    (lambda h: {**h, "base": "x"}, r"architecture .* is malformed"),
    (lambda h: {**h, "transforms": [{**h["transforms"][0], "type": "Evil"}]}, r"'Evil', which this version does not know"),
    (lambda h: {**h, "transforms": [{**h["transforms"][0], "config": {"dim": 2.5}}]}, r"dim 2.5; expected an integer"),
    (lambda h: {**h, "transforms": [{**h["transforms"][0], "config": {"dim": 2, "hidden": [-3]}}]}, r"the model expects shape \(1, -3\)"),
])
def test_malformed_headers_raise_checkpoint_errors(tmp_path, rng, mutate, pattern):
    path = io.save(models.realnvp(2, 1, hidden=[4], rng=rng), tmp_path / "a.npz")
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    header = mutate(json.loads(str(arrays.pop("__nfscratch__"))))
    _write_npz(tmp_path / "bad.npz", {"__nfscratch__": _header_bytes(header),
                                      **{k: _npy_bytes(v.shape, v.tobytes()) for k, v in arrays.items()}})
    with pytest.raises(io.CheckpointError, match=pattern):
        io.load(tmp_path / "bad.npz")


def test_permute_with_a_bad_perm_is_a_checkpoint_error(tmp_path):
    path = io.save(Flow([Permute(3, perm=[2, 0, 1]), Planar(3, rng=0)]), tmp_path / "p.npz")
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    header = json.loads(str(arrays.pop("__nfscratch__")))
    header["transforms"][0]["config"]["perm"] = "ab"
    _write_npz(tmp_path / "bad.npz", {"__nfscratch__": _header_bytes(header),
                                      **{k: _npy_bytes(v.shape, v.tobytes()) for k, v in arrays.items()}})
    with pytest.raises(io.CheckpointError, match="malformed"):
        io.load(tmp_path / "bad.npz")


def test_saved_files_get_the_usual_permissions(tmp_path, rng):
    umask = os.umask(0o022)
    try:
        path = io.save(models.planar_flow(2, 1, rng=rng), tmp_path / "perm.npz")
    finally:
        os.umask(umask)
    assert (path.stat().st_mode & 0o777) == 0o644


def test_many_wide_parameterless_layers_are_refused_before_they_are_built(tmp_path):
    # 16 Reverse(dim=10**6) layers: a few KB of header, ~250 MB of index arrays if built
    header = json.loads(json.dumps(io._architecture(Flow([Reverse(2)]))))
    header["base"]["dim"] = 10**6
    header["transforms"] = [{"type": "Reverse", "config": {"dim": 10**6}, "params": []}] * 16
    _write_npz(tmp_path / "wide.npz", {"__nfscratch__": _header_bytes(header)})
    with pytest.raises(io.CheckpointError, match=r"total dimension 16000000 but holds only 0"):
        io.load(tmp_path / "wide.npz")


def test_a_diverged_flow_is_not_saved(tmp_path, rng):
    flow = mixed_flow(rng)
    flow[2].params["w"][0] = np.nan
    with pytest.raises(ValueError, match=r"\['2.w'\] hold NaN/inf.*nothing was written"):
        io.save(flow, tmp_path / "nan.npz")
    assert list(tmp_path.iterdir()) == []


# -- continuous flows: the second kind of saved object ------------------------------------------
def test_cnf_round_trip_is_exact(tmp_path, rng):
    cnf = trained_cnf(rng)
    path = io.save(cnf, tmp_path / "cnf")
    assert path.suffix == ".npz"
    loaded = io.load(path)
    assert isinstance(loaded, CNF) and loaded.config() == cnf.config()
    assert sorted(loaded.params) == sorted(cnf.params)
    for k, v in cnf.params.items():
        np.testing.assert_array_equal(loaded.params[k], v)
    x = rng.normal(size=(10, 2))
    np.testing.assert_array_equal(loaded.log_prob(x), cnf.log_prob(x))
    with np.load(path, allow_pickle=False) as npz:    # no pickle anywhere
        assert json.loads(str(npz["__nfscratch__"]))["format"] == "nfscratch-cnf"


def test_cnf_file_is_checked_before_anything_is_built(tmp_path, rng):
    path = io.save(trained_cnf(rng), tmp_path / "cnf.npz")
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    bad = dict(arrays, W1=np.zeros((8, 3)))         # the second layer is (8, 8)
    np.savez(tmp_path / "bad_shape.npz", **bad)
    with pytest.raises(io.CheckpointError, match=r"'W1'.*shape \(8, 3\).*\(8, 8\)"):
        io.load(tmp_path / "bad_shape.npz")
    header = json.loads(str(arrays["__nfscratch__"]))
    header["config"]["hidden"] = [8, -1]
    np.savez(tmp_path / "bad_config.npz", **dict(arrays, __nfscratch__=np.array(json.dumps(header))))
    with pytest.raises(io.CheckpointError, match="CNF config.*malformed"):
        io.load(tmp_path / "bad_config.npz")
    with pytest.raises(io.CheckpointError, match="nfscratch-cnf"):   # a CNF is not a Flow
        io.load_into(models.realnvp(2, n_layers=2, hidden=[8], rng=rng), path)
