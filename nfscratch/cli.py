"""The ``nfscratch`` command line: one sub-command per module in :mod:`nfscratch.commands`.

Each command module defines ``register(subparsers)``, which adds its parser and sets
``func`` to a function of the parsed arguments returning an exit code. Heavy imports
(matplotlib, numba kernels) happen inside those functions, so ``nfscratch --help`` is instant.

No command ends in a traceback: a usage error (argparse's, or a ``UsageError`` a command raises)
is one line and exit code 2; anything unexpected is one line naming the exception and exit code
1 (set ``NFSCRATCH_DEBUG=1`` to see the traceback).
"""
import argparse
import importlib
import os
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
    from .commands._common import UsageError
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:      # argparse has printed the usage line; keep its exit code
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except UsageError as exc:
        print(f"nfscratch {args.command}: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        if os.environ.get("NFSCRATCH_DEBUG"):
            raise
        print(f"nfscratch {args.command}: failed with {type(exc).__name__}: {exc} "
              "(run with NFSCRATCH_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
