"""Save and load flows as ``.npz`` files, without pickle.

A checkpoint holds one JSON header (architecture: base, each transform's class name and
constructor config, and the parameter names) and one float64 array per parameter, named
``"<i>.<param>"`` with ``i`` the index in ``flow.transforms`` (the members as built: a
``PlanarChain`` is one entry with ``u`` (K, D), where :meth:`Flow.params` lists its K layers).
Loading parses the JSON and the arrays with ``allow_pickle=False``, so opening a checkpoint can
never execute code.

A continuous flow (:class:`nfscratch.continuous.CNF`) is the second kind of saved object: its
header has the format ``"nfscratch-cnf"`` and the CNF's constructor config, and its arrays are
the velocity MLP's parameters under their own names (``W0``, ``b0``, ...); :func:`load` returns
a CNF for such a file, checked the same way before anything is built.

Writes are atomic: the file is written to a temporary file in the same directory and renamed over
the target only once complete, so an interrupted save never leaves a half-written checkpoint, and
an existing file is only replaced when ``overwrite=True`` is passed.
"""
import json
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .continuous import CNF
from .distributions import StandardNormal
from .flow import Flow
from .transforms import TRANSFORMS

__all__ = ["save", "load", "load_into", "CheckpointError", "FORMAT", "CNF_FORMAT"]

FORMAT = "nfscratch-flow"
FORMAT_VERSION = 1
CNF_FORMAT = "nfscratch-cnf"
CNF_FORMAT_VERSION = 1
_HEADER = "__nfscratch__"


class CheckpointError(ValueError):
    """A checkpoint that is corrupt, of another format, or does not match the model."""


def _architecture(flow):
    return {"format": FORMAT, "version": FORMAT_VERSION,
            "base": {"type": type(flow.base).__name__, **flow.base.config()},
            "transforms": [{"type": t.name, "config": t.config(), "params": sorted(t.params)}
                           for t in flow.transforms]}


def _member_params(flow):
    """``"<member index>.<name>" -> array`` over ``flow.transforms`` (what a checkpoint holds)."""
    return {f"{i}.{k}": v for i, t in enumerate(flow.transforms) for k, v in t.params.items()}


def _cnf_architecture(cnf):
    return {"format": CNF_FORMAT, "version": CNF_FORMAT_VERSION, "config": cnf.config(),
            "params": sorted(cnf.params)}


def save(flow, path, *, overwrite=False):
    """Write ``flow`` (architecture and parameters) to ``path`` atomically; return the path.

    Parameters
    ----------
    flow : Flow or CNF
    path : str or os.PathLike
        ``.npz`` is appended when missing.
    overwrite : bool
        Replace an existing file. Without it an existing file is never touched.

    Raises
    ------
    FileExistsError
        ``path`` exists and ``overwrite`` is False.
    """
    if isinstance(flow, CNF):
        header, params = _cnf_architecture(flow), flow.params
    elif isinstance(flow, Flow):
        header, params = _architecture(flow), _member_params(flow)
    else:
        raise TypeError(f"flow: expected a Flow or a CNF, got {type(flow).__name__}.")
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    if path.exists() and not overwrite:
        raise FileExistsError(f"path: {path} already exists; pass overwrite=True to replace it "
                              "(nothing was written).")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"path: the directory {path.parent} does not exist.")
    arrays = {k: np.ascontiguousarray(v, dtype=np.float64) for k, v in params.items()}
    bad = [k for k, v in arrays.items() if not np.all(np.isfinite(v))]
    if bad:
        raise ValueError(f"flow: parameters {bad[:5]}{' ...' if len(bad) > 5 else ''} hold NaN/inf "
                         "values (a diverged training run?); nothing was written. Restore the last "
                         "good parameters (fit does this when it stops a divergence) and save again.")
    arrays[_HEADER] = np.array(json.dumps(header))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)       # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
        _fsync_dir(path.parent)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


_MAX_DIM = 1_000_000

#: Building the layers of a checkpoint may allocate, beyond the parameters the file holds, about
#: one array of ``dim`` numbers per layer (index arrays of permutations, masks). Their total is
#: bounded by what the file can justify: at most ``_BUILD_ALLOWANCE`` numbers plus as many as
#: the file holds values. A 4 KB file cannot make the loader allocate hundreds of MB.
_BUILD_ALLOWANCE = 1 << 20


def _fsync_dir(directory):
    """Make the rename durable: fsync the directory entry (POSIX; a no-op where unsupported)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _member_shapes(path):
    """Declared shape and dtype of every array in the ``.npz`` at ``path``, read from the ``.npy``
    headers only, after checking that each array's data is really in the file.

    ``np.load`` allocates an array of the declared shape before reading its data, so a tiny
    crafted file declaring shape (10**12,) would exhaust memory; this check bounds every
    allocation by the size of the file on disk.
    """
    size_on_disk = path.stat().st_size
    shapes = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    raise CheckpointError(f"path: {path} holds {info.filename!r}, which is not an array.")
                if info.compress_type != zipfile.ZIP_STORED or info.compress_size > size_on_disk:
                    raise CheckpointError(f"path: {path} holds a compressed or oversized member "
                                          f"{info.filename!r}; nfscratch writes uncompressed arrays.")
                with zf.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                   else np.lib.format.read_array_header_2_0)
                    shape, fortran, dtype = read_header(f)
                    header_len = f.tell()
                nbytes = int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
                if dtype.hasobject or header_len + nbytes > info.file_size:
                    raise CheckpointError(f"path: array {info.filename!r} in {path} declares "
                                          f"{shape} {dtype} but the file does not hold that data.")
                shapes[info.filename[:-4]] = (tuple(shape), dtype)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(f"path: {path} is not a readable .npz checkpoint (truncated or "
                              f"corrupt?): {exc}") from None
    return shapes


def _read(path, kinds=((FORMAT, FORMAT_VERSION),)):
    """Return ``(header dict, {name: array})`` or raise CheckpointError.

    Everything is checked before anything large is read: the members' declared shapes (bounded
    by the file's size), the header's structure, and -- against the shapes each layer's config
    implies -- the parameters' shapes, so no layer is ever built from a config the arrays do
    not match. ``kinds`` lists the (format, version) pairs accepted.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no checkpoint at {path}.")
    shapes = _member_shapes(path)
    if _HEADER not in shapes:
        raise CheckpointError(f"path: {path} is an .npz file but not an nfscratch checkpoint "
                              f"(no {_HEADER!r} entry).")
    try:
        with np.load(path, allow_pickle=False) as npz:
            header = json.loads(str(npz[_HEADER]))
    except (json.JSONDecodeError, ValueError, zipfile.BadZipFile, OSError) as exc:
        raise CheckpointError(f"path: the header of {path} is not valid: {exc}") from None
    if not isinstance(header, dict) or (header.get("format"), header.get("version")) not in kinds:
        got = (f"format {header.get('format')!r} version {header.get('version')!r}"
               if isinstance(header, dict) else f"a {type(header).__name__}")
        wanted = " or ".join(f"{f!r} version {v}" for f, v in kinds)
        raise CheckpointError(f"path: {path} has {got}; expected {wanted}.")
    if header["format"] == CNF_FORMAT:
        return header, _read_cnf_arrays(path, header, shapes)
    specs, base = header.get("transforms"), header.get("base")
    if (not isinstance(specs, list) or not specs or not isinstance(base, dict)
            or not all(isinstance(t, dict) and isinstance(t.get("config"), dict) for t in specs)):
        raise CheckpointError(f"path: the architecture in {path} is malformed (expected a base "
                              "dict and a non-empty list of transform dicts with a config).")
    expected = {}
    for i, spec in enumerate(specs):
        if spec.get("type") not in TRANSFORMS:
            raise CheckpointError(f"path: layer {i} of {path} is a {spec.get('type')!r}, which this "
                                  f"version does not know (known: {sorted(TRANSFORMS)}).")
        dim = spec["config"].get("dim")
        if isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim <= _MAX_DIM:
            raise CheckpointError(f"path: layer {i} of {path} has dim {dim!r}; expected an integer "
                                  f"in 1..{_MAX_DIM}.")
        try:
            layer_shapes = TRANSFORMS[spec["type"]].param_shapes(**spec["config"])
        except (TypeError, ValueError, OverflowError) as exc:
            raise CheckpointError(f"path: layer {i} ({spec['type']}) of {path} has a malformed "
                                  f"config {spec['config']}: {exc}") from None
        expected.update({f"{i}.{k}": tuple(v) for k, v in layer_shapes.items()})
    declared = {k: v for k, v in shapes.items() if k != _HEADER}
    n_values = sum(int(np.prod(shape)) for shape, _ in declared.values())
    build = sum(spec["config"]["dim"] for spec in specs)
    if build > _BUILD_ALLOWANCE + n_values:
        raise CheckpointError(f"path: {path} declares {len(specs)} layers of total dimension "
                              f"{build} but holds only {n_values} parameter values; a checkpoint "
                              f"may declare at most {_BUILD_ALLOWANCE} + (its number of values) "
                              "in total (nfscratch.io._BUILD_ALLOWANCE).")
    return header, _load_declared(path, expected, declared, "architecture")


def _load_declared(path, expected, declared, what):
    """Read the arrays once their declared shapes match the ``expected`` ones exactly."""
    missing, extra = sorted(set(expected) - set(declared)), sorted(set(declared) - set(expected))
    if missing or extra:
        raise CheckpointError(f"path: {path} does not match the {what} it declares: missing "
                              f"{missing}, unexpected {extra}.")
    for k, shape in expected.items():
        if declared[k] != (shape, np.dtype(np.float64)):
            raise CheckpointError(f"path: parameter {k!r} in {path} has shape {declared[k][0]} and "
                                  f"dtype {declared[k][1]}; the model expects shape {shape}, float64.")
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in declared}


def _read_cnf_arrays(path, header, shapes):
    """The arrays of a CNF checkpoint, once they match the shapes its config implies."""
    config = header.get("config")
    if not isinstance(config, dict):
        raise CheckpointError(f"path: the CNF header in {path} has no config dict.")
    try:
        expected = CNF.param_shapes(**config)
    except (TypeError, ValueError, OverflowError) as exc:
        raise CheckpointError(f"path: the CNF config {config} in {path} is malformed: "
                              f"{exc}") from None
    declared = {k: v for k, v in shapes.items() if k != _HEADER}
    arrays = _load_declared(path, expected, declared, "CNF")
    bad = sorted(k for k, a in arrays.items() if not np.all(np.isfinite(a)))
    if bad:
        raise CheckpointError(f"path: parameters {bad} in {path} hold non-finite values.")
    return arrays


def _load_cnf(header, arrays, path):
    try:
        cnf = CNF(**header["config"])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"path: the CNF config in {path} is malformed: {exc}") from None
    for k, p in cnf.params.items():
        p[...] = arrays[k]
    return cnf


def _copy_params(flow, arrays, path):
    params = _member_params(flow)
    missing = sorted(set(params) - set(arrays))
    extra = sorted(set(arrays) - set(params))
    if missing or extra:
        raise CheckpointError(f"path: {path} does not match the model's parameters: missing "
                              f"{missing}, unexpected {extra}.")
    for k, p in params.items():
        a = arrays[k]
        if a.shape != p.shape or a.dtype != np.float64:
            raise CheckpointError(f"path: parameter {k!r} in {path} has shape {a.shape} and dtype "
                                  f"{a.dtype}; the model expects shape {p.shape}, float64.")
        if not np.all(np.isfinite(a)):
            raise CheckpointError(f"path: parameter {k!r} in {path} holds non-finite values.")
    for k, p in params.items():   # only once everything has been checked
        p[...] = arrays[k]


def load(path):
    """Rebuild the flow saved at ``path`` (architecture and parameters): a :class:`Flow`, or a
    :class:`~nfscratch.continuous.CNF` for a file saved from one.

    Raises
    ------
    CheckpointError
        The file is corrupt or truncated, not an nfscratch checkpoint, names an unknown
        transform, or its arrays do not match the architecture it declares.
    """
    header, arrays = _read(path, ((FORMAT, FORMAT_VERSION), (CNF_FORMAT, CNF_FORMAT_VERSION)))
    if header["format"] == CNF_FORMAT:
        return _load_cnf(header, arrays, path)
    try:
        layers = [TRANSFORMS[spec["type"]](**spec["config"]) for spec in header["transforms"]]
        base_spec = dict(header["base"])
        if base_spec.pop("type", None) != "StandardNormal":
            raise CheckpointError(f"path: unknown base density in {path}.")
        flow = Flow(layers, base=StandardNormal(**base_spec))
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f"path: the architecture in {path} is malformed: {exc}") from None
    _copy_params(flow, arrays, path)
    return flow


def load_into(flow, path):
    """Load the parameters saved at ``path`` into an existing ``flow`` of the same architecture.

    Raises
    ------
    CheckpointError
        The checkpoint was saved from another architecture (the message shows both).
    """
    header, arrays = _read(path)
    mine = _architecture(flow)["transforms"]
    if header["transforms"] != mine:
        theirs = [f"{s['type']}({s['config']})" for s in header["transforms"]]
        ours = [f"{s['type']}({s['config']})" for s in mine]
        raise CheckpointError(f"path: {path} holds a flow of another architecture.\n  checkpoint: "
                              f"{theirs}\n  model:      {ours}")
    _copy_params(flow, arrays, path)
    return flow
