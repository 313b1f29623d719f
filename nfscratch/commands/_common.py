"""Helpers shared by the command modules: argument types, output checks, fresh run folders.

Every command follows the same rules (DESIGN.md, layer 9): a bad argument is one line naming the
option, what was expected and what came, with exit code 2; a file that exists is never replaced
unless ``--overwrite`` is given; where a file goes is checked before any long work starts.
"""
import argparse
import math
from pathlib import Path

__all__ = ["UsageError", "positive_int", "non_negative_int", "positive_float", "output_file",
           "output_folder", "fresh_run_dir", "add_progress_flag"]


class UsageError(ValueError):
    """A command-line argument that cannot work; the command prints it and exits with 2."""


def _number(text, kind, expected):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
    return value


def positive_int(text):
    """argparse type: an integer >= 1."""
    value = _number(text, int, "a positive integer")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def non_negative_int(text):
    """argparse type: an integer >= 0 (a seed)."""
    value = _number(text, int, "a non-negative integer")
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value


def positive_float(text):
    """argparse type: a finite number > 0 (a learning rate, a clipping norm)."""
    value = _number(text, float, "a positive number")
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"expected a positive finite number, got {text!r}")
    return value


def add_progress_flag(parser):
    """``--no-progress``: long work shows a progress bar on a terminal unless this is given."""
    parser.add_argument("--no-progress", action="store_true",
                        help="no progress bars (default: shown when stderr is a terminal)")


def output_file(path, overwrite, option):
    """Check, before any work, that a file can be written at ``path``; return it as a Path.

    Raises :class:`UsageError` naming ``option`` for a directory, an existing file without
    ``--overwrite``, a missing or unwritable folder.
    """
    from ..plotting._common import check_output_file
    try:
        return check_output_file(path, overwrite=overwrite, name=option, probe=True)
    except OSError as exc:
        raise UsageError(str(exc)) from None


def output_folder(path, option):
    """Check that ``path`` is a folder (or can become one) that accepts files; return it."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{option}: expected a folder, got the file {path}; pass a folder name.")
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise UsageError(f"{option}: {existing} is a file, so the folder {path} cannot be made.")
    output_file(existing / ".nfscratch-probe", False, option)      # writable? (probe only)
    return path


def fresh_run_dir(out, prefix):
    """Create and return ``out/<prefix>-NNN`` with the next free number, so that a run never
    overwrites the files of an earlier one."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    k = 1
    while True:
        run = out / f"{prefix}-{k:03d}"
        try:
            run.mkdir()
            return run
        except FileExistsError:
            k += 1
