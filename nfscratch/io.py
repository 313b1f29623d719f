"""Save and load flows as ``.npz`` files, without pickle.

A checkpoint holds one JSON header (architecture: base, each transform's class name and
constructor config, and the parameter names) and one float64 array per parameter, named
``"<layer>.<param>"`` as in :meth:`Flow.params`. Loading parses the JSON and the arrays with
``allow_pickle=False``, so opening a checkpoint can never execute code.

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

from .distributions import StandardNormal
from .flow import Flow
from .transforms import TRANSFORMS

__all__ = ["save", "load", "load_into", "CheckpointError", "FORMAT"]

FORMAT = "nfscratch-flow"
FORMAT_VERSION = 1
_HEADER = "__nfscratch__"


class CheckpointError(ValueError):
    """A checkpoint that is corrupt, of another format, or does not match the model."""


def _architecture(flow):
    return {"format": FORMAT, "version": FORMAT_VERSION,
            "base": {"type": type(flow.base).__name__, **flow.base.config()},
            "transforms": [{"type": t.name, "config": t.config(), "params": sorted(t.params)}
                           for t in flow.transforms]}


def save(flow, path, *, overwrite=False):
    """Write ``flow`` (architecture and parameters) to ``path`` atomically; return the path.

    Parameters
    ----------
    flow : Flow
    path : str or os.PathLike
        ``.npz`` is appended when missing.
    overwrite : bool
        Replace an existing file. Without it an existing file is never touched.

    Raises
    ------
    FileExistsError
        ``path`` exists and ``overwrite`` is False.
    """
    if not isinstance(flow, Flow):
        raise TypeError(f"flow: expected a Flow, got {type(flow).__name__}.")
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    if path.exists() and not overwrite:
        raise FileExistsError(f"path: {path} already exists; pass overwrite=True to replace it "
                              "(nothing was written).")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"path: the directory {path.parent} does not exist.")
    arrays = {k: np.ascontiguousarray(v, dtype=np.float64) for k, v in flow.params().items()}
    arrays[_HEADER] = np.array(json.dumps(_architecture(flow)))
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _read(path):
    """Return ``(header dict, {name: array})`` or raise CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: no checkpoint at {path}.")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as exc:
        raise CheckpointError(f"path: {path} is not a readable .npz checkpoint (truncated or "
                              f"corrupt?): {exc}") from None
    if _HEADER not in arrays:
        raise CheckpointError(f"path: {path} is an .npz file but not an nfscratch checkpoint "
                              f"(no {_HEADER!r} entry).")
    try:
        header = json.loads(str(arrays.pop(_HEADER)))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"path: the header of {path} is not valid JSON: {exc}") from None
    if header.get("format") != FORMAT or header.get("version") != FORMAT_VERSION:
        raise CheckpointError(f"path: {path} has format {header.get('format')!r} version "
                              f"{header.get('version')!r}; expected {FORMAT!r} version {FORMAT_VERSION}.")
    return header, arrays


def _copy_params(flow, arrays, path):
    params = flow.params()
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
    """Rebuild the flow saved at ``path`` (architecture and parameters).

    Raises
    ------
    CheckpointError
        The file is corrupt or truncated, not an nfscratch checkpoint, names an unknown
        transform, or its arrays do not match the architecture it declares.
    """
    header, arrays = _read(path)
    layers = []
    try:
        for i, spec in enumerate(header["transforms"]):
            if spec["type"] not in TRANSFORMS:
                raise CheckpointError(f"path: layer {i} of {path} is a {spec['type']!r}, which this "
                                      f"version does not know (known: {sorted(TRANSFORMS)}).")
            layers.append(TRANSFORMS[spec["type"]](**spec["config"]))
        base_spec = dict(header["base"])
        if base_spec.pop("type") != "StandardNormal":
            raise CheckpointError(f"path: unknown base density in {path}.")
        flow = Flow(layers, base=StandardNormal(**base_spec))
    except (KeyError, TypeError) as exc:
        raise CheckpointError(f"path: the architecture in {path} is malformed: {exc!r}") from None
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
