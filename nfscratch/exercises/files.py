r"""Where the course files are, and writing a set of new files without losing anything.

The tutorials and the exercise solutions live in ``tutorials/`` at the root of the repository.
A built wheel ships the same folder inside the package as ``nfscratch/course/`` (pyproject.toml
maps the package ``nfscratch.course`` onto ``tutorials/``), so every command finds them both in
a source checkout and in an installed copy:

* installed from a wheel: ``<site-packages>/nfscratch/course/`` (and ``.../course/exercises/``);
* a source checkout or an editable install: ``<repository>/tutorials/``.

:func:`write_new_files` is the one writer behind ``exercises make-student`` and ``tutorials``:
it refuses to replace an existing file unless asked, writes each file atomically, and gives it
the permissions of an ordinary new file (``0666`` minus the umask, so ``0644`` under the usual
umask ``022``), like ``open(path, "w")`` would.
"""
import os
import secrets
from pathlib import Path

__all__ = ["course_dir", "solutions_dir", "write_new_files", "check_writable"]


def course_dir():
    """The folder holding the tutorials (and ``exercises/``), or None when none is found."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package / "course", package.parent / "tutorials"):
        if (candidate / "exercises").is_dir():
            return candidate
    return None


def solutions_dir():
    """The folder of the exercise solution files, or None when none is found."""
    root = course_dir()
    return None if root is None else root / "exercises"


def write_new_files(out_dir, contents, overwrite=False):
    """Write ``contents`` (file name -> str or bytes) into ``out_dir``; return the paths written.

    Nothing is written when a target exists and ``overwrite`` is False, or when a target is a
    directory. ``out_dir`` is created if missing.

    Raises
    ------
    FileExistsError
        A target exists (the message lists them and names ``--overwrite``).
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise FileExistsError(f"out_dir: {out_dir} exists and is not a directory; choose a "
                              "directory (it is created if missing).")
    targets = [out_dir / name for name in contents]
    dirs = [p for p in targets if p.is_dir()]
    if dirs:
        raise FileExistsError(f"refusing to replace the director{'y' if len(dirs) == 1 else 'ies'} "
                              f"{', '.join(map(str, dirs))} by a file; choose another folder.")
    existing = [p for p in targets if p.exists()]
    if existing and not overwrite:
        names = ", ".join(str(p) for p in existing)
        raise FileExistsError(f"refusing to overwrite existing file(s): {names}. Pass --overwrite "
                              "(overwrite=True) to replace them, or choose an empty directory.")
    written = []
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for target, data in zip(targets, contents.values()):
            _write_atomically(target, data)
            written.append(target)
    except OSError as exc:      # a plain OSError: FileNotFoundError means "no source" to callers
        raise OSError(f"out_dir: cannot write into {out_dir}: {exc.strerror or exc}"
                      + (f" ({len(written)} file(s) written before)" if written else "")) from None
    return written


def check_writable(path):
    """Raise OSError (naming ``path``) unless a file can be created beside ``path``; creates
    the missing parent folders, as writing would. Used before long work, so it fails early."""
    parent = Path(path).parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        probe = parent / f".{Path(path).name}.{secrets.token_hex(4)}.probe"
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        os.unlink(probe)
    except OSError as exc:
        raise OSError(f"cannot write {path}: {exc.strerror or exc}") from None


def _write_atomically(target, data):
    """Write to a fresh temporary file beside ``target``, then rename it over ``target``.

    ``os.open(..., 0o666)`` lets the umask decide the permissions, as for any new file
    (``tempfile.mkstemp`` would force ``0600`` and make a hand-out unreadable to others).
    """
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
