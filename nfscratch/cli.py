"""The ``nfscratch`` command line: one sub-command per module in :mod:`nfscratch.commands`.

Each command module defines ``register(subparsers)``, which adds its parser and sets
``func`` to a function of the parsed arguments returning an exit code. Heavy imports
(matplotlib, numba kernels) happen inside those functions, so ``nfscratch --help`` is instant.
"""
import argparse
import importlib
import sys

from . import __version__
from .commands import COMMANDS

__all__ = ["main", "build_parser"]


def build_parser():
    parser = argparse.ArgumentParser(
        prog="nfscratch",
        description="Normalizing flows from scratch in NumPy. forward = base -> data (z -> x); "
                    "inverse = data -> base; 'backward' always means backpropagation.")
    parser.add_argument("--version", action="version", version=f"nfscratch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"nfscratch.commands.{name}").register(sub)
    return parser


def main(argv=None):
    """Entry point of the ``nfscratch`` console script and of ``python -m nfscratch``."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
